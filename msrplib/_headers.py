"""MSRP header storage and the typed values of the headers RFC 4975, 4976 and 7701 define.

Header values are kept as the text that came off the wire; the typed views in
:class:`HeaderField` parse on access and format on assignment, so a chunk that is only
relayed or logged never pays for parsing, and unknown headers survive untouched.
"""

from __future__ import annotations

import re
from typing import (Callable, Protocol, Dict, FrozenSet, Generic, Iterable, Iterator, List,
                    NamedTuple, Optional, Tuple, TypeVar, Union, overload)

from msrplib._uri import URI, parse_uri
from msrplib.errors import HeaderParseError

__all__ = [
    "Headers", "HeaderField", "ByteRange", "Status", "AuthParams",
    "parse_path", "format_path", "parse_byte_range", "parse_status", "parse_auth_params",
    "parse_int", "parse_number", "parse_quoted", "quote", "MAX_DIGITS",
]

T = TypeVar("T")


class Headers:
    """An ordered, case-insensitive multi-map of header names to their text values.

    Order and the spelling of names are kept as given, so a parsed chunk is re-sent as it
    came. ``headers[name]`` and :meth:`get` return the first value of that name, from an
    index kept beside the list: chunks are looked up far more often than they are built.
    """

    __slots__ = ("_items", "first")

    def __init__(self, items: Iterable[Tuple[str, str]] = ()) -> None:
        self._items: List[Tuple[str, str, str]] = []
        #: The first value of each header, by lower-case name: the fast way to look one
        #: up. Read it; change headers through the methods, which keep it in step.
        self.first: Dict[str, str] = {}
        for name, value in items:
            self.add(name, value)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name``, or ``default``."""
        return self.first.get(name.lower(), default)

    def append_lower(self, name: str, lower: str, value: str) -> None:
        """:meth:`add` for a caller that has ``name`` in lower case already."""
        self._items.append((name, lower, value))
        self.first.setdefault(lower, value)

    def get_all(self, name: str) -> List[str]:
        """Every value of header ``name``, in order."""
        lower = name.lower()
        return [value for _, item_lower, value in self._items if item_lower == lower]

    def add(self, name: str, value: str) -> None:
        """Append a header, even if one of that name exists."""
        self.append_lower(name, name.lower(), value)

    def __getitem__(self, name: str) -> str:
        value = self.first.get(name.lower())
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        """Replace the first header of that name in place (dropping later ones), or append."""
        lower = name.lower()
        if lower not in self.first:
            self.append_lower(name, lower, value)
            return
        kept = []
        replaced = False
        for item in self._items:
            if item[1] != lower:
                kept.append(item)
            elif not replaced:
                kept.append((name, lower, value))
                replaced = True
        self._items = kept
        self.first[lower] = value

    def __delitem__(self, name: str) -> None:
        lower = name.lower()
        if self.first.pop(lower, None) is None:
            raise KeyError(name)
        self._items = [item for item in self._items if item[1] != lower]

    def pop(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Remove every header of that name; return the first value, or ``default``."""
        value = self.get(name)
        if value is None:
            return default
        del self[name]
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.first

    def __iter__(self) -> Iterator[str]:
        return (name for name, _, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> List[Tuple[str, str]]:
        """``(name, value)`` pairs in order."""
        return [(name, value) for name, _, value in self._items]

    def replaced(self, values: Dict[str, str]) -> Headers:
        """A copy whose headers named in ``values`` (lower-case names) hold those values,
        where they stood (a relay's new To-Path and From-Path, say)."""
        clone = Headers.__new__(Headers)
        clone._items = [(item[0], item[1], values[item[1]]) if item[1] in values else item
                        for item in self._items]
        clone.first = dict(self.first)
        clone.first.update((lower, value) for lower, value in values.items()
                           if lower in clone.first)
        return clone

    def copy(self) -> Headers:
        """An independent copy."""
        clone = Headers.__new__(Headers)  # no __init__: both fields are set just below
        clone._items = list(self._items)
        clone.first = dict(self.first)
        return clone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def __repr__(self) -> str:
        return "Headers(%r)" % (self.items(),)


class _HasHeaders(Protocol):
    headers: Headers


class HeaderField(Generic[T]):
    """A typed attribute backed by a header: reads parse its text, writes format it.

    Reading a missing header gives ``None``; assigning ``None`` removes the header.
    A malformed value raises :class:`~msrplib.errors.HeaderParseError` on read.
    """

    def __init__(self, name: str, parse: Callable[[str], T],
                 format: Callable[[T], str]) -> None:
        self.name = name
        self.lower = name.lower()
        self.parse = parse
        self.format = format
        self.__doc__ = "The ``%s`` header, typed; ``None`` when absent." % name

    @overload
    def __get__(self, obj: None, owner: type) -> HeaderField[T]: ...

    @overload
    def __get__(self, obj: _HasHeaders, owner: type) -> Optional[T]: ...

    def __get__(self, obj: Optional[_HasHeaders], owner: type) -> Optional[T] | HeaderField[T]:
        if obj is None:
            return self
        raw = obj.headers.first.get(self.lower)
        return None if raw is None else self.parse(raw)

    def __set__(self, obj: _HasHeaders, value: Optional[T]) -> None:
        if value is None:
            obj.headers.pop(self.name)
        else:
            obj.headers[self.name] = self.format(value)


class ByteRange(NamedTuple):
    """``Byte-Range: start-end/total``; ``end`` and ``total`` are ``None`` for ``*``."""

    start: int
    end: Optional[int]
    total: Optional[int]

    def __str__(self) -> str:
        return "%d-%s/%s" % (self.start, "*" if self.end is None else self.end,
                             "*" if self.total is None else self.total)


class Status(NamedTuple):
    """``Status: 000 200 OK`` of a REPORT (RFC 4975 section 9.2)."""

    code: int
    comment: Optional[str] = None
    namespace: int = 0

    def __str__(self) -> str:
        text = "%03d %03d" % (self.namespace, self.code)
        return text if self.comment is None else "%s %s" % (text, self.comment)


class AuthParams(NamedTuple):
    """A Digest challenge, answer or ``Authentication-Info`` (RFC 4976 section 5).

    ``scheme`` is ``"Digest"`` (empty for ``Authentication-Info``); ``params`` maps names to
    unquoted values; ``tokens`` names the params written without quotes.
    """

    scheme: str
    params: Dict[str, str]
    tokens: FrozenSet[str] = frozenset({"nc", "algorithm", "stale"})

    def __str__(self) -> str:
        items = ", ".join(
            "%s=%s" % (name, value if name in self.tokens else quote(value))
            for name, value in self.params.items())
        return "%s %s" % (self.scheme, items) if self.scheme else items


def quote(value: str) -> str:
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def parse_path(text: str) -> List[URI]:
    """A path header (``To-Path``, ``From-Path``, ``Use-Path``): URIs separated by spaces."""
    uris = text.split()
    if not uris:
        raise HeaderParseError("empty path")
    return [parse_uri(uri) for uri in uris]


def format_path(path: Iterable[URI]) -> str:
    """The inverse of :func:`parse_path`."""
    return " ".join(str(uri) for uri in path)


#: The most digits a number in a header may have: 2**64 has 20. Longer ones are refused
#: (a peer's 5,000-digit number would otherwise cost a slow conversion, or an error).
MAX_DIGITS = 20

_NUMBER_RE = re.compile(r"[0-9]{1,%d}" % MAX_DIGITS)
_NUMBER_BYTES_RE = re.compile(rb"[0-9]{1,%d}" % MAX_DIGITS)

#: A Byte-Range value (once stripped): ``start-end/total``, ``end`` and ``total`` may be ``*``.
BYTE_RANGE_RE = re.compile(r"([0-9]{1,%d})-([0-9]{1,%d}|\*)/([0-9]{1,%d}|\*)"
                           % (MAX_DIGITS, MAX_DIGITS, MAX_DIGITS))


def parse_number(text: Union[str, bytes], what: str = "number") -> int:
    """A number written as ASCII digits, at most MAX_DIGITS of them; raises
    :class:`~msrplib.errors.HeaderParseError` (a ``ValueError``) naming ``what``
    otherwise. Other digits (``٣``, ``²``), signs, spaces and underscores are refused."""
    pattern = _NUMBER_BYTES_RE if isinstance(text, bytes) else _NUMBER_RE
    if not pattern.fullmatch(text):  # type: ignore[arg-type]
        raise HeaderParseError("%s %r is not 1 to %d ASCII digits" % (what, text[:40], MAX_DIGITS))
    return int(text)


#: Byte-Range values of whole messages (``1-N/N``) parsed before: every message of one
#: size has the same one (the ranges of a file's chunks never repeat, and are not kept).
#: Bounded (emptied when full).
_BYTE_RANGES: Dict[str, ByteRange] = {}
_BYTE_RANGES_CACHED = 256


def parse_byte_range(text: str) -> ByteRange:
    """``1-25/25``, ``1-*/*`` and the like."""
    byte_range = _BYTE_RANGES.get(text)
    if byte_range is not None:
        return byte_range
    match = BYTE_RANGE_RE.fullmatch(text.strip())
    if match is None:
        raise HeaderParseError("bad Byte-Range %r" % (text,))
    start, end, total = match.groups()
    byte_range = ByteRange(int(start), None if end == "*" else int(end),
                           None if total == "*" else int(total))
    if byte_range.start == 1 and byte_range.end == byte_range.total:
        if len(_BYTE_RANGES) >= _BYTE_RANGES_CACHED:
            _BYTE_RANGES.clear()
        _BYTE_RANGES[text] = byte_range
    return byte_range


_STATUS_RE = re.compile(r"([0-9]{3}) ([0-9]{3})(?: (.*))?", re.DOTALL)


def parse_status(text: str) -> Status:
    """``000 200 OK``: namespace, code and optional comment."""
    match = _STATUS_RE.fullmatch(text)
    if match is None:
        raise HeaderParseError("bad Status %r" % (text,))
    namespace, code, comment = match.groups()
    return Status(int(code), comment, int(namespace))


def parse_int(text: str) -> int:
    """A header's number (``Expires``...): :func:`parse_number`, spaces around it allowed."""
    return parse_number(text.strip())


_AUTH_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')


def parse_auth_params(text: str, with_scheme: bool = True) -> AuthParams:
    """``Digest realm="x", nonce="y"`` (or, without a scheme, ``nextnonce="z", qop=auth``)."""
    scheme = ""
    rest = text.strip()
    if with_scheme:
        scheme, _, rest = rest.partition(" ")
        if not scheme:
            raise HeaderParseError("no authentication scheme in %r" % (text,))
    params: Dict[str, str] = {}
    tokens = set()
    position = 0
    while position < len(rest):
        match = _AUTH_PARAM_RE.match(rest, position)
        if match is None or match.end() == position:
            raise HeaderParseError("bad authentication parameters in %r" % (text,))
        name, value = match.groups()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        else:
            tokens.add(name)
        params[name] = value
        position = match.end()
    return AuthParams(scheme, params, frozenset(tokens))


def parse_quoted(text: str) -> str:
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise HeaderParseError("expected a quoted string, got %r" % (text,))
    return re.sub(r"\\(.)", r"\1", text[1:-1])
