"""MSRP chunks (requests and responses) and their serialisation (RFC 4975 section 7)."""

from __future__ import annotations

import functools
import os
from typing import Dict, List, Optional, Tuple

from msrplib._headers import (AuthParams, ByteRange, HeaderField, Headers, Status,
                              format_path, parse_auth_params, parse_byte_range, parse_int,
                              parse_path, parse_quoted, parse_status, quote)
from msrplib._uri import URI

__all__ = ["MSRPData", "make_response", "encode_response", "make_report", "new_transaction_id",
           "new_message_id", "end_line", "RESPONSE_COMMENTS", "CONTINUATION_FLAGS",
           "MAX_LINE_LENGTH", "ECHOED_URI_MAX_LENGTH", "encode_relayed"]

#: ``$`` ends a message, ``+`` says more chunks follow, ``#`` aborts the message.
CONTINUATION_FLAGS = frozenset("$+#")

#: The comment each response code gets when none is given (RFC 4975 section 10, RFC 4976).
RESPONSE_COMMENTS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    408: "Request Timeout",
    413: "Message Too Large",
    415: "Unsupported Media Type",
    423: "Interval Out-of-Bounds",
    481: "No Such Session",
    501: "Not Implemented",
    506: "Wrong Session",
}


class _RandomHex:
    """Hex digits from the operating system's random source, fetched 4 KiB at a time so
    that one system call serves hundreds of ids. A forked child starts afresh, so parent
    and child never hand out the same ids. Like the rest of msrplib, for the reactor thread.
    """

    FETCH = 4096

    def __init__(self) -> None:
        self._digits = ""
        self._used = 0

    def take(self, count: int) -> str:
        """``count`` fresh random hex digits."""
        used = self._used
        if used + count > len(self._digits):
            self._digits, used = os.urandom(self.FETCH).hex(), 0
        self._used = used + count
        return self._digits[used:used + count]

    def forget(self) -> None:
        self._digits, self._used = "", 0


_random_hex = _RandomHex()
os.register_at_fork(after_in_child=_random_hex.forget)


def new_transaction_id(digits: int = 12) -> str:
    """A fresh random transaction id of ``digits`` hex digits (RFC 4975 allows 4 to 32).

    It comes from the operating system's random source: a streamed body is not searched
    for its end-line, so the id must be one nobody can guess.
    """
    return _random_hex.take(digits)


def new_message_id() -> str:
    """A fresh random Message-ID."""
    return _random_hex.take(16)


#: Where each header goes on the wire: To-Path, From-Path, the others in their order, the
#: other Content-* headers, Content-Type last (RFC 4975 section 7). Learnt per name.
_WIRE_GROUPS: Dict[str, int] = {"to-path": 0, "from-path": 1, "content-type": 4}


def _wire_group(lower: str) -> int:
    group = _WIRE_GROUPS.get(lower)
    if group is None:
        group = 3 if lower.startswith("content-") else 2
        if len(_WIRE_GROUPS) < 256 and len(lower) <= 64:
            _WIRE_GROUPS[lower] = group
    return group


def _text(value: str) -> str:
    return value


def _auth_info(text: str) -> AuthParams:
    return parse_auth_params(text, with_scheme=False)


def _start_line(tid: str, method: Optional[str], code: Optional[int],
                comment: Optional[str]) -> str:
    """A chunk's start line, with its CRLF."""
    if method is not None:
        return f"MSRP {tid} {method}\r\n"
    return f"MSRP {tid} {_status_text(code, comment)}"


def _status_text(code: Optional[int], comment: Optional[str]) -> str:
    """What follows the transaction id in a response's start line, with the CRLF."""
    if comment:
        return f"{code or 0:03d} {comment}\r\n"
    return f"{code or 0:03d}\r\n"


