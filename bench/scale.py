"""Many sessions on one MSRPServer port: time to bind them all, memory per session.

For each count (1,000, 5,000 and 10,000, or the counts given as arguments), that many
connectors bind to sessions prepared on one shared MSRPServer port, all at once, then each
sends one 100-byte message. The server's ``complete()`` calls are made in a shuffled
order, as answers to many calls would come: a server that looked for each binding SEND's
session among the waiting ones would take time growing with the square of the count. The
baseline, in the same run, is as many plain Twisted connections to one port, each making
one request/response exchange of the same size.

The connecting side runs in a second process (this script with ``--connect``): 10,000
sessions are 20,000 sockets, and one process may open 20,000 files at most here
(``ulimit -n``), so each process holds one end of every session, and raises its soft limit
on open files to the hard one. The server's limits on connections waiting to bind are
raised to the count: one address opening thousands of connections at once is past the
defaults, which protect a server against just that.
"""

import json
import random
import resource
import subprocess
import sys

from twisted.internet import defer, reactor, task, threads
from twisted.internet.protocol import ClientFactory, Factory, Protocol

from _common import Timer, report
from files import current_rss_mib
from msrplib.connect import ConnectionSettings, ConnectorDirect, MSRPServer
from msrplib.protocol import URI
from msrplib.session import MSRPSession, SessionSettings

COUNTS = (1000, 5000, 10000)
SESSION = SessionSettings(keepalive_interval=0)


def raise_file_limit():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Answer(Protocol):
    def dataReceived(self, data):
        self.transport.write(b"a" * 60)


class Ask(Protocol):
    def connectionMade(self):
        self.transport.write(b"q" * 250)

    def dataReceived(self, data):
        self.factory.answered.callback(self)


class Connecting:
    """The second process, seen from the first: JSON lines both ways."""

    def __init__(self, kind, count):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--connect", kind, str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, value):
        self.process.stdin.write(json.dumps(value) + "\n")
        self.process.stdin.flush()

    def receive(self):
        """A Deferred firing with the next line the process writes (read in a thread,
        so that the reactor goes on serving the connections meanwhile)."""
        return threads.deferToThread(self.process.stdout.readline).addCallback(json.loads)

    def finish(self):
        self.process.stdin.close()
        return threads.deferToThread(self.process.wait)


@defer.inlineCallbacks
def baseline(count):
    before = current_rss_mib()
    port = reactor.listenTCP(0, Factory.forProtocol(Answer), 4096, "127.0.0.1")
    child = Connecting("plain", count)
    child.send(port.getHost().port)
    yield child.receive()  # ready
    with Timer() as timer:
        child.send("go")
        result = yield child.receive()
    grown = current_rss_mib() - before
    child.send("close")
    yield child.finish()
    yield port.stopListening()
    yield task.deferLater(reactor, 0.5, lambda: None)
    return timer.seconds, (grown + result["grown"]) * 1024 / count


@defer.inlineCallbacks
def sessions(count):
    before = current_rss_mib()
    settings = ConnectionSettings(listen_backlog=4096)
    settings.max_unbound_connections = settings.max_unbound_per_source = count
    server = MSRPServer(settings=settings)
    server_paths = []
    for _ in range(count):
        [uri] = yield server.prepare(URI(host="127.0.0.1"))
        server_paths.append(str(uri))
    child = Connecting("msrp", count)
    child.send(server_paths)
    client_paths = yield child.receive()
    order = list(range(count))
    random.Random(count).shuffle(order)
    with Timer() as binding:
        waiting = defer.gatherResults(
            [server.complete([URI.parse(client_paths[index])]) for index in order])
        child.send("go")
        bound = yield child.receive()
        transports = yield waiting
    for served in transports:
        MSRPSession(served, settings=SESSION)
    child.send("send")
    sent = yield child.receive()
    grown = current_rss_mib() - before
    child.send("close")
    yield child.receive()
    yield child.finish()
    yield server.stop()
    yield task.deferLater(reactor, 0.5, lambda: None)
    return binding.seconds, bound["seconds"], sent["seconds"], \
        (grown + sent["grown"]) * 1024 / count, server.listening_ports


@defer.inlineCallbacks
def main(reactor, counts):
    raise_file_limit()
    rows = []
    for count in counts:
        base_seconds, base_memory = yield baseline(count)
        seconds, connector_seconds, sending, per_session, _ = yield sessions(count)
        print("%d sessions on one port" % count)
        report("bind all (connect + binding SEND), seconds", seconds, base_seconds, "s",
               lower_is_better=True)
        print("    (the connecting process had all of its transports after %.2f s); "
              "then one message each: %.2f s" % (connector_seconds, sending))
        report("memory per session (both ends), KiB", per_session, base_memory, "KiB",
               lower_is_better=True)
        rows.append((count, seconds))
    print("binding time per session:")
    for count, seconds in rows:
        print("    %6d sessions: %.2f s, %.0f us each" % (count, seconds, seconds / count * 1e6))


# The second process.

def read_line():
    return json.loads(sys.stdin.readline())


def write_line(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


@defer.inlineCallbacks
def connect_plain(reactor, count):
    port = read_line()
    write_line("ready")
    read_line()  # go
    before = current_rss_mib()
    waits = []
    for _ in range(count):
        factory = ClientFactory.forProtocol(Ask)
        factory.answered = defer.Deferred()
        reactor.connectTCP("127.0.0.1", port, factory)
        waits.append(factory.answered)
    askers = yield defer.gatherResults(waits)
    write_line({"grown": current_rss_mib() - before})
    read_line()  # close
    for asker in askers:
        asker.transport.loseConnection()


@defer.inlineCallbacks
def connect_msrp(reactor, count):
    before = current_rss_mib()
    server_paths = read_line()
    connectors, client_paths = [], []
    for _ in range(count):
        connector = ConnectorDirect()
        [uri] = yield connector.prepare(URI(host="127.0.0.1"))
        connectors.append(connector)
        client_paths.append(str(uri))
    write_line(client_paths)
    read_line()  # go
    with Timer() as binding:
        transports = yield defer.gatherResults(
            [c.complete([URI.parse(p)]) for c, p in zip(connectors, server_paths)])
    write_line({"seconds": binding.seconds})
    clients = [MSRPSession(t, settings=SESSION) for t in transports]
    read_line()  # send
    with Timer() as sending:
        yield defer.gatherResults([c.send_message(b"m" * 100, "text/plain") for c in clients])
    write_line({"seconds": sending.seconds, "grown": current_rss_mib() - before})
    read_line()  # close
    yield defer.gatherResults([c.shutdown() for c in clients])
    write_line("closed")


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    if sys.argv[1:2] == ["--connect"]:
        raise_file_limit()
        kind, count = sys.argv[2], int(sys.argv[3])
        task.react(connect_msrp if kind == "msrp" else connect_plain, [count])
    else:
        task.react(main, [[int(arg) for arg in sys.argv[1:]] or COUNTS])
