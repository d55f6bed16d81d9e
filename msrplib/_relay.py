"""Connecting through an MSRP relay (RFC 4976): finding it, AUTH, and the relay endpoints.

``prepare()`` connects to the relay and authenticates (401 challenge, Digest answer, 200
with Use-Path and Expires); the full local path is the relay's Use-Path followed by our URI.
``complete()`` then binds through the relay. While the connection lives, AUTH is repeated
before Expires runs out. A refresh that fails is reported and tried again, never a reason
to close a connection that still carries a session; a refresh that brings a new Use-Path
is reported too, so that the application can offer the new path (a re-INVITE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._bind import ConnectionSettings, accept_binding, adopt_logger, bind_active
from msrplib._direct import connect_to
from msrplib._headers import Headers
from msrplib._observer import Observer, ResponseWaiters
from msrplib._parser import ChunkStarted, ParserEvent
from msrplib._rules import request_error, should_respond
from msrplib._server import new_session_id
from msrplib._uri import DEFAULT_PORT, URI
from msrplib._chunk import MSRPData, make_response, new_transaction_id
from msrplib.digest import answer_challenge
from msrplib.errors import MSRPBindSessionTimeout, MSRPError
from msrplib.tls import TLSIdentity, relay_tls_options
from msrplib._paths import check_paths
from msrplib.transport import MSRPProtocol, MSRPTransport

__all__ = ["MSRPRelaySettings", "ConnectorRelay", "AcceptorRelay", "MSRPAuthError",
           "MSRPRelayNotFound", "locate_relay", "AUTH_REFRESH_FRACTION", "AUTH_RETRY_SECONDS",
           "ASSUMED_GRANT_SECONDS"]

#: AUTH is repeated when this fraction of the granted Expires has passed.
AUTH_REFRESH_FRACTION = 0.75
#: A refresh that failed is tried again after this many seconds, or after half of what was
#: left of the grant when it was due, if that is sooner.
AUTH_RETRY_SECONDS = 30.0
#: The grant assumed when a relay's 200 to AUTH gives no Expires (and none is configured).
ASSUMED_GRANT_SECONDS = 3600
#: A refresh due while the connection binds waits this long: the binding SEND's answer
#: and an AUTH's must not cross.
REFRESH_BIND_WAIT = 1.0

#: Body bytes per chunk through a relay by default: Kamailio's relay drops frames over about
#: 11 KB, so 8 KiB leaves room for the headers.
RELAY_CHUNK_SIZE = 8 * 1024
#: Body bytes of a message sent with success reports that may run ahead of the peer's
#: REPORTs through a relay: relays answer each chunk themselves and apply no backpressure
#: (Kamailio drops a receiver that falls 32-64 KB behind), so only the peer's REPORTs pace
#: the sender.
RELAY_UNREPORTED_BYTES = 32 * 1024


class MSRPAuthError(MSRPError):
    """The relay refused our AUTH; ``code`` is its answer (401 for wrong credentials)."""

    code = 401
    comment = "Unauthorized"


class MSRPRelayNotFound(MSRPError):
    """No relay could be found for the domain (DNS SRV and address lookups failed)."""

    code = 404
    comment = "Relay not found"


@dataclass
class MSRPRelaySettings:
    """Which relay to use and how to log in to it (the seed's ``MSRPRelaySettings``).

    With ``host`` the relay is there; otherwise DNS SRV ``_msrps._tcp.<domain>`` (or
    ``_msrp._tcp`` without TLS) finds it. ``credentials`` is our TLS identity towards the
    relay (a :class:`~msrplib.tls.TLSIdentity` or Twisted TLS options).

    Beyond the seed: ``expires`` is sent in AUTH only when set (RFC 4976 makes it optional,
    and some relays fail on it); ``verify_tls`` turns the relay name check off (tests with
    self-signed relays only); ``trust_root`` is what the relay's certificate must chain to
    (default: the platform's); ``max_chunk_size`` bounds chunk bodies through this relay;
    ``resolver`` is the ``twisted.names`` resolver for SRV lookups; ``max_unreported_bytes``
    is how far a message sent with success reports may run ahead of the peer's REPORTs
    (``SessionSettings.max_unreported_bytes``; ``None``: no limit).
    """

    domain: str
    username: str
    password: str
    host: Optional[str] = None
    use_tls: bool = False
    port: Optional[int] = None
    credentials: Any = None
    expires: Optional[int] = None
    verify_tls: bool = True
    trust_root: Any = None
    max_chunk_size: int = RELAY_CHUNK_SIZE
    resolver: Any = None
    max_unreported_bytes: Optional[int] = RELAY_UNREPORTED_BYTES

    @property
    def uri(self) -> URI:
        """The relay's URI, the To-Path of AUTH and the Digest ``uri``."""
        return URI(host=self.host or self.domain, port=self.port, use_tls=self.use_tls)

    def tls_options(self) -> Any:
        """TLS client options for the relay connection."""
        if self.credentials is not None and not isinstance(self.credentials, TLSIdentity):
            return self.credentials
        return relay_tls_options(self.host or self.domain, self.trust_root, self.credentials,
                                 self.verify_tls)


@inlineCallbacks
def locate_relay(relay: MSRPRelaySettings) -> Any:
    """Fire with ``(host, port)`` of the relay: ``host`` when given, else DNS SRV.

    Without an SRV record the domain itself is used on the default port (RFC 4976
    section 6.1). Fails with ``MSRPRelayNotFound`` when the SRV record says there is none.
    """
    if relay.host is not None:
        return relay.host, relay.port or DEFAULT_PORT
    resolver = relay.resolver
    if resolver is None:
        from twisted.names import client
        resolver = client.getResolver()
    name = "_%s._tcp.%s" % ("msrps" if relay.use_tls else "msrp", relay.domain)
    try:
        answers, _, _ = yield resolver.lookupService(name)
    except Exception:
        return relay.domain, relay.port or DEFAULT_PORT
    records = sorted((answer.payload for answer in answers
                      if getattr(answer.payload, "target", None) is not None),
                     key=lambda srv: (srv.priority, -srv.weight))
    if not records or str(records[0].target) in ("", "."):
        raise MSRPRelayNotFound("%s has no MSRP relay (SRV %s)" % (relay.domain, name))
    return str(records[0].target), records[0].port


class _RelayLink:
    """Requests and responses on the relay connection before a transport takes it over."""

    def __init__(self, protocol: MSRPProtocol) -> None:
        self.protocol = protocol
        self.waiting = ResponseWaiters()
        self.held: List[ParserEvent] = []
        self.on_event: Optional[Callable[[ParserEvent], None]] = None
        protocol.set_receiver(self._event)
        protocol.lost.observe().addErrback(self.waiting.fail_all)

    def request(self, chunk: MSRPData) -> Deferred[MSRPData]:
        self.protocol.write_chunk(chunk)
        return self.waiting.expect(chunk.transaction_id)

    def _event(self, event: ParserEvent) -> None:
        if isinstance(event, MSRPData) and event.code is not None and \
                self.waiting.deliver(event.transaction_id, event):
            return
        if self.on_event is not None:
            self.on_event(event)
        else:
            self.held.append(event)


class _RelayEndpoint:
    """What ``ConnectorRelay`` and ``AcceptorRelay`` share: connect, AUTH, refresh.

    ``on_path_changed(full_local_path)`` is called when a refresh of AUTH brings a new
    Use-Path (Kamailio's relay gives one on every AUTH): the old path works until the old
    grant runs out, so the application should offer the new one to its peer (a
    re-INVITE) before then. ``on_refresh_failed(error)`` is called each time a refresh
    fails; it is tried again every :data:`AUTH_RETRY_SECONDS` at most, and the
    connection is left open for as long as it carries the session.
    """

    log = Logger()

    def __init__(self, relay: MSRPRelaySettings, logger: Optional[Logger] = None, *,
                 reactor: Any = None,
                 settings: Optional[ConnectionSettings] = None,
                 on_path_changed: Optional[Callable[[List[URI]], None]] = None,
                 on_refresh_failed: Optional[Callable[[Exception], None]] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.relay = relay
        #: What the relay connection and the session over it log through (the seed's
        #: ``logger``; see :func:`msrplib._bind.adopt_logger`), and this endpoint too.
        self.logger = logger
        if logger is not None:
            self.log = logger
        self.reactor = reactor
        self.settings = settings or ConnectionSettings()
        self.on_path_changed = on_path_changed
        self.on_refresh_failed = on_refresh_failed
        self.local_uri: Optional[URI] = None
        self.use_path: List[URI] = []
        #: How many AUTH exchanges succeeded (the first one and every refresh).
        self.auth_count = 0
        self._link: Optional[_RelayLink] = None
        self._transport: Optional[MSRPTransport] = None
        self._refresh_timer: Any = None
        #: Seconds before a failed refresh is tried again (set by each grant).
        self._retry_after = AUTH_RETRY_SECONDS
        #: Whether a binding is under way, and the refresh under way, if any: the two never
        #: overlap on the connection.
        self._binding = False
        self._refreshing: Optional[Observer] = None
        self._connector: Any = None

    @property
    def full_local_path(self) -> List[URI]:
        """The relay's Use-Path followed by our URI: what goes in SDP ``a=path``."""
        assert self.local_uri is not None
        return self.use_path + [self.local_uri]

    @inlineCallbacks
    def prepare(self, local_uri: Optional[URI] = None) -> Any:
        """Connect to the relay and authenticate; fire with the full local path.

        Fails with ``MSRPAuthError`` (carrying the relay's code) when the relay refuses,
        ``MSRPBindSessionTimeout`` when it does not answer, or the connection's error.
        """
        host, port = yield locate_relay(self.relay)
        relay_uri = self.relay.uri
        target = URI(host=host, port=port, use_tls=relay_uri.use_tls)
        options = self.relay.tls_options() if relay_uri.use_tls else None
        connected, self._connector = connect_to(target, options, self.reactor, self.settings)
        protocol = yield connected
        self._link = _RelayLink(protocol)
        # No refresh outlives the relay connection (the session's, once it is bound).
        protocol.lost.observe().addErrback(lambda reason: self._stop_refresh())
        uri = local_uri if local_uri is not None else URI()
        address = protocol.transport.getHost()
        if uri.host is None:
            uri.host = address.host
        if uri.port is None:
            uri.port = address.port
        if uri.session_id is None:
            uri.session_id = new_session_id()
        uri.use_tls = relay_uri.use_tls
        self.local_uri = uri
        try:
            yield self._authenticate()
        except Exception:
            protocol.close()
            raise
        return self.full_local_path

    def _request(self, chunk: MSRPData) -> Deferred[MSRPData]:
        """Send a request on the relay connection and wait for its response."""
        if self._transport is not None:
            waiter = self._transport.expect_response(chunk.transaction_id)
            self._transport.protocol.write_chunk(chunk)
        else:
            assert self._link is not None
            waiter = self._link.request(chunk)
        seconds = self.settings.bind_seconds()
        timer = self.reactor.callLater(seconds, waiter.cancel)

        def stop(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        def timed_out(failure: Failure) -> Failure:
            if failure.check(CancelledError):
                if self._transport is not None:
                    # A late answer is still the relay's to AUTH: it must not reach a
                    # reader of the transport.
                    self._transport.expect_response(chunk.transaction_id).addErrback(
                        lambda failure: None)
                return Failure(MSRPBindSessionTimeout(
                    "the relay did not answer %s within %s seconds" % (chunk.method, seconds)))
            return failure

        return waiter.addBoth(stop).addErrback(timed_out)

    @inlineCallbacks
    def _authenticate(self, to_uri: Optional[URI] = None) -> Any:
        """One AUTH exchange (RFC 4976 section 5): challenge, answer, Use-Path; sent to
        ``to_uri``, by default the relay's own URI."""
        relay = self.relay
        relay_uri = str(to_uri if to_uri is not None else relay.uri)
        challenge = None
        nonce_count = 0
        expires = relay.expires
        for _ in range(4):
            headers = Headers([("To-Path", relay_uri), ("From-Path", str(self.local_uri))])
            chunk = MSRPData(new_transaction_id(), method="AUTH", headers=headers)
            if expires is not None:
                chunk.expires = expires
            if challenge is not None:
                nonce_count += 1
                chunk.authorization = answer_challenge(challenge, relay.username,
                                                       relay.password, relay_uri, nonce_count)
            response = yield self._request(chunk)
            if response.code == 200:
                return self._granted(response)
            if response.code == 401:
                offered = response.www_authenticate
                stale = offered is not None and offered.params.get("stale", "").lower() == "true"
                if offered is None or (challenge is not None and not stale):
                    raise MSRPAuthError("the relay refused %s's credentials" % relay.username,
                                        code=401, comment=response.comment)
                challenge, nonce_count = offered, 0
            elif response.code == 423 and (response.min_expires or response.max_expires):
                expires = response.min_expires if response.min_expires and \
                    (expires is None or expires < response.min_expires) else response.max_expires
            else:
                raise MSRPAuthError("the relay answered AUTH with %s %s"
                                    % (response.code, response.comment or ""),
                                    code=response.code, comment=response.comment)
        raise MSRPAuthError("the relay kept refusing AUTH", code=403)

    def _granted(self, response: MSRPData) -> None:
        use_path = response.use_path
        if not use_path:
            raise MSRPAuthError("the relay's 200 to AUTH has no Use-Path", code=400)
        expires = response.expires if response.expires is not None else self.relay.expires
        if expires is None:
            expires = ASSUMED_GRANT_SECONDS
        if expires <= 0:
            raise MSRPAuthError("the relay's 200 to AUTH grants no time (Expires: %d)"
                                % expires, code=400)
        self.use_path = use_path
        self.auth_count += 1
        self._retry_after = min(AUTH_RETRY_SECONDS, expires * (1 - AUTH_REFRESH_FRACTION) / 2)
        if self._connection_alive():
            self._refresh_timer = self.reactor.callLater(
                expires * AUTH_REFRESH_FRACTION, self._refresh)

    def _connection_alive(self) -> bool:
        """Whether the relay connection is there (prepared, not closed, not cleaned up)."""
        return self._link is not None and not self._link.protocol.lost.fired

    @inlineCallbacks
    def _refresh(self) -> Any:
        """Repeat AUTH before the grant runs out. It goes to the relay's URI, as the first
        one did; a relay that answers that with 481 (the older Twisted msrprelay) gets it
        at the Use-Path URI it granted. A failure is reported and tried again later."""
        self._refresh_timer = None
        if not self._connection_alive():
            return
        if self._binding:
            self._refresh_timer = self.reactor.callLater(REFRESH_BIND_WAIT, self._refresh)
            return
        refreshing = self._refreshing = Observer()
        old_path = list(self.use_path)
        try:
            try:
                yield self._authenticate()
            except MSRPAuthError as error:
                if error.code != 481 or not old_path:
                    raise
                yield self._authenticate(old_path[-1])
        except Exception as error:
            if not self._connection_alive():
                return  # the connection went: nothing to refresh, nothing to report
            self.log.error("AUTH refresh with the relay failed, trying again in {seconds} s: "
                           "{error}", seconds=self._retry_after, error=error)
            self._refresh_timer = self.reactor.callLater(self._retry_after, self._refresh)
            self._tell(self.on_refresh_failed, error)
            return
        finally:
            self._refreshing = None
            refreshing.fire(None)
        if self.use_path != old_path and self._connection_alive():
            # Our own requests keep the path they were bound with: Kamailio's relay
            # forwards none that name the new Use-Path first (seen: both ways stopped).
            self._tell(self.on_path_changed, self.full_local_path)

    def _tell(self, callback: Optional[Callable[[Any], None]], value: Any) -> None:
        """Call the application's ``callback`` with ``value``; its errors are logged."""
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            self.log.failure("{callback!r} failed", callback=callback)

    def _binds(self, bind: Callable[[], Deferred[MSRPTransport]]) -> Deferred[MSRPTransport]:
        """Run ``bind`` once no refresh is under way, and keep refreshes off the connection
        until it is done: the binding SEND's answer and an AUTH's would cross."""
        self._binding = True
        refreshing = self._refreshing
        ready: Deferred[None] = refreshing.observe() if refreshing is not None else succeed(None)

        def done(outcome: Any) -> Any:
            self._binding = False
            return outcome

        return ready.addCallback(lambda _: bind()).addBoth(done)

    def _bound(self, transport: MSRPTransport) -> MSRPTransport:
        adopt_logger(transport, self.logger)
        self._transport = transport
        transport.max_chunk_size = self.relay.max_chunk_size
        transport.max_unreported_bytes = self.relay.max_unreported_bytes
        transport.relayed = True
        return transport

    def _stop_refresh(self) -> None:
        if self._refresh_timer is not None and self._refresh_timer.active():
            self._refresh_timer.cancel()
        self._refresh_timer = None

    def cleanup(self) -> None:
        """Undo ``prepare()`` when ``complete()`` did not bind: close the relay connection.
        A bound connection is left alone. Safe to call more than once."""
        if self._transport is not None:
            return
        self._stop_refresh()
        if self._link is not None:
            self._link.protocol.close()
            self._link = None
        elif self._connector is not None:
            self._connector.disconnect()
        self._connector = None

    def _require_prepared(self) -> Tuple[_RelayLink, URI]:
        if self._link is None or self.local_uri is None:
            raise RuntimeError("prepare() must succeed before complete()")
        return self._link, self.local_uri

    def complete_active(self, full_remote_path: List[URI]) -> Deferred[MSRPTransport]:
        """Send the binding SEND through the relay; fire with the ``MSRPTransport`` (what
        ``ConnectorRelay.complete`` does)."""
        link, _ = self._require_prepared()
        return self._binds(lambda: bind_active(
            link.protocol, self.full_local_path, full_remote_path, self.reactor,
            self.settings).addCallback(self._bound))

    def complete_passive(self, full_remote_path: List[URI]) -> Deferred[MSRPTransport]:
        """Wait for the binding chunk through the relay from ``full_remote_path``; fire with
        the ``MSRPTransport`` (what ``AcceptorRelay.complete`` does)."""
        link, local_uri = self._require_prepared()
        return self._binds(lambda: self._wait_for_binding(link, local_uri, full_remote_path))

    def _wait_for_binding(self, link: _RelayLink, local_uri: URI,
                          full_remote_path: List[URI]) -> Deferred[MSRPTransport]:
        result: Deferred[MSRPTransport] = Deferred()
        remote = list(full_remote_path)

        def consider(item: ParserEvent, later: List[ParserEvent]) -> bool:
            head = item.chunk if isinstance(item, ChunkStarted) else item
            if not isinstance(head, MSRPData) or head.method is None:
                return False
            error = request_error(head) or check_paths(head, local_uri, remote)
            if error is not None:
                code = error.code or 400
                if should_respond(head, code):
                    link.protocol.write_chunk(make_response(head, code))
                return False
            timer.cancel()
            link.on_event = None
            transport = accept_binding(link.protocol, item, self.full_local_path, remote,
                                       self.settings, later)
            result.callback(self._bound(transport))
            return True

        def timed_out() -> None:
            link.on_event = None
            result.errback(MSRPBindSessionTimeout(
                "nothing bound through the relay within %s seconds"
                % self.settings.bind_seconds()))

        timer = self.reactor.callLater(self.settings.bind_seconds(), timed_out)
        early, link.held = link.held, []
        for index, item in enumerate(early):
            if consider(item, early[index + 1:]):
                return result

        def later_event(item: ParserEvent) -> None:
            consider(item, [])

        link.on_event = later_event
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
