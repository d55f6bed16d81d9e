"""Shared helpers for the tests that use real loopback sockets."""

from twisted.internet.defer import gatherResults, inlineCallbacks, returnValue, succeed

from msrplib.connect import AcceptorDirect, ConnectorDirect
from msrplib.protocol import URI


def close(transport):
    """Close an MSRPTransport and return a Deferred that fires once it is gone."""
    lost = transport.protocol.lost.observe()
    lost.addErrback(lambda failure: None)
    transport.loseConnection()
    return lost


def local_uri(tls=False):
    return URI(host="127.0.0.1", use_tls=tls)


@inlineCallbacks
def bind_pair(testcase, tls=False, connector_setup="active", fingerprints=True):
    """Bind a ConnectorDirect to an AcceptorDirect on loopback; return both transports.

    The connector connects unless ``connector_setup`` is ``passive``; the acceptor always
    takes the other side. Both transports are closed when the test ends.
    """
    acceptor_setup = "passive" if connector_setup == "active" else "active"
    connector = ConnectorDirect(setup=connector_setup)
    acceptor = AcceptorDirect(setup=acceptor_setup)
    testcase.addCleanup(connector.cleanup)
    testcase.addCleanup(acceptor.cleanup)
    connector_path = yield connector.prepare(local_uri(tls))
    acceptor_path = yield acceptor.prepare(local_uri(tls))

    def fingerprint(path):
        if tls and fingerprints:
            return path[-1].credentials.fingerprint()
        return None

    transports = yield gatherResults([
        connector.complete(acceptor_path, remote_fingerprint=fingerprint(acceptor_path)),
        acceptor.complete(connector_path, remote_fingerprint=fingerprint(connector_path)),
    ], consumeErrors=True)
    for transport in transports:
        testcase.addCleanup(close, transport)
    returnValue(transports)


def all_closed(*transports):
    return gatherResults([close(t) if t.is_connected() else succeed(None) for t in transports])
