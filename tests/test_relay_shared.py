"""Sessions that share one relay connection and one AUTH (RelayConnection), against a
scripted relay on a StringTransport: what goes where, who writes when, who closes."""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from msrplib.connect import (AcceptorRelay, ConnectionSettings, ConnectorRelay,
                             MSRPRelaySettings, RelayConnection)
from msrplib.protocol import ChunkParser, Headers, MSRPData, make_response, parse_uri
from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from msrplib._parser import ChunkStarted, ChunkEnded, ChunkData

USE_PATH = "msrp://127.0.0.1:2855/msrp-1;tcp"
BOB = [parse_uri("msrp://127.0.0.1:2855/msrp-b;tcp"), parse_uri("msrp://127.0.0.1:6000/bob;tcp")]
CAROL = [parse_uri("msrp://127.0.0.1:2855/msrp-c;tcp"),
         parse_uri("msrp://127.0.0.1:7000/carol;tcp")]


class SharedRelayHarness:
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 40001))
        self.changes = {}
        self.relay = RelayConnection(
            MSRPRelaySettings("msrp-test", "alice", "secret", host="127.0.0.1", port=2855,
                              max_chunk_size=1024 * 1024),
            reactor=self.reactor, settings=ConnectionSettings(bind_timeout=5))

    def endpoint(self, name, kind=ConnectorRelay):
        endpoint = kind(self.relay, reactor=self.reactor,
                        on_path_changed=self.changes.setdefault(name, []).append)
        self.addCleanup(endpoint.cleanup)
        return endpoint

    def connect(self):
        """The relay connection is made (once): answer its AUTH."""
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.protocol = self.reactor.tcpClients[0][2].buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        self.auth = self.sent()[0]
        self.assertEqual(self.auth.method, "AUTH")
        self.answer(self.auth, 200, Use_Path=USE_PATH, Expires="100")

    def sent(self):
        """The chunks written since last asked (streamed bodies joined)."""
        chunks, current = [], None
        for event in ChunkParser().feed(self.transport.value()):
            if isinstance(event, MSRPData):
                chunks.append(event)
            elif isinstance(event, ChunkStarted):
                current = event.chunk
                current.data = b""
            elif isinstance(event, ChunkData):
                current.data += event.data
            elif isinstance(event, ChunkEnded):
                current.contflag = event.chunk.contflag
                chunks.append(current)
        self.transport.clear()
        return chunks

    def answer(self, request, code, **headers):
        response = make_response(request, code)
        for name, value in headers.items():
            response.headers[name.replace("_", "-")] = value
        self.protocol.dataReceived(response.encode())

    def deliver(self, to_uri, from_path, data=b"hi", message_id="m1", tid=None):
        headers = Headers([("To-Path", str(to_uri)),
                           ("From-Path", " ".join(str(uri) for uri in from_path)),
                           ("Message-ID", message_id),
                           ("Byte-Range", "1-%d/%d" % (len(data), len(data)))])
        if data:
            headers.add("Content-Type", "text/plain")
        chunk = MSRPData(tid or ("t%07d" % len(self.transport.value())), method="SEND",
                         headers=headers, data=data)
        self.protocol.dataReceived(chunk.encode())
        return chunk

    def private_binding(self):
        """A ConnectorRelay with a connection of its own, prepared: its complete(BOB)
        under way (the binding SEND not answered yet)."""
        endpoint = ConnectorRelay(
            MSRPRelaySettings("msrp-test", "alice", "secret", host="127.0.0.1", port=2855),
            reactor=self.reactor, settings=ConnectionSettings(bind_timeout=5))
        prepared = endpoint.prepare()
        self.connect()
        self.successResultOf(prepared)
        return endpoint.complete(BOB)

    def bound_pair(self, settings=None):
        """Two sessions through the shared connection: Alice-Bob and Alice-Carol."""
        first, second = self.endpoint("bob"), self.endpoint("carol")
        paths = [first.prepare(), second.prepare()]
        self.connect()
        paths = [self.successResultOf(path) for path in paths]
        bindings = [first.complete(BOB), second.complete(CAROL)]
        for send in self.sent():
            self.assertEqual(send.method, "SEND")
            self.answer(send, 200)
        transports = [self.successResultOf(binding) for binding in bindings]
        heard = CollectingReceiver(), CollectingReceiver()
        settings = settings or SessionSettings(keepalive_interval=0)
        sessions = [MSRPSession(transport, receiver=receiver, settings=settings,
                                reactor=self.reactor)
                    for transport, receiver in zip(transports, heard)]
        return paths, sessions, heard


