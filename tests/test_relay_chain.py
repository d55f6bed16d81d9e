"""A client behind two relays of its own (RFC 4976 section 5): it AUTHs with the second
through the first, and its path names both. Real relays of ours on 127.0.0.1; this
library's endpoints, and bare connections for what they would never send."""

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from msrplib._paths import request_to_path
from msrplib._relayconnection import outside_of
from msrplib._uri import parse_uri
from msrplib.connect import ConnectorRelay, MSRPAuthError
from msrplib.digest import answer_challenge
from msrplib.protocol import URI
from msrplib.relayserver import RelaySettings
from msrplib.relayserver.relay import NOT_THROUGH_A_BINDING
from msrplib.testing import CollectingReceiver
from tests.relay import USERS
from tests.test_relay_server import RelayHarness, sleep
from tests.test_relay_server_edges import ME, RelayPeers, until


class ChainHarness(RelayHarness, RelayPeers):
    def start_relay(self, **options):
        return RelayHarness.start_relay(self, **options)

    def behind_two(self, user, inner_uri, outer_uri, **outer):
        """``user``'s settings for ``inner_uri``'s relay, with ``outer_uri``'s behind it."""
        settings = self.settings(user, inner_uri)
        settings.next_relay = self.settings(user, outer_uri, **outer)
        return settings


class BehindTwoRelaysTests(ChainHarness, unittest.TestCase):
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
        alice = self.endpoint(ConnectorRelay, self.behind_two("alice", inner_uri, outer_uri))
        path = yield alice.prepare()
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
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        alice = yield self.connect(inner_uri)
        binding = yield alice.auth(inner_uri)
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
        inner, inner_uri = self.start_relay()
        outer, outer_uri = self.start_relay()
        alice = yield self.connect(inner_uri)
        binding = yield alice.auth(inner_uri)
        to = "%s %s" % (binding, outer_uri)
        challenge = yield alice.answer(alice.request("AUTH", to))
        self.assertEqual((challenge.code, challenge.headers["To-Path"]),
                         (401, "msrp://127.0.0.1:9/me;tcp"))
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
