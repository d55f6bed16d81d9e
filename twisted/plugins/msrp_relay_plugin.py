"""``twistd msrp-relay``: an MSRP relay (RFC 4976); see msrplib.relayserver."""

import ipaddress
import re
import socket

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

_COUNT = re.compile(r"[0-9]{1,9}")


def _unspecified(interface):
    """Whether ``interface`` is "any address" (``0.0.0.0``, ``::``, ``0``...): no address
    a peer can reach the relay at."""
    if not interface:
        return True
    try:
        address = ipaddress.ip_address(interface)
    except ValueError:
        pass
    else:
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:0.0.0.0
        return address.is_unspecified or bool(mapped and mapped.is_unspecified)
    try:  # the short IPv4 forms the system takes ("0", "0.0")
        return socket.inet_aton(interface) == bytes(4)
    except OSError:
        return False  # a name


class Options(usage.Options):
    synopsis = "--domain DOMAIN --users FILE [options]"
    longdesc = ("An MSRP relay (RFC 4976): clients AUTH with HTTP Digest against the users "
                "file and get a Use-Path; chunks are forwarded hop by hop, with backpressure "
                "from every next hop to what feeds it. See doc/relay-server.rst.")
    optParameters = [
        ["domain", "d", None, "The Digest realm (the relay's domain)."],
        ["users", "u", None, "File of user:HA1 lines, HA1 = MD5(user:realm:password) in hex "
         "(python -m msrplib.relayserver REALM USER makes a line)."],
        ["port", "p", "2855", "TCP port for msrp (0: none when --tls-port is given)."],
        ["tls-port", None, None, "TCP port for msrps (needs --certificate and --key)."],
        ["ws-port", None, None, "TCP port for MSRP over WebSocket (RFC 7977, ws)."],
        ["wss-port", None, None, "TCP port for MSRP over secure WebSocket (wss; needs "
         "--certificate and --key)."],
        ["certificate", None, None, "PEM certificate (chain) of the msrps and wss ports."],
        ["key", None, None, "PEM private key of the msrps port."],
        ["interface", None, "127.0.0.1", "Address to listen on."],
        ["host", None, None, "Address the relay's URIs and Use-Paths name (default: "
         "--interface)."],
        ["min-expires", None, "60", "Shortest AUTH grant in seconds (423 below)."],
        ["max-expires", None, "3600", "Longest AUTH grant in seconds (423 above)."],
        ["default-expires", None, "600", "The grant of an AUTH that asks for none."],
        ["metrics", None, None, "Where the Prometheus exporter listens, as a Twisted "
         "endpoint (e.g. tcp:9464:interface=127.0.0.1); none by default."],
        ["json-log", None, None, "File the log events are appended to as JSON records."],
        ["web-demo", None, None, "Where the browser demo page is served, as a Twisted "
         "endpoint (e.g. tcp:8000:interface=127.0.0.1); needs --wss-port or --ws-port."],
        ["workers", "w", "1", "Relay processes sharing the client ports (SO_REUSEPORT); "
         "past 1, this process supervises them and serves --metrics and --web-demo for "
         "them all."],
        ["next-hop-ca", None, None, "PEM certificate that msrps next hops must chain to "
         "(default: the system's trust store)."],
        ["home-fd", None, None, "A worker's own listening socket, whose port its "
         "Use-Paths name (handed down by its supervisor)."],
    ]
    optFlags = [
        ["no-verify-next-hop", None, "Do not check msrps next hops' certificates (tests)."],
        ["worker", None, "Run as one of the workers another relay process started."],
    ]

    def __init__(self):
        super().__init__()
        self["next-hop-chunk-size"] = []
        self["next-hop"] = []
        self["refuse-next-hop"] = []
        self["sibling-port"] = []

    def opt_next_hop(self, value):
        """A network (10.0.0.0/8, 192.0.2.7) or host name the relay may connect to for its clients (repeatable; without one, any address outside the refused networks)."""  # noqa: E501 (twistd --help shows it as it is)
        self["next-hop"].append(value)

    def opt_refuse_next_hop(self, value):
        """A network the relay never connects to for its clients unless --next-hop names it (repeatable; added to loopback, link-local, multicast and the other special-purpose networks, refused by default)."""  # noqa: E501 (twistd --help shows it as it is)
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise usage.UsageError("--refuse-next-hop takes a network (10.0.0.0/8), "
                                   "not %r" % value) from None
        self["refuse-next-hop"].append(value)

    def opt_sibling_port(self, value):
        """Another worker's home port, which this one may forward to (repeatable; set by the supervisor)."""  # noqa: E501 (twistd --help shows it as it is)
        if not _COUNT.fullmatch(value):
            raise usage.UsageError("--sibling-port takes a port number")
        self["sibling-port"].append(value)

    def opt_next_hop_chunk_size(self, value):
        """HOST:PORT=BYTES: the largest chunk body that next hop takes (repeatable; e.g. 8192 for Kamailio's relay)."""  # noqa: E501 (twistd --help shows it as it is)
        self["next-hop-chunk-size"].append(value)

    def postOptions(self):
        if not self["domain"] or not self["users"]:
            raise usage.UsageError("--domain and --users are required")
        for name in ("port", "min-expires", "max-expires", "default-expires", "workers"):
            if not _COUNT.fullmatch(self[name] or ""):
                raise usage.UsageError("--%s takes a whole number" % name)
        for name in ("tls-port", "ws-port", "wss-port"):
            if self[name] is not None and not _COUNT.fullmatch(self[name]):
                raise usage.UsageError("--%s takes a port number" % name)
        if self["home-fd"] is not None:
            if not _COUNT.fullmatch(self["home-fd"]):
                raise usage.UsageError("--home-fd takes a file descriptor number")
            if not self["worker"]:
                raise usage.UsageError("--home-fd is for a worker (--worker)")
        if int(self["workers"]) < 1:
            raise usage.UsageError("--workers must be 1 or more")
        if not self["host"] and _unspecified(self["interface"]):
            raise usage.UsageError("--interface %s needs --host: the address the relay's "
                                   "URIs name, where its peers reach it"
                                   % self["interface"])


@implementer(IServiceMaker, IPlugin)
class MSRPRelayServiceMaker:
    tapname = "msrp-relay"
    description = "An MSRP relay (RFC 4976) with Digest AUTH and backpressure."
    options = Options

    def makeService(self, options):
        from msrplib.relayserver.daemon import make_service
        try:
            return make_service(options)
        except (ValueError, OSError) as error:
            raise SystemExit("twistd msrp-relay: %s" % error) from None


serviceMaker = MSRPRelayServiceMaker()
