"""Text from a peer, made safe to show: on a terminal (``msrp listen``) or in a log line
(``twistd msrp --traffic-log``).

A peer chooses every byte of its header values and messages. Shown as they are, a line
break would let it forge a log line of its own, a bare CR or a terminal escape sequence
would let it overwrite or hide what came before, and bytes that are not UTF-8 would be
shown as something else than they are. :func:`escape_peer_text` turns each such character
into a visible escape, so that what is shown is one line that says exactly what arrived.
"""

from __future__ import annotations

from typing import Union

__all__ = ["escape_peer_text"]

_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    point = ord(char)
    if 0xDC80 <= point <= 0xDCFF:
        # A byte that was not UTF-8, decoded with "surrogateescape" (as the parser does).
        return "\\x%02x" % (point - 0xDC00)
    if point < 0x100:
        return "\\x%02x" % point
    if point < 0x10000:
        return "\\u%04x" % point
    return "\\U%08x" % point


def escape_peer_text(value: Union[str, bytes]) -> str:
    """``value`` (text, or bytes read as UTF-8) with every character that
    ``str.isprintable`` calls unprintable (control characters, CR and LF, line and
    paragraph separators, format characters such as bidirectional overrides, unassigned
    code points), every byte that is not UTF-8, and the backslash itself shown as a
    backslash escape (``\\n``, ``\\x1b``, ``\\u202e``, ``\\xff``, ``\\\\``)."""
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(char if char.isprintable() and char != "\\" else _escape(char)
                   for char in text)
