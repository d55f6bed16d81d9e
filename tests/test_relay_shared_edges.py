"""Edges of the shared relay connection found by review: each test failed on f5469c4."""
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone, UserError
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from msrplib.protocol import Headers, MSRPData, parse_uri
from msrplib.session import MSRPSession, SessionSettings
from tests.test_relay_shared import BOB, USE_PATH, FillingTransport, SharedRelayHarness

BIG = bytes(range(256)) * 2048


class MidBodyTests(SharedRelayHarness, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.transport = FillingTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 40001))
        self.transport.drained = 0

    def start_big(self, sessions):
        sending = sessions[0].send_message(BIG, "application/octet-stream",
                                           success_report="no", chunk_size=len(BIG))
        sending.addErrback(lambda failure: None)
        self.assertTrue(self.protocol.writing_paused)  # in the middle of its body

    def test_1_close_mid_body_ends_the_chunk(self):
        paths, sessions, heard = self.bound_pair()
        self.start_big(sessions)
        sessions[0].transport.loseConnection()  # seed API close
        sessions[1].send_message(b"chat", "text/plain", success_report="no")
        for _ in range(3):
            self.transport.drain()
        self.reactor.advance(0)
        chunks = self.sent()
        self.assertEqual([c.contflag for c in chunks], ["#", "$"])  # it was: []
        self.assertEqual(chunks[1].data, b"chat")

    def test_2_raw_write_waits_for_the_other_body(self):
        paths, sessions, heard = self.bound_pair()
        self.start_big(sessions)
        raw = sessions[1].transport.make_chunk(data=b"raw")
        sessions[1].transport.write(raw.encode(), sync=False)  # seed API write
        for _ in range(40):
            self.transport.drain()
        chunks = self.sent()
        self.assertEqual([len(c.data) for c in chunks], [len(BIG), 3])  # it was: [524584]


class LifecycleTests(SharedRelayHarness, unittest.TestCase):
    def test_3_prepare_after_cleanup_during_connect(self):
        first, second = self.endpoint("bob"), self.endpoint("carol")
        first.prepare().addErrback(lambda failure: None)
        first.cleanup()
        again = second.prepare()
        # What connector.disconnect() makes a real reactor report:
        self.reactor.tcpClients[0][2].clientConnectionFailed(None, Failure(UserError()))
        self.assertNoResult(again)  # it was: fails with UserError
        self.assertEqual(len(self.reactor.tcpClients), 2)
        second.cleanup()
        self.failureResultOf(again, CancelledError)

    def test_3b_prepare_after_cleanup_during_auth(self):
        first, second = self.endpoint("bob"), self.endpoint("carol")
        first.prepare().addErrback(lambda failure: None)
        self.protocol = self.reactor.tcpClients[0][2].buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        [auth] = self.sent()
        first.cleanup()  # the connection is closing
        again = second.prepare()
        self.answer(auth, 200, Use_Path=USE_PATH, Expires="100")
        self.assertNoResult(again)  # it was: a channel on the closing connection
        self.assertEqual(len(self.reactor.tcpClients), 2)
        second.cleanup()
        self.failureResultOf(again, CancelledError)

    def test_4_old_refresh_leaves_the_new_connection_alone(self):
        failed = []
        first, second = self.endpoint("bob"), self.endpoint("carol")
        second.on_refresh_failed = failed.append
        prepared = first.prepare()
        self.connect()
        self.successResultOf(prepared)
        self.reactor.advance(75)
        [refresh] = self.sent()  # a refresh under way on connection 1
        old = self.protocol
        first.cleanup()  # its last session leaves: connection 1 closes
        again = second.prepare()
        self.reactor.tcpClients.pop(0)
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 40002))
        self.connect()  # connection 2, granted
        self.successResultOf(again)
        old.connectionLost(Failure(ConnectionDone()))  # connection 1's close completes
        self.reactor.advance(0)
        self.assertEqual(failed, [])  # it was: [ConnectionDone()]
        times = [call.getTime() for call in self.reactor.getDelayedCalls()]
        self.assertEqual(times, [150.0])  # it was: [87.5, 150.0]
        second.cleanup()
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.reactor.advance(0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])  # it was: the 150 s refresh


class HeldBeforeBindingTests(SharedRelayHarness, unittest.TestCase):
    def test_5_held_headers_count(self):
        self.relay.settings.max_queued_bytes = 64 * 1024
        endpoint = self.endpoint("bob")
        prepared = endpoint.prepare()
        self.connect()
        uri = self.successResultOf(prepared)[1]
        from_path = " ".join(str(u) for u in [parse_uri(USE_PATH)] + BOB)
        for index in range(100):  # 800 kB of headers for a session not bound yet
            headers = Headers([("To-Path", str(uri)), ("From-Path", from_path),
                               ("Message-ID", "m%d" % index), ("Byte-Range", "1-0/0"),
                               ("X-Pad", "x" * 8000)])
            self.protocol.dataReceived(
                MSRPData("tr%04d" % index, method="SEND", headers=headers).encode())
        self.assertEqual(self.transport.producerState, "paused")  # it was: producing


class PrivateConnectionTests(SharedRelayHarness, unittest.TestCase):
    def test_6_private_session_closed_fires_when_the_connection_closes(self):
        binding = self.private_binding()
        [send] = self.sent()
        self.answer(send, 200)
        session = MSRPSession(self.successResultOf(binding), reactor=self.reactor,
                              settings=SessionSettings(keepalive_interval=0))
        closed = session.shutdown()
        self.reactor.advance(0)
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(closed)  # so it was on 343be7e; now it fires already
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(closed)
