"""Streams as a SIP stack drives them (issue 24): offer, answer, start, over real loopback
TCP and TLS; a file transfer with its hash checked on receipt."""

import hashlib
import io
import os

from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial import unittest

from msrplib.errors import (FingerprintMismatch, MSRPError, MSRPSessionError,
                            MSRPTransactionError)
from msrplib._filepart import FilePart
from msrplib.protocol import parse_uri
from msrplib.sdp import FileRange, FileSelector, parse_sdp
from msrplib.session import SessionSettings
from msrplib.stream import (ChatStream, FileHashMismatch, FileTransferStream, StreamRefused)
from msrplib.testing import CollectingReceiver
from tests.helpers import close

SETTINGS = SessionSettings(keepalive_interval=0)


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


def description(*sections):
    """A whole SDP around media sections, as a SIP stack would send it."""
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + "".join(sections)


def section_of(text, index=0):
    return parse_sdp(description(text)).media[index]


@inlineCallbacks
def negotiate(case, offerer, answerer, tamper=lambda offer: offer):
    """Offer, answer (from the offer as ``tamper`` leaves it) and start both streams;
    everything is cleaned up when ``case`` ends. Fires with (offer, answer, sessions)."""
    for stream in (offerer, answerer):
        case.addCleanup(stream.cleanup)
    offer = yield offerer.make_offer()
    answer = yield answerer.make_answer(section_of(tamper(offer)))
    offerer.take_answer(section_of(answer))
    sessions = yield gatherResults([offerer.start(), answerer.start()], consumeErrors=True)
    for session in sessions:
        case.addCleanup(close, session.transport)
    return offer, answer, sessions


