"""Where the relay connects for its clients (msrplib.relayserver.nexthops): by default
never to loopback, link-local (cloud metadata), "this host", multicast or reserved
addresses, however the To-Path spells them; names resolved by the relay and the checked
address connected to. First the policy on a clock and a resolver of the test's own,
then real relays on 127.0.0.x."""

import socket

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, inlineCallbacks
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
from msrplib.relayserver.nexthops import NextHopPolicy, NextHopRefused
from msrplib.testing import CollectingReceiver
from tests.relay import Spawning
from tests.test_relay_server import HA1, REALM, RelayHarness
from tests.test_relay_server_edges import until


class Resolver:
    """An ``IHostnameResolver`` that answers from a table at once, or, for a name it
    does not have, when :meth:`finish` is called (a lookup still in a thread)."""

    def __init__(self, table):
        self.table = table
        self.asked = []
        self.unanswered = []

    def resolveHostName(self, receiver, name, port=0, *args):
        self.asked.append(name)
        receiver.resolutionBegan(None)
        if name.lower() not in self.table:
            self.unanswered.append(receiver)
            return
        for address in self.table[name.lower()]:
            receiver.addressResolved(IPv4Address("TCP", address, port))
        receiver.resolutionComplete()

    def finish(self):
        """The lookups without an answer end, with none."""
        unanswered, self.unanswered = self.unanswered, []
        for receiver in unanswered:
            receiver.resolutionComplete()


DEFAULT_REFUSED = RelaySettings().refused_next_hop_networks


def policy(allowed=None, refused=DEFAULT_REFUSED, table=None, clock=None, **limits):
    return NextHopPolicy(allowed, refused, Resolver(table or {}), clock or Clock(),
                         **limits)