class MSRPData:
    """One MSRP request chunk (``method`` set) or response (``code`` set).

    ``headers`` keeps every header in order; the typed attributes below (``to_path``,
    ``byte_range``, ...) read and write the matching header. ``data`` is the body and
    ``contflag`` the continuation flag of the end-line.

    A chunk made by ``MSRPTransport.read_chunk(size)`` from part of a larger one has a
    ``segment`` number (1, 2, ...); whole chunks have ``segment`` ``None``.
    """

    __slots__ = ("transaction_id", "method", "code", "comment", "headers", "data",
                 "contflag", "segment")

    to_path: HeaderField[List[URI]] = HeaderField("To-Path", parse_path, format_path)
    from_path: HeaderField[List[URI]] = HeaderField("From-Path", parse_path, format_path)
    use_path: HeaderField[List[URI]] = HeaderField("Use-Path", parse_path, format_path)
    message_id: HeaderField[str] = HeaderField("Message-ID", _text, str)
    byte_range: HeaderField[ByteRange] = HeaderField("Byte-Range", parse_byte_range, str)
    status: HeaderField[Status] = HeaderField("Status", parse_status, str)
    success_report: HeaderField[str] = HeaderField("Success-Report", _text, str)
    failure_report: HeaderField[str] = HeaderField("Failure-Report", _text, str)
    content_type: HeaderField[str] = HeaderField("Content-Type", _text, str)
    expires: HeaderField[int] = HeaderField("Expires", parse_int, str)
    min_expires: HeaderField[int] = HeaderField("Min-Expires", parse_int, str)
    max_expires: HeaderField[int] = HeaderField("Max-Expires", parse_int, str)
    www_authenticate: HeaderField[AuthParams] = HeaderField(
        "WWW-Authenticate", parse_auth_params, str)
    authorization: HeaderField[AuthParams] = HeaderField(
        "Authorization", parse_auth_params, str)
    authentication_info: HeaderField[AuthParams] = HeaderField(
        "Authentication-Info", _auth_info, str)
    use_nickname: HeaderField[str] = HeaderField("Use-Nickname", parse_quoted, quote)

    def __init__(self, transaction_id: str, method: Optional[str] = None,
                 code: Optional[int] = None, comment: Optional[str] = None,
                 headers: Optional[Headers] = None, data: bytes = b"",
                 contflag: Optional[str] = "$") -> None:
        if (method is None) == (code is None):
            raise ValueError("a chunk has either a method (request) or a code (response)")
        self.transaction_id = transaction_id
        self.method = method
        self.code = code
        self.comment = comment
        self.headers = Headers() if headers is None else headers
        self.data = data
        self.contflag = contflag
        self.segment: Optional[int] = None

    @property
    def is_request(self) -> bool:
        """True for a request (``SEND``, ``REPORT``, ``AUTH``, ...), false for a response."""
        return self.method is not None

    def __repr__(self) -> str:
        # A peer's comment may hold anything: repr() escapes it for a log line.
        what = self.method if self.method is not None else "%s %r" % (self.code, self.comment)
        return "<MSRPData %s %s, %d body bytes, %s>" % (
            self.transaction_id, what, len(self.data), self.contflag)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MSRPData):
            return NotImplemented
        return (self.transaction_id, self.method, self.code, self.comment, self.headers,
                self.data, self.contflag) == (
            other.transaction_id, other.method, other.code, other.comment, other.headers,
            other.data, other.contflag)

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> MSRPData:
        """A copy with its own headers (the body bytes are shared: they are immutable)."""
        clone = MSRPData(self.transaction_id, self.method, self.code, self.comment,
                         self.headers.copy(), self.data, self.contflag)
        clone.segment = self.segment
        return clone

    def encode_start(self, check_body: bool = True) -> bytes:
        """The start line and headers, up to and including the blank line before a body.

        To-Path and From-Path come first, then other headers in order, then the
        ``Content-*`` headers with ``Content-Type`` last (RFC 4975 section 7). If the body
        contains this chunk's end-line, ``transaction_id`` is replaced by a fresh one first,
        so read it after encoding. ``check_body=False`` skips that search, which reads the
        whole body: for a chunk whose id was just drawn at random, as a streamed body
        relies on.
        """
        tid = self.transaction_id
        if check_body and self.data and ("-------" + tid).encode() in self.data:
            tid = self.transaction_id = new_transaction_id()
            while ("-------" + tid).encode() in self.data:
                tid = self.transaction_id = new_transaction_id()
        lines = [_start_line(tid, self.method, self.code, self.comment)]
        _add_header_lines(lines, self.headers._items)
        if self.data or "content-type" in self.headers.first:
            lines.append("\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape")

    def encode_end(self) -> bytes:
        """The end-line (with the CRLF that ends a body, if there is one)."""
        if self.data or "content-type" in self.headers.first:
            return end_line(self.transaction_id, self.contflag or "$")
        return ("-------%s%s\r\n" % (self.transaction_id, self.contflag)).encode()

    def encode_parts(self, check_body: bool = True) -> Tuple[bytes, bytes, bytes]:
        """``(start, body, end)``: write them in order; the body is not copied.

        ``check_body`` is as for :meth:`encode_start`."""
        start = self.encode_start(check_body)
        return start, self.data, self.encode_end()

    def encode(self) -> bytes:
        """The whole chunk as bytes on the wire."""
        return b"".join(self.encode_parts())


