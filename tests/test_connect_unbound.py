"""MSRPServer's connections before they bind, deterministically (MemoryReactorClock and
StringTransport): the first request's checks, 403 whichever of SEND and complete() comes
first, wrong certificates, and the limits on silent connections."""

from hypothesis import given, settings, strategies as st
from OpenSSL import crypto
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest

from msrplib.connect import (ConnectionSettings, FingerprintMismatch, MSRPBindSessionTimeout,
                             MSRPServer)
from msrplib.protocol import URI, ChunkParser
from msrplib.tls import TLSIdentity
from msrplib.transport import MSRPProtocol, MSRPTransport

PEER = URI(host="127.0.0.1", port=5555, session_id="peer")
OTHER = URI(host="127.0.0.1", port=5556, session_id="other")


def address(host="127.0.0.1", port=40000):
    return IPv4Address("TCP", host, port)


def responses(transport):
    return [chunk for chunk in ChunkParser().feed(transport.value()) if chunk.code]


class ServerCase(unittest.TestCase):
    settings = ConnectionSettings(bind_timeout=30)

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.server = MSRPServer(reactor=self.reactor, settings=self.settings)
        self.uri = self.successResultOf(self.server.prepare(URI(host="127.0.0.1")))[0]
        self.factory = self.reactor.tcpServers[0][1]

    def accept(self, peer=None, transport=None):
        """A connection as the port would accept it: (protocol, transport), or
        (None, None) when the server refuses it."""
        peer = peer or address()
        protocol = self.factory.buildProtocol(peer)
        if protocol is None:
            return None, None
        transport = transport or StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def binding(self, sender=PEER, **options):
        return MSRPTransport(MSRPProtocol(), [sender], [self.uri]).make_chunk(**options)

    def request(self, *header_lines):
        return (b"MSRP abcd1234 SEND\r\n" + b"".join(line + b"\r\n" for line in header_lines)
                + b"-------abcd1234$\r\n")

    def paths(self):
        return (b"To-Path: " + str(self.uri).encode(), b"From-Path: " + str(PEER).encode())


class FirstRequestTests(ServerCase):
    """The first request on a connection is checked like any request (request_error):
    bad headers get 400, as its Failure-Report allows, and the connection is closed."""

    def refused(self, wire):
        protocol, transport = self.accept()
        protocol.dataReceived(wire)
        self.assertTrue(transport.disconnecting)
        return responses(transport)

    def assert400(self, wire):
        [response] = self.refused(wire)
        self.assertEqual((response.code, response.transaction_id), (400, "abcd1234"))

    def test_duplicated_to_path(self):
        to_path, from_path = self.paths()
        self.assert400(self.request(to_path, to_path, from_path, b"Message-ID: msg1",
                                    b"Byte-Range: 1-0/0"))

    def test_blank_to_path(self):
        _, from_path = self.paths()
        self.assert400(self.request(b"To-Path:    ", from_path, b"Message-ID: msg1",
                                    b"Byte-Range: 1-0/0"))

    def test_blank_from_path(self):
        to_path, _ = self.paths()
        self.assert400(self.request(to_path, b"From-Path:  ", b"Message-ID: msg1",
                                    b"Byte-Range: 1-0/0"))

    def test_message_id_of_forty_characters(self):
        to_path, from_path = self.paths()
        self.assert400(self.request(to_path, from_path, b"Message-ID: " + b"m" * 40,
                                    b"Byte-Range: 1-0/0"))

    def test_send_without_message_id(self):
        self.assert400(self.request(*self.paths(), b"Byte-Range: 1-0/0"))

    def test_failure_report_no_gets_no_answer(self):
        to_path, from_path = self.paths()
        self.assertEqual(self.refused(self.request(to_path, to_path, from_path,
                                                   b"Message-ID: msg1",
                                                   b"Failure-Report: no")), [])

    def test_a_good_first_request_still_binds(self):
        result = self.server.complete([PEER], self.uri)
        protocol, transport = self.accept()
        protocol.dataReceived(self.binding().encode())
        self.assertEqual(self.successResultOf(result).full_remote_path, [PEER])
        self.assertEqual([r.code for r in responses(transport)], [200])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(
        st.sampled_from([b"To-Path", b"From-Path", b"Message-ID", b"Byte-Range",
                         b"Failure-Report", b"Success-Report", b"Content-Type", b"X-Other"]),
        st.sampled_from([b"", b" ", b"msrp://127.0.0.1:5555/peer;tcp", b"msrp://h/x;tcp",
                         b"nonsense", b"msg1", b"m" * 40, b"1-0/0", b"1-*/*", b"no",
                         b"partial", b"yes", b"text/plain", b"\xff\xfe"])), max_size=8),
        st.booleans())
    def test_any_first_request_is_answered_or_closed_never_raises(self, headers, ours):
        lines = [name + b": " + value for name, value in headers]
        if ours:
            lines.insert(0, b"To-Path: " + str(self.uri).encode())
        protocol, transport = self.accept()
        protocol.dataReceived(self.request(*lines))  # nothing may escape from here
        bound = not transport.disconnecting and transport.producerState == "paused"
        self.assertTrue(transport.disconnecting or bound, transport.value())
        for response in responses(transport):
            self.assertIn(response.code, (400, 403, 481))
        self.server.stop()
        self.setUp()


