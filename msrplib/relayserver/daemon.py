"""``twistd msrp-relay``: the services made from the plugin's options
(``twisted/plugins/msrp_relay_plugin.py`` parses them; ``twistd msrp-relay --help`` lists
them), and its workers.

With ``--workers 1`` (the default) the process is the relay. With ``--workers N`` it is
their supervisor: it starts N worker processes (``twistd -n msrp-relay`` with the same
options and ``--worker``), starts another when one ends, and stops them when it stops
(waiting for their graceful stops). All N listen on the client ports with
``SO_REUSEPORT``, so the kernel spreads the clients among them, and each also listens on
a port of its own, which the Use-Paths it grants name: the peers of a client reach the
worker that holds its binding, and no state is shared. The supervisor serves the
counters of them all (prometheus-client's multiprocess mode) and the web demo; the
workers append their log records to the one JSON log.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from twisted.application.service import MultiService, Service
from twisted.internet import protocol
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.logger import Logger

from msrplib._uri import URI
from msrplib.relayserver.operations import (JSONLog, MetricsExporter, SharedMetrics, WebDemo,
                                            open_json_log)
from msrplib.relayserver.nexthops import REFUSED_BY_DEFAULT
from msrplib.relayserver.relay import MSRPRelay, RelaySettings
from msrplib.relayserver.service import GRACE_SECONDS, Listener, RelayService
from msrplib.relayserver.sockets import address_family, listening_socket
from msrplib.relayserver.users import load_users
from msrplib.tls import TLSIdentity

__all__ = ["make_service", "RelayDaemon", "WorkerProcesses", "SupervisorWatch",
           "parse_chunk_sizes", "RESTART_DELAY", "EARLY_END", "MAX_EARLY_ENDS", "STOP_WAIT",
           "HOME_FD", "GAVE_UP_STATUS", "exit_failed", "home_sockets"]

#: Seconds before a worker that ended is started again; doubled for each one in a row
#: that ended within :data:`EARLY_END` seconds of its start, and after
#: :data:`MAX_EARLY_ENDS` of those the supervisor stops (the workers cannot start: a
#: port taken, a file missing), rather than look well while no worker serves.
RESTART_DELAY = 1.0
EARLY_END = 10.0
MAX_EARLY_ENDS = 5
#: Seconds a supervisor waits for its workers' graceful stops before it kills them.
STOP_WAIT = GRACE_SECONDS + 5.0
#: The file descriptor a worker gets its home socket on (``--home-fd``).
HOME_FD = 3
#: The exit status of a supervisor that stopped because its workers could not start.
GAVE_UP_STATUS = 1


def parse_chunk_sizes(values: List[str]) -> Dict[Tuple[str, int], int]:
    """``HOST:PORT=BYTES`` options as ``next_hop_chunk_sizes``; ``ValueError`` otherwise."""
    sizes = {}
    for value in values:
        address, _, size = value.partition("=")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not size.isdigit() or int(size) < 1024:
            raise ValueError("--next-hop-chunk-size takes HOST:PORT=BYTES (1024 or more), "
                             "not %r" % value)
        sizes[(host, int(port))] = int(size)
    return sizes


class RelayDaemon(MultiService):
    """What ``twistd msrp-relay`` runs: the relay service (``relay``) or the workers
    (``workers``, with the files of their ``shared_metrics``), and the services around
    them (``metrics``, the exporter)."""

    relay: Optional[RelayService] = None
    workers: Optional[WorkerProcesses] = None
    shared_metrics: Optional[SharedMetrics] = None
    metrics: Optional[MetricsExporter] = None

    @inlineCallbacks
    def stopService(self) -> Any:
        yield MultiService.stopService(self)  # the workers' included: they have ended
        if self.shared_metrics is not None:
            self.shared_metrics.remove()


class _Worker(protocol.ProcessProtocol):
    """Worker number ``index``: when it ends while the workers run, another takes its
    place (with the same home port). ``pid`` and ``started`` are kept: Twisted forgets
    the pid before it says the process ended."""

    def __init__(self, workers: WorkerProcesses, index: int, started: float) -> None:
        self.workers = workers
        self.index = index
        self.started = started
        self.pid: Optional[int] = None
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Any) -> None:
        self.workers.ended(self)
        self.ended.callback(None)


class WorkerProcesses(Service):
    """Runs ``count`` processes of ``argv`` (with ``environment``) while it runs,
    starting another when one ends (after :data:`RESTART_DELAY`, so that one failing at
    start does not spin) and telling ``on_ended`` its pid; stops them with it, waiting up
    to :data:`STOP_WAIT` seconds for them to end (then kills them).

    With ``homes`` (a listening socket for each worker, see :func:`home_sockets`: the
    worker's home, which its Use-Paths name), it hands each worker its own socket
    (:data:`HOME_FD`, ``--home-fd``) with the others' ports (``--sibling-port``, where it
    may forward): the port stays the worker's however often it is started again, and
    nobody else can take it meanwhile."""

    log = Logger()

    def __init__(self, argv: List[str], count: int, reactor: Any,
                 environment: Optional[Dict[str, str]] = None,
                 on_ended: Callable[[int], None] = lambda pid: None,
                 homes: Optional[List[Any]] = None) -> None:
        self.argv = argv
        self.count = count
        self.reactor = reactor
        self.environment = environment
        self.on_ended = on_ended
        #: The workers' home sockets, by worker number, until the workers stop.
        self.homes: List[Any] = list(homes or [])
        self.processes: Dict[_Worker, Any] = {}
        self._restarts: List[Any] = []
        self._early_ends = 0

    def startService(self) -> None:
        Service.startService(self)
        for index in range(self.count):
            self._spawn(index)

    def argv_of(self, index: int) -> List[str]:
        """How worker ``index`` is started."""
        if not self.homes:
            return self.argv
        ports = [home.getsockname()[1] for home in self.homes]
        siblings = [port for number, port in enumerate(ports) if number != index]
        return self.argv + ["--home-fd", str(HOME_FD)] + [
            option for port in siblings for option in ("--sibling-port", str(port))]

    def _spawn(self, index: int) -> None:
        if not self.running:
            return
        worker = _Worker(self, index, self.reactor.seconds())
        # Its standard input is a pipe from here: it ends when this process does, and the
        # worker then stops (SupervisorWatch).
        descriptors: Dict[int, Any] = {0: "w", 1: 1, 2: 2}
        if self.homes:
            descriptors[HOME_FD] = self.homes[index].fileno()
        argv = self.argv_of(index)
        process = self.reactor.spawnProcess(worker, argv[0], argv, env=self.environment,
                                            childFDs=descriptors)
        worker.pid = process.pid
        self.processes[worker] = process

    def ended(self, worker: _Worker) -> None:
        """A worker ended: another one, unless the workers are stopping, or they keep
        ending as they start."""
        self.processes.pop(worker, None)
        if worker.pid is not None:
            self.on_ended(worker.pid)
        if not self.running:
            return
        if self.reactor.seconds() - worker.started < EARLY_END:
            self._early_ends += 1
        else:
            self._early_ends = 0
        if self._early_ends >= MAX_EARLY_ENDS:
            self.log.critical("relay workers keep ending as they start ({count} in a row);"
                              " stopping", count=self._early_ends)
            # twistd has no exit status of its own: once it is done (services stopped,
            # pidfile removed), the process ends with one that says it failed (systemd's
            # Restart=on-failure).
            atexit.register(exit_failed)
            self.reactor.stop()
            return
        delay = RESTART_DELAY * 2 ** self._early_ends
        self.log.warn("a relay worker ended; starting another in {delay} s", delay=delay)
        self._restarts = [call for call in self._restarts if call.active()]
        self._restarts.append(self.reactor.callLater(delay, self._spawn, worker.index))

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        self._close_homes()  # the workers stop accepting on theirs, and none starts again
        for call in self._restarts:
            if call.active():
                call.cancel()
        self._restarts = []
        ending = [worker.ended for worker in self.processes]
        for process in self.processes.values():
            if process.pid is not None:
                process.signalProcess("TERM")
        if not ending:
            return succeed(None)
        running = dict(self.processes)

        def kill() -> None:
            for process in running.values():
                if process.pid is not None:
                    process.signalProcess("KILL")

        killer = self.reactor.callLater(STOP_WAIT, kill)
        done = DeferredList(ending)
        done.addBoth(lambda result: killer.active() and killer.cancel())
        return done

    def _close_homes(self) -> None:
        """The workers stop: this process's copies of their home sockets close."""
        for home in self.homes:
            home.close()
        self.homes = []


