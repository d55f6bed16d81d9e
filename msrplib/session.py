"""MSRPSession: transactions, reports, chunked messages and flow control over one transport.

The seed API (``send_chunk``, ``deliver_chunk``, ``shutdown``, ``on_incoming_cb``) works on
chunks; ``send_message`` and a :class:`MessageReceiver` work on whole messages: the session
cuts them into chunks, interleaves the chunks of different messages (RFC 4975 section
7.1.1), reassembles what arrives, answers and reports as RFC 4975 asks, and keeps memory
bounded both ways.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._incomingmessage import IncomingMessage
from msrplib._rangeset import RangeSet
from msrplib._observer import Observer
from msrplib._outgoingmessage import OutgoingMessage, Source
from msrplib._parser import ChunkData, ChunkEnded, ChunkStarted, ParserEvent
from msrplib._receiver import RequestHandler
from msrplib._headerreader import HEADER_NAME_RE
from msrplib._rules import MESSAGE_ID_RE, should_respond
from msrplib._chunk import MSRPData, end_line, new_message_id, new_transaction_id
from msrplib._pacing import ReportWindow
from msrplib._messagewriter import MessageWriter
from msrplib.errors import MSRPError, MSRPSessionError, MSRPTransactionError
from msrplib.transport import MSRPTransport

__all__ = ["MSRPSession", "SessionSettings", "MessageReceiver", "IncomingMessage",
           "MessageWriter", "RESPONSE_TIMEOUT"]

#: Seconds to wait for a transaction's response before one is generated locally (the seed's).
RESPONSE_TIMEOUT = 30.0

#: Chunk bodies larger than this are written in pieces of this size as the socket drains,
#: so a chunk of any size never sits in memory whole.
STREAM_PIECE = 64 * 1024

#: Chunks with bodies from this size on get 32-digit transaction ids (others 12). The
#: receiver's search for the end-line skips ahead by about its length, so a 64 KiB body is
#: searched in 6 us instead of 11; and 128 random bits make a big body that is sent
#: unsearched (a streamed one, or any message chunk) safer still.
LONG_ID_BODY = 16 * 1024

ResponseCallback = Callable[[MSRPData], None]


@dataclass
class SessionSettings:
    """Every limit of a session; the defaults are documented in ``doc/sessions.rst``.

    ``response_timeout``: seconds before a missing response becomes a local 408 (or 200).
    ``report_timeout``: seconds after the last chunk's response to wait for a success REPORT.
    ``keepalive_interval``: seconds of silence before an empty SEND checks the peer; 0: off.
    ``chunk_size``: body bytes per chunk of ``send_message`` (relays may need less).
    ``max_message_size``: largest incoming message; bigger ones are refused with 413.
    ``max_outstanding_chunks``: chunks sent and not yet answered before sending waits.
    ``max_out_of_order``: bytes held for an ``IConsumer`` sink that arrived ahead of a gap;
    past it the message is refused (413) rather than buffered without bound.
    ``max_incoming_messages``: messages arriving at once; a new one past it gets 413.
    ``progress_report_bytes``: for an incoming message that asks for success reports, a
    partial success REPORT goes back each time this many more bytes arrived in order
    (the sender's pacing through relays); ``None``: whole messages only.
    ``max_unreported_bytes``: body bytes a message sent with success reports may run ahead
    of the peer's REPORTs; ``None``: no limit (a relay transport brings its own).
    ``progress_report_wait``: seconds a message held by that limit waits for the first
    partial REPORT from the peer; without one the peer is taken to report whole messages
    only and the limit is dropped for the session.
    ``relayed_failure_wait``: through a relay, seconds a message sent without success
    reports (Failure-Report ``yes``) still waits after its last 200 before it counts as
    sent: the relay answered those 200s, and only a failure REPORT from the peer tells
    that it refused the message; 0: count it sent at once.
    ``max_message_pieces``: pieces of an incoming message that may be held apart at once
    (arrived out of order, with gaps between them): each costs memory whatever its size,
    so past it the message is refused with 413.
    ``incomplete_message_timeout``: seconds an incoming message may go without a chunk
    (while its own consumer is not holding it back) before it is dropped: the receiver
    hears ``message_failed``, the sender a failure REPORT (408) when it asked for them;
    ``None``: never.
    """

    response_timeout: float = RESPONSE_TIMEOUT
    report_timeout: float = RESPONSE_TIMEOUT
    keepalive_interval: float = 60.0
    chunk_size: int = 64 * 1024
    max_message_size: Optional[int] = 64 * 1024 * 1024
    max_outstanding_chunks: int = 32
    max_out_of_order: Optional[int] = 16 * 1024 * 1024
    max_incoming_messages: int = 64
    progress_report_bytes: Optional[int] = 16 * 1024
    max_unreported_bytes: Optional[int] = None
    progress_report_wait: float = 5.0
    incomplete_message_timeout: Optional[float] = 300.0
    max_message_pieces: int = 1024
    relayed_failure_wait: float = 2.0


class MessageReceiver:
    """What a session tells about incoming messages. Subclass it and override what you need.

    ``message_started`` may return where the body should go: ``None`` keeps it in memory (in
    ``message.data``), a binary file object is written at each chunk's offset, and an
    ``IConsumer`` gets it in order (and can pause the connection).
    """

    def message_started(self, message: IncomingMessage) -> Any:
        """The first chunk of ``message`` arrived; return its body's sink (or ``None``).
        Raise an ``MSRPError`` to refuse the message with its ``code`` (413, say)."""
        return None

    def message_received(self, message: IncomingMessage) -> Any:
        """Every byte of ``message`` arrived.

        Return ``None`` when the message is safely kept, or a Deferred that fires once it
        is (a file renamed to its final name, say): the success REPORT the sender asked for
        goes out only then. A failure (or an exception raised here) sends a failure REPORT
        instead: the error's ``code`` when it is an ``MSRPError``, else 413.
        """
        return None

    def message_failed(self, message: IncomingMessage, reason: Failure) -> None:
        """``message`` will not complete: aborted, refused (too large, bad Byte-Range),
        stopped arriving, or the connection closed."""

    def message_refused(self, chunk: MSRPData, error: MSRPError) -> None:
        """A message was refused at its first chunk, before ``message_started`` (a message
        refused once it had started gets ``message_failed``): ``error.code`` is the answer
        (400 for a bad Byte-Range, 413 too large, 415 a type we do not take). Its sender
        hears of it too, in the answer and, when it asked, a failure REPORT."""


@dataclass
class _Transaction:
    """A request written and waiting for its response. ``counted``: its Failure-Report
    asks for a 200 (a missing one is a 408), and it counts towards
    ``max_outstanding_chunks``."""

    transaction_id: str
    response_cb: Optional[ResponseCallback]
    counted: bool
    message: Optional[OutgoingMessage] = None
    size: int = 0


@dataclass
class _Body:
    """The chunk whose body is being streamed onto the connection."""

    message: OutgoingMessage
    chunk: MSRPData
    size: int
    last: bool

    def __post_init__(self) -> None:
        self.remaining = self.size


def _new_send_id(body_size: int) -> str:
    """A fresh random transaction id for a message chunk: 32 digits for a body of
    LONG_ID_BODY or more, else 12."""
    return new_transaction_id(32 if body_size >= LONG_ID_BODY else 12)


def _check_header_text(content_type: str, headers: Optional[Dict[str, str]]) -> None:
    """Raise ``ValueError`` for a Content-Type or extra header that would not be one line
    of its own on the wire (a CR, an LF or another control character in it), or a header
    name that is not RFC 4975's."""
    if not content_type.isprintable():
        raise ValueError("Content-Type %r holds a control character" % content_type)
    for name, value in (headers or {}).items():
        if not HEADER_NAME_RE.fullmatch(name) or not value.isprintable():
            raise ValueError("header %r: %r is not a header line of its own" % (name, value))


def _generated_response(transaction_id: str, code: int, comment: str) -> MSRPData:
    return MSRPData(transaction_id, code=code, comment=comment)


def _response_error(response: MSRPData) -> MSRPTransactionError:
    """The error a request's non-200 ``response`` fails it with."""
    return MSRPTransactionError("%s %s" % (response.code, response.comment or ""),
                                code=response.code, comment=response.comment)


class MSRPSession:
    """A message session over a bound :class:`~msrplib.transport.MSRPTransport`.

    ``accept_types`` are the media types we take (``*`` and ``type/*`` wildcards work);
    other SEND bodies get 415. ``on_incoming_cb(chunk=None, error=None)`` hears every
    incoming request chunk, and ``error`` once when the connection closes. ``receiver``
    (a :class:`MessageReceiver`) hears whole messages. ``extension_methods`` are request
    methods handed to ``on_incoming_cb`` to answer with :meth:`respond`; any other unknown
    method gets 501.
    """

    log = Logger()

    def __init__(self, msrptransport: MSRPTransport, accept_types: Iterable[str] = ("*",),
                 on_incoming_cb: Optional[Callable[..., None]] = None, *,
                 receiver: Optional[MessageReceiver] = None,
                 settings: Optional[SessionSettings] = None,
                 extension_methods: Iterable[str] = ("NICKNAME",),
                 reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.transport = msrptransport
        self.accept_types = list(accept_types)
        self.on_incoming_cb = on_incoming_cb
        self.receiver = receiver or MessageReceiver()
        self.settings = settings or SessionSettings()
        self.extension_methods = set(extension_methods)
        self.reactor = reactor
        self._seconds = reactor.seconds
        self.closed = Observer()
        self._protocol = msrptransport.protocol
        self._queue: Deque[Any] = deque()
        self._transactions: Dict[str, _Transaction] = {}
        # (deadline, transaction id) in sending order; one timer watches the oldest.
        self._deadlines: Deque[Tuple[float, str]] = deque()
        self._deadline_timer: Any = None
        self._outstanding = 0
        self._waiting_reports: Dict[str, OutgoingMessage] = {}
        # Sent through a relay, waiting out relayed_failure_wait (see _message_sent).
        self._unconfirmed: Dict[str, OutgoingMessage] = {}
        # The Content-Type of the last message sent, checked already (see send_message).
        self._checked_type: Optional[str] = None
        self._body: Optional[_Body] = None
        self._idle: Set[OutgoingMessage] = set()
        # Made for the first message paced by success reports (most sessions have none).
        self._window: Optional[ReportWindow] = None
        self._pumping = False
        self._shutting_down = False
        self._drain_pending = False
        self._keepalive: Any = None
        self._last_activity = 0.0
        self._requests = RequestHandler(self)
        self._protocol.lost.observe().addErrback(self._connection_lost)
        msrptransport.deliver_events_to(self._event)
        self._touch()

    # Sending: the seed API.

    def send_chunk(self, chunk: MSRPData, response_cb: Optional[ResponseCallback] = None) -> None:
        """Queue ``chunk``; ``response_cb(response)`` hears its response (the seed's call).

        Without a response in ``response_timeout`` seconds one is generated: 408 when
        Failure-Report is ``yes`` or absent, 200 when it is ``partial`` or ``no``. Raises
        ``MSRPSessionError`` when the session is shut down or its connection closed.
        """
        self._check_open()
        self._queue.append((chunk, response_cb))
        self._pump()

    def deliver_chunk(self, chunk: MSRPData) -> Deferred:
        """Send ``chunk``; fire with its 200 response, fail with ``MSRPTransactionError``.

        With Failure-Report ``no`` nothing will answer, so this fires with ``None`` at once.
        """
        if chunk.headers.first.get("failure-report") == "no":
            self.send_chunk(chunk)
            return succeed(None)
        result: Deferred = Deferred()

        def answered(response: MSRPData) -> None:
            if response.code == 200:
                result.callback(response)
            else:
                result.errback(_response_error(response))

        self.send_chunk(chunk, answered)
        return result

    def respond(self, request: MSRPData, code: int, comment: Optional[str] = None) -> None:
        """Answer ``request`` (e.g. a NICKNAME), if its Failure-Report allows that answer."""
        if should_respond(request, code):
            self._protocol.write_response(request, code, comment)
            self._touch()

    def shutdown(self, sync: bool = True) -> Deferred:
        """Send what is queued, wait for the answers and success REPORTs still due (and
        for open ``MessageWriter`` s to be finished), then close; fire once closed."""
        self._shutting_down = True
        closed = self.closed.observe()
        closed.addErrback(lambda failure: None)
        self._pump()
        return closed

    # Sending: whole messages.

    def send_message(self, data_or_file: Source, content_type: str,
                     message_id: Optional[str] = None, success_report: str = "no",
                     failure_report: str = "yes", chunk_size: Optional[int] = None,
                     headers: Optional[Dict[str, str]] = None,
                     progress: Optional[Callable[[int, Optional[int]], None]] = None
                     ) -> Deferred:
        """Send a message (``bytes`` or a binary file), cut into chunks.

        ``headers`` are added to every chunk (e.g. ``Content-Disposition`` with a file
        name). ``progress(done, total)`` is called as chunks are answered (or sent, when
        Failure-Report is not ``yes``); ``total`` is ``None`` for a file of unknown size.

        Fires with the Message-ID once every chunk was accepted (Failure-Report ``yes``) or
        sent (``partial``, ``no``), and, with ``success_report="yes"``, once the peer's
        success REPORT covered the whole message. Fails with ``MSRPTransactionError`` carrying
        the peer's code (e.g. 413, which stops the message) or 408 when nothing answered,
        and with ``MSRPSessionError`` when the connection closed first.
        """
        self._check_open()
        if content_type is not self._checked_type or headers:
            _check_header_text(content_type, headers)
            self._checked_type = content_type
        if message_id is not None:
            self._check_message_id(message_id)
        message = OutgoingMessage(data_or_file, content_type, message_id or new_message_id(),
                                  success_report, failure_report,
                                  self._chunk_size(chunk_size), headers, progress)
        self._track_reports(message)
        if not self._send_in_one(message):
            self._queue.append(message)
            self._pump()
        return message.result

    def _send_in_one(self, message: OutgoingMessage) -> bool:
        """Write ``message`` at once as its only chunk when its body is bytes that fit in
        one (and need no streaming: STREAM_PIECE), nothing is queued before it, and neither
        the socket nor the window of outstanding chunks holds sending back: a chat
        message, the usual case, without a trip through the send loop. (A chunk whose body
        is being streamed holds the protocol: see :meth:`_encodes`. A message's first
        chunk is never held for success reports: nothing of it is unconfirmed yet.) False,
        having written nothing, otherwise: the send loop then sends it in turn."""
        if self._queue or self._protocol.writing_paused \
                or self._outstanding >= self.settings.max_outstanding_chunks \
                or not self._encodes(message):
            return False
        data = message.read_whole(STREAM_PIECE)
        if data is None:
            return False
        self._send_encoded(message, data, 1, True)
        return True

    def open_message(self, content_type: str, size: Optional[int] = None,
                     message_id: Optional[str] = None, success_report: str = "no",
                     failure_report: str = "yes", chunk_size: Optional[int] = None,
                     headers: Optional[Dict[str, str]] = None) -> MessageWriter:
        """A message whose body is written as it becomes available: an ``IConsumer``.

        Register a producer with it (or call ``write`` yourself), then ``finish()``, which
        returns the Deferred ``send_message`` would. ``size``, when known, goes in the
        Byte-Range totals; without it they are ``*`` until the last chunk. A streaming
        producer is paused while the connection cannot keep up.
        """
        self._check_open()
        _check_header_text(content_type, headers)
        if message_id is not None:
            self._check_message_id(message_id)
        size_limit = self._chunk_size(chunk_size)
        message: Optional[OutgoingMessage] = None

        def ready() -> None:
            assert message is not None
            if message in self._idle:
                self._idle.discard(message)
                self._queue.append(message)
            self._pump()

        writer = MessageWriter(size_limit, ready, size)
        message = OutgoingMessage(writer, content_type, message_id or new_message_id(),
                                  success_report, failure_report, size_limit, headers)
        writer.result = message.result
        self._track_reports(message)
        self._idle.add(message)
        return writer

    def _check_message_id(self, message_id: str) -> None:
        """Raise ``ValueError`` for a Message-ID a caller chose that RFC 4975 does not
        allow, or that a message under way already has (REPORTs name messages by it)."""
        if not MESSAGE_ID_RE.fullmatch(message_id):
            raise ValueError("Message-ID %r is not 1 to 32 letters, digits or .-+%%="
                             % message_id)
        if self._in_flight(message_id) is not None:
            raise ValueError("a message with Message-ID %r is under way" % message_id)

    def _chunk_size(self, requested: Optional[int]) -> int:
        size = requested or self.settings.chunk_size
        if self.transport.max_chunk_size:
            size = min(size, self.transport.max_chunk_size)
        return size

    def _track_reports(self, message: OutgoingMessage) -> None:
        """A message that asks for success reports hears them from its first chunk on, and
        is paced by them when a limit applies (``max_unreported_bytes``)."""
        if message.success_report != "yes":
            return
        self._waiting_reports[message.message_id] = message
        limits = [limit for limit in (self.settings.max_unreported_bytes,
                                      self.transport.max_unreported_bytes) if limit]
        message.window_limit = min(limits) if limits else None

    def abort_message(self, message_id: str) -> None:
        """Stop sending a queued message: its next chunk is an empty ``#`` chunk."""
        for item in list(self._queue) + list(self._idle) + list(self._held()):
            if isinstance(item, OutgoingMessage) and item.message_id == message_id:
                self._stop_sending(item)
                self._fail_message(item, MSRPTransactionError(
                    "aborted by the sender", code=499, comment="Aborted"))
                self._pump()
                return
        raise KeyError(message_id)

    def _stop_sending(self, message: OutgoingMessage) -> None:
        """Send ``message`` no further: its next chunk is the empty ``#`` that ends it."""
        if message.finished_sending:
            return
        message.aborted = True
        if message in self._idle or message in self._held():
            self._idle.discard(message)
            self._forget_held(message)
            self._queue.append(message)

    def send_nickname(self, nickname: str) -> Deferred:
        """Ask to use ``nickname`` in a chat room (RFC 7701); fires with the 200."""
        chunk = self.transport.make_chunk(method="NICKNAME")
        chunk.use_nickname = nickname
        return self.deliver_chunk(chunk)

    # The send loop.

    def _check_open(self) -> None:
        if self._shutting_down:
            raise MSRPSessionError("the session is shut down")
        if self.closed.fired:
            raise MSRPSessionError("the connection is closed: %s"
                                   % getattr(self.closed.result, "value", None))

    def _pump(self) -> None:
        """Write queued chunks while the socket and the window allow, one message at a time
        in turn, so that a short message never waits behind a long one.

        A call made while the loop runs (a producer writing as it is read from, say) only
        adds work: the running loop picks it up.
        """
        if self._pumping or (not self._queue and self._body is None
                             and not self._shutting_down):
            return  # already running, or nothing to send and nothing to close
        self._pumping = True
        try:
            self._pump_loop()
        finally:
            self._pumping = False
        self._close_if_done()

    def _pump_loop(self) -> None:
        while not self.closed.fired:
            if self._body is not None:
                if not self._stream():
                    return
                continue
            if not self._queue:
                break
            if self._protocol.writing_paused:
                self._wait_for_drain()
                return
            if self._outstanding >= self.settings.max_outstanding_chunks:
                return
            item = self._queue.popleft()
            if isinstance(item, OutgoingMessage):
                if not item.ready:
                    self._idle.add(item)  # a MessageWriter with nothing written yet
                    continue
                if item.window_limit is not None and not self._pacing().allows(item):
                    continue  # held until the peer's REPORTs catch up
                self._send_next_chunk(item)
                if not item.finished_sending:
                    self._queue.append(item)
            else:
                chunk, response_cb = item
                self._write(chunk, response_cb)

    def _close_if_done(self) -> None:
        """After ``shutdown``: close once nothing is queued or waits for an answer."""
        if (self._shutting_down and not self._queue and not self._idle and self._body is None
                and not self._transactions and not self._waiting_reports
                and not self._unconfirmed
                and not self._held() and not self.closed.fired):
            self._protocol.close()

    def _wait_for_drain(self) -> None:
        if self._drain_pending:
            return
        self._drain_pending = True

        self._protocol.call_when_drained(self._drained)

    def _drained(self) -> None:
        self._drain_pending = False
        self._pump()

    def _send_next_chunk(self, message: OutgoingMessage) -> None:
        """Write the next chunk of ``message``: whole when its body is small, else its
        headers now and its body piece by piece as the socket drains (:meth:`_stream`)."""
        if message.aborted:
            self._write(message.abort_chunk(self._new_send(0)), None)
            return
        if isinstance(message.source, MessageWriter):
            data, byte_range, last = message.next_written_piece()
            length = len(data)
        elif message.size is None:
            data, byte_range, last = message.next_piece()
        else:
            byte_range, last = message.next_range()
            length = (byte_range.end or 0) - byte_range.start + 1
            if length > STREAM_PIECE:
                chunk = self._new_send(length)
                message.fill(chunk, byte_range, last)
                self._register(chunk, None, message, length)
                self._protocol.begin_body(chunk)
                self._body = _Body(message, chunk, length, last)
                return
            data = message.read(length)
            if len(data) == length and self._encodes(message):
                self._send_encoded(message, data, byte_range.start, last)
                return
        chunk = self._new_send(len(data))
        message.fill(chunk, byte_range, last)
        chunk.data = data
        if message.size is not None and len(data) < length:
            self._file_ended_early(message, chunk)
            return
        # Its id was drawn at random just now (_new_send): like a streamed body, its body
        # need not be searched for the end-line.
        self._write(chunk, None, message, len(data), check_body=False)
        self._chunk_sent(message, len(data), last)

    def _encodes(self, message: OutgoingMessage) -> bool:
        """Whether ``message``'s chunks may be written serialised straight from it, with no
        MSRPData made for them (:meth:`_send_encoded`): the usual case. Not while the
        protocol must have chunks (``takes_encoded_chunks``), nor for a message with
        headers of its own (they may name headers that the encoding writes itself)."""
        return self._protocol.takes_encoded_chunks and not message.headers

    def _send_encoded(self, message: OutgoingMessage, data: bytes, start: int,
                      last: bool) -> None:
        """Write ``data``, the body bytes of ``message`` (of known size) from byte ``start``
        (counted from 1), as a chunk serialised straight from it, when :meth:`_encodes`
        allows."""
        size = len(data)
        transaction_id = _new_send_id(size)
        head = message.encode_head(transaction_id, self.transport.path_lines, start, size, last)
        # Its id was drawn at random just now: its body need not be searched for the end-line.
        self._protocol.write_encoded(head, data, end_line(transaction_id, "$" if last else "+"))
        self._touch()
        # fill() writes a Failure-Report only when it is not "yes": as _register reads it.
        self._expect_response(transaction_id, None, message.failure_report == "yes", message,
                              size)
        self._chunk_sent(message, size, last)

    def _new_send(self, body_size: int) -> MSRPData:
        """A SEND for a message's next chunk, with a fresh random transaction id."""
        return MSRPData(_new_send_id(body_size), method="SEND",
                        headers=self.transport.new_headers())

    def _stream(self) -> bool:
        """Write more of the streamed body; False when the socket asked to wait."""
        body = self._body
        assert body is not None
        while body.remaining:
            if self._protocol.writing_paused:
                self._wait_for_drain()
                return False
            piece = body.message.read(min(body.remaining, STREAM_PIECE))
            if not piece:
                self._body = None
                body.chunk.contflag = "#"
                self._protocol.end_body(body.chunk)
                self._fail_message(body.message, MSRPSessionError(
                    "the file ended %d bytes early" % body.remaining))
                return True
            self._protocol.write_body(piece)
            body.remaining -= len(piece)
        self._body = None
        self._protocol.end_body(body.chunk)
        self._touch()
        self._chunk_sent(body.message, body.size, body.last)
        return True

    def _file_ended_early(self, message: OutgoingMessage, chunk: MSRPData) -> None:
        chunk.contflag = "#"
        message.finished_sending = True
        self._write(chunk, None)
        self._fail_message(message, MSRPSessionError("the file ended before its size"))

    def _chunk_sent(self, message: OutgoingMessage, size: int, last: bool) -> None:
        if message.failure_report != "yes":
            message.acknowledge(size)
            if last:
                self._message_sent(message)

    def _write(self, chunk: MSRPData, response_cb: Optional[ResponseCallback] = None,
               message: Optional[OutgoingMessage] = None, size: int = 0,
               check_body: bool = True) -> None:
        self._protocol.write_chunk(chunk, check_body)
        self._touch()
        self._register(chunk, response_cb, message, size)

    def _register(self, chunk: MSRPData, response_cb: Optional[ResponseCallback],
                  message: Optional[OutgoingMessage], size: int) -> None:
        """Wait for the response to a request just written (REPORTs get none)."""
        if chunk.method is None or chunk.method == "REPORT":
            return
        counted = chunk.headers.first.get("failure-report") in (None, "yes")
        self._expect_response(chunk.transaction_id, response_cb, counted, message, size)

    def _expect_response(self, transaction_id: str, response_cb: Optional[ResponseCallback],
                         counted: bool, message: Optional[OutgoingMessage], size: int) -> None:
        timeout = self.settings.response_timeout
        self._transactions[transaction_id] = _Transaction(
            transaction_id, response_cb, counted, message, size)
        self._deadlines.append((self._seconds() + timeout, transaction_id))
        if self._deadline_timer is None:
            self._deadline_timer = self.reactor.callLater(timeout, self._expire)
        if counted:
            self._outstanding += 1
        if message is not None:
            message.outstanding += 1

    # Responses to what we sent.

    def _expire(self) -> None:
        """Time out every transaction whose deadline passed; watch the next one."""
        self._deadline_timer = None
        now = self.reactor.seconds()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, transaction_id = deadlines.popleft()
            if transaction_id in self._transactions:
                self._timed_out(transaction_id)
        self._prune_deadlines()
        if deadlines and self._deadline_timer is None and not self.closed.fired:
            self._deadline_timer = self.reactor.callLater(deadlines[0][0] - now, self._expire)

    def _prune_deadlines(self) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._transactions:
            deadlines.popleft()

    def _timed_out(self, transaction_id: str) -> None:
        if self._transactions[transaction_id].counted:
            response = _generated_response(transaction_id, 408, "Request Timeout")
        else:
            response = _generated_response(transaction_id, 200, "OK")
        self._response(response)

    def _response(self, response: MSRPData) -> None:
        transaction = self._transactions.pop(response.transaction_id, None)
        if transaction is None:
            self.log.debug("ignoring a response to a finished transaction: {response!r}",
                           response=response)
            return
        self._prune_deadlines()
        if transaction.counted:
            self._outstanding -= 1
        message = transaction.message
        if message is not None:
            message.outstanding -= 1
            if response.code == 200 and message.failure_report == "yes":
                message.acknowledge(transaction.size)
            self._message_response(message, response)
        if transaction.response_cb is not None:
            transaction.response_cb(response)
        self._pump()

    def _message_response(self, message: OutgoingMessage, response: MSRPData) -> None:
        if message.result.called:  # message.done, read on every response
            return
        if response.code != 200:
            message.aborted = not message.finished_sending
            self._fail_message(message, _response_error(response))
        elif message.finished_sending and message.outstanding == 0 and \
                message.failure_report == "yes":
            self._message_sent(message)

    def _message_sent(self, message: OutgoingMessage) -> None:
        if message.success_report != "yes":
            if self.transport.relayed and self.settings.relayed_failure_wait \
                    and message.failure_report == "yes":
                # The 200s came from the relay: give a refusal by the peer, which only a
                # failure REPORT brings, the time to arrive.
                self._unconfirmed[message.message_id] = message
                message.report_timer = self.reactor.callLater(
                    self.settings.relayed_failure_wait, self._not_refused, message)
                return
            message.result.callback(message.message_id)
            return
        message.awaiting_report = True
        if message.reported is not None and message.reported.covers(message.offset):
            self._message_reported(message)
            return
        message.report_timer = self.reactor.callLater(
            self.settings.report_timeout, self._report_timed_out, message)

    def _not_refused(self, message: OutgoingMessage) -> None:
        """No failure REPORT came for ``message`` in ``relayed_failure_wait``: it is sent."""
        message.report_timer = None
        del self._unconfirmed[message.message_id]
        message.result.callback(message.message_id)
        self._close_if_done()

    def _message_reported(self, message: OutgoingMessage) -> None:
        del self._waiting_reports[message.message_id]
        message.stop_report_timer()
        message.result.callback(message.message_id)
        self._close_if_done()

    def _pacing(self) -> ReportWindow:
        if self._window is None:
            self._window = ReportWindow(self.reactor, lambda: self.settings.progress_report_wait,
                                        lambda: self.settings.report_timeout,
                                        self._window_released, self._window_expired)
        return self._window

    def _held(self) -> Dict[OutgoingMessage, None]:
        """The messages waiting for the peer's REPORTs to catch up."""
        return self._window.held if self._window is not None else {}

    def _forget_held(self, message: OutgoingMessage) -> None:
        if self._window is not None:
            self._window.forget(message)

    def _window_released(self, messages: List[OutgoingMessage]) -> None:
        self._queue.extend(messages)
        self._pump()

    def _window_expired(self, messages: List[OutgoingMessage]) -> None:
        """The peer's REPORTs stopped while these messages waited for them: give up."""
        for message in messages:
            self._queue.append(message)
            self._stop_sending(message)
            self._fail_message(message, MSRPTransactionError(
                "no success report within %s seconds" % self.settings.report_timeout,
                code=408, comment="No success report"))
        self._pump()

    def _report_timed_out(self, message: OutgoingMessage) -> None:
        message.report_timer = None
        self._fail_message(message, MSRPTransactionError(
            "no success report within %s seconds" % self.settings.report_timeout,
            code=408, comment="No success report"))

    def _fail_message(self, message: OutgoingMessage, error: Exception) -> None:
        self._waiting_reports.pop(message.message_id, None)
        self._unconfirmed.pop(message.message_id, None)
        self._forget_held(message)
        message.stop_report_timer()
        if not message.done:
            message.result.errback(Failure(error))
        self._close_if_done()

    def _report(self, report: MSRPData) -> None:
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
            failed = self._in_flight(message_id)
            if failed is not None:
                self._stop_sending(failed)
                self._fail_message(failed, MSRPTransactionError(
                    "failure report: %s %s" % (status.code, status.comment or ""),
                    code=status.code, comment=status.comment))
                self._pump()
            return
        message = self._waiting_reports.get(message_id)
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
        if whole and message.awaiting_report:
            self._message_reported(message)
        elif self._window is not None:
            self._window.reported(message, partial=not whole)

    def _in_flight(self, message_id: str) -> Optional[OutgoingMessage]:
        """The message of ``message_id`` that is still under way (queued, being sent,
        awaiting answers or REPORTs), if any: looked for only when a failure REPORT comes,
        so that sending keeps no index of its own for it."""
        known = self._waiting_reports.get(message_id) or self._unconfirmed.get(message_id)
        if known is not None:
            return known
        body = [self._body.message] if self._body is not None else []
        for candidate in itertools.chain(
                (transaction.message for transaction in self._transactions.values()),
                self._queue, self._idle, self._held(), body):
            if isinstance(candidate, OutgoingMessage) and candidate.message_id == message_id \
                    and not candidate.done:
                return candidate
        return None

    # Receiving.

    def _event(self, event: ParserEvent) -> None:
        self._touch()
        if type(event) is MSRPData:
            if event.code is not None:
                self._response(event)
            else:
                self._requests.whole(event)
        elif type(event) is ChunkData:
            self._requests.data(event.data)
        elif isinstance(event, ChunkStarted):
            if event.chunk.code is None:
                self._requests.started(event.chunk)
        elif isinstance(event, ChunkEnded):
            if event.chunk.code is not None:
                self._response(event.chunk)
            else:
                self._requests.ended(event.chunk)

    # Keepalive and closing.

    def _touch(self) -> None:
        """Note traffic; the keepalive timer, armed once, finds out when it fires."""
        self._last_activity = self._seconds()
        if self._keepalive is None and self.settings.keepalive_interval > 0 \
                and not self.closed.fired:
            self._keepalive = self.reactor.callLater(self.settings.keepalive_interval,
                                                     self._send_keepalive)

    def _send_keepalive(self) -> None:
        self._keepalive = None
        if self._shutting_down or self.closed.fired:
            return
        idle = self.reactor.seconds() - self._last_activity
        interval = self.settings.keepalive_interval
        if interval <= 0:
            return
        if idle < interval:
            self._keepalive = self.reactor.callLater(interval - idle, self._send_keepalive)
            return
        chunk = self.transport.make_chunk()
        probe = self.deliver_chunk(chunk)

        def dead(failure: Failure) -> None:
            self.log.warn("keepalive failed, closing: {error}", error=failure.value)
            self._protocol.transport.abortConnection()

        probe.addErrback(dead)

    def _connection_lost(self, reason: Failure) -> None:
        self.closed.fire(reason)
        for timer in (self._keepalive, self._deadline_timer):
            if timer is not None and timer.active():
                timer.cancel()
        error = MSRPSessionError("the connection closed: %s" % reason.value)
        for transaction in list(self._transactions.values()):
            if transaction.message is not None:
                self._fail_message(transaction.message, error)
        for transaction in list(self._transactions.values()):
            self._response(_generated_response(transaction.transaction_id, 408,
                                               "Connection closed"))
        for message in list(self._idle):
            self._fail_message(message, error)
        self._idle.clear()
        for item in list(self._queue):
            if isinstance(item, OutgoingMessage):
                self._fail_message(item, error)
            else:
                chunk, response_cb = item
                if response_cb is not None and chunk.method not in (None, "REPORT"):
                    response_cb(_generated_response(chunk.transaction_id, 408,
                                                    "Connection closed"))
        self._queue.clear()
        if self._window is not None:
            self._window.stop()  # what it held waits for reports: failed just below
        for message in list(self._waiting_reports.values()):
            self._fail_message(message, error)
        for message in list(self._unconfirmed.values()):
            # The relay took all of it and no refusal came before the end: it was sent.
            message.stop_report_timer()
            del self._unconfirmed[message.message_id]
            message.result.callback(message.message_id)
        self._requests.connection_lost(error)
        if self.on_incoming_cb is not None:
            self.on_incoming_cb(error=reason)

    def __repr__(self) -> str:
        return "<MSRPSession %r>" % (self.transport,)

