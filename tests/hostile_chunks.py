"""Hostile MSRP chunks: valid chunks built from parts, then mutated, from hypothesis's choices.

A :class:`Chunk` is a chunk as a peer writes it, field by field, so that a mutation can
break exactly one thing (a header twice, a number in Arabic-Indic digits, an end-line whose
id only starts with the chunk's, a line ended by a bare LF) and the test still knows what
the rest says. :func:`mutate` applies structural mutations; :func:`mutate_bytes` works on
the encoded bytes (line endings, truncation, junk); :func:`splits` cuts them into writes.

Choices come from a :class:`Choices` tape: one hypothesis draw of :data:`TAPES` per
example, read as numbers. Each ``data.draw`` costs hypothesis about as much as a network
round trip, and an example makes dozens of choices, so they are drawn at once;
hypothesis still derandomizes, replays and shrinks the tape (towards zeros: the first of
every list of options is its simplest). Chunks are picked from a few hundred varied
templates made at import from a fixed seed, the simplest (a chat message) first.

Chunks are addressed to placeholders; :meth:`Peer.address` puts in the local URI (known
only at run time: the listening port is the kernel's choice) and fresh Message-IDs, so
that no two examples share a message on a reused session.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

from hypothesis import strategies as st

from tests.hostile import REMOTE

__all__ = ["Chunk", "Peer", "Choices", "TAPES", "IDENTS", "BAD_NUMBERS", "MANY_DIGITS",
           "BAD_NUMBER_LIST", "MANY_DIGIT_LIST", "any_chunk", "send_chunk", "binding",
           "warm_up", "fake_end_line", "body_of", "holds_end_line", "mutate", "mutate_bytes",
           "splits", "sent_tids", "LOCAL", "MESSAGE_ID"]

T = TypeVar("T")

#: Bytes of choices each example draws; read past its end, the tape starts over.
TAPE_SIZE = 160
TAPES = st.binary(min_size=TAPE_SIZE, max_size=TAPE_SIZE)


class Choices:
    """Numbers read from a drawn tape, three bytes each."""

    def __init__(self, tape: bytes) -> None:
        self.tape = tape or b"\0"
        self.at = 0

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes of the tape."""
        taken = bytes(self.tape[(self.at + i) % len(self.tape)] for i in range(count))
        self.at += count
        return taken

    def pick(self, count: int) -> int:
        """A number from 0 to ``count - 1`` (0 when ``count`` is 0 or less)."""
        number = int.from_bytes(self.take(3), "big")
        return number % count if count > 0 else 0

    def choose(self, options: Sequence[T]) -> T:
        return options[self.pick(len(options))]

    def flip(self) -> bool:
        return self.pick(2) == 1


ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
IDENT_CHARS = ALNUM + ".+%=-"


def _idents() -> List[bytes]:
    """RFC 4975 idents of every length (4 to 32) and of every character they may hold,
    some the start of others (an end-line's id may only start with a chunk's). None starts
    with ``z``: the probes' ids do."""
    idents = [b"a000", b"a0000", b"abcd", b"abcd.", b"abcd-efgh", b"9+%=", b"A.b-C+d%e=f"]
    for n in range(57):
        length = 4 + (n * 7) % 29
        text = "".join(IDENT_CHARS[(n * 13 + i * 5) % len(IDENT_CHARS)] for i in range(length))
        idents.append((ALNUM[n % 25] + text[1:]).encode())
    return idents


#: Transaction ids.
IDENTS = _idents()

#: Digit strings too long for any header number: past 64 bits, and past the 4,300 digits
#: that ``int()`` refuses by default.
MANY_DIGIT_LIST = [b"9" * 21, b"1" + b"0" * 39, b"1" + b"0" * 4300, b"0" * 4301 + b"7",
                   b"9" * 6000]
MANY_DIGITS = st.one_of(
    st.integers(21, 40).map(lambda n: b"9" * n),
    st.integers(4290, 6000).map(lambda n: b"1" + b"0" * n),
    st.integers(4301, 6000).map(lambda n: b"0" * n + b"7"))
#: Numbers that are not 1*DIGIT of ASCII digits.
BAD_NUMBER_LIST = [text.encode("utf-8") for text in [
    "١٢٣", "²", "１２", "߁", "𝟗", "٣-٣", "-5", "-0", "+5", "", " ", "5 5", "0x10", "1e3",
    "1_000", "١", "৩", "5\x00", "⁵"]]
