"""An MSRP relay (RFC 4976) to run (``twistd msrp-relay``) or to start from tests:
:class:`~msrplib.relayserver.relay.MSRPRelay`, with its users file
(:mod:`~msrplib.relayserver.users`) and Digest checks
(:mod:`~msrplib.relayserver.digestauth`)."""

from msrplib.relayserver.digestauth import DigestAuthority
from msrplib.relayserver.relay import MSRPRelay, RelaySettings
from msrplib.relayserver.users import UsersFileError, load_users, make_ha1, parse_users

__all__ = ["MSRPRelay", "RelaySettings", "DigestAuthority", "load_users", "parse_users",
           "make_ha1", "UsersFileError"]
