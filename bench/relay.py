"""Our relay (``twistd msrp-relay``, a process of its own) against Kamailio's ``msrp`` module
in the same run, alice -> relay -> bob on loopback. Kamailio is the baseline of each line.

- 100-byte messages per second with 32 outstanding, alice in this process and bob in one
  of his own (timed until bob has them all), three runs each, alternated, the best kept;
- MB/s of one file (256 MiB by default): through Kamailio in the 8 KiB chunks it takes and
  paced by success REPORTs, which it needs; through ours in 64 KiB chunks, unpaced;
- the relay's resident memory growth during that file;
- resident memory per idle AUTHed session (10,000 for ours; Kamailio's test config takes
  at most about 2,000 connections, so it gets that many).

Targets (issue 26): messages at least Kamailio's rate; files at least 3x; growth under
64 MiB during the file; under 20 KiB per idle session.

    cd bench && PYTHONPATH=.. python relay.py [--file-mib 256] [--idle 10000]
"""

import argparse
import os
import resource
import sys
import tempfile
import time

from twisted.internet import defer, protocol, reactor, task, threads
from twisted.internet.defer import gatherResults, inlineCallbacks

from _common import report
from msrplib.connect import AcceptorRelay, ConnectorRelay, MSRPRelaySettings
from msrplib.protocol import URI
from msrplib.session import MessageReceiver, MSRPSession, SessionSettings
from tests.relay import USERS, KamailioRelay, children_of
from tests.test_relay_plugin import RelayProcess

REALM = "msrp-test"
SETTINGS = SessionSettings(keepalive_interval=0, relayed_failure_wait=0, max_message_size=None,
                           confirm_through_relays=False)


def rss_kib(pids):
    """The resident memory of processes ``pids`` and their children, in KiB."""
    total = 0
    for pid in set(pids) | set(children_of(set(pids))):
        try:
            with open("/proc/%d/status" % pid) as status:
                total += next(int(line.split()[1]) for line in status
                              if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue  # it ended meanwhile
    return total


class Discard(MessageReceiver):
    """Bob: writes every byte to /dev/null and counts the messages; ``finished`` fires once
    ``expected`` have arrived."""

    def __init__(self, expected=None, finished=None):
        self.received = 0
        self.expected, self.finished = expected, finished
        self.sink = open(os.devnull, "wb")

    def message_started(self, message):
        return self.sink

    def message_received(self, message):
        self.received += 1
        if self.received == self.expected:
            self.finished.callback(None)


class Relay:
    """A relay under test, and the chunk size and window its clients must use with it."""

    def __init__(self, name, uri, pids, chunk_size, unreported):
        self.name, self.uri, self.pids = name, uri, pids
        self.chunk_size, self.unreported = chunk_size, unreported

    def settings(self, user):
        return MSRPRelaySettings(REALM, user, USERS[user], host="127.0.0.1",
                                 port=self.uri.port, max_chunk_size=self.chunk_size,
                                 max_unreported_bytes=self.unreported)

    @inlineCallbacks
    def pair(self):
        alice, bob = ConnectorRelay(self.settings("alice")), AcceptorRelay(self.settings("bob"))
        alice_path = yield alice.prepare()
        bob_path = yield bob.prepare()
        links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)])
        receiver = Discard()
        return (MSRPSession(links[0], settings=SETTINGS),
                MSRPSession(links[1], settings=SETTINGS, receiver=receiver), receiver)


RELAYS = {
    "ours": lambda uri, pids: Relay("ours", uri, pids, 64 * 1024, None),
    # Kamailio relays no frame over about 11 KB and drops a receiver that falls behind.
    "kamailio": lambda uri, pids: Relay("kamailio", uri, pids, 8 * 1024, 32 * 1024),
}


