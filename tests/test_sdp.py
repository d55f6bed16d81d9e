"""SDP: the MSRP attributes of a media description, whole session descriptions, and
RFC 5547's file attributes."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from msrplib.protocol import URIParseError, parse_uri
from msrplib.sdp import (DIRECTIONS, FileRange, FileSelector, MSRPMedia, SDPParseError,
                         answer_setup, file_digest, local_role, media_line,
                         parse_path_attribute, parse_sdp)
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


OFFER = """v=0
o=alice 2890844526 2890844527 IN IP4 host.example.com
s=-
c=IN IP4 192.0.2.10
t=0 0
a=sendonly
m=message 7654 TCP/MSRP *
a=accept-types:message/cpim text/plain
a=accept-wrapped-types:*
a=path:msrp://host.example.com:7654/chat1;tcp
a=setup:actpass
m=audio 49170 RTP/AVP 0
c=IN IP4 192.0.2.20
a=recvonly
m=message 7655 TCP/TLS/MSRP *
c=IN IP4 192.0.2.30
a=recvonly
a=accept-types:image/jpeg
a=max-size:40000
a=file-selector:name:"100%25 %22real%22.jpg" type:image/jpeg size:32349 hash:sha-1:72:24:5F:E8
a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd
a=file-disposition:attachment
a=file-date:creation:"Mon, 15 May 2006 15:01:31 +0300" read:"Tue, 16 May 2006 09:10:11 +0300"
a=file-icon:cid:id2@alicepc.example.com
a=file-range:1001-*
a=path:msrps://host.example.com:7655/file1;tcp
m=message 0 TCP/MSRP *
a=path:msrp://host.example.com:7656/gone;tcp
"""


class SessionDescriptionTests(unittest.TestCase):
    """A whole SDP: one media object per m= section, each with its own attributes."""

    def test_sections_are_never_merged(self):
        description = parse_sdp(OFFER)
        self.assertEqual([section.kind for section in description.media],
                         ["message", "audio", "message", "message"])
        chat, file_offer = description.msrp_media()  # the port-0 section is left out
        self.assertEqual(chat.accept_types, ["message/cpim", "text/plain"])
        self.assertEqual((chat.setup, chat.file_selector, chat.max_size), ("actpass", None, None))
        self.assertEqual([str(uri) for uri in chat.path],
                         ["msrp://host.example.com:7654/chat1;tcp"])
        self.assertEqual(file_offer.accept_types, ["image/jpeg"])
        self.assertEqual((file_offer.setup, file_offer.max_size), (None, 40000))
        self.assertEqual(file_offer.file_selector,
                         FileSelector('100% "real".jpg', "image/jpeg", 32349,
                                      ("sha-1", "72:24:5F:E8")))
        self.assertEqual(file_offer.file_transfer_id, "vBnG916bdberum2fFEABR1FR3ExZMUrd")
        self.assertEqual(file_offer.file_disposition, "attachment")
        self.assertEqual(file_offer.file_date,
                         {"creation": "Mon, 15 May 2006 15:01:31 +0300",
                          "read": "Tue, 16 May 2006 09:10:11 +0300"})
        self.assertEqual(file_offer.file_icon, "cid:id2@alicepc.example.com")
        self.assertEqual(file_offer.file_range, FileRange(1001, None))

    def test_direction_and_connection_per_section(self):
        description = parse_sdp(OFFER)
        self.assertEqual((description.connection, description.direction),
                         ("192.0.2.10", "sendonly"))
        self.assertEqual([(s.connection, s.direction) for s in description.media],
                         [("192.0.2.10", "sendonly"), ("192.0.2.20", "recvonly"),
                          ("192.0.2.30", "recvonly"), ("192.0.2.10", "sendonly")])
        chat, file_offer = description.msrp_media()
        self.assertEqual((chat.direction, file_offer.direction), ("sendonly", "recvonly"))
        self.assertEqual(parse_sdp("v=0\r\nm=message 9 TCP/MSRP *\r\n"
                                   "a=path:msrp://h:9/s;tcp\r\n").media[0].direction,
                         "sendrecv")

    def test_an_offer_built_here_reads_back(self):
        media = MSRPMedia(path=PATH, accept_types=["text/plain"], setup="actpass",
                          direction="sendonly", file_transfer_id="abc123",
                          file_selector=FileSelector("a b.txt", "text/plain", 3),
                          file_disposition="render", file_date={"modification": "x y"},
                          file_icon="cid:icon@here", file_range=FileRange(4, 9))
        text = "v=0\r\n%s\r\n%s" % (media_line(PATH), media.to_lines())
        [read] = parse_sdp(text).msrp_media()
        self.assertEqual(read, media)

    def test_hostile_descriptions_are_refused(self):
        path = "a=path:msrp://h:9/s;tcp\r\n"
        for text in ["v=0\r\n" + "a=x\r\n" * 20000,          # too long
                     "v=0\r\nm=message nine TCP/MSRP *\r\n",  # bad media line
                     "v=0\r\nc=IN IP4\r\n",                   # bad connection line
                     "v=0\r\njunk\r\n",                        # not x=...
                     "m=message 9 TCP/MSRP *\r\na=max-size:\u00b2\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\na=max-size:" + "9" * 30 + "\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\na=sendonly\r\na=recvonly\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\n" + path + path,
                     "m=message 9 TCP/MSRP *\r\na=file-range:0-5\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\na=file-range:9-3\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\na=file-icon:http://x/\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\na=file-date:today\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\na=file-transfer-id:a b\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\na=accept-types\r\n" + path,
                     "m=message 9 TCP/MSRP *\r\n"]:                # no path
            self.assertRaises(SDPParseError, parse_sdp, text)

    def test_one_media_parse_refuses_several_sections(self):
        error = self.assertRaises(SDPParseError, MSRPMedia.parse, OFFER)
        self.assertIn("parse_sdp", str(error))


class FileSelectorTests(unittest.TestCase):
    def test_names_are_percent_encoded_where_the_grammar_asks(self):
        selector = FileSelector('50% "off".txt')
        self.assertEqual(str(selector), 'name:"50%25 %22off%22.txt"')
        self.assertEqual(FileSelector.parse(str(selector)), selector)
        for name in ["plain.txt", "with space.txt", "C:\\dir\\x", "it's", "caf\u00e9 \u2603",
                     "%41 stays as written"]:
            self.assertEqual(FileSelector.parse(str(FileSelector(name))).name, name)
        self.assertEqual(FileSelector.parse('name:"caf%C3%A9"').name, "caf\u00e9")

    def test_bad_selectors(self):
        for text in ['name:"unterminated', "size:big", "size:\u0661", 'name:"100%"',
                     'name:"%FF"', 'name:""', "hash:sha-1:XYZ", "hash:sha-1", "type:nonsense",
                     "size:1 size:2", "colour:red", 'name:"a"size:3']:
            self.assertRaises(SDPParseError, FileSelector.parse, text)

    def test_for_a_file_and_its_hash(self):
        import hashlib
        import io
        path = self.mktemp()
        body = b"some file contents" * 1000
        with open(path, "wb") as out:
            out.write(body)
        selector = FileSelector.for_file(path, "application/octet-stream")
        self.assertEqual((selector.name, selector.size), (path.split("/")[-1], len(body)))
        self.assertEqual(selector.hash[0], "sha-1")
        self.assertTrue(selector.matches_digest(hashlib.sha1(body).digest()))
        self.assertFalse(selector.matches_digest(hashlib.sha1(body + b"x").digest()))
        opened = io.BytesIO(b"skip" + body)
        opened.seek(4)
        from_here = FileSelector.for_file(opened, name="n", algorithm="sha-256")
        self.assertEqual((from_here.size, opened.tell()), (len(body), 4))
        self.assertTrue(from_here.matches_digest(hashlib.sha256(body).digest()))
        self.assertEqual(file_digest(body), hashlib.sha1(body).digest())
        self.assertRaises(ValueError, file_digest, body, "md5")
        self.assertRaises(ValueError, FileSelector("n").matches_digest, b"")


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
                min_size=1, max_size=40)


class RoundTripProperties(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(NAMES, st.integers(0, 10 ** 12), st.integers(1, 10 ** 9),
           st.one_of(st.none(), st.integers(0, 10 ** 9)),
           st.sampled_from(DIRECTIONS + (None,)), st.booleans())
    def test_media_round_trip(self, name, size, start, length, direction, cema):
        media = MSRPMedia(path=PATH, direction=direction, cema=cema,
                          file_selector=FileSelector(name, "text/plain", size),
                          file_range=FileRange(start, None if length is None else
                                               start + length - 1))
        self.assertEqual(MSRPMedia.parse(media.to_lines()), media)


class HostileDescriptionTests(unittest.TestCase):
    def test_a_refused_stream_needs_no_attributes(self):
        description = parse_sdp("v=0\r\nm=message 0 TCP/MSRP *\r\n"
                                "m=message 9 TCP/MSRP *\r\na=path:msrp://h:9/s;tcp\r\n")
        self.assertIsNone(description.media[0].msrp)
        self.assertEqual(len(description.msrp_media()), 1)

    def test_a_session_level_fingerprint_applies_to_every_section(self):
        fingerprint = TLSIdentity.generate().fingerprint()
        description = parse_sdp("v=0\r\na=fingerprint:%s\r\n"
                                "m=message 9 TCP/TLS/MSRP *\r\na=path:msrps://h:9/s;tcp\r\n"
                                % fingerprint)
        self.assertEqual(description.msrp_media()[0].fingerprint, fingerprint)

    def test_ports_are_16_bits(self):
        self.assertRaises(SDPParseError, parse_sdp,
                          "v=0\r\nm=message 99999 TCP/MSRP *\r\na=path:msrp://h:9/s;tcp\r\n")

    def test_a_name_that_is_not_utf_8(self):
        text = b'name:"caf\xe9.txt"'.decode("utf-8", "surrogateescape")  # a Latin-1 byte
        self.assertRaises(SDPParseError, FileSelector.parse, text)

    def test_a_session_fingerprint_for_another_medium_breaks_nothing(self):
        usable = TLSIdentity.generate().fingerprint()
        description = parse_sdp(
            "v=0\r\na=fingerprint:sha-224 AA:BB\r\na=fingerprint:%s\r\n"
            "m=message 9 TCP/MSRP *\r\na=path:msrp://h:9/s;tcp\r\n"
            "m=message 9 TCP/TLS/MSRP *\r\na=path:msrps://h:9/t;tcp\r\n" % usable)
        plain, secure = description.msrp_media()
        self.assertEqual((plain.fingerprint, secure.fingerprint), (None, usable))


SDP_PIECES = st.sampled_from([
    "v=0", "m=message 9 TCP/MSRP *", "m=message 0 TCP/MSRP *", "m=message 9 TCP/TLS/MSRP *",
    "m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.1", "c=IN IP6 ::1", "a=path:msrp://h:9/s;tcp",
    "a=path:msrps://h:9/s;tcp msrps://r:9/x;tcp", "a=setup:actpass", "a=sendonly",
    "a=recvonly", "a=msrp-cema", "a=accept-types:*", "a=max-size:100",
    'a=file-selector:name:"a%22b" size:3 hash:sha-1:AB:CD', "a=file-range:1-*",
    'a=file-date:read:"x"', "a=file-icon:cid:i@h", "a=file-transfer-id:t",
    "a=fingerprint:sha-256 AB:CD", "a=fingerprint:sha-224 AB"])


class HostileSDPProperties(unittest.TestCase):
    """Whatever a peer sends as SDP, parse_sdp either reads it or raises a ValueError
    (SDPParseError, URIParseError): never anything else."""

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.one_of(SDP_PIECES, st.text(max_size=60)), max_size=20),
           st.sampled_from(["\r\n", "\n"]))
    def test_any_lines(self, lines, end):
        try:
            description = parse_sdp(end.join(lines))
        except ValueError:
            return
        for media in description.msrp_media():
            self.assertTrue(media.path)
            self.assertEqual(MSRPMedia.parse(media.to_lines()).path, media.path)
