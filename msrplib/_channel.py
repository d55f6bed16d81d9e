"""Several sessions on one connection: the streams of a SIP dialog that go through the same
relay may share its connection and its AUTH (RFC 4976 section 5.4 lets a client use one
Use-Path for several sessions).

A :class:`ConnectionRouter` takes the connection's parser events and hands each one to the
:class:`Channel` of the session its To-Path names (by the session-id of its last URI, the
one the relay left for us); a request for no session here is answered 481. A channel is,
to its session and its ``MSRPTransport``, the connection itself: an ``IChunkWriter`` whose
chunks go out on the shared connection in order, one streamed body at a time, whose
``lost`` fires when the connection closes or its session lets go of it, and whose reasons
to stop reading stop the whole connection (a TCP connection has one flow control).
"""

from __future__ import annotations

from collections import deque
from typing import (TYPE_CHECKING, Any, Callable, Deque, Dict, Hashable, List, Optional, Set,
                    Tuple)

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msrplib._chunk import MSRPData
from msrplib._observer import Observer, ResponseWaiters
from msrplib._parser import ChunkEnded, ChunkStarted, ParserEvent
from msrplib._rules import should_respond
from msrplib._uri import URI
from msrplib.errors import MSRPError
from msrplib.interfaces import IChunkWriter

from msrplib.transport import held_size

if TYPE_CHECKING:
    from msrplib.transport import MSRPProtocol

__all__ = ["ConnectionRouter", "Channel", "HELD_BEFORE_BINDING"]

#: Why a channel stops the connection's reading: it holds ``max_held_bytes`` of events that
#: came before its session took them (a peer that sends a lot before the binding).
HELD_BEFORE_BINDING = "events held before the binding"

Receiver = Callable[[ParserEvent], None]

