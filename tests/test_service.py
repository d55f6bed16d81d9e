"""What the running service sends, keeps and logs: its outbox, its inbox when storing
fails, its traffic log, and the connections of sessions that fail after binding. Real
``twistd msrp`` processes where the point is the running service; the service in this
process, over real sockets, where a test must step in between two events."""

import os
import resource
import stat
import threading

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial import unittest

from msrplib import service as service_module
from msrplib.outbox import Outbox, OutboxRefused
from msrplib.protocol import URI
from msrplib.service import EndpointOptions, MSRPEndpointService, SessionStateError
from msrplib.session import SessionSettings
from tests.helpers import bind_pair
from tests.service_process import started


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class OutboxTests(unittest.TestCase):
    """``POST /sessions/<id>/files`` sends regular files of the outbox and nothing else."""

    @inlineCallbacks
    def setUp(self):
        self.root = os.path.realpath(self.mktemp())
        self.outbox = os.path.join(self.root, "outbox")
        os.makedirs(self.outbox)
        self.secret = os.path.join(self.root, "secret.txt")
        with open(self.secret, "wb") as out:
            out.write(b"not for the peer")
        with open(os.path.join(self.outbox, "fine.txt"), "wb") as out:
            out.write(b"for the peer")
        self.service = started(self, "--outbox", self.outbox)
        self.sender, self.receiver = yield self.service.connected_pair()

    def send(self, path):
        return self.service.request("POST", "/sessions/%s/files" % self.sender,
                                    {"file": path})

    @inlineCallbacks
    def assertRefused(self, path, status):
        response = yield self.send(path)
        self.assertEqual(response.status, status, (path, response))
        self.assertIsInstance(response.json["error"], str)

    @inlineCallbacks
    def test_only_regular_files_of_the_outbox_are_sent(self):
        inside = lambda name: os.path.join(self.outbox, name)  # noqa: E731
        os.symlink(self.secret, inside("link-out"))
        os.symlink("/etc", inside("etc"))
        os.mkfifo(inside("pipe"))
        yield self.assertRefused(self.secret, 403)
        yield self.assertRefused("/etc/passwd", 403)
        yield self.assertRefused(inside("link-out"), 403)
        yield self.assertRefused(inside("etc/passwd"), 403)
        yield self.assertRefused(os.path.join(self.outbox, "..", "secret.txt"), 400)
        yield self.assertRefused("fine.txt", 400)
        yield self.assertRefused(inside("missing"), 400)
        yield self.assertRefused(inside("pipe"), 400)
        yield self.assertRefused(self.outbox, 403)
        try:
            os.mknod(inside("zero"), stat.S_IFCHR | 0o600, os.stat("/dev/zero").st_rdev)
        except PermissionError:
            pass  # not root: the FIFO above stands for what is not a regular file
        else:
            yield self.assertRefused(inside("zero"), 400)
        delivered = yield self.service.ok("POST", "/sessions/%s/files" % self.sender,
                                          {"file": inside("fine.txt")})
        events = yield self.service.ok("GET", "/sessions/%s/events" % self.receiver)
        files = [e for e in events if e["type"] == "message"]
        self.assertEqual([e["message_id"] for e in files], [delivered["message_id"]])
        names = os.listdir(self.service.inbox)
        self.assertEqual(len(names), 1, names)
        with open(os.path.join(self.service.inbox, names[0]), "rb") as arrived:
            self.assertEqual(arrived.read(), b"for the peer")

    @inlineCallbacks
    def test_without_an_outbox_no_file_is_sent(self):
        service = started(self)
        sender, _ = yield service.connected_pair()
        response = yield service.request("POST", "/sessions/%s/files" % sender,
                                         {"file": os.path.join(self.outbox, "fine.txt")})
        self.assertEqual(response.status, 403, response)
        self.assertIn("--outbox", response.json["error"])


