"""MSRP over WebSocket (RFC 7977): this library's WebSocket client through its relay to an
endpoint on TCP, over ws and wss, and what the relay's WebSocket port refuses."""

import hashlib
import os
import socket
import ssl

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from msrplib.connect import MSRPAuthError, MSRPRelaySettings
from msrplib.errors import MSRPSessionError
from msrplib.relayserver import MSRPRelay, RelaySettings
from msrplib.testing import CollectingReceiver
from msrplib.tls import TLSIdentity
from msrplib.websocket import MAX_WEBSOCKET_CHUNK
from tests.certificates import TestAuthority
from tests.relay import USERS, KamailioRelay
from tests.test_relay_server import HA1, REALM, RelayHarness


class WebSocketRelayHarness(RelayHarness):
    def start_ws_relay(self, identity=None, authority=None):
        # autobahn's timers run in one-second buckets that outlive the connections:
        # the test ends once they have run (this cleanup runs last).
        self.addCleanup(task.deferLater, reactor, 1.1, lambda: None)
        relay = MSRPRelay(REALM, HA1, settings=RelaySettings(
            trust_root=authority.trust_root if authority else None))
        tcp = relay.listen(0)
        ws = relay.listen_websocket(0, identity=identity)
        self.addCleanup(relay.stop)
        return relay, tcp, ws

    def ws_settings(self, user, ws_uri, **options):
        return MSRPRelaySettings(REALM, user, USERS[user], host="127.0.0.1", port=ws_uri.port,
                                 transport="wss" if ws_uri.use_tls else "ws",
                                 use_tls=ws_uri.use_tls, **options)


