"""A client behind two relays of its own (RFC 4976 section 5): it AUTHs with the second
through the first, and its path names both. Real relays of ours on 127.0.0.1; this
library's endpoints, and bare connections for what they would never send."""

from twisted.internet import protocol, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from msrplib._paths import request_to_path
from msrplib._relaysettings import MAX_NEXT_RELAYS
from msrplib._relayconnection import outside_of
from msrplib._uri import parse_uri
from msrplib.connect import ConnectorRelay, MSRPAuthError
from msrplib.digest import answer_challenge
from msrplib.protocol import URI
from msrplib.relayserver import RelaySettings
from msrplib.relayserver.relay import NOT_THROUGH_A_BINDING
from msrplib.testing import CollectingReceiver
from tests.relay import USERS, KamailioRelay
from tests.test_relay_server import RelayHarness, sleep
from tests.test_relay_server_edges import ME, RelayPeers, until


class ChainHarness(RelayHarness, RelayPeers):
    def start_relay(self, **options):
        return RelayHarness.start_relay(self, **options)

    @inlineCallbacks
    def client_of_the_first(self):
        """Two relays, and alice, a bare client of the first, AUTHed there: the relays,
        their URIs, her connection and her binding."""
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        alice = yield self.connect(inner_uri)
        binding = yield alice.auth(inner_uri)
        return inner, inner_uri, outer, outer_uri, alice, binding

    @inlineCallbacks
    def auth_through(self, raw, binding, relay_uri, user, expect=200):
        to = "%s %s" % (binding, relay_uri)
        challenge = yield raw.answer(raw.request("AUTH", to))
        self.assertEqual(challenge.code, 401)
        answer = answer_challenge(challenge.www_authenticate, user, USERS[user],
                                  str(relay_uri))
        granted = yield raw.answer(raw.request("AUTH", to, Authorization=str(answer)))
        self.assertEqual((granted.code, granted.comment if expect != 200 else None),
                         (expect, granted.comment if expect != 200 else None))
        return str(granted.use_path[0]) if expect == 200 else granted.comment

    def behind_two(self, user, inner_uri, outer_uri, **options):
        """``user``'s settings for ``inner_uri``'s relay (with ``options``, which its
        sessions follow), with ``outer_uri``'s behind it."""
        settings = self.settings(user, inner_uri, **options)
        settings.next_relay = self.settings(user, outer_uri)
        return settings


