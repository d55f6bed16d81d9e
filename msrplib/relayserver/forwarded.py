"""What the relay writes when it forwards a chunk, and what it keeps of it meanwhile: the
copy with new paths, the pieces of one cut to a next hop's size, the headers a failure
REPORT needs, and the URIs it reads, parsed once.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from msrplib._chunk import MAX_LINE_LENGTH, MSRPData, new_transaction_id
from msrplib._headers import Headers
from msrplib._uri import URI, parse_uri
from msrplib.errors import MSRPError

__all__ = ["MAX_FROM_PATH_LENGTH", "SHARED_HEADERS_WEIGHT", "URI_TEXTS_KEPT_LENGTH",
           "URICache", "report_headers", "uri_place", "pieces", "copy_request"]


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



#: The longest From-Path a relay forwards (ours in front included): a longer line would be
#: refused by the next hop's parser, which closes the connection.
MAX_FROM_PATH_LENGTH = MAX_LINE_LENGTH - len("From-Path: ")

#: Headers of a chunk awaiting its answer up to this weight are kept as they are (no copy);
#: heavier ones are cut down to what a failure REPORT needs.
SHARED_HEADERS_WEIGHT = 4096

#: What one header weighs besides its value, roughly: its name and its place.
_HEADER_WEIGHT = 64


def report_headers(headers: Headers) -> Tuple[Headers, int]:
    """What a failure REPORT on a chunk needs of its ``headers``, and its weight in bytes
    (roughly): the headers themselves when they are light (no copy), else a copy of those
    few, with the last URI of the To-Path only."""
    items = headers._items
    weight = sum(len(value) for _, _, value in items) + _HEADER_WEIGHT * len(items)
    if weight <= SHARED_HEADERS_WEIGHT:
        return headers, weight
    kept = Headers()
    for name in ("To-Path", "From-Path", "Message-ID", "Byte-Range", "Failure-Report"):
        value = headers.get(name)
        if value is not None:
            kept.add(name, value.split()[-1] if name == "To-Path" and value.split() else value)
    weight = sum(len(value) for _, _, value in kept._items) + _HEADER_WEIGHT * len(kept)
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

