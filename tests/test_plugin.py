"""The twistd plugin and its service, driven through the JSON control API over loopback."""

import hashlib
import json
import os

from twisted.application.service import IServiceMaker
from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from msrplib.service import make_service


def find_plugin():
    import twisted.plugins
    for plugin in getPlugins(IServiceMaker, twisted.plugins):
        if plugin.tapname == "msrp":
            return plugin
    raise AssertionError("no msrp plugin")


class PluginTests(unittest.TestCase):
    def test_found_and_options_parse(self):
        plugin = find_plugin()
        options = plugin.options()
        options.parseOptions(["--control", "tcp:0:interface=127.0.0.1", "--tls",
                              "--inbox", "somewhere", "--traffic-log"])
        self.assertEqual((options["control"], options["tls"], options["inbox"]),
                         ("tcp:0:interface=127.0.0.1", True, "somewhere"))
        self.assertEqual(options["host"], "127.0.0.1")
        self.assertIn("control API", options.__str__())

    def test_bad_options(self):
        options = find_plugin().options()
        self.assertRaises(usage.UsageError, options.parseOptions,
                          ["--relay", "msrp://127.0.0.1:2855;tcp"])
        self.assertRaises(usage.UsageError, find_plugin().options().parseOptions,
                          ["--chunk-size", "big"])

    def test_relay_options_make_relay_settings(self):
        options = find_plugin().options()
        password = self.mktemp()
        with open(password, "w") as out:
            out.write("s3cret\n")
        options.parseOptions(["--relay", "msrps://relay.example.com:9000;tcp",
                              "--username", "alice", "--password-file", password])
        service = make_service(options)
        relay = service.options.relay
        self.assertEqual((relay.host, relay.port, relay.use_tls, relay.username,
                          relay.password, relay.domain),
                         ("relay.example.com", 9000, True, "alice", "s3cret",
                          "relay.example.com"))

    def test_password_from_environment(self):
        self.patch(os, "environ", dict(os.environ, MSRP_PASSWORD="from-env"))
        options = find_plugin().options()
        options.parseOptions(["--relay", "msrp://r.example.com;tcp", "--username", "bob"])
        self.assertEqual(make_service(options).options.relay.password, "from-env")


class ControlClient:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.agent = Agent(reactor)

    @inlineCallbacks
    def call(self, method, path, body=None):
        from twisted.web.client import FileBodyProducer
        from io import BytesIO
        producer = None if body is None else FileBodyProducer(BytesIO(json.dumps(body).encode()))
        response = yield self.agent.request(method.encode(), (self.base + path).encode(),
                                            Headers({}), producer)
        data = yield readBody(response)
        return response.code, json.loads(data)

    @inlineCallbacks
    def ok(self, method, path, body=None):
        code, answer = yield self.call(method, path, body)
        assert code == 200, (code, answer)
        return answer


