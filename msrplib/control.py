"""The service's control API: JSON over HTTP, for a SIP stack or a person with curl.

======  ==============================  ===================================================
method  path                            what it does
======  ==============================  ===================================================
GET     /                               the service: mode, session count
GET     /sessions                       every session
POST    /sessions                       ``{"setup": "active"|"passive"}``: a new session;
                                        answers its ``path`` for SDP ``a=path`` (and
                                        ``fingerprint`` for msrps)
GET     /sessions/<id>                  one session
POST    /sessions/<id>/complete         ``{"path": "<remote a=path>", "fingerprint": ...,
                                        "accept_types": [...]}``: answers once connected
POST    /sessions/<id>/messages         ``{"text": ..., "content_type": ...,
                                        "success_report": "yes"|"no"}`` (not given:
                                        "yes" through a relay, else "no"): answers
                                        ``{"message_id"}`` once delivered
POST    /sessions/<id>/files            ``{"file": "/outbox/path", "content_type": ...,
                                        "success_report": ...}``: answers
                                        ``{"message_id"}`` once delivered
GET     /sessions/<id>/events?since=N   what happened after event N: ``connected``,
                                        ``message`` (with its inbox ``file``),
                                        ``message-failed``, ``progress``, ``closed``
DELETE  /sessions/<id>                  shut the session down
======  ==============================  ===================================================

Every request needs ``Authorization: Bearer <token>`` and a ``Host`` that is a loopback
name or the control address, and a POST needs ``Content-Type: application/json`` (see
``doc/plugin.rst``). Every answer is JSON; errors are ``{"error": "..."}`` with 400 (a bad
request), 401 (no or a wrong token), 403 (a foreign Host or Origin, or a file the service
may not send), 404 (no such session or resource), 405 (a method the resource does not
have; ``Allow`` lists those it has), 409 (the session is not in the state the call needs),
413 (a body over the limit), 415 (a POST that is not JSON), 429 (too many sessions) or 502
(the MSRP peer or relay refused or could not be reached; ``code`` carries its response
code when it gave one).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote_to_bytes

from twisted.application.service import Service
from twisted.internet.defer import inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from msrplib.controlaccess import DEFAULT_MAX_REQUEST_SIZE, ControlSite, refusal
from msrplib.errors import MSRPError
from msrplib.outbox import OutboxRefused
from msrplib.protocol import parse_number
from msrplib.service import (MSRPEndpointService, SessionNotFound, SessionStateError,
                             TooManySessions)

__all__ = ["ControlAPI", "ControlAPIService", "DEFAULT_CONTROL"]

#: Where the control API listens unless told otherwise.
DEFAULT_CONTROL = "tcp:8855:interface=127.0.0.1"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(r"%s/%s(\s*;\s*%s=(%s|\"[^\"\\\x00-\x1f\x7f]*\"))*\Z"
                         % (_TOKEN, _TOKEN, _TOKEN, _TOKEN))
_ACCEPT_TYPE = re.compile(r"(\*|%s/(\*|%s))\Z" % (_TOKEN, _TOKEN))
_REPORT_VALUES = ("yes", "no")


class HTTPError(Exception):
    """An answer other than 200: ``status``, the ``error`` text, and extra headers."""

    def __init__(self, status: int, message: str,
                 headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _path_of(request: Any) -> List[str]:
    """The request path's segments, as text; 400 when they are not UTF-8."""
    raw = request.path.split(b"?", 1)[0]
    try:
        return [unquote_to_bytes(part).decode("utf-8") for part in raw.split(b"/") if part]
    except UnicodeDecodeError:
        raise HTTPError(400, "the path is not UTF-8") from None


