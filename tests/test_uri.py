"""URI parsing, formatting and RFC 4975 section 6.1 comparison."""

from twisted.trial import unittest

from msrplib.protocol import URI, URIParseError, parse_uri


class ParseTests(unittest.TestCase):
    def test_round_trip(self):
        for text in [
            "msrp://atlanta.example.com:7654/jshA7weztas;tcp",
            "msrps://alice@intra.example.com;tcp",
            "msrps://bob.example.net:8145/foo;tcp",
            "msrp://127.0.0.1:2855/msrp-abc;tcp",
            "msrp://[2001:db8::1]:9000/s1;tcp",
            "msrp://[::1]/abc;ws",
            "msrp://host.example.com:1/a/b+c=d;tcp;foo=bar;flag",
        ]:
            self.assertEqual(str(parse_uri(text)), text)
            self.assertEqual(str(URI.parse(text)), text)

    def test_fields(self):
        uri = parse_uri("msrps://alice@[2001:DB8::1]:9000/s1;tcp;x=1")
        self.assertEqual(uri.user, "alice")
        self.assertEqual(uri.host, "2001:DB8::1")
        self.assertEqual(uri.port, 9000)
        self.assertEqual(uri.session_id, "s1")
        self.assertTrue(uri.use_tls)
        self.assertEqual(uri.transport, "tcp")
        self.assertEqual(uri.parameters, {"x": "1"})
        self.assertEqual(uri.scheme, "msrps")

    def test_relay_uri_without_session(self):
        uri = parse_uri("msrp://127.0.0.1:2855;tcp")
        self.assertIsNone(uri.session_id)
        self.assertEqual(uri.effective_port, 2855)

    def test_errors_say_what_is_wrong(self):
        cases = {
            "http://example.com/x;tcp": "scheme",
            "msrp://example.com:99999/x;tcp": "port",
            "msrp://example.com/x": "transport",
            "msrp://example.com/a b;tcp": "session-id",
            "msrp://exa mple.com/ab;tcp": "not an MSRP URI",
            "msrp://example.com/x;tcp;=y": "parameter",
            "msrp://example.com/x;;": "transport",
            "garbage": "not an MSRP URI",
            "msrp://example.com/x<y;tcp": "session-id",
        }
        for text, reason in cases.items():
            error = self.assertRaises(URIParseError, parse_uri, text)
            self.assertIn(reason, str(error), text)
            self.assertEqual(error.code, 400)

    def test_constructor_defaults_format(self):
        uri = URI(host="example.com", session_id="abc")
        self.assertEqual(str(uri), "msrp://example.com/abc;tcp")
        uri.port = 5000
        self.assertEqual(str(uri), "msrp://example.com:5000/abc;tcp")


class ComparisonTests(unittest.TestCase):
    def test_equal_per_rfc(self):
        base = parse_uri("msrp://Example.COM:2855/abc;tcp")
        for same in ["MSRP://example.com/abc;TCP", "msrp://bob@example.com:2855/abc;tcp;x=y"]:
            other = parse_uri(same)
            self.assertEqual(base, other, same)
            self.assertEqual(hash(base), hash(other), same)

    def test_not_equal(self):
        base = parse_uri("msrp://example.com:2855/abc;tcp")
        for different in ["msrps://example.com:2855/abc;tcp", "msrp://example.org:2855/abc;tcp",
                          "msrp://example.com:2856/abc;tcp", "msrp://example.com:2855/ABC;tcp",
                          "msrp://example.com:2855/abc;ws", "msrp://example.com:2855;tcp"]:
            self.assertNotEqual(base, parse_uri(different), different)

    def test_credentials_ignored(self):
        self.assertEqual(URI("h", session_id="s", credentials=object()), URI("h", session_id="s"))

    def test_not_equal_to_other_types(self):
        self.assertNotEqual(URI("h"), "msrp://h;tcp")

    def test_copy_is_independent(self):
        uri = parse_uri("msrp://h:1/s;tcp;a=b")
        clone = uri.copy()
        clone.parameters["c"] = "d"
        clone.port = 2
        self.assertEqual(str(uri), "msrp://h:1/s;tcp;a=b")
