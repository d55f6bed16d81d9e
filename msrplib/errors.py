"""Every exception msrplib raises, in one place so that callers can catch them by name.

Errors that an MSRP peer must hear about carry the response ``code`` and ``comment`` that
RFC 4975 assigns to them, so a receiver can answer a bad request without a lookup table.
"""

from __future__ import annotations

from typing import ClassVar, Optional

__all__ = [
    "MSRPError",
    "ChunkParseError",
    "URIParseError",
    "HeaderParseError",
    "MSRPTransactionError",
    "MSRPSessionError",
    "MSRPConnectTimeout",
    "MSRPBindSessionTimeout",
    "MSRPBindError",
    "FingerprintMismatch",
    "ExcessiveBufferingError",
]


class MSRPError(Exception):
    """Base class of msrplib's errors.

    ``code`` and ``comment`` are the MSRP response that reports this error to the peer
    (RFC 4975 section 10), or that the peer answered. Subclasses set sensible defaults;
    instances may override them. An error that no status line stands for has ``code``
    ``None``.
    """

    code: Optional[int] = 400
    comment: str = "Bad Request"

    def __init__(self, message: str = "", code: Optional[int] = None,
                 comment: Optional[str] = None) -> None:
        super().__init__(message or self.comment)
        if code is not None:
            self.code = code
        if comment is not None:
            self.comment = comment


class ChunkParseError(MSRPError):
    """Bytes on the wire that are not a valid MSRP chunk. The connection cannot continue."""


class URIParseError(MSRPError, ValueError):
    """Text that is not a valid ``msrp:`` or ``msrps:`` URI (RFC 4975 section 6)."""


class HeaderParseError(MSRPError, ValueError):
    """A header value that does not follow its RFC grammar."""


class MSRPTransactionError(MSRPError):
    """A transaction ended with an error response (the peer's or a locally generated one)."""


class MSRPSessionError(MSRPError):
    """The session cannot do what was asked, e.g. send after it was shut down, or its
    connection closed. No peer answered anything, so it carries no status ``code``."""

    code = None
    comment = "Session error"


class MSRPConnectTimeout(MSRPError):
    """Opening the TCP or TLS connection took longer than the configured connect timeout."""

    code = 408
    comment = "Connect timeout"


class MSRPBindSessionTimeout(MSRPError):
    """No binding chunk arrived for an expected session in time.

    ``seconds`` is the default time ``complete()`` waits before failing with this error.
    """

    seconds: ClassVar[float] = 30.0
    code = 408
    comment = "Bind timeout"


class MSRPBindError(MSRPError):
    """The binding chunk was refused: the peer answered an error, or sent wrong paths."""


class FingerprintMismatch(MSRPError):
    """The peer's TLS certificate does not match the fingerprint it announced in SDP."""

    code = 403
    comment = "Certificate fingerprint mismatch"


class ExcessiveBufferingError(MSRPError):
    """More of a message arrived out of order than may be held for an in-order consumer
    (``SessionSettings.max_out_of_order``); the message is refused rather than buffered
    without bound."""

    code = 413
    comment = "Too much out of order"
