"""One connection to an MSRP relay and one AUTH, for as many sessions as use it.

:class:`RelayConnection` connects to the relay, authenticates (RFC 4976 section 5: 401
challenge, Digest answer, 200 with Use-Path and Expires) and repeats AUTH before Expires
runs out. Each session on it gets a :class:`~msrplib._channel.Channel` and a URI of its
own (the connection's address with a session-id of its own); the relay's Use-Path is the
same for all. A refresh that fails is reported and tried again, never a reason to close a
connection that still carries a session; one that brings a new Use-Path is reported to
every session, so that the application can offer the new path (a re-INVITE). The
connection closes when its last session lets go of it, and is made again for the next.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, succeed
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._bind import ConnectionSettings
from msrplib._channel import Channel, ConnectionRouter
from msrplib._chunk import MSRPData, new_transaction_id
from msrplib._direct import connect_to
from msrplib._headers import Headers
from msrplib._observer import Observer
from msrplib._relaysettings import (ASSUMED_GRANT_SECONDS, AUTH_REFRESH_FRACTION,
                                    AUTH_RETRY_SECONDS, MAX_NEXT_RELAYS, REFRESH_BIND_WAIT,
                                    RELAY_FLOW_HEADER, MSRPAuthError, MSRPRelaySettings,
                                    RelayFlow, locate_relay, parse_relay_flow)
from msrplib._server import new_session_id
from msrplib._uri import URI
from msrplib.digest import answer_challenge
from msrplib.errors import MSRPBindSessionTimeout
from msrplib.transport import MSRPProtocol

__all__ = ["RelayConnection", "RelayMember"]


def outside_of(outer: List[URI], inner: List[URI]) -> List[URI]:
    """The path to us through a relay whose Use-Path is ``outer``, reached through the
    relays of the path ``inner``: its Use-Path in front of ``inner``, or as it is when
    it names them already (it ends with ``inner``)."""
    if len(outer) > len(inner) and outer[-len(inner):] == inner:
        return list(outer)
    return outer + inner


class RelayMember:
    """What a session on a :class:`RelayConnection` hears of it (the relay endpoints)."""

    def path_changed(self) -> None:
        """A refresh of AUTH brought a new Use-Path."""

    def refresh_failed(self, error: Exception) -> None:
        """A refresh of AUTH failed (it is tried again)."""


class RelayConnection:
    """A connection to an MSRP relay and its AUTH, which several sessions may share.

    Give one to the ``ConnectorRelay`` and ``AcceptorRelay`` (or the streams of
    ``msrplib.stream``) of the sessions that should share it, such as the chat and file
    streams of one SIP dialog, in place of their ``MSRPRelaySettings``: they then use one
    connection and one AUTH, and one refresh keeps them all (RFC 4976 allows this). Each
    session still has its own URI. Every session on it shares the connection's flow
    control: one that stops reading stops the others' chunks too.

    The connection is made by the first session's ``prepare()`` and closed when the last
    session on it ends (or its endpoint's ``cleanup()``); the next ``prepare()`` makes it
    again. :meth:`close` closes it at once, ending every session on it.
    """

    log = Logger()

    def __init__(self, relay: MSRPRelaySettings, logger: Optional[Logger] = None, *,
                 reactor: Any = None, settings: Optional[ConnectionSettings] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.relay = relay
        #: What the connection logs through (the seed's ``logger``), when one was given.
        self.logger = logger
        if logger is not None:
            self.log = logger
        self.reactor = reactor
        self.settings = settings or ConnectionSettings()
        #: The URI AUTH names (our address, with a session-id of no session's).
        self.local_uri: Optional[URI] = None
        #: The relay's Use-Path from the last AUTH (with ``next_relay``: the relays'
        #: Use-Paths, the outermost first), and the first relay's own.
        self.use_path: List[URI] = []
        self._first_use_path: List[URI] = []
        #: How many AUTH exchanges succeeded (the first one and every refresh).
        self.auth_count = 0
        #: What the relay's last grant said of its flow control (None: nothing, as
        #: Kamailio's says nothing).
        self.flow: Optional[RelayFlow] = None
        self._router: Optional[ConnectionRouter] = None
        self._opening: Optional[Observer] = None
        self._connector: Any = None
        # The sessions on the connection, and those that wait for it to be made.
        self._members: Dict[Channel, RelayMember] = {}
        self._joining: Dict[Deferred[Channel], RelayMember] = {}
        self._refresh_timer: Any = None
        #: Seconds before a failed refresh is tried again (set by each grant).
        self._retry_after = AUTH_RETRY_SECONDS
        # How many bindings are under way, and the refresh under way, if any: the two
        # never overlap on the connection.
        self._binding = 0
        self._refreshing: Optional[Observer] = None

    # Joining and leaving.

    def join(self, member: RelayMember, local_uri: Optional[URI] = None) -> Deferred[Channel]:
        """Fire with a channel for a new session once the connection is made and granted.

        ``local_uri`` gives what the session's URI should say; what it leaves out is
        filled in (the connection's address, a new session-id, the relay's scheme).
        Cancel it to stop waiting. Fails with ``MSRPAuthError``, ``MSRPBindSessionTimeout``
        or the connection's error, or ``ValueError`` for a session-id in use here.
        """
        def cancel(waiter: Deferred[Channel]) -> None:
            self._joining.pop(waiter, None)
            self._close_if_unused(False)

        joined: Deferred[Channel] = Deferred(cancel)
        self._joining[joined] = member

        def opened(router: ConnectionRouter) -> None:
            if self._joining.pop(joined, None) is None:
                return  # cancelled meanwhile
            try:
                channel = router.open_channel(self._uri_for(router.protocol, local_uri))
            except ValueError as error:
                self._close_if_unused(False)
                joined.errback(error)
                return
            self._members[channel] = member
            joined.callback(channel)

        def failed(reason: Failure) -> None:
            if self._joining.pop(joined, None) is not None:
                joined.errback(reason)

        self._open().addCallbacks(opened, failed)
        return joined

    def _uri_for(self, protocol: MSRPProtocol, given: Optional[URI]) -> URI:
        uri = given if given is not None else URI()
        address = protocol.transport.getHost()
        if uri.host is None:
            uri.host = address.host
        if uri.port is None:
            uri.port = address.port
        if uri.session_id is None:
            uri.session_id = new_session_id()
        uri.use_tls = self.relay.uri.use_tls
        uri.transport = self.relay.uri.transport
        return uri

    def _open(self) -> Deferred[ConnectionRouter]:
        """The connection, granted: made now unless it is there or being made."""
        router = self._router
        if router is not None and not router.protocol.lost.fired and self._opening is None:
            return succeed(router)
        if self._opening is None:
            opening = self._opening = Observer()

            def done(outcome: Any) -> None:
                if self._opening is opening:
                    self._opening = None
                opening.fire(outcome)

            self._connect(opening).addBoth(done)
        return self._opening.observe()

    @inlineCallbacks
    def _connect(self, attempt: Observer) -> Any:
        """Connect and AUTH for ``attempt``; a Failure once the attempt was given up
        (:meth:`_close_if_unused`), so that it never serves a later session."""
        host, port = yield locate_relay(self.relay)
        if self._opening is not attempt:
            raise ConnectionDone("the connection attempt was given up")
        relay_uri = self.relay.uri
        target = URI(host=host, port=port, use_tls=relay_uri.use_tls,
                     transport=relay_uri.transport)
        options = self.relay.tls_options() if relay_uri.use_tls else None
        connected, self._connector = connect_to(target, options, self.reactor, self.settings)
        try:
            protocol = yield connected
        finally:
            self._connector = None
        if self._opening is not attempt:
            protocol.close()
            raise ConnectionDone("the connection attempt was given up")
        if self.logger is not None:
            protocol.log = self.logger
        router = ConnectionRouter(protocol, self.reactor, self.settings.max_queued_bytes,
                                  self._unused)
        self._router = router
        # No refresh outlives the connection.
        protocol.lost.observe().addErrback(lambda reason: self._connection_lost(router))
        self.local_uri = self._uri_for(protocol, None)
        try:
            yield self._authenticate(router)
            if self._opening is not attempt or self._router is not router:
                raise ConnectionDone("the connection attempt was given up")
        except Exception:
            if self._router is router:
                self._router = None
                self._stop_refresh()
            protocol.close()
            raise
        return router

    def _connection_lost(self, router: ConnectionRouter) -> None:
        if self._router is router:
            self._router = None
            self._forget_connection()
        self._members = {channel: member for channel, member in self._members.items()
                         if channel.router is not router}

    def _unused(self, aborted: bool) -> bool:
        """The last session let go of the connection: True when it closes for that."""
        return self._close_if_unused(aborted)

    def _close_if_unused(self, aborted: bool) -> bool:
        """Close the connection (or give up making it) when no session uses it or
        waits for it; True when it did."""
        self._members = {channel: member for channel, member in self._members.items()
                         if channel.open}
        if self._joining or self._members:
            return False
        self._forget_connection()
        self._opening = None  # an attempt under way serves no later session
        router, self._router = self._router, None
        if router is not None:
            if aborted:
                router.protocol.abort()
            else:
                router.protocol.close()
        elif self._connector is not None:
            self._connector.disconnect()
            self._connector = None
        return router is not None

    def close(self) -> None:
        """Close the connection now: every session on it ends (its connection closed)."""
        self._forget_connection()
        self._opening = None
        router, self._router = self._router, None
        if router is not None:
            router.protocol.close()
        if self._connector is not None:
            self._connector.disconnect()
            self._connector = None

    @property
    def sessions(self) -> int:
        """How many sessions use the connection now."""
        return sum(1 for channel in self._members if channel.open)

    # AUTH.

    def _request(self, router: ConnectionRouter, chunk: MSRPData) -> Deferred[MSRPData]:
        """Send a request of the connection's own on ``router``'s connection and wait
        for its response."""
        if router.protocol.lost.fired:
            raise ConnectionDone("the relay connection closed")
        waiter = router.responses.expect(chunk.transaction_id)
        router.protocol.write_chunk(chunk)
        seconds = self.settings.bind_seconds()
        timer = self.reactor.callLater(seconds, waiter.cancel)

        def stop(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        def timed_out(failure: Failure) -> Failure:
            if failure.check(CancelledError):
                return Failure(MSRPBindSessionTimeout(
                    "the relay did not answer %s within %s seconds" % (chunk.method, seconds)))
            return failure

        return waiter.addBoth(stop).addErrback(timed_out)

    @inlineCallbacks
    def _authenticate(self, router: ConnectionRouter, to_uri: Optional[URI] = None) -> Any:
        """AUTH with the relay on ``router``'s connection (sent to ``to_uri``, by default
        the relay's own URI), then with each relay behind it (``next_relay``), through
        the ones before (RFC 4976 section 5: a client behind several relays of its own
        AUTHs with each, from the inside out). The path our peers are told names them
        the other way round, as they reach us: the outermost relay's Use-Path first."""
        beyond = self.relay.next_relay
        for _ in range(MAX_NEXT_RELAYS):
            beyond = beyond.next_relay if beyond is not None else None
        if beyond is not None:
            raise ValueError("more than %d next_relay settings (do they go round?)"
                             % MAX_NEXT_RELAYS)
        granted = yield self._exchange(router, self.relay, [to_uri or self.relay.uri])
        first_path = path = self._use_path_of(granted)
        grants = [(self.relay, granted)]
        further_relay = self.relay.next_relay
        while further_relay is not None:
            # Out through the relays granted so far (the reverse of the path's order).
            through = list(reversed(path)) + [further_relay.uri]
            response = yield self._exchange(router, further_relay, through)
            path = outside_of(self._use_path_of(response), path)
            grants.append((further_relay, response))
            further_relay = further_relay.next_relay
        return self._granted(router, first_path, path, grants)

    @inlineCallbacks
    def _exchange(self, router: ConnectionRouter, relay: MSRPRelaySettings,
                  to_path: List[URI]) -> Any:
        """One AUTH exchange (RFC 4976 section 5: challenge, answer, 200) with the last
        relay of ``to_path``, with ``relay``'s credentials; fires with its 200."""
        to_text = " ".join(str(uri) for uri in to_path)
        digest_uri = str(to_path[-1])  # the relay that checks it
        challenge = None
        nonce_count = 0
        expires = relay.expires
        for _ in range(4):
            headers = Headers([("To-Path", to_text), ("From-Path", str(self.local_uri))])
            chunk = MSRPData(new_transaction_id(), method="AUTH", headers=headers)
            if expires is not None:
                chunk.expires = expires
            if challenge is not None:
                nonce_count += 1
                chunk.authorization = answer_challenge(challenge, relay.username,
                                                       relay.password, digest_uri, nonce_count)
            response = yield self._request(router, chunk)
            if response.code == 200:
                return response
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

    @staticmethod
    def _use_path_of(response: MSRPData) -> List[URI]:
        use_path = response.use_path
        if not use_path:
            raise MSRPAuthError("the relay's 200 to AUTH has no Use-Path", code=400)
        return use_path

    def _granted(self, router: ConnectionRouter, first_path: List[URI], path: List[URI],
                 grants: List[Tuple[MSRPRelaySettings, MSRPData]]) -> None:
        """Take the relays' 200s to AUTH (``grants``): the Use-Path of them all
        (``path``; the first relay's alone is ``first_path``), and the next refresh, due
        before the shortest grant runs out; nothing when they came on a connection that
        is no longer this one's."""
        if router is not self._router or router.protocol.lost.fired:
            raise ConnectionDone("the relay connection closed")
        shortest = None
        for relay, response in grants:
            expires = response.expires if response.expires is not None else relay.expires
            if expires is None:
                expires = ASSUMED_GRANT_SECONDS
            if expires <= 0:
                raise MSRPAuthError("the relay's 200 to AUTH grants no time (Expires: %d)"
                                    % expires, code=400)
            shortest = expires if shortest is None else min(shortest, expires)
        assert shortest is not None
        self.use_path = path
        self._first_use_path = first_path
        self.auth_count += 1
        # Unpaced sending needs every relay on the way to hold senders back: only a
        # lone relay's word is taken.
        self.flow = parse_relay_flow(grants[0][1].headers.first.get(
            RELAY_FLOW_HEADER.lower())) if len(grants) == 1 else None
        self._retry_after = min(AUTH_RETRY_SECONDS, shortest * (1 - AUTH_REFRESH_FRACTION) / 2)
        self._stop_refresh()
        self._refresh_timer = self.reactor.callLater(
            shortest * AUTH_REFRESH_FRACTION, self._refresh, router)

    def _current(self, router: ConnectionRouter) -> bool:
        """Whether ``router``'s connection is this one's, and open."""
        return router is self._router and not router.protocol.lost.fired

    @inlineCallbacks
    def _refresh(self, router: ConnectionRouter) -> Any:
        """Repeat AUTH before the grant runs out. It goes to the relay's URI, as the first
        one did; a relay that answers that with 481 (the older Twisted msrprelay) gets it
        at the Use-Path URI it granted. A failure is reported and tried again later."""
        self._refresh_timer = None
        if not self._current(router):
            return
        if self._binding:
            self._refresh_timer = self.reactor.callLater(REFRESH_BIND_WAIT, self._refresh,
                                                         router)
            return
        refreshing = self._refreshing = Observer()
        old_path = list(self.use_path)
        first_path = list(self._first_use_path)
        try:
            try:
                yield self._authenticate(router)
            except MSRPAuthError as error:
                if error.code != 481 or not first_path:
                    raise
                yield self._authenticate(router, first_path[-1])
        except Exception as error:
            if not self._current(router):
                return  # the connection went: nothing to refresh, nothing to report
            self.log.error("AUTH refresh with the relay failed, trying again in {seconds} s: "
                           "{error}", seconds=self._retry_after, error=error)
            self._refresh_timer = self.reactor.callLater(self._retry_after, self._refresh,
                                                         router)
            failed = error
            self._tell(lambda member: member.refresh_failed(failed))
            return
        finally:
            if self._refreshing is refreshing:
                self._refreshing = None
            refreshing.fire(None)
        if self.use_path != old_path and self._current(router):
            # Our own requests keep the path they were bound with: Kamailio's relay
            # forwards none that name the new Use-Path first (seen: both ways stopped).
            self._tell(lambda member: member.path_changed())

    def _tell(self, call: Callable[[RelayMember], None]) -> None:
        """``call`` every session's member; an error in one is logged."""
        for channel, member in list(self._members.items()):
            if channel.open:
                try:
                    call(member)
                except Exception:
                    self.log.failure("telling {member!r} of the relay failed", member=member)

    def _stop_refresh(self) -> None:
        if self._refresh_timer is not None and self._refresh_timer.active():
            self._refresh_timer.cancel()
        self._refresh_timer = None

    def _forget_connection(self) -> None:
        """The connection is no longer this one's: no refresh of it is due, and none
        under way holds a binding back."""
        self._stop_refresh()
        refreshing, self._refreshing = self._refreshing, None
        if refreshing is not None:
            refreshing.fire(None)

    def binding(self, bind: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """Run ``bind`` once no refresh is under way, and keep refreshes off the connection
        until it is done: the binding SEND's answer and an AUTH's would cross."""
        self._binding += 1
        refreshing = self._refreshing
        ready: Deferred[Any] = refreshing.observe() if refreshing is not None \
            else succeed(None)

        def done(outcome: Any) -> Any:
            self._binding -= 1
            return outcome

        return ready.addCallback(lambda _: bind()).addBoth(done)