class ChatStreamTests(unittest.TestCase):
    def streams(self, **options):
        heard = CollectingReceiver(), CollectingReceiver()
        alice = ChatStream(local_host="127.0.0.1", receiver=heard[0],
                           session_settings=SETTINGS, **options)
        bob = ChatStream(local_host="127.0.0.1", receiver=heard[1],
                         session_settings=SETTINGS, **options)
        for stream in (alice, bob):
            self.addCleanup(stream.cleanup)
        return alice, bob, heard

    @inlineCallbacks
    def start(self, alice, bob):
        sessions = yield gatherResults([alice.start(), bob.start()], consumeErrors=True)
        for session in sessions:
            self.addCleanup(close, session.transport)
        return sessions

    @inlineCallbacks
    def chat(self, **options):
        alice, bob, heard = self.streams(**options)
        offer = yield alice.make_offer()
        answer = yield bob.make_answer(section_of(offer))
        alice.take_answer(section_of(answer))
        sessions = yield self.start(alice, bob)
        yield sessions[0].send_message(b"hello bob", "text/plain")
        yield sessions[1].send_message(b"hello alice", "text/plain")
        self.assertEqual([m.data for m in heard[1].received], [b"hello bob"])
        self.assertEqual([m.data for m in heard[0].received], [b"hello alice"])
        return alice, bob, offer, answer

    @inlineCallbacks
    def test_direct_chat_over_tcp(self):
        alice, bob, offer, answer = yield self.chat()
        self.assertIn("m=message %d TCP/MSRP *\r\nc=IN IP4 127.0.0.1\r\n"
                      % alice.local_media.path[0].port, offer)
        self.assertIn("a=setup:actpass\r\n", offer)
        self.assertIn("a=accept-types:message/cpim text/plain\r\n", offer)
        self.assertIn("a=setup:passive\r\n", answer)
        self.assertEqual((alice.role, bob.role), ("active", "passive"))

    @inlineCallbacks
    def test_direct_chat_over_tls_checks_fingerprints(self):
        alice, bob, offer, answer = yield self.chat(use_tls=True)
        self.assertIn("TCP/TLS/MSRP", offer)
        self.assertIn("a=fingerprint:sha-256 ", offer)
        self.assertIn("a=fingerprint:sha-256 ", answer)

    @inlineCallbacks
    def test_a_wrong_fingerprint_fails_the_start(self):
        alice, bob, _ = self.streams(use_tls=True)
        offer = yield alice.make_offer()
        answer = yield bob.make_answer(section_of(offer))
        impostor = ChatStream(local_host="127.0.0.1", use_tls=True)
        self.addCleanup(impostor.cleanup)
        other = yield impostor.make_offer()
        fingerprint = [line for line in other.split("\r\n") if "fingerprint" in line][0]
        forged = "\r\n".join(fingerprint if "fingerprint" in line else line
                             for line in answer.split("\r\n"))
        alice.take_answer(section_of(forged))
        starting = alice.start()
        bob.start().addErrback(lambda failure: None)
        yield self.assertFailure(starting, FingerprintMismatch)

    @inlineCallbacks
    def test_msrps_without_a_fingerprint_is_refused(self):
        alice, bob, _ = self.streams(use_tls=True)
        offer = yield alice.make_offer()
        bare = "".join(line + "\r\n" for line in offer.split("\r\n")
                       if line and "fingerprint" not in line)
        yield self.assertFailure(bob.make_answer(section_of(bare)), StreamRefused)

    @inlineCallbacks
    def test_a_refused_stream(self):
        alice, _, _ = self.streams()
        offer = yield alice.make_offer()
        refused = offer.replace("m=message %d " % alice.local_media.path[0].port,
                                "m=message 0 ")
        self.assertRaises(StreamRefused, alice.take_answer, section_of(refused))
        audio = section_of("m=audio 4000 RTP/AVP 0\r\n")
        self.assertRaises(StreamRefused, alice.take_answer, audio)

    @inlineCallbacks
    def test_the_answerer_may_connect_itself(self):
        alice, bob, heard = self.streams()
        offer = yield alice.make_offer()
        answer = yield bob.make_answer(section_of(offer), setup="active")
        self.assertIn("a=setup:active\r\n", answer)
        alice.take_answer(section_of(answer))
        self.assertEqual((alice.role, bob.role), ("passive", "active"))
        sessions = yield self.start(alice, bob)
        yield sessions[1].send_message(b"bob connected", "text/plain")
        self.assertEqual([m.data for m in heard[0].received], [b"bob connected"])

    @inlineCallbacks
    def test_an_answer_the_offer_does_not_allow(self):
        alice, bob, _ = self.streams()
        offer = yield alice.make_offer()
        fixed = offer.replace("a=setup:actpass", "a=setup:active")
        for wrong in ("active", "actpass"):
            yield self.assertFailure(bob.make_answer(section_of(fixed), setup=wrong),
                                     ValueError)
        held = offer.replace("a=setup:actpass", "a=setup:holdconn")
        yield self.assertFailure(bob.make_answer(section_of(held)), StreamRefused)
        self.assertIsNone(bob._endpoint)

    @inlineCallbacks
    def test_the_answer_turns_the_direction_round(self):
        alice, bob, _ = self.streams(direction="sendonly")
        offer = yield alice.make_offer()
        answer = yield bob.make_answer(section_of(offer))
        self.assertIn("a=sendonly\r\n", offer)
        self.assertIn("a=recvonly\r\n", answer)

    @inlineCallbacks
    def test_cema_connects_to_the_media_address(self):
        alice, bob, _ = self.streams()
        offer = yield alice.make_offer()
        self.assertIn("a=msrp-cema\r\n", offer)
        answer = yield bob.make_answer(section_of(offer))
        self.assertIn("a=msrp-cema\r\n", answer)
        port = bob.local_media.path[0].port
        alice.take_answer(section_of(answer.replace("c=IN IP4 127.0.0.1",
                                                    "c=IN IP4 127.0.0.2")))
        self.assertEqual(alice._cema_address(), ("127.0.0.2", port))
        plain = bob.local_media.to_lines().replace("a=msrp-cema\r\n", "")
        alice.take_answer(section_of("m=message %d TCP/MSRP *\r\n%s" % (port, plain)))
        self.assertIsNone(alice._cema_address())


