"""The offer/answer walk of doc/sip.rst, with both user agents in one process.

Each function plays what two SIP user agents do with their MSRP streams: Alice's INVITE
carries her offer, Bob's 200 OK his answer, and then both start. Pass ``relay_settings``
(a function of a user name giving ``MSRPRelaySettings``) to go through a relay; without
it the streams connect directly, over TLS checked by the SDP fingerprints. The tests run
both (tests/test_doc_examples.py, tests/test_relay_kamailio.py).
"""

from twisted.internet.defer import gatherResults, inlineCallbacks

from msrplib.sdp import parse_sdp
from msrplib.session import MessageReceiver
from msrplib.stream import ChatStream, FileTransferStream


def whole_sdp(*media_sections):
    """An SDP body around media sections, as a user agent would send it."""
    return ("v=0\r\no=- 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\n"
            "t=0 0\r\n" + "".join(media_sections))


def msrp_sections(sdp_body):
    """The MSRP media sections of an SDP body, in order."""
    return [section for section in parse_sdp(sdp_body).media if section.is_msrp]


class Inbox(MessageReceiver):
    """Keeps the text messages that arrive."""

    def __init__(self):
        self.texts = []

    def message_received(self, message):
        self.texts.append(message.data.decode("utf-8"))


@inlineCallbacks
def chat(relay_settings=None):
    """A chat: Alice offers, Bob answers, each says hello, Bob hangs up."""
    alice_inbox, bob_inbox = Inbox(), Inbox()
    alice = ChatStream(relay=relay_settings and relay_settings("alice"),
                       local_host="127.0.0.1", use_tls=True, receiver=alice_inbox)
    bob = ChatStream(relay=relay_settings and relay_settings("bob"),
                     local_host="127.0.0.1", use_tls=True, receiver=bob_inbox)

    # Alice: the INVITE's body holds her offer (a=setup:actpass, her a=path...).
    invite_body = whole_sdp((yield alice.make_offer()))

    # Bob: his user agent takes the offer and puts his answer in the 200 OK.
    [offer] = msrp_sections(invite_body)
    ok_body = whole_sdp((yield bob.make_answer(offer)))

    # Alice: the 200 OK's answer says who connects; then both streams start.
    [answer] = msrp_sections(ok_body)
    alice.take_answer(answer)
    alice_session, bob_session = yield gatherResults([alice.start(), bob.start()])

    yield alice_session.send_message(b"Hello, Bob", "text/plain")
    yield bob_session.send_message(b"Hello, Alice", "text/plain")

    # A BYE: both sides end the session at once.
    bob_session.abort()
    alice_session.abort()
    return alice_inbox.texts, bob_inbox.texts


@inlineCallbacks
def file_transfer(source, destination, relay_settings=None):
    """Alice offers the binary file ``source``; Bob takes it into ``destination`` and it
    is checked against the offer's size and hash. Fires with Bob's IncomingMessage."""
    alice = FileTransferStream.offering(
        source, "application/pdf", relay=relay_settings and relay_settings("alice"),
        local_host="127.0.0.1", use_tls=True)
    bob = FileTransferStream(destination=destination,
                             relay=relay_settings and relay_settings("bob"),
                             local_host="127.0.0.1", use_tls=True)

    invite_body = whole_sdp((yield alice.make_offer()))   # a=file-selector, a=sendonly
    [offer] = msrp_sections(invite_body)
    # Bob's user agent may ask its user first: offer.msrp.file_selector has the file's
    # name, type, size and hash.
    ok_body = whole_sdp((yield bob.make_answer(offer)))   # a=recvonly
    [answer] = msrp_sections(ok_body)
    alice.take_answer(answer)
    alice_session, bob_session = yield gatherResults([alice.start(), bob.start()])

    yield alice.send()               # fires once Bob's success REPORT covers the file
    message = yield bob.received     # the file is whole, its size and hash checked

    yield gatherResults([alice_session.shutdown(), bob_session.shutdown()])
    return message
