"""The chat of doc/chat.rst, with both user agents in one process: CPIM with delivery and
display notifications, and typing indications, over loopback TCP. The tests run it
(tests/test_doc_examples.py)."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks

from msrplib.cpim import Address
from msrplib.sdp import parse_sdp
from msrplib.stream import ChatStream


def whole_sdp(media_section):
    """An SDP body around one media section, as a user agent would send it."""
    return ("v=0\r\no=- 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\n"
            "t=0 0\r\n" + media_section)


def msrp_section(sdp_body):
    [section] = [section for section in parse_sdp(sdp_body).media if section.is_msrp]
    return section


@inlineCallbacks
def chat():
    """Alice types, then sends two messages; Bob reads them. Fires with what each saw:
    Bob's texts and Alice's typing as Bob saw it, and the notifications Alice got."""
    alice_identity = Address("sip:alice@example.com", "Alice")
    bob_identity = Address("sip:bob@example.com", "Bob")
    bob_saw, typing, notified = [], [], []
    all_notified = Deferred()

    def bob_reads(message):
        bob_saw.append(message.text)
        bob.displayed(message)  # shown to Bob: Alice asked to be told

    def alice_hears(sent, notification):
        notified.append((sent.text, notification.status))
        if len(notified) == 4:  # delivered and displayed, for each of the two
            all_notified.callback(None)

    alice = ChatStream(local_host="127.0.0.1", local_identity=alice_identity,
                       remote_identity=bob_identity, on_notification=alice_hears)
    bob = ChatStream(local_host="127.0.0.1", local_identity=bob_identity,
                     remote_identity=alice_identity, on_message=bob_reads,
                     on_composing=typing.append)

    offer = msrp_section(whole_sdp((yield alice.make_offer())))    # in the INVITE
    answer = msrp_section(whole_sdp((yield bob.make_answer(offer))))  # in the 200 OK
    alice.take_answer(answer)
    yield gatherResults([alice.start(), bob.start()])

    alice.composing()            # a keystroke: Bob sees "active"
    first = alice.send_text("Hello, Bob")   # the message ends the typing
    second = alice.send_text("How are you?")
    yield gatherResults([first.sent, second.sent])
    yield all_notified.addTimeout(10, reactor)

    alice.session.abort()        # a BYE
    bob.session.abort()
    return bob_saw, typing, sorted(notified)
