"""The msrp command line, run as a person runs it: separate processes on loopback."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from twisted.trial import unittest

from msrplib.cli import parser

ROOT = Path(__file__).resolve().parent.parent


def msrp(*arguments, **options):
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "msrplib"] + list(arguments),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, **options)


class CommandLineTests(unittest.TestCase):
    def listen(self, *extra):
        inbox = os.path.abspath(self.mktemp())
        listener = msrp("listen", "--inbox", inbox, *extra)
        self.addCleanup(listener.kill)
        lines = {}
        for _ in range(2 if "--tls" in extra else 1):
            name, _, value = listener.stdout.readline().strip().partition(":")
            lines[name] = value
        return listener, lines, inbox

    def test_text_over_tls(self):
        listener, lines, _ = self.listen("--tls")
        sender = msrp("send", lines["a=path"], "--text", "hello from the command line",
                      "--fingerprint", lines["a=fingerprint"])
        out, err = sender.communicate(timeout=30)
        self.assertEqual(sender.returncode, 0, err)
        self.assertTrue(out.startswith("delivered "))
        rest, _ = listener.communicate(timeout=30)
        self.assertIn("hello from the command line\n", rest)

    def test_file_goes_to_the_inbox(self):
        listener, lines, inbox = self.listen()
        payload = os.urandom(300 * 1024)
        source = self.mktemp()
        with open(source, "wb") as out:
            out.write(payload)
        sender = msrp("send", lines["a=path"], "--file", source)
        _, err = sender.communicate(timeout=30)
        self.assertEqual(sender.returncode, 0, err)
        rest, _ = listener.communicate(timeout=30)
        self.assertIn("received 307200 bytes of application/octet-stream", rest)
        [name] = os.listdir(inbox)
        with open(os.path.join(inbox, name), "rb") as arrived:
            self.assertEqual(hashlib.sha256(arrived.read()).digest(),
                             hashlib.sha256(payload).digest())

    def test_wrong_fingerprint_fails(self):
        listener, lines, _ = self.listen("--tls")
        wrong = "sha-256 " + ":".join(["AB"] * 32)
        sender = msrp("send", lines["a=path"], "--text", "x", "--fingerprint", wrong)
        _, err = sender.communicate(timeout=30)
        self.assertNotEqual(sender.returncode, 0)
        self.assertIn("FingerprintMismatch", err)

    def test_usage(self):
        self.assertRaises(SystemExit, parser().parse_args, ["send", "msrp://h/s;tcp"])
        args = parser().parse_args(["auth", "--relay", "msrp://r;tcp", "--username", "u"])
        self.assertEqual((args.command, args.username), ("auth", "u"))