class WrongPathTests(ServerCase):
    """A binding SEND from the wrong peer is refused with 403 at once, whether it came
    before or after the complete() that expects another peer."""

    def test_send_after_complete(self):
        waiting = self.server.complete([OTHER], self.uri)
        protocol, transport = self.accept()
        protocol.dataReceived(self.binding().encode())
        self.assertEqual([r.code for r in responses(transport)], [403])
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(waiting)

    def test_send_before_complete(self):
        protocol, transport = self.accept()
        protocol.dataReceived(self.binding().encode())
        self.assertEqual((transport.value(), transport.producerState), (b"", "paused"))
        waiting = self.server.complete([OTHER], self.uri)
        self.assertEqual([r.code for r in responses(transport)], [403])
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(waiting)
        right, right_transport = self.accept()
        right.dataReceived(self.binding(OTHER).encode())
        self.assertEqual(self.successResultOf(waiting).full_remote_path, [OTHER])

    def test_a_parked_send_stays_for_a_complete_without_its_local_uri(self):
        """complete(path) without local_uri cannot know which session it is for: a SEND
        parked for a session is left for the complete() that expects it."""
        protocol, transport = self.accept()
        protocol.dataReceived(self.binding().encode())
        other = self.server.complete([OTHER])
        self.assertEqual((transport.value(), transport.disconnecting), (b"", False))
        bound = self.successResultOf(self.server.complete([PEER]))
        self.assertEqual(bound.full_remote_path, [PEER])
        self.assertEqual([r.code for r in responses(transport)], [200])
        self.assertNoResult(other)

    def test_complete_without_remote_path_takes_a_parked_send(self):
        protocol, transport = self.accept()
        protocol.dataReceived(self.binding().encode())
        bound = self.successResultOf(self.server.complete(None, self.uri))
        self.assertEqual(bound.full_remote_path, [PEER])
        self.assertEqual(transport.producerState, "producing")

    def test_many_sessions_bind_to_their_own_complete(self):
        uris = [self.successResultOf(self.server.prepare(URI(host="127.0.0.1")))[0]
                for _ in range(20)]
        peers = [URI(host="127.0.0.1", port=6000 + n, session_id="p%d" % n)
                 for n in range(20)]
        results = {}
        for n in range(0, 20, 2):  # half of them: complete() first, by the remote path
            results[n] = self.server.complete([peers[n]])
        for n in range(20):
            protocol, _ = self.accept(address(port=41000 + n))
            sender = MSRPTransport(MSRPProtocol(), [peers[n]], [uris[n]])
            protocol.dataReceived(sender.make_chunk().encode())
        for n in range(1, 20, 2):  # the other half: the SEND first, by the local URI
            results[n] = self.server.complete([peers[n]], uris[n])
        for n in range(20):
            bound = self.successResultOf(results[n])
            self.assertEqual((bound.local_uri, bound.full_remote_path), (uris[n], [peers[n]]))
        self.assertEqual(len(self.server._unbound), 0)


class CertificateTransport(StringTransport):
    """A StringTransport whose peer presented ``identity``'s certificate, as over TLS."""

    def __init__(self, identity, **kwargs):
        super().__init__(**kwargs)
        self.identity = identity

    def getPeerCertificate(self):
        return crypto.X509.from_cryptography(self.identity.certificate)


