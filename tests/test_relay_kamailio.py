"""Relays (RFC 4976) against a real relay: Kamailio's msrp module on 127.0.0.1."""

import hashlib
import os

from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.ssl import Certificate
from twisted.trial import unittest

from msrplib.connect import (AcceptorDirect, AcceptorRelay, ConnectorRelay, MSRPAuthError,
                             MSRPRelaySettings, RelayConnection, get_acceptor, get_connector)
from msrplib.protocol import URI
from msrplib.errors import MSRPTransactionError
from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver
from tests.helpers import close
from tests.relay import USERS, KamailioRelay

SESSION_SETTINGS = SessionSettings(keepalive_interval=0)


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class RelayHarness:
    """Starts a fresh relay for each test (Kamailio starts in a fraction of a second)."""

    tls = False
    relay_options = {}

    def setUp(self):
        self.relay = KamailioRelay(tls=self.tls, **self.relay_options)
        self.relay.start()
        self.addCleanup(self.relay.stop)
        self.addCleanup(self.check_relay_alive)

    def check_relay_alive(self):
        self.assertTrue(self.relay.alive, "the relay died: %s" % self.relay.output()[-2000:])

    def settings(self, user, password=None):
        if self.tls:
            return MSRPRelaySettings(
                "msrp-test", user, password or USERS[user], host="127.0.0.1",
                port=self.relay.tls_port, use_tls=True,
                trust_root=Certificate.loadPEM(self.relay.identity.certificate_pem()))
        return MSRPRelaySettings("msrp-test", user, password or USERS[user],
                                 host="127.0.0.1", port=self.relay.port)

    def endpoint(self, cls, user):
        endpoint = cls(self.settings(user))
        self.addCleanup(endpoint.cleanup)
        return endpoint

    @inlineCallbacks
    def relayed_pair(self, alice_receiver=None, bob_receiver=None):
        alice = self.endpoint(ConnectorRelay, "alice")
        bob = self.bob_endpoint = self.endpoint(AcceptorRelay, "bob")
        alice_path = yield alice.prepare()
        bob_path = yield bob.prepare()
        links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)],
                                    consumeErrors=True)
        for link in links:
            self.addCleanup(close, link)
        sessions = (MSRPSession(links[0], settings=SESSION_SETTINGS, receiver=alice_receiver),
                    MSRPSession(links[1], settings=SESSION_SETTINGS, receiver=bob_receiver))
        return sessions



