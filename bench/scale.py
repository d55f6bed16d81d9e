"""Many sessions on one MSRPServer port: time to bind them all, memory per session.

1,000 connectors bind to sessions prepared on one shared MSRPServer port, then each sends
one 100-byte message. The baseline, in the same run, is 1,000 plain Twisted connections to
one port, each making one request/response exchange of the same size.
"""

import sys

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientFactory, Factory, Protocol

from _common import Timer, report
from files import current_rss_mib
from msrplib.connect import ConnectionSettings, ConnectorDirect, MSRPServer
from msrplib.protocol import URI
from msrplib.session import MSRPSession, SessionSettings

COUNT = 1000
SESSION = SessionSettings(keepalive_interval=0)


class Answer(Protocol):
    def dataReceived(self, data):
        self.transport.write(b"a" * 60)


class Ask(Protocol):
    def connectionMade(self):
        self.transport.write(b"q" * 250)

    def dataReceived(self, data):
        self.factory.answered.callback(self)


@defer.inlineCallbacks
def baseline():
    before = current_rss_mib()
    port = reactor.listenTCP(0, Factory.forProtocol(Answer), 511, "127.0.0.1")
    waits = []
    with Timer() as timer:
        for _ in range(COUNT):
            factory = ClientFactory.forProtocol(Ask)
            factory.answered = defer.Deferred()
            reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
            waits.append(factory.answered)
        askers = yield defer.gatherResults(waits)
    per_connection = (current_rss_mib() - before) * 1024 / COUNT
    for asker in askers:
        asker.transport.loseConnection()
    yield port.stopListening()
    yield task.deferLater(reactor, 0.5, lambda: None)
    return timer.seconds, per_connection


@defer.inlineCallbacks
def main(reactor):
    base_seconds, base_memory = yield baseline()
    before = current_rss_mib()
    server = MSRPServer(settings=ConnectionSettings())
    connectors, server_paths, client_paths = [], [], []
    for _ in range(COUNT):
        server_paths.append((yield server.prepare(URI(host="127.0.0.1"))))
        connector = ConnectorDirect()
        client_paths.append((yield connector.prepare(URI(host="127.0.0.1"))))
        connectors.append(connector)
    with Timer() as binding:
        transports = yield defer.gatherResults(
            [c.complete(p) for c, p in zip(connectors, server_paths)]
            + [server.complete(p) for p in client_paths])
    clients = [MSRPSession(t, settings=SESSION) for t in transports[:COUNT]]
    for served in transports[COUNT:]:
        MSRPSession(served, settings=SESSION)
    with Timer() as sending:
        yield defer.gatherResults([c.send_message(b"m" * 100, "text/plain") for c in clients])
    per_session = (current_rss_mib() - before) * 1024 / COUNT
    print("%d sessions on one port (%s)" % (COUNT, server.listening_ports))
    report("bind all (connect + binding SEND), seconds", binding.seconds, base_seconds, "s")
    print("    then one message each: %.2f s" % sending.seconds)
    report("memory per session (both ends), KiB", per_session, base_memory, "KiB")
    yield defer.gatherResults([c.shutdown() for c in clients])
    yield server.stop()


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    task.react(main)
