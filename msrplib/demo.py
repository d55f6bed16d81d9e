"""Two MSRP endpoints on loopback: they bind over TLS, chat, and send a file.

Run it with ``python -m msrplib.demo``. Alice is the offerer and connects; Bob answers and
listens. Each checks the other's certificate against the fingerprint it "received in SDP".
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any, List

from twisted.internet import defer, task
from twisted.internet.defer import inlineCallbacks

from msrplib.connect import get_acceptor, get_connector
from msrplib.protocol import URI, make_response
from msrplib.transport import MSRPTransport

__all__ = ["main", "run"]

FILE_SIZE = 4 * 1024 * 1024
CHUNK_SIZE = 64 * 1024


def say(who: str, text: str) -> None:
    print("%-5s %s" % (who, text))
    sys.stdout.flush()


@inlineCallbacks
def deliver(sender: MSRPTransport, receiver: MSRPTransport, data: bytes,
            content_type: str) -> Any:
    """Send ``data`` as one message in chunks; the receiver answers each with 200."""
    message_id = None
    received: List[bytes] = []
    for start in range(0, max(len(data), 1), CHUNK_SIZE):
        piece = data[start:start + CHUNK_SIZE]
        chunk = sender.make_chunk(data=piece, start=start + 1, length=len(data),
                                  message_id=message_id, content_type=content_type)
        message_id = chunk.message_id
        yield sender.write_chunk(chunk)
        incoming = yield receiver.read_chunk()
        error = receiver.check_incoming_SEND_chunk(incoming)
        receiver.write_chunk(make_response(incoming, 200 if error is None else error.code))
        response = yield sender.read_chunk()
        if response.code != 200:
            raise RuntimeError("chunk refused: %s %s" % (response.code, response.comment))
        received.append(incoming.data)
    return b"".join(received)


@inlineCallbacks
def run(reactor: Any) -> Any:
    """The whole demo; fires when both endpoints have closed."""
    alice, bob = get_connector(None), get_acceptor(None)
    try:
        alice_path = yield alice.prepare(URI(host="127.0.0.1", use_tls=True))
        bob_path = yield bob.prepare(URI(host="127.0.0.1", use_tls=True))
        say("alice", "a=path:%s a=fingerprint:%s" % (alice_path[0],
                                                     alice_path[0].credentials.fingerprint()))
        say("bob", "a=path:%s a=fingerprint:%s" % (bob_path[0],
                                                   bob_path[0].credentials.fingerprint()))
        alice_link, bob_link = yield defer.gatherResults([
            alice.complete(bob_path, remote_fingerprint=bob_path[0].credentials.fingerprint()),
            bob.complete(alice_path, remote_fingerprint=alice_path[0].credentials.fingerprint()),
        ], consumeErrors=True)
    finally:
        alice.cleanup()
        bob.cleanup()
    say("", "bound over TLS, certificates match their fingerprints")
    text = yield deliver(alice_link, bob_link, b"Hey Bob, are you there?", "text/plain")
    say("bob", "received: %s" % text.decode())
    text = yield deliver(bob_link, alice_link, b"Yes, I'm here!", "text/plain")
    say("alice", "received: %s" % text.decode())
    payload = os.urandom(FILE_SIZE)
    received = yield deliver(alice_link, bob_link, payload, "application/octet-stream")
    same = hashlib.sha256(received).hexdigest() == hashlib.sha256(payload).hexdigest()
    say("bob", "received a %d-byte file in %d chunks, sha-256 %s" % (
        len(received), -(-FILE_SIZE // CHUNK_SIZE), "matches" if same else "DIFFERS"))
    closed = [link.protocol.lost.observe() for link in (alice_link, bob_link)]
    alice_link.loseConnection()
    yield defer.DeferredList(closed, consumeErrors=True)
    if not same:
        raise RuntimeError("the file arrived damaged")
    say("", "done")


def main() -> None:
    """Run the demo under the global reactor."""
    task.react(run)


if __name__ == "__main__":
    main()
