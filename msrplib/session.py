"""MSRPSession: a message session over one bound connection (the seed's ``MSRPSession``).

The seed API (``send_chunk``, ``deliver_chunk``, ``shutdown``, ``on_incoming_cb``) works on
chunks; ``send_message`` and a :class:`MessageReceiver` work on whole messages: the session
cuts them into chunks, interleaves the chunks of different messages (RFC 4975 section
7.1.1), reassembles what arrives, answers and reports as RFC 4975 asks, and keeps memory
bounded both ways.

The session is a facade over three parts, each with a job of its own: the transactions
waiting for their answers (:mod:`msrplib._transactions`, sans-IO, with their deadlines),
the sender (:mod:`msrplib._sender`: queue, chunking, interleaving, pacing) and the receiver
(:mod:`msrplib._receiver`: checks, reassembly, REPORTs). It holds what they share: the
settings, the clock, the keepalive, and the connection, which it reaches only through
:class:`~msrplib.interfaces.IMessageConnection` and its writer.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from msrplib._chunk import MSRPData
from msrplib._ending import EndReason, SessionEnded
from msrplib._incomingmessage import IncomingMessage, MessageReceiver
from msrplib._messagewriter import MessageWriter
from msrplib._observer import Observer
from msrplib._outgoingmessage import MessageResult, Source
from msrplib._parser import ChunkData, ChunkEnded, ChunkStarted, ParserEvent
from msrplib._receiver import Receiver
from msrplib._rules import answers_errors, report_flag, should_respond
from msrplib._sender import LONG_ID_BODY, STREAM_PIECE, Sender, response_error
from msrplib._settings import RESPONSE_TIMEOUT, SessionSettings
from msrplib._transactions import ResponseCallback, TransactionTable, stand_in_response
from msrplib.errors import MSRPError, MSRPSessionError, MSRPTransactionError

__all__ = ["MSRPSession", "SessionSettings", "MessageReceiver", "IncomingMessage",
           "MessageWriter", "MessageResult", "SessionEnded", "EndReason", "RESPONSE_TIMEOUT",
           "STREAM_PIECE", "LONG_ID_BODY"]


class MSRPSession:
    """A message session over a bound :class:`~msrplib.transport.MSRPTransport` (any
    :class:`~msrplib.interfaces.IMessageConnection`).

    ``accept_types`` are the media types we take (``*`` and ``type/*`` wildcards work);
    other SEND bodies get 415. ``on_incoming_cb(chunk=None, error=None)`` hears every
    incoming request chunk, and ``error`` once when the connection closes. ``receiver``
    (a :class:`MessageReceiver`) hears whole messages. ``extension_methods`` are request
    methods handed to ``on_incoming_cb`` to answer with :meth:`respond`; any other unknown
    method gets 501. ``on_late_failure(message_id, error)`` hears a failure REPORT about a
    message that is no longer under way: through a relay, a message counted as sent after
    ``relayed_failure_wait`` that the peer refused later (``error`` is an
    ``MSRPTransactionError`` with the REPORT's code; the id may be none of ours: check it
    against the ``message_id`` s ``send_message`` gave). ``settings``, ``accept_types``
    and the rest may be changed while the session runs.

    ``closed`` tells how the session ended: ``closed.observe()`` is a Deferred that fires
    (never fails) with a :class:`SessionEnded`, whose ``why`` is an :class:`EndReason`
    (our ``shutdown``, our ``abort``, the peer, an error) and whose ``error`` is the
    exception behind it, if any; it fires once everything under way has failed. ``ended``
    says whether the session has ended.
    """

    log = Logger()

    def __init__(self, msrptransport: Any, accept_types: Iterable[str] = ("*",),
                 on_incoming_cb: Optional[Callable[..., None]] = None, *,
                 receiver: Optional[MessageReceiver] = None,
                 settings: Optional[SessionSettings] = None,
                 extension_methods: Iterable[str] = ("NICKNAME",),
                 on_late_failure: Optional[Callable[[str, MSRPTransactionError], None]]
                 = None,
                 reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.transport = msrptransport
        self.writer = msrptransport.writer
        self.accept_types = list(accept_types)
        self.on_incoming_cb = on_incoming_cb
        self.receiver = receiver or MessageReceiver()
        self.settings = settings or SessionSettings()
        self.extension_methods = set(extension_methods)
        self.on_late_failure = on_late_failure
        self.reactor = reactor
        self._seconds = reactor.seconds
        self.closed = Observer()
        if getattr(msrptransport, "logger", None) is not None:
            self.log = msrptransport.logger  # the connection's logger (the seed's logger)
        self._transactions = TransactionTable()
        #: The timer that watches the transactions' deadlines (see arm_deadline_timer).
        self.deadline_timer: Any = None
        self._sender = Sender(msrptransport, self._transactions, self)
        self._receiver = Receiver(msrptransport, self)
        #: Whether ``shutdown`` was called: it closes once nothing more is due.
        self.shutting_down = False
        self._keepalive: Any = None
        #: Through a relay: the keepalive whose success REPORT is awaited (its Message-ID
        #: and timer), and whether the peer ever confirmed one (see _send_keepalive).
        self._probe: Optional[Tuple[str, Any]] = None
        self._peer_confirms_keepalives = False
        self._last_activity = 0.0
        #: When the peer was last heard from (``shutdown_timeout`` watches it).
        self._last_heard = 0.0
        self._shutdown_timer: Any = None
        #: How the session is ending, once it is we who end it.
        self._ending: Optional[SessionEnded] = None
        #: How it ended, from the moment it did (``closed`` fires once all is failed).
        self._ended: Optional[SessionEnded] = None
        self.writer.lost.observe().addErrback(self._connection_lost)
        msrptransport.deliver_events_to(self._event)
        self.note_traffic()

    # Sending: the seed API.

    def send_chunk(self, chunk: MSRPData, response_cb: Optional[ResponseCallback] = None) -> None:
        """Queue ``chunk``; ``response_cb(response)`` hears its response (the seed's call).

        Without a response in ``response_timeout`` seconds one is generated: 408 when
        Failure-Report is ``yes`` or absent, 200 when it is ``partial`` or ``no``. Raises
        ``MSRPSessionError`` when the session is shut down or its connection closed.
        """
        self._check_open()
        self._sender.send_chunk(chunk, response_cb)

    def deliver_chunk(self, chunk: MSRPData) -> Deferred[Optional[MSRPData]]:
        """Send ``chunk``; fire with its 200 response, fail with ``MSRPTransactionError``.

        With Failure-Report ``no`` nothing will answer, so this fires with ``None`` at once.
        """
        if not answers_errors(report_flag(chunk, "failure-report")):
            self.send_chunk(chunk)
            return succeed(None)
        result: Deferred[Optional[MSRPData]] = Deferred()

        def answered(response: MSRPData) -> None:
            if response.code == 200:
                result.callback(response)
            else:
                result.errback(response_error(response))

        self.send_chunk(chunk, answered)
        return result

    def respond(self, request: MSRPData, code: int, comment: Optional[str] = None) -> None:
        """Answer ``request`` (e.g. a NICKNAME), if its Failure-Report allows that answer."""
        if should_respond(request, code):
            self.writer.write_response(request, code, comment)
            self.note_traffic()

    def shutdown(self, sync: bool = True) -> Deferred[None]:
        """Send what is queued, wait for the answers and success REPORTs still due (and
        for open ``MessageWriter`` s to be finished), then close; fire once closed.

        Once the peer has been silent for ``settings.shutdown_timeout`` seconds, the
        session ends at once instead, as :meth:`abort` ends it: what is still under way
        fails, and ``closed`` fires with ``EndReason.SHUTDOWN`` and an ``error`` saying so.

        ``sync`` is the seed API's, accepted for compatibility: shutting down always
        waits, and the Deferred is what a caller that does not wish to wait ignores."""
        closed = self.closed.observe()
        closed.addCallback(lambda ended: None)
        if not self.shutting_down and not self.ended:
            self.shutting_down = True
            self._last_heard = self._seconds()  # the silence counts from now
            if self.settings.shutdown_timeout > 0:
                self._shutdown_timer = self.reactor.callLater(
                    self.settings.shutdown_timeout, self._check_shutdown_silence)
            self._sender.pump()
        return closed

    def abort(self) -> None:
        """End the session now (for a BYE, say): everything queued, being sent or awaiting
        an answer or REPORT fails at once with ``MSRPSessionError``, incoming messages not
        yet whole are failed to the receiver, and the connection is closed without
        waiting for what was not sent. ``closed`` fires with ``EndReason.ABORTED``."""
        if not self.ended:
            self._end(SessionEnded(EndReason.ABORTED),
                      MSRPSessionError("the session was aborted"))
            self.writer.abort()

    # Sending: whole messages.

    def send_message(self, data_or_file: Source, content_type: str,
                     message_id: Optional[str] = None, success_report: Optional[str] = None,
                     failure_report: str = "yes", chunk_size: Optional[int] = None,
                     headers: Optional[Dict[str, str]] = None,
                     progress: Optional[Callable[[int, Optional[int]], None]] = None
                     ) -> MessageResult:
        """Send a message (``bytes`` or a binary file), cut into chunks.

        ``headers`` are added to every chunk (e.g. ``Content-Disposition`` with a file
        name). ``progress(done, total)`` is called as chunks are answered (or sent, when
        Failure-Report is not ``yes``); ``total`` is ``None`` for a file of unknown size.
        ``success_report`` left ``None`` is ``yes`` through a relay (settings'
        ``confirm_through_relays``) and ``no`` otherwise.

        Returns a :class:`MessageResult`: a Deferred whose ``message_id`` is the message's
        Message-ID from the start, and whose ``cancel()`` aborts the message
        (:meth:`abort_message`). It fires with the Message-ID once every chunk was
        accepted (Failure-Report ``yes``) or sent (``partial``, ``no``), and, with
        ``success_report="yes"``, once the peer's success REPORT covered the whole message.
        Fails with ``MSRPTransactionError`` carrying the peer's code (e.g. 413, which stops
        the message), 408 when nothing answered or 499 when aborted, and with
        ``MSRPSessionError`` when the session ended first. Raises
        ``ValueError`` for a Content-Type or header holding a control character, or a
        ``message_id`` that is not an RFC 4975 ident or is under way already.
        """
        self._check_open()
        if success_report is None and failure_report == "yes":  # the usual case
            success_report = self._success_report_default()
        else:
            success_report, failure_report = self._report_values(success_report,
                                                                 failure_report)
        return self._sender.send_message(data_or_file, content_type, message_id,
                                         success_report, failure_report, chunk_size,
                                         headers, progress)

    def open_message(self, content_type: str, size: Optional[int] = None,
                     message_id: Optional[str] = None, success_report: Optional[str] = None,
                     failure_report: str = "yes", chunk_size: Optional[int] = None,
                     headers: Optional[Dict[str, str]] = None) -> MessageWriter:
        """A message whose body is written as it becomes available: an ``IConsumer``.

        Register a producer with it (or call ``write`` yourself), then ``finish()``, which
        returns the Deferred ``send_message`` would. ``size``, when known, goes in the
        Byte-Range totals; without it they are ``*`` until the last chunk. A streaming
        producer is paused while the connection cannot keep up.
        """
        self._check_open()
        success_report, failure_report = self._report_values(success_report, failure_report)
        return self._sender.open_message(content_type, size, message_id, success_report,
                                         failure_report, chunk_size, headers)

    def _report_values(self, success_report: Optional[str],
                       failure_report: str) -> Tuple[str, str]:
        """The Success-Report and Failure-Report a message is sent with, in lower case as
        RFC 4975 writes them (the application may write ``"No"``); ``ValueError`` for
        others."""
        success = self._success_report_default() if success_report is None \
            else success_report.lower()
        failure = failure_report.lower()
        if success not in ("yes", "no") or failure not in ("yes", "no", "partial"):
            raise ValueError("Success-Report is yes or no, Failure-Report yes, no or "
                             "partial: not %r and %r" % (success_report, failure_report))
        return success, failure

    def abort_message(self, message_id: str) -> None:
        """Stop a message under way: its Deferred fails with 499 at once. When the peer
        has begun to receive it and it is not all written, the chunk being written is
        finished and an empty chunk with the ``#`` flag tells the peer; a message all
        written may be whole at the peer already. ``cancel()`` on the Deferred that
        ``send_message`` returned does the same. Raises ``KeyError`` when no message of
        that Message-ID is under way."""
        self._sender.abort_message(message_id)

    def send_nickname(self, nickname: str) -> Deferred[Optional[MSRPData]]:
        """Ask to use ``nickname`` in a chat room (RFC 7701); fires with the 200."""
        chunk = self.transport.make_chunk(method="NICKNAME")
        chunk.use_nickname = nickname
        return self.deliver_chunk(chunk)

    def _success_report_default(self) -> str:
        """What a message asks for when its caller does not say: through a relay, a
        success REPORT (the relay's 200s say nothing of the peer, and a relay may drop
        what it answered), unless the settings say otherwise."""
        if self.transport.relayed and self.settings.confirm_through_relays:
            return "yes"
        return "no"

    def _check_open(self) -> None:
        if self.shutting_down:
            raise MSRPSessionError("the session is shut down")
        if self._ended is not None:
            raise MSRPSessionError("the session has ended: %s" % self._ended)

    # What the sender and the receiver ask of the session.

    def note_traffic(self) -> None:
        """Note traffic; the keepalive timer, armed once, finds out when it fires."""
        self._last_activity = self._seconds()
        if self._keepalive is None and self.settings.keepalive_interval > 0 \
                and not self.ended:
            self._keepalive = self.reactor.callLater(self.settings.keepalive_interval,
                                                     self._send_keepalive)

    def arm_deadline_timer(self) -> None:
        """Watch the transactions' deadlines (the oldest one's first)."""
        deadline = self._transactions.next_deadline()
        if deadline is not None and not self.ended:
            self.deadline_timer = self.reactor.callLater(
                max(0.0, deadline - self._seconds()), self._expire)

    def close_if_done(self) -> None:
        """After ``shutdown``: close once nothing is queued or waits for an answer."""
        if self.shutting_down and not self._transactions and self._sender.idle \
                and not self.ended:
            self._ending = SessionEnded(EndReason.SHUTDOWN)
            self.writer.close()

    def write_stalled(self, seconds: float) -> None:
        """The sender waited ``seconds`` for the socket to take more: the peer stopped
        reading. End the session with an error, as an unanswered keepalive does."""
        if not self.ended:
            error = MSRPSessionError("the peer read nothing for %s seconds" % seconds)
            self._end(SessionEnded(EndReason.ERROR, error), error)
            self.writer.abort()

    def late_failure(self, message_id: str, error: MSRPTransactionError) -> None:
        """A failure REPORT about a message that is not under way: logged, and handed to
        ``on_late_failure`` (the peer refused a message counted as sent, say)."""
        # Its code only: the log event may outlive the REPORT, and a peer's comment may
        # be long.
        self.log.info("a {code} failure REPORT about {message_id}, no longer under way",
                      code=error.code, message_id=message_id)
        if self.on_late_failure is not None:
            try:
                self.on_late_failure(message_id, error)
            except Exception:
                self.log.failure("on_late_failure failed")

    def write_report(self, report: MSRPData) -> None:
        """Write a REPORT the receiver made."""
        self._sender.write_report(report)

    def report_received(self, report: MSRPData) -> None:
        """A REPORT arrived about a message we sent (or a keepalive)."""
        probe = self._probe
        if probe is not None and report.message_id == probe[0]:
            self._keepalive_reported(report)
            return
        self._sender.report(report)

    # Events from the connection, and the deadlines of the answers.

    def _event(self, event: ParserEvent) -> None:
        self.note_traffic()
        self._last_heard = self._last_activity
        if type(event) is MSRPData:
            if event.code is not None:
                self._sender.answered(event)
            else:
                self._receiver.whole(event)
        elif type(event) is ChunkData:
            self._receiver.data(event.data)
        elif isinstance(event, ChunkStarted):
            if event.chunk.code is None:
                self._receiver.started(event.chunk)
        elif isinstance(event, ChunkEnded):
            if event.chunk.code is not None:
                self._sender.answered(event.chunk)
            else:
                self._receiver.ended(event.chunk)

    def _expire(self) -> None:
        """Answer every transaction whose deadline passed with its stand-in; watch the next."""
        self.deadline_timer = None
        for transaction in self._transactions.expired(self._seconds()):
            self._sender.answered(stand_in_response(transaction))
        if self.deadline_timer is None:
            self.arm_deadline_timer()

    # Keepalive and closing.

    def _send_keepalive(self) -> None:
        """After ``keepalive_interval`` of silence, an empty SEND checks the peer: an
        answer must come in ``response_timeout``, or the session ends.

        Through a relay that answer is the relay's own, so the keepalive also asks for a
        success REPORT (when ``confirm_through_relays``), which only the peer sends: once
        the peer has confirmed one keepalive so, a later one it does not confirm in
        ``report_timeout`` shows a relay that stopped forwarding (a grant it dropped, a
        peer it cut off), and the session ends with an error rather than take messages
        that cannot arrive. A peer that never confirmed one proves nothing by silence."""
        self._keepalive = None
        if self.shutting_down or self.ended:
            return
        idle = self._seconds() - self._last_activity
        interval = self.settings.keepalive_interval
        if interval <= 0:
            return
        if idle < interval:
            self._keepalive = self.reactor.callLater(interval - idle, self._send_keepalive)
            return
        keepalive = self.transport.make_chunk()
        if self.transport.relayed and self.settings.confirm_through_relays \
                and self._probe is None:
            keepalive.headers["Success-Report"] = "yes"
            self._probe = (keepalive.message_id or "", self.reactor.callLater(
                self.settings.report_timeout, self._keepalive_unconfirmed))
        probe = self.deliver_chunk(keepalive)

        def dead(failure: Failure) -> None:
            self.log.warn("keepalive failed, closing: {error}", error=failure.value)
            if not self.ended:
                self._end(SessionEnded(EndReason.ERROR, failure.value), MSRPSessionError(
                    "the peer did not answer a keepalive: %s" % failure.value))
                self.writer.abort()

        probe.addErrback(dead)

    def _keepalive_reported(self, report: MSRPData) -> None:
        """The REPORT on the keepalive awaited: a success teaches that the peer confirms
        keepalives; a failure says the path is broken, and ends the session."""
        assert self._probe is not None
        self._probe[1].cancel()
        self._probe = None
        try:
            status = report.status
        except MSRPError:
            return
        if status is not None and status.code == 200:
            self._peer_confirms_keepalives = True
        elif status is not None:
            self._path_broken("a %d failure REPORT on a keepalive" % status.code)

    def _keepalive_unconfirmed(self) -> None:
        """No REPORT on the keepalive in ``report_timeout``."""
        self._probe = None
        if self._peer_confirms_keepalives:
            self._path_broken("no success REPORT on a keepalive in %s seconds, though the "
                              "peer confirmed one before" % self.settings.report_timeout)
        else:
            self.log.debug("the peer did not confirm a keepalive: nothing learnt")

    def _path_broken(self, why: str) -> None:
        """The relays stopped carrying the session to the peer: end it with an error."""
        if self.ended:
            return
        error = MSRPSessionError("the relay stopped forwarding to the peer: %s" % why)
        self.log.warn("{error}", error=error)
        self._end(SessionEnded(EndReason.ERROR, error), error)
        self.writer.abort()

    def _check_shutdown_silence(self) -> None:
        """During ``shutdown``: end the session now if the peer has been silent for
        ``shutdown_timeout`` seconds while it owes us something (an answer, a success
        REPORT, reading what we wrote, the close), else look again when it would have
        been. Waiting on anything else (a REPORT that paces us, a ``MessageWriter`` still
        open) is not the peer's silence."""
        self._shutdown_timer = None
        if self.ended:
            return
        timeout = self.settings.shutdown_timeout
        if not (self._transactions or self._sender.awaiting_reports
                or self.writer.writing_paused or self._ending is not None):
            self._last_heard = self._seconds()
        silent = self._seconds() - self._last_heard
        if silent < timeout:
            self._shutdown_timer = self.reactor.callLater(timeout - silent,
                                                          self._check_shutdown_silence)
            return
        error = MSRPSessionError("nothing heard from the peer for %s seconds while shutting "
                                 "down" % timeout)
        self._end(SessionEnded(EndReason.SHUTDOWN, error), error)
        self.writer.abort()

    def _connection_lost(self, reason: Failure) -> None:
        if not self.ended:
            self._end(self._ending or SessionEnded.from_connection(reason),
                      MSRPSessionError("the connection closed: %s" % reason.value), reason)

    @property
    def ended(self) -> bool:
        """Whether the session has ended (``closed`` fires once all under way has failed)."""
        return self._ended is not None

    def _end(self, ending: SessionEnded, error: MSRPSessionError,
             reason: Optional[Failure] = None) -> None:
        """The session is over: everything still under way fails with ``error``
        (``on_incoming_cb`` hears ``reason``, by default ``error``), then ``closed`` fires
        with ``ending``, so that whoever waits on it finds nothing left pending."""
        self._ended = ending
        probe_timer = self._probe[1] if self._probe is not None else None
        for timer in (self._keepalive, self.deadline_timer, self._shutdown_timer,
                      probe_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._sender.connection_lost(error)
        for transaction in self._transactions:
            self._sender.answered(MSRPData(transaction.transaction_id, code=408,
                                           comment="Connection closed"))
        self._receiver.connection_lost(error)
        if self.on_incoming_cb is not None:
            self.on_incoming_cb(error=reason or Failure(error))
        self.closed.fire(ending)

    def __repr__(self) -> str:
        return "<MSRPSession %r>" % (self.transport,)
