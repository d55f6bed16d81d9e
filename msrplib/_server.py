"""MSRPServer: one listening port shared by many sessions, dispatching on session-id.

A binding SEND finds its session, and the ``complete()`` waiting for it, by dict lookups:
by the session-id of its To-Path, then among the waiters for that local URI, or (for a
``complete()`` that named no local URI) among those expecting the session-id of the last
URI of its From-Path. Connections whose SEND came first are parked, indexed the same two
ways, until a ``complete()`` takes them. How many connections may wait to bind, from where
and for how long is :mod:`msrplib._unbound`'s job.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, TypeVar, Union

from twisted.internet.defer import CancelledError, Deferred, fail, gatherResults, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._bind import ConnectionSettings, accept_binding, adopt_logger, check_fingerprint
from msrplib._paths import ends_with, read_paths
from msrplib._factories import MSRPServerFactory
from msrplib._parser import ChunkStarted, ParserEvent
from msrplib._rules import request_error, should_respond
from msrplib._speedups import tls_factory
from msrplib._uri import URI
from msrplib._chunk import MSRPData, make_response
from msrplib._unbound import Unbound, UnboundConnections
from msrplib.transport import MSRPTransport
from msrplib.errors import FingerprintMismatch, MSRPBindSessionTimeout, MSRPError
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


@dataclass(eq=False)
class _Waiter:
    """A ``complete()`` call waiting for its connection."""

    remote_path: Optional[List[URI]]
    local_uri: Optional[URI]
    fingerprint: Optional[Fingerprint]
    result: Deferred[MSRPTransport]
    timer: Any = None
    #: The last connection refused for its certificate while waiting, if any.
    refused: Optional[MSRPError] = None


_Item = TypeVar("_Item")


class _Index(Dict[str, List[_Item]]):
    """Items listed under a session-id."""

    def add(self, key: str, item: _Item) -> None:
        self.setdefault(key, []).append(item)

    def discard(self, key: str, item: _Item) -> None:
        items = self.get(key)
        if items is not None and item in items:
            items.remove(item)
            if not items:
                del self[key]

    def listed(self, key: str) -> List[_Item]:
        """A copy of the items under ``key``."""
        return list(self.get(key, ()))


def _session_id(uri: Optional[URI]) -> str:
    return "" if uri is None else uri.session_id or ""


def _addressable(request: MSRPData) -> MSRPData:
    """``request``, or a copy of it without the path headers that hold only blanks, which a
    response cannot be addressed from (its paths are then left out, as if missing)."""
    first = request.headers.first
    blank = [name for name in ("To-Path", "From-Path")
             if first.get(name.lower()) is not None and not first[name.lower()].strip()]
    if not blank:
        return request
    copy = request.copy()
    for name in blank:
        del copy.headers[name]
    return copy


def _matches(waiter: _Waiter, unbound: Unbound) -> bool:
    if waiter.local_uri is not None and waiter.local_uri != unbound.local_uri:
        return False
    return waiter.remote_path is None or ends_with(unbound.from_path, waiter.remote_path)


class MSRPServer:
    """Listens for the passive side of many sessions on shared ports (the seed's MSRPServer).

    There is one listening port per (interface, port, TLS). ``prepare()`` registers a local
    URI (starting a port if none fits), ``complete()`` waits for the connection that binds to
    it from the given remote path, ``cleanup()`` forgets the URI.

    A first request whose headers are wrong (``msrplib._rules.request_error``) is answered
    400, one for an unknown session-id 481, and one for a session whose ``complete()``
    expects another peer 403, whether it came before or after that ``complete()``; each
    connection is then closed. A connection whose TLS certificate does not match the
    fingerprint ``complete()`` expects is closed and the waiting goes on. Connections that
    have not bound are limited as :mod:`msrplib._unbound` says.
    """

    log = Logger()

    def __init__(self, logger: Optional[Logger] = None, *, reactor: Any = None,
                 settings: Optional[ConnectionSettings] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        #: What the server logs through, and the connections it binds unless ``prepare``
        #: named a logger of their own (the seed's ``logger``; see
        #: :func:`msrplib._bind.adopt_logger`).
        self.logger = logger
        if logger is not None:
            self.log = logger
        self.settings = settings or ConnectionSettings()
        self._ports: Dict[Tuple[str, int, bool], Tuple[Any, Any]] = {}
        self._expected: Dict[str, URI] = {}
        # The loggers prepare() was given, by session-id.
        self._loggers: Dict[str, Logger] = {}
        self._unbound = UnboundConnections(self.settings, reactor, logger)
        # complete() calls waiting: by their local URI's session-id, and (those that named
        # none) by the session-id of the last URI of their remote path.
        self._waiting_at: _Index[_Waiter] = _Index()
        self._waiting_from: _Index[_Waiter] = _Index()
        # Connections whose binding SEND came before its complete(), the same two ways.
        self._parked_at: _Index[Unbound] = _Index()
        self._parked_from: _Index[Unbound] = _Index()

    # The seed API.

    def prepare(self, local_uri: Optional[URI] = None,
                logger: Optional[Logger] = None) -> Deferred[List[URI]]:
        """Listen for ``local_uri`` (filled in place: host, port, session-id, credentials)
        and fire with the full local path ``[local_uri]``. ``logger``: what the connection
        bound to it, and the session over that, log through (the server's own by default)."""
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
        if logger is not None:
            self._loggers[uri.session_id] = logger
        return succeed([uri])

    def complete(self, full_remote_path: Optional[List[URI]], local_uri: Optional[URI] = None,
                 remote_fingerprint: Union[None, str, Fingerprint] = None
                 ) -> Deferred[MSRPTransport]:
        """Fire with the ``MSRPTransport`` of the connection that binds from
        ``full_remote_path`` (to ``local_uri``, when given).

        ``full_remote_path`` ``None`` (with a ``local_uri``) takes whoever binds to that URI
        first, for tools that do not learn the peer's path; the peer's path is then the
        binding chunk's From-Path. With both, a connection that binds to ``local_uri`` from
        another path is refused with 403.

        A TLS peer whose certificate does not match ``remote_fingerprint`` is closed and
        the waiting goes on. Fails after the bind timeout: with ``FingerprintMismatch`` if
        such a peer was refused meanwhile, else with ``MSRPBindSessionTimeout``; with
        ``CancelledError`` on ``cleanup``/``stop``.
        """
        if full_remote_path is None and local_uri is None:
            raise ValueError("accepting any peer needs the local_uri it binds to")
        remote = None if full_remote_path is None else list(full_remote_path)
        waiter = _Waiter(remote, local_uri, as_fingerprint(remote_fingerprint), Deferred())
        if local_uri is not None:
            parked = self._parked_at.listed(_session_id(local_uri))
        else:
            assert remote is not None
            parked = self._parked_from.listed(_session_id(remote[-1]))
        for unbound in parked:
            if _matches(waiter, unbound) and self._bind(waiter, unbound):
                return waiter.result
        if local_uri is not None and remote is not None:
            for unbound in self._parked_at.listed(_session_id(local_uri)):
                if unbound.local_uri == local_uri:
                    self._refuse(unbound, 403, "unexpected From-Path %s"
                                 % " ".join(map(str, unbound.from_path)))
        seconds = self.settings.bind_seconds()
        waiter.timer = self.reactor.callLater(seconds, self._waiter_timed_out, waiter, seconds)
        if local_uri is not None:
            self._waiting_at.add(_session_id(local_uri), waiter)
        else:
            assert remote is not None
            self._waiting_from.add(_session_id(remote[-1]), waiter)
        return waiter.result

    def cleanup(self, local_uri: URI) -> None:
        """Forget ``local_uri``: its waiting ``complete()`` fails with ``CancelledError`` and
        connections waiting to bind to it are closed."""
        key = _session_id(local_uri)
        if self._expected.get(key) == local_uri:
            del self._expected[key]
            self._loggers.pop(key, None)
        for waiter in self._waiting_at.listed(key):
            if waiter.local_uri == local_uri:
                self._drop_waiter(waiter, CancelledError("cleanup(%s)" % local_uri))
        for unbound in self._parked_at.listed(key):
            if unbound.local_uri == local_uri:
                self._forget(unbound.protocol)
                unbound.protocol.close()

    def stop(self) -> Deferred[None]:
        """Stop listening, close connections that have not bound, cancel every waiter."""
        for index in (self._waiting_at, self._waiting_from):
            for waiters in list(index.values()):
                for waiter in list(waiters):
                    self._drop_waiter(waiter, CancelledError("MSRPServer stopped"))
        for unbound in self._unbound.connections():
            self._forget(unbound.protocol)
            unbound.protocol.transport.abortConnection()
        ports, self._ports = list(self._ports.values()), {}
        self._expected.clear()
        self._loggers.clear()
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
                                          tls_factory(options, False, factory, self.reactor),
                                          self.settings.listen_backlog, interface)
        else:
            port = self.reactor.listenTCP(port_number, factory, self.settings.listen_backlog,
                                          interface)
        uri.port = port.getHost().port
        self._ports[(interface, uri.port, uri.use_tls)] = (port, uri.credentials)

    # Connections, from accept to bind.

    def _connection_made(self, protocol: MSRPProtocol, address: Any) -> bool:
        source = getattr(address, "host", None) or str(address)
        if self._unbound.admit(protocol, source) is None:
            return False
        protocol.set_receiver(lambda event: self._event(protocol, event))
        protocol.lost.observe().addErrback(lambda reason: self._forget(protocol))
        return True

    def _event(self, protocol: MSRPProtocol, event: ParserEvent) -> None:
        unbound = self._unbound.get(protocol)
        if unbound is None:
            return
        if unbound.first is not None:
            unbound.held.append(event)
            return
        unbound.first = event
        self._unbound.spoke(unbound)
        head = event.chunk if isinstance(event, ChunkStarted) else event
        if not isinstance(head, MSRPData) or head.method is None:
            self.log.warn("closing {peer}: it did not start with a request",
                          peer=protocol.transport.getPeer())
            self._forget(protocol)
            protocol.close()
            return
        error = request_error(head)
        if error is not None:
            self._refuse(unbound, error.code or 400, str(error), head)
            return
        try:
            to_path, from_path = read_paths(head)
        except MSRPError as error:
            self._refuse(unbound, 400, str(error), head)
            return
        if not from_path:
            self._refuse(unbound, 400, "a request without From-Path", head)
            return
        local = self._expected.get(_session_id(to_path[-1])) if to_path else None
        if local is None or to_path != [local]:
            self._refuse(unbound, 481, "no session %s here" % " ".join(map(str, to_path)),
                         head)
            return
        unbound.head, unbound.local_uri, unbound.from_path = head, local, from_path
        self._dispatch(unbound)

    def _dispatch(self, unbound: Unbound) -> None:
        """Bind a connection whose first request is for one of our sessions to the
        ``complete()`` that expects it, refuse it when its session expects someone else,
        or park it until a ``complete()`` comes."""
        assert unbound.local_uri is not None
        waiting_here = self._waiting_at.listed(_session_id(unbound.local_uri))
        for waiter in waiting_here + \
                self._waiting_from.listed(_session_id(unbound.from_path[-1])):
            if _matches(waiter, unbound):
                self._bind(waiter, unbound)
                return
        if any(waiter.local_uri == unbound.local_uri for waiter in waiting_here):
            self._refuse(unbound, 403, "unexpected From-Path %s"
                         % " ".join(map(str, unbound.from_path)))
            return
        # Parked until complete() names this peer: read no more from it meanwhile.
        self._parked_at.add(_session_id(unbound.local_uri), unbound)
        self._parked_from.add(_session_id(unbound.from_path[-1]), unbound)
        unbound.protocol.pause_reading(PARKED)

    def _bind(self, waiter: _Waiter, unbound: Unbound) -> bool:
        """Hand ``unbound`` to ``waiter``; False (the connection closed, the waiter still
        waiting) when its TLS certificate is not the one the waiter expects."""
        protocol = unbound.protocol
        try:
            check_fingerprint(protocol, waiter.fingerprint)
        except MSRPError as error:
            self.log.warn("closed {peer}: {error}", peer=protocol.transport.getPeer(),
                          error=error)
            waiter.refused = error
            self._forget(protocol)
            return False
        self._forget(protocol)
        protocol.resume_reading(PARKED)
        self._unlist_waiter(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        assert unbound.first is not None and unbound.local_uri is not None
        remote_path = waiter.remote_path or unbound.from_path
        transport = accept_binding(protocol, unbound.first, [unbound.local_uri], remote_path,
                                   self.settings, unbound.held)
        logger = self._loggers.get(_session_id(unbound.local_uri), self.logger)
        waiter.result.callback(adopt_logger(transport, logger))
        return True

    def _refuse(self, unbound: Unbound, code: int, reason: str,
                request: Optional[MSRPData] = None) -> None:
        protocol = unbound.protocol
        request = request or unbound.head
        assert request is not None
        self.log.info("refusing {peer} with {code}: {reason}",
                      peer=protocol.transport.getPeer(), code=code, reason=reason)
        self._forget(protocol)
        if should_respond(request, code):
            protocol.write_chunk(make_response(_addressable(request), code))
        protocol.close()

    def _forget(self, protocol: MSRPProtocol) -> None:
        unbound = self._unbound.forget(protocol)
        if unbound is not None and unbound.local_uri is not None and unbound.from_path:
            self._parked_at.discard(_session_id(unbound.local_uri), unbound)
            self._parked_from.discard(_session_id(unbound.from_path[-1]), unbound)

    # Waiters.

    def _unlist_waiter(self, waiter: _Waiter) -> None:
        if waiter.local_uri is not None:
            self._waiting_at.discard(_session_id(waiter.local_uri), waiter)
        elif waiter.remote_path:
            self._waiting_from.discard(_session_id(waiter.remote_path[-1]), waiter)

    def _waiter_timed_out(self, waiter: _Waiter, seconds: float) -> None:
        waiter.timer = None
        if waiter.refused is not None:
            error: Exception = FingerprintMismatch(
                "%s; no other connection bound within %s seconds" % (waiter.refused, seconds))
        else:
            error = MSRPBindSessionTimeout(
                "no connection bound from %s within %s seconds"
                % (" ".join(map(str, waiter.remote_path or [])) or "anyone", seconds))
        self._drop_waiter(waiter, error)

    def _drop_waiter(self, waiter: _Waiter, error: Exception) -> None:
        self._unlist_waiter(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.result.errback(Failure(error))
