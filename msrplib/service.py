"""An MSRP endpoint as a Twisted service, run by ``twistd msrp`` (twisted/plugins/).

The service makes MSRP sessions on request, directly or through a relay, files what
arrives in an inbox directory (:mod:`msrplib.inbox`) and sends files from its outbox
directories (:mod:`msrplib.outbox`). A SIP stack in another process (or a person with
curl) drives it through the local JSON control API of :mod:`msrplib.control`, which calls
this service's methods; :mod:`msrplib.daemon` puts the two together for ``twistd``. The
service uses the library's public API only, as any application would.

Sessions are bounded: at most ``max_sessions`` exist at once, and one that was prepared
but never completed, or that has ended, is forgotten ``session_expiry`` seconds later.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib.connect import (AcceptorRelay, ConnectionSettings, ConnectorDirect, ConnectorRelay,
                             MSRPRelaySettings)
from msrplib.escape import escape_peer_text
from msrplib.inbox import Inbox, InboxReceiver
from msrplib.outbox import Outbox, attachment_header
from msrplib.protocol import URI, MSRPData, format_path
from msrplib.sdp import parse_path_attribute
from msrplib.session import IncomingMessage, MSRPSession, SessionEnded, SessionSettings
from msrplib.tls import Fingerprint, TLSIdentity

__all__ = ["EndpointOptions", "MSRPEndpointService", "ManagedSession", "SessionNotFound",
           "SessionStateError", "TooManySessions", "DEFAULT_MAX_SESSIONS",
           "DEFAULT_SESSION_EXPIRY", "EVENT_TEXT_LIMIT", "MAX_EVENT_TEXT"]

#: How many sessions may exist at once unless told otherwise (``--max-sessions``).
DEFAULT_MAX_SESSIONS = 1000

#: Seconds after which a session prepared but not completed, or one that has ended, is
#: forgotten unless told otherwise (``--session-expiry``).
DEFAULT_SESSION_EXPIRY = 300.0

#: Text messages up to this size are also put in their "message" event as ``text``
#: (``--event-text-limit``)...
EVENT_TEXT_LIMIT = 64 * 1024
#: ... and a session's events keep this much text in all (``--max-event-text``): past it
#: the oldest events lose their text (``text_dropped``), so the memory events take is
#: bounded whatever a peer sends.
MAX_EVENT_TEXT = 1024 * 1024


class SessionNotFound(KeyError):
    """No session with that id (the control API answers 404)."""


class SessionStateError(ValueError):
    """The session is not in the state the call needs (the control API answers 409)."""


class TooManySessions(Exception):
    """``max_sessions`` sessions exist already (the control API answers 429)."""


@dataclass
class EndpointOptions:
    """How the service's endpoint behaves; ``twistd msrp --help`` documents each one.

    ``host``: our address in direct sessions' URIs (and where passive ones listen).
    ``tls``: direct sessions use ``msrps`` with a generated certificate.
    ``relay``: go through this relay instead of directly. ``inbox``: where incoming
    messages are filed. ``outbox``: the directories whose regular files may be sent (none:
    sending files is off). ``traffic_log``: log every chunk's start line and headers (what
    the peer sent escaped). ``max_events``: events kept per session for the control API;
    ``event_text_limit``: text messages up to this size have their text in their event;
    ``max_event_text``: characters of text a session's events keep in all.
    ``max_sessions``: sessions that may exist at once. ``session_expiry``: seconds after
    which a session prepared but not completed, or one that has ended, is forgotten.
    """

    host: str = "127.0.0.1"
    tls: bool = False
    relay: Optional[MSRPRelaySettings] = None
    inbox: str = "msrp-inbox"
    outbox: List[str] = field(default_factory=list)
    traffic_log: bool = False
    session_settings: SessionSettings = field(default_factory=SessionSettings)
    connection_settings: ConnectionSettings = field(default_factory=ConnectionSettings)
    max_events: int = 1000
    event_text_limit: int = EVENT_TEXT_LIMIT
    max_event_text: int = MAX_EVENT_TEXT
    max_sessions: int = DEFAULT_MAX_SESSIONS
    session_expiry: float = DEFAULT_SESSION_EXPIRY


class _InboxReceiver(InboxReceiver):
    """Files one session's incoming messages and reports them as events."""

    def __init__(self, managed: ManagedSession, inbox: Inbox) -> None:
        super().__init__(inbox, managed.id)
        self.managed = managed

    def filed(self, message: IncomingMessage, path: Path) -> None:
        event: Dict[str, Any] = {"type": "message", "message_id": message.message_id,
                                 "content_type": message.content_type,
                                 "size": message.received, "file": str(path)}
        if not (message.content_type or "").startswith("text/") or \
                message.received > self.managed.event_text_limit:
            self.managed.add_event(event)
            return

        def read(text: bytes) -> None:
            event["text"] = text.decode("utf-8", "replace")
            self.managed.add_event(event)

        def unread(failure: Failure) -> None:
            self.managed.add_event(event)  # filed all the same: only its text is missing

        self.inbox.run_blocking(path.read_bytes).addCallbacks(read, unread)

    def discarded(self, message: IncomingMessage, reason: Failure) -> None:
        self.managed.add_event({"type": "message-failed", "message_id": message.message_id,
                                "received": message.received,
                                "reason": str(reason.value)})


