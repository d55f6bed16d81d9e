"""The inbox files messages atomically and names them safely."""

import os

from twisted.trial import unittest

from msrplib.inbox import Inbox, file_name_of
from msrplib.protocol import Headers, MSRPData
from msrplib.session import IncomingMessage


def message(content_type="application/pdf", disposition=None, message_id="m1"):
    headers = Headers([("Message-ID", message_id), ("Byte-Range", "1-3/3"),
                       ("Content-Type", content_type)])
    if disposition is not None:
        headers.add("Content-Disposition", disposition)
    return IncomingMessage(MSRPData("abcd", method="SEND", headers=headers))


class InboxTests(unittest.TestCase):
    def setUp(self):
        self.inbox = Inbox(self.mktemp())

    def test_nothing_under_the_final_name_until_committed(self):
        target = self.inbox.open("s1", message())
        target.file.write(b"abc")
        self.assertEqual([p.name for p in self.inbox.directory.iterdir()], [".s1-m1.part"])
        final = target.commit()
        self.assertEqual(final.name, "s1-m1.pdf")
        self.assertEqual(final.read_bytes(), b"abc")
        self.assertEqual(os.listdir(self.inbox.directory), ["s1-m1.pdf"])

    def test_discard_leaves_nothing(self):
        target = self.inbox.open("s1", message())
        target.file.write(b"ab")
        target.discard()
        self.assertEqual(os.listdir(self.inbox.directory), [])

    def test_names(self):
        self.assertEqual(file_name_of(message(disposition='attachment; filename="../../etc/x y"')),
                         "x_y")
        self.assertEqual(file_name_of(message(disposition="inline; filename=.hidden")), "hidden")
        self.assertIsNone(file_name_of(message()))
        named = self.inbox.open("s/2", message("text/plain", 'attachment; filename="a.txt"',
                                               message_id="m/3"))
        self.assertEqual(named.commit().name, "s_2-m_3-a.txt")
        self.assertEqual(self.inbox.open("s", message("x/unknown")).final.name, "s-m1.bin")
