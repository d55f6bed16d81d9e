"""The relay's bounds and timings: :class:`RelaySettings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from msrplib._bind import ConnectionSettings
from msrplib.relayserver.nexthops import REFUSED_BY_DEFAULT

__all__ = ["RelaySettings"]


@dataclass
class RelaySettings:
    """The relay's bounds and timings.

    ``min_expires``, ``max_expires``: the grants allowed (an AUTH asking for another
    gets 423); ``default_expires``: the grant of an AUTH that asks for none.
    ``max_chunk_size``: the largest chunk body forwarded (larger ones are cut), and
    ``next_hop_chunk_sizes``: smaller limits by next hop ``(host, port)``.
    ``response_timeout``: seconds a next hop has to answer a forwarded SEND before its
    sender gets a 408 failure REPORT. ``max_bindings_per_connection``: AUTHs with new
    bindings one connection may make (403 past it), and ``max_bindings_through_a_relay``
    the same for a connection from a relay that AUTHs for its clients (one binding for
    each of them), of which one user may hold ``max_bindings_through_a_relay_per_user``:
    a new one past it ends the user's binding there that ends soonest (its client has
    most likely gone: a client that connects again AUTHs through a new binding).
    ``max_to_path_length``: the URIs a request's To-Path may name (403 past it): each
    relay takes one off, so a path cannot have a chunk go round between relays for
    longer. ``max_connections``: connections at
    once (a new one past it is closed at once). ``idle_timeout``: seconds a connection
    that holds no binding and owes or awaits nothing may stay silent before it is closed
    (next hops' connections included); one accepted must send its first request within
    ``connection.first_request_timeout``. ``connection``: connecting and
    parsing (``ConnectionSettings``). ``allowed_next_hops``: the addresses the relay may
    connect to for its clients, as networks (``10.0.0.0/8``, ``192.0.2.7``) or host names
    (``relay.example.com``); ``None``: any (a request for another gets 403).
    ``refused_next_hop_networks``: networks never connected to unless
    ``allowed_next_hops`` names them (loopback, link-local, the other special-purpose
    ones and cloud metadata addresses by default: :mod:`~msrplib.relayserver.nexthops`).
    A next hop's name is resolved by the relay and checked address by address; the
    relay's own ports are always allowed, and so are ``sibling_ports``, the ports of
    other relay processes on its host (its fellow workers) that it forwards to. At most
    ``max_name_lookups`` names are looked up at once, ``max_name_lookups_per_user`` for
    one user (past those, 503): lookups run in the reactor's thread pool (10 threads by
    default), which they must not fill.
    ``trust_root`` and ``verify_tls``: how next hops over TLS are checked (their
    certificate must chain to ``trust_root``, the platform's by default, and name the
    host; ``verify_tls=False`` for tests only).
    ``connection.max_unbound_per_source``: accepted connections that hold no binding, at
    once, from one address (a new one past it is closed at once; a client's connection
    stops counting once an AUTH is granted). ``max_next_hops``: connections to next hops
    open or being opened at once, and ``max_next_hops_per_user``: of those, opened for
    one user's clients (a chunk that needs another gets 503). ``max_awaited_bytes``: the
    weight (in memory) of the headers kept, per next hop, of chunks whose answer it owes;
    past it, as past :data:`~msrplib.relayserver.backpressure.MAX_AWAITED_ANSWERS`
    answers, what feeds it is not read until it has answered half. ``max_awaited_bytes_total``: the
    same for all next hops together, and ``max_awaited_bytes_per_user`` for what one
    user's clients (or one address that holds no binding) sent; past either, a chunk
    whose answer would be awaited is refused with 503 (its sender learns at once): a
    chunk to a binding counts for the binding's user, who answers it, one to a next hop
    by address for its sender's. When a next hop's socket has not drained for
    ``response_timeout``, those held for it are read again, and what they send it is
    refused with 503 until it drains.
    """

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 600
    max_chunk_size: int = 64 * 1024
    next_hop_chunk_sizes: Dict[Tuple[str, int], int] = field(default_factory=dict)
    response_timeout: float = 30.0
    max_bindings_per_connection: int = 16
    max_bindings_through_a_relay: int = 1024
    max_bindings_through_a_relay_per_user: int = 64
    max_to_path_length: int = 10
    max_connections: int = 20000
    idle_timeout: float = 300.0
    connection: ConnectionSettings = field(default_factory=ConnectionSettings)
    trust_root: Any = None
    verify_tls: bool = True
    allowed_next_hops: Optional[List[str]] = None
    refused_next_hop_networks: List[str] = field(
        default_factory=lambda: list(REFUSED_BY_DEFAULT))
    sibling_ports: List[int] = field(default_factory=list)
    max_name_lookups: int = 8
    max_name_lookups_per_user: int = 2
    max_next_hops: int = 10000
    max_next_hops_per_user: int = 64
    max_awaited_bytes: int = 4 * 1024 * 1024
    max_awaited_bytes_total: int = 256 * 1024 * 1024
    max_awaited_bytes_per_user: int = 32 * 1024 * 1024
