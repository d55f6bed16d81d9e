"""A harness for feeding hostile bytes to msrplib over real loopback TCP, from hypothesis.

The library runs where it always runs: in the trial reactor's thread, as an ``MSRPServer``
whose connections bind to ``MSRPSession`` s. Hypothesis cannot drive Deferreds, so it runs in
a worker thread (the test returns ``deferToThread(...)``) and talks to the library the way a
peer does, through blocking sockets. Whatever the worker needs from the reactor's side (a
local URI to bind to, "has the library read all I sent?", the errors logged meanwhile) it
asks with ``blockingCallFromThread``; nothing else crosses the threads, and every msrplib
object (the parser of the answers too, whose caches are process-wide) is used in the
reactor's thread only.

Knowing when the library has finished with an example, without sleeping: ``MSRPProtocol``
(a public class) is wrapped for the test so that it counts the bytes each connection was
handed. After each write the worker waits until the library has been handed everything
sent so far (which also makes each write a read of its own), or closed the connection.
Then it looks at the library's parser: inside a chunk, a probe would only be swallowed, so
the worker closes its side and reads to the end; otherwise it sends a well-formed probe
SEND with a transaction id of its own and reads until that is answered (everything said
about the example was said before) or the library closes. No answer within
``HANG_SECONDS`` is a hang.
"""

from __future__ import annotations

import gc
import itertools
import re
import select
import socket
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from msrplib.connect import ConnectionSettings, MSRPServer
from msrplib.errors import MSRPError
from msrplib.protocol import (URI, ChunkData, ChunkEnded, ChunkParseError, ChunkParser,
                              ChunkStarted, MSRPData)
from msrplib.session import MessageReceiver, MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from msrplib.transport import MSRPProtocol

__all__ = ["RFC_CODES", "REMOTE", "SESSION_SETTINGS", "HANG_SECONDS", "Library", "Wire",
           "Driver", "Outcome", "probe_chunk"]

#: Every status an MSRP endpoint may answer with (RFC 4975 section 10, RFC 4976).
RFC_CODES = frozenset({200, 400, 403, 408, 413, 415, 423, 481, 501, 506})

#: The raw client's own URI: what the library expects in From-Path.
REMOTE = "msrp://127.0.0.1:2855/fuzzpeer;tcp"

#: The sessions' limits: small, so that the hostile input reaches them.
SESSION_SETTINGS = SessionSettings(keepalive_interval=0, max_message_size=64 * 1024,
                                   max_incoming_messages=16, progress_report_bytes=None)

#: Media types the sessions take: other SEND bodies get 415.
ACCEPT_TYPES = ("text/*", "message/cpim", "application/octet-stream")

#: Longest wait for anything the library must do at once (read, answer, close).
HANG_SECONDS = 5.0
#: How long the worker waits for the library to read before it reads the library's answers
#: (the library stops reading while its own writes are not read: see Driver._consumed).
DRAIN_SECONDS = 0.2

_PROBE_IDS = itertools.count()


def probe_chunk(local: str) -> Tuple[str, bytes]:
    """A well-formed empty SEND to ``local`` from :data:`REMOTE` (it binds an unbound
    connection and is answered 200 on a bound one), with a transaction id and Message-ID
    no example uses: ``(transaction id, bytes)``."""
    tid = "zprobe%06d" % next(_PROBE_IDS)
    raw = ("MSRP %s SEND\r\nTo-Path: %s\r\nFrom-Path: %s\r\nMessage-ID: %s\r\n"
           "Byte-Range: 1-0/0\r\n-------%s$\r\n" % (tid, local, REMOTE, tid, tid))
    return tid, raw.encode()


@dataclass
class Link:
    """The library's side of one connection, found by the raw client's port."""

    protocol: Optional[MSRPProtocol] = None
    received: int = 0
    lost: Optional[Failure] = None
    escaped: List[str] = field(default_factory=list)
    waiters: List[Tuple[int, Deferred]] = field(default_factory=list)
    session: Optional[MSRPSession] = None
    receiver: MessageReceiver = field(default_factory=CollectingReceiver)
    delivered_seen: int = 0

    def snapshot(self, stalled: bool = False) -> Dict[str, Any]:
        """The connection's state: ``closing`` once the library has decided to close it
        (a parse error, or a close asked for), ``in_chunk`` while it waits for the rest of
        a chunk on a connection it keeps."""
        protocol = self.protocol
        closing = self.lost is not None or (protocol is not None and (
            protocol.parser.error is not None
            or getattr(protocol.transport, "disconnecting", False)))
        return {"received": self.received, "lost": self.lost is not None,
                "closing": closing, "stalled": stalled,
                "in_chunk": not closing and protocol is not None and protocol.parser.in_chunk}

    def wake(self) -> None:
        waiting, self.waiters = self.waiters, []
        for total, waiter in waiting:
            if self.lost is not None or self.received >= total:
                waiter.callback(self.snapshot())
            else:
                self.waiters.append((total, waiter))


