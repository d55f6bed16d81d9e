"""The relay's side of HTTP Digest for AUTH (RFC 4976 section 5, RFC 2617, ``qop=auth``).

:class:`DigestAuthority` makes challenges and checks answers. Its nonces are random,
remembered with their time, and live ``nonce_lifetime`` seconds: a correct answer with an
older one is told ``stale`` (the client answers again without asking its user), and every
answer must count up (``nc``) from the last one with its nonce, so a captured answer
cannot be replayed. At most ``max_nonces`` are remembered; past it the oldest is
forgotten (its answers are then stale).
"""

from __future__ import annotations

import hmac
import os
from collections import OrderedDict
from typing import Any, Dict, Tuple

from msrplib._headers import AuthParams
from msrplib.digest import response_from_ha1

__all__ = ["DigestAuthority", "NONCE_LIFETIME", "MAX_NONCES", "GRANTED", "STALE", "REFUSED"]

#: Seconds a nonce may be used for.
NONCE_LIFETIME = 300.0
#: Nonces remembered at once.
MAX_NONCES = 10000

#: What :meth:`DigestAuthority.check` answers.
GRANTED, STALE, REFUSED = "granted", "stale", "refused"


class DigestAuthority:
    """Challenges and checks for ``realm``; ``users`` maps names to HA1 (hex)."""

    def __init__(self, realm: str, users: Dict[str, str], clock: Any,
                 nonce_lifetime: float = NONCE_LIFETIME, max_nonces: int = MAX_NONCES) -> None:
        self.realm = realm
        self.users = users
        self.clock = clock
        self.nonce_lifetime = nonce_lifetime
        self.max_nonces = max_nonces
        # nonce -> (when it was made, the last nc answered with it)
        self._nonces: OrderedDict[str, Tuple[float, int]] = OrderedDict()

    def challenge(self, stale: bool = False) -> AuthParams:
        """A ``WWW-Authenticate`` value with a new nonce."""
        nonce = os.urandom(16).hex()
        self._nonces[nonce] = (self.clock.seconds(), 0)
        while len(self._nonces) > self.max_nonces:
            self._nonces.popitem(last=False)
        params = {"realm": self.realm, "nonce": nonce, "qop": "auth", "algorithm": "MD5"}
        tokens = {"algorithm"}
        if stale:
            params["stale"] = "true"
            tokens.add("stale")
        return AuthParams("Digest", params, frozenset(tokens))

    def check(self, answer: AuthParams, method: str, uri: str) -> Tuple[str, str]:
        """``(verdict, user)`` for an ``Authorization`` answering one of our challenges
        for ``method`` on ``uri`` (the AUTH's To-Path URI): :data:`GRANTED`,
        :data:`STALE` (right credentials, expired or forgotten nonce: challenge again
        with ``stale``) or :data:`REFUSED`."""
        params = answer.params
        user = params.get("username", "")
        ha1 = self.users.get(user)
        nonce, cnonce, nc_text = params.get("nonce", ""), params.get("cnonce", ""), \
            params.get("nc", "")
        if answer.scheme.lower() != "digest" or ha1 is None or params.get("uri") != uri \
                or params.get("realm") != self.realm or params.get("qop") != "auth" \
                or params.get("algorithm", "MD5").upper() != "MD5" \
                or len(nc_text) != 8 or not all(c in "0123456789abcdefABCDEF" for c in nc_text) \
                or not cnonce or not nonce:
            return REFUSED, user
        expected = response_from_ha1(ha1, method, uri, nonce, cnonce, nc_text, "auth")
        if not hmac.compare_digest(expected, params.get("response", "")):
            return REFUSED, user
        known = self._nonces.get(nonce)
        if known is None or self.clock.seconds() - known[0] > self.nonce_lifetime:
            self._nonces.pop(nonce, None)
            return STALE, user
        nc = int(nc_text, 16)
        if nc <= known[1]:
            return REFUSED, user  # a replay
        self._nonces[nonce] = (known[0], nc)
        return GRANTED, user
