"""``twistd msrp``: an MSRP endpoint with a local JSON control API (see msrplib.service)."""

import os
import re

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


#: A number given on the command line: ASCII digits, perhaps with a fraction.
_NUMBER = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("An MSRP (RFC 4975) endpoint. It makes sessions directly or through a relay "
                "(RFC 4976), files incoming messages in an inbox directory, sends files from "
                "its outbox directories, and is driven through a JSON control API on a local "
                "port or UNIX socket. Every control API request needs "
                "'Authorization: Bearer <token>', the token being in --control-token-file.")
    optParameters = [
        ["control", "c", "tcp:8855:interface=127.0.0.1",
         "Where the control API listens: a Twisted endpoint such as "
         "tcp:8855:interface=127.0.0.1 or unix:/run/msrp.sock (mode 0600 unless given)."],
        ["control-token-file", None, "msrp-control-token",
         "File holding the control API's token; made (mode 0600, a new random token) when "
         "it does not exist. It must be ours and unreadable by others."],
        ["max-request-size", None, "1048576",
         "Largest control API request body in bytes (413 past it)."],
        ["max-sessions", None, "1000", "Most sessions at once (429 past it)."],
        ["event-text-limit", None, "65536", "Text messages up to this many bytes have their "
         "text in their event."],
        ["max-event-text", None, "1048576", "Characters of text a session's events keep in "
         "all; past it the oldest events lose theirs."],
        ["session-expiry", None, "300", "Seconds after which a session prepared but not "
         "completed, or one that has ended, is forgotten."],
        ["host", None, "127.0.0.1", "Our address in the MSRP URIs of direct sessions."],
        ["inbox", "i", "msrp-inbox", "Directory that incoming messages and files go to."],
        ["relay", "r", None, "The relay's URI, e.g. msrps://relay.example.com:2855;tcp: "
         "sessions then go through it."],
        ["domain", None, None, "The relay's domain (default: the relay URI's host)."],
        ["username", "u", None, "User name for the relay's AUTH."],
        ["password-file", None, None, "File holding the relay password."],
        ["password-env", None, "MSRP_PASSWORD",
         "Environment variable holding the relay password, read without --password-file."],
        ["relay-ca", None, None, "PEM certificate the relay's must chain to "
         "(default: the system's trust store)."],
        ["chunk-size", None, "65536", "Body bytes per chunk (relays lower it to 8192)."],
        ["max-message-size", None, "67108864",
         "Largest incoming message in bytes (413 past it); 0 for no limit."],
        ["keepalive", None, "60", "Seconds of silence before a session checks its peer; "
         "0 turns it off."],
    ]
    optFlags = [
        ["tls", None, "Direct sessions use msrps with a generated certificate."],
        ["no-verify-relay", None, "Do not check the relay's TLS certificate (tests only)."],
        ["traffic-log", "t", "Log the start line and headers of every chunk."],
    ]

    def __init__(self):
        super().__init__()
        self["outbox"] = []

    def opt_outbox(self, directory):
        """A directory whose regular files the control API may send (repeatable; without one, sending files is off)."""  # noqa: E501 (twistd --help shows it as it is)
        self["outbox"].append(directory)

    def postOptions(self):
        for name in ("chunk-size", "max-message-size", "keepalive", "max-request-size",
                     "max-sessions", "session-expiry", "event-text-limit", "max-event-text"):
            if not _NUMBER.fullmatch(self[name]):
                raise usage.UsageError("--%s takes a number" % name)
        for name in ("chunk-size", "max-request-size", "max-sessions", "session-expiry"):
            if float(self[name]) <= 0:
                raise usage.UsageError("--%s must be above 0" % name)
        if self["relay"] and not self["username"]:
            raise usage.UsageError("--relay needs --username")
        for directory in self["outbox"]:
            if not os.path.isdir(directory):
                raise usage.UsageError("--outbox %s is not a directory (make it first; the "
                                       "inbox is made for you)" % directory)


@implementer(IServiceMaker, IPlugin)
class MSRPServiceMaker:
    tapname = "msrp"
    description = "An MSRP endpoint driven through a local JSON control API."
    options = Options

    def makeService(self, options):
        from msrplib.daemon import make_service
        try:
            return make_service(options)
        except (ValueError, OSError) as error:
            raise SystemExit("twistd msrp: %s" % error) from None


serviceMaker = MSRPServiceMaker()
