"""Reassembling incoming messages from chunks (RFC 4975 section 5.1), in or out of order.

An :class:`IncomingMessage` collects the bytes of one Message-ID. Each chunk says where its
bytes go (Byte-Range); bytes already received are skipped, so duplicates are harmless. The
body goes to a sink: memory by default, or a file (written at each chunk's offset) or an
``IConsumer`` (written in order, out-of-order pieces held until the gap is filled).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import implementer

from msrplib._rangeset import RangeSet
from msrplib._chunk import MSRPData
from msrplib.errors import ExcessiveBufferingError

__all__ = ["IncomingMessage", "make_sink"]


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


class IncomingMessage:
    """A message arriving on a session: its first chunk's headers and how far it got.

    ``data`` is the body once complete when it was kept in memory; with a file or
    ``IConsumer`` sink the body went there and ``data`` stays ``None``.
    """

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
        #: Set once it was given up (refused, expired, aborted): nothing more completes it.
        self.dropped = False

    @property
    def received(self) -> int:
        """Body bytes received so far."""
        return self.ranges.count

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
