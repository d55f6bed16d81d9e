"""Chat as chat clients speak it (msrplib.chat): CPIM with IMDN over real loopback streams,
and typing indications and refusals on an in-memory pair with a task.Clock."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial import unittest

from msrplib.chat import ChatReceiver, ChatSession
from msrplib.cpim import Address, CPIMMessage
from msrplib.errors import MSRPTransactionError
from msrplib.imdn import notification_for, request_notifications
from msrplib.iscomposing import IDLE_TIMEOUT, REFRESH_INTERVAL, REFRESH_LEAD
from msrplib.sdp import parse_sdp
from msrplib.session import SessionSettings
from msrplib.stream import CHAT_WRAPPED_TYPES, ChatStream
from msrplib.testing import SessionPair

ALICE = Address("sip:alice@example.com", "Alice")
BOB = Address("sip:bob@example.com", "Bob")
SETTINGS = SessionSettings(keepalive_interval=0)


def sections(sdp):
    return [section for section in parse_sdp(sdp).media if section.is_msrp]


def whole_sdp(section):
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + section


class LoopbackChatTests(unittest.TestCase):
    """Two ChatStreams on loopback TCP, offer and answer as a SIP stack carries them."""

    @inlineCallbacks
    def streams(self, alice_options, bob_options):
        alice = ChatStream(local_host="127.0.0.1", session_settings=SETTINGS,
                           local_identity=ALICE, remote_identity=BOB, **alice_options)
        bob = ChatStream(local_host="127.0.0.1", session_settings=SETTINGS,
                         local_identity=BOB, remote_identity=ALICE, **bob_options)
        for stream in (alice, bob):
            self.addCleanup(stream.cleanup)
        [offer] = sections(whole_sdp((yield alice.make_offer())))
        [answer] = sections(whole_sdp((yield bob.make_answer(offer))))
        alice.take_answer(answer)
        sessions = yield gatherResults([alice.start(), bob.start()])
        for session in sessions:
            self.addCleanup(session.abort)
        return alice, bob

    @inlineCallbacks
    def test_three_messages_each_delivered_and_displayed(self):
        heard, notified = [], []
        all_notified = Deferred()

        def bob_heard(message):
            heard.append(message)
            bob.displayed(message)  # shown to Bob at once

        def alice_notified(sent, notification):
            notified.append((sent, notification))
            if len(notified) == 6:
                all_notified.callback(None)

        alice, bob = yield self.streams({"on_notification": alice_notified},
                                        {"on_message": bob_heard})
        self.assertIn("a=accept-wrapped-types:%s" % " ".join(CHAT_WRAPPED_TYPES),
                      alice.media_section())
        sent = [alice.send_text(text) for text in ("one", "two", "thr\u00e9\u00e9")]
        yield gatherResults([chat.sent for chat in sent])
        yield all_notified.addTimeout(5, reactor)
        self.assertEqual([message.text for message in heard], ["one", "two", "thr\u00e9\u00e9"])
        self.assertEqual({message.sender for message in heard}, {ALICE})
        self.assertEqual([message.content_type for message in heard], ["text/plain"] * 3)
        self.assertEqual([message.imdn_message_id for message in heard],
                         [chat.imdn_message_id for chat in sent])
        for chat in sent:
            self.assertEqual(sorted((n.kind, n.status) for n in chat.notifications),
                             [("delivery", "delivered"), ("display", "displayed")])
            self.assertEqual({n.message_id for n in chat.notifications},
                             {chat.imdn_message_id})
        self.assertEqual(len({chat.imdn_message_id for chat in sent}), 3)

    @inlineCallbacks
    def test_a_peer_without_cpim_gets_plain_text(self):
        heard = []
        arrived = Deferred()
        alice, bob = yield self.streams(
            {}, {"accept_types": ["text/plain"], "accept_wrapped_types": [],
                 "on_message": lambda message: (heard.append(message),
                                                arrived.callback(None))})
        chat = alice.send_text("plain")
        self.assertIsNone(chat.imdn_message_id)
        yield gatherResults([chat.sent, arrived.addTimeout(5, reactor)])
        self.assertEqual((heard[0].text, heard[0].cpim, heard[0].sender),
                         ("plain", None, None))
        self.assertRaises(ValueError, alice.send_text, "<b/>", "application/xml")


class InMemoryChat:
    """Two ChatSessions over msrplib.testing.SessionPair: one clock, no sockets."""

    def __init__(self, alice_types=("message/cpim", "text/plain"),
                 alice_wrapped=CHAT_WRAPPED_TYPES, **bob_callbacks):
        receivers = ChatReceiver(), ChatReceiver()
        self.pair = SessionPair(settings=SETTINGS, alice_options={"receiver": receivers[0]},
                                bob_options={"receiver": receivers[1]})
        self.alice_heard, self.bob_heard, self.alice_typing, self.bob_typing = [], [], [], []
        self.notified = []
        self.alice = ChatSession(self.pair.alice, ["message/cpim", "text/plain"],
                                 CHAT_WRAPPED_TYPES, local=ALICE, remote=BOB,
                                 on_message=self.alice_heard.append,
                                 on_notification=lambda *pair: self.notified.append(pair),
                                 on_composing=self.alice_typing.append)
        options = {"on_message": self.bob_heard.append,
                   "on_composing": self.bob_typing.append}
        options.update(bob_callbacks)
        self.bob = ChatSession(self.pair.bob, alice_types, alice_wrapped, local=BOB,
                               remote=ALICE, **options)
        receivers[0].attach(self.alice)
        receivers[1].attach(self.bob)

    def flush(self):
        self.pair.flush()


class TypingTests(unittest.TestCase):
    def setUp(self):
        self.chat = InMemoryChat()
        self.clock = self.chat.pair.clock

    def type_for(self, seconds, every=5):
        for _ in range(int(seconds / every)):
            self.chat.alice.composing()
            self.chat.flush()
            self.clock.advance(every)
            self.chat.flush()

    def test_active_refreshed_then_idle_on_its_timer(self):
        sent = []
        original = self.chat.alice._send_composing
        self.chat.alice._indicator.send = lambda document: (sent.append(document.state),
                                                            original(document))
        self.type_for(REFRESH_INTERVAL - REFRESH_LEAD + 5)
        self.assertEqual(sent, ["active", "active"])  # refreshed before it ran out
        self.assertEqual(self.chat.bob_typing, ["active"])
        self.clock.advance(IDLE_TIMEOUT)
        self.chat.flush()
        self.assertEqual(sent, ["active", "active", "idle"])
        self.assertEqual(self.chat.bob_typing, ["active", "idle"])

    def test_the_message_ends_typing_without_an_indication(self):
        self.chat.alice.composing()
        self.chat.flush()
        self.chat.alice.send_text("done")
        self.chat.flush()
        self.assertEqual(self.chat.bob_typing, ["active", "idle"])
        self.assertEqual([m.text for m in self.chat.bob_heard], ["done"])
        self.clock.advance(1000)
        self.chat.flush()
        self.assertEqual(self.chat.bob_typing, ["active", "idle"])

    def test_a_silent_peer_goes_idle_when_its_refresh_runs_out(self):
        self.chat.alice.composing()
        self.chat.flush()
        self.chat.alice._indicator.stop()  # Alice's side goes quiet without a word
        self.clock.advance(REFRESH_INTERVAL - 1)
        self.assertEqual(self.chat.bob_typing, ["active"])
        self.clock.advance(1)
        self.assertEqual(self.chat.bob_typing, ["active", "idle"])


class RefusalTests(unittest.TestCase):
    def setUp(self):
        self.chat = InMemoryChat()

    def send_raw(self, body, content_type="message/cpim"):
        sent = self.chat.pair.alice.send_message(body, content_type, success_report="yes")
        self.chat.flush()
        return sent

    def test_bad_cpim_is_refused_with_400(self):
        error = self.failureResultOf(self.send_raw(b"not cpim at all"),
                                     MSRPTransactionError).value
        self.assertEqual(error.code, 400)
        self.assertEqual(self.chat.bob_heard, [])

    def test_hostile_xml_in_a_notification_is_refused(self):
        wrapper = CPIMMessage.build(
            b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><imdn xmlns="urn:ietf:params:xml:ns:'
            b'imdn"><message-id>&a;</message-id></imdn>', "message/imdn+xml")
        error = self.failureResultOf(self.send_raw(wrapper.encode()),
                                     MSRPTransactionError).value
        self.assertEqual(error.code, 400)

    def test_a_type_this_chat_does_not_take_inside_cpim_gets_415(self):
        self.chat.bob.takes_wrapped = ["text/plain"]
        wrapper = CPIMMessage.build(b"\x89PNG", "image/png", sender=ALICE, recipients=[BOB])
        error = self.failureResultOf(self.send_raw(wrapper.encode()),
                                     MSRPTransactionError).value
        self.assertEqual(error.code, 415)
        self.assertEqual(self.chat.bob_heard, [])

    def test_a_notification_for_nothing_sent_here_is_dropped(self):
        asked = CPIMMessage.build("x", sender=BOB, recipients=[ALICE])
        request_notifications(asked)
        self.successResultOf(self.send_raw(
            notification_for(asked, "delivery", "delivered").encode()))
        self.assertEqual(self.chat.notified, [])

    def test_an_application_that_fails_gets_a_failed_notification_sent(self):
        def broken(message):
            raise RuntimeError("the application's bug")

        self.chat = InMemoryChat(on_message=broken)
        self.chat.alice.notifications = ("positive-delivery", "negative-delivery")
        sent = self.chat.alice.send_text("hello")
        self.chat.flush()
        self.assertEqual([(n.kind, n.status) for n in sent.notifications],
                         [("delivery", "failed")])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_a_failing_typing_callback_is_logged_and_the_chat_goes_on(self):
        def broken(state):
            raise RuntimeError("the application's bug")

        self.chat = InMemoryChat(on_composing=broken)
        self.chat.alice.composing()
        self.chat.flush()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.chat.alice.send_text("still here")
        self.chat.flush()
        self.assertEqual([m.text for m in self.chat.bob_heard], ["still here"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)  # told "idle" by it

    def test_a_message_before_the_chat_is_attached_waits_for_it(self):
        receiver = ChatReceiver()
        pair = SessionPair(settings=SETTINGS, bob_options={"receiver": receiver})
        sent = pair.alice.send_message(b"early", "text/plain", success_report="yes")
        pair.flush()
        self.assertNoResult(sent)  # its success REPORT waits for the chat
        heard = []
        receiver.attach(ChatSession(pair.bob, ["*"], on_message=heard.append))
        pair.flush()
        self.successResultOf(sent)
        self.assertEqual([message.text for message in heard], ["early"])
