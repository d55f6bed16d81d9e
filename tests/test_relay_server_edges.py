"""Edges of msrplib.relayserver found by review (each test failed on c1c930f)."""

from twisted.internet import protocol, reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from msrplib._bind import ConnectionSettings
from msrplib._chunk import MSRPData, new_transaction_id
from msrplib._direct import connect_to
from msrplib._headers import Headers
from msrplib._uri import parse_uri
from msrplib.digest import answer_challenge
from msrplib.relayserver import MSRPRelay
from tests.relay import USERS
from tests.test_relay_server import HA1, REALM, on_loopback

ME = "msrp://127.0.0.1:9/me;tcp"


@inlineCallbacks
def until(predicate, timeout=5.0):
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("timed out waiting")
        yield task.deferLater(reactor, 0.01, lambda: None)


class Raw:
    """A bare MSRP connection: writes requests as told, keeps what arrives."""

    def __init__(self, proto):
        self.proto, self.got = proto, []
        proto.set_receiver(lambda e: isinstance(e, MSRPData) and self.got.append(e))

    def request(self, method, to, body=b"", from_path=ME, **headers):
        h = Headers([("To-Path", to), ("From-Path", from_path)])
        if method != "AUTH":
            h.add("Message-ID", new_transaction_id())
        for name, value in headers.items():
            h.add(name.replace("_", "-"), value)
        if body:
            h.add("Content-Type", "text/plain")
        chunk = MSRPData(new_transaction_id(), method=method, headers=h, data=body)
        self.proto.write_chunk(chunk)
        return chunk.transaction_id

    @inlineCallbacks
    def answer(self, tid, timeout=5.0):
        yield until(lambda: any(r.transaction_id == tid for r in self.got), timeout)
        return next(r for r in self.got if r.transaction_id == tid)

    @inlineCallbacks
    def auth(self, relay_uri, user="alice"):
        challenge = (yield self.answer(self.request("AUTH", str(relay_uri)))).www_authenticate
        answer = answer_challenge(challenge, user, USERS[user], str(relay_uri))
        ok = yield self.answer(self.request("AUTH", str(relay_uri), Authorization=str(answer)))
        return str(ok.use_path[0])


class Sink(protocol.Protocol):
    def connectionMade(self):
        self.factory.conns.append(self)
        if self.factory.stall:
            self.transport.pauseProducing()

    def dataReceived(self, data):
        self.factory.received += len(data)


class RelayPeers:
    """A relay of its own for each test, and peers of it: raw MSRP connections and bare
    TCP next hops."""

    def start_relay(self, **options):
        options["settings"] = on_loopback(options.get("settings"))
        relay = MSRPRelay(REALM, HA1, **options)
        uri = relay.listen(0)
        self.addCleanup(relay.stop)
        return relay, uri

    @inlineCallbacks
    def connect(self, uri):
        proto = yield connect_to(uri, None, reactor, ConnectionSettings())[0]
        self.addCleanup(lambda: proto.abort() or proto.lost.observe().addErrback(lambda _: None))
        return Raw(proto)

    @inlineCallbacks
    def alice_and_a_next_hop(self, stall=False, **options):
        """A relay, alice AUTHed on it, and a bare next hop (``sink``, that reads all or,
        with ``stall``, nothing, and answers nothing); ``to`` is a To-Path from alice
        to it."""
        relay, uri = self.start_relay(**options)
        sink = self.sink(stall)
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        to = "%s msrp://127.0.0.1:%d/far;tcp" % (path, sink.port.getHost().port)
        return relay, uri, sink, alice, to

    def sink(self, stall=False):
        factory = protocol.Factory.forProtocol(Sink)
        factory.conns, factory.received, factory.stall = [], 0, stall
        factory.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(lambda: factory.port.connected and factory.port.stopListening())
        self.addCleanup(lambda: [c.transport.abortConnection() for c in factory.conns])
        return factory


