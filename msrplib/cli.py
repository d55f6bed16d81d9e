"""``msrp`` (also ``python -m msrplib``): MSRP by hand.

    msrp listen [--host H] [--port P] [--tls] [--inbox DIR] [--max-size BYTES]
    msrp send PATH (--text TEXT | --file FILE) [--fingerprint FP] [relay options]
    msrp auth --relay URI --username USER [--password-file F]

``listen`` prints its ``a=path`` (and fingerprint), takes the first peer that binds,
prints text messages and files every message in the inbox (streamed to disk, with no size
limit unless ``--max-size`` sets one; each run's files are named after its own session id,
so runs never overwrite each other). What the peer sends is escaped before it is printed.
``send`` connects to a path and sends; with the ``cli`` extra (tqdm) a file transfer shows
a progress bar with its rate and ETA. ``auth`` logs in to a relay and prints the Use-Path
it grants.

An expected failure (the peer or relay refused, a wrong fingerprint, no connection, a file
that cannot be read) prints one line, ``msrp: error: ...``, on stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any, List, Optional, TextIO

from OpenSSL import SSL
from twisted.internet import task
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost, TimeoutError
from twisted.python.failure import Failure

from msrplib.escape import escape_peer_text
from msrplib.connect import MSRPAuthError, MSRPServer, get_connector
from msrplib.errors import (FingerprintMismatch, MSRPBindError, MSRPError,
                            MSRPTransactionError)
from msrplib.inbox import Inbox, InboxReceiver
from msrplib.outbox import attachment_header
from msrplib.protocol import URI
from msrplib.sdp import parse_path_attribute
from msrplib.daemon import relay_from_options
from msrplib.service import EVENT_TEXT_LIMIT
from msrplib.session import IncomingMessage, MSRPSession, SessionSettings
from msrplib.tls import TLSIdentity

__all__ = ["main", "run", "parser", "explain"]


def parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    top = argparse.ArgumentParser(prog="msrp", description="MSRP by hand (RFC 4975).")
    commands = top.add_subparsers(dest="command", required=True)

    listen = commands.add_parser("listen", help="wait for one peer and print what it sends")
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on")
    listen.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    listen.add_argument("--tls", action="store_true", help="msrps with a new certificate")
    listen.add_argument("--inbox", default="msrp-inbox", help="where files are saved")
    listen.add_argument("--max-size", type=int, default=None, metavar="BYTES",
                        help="refuse (413) messages larger than this (default: no limit)")

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
    """Prints text messages (escaped) and where the other messages went."""

    def __init__(self, inbox: Inbox, namespace: str, out: TextIO) -> None:
        super().__init__(inbox, namespace)
        self.out = out

    def filed(self, message: IncomingMessage, path: Path) -> None:
        content_type = message.content_type or ""
        if content_type.startswith("text/") and message.received <= EVENT_TEXT_LIMIT:
            self.out.write("%s\n" % escape_peer_text(path.read_bytes()))
        else:
            self.out.write("received %d bytes of %s: %s\n" % (
                message.received, escape_peer_text(content_type), path))
        self.out.flush()

    def discarded(self, message: IncomingMessage, reason: Any) -> None:
        self.out.write("message %s failed: %s\n" % (escape_peer_text(message.message_id or ""),
                                                    escape_peer_text(str(reason.value))))
        self.out.flush()


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
    out.write("connected: %s\n" % escape_peer_text(
        " ".join(map(str, transport.full_remote_path))))
    out.flush()
    printer = _Printer(Inbox(args.inbox), uri.session_id or "msrp", out)
    settings = SessionSettings(keepalive_interval=0, max_message_size=args.max_size)
    session = MSRPSession(transport, receiver=printer, settings=settings, reactor=reactor)
    yield session.closed.observe().addErrback(lambda failure: None)
    yield printer.all_stored()


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
    """Connect to ``args.path`` and send the text or file (opened before connecting)."""
    remote = parse_path_attribute(args.path)
    source = None if args.file is None else open(args.file, "rb")
    try:
        message_id = yield _send(reactor, args, remote, source, out)
    finally:
        if source is not None:
            source.close()
    out.write("delivered %s\n" % message_id)


@inlineCallbacks
def _send(reactor: Any, args: argparse.Namespace, remote: List[URI], source: Any,
          out: TextIO) -> Any:
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
    if source is None:
        message_id = yield session.send_message(args.text.encode("utf-8"), "text/plain")
    else:
        name = os.path.basename(args.file)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        bar = _progress_bar(name, os.fstat(source.fileno()).st_size, out)

        def progress(done: int, total: Optional[int]) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        try:
            message_id = yield session.send_message(
                source, content_type, success_report="yes", progress=progress,
                headers={"Content-Disposition": attachment_header(name)})
        finally:
            if bar is not None:
                bar.close()
    yield session.shutdown()
    return message_id


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


def explain(error: BaseException) -> Optional[str]:
    """One line saying what went wrong, for an expected failure; ``None`` for a bug."""
    if isinstance(error, FingerprintMismatch):
        return "wrong peer certificate for --fingerprint: %s" % error
    if isinstance(error, MSRPAuthError):
        return "the relay refused to log us in: %s" % error
    if isinstance(error, MSRPBindError):
        return "the peer refused the session: %s" % error
    if isinstance(error, MSRPTransactionError):
        return "the peer refused the message: %s" % error
    if isinstance(error, MSRPError):
        return str(error)
    if isinstance(error, (ConnectError, TimeoutError)):
        return "could not connect: %s" % error
    if isinstance(error, (ConnectionLost, ConnectionDone)):
        return "the connection closed: %s" % error
    if isinstance(error, SSL.Error):
        return "TLS failed: %s" % error
    if isinstance(error, OSError):
        return "%s: %s" % (error.filename, error.strerror) if error.filename else str(error)
    if isinstance(error, ValueError):
        return str(error)
    return None


def _report(failure: Failure, err: TextIO) -> Failure:
    explanation = None if failure.value is None else explain(failure.value)
    if explanation is None:
        return failure
    err.write("msrp: error: %s\n" % escape_peer_text(explanation))
    err.flush()
    raise SystemExit(1)


def run(reactor: Any, argv: List[str], out: TextIO = sys.stdout,
        err: TextIO = sys.stderr) -> Deferred[Any]:
    """Parse ``argv`` and run the command under ``reactor``. An expected failure is
    written to ``err`` as one line and ends the command with ``SystemExit(1)``."""
    args = parser().parse_args(argv)
    result = maybeDeferred(COMMANDS[args.command], reactor, args, out)
    return result.addErrback(_report, err)


def main(argv: Optional[List[str]] = None) -> None:
    """The ``msrp`` console script."""
    task.react(run, [sys.argv[1:] if argv is None else argv])