class FileTransferStreamTests(unittest.TestCase):
    @inlineCallbacks
    def transfer(self, body, tamper=lambda offer: offer):
        source = io.BytesIO(body)
        source.name = "/somewhere/holiday photo.jpg"
        alice = FileTransferStream.offering(source, "image/jpeg", local_host="127.0.0.1",
                                            session_settings=SETTINGS)
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        bob = FileTransferStream(destination=destination, local_host="127.0.0.1",
                                 session_settings=SETTINGS)
        offer, answer, _ = yield negotiate(self, alice, bob, tamper)
        return alice, bob, offer, answer, destination

    @inlineCallbacks
    def test_a_file_arrives_whole_and_checked(self):
        body = os.urandom(3 * 1024 * 1024 + 17)
        alice, bob, offer, answer, destination = yield self.transfer(body)
        self.assertIn('name:"holiday photo.jpg" type:image/jpeg size:%d hash:sha-1:'
                      % len(body), offer)
        self.assertIn("a=sendonly\r\n", offer)
        self.assertIn("a=recvonly\r\n", answer)
        self.assertIn("a=file-transfer-id:%s\r\n" % alice.file_transfer_id, answer)
        yield alice.send()
        message = yield bob.received
        self.assertEqual(message.size, len(body))
        destination.seek(0)
        self.assertEqual(hashlib.sha256(destination.read()).digest(),
                         hashlib.sha256(body).digest())
        self.assertEqual(message.headers.first["content-disposition"],
                         'attachment; filename="holiday photo.jpg"')

    @inlineCallbacks
    def test_a_file_that_is_not_the_one_offered(self):
        body = b"the real file" * 1000

        def forge(offer):
            digest = hashlib.sha1(b"another file").digest()
            forged = ":".join("%02X" % byte for byte in digest)
            start = offer.index("hash:sha-1:") + len("hash:sha-1:")
            end = offer.index("\r\n", start)
            return offer[:start] + forged + offer[end:]

        alice, bob, _, _, _ = yield self.transfer(body, forge)
        sending = alice.send()
        yield self.assertFailure(bob.received, FileHashMismatch)
        error = yield self.assertFailure(sending, MSRPTransactionError)
        self.assertEqual(error.code, 400)

    @inlineCallbacks
    def test_an_offer_without_a_file_selector_is_refused(self):
        chat = ChatStream(local_host="127.0.0.1")
        self.addCleanup(chat.cleanup)
        offer = yield chat.make_offer()
        receiver = FileTransferStream(destination=io.BytesIO())
        yield self.assertFailure(receiver.make_answer(section_of(offer)), StreamRefused)
        self.assertIsNone(receiver._endpoint)  # nothing was prepared for it


class ResumeTests(unittest.TestCase):
    """RFC 5547 a=file-range: a transfer that stopped part way is finished by sending only
    the bytes the receiver lacks."""

    def destination(self, holding=b""):
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        destination.write(holding)
        return destination

    @inlineCallbacks
    def test_the_sender_offers_a_range(self):
        body = os.urandom(200000)
        alice = FileTransferStream.offering(io.BytesIO(body), name="f.bin",
                                            file_range=FileRange(150001, None),
                                            local_host="127.0.0.1", session_settings=SETTINGS)
        destination = self.destination(body[:150000])
        bob = FileTransferStream(destination=destination, local_host="127.0.0.1",
                                 session_settings=SETTINGS)
        offer, answer, _ = yield negotiate(self, alice, bob)
        self.assertIn("a=file-range:150001-*\r\n", offer)
        yield alice.send()
        message = yield bob.received
        self.assertEqual(message.size, 50000)  # only the rest went
        destination.seek(0)
        self.assertEqual(destination.read(), body)

    @inlineCallbacks
    def test_an_interrupted_transfer_is_resumed_by_the_receiver(self):
        body = os.urandom(4 * 1024 * 1024)
        source = io.BytesIO(body)
        settings = SessionSettings(keepalive_interval=0, chunk_size=64 * 1024)
        alice = FileTransferStream.offering(source, name="big.bin", local_host="127.0.0.1",
                                            session_settings=settings)
        destination = self.destination()
        bob = FileTransferStream(destination=destination, local_host="127.0.0.1",
                                 session_settings=settings)
        yield negotiate(self, alice, bob)
        sending = alice.send()
        while destination.tell() < 1024 * 1024:  # a megabyte in, the call drops
            yield sleep(0.001)
        bob.session.abort()
        yield self.assertFailure(sending, Exception)
        yield self.assertFailure(bob.received, Exception)
        have = destination.seek(0, os.SEEK_END)
        self.assertTrue(0 < have < len(body), have)

        # Bob offers again, asking for what he lacks; Alice answers with the same file.
        again = FileTransferStream.resuming(destination, alice.file_selector,
                                            local_host="127.0.0.1", session_settings=settings)
        sender = FileTransferStream(source=io.BytesIO(body), local_host="127.0.0.1",
                                    session_settings=settings)  # the file opened again
        offer, answer, _ = yield negotiate(self, again, sender)
        self.assertIn("a=recvonly\r\n", offer)
        self.assertIn("a=file-range:%d-%d\r\n" % (have + 1, len(body)), offer)
        self.assertIn("a=sendonly\r\n", answer)
        yield sender.send()
        message = yield again.received  # whole, and its hash checked
        self.assertEqual(message.size, len(body) - have)
        destination.seek(0)
        self.assertEqual(destination.read(), body)

    @inlineCallbacks
    def test_a_resume_for_another_file_is_refused(self):
        selector = FileSelector.for_file(io.BytesIO(b"the file Bob wants"), name="want")
        asking = FileTransferStream.resuming(self.destination(b"the"), selector,
                                             local_host="127.0.0.1")
        self.addCleanup(asking.cleanup)
        offer = yield asking.make_offer()
        other = FileTransferStream(source=io.BytesIO(b"some other file!!!"),
                                   local_host="127.0.0.1")
        yield self.assertFailure(other.make_answer(section_of(offer)), StreamRefused)

    def test_a_whole_destination_needs_no_resume(self):
        selector = FileSelector.for_file(io.BytesIO(b"done"), name="d")
        self.assertRaises(ValueError, FileTransferStream.resuming,
                          self.destination(b"done"), selector)
        self.assertRaises(ValueError, FileTransferStream)


