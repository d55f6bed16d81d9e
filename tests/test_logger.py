"""The seed's ``logger`` argument: a ``twisted.logger.Logger`` that the connection, and
the session over it, log through; without one each part logs through its own."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.trial import unittest

from msrplib.connect import AcceptorDirect, ConnectorDirect, MSRPServer
from msrplib.protocol import URI
from msrplib.session import MSRPSession, SessionSettings
from tests.helpers import close, local_uri
from tests.test_relay_kamailio import RelayHarness


def collecting_logger(namespace):
    """A Logger whose events are kept in its ``events`` list."""
    events = []
    logger = Logger(namespace=namespace, observer=events.append)
    logger.events = events
    return logger


def texts(logger):
    from twisted.logger import formatEvent
    return [formatEvent(event) for event in logger.events]


class _Peer(Protocol):
    def __init__(self):
        self.closed = Deferred()

    def connectionLost(self, reason):
        self.closed.callback(None)


class DirectLoggerTests(unittest.TestCase):
    @inlineCallbacks
    def bound(self, connector_logger=None, acceptor_logger=None):
        connector = ConnectorDirect(connector_logger)
        acceptor = AcceptorDirect(acceptor_logger)
        self.addCleanup(connector.cleanup)
        self.addCleanup(acceptor.cleanup)
        connector_path = yield connector.prepare(local_uri())
        acceptor_path = yield acceptor.prepare(local_uri())
        connected = connector.complete(acceptor_path)
        accepted = acceptor.complete(connector_path)
        calling = yield connected
        answering = yield accepted
        for transport in (calling, answering):
            self.addCleanup(close, transport)
        return calling, answering

    @inlineCallbacks
    def test_the_connection_and_its_session_log_through_the_given_logger(self):
        calling_log = collecting_logger("calling")
        answering_log = collecting_logger("answering")
        calling, answering = yield self.bound(calling_log, answering_log)
        for transport, logger in ((calling, calling_log), (answering, answering_log)):
            self.assertIs(transport.logger, logger)
            self.assertIs(transport.protocol.log, logger)
            session = MSRPSession(transport, settings=SessionSettings(keepalive_interval=0))
            self.assertIs(session.log, logger)
        lost = calling.protocol.lost.observe()
        lost.addErrback(lambda failure: None)
        answering.write(b"this is not MSRP\r\n\r\n", sync=False)  # the peer goes wrong
        yield lost
        self.assertTrue(any("closing" in text for text in texts(calling_log)), texts(calling_log))
        self.assertEqual(answering_log.events, [])

    @inlineCallbacks
    def test_without_a_logger_each_part_logs_on_its_own(self):
        calling, _ = yield self.bound()
        self.assertIsNone(calling.logger)
        session = MSRPSession(calling, settings=SessionSettings(keepalive_interval=0))
        self.assertEqual(session.log.namespace, "msrplib.session.MSRPSession")
        self.assertEqual(calling.protocol.log.namespace, "msrplib.transport.MSRPProtocol")


class ServerLoggerTests(unittest.TestCase):
    def setUp(self):
        self.server_log = collecting_logger("server")
        self.server = MSRPServer(self.server_log)
        self.addCleanup(self.server.stop)

    @inlineCallbacks
    def test_the_server_logs_its_refusals_through_its_logger(self):
        [uri] = yield self.server.prepare(URI(host="127.0.0.1"))
        peer = _Peer()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", uri.port), peer)
        peer.transport.write(b"MSRP abcd SEND\r\nTo-Path: msrp://127.0.0.1:1/nobody;tcp\r\n"
                             b"From-Path: msrp://127.0.0.1:2/somebody;tcp\r\n"
                             b"Message-ID: m1\r\nByte-Range: 1-0/0\r\n-------abcd$\r\n")
        yield peer.closed
        self.assertTrue(any("481" in text for text in texts(self.server_log)),
                        texts(self.server_log))

    @inlineCallbacks
    def test_a_session_prepared_with_a_logger_of_its_own_gets_it(self):
        session_log = collecting_logger("session")
        [named] = yield self.server.prepare(URI(host="127.0.0.1"), logger=session_log)
        [plain] = yield self.server.prepare(URI(host="127.0.0.1"))
        results = []
        for uri in (named, plain):
            connector = ConnectorDirect()
            self.addCleanup(connector.cleanup)
            path = yield connector.prepare(local_uri())
            accepted = self.server.complete(path, uri)
            connected = yield connector.complete([uri])
            self.addCleanup(close, connected)
            transport = yield accepted
            self.addCleanup(close, transport)
            results.append(transport)
        self.assertIs(results[0].logger, session_log)
        self.assertIs(results[1].logger, self.server_log)  # the server's, by default


class RelayLoggerTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_a_relayed_connection_logs_through_the_given_logger(self):
        from msrplib.connect import AcceptorRelay, ConnectorRelay
        alice_log, bob_log = collecting_logger("alice"), collecting_logger("bob")
        alice = ConnectorRelay(self.settings("alice"), alice_log)
        bob = AcceptorRelay(self.settings("bob"), bob_log)
        for endpoint in (alice, bob):
            self.addCleanup(endpoint.cleanup)
        alice_path = yield alice.prepare()
        bob_path = yield bob.prepare()
        alice_link = alice.complete(bob_path)
        bob_link = bob.complete(alice_path)
        links = [(yield alice_link), (yield bob_link)]
        for link, logger in zip(links, (alice_log, bob_log)):
            self.addCleanup(close, link)
            self.assertIs(link.logger, logger)
            session = MSRPSession(link, settings=SessionSettings(keepalive_interval=0))
            self.assertIs(session.log, logger)
