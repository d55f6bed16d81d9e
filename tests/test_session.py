"""MSRPSession, deterministically: in-memory pair (iosim) and a task.Clock for every timer."""

import hashlib
import io
import re

from twisted.internet.error import ConnectionDone
from twisted.trial import unittest

from msrplib._receiver import Receiver
from msrplib.errors import MSRPSessionError, MSRPTransactionError
from msrplib.protocol import ByteRange, Headers, MSRPData, make_report
from msrplib.session import LONG_ID_BODY, RESPONSE_TIMEOUT, STREAM_PIECE, SessionSettings
from msrplib.testing import CollectingReceiver, SessionPair


#: The receiver's way for a whole new message in one chunk, as it is (tests replace it).
_MESSAGE_IN_ONE = Receiver._message_in_one


class Recorder:
    """An on_incoming_cb that keeps what it is given."""

    def __init__(self):
        self.chunks = []
        self.errors = []

    def __call__(self, chunk=None, error=None):
        if chunk is not None:
            self.chunks.append(chunk)
        if error is not None:
            self.errors.append(error)


def pair(**options):
    settings = options.pop("settings", SessionSettings(keepalive_interval=0))
    return SessionPair(settings=settings, **options)


class SendChunkTests(unittest.TestCase):
    """The seed's send_chunk/deliver_chunk and every Failure-Report value."""

    def setUp(self):
        self.bob_heard = Recorder()
        self.pair = pair(bob_options={"on_incoming_cb": self.bob_heard})
        self.alice, self.bob = self.pair.alice, self.pair.bob
        self.responses = []

    def chunk(self, failure_report=None, data=b"hello", **headers):
        chunk = self.alice.transport.make_chunk(data=data)
        if failure_report is not None:
            chunk.failure_report = failure_report
        for name, value in headers.items():
            chunk.headers[name] = value
        return chunk

    def test_response_reaches_the_callback(self):
        self.alice.send_chunk(self.chunk(), self.responses.append)
        self.pair.flush()
        [response] = self.responses
        self.assertEqual(response.code, 200)
        self.assertEqual(self.bob_heard.chunks[0].data, b"hello")

    def test_failure_report_yes_timeout_is_408(self):
        self.pair.bob.transport.deliver_events_to(lambda event: None)  # Bob goes silent
        self.alice.send_chunk(self.chunk("yes"), self.responses.append)
        self.pair.flush()
        self.pair.clock.advance(RESPONSE_TIMEOUT - 0.1)
        self.assertEqual(self.responses, [])
        self.pair.clock.advance(0.1)
        self.assertEqual([r.code for r in self.responses], [408])

    def test_absent_failure_report_timeout_is_408(self):
        self.pair.bob.transport.deliver_events_to(lambda event: None)
        self.alice.send_chunk(self.chunk(), self.responses.append)
        self.pair.flush()
        self.pair.clock.advance(RESPONSE_TIMEOUT)
        self.assertEqual([r.code for r in self.responses], [408])

    def test_failure_report_no_gets_no_response_then_local_200(self):
        self.alice.send_chunk(self.chunk("no"), self.responses.append)
        self.pair.flush()
        self.assertEqual(self.responses, [])
        self.assertEqual(len(self.bob_heard.chunks), 1)
        self.pair.clock.advance(RESPONSE_TIMEOUT)
        self.assertEqual([r.code for r in self.responses], [200])

    def test_failure_report_partial_success_is_silent(self):
        self.alice.send_chunk(self.chunk("partial"), self.responses.append)
        self.pair.flush()
        self.assertEqual(self.responses, [])
        self.pair.clock.advance(RESPONSE_TIMEOUT)
        self.assertEqual([r.code for r in self.responses], [200])

    def test_failure_report_partial_error_is_answered(self):
        self.alice.send_chunk(self.chunk("partial", **{"Content-Type": "image/gif"}),
                              self.responses.append)
        self.bob.accept_types = ["text/*"]
        self.pair.flush()
        self.assertEqual([r.code for r in self.responses], [415])

    def test_failure_report_no_error_is_not_answered(self):
        self.bob.accept_types = ["text/plain"]
        self.alice.send_chunk(self.chunk("no", **{"Content-Type": "image/gif"}),
                              self.responses.append)
        self.pair.flush()
        self.assertEqual(self.responses, [])

    def test_unsupported_media_type(self):
        self.bob.accept_types = ["text/plain", "message/*"]
        expected = {"text/plain; charset=utf-8": 200, "message/cpim": 200, "image/png": 415}
        for content_type in expected:
            self.alice.send_chunk(self.chunk(**{"Content-Type": content_type}),
                                  self.responses.append)
        self.pair.flush()
        self.assertEqual([r.code for r in self.responses], list(expected.values()))

    def test_unknown_method_gets_501(self):
        self.alice.send_chunk(self.alice.transport.make_chunk(method="FROB"),
                              self.responses.append)
        self.pair.flush()
        self.assertEqual([r.code for r in self.responses], [501])

    def test_wrong_to_path_gets_481(self):
        chunk = self.chunk()
        chunk.headers["To-Path"] = "msrp://bob.test:2855/other-session;tcp"
        self.alice.send_chunk(chunk, self.responses.append)
        self.pair.flush()
        self.assertEqual([r.code for r in self.responses], [481])

    def test_deliver_chunk(self):
        result = self.alice.deliver_chunk(self.chunk())
        self.pair.flush()
        self.assertEqual(self.successResultOf(result).code, 200)
        self.bob.accept_types = ["text/html"]
        failed = self.alice.deliver_chunk(self.chunk())
        self.pair.flush()
        error = self.failureResultOf(failed, MSRPTransactionError).value
        self.assertEqual(error.code, 415)
        self.assertIsNone(self.successResultOf(self.alice.deliver_chunk(self.chunk("no"))))

    def test_a_chunk_given_to_deliver_is_checked_for_its_end_line(self):
        chunk = self.chunk(data=b"x")
        chunk.data = b"a\r\n-------%s$\r\nb" % chunk.transaction_id.encode()
        chunk.byte_range = ByteRange(1, len(chunk.data), len(chunk.data))
        given = chunk.transaction_id
        result = self.alice.deliver_chunk(chunk)
        self.pair.flush()
        self.assertEqual(self.successResultOf(result).code, 200)
        self.assertNotEqual(chunk.transaction_id, given)
        self.assertEqual(self.bob_heard.chunks[-1].data, chunk.data)

    def test_late_response_is_ignored(self):
        self.pair.bob.transport.deliver_events_to(lambda event: None)
        chunk = self.chunk()
        self.alice.send_chunk(chunk, self.responses.append)
        self.pair.flush()
        self.pair.clock.advance(RESPONSE_TIMEOUT)
        late = MSRPData(chunk.transaction_id, code=200, comment="OK")
        self.alice._event(late)
        self.alice._event(late)
        self.assertEqual([r.code for r in self.responses], [408])

    def test_reports_are_never_answered(self):
        report = self.alice.transport.make_chunk(method="REPORT", message_id="m1")
        report.headers["Status"] = "000 200 OK"
        self.alice.send_chunk(report)
        self.pair.flush()
        self.assertEqual(self.bob_heard.chunks[-1].method, "REPORT")
        self.assertEqual(len(self.alice._transactions), 0)

    def test_nickname_is_handed_to_the_application(self):
        result = self.alice.send_nickname("Alice")
        self.pair.flush()
        [request] = self.bob_heard.chunks
        self.assertEqual((request.method, request.use_nickname), ("NICKNAME", "Alice"))
        self.assertNoResult(result)
        self.bob.respond(request, 425, "Nickname reserved")
        self.pair.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 425)

    def test_nickname_without_application_gets_501(self):
        quiet = pair()
        result = quiet.alice.send_nickname("Alice")
        quiet.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 501)

    def test_send_after_shutdown_raises(self):
        done = self.alice.shutdown()
        self.pair.flush()
        self.assertIsNone(self.successResultOf(done))
        self.assertRaises(MSRPSessionError, self.alice.send_chunk, self.chunk())
        self.assertEqual(len(self.bob_heard.errors), 1)
        self.assertTrue(self.bob_heard.errors[0].check(ConnectionDone))


