"""A file over WSS through our relay against a plain autobahn pump of the same bytes, in
the same run and the same process (issue 27's target: at least 0.6 of the pump).

msrplib: Alice, a WebSocket client (wss), sends a file in 64 KiB chunks through the relay
(``twistd msrp-relay --wss-port``, a process of its own, as a relay is) to Bob on TCP,
Alice and Bob in this process. Baseline: an autobahn client sends the same bytes in 64 KiB
binary messages over wss to an autobahn server that counts them, both in this process.

    cd bench && PYTHONPATH=.. python websocket.py [--mib 64]
"""

import argparse
import os
import tempfile
import time

from autobahn.twisted.websocket import (WebSocketClientFactory, WebSocketClientProtocol,
                                        WebSocketServerFactory, WebSocketServerProtocol)
from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks

from _common import report
from msrplib._speedups import tls_factory
from msrplib.connect import AcceptorRelay, ConnectorRelay, MSRPRelaySettings
from msrplib.session import MessageReceiver, MSRPSession, SessionSettings
from msrplib.tls import TLSIdentity, relay_tls_options
from tests.relay import USERS, free_port
from tests.test_relay_plugin import RelayProcess
from tests.test_relay_server import REALM

PIECE = 64 * 1024
SETTINGS = SessionSettings(keepalive_interval=0, max_message_size=None)


class Discard(MessageReceiver):
    def message_started(self, message):
        return open(os.devnull, "wb")


def start_relay(identity):
    """``twistd msrp-relay`` with a wss port, as tests/test_relay_plugin.py starts it."""
    directory = tempfile.mkdtemp(prefix="msrp-ws-bench-")
    certificate, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(certificate, "wb") as out:
        out.write(identity.certificate_pem())
    with open(key, "wb") as out:
        out.write(identity.key_pem())
    wss_port = free_port()
    relay = RelayProcess(directory, "--wss-port", str(wss_port), "--certificate",
                         certificate, "--key", key)
    relay._wait_for(wss_port)
    return relay, wss_port


@inlineCallbacks
def through_the_relay(payload, relay, wss_port):
    alice = ConnectorRelay(MSRPRelaySettings(REALM, "alice", USERS["alice"],
                                             host="127.0.0.1", port=wss_port, use_tls=True,
                                             transport="wss", verify_tls=False))
    bob = AcceptorRelay(MSRPRelaySettings(REALM, "bob", USERS["bob"], host="127.0.0.1",
                                          port=relay.port))
    alice_path = yield alice.prepare()
    bob_path = yield bob.prepare()
    links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)])
    sender = MSRPSession(links[0], settings=SETTINGS)
    receiver = MSRPSession(links[1], settings=SETTINGS, receiver=Discard())
    started = time.perf_counter()
    yield sender.send_message(payload, "application/octet-stream", success_report="yes")
    seconds = time.perf_counter() - started
    sender.abort()
    receiver.abort()
    yield task.deferLater(reactor, 0.2, lambda: None)
    return len(payload) / seconds / 1e6


class _Counter(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.factory.received += len(payload)
        if self.factory.received >= self.factory.expected:
            self.factory.done.callback(None)


class _Pump(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)


@inlineCallbacks
def plain_pump(payload, identity):
    server = WebSocketServerFactory()
    server.protocol = _Counter
    server.received, server.expected, server.done = 0, len(payload), Deferred()
    port = reactor.listenTCP(0, tls_factory(identity.options(), False, server, reactor),
                             interface="127.0.0.1")
    number = port.getHost().port
    client = WebSocketClientFactory("wss://127.0.0.1:%d/" % number)
    client.protocol = _Pump
    client.opened = Deferred()
    options = relay_tls_options("127.0.0.1", verify=False)
    reactor.connectTCP("127.0.0.1", number, tls_factory(options, True, client, reactor))
    socket = yield client.opened
    started = time.perf_counter()
    view = memoryview(payload)
    for offset in range(0, len(payload), PIECE):
        socket.sendMessage(bytes(view[offset:offset + PIECE]), isBinary=True)
        if offset % (4 * 1024 * 1024) == 0:
            yield task.deferLater(reactor, 0, lambda: None)  # let the reactor write
    yield server.done
    seconds = time.perf_counter() - started
    socket.sendClose()
    yield port.stopListening()
    return len(payload) / seconds / 1e6


@inlineCallbacks
def main(arguments):
    identity = TLSIdentity.generate(hosts=("127.0.0.1",))
    payload = os.urandom(arguments.mib * 1024 * 1024)
    relay, wss_port = start_relay(identity)
    ours, pump = [], []
    try:
        for _ in range(2):  # alternated: the best of two each
            pump.append((yield plain_pump(payload, identity)))
            ours.append((yield through_the_relay(payload, relay, wss_port)))
    finally:
        relay.stop()
    report("%d MiB file over wss through the relay" % arguments.mib, max(ours), max(pump),
           "MB/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    task.react(lambda _, arguments: defer.ensureDeferred(main(arguments)),
               [parser.parse_args()])
