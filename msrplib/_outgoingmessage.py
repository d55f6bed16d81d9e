"""Outgoing messages, cut into chunks lazily so that a file is never read into memory whole."""

from __future__ import annotations

import enum
import functools
import io
import os
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from twisted.internet.defer import Deferred

from msrplib._headers import ByteRange
from msrplib._rangeset import RangeSet
from msrplib._rules import answers_success
from msrplib._statemachine import state_mover
from msrplib._chunk import MSRPData
from msrplib._messagewriter import MessageWriter

__all__ = ["OutgoingMessage", "MessageResult", "Source", "Sending", "TRANSITIONS"]

Source = Union[bytes, Any]


def _size_of(source: Any) -> Optional[int]:
    try:
        position: int = source.tell()
        end: int = source.seek(0, os.SEEK_END)
        source.seek(position)
        return end - position
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def _report_headers(success_report: str, failure_report: str) -> List[Tuple[str, str, str]]:
    """``(name, lower-case name, value)`` of the Success-Report and Failure-Report headers
    of a message's chunks: only those that differ from RFC 4975's defaults (``no`` and
    ``yes``) are written."""
    headers = []
    if success_report != "no":
        headers.append(("Success-Report", "success-report", success_report))
    if failure_report != "yes":
        headers.append(("Failure-Report", "failure-report", failure_report))
    return headers


#: How many kinds of message (Content-Type and report headers) keep their encoded lines.
HEAD_LINES_CACHED = 64


@functools.lru_cache(maxsize=HEAD_LINES_CACHED)
def _lines_after_byte_range(content_type: str, success_report: str, failure_report: str
                            ) -> str:
    """:meth:`OutgoingMessage.fill`'s headers after Byte-Range, as text, with the blank
    line after: the same for every message of a kind, so made once per kind."""
    reports = "".join([f"{name}: {value}\r\n"
                       for name, _, value in _report_headers(success_report, failure_report)])
    return f"{reports}Content-Type: {content_type}\r\n\r\n"


class Sending(enum.IntEnum):
    """Where an outgoing message is. Its chunks' answers may still be due in any state.
    (An ``IntEnum``: a state is looked up for every move, and ints hash in C.)"""

    #: In the send queue: its next chunk goes out when its turn comes.
    QUEUED = 1
    #: Written by an application (``open_message``) that has written nothing to send yet.
    WAITING = 2
    #: Held until the peer's success REPORTs catch up (``max_unreported_bytes``).
    HELD = 3
    #: Its chunk's body is being written piece by piece as the connection drains.
    STREAMING = 4
    #: Every chunk is written: waiting for their answers.
    SENT = 5
    #: Every chunk is answered: waiting for the success REPORT it asked for.
    REPORTING = 6
    #: Sent through a relay, which answered for the peer: waiting for a refusal a while.
    CONFIRMING = 7
    #: Failed, but its peer still needs the empty ``#`` chunk that ends it.
    ABORTING = 8
    #: Its Deferred fired with the Message-ID.
    DONE = 9
    #: Its Deferred failed.
    FAILED = 10


# The states as module names too: on Python 3.11 each ``Sending.X`` read goes through
# EnumType.__getattr__'s lookup hook, several times the cost of a global, and the sender
# reads states for every chunk.
(QUEUED, WAITING, HELD, STREAMING, SENT, REPORTING, CONFIRMING, ABORTING, DONE,
 FAILED) = Sending
#: The states in which nothing more of a message is to be written.
_NOTHING_TO_WRITE = frozenset({SENT, REPORTING, CONFIRMING, DONE, FAILED})
#: The moves a message may make (see :meth:`OutgoingMessage.move`).
TRANSITIONS = {
    QUEUED: {QUEUED, WAITING, HELD, STREAMING, SENT, ABORTING, FAILED},
    WAITING: {QUEUED, ABORTING, FAILED},
    HELD: {QUEUED, ABORTING, FAILED},
    STREAMING: {QUEUED, SENT, ABORTING, FAILED},
    SENT: {REPORTING, CONFIRMING, DONE, FAILED},
    REPORTING: {DONE, FAILED},
    CONFIRMING: {DONE, FAILED},
    ABORTING: {ABORTING, FAILED},
    DONE: set(),
    FAILED: set(),
}