class MessageTests(unittest.TestCase):
    def setUp(self):
        self.received = CollectingReceiver()
        self.pair = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=10),
                         bob_options={"receiver": self.received})
        self.alice, self.bob = self.pair.alice, self.pair.bob

    def test_chunked_message_reassembles(self):
        body = bytes(range(95))
        result = self.alice.send_message(body, "application/octet-stream", message_id="m1")
        self.pair.flush()
        self.assertEqual(self.successResultOf(result), "m1")
        [message] = self.received.received
        self.assertEqual((message.data, message.message_id, message.size), (body, "m1", 95))
        self.assertEqual(message.content_type, "application/octet-stream")

    def test_short_message_is_not_stuck_behind_a_file(self):
        big = self.alice.send_message(b"F" * 1000, "application/octet-stream")
        small = self.alice.send_message(b"hi", "text/plain")
        self.pair.flush()
        self.successResultOf(big)
        self.successResultOf(small)
        order = [m.content_type for m in self.received.received]
        self.assertEqual(order, ["text/plain", "application/octet-stream"])

    def test_file_source_with_unknown_size(self):
        class Stream(io.RawIOBase):
            def __init__(self):
                self.data = io.BytesIO(b"streamed data, no size known" * 3)

            def readable(self):
                return True

            def read(self, size=-1):
                return self.data.read(size)

        result = self.alice.send_message(Stream(), "text/plain")
        self.pair.flush()
        self.successResultOf(result)
        [message] = self.received.received
        self.assertEqual(message.data, b"streamed data, no size known" * 3)

    def test_empty_message(self):
        result = self.alice.send_message(b"", "text/plain")
        self.pair.flush()
        self.successResultOf(result)
        self.assertEqual(self.received.received[0].data, b"")

    def test_success_report(self):
        result = self.alice.send_message(b"x" * 25, "text/plain", success_report="yes")
        self.pair.flush()
        self.assertTrue(self.successResultOf(result))

    def test_missing_success_report_times_out(self):
        self.patch(self.bob, "write_report", lambda chunk: None)
        result = self.alice.send_message(b"x" * 25, "text/plain", success_report="yes")
        self.pair.flush()
        self.assertNoResult(result)
        self.pair.clock.advance(RESPONSE_TIMEOUT)
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 408)

    def test_failure_report_no_and_partial_finish_when_sent(self):
        for value in ("no", "partial"):
            result = self.alice.send_message(b"y" * 30, "text/plain", failure_report=value)
            self.pair.flush()
            self.successResultOf(result)
        self.assertEqual(len(self.received.received), 2)

    def test_too_large_is_413_and_stops_the_sender(self):
        self.bob.settings = SessionSettings(keepalive_interval=0, max_message_size=50)
        self.alice.settings.max_outstanding_chunks = 1  # one chunk in flight at a time
        sent = []
        self.alice.transport.protocol.traffic_log = (
            lambda direction, chunk: sent.append(chunk) if chunk.method == "SEND" else None)
        result = self.alice.send_message(b"z" * 200, "text/plain")
        self.pair.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 413)
        self.assertEqual(self.received.received, [])
        self.assertEqual(self.received.started, [])
        # The first of the 20 chunks got the 413; the only one sent after it is the abort.
        self.assertEqual([(len(c.data), c.contflag) for c in sent], [(10, "+"), (0, "#")])
        self.assertEqual(len(self.alice._sender._queue), 0)

    def test_answers_are_logged_as_chunks(self):
        # A logged connection builds each answer as a chunk (unlogged ones only encode it).
        logged = []
        self.bob.transport.protocol.traffic_log = (
            lambda direction, chunk: logged.append((direction, chunk)))
        result = self.alice.send_message(b"hi", "text/plain")
        self.pair.flush()
        self.successResultOf(result)
        [(_, send), (direction, answer)] = logged
        self.assertEqual((direction, answer.code, answer.transaction_id),
                         ("out", 200, send.transaction_id))
        self.assertEqual(answer.to_path, send.from_path)

    def test_big_chunks_get_long_transaction_ids(self):
        heard = []
        self.bob.transport.protocol.traffic_log = (
            lambda direction, chunk: heard.append(chunk) if chunk.method == "SEND" else None)
        sizes = (LONG_ID_BODY - 1, LONG_ID_BODY, STREAM_PIECE + 1)
        for size in sizes:
            self.alice.send_message(b"b" * size, "text/plain", chunk_size=size)
        self.pair.flush()
        self.assertEqual([len(c.transaction_id) for c in heard], [12, 32, 32])
        self.assertEqual([len(m.data) for m in self.received.received], list(sizes))

    def test_too_large_without_total_is_413(self):
        self.bob.settings = SessionSettings(keepalive_interval=0, max_message_size=15)
        chunk = self.alice.transport.make_chunk(data=b"q" * 20, message_id="big",
                                                content_type="text/plain")
        chunk.byte_range = ByteRange(1, 20, None)
        result = self.alice.deliver_chunk(chunk)
        self.pair.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 413)
        [(message, reason)] = self.received.failed
        self.assertEqual((message.message_id, reason.value.code), ("big", 413))

    def test_abort(self):
        self.alice.settings.max_outstanding_chunks = 1
        result = self.alice.send_message(b"a" * 100, "text/plain", message_id="m-abort")
        self.alice.abort_message("m-abort")
        self.pair.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 499)
        self.assertRaises(KeyError, self.alice.abort_message, "m-abort")

    def test_abort_mid_message_reaches_the_receiver(self):
        self.alice.settings.max_outstanding_chunks = 2
        result = self.alice.send_message(b"a" * 100, "text/plain", message_id="m-abort")
        self.pair.pump.pump()
        self.alice.abort_message("m-abort")
        self.pair.flush()
        self.failureResultOf(result, MSRPTransactionError)
        [(message, reason)] = self.received.failed
        self.assertEqual(message.message_id, "m-abort")
        self.assertIn("aborted", str(reason.value))

    def test_peer_disconnect_mid_message(self):
        self.alice.settings.max_outstanding_chunks = 2
        result = self.alice.send_message(b"d" * 100, "text/plain")
        self.pair.pump.pump()
        self.bob.transport.protocol.transport.loseConnection()
        self.pair.flush()
        self.failureResultOf(result, MSRPSessionError)
        [(message, reason)] = self.received.failed
        self.assertGreater(message.received, 0)
        self.assertLess(message.received, 100)

    def test_out_of_order_and_duplicate_chunks(self):
        transport = self.alice.transport
        pieces = [(b"world", 7, "$"), (b"hello ", 1, "+"), (b"hello ", 1, "+")]
        for data, start, flag in pieces:
            chunk = transport.make_chunk(data=data, start=start, length=11, message_id="ooo",
                                         contflag=flag, content_type="text/plain")
            self.alice.send_chunk(chunk)
        self.pair.flush()
        [message] = self.received.received
        self.assertEqual(message.data, b"hello world")

    def test_star_total(self):
        transport = self.alice.transport
        for data, start, flag in [(b"abc", 1, "+"), (b"def", 4, "$")]:
            chunk = transport.make_chunk(data=data, start=start, message_id="star",
                                         contflag=flag, content_type="text/plain")
            chunk.byte_range = ByteRange(start, start + 2, None)
            self.alice.send_chunk(chunk)
        self.pair.flush()
        self.assertEqual(self.received.received[0].data, b"abcdef")

    def test_stream_to_a_file(self):
        target = io.BytesIO()
        receiver = CollectingReceiver(sink=target)
        pair2 = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=7),
                     bob_options={"receiver": receiver})
        pair2.alice.send_message(b"0123456789" * 10, "application/octet-stream")
        pair2.flush()
        [message] = receiver.received
        self.assertIsNone(message.data)
        self.assertEqual(target.getvalue(), b"0123456789" * 10)


