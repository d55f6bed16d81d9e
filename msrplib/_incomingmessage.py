"""Reassembling incoming messages from chunks (RFC 4975 section 5.1), in or out of order,
and the :class:`MessageReceiver` that hears of them.

An :class:`IncomingMessage` collects the bytes of one Message-ID. Each chunk says where its
bytes go (Byte-Range); bytes already received are skipped, so duplicates are harmless. The
body goes to a sink: memory by default, or a file (written at each chunk's offset) or an
``IConsumer`` (written in order, out-of-order pieces held until the gap is filled).
"""

from __future__ import annotations

import email.message
import email.utils

import enum
from typing import Any, Dict, Optional, Union

from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from msrplib._rangeset import RangeSet
from msrplib._statemachine import state_mover
from msrplib._chunk import MSRPData
from msrplib.errors import ExcessiveBufferingError, MSRPError

__all__ = ["IncomingMessage", "MessageReceiver", "Arrival", "ARRIVAL_TRANSITIONS",
           "make_sink"]


class _MemorySink:
    """Keeps a body in memory: what arrived in order in one growing buffer (however small
    its chunks), pieces that came ahead of a gap apart until the gap is filled."""

    def __init__(self) -> None:
        self.head: Union[bytes, bytearray] = b""
        self.ahead: Dict[int, bytes] = {}

    def write(self, offset: int, data: bytes) -> None:
        if offset != len(self.head):
            self.ahead[offset] = data
            return
        self._append(data)
        while self.ahead and len(self.head) in self.ahead:
            self._append(self.ahead.pop(len(self.head)))

    def _append(self, data: bytes) -> None:
        if not self.head:
            self.head = data  # the first piece is kept as it is: often the only one
        else:
            if type(self.head) is bytes:
                self.head = bytearray(self.head)
            self.head += data

    def finish(self) -> Optional[bytes]:
        return self.head if type(self.head) is bytes else bytes(self.head)

    def fail(self) -> None:
        self.head = b""
        self.ahead.clear()


class _FileSink:
    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, offset: int, data: bytes) -> None:
        self.file.seek(offset)
        self.file.write(data)

    def finish(self) -> Optional[bytes]:
        self.file.flush()
        return None

    def fail(self) -> None:
        self.file.flush()


@implementer(IPushProducer)
class _ConsumerSink:
    """Writes to an ``IConsumer`` in order; pauses the connection's reading (as one reason
    of its own: see ``MSRPProtocol.pause_reading``) when the consumer asks."""

    def __init__(self, consumer: Any, protocol: Any, max_held: Optional[int]) -> None:
        self.consumer = consumer
        self.protocol = protocol
        self.max_held = max_held
        self.next_offset = 0
        self.held: Dict[int, bytes] = {}
        self.held_bytes = 0
        self.paused = False
        consumer.registerProducer(self, True)

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.next_offset:
            if self.max_held is not None and self.held_bytes + len(data) > self.max_held:
                raise ExcessiveBufferingError(
                    "more than %d bytes arrived ahead of a gap" % self.max_held)
            self.held[offset] = data
            self.held_bytes += len(data)
            return
        self.consumer.write(data)
        self.next_offset += len(data)
        while self.next_offset in self.held:
            piece = self.held.pop(self.next_offset)
            self.held_bytes -= len(piece)
            self.consumer.write(piece)
            self.next_offset += len(piece)

    def finish(self) -> Optional[bytes]:
        self._release()
        return None

    def fail(self) -> None:
        self.held.clear()
        self._release()

    def _release(self) -> None:
        if self.paused:
            self.resumeProducing()
        self.consumer.unregisterProducer()

    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            self.protocol.pause_reading(self)

    def resumeProducing(self) -> None:
        if self.paused:
            self.paused = False
            self.protocol.resume_reading(self)

    def stopProducing(self) -> None:
        """The consumer gave up; the message fails when its connection does."""


def make_sink(target: Any, protocol: Any, max_out_of_order: Optional[int] = None) -> Any:
    """The sink for a message body: memory for ``None``, a consumer, or a file object.

    A consumer takes bytes in order, and may pause ``protocol`` (an ``MSRPProtocol``);
    at most ``max_out_of_order`` bytes that arrived ahead of a gap are held for it
    (``ExcessiveBufferingError`` past that).
    """
    if target is None:
        return _MemorySink()
    if IConsumer.providedBy(target):
        return _ConsumerSink(target, protocol, max_out_of_order)
    return _FileSink(target)


class Arrival(enum.IntEnum):
    """Where an incoming message is. (An ``IntEnum``, like ``Sending``: ints hash in C.)"""

    #: Its chunks are arriving.
    ARRIVING = 1
    #: Every byte arrived; the receiver is keeping it (``message_received`` returned a
    #: Deferred that has not fired yet).
    COMPLETE = 2
    #: Kept (at once, or once that Deferred fired): the success REPORT it asked for went out.
    RECEIVED = 3
    #: The receiver could not keep it: a failure REPORT went out instead.
    NOT_KEPT = 4
    #: Given up before it was whole: refused, aborted, stopped arriving, or cut off.
    DROPPED = 5


