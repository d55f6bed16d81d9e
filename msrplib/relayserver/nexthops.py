"""Which addresses the relay connects to for its clients: :class:`NextHopPolicy`.

A client's To-Path names the next hop, so an AUTHed user could have the relay connect
anywhere it can: its own loopback, a cloud's metadata address (``169.254.169.254``), a
host of its own network. The relay therefore resolves a next hop's name itself, checks
each address it gets, and connects to an address it checked: a name that resolves
somewhere else a moment later (DNS rebinding) changes nothing, and neither do spellings
of an address that only the resolver reads (``127.1``, ``2130706433``) or IPv6 ones that
carry an IPv4 address (``::ffff:127.0.0.1``, NAT64 ``64:ff9b::7f00:1``, 6to4).

Name lookups run in the reactor's thread pool (``getaddrinfo``) and may outlive the time
the relay waits for them; they are counted until they really end, relay-wide and by
user, so that names that never answer cannot fill the pool.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IResolutionReceiver
from zope.interface import implementer

__all__ = ["NextHopPolicy", "NextHopRefused", "SPECIAL_PURPOSE_NETWORKS",
           "METADATA_ADDRESSES", "REFUSED_BY_DEFAULT"]

#: The networks no next hop is connected to unless ``allowed_next_hops`` names them:
#: "this host", loopback, link-local (cloud metadata services), multicast and reserved.
SPECIAL_PURPOSE_NETWORKS = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4",
                            "240.0.0.0/4", "::/128", "::1/128", "fe80::/10", "ff00::/8")
#: Cloud metadata services outside those networks (AWS's IPv6 one, Alibaba's), refused
#: with them by default.
METADATA_ADDRESSES = ("fd00:ec2::254/128", "100.100.100.200/32")
#: What a relay refuses unless told otherwise (``refused_next_hop_networks``).
REFUSED_BY_DEFAULT = SPECIAL_PURPOSE_NETWORKS + METADATA_ADDRESSES

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


class NextHopRefused(Exception):
    """No address of a next hop is one the relay may connect to."""


def _address(text: str) -> Optional[Address]:
    """``text`` as an IP address (an IPv4-mapped IPv6 one as IPv4), or None for a name."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forms(address: Address) -> List[Address]:
    """``address`` and the IPv4 address an IPv6 one carries (NAT64, 6to4, IPv4-compatible
    or -translated), which a gateway on the way may connect to."""
    forms: List[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.sixtofour is not None:
            forms.append(address.sixtofour)
        elif any(address in network
                 for network in (_NAT64, _IPV4_COMPATIBLE, _IPV4_TRANSLATED)):
            forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return forms


class NextHopPolicy:
    """The addresses the relay may connect to for its clients.

    ``allowed``: networks (``10.0.0.0/8``, ``192.0.2.7``) and host names
    (``relay.example.com``) allowed, or None for any address outside ``refused``. A host
    name allowed is allowed whatever it resolves to; a network allowed is allowed even
    inside ``refused`` (``127.0.0.0/8`` for relays on one host, in tests). :attr:`own`
    holds the ``(host, port)`` places of the relay itself and of its sibling workers,
    always allowed, at those ports only. ``resolver``: an ``IHostnameResolver`` (the
    reactor's ``nameResolver``); at most ``max_lookups`` names are looked up at once,
    ``max_lookups_per_owner`` for one owner (a user)."""

    def __init__(self, allowed: Optional[Sequence[str]], refused: Sequence[str],
                 resolver: Any, reactor: Any, max_lookups: int = 8,
                 max_lookups_per_owner: int = 2) -> None:
        self.open = allowed is None
        self.allowed_names: Set[str] = set()
        self.allowed_networks: List[Network] = []
        for entry in allowed or ():
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allowed_names.add(entry.lower())
        self.refused_networks = [ipaddress.ip_network(entry, strict=False)
                                 for entry in refused]
        #: ``(host, port)``: the relay's own listeners and its workers' home ports.
        self.own: Set[Tuple[str, int]] = set()
        self.resolver = resolver
        self.reactor = reactor
        self.max_lookups = max_lookups
        self.max_lookups_per_owner = max_lookups_per_owner
        #: The lookups under way (their results perhaps no longer waited for), by owner.
        self.lookups: Dict[str, int] = {}
        self._waiting: Set[_Addresses] = set()

    def allows(self, address: str, name: Optional[str] = None) -> bool:
        """Whether the relay may connect to ``address`` (an IP address), found for the
        host name ``name``."""
        if name is not None and name.lower() in self.allowed_names:
            return True
        parsed = _address(address)
        if parsed is None:
            return False
        forms = _forms(parsed)
        if any(form in network for form in forms for network in self.allowed_networks):
            return True
        if any(form in network for form in forms for network in self.refused_networks):
            return False
        return self.open

    def address_of(self, host: str, port: int, timeout: float,
                   owner: str = "") -> Deferred[str]:
        """The first address of ``host`` the relay may connect to at ``port``: ``host``
        itself when it is an address, else one the resolver gives within ``timeout``
        seconds (the lookup counts as ``owner``'s). Fails with :class:`NextHopRefused`
        when there is none allowed, or ``DNSLookupError`` when there is none at all, no
        answer in time, or too many lookups under way. Cancelling it stops the wait."""
        if (host.lower(), port) in self.own:
            return succeed(host)  # a name of its own: connected to as it resolves
        if _address(host) is not None:
            return succeed(host) if self.allows(host) else fail(NextHopRefused(host))
        if sum(self.lookups.values()) >= self.max_lookups or \
                self.lookups.get(owner, 0) >= self.max_lookups_per_owner:
            return fail(DNSLookupError("%s: too many names being looked up" % host))
        found = _Addresses(host, lambda: self._ended(owner))
        self.lookups[owner] = self.lookups.get(owner, 0) + 1
        try:
            self.resolver.resolveHostName(found, host, 0)
        except Exception as error:  # no resolver, or one that cannot take this name
            found.resolutionComplete()
            found.done.addErrback(lambda _: None)
            return fail(DNSLookupError("%s: %s" % (host, error)))
        if not found.done.called:
            self._waiting.add(found)
            found.timer = self.reactor.callLater(timeout, found.time_out)

            def waited(outcome: Any) -> Any:
                self._waiting.discard(found)
                return outcome

            found.done.addBoth(waited)

        def choose(addresses: List[str]) -> str:
            for address in addresses:
                if self.allows(address, host):
                    return address
            if addresses:
                raise NextHopRefused(host)
            raise DNSLookupError(host)

        return found.done.addCallback(choose)

    def cancel(self) -> None:
        """Stop waiting for every lookup under way (the relay stops)."""
        for found in list(self._waiting):
            found.done.cancel()

    def _ended(self, owner: str) -> None:
        self.lookups[owner] -= 1
        if not self.lookups[owner]:
            del self.lookups[owner]


@implementer(IResolutionReceiver)
class _Addresses:
    """What a resolution of ``name`` gives: ``done`` fires with the addresses found, or
    fails when :meth:`time_out` comes first; ``ended`` is called (once) when the lookup
    really ends, in time or not."""

    def __init__(self, name: str, ended: Any) -> None:
        self.name = name
        self._ended: Optional[Any] = ended
        self.addresses: List[str] = []
        self.timer: Any = None
        self.done: Deferred[List[str]] = Deferred(lambda _: self._stop_timer())

    def resolutionBegan(self, resolution: Any) -> None:
        """Nothing to do: ``done`` is there already."""

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        ended, self._ended = self._ended, None
        if ended is not None:  # once, whatever the resolver does
            ended()
        self._stop_timer()
        if not self.done.called:
            self.done.callback(self.addresses)

    def time_out(self) -> None:
        if not self.done.called:
            self.done.errback(DNSLookupError("%s: no answer in time" % self.name))

    def _stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