class SharingTests(SharedRelayHarness, unittest.TestCase):
    def test_one_connection_and_one_auth_for_both(self):
        first, second = self.endpoint("bob"), self.endpoint("carol")
        paths = [first.prepare(), second.prepare()]
        self.connect()
        paths = [self.successResultOf(path) for path in paths]
        self.assertEqual(self.relay.auth_count, 1)
        self.assertEqual([str(path[0]) for path in paths], [USE_PATH, USE_PATH])
        uris = [path[1] for path in paths]
        self.assertNotEqual(uris[0].session_id, uris[1].session_id)
        # Both on the connection's address; AUTH named a URI of neither session.
        self.assertEqual({(uri.host, uri.port) for uri in uris}, {("127.0.0.1", 40001)})
        self.assertNotIn(self.auth.from_path[0], uris)
        self.assertEqual(self.relay.sessions, 2)

    def test_each_session_gets_its_own_chunks(self):
        paths, sessions, heard = self.bound_pair()
        self.deliver(paths[1][1], [parse_uri(USE_PATH)] + CAROL, b"for the second")
        self.deliver(paths[0][1], [parse_uri(USE_PATH)] + BOB, b"for the first")
        self.assertEqual([m.data for m in heard[0].received], [b"for the first"])
        self.assertEqual([m.data for m in heard[1].received], [b"for the second"])
        self.assertEqual([chunk.code for chunk in self.sent()], [200, 200])

    def test_a_chunk_for_no_session_here_gets_481(self):
        paths, sessions, heard = self.bound_pair()
        stranger = parse_uri("msrp://127.0.0.1:40001/nobody;tcp")
        self.deliver(stranger, [parse_uri(USE_PATH)] + BOB)
        [refusal] = self.sent()
        self.assertEqual(refusal.code, 481)
        self.assertEqual((heard[0].received, heard[1].received), ([], []))

    def test_a_to_path_that_does_not_parse_gets_400(self):
        paths, sessions, heard = self.bound_pair()
        self.deliver("msrp://[not a uri", [parse_uri(USE_PATH)] + BOB)
        [refusal] = self.sent()
        self.assertEqual(refusal.code, 400)

    def test_a_session_still_checks_who_sends(self):
        # Routed by the To-Path to the first session, from the second session's peer.
        paths, sessions, heard = self.bound_pair()
        self.deliver(paths[0][1], [parse_uri(USE_PATH)] + CAROL)
        [refusal] = self.sent()
        self.assertEqual(refusal.code, 403)
        self.assertEqual(heard[0].received, [])

    def test_one_refresh_tells_every_session_its_own_path(self):
        paths, sessions, heard = self.bound_pair()
        self.reactor.advance(75)
        [refresh] = self.sent()
        self.assertEqual(refresh.method, "AUTH")
        self.answer(refresh, 200, Use_Path="msrp://127.0.0.1:2855/msrp-2;tcp", Expires="100")
        self.assertEqual([[str(uri) for uri in path] for path in self.changes["bob"]],
                         [["msrp://127.0.0.1:2855/msrp-2;tcp", str(paths[0][1])]])
        self.assertEqual([[str(uri) for uri in path] for path in self.changes["carol"]],
                         [["msrp://127.0.0.1:2855/msrp-2;tcp", str(paths[1][1])]])
        self.assertEqual(self.relay.auth_count, 2)

    def test_a_late_refresh_answer_reaches_no_session(self):
        paths, sessions, heard = self.bound_pair()
        self.reactor.advance(75)
        [refresh] = self.sent()
        self.reactor.advance(5)  # no answer in time: a failed refresh, retried later
        self.answer(refresh, 200, Use_Path=USE_PATH, Expires="100")
        self.assertEqual((heard[0].received, heard[1].received), ([], []))
        self.assertFalse(any(session.ended for session in sessions))

    def test_the_connection_closes_with_its_last_session(self):
        paths, sessions, heard = self.bound_pair()
        closed = sessions[0].shutdown()
        self.reactor.advance(0)
        self.successResultOf(closed)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.relay.sessions, 1)
        # The other session goes on.
        sending = sessions[1].send_message(b"still here", "text/plain", success_report="no")
        [send] = self.sent()
        self.assertEqual(send.data, b"still here")
        self.answer(send, 200)
        self.reactor.advance(2)  # relayed_failure_wait: no failure REPORT came
        self.successResultOf(sending)
        sessions[1].shutdown()
        self.reactor.advance(0)
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_the_next_session_makes_the_connection_again(self):
        endpoint = self.endpoint("bob")
        prepared = endpoint.prepare()
        self.connect()
        self.successResultOf(prepared)
        endpoint.cleanup()
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        second = self.endpoint("carol")
        again = second.prepare()
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.assertNoResult(again)
        second.cleanup()  # while it is being made: the attempt is given up
        self.failureResultOf(again, CancelledError)

    def test_cleanup_while_the_connection_is_made_leaves_it_to_the_other(self):
        first, second = self.endpoint("bob"), self.endpoint("carol")
        cancelled, prepared = first.prepare(), second.prepare()
        first.cleanup()
        self.failureResultOf(cancelled)
        self.connect()
        self.successResultOf(prepared)
        self.assertEqual(self.relay.sessions, 1)
        self.assertFalse(self.transport.disconnecting)

    def test_the_connection_lost_ends_every_session(self):
        paths, sessions, heard = self.bound_pair()
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(all(session.ended for session in sessions))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_a_passive_session_beside_an_active_one(self):
        active, passive = self.endpoint("bob"), self.endpoint("carol", AcceptorRelay)
        paths = [active.prepare(), passive.prepare()]
        self.connect()
        paths = [self.successResultOf(path) for path in paths]
        # Carol's binding SEND comes before the passive complete(): it waits for it.
        self.deliver(paths[1][1], [parse_uri(USE_PATH)] + CAROL, b"", "bind")
        self.assertEqual(self.sent(), [])
        waiting = passive.complete(CAROL)
        [accepted] = self.sent()
        self.assertEqual(accepted.code, 200)
        self.successResultOf(waiting)
        binding = active.complete(BOB)
        [send] = self.sent()
        self.answer(send, 200)
        self.successResultOf(binding)

    def test_a_passive_complete_can_be_cancelled(self):
        passive = self.endpoint("carol", AcceptorRelay)
        prepared = passive.prepare()
        self.connect()
        path = self.successResultOf(prepared)
        waiting = passive.complete(CAROL)
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        refresh_only = [call for call in self.reactor.getDelayedCalls()]
        self.assertEqual(len(refresh_only), 1)  # the AUTH refresh; no bind timer
        # The binding SEND that comes now waits for the next complete().
        self.deliver(path[1], [parse_uri(USE_PATH)] + CAROL, b"", "bind")
        self.assertEqual(self.sent(), [])
        self.successResultOf(passive.complete(CAROL))
        [accepted] = self.sent()
        self.assertEqual(accepted.code, 200)

    def test_what_waits_for_a_binding_is_bounded(self):
        passive = self.endpoint("carol", AcceptorRelay)
        prepared = passive.prepare()
        self.connect()
        path = self.successResultOf(prepared)
        big = b"x" * (1024 * 1024)
        for index in range(5):
            self.deliver(path[1], [parse_uri(USE_PATH)] + CAROL, big, "m%d" % index)
        self.assertEqual(self.transport.producerState, "paused")
        transport = self.successResultOf(passive.complete(CAROL))
        heard = CollectingReceiver()
        MSRPSession(transport, receiver=heard, reactor=self.reactor,
                    settings=SessionSettings(keepalive_interval=0))
        self.assertEqual(len(heard.received), 5)
        self.assertEqual(self.transport.producerState, "producing")


