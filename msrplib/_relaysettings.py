"""What a relay client is told and what it looks up: ``MSRPRelaySettings`` (which relay, which
credentials, which limits), ``locate_relay`` (DNS SRV, RFC 4976 section 6.1), the relay
errors, and the timing of AUTH and its refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from twisted.internet.defer import inlineCallbacks

from msrplib._uri import DEFAULT_PORT, URI
from msrplib.errors import MSRPError
from msrplib.tls import TLSIdentity, relay_tls_options

__all__ = ["MSRPRelaySettings", "MSRPAuthError", "MSRPRelayNotFound", "locate_relay",
           "AUTH_REFRESH_FRACTION", "AUTH_RETRY_SECONDS", "ASSUMED_GRANT_SECONDS",
           "REFRESH_BIND_WAIT", "RELAY_CHUNK_SIZE", "RELAY_UNREPORTED_BYTES",
           "RELAY_FLOW_HEADER", "RelayFlow", "parse_relay_flow", "MAX_NEXT_RELAYS"]

#: AUTH is repeated when this fraction of the granted Expires has passed.
AUTH_REFRESH_FRACTION = 0.75
#: A refresh that failed is tried again after this many seconds, or after half of what was
#: left of the grant when it was due, if that is sooner.
AUTH_RETRY_SECONDS = 30.0
#: The grant assumed when a relay's 200 to AUTH gives no Expires (and none is configured).
ASSUMED_GRANT_SECONDS = 3600
#: A refresh due while the connection binds waits this long: the binding SEND's answer
#: and an AUTH's must not cross.
REFRESH_BIND_WAIT = 1.0

#: The header of a relay's 200 to AUTH (an msrplib extension; others ignore it, as RFC
#: 4975 has unknown headers ignored) saying that the relay applies backpressure itself and
#: how large a chunk it takes: ``backpressure; max-chunk-size=65536``.
RELAY_FLOW_HEADER = "Relay-Flow"

#: How many relays may follow the first (``MSRPRelaySettings.next_relay``, and theirs):
#: more fails ``prepare()`` with ``ValueError`` (settings that go round, say).
MAX_NEXT_RELAYS = 3

#: Body bytes per chunk through a relay by default: Kamailio's relay drops frames over about
#: 11 KB, so 8 KiB leaves room for the headers.
RELAY_CHUNK_SIZE = 8 * 1024
#: Body bytes of a message sent with success reports that may run ahead of the peer's
#: REPORTs through a relay: relays answer each chunk themselves and apply no backpressure
#: (Kamailio drops a receiver that falls 32-64 KB behind), so only the peer's REPORTs pace
#: the sender.
RELAY_UNREPORTED_BYTES = 32 * 1024


class MSRPAuthError(MSRPError):
    """The relay refused our AUTH; ``code`` is its answer (401 for wrong credentials)."""

    code = 401
    comment = "Unauthorized"


class MSRPRelayNotFound(MSRPError):
    """No relay could be found for the domain (DNS SRV and address lookups failed)."""

    code = 404
    comment = "Relay not found"


@dataclass
class MSRPRelaySettings:
    """Which relay to use and how to log in to it (the seed's ``MSRPRelaySettings``).

    With ``host`` the relay is there; otherwise DNS SRV ``_msrps._tcp.<domain>`` (or
    ``_msrp._tcp`` without TLS) finds it. ``credentials`` is our TLS identity towards the
    relay (a :class:`~msrplib.tls.TLSIdentity` or Twisted TLS options).

    Beyond the seed: ``expires`` is sent in AUTH only when set (RFC 4976 makes it optional,
    and some relays fail on it); ``verify_tls`` turns the relay name check off (tests with
    self-signed relays only); ``trust_root`` is what the relay's certificate must chain to
    (default: the platform's); ``max_chunk_size`` bounds chunk bodies through this relay;
    ``resolver`` is the ``twisted.names`` resolver for SRV lookups; ``max_unreported_bytes``
    is how far a message sent with success reports may run ahead of the peer's REPORTs
    (``SessionSettings.max_unreported_bytes``; ``None``: no limit). Those two defaults
    are what Kamailio's relay needs; with ``follow_relay_flow`` (the default), a session
    through a relay whose AUTH grant says that it applies backpressure itself
    (:data:`RELAY_FLOW_HEADER`, as msrplib's own relay does), to a peer reached through
    no other relay, sends chunks of the size the relay names, unpaced. ``transport``
    ``ws`` (or ``wss``, with ``use_tls``) reaches the relay over WebSocket (RFC 7977), as
    a browser does.

    ``next_relay``: a second relay of ours that this one forwards to (a client behind
    two relays of its own, RFC 4976 section 5), with its own credentials: after the
    AUTH with this relay, the connection AUTHs with that one through it. Our path names
    them as peers reach us, the second relay's Use-Path first. The second relay is named
    by its ``uri`` (``host``, or ``domain``, and ``port``): this relay finds it, not us.
    It may have a ``next_relay`` of its own (:data:`MAX_NEXT_RELAYS` in all). Through
    more than one relay, sessions send as Kamailio's relay needs (no relay's flow
    control is followed).
    """

    domain: str
    username: str
    password: str
    host: Optional[str] = None
    use_tls: bool = False
    port: Optional[int] = None
    credentials: Any = None
    expires: Optional[int] = None
    verify_tls: bool = True
    trust_root: Any = None
    max_chunk_size: int = RELAY_CHUNK_SIZE
    resolver: Any = None
    max_unreported_bytes: Optional[int] = RELAY_UNREPORTED_BYTES
    follow_relay_flow: bool = True
    transport: str = "tcp"
    next_relay: Optional[MSRPRelaySettings] = None

    @property
    def uri(self) -> URI:
        """The relay's URI, the To-Path of AUTH and the Digest ``uri``."""
        return URI(host=self.host or self.domain, port=self.port, use_tls=self.use_tls,
                   transport=self.transport)

    def tls_options(self) -> Any:
        """TLS client options for the relay connection."""
        if self.credentials is not None and not isinstance(self.credentials, TLSIdentity):
            return self.credentials
        return relay_tls_options(self.host or self.domain, self.trust_root, self.credentials,
                                 self.verify_tls)


@inlineCallbacks
def locate_relay(relay: MSRPRelaySettings) -> Any:
    """Fire with ``(host, port)`` of the relay: ``host`` when given, else DNS SRV.

    Without an SRV record the domain itself is used on the default port (RFC 4976
    section 6.1). Fails with ``MSRPRelayNotFound`` when the SRV record says there is none.
    """
    if relay.host is not None:
        return relay.host, relay.port or DEFAULT_PORT
    resolver = relay.resolver
    if resolver is None:
        from twisted.names import client
        resolver = client.getResolver()
    name = "_%s._tcp.%s" % ("msrps" if relay.use_tls else "msrp", relay.domain)
    try:
        answers, _, _ = yield resolver.lookupService(name)
    except Exception:
        return relay.domain, relay.port or DEFAULT_PORT
    records = sorted((answer.payload for answer in answers
                      if getattr(answer.payload, "target", None) is not None),
                     key=lambda srv: (srv.priority, -srv.weight))
    if not records or str(records[0].target) in ("", "."):
        raise MSRPRelayNotFound("%s has no MSRP relay (SRV %s)" % (relay.domain, name))
    return str(records[0].target), records[0].port


@dataclass(frozen=True)
class RelayFlow:
    """What a relay said of its flow control in its grant (:data:`RELAY_FLOW_HEADER`):
    it applies backpressure itself, and takes chunks of up to ``max_chunk_size``."""

    max_chunk_size: int


def parse_relay_flow(value: Optional[str]) -> Optional[RelayFlow]:
    """The :class:`RelayFlow` a header value says, or ``None`` (no header, or one that
    does not say ``backpressure`` with a chunk size from 1 KiB to 1 MiB)."""
    if not value:
        return None
    parts = [part.strip() for part in value.split(";")]
    if parts[0].lower() != "backpressure":
        return None
    for part in parts[1:]:
        name, _, number = part.partition("=")
        if name.strip().lower() == "max-chunk-size" and number.strip().isdigit() \
                and len(number.strip()) < 9 and 1024 <= int(number) <= 1024 * 1024:
            return RelayFlow(int(number))
    return None
