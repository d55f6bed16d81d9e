"""The SDP attributes of a file transfer (RFC 5547): ``a=file-selector`` with its
percent-encoded name, media type, size and hash, and the values of ``a=file-range`` and
``a=file-date``. Pure: text in, values out, and back; a value from a peer that does not
follow the grammar raises ``SDPParseError``."""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, BinaryIO, Dict, Optional, Tuple, Union

from msrplib._headers import parse_number
from msrplib.errors import HeaderParseError

__all__ = ["SDPParseError", "FileSelector", "FileRange", "parse_file_date",
           "format_file_date", "FILE_DATE_KINDS", "FILE_HASH_ALGORITHMS", "file_digest"]


class SDPParseError(ValueError):
    """An SDP text, or one of its values, that does not follow its grammar."""


#: The hash algorithms of ``a=file-selector`` that are computed and checked, by their
#: names in IANA's Hash Function Textual Names registry (RFC 5547 names sha-1).
FILE_HASH_ALGORITHMS = {"sha-1": "sha1", "sha-256": "sha256", "sha-512": "sha512"}

#: The dates ``a=file-date`` may give, in the order they are written.
FILE_DATE_KINDS = ("creation", "modification", "read")

# A byte of a file name is written as itself unless it is NUL, CR, LF, a double quote or a
# percent sign (RFC 5547 section 9): those are percent-encoded.
_NAME_ESCAPES = {byte: "%%%02X" % byte for byte in (0x00, 0x0A, 0x0D, 0x22, 0x25)}
_PERCENT_RE = re.compile(rb"%([0-9A-Fa-f]{2})")
_HASH_VALUE_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+")
_TYPE_RE = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+/[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+"
                      r'(?:;[!#$%&\'*+\-.^_`{|}~0-9A-Za-z]+="[^"]*")*')
# One selector: a key and its value, the name's value quoted.
_SELECTOR_RE = re.compile(r'\s*(name):"([^"]*)"|\s*(type|size|hash):(\S+)')


def _encode_name(name: str) -> str:
    raw = name.encode("utf-8")
    if not any(byte in _NAME_ESCAPES for byte in raw):
        return name
    return "".join(_NAME_ESCAPES.get(byte, chr(byte)) for byte in raw).encode(
        "latin-1").decode("utf-8")


def _decode_name(text: str) -> str:
    try:
        encoded = text.encode("utf-8")
        if text.count("%") != len(_PERCENT_RE.findall(encoded)):
            raise SDPParseError("file-selector name %r has a %% that encodes no byte"
                                % text[:80])
        name = urllib.parse.unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeError:  # undecodable bytes kept as surrogates, or bytes that are not UTF-8
        raise SDPParseError("file-selector name %r is not UTF-8" % text[:80]) from None
    if not name:
        raise SDPParseError("file-selector name is empty")
    return name


def _hash_text(digest: bytes) -> str:
    """A digest as RFC 5547 writes it: upper-case hex bytes separated by colons."""
    return ":".join("%02X" % byte for byte in digest)


def file_digest(source: Union[bytes, BinaryIO], algorithm: str = "sha-1",
                block: int = 1 << 20) -> bytes:
    """The ``algorithm`` digest of ``source`` (bytes, or a binary file read from where it
    is to its end, then put back where it was)."""
    if algorithm not in FILE_HASH_ALGORITHMS:
        raise ValueError("hash algorithm %r is not one of %s"
                         % (algorithm, ", ".join(FILE_HASH_ALGORITHMS)))
    hasher = hashlib.new(FILE_HASH_ALGORITHMS[algorithm])
    if isinstance(source, (bytes, bytearray, memoryview)):
        hasher.update(source)
        return hasher.digest()
    position = source.tell()
    for piece in iter(lambda: source.read(block), b""):
        hasher.update(piece)
    source.seek(position)
    return hasher.digest()


