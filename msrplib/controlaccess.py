"""Who may drive the control API, and how much of a request it reads.

- **The credential.** Every request carries ``Authorization: Bearer <token>``; without the
  right token it gets 401. ``twistd msrp`` keeps the token in a file only its user can
  read (:func:`load_or_create_token`), so being able to read that file is what being
  allowed to drive the service means.
- **Browsers.** A web page the user opens can make the browser send requests to a local
  port: directly (a form POST needs no permission) or through DNS rebinding (a name of the
  attacker's that resolves to 127.0.0.1). Such requests carry a ``Host`` that is not ours
  or an ``Origin`` of another site, and a form cannot send ``application/json``: requests
  whose ``Host`` is not a loopback name or the control address, or whose ``Origin`` is not
  the control API's own, get 403 (:func:`refusal`); the control API answers a POST that
  is not ``Content-Type: application/json`` with 415.
- **Size.** A request body over ``max_request_size`` gets 413 as soon as its length is
  known (or, sent in chunks, once it passes the limit), without being kept, and the
  connection is closed (:class:`ControlSite`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import secrets
import stat
import tempfile
from typing import Any, Optional, Tuple
from urllib.parse import urlsplit

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

__all__ = ["ControlSite", "CredentialError", "DEFAULT_MAX_REQUEST_SIZE", "DEFAULT_TOKEN_FILE",
           "load_or_create_token", "new_token", "refusal"]

#: Where ``twistd msrp`` keeps its token unless ``--control-token-file`` says otherwise.
DEFAULT_TOKEN_FILE = "msrp-control-token"
#: The largest request body the control API reads (``--max-request-size``).
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024
#: The shortest token accepted from a token file.
MIN_TOKEN_LENGTH = 16
#: The most bytes read from a token file.
_TOKEN_FILE_LIMIT = 4096
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+\Z")
#: A port in a Host header: ASCII digits, five at most.
_PORT_RE = re.compile(r"[0-9]{1,5}")


class CredentialError(ValueError):
    """The token file cannot be used (others may read it, it is not ours, it holds no
    token...): the service does not start."""


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


def load_or_create_token(path: str) -> Tuple[str, bool]:
    """The token in ``path``, or a new one written there (mode 0600); and whether it was
    created. An existing file must be a regular file of ours that neither group nor others
    may read or write: one that someone else could have written or read is refused."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return _create(path), True
    except OSError as error:
        raise CredentialError("cannot open the token file %s: %s"
                              % (path, error.strerror)) from None
    with os.fdopen(descriptor, "rb") as source:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise CredentialError("the token file %s is not a regular file" % path)
        if status.st_uid != os.geteuid():
            raise CredentialError("the token file %s belongs to another user" % path)
        if status.st_mode & 0o077:
            raise CredentialError("the token file %s may be read or written by others "
                                  "(chmod 600 it)" % path)
        text = source.read(_TOKEN_FILE_LIMIT).decode("ascii", "replace").strip()
    if len(text) < MIN_TOKEN_LENGTH or not _TOKEN.match(text):
        raise CredentialError("the token file %s must hold one token of at least %d "
                              "letters, digits or ._~+/=-" % (path, MIN_TOKEN_LENGTH))
    return text, False


