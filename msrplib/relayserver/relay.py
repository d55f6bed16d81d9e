"""An MSRP relay (RFC 4976) on this library's wire engine: :class:`MSRPRelay`.

Clients AUTH with Digest and get a Use-Path naming this relay and a session-id of their
own (a binding, tied to their connection, for the Expires granted; an AUTH again on the
connection renews it and keeps its path). A SEND or REPORT whose To-Path starts with one
of our bindings is forwarded hop by hop:

- from the binding's own connection (its client sending out), to the next URI of the
  To-Path: another binding here, or a connection to that address opened on demand (TCP,
  or TLS with the name checked) and reused;
- from anywhere else, to the binding's client.

A client behind two relays of its own AUTHs with the second through the first (RFC 4976
section 5): as the first, the relay forwards such an AUTH from its client's binding and
passes every answer back; as the second, it binds the client on the first relay's
connection, and takes as the client's own only what comes on it with the client's
binding there first in the From-Path.

The relay takes itself off the To-Path and puts the URI it was addressed by, written as
it granted it, in front of the From-Path; a To-Path may name at most
``RelaySettings.max_to_path_length`` URIs, which bounds the hops a chunk can make. It
answers each chunk itself once the chunk is written to the next hop (not before), and a
next hop's refusal or silence becomes a failure REPORT to the sender (as its
Failure-Report asks), so a sender always learns of a loss. A next hop that cannot take
more stops the reading of the connection the chunk came from until it can: what the
relay holds stays bounded whatever the peers do.

A chunk whose body is larger than its next hop takes (``RelaySettings.max_chunk_size``,
64 KiB, or what ``next_hop_chunk_sizes`` says for that address: 8 KiB for Kamailio's
relay, say) is cut into chunks that are not, each with its part of the Byte-Range. A chunk
whose body the parser would stream (over ``ParserLimits.max_buffered_body``, 256 KiB) is
refused with 413.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from msrplib._chunk import (MSRPData, encode_relayed, new_transaction_id)
from msrplib._direct import connect_to
from msrplib._factories import MSRPServerFactory
from msrplib._observer import Observer
from msrplib._parser import ChunkStarted, ParserEvent
from msrplib._paths import read_paths
from msrplib._rules import (answers_success, report_flag, request_error,
                            should_respond)
from msrplib._speedups import tls_factory
from msrplib._uri import URI
from msrplib.errors import MSRPError
from msrplib.relayserver.auth import Bindings
from msrplib.relayserver.backpressure import Backpressure
from msrplib.relayserver.digestauth import DigestAuthority
from msrplib.relayserver.forwarded import (URI_TEXTS_KEPT_LENGTH, URICache, copy_request,
                                           head_fits, pieces, report_headers, uri_place)
from msrplib.relayserver.links import Forwarded, Link, add_count
from msrplib.relayserver.metrics import RelayMetrics
from msrplib.relayserver.nexthops import NextHopPolicy, NextHopRefused
from msrplib.relayserver.settings import RelaySettings
from msrplib.relayserver.sockets import address_family, listening_socket
from msrplib.tls import TLSIdentity, relay_tls_options
from msrplib.transport import MSRPProtocol

__all__ = ["MSRPRelay", "RelaySettings", "PARTIAL_ANSWER_WAIT", "CLOSE_WAIT",
           "MAX_ONWARD_PLACES", "NOT_THROUGH_A_BINDING"]

#: Seconds an error answer to a chunk with Failure-Report ``partial`` is waited for.
PARTIAL_ANSWER_WAIT = 5.0
#: Seconds a connection closed after what was written is given before it is aborted.
CLOSE_WAIT = 5.0
#: The relays further on whose grants a binding keeps the connections of (the places
#: their Use-Paths name), the latest ones.
MAX_ONWARD_PLACES = 4
#: The comment of the 403 to an AUTH for a relay further on that does not start from
#: a binding of the client's here.
NOT_THROUGH_A_BINDING = "AUTH goes further only from its client, through its binding"


class MSRPRelay(Backpressure):
    """An MSRP relay for ``realm`` whose users (name to HA1, see
    :mod:`msrplib.relayserver.users`) may AUTH. ``host`` is the address our URIs (and
    Use-Paths) name. Call :meth:`listen` for each port; :meth:`stop` ends it all."""

    log = Logger()

    def __init__(self, realm: str, users: Dict[str, str], *, host: str = "127.0.0.1",
                 settings: Optional[RelaySettings] = None, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.host = host
        self.settings = settings or RelaySettings()
        self.authority = DigestAuthority(realm, users, reactor)
        #: The relay's counters (``metrics.registry`` for an exporter).
        self.metrics = RelayMetrics()
        self._ports: List[Any] = []
        self._listeners: List[URI] = []
        #: The addresses of ``_listeners``, as :func:`_address` gives them.
        self._addresses: Set[Tuple[Optional[str], int, bool, str]] = set()
        #: The listener Use-Paths name (see :meth:`listen`), if not the AUTH's.
        self.home: Optional[URI] = None
        self._links: Set[Link] = set()
        #: The bindings its clients' AUTHs made.
        self.auth = Bindings(self.authority, self.settings, self.metrics, reactor,
                             self._refuse, self._count_unbound)
        self._uris = URICache()
        #: Where the relay may connect for its clients (``allowed_next_hops``).
        self.next_hops = NextHopPolicy(self.settings.allowed_next_hops,
                                       self.settings.refused_next_hop_networks,
                                       getattr(reactor, "nameResolver", None), reactor,
                                       self.settings.max_name_lookups,
                                       self.settings.max_name_lookups_per_user)
        self.next_hops.own.update((host.lower(), port)
                                  for port in self.settings.sibling_ports)
        #: Accepted connections that hold no binding, by the address they came from.
        self._unbound: Dict[str, int] = {}
        self._stopped = False
        self._connectors: List[Any] = []
        self._sweeper: Any = None
        # Next hops by (host, port, TLS): the link, or the Deferred while connecting.
        self._next_hops: Dict[Tuple[str, int, bool], Any] = {}
        self._outbound = 0  # links to next hops
        #: The weight of the answers awaited on every link (``max_awaited_bytes_total``),
        #: and by user (``max_awaited_bytes_per_user``, see :meth:`_send_to`).
        self._awaited_bytes = 0
        self._awaited_by_owner: Dict[str, int] = {}
        #: Connections to next hops open or opening, by the user they were opened for.
        self._opened_for: Dict[str, int] = {}

    # Listening and stopping.

    def listen(self, port: int = 0, use_tls: bool = False,
               identity: Optional[TLSIdentity] = None, interface: str = "127.0.0.1",
               reuse_port: bool = False, home: bool = False,
               fileno: Optional[int] = None) -> URI:
        """Listen on ``port`` (0: any) for ``msrp`` or, with ``use_tls``, ``msrps`` with
        ``identity`` (a certificate and key); return the relay's URI there.

        ``reuse_port`` shares the port with other processes (``SO_REUSEPORT``: the
        workers of one relay take turns at its clients). The Use-Paths this relay grants
        name the port the AUTH came to, or the one listened on with ``home``: a worker's
        own port, where the peers of its clients reach it and no other worker.
        ``fileno``: a socket already listening on ``interface`` (a worker's home, which
        its supervisor holds), accepted on in place of a new port; it is closed here."""
        uri = URI(host=self.host, use_tls=use_tls)
        limits = self.settings.connection.parser_limits
        factory: Any = MSRPServerFactory(
            lambda protocol, address: self._accepted(protocol, uri, address), limits, None,
            self.reactor)
        if use_tls:
            if identity is None:
                raise ValueError("an msrps listener needs an identity")
            factory = tls_factory(identity.server_options(), False, factory, self.reactor)
        self._open_port(uri, port, interface, factory, reuse_port, fileno)
        if home:
            self.home = uri
        return uri

    def listen_websocket(self, port: int = 0, identity: Optional[TLSIdentity] = None,
                         interface: str = "127.0.0.1", reuse_port: bool = False) -> URI:
        """Listen on ``port`` for MSRP over WebSocket (RFC 7977): ``ws``, or ``wss`` with
        ``identity``; ``reuse_port`` as :meth:`listen` has it. Its clients AUTH as the
        others do; their Use-Paths name one of the relay's TCP or TLS ports (the peers of
        a browser reach it there), so listen on one of those first. Returns the relay's
        URI there (``msrp://host:port;ws``)."""
        from msrplib.websocket import MSRPWebSocketServerFactory
        secure = identity is not None
        uri = URI(host=self.host, use_tls=secure, transport="wss" if secure else "ws")
        factory: Any = MSRPWebSocketServerFactory(
            lambda protocol: self._accepted(protocol, uri, protocol.transport.getPeer()),
            self.settings.connection.parser_limits, self.reactor,
            self.settings.connection.traffic_log)
        if identity is not None:
            factory = tls_factory(identity.server_options(), False, factory, self.reactor)
        self._open_port(uri, port, interface, factory, reuse_port)
        return uri

    def _open_port(self, uri: URI, port: int, interface: str, factory: Any,
                   reuse_port: bool, fileno: Optional[int] = None) -> None:
        """Listen on ``port`` (or accept on the socket ``fileno``) with ``factory`` and
        know ``uri`` (its port filled in) as one of this relay's own."""
        if fileno is not None:
            os.set_blocking(fileno, False)  # as Twisted accepts
            listening = self.reactor.adoptStreamPort(fileno, address_family(interface),
                                                     factory)
            os.close(fileno)  # the reactor holds a duplicate of it
        elif reuse_port:
            listening = _listen_reusing_port(self.reactor, port, interface, factory)
        else:
            listening = self.reactor.listenTCP(port, factory, interface=interface)
        uri.port = listening.getHost().port
        self.next_hops.own.add((self.host.lower(), uri.port))
        self._ports.append(listening)
        self._listeners.append(uri)
        self._addresses.add(uri_place(uri))

    def stop_accepting(self) -> Deferred[Any]:
        """Stop listening (connections open go on); fires once the ports are closed."""
        ports, self._ports = self._ports, []
        return DeferredList([succeed(port.stopListening()) for port in ports])

    @property
    def in_flight(self) -> int:
        """Chunks forwarded whose next hop has not answered yet."""
        return sum(len(link.pending) for link in self._links)

    def stop(self) -> Deferred[Any]:
        """Stop listening, give up connecting to next hops, and close every connection
        (after what was written)."""
        self._stopped = True
        if self._sweeper is not None and self._sweeper.active():
            self._sweeper.cancel()
        self._sweeper = None
        for hop in list(self._next_hops.values()):
            if isinstance(hop, Observer):
                hop.fire(Failure(ConnectionDone("the relay stopped")))
        for connector in self._connectors:
            connector.disconnect()
        self._connectors = []
        self.next_hops.cancel()
        stopped = [succeed(port.stopListening()) for port in self._ports]
        for link in list(self._links):
            stopped.append(link.protocol.lost.observe().addErrback(lambda _: None))
            self._close(link)
        self._ports = []
        return DeferredList(stopped)

    def _close(self, link: Link) -> None:
        """Close ``link`` after what was written, or abort it when that takes longer than
        :data:`CLOSE_WAIT` (a peer that reads nothing would keep it open for ever). No
        chunk goes to it meanwhile: a next hop closing is no next hop."""
        link.closing = True
        for key, value in list(self._next_hops.items()):
            if value is link:
                del self._next_hops[key]
        protocol = link.protocol
        protocol.close()
        if not protocol.lost.fired:
            timer = self.reactor.callLater(CLOSE_WAIT, protocol.abort)
            protocol.lost.observe().addBoth(lambda _: timer.active() and timer.cancel())

    @property
    def bindings(self) -> int:
        """How many bindings (AUTHed Use-Paths) there are."""
        return len(self.auth)

    # Connections.

    def _accepted(self, protocol: MSRPProtocol, listener: URI, address: Any) -> bool:
        source = str(getattr(address, "host", ""))
        settings = self.settings
        if self._stopped or len(self._links) - self._outbound >= settings.max_connections \
                or self._unbound.get(source, 0) >= settings.connection.max_unbound_per_source:
            return False
        link = self._adopt(protocol, listener, settings.max_chunk_size)
        link.source = source
        self._count_unbound(link, 1)
        return True

    def _count_opened(self, user: str, change: int) -> None:
        """Count a connection to a next hop in (1) or out of (-1) those of ``user``."""
        add_count(self._opened_for, user, change)

    def _count_unbound(self, link: Link, change: int) -> None:
        """Count ``link`` in (1) or out of (-1) the unbound connections of its source."""
        if link.source is not None:
            add_count(self._unbound, link.source, change)

    def _adopt(self, protocol: MSRPProtocol, listener: Optional[URI],
               max_chunk_size: int) -> Link:
        link = Link(protocol, listener, max_chunk_size)
        link.made_at = link.last_traffic = self.reactor.seconds()
        self._links.add(link)
        if listener is None:
            self._outbound += 1
        self.metrics.connections.inc()
        if self._sweeper is None:
            self._sweeper = self.reactor.callLater(self._sweep_interval(), self._sweep)
        protocol.set_receiver(lambda event: self._event(link, event))
        protocol.lost.observe().addBoth(lambda reason: self._lost(link))
        return link

    def _lost(self, link: Link) -> None:
        self._links.discard(link)
        if link.listener is None:
            self._outbound -= 1
            if link.opened_for is not None:
                self._count_opened(link.opened_for, -1)
        self.metrics.connections.dec()
        self._release_feeds(link, gone=True)
        for session_id in list(link.bindings):
            self.auth.unbind(session_id)
        self._count_unbound(link, -1)
        for key, value in list(self._next_hops.items()):
            if value is link:
                del self._next_hops[key]
        pending, link.pending = link.pending, {}
        for forwarded in pending.values():
            self._forget_awaited(link, forwarded)
        if link.timer is not None and link.timer.active():
            link.timer.cancel()
        link.timer = None
        for forwarded in pending.values():
            self._failed(forwarded, 503, "Next hop closed")

    def _sweep_interval(self) -> float:
        return max(0.5, min(self.settings.idle_timeout,
                            self.settings.connection.first_request_timeout) / 4)

    def _sweep(self) -> None:
        """Close the connections that sent no request within ``first_request_timeout``
        of being accepted, or have nothing to do and have carried no request or awaited
        answer for ``idle_timeout``; look again later while any is open."""
        self._sweeper = None
        now = self.reactor.seconds()
        first = self.settings.connection.first_request_timeout
        for link in list(self._links):
            if link.carries:
                self._forget_ended_carried(link)
            silent = now - link.last_traffic
            if link.listener is not None and not link.spoke and \
                    not link.protocol.parser.in_body and now - link.made_at >= first:
                link.protocol.abort()
            elif silent >= self.settings.idle_timeout and not link.bindings \
                    and not link.pending and not link.feeds and not link.closing \
                    and not link.carries:
                self._close(link)
            elif link.stalled_since is not None and link.protocol.writing_paused and \
                    now - link.stalled_since >= self.settings.response_timeout and \
                    not link.overwhelmed:
                # Its socket has not drained for that long (it reads slowly, or not at
                # all): those held for it are read again, and what they send it is
                # refused (503) until it drains. It is not closed: it may be reading.
                link.overwhelmed = True
                self._release_feeds(link, gone=True)
        if self._links and not self._stopped:
            self._sweeper = self.reactor.callLater(self._sweep_interval(), self._sweep)

    def _granted_further(self, link: Link, entry: Forwarded, response: MSRPData) -> None:
        """A relay further on granted, over ``link``, an AUTH that came through the
        binding ``entry`` names. That grant is tied to ``link``: it is kept open while
        the binding lasts, and what the binding's client sends to the Use-Path granted
        goes over it, whatever address that names (a worker's home port, say, while the
        AUTH went to the port its workers share)."""
        binding = self.auth.get(entry.our_uri.session_id)
        if binding is None:
            return
        if link.carries is None:
            link.carries = set()
        link.carries.add(binding.session_id)
        try:
            granted = response.use_path
        except MSRPError:
            return
        if not granted:
            return
        onward = binding.onward if binding.onward is not None else {}
        place = uri_place(granted[0])
        onward.pop(place, None)
        if len(onward) >= MAX_ONWARD_PLACES:
            del onward[next(iter(onward))]
        onward[place] = link
        binding.onward = onward

    def _forget_ended_carried(self, link: Link) -> None:
        """Forget the bindings of ours whose grants ``link`` (to a relay further on)
        carries that have ended here."""
        link.carries = {session_id for session_id in link.carries or ()
                        if self.auth.get(session_id) is not None} or None

    def _event(self, link: Link, event: ParserEvent) -> None:
        if not isinstance(event, MSRPData):  # a streamed chunk: refused and skipped
            if isinstance(event, ChunkStarted) and event.chunk.method is not None:
                self._refuse(link, event.chunk, 413, "Chunk too large to relay")
            return
        if event.code is not None:
            self._answered(link, event)  # traffic only if it answers what we asked
            return
        link.last_traffic = self.reactor.seconds()
        link.spoke = True
        error = request_error(event)
        if error is not None:
            self._refuse(link, event, error.code or 400, error.comment)
        elif event.method == "SEND" or event.method == "REPORT":
            self._forward(link, event)
        elif event.method == "AUTH":
            self._auth(link, event)
        else:
            self._refuse(link, event, 501, "Method not relayed")

    def _refuse(self, link: Link, request: MSRPData, code: int,
                comment: Optional[str] = None) -> None:
        """Answer ``request`` with ``code`` as its Failure-Report allows (a REPORT gets no
        answer at all, RFC 4975 section 7.1.2)."""
        self.metrics.refusals.labels(str(code)).inc()
        if request.method != "REPORT" and should_respond(request, code):
            link.protocol.write_response(request, code, comment)

    # AUTH.

    def _ours(self, uri: URI, listener: Optional[URI] = None) -> bool:
        """Whether ``uri`` names this relay (one of its listening ports, or ``listener``
        when given)."""
        if listener is not None:
            return uri_place(uri) == uri_place(listener)
        return uri_place(uri) in self._addresses

    def _auth(self, link: Link, request: MSRPData) -> None:
        """An AUTH: for this relay when its only To-Path URI names the port the
        connection came to. It comes from a client (one From-Path URI) or through the
        client's own relay in front of us (more: see :meth:`Bindings.answer`). An AUTH
        with more To-Path URIs is for a relay further on, sent through a binding here:
        it is forwarded (:meth:`_forward`). Others get 403; one whose headers do not
        parse (Authorization, Expires...) gets 400."""
        try:
            to_path, from_path = read_paths(request)
            if len(to_path) > 1:
                self._forward(link, request)
                return
            if len(to_path) != 1 or not from_path or link.listener is None or \
                    not self._ours(to_path[0], link.listener):
                self._refuse(link, request, 403, "AUTH is for this relay, from its client")
                return
            through = None
            if len(from_path) > 1:
                # Through the client's relay: a path that came by us already would
                # have chunks go round it (each relay on the way could be one of ours).
                if any(self._ours(uri) for uri in from_path):
                    self._refuse(link, request, 403, "AUTH came back to this relay")
                    return
                if len(request.headers.first["from-path"].split()[0]) > \
                        URI_TEXTS_KEPT_LENGTH:
                    self._refuse(link, request, 400, "From-Path URI too long to bind")
                    return
                through = from_path[0]
            self.auth.answer(link, request, self._use_path_port(to_path[0]), through)
        except (MSRPError, ValueError, TypeError) as error:
            self.log.info("refused an AUTH from {peer}: {error}",
                          peer=link.protocol.transport.getPeer(), error=str(error)[:200])
            self._refuse(link, request, 400)

    def _use_path_port(self, relay_uri: URI) -> URI:
        """Where the Use-Paths granted to an AUTH sent to ``relay_uri`` lead: the worker's
        own port (:meth:`listen` with ``home``), else that port, or for a WebSocket
        client, whose peers reach it through a TCP or TLS port of ours, one of those."""
        if self.home is not None:
            return self.home
        if relay_uri.transport.lower() == "tcp":
            return relay_uri
        return next((mine for mine in self._listeners if mine.transport.lower() == "tcp"),
                    relay_uri)

    # Forwarding.

    def _forward(self, link: Link, request: MSRPData) -> None:
        """A SEND or REPORT: to the client of the binding its To-Path starts with, or from
        that client to the next URI. Only those first URIs are read (a long path costs
        no more than a short one); the rest of the To-Path goes on as it came.

        An AUTH goes only the client's way out, to a relay further on (RFC 4976: a
        client behind two relays of its own AUTHs with the second through the first),
        and its answer comes back to the client as it came (:meth:`_answer_back`)."""
        first_headers = request.headers.first
        to_hops = (first_headers.get("to-path") or "").split()
        from_text = (first_headers.get("from-path") or "").strip()
        if len(to_hops) < 2 or not from_text:
            self._refuse(link, request, 400, "Nothing to forward to")
            return
        if len(to_hops) > self.settings.max_to_path_length:
            self._refuse(link, request, 403, "To-Path too long")
            return
        is_auth = request.method == "AUTH"
        try:
            first = self._uris.get(to_hops[0])
            binding = self.auth.get(first.session_id) if self._ours(first) \
                else None
            if binding is None:
                if is_auth:
                    self._refuse(link, request, 403, NOT_THROUGH_A_BINDING)
                else:
                    self._refuse(link, request, 481, "No such session here")
                return
            if link is not binding.link or (binding.through is not None and self._uris.get(
                    from_text.split(None, 1)[0]) != binding.through):
                # To the client, whose answers are awaited.
                if is_auth:
                    self._refuse(link, request, 403, NOT_THROUGH_A_BINDING)
                    return
                self._send_to(link, request, (" ".join(to_hops[1:]),
                                              binding.text + " " + from_text),
                              first, binding.link, binding.user)
                return
            following = self._uris.get(to_hops[1])
        except MSRPError as error:
            self._refuse(link, request, 400, error.comment)
            return
        if is_auth and self._ours(following):
            self._refuse(link, request, 403, "AUTH through this relay to itself")
            return
        local = self.auth.get(following.session_id) \
            if len(to_hops) > 2 and self._ours(following) else None
        if local is not None:
            # The next hop is another binding here: as if it had come to us from outside.
            self._send_to(link, request, (" ".join(to_hops[2:]), " ".join(
                [local.text, binding.text, from_text])), following, local.link, local.user)
            return
        paths = (" ".join(to_hops[1:]), binding.text + " " + from_text)
        if binding.onward is not None:
            granted_over = binding.onward.get(uri_place(following))
            if granted_over is not None and not granted_over.closing and \
                    not granted_over.protocol.lost.fired:
                # A relay further on that granted the client an AUTH over this link.
                self._send_to(link, request, paths, first, granted_over, binding.user)
                return
        self._send_to_address(link, request, paths, first, following, binding.user)

    def _send_to_address(self, origin: Link, request: MSRPData, paths: Tuple[str, str],
                         our_uri: URI, target: URI, user: str) -> None:
        """Forward ``request`` for ``user``'s binding to the address ``target``, over the
        connection there, opened when there is none (within ``max_next_hops``, and
        ``max_next_hops_per_user`` opened for one user)."""
        if target.transport.lower() != "tcp":
            # WebSocket is a client's way to its relay (RFC 7977), never to a next hop.
            self._refuse(origin, request, 400, "Next hops are reached over TCP only")
            return
        key = (target.host or "", target.effective_port, target.use_tls)
        hop = self._next_hops.get(key)
        if isinstance(hop, Link):
            self._send_to(origin, request, paths, our_uri, hop, user)
            return
        if hop is None:
            if len(self._next_hops) >= self.settings.max_next_hops or \
                    self._opened_for.get(user, 0) >= self.settings.max_next_hops_per_user:
                self._refuse(origin, request, 503, "Too many next hops")
                return
            hop = self._connect(key, target, user)
            if not hop.fired:  # else it is there already, or failed at once
                self._next_hops[key] = hop
        assert isinstance(hop, Observer)
        # Read no more from the origin until the next hop is there (or is not).
        pause = ("connecting", key)
        origin.protocol.pause_reading(pause)

        def connected(link: Link) -> None:
            origin.protocol.resume_reading(pause)
            self._send_to(origin, request, paths, our_uri, link, user)

        def failed(reason: Failure) -> None:
            origin.protocol.resume_reading(pause)
            if reason.check(NextHopRefused):
                self._refuse(origin, request, 403, "Next hop not allowed")
                return
            self.log.info("next hop {hop} unreachable: {error}", hop=str(target),
                          error=reason.value)
            self._refuse(origin, request, 503, "Next hop unreachable")

        hop.observe().addCallbacks(connected, failed)

    def _connect(self, key: Tuple[str, int, bool], target: URI, user: str) -> Observer:
        """The link to ``target`` being made for ``user``: an Observer that the chunks
        waiting for it observe. The name is resolved here, and the address connected to
        is one :attr:`next_hops` allows (:class:`NextHopRefused` otherwise)."""
        made = Observer()
        self._count_opened(user, 1)
        address = maybeDeferred(self.next_hops.address_of, target.host or "",
                                target.effective_port,
                                self.settings.connection.connect_timeout, user)

        def dial(host: str) -> Deferred[MSRPProtocol]:
            if self._stopped:
                raise ConnectionDone("the relay stopped")
            try:
                options = relay_tls_options(target.host or "", self.settings.trust_root,
                                            None, self.settings.verify_tls) \
                    if target.use_tls else None
                connected, connector = connect_to(target, options, self.reactor,
                                                  self.settings.connection,
                                                  (host, target.effective_port))
            except Exception:
                self.log.failure("could not connect to next hop {hop}", hop=str(target))
                raise ConnectionDone("no connection to %s" % target) from None
            self._connectors.append(connector)

            def forget(outcome: Any) -> Any:
                if connector in self._connectors:
                    self._connectors.remove(connector)
                return outcome

            return connected.addBoth(forget)

        def done(protocol: MSRPProtocol) -> None:
            if self._stopped:
                self._count_opened(user, -1)
                protocol.abort()
                self._next_hops.pop(key, None)
                made.fire(Failure(ConnectionDone("the relay stopped")))
                return
            limit = self.settings.next_hop_chunk_sizes.get(
                (key[0], key[1]), self.settings.max_chunk_size)
            link = self._adopt(protocol, None, limit)
            link.opened_for = user
            self._next_hops[key] = link
            made.fire(link)

        def failed(reason: Failure) -> None:
            self._count_opened(user, -1)
            self._next_hops.pop(key, None)
            made.fire(reason)

        address.addCallback(dial).addCallbacks(done, failed)
        return made

    def _send_to(self, origin: Link, request: MSRPData, paths: Tuple[str, str],
                 our_uri: URI, target: Link, user: str) -> None:
        """Write ``request`` to ``target`` with ``paths`` (the text of its new To-Path and
        From-Path) and an id of its own (cut into pieces ``target`` takes); answer
        ``request`` as its Failure-Report asks once it is written, and wait for the next
        hop's answer. Its weight counts in ``user``'s share of the answers awaited: the
        user of the binding it goes to, who answers (or not), or of the one it leaves
        from, to a next hop by address."""
        if target.protocol.lost.fired or target.closing:
            self._refuse(origin, request, 503, "Next hop gone")
            return
        behind = self._behind(target)
        if behind and (origin is target or target.overwhelmed or
                       origin.read_for_answers_until > self.reactor.seconds()):
            # It cannot be held back: not on its own answers, not while it is read again
            # for the answers it owed (it would push more each time), and not for a next
            # hop that has been behind too long.
            self._refuse(origin, request, 503, "Next hop behind")
            return
        if behind or origin.parked:
            # Chunks parsed from a read before their sender was held back (or behind
            # one that was): they wait, in order, until it is let go, and the next hop
            # gets nothing more while it is behind.
            self._park(origin, (request, paths, our_uri, target, user))
            if behind:
                self._hold_feed(origin, target)
            return
        self._write_to(origin, request, paths, our_uri, target, user)

    def _write_to(self, origin: Link, request: MSRPData, paths: Tuple[str, str],
                  our_uri: URI, target: Link, user: str) -> None:
        """:meth:`_send_to`'s writing, once the next hop can take the chunk."""
        if target.protocol.lost.fired or target.closing:
            self._refuse(origin, request, 503, "Next hop gone")
            return
        failure_report = report_flag(request, "failure-report")
        method = request.method
        protocol = target.protocol
        limits = self.settings.connection.parser_limits
        direct = len(request.data) <= target.max_chunk_size and protocol.takes_encoded_chunks
        if direct:
            transaction_id = new_transaction_id()
            head, end = encode_relayed(request, transaction_id, *paths)
            heads = [head]
        else:
            if method != "SEND" and len(request.data) > target.max_chunk_size:
                # Only a SEND is cut: a next hop that takes no chunk so large (Kamailio
                # closes the connection, and every session on it ends) gets none.
                self._refuse(origin, request, 413, "Too large for the next hop")
                return
            cut = pieces(copy_request(request, *paths), target.max_chunk_size)
            heads = [piece.encode_start(False) for piece in cut]
        if not all(head_fits(head, limits) for head in heads):
            self._refuse(origin, request, 400, "Headers too long to forward")
            return
        is_auth = method == "AUTH"  # its answer goes back to its sender, whatever it is
        awaits = (method == "SEND" and failure_report != "no") or is_auth
        if awaits:
            headers, size = report_headers(request.headers, len(heads[0]))
            weight = size * len(heads)
            if self._awaited_bytes + weight > self.settings.max_awaited_bytes_total or \
                    self._awaited_by_owner.get(user, 0) + weight > \
                    self.settings.max_awaited_bytes_per_user:
                self._refuse(origin, request, 503, "Relay busy")
                return
        if direct:
            protocol.write_encoded(head, request.data, end)
            written = [transaction_id]
        else:
            for piece in cut:
                protocol.write_chunk(piece, check_body=False)
            written = [piece.transaction_id for piece in cut]
        self.metrics.forwarded(method or "", len(request.data))
        now = target.last_traffic = self.reactor.seconds()
        if awaits:
            # An answer that may come is awaited with what a failure REPORT needs (not
            # the body): for 30 s, or for Failure-Report partial, whose silence is
            # success, PARTIAL_ANSWER_WAIT.
            wait = self.settings.response_timeout \
                if failure_report != "partial" or is_auth \
                else min(PARTIAL_ANSWER_WAIT, self.settings.response_timeout)
            awaited = Forwarded(origin, MSRPData(request.transaction_id, method=method,
                                                 headers=headers),
                                our_uri, now + wait, size, owner=user,
                                answers_back=is_auth)
            for transaction_id in written:
                target.pending[transaction_id] = awaited
            target.awaited_bytes += weight
            self._awaited_bytes += weight
            add_count(self._awaited_by_owner, user, weight)
            if target.timer is None:
                self._watch(target)
        if method == "SEND" and answers_success(failure_report):
            origin.protocol.write_response(request, 200)
        if origin is not target and self._behind(target):
            # The next hop cannot take more for now, or owes too many answers: read no
            # more of what feeds it until it can (or its answers are overdue). Never a
            # connection on itself: its own answers would go unread.
            self._hold_feed(origin, target)

def _listen_reusing_port(reactor: Any, port: int, interface: str, factory: Any) -> Any:
    """Listen on ``port`` with ``SO_REUSEPORT``, which Twisted's ``listenTCP`` does not
    set: the socket is made here and handed to the reactor."""
    listening = listening_socket(interface, port, reuse_port=True)
    try:
        return reactor.adoptStreamPort(listening.fileno(), listening.family, factory)
    finally:
        listening.close()  # the reactor holds a duplicate of it