class BehindTwoRelaysTests(ChainHarness, unittest.TestCase):
    @inlineCallbacks
    def test_a_second_relay_whose_use_paths_name_another_port(self):
        """The second relay's Use-Paths name its home port (as each of its workers does
        with ``--workers``), not the port the AUTH went to: alice's chunks go over the
        connection her grant came on all the same."""
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        home = outer.listen(0, home=True)
        heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.pair(self.behind_two("alice", inner_uri, outer_uri),
                                     self.settings("bob", outer_uri),
                                     bob_receiver=heard[1], alice_receiver=heard[0])
        self.assertEqual(alice.transport.local_path[0].port, home.port)
        yield self.both_ways(alice, bob, heard, 256 * 1024, b"got it")
        self.assertEqual(sum(1 for link in inner._links if link.listener is None), 1)

    @inlineCallbacks
    def test_alice_behind_her_two_relays_and_bob_on_the_second(self):
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.pair(self.behind_two("alice", inner_uri, outer_uri),
                                     self.settings("bob", outer_uri),
                                     bob_receiver=heard[1], alice_receiver=heard[0])
        self.assertEqual((inner.bindings, outer.bindings), (1, 2))
        yield self.both_ways(alice, bob, heard, 1024 * 1024, b"got it")
        [from_path] = {m.first_chunk.headers["From-Path"] for m in heard[1].received}
        # Bob's binding at the second relay, then alice's way: the second relay, the
        # first, herself.
        self.assertEqual([parse_uri(text).port for text in from_path.split()[:3]],
                         [outer_uri.port, outer_uri.port, inner_uri.port])
        self.assertEqual(len(from_path.split()), 4)

    @inlineCallbacks
    def test_the_path_names_both_relays_and_a_refresh_keeps_it(self):
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        settings = self.behind_two("alice", inner_uri, outer_uri)
        settings.next_relay.expires = 120  # the first relay grants its default, 600
        alice = self.endpoint(ConnectorRelay, settings)
        path = yield alice.prepare()
        # The refresh is due before the shorter grant runs out.
        due = alice.connection._refresh_timer.getTime() - reactor.seconds()
        self.assertTrue(120 * 0.75 - 1 < due <= 120 * 0.75, due)
        # As alice's peers reach her: the second relay, then the first.
        self.assertEqual([(hop.port, bool(hop.session_id)) for hop in path[:2]],
                         [(outer_uri.port, True), (inner_uri.port, True)])
        self.assertEqual(len(path), 3)
        self.assertIsNone(alice.connection.flow)  # paced: two relays, not one
        yield alice.connection._authenticate(alice.connection._router)
        self.assertEqual((alice.auth_count, alice.full_local_path), (2, path))
        self.assertEqual((inner.bindings, outer.bindings), (1, 1))
        # One connection from the first relay to the second carries the grant.
        self.assertEqual(sum(1 for link in inner._links if link.listener is None), 1)

    @inlineCallbacks
    def test_a_wrong_password_at_the_second_relay_comes_back_as_401(self):
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        settings = self.behind_two("alice", inner_uri, outer_uri)
        settings.next_relay.password = "wrong"
        error = yield self.assertFailure(self.endpoint(ConnectorRelay, settings).prepare(),
                                         MSRPAuthError)
        self.assertEqual(error.code, 401)
        self.assertEqual(outer.bindings, 0)

    @inlineCallbacks
    def test_a_second_relay_that_is_down_is_503_and_one_that_never_answers_408(self):
        inner, inner_uri = self.start_relay(
            settings=RelaySettings(response_timeout=0.5))
        dead = URI(host="127.0.0.1", port=9)
        settings = self.behind_two("alice", inner_uri, dead)
        error = yield self.assertFailure(self.endpoint(ConnectorRelay, settings).prepare(),
                                         MSRPAuthError)
        self.assertEqual(error.code, 503)
        silent = self.sink()  # reads all, answers nothing
        settings = self.behind_two("alice", inner_uri,
                                   URI(host="127.0.0.1", port=silent.port.getHost().port))
        error = yield self.assertFailure(self.endpoint(ConnectorRelay, settings).prepare(),
                                         MSRPAuthError)
        self.assertEqual(error.code, 408)