class RelayCases(RelayHarness):
    """What every relay configuration must do."""

    @inlineCallbacks
    def test_auth_gives_use_path(self):
        alice = self.endpoint(ConnectorRelay, "alice")
        path = yield alice.prepare()
        self.assertEqual(len(path), 2)
        use_path, local = path
        self.assertEqual((use_path.host, use_path.port), ("127.0.0.1", alice.relay.uri.port))
        self.assertTrue(use_path.session_id)
        self.assertEqual(use_path.use_tls, self.tls)
        self.assertEqual(local, alice.local_uri)
        self.assertEqual(alice.auth_count, 1)

    @inlineCallbacks
    def test_wrong_password(self):
        alice = ConnectorRelay(self.settings("alice", "wrong"))
        self.addCleanup(alice.cleanup)
        error = yield self.assertFailure(alice.prepare(), MSRPAuthError)
        self.assertEqual(error.code, 401)

    @inlineCallbacks
    def test_messages_both_ways(self):
        alice_heard, bob_heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.relayed_pair(alice_heard, bob_heard)
        yield alice.send_message(b"Hi, Bob!", "text/plain")
        yield bob.send_message(b"Hi, Alice!", "text/plain")
        yield alice.send_message(b"Reported?", "text/plain", success_report="yes")
        self.assertEqual([m.data for m in bob_heard.received], [b"Hi, Bob!", b"Reported?"])
        self.assertEqual([m.data for m in alice_heard.received], [b"Hi, Alice!"])

    @inlineCallbacks
    def test_a_refusal_through_the_relay_fails_the_message(self):
        # The relay answers 200 itself and keeps Bob's 413 and 415: his failure REPORT
        # is what tells Alice, and her send_message fails with its code.
        bob_heard = CollectingReceiver()
        alice, bob = yield self.relayed_pair(bob_receiver=bob_heard)
        bob.settings = SessionSettings(keepalive_interval=0, max_message_size=1000)
        bob.accept_types = ["text/*"]
        too_big = yield self.assertFailure(
            alice.send_message(b"x" * 5000, "text/plain"), MSRPTransactionError)
        wrong_type = yield self.assertFailure(
            alice.send_message(b"picture", "image/png"), MSRPTransactionError)
        self.assertEqual((too_big.code, wrong_type.code), (413, 415))
        yield alice.send_message(b"still fine", "text/plain")
        self.assertEqual([m.data for m in bob_heard.received], [b"still fine"])
        self.assertEqual([error.code for _, error in bob_heard.refused], [413, 415])

    @inlineCallbacks
    def test_five_mib_message_with_success_report(self):
        bob_heard = CollectingReceiver()
        alice, bob = yield self.relayed_pair(bob_receiver=bob_heard)
        payload = os.urandom(5 * 1024 * 1024)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        [message] = bob_heard.received
        self.assertEqual(hashlib.sha256(message.data).digest(), hashlib.sha256(payload).digest())
        self.assertEqual(alice.transport.max_chunk_size, 8 * 1024)
        self.assertEqual(alice.transport.max_unreported_bytes, 32 * 1024)

    @inlineCallbacks
    def test_a_receiver_that_stops_reading_loses_nothing(self):
        """The relay answers every chunk itself and drops a receiver that falls tens of KB
        behind: the sender must not run ahead of Bob's REPORTs while he reads nothing."""
        bob_heard = CollectingReceiver()
        alice, bob = yield self.relayed_pair(bob_receiver=bob_heard)
        payload = os.urandom(5 * 1024 * 1024)
        bob_socket = bob.transport.protocol.protocol.transport  # the channel's connection
        bob_socket.pauseProducing()
        reactor.callLater(1.0, bob_socket.resumeProducing)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        [message] = bob_heard.received
        self.assertEqual(hashlib.sha256(message.data).digest(), hashlib.sha256(payload).digest())


    @inlineCallbacks
    def test_a_chat_and_a_file_share_one_relay_connection_each_side(self):
        """The two streams of one dialog, through one connection and one AUTH per side:
        chat goes both ways while a file is under way, each session gets its own, and
        the connection outlives the first session and closes with the last."""
        relays = RelayConnection(self.settings("alice")), RelayConnection(self.settings("bob"))
        for relay in relays:
            self.addCleanup(relay.close)
        heard = {name: CollectingReceiver() for name in ("alice chat", "bob chat", "bob file")}
        sessions = {}
        for stream in ("chat", "file"):
            alice, bob = ConnectorRelay(relays[0]), AcceptorRelay(relays[1])
            alice_path = yield alice.prepare()
            bob_path = yield bob.prepare()
            links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)],
                                        consumeErrors=True)
            sessions["alice " + stream] = MSRPSession(
                links[0], settings=SESSION_SETTINGS, receiver=heard.get("alice " + stream))
            sessions["bob " + stream] = MSRPSession(
                links[1], settings=SESSION_SETTINGS, receiver=heard.get("bob " + stream))
        self.assertEqual([relay.auth_count for relay in relays], [1, 1])
        self.assertEqual([relay.sessions for relay in relays], [2, 2])
        connections = {id(session.transport.protocol.protocol)
                       for session in sessions.values()}
        self.assertEqual(len(connections), 2)
        payload = os.urandom(3 * 1024 * 1024)
        sending = sessions["alice file"].send_message(payload, "application/octet-stream")
        chat = []
        for index in range(5):
            yield sleep(0.05)
            chat.append(sessions["alice chat"].send_message(b"alice %d" % index, "text/plain"))
            chat.append(sessions["bob chat"].send_message(b"bob %d" % index, "text/plain"))
        yield gatherResults(chat + [sending], consumeErrors=True)
        [received] = heard["bob file"].received
        self.assertEqual(hashlib.sha256(received.data).digest(),
                         hashlib.sha256(payload).digest())
        self.assertEqual([m.data for m in heard["bob chat"].received],
                         [b"alice %d" % index for index in range(5)])
        self.assertEqual([m.data for m in heard["alice chat"].received],
                         [b"bob %d" % index for index in range(5)])
        yield gatherResults([sessions["alice file"].shutdown(),
                             sessions["bob file"].shutdown()])
        yield sessions["alice chat"].send_message(b"after the file", "text/plain")
        self.assertEqual(heard["bob chat"].received[-1].data, b"after the file")
        self.assertEqual([relay.sessions for relay in relays], [1, 1])
        yield gatherResults([sessions["alice chat"].shutdown(),
                             sessions["bob chat"].shutdown()])
        yield sleep(0.1)
        self.assertFalse(any(session.transport.protocol.protocol.connected_now
                             for session in sessions.values()))