class KeepaliveTests(unittest.TestCase):
    def test_idle_session_sends_empty_send(self):
        heard = Recorder()
        sessions = SessionPair(settings=SessionSettings(keepalive_interval=60),
                               bob_options={"on_incoming_cb": heard})
        sessions.clock.advance(59)
        sessions.flush()
        self.assertEqual(heard.chunks, [])
        sessions.clock.advance(1)
        sessions.flush()
        keepalives = [c for c in heard.chunks if c.method == "SEND"]
        self.assertGreaterEqual(len(keepalives), 1)
        self.assertEqual(keepalives[0].data, b"")
        self.assertTrue(sessions.alice.transport.is_connected())

    def test_dead_peer_is_noticed(self):
        sessions = SessionPair(settings=SessionSettings(keepalive_interval=10))
        sessions.bob.transport.deliver_events_to(lambda event: None)  # Bob goes silent
        sessions.bob._keepalive.cancel()
        sessions.clock.advance(10)
        sessions.flush()
        sessions.clock.advance(RESPONSE_TIMEOUT)
        sessions.flush()
        self.assertFalse(sessions.alice.transport.is_connected())
        self.assertTrue(sessions.alice.closed.fired)

    def test_traffic_postpones_it(self):
        heard = Recorder()
        sessions = SessionPair(settings=SessionSettings(keepalive_interval=60),
                               bob_options={"on_incoming_cb": heard})
        sessions.clock.advance(50)
        sessions.alice.send_message(b"hi", "text/plain")
        sessions.flush()
        sessions.clock.advance(50)
        sessions.flush()
        self.assertEqual([c.data for c in heard.chunks], [b"hi"])
        sessions.clock.advance(10)
        sessions.flush()
        self.assertEqual(len(heard.chunks), 2)
        self.assertEqual(heard.chunks[1].data, b"")

    def test_zero_turns_it_off(self):
        sessions = SessionPair(settings=SessionSettings(keepalive_interval=0))
        self.assertEqual(sessions.clock.getDelayedCalls(), [])


