"""The path checks of RFC 4975 section 7.3, with RFC 4976's relays, in one place.

A request is for us when its To-Path is our URI alone (a relay in front of us took its
own off); it is from our peer when its From-Path ends with the peer's path (the relays in
front of the peer each put theirs before it). Everyone that checks paths uses these: a
bound connection (:class:`SessionPaths`), a relay session waiting for its peer's first
chunk, and ``MSRPServer`` sorting first requests among its sessions.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from msrplib._chunk import MSRPData
from msrplib._headers import format_path
from msrplib._uri import URI
from msrplib.errors import MSRPError

__all__ = ["read_paths", "ends_with", "check_paths", "request_to_path", "SessionPaths"]


def read_paths(request: MSRPData) -> Tuple[List[URI], List[URI]]:
    """``request``'s To-Path and From-Path (empty when absent); ``MSRPError`` (400) when
    one does not parse."""
    try:
        return request.to_path or [], request.from_path or []
    except MSRPError as error:
        raise MSRPError(str(error), 400, "Bad Request") from None


def request_to_path(local_path: Sequence[URI], remote_path: Sequence[URI]) -> List[URI]:
    """The To-Path of our requests: our relays from ours out, then the peer's path. Our
    path (``local_path``, what the peer is told, ending with our URI) lists our relays in
    the order the peer reaches them, the outermost first, so they go in reverse (one
    relay: the same)."""
    return list(reversed(local_path[:-1])) + list(remote_path)


def ends_with(path: Sequence[URI], tail: Sequence[URI]) -> bool:
    """True when ``path`` ends with ``tail`` (relays may stand in front of it)."""
    return len(path) >= len(tail) and list(path[len(path) - len(tail):]) == list(tail)


def check_paths(request: MSRPData, local_uri: URI,
                remote_path: Sequence[URI]) -> Optional[MSRPError]:
    """``None`` when ``request`` is for ``local_uri`` from ``remote_path``, else the error to
    answer: 481 when To-Path is not ``[local_uri]``; 403 when From-Path does not end with
    ``remote_path``; 400 when a path does not parse."""
    try:
        to_path, from_path = read_paths(request)
    except MSRPError as error:
        return error
    if to_path != [local_uri]:
        return MSRPError("To-Path %s is not %s" % (format_path(to_path), local_uri),
                         481, "No Such Session")
    if not ends_with(from_path, remote_path):
        return MSRPError("From-Path %s does not end with %s" % (
            format_path(from_path), format_path(remote_path)), 403, "Forbidden")
    return None


class SessionPaths:
    """The paths of a bound connection's requests: what ours carry, and the check of the
    peer's. A peer's request whose path headers are the very text we expect (nearly all
    of them) passes without being parsed."""

    __slots__ = ("local_uri", "remote_path", "to_path_text", "from_path_text",
                 "_remote_text", "_relayed_remote_suffix")

    def __init__(self, local_path: Sequence[URI], remote_path: Sequence[URI]) -> None:
        self.local_uri = local_path[-1]
        self.remote_path = list(remote_path)
        #: The To-Path and From-Path our requests carry (:func:`request_to_path`; our
        #: URI).
        self.to_path_text = format_path(request_to_path(local_path, self.remote_path))
        self.from_path_text = str(self.local_uri)
        self._remote_text = format_path(self.remote_path)
        self._relayed_remote_suffix = " " + self._remote_text

    def check(self, request: MSRPData) -> Optional[MSRPError]:
        """``None`` when ``request`` is for us from our peer, else the error to answer
        (see :func:`check_paths`)."""
        first = request.headers.first
        from_text = first.get("from-path")
        if first.get("to-path") == self.from_path_text and from_text is not None and (
                from_text == self._remote_text
                or from_text.endswith(self._relayed_remote_suffix)):
            return None
        return check_paths(request, self.local_uri, self.remote_path)
