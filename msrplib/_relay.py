"""The relay endpoints (RFC 4976): ``ConnectorRelay`` and ``AcceptorRelay``.

``prepare()`` joins a :class:`~msrplib._relayconnection.RelayConnection` (made for the
endpoint from its ``MSRPRelaySettings``, or one given to share with other sessions): it
connects to the relay and authenticates, and the full local path is the relay's Use-Path
followed by our URI. ``complete()`` then binds through the relay. The relay's settings,
errors and lookup live in :mod:`msrplib._relaysettings`.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._bind import ConnectionSettings, accept_binding, adopt_logger, bind_active
from msrplib._channel import Channel
from msrplib._chunk import MSRPData, make_response
from msrplib._parser import ChunkStarted, ParserEvent
from msrplib._paths import check_paths
from msrplib._relayconnection import RelayConnection, RelayMember
from msrplib._relaysettings import (ASSUMED_GRANT_SECONDS, AUTH_REFRESH_FRACTION,
                                    AUTH_RETRY_SECONDS, REFRESH_BIND_WAIT, RELAY_CHUNK_SIZE,
                                    RELAY_UNREPORTED_BYTES, MSRPAuthError, MSRPRelayNotFound,
                                    MSRPRelaySettings, locate_relay)
from msrplib._rules import request_error, should_respond
from msrplib._uri import URI
from msrplib.errors import MSRPBindSessionTimeout
from msrplib.transport import MSRPTransport
from msrplib.websocket import MAX_WEBSOCKET_CHUNK, is_websocket

__all__ = ["MSRPRelaySettings", "RelayConnection", "ConnectorRelay", "AcceptorRelay",
           "MSRPAuthError", "MSRPRelayNotFound", "locate_relay", "AUTH_REFRESH_FRACTION",
           "AUTH_RETRY_SECONDS", "ASSUMED_GRANT_SECONDS", "REFRESH_BIND_WAIT",
           "RELAY_CHUNK_SIZE", "RELAY_UNREPORTED_BYTES"]


class _RelayEndpoint(RelayMember):
    """What ``ConnectorRelay`` and ``AcceptorRelay`` share: join the relay connection, bind.

    ``relay`` is the ``MSRPRelaySettings`` of a relay connection of this endpoint's own, or
    a :class:`RelayConnection` shared with other sessions (the streams of one dialog).
    ``on_path_changed(full_local_path)`` is called when a refresh of AUTH brings a new
    Use-Path (Kamailio's relay gives one on every AUTH): the old path works until the old
    grant runs out, so the application should offer the new one to its peer (a
    re-INVITE) before then. ``on_refresh_failed(error)`` is called each time a refresh
    fails; it is tried again every :data:`AUTH_RETRY_SECONDS` at most, and the
    connection is left open for as long as it carries a session.
    """

    log = Logger()

    def __init__(self, relay: Union[MSRPRelaySettings, RelayConnection],
                 logger: Optional[Logger] = None, *,
                 reactor: Any = None,
                 settings: Optional[ConnectionSettings] = None,
                 on_path_changed: Optional[Callable[[List[URI]], None]] = None,
                 on_refresh_failed: Optional[Callable[[Exception], None]] = None) -> None:
        if isinstance(relay, RelayConnection):
            self.connection = relay
        else:
            self.connection = RelayConnection(relay, logger, reactor=reactor,
                                              settings=settings)
        self.relay = self.connection.relay
        #: What the session over this endpoint logs through (the seed's ``logger``; see
        #: :func:`msrplib._bind.adopt_logger`), and this endpoint too.
        self.logger = logger
        if logger is not None:
            self.log = logger
        self.reactor = reactor if reactor is not None else self.connection.reactor
        self.settings = settings or self.connection.settings
        self.on_path_changed = on_path_changed
        self.on_refresh_failed = on_refresh_failed
        self.local_uri: Optional[URI] = None
        self._joining: Optional[Deferred[Channel]] = None
        self._channel: Optional[Channel] = None
        self._transport: Optional[MSRPTransport] = None

    @property
    def use_path(self) -> List[URI]:
        """The relay's Use-Path (the connection's, shared by its sessions)."""
        return self.connection.use_path

    @property
    def auth_count(self) -> int:
        """How many AUTH exchanges on the connection succeeded (the first and refreshes)."""
        return self.connection.auth_count

    @property
    def full_local_path(self) -> List[URI]:
        """The relay's Use-Path followed by our URI: what goes in SDP ``a=path``."""
        assert self.local_uri is not None
        return self.use_path + [self.local_uri]

    @inlineCallbacks
    def prepare(self, local_uri: Optional[URI] = None) -> Any:
        """Connect to the relay and authenticate (or join the shared connection that did);
        fire with the full local path.

        Fails with ``MSRPAuthError`` (carrying the relay's code) when the relay refuses,
        ``MSRPBindSessionTimeout`` when it does not answer, or the connection's error.
        """
        if self._joining is not None or self._channel is not None:
            raise RuntimeError("prepare() was called already")
        self._joining = self.connection.join(self, local_uri)
        try:
            channel = yield self._joining
        finally:
            self._joining = None
        self._channel = channel
        self.local_uri = channel.local_uri
        return self.full_local_path

    def path_changed(self) -> None:
        self._tell(self.on_path_changed, self.full_local_path)

    def refresh_failed(self, error: Exception) -> None:
        self._tell(self.on_refresh_failed, error)

    def _tell(self, callback: Optional[Callable[[Any], None]], value: Any) -> None:
        """Call the application's ``callback`` with ``value``; its errors are logged."""
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            self.log.failure("{callback!r} failed", callback=callback)

    def _bound(self, transport: MSRPTransport) -> MSRPTransport:
        adopt_logger(transport, self.logger)
        self._transport = transport
        flow = self.connection.flow if self.relay.follow_relay_flow else None
        if flow is not None and self._only_our_relay(transport.full_remote_path):
            # Every relay on the way holds a sender back itself: its chunk size, and no
            # pacing. (A relay of the peer's might not: Kamailio's drops a receiver that
            # falls behind, so through one the REPORTs still pace.)
            transport.max_chunk_size = flow.max_chunk_size
            transport.max_unreported_bytes = None
        else:
            transport.max_chunk_size = self.relay.max_chunk_size
            transport.max_unreported_bytes = self.relay.max_unreported_bytes
        transport.relayed = True
        if is_websocket(self.relay.uri):
            # The relay gathers each WebSocket message whole before it reads it.
            transport.max_chunk_size = min(transport.max_chunk_size or MAX_WEBSOCKET_CHUNK,
                                           MAX_WEBSOCKET_CHUNK)
        return transport

    def _only_our_relay(self, remote_path: List[URI]) -> bool:
        """Whether the peer's path goes through no relay but ours (it is another client
        of our relay, or reached from it directly)."""
        ours = self.use_path[0] if self.use_path else None
        return ours is not None and all(
            (hop.host, hop.effective_port, hop.use_tls)
            == (ours.host, ours.effective_port, ours.use_tls) for hop in remote_path[:-1])

    def cleanup(self) -> None:
        """Undo ``prepare()`` when ``complete()`` did not bind: let go of the relay
        connection (it closes unless other sessions use it). A bound connection is left
        alone. Safe to call more than once."""
        if self._transport is not None:
            return
        if self._joining is not None:
            self._joining.cancel()
        if self._channel is not None:
            self._channel.close()

    def _require_prepared(self) -> Tuple[Channel, URI]:
        if self._channel is None or self.local_uri is None:
            raise RuntimeError("prepare() must succeed before complete()")
        return self._channel, self.local_uri

    def complete_active(self, full_remote_path: List[URI]) -> Deferred[MSRPTransport]:
        """Send the binding SEND through the relay; fire with the ``MSRPTransport`` (what
        ``ConnectorRelay.complete`` does)."""
        channel, _ = self._require_prepared()
        return self.connection.binding(lambda: bind_active(
            channel, self.full_local_path, full_remote_path, self.reactor,
            self.settings).addCallback(self._bound))

    def complete_passive(self, full_remote_path: List[URI]) -> Deferred[MSRPTransport]:
        """Wait for the binding chunk through the relay from ``full_remote_path``; fire with
        the ``MSRPTransport`` (what ``AcceptorRelay.complete`` does)."""
        channel, local_uri = self._require_prepared()
        return self.connection.binding(
            lambda: self._wait_for_binding(channel, local_uri, full_remote_path))

    def _wait_for_binding(self, channel: Channel, local_uri: URI,
                          full_remote_path: List[URI]) -> Deferred[MSRPTransport]:
        def cancel(_: Deferred[MSRPTransport]) -> None:
            if timer.active():
                timer.cancel()
            channel.set_receiver(None)  # what comes now waits for the next complete()

        result: Deferred[MSRPTransport] = Deferred(cancel)
        remote = list(full_remote_path)

        def consider(item: ParserEvent) -> None:
            if result.called:
                return
            head = item.chunk if isinstance(item, ChunkStarted) else item
            if not isinstance(head, MSRPData) or head.method is None:
                return
            error = request_error(head) or check_paths(head, local_uri, remote)
            if error is not None:
                code = error.code or 400
                if should_respond(head, code):
                    channel.write_chunk(make_response(head, code))
                return
            timer.cancel()
            # The transport takes the channel's events from here on, those held first.
            transport = accept_binding(channel, item, self.full_local_path, remote,
                                       self.settings, [])
            result.callback(self._bound(transport))

        def timed_out() -> None:
            channel.set_receiver(None)
            if result.called:
                return
            result.errback(MSRPBindSessionTimeout(
                "nothing bound through the relay within %s seconds"
                % self.settings.bind_seconds()))

        def lost(reason: Failure) -> None:
            if not result.called:
                if timer.active():
                    timer.cancel()
                result.errback(reason)

        timer = self.reactor.callLater(self.settings.bind_seconds(), timed_out)
        channel.lost.observe().addErrback(lost)
        channel.set_receiver(consider)
        return result


class ConnectorRelay(_RelayEndpoint):
    """The calling endpoint through a relay (the seed's ``ConnectorRelay``)."""

    def complete(self, full_remote_path: List[URI], **ignored: Any) -> Deferred[MSRPTransport]:
        """Send the binding SEND through the relay; fire with the ``MSRPTransport``.

        The relay answers the SEND itself (responses are hop by hop), so this fires once
        the relay took it. TLS here is hop by hop, so a ``remote_fingerprint`` has nothing
        to check and is ignored.
        """
        return self.complete_active(full_remote_path)


class AcceptorRelay(_RelayEndpoint):
    """The answering endpoint through a relay (the seed's ``AcceptorRelay``)."""

    def complete(self, full_remote_path: List[URI], **ignored: Any) -> Deferred[MSRPTransport]:
        """Wait for the first chunk through the relay from ``full_remote_path``; answer it and
        fire with the ``MSRPTransport``.

        Its From-Path must end with ``full_remote_path`` (the relays in front of it add
        their URIs); a chunk from anyone else is answered 403 and waiting goes on. Fails with
        ``MSRPBindSessionTimeout`` after the bind timeout.
        """
        return self.complete_passive(full_remote_path)
