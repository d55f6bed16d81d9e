"""Runs Kamailio's msrp module as a real MSRP relay on 127.0.0.1 for the relay tests.

The relay is a child process with its files in a temporary directory. Without a
``kamailio`` binary the tests that need it are skipped, saying how to install it; CI
installs it (``.ci/run``), so there they run for real.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest

from msrplib.tls import TLSIdentity

CONFIG = Path(__file__).parent / "kamailio" / "msrp-relay.cfg"
#: The same relay plus a SIP registrar and proxy on UDP (``KamailioRelay(sip=True)``).
SIP_CONFIG = Path(__file__).parent / "kamailio" / "sip-relay.cfg"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
INSTALL_HINT = "apt-get install kamailio kamailio-tls-modules kamailio-websocket-modules"


def _state_and_parent(pid):
    """A process's state letter and parent pid from /proc, or None once it is gone."""
    try:
        with open("/proc/%s/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def children_of(parents):
    """The pids of the running (not zombie) children of the processes ``parents``: a
    relay's workers, Kamailio's processes."""
    children = []
    for entry in os.listdir("/proc"):
        found = _state_and_parent(entry) if entry.isdigit() else None
        if found is not None and found[0] != "Z" and found[1] in parents:
            children.append(int(entry))
    return children


def running(pids):
    """Those of ``pids`` still running (not zombies)."""
    return [pid for pid in pids if (_state_and_parent(pid) or ("Z",))[0] != "Z"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def modules_directory():
    listing = subprocess.run(["dpkg", "-L", "kamailio"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        if line.endswith("/modules/msrp.so"):
            return os.path.dirname(line)
    raise SkipTest("kamailio's msrp module is not installed (%s)" % INSTALL_HINT)


class KamailioRelay:
    """One Kamailio relay process; ``start()`` it, read ``port``/``tls_port``, ``stop()`` it.

    With ``sip=True`` the same process is also a SIP registrar and record-routing proxy on
    UDP 127.0.0.1:``sip_port`` (tests/kamailio/sip-relay.cfg). ``timer_interval`` sets how
    often, in seconds, the msrp module drops expired AUTH grants (Kamailio's default, 60 s,
    when not given).
    """

    def __init__(self, tls=False, min_expires=60, max_expires=3600, sip=False,
                 timer_interval=None, websocket=False):
        self.tls = tls
        self.websocket = websocket
        self.ws_port = 0
        self.sip = sip
        self.sip_port = 0
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.timer_interval = timer_interval
        self.process = None
        self.identity = None
        self.directory = None

    def start(self):
        binary = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
        if binary is None:
            raise SkipTest("kamailio is not installed (%s)" % INSTALL_HINT)
        modules = modules_directory()
        if self.websocket and not os.path.exists(os.path.join(modules, "websocket.so")):
            raise SkipTest("kamailio's websocket module is not installed (apt-get install "
                           "kamailio-websocket-modules; tests/install.sh does)")
        self.directory = Path(tempfile.mkdtemp(prefix="msrp-relay-"))
        self.port = free_port()
        self.tls_port = free_port() if self.tls else 0
        self.sip_port = free_udp_port() if self.sip else 0
        self.ws_port = free_port() if self.websocket else 0
        values = {"PORT": self.port, "TLS_PORT": self.tls_port, "SIP_PORT": self.sip_port,
                  "WS_PORT": self.ws_port,
                  "TLS_ENABLED": "yes" if self.tls else "no",
                  "TLS_CFG": self.directory / "tls.cfg",
                  "MIN_EXPIRES": self.min_expires, "MAX_EXPIRES": self.max_expires,
                  "TIMER_INTERVAL": 60 if self.timer_interval is None else self.timer_interval}
        template = SIP_CONFIG if self.sip else CONFIG
        text = template.read_text()
        for name, value in values.items():
            text = text.replace("@%s@" % name, str(value))
        config = self.directory / template.name
        config.write_text(text)
        command = [binary, "-DD", "-E", "-f", str(config), "-L", modules,
                   "-Y", str(self.directory), "-P", str(self.directory / "kamailio.pid"),
                   "-m", "64", "-M", "8"]
        if self.tls:
            self._write_tls_files()
            command += ["-A", "WITH_TLS"]
        if self.websocket:
            command += ["-A", "WITH_WEBSOCKET"]
        self.log = open(self.directory / "kamailio.log", "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_for(self.port)
        if self.tls:
            self._wait_for(self.tls_port)
        if self.websocket:
            self._wait_for(self.ws_port)
        if self.sip:
            self._check_alive_after(0.2)

    def _write_tls_files(self):
        self.identity = TLSIdentity.generate("relay", hosts=("127.0.0.1",))
        (self.directory / "relay.pem").write_bytes(self.identity.certificate_pem())
        (self.directory / "relay.key").write_bytes(self.identity.key_pem())
        (self.directory / "tls.cfg").write_text(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n"
            "require_certificate = no\nprivate_key = %s\ncertificate = %s\n"
            % (self.directory / "relay.key", self.directory / "relay.pem"))

    def _wait_for(self, port):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("kamailio exited: %s" % self.output())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("kamailio did not open port %d" % port)

    def _check_alive_after(self, seconds):
        """UDP cannot be probed by connecting: the SIP socket is opened by the same process
        that opened the MSRP port, so it is enough that the process is still running."""
        time.sleep(seconds)
        if self.process.poll() is not None:
            raise RuntimeError("kamailio exited: %s" % self.output())

    def output(self):
        return (self.directory / "kamailio.log").read_text(errors="replace")

    @property
    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.directory is not None:
            self.log.close()
            shutil.rmtree(self.directory, ignore_errors=True)


class Spawning(Clock):
    """A reactor that starts no process but keeps how each would have been started
    (``started``: argv and descriptors; ``workers``: their process protocols); a process
    ends as soon as it is signalled. ``stopped`` once it is stopped."""

    def __init__(self):
        super().__init__()
        self.started, self.workers, self.stopped = [], [], False

    def spawnProcess(self, worker, executable, argv, env=None, childFDs=None):
        self.started.append((argv, childFDs))
        self.workers.append(worker)
        return SimpleNamespace(pid=1000 + len(self.started), signalProcess=lambda signal:
                               self.callLater(0, worker.processEnded, None))

    def stop(self):
        self.stopped = True
