"""One big file over loopback TCP and TLS: MB/s and each side's peak memory growth.

msrplib sends the file with send_message, in 64 KiB chunks and as one huge chunk. The
baseline is a plain Twisted producer pumping the same bytes over the same kind of socket
to a protocol that counts them. Sender and receiver are separate processes, so that each
side's peak RSS is its own; every figure is printed with its ratio to the baseline.

    python bench/files.py [--mib 256] [--rounds 3]

msrplib and the pump take turns for ``--rounds`` rounds; the best round of each is
reported (shared machines are noisy). Each side's CPU time per 64 KiB moved is printed
too: less noisy than the rate, and it shows which side limits it.
"""

import argparse
import os
import resource
import subprocess
import sys
import time

from twisted.internet import defer, ssl, task
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from zope.interface import implementer

from _common import peak_rss_mib, report

BLOCK = os.urandom(64 * 1024)


def cpu_seconds():
    """User and system CPU time this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Pattern:
    """A read-only file of ``size`` bytes made of one repeated block (no memory held)."""

    def __init__(self, size):
        self.size = size
        self.position = 0

    def read(self, count):
        count = min(count, self.size - self.position)
        pieces = []
        while count > 0:
            offset = self.position % len(BLOCK)
            piece = BLOCK[offset:offset + count]
            pieces.append(piece)
            self.position += len(piece)
            count -= len(piece)
        return b"".join(pieces)

    def tell(self):
        return self.position

    def seek(self, offset, whence=0):
        self.position = {0: offset, 1: self.position + offset, 2: self.size + offset}[whence]
        return self.position


# The receiving processes.

@implementer(IConsumer)
class Counter:
    def __init__(self):
        self.count = 0

    def registerProducer(self, producer, streaming):
        pass

    def unregisterProducer(self):
        pass

    def write(self, data):
        self.count += len(data)


@defer.inlineCallbacks
def receive_msrplib(reactor, tls):
    from msrplib.connect import MSRPServer
    from msrplib.protocol import URI
    from msrplib.session import MessageReceiver, MSRPSession, SessionSettings

    done = defer.Deferred()

    class Sink(MessageReceiver):
        def message_started(self, message):
            self.counter = Counter()
            return self.counter

        def message_received(self, message):
            done.callback(self.counter.count)

    server = MSRPServer(reactor=reactor)
    [uri] = yield server.prepare(URI(host="127.0.0.1", use_tls=tls))
    print("READY %s" % uri, flush=True)
    transport = yield server.complete(None, local_uri=uri)
    start_rss, start_cpu = current_rss_mib(), cpu_seconds()
    MSRPSession(transport, receiver=Sink(), reactor=reactor,
                settings=SessionSettings(keepalive_interval=0, max_message_size=None))
    count = yield done
    print("DONE %d %.1f %.1f %.4f" % (count, peak_rss_mib() - start_rss, peak_rss_mib(),
                                      cpu_seconds() - start_cpu), flush=True)
    yield task.deferLater(reactor, 0.2, lambda: None)


class CountingProtocol(Protocol):
    def connectionMade(self):
        self.count = 0
        self.start_rss, self.start_cpu = current_rss_mib(), cpu_seconds()

    def dataReceived(self, data):
        self.count += len(data)
        if self.count >= self.factory.size:
            self.transport.write(b"done")
            print("DONE %d %.1f %.1f %.4f" % (self.count, peak_rss_mib() - self.start_rss,
                                              peak_rss_mib(), cpu_seconds() - self.start_cpu),
                  flush=True)
            self.factory.finished.callback(None)


@defer.inlineCallbacks
def receive_pump(reactor, tls, size):
    factory = Factory.forProtocol(CountingProtocol)
    factory.size, factory.finished = size, defer.Deferred()
    if tls:
        from msrplib.tls import TLSIdentity
        port = reactor.listenSSL(0, factory, TLSIdentity.generate().options(),
                                 interface="127.0.0.1")
    else:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    print("READY %d" % port.getHost().port, flush=True)
    yield factory.finished
    yield task.deferLater(reactor, 0.2, lambda: None)


# The sending processes.

@defer.inlineCallbacks
def send_msrplib(reactor, target, size, chunk_size):
    from msrplib.connect import ConnectorDirect
    from msrplib.protocol import URI, parse_uri
    from msrplib.session import MSRPSession, SessionSettings

    remote = parse_uri(target)
    connector = ConnectorDirect(reactor=reactor)
    yield connector.prepare(URI(host="127.0.0.1", use_tls=remote.use_tls))
    transport = yield connector.complete([remote])
    session = MSRPSession(transport, reactor=reactor,
                          settings=SessionSettings(keepalive_interval=0))
    start_rss, start_cpu = current_rss_mib(), cpu_seconds()
    started = time.perf_counter()
    yield session.send_message(Pattern(size), "application/octet-stream",
                               chunk_size=chunk_size)
    print("SENT %.4f %.1f %.1f %.4f" % (time.perf_counter() - started, peak_rss_mib() - start_rss,
                                         peak_rss_mib(), cpu_seconds() - start_cpu), flush=True)
    yield session.shutdown()


@implementer(IPushProducer)
class Pump(Protocol):
    def connectionMade(self):
        self.source = Pattern(self.factory.size)
        self.paused = False
        self.start_rss, self.start_cpu = current_rss_mib(), cpu_seconds()
        self.started = time.perf_counter()
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        while not self.paused:
            data = self.source.read(len(BLOCK))
            if not data:
                self.transport.unregisterProducer()
                return
            self.transport.write(data)

    def stopProducing(self):
        self.paused = True

    def dataReceived(self, data):
        print("SENT %.4f %.1f %.1f %.4f" % (time.perf_counter() - self.started,
                                             peak_rss_mib() - self.start_rss, peak_rss_mib(),
                                             cpu_seconds() - self.start_cpu), flush=True)
        self.transport.loseConnection()
        self.factory.finished.callback(None)


@defer.inlineCallbacks
def send_pump(reactor, port, size, tls):
    factory = ClientFactory.forProtocol(Pump)
    factory.size, factory.finished = size, defer.Deferred()
    if tls:
        reactor.connectSSL("127.0.0.1", int(port), factory, ssl.CertificateOptions())
    else:
        reactor.connectTCP("127.0.0.1", int(port), factory)
    yield factory.finished


# The conductor.

def spawn(*arguments):
    return subprocess.Popen([sys.executable, __file__] + [str(a) for a in arguments],
                            stdout=subprocess.PIPE, text=True)


def expect(process, word):
    line = process.stdout.readline().split()
    if not line or line[0] != word:
        raise RuntimeError("expected %s, got %r" % (word, line))
    return line[1:]


def run_pair(kind, tls, size, chunk_size):
    receiver = spawn("--role", "receive", "--kind", kind, "--size", size,
                     *(["--tls"] if tls else []))
    [target] = expect(receiver, "READY")
    sender = spawn("--role", "send", "--kind", kind, "--size", size, "--target", target,
                   "--chunk-size", chunk_size, *(["--tls"] if tls else []))
    seconds, sender_growth, sender_peak, sender_cpu = map(float, expect(sender, "SENT"))
    count, receiver_growth, receiver_peak, receiver_cpu = expect(receiver, "DONE")
    sender.wait(60)
    receiver.wait(60)
    if int(count) != size:
        raise RuntimeError("%s received %s of %d bytes" % (kind, count, size))
    growth = max(sender_growth, float(receiver_growth), 0.0)
    blocks = size / 2**16
    cpu = (sender_cpu / blocks * 1e6, float(receiver_cpu) / blocks * 1e6)
    return size / seconds / 1e6, (sender_peak, float(receiver_peak), growth), cpu


def worst_memory(runs):
    """The highest of each memory figure across ``runs``: memory is not best-of."""
    return tuple(max(figures[i] for _, figures, _ in runs) for i in range(3))


def least_cpu(runs):
    """The lowest sender and receiver CPU per 64 KiB across ``runs`` (us)."""
    return tuple(min(cpu[i] for _, _, cpu in runs) for i in range(2))


def conduct(size, rounds):
    print("%d MiB file, sender and receiver in separate processes, best of %d rounds"
          % (size // 2**20, rounds))
    for tls in (False, True):
        name = "TLS" if tls else "TCP"
        for label, chunk_size in (("64 KiB chunks", 64 * 1024), ("one chunk", size)):
            ours, pump = [], []
            for _ in range(rounds):  # alternating, so that a noisy moment hits both sides
                ours.append(run_pair("msrplib", tls, size, chunk_size))
                pump.append(run_pair("pump", tls, size, 0))
            rate, base = max(ours)[0], max(pump)[0]
            memory, base_memory = worst_memory(ours), worst_memory(pump)
            report("file over %s, %s" % (name, label), rate, base, "MB/s")
            print("    peak RSS: sender %.0f MiB, receiver %.0f MiB, at most %.1f MiB grown "
                  "during the transfer (plain pump: %.0f, %.0f, %.1f)"
                  % (memory + base_memory))
            print("    CPU per 64 KiB (least of the rounds): sender %.0f us, receiver %.0f us "
                  "(plain pump: %.0f, %.0f)" % (least_cpu(ours) + least_cpu(pump)))


def main():
    arguments = argparse.ArgumentParser()
    arguments.add_argument("--mib", type=int, default=256)
    arguments.add_argument("--rounds", type=int, default=3)
    arguments.add_argument("--role")
    arguments.add_argument("--kind")
    arguments.add_argument("--size", type=int)
    arguments.add_argument("--target")
    arguments.add_argument("--chunk-size", type=int, default=64 * 1024)
    arguments.add_argument("--tls", action="store_true")
    options = arguments.parse_args()
    if options.role is None:
        conduct(options.mib * 2**20, options.rounds)
    elif options.role == "receive" and options.kind == "msrplib":
        task.react(lambda r: receive_msrplib(r, options.tls))
    elif options.role == "receive":
        task.react(lambda r: receive_pump(r, options.tls, options.size))
    elif options.kind == "msrplib":
        task.react(lambda r: send_msrplib(r, options.target, options.size,
                                          options.chunk_size))
    else:
        task.react(lambda r: send_pump(r, options.target, options.size, options.tls))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
