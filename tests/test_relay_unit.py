"""Relay logic without a relay: Digest, SRV lookup, and the AUTH exchange on a fake clock."""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import fail, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.error import ConnectionDone
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.python.failure import Failure
from twisted.trial import unittest

from msrplib.connect import (AcceptorRelay, ConnectionSettings, ConnectorRelay, MSRPAuthError,
                             MSRPBindSessionTimeout, MSRPRelayNotFound, MSRPRelaySettings,
                             locate_relay)
from msrplib.digest import answer_challenge, digest_response
from msrplib.protocol import (AuthParams, ChunkParser, Headers, MSRPData, make_response,
                              parse_uri)

CHALLENGE = AuthParams("Digest", {"realm": "testrealm@host.com", "qop": "auth",
                                  "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                                  "opaque": "5ccc069c403ebaf9f0171e9517f40e41"})


class DigestTests(unittest.TestCase):
    def test_rfc2617_worked_example(self):
        self.assertEqual(digest_response(
            "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093", "0a4f113b", "00000001", "auth"),
            "6629fae49393a05397450978507c4ef1")

    def test_without_qop(self):
        self.assertEqual(digest_response("u", "r", "p", "AUTH", "msrp://h;tcp", "n"),
                         digest_response("u", "r", "p", "AUTH", "msrp://h;tcp", "n", None))
        self.assertEqual(len(digest_response("u", "r", "p", "AUTH", "msrp://h;tcp", "n")), 32)

    def test_answer(self):
        answer = answer_challenge(CHALLENGE, "Mufasa", "Circle Of Life", "/dir/index.html",
                                  method="GET", cnonce="0a4f113b")
        self.assertEqual(answer.params["response"], "6629fae49393a05397450978507c4ef1")
        self.assertEqual(answer.params["opaque"], CHALLENGE.params["opaque"])
        text = str(answer)
        self.assertIn("qop=auth", text)
        self.assertIn("nc=00000001", text)
        self.assertIn('uri="/dir/index.html"', text)

    def test_refuses_other_challenges(self):
        for bad in [AuthParams("Basic", {"realm": "r"}),
                    AuthParams("Digest", {"realm": "r", "nonce": "n", "algorithm": "SHA-256"}),
                    AuthParams("Digest", {"realm": "r", "nonce": "n", "qop": "auth-int"}),
                    AuthParams("Digest", {"realm": "r"})]:
            self.assertRaises(ValueError, answer_challenge, bad, "u", "p", "msrp://h;tcp")


class FakeResolver:
    def __init__(self, records=None, error=None):
        self.records = records or []
        self.error = error
        self.asked = []

    def lookupService(self, name):
        self.asked.append(name)
        if self.error is not None:
            return fail(self.error)
        answers = [dns.RRHeader(name, dns.SRV, payload=dns.Record_SRV(p, w, port, target))
                   for p, w, port, target in self.records]
        return succeed((answers, [], []))


class LocateTests(unittest.TestCase):
    def test_host_given(self):
        relay = MSRPRelaySettings("example.com", "u", "p", host="relay.example.com")
        self.assertEqual(self.successResultOf(locate_relay(relay)),
                         ("relay.example.com", 2855))

    def test_srv_picks_lowest_priority_then_weight(self):
        resolver = FakeResolver([(20, 0, 1000, "backup.example.com"),
                                 (10, 1, 2000, "light.example.com"),
                                 (10, 5, 3000, "heavy.example.com")])
        relay = MSRPRelaySettings("example.com", "u", "p", use_tls=True, resolver=resolver)
        self.assertEqual(self.successResultOf(locate_relay(relay)),
                         ("heavy.example.com", 3000))
        self.assertEqual(resolver.asked, ["_msrps._tcp.example.com"])

    def test_no_srv_falls_back_to_the_domain(self):
        resolver = FakeResolver(error=DNSNameError("nope"))
        relay = MSRPRelaySettings("example.com", "u", "p", resolver=resolver)
        self.assertEqual(self.successResultOf(locate_relay(relay)), ("example.com", 2855))
        self.assertEqual(resolver.asked, ["_msrp._tcp.example.com"])

    def test_srv_says_no_relay(self):
        # RFC 2782: a target of "." (the root, an empty name on the wire) means "none here".
        relay = MSRPRelaySettings("example.com", "u", "p",
                                  resolver=FakeResolver([(0, 0, 0, b"")]))
        self.failureResultOf(locate_relay(relay), MSRPRelayNotFound)


class AuthExchangeTests(unittest.TestCase):
    """ConnectorRelay.prepare against a scripted relay on a StringTransport."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 40001))

    def start(self, endpoint_options=None, **relay_options):
        relay = MSRPRelaySettings("msrp-test", "alice", "secret", host="127.0.0.1",
                                  port=2855, **relay_options)
        self.endpoint = ConnectorRelay(relay, reactor=self.reactor,
                                       settings=ConnectionSettings(bind_timeout=5),
                                       **(endpoint_options or {}))
        result = self.endpoint.prepare()
        factory = self.reactor.tcpClients[0][2]
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        return result

    def request(self):
        [chunk] = list(ChunkParser().feed(self.transport.value()))
        self.transport.clear()
        return chunk

    def answer(self, request, code, **headers):
        response = make_response(request, code)
        for name, value in headers.items():
            response.headers[name.replace("_", "-")] = value
        self.protocol.dataReceived(response.encode())

    def challenge(self, request):
        self.answer(request, 401, WWW_Authenticate='Digest realm="msrp-test", '
                    'nonce="abc123", qop="auth"')

    def test_challenge_answer_and_use_path(self):
        result = self.start()
        first = self.request()
        self.assertEqual((first.method, first.headers["To-Path"]),
                         ("AUTH", "msrp://127.0.0.1:2855;tcp"))
        self.assertEqual(first.from_path[0].port, 40001)
        self.assertNotIn("Expires", first.headers)
        self.assertNotIn("Authorization", first.headers)
        self.challenge(first)
        second = self.request()
        answer = second.authorization
        expected = digest_response("alice", "msrp-test", "secret", "AUTH",
                                   "msrp://127.0.0.1:2855;tcp", "abc123",
                                   answer.params["cnonce"], "00000001", "auth")
        self.assertEqual(answer.params["response"], expected)
        self.assertEqual(answer.params["uri"], "msrp://127.0.0.1:2855;tcp")
        self.answer(second, 200, Use_Path="msrp://127.0.0.1:2855/msrp-1;tcp", Expires="100")
        path = self.successResultOf(result)
        self.assertEqual([str(uri) for uri in path[:1]], ["msrp://127.0.0.1:2855/msrp-1;tcp"])
        self.assertEqual(path[1], self.endpoint.local_uri)
        # The refresh comes at three quarters of Expires.
        self.reactor.advance(74.9)
        self.assertEqual(self.transport.value(), b"")
        self.reactor.advance(0.1)
        refresh = self.request()
        self.assertEqual(refresh.method, "AUTH")
        self.endpoint.cleanup()

    def test_expires_only_when_configured_and_423(self):
        result = self.start(expires=30)
        first = self.request()
        self.assertEqual(first.expires, 30)
        self.challenge(first)
        second = self.request()
        self.answer(second, 423, Min_Expires="60", Max_Expires="3600")
        third = self.request()
        self.assertEqual(third.expires, 60)
        self.assertEqual(third.authorization.params["nc"], "00000002")
        self.answer(third, 200, Use_Path="msrp://127.0.0.1:2855/msrp-2;tcp", Expires="60")
        self.successResultOf(result)
        self.endpoint.cleanup()
        self.assertTrue(self.transport.disconnecting)

    def test_second_401_is_wrong_credentials(self):
        result = self.start()
        self.challenge(self.request())
        self.challenge(self.request())
        error = self.failureResultOf(result, MSRPAuthError).value
        self.assertEqual(error.code, 401)
        self.assertTrue(self.transport.disconnecting)

    def test_403(self):
        result = self.start()
        self.answer(self.request(), 403)
        self.assertEqual(self.failureResultOf(result, MSRPAuthError).value.code, 403)

    def test_200_without_use_path(self):
        result = self.start()
        self.answer(self.request(), 200)
        self.failureResultOf(result, MSRPAuthError)

    def test_no_answer(self):
        result = self.start()
        self.request()
        self.reactor.advance(5)
        self.failureResultOf(result, MSRPBindSessionTimeout)
        self.assertFalse(self.reactor.getDelayedCalls())

    def granted(self, use_path="msrp://127.0.0.1:2855/msrp-1;tcp", expires="100",
                **endpoint_options):
        """A prepared endpoint whose AUTH was granted for ``expires`` seconds."""
        self.path_changes, self.refresh_failures = [], []
        endpoint_options.setdefault("on_path_changed", self.path_changes.append)
        endpoint_options.setdefault("on_refresh_failed", self.refresh_failures.append)
        result = self.start(endpoint_options)
        self.answer(self.request(), 200, Use_Path=use_path, Expires=expires)
        self.successResultOf(result)
        self.addCleanup(self.endpoint.cleanup)

    def test_a_refresh_refused_with_481_goes_to_the_use_path_uri(self):
        # The older Twisted msrprelay takes a refresh only at the Use-Path URI it granted.
        self.granted()
        self.reactor.advance(75)
        bare = self.request()
        self.assertEqual(bare.headers["To-Path"], "msrp://127.0.0.1:2855;tcp")
        self.answer(bare, 481)
        at_use_path = self.request()
        self.assertEqual(at_use_path.headers["To-Path"], "msrp://127.0.0.1:2855/msrp-1;tcp")
        self.challenge(at_use_path)
        answered = self.request()
        self.assertEqual(answered.authorization.params["uri"],
                         "msrp://127.0.0.1:2855/msrp-1;tcp")
        self.answer(answered, 200, Use_Path="msrp://127.0.0.1:2855/msrp-1;tcp", Expires="100")
        self.assertEqual((self.endpoint.auth_count, self.path_changes, self.refresh_failures),
                         (2, [], []))
        self.assertFalse(self.transport.disconnecting)
        self.reactor.advance(75)
        self.assertEqual(self.request().method, "AUTH")  # the next refresh is on time

    def test_a_new_use_path_is_reported(self):
        self.granted()
        self.reactor.advance(75)
        self.answer(self.request(), 200, Use_Path="msrp://127.0.0.1:2855/msrp-2;tcp",
                    Expires="100")
        [path] = self.path_changes
        self.assertEqual([str(uri) for uri in path[:1]], ["msrp://127.0.0.1:2855/msrp-2;tcp"])
        self.assertEqual(path[1], self.endpoint.local_uri)
        self.assertEqual(self.endpoint.full_local_path, path)

    def test_a_failed_refresh_keeps_the_connection_and_is_retried(self):
        self.granted()
        self.reactor.advance(75)
        self.answer(self.request(), 500)
        [error] = self.refresh_failures
        self.assertEqual(error.code, 500)
        self.assertFalse(self.transport.disconnecting)
        # Tried again after half of what was left of the grant (12.5 s), then no answer.
        self.reactor.advance(12.4)
        self.assertEqual(self.transport.value(), b"")
        self.reactor.advance(0.1)
        self.request()
        self.reactor.advance(5)  # the relay does not answer in bind_timeout
        self.assertIsInstance(self.refresh_failures[1], MSRPBindSessionTimeout)
        self.reactor.advance(12.5)
        self.answer(self.request(), 200, Use_Path="msrp://127.0.0.1:2855/msrp-1;tcp",
                    Expires="100")
        self.assertEqual((self.endpoint.auth_count, len(self.refresh_failures)), (2, 2))
        self.assertFalse(self.transport.disconnecting)

    def test_no_refresh_after_the_connection_closed(self):
        self.granted()
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.reactor.advance(1000)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def granted_with(self, **headers):
        """A prepared endpoint whose first AUTH was answered 200 with ``headers``."""
        self.path_changes, self.refresh_failures = [], []
        result = self.start({"on_path_changed": self.path_changes.append,
                             "on_refresh_failed": self.refresh_failures.append})
        self.answer(self.request(), 200, Use_Path="msrp://127.0.0.1:2855/msrp-1;tcp",
                    **headers)
        return result

    def bound(self):
        """A granted endpoint bound through the relay (ConnectorRelay: it sends the SEND)."""
        self.granted()
        binding = self.endpoint.complete([parse_uri("msrp://127.0.0.1:2855/bob;tcp")])
        self.answer(self.request(), 200)
        return self.successResultOf(binding)

    def test_no_refresh_crosses_a_binding(self):
        self.granted()
        self.reactor.advance(74)
        binding = self.endpoint.complete([parse_uri("msrp://127.0.0.1:2855/bob;tcp")])
        send = self.request()
        self.assertEqual(send.method, "SEND")
        self.reactor.advance(1)  # the refresh is due while the binding SEND is unanswered
        self.assertEqual(self.transport.value(), b"")
        self.answer(send, 200)
        transport = self.successResultOf(binding)
        self.reactor.advance(1)  # then it goes, and its answer reaches it, not the reader
        refresh = self.request()
        self.assertEqual(refresh.method, "AUTH")
        reading = transport.read_chunk()
        self.answer(refresh, 200, Use_Path="msrp://127.0.0.1:2855/msrp-2;tcp", Expires="100")
        self.assertEqual(len(self.path_changes), 1)
        self.assertNoResult(reading)

    def test_a_binding_waits_for_a_refresh_under_way(self):
        self.granted()
        self.reactor.advance(75)
        refresh = self.request()
        binding = self.endpoint.complete([parse_uri("msrp://127.0.0.1:2855/bob;tcp")])
        self.assertEqual(self.transport.value(), b"")  # no SEND while the AUTH is out
        self.answer(refresh, 200, Use_Path="msrp://127.0.0.1:2855/msrp-1;tcp", Expires="100")
        self.answer(self.request(), 200)
        self.successResultOf(binding)
        self.assertEqual((self.endpoint.auth_count, self.refresh_failures), (2, []))

    def test_a_late_answer_to_a_refresh_never_reaches_a_reader(self):
        transport = self.bound()
        self.reactor.advance(75)
        refresh = self.request()
        self.reactor.advance(5)  # no answer in the bind timeout: reported, retried later
        self.assertEqual(len(self.refresh_failures), 1)
        reading = transport.read_chunk()
        self.answer(refresh, 200, Use_Path="msrp://127.0.0.1:2855/msrp-1;tcp", Expires="100")
        self.assertNoResult(reading)

    def test_callbacks_that_raise_are_logged(self):
        def broken(value):
            raise RuntimeError("the application's bug")

        self.granted(on_path_changed=broken, on_refresh_failed=broken)
        self.reactor.advance(75)
        self.answer(self.request(), 500)
        self.reactor.advance(12.5)
        self.answer(self.request(), 200, Use_Path="msrp://127.0.0.1:2855/msrp-9;tcp",
                    Expires="100")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertEqual(self.endpoint.auth_count, 2)

    def test_a_connection_that_ends_mid_refresh_is_no_refresh_failure(self):
        self.granted()
        self.reactor.advance(75)
        self.request()
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.refresh_failures, [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_a_grant_of_no_time_is_refused(self):
        self.assertEqual(self.failureResultOf(self.granted_with(Expires="0"),
                                              MSRPAuthError).value.code, 400)

    def test_a_grant_without_expires_is_refreshed_all_the_same(self):
        self.successResultOf(self.granted_with())
        self.addCleanup(self.endpoint.cleanup)
        self.reactor.advance(2699)
        self.assertEqual(self.transport.value(), b"")
        self.reactor.advance(1)
        self.assertEqual(self.request().method, "AUTH")

    def test_complete_needs_prepare(self):
        endpoint = ConnectorRelay(MSRPRelaySettings("d", "u", "p", host="h"))
        self.assertRaises(RuntimeError, endpoint.complete, [])


class SettingsTests(unittest.TestCase):
    def test_relay_uri(self):
        self.assertEqual(str(MSRPRelaySettings("example.com", "u", "p").uri),
                         "msrp://example.com;tcp")
        self.assertEqual(str(MSRPRelaySettings("example.com", "u", "p", host="r.example.com",
                                               port=9000, use_tls=True).uri),
                         "msrps://r.example.com:9000;tcp")

    def test_seed_positional_arguments(self):
        relay = MSRPRelaySettings("example.com", "alice", "pw", "relay.example.com", True, 9000)
        self.assertEqual((relay.host, relay.use_tls, relay.port),
                         ("relay.example.com", True, 9000))
        self.assertIsInstance(MSRPData("abcd", method="AUTH", headers=Headers()), MSRPData)


class AcceptorRelayBindingTests(unittest.TestCase):
    """AcceptorRelay.complete against a scripted relay connection."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 40002))
        relay = MSRPRelaySettings("msrp-test", "bob", "secret", host="127.0.0.1", port=2855)
        self.endpoint = AcceptorRelay(relay, reactor=self.reactor,
                                      settings=ConnectionSettings(bind_timeout=5))
        prepared = self.endpoint.prepare()
        self.protocol = self.reactor.tcpClients[0][2].buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        [auth] = list(ChunkParser().feed(self.transport.value()))
        self.transport.clear()
        granted = make_response(auth, 200)
        granted.headers["Use-Path"] = "msrp://127.0.0.1:2855/msrp-b;tcp"
        self.protocol.dataReceived(granted.encode())
        self.path = self.successResultOf(prepared)
        self.alice = [parse_uri("msrp://127.0.0.1:2855/msrp-a;tcp"),
                      parse_uri("msrp://127.0.0.1:5000/alice;tcp")]

    def send_from(self, from_path):
        headers = Headers([("To-Path", str(self.path[-1])),
                           ("From-Path", " ".join(str(uri) for uri in from_path)),
                           ("Message-ID", "m"), ("Byte-Range", "1-0/0")])
        chunk = MSRPData("bind%04d" % len(from_path), method="SEND", headers=headers)
        self.protocol.dataReceived(chunk.encode())
        answers = list(ChunkParser().feed(self.transport.value()))
        self.transport.clear()
        return answers

    def test_wrong_sender_gets_403_and_waiting_goes_on(self):
        result = self.endpoint.complete(self.alice)
        stranger = [parse_uri("msrp://127.0.0.1:2855/msrp-b;tcp"),
                    parse_uri("msrp://127.0.0.1:6000/mallory;tcp")]
        [refusal] = self.send_from(stranger)
        self.assertEqual(refusal.code, 403)
        self.assertNoResult(result)
        relayed = [parse_uri("msrp://127.0.0.1:2855/msrp-b;tcp")] + self.alice
        [accepted] = self.send_from(relayed)
        self.assertEqual(accepted.code, 200)
        bound = self.successResultOf(result)
        self.assertEqual(bound.local_path, self.path)
        self.assertEqual(bound.max_chunk_size, 8 * 1024)

    def test_binding_that_came_before_complete(self):
        relayed = [parse_uri("msrp://127.0.0.1:2855/msrp-b;tcp")] + self.alice
        self.assertEqual(self.send_from(relayed), [])  # held until complete() knows Alice
        result = self.endpoint.complete(self.alice)
        self.successResultOf(result)
        [accepted] = list(ChunkParser().feed(self.transport.value()))
        self.assertEqual(accepted.code, 200)

    def test_nothing_binds(self):
        result = self.endpoint.complete(self.alice)
        self.reactor.advance(5)
        self.failureResultOf(result, MSRPBindSessionTimeout)
