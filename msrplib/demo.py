"""Two MSRP endpoints on loopback: they bind over TLS, chat, and send a file.

Run it with ``python -m msrplib.demo``. Alice is the offerer and connects; Bob answers and
listens. Each checks the other's certificate against the fingerprint it "received in SDP";
then two sessions exchange chat messages while a file goes from Alice to Bob.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from typing import Any

from twisted.internet import defer, task
from twisted.internet.defer import inlineCallbacks

from msrplib.connect import get_acceptor, get_connector
from msrplib.protocol import URI
from msrplib.session import IncomingMessage, MessageReceiver, MSRPSession

__all__ = ["main", "run"]

FILE_SIZE = 16 * 1024 * 1024


def say(who: str, text: str) -> None:
    print("%-5s %s" % (who, text))
    sys.stdout.flush()


class Printer(MessageReceiver):
    """Prints chat messages and hashes files as they complete."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.file_digest: defer.Deferred = defer.Deferred()

    def message_received(self, message: IncomingMessage) -> None:
        data = message.data or b""
        if message.content_type == "text/plain":
            say(self.name, "received: %s" % data.decode())
        else:
            say(self.name, "received a %d-byte %s" % (len(data), message.content_type))
            self.file_digest.callback(hashlib.sha256(data).hexdigest())


@inlineCallbacks
def run(reactor: Any) -> Any:
    """The whole demo; fires when both endpoints have closed."""
    alice, bob = get_connector(None), get_acceptor(None)
    try:
        alice_path = yield alice.prepare(URI(host="127.0.0.1", use_tls=True))
        bob_path = yield bob.prepare(URI(host="127.0.0.1", use_tls=True))
        alice_print = alice_path[0].credentials.fingerprint()
        bob_print = bob_path[0].credentials.fingerprint()
        say("alice", "a=path:%s a=fingerprint:%s" % (alice_path[0], alice_print))
        say("bob", "a=path:%s a=fingerprint:%s" % (bob_path[0], bob_print))
        alice_link, bob_link = yield defer.gatherResults([
            alice.complete(bob_path, remote_fingerprint=bob_print),
            bob.complete(alice_path, remote_fingerprint=alice_print),
        ], consumeErrors=True)
    finally:
        alice.cleanup()
        bob.cleanup()
    say("", "bound over TLS, certificates match their fingerprints")
    bob_inbox = Printer("bob")
    alice_session = MSRPSession(alice_link, receiver=Printer("alice"))
    bob_session = MSRPSession(bob_link, receiver=bob_inbox)
    with tempfile.TemporaryFile() as source:
        payload = os.urandom(FILE_SIZE)
        source.write(payload)
        source.seek(0)
        sending = alice_session.send_message(source, "application/octet-stream",
                                             success_report="yes")
        yield alice_session.send_message(b"Hey Bob, are you there? A file is coming.",
                                         "text/plain")
        yield bob_session.send_message(b"Yes, I'm here! Receiving it.", "text/plain")
        yield sending
        digest = yield bob_inbox.file_digest
    same = digest == hashlib.sha256(payload).hexdigest()
    say("alice", "the file was delivered (success report received)")
    say("bob", "sha-256 of the file %s" % ("matches" if same else "DIFFERS"))
    yield alice_session.shutdown()
    yield bob_session.closed.observe().addErrback(lambda failure: None)
    if not same:
        raise RuntimeError("the file arrived damaged")
    say("", "done")


def main() -> None:
    """Run the demo under the global reactor."""
    task.react(run)


if __name__ == "__main__":
    main()