class ChainRulesTests(ChainHarness, unittest.TestCase):
    @inlineCallbacks
    def test_auth_goes_further_only_from_its_client_through_its_binding(self):
        inner, inner_uri, outer, outer_uri, alice, binding = \
            yield self.client_of_the_first()
        # Not through a binding: the first relay's own URI, or a session it never gave.
        for first in (str(inner_uri), "msrp://127.0.0.1:%d/nobody;tcp" % inner_uri.port):
            answer = yield alice.answer(alice.request("AUTH", "%s %s" % (first, outer_uri)))
            self.assertEqual((answer.code, answer.comment), (403, NOT_THROUGH_A_BINDING))
        # Through alice's binding, from a connection that is not hers.
        mallory = yield self.connect(inner_uri)
        yield mallory.auth(inner_uri, "bob")
        answer = yield mallory.answer(mallory.request("AUTH", "%s %s" % (binding, outer_uri)))
        self.assertEqual((answer.code, answer.comment), (403, NOT_THROUGH_A_BINDING))
        # To the first relay itself, through it.
        answer = yield alice.answer(alice.request("AUTH", "%s %s" % (binding, inner_uri)))
        self.assertEqual(answer.code, 403)
        self.assertEqual(sum(1 for link in inner._links if link.listener is None), 0)

    @inlineCallbacks
    def test_the_challenge_and_grant_come_back_with_the_clients_own_ids(self):
        inner, inner_uri, outer, outer_uri, alice, binding = \
            yield self.client_of_the_first()
        to = "%s %s" % (binding, outer_uri)
        challenge = yield alice.answer(alice.request("AUTH", to))
        self.assertEqual((challenge.code, challenge.headers["To-Path"]), (401, ME))
        answer = answer_challenge(challenge.www_authenticate, "alice", USERS["alice"],
                                  str(outer_uri))
        granted = yield alice.answer(alice.request("AUTH", to, Authorization=str(answer),
                                                   Expires="120"))
        self.assertEqual((granted.code, granted.expires), (200, 120))
        [use_path] = granted.use_path
        self.assertEqual((use_path.port, outer.bindings), (outer_uri.port, 1))

    @inlineCallbacks
    def test_another_client_of_the_first_relay_cannot_send_out_as_alice(self):
        """Mallory, on alice's first relay, names alice's binding at the second relay
        as her next hop: the second relay sends that back towards alice's side (it is
        not alice's way out), where it leads nowhere: Mallory gets a 481 failure REPORT,
        Bob nothing."""
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        alice = self.endpoint(ConnectorRelay, self.behind_two("alice", inner_uri, outer_uri))
        alice_path = yield alice.prepare()
        bob = yield self.connect(outer_uri)
        bob_binding = yield bob.auth(outer_uri, "bob")
        mallory = yield self.connect(inner_uri)
        mallory_binding = yield mallory.auth(inner_uri, "bob")
        to = " ".join([mallory_binding, str(alice_path[0]), bob_binding, ME])
        sent = mallory.request("SEND", to, b"as alice", Failure_Report="yes")
        self.assertEqual((yield mallory.answer(sent)).code, 200)  # the first hop took it
        yield until(lambda: any(r.method == "REPORT" for r in mallory.got))
        [report] = [r for r in mallory.got if r.method == "REPORT"]
        self.assertEqual(report.headers["Status"].split()[1], "481")
        self.assertEqual([r for r in bob.got if r.method == "SEND"], [])

    @inlineCallbacks
    def test_the_connection_between_the_relays_lasts_as_long_as_the_binding(self):
        """The second relay's grant is tied to the connection the first opened to it:
        it stays open while alice's binding at the first relay lasts, however idle, and
        closes, taking her grant there with it, once that binding ends."""
        settings = RelaySettings(idle_timeout=0.3)
        inner, inner_uri = self.start_relay(settings=settings)
        outer, outer_uri = self.start_relay()
        alice = self.endpoint(ConnectorRelay, self.behind_two("alice", inner_uri, outer_uri))
        yield alice.prepare()
        yield sleep(1.5)
        self.assertEqual((inner.bindings, outer.bindings), (1, 1))
        alice.connection.close()
        yield until(lambda: outer.bindings == 0, timeout=5)
        self.assertEqual(len(inner._links), 0)


class PathOrderTests(unittest.TestCase):
    """Our path lists our relays as our peers reach them (the outermost first); our
    requests go out through them the other way round."""

    inner = parse_uri("msrp://127.0.0.1:2855/in;tcp")
    outer = parse_uri("msrp://127.0.0.2:2855/out;tcp")
    me = parse_uri("msrp://127.0.0.9:9/me;tcp")
    peer = parse_uri("msrp://127.0.0.8:8/peer;tcp")

    def test_requests_go_out_through_the_inner_relay_first(self):
        self.assertEqual(request_to_path([self.outer, self.inner, self.me], [self.peer]),
                         [self.inner, self.outer, self.peer])
        self.assertEqual(request_to_path([self.inner, self.me], [self.peer]),
                         [self.inner, self.peer])
        self.assertEqual(request_to_path([self.me], [self.peer]), [self.peer])

    def test_an_outer_use_path_goes_in_front_unless_it_names_the_inner_relays(self):
        self.assertEqual(outside_of([self.outer], [self.inner]), [self.outer, self.inner])
        self.assertEqual(outside_of([self.outer, self.inner], [self.inner]),
                         [self.outer, self.inner])
        self.assertEqual(outside_of([self.outer, self.peer], [self.inner]),
                         [self.outer, self.peer, self.inner])


def forwarded_sends(relay):
    """How many SENDs ``relay`` forwarded (its counter, flushed)."""
    return relay.metrics.registry.get_sample_value("msrp_relay_chunks_total",
                                                   {"method": "SEND"}) or 0


class AnsweringRelay(protocol.Protocol):
    """A next relay that answers every AUTH with ``factory.answer`` (headers text, the
    id filled in)."""

    def connectionMade(self):
        self.buffer = b""

    def dataReceived(self, data):
        self.buffer += data
        while b"$\r\n" in self.buffer:
            chunk, _, self.buffer = self.buffer.partition(b"$\r\n")
            transaction_id = chunk.split(b" ", 2)[1].decode()
            self.transport.write(("MSRP %s 401 Unauthorized\r\n%s-------%s$\r\n" % (
                transaction_id, self.factory.answer, transaction_id)).encode())


