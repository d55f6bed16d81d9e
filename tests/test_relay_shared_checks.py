"""Edges of the shared relay connection that held up under review."""
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure
from twisted.trial import unittest

from msrplib.connect import (AcceptorRelay, MSRPAuthError, MSRPBindSessionTimeout)
from msrplib.protocol import Headers, MSRPData, make_response, parse_uri
from tests.test_relay_shared import (BOB, CAROL, USE_PATH, SharedRelayHarness)


class HeldUp(SharedRelayHarness, unittest.TestCase):
    def test_failing_auth_fails_both_prepares_and_leaves_no_timer(self):
        first, second = self.endpoint("bob"), self.endpoint("carol")
        a, b = first.prepare(), second.prepare()
        self.protocol = self.reactor.tcpClients[0][2].buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        [auth] = self.sent()
        self.answer(auth, 403)
        self.failureResultOf(a, MSRPAuthError)
        self.failureResultOf(b, MSRPAuthError)
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        # and the next one makes a new connection
        c = self.endpoint("x").prepare()
        c.addErrback(lambda f: None)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.assertNoResult(c)

    def test_duplicate_session_id(self):
        first, second = self.endpoint("bob"), self.endpoint("carol")
        a = first.prepare(parse_uri("msrp://127.0.0.1:1/same;tcp"))
        b = second.prepare(parse_uri("msrp://127.0.0.1:1/same;tcp"))
        self.connect()
        self.successResultOf(a)
        self.failureResultOf(b, ValueError)
        self.assertEqual(self.relay.sessions, 1)
        self.assertFalse(self.transport.disconnecting)

    def test_lost_mid_binding(self):
        active, passive = self.endpoint("bob"), self.endpoint("carol", AcceptorRelay)
        ps = [active.prepare(), passive.prepare()]
        self.connect()
        [self.successResultOf(p) for p in ps]
        b1, b2 = active.complete(BOB), passive.complete(CAROL)
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(b1, ConnectionLost)
        self.failureResultOf(b2, ConnectionLost)
        self.assertEqual(self.relay._binding, 0)
        self.reactor.advance(0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_refresh_waits_for_two_bindings(self):
        active, passive = self.endpoint("bob"), self.endpoint("carol", AcceptorRelay)
        ps = [active.prepare(), passive.prepare()]
        self.connect()
        paths = [self.successResultOf(p) for p in ps]
        self.reactor.advance(74)
        b1, b2 = active.complete(BOB), passive.complete(CAROL)
        [send] = self.sent()
        self.reactor.advance(1)  # refresh due: both bindings under way
        self.assertEqual(self.sent(), [])
        self.answer(send, 200)
        self.successResultOf(b1)
        self.reactor.advance(1)
        self.assertEqual(self.sent(), [])  # one binding still
        self.deliver(paths[1][1], [parse_uri(USE_PATH)] + CAROL, b"", "bind")
        self.successResultOf(b2)
        [ok] = self.sent()
        self.assertEqual(ok.code, 200)
        self.reactor.advance(1)
        [refresh] = self.sent()
        self.assertEqual(refresh.method, "AUTH")

    def test_streamed_chunk_whose_session_closes_mid_chunk(self):
        paths, sessions, heard = self.bound_pair()
        big = b"x" * (300 * 1024)
        chunk = MSRPData("tbig", method="SEND", headers=Headers([
            ("To-Path", str(paths[0][1])),
            ("From-Path", " ".join(str(u) for u in [parse_uri(USE_PATH)] + BOB)),
            ("Message-ID", "mbig"), ("Byte-Range", "1-%d/%d" % (len(big), len(big))),
            ("Content-Type", "text/plain")]), data=big)
        wire = chunk.encode()
        self.protocol.dataReceived(wire[:len(wire) // 2])
        sessions[0].abort()
        self.protocol.dataReceived(wire[len(wire) // 2:])
        self.deliver(paths[1][1], [parse_uri(USE_PATH)] + CAROL, b"after")
        self.assertEqual([m.data for m in heard[1].received], [b"after"])
        self.assertFalse(sessions[1].ended)
        self.reactor.advance(0)

    def test_private_bind_timeout_aborts(self):
        binding = self.private_binding()
        self.sent()
        self.reactor.advance(5)
        self.failureResultOf(binding, MSRPBindSessionTimeout)
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.reactor.advance(0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_old_endpoint_after_reconnect(self):
        first = self.endpoint("bob")
        p = first.prepare()
        self.connect()
        self.successResultOf(p)
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(first.complete(BOB), ConnectionLost)
        second = self.endpoint("carol")
        q = second.prepare()
        q.addErrback(lambda f: None)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        first.cleanup()
        self.assertNoResult(q)
        self.reactor.advance(0)

    def test_no_timers_after_all_close(self):
        paths, sessions, heard = self.bound_pair()
        self.reactor.advance(75)
        [refresh] = self.sent()
        for s in sessions:
            s.abort()
        self.reactor.advance(0)
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_response_with_other_sessions_to_path(self):
        paths, sessions, heard = self.bound_pair()
        sending = sessions[0].send_message(b"hello", "text/plain", success_report="no")
        [send] = self.sent()
        forged = make_response(send, 200)
        forged.headers["To-Path"] = str(paths[1][1])
        self.protocol.dataReceived(forged.encode())
        self.assertNoResult(sending)  # did not complete session 0's transaction
        self.assertFalse(sessions[1].ended)
        self.answer(send, 200)
        self.reactor.advance(2)
        self.successResultOf(sending)

    def test_writes_after_leave_dropped(self):
        paths, sessions, heard = self.bound_pair()
        transport = sessions[0].transport
        sessions[0].abort()
        self.sent()
        transport.write_chunk(transport.make_chunk(data=b"late"), sync=False)
        self.assertEqual(self.sent(), [])
        self.reactor.advance(0)
        d = transport.protocol.drained()
        self.failureResultOf(d)