class PolicyTests(unittest.TestCase):
    def test_special_purpose_addresses_are_refused_by_default(self):
        default = policy()
        for address in ("127.0.0.1", "127.255.0.9", "0.0.0.0", "169.254.169.254",
                        "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "ff02::1",
                        "::ffff:127.0.0.1", "::ffff:169.254.169.254",
                        # cloud metadata services outside those networks
                        "fd00:ec2::254", "100.100.100.200"):
            self.assertFalse(default.allows(address), address)
        for address in ("192.0.2.7", "10.1.2.3", "2001:db8::1", "::ffff:192.0.2.7",
                        "64:ff9b::c000:207", "2002:c000:207::1"):
            self.assertTrue(default.allows(address), address)
        self.assertFalse(default.allows("not an address"))

    def test_ipv6_addresses_that_carry_a_refused_ipv4_one_are_refused(self):
        default = policy()
        for address in ("::127.0.0.1",  # IPv4-compatible
                        "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64
                        "2002:7f00:1::", "2002:a9fe:a9fe::1",  # 6to4
                        "::ffff:0:7f00:1"):  # IPv4-translated
            self.assertFalse(default.allows(address), address)

    def test_allowed_networks_and_names(self):
        closed = policy(allowed=["127.0.0.0/8", "Relay.Example.com"])
        self.assertTrue(closed.allows("127.0.0.1"))  # allowed though special
        self.assertTrue(closed.allows("::ffff:127.0.0.1"))
        self.assertTrue(closed.allows("169.254.169.254", "relay.example.COM"))
        self.assertFalse(closed.allows("192.0.2.7"))
        self.assertFalse(closed.allows("192.0.2.7", "elsewhere.example.com"))
        extra = policy(refused=list(DEFAULT_REFUSED) + ["10.0.0.0/8"])
        self.assertFalse(extra.allows("10.1.2.3"))
        self.assertTrue(extra.allows("192.0.2.7"))

    def test_its_own_places_are_allowed_at_their_ports_only(self):
        hops = policy(table={"relay.example.com": ["127.0.1.1"]})
        hops.own.update({("127.0.0.3", 2855), ("relay.example.com", 2856)})
        self.assertEqual(self.successResultOf(hops.address_of("127.0.0.3", 2855, 5)),
                         "127.0.0.3")
        self.failureResultOf(hops.address_of("127.0.0.3", 22, 5), NextHopRefused)
        # A name of its own is not looked up (nor counted): it is connected to as is.
        self.assertEqual(self.successResultOf(hops.address_of("Relay.example.com", 2856, 5)),
                         "Relay.example.com")
        self.assertEqual(hops.resolver.asked, [])
        self.failureResultOf(hops.address_of("relay.example.com", 22, 5), NextHopRefused)

    def test_an_address_is_checked_without_resolving(self):
        hops = policy()
        self.assertEqual(self.successResultOf(hops.address_of("192.0.2.7", 1, 5)),
                         "192.0.2.7")
        self.failureResultOf(hops.address_of("127.0.0.1", 1, 5), NextHopRefused)
        self.failureResultOf(hops.address_of("::ffff:127.0.0.1", 1, 5), NextHopRefused)
        self.assertEqual(hops.resolver.asked, [])

    def test_a_name_gives_its_first_allowed_address(self):
        hops = policy(table={"mixed.example.com": ["127.0.0.1", "169.254.169.254",
                                                   "192.0.2.9", "192.0.2.10"],
                             "inside.example.com": ["127.0.0.1", "10.0.0.1"],
                             "nowhere.example.com": [],
                             # what a resolver makes of spellings ipaddress refuses
                             "127.1": ["127.0.0.1"], "2130706433": ["127.0.0.1"]})
        self.assertEqual(self.successResultOf(hops.address_of("mixed.example.com", 1, 5)),
                         "192.0.2.9")
        self.assertEqual(self.successResultOf(hops.address_of("inside.example.com", 1, 5)),
                         "10.0.0.1")
        for name in ("127.1", "2130706433"):
            self.failureResultOf(hops.address_of(name, 1, 5), NextHopRefused)
        self.failureResultOf(hops.address_of("nowhere.example.com", 1, 5), DNSLookupError)
        self.assertEqual(hops.lookups, {})

    def test_a_name_that_gets_no_answer_fails_in_time(self):
        clock = Clock()
        hops = policy(clock=clock)
        found = hops.address_of("silent.example.com", 1, 5)
        self.assertNoResult(found)
        clock.advance(4.9)
        self.assertNoResult(found)
        clock.advance(0.2)
        self.failureResultOf(found, DNSLookupError)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_an_answer_in_time_stops_the_timer(self):
        clock = Clock()
        hops = policy(table={"quick.example.com": ["192.0.2.9"]}, clock=clock)
        self.assertEqual(self.successResultOf(hops.address_of("quick.example.com", 1, 5)),
                         "192.0.2.9")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_lookups_count_until_they_really_end_and_are_bounded(self):
        """Names that never answer in time cannot fill the resolver's threads: a lookup
        counts, by owner and in all, until its thread is done, not until it times
        out; past the bounds, a lookup fails at once."""
        clock = Clock()
        hops = policy(table={"quick.example.com": ["192.0.2.9"]}, clock=clock,
                      max_lookups=5, max_lookups_per_owner=3)
        slow = [hops.address_of("slow%d.example.com" % n, 1, 5, "mallory")
                for n in range(3)]
        self.failureResultOf(hops.address_of("slow3.example.com", 1, 5, "mallory"),
                             DNSLookupError)
        clock.advance(6)
        for each in slow:
            self.failureResultOf(each, DNSLookupError)  # timed out...
        self.assertEqual(hops.lookups, {"mallory": 3})  # ...but their threads run on
        self.failureResultOf(hops.address_of("slow4.example.com", 1, 5, "mallory"),
                             DNSLookupError)
        # Others still get theirs, up to the bound in all.
        self.successResultOf(hops.address_of("quick.example.com", 1, 5, "alice"))
        others = [hops.address_of("slow.example.org", 1, 5, who) for who in ("bob", "carol")]
        self.failureResultOf(hops.address_of("quick.example.com", 1, 5, "alice"),
                             DNSLookupError)
        hops.resolver.finish()
        self.assertEqual(hops.lookups, {})
        for each in others:
            self.failureResultOf(each, DNSLookupError)  # no address found
        self.successResultOf(hops.address_of("quick.example.com", 1, 5, "mallory"))

    def test_a_lookup_counts_once_whatever_its_resolver_does(self):
        class Twice(Resolver):
            def resolveHostName(self, receiver, name, port=0, *args):
                receiver.resolutionBegan(None)
                receiver.resolutionComplete()
                receiver.resolutionComplete()

        class Raising(Resolver):
            def resolveHostName(self, receiver, name, port=0, *args):
                receiver.resolutionBegan(None)
                receiver.resolutionComplete()
                raise RuntimeError("broken resolver")

        for resolver in (Twice({}), Raising({})):
            hops = NextHopPolicy(None, DEFAULT_REFUSED, Resolver({}), Clock())
            waiting = hops.address_of("slow.example.com", 1, 5, "alice")
            hops.resolver = resolver
            self.failureResultOf(hops.address_of("other.example.com", 1, 5, "alice"),
                                 DNSLookupError)
            self.assertEqual(hops.lookups, {"alice": 1})  # the first, still under way
            self.assertNoResult(waiting)
            hops.cancel()
            self.failureResultOf(waiting, CancelledError)

    def test_cancelling_stops_the_wait_and_its_timer(self):
        clock = Clock()
        hops = policy(clock=clock)
        found = hops.address_of("silent.example.com", 1, 5)
        hops.cancel()
        self.failureResultOf(found, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(hops.lookups, {"": 1})  # until its thread is done
        hops.resolver.finish()
        self.assertEqual(hops.lookups, {})

    def test_no_resolver_is_a_lookup_failure(self):
        hops = NextHopPolicy(None, DEFAULT_REFUSED, None, Clock())
        self.failureResultOf(hops.address_of("relay.example.com", 1, 5), DNSLookupError)
        self.assertEqual(hops.lookups, {})


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
    def complete_to(self, uri, host, port):
        """Alice, a client of the relay at ``uri``, completes a path through ``host``
        and ``port``: the error it gets."""
        alice = self.endpoint(ConnectorRelay, self.settings("alice", uri))
        yield alice.prepare()
        path = [URI(host=host, port=port, session_id="x"),
                URI(host="192.0.2.7", session_id="bob")]
        error = yield self.assertFailure(alice.complete(path), MSRPBindError)
        return error

    def listening(self, interface):
        """A bare TCP server on ``interface`` that counts its connections."""
        target = Counting()
        port = reactor.listenTCP(0, target, interface=interface)
        self.addCleanup(port.stopListening)
        return target, port.getHost().port

    @inlineCallbacks
    def test_loopback_and_metadata_next_hops_get_403_and_no_connection(self):
        target, number = self.listening("127.0.0.1")
        relay, uri = self.relay_on("127.0.0.3")
        for host in ("127.0.0.1", "localhost", "169.254.169.254", "0.0.0.0", "::1",
                     "::ffff:127.0.0.1", "64:ff9b::7f00:1"):
            error = yield self.complete_to(uri, host, number)
            self.assertEqual(error.code, 403, host)
        self.assertEqual(target.connections, 0)
        self.assertEqual(relay._outbound, 0)
        self.assertEqual(relay._next_hops, {})

    @inlineCallbacks
    def test_its_own_host_is_reached_at_its_own_ports_only(self):
        """The relay's own host (127.0.0.3 here) is no way to the other services there."""
        target, number = self.listening("127.0.0.3")
        relay, uri = self.relay_on("127.0.0.3")
        error = yield self.complete_to(uri, "127.0.0.3", number)
        self.assertEqual(error.code, 403)
        self.assertEqual(target.connections, 0)
        self.assertEqual(relay.next_hops.own, {("127.0.0.3", uri.port)})

    @inlineCallbacks
    def test_a_stop_while_a_name_is_looked_up_leaves_nothing_behind(self):
        """A next hop whose name gets no answer: the relay stops meanwhile; its wait
        (and timer) ends with it, no connection is made, and the counts go back."""
        relay, uri = self.relay_on("127.0.0.3")
        relay.next_hops.resolver = resolver = Resolver({})
        alice = self.endpoint(ConnectorRelay, self.settings("alice", uri))
        yield alice.prepare()
        completing = alice.complete([URI(host="silent.example.com", session_id="x"),
                                     URI(host="192.0.2.7", session_id="bob")])
        completing.addErrback(lambda _: None)
        yield until(lambda: resolver.asked)
        self.assertEqual(relay._opened_for, {"alice": 1})
        yield relay.stop()
        self.assertEqual(relay._opened_for, {})
        self.assertEqual(relay._next_hops, {})
        self.assertEqual(relay.next_hops.lookups, {"alice": 1})  # its thread runs on
        resolver.finish()
        self.assertEqual(relay.next_hops.lookups, {})
        # No timer is left: trial would find the reactor dirty.

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

    def test_workers_get_home_sockets_and_reach_their_siblings_there_only(self):
        """The supervisor listens on each worker's home port and hands the socket down:
        the port is the worker's for good, started again or not; each worker may
        forward to its siblings' ports of its own host, and no other."""
        spawning = Spawning()
        options = self.options("--workers", "3", "--host", "127.0.0.1")
        workers = daemon.make_service(options, reactor=spawning).workers
        workers.startService()
        self.addCleanup(workers.stopService)
        homes = [home.getsockname() for home in workers.homes]
        self.assertEqual({host for host, _ in homes}, {"127.0.0.1"})
        ports = [port for _, port in homes]
        self.assertEqual(len(set(ports)), 3)
        for index, (argv, descriptors) in enumerate(spawning.started):
            self.assertEqual(argv[argv.index("--home-fd") + 1], str(daemon.HOME_FD))
            self.assertEqual(descriptors[daemon.HOME_FD], workers.homes[index].fileno())
            siblings = [int(argv[n + 1]) for n, arg in enumerate(argv)
                        if arg == "--sibling-port"]
            self.assertEqual(sorted(siblings + [ports[index]]), sorted(ports))
            # The worker, its home socket at the number it has here.
            worker_argv = argv[argv.index("msrp-relay") + 1:]
            worker_argv[worker_argv.index("--home-fd") + 1] = str(descriptors[daemon.HOME_FD])
            worker = self.options(*worker_argv)
            [home] = [listener for listener in daemon._listeners(worker) if listener.home]
            self.assertEqual(home.fileno, descriptors[daemon.HOME_FD])
            relay = daemon.make_service(worker).relay.relay
            for sibling in siblings:  # on loopback, refused but for them
                self.assertEqual(self.successResultOf(
                    relay.next_hops.address_of("127.0.0.1", sibling, 5)), "127.0.0.1")
            self.failureResultOf(relay.next_hops.address_of("127.0.0.1", 22, 5),
                                 NextHopRefused)
        # A peer can connect to a home port while its worker is away (to be accepted
        # when it is back); and a worker started again gets the same socket.
        socket.create_connection(homes[0], timeout=5).close()
        spawning.advance(daemon.EARLY_END + 1)
        spawning.workers[0].processEnded(None)
        spawning.advance(daemon.RESTART_DELAY)
        self.assertEqual(spawning.started[-1], spawning.started[0])
        stopping = workers.stopService()
        spawning.advance(0)
        self.successResultOf(stopping)
        self.assertEqual(workers.homes, [])
        self.assertRaises(OSError, socket.create_connection, homes[0], 5)

    def test_an_unspecified_interface_needs_a_host(self):
        for interface in ("0.0.0.0", "::", "0", "::0", "0:0:0:0:0:0:0:0", "0.0.0.00",
                          "::ffff:0.0.0.0"):
            error = self.assertRaises(UsageError, self.options, "--interface", interface,
                                      "--host", "")
            self.assertIn("needs --host", str(error))
        self.options("--interface", "0.0.0.0")  # with --host 192.0.2.1

    def test_a_workers_home_is_msrps_when_the_relay_has_an_msrps_port(self):
        from msrplib.tls import TLSIdentity
        identity = TLSIdentity.generate("relay.example.com")
        files = {}
        for name, pem in (("certificate", identity.certificate_pem()),
                          ("key", identity.key_pem())):
            files[name] = self.mktemp()
            with open(files[name], "wb") as out:
                out.write(pem)
        tls = ["--certificate", files["certificate"], "--key", files["key"]]
        for extra, secure in ((["--wss-port", "9443"], False),
                              (["--tls-port", "2856"], True),
                              (["--tls-port", "2856", "--wss-port", "9443"], True)):
            options = self.options("--worker", *(tls + extra))
            [home] = [listener for listener in daemon._listeners(options) if listener.home]
            self.assertEqual(home.identity is not None, secure, extra)

    def test_a_home_socket_is_for_a_worker(self):
        error = self.assertRaises(UsageError, self.options, "--home-fd", "3")
        self.assertIn("--home-fd is for a worker", str(error))
        error = self.assertRaises(UsageError, self.options, "--worker", "--home-fd", "x")
        self.assertIn("--home-fd takes a file descriptor number", str(error))

    def test_a_supervisor_that_cannot_listen_on_its_interface_says_so(self):
        options = self.options("--workers", "2", "--interface", "192.0.2.1")
        error = self.assertRaises(ValueError, daemon.make_service, options)
        self.assertIn("cannot listen on --interface 192.0.2.1", str(error))

    def test_a_refused_network_must_be_a_network(self):
        for value in ("relay.example.com", "10.0.0.0/33", ""):
            error = self.assertRaises(UsageError, self.options, "--refuse-next-hop", value)
            self.assertIn("--refuse-next-hop takes a network", str(error))
