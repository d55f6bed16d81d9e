"""Message/CPIM (RFC 3862): the envelope chat clients put around each MSRP chat message.

A CPIM message is a block of message headers (``From``, ``To``, ``cc``, ``DateTime``,
``Subject``, ``NS``, ``Require``, and headers of declared namespaces such as
``imdn.Message-ID``), a blank line, then a MIME object: its content headers
(``Content-Type`` at least), a blank line, and its body in any charset.

:func:`parse_cpim` is strict: the message headers must follow RFC 3862's grammar (and the
core headers their value syntax), every line ends with CRLF, a namespaced header's prefix
must be declared by an ``NS`` header, and anything else raises :class:`CPIMParseError`
with what is wrong; no partial object is returned. What it parses encodes back to the same
bytes (:meth:`CPIMMessage.encode`): headers are kept as written, in order. Build new
messages with :meth:`CPIMMessage.build`, whose values are escaped as the grammar needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["CPIMParseError", "CPIMHeader", "Address", "CPIMMessage", "parse_cpim",
           "CPIM_CONTENT_TYPE", "MAX_CPIM_HEADERS", "MAX_CPIM_HEADER_LENGTH",
           "format_datetime", "parse_datetime", "is_token", "decode_text"]

#: The MSRP Content-Type of a CPIM message.
CPIM_CONTENT_TYPE = "message/cpim"
#: Message and content headers a CPIM message may carry, together: more is refused.
MAX_CPIM_HEADERS = 128
#: Bytes one header line may take (its CRLF left out): a longer one is refused.
MAX_CPIM_HEADER_LENGTH = 4096


class CPIMParseError(ValueError):
    """A Message/CPIM body that does not follow RFC 3862 (the message says where)."""


# RFC 3862 section 3.1's grammar, as regular expressions over text decoded from UTF-8.
_NAME_CHAR = r"[A-Za-z0-9!#$%&'*+\-^_`|~]"
_NAME = _NAME_CHAR + "+"
_HEADER_NAME = r"(?:%s\.)?%s" % (_NAME, _NAME)
_TOKEN_CHAR = r"(?:%s|\.|[^\x00-\x7f])" % _NAME_CHAR
_TOKEN = _TOKEN_CHAR + "+"
_TOKEN_RE = re.compile(_TOKEN)
_ESCAPE = r"""\\(?:u[0-9A-Fa-f]{4}|[btnr"'\\])"""
_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|[^\x00-\x7f]|%s)*"' % _ESCAPE
# (RFC 3862's Number is a Token too: matching it apart would let a line of parameters
# be tried in exponentially many ways before it is refused.)
_PARAMETER = r"%s=(?:%s|%s)" % (_NAME, _TOKEN, _STRING)
_HEADER_LINE = re.compile(r"(%s):((?:;%s)*) (.*)" % (_HEADER_NAME, _PARAMETER), re.DOTALL)
_PARAMETERS = re.compile(r";(%s)=(%s|%s)" % (_NAME, _TOKEN, _STRING))
# The value of a header: no control character but through an escape.
_VALUE = re.compile(r"(?:[^\x00-\x1f\x7f\\]|%s)*" % _ESCAPE)
_FORMAL_NAME = r"(?:(?:%s )+|%s ?)" % (_TOKEN, _STRING)
_ADDRESS = re.compile(r"(%s)?<([^<>\s]+)>" % _FORMAL_NAME)
_NS_VALUE = re.compile(r"(?:(%s) )?<([^<>\s]+)>" % _NAME)
_REQUIRE_VALUE = re.compile(r"%s(?:,%s)*" % (_HEADER_NAME, _HEADER_NAME))
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
# RFC 3339 date-time.
_DATE_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                        r"([Zz]|[+-]\d{2}:\d{2})")
# A content (MIME) header, written as the message headers are (RFC 3862's Header rule):
# RFC 5322's field name, a colon, one space, then text without controls.
_CONTENT_HEADER = re.compile(r"([\x21-\x39\x3b-\x7e]+): ([^\x00-\x08\x0a-\x1f\x7f]*)")

