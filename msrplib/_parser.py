"""An incremental MSRP chunk parser: bytes in, events out, no I/O (like h11's readers).

Feed bytes in any split; the parser yields

* :class:`~msrplib._wire.MSRPData` for a chunk whose body fitted in
  ``ParserLimits.max_buffered_body`` (the common case: one event per chunk), or
* :class:`ChunkStarted`, then :class:`ChunkData` pieces as they arrive, then
  :class:`ChunkEnded`, for a chunk whose body grew past that limit, so that a 1 GiB chunk
  never sits in memory whole.

The end-line is found with ``bytearray.find`` over the new bytes plus at most the end-line's
length of older ones, so the work is linear in the input whatever the split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, List, Optional, Union

from msrplib._wire import MSRPData
from msrplib.errors import ChunkParseError

__all__ = ["ChunkParser", "ParserLimits", "ChunkStarted", "ChunkData", "ChunkEnded",
           "ParserEvent"]


@dataclass(frozen=True)
class ParserLimits:
    """Bounds that keep a hostile or broken peer from using unbounded memory.

    ``max_line_length``: longest start line or header line, in bytes.
    ``max_header_block``: longest start line plus headers of one chunk, in bytes.
    ``max_buffered_body``: bodies up to this size are delivered whole in the chunk; larger
    ones are streamed as :class:`ChunkData` pieces.
    """

    max_line_length: int = 16 * 1024
    max_header_block: int = 64 * 1024
    max_buffered_body: int = 256 * 1024


@dataclass
class ChunkStarted:
    """A chunk whose body is streamed: ``chunk`` has its headers, no body, no contflag."""

    chunk: MSRPData


@dataclass
class ChunkData:
    """The next piece of the streamed body of ``chunk``."""

    chunk: MSRPData
    data: bytes


@dataclass
class ChunkEnded:
    """The streamed ``chunk`` is complete; its ``contflag`` is now set."""

    chunk: MSRPData


ParserEvent = Union[MSRPData, ChunkStarted, ChunkData, ChunkEnded]

_TID_RE = re.compile(rb"[A-Za-z0-9][A-Za-z0-9.+%=-]{3,31}")
_METHOD_RE = re.compile(rb"[A-Z]+")
_NAME_RE = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_BYTE_RANGE_RE = re.compile(rb" ?[0-9]+-(?:[0-9]+|\*)/(?:[0-9]+|\*) *")
_FLAGS = b"$+#"

_START, _HEADERS, _BODY = range(3)


class ChunkParser:
    """Turns a stream of bytes into MSRP chunks and responses.

    Use ``for event in parser.feed(data): ...`` and run the iterator to its end. Bad input
    raises :class:`~msrplib.errors.ChunkParseError` from the iterator after every event that
    came before it; from then on :attr:`error` is set and :meth:`feed` raises at once.
    """

    def __init__(self, limits: ParserLimits = ParserLimits()) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._state = _START
        self._scan = 0
        self._header_bytes = 0
        self._chunk: Optional[MSRPData] = None
        self._marker = b""
        self._lead = 0
        self._parts: List[bytes] = []
        self._body_len = 0
        self._streaming = False
        #: The error that stopped this parser, or ``None``.
        self.error: Optional[ChunkParseError] = None

    @property
    def in_chunk(self) -> bool:
        """True when part of a chunk has arrived but not its end-line."""
        return self._state != _START or bool(self._buf)

    def feed(self, data: bytes) -> Iterator[ParserEvent]:
        """Add ``data`` and iterate over the events it completes."""
        if self.error is not None:
            raise ChunkParseError("the parser stopped at an earlier error: %s" % self.error)
        self._buf += data
        return self._events()

    def _fail(self, reason: str) -> ChunkParseError:
        self.error = ChunkParseError(reason)
        return self.error

    def _events(self) -> Iterator[ParserEvent]:
        buf = self._buf
        pos = 0
        try:
            while True:
                if self._state == _BODY:
                    events, pos = self._body(pos)
                    if not events:
                        return
                    yield from events
                    continue
                eol = buf.find(b"\r\n", max(pos, self._scan))
                if eol < 0:
                    if len(buf) - pos > self.limits.max_line_length:
                        raise self._fail("line longer than %d bytes"
                                         % self.limits.max_line_length)
                    self._scan = max(pos, len(buf) - 1)
                    return
                line = bytes(buf[pos:eol])
                if len(line) > self.limits.max_line_length:
                    raise self._fail("line longer than %d bytes" % self.limits.max_line_length)
                self._header_bytes += eol + 2 - pos
                if self._header_bytes > self.limits.max_header_block:
                    raise self._fail("header block longer than %d bytes"
                                     % self.limits.max_header_block)
                if self._state == _START:
                    pos = eol + 2
                    self._start_line(line)
                elif not line:
                    self._check_paths()
                    self._state = _BODY
                    self._lead = 2
                    pos = eol
                elif line.startswith(b"-------"):
                    pos = eol + 2
                    yield self._end_without_body(line)
                else:
                    pos = eol + 2
                    self._header_line(line)
        finally:
            del buf[:pos]
            self._scan = max(0, self._scan - pos)

    def _start_line(self, line: bytes) -> None:
        parts = line.split(b" ", 3)
        if len(parts) < 3 or parts[0] != b"MSRP":
            raise self._fail("malformed start line %r" % line[:80])
        tid = parts[1]
        if not _TID_RE.fullmatch(tid):
            raise self._fail("transaction id %r is not 4 to 32 letters, digits or .+%%=-"
                             % tid[:40])
        word = parts[2]
        if len(word) == 3 and word.isdigit():
            comment = parts[3].decode("utf-8", "surrogateescape") if len(parts) == 4 else None
            chunk = MSRPData(tid.decode(), code=int(word), comment=comment, contflag=None)
        elif len(parts) == 3 and _METHOD_RE.fullmatch(word):
            chunk = MSRPData(tid.decode(), method=word.decode(), contflag=None)
        else:
            raise self._fail("malformed start line %r: neither a method nor a status code"
                             % line[:80])
        self._chunk = chunk
        self._marker = b"\r\n-------" + tid
        self._state = _HEADERS

    def _header_line(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if not colon:
            raise self._fail("header line without a colon: %r" % line[:80])
        if not _NAME_RE.fullmatch(name):
            raise self._fail("bad header name %r" % name[:80])
        if value.startswith(b" "):
            value = value[1:]
        lower = name.lower()
        if lower == b"byte-range" and not _BYTE_RANGE_RE.fullmatch(value):
            raise self._fail("Byte-Range %r is not start-end/total numbers or *" % value[:80])
        assert self._chunk is not None
        self._chunk.headers._items.append(
            (name.decode(), lower.decode(), value.decode("utf-8", "surrogateescape")))

    def _check_paths(self) -> None:
        chunk = self._chunk
        assert chunk is not None
        if chunk.method is not None:
            for name in ("To-Path", "From-Path"):
                if name not in chunk.headers:
                    raise self._fail("%s request without %s" % (chunk.method, name))

    def _end_without_body(self, line: bytes) -> MSRPData:
        chunk = self._chunk
        assert chunk is not None
        end = self._marker[2:]
        if not line.startswith(end) or len(line) != len(end) + 1:
            raise self._fail("end-line %r does not match transaction %s"
                             % (line[:80], chunk.transaction_id))
        self._check_paths()
        return self._finish(line[-1:])

    def _finish(self, flag: bytes) -> MSRPData:
        if flag not in (b"$", b"+", b"#"):
            raise self._fail("end-line with unknown continuation flag %r" % flag)
        chunk = self._chunk
        assert chunk is not None
        chunk.contflag = flag.decode()
        self._chunk = None
        self._state = _START
        self._header_bytes = 0
        return chunk

    def _body(self, pos: int) -> tuple[List[ParserEvent], int]:
        """Look for the end-line from ``pos``; return the events and the new position."""
        buf = self._buf
        marker = self._marker
        chunk = self._chunk
        assert chunk is not None
        events: List[ParserEvent] = []
        found = buf.find(marker, pos)
        if found >= 0 and len(buf) >= found + len(marker) + 3:
            end = found + len(marker)
            if buf[end + 1:end + 3] != b"\r\n" and buf[end:end + 1] in (b"$", b"+", b"#"):
                raise self._fail("end-line of %s not followed by CRLF" % chunk.transaction_id)
            body_end = max(found, pos + self._lead)
            piece = bytes(buf[pos + self._lead:body_end])
            flag = bytes(buf[end:end + 1])
            if self._streaming:
                if piece:
                    events.append(ChunkData(chunk, piece))
                self._finish(flag)
                events.append(ChunkEnded(chunk))
            else:
                if self._parts:
                    self._parts.append(piece)
                    piece = b"".join(self._parts)
                chunk.data = piece
                events.append(self._finish(flag))
            self._parts = []
            self._body_len = 0
            self._streaming = False
            self._lead = 0
            return events, end + 3
        safe_end = found if found >= 0 else len(buf) - len(marker) + 1
        start = pos + self._lead
        if safe_end <= start:
            return events, pos
        piece = bytes(buf[start:safe_end])
        self._lead = 0
        if self._streaming:
            events.append(ChunkData(chunk, piece))
        elif self._body_len + len(piece) > self.limits.max_buffered_body:
            self._streaming = True
            events.append(ChunkStarted(chunk))
            events.extend(ChunkData(chunk, part) for part in self._parts + [piece])
            self._parts = []
        else:
            self._parts.append(piece)
            self._body_len += len(piece)
        return events, safe_end