class FillingTransport(StringTransport):
    """A socket whose buffer is full after ``room`` bytes, until the test drains it."""

    room = 100 * 1024

    def write(self, data):
        super().write(data)
        if len(self.value()) - self.drained >= self.room and self.producer is not None:
            self.producer.pauseProducing()

    def writeSequence(self, parts):
        for part in parts:
            self.write(part)

    def drain(self):
        self.drained = len(self.value())
        self.producer.resumeProducing()


class TakingTurnsTests(SharedRelayHarness, unittest.TestCase):
    """One streamed body at a time on the shared connection."""

    def setUp(self):
        super().setUp()
        self.transport = FillingTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 40001))
        self.transport.drained = 0

    def test_a_message_waits_for_the_others_body_to_end(self):
        paths, sessions, heard = self.bound_pair()
        big = bytes(range(256)) * 2048
        sessions[0].send_message(big, "application/octet-stream", success_report="no",
                                 chunk_size=len(big))
        self.assertTrue(self.protocol.writing_paused)  # in the middle of its body
        sessions[1].send_message(b"chat", "text/plain", success_report="no")
        sessions[1].send_message(big[::-1], "application/octet-stream", success_report="no",
                                 chunk_size=len(big))
        for _ in range(40):
            self.transport.drain()
        chunks = self.sent()  # everything written parses: nothing cut into a body
        self.assertEqual([chunk.data for chunk in chunks], [big, b"chat", big[::-1]])

    def test_an_abort_mid_body_ends_the_chunk_for_the_others(self):
        paths, sessions, heard = self.bound_pair()
        big = bytes(range(256)) * 2048
        sending = sessions[0].send_message(big, "application/octet-stream",
                                           success_report="no", chunk_size=len(big))
        self.assertTrue(self.protocol.writing_paused)
        chatting = sessions[1].send_message(b"chat", "text/plain", success_report="no")
        sessions[0].abort()
        self.failureResultOf(sending)
        for _ in range(3):
            self.transport.drain()
        self.reactor.advance(0)
        chunks = self.sent()
        self.assertEqual([chunk.contflag for chunk in chunks], ["#", "$"])
        self.assertEqual(chunks[1].data, b"chat")
        self.assertLess(len(chunks[0].data), len(big))
        self.assertFalse(self.transport.disconnecting)
        self.assertFalse(sessions[1].ended)
        self.assertNoResult(chatting)


