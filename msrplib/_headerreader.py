"""Reading a chunk's header block into :class:`~msrplib._headers.Headers`, for one parser.

:class:`HeaderReader` checks each line (RFC 4975's ``hname ":" SP hval``, no line longer
than the parser's limit, no bare CR or LF) and splits it. The chunks of a session repeat
their header blocks: every response carries the same paths, and every message the same
block but for its Message-ID's value. A reader remembers the last block of each kind it
split, and recognises a block that repeats it without splitting it again: what it then
gives is exactly what splitting would give (``tests/test_parser_properties.py`` holds it
to that), and it is the reader's own, so nothing another connection sent changes it.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple, Union

from msrplib._headers import Headers
from msrplib.errors import ChunkParseError

__all__ = ["HeaderReader", "RequestShape", "REMEMBERED_LENGTH", "HEADER_NAME_RE"]

#: RFC 4975's ``hname``: a letter, then token characters.
HEADER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*")

#: The names of RFC 4975's and RFC 4976's headers, with their lower-case form: valid
#: names all, so a line that starts with one needs no other check of its name.
_KNOWN_NAMES = {name: name.lower() for name in (
    "To-Path", "From-Path", "Message-ID", "Byte-Range", "Content-Type", "Success-Report",
    "Failure-Report", "Status", "Use-Path", "Expires", "Min-Expires", "Max-Expires",
    "WWW-Authenticate", "Authorization", "Authentication-Info", "Content-ID",
    "Content-Description", "Content-Disposition", "Use-Nickname")}

#: The lines whose values differ from message to message of a session, as they begin
#: (after the CRLF before them): a request block is remembered without their values.
_VARYING = (b"\r\nMessage-ID: ", b"\r\nByte-Range: ")

#: The longest header block a reader remembers.
REMEMBERED_LENGTH = 1024

_Buffer = Union[bytes, bytearray]
_Header = Tuple[str, str, str]


class RequestShape:
    """A request header block split before, cut around the values of its varying lines
    (``_VARYING``, the first of each): what comes before the first value, and what comes
    after it up to the body (the blank line included); when there is a second value,
    what comes between the two and after the second. Messages of one size repeat the
    whole block but for the first value; messages of other sizes differ in the second.
    With the headers split from the block, and where each value goes among them."""

    __slots__ = ("before", "suffix", "between", "after", "headers", "slots", "line_feeds")

    def __init__(self, block: bytes, headers: Headers) -> None:
        cuts = []
        for line_start in _VARYING:
            at = block.find(line_start)
            if at >= 0:
                value = at + len(line_start)
                value_end = block.find(b"\r\n", value)
                cuts.append((value, len(block) if value_end < 0 else value_end))
        cuts.sort()
        items = headers._items
        slots = []
        for value, _ in cuts:
            index = block.count(b"\r\n", 0, value)
            name, lower, _ = items[index]
            slots.append((index, name, lower, all(item[1] != lower for item in items[:index])))
        (value, value_end), *rest = cuts
        self.before = block[:value]
        self.suffix = block[value_end:] + b"\r\n\r\n"
        self.between: Optional[bytes] = None
        self.after = b""
        if rest:
            [(other, other_end)] = rest
            self.between = block[value_end:other]
            self.after = block[other_end:] + b"\r\n\r\n"
        self.headers = headers.copy()
        self.slots = tuple(slots)
        #: LFs in a block of this shape (one per line but the last).
        self.line_feeds = block.count(b"\n")

    @staticmethod
    def of(block: bytes, headers: Headers) -> Optional[RequestShape]:
        """The shape of ``block`` (split into ``headers``), if it has a varying line."""
        if all(line_start not in block for line_start in _VARYING):
            return None
        return RequestShape(block, headers)

    def match(self, buf: bytes, head: int, value_max: int) -> Optional[Tuple[int, Headers]]:
        """When ``buf`` holds, at ``head``, a block of this shape with values of at most
        ``value_max`` bytes and no CR or LF in them, followed by the blank line: where the
        blank line is, and the block's headers."""
        if not buf.startswith(self.before, head):
            return None
        value = head + len(self.before)
        value_end = buf.find(b"\r", value, value + value_max + 1)
        if value_end < 0:
            return None
        other = -1
        if buf.startswith(self.suffix, value_end):
            blank = value_end + len(self.suffix) - 4
        else:
            between = self.between
            if between is None or not buf.startswith(between, value_end):
                return None
            other = value_end + len(between)
            other_end = buf.find(b"\r", other, other + value_max + 1)
            if other_end < 0 or not buf.startswith(self.after, other_end):
                return None
            blank = other_end + len(self.after) - 4
        if buf.count(b"\n", head, blank) != self.line_feeds:
            return None  # a value holds an LF: left to the general path's error
        slots = self.slots
        index, name, lower, first = slots[0]
        text = buf[value:value_end].decode("utf-8", "surrogateescape")
        headers = Headers.__new__(Headers)
        headers._items = items = list(self.headers._items)
        headers.first = dict(self.headers.first)
        items[index] = (name, lower, text)
        if first:
            headers.first[lower] = text
        if other >= 0:
            index, name, lower, first = slots[1]
            text = buf[other:other_end].decode("utf-8", "surrogateescape")
            items[index] = (name, lower, text)
            if first:
                headers.first[lower] = text
        return blank, headers