class FilePartTests(unittest.TestCase):
    def test_a_window_reads_and_writes_as_a_file(self):
        backing = io.BytesIO(b"0123456789")
        part = FilePart(backing, 3, 4)
        self.assertEqual(part.seek(0, os.SEEK_END), 4)
        part.seek(0)
        self.assertEqual((part.read(2), part.tell(), part.read(), part.read()),
                         (b"34", 2, b"56", b""))
        part.seek(1)
        part.write(b"xy")
        self.assertEqual(backing.getvalue(), b"0123xy6789")
        self.assertRaises(ValueError, part.write, b"too long")
        self.assertRaises(ValueError, part.seek, -1)
        open_ended = FilePart(backing, 8)
        self.assertEqual((open_ended.read(), open_ended.seek(0, os.SEEK_END)), (b"89", 2))
        open_ended.seek(0)
        open_ended.write(b"ab")
        self.assertEqual(backing.getvalue(), b"0123xy67ab")


class HostileFileTransferTests(unittest.TestCase):
    """What a hostile peer may try on a file transfer: each is refused, nothing is
    written where it should not be, and the receiver always hears how it ended."""

    @inlineCallbacks
    def pair(self, body=b"the real file " * 100, tamper=lambda offer: offer, holding=b"",
             name="f.bin"):
        alice = FileTransferStream.offering(io.BytesIO(body), name=name,
                                            local_host="127.0.0.1", session_settings=SETTINGS)
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        destination.write(holding)
        bob = FileTransferStream(destination=destination, local_host="127.0.0.1",
                                 session_settings=SETTINGS)
        _, _, sessions = yield negotiate(self, alice, bob, tamper)
        return alice, bob, destination, sessions

    @inlineCallbacks
    def test_one_message_only(self):
        alice, bob, destination, sessions = yield self.pair()
        yield alice.send()
        yield bob.received
        second = sessions[0].send_message(b"EVIL" * 350, "application/octet-stream")
        error = yield self.assertFailure(second, MSRPTransactionError)
        self.assertEqual(error.code, 403)
        destination.seek(0)
        self.assertEqual(destination.read(), b"the real file " * 100)

    @inlineCallbacks
    def test_a_message_of_another_size_is_refused_before_a_byte_is_written(self):
        alice, bob, destination, sessions = yield self.pair()
        bigger = sessions[0].send_message(b"X" * 2000, "application/octet-stream")
        self.assertEqual((yield self.assertFailure(bigger, MSRPTransactionError)).code, 413)
        yield self.assertFailure(bob.received, MSRPError)
        self.assertEqual(destination.seek(0, os.SEEK_END), 0)

    @inlineCallbacks
    def test_ranges_that_do_not_finish_the_file_are_refused(self):
        size = len(b"the real file " * 100)
        for holding, file_range in ((b"", "1-999"), (b"", "601-*"), (b"x" * 10, "5-*"),
                                    (b"", "1-%d" % (size + 1)), (b"", "%d-*" % (size + 2)),
                                    (b"", "99999999999999999999-*")):
            yield self.assertFailure(
                self.pair(tamper=lambda offer, r=file_range: offer + "a=file-range:%s\r\n" % r,
                          holding=holding), StreamRefused)

    @inlineCallbacks
    def test_a_hash_that_cannot_be_checked_is_refused(self):
        def md5(offer):
            return offer.replace("hash:sha-1:", "hash:md5:")
        yield self.assertFailure(self.pair(tamper=md5), StreamRefused)

    @inlineCallbacks
    def test_received_fails_when_the_session_ends_first(self):
        alice, bob, _, sessions = yield self.pair()
        sessions[0].abort()
        error = yield self.assertFailure(bob.received, MSRPSessionError)
        self.assertIn("before the file arrived", str(error))

    @inlineCallbacks
    def test_any_file_name_goes_out_and_comes_back(self):
        name = 'line\nbreak "quoted" caf\u00e9.txt'
        alice, bob, _, _ = yield self.pair(name=name)
        yield alice.send()
        message = yield bob.received
        self.assertEqual(message.file_name, name)