class _EndOfInput(protocol.Protocol):
    def __init__(self, ended: Callable[[], None]) -> None:
        self.ended = ended

    def connectionLost(self, reason: Any = None) -> None:
        self.ended()


class SupervisorWatch(Service):
    """In a worker: stops the worker when its supervisor ends, however it ends (its
    standard input, a pipe from the supervisor, closes), so that no worker outlives it."""

    log = Logger()

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self._reader: Any = None

    def startService(self) -> None:
        import os
        from twisted.internet import stdio
        Service.startService(self)
        # Its standard output is the supervisor's: it stays blocking, untouched.
        standard_io: Any = stdio.StandardIO
        self._reader = standard_io(_EndOfInput(self._supervisor_gone), stdin=0,
                                   stdout=os.open(os.devnull, os.O_WRONLY),
                                   reactor=self.reactor)

    def _supervisor_gone(self) -> None:
        if self.running:
            self.log.warn("the supervisor is gone; this worker stops")
            self.reactor.stop()

    def stopService(self) -> None:
        Service.stopService(self)
        if self._reader is not None:
            self._reader.loseConnection()


def _input_is_a_pipe() -> bool:
    """Whether standard input is a pipe, as a supervisor gives its workers (a worker
    started by hand, from /dev/null say, watches no supervisor)."""
    import os
    import stat
    try:
        return stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        return False