class InboxFailureTests(unittest.TestCase):
    @inlineCallbacks
    def test_a_file_that_cannot_be_stored_gets_a_failure_report(self):
        outbox = os.path.abspath(self.mktemp())
        os.makedirs(outbox)
        source = os.path.join(outbox, "big.bin")
        with open(source, "wb") as out:
            out.write(os.urandom(1024 * 1024))

        def small_files():
            # Files over 256 KiB cannot be written: EFBIG (Python ignores SIGXFSZ).
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

        alice = started(self, "--outbox", outbox)
        bob = started(self, preexec_fn=small_files)
        offer = yield alice.ok("POST", "/sessions", {"setup": "active"})
        answer = yield bob.ok("POST", "/sessions", {"setup": "passive"})
        yield gatherResults([
            alice.ok("POST", "/sessions/%s/complete" % offer["id"], {"path": answer["path"]}),
            bob.ok("POST", "/sessions/%s/complete" % answer["id"], {"path": offer["path"]})])
        response = yield alice.request("POST", "/sessions/%s/files" % offer["id"],
                                       {"file": source})
        self.assertEqual(response.status, 502, response)
        self.assertEqual(response.json["code"], 413)
        self.assertIn("File too large", response.json["error"])
        self.assertEqual(os.listdir(bob.inbox), [])
        events = yield bob.ok("GET", "/sessions/%s/events" % answer["id"])
        self.assertEqual([e["type"] for e in events if e["type"].startswith("message")],
                         ["message-failed"])
        # The session goes on: a small message is still stored and confirmed.
        yield alice.ok("POST", "/sessions/%s/messages" % offer["id"],
                       {"text": "still there?", "success_report": "yes"})
        self.assertEqual(len(os.listdir(bob.inbox)), 1)


class TrafficLogTests(unittest.TestCase):
    @inlineCallbacks
    def test_what_a_peer_sends_is_escaped_in_the_log(self):
        service = started(self, "--traffic-log")
        passive = yield service.ok("POST", "/sessions", {"setup": "passive"})
        uri = URI.parse(passive["path"])
        peer = Protocol()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", uri.port), peer)
        evil = (b"MSRP evil1234 SEND\r\nTo-Path: %s\r\nFrom-Path: msrp://127.0.0.1:9/x;tcp\r\n"
                b"Message-ID: m1234\r\n"
                b"X-Hide: something else\x1b[2K\x1b]0;title\x07 \xff\xfe\x00\r\n"
                b"Byte-Range: 1-0/0\r\n-------evil1234$\r\n" % str(uri).encode())
        # A bare LF or CR never reaches the log: the parser refuses the chunk (and says so
        # in words of its own, the peer's bytes escaped).
        forged = (b"MSRP forge123 SEND\r\nTo-Path: %s\r\nFrom-Path: msrp://127.0.0.1:9/x;tcp\r\n"
                  b"Subject: hi\n2030-01-01T00:00:00+0000 [forged#info] all is well\r\n"
                  b"-------forge123$\r\n" % str(uri).encode())
        peer.transport.write(evil + forged)
        for _ in range(100):
            if "forge123" in service.log():
                break
            yield sleep(0.05)
        peer.transport.loseConnection()
        log = service.log()
        self.assertIn("in MSRP evil1234 SEND", log)
        self.assertIn("X-Hide: something else\\x1b[2K\\x1b]0;title\\x07 \\xff\\xfe\\x00", log)
        self.assertIn("forge123 holds a bare CR or LF", log)
        self.assertFalse([line for line in log.splitlines() if line.startswith("2030")])
        for character in "\r\x1b\x07\x00\ufffd":
            self.assertNotIn(character, log)


