"""Where the relay connects for its clients (msrplib.relayserver.nexthops): by default
never to loopback, link-local (cloud metadata), "this host", multicast or reserved
addresses, however the To-Path spells them; names resolved by the relay and the checked
address connected to. First the policy on a clock and a resolver of the test's own,
then real relays on 127.0.0.x."""

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import DNSLookupError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial import unittest

from msrplib.connect import ConnectorRelay, MSRPBindError
from msrplib.protocol import URI
from msrplib.relayserver import MSRPRelay, RelaySettings
from msrplib.relayserver import daemon
from msrplib.relayserver import relay as relay_module
from msrplib.relayserver.nexthops import (SPECIAL_PURPOSE_NETWORKS, NextHopPolicy,
                                          NextHopRefused)
from msrplib.testing import CollectingReceiver
from tests.test_relay_server import HA1, REALM, RelayHarness


class Resolver:
    """An ``IHostnameResolver`` that answers from a table, or never (``None``)."""

    def __init__(self, table):
        self.table = table
        self.asked = []

    def resolveHostName(self, receiver, name, port=0, *args):
        self.asked.append(name)
        receiver.resolutionBegan(None)
        addresses = self.table.get(name)
        if addresses is None:
            return
        for address in addresses:
            receiver.addressResolved(IPv4Address("TCP", address, port))
        receiver.resolutionComplete()


def policy(allowed=None, refused=SPECIAL_PURPOSE_NETWORKS, own="192.0.2.1", table=None,
           clock=None):
    return NextHopPolicy(allowed, refused, own, Resolver(table or {}), clock or Clock())


class PolicyTests(unittest.TestCase):
    def test_special_purpose_addresses_are_refused_by_default(self):
        default = policy()
        for address in ("127.0.0.1", "127.255.0.9", "0.0.0.0", "169.254.169.254",
                        "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "ff02::1",
                        "::ffff:127.0.0.1", "::ffff:169.254.169.254"):
            self.assertFalse(default.allows(address), address)
        for address in ("192.0.2.7", "10.1.2.3", "2001:db8::1", "::ffff:192.0.2.7"):
            self.assertTrue(default.allows(address), address)
        self.assertFalse(default.allows("not an address"))

    def test_allowed_networks_and_names_and_its_own_host(self):
        closed = policy(allowed=["127.0.0.0/8", "Relay.Example.com"])
        self.assertTrue(closed.allows("127.0.0.1"))  # allowed though special
        self.assertTrue(closed.allows("169.254.169.254", "relay.example.COM"))
        self.assertTrue(closed.allows("192.0.2.1"))  # its own host
        self.assertFalse(closed.allows("192.0.2.7"))
        self.assertFalse(closed.allows("192.0.2.7", "elsewhere.example.com"))
        extra = policy(refused=list(SPECIAL_PURPOSE_NETWORKS) + ["10.0.0.0/8"])
        self.assertFalse(extra.allows("10.1.2.3"))
        self.assertTrue(extra.allows("192.0.2.7"))

    def test_an_address_is_checked_without_resolving(self):
        hops = policy()
        self.assertEqual(self.successResultOf(hops.address_of("192.0.2.7", 5)), "192.0.2.7")
        self.failureResultOf(hops.address_of("127.0.0.1", 5), NextHopRefused)
        self.failureResultOf(hops.address_of("::ffff:127.0.0.1", 5), NextHopRefused)
        self.assertEqual(hops.resolver.asked, [])

    def test_a_name_gives_its_first_allowed_address(self):
        hops = policy(table={"mixed.example.com": ["127.0.0.1", "169.254.169.254",
                                                   "192.0.2.9", "192.0.2.10"],
                             "inside.example.com": ["127.0.0.1", "10.0.0.1"],
                             "nowhere.example.com": [],
                             # what a resolver makes of spellings ipaddress refuses
                             "127.1": ["127.0.0.1"], "2130706433": ["127.0.0.1"]})
        self.assertEqual(self.successResultOf(hops.address_of("mixed.example.com", 5)),
                         "192.0.2.9")
        self.assertEqual(self.successResultOf(hops.address_of("inside.example.com", 5)),
                         "10.0.0.1")
        for name in ("127.1", "2130706433"):
            self.failureResultOf(hops.address_of(name, 5), NextHopRefused)
        self.failureResultOf(hops.address_of("nowhere.example.com", 5), DNSLookupError)

    def test_a_name_that_gets_no_answer_fails_in_time(self):
        clock = Clock()
        hops = policy(table={}, clock=clock)
        found = hops.address_of("silent.example.com", 5)
        self.assertNoResult(found)
        clock.advance(4.9)
        self.assertNoResult(found)
        clock.advance(0.2)
        self.failureResultOf(found, DNSLookupError)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_an_answer_in_time_stops_the_timer(self):
        clock = Clock()
        hops = policy(table={"quick.example.com": ["192.0.2.9"]}, clock=clock)
        self.assertEqual(self.successResultOf(hops.address_of("quick.example.com", 5)),
                         "192.0.2.9")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_no_resolver_is_a_lookup_failure(self):
        hops = NextHopPolicy(None, SPECIAL_PURPOSE_NETWORKS, "192.0.2.1", None, Clock())
        self.failureResultOf(hops.address_of("relay.example.com", 5), DNSLookupError)


