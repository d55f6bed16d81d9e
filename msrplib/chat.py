"""Chat over an MSRP session as chat clients speak it: CPIM, IMDN and is-composing.

:class:`ChatSession` sits on an :class:`~msrplib.session.MSRPSession` (a
:class:`~msrplib.stream.ChatStream` makes one when it starts). When the peer's SDP allows
it (``message/cpim`` in its ``accept-types``, the inner type in its wrapped or plain
types), :meth:`ChatSession.send_text` wraps the text in Message/CPIM with an IMDN request,
and the notifications that come back are matched to the message they name; otherwise it
sends the text as it is. Incoming CPIM is unwrapped for the application
(:class:`ChatMessage`), and a delivery notification goes back on its own when the sender
asked for one; :meth:`ChatSession.displayed` sends the display notification.
:meth:`ChatSession.composing` drives RFC 3994's typing indications at the rate the RFC
sets, and the peer's come to ``on_composing``.

:class:`ChatReceiver` is the session's ``MessageReceiver`` that feeds a ChatSession. A
message it cannot read (CPIM or XML that does not parse) is refused with 400, so its sender
hears of it in a failure REPORT.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from msrplib._incomingmessage import IncomingMessage, MessageReceiver
from msrplib.cpim import (CPIM_CONTENT_TYPE, Address, CPIMMessage, CPIMParseError, decode_text,
                          parse_cpim)
from msrplib.errors import MSRPError
from msrplib.imdn import (IMDN_CONTENT_TYPE, IMDNParseError, Notification, imdn_message_id,
                          notification_for, parse_notification, request_notifications,
                          requested, requests_answered)
from msrplib.iscomposing import (ISCOMPOSING_CONTENT_TYPE, ComposingIndicator,
                                 ComposingWatcher, IsComposing, IsComposingParseError)

__all__ = ["ChatSession", "ChatReceiver", "ChatMessage", "SentChat", "ANONYMOUS",
           "MAX_AWAITED_NOTIFICATIONS", "MAX_CHAT_MESSAGE_SIZE", "peer_takes"]

#: The CPIM address used for a side whose identity the application did not give.
ANONYMOUS = Address("sip:anonymous@anonymous.invalid")
#: Messages sent whose notifications are awaited at once; past it the oldest is forgotten
#: (its later notifications are then logged and dropped).
MAX_AWAITED_NOTIFICATIONS = 1024
#: The largest chat message taken (it is held in memory): a bigger one is refused (413).
MAX_CHAT_MESSAGE_SIZE = 1024 * 1024


def _takes(types: Sequence[str], content_type: str) -> bool:
    """Whether a list of media types (SDP ``accept-types``) takes ``content_type``."""
    wanted = content_type.lower()
    for item in types:
        item = item.lower()
        if item == "*" or item == wanted or (
                item.endswith("/*") and wanted.startswith(item[:-1])):
            return True
    return False


def peer_takes(accept_types: Sequence[str], accept_wrapped_types: Sequence[str],
               content_type: str) -> Optional[bool]:
    """How the peer takes ``content_type``: ``True`` wrapped in CPIM, ``False`` as it is,
    ``None`` not at all. CPIM is preferred when the peer takes it and the type inside."""
    if _takes(accept_types, CPIM_CONTENT_TYPE) and (
            _takes(accept_wrapped_types, content_type) or _takes(accept_types, content_type)):
        return True
    if _takes(accept_types, content_type):
        return False
    return None


@dataclass
class ChatMessage:
    """A chat message that arrived: its ``text`` (a ``text/*`` body decoded by its
    charset, undecodable bytes as U+FFFD; ``None`` for other types), ``content_type``,
    ``body``, who sent it and when (from CPIM, when it came wrapped), its
    ``imdn_message_id`` and what notifications its sender asked for."""

    text: Optional[str]
    content_type: str
    body: bytes
    sender: Optional[Address] = None
    sent_at: Optional[datetime] = None
    imdn_message_id: Optional[str] = None
    notifications_asked: frozenset[str] = frozenset()
    cpim: Optional[CPIMMessage] = None
    msrp: Optional[IncomingMessage] = None


@dataclass
class SentChat:
    """A chat message sent: ``sent`` fires as ``send_message``'s Deferred does;
    ``notifications`` are those that came back for it, in order (none when it went
    unwrapped, which cannot ask for any)."""

    text: str
    sent: Deferred[Any]
    imdn_message_id: Optional[str] = None
    notifications: List[Notification] = field(default_factory=list)
    #: The dispositions it asked for: a notification that answers none is dropped.
    asked: frozenset[str] = frozenset()


class ChatSession:
    """Chat on ``session`` (an ``MSRPSession``) with a peer whose SDP media section said
    ``accept_types`` and ``accept_wrapped_types``; ``takes_wrapped`` is what this side
    takes inside CPIM (its own SDP's types; a message with another type inside is
    refused with 415). ``local`` and ``remote`` are the two
    sides' identities for CPIM (``From``, ``To``); ``clock`` runs the typing timers (the
    session's reactor by default).

    ``on_message(ChatMessage)`` hears each message; ``on_notification(SentChat,
    Notification)`` each notification about a message sent here; ``on_composing(state)``
    the peer's typing state (``active``, ``idle``). An exception in ``on_message`` sends
    a failed delivery notification (when one was asked for) instead of a delivered one.
    """

    log = Logger()

    def __init__(self, session: Any, accept_types: Sequence[str],
                 accept_wrapped_types: Sequence[str] = (), *,
                 takes_wrapped: Sequence[str] = ("*",),
                 local: Optional[Address] = None, remote: Optional[Address] = None,
                 notifications: Sequence[str] = ("positive-delivery", "display"),
                 on_message: Optional[Callable[[ChatMessage], Any]] = None,
                 on_notification: Optional[Callable[[SentChat, Notification], Any]] = None,
                 on_composing: Optional[Callable[[str], Any]] = None,
                 clock: Any = None) -> None:
        self.session = session
        self.accept_types = list(accept_types)
        self.accept_wrapped_types = list(accept_wrapped_types)
        self.takes_wrapped = list(takes_wrapped)
        self.local = local or ANONYMOUS
        self.remote = remote or ANONYMOUS
        self.notifications = tuple(notifications)
        self.on_message = on_message
        self.on_notification = on_notification
        self.on_composing = on_composing
        clock = clock if clock is not None else session.reactor
        self._awaited: OrderedDict[str, SentChat] = OrderedDict()
        self._indicator = ComposingIndicator(self._send_composing, clock)
        self._watcher = ComposingWatcher(clock, self._composing_changed)
        session.closed.observe().addCallback(lambda ended: self._stop())

    # Sending.

    def send_text(self, text: str, content_type: str = "text/plain") -> SentChat:
        """Send ``text``: in CPIM asking for notifications when the peer takes it, else
        as it is. Raises ``ValueError`` when the peer takes ``content_type`` neither way."""
        wrapped = peer_takes(self.accept_types, self.accept_wrapped_types, content_type)
        if wrapped is None:
            raise ValueError("the peer takes no %s" % content_type)
        self._indicator.message_sent()
        if not wrapped:
            data = text.encode("utf-8")
            sent = self.session.send_message(data, content_type + "; charset=utf-8")
            return SentChat(text, sent)
        message = CPIMMessage.build(text, content_type, sender=self.local,
                                    recipients=[self.remote])
        message_id = request_notifications(message, self.notifications) \
            if self.notifications else None
        sent = self.session.send_message(message.encode(), CPIM_CONTENT_TYPE)
        chat = SentChat(text, sent, message_id, asked=frozenset(self.notifications))
        if message_id is not None:
            self._awaited[message_id] = chat
            while len(self._awaited) > MAX_AWAITED_NOTIFICATIONS:
                self._awaited.popitem(last=False)
        return chat

    def composing(self) -> None:
        """The user typed: typing indications go out as RFC 3994 has them (``active``
        at once and refreshed while typing goes on, ``idle`` after 15 s without a
        keystroke; none once the message is sent)."""
        if self.session.ended or self.session.shutting_down:
            return
        if peer_takes(self.accept_types, self.accept_wrapped_types,
                      ISCOMPOSING_CONTENT_TYPE) is not None:
            self._indicator.typing()

    def displayed(self, message: ChatMessage) -> None:
        """``message`` was shown to the user: send the display notification its sender
        asked for (nothing when it asked for none)."""
        if message.cpim is not None and "display" in message.notifications_asked:
            self._notify(message.cpim, "display", "displayed")

    def _send_composing(self, document: IsComposing) -> None:
        if self.session.ended or self.session.shutting_down:
            return
        body = document.to_xml()
        if peer_takes(self.accept_types, self.accept_wrapped_types,
                      ISCOMPOSING_CONTENT_TYPE):
            wrapper = CPIMMessage.build(body, ISCOMPOSING_CONTENT_TYPE, sender=self.local,
                                        recipients=[self.remote])
            result = self.session.send_message(wrapper.encode(), CPIM_CONTENT_TYPE)
        else:
            result = self.session.send_message(body, ISCOMPOSING_CONTENT_TYPE)
        result.addErrback(lambda failure: self.log.info(
            "a typing indication failed: {error}", error=failure.value))

    def _notify(self, original: CPIMMessage, kind: str, status: str) -> None:
        if self.session.ended or self.session.shutting_down:
            return
        try:
            answer = notification_for(original, kind, status, sender=self.local)
        except ValueError:
            return  # not asked for
        result = self.session.send_message(answer.encode(), CPIM_CONTENT_TYPE)
        result.addErrback(lambda failure: self.log.info(
            "a {kind} notification failed: {error}", kind=kind, error=failure.value))

    # Receiving (from ChatReceiver).

    def received(self, incoming: IncomingMessage) -> None:
        """A whole message from the peer; ``MSRPError`` (400) when it cannot be read."""
        content_type = (incoming.content_type or "").split(";")[0].strip().lower()
        body = incoming.data or b""
        if content_type == CPIM_CONTENT_TYPE:
            try:
                wrapper = parse_cpim(body)
            except CPIMParseError as error:
                raise MSRPError("bad CPIM: %s" % error, 400, "Bad CPIM") from None
            self._unwrapped(wrapper, incoming)
        elif content_type == ISCOMPOSING_CONTENT_TYPE:
            self._typing(body)
        else:
            self._deliver(ChatMessage(decode_text(body, incoming.content_type or ""),
                                      content_type, body, msrp=incoming), None)

    def _unwrapped(self, wrapper: CPIMMessage, incoming: IncomingMessage) -> None:
        inner = wrapper.content_type
        if inner == IMDN_CONTENT_TYPE:
            try:
                notification = parse_notification(wrapper)
            except IMDNParseError as error:
                raise MSRPError("bad notification: %s" % error, 400, "Bad IMDN") from None
            self._notified(notification)
        elif inner == ISCOMPOSING_CONTENT_TYPE:
            self._typing(wrapper.body)
        elif not _takes(self.takes_wrapped, inner):
            raise MSRPError("a %s inside CPIM, which this chat does not take" % inner[:80],
                            415, "Unsupported inner type")
        else:
            text = decode_text(wrapper.body, wrapper.content_header("Content-Type") or "") \
                if inner.startswith("text/") else None
            self._deliver(ChatMessage(text, inner, wrapper.body, wrapper.sender,
                                      wrapper.moment, imdn_message_id(wrapper),
                                      requested(wrapper), wrapper, incoming), wrapper)

    def _deliver(self, message: ChatMessage, wrapper: Optional[CPIMMessage]) -> None:
        self._watcher.message_received()
        if not self._tell("on_message", message):
            if wrapper is not None:
                self._notify(wrapper, "delivery", "failed")
            return
        if wrapper is not None:
            self._notify(wrapper, "delivery", "delivered")

    def _notified(self, notification: Notification) -> None:
        """A notification: kept (and told) when it is about a message sent here, answers
        what that message asked for, and is the first of its kind for it."""
        chat = self._awaited.get(notification.message_id)
        why = None
        if chat is None:
            why = "not awaited here"
        elif not chat.asked & requests_answered(notification.kind, notification.status):
            why = "not asked for"
        elif any(known.kind == notification.kind for known in chat.notifications):
            why = "one of its kind came already"
        if chat is None or why is not None:
            self.log.info("dropped a {kind} notification about {message_id}: {why}",
                          kind=notification.kind, message_id=notification.message_id[:64],
                          why=why)
            return
        chat.notifications.append(notification)
        self._tell("on_notification", chat, notification)

    def _typing(self, body: bytes) -> None:
        try:
            document = IsComposing.from_xml(body)
        except IsComposingParseError as error:
            raise MSRPError("bad is-composing: %s" % error, 400, "Bad isComposing") from None
        self._watcher.received(document)

    def _composing_changed(self, state: str) -> None:
        self._tell("on_composing", state)

    def _tell(self, callback_name: str, *args: Any) -> bool:
        """Call the application's callback of that name, when one is set, with ``args``.
        What it raises is logged rather than raised into the session's receiving; the
        answer is whether it returned normally."""
        callback = getattr(self, callback_name)
        if callback is None:
            return True
        try:
            callback(*args)
        except Exception:
            self.log.failure("{callback} failed", callback=callback_name)
            return False
        return True

    def _stop(self) -> None:
        self._indicator.stop()
        self._watcher.stop()


class ChatReceiver(MessageReceiver):
    """The ``MessageReceiver`` of a chat session: keeps each message in memory (one
    announcing more than :data:`MAX_CHAT_MESSAGE_SIZE` is refused with 413) and hands it
    to its :class:`ChatSession` once :meth:`attach` gave it one. Messages that arrive
    before (with the binding, as the session is made) wait for it, and so do their
    success REPORTs."""

    def __init__(self) -> None:
        self.chat: Optional[ChatSession] = None
        self._waiting: List[Tuple[IncomingMessage, Deferred[None]]] = []

    def attach(self, chat: ChatSession) -> None:
        """Hand messages to ``chat`` from now on, those waiting first."""
        self.chat = chat
        waiting, self._waiting = self._waiting, []
        for message, done in waiting:
            try:
                chat.received(message)
            except Exception:
                done.errback()
            else:
                done.callback(None)

    def message_started(self, message: IncomingMessage) -> Any:
        if message.size is not None and message.size > MAX_CHAT_MESSAGE_SIZE:
            raise MSRPError("a chat message over %d bytes" % MAX_CHAT_MESSAGE_SIZE, 413,
                            "Message too large")
        return None

    def message_received(self, message: IncomingMessage) -> Any:
        if self.chat is None:
            done: Deferred[None] = Deferred()
            self._waiting.append((message, done))
            return done
        self.chat.received(message)
        return None