class ProgressAndHeadersTests(unittest.TestCase):
    def test_progress_and_extra_headers(self):
        received = CollectingReceiver()
        sessions = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=10),
                        bob_options={"receiver": received})
        seen = []
        result = sessions.alice.send_message(
            b"p" * 25, "application/octet-stream", progress=lambda done, total:
            seen.append((done, total)),
            headers={"Content-Disposition": 'attachment; filename="p.bin"'})
        sessions.flush()
        self.successResultOf(result)
        self.assertEqual(seen, [(10, 25), (20, 25), (25, 25)])
        self.assertEqual(received.received[0].headers["Content-Disposition"],
                         'attachment; filename="p.bin"')


class EncodedChunkTests(unittest.TestCase):
    """Message chunks are written encoded straight from the message (no MSRPData); the
    bytes must be those of the chunk the general path builds and encodes."""

    def setUp(self):
        self.received = CollectingReceiver()
        self.pair = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=10),
                         bob_options={"receiver": self.received})
        self.alice, self.bob = self.pair.alice, self.pair.bob
        self.wire = []
        protocol = self.bob.transport.protocol
        arrived = protocol.dataReceived

        def recording(data):
            self.wire.append(data)
            arrived(data)

        protocol.dataReceived = recording
        self.encoded = 0
        sender = self.alice.transport.protocol
        write_encoded = sender.write_encoded

        def counting(*parts):
            self.encoded += 1
            write_encoded(*parts)

        sender.write_encoded = counting

    def sent(self, body, logged, **options):
        """The bytes Alice wrote for one message, transaction ids replaced by ``<id>``;
        checks that they were written encoded unless a traffic log asked for chunks."""
        self.alice.transport.protocol.traffic_log = (lambda *_: None) if logged else None
        del self.wire[:]
        self.encoded = 0
        result = self.alice.send_message(body, "text/plain", message_id="same", **options)
        self.pair.flush()
        self.alice.transport.protocol.traffic_log = None
        self.successResultOf(result)
        wire = b"".join(self.wire)
        self.ids = re.findall(rb"MSRP (\w+) SEND", wire)
        chunks = 0 if logged or options.get("headers") else len(self.ids)
        self.assertEqual((self.encoded, len(self.ids) > 0), (chunks, True))
        for tid in self.ids:
            wire = wire.replace(tid, b"<id>")
        return wire

    def test_the_bytes_are_those_of_the_general_path(self):
        cases = [{}, {"success_report": "yes"}, {"failure_report": "no"},
                 {"failure_report": "partial", "success_report": "yes"}]
        for options in cases:
            for body in (b"short", b"twenty-five bytes long..."):
                encoded = self.sent(body, logged=False, **options)
                self.assertEqual(encoded, self.sent(body, logged=True, **options))
                self.assertEqual(encoded.count(b" SEND\r\n"), (len(body) + 9) // 10)
        self.assertEqual(len(self.received.received), 16)

    def test_a_long_body_gets_a_long_id_as_in_the_general_path(self):
        self.alice.settings.chunk_size = LONG_ID_BODY
        encoded = self.sent(b"L" * LONG_ID_BODY, logged=False)
        self.assertEqual([len(tid) for tid in self.ids], [32])
        self.assertEqual(encoded, self.sent(b"L" * LONG_ID_BODY, logged=True))

    def test_headers_of_its_own_are_left_to_the_general_path(self):
        encoded = self.sent(b"with headers", logged=False, headers={
            "Content-Disposition": "inline", "X-Note": "first"})
        self.assertEqual(encoded, self.sent(b"with headers", logged=True, headers={
            "Content-Disposition": "inline", "X-Note": "first"}))
        head = encoded.split(b"\r\n\r\n")[0].split(b"\r\n")
        self.assertEqual([line.split(b":")[0] for line in head[1:]],
                         [b"To-Path", b"From-Path", b"Message-ID", b"Byte-Range", b"X-Note",
                          b"Content-Disposition", b"Content-Type"])

    def test_an_unanswered_encoded_chunk_times_out(self):
        self.bob.transport.deliver_events_to(lambda event: None)  # Bob never answers
        result = self.alice.send_message(b"lost", "text/plain")
        silent = self.alice.send_message(b"unasked", "text/plain", failure_report="no")
        self.pair.flush()
        self.assertNoResult(result)
        self.pair.clock.advance(RESPONSE_TIMEOUT)
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 408)
        self.successResultOf(silent)  # no response was asked for: sent is done
        table = self.alice._transactions
        self.assertEqual((table.outstanding, len(table)), (0, 0))

    def test_report_values_are_taken_in_any_case_and_others_refused(self):
        self.bob.transport.deliver_events_to(lambda event: None)  # Bob never answers
        silent = self.alice.send_message(b"unasked", "text/plain", failure_report="No")
        self.pair.flush()
        self.successResultOf(silent)  # "No" is "no": no answer is waited for
        self.assertIn(b"Failure-Report: no\r\n", b"".join(self.wire))
        for values in ({"failure_report": "maybe"}, {"success_report": "sometimes"}):
            self.assertRaises(ValueError, self.alice.send_message, b"x", "text/plain",
                              **values)

    def test_connection_lost_fails_an_outstanding_encoded_chunk(self):
        self.bob.transport.deliver_events_to(lambda event: None)
        result = self.alice.send_message(b"in flight", "text/plain")
        self.pair.flush()
        self.bob.transport.loseConnection()
        self.pair.flush()
        self.failureResultOf(result, MSRPSessionError)
        self.assertEqual(len(self.alice._transactions), 0)


