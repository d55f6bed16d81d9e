"""The rules every receiver of a request applies, in one place: whether the request's
Failure-Report lets it be answered with a given code, and which requests are refused with
400 for their headers alone (RFC 4975 sections 5.3, 7.1 and 9).

The parser only frames chunks; what a well-framed request says is checked here, so that a
session, a listening server and a relay acceptor answer the same request the same way.
"""

from __future__ import annotations

import re
from typing import Optional

from msrplib._chunk import MSRPData
from msrplib.errors import MSRPError

__all__ = ["should_respond", "answers_success", "answers_errors", "sends_failure_reports",
           "report_flag", "request_error", "is_empty_send", "SINGLE_HEADERS", "MESSAGE_ID_RE"]

#: Headers a request may carry at most once: a second one would make its meaning depend on
#: which one a reader looks at.
SINGLE_HEADERS = frozenset({
    "to-path", "from-path", "message-id", "byte-range", "status", "content-type",
    "success-report", "failure-report", "expires", "min-expires", "max-expires",
})

#: RFC 4975's ``ident``: a letter or digit, then up to 31 of ``.-+%=`` and letters or
#: digits. RFC 4975 asks for 4 characters at least; shorter ones are taken (some peers
#: send them, and they harm nobody), longer ones and other characters are not.
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+%=-]{0,31}")


def report_flag(request: MSRPData, name: str) -> Optional[str]:
    """``request``'s ``success-report`` or ``failure-report`` (``name``), in lower case:
    RFC 4975 spells their values as ABNF literals, which match in any case (``NO`` is
    ``no``); ``None`` when it has none."""
    value = request.headers.first.get(name)
    return None if value is None else value.lower()


# The Failure-Report rule (RFC 4975 sections 7.1.1 and 7.1.2). ``None`` is a request
# without the header, which means ``yes``; a value RFC 4975 does not name is answered as
# ``yes`` is, but asks for no failure REPORT.

def answers_success(failure_report: Optional[str]) -> bool:
    """Whether a request with this Failure-Report gets a 200 when it succeeds (``yes``):
    what its sender waits for, and, when it does not come, takes as a 408."""
    return failure_report != "no" and failure_report != "partial"


def answers_errors(failure_report: Optional[str]) -> bool:
    """Whether a request with this Failure-Report gets an error response when it fails
    (``yes`` and ``partial``): ``no`` gets no answer at all."""
    return failure_report != "no"


def sends_failure_reports(failure_report: Optional[str]) -> bool:
    """Whether a message whose chunks carry this Failure-Report gets a failure REPORT
    when it is refused or lost after its chunks were answered (``yes``, ``partial``)."""
    return failure_report is None or failure_report == "yes" or failure_report == "partial"


def should_respond(request: MSRPData, code: int) -> bool:
    """Whether ``request``'s Failure-Report allows answering it with ``code``."""
    failure_report = report_flag(request, "failure-report")
    if failure_report is None:
        return True  # the usual case: yes
    if code == 200:
        return answers_success(failure_report)
    return answers_errors(failure_report)


def request_error(request: MSRPData) -> Optional[MSRPError]:
    """The 400 that ``request`` gets for its headers alone, or ``None``.

    A request must name one non-empty To-Path and From-Path, carry no header of
    :data:`SINGLE_HEADERS` twice, and have a well-formed Message-ID when it has one
    (SEND and REPORT must have one). Whether the paths are the right ones is the
    receiver's own check.
    """
    headers = request.headers
    first = headers.first
    if len(first) != len(headers._items):
        seen = set()
        for _, lower, _ in headers._items:
            if lower in seen and lower in SINGLE_HEADERS:
                return MSRPError("%s appears more than once" % lower, 400, "Bad Request")
            seen.add(lower)
    for lower, name in (("to-path", "To-Path"), ("from-path", "From-Path")):
        value = first.get(lower)
        if value is None or not value.strip():
            return MSRPError("%s request without %s" % (request.method, name), 400,
                             "Bad Request")
    message_id = first.get("message-id")
    if message_id is None:
        if request.method in ("SEND", "REPORT"):
            return MSRPError("%s request without Message-ID" % request.method, 400,
                             "Bad Request")
    elif not MESSAGE_ID_RE.fullmatch(message_id):
        return MSRPError("Message-ID %r is not 1 to 32 letters, digits or .-+%%=" %
                         message_id[:80], 400, "Bad Request")
    return None


def is_empty_send(request: MSRPData) -> bool:
    """Whether ``request`` is a SEND that carries nothing (a binding, a keepalive): no body,
    no Content-Type, and a Byte-Range, if any, that names no bytes."""
    if request.method != "SEND" or request.data or "content-type" in request.headers.first:
        return False
    try:
        byte_range = request.byte_range
    except MSRPError:
        return False
    return byte_range is None or byte_range.end is None or \
        byte_range.end == byte_range.start - 1