BAD_NUMBERS = st.sampled_from(BAD_NUMBER_LIST)
_ODD_NUMBERS = MANY_DIGIT_LIST + BAD_NUMBER_LIST

#: Placeholders for what only the connection knows (see :meth:`Peer.address`).
LOCAL = b"\x01local\x01"
MESSAGE_ID = b"\x01message-id\x01"


class Peer:
    """What an example's chunks need to know about their connection."""

    _ids = itertools.count()

    def __init__(self, local: str) -> None:
        self.local = local.encode()
        self.example = next(self._ids)
        self._messages = itertools.count()

    def message_id(self) -> bytes:
        """A Message-ID no other example uses, always of the same length."""
        return b"m%09dx%03d" % (self.example, next(self._messages))

    def address(self, chunk: Chunk) -> Chunk:
        """``chunk`` (changed in place) with the placeholders filled in."""
        chunk.headers = [(name, self._fill(value)) for name, value in chunk.headers]
        return chunk

    def _fill(self, value: bytes) -> bytes:
        value = value.replace(LOCAL, self.local)
        while MESSAGE_ID in value:
            value = value.replace(MESSAGE_ID, self.message_id(), 1)
        return value


@dataclass
class Chunk:
    """A chunk as written: start line parts, header lines, body and end-line."""

    tid: bytes
    kind: bytes  # what follows the id in the start line: b"SEND", b"200 OK"
    headers: List[Tuple[bytes, bytes]] = field(default_factory=list)
    body: Optional[bytes] = None  # None: no blank line and no body
    flag: bytes = b"$"
    end_tid: Optional[bytes] = None  # the end-line's id when it is not ``tid``

    def encode(self) -> bytes:
        lines = [b"MSRP %s %s\r\n" % (self.tid, self.kind)]
        lines += [b"%s: %s\r\n" % header for header in self.headers]
        if self.body is not None:
            lines += [b"\r\n", self.body, b"\r\n"]
        lines.append(b"-------%s%s\r\n" % (self.end_tid or self.tid, self.flag))
        return b"".join(lines)

    def get(self, name: bytes) -> Optional[bytes]:
        for header, value in self.headers:
            if header.lower() == name.lower():
                return value
        return None

    def set(self, name: bytes, value: bytes) -> None:
        """Replace the first ``name`` header's value, or add one."""
        for index, (header, _) in enumerate(self.headers):
            if header.lower() == name.lower():
                self.headers[index] = (header, value)
                return
        self.headers.append((name, value))

    def without(self, name: bytes) -> None:
        self.headers = [h for h in self.headers if h[0].lower() != name.lower()]

    def copy(self) -> Chunk:
        return replace(self, headers=list(self.headers))


# Templates: what a peer may send, well-formed.

_PATHS = [(b"To-Path", LOCAL), (b"From-Path", REMOTE.encode())]
_OTHER_REQUESTS = {
    b"REPORT": [(b"Message-ID", MESSAGE_ID), (b"Byte-Range", b"1-5/5"),
                (b"Status", b"000 200 OK")],
    b"NICKNAME": [(b"Use-Nickname", b'"bob"')],
    b"AUTH": [(b"Authorization", b'Digest username="a", nonce="b"'), (b"Expires", b"900")],
    b"FOO": [], b"BIND": []}
_RESPONSE_KINDS = [b"200 OK", b"200", b"400 Bad Request", b"481 No session", b"999 Odd",
                   b"408 Timeout", b"200 \xa7\xff not UTF-8", "200 Ünïcödé".encode()]
#: Bodies: text, binary, and things a parser may trip on.
BODY_POOL = [b"hello", b"", b"\r\n", b"\r\n\r\n", b"\n", b"\r", b"-------",
             b"MSRP abcd SEND\r\n", b"\x00\xff\xfe", "héllo wörld".encode(), b"$", b"+", b"#",
             b"x" * 300, b"y" * 5000]
_TYPES = [b"text/plain", b"text/plain; charset=utf-8", b"message/cpim",
          b"application/octet-stream", b"image/png", b"TEXT/PLAIN"]


