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
POST    /sessions/<id>/messages         ``{"text": ..., "content_type": ...}``: answers
                                        ``{"message_id"}`` once delivered
POST    /sessions/<id>/files            ``{"file": "/local/path", "content_type": ...}``:
                                        answers ``{"message_id"}`` once delivered
GET     /sessions/<id>/events?since=N   what happened after event N: ``connected``,
                                        ``message`` (with its inbox ``file``),
                                        ``message-failed``, ``progress``, ``closed``
DELETE  /sessions/<id>                  shut the session down
======  ==============================  ===================================================

Errors answer ``{"error": "..."}`` with 400 (bad request), 404 (no such session), 409 (the
session is not in the state the call needs) or 502 (the MSRP peer or relay refused;
``code`` carries its response code).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from msrplib.errors import MSRPError
from msrplib.service import MSRPEndpointService, SessionNotFound, SessionStateError

__all__ = ["ControlAPI"]


class _BadRequest(ValueError):
    """The request's JSON or parameters are wrong."""


class ControlAPI(Resource):
    """The whole API as one leaf resource; every answer is JSON."""

    isLeaf = True
    log = Logger()

    def __init__(self, service: MSRPEndpointService) -> None:
        super().__init__()
        self.service = service

    def render(self, request: Any) -> Any:
        path = [part.decode("utf-8") for part in request.postpath if part]
        method = request.method.decode("ascii")
        gone = {"yes": False}
        request.notifyFinish().addErrback(lambda failure: gone.update(yes=True))

        def answer(status: int, body: Any) -> None:
            if gone["yes"]:
                return
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps(body).encode("utf-8") + b"\n")
            request.finish()

        def failed(failure: Failure) -> None:
            status, body = self._error(failure)
            answer(status, body)

        result = maybeDeferred(self._route, method, path, request)
        result.addCallbacks(lambda body: answer(200, body), failed)
        return NOT_DONE_YET

    def _error(self, failure: Failure) -> Any:
        error = failure.value
        if isinstance(error, SessionNotFound):
            return 404, {"error": "no session %s" % error.args[0]}
        if isinstance(error, _BadRequest):
            return 400, {"error": str(error)}
        if isinstance(error, SessionStateError):
            return 409, {"error": str(error)}
        if isinstance(error, (ValueError, OSError)):
            return 400, {"error": str(error)}
        if isinstance(error, MSRPError):
            return 502, {"error": str(error), "code": error.code}
        self.log.failure("control API request failed", failure)
        return 500, {"error": "internal error: %s" % error}

    def _route(self, method: str, path: List[str], request: Any) -> Any:
        service = self.service
        if path == [] and method == "GET":
            return {"service": "msrplib", "sessions": len(service.sessions),
                    "relay": service.options.relay is not None}
        if path == ["sessions"] and method == "GET":
            return [managed.describe() for managed in service.sessions.values()]
        if path == ["sessions"] and method == "POST":
            body = self._body(request)
            return service.create_session(body.get("setup", "active")).addCallback(
                lambda managed: managed.describe())
        if len(path) < 2 or path[0] != "sessions":
            raise _BadRequest("no such call: %s /%s" % (method, "/".join(path)))
        session_id, rest = path[1], path[2:]
        if rest == [] and method == "GET":
            return service.get(session_id).describe()
        if rest == [] and method == "DELETE":
            return service.close_session(session_id).addCallback(lambda _: {"closed": True})
        if rest == ["events"] and method == "GET":
            since = request.args.get(b"since", [b"0"])[0]
            if not since.isdigit():
                raise _BadRequest("since must be a number")
            return service.get(session_id).events_since(int(since))
        if method != "POST" or rest not in (["complete"], ["messages"], ["files"]):
            raise _BadRequest("no such call: %s /%s" % (method, "/".join(path)))
        body = self._body(request)
        if rest == ["complete"]:
            return service.complete_session(
                session_id, self._text(body, "path"), body.get("fingerprint"),
                body.get("accept_types")).addCallback(lambda managed: managed.describe())
        if rest == ["messages"]:
            return service.send_text(
                session_id, self._text(body, "text"), body.get("content_type", "text/plain"),
                body.get("success_report", "no")).addCallback(
                lambda message_id: {"message_id": message_id})
        return service.send_file(
            session_id, self._text(body, "file"),
            body.get("content_type", "application/octet-stream"),
            body.get("success_report", "yes")).addCallback(
            lambda message_id: {"message_id": message_id})

    @staticmethod
    def _body(request: Any) -> Dict[str, Any]:
        raw = request.content.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError as error:
            raise _BadRequest("the body is not JSON: %s" % error) from None
        if not isinstance(body, dict):
            raise _BadRequest("the body must be a JSON object")
        return body

    @staticmethod
    def _text(body: Dict[str, Any], name: str) -> str:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise _BadRequest("%r is required (a string)" % name)
        return value