class DowngradeTests(unittest.TestCase):
    @inlineCallbacks
    def test_a_tls_offer_answered_without_tls_is_refused(self):
        alice = ChatStream(local_host="127.0.0.1", use_tls=True)
        bob = ChatStream(local_host="127.0.0.1")
        for stream in (alice, bob):
            self.addCleanup(stream.cleanup)
        yield alice.make_offer()
        plain = yield bob.make_answer(section_of(
            "m=message 9 TCP/MSRP *\r\na=path:msrp://127.0.0.1:9/x;tcp\r\n"))
        self.assertRaises(StreamRefused, alice.take_answer, section_of(plain))
        offering_tls = ChatStream(local_host="127.0.0.1", use_tls=True)
        self.addCleanup(offering_tls.cleanup)
        tls_offer = yield offering_tls.make_offer()
        yield self.assertFailure(ChatStream(local_host="127.0.0.1").make_answer(
            section_of(tls_offer)), StreamRefused)


class SecondReviewTests(unittest.TestCase):
    """What a second adversarial review found in the first round's fixes."""

    pair = HostileFileTransferTests.pair

    @inlineCallbacks
    def test_a_refused_first_message_ends_the_transfer_once(self):
        alice, bob, destination, sessions = yield self.pair()
        wrong = sessions[0].send_message(b"X" * 10, "application/octet-stream")
        self.assertEqual((yield self.assertFailure(wrong, MSRPTransactionError)).code, 400)
        yield self.assertFailure(bob.received, MSRPError)
        later = alice.send()  # the right file, too late: the transfer is over
        self.assertEqual((yield self.assertFailure(later, MSRPTransactionError)).code, 403)
        self.assertEqual(destination.seek(0, os.SEEK_END), 0)

    @inlineCallbacks
    def test_a_file_over_the_session_limit_that_was_answered_is_taken(self):
        body = os.urandom(5000)
        alice = FileTransferStream.offering(io.BytesIO(body), name="big",
                                            local_host="127.0.0.1", session_settings=SETTINGS)
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        small = SessionSettings(keepalive_interval=0, max_message_size=1000)
        bob = FileTransferStream(destination=destination, local_host="127.0.0.1",
                                 session_settings=small)
        yield negotiate(self, alice, bob)
        self.assertEqual((small.max_message_size, bob.session.settings.max_message_size),
                         (1000, 5000))
        yield alice.send()
        message = yield bob.received
        self.assertEqual(message.size, 5000)

    @inlineCallbacks
    def test_a_direct_stream_takes_a_peer_behind_a_tls_relay(self):
        bob = ChatStream(local_host="127.0.0.1")
        self.addCleanup(bob.cleanup)
        relayed = ("m=message 2855 TCP/TLS/MSRP *\r\n"
                   "a=path:msrps://relay.example:2855/r1;tcp msrps://alice.example:9/a1;tcp\r\n")
        answer = yield bob.make_answer(section_of(relayed))
        self.assertIn("TCP/MSRP", answer)