class ConnectionRouter:
    """Sorts one connection's events among the channels of the sessions it carries, and
    lets their writers take turns.

    ``responses`` waits for the answers to the connection's own requests (a relay's AUTH),
    which belong to no session. ``on_empty(aborted)`` is called when the last channel
    lets go (``aborted`` when it gave up on the peer rather than closing in order): the
    connection's owner decides whether it closes, and says so (True). ``max_held_bytes``
    bounds what a channel holds before its session reads it (``transport.held_size``).
    """

    log = Logger()

    def __init__(self, protocol: MSRPProtocol, clock: Any, max_held_bytes: int,
                 on_empty: Callable[[bool], bool]) -> None:
        self.protocol = protocol
        self.clock = clock
        self.max_held_bytes = max_held_bytes
        self.on_empty = on_empty
        self.responses = ResponseWaiters()
        #: The channel whose chunk body is being written, if any: the others wait for it.
        self.body_owner: Optional[Channel] = None
        self._by_session: Dict[str, Channel] = {}
        # By the text of the URI, as a To-Path names it: nearly every chunk is found so.
        self._by_text: Dict[str, Channel] = {}
        # Where the rest of a streamed chunk goes (None: nowhere, it was refused).
        self._streaming: Optional[Channel] = None
        self._waiting_to_write: List[Tuple[Channel, Callable[[], None]]] = []
        self._wake_armed = False
        # What the other sessions wrote while a body was open (chunks, answers, raw
        # bytes), in order: it goes out once the body has ended.
        self._held_writes: List[Tuple[Channel, Callable[[], None]]] = []
        protocol.set_receiver(self._event)
        protocol.lost.observe().addErrback(self._lost)

    # Channels.

    def open_channel(self, local_uri: URI) -> Channel:
        """A channel for the session whose URI is ``local_uri``; ``ValueError`` when a
        session of that session-id is here already or the connection is gone."""
        session_id = local_uri.session_id or ""
        if not session_id or session_id in self._by_session:
            raise ValueError("another session here has the session-id %r" % session_id)
        if self.protocol.lost.fired:
            raise ValueError("the connection is closed")
        channel = Channel(self, local_uri)
        self._by_session[session_id] = channel
        self._by_text[str(local_uri)] = channel
        return channel

    @property
    def channels(self) -> List[Channel]:
        """The channels open on the connection."""
        return list(self._by_session.values())

    def channel_left(self, channel: Channel, aborted: bool) -> bool:
        """``channel`` lets go of the connection; True when the connection closes for
        it (it was the last, and ``on_empty`` closed it)."""
        if self._by_session.get(channel.local_uri.session_id or "") is channel:
            del self._by_session[channel.local_uri.session_id or ""]
            self._by_text.pop(str(channel.local_uri), None)
        if self._streaming is channel:
            self._streaming = None
        self._waiting_to_write = [(waiter, callback)
                                  for waiter, callback in self._waiting_to_write
                                  if waiter is not channel]
        if self.body_owner is channel:
            self.body_closed(channel)
        return not self._by_session and self.on_empty(aborted)

    def _lost(self, reason: Failure) -> None:
        self.responses.fail_all(reason)
        channels, self._by_session, self._by_text = self.channels, {}, {}
        self._waiting_to_write, self._held_writes = [], []
        for channel in channels:
            channel.connection_lost(reason)

    # What arrives.

    def _event(self, event: ParserEvent) -> None:
        if type(event) is MSRPData:
            if event.code is not None and self.responses and \
                    self.responses.deliver(event.transaction_id, event):
                return
            channel = self._channel_for(event)
            if channel is not None:
                channel.receive(event)
        elif isinstance(event, ChunkStarted):
            channel = self._streaming = self._channel_for(event.chunk)
            if channel is not None:
                channel.receive(event)
        else:
            channel = self._streaming
            if isinstance(event, ChunkEnded):
                self._streaming = None
            if channel is not None:
                channel.receive(event)

    def _channel_for(self, chunk: MSRPData) -> Optional[Channel]:
        """The channel of the session ``chunk``'s To-Path ends with; a request for none is
        answered (481, or 400 for a To-Path that does not parse) and ``None`` returned.
        The session checks the rest of the paths itself."""
        text = chunk.headers.first.get("to-path")
        channel = self._by_text.get(text) if text is not None else None
        if channel is not None:
            return channel
        code = 481
        try:
            to_path = chunk.to_path or []
            channel = self._by_session.get(to_path[-1].session_id or "") if to_path else None
        except MSRPError:
            code = 400
        if channel is not None:
            return channel
        if chunk.code is not None:
            self.log.debug("dropped a {code} response for no session here", code=chunk.code)
        else:
            self.log.info("answered {code} to a {method} for no session here ({to_path})",
                          code=code, method=chunk.method, to_path=(text or "")[:200])
            if should_respond(chunk, code):
                self.protocol.write_response(chunk, code)
        return None

    # Taking turns at writing.

    def when_writable(self, channel: Channel, callback: Callable[[], None]) -> None:
        """Call ``callback`` once ``channel`` may write: the connection is not backed up
        and no other channel's body is open."""
        if not channel.writing_paused:
            callback()
            return
        self._waiting_to_write.append((channel, callback))
        self._arm()

    def write(self, channel: Channel, write: Callable[[], None]) -> None:
        """Run ``write`` (``channel``'s write on the connection) now, or once the body
        another session is writing has ended: nothing may cut into a chunk."""
        owner = self.body_owner
        if owner is not None and owner is not channel:
            self._held_writes.append((channel, write))
        else:
            write()

    def body_closed(self, channel: Channel) -> None:
        """``channel``'s body is written: what the others wrote meanwhile goes out, and
        they may go on."""
        if self.body_owner is channel:
            self.body_owner = None
            held, self._held_writes = self._held_writes, []
            for writer, write in held:
                if writer.open:
                    write()
            if self._waiting_to_write and not self.protocol.writing_paused:
                self._wake()

    def _arm(self) -> None:
        if self._waiting_to_write and self.protocol.writing_paused and not self._wake_armed:
            self._wake_armed = True
            self.protocol.call_when_drained(self._wake)

    def _wake(self) -> None:
        self._wake_armed = False
        waiting, self._waiting_to_write = self._waiting_to_write, []
        for channel, callback in waiting:
            if not channel.open:
                continue
            if channel.writing_paused:  # another one's body began meanwhile
                self._waiting_to_write.append((channel, callback))
            else:
                callback()
        self._arm()


