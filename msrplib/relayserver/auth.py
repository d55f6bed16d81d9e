"""The relay's AUTH side (RFC 4976 section 5): :class:`Bindings` answers AUTH requests
with HTTP Digest (:class:`~msrplib.relayserver.digestauth.DigestAuthority`) and keeps the
bindings it grants: a Use-Path with a session-id of the client's own, tied to the
client's connection, for the Expires granted. An AUTH again on the connection, by the
same user, renews the binding and keeps its Use-Path.

A client behind a relay of its own in front of this one AUTHs through that relay (RFC
4976 section 5): its binding is tied to that relay's connection and to the first URI of
the AUTH's From-Path (the client's binding there), which the client's requests name
first when that relay forwards them; the Use-Path granted names this relay only, and the
client puts it after the first relay's. Several clients of that relay (or one user's
several) each have their own binding on the one connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from msrplib._chunk import MSRPData, make_response
from msrplib._relaysettings import RELAY_FLOW_HEADER
from msrplib._server import new_session_id
from msrplib._uri import URI
from msrplib.relayserver.digestauth import GRANTED, STALE, DigestAuthority
from msrplib.relayserver.links import Link
from msrplib.relayserver.metrics import RelayMetrics
from msrplib.relayserver.settings import RelaySettings

__all__ = ["Binding", "Bindings"]

#: What a refusal is: the link, the request, its code and comment.
Refusal = Callable[[Link, MSRPData, int, Optional[str]], None]


@dataclass
class Binding:
    """A Use-Path granted: its session-id and URI, the connection and user it is for, and
    the timer that ends it. ``through``: for a client behind a relay of its own, the
    first From-Path URI its AUTH came with (its binding at that relay); ``None`` for a
    client on its own connection."""

    session_id: str
    uri: URI
    link: Link
    user: str
    timer: Any = None
    through: Optional[URI] = None
    _text: str = ""
    #: Where a relay further on granted the client an AUTH through this binding: the
    #: connection, by the place its Use-Path names (``MSRPRelay._granted_further``).
    onward: Optional[Dict[Tuple[Optional[str], int, bool, str], Link]] = None

    @property
    def text(self) -> str:
        """The URI as the relay writes it in the From-Paths it forwards (made when first
        needed: an idle binding does without)."""
        if not self._text:
            self._text = str(self.uri)
        return self._text


def _ends_at(binding: Binding) -> float:
    """When ``binding``'s grant runs out (the reactor's seconds)."""
    return binding.timer.getTime() if binding.timer is not None else 0.0


class Bindings:
    """The bindings of one relay, by session-id, and the AUTH exchange that makes them.

    ``refuse`` answers a request with an error as the relay does; ``bound`` is told when
    a connection gets its first binding (-1) or loses its last (+1)."""

    def __init__(self, authority: DigestAuthority, settings: RelaySettings,
                 metrics: RelayMetrics, reactor: Any, refuse: Refusal,
                 bound: Callable[[Link, int], None]) -> None:
        self.authority = authority
        self.settings = settings
        self.metrics = metrics
        self.reactor = reactor
        self._refuse = refuse
        self._bound = bound
        self._by_id: Dict[str, Binding] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, session_id: Optional[str]) -> Optional[Binding]:
        """The binding of ``session_id``, if there is one."""
        return self._by_id.get(session_id or "")

    def answer(self, link: Link, request: MSRPData, named: URI,
               through: Optional[URI] = None) -> None:
        """Answer an AUTH for this relay from its client on ``link`` (or through the
        client's relay, whose URI for the client is ``through``): a challenge, 423, 403,
        or 200 with a Use-Path on ``named`` (where the client's peers reach this relay).
        ``MSRPError``, ``ValueError`` or ``TypeError`` for headers that do not parse."""
        authorization = request.authorization
        if authorization is None:
            self._challenge(link, request, stale=False)
            return
        uri_text = request.headers.first.get("to-path", "").strip()
        verdict, user = self.authority.check(authorization, "AUTH", uri_text)
        self.metrics.auths.labels(verdict).inc()
        if verdict != GRANTED:
            self._challenge(link, request, stale=verdict == STALE)
            return
        settings = self.settings
        asked = request.expires
        if asked is not None and not settings.min_expires <= asked <= settings.max_expires:
            response = make_response(request, 423)
            response.headers.add("Min-Expires", str(settings.min_expires))
            response.headers.add("Max-Expires", str(settings.max_expires))
            link.protocol.write_chunk(response)
            return
        binding = self._renewed(link, user, named, asked or settings.default_expires,
                                through)
        if binding is None:
            self._refuse(link, request, 403, "Too many bindings on this connection")
            return
        response = make_response(request, 200)
        response.headers.add("Use-Path", str(binding.uri))
        response.headers.add("Expires", str(asked or settings.default_expires))
        # It holds senders back itself: a client of msrplib then sends unpaced.
        response.headers.add(RELAY_FLOW_HEADER, "backpressure; max-chunk-size=%d"
                             % settings.max_chunk_size)
        link.protocol.write_chunk(response)

    def _challenge(self, link: Link, request: MSRPData, stale: bool) -> None:
        response = make_response(request, 401)
        response.headers.add("WWW-Authenticate", str(self.authority.challenge(stale)))
        link.protocol.write_chunk(response)

    def _renewed(self, link: Link, user: str, named: URI, expires: int,
                 through: Optional[URI]) -> Optional[Binding]:
        """The user's binding on ``link`` (through ``through``), renewed for ``expires``
        seconds (made when it has none), or ``None`` past the limits of bindings on a
        connection: ``max_bindings_per_connection``, or from a relay
        ``max_bindings_through_a_relay``. Past ``max_bindings_through_a_relay_per_user``
        on a relay's connection, the user's binding there that ends soonest is ended."""
        binding = next((self._by_id[session_id] for session_id in link.bindings
                        if self._by_id[session_id].user == user and
                        self._by_id[session_id].through == through), None)
        if binding is None:
            settings = self.settings
            if through is None:
                if len(link.bindings) >= settings.max_bindings_per_connection:
                    return None
            else:
                users = [self._by_id[session_id] for session_id in link.bindings
                         if self._by_id[session_id].user == user]
                if len(users) >= settings.max_bindings_through_a_relay_per_user:
                    # The user's binding that ends soonest makes way: a client that
                    # connects to the first relay again AUTHs through a new binding
                    # there, and the one its last connection had is no use.
                    self.unbind(min(users, key=_ends_at).session_id)
                elif len(link.bindings) >= settings.max_bindings_through_a_relay:
                    return None
            session_id = new_session_id()
            uri = URI(host=named.host, port=named.effective_port, use_tls=named.use_tls,
                      session_id=session_id)
            binding = Binding(session_id, uri, link, user, through=through)
            self._by_id[session_id] = binding
            self.metrics.bindings.inc()
            if not link.bindings:
                self._bound(link, -1)
            link.bindings.add(session_id)
        if binding.timer is not None and binding.timer.active():
            binding.timer.cancel()
        binding.timer = self.reactor.callLater(expires, self.unbind, binding.session_id)
        return binding

    def unbind(self, session_id: str) -> None:
        """End the binding of ``session_id`` (its grant ran out, or its connection
        closed)."""
        binding = self._by_id.pop(session_id, None)
        if binding is None:
            return
        self.metrics.bindings.dec()
        binding.link.bindings.discard(session_id)
        if not binding.link.bindings:
            self._bound(binding.link, 1)
        if binding.timer is not None and binding.timer.active():
            binding.timer.cancel()
