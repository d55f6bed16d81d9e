"""The relay's users file: one ``user:HA1`` per line, never a clear-text password.

HA1 is RFC 2617's MD5(user:realm:password), in hex: what Digest needs to check an answer,
and not the password itself. Blank lines and lines starting with ``#`` are skipped;
anything else that is not ``user:32-hex-digits`` is an error naming its line.
"""

from __future__ import annotations

import hashlib
import re
from typing import Dict, Iterable, List, Optional

__all__ = ["make_ha1", "parse_users", "load_users", "UsersFileError", "main"]

_LINE = re.compile(r"([^:\s]{1,128}):([0-9a-fA-F]{32})")


class UsersFileError(ValueError):
    """A users file that does not follow its format (the message names the line)."""


def make_ha1(user: str, realm: str, password: str) -> str:
    """The HA1 to put in a users file for ``user`` in ``realm``."""
    return hashlib.md5(("%s:%s:%s" % (user, realm, password)).encode("utf-8")).hexdigest()


def parse_users(lines: Iterable[str]) -> Dict[str, str]:
    """User name to HA1 (lower-case hex) from the file's lines."""
    users: Dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = _LINE.fullmatch(text)
        if match is None:
            raise UsersFileError("line %d is not user:HA1 (32 hex digits)" % number)
        if match.group(1) in users:
            raise UsersFileError("line %d names %s a second time" % (number, match.group(1)))
        users[match.group(1)] = match.group(2).lower()
    return users


def load_users(path: str) -> Dict[str, str]:
    """:func:`parse_users` of the file at ``path``."""
    with open(path, encoding="utf-8") as source:
        return parse_users(source)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m msrplib.relayserver REALM USER``: print the users file line for
    USER, the password read from the terminal (or, when not a terminal, standard input)."""
    import getpass
    import sys
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m msrplib.relayserver REALM USER", file=sys.stderr)
        return 2
    realm, user = args
    if not _LINE.fullmatch("%s:%s" % (user, "0" * 32)):
        print("not a user name: %r" % user, file=sys.stderr)
        return 2
    password = getpass.getpass() if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    print("%s:%s" % (user, make_ha1(user, realm, password)))
    return 0
