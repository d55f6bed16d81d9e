"""The inbox keeps every message whole, under a name of its own, and tells the sender the
truth: directly, and through real sessions over loopback TCP."""

import errno
import os
import subprocess
import sys

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, maybeDeferred
from twisted.trial import unittest

from msrplib import inbox as inbox_module
from msrplib.errors import MSRPTransactionError
from msrplib.inbox import MAX_EXTENSION, Inbox, InboxReceiver, StoreFailed, file_name_of
from msrplib.protocol import Headers, MSRPData
from msrplib.session import IncomingMessage, MSRPSession, SessionSettings
from tests.helpers import bind_pair


def message(content_type="application/pdf", disposition=None, message_id="m1"):
    headers = Headers([("Message-ID", message_id), ("Byte-Range", "1-3/3"),
                       ("Content-Type", content_type)])
    if disposition is not None:
        headers.add("Content-Disposition", disposition)
    return IncomingMessage(MSRPData("abcd", method="SEND", headers=headers))


def at_once(function):
    """Run the blocking part of storing at once (the unit tests need no thread)."""
    return maybeDeferred(function)


def dead_pid():
    """The pid of a process that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def failing(error_number):
    def fail(*args, **kwargs):
        raise OSError(error_number, os.strerror(error_number))
    return fail


class InboxFileTests(unittest.TestCase):
    def setUp(self):
        self.inbox = Inbox(self.mktemp(), run_blocking=at_once)

    def listing(self):
        return sorted(os.listdir(self.inbox.directory))

    def test_nothing_under_the_final_name_until_committed(self):
        target = self.inbox.open("s1", message())
        target.writer.write(b"abc")
        [temporary] = self.listing()
        self.assertTrue(temporary.startswith(".msrp-%d-" % os.getpid()))
        self.assertTrue(temporary.endswith(".part"))
        final = target.commit()
        self.assertEqual(final.name, "s1-m1.pdf")
        self.assertEqual(final.read_bytes(), b"abc")
        self.assertEqual(self.listing(), ["s1-m1.pdf"])

    def test_discard_leaves_nothing(self):
        target = self.inbox.open("s1", message())
        target.writer.write(b"ab")
        target.discard()
        self.assertEqual(self.listing(), [])

    def test_names(self):
        self.assertEqual(file_name_of(message(disposition='attachment; filename="../../etc/x y"')),
                         "x_y")
        self.assertEqual(file_name_of(message(disposition="inline; filename=.hidden")), "hidden")
        self.assertIsNone(file_name_of(message()))
        named = self.inbox.open("s/2", message("text/plain", 'attachment; filename="a.txt"',
                                               message_id="m/3"))
        self.assertEqual(named.commit().name, "s_2-m_3-a.txt")
        self.assertEqual(self.inbox.open("s", message("x/unknown")).commit().name, "s-m1.bin")

    def test_the_same_message_id_twice_keeps_both(self):
        paths = []
        for body in (b"first", b"second"):
            target = self.inbox.open("s", message("text/plain", message_id="same"))
            target.writer.write(body)
            paths.append(target.commit())
        self.assertNotEqual(paths[0], paths[1])
        self.assertEqual([p.read_bytes() for p in paths], [b"first", b"second"])
        self.assertEqual(paths[0].name, "s-same.txt")
        self.assertTrue(paths[1].name.startswith("s-same-") and paths[1].name.endswith(".txt"))

    def test_ids_and_file_names_that_make_the_same_name_keep_both(self):
        named = self.inbox.open("s", message("text/plain", 'attachment; filename="b.txt"',
                                             message_id="aaaa"))
        plain = self.inbox.open("s", message("text/plain", message_id="aaaa-b"))
        named.writer.write(b"the file b.txt")
        plain.writer.write(b"the message aaaa-b")
        paths = [named.commit(), plain.commit()]
        self.assertEqual(len(set(paths)), 2)
        self.assertEqual([p.read_bytes() for p in paths],
                         [b"the file b.txt", b"the message aaaa-b"])

    def test_two_in_flight_whose_ids_are_made_safe_alike(self):
        first = self.inbox.open("s", message("text/plain", message_id="xx/yy"))
        second = self.inbox.open("s", message("text/plain", message_id="xx_yy"))
        self.assertNotEqual(first.temporary, second.temporary)
        for offset in range(0, 4000, 1000):
            first.writer.seek(offset)
            first.writer.write(b"1" * 1000)
            second.writer.seek(offset)
            second.writer.write(b"2" * 1000)
        paths = [second.commit(), first.commit()]
        self.assertEqual([p.read_bytes() for p in paths], [b"2" * 4000, b"1" * 4000])
        self.assertEqual(len(self.listing()), 2)

    def test_long_names_are_capped_and_keep_the_extension(self):
        long_id = "i" * 5000
        target = self.inbox.open("n" * 300, message(
            "image/jpeg", 'attachment; filename="%s.jpeg"' % ("f" * 400), message_id=long_id))
        name = target.commit().name
        self.assertLessEqual(len(name.encode()), 255)
        self.assertTrue(name.endswith(".jpeg"))
        for _ in range(2):  # the suffix of a name that is taken fits as well
            again = self.inbox.open("n" * 300, message(
                "image/jpeg", 'attachment; filename="%s.jpeg"' % ("f" * 400),
                message_id=long_id)).commit().name
            self.assertLessEqual(len(again.encode()), 255)
        # An "extension" longer than MAX_EXTENSION is part of the name, and capped with it.
        huge_extension = self.inbox.open("s", message(
            "text/plain", 'attachment; filename="x.%s"' % ("e" * 300))).commit().name
        self.assertTrue(huge_extension.startswith("s-m1-x.eee"))
        self.assertLessEqual(len(huge_extension), 255)
        short_enough = "x." + "e" * (MAX_EXTENSION - 1)
        self.assertTrue(self.inbox.open("s", message(
            "text/plain", 'attachment; filename="%s%s"' % ("f" * 400, short_enough[1:]))
        ).commit().name.endswith(short_enough[1:]))

    def test_any_message_id_stays_in_the_inbox(self):
        for message_id in ["../../../../tmp/escape", "/etc/passwd", "..", ".", "a\x00b",
                           "\udcff\udcfe", "é" * 40, "", "C:\\x"]:
            target = self.inbox.open("..", message("text/plain", message_id=message_id))
            target.writer.write(b"x")
            path = target.commit()
            self.assertEqual(path.parent, self.inbox.directory)
            self.assertFalse(path.name.startswith("."))
        self.assertEqual(len(self.listing()), 9)

    def test_leftovers_of_a_killed_process_are_removed_at_start(self):
        directory = self.inbox.directory
        dead = directory / (".msrp-%d-abcdef.part" % dead_pid())
        running = directory / (".msrp-%d-ghijkl.part" % os.getpid())
        kept = directory / "s-m1.txt"
        for path in (dead, running, kept):
            path.write_bytes(b"x")
        Inbox(str(directory))
        self.assertEqual(self.listing(), [running.name, kept.name])

    def assertStoreFails(self, target, reason):
        with self.assertRaises(StoreFailed) as caught:
            target.commit()
        self.assertEqual(caught.exception.code, 413)
        self.assertIn(reason, caught.exception.comment)
        self.assertEqual(self.listing(), [])

    def test_disk_full_while_syncing(self):
        target = self.inbox.open("s", message())
        target.writer.write(b"abc")
        self.patch(inbox_module.os, "fsync", failing(errno.ENOSPC))
        self.assertStoreFails(target, "No space left on device")

    def test_name_too_long_or_no_permission_when_linking(self):
        for error_number, reason in [(errno.ENAMETOOLONG, "File name too long"),
                                     (errno.EACCES, "Permission denied")]:
            target = self.inbox.open("s", message())
            target.writer.write(b"abc")
            self.patch(inbox_module.os, "link", failing(error_number))
            self.assertStoreFails(target, reason)

    def test_a_failed_write_fails_the_message(self):
        target = self.inbox.open("s", message())
        target.writer.write(b"abc")
        real_file = target.writer.file

        class FullDisk:
            def seek(self, offset):
                real_file.seek(offset)

            def write(self, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        target.writer.file = FullDisk()
        target.writer.write(b"def")  # kept, not raised into the session
        target.writer.write(b"ghi")
        target.writer.file = real_file
        self.assertStoreFails(target, "No space left on device")

    def test_a_huge_offset_fails_the_message(self):
        target = self.inbox.open("s", message())
        target.writer.seek(2 ** 70)
        target.writer.write(b"abc")
        self.assertStoreFails(target, "File too large")

    def test_no_temporary_file_fails_the_message(self):
        self.patch(inbox_module.tempfile, "mkstemp", failing(errno.EMFILE))
        target = self.inbox.open("s", message())
        target.writer.write(b"abc")
        self.assertStoreFails(target, "Too many open files")


class Recorder(InboxReceiver):
    def __init__(self, inbox, namespace="s"):
        super().__init__(inbox, namespace)
        self.filed_paths = []
        self.discarded_reasons = []

    def filed(self, message, path):
        self.filed_paths.append(path)

    def discarded(self, message, reason):
        self.discarded_reasons.append(reason)


class InboxOverSessionsTests(unittest.TestCase):
    """The inbox behind a real session on loopback TCP, storing in the thread pool."""

    @inlineCallbacks
    def sessions(self, inbox):
        alice_link, bob_link = yield bind_pair(self)
        settings = SessionSettings(keepalive_interval=0)
        receiver = Recorder(inbox)
        alice = MSRPSession(alice_link, settings=settings)
        MSRPSession(bob_link, receiver=receiver, settings=settings)
        return alice, receiver

    def listing(self, inbox):
        return sorted(os.listdir(inbox.directory))

    @inlineCallbacks
    def test_the_success_report_waits_for_the_final_name(self):
        pending = []

        def held(function):
            pending.append(function)
            result = Deferred()
            pending.append(result)
            return result

        inbox = Inbox(self.mktemp(), run_blocking=held)
        alice, receiver = yield self.sessions(inbox)
        sent = alice.send_message(b"x" * 200000, "application/octet-stream",
                                  success_report="yes", chunk_size=16384)
        while not pending:
            yield deferLater(0.01)
        yield deferLater(0.1)
        self.assertNoResult(sent)
        [temporary] = self.listing(inbox)
        self.assertTrue(temporary.startswith(".msrp-"))
        commit, result = pending
        result.callback(commit())
        yield sent
        [final] = self.listing(inbox)
        self.assertEqual((inbox.directory / final).read_bytes(), b"x" * 200000)
        self.assertEqual(receiver.filed_paths, [inbox.directory / final])

    @inlineCallbacks
    def test_a_failed_store_is_a_failure_report_and_leaves_nothing(self):
        inbox = Inbox(self.mktemp())
        alice, receiver = yield self.sessions(inbox)
        self.patch(inbox_module.os, "link", failing(errno.ENOSPC))
        sent = alice.send_message(b"y" * 100000, "application/octet-stream",
                                  success_report="yes", chunk_size=16384)
        error = yield self.assertFailure(sent, MSRPTransactionError)
        self.assertEqual(error.code, 413)
        self.assertIn("No space left on device", error.comment)
        self.assertEqual(self.listing(inbox), [])
        self.assertEqual(len(receiver.discarded_reasons), 1)
        self.flushLoggedErrors(StoreFailed)

    @inlineCallbacks
    def test_storing_goes_on_after_a_store_that_raised(self):
        calls = []

        def flaky(function):
            calls.append(function)
            if len(calls) == 1:
                raise StoreFailed("the thread pool is gone")
            return maybeDeferred(function)

        inbox = Inbox(self.mktemp(), run_blocking=flaky)
        alice, receiver = yield self.sessions(inbox)
        first = alice.send_message(b"one", "text/plain", success_report="yes")
        second = alice.send_message(b"two", "text/plain", success_report="yes")
        error = yield self.assertFailure(first, MSRPTransactionError)
        self.assertEqual(error.code, 413)
        yield second
        [name] = self.listing(inbox)
        self.assertEqual((inbox.directory / name).read_bytes(), b"two")
        self.flushLoggedErrors(StoreFailed)

    @inlineCallbacks
    def test_every_message_arrives_intact_under_its_own_name(self):
        inbox = Inbox(self.mktemp())
        alice, receiver = yield self.sessions(inbox)
        bodies = {("same1234", None): b"A" * 70000,
                  ("aaaa", "b.txt"): b"C" * 70000,
                  ("aaaa-b", None): b"D" * 70000,
                  ("xx%yy", None): b"E" * 70000,
                  ("xx=yy", None): b"F" * 70000}
        sending = []
        for (message_id, name), body in bodies.items():
            headers = {}
            if name == "b.txt":
                headers["Content-Disposition"] = 'attachment; filename="b.txt"'
            # Small chunks, all queued at once: the messages' chunks interleave, so the
            # messages are in flight at the same time.
            sending.append(alice.send_message(body, "text/plain", message_id=message_id,
                                              success_report="yes", chunk_size=4096,
                                              headers=headers))
        yield gatherResults(sending)
        # The same Message-ID once more, once the first is filed.
        yield alice.send_message(b"B" * 70000, "text/plain", message_id="same1234",
                                 success_report="yes", chunk_size=4096)
        names = self.listing(inbox)
        self.assertEqual(len(names), 6, names)
        self.assertEqual(sorted((inbox.directory / name).read_bytes() for name in names),
                         sorted(list(bodies.values()) + [b"B" * 70000]))
        self.assertEqual(len(set(receiver.filed_paths)), 6)


def deferLater(seconds):
    from twisted.internet import reactor, task
    return task.deferLater(reactor, seconds, lambda: None)


def open_files():
    return len(os.listdir("/proc/self/fd"))


class WaitingStoreTests(unittest.TestCase):
    """Messages that complete faster than the disk keeps up: no file held open while they
    wait, a bounded queue, and one directory sync for those that waited together."""

    @inlineCallbacks
    def test_a_burst_of_messages_holds_no_files_and_is_bounded(self):
        pending = []

        def held(function):
            result = Deferred()
            pending.append((function, result))
            return result

        inbox = Inbox(self.mktemp(), run_blocking=held)
        alice_link, bob_link = yield bind_pair(self)
        receiver = Recorder(inbox)
        receiver.max_waiting = 50
        settings = SessionSettings(keepalive_interval=0)
        alice = MSRPSession(alice_link, settings=settings)
        MSRPSession(bob_link, receiver=receiver, settings=settings)
        before = open_files()
        sent = [alice.send_message(b"%d" % number, "text/plain", success_report="yes")
                for number in range(80)]
        refused = []
        for result in sent:
            result.addErrback(lambda failure: refused.append(failure.value.code))
        while len(refused) < 29:  # 1 being stored, 50 waiting, 29 refused
            yield deferLater(0.01)
        self.assertEqual(set(refused), {413})
        self.assertLess(open_files() - before, 5)  # not one per waiting message
        self.assertEqual(len(pending), 1)
        syncs = []
        self.patch(inbox_module, "sync_directory",
                   lambda directory: syncs.append(directory))
        while pending:
            function, result = pending.pop(0)
            result.callback(function())
            yield deferLater(0.01)
        self.assertEqual(len(receiver.filed_paths), 51)
        self.assertEqual(len(syncs), 2)  # the first alone, then the 50 that waited
        self.assertEqual(sorted((inbox.directory / path).read_bytes()
                                for path in os.listdir(inbox.directory)),
                         sorted(b"%d" % number for number in range(51)))