class SentAtOnceTests(unittest.TestCase):
    """A message whose body fits in one chunk is written the moment it is sent when nothing
    is queued before it and nothing holds sending back; otherwise it waits its turn."""

    def setUp(self):
        self.received = CollectingReceiver()
        self.pair = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=10),
                         bob_options={"receiver": self.received})
        self.alice = self.pair.alice
        self.protocol = self.alice.transport.protocol
        self.written = []
        write_encoded = self.protocol.write_encoded

        def recording(head, body, end):
            self.written.append(body)
            write_encoded(head, body, end)

        self.protocol.write_encoded = recording

    def send(self, *bodies, **options):
        return [self.alice.send_message(body, "text/plain", **options) for body in bodies]

    def arrive_in_order(self, results, bodies):
        self.pair.flush()
        for result in results:
            self.successResultOf(result)
        self.assertEqual([message.data for message in self.received.received], bodies)

    def test_written_at_once(self):
        results = self.send(b"one", b"two", b"")
        self.assertEqual(self.written, [b"one", b"two", b""])  # before any bytes moved
        self.arrive_in_order(results, [b"one", b"two", b""])

    def test_behind_a_full_window(self):
        self.alice.settings.max_outstanding_chunks = 1
        results = self.send(b"one", b"two", b"three")
        self.assertEqual(self.written, [b"one"])
        self.arrive_in_order(results, [b"one", b"two", b"three"])

    def test_while_the_socket_is_full(self):
        self.protocol.pauseProducing()
        results = self.send(b"one", b"two")
        self.assertEqual(self.written, [])
        self.protocol.resumeProducing()
        self.assertEqual(self.written, [b"one", b"two"])
        self.arrive_in_order(results, [b"one", b"two"])

    def test_behind_a_message_that_is_still_queued(self):
        self.alice.settings.max_outstanding_chunks = 2
        results = self.send(b"twenty-five bytes long...", b"short")
        self.assertEqual(self.written, [b"twenty-fiv", b"e bytes lo"])
        self.arrive_in_order(results, [b"twenty-five bytes long...", b"short"])
        self.assertEqual(self.written[2:], [b"ng...", b"short"])

    def test_sent_from_inside_the_send_loop(self):
        # A progress callback runs while the send loop writes a message's chunks: what it
        # sends goes behind the message the loop has queued, not ahead of it.
        later = []

        def progress(done, total):
            if not later:
                later.extend(self.send(b"later"))

        self.protocol.pauseProducing()
        results = [self.alice.send_message(b"twenty-five bytes long...", "text/plain",
                                           failure_report="no", progress=progress)]
        results += self.send(b"queued")
        self.protocol.resumeProducing()
        self.assertEqual(self.written, [b"twenty-fiv", b"queued", b"later", b"e bytes lo",
                                        b"ng..."])
        self.arrive_in_order(results + later,
                             [b"queued", b"later", b"twenty-five bytes long..."])

    def test_a_body_to_stream_or_to_cut_goes_through_the_queue(self):
        self.alice.settings.chunk_size = 1 << 30
        results = self.send(b"s" * (STREAM_PIECE + 1))
        self.assertEqual(self.written, [])  # streamed: begin_body and write_body pieces
        self.alice.settings.chunk_size = 10
        results += self.send(b"eleven byte")
        self.assertEqual(self.written, [b"eleven byt", b"e"])
        self.arrive_in_order(results, [b"s" * (STREAM_PIECE + 1), b"eleven byte"])