class Counting(Factory):
    """A bare TCP server that counts the connections made to it."""

    protocol = Protocol

    def __init__(self):
        self.connections = 0

    def buildProtocol(self, address):
        self.connections += 1
        return Factory.buildProtocol(self, address)


class RelayTests(RelayHarness, unittest.TestCase):
    """A relay whose own host is 127.0.0.3: what its clients' To-Paths name on 127.0.0.1,
    "localhost" or 169.254.169.254 is not connected to, unless allowed."""

    def relay_on(self, interface, **settings):
        relay = MSRPRelay(REALM, HA1, host=interface, settings=RelaySettings(**settings))
        uri = relay.listen(0, interface=interface)
        self.addCleanup(relay.stop)
        return relay, uri

    @inlineCallbacks
    def test_loopback_and_metadata_next_hops_get_403_and_no_connection(self):
        target = Counting()
        port = reactor.listenTCP(0, target, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        relay, uri = self.relay_on("127.0.0.3")
        for host in ("127.0.0.1", "localhost", "169.254.169.254", "0.0.0.0"):
            alice = self.endpoint(ConnectorRelay, self.settings("alice", uri))
            yield alice.prepare()
            path = [URI(host=host, port=number, session_id="x"),
                    URI(host="192.0.2.7", session_id="bob")]
            error = yield self.assertFailure(alice.complete(path), MSRPBindError)
            self.assertEqual(error.code, 403, host)
        self.assertEqual(target.connections, 0)
        self.assertEqual(relay._outbound, 0)
        self.assertEqual(relay._next_hops, {})

    @inlineCallbacks
    def test_a_next_hop_is_reached_at_the_address_checked_for_its_name(self):
        """Bob's relay calls itself localhost; the first relay's resolver gives a refused
        address first: the first relay connects to the allowed one it checked, not to
        the name (which a resolver could answer differently the next time)."""
        dialled = []

        def connect_to(uri, options, reactor, settings, address=None):
            dialled.append((uri.host, address))
            return real_connect_to(uri, options, reactor, settings, address)

        real_connect_to = relay_module.connect_to
        self.patch(relay_module, "connect_to", connect_to)
        first, first_uri = self.relay_on("127.0.0.3", allowed_next_hops=["127.0.0.0/8"])
        resolver = Resolver({"localhost": ["169.254.169.254", "127.0.0.1"]})
        first.next_hops.resolver = resolver
        second = MSRPRelay(REALM, HA1, host="localhost",
                           settings=RelaySettings(allowed_next_hops=["127.0.0.0/8"]))
        second_uri = second.listen(0, interface="127.0.0.1")
        self.addCleanup(second.stop)
        heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.pair(self.settings("alice", first_uri),
                                     self.settings("bob", second_uri),
                                     bob_receiver=heard[1], alice_receiver=heard[0])
        yield self.both_ways(alice, bob, heard, 64 * 1024, b"got it")
        self.assertEqual(resolver.asked, ["localhost"])
        self.assertIn(("localhost", ("127.0.0.1", second_uri.port)), dialled)
        self.assertNotIn(None, [address for _, address in dialled])
        [from_path] = {m.first_chunk.headers["From-Path"] for m in heard[1].received}
        self.assertIn("msrp://127.0.0.3:%d/" % first_uri.port, from_path)
        self.assertIn("msrp://localhost:%d/" % second_uri.port, from_path)


class OptionsTests(unittest.TestCase):
    """``twistd msrp-relay --next-hop ... --refuse-next-hop ...``, and its workers'."""

    def options(self, *argv):
        from twisted.plugins.msrp_relay_plugin import Options
        users = self.mktemp()
        with open(users, "w") as out:
            out.write("alice:%s\n" % HA1["alice"])
        options = Options()
        options.parseOptions(["--domain", REALM, "--users", users, "--port", "0",
                              "--host", "192.0.2.1"]
                             + list(argv))
        return options

    def test_refused_networks_are_added_to_the_special_ones(self):
        options = self.options("--refuse-next-hop", "10.0.0.0/8",
                               "--refuse-next-hop", "fd00::/8")
        relay = daemon.make_service(options).relay.relay
        for address in ("10.1.2.3", "fd12::1", "127.0.0.1", "169.254.169.254"):
            self.assertFalse(relay.next_hops.allows(address), address)
        self.assertTrue(relay.next_hops.allows("192.0.2.7"))
        argv = daemon._repeat(options)  # what each worker is started with
        pairs = [argv[i:i + 2] for i in range(len(argv))]
        self.assertIn(["--refuse-next-hop", "10.0.0.0/8"], pairs)
        self.assertIn(["--refuse-next-hop", "fd00::/8"], pairs)

    def test_a_next_hop_allowed_wins_over_a_refused_network(self):
        options = self.options("--next-hop", "127.0.0.0/8", "--refuse-next-hop", "10.0.0.0/8")
        relay = daemon.make_service(options).relay.relay
        self.assertTrue(relay.next_hops.allows("127.0.0.5"))
        self.assertFalse(relay.next_hops.allows("192.0.2.7"))  # not named: refused

    def test_a_refused_network_must_be_a_network(self):
        for value in ("relay.example.com", "10.0.0.0/33", ""):
            error = self.assertRaises(UsageError, self.options, "--refuse-next-hop", value)
            self.assertIn("--refuse-next-hop takes a network", str(error))
