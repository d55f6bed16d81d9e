"""MSRP streams for a SIP stack: one object per ``m=message`` line, driven in three calls.

The offerer calls :meth:`MSRPStream.make_offer` (its media section for the SDP offer),
:meth:`~MSRPStream.take_answer` (the answer's section) and :meth:`~MSRPStream.start`; the
answerer calls :meth:`~MSRPStream.make_answer` (from the offer's section) and
:meth:`~MSRPStream.start`. The stream picks direct or relay, active or passive (RFC 6135,
``actpass`` resolved from the answer), checks ``a=fingerprint`` for direct ``msrps``, uses
CEMA (RFC 6714) where both sides offer it, and ``start()`` fires with an
:class:`~msrplib.session.MSRPSession`::

    chat = ChatStream(local_host="192.0.2.10", use_tls=True)
    offer_section = yield chat.make_offer()              # "m=message ...\\r\\na=..."
    ...                                                   # INVITE, 200 with the answer
    chat.take_answer(parse_sdp(answer_sdp).media[index])
    session = yield chat.start()

:class:`FileTransferStream` adds RFC 5547: the file's selector in the offer, the file sent
once the session is up, and on the receiving side the file written where the application
says and its hash checked.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, BinaryIO, Callable, List, Optional, Sequence, Tuple, Union

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._bind import ConnectionSettings
from msrplib._chunk import MSRPData
from msrplib._direct import ConnectorDirect
from msrplib._fileattributes import (FILE_HASH_ALGORITHMS, FileRange, FileSelector,
                                     file_digest)
from msrplib._filepart import FilePart
from msrplib._incomingmessage import IncomingMessage, MessageReceiver
from msrplib._relay import ConnectorRelay, MSRPRelaySettings, RelayConnection
from msrplib._settings import SessionSettings
from msrplib._uri import URI
from msrplib.chat import ChatMessage, ChatReceiver, ChatSession, SentChat
from msrplib.cpim import Address
from msrplib.errors import MSRPError, MSRPSessionError
from msrplib.imdn import IMDN_CONTENT_TYPE, Notification
from msrplib.iscomposing import ISCOMPOSING_CONTENT_TYPE
from msrplib.outbox import attachment_header
from msrplib.sdp import MediaSection, MSRPMedia, answer_setup, local_role, media_line
from msrplib.session import MSRPSession

__all__ = ["MSRPStream", "ChatStream", "FileTransferStream", "StreamRefused",
           "FileHashMismatch", "CHAT_WRAPPED_TYPES"]

#: What a chat stream takes inside CPIM by default: text, notifications, typing.
CHAT_WRAPPED_TYPES = ("text/plain", IMDN_CONTENT_TYPE, ISCOMPOSING_CONTENT_TYPE)

#: The direction an answer gives for each direction of an offer (RFC 3264).
_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly",
                     "recvonly": "sendonly", "inactive": "inactive"}


class StreamRefused(MSRPError, ValueError):
    """The peer's media section cannot make this stream: refused (port 0), a direct
    ``msrps`` path without ``a=fingerprint``, or a stream of the wrong kind."""


class FileHashMismatch(MSRPError):
    """The file received is not the one offered: its hash or size differs from the offer's
    ``a=file-selector``."""

    code = 400
    comment = "File hash mismatch"


class MSRPStream:
    """One MSRP stream of a SIP session (an ``m=message`` line).

    Direct unless ``relay`` is given: ``MSRPRelaySettings``, or a ``RelayConnection`` that
    the streams of one dialog share (one connection and one AUTH); ``use_tls`` makes a direct
    stream ``msrps`` (a relay's URI says for itself). ``local_host`` is the address put in
    the path and ``c=`` line of a direct stream. ``accept_types``,
    ``accept_wrapped_types``, ``max_size`` and ``direction`` go in our media section;
    ``receiver``, ``session_settings`` and ``accept_types`` make the session.
    ``on_path_changed(full_local_path)`` hears a relay's new path (see ``ConnectorRelay``):
    offer :meth:`media_section` in a re-INVITE then; the peer's section in return goes to
    :meth:`take_new_path`, as does the peer's own re-INVITE (see there for when).
    """

    default_accept_types: Sequence[str] = ("*",)
    default_accept_wrapped_types: Sequence[str] = ()
    default_direction = "sendrecv"

    def __init__(self, *,
                 relay: Optional[Union[MSRPRelaySettings, RelayConnection]] = None,
                 use_tls: bool = False,
                 local_host: Optional[str] = None,
                 accept_types: Optional[Sequence[str]] = None,
                 accept_wrapped_types: Optional[Sequence[str]] = None,
                 max_size: Optional[int] = None, direction: Optional[str] = None,
                 receiver: Optional[MessageReceiver] = None,
                 session_settings: Optional[SessionSettings] = None,
                 connection_settings: Optional[ConnectionSettings] = None,
                 on_path_changed: Optional[Callable[[List[URI]], None]] = None,
                 reactor: Any = None, logger: Optional[Logger] = None) -> None:
        self.relay = relay
        self.use_tls = use_tls
        self.local_host = local_host
        self.accept_types = list(accept_types or self.default_accept_types)
        self.accept_wrapped_types = list(self.default_accept_wrapped_types
                                         if accept_wrapped_types is None
                                         else accept_wrapped_types)
        self.max_size = max_size
        self.direction = direction or self.default_direction
        self.receiver = receiver
        self.session_settings = session_settings
        self.connection_settings = connection_settings
        self.on_path_changed = on_path_changed
        self.reactor = reactor
        self.logger = logger
        #: Our media attributes, once made; the peer's, once known.
        self.local_media: Optional[MSRPMedia] = None
        self.remote: Optional[MediaSection] = None
        #: ``active`` or ``passive`` once the offer and answer are both known.
        self.role: Optional[str] = None
        self.session: Optional[MSRPSession] = None
        self._endpoint: Any = None

    # The three calls.

    @inlineCallbacks
    def make_offer(self) -> Any:
        """Prepare our end (listen, or AUTH with the relay) and fire with our media
        section for the offer: its ``m=`` line, a ``c=`` line for a direct stream, and its
        attributes, with ``a=setup:actpass``."""
        path = yield self._prepare("actpass")
        self.local_media = self._media(path, "actpass", self.direction, cema=True)
        return self._section(path)

    def take_answer(self, answer: MediaSection) -> None:
        """Take the answer's media section for our offer; raises ``StreamRefused`` when it
        refuses the stream or cannot be used."""
        if self.local_media is None:
            raise RuntimeError("make_offer() first")
        remote = self._check(answer)
        self.role = local_role("actpass", remote.setup, offerer=True)
        self.remote = answer

    @inlineCallbacks
    def make_answer(self, offer: MediaSection, setup: Optional[str] = None) -> Any:
        """Take the offer's media section, prepare our end, and fire with our media section
        for the answer. Fails with ``StreamRefused`` when the offer cannot be used: answer
        the stream with port 0 then.

        ``setup`` is the role to answer an ``actpass`` offer (or one without
        ``a=setup``) with: ``passive`` by default (RFC 6135: the offerer connects), or
        ``active`` to connect ourselves; an offer that says ``active`` or ``passive``
        leaves no choice, and another ``setup`` fails with ``ValueError``."""
        remote = self._check(offer)
        if remote.setup == "holdconn":
            raise StreamRefused("the offer holds the connection back (a=setup:holdconn)")
        allowed = answer_setup(remote.setup)
        if setup is not None and (setup not in ("active", "passive") or (
                remote.setup in ("active", "passive") and setup != allowed)):
            raise ValueError("cannot answer a=setup:%s with %r" % (remote.setup, setup))
        self._answered(remote)
        self.remote = offer
        self.role = setup or allowed
        path = yield self._prepare(self.role)
        direction = _ANSWER_DIRECTION[remote.direction or "sendrecv"]
        self.local_media = self._media(path, self.role, direction, cema=remote.cema)
        return self._section(path)

    @inlineCallbacks
    def start(self) -> Any:
        """Connect (or wait for the peer), bind, and fire with the ``MSRPSession``."""
        if self.role is None or self.remote is None or self.remote.msrp is None:
            raise RuntimeError("the offer and the answer must both be known first")
        remote = self.remote.msrp
        if self.relay is not None:
            complete = (self._endpoint.complete_active if self.role == "active"
                        else self._endpoint.complete_passive)
            transport = yield complete(remote.path)
        else:
            transport = yield self._endpoint.complete(
                remote.path, remote_fingerprint=remote.fingerprint,
                connect_address=self._cema_address(), setup=self.role)
        self.session = MSRPSession(transport, self.accept_types, receiver=self.receiver,
                                   settings=self.session_settings, reactor=self.reactor)
        self._started(self.session)
        return self.session

    def media_section(self) -> str:
        """Our media section as it is now: after a relay's new Use-Path
        (``on_path_changed``), what a re-INVITE offers the peer."""
        if self.local_media is None:
            raise RuntimeError("make_offer() or make_answer() first")
        return self._section(self.local_media.path)

    def take_new_path(self, section: MediaSection, ours: bool = True) -> None:
        """The peer's media section from a re-INVITE: the session sends to, and takes
        requests from, the peer by its path from now on (its requests by the path before
        are still taken); with ``ours``, our own requests name our path as
        :meth:`media_section` says it.

        Our own path moves only once the peer knows it (a relay stamps our requests with
        the path they name, and the peer refuses one it was not told of). So the side
        that sent the re-INVITE calls this on the 200 (``ours`` true); the side that got
        it calls it with ``ours=False`` when it answers, and :meth:`use_own_path` on the
        ACK. Raises ``StreamRefused`` for a section this stream cannot take,
        ``ValueError`` for a path to another session."""
        if self.session is None:
            raise RuntimeError("take_new_path() is for a started stream (a re-INVITE)")
        remote = self._check(section)
        transport = self.session.transport
        if self.relay is None:
            # Our connection goes to the peer's first hop: a new path must start at the
            # same place (a relay's new session there, say), and have as many hops.
            before, after = transport.full_remote_path[0], remote.path[0]
            if len(remote.path) != len(transport.full_remote_path) or \
                    (before.host, before.effective_port, before.use_tls) != \
                    (after.host, after.effective_port, after.use_tls):
                raise StreamRefused("a new path that does not start where this stream's "
                                    "connection goes")
        local = self.local_media.path if ours and self.local_media is not None else None
        transport.update_paths(local_path=local, full_remote_path=remote.path)
        self.remote = section

    def use_own_path(self) -> None:
        """Our own requests name our path as :meth:`media_section` says it, from now on:
        once the peer knows it (see :meth:`take_new_path`)."""
        if self.session is None or self.local_media is None:
            raise RuntimeError("use_own_path() is for a started stream (a re-INVITE)")
        self.session.transport.update_paths(local_path=self.local_media.path)

    def cleanup(self) -> None:
        """Undo ``make_offer``/``make_answer`` when the stream will not start (a CANCEL, a
        refused INVITE): stop listening, or close the relay connection."""
        if self._endpoint is not None and self.session is None:
            self._endpoint.cleanup()

    # What subclasses add.

    def _media(self, path: List[URI], setup: str, direction: str, cema: bool) -> MSRPMedia:
        fingerprint = None
        if self.relay is None and path[-1].use_tls:
            fingerprint = path[-1].credentials.fingerprint()
        return MSRPMedia(path=path, accept_types=self.accept_types,
                         accept_wrapped_types=self.accept_wrapped_types,
                         max_size=self.max_size, setup=setup, fingerprint=fingerprint,
                         cema=cema, direction=direction)

    def _answered(self, offer: MSRPMedia) -> None:
        """The offer was taken (a file transfer takes its file's attributes)."""

    def _started(self, session: MSRPSession) -> None:
        """The session is up."""

    # The parts.

    def _prepare(self, setup: str) -> Any:
        """Make our endpoint and prepare it; a Deferred firing with our full path."""
        if self.relay is not None:
            self._endpoint = ConnectorRelay(
                self.relay, self.logger, reactor=self.reactor,
                settings=self.connection_settings, on_path_changed=self._path_changed)
            return self._endpoint.prepare()
        self._endpoint = ConnectorDirect(self.logger, setup=setup, reactor=self.reactor,
                                         settings=self.connection_settings)
        return self._endpoint.prepare(URI(host=self.local_host, use_tls=self.use_tls))

    def _check(self, section: MediaSection) -> MSRPMedia:
        """The peer's MSRP attributes, if this stream can be made with them."""
        if section.is_msrp and section.port == 0:
            raise StreamRefused("the peer refused the stream (port 0)")
        if not section.is_msrp or section.msrp is None:
            raise StreamRefused("not an MSRP media section: m=%s ... %s"
                                % (section.kind, section.proto))
        remote = section.msrp
        if self.relay is None and len(remote.path) == 1:
            # Both direct: the peer's URI is where the connection goes (or comes from). A
            # peer behind a relay is reached as its relay says, hop by hop.
            if remote.path[0].use_tls != self.use_tls:
                raise StreamRefused("the peer's path is %s, this stream %s: no downgrade, "
                                    "no surprise" % ("msrps" if remote.path[0].use_tls
                                                     else "msrp",
                                                     "msrps" if self.use_tls else "msrp"))
            if self.use_tls and remote.fingerprint is None:
                raise StreamRefused("a direct msrps path without a=fingerprint: the peer's "
                                    "certificate could not be checked")
        return remote

    def _path_changed(self, path: List[URI]) -> None:
        """Our relay gave a new Use-Path: our section says it from now on."""
        if self.local_media is not None:
            self.local_media.path = list(path)
        if self.on_path_changed is not None:
            self.on_path_changed(path)

    def _cema_address(self) -> Optional[Tuple[str, int]]:
        """Where an active direct stream connects when both sides use CEMA (RFC 6714):
        the peer's ``c=``/``m=`` address instead of its path's first URI."""
        assert self.remote is not None and self.remote.msrp is not None
        ours = self.local_media is not None and self.local_media.cema
        if self.role != "active" or not (ours and self.remote.msrp.cema) \
                or self.remote.connection is None:
            return None
        return self.remote.connection, self.remote.port

    def _section(self, path: List[URI]) -> str:
        assert self.local_media is not None
        lines = [media_line(path)]
        if self.relay is None:
            host = path[-1].host or ""
            lines.append("c=IN %s %s" % ("IP6" if ":" in host else "IP4", host))
        return "\r\n".join(lines) + "\r\n" + self.local_media.to_lines()


class ChatStream(MSRPStream):
    """A chat: ``sendrecv``, taking ``text/plain`` and CPIM by default, and in CPIM text,
    delivery and display notifications and typing indications (:mod:`msrplib.chat`).

    Once started, :attr:`chat` is its :class:`~msrplib.chat.ChatSession`:
    :meth:`send_text` wraps in CPIM with an IMDN request when the peer's SDP allows,
    :meth:`composing` sends typing indications, :meth:`displayed` a display
    notification. Without a ``receiver`` of the application's own, incoming messages are
    unwrapped for ``on_message(ChatMessage)`` and delivery notifications go back on
    their own; ``on_notification(SentChat, Notification)`` hears those about messages
    sent here and ``on_composing(state)`` the peer's typing. ``local_identity`` and
    ``remote_identity`` (``msrplib.cpim.Address``, the SIP From and To, say) go in the
    CPIM headers; ``notifications`` is what each message asks for.
    """

    default_accept_types = ("message/cpim", "text/plain")
    default_accept_wrapped_types = CHAT_WRAPPED_TYPES

    def __init__(self, *, local_identity: Optional[Address] = None,
                 remote_identity: Optional[Address] = None,
                 notifications: Sequence[str] = ("positive-delivery", "display"),
                 on_message: Optional[Callable[[ChatMessage], Any]] = None,
                 on_notification: Optional[Callable[[SentChat, Notification], Any]] = None,
                 on_composing: Optional[Callable[[str], Any]] = None,
                 **options: Any) -> None:
        super().__init__(**options)
        self.local_identity = local_identity
        self.remote_identity = remote_identity
        self.notifications = tuple(notifications)
        self.on_message = on_message
        self.on_notification = on_notification
        self.on_composing = on_composing
        self._chat_receiver: Optional[ChatReceiver] = None
        if self.receiver is None:
            self.receiver = self._chat_receiver = ChatReceiver()
        #: The chat layer, once the stream has started.
        self.chat: Optional[ChatSession] = None

    def send_text(self, text: str, content_type: str = "text/plain") -> SentChat:
        """Send ``text`` (see :meth:`msrplib.chat.ChatSession.send_text`)."""
        return self._started_chat().send_text(text, content_type)

    def composing(self) -> None:
        """The user typed (see :meth:`msrplib.chat.ChatSession.composing`)."""
        self._started_chat().composing()

    def displayed(self, message: ChatMessage) -> None:
        """``message`` was shown (see :meth:`msrplib.chat.ChatSession.displayed`)."""
        self._started_chat().displayed(message)

    def _started_chat(self) -> ChatSession:
        if self.chat is None:
            raise RuntimeError("the stream has not started")
        return self.chat

    def _started(self, session: MSRPSession) -> None:
        assert self.remote is not None and self.remote.msrp is not None
        self.chat = ChatSession(
            session, self.remote.msrp.accept_types, self.remote.msrp.accept_wrapped_types,
            takes_wrapped=self.accept_wrapped_types + self.accept_types,
            local=self.local_identity, remote=self.remote_identity,
            notifications=self.notifications, on_message=self.on_message,
            on_notification=self.on_notification, on_composing=self.on_composing)
        if self._chat_receiver is not None:
            self._chat_receiver.attach(self.chat)


class _FileReceiver(MessageReceiver):
    """Writes the file (or the part of it the transfer carries) into its destination and
    checks it against the selector: size, and the hash once the file is whole."""

    def __init__(self, stream: FileTransferStream) -> None:
        self.stream = stream

    def message_started(self, message: IncomingMessage) -> Any:
        """Where the file's bytes go, once it is sure they are the ones expected: one
        message, announcing the size the offer (and its range) gives."""
        stream = self.stream
        if stream.taken or stream.received.called:
            raise MSRPError("a file transfer carries one message", code=403,
                            comment="One file per stream")
        expected = stream.expected_size
        if expected is not None and message.size != expected:
            raise MSRPError("%s bytes announced; the offer said %d"
                            % ("an unknown number of" if message.size is None
                               else message.size, expected),
                            code=413 if (message.size or 0) > expected else 400)
        stream.taken = True
        start = 0 if stream.file_range is None else stream.file_range.start - 1
        return FilePart(stream.destination, start, expected)

    def message_received(self, message: IncomingMessage) -> Any:
        """Check the file in a thread (its hash reads all of it); the success REPORT the
        sender asked for waits for the check, and a failure REPORT tells of a mismatch."""
        stream = self.stream

        def checked(error: Optional[FileHashMismatch]) -> None:
            if stream.received.called:  # the session ended while the file was checked
                return
            if error is not None:
                stream.received.errback(Failure(error))
                raise error
            stream.received.callback(message)

        return deferToThread(stream.check_received, message).addCallback(checked)

    def message_failed(self, message: IncomingMessage, reason: Failure) -> None:
        if not self.stream.received.called:
            self.stream.received.errback(reason)

    def message_refused(self, chunk: MSRPData, error: MSRPError) -> None:
        """A message refused at its start: the file's own, when none was taken yet (its
        size was not the offer's); a second message leaves the first to its fate."""
        if not self.stream.taken and not self.stream.received.called:
            self.stream.received.errback(Failure(error))


class FileTransferStream(MSRPStream):
    """A file transfer (RFC 5547): one file, or a part of it (``a=file-range``), one way.

    The sending side has a ``source`` (an open binary file), the receiving side a
    ``destination`` (an open binary file, ``w+b``). Either may make the offer:

    - the sender with :meth:`offering` (the file's selector, ``sendonly``), and the
      receiver answers with ``FileTransferStream(destination=...)``;
    - the receiver with :meth:`resuming`, to get the rest of a file a transfer left
      unfinished (``recvonly``, the selector, and ``a=file-range`` from the first byte it
      lacks), and the sender answers with ``FileTransferStream(source=...)``, which checks
      that the selector is its file's.

    Once started, the sender calls :meth:`send`: only the bytes of the range, when there
    is one. On the receiving side ``received`` fires with the ``IncomingMessage`` once the
    bytes are in place, their size is what was offered, and, when the file is whole, its
    hash is the selector's; else it fails with ``FileHashMismatch`` (a failure REPORT goes
    back) or with the reason the transfer failed.
    """

    default_accept_types = ("*",)

    def __init__(self, *, source: Optional[BinaryIO] = None,
                 destination: Optional[BinaryIO] = None, **options: Any) -> None:
        if (source is None) == (destination is None):
            raise ValueError("a file transfer has a source (sending) or a destination "
                             "(receiving)")
        options.setdefault("direction", "sendonly" if source is not None else "recvonly")
        super().__init__(**options)
        self.source = source
        self.destination = destination
        self.file_selector: Optional[FileSelector] = None
        self.file_transfer_id: Optional[str] = None
        self.file_range: Optional[FileRange] = None
        #: On the receiving side: fires with the file's ``IncomingMessage`` once checked.
        self.received: Deferred[IncomingMessage] = Deferred()
        #: Whether the file's message has started to arrive (a stream carries one).
        self.taken = False
        #: The sending side's own file, hashed as an offer asks (see make_answer).
        self._own_selector: Optional[FileSelector] = None
        if destination is not None and self.receiver is None:
            self.receiver = _FileReceiver(self)

    @classmethod
    def offering(cls, source: BinaryIO, type: str = "application/octet-stream",
                 name: Optional[str] = None, file_range: Optional[FileRange] = None,
                 selector: Optional[FileSelector] = None,
                 **options: Any) -> FileTransferStream:
        """A stream that offers the binary file ``source`` (read from where it is), or the
        part of it ``file_range`` names: its selector (name, type, size, SHA-1 hash) goes
        in the offer, ``sendonly``.

        The hash reads the whole file, here, in the reactor's thread: for a big file,
        make the selector in a thread first and pass it as ``selector``
        (``yield deferToThread(FileSelector.for_file, path, type)``)."""
        stream = cls(source=source, **options)
        stream.file_selector = selector or FileSelector.for_file(
            source, type, name or os.path.basename(getattr(source, "name", "") or "file"))
        stream.file_transfer_id = os.urandom(16).hex()
        stream.file_range = file_range
        return stream

    @classmethod
    def resuming(cls, destination: BinaryIO, selector: FileSelector,
                 **options: Any) -> FileTransferStream:
        """A stream that asks, ``recvonly``, for the rest of the file ``selector`` names,
        of which ``destination`` holds the first bytes (what an interrupted transfer
        wrote): its offer gives ``a=file-range`` from the first byte it lacks."""
        have = destination.seek(0, os.SEEK_END)
        if selector.size is not None and have >= selector.size:
            raise ValueError("the destination holds the whole file already")
        stream = cls(destination=destination, **options)
        stream.file_selector = selector
        stream.file_transfer_id = os.urandom(16).hex()
        stream.file_range = FileRange(have + 1, selector.size)
        stream._fit_size_limit()
        return stream

    def send(self, **options: Any) -> Deferred[str]:
        """Send the file, or the part of it the range names, over the started session
        (``send_message`` options, such as ``progress``, pass through); fires as
        ``send_message`` does, with a success REPORT asked for."""
        if self.session is None or self.source is None or self.file_selector is None:
            raise RuntimeError("send() needs a source and a started session")
        options.setdefault("success_report", "yes")
        body: Any = self.source
        if self.file_range is not None:
            start = self.file_range.start - 1
            stop = self.file_range.stop
            body = FilePart(self.source, self.source.tell() + start,
                            None if stop is None else stop - start)
        return self.session.send_message(
            body, self.file_selector.type or "application/octet-stream",
            headers={"Content-Disposition": attachment_header(self.file_selector.name)
                     if self.file_selector.name else "attachment"},
            **options)

    @property
    def expected_size(self) -> Optional[int]:
        """The bytes the transfer carries: the file's size, or its range's length."""
        selector = self.file_selector
        if selector is None or selector.size is None:
            return None
        if self.file_range is None:
            return selector.size
        return (self.file_range.stop or selector.size) - self.file_range.start + 1

    @inlineCallbacks
    def make_answer(self, offer: MediaSection, setup: Optional[str] = None) -> Any:
        """See :meth:`MSRPStream.make_answer`. The sending side answering a receiver's
        offer (a resume) hashes its own file first, in a thread: a big file must not hold
        the reactor up."""
        wanted = offer.msrp.file_selector if offer.msrp is not None else None
        if self.source is not None and wanted is not None:
            algorithm = wanted.hash[0] if wanted.hash is not None else "sha-1"
            if algorithm in FILE_HASH_ALGORITHMS:
                self._own_selector = yield deferToThread(
                    FileSelector.for_file, self.source, wanted.type, wanted.name, algorithm)
        section = yield super().make_answer(offer, setup)
        return section

    def check_received(self, message: IncomingMessage) -> Optional[FileHashMismatch]:
        """What is wrong with the file now that ``message`` brought its bytes, if anything:
        the file (the destination from its start) must be the selector's size and hash."""
        selector, destination = self.file_selector, self.destination
        assert selector is not None and destination is not None
        destination.flush()
        whole = destination.seek(0, os.SEEK_END)
        if selector.size is not None and whole != selector.size:
            return FileHashMismatch("the file is %d bytes; the offer said %d"
                                    % (whole, selector.size))
        if selector.hash is not None:
            destination.seek(0)
            if not selector.matches_digest(file_digest(destination, selector.hash[0])):
                return FileHashMismatch("the file's %s hash is not the offer's"
                                        % selector.hash[0])
        return None

    def _media(self, path: List[URI], setup: str, direction: str, cema: bool) -> MSRPMedia:
        media = super()._media(path, setup, direction, cema)
        media.file_selector = self.file_selector
        media.file_transfer_id = self.file_transfer_id
        media.file_range = self.file_range
        if self.source is not None:
            media.file_disposition = "attachment"
        return media

    def _answered(self, offer: MSRPMedia) -> None:
        """Check the offer's file attributes before anything is prepared for them."""
        selector = offer.file_selector
        if selector is None:
            raise StreamRefused("a file transfer offer without a=file-selector")
        if selector.hash is not None and selector.hash[0] not in FILE_HASH_ALGORITHMS:
            raise StreamRefused("a file hashed with %s cannot be checked (%s can)"
                                % (selector.hash[0], ", ".join(FILE_HASH_ALGORITHMS)))
        file_range = offer.file_range
        if file_range is not None and selector.size is not None and (
                file_range.start > selector.size
                or (file_range.stop is not None and file_range.stop > selector.size)):
            raise StreamRefused("a=file-range:%s is not within the file's %d bytes"
                                % (file_range, selector.size))
        if self.source is not None:
            ours = self._own_selector
            assert ours is not None
            if selector.size not in (None, ours.size) or \
                    (selector.hash is not None and selector.hash != ours.hash):
                raise StreamRefused("the offer asks for another file than ours")
            if file_range is not None and (file_range.start > (ours.size or 0) or (
                    file_range.stop is not None and file_range.stop > (ours.size or 0))):
                raise StreamRefused("a=file-range:%s is not within our file" % file_range)
        elif file_range is not None:
            # The receiver takes only a range that makes its file whole: what it holds is
            # the file up to the range, and the range goes to the file's end. Anything
            # else would leave a file whose hash cannot be checked.
            assert self.destination is not None
            have = self.destination.seek(0, os.SEEK_END)
            if file_range.start != have + 1 or file_range.stop not in (None, selector.size):
                raise StreamRefused("a=file-range:%s does not finish the %d bytes held"
                                    % (file_range, have))
        self.file_selector = selector
        self.file_transfer_id = offer.file_transfer_id
        self.file_range = file_range
        self._fit_size_limit()

    def _fit_size_limit(self) -> None:
        """A receiving stream takes the file it answered, however big: its session's
        ``max_message_size`` is raised to the file's (or range's) size, which is also the
        only size a message may announce (see ``_FileReceiver``)."""
        expected = self.expected_size
        settings = self.session_settings or SessionSettings()
        limit = settings.max_message_size
        if self.destination is not None and expected is not None and \
                limit is not None and expected > limit:
            self.session_settings = dataclasses.replace(settings, max_message_size=expected)

    def _started(self, session: MSRPSession) -> None:
        if self.destination is not None:
            session.closed.observe().addCallback(self._session_ended)

    def _session_ended(self, ending: Any) -> None:
        """The session ended: a file that did not arrive never will."""
        if not self.received.called:
            self.received.errback(Failure(MSRPSessionError(
                "the session ended before the file arrived: %s" % ending)))