class ManagedSession:
    """One session the service runs: its endpoint, state, MSRP session and events."""

    def __init__(self, session_id: str, setup: str, endpoint: Any, max_events: int,
                 event_text_limit: int = EVENT_TEXT_LIMIT,
                 max_event_text: int = MAX_EVENT_TEXT) -> None:
        self.id = session_id
        self.setup = setup
        self.endpoint = endpoint
        self.state = "preparing"
        self.local_path: List[URI] = []
        self.remote_path: List[URI] = []
        self.session: Optional[MSRPSession] = None
        self.fingerprint: Optional[str] = None
        self.events: Deque[Dict[str, Any]] = deque()
        self.max_events = max_events
        #: Text messages up to this many bytes have their text in their event, and the
        #: events kept hold ``max_event_text`` characters of text in all at most (the
        #: oldest lose theirs first).
        self.event_text_limit = event_text_limit
        self.max_event_text = max_event_text
        self._event_text = 0
        self._sequence = itertools.count(1)
        #: The timer that forgets the session (while it is prepared, or once it ended).
        self.expiry: Any = None

    def stop_expiry(self) -> None:
        """Cancel the timer that would forget the session."""
        if self.expiry is not None and self.expiry.active():
            self.expiry.cancel()
        self.expiry = None

    def add_event(self, event: Dict[str, Any]) -> None:
        """Record an event for ``GET /sessions/<id>/events``, within the bounds."""
        event["seq"] = next(self._sequence)
        events = self.events
        events.append(event)
        self._event_text += len(event.get("text", ""))
        while len(events) > self.max_events:
            self._event_text -= len(events.popleft().get("text", ""))
        for old in events:
            if self._event_text <= self.max_event_text:
                break
            text = old.pop("text", None)
            if text is not None:
                self._event_text -= len(text)
                old["text_dropped"] = True

    def events_since(self, since: int) -> List[Dict[str, Any]]:
        """Events with a sequence number above ``since``."""
        return [event for event in self.events if event["seq"] > since]

    def describe(self) -> Dict[str, Any]:
        """The session as the control API shows it."""
        return {"id": self.id, "state": self.state, "setup": self.setup,
                "path": format_path(self.local_path),
                "remote_path": format_path(self.remote_path),
                "fingerprint": self.fingerprint}


