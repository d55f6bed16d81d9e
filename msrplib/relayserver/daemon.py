"""``twistd msrp-relay``: the relay service made from the plugin's options
(``twisted/plugins/msrp_relay_plugin.py`` parses them; ``twistd msrp-relay --help`` lists
them), and its workers.

With ``--workers N`` the process starts N-1 more of itself (``twistd -n msrp-relay``
with the same options and ``--worker``). All N listen on the client port with
``SO_REUSEPORT``, so the kernel spreads the clients among them, and each also listens on a
port of its own, which the Use-Paths it grants name: the peers of a client reach the
worker that holds its binding, and no state is shared. A worker that ends is started
again; the workers end with the first.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

from twisted.application.service import MultiService, Service
from twisted.internet import protocol
from twisted.logger import Logger

from msrplib.relayserver.relay import MSRPRelay, RelaySettings
from msrplib.relayserver.service import GRACE_SECONDS, Listener, RelayService
from msrplib.relayserver.users import load_users
from msrplib.tls import TLSIdentity

__all__ = ["make_service", "RelayDaemon", "WorkerProcesses", "parse_chunk_sizes",
           "RESTART_DELAY"]

#: Seconds before a worker that ended is started again.
RESTART_DELAY = 1.0


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
    """What ``twistd msrp-relay`` runs: the relay service, and the other workers."""

    def __init__(self, relay: RelayService, workers: Optional[WorkerProcesses]) -> None:
        super().__init__()
        self.relay = relay
        self.workers = workers
        relay.setServiceParent(self)
        if workers is not None:
            workers.setServiceParent(self)


class _Worker(protocol.ProcessProtocol):
    """One worker process: when it ends while the workers run, another takes its place."""

    def __init__(self, workers: WorkerProcesses) -> None:
        self.workers = workers

    def processEnded(self, reason: Any) -> None:
        self.workers.ended(self)


class WorkerProcesses(Service):
    """Runs ``count`` more processes of ``argv`` while it runs, starting another when one
    ends (after :data:`RESTART_DELAY`, so that one failing at start does not spin);
    stops them with it."""

    log = Logger()

    def __init__(self, argv: List[str], count: int, reactor: Any) -> None:
        self.argv = argv
        self.count = count
        self.reactor = reactor
        self.processes: Dict[_Worker, Any] = {}
        self._restarts: List[Any] = []

    def startService(self) -> None:
        Service.startService(self)
        for _ in range(self.count):
            self._spawn()

    def _spawn(self) -> None:
        if not self.running:
            return
        worker = _Worker(self)
        self.processes[worker] = self.reactor.spawnProcess(
            worker, self.argv[0], self.argv, env=None, childFDs={0: "w", 1: 1, 2: 2})

    def ended(self, worker: _Worker) -> None:
        """A worker ended: another one, unless the workers are stopping."""
        self.processes.pop(worker, None)
        if self.running:
            self.log.warn("a relay worker ended; starting another in {delay} s",
                          delay=RESTART_DELAY)
            self._restarts = [call for call in self._restarts if call.active()]
            self._restarts.append(self.reactor.callLater(RESTART_DELAY, self._spawn))

    def stopService(self) -> None:
        Service.stopService(self)
        for call in self._restarts:
            if call.active():
                call.cancel()
        self._restarts = []
        for process in self.processes.values():
            if process.pid is not None:
                process.signalProcess("TERM")
        self.processes = {}


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
    """The service for the plugin's parsed options. ``argv`` is how to start this relay
    again (for ``--workers``; by default ``twistd -n msrp-relay`` with the command
    line's options)."""
    if reactor is None:
        from twisted.internet import reactor
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
        allowed_next_hops=list(config.get("next-hop") or []) or None)
    if not settings.min_expires <= settings.default_expires <= settings.max_expires:
        raise ValueError("--default-expires must lie between --min-expires and "
                         "--max-expires")
    interface = config.get("interface") or "127.0.0.1"
    relay = MSRPRelay(config["domain"], load_users(config["users"]),
                      host=config.get("host") or interface, settings=settings,
                      reactor=reactor)
    workers = int(config.get("workers") or 1)
    shared = workers > 1 or bool(config.get("worker"))
    identity = _identity(config)
    listeners = []
    if int(config.get("port") or 0) or not config.get("tls-port"):
        listeners.append(Listener(int(config.get("port") or 0), interface, None, shared))
    if config.get("tls-port"):
        listeners.append(Listener(int(config["tls-port"]), interface, identity, shared))
    if shared:  # a port of this process's own, which its Use-Paths name
        listeners.append(Listener(0, interface, identity, False, home=True))
    if config.get("ws-port"):
        listeners.append(Listener(int(config["ws-port"]), interface, websocket=True))
    if config.get("wss-port"):
        if identity is None:
            raise ValueError("--wss-port needs --tls-port's --certificate and --key")
        listeners.append(Listener(int(config["wss-port"]), interface, identity,
                                  websocket=True))
    json_log = open(config["json-log"], "a", encoding="utf-8") \
        if config.get("json-log") else None
    service = RelayService(relay, listeners, metrics=config.get("metrics"),
                           json_log=json_log, grace=GRACE_SECONDS,
                           web_demo=config.get("web-demo"))
    others = None
    if workers > 1 and not config.get("worker"):
        again = argv or ([sys.executable, "-c", "from twisted.scripts.twistd import run; "
                          "run()", "-n", "--pidfile=", "msrp-relay"]
                         + _repeat(config) + ["--worker"])
        others = WorkerProcesses(again, workers - 1, reactor)
    return RelayDaemon(service, others)


def _repeat(config: Mapping[str, Any]) -> List[str]:
    """The options that make another worker of this relay (no metrics port of its own,
    none of the parent's files to write)."""
    argv = []
    for name in ("port", "tls-port", "ws-port", "wss-port", "certificate", "key",
                 "interface", "host", "domain",
                 "users", "min-expires", "max-expires", "default-expires", "next-hop-ca"):
        if config.get(name):
            argv += ["--" + name, str(config[name])]
    for value in config.get("next-hop-chunk-size") or []:
        argv += ["--next-hop-chunk-size", value]
    for value in config.get("next-hop") or []:
        argv += ["--next-hop", value]
    if config.get("no-verify-next-hop"):
        argv.append("--no-verify-next-hop")
    return argv
