"""The services around a relay that its operators use, each a Twisted service of its own
so that one relay process and a supervisor of workers compose the same ones:

- :class:`MetricsExporter`: a prometheus-client registry served on a local endpoint;
- :class:`SharedMetrics`: the counters of several worker processes as one registry, by
  prometheus-client's multiprocess mode (each worker writes its counts into files of a
  directory this service owns; the registry adds them up; the directories that killed
  supervisors left are removed when the next one starts);
- :class:`JSONLog`: the log events, appended to a file as JSON records (Twisted's
  ``jsonFileLogObserver``: RFC 7464 JSON text sequences, read back with
  ``twisted.logger.eventsFromJSONLogFile``); a record is written whole, so workers
  appending to the same file do not mix their records;
- :class:`WebDemo`: the browser demo's page (:mod:`msrplib.relayserver.webdemo`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import IO, Any, Dict, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import globalLogPublisher, jsonFileLogObserver

from msrplib._uri import URI

__all__ = ["MetricsExporter", "SharedMetrics", "JSONLog", "open_json_log", "WebDemo",
           "MULTIPROCESS_DIRECTORY", "METRICS_PREFIX", "remove_stale_metrics"]

#: The environment variable that puts prometheus-client in its multiprocess mode: a
#: process started with it writes its counts into files of that directory.
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
#: How the name of a supervisor's metrics directory starts; its process id follows.
METRICS_PREFIX = "msrp-relay-metrics-"


class _Listening(Service):
    """A service that serves a Twisted site on an endpoint while it runs."""

    def __init__(self, endpoint: str, reactor: Any) -> None:
        self.endpoint = endpoint
        self.reactor = reactor
        self._port: Any = None

    def site(self) -> Any:
        raise NotImplementedError

    @inlineCallbacks
    def startService(self) -> Any:
        from twisted.internet.endpoints import serverFromString
        Service.startService(self)
        self._port = yield serverFromString(self.reactor, self.endpoint).listen(self.site())

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        port, self._port = self._port, None
        return succeed(None) if port is None else succeed(port.stopListening())

    def address(self) -> Optional[Any]:
        """Where it listens (its ``getHost()``), once started."""
        return self._port.getHost() if self._port is not None else None


class MetricsExporter(_Listening):
    """Serves ``registry`` in Prometheus' text format on ``endpoint`` (a Twisted server
    endpoint string such as ``tcp:9464:interface=127.0.0.1``)."""

    def __init__(self, endpoint: str, registry: Any, reactor: Any) -> None:
        super().__init__(endpoint, reactor)
        self.registry = registry

    def site(self) -> Any:
        from prometheus_client.twisted import MetricsResource
        from twisted.web.server import Site
        exporter: Any = MetricsResource
        return Site(exporter(registry=self.registry))


class SharedMetrics:
    """The counters of the worker processes started with :meth:`environment`, as one
    ``registry``: counters are added up, and so are the gauges of the workers alive
    (:meth:`process_ended` drops those of one that ended). :meth:`remove` its directory
    once they have all ended."""

    def __init__(self, parent: Optional[str] = None) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector
        remove_stale_metrics(parent)
        self.directory = tempfile.mkdtemp(prefix="%s%d-" % (METRICS_PREFIX, os.getpid()),
                                          dir=parent)
        self.registry = CollectorRegistry()
        collector: Any = MultiProcessCollector
        collector(self.registry, path=self.directory)

    def environment(self) -> Dict[str, str]:
        """The environment a worker is started with."""
        return dict(os.environ, **{MULTIPROCESS_DIRECTORY: self.directory})

    def process_ended(self, pid: int) -> None:
        """Worker ``pid`` ended: its gauges no longer count (its counters still do)."""
        from prometheus_client import multiprocess
        mark_dead: Any = multiprocess.mark_process_dead
        mark_dead(pid, self.directory)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def remove_stale_metrics(parent: Optional[str] = None) -> None:
    """Remove the metrics directories under ``parent`` (the temporary directory by
    default) that supervisors of this user left when they were killed (``SIGKILL`` lets
    :meth:`SharedMetrics.remove` no chance): those whose supervisor's process id, in
    their name, is no longer running."""
    parent = parent or tempfile.gettempdir()
    for name in os.listdir(parent):
        if not name.startswith(METRICS_PREFIX):
            continue
        pid_text = name[len(METRICS_PREFIX):].partition("-")[0]
        if not pid_text.isdigit():
            continue
        path = os.path.join(parent, name)
        try:
            if os.lstat(path).st_uid != os.getuid() or not os.path.isdir(path):
                continue
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue  # gone meanwhile, or a process of another user: running


class JSONLog(Service):
    """Appends every log event to ``output`` as a JSON record while it runs."""

    def __init__(self, output: IO[str]) -> None:
        self.output = output
        self._observer: Any = jsonFileLogObserver(output)

    def startService(self) -> None:
        Service.startService(self)
        globalLogPublisher.addObserver(self._observer)

    def stopService(self) -> None:
        Service.stopService(self)
        globalLogPublisher.removeObserver(self._observer)
        self.output.flush()


def open_json_log(path: str) -> IO[str]:
    """``path`` opened to append records to: line by line, so that each record (one line)
    goes out in one write, whole, however many processes append to it."""
    return open(path, "a", encoding="utf-8", buffering=1)


class WebDemo(_Listening):
    """Serves the browser demo on ``endpoint``, for the relay's WebSocket port
    ``websocket``."""

    def __init__(self, endpoint: str, websocket: URI, reactor: Any) -> None:
        super().__init__(endpoint, reactor)
        self.websocket = websocket

    def site(self) -> Any:
        from msrplib.relayserver.webdemo import demo_site
        return demo_site(self.websocket)
