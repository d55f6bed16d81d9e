"""Two SIP user agents calling each other through a real Kamailio, with MSRP streams.

One Kamailio process per test is the SIP registrar and record-routing proxy (UDP) and the
MSRP relay (TCP): tests/kamailio/sip-relay.cfg. Alice and Bob (tests/sip_agent.py)
register, Alice INVITEs Bob with her stream's offer, Bob answers with his stream's
answer, ACK, re-INVITEs and BYE go through the proxy too (Bob calls Alice back to resume
a file). The streams are msrplib.stream's, driven as a SIP stack drives them; the MSRP goes
through the relay, or directly between the two for each a=setup answer to an ``actpass``
offer.
"""

import hashlib
import io
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial import unittest

from msrplib.connect import MSRPRelaySettings, RelayConnection
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
#: The file an interrupted transfer leaves part of, and how much of it reaches Bob first.
RESUMED_FILE_SIZE = 4 * 1024 * 1024
INTERRUPT_AFTER = 1024 * 1024


def sleep(seconds):
    return deferLater(reactor, seconds, lambda: None)


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
    #: More arguments for ``KamailioRelay`` (a short AUTH grant, say).
    kamailio_options = {}

    def setUp(self):
        self.agents = {}
        self.kamailio = KamailioRelay(sip=True, **self.kamailio_options)
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
    def agent(self, user):
        """``user``'s agent, started and registered on first use; every call of the test
        goes through the same two."""
        if user not in self.agents:
            agent = self.agents[user] = SIPAgent(user, self.kamailio.sip_port).start()
            self.addCleanup(agent.stop)
            response = yield agent.register()
            self.assertEqual(response.code, 200)
        return self.agents[user]

    @inlineCallbacks
    def call(self, alice_stream, bob_stream, caller="alice"):
        """``caller`` calls the other, each with the stream given (the caller's makes the
        offer, in the INVITE; the callee's the answer, in the 200); fires with the
        :class:`Call` once both MSRP sessions are up."""
        for stream in (alice_stream, bob_stream):
            self.addCleanup(stream.cleanup)
        callee = "bob" if caller == "alice" else "alice"
        streams = {"alice": alice_stream, "bob": bob_stream}
        offering, answering = streams[caller], streams[callee]
        answered = []  # the callee's dialog, and its stream's start()

        @inlineCallbacks
        def answer(dialog):
            offer = media(dialog.remote_sdp)
            section = yield answering.make_answer(
                offer, setup="active" if self.answer_active else None)
            answered.extend([dialog, answering.start()])  # listening or connecting now
            return sdp_body(callee, section)

        caller_agent = yield self.agent(caller)
        callee_agent = yield self.agent(callee)
        callee_agent.on_invite = answer
        section = yield offering.make_offer()
        caller_dialog = yield caller_agent.invite(callee, sdp_body(caller, section))
        offering.take_answer(media(caller_dialog.remote_sdp))
        callee_dialog, callee_started = answered
        started = yield gatherResults([offering.start(), callee_started], consumeErrors=True)
        for session in started:
            self.addCleanup(close, session.transport)
        yield callee_dialog.confirmed.addTimeout(5, reactor)
        self.assertEqual(caller_dialog.call_id, callee_dialog.call_id)
        # ACK and BYE go through Kamailio: it record-routed the INVITE, once.
        [route] = caller_dialog.route_set
        self.assertIn("sip:127.0.0.1:%d;lr" % self.kamailio.sip_port, route)
        self.assertEqual(callee_dialog.route_set, [route])
        dialogs = {caller: caller_dialog, callee: callee_dialog}
        sessions = dict(zip((caller, callee), started))
        return Call((alice_stream, bob_stream), (dialogs["alice"], dialogs["bob"]),
                    (sessions["alice"], sessions["bob"]), sdp_body(caller, section),
                    caller_dialog.remote_sdp)

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

    @inlineCallbacks
    def test_an_interrupted_file_is_resumed_with_only_the_rest(self):
        """A megabyte of Alice's 4 MiB file in, Bob hangs up and both abort. Bob calls her
        back offering ``FileTransferStream.resuming`` (recvonly, the first offer's
        selector, a=file-range from the first byte he lacks); Alice answers with the file
        opened again and sends only the rest, and Bob has the whole file, hash checked."""
        body = os.urandom(RESUMED_FILE_SIZE)
        path = self.mktemp()
        with open(path, "wb") as out:
            out.write(body)
        source = open(path, "rb")
        self.addCleanup(source.close)
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        alice = FileTransferStream.offering(source, name="four.bin",
                                            **self.stream_options("alice"))
        bob = FileTransferStream(destination=destination, **self.stream_options("bob"))
        first = yield self.call(alice, bob)
        first.alice_dialog.ended.addCallback(lambda by: first.alice.abort())
        sending = alice.send()
        deadline = reactor.seconds() + 5
        while destination.tell() < INTERRUPT_AFTER:  # a megabyte in, Bob hangs up
            self.assertFalse(sending.called or reactor.seconds() > deadline,
                             "the first megabyte never reached Bob, or the whole file did")
            yield sleep(0.001)
        bye = first.bob_dialog.bye()
        first.bob.abort()
        response = yield bye
        self.assertEqual(response.code, 200)
        yield self.assertFailure(sending, MSRPSessionError)
        yield self.assertFailure(bob.received, MSRPSessionError)
        closed = gatherResults([first.alice.closed.observe(), first.bob.closed.observe()])
        yield closed.addTimeout(2, reactor)
        have = destination.seek(0, os.SEEK_END)
        self.assertTrue(INTERRUPT_AFTER <= have < len(body), have)
        destination.seek(0)
        self.assertEqual(destination.read(), body[:have])

        # Bob calls Alice back, asking for what he lacks of the file the first offer named.
        selector = media(first.offer).msrp.file_selector
        self.assertEqual(selector.size, len(body))
        again = FileTransferStream.resuming(destination, selector, **self.stream_options("bob"))
        reopened = open(path, "rb")  # the file opened again
        self.addCleanup(reopened.close)
        sender = FileTransferStream(source=reopened, **self.stream_options("alice"))
        second = yield self.call(sender, again, caller="bob")
        self.assertNotEqual(second.alice_dialog.call_id, first.alice_dialog.call_id)
        self.assertEqual(second.bob_dialog.remote, second.alice_dialog.local)  # Bob called
        self.assertTrue(second.bob_dialog.local.startswith("<sip:bob@"))
        offered = media(second.offer).msrp
        self.assertIn("a=recvonly\r\n", second.offer)
        self.assertIn("a=file-range:%d-%d\r\n" % (have + 1, len(body)), second.offer)
        self.assertEqual(offered.file_selector, selector)
        self.assertIn("a=sendonly\r\n", second.answer)
        self.assertEqual(setup_of(second.offer), "actpass")
        self.assertEqual(setup_of(second.answer),
                         "active" if self.answer_active else "passive")
        totals = set()
        yield sender.send(progress=lambda done, total: totals.add(total))
        message = yield again.received  # whole, and its hash the selector's
        self.assertEqual(message.size, len(body) - have)  # only the rest went
        self.assertEqual(totals, {len(body) - have})
        destination.seek(0)
        self.assertEqual(sha256(destination.read()), sha256(body))
        yield second.bob_dialog.bye()
        yield gatherResults([second.alice.shutdown(), second.bob.shutdown()])