# The states as module names too (see ``msrplib._outgoingmessage.QUEUED``).
ARRIVING, COMPLETE, RECEIVED, NOT_KEPT, DROPPED = Arrival
#: The moves an incoming message may make (see :meth:`IncomingMessage.move`).
ARRIVAL_TRANSITIONS = {
    ARRIVING: {COMPLETE, RECEIVED, DROPPED},
    COMPLETE: {RECEIVED, NOT_KEPT},
    RECEIVED: set(),
    NOT_KEPT: set(),
    DROPPED: set(),
}


class IncomingMessage:
    """A message arriving on a session: its first chunk's headers, how far it got, and
    where it is (:class:`Arrival`). What a :class:`MessageReceiver` reads:

    - ``message_id``: its Message-ID (the sender's; REPORTs name the message by it).
    - ``content_type``: its Content-Type, as the sender wrote it (``None`` for none).
    - ``headers``: the first chunk's :class:`~msrplib.protocol.Headers`:
      ``headers.get(name)`` is a header's first value whatever the case of its name,
      ``headers.get_all(name)`` every value; the MIME headers a sender adds to every chunk
      (Content-Disposition, Content-ID...) are here too.
    - ``size``: its total size in bytes once a chunk announced it (the Byte-Range total),
      else ``None`` until its last chunk came.
    - ``file_name``: the ``filename`` of its Content-Disposition, if any.
    - ``received``: body bytes received so far; ``complete``: whether all have come.
    - ``data``: the body once complete, when it was kept in memory; with a file or
      ``IConsumer`` sink (``message_started``'s return) it went there and ``data`` stays
      ``None``.
    - ``state``: where it is (an :class:`Arrival`).
    - ``first_chunk``: the first chunk itself (an ``MSRPData``), for anything else.

    Everything here is the peer's text: check it before it names a file or a path.
    """

    move = state_mover(ARRIVAL_TRANSITIONS)

    def __init__(self, first_chunk: MSRPData, size: Optional[int] = None) -> None:
        self.first_chunk = first_chunk
        self.headers = first_chunk.headers
        self.message_id = self.headers.first.get("message-id")
        self.content_type = self.headers.first.get("content-type")
        if size is None:
            byte_range = first_chunk.byte_range
            size = byte_range.total if byte_range else None
        #: The total size when a chunk has announced it (``size``, or the first chunk's
        #: Byte-Range), else ``None``.
        self.size: Optional[int] = size
        self.data: Optional[bytes] = None
        self.ranges = RangeSet()
        self.end: Optional[int] = None
        self.sink: Any = None
        #: Bytes from the start that a partial success REPORT already confirmed.
        self.progress_reported = 0
        #: When its last chunk or piece of one arrived (the session's clock), for its expiry.
        self.last_chunk_at = 0.0
        self.state = ARRIVING

    @property
    def received(self) -> int:
        """Body bytes received so far."""
        return self.ranges.count

    @property
    def file_name(self) -> Optional[str]:
        """The ``filename`` parameter of its Content-Disposition (RFC 2183, RFC 2231
        encodings read), or ``None``. The peer's text: never use it as a path as it is."""
        disposition = self.headers.first.get("content-disposition")
        if disposition is None:
            return None
        holder = email.message.Message()
        holder["Content-Disposition"] = disposition
        # get_param and the RFC 2231 collapse, as get_filename does, less its strip():
        # the name is the sender's, spaces included.
        value = holder.get_param("filename", None, "content-disposition")
        name = email.utils.collapse_rfc2231_value(value) if value is not None else None
        return name if name else None

    def add(self, offset: int, data: bytes) -> None:
        """Store ``data`` at zero-based ``offset``, skipping bytes already received."""
        for low, high in self.ranges.add(offset, offset + len(data)):
            self.sink.write(low, data[low - offset:high - offset])

    def arrived_whole(self) -> None:
        """Every byte of the message (``size`` of them) came in its first chunk."""
        assert self.size is not None and not self.ranges.count
        self.ranges.add(0, self.size)
        self.end = self.size

    def last_chunk_ends(self, end: int) -> None:
        """The chunk with the ``$`` flag ended at ``end``: the message is that long."""
        self.end = end
        if self.size is None:
            self.size = end

    @property
    def complete(self) -> bool:
        """True once the final chunk arrived and every byte before it too."""
        return self.end is not None and self.ranges.covers(self.end)

    def __repr__(self) -> str:
        return "<IncomingMessage %r %r, %d of %s bytes>" % (
            self.message_id, self.content_type, self.received,
            "?" if self.size is None else self.size)


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