class NewPathStreamTests(unittest.TestCase):
    """What a re-INVITE may change of a started stream's paths (the relayed case, where
    they do change, runs through Kamailio in tests/test_sip_kamailio.py)."""

    @inlineCallbacks
    def test_a_direct_stream_keeps_its_peer(self):
        alice = ChatStream(local_host="127.0.0.1", session_settings=SETTINGS)
        bob = ChatStream(local_host="127.0.0.1", session_settings=SETTINGS)
        self.assertRaises(RuntimeError, alice.take_new_path, section_of(
            "m=message 9 TCP/MSRP *\r\na=path:msrp://127.0.0.1:9/x;tcp\r\n"))
        offer, answer, sessions = yield negotiate(self, alice, bob)
        self.assertEqual(alice.media_section(), offer)
        lines = sessions[0].transport.path_lines
        alice.take_new_path(section_of(bob.media_section()))  # the same: nothing moves
        self.assertEqual(sessions[0].transport.path_lines, lines)
        peer = bob.local_media.path[-1]
        hop = parse_uri("msrp://127.0.0.1:%d/hop;tcp" % peer.port)
        through_a_hop = bob.media_section().replace(
            "a=path:%s" % peer, "a=path:%s %s" % (hop, peer))
        stranger = bob.media_section().replace(str(peer), "msrp://127.0.0.1:9/other;tcp")
        for section in (through_a_hop, stranger):
            self.assertRaises(StreamRefused, alice.take_new_path, section_of(section))
        self.assertEqual(sessions[0].transport.path_lines, lines)
        yield sessions[0].send_message(b"still to Bob", "text/plain")

    def test_media_section_says_a_new_relay_hop(self):
        stream = ChatStream(local_host="127.0.0.1")
        self.assertRaises(RuntimeError, stream.media_section)
        self.assertRaises(RuntimeError, stream.use_own_path)
        own = parse_uri("msrp://127.0.0.1:9/me;tcp")
        stream.local_media = stream._media([own], "actpass", "sendrecv", cema=False)
        changes = []
        stream.on_path_changed = changes.append
        hop = parse_uri("msrp://relay.test:2855/r2;tcp")
        stream._path_changed([hop, own])
        self.assertEqual(changes, [[hop, own]])
        self.assertIn("a=path:%s %s" % (hop, own), stream.media_section())


def calls_off_the_main_thread(case, owner, name):
    """Watch ``owner.name``: the list of whether each call ran off the main thread."""
    import threading
    seen = []
    original = getattr(owner, name)

    def watched(*args, **kwargs):
        seen.append(threading.current_thread() is not threading.main_thread())
        return original(*args, **kwargs)

    case.patch(owner, name, watched)
    return seen


class BigFileTests(unittest.TestCase):
    """A file's hash is made off the reactor's thread where the stream can."""

    @inlineCallbacks
    def test_the_sender_hashes_its_file_in_a_thread_to_answer_a_resume(self):
        import msrplib.stream as stream_module
        body = os.urandom(100000)
        selector = FileSelector.for_file(io.BytesIO(body), name="f")
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        destination.write(body[:1000])
        asking = FileTransferStream.resuming(destination, selector, local_host="127.0.0.1",
                                             session_settings=SETTINGS)
        off_main = calls_off_the_main_thread(self, stream_module.FileSelector, "for_file")
        sender = FileTransferStream(source=io.BytesIO(body), local_host="127.0.0.1",
                                    session_settings=SETTINGS)
        yield negotiate(self, asking, sender)
        self.assertEqual(off_main, [True])
        asking.received.addErrback(lambda failure: None)  # no file is sent here

    def test_an_offer_may_bring_its_selector(self):
        selector = FileSelector("made.bin", "application/octet-stream", 3, ("sha-1", "AB"))
        stream = FileTransferStream.offering(io.BytesIO(b"abc"), selector=selector)
        self.assertIs(stream.file_selector, selector)

    @inlineCallbacks
    def test_the_receiver_checks_the_file_in_a_thread(self):
        import msrplib.stream as stream_module
        off_main = calls_off_the_main_thread(self, stream_module, "file_digest")
        body = os.urandom(50000)
        alice = FileTransferStream.offering(io.BytesIO(body), name="f",
                                            local_host="127.0.0.1", session_settings=SETTINGS)
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        bob = FileTransferStream(destination=destination, local_host="127.0.0.1",
                                 session_settings=SETTINGS)
        yield negotiate(self, alice, bob)
        yield alice.send()
        yield bob.received
        self.assertEqual(off_main, [True])
