"""Relay name checks with service_identity, over real loopback TLS."""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
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


def identity_naming(*names):
    """A self-signed identity whose subjectAltName holds exactly ``names`` (cryptography's
    ``x509.DNSName``/``x509.IPAddress``), written as the test needs, right or wrong."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
                   .sign(key, hashes.SHA256()))
    return TLSIdentity(key, certificate)


def ip(text):
    return x509.IPAddress(ipaddress.ip_address(text))


class RelayNameEntryTests(unittest.TestCase):
    """Which subjectAltName entries name a relay: an IP address only by an IP entry, a
    DNS name only by a DNS entry, and a certificate whose entries cannot be read not at
    all (service_identity refuses a DNS entry that holds an IP address)."""

    def handshake(self, identity, hostname):
        port = reactor.listenSSL(0, Factory.forProtocol(Protocol), identity.options(),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        done = Deferred()
        factory = ClientFactory()
        factory.protocol = lambda: Handshake(done)
        trust = Certificate.loadPEM(identity.certificate_pem())
        reactor.connectSSL("127.0.0.1", port.getHost().port, factory,
                           relay_tls_options(hostname, trust_root=trust))
        return done

    @inlineCallbacks
    def test_another_address_written_as_a_dns_name_is_refused(self):
        yield self.assertFailure(
            self.handshake(identity_naming(x509.DNSName("10.0.0.9")), "127.0.0.1"),
            CertificateError)

    @inlineCallbacks
    def test_our_address_written_as_a_dns_name_is_refused(self):
        yield self.assertFailure(
            self.handshake(identity_naming(x509.DNSName("127.0.0.1")), "127.0.0.1"),
            CertificateError)

    @inlineCallbacks
    def test_an_unreadable_entry_beside_a_good_one_is_refused(self):
        identity = identity_naming(ip("127.0.0.1"), x509.DNSName("10.0.0.9"))
        yield self.assertFailure(self.handshake(identity, "127.0.0.1"), CertificateError)

    @inlineCallbacks
    def test_an_ip_entry_for_another_address_is_refused(self):
        yield self.assertFailure(
            self.handshake(identity_naming(ip("10.0.0.9")), "127.0.0.1"), VerificationError)

    @inlineCallbacks
    def test_an_ip_entry_for_the_address_is_accepted(self):
        result = yield self.handshake(identity_naming(ip("127.0.0.1")), "127.0.0.1")
        self.assertTrue(result)

    @inlineCallbacks
    def test_a_dns_name_is_checked_against_dns_entries(self):
        identity = identity_naming(x509.DNSName("relay.example.org"), ip("127.0.0.1"))
        self.assertTrue((yield self.handshake(identity, "relay.example.org")))
        yield self.assertFailure(self.handshake(identity, "other.example.org"),
                                 VerificationError)
        yield self.assertFailure(
            self.handshake(identity_naming(ip("127.0.0.1")), "relay.example.org"),
            VerificationError)
