"""The sending half of a session: the queue, chunking, interleaving, pacing, and what the
peer answers and reports about what was sent.

Every message has one state (:class:`~msrplib._outgoingmessage.Sending`); the containers
here are indexes of the states that need one (the queue holds the QUEUED and ABORTING
messages in turn, ``_waiting`` the WAITING ones, the pacing window the HELD ones). Messages
take turns chunk by chunk, so a chat line never waits behind a file (RFC 4975 section
7.1.1). The connection is reached only through the session's
:class:`~msrplib.interfaces.IMessageConnection` and its writer.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Protocol, Set

from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._chunk import MSRPData, end_line, new_message_id, new_transaction_id
from msrplib._headerreader import HEADER_NAME_RE
from msrplib._messagewriter import MessageWriter
from msrplib._outgoingmessage import (
    ABORTING, CONFIRMING, DONE, FAILED, HELD, QUEUED, REPORTING, SENT, STREAMING, WAITING,
    MessageResult, OutgoingMessage, Source)
from msrplib._pacing import ReportWindow
from msrplib._rangeset import RangeSet
from msrplib._rules import MESSAGE_ID_RE, answers_success, report_flag
from msrplib._settings import SessionSettings
from msrplib._transactions import ResponseCallback, Transaction, TransactionTable
from msrplib.errors import MSRPError, MSRPSessionError, MSRPTransactionError

__all__ = ["Sender", "SenderHost", "STREAM_PIECE", "LONG_ID_BODY"]


#: Chunk bodies larger than this are written in pieces of this size as the socket drains,
#: so a chunk of any size never sits in memory whole.
STREAM_PIECE = 64 * 1024

#: Chunks with bodies from this size on get 32-digit transaction ids (others 12): 128
#: random bits for a big body, which is sent without a search for its end-line, and a
#: longer end-line, which the receiver's search skips through in longer strides.
LONG_ID_BODY = 16 * 1024


class SenderHost(Protocol):
    """What the sender needs of its session."""

    settings: SessionSettings
    reactor: Any
    log: Logger
    #: Whether ``shutdown`` was called: the session closes once the sender is idle.
    shutting_down: bool
    #: The timer that watches the transactions' deadlines (``None``: not armed).
    deadline_timer: Any

    def note_traffic(self) -> None: ...

    def arm_deadline_timer(self) -> None: ...

    def close_if_done(self) -> None: ...

    def write_stalled(self, seconds: float) -> None: ...

    def late_failure(self, message_id: str, error: MSRPTransactionError) -> None: ...


class _Body:
    """The chunk whose body is being streamed onto the connection."""

    def __init__(self, message: OutgoingMessage, chunk: MSRPData, size: int,
                 last: bool) -> None:
        self.message = message
        self.chunk = chunk
        self.size = size
        self.last = last
        self.remaining = size


def _new_send_id(body_size: int) -> str:
    """A fresh random transaction id for a message chunk: 32 digits for a body of
    LONG_ID_BODY or more, else 12."""
    return new_transaction_id(32 if body_size >= LONG_ID_BODY else 12)


def response_error(response: MSRPData) -> MSRPTransactionError:
    """The error a request's non-200 ``response`` fails it with."""
    return MSRPTransactionError("%s %s" % (response.code, response.comment or ""),
                                code=response.code, comment=response.comment)


def _check_header_text(content_type: str, headers: Optional[Dict[str, str]]) -> None:
    """Raise ``ValueError`` for a Content-Type or extra header that would not be one line
    of its own on the wire (a CR, an LF or another control character in it), or a header
    name that is not RFC 4975's."""
    if not content_type.isprintable():
        raise ValueError("Content-Type %r holds a control character" % content_type)
    for name, value in (headers or {}).items():
        if not HEADER_NAME_RE.fullmatch(name) or not value.isprintable():
            raise ValueError("header %r: %r is not a header line of its own" % (name, value))