class MSRPEndpointService(Service):
    """An MSRP endpoint as a service: sessions made, completed, used and closed on request
    (the control API's calls), what arrives filed in the inbox."""

    log = Logger()

    def __init__(self, options: EndpointOptions, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.options = options
        self.reactor = reactor
        self.inbox = Inbox(options.inbox, run_blocking=self._in_thread)
        self.outbox = Outbox(options.outbox)
        self.sessions: Dict[str, ManagedSession] = {}
        if options.traffic_log:
            options.connection_settings.traffic_log = self._log_chunk

    def _in_thread(self, function: Callable[[], Any]) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), function)

    def _log_chunk(self, direction: str, chunk: MSRPData) -> None:
        first = chunk.method if chunk.method is not None else "%s %s" % (
            chunk.code, chunk.comment or "")
        headers = "".join("\n  %s: %s" % (escape_peer_text(name), escape_peer_text(value))
                          for name, value in chunk.headers.items())
        self.log.info("{direction} MSRP {tid} {first}{headers}", direction=direction,
                      tid=escape_peer_text(chunk.transaction_id),
                      first=escape_peer_text(first), headers=headers)

    @inlineCallbacks
    def stopService(self) -> Any:
        """Close every session (each one's shutdown: what is queued goes first)."""
        Service.stopService(self)
        for managed in list(self.sessions.values()):
            yield self.close_session(managed.id)

    def get(self, session_id: str) -> ManagedSession:
        """The session with that id, or ``SessionNotFound``."""
        try:
            return self.sessions[session_id]
        except KeyError:
            raise SessionNotFound(session_id) from None

    def _expire_later(self, managed: ManagedSession) -> None:
        """Forget ``managed`` after ``session_expiry`` seconds, unless that is undone."""
        managed.stop_expiry()
        managed.expiry = self.reactor.callLater(self.options.session_expiry,
                                                self._expire, managed)

    def _expire(self, managed: ManagedSession) -> None:
        managed.expiry = None
        if self.sessions.get(managed.id) is managed:
            self.log.info("session {id} expired ({state})", id=managed.id, state=managed.state)
            self.close_session(managed.id)

    # What the control API asks for.

    @inlineCallbacks
    def create_session(self, setup: str = "active") -> Any:
        """Prepare a session; fire with it once its local path (for SDP) is known.

        ``setup`` ``active`` connects (or, through a relay, sends the binding chunk);
        ``passive`` waits for the peer. Fails with ``TooManySessions`` when
        ``max_sessions`` exist already. A session that is not completed within
        ``session_expiry`` seconds is forgotten.
        """
        if setup not in ("active", "passive"):
            raise ValueError("setup must be active or passive")
        if len(self.sessions) >= self.options.max_sessions:
            raise TooManySessions("%d sessions exist already: delete some first"
                                  % len(self.sessions))
        relay = self.options.relay
        settings = self.options.connection_settings
        options = self.options
        managed = ManagedSession(secrets.token_hex(6), setup, None, options.max_events,
                                 options.event_text_limit, options.max_event_text)
        if relay is not None:
            kind = ConnectorRelay if setup == "active" else AcceptorRelay
            endpoint: Any = kind(
                relay, reactor=self.reactor, settings=settings,
                on_path_changed=lambda path: self._relay_path_changed(managed, path),
                on_refresh_failed=lambda error: managed.add_event(
                    {"type": "relay-refresh-failed", "reason": str(error)}))
            local = None
        else:
            endpoint = ConnectorDirect(setup=setup, reactor=self.reactor, settings=settings)
            local = URI(host=self.options.host, use_tls=self.options.tls)
        managed.endpoint = endpoint
        self.sessions[managed.id] = managed
        try:
            managed.local_path = yield endpoint.prepare(local)
        except Exception:
            self.sessions.pop(managed.id, None)
            endpoint.cleanup()
            raise
        if self.sessions.get(managed.id) is not managed:
            endpoint.cleanup()
            raise SessionStateError("session %s was closed while it was prepared" % managed.id)
        if isinstance(managed.local_path[-1].credentials, TLSIdentity):
            managed.fingerprint = str(managed.local_path[-1].credentials.fingerprint())
        managed.state = "prepared"
        self._expire_later(managed)
        return managed

    @inlineCallbacks
    def complete_session(self, session_id: str, remote_path: str,
                         fingerprint: Optional[str] = None,
                         accept_types: Optional[List[str]] = None) -> Any:
        """Bind the session to the peer's ``a=path``; fire with it once connected.

        A connection bound after the session was closed (or expired) meanwhile, or that
        cannot be made a session, is closed rather than left open.
        """
        managed = self.get(session_id)
        if managed.state != "prepared":
            raise SessionStateError("session %s is %s, not prepared"
                                    % (session_id, managed.state))
        path = parse_path_attribute(remote_path)
        options = {} if fingerprint is None else {
            "remote_fingerprint": Fingerprint.parse(fingerprint)}
        managed.remote_path = path
        managed.state = "connecting"
        managed.stop_expiry()
        try:
            transport = yield managed.endpoint.complete(managed.remote_path, **options)
        except Exception as error:
            self._ended(managed, "failed", {"type": "failed", "reason": str(error)})
            raise
        finally:
            managed.endpoint.cleanup()
        if self.sessions.get(session_id) is not managed or managed.state != "connecting":
            transport.loseConnection()
            raise SessionStateError("session %s was closed while it connected" % session_id)
        try:
            managed.session = MSRPSession(transport, accept_types or ["*"],
                                          receiver=_InboxReceiver(managed, self.inbox),
                                          settings=self.options.session_settings,
                                          reactor=self.reactor)
        except Exception as error:
            transport.loseConnection()
            self._ended(managed, "failed", {"type": "failed", "reason": str(error)})
            raise
        managed.session.closed.observe().addCallback(self._closed, managed)
        managed.state = "connected"
        managed.add_event({"type": "connected"})
        return managed

    def _ended(self, managed: ManagedSession, state: str, event: Dict[str, Any]) -> None:
        managed.state = state
        managed.add_event(event)
        if self.sessions.get(managed.id) is managed:
            self._expire_later(managed)

    def _relay_path_changed(self, managed: ManagedSession, path: List[URI]) -> None:
        """The relay gave a new Use-Path: the session's path to offer its peer again."""
        managed.local_path = path
        managed.add_event({"type": "relay-path-changed", "path": format_path(path)})

    def _closed(self, ending: SessionEnded, managed: ManagedSession) -> None:
        event = {"type": "closed", "why": ending.why.value}
        if ending.error is not None:
            event["reason"] = str(ending.error)
        self._ended(managed, "closed", event)

    def _connected(self, session_id: str) -> MSRPSession:
        managed = self.get(session_id)
        if managed.session is None or managed.state != "connected":
            raise SessionStateError("session %s is %s, not connected"
                                    % (session_id, managed.state))
        return managed.session

    def send_text(self, session_id: str, text: str, content_type: str = "text/plain",
                  success_report: Optional[str] = None) -> Deferred[Any]:
        """Send a text message; fire with its Message-ID once delivered (``success_report``
        ``None``: the session's default, a success REPORT through a relay)."""
        session = self._connected(session_id)
        return session.send_message(text.encode("utf-8"), content_type,
                                    success_report=success_report)

    def send_file(self, session_id: str, path: str,
                  content_type: str = "application/octet-stream",
                  success_report: str = "yes") -> Deferred[Any]:
        """Send a regular file from the outbox; fire with its Message-ID once delivered.

        The file is opened in a thread, and only when the outbox allows it (else the
        Deferred fails with ``OutboxRefused``). Progress goes to the session's events as
        ``progress`` (at most every tenth).
        """
        self._connected(session_id)
        opened = self._in_thread(lambda: self.outbox.open(path))
        return opened.addCallback(self._send_opened, session_id, os.path.basename(path),
                                  content_type, success_report)

    def _send_opened(self, source: Any, session_id: str, name: str, content_type: str,
                     success_report: str) -> Deferred[Any]:
        try:
            session = self._connected(session_id)
            managed = self.get(session_id)
            steps = {"next": 0.0}

            def progress(done: int, total: Optional[int]) -> None:
                if total and done / total >= steps["next"]:
                    steps["next"] = done / total + 0.1
                    managed.add_event({"type": "progress", "file": name, "sent": done,
                                       "size": total})

            result = session.send_message(
                source, content_type, success_report=success_report, progress=progress,
                headers={"Content-Disposition": attachment_header(name)})
        except Exception:
            source.close()
            raise

        def finished(outcome: Any) -> Any:
            source.close()
            return outcome

        return result.addBoth(finished)

    def close_session(self, session_id: str) -> Deferred[Any]:
        """Shut the session down (or abandon it before it connected), and forget it."""
        managed = self.get(session_id)
        del self.sessions[session_id]
        managed.stop_expiry()
        managed.endpoint.cleanup()
        if managed.session is not None and not managed.session.closed.fired:
            return managed.session.shutdown()
        return succeed(None)
