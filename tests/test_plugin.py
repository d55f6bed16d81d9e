"""The twistd plugin and its service: options, and two real ``twistd msrp`` processes
driven through their JSON control APIs over loopback."""

import hashlib
import json
import os
from io import BytesIO

from twisted.application.service import IServiceMaker
from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from msrplib.controlaccess import DEFAULT_TOKEN_FILE
from msrplib.daemon import make_service
from tests.service_process import started


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
        first, second = self.mktemp(), self.mktemp()
        os.makedirs(first)
        os.makedirs(second)
        options.parseOptions(["--control", "tcp:0:interface=127.0.0.1", "--tls",
                              "--inbox", "somewhere", "--traffic-log", "--outbox", first,
                              "--outbox", second, "--max-sessions", "7"])
        self.assertEqual((options["control"], options["tls"], options["inbox"]),
                         ("tcp:0:interface=127.0.0.1", True, "somewhere"))
        self.assertEqual(options["host"], "127.0.0.1")
        self.assertEqual(options["outbox"], [first, second])
        self.assertRaises(usage.UsageError, plugin.options().parseOptions,
                          ["--outbox", os.path.join(first, "missing")])
        self.assertEqual(options["control-token-file"], "msrp-control-token")
        self.assertIn("control API", options.__str__())
        self.assertIn("--outbox", options.__str__())
        self.assertEqual(find_plugin().options()["outbox"], [])

    def test_bad_options(self):
        options = find_plugin().options()
        self.assertRaises(usage.UsageError, options.parseOptions,
                          ["--relay", "msrp://127.0.0.1:2855;tcp"])
        for bad in [["--chunk-size", "big"], ["--max-sessions", "0"],
                    ["--session-expiry", "-1"], ["--max-request-size", "1e9"]]:
            self.assertRaises(usage.UsageError, find_plugin().options().parseOptions, bad)

    def test_relay_options_make_relay_settings(self):
        options = find_plugin().options()
        password = self.mktemp()
        with open(password, "w") as out:
            out.write("s3cret\n")
        options.parseOptions(["--relay", "msrps://relay.example.com:9000;tcp",
                              "--username", "alice", "--password-file", password,
                              "--control-token-file", self.mktemp()])
        service = make_service(options)
        relay = service.endpoint.options.relay
        self.assertEqual((relay.host, relay.port, relay.use_tls, relay.username,
                          relay.password, relay.domain),
                         ("relay.example.com", 9000, True, "alice", "s3cret",
                          "relay.example.com"))

    def test_password_from_environment(self):
        self.patch(os, "environ", dict(os.environ, MSRP_PASSWORD="from-env"))
        options = find_plugin().options()
        options.parseOptions(["--relay", "msrp://r.example.com;tcp", "--username", "bob",
                              "--control-token-file", self.mktemp()])
        self.assertEqual(make_service(options).endpoint.options.relay.password, "from-env")



class ControlClient:
    """A control API client for a service started in this process (with twisted.web's
    ``Agent``). ``token`` defaults to the one in the default token file of the working
    directory, which a service made from the plugin's options without
    ``--control-token-file`` uses."""

    def __init__(self, port, token=None):
        if token is None:
            with open(DEFAULT_TOKEN_FILE) as source:
                token = source.read().strip()
        self.base = "http://127.0.0.1:%d" % port
        self.token = token
        self.agent = Agent(reactor)

    @inlineCallbacks
    def call(self, method, path, body=None):
        headers = Headers({"Authorization": ["Bearer %s" % self.token]})
        producer = None
        if body is not None:
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
            headers.addRawHeader("Content-Type", "application/json")
        response = yield self.agent.request(method.encode(), (self.base + path).encode(),
                                            headers, producer)
        data = yield readBody(response)
        return response.code, json.loads(data)

    @inlineCallbacks
    def ok(self, method, path, body=None):
        code, answer = yield self.call(method, path, body)
        assert code == 200, (code, answer)
        return answer


class InProcessServiceTests(unittest.TestCase):
    @inlineCallbacks
    def test_a_service_made_from_the_options(self):
        options = find_plugin().options()
        options.parseOptions(["--control", "tcp:0:interface=127.0.0.1",
                              "--inbox", os.path.abspath(self.mktemp())])
        service = find_plugin().makeService(options)
        service.startService()
        self.addCleanup(service.stopService)
        yield task.deferLater(reactor, 0, lambda: None)
        client = ControlClient(service.control.port.getHost().port)
        self.assertEqual(client.token, service.control.token)
        self.assertEqual((yield client.ok("GET", "/"))["sessions"], 0)
        code, _ = yield ControlClient(service.control.port.getHost().port,
                                      "not-the-token-at-all").call("GET", "/")
        self.assertEqual(code, 401)


class ServiceTests(unittest.TestCase):
    """Alice's and Bob's ``twistd msrp`` exchange a message and a file over TLS."""

    @inlineCallbacks
    def test_message_and_file_through_the_control_api(self):
        outbox = os.path.abspath(self.mktemp())
        os.makedirs(outbox)
        payload = os.urandom(700 * 1024)
        source = os.path.join(outbox, "holiday.bin")
        with open(source, "wb") as out:
            out.write(payload)
        alice = started(self, "--tls", "--traffic-log", "--outbox", outbox)
        bob = started(self, "--tls")
        self.assertEqual((yield alice.ok("GET", "/"))["service"], "msrplib")
        offer = yield alice.ok("POST", "/sessions", {"setup": "active"})
        answer = yield bob.ok("POST", "/sessions", {"setup": "passive"})
        self.assertTrue(offer["path"].startswith("msrps://127.0.0.1"))
        self.assertTrue(offer["fingerprint"].startswith("sha-256 "))
        response = yield alice.request("POST", "/sessions/%s/messages" % offer["id"],
                                       {"text": "too early"})
        self.assertEqual(response.status, 409)
        states = yield gatherResults([
            alice.ok("POST", "/sessions/%s/complete" % offer["id"],
                     {"path": answer["path"], "fingerprint": answer["fingerprint"]}),
            bob.ok("POST", "/sessions/%s/complete" % answer["id"],
                   {"path": offer["path"], "fingerprint": offer["fingerprint"]})])
        self.assertEqual([s["state"] for s in states], ["connected", "connected"])
        sent = yield alice.ok("POST", "/sessions/%s/messages" % offer["id"],
                              {"text": "héllo bob", "success_report": "yes"})
        delivered = yield alice.ok("POST", "/sessions/%s/files" % offer["id"],
                                   {"file": source})
        events = yield bob.ok("GET", "/sessions/%s/events" % answer["id"])
        messages = [e for e in events if e["type"] == "message"]
        self.assertEqual([m["message_id"] for m in messages],
                         [sent["message_id"], delivered["message_id"]])
        self.assertEqual(messages[0]["text"], "héllo bob")
        with open(messages[1]["file"], "rb") as arrived:
            self.assertEqual(hashlib.sha256(arrived.read()).digest(),
                             hashlib.sha256(payload).digest())
        self.assertTrue(messages[1]["file"].endswith("-holiday.bin"))
        self.assertEqual(os.path.dirname(messages[1]["file"]), str(bob.inbox))
        inbox = os.listdir(bob.inbox)
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
        log = alice.log()
        self.assertRegex(log, r"out MSRP \S+ SEND\n\s+To-Path: ")
        self.assertRegex(log, r"in MSRP \S+ 200 OK")
        self.assertNotIn("héllo", log)
