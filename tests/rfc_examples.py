"""The example messages of RFC 4975 section 7 and RFC 4976 section 7, typed from the RFCs.

The RFCs fold some long header lines for print; here each header is on one line, as it is
on the wire. Line ends are CRLF.
"""


def _wire(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


RFC4975 = [_wire(text) for text in [
    """\
MSRP a786hjs2 SEND
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
Message-ID: 87652491
Byte-Range: 1-25/25
Content-Type: text/plain

Hey Bob, are you there?
-------a786hjs2$
""",
    """\
MSRP a786hjs2 200 OK
To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
-------a786hjs2$
""",
    """\
MSRP dkei38sd SEND
To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
Message-ID: 12339sdqwer
Byte-Range: 1-16/16
Content-Type: text/plain

Yes, I'm here!
-------dkei38sd$
""",
    """\
MSRP dkei38sd 200 OK
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp
-------dkei38sd$
""",
    """\
MSRP d93kswow SEND
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
Message-ID: 12339sdqwer
Byte-Range: 1-137/148
Success-Report: yes
Failure-Report: no
Content-Type: text/html

<html><body>
<p>See the
<a href="http://example.com/x">example</a>.
</p>
</body></html>
-------d93kswow+
""",
    """\
MSRP op2nc9a SEND
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
Message-ID: 12339sdqwer
Byte-Range: 138-148/148
Success-Report: yes
Failure-Report: no
Content-Type: text/html

</p></body>
-------op2nc9a$
""",
    """\
MSRP dkei38sd REPORT
To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
Message-ID: 12339sdqwer
Byte-Range: 1-148/148
Status: 000 200 OK
-------dkei38sd$
""",
    """\
MSRP 7443ab12 SEND
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
Message-ID: 87652492
Byte-Range: 1-*/*
Content-Type: text/plain

This chunk is sent before its total is known
-------7443ab12+
""",
    """\
MSRP 7443ab12 413 Message Too Large
To-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
-------7443ab12$
""",
    """\
MSRP 7443ab13 SEND
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
Message-ID: 87652492
Byte-Range: 45-*/*
-------7443ab13#
""",
    """\
MSRP 5sdkfj2 SEND
To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp
From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp
Message-ID: 7ui3kd0w
Byte-Range: 1-0/0
-------5sdkfj2$
""",
]]

RFC4976 = [_wire(text) for text in [
    """\
MSRP 49fh AUTH
To-Path: msrps://alice@intra.example.com;tcp
From-Path: msrps://alice.example.com:9892/98cjs;tcp
-------49fh$
""",
    """\
MSRP 49fh 401 Unauthorized
To-Path: msrps://alice.example.com:9892/98cjs;tcp
From-Path: msrps://alice@intra.example.com;tcp
WWW-Authenticate: Digest realm="intra.example.com", qop="auth", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"
-------49fh$
""",
    """\
MSRP 49fi AUTH
To-Path: msrps://alice@intra.example.com;tcp
From-Path: msrps://alice.example.com:9892/98cjs;tcp
Authorization: Digest username="Alice", realm="intra.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1"
-------49fi$
""",
    """\
MSRP 49fi 200 OK
To-Path: msrps://alice.example.com:9892/98cjs;tcp
From-Path: msrps://alice@intra.example.com;tcp
Use-Path: msrps://intra.example.com:9000/jui787s2f;tcp
Expires: 900
-------49fi$
""",
    """\
MSRP 6aef SEND
To-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://relay.example.net:9000/kwj2sfs3;tcp msrps://bob.example.net:8145/foo;tcp
From-Path: msrps://alice.example.com:9892/98cjs;tcp
Message-ID: 87652491
Byte-Range: 1-*/*
Content-Type: text/plain

Hi, Bob!
-------6aef$
""",
    """\
MSRP 6aef 200 OK
To-Path: msrps://alice.example.com:9892/98cjs;tcp
From-Path: msrps://intra.example.com:9000/jui787s2f;tcp
-------6aef$
""",
    """\
MSRP 6aef SEND
To-Path: msrps://relay.example.net:9000/kwj2sfs3;tcp msrps://bob.example.net:8145/foo;tcp
From-Path: msrps://intra.example.com:9000/jui787s2f;tcp msrps://alice.example.com:9892/98cjs;tcp
Message-ID: 87652491
Byte-Range: 1-*/*
Content-Type: text/plain

Hi, Bob!
-------6aef$
""",
    """\
MSRP juh76 REPORT
To-Path: msrps://relay.example.net:9000/kwj2sfs3;tcp msrps://intra.example.com:9000/jui787s2f;tcp msrps://alice.example.com:9892/98cjs;tcp
From-Path: msrps://bob.example.net:8145/foo;tcp
Message-ID: 87652491
Byte-Range: 1-8/8
Status: 000 200 OK
-------juh76$
""",
    """\
MSRP 9fyh 423 Interval Out-of-Bounds
To-Path: msrps://alice.example.com:9892/98cjs;tcp
From-Path: msrps://alice@intra.example.com;tcp
Min-Expires: 600
Max-Expires: 3600
-------9fyh$
""",
]]