class TCPRelayTests(RelayCases, unittest.TestCase):
    tls = False

    @inlineCallbacks
    def test_a_receiver_that_stalls_at_the_start_is_not_flooded(self):
        """Bob reads nothing for longer than progress_report_wait at the start of the
        session's first file: pacing must stay on (without it, Alice floods the relay and
        it drops Bob), and the file arrives whole."""
        bob_heard = CollectingReceiver()
        alice, bob = yield self.relayed_pair(bob_receiver=bob_heard)
        payload = os.urandom(4 * 1024 * 1024)
        bob_socket = bob.transport.protocol.protocol.transport  # the channel's connection
        bob_socket.pauseProducing()
        reactor.callLater(alice.settings.progress_report_wait + 1.0,
                          bob_socket.resumeProducing)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        [message] = bob_heard.received
        self.assertEqual(hashlib.sha256(message.data).digest(), hashlib.sha256(payload).digest())
        self.assertIs(alice._sender._window.peer_reports_progress, True)

    @inlineCallbacks
    def test_a_relay_that_stops_forwarding_is_found_by_the_keepalive(self):
        """Alice's requests go to a relay session Kamailio does not know: it answers them
        200 itself and drops them. Bob confirmed her first keepalive, so the next one,
        unconfirmed, ends her session with an error, as it fails what was under way."""
        settings = SessionSettings(keepalive_interval=1, report_timeout=1)
        alice, bob = yield self.relayed_pair()
        alice.settings = bob.settings = settings
        alice.note_traffic()
        yield sleep(1.5)
        self.assertIs(alice._peer_confirms_keepalives, True)
        bob_uri = alice.transport.full_remote_path[-1]
        gone = URI.parse(str(alice.transport.full_remote_path[0]).replace("/msrp-", "/gone-"))
        alice.transport.update_paths(full_remote_path=[gone, bob_uri])
        started = reactor.seconds()
        ended = yield alice.closed.observe().addTimeout(6, reactor)
        self.assertLess(reactor.seconds() - started, 4)
        self.assertEqual(ended.why.name, "ERROR")
        self.assertIn("stopped forwarding", str(ended.error))

    @inlineCallbacks
    def test_connector_relay_to_acceptor_direct(self):
        alice = get_connector(self.settings("alice"))
        bob = get_acceptor(None)
        self.assertIsInstance(alice, ConnectorRelay)
        self.assertIsInstance(bob, AcceptorDirect)
        self.addCleanup(alice.cleanup)
        self.addCleanup(bob.cleanup)
        alice_path = yield alice.prepare()
        bob_path = yield bob.prepare(URI(host="127.0.0.1"))
        links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)],
                                    consumeErrors=True)
        for link in links:
            self.addCleanup(close, link)
        heard = CollectingReceiver()
        alice_session = MSRPSession(links[0], settings=SESSION_SETTINGS)
        MSRPSession(links[1], settings=SESSION_SETTINGS, receiver=heard)
        yield alice_session.send_message(b"via the relay to a direct peer", "text/plain",
                                         success_report="yes")
        self.assertEqual(heard.received[0].data, b"via the relay to a direct peer")

    def test_factory_functions(self):
        self.assertIsInstance(get_acceptor(self.settings("bob")), AcceptorRelay)


class TLSRelayTests(RelayCases, unittest.TestCase):
    tls = True