@implementer(IChunkWriter)
class Channel:
    """One session's share of a connection (see the module's docstring).

    Writes after the channel was let go of are dropped, as a closed connection drops them.
    """

    log = Logger()

    def __init__(self, router: ConnectionRouter, local_uri: URI) -> None:
        self.router = router
        self.protocol = router.protocol
        self.local_uri = local_uri
        self.lost = Observer()
        #: False once the session let go of the channel or the connection closed.
        self.open = True
        self._receiver: Optional[Receiver] = None
        self._held: Deque[ParserEvent] = deque()
        self._held_bytes = 0
        self._read_pauses: Set[Hashable] = set()
        self._body: Optional[MSRPData] = None
        self._drain_waiters: List[Deferred[None]] = []

    # Reading.

    def set_receiver(self, receiver: Optional[Receiver]) -> None:
        """Send this session's events to ``receiver`` (those held so far go first)."""
        self._receiver = receiver
        while receiver is not None and self._held and self._receiver is receiver:
            receiver(self._held.popleft())
        if receiver is not None and not self._held:
            self._held_bytes = 0
            self.resume_reading(HELD_BEFORE_BINDING)

    def receive(self, event: ParserEvent) -> None:
        """An event for this session, from the router."""
        if self._receiver is not None:
            self._receiver(event)
            return
        self._held.append(event)
        self._held_bytes += held_size(event)
        if self._held_bytes > self.router.max_held_bytes:
            self.pause_reading(HELD_BEFORE_BINDING)

    def pause_reading(self, reason: Hashable) -> None:
        """Stop reading the connection for ``reason`` of this session's."""
        if self.open and reason not in self._read_pauses:
            self._read_pauses.add(reason)
            self.protocol.pause_reading((self, reason))

    def resume_reading(self, reason: Hashable) -> None:
        """Drop this session's ``reason`` to stop reading."""
        if reason in self._read_pauses:
            self._read_pauses.discard(reason)
            self.protocol.resume_reading((self, reason))

    # Writing.

    @property
    def writing_paused(self) -> bool:
        """True while the connection is backed up or another session's body is open."""
        owner = self.router.body_owner
        return self.protocol.writing_paused or (owner is not None and owner is not self)

    @property
    def takes_encoded_chunks(self) -> bool:
        """As the connection's (no body is open, nobody logs chunks)."""
        return self.protocol.takes_encoded_chunks

    def write_chunk(self, chunk: MSRPData, check_body: bool = True) -> None:
        if self.open:
            self.router.write(self, lambda: self.protocol.write_chunk(chunk, check_body))

    def write_encoded(self, head: bytes, body: bytes, end: bytes) -> None:
        if self.open:
            self.router.write(self, lambda: self.protocol.write_encoded(head, body, end))

    def write_response(self, request: MSRPData, code: int,
                       comment: Optional[str] = None) -> None:
        if self.open:
            self.router.write(self, lambda: self.protocol.write_response(request, code,
                                                                         comment))

    def write_raw(self, data: bytes) -> None:
        if self.open:
            self.router.write(self, lambda: self.protocol.write_raw(data))

    def begin_body(self, chunk: MSRPData) -> None:
        """As the connection's; the other sessions wait until :meth:`end_body`."""
        if not self.open:
            return
        owner = self.router.body_owner
        if owner is not None and owner is not self:
            raise RuntimeError("another session's chunk body is being written")
        self.router.body_owner = self
        self._body = chunk
        self.protocol.begin_body(chunk)

    def write_body(self, data: bytes) -> None:
        if self._body is not None:
            self.protocol.write_body(data)

    def end_body(self, chunk: MSRPData) -> None:
        if self._body is not None:
            self._body = None
            self.protocol.end_body(chunk)
            self.router.body_closed(self)

    def call_when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this session may write again; dropped if the channel
        is let go of first (``lost`` reports that)."""
        if self.open:
            self.router.when_writable(self, callback)

    def drained(self) -> Deferred[None]:
        """A Deferred for :meth:`call_when_drained` (the seed API's synchronous writes);
        it fails with the reason the channel was lost."""
        if self.lost.fired:
            return self.lost.observe()
        if not self.writing_paused:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._drain_waiters.append(waiter)
        if len(self._drain_waiters) == 1:
            self.call_when_drained(self._drained)
        return waiter

    def _drained(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    # Letting go.

    @property
    def connected_now(self) -> bool:
        """True until the session lets go of the channel or the connection closes."""
        return self.open and self.protocol.connected_now

    def close(self) -> None:
        """The session is done with the connection (what it wrote is on its way). A
        body it was writing is cut off with ``#``: the connection is shared, so its
        chunk must still end."""
        self._leave(Failure(ConnectionDone("the session closed its channel")), False)

    def abort(self) -> None:
        """The session gives up now; as :meth:`close`, and a connection that no session
        uses any more is aborted rather than closed."""
        self._leave(Failure(ConnectionAborted("the session aborted its channel")), True)

    def _leave(self, reason: Failure, aborted: bool) -> None:
        if not self.open:
            return
        body = self._body
        if body is not None:
            self._body = None
            body.contflag = "#"
            self.protocol.end_body(body)
            self.router.body_closed(self)
        self._let_go()
        if self.router.channel_left(self, aborted):
            # The connection closes with its last session: heard when it has closed,
            # as on a connection of the session's own.
            self.protocol.lost.observe().addBoth(lambda _: self._fire_lost(reason))
        else:
            # As a connection's own close is heard later, not inside the call.
            self.router.clock.callLater(0, self._fire_lost, reason)

    def connection_lost(self, reason: Failure) -> None:
        """The connection closed (from the router)."""
        if self.open:
            self._let_go()
        self._fire_lost(reason)

    def _let_go(self) -> None:
        self.open = False
        self._body = None
        self._held.clear()
        for reason in list(self._read_pauses):
            self.resume_reading(reason)

    def _fire_lost(self, reason: Failure) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            waiter.errback(reason)
        self.lost.fire(reason)

    def __repr__(self) -> str:
        return "<Channel %s>" % (self.local_uri,)
