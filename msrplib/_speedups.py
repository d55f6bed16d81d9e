"""The socket-level speed-ups, all of them, behind one switch: :data:`ENABLED`.

The reference is plain Twisted (:class:`PlainIO`, :class:`PlainTLSFactory`): every chunk
and answer goes to the transport's ``writeSequence`` as it is written, the socket reads
Twisted's 64 KiB at a time, and TLS is Twisted's own. The speed-ups change only how the
same bytes are grouped into socket writes, reads and TLS records, never which bytes or
their order (``tests/test_speedups.py`` runs the same session traffic both ways and
compares what crossed the connection). They do let a socket take more at once, so a
message queued while another is on its way may join behind more of it: interleaving
follows the socket, on either path.

- :class:`TunedIO` gathers what handling one read writes (answers and REPORTs, mostly)
  into one write; holds answers back while the next chunk is still arriving
  (:data:`HELD_ANSWERS`, :data:`HOLD_SECONDS`), so that a file's chunks are answered a
  few at a time; hands a TCP socket's bytes to ``sendmsg`` at once (:func:`send_now`)
  instead of at the reactor's next turn; and sizes the socket's reads by what comes
  (:data:`SMALL_READ`, :data:`LARGE_READ`).
- :class:`RecordFillingTLS` (built by :class:`TLSFactory`) hands OpenSSL full 16 KiB
  records, where Twisted's TLS layer cuts large writes into records as they come.

:data:`ENABLED` is read when a connection is made and when its TLS factory is built. The
environment variable ``MSRPLIB_SPEEDUPS=0`` turns the speed-ups off at import: for
debugging, or under a reactor whose transports they do not suit (each also checks the
transport it is given and stands back from one it does not know).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional, Sequence, Union
from typing import Protocol as TypingProtocol

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from zope.interface import implementer

__all__ = ["ENABLED", "ConnectionIO", "PlainIO", "TunedIO", "connection_io", "tls_factory",
           "PlainTLSFactory", "TLSFactory", "RecordFillingTLS", "can_send_now", "send_now",
           "BATCH_LIMIT", "SMALL_READ", "LARGE_READ", "HELD_ANSWERS", "HOLD_SECONDS",
           "RECORD_SIZE"]

#: Whether new connections use the speed-ups (``MSRPLIB_SPEEDUPS=0`` turns them off).
ENABLED = os.environ.get("MSRPLIB_SPEEDUPS", "1") != "0"

#: Bytes gathered while handling one read before they are written anyway.
BATCH_LIMIT = 64 * 1024

#: How much a connection's socket reads at a time: Twisted's 64 KiB to start with, and up
#: to LARGE_READ once a read fills that (a file is on its way: several of its chunks then
#: come in one read and are answered in one write). A read under SMALL_READ goes back
#: down: every read first allocates its whole size, which a small message would pay for.
#: Under TLS the socket's reads are sized the same way, not the records TLS hands over.
#: (Twisted's ``bufferSize`` is also how much unsent data pauses writers; both ends of a
#: file transfer are fine with either.)
SMALL_READ = 64 * 1024
LARGE_READ = 256 * 1024

#: Answers held back while the chunk after them is still arriving, and for how long at
#: most: a file's chunks are then answered a few at a time, in one write (over TLS, one
#: record) instead of one per read, and the sender is woken less often. Its window of
#: outstanding chunks (``SessionSettings.max_outstanding_chunks``, 32) is much larger.
HELD_ANSWERS = 8
HOLD_SECONDS = 0.005

#: The most plaintext one TLS record carries.
RECORD_SIZE = 16 * 1024


class ConnectionIO(TypingProtocol):
    """How an :class:`~msrplib.transport.MSRPProtocol` hands its bytes to the transport.

    The protocol calls :meth:`reading` before it parses a read and :meth:`read_done`
    after, :meth:`send` for every write, :meth:`flush` before it closes (what was
    written goes first) and :meth:`stop` once the connection is lost.
    """

    def reading(self, data: bytes) -> None: ...

    def send(self, parts: Sequence[bytes], answer: bool = False) -> None: ...

    def read_done(self) -> None: ...

    def flush(self) -> None: ...

    def stop(self) -> None: ...


def connection_io(protocol: Any) -> ConnectionIO:
    """The I/O for ``protocol``, whose transport was just connected: tuned when
    :data:`ENABLED`, else plain. A transport that frames each write (``frames_writes``:
    a WebSocket sends one chunk per message) is always written plainly, one write per
    chunk."""
    if ENABLED and not getattr(protocol.transport, "frames_writes", False):
        return TunedIO(protocol)
    return PlainIO(protocol)


def tls_factory(options: Any, is_client: bool, wrapped_factory: Any,
                clock: Any) -> TLSMemoryBIOFactory:
    """The TLS factory for a connection: record-filling when :data:`ENABLED`, else plain."""
    factory = TLSFactory if ENABLED else PlainTLSFactory
    return factory(options, is_client, wrapped_factory, clock)


class PlainIO:
    """The reference: each write goes to the transport's ``writeSequence`` at once."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def reading(self, data: bytes) -> None:
        pass

    def send(self, parts: Sequence[bytes], answer: bool = False) -> None:
        protocol = self._protocol
        if protocol.writing_paused:
            protocol.wrote_while_full(sum(map(len, parts)))
        protocol.transport.writeSequence(parts)

    def read_done(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        pass


class TunedIO:
    """Writes gathered per read, answers held back a moment, a TCP socket written at
    once, reads sized by what comes (see the module's description)."""

    __slots__ = ("_protocol", "_batch", "_batched", "_answers_only", "_held", "_hold_timer",
                 "_socket", "_send_now")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._batch: Optional[List[bytes]] = None  # gathered while a read is handled
        self._batched = 0
        self._answers_only = True  # the batch holds answers only
        self._held: List[bytes] = []  # answers held back (see HELD_ANSWERS)
        self._hold_timer: Any = None
        self._socket: Any = None  # a TCP socket whose reads are sized here
        self._send_now = False
        transport = protocol.transport
        if ISSLTransport.providedBy(transport):
            _size_reads_under_tls(transport)
        else:
            if isinstance(getattr(transport, "bufferSize", None), int):
                self._socket = transport
            self._send_now = can_send_now(transport)

    def reading(self, data: bytes) -> None:
        if self._socket is not None:
            _size_next_read(self._socket, len(data))
        self._batch = []
        self._answers_only = True

    def send(self, parts: Sequence[bytes], answer: bool = False) -> None:
        """Write ``parts`` now, or with the batch being gathered (flushed past
        :data:`BATCH_LIMIT`). ``answer``: they are a response, which may be held back."""
        batch = self._batch
        if batch is None:
            if self._held:
                self._flush(hold=False)
            protocol = self._protocol
            if protocol.writing_paused:
                protocol.wrote_while_full(sum(map(len, parts)))
            protocol.transport.writeSequence(parts)
            return
        batch += parts
        if not answer:
            self._answers_only = False
        for part in parts:
            self._batched += len(part)
        if self._batched > BATCH_LIMIT:
            self._flush()
            self._batch = []
            self._answers_only = True

    def read_done(self) -> None:
        self._flush()

    def flush(self) -> None:
        self._flush(hold=False)

    def _flush(self, hold: bool = True) -> None:
        """Write the batch, after the answers held back: on a TCP socket at once (see
        :func:`send_now`), so that the answers to what was just read leave before the
        reactor turns. With ``hold``, a batch of answers alone is held back instead while
        the next chunk is arriving (see :data:`HELD_ANSWERS`)."""
        protocol = self._protocol
        batched = self._batched
        batch, self._batch, self._batched = self._batch or [], None, 0
        if protocol.writing_paused and batched:
            protocol.wrote_while_full(batched)
        held = self._held
        if hold and self._answers_only and protocol.parser.in_chunk and \
                len(held) + len(batch) <= HELD_ANSWERS:
            if batch:
                held += batch
                if self._hold_timer is None:
                    self._hold_timer = protocol.clock.callLater(HOLD_SECONDS, self._flush,
                                                                False)
            return
        if held:
            self.stop()
            batch[:0] = held
        if not batch or protocol.transport is None:
            return
        if self._send_now:
            send_now(protocol.transport, batch)
        else:
            protocol.transport.writeSequence(batch)

    def stop(self) -> None:
        """Drop the answers held back (the connection is gone) and their timer."""
        self._held = []
        if self._hold_timer is not None and self._hold_timer.active():
            self._hold_timer.cancel()
        self._hold_timer = None


# Read sizing.

def _size_next_read(socket: Any, received: int) -> None:
    """Set the size of ``socket``'s next read from what it just read (see LARGE_READ)."""
    if received >= socket.bufferSize:
        socket.bufferSize = LARGE_READ
    elif received < SMALL_READ:
        socket.bufferSize = SMALL_READ


def _size_reads_under_tls(layer: Any) -> None:
    """Size the socket's reads by what it reads, under the TLS ``layer`` (Twisted's TLS
    protocol on the socket, which is handed each read: the protocol above it sees only
    the records in it, 16 KiB at most), by wrapping the layer's ``dataReceived``."""
    socket = getattr(layer, "transport", None)
    if not isinstance(getattr(socket, "bufferSize", None), int):
        return
    decrypt = layer.dataReceived

    def read(data: bytes) -> None:
        _size_next_read(socket, len(data))
        decrypt(data)

    layer.dataReceived = read


# Sending on a TCP socket at once.
#
# Twisted's TCP transport keeps every write until its reactor next finds the socket
# writable: one more turn of the reactor, and two epoll_ctl calls, before an answer
# leaves. send_now hands the bytes to the socket itself when the transport holds nothing
# unsent (so they cannot overtake earlier bytes), and gives the transport whatever the
# socket did not take, or everything when the socket reports an error, which the
# transport then meets and reports the usual way. It reads what Twisted's FileDescriptor
# keeps unsent (dataBuffer from offset on, and _tempDataLen more): can_send_now checks
# that a transport is a socket's FileDescriptor with those (not a wrapper such as TLS,
# which forwards unknown attributes to the socket beneath it).

def can_send_now(transport: Any) -> bool:
    """True when ``transport`` is a Twisted socket transport :func:`send_now` can use."""
    return (isinstance(transport, FileDescriptor)
            and isinstance(getattr(transport, "_tempDataLen", None), int)
            and isinstance(getattr(transport, "dataBuffer", None), bytes)
            and isinstance(getattr(transport, "offset", None), int)
            and callable(getattr(getattr(transport, "socket", None), "sendmsg", None)))


def send_now(transport: Any, parts: Sequence[bytes]) -> None:
    """Send ``parts`` on ``transport``'s socket now when nothing waits before them; what is
    left (all of it, when something waits or the socket fails) goes to ``writeSequence``."""
    if (transport._tempDataLen or transport.offset != len(transport.dataBuffer)
            or not transport.connected or transport.disconnecting):
        transport.writeSequence(parts)
        return
    try:
        sent = transport.socket.sendmsg(parts)
    except OSError:  # full (EAGAIN), or failed: the transport's own write finds out which
        sent = 0
    if sent == sum(map(len, parts)):
        return  # the usual case: the socket took it all
    for index, part in enumerate(parts):
        if sent < len(part):
            transport.writeSequence([part[sent:], *parts[index + 1:]])
            return
        sent -= len(part)


# TLS that fills its records.
#
# TLS sends what it is given in records of at most 16 KiB, and a record costs both ends
# far more than its bytes: a call into OpenSSL and a MAC on each side, and often one more
# read. Twisted's BufferingTLSTransport gathers small writes until the reactor's next turn
# but hands a large one over at once, whole: a 64 KiB chunk with its 300 bytes of headers
# and end-line goes out in five records, where a 64 KiB block of a plain stream takes
# four. It also joins every sequence written into one string first, which copies every
# chunk's body. RecordFillingTLS writes the whole records that what it was given makes
# up, large parts as views (not copied), and keeps the rest, less than a record, for the
# next write. What is kept goes out at the reactor's next turn, unless the socket is full
# and has paused the writer: then nothing would leave sooner, and it waits for the
# writer's next write, or goes at the turn after the writer was resumed.

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
        TLSMemoryBIOProtocol.write(self, data)

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


class PlainTLSFactory(TLSMemoryBIOFactory):
    """Twisted's ``TLSMemoryBIOFactory``, the reference; ``clock`` is its reactor.

    A wrapped factory that refuses a connection (``buildProtocol`` returns ``None``) has
    it closed, as it would be without TLS.
    """

    def __init__(self, options: Any, is_client: bool, wrapped_factory: Any,
                 clock: Any) -> None:
        super().__init__(options, is_client, wrapped_factory, clock)
        self.clock = clock

    def buildProtocol(self, addr: Any) -> Optional[TLSMemoryBIOProtocol]:  # type: ignore[override]
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)


class TLSFactory(PlainTLSFactory):
    """A TLS factory making :class:`RecordFillingTLS` connections; ``clock`` sends what
    is left of a record at its next turn."""

    protocol = RecordFillingTLS