class RefreshTests(RelayHarness, unittest.TestCase):
    """A relay that grants AUTH for 2 seconds: the acceptor must refresh it."""

    relay_options = {"min_expires": 1, "max_expires": 2}

    @inlineCallbacks
    def test_expiry_refresh(self):
        bob_heard = CollectingReceiver()
        alice, bob = yield self.relayed_pair(bob_receiver=bob_heard)
        first_use_path = self.bob_endpoint.use_path
        path_changes, refresh_failures = [], []
        self.bob_endpoint.on_path_changed = path_changes.append
        self.bob_endpoint.on_refresh_failed = refresh_failures.append
        yield sleep(3.5)
        # Granted for 2 s, refreshed at 1.5 s and 3 s, on the connection the session uses.
        self.assertGreaterEqual(self.bob_endpoint.auth_count, 3)
        # Kamailio hands out a new Use-Path for every AUTH (see doc/relays.rst), and the
        # application hears of each one, with the full path to offer its peer.
        self.assertNotEqual(self.bob_endpoint.use_path, first_use_path)
        self.assertEqual(len(path_changes), self.bob_endpoint.auth_count - 1)
        self.assertEqual(path_changes[-1], self.bob_endpoint.full_local_path)
        self.assertEqual(refresh_failures, [])
        yield alice.send_message(b"still routed after the first Expires", "text/plain",
                                 success_report="yes")
        self.assertEqual(bob_heard.received[-1].data, b"still routed after the first Expires")
        self.assertTrue(bob.transport.is_connected())
        # A re-INVITE tells Alice Bob's new path; once it is done, each side's requests
        # go by it (MSRPStream.take_new_path), and both ways still arrive.
        new_path = self.bob_endpoint.full_local_path
        alice.transport.update_paths(full_remote_path=new_path)
        bob.transport.update_paths(local_path=new_path)
        self.assertIn("%s %s" % (new_path[0], new_path[1]), alice.transport.path_lines)
        self.assertTrue(bob.transport.path_lines.startswith("To-Path: %s " % new_path[0]))
        yield alice.send_message(b"by the new path", "text/plain", success_report="yes")
        yield bob.send_message(b"from the new path", "text/plain", success_report="yes")
        self.assertEqual(bob_heard.received[-1].data, b"by the new path")



class StreamThroughRelayTests(RelayHarness, unittest.TestCase):
    """Streams as a SIP stack drives them, both sides through the relay."""

    def sdp(self, section):
        from msrplib.sdp import parse_sdp
        return parse_sdp("v=0\r\ns=-\r\nt=0 0\r\n" + section).media[0]

    @inlineCallbacks
    def negotiate(self, alice, bob):
        for stream in (alice, bob):
            self.addCleanup(stream.cleanup)
        offer = yield alice.make_offer()
        answer = yield bob.make_answer(self.sdp(offer))
        alice.take_answer(self.sdp(answer))
        self.assertEqual(len(alice.local_media.path), 2)  # the relay's Use-Path, then ours
        self.assertNotIn("a=fingerprint", offer)  # TLS is hop by hop through a relay
        sessions = yield gatherResults([alice.start(), bob.start()], consumeErrors=True)
        for session in sessions:
            self.addCleanup(close, session.transport)
        return sessions

    @inlineCallbacks
    def test_chat_both_ways(self):
        from msrplib.stream import ChatStream
        heard = CollectingReceiver(), CollectingReceiver()
        alice = ChatStream(relay=self.settings("alice"), receiver=heard[0],
                           session_settings=SESSION_SETTINGS)
        bob = ChatStream(relay=self.settings("bob"), receiver=heard[1],
                         session_settings=SESSION_SETTINGS)
        sessions = yield self.negotiate(alice, bob)
        yield sessions[0].send_message(b"hi bob", "text/plain", success_report="yes")
        yield sessions[1].send_message(b"hi alice", "text/plain", success_report="yes")
        self.assertEqual([m.data for m in heard[1].received], [b"hi bob"])
        self.assertEqual([m.data for m in heard[0].received], [b"hi alice"])


class DocumentedWalkThroughRelayTests(RelayHarness, unittest.TestCase):
    """doc/sip.rst's walk (doc/examples/sip_walk.py), both sides through the relay."""

    @inlineCallbacks
    def test_chat(self):
        from tests.test_doc_examples import load
        heard = yield load("sip_walk").chat(relay_settings=self.settings)
        self.assertEqual(heard, (["Hello, Alice"], ["Hello, Bob"]))

    @inlineCallbacks
    def test_file_transfer(self):
        import io

        from tests.test_doc_examples import load
        body = os.urandom(3 * 1024 * 1024)  # hash checked on receipt, in the walk
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        message = yield load("sip_walk").file_transfer(io.BytesIO(body), destination,
                                                       relay_settings=self.settings)
        destination.seek(0)
        self.assertEqual((message.size, destination.read()), (len(body), body))