@dataclass
class FileSelector:
    """RFC 5547 ``a=file-selector``: what file a transfer offers or asks for.

    ``name`` is the file's name (any text: written percent-encoded where the grammar asks),
    ``type`` its media type, with parameters (``image/jpeg``), ``size`` in bytes, ``hash``
    ``(algorithm, digest)`` with the digest as RFC 5547 writes it (``"72:24:5F:..."``).
    """

    name: Optional[str] = None
    type: Optional[str] = None
    size: Optional[int] = None
    hash: Optional[Tuple[str, str]] = None

    @classmethod
    def for_file(cls, source: Union[str, BinaryIO], type: Optional[str] = None,
                 name: Optional[str] = None, algorithm: str = "sha-1") -> FileSelector:
        """The selector of a file on disk (a path) or of an open binary file from where it
        is: its name (unless given), size and hash."""
        if isinstance(source, str):
            with open(source, "rb") as opened:
                return cls.for_file(opened, type, name or os.path.basename(source), algorithm)
        position = source.tell()
        size = source.seek(0, os.SEEK_END) - position
        source.seek(position)
        digest = file_digest(source, algorithm)
        return cls(name=name, type=type, size=size, hash=(algorithm, _hash_text(digest)))

    def matches_digest(self, digest: bytes) -> bool:
        """Whether ``digest`` (of the file received, with this selector's algorithm) is
        the one the selector gives. Raises ``ValueError`` when it gives none."""
        if self.hash is None:
            raise ValueError("the file-selector has no hash")
        return _hash_text(digest) == self.hash[1].upper()

    def __str__(self) -> str:
        parts = []
        if self.name is not None:
            parts.append('name:"%s"' % _encode_name(self.name))
        if self.type is not None:
            parts.append("type:%s" % self.type)
        if self.size is not None:
            parts.append("size:%d" % self.size)
        if self.hash is not None:
            parts.append("hash:%s:%s" % self.hash)
        return " ".join(parts)

    @classmethod
    def parse(cls, value: str) -> FileSelector:
        """Parse the value of ``a=file-selector``; raises ``SDPParseError`` on bad input."""
        selector = cls()
        position, seen = 0, set()
        while position < len(value):
            match = _SELECTOR_RE.match(value, position)
            if match is None:
                if not value[position:].strip():
                    break
                raise SDPParseError("bad file-selector at %r" % value[position:position + 80])
            position = match.end()
            key = match.group(1) or match.group(3)
            if key in seen:
                raise SDPParseError("file-selector gives %s twice" % key)
            seen.add(key)
            if position < len(value) and not value[position].isspace():
                raise SDPParseError("bad file-selector at %r" % value[position:position + 80])
            text = match.group(4)
            if key == "name":
                selector.name = _decode_name(match.group(2))
            elif key == "type":
                if not _TYPE_RE.fullmatch(text):
                    raise SDPParseError("bad file-selector type %r" % text[:80])
                selector.type = text
            elif key == "size":
                try:
                    selector.size = parse_number(text, "file-selector size")
                except HeaderParseError as error:
                    raise SDPParseError(str(error)) from None
            else:
                algorithm, _, digest = text.partition(":")
                if not _TOKEN_RE.fullmatch(algorithm) or not _HASH_VALUE_RE.fullmatch(digest):
                    raise SDPParseError("bad file-selector hash %r" % text[:80])
                selector.hash = (algorithm.lower(), digest.upper())
        return selector


@dataclass
class FileRange:
    """RFC 5547 ``a=file-range``: the bytes of the file a transfer carries, from ``start``
    to ``stop`` counted from 1 and inclusive; ``stop`` ``None`` (``*``) for the end."""

    start: int = 1
    stop: Optional[int] = None

    def __post_init__(self) -> None:
        if self.start < 1 or (self.stop is not None and self.stop < self.start - 1):
            raise ValueError("file-range %d-%s names no bytes of a file"
                             % (self.start, self.stop))

    def __str__(self) -> str:
        return "%d-%s" % (self.start, "*" if self.stop is None else self.stop)

    @classmethod
    def parse(cls, value: str) -> FileRange:
        start, dash, stop = value.strip().partition("-")
        try:
            if not dash:
                raise HeaderParseError("no dash")
            return cls(parse_number(start, "file-range start"),
                       None if stop == "*" else parse_number(stop, "file-range stop"))
        except (HeaderParseError, ValueError):
            raise SDPParseError("bad a=file-range %r" % value[:80]) from None


_DATE_RE = re.compile(r'\s*(creation|modification|read):"([^"]*)"')


def parse_file_date(value: str) -> Dict[str, str]:
    """The value of ``a=file-date`` as ``{kind: RFC 5322 date-time text}``."""
    dates: Dict[str, str] = {}
    position = 0
    while value[position:].strip():
        match = _DATE_RE.match(value, position)
        if match is None or match.group(1) in dates or not match.group(2).strip():
            raise SDPParseError("bad a=file-date %r" % value[:80])
        dates[match.group(1)] = match.group(2)
        position = match.end()
    if not dates:
        raise SDPParseError("a=file-date gives no date")
    return dates


def format_file_date(dates: Dict[str, Any]) -> str:
    """The value of ``a=file-date`` for ``{kind: RFC 5322 date-time text}``."""
    unknown = set(dates) - set(FILE_DATE_KINDS)
    if unknown:
        raise ValueError("file-date kinds are %s, not %s"
                         % (", ".join(FILE_DATE_KINDS), ", ".join(sorted(unknown))))
    return " ".join('%s:"%s"' % (kind, dates[kind]) for kind in FILE_DATE_KINDS
                    if kind in dates)
