"""What a receiver reads of an IncomingMessage: the file name of its Content-Disposition,
whatever the peer wrote there."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from msrplib.protocol import Headers, MSRPData
from msrplib.session import IncomingMessage


def message(*headers):
    return IncomingMessage(MSRPData("t1", method="SEND", headers=Headers(list(headers))))


class FileNameTests(unittest.TestCase):
    def test_file_names(self):
        for disposition, name in [
                ('attachment; filename="holiday photo.jpg"', "holiday photo.jpg"),
                ("attachment; filename=plain.txt", "plain.txt"),
                ("attachment; filename*=UTF-8''caf%C3%A9.txt", "caf\u00e9.txt"),
                ('attachment; filename*0="a"; filename*1="b"', "ab"),
                ("render", None), ("attachment; filename=", None)]:
            self.assertEqual(message(("Content-Disposition", disposition)).file_name, name)
        self.assertIsNone(message().file_name)

    def test_the_other_attributes(self):
        received = message(("Message-ID", "m1"), ("Content-Type", "text/plain"),
                           ("Byte-Range", "1-5/12"), ("X-Extra", "one"), ("x-extra", "two"))
        self.assertEqual((received.message_id, received.content_type, received.size),
                         ("m1", "text/plain", 12))
        self.assertEqual(received.headers.get_all("X-EXTRA"), ["one", "two"])
        self.assertEqual((received.received, received.complete, received.data), (0, False, None))

    @settings(max_examples=500, deadline=None)
    @given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=300))
    def test_any_disposition_gives_a_name_or_none(self, disposition):
        name = message(("Content-Disposition", disposition)).file_name
        self.assertTrue(name is None or (isinstance(name, str) and name))
