"""MessageWriter: an ``IConsumer`` whose bytes are sent as one message.

A producer (a file reader, a proxied download, Twisted's ``FileBodyProducer``) registers
with it and writes; the session cuts what arrives into chunks as the connection allows.
When more than ``HIGH_WATER_CHUNKS`` chunks' worth waits, a streaming producer is paused,
and it is resumed once less than one chunk's worth is left, so memory stays bounded
however fast the producer and however slow the link.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from zope.interface import implementer

from msrplib.errors import MSRPSessionError

__all__ = ["MessageWriter", "HIGH_WATER_CHUNKS"]

#: Chunks' worth of written bytes held before a streaming producer is paused.
HIGH_WATER_CHUNKS = 4


@implementer(IConsumer)
class MessageWriter:
    """Write a message's body in pieces; ``finish()`` ends it (see ``open_message``)."""

    def __init__(self, chunk_size: int, on_ready: Callable[[], None],
                 size: Optional[int] = None) -> None:
        self.chunk_size = chunk_size
        self.size = size
        self.finished = False
        #: Set when its message failed: what is written from then on is dropped.
        self.stopped = False
        self.result: Optional[Deferred[str]] = None
        self._on_ready = on_ready
        self._pieces: Deque[bytes] = deque()
        self.buffered = 0
        self._producer: Any = None
        self._streaming = False
        self._paused = False

    # IConsumer

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError("a producer is already registered")
        self._producer = producer
        self._streaming = streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        """Queue ``data`` as the next bytes of the message body."""
        if self.stopped:
            return  # its message failed, as its result said: a producer's last write
        if self.finished:
            raise MSRPSessionError("the message is finished; nothing more can be written")
        if not data:
            return
        self._pieces.append(bytes(data))
        self.buffered += len(data)
        if self._streaming and not self._paused and \
                self.buffered > HIGH_WATER_CHUNKS * self.chunk_size:
            self._paused = True
            self._producer.pauseProducing()
        self._on_ready()

    def finish(self) -> Deferred[str]:
        """End the message; the Deferred fires as ``send_message``'s does."""
        self.finished = True
        self._on_ready()
        assert self.result is not None
        return self.result

    def stop(self) -> None:
        """Its message failed: drop what is buffered and stop the producer (whose own
        Deferred, for Twisted's ``FileBodyProducer``, then fails with ``TaskStopped``)."""
        self.stopped = True
        self._pieces.clear()
        self.buffered = 0
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()

    # What the session reads.

    @property
    def ready(self) -> bool:
        """True when there is something to send: bytes, or the end of the message."""
        return self.buffered > 0 or self.finished

    def read(self, count: int) -> bytes:
        """Take up to ``count`` written bytes (never waits)."""
        taken = []
        while count > 0 and self._pieces:
            piece = self._pieces.popleft()
            if len(piece) > count:
                piece, rest = piece[:count], piece[count:]
                self._pieces.appendleft(rest)
            taken.append(piece)
            count -= len(piece)
        data = b"".join(taken)
        self.buffered -= len(data)
        if self._producer is not None and self.buffered < self.chunk_size:
            if self._paused:
                self._paused = False
                self._producer.resumeProducing()
            elif not self._streaming and not self.finished:
                self._producer.resumeProducing()
        return data