class ThroughTheRelayTests(CallCases, unittest.TestCase):
    """MSRP through Kamailio's relay, both sides AUTHed to it."""

    relayed = True


class SharedRelayConnectionTests(SIPHarness, unittest.TestCase):
    """A call with two streams (a chat and a file), each side's through one connection to
    the relay and one AUTH (a RelayConnection given to both of its streams)."""

    @inlineCallbacks
    def test_a_chat_and_a_file_in_one_call_share_each_sides_relay_connection(self):
        relays = {user: RelayConnection(MSRPRelaySettings(
            "msrp-test", user, USERS[user], host="127.0.0.1", port=self.kamailio.port))
            for user in ("alice", "bob")}
        options = {user: {"relay": relays[user], "session_settings": SESSION_SETTINGS}
                   for user in relays}
        body = os.urandom(FILE_SIZE)
        heard = CollectingReceiver(), CollectingReceiver()
        alice_chat = ChatStream(receiver=heard[0], **options["alice"])
        alice_file = FileTransferStream.offering(io.BytesIO(body), name="two.bin",
                                                 **options["alice"])
        bob_chat = ChatStream(receiver=heard[1], **options["bob"])
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        bob_file = FileTransferStream(destination=destination, **options["bob"])
        streams = (alice_chat, alice_file, bob_chat, bob_file)
        for stream in streams:
            self.addCleanup(stream.cleanup)
        answered = []

        @inlineCallbacks
        def answer(dialog):
            chat_offer, file_offer = parse_sdp(dialog.remote_sdp).media
            chat_section = yield bob_chat.make_answer(chat_offer)
            file_section = yield bob_file.make_answer(file_offer)
            answered.extend([dialog, bob_chat.start(), bob_file.start()])
            return sdp_body("bob", chat_section + file_section)

        alice_agent = yield self.agent("alice")
        bob_agent = yield self.agent("bob")
        bob_agent.on_invite = answer
        offer = yield gatherResults([alice_chat.make_offer(), alice_file.make_offer()])
        dialog = yield alice_agent.invite("bob", sdp_body("alice", "".join(offer)))
        chat_answer, file_answer = parse_sdp(dialog.remote_sdp).media
        alice_chat.take_answer(chat_answer)
        alice_file.take_answer(file_answer)
        bob_dialog, bob_chat_started, bob_file_started = answered
        sessions = yield gatherResults([alice_chat.start(), alice_file.start(),
                                        bob_chat_started, bob_file_started],
                                       consumeErrors=True)
        for session in sessions:
            self.addCleanup(close, session.transport)
        self.assertEqual([relays[user].auth_count for user in relays], [1, 1])
        self.assertEqual([relays[user].sessions for user in relays], [2, 2])
        self.assertEqual(len({id(session.transport.protocol.protocol)
                              for session in sessions}), 2)
        sending = alice_file.send()
        yield alice_chat.session.send_message(b"while the file goes", "text/plain")
        yield bob_chat.session.send_message(b"it does", "text/plain")
        yield sending
        message = yield bob_file.received
        self.assertEqual(message.size, len(body))
        destination.seek(0)
        self.assertEqual(sha256(destination.read()), sha256(body))
        self.assertEqual([m.data for m in heard[1].received], [b"while the file goes"])
        self.assertEqual([m.data for m in heard[0].received], [b"it does"])
        yield dialog.bye()
        yield gatherResults([session.shutdown() for session in sessions])
        self.assertEqual([relays[user].sessions for user in relays], [0, 0])


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