@dataclass
class Outcome:
    """What the library did with one example, as the peer and the test see it."""

    answers: List[Tuple[str, int]]
    reports: List[Tuple[str, int, str]]
    delivered: List[Tuple[str, bytes]]
    closed: bool
    in_chunk: bool
    probe_answered: bool
    hung: Optional[str]
    errors: List[str]
    invalid: List[str]
    output: bytes

    def codes_for(self, tid: str) -> List[int]:
        return [code for answered, code in self.answers if answered == tid]


class Library:
    """The library under test, on the reactor's side: a listening ``MSRPServer``, a
    session for every connection that binds, and what was logged meanwhile.

    Install it from the test (in the reactor's thread) with :meth:`start`.
    ``keep_messages``: the sessions' receivers keep what they receive (for the tests to
    compare), or only count it (for measuring what the library itself keeps)."""

    def __init__(self, testcase: Any, keep_messages: bool = True) -> None:
        self.server = MSRPServer(settings=ConnectionSettings(bind_timeout=60.0))
        self.links: Dict[int, Link] = {}
        self.failures: List[Failure] = []
        #: How many of ``failures`` an example's outcome has reported.
        self.reported = 0
        self.port = 0
        self.keep_messages = keep_messages
        self._ids = itertools.count()
        self._locals: Dict[str, URI] = {}
        self._testcase = testcase
        library = self
        made, received, lost = (MSRPProtocol.connectionMade, MSRPProtocol.dataReceived,
                                MSRPProtocol.connectionLost)

        def connection_made(protocol: MSRPProtocol) -> None:
            link = library._link(protocol.transport.getPeer().port, fresh=True)
            link.protocol = protocol
            if not library.keep_messages:
                link.receiver = MessageReceiver()
            made(protocol)

        def data_received(protocol: MSRPProtocol, data: bytes) -> None:
            link = library._link(protocol.transport.getPeer().port)
            try:
                received(protocol, data)
            except BaseException as error:
                link.escaped.append("%s escaped dataReceived: %s" % (type(error).__name__,
                                                                    str(error)[:200]))
                raise
            finally:
                link.received += len(data)
                link.wake()

        def connection_lost(protocol: MSRPProtocol, reason: Failure) -> None:
            try:
                lost(protocol, reason)
            finally:
                link = library._link(protocol.transport.getPeer().port)
                link.lost = reason
                link.wake()

        testcase.patch(MSRPProtocol, "connectionMade", connection_made)
        testcase.patch(MSRPProtocol, "dataReceived", data_received)
        testcase.patch(MSRPProtocol, "connectionLost", connection_lost)

    def start(self) -> Deferred:
        """Start listening and capturing logged failures; fire once ready."""
        globalLogPublisher.addObserver(self._observe)
        self._testcase.addCleanup(globalLogPublisher.removeObserver, self._observe)
        return self.server.prepare(URI(host="127.0.0.1", session_id="fuzzlisten")).addCallback(
            lambda path: setattr(self, "port", path[0].port))

    def stop(self) -> Deferred:
        """Stop listening; abort what an example left open, and fire once all is closed."""
        for uri in list(self._locals.values()):
            self.server.cleanup(uri)
        open_links = [port for port, link in self.links.items()
                      if link.protocol is not None and link.lost is None]
        for port in open_links:
            self.links[port].protocol.transport.abortConnection()
        closed = gatherResults([self.consumed(port, 1 << 62) for port in open_links])
        return closed.addCallback(lambda _: self.server.stop())

    def _observe(self, event: Dict[str, Any]) -> None:
        failure = event.get("log_failure")
        if failure is not None:
            self.failures.append(failure)

    def _link(self, port: int, fresh: bool = False) -> Link:
        link = self.links.get(port)
        if link is None or (fresh and link.protocol is not None):
            link = self.links[port] = Link()
        return link

    # Called from the worker, in the reactor's thread.

    def mark(self) -> int:
        return len(self.failures)

    def memory(self) -> int:
        """Bytes allocated and still alive (tracemalloc), after a garbage collection."""
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    def local_uri(self, session_id: Optional[str] = None) -> URI:
        """A new local URI, or the one of ``session_id`` (made the first time), which any
        number of connections may bind to, one at a time."""
        uri = self._locals.get(session_id or "")
        if uri is None:
            uri = URI(host="127.0.0.1", session_id=session_id or "fz%07d" % next(self._ids))
            self.server.prepare(uri)
            self._locals[session_id or str(uri)] = uri
        return uri

    def expect_binding(self, session_id: Optional[str] = None) -> str:
        """The text of a :meth:`local_uri` that one connection from :data:`REMOTE` may
        now bind to."""
        uri = self.local_uri(session_id)
        waiting = self.server.complete([URI.parse(REMOTE)], local_uri=uri)
        waiting.addCallbacks(self._bound, lambda failure: failure.trap(CancelledError))
        return str(uri)

    def _bound(self, transport: Any) -> None:
        link = self._link(transport.protocol.transport.getPeer().port)
        try:
            link.session = MSRPSession(
                transport, ACCEPT_TYPES,
                lambda chunk=None, error=None: self._incoming(link, chunk),
                receiver=link.receiver, settings=SESSION_SETTINGS)
        except Exception as error:
            # The session handles the chunks that came with the binding chunk at once:
            # what escapes it escapes the bytes the peer sent (into complete()'s caller).
            if not isinstance(error, MSRPError):
                link.escaped.append("%s escaped MSRPSession(), handling the chunks that "
                                    "came with the binding: %s" % (type(error).__name__,
                                                                   str(error)[:200]))
            transport.loseConnection()

    def _incoming(self, link: Link, chunk: Optional[MSRPData]) -> None:
        # An extension method (NICKNAME) is ours to answer: answer it as an application
        # that takes every nickname would.
        session = link.session
        if chunk is not None and session is not None and \
                chunk.method in session.extension_methods:
            session.respond(chunk, 200)

    def consumed(self, port: int, total: int, wait: float = HANG_SECONDS) -> Deferred:
        """Fire with the connection's state once the library was handed ``total`` bytes
        on it, or closed it (``stalled`` after ``wait`` seconds without either)."""
        link = self._link(port)
        if link.protocol is not None and (link.lost is not None or link.received >= total):
            return succeed(link.snapshot())
        waiter: Deferred = Deferred()
        link.waiters.append((total, waiter))

        def give_up() -> None:
            if not waiter.called:
                link.waiters = [w for w in link.waiters if w[1] is not waiter]
                waiter.callback(link.snapshot(stalled=True))

        timer = reactor.callLater(wait, give_up)
        waiter.addBoth(lambda result: (timer.active() and timer.cancel(), result)[1])
        return waiter

    def finish(self, port: int, output: Optional[bytes], mark: int, tids: List[str],
               local: Optional[str], closing: bool) -> Deferred:
        """Check what the library wrote (unless ``output`` is None) and logged during one
        example; release ``local``. With ``closing``, wait for the library's side to be
        closed first."""
        link = self._link(port)
        waiting = self.consumed(port, 1 << 62) if closing else succeed(None)
        return waiting.addCallback(lambda _: self._finish(link, output, mark, tids, local))

    def _finish(self, link: Link, output: Optional[bytes], mark: int, tids: List[str],
                local: Optional[str]) -> Dict[str, Any]:
        if local is not None and local in self._locals:
            self.server.cleanup(self._locals.pop(local))
        answers, reports, invalid = read_answers(output, set(tids)) if output is not None \
            else ([], [], [])
        errors = list(link.escaped)
        link.escaped.clear()
        errors += ["logged: %s: %s" % (failure.type.__name__, str(failure.value)[:200])
                   for failure in self.failures[mark:] if not failure.check(MSRPError)]
        received = getattr(link.receiver, "received", [])
        delivered = [(m.message_id, m.data) for m in received[link.delivered_seen:]]
        link.delivered_seen = len(received)
        self.reported = len(self.failures)
        return {"answers": answers, "reports": reports, "invalid": invalid, "errors": errors,
                "delivered": delivered, "mark": len(self.failures),
                "lost": link.lost is not None}

    def forget(self, port: int) -> None:
        link = self.links.get(port)
        if link is not None and link.lost is not None:
            del self.links[port]

    def unexplained_failures(self) -> List[str]:
        """Every failure logged after the last example's outcome (at the end, or when
        garbage was collected) that is not msrplib's own error."""
        return ["%s: %s" % (failure.type.__name__, str(failure.value)[:200])
                for failure in self.failures[self.reported:] if not failure.check(MSRPError)]


