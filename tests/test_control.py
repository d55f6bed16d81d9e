"""Nobody without the credential drives the control API, and every bad request gets a 4xx
JSON answer: a real ``twistd msrp`` process, talked to over HTTP on loopback."""

import os
import stat
import time

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from tests.service_process import TwistdMSRP, started


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class ServiceTestCase(unittest.TestCase):
    """Each test talks to a ``twistd msrp`` of its own, started with ``options``."""

    options = ()

    def setUp(self):
        self.service = started(self, *self.options)

    def assertJSONError(self, response, status):
        self.assertEqual(response.status, status, response)
        self.assertEqual(response.headers["content-type"], "application/json", response)
        self.assertIsInstance(response.json["error"], str)
        return response.json["error"]


class CredentialTests(ServiceTestCase):
    def test_the_token_file_is_private_and_its_path_is_printed(self):
        service = self.service
        self.assertEqual(service.printed_token_path, str(service.token_path))
        mode = stat.S_IMODE(os.stat(service.token_path).st_mode)
        self.assertEqual(mode, 0o600)
        self.assertGreaterEqual(len(service.token), 32)

    @inlineCallbacks
    def test_without_the_token_401(self):
        for headers in [{}, {"Authorization": "Bearer wrong-token-wrong-token"},
                        {"Authorization": "Basic " + self.service.token},
                        {"Authorization": "Bearer"}]:
            for method, path, body in [("GET", "/", None), ("GET", "/sessions", None),
                                       ("POST", "/sessions", {"setup": "active"})]:
                response = yield self.service.request(method, path, body, headers=headers,
                                                      token="Authorization" in headers)
                self.assertJSONError(response, 401)
                self.assertEqual(response.headers["www-authenticate"], 'Bearer realm="msrplib"')
        listed = yield self.service.ok("GET", "/sessions")
        self.assertEqual(listed, [])

    @inlineCallbacks
    def test_with_the_token(self):
        answer = yield self.service.ok("GET", "/")
        self.assertEqual(answer["service"], "msrplib")

    @inlineCallbacks
    def test_a_foreign_host_is_refused(self):
        port = self.service.port
        for host in ["evil.example:%d" % port, "evil.example", "127.0.0.1.evil.example",
                     "localhost.evil.example:%d" % port, "[::ffff:8.8.8.8]", "", "a b",
                     "127.0.0.1:notaport"]:
            response = yield self.service.request("GET", "/", headers={"Host": host})
            self.assertIn("Host", self.assertJSONError(response, 403))
        response = yield self.service.raw(b"GET / HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n"
                                          % self.service.token.encode())
        self.assertJSONError(response, 403)
        for host in ["127.0.0.1:%d" % port, "localhost:%d" % port, "localhost", "LOCALHOST.",
                     "127.0.0.2:%d" % port, "[::1]:%d" % port]:
            response = yield self.service.request("GET", "/", headers={"Host": host})
            self.assertEqual(response.status, 200, (host, response))

    @inlineCallbacks
    def test_a_foreign_origin_is_refused(self):
        port = self.service.port
        for origin in ["http://evil.example", "null", "http://localhost:%d" % (port + 1),
                       "https://127.0.0.1:%d" % port, "http://evil.example:%d" % port,
                       "file://", "http://127.0.0.1:%d:x" % port]:
            response = yield self.service.request("POST", "/sessions", {"setup": "active"},
                                                  headers={"Origin": origin})
            self.assertIn("origin", self.assertJSONError(response, 403))
        response = yield self.service.request(
            "GET", "/", headers={"Origin": "http://127.0.0.1:%d" % port})
        self.assertEqual(response.status, 200, response)
        listed = yield self.service.ok("GET", "/sessions")
        self.assertEqual(listed, [])

    @inlineCallbacks
    def test_a_post_must_be_json(self):
        # What a web page's form can send without asking the browser's permission.
        for content_type in ["text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", None]:
            response = yield self.service.request(
                "POST", "/sessions", b'{"setup": "active"}',
                headers={"Content-Type": content_type})
            self.assertJSONError(response, 415)
        response = yield self.service.request(
            "POST", "/sessions", b'{"setup": "passive"}',
            headers={"Content-Type": "Application/JSON; charset=utf-8"})
        self.assertEqual(response.status, 200, response)
        yield self.service.ok("DELETE", "/sessions/%s" % response.json["id"])