class WholeMessageTests(unittest.TestCase):
    """A new message that arrives whole in one chunk skips the bookkeeping of a message in
    pieces; whatever arrives, Bob must answer, report and deliver exactly as the general
    path would (``_message_in_one`` declining everything)."""

    def outcome(self, chunks, general, sink=None, accept_types=("*",), **settings):
        """Send ``chunks`` (``(transaction id, make_chunk options, headers)``) from Alice:
        what Bob wrote and what his receiver and on_incoming_cb heard."""
        received = CollectingReceiver(sink=sink() if sink else None)
        heard = Recorder()
        sessions = pair(settings=SessionSettings(keepalive_interval=0, **settings),
                        bob_options={"receiver": received, "on_incoming_cb": heard,
                                     "accept_types": accept_types})
        requests = sessions.bob._receiver
        whole_ones = []

        def watched(receiver, chunk):
            taken = _MESSAGE_IN_ONE(receiver, chunk)
            if receiver is requests:
                whole_ones.append(taken)
            return taken

        self.patch(Receiver, "_message_in_one",
                   (lambda receiver, chunk: False) if general else watched)
        wire = []
        protocol = sessions.alice.transport.protocol
        arrived = protocol.dataReceived
        protocol.dataReceived = lambda data: (wire.append(data), arrived(data))
        for tid, options, headers in chunks:
            chunk = sessions.alice.transport.make_chunk(transaction_id=tid, **options)
            for name, value in headers.items():
                chunk.headers[name] = value
            sessions.alice.send_chunk(chunk)
            sessions.flush()
        sessions.clock.advance(1)
        sessions.flush()
        target = received.sink
        body = target.getvalue() if isinstance(target, io.BytesIO) else (
            None if target is None else (target.count, target.digest.hexdigest()))
        if not general:
            self.whole_ones = whole_ones
        wire = re.sub(rb"\r\nMessage-ID: \w+\r\n", b"", b"".join(wire))
        return (re.sub(rb"\b[0-9a-f]{12}\b", b"<report id>", wire).split(b"MSRP "),
                [(m.message_id, m.data, m.size, m.content_type, m.received, m.headers.items())
                 for m in received.received],
                [(m.message_id, reason.value.code) for m, reason in received.failed],
                [m.message_id for m in received.started],
                [chunk.transaction_id for chunk in heard.chunks], body)

    def same(self, chunks, **options):
        fast = self.outcome(chunks, general=False, **options)
        self.assertEqual(fast, self.outcome(chunks, general=True, **options))
        return fast

    def test_whole_messages_take_the_short_way_and_end_the_same(self):
        for headers in ({}, {"Success-Report": "yes"}, {"Failure-Report": "partial"},
                        {"Failure-Report": "no"}, {"Success-Report": "yes",
                                                   "Failure-Report": "no"}):
            wire, received = self.same([("tid1", {"data": b"whole", "message_id": "m1"},
                                         headers)])[:2]
            self.assertEqual(self.whole_ones, [True])
            self.assertEqual([item[:5] for item in received],
                             [("m1", b"whole", 5, "text/plain", 5)])
            answered = headers.get("Failure-Report", "yes") == "yes"
            self.assertEqual(any(b"tid1 200 OK" in part for part in wire), answered)
            reported = headers.get("Success-Report") == "yes"
            self.assertEqual(any(b" REPORT\r\n" in part for part in wire), reported)

    def test_files_and_consumers_get_a_whole_message_too(self):
        from tests.test_session_loopback import HashingConsumer
        hashed = (11, hashlib.sha256(b"to the sink").hexdigest())
        for sink, expected in ((io.BytesIO, b"to the sink"), (HashingConsumer, hashed)):
            received, _, _, _, body = self.same(
                [("tid1", {"data": b"to the sink", "message_id": "m1"}, {})], sink=sink)[1:]
            self.assertEqual(self.whole_ones, [True])
            self.assertEqual([item[1:5] for item in received], [(None, 11, "text/plain", 11)])
            self.assertEqual(body, expected)

    def test_what_is_not_a_whole_new_message_goes_the_general_way(self):
        def send(tid, data, message_id="m1", **options):
            return (tid, dict(data=data, message_id=message_id, **options), {})

        cases = [
            ([send("tid1", b"abc", length=6), send("tid2", b"abcdef")], {}),  # in progress
            ([send("tid1", b"x" * 10), send("tid2", b"abc")], {"max_message_size": 5}),
            ([send("tid1", b"abcd", length=5, contflag="$")], {}),  # 1-4/5, $
            ([send("tid1", b"bcd", start=2, contflag="$")], {}),  # byte 1 missing
            ([("tid1", {"data": b"abc", "message_id": "m1", "contflag": "+"},
               {"Byte-Range": "1-3/*"}),
              ("tid2", {"data": b"defghi", "message_id": "m1", "start": 4, "contflag": "+"},
               {"Byte-Range": "4-9/*"}),  # past the limit: m1 is refused from now on
              send("tid3", b"abc")], {"max_message_size": 5}),
            ([send("tid1", b"abc", length=6, message_id="a"), send("tid2", b"new")],
             {"max_incoming_messages": 1}),
            ([send("tid1", b"twice"), send("tid2", b"twice")], {}),  # a duplicate
            ([("tid1", {"data": b"x", "message_id": "m1"}, {"Byte-Range": "1-1/*"})], {}),
        ]
        for chunks, settings in cases:
            self.same(chunks, **settings)
        wire = self.same([("tid1", {"data": b"img", "content_type": "image/png"}, {})],
                         accept_types=("text/*",))[0]
        self.assertTrue(any(part.startswith(b"tid1 415") for part in wire))
        wire = self.same([("tid1", {"data": b"mine"}, {"To-Path": "msrp://x.example/y;tcp"})])[0]
        self.assertTrue(any(part.startswith(b"tid1 481") for part in wire))


class StreamedChunkTests(unittest.TestCase):
    """A chunk bigger than STREAM_PIECE is written in pieces as the socket drains."""

    def setUp(self):
        self.bob_heard = CollectingReceiver()
        self.alice_heard = CollectingReceiver()
        self.pair = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=1 << 30),
                         alice_options={"receiver": self.alice_heard},
                         bob_options={"receiver": self.bob_heard})

    def test_one_huge_chunk(self):
        body = bytes(range(256)) * 2000  # 512,000 bytes: one chunk, 8 pieces
        written = []
        protocol = self.pair.alice.transport.protocol
        self.patch(protocol, "write_body", lambda data: (
            written.append(len(data)), type(protocol).write_body(protocol, data)))
        result = self.pair.alice.send_message(body, "application/octet-stream")
        self.pair.flush()
        self.successResultOf(result)
        self.assertEqual(self.bob_heard.received[0].data, body)
        self.assertEqual(max(written), 64 * 1024)
        self.assertEqual(sum(written), len(body))

    def test_answers_wait_for_the_end_of_a_streamed_body(self):
        protocol = self.pair.alice.transport.protocol
        real_write_body = protocol.write_body

        def write_then_fill_up(data):
            real_write_body(data)
            protocol.pauseProducing()  # Alice's socket is full: her body stays open

        self.patch(protocol, "write_body", write_then_fill_up)
        sending = self.pair.alice.send_message(b"b" * 300000, "application/octet-stream")
        reply = self.pair.bob.send_message(b"meanwhile", "text/plain")
        self.pair.flush()
        self.assertNoResult(reply)  # Alice's 200 waits behind her unfinished chunk
        self.assertEqual(self.alice_heard.received[0].data, b"meanwhile")
        protocol.write_body = real_write_body
        protocol.resumeProducing()
        self.pair.flush()
        self.successResultOf(sending)
        self.successResultOf(reply)
        self.assertEqual(len(self.bob_heard.received[0].data), 300000)

    def test_file_that_ends_early(self):
        class Shrinking(io.BytesIO):
            def seek(self, offset, whence=0):
                result = super().seek(offset, whence)
                return result + 100000 if whence == 2 else result

        result = self.pair.alice.send_message(Shrinking(b"s" * 200000), "text/plain")
        self.pair.flush()
        self.assertIn("ended", str(self.failureResultOf(result, MSRPSessionError).value))
        [(message, reason)] = self.bob_heard.failed
        self.assertIn("aborted", str(reason.value))