class MessageResult(Deferred[str]):
    """What ``send_message`` returns: a Deferred that fires with the message's Message-ID
    once it is sent. ``message_id`` is known as soon as the message starts, and
    ``cancel()`` aborts the message while it is under way (``abort_message``)."""

    # Set by OutgoingMessage: no __init__ of its own, as a message's cost is counted.
    message_id: str
    #: What aborts the message by its Message-ID (the sender's ``abort_message``).
    abort_message: Optional[Callable[[str], None]]

    def cancel(self) -> None:
        """Abort the message while it is under way (its own 499 fires this Deferred);
        afterwards, what ``Deferred.cancel`` does."""
        if self.called or self.abort_message is None:
            super().cancel()
        else:
            self.abort_message(self.message_id)


class OutgoingMessage:
    """One message on its way out: where it is (:class:`Sending`), what is outstanding,
    and its Deferred.

    ``source`` is ``bytes`` or a binary file object read ``chunk_size`` bytes at a time. A
    file whose size cannot be told is sent with ``*`` as its Byte-Range total. ``abort``
    (the sender's ``abort_message``) is what cancelling its result does.
    """

    move = state_mover(TRANSITIONS)

    def __init__(self, source: Source, content_type: str, message_id: str,
                 success_report: str, failure_report: str, chunk_size: int,
                 headers: Optional[Dict[str, str]] = None,
                 progress: Optional[Callable[[int, Optional[int]], None]] = None,
                 abort: Optional[Callable[[str], None]] = None) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._bytes: Optional[bytes] = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._bytes = bytes(source)
        self.source: Any = source
        self.content_type = content_type
        self.message_id = message_id
        self.success_report = success_report
        self.failure_report = failure_report
        #: Whether each chunk gets a 200 (Failure-Report ``yes``): what it waits for.
        self.chunks_answered = answers_success(failure_report)
        self.chunk_size = chunk_size
        self.headers = dict(headers or {})
        self.progress = progress
        self.acknowledged = 0
        if self._bytes is not None:
            self.size: Optional[int] = len(self._bytes)
        elif isinstance(source, MessageWriter):
            self.size = source.size
        else:
            self.size = _size_of(source)
        self.offset = 0
        #: Its chunks written and not answered yet.
        self.outstanding = 0
        self.state = QUEUED
        self.result = result = MessageResult()
        result.message_id = message_id
        result.abort_message = abort
        self.reported: Optional[RangeSet] = None
        #: The timer of what it waits for in REPORTING or CONFIRMING.
        self.report_timer: Any = None
        #: Body bytes this message may run ahead of the peer's REPORTs (``ReportWindow``).
        self.window_limit: Optional[int] = None
        self._lookahead: Optional[bytes] = None

    def __repr__(self) -> str:
        return "<OutgoingMessage %r %s, %d of %s bytes answered>" % (
            self.message_id, self.state.name, self.acknowledged,
            "?" if self.size is None else self.size)

    @property
    def finished_sending(self) -> bool:
        """True once nothing more of it is to be written (its answers may still be due)."""
        return self.state in _NOTHING_TO_WRITE

    @property
    def aborted(self) -> bool:
        """True while its empty ``#`` chunk is still to be written."""
        return self.state is ABORTING

    @property
    def ready(self) -> bool:
        """Whether a chunk can be sent now (a written message may be waiting for bytes)."""
        return not isinstance(self.source, MessageWriter) or self.source.ready or self.aborted

    def next_written_piece(self) -> Tuple[bytes, ByteRange, bool]:
        """For a :class:`MessageWriter`: what was written so far, up to a chunk."""
        writer = self.source
        data = writer.read(self.chunk_size)
        start = self.offset + 1
        self.offset += len(data)
        last = writer.finished and writer.buffered == 0
        total = self.size if self.size is not None else (self.offset if last else None)
        return data, ByteRange(start, self.offset, total), last

    @property
    def done(self) -> bool:
        """True once the result has fired, either way."""
        return self.result.called

    @property
    def confirmed(self) -> int:
        """Body bytes from the start that the peer's success REPORTs confirmed."""
        return 0 if self.reported is None else self.reported.prefix

    def stop_report_timer(self) -> None:
        """Stop waiting for the success REPORT, if a timer waits for it."""
        if self.report_timer is not None and self.report_timer.active():
            self.report_timer.cancel()

    def acknowledge(self, count: int) -> None:
        """``count`` more body bytes were accepted (or sent); tell ``progress``."""
        self.acknowledged += count
        if self.progress is not None:
            self.progress(self.acknowledged, self.size)

    def next_range(self) -> Tuple[ByteRange, bool]:
        """For a message of known size: the next chunk's Byte-Range and whether it is the
        last; its body is then taken with :meth:`read`."""
        assert self.size is not None
        start = self.offset + 1
        end = min(self.offset + self.chunk_size, self.size)
        return ByteRange(start, end, self.size), end >= self.size

    def read(self, count: int) -> bytes:
        """Up to ``count`` more body bytes (fewer only when a file ended early)."""
        if self._bytes is not None:
            data = self._bytes[self.offset:self.offset + count]
        else:
            data = self.source.read(count)
        self.offset += len(data)
        return data

    def read_whole(self, most: int) -> Optional[bytes]:
        """The whole body, when it is bytes that fit in one chunk, at most ``most`` of them,
        and none of it was read yet (then read, as by :meth:`read`); ``None``, having
        read nothing, otherwise."""
        data = self._bytes
        if data is None or self.offset:
            return None
        size = len(data)
        if size > self.chunk_size or size > most:
            return None
        self.offset = size
        return data

    def next_piece(self) -> Tuple[bytes, ByteRange, bool]:
        """For a message of unknown size: the next chunk's whole body (read ahead by one
        chunk to learn whether it is the last), its Byte-Range, and that answer."""
        if self._lookahead is not None:
            data, self._lookahead = self._lookahead, None
        else:
            data = self.source.read(self.chunk_size)
        start = self.offset + 1
        self.offset += len(data)
        self._lookahead = self.source.read(self.chunk_size)
        last = not self._lookahead
        return data, ByteRange(start, self.offset, self.offset if last else None), last

    def fill(self, chunk: MSRPData, byte_range: ByteRange, last: bool) -> MSRPData:
        """Set the message headers on ``chunk`` (made by the transport for our paths)."""
        headers = chunk.headers
        headers.append_lower("Message-ID", "message-id", self.message_id)
        headers.append_lower("Byte-Range", "byte-range", "%d-%d/%s" % (
            byte_range.start, byte_range.end or 0,
            "*" if byte_range.total is None else byte_range.total))
        for name, lower, value in _report_headers(self.success_report, self.failure_report):
            headers.append_lower(name, lower, value)
        for name, value in self.headers.items():
            headers.add(name, value)
        headers.append_lower("Content-Type", "content-type", self.content_type)
        chunk.contflag = "$" if last else "+"
        return chunk

    def encode_head(self, transaction_id: str, path_lines: str, start: int,
                    length: int) -> bytes:
        """The start line and headers of the chunk :meth:`fill` makes for the ``length``
        body bytes from byte ``start`` (counted from 1), encoded the way
        ``MSRPData.encode_start`` would encode it, without building an ``MSRPData``: how a
        message's chunks are usually sent. Only for a message of known size without
        headers of its own (they may name headers that this writes itself: :meth:`fill`
        is for those)."""
        head = _lines_after_byte_range(self.content_type, self.success_report,
                                       self.failure_report)
        return (f"MSRP {transaction_id} SEND\r\n{path_lines}Message-ID: {self.message_id}\r\n"
                f"Byte-Range: {start}-{start + length - 1}/{self.size}\r\n{head}"
                ).encode("utf-8", "surrogateescape")

    def abort_chunk(self, chunk: MSRPData) -> MSRPData:
        """Make ``chunk`` the empty ``#`` chunk that tells the peer the message is aborted."""
        chunk.headers.add("Message-ID", self.message_id)
        chunk.headers.add("Byte-Range", str(ByteRange(self.offset + 1, None, self.size)))
        chunk.contflag = "#"
        return chunk
