"""The MSRP media-level SDP attributes a SIP stack exchanges (RFC 4975 section 8, RFC 6135,
RFC 6714, RFC 5547, RFC 8122). Pure: text in, values out, and back.

    media = MSRPMedia(path=full_local_path, accept_types=["text/plain"], setup="actpass")
    offer_lines = media.to_lines()              # "a=path:...\\r\\na=accept-types:..."
    remote = MSRPMedia.parse(answer_lines)      # remote.path is a list[URI]
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Tuple, Union

from msrplib._headers import parse_number
from msrplib._uri import URI, parse_uri
from msrplib.tls import Fingerprint

__all__ = ["MSRPMedia", "FileSelector", "SETUP_VALUES", "answer_setup", "local_role",
           "parse_path_attribute", "format_path_attribute", "media_line"]

#: The a=setup values of RFC 4145 that RFC 6135 uses for MSRP.
SETUP_VALUES = ("active", "passive", "actpass", "holdconn")
_OPPOSITE = {"active": "passive", "passive": "active"}


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

    Pass it as ``setup=`` to ``ConnectorDirect``/``AcceptorDirect``.
    """
    answered = answer if answer is not None else answer_setup(offer_setup)
    if answered not in _OPPOSITE:
        raise ValueError("the answer's a=setup must be active or passive, not %r" % answered)
    return _OPPOSITE[answered] if offerer else answered


@dataclass
class FileSelector:
    """RFC 5547 ``a=file-selector``: what file a transfer offers or asks for."""

    name: Optional[str] = None
    type: Optional[str] = None
    size: Optional[int] = None
    hash: Optional[Tuple[str, str]] = None

    def __str__(self) -> str:
        parts = []
        if self.name is not None:
            parts.append('name:"%s"' % self.name.replace('"', "%22"))
        if self.type is not None:
            parts.append("type:%s" % self.type)
        if self.size is not None:
            parts.append("size:%d" % self.size)
        if self.hash is not None:
            parts.append("hash:%s:%s" % self.hash)
        return " ".join(parts)

    @classmethod
    def parse(cls, value: str) -> FileSelector:
        """Parse the value of ``a=file-selector``; raises ``ValueError`` on bad input."""
        selector = cls()
        try:
            items = shlex.split(value, posix=True)
        except ValueError as error:
            raise ValueError("bad file-selector %r: %s" % (value, error)) from None
        for item in items:
            key, colon, rest = item.partition(":")
            if not colon:
                raise ValueError("bad file-selector item %r" % item)
            if key == "name":
                selector.name = rest.replace("%22", '"')
            elif key == "type":
                selector.type = rest
            elif key == "size":
                selector.size = parse_number(rest, "file-selector size")
            elif key == "hash":
                algorithm, _, digest = rest.partition(":")
                if not digest:
                    raise ValueError("bad file-selector hash %r" % rest)
                selector.hash = (algorithm, digest)
        return selector


_ATTRIBUTE_RE = re.compile(r"(?:a=)?([A-Za-z0-9-]+)(?::(.*))?")


@dataclass
class MSRPMedia:
    """The MSRP attributes of one SDP media description."""

    path: List[URI]
    accept_types: List[str] = field(default_factory=lambda: ["*"])
    accept_wrapped_types: List[str] = field(default_factory=list)
    max_size: Optional[int] = None
    setup: Optional[str] = None
    fingerprint: Optional[Fingerprint] = None
    cema: bool = False
    file_selector: Optional[FileSelector] = None

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
        if self.file_selector is not None:
            lines.append("file-selector:%s" % self.file_selector)
        lines.append("path:%s" % format_path_attribute(self.path))
        return lines

    def to_lines(self) -> str:
        """The attributes as SDP lines, each ``a=...`` ending in CRLF."""
        return "".join("a=%s\r\n" % line for line in self.attributes())

    @classmethod
    def parse(cls, lines: Union[str, Iterable[str]]) -> MSRPMedia:
        """Read the MSRP attributes from SDP lines (``a=`` optional; others ignored).

        Raises ``ValueError`` (``URIParseError`` for a bad path) on a malformed value and
        when there is no ``a=path``.
        """
        if isinstance(lines, str):
            lines = lines.splitlines()
        media = cls(path=[])
        for line in lines:
            match = _ATTRIBUTE_RE.fullmatch(line.strip())
            if match is None:
                continue
            name, value = match.group(1).lower(), (match.group(2) or "").strip()
            if name == "path":
                media.path = parse_path_attribute(value)
            elif name == "accept-types":
                media.accept_types = value.split()
            elif name == "accept-wrapped-types":
                media.accept_wrapped_types = value.split()
            elif name == "max-size":
                if not value.isdigit():
                    raise ValueError("bad a=max-size %r" % value)
                media.max_size = int(value)
            elif name == "setup":
                if value not in SETUP_VALUES:
                    raise ValueError("bad a=setup %r" % value)
                media.setup = value
            elif name == "fingerprint":
                media.fingerprint = Fingerprint.parse(value)
            elif name == "msrp-cema":
                media.cema = True
            elif name == "file-selector":
                media.file_selector = FileSelector.parse(value)
        if not media.path:
            raise ValueError("no a=path in the media description")
        return media


def media_line(path: List[URI], port: Optional[int] = None) -> str:
    """The ``m=`` line for an MSRP stream to ``path``: ``m=message PORT TCP/MSRP *``.

    The port is the last URI's (or ``port``); ``msrps`` gives ``TCP/TLS/MSRP``.
    """
    last = path[-1]
    proto = "TCP/TLS/MSRP" if last.use_tls else "TCP/MSRP"
    return "m=message %d %s *" % (port if port is not None else last.effective_port, proto)
