"""The msrp command line, run as a person runs it: separate processes on loopback."""

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from msrplib.cli import explain, parser
from msrplib.connect import ConnectorDirect
from msrplib.protocol import URI
from msrplib.sdp import parse_path_attribute
from msrplib.session import MSRPSession, SessionSettings
from tests.relay import KamailioRelay

ROOT = Path(__file__).resolve().parent.parent


def msrp(*arguments, **options):
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "msrplib"] + list(arguments),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, **options)


class CommandLineTests(unittest.TestCase):
    def listen(self, *extra, inbox=None):
        inbox = inbox or os.path.abspath(self.mktemp())
        listener = msrp("listen", "--inbox", inbox, *extra)
        self.addCleanup(listener.wait)
        self.addCleanup(listener.kill)  # cleanups run last first: kill, then wait
        lines = {}
        for _ in range(2 if "--tls" in extra else 1):
            name, _, value = listener.stdout.readline().strip().partition(":")
            lines[name] = value
        return listener, lines, inbox

    def source_file(self, size, sparse=False):
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as out:
            if sparse:
                out.truncate(size)
            else:
                out.write(os.urandom(size))
        return path

    def assertFailsWithOneLine(self, process, *expected):
        _, err = process.communicate(timeout=30)
        self.assertEqual(process.returncode, 1, err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.startswith("msrp: error: "), err)
        for text in expected:
            self.assertIn(text, err)
        return err

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

    def test_no_size_limit_by_default(self):
        size = 64 * 1024 * 1024 + 1  # past what a session takes by default
        listener, lines, inbox = self.listen()
        sender = msrp("send", lines["a=path"], "--file", self.source_file(size, sparse=True))
        _, err = sender.communicate(timeout=120)
        self.assertEqual(sender.returncode, 0, err)
        listener.communicate(timeout=30)
        [name] = os.listdir(inbox)
        self.assertEqual(os.path.getsize(os.path.join(inbox, name)), size)

    def test_each_run_files_under_its_own_name(self):
        inbox = os.path.abspath(self.mktemp())
        names = []
        for _ in range(2):
            listener, lines, _ = self.listen(inbox=inbox)
            sender = msrp("send", lines["a=path"], "--text", "same text")
            sender.communicate(timeout=30)
            listener.communicate(timeout=30)
            run_id = URI.parse(lines["a=path"]).session_id
            mine = [name for name in os.listdir(inbox) if name.startswith(run_id + "-")]
            self.assertEqual(len(mine), 1)
            names += mine
        self.assertEqual(sorted(os.listdir(inbox)), sorted(names))

    @inlineCallbacks
    def test_what_the_peer_sends_is_escaped(self):
        listener, lines, _ = self.listen()
        remote = parse_path_attribute(lines["a=path"])
        connector = ConnectorDirect()
        yield connector.prepare(URI(host="127.0.0.1"))
        transport = yield connector.complete(remote)
        session = MSRPSession(transport, settings=SessionSettings(keepalive_interval=0))
        # A hostile peer's chunk, made by hand: send_message refuses such a Content-Type.
        yield session.deliver_chunk(transport.make_chunk(
            data=b"\x1b]0;owned\x07\x1b[2Jhi\rfake line\n\xff\xfe done",
            content_type="text/plain; charset=\x1b[31m"))
        yield session.shutdown()
        out, _ = listener.communicate(timeout=30)
        self.assertIn("\\x1b]0;owned\\x07\\x1b[2Jhi\\rfake line\\n\\xff\\xfe done\n", out)
        for character in "\x1b\r\x07\ufffd":
            self.assertNotIn(character, out)

    def test_wrong_fingerprint_fails(self):
        listener, lines, _ = self.listen("--tls")
        wrong = "sha-256 " + ":".join(["AB"] * 32)
        sender = msrp("send", lines["a=path"], "--text", "x", "--fingerprint", wrong)
        self.assertFailsWithOneLine(sender, "--fingerprint")

    def test_connection_refused(self):
        sender = msrp("send", "msrp://127.0.0.1:1/abcdefgh;tcp", "--text", "x")
        self.assertFailsWithOneLine(sender, "could not connect", "refused")

    def test_the_peer_refuses_the_session(self):
        listener, lines, _ = self.listen()
        uri = URI.parse(lines["a=path"])
        sender = msrp("send", "msrp://127.0.0.1:%d/notthesession;tcp" % uri.port,
                      "--text", "x")
        self.assertFailsWithOneLine(sender, "refused the session", "481")

    def test_the_peer_refuses_a_message_too_large(self):
        listener, lines, inbox = self.listen("--max-size", "1000")
        sender = msrp("send", lines["a=path"], "--file", self.source_file(5000))
        self.assertFailsWithOneLine(sender, "refused the message", "413")
        listener.communicate(timeout=30)
        self.assertEqual(os.listdir(inbox), [])

    def test_a_file_that_cannot_be_read(self):
        missing = os.path.abspath(self.mktemp())
        sender = msrp("send", "msrp://127.0.0.1:1/abcdefgh;tcp", "--file", missing)
        self.assertFailsWithOneLine(sender, missing, "No such file")
        sender = msrp("send", "not a path", "--text", "x")
        self.assertFailsWithOneLine(sender)

    def test_the_relay_refuses_the_credentials(self):
        relay = KamailioRelay()
        relay.start()
        self.addCleanup(relay.stop)
        password = self.mktemp()
        with open(password, "w") as out:
            out.write("not-alice-secret")
        command = msrp("auth", "--relay", "msrp://127.0.0.1:%d;tcp" % relay.port,
                       "--username", "alice", "--password-file", password)
        self.assertFailsWithOneLine(command, "relay refused", "alice")

    def test_usage(self):
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            self.assertRaises(SystemExit, parser().parse_args, ["send", "msrp://h/s;tcp"])
        self.assertIn("one of the arguments --text --file is required", errors.getvalue())
        args = parser().parse_args(["auth", "--relay", "msrp://r;tcp", "--username", "u"])
        self.assertEqual((args.command, args.username), ("auth", "u"))
        self.assertIsNone(parser().parse_args(["listen"]).max_size)

    def test_bugs_are_not_explained_away(self):
        self.assertIsNone(explain(AttributeError("a bug")))
        self.assertIsNone(explain(KeyError("a bug")))