def _send(rng: random.Random, body: bytes, form: str) -> Chunk:
    """A well-formed SEND to :data:`LOCAL` carrying ``body``, with a Byte-Range of the
    ``form`` given that agrees with it."""
    size, flag = len(body), b"$"
    if form == "whole":
        byte_range = b"1-%d/%d" % (size, size)
    elif form == "open":
        byte_range = b"1-%d/*" % size
        flag = rng.choice([b"$", b"+"])
    elif form == "star":
        byte_range = b"1-*/*"
    else:
        start = rng.randint(1, 2000)
        total = start + size - 1 + rng.randint(0, 2000)
        byte_range = b"%d-%d/%d" % (start, start + size - 1, total)
        flag = b"$" if start + size - 1 == total else rng.choice([b"+", b"#"])
    headers = [(b"To-Path", LOCAL), (b"From-Path", REMOTE.encode()),
               (b"Message-ID", MESSAGE_ID), (b"Byte-Range", byte_range)]
    if rng.random() < 0.3:
        headers.append((b"Success-Report", rng.choice([b"yes", b"no"])))
    if size or rng.random() < 0.5:
        headers.append((b"Content-Type", rng.choice(_TYPES)))
        return Chunk(rng.choice(IDENTS), b"SEND", headers, body, flag)
    return Chunk(rng.choice(IDENTS), b"SEND", headers, None, flag)


def _templates(count: int) -> List[Chunk]:
    """``count`` chunks a peer may send, from the simplest (a chat message) on: SENDs of
    every Byte-Range form, other requests, responses. Made once, from a fixed seed."""
    rng = random.Random(4975)
    chunks = [Chunk(b"a000", b"SEND", [(b"To-Path", LOCAL), (b"From-Path", REMOTE.encode()),
                                       (b"Message-ID", MESSAGE_ID), (b"Byte-Range", b"1-5/5"),
                                       (b"Content-Type", b"text/plain")], b"hello")]
    while len(chunks) < count:
        what = rng.random()
        if what < 0.65:
            body = rng.choice(BODY_POOL) if rng.random() < 0.5 else \
                bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
            chunks.append(_send(rng, body, rng.choice(["whole", "whole", "open", "star",
                                                       "part"])))
        elif what < 0.85:
            method = rng.choice(sorted(_OTHER_REQUESTS))
            chunks.append(Chunk(rng.choice(IDENTS), method, _PATHS + _OTHER_REQUESTS[method]))
        else:
            chunks.append(Chunk(rng.choice(IDENTS), rng.choice(_RESPONSE_KINDS), list(_PATHS)))
    return chunks


_TEMPLATES = _templates(600)
_SENDS = [c for c in _TEMPLATES if c.kind == b"SEND"]
_BINDINGS = [c for c in _SENDS if not c.body]


def any_chunk(choices: Choices) -> Chunk:
    """Any chunk a peer may send (to the placeholders)."""
    return choices.choose(_TEMPLATES).copy()


def send_chunk(choices: Choices) -> Chunk:
    """A well-formed SEND."""
    return choices.choose(_SENDS).copy()


def binding(choices: Choices) -> Chunk:
    """An empty SEND, as a connection's binding chunk is."""
    return choices.choose(_BINDINGS).copy()


def body_of(choices: Choices) -> bytes:
    """A body: one of :data:`BODY_POOL`, or bytes off the tape."""
    if choices.flip():
        return choices.choose(BODY_POOL)
    return choices.take(choices.pick(41))


def warm_up(chunk: Chunk, peer: Peer) -> Chunk:
    """A chunk of ``chunk``'s header shape (a well-formed one, when it is) with an id and
    Message-ID of its own: what warms the caches a chunk of that shape may meet."""
    warm = chunk.copy()
    warm.tid = chunk.tid + b"w" if len(chunk.tid) < 32 else chunk.tid[:-1] + (
        b"w" if chunk.tid[-1:] != b"w" else b"v")
    if warm.get(b"Message-ID") is not None:
        warm.set(b"Message-ID", peer.message_id())
    return warm


def holds_end_line(chunk: Chunk) -> bool:
    """Whether ``chunk``'s body holds its own end-line (which would end it early)."""
    if chunk.body is None:
        return False
    text = b"\r\n" + chunk.body + b"\r\n"
    marker = b"\r\n-------" + (chunk.end_tid or chunk.tid)
    return any(text[at + len(marker):at + len(marker) + 3] in (b"$\r\n", b"+\r\n", b"#\r\n")
               for at in _find_all(text, marker))


def _find_all(text: bytes, sub: bytes):
    at = text.find(sub)
    while at >= 0:
        yield at
        at = text.find(sub, at + 1)


