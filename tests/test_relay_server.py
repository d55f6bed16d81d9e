"""The relay server (msrplib.relayserver): Digest and users file on a clock, then this
library's endpoints through real relays on 127.0.0.1: one relay, two of ours in a row,
ours then Kamailio's, a dead next hop, an unknown session, a receiver that stalls."""

import dataclasses
import hashlib
import os

from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial import unittest

from msrplib.connect import (AcceptorRelay, ConnectorRelay, MSRPAuthError, MSRPBindError,
                             MSRPRelaySettings, RelayConnection)
from msrplib.digest import answer_challenge
from msrplib.protocol import URI, AuthParams
from msrplib.relayserver import (DigestAuthority, MSRPRelay, RelaySettings, UsersFileError,
                                 make_ha1, parse_users)
from msrplib.relayserver.digestauth import GRANTED, REFUSED, STALE
from msrplib.relayserver.nexthops import NextHopRefused
from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from tests.certificates import TestAuthority
from tests.relay import USERS, KamailioRelay

REALM = "msrp-test"
HA1 = {user: make_ha1(user, REALM, password) for user, password in USERS.items()}
SESSION_SETTINGS = SessionSettings(keepalive_interval=0)


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class UsersFileTests(unittest.TestCase):
    def test_lines(self):
        users = parse_users(["# who may AUTH", "", "alice:%s" % HA1["alice"].upper(),
                             "  bob:%s  " % HA1["bob"]])
        self.assertEqual(users, HA1)

    def test_bad_lines(self):
        for lines in (["alice:secret"], ["alice %s" % HA1["alice"]],
                      ["alice:%s" % HA1["alice"], "alice:%s" % HA1["bob"]]):
            self.assertRaises(UsersFileError, parse_users, lines)


class DigestAuthorityTests(unittest.TestCase):
    uri = "msrp://127.0.0.1:2855;tcp"

    def setUp(self):
        self.clock = Clock()
        self.authority = DigestAuthority(REALM, HA1, self.clock, nonce_lifetime=300)

    def answer(self, password="alice-secret", nonce_count=1, challenge=None):
        challenge = challenge or self.authority.challenge()
        return answer_challenge(challenge, "alice", password, self.uri, nonce_count)

    def test_granted(self):
        self.assertEqual(self.authority.check(self.answer(), "AUTH", self.uri),
                         (GRANTED, "alice"))

    def test_wrong_password_uri_or_method(self):
        self.assertEqual(self.authority.check(self.answer("wrong"), "AUTH", self.uri)[0],
                         REFUSED)
        self.assertEqual(self.authority.check(self.answer(), "AUTH",
                                              "msrp://elsewhere;tcp")[0], REFUSED)
        self.assertEqual(self.authority.check(self.answer(), "SEND", self.uri)[0], REFUSED)

    def test_a_replayed_answer_is_refused(self):
        challenge = self.authority.challenge()
        answer = self.answer(challenge=challenge)
        self.assertEqual(self.authority.check(answer, "AUTH", self.uri)[0], GRANTED)
        self.assertEqual(self.authority.check(answer, "AUTH", self.uri)[0], REFUSED)
        later = self.answer(nonce_count=2, challenge=challenge)
        self.assertEqual(self.authority.check(later, "AUTH", self.uri)[0], GRANTED)

    def test_an_old_nonce_is_stale(self):
        challenge = self.authority.challenge()
        self.clock.advance(301)
        self.assertEqual(self.authority.check(self.answer(challenge=challenge), "AUTH",
                                              self.uri)[0], STALE)
        self.assertEqual(self.authority.challenge(stale=True).params["stale"], "true")

    def test_the_counts_remembered_are_bounded(self):
        authority = DigestAuthority(REALM, HA1, self.clock, max_nonces=3)
        answers = [answer_challenge(authority.challenge(), "alice", "alice-secret", self.uri)
                   for _ in range(4)]
        self.assertEqual([authority.check(answer, "AUTH", self.uri)[0] for answer in answers],
                         [GRANTED, GRANTED, GRANTED, STALE])
        self.clock.advance(301)  # the first three are too old to count now
        fresh = answer_challenge(authority.challenge(), "alice", "alice-secret", self.uri)
        self.assertEqual(authority.check(fresh, "AUTH", self.uri)[0], GRANTED)

    def test_a_nonce_not_made_here_is_refused(self):
        elsewhere = DigestAuthority(REALM, HA1, self.clock)
        answer = answer_challenge(elsewhere.challenge(), "alice", "alice-secret", self.uri)
        self.assertEqual(self.authority.check(answer, "AUTH", self.uri)[0], REFUSED)
        forged = answer_challenge(AuthParams("Digest", {"realm": REALM, "nonce": "0.0.0",
                                                        "qop": "auth"}),
                                  "alice", "alice-secret", self.uri)
        self.assertEqual(self.authority.check(forged, "AUTH", self.uri)[0], REFUSED)


