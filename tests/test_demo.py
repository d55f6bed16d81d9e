"""The README's demo runs end to end (over real loopback TLS)."""

import io
import sys

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from msrplib import demo


class DemoTests(unittest.TestCase):
    @inlineCallbacks
    def test_demo_exchanges_messages_and_a_file(self):
        self.patch(demo, "FILE_SIZE", 300 * 1024)
        output = io.StringIO()
        self.patch(sys, "stdout", output)
        yield demo.run(reactor)
        text = output.getvalue()
        self.assertIn("bob   received: Hey Bob, are you there?", text)
        self.assertIn("alice received: Yes, I'm here!", text)
        self.assertIn("bob   received a 307200-byte application/octet-stream", text)
        self.assertIn("sha-256 of the file matches", text)
        self.assertTrue(text.rstrip().endswith("done"))
