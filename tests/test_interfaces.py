"""The session's view of its connection is what msrplib.interfaces declares: a real bound
connection provides both interfaces, and a session works over a stand-in that provides
nothing more."""

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from msrplib.interfaces import IChunkWriter, IMessageConnection
from msrplib.session import MSRPSession, SessionSettings
from msrplib.testing import CollectingReceiver, SessionPair
from tests.helpers import bind_pair


class ProvidedTests(unittest.TestCase):
    @inlineCallbacks
    def test_a_bound_connection_provides_both(self):
        for tls in (False, True):
            calling, answering = yield bind_pair(self, tls=tls)
            for transport in (calling, answering):
                self.assertTrue(verifyObject(IMessageConnection, transport))
                self.assertTrue(verifyObject(IChunkWriter, transport.writer))


class _Declared:
    """Exposes only what an interface declares of the object it wraps."""

    def __init__(self, interface, wrapped, **replaced):
        names = set(interface.names(all=True))
        for name in names:
            setattr(self, name, replaced.get(name, getattr(wrapped, name, None)))
        self._names = names

    def __getattr__(self, name):
        raise AssertionError("the session used %r, which its interface does not declare"
                             % name)


class OnlyTheInterfaceTests(unittest.TestCase):
    def test_a_session_needs_nothing_else_of_its_connection(self):
        sessions = SessionPair(settings=SessionSettings(keepalive_interval=0),
                               bob_options={"receiver": CollectingReceiver()})
        # A third session over Alice's connection, seeing it through the interfaces only.
        transport = sessions.alice.transport
        writer = _Declared(IChunkWriter, transport.writer)
        connection = _Declared(IMessageConnection, transport, writer=writer)
        received = CollectingReceiver()
        alice = MSRPSession(connection, settings=SessionSettings(keepalive_interval=0,
                                                                 chunk_size=10),
                            receiver=received, reactor=sessions.clock)
        big = alice.send_message(b"x" * 95, "text/plain", success_report="yes")
        small = alice.send_message(b"hello", "text/plain")
        sessions.flush()
        self.successResultOf(big)
        self.successResultOf(small)
        sessions.bob.send_message(b"back", "text/plain")
        sessions.flush()
        self.assertEqual([m.data for m in received.received], [b"back"])
        closed = alice.shutdown()
        sessions.flush()
        self.successResultOf(closed)
