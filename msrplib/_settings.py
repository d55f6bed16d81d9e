"""The limits and timings of a session: :class:`SessionSettings` (documented in
``doc/sessions.rst``), read by the session's sender and receiver as it runs, so that a
session's settings may be replaced while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["SessionSettings", "RESPONSE_TIMEOUT"]

#: Seconds to wait for a transaction's response before one is generated locally (the seed's).
RESPONSE_TIMEOUT = 30.0


@dataclass
class SessionSettings:
    """Every limit of a session; the defaults are documented in ``doc/sessions.rst``.

    ``response_timeout``: seconds before a missing response becomes a local 408 (or 200).
    ``report_timeout``: seconds after the last chunk's response to wait for a success REPORT.
    ``keepalive_interval``: seconds of silence before an empty SEND checks the peer; 0: off.
    ``chunk_size``: body bytes per chunk of ``send_message`` (relays may need less).
    ``max_message_size``: largest incoming message; bigger ones are refused with 413.
    ``max_outstanding_chunks``: chunks sent and not yet answered before sending waits.
    ``max_out_of_order``: bytes held for an ``IConsumer`` sink that arrived ahead of a gap;
    past it the message is refused (413) rather than buffered without bound.
    ``max_incoming_messages``: messages arriving at once; a new one past it gets 413.
    ``progress_report_bytes``: for an incoming message that asks for success reports, a
    partial success REPORT goes back each time this many more bytes arrived in order
    (the sender's pacing through relays); ``None``: whole messages only.
    ``max_unreported_bytes``: body bytes a message sent with success reports may run ahead
    of the peer's REPORTs; ``None``: no limit (a relay transport brings its own).
    ``progress_report_wait``: seconds a message held by that limit waits for the first
    partial REPORT from the peer; without one its limit doubles and it goes on (a whole
    REPORT for it then shows a peer that reports whole messages only, and the limit is
    dropped for the session; see ``msrplib._pacing``).
    ``relayed_failure_wait``: through a relay, seconds a message sent without success
    reports (Failure-Report ``yes``) still waits after its last 200 before it counts as
    sent: the relay answered those 200s, and only a failure REPORT from the peer tells
    that it refused the message; 0: count it sent at once.
    ``confirm_through_relays``: through a relay, a message whose sender does not say asks
    for a success REPORT, so that one a relay answered and then dropped fails (408 after
    ``report_timeout``) rather than counting as sent; False: ask for none.
    ``shutdown_timeout``: seconds ``shutdown`` waits without hearing anything from the
    peer before it ends the session at once, as ``abort`` does, failing what is still
    under way: a peer that is gone (a BYE, a dead link) never holds a shutdown longer;
    0: wait for answers as long as ``response_timeout`` allows.
    ``write_stall_timeout``: seconds the socket may take nothing while there is more to
    write before the session ends with an error: the peer stopped reading, so nothing
    queued would ever go and nothing it owes would come; 0: wait for ever.
    ``max_message_pieces``: pieces of an incoming message that may be held apart at once
    (arrived out of order, with gaps between them): each costs memory whatever its size,
    so past it the message is refused with 413.
    ``incomplete_message_timeout``: seconds an incoming message may go without a chunk
    (while its own consumer is not holding it back) before it is dropped: the receiver
    hears ``message_failed``, the sender a failure REPORT (408) when it asked for them;
    ``None``: never.
    """

    response_timeout: float = RESPONSE_TIMEOUT
    report_timeout: float = RESPONSE_TIMEOUT
    keepalive_interval: float = 60.0
    chunk_size: int = 64 * 1024
    max_message_size: Optional[int] = 64 * 1024 * 1024
    max_outstanding_chunks: int = 32
    max_out_of_order: Optional[int] = 16 * 1024 * 1024
    max_incoming_messages: int = 64
    progress_report_bytes: Optional[int] = 16 * 1024
    max_unreported_bytes: Optional[int] = None
    progress_report_wait: float = 5.0
    incomplete_message_timeout: Optional[float] = 300.0
    max_message_pieces: int = 1024
    relayed_failure_wait: float = 2.0
    confirm_through_relays: bool = True
    shutdown_timeout: float = 2.0
    write_stall_timeout: float = 60.0
