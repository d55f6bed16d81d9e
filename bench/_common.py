"""Helpers shared by the benchmarks: timing, peak memory, and bound pairs on loopback."""

import resource
import sys
import time

from twisted.internet.defer import gatherResults, inlineCallbacks

from msrplib.connect import AcceptorDirect, ConnectorDirect
from msrplib.protocol import URI


def peak_rss_mib():
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _figure(value):
    return "%.0f" % value if value >= 100 else "%.3g" % value


def report(name, ours, baseline, unit, lower_is_better=False):
    """One line: our figure, the baseline's, and ours divided by the baseline's (the
    baseline's divided by ours for a cost, so that a higher ratio is always better)."""
    top, bottom = (baseline, ours) if lower_is_better else (ours, baseline)
    print("%-44s %10s %-7s baseline %10s  ratio %.2f"
          % (name, _figure(ours), unit, _figure(baseline),
             top / bottom if bottom else float("nan")))
    sys.stdout.flush()


class Timer:
    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started


@inlineCallbacks
def bound_pair(tls=False):
    """Two bound MSRPTransports on loopback (connector first)."""
    connector, acceptor = ConnectorDirect(), AcceptorDirect()
    connector_path = yield connector.prepare(URI(host="127.0.0.1", use_tls=tls))
    acceptor_path = yield acceptor.prepare(URI(host="127.0.0.1", use_tls=tls))
    pair = yield gatherResults([connector.complete(acceptor_path),
                                acceptor.complete(connector_path)])
    connector.cleanup()
    acceptor.cleanup()
    return pair
