"""The relay's side of HTTP Digest for AUTH (RFC 4976 section 5, RFC 2617, ``qop=auth``).

:class:`DigestAuthority` makes challenges and checks answers. A nonce carries the time it
was made and a MAC of that time under a secret of the relay's, so making one stores
nothing: a stranger who asks for challenges without end fills no table, and cannot push
anyone's nonce out of one. A nonce lives ``nonce_lifetime`` seconds: a correct answer
with an older one is told ``stale`` (the client answers again without asking its user).
Each answer must count up (``nc``) from the last one accepted with its nonce, so a
captured answer cannot be replayed: those counts are the only state, kept for accepted
answers (which need the password) until their nonce is too old to matter, at most
``max_nonces`` of them. Past that, the oldest count is forgotten to make room, and every
nonce made no later than it is answered ``stale`` from then on (its count could no
longer be checked): a client answers again with a new nonce, so a user who makes nonces
by the hundred thousand shuts nobody else out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

from msrplib._headers import AuthParams
from msrplib.digest import response_from_ha1

__all__ = ["DigestAuthority", "NONCE_LIFETIME", "MAX_NONCES", "GRANTED", "STALE", "REFUSED"]

#: Seconds a nonce may be used for.
NONCE_LIFETIME = 300.0
#: Nonces whose answer counts are remembered at once.
MAX_NONCES = 100000

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
        self._secret = os.urandom(32)
        # nonce -> (when it was made, the last nc accepted with it), in the order accepted
        self._counts: OrderedDict[str, Tuple[float, int]] = OrderedDict()
        # Nonces made at or before this time are stale: their counts were forgotten.
        self._forgotten_up_to = float("-inf")

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def challenge(self, stale: bool = False) -> AuthParams:
        """A ``WWW-Authenticate`` value with a new nonce."""
        made = "%x.%s" % (int(self.clock.seconds() * 1000), os.urandom(8).hex())
        params = {"realm": self.realm, "nonce": "%s.%s" % (made, self._mac(made)),
                  "qop": "auth", "algorithm": "MD5"}
        tokens = {"algorithm"}
        if stale:
            params["stale"] = "true"
            tokens.add("stale")
        return AuthParams("Digest", params, frozenset(tokens))

    def _made_at(self, nonce: str) -> Optional[float]:
        """When our ``nonce`` was made, or ``None`` when it is not one of ours."""
        made, _, mac = nonce.rpartition(".")
        if not made or not hmac.compare_digest(self._mac(made), mac):
            return None
        try:
            return int(made.split(".", 1)[0], 16) / 1000
        except ValueError:
            return None

    def check(self, answer: AuthParams, method: str, uri: str) -> Tuple[str, str]:
        """``(verdict, user)`` for an ``Authorization`` answering one of our challenges
        for ``method`` on ``uri`` (the AUTH's To-Path URI): :data:`GRANTED`,
        :data:`STALE` (right credentials, a nonce too old, or no room to remember its
        count: challenge again with ``stale``) or :data:`REFUSED`."""
        params = answer.params
        user = params.get("username", "")
        ha1 = self.users.get(user)
        nonce, cnonce, nc_text = params.get("nonce", ""), params.get("cnonce", ""), \
            params.get("nc", "")
        given = params.get("response", "")
        if answer.scheme.lower() != "digest" or ha1 is None or params.get("uri") != uri \
                or params.get("realm") != self.realm or params.get("qop") != "auth" \
                or params.get("algorithm", "MD5").upper() != "MD5" \
                or len(nc_text) != 8 or not all(c in "0123456789abcdefABCDEF" for c in nc_text) \
                or not cnonce or not nonce or not (nonce + cnonce + given).isascii():
            return REFUSED, user
        made_at = self._made_at(nonce)
        if made_at is None:
            return REFUSED, user
        expected = response_from_ha1(ha1, method, uri, nonce, cnonce, nc_text, "auth")
        if not hmac.compare_digest(expected, given):
            return REFUSED, user
        now = self.clock.seconds()
        self._forget_old(now)
        if now - made_at > self.nonce_lifetime or made_at - now > 1:
            return STALE, user
        nc = int(nc_text, 16)
        last = self._counts.get(nonce)
        if last is not None and nc <= last[1]:
            return REFUSED, user  # a replay
        if last is None:
            if made_at <= self._forgotten_up_to:
                return STALE, user  # its count may have been forgotten: a new nonce
            while self._counts and len(self._counts) >= self.max_nonces:
                _, (forgotten, _) = self._counts.popitem(last=False)
                self._forgotten_up_to = max(self._forgotten_up_to, forgotten)
            if made_at <= self._forgotten_up_to:
                return STALE, user
        self._counts[nonce] = (made_at, nc)
        return GRANTED, user

    def _forget_old(self, now: float) -> None:
        """Drop the counts of nonces too old to be accepted any more."""
        while self._counts:
            nonce, (made_at, _) = next(iter(self._counts.items()))
            if now - made_at <= self.nonce_lifetime:
                break
            del self._counts[nonce]
