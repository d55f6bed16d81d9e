"""Twisted's TLS layer, made to fill its records: what carries every ``msrps`` connection.

TLS sends what it is given in records of at most 16 KiB, and a record costs both ends far
more than its bytes: a call into OpenSSL and a MAC on each side, and often one more read.
The transport ``connectSSL`` and ``listenSSL`` put on a connection (Twisted's
``BufferingTLSTransport``) gathers small writes until the reactor's next turn but hands a
large one over at once, whole: a 64 KiB chunk with its 300 bytes of headers and end-line
goes out in five records, where a 64 KiB block of a plain stream takes four. It also joins
every sequence written into one string first, which copies every chunk's body.

:class:`RecordFillingTLS` gives OpenSSL full records only. It writes the whole records
that what it was given makes up, large parts as views (not copied), and keeps the rest,
less than a record, for the next write. What is kept goes out at the reactor's next turn,
unless the socket is full and has paused the writer: then nothing would leave sooner, and
it waits for the writer's next write, or goes at the turn after the writer was resumed. A
file's chunks then take four records per 64 KiB, and the only bytes copied are those of
the record that spans two writes. :class:`TLSFactory` is ``TLSMemoryBIOFactory`` with that
protocol, for ``connectTCP`` and ``listenTCP``.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Union

from twisted.internet.interfaces import IPushProducer
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["TLSFactory", "RecordFillingTLS", "RECORD_SIZE"]

#: The most plaintext one TLS record carries.
RECORD_SIZE = 16 * 1024

_Piece = Union[bytes, memoryview]


class RecordFillingTLS(TLSMemoryBIOProtocol):
    """A TLS connection that hands OpenSSL full records, keeping the rest for a turn."""

    factory: TLSFactory

    def __init__(self, factory: TLSFactory, wrappedProtocol: Any,
                 _connectWrapped: bool = True) -> None:
        super().__init__(factory, wrappedProtocol, _connectWrapped)
        self._partial: List[_Piece] = []  # the start of the next record
        self._partial_size = 0
        self._flush_call: Any = None
        self._writer: Optional[_WatchedWriter] = None

    def write(self, data: bytes) -> None:
        self.writeSequence((data,))

    def writeSequence(self, parts: Iterable[_Piece]) -> None:
        for part in parts:
            self._add(part)
        self._flush_soon()

    def _add(self, part: _Piece) -> None:
        """Write the full records that ``part`` completes or holds; keep what is left.
        A part that is not ``bytes`` is copied first: what is kept may outlive the call,
        and the caller may reuse a buffer of its own."""
        if type(part) is not bytes:
            part = bytes(part)
        size = len(part)
        taken = 0
        if self._partial_size:
            taken = min(RECORD_SIZE - self._partial_size, size)
            self._partial.append(part if taken == size else memoryview(part)[:taken])
            self._partial_size += taken
            if self._partial_size < RECORD_SIZE:
                return
            self._write_partial()
        whole = (size - taken) // RECORD_SIZE * RECORD_SIZE
        if whole:
            self._encrypt(part if whole == size else memoryview(part)[taken:taken + whole])
            taken += whole
        if taken < size:
            self._partial.append(memoryview(part)[taken:])
            self._partial_size = size - taken

    def _write_partial(self) -> None:
        record = b"".join(self._partial)
        self._partial = []
        self._partial_size = 0
        self._encrypt(record)

    def _encrypt(self, data: _Piece) -> None:
        TLSMemoryBIOProtocol.write(self, data)  # type: ignore[arg-type]

    @property
    def _writer_paused(self) -> bool:
        return self._writer is not None and self._writer.paused

    def _flush_soon(self) -> None:
        """Send the partial record at the next turn, unless the writer is paused."""
        if self._partial_size and self._flush_call is None and not self._writer_paused:
            self._flush_call = self.factory.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        """The reactor turned with less than a record kept: send it as it is (unless the
        writer was paused since; it is sent after the writer's next turn then)."""
        self._flush_call = None
        if self._partial_size and not self._writer_paused:
            self._write_partial()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if streaming:
            producer = self._writer = _WatchedWriter(producer, self._flush_soon)
        super().registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._writer = None
        super().unregisterProducer()
        self._flush_soon()

    def _stop_flush(self) -> None:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None

    def loseConnection(self) -> None:
        self._stop_flush()
        if self._partial_size:
            self._write_partial()
        super().loseConnection()

    def _drop_partial(self) -> None:
        """The connection is going away unfinished: nothing kept is sent."""
        self._stop_flush()
        self._partial, self._partial_size = [], 0

    def abortConnection(self) -> None:
        self._drop_partial()
        super().abortConnection()

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        self._drop_partial()
        super().connectionLost(reason)


@implementer(IPushProducer)
class _WatchedWriter:
    """The writer of a :class:`RecordFillingTLS`, as the connection pauses and resumes
    it: whether it is paused, and ``resumed()`` called after it has run on resuming."""

    def __init__(self, producer: Any, resumed: Any) -> None:
        self.producer = producer
        self.resumed = resumed
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True
        self.producer.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        self.producer.resumeProducing()
        self.resumed()

    def stopProducing(self) -> None:
        self.producer.stopProducing()


class TLSFactory(TLSMemoryBIOFactory):
    """``TLSMemoryBIOFactory`` making :class:`RecordFillingTLS` connections; ``clock``
    (a reactor) sends what is left of a record at its next turn.

    A wrapped factory that refuses a connection (``buildProtocol`` returns ``None``) has
    it closed, as it would be without TLS.
    """

    protocol = RecordFillingTLS

    def __init__(self, options: Any, is_client: bool, wrapped_factory: Any,
                 clock: Any) -> None:
        super().__init__(options, is_client, wrapped_factory, clock)
        self.clock = clock

    def buildProtocol(self, addr: Any) -> Optional[RecordFillingTLS]:  # type: ignore[override]
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)