class Review(RelayPeers, unittest.TestCase):
    @inlineCallbacks
    def test_a_feed_paused_for_a_next_hop_is_resumed_when_that_hop_is_lost(self):
        relay, uri = self.start_relay()
        sink = self.sink(stall=True)
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        to = "%s msrp://127.0.0.1:%d/far;tcp" % (path, sink.port.getHost().port)
        for _ in range(800):  # 16 MB, in chunks small enough that a read holds several
            alice.request("SEND", to, b"x" * 20 * 1024, Failure_Report="no")
        feed = next(link for link in relay._links if link.bindings)
        # The relay is behind: alice is held for the next hop, with chunks of hers parked.
        yield until(lambda: feed.held_by and feed.parked, timeout=15)
        yield sink.port.stopListening()
        for conn in sink.conns:
            conn.transport.abortConnection()  # the next hop dies
        tid = alice.request("AUTH", str(uri))
        yield alice.answer(tid, timeout=10)  # fails: alice is never read again

    @inlineCallbacks
    def test_chunks_awaiting_an_answer_do_not_keep_their_bodies(self):
        relay, uri = self.start_relay()
        sink = self.sink()  # reads all; never answers, as Failure-Report: partial asks
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        to = "%s msrp://127.0.0.1:%d/far;tcp" % (path, sink.port.getHost().port)
        for _ in range(40):
            alice.request("SEND", to, b"x" * 200 * 1024, Failure_Report="partial")
        yield until(lambda: sink.received >= 40 * 200 * 1024)
        held = sum(len(request.data) for request in {
            id(r): r for r in (getattr(entry, "request", None) for link in relay._links
                               for entry in link.pending.values()) if r is not None}.values())
        self.assertLess(held, 1024 * 1024)  # 8 MiB now, for response_timeout (30 s)

    @inlineCallbacks
    def test_malformed_auth_headers_are_answered_not_fatal(self):
        relay, uri = self.start_relay()
        probe = yield self.connect(uri)
        challenge = (yield probe.answer(probe.request("AUTH", str(uri)))).www_authenticate
        good = answer_challenge(challenge, "alice", USERS["alice"], str(uri), 1)
        non_ascii = answer_challenge(challenge, "alice", USERS["alice"], str(uri), 2)
        non_ascii.params["response"] = "\u00e9" * 32
        for headers in ({"Authorization": "Digest ="},
                        {"Authorization": str(good), "Expires": "soon"},
                        {"Authorization": str(non_ascii)}):
            raw = yield self.connect(uri)
            tid = raw.request("AUTH", str(uri), **headers)
            answer = yield raw.answer(tid, timeout=2)  # fails: the connection is dropped
            self.assertIn(answer.code, (400, 401, 423))
            self.assertFalse(raw.proto.lost.fired)

    @inlineCallbacks
    def test_stop_while_connecting_to_a_next_hop_leaves_nothing_open(self):
        relay, uri = self.start_relay()
        sink = self.sink()
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        connect, stopped = relay._connect, []

        def connect_then_stop(*args):
            made = connect(*args)
            stopped.append(relay.stop())
            return made

        relay._connect = connect_then_stop
        alice.request("SEND", "%s msrp://127.0.0.1:%d/far;tcp" % (
            path, sink.port.getHost().port), b"hello")
        yield until(lambda: stopped)
        yield stopped[0]
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual((len(relay._links), [c for c in sink.conns if c.transport.connected]),
                         (0, []))  # fails: a link made after stop, with a 30 s timer

    @inlineCallbacks
    def test_reports_get_no_transaction_responses(self):
        relay, uri = self.start_relay()
        stranger = yield self.connect(uri)
        tid = stranger.request("REPORT", "msrp://127.0.0.1:%d/nobody;tcp %s" % (uri.port, ME),
                               Status="000 200 OK")
        yield task.deferLater(reactor, 0.5, lambda: None)
        self.assertEqual([r.code for r in stranger.got if r.transaction_id == tid], [])

    @inlineCallbacks
    def test_strangers_challenges_do_not_make_a_users_nonce_stale(self):
        relay, uri = self.start_relay()
        alice = yield self.connect(uri)
        challenge = (yield alice.answer(alice.request("AUTH", str(uri)))).www_authenticate
        stranger = yield self.connect(uri)
        last = [stranger.request("AUTH", str(uri)) for _ in range(10001)][-1]
        yield stranger.answer(last, timeout=30)  # 10,001 unanswered challenges, ~1.5 MB
        answer = answer_challenge(challenge, "alice", USERS["alice"], str(uri))
        ok = yield alice.answer(alice.request("AUTH", str(uri), Authorization=str(answer)))
        self.assertEqual(ok.code, 200)  # 401 stale now: her nonce was evicted

    @inlineCallbacks
    def test_a_next_hop_that_owes_too_many_answers_holds_its_feed(self):
        from msrplib.relayserver import backpressure as backpressure_module
        from msrplib.relayserver.relay import RelaySettings
        self.patch(backpressure_module, "MAX_AWAITED_ANSWERS", 4)
        relay, uri = self.start_relay(settings=RelaySettings(response_timeout=1.0))
        sink = self.sink()  # takes everything, answers nothing
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        to = "%s msrp://127.0.0.1:%d/far;tcp" % (path, sink.port.getHost().port)
        for _ in range(10):
            alice.request("SEND", to, b"x" * 1000)
            yield task.deferLater(reactor, 0.02, lambda: None)  # one read each
        feed = next(link for link in relay._links if link.bindings)
        yield until(lambda: feed.protocol.reading_paused)
        self.assertLessEqual(max(len(link.pending) for link in relay._links), 4)
        # The answers fall overdue (408 failure REPORTs go back) and the feed is read again.
        yield until(lambda: not feed.protocol.reading_paused, timeout=5)
        yield until(lambda: len([r for r in alice.got if r.method == "REPORT"]) == 10,
                    timeout=10)

    @inlineCallbacks
    def test_silent_and_idle_connections_are_closed_and_connections_bounded(self):
        from msrplib.relayserver.relay import RelaySettings
        relay, uri = self.start_relay(settings=RelaySettings(
            idle_timeout=0.6, max_connections=3,
            connection=ConnectionSettings(first_request_timeout=0.4)))
        silent = yield self.connect(uri)  # says nothing at all
        sink = self.sink()  # a next hop that reads and never answers partial chunks
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        alice.request("SEND", "%s msrp://127.0.0.1:%d/far;tcp" % (
            path, sink.port.getHost().port), b"hi", Failure_Report="no")
        yield until(lambda: len(relay._links) == 3)  # silent, alice, the next hop
        refused = yield self.connect(uri)  # a fourth: over max_connections
        yield until(lambda: refused.proto.lost.fired)
        yield until(lambda: silent.proto.lost.fired, timeout=3)
        # The next hop's connection, with nothing owed either way, goes when idle;
        # alice's, which holds a binding, stays.
        yield until(lambda: len(relay._links) == 1, timeout=5)
        self.assertFalse(alice.proto.lost.fired)

    @inlineCallbacks
    def test_a_graceful_stop_waits_for_the_answers_under_way_up_to_its_grace(self):
        """RelayService.stopService stops listening at once, then waits while a next hop
        owes answers (here: one that never answers), up to ``grace``, then closes."""
        from msrplib.relayserver.service import Listener, RelayService
        relay = MSRPRelay(REALM, HA1, settings=on_loopback())
        service = RelayService(relay, [Listener(0)], grace=0.6)
        yield service.startService()
        self.addCleanup(relay.stop)
        uri = service.uris[0]
        sink = self.sink()
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        alice.request("SEND", "%s msrp://127.0.0.1:%d/far;tcp" % (
            path, sink.port.getHost().port), b"under way")
        yield until(lambda: relay.in_flight == 1)
        started = reactor.seconds()
        stopping = service.stopService()
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertFalse(stopping.called)  # still waiting for the answer
        self.assertFalse(alice.proto.lost.fired)
        yield stopping
        self.assertGreaterEqual(reactor.seconds() - started, 0.6)
        yield until(lambda: alice.proto.lost.fired)

    @inlineCallbacks
    def test_a_graceful_stop_with_nothing_under_way_is_quick(self):
        from msrplib.relayserver.service import Listener, RelayService
        relay = MSRPRelay(REALM, HA1)
        service = RelayService(relay, [Listener(0)], grace=5)
        yield service.startService()
        self.addCleanup(relay.stop)
        alice = yield self.connect(service.uris[0])
        yield alice.auth(service.uris[0])
        started = reactor.seconds()
        yield service.stopService()
        self.assertLess(reactor.seconds() - started, 1)