_UNESCAPES = {"b": "\b", "t": "\t", "n": "\n", "r": "\r", '"': '"', "'": "'", "\\": "\\"}
_ESCAPES = {value: "\\" + key for key, value in _UNESCAPES.items() if key != "'"}


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(0)[1:]
        return chr(int(code[1:], 16)) if code[0] == "u" else _UNESCAPES[code]

    return re.sub(_ESCAPE, one, text)


def _escape(text: str, quote: bool = False) -> str:
    """``text`` as a header value (or, with ``quote``, a String): controls, backslashes
    and (in a String) double quotes escaped."""
    out = []
    for char in text:
        if char in _ESCAPES and (char != '"' or quote):
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7f:
            out.append("\\u%04x" % ord(char))
        else:
            out.append(char)
    escaped = "".join(out)
    return '"%s"' % escaped if quote else escaped


def format_datetime(moment: datetime) -> str:
    """``moment`` as CPIM's ``DateTime`` says it (RFC 3339; UTC when it has no zone)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    text = moment.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_datetime(text: str) -> datetime:
    """An RFC 3339 date-time (a leap second read as the second before it);
    ``CPIMParseError`` for anything else."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise CPIMParseError("not an RFC 3339 date-time: %r" % text[:80])
    zone = match.group(8)
    iso = text.upper().replace("Z", "+00:00") if zone in ("Z", "z") else text.upper()
    if match.group(6) == "60":  # a leap second: Python's datetime has none
        iso = iso[:17] + "59" + iso[19:]
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        raise CPIMParseError("no such date-time: %r" % text[:80]) from None


@dataclass(frozen=True)
class Address:
    """A ``From``, ``To`` or ``cc`` value: a URI and, maybe, the sender's formal name."""

    uri: str
    display_name: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> Address:
        """``[Formal-name] <URI>``; ``CPIMParseError`` when it is not that."""
        match = _ADDRESS.fullmatch(text)
        if match is None:
            raise CPIMParseError("not an address ([name] <URI>): %r" % text[:200])
        name = match.group(1)
        if name is not None:
            name = name.rstrip(" ")  # the space before "<" (only that: a name may hold
            # characters Python calls white space)
            name = _unescape(name[1:-1]) if name.startswith('"') else name
        return cls(match.group(2), name)

    def __str__(self) -> str:
        if self.display_name is None:
            return "<%s>" % self.uri
        tokens = self.display_name.split(" ")
        if all(is_token(token) for token in tokens):
            return "%s <%s>" % (self.display_name, self.uri)
        return "%s <%s>" % (_escape(self.display_name, quote=True), self.uri)


@dataclass(frozen=True)
class CPIMHeader:
    """One message header as written: ``name`` (with its namespace prefix, if any),
    ``parameters`` (``(name, value)`` pairs, such as ``("lang", "fr")``) and ``value``,
    escapes and all (:attr:`text` has them undone)."""

    name: str
    value: str
    parameters: Tuple[Tuple[str, str], ...] = ()

    @property
    def prefix(self) -> Optional[str]:
        """The namespace prefix (``imdn`` of ``imdn.Message-ID``), or ``None``."""
        return self.name.split(".", 1)[0] if "." in self.name else None

    @property
    def local_name(self) -> str:
        """The name without its prefix."""
        return self.name.split(".", 1)[-1]

    @property
    def text(self) -> str:
        """The value with its escapes undone."""
        return _unescape(self.value)

    def encode(self) -> str:
        parameters = "".join(";%s=%s" % pair for pair in self.parameters)
        return "%s:%s %s" % (self.name, parameters, self.value)


