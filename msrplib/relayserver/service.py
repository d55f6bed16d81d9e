"""``twistd msrp-relay``: the relay as a Twisted service, made from the plugin's options.

:class:`RelayService` listens where it is told, exports the relay's counters for
Prometheus on a local endpoint when asked, writes the relay's log events as JSON when
asked, and stops gracefully: it stops listening, lets the chunks under way be answered (up
to ``grace`` seconds), then closes every connection. The JSON log is Twisted's
``jsonFileLogObserver``'s: RFC 7464 JSON text sequences, read back with
``twisted.logger.eventsFromJSONLogFile``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, List, Optional

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger, globalLogPublisher, jsonFileLogObserver

from msrplib.relayserver.relay import MSRPRelay
from msrplib.tls import TLSIdentity

__all__ = ["Listener", "RelayService", "GRACE_SECONDS"]

#: How long a graceful stop waits for the chunks under way.
GRACE_SECONDS = 10.0


@dataclass
class Listener:
    """A port to listen on: ``port`` (0: any), ``msrps`` with ``identity`` when given;
    ``reuse_port`` and ``home`` as :meth:`MSRPRelay.listen` has them; ``websocket``:
    MSRP over WebSocket (``ws``, or ``wss`` with ``identity``)."""

    port: int
    interface: str = "127.0.0.1"
    identity: Optional[TLSIdentity] = None
    reuse_port: bool = False
    home: bool = False
    websocket: bool = False


class RelayService(Service):
    """Runs ``relay`` on ``listeners``; ``metrics`` is a Twisted server endpoint string
    (``tcp:9464:interface=127.0.0.1``) for the Prometheus exporter, ``json_log`` a file
    the log events go to as JSON records, ``web_demo`` an endpoint string where the
    browser demo (:mod:`msrplib.relayserver.webdemo`) is served, for its WebSocket port
    (wss when there is one)."""

    log = Logger()

    def __init__(self, relay: MSRPRelay, listeners: List[Listener],
                 metrics: Optional[str] = None, json_log: Optional[IO[str]] = None,
                 grace: float = GRACE_SECONDS, web_demo: Optional[str] = None) -> None:
        self.relay = relay
        self.web_demo = web_demo
        self._demo_port: Any = None
        self.listeners = listeners
        self.metrics = metrics
        self.json_log = json_log
        self.grace = grace
        self.uris: List[Any] = []
        self._observer: Any = None
        self._metrics_port: Any = None

    @inlineCallbacks
    def startService(self) -> Any:
        Service.startService(self)
        if self.json_log is not None:
            self._observer = jsonFileLogObserver(self.json_log)
            globalLogPublisher.addObserver(self._observer)
        for listener in self.listeners:
            if listener.websocket:
                self.uris.append(self.relay.listen_websocket(
                    listener.port, listener.identity, listener.interface))
                continue
            self.uris.append(self.relay.listen(
                listener.port, listener.identity is not None, listener.identity,
                listener.interface, listener.reuse_port, listener.home))
        self.log.info("MSRP relay listening on {uris}",
                      uris=" ".join(str(uri) for uri in self.uris))
        if self.web_demo:
            from twisted.internet.endpoints import serverFromString
            from msrplib.relayserver.webdemo import demo_site
            websockets = sorted((uri for uri in self.uris if uri.transport in ("ws", "wss")),
                                key=lambda uri: not uri.use_tls)
            if not websockets:
                raise ValueError("--web-demo needs --wss-port or --ws-port")
            self._demo_port = yield serverFromString(self.relay.reactor, self.web_demo).listen(
                demo_site(websockets[0]))
        if self.metrics:
            from prometheus_client.twisted import MetricsResource
            from twisted.internet.endpoints import serverFromString
            from twisted.web.server import Site
            endpoint = serverFromString(self.relay.reactor, self.metrics)
            exporter: Any = MetricsResource
            resource = exporter(registry=self.relay.metrics.registry)
            self._metrics_port = yield endpoint.listen(Site(resource))

    @inlineCallbacks
    def stopService(self) -> Any:
        Service.stopService(self)
        yield self.relay.stop_accepting()
        waited = 0.0
        while self.relay.in_flight and waited < self.grace:
            yield task.deferLater(self.relay.reactor, 0.1, lambda: None)
            waited += 0.1
        yield self.relay.stop()
        for port in (self._metrics_port, self._demo_port):
            if port is not None:
                yield port.stopListening()
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)

    def metrics_address(self) -> Optional[Any]:
        """Where the exporter listens (its ``getHost()``), once started."""
        return self._metrics_port.getHost() if self._metrics_port is not None else None


