"""The MSRP URI (RFC 4975 section 6): parsing, formatting and comparison."""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Tuple

from msrplib.errors import URIParseError

__all__ = ["URI", "parse_uri", "DEFAULT_PORT"]

#: The port an MSRP URI without one refers to (RFC 4975 section 6.1).
DEFAULT_PORT = 2855

_URI_RE = re.compile(
    r"""(?P<scheme>[A-Za-z]+)://
        (?:(?P<user>[A-Za-z0-9\-._~!$&'()*+,=:%]*)@)?
        (?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.\-_~%]+))
        (?::(?P<port>[0-9]*))?
        (?:/(?P<session_id>[^;]*))?
        (?:;(?P<params>.*))?
    """,
    re.VERBOSE | re.DOTALL,
)
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9\-._~+=/%]+")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~!%*+`']+")


class URI:
    """An MSRP URI such as ``msrp://alice.example.com:7654/jshA7weztas;tcp``.

    The attributes are the constructor's arguments. ``prepare()`` of the connectors may fill
    in ``host``, ``port`` and ``session_id`` in place, as the seed API describes; do not
    change a URI while it is a key in a dict.

    Two URIs are equal when RFC 4975 section 6.1 says they are: same scheme, host (case
    insensitive), port (2855 when absent), session-id (case sensitive) and transport (case
    insensitive). The user part, other parameters and ``credentials`` are not compared.
    """

    __slots__ = ("host", "use_tls", "user", "port", "session_id", "parameters",
                 "credentials", "transport")

    def __init__(self, host: Optional[str] = None, use_tls: bool = False,
                 user: Optional[str] = None, port: Optional[int] = None,
                 session_id: Optional[str] = None,
                 parameters: Optional[Dict[str, Optional[str]]] = None,
                 credentials: Any = None, transport: str = "tcp") -> None:
        self.host = host
        self.use_tls = use_tls
        self.user = user
        self.port = port
        self.session_id = session_id
        self.parameters: Dict[str, Optional[str]] = dict(parameters or {})
        #: TLS options for this endpoint (a ``twisted.internet.ssl`` connection creator or
        #: ``CertificateOptions``); never part of the URI's text or identity.
        self.credentials = credentials
        self.transport = transport

    @classmethod
    def parse(cls, text: str) -> URI:
        """Parse ``text``; the same as :func:`parse_uri`."""
        return parse_uri(text)

    @property
    def scheme(self) -> str:
        """``"msrps"`` for TLS, ``"msrp"`` otherwise."""
        return "msrps" if self.use_tls else "msrp"

    @property
    def effective_port(self) -> int:
        """The port a connection to this URI uses: ``port``, or 2855 when there is none."""
        return DEFAULT_PORT if self.port is None else self.port

    def _key(self) -> Tuple[bool, str, int, Optional[str], str]:
        return (self.use_tls, (self.host or "").lower(), self.effective_port,
                self.session_id, self.transport.lower())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URI):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        parts = [self.scheme, "://"]
        if self.user is not None:
            parts += [self.user, "@"]
        host = self.host or ""
        parts.append("[%s]" % host if ":" in host else host)
        if self.port is not None:
            parts.append(":%d" % self.port)
        if self.session_id is not None:
            parts += ["/", self.session_id]
        parts += [";", self.transport]
        for name, value in self.parameters.items():
            parts.append(";%s" % name if value is None else ";%s=%s" % (name, value))
        return "".join(parts)

    def __repr__(self) -> str:
        return "URI(%r)" % str(self)

    def copy(self) -> URI:
        """A new URI with the same attributes (the same ``credentials`` object)."""
        return URI(self.host, self.use_tls, self.user, self.port, self.session_id,
                   self.parameters, self.credentials, self.transport)


def parse_uri(text: str) -> URI:
    """Parse an ``msrp://`` or ``msrps://`` URI.

    Raises :class:`~msrplib.errors.URIParseError` naming what is wrong.
    """
    match = _URI_RE.fullmatch(text)
    if match is None:
        raise URIParseError("not an MSRP URI: %r" % (text,))
    scheme = match.group("scheme").lower()
    if scheme not in ("msrp", "msrps"):
        raise URIParseError("unknown URI scheme %r in %r (expected msrp or msrps)"
                            % (match.group("scheme"), text))
    port_text = match.group("port")
    port = None
    if port_text is not None:
        if not port_text or len(port_text) > 5 or int(port_text) > 65535:
            raise URIParseError("bad port %r in %r" % (port_text[:40], text[:200]))
        port = int(port_text)
    session_id = match.group("session_id")
    if session_id is not None and not _SESSION_ID_RE.fullmatch(session_id):
        raise URIParseError("bad session-id %r in %r" % (session_id, text))
    params_text = match.group("params")
    if params_text is None:
        raise URIParseError("no transport parameter (such as ';tcp') in %r" % (text,))
    transport, *extra = params_text.split(";")
    if not _TOKEN_RE.fullmatch(transport):
        raise URIParseError("bad transport %r in %r" % (transport, text))
    parameters: Dict[str, Optional[str]] = {}
    for item in extra:
        name, eq, value = item.partition("=")
        if not _TOKEN_RE.fullmatch(name) or (eq and not _TOKEN_RE.fullmatch(value)):
            raise URIParseError("bad URI parameter %r in %r" % (item, text))
        parameters[name] = value if eq else None
    return URI(host=match.group("ipv6") or match.group("host"), use_tls=scheme == "msrps",
               user=match.group("user"), port=port, session_id=session_id,
               parameters=parameters, transport=transport)
