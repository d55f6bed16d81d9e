"""The connections a listening :class:`~msrplib._server.MSRPServer` accepted that have not
bound yet: how many may wait, from where, and for how long.

A connection is *silent* until it delivers the start line and headers of its first request.
Silent connections cost a peer nothing to open and hold, so they are the ones given up
first: past ``ConnectionSettings.max_unbound_connections`` in all, or
``max_unbound_per_source`` from one peer address, the oldest silent connection (of that
address, for the second) is closed to make room for the new one, and the new one is closed
only when there is none. A silent connection is closed after ``first_request_timeout``
(whether it sent nothing or bytes that do not make a request); one that spoke waits for the
bind timeout, counted from its accept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from twisted.logger import Logger

from msrplib._bind import ConnectionSettings
from msrplib._parser import ParserEvent
from msrplib._uri import URI
from msrplib._chunk import MSRPData
from msrplib.transport import MSRPProtocol

__all__ = ["Unbound", "UnboundConnections"]


@dataclass(eq=False)
class Unbound:
    """An accepted connection that has not bound yet, with what it sent so far.

    ``head`` is its first request once it passed the checks, ``local_uri`` the session it
    is for and ``from_path`` its parsed From-Path; ``held`` are the events after ``first``.
    """

    protocol: MSRPProtocol
    source: str
    accepted_at: float
    timer: Any = None
    first: Optional[ParserEvent] = None
    head: Optional[MSRPData] = None
    local_uri: Optional[URI] = None
    from_path: List[URI] = field(default_factory=list)
    held: List[ParserEvent] = field(default_factory=list)


class UnboundConnections:
    """Admission, eviction and timeouts of the connections waiting to bind (see the
    module's docstring). Every operation is a dict operation: none looks at every
    connection."""

    log = Logger()

    def __init__(self, settings: ConnectionSettings, reactor: Any,
                 logger: Optional[Logger] = None) -> None:
        if logger is not None:
            self.log = logger  # the server's (see MSRPServer)
        self.settings = settings
        self.reactor = reactor
        self._all: Dict[MSRPProtocol, Unbound] = {}
        # Silent connections, oldest first (dicts keep insertion order).
        self._silent: Dict[MSRPProtocol, Unbound] = {}
        self._silent_from: Dict[str, Dict[MSRPProtocol, Unbound]] = {}
        self._count_from: Dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._all)

    def get(self, protocol: MSRPProtocol) -> Optional[Unbound]:
        """The waiting connection of ``protocol``, or ``None``."""
        return self._all.get(protocol)

    def connections(self) -> List[Unbound]:
        """Every connection waiting to bind."""
        return list(self._all.values())

    def admit(self, protocol: MSRPProtocol, source: str) -> Optional[Unbound]:
        """Take a new connection from the peer address ``source``, closing the oldest
        silent connection to make room when a limit is reached; ``None`` (the caller
        closes it) when there is no room."""
        settings = self.settings
        if self._count_from.get(source, 0) >= settings.max_unbound_per_source and \
                not self._evict(self._silent_from.get(source), "from %s" % source):
            self.log.warn("refusing a connection from {source}: {count} from it are waiting "
                          "to bind and all have spoken", source=source,
                          count=self._count_from.get(source, 0))
            return None
        if len(self._all) >= settings.max_unbound_connections and \
                not self._evict(self._silent, "in all"):
            self.log.warn("refusing a connection from {source}: {count} are waiting to bind "
                          "and all have spoken", source=source, count=len(self._all))
            return None
        unbound = Unbound(protocol, source, self.reactor.seconds())
        seconds = min(settings.first_request_timeout, settings.bind_seconds())
        unbound.timer = self.reactor.callLater(seconds, self._timed_out, unbound)
        self._all[protocol] = unbound
        self._silent[protocol] = unbound
        self._silent_from.setdefault(source, {})[protocol] = unbound
        self._count_from[source] = self._count_from.get(source, 0) + 1
        return unbound

    def spoke(self, unbound: Unbound) -> None:
        """``unbound`` delivered its first request: it is no longer silent, and may wait
        until the bind timeout (from its accept)."""
        if self._silent.pop(unbound.protocol, None) is None:
            return
        self._unlist_silent(unbound)
        if unbound.timer is not None and unbound.timer.active():
            # Later than the silent timeout (which is never past the bind timeout).
            deadline = unbound.accepted_at + self.settings.bind_seconds()
            unbound.timer.reset(max(0.0, deadline - self.reactor.seconds()))

    def forget(self, protocol: MSRPProtocol) -> Optional[Unbound]:
        """Stop tracking ``protocol`` (it bound, was refused or closed); its waiting
        connection, or ``None`` if it was not waiting."""
        unbound = self._all.pop(protocol, None)
        if unbound is None:
            return None
        if unbound.timer is not None and unbound.timer.active():
            unbound.timer.cancel()
        if self._silent.pop(protocol, None) is not None:
            self._unlist_silent(unbound)
        left = self._count_from[unbound.source] - 1
        if left:
            self._count_from[unbound.source] = left
        else:
            del self._count_from[unbound.source]
        return unbound

    def _unlist_silent(self, unbound: Unbound) -> None:
        of_source = self._silent_from[unbound.source]
        del of_source[unbound.protocol]
        if not of_source:
            del self._silent_from[unbound.source]

    def _evict(self, silent: Optional[Dict[MSRPProtocol, Unbound]], where: str) -> bool:
        """Close the oldest of ``silent``; False when there is none."""
        if not silent:
            return False
        oldest = next(iter(silent.values()))
        self.log.info("closing the oldest silent connection ({source}) to make room: too "
                      "many waiting to bind {where}", source=oldest.source, where=where)
        self._close(oldest)
        return True

    def _timed_out(self, unbound: Unbound) -> None:
        unbound.timer = None
        if unbound.protocol in self._silent:
            why = "no request within %s seconds" % min(self.settings.first_request_timeout,
                                                        self.settings.bind_seconds())
        else:
            why = "not bound within %s seconds" % self.settings.bind_seconds()
        self.log.info("closing a connection from {source}: {why}", source=unbound.source,
                      why=why)
        self._close(unbound)

    def _close(self, unbound: Unbound) -> None:
        self.forget(unbound.protocol)
        transport = unbound.protocol.transport
        if transport is not None:
            transport.abortConnection()
