"""A minimal SIP user agent for the integration tests, on ``twisted.protocols.sip``.

UDP on 127.0.0.1 only, every request sent to one outbound proxy (Kamailio, see
tests/relay.py): REGISTER, INVITE with an SDP offer (100 and 180 are passed over, a 2xx is
ACKed and makes a :class:`Dialog`), an incoming INVITE answered 180 then 200 with the SDP
the application gives, re-INVITEs (a new offer and answer in a dialog) and BYE both ways.
No retransmissions (loopback does not lose datagrams), but every request we send fails with
:class:`SIPTimeout` when no final response comes in time, and an ACK we wait for is logged
as an error when it does not come, so that a test never hangs.
"""

import os

from twisted.internet import defer
from twisted.protocols import sip
from twisted.python import log
from twisted.python.failure import Failure

#: How long a request waits for its final response.
TIMEOUT = 5.0


class SIPTimeout(Exception):
    """No final response came in time."""


class SIPFailure(Exception):
    """A request got a final response other than 2xx (``response`` is it)."""

    def __init__(self, response):
        super().__init__("%d %s" % (response.code, response.phrase))
        self.response = response
        self.code = response.code


def token():
    return os.urandom(8).hex()


def sdp_body(user, media_section):
    """A whole SDP around one media section (as ``MSRPStream`` makes it)."""
    return ("v=0\r\no=%s 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            % user) + media_section


def first(message, name):
    return message.headers[name][0]


def tag_of(address):
    return sip.parseAddress(address)[2].get("tag")


def cseq_number(message):
    return int(first(message, "cseq").split()[0])


def route_list(message):
    """The URIs of a message's Record-Route headers, in order (each a ``<...>`` string)."""
    routes = []
    for value in message.headers.get("record-route", []):
        routes.extend(part.strip() for part in value.split(",") if part.strip())
    return routes


class Dialog:
    """One call, from this agent's side.

    ``remote_sdp`` is the peer's SDP (the offer for the callee, the answer for the caller;
    then the last one of a re-INVITE). ``confirmed`` fires when the callee gets the ACK;
    ``ended`` fires with ``"local"`` when :meth:`bye` is called, or ``"remote"`` when the
    peer's BYE arrives (answered 200 first).

    The peer's re-INVITE is answered by ``on_reinvite(offer)``, which returns (a Deferred
    of) the whole SDP answer (without it, or when it raises, the re-INVITE gets 488); once
    the ACK is in, ``on_reinvite_done(offer)`` is called. A re-INVITE is answered even while
    ours is under way (no 491 for glare): here each offer is only "my path now", so two that
    cross do no harm.
    """

    on_reinvite = None
    on_reinvite_done = None

    def __init__(self, agent, call_id, local, remote, remote_target, route_set, remote_sdp,
                 cseq, remote_cseq=0):
        self.agent = agent
        self.call_id = call_id
        self.local = local  # our From (caller) or To (callee) value, with our tag
        self.remote = remote  # the peer's, with its tag
        self.remote_target = remote_target  # the peer's Contact URI
        self.route_set = route_set
        self.remote_sdp = remote_sdp
        self.cseq = cseq  # the last CSeq number we used in this dialog
        self.remote_cseq = remote_cseq  # the peer's last one
        self.confirmed = defer.Deferred()
        self.ended = defer.Deferred()

    def request(self, method, cseq=None):
        """An in-dialog request: to the peer's Contact, along the route set, with the next
        CSeq number (an ACK: its INVITE's, ``cseq``)."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        request = sip.Request(method, self.remote_target)
        request.addHeader("from", self.local)
        request.addHeader("to", self.remote)
        request.addHeader("call-id", self.call_id)
        request.addHeader("cseq", "%d %s" % (cseq, method))
        for route in self.route_set:
            request.addHeader("route", route)
        return request

    def ack(self, cseq):
        """ACK the 2xx to our INVITE numbered ``cseq`` (a transaction of its own)."""
        ack = self.request("ACK", cseq)
        self.agent._add_via(ack)
        self.agent._send(ack)

    @defer.inlineCallbacks
    def reinvite(self, sdp):
        """Offer ``sdp`` in a re-INVITE; fires with the peer's SDP answer once its 200 is
        in and ACKed (``SIPFailure`` for another final response, ``SIPTimeout``)."""
        request = self.request("INVITE")
        cseq = self.cseq
        request.addHeader("contact", self.agent.contact)
        request.addHeader("content-type", "application/sdp")
        request.body = sdp
        try:
            response = yield self.agent.send_request(request)
        except SIPFailure as failure:
            self.agent._ack_failure(request, failure.response)
            raise
        self.ack(cseq)
        self.remote_sdp = response.body
        return response.body

    def bye(self):
        """Hang up: send BYE (``ended`` fires at once); fires with the 200."""
        self._end("local")
        return self.agent.send_request(self.request("BYE"))

    def _end(self, by):
        self.agent.dialogs.pop(self.call_id, None)
        if not self.ended.called:
            self.ended.callback(by)


class SIPAgent(sip.Base):
    """A user agent for ``user`` whose requests all go to 127.0.0.1:``proxy_port``.

    ``on_invite(dialog)`` answers an incoming INVITE: it returns (a Deferred of) the whole
    SDP answer for ``dialog.remote_sdp``; an exception refuses the call with 488.
    """

    def __init__(self, user, proxy_port, on_invite=None, timeout=TIMEOUT, reactor=None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.user = user
        self.proxy = sip.URL(host="127.0.0.1", port=proxy_port)
        self.on_invite = on_invite
        self.timeout = timeout
        self.dialogs = {}
        self.port = None
        self._acks = {}  # (Call-ID, CSeq number) of a re-INVITE we answered -> Deferred
        self._cseq = 0
        self._pending = {}  # branch -> (Deferred, timer)

    # Life cycle.

    def start(self):
        self.port = self.reactor.listenUDP(0, self, interface="127.0.0.1")
        return self

    def stop(self):
        """Stop listening; requests still waiting fail with ``SIPTimeout``."""
        for branch in list(self._pending):
            self._finish(branch, SIPTimeout("the agent stopped"))
        for acked in list(self._acks.values()):
            acked.cancel()
        return defer.maybeDeferred(self.port.stopListening)

    @property
    def contact(self):
        return "<sip:%s@127.0.0.1:%d>" % (self.user, self.port.getHost().port)

    @property
    def address_of_record(self):
        return "<sip:%s@127.0.0.1>" % self.user

    def next_cseq(self):
        self._cseq += 1
        return self._cseq

    # Requests we send.

    def send_request(self, request):
        """Add Via, Max-Forwards and Content-Length, send to the proxy; a Deferred firing
        with the final 2xx response (``SIPFailure`` for another final, ``SIPTimeout``)."""
        branch = self._add_via(request)
        self._send(request)
        result = defer.Deferred()
        timer = self.reactor.callLater(self.timeout, self._finish, branch, SIPTimeout(
            "no final response to %s in %s s" % (request.method, self.timeout)))
        self._pending[branch] = (result, timer)
        return result

    def _add_via(self, request):
        branch = "z9hG4bK" + token()
        request.headers.setdefault("via", []).insert(
            0, "SIP/2.0/UDP 127.0.0.1:%d;branch=%s" % (self.port.getHost().port, branch))
        request.headers.setdefault("max-forwards", ["70"])
        return branch

    def _send(self, message):
        """Send to the proxy (responses too: it is their top Via); twisted.protocols.sip
        adds no Content-Length, so it is set here."""
        message.headers["content-length"] = [str(len(message.body.encode("utf-8")))]
        self.sendMessage(self.proxy, message)

    def _finish(self, branch, outcome):
        result, timer = self._pending.pop(branch)
        if timer.active():
            timer.cancel()
        if isinstance(outcome, Exception):
            result.errback(outcome)
        else:
            result.callback(outcome)

    def register(self, expires=300):
        request = sip.Request("REGISTER", "sip:127.0.0.1:%d" % self.proxy.port)
        request.addHeader("from", "%s;tag=%s" % (self.address_of_record, token()))
        request.addHeader("to", self.address_of_record)
        request.addHeader("call-id", token())
        request.addHeader("cseq", "%d REGISTER" % self.next_cseq())
        request.addHeader("contact", self.contact)
        request.addHeader("expires", str(expires))
        return self.send_request(request)

    @defer.inlineCallbacks
    def invite(self, callee, sdp):
        """Call ``callee`` (a user name) with the SDP offer ``sdp``; fires with the
        :class:`Dialog` once the 200 is in and ACKed."""
        local = "%s;tag=%s" % (self.address_of_record, token())
        remote = "<sip:%s@127.0.0.1>" % callee
        call_id = token()
        request = sip.Request("INVITE", "sip:%s@127.0.0.1" % callee)
        request.addHeader("from", local)
        request.addHeader("to", remote)
        request.addHeader("call-id", call_id)
        cseq = self.next_cseq()
        request.addHeader("cseq", "%d INVITE" % cseq)
        request.addHeader("contact", self.contact)
        request.addHeader("content-type", "application/sdp")
        request.body = sdp
        try:
            response = yield self.send_request(request)
        except SIPFailure as failure:
            self._ack_failure(request, failure.response)
            raise
        contact = sip.parseAddress(first(response, "contact"))[1].toString()
        dialog = Dialog(self, call_id, local, first(response, "to"), contact,
                        list(reversed(route_list(response))), response.body, cseq)
        self.dialogs[call_id] = dialog
        dialog.ack(cseq)
        return dialog

    def _ack_failure(self, invite, response):
        """The hop-by-hop ACK for a non-2xx final answer to an INVITE (same branch)."""
        ack = sip.Request("ACK", invite.uri.toString())
        for name in ("via", "from", "call-id"):
            ack.headers[name] = invite.headers[name][:]
        ack.addHeader("to", first(response, "to"))
        ack.addHeader("cseq", first(invite, "cseq").replace("INVITE", "ACK"))
        ack.addHeader("max-forwards", "70")
        self._send(ack)

    # What arrives.

    def handle_response(self, message, addr):
        branch = sip.parseViaHeader(first(message, "via")).branch
        if message.code < 200 or branch not in self._pending:
            return  # 100 Trying, 180 Ringing, or a duplicate
        self._finish(branch, message if message.code < 300 else SIPFailure(message))

    def handle_request(self, message, addr):
        handler = getattr(self, "_incoming_" + message.method, None)
        if handler is None:
            self._respond(message, 405)
        else:
            handler(message)

    def _respond(self, request, code, to=None, extra=(), body=""):
        response = self.responseFromRequest(code, request)
        if to is not None:
            response.headers["to"] = [to]
        for name, value in extra:
            response.addHeader(name, value)
        response.body = body
        self._send(response)

    def _incoming_INVITE(self, request):
        call_id = first(request, "call-id")
        if tag_of(first(request, "to")) is not None:
            self._incoming_reinvite(request)
            return
        if call_id in self.dialogs:
            return  # a retransmission, already being answered
        local = "%s;tag=%s" % (first(request, "to"), token())
        contact = sip.parseAddress(first(request, "contact"))[1].toString()
        dialog = Dialog(self, call_id, local, first(request, "from"), contact,
                        route_list(request), request.body, self.next_cseq(),
                        cseq_number(request))
        self.dialogs[call_id] = dialog
        self._respond(request, 180, to=local)
        answering = defer.maybeDeferred(self.on_invite, dialog)

        def answered(sdp):
            extra = [("record-route", route) for route in dialog.route_set]
            extra += [("contact", self.contact), ("content-type", "application/sdp")]
            self._respond(request, 200, to=local, extra=extra, body=sdp)

        def refused(failure):
            self.dialogs.pop(call_id, None)
            self._respond(request, 488, to=local)
            log.err(failure, "%s refused an INVITE" % self.user)

        answering.addCallbacks(answered, refused)

    def _incoming_reinvite(self, request):
        """A new offer in a dialog: 200 with ``on_reinvite``'s answer, then wait for the
        ACK (``SIPTimeout``, logged, when it does not come) and tell ``on_reinvite_done``."""
        dialog = self.dialogs.get(first(request, "call-id"))
        if dialog is None:
            self._respond(request, 481)
            return
        number = cseq_number(request)
        if number <= dialog.remote_cseq:
            return  # a retransmission, already being answered
        dialog.remote_cseq = number
        offer = request.body
        dialog.remote_sdp = offer
        if dialog.on_reinvite is None:
            answering = defer.fail(RuntimeError("%s takes no re-INVITE" % self.user))
        else:
            answering = defer.maybeDeferred(dialog.on_reinvite, offer)

        def answered(sdp):
            key = (dialog.call_id, number)
            acked = self._acks[key] = defer.Deferred()
            late = SIPTimeout("no ACK for the 200 to re-INVITE %d in %s s"
                              % (number, self.timeout))
            acked.addTimeout(self.timeout, self.reactor,
                             onTimeoutCancel=lambda *_: Failure(late))
            acked.addBoth(self._forget_ack, key)
            if dialog.on_reinvite_done is not None:
                acked.addCallback(lambda _: dialog.on_reinvite_done(offer))
            acked.addErrback(log.err, "%s: a re-INVITE was not done" % self.user)
            self._respond(request, 200, extra=[("contact", self.contact),
                                               ("content-type", "application/sdp")], body=sdp)

        def refused(failure):
            self._respond(request, 488)
            log.err(failure, "%s refused a re-INVITE" % self.user)

        answering.addCallbacks(answered, refused)

    def _forget_ack(self, outcome, key):
        self._acks.pop(key, None)
        return outcome

    def _incoming_ACK(self, request):
        call_id = first(request, "call-id")
        acked = self._acks.get((call_id, cseq_number(request)))
        if acked is not None:
            acked.callback(None)
            return
        dialog = self.dialogs.get(call_id)
        if dialog is not None and not dialog.confirmed.called:
            dialog.confirmed.callback(dialog)

    def _incoming_BYE(self, request):
        dialog = self.dialogs.get(first(request, "call-id"))
        if dialog is None:
            self._respond(request, 481)
            return
        self._respond(request, 200)
        dialog._end("remote")
