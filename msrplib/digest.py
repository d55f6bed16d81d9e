"""HTTP Digest for relay AUTH (RFC 4976 section 5.1, RFC 2617 with qop=auth). Pure."""

from __future__ import annotations

import hashlib
import secrets
from typing import Optional

from msrplib._headers import AuthParams

__all__ = ["digest_response", "response_from_ha1", "answer_challenge"]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def digest_response(username: str, realm: str, password: str, method: str, uri: str,
                    nonce: str, cnonce: Optional[str] = None, nc: Optional[str] = None,
                    qop: Optional[str] = None) -> str:
    """The ``response`` value of an Authorization header (MD5).

    With ``qop`` ``auth``: MD5(HA1:nonce:nc:cnonce:qop:HA2); without: MD5(HA1:nonce:HA2),
    where HA1 = MD5(username:realm:password) and HA2 = MD5(method:uri).
    """
    return response_from_ha1(_md5("%s:%s:%s" % (username, realm, password)), method, uri,
                             nonce, cnonce, nc, qop)


def response_from_ha1(ha1: str, method: str, uri: str, nonce: str,
                      cnonce: Optional[str] = None, nc: Optional[str] = None,
                      qop: Optional[str] = None) -> str:
    """:func:`digest_response` from HA1 (hex), which is what a server keeps instead of
    the password."""
    ha2 = _md5("%s:%s" % (method, uri))
    if qop:
        return _md5("%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2))
    return _md5("%s:%s:%s" % (ha1, nonce, ha2))


def answer_challenge(challenge: AuthParams, username: str, password: str, uri: str,
                     nonce_count: int = 1, method: str = "AUTH",
                     cnonce: Optional[str] = None) -> AuthParams:
    """The ``Authorization`` answering a ``WWW-Authenticate`` Digest challenge.

    ``uri`` is the relay's URI as the AUTH's To-Path names it (RFC 4976 section 5.1). Raises
    ``ValueError`` for a challenge that is not MD5 Digest with ``auth`` (or no) qop.
    """
    params = challenge.params
    if challenge.scheme.lower() != "digest":
        raise ValueError("not a Digest challenge: %s" % challenge.scheme)
    if params.get("algorithm", "MD5").upper() != "MD5":
        raise ValueError("unsupported Digest algorithm %s" % params["algorithm"])
    if "realm" not in params or "nonce" not in params:
        raise ValueError("Digest challenge without realm or nonce")
    offered = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if offered and "auth" not in offered:
        raise ValueError("Digest challenge offers qop %s, not auth" % params["qop"])
    qop = "auth" if offered else None
    nc = "%08x" % nonce_count
    cnonce = cnonce or secrets.token_hex(8)
    answer = {"username": username, "realm": params["realm"], "nonce": params["nonce"],
              "uri": uri}
    answer["response"] = digest_response(username, params["realm"], password, method, uri,
                                         params["nonce"], cnonce, nc, qop)
    tokens = {"algorithm"}
    if qop:
        answer.update({"qop": qop, "nc": nc, "cnonce": cnonce})
        tokens |= {"qop", "nc"}
    answer["algorithm"] = "MD5"
    if "opaque" in params:
        answer["opaque"] = params["opaque"]
    return AuthParams("Digest", answer, frozenset(tokens))