def _identity(config: Mapping[str, Any]) -> Optional[TLSIdentity]:
    if not config.get("tls-port") and not config.get("wss-port"):
        return None
    if not config.get("certificate") or not config.get("key"):
        raise ValueError("--tls-port and --wss-port need --certificate and --key (PEM "
                         "files)")
    with open(config["certificate"], "rb") as certificate, open(config["key"], "rb") as key:
        return TLSIdentity.from_pem(certificate.read(), key.read())


def make_service(config: Mapping[str, Any], reactor: Any = None,
                 argv: Optional[List[str]] = None) -> RelayDaemon:
    """The services for the plugin's parsed options. ``argv`` is how to start a worker
    of this relay (for ``--workers``; by default ``twistd -n msrp-relay`` with the
    command line's options and ``--worker``)."""
    if reactor is None:
        from twisted.internet import reactor
    daemon = RelayDaemon()
    if config.get("json-log"):  # first: what the others say as they start is in it
        JSONLog(open_json_log(config["json-log"])).setServiceParent(daemon)
    workers = int(config.get("workers") or 1)
    registry: Any = None
    if workers > 1 and not config.get("worker"):
        shared = daemon.shared_metrics = SharedMetrics() if config.get("metrics") else None
        again = argv or ([sys.executable, "-c", "from twisted.scripts.twistd import run; "
                          "run()", "-n", "--pidfile=", "msrp-relay"]
                         + _repeat(config) + ["--worker"])
        daemon.workers = WorkerProcesses(
            again, workers, reactor, shared.environment() if shared else None,
            shared.process_ended if shared else lambda pid: None,
            home_sockets(config.get("interface") or "127.0.0.1", workers))
        if shared is not None:
            registry = shared.registry
        daemon.workers.setServiceParent(daemon)
    else:
        relay = _relay(config, reactor)
        daemon.relay = RelayService(relay, _listeners(config), grace=GRACE_SECONDS)
        daemon.relay.setServiceParent(daemon)
        registry = relay.metrics.registry
        if config.get("worker") and _input_is_a_pipe():
            SupervisorWatch(reactor).setServiceParent(daemon)
    if config.get("metrics"):
        daemon.metrics = MetricsExporter(config["metrics"], registry, reactor)
        daemon.metrics.setServiceParent(daemon)
    if config.get("web-demo") and not config.get("worker"):
        WebDemo(config["web-demo"], _demo_websocket(config), reactor).setServiceParent(daemon)
    return daemon


def exit_failed() -> None:
    """End this process with :data:`GAVE_UP_STATUS`, what was written flushed (the last
    thing it does: at exit)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(GAVE_UP_STATUS)


def home_sockets(interface: str, count: int) -> List[Any]:
    """``count`` sockets listening on ports of ``interface``: the homes of a
    supervisor's workers."""
    homes = []
    try:
        for _ in range(count):
            homes.append(listening_socket(interface))
    except OSError as error:
        for home in homes:
            home.close()
        raise ValueError("cannot listen on --interface %s: %s" % (interface, error)) \
            from None
    return homes