class Sender:
    """Sends a session's chunks and messages, and hears what the peer says of them."""

    # Slots: a server holds thousands of sessions, each with a sender.
    __slots__ = ("connection", "writer", "transactions", "host", "_queue", "_waiting",
                 "_body", "_reporting", "_confirming", "_window", "_pumping",
                 "_drain_pending", "_waiting_since", "_stall_timer", "closed",
                 "_checked_type")

    def __init__(self, connection: Any, transactions: TransactionTable,
                 host: SenderHost) -> None:
        self.connection = connection
        self.writer = connection.writer
        self.transactions = transactions
        self.host = host
        self._queue: Deque[Any] = deque()
        self._waiting: Set[OutgoingMessage] = set()
        self._body: Optional[_Body] = None
        #: Messages that asked for success reports, until they are done.
        self._reporting: Dict[str, OutgoingMessage] = {}
        #: Messages in CONFIRMING, by Message-ID.
        self._confirming: Dict[str, OutgoingMessage] = {}
        # Made for the first message paced by success reports (most sessions have none).
        self._window: Optional[ReportWindow] = None
        self._pumping = False
        self._drain_pending = False
        #: When the wait for the socket to drain began, and the timer that watches it
        #: (``write_stall_timeout``).
        self._waiting_since = 0.0
        self._stall_timer: Any = None
        self.closed = False
        # The Content-Type of the last message sent, checked already (see send_message).
        self._checked_type: Optional[str] = None

    @property
    def idle(self) -> bool:
        """True when nothing is queued, being written, or waiting for a REPORT."""
        return not (self._queue or self._waiting or self._body is not None
                    or self._reporting or self._confirming or self._held())

    @property
    def awaiting_reports(self) -> bool:
        """True while a message all sent waits for the peer's success REPORT."""
        return any(message.state is REPORTING for message in self._reporting.values())

    # Chunks (the seed API).

    def send_chunk(self, chunk: MSRPData, response_cb: Optional[ResponseCallback]) -> None:
        """Queue ``chunk``; ``response_cb`` hears its answer."""
        self._queue.append((chunk, response_cb))
        self.pump()

    # Messages.

    def send_message(self, data_or_file: Source, content_type: str, message_id: Optional[str],
                     success_report: str, failure_report: str, chunk_size: Optional[int],
                     headers: Optional[Dict[str, str]],
                     progress: Optional[Callable[[int, Optional[int]], None]]
                     ) -> MessageResult:
        """See ``MSRPSession.send_message``."""
        if content_type is not self._checked_type or headers:
            _check_header_text(content_type, headers)
            self._checked_type = content_type
        if message_id is not None:
            self._check_message_id(message_id)
        message = OutgoingMessage(data_or_file, content_type, message_id or new_message_id(),
                                  success_report, failure_report,
                                  self._chunk_size(chunk_size), headers, progress,
                                  self.abort_message)
        if success_report == "yes":
            self._track_reports(message)
        if not self._send_in_one(message):
            self._queue.append(message)
            self.pump()
        return message.result

    def open_message(self, content_type: str, size: Optional[int], message_id: Optional[str],
                     success_report: str, failure_report: str, chunk_size: Optional[int],
                     headers: Optional[Dict[str, str]]) -> MessageWriter:
        """See ``MSRPSession.open_message``."""
        _check_header_text(content_type, headers)
        if message_id is not None:
            self._check_message_id(message_id)
        size_limit = self._chunk_size(chunk_size)
        message: Optional[OutgoingMessage] = None

        def ready() -> None:
            assert message is not None
            if message in self._waiting:
                self._waiting.discard(message)
                message.move(QUEUED)
                self._queue.append(message)
            self.pump()

        writer = MessageWriter(size_limit, ready, size)
        message = OutgoingMessage(writer, content_type, message_id or new_message_id(),
                                  success_report, failure_report, size_limit, headers,
                                  abort=self.abort_message)
        writer.result = message.result
        if success_report == "yes":
            self._track_reports(message)
        message.move(WAITING)
        self._waiting.add(message)
        return writer

    def abort_message(self, message_id: str) -> None:
        """See ``MSRPSession.abort_message``."""
        message = self.in_flight(message_id)
        if message is None:
            raise KeyError(message_id)
        self._fail(message, MSRPTransactionError("aborted by the sender", code=499,
                                                 comment="Aborted"))
        self.pump()

    def _check_message_id(self, message_id: str) -> None:
        """Raise ``ValueError`` for a Message-ID a caller chose that RFC 4975 does not
        allow, or that a message under way already has (REPORTs name messages by it)."""
        if not MESSAGE_ID_RE.fullmatch(message_id):
            raise ValueError("Message-ID %r is not 1 to 32 letters, digits or .-+%%="
                             % message_id)
        if self.in_flight(message_id) is not None:
            raise ValueError("a message with Message-ID %r is under way" % message_id)

    def _chunk_size(self, requested: Optional[int]) -> int:
        size = requested or self.host.settings.chunk_size
        limit = self.connection.max_chunk_size
        return limit if limit and limit < size else size

    def _track_reports(self, message: OutgoingMessage) -> None:
        """A message that asks for success reports hears them from its first chunk on, and
        is paced by them when a limit applies (``max_unreported_bytes``)."""
        self._reporting[message.message_id] = message
        limits = [limit for limit in (self.host.settings.max_unreported_bytes,
                                      self.connection.max_unreported_bytes) if limit]
        message.window_limit = min(limits) if limits else None

    # The send loop.

    def pump(self) -> None:
        """Write queued chunks while the socket and the window allow, one message at a time
        in turn, so that a short message never waits behind a long one.

        A call made while the loop runs (a producer writing as it is read from, say) only
        adds work: the running loop picks it up.
        """
        if self._pumping:
            return  # the running loop picks the new work up
        if not self._queue and self._body is None:
            if self.host.shutting_down:
                self.host.close_if_done()
            return
        self._pumping = True
        try:
            self._pump_loop()
        finally:
            self._pumping = False
        if self.host.shutting_down:
            self.host.close_if_done()

    def _pump_loop(self) -> None:
        settings = self.host.settings
        while not self.closed:
            if self._body is not None:
                if not self._stream():
                    return
                continue
            if not self._queue:
                break
            if self.writer.writing_paused:
                self._wait_for_drain()
                return
            if self.transactions.outstanding >= settings.max_outstanding_chunks:
                return
            item = self._queue.popleft()
            if type(item) is not OutgoingMessage:
                chunk, response_cb = item
                self._write(chunk, response_cb)
            elif item.state is ABORTING:
                self._write(item.abort_chunk(self._new_send(0)), None)
                item.move(FAILED)
            elif not item.ready:
                item.move(WAITING)  # a MessageWriter with nothing written yet
                self._waiting.add(item)
            elif item.window_limit is not None and not self._pacing().allows(item):
                item.move(HELD)  # until the peer's REPORTs catch up
            else:
                self._send_next_chunk(item)
                if item.state is QUEUED or item.state is ABORTING:
                    self._queue.append(item)

    def _wait_for_drain(self) -> None:
        if not self._drain_pending:
            self._drain_pending = True
            self.writer.call_when_drained(self._drained)
            # One timer watches every wait (waits are many and short on a busy link):
            # armed when none is, it looks at the wait under way when it fires.
            self._waiting_since = self.host.reactor.seconds()
            if self._stall_timer is None and self.host.settings.write_stall_timeout > 0:
                self._stall_timer = self.host.reactor.callLater(
                    self.host.settings.write_stall_timeout, self._check_stall)

    def _drained(self) -> None:
        self._drain_pending = False
        self.pump()

    def _check_stall(self) -> None:
        """End the session when the wait for the socket under way has lasted
        ``write_stall_timeout`` seconds: the peer stopped reading, and nothing it owes
        will come. Else watch the wait under way, if any, until it would have."""
        self._stall_timer = None
        timeout = self.host.settings.write_stall_timeout
        if not self._drain_pending or self.closed or timeout <= 0:
            return
        waited = self.host.reactor.seconds() - self._waiting_since
        if waited >= timeout:
            self.host.write_stalled(timeout)
        else:
            self._stall_timer = self.host.reactor.callLater(timeout - waited,
                                                            self._check_stall)

    def _send_in_one(self, message: OutgoingMessage) -> bool:
        """Write ``message`` at once as its only chunk when its body is bytes that fit in
        one (and need no streaming: STREAM_PIECE), nothing is queued before it, and neither
        the socket nor the window of outstanding chunks holds sending back: a chat
        message, the usual case, without a trip through the send loop. (A chunk whose body
        is being streamed holds the writer: see :meth:`_encodes`. A message's first chunk
        is never held for success reports: nothing of it is unconfirmed yet.) False,
        having written nothing, otherwise: the send loop then sends it in turn."""
        writer = self.writer
        if self._queue or writer.writing_paused \
                or self.transactions.outstanding >= self.host.settings.max_outstanding_chunks \
                or not writer.takes_encoded_chunks or message.headers:  # see _encodes
            return False
        data = message.read_whole(STREAM_PIECE)
        if data is None:
            return False
        self._send_encoded(message, data, 1, True)
        return True

    def _send_next_chunk(self, message: OutgoingMessage) -> None:
        """Write the next chunk of ``message``: whole when its body is small, else its
        headers now and its body piece by piece as the socket drains (:meth:`_stream`)."""
        if isinstance(message.source, MessageWriter):
            data, byte_range, last = message.next_written_piece()
            length = len(data)
        elif message.size is None:
            data, byte_range, last = message.next_piece()
            length = len(data)
        else:
            byte_range, last = message.next_range()
            length = (byte_range.end or 0) - byte_range.start + 1
            if length > STREAM_PIECE:
                chunk = self._new_send(length)
                message.fill(chunk, byte_range, last)
                # Its answer may come early, but its response clock starts at its end-line.
                self._register(chunk, None, message, length, clock_from_end=True)
                self.writer.begin_body(chunk)
                message.move(STREAMING)
                self._body = _Body(message, chunk, length, last)
                return
            data = message.read(length)
            if len(data) == length and self._encodes(message):
                self._send_encoded(message, data, byte_range.start, last)
                return
        chunk = self._new_send(len(data))
        message.fill(chunk, byte_range, last)
        chunk.data = data
        if len(data) < length:  # a file of known size that ended early
            chunk.contflag = "#"
            self._write(chunk, None)
            self._fail(message, MSRPSessionError("the file ended before its size"))
            message.move(FAILED)  # that chunk was its # chunk
            return
        # Its id was drawn at random just now (_new_send): like a streamed body, its body
        # need not be searched for the end-line.
        self._write(chunk, None, message, len(data), check_body=False)
        self._chunk_sent(message, len(data), last)

    def _encodes(self, message: OutgoingMessage) -> bool:
        """Whether ``message``'s chunks may be written encoded straight from it, with no
        MSRPData made for them (:meth:`_send_encoded`): the usual case. Not while the
        writer must have chunks (``takes_encoded_chunks``), nor for a message with headers
        of its own (they may name headers that the encoding writes itself)."""
        return self.writer.takes_encoded_chunks and not message.headers

    def _send_encoded(self, message: OutgoingMessage, data: bytes, start: int,
                      last: bool) -> None:
        """Write ``data``, the body bytes of ``message`` (of known size) from byte ``start``
        (counted from 1), as a chunk encoded straight from it, when :meth:`_encodes`
        allows."""
        size = len(data)
        transaction_id = new_transaction_id(32 if size >= LONG_ID_BODY else 12)
        head = message.encode_head(transaction_id, self.connection.path_lines, start, size)
        # Its id was drawn at random just now: its body need not be searched for the end-line.
        self.writer.write_encoded(head, data, end_line(transaction_id, "$" if last else "+"))
        self.host.note_traffic()
        # fill() writes a Failure-Report only when it is not "yes": as _register reads it.
        counted = message.chunks_answered
        self._expect(Transaction(transaction_id, None, counted, message, size))
        message.outstanding += 1
        self._chunk_sent(message, size, last)

    def _new_send(self, body_size: int) -> MSRPData:
        """A SEND for a message's next chunk, with a fresh random transaction id."""
        return MSRPData(_new_send_id(body_size), method="SEND",
                        headers=self.connection.new_headers())

    def _stream(self) -> bool:
        """Write more of the streamed body; False when the socket asked to wait."""
        body = self._body
        assert body is not None
        message = body.message
        while body.remaining:
            if self.writer.writing_paused:
                self._wait_for_drain()
                return False
            piece = message.read(min(body.remaining, STREAM_PIECE))
            if not piece:
                self._body = None
                body.chunk.contflag = "#"
                self.writer.end_body(body.chunk)
                self._start_clock(body.chunk)
                self._fail(message, MSRPSessionError(
                    "the file ended %d bytes early" % body.remaining))
                if message.state is ABORTING:
                    message.move(FAILED)  # that end-line was its # chunk
                return True
            self.writer.write_body(piece)
            body.remaining -= len(piece)
        self._body = None
        self.writer.end_body(body.chunk)
        self._start_clock(body.chunk)
        self.host.note_traffic()
        if message.state is STREAMING:
            if not body.last:
                message.move(QUEUED)  # for its next chunk
            self._chunk_sent(message, body.size, body.last)
        if message.state is QUEUED or message.state is ABORTING:
            self._queue.append(message)  # its next chunk, or the # that ends it
        return True

    def _chunk_sent(self, message: OutgoingMessage, size: int, last: bool) -> None:
        """A chunk of ``message`` was written; after its last, wait for the answers (or,
        when its Failure-Report asks for none, it is sent)."""
        if last:
            message.move(SENT)
        if not message.chunks_answered:
            message.acknowledge(size)
            if last:
                self._message_sent(message)
        elif last and message.outstanding == 0:
            # Every answer came while the body was still being written (a peer may
            # answer a chunk before its end): no answer is left to finish the message.
            self._message_sent(message)

    def _write(self, chunk: MSRPData, response_cb: Optional[ResponseCallback] = None,
               message: Optional[OutgoingMessage] = None, size: int = 0,
               check_body: bool = True) -> None:
        self.writer.write_chunk(chunk, check_body)
        self.host.note_traffic()
        self._register(chunk, response_cb, message, size)

    def write_report(self, report: MSRPData) -> None:
        """Write a REPORT (no answer comes to one)."""
        if not self.closed:
            self._write(report)

    def _register(self, chunk: MSRPData, response_cb: Optional[ResponseCallback],
                  message: Optional[OutgoingMessage], size: int,
                  clock_from_end: bool = False) -> None:
        """Wait for the answer to a request just written (REPORTs get none); with
        ``clock_from_end``, its response clock waits for :meth:`_start_clock`."""
        if chunk.method is None or chunk.method == "REPORT":
            return
        counted = answers_success(report_flag(chunk, "failure-report"))
        self._expect(Transaction(chunk.transaction_id, response_cb, counted, message, size),
                     clock_from_end)
        if message is not None:
            message.outstanding += 1

    def _expect(self, transaction: Transaction, clock_from_end: bool = False) -> None:
        """Wait for ``transaction``'s answer, for ``response_timeout`` seconds at most
        (counted from now, or from :meth:`_start_clock` with ``clock_from_end``)."""
        host = self.host
        self.transactions.open(transaction, None if clock_from_end else
                               host.reactor.seconds() + host.settings.response_timeout)
        if host.deadline_timer is None:
            host.arm_deadline_timer()

    def _start_clock(self, chunk: MSRPData) -> None:
        """``chunk``'s body was streamed to its end-line: its response clock starts."""
        host = self.host
        self.transactions.start_clock(chunk.transaction_id,
                                      host.reactor.seconds() + host.settings.response_timeout)
        if host.deadline_timer is None:
            host.arm_deadline_timer()

    # Answers and REPORTs.

    def answered(self, response: MSRPData) -> None:
        """``response`` answers one of our transactions (or stands in for the answer that
        did not come); an answer to none of them is dropped."""
        transaction = self.transactions.close(response.transaction_id)
        if transaction is None:
            # Named by its id and code alone: the log event may outlive the response,
            # and a peer's comment may be long.
            self.host.log.debug("ignoring a {code} response to a finished transaction {tid}",
                                code=response.code, tid=response.transaction_id)
            return
        message = transaction.message
        if message is not None:
            message.outstanding -= 1
            if response.code == 200 and message.chunks_answered:
                message.acknowledge(transaction.size)
            if not message.done:
                if response.code != 200:
                    self._fail(message, response_error(response))
                elif message.state is SENT and message.outstanding == 0 and \
                        message.chunks_answered:
                    self._message_sent(message)
        if transaction.response_cb is not None:
            transaction.response_cb(response)
        if self._queue or self._body is not None or self.host.shutting_down:
            self.pump()  # the window of outstanding chunks has room again

    def _message_sent(self, message: OutgoingMessage) -> None:
        """Every chunk of ``message`` is accepted (or sent, when it asked for no answers):
        done, or waiting for what confirms it."""
        settings = self.host.settings
        if message.success_report != "yes":
            if self.connection.relayed and settings.relayed_failure_wait \
                    and message.chunks_answered:
                # The 200s came from the relay: give a refusal by the peer, which only a
                # failure REPORT brings, the time to arrive.
                message.move(CONFIRMING)
                self._confirming[message.message_id] = message
                message.report_timer = self.host.reactor.callLater(
                    settings.relayed_failure_wait, self._not_refused, message)
                return
            message.move(DONE)
            message.result.callback(message.message_id)
            return
        message.move(REPORTING)
        if message.reported is not None and message.reported.covers(message.offset):
            self._message_reported(message)
            return
        message.report_timer = self.host.reactor.callLater(
            settings.report_timeout, self._report_timed_out, message)

    def _not_refused(self, message: OutgoingMessage) -> None:
        """No failure REPORT came for ``message`` in ``relayed_failure_wait``: it is sent."""
        message.report_timer = None
        del self._confirming[message.message_id]
        message.move(DONE)
        message.result.callback(message.message_id)
        self.host.close_if_done()

    def _message_reported(self, message: OutgoingMessage) -> None:
        del self._reporting[message.message_id]
        message.stop_report_timer()
        message.move(DONE)
        message.result.callback(message.message_id)
        self.host.close_if_done()

    def _report_timed_out(self, message: OutgoingMessage) -> None:
        message.report_timer = None
        self._fail(message, MSRPTransactionError(
            "no success report within %s seconds" % self.host.settings.report_timeout,
            code=408, comment="No success report"))

    def report(self, report: MSRPData) -> None:
        """A REPORT on a message we sent: a failure stops and fails it, whatever reports it
        asked for; success REPORTs count towards a message that asked for them."""
        message_id = report.message_id or ""
        try:
            status = report.status
            byte_range = report.byte_range
        except MSRPError:
            return
        if status is None:
            return
        if status.code != 200:
            error = MSRPTransactionError(
                "failure report: %s %s" % (status.code, status.comment or ""),
                code=status.code, comment=status.comment)
            failed = self.in_flight(message_id)
            if failed is not None:
                self._fail(failed, error)
                self.pump()
            else:  # its Deferred fired already (or it is none of ours): say so all the same
                self.host.late_failure(message_id, error)
            return
        message = self._reporting.get(message_id)
        if message is None or (byte_range is not None and (
                byte_range.start < 1 or (byte_range.end is not None
                                         and byte_range.end < byte_range.start - 1))):
            return  # not ours, or a range that names no bytes of a message
        total = message.offset
        if message.reported is None:
            message.reported = RangeSet()
        if byte_range is None:
            message.reported.add(0, total)
        else:
            end = total if byte_range.end is None else min(byte_range.end, total)
            message.reported.add(byte_range.start - 1, end)
        whole = message.finished_sending and message.reported.covers(total)
        if self._window is not None:
            self._window.reported(partial=not whole, message=message)
        if whole and message.state is REPORTING:
            self._message_reported(message)

    def in_flight(self, message_id: str) -> Optional[OutgoingMessage]:
        """The message of ``message_id`` that is still under way (queued, being sent,
        awaiting answers or REPORTs), if any: looked for only when a failure REPORT comes
        or a caller picks a Message-ID, so that sending keeps no index of its own for it."""
        known = self._reporting.get(message_id) or self._confirming.get(message_id)
        if known is not None:
            return known
        for candidate in self._messages():
            if candidate.message_id == message_id and not candidate.done:
                return candidate
        return None

    def _messages(self) -> Iterator[OutgoingMessage]:
        """Every message the sender knows of, in no order (some more than once)."""
        for transaction in self.transactions:
            if transaction.message is not None:
                yield transaction.message
        for item in self._queue:
            if type(item) is OutgoingMessage:
                yield item
        yield from self._waiting
        yield from self._held()
        if self._body is not None:
            yield self._body.message

    # Pacing by the peer's REPORTs.

    def _pacing(self) -> ReportWindow:
        if self._window is None:
            self._window = ReportWindow(
                self.host.reactor, lambda: self.host.settings.progress_report_wait,
                lambda: self.host.settings.report_timeout, self._released, self._expired)
        return self._window

    def _held(self) -> Dict[OutgoingMessage, None]:
        """The messages waiting for the peer's REPORTs to catch up."""
        return self._window.held if self._window is not None else {}

    def _released(self, messages: List[OutgoingMessage]) -> None:
        for message in messages:
            if message.state is HELD:
                message.move(QUEUED)
                self._queue.append(message)
        self.pump()

    def _expired(self, messages: List[OutgoingMessage]) -> None:
        """The peer's REPORTs stopped while these messages waited for them: give up."""
        for message in messages:
            self._fail(message, MSRPTransactionError(
                "no success report within %s seconds" % self.host.settings.report_timeout,
                code=408, comment="No success report"))
        self.pump()

    # Failing.

    def _fail(self, message: OutgoingMessage, error: Exception) -> None:
        """``message`` failed with ``error``: its Deferred fails, and when the peer has
        begun to receive it and it is not all written, it goes on to its ``#`` chunk."""
        if message.done:
            return
        self._reporting.pop(message.message_id, None)
        self._confirming.pop(message.message_id, None)
        if self._window is not None:
            self._window.forget(message)
        message.stop_report_timer()
        if isinstance(message.source, MessageWriter):
            message.source.stop()  # its producer stops; what it buffered is dropped
        state = message.state
        if state in (WAITING, HELD) and not self.closed:
            self._waiting.discard(message)
            message.move(ABORTING)
            self._queue.append(message)
        elif state in (QUEUED, STREAMING) and not self.closed:
            message.move(ABORTING)  # the queue, or the body's end, sends its #
        else:
            message.move(FAILED)
        message.result.errback(Failure(error))
        self.host.close_if_done()

    def connection_lost(self, error: Exception) -> None:
        """The connection closed: everything still under way fails with ``error``, and the
        answers still due get stand-ins (408) when the session hands them in."""
        self.closed = True
        for message in list(self._messages()) + list(self._reporting.values()):
            if not message.done:
                self._fail(message, error)
        for message in list(self._confirming.values()):
            # The relay took all of it and no refusal came before the end: it was sent.
            message.stop_report_timer()
            del self._confirming[message.message_id]
            message.move(DONE)
            message.result.callback(message.message_id)
        for item in self._queue:
            if type(item) is not OutgoingMessage:
                chunk, response_cb = item
                if response_cb is not None and chunk.method not in (None, "REPORT"):
                    response_cb(MSRPData(chunk.transaction_id, code=408,
                                         comment="Connection closed"))
        self._queue.clear()
        self._waiting.clear()
        self._body = None
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if self._window is not None:
            self._window.stop()
