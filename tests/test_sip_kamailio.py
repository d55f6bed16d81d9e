"""Two SIP user agents calling each other through a real Kamailio, with MSRP streams.

One Kamailio process per test is the SIP registrar and record-routing proxy (UDP) and the
MSRP relay (TCP): tests/kamailio/sip-relay.cfg. Alice and Bob (tests/sip_agent.py)
register, Alice INVITEs Bob with her stream's offer, Bob answers with his stream's
answer, ACK and BYE go through the proxy too. The streams are msrplib.stream's, driven as
a SIP stack drives them; the MSRP goes through the relay, or directly between the two for
each a=setup answer to Alice's ``actpass``.
"""

import hashlib
import io
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial import unittest

from msrplib.connect import MSRPRelaySettings
from msrplib.errors import MSRPSessionError
from msrplib.sdp import parse_sdp
from msrplib.session import SessionSettings
from msrplib.stream import ChatStream, FileTransferStream
from msrplib.testing import CollectingReceiver
from tests.helpers import close
from tests.relay import USERS, KamailioRelay
from tests.sip_agent import SIPAgent, sdp_body

SESSION_SETTINGS = SessionSettings(keepalive_interval=0)
FILE_SIZE = 3 * 1024 * 1024
#: How much of the file is answered before one side hangs up.
HANG_UP_AFTER = 256 * 1024


def media(sdp):
    """The MSRP media section of a whole SDP (the only one these calls have)."""
    [section] = parse_sdp(sdp).media
    return section


def setup_of(sdp):
    return media(sdp).msrp.setup


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Call:
    """What a call set up: each side's stream, dialog and MSRP session."""

    def __init__(self, streams, dialogs, sessions, offer, answer):
        self.alice_stream, self.bob_stream = streams
        self.alice_dialog, self.bob_dialog = dialogs
        self.alice, self.bob = sessions
        self.offer, self.answer = offer, answer


class SIPHarness:
    """A fresh Kamailio (SIP and MSRP relay) and two registered agents for each test.

    ``relayed`` says whether the streams use the MSRP relay; ``answer_active`` makes Bob
    answer Alice's ``a=setup:actpass`` with ``active`` instead of RFC 6135's ``passive``.
    """

    relayed = True
    answer_active = False

    def setUp(self):
        self.kamailio = KamailioRelay(sip=True)
        self.addCleanup(self.kamailio.stop)
        self.kamailio.start()
        self.addCleanup(self.check_kamailio_alive)

    def check_kamailio_alive(self):
        self.assertTrue(self.kamailio.alive,
                        "kamailio died: %s" % self.kamailio.output()[-2000:])

    def stream_options(self, user):
        if self.relayed:
            return {"relay": MSRPRelaySettings("msrp-test", user, USERS[user],
                                               host="127.0.0.1", port=self.kamailio.port),
                    "session_settings": SESSION_SETTINGS}
        return {"local_host": "127.0.0.1", "session_settings": SESSION_SETTINGS}

    @inlineCallbacks
    def agent(self, user, on_invite=None):
        agent = SIPAgent(user, self.kamailio.sip_port, on_invite=on_invite).start()
        self.addCleanup(agent.stop)
        response = yield agent.register()
        self.assertEqual(response.code, 200)
        return agent

    @inlineCallbacks
    def call(self, alice_stream, bob_stream):
        """Alice calls Bob, each with the stream given; fires with the :class:`Call` once
        both MSRP sessions are up."""
        for stream in (alice_stream, bob_stream):
            self.addCleanup(stream.cleanup)
        bob_started = []

        @inlineCallbacks
        def answer(dialog):
            offer = media(dialog.remote_sdp)
            section = yield bob_stream.make_answer(
                offer, setup="active" if self.answer_active else None)
            bob_started.append(bob_stream.start())  # listening (or connecting) from now
            return sdp_body("bob", section)

        alice = yield self.agent("alice")
        bob = yield self.agent("bob", on_invite=answer)
        section = yield alice_stream.make_offer()
        alice_dialog = yield alice.invite("bob", sdp_body("alice", section))
        alice_stream.take_answer(media(alice_dialog.remote_sdp))
        [bob_dialog] = bob.dialogs.values()
        sessions = yield gatherResults([alice_stream.start(), bob_started[0]],
                                       consumeErrors=True)
        for session in sessions:
            self.addCleanup(close, session.transport)
        yield bob_dialog.confirmed.addTimeout(5, reactor)
        self.assertEqual(alice_dialog.call_id, bob_dialog.call_id)
        # ACK and BYE go through Kamailio: it record-routed the INVITE, once.
        [route] = alice_dialog.route_set
        self.assertIn("sip:127.0.0.1:%d;lr" % self.kamailio.sip_port, route)
        self.assertEqual(bob_dialog.route_set, [route])
        return Call((alice_stream, bob_stream), (alice_dialog, bob_dialog), sessions,
                    sdp_body("alice", section), alice_dialog.remote_sdp)

    def check_setup(self, call):
        """Alice offered actpass; Bob answered as this class says; each plays its part."""
        self.assertEqual(setup_of(call.offer), "actpass")
        bob_role = "active" if self.answer_active else "passive"
        alice_role = "passive" if self.answer_active else "active"
        self.assertEqual(setup_of(call.answer), bob_role)
        self.assertEqual((call.alice_stream.role, call.bob_stream.role), (alice_role, bob_role))
        path_length = 2 if self.relayed else 1  # the relay's Use-Path, then ours
        self.assertEqual(len(media(call.offer).msrp.path), path_length)
        self.assertEqual(len(media(call.answer).msrp.path), path_length)

    def file_streams(self, body):
        alice = FileTransferStream.offering(io.BytesIO(body), name="three.bin",
                                            **self.stream_options("alice"))
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        bob = FileTransferStream(destination=destination, **self.stream_options("bob"))
        return alice, bob, destination