class RequestErrorTests(ServiceTestCase):
    @inlineCallbacks
    def test_unknown_methods_get_405_with_allow(self):
        for method, path, allowed in [("PUT", "/sessions", "GET, POST"),
                                      ("DELETE", "/", "GET"),
                                      ("OPTIONS", "/sessions/abc", "DELETE, GET"),
                                      ("GET", "/sessions/abc/complete", "POST"),
                                      ("PATCH", "/sessions/abc/events", "GET"),
                                      ("BREW", "/sessions/abc/files", "POST")]:
            response = yield self.service.request(method, path)
            self.assertJSONError(response, 405)
            self.assertEqual(response.headers["allow"], allowed)

    @inlineCallbacks
    def test_unknown_resources_and_sessions_get_404(self):
        for path in ["/nowhere", "/sessions/abc/nothing", "/sessions/abc/events/x"]:
            response = yield self.service.request("GET", path)
            self.assertJSONError(response, 404)
        response = yield self.service.request("GET", "/sessions/nosuch")
        self.assertJSONError(response, 404)

    @inlineCallbacks
    def test_a_path_that_is_not_utf8(self):
        for path in [b"/sessions/%FF", b"/sessions/\xff\xfe", b"/sessions/%C3/events"]:
            response = yield self.service.request("GET", path)
            self.assertJSONError(response, 400)
        # Bytes that are not HTTP at all get a JSON 400 too.
        for garbage in [b"\x16\x03\x01\x00\xa5\x01\r\n\r\n", b"GET\r\n\r\n",
                        b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n"]:
            response = yield self.service.raw(garbage)
            self.assertJSONError(response, 400)

    @inlineCallbacks
    def test_bodies_that_are_not_json_objects(self):
        for body in [b"{", b"[1, 2]", b'"text"', b"\xff\xfe{}", b'{"setup": "act\\ud800"}',
                     b"[" * 100000 + b"]" * 100000]:
            response = yield self.service.request("POST", "/sessions", body)
            self.assertJSONError(response, 400)
        response = yield self.service.request("GET", "/sessions/x/events?since=abc")
        self.assertJSONError(response, 400)
        self.assertNotIn("Traceback", self.service.log())

    @inlineCallbacks
    def test_wrong_json_types(self):
        created = yield self.service.ok("POST", "/sessions", {"setup": "passive"})
        session = "/sessions/%s" % created["id"]
        peer = "msrp://127.0.0.1:9/abcd;tcp"
        cases = [
            ("/sessions", {"setup": 5}),
            ("/sessions", {"setup": "sideways"}),
            (session + "/complete", {}),
            (session + "/complete", {"path": 5}),
            (session + "/complete", {"path": "not a uri"}),
            (session + "/complete", {"path": peer, "fingerprint": 5}),
            (session + "/complete", {"path": peer, "fingerprint": "sha-256 nonsense"}),
            (session + "/complete", {"path": peer, "accept_types": 5}),
            (session + "/complete", {"path": peer, "accept_types": ["text/plain", 5]}),
            (session + "/complete", {"path": peer, "accept_types": ["text/plain\r\nX: y"]}),
            (session + "/complete", {"path": peer, "accept_types": []}),
            (session + "/messages", {"text": 5}),
            (session + "/messages", {"text": "hi", "content_type": 5}),
            (session + "/messages", {"text": "hi", "content_type": "text/plain\r\nX: y"}),
            (session + "/messages", {"text": "hi", "content_type": "nonsense"}),
            (session + "/messages", {"text": "hi", "success_report": "bogus"}),
            (session + "/messages", {"text": "hi", "success_report": True}),
            (session + "/messages", {"text": "\ud800"}),
            (session + "/files", {"file": 5}),
            (session + "/files", {"file": "/x", "content_type": 5}),
            (session + "/files", {"file": "/x", "success_report": "bogus"}),
            (session + "/files", {"file": "/tmp/\udcff"}),
        ]
        for path, body in cases:
            response = yield self.service.request("POST", path, body)
            self.assertJSONError(response, 400)
            self.assertNotIn("internal", response.json["error"], (path, body))
        described = yield self.service.ok("GET", session)
        self.assertEqual(described["state"], "prepared")  # none of that touched it
        yield self.service.ok("DELETE", session)


class LimitTests(ServiceTestCase):
    options = ("--max-request-size", "1000", "--max-sessions", "3",
               "--session-expiry", "1")

    @inlineCallbacks
    def test_a_body_over_the_limit_is_refused_before_it_is_read(self):
        token = self.service.token.encode()
        port = self.service.port
        # Only the headers are sent: the answer cannot wait for a body.
        head = (b"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                % (port, token))
        started_at = time.monotonic()
        response = yield self.service.raw(head + b"Content-Length: 1073741824\r\n\r\n")
        self.assertJSONError(response, 413)
        self.assertLess(time.monotonic() - started_at, 5)
        response = yield self.service.raw(
            head + b"Content-Length: 1073741824\r\nExpect: 100-continue\r\n\r\n")
        self.assertJSONError(response, 413)
        self.assertNotIn(b"100 Continue", response.body)
        # Chunked, with no length: refused once it passes the limit.
        chunk = b"%x\r\n%s\r\n" % (600, b" " * 600)
        response = yield self.service.raw(
            head + b"Transfer-Encoding: chunked\r\n\r\n", chunk, chunk)
        self.assertJSONError(response, 413)
        # Without the token too: the limit applies before anything else.
        response = yield self.service.raw(
            b"POST / HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 5000\r\n\r\n")
        self.assertJSONError(response, 413)
        # Up to the limit is fine.
        response = yield self.service.request("POST", "/sessions",
                                              b'{"setup": "passive"}' + b" " * 980)
        self.assertEqual(response.status, 200, response)
        yield self.service.ok("DELETE", "/sessions/%s" % response.json["id"])

    @inlineCallbacks
    def test_sessions_are_capped(self):
        created = []
        for _ in range(3):
            created.append((yield self.service.ok("POST", "/sessions", {"setup": "active"})))
        response = yield self.service.request("POST", "/sessions", {"setup": "active"})
        self.assertJSONError(response, 429)
        yield self.service.ok("DELETE", "/sessions/%s" % created[0]["id"])
        created[0] = yield self.service.ok("POST", "/sessions", {"setup": "active"})
        for session in created:
            yield self.service.ok("DELETE", "/sessions/%s" % session["id"])

    @inlineCallbacks
    def test_prepared_sessions_that_never_complete_expire(self):
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.error import ConnectionRefusedError
        from twisted.internet.protocol import Protocol
        from msrplib.protocol import URI

        passive = yield self.service.ok("POST", "/sessions", {"setup": "passive"})
        listening = URI.parse(passive["path"])
        probe = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", listening.port), Protocol())
        probe.transport.loseConnection()
        yield sleep(1.8)
        response = yield self.service.request("GET", "/sessions/%s" % passive["id"])
        self.assertJSONError(response, 404)
        # Its listening port went with it.
        yield self.assertFailure(connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", listening.port), Protocol()),
            ConnectionRefusedError)
        self.assertIn("session %s expired (prepared)" % passive["id"], self.service.log())


class UnixSocketTests(unittest.TestCase):
    @inlineCallbacks
    def test_the_unix_socket_is_private_and_still_needs_the_token(self):
        import tempfile
        directory = tempfile.mkdtemp(prefix="msrp-")  # a socket's path must be short
        self.addCleanup(__import__("shutil").rmtree, directory, True)
        socket_path = os.path.join(directory, "control.sock")
        service = started(self, control="unix:%s" % socket_path)
        self.assertEqual(service.address, "unix:%s" % socket_path)
        self.assertEqual(stat.S_IMODE(os.stat(socket_path).st_mode), 0o600)
        response = yield service.request("GET", "/", token=False)
        self.assertEqual(response.status, 401, response)
        answer = yield service.ok("GET", "/")
        self.assertEqual(answer["sessions"], 0)


class TokenFileTests(unittest.TestCase):
    def twistd(self, token_file):
        service = TwistdMSRP(self.mktemp(), "--control-token-file", token_file,
                             token_file=False)
        self.addCleanup(service.stop)
        return service

    def test_a_given_token_file_is_used(self):
        path = os.path.abspath(self.mktemp())
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
            out.write("a-token-of-my-own-choosing\n")
        service = self.twistd(path).start()
        self.assertEqual(service.token, "a-token-of-my-own-choosing")

    def test_a_token_file_others_may_read_is_refused(self):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as out:
            out.write("a-token-of-my-own-choosing\n")
        os.chmod(path, 0o644)
        service = self.twistd(path)
        self.assertRaises(RuntimeError, service.start)
        self.assertEqual(service.process.wait(10), 1)
        log = service.log()
        self.assertIn("twistd msrp: the token file %s may be read or written by others" % path,
                      log)
        self.assertNotIn("Traceback", log)

    def test_the_default_token_file(self):
        service = TwistdMSRP(self.mktemp(), token_file=False)
        self.addCleanup(service.stop)
        service.start()
        self.assertEqual(service.printed_token_path,
                         str(service.directory / "msrp-control-token"))


class SuccessReportDefaultTests(unittest.TestCase):
    """A text message whose request names no success_report leaves the choice to the
    session (a success REPORT through a relay); one that names it is sent as it says."""

    def test_the_session_decides_unless_told(self):
        from twisted.internet.defer import succeed

        from msrplib.control import ControlAPI

        asked = []

        class Service:
            def send_text(self, session_id, text, content_type, success_report):
                asked.append(success_report)
                return succeed("m1")

        api = ControlAPI(Service(), "t" * 32)
        for body in ({"text": "hi"}, {"text": "hi", "success_report": "no"},
                     {"text": "hi", "success_report": "yes"}):
            result = api._send_text(None, body, "s1")
            self.assertEqual(self.successResultOf(result), {"message_id": "m1"})
        self.assertEqual(asked, [None, "no", "yes"])
