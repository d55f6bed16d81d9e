"""Small messages over loopback TCP, one at a time and pipelined, against a plain echo.

msrplib: 100-byte text messages with send_message, each awaiting its 200 (one at a time),
then with 32 outstanding. Baseline: a plain Twisted protocol that sends a frame of the same
size and waits for a small answer, in the same process and the same run. The two take
turns for three rounds and the best round of each is reported.

``--split-every-block``: the parser splits every header block instead of recognising the
blocks that repeat the last one (see msrplib/_headerreader.py), to measure what that is
worth.
"""

import sys

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientFactory, Factory, Protocol

from _common import Timer, bound_pair, report
from msrplib._headerreader import HeaderReader
from msrplib.session import MSRPSession, SessionSettings

COUNT = 20000
BODY = b"m" * 100
WINDOW = 32
#: Rounds of msrplib then baseline; the best of each is reported.
ROUNDS = 3


class Answerer(Protocol):
    """Answers every frame of ``size`` bytes with a 60-byte response."""

    size = 0

    def connectionMade(self):
        self.buffered = 0

    def dataReceived(self, data):
        self.buffered += len(data)
        while self.buffered >= self.size:
            self.buffered -= self.size
            self.transport.write(b"r" * 60)


class Asker(Protocol):
    def connectionMade(self):
        self.factory.connected.callback(self)

    def dataReceived(self, data):
        self.received += len(data)
        while self.received >= 60:
            self.received -= 60
            waiter = self.waiters.pop(0)
            waiter.callback(None)

    def ask(self):
        waiter = defer.Deferred()
        self.waiters.append(waiter)
        self.transport.write(self.frame)
        return waiter


@defer.inlineCallbacks
def echo_baseline(frame_size, window):
    Answerer.size = frame_size
    port = reactor.listenTCP(0, Factory.forProtocol(Answerer), interface="127.0.0.1")
    factory = ClientFactory.forProtocol(Asker)
    factory.connected = defer.Deferred()
    reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
    asker = yield factory.connected
    asker.received, asker.waiters, asker.frame = 0, [], b"x" * frame_size
    with Timer() as timer:
        yield run_window(asker.ask, window)
    asker.transport.loseConnection()
    yield port.stopListening()
    return COUNT / timer.seconds


@defer.inlineCallbacks
def run_window(start_one, window):
    """Keep ``window`` requests outstanding until COUNT have completed."""
    remaining = [COUNT]
    done = defer.Deferred()

    def next_one(_=None):
        if remaining[0] == 0:
            return
        remaining[0] -= 1
        request = start_one()
        request.addCallback(finished)

    outstanding = [0]

    def finished(_):
        outstanding[0] -= 1
        if remaining[0]:
            outstanding[0] += 1
            next_one()
        elif outstanding[0] == 0 and not done.called:
            done.callback(None)

    for _ in range(min(window, COUNT)):
        outstanding[0] += 1
        next_one()
    yield done


@defer.inlineCallbacks
def main(reactor):
    alice_link, bob_link = yield bound_pair()
    settings = SessionSettings(keepalive_interval=0, max_outstanding_chunks=64)
    alice = MSRPSession(alice_link, settings=settings)
    MSRPSession(bob_link, settings=settings)
    frame = len(alice_link.make_chunk(data=BODY).encode())
    for window, label in [(1, "one at a time"), (WINDOW, "%d outstanding" % WINDOW)]:
        ours = baseline = 0.0
        for _ in range(ROUNDS):  # alternating, so that a noisy moment hits both sides
            with Timer() as timer:
                yield run_window(lambda: alice.send_message(BODY, "text/plain"), window)
            ours = max(ours, COUNT / timer.seconds)
            baseline = max(baseline, (yield echo_baseline(frame, window)))
        report("100-byte messages, %s" % label, ours, baseline, "msg/s")
    yield alice.shutdown()


if __name__ == "__main__":
    if "--split-every-block" in sys.argv:
        # The parser's general path alone: every header block split, none recognised as
        # a repeat of the last (what that recognition is worth end to end).
        HeaderReader.remembers = False
    task.react(main)