def read_answers(output: bytes, tids: set) -> Tuple[List[Tuple[str, int]],
                                                     List[Tuple[str, int, str]], List[str]]:
    """Parse what the library wrote: ``(answers, reports, problems)``.

    Answers are ``(transaction id, code)``; REPORTs ``(Message-ID, status code,
    Byte-Range)``. A problem is anything that is not an RFC 4975 response to one of ``tids``
    or a REPORT with an RFC status, or bytes that do not parse."""
    answers: List[Tuple[str, int]] = []
    reports: List[Tuple[str, int, str]] = []
    problems: List[str] = []
    parser = ChunkParser()
    chunks: List[MSRPData] = []
    try:
        for event in parser.feed(output):
            if isinstance(event, MSRPData):
                chunks.append(event)
            elif isinstance(event, (ChunkStarted, ChunkData, ChunkEnded)):
                problems.append("a streamed chunk in the answers: %r" % (event,))
    except ChunkParseError as error:
        problems.append("the answers do not parse: %s" % error)
    if parser.error is None and parser.in_chunk:
        problems.append("the answers end inside a chunk: %r" % output[-200:])
    for chunk in chunks:
        if chunk.code is not None:
            answers.append((chunk.transaction_id, chunk.code))
            if chunk.code not in RFC_CODES:
                problems.append("answer %d is no RFC 4975 status" % chunk.code)
            if chunk.transaction_id not in tids:
                problems.append("answer to %r, which we never sent" % chunk.transaction_id)
        elif chunk.method == "REPORT":
            try:
                status = chunk.status
            except MSRPError as error:
                problems.append("REPORT with a bad Status: %s" % error)
                continue
            code = status.code if status is not None else -1
            reports.append((chunk.message_id or "", code, chunk.headers.get("Byte-Range", "")))
            if code not in RFC_CODES or status.namespace != 0:
                problems.append("REPORT status %r is no RFC 4975 status" % (status,))
        else:
            problems.append("the library sent a %s request" % chunk.method)
    return answers, reports, problems


