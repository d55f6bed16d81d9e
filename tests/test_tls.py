"""Relay name checks with service_identity, over real loopback TLS."""

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.ssl import Certificate
from twisted.trial import unittest
from zope.interface import implementer

from msrplib.tls import TLSIdentity, relay_tls_options


@implementer(IHandshakeListener)
class Handshake(Protocol):
    """Closes right after the handshake; ``done`` fires once closed: True, or the reason."""

    def __init__(self, done):
        self.done = done
        self.shook = False

    def handshakeCompleted(self):
        self.shook = True
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.shook:
            self.done.callback(True)
        else:
            self.done.errback(reason)


class RelayNameTests(unittest.TestCase):
    def setUp(self):
        self.identity = TLSIdentity.generate("relay", hosts=("127.0.0.1",))
        self.port = reactor.listenSSL(0, Factory.forProtocol(Protocol),
                                      self.identity.options(), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.trust = Certificate.loadPEM(self.identity.certificate_pem())

    def handshake(self, options):
        done = Deferred()
        factory = ClientFactory()
        factory.protocol = lambda: Handshake(done)
        reactor.connectSSL("127.0.0.1", self.port.getHost().port, factory, options)
        return done

    @inlineCallbacks
    def test_matching_name(self):
        result = yield self.handshake(relay_tls_options("127.0.0.1", trust_root=self.trust))
        self.assertTrue(result)

    @inlineCallbacks
    def test_other_name_is_refused(self):
        yield self.assertFailure(
            self.handshake(relay_tls_options("relay.example.org", trust_root=self.trust)),
            VerificationError)

    @inlineCallbacks
    def test_untrusted_certificate_is_refused(self):
        other = Certificate.loadPEM(TLSIdentity.generate(hosts=("127.0.0.1",)).certificate_pem())
        yield self.assertFailure(
            self.handshake(relay_tls_options("127.0.0.1", trust_root=other)), SSL.Error)

    @inlineCallbacks
    def test_verification_can_be_turned_off(self):
        result = yield self.handshake(relay_tls_options("relay.example.org", verify=False))
        self.assertTrue(result)