class ServiceHarness(RelayHarness):
    """twistd-plugin services that work through the relay."""

    def service(self, user):
        from tests.test_plugin import find_plugin
        options = find_plugin().options()
        password = self.mktemp()
        with open(password, "w") as out:
            out.write(USERS[user])
        options.parseOptions(["--control", "tcp:0:interface=127.0.0.1", "--keepalive", "0",
                              "--inbox", os.path.abspath(self.mktemp()),
                              "--relay", "msrp://127.0.0.1:%d;tcp" % self.relay.port,
                              "--domain", "msrp-test", "--username", user,
                              "--password-file", password])
        service = find_plugin().makeService(options)
        service.startService()
        self.addCleanup(service.stopService)
        return service


class ServiceThroughRelayTests(ServiceHarness, unittest.TestCase):
    """Two twistd-plugin services that both work through the relay."""

    @inlineCallbacks
    def test_message_through_the_relay(self):
        from tests.test_plugin import ControlClient
        alice_service, bob_service = self.service("alice"), self.service("bob")
        yield sleep(0)
        alice = ControlClient(alice_service.control.port.getHost().port)
        bob = ControlClient(bob_service.control.port.getHost().port)
        offer = yield alice.ok("POST", "/sessions", {"setup": "active"})
        answer = yield bob.ok("POST", "/sessions", {"setup": "passive"})
        self.assertEqual(len(offer["path"].split()), 2)
        yield gatherResults([
            alice.ok("POST", "/sessions/%s/complete" % offer["id"], {"path": answer["path"]}),
            bob.ok("POST", "/sessions/%s/complete" % answer["id"], {"path": offer["path"]})])
        yield alice.ok("POST", "/sessions/%s/messages" % offer["id"],
                       {"text": "through the relay", "success_report": "yes"})
        events = yield bob.ok("GET", "/sessions/%s/events" % answer["id"])
        self.assertEqual([e["text"] for e in events if e["type"] == "message"],
                         ["through the relay"])


class ServiceRefreshTests(ServiceHarness, unittest.TestCase):
    """The service tells its control API of every new Use-Path the relay hands out."""

    relay_options = {"min_expires": 1, "max_expires": 2}

    @inlineCallbacks
    def test_a_new_use_path_is_an_event(self):
        from tests.test_plugin import ControlClient
        service = self.service("alice")
        yield sleep(0)
        alice = ControlClient(service.control.port.getHost().port)
        offer = yield alice.ok("POST", "/sessions", {"setup": "passive"})
        yield sleep(2.5)  # granted for 2 s: refreshed at 1.5 s, with a new Use-Path
        events = yield alice.ok("GET", "/sessions/%s/events" % offer["id"])
        changes = [event for event in events if event["type"] == "relay-path-changed"]
        self.assertTrue(changes, events)
        self.assertNotEqual(changes[-1]["path"], offer["path"])
        self.assertEqual(changes[-1]["path"].split()[-1], offer["path"].split()[-1])
        now = yield alice.ok("GET", "/sessions/%s" % offer["id"])
        self.assertEqual(now["path"], changes[-1]["path"])


class CommandLineAuthTests(RelayHarness, unittest.TestCase):
    def test_auth_prints_use_path(self):
        import subprocess
        import sys
        from pathlib import Path
        password = self.mktemp()
        with open(password, "w") as out:
            out.write(USERS["alice"])
        root = Path(__file__).resolve().parent.parent
        result = subprocess.run(
            [sys.executable, "-m", "msrplib", "auth", "--relay",
             "msrp://127.0.0.1:%d;tcp" % self.relay.port, "--username", "alice",
             "--password-file", password], capture_output=True, text=True, timeout=30,
            env=dict(os.environ, PYTHONPATH=str(root)))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout,
                         r"^Use-Path: msrp://127\.0\.0\.1:%d/\S+;tcp\n$" % self.relay.port)