def call(function: Any, *args: Any) -> Any:
    """Run ``function(*args)`` in the reactor's thread and wait for its (Deferred) result."""
    return blockingCallFromThread(reactor, function, *args)


class Wire:
    """The raw peer's end of one connection: a blocking socket in the worker thread."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.output = bytearray()
        self.eof = False
        self.local: Optional[str] = None  # the local URI it was made for
        self.shared = False  # that URI is shared with other connections: not released
        self.usable = True

    def write(self, data: bytes) -> bool:
        """Send ``data``, reading what the library writes meanwhile: a library that stops
        reading until its answers are read (its backpressure) must not deadlock us."""
        view = memoryview(data)
        self.sock.setblocking(False)
        try:
            while view:
                try:
                    view = view[self.sock.send(view):]
                except BlockingIOError:
                    readable, writable, _ = select.select([self.sock], [self.sock], [],
                                                          HANG_SECONDS)
                    if not readable and not writable:
                        return False
                    if readable:
                        self._read_available()
        except OSError:
            return False
        finally:
            self.sock.settimeout(HANG_SECONDS)
        self.sent += len(data)
        return True

    def _read_available(self) -> None:
        """Read what is there to read now (the socket is non-blocking)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.eof = True
                    return
                self.output += data
        except (BlockingIOError, InterruptedError):
            pass

    def read_until(self, pattern: Optional[re.Pattern], start: int = 0) -> bool:
        """Read until ``pattern`` matches the output from ``start`` (True), or the end of
        the stream (False); raise ``socket.timeout`` after HANG_SECONDS of silence."""
        while True:
            if pattern is not None and pattern.search(self.output, start):
                return True
            if self.eof:
                return False
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise
            except OSError:  # reset by the library, or closed by us
                data = b""
            if not data:
                self.eof = True
            self.output += data

    def drain(self) -> None:
        """Read what the library wrote so far, without waiting for more."""
        self.sock.setblocking(False)
        try:
            self._read_available()
        except OSError:
            self.eof = True
        finally:
            self.sock.settimeout(HANG_SECONDS)

    def shut(self) -> None:
        """Close our sending side (the library then sees the connection end)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.usable = False
        self.sock.close()


class Driver:
    """Runs examples against a :class:`Library` from the worker thread."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.bound: Optional[Wire] = None
        #: Messages the examples may have left unfinished on the bound session: past 8 a
        #: new one is bound, so that they do not make later examples' messages get 413.
        self.open_messages = 0
        self.wires: List[Wire] = []
        self.mark = call(library.mark)

    def unbound_wire(self, shared: Optional[str] = None) -> Wire:
        """A new connection, for an example that is its first bytes: to a new local URI,
        or to the one of ``shared`` (see :meth:`Library.expect_binding`)."""
        local = call(self.library.expect_binding, shared)
        wire = Wire(self.library.port)
        wire.local, wire.shared = local, shared is not None
        self.wires.append(wire)
        return wire

    def bound_wire(self, fresh: bool = False, shared: Optional[str] = None) -> Wire:
        """A connection bound to a session, reused while usable; ``fresh`` asks for a new
        one (bound to the local URI of ``shared``, if given)."""
        wire = self.bound
        if fresh or wire is None or not wire.usable or self.open_messages >= 8:
            if wire is not None:
                self.close(wire)
            wire = self.unbound_wire(shared)
            tid, probe = probe_chunk(wire.local or "")
            outcome = self.run(wire, [probe], [tid], probe=False)
            if outcome.codes_for(tid) != [200] or outcome.errors:
                raise AssertionError("binding failed: %r" % (outcome,))
            self.bound, self.open_messages = wire, 0
        return wire

    def run(self, wire: Wire, pieces: Iterable[bytes], tids: List[str], probe: bool = True,
            closing: bool = False, check_answers: bool = True) -> Outcome:
        """Write ``pieces`` one by one, find out when the library is done with them (see
        the module's docstring), and gather what it did. ``tids`` are the transaction ids
        the example may be answered on. ``closing``: close the connection afterwards.
        ``check_answers``: parse and check the answers (else only the logged errors)."""
        start = len(wire.output)
        state = {"closing": False, "in_chunk": False, "stalled": False}
        for piece in pieces:
            if not piece:
                continue
            if not wire.write(piece):
                break
            state = self._consumed(wire)
            if state["closing"] or state["stalled"]:
                break
        tids = list(tids)
        probe_answered = False
        hung = None
        try:
            if state["stalled"]:
                hung = "the library stopped reading (%d of %d bytes read)" % (
                    state["received"], wire.sent)
            elif state["closing"]:
                wire.read_until(None)
            elif state["in_chunk"]:
                closing = True  # a probe would be swallowed: end the connection instead
            elif not probe:
                if tids:  # the example is a request of its own that must be answered
                    probe_answered = wire.read_until(_answer_pattern(tids[-1]), start)
            else:
                tid, raw = probe_chunk(wire.local or "")
                tids.append(tid)
                if wire.write(raw):
                    probe_answered = wire.read_until(_answer_pattern(tid), start)
            if closing and not wire.eof and hung is None:
                wire.shut()
                wire.read_until(None)
        except socket.timeout:
            hung = "no answer to the probe and no close within %ss" % HANG_SECONDS
        if hung is not None or wire.eof:
            closing = True
            wire.close()
        output = bytes(wire.output[start:]) if check_answers else None
        release = wire.local if closing and not wire.shared else None
        report = call(self.library.finish, wire.port, output, self.mark, tids, release,
                      closing)
        self.mark = report["mark"]
        if closing and not report["lost"] and hung is None:
            hung = "the library did not close its side after the peer closed"
        if closing or report["lost"]:
            wire.usable = False
            if wire in self.wires:
                self.wires.remove(wire)
            call(self.library.forget, wire.port)
        return Outcome(answers=report["answers"], reports=report["reports"],
                       delivered=report["delivered"], closed=report["lost"],
                       in_chunk=state["in_chunk"], probe_answered=probe_answered,
                       hung=hung, errors=report["errors"], invalid=report["invalid"],
                       output=bytes(wire.output[start:]))

    def _consumed(self, wire: Wire) -> Dict[str, Any]:
        """The library's state once it read all we wrote. A library that stops reading
        until its answers are read (its own backpressure) is not stalled: what it wrote is
        read meanwhile, and only HANG_SECONDS without progress is a hang."""
        deadline = time.monotonic() + HANG_SECONDS
        while True:
            state = call(self.library.consumed, wire.port, wire.sent, DRAIN_SECONDS)
            if not state["stalled"] or time.monotonic() > deadline:
                return state
            wire.drain()

    def close(self, wire: Wire) -> None:
        if wire.usable:
            self.run(wire, [], [], probe=False, closing=True)
        if wire is self.bound:
            self.bound = None

    def close_all(self) -> None:
        """Close every connection still open (an example may have failed halfway)."""
        for wire in list(self.wires):
            wire.usable = True
            self.close(wire)
        self.bound = None


def _answer_pattern(tid: str) -> re.Pattern:
    return re.compile(b"-------" + re.escape(tid.encode()) + b"[$#+]\r\n")