def _create(path: str) -> str:
    """Write a new token to ``path``: complete before the name appears, never replacing a
    file that appeared meanwhile (that one is read instead)."""
    token = new_token()
    directory = os.path.dirname(os.path.abspath(path))
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".msrp-token-", dir=directory)
    except OSError as error:
        raise CredentialError("cannot create the token file %s: %s"
                              % (path, error.strerror)) from None
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(token + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return load_or_create_token(path)[0]
    except OSError as error:
        raise CredentialError("cannot create the token file %s: %s"
                              % (path, error.strerror)) from None
    finally:
        os.unlink(temporary)
    return token


def _split_host(value: str) -> Optional[Tuple[str, Optional[str]]]:
    """``(host, port)`` of a ``Host`` header value, or ``None`` when it is not one."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        host, colon, port_text = value.partition(":")
        port = port_text if colon else None
    if port is not None and not _PORT_RE.fullmatch(port):
        return None
    return host.lower().rstrip("."), port


def _our_name(host: str, local: Any) -> bool:
    """True for a loopback name or address, or the address the API is listening on."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    return isinstance(local, (IPv4Address, IPv6Address)) and \
        address == ipaddress.ip_address(local.host.split("%")[0])


def _host_refusal(request: Any, local: Any) -> Optional[str]:
    values = request.requestHeaders.getRawHeaders(b"host") or []
    if len(values) != 1:
        return "a request needs one Host header"
    try:
        split = _split_host(values[0].decode("ascii"))
    except UnicodeDecodeError:
        split = None
    if split is None or not _our_name(split[0], local):
        return "Host must be the control address or a loopback name"
    return None


def _origin_refusal(request: Any, local: Any) -> Optional[str]:
    values = request.requestHeaders.getRawHeaders(b"origin")
    if values is None:
        return None
    foreign = "requests from another origin are refused"
    if len(values) != 1 or not isinstance(local, (IPv4Address, IPv6Address)):
        return foreign
    try:
        origin = urlsplit(values[0].decode("ascii"))
        port = origin.port
    except (UnicodeDecodeError, ValueError):
        return foreign
    if origin.scheme != "http" or port != local.port or \
            not _our_name((origin.hostname or "").rstrip("."), local):
        return foreign
    return None


def refusal(request: Any, token: str) -> Optional[Tuple[int, str]]:
    """``(status, reason)`` when ``request`` may not drive the API: 403 for a foreign
    ``Host`` or ``Origin``, 401 without the token; ``None`` when it may."""
    local = request.getHost()
    reason = _host_refusal(request, local) or _origin_refusal(request, local)
    if reason is not None:
        return 403, reason
    values = request.requestHeaders.getRawHeaders(b"authorization") or []
    scheme, _, given = values[0].partition(b" ") if len(values) == 1 else (b"", b"", b"")
    if scheme.lower() != b"bearer" or \
            not hmac.compare_digest(given.strip(), token.encode("ascii")):
        return 401, "this API needs its token: Authorization: Bearer <token>"
    return None


def json_response(status: int, reason: str, body: Any) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for answering before Twisted
    made a request of it."""
    data = json.dumps(body).encode("utf-8") + b"\n"
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (status, reason.encode("ascii"), len(data))) + data


class _LimitedRequest(Request):
    """A request whose body is refused (413) past its site's ``max_request_size``, and is
    never parsed as a form (the API takes JSON only: see the control API's 415)."""

    too_large = False
    _body_size = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False

    def _limit(self) -> int:
        channel: Any = self.channel
        limit: int = channel.site.max_request_size
        return limit

    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > self._limit():
            self._refuse()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._body_size += len(data)
        if self._body_size > self._limit():
            self._refuse()
        else:
            super().handleContentChunk(data)

    def _refuse(self) -> None:
        """Answer 413 now and close: the rest of the body is neither kept nor waited for."""
        self.too_large = True
        self.content = _Discarded()
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after the 413
        channel: Any = self.channel
        channel.transport.write(json_response(
            413, "Payload Too Large",
            {"error": "the request body is over %d bytes" % self._limit()}))
        channel.loseConnection()

    def process(self) -> None:
        if not self.too_large:
            super().process()


class _Discarded:
    """A request body that is not kept."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _JSONErrorChannel(HTTPChannel):
    """An HTTP channel whose answer to bytes that are not a valid HTTP request (a bad
    request line, bad header framing...) is a JSON 400 like the API's own errors."""

    def _respondToBadRequestAndDisconnect(self) -> None:
        transport: Any = self.transport
        transport.write(json_response(400, "Bad Request",
                                      {"error": "this is not a valid HTTP request"}))
        self.loseConnection()


class ControlSite(Site):
    """The control API's site: requests with bodies up to ``max_request_size`` bytes, and
    JSON errors even for what is not HTTP."""

    requestFactory = _LimitedRequest
    protocol = _JSONErrorChannel  # type: ignore[assignment]

    def __init__(self, resource: Any, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
                 **options: Any) -> None:
        super().__init__(resource, **options)
        self.max_request_size = max_request_size