class Producer:
    """A push producer that records what the consumer asks of it."""

    def __init__(self):
        self.calls = []

    def pauseProducing(self):
        self.calls.append("pause")

    def resumeProducing(self):
        self.calls.append("resume")

    def stopProducing(self):
        self.calls.append("stop")


class MessageWriterTests(unittest.TestCase):
    def setUp(self):
        self.received = CollectingReceiver()
        self.pair = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=10),
                         bob_options={"receiver": self.received})

    def test_written_pieces_become_one_message(self):
        writer = self.pair.alice.open_message("text/plain")
        self.pair.flush()
        self.assertEqual(self.received.started, [])  # nothing written, nothing sent
        writer.write(b"hello ")
        self.pair.flush()
        writer.write(b"streamed world")
        result = writer.finish()
        self.pair.flush()
        self.assertTrue(self.successResultOf(result))
        [message] = self.received.received
        self.assertEqual(message.data, b"hello streamed world")
        self.assertIsNone(message.first_chunk.byte_range.total)
        self.assertRaises(MSRPSessionError, writer.write, b"more")

    def test_known_size_and_empty_last_chunk(self):
        writer = self.pair.alice.open_message("text/plain", size=5)
        writer.write(b"12345")
        self.pair.flush()
        self.assertEqual(self.received.received, [])
        result = writer.finish()
        self.pair.flush()
        self.successResultOf(result)
        self.assertEqual(self.received.received[0].data, b"12345")
        self.assertEqual(self.received.received[0].size, 5)

    def test_a_fast_producer_is_paused_until_the_link_catches_up(self):
        protocol = self.pair.alice.transport.protocol
        protocol.pauseProducing()  # the link is full
        writer = self.pair.alice.open_message("application/octet-stream")
        producer = Producer()
        writer.registerProducer(producer, True)
        for _ in range(6):
            writer.write(b"x" * 10)
        self.assertEqual(producer.calls, ["pause"])
        protocol.resumeProducing()
        self.pair.flush()
        self.assertEqual(producer.calls, ["pause", "resume"])
        writer.unregisterProducer()
        result = writer.finish()
        self.pair.flush()
        self.successResultOf(result)
        self.assertEqual(self.received.received[0].data, b"x" * 60)

    def test_a_pull_producer_is_asked_for_more(self):
        writer = self.pair.alice.open_message("text/plain")
        producer = Producer()
        writer.registerProducer(producer, False)
        self.assertEqual(producer.calls, ["resume"])
        writer.write(b"abc")
        self.pair.flush()
        self.assertEqual(producer.calls, ["resume", "resume"])

    def test_abort_while_waiting_for_bytes(self):
        writer = self.pair.alice.open_message("text/plain", message_id="w1")
        writer.write(b"part")
        self.pair.flush()
        self.pair.alice.abort_message("w1")
        self.pair.flush()
        self.assertEqual(self.failureResultOf(writer.result, MSRPTransactionError).value.code,
                         499)
        [(message, _)] = self.received.failed
        self.assertEqual(message.message_id, "w1")


class ReportCombinationTests(unittest.TestCase):
    """Success-Report yes with every Failure-Report: the message is done at its REPORT."""

    def test_success_report_with_each_failure_report(self):
        for failure_report in ("yes", "partial", "no"):
            received = CollectingReceiver()
            sessions = pair(settings=SessionSettings(keepalive_interval=0, chunk_size=8),
                            bob_options={"receiver": received})
            answers = []

            def heard(direction, chunk, answers=answers):
                if direction == "in" and chunk.code is not None:
                    answers.append(chunk.code)

            sessions.alice.transport.protocol.traffic_log = heard
            result = sessions.alice.send_message(b"r" * 20, "text/plain", success_report="yes",
                                                 failure_report=failure_report)
            sessions.flush()
            self.assertEqual(self.successResultOf(result), received.received[0].message_id)
            expected = {"yes": [200, 200, 200], "partial": [], "no": []}[failure_report]
            self.assertEqual(answers, expected, failure_report)

    def test_failure_report_from_the_peer_fails_the_message(self):
        sessions = pair(settings=SessionSettings(keepalive_interval=0))
        sessions.bob.transport.protocol.set_receiver(lambda event: None)  # Bob never answers
        result = sessions.alice.send_message(b"z", "text/plain", success_report="yes",
                                             failure_report="no")
        sessions.flush()
        [message_id] = list(sessions.alice._sender._reporting)
        sent = MSRPData("abcd", method="SEND", headers=Headers([
            ("To-Path", str(sessions.bob.transport.local_uri)),
            ("From-Path", str(sessions.alice.transport.local_uri)),
            ("Message-ID", message_id), ("Byte-Range", "1-1/1")]))
        sessions.bob.send_chunk(make_report(sent, 415))
        sessions.flush()
        self.assertEqual(self.failureResultOf(result, MSRPTransactionError).value.code, 415)


