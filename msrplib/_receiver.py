"""The receiving half of a session: each incoming request is checked, answered as its
Failure-Report allows, and SEND bodies are put together into messages (RFC 4975
sections 7.1 and 7.2); REPORTs about what we sent go to the session's sender. Every
incoming message has one state (:class:`~msrplib._incomingmessage.Arrival`).

A message is refused (400, 413, 415) as a whole: its sender hears of it in the answer to
the chunk and, when its Failure-Report asks for failure reports, in a failure REPORT, which
is what reaches it through relays; the application hears of it in
``MessageReceiver.message_refused`` (or ``message_failed`` once it had started). A message
that stops arriving is dropped after ``SessionSettings.incomplete_message_timeout``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, Set

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from msrplib._headers import ByteRange, parse_byte_range
from msrplib._incomingmessage import (
    COMPLETE, DROPPED, NOT_KEPT, RECEIVED, IncomingMessage, MessageReceiver, make_sink)
from msrplib._settings import SessionSettings
from msrplib._rules import (MESSAGE_ID_RE, report_flag, request_error, sends_failure_reports,
                            should_respond)
from msrplib._chunk import MSRPData, make_report
from msrplib.errors import MSRPError


__all__ = ["Receiver", "ReceiverHost"]

#: Message-IDs refused (413...) remembered, so that their later chunks get the same answer.
REFUSED_REMEMBERED = 1000

#: The failure REPORT's status when a receiver fails to store a message with an error that
#: names no MSRP code of its own: 413 asks the sender to send this message no more.
NOT_STORED_CODE = 413
NOT_STORED_COMMENT = "Could not store the message"

#: Refusals of a message that its sender hears of in a failure REPORT too (when it asks):
#: what is wrong with the message itself, for a sender whose paths were checked.
REPORTED_REFUSALS = frozenset({400, 413, 415})


class ReceiverHost(Protocol):
    """What the receiver needs of its session: its settings and application, as they are
    now (a session's may be changed while it runs), its clock, and its other half."""

    settings: SessionSettings
    reactor: Any
    accept_types: List[str]
    extension_methods: Set[str]
    receiver: MessageReceiver
    on_incoming_cb: Optional[Callable[..., None]]
    log: Any

    @property
    def ended(self) -> bool: ...

    def write_report(self, report: MSRPData) -> None: ...

    def report_received(self, report: MSRPData) -> None: ...


@dataclass
class _Inbound:
    """The request chunk being received: its verdict so far, where its body goes, and the
    byte past its last (from 0) that its Byte-Range announces, when it does."""

    chunk: MSRPData
    code: Optional[int]
    message: Optional[IncomingMessage]
    offset: int
    end: Optional[int] = None


class Receiver:
    """Checks, answers and reassembles the requests arriving on one session."""

    # Slots: a server holds thousands of sessions, each with a receiver.
    __slots__ = ("connection", "writer", "host", "incoming", "_refused", "_inbound",
                 "_accept_cache", "_accept_cache_for", "_expiry")

    def __init__(self, connection: Any, host: ReceiverHost) -> None:
        self.connection = connection
        self.writer = connection.writer
        self.host = host
        self.incoming: Dict[str, IncomingMessage] = {}
        self._refused: Dict[str, int] = {}
        self._inbound: Optional[_Inbound] = None
        self._accept_cache: Dict[str, bool] = {}
        self._accept_cache_for: Optional[List[str]] = None
        self._expiry: Any = None

    def whole(self, chunk: MSRPData) -> None:
        """A request that arrived in one piece (body and all): the usual case."""
        if chunk.contflag == "$" and chunk.method == "SEND" and self._message_in_one(chunk):
            return
        inbound = self._check(chunk, bool(chunk.data))
        if chunk.data:
            self._add(inbound, chunk.data)
        self._finish(inbound, chunk)

    def _message_in_one(self, chunk: MSRPData) -> bool:
        """Receive ``chunk``, a ``$`` SEND, when it is a whole new message that is to be
        accepted (Byte-Range ``1-N/N`` for its N bytes, a Content-Type taken, a well-formed
        Message-ID, no header twice, within every limit), without the bookkeeping of a
        message that arrives in pieces: the usual case for chat. False, having done
        nothing, for every other request: those are left to :meth:`_check`, which finds
        their answer."""
        headers = chunk.headers
        get = headers.first.get
        message_id = get("message-id")
        content_type = get("content-type")
        data = chunk.data
        size = len(data)
        if message_id is None or content_type is None \
                or get("byte-range") != f"1-{size}/{size}" \
                or message_id in self.incoming or message_id in self._refused \
                or len(headers.first) != len(headers._items) \
                or not (len(message_id) <= 32 and message_id.isalnum() and message_id.isascii()
                        or MESSAGE_ID_RE.fullmatch(message_id)):
            return False
        host = self.host
        settings = host.settings
        limit = settings.max_message_size
        if (limit is not None and size > limit) \
                or len(self.incoming) >= settings.max_incoming_messages \
                or self.connection.check_incoming_SEND_chunk(chunk) is not None \
                or not self._accepts(content_type):
            return False
        message = IncomingMessage(chunk, size)
        try:
            target = host.receiver.message_started(message)
        except Exception as error:
            self._finish(self._refusal(chunk, self._start_refused(message, error)), chunk)
            return True
        message.arrived_whole()
        if target is None:
            message.data = data  # kept in memory: as a memory sink would hand it back
        else:
            message.sink = self._make_sink(target)
            message.sink.write(0, data)
            message.data = message.sink.finish()
        self._answer(chunk, 200)
        if host.on_incoming_cb is not None:
            host.on_incoming_cb(chunk=chunk)
        self._completed(message)
        return True

    def started(self, chunk: MSRPData) -> None:
        """A request's headers arrived (its body is streamed): decide its answer."""
        self._inbound = self._check(chunk, True)

    def data(self, data: bytes) -> None:
        """The next piece of the streamed request's body."""
        if self._inbound is not None:
            self._add(self._inbound, data)

    def ended(self, chunk: MSRPData) -> None:
        """The streamed request is complete: answer it, and finish its message."""
        inbound, self._inbound = self._inbound, None
        if inbound is not None:
            self._finish(inbound, chunk)

    def _check(self, chunk: MSRPData, has_body: bool) -> _Inbound:
        """Decide a request's answer from its headers, and prepare for its body."""
        host = self.host
        error = request_error(chunk) or self.connection.check_incoming_SEND_chunk(chunk)
        method = chunk.method
        if error is not None:
            return _Inbound(chunk, error.code, None, 0)
        if method == "SEND":
            return self._send_started(chunk, has_body)
        if method != "REPORT" and (
                method not in host.extension_methods or host.on_incoming_cb is None):
            return _Inbound(chunk, 501, None, 0)
        return _Inbound(chunk, None, None, 0)

    def _send_started(self, chunk: MSRPData, has_body: bool) -> _Inbound:
        """Check a SEND chunk's Content-Type and Byte-Range; find or start its message."""
        get = chunk.headers.first.get
        content_type = get("content-type")
        message_id = get("message-id") or ""
        if message_id in self._refused:
            return _Inbound(chunk, self._refused[message_id], None, 0)
        message = self.incoming.get(message_id)
        raw_range = get("byte-range")
        try:
            byte_range = ByteRange(1, None, None) if raw_range is None \
                else parse_byte_range(raw_range)
        except MSRPError:
            return self._refusal(chunk, 400, message)
        start, end, total = byte_range
        if start < 1 or (end is not None and end < start - 1) or \
                (total is not None and ((end is not None and end > total) or start > total + 1)):
            return self._refusal(chunk, 400, message)
        if content_type is None:
            if has_body:
                return self._refusal(chunk, 400, message)  # RFC 4975: a body has a type
            if message is None:
                # An empty SEND (a binding, a keepalive): no message, but what its
                # Byte-Range says still holds.
                return _Inbound(chunk, None, None, start - 1, start - 1 if end is None else end)
        elif not self._accepts(content_type):
            return self._refusal(chunk, 415, message)
        settings = self.host.settings
        limit = settings.max_message_size
        if limit is not None and total is not None and total > limit:
            return self._refusal(chunk, 413, message)
        if message is None:
            if len(self.incoming) >= settings.max_incoming_messages:
                return self._refusal(chunk, 413)
            message = IncomingMessage(chunk, total)
            try:
                target = self.host.receiver.message_started(message)
            except Exception as error:
                return self._refusal(chunk, self._start_refused(message, error))
            message.sink = self._make_sink(target)
            self.incoming[message_id] = message
            self._watch_incoming()
        elif total is not None and total != message.size:
            if message.size is not None or message.ranges.end > total:
                return _Inbound(chunk, 400, message, 0)  # a total that changed: refused whole
            message.size = total  # first told now: later chunks keep to it
        message.last_chunk_at = self.host.reactor.seconds()
        return _Inbound(chunk, None, message, start - 1,
                        end if end is not None else total if chunk.contflag == "$" else None)

    def _start_refused(self, message: IncomingMessage, error: Exception) -> int:
        """The code a message is refused with when ``message_started`` raised ``error``:
        an ``MSRPError`` is the receiver's refusal (its code); anything else is a fault
        of the receiver, logged, and the message refused with 413."""
        if isinstance(error, MSRPError):
            return error.code or 413
        self.host.log.failure("message_started failed for {message!r}",
                                 Failure(error), message=message)
        return 413

    def _refusal(self, chunk: MSRPData, code: int,
                 message: Optional[IncomingMessage] = None) -> _Inbound:
        """Refuse the message ``chunk`` starts (or would start): its later chunks get the
        same answer, and its sender and the application hear of it. A ``message`` under
        way already is refused when the chunk is answered (:meth:`_finish`)."""
        if message is not None:
            return _Inbound(chunk, code, message, 0)
        message_id = chunk.headers.first.get("message-id") or ""
        self._remember_refusal(message_id, code)
        self._report_failure(chunk, code, None)
        receiver = self.host.receiver
        refused = getattr(receiver, "message_refused", None)
        if refused is not None:
            refused(chunk, MSRPError("refused with %d" % code, code))
        return _Inbound(chunk, code, None, 0)

    def _make_sink(self, target: Any) -> Any:
        """Where a message's body goes, for what ``message_started`` returned."""
        return make_sink(target, self.writer, self.host.settings.max_out_of_order)

    def _accepts(self, content_type: str) -> bool:
        if self._accept_cache_for != self.host.accept_types:
            self._accept_cache_for = list(self.host.accept_types)
            self._accept_cache.clear()
        verdict = self._accept_cache.get(content_type)
        if verdict is None:
            media = content_type.split(";")[0].strip().lower()
            verdict = any(fnmatch.fnmatchcase(media, pattern.lower())
                          for pattern in self.host.accept_types)
            if len(self._accept_cache) < 256 and len(content_type) <= 256:
                self._accept_cache[content_type] = verdict
        return verdict

    def _add(self, inbound: _Inbound, data: bytes) -> None:
        """Take ``data``, the next bytes of the request's body: into its message, unless
        the request is refused already, or the bytes go past what its Byte-Range or the
        message's size allow (then it is refused with 400) or the size limit (413)."""
        if inbound.code is not None or not data:
            return
        offset = inbound.offset + len(data)
        message = inbound.message
        if message is not None:
            if message.state is DROPPED:  # expired (or refused) while this chunk was arriving
                inbound.code = self._refused.get(message.message_id or "", 408)
                return
            message.last_chunk_at = self.host.reactor.seconds()
        if (inbound.end is not None and offset > inbound.end) or (
                message is not None and message.size is not None and offset > message.size):
            inbound.code = 400
            return
        if message is None:
            return
        limit = self.host.settings.max_message_size
        if limit is not None and offset > limit:
            inbound.code = 413
            return
        try:
            message.add(inbound.offset, data)
        except MSRPError as error:
            inbound.code = error.code
            return
        if len(message.ranges) > self.host.settings.max_message_pieces:
            inbound.code = 413  # held in too many pieces apart: each costs memory
            return
        inbound.offset = offset

    def _finish(self, inbound: _Inbound, chunk: MSRPData) -> None:
        """Answer the request, tell the application, and complete its message."""
        head = inbound.chunk
        head.contflag = chunk.contflag
        if head.method == "REPORT":
            if inbound.code is None:
                self.host.report_received(head)
            self._tell_application(head)
            return
        message = inbound.message
        if inbound.code is None and message is not None and message.state is DROPPED:
            inbound.code = self._refused.get(message.message_id or "", 408)
        if inbound.code is None and head.contflag != "#" and (
                (inbound.end is not None and inbound.offset != inbound.end)
                or (head.contflag == "$" and message is not None and message.size is not None
                    and inbound.offset != message.size)):
            inbound.code = 400  # fewer bytes than its Byte-Range announced, or its last chunk
            # ends the message before the total it announced
        if inbound.code is not None:
            self._answer(head, inbound.code)
            if message is not None and message.state is not DROPPED:
                self._refuse_message(message, inbound.code)
            return
        if head.method != "SEND":
            self._tell_application(head)
            return
        self._answer(head, 200)
        self._tell_application(head)
        if message is None:
            if head.contflag == "$" and report_flag(head, "success-report") == "yes" \
                    and not self.host.ended:
                # An empty SEND that asks for it (a keepalive through relays): the success
                # REPORT tells its sender that the relays carry its requests to us.
                self.host.write_report(self._addressed(make_report(
                    head, 200, None, byte_range=ByteRange(1, 0, 0))))
            return
        if head.contflag == "#":  # aborted, even when its bytes are all here
            self._drop_incoming(message, MSRPError("aborted by the sender", 499, "Aborted"))
            return
        if head.contflag == "$":
            message.last_chunk_ends(inbound.offset)
        if message.complete:
            self.incoming.pop(message.message_id or "", None)
            message.data = message.sink.finish()
            self._completed(message)
        elif head.contflag == "+":
            self._report_progress(message)

    def _completed(self, message: IncomingMessage) -> None:
        """Every byte of ``message`` arrived: hand it to the receiver, then report.

        The receiver may store the message before it counts as received: when
        ``message_received`` returns a Deferred, the success REPORT waits for it, and a
        failure (or an exception) sends a failure REPORT instead, so that the sender is
        never told of a delivery that did not happen.
        """
        try:
            stored = self.host.receiver.message_received(message)
        except Exception:
            message.move(COMPLETE)
            self._not_stored(message, Failure())
            return
        if stored is not None and isinstance(stored, Deferred):
            message.move(COMPLETE)  # until the receiver has kept it
            stored.addCallbacks(lambda _: self._stored(message),
                                lambda failure: self._not_stored(message, failure))
        else:
            self._stored(message)  # kept at once

    def _stored(self, message: IncomingMessage) -> None:
        """Send the success REPORT ``message`` asks for."""
        message.move(RECEIVED)
        if report_flag(message.first_chunk, "success-report") == "yes":
            size = message.size or 0
            self._send_report(message, 200, None, ByteRange(1, size, size))

    def _not_stored(self, message: IncomingMessage, failure: Failure) -> None:
        """The receiver could not keep ``message``: tell the sender (a failure REPORT,
        as its Failure-Report allows), with the error's code when it has one."""
        message.move(NOT_KEPT)
        error = failure.value
        if isinstance(error, MSRPError) and error.code is not None:
            # The receiver's own refusal (a file that is not the one offered, say): no bug.
            self.host.log.warn("{message!r} was not kept: {error}", message=message,
                               error=error)
            code, comment = error.code, error.comment
        else:
            self.host.log.failure("storing {message!r} failed", failure, message=message)
            code, comment = NOT_STORED_CODE, NOT_STORED_COMMENT
        self._report_failure(message.first_chunk, code, comment,
                             ByteRange(1, message.received, message.size))

    def _send_report(self, message: IncomingMessage, code: int, comment: Optional[str],
                     byte_range: ByteRange) -> None:
        """Write a REPORT about ``message``, unless the session has closed meanwhile."""
        if self.host.ended:
            return
        self.host.write_report(self._addressed(make_report(message.first_chunk, code,
                                                           comment, byte_range=byte_range)))

    def _report_failure(self, chunk: MSRPData, code: int, comment: Optional[str],
                        byte_range: Optional[ByteRange] = None) -> None:
        """A failure REPORT about the message ``chunk`` belongs to, when its Failure-Report
        asks for failure reports (``yes``, ``partial``); ``byte_range`` defaults to the
        chunk's own."""
        if not sends_failure_reports(report_flag(chunk, "failure-report")) \
                or self.host.ended:
            return
        self.host.write_report(self._addressed(make_report(chunk, code, comment,
                                                           byte_range=byte_range)))

    def _report_progress(self, message: IncomingMessage) -> None:
        """Confirm the bytes that arrived in order so far, every ``progress_report_bytes``,
        when the sender asked for success reports: what paces a sender behind a relay."""
        interval = self.host.settings.progress_report_bytes
        if interval is None:
            return
        arrived = message.ranges.prefix
        if arrived - message.progress_reported < interval or \
                report_flag(message.first_chunk, "success-report") != "yes":
            return
        message.progress_reported = arrived
        self.host.write_report(self._addressed(make_report(
            message.first_chunk, 200, byte_range=ByteRange(1, arrived, message.size))))

    def _addressed(self, report: MSRPData) -> MSRPData:
        """``report`` sent by the connection's paths as they are now: a message that
        began before ``update_paths`` (a relay's new Use-Path) is reported on by the new
        ones, not by the path its first chunk came by, which may be gone."""
        paths = self.connection.new_headers()
        report.headers["To-Path"] = paths.first["to-path"]
        report.headers["From-Path"] = paths.first["from-path"]
        return report

    def _answer(self, request: MSRPData, code: int) -> None:
        """``MSRPSession.respond``, less noting the traffic: the request's arrival did."""
        if should_respond(request, code):
            self.writer.write_response(request, code)

    def _refuse_message(self, message: IncomingMessage, code: int) -> None:
        """Refuse ``message``, which had started: its later chunks get ``code``, its sender
        a failure REPORT (for a refusal of the message itself), the receiver
        ``message_failed``."""
        self._remember_refusal(message.message_id or "", code)
        if code in REPORTED_REFUSALS:
            self._report_failure(message.first_chunk, code, None,
                                 ByteRange(1, message.received, message.size))
        self._drop_incoming(message, MSRPError("refused with %d" % code, code))

    def _remember_refusal(self, message_id: str, code: int) -> None:
        if len(self._refused) > REFUSED_REMEMBERED:
            self._refused.pop(next(iter(self._refused)))
        self._refused[message_id] = code

    def _drop_incoming(self, message: IncomingMessage, error: Exception) -> None:
        if self.incoming.pop(message.message_id or "", None) is None:
            return
        message.move(DROPPED)
        message.sink.fail()
        self.host.receiver.message_failed(message, Failure(error))

    def _watch_incoming(self) -> None:
        """Expire messages that stop arriving: see ``incomplete_message_timeout``."""
        timeout = self.host.settings.incomplete_message_timeout
        if self._expiry is None and timeout and not self.host.ended:
            self._expiry = self.host.reactor.callLater(timeout, self._expire_incoming)

    def _expire_incoming(self) -> None:
        """Drop every message that had no chunk for ``incomplete_message_timeout`` (and
        whose body is not held back by its own consumer), then watch the rest."""
        self._expiry = None
        host = self.host
        timeout = host.settings.incomplete_message_timeout
        if not timeout:
            return
        now = host.reactor.seconds()
        for message in list(self.incoming.values()):
            if getattr(message.sink, "paused", False):
                message.last_chunk_at = now  # our consumer holds it back, not the sender
            elif now - message.last_chunk_at >= timeout:
                self._remember_refusal(message.message_id or "", 408)
                self._report_failure(message.first_chunk, 408, "Message Timeout",
                                     ByteRange(1, message.received, message.size))
                self._drop_incoming(message, MSRPError(
                    "no chunk of the message for %s seconds" % timeout, 408, "Timeout"))
        if self.incoming:
            soonest = min(message.last_chunk_at for message in self.incoming.values())
            self._expiry = host.reactor.callLater(max(0.0, soonest + timeout - now),
                                                     self._expire_incoming)

    def _tell_application(self, chunk: MSRPData) -> None:
        if self.host.on_incoming_cb is not None:
            self.host.on_incoming_cb(chunk=chunk)

    def connection_lost(self, error: Exception) -> None:
        """Every message still arriving has failed."""
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        for message in list(self.incoming.values()):
            self._drop_incoming(message, error)

