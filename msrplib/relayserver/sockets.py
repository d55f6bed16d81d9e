"""Listening sockets made by hand, for what Twisted's ``listenTCP`` does not do: ports
shared by a relay's workers (``SO_REUSEPORT``), and the home ports a supervisor holds
for its workers and hands down to them. Either way the socket ends with a reactor,
through ``adoptStreamPort``, in the process that accepts on it."""

from __future__ import annotations

import socket

__all__ = ["address_family", "listening_socket"]

#: How many connections wait to be accepted on a socket made here.
BACKLOG = 511


def address_family(interface: str) -> socket.AddressFamily:
    """The address family of ``interface``, an IPv4 or IPv6 address."""
    return socket.AF_INET6 if ":" in interface else socket.AF_INET


def listening_socket(interface: str, port: int = 0,
                     reuse_port: bool = False) -> socket.socket:
    """A non-blocking socket (as Twisted accepts) listening on ``port`` (0: any) of
    ``interface``, shared with other processes with ``reuse_port``."""
    listening = socket.socket(address_family(interface), socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listening.bind((interface, port))
        listening.listen(BACKLOG)
        listening.setblocking(False)
    except OSError:
        listening.close()
        raise
    return listening