class ByteRangeSanityTests(unittest.TestCase):
    def test_impossible_byte_ranges_get_400(self):
        target = io.BytesIO()
        received = CollectingReceiver(sink=target)
        sessions = pair(bob_options={"receiver": received})
        responses = []
        for byte_range in ["0-4/5", "5-2/9", "1-9/5"]:
            chunk = sessions.alice.transport.make_chunk(data=b"hello",
                                                        content_type="text/plain")
            chunk.headers["Byte-Range"] = byte_range
            sessions.alice.send_chunk(chunk, responses.append)
        sessions.flush()
        self.assertEqual([r.code for r in responses], [400, 400, 400])
        self.assertEqual((received.started, target.getvalue()), ([], b""))


class IncomingStreamedChunkTests(unittest.TestCase):
    """A chunk whose body arrives over many reads reaches the session in pieces."""

    def feed_in_pieces(self, sessions, chunk, piece=4096):
        wire = chunk.encode()
        protocol = sessions.bob.transport.protocol
        for index in range(0, len(wire), piece):
            protocol.dataReceived(wire[index:index + piece])
        sessions.flush()

    def test_big_chunk_in_pieces_to_a_file(self):
        target = io.BytesIO()
        received = CollectingReceiver(sink=target)
        heard = Recorder()
        sessions = pair(bob_options={"receiver": received, "on_incoming_cb": heard})
        body = bytes(range(256)) * 2048  # 512 KiB, over the parser's buffering limit
        chunk = sessions.alice.transport.make_chunk(data=body, content_type="x/y")
        answers = []
        sessions.alice.transport.protocol.set_receiver(answers.append)
        self.feed_in_pieces(sessions, chunk)
        self.assertEqual([(a.code, a.transaction_id) for a in answers],
                         [(200, chunk.transaction_id)])
        [message] = received.received
        self.assertEqual(target.getvalue(), body)
        self.assertEqual(message.received, len(body))
        self.assertEqual(heard.chunks[0].data, b"")  # its body went to the sink

    def test_big_chunk_for_someone_else_is_refused_once_whole(self):
        sessions = pair()
        chunk = sessions.alice.transport.make_chunk(data=b"q" * 300000, content_type="x/y")
        chunk.headers["To-Path"] = "msrp://bob.test:2855/other;tcp"
        wire = chunk.encode()
        answers = []
        sessions.alice.transport.protocol.set_receiver(answers.append)
        protocol = sessions.bob.transport.protocol
        for index in range(0, len(wire), 8192):
            protocol.dataReceived(wire[index:index + 8192])
        sessions.flush()
        self.assertEqual([(a.code, a.transaction_id) for a in answers],
                         [(481, chunk.transaction_id)])


class ConnectionLostTests(unittest.TestCase):
    def test_waiting_and_queued_chunks_hear_408(self):
        sessions = pair(settings=SessionSettings(keepalive_interval=0,
                                                 max_outstanding_chunks=1))
        sessions.bob.transport.deliver_events_to(lambda event: None)  # Bob never answers
        responses = []
        for _ in range(2):
            sessions.alice.send_chunk(sessions.alice.transport.make_chunk(data=b"x"),
                                      responses.append)
        writer = sessions.alice.open_message("text/plain")
        sessions.flush()
        self.assertEqual(responses, [])
        sessions.bob.transport.loseConnection()
        sessions.flush()
        self.assertEqual([(r.code, r.comment) for r in responses],
                         [(408, "Connection closed")] * 2)
        self.failureResultOf(writer.result, MSRPSessionError)
        self.assertRaises(MSRPSessionError, sessions.alice.send_message, b"late", "text/plain")


class OutOfOrderLimitTests(unittest.TestCase):
    def test_a_consumer_is_not_buffered_for_without_bound(self):
        from tests.test_session_loopback import HashingConsumer
        consumer = HashingConsumer()
        received = CollectingReceiver(sink=consumer)
        sessions = pair(settings=SessionSettings(keepalive_interval=0, max_out_of_order=25),
                        bob_options={"receiver": received})
        responses = []
        transport = sessions.alice.transport
        # Bytes 1-10 never come; 11-30 and 31-40 arrive ahead of the gap.
        for start in (11, 21, 31):
            chunk = transport.make_chunk(data=b"k" * 10, start=start, length=100,
                                         message_id="gap", content_type="x/y")
            sessions.alice.send_chunk(chunk, responses.append)
        sessions.flush()
        self.assertEqual([r.code for r in responses], [200, 200, 413])
        [(message, reason)] = received.failed
        self.assertEqual(reason.value.code, 413)
        self.assertEqual(consumer.count, 0)


class IncomingMessageLimitTests(unittest.TestCase):
    def test_too_many_unfinished_messages(self):
        received = CollectingReceiver()
        sessions = pair(settings=SessionSettings(keepalive_interval=0, max_incoming_messages=2),
                        bob_options={"receiver": received})
        responses = []
        for message_id in ("a", "b", "c"):
            chunk = sessions.alice.transport.make_chunk(data=b"x", length=5,
                                                        message_id=message_id,
                                                        content_type="text/plain")
            sessions.alice.send_chunk(chunk, responses.append)
        sessions.flush()
        self.assertEqual([r.code for r in responses], [200, 200, 413])
        self.assertEqual([m.message_id for m in received.started], ["a", "b"])
