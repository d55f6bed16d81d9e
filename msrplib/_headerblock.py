"""A chunk's header block, checked and split into :class:`~msrplib._headers.Headers`: the
parser's work on headers, with what was seen before kept so that it is not done again.

The chunks of a session repeat most of their header lines (paths, Content-Type), a
response's whole block, and a request's whole block but for its Message-ID's value. Each
is checked once and kept. Every cache is bounded in count (emptied when full) and in the
length of what it keeps, so a peer sending ever new text costs memory no more than it
would without them. Bad input raises :class:`~msrplib.errors.ChunkParseError`.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional, Tuple, Union

from msrplib._headers import BYTE_RANGE_RE, Headers
from msrplib.errors import ChunkParseError

__all__ = ["read_header_lines", "response_headers", "request_headers", "known_request_shape",
           "RequestShape", "BLOCK_LENGTH", "MESSAGE_ID_LINE"]

_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
#: Header lines seen before, checked and split: the chunks of a session repeat most of
#: theirs (paths, Content-Type, often Byte-Range). Bounded in count and line length.
_LINES: Dict[str, Tuple[str, str, str]] = {}
_LINES_CACHED = 1024
_LINE_CACHED_LENGTH = 256
#: Header names seen before in lines that were not cached (Message-ID's, mostly), checked,
#: with their lower-case form.
_NAMES: Dict[str, str] = {}
_NAMES_CACHED = 256
#: Header blocks of responses seen before, checked, as Headers copied for each response:
#: a session's responses all carry the same paths. Bounded in count and length.
_RESPONSE_BLOCKS: Dict[bytes, Headers] = {}
_BLOCKS_CACHED = 256
#: The longest header block kept, of a response or a request.
BLOCK_LENGTH = 1024
#: Where a request's Message-ID value starts in its block (after the line before it).
MESSAGE_ID_LINE = b"\r\nMessage-ID: "


class RequestShape(NamedTuple):
    """A request header block seen before, less its Message-ID's value: its headers as
    parsed, where among them the Message-ID is, and whether that is the block's first."""

    template: Headers
    message_id_at: int
    first: bool

    def headers(self, message_id: str) -> Headers:
        """Headers of their own for a block of this shape with ``message_id``."""
        headers = self.template.copy()
        headers._items[self.message_id_at] = ("Message-ID", "message-id", message_id)
        if self.first:
            headers.first["message-id"] = message_id
        return headers


#: Request header blocks seen before, by their shape (the block less its Message-ID's
#: value): the chunks of a session differ in little more than their Message-ID. Bounded
#: like the responses' blocks.
_REQUEST_BLOCKS: Dict[bytes, RequestShape] = {}

#: A request block split around its Message-ID's value: what comes before the value, what
#: comes after it up to the body (the blank line included), and the block's shape.
SplitBlock = Tuple[bytes, bytes, RequestShape]


def read_header_lines(headers: Headers, block: Union[bytes, bytearray], max_line: int,
                      tid: str) -> Headers:
    """Check and keep in ``headers`` the header lines of ``block`` (whole lines joined by
    CRLF) of transaction ``tid``, none longer than ``max_line``; return ``headers``."""
    if len(block) > max_line:
        for raw_line in block.split(b"\r\n"):
            if len(raw_line) > max_line:
                raise ChunkParseError("line longer than %d bytes" % max_line)
    items = headers._items
    first = headers.first
    known = _LINES.get
    for line in block.decode("utf-8", "surrogateescape").split("\r\n"):
        header = known(line)
        if header is None:
            header = _header_line(line, tid)
        items.append(header)
        if header[1] not in first:
            first[header[1]] = header[2]
    return headers


def _header_line(line: str, tid: str) -> Tuple[str, str, str]:
    """One header line, checked: ``(name, lower-case name, value)``."""
    name, colon, value = line.partition(":")
    if not colon:
        if line.startswith("-------"):
            raise ChunkParseError("end-line %r does not match transaction %s"
                                  % (line[:80], tid))
        raise ChunkParseError("header line without a colon: %r" % line[:80])
    lower = _NAMES.get(name)
    if lower is None:
        if not _NAME_RE.fullmatch(name):
            raise ChunkParseError("bad header name %r" % name[:80])
        lower = name.lower()
        if len(_NAMES) >= _NAMES_CACHED:
            _NAMES.clear()
        _NAMES[name] = lower
    if value[:1] == " ":
        value = value[1:]
    if lower == "byte-range" and not BYTE_RANGE_RE.fullmatch(value.strip()):
        raise ChunkParseError("Byte-Range %r is not start-end/total numbers or *"
                              % value[:80])
    header = (name, lower, value)
    if len(line) <= _LINE_CACHED_LENGTH and lower != "message-id":  # those never repeat
        if len(_LINES) >= _LINES_CACHED:
            _LINES.clear()
        _LINES[line] = header
    return header


def response_headers(block: bytes, max_line: int, tid: str) -> Headers:
    """:func:`read_header_lines` for a response, whose header block (its paths) is the
    same for every response of a session: parsed once, then copied."""
    known = _RESPONSE_BLOCKS.get(block)
    if known is not None:
        return known.copy()
    headers = read_header_lines(Headers(), block, max_line, tid)
    if len(block) <= BLOCK_LENGTH:
        if len(_RESPONSE_BLOCKS) >= _BLOCKS_CACHED:
            _RESPONSE_BLOCKS.clear()
        _RESPONSE_BLOCKS[block] = headers.copy()
    return headers


def known_request_shape(shape: bytes) -> Optional[RequestShape]:
    """The request block shape ``shape`` (a block less its Message-ID's value), if one of
    that shape was parsed before and is still kept."""
    return _REQUEST_BLOCKS.get(shape)


def request_headers(block: bytes, max_line: int, tid: str
                    ) -> Tuple[Headers, Optional[SplitBlock]]:
    """:func:`read_header_lines` for a request: a block of the same shape as one seen
    before (its Message-ID's value apart) is copied from it, with only the new Message-ID
    to fill in. Also the block split around its Message-ID's value (see SplitBlock, with
    the blank line after it), when it has one and holds nothing that might be taken for
    an end-line: what ``ChunkParser`` compares the next request with."""
    at = block.find(MESSAGE_ID_LINE)
    if at < 0 or len(block) > BLOCK_LENGTH:
        return read_header_lines(Headers(), block, max_line, tid), None
    start = at + len(MESSAGE_ID_LINE)
    end = block.find(b"\r\n", start)
    if end < 0:
        end = len(block)
    shape = block[:start] + block[end:]
    known = _REQUEST_BLOCKS.get(shape)
    if known is None:
        headers = read_header_lines(Headers(), block, max_line, tid)
        if len(_REQUEST_BLOCKS) >= _BLOCKS_CACHED:
            _REQUEST_BLOCKS.clear()
        index = block.count(b"\r\n", 0, at) + 1
        first = all(item[1] != "message-id" for item in headers._items[:index])
        known = _REQUEST_BLOCKS[shape] = RequestShape(headers.copy(), index, first)
    elif end - at - 2 > max_line:
        raise ChunkParseError("line longer than %d bytes" % max_line)
    else:
        headers = known.headers(block[start:end].decode("utf-8", "surrogateescape"))
    if b"-------" in shape:
        return headers, None
    return headers, (block[:start], block[end:] + b"\r\n\r\n", known)
