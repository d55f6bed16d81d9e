"""Typing indications (is-composing, RFC 3994).

:class:`IsComposing` is the ``application/im-iscomposing+xml`` document: a state
(``active`` or ``idle``), and optionally when the user last typed, what kind of content,
and (for ``active``) how long the state holds unless refreshed.

Two small state machines run on a Twisted clock (``IReactorTime``: the reactor, or a
``task.Clock`` in tests):

- :class:`ComposingIndicator` on the typing side: the first keystroke sends ``active``;
  more typing keeps it, sending ``active`` again before its ``refresh`` runs out; no
  keystroke for ``idle_timeout`` seconds sends ``idle``; sending the message makes the
  state idle without an indication (the message says it).
- :class:`ComposingWatcher` on the reading side: ``active`` holds until its refresh
  interval passes without another indication (then it is ``idle``), an ``idle``
  indication, or a message from the same peer.

Documents from peers are parsed with defusedxml (no DTD, no entities) and checked; anything
else raises :class:`IsComposingParseError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from xml.etree.ElementTree import Element, SubElement, tostring

from msrplib._xml import parse_document
from msrplib.cpim import CPIMParseError, format_datetime, parse_datetime

__all__ = ["ISCOMPOSING_CONTENT_TYPE", "ISCOMPOSING_NAMESPACE", "IDLE_TIMEOUT",
           "REFRESH_INTERVAL", "REFRESH_LEAD", "ASSUMED_REFRESH", "MAX_ISCOMPOSING_BYTES",
           "IsComposingParseError", "IsComposing", "ComposingIndicator", "ComposingWatcher"]

#: The Content-Type of an is-composing document.
ISCOMPOSING_CONTENT_TYPE = "application/im-iscomposing+xml"
#: Its XML namespace.
ISCOMPOSING_NAMESPACE = "urn:ietf:params:xml:ns:im-iscomposing"
#: Seconds without a keystroke before the typing side goes idle (RFC 3994's 15 s).
IDLE_TIMEOUT = 15.0
#: The refresh interval the typing side announces with ``active`` (RFC 3994 asks for at
#: least 60 s).
REFRESH_INTERVAL = 90
#: Seconds before its refresh interval runs out that a still active side says so again.
REFRESH_LEAD = 5.0
#: The refresh interval the reading side assumes for an ``active`` without one (RFC 3994).
ASSUMED_REFRESH = 120
#: The largest is-composing document taken from a peer.
MAX_ISCOMPOSING_BYTES = 16 * 1024


class IsComposingParseError(ValueError):
    """An is-composing document that does not follow RFC 3994, or hostile XML."""


def _tag(name: str) -> str:
    return "{%s}%s" % (ISCOMPOSING_NAMESPACE, name)


@dataclass(frozen=True)
class IsComposing:
    """An is-composing document: ``state`` (``active`` or ``idle``), ``last_active``,
    ``content_type`` (what is being composed) and ``refresh`` (seconds; ``active`` only)."""

    state: str
    last_active: Optional[datetime] = None
    content_type: Optional[str] = None
    refresh: Optional[int] = None

    def __post_init__(self) -> None:
        if self.state not in ("active", "idle"):
            raise ValueError("no is-composing state %r" % (self.state,))
        if self.refresh is not None and (self.refresh <= 0 or self.state != "active"):
            raise ValueError("a refresh is a positive number of seconds, for active only")

    def to_xml(self) -> bytes:
        root = Element("isComposing", xmlns=ISCOMPOSING_NAMESPACE)
        SubElement(root, "state").text = self.state
        if self.last_active is not None:
            SubElement(root, "lastactive").text = format_datetime(self.last_active)
        if self.content_type is not None:
            SubElement(root, "contenttype").text = self.content_type
        if self.refresh is not None:
            SubElement(root, "refresh").text = str(self.refresh)
        document = bytes(tostring(root, "utf-8", xml_declaration=False))
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + document

    @classmethod
    def from_xml(cls, data: bytes) -> IsComposing:
        """Parse a document safely; ``IsComposingParseError`` for anything else."""
        try:
            root = parse_document(data, MAX_ISCOMPOSING_BYTES, ISCOMPOSING_NAMESPACE,
                                  "isComposing", "document")
        except ValueError as error:
            raise IsComposingParseError(str(error)) from None

        def text(name: str) -> Optional[str]:
            found = root.findall(_tag(name))
            if len(found) > 1:
                raise IsComposingParseError("more than one <%s>" % name)
            return (found[0].text or "").strip() if found else None

        state = text("state")
        last_active, refresh = text("lastactive"), text("refresh")
        if refresh is not None and not re.fullmatch(r"[0-9]{1,9}", refresh):
            raise IsComposingParseError("not a refresh interval: %r" % refresh[:20])
        try:
            return cls(state or "",
                       parse_datetime(last_active) if last_active is not None else None,
                       text("contenttype"), int(refresh) if refresh is not None else None)
        except (ValueError, CPIMParseError) as error:
            raise IsComposingParseError(str(error)) from None


class ComposingIndicator:
    """The typing side: call :meth:`typing` on each keystroke and :meth:`message_sent`
    when the message goes; ``send(document)`` is called with each indication to send."""

    def __init__(self, send: Callable[[IsComposing], Any], clock: Any,
                 content_type: Optional[str] = "text/plain",
                 refresh: int = REFRESH_INTERVAL, idle_timeout: float = IDLE_TIMEOUT) -> None:
        if refresh <= REFRESH_LEAD:
            raise ValueError("a refresh interval over %s s" % REFRESH_LEAD)
        self.send = send
        self.clock = clock
        self.content_type = content_type
        self.refresh = refresh
        self.idle_timeout = idle_timeout
        self.state = "idle"
        self._last_typed = 0.0
        self._idle_timer: Any = None
        self._refresh_timer: Any = None

    def typing(self) -> None:
        """A keystroke: ``active`` goes out unless it holds already."""
        self._last_typed = self.clock.seconds()
        if self._idle_timer is None:
            self._idle_timer = self.clock.callLater(self.idle_timeout, self._check_idle)
        if self.state == "idle":
            self.state = "active"
            self._send_active()

    def message_sent(self) -> None:
        """The message went: idle, with nothing sent (the peer takes a message as
        the end of composing)."""
        self.stop()

    def stop(self) -> None:
        """Idle now, sending nothing; no timer is left."""
        self.state = "idle"
        for timer in (self._idle_timer, self._refresh_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._idle_timer = self._refresh_timer = None

    def _send_active(self) -> None:
        self._refresh_timer = self.clock.callLater(self.refresh - REFRESH_LEAD,
                                                   self._refresh_active)
        self.send(IsComposing("active", content_type=self.content_type,
                              refresh=self.refresh))

    def _refresh_active(self) -> None:
        self._refresh_timer = None
        if self.state == "active":
            self._send_active()

    def _check_idle(self) -> None:
        """No keystroke for ``idle_timeout``: idle, and say so; else look again when
        there would have been none for that long."""
        self._idle_timer = None
        quiet = self.clock.seconds() - self._last_typed
        if quiet < self.idle_timeout:
            self._idle_timer = self.clock.callLater(self.idle_timeout - quiet,
                                                    self._check_idle)
            return
        last = datetime.fromtimestamp(self._last_typed, timezone.utc).replace(microsecond=0)
        self.stop()
        self.send(IsComposing("idle", last_active=last, content_type=self.content_type))


class ComposingWatcher:
    """The reading side: feed it the peer's indications (:meth:`received`) and messages
    (:meth:`message_received`); ``on_change(state)`` hears ``active`` and ``idle``."""

    def __init__(self, clock: Any, on_change: Callable[[str], Any]) -> None:
        self.clock = clock
        self.on_change = on_change
        self.state = "idle"
        self._timer: Any = None

    def received(self, document: IsComposing) -> None:
        """An indication from the peer."""
        self._cancel()
        if document.state == "active":
            self._timer = self.clock.callLater(document.refresh or ASSUMED_REFRESH,
                                               self._expired)
        self._become(document.state)

    def message_received(self) -> None:
        """A message from the peer: it is no longer composing it."""
        self._cancel()
        self._become("idle")

    def stop(self) -> None:
        """No timer is left (the session ended)."""
        self._cancel()

    def _expired(self) -> None:
        self._timer = None
        self._become("idle")

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _become(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_change(state)
