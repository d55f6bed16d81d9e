"""The relay against hostile peers: what two adversarial reviews found (of 2bd5ae7 and of
4020787), each test failing on the commit reviewed. A peer must not cut another's
connection, pin the relay's memory, hold a connection slot for ever, lock users out of
AUTH, crash a handler, or leave a sender unread, told twice or told wrongly."""

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.internet.task import Clock
from twisted.trial import unittest

from msrplib._bind import ConnectionSettings
from msrplib._chunk import MSRPData
from msrplib._headers import AuthParams, Headers
from msrplib._rules import should_respond
from msrplib.digest import answer_challenge
from msrplib.relayserver import backpressure as backpressure_module
from msrplib.relayserver import relay as relay_module
from msrplib.relayserver.digestauth import GRANTED, REFUSED, STALE, DigestAuthority
from msrplib._chunk import MAX_LINE_LENGTH
from msrplib.relayserver.relay import RelaySettings
from tests.relay import USERS
from tests.test_relay_server import HA1, REALM
from tests.test_relay_server_edges import RelayPeers, until


class Quiet(Protocol):
    """A bare TCP peer that keeps what it gets."""

    def connectionMade(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


class HostilePeerTests(RelayPeers, unittest.TestCase):
    @inlineCallbacks
    def test_a_from_path_too_long_to_forward_is_refused_and_the_receiver_keeps_its_line(self):
        relay, uri = self.start_relay()
        bob = yield self.connect(uri)
        bob_path = yield bob.auth(uri, "bob")
        stranger = yield self.connect(uri)
        # The longest From-Path our parser takes, less a little: with the relay's URI in
        # front it would be a line bob's parser refuses, and bob would lose his binding.
        hops = ["msrp://127.0.0.1:9/s%05d;tcp" % n for n in range(700)]
        from_path = " ".join(hops)[:16384 - len("From-Path: ") - 20].rsplit(" ", 1)[0]
        stranger.proto.write_raw((
            "MSRP tid1 SEND\r\nTo-Path: %s msrp://127.0.0.1:9/bob;tcp\r\nFrom-Path: %s\r\n"
            "Message-ID: m1\r\n-------tid1$\r\n" % (bob_path, from_path)).encode())
        answer = yield stranger.answer("tid1")
        self.assertEqual((answer.code, answer.comment), (400, "Headers too long to forward"))
        # One that fits goes through, and bob is still there to take it.
        room = MAX_LINE_LENGTH - len("From-Path: ") - len(bob_path) - 1
        fits = " ".join(hops)[:room].rsplit(" ", 1)[0]
        stranger.proto.write_raw((
            "MSRP tid2 SEND\r\nTo-Path: %s msrp://127.0.0.1:9/bob;tcp\r\nFrom-Path: %s\r\n"
            "Message-ID: m2\r\n-------tid2$\r\n" % (bob_path, fits)).encode())
        self.assertEqual((yield stranger.answer("tid2")).code, 200)
        yield until(lambda: any(r.method == "SEND" for r in bob.got))
        got = next(r for r in bob.got if r.method == "SEND")
        self.assertEqual(got.headers["from-path"], bob_path + " " + fits)
        self.assertFalse(bob.proto.lost.fired)

    @inlineCallbacks
    def test_long_paths_to_unknown_sessions_leave_nothing_behind(self):
        relay, uri = self.start_relay()
        stranger = yield self.connect(uri)
        longest = relay.settings.max_to_path_length
        for length, code in ((500, 403), (longest, 481)):
            tail = " ".join("msrp://127.0.0.1:9/s%05d;tcp" % n for n in range(length - 1))
            for n in range(50):
                stranger.request("SEND", "msrp://127.0.0.1:%d/nobody%d;tcp %s" % (
                    uri.port, n, tail), b"x")
            yield until(lambda code=code: len([r for r in stranger.got if r.code == code]) == 50)
        # Only the first URI of each was read, and each is short: at most 50 kept, none
        # of the others (2bd5ae7 kept every path whole, some 16 KiB of URIs each); the
        # paths longer than a relay takes were not read at all.
        self.assertLessEqual(len(relay._uris._parsed), 50)

    @inlineCallbacks
    def test_heavy_headers_awaiting_an_answer_are_cut_down_and_bounded(self):
        # The next hop reads all and answers nothing.
        relay, uri, sink, alice, to = yield self.alice_and_a_next_hop(
            settings=RelaySettings(max_awaited_bytes=64 * 1024))
        # A From-Path of 10 KB is what a failure REPORT goes back along: kept. The heavy
        # header of 30 KB is not needed for one: dropped.
        from_path = " ".join("msrp://127.0.0.1:9/s%05d;tcp" % n for n in range(345))
        for n in range(40):
            alice.proto.write_raw((
                "MSRP heavy%d SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: m%d\r\n"
                "X-Heavy: %s\r\nX-Heavier: %s\r\n-------heavy%d$\r\n"
                % (n, to, from_path, n, "h" * 15000, "h" * 15000, n)
            ).encode())
        feed = next(link for link in relay._links if link.bindings)
        yield until(lambda: feed.protocol.reading_paused)
        hop = next(link for link in relay._links if link.listener is None)
        kept = [entry.request.headers for entry in hop.pending.values()]
        self.assertTrue(kept)
        self.assertFalse(any("x-heavy" in headers or "x-heavier" in headers
                             for headers in kept))
        # Past the bound, the chunks of the read under way are still forwarded (a read
        # is at most 64 KiB), then no more: 40 would weigh some 420 KB.
        self.assertLess(hop.awaited_bytes, 64 * 1024 + 2 * 64 * 1024)
        self.assertLess(len(hop.pending), 20)

    @inlineCallbacks
    def test_a_held_sender_is_read_again_though_younger_answers_are_always_owed(self):
        self.patch(backpressure_module, "MAX_AWAITED_ANSWERS", 8)
        relay, uri = self.start_relay(settings=RelaySettings(response_timeout=2.0))
        sink = self.sink()  # takes everything, answers nothing
        to = "msrp://127.0.0.1:%d/far;tcp" % sink.port.getHost().port
        alice, carol = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, carol_path = (yield alice.auth(uri)), (yield carol.auth(uri, "bob"))

        def send(peer, path, count):
            for _ in range(count):
                peer.request("SEND", path + " " + to, b"x")

        # Answers owed, oldest first: alice's 3 (due at 2 s), carol's 1 (2.1 s), alice's
        # 5 (3 s): 9, and alice is held. From 2.5 s on, carol sends one every 0.5 s (4
        # owed at a time, too few to hold her), so when alice's fall overdue at 3 s a
        # younger answer of carol's is always owed: alice must be read again all the same.
        send(alice, alice_path, 3)
        yield task.deferLater(reactor, 0.1, send, carol, carol_path, 1)
        yield task.deferLater(reactor, 0.9, send, alice, alice_path, 5)
        feed = next(link for link in relay._links
                    if alice_path.split("/")[-1].split(";")[0] in link.bindings)
        yield until(lambda: feed.protocol.reading_paused)
        ticking = task.LoopingCall(send, carol, carol_path, 1)
        reactor.callLater(1.5, ticking.start, 0.5)
        self.addCleanup(lambda: ticking.running and ticking.stop())
        answer = yield alice.answer(alice.request("AUTH", str(uri)), timeout=6)
        self.assertEqual(answer.code, 401)

    @inlineCallbacks
    def test_a_connection_that_only_answers_nothing_is_closed_in_time(self):
        relay, uri = self.start_relay(settings=RelaySettings(
            idle_timeout=0.6, connection=ConnectionSettings(first_request_timeout=0.4)))
        bogus = yield ClientCreator(reactor, Quiet).connectTCP("127.0.0.1", uri.port)
        self.addCleanup(bogus.transport.abortConnection)
        closed = []
        bogus.connectionLost = closed.append
        ticking = task.LoopingCall(bogus.transport.write,
                                   b"MSRP abcd 200 OK\r\n-------abcd$\r\n")
        ticking.start(0.1)
        self.addCleanup(lambda: ticking.running and ticking.stop())
        yield until(lambda: closed, timeout=3)

    @inlineCallbacks
    def test_connections_without_a_binding_from_one_address_are_bounded(self):
        relay, uri = self.start_relay(settings=RelaySettings(
            connection=ConnectionSettings(max_unbound_per_source=2)))
        first, second = (yield self.connect(uri)), (yield self.connect(uri))
        third = yield self.connect(uri)
        yield until(lambda: third.proto.lost.fired)
        self.assertFalse(first.proto.lost.fired or second.proto.lost.fired)
        yield first.auth(uri)  # bound: it no longer counts
        fourth = yield self.connect(uri)
        yield fourth.auth(uri, "bob")
        fifth, sixth = (yield self.connect(uri)), (yield self.connect(uri))
        yield until(lambda: sixth.proto.lost.fired)
        self.assertFalse(fifth.proto.lost.fired)
        fifth.proto.abort()  # gone: room again
        yield until(lambda: fifth.proto.lost.fired)
        yield task.deferLater(reactor, 0.1, lambda: None)
        seventh = yield self.connect(uri)
        yield seventh.auth(uri)

    @inlineCallbacks
    def test_next_hops_opened_for_clients_are_bounded(self):
        relay, uri = self.start_relay(settings=RelaySettings(max_next_hops=2))
        sinks = [self.sink() for _ in range(3)]
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        codes = []
        for sink in sinks:
            tid = alice.request("SEND", "%s msrp://127.0.0.1:%d/far;tcp" % (
                path, sink.port.getHost().port), b"hi")
            codes.append((yield alice.answer(tid)).code)
        self.assertEqual(codes, [200, 200, 503])
        self.assertEqual(len([link for link in relay._links if link.listener is None]), 2)

    @inlineCallbacks
    def test_a_websocket_next_hop_is_refused_not_a_crash(self):
        relay, uri = self.start_relay()
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        for transport in ("wss", "ws", "udp"):
            tid = alice.request("SEND", "%s msrp://127.0.0.1:9/x;%s" % (path, transport), b"hi")
            answer = yield alice.answer(tid)
            self.assertEqual((answer.code, answer.comment),
                             (400, "Next hops are reached over TCP only"))
        self.assertFalse(alice.proto.lost.fired)
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_a_chunk_cut_into_pieces_gets_one_failure_report(self):
        relay, uri = self.start_relay()
        sink = self.sink()  # takes the pieces; then the connection goes
        port = sink.port.getHost().port
        relay.settings.next_hop_chunk_sizes[("127.0.0.1", port)] = 1024
        alice = yield self.connect(uri)
        path = yield alice.auth(uri)
        alice.request("SEND", "%s msrp://127.0.0.1:%d/far;tcp" % (path, port), b"z" * 5000,
                      Byte_Range="1-5000/5000")
        yield until(lambda: sink.received > 5000)
        for conn in sink.conns:
            conn.transport.abortConnection()
        yield until(lambda: any(r.method == "REPORT" for r in alice.got))
        yield task.deferLater(reactor, 0.3, lambda: None)
        reports = [r for r in alice.got if r.method == "REPORT"]
        self.assertEqual([(r.headers["status"], r.headers["byte-range"]) for r in reports],
                         [("000 503 Next hop closed", "1-5000/5000")])

    @inlineCallbacks
    def test_failure_report_values_match_in_any_case(self):
        relay, uri, sink, alice, to = yield self.alice_and_a_next_hop()
        quiet = [alice.request("SEND", to, b"a", Failure_Report=value)
                 for value in ("NO", "Partial")]
        loud = alice.request("SEND", to, b"b", Failure_Report="YES")
        yield alice.answer(loud)
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual([r for r in alice.got if r.transaction_id in quiet], [])


class SecondReviewTests(RelayPeers, unittest.TestCase):
    """What the review of 4020787 found: the fixes of the first one had holes."""

    def raw_send(self, peer, tid, to_path, headers_text, from_path=None):
        peer.proto.write_raw((
            "MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: m%s\r\n%s"
            "-------%s$\r\n" % (tid, to_path, from_path or "msrp://127.0.0.1:9/me;tcp",
                                 tid, headers_text, tid)).encode("utf-8"))

    @inlineCallbacks
    def bob_and_a_stranger(self, **options):
        relay, uri = self.start_relay(**options)
        bob = yield self.connect(uri)
        bob_path = yield bob.auth(uri, "bob")
        stranger = yield self.connect(uri)
        return relay, uri, bob, bob_path, stranger

    @inlineCallbacks
    def assert_refused_and_bob_unharmed(self, stranger, bob, tid):
        answer = yield stranger.answer(tid)
        self.assertEqual((answer.code, answer.comment), (400, "Headers too long to forward"))
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual([r for r in bob.got if r.method == "SEND"], [])
        self.assertFalse(bob.proto.lost.fired)

    @inlineCallbacks
    def test_a_from_path_is_measured_in_bytes(self):
        relay, uri, bob, bob_path, stranger = yield self.bob_and_a_stranger()
        # 16,353 bytes in 8,187 characters: within the line as characters, not as bytes.
        from_path = "msrp://127.0.0.1:9/x%s;tcp" % ("\u00e9" * 8163)
        self.raw_send(stranger, "utf8", bob_path + " msrp://127.0.0.1:9/bob;tcp", "",
                      from_path)
        yield self.assert_refused_and_bob_unharmed(stranger, bob, "utf8")

    @inlineCallbacks
    def test_headers_that_grow_as_the_relay_writes_them_are_refused(self):
        relay, uri, bob, bob_path, stranger = yield self.bob_and_a_stranger()
        to = bob_path + " msrp://127.0.0.1:9/bob;tcp"
        # "Name:value" goes out as "Name: value": a line at the limit would pass it by
        # one byte, and 13,000 short lines would pass the 64 KiB block by 13,000.
        line = "X-Pad:" + "p" * (MAX_LINE_LENGTH - len("X-Pad:"))
        self.raw_send(stranger, "oneline", to, line + "\r\n")
        yield self.assert_refused_and_bob_unharmed(stranger, bob, "oneline")
        self.raw_send(stranger, "manylines", to, "X:y\r\n" * 12900)
        yield self.assert_refused_and_bob_unharmed(stranger, bob, "manylines")

    @inlineCallbacks
    def test_clients_held_on_each_others_answers_get_no_false_failure_reports(self):
        self.patch(backpressure_module, "HELD_ANSWER_GRACE", 0.3)
        relay, uri = self.start_relay(settings=RelaySettings(max_awaited_bytes=8000,
                                                             response_timeout=1.0))
        alice, bob = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, bob_path = (yield alice.auth(uri)), (yield bob.auth(uri, "bob"))
        alice_me, bob_me = "msrp://127.0.0.1:9/alice;tcp", "msrp://127.0.0.1:9/bob;tcp"

        def answer_sends(peer, me):
            for request in [r for r in peer.got if r.method == "SEND"]:
                peer.got.remove(request)
                peer.proto.write_raw((
                    "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n" % (
                        request.transaction_id, request.headers["from-path"].split()[0], me,
                        request.transaction_id)).encode())

        # Alice sends 20 to bob, who does not answer yet: alice is held (her next hop
        # owes too much). Bob sends 20 to alice, who answers at once, but the relay does
        # not read her answers: it holds her. Then bob answers.
        for _ in range(20):
            alice.request("SEND", "%s %s %s" % (alice_path, bob_path, bob_me), b"a")
        yield until(lambda: len([r for r in bob.got if r.method == "SEND"]) >= 1)
        for _ in range(20):
            bob.request("SEND", "%s %s %s" % (bob_path, alice_path, alice_me), b"b")
        answering = task.LoopingCall(answer_sends, alice, alice_me)
        answering.start(0.05)
        self.addCleanup(answering.stop)
        yield task.deferLater(reactor, 0.5, lambda: None)
        answer_sends(bob, bob_me)
        bob_answering = task.LoopingCall(answer_sends, bob, bob_me)
        bob_answering.start(0.05)
        self.addCleanup(bob_answering.stop)
        yield until(lambda: relay.in_flight == 0, timeout=15)  # all delivered, answered
        yield task.deferLater(reactor, 1.5, lambda: None)  # past response_timeout
        self.assertEqual([r.headers["status"] for r in alice.got + bob.got
                          if r.method == "REPORT"], [])

    @inlineCallbacks
    def test_next_hops_are_shared_out_among_users(self):
        relay, uri = self.start_relay(settings=RelaySettings(max_next_hops_per_user=2))
        sinks = [self.sink() for _ in range(4)]
        alice, bob = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, bob_path = (yield alice.auth(uri)), (yield bob.auth(uri, "bob"))

        @inlineCallbacks
        def send(peer, path, sink):
            tid = peer.request("SEND", "%s msrp://127.0.0.1:%d/far;tcp" % (
                path, sink.port.getHost().port), b"hi")
            return (yield peer.answer(tid)).code

        codes = []
        for sink in sinks[:3]:
            codes.append((yield send(alice, alice_path, sink)))
        codes.append((yield send(bob, bob_path, sinks[3])))  # bob has a share of his own
        codes.append((yield send(bob, bob_path, sinks[0])))  # open already: no new one
        self.assertEqual(codes, [200, 200, 503, 200, 200])

    @inlineCallbacks
    def test_answers_awaited_relay_wide_are_bounded(self):
        # The next hop reads all and answers nothing.
        relay, uri, sink, alice, to = yield self.alice_and_a_next_hop(
            settings=RelaySettings(max_awaited_bytes_total=20000))
        tids = [alice.request("SEND", to, b"x") for _ in range(20)]
        codes = []
        for tid in tids:
            codes.append((yield alice.answer(tid)).code)
        self.assertIn(503, codes)  # "Relay busy": its sender knows at once
        self.assertEqual(codes[:3], [200, 200, 200])
        self.assertLessEqual(relay._awaited_bytes, 20000)

    @inlineCallbacks
    def test_a_slow_first_request_is_not_cut_off_once_its_headers_are_in(self):
        relay, uri = self.start_relay(settings=RelaySettings(
            connection=ConnectionSettings(first_request_timeout=0.4)))
        bob = yield self.connect(uri)
        bob_path = yield bob.auth(uri, "bob")
        slow = yield ClientCreator(reactor, Quiet).connectTCP("127.0.0.1", uri.port)
        self.addCleanup(slow.transport.abortConnection)
        slow.transport.write((
            "MSRP slow1 SEND\r\nTo-Path: %s msrp://127.0.0.1:9/bob;tcp\r\n"
            "From-Path: msrp://127.0.0.1:9/me;tcp\r\nMessage-ID: m1\r\n"
            "Content-Type: text/plain\r\n\r\n" % bob_path).encode())
        for _ in range(12):  # 1.2 s of body, a little at a time
            yield task.deferLater(reactor, 0.1, slow.transport.write, b"z" * 100)
        slow.transport.write(b"\r\n-------slow1$\r\n")
        yield until(lambda: b"MSRP slow1 200" in slow.received)
        yield until(lambda: any(r.method == "SEND" for r in bob.got))


class RuleTests(unittest.TestCase):
    def test_report_values_are_read_in_any_case(self):
        for value, answered in (("NO", False), ("No", False), ("PARTIAL", False),
                                ("YES", True), ("yes", True)):
            request = MSRPData("t", method="SEND",
                               headers=Headers([("Failure-Report", value)]))
            self.assertEqual(should_respond(request, 200), answered, value)


class NonceTableTests(unittest.TestCase):
    """A user who makes nonces by the hundred thousand shuts nobody else out."""

    def answer(self, authority, user):
        return answer_challenge(authority.challenge(), user, USERS[user], "msrp://r;tcp")

    def test_a_full_table_forgets_its_oldest_not_the_next_user(self):
        clock = Clock()
        authority = DigestAuthority(REALM, HA1, clock, max_nonces=3)
        early = []
        for _ in range(10):
            clock.advance(1)
            answer = self.answer(authority, "bob")
            early.append(answer)
            self.assertEqual(authority.check(answer, "AUTH", "msrp://r;tcp")[0], GRANTED)
        clock.advance(1)
        alice = self.answer(authority, "alice")
        self.assertEqual(authority.check(alice, "AUTH", "msrp://r;tcp"), (GRANTED, "alice"))
        # An answer with a nonce whose count was forgotten cannot be checked for a
        # replay: stale (answer again with a new nonce), never granted.
        replay = AuthParams("Digest", dict(early[0].params), early[0].tokens)
        self.assertEqual(authority.check(replay, "AUTH", "msrp://r;tcp")[0], STALE)
        # One still remembered is checked as before: the same count again is a replay.
        self.assertEqual(authority.check(alice, "AUTH", "msrp://r;tcp")[0], REFUSED)


class ThirdReviewTests(RelayPeers, unittest.TestCase):
    """What the review of b7916e3 found."""

    def answer_first_sends(self, peer, me, count):
        """Answer (200) the first ``count`` SENDs ``peer`` got."""
        for request in [r for r in peer.got if r.method == "SEND"][:count]:
            peer.proto.write_raw((
                "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n" % (
                    request.transaction_id, request.headers["from-path"].split()[0], me,
                    request.transaction_id)).encode())

    @inlineCallbacks
    def test_a_connection_read_again_for_its_answers_cannot_push_into_a_stalled_hop(self):
        relay, uri = self.start_relay(settings=RelaySettings(response_timeout=1.0))
        self.patch(backpressure_module, "HELD_ANSWER_GRACE", 0.3)
        sink = self.sink(stall=True)  # a next hop that reads nothing
        alice, carol = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, carol_path = (yield alice.auth(uri)), (yield carol.auth(uri, "bob"))
        to = "%s msrp://127.0.0.1:%d/far;tcp" % (alice_path, sink.port.getHost().port)
        feed = next(link for link in relay._links if link.bindings and
                    alice_path.split("/")[-1].split(";")[0] in link.bindings)
        while not feed.protocol.reading_paused:  # until the relay holds alice back
            alice.request("SEND", to, b"x" * 60000, Failure_Report="no")
            yield task.deferLater(reactor, 0.01, lambda: None)
        # Alice owes an answer (carol's chunk, which she never answers): when it falls
        # due, the relay reads her again for it, and she pushes on.
        carol.request("SEND", "%s %s msrp://127.0.0.1:9/alice;tcp" % (carol_path, alice_path),
                      b"owed")
        tids = [alice.request("SEND", to, b"y" * 60000) for _ in range(30)]
        yield until(lambda: any(r.code == 503 for r in alice.got), timeout=6)
        refused = [r for r in alice.got if r.transaction_id in tids and r.code == 503]
        self.assertEqual(refused[0].comment, "Next hop behind")

    @inlineCallbacks
    def test_a_connection_read_again_for_its_answers_is_held_again_once_they_are_done(self):
        """The window in which a connection let go for the answers it owes has what it
        sends to a next hop that is behind refused, not held, ends: after the graces,
        its chunk for another next hop that is behind is held (and it paced), not
        refused."""
        relay, uri = self.start_relay(settings=RelaySettings(response_timeout=1.0))
        self.patch(backpressure_module, "HELD_ANSWER_GRACE", 0.3)
        first, second = self.sink(stall=True), self.sink(stall=True)
        alice, carol = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, carol_path = (yield alice.auth(uri)), (yield carol.auth(uri, "bob"))

        def feed_of(path):
            return next(link for link in relay._links if link.bindings and
                        path.split("/")[-1].split(";")[0] in link.bindings)

        @inlineCallbacks
        def fill(client, path, sink):
            """Send to ``sink`` until the relay holds ``client`` back for it."""
            to = "%s msrp://127.0.0.1:%d/far;tcp" % (path, sink.port.getHost().port)
            while not feed_of(path).protocol.reading_paused:
                client.request("SEND", to, b"x" * 60000, Failure_Report="no")
                yield task.deferLater(reactor, 0.01, lambda: None)
            return to

        yield fill(alice, alice_path, first)
        # Alice owes carol an answer she never gives: the relay reads her again for it,
        # up to its graces, then carol gets a 408.
        carol.request("SEND", "%s %s msrp://127.0.0.1:9/alice;tcp" % (carol_path, alice_path),
                      b"owed")
        yield until(lambda: any(r.method == "REPORT" for r in carol.got), timeout=5)
        [report] = [r for r in carol.got if r.method == "REPORT"]
        self.assertEqual(report.headers["status"], "000 408 No answer from the next hop")
        # The last grace began at most one grace before the 408: its window then ends.
        yield task.deferLater(reactor, 0.3 * backpressure_module.HELD_ANSWER_GRACES + 0.1,
                              lambda: None)
        # Carol makes the second next hop fall behind; then alice sends to it.
        to_second = yield fill(carol, carol_path, second)
        to_second = to_second.replace(carol_path, alice_path)
        tid = alice.request("SEND", to_second, b"y" * 1000)
        alice_feed = feed_of(alice_path)
        yield until(lambda: alice_feed.protocol.reading_paused or
                    any(r.transaction_id == tid for r in alice.got), timeout=5)
        self.assertEqual([r.code for r in alice.got if r.transaction_id == tid], [])
        self.assertTrue(alice_feed.protocol.reading_paused)  # held, with her chunk parked
        self.assertEqual([request.transaction_id for request, *_ in alice_feed.parked], [tid])

    @inlineCallbacks
    def test_sends_to_a_connections_own_bindings_are_bounded(self):
        relay, uri = self.start_relay(settings=RelaySettings(max_awaited_bytes=20000))
        gateway = yield self.connect(uri)  # a connection holding two bindings
        first, second = (yield gateway.auth(uri)), (yield gateway.auth(uri, "bob"))
        codes = []
        for _ in range(30):  # to itself, never answered: it cannot be held on itself
            tid = gateway.request("SEND", "%s %s msrp://127.0.0.1:9/b;tcp" % (first, second),
                                  b"x")
            codes.append((yield gateway.answer(tid)).comment)
        self.assertIn("Next hop behind", codes)
        self.assertLessEqual(max(link.awaited_bytes for link in relay._links), 20000 + 4096)

    @inlineCallbacks
    def test_one_users_share_of_the_answers_awaited_is_bounded(self):
        relay, uri = self.start_relay(settings=RelaySettings(max_awaited_bytes_per_user=40000))
        sink = self.sink()  # a next hop that never answers
        port = sink.port.getHost().port

        @inlineCallbacks
        def send(peer, path):
            tid = peer.request("SEND", "%s msrp://127.0.0.1:%d/x;tcp" % (path, port), b"x")
            return (yield peer.answer(tid)).comment

        alice, bob = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, bob_path = (yield alice.auth(uri)), (yield bob.auth(uri, "bob"))
        comments = []
        for _ in range(40):
            comments.append((yield send(alice, alice_path)))
        self.assertIn("Relay busy", comments)
        self.assertEqual((yield send(bob, bob_path)), "OK")  # his share is his own
        again = yield self.connect(uri)  # alice on another connection: the same share
        self.assertEqual((yield send(again, (yield again.auth(uri)))), "Relay busy")

    @inlineCallbacks
    def test_a_next_hop_that_drains_nothing_for_long_no_longer_holds_its_feeds(self):
        relay, uri, sink, alice, to = yield self.alice_and_a_next_hop(
            stall=True, settings=RelaySettings(
                response_timeout=0.5, connection=ConnectionSettings(first_request_timeout=2.0)))
        feed = next(link for link in relay._links if link.bindings)
        while not feed.protocol.reading_paused:
            alice.request("SEND", to, b"x" * 60000)
            yield task.deferLater(reactor, 0.01, lambda: None)
        # Within response_timeout and the sweep's half second, alice is read again, and
        # what she sends the next hop is refused until it drains; it is not closed (a
        # slow reader is still a reader), and what it owes fails in time (408).
        answer = yield alice.answer(alice.request("AUTH", str(uri)), timeout=5)
        self.assertEqual(answer.code, 401)
        refused = yield alice.answer(alice.request("SEND", to, b"more"))
        self.assertEqual((refused.code, refused.comment), (503, "Next hop behind"))
        yield until(lambda: any(r.method == "REPORT" for r in alice.got), timeout=5)
        self.assertTrue([link for link in relay._links if link.listener is None])

    @inlineCallbacks
    def test_partial_answers_are_not_kept_as_long_as_the_yes_before_them(self):
        self.patch(relay_module, "PARTIAL_ANSWER_WAIT", 0.3)
        relay, uri = self.start_relay()  # response_timeout 30 s
        alice, bob = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, bob_path = (yield alice.auth(uri)), (yield bob.auth(uri, "bob"))
        to = "%s %s msrp://127.0.0.1:9/bob;tcp" % (alice_path, bob_path)
        alice.request("SEND", to, b"yes")
        yield until(lambda: any(r.method == "SEND" for r in bob.got))
        for _ in range(5):
            alice.request("SEND", to, b"partial", Failure_Report="partial")
        yield until(lambda: len([r for r in bob.got if r.method == "SEND"]) == 6)
        self.answer_first_sends(bob, "msrp://127.0.0.1:9/bob;tcp", 1)  # the yes
        yield until(lambda: relay.in_flight == 0, timeout=2)  # not 30 s

    @inlineCallbacks
    def test_a_next_hop_being_closed_gets_no_more_chunks(self):
        relay, uri, sink, alice, to = yield self.alice_and_a_next_hop()
        yield alice.answer(alice.request("SEND", to, b"first"))
        hop = next(link for link in relay._links if link.listener is None)
        relay._close(hop)  # as the idle sweep does; its close takes a while over TLS
        alice.request("SEND", to, b"second")
        yield until(lambda: len(sink.conns) == 2)  # on a new connection
        yield until(lambda: sink.received >= len(b"firstsecond") + 200)

    @inlineCallbacks
    def test_a_stop_ends_even_with_a_client_that_reads_nothing(self):
        self.patch(relay_module, "CLOSE_WAIT", 0.5)
        relay, uri = self.start_relay()
        bob = yield self.connect(uri)
        bob_path = yield bob.auth(uri, "bob")
        bob.proto.transport.pauseProducing()  # reads nothing from now on
        alice = yield self.connect(uri)
        alice_path = yield alice.auth(uri)
        for _ in range(60):
            alice.request("SEND", "%s %s msrp://127.0.0.1:9/bob;tcp" % (alice_path, bob_path),
                          b"z" * 60000, Failure_Report="no")
        yield task.deferLater(reactor, 0.5, lambda: None)
        started = reactor.seconds()
        yield relay.stop()
        self.assertLess(reactor.seconds() - started, 3.0)


class FourthReviewTests(RelayPeers, unittest.TestCase):
    """What the review of 5926207 found."""

    @inlineCallbacks
    def test_chunks_to_a_binding_count_in_its_users_share_not_their_senders_address(self):
        # Every user of another relay comes over one connection from one address: what
        # one of them sends to bindings that never answer must not use up the others'.
        relay, uri = self.start_relay(settings=RelaySettings(max_awaited_bytes_per_user=40000))
        bob, alice = (yield self.connect(uri)), (yield self.connect(uri))
        bob_path, alice_path = (yield bob.auth(uri, "bob")), (yield alice.auth(uri))
        peer_relay = yield self.connect(uri)  # no binding: the other relay's connection
        comments = []
        for _ in range(40):  # to bob, who never answers
            tid = peer_relay.request("SEND", "%s msrp://127.0.0.1:9/bob;tcp" % bob_path, b"x")
            comments.append((yield peer_relay.answer(tid)).comment)
        self.assertIn("Relay busy", comments)  # bob's share, used up
        tid = peer_relay.request("SEND", "%s msrp://127.0.0.1:9/alice;tcp" % alice_path, b"x")
        self.assertEqual((yield peer_relay.answer(tid)).comment, "OK")  # alice's is free


class FifthReviewTests(RelayPeers, unittest.TestCase):
    """What the review of 28e2307 found."""

    @inlineCallbacks
    def test_strangers_flooding_a_prompt_receiver_do_not_shut_out_its_peer(self):
        relay, uri = self.start_relay(settings=RelaySettings(
            max_awaited_bytes=20000, max_awaited_bytes_per_user=80000))
        alice, bob = (yield self.connect(uri)), (yield self.connect(uri))
        alice_path, bob_path = (yield alice.auth(uri)), (yield bob.auth(uri, "bob"))
        alice_me = "msrp://127.0.0.1:9/alice;tcp"

        def answer_all():
            for request in [r for r in alice.got if r.method == "SEND"]:
                alice.got.remove(request)
                alice.proto.write_raw((
                    "MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n" % (
                        request.transaction_id, request.headers["from-path"].split()[0],
                        alice_me, request.transaction_id)).encode())

        answering = task.LoopingCall(answer_all)  # alice answers all, promptly
        answering.start(0.02)
        self.addCleanup(answering.stop)
        strangers = []
        for _ in range(20):
            strangers.append((yield self.connect(uri)))
        for stranger in strangers:  # no binding, no credentials: a flood at alice
            for _ in range(30):
                stranger.request("SEND", "%s %s" % (alice_path, alice_me), b"f" * 1000)
        tids = [bob.request("SEND", "%s %s %s" % (bob_path, alice_path, alice_me), b"hi")
                for _ in range(10)]
        codes = []
        for tid in tids:
            codes.append((yield bob.answer(tid, timeout=20)).code)
        self.assertEqual(codes, [200] * 10)  # held back a while, perhaps; never refused
        # What waits for alice never went past her connection's bound by more than the
        # chunks of one read: the strangers' chunks wait at the relay, unread.
        hop = next(link for link in relay._links
                   if alice_path.split("/")[-1].split(";")[0] in link.bindings)
        self.assertLess(hop.awaited_bytes, 20000 + 64 * 1024)
