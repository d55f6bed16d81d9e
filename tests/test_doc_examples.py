"""The examples in the documentation run: doc/examples/sip_walk.py, direct over TLS (the
relay variant runs in tests/test_relay_kamailio.py), and doc/examples/chat_walk.py."""

import importlib.util
import io
import os
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

EXAMPLES = Path(__file__).resolve().parent.parent / "doc" / "examples"


def load(name):
    """A module of doc/examples/ (they are not a package: the docs include them whole)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SipWalkTests(unittest.TestCase):
    @inlineCallbacks
    def test_chat(self):
        alice_heard, bob_heard = yield load("sip_walk").chat()
        self.assertEqual((alice_heard, bob_heard), (["Hello, Alice"], ["Hello, Bob"]))

    @inlineCallbacks
    def test_file_transfer(self):
        body = os.urandom(1024 * 1024 + 3)
        destination = open(self.mktemp(), "w+b")
        self.addCleanup(destination.close)
        message = yield load("sip_walk").file_transfer(io.BytesIO(body), destination)
        destination.seek(0)
        self.assertEqual((message.size, destination.read()), (len(body), body))


class ChatWalkTests(unittest.TestCase):
    @inlineCallbacks
    def test_chat(self):
        bob_saw, typing, notified = yield load("chat_walk").chat()
        self.assertEqual(bob_saw, ["Hello, Bob", "How are you?"])
        self.assertEqual(typing, ["active", "idle"])
        self.assertEqual(notified, [("Hello, Bob", "delivered"), ("Hello, Bob", "displayed"),
                                    ("How are you?", "delivered"),
                                    ("How are you?", "displayed")])