@dataclass
class CPIMMessage:
    """A Message/CPIM body: ``headers`` (:class:`CPIMHeader`, in order), the
    encapsulated MIME object's ``content_headers`` (``(name, value)`` pairs, in order)
    and its ``body`` (bytes, in the charset its Content-Type names)."""

    headers: List[CPIMHeader] = field(default_factory=list)
    content_headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def build(cls, body: bytes | str, content_type: str = "text/plain", *,
              sender: Optional[Address] = None, recipients: Sequence[Address] = (),
              cc: Sequence[Address] = (), moment: Optional[datetime] = None,
              subject: Optional[str] = None, namespaces: Optional[Dict[str, str]] = None,
              headers: Iterable[Tuple[str, str]] = (),
              content_headers: Iterable[Tuple[str, str]] = ()) -> CPIMMessage:
        """A new message. A ``str`` body is encoded in the charset ``content_type`` names,
        or in UTF-8, adding ``charset=utf-8`` to it. ``moment`` is the ``DateTime`` (now,
        when ``None``); ``namespaces`` maps prefixes to the URIs their ``NS`` headers
        declare; ``headers`` are more ``(name, text)`` message headers (escaped here), such as
        ``("imdn.Message-ID", "...")``. Raises ``ValueError`` for a name that is not one."""
        if isinstance(body, str):
            named = _mime(content_type).get_content_charset()
            if named is None:
                content_type += "; charset=utf-8"
            body = body.encode(named or "utf-8")
        message = cls(content_headers=[("Content-Type", content_type)], body=body)
        if sender is not None:
            message.add("From", str(sender), escaped=True)
        for address in recipients:
            message.add("To", str(address), escaped=True)
        for address in cc:
            message.add("cc", str(address), escaped=True)
        message.add("DateTime", format_datetime(moment or datetime.now(timezone.utc)),
                    escaped=True)
        if subject is not None:
            message.add("Subject", subject)
        for prefix, uri in (namespaces or {}).items():
            message.add("NS", "%s <%s>" % (prefix, uri), escaped=True)
        for name, text in headers:
            message.add(name, text)
        for name, value in content_headers:
            message.content_headers.append((name, value))
        for name, value in message.content_headers:
            if not _CONTENT_HEADER.fullmatch("%s: %s" % (name, value)):
                raise ValueError("not a content header: %r: %r" % (name, value))
        _check_message_headers(message)  # what parse_cpim would refuse, build refuses
        return message

    def add(self, name: str, value: str, escaped: bool = False,
            parameters: Tuple[Tuple[str, str], ...] = ()) -> None:
        """Add a message header; ``value`` is escaped here unless ``escaped``."""
        if not re.fullmatch(_HEADER_NAME, name):
            raise ValueError("not a CPIM header name: %r" % name)
        header = CPIMHeader(name, value if escaped else _escape(value), parameters)
        header.encode().encode("utf-8")  # UnicodeEncodeError (a lone surrogate) now
        if not _HEADER_LINE.fullmatch(header.encode()) or not _VALUE.fullmatch(header.value):
            raise ValueError("not a CPIM header: %r" % header.encode()[:200])
        self.headers.append(header)

    # Reading.

    def resolved(self) -> List[Tuple[CPIMHeader, Optional[str]]]:
        """Each header with the URI of its namespace: the one its prefix's ``NS`` header
        before it declared (the default namespace's, for a name without prefix, when one
        was declared), else ``None``."""
        declared: Dict[str, str] = {}
        out = []
        for header in self.headers:
            out.append((header, declared.get(header.prefix or "")))
            if header.name == "NS":
                match = _NS_VALUE.fullmatch(header.value)
                if match is not None:
                    declared[match.group(1) or ""] = match.group(2)
        return out

    def all(self, name: str, namespace: Optional[str] = None) -> List[CPIMHeader]:
        """Every header named ``name`` (case-sensitive, as RFC 3862 has it); with
        ``namespace`` (a URI), every header whose local name is ``name`` in that
        namespace, whatever prefix declared it."""
        if namespace is None:
            return [header for header in self.headers if header.name == name]
        return [header for header, uri in self.resolved()
                if uri == namespace and header.local_name == name]

    def in_namespace(self, namespace: str) -> List[CPIMHeader]:
        """The headers of ``namespace`` (a URI), in order."""
        return [header for header, uri in self.resolved() if uri == namespace]

    def first(self, name: str, namespace: Optional[str] = None) -> Optional[str]:
        """The text of the first header ``name`` (see :meth:`all`), or ``None``."""
        found = self.all(name, namespace)
        return found[0].text if found else None

    @property
    def namespaces(self) -> Dict[str, str]:
        """Prefix to URI, as the ``NS`` headers leave them at the end (the default
        namespace's prefix is ``""``)."""
        declared = {}
        for header in self.all("NS"):
            match = _NS_VALUE.fullmatch(header.value)
            if match is not None:
                declared[match.group(1) or ""] = match.group(2)
        return declared

    def prefix_of(self, namespace: str) -> Optional[str]:
        """A prefix that names ``namespace`` for headers added at the end, or ``None``."""
        for prefix, uri in self.namespaces.items():
            if uri == namespace:
                return prefix
        return None

    @property
    def sender(self) -> Optional[Address]:
        found = self.all("From")
        return Address.parse(found[0].value) if found else None

    @property
    def recipients(self) -> List[Address]:
        return [Address.parse(header.value) for header in self.all("To")]

    @property
    def cc(self) -> List[Address]:
        return [Address.parse(header.value) for header in self.all("cc")]

    @property
    def moment(self) -> Optional[datetime]:
        """The ``DateTime``, or ``None``."""
        found = self.all("DateTime")
        return parse_datetime(found[0].value) if found else None

    def subject(self, lang: Optional[str] = None) -> Optional[str]:
        """The ``Subject`` in ``lang`` (or the one without a language), or ``None``."""
        for header in self.all("Subject"):
            if dict(header.parameters).get("lang") == lang:
                return header.text
        return None

    def content_header(self, name: str) -> Optional[str]:
        """A content header's value (its name case-insensitive, as MIME has it)."""
        for key, value in self.content_headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def content_type(self) -> str:
        """The MIME type of the body, lower case, without parameters."""
        return _mime(self.content_header("Content-Type") or "").get_content_type()

    @property
    def charset(self) -> str:
        """The body's charset (``utf-8`` when its Content-Type names none)."""
        return _mime(self.content_header("Content-Type") or "").get_content_charset("utf-8")

    @property
    def text(self) -> str:
        """The body decoded in its charset; ``CPIMParseError`` when it is not in it."""
        try:
            return self.body.decode(self.charset)
        except (LookupError, UnicodeDecodeError) as error:
            raise CPIMParseError("the body is not %s: %s" % (self.charset, error)) from None

    # Writing.

    def encode(self) -> bytes:
        """The message as bytes (what :func:`parse_cpim` reads)."""
        lines = [header.encode() for header in self.headers] + [""]
        lines += ["%s: %s" % pair for pair in self.content_headers] + ["", ""]
        return "\r\n".join(lines).encode("utf-8") + self.body