class WrongCertificateTests(ServerCase):
    def test_a_wrong_certificate_closes_that_connection_only(self):
        right, wrong = TLSIdentity.generate(), TLSIdentity.generate()
        waiting = self.server.complete([PEER], self.uri, right.fingerprint())
        protocol, transport = self.accept(transport=CertificateTransport(wrong))
        protocol.dataReceived(self.binding().encode())
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(waiting)
        protocol, transport = self.accept(transport=CertificateTransport(right))
        protocol.dataReceived(self.binding().encode())
        self.assertEqual(self.successResultOf(waiting).full_remote_path, [PEER])

    def test_a_parked_wrong_certificate_is_closed_at_complete(self):
        right, wrong = TLSIdentity.generate(), TLSIdentity.generate()
        protocol, transport = self.accept(transport=CertificateTransport(wrong))
        protocol.dataReceived(self.binding().encode())
        waiting = self.server.complete([PEER], self.uri, right.fingerprint())
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(waiting)

    def test_the_bind_timeout_names_the_refused_certificate(self):
        right, wrong = TLSIdentity.generate(), TLSIdentity.generate()
        waiting = self.server.complete([PEER], self.uri, right.fingerprint())
        protocol, _ = self.accept(transport=CertificateTransport(wrong))
        protocol.dataReceived(self.binding().encode())
        self.reactor.advance(30)
        error = self.failureResultOf(waiting, FingerprintMismatch).value
        self.assertIn(str(wrong.fingerprint()), str(error))
        self.assertIn("within 30", str(error))

    def test_without_a_refusal_the_bind_timeout_is_a_timeout(self):
        waiting = self.server.complete([PEER], self.uri, TLSIdentity.generate().fingerprint())
        self.reactor.advance(30)
        self.failureResultOf(waiting, MSRPBindSessionTimeout)


class SilentConnectionTests(ServerCase):
    settings = ConnectionSettings(bind_timeout=30, first_request_timeout=5,
                                  max_unbound_per_source=3, max_unbound_connections=5)

    def test_silent_connection_closed_after_the_first_request_timeout(self):
        _, transport = self.accept()
        self.reactor.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_bare_line_feeds_are_closed_at_once(self):
        # No MSRP start line can begin with them: the parser refuses them as they come,
        # before any timeout.
        protocol, transport = self.accept()
        protocol.dataReceived(b"\n" * 1000)
        self.assertTrue(transport.disconnecting)

    def test_a_parked_connection_waits_for_the_bind_timeout_from_its_accept(self):
        protocol, transport = self.accept()
        self.reactor.advance(4)
        protocol.dataReceived(self.binding().encode())
        self.reactor.advance(25.9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.server._unbound), 0)
        self.assertFalse(self.reactor.getDelayedCalls())

    def test_the_oldest_silent_connection_of_the_source_makes_room(self):
        speaking, speaking_transport = self.accept(address(port=1))
        speaking.dataReceived(self.binding().encode())  # parked: it has spoken
        _, oldest = self.accept(address(port=2))
        _, younger = self.accept(address(port=3))
        _, other_source = self.accept(address("10.0.0.2"))
        protocol, newest = self.accept(address(port=4))
        self.assertIsNotNone(protocol)
        self.assertTrue(oldest.disconnecting)
        for transport in (speaking_transport, younger, other_source, newest):
            self.assertFalse(transport.disconnecting)
        self.assertEqual(self.successResultOf(self.server.complete([PEER])).full_remote_path,
                         [PEER])

    def test_a_source_whose_connections_all_spoke_gets_no_more(self):
        for port in range(3):
            protocol, _ = self.accept(address(port=port))
            protocol.dataReceived(self.binding().encode())
        self.assertEqual(self.accept(address(port=9)), (None, None))
        self.assertIsNotNone(self.accept(address("10.0.0.2"))[0])

    def test_past_the_total_the_oldest_silent_connection_anywhere_makes_room(self):
        transports = [self.accept(address("10.0.0.%d" % n))[1] for n in range(5)]
        _, newest = self.accept(address("10.0.0.99"))
        self.assertEqual([t.disconnecting for t in transports + [newest]],
                         [True, False, False, False, False, False])

    def test_a_closed_connection_makes_room(self):
        protocols = []
        for port in range(3):
            protocol, _ = self.accept(address(port=port))
            protocol.dataReceived(self.binding().encode())
            protocols.append(protocol)
        protocols[0].connectionLost()
        self.assertIsNotNone(self.accept(address(port=9))[0])


class IdleFloodTests(ServerCase):
    settings = ConnectionSettings()

    def test_two_thousand_idle_connections_from_one_address(self):
        idle = [self.accept(address("192.0.2.66", port))[1] for port in range(2000)]
        self.assertEqual(sum(not t.disconnecting for t in idle),
                         self.settings.max_unbound_per_source)
        for peer_address in (address("192.0.2.7"), address("192.0.2.66", 9999)):
            waiting = self.server.complete([PEER], self.uri)
            protocol, transport = self.accept(peer_address)
            protocol.dataReceived(self.binding().encode())
            self.successResultOf(waiting)
