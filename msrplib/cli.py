"""``msrp`` (also ``python -m msrplib``): MSRP by hand.

    msrp listen [--host H] [--port P] [--tls] [--inbox DIR]
    msrp send PATH (--text TEXT | --file FILE) [--fingerprint FP] [relay options]
    msrp auth --relay URI --username USER [--password-file F]

``listen`` prints its ``a=path`` (and fingerprint), takes the first peer that binds,
prints text messages and files the rest in the inbox. ``send`` connects to a path and
sends; with the ``cli`` extra (tqdm) a file transfer shows a progress bar with its rate and
ETA. ``auth`` logs in to a relay and prints the Use-Path it grants.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any, List, Optional, TextIO

from twisted.internet import task
from twisted.internet.defer import Deferred, inlineCallbacks

from msrplib._incoming import IncomingMessage
from msrplib.connect import MSRPServer, get_connector
from msrplib.inbox import Inbox, InboxReceiver
from msrplib.protocol import URI
from msrplib.sdp import parse_path_attribute
from msrplib.service import relay_from_options
from msrplib.session import MSRPSession, SessionSettings
from msrplib.tls import TLSIdentity

__all__ = ["main", "run", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    top = argparse.ArgumentParser(prog="msrp", description="MSRP by hand (RFC 4975).")
    commands = top.add_subparsers(dest="command", required=True)

    listen = commands.add_parser("listen", help="wait for one peer and print what it sends")
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on")
    listen.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    listen.add_argument("--tls", action="store_true", help="msrps with a new certificate")
    listen.add_argument("--inbox", default="msrp-inbox", help="where files are saved")

    send = commands.add_parser("send", help="send a message or a file to an MSRP path")
    send.add_argument("path", help="the peer's a=path (URIs separated by spaces)")
    what = send.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a text message")
    what.add_argument("--file", help="a file to send")
    send.add_argument("--fingerprint", help="the peer's a=fingerprint, checked for msrps")
    _relay_arguments(send)

    auth = commands.add_parser("auth", help="log in to a relay and print its Use-Path")
    _relay_arguments(auth)
    return top


def _relay_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--relay", help="relay URI, e.g. msrps://relay.example.com;tcp")
    command.add_argument("--username", help="relay user name")
    command.add_argument("--password-file", help="file with the relay password "
                         "(default: $MSRP_PASSWORD)")
    command.add_argument("--relay-ca", help="PEM the relay's certificate must chain to")
    command.add_argument("--no-verify-relay", action="store_true",
                         help="do not check the relay's certificate (tests only)")


def _relay(args: argparse.Namespace) -> Any:
    return relay_from_options({"relay": args.relay, "username": args.username,
                               "password-file": args.password_file,
                               "relay-ca": args.relay_ca,
                               "no-verify-relay": args.no_verify_relay})


class _Printer(InboxReceiver):
    """Prints text messages and where files went."""

    def __init__(self, inbox: Inbox, out: TextIO) -> None:
        super().__init__(inbox, "msrp")
        self.out = out

    def filed(self, message: IncomingMessage, path: Path) -> None:
        if (message.content_type or "").startswith("text/"):
            self.out.write("%s\n" % path.read_bytes().decode("utf-8", "replace"))
        else:
            self.out.write("received %d bytes of %s: %s\n"
                           % (message.received, message.content_type, path))
        self.out.flush()

    def discarded(self, message: IncomingMessage, reason: Any) -> None:
        self.out.write("message %s failed: %s\n" % (message.message_id, reason.value))


@inlineCallbacks
def listen(reactor: Any, args: argparse.Namespace, out: TextIO) -> Any:
    """Wait for one peer, print what it sends, return when it hangs up."""
    server = MSRPServer(reactor=reactor)
    try:
        [uri] = yield server.prepare(URI(host=args.host, port=args.port, use_tls=args.tls))
        out.write("a=path:%s\n" % uri)
        if isinstance(uri.credentials, TLSIdentity):
            out.write("a=fingerprint:%s\n" % uri.credentials.fingerprint())
        out.flush()
        transport = yield server.complete(None, local_uri=uri)
    finally:
        yield server.stop()
    out.write("connected: %s\n" % " ".join(map(str, transport.full_remote_path)))
    out.flush()
    session = MSRPSession(transport, receiver=_Printer(Inbox(args.inbox), out),
                          settings=SessionSettings(keepalive_interval=0), reactor=reactor)
    yield session.closed.observe().addErrback(lambda failure: None)


def _progress_bar(name: str, size: Optional[int], out: TextIO) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        out.write("(install msrplib[cli] for a progress bar)\n")
        return None
    return tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr)


@inlineCallbacks
def send(reactor: Any, args: argparse.Namespace, out: TextIO) -> Any:
    """Connect to ``args.path`` and send the text or file."""
    remote = parse_path_attribute(args.path)
    connector = get_connector(_relay(args), reactor=reactor)
    try:
        local = None if args.relay else URI(host="127.0.0.1", use_tls=remote[-1].use_tls)
        yield connector.prepare(local)
        options = {"remote_fingerprint": args.fingerprint} if args.fingerprint else {}
        transport = yield connector.complete(remote, **options)
    finally:
        connector.cleanup()
    session = MSRPSession(transport, settings=SessionSettings(keepalive_interval=0),
                          reactor=reactor)
    if args.text is not None:
        message_id = yield session.send_message(args.text.encode("utf-8"), "text/plain")
    else:
        name = os.path.basename(args.file)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        bar = _progress_bar(name, os.path.getsize(args.file), out)

        def progress(done: int, total: Optional[int]) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        with open(args.file, "rb") as source:
            try:
                message_id = yield session.send_message(
                    source, content_type, success_report="yes", progress=progress,
                    headers={"Content-Disposition": 'attachment; filename="%s"' % name})
            finally:
                if bar is not None:
                    bar.close()
    out.write("delivered %s\n" % message_id)
    yield session.shutdown()


@inlineCallbacks
def auth(reactor: Any, args: argparse.Namespace, out: TextIO) -> Any:
    """Log in to the relay and print the Use-Path."""
    relay = _relay(args)
    if relay is None:
        raise SystemExit("auth needs --relay")
    connector = get_connector(relay, reactor=reactor)
    try:
        path = yield connector.prepare()
        out.write("Use-Path: %s\n" % " ".join(str(uri) for uri in path[:-1]))
    finally:
        connector.cleanup()


COMMANDS = {"listen": listen, "send": send, "auth": auth}


def run(reactor: Any, argv: List[str], out: TextIO = sys.stdout) -> Deferred:
    """Parse ``argv`` and run the command under ``reactor``."""
    args = parser().parse_args(argv)
    return COMMANDS[args.command](reactor, args, out)


def main(argv: Optional[List[str]] = None) -> None:
    """The ``msrp`` console script."""
    task.react(run, [sys.argv[1:] if argv is None else argv])
