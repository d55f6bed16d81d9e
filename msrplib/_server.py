"""MSRPServer: one listening port shared by many sessions, dispatching on session-id."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from twisted.internet.defer import CancelledError, Deferred, fail, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._bind import ConnectionSettings, accept_binding, check_fingerprint, ends_with
from msrplib._factories import MSRPServerFactory
from msrplib._parser import ChunkStarted, ParserEvent
from msrplib._rules import should_respond
from msrplib._tlsrecords import TLSFactory
from msrplib._uri import URI
from msrplib._wire import MSRPData, make_response
from msrplib.errors import MSRPBindSessionTimeout, MSRPError
from msrplib.tls import Fingerprint, TLSIdentity
from msrplib.transport import MSRPProtocol

__all__ = ["MSRPServer", "default_host", "new_session_id", "tls_options_for",
           "as_fingerprint"]


#: The reason a connection that sent its binding SEND before ``complete()`` expected it is
#: not read meanwhile (:meth:`MSRPProtocol.pause_reading`).
PARKED = "parked until complete() expects it"


def default_host() -> str:
    """This machine's address as its own name resolves, else ``127.0.0.1``.

    Used when a local URI has no host; set ``URI.host`` yourself when you know better.
    """
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def new_session_id() -> str:
    """A session-id with 80 random bits, hard to guess as RFC 4975 section 14.1 asks."""
    return secrets.token_hex(10)


def tls_options_for(uri: URI) -> Any:
    """The TLS options of a local ``msrps`` URI, generating a ``TLSIdentity`` if it has none.

    ``URI.credentials`` may be a :class:`~msrplib.tls.TLSIdentity` or any Twisted TLS
    context factory; a generated identity is stored there, so its fingerprint can go in SDP.
    """
    if uri.credentials is None:
        uri.credentials = TLSIdentity.generate()
    if isinstance(uri.credentials, TLSIdentity):
        return uri.credentials.options()
    return uri.credentials


def as_fingerprint(value: Union[None, str, Fingerprint]) -> Optional[Fingerprint]:
    """Accept a fingerprint as SDP text or as a :class:`~msrplib.tls.Fingerprint`."""
    if value is None or isinstance(value, Fingerprint):
        return value
    return Fingerprint.parse(value)


def _interface(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return ""
    return host


@dataclass
class _Waiter:
    """A ``complete()`` call waiting for its connection."""

    remote_path: Optional[List[URI]]
    local_uri: Optional[URI]
    fingerprint: Optional[Fingerprint]
    result: Deferred
    timer: Any = None


@dataclass
class _Pending:
    """A connection that has not bound yet, with what it sent so far."""

    protocol: MSRPProtocol
    timer: Any
    first: Optional[ParserEvent] = None
    head: Optional[MSRPData] = None
    local_uri: Optional[URI] = None
    held: List[ParserEvent] = field(default_factory=list)
    paused: bool = False


class MSRPServer:
    """Listens for the passive side of many sessions on shared ports (the seed's MSRPServer).

    There is one listening port per (interface, port, TLS). ``prepare()`` registers a local
    URI (starting a port if none fits), ``complete()`` waits for the connection that binds to
    it from the given remote path, ``cleanup()`` forgets the URI. A first chunk for an
    unknown session-id is answered 481 and its connection closed; a connection that has not
    bound within the bind timeout is closed.
    """

    log = Logger()

    def __init__(self, logger: Any = None, *, reactor: Any = None,
                 settings: Optional[ConnectionSettings] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.logger = logger
        self.settings = settings or ConnectionSettings()
        self._ports: Dict[Tuple[str, int, bool], Tuple[Any, Any]] = {}
        self._expected: Dict[str, URI] = {}
        self._waiters: List[_Waiter] = []
        self._pending: Dict[MSRPProtocol, _Pending] = {}

    # The seed API.

    def prepare(self, local_uri: Optional[URI] = None, logger: Any = None) -> Deferred:
        """Listen for ``local_uri`` (filled in place: host, port, session-id, credentials)
        and fire with the full local path ``[local_uri]``."""
        uri = local_uri if local_uri is not None else URI()
        if uri.host is None:
            uri.host = default_host()
        if uri.session_id is None:
            uri.session_id = new_session_id()
        try:
            self._listen(uri)
        except Exception:
            return fail()
        self._expected[uri.session_id] = uri
        return succeed([uri])

    def complete(self, full_remote_path: Optional[List[URI]], local_uri: Optional[URI] = None,
                 remote_fingerprint: Union[None, str, Fingerprint] = None) -> Deferred:
        """Fire with the ``MSRPTransport`` of the connection that binds from
        ``full_remote_path`` (to ``local_uri``, when given).

        ``full_remote_path`` ``None`` (with a ``local_uri``) takes whoever binds to that URI
        first, for tools that do not learn the peer's path; the peer's path is then the
        binding chunk's From-Path.

        Fails with ``MSRPBindSessionTimeout`` after the bind timeout, with
        ``FingerprintMismatch`` when a TLS peer's certificate does not match
        ``remote_fingerprint``, and with ``CancelledError`` on ``cleanup``/``stop``.
        """
        if full_remote_path is None and local_uri is None:
            raise ValueError("accepting any peer needs the local_uri it binds to")
        remote = None if full_remote_path is None else list(full_remote_path)
        waiter = _Waiter(remote, local_uri, as_fingerprint(remote_fingerprint), Deferred())
        for pending in list(self._pending.values()):
            if pending.head is not None and self._matches(waiter, pending):
                self._bind(waiter, pending)
                return waiter.result
        seconds = self.settings.bind_seconds()
        waiter.timer = self.reactor.callLater(seconds, self._waiter_timed_out, waiter, seconds)
        self._waiters.append(waiter)
        return waiter.result

    def cleanup(self, local_uri: URI) -> None:
        """Forget ``local_uri``: its waiting ``complete()`` fails with ``CancelledError`` and
        connections waiting to bind to it are closed."""
        if self._expected.get(local_uri.session_id or "") == local_uri:
            del self._expected[local_uri.session_id or ""]
        for waiter in [w for w in self._waiters if w.local_uri == local_uri]:
            self._drop_waiter(waiter, CancelledError("cleanup(%s)" % local_uri))
        for pending in list(self._pending.values()):
            if pending.local_uri == local_uri:
                pending.protocol.close()

    def stop(self) -> Deferred:
        """Stop listening, close connections that have not bound, cancel every waiter."""
        for waiter in list(self._waiters):
            self._drop_waiter(waiter, CancelledError("MSRPServer stopped"))
        for pending in list(self._pending.values()):
            pending.protocol.transport.abortConnection()
        ports, self._ports = list(self._ports.values()), {}
        self._expected.clear()
        return gatherResults([port.stopListening() or succeed(None)
                              for port, _ in ports]).addCallback(lambda _: None)

    @property
    def listening_ports(self) -> List[Tuple[str, int, bool]]:
        """``(interface, port, tls)`` of every port listening now."""
        return list(self._ports)

    # Listening.

    def _listen(self, uri: URI) -> None:
        interface = _interface(uri.host or "")
        port_number = uri.port or 0
        key = None
        if port_number == 0:
            key = next((k for k in self._ports if k[0] == interface and k[2] == uri.use_tls),
                       None)
        elif (interface, port_number, uri.use_tls) in self._ports:
            key = (interface, port_number, uri.use_tls)
        if key is not None:
            credentials = self._ports[key][1]
            if uri.use_tls:
                if uri.credentials is None:
                    uri.credentials = credentials
                elif uri.credentials is not credentials:
                    raise ValueError("port %d already listens with other TLS credentials"
                                     % key[1])
            uri.port = key[1]
            return
        factory = MSRPServerFactory(self._connection_made, self.settings.parser_limits,
                                     self.settings.traffic_log, self.reactor)
        if uri.use_tls:
            options = tls_options_for(uri)
            port = self.reactor.listenTCP(port_number,
                                          TLSFactory(options, False, factory, self.reactor),
                                          self.settings.listen_backlog, interface)
        else:
            port = self.reactor.listenTCP(port_number, factory, self.settings.listen_backlog,
                                          interface)
        uri.port = port.getHost().port
        self._ports[(interface, uri.port, uri.use_tls)] = (port, uri.credentials)

    # Connections, from accept to bind.

    def _connection_made(self, protocol: MSRPProtocol) -> bool:
        if len(self._pending) >= self.settings.max_unbound_connections:
            self.log.warn("refusing a connection: {count} are waiting to bind",
                          count=len(self._pending))
            return False
        timer = self.reactor.callLater(self.settings.bind_seconds(), self._unbound_timed_out,
                                       protocol)
        self._pending[protocol] = _Pending(protocol, timer)
        protocol.set_receiver(lambda event: self._event(protocol, event))
        protocol.lost.observe().addErrback(lambda reason: self._forget(protocol))
        return True

    def _event(self, protocol: MSRPProtocol, event: ParserEvent) -> None:
        pending = self._pending.get(protocol)
        if pending is None:
            return
        if pending.first is not None:
            pending.held.append(event)
            return
        pending.first = event
        head = event.chunk if isinstance(event, ChunkStarted) else event
        if not isinstance(head, MSRPData) or head.method is None:
            self.log.warn("closing {peer}: it did not start with a request",
                          peer=protocol.transport.getPeer())
            protocol.close()
            return
        try:
            to_path = head.to_path or []
            from_path = head.from_path or []
        except MSRPError as error:
            self._refuse(protocol, head, 400, str(error))
            return
        local = self._expected.get(to_path[-1].session_id or "") if to_path else None
        if local is None or to_path != [local]:
            self._refuse(protocol, head, 481, "no session %s here" % to_path[-1:])
            return
        pending.head, pending.local_uri = head, local
        for waiter in self._waiters:
            if self._matches(waiter, pending):
                self._bind(waiter, pending)
                return
        if any(w.local_uri == local for w in self._waiters):
            self._refuse(protocol, head, 403, "unexpected From-Path %s" % from_path)
            return
        # Parked until complete() names this peer: read no more from it meanwhile.
        pending.paused = True
        protocol.pause_reading(PARKED)

    def _matches(self, waiter: _Waiter, pending: _Pending) -> bool:
        assert pending.head is not None
        if waiter.local_uri is not None and waiter.local_uri != pending.local_uri:
            return False
        if waiter.remote_path is None:
            return True
        return ends_with(pending.head.from_path or [], waiter.remote_path)

    def _bind(self, waiter: _Waiter, pending: _Pending) -> None:
        self._forget(pending.protocol)
        if pending.paused:
            pending.protocol.resume_reading(PARKED)
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.timer is not None:
            waiter.timer.cancel()
        assert pending.first is not None and pending.local_uri is not None
        assert pending.head is not None
        remote_path = waiter.remote_path or pending.head.from_path or []
        try:
            check_fingerprint(pending.protocol, waiter.fingerprint)
        except MSRPError:
            waiter.result.errback()
            return
        waiter.result.callback(accept_binding(
            pending.protocol, pending.first, [pending.local_uri], remote_path,
            self.settings, pending.held))

    def _refuse(self, protocol: MSRPProtocol, request: MSRPData, code: int,
                reason: str) -> None:
        self.log.info("refusing {peer} with {code}: {reason}",
                      peer=protocol.transport.getPeer(), code=code, reason=reason)
        self._forget(protocol)
        if should_respond(request, code):
            protocol.write_chunk(make_response(request, code))
        protocol.close()

    def _forget(self, protocol: MSRPProtocol) -> None:
        pending = self._pending.pop(protocol, None)
        if pending is not None and pending.timer.active():
            pending.timer.cancel()

    def _unbound_timed_out(self, protocol: MSRPProtocol) -> None:
        self._pending.pop(protocol, None)
        protocol.transport.abortConnection()

    def _waiter_timed_out(self, waiter: _Waiter, seconds: float) -> None:
        waiter.timer = None
        self._drop_waiter(waiter, MSRPBindSessionTimeout(
            "no connection bound from %s within %s seconds"
            % (" ".join(map(str, waiter.remote_path or [])) or "anyone", seconds)))

    def _drop_waiter(self, waiter: _Waiter, error: Exception) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.result.errback(Failure(error))