def _add_header_lines(lines: List[str], items: List[Tuple[str, str, str]]) -> None:
    """Append the header ``items`` (name, lower-case name, value) to ``lines`` as header
    lines in wire order: To-Path, From-Path, the others in their order, the other
    ``Content-*`` headers, ``Content-Type`` last (RFC 4975 section 7)."""
    start = len(lines)
    groups = _WIRE_GROUPS
    previous = 0
    for name, lower, value in items:
        group = groups.get(lower)
        if group is None:
            group = _wire_group(lower)
        if group < previous:  # out of wire order (rare): sort, keeping each group's order
            lines[start:] = ["%s: %s\r\n" % (name, value) for name, _, value
                             in sorted(items, key=lambda item: _wire_group(item[1]))]
            return
        previous = group
        lines.append("%s: %s\r\n" % (name, value))


def encode_relayed(request: MSRPData, transaction_id: str, to_path: str,
                   from_path: str) -> Tuple[bytes, bytes]:
    """The head and end-line of ``request`` as a relay forwards it, with
    ``transaction_id`` and new To-Path and From-Path values, its other headers as they
    were; its body goes between them unchanged. What ``encode_parts(False)`` of such a
    copy gives, without building the copy: ``transaction_id`` must be freshly drawn
    (:func:`new_transaction_id`), as the body is not searched for its end-line."""
    items = [item if item[1] != "to-path" and item[1] != "from-path"
             else (item[0], item[1], to_path if item[1] == "to-path" else from_path)
             for item in request.headers._items]
    lines = [f"MSRP {transaction_id} {request.method}\r\n"]
    _add_header_lines(lines, items)
    flag = request.contflag or "$"
    if request.data or "content-type" in request.headers.first:
        lines.append("\r\n")
        end = end_line(transaction_id, flag)
    else:
        end = f"-------{transaction_id}{flag}\r\n".encode()
    return "".join(lines).encode("utf-8", "surrogateescape"), end


def end_line(transaction_id: str, contflag: str) -> bytes:
    """The end-line after a chunk's body, with the CRLF that ends the body before it."""
    return f"\r\n-------{transaction_id}{contflag}\r\n".encode()


def make_response(request: MSRPData, code: int, comment: Optional[str] = None) -> MSRPData:
    """The response to ``request``: same transaction id, addressed back one hop.

    Its To-Path is the first URI of the request's From-Path (the previous hop) and its
    From-Path the first URI of the request's To-Path (us), RFC 4975 section 7.2.
    """
    headers = Headers()
    first = request.headers.first
    for name, value in _response_paths(first.get("from-path"), first.get("to-path")):
        headers.add(name, value)
    if comment is None:
        comment = RESPONSE_COMMENTS.get(code)
    return MSRPData(request.transaction_id, code=code, comment=comment, headers=headers)