class Collector(Protocol):
    """A raw peer that keeps what the service answers."""

    def connectionMade(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


class LongMessageIdTests(unittest.TestCase):
    @inlineCallbacks
    def test_a_message_id_longer_than_rfc_4975_allows_is_400(self):
        # Not an OSError from the inbox (a file name too long): the session refuses it.
        service = started(self)
        passive = yield service.ok("POST", "/sessions", {"setup": "passive"})
        uri = URI.parse(passive["path"])
        peer = Collector()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", uri.port), peer)
        head = (b"To-Path: %s\r\nFrom-Path: msrp://127.0.0.1:9/x;tcp\r\n" % str(uri).encode())
        peer.transport.write(
            b"MSRP bind1234 SEND\r\n%sMessage-ID: bind\r\nByte-Range: 1-0/0\r\n"
            b"-------bind1234$\r\n" % head +
            b"MSRP long1234 SEND\r\n%sMessage-ID: %s\r\nByte-Range: 1-2/2\r\n"
            b"Content-Type: text/plain\r\n\r\nhi\r\n-------long1234$\r\n" % (head, b"m" * 300))
        yield service.ok("POST", "/sessions/%s/complete" % passive["id"],
                         {"path": "msrp://127.0.0.1:9/x;tcp"})
        for _ in range(100):
            if b"long1234" in peer.received:
                break
            yield sleep(0.05)
        self.assertIn(b"MSRP bind1234 200 OK", peer.received)
        self.assertIn(b"MSRP long1234 400 Bad Request", peer.received)
        self.assertTrue(peer.transport.connected)  # still up
        peer.transport.loseConnection()
        self.assertNotIn("OSError", service.log())
        self.assertNotIn("Traceback", service.log())


class _Sessions(unittest.TestCase):
    """The service in this process (its control API not started), over real sockets."""

    def make_service(self, **options):
        settings = SessionSettings(keepalive_interval=0)
        service = MSRPEndpointService(
            EndpointOptions(inbox=self.mktemp(), session_settings=settings, **options))
        self.addCleanup(lambda: gatherResults([service.close_session(session)
                                               for session in list(service.sessions)]))
        return service


class _HeldEndpoint:
    """Stands in for a session's endpoint: ``complete`` fires when the test says."""

    def __init__(self):
        self.completing = Deferred()

    def complete(self, path, **options):
        return self.completing

    def cleanup(self):
        pass


class BoundConnectionTests(_Sessions):
    """A failure after a session is bound never leaks the bound connection."""

    @inlineCallbacks
    def bound_connection(self):
        transport, _ = yield bind_pair(self)
        lost = transport.protocol.lost.observe()
        lost.addErrback(lambda failure: None)
        return transport, lost

    @inlineCallbacks
    def test_a_session_deleted_while_connecting(self):
        service = self.make_service()
        managed = yield service.create_session("active")
        managed.endpoint = held = _HeldEndpoint()
        completing = service.complete_session(managed.id, "msrp://127.0.0.1:9/abcd;tcp")
        yield service.close_session(managed.id)
        transport, lost = yield self.bound_connection()
        held.completing.callback(transport)
        yield self.assertFailure(completing, SessionStateError)
        yield lost
        self.assertFalse(transport.is_connected())

    @inlineCallbacks
    def test_a_session_that_cannot_be_made(self):
        service = self.make_service()
        managed = yield service.create_session("active")
        managed.endpoint = held = _HeldEndpoint()

        def broken(*args, **kwargs):
            raise RuntimeError("no session today")

        self.patch(service_module, "MSRPSession", broken)
        completing = service.complete_session(managed.id, "msrp://127.0.0.1:9/abcd;tcp")
        transport, lost = yield self.bound_connection()
        held.completing.callback(transport)
        yield self.assertFailure(completing, RuntimeError)
        yield lost
        self.assertEqual(managed.state, "failed")


class ExpiryTests(_Sessions):
    @inlineCallbacks
    def test_ended_sessions_are_forgotten_too(self):
        service = self.make_service(session_expiry=0.2)
        active = yield service.create_session("active")
        passive = yield service.create_session("passive")
        yield gatherResults([
            service.complete_session(active.id, str(passive.local_path[0])),
            service.complete_session(passive.id, str(active.local_path[0]))])
        yield sleep(0.4)
        self.assertEqual(set(service.sessions), {active.id, passive.id})  # connected: kept
        yield service.close_session(active.id)
        while passive.state != "closed":
            yield sleep(0.01)
        [closed] = [event for event in passive.events if event["type"] == "closed"]
        self.assertEqual(closed["why"], "peer")
        [closed] = [event for event in active.events if event["type"] == "closed"]
        self.assertEqual(closed["why"], "shutdown")
        self.assertIn(passive.id, service.sessions)
        yield sleep(0.4)
        self.assertEqual(service.sessions, {})


class FileOpeningTests(_Sessions):
    @inlineCallbacks
    def test_files_are_opened_in_a_thread(self):
        outbox = os.path.realpath(self.mktemp())
        os.makedirs(outbox)
        with open(os.path.join(outbox, "a.txt"), "wb") as out:
            out.write(b"a")
        service = self.make_service(outbox=[outbox])
        threads = []
        real_open = Outbox.open

        def watched(outbox_self, path):
            threads.append(threading.current_thread())
            return real_open(outbox_self, path)

        self.patch(Outbox, "open", watched)
        active = yield service.create_session("active")
        passive = yield service.create_session("passive")
        yield gatherResults([
            service.complete_session(active.id, str(passive.local_path[0])),
            service.complete_session(passive.id, str(active.local_path[0]))])
        yield service.send_file(active.id, os.path.join(outbox, "a.txt"))
        yield self.assertFailure(service.send_file(active.id, "/etc/passwd"), OutboxRefused)
        self.assertEqual(len(threads), 2)
        self.assertNotIn(threading.main_thread(), threads)