class ChainAbuseTests(ChainHarness, unittest.TestCase):
    """What review found: loops between relays, one user taking a relay connection's
    bindings, the bindings a relay carries, URIs written two ways, a next relay's
    answer that is too long."""

    @inlineCallbacks
    def two_clients_crossing(self, **settings):
        """Relays A and B; x, a client of A, AUTHed at B through A, and y, a client of B,
        at A through B: bindings of each relay on the other's connection."""
        a, a_uri = self.start_relay(settings=RelaySettings(**settings))
        b, b_uri = self.start_relay(settings=RelaySettings(**settings))
        x = yield self.connect(a_uri)
        x_at_a = yield x.auth(a_uri)
        x_at_b = yield self.auth_through(x, x_at_a, b_uri, "alice")
        y = yield self.connect(b_uri)
        y_at_b = yield y.auth(b_uri, "bob")
        y_at_a = yield self.auth_through(y, y_at_b, a_uri, "bob")
        return a, b, x, x_at_b, y_at_a

    @inlineCallbacks
    def test_a_chunk_goes_round_between_two_relays_no_longer_than_its_to_path(self):
        a, b, x, x_at_b, y_at_a = yield self.two_clients_crossing()
        # Each relay hands a chunk for its binding on the other's connection to it.
        round_trip = [y_at_a, x_at_b]
        too_long = round_trip * 5 + [ME]  # 11 URIs
        refused = yield x.answer(x.request("SEND", " ".join(too_long), b"x" * 1000))
        self.assertEqual((refused.code, refused.comment), (403, "To-Path too long"))
        self.assertEqual(forwarded_sends(a) + forwarded_sends(b), 0)
        longest = round_trip * 4 + [y_at_a, ME]  # 10 URIs: 9 relays' hops
        x.request("SEND", " ".join(longest), b"x" * 1000, Failure_Report="no")
        yield sleep(0.5)
        self.assertEqual(forwarded_sends(a) + forwarded_sends(b), 9)

    @inlineCallbacks
    def test_an_auth_that_came_by_this_relay_already_is_refused(self):
        a, a_uri, b, b_uri, x, x_at_a = yield self.client_of_the_first()
        x_at_b = yield self.auth_through(x, x_at_a, b_uri, "alice")
        refused = yield x.answer(x.request("AUTH", "%s %s %s" % (x_at_a, x_at_b, a_uri)))
        self.assertEqual((refused.code, refused.comment),
                         (403, "AUTH came back to this relay"))
        # msrplib's client, told of relays that go round, learns the same.
        settings = self.behind_two("alice", a_uri, b_uri)
        settings.next_relay.next_relay = self.settings("alice", a_uri)
        error = yield self.assertFailure(self.endpoint(ConnectorRelay, settings).prepare(),
                                         MSRPAuthError)
        self.assertEqual(error.code, 403)

    @inlineCallbacks
    def test_no_more_next_relays_than_max_next_relays(self):
        self.relays = []
        for _ in range(MAX_NEXT_RELAYS + 2):
            self.relays.append(self.start_relay()[0])
        relays = [relay._listeners[0] for relay in self.relays]
        settings = self.settings("alice", relays[0])
        last = settings
        for uri in relays[1:]:
            last.next_relay = self.settings("alice", uri)
            last = last.next_relay
        yield self.assertFailure(self.endpoint(ConnectorRelay, settings).prepare(),
                                 ValueError)
        self.assertEqual(sum(relay.bindings for relay in self.relays), 0)  # none asked
        settings.next_relay.next_relay.next_relay.next_relay = None
        path = yield self.endpoint(ConnectorRelay, settings).prepare()
        self.assertEqual([hop.port for hop in path[:-1]],
                         [uri.port for uri in reversed(relays[:MAX_NEXT_RELAYS + 1])])

    @inlineCallbacks
    def test_one_user_cannot_take_the_bindings_of_a_relays_connection(self):
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay(settings=RelaySettings(
            max_bindings_through_a_relay_per_user=2, max_bindings_through_a_relay=3))
        granted = []
        for _ in range(3):  # a connection, and a binding, of its own each time
            mallory = yield self.connect(inner_uri)
            binding = yield mallory.auth(inner_uri, "bob")
            granted.append((yield self.auth_through(mallory, binding, outer_uri, "bob")))
        # The third made the first, which ends soonest, make way.
        self.assertEqual([outer.auth.get(parse_uri(uri).session_id) is not None
                          for uri in granted], [False, True, True])
        for expected in (200, 403):  # another user's share, then past the total
            alice = yield self.connect(inner_uri)
            binding = yield alice.auth(inner_uri)
            outcome = yield self.auth_through(alice, binding, outer_uri, "alice",
                                              expect=expected)
        self.assertEqual(outcome, "Too many bindings on this connection")
        self.assertEqual(outer.bindings, 3)

    @inlineCallbacks
    def test_a_client_naming_a_relay_in_front_of_it_holds_a_users_share(self):
        relay, uri = self.start_relay(settings=RelaySettings(
            max_bindings_through_a_relay_per_user=2))
        client = yield self.connect(uri)
        codes = []
        for number in range(3):
            from_path = "msrp://192.0.2.1:2855/fake%d;tcp %s" % (number, ME)
            answer = yield self.answered_auth(client, uri, from_path)
            codes.append(answer.code)
        self.assertEqual((codes, relay.bindings), ([200, 200, 200], 2))
        long_from = "msrp://192.0.2.1:2855/%s;tcp %s" % ("x" * 300, ME)
        refused = yield client.answer(client.request("AUTH", str(uri), from_path=long_from))
        self.assertEqual((refused.code, refused.comment),
                         (400, "From-Path URI too long to bind"))

    @inlineCallbacks
    def answered_auth(self, raw, uri, from_path):
        """AUTH at ``uri`` with ``from_path``: challenged, then answered for alice."""
        challenge = yield raw.answer(raw.request("AUTH", str(uri), from_path=from_path))
        answer = answer_challenge(challenge.www_authenticate, "alice", USERS["alice"],
                                  str(uri))
        return (yield raw.answer(raw.request("AUTH", str(uri), from_path=from_path,
                                             Authorization=str(answer))))

    @inlineCallbacks
    def test_requests_that_write_the_first_relays_uri_another_way_go_out(self):
        relay, uri = self.start_relay()
        bob = yield self.connect(uri)
        bob_binding = yield bob.auth(uri, "bob")
        client = yield self.connect(uri)
        granted = yield self.answered_auth(client, uri, "msrp://192.0.2.1:2855/in;TCP " + ME)
        to = "%s %s %s" % (granted.use_path[0], bob_binding, ME)
        client.request("SEND", to, b"hello", from_path="msrp://192.0.2.1:2855/in;tcp " + ME)
        yield until(lambda: any(r.method == "SEND" for r in bob.got))

    @inlineCallbacks
    def test_an_auth_with_a_body_larger_than_the_next_relay_takes_is_413(self):
        inner, inner_uri, outer, outer_uri, alice, binding = \
            yield self.client_of_the_first()
        to = "%s %s" % (binding, outer_uri)
        yield self.auth_through(alice, binding, outer_uri, "alice")
        [link] = [link for link in inner._links if link.listener is None]
        refused = yield alice.answer(alice.request("AUTH", to, b"x" * (64 * 1024 + 1)))
        self.assertEqual((refused.code, refused.comment), (413, "Too large for the next hop"))
        self.assertFalse(link.protocol.lost.fired)

    @inlineCallbacks
    def test_bindings_carried_are_forgotten_when_they_end_however_busy(self):
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        clients = []
        for user in ("alice", "bob", "alice"):
            client = yield self.connect(inner_uri)
            binding = yield client.auth(inner_uri, user)
            yield self.auth_through(client, binding, outer_uri, user)
            clients.append(client)
        [link] = [link for link in inner._links if link.listener is None]
        self.assertEqual(len(link.carries), 3)
        for client in clients[:2]:
            client.proto.abort()
        # The connection between the relays is not idle (idle_timeout is 300 s): what it
        # carries is pruned all the same.
        yield until(lambda: len(link.carries) == 1, timeout=10)

    @inlineCallbacks
    def test_a_next_relays_answer_goes_back_with_only_what_a_client_reads(self):
        inner, inner_uri = self.start_relay()
        factory = protocol.Factory.forProtocol(AnsweringRelay)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        next_relay = "msrp://127.0.0.1:%d;tcp" % port.getHost().port
        alice = yield self.connect(inner_uri)
        binding = yield alice.auth(inner_uri)
        paths = "To-Path: %s\r\nFrom-Path: %s\r\n" % (binding, next_relay)
        factory.answer = paths + 'WWW-Authenticate: Digest realm="r", nonce="n", ' \
            'qop="auth"\r\nX-Secret: no\r\n'
        answer = yield alice.answer(alice.request("AUTH", "%s %s" % (binding, next_relay)))
        self.assertEqual((answer.code, answer.headers["To-Path"], answer.headers["From-Path"],
                          "X-Secret" in answer.headers), (401, ME, next_relay, False))
        self.assertEqual(answer.www_authenticate.params["realm"], "r")
        # A line as long as a parser takes, one byte longer once written "Name: value".
        line = 'WWW-Authenticate:Digest realm="%s"'
        line = line % ("r" * (16 * 1024 - len(line % "")))
        factory.answer = paths + line + "\r\n"
        answer = yield alice.answer(alice.request("AUTH", "%s %s" % (binding, next_relay)))
        self.assertEqual((answer.code, answer.comment), (400, "Answer too long to pass on"))
        self.assertFalse(alice.proto.lost.fired)