class RelayGrantOutlivedTests(SIPHarness, unittest.TestCase):
    """Kamailio grants AUTH for 2 s (as in test_relay_kamailio's RefreshTests): a call
    through the relay lasts longer than that."""

    relayed = True
    kamailio_options = {"min_expires": 1, "max_expires": 2}

    @inlineCallbacks
    def test_a_session_longer_than_the_grant(self):
        """Both streams refresh AUTH on their session's connection and tell the
        application of each new Use-Path (the full local path, to offer again); chat keeps
        working both ways, with success REPORTs, after the first grant ran out twice.

        It keeps working on the paths of the call's SDP, never renegotiated, only because
        Kamailio drops an expired grant's session on its msrp cleanup timer
        (``timer_interval``, 60 s by default, kept here). With a quick timer a call needs
        the new paths offered in re-INVITEs: :class:`RelayGrantDroppedTests`."""
        heard = CollectingReceiver(), CollectingReceiver()
        changes = [], []
        alice = ChatStream(receiver=heard[0], on_path_changed=changes[0].append,
                           **self.stream_options("alice"))
        bob = ChatStream(receiver=heard[1], on_path_changed=changes[1].append,
                         **self.stream_options("bob"))
        call = yield self.call(alice, bob)
        self.check_setup(call)
        yield call.alice.send_message(b"before", "text/plain", success_report="yes")
        granted = reactor.seconds()
        yield sleep(4.0)  # two grants of 2 s: refreshed at 1.5 s and 3 s
        for stream, offered, reported in ((alice, call.offer, changes[0]),
                                          (bob, call.answer, changes[1])):
            first_path = media(offered).msrp.path
            self.assertGreaterEqual(len(reported), 2)
            endpoint = stream._endpoint  # no public accessor for the current path
            self.assertEqual(len(reported), endpoint.auth_count - 1)
            self.assertEqual(reported[-1], endpoint.full_local_path)
            relay_hops = [first_path[0]]
            for path in reported:
                # The relay's new Use-Path, then our own URI, unchanged.
                self.assertEqual(len(path), 2)
                self.assertEqual(path[-1], first_path[-1])
                self.assertEqual((path[0].host, path[0].port),
                                 ("127.0.0.1", self.kamailio.port))
                relay_hops.append(path[0])
            self.assertEqual(len(set(relay_hops)), len(relay_hops))  # each a new one
        self.assertGreater(reactor.seconds() - granted, 2 * 2)
        yield call.alice.send_message(b"after alice", "text/plain", success_report="yes")
        yield call.bob.send_message(b"after bob", "text/plain", success_report="yes")
        self.assertEqual([m.data for m in heard[1].received], [b"before", b"after alice"])
        self.assertEqual([m.data for m in heard[0].received], [b"after bob"])
        self.assertTrue(call.alice.transport.is_connected())
        self.assertTrue(call.bob.transport.is_connected())
        yield call.alice_dialog.bye()
        yield gatherResults([call.alice.shutdown(), call.bob.shutdown()])