def _has_bare_cr_or_lf(block: _Buffer) -> bool:
    """Whether ``block`` holds a CR or an LF that is not part of a CRLF."""
    crlf = block.count(b"\r\n")
    return block.count(b"\r") != crlf or block.count(b"\n") != crlf


def _rememberable(block: bytes) -> bool:
    """Whether ``block`` may be recognised without a search: short, and with nothing in
    it that could start an end-line or a blank line."""
    return len(block) <= REMEMBERED_LENGTH and b"-------" not in block \
        and b"\r\n\r\n" not in block


class HeaderReader:
    """Checks and splits the header blocks of one parser, keeping to its line limit, and
    recognises the blocks that repeat the last one of their kind (see the module)."""

    #: Whether to remember blocks at all: only speed depends on it (the tests compare both
    #: ways, ``bench/messages.py --split-every-block`` measures the difference).
    remembers = True

    def __init__(self, max_line_length: int) -> None:
        self.max_line_length = max_line_length
        #: The last response block without a body split whole, and its headers.
        self.response_block: Optional[Tuple[bytes, Headers]] = None
        #: The shape of the last request block with a body after it split whole.
        self.request_shape: Optional[RequestShape] = None

    # Splitting.

    def read_block(self, buf: _Buffer, start: int, end: int, tid: str,
                   request: Optional[bool]) -> Headers:
        """The headers of the whole header block ``buf[start:end]`` (its lines joined by
        CRLF, without the CRLF after the last), checked. ``request`` says what to remember
        it as: True for a request whose body follows the block, False for a response with
        no body, ``None`` for neither."""
        block = bytes(buf[start:end])
        headers = self.read_lines(Headers(), block, tid)
        if self.remembers and request is not None and _rememberable(block):
            if request:
                self.request_shape = RequestShape.of(block, headers)
            else:
                self.response_block = (block, headers.copy())
        return headers

    def read_lines(self, headers: Headers, block: bytes, tid: str) -> Headers:
        """Add the lines of ``block`` (whole lines joined by CRLF) to ``headers``."""
        if _has_bare_cr_or_lf(block):
            raise ChunkParseError("header block of transaction %s holds a bare CR or LF" % tid)
        max_line = self.max_line_length
        if len(block) > max_line:
            for raw_line in block.split(b"\r\n"):
                if len(raw_line) > max_line:
                    raise ChunkParseError("line longer than %d bytes" % max_line)
        items = headers._items
        first = headers.first
        for line in block.decode("utf-8", "surrogateescape").split("\r\n"):
            header = _header_line(line, tid)
            items.append(header)
            if header[1] not in first:
                first[header[1]] = header[2]
        return headers


def _header_line(line: str, tid: str) -> _Header:
    """One header line, checked: ``(name, lower-case name, value)``."""
    name, colon, value = line.partition(":")
    lower = _KNOWN_NAMES.get(name)
    if lower is None or not colon:
        if not colon:
            if line.startswith("-------"):
                raise ChunkParseError("end-line %r does not match transaction %s"
                                      % (line[:80], tid))
            raise ChunkParseError("header line without a colon: %r" % line[:80])
        if not HEADER_NAME_RE.fullmatch(name):
            raise ChunkParseError("bad header name %r" % name[:80])
        lower = name.lower()
    if value[:1] == " ":
        value = value[1:]
    return (name, lower, value)