def _check_home(fileno: int, interface: str) -> int:
    """``fileno`` (``--home-fd``), once it is known to be a TCP socket listening on
    ``interface``'s kind of address; ValueError otherwise."""
    try:
        probe = socket.socket(fileno=os.dup(fileno))
    except OSError as error:
        raise ValueError("--home-fd %d: %s" % (fileno, error)) from None
    with probe:
        if probe.family != address_family(interface) or probe.type != socket.SOCK_STREAM or \
                not probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ValueError("--home-fd %d is not a TCP socket listening on an address "
                             "like --interface %s" % (fileno, interface))
    return fileno


def _relay(config: Mapping[str, Any], reactor: Any) -> MSRPRelay:
    trust_root = None
    if config.get("next-hop-ca"):
        from twisted.internet.ssl import Certificate
        with open(config["next-hop-ca"], "rb") as source:
            trust_root = Certificate.loadPEM(source.read())
    settings = RelaySettings(
        min_expires=int(config["min-expires"]), max_expires=int(config["max-expires"]),
        default_expires=int(config["default-expires"]),
        next_hop_chunk_sizes=parse_chunk_sizes(list(config.get("next-hop-chunk-size") or [])),
        trust_root=trust_root, verify_tls=not config.get("no-verify-next-hop"),
        allowed_next_hops=list(config.get("next-hop") or []) or None,
        refused_next_hop_networks=(list(REFUSED_BY_DEFAULT)
                                   + list(config.get("refuse-next-hop") or [])),
        sibling_ports=[int(port) for port in config.get("sibling-port") or []])
    if not settings.min_expires <= settings.default_expires <= settings.max_expires:
        raise ValueError("--default-expires must lie between --min-expires and "
                         "--max-expires")
    interface = config.get("interface") or "127.0.0.1"
    return MSRPRelay(config["domain"], load_users(config["users"]),
                     host=config.get("host") or interface, settings=settings,
                     reactor=reactor)


def _listeners(config: Mapping[str, Any]) -> List[Listener]:
    """The ports one relay process listens on; a worker shares the client ports with the
    others and has one of its own, which its Use-Paths name."""
    interface = config.get("interface") or "127.0.0.1"
    shared = bool(config.get("worker"))
    identity = _identity(config)
    listeners = []
    if int(config.get("port") or 0) or not config.get("tls-port"):
        listeners.append(Listener(int(config.get("port") or 0), interface, None, shared))
    if config.get("tls-port"):
        listeners.append(Listener(int(config["tls-port"]), interface, identity, shared))
    if shared:
        # msrps when the relay has an msrps port (a certificate for wss only is no
        # reason to name msrps in the Use-Paths of TCP clients).
        home_fd = config.get("home-fd")
        listeners.append(Listener(
            0, interface, identity if config.get("tls-port") else None, False, home=True,
            fileno=_check_home(int(home_fd), interface) if home_fd else None))
    if config.get("ws-port"):
        listeners.append(Listener(int(config["ws-port"]), interface, None, shared,
                                  websocket=True))
    if config.get("wss-port"):
        if identity is None:
            raise ValueError("--wss-port needs --tls-port's --certificate and --key")
        listeners.append(Listener(int(config["wss-port"]), interface, identity, shared,
                                  websocket=True))
    return listeners


def _demo_websocket(config: Mapping[str, Any]) -> URI:
    """The WebSocket port the web demo's page logs in on: wss when there is one."""
    host = config.get("host") or config.get("interface") or "127.0.0.1"
    if config.get("wss-port"):
        return URI(host=host, port=int(config["wss-port"]), use_tls=True, transport="wss")
    if config.get("ws-port"):
        return URI(host=host, port=int(config["ws-port"]), transport="ws")
    raise ValueError("--web-demo needs --wss-port or --ws-port")


def _repeat(config: Mapping[str, Any]) -> List[str]:
    """The options that make a worker of this relay (the supervisor serves the metrics
    and the web demo; the workers append to the JSON log)."""
    argv = []
    for name in ("port", "tls-port", "ws-port", "wss-port", "certificate", "key",
                 "interface", "host", "domain", "json-log",
                 "users", "min-expires", "max-expires", "default-expires", "next-hop-ca"):
        if config.get(name):
            argv += ["--" + name, str(config[name])]
    for value in config.get("next-hop-chunk-size") or []:
        argv += ["--next-hop-chunk-size", value]
    for value in config.get("next-hop") or []:
        argv += ["--next-hop", value]
    for value in config.get("refuse-next-hop") or []:
        argv += ["--refuse-next-hop", value]
    if config.get("no-verify-next-hop"):
        argv.append("--no-verify-next-hop")
    return argv