class ReceiverGoneForGood(RelayPeers, unittest.TestCase):
    @inlineCallbacks
    def test_a_sender_held_for_a_receiver_that_never_reads_again_is_let_go_for_good(self):
        """Bob stops reading for good. Once his connection has not drained for
        response_timeout, alice, held for him, is read again; the chunk of hers parked
        for him is refused then, not parked again (which held her again, for ever: she
        could reach nobody), and what she sends Carol arrives."""
        from msrplib.relayserver import RelaySettings
        relay, uri = self.start_relay(settings=RelaySettings(response_timeout=1.0))
        alice = yield self.connect(uri)
        bob = yield self.connect(uri)
        carol = yield self.connect(uri)
        alice_at = yield alice.auth(uri)
        bob_at = yield bob.auth(uri, "bob")
        carol_at = yield carol.auth(uri, "bob")
        bob.proto.transport.pauseProducing()
        for _ in range(400):  # 24 MB for Bob, far more than his socket takes
            alice.request("SEND", "%s %s %s" % (alice_at, bob_at, ME), b"x" * 60 * 1024)
        feed = next(link for link in relay._links
                    if relay.auth.get(parse_uri(alice_at).session_id) is not None and
                    relay.auth.get(parse_uri(alice_at).session_id).link is link)
        yield until(lambda: feed.held_by, timeout=10)
        yield until(lambda: any(link.overwhelmed for link in relay._links), timeout=10)
        yield task.deferLater(reactor, 3, lambda: None)  # sweeps go by
        alice.request("SEND", "%s %s %s" % (alice_at, carol_at, ME), b"for carol")
        yield until(lambda: any(r.method == "SEND" for r in carol.got), timeout=10)