_LONGER_IDS = [b"0", b"x", b"-", b".", b"ab", b"%=", b"Z9.-"]
_NOT_AN_END = [b"", b"x", b" ", b"\r\n", b"\n", b"\r", b"-", b"$x", b"$ \r\n", b"$\r", b"$\n",
               b"+\rx", b"#\n\r", b"%\r\n"]


def fake_end_line(choices: Choices, tid: bytes) -> bytes:
    """Text that looks like ``tid``'s end-line but is body (RFC 4975 section 7.1): an id
    that only starts with ``tid``, or no continuation flag and CRLF after it, or an
    end-line that does not follow a CRLF."""
    marker = b"\r\n-------" + tid
    how = choices.pick(3)
    if how == 0:
        return marker + choices.choose(_LONGER_IDS) + choices.choose([b"$", b"+", b"#"]) \
            + b"\r\n"
    if how == 1:
        return marker + choices.choose(_NOT_AN_END)
    return b"-------" + tid + b"$\r\n"


# Structural mutations: each changes one thing of a chunk (in place).

_NUMBER_FIELDS = ["start", "end", "total", "port-to", "port-from", "expires"]


def _odd_number(choices: Choices, chunk: Chunk) -> None:
    number = choices.choose(_ODD_NUMBERS)
    place = choices.choose(_NUMBER_FIELDS)
    if place in ("start", "end", "total"):
        parts = re.split(rb"[-/]", chunk.get(b"Byte-Range") or b"1-1/1")
        parts = (parts + [b"1", b"1", b"1"])[:3]
        parts[_NUMBER_FIELDS.index(place)] = number
        chunk.set(b"Byte-Range", b"%s-%s/%s" % tuple(parts))
    elif place == "expires":
        chunk.set(b"Expires", number)
    else:
        name = b"To-Path" if place == "port-to" else b"From-Path"
        value = chunk.get(name) or b"msrp://127.0.0.1:1/s;tcp"
        chunk.set(name, re.sub(rb":[0-9]+/", b":" + number + b"/", value, count=1))


_OTHER_VALUES = [b"1-3/3", b"msrp://127.0.0.1:9/other;tcp", b"m99999", REMOTE.encode(),
                 b"text/plain"]


def _duplicate(choices: Choices, chunk: Chunk) -> None:
    if not chunk.headers:
        return
    name, value = choices.choose(chunk.headers)
    if choices.flip():
        value = choices.choose(_OTHER_VALUES)
    chunk.headers.insert(choices.pick(len(chunk.headers) + 1), (name, value))


def _drop(choices: Choices, chunk: Chunk) -> None:
    if chunk.headers:
        del chunk.headers[choices.pick(len(chunk.headers))]


def _blank_path(choices: Choices, chunk: Chunk) -> None:
    chunk.set(choices.choose([b"To-Path", b"From-Path"]),
              choices.choose([b"", b" ", b"   ", b"\t", b" \t "]))


def _fake_end_line(choices: Choices, chunk: Chunk) -> None:
    body = chunk.body or b""
    at = choices.pick(len(body) + 1)
    chunk.body = body[:at] + fake_end_line(choices, chunk.tid) + body[at:]
    if chunk.get(b"Content-Type") is None:
        chunk.headers.append((b"Content-Type", b"text/plain"))


_BAD_FLAGS = [b"", b"x", b"$$", b"%", b"$\r", b"$\n", b"+ ", b"\xff"]


def _end_line(choices: Choices, chunk: Chunk) -> None:
    what = choices.pick(4)
    if what == 0:
        chunk.flag = choices.choose(_BAD_FLAGS)
    elif what == 1:  # an id that only starts with the chunk's
        chunk.end_tid = chunk.tid + choices.choose([b"x", b"0", b"-", b"ab"])
    elif what == 2:
        chunk.end_tid = chunk.tid[:-1]
    else:
        chunk.end_tid = choices.choose(IDENTS)


_ODD_KINDS = [b"send", b"SEND ", b"SEND x", b"", b"S\xc3\x89ND", b"SEND\xa7", b"200 \xa7",
              b"2000 OK", b"20 OK", "٢٠٠ OK".encode(), b"200OK", b"SEND\tX", b"000 OK"]
_ODD_TIDS = [b"abc", b"a" * 33, b"ab cd", b"-abcd", b"ab\x00cd", "ábcd".encode(), b""]


