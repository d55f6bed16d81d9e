"""What the relay writes when it forwards a chunk, and what it keeps of it meanwhile: the
copy with new paths, the pieces of one cut to a next hop's size, the headers a failure
REPORT needs, and the URIs it reads, parsed once.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from msrplib._chunk import MSRPData, new_transaction_id
from msrplib._headers import Headers
from msrplib._parser import ParserLimits
from msrplib._uri import URI, parse_uri
from msrplib.errors import MSRPError

__all__ = ["SHARED_HEADERS_WEIGHT", "URI_TEXTS_KEPT_LENGTH", "HEADER_WEIGHT", "ENTRY_WEIGHT",
           "URICache", "head_fits", "report_headers", "uri_place", "pieces", "copy_request"]


#: The longest URI text :class:`URICache` keeps: longer ones are parsed each time.
URI_TEXTS_KEPT_LENGTH = 256


class URICache:
    """URIs parsed by their text: a session's chunks repeat the same paths, so each URI
    the relay reads (the first one or two of a To-Path) is parsed once. Holds at most
    ``size`` short texts (then starts again): a peer's ever new URIs cost it no memory."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._parsed: Dict[str, URI] = {}

    def get(self, text: str) -> URI:
        """The URI of ``text``; ``MSRPError`` (400) for one that does not parse."""
        parsed = self._parsed.get(text)
        if parsed is None:
            try:
                parsed = parse_uri(text)
            except MSRPError as error:
                raise MSRPError(str(error)[:200], 400, "Bad Request") from None
            if len(text) <= URI_TEXTS_KEPT_LENGTH:
                if len(self._parsed) >= self.size:
                    self._parsed.clear()
                self._parsed[text] = parsed
        return parsed



def head_fits(head: bytes, limits: ParserLimits) -> bool:
    """Whether ``head`` (a chunk's start line and headers, as the relay writes them) is
    one a parser with ``limits`` takes: no line longer than ``max_line_length`` and the
    whole within ``max_header_block``. What the relay writes can be longer than what it
    read: its URI goes in front of the From-Path, and every header goes out as ``Name:
    value`` however it came (``Name:value`` is one byte shorter); a next hop's parser
    would close the connection, and every session on it would end."""
    if len(head) <= limits.max_line_length:
        return True  # no line of it can be longer (the usual case)
    return len(head) <= limits.max_header_block and \
        all(len(line) <= limits.max_line_length for line in head.split(b"\r\n"))


#: Headers of a chunk awaiting its answer up to this weight are kept as they are (no copy);
#: heavier ones are cut down to what a failure REPORT needs.
SHARED_HEADERS_WEIGHT = 4096

#: What one parsed header weighs in memory besides its value (its name twice, the
#: strings' and tuple's overheads, its place in the lookup table), and what an awaited
#: answer weighs besides its headers (the chunk, its entry, its transaction id).
HEADER_WEIGHT = 320
ENTRY_WEIGHT = 640


def report_headers(headers: Headers, head_length: int) -> Tuple[Headers, int]:
    """What a failure REPORT on a chunk needs of its ``headers``, and its weight in memory
    (roughly), given the length of the chunk's head as forwarded: the headers themselves
    when they are light (no copy), else a copy of those few, with the last URI of the
    To-Path only."""
    weight = ENTRY_WEIGHT + head_length + HEADER_WEIGHT * len(headers._items)
    if weight <= SHARED_HEADERS_WEIGHT:
        return headers, weight
    kept = Headers()
    for name in ("To-Path", "From-Path", "Message-ID", "Byte-Range", "Failure-Report"):
        value = headers.get(name)
        if value is not None:
            kept.add(name, value.split()[-1] if name == "To-Path" and value.split() else value)
    weight = ENTRY_WEIGHT + sum(len(value) for _, _, value in kept._items) + \
        HEADER_WEIGHT * len(kept)
    return kept, weight


def uri_place(uri: URI) -> Tuple[Optional[str], int, bool, str]:
    """What tells two of our URIs apart as places: host, port, TLS and transport."""
    return uri.host, uri.effective_port, uri.use_tls, uri.transport.lower()


def pieces(chunk: MSRPData, limit: int) -> List[MSRPData]:
    """``chunk``, or chunks of at most ``limit`` body bytes that carry it in order: each
    with its part of the Byte-Range, ``+`` but the last, which keeps ``chunk``'s flag."""
    data = chunk.data
    if len(data) <= limit or chunk.method != "SEND":
        return [chunk]
    try:
        byte_range = chunk.byte_range
    except MSRPError:
        byte_range = None
    start = byte_range.start if byte_range is not None else 1
    total = byte_range.total if byte_range is not None else None
    pieces = []
    for offset in range(0, len(data), limit):
        part = data[offset:offset + limit]
        headers = chunk.headers.copy()
        first = start + offset
        headers["Byte-Range"] = "%d-%d/%s" % (first, first + len(part) - 1,
                                              "*" if total is None else total)
        pieces.append(MSRPData(new_transaction_id(), method="SEND", headers=headers,
                               data=part, contflag=chunk.contflag
                               if offset + limit >= len(data) else "+"))
    return pieces


def copy_request(request: MSRPData, to_path: str, from_path: str) -> MSRPData:
    """``request`` with new paths (their text) and a transaction id of its own, freshly
    drawn, for the next hop."""
    headers = request.headers.replaced({"to-path": to_path, "from-path": from_path})
    return MSRPData(new_transaction_id(), method=request.method, headers=headers,
                    data=request.data, contflag=request.contflag)

