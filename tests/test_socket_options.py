"""The socket options an MSRP connection sets on real loopback sockets."""

import socket

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from tests.helpers import bind_pair


def tcp_socket(transport):
    """The socket under an MSRPTransport's connection, TCP or TLS."""
    layer = transport.protocol.transport
    return getattr(layer, "transport", layer).getHandle()


class NoDelayTests(unittest.TestCase):
    """Nagle's algorithm is off: small answers and REPORTs leave without waiting for the
    acknowledgement of what was sent before them."""

    @inlineCallbacks
    def check_both_ends(self, tls):
        transports = yield bind_pair(self, tls=tls)
        for transport in transports:
            option = tcp_socket(transport).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            self.assertTrue(option, transport)

    def test_tcp(self):
        return self.check_both_ends(tls=False)

    def test_tls(self):
        return self.check_both_ends(tls=True)