class WebSocketTests(WebSocketRelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_chat_and_a_file_from_a_websocket_client_to_a_tcp_endpoint(self):
        relay, tcp, ws = self.start_ws_relay()
        heard = CollectingReceiver(), CollectingReceiver()
        alice, bob = yield self.pair(self.ws_settings("alice", ws), self.settings("bob", tcp),
                                     alice_receiver=heard[0], bob_receiver=heard[1])
        self.assertEqual(alice.transport.local_uri.transport, "ws")
        self.assertEqual(alice.transport.local_path[0].port, tcp.port)  # reached by TCP
        yield alice.send_message(b"hello from a browser", "text/plain", success_report="yes")
        yield bob.send_message(b"hello from TCP", "text/plain", success_report="yes")
        payload = os.urandom(20 * 1024 * 1024)
        yield alice.send_message(payload, "application/octet-stream", success_report="yes")
        self.assertEqual(heard[0].received[0].data, b"hello from TCP")
        self.assertEqual(heard[1].received[0].data, b"hello from a browser")
        self.assertEqual(hashlib.sha256(heard[1].received[1].data).digest(),
                         hashlib.sha256(payload).digest())

    @inlineCallbacks
    def test_chunks_over_websocket_stay_what_the_relay_takes_whole(self):
        relay, tcp, ws = self.start_ws_relay()
        alice, bob = yield self.pair(
            self.ws_settings("alice", ws, max_chunk_size=1024 * 1024, follow_relay_flow=False),
            self.settings("bob", tcp))
        self.assertEqual(alice.transport.max_chunk_size, MAX_WEBSOCKET_CHUNK)
        yield alice.send_message(os.urandom(600 * 1024), "application/octet-stream")

    @inlineCallbacks
    def test_over_wss_with_a_checked_certificate(self):
        authority = TestAuthority()
        relay, tcp, ws = self.start_ws_relay(identity=authority.issue("127.0.0.1"),
                                             authority=authority)
        heard = CollectingReceiver()
        alice, bob = yield self.pair(
            self.ws_settings("alice", ws, trust_root=authority.trust_root),
            self.settings("bob", tcp), bob_receiver=heard)
        self.assertEqual(alice.transport.local_uri.transport, "wss")
        yield alice.send_message(b"secure", "text/plain", success_report="yes")
        self.assertEqual(heard.received[0].data, b"secure")

    @inlineCallbacks
    def test_a_wrong_password_is_refused(self):
        relay, tcp, ws = self.start_ws_relay()
        settings = self.ws_settings("alice", ws)
        settings.password = "wrong"
        error = yield self.assertFailure(self.endpoint_prepare(settings), MSRPAuthError)
        self.assertEqual(error.code, 401)

    def endpoint_prepare(self, settings):
        from msrplib.connect import ConnectorRelay
        return self.endpoint(ConnectorRelay, settings).prepare()

    @inlineCallbacks
    def test_a_relay_restart_mid_session_ends_it_cleanly_and_then_works(self):
        relay, tcp, ws = self.start_ws_relay()
        alice, bob = yield self.pair(self.ws_settings("alice", ws), self.settings("bob", tcp))
        yield relay.stop()
        ended = yield alice.closed.observe().addTimeout(5, reactor)
        self.assertIn(ended.why.name, ("PEER", "ERROR"))
        self.assertRaises(MSRPSessionError, alice.send_message, b"late", "text/plain")
        # The relay starts again on the same ports: a new session works.
        again = MSRPRelay(REALM, HA1)
        again.listen(tcp.port)
        again.listen_websocket(ws.port)
        self.addCleanup(again.stop)
        heard = CollectingReceiver()
        alice, bob = yield self.pair(self.ws_settings("alice", ws), self.settings("bob", tcp),
                                     bob_receiver=heard)
        yield alice.send_message(b"after the restart", "text/plain", success_report="yes")
        self.assertEqual(heard.received[0].data, b"after the restart")


class _Probe(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onClose(self, wasClean, code, reason):
        if not self.factory.opened.called:
            self.factory.opened.errback(Exception("closed: %s %s" % (code, reason)))
        else:
            self.factory.closed.callback(code)


class RefusalTests(WebSocketRelayHarness, unittest.TestCase):
    def probe(self, ws, protocols):
        factory = WebSocketClientFactory("ws://127.0.0.1:%d/" % ws.port, protocols=protocols)
        factory.protocol = _Probe
        factory.opened, factory.closed = Deferred(), Deferred()
        connector = reactor.connectTCP("127.0.0.1", ws.port, factory)
        self.addCleanup(connector.disconnect)
        return factory

    @inlineCallbacks
    def test_a_client_without_the_msrp_subprotocol_is_refused(self):
        relay, tcp, ws = self.start_ws_relay()
        factory = self.probe(ws, ["chat"])
        yield self.assertFailure(factory.opened, Exception)

    @inlineCallbacks
    def test_a_message_that_ends_inside_a_chunk_closes_the_connection(self):
        relay, tcp, ws = self.start_ws_relay()
        factory = self.probe(ws, ["msrp"])
        socket = yield factory.opened
        socket.sendMessage(b"MSRP abcd1234 AUTH\r\nTo-Path: msrp://127.0.0.1;ws\r\n",
                           isBinary=True)
        yield factory.closed.addTimeout(5, reactor)


class ALPNTests(WebSocketRelayHarness, unittest.TestCase):
    def test_a_client_that_offers_alpn_gets_http_1_1(self):
        """Browsers always offer ALPN: the wss port must choose http/1.1 (without a choice
        the handshake failed with an internal error alert, and chromium could not
        connect)."""
        relay, tcp, ws = self.start_ws_relay(identity=TLSIdentity.generate(
            hosts=("127.0.0.1",)))

        def handshake():
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            context.set_alpn_protocols(["h2", "http/1.1"])
            with socket.create_connection(("127.0.0.1", ws.port)) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as secure:
                    return secure.selected_alpn_protocol()

        return deferToThread(handshake).addCallback(self.assertEqual, "http/1.1")


class KamailioWebSocketTests(WebSocketRelayHarness, unittest.TestCase):
    """Our WebSocket client through Kamailio's websocket and msrp modules (Kamailio as an
    independent peer) to an endpoint on TCP."""

    @inlineCallbacks
    def test_chat_and_a_file_through_kamailio_over_ws(self):
        self.addCleanup(task.deferLater, reactor, 1.1, lambda: None)  # autobahn's timers
        kamailio = KamailioRelay(websocket=True)
        kamailio.start()
        self.addCleanup(kamailio.stop)
        heard = CollectingReceiver(), CollectingReceiver()
        alice_settings = MSRPRelaySettings(REALM, "alice", USERS["alice"], host="127.0.0.1",
                                           port=kamailio.ws_port, transport="ws")
        bob_settings = MSRPRelaySettings(REALM, "bob", USERS["bob"], host="127.0.0.1",
                                         port=kamailio.port)
        alice, bob = yield self.pair(alice_settings, bob_settings, alice_receiver=heard[0],
                                     bob_receiver=heard[1])
        self.assertEqual(alice.transport.local_uri.transport, "ws")
        self.assertEqual(alice.transport.max_chunk_size, 8 * 1024)  # Kamailio's limits
        yield alice.send_message(b"over ws, through Kamailio", "text/plain")
        yield bob.send_message(b"and back", "text/plain")
        payload = os.urandom(512 * 1024)
        yield alice.send_message(payload, "application/octet-stream")
        self.assertEqual(heard[1].received[0].data, b"over ws, through Kamailio")
        self.assertEqual(heard[0].received[0].data, b"and back")
        self.assertEqual(heard[1].received[1].data, payload)
        self.assertTrue(kamailio.alive)