#: What test relays may forward to: the other relays and peers of a test, on loopback.
LOOPBACK = ["127.0.0.0/8"]


def on_loopback(settings=None):
    """``settings`` (or the defaults) for a test relay whose next hops are on loopback,
    which a relay refuses unless told (see test_relay_next_hops)."""
    settings = settings or RelaySettings()
    if settings.allowed_next_hops is None:
        settings = dataclasses.replace(settings, allowed_next_hops=LOOPBACK)
    return settings


class RelayHarness:
    def start_relay(self, **options):
        options["settings"] = on_loopback(options.get("settings"))
        relay = MSRPRelay(REALM, HA1, **options)
        uri = relay.listen(0)
        self.addCleanup(relay.stop)
        return relay, uri

    def settings(self, user, uri, **options):
        options.setdefault("max_chunk_size", 64 * 1024)
        options.setdefault("max_unreported_bytes", None)
        return MSRPRelaySettings(REALM, user, USERS[user], host=uri.host, port=uri.port,
                                 **options)

    def endpoint(self, kind, settings):
        endpoint = kind(settings)
        self.addCleanup(endpoint.cleanup)
        return endpoint

    @inlineCallbacks
    def both_ways(self, alice, bob, heard, size, reply):
        """A file of ``size`` bytes from Alice, ``reply`` back from Bob, both confirmed
        by success REPORTs, and each received whole."""
        payload = os.urandom(size)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        yield bob.send_message(reply, "text/plain", success_report="yes")
        self.assertEqual(heard[1].received[0].data, payload)
        self.assertEqual(heard[0].received[0].data, reply)

    @inlineCallbacks
    def pair(self, alice_settings, bob_settings, bob_receiver=None, alice_receiver=None):
        alice = self.endpoint(ConnectorRelay, alice_settings)
        bob = self.endpoint(AcceptorRelay, bob_settings)
        alice_path = yield alice.prepare()
        bob_path = yield bob.prepare()
        links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)],
                                    consumeErrors=True)
        sessions = (MSRPSession(links[0], settings=SESSION_SETTINGS,
                                receiver=alice_receiver),
                    MSRPSession(links[1], settings=SESSION_SETTINGS, receiver=bob_receiver))
        for session in sessions:
            self.addCleanup(session.abort)
        return sessions


class OneRelayTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_messages_both_ways_and_a_file(self):
        relay, uri = self.start_relay()
        heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.pair(self.settings("alice", uri), self.settings("bob", uri),
                                     bob_receiver=heard[1], alice_receiver=heard[0])
        self.assertEqual(relay.bindings, 2)
        yield alice.send_message(b"hi bob", "text/plain")
        yield bob.send_message(b"hi alice", "text/plain")
        payload = os.urandom(2 * 1024 * 1024 + 5)
        yield alice.send_message(payload, "application/octet-stream")
        self.assertEqual([m.data for m in heard[0].received], [b"hi alice"])
        self.assertEqual(heard[1].received[0].data, b"hi bob")
        self.assertEqual(hashlib.sha256(heard[1].received[1].data).digest(),
                         hashlib.sha256(payload).digest())

    @inlineCallbacks
    def test_a_wrong_password(self):
        relay, uri = self.start_relay()
        settings = self.settings("alice", uri)
        settings.password = "wrong"
        error = yield self.assertFailure(self.endpoint(ConnectorRelay, settings).prepare(),
                                         MSRPAuthError)
        self.assertEqual(error.code, 401)

    @inlineCallbacks
    def test_expires_out_of_bounds_is_423_and_then_granted(self):
        relay, uri = self.start_relay()
        alice = self.endpoint(ConnectorRelay, self.settings("alice", uri, expires=5))
        path = yield alice.prepare()  # 423 with Min-Expires: asked again with 60
        self.assertEqual(path[0].host, "127.0.0.1")
        self.assertEqual(relay.bindings, 1)

    @inlineCallbacks
    def test_a_refresh_keeps_the_path(self):
        relay, uri = self.start_relay()
        changes = []
        alice = ConnectorRelay(self.settings("alice", uri), on_path_changed=changes.append)
        self.addCleanup(alice.cleanup)
        path = yield alice.prepare()
        yield alice.connection._authenticate(alice.connection._router)
        self.assertEqual((alice.auth_count, alice.full_local_path, relay.bindings),
                         (2, path, 1))

    @inlineCallbacks
    def test_an_unknown_session_is_481_and_a_dead_next_hop_503(self):
        relay, uri = self.start_relay()
        alice = self.endpoint(ConnectorRelay, self.settings("alice", uri))
        yield alice.prepare()
        stranger = URI(host="127.0.0.1", port=uri.port, session_id="nobody")
        bob = URI(host="127.0.0.1", port=9, session_id="bob")
        dead = URI(host="127.0.0.1", port=9, session_id="relay-there")
        error = yield self.assertFailure(alice.complete([dead, bob]), MSRPBindError)
        self.assertEqual(error.code, 503)
        other = self.endpoint(ConnectorRelay, self.settings("bob", uri))
        yield other.prepare()
        other.connection.use_path = [stranger]  # a Use-Path the relay never gave
        error = yield self.assertFailure(other.complete([bob]), MSRPBindError)
        self.assertEqual(error.code, 481)


class RelayFlowTests(RelayHarness, unittest.TestCase):
    """Pacing adapts to the relay: through ours, which holds senders back itself and says
    so in its grant, a session with the default (Kamailio's) settings sends 64 KiB chunks
    unpaced; to a peer behind another relay, or with follow_relay_flow off, it paces."""

    @inlineCallbacks
    def test_default_settings_through_our_relay_are_unpaced(self):
        relay, uri = self.start_relay()
        defaults = [MSRPRelaySettings(REALM, user, USERS[user], host="127.0.0.1",
                                      port=uri.port) for user in ("alice", "bob")]
        self.assertEqual((defaults[0].max_chunk_size, defaults[0].max_unreported_bytes),
                         (8 * 1024, 32 * 1024))
        heard = CollectingReceiver()
        alice, bob = yield self.pair(*defaults, bob_receiver=heard)
        self.assertEqual((alice.transport.max_chunk_size, alice.transport.max_unreported_bytes),
                         (64 * 1024, None))
        payload = os.urandom(3 * 1024 * 1024)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        self.assertEqual(heard.received[0].data, payload)

    @inlineCallbacks
    def test_a_peer_behind_another_relay_is_paced_and_the_switch_turns_it_off(self):
        first, first_uri = self.start_relay()
        second, second_uri = self.start_relay()
        settings = [MSRPRelaySettings(REALM, "alice", USERS["alice"], host="127.0.0.1",
                                      port=first_uri.port),
                    MSRPRelaySettings(REALM, "bob", USERS["bob"], host="127.0.0.1",
                                      port=second_uri.port)]
        alice, bob = yield self.pair(*settings)
        self.assertEqual((alice.transport.max_chunk_size, alice.transport.max_unreported_bytes),
                         (8 * 1024, 32 * 1024))
        off = MSRPRelaySettings(REALM, "alice", USERS["alice"], host="127.0.0.1",
                                port=first_uri.port, follow_relay_flow=False)
        other = MSRPRelaySettings(REALM, "bob", USERS["bob"], host="127.0.0.1",
                                  port=first_uri.port)
        alice, bob = yield self.pair(off, other)
        self.assertEqual(alice.transport.max_unreported_bytes, 32 * 1024)


class SharedConnectionTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_two_sessions_on_one_relay_connection_each_side(self):
        """RelayConnection through our relay: one AUTH per side, one binding each, and
        the relay's client demultiplexes by To-Path."""
        relay, uri = self.start_relay()
        relays = (RelayConnection(self.settings("alice", uri)),
                  RelayConnection(self.settings("bob", uri)))
        for connection in relays:
            self.addCleanup(connection.close)
        heard = CollectingReceiver(), CollectingReceiver()
        sessions = []
        for receiver in heard:
            alice, bob = ConnectorRelay(relays[0]), AcceptorRelay(relays[1])
            alice_path = yield alice.prepare()
            bob_path = yield bob.prepare()
            links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)])
            sessions.append((MSRPSession(links[0], settings=SESSION_SETTINGS),
                             MSRPSession(links[1], settings=SESSION_SETTINGS,
                                         receiver=receiver)))
        self.assertEqual(relay.bindings, 2)
        yield gatherResults([pair[0].send_message(b"to session %d" % index, "text/plain",
                                                  success_report="yes")
                             for index, pair in enumerate(sessions)])
        self.assertEqual([[m.data for m in receiver.received] for receiver in heard],
                         [[b"to session 0"], [b"to session 1"]])
        for pair in sessions:
            for session in pair:
                session.abort()


class AllowedNextHopsTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_only_the_next_hops_allowed_are_reached(self):
        second, second_uri = self.start_relay()
        first = MSRPRelay(REALM, HA1, host="127.0.0.3", settings=RelaySettings(
            allowed_next_hops=["10.0.0.0/8", "relay.example.com"]))
        first_uri = first.listen(0, interface="127.0.0.3")
        self.addCleanup(first.stop)
        alice = self.endpoint(ConnectorRelay, self.settings("alice", first_uri))
        yield alice.prepare()
        bob = URI(host="127.0.0.1", port=9, session_id="bob")
        there = URI(host="127.0.0.1", port=second_uri.port, session_id="x")
        error = yield self.assertFailure(alice.complete([there, bob]), MSRPBindError)
        self.assertEqual(error.code, 403)
        self.assertEqual(len(first._links), 1)  # no connection was made for it
        self.assertTrue(first.next_hops.allows("10.1.2.3"))
        self.assertTrue(first.next_hops.allows("192.0.2.1", "Relay.Example.com"))
        # Its own host at its own port only.
        own = first.next_hops.address_of("127.0.0.3", first_uri.port, 5)
        self.assertEqual(self.successResultOf(own), "127.0.0.3")
        self.failureResultOf(first.next_hops.address_of("127.0.0.3", 22, 5), NextHopRefused)
        self.assertFalse(first.next_hops.allows("192.0.2.1"))


class TwoRelaysTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_alice_to_her_relay_to_bobs_relay_to_bob(self):
        first, first_uri = self.start_relay()
        second, second_uri = self.start_relay()
        heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.pair(self.settings("alice", first_uri),
                                     self.settings("bob", second_uri),
                                     bob_receiver=heard[1], alice_receiver=heard[0])
        yield self.both_ways(alice, bob, heard, 1024 * 1024, b"got it")
        [from_path] = {m.first_chunk.headers["From-Path"] for m in heard[1].received}
        self.assertEqual(len(from_path.split()), 3)  # bob's relay, alice's relay, alice


class TLSRelayTests(RelayHarness, unittest.TestCase):
    """msrps to two relays whose certificates a test CA signed: the clients and the
    first relay (to the second) check the chain and the name."""

    @inlineCallbacks
    def test_alice_to_two_tls_relays_to_bob(self):
        authority = TestAuthority()
        relays = []
        for _ in range(2):
            relay = MSRPRelay(REALM, HA1, settings=on_loopback(RelaySettings(
                trust_root=authority.trust_root)))
            uri = relay.listen(0, use_tls=True, identity=authority.issue("127.0.0.1"))
            self.addCleanup(relay.stop)
            relays.append(uri)
        heard = CollectingReceiver()
        alice, bob = yield self.pair(
            self.settings("alice", relays[0], use_tls=True, trust_root=authority.trust_root),
            self.settings("bob", relays[1], use_tls=True, trust_root=authority.trust_root),
            bob_receiver=heard)
        yield alice.send_message(b"secret", "text/plain", success_report="yes")
        self.assertEqual(heard.received[0].data, b"secret")

    @inlineCallbacks
    def test_a_next_hop_with_a_certificate_of_another_name_is_refused(self):
        authority = TestAuthority()
        first = MSRPRelay(REALM, HA1, settings=on_loopback(RelaySettings(
            trust_root=authority.trust_root)))
        first_uri = first.listen(0)
        self.addCleanup(first.stop)
        second = MSRPRelay(REALM, HA1)
        second_uri = second.listen(0, use_tls=True,
                                   identity=authority.issue("relay.example.com"))
        self.addCleanup(second.stop)
        alice = self.endpoint(ConnectorRelay, self.settings("alice", first_uri))
        yield alice.prepare()
        bob = URI(host="127.0.0.1", port=9, session_id="bob")
        there = URI(host="127.0.0.1", port=second_uri.port, use_tls=True, session_id="x")
        error = yield self.assertFailure(alice.complete([there, bob]), MSRPBindError)
        self.assertEqual(error.code, 503)


class StaleNonceTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_a_stale_nonce_is_answered_again_without_a_failure(self):
        relay, uri = self.start_relay()
        check = relay.authority.check
        verdicts = []

        def first_stale(*args):
            verdict = check(*args)
            verdicts.append(verdict[0])
            return (STALE, verdict[1]) if len(verdicts) == 1 else verdict

        relay.authority.check = first_stale
        alice = self.endpoint(ConnectorRelay, self.settings("alice", uri))
        yield alice.prepare()
        self.assertEqual(verdicts, [GRANTED, GRANTED])  # the second with a new nonce
        self.assertEqual(relay.bindings, 1)


class SlowReceiverTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_a_stalled_receiver_paces_the_sender_and_the_relay_stays_small(self):
        """Bob reads nothing for 2 s while Alice sends 8 MiB with no pacing of her own:
        the relay stops reading her instead of buffering, and every byte arrives."""
        relay, uri = self.start_relay()
        heard = CollectingReceiver()
        alice, bob = yield self.pair(self.settings("alice", uri), self.settings("bob", uri),
                                     bob_receiver=heard)
        bob_socket = bob.transport.protocol.protocol.transport
        bob_socket.pauseProducing()
        reactor.callLater(2.0, bob_socket.resumeProducing)
        peak = [0]

        def measure():
            for link in relay._links:
                transport = link.protocol.transport
                held = sum(len(part) for part in getattr(transport, "_tempDataBuffer", [])) \
                    + len(getattr(transport, "dataBuffer", b""))
                peak[0] = max(peak[0], held)

        sampling = task.LoopingCall(measure)
        sampling.start(0.01)
        self.addCleanup(lambda: sampling.running and sampling.stop())
        payload = os.urandom(8 * 1024 * 1024)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        sampling.stop()
        self.assertEqual(hashlib.sha256(heard.received[0].data).digest(),
                         hashlib.sha256(payload).digest())
        self.assertLess(peak[0], 1024 * 1024)


class ThroughKamailioTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def through_kamailio(self, alice_chunk_size, **relay_options):
        """Alice on our relay, Bob on a fresh Kamailio: their sessions, what each heard,
        and the Kamailio (its port is known only once it runs)."""
        kamailio = KamailioRelay()
        kamailio.start()
        self.addCleanup(kamailio.stop)
        options = {name: make(kamailio) for name, make in relay_options.items()}
        relay, uri = self.start_relay(**options)
        heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.pair(
            self.settings("alice", uri, max_chunk_size=alice_chunk_size,
                          max_unreported_bytes=32 * 1024),
            self.settings("bob", URI(host="127.0.0.1", port=kamailio.port),
                          max_chunk_size=8 * 1024, max_unreported_bytes=32 * 1024),
            bob_receiver=heard[1], alice_receiver=heard[0])
        return alice, bob, heard, kamailio

    @inlineCallbacks
    def test_alice_to_our_relay_to_kamailio_to_bob(self):
        alice, bob, heard, kamailio = yield self.through_kamailio(8 * 1024)
        yield self.both_ways(alice, bob, heard, 512 * 1024, b"through both")
        self.assertTrue(kamailio.alive)

    @inlineCallbacks
    def test_our_relay_cuts_large_chunks_for_kamailio(self):
        """Alice sends 64 KiB chunks; Kamailio relays no frame over about 11 KB, so our
        relay, told its next hop's limit, cuts them to 8 KiB: the file arrives whole."""
        alice, bob, heard, kamailio = yield self.through_kamailio(
            64 * 1024, settings=lambda kamailio: RelaySettings(
                next_hop_chunk_sizes={("127.0.0.1", kamailio.port): 8 * 1024}))
        heard = heard[1]
        payload = os.urandom(1024 * 1024)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        self.assertEqual(hashlib.sha256(heard.received[0].data).digest(),
                         hashlib.sha256(payload).digest())
        self.assertEqual(alice.transport.max_chunk_size, 64 * 1024)
        self.assertTrue(kamailio.alive)