def _start_line(choices: Choices, chunk: Chunk) -> None:
    if choices.flip():
        chunk.kind = choices.choose(_ODD_KINDS)
    else:
        chunk.end_tid = chunk.end_tid or chunk.tid
        chunk.tid = choices.choose(_ODD_TIDS)


def _header_name(choices: Choices, chunk: Chunk) -> None:
    if not chunk.headers:
        return
    index = choices.pick(len(chunk.headers))
    name, value = chunk.headers[index]
    odd = [name + b" ", b" " + name, name.replace(b"-", b"_"), b"", name + b"\x00",
           "Tö-Path".encode(), name.upper(), name.lower()]
    chunk.headers[index] = (choices.choose(odd), value)


def _long_value(choices: Choices, chunk: Chunk) -> None:
    name = choices.choose([b"Message-ID", b"Content-Type", b"X-Long", b"To-Path",
                           b"Byte-Range"])
    length = choices.choose([40, 1000, 16 * 1024 - 20, 16 * 1024 + 5, 70 * 1024])
    chunk.set(name, choices.choose([b"a", b"9", b" ", b"\xe9"]) * length)


def _body_size(choices: Choices, chunk: Chunk) -> None:
    body = chunk.body or b""
    if body and choices.flip():
        chunk.body = body[:choices.pick(len(body))]
    else:
        chunk.body = body + choices.take(1 + choices.pick(20))
        if chunk.get(b"Content-Type") is None:
            chunk.headers.append((b"Content-Type", b"text/plain"))


_JUNK = [b"\x00", b"\xff\xfe", "\u202e".encode(), b"\r", b"\n", b" ", b"\t", b";",
         "é".encode()]


def _junk_value(choices: Choices, chunk: Chunk) -> None:
    if not chunk.headers:
        return
    index = choices.pick(len(chunk.headers))
    name, value = chunk.headers[index]
    at = choices.pick(len(value) + 1)
    chunk.headers[index] = (name, value[:at] + choices.choose(_JUNK) + value[at:])


Mutation = Callable[[Choices, Chunk], None]
STRUCTURAL: List[Mutation] = [_odd_number, _duplicate, _drop, _blank_path, _fake_end_line,
                              _end_line, _start_line, _header_name, _long_value, _body_size,
                              _junk_value]


def mutate(choices: Choices, chunk: Chunk, most: int = 3) -> Chunk:
    """A copy of ``chunk`` with up to ``most`` structural mutations (none as often as
    one: a well-formed chunk among hostile ones is an input too)."""
    chunk = chunk.copy()
    for _ in range(choices.pick(most + 2) - 1):
        choices.choose(STRUCTURAL)(choices, chunk)
    return chunk


_LINE_ENDS = [b"\n", b"\r", b"\r\r\n", b"\n\r\n", b"\n\r", b"\r\n\r\n", b""]
_INSERTS = [b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"MSRP ", b"-------"]


def mutate_bytes(choices: Choices, raw: bytes, most: int = 2) -> bytes:
    """``raw`` with up to ``most`` byte-level mutations (none half the time): a CRLF
    made into something else, truncation, junk inserted, a span deleted."""
    for _ in range(max(0, choices.pick(2 * most + 2) - most - 1)):
        what = choices.pick(4)
        if what == 0:
            ends = list(_find_all(raw, b"\r\n"))
            if ends:
                at = choices.choose(ends)
                raw = raw[:at] + choices.choose(_LINE_ENDS) + raw[at + 2:]
        elif what == 1:
            raw = raw[:choices.pick(len(raw))]
        elif what == 2:
            at = choices.pick(len(raw) + 1)
            junk = choices.choose(_INSERTS) if choices.flip() else choices.take(
                1 + choices.pick(8))
            raw = raw[:at] + junk + raw[at:]
        else:
            at = choices.pick(len(raw) + 1)
            raw = raw[:at] + raw[at + 1 + choices.pick(16):]
    return raw


def splits(choices: Choices, raw: bytes, most: int = 4) -> List[bytes]:
    """``raw`` cut into up to ``most`` + 1 writes at chosen places."""
    cuts = sorted({choices.pick(len(raw) + 1) for _ in range(choices.pick(most + 1))})
    return [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)]) if b > a]


def sent_tids(raw: bytes) -> List[str]:
    """Every transaction id a start line in ``raw`` may carry: what an answer may echo."""
    return sorted({tid.decode("utf-8", "replace")
                   for tid in re.findall(rb"MSRP ([^ \r\n]+) ", raw)})