def _text(body: Dict[str, Any], name: str, default: Optional[str] = None,
          required: bool = False) -> Optional[str]:
    """``body[name]``, which must be a string of valid Unicode text when present."""
    value = body.get(name, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise HTTPError(400, "%r must be a%s string" % (name, " non-empty" if required else ""))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HTTPError(400, "%r is not valid Unicode text" % name) from None
    return value


def _choice(body: Dict[str, Any], name: str, choices: Tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or value not in choices:
        raise HTTPError(400, "%r must be one of %s" % (name, ", ".join(choices)))
    return value


def _media_type(body: Dict[str, Any], name: str, default: str) -> str:
    value = _text(body, name, default) or default
    if not _MEDIA_TYPE.match(value):
        raise HTTPError(400, "%r must be a media type such as text/plain" % name)
    return value


def _accept_types(body: Dict[str, Any]) -> Optional[List[str]]:
    value = body.get("accept_types")
    if value is None:
        return None
    if not isinstance(value, list) or not value or \
            not all(isinstance(item, str) and _ACCEPT_TYPE.match(item) for item in value):
        raise HTTPError(400, "'accept_types' must be a list of media types "
                             "(such as text/plain, image/* or *)")
    return value


class ControlAPI(Resource):
    """The whole API as one leaf resource; every answer is JSON.

    ``token`` is the credential every request must carry.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, service: MSRPEndpointService, token: str) -> None:
        super().__init__()
        self.service = service
        self.token = token
        self._routes: List[Tuple[Tuple[str, ...], Dict[str, Callable[..., Any]]]] = [
            ((), {"GET": self._service}),
            (("sessions",), {"GET": self._list, "POST": self._create}),
            (("sessions", "*"), {"GET": self._describe, "DELETE": self._close}),
            (("sessions", "*", "complete"), {"POST": self._complete}),
            (("sessions", "*", "messages"), {"POST": self._send_text}),
            (("sessions", "*", "files"), {"POST": self._send_file}),
            (("sessions", "*", "events"), {"GET": self._events}),
        ]

    def render(self, request: Any) -> Any:
        gone = {"yes": False}
        request.notifyFinish().addErrback(lambda failure: gone.update(yes=True))

        def answer(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
            if gone["yes"]:
                return
            data = json.dumps(body).encode("utf-8") + b"\n"
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"content-length", b"%d" % len(data))
            for name, value in (headers or {}).items():
                request.setHeader(name.encode("ascii"), value.encode("ascii"))
            request.write(data)
            request.finish()

        def failed(failure: Failure) -> None:
            status, body, headers = self._error(failure)
            answer(status, body, headers)

        result = maybeDeferred(self._dispatch, request)
        result.addCallbacks(lambda body: answer(200, body), failed)
        return NOT_DONE_YET

    def _dispatch(self, request: Any) -> Any:
        refused = refusal(request, self.token)
        if refused is not None:
            status, reason = refused
            headers = {"WWW-Authenticate": 'Bearer realm="msrplib"'} if status == 401 else None
            raise HTTPError(status, reason, headers)
        path = _path_of(request)
        method = request.method.decode("ascii", "replace")
        pattern, methods = self._route(path)
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise HTTPError(405, "%s takes %s" % ("/" + "/".join(path), allowed),
                            {"Allow": allowed})
        arguments = [part for part, wanted in zip(path, pattern) if wanted == "*"]
        body = self._body(request) if method == "POST" else {}
        return handler(request, body, *arguments)

    def _route(self, path: List[str]) -> Tuple[Tuple[str, ...], Dict[str, Callable[..., Any]]]:
        """The route whose pattern (``*``: any one segment) ``path`` matches; 404 if none."""
        for pattern, methods in self._routes:
            if len(pattern) == len(path) and all(
                    part == "*" or part == given for part, given in zip(pattern, path)):
                return pattern, methods
        raise HTTPError(404, "no such resource: /%s" % "/".join(path))

    def _error(self, failure: Failure) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
        error = failure.value
        if isinstance(error, HTTPError):
            return error.status, {"error": str(error)}, error.headers
        if isinstance(error, OutboxRefused):
            return error.status, {"error": str(error)}, {}
        if isinstance(error, SessionNotFound):
            return 404, {"error": "no session %s" % error.args[0]}, {}
        if isinstance(error, SessionStateError):
            return 409, {"error": str(error)}, {}
        if isinstance(error, TooManySessions):
            return 429, {"error": str(error)}, {}
        if isinstance(error, ValueError):  # a path, a fingerprint... that does not parse
            return 400, {"error": str(error)}, {}
        if isinstance(error, MSRPError):
            return 502, {"error": str(error), "code": error.code}, {}
        if isinstance(error, (ConnectError, ConnectionLost, ConnectionDone)):
            return 502, {"error": "the connection failed: %s" % error}, {}
        self.log.failure("control API request failed", failure)
        return 500, {"error": "internal error"}, {}

    @staticmethod
    def _body(request: Any) -> Dict[str, Any]:
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0]
        if content_type.strip().lower() != b"application/json":
            raise HTTPError(415, "a POST must be Content-Type: application/json")
        raw = request.content.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as error:
            raise HTTPError(400, "the body is not JSON: %s" % error) from None
        except RecursionError:  # nested deeper than the parser goes
            raise HTTPError(400, "the body is not JSON: nested too deeply") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return body

    # The calls.

    def _service(self, request: Any, body: Dict[str, Any]) -> Any:
        service = self.service
        return {"service": "msrplib", "sessions": len(service.sessions),
                "relay": service.options.relay is not None}

    def _list(self, request: Any, body: Dict[str, Any]) -> Any:
        return [managed.describe() for managed in self.service.sessions.values()]

    def _create(self, request: Any, body: Dict[str, Any]) -> Any:
        setup = _choice(body, "setup", ("active", "passive"), "active")
        return self.service.create_session(setup).addCallback(
            lambda managed: managed.describe())

    def _describe(self, request: Any, body: Dict[str, Any], session_id: str) -> Any:
        return self.service.get(session_id).describe()

    def _close(self, request: Any, body: Dict[str, Any], session_id: str) -> Any:
        return self.service.close_session(session_id).addCallback(lambda _: {"closed": True})

    def _events(self, request: Any, body: Dict[str, Any], session_id: str) -> Any:
        try:
            since = parse_number(request.args.get(b"since", [b"0"])[0], "since")
        except ValueError as error:
            raise HTTPError(400, str(error)) from None
        return self.service.get(session_id).events_since(since)

    def _complete(self, request: Any, body: Dict[str, Any], session_id: str) -> Any:
        path = _text(body, "path", required=True)
        fingerprint = _text(body, "fingerprint")
        accept_types = _accept_types(body)
        return self.service.complete_session(session_id, path or "", fingerprint,
                                             accept_types).addCallback(
            lambda managed: managed.describe())

    def _send_text(self, request: Any, body: Dict[str, Any], session_id: str) -> Any:
        text = _text(body, "text", required=True) or ""
        content_type = _media_type(body, "content_type", "text/plain")
        # Not given: the session's default (a success REPORT through a relay, else none).
        success_report = (_choice(body, "success_report", _REPORT_VALUES, "no")
                          if "success_report" in body else None)
        return self.service.send_text(session_id, text, content_type, success_report
                                      ).addCallback(lambda message_id: {"message_id": message_id})

    def _send_file(self, request: Any, body: Dict[str, Any], session_id: str) -> Any:
        path = _text(body, "file", required=True) or ""
        content_type = _media_type(body, "content_type", "application/octet-stream")
        success_report = _choice(body, "success_report", _REPORT_VALUES, "yes")
        return self.service.send_file(session_id, path, content_type, success_report
                                      ).addCallback(lambda message_id: {"message_id": message_id})


class ControlAPIService(Service):
    """The control API of ``endpoint`` (an :class:`~msrplib.service.MSRPEndpointService`),
    listening on ``control``, a Twisted server endpoint description such as
    ``tcp:8855:interface=127.0.0.1`` or ``unix:/run/msrp.sock`` (made mode 0600 unless the
    description gives a ``mode``). Every request must carry ``token``; ``token_file`` is
    where it came from, for the log line that says where the API listens."""

    log = Logger()

    def __init__(self, endpoint: MSRPEndpointService, control: str, token: str, *,
                 max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
                 token_file: Optional[str] = None, reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.endpoint = endpoint
        self.control = _private_unix_socket(control)
        self.token = token
        self.max_request_size = max_request_size
        self.token_file = token_file
        self.reactor = reactor
        #: The listening port, once started.
        self.port: Any = None

    @inlineCallbacks
    def startService(self) -> Any:
        Service.startService(self)
        site = ControlSite(ControlAPI(self.endpoint, self.token),
                           max_request_size=self.max_request_size)
        self.port = yield serverFromString(self.reactor, self.control).listen(site)
        self.log.info("MSRP control API on {address}; every request needs "
                      "'Authorization: Bearer <token>', the token is {where}",
                      address=_describe_address(self.port.getHost()),
                      where="in %s" % os.path.abspath(self.token_file)
                      if self.token_file else "the service's token")

    def stopService(self) -> Any:
        Service.stopService(self)
        if self.port is not None:
            return self.port.stopListening()
        return None


def _private_unix_socket(control: str) -> str:
    """``control``, with ``mode=600`` added to a UNIX socket's description without one:
    only our user may connect to it."""
    if control.startswith("unix:") and ":mode=" not in control:
        return control + ":mode=600"
    return control


def _describe_address(address: Any) -> str:
    if hasattr(address, "port"):
        host = "[%s]" % address.host if ":" in address.host else address.host
        return "http://%s:%d/" % (host, address.port)
    return "unix:%s" % os.fsdecode(address.name)