class Renegotiation:
    """One side of a call through the relay, keeping the peer told of its path: on each new
    Use-Path (``on_path_changed``) it offers ``stream.media_section()`` in a re-INVITE and
    gives the answer to ``stream.take_new_path``; it answers the peer's re-INVITE with its
    own ``media_section()``, taking the offered path at once
    (``take_new_path(offer, ours=False)``) and naming its own once the ACK is in
    (``use_own_path``). ``hold()`` stops offering (the session then keeps the paths it
    has)."""

    def __init__(self, user):
        self.user = user
        self.stream = None
        self.dialog = None
        self.changes = []  # every new full local path reported
        self.early = []  # those reported before the call was up (none expected)
        self.reinvites = []  # the Deferreds of our re-INVITEs
        self.taken = []  # "answer" (to our re-INVITE) or "offer" (the peer's), as taken
        self.held = False

    def path_changed(self, path):
        self.changes.append(path)
        if self.dialog is None:
            self.early.append(path)
        elif not self.held:
            offer = sdp_body(self.user, self.stream.media_section())
            self.reinvites.append(self.dialog.reinvite(offer).addCallback(self.take, "answer"))

    def attach(self, stream, dialog):
        self.stream, self.dialog = stream, dialog
        dialog.on_reinvite = self.answer
        dialog.on_reinvite_done = lambda offer: self.acked()

    def answer(self, offer):
        self.stream.take_new_path(media(offer), ours=False)
        return sdp_body(self.user, self.stream.media_section())

    def acked(self):
        self.stream.use_own_path()
        self.taken.append("offer")

    def take(self, sdp, kind):
        self.stream.take_new_path(media(sdp))
        self.taken.append(kind)

    def hold(self):
        """Offer no more; fires when our re-INVITEs under way are done."""
        self.held = True
        return gatherResults(self.reinvites, consumeErrors=True)