class BehindOursThenKamailioTests(ChainHarness, unittest.TestCase):
    @inlineCallbacks
    def test_our_relay_passes_alices_auth_on_to_kamailio(self):
        """Kamailio as alice's second relay: our relay passes her AUTH on to it, and its
        challenge and grant back; her path names Kamailio's Use-Path, then ours."""
        kamailio = KamailioRelay()
        kamailio.start()
        self.addCleanup(kamailio.stop)
        inner, inner_uri = self.start_relay()
        settings = self.behind_two("alice", inner_uri,
                                   URI(host="127.0.0.1", port=kamailio.port))
        alice = self.endpoint(ConnectorRelay, settings)
        path = yield alice.prepare()
        self.assertEqual([(hop.port, bool(hop.session_id)) for hop in path[:-1]],
                         [(kamailio.port, True), (inner_uri.port, True)])
        self.assertTrue(kamailio.alive)


class HairpinTests(ChainHarness, unittest.TestCase):
    @inlineCallbacks
    def test_two_clients_behind_the_same_two_relays_learn_of_every_chunk_refused(self):
        """Alice and Bob are both behind the same two relays: each of alice's chunks comes
        to the second relay from the connection it goes back out on, which is never held
        back for itself. Bob stops reading: every chunk either reaches him once he reads
        again or comes back to alice as a failure REPORT."""
        inner, inner_uri, outer, outer_uri, alice, alice_at_inner = \
            yield self.client_of_the_first()
        alice_at_outer = yield self.auth_through(alice, alice_at_inner, outer_uri, "alice")
        bob = yield self.connect(inner_uri)
        bob_at_inner = yield bob.auth(inner_uri, "bob")
        bob_at_outer = yield self.auth_through(bob, bob_at_inner, outer_uri, "bob")
        to = " ".join([alice_at_inner, alice_at_outer, bob_at_outer, bob_at_inner, ME])
        bob.proto.transport.pauseProducing()
        body = b"x" * (60 * 1024)
        total = 300 * len(body)  # 18 MB, far more than the sockets between hold
        for number in range(300):  # the chunks of one message, told by their ranges
            start = number * len(body) + 1
            alice.request("SEND", to, body, Byte_Range="%d-%d/%d" % (
                start, start + len(body) - 1, total))
            if number % 20 == 0:
                yield sleep(0.01)
        yield sleep(1)
        bob.proto.transport.resumeProducing()

        def heard():
            delivered = {r.headers["Byte-Range"] for r in bob.got if r.method == "SEND"}
            refused = {r.headers["Byte-Range"] for r in alice.got if r.method == "REPORT"}
            return delivered, refused

        yield until(lambda: len(heard()[0] | heard()[1]) == 300, timeout=30)
        delivered, refused = heard()
        self.assertEqual(delivered & refused, set())
        self.assertEqual({r.headers["Status"] for r in alice.got if r.method == "REPORT"},
                         {"000 503 Next hop behind"})
