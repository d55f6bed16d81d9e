"""The relay's backpressure, lossless by construction: :class:`Backpressure`, a base of
:class:`~msrplib.relayserver.relay.MSRPRelay`.

A next hop that cannot take more (its socket is full, or it owes too many answers) holds
back the connections that feed it: they are not read until it can, and the chunks they
had read already wait at the relay, in order (parked). The answers each next hop owes
are awaited with what a failure REPORT needs, on one timer per connection; an answer
that fails, or does not come, becomes a failure REPORT to its sender, once. A held
connection whose own answers fall due is read again for them (graces).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from msrplib._chunk import MSRPData, make_report, make_response
from msrplib._relaysettings import RELAY_FLOW_HEADER
from msrplib._rules import report_flag, sends_failure_reports
from msrplib.relayserver.forwarded import head_fits
from msrplib.relayserver.links import Forwarded, Link, add_count
from msrplib.relayserver.metrics import RelayMetrics
from msrplib.relayserver.settings import RelaySettings

__all__ = ["Backpressure", "MAX_AWAITED_ANSWERS", "HELD_ANSWER_GRACE", "HELD_ANSWER_GRACES",
           "MAX_PARKED_BYTES", "PASSED_BACK_HEADERS"]

#: Answers a next hop may owe at once (for chunks forwarded to it with Failure-Report
#: ``yes`` or ``partial``); past it, what feeds it is not read until it has answered half.
MAX_AWAITED_ANSWERS = 16384
#: Seconds more, and how many times, the answers of a connection the relay holds back
#: (it feeds a next hop that is behind) are waited for: they may be unread in its socket.
HELD_ANSWER_GRACE = 5.0
HELD_ANSWER_GRACES = 3
#: The headers of a next relay's answer to an AUTH that go back to the client with it
#: (besides the paths): what a client of RFC 4976 reads, and msrplib's flow header.
PASSED_BACK_HEADERS = frozenset(["www-authenticate", "use-path", "expires", "min-expires",
                                 "max-expires", RELAY_FLOW_HEADER.lower()])
#: Body bytes of a held-back connection's chunks kept to forward when it is let go (what
#: was parsed from its last read); past it they get 503.
MAX_PARKED_BYTES = 1024 * 1024


class Backpressure:
    """Holding back, parking, and the answers awaited: what the relay needs of itself for
    them is declared here."""

    settings: RelaySettings
    reactor: Any
    metrics: RelayMetrics
    _awaited_bytes: int
    _awaited_by_owner: Dict[str, int]
    _write_to: Callable[..., None]
    _refuse: Callable[..., None]
    _granted_further: Callable[[Link, Forwarded, MSRPData], None]

    def _behind(self, target: Link) -> bool:
        """Whether ``target`` can take no more for now: its socket is full, or it owes
        too many answers."""
        return target.protocol.writing_paused or len(target.pending) >= MAX_AWAITED_ANSWERS \
            or target.awaited_bytes >= self.settings.max_awaited_bytes

    def _park(self, origin: Link, parked: Tuple[Any, ...]) -> None:
        """Keep a chunk of ``origin``'s for later (:meth:`_replay`); past
        :data:`MAX_PARKED_BYTES` of them its sender gets 503 instead."""
        request = parked[0]
        if origin.parked_bytes + len(request.data) > MAX_PARKED_BYTES:
            self._refuse(origin, request, 503, "Next hop behind")
            return
        origin.parked.append(parked)
        origin.parked_bytes += len(request.data)

    def _replay_soon(self, origin: Link) -> None:
        """``origin`` is let go: forward its parked chunks, before what it sends next."""
        if origin.parked and not origin.replay_due:
            origin.replay_due = True
            self.reactor.callLater(0, self._replay, origin)

    def _replay(self, origin: Link) -> None:
        origin.replay_due = False
        while origin.parked and not origin.held_by and not origin.protocol.lost.fired:
            request, paths, our_uri, target, user = origin.parked.pop(0)
            origin.parked_bytes -= len(request.data)
            gone = target.protocol.lost.fired or target.closing
            if not gone and self._behind(target):
                if target.overwhelmed:
                    # As for a chunk sent now: no holding for a next hop behind so long
                    # that its feeds were let go (held again, the origin would stay held
                    # for as long as that next hop does not drain, perhaps for ever).
                    self._refuse(origin, request, 503, "Next hop behind")
                    continue
                origin.parked.insert(0, (request, paths, our_uri, target, user))
                origin.parked_bytes += len(request.data)
                self._hold_feed(origin, target)
                return
            self._write_to(origin, request, paths, our_uri, target, user)

    def _forget_awaited(self, link: Link, entry: Forwarded) -> None:
        """``entry`` is no longer awaited on ``link``: take its weight off the counts."""
        link.awaited_bytes -= entry.size
        self._awaited_bytes -= entry.size
        add_count(self._awaited_by_owner, entry.owner, -entry.size)

    def _hold_feed(self, origin: Link, target: Link) -> None:
        """Stop reading ``origin`` until ``target`` can take more (its socket has
        drained, and it owes fewer than half :data:`MAX_AWAITED_ANSWERS` answers and
        half ``max_awaited_bytes``), or is gone: a feed held is always let go."""
        if origin in target.feeds or target.protocol.lost.fired:
            return  # held already; or gone, and nobody would let it go
        target.feeds.add(origin)
        origin.held_by.add(target)
        origin.protocol.pause_reading(("next hop behind", id(target)))
        if target.protocol.writing_paused and target.stalled_since is None:
            target.stalled_since = self.reactor.seconds()
        self._release_when_drained(target)

    def _release_when_drained(self, target: Link) -> None:
        """While ``target``'s socket is full, look at its feeds again once it drains."""
        if target.protocol.writing_paused and not target.drain_watched:
            target.drain_watched = True

            def drained() -> None:
                target.drain_watched = False
                target.stalled_since = None
                target.overwhelmed = False
                self._release_feeds(target)

            target.protocol.call_when_drained(drained)

    def _release_feeds(self, target: Link, gone: bool = False) -> None:
        """Read ``target``'s feeds again, when it can take more (or is gone)."""
        if not target.feeds:
            return
        if not gone:
            if target.protocol.writing_paused:
                self._release_when_drained(target)
                return
            if len(target.pending) >= MAX_AWAITED_ANSWERS // 2 or \
                    target.awaited_bytes >= self.settings.max_awaited_bytes // 2:
                return  # an answer, or an answer overdue, looks again
        feeds, target.feeds = target.feeds, set()
        for origin in feeds:
            origin.held_by.discard(target)
            origin.protocol.resume_reading(("next hop behind", id(target)))
            self._replay_soon(origin)

    def _let_go(self, link: Link) -> None:
        """Read ``link`` again, whatever held it back, for the answers it owes; for the
        graces' time, what it sends to a next hop that is behind is refused (503), not
        held."""
        link.read_for_answers_until = self.reactor.seconds() + \
            HELD_ANSWER_GRACE * HELD_ANSWER_GRACES
        for target in list(link.held_by):
            target.feeds.discard(link)
            link.protocol.resume_reading(("next hop behind", id(target)))
        link.held_by.clear()
        self._replay_soon(link)

    def _answered(self, link: Link, response: MSRPData) -> None:
        pending = link.pending
        entry = pending.pop(response.transaction_id, None)
        if entry is None:
            return  # an answer to something not ours, or too late
        link.last_traffic = self.reactor.seconds()
        self._forget_awaited(link, entry)
        timer = link.timer
        if pending and timer is not None and timer.active() and \
                next(iter(pending.values())).deadline < timer.getTime():
            # The first in line went, and the next is due sooner (Failure-Report
            # partial behind yes, say): its own time.
            timer.cancel()
            self._watch(link)
        if link.feeds:
            self._release_feeds(link)
        if entry.answers_back:
            self._answer_back(link, entry, response)
        elif response.code != 200:
            self._failed(entry, response.code or 400, response.comment)

    def _watch(self, link: Link) -> None:
        """Wake up when the oldest answer ``link`` owes is due (one timer per link: the
        answers are due in the order they were asked for)."""
        oldest = next(iter(link.pending.values()))
        link.timer = self.reactor.callLater(
            max(0.0, oldest.deadline - self.reactor.seconds()), self._overdue, link)

    def _overdue(self, link: Link) -> None:
        """The answers ``link`` owes that are past due: 408 failure REPORTs (not for
        Failure-Report ``partial``, whose silence is its success). While the relay holds
        ``link`` back, its answers may be waiting unread: it is read again and they get
        :data:`HELD_ANSWER_GRACE` seconds more, up to :data:`HELD_ANSWER_GRACES` times."""
        link.timer = None
        now = self.reactor.seconds()
        while link.pending:
            transaction_id, entry = next(iter(link.pending.items()))
            if entry.deadline > now:
                self._watch(link)
                break
            if link.held_by and entry.graces < HELD_ANSWER_GRACES:
                self._let_go(link)
                entry.graces += 1
                entry.deadline = now + HELD_ANSWER_GRACE
                self._watch(link)
                break
            del link.pending[transaction_id]
            self._forget_awaited(link, entry)
            if entry.answers_back or \
                    report_flag(entry.request, "failure-report") != "partial":
                self._failed(entry, 408, "No answer from the next hop")
        if link.feeds:
            self._release_feeds(link)

    def _failed(self, entry: Forwarded, code: int, comment: Optional[str]) -> None:
        """A forwarded SEND failed further on: a failure REPORT to its sender, as its
        Failure-Report asks, back the way it came (once, however many pieces it was cut
        into; with the Byte-Range of the whole chunk, as its sender sent it)."""
        request = entry.request
        if entry.answers_back:
            self._answer_back(None, entry, make_response(request, code, comment))
            return
        if entry.reported or entry.origin.protocol.lost.fired or \
                not sends_failure_reports(report_flag(request, "failure-report")):
            return
        entry.reported = True
        self.metrics.failure_reports.labels(str(code)).inc()
        report = make_report(request, code, comment)
        report.headers["From-Path"] = str(entry.our_uri)
        entry.origin.protocol.write_chunk(report)

    def _answer_back(self, link: Optional[Link], entry: Forwarded,
                     response: MSRPData) -> None:
        """The answer to an AUTH forwarded for a client to a relay further on (from
        ``link``, or ours when it failed there): to the client, once, with the id it
        sent and its own From-Path as the To-Path, and what the client needs of the
        answer's other headers (:data:`PASSED_BACK_HEADERS`); one too long for a parser
        with the relay's limits gets 400 instead. A 200 is a grant tied to ``link``
        (``_granted_further``)."""
        if entry.reported or entry.origin.protocol.lost.fired:
            return
        entry.reported = True
        answer = make_response(entry.request, response.code or 400, response.comment)
        for name, value in response.headers.items():
            lower = name.lower()
            if lower == "from-path":
                answer.headers["From-Path"] = value
            elif lower in PASSED_BACK_HEADERS:
                answer.headers.add(name, value)
        if not head_fits(answer.encode_start(False), self.settings.connection.parser_limits):
            answer = make_response(entry.request, 400, "Answer too long to pass on")
        elif link is not None and response.code == 200:
            self._granted_further(link, entry, response)
        entry.origin.protocol.write_chunk(answer)