class RelayGrantDroppedTests(SIPHarness, unittest.TestCase):
    """Kamailio grants AUTH for 2 s and drops expired grants every second
    (``timer_interval`` 1): a Use-Path stops working about a second after its grant ran
    out, so a longer call lives on re-INVITEs."""

    relayed = True
    kamailio_options = {"min_expires": 1, "max_expires": 2, "timer_interval": 1}

    @inlineCallbacks
    def test_re_invites_carry_the_new_paths(self):
        """Each new Use-Path is offered in a re-INVITE by the side it belongs to; once the
        exchange is done both sides switch (``take_new_path``). After three grants chat
        works both ways with success REPORTs, by paths none of which the call's SDP had,
        and a message by the call's first paths no longer gets through."""
        heard = CollectingReceiver(), CollectingReceiver()
        sides = Renegotiation("alice"), Renegotiation("bob")
        alice = ChatStream(receiver=heard[0], on_path_changed=sides[0].path_changed,
                           **self.stream_options("alice"))
        bob = ChatStream(receiver=heard[1], on_path_changed=sides[1].path_changed,
                         **self.stream_options("bob"))
        call = yield self.call(alice, bob)
        granted = reactor.seconds()
        sides[0].attach(alice, call.alice_dialog)
        sides[1].attach(bob, call.bob_dialog)
        first_paths = {"alice": (call.alice.transport.local_path,
                                 call.alice.transport.full_remote_path),
                       "bob": (call.bob.transport.local_path,
                               call.bob.transport.full_remote_path)}
        self.assertEqual(first_paths["alice"][0], media(call.offer).msrp.path)
        self.assertEqual(first_paths["bob"][0], media(call.answer).msrp.path)
        yield call.alice.send_message(b"before", "text/plain", success_report="yes")
        # Grants at 0 s, refreshed at 1.5, 3 and 4.5 s; the first ran out at 2 s and was
        # dropped by 3 s, the second by 4.5 s.
        yield sleep(5.25)
        yield gatherResults([side.hold() for side in sides])
        for side, stream, session, peer in ((sides[0], alice, call.alice, bob),
                                            (sides[1], bob, call.bob, alice)):
            self.assertEqual(side.early, [])
            self.assertGreaterEqual(len(side.changes), 3)
            # One re-INVITE each way per new Use-Path, every exchange taken on both sides.
            self.assertEqual(len(side.reinvites), len(side.changes))
            self.assertEqual(side.taken.count("answer"), len(side.changes))
            self.assertEqual(side.taken.count("offer"),
                             len([s for s in sides if s is not side][0].changes))
            local, remote = first_paths[side.user]
            # The session goes by the last paths told, and none of the first relay hops.
            self.assertEqual(session.transport.local_path, side.changes[-1])
            self.assertEqual(media(sdp_body(side.user, stream.media_section())).msrp.path,
                             side.changes[-1])
            self.assertEqual(session.transport.full_remote_path,
                             media(sdp_body("peer", peer.media_section())).msrp.path)
            self.assertNotEqual(session.transport.local_path[0], local[0])
            self.assertNotEqual(session.transport.full_remote_path[0], remote[0])
            self.assertEqual(session.transport.local_uri, local[-1])
        self.assertGreater(reactor.seconds() - granted, 2 + 1 + 2)
        yield call.alice.send_message(b"after alice", "text/plain", success_report="yes")
        yield call.bob.send_message(b"after bob", "text/plain", success_report="yes")
        yield call.alice.send_message(b"and again", "text/plain", success_report="yes")
        self.assertEqual([m.data for m in heard[1].received],
                         [b"before", b"after alice", b"and again"])
        self.assertEqual([m.data for m in heard[0].received], [b"after bob"])

        # The call's first paths are dead: Kamailio dropped their grants. (Both sides go
        # back to them, so that only the relay can refuse; with Kamailio's 60 s timer the
        # message gets through.)
        call.alice.transport.update_paths(*first_paths["alice"])
        call.bob.transport.update_paths(*first_paths["bob"])
        lost = call.alice.send_message(b"by the first paths", "text/plain",
                                       success_report="yes")
        yield sleep(0.5)
        self.assertFalse(lost.called)
        self.assertEqual(len(heard[1].received), 3)
        lost.cancel()
        yield self.assertFailure(lost, Exception)
        yield call.alice_dialog.bye()
        yield gatherResults([call.alice.shutdown(), call.bob.shutdown()])
