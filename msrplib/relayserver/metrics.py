"""The relay's counters, for prometheus-client: connections, bindings, chunks, bytes,
refusals and AUTH outcomes, on a registry of the relay's own (several relays in one
process, as in tests, do not mix their counts)."""

from __future__ import annotations

from typing import Any, Dict

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["RelayMetrics"]


class RelayMetrics:
    """The counters of one relay; ``registry`` is what an exporter serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge("msrp_relay_connections", "Open connections",
                                 registry=self.registry)
        self.bindings = Gauge("msrp_relay_bindings", "AUTHed Use-Paths (client sessions)",
                              registry=self.registry)
        self.chunks = Counter("msrp_relay_chunks", "Requests forwarded", ["method"],
                              registry=self.registry)
        self.bytes = Counter("msrp_relay_body_bytes", "Body bytes forwarded",
                             registry=self.registry)
        self.refusals = Counter("msrp_relay_refusals", "Requests refused, by status code",
                                ["code"], registry=self.registry)
        self.auths = Counter("msrp_relay_auths", "AUTH requests answered, by outcome",
                             ["outcome"], registry=self.registry)
        self._by_method: Dict[str, Any] = {}
        self.failure_reports = Counter("msrp_relay_failure_reports",
                                       "Failure REPORTs sent for next hops' failures",
                                       ["code"], registry=self.registry)

    def forwarded(self, method: str, size: int) -> None:
        """A request of ``method`` with ``size`` body bytes was forwarded."""
        counter = self._by_method.get(method)
        if counter is None:
            counter = self._by_method[method] = self.chunks.labels(method)
        counter.inc()
        self.bytes.inc(size)