class BobProcess(protocol.ProcessProtocol):
    """Bob in a process of his own (``relay.py --bob``), as he would be on another machine:
    the bench's process then runs only alice, and the relay's work is what limits the rate."""

    def __init__(self):
        self.lines = []
        self.waiting = []
        self.buffer = b""

    def outReceived(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.lines.append(line.decode("ascii"))
            self._wake()

    def errReceived(self, data):
        sys.stderr.write(data.decode("utf-8", "replace"))

    def processEnded(self, reason):
        self.lines.append("ended")
        self._wake()

    def _wake(self):
        while self.waiting and self.lines:
            self.waiting.pop(0).callback(self.lines.pop(0))

    def next_line(self):
        waiting = defer.Deferred()
        self.waiting.append(waiting)
        self._wake()
        return waiting


@inlineCallbacks
def messages_per_second(relay, count=20000):
    """100-byte SENDs with 32 outstanding, timed until bob (another process) has them all."""
    bob = BobProcess()
    reactor.spawnProcess(bob, sys.executable,
                         [sys.executable, os.path.abspath(__file__), "--bob", relay.name,
                          str(relay.uri.port), str(count)],
                         env=os.environ)
    bob_path = [URI.parse(text) for text in (yield bob.next_line()).split()]
    alice_endpoint = ConnectorRelay(relay.settings("alice"))
    alice_path = yield alice_endpoint.prepare()
    bob.transport.write((" ".join(str(uri) for uri in alice_path) + "\n").encode("ascii"))
    link = yield alice_endpoint.complete(bob_path)
    alice = MSRPSession(link, settings=SETTINGS)
    ready = yield bob.next_line()
    assert ready == "ready", ready
    body = b"x" * 100
    started = time.perf_counter()
    sent = [0]

    def one(_=None):
        if sent[0] < count:
            sent[0] += 1
            return alice.send_message(body, "text/plain", success_report="no").addCallback(one)
        return None

    yield gatherResults([one() for _ in range(32)])
    done = yield bob.next_line()
    seconds = time.perf_counter() - started
    assert done == "received %d" % count, done
    alice.abort()
    return count / seconds


@inlineCallbacks
def bob_main(relay_name, port, count):
    """``relay.py --bob``: bob's side of :func:`messages_per_second`, in its own process."""
    relay = RELAYS[relay_name](URI(host="127.0.0.1", port=port), [])
    endpoint = AcceptorRelay(relay.settings("bob"))
    path = yield endpoint.prepare()
    print(" ".join(str(uri) for uri in path), flush=True)
    alice_line = yield threads.deferToThread(sys.stdin.readline)
    link = yield endpoint.complete([URI.parse(text) for text in alice_line.split()])
    finished = defer.Deferred()
    receiver = Discard(count, finished)
    session = MSRPSession(link, settings=SETTINGS, receiver=receiver)
    print("ready", flush=True)
    yield finished
    print("received %d" % receiver.received, flush=True)
    session.abort()


@inlineCallbacks
def file_transfer(relay, mib):
    alice, bob, _ = yield relay.pair()
    payload = os.urandom(mib * 1024 * 1024)
    before = rss_kib(relay.pids)
    peak = [before]
    sampling = task.LoopingCall(lambda: peak.__setitem__(0, max(peak[0], rss_kib(relay.pids))))
    sampling.start(0.05)
    started = time.perf_counter()
    yield alice.send_message(payload, "application/octet-stream", success_report="yes")
    seconds = time.perf_counter() - started
    sampling.stop()
    alice.abort()
    bob.abort()
    return len(payload) / seconds / 1e6, (peak[0] - before) / 1024


@inlineCallbacks
def idle_sessions(relay, count):
    before = rss_kib(relay.pids)
    endpoints = []
    for start in range(0, count, 200):
        batch = [ConnectorRelay(relay.settings("alice")) for _ in range(min(200, count - start))]
        yield gatherResults([endpoint.prepare() for endpoint in batch])
        endpoints += batch
    yield task.deferLater(reactor, 1.0, lambda: None)
    per_session = (rss_kib(relay.pids) - before) / count
    for endpoint in endpoints:
        endpoint.cleanup()
    yield task.deferLater(reactor, 1.0, lambda: None)
    return per_session


@inlineCallbacks
def main(arguments):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    ours_process = RelayProcess(tempfile.mkdtemp(prefix="msrp-relay-bench-"))
    kamailio = KamailioRelay()
    kamailio.start()
    try:
        ours = RELAYS["ours"](ours_process.uri, [ours_process.process.pid])
        theirs = RELAYS["kamailio"](URI(host="127.0.0.1", port=kamailio.port),
                                    [kamailio.process.pid])
        rates = {}
        for relay in (theirs, ours) * 3:  # alternated: the best of three each
            rate = yield messages_per_second(relay, 40000)
            rates[relay.name] = max(rates.get(relay.name, 0), rate)
        report("100-byte messages/s, 32 outstanding", rates["ours"], rates["kamailio"],
               "msg/s")
        files = {}
        for relay in (theirs, ours):
            files[relay.name] = yield file_transfer(relay, arguments.file_mib)
        report("%d MiB file" % arguments.file_mib, files["ours"][0], files["kamailio"][0],
               "MB/s")
        report("relay RSS growth during the file", files["ours"][1], files["kamailio"][1],
               "MiB", lower_is_better=True)
        idle_ours = yield idle_sessions(ours, arguments.idle)
        idle_theirs = yield idle_sessions(theirs, min(arguments.idle, 2000))
        report("RSS per idle session", idle_ours, idle_theirs, "KiB", lower_is_better=True)
    finally:
        ours_process.stop()
        kamailio.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file-mib", type=int, default=256)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--bob", nargs=3, metavar=("RELAY", "PORT", "COUNT"),
                        help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.bob:
        name, port, count = options.bob
        task.react(lambda _: bob_main(name, int(port), int(count)))
    else:
        task.react(lambda _: defer.ensureDeferred(main(options)))
