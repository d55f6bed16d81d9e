"""ConnectorDirect and AcceptorDirect: one MSRP connection without a relay.

Which side opens the TCP connection is the ``setup`` parameter (RFC 6135: ``active``
connects, ``passive`` listens), not a consequence of who made the SDP offer. A connector is
active by default and an acceptor passive, as in the seed API. A passive endpoint listens
through a private :class:`~msrplib._server.MSRPServer` that it stops once bound.

An offerer that lets the answerer choose (``a=setup:actpass``) uses ``setup="actpass"``:
it listens from ``prepare()`` on, so that its offer holds a port the answerer can connect
to, and ``complete(..., setup=role)`` takes the role the answer gave it
(:func:`msrplib.sdp.local_role`): ``passive`` goes on listening, ``active`` stops
listening and connects.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib.websocket import connect_websocket, is_websocket
from msrplib._bind import ConnectionSettings, adopt_logger, bind_active, check_fingerprint
from msrplib._factories import MSRPClientFactory
from msrplib._server import (MSRPServer, as_fingerprint, default_host, new_session_id,
                             tls_options_for)
from msrplib._speedups import tls_factory
from msrplib._uri import URI
from msrplib.transport import MSRPTransport
from msrplib.errors import MSRPConnectTimeout
from msrplib.tls import Fingerprint
from msrplib.transport import MSRPProtocol

__all__ = ["ConnectorDirect", "AcceptorDirect", "connect_to"]

SETUPS = ("active", "passive", "actpass")


def connect_to(uri: URI, tls_options: Any, reactor: Any, settings: ConnectionSettings,
               address: Optional[Tuple[str, int]] = None) -> Tuple[Deferred[MSRPProtocol], Any]:
    """Open a TCP or TLS connection to ``uri`` (or to ``address``, RFC 6714 CEMA), or a
    WebSocket one for a ``ws``/``wss`` URI (:mod:`msrplib.websocket`); ``tls_options``
    are the Twisted TLS client options for an ``msrps`` URI.

    Returns ``(deferred, connector)``: the Deferred fires with a ready ``MSRPProtocol``, or
    fails with ``MSRPConnectTimeout`` after ``settings.connect_timeout`` or with Twisted's
    reason (``ConnectionRefusedError``...).
    """
    if is_websocket(uri):
        return connect_websocket(uri, tls_options, reactor, settings.parser_limits,
                                 settings.connect_timeout, settings.traffic_log)
    host, port = address or (uri.host or "", uri.effective_port)
    factory = MSRPClientFactory(settings.parser_limits, settings.traffic_log, reactor)
    if uri.use_tls:
        connector = reactor.connectTCP(host, port, tls_factory(tls_options, True, factory, reactor))
    else:
        connector = reactor.connectTCP(host, port, factory)
    result = factory.result.observe()

    def timed_out() -> None:
        factory.result.fire(Failure(MSRPConnectTimeout(
            "no connection to %s:%d within %s seconds" % (host, port, settings.connect_timeout))))
        connector.disconnect()

    timer = reactor.callLater(settings.connect_timeout, timed_out)

    def stop_timer(outcome: Any) -> Any:
        if timer.active():
            timer.cancel()
        return outcome

    return result.addBoth(stop_timer), connector


class _DirectEndpoint:
    """The shared implementation of ``ConnectorDirect`` and ``AcceptorDirect``.

    ``logger`` (a ``twisted.logger.Logger``) is what the connection, and the session over
    it, log through: as the seed says, "the logger which will be used for this MSRP
    connection" (see :func:`msrplib._bind.adopt_logger`). Without one, each part logs
    through a ``Logger`` of its own class.
    """

    default_setup = "active"

    def __init__(self, logger: Optional[Logger] = None, *, setup: Optional[str] = None,
                 reactor: Any = None, settings: Optional[ConnectionSettings] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        setup = setup or self.default_setup
        if setup not in SETUPS:
            raise ValueError("setup must be 'active', 'passive' or 'actpass', not %r"
                             % (setup,))
        self.logger = logger
        self.setup = setup
        self.reactor = reactor
        self.settings = settings or ConnectionSettings()
        self.local_uri: Optional[URI] = None
        self._server: Optional[MSRPServer] = None
        self._connector: Any = None

    def prepare(self, local_uri: Optional[URI] = None) -> Deferred[List[URI]]:
        """Fire with the full local path (``[local_uri]``) for SDP ``a=path``.

        ``local_uri`` is filled in place: a host, a session-id, for ``msrps`` a generated
        ``TLSIdentity`` in ``credentials`` (its fingerprint goes in SDP), and for a passive
        endpoint the port it listens on.
        """
        uri = local_uri if local_uri is not None else URI()
        if uri.host is None:
            uri.host = default_host()
        if uri.session_id is None:
            uri.session_id = new_session_id()
        self.local_uri = uri
        if self.setup != "active":
            self._server = MSRPServer(self.logger, reactor=self.reactor, settings=self.settings)
            return self._server.prepare(uri)
        if uri.use_tls:
            tls_options_for(uri)
        return succeed([uri])

    def complete(self, full_remote_path: List[URI], *,
                 remote_fingerprint: Union[None, str, Fingerprint] = None,
                 connect_address: Optional[Tuple[str, int]] = None,
                 setup: Optional[str] = None) -> Deferred[MSRPTransport]:
        """Connect (active) or wait for the peer (passive), bind, and fire with the
        ``MSRPTransport``.

        ``remote_fingerprint`` is the peer's SDP ``a=fingerprint`` for ``msrps``: a
        different certificate fails with ``FingerprintMismatch``. ``connect_address`` is where
        an active endpoint connects when it is not the remote URI's host and port (RFC 6714
        CEMA: the SDP ``c=``/``m=`` address). ``setup`` is the role the SDP answer gave an
        ``actpass`` endpoint (``active`` or ``passive``); others may repeat their own.
        Raises ``ValueError`` for an ``actpass`` endpoint without it, or a role that is
        not the endpoint's.
        """
        if self.local_uri is None:
            raise RuntimeError("prepare() must be called before complete()")
        role = self._role(setup)
        if role == "active" and self._server is not None:
            self._stop_server(None)  # the answer made us connect: the offered port is unused
        fingerprint = as_fingerprint(remote_fingerprint)
        if self._server is not None:
            server = self._server
            result = server.complete(full_remote_path, self.local_uri, fingerprint)
            return result.addBoth(self._stop_server)  # the server adopts the logger
        local_uri = self.local_uri
        target = full_remote_path[0]
        options = tls_options_for(local_uri) if target.use_tls else None
        connected, self._connector = connect_to(target, options, self.reactor, self.settings,
                                                connect_address)

        def bind(protocol: MSRPProtocol) -> Deferred[MSRPTransport]:
            self._connector = None
            if self.logger is not None:
                protocol.log = self.logger  # from the binding on
            check_fingerprint(protocol, fingerprint)
            bound = bind_active(protocol, [local_uri], full_remote_path, self.reactor,
                                self.settings)
            return bound.addCallback(adopt_logger, self.logger)

        return connected.addCallback(bind)

    def _role(self, setup: Optional[str]) -> str:
        """The role ``complete`` plays: ``setup`` for an ``actpass`` endpoint, else its own."""
        if self.setup == "actpass":
            if setup not in ("active", "passive"):
                raise ValueError("an actpass endpoint needs complete(..., setup='active' or "
                                 "'passive'), the role the SDP answer gave it, not %r"
                                 % (setup,))
            return setup
        if setup is not None and setup != self.setup:
            raise ValueError("this endpoint is %s; it cannot complete as %s"
                             % (self.setup, setup))
        return self.setup

    def cleanup(self) -> None:
        """Undo ``prepare()`` when ``complete()`` will not be called or did not succeed:
        stop listening and abandon a connection attempt that has not connected yet. A bound
        connection is left alone. Safe to call more than once."""
        if self._server is not None:
            self._stop_server(None)
        if self._connector is not None:
            self._connector.disconnect()
        self._connector = None

    def _stop_server(self, outcome: Any) -> Any:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        return outcome


class ConnectorDirect(_DirectEndpoint):
    """The calling endpoint without a relay; connects by default (``setup='active'``)."""

    default_setup = "active"


class AcceptorDirect(_DirectEndpoint):
    """The answering endpoint without a relay; listens by default (``setup='passive'``).

    One-use, as in the seed: it listens for one connection and stops listening once that
    connection is bound (or on ``cleanup``). Use ``MSRPServer`` to keep a port open.
    """

    default_setup = "passive"
