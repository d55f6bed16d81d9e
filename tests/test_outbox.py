"""The outbox opens regular files under its directories, and nothing else."""

import os
import shutil
import socket
import stat
import tempfile

from twisted.trial import unittest

from msrplib import outbox as outbox_module
from msrplib.outbox import Outbox, OutboxRefused, attachment_header


class OutboxTests(unittest.TestCase):
    def setUp(self):
        self.root = os.path.realpath(self.mktemp())
        self.outbox_directory = os.path.join(self.root, "outbox")
        self.outside = os.path.join(self.root, "outside")
        os.makedirs(os.path.join(self.outbox_directory, "inner"))
        os.makedirs(self.outside)
        self.write(os.path.join(self.outbox_directory, "holiday.jpg"), b"photo")
        self.write(os.path.join(self.outbox_directory, "inner", "notes.txt"), b"notes")
        self.secret = os.path.join(self.outside, "secret")
        self.write(self.secret, b"secret")
        self.outbox = Outbox([self.outbox_directory])
        self.opened = []
        real_open = os.open

        def spy(path, *args, **kwargs):
            self.opened.append(os.fsdecode(path))
            return real_open(path, *args, **kwargs)

        self.patch(outbox_module.os, "open", spy)

    def write(self, path, data):
        with open(path, "wb") as out:
            out.write(data)

    def inside(self, *parts):
        return os.path.join(self.outbox_directory, *parts)

    def assertRefused(self, path, status):
        error = self.assertRaises(OutboxRefused, self.outbox.open, path)
        self.assertEqual(error.status, status, str(error))
        return error

    def assertNeverOpened(self, name):
        self.assertNotIn(name, [os.path.basename(p) for p in self.opened])

    def test_regular_files_inside_are_opened(self):
        with self.outbox.open(self.inside("holiday.jpg")) as source:
            self.assertEqual(source.read(), b"photo")
        with self.outbox.open(self.inside("inner", "notes.txt")) as source:
            self.assertEqual(source.read(), b"notes")

    def test_without_an_outbox_nothing_is_sent(self):
        error = self.assertRaises(OutboxRefused, Outbox([]).open, self.inside("holiday.jpg"))
        self.assertEqual(error.status, 403)
        self.assertEqual(self.opened, [])

    def test_paths_outside_are_refused(self):
        self.assertRefused(self.secret, 403)
        self.assertRefused("/etc/passwd", 403)
        self.assertRefused(self.outbox_directory, 403)
        self.assertNeverOpened("secret")
        self.assertNeverOpened("passwd")

    def test_relative_paths_and_dot_dot_are_refused(self):
        self.assertRefused("holiday.jpg", 400)
        self.assertRefused(self.inside("inner", "..", "holiday.jpg"), 400)
        self.assertRefused(self.inside("..", "outside", "secret"), 400)
        self.assertEqual(self.opened, [])

    def test_a_symlink_leading_out_is_refused(self):
        os.symlink(self.secret, self.inside("link"))
        os.symlink(self.outside, self.inside("directory-link"))
        self.assertRefused(self.inside("link"), 403)
        self.assertRefused(self.inside("directory-link", "secret"), 403)
        self.assertNeverOpened("secret")

    def test_a_symlink_within_the_outbox_is_followed(self):
        os.symlink(self.inside("inner", "notes.txt"), self.inside("link"))
        with self.outbox.open(self.inside("link")) as source:
            self.assertEqual(source.read(), b"notes")

    def test_a_fifo_is_never_opened(self):
        os.mkfifo(self.inside("pipe"))
        self.assertRefused(self.inside("pipe"), 400)
        self.assertNeverOpened("pipe")

    def test_a_socket_or_a_directory_is_never_opened(self):
        short = tempfile.mkdtemp(prefix="outbox-")  # a socket's path must be short
        self.addCleanup(shutil.rmtree, short)
        listener = socket.socket(socket.AF_UNIX)
        self.addCleanup(listener.close)
        listener.bind(os.path.join(short, "socket"))
        error = self.assertRaises(OutboxRefused, Outbox([short]).open,
                                  os.path.join(short, "socket"))
        self.assertEqual(error.status, 400)
        self.assertNeverOpened("socket")
        self.assertRefused(self.inside("inner"), 400)

    def test_a_device_is_never_opened(self):
        null = os.stat("/dev/null")
        try:
            os.mknod(self.inside("device"), stat.S_IFCHR | 0o600, null.st_rdev)
        except PermissionError:
            raise unittest.SkipTest("making a device node needs root") from None
        self.assertRefused(self.inside("device"), 400)
        self.assertNeverOpened("device")

    def test_a_file_swapped_while_opened_is_refused(self):
        real_stat = os.stat
        other = real_stat(self.secret)

        def swapped(path, *args, **kwargs):
            if path == "holiday.jpg":
                return other
            return real_stat(path, *args, **kwargs)

        self.patch(outbox_module.os, "stat", swapped)
        self.assertRefused(self.inside("holiday.jpg"), 403)

    def test_missing_files_and_bad_names(self):
        self.assertIn("No such file", str(self.assertRefused(self.inside("nothing"), 400)))
        self.assertRefused(self.inside("bad\ud800name"), 400)
        self.assertRefused(self.inside("nul\x00name"), 400)
        self.assertRefused(self.inside("not-utf-8-\udcff"), 400)


class AttachmentHeaderTests(unittest.TestCase):
    def test_names_cannot_break_the_header(self):
        self.assertEqual(attachment_header("holiday.jpg"), 'attachment; filename="holiday.jpg"')
        self.assertEqual(attachment_header('a"b\\c.txt'),
                         'attachment; filename="a\\"b\\\\c.txt"')
        self.assertEqual(attachment_header("x\r\nTo-Path: msrp://evil\x1b.txt"),
                         "attachment; filename*=utf-8''x%0D%0ATo-Path%3A%20msrp%3A%2F%2Fevil"
                         "%1B.txt")
        self.assertEqual(attachment_header("été.txt"), 'attachment; filename="été.txt"')

    def test_the_receiver_reads_back_every_name_as_it_was(self):
        from msrplib.protocol import Headers, MSRPData
        from msrplib.session import IncomingMessage
        for name in ["holiday.jpg", 'a"b\\c.txt', "x\r\nTo-Path: msrp://evil\x1b.txt",
                     "été.txt", " lead and trail ", "line\u2028break", "a;b=c"]:
            header = attachment_header(name)
            self.assertTrue(header.isprintable(), header)
            chunk = MSRPData("t1", method="SEND",
                             headers=Headers([("Content-Disposition", header)]))
            self.assertEqual(IncomingMessage(chunk).file_name, name)