#: The longest start line or header line a parser takes unless told otherwise
#: (``ParserLimits.max_line_length``); the lines this library writes keep within it.
MAX_LINE_LENGTH = 16 * 1024

#: The longest URI a response echoes from its request's paths. "From-Path: " is three
#: bytes longer than a bare "To-Path:", so echoing a request's longest line whole would
#: make an answer its peer's parser cannot take; a longer URI is left out of the answer.
ECHOED_URI_MAX_LENGTH = MAX_LINE_LENGTH - len("From-Path: ")


def _response_paths(from_path: Optional[str], to_path: Optional[str]
                    ) -> List[Tuple[str, str]]:
    """A response's path headers, from its request's From-Path and To-Path values. A path
    of spaces names nobody, and an overlong first URI is not repeated: the answer goes
    without that header."""
    paths = []
    for name, path in (("To-Path", from_path), ("From-Path", to_path)):
        first = path.split(None, 1) if path else None
        if first and len(first[0]) <= ECHOED_URI_MAX_LENGTH:
            paths.append((name, first[0]))
    return paths


#: How many kinds of response (path pair, code and comment) keep their encoded text.
RESPONSE_TEXTS_CACHED = 256


@functools.lru_cache(maxsize=RESPONSE_TEXTS_CACHED)
def _response_text(from_path: Optional[str], to_path: Optional[str], code: int,
                   comment: Optional[str]) -> str:
    """What follows ``MSRP <transaction id> `` in a response, up to its end-line: its code,
    comment and path lines, the same for every answer a session gives of that code."""
    if comment is None:
        comment = RESPONSE_COMMENTS.get(code)
    paths = "".join("%s: %s\r\n" % line for line in _response_paths(from_path, to_path))
    return _status_text(code, comment) + paths


#: The longest path pair a response's text is kept for (see _response_text): a peer that
#: sends ever new long paths would otherwise fill the process's memory.
RESPONSE_PATHS_KEPT_LENGTH = 512


def encode_response(request: MSRPData, code: int, comment: Optional[str] = None) -> bytes:
    """``make_response(request, code, comment).encode()`` without building the response:
    how a session answers each chunk it receives (a third of the work otherwise)."""
    first = request.headers.first
    tid = request.transaction_id
    from_path, to_path = first.get("from-path"), first.get("to-path")
    if len(from_path or "") + len(to_path or "") <= RESPONSE_PATHS_KEPT_LENGTH:
        text = _response_text(from_path, to_path, code, comment)
    else:
        text = _response_text.__wrapped__(from_path, to_path, code, comment)
    return f"MSRP {tid} {text}-------{tid}$\r\n".encode("utf-8", "surrogateescape")


def make_report(chunk: MSRPData, code: int, comment: Optional[str] = None,
                byte_range: Optional[ByteRange] = None) -> MSRPData:
    """A REPORT on the message ``chunk`` belongs to (RFC 4975 section 7.1.2).

    It goes back end to end: To-Path is the chunk's whole From-Path, From-Path is our URI
    (the last of the chunk's To-Path). ``byte_range`` defaults to the chunk's own.
    """
    if comment is None:
        comment = RESPONSE_COMMENTS.get(code)
    headers = Headers()
    headers.add("To-Path", chunk.headers["From-Path"])
    headers.add("From-Path", chunk.headers["To-Path"].split()[-1])
    message_id = chunk.headers.get("Message-ID")
    if message_id is not None:
        headers.add("Message-ID", message_id)
    if byte_range is not None:
        headers.add("Byte-Range", str(byte_range))
    elif "Byte-Range" in chunk.headers:
        headers.add("Byte-Range", chunk.headers["Byte-Range"])
    headers.add("Status", str(Status(code, comment)))
    return MSRPData(new_transaction_id(), method="REPORT", headers=headers)
