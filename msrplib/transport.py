"""One MSRP connection: :class:`MSRPProtocol` on the socket, :class:`MSRPTransport` for users.

``MSRPProtocol`` is the Twisted protocol. Its ``dataReceived`` hands bytes to the pure
:class:`~msrplib.protocol.ChunkParser` and passes each event to one receiver. It tells
writers when the socket's buffer is full (it is the connection's push producer) and when a
TLS handshake is done. Whether the socket is read is decided in one place,
:meth:`MSRPProtocol.pause_reading` and :meth:`~MSRPProtocol.resume_reading`, by reasons:
the socket is read while no reason to stop is left.

``MSRPTransport`` is the seed API's low-level view of a bound connection: ``make_chunk``,
``write``, ``read_chunk`` and ``check_incoming_SEND_chunk``. Inbound chunks wait in a queue
for ``read_chunk``; when the queue holds more than ``max_queued_bytes`` the socket stops
being read until a reader catches up, so a slow reader never makes memory grow unbounded.
"""

from __future__ import annotations

from collections import deque
from typing import (TYPE_CHECKING, AbstractSet, Any, Callable, Deque, Hashable, Iterable, List,
                    Optional, Tuple, Union)

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHandshakeListener, IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msrplib._headers import ByteRange, Headers, format_path
from msrplib._observer import Observer
from msrplib._paths import SessionPaths, check_paths
from msrplib._parser import (ChunkData, ChunkEnded, ChunkParser, ChunkStarted, ParserEvent,
                             ParserLimits)
from msrplib._speedups import (HELD_ANSWERS, HOLD_SECONDS, LARGE_READ, SMALL_READ, ConnectionIO,
                               PlainIO, connection_io)
from msrplib._uri import URI
from msrplib._chunk import (MSRPData, encode_response, make_response, new_message_id,
                           new_transaction_id)
from msrplib.interfaces import IChunkWriter, IMessageConnection
from msrplib.errors import ChunkParseError, MSRPError, MSRPSessionError

if TYPE_CHECKING:
    from msrplib._channel import Channel

__all__ = ["MSRPProtocol", "MSRPTransport", "DEFAULT_MAX_QUEUED_BYTES", "held_size",
           "HELD_CHUNK_OVERHEAD", "SMALL_READ",
           "LARGE_READ", "HELD_ANSWERS", "HOLD_SECONDS", "MAX_WRITTEN_WHILE_FULL",
           "check_paths", "TrafficLog"]

#: Default for ``MSRPTransport.max_queued_bytes``: unread inbound bytes (bodies and
#: headers, see :func:`held_size`) held before the socket stops being read.
DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024

_CONNECTION_DONE = Failure(ConnectionDone())

EventReceiver = Callable[[ParserEvent], None]

#: ``traffic_log(direction, chunk)``: hears every chunk sent (``"out"``) or received
#: (``"in"``); a streamed chunk is heard once, with its headers and no body.
TrafficLog = Callable[[str, MSRPData], None]

#: Bytes a connection may write while its socket's outgoing buffer is over Twisted's
#: high-water mark (its writers are paused) before it stops reading the socket, until that
#: buffer has drained. What is written then is mostly what reading made us write (answers,
#: REPORTs): a peer that sends requests and never reads our answers stops being read, and
#: our memory stays bounded. Reading does not stop as soon as the buffer is full: two peers
#: sending each other files would then each wait for the other to read, for ever.
MAX_WRITTEN_WHILE_FULL = 64 * 1024

#: The reason :class:`MSRPProtocol` stops reading under :data:`MAX_WRITTEN_WHILE_FULL`.
WRITES_BACKED_UP = "our writes are backed up"

_NO_REASONS: AbstractSet[Hashable] = frozenset()


