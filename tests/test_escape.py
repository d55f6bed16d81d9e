"""What a peer sends is shown as one line that says exactly what arrived."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from msrplib.escape import escape_peer_text


class EscapeTests(unittest.TestCase):
    def test_plain_text_is_unchanged(self):
        for text in ["hello", "héllo wörld", "日本語", "a b  c", ""]:
            self.assertEqual(escape_peer_text(text), text)

    def test_line_breaks_and_control_characters(self):
        self.assertEqual(escape_peer_text("a\r\nb\tc"), "a\\r\\nb\\tc")
        self.assertEqual(escape_peer_text("\x1b[2K\x07\x00\x7f\x85"),
                         "\\x1b[2K\\x07\\x00\\x7f\\x85")
        self.assertEqual(escape_peer_text("x\u2028y\u2029z"), "x\\u2028y\\u2029z")

    def test_invisible_and_reordering_characters(self):
        self.assertEqual(escape_peer_text("evil\u202etxt.exe"), "evil\\u202etxt.exe")
        self.assertEqual(escape_peer_text("a\u200bb\ufeff"), "a\\u200bb\\ufeff")
        self.assertEqual(escape_peer_text("\U000e0041"), "\\U000e0041")

    def test_bytes_that_are_not_utf8(self):
        self.assertEqual(escape_peer_text(b"ok \xff\xfe \xc3\xa9"), "ok \\xff\\xfe é")
        self.assertEqual(escape_peer_text("\udcff"), "\\xff")  # as the parser decodes
        self.assertEqual(escape_peer_text("\ud800"), "\\ud800")

    def test_a_backslash_cannot_fake_an_escape(self):
        self.assertEqual(escape_peer_text("\\n"), "\\\\n")
        self.assertNotEqual(escape_peer_text("\\n"), escape_peer_text("\n"))

    @given(st.text())
    def test_always_one_printable_line(self, text):
        shown = escape_peer_text(text)
        self.assertTrue(shown.isprintable(), repr(shown))

    @given(st.binary())
    def test_bytes_always_one_printable_line(self, data):
        self.assertTrue(escape_peer_text(data).isprintable())
