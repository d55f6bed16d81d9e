"""SDP for MSRP streams (RFC 4975 section 8, RFC 6135, RFC 6714, RFC 5547, RFC 8122,
RFC 4566 for the frame). Pure: text in, values out, and back.

A whole session description is read into one media object per ``m=`` line, each with
only its own attributes (sections are never merged); the MSRP attributes of an
``m=message`` section are an :class:`MSRPMedia`::

    description = parse_sdp(answer_text)
    [chat] = description.msrp_media()       # MSRPMedia, with path, direction...
    offer_lines = MSRPMedia(path=full_local_path, setup="actpass").to_lines()
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple, Union

from msrplib._fileattributes import (FILE_DATE_KINDS, FILE_HASH_ALGORITHMS, FileRange,
                                     FileSelector, SDPParseError, file_digest,
                                     format_file_date, parse_file_date)
from msrplib._headers import parse_number
from msrplib._uri import URI, parse_uri
from msrplib.errors import HeaderParseError
from msrplib.tls import Fingerprint

__all__ = ["MSRPMedia", "MediaSection", "SessionDescription", "parse_sdp", "FileSelector",
           "FileRange", "SDPParseError", "SETUP_VALUES", "DIRECTIONS", "FILE_DATE_KINDS",
           "FILE_HASH_ALGORITHMS", "MAX_SDP_BYTES", "answer_setup", "local_role",
           "parse_path_attribute", "format_path_attribute", "media_line", "file_digest"]

#: The a=setup values of RFC 4145 that RFC 6135 uses for MSRP.
SETUP_VALUES = ("active", "passive", "actpass", "holdconn")
#: The direction attributes of RFC 4566; a section without one is ``sendrecv``.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
#: The longest session description :func:`parse_sdp` reads: SDP comes from the peer.
MAX_SDP_BYTES = 64 * 1024
_OPPOSITE = {"active": "passive", "passive": "active"}
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+")
_ATTRIBUTE_RE = re.compile(r"(?:a=)?([A-Za-z0-9-]+)(?::(.*))?")
_MEDIA_RE = re.compile(r"m=([a-z0-9-]+) ([0-9]{1,5})(?:/[0-9]{1,5})? (\S+)((?: \S+)*)")
_CONNECTION_RE = re.compile(r"c=IN IP[46] (\S+)")


#: What surrounds an SDP line's text: a value may hold any other character (a file name).
_BLANKS = " \t\r"


def _lines(text: str) -> List[str]:
    """SDP's lines: ended by LF (CRLF as RFC 4566 has it), never by other line breaks,
    which a file name may hold."""
    return text.split("\n")


def parse_path_attribute(value: str) -> List[URI]:
    """The value of ``a=path`` (URIs separated by spaces) as a list of URIs."""
    return [parse_uri(text) for text in value.split()]


def format_path_attribute(path: Iterable[URI]) -> str:
    """The value of ``a=path`` for a full path."""
    return " ".join(str(uri) for uri in path)


def answer_setup(offer_setup: Optional[str]) -> str:
    """The ``a=setup`` an answerer uses for an offer's ``a=setup`` (RFC 6135 section 4).

    ``actpass`` or no attribute: ``passive``, so the offerer connects, as RFC 4975 has it
    when neither side says; ``active`` and ``passive`` get their opposite.
    """
    if offer_setup in (None, "actpass"):
        return "passive"
    if offer_setup in _OPPOSITE:
        return _OPPOSITE[offer_setup]
    raise ValueError("no answer to a=setup:%s" % offer_setup)


def local_role(offer_setup: Optional[str], answer: Optional[str], offerer: bool) -> str:
    """``"active"`` (connect) or ``"passive"`` (listen) for this side, once the answer is in.

    Pass it as ``setup=`` to ``ConnectorDirect``/``AcceptorDirect``, or to ``complete()``
    of an ``actpass`` one.
    """
    answered = answer if answer is not None else answer_setup(offer_setup)
    if answered not in _OPPOSITE:
        raise ValueError("the answer's a=setup must be active or passive, not %r" % answered)
    return _OPPOSITE[answered] if offerer else answered


def _number(value: str, what: str) -> int:
    try:
        return parse_number(value, what)
    except HeaderParseError as error:
        raise SDPParseError(str(error)) from None


def _token(value: str, what: str) -> str:
    if not _TOKEN_RE.fullmatch(value):
        raise SDPParseError("bad a=%s %r" % (what, value[:80]))
    return value


@dataclass
class MSRPMedia:
    """The MSRP attributes of one ``m=message`` media description.

    ``direction`` is the section's own direction attribute (``None``: none given, which
    :func:`parse_sdp` resolves to the session's, else ``sendrecv``). The ``file_*``
    attributes are RFC 5547's: ``file_selector``, ``file_transfer_id``,
    ``file_disposition`` (``render``, ``attachment``...), ``file_date`` (``{"creation":
    RFC 5322 date-time, ...}``), ``file_icon`` (a ``cid:`` URL) and ``file_range``.
    """

    path: List[URI]
    accept_types: List[str] = field(default_factory=lambda: ["*"])
    accept_wrapped_types: List[str] = field(default_factory=list)
    max_size: Optional[int] = None
    setup: Optional[str] = None
    fingerprint: Optional[Fingerprint] = None
    cema: bool = False
    direction: Optional[str] = None
    file_selector: Optional[FileSelector] = None
    file_transfer_id: Optional[str] = None
    file_disposition: Optional[str] = None
    file_date: Dict[str, str] = field(default_factory=dict)
    file_icon: Optional[str] = None
    file_range: Optional[FileRange] = None

    def attributes(self) -> List[str]:
        """The attributes as ``name:value`` strings (without ``a=``), in a stable order."""
        lines = ["accept-types:%s" % " ".join(self.accept_types)]
        if self.accept_wrapped_types:
            lines.append("accept-wrapped-types:%s" % " ".join(self.accept_wrapped_types))
        if self.max_size is not None:
            lines.append("max-size:%d" % self.max_size)
        if self.setup is not None:
            lines.append("setup:%s" % self.setup)
        if self.fingerprint is not None:
            lines.append("fingerprint:%s" % self.fingerprint)
        if self.cema:
            lines.append("msrp-cema")
        if self.direction is not None:
            lines.append(self.direction)
        if self.file_selector is not None:
            lines.append("file-selector:%s" % self.file_selector)
        if self.file_transfer_id is not None:
            lines.append("file-transfer-id:%s" % self.file_transfer_id)
        if self.file_disposition is not None:
            lines.append("file-disposition:%s" % self.file_disposition)
        if self.file_date:
            lines.append("file-date:%s" % format_file_date(self.file_date))
        if self.file_icon is not None:
            lines.append("file-icon:%s" % self.file_icon)
        if self.file_range is not None:
            lines.append("file-range:%s" % self.file_range)
        lines.append("path:%s" % format_path_attribute(self.path))
        return lines

    def to_lines(self) -> str:
        """The attributes as SDP lines, each ``a=...`` ending in CRLF."""
        return "".join("a=%s\r\n" % line for line in self.attributes())

    @classmethod
    def parse(cls, lines: Union[str, Iterable[str]]) -> MSRPMedia:
        """Read the MSRP attributes of one media description from its lines (``a=``
        optional; other lines ignored). For a whole SDP, use :func:`parse_sdp`.

        Raises ``SDPParseError`` (a ``ValueError``; ``URIParseError`` for a bad path) on a
        malformed value, an attribute given twice, more than one ``m=`` line, or no
        ``a=path``.
        """
        if isinstance(lines, str):
            lines = _lines(lines)
        media = cls(path=[])
        seen = set()
        media_lines = 0
        for line in lines:
            line = line.strip(_BLANKS)
            if line.startswith("m="):
                media_lines += 1
                if media_lines > 1:
                    raise SDPParseError("more than one media description: use parse_sdp")
                continue
            match = _ATTRIBUTE_RE.fullmatch(line)
            if match is None:
                continue
            name, value = match.group(1).lower(), (match.group(2) or "").strip(_BLANKS)
            if name in seen:
                raise SDPParseError("a=%s given twice" % name)
            if media._take(name, value) and name not in DIRECTIONS:
                seen.add(name)  # a second direction is refused by _take
        if not media.path:
            raise SDPParseError("no a=path in the media description")
        return media

    def _take(self, name: str, value: str) -> bool:
        """Set the attribute ``name`` from ``value``; False for one that is not ours."""
        if name == "path":
            self.path = parse_path_attribute(value)
            if not self.path:
                raise SDPParseError("empty a=path")
        elif name == "accept-types":
            self.accept_types = value.split()
            if not self.accept_types:
                raise SDPParseError("empty a=accept-types")
        elif name == "accept-wrapped-types":
            self.accept_wrapped_types = value.split()
        elif name == "max-size":
            self.max_size = _number(value, "a=max-size")
        elif name == "setup":
            if value not in SETUP_VALUES:
                raise SDPParseError("bad a=setup %r" % value[:80])
            self.setup = value
        elif name == "fingerprint":
            try:
                self.fingerprint = Fingerprint.parse(value)
            except ValueError as error:
                raise SDPParseError(str(error)) from None
        elif name == "msrp-cema":
            self.cema = True
        elif name in DIRECTIONS:
            if self.direction is not None:
                raise SDPParseError("two direction attributes: %s and %s"
                                    % (self.direction, name))
            self.direction = name
        elif name == "file-selector":
            self.file_selector = FileSelector.parse(value)
        elif name == "file-transfer-id":
            self.file_transfer_id = _token(value, "file-transfer-id")
        elif name == "file-disposition":
            self.file_disposition = _token(value, "file-disposition")
        elif name == "file-date":
            self.file_date = parse_file_date(value)
        elif name == "file-icon":
            if not value.lower().startswith("cid:") or len(value) < 5 or " " in value:
                raise SDPParseError("bad a=file-icon %r: a cid: URL" % value[:80])
            self.file_icon = value
        elif name == "file-range":
            self.file_range = FileRange.parse(value)
        else:
            return False
        return True


@dataclass
class MediaSection:
    """One ``m=`` line and what belongs to it: ``kind`` (``message``, ``audio``...),
    ``port``, ``proto`` (``TCP/MSRP``, ``TCP/TLS/MSRP``...), ``formats``, the
    ``connection`` address (its own ``c=`` or the session's), ``direction`` (its own, the
    session's, or ``sendrecv``), its ``a=`` lines as ``(name, value)`` in order, and for
    an MSRP section with a port, ``msrp``: its :class:`MSRPMedia` (with the session's
    ``a=fingerprint`` when it has none of its own)."""

    kind: str
    port: int
    proto: str
    formats: List[str]
    connection: Optional[str] = None
    direction: str = "sendrecv"
    attributes: List[Tuple[str, str]] = field(default_factory=list)
    msrp: Optional[MSRPMedia] = None

    @property
    def is_msrp(self) -> bool:
        """Whether it is an MSRP stream: ``m=message`` over ``.../MSRP``."""
        return self.kind == "message" and self.proto.upper().endswith("/MSRP")


@dataclass
class SessionDescription:
    """A parsed SDP: the session-level ``connection`` address and ``direction`` (``None``
    when not given) and one :class:`MediaSection` per ``m=`` line, in order."""

    connection: Optional[str]
    direction: Optional[str]
    media: List[MediaSection]

    def msrp_media(self) -> List[MSRPMedia]:
        """The MSRP streams (``m=message`` sections over MSRP), in order; a section
        with port 0 (a refused or removed stream) is left out."""
        return [section.msrp for section in self.media
                if section.msrp is not None and section.port != 0]


def _usable_fingerprint(value: str) -> Optional[Fingerprint]:
    """A session-level ``a=fingerprint`` msrplib can check, or ``None``: one with another
    hash may be there for another medium (DTLS), and must not break the MSRP streams."""
    try:
        return Fingerprint.parse(value)
    except ValueError:
        return None


def parse_sdp(text: str, max_bytes: int = MAX_SDP_BYTES) -> SessionDescription:
    """Read a whole SDP (RFC 4566) into its media sections, each with its own attributes.

    The MSRP attributes of every ``m=message`` section over MSRP are read into its
    ``msrp`` (an :class:`MSRPMedia` whose ``direction`` is resolved). Raises
    ``SDPParseError`` for a text over ``max_bytes``, a line that is not ``x=...``, a
    malformed ``m=`` or ``c=`` line, or a malformed MSRP attribute.
    """
    if len(text) > max_bytes:
        raise SDPParseError("SDP of %d characters, over the %d allowed" % (len(text), max_bytes))
    connection: Optional[str] = None
    direction: Optional[str] = None
    # RFC 8122 allows it at session level too: the first one msrplib can check.
    fingerprint: Optional[Fingerprint] = None
    media: List[MediaSection] = []
    for line in _lines(text):
        line = line.strip(_BLANKS)
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SDPParseError("not an SDP line: %r" % line[:80])
        kind = line[0]
        if kind == "m":
            match = _MEDIA_RE.fullmatch(line)
            if match is None or int(match.group(2)) > 65535:
                raise SDPParseError("bad media line %r" % line[:80])
            media.append(MediaSection(match.group(1), int(match.group(2)), match.group(3),
                                      match.group(4).split(), connection))
        elif kind == "c":
            match = _CONNECTION_RE.fullmatch(line)
            if match is None:
                raise SDPParseError("bad connection line %r" % line[:80])
            if media:
                media[-1].connection = match.group(1)
            else:
                connection = match.group(1)
        elif kind == "a":
            attribute = _ATTRIBUTE_RE.fullmatch(line)
            if attribute is None:
                raise SDPParseError("bad attribute line %r" % line[:80])
            name, value = attribute.group(1).lower(), (attribute.group(2) or "").strip(_BLANKS)
            if media:
                media[-1].attributes.append((name, value))
            elif name in DIRECTIONS:
                direction = name
            elif name == "fingerprint" and fingerprint is None:
                fingerprint = _usable_fingerprint(value)
    for section in media:
        if section.connection is None:
            section.connection = connection
        section.direction = direction or "sendrecv"
        if section.is_msrp and section.port != 0:  # port 0: refused, may have no a=path
            section.msrp = MSRPMedia.parse("a=%s:%s" % pair if pair[1] else "a=%s" % pair[0]
                                           for pair in section.attributes)
            if section.msrp.fingerprint is None and section.proto.upper() == "TCP/TLS/MSRP":
                section.msrp.fingerprint = fingerprint
        own = [name for name, _ in section.attributes if name in DIRECTIONS]
        if own:
            section.direction = own[0]
        if section.msrp is not None:
            section.msrp.direction = section.direction
    return SessionDescription(connection, direction, media)


def media_line(path: List[URI], port: Optional[int] = None) -> str:
    """The ``m=`` line for an MSRP stream to ``path``: ``m=message PORT TCP/MSRP *``.

    The port is the last URI's (or ``port``); ``msrps`` gives ``TCP/TLS/MSRP``.
    """
    last = path[-1]
    proto = "TCP/TLS/MSRP" if last.use_tls else "TCP/MSRP"
    return "m=message %d %s *" % (port if port is not None else last.effective_port, proto)
