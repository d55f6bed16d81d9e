"""``twistd msrp-relay``'s relay as a Twisted service: :class:`RelayService` listens where
it is told and stops gracefully: it stops listening, lets the chunks under way be answered
(up to ``grace`` seconds), then closes every connection. The services around it (metrics,
JSON log, web demo) are in :mod:`msrplib.relayserver.operations`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from msrplib.relayserver.operations import MULTIPROCESS_DIRECTORY
from msrplib.relayserver.relay import MSRPRelay
from msrplib.tls import TLSIdentity

__all__ = ["Listener", "RelayService", "GRACE_SECONDS", "SHARED_METRICS_INTERVAL"]

#: How long a graceful stop waits for the chunks under way.
GRACE_SECONDS = 10.0
#: Seconds between the hand-overs of a worker's counts to the files its supervisor reads
#: (:class:`~msrplib.relayserver.operations.SharedMetrics`).
SHARED_METRICS_INTERVAL = 1.0


@dataclass
class Listener:
    """A port to listen on: ``port`` (0: any), ``msrps`` with ``identity`` when given;
    ``reuse_port``, ``home`` and ``fileno`` as :meth:`MSRPRelay.listen` has them;
    ``websocket``: MSRP over WebSocket (``ws``, or ``wss`` with ``identity``)."""

    port: int
    interface: str = "127.0.0.1"
    identity: Optional[TLSIdentity] = None
    reuse_port: bool = False
    home: bool = False
    websocket: bool = False
    fileno: Optional[int] = None


class RelayService(Service):
    """Runs ``relay`` on ``listeners``. In a worker whose counts go to a supervisor
    (prometheus-client's multiprocess mode), it hands them over every
    :data:`SHARED_METRICS_INTERVAL` seconds and when it stops."""

    log = Logger()

    def __init__(self, relay: MSRPRelay, listeners: List[Listener],
                 grace: float = GRACE_SECONDS) -> None:
        self.relay = relay
        self.listeners = listeners
        self.grace = grace
        self.uris: List[Any] = []
        self._handing_over: Optional[task.LoopingCall] = None

    def startService(self) -> None:
        Service.startService(self)
        for listener in self.listeners:
            if listener.websocket:
                self.uris.append(self.relay.listen_websocket(
                    listener.port, listener.identity, listener.interface,
                    listener.reuse_port))
                continue
            self.uris.append(self.relay.listen(
                listener.port, listener.identity is not None, listener.identity,
                listener.interface, listener.reuse_port, listener.home, listener.fileno))
        self.log.info("MSRP relay listening on {uris} (process {pid})",
                      uris=" ".join(str(uri) for uri in self.uris), pid=os.getpid())
        if os.environ.get(MULTIPROCESS_DIRECTORY):
            self._handing_over = task.LoopingCall(self.relay.metrics.flush)
            self._handing_over.clock = self.relay.reactor
            self._handing_over.start(SHARED_METRICS_INTERVAL, now=False)

    @inlineCallbacks
    def stopService(self) -> Any:
        Service.stopService(self)
        yield self.relay.stop_accepting()
        waited = 0.0
        while self.relay.in_flight and waited < self.grace:
            yield task.deferLater(self.relay.reactor, 0.1, lambda: None)
            waited += 0.1
        yield self.relay.stop()
        if self._handing_over is not None:
            self._handing_over.stop()
            self.relay.metrics.flush()