def _mime(content_type: str) -> Message:
    message = Message()
    message["Content-Type"] = content_type
    return message


def is_token(text: str) -> bool:
    """Whether ``text`` is RFC 3862's Token (what an ``imdn.Message-ID`` is, say)."""
    return _TOKEN_RE.fullmatch(text) is not None


def decode_text(body: bytes, content_type: str) -> str:
    """A text body decoded by the charset its ``content_type`` names (UTF-8 when none),
    undecodable bytes as U+FFFD; a charset Python lacks, or whose codec fails, reads as
    UTF-8."""
    charset = _mime(content_type).get_content_charset("utf-8")
    try:
        return body.decode(charset, "replace")
    except (LookupError, UnicodeError):
        return body.decode("utf-8", "replace")


def parse_cpim(data: bytes) -> CPIMMessage:
    """Parse a Message/CPIM body (see the module's docstring); ``CPIMParseError`` for
    anything that does not follow RFC 3862."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        raise CPIMParseError("no blank line after the message headers")
    content_end = data.find(b"\r\n\r\n", head_end + 4)
    if content_end < 0:
        raise CPIMParseError("no blank line after the content headers")
    try:
        head = data[:head_end].decode("utf-8")
        content = data[head_end + 4:content_end].decode("utf-8")
    except UnicodeDecodeError as error:
        raise CPIMParseError("headers that are not UTF-8: %s" % error) from None
    head_lines, content_lines = head.split("\r\n"), content.split("\r\n")
    if len(head_lines) + len(content_lines) > MAX_CPIM_HEADERS:
        raise CPIMParseError("more than %d headers" % MAX_CPIM_HEADERS)
    message = CPIMMessage(body=data[content_end + 4:])
    for line in head_lines:
        message.headers.append(_message_header(line))
    _check_message_headers(message)
    for line in content_lines:
        if len(line.encode("utf-8")) > MAX_CPIM_HEADER_LENGTH:
            raise CPIMParseError("a content header over %d bytes" % MAX_CPIM_HEADER_LENGTH)
        match = _CONTENT_HEADER.fullmatch(line)
        if match is None:
            raise CPIMParseError("not a content header: %r" % line[:200])
        message.content_headers.append((match.group(1), match.group(2)))
    if message.content_header("Content-Type") is None:
        raise CPIMParseError("the encapsulated object has no Content-Type")
    return message


def _message_header(line: str) -> CPIMHeader:
    if len(line.encode("utf-8")) > MAX_CPIM_HEADER_LENGTH:
        raise CPIMParseError("a message header over %d bytes" % MAX_CPIM_HEADER_LENGTH)
    match = _HEADER_LINE.fullmatch(line)
    if match is None:
        raise CPIMParseError("not a message header (Name:[;param=value] value): %r"
                             % line[:200])
    name, parameters, value = match.groups()
    if not _VALUE.fullmatch(value):
        raise CPIMParseError("a control character or a bad escape in %s: %r"
                             % (name, value[:200]))
    return CPIMHeader(name, value, tuple(_PARAMETERS.findall(parameters)))


def _check_message_headers(message: CPIMMessage) -> None:
    """The core headers' values, and every prefix declared."""
    declared = set()
    for header in message.headers:
        name, value = header.name, header.value
        if name in ("From", "To", "cc"):
            Address.parse(value)
        elif name == "DateTime":
            parse_datetime(value)
        elif name == "NS":
            match = _NS_VALUE.fullmatch(value)
            if match is None:
                raise CPIMParseError("not an NS value ([prefix] <URI>): %r" % value[:200])
            declared.add(match.group(1) or "")
        elif name == "Require":
            if not _REQUIRE_VALUE.fullmatch(value):
                raise CPIMParseError("not a list of header names: %r" % value[:200])
        if name in ("From", "To", "cc", "DateTime", "NS", "Require") and header.parameters:
            raise CPIMParseError("%s takes no parameters" % name)
        if name == "Subject":
            for key, tag in header.parameters:
                if key != "lang" or not _LANGUAGE_TAG.fullmatch(tag):
                    raise CPIMParseError("a Subject parameter other than lang=<tag>: "
                                         "%s=%s" % (key, tag[:80]))
        if header.prefix is not None and header.prefix not in declared:
            raise CPIMParseError("the prefix of %s was not declared by an NS header before it"
                                 % name)
    for single in ("From", "DateTime"):
        if len(message.all(single)) > 1:
            raise CPIMParseError("more than one %s header" % single)
