"""End-to-end pacing of messages sent with success reports, by the peer's REPORTs.

A relay answers each chunk itself (RFC 4976), so its ``200`` s say nothing about the
receiver; and a relay that applies no backpressure drops a receiver that falls behind. The
only end-to-end signal is the receiver's success REPORTs, which RFC 4975 lets it send for
parts of a message as they arrive. A session with a limit therefore keeps each such message
at most that many body bytes ahead of what the peer's REPORTs confirmed.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from msrplib._outgoingmessage import OutgoingMessage

__all__ = ["ReportWindow"]

Messages = Callable[[List[OutgoingMessage]], None]


class ReportWindow:
    """Holds back messages that ran ``message.window_limit`` bytes ahead of the REPORTs.

    Whether the peer reports parts of messages is learnt, from evidence only. Until a
    partial REPORT has come, a message held for ``wait()`` seconds goes on with its limit
    doubled (``release``): a receiver that stalls at the start of a file gets a little
    more, never a flood (a relay such as Kamailio drops a receiver that falls behind).
    A partial REPORT shows that the peer reports progress: limits go back to what they
    were. A whole-message REPORT for a message that had to be let on so shows that it
    reports whole messages only: the window is switched off for the session. Once the
    peer is known to report progress, a message held for ``timeout()`` seconds without
    any REPORT is given up (``expire``).
    """

    def __init__(self, reactor: Any, wait: Callable[[], float], timeout: Callable[[], float],
                 release: Messages, expire: Messages) -> None:
        self._reactor = reactor
        self._wait = wait
        self._timeout = timeout
        self._release = release
        self._expire = expire
        #: ``None`` until learnt: does the peer send REPORTs for parts of messages?
        self.peer_reports_progress: Optional[bool] = None
        self.held: Dict[OutgoingMessage, None] = {}
        #: Messages let on past their limit for want of a partial REPORT, with the limit
        #: they started with.
        self._probed: Dict[OutgoingMessage, int] = {}
        self._timer: Any = None

    def allows(self, message: OutgoingMessage) -> bool:
        """Whether ``message`` may send its next chunk now; if not, it is held."""
        limit = message.window_limit
        if limit is None or self.peer_reports_progress is False or message.aborted:
            return True
        ahead = message.offset - message.confirmed
        if ahead == 0:
            return True
        upcoming = message.chunk_size
        if message.size is not None:
            upcoming = min(upcoming, message.size - message.offset)
        if ahead + upcoming <= limit:
            return True
        self.held[message] = None
        if self._timer is None:
            delay = self._timeout() if self.peer_reports_progress else self._wait()
            self._timer = self._reactor.callLater(delay, self._timed_out)
        return False

    def reported(self, partial: bool, message: Optional[OutgoingMessage] = None) -> None:
        """A success REPORT arrived about ``message`` (``partial``: on part of it): every
        held message may try again."""
        if partial:
            self.peer_reports_progress = True
            for probed, limit in self._probed.items():
                probed.window_limit = limit
            self._probed.clear()
        elif message is not None and self._probed.pop(message, None) is not None \
                and self.peer_reports_progress is None:
            self.peer_reports_progress = False  # whole, never a part: whole messages only
        self._hand_back(self._release)

    def forget(self, message: OutgoingMessage) -> None:
        """``message`` is finished (failed or aborted): stop holding it."""
        self.held.pop(message, None)
        self._probed.pop(message, None)
        if not self.held:
            self._stop_timer()

    def stop(self) -> List[OutgoingMessage]:
        """The session is closing: return the held messages and hold nothing more."""
        held = list(self.held)
        self.held.clear()
        self._stop_timer()
        return held

    def _timed_out(self) -> None:
        self._timer = None
        if self.peer_reports_progress:
            self._hand_back(self._expire)
            return
        held = self.stop()
        for message in held:
            if message.window_limit is not None:
                self._probed.setdefault(message, message.window_limit)
                message.window_limit *= 2
        if held:
            self._release(held)

    def _hand_back(self, to: Messages) -> None:
        held = self.stop()
        if held:
            to(held)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
