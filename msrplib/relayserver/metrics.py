"""The relay's counters, for prometheus-client: connections, bindings, chunks, bytes,
refusals and AUTH outcomes, on a registry of the relay's own (several relays in one
process, as in tests, do not mix their counts).

The counts of forwarded chunks and bytes change for every chunk, so they are kept as plain
numbers and handed to their prometheus-client counters in one step whenever the registry
is read (:meth:`RelayMetrics.flush`): a counter's ``inc`` takes a lock, which would cost
the forwarding path a tenth of its time.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["RelayMetrics"]


class RelayMetrics:
    """The counters of one relay; ``registry`` is what an exporter serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Registered first, so that every collection of the registry starts with a flush.
        self.registry.register(_FlushFirst(self))
        # A supervisor adds up the gauges of the workers alive (multiprocess mode).
        self.connections = Gauge("msrp_relay_connections", "Open connections",
                                 registry=self.registry, multiprocess_mode="livesum")
        self.bindings = Gauge("msrp_relay_bindings", "AUTHed Use-Paths (client sessions)",
                              registry=self.registry, multiprocess_mode="livesum")
        self.chunks = Counter("msrp_relay_chunks", "Requests forwarded", ["method"],
                              registry=self.registry)
        self.bytes = Counter("msrp_relay_body_bytes", "Body bytes forwarded",
                             registry=self.registry)
        self.refusals = Counter("msrp_relay_refusals", "Requests refused, by status code",
                                ["code"], registry=self.registry)
        self.auths = Counter("msrp_relay_auths", "AUTH requests answered, by outcome",
                             ["outcome"], registry=self.registry)
        self.failure_reports = Counter("msrp_relay_failure_reports",
                                       "Failure REPORTs sent for next hops' failures",
                                       ["code"], registry=self.registry)
        self._unflushed_chunks: Dict[str, int] = {}
        self._unflushed_bytes = 0

    def forwarded(self, method: str, size: int) -> None:
        """A request of ``method`` with ``size`` body bytes was forwarded."""
        unflushed = self._unflushed_chunks
        unflushed[method] = unflushed.get(method, 0) + 1
        self._unflushed_bytes += size

    def flush(self) -> None:
        """Hand the forwarded chunks and bytes counted since the last flush to their
        counters."""
        unflushed, self._unflushed_chunks = self._unflushed_chunks, {}
        for method, count in unflushed.items():
            self.chunks.labels(method).inc(count)
        if self._unflushed_bytes:
            self.bytes.inc(self._unflushed_bytes)
            self._unflushed_bytes = 0


class _FlushFirst:
    """A collector of no metrics of its own: it flushes the relay's counts when the
    registry is read."""

    def __init__(self, metrics: RelayMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Any]:
        self.metrics.flush()
        return []