class KeepaliveThroughRelayTests(SharedRelayHarness, unittest.TestCase):
    """Through a relay a keepalive asks for a success REPORT, which only the peer sends:
    once the peer has confirmed one, an unconfirmed one ends the session (the relay
    stopped forwarding); silence from a peer that never confirmed one proves nothing."""

    settings = SessionSettings(keepalive_interval=10, report_timeout=5)

    def keepalive(self):
        """The next keepalive of the first session (the relay answers both sessions')."""
        self.reactor.advance(10)
        keepalives = self.sent()
        self.assertEqual(len(keepalives), 2)
        for keepalive in keepalives:
            self.assertEqual((keepalive.method, keepalive.data), ("SEND", b""))
            self.assertEqual(keepalive.headers["Success-Report"], "yes")
            self.answer(keepalive, 200)
        [first] = [keepalive for keepalive in keepalives
                   if keepalive.from_path == [self.paths[0][1]]]
        return first

    def report(self, keepalive, status="000 200 OK"):
        headers = Headers([("To-Path", keepalive.headers["From-Path"]),
                           ("From-Path", " ".join(str(uri) for uri in
                                                  [parse_uri(USE_PATH)] + BOB)),
                           ("Message-ID", keepalive.headers["Message-ID"]),
                           ("Byte-Range", "1-0/0"), ("Status", status)])
        self.protocol.dataReceived(MSRPData("rep%05d" % self.reactor.seconds(),
                                            method="REPORT", headers=headers).encode())

    def test_a_relay_that_stops_forwarding_ends_the_session(self):
        self.paths, sessions, heard = self.bound_pair(self.settings)
        self.report(self.keepalive())  # the peer confirms keepalives
        self.keepalive()  # and then its confirmation stops coming
        self.reactor.advance(4.9)
        self.assertFalse(sessions[0].ended)
        self.reactor.advance(0.1)
        ended = self.successResultOf(sessions[0].closed.observe())
        self.assertIn("stopped forwarding", str(ended.error))
        self.assertFalse(sessions[1].ended)  # the other session on the connection goes on

    def test_a_failure_report_on_a_keepalive_ends_the_session(self):
        self.paths, sessions, heard = self.bound_pair(self.settings)
        self.report(self.keepalive(), "000 481 Session-does-not-exist")
        ended = self.successResultOf(sessions[0].closed.observe())
        self.assertIn("481", str(ended.error))

    def test_a_peer_that_never_confirms_proves_nothing(self):
        self.paths, sessions, heard = self.bound_pair(self.settings)
        for _ in range(3):
            self.keepalive()
            self.reactor.advance(5)
        self.assertFalse(sessions[0].ended)

    def test_an_empty_send_that_asks_for_a_report_gets_one(self):
        paths, sessions, heard = self.bound_pair()
        headers = Headers([("To-Path", str(paths[0][1])),
                           ("From-Path", " ".join(str(uri) for uri in
                                                  [parse_uri(USE_PATH)] + BOB)),
                           ("Message-ID", "probe1"), ("Byte-Range", "1-0/0"),
                           ("Success-Report", "yes")])
        self.protocol.dataReceived(MSRPData("keep0001", method="SEND",
                                            headers=headers).encode())
        answer, report = self.sent()
        self.assertEqual(answer.code, 200)
        self.assertEqual((report.method, report.headers["Message-ID"],
                          report.headers["Byte-Range"], report.status.code),
                         ("REPORT", "probe1", "1-0/0", 200))
        self.assertEqual(heard[0].received, [])
