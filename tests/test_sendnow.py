"""What handling a read writes leaves on the socket before the reactor turns (TCP)."""

import errno
import select

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from msrplib._speedups import can_send_now, send_now
from msrplib.protocol import MSRPData
from tests.helpers import bind_pair


def answer_requests_with_200(transport):
    """Make ``transport`` answer every whole request it receives while handling the read."""
    protocol = transport.protocol

    def answer(event):
        if isinstance(event, MSRPData) and event.method is not None:
            protocol.write_response(event, 200)

    transport.deliver_events_to(answer)


def after_each_read(transport, check):
    """Call ``check()`` right after ``transport``'s protocol has handled each read."""
    protocol = transport.protocol
    handle = protocol.dataReceived

    def handle_then_check(data):
        handle(data)
        check()

    protocol.dataReceived = handle_then_check


def unsent(socket_transport):
    """Bytes Twisted's socket transport holds, not yet given to the socket."""
    return (len(socket_transport.dataBuffer) - socket_transport.offset
            + socket_transport._tempDataLen)


class AnswersLeaveAtOnceTests(unittest.TestCase):

    @inlineCallbacks
    def test_the_answer_is_on_the_socket_when_the_read_is_handled(self):
        sender, receiver = yield bind_pair(self)
        answer_requests_with_200(receiver)
        seen = []

        def check():
            readable, _, _ = select.select([sender.protocol.transport.socket], [], [], 1.0)
            seen.append((unsent(receiver.protocol.transport), bool(readable)))

        after_each_read(receiver, check)
        request = sender.make_chunk(data=b"ping")
        sender.write_chunk(request, sync=False)
        response = yield sender.read_chunk()
        self.assertEqual((response.code, response.transaction_id),
                         (200, request.transaction_id))
        self.assertEqual(seen, [(0, True)])

    @inlineCallbacks
    def test_an_answer_waits_behind_what_the_transport_holds(self):
        sender, receiver = yield bind_pair(self)
        socket_transport = receiver.protocol.transport
        filler = receiver.make_chunk(data=b"f" * 5000).encode()

        def answer_behind_filler(event):
            if isinstance(event, MSRPData) and event.method is not None:
                socket_transport.write(filler)  # held by Twisted until the reactor turns
                receiver.protocol.write_response(event, 200)

        receiver.deliver_events_to(answer_behind_filler)
        request = sender.make_chunk(data=b"ping")
        sender.write_chunk(request, sync=False)
        first = yield sender.read_chunk()
        second = yield sender.read_chunk()
        self.assertEqual((first.method, len(first.data)), ("SEND", 5000))
        self.assertEqual((second.code, second.transaction_id), (200, request.transaction_id))

    @inlineCallbacks
    def test_writes_outside_a_read_wait_for_the_reactor_together(self):
        sender, receiver = yield bind_pair(self)
        yield deferLater(reactor, 0, lambda: None)  # bind_pair fires while a read is handled
        first, second = sender.make_chunk(data=b"one"), sender.make_chunk(data=b"two")
        sender.write_chunk(first, sync=False)
        sender.write_chunk(second, sync=False)
        self.assertEqual(unsent(sender.protocol.transport),
                         len(first.encode()) + len(second.encode()))
        received = [(yield receiver.read_chunk()), (yield receiver.read_chunk())]
        self.assertEqual([chunk.data for chunk in received], [b"one", b"two"])

    @inlineCallbacks
    def test_only_plain_tcp_sockets_send_now(self):
        sender, _ = yield bind_pair(self)
        secure, _ = yield bind_pair(self, tls=True)
        self.assertTrue(can_send_now(sender.protocol.transport))
        self.assertFalse(can_send_now(secure.protocol.transport))
        self.assertFalse(can_send_now(StringTransport()))


class FakeSocket:
    """Takes ``accept`` bytes of a ``sendmsg``, or raises ``error``."""

    def __init__(self, accept=0, error=None):
        self.accept, self.error, self.calls = accept, error, 0

    def sendmsg(self, parts):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return min(self.accept, sum(len(part) for part in parts))


class FakeSocketTransport:
    """The parts of Twisted's socket transport :func:`send_now` uses."""

    def __init__(self, socket, held=b""):
        self.socket = socket
        self.dataBuffer, self.offset, self._tempDataLen = held, 0, 0
        self.connected, self.disconnecting = 1, 0
        self.written = []

    def writeSequence(self, parts):
        self.written.append(list(parts))


PARTS = [b"MSRP abcd SEND\r\n", b"body", b"\r\n-------abcd$\r\n"]


class SendNowTests(unittest.TestCase):

    def sent_and_left(self, accept):
        transport = FakeSocketTransport(FakeSocket(accept))
        send_now(transport, PARTS)
        return transport.written

    def test_what_the_socket_does_not_take_goes_to_the_transport_in_order(self):
        whole = b"".join(PARTS)
        for accept in range(len(whole) + 1):
            written = self.sent_and_left(accept)
            if accept == len(whole):
                self.assertEqual(written, [])
            else:
                [left] = written
                self.assertEqual(b"".join(left), whole[accept:], accept)

    def test_a_part_cut_by_the_socket_is_the_only_one_sliced(self):
        [left] = self.sent_and_left(len(PARTS[0]) + 2)
        self.assertEqual(left, [b"dy", PARTS[2]])
        self.assertIs(left[1], PARTS[2])

    def test_a_socket_error_leaves_everything_to_the_transport(self):
        for error in (BlockingIOError(errno.EAGAIN, "full"), BrokenPipeError(errno.EPIPE, "x")):
            transport = FakeSocketTransport(FakeSocket(error=error))
            send_now(transport, PARTS)
            self.assertEqual(transport.written, [PARTS])

    def test_nothing_overtakes_bytes_the_transport_holds(self):
        socket = FakeSocket(accept=1000)
        transport = FakeSocketTransport(socket, held=b"earlier")
        send_now(transport, PARTS)
        transport.dataBuffer, transport.offset, transport._tempDataLen = b"", 0, 7
        send_now(transport, PARTS)
        self.assertEqual((socket.calls, transport.written), (0, [PARTS, PARTS]))

    def test_a_closing_connection_writes_the_usual_way(self):
        socket = FakeSocket(accept=1000)
        transport = FakeSocketTransport(socket)
        transport.disconnecting = 1
        send_now(transport, PARTS)
        self.assertEqual((socket.calls, transport.written), (0, [PARTS]))