class CallCases(SIPHarness):
    """What every way of carrying the MSRP must do."""

    @inlineCallbacks
    def test_chat_both_ways(self):
        heard = CollectingReceiver(), CollectingReceiver()
        call = yield self.call(ChatStream(receiver=heard[0], **self.stream_options("alice")),
                               ChatStream(receiver=heard[1], **self.stream_options("bob")))
        self.check_setup(call)
        yield call.alice.send_message(b"hi bob", "text/plain", success_report="yes")
        yield call.bob.send_message(b"hi alice", "text/plain", success_report="yes")
        yield call.alice.send_message(b"bye now", "text/plain", success_report="yes")
        self.assertEqual([m.data for m in heard[1].received], [b"hi bob", b"bye now"])
        self.assertEqual([m.data for m in heard[0].received], [b"hi alice"])
        response = yield call.alice_dialog.bye()
        self.assertEqual(response.code, 200)
        by = yield call.bob_dialog.ended
        self.assertEqual(by, "remote")
        yield gatherResults([call.alice.shutdown(), call.bob.shutdown()])

    @inlineCallbacks
    def test_a_file_with_its_hash_checked(self):
        body = os.urandom(FILE_SIZE)
        alice, bob, destination = self.file_streams(body)
        call = yield self.call(alice, bob)
        self.check_setup(call)
        self.assertIn("a=file-selector:", call.offer)
        self.assertIn("a=sendonly", call.offer)
        self.assertIn("a=recvonly", call.answer)
        yield alice.send()
        message = yield bob.received
        self.assertEqual(message.size, len(body))
        destination.seek(0)
        self.assertEqual(sha256(destination.read()), sha256(body))
        yield call.bob_dialog.bye()
        yield gatherResults([call.alice.shutdown(), call.bob.shutdown()])

    def test_the_receiver_hangs_up_in_the_middle_of_a_file(self):
        return self.hang_up_in_the_middle_of_a_file("bob")

    def test_the_sender_hangs_up_in_the_middle_of_a_file(self):
        return self.hang_up_in_the_middle_of_a_file("alice")

    @inlineCallbacks
    def hang_up_in_the_middle_of_a_file(self, who):
        """``who`` sends BYE while Alice's file is on its way and aborts her session; the
        other side aborts its own on the BYE. Both end within 2 s, Alice's send fails and
        Bob's half file fails."""
        alice, bob, destination = self.file_streams(os.urandom(FILE_SIZE))
        call = yield self.call(alice, bob)
        sessions = {"alice": call.alice, "bob": call.bob}
        dialogs = {"alice": call.alice_dialog, "bob": call.bob_dialog}
        other = "bob" if who == "alice" else "alice"
        heard_bye = []

        def bye_received(by):
            heard_bye.append(by)
            sessions[other].abort()

        dialogs[other].ended.addCallback(bye_received)
        halfway = Deferred()

        def progress(done, total):
            if done >= HANG_UP_AFTER and not halfway_reached:
                halfway_reached.append(done)
                reactor.callLater(0, halfway.callback, done)  # not from inside the sender

        halfway_reached = []

        sending = alice.send(progress=progress)
        sent = yield halfway
        self.assertFalse(sending.called)
        started = reactor.seconds()
        bye = dialogs[who].bye()
        sessions[who].abort()
        closed = gatherResults([call.alice.closed.observe(), call.bob.closed.observe()])
        closed.addTimeout(2, reactor)
        try:
            yield closed
        except Exception:
            self.fail("2 s after %s's BYE, Alice's session %s closed and Bob's %s"
                      % (who, *("is" if s.closed.fired else "is not"
                                for s in (call.alice, call.bob))))
        elapsed = reactor.seconds() - started
        self.assertLess(elapsed, 2)
        response = yield bye
        self.assertEqual(response.code, 200)
        self.assertEqual(heard_bye, ["remote"])
        self.assertTrue(call.alice.closed.fired and call.bob.closed.fired)
        yield self.assertFailure(sending, MSRPSessionError)
        self.assertLess(sent, FILE_SIZE)
        # Bob's half file was failed to him, never taken for whole, before his session's
        # ``closed`` fired.
        self.assertTrue(bob.received.called)
        yield self.assertFailure(bob.received, MSRPSessionError)


class ThroughTheRelayTests(CallCases, unittest.TestCase):
    """MSRP through Kamailio's relay, both sides AUTHed to it."""

    relayed = True


class DirectAnswerPassiveTests(CallCases, unittest.TestCase):
    """MSRP directly (SIP still through the proxy); Bob answers actpass with passive, so
    Alice connects to him."""

    relayed = False
    answer_active = False


class DirectAnswerActiveTests(CallCases, unittest.TestCase):
    """MSRP directly (SIP still through the proxy); Bob answers actpass with active, so he
    connects to Alice, who has listened since her offer."""

    relayed = False
    answer_active = True
