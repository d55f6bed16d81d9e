"""TLS for ``msrps`` URIs: endpoint certificates, RFC 8122 fingerprints, relay name checks.

Endpoints usually present self-signed certificates and vouch for them with an SDP
``a=fingerprint`` (RFC 8122, RFC 4975 section 14.2). :class:`TLSIdentity` makes such a
certificate with ``cryptography`` and gives the options for Twisted's TLS; both ends ask
for the peer's certificate and accept it during the handshake, and the fingerprint is
compared right after it (``FingerprintMismatch`` on a difference). Relays are checked the
usual way, by name, with ``service_identity`` (:func:`relay_tls_options`).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from service_identity.cryptography import (verify_certificate_hostname,
                                           verify_certificate_ip_address)
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IOpenSSLContextFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from msrplib.errors import FingerprintMismatch

__all__ = ["Fingerprint", "TLSIdentity", "EndpointTLSOptions", "relay_tls_options",
           "peer_certificate", "check_peer_fingerprint", "FINGERPRINT_HASHES"]

#: The RFC 8122 hash function names we compute and check.
FINGERPRINT_HASHES: Dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha-256": hashes.SHA256, "sha-1": hashes.SHA1,
    "sha-384": hashes.SHA384, "sha-512": hashes.SHA512,
}


@dataclass(frozen=True)
class Fingerprint:
    """A certificate fingerprint as SDP writes it: ``sha-256 AB:CD:...`` (RFC 8122)."""

    algorithm: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse the value of ``a=fingerprint``; raises ``ValueError`` when it is not one."""
        algorithm, _, value = text.strip().partition(" ")
        algorithm = algorithm.lower()
        if algorithm not in FINGERPRINT_HASHES:
            raise ValueError("unknown fingerprint hash %r" % algorithm)
        octets = value.strip().split(":")
        if not all(len(octet) == 2 for octet in octets) or not _is_hex("".join(octets)):
            raise ValueError("bad fingerprint value %r" % value)
        return cls(algorithm, value.strip().upper())

    @classmethod
    def of(cls, certificate: x509.Certificate, algorithm: str = "sha-256") -> Fingerprint:
        """The fingerprint of ``certificate`` with the named hash."""
        digest = certificate.fingerprint(FINGERPRINT_HASHES[algorithm.lower()]())
        return cls(algorithm.lower(), ":".join("%02X" % octet for octet in digest))

    def matches(self, certificate: x509.Certificate) -> bool:
        """True when ``certificate`` has this fingerprint."""
        return Fingerprint.of(certificate, self.algorithm) == self

    def __str__(self) -> str:
        return "%s %s" % (self.algorithm, self.value)


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


@implementer(IOpenSSLContextFactory)
class EndpointTLSOptions:
    """Twisted context factory for an MSRP endpoint: presents our certificate, asks for the
    peer's and accepts any during the handshake (its fingerprint is checked after)."""

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self._context = options.getContext()
        self._context.set_verify(SSL.VERIFY_PEER, _accept_any_certificate)

    def getContext(self) -> SSL.Context:
        """The OpenSSL context, shared by every connection made with these options."""
        return self._context


def _accept_any_certificate(connection: Any, certificate: Any, errno: int, depth: int,
                            ok: int) -> bool:
    return True