@implementer(IPushProducer, IHandshakeListener, IChunkWriter)
class MSRPProtocol(Protocol):
    """The protocol on an MSRP connection: parses what arrives, writes chunks.

    ``ready`` fires with this protocol once the connection can carry chunks (at connect for
    TCP, after the handshake for TLS); ``lost`` fires with the reason the connection closed:
    a ``ChunkParseError`` when the peer sent something unintelligible, ``ConnectionLost``
    when the peer closed in the middle of a chunk, otherwise Twisted's own reason
    (``ConnectionDone`` after our own :meth:`close`, even in the middle of a peer's chunk).
    """

    log = Logger()
    #: The TCP or TLS transport (typed loosely: Twisted declares it ``ITransport``, which
    #: lacks the producer and TLS methods these connections have).
    transport: Any

    def __init__(self, limits: ParserLimits = ParserLimits(),
                 traffic_log: Optional[TrafficLog] = None, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.parser = ChunkParser(limits)
        self.traffic_log = traffic_log
        self.ready = Observer()
        self.lost = Observer()
        self._receiver: Optional[EventReceiver] = None
        self._early: List[ParserEvent] = []
        #: True while the socket's outgoing buffer is over its high-water mark (the socket
        #: paused us as its producer). Read it; the connection sets it.
        self.writing_paused = False
        self._drain_waiters: List[Deferred[None]] = []
        self._drain_callbacks: List[Callable[[], None]] = []
        self._body_open = False
        self._held_chunks: List[Tuple[MSRPData, bool]] = []
        # How bytes reach the transport: plain until connected, then as msrplib._speedups
        # decides. ``_send`` is its ``send``, bound once: it runs for every write.
        self._io: ConnectionIO = PlainIO(self)
        self._send = self._io.send
        self._closed_by_us = False
        # Why the socket is not read; a new set at each change (they are rare), so that a
        # connection read all along holds none of its own.
        self._read_pauses: AbstractSet[Hashable] = _NO_REASONS
        self._written_while_full = 0

    # Connection life.

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        if self._read_pauses:
            self.transport.pauseProducing()
        # Answers and REPORTs are small writes that the peer waits for: Nagle's algorithm
        # would hold them back until the last segment is acknowledged. Our writes are
        # already gathered per reactor turn, so nothing is left for it to coalesce.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self._io = connection_io(self)
        self._send = self._io.send
        if not ISSLTransport.providedBy(self.transport):
            self.ready.fire(self)

    def handshakeCompleted(self) -> None:
        self.ready.fire(self)

    def dataReceived(self, data: bytes) -> None:
        io = self._io
        io.reading(data)
        try:
            for event in self.parser.feed(data):
                if self.traffic_log is not None:
                    self._log_event(event)
                if self._receiver is None:
                    self._early.append(event)
                else:
                    self._receiver(event)
        except ChunkParseError as error:
            self.log.warn("closing {peer}: {error}", peer=self.transport.getPeer(), error=error)
            io.flush()  # what was answered before the error goes first
            self.transport.abortConnection()
        finally:
            io.read_done()

    def wrote_while_full(self, size: int) -> None:
        """Count ``size`` bytes handed to the transport while the writers are paused; past
        :data:`MAX_WRITTEN_WHILE_FULL`, stop reading until the buffer has drained."""
        self._written_while_full += size
        if self._written_while_full > MAX_WRITTEN_WHILE_FULL:
            self.pause_reading(WRITES_BACKED_UP)

    def _log_event(self, event: ParserEvent) -> None:
        assert self.traffic_log is not None
        if isinstance(event, MSRPData):
            self.traffic_log("in", event)
        elif isinstance(event, ChunkStarted):
            self.traffic_log("in", event.chunk)

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        if self.parser.error is not None:
            reason = Failure(self.parser.error)
        elif self.parser.in_chunk and reason.check(ConnectionDone) and not self._closed_by_us:
            reason = Failure(ConnectionLost("the peer closed the connection in a chunk"))
        self._io.stop()
        self.ready.fire(reason)
        waiters, self._drain_waiters = self._drain_waiters, []
        self._drain_callbacks = []
        for waiter in waiters:
            waiter.errback(reason)
        self.lost.fire(reason)

    def abort(self) -> None:
        """Close now, dropping what was not sent (a peer that stopped answering)."""
        if self.transport is not None:
            self.transport.abortConnection()

    def close(self) -> None:
        """Close once what was written is sent (TLS: after its close_notify exchange).

        The protocol stops being the connection's producer first: Twisted's TLS waits for
        its producer to go away before it shuts down.
        """
        if self.transport is not None and self.connected:
            self._closed_by_us = True
            self._io.flush()  # what is gathered or held goes before the close
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    @property
    def connected_now(self) -> bool:
        """True from connect until the connection is lost."""
        return bool(self.connected) and not self.lost.fired

    # Whether the socket is read.

    def pause_reading(self, reason: Hashable) -> None:
        """Stop reading the socket for ``reason`` (until :meth:`resume_reading` of it).

        Anything that must stop the peer's bytes for a while (a reader that is behind, a
        consumer that is full, a connection parked until it is expected) pauses with a
        reason of its own: a string naming why, or the object that pauses. The socket is
        read again once every reason was resumed. Pausing twice for the same reason is
        pausing once. The socket stops at the end of the read being handled: events
        already parsed are still delivered. Use this, never the transport's own
        ``pauseProducing``, which knows of one reason only.
        """
        reasons = self._read_pauses
        if reason not in reasons:
            self._read_pauses = reasons | {reason}
            if not reasons and self._can_throttle():
                self.transport.pauseProducing()

    def resume_reading(self, reason: Hashable) -> None:
        """Drop ``reason`` to stop reading; read again when no other reason is left.
        A reason that is not pausing is ignored."""
        if reason in self._read_pauses:
            self._read_pauses = self._read_pauses - {reason}
            if not self._read_pauses and self._can_throttle():
                self.transport.resumeProducing()

    @property
    def reading_paused(self) -> bool:
        """True while some reason keeps the socket from being read."""
        return bool(self._read_pauses)

    def _can_throttle(self) -> bool:
        transport = self.transport
        return transport is not None and not self.lost.fired and \
            not getattr(transport, "disconnecting", False)

    # Where parsed events go.

    def set_receiver(self, receiver: Optional[EventReceiver]) -> None:
        """Send every parsed event to ``receiver`` (events parsed before go first)."""
        self._receiver = receiver
        while receiver is not None and self._early and self._receiver is receiver:
            receiver(self._early.pop(0))

    # Writing, with the socket's backpressure.

    def write_chunk(self, chunk: MSRPData, check_body: bool = True) -> None:
        """Serialise ``chunk`` onto the connection (its body is not copied for TCP).

        While a streamed body is being written (:meth:`begin_body`), the chunk waits and
        goes out right after that body's end-line: nothing may cut into a chunk.
        ``check_body=False`` is for a chunk whose transaction id was just drawn at random:
        its body is not searched for the end-line (:meth:`MSRPData.encode_start`).
        """
        if self._body_open:
            self._held_chunks.append((chunk, check_body))
            return
        parts = chunk.encode_parts(check_body)
        if self.traffic_log is not None:
            self.traffic_log("out", chunk)
        self._send(parts)

    @property
    def body_open(self) -> bool:
        """Whether a streamed body is being written (:meth:`begin_body`)."""
        return self._body_open

    @property
    def takes_encoded_chunks(self) -> bool:
        """Whether :meth:`write_encoded` may be used now: no streamed body is open (a chunk
        would have to wait for its end, as an MSRPData) and no traffic log wants chunks."""
        return not self._body_open and self.traffic_log is None

    def write_encoded(self, head: bytes, body: bytes, end: bytes) -> None:
        """Write a chunk already serialised as its head (start line and headers), body and
        end-line, when :attr:`takes_encoded_chunks`: a message chunk sent without
        building an MSRPData for it."""
        self._send((head, body, end))

    def write_raw(self, data: bytes) -> None:
        """Write ``data`` as it is, in order with the chunks and answers written before."""
        self._send((data,))

    def write_response(self, request: MSRPData, code: int,
                       comment: Optional[str] = None) -> None:
        """Answer ``request``: :meth:`write_chunk` of ``make_response(request, code,
        comment)``, serialised straight from the request (no chunk is built unless it
        is logged or has to wait)."""
        if self._body_open or self.traffic_log is not None:
            self.write_chunk(make_response(request, code, comment))
        else:
            self._send((encode_response(request, code, comment),), answer=True)

    def begin_body(self, chunk: MSRPData) -> None:
        """Write ``chunk``'s start line and headers; its body follows in
        :meth:`write_body` pieces, then :meth:`end_body`.

        The body cannot be checked for the end-line in advance, so a streamed chunk relies
        on its transaction id being random and unguessable (a session's has 128 bits).
        """
        if self.traffic_log is not None:
            self.traffic_log("out", chunk)
        self._body_open = True  # before the write: a framing transport waits for the end
        self._send((chunk.encode_start(),))

    def write_body(self, data: bytes) -> None:
        """Write the next piece of the body begun with :meth:`begin_body`."""
        self._send((data,))

    def end_body(self, chunk: MSRPData) -> None:
        """Write the end-line (``chunk.contflag``), then any chunk that waited."""
        self._body_open = False  # before the write: the chunk is whole with it
        self._send((chunk.encode_end(),))
        held, self._held_chunks = self._held_chunks, []
        for waiting, check_body in held:
            self.write_chunk(waiting, check_body)

    def drained(self) -> Deferred[None]:
        """A Deferred that fires once the socket's outgoing buffer is below its high-water mark.

        Twisted pauses a connection's producer when the bytes waiting to be sent pass its
        buffer size; this fires at once when it has not, else when it resumes.
        """
        if self.lost.fired:
            return self.lost.observe()  # fails with the reason the connection closed
        waiter: Deferred[None] = Deferred()
        if self.writing_paused:
            self._drain_waiters.append(waiter)
        else:
            waiter.callback(None)
        return waiter

    def call_when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the socket's outgoing buffer is below its high-water mark
        (at once when it is). :meth:`drained` without a Deferred, for the send loop, which
        waits once per chunk; a callback still waiting when the connection is lost is
        dropped (``lost`` reports that)."""
        if self.writing_paused:
            self._drain_callbacks.append(callback)
        elif not self.lost.fired:
            callback()

    def pauseProducing(self) -> None:
        self.writing_paused = True

    def resumeProducing(self) -> None:
        self.writing_paused = False
        self._written_while_full = 0
        self.resume_reading(WRITES_BACKED_UP)
        callbacks, self._drain_callbacks = self._drain_callbacks, []
        for callback in callbacks:
            callback()
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def stopProducing(self) -> None:
        """The connection is going away; ``connectionLost`` reports it."""


class _Segmenter:
    """Turns a streamed chunk into the seed's "virtual" segments for ``read_chunk(size)``."""

    def __init__(self, head: MSRPData) -> None:
        self.head = head
        self.parts: List[bytes] = []
        self.buffered = 0
        self.offset = 0
        self.count = 0

    def add(self, data: bytes) -> None:
        self.parts.append(data)
        self.buffered += len(data)

    def take(self, contflag: Optional[str]) -> MSRPData:
        """The bytes so far as a chunk; ``contflag`` ``None`` means a virtual ``+`` segment."""
        chunk = self.head.copy()
        chunk.data = b"".join(self.parts)
        self.parts, self.buffered = [], 0
        if contflag is not None and self.count == 0:
            chunk.contflag = contflag
            return chunk
        self.count += 1
        chunk.segment = self.count
        chunk.contflag = "+" if contflag is None else contflag
        byte_range = self.head.byte_range
        if byte_range is not None:
            start = byte_range.start + self.offset
            chunk.byte_range = ByteRange(start, start + len(chunk.data) - 1, byte_range.total)
        self.offset += len(chunk.data)
        return chunk


#: What a transport is bound over: a connection of its own, or its session's channel of a
#: connection that several sessions share (:mod:`msrplib._channel`).
Connection = Union[MSRPProtocol, "Channel"]

#: What a held chunk costs beyond its header text and body (the objects around them).
HELD_CHUNK_OVERHEAD = 256


def held_size(event: ParserEvent) -> int:
    """Roughly the memory a parser event held in a queue takes: its body, its headers'
    text, and a fixed overhead per chunk (an empty chunk with a large header block is not
    free). What bounds both a transport's queue for its reader and what a shared
    connection's channel holds before its session reads it."""
    if isinstance(event, ChunkData):
        return len(event.data)
    chunk = event if isinstance(event, MSRPData) else event.chunk
    return len(chunk.data) + HELD_CHUNK_OVERHEAD + sum(
        len(name) + len(value) for name, _, value in chunk.headers._items)


#: The reason an :class:`MSRPTransport` stops reading: its queue holds ``max_queued_bytes``.
READER_BEHIND = "the reader is behind"


@implementer(IMessageConnection)
class MSRPTransport:
    """A bound MSRP connection (the seed's ``msrplib.transport.MSRPTransport``).

    Get one from a connector's or acceptor's ``complete()``; do not construct it yourself.
    ``local_path`` is our relays (if any) followed by ``local_uri``; ``full_remote_path`` is
    the peer's path from its SDP ``a=path``. ``early_events`` are chunks that arrived during
    binding, queued ahead of the rest.
    """

    log = Logger()
    #: The logger the connector, acceptor or server was given for this connection (the
    #: seed's ``logger``), which the session over it uses too; ``None`` when none was.
    logger: Optional[Logger] = None

    def __init__(self, protocol: Connection, local_path: List[URI],
                 full_remote_path: List[URI],
                 max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
                 early_events: Iterable[ParserEvent] = ()) -> None:
        self.protocol = protocol
        #: The connection's writing end (IChunkWriter): what a session writes through.
        self.writer = protocol
        self.local_path = list(local_path)
        self.full_remote_path = list(full_remote_path)
        self.max_queued_bytes = max_queued_bytes
        #: The paths before the last ``update_paths``: the peer's requests by them are
        #: still taken, as the two sides do not switch at the same instant.
        self._previous_paths: Optional[SessionPaths] = None
        self._use_paths()
        self._events: Deque[ParserEvent] = deque()
        self._queued_bytes = 0
        self._reading_paused = False  # whether we asked the protocol to stop reading
        # read_chunk()s waiting, oldest first: a list, as there are few (and most
        # connections have a session, and none): a deque costs 700 bytes more per connection.
        self._readers: List[Tuple[Deferred[MSRPData], Optional[int]]] = []
        self._segmenter: Optional[_Segmenter] = None
        self._closed: Optional[Failure] = None
        self._handler: Optional[EventReceiver] = None
        #: The largest chunk body this connection should carry (a relay's limit), or ``None``.
        self.max_chunk_size: Optional[int] = None
        #: How far a message sent with success reports may run ahead of the peer's REPORTs
        #: on this connection (a relay's limit), or ``None``.
        self.max_unreported_bytes: Optional[int] = None
        #: Whether this connection goes through a relay, which answers our requests
        #: itself (hop by hop): the peer's refusals then come as failure REPORTs only.
        self.relayed = False
        for event in early_events:
            self._event_received(event)
        protocol.set_receiver(self._event_received)
        protocol.lost.observe().addErrback(self._connection_lost)

    def _use_paths(self) -> None:
        """Make the paths of our requests, and the check of the peer's, from
        ``local_path`` and ``full_remote_path``."""
        self._paths = paths = SessionPaths(self.local_path, self.full_remote_path)
        #: The To-Path and From-Path lines of the requests we send, for chunks encoded
        #: without an MSRPData (``OutgoingMessage.encode_head``).
        self.path_lines = "To-Path: %s\r\nFrom-Path: %s\r\n" % (paths.to_path_text,
                                                                  paths.from_path_text)
        self._path_headers = Headers([("To-Path", paths.to_path_text),
                                      ("From-Path", paths.from_path_text)])

    def update_paths(self, local_path: Optional[List[URI]] = None,
                     full_remote_path: Optional[List[URI]] = None) -> None:
        """Use new paths from now on, for what we send and what we accept: our relay's new
        Use-Path after a refresh of AUTH, or the peer's new path from a re-INVITE. The
        peer's requests by the paths before are still taken (it may switch a moment
        later). Our own URI and the peer's stay what they were (the session is the same):
        a path that changes either raises ``ValueError``."""
        local = list(local_path) if local_path is not None else self.local_path
        remote = list(full_remote_path) if full_remote_path is not None \
            else self.full_remote_path
        if not local or not remote or local[-1] != self.local_path[-1] \
                or remote[-1] != self.full_remote_path[-1]:
            raise ValueError("a session's new paths must end with the same URIs as before")
        if remote != self.full_remote_path:
            # The peer's requests by its path before are still taken; a change of our own
            # path alone keeps what was kept (the peer's old path may still be in use).
            self._previous_paths = self._paths
        self.local_path, self.full_remote_path = local, remote
        self._use_paths()

    @property
    def local_uri(self) -> URI:
        """Our own URI: the last of ``local_path``."""
        return self.local_path[-1]

    @property
    def remote_uri(self) -> URI:
        """The peer's own URI: the last of ``full_remote_path``."""
        return self.full_remote_path[-1]

    def is_connected(self) -> bool:
        """True until the connection is closed."""
        return self._closed is None and self.protocol.connected_now

    def loseConnection(self) -> None:
        """Close the connection once what was written has been sent."""
        self.protocol.close()

    # Making and writing chunks.

    def make_chunk(self, transaction_id: Optional[str] = None, method: str = "SEND",
                   code: Optional[int] = None, comment: Optional[str] = None,
                   data: bytes = b"", contflag: Optional[str] = None, start: int = 1,
                   end: Optional[int] = None, length: Optional[int] = None,
                   message_id: Optional[str] = None,
                   content_type: Optional[str] = None) -> MSRPData:
        """A chunk addressed over this connection (the seed's ``make_chunk``).

        With ``code`` it is a response, otherwise a ``method`` request. A ``SEND`` gets a
        Message-ID (``message_id`` or a new one) and a Byte-Range from ``start`` and ``end``
        (default: ``start`` plus the body) over ``length`` (default: ``end``, so the chunk
        ends the message). ``contflag`` defaults to ``+`` when the chunk ends before
        ``length``, else ``$``. A body without ``content_type`` is ``text/plain``.
        """
        headers = self.new_headers()
        if transaction_id is None:
            transaction_id = new_transaction_id()
        if code is not None:
            return MSRPData(transaction_id, code=code, comment=comment, headers=headers,
                            data=data, contflag=contflag or "$")
        if end is None:
            end = start - 1 + len(data)
        if length is None:
            length = end
        if method == "SEND":
            headers.add("Message-ID", new_message_id() if message_id is None else message_id)
            headers.add("Byte-Range", "%d-%d/%d" % (start, end, length))
        elif message_id is not None:
            headers.add("Message-ID", message_id)
        if data or content_type is not None:
            headers.add("Content-Type", content_type or "text/plain")
        if contflag is None:
            contflag = "+" if method == "SEND" and end < length else "$"
        return MSRPData(transaction_id, method=method, headers=headers, data=data,
                        contflag=contflag)

    def new_headers(self) -> Headers:
        """Headers holding just this connection's To-Path and From-Path, to build on."""
        return self._path_headers.copy()

    def write(self, bytes: bytes, sync: bool = True) -> Optional[Deferred[None]]:
        """Write raw bytes. With ``sync``, return a Deferred that fires once the socket's
        buffer is below its high-water mark (see :meth:`MSRPProtocol.drained`), or fails
        with the reason the connection closed."""
        self.protocol.write_raw(bytes)
        return self.protocol.drained() if sync else None

    def write_chunk(self, chunk: MSRPData, sync: bool = True) -> Optional[Deferred[None]]:
        """Serialise and write ``chunk``; ``sync`` as in :meth:`write`."""
        self.protocol.write_chunk(chunk)
        return self.protocol.drained() if sync else None

    # Reading chunks.

    def read_chunk(self, size: Optional[int] = None) -> Deferred[MSRPData]:
        """A Deferred that fires with the next chunk (the seed's ``read_chunk``).

        With ``size``, a chunk whose body is streamed is returned in "virtual" segments as
        soon as more than ``size`` body bytes are waiting: each is a copy of the chunk with
        the bytes so far, its Byte-Range narrowed to them, contflag ``+`` (the last segment
        has the real one) and ``segment`` numbered from 1. Fails with the reason the
        connection closed (``ConnectionDone``, ``ConnectionLost`` or ``ChunkParseError``)
        once every chunk that arrived before was read.
        """
        if self._handler is not None:
            raise MSRPSessionError("an MSRPSession reads this transport; use the session")
        reader: Deferred[MSRPData] = Deferred()
        self._readers.append((reader, size))
        self._serve()
        return reader

    def deliver_events_to(self, handler: EventReceiver) -> None:
        """Hand every parser event to ``handler`` from now on, queued ones first.

        This is how an ``MSRPSession`` takes over the connection: ``read_chunk`` is for
        code that reads chunks itself and cannot be mixed with it.
        """
        self._handler = handler
        while self._events and self._handler is handler:
            handler(self._events.popleft())
        self._queued_bytes = 0
        if self._reading_paused:
            self._reading_paused = False
            self.protocol.resume_reading(READER_BEHIND)
        # The protocol hands events straight to the handler: one call less per chunk.
        self.protocol.set_receiver(handler)

    def check_incoming_SEND_chunk(self, chunk: MSRPData) -> Optional[MSRPError]:
        """``None`` if ``chunk`` is addressed to us from our peer, else the error to answer
        (see :func:`check_paths`)."""
        error = self._paths.check(chunk)
        if error is not None and self._previous_paths is not None \
                and self._previous_paths.check(chunk) is None:
            return None
        return error

    def _event_received(self, event: ParserEvent) -> None:
        if self._handler is not None:
            self._handler(event)
            return
        self._events.append(event)
        self._queued_bytes += held_size(event)
        if self._queued_bytes > self.max_queued_bytes and not self._reading_paused:
            self._reading_paused = True
            self.protocol.pause_reading(READER_BEHIND)
        self._serve()

    def _next(self, size: Optional[int]) -> Optional[MSRPData]:
        while self._events:
            event = self._events.popleft()
            self._queued_bytes -= held_size(event)
            if isinstance(event, MSRPData):
                return event
            if isinstance(event, ChunkStarted):
                self._segmenter = _Segmenter(event.chunk)
                continue
            segmenter = self._segmenter
            assert segmenter is not None
            if isinstance(event, ChunkData):
                segmenter.add(event.data)
                if size is not None and segmenter.buffered > size:
                    return segmenter.take(None)
            elif isinstance(event, ChunkEnded):
                self._segmenter = None
                return segmenter.take(event.chunk.contflag)
        return None

    def _serve(self) -> None:
        while self._readers:
            reader, size = self._readers[0]
            chunk = self._next(size)
            if chunk is None:
                if self._closed is None:
                    break
                del self._readers[0]
                reader.errback(self._closed)
                continue
            del self._readers[0]
            reader.callback(chunk)
        if (self._reading_paused and self._queued_bytes <= self.max_queued_bytes // 2
                and self._closed is None):
            self._reading_paused = False
            self.protocol.resume_reading(READER_BEHIND)

    def _connection_lost(self, reason: Failure) -> None:
        self._closed = reason
        self._serve()

    def __repr__(self) -> str:
        return "<MSRPTransport %s -> %s>" % (self.local_uri, format_path(self.full_remote_path))