class ServiceTests(unittest.TestCase):
    def start(self, name, *extra):
        options = find_plugin().options()
        inbox = os.path.abspath(self.mktemp())
        options.parseOptions(["--control", "tcp:0:interface=127.0.0.1", "--inbox", inbox,
                              "--keepalive", "0"] + list(extra))
        service = find_plugin().makeService(options)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @inlineCallbacks
    def test_message_and_file_through_the_control_api(self):
        from twisted.logger import formatEvent, globalLogPublisher
        logged = []

        def observe(event):
            if event.get("log_namespace") == "msrplib.service.MSRPEndpointService":
                logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        alice_service = self.start("alice", "--tls", "--traffic-log")
        bob_service = self.start("bob", "--tls")
        yield task.deferLater(reactor, 0, lambda: None)
        alice = ControlClient(alice_service.control_port.getHost().port)
        bob = ControlClient(bob_service.control_port.getHost().port)
        self.assertEqual((yield alice.ok("GET", "/"))["service"], "msrplib")
        offer = yield alice.ok("POST", "/sessions", {"setup": "active"})
        answer = yield bob.ok("POST", "/sessions", {"setup": "passive"})
        self.assertTrue(offer["path"].startswith("msrps://127.0.0.1"))
        self.assertTrue(offer["fingerprint"].startswith("sha-256 "))
        code, error = yield alice.call("POST", "/sessions/%s/messages" % offer["id"],
                                       {"text": "too early"})
        self.assertEqual(code, 409)
        states = yield gatherResults([
            alice.ok("POST", "/sessions/%s/complete" % offer["id"],
                     {"path": answer["path"], "fingerprint": answer["fingerprint"]}),
            bob.ok("POST", "/sessions/%s/complete" % answer["id"],
                   {"path": offer["path"], "fingerprint": offer["fingerprint"]})])
        self.assertEqual([s["state"] for s in states], ["connected", "connected"])
        sent = yield alice.ok("POST", "/sessions/%s/messages" % offer["id"],
                              {"text": "héllo bob", "success_report": "yes"})
        payload = os.urandom(700 * 1024)
        source = self.mktemp()
        with open(source, "wb") as out:
            out.write(payload)
        delivered = yield alice.ok("POST", "/sessions/%s/files" % offer["id"],
                                   {"file": os.path.abspath(source)})
        events = yield bob.ok("GET", "/sessions/%s/events" % answer["id"])
        messages = [e for e in events if e["type"] == "message"]
        self.assertEqual([m["message_id"] for m in messages],
                         [sent["message_id"], delivered["message_id"]])
        self.assertEqual(messages[0]["text"], "héllo bob")
        with open(messages[1]["file"], "rb") as arrived:
            self.assertEqual(hashlib.sha256(arrived.read()).digest(),
                             hashlib.sha256(payload).digest())
        self.assertTrue(messages[1]["file"].endswith("-" + os.path.basename(source)))
        inbox = os.listdir(bob_service.options.inbox)
        self.assertEqual(len(inbox), 2)
        self.assertFalse([name for name in inbox if name.startswith(".")])
        progress = [e for e in (yield alice.ok("GET", "/sessions/%s/events?since=0"
                                                % offer["id"])) if e["type"] == "progress"]
        self.assertTrue(progress)
        later = yield bob.ok("GET", "/sessions/%s/events?since=%d"
                             % (answer["id"], events[-1]["seq"]))
        self.assertEqual(later, [])
        yield alice.ok("DELETE", "/sessions/%s" % offer["id"])
        while (yield bob.ok("GET", "/sessions/%s" % answer["id"]))["state"] != "closed":
            yield task.deferLater(reactor, 0.01, lambda: None)
        # Alice logged her traffic: start lines and headers, never bodies.
        self.assertTrue(any(line.startswith("out MSRP ") and " SEND\n  To-Path: " in line
                            for line in logged), logged[:3])
        self.assertTrue(any(line.startswith("in MSRP ") and " 200 OK" in line
                            for line in logged))
        self.assertFalse(any("héllo" in line for line in logged))

    @inlineCallbacks
    def test_errors(self):
        service = self.start("carol")
        client = ControlClient(service.control_port.getHost().port)
        code, body = yield client.call("GET", "/sessions/nosuch")
        self.assertEqual(code, 404)
        code, body = yield client.call("POST", "/sessions", {"setup": "sideways"})
        self.assertEqual(code, 400)
        code, body = yield client.call("GET", "/nowhere")
        self.assertEqual(code, 400)
        created = yield client.ok("POST", "/sessions", {"setup": "passive"})
        code, body = yield client.call("POST", "/sessions/%s/complete" % created["id"], {})
        self.assertEqual((code, body["error"]), (400, "'path' is required (a string)"))
        code, body = yield client.call("POST", "/sessions/%s/complete" % created["id"],
                                       {"path": "not a uri"})
        self.assertEqual(code, 400)
        listed = yield client.ok("GET", "/sessions")
        self.assertEqual([s["id"] for s in listed], [created["id"]])
        yield client.ok("DELETE", "/sessions/%s" % created["id"])