class TLSIdentity:
    """A private key and certificate for one endpoint."""

    def __init__(self, private_key: Any, certificate: x509.Certificate) -> None:
        self.private_key = private_key
        self.certificate = certificate

    @classmethod
    def generate(cls, common_name: str = "msrplib", days: int = 30,
                 hosts: Tuple[str, ...] = ()) -> TLSIdentity:
        """A new EC P-256 key with a self-signed certificate valid for ``days``.

        ``hosts`` (names or IP addresses) go into the subjectAltName, so the certificate can
        also serve a relay whose clients check its name.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=days)))
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(host) for host in hosts]),
                critical=False)
        return cls(key, builder.sign(key, hashes.SHA256()))

    @classmethod
    def from_pem(cls, certificate_pem: bytes, key_pem: bytes) -> TLSIdentity:
        """Load a certificate and its private key from PEM bytes."""
        return cls(serialization.load_pem_private_key(key_pem, password=None),
                   x509.load_pem_x509_certificate(certificate_pem))

    def certificate_pem(self) -> bytes:
        """The certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key in unencrypted PKCS#8 PEM."""
        pem: bytes = self.private_key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption())
        return pem

    def fingerprint(self, algorithm: str = "sha-256") -> Fingerprint:
        """This certificate's fingerprint, for SDP ``a=fingerprint``."""
        return Fingerprint.of(self.certificate, algorithm)

    def options(self) -> EndpointTLSOptions:
        """TLS options for an endpoint that uses this identity, as client or server."""
        return EndpointTLSOptions(ssl.CertificateOptions(
            privateKey=crypto.PKey.from_cryptography_key(self.private_key),
            certificate=crypto.X509.from_cryptography(self.certificate)))

    def server_options(self) -> ssl.CertificateOptions:
        """TLS options for a server that presents this identity and asks its clients for
        none (a relay's clients prove who they are with Digest)."""
        return ssl.CertificateOptions(
            privateKey=crypto.PKey.from_cryptography_key(self.private_key),
            certificate=crypto.X509.from_cryptography(self.certificate))

    def twisted_certificate(self) -> ssl.PrivateCertificate:
        """The identity as Twisted's ``PrivateCertificate`` (e.g. a client certificate)."""
        certificate: ssl.PrivateCertificate = ssl.PrivateCertificate.loadPEM(
            self.certificate_pem() + self.key_pem())
        return certificate


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def relay_tls_options(hostname: str, trust_root: Any = None,
                      identity: Optional[TLSIdentity] = None, verify: bool = True) -> Any:
    """Client TLS options for connecting to a relay named ``hostname``.

    With ``verify`` (the default) the relay's certificate must chain to ``trust_root`` (a
    ``twisted.internet.ssl.Certificate`` or Twisted's ``platformTrust()`` when ``None``) and
    name ``hostname``, checked with ``service_identity`` (``_RelayNameCheck``): an IP
    address against the certificate's IP address entries, a DNS name against its DNS
    entries; a certificate whose names ``service_identity`` cannot read is refused.
    ``verify=False`` skips both, for tests against self-signed relays only.
    """
    if not verify:
        identity = identity or TLSIdentity.generate()
        return identity.options()
    client = identity.twisted_certificate() if identity is not None else None
    return _RelayNameCheck(hostname, ssl.optionsForClientTLS(hostname, trustRoot=trust_root,
                                                            clientCertificate=client))


@implementer(IOpenSSLClientConnectionCreator)
class _RelayNameCheck:
    """Twisted's ``optionsForClientTLS`` connections, with a name check that is never
    skipped.

    Twisted checks the name in OpenSSL's verify callback, catching only
    ``service_identity.VerificationError``: when ``service_identity`` cannot read the
    certificate's subjectAltName at all (``CertificateError``, e.g. for a DNS entry that
    holds an IP address), Twisted logs that and lets the certificate through unchecked.
    This creator makes the same connections and replaces that callback: the chain is
    OpenSSL's verdict as before; the relay's own certificate must then pass
    ``service_identity``'s ``verify_certificate_ip_address`` (``hostname`` is an IP
    address) or ``verify_certificate_hostname``. Any error from them refuses it, and the
    handshake fails with that error.
    """

    def __init__(self, hostname: str, creator: Any) -> None:
        self.hostname = hostname
        self._creator = creator
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            self._check: Callable[[x509.Certificate], None] = \
                lambda certificate: verify_certificate_hostname(certificate, hostname)
        else:
            self._check = lambda certificate: verify_certificate_ip_address(
                certificate, str(address))

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """A client connection whose peer must pass the name check."""
        connection: SSL.Connection = self._creator.clientConnectionForTLS(tlsProtocol)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                              self._verifier(tlsProtocol))
        return connection

    def _verifier(self, tls_protocol: Any) -> Callable[..., bool]:
        check = self._check

        def verify(connection: Any, certificate: Any, errno: int, depth: int,
                   ok: int) -> bool:
            if depth != 0 or not ok:
                return bool(ok)  # the chain: OpenSSL's verdict against the trust root
            try:
                check(certificate.to_cryptography())
            except Exception:  # never raise into OpenSSL: refuse, with the reason
                tls_protocol.failVerification(Failure())
                return False
            return True

        return verify


def peer_certificate(transport: Any) -> Optional[x509.Certificate]:
    """The certificate the peer presented on a TLS ``transport``, or ``None``."""
    certificate = transport.getPeerCertificate()
    return None if certificate is None else certificate.to_cryptography()


def check_peer_fingerprint(transport: Any, expected: Fingerprint) -> None:
    """Raise :class:`~msrplib.errors.FingerprintMismatch` unless the peer's certificate on
    ``transport`` has the ``expected`` fingerprint."""
    certificate = peer_certificate(transport)
    if certificate is None:
        raise FingerprintMismatch("the peer presented no certificate; expected %s" % expected)
    if not expected.matches(certificate):
        raise FingerprintMismatch("the peer's certificate has fingerprint %s, expected %s"
                                  % (Fingerprint.of(certificate, expected.algorithm), expected))
