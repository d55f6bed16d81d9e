"""Which addresses the relay connects to for its clients: :class:`NextHopPolicy`.

A client's To-Path names the next hop, so an AUTHed user could have the relay connect
anywhere it can: its own loopback, a cloud's metadata address (``169.254.169.254``), a
host of its own network. The relay therefore resolves a next hop's name itself, checks
each address it gets, and connects to an address it checked: a name that resolves
somewhere else a moment later (DNS rebinding) changes nothing, and neither do spellings
of an address that only the resolver reads (``127.1``, ``2130706433``).
"""

from __future__ import annotations

import ipaddress
from typing import Any, List, Optional, Sequence, Union

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IResolutionReceiver
from zope.interface import implementer

__all__ = ["NextHopPolicy", "NextHopRefused", "SPECIAL_PURPOSE_NETWORKS"]

#: The networks no next hop is connected to unless ``allowed_next_hops`` names them:
#: "this host", loopback, link-local (cloud metadata services), multicast and reserved.
SPECIAL_PURPOSE_NETWORKS = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4",
                            "240.0.0.0/4", "::/128", "::1/128", "fe80::/10", "ff00::/8")

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class NextHopRefused(Exception):
    """No address of a next hop is one the relay may connect to."""


def _address(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """``text`` as an IP address (an IPv4-mapped IPv6 one as IPv4), or None for a name."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NextHopPolicy:
    """The addresses the relay may connect to for its clients.

    ``allowed``: networks (``10.0.0.0/8``, ``192.0.2.7``) and host names
    (``relay.example.com``) allowed, or None for any address outside ``refused``. A host
    name allowed is allowed whatever it resolves to; a network allowed is allowed even
    inside ``refused`` (``127.0.0.0/8`` for relays on one host, in tests). ``own``: the
    relay's own host, a name or an address, always allowed: the workers of one relay
    reach each other there (on a loopback relay, that is any loopback port). ``resolver``:
    an ``IHostnameResolver`` (the reactor's ``nameResolver``)."""

    def __init__(self, allowed: Optional[Sequence[str]], refused: Sequence[str], own: str,
                 resolver: Any, reactor: Any) -> None:
        self.open = allowed is None
        self.allowed_names = set()
        self.allowed_networks: List[Network] = []
        for entry in [own] + list(allowed or ()):
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allowed_names.add(entry.lower())
        self.refused_networks = [ipaddress.ip_network(entry, strict=False)
                                 for entry in refused]
        self.resolver = resolver
        self.reactor = reactor

    def allows(self, address: str, name: Optional[str] = None) -> bool:
        """Whether the relay may connect to ``address`` (an IP address), found for the
        host name ``name``."""
        if name is not None and name.lower() in self.allowed_names:
            return True
        parsed = _address(address)
        if parsed is None:
            return False
        if any(parsed in network for network in self.allowed_networks):
            return True
        if any(parsed in network for network in self.refused_networks):
            return False
        return self.open

    def address_of(self, host: str, timeout: float) -> Deferred[str]:
        """The first address of ``host`` the relay may connect to: ``host`` itself when
        it is an address, else one the resolver gives within ``timeout`` seconds. Fails
        with :class:`NextHopRefused` when there is none allowed, or ``DNSLookupError``
        when there is none at all."""
        if _address(host) is not None:
            return succeed(host) if self.allows(host) else fail(NextHopRefused(host))
        found = _Addresses(host)
        try:
            self.resolver.resolveHostName(found, host, 0)
        except Exception as error:  # no resolver, or one that cannot take this name
            return fail(DNSLookupError("%s: %s" % (host, error)))
        if not found.done.called:
            timer = self.reactor.callLater(timeout, found.time_out)

            def stop_timer(outcome: Any) -> Any:
                if timer.active():
                    timer.cancel()
                return outcome

            found.done.addBoth(stop_timer)

        def choose(addresses: List[str]) -> str:
            for address in addresses:
                if self.allows(address, host):
                    return address
            if addresses:
                raise NextHopRefused(host)
            raise DNSLookupError(host)

        return found.done.addCallback(choose)


@implementer(IResolutionReceiver)
class _Addresses:
    """What a resolution of ``name`` gives: ``done`` fires with the addresses found."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.addresses: List[str] = []
        self.done: Deferred[List[str]] = Deferred()

    def resolutionBegan(self, resolution: Any) -> None:
        """Nothing to do: ``done`` is there already."""

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        if not self.done.called:
            self.done.callback(self.addresses)

    def time_out(self) -> None:
        if not self.done.called:
            self.done.errback(DNSLookupError("%s: no answer in time" % self.name))
