"""SDP attribute helpers."""

from twisted.trial import unittest

from msrplib.protocol import URIParseError, parse_uri
from msrplib.sdp import (FileSelector, MSRPMedia, answer_setup, local_role, media_line,
                         parse_path_attribute)
from msrplib.tls import Fingerprint, TLSIdentity

PATH = [parse_uri("msrps://relay.example.net:9000/kwj2sfs3;tcp"),
        parse_uri("msrps://bob.example.net:8145/foo;tcp")]


class MediaTests(unittest.TestCase):
    def test_round_trip(self):
        media = MSRPMedia(
            path=PATH, accept_types=["message/cpim", "text/plain"],
            accept_wrapped_types=["*"], max_size=2048, setup="actpass",
            fingerprint=TLSIdentity.generate().fingerprint(), cema=True,
            file_selector=FileSelector('My "cat".jpg', "image/jpeg", 32349,
                                       ("sha-1", "72:24:5F:E8:65:3D:DA:F3:71:36:2F:86")))
        lines = media.to_lines()
        self.assertIn("a=path:msrps://relay.example.net:9000/kwj2sfs3;tcp "
                      "msrps://bob.example.net:8145/foo;tcp\r\n", lines)
        self.assertIn("a=msrp-cema\r\n", lines)
        self.assertIn('a=file-selector:name:"My %22cat%22.jpg" type:image/jpeg size:32349 '
                      "hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86\r\n", lines)
        self.assertEqual(MSRPMedia.parse(lines), media)

    def test_parse_from_a_whole_sdp(self):
        sdp = ("v=0\r\no=bob 1 1 IN IP4 192.0.2.1\r\nm=message 8145 TCP/TLS/MSRP *\r\n"
               "a=accept-types:text/plain\r\n"
               "a=path:msrps://bob.example.net:8145/foo;tcp\r\n"
               "a=setup:passive\r\n")
        media = MSRPMedia.parse(sdp)
        self.assertEqual(media.path, PATH[1:])
        self.assertEqual((media.accept_types, media.setup), (["text/plain"], "passive"))
        self.assertIsNone(media.fingerprint)

    def test_errors(self):
        self.assertRaises(ValueError, MSRPMedia.parse, "a=accept-types:*")
        self.assertRaises(URIParseError, MSRPMedia.parse, "a=path:http://x/;tcp")
        self.assertRaises(ValueError, MSRPMedia.parse, ["a=path:msrp://h/s;tcp", "a=max-size:x"])
        self.assertRaises(ValueError, MSRPMedia.parse, ["a=path:msrp://h/s;tcp", "a=setup:maybe"])
        self.assertRaises(ValueError, MSRPMedia.parse,
                          ["a=path:msrp://h/s;tcp", "a=fingerprint:md9 AA"])
        self.assertRaises(ValueError, FileSelector.parse, 'name:"unterminated')
        self.assertRaises(ValueError, FileSelector.parse, "size:big")

    def test_path_attribute_and_media_line(self):
        self.assertEqual(parse_path_attribute(" ".join(map(str, PATH))), PATH)
        self.assertEqual(media_line(PATH), "m=message 8145 TCP/TLS/MSRP *")
        self.assertEqual(media_line([parse_uri("msrp://h/s;tcp")]), "m=message 2855 TCP/MSRP *")


class SetupTests(unittest.TestCase):
    def test_answers(self):
        self.assertEqual(answer_setup(None), "passive")
        self.assertEqual(answer_setup("actpass"), "passive")
        self.assertEqual(answer_setup("active"), "passive")
        self.assertEqual(answer_setup("passive"), "active")
        self.assertRaises(ValueError, answer_setup, "holdconn")

    def test_roles(self):
        self.assertEqual(local_role("actpass", "passive", offerer=True), "active")
        self.assertEqual(local_role("actpass", "passive", offerer=False), "passive")
        self.assertEqual(local_role("actpass", "active", offerer=True), "passive")
        self.assertEqual(local_role(None, None, offerer=True), "active")
        self.assertRaises(ValueError, local_role, "actpass", "actpass", offerer=True)


class FingerprintTests(unittest.TestCase):
    def test_parse_and_match(self):
        identity = TLSIdentity.generate()
        for algorithm in ("sha-256", "sha-1", "sha-512"):
            fingerprint = identity.fingerprint(algorithm)
            self.assertEqual(Fingerprint.parse(str(fingerprint).lower()), fingerprint)
            self.assertTrue(fingerprint.matches(identity.certificate))
            self.assertFalse(fingerprint.matches(TLSIdentity.generate().certificate))
        self.assertRaises(ValueError, Fingerprint.parse, "sha-256 XYZ")
        self.assertRaises(ValueError, Fingerprint.parse, "sha-256 A:BB")

    def test_pem_round_trip(self):
        identity = TLSIdentity.generate(hosts=("127.0.0.1", "relay.test"))
        loaded = TLSIdentity.from_pem(identity.certificate_pem(), identity.key_pem())
        self.assertEqual(loaded.fingerprint(), identity.fingerprint())
