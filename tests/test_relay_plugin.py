"""``twistd -n msrp-relay`` as a process: endpoints of this
library through it, its Prometheus counters, its JSON log, a graceful stop, and workers
sharing one port."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.logger import eventsFromJSONLogFile
from twisted.trial import unittest

from msrplib.connect import AcceptorRelay, ConnectorRelay
from msrplib.protocol import URI
from msrplib.relayserver import MSRPRelay, daemon
from msrplib.relayserver.webdemo import MD5_JS
from msrplib.session import MSRPSession
from msrplib.testing import CollectingReceiver
from tests.relay import Spawning, children_of, free_port, running
from tests.test_relay_server import HA1, REALM, SESSION_SETTINGS, RelayHarness

ROOT = Path(__file__).resolve().parent.parent


class RelayProcess:
    def __init__(self, directory, *options):
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        users = self.directory / "users"
        users.write_text("".join("%s:%s\n" % item for item in HA1.items()))
        self.port, self.metrics_port = free_port(), free_port()
        self.json_log = self.directory / "relay.json"
        self.output = self.directory / "output"
        command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                   "-n", "--pidfile=", "msrp-relay", "--domain", REALM,
                   "--users", str(users), "--port", str(self.port),
                   "--metrics", "tcp:%d:interface=127.0.0.1" % self.metrics_port,
                   "--json-log", str(self.json_log)] + list(options)
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep
                   + os.environ.get("PYTHONPATH", ""))
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(command, cwd=str(ROOT), env=env, stdout=output,
                                            stderr=subprocess.STDOUT)
        self._wait_for(self.port)
        self._wait_for(self.metrics_port)

    @property
    def uri(self):
        return URI(host="127.0.0.1", port=self.port)

    def _wait_for(self, port):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("msrp-relay exited: %s" % self.output.read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("msrp-relay did not listen: %s" % self.output.read_text())

    def metrics(self):
        url = "http://127.0.0.1:%d/" % self.metrics_port
        return urllib.request.urlopen(url, timeout=5).read().decode("utf-8")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


class PluginTests(RelayHarness, unittest.TestCase):
    @inlineCallbacks
    def test_chat_through_the_plugin_its_counters_log_and_stop(self):
        relay = RelayProcess(self.mktemp())
        self.addCleanup(relay.stop)
        heard = CollectingReceiver()
        alice, bob = yield self.pair(self.settings("alice", relay.uri),
                                     self.settings("bob", relay.uri), bob_receiver=heard)
        yield alice.send_message(b"hello through twistd", "text/plain")
        self.assertEqual(heard.received[0].data, b"hello through twistd")
        text = yield deferToThread(relay.metrics)
        self.assertEqual(metric(text, "msrp_relay_bindings"), 2.0)
        self.assertGreaterEqual(metric(text, 'msrp_relay_chunks_total{method="SEND"}'), 2.0)
        self.assertEqual(metric(text, 'msrp_relay_auths_total{outcome="granted"}'), 2.0)
        closed = gatherResults([alice.closed.observe(), bob.closed.observe()])
        # twistd stops its services on SIGTERM, then ends by that signal (-15).
        self.assertIn((yield deferToThread(relay.stop)), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", relay.output.read_text())
        yield closed
        with open(relay.json_log, encoding="utf-8") as log:  # RFC 7464 JSON records
            events = list(eventsFromJSONLogFile(log))
        self.assertTrue(any("MSRP relay listening" in (event.get("log_format") or "")
                            for event in events))

    @inlineCallbacks
    def test_a_worker_that_dies_is_started_again(self):
        relay = RelayProcess(self.mktemp(), "--workers", "2")
        self.addCleanup(relay.stop)
        workers = yield deferToThread(self.workers_of, relay.process.pid, 2)
        homes = yield deferToThread(self.listening_on, relay, workers)
        os.kill(workers[0], signal.SIGKILL)
        again = yield deferToThread(self.workers_of, relay.process.pid, 2,
                                    lambda pids: workers[0] not in pids)
        self.assertNotIn(workers[0], again)
        # The new one listens where the one it replaces did: its home port is its for
        # good (the supervisor holds the socket), so peers reach its clients there.
        [new] = set(again) - set(workers)
        self.assertEqual((yield deferToThread(self.listening_on, relay, [new]))[new],
                         homes[workers[0]])
        # The supervisor waits for its workers' graceful stops, and leaves none behind.
        self.assertIn((yield deferToThread(relay.stop)), (0, -signal.SIGTERM))
        self.assertEqual(running(again), [])

    def listening_on(self, relay, pids):
        """What each of the worker processes ``pids`` listens on (the URIs of its
        "listening" record in the JSON log), within 15 s."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with open(relay.json_log, encoding="utf-8") as log:
                found = {event["pid"]: event["uris"] for event in eventsFromJSONLogFile(log)
                         if "MSRP relay listening" in (event.get("log_format") or "")}
            if all(pid in found for pid in pids):
                return {pid: found[pid] for pid in pids}
            time.sleep(0.1)
        raise AssertionError("workers %s did not say where they listen" % (pids,))

    def workers_of(self, parent, count, also=lambda pids: True):
        """The pids of ``parent``'s worker processes, once there are ``count`` (and
        ``also`` holds), within 15 s."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pids = children_of({parent})
            if len(pids) == count and also(pids):
                return pids
            time.sleep(0.1)
        raise AssertionError("no %d workers of %d" % (count, parent))

    @inlineCallbacks
    def test_workers_share_the_port_their_clients_reach_each_other_and_count_as_one(self):
        relay = RelayProcess(self.mktemp(), "--workers", "2")
        self.addCleanup(relay.stop)
        yield deferToThread(self.workers_of, relay.process.pid, 2)
        yield deferToThread(time.sleep, 1.0)  # both listen
        alices, bobs = [], []
        for _ in range(12):
            alice = self.endpoint(ConnectorRelay, self.settings("alice", relay.uri))
            bob = self.endpoint(AcceptorRelay, self.settings("bob", relay.uri))
            alices.append((alice, (yield alice.prepare())))
            bobs.append((bob, (yield bob.prepare())))
        homes = {path[0].port for _, path in alices + bobs}
        self.assertEqual(len(homes), 2)  # the kernel spread the clients over both
        self.assertNotIn(relay.port, homes)  # Use-Paths name each worker's own port
        alice, alice_path = alices[0]
        bob, bob_path = next(item for item in bobs if item[1][0].port != alice_path[0].port)
        links = yield gatherResults([alice.complete(bob_path), bob.complete(alice_path)])
        heard = CollectingReceiver()
        sessions = [MSRPSession(links[0], settings=SESSION_SETTINGS),
                    MSRPSession(links[1], settings=SESSION_SETTINGS, receiver=heard)]
        for session in sessions:
            self.addCleanup(session.abort)
        yield sessions[0].send_message(b"across workers", "text/plain", success_report="yes")
        self.assertEqual(heard.received[0].data, b"across workers")
        # The supervisor's exporter counts the workers' clients together (the workers
        # hand over their counts every second).
        deadline = time.monotonic() + 10
        while True:
            text = yield deferToThread(relay.metrics)
            forwarded = metric(text, 'msrp_relay_chunks_total{method="SEND"}') or 0
            if forwarded >= 2 or time.monotonic() > deadline:
                break
            yield deferToThread(time.sleep, 0.3)
        self.assertEqual(metric(text, "msrp_relay_bindings"), 24.0)
        self.assertEqual(metric(text, 'msrp_relay_auths_total{outcome="granted"}'), 24.0)
        self.assertGreaterEqual(forwarded, 2.0)  # across workers: one SEND, forwarded twice
        # Both workers write to the one JSON log, record by record.
        with open(relay.json_log, encoding="utf-8") as log:
            listening = {event.get("pid") for event in eventsFromJSONLogFile(log)
                         if "MSRP relay listening" in (event.get("log_format") or "")}
        self.assertEqual(len(listening), 2)

    @inlineCallbacks
    def test_workers_share_a_websocket_port_too(self):
        ws_port = free_port()
        relay = RelayProcess(self.mktemp(), "--workers", "2", "--ws-port", str(ws_port))
        self.addCleanup(relay.stop)
        relay._wait_for(ws_port)
        first = yield deferToThread(self.workers_of, relay.process.pid, 2)
        yield deferToThread(time.sleep, 1.5)  # a worker that cannot listen ends at once
        self.assertEqual(sorted((yield deferToThread(self.workers_of, relay.process.pid,
                                                     2))), sorted(first))
        yield self.chat_from_a_websocket(relay, ws_port, b"over a shared WebSocket port")

    @inlineCallbacks
    def test_a_websocket_port_and_the_web_demo(self):
        if not os.path.exists(MD5_JS):
            raise unittest.SkipTest("no CryptoJS for the web demo: apt-get install "
                                    "libjs-cryptojs (tests/install.sh does)")
        ws_port, demo_port = free_port(), free_port()
        relay = RelayProcess(self.mktemp(), "--ws-port", str(ws_port), "--web-demo",
                             "tcp:%d:interface=127.0.0.1" % demo_port)
        self.addCleanup(relay.stop)
        relay._wait_for(ws_port)
        relay._wait_for(demo_port)
        config = yield deferToThread(lambda: json.loads(urllib.request.urlopen(
            "http://127.0.0.1:%d/config.json" % demo_port, timeout=5).read()))
        self.assertEqual(config["websocket"], "ws://127.0.0.1:%d/" % ws_port)
        page = yield deferToThread(lambda: urllib.request.urlopen(
            "http://127.0.0.1:%d/" % demo_port, timeout=5).read())
        self.assertIn(b"msrp-demo.js", page)
        yield self.chat_from_a_websocket(relay, ws_port, b"from a browser's side")

    @inlineCallbacks
    def chat_from_a_websocket(self, relay, ws_port, text):
        """Alice on the relay's WebSocket port sends ``text`` to bob on its TCP port."""
        self.addCleanup(task.deferLater, reactor, 1.1, lambda: None)  # autobahn's timers
        heard = CollectingReceiver()
        alice_settings = self.settings("alice", URI(host="127.0.0.1", port=ws_port))
        alice_settings.transport = "ws"
        alice, bob = yield self.pair(alice_settings, self.settings("bob", relay.uri),
                                     bob_receiver=heard)
        yield alice.send_message(text, "text/plain", success_report="yes")
        self.assertEqual(heard.received[0].data, text)


class WorkerLifeTests(unittest.TestCase):
    """The workers' lives, found by a review of b7916e3: a dead worker's counts, a worker
    that cannot start, a supervisor killed."""

    @inlineCallbacks
    def raw_client(self, uri, user):
        from msrplib._bind import ConnectionSettings
        from msrplib._direct import connect_to
        from tests.test_relay_server_edges import Raw
        proto = yield connect_to(uri, None, reactor, ConnectionSettings())[0]
        self.addCleanup(lambda: proto.abort() or proto.lost.observe().addErrback(
            lambda _: None))
        client = Raw(proto)
        yield client.auth(uri, user)
        return client

    @inlineCallbacks
    def test_a_dead_workers_gauges_no_longer_count(self):
        relay = RelayProcess(self.mktemp(), "--workers", "2")
        self.addCleanup(relay.stop)
        workers = yield deferToThread(PluginTests.workers_of, None, relay.process.pid, 2)
        yield deferToThread(time.sleep, 1.0)  # both listen
        clients = []
        for n in range(8):
            clients.append((yield self.raw_client(relay.uri, ("alice", "bob")[n % 2])))
        os.kill(workers[0], signal.SIGKILL)
        yield deferToThread(PluginTests.workers_of, None, relay.process.pid, 2,
                            lambda pids: workers[0] not in pids)
        alive = [client for client in clients if not client.proto.lost.fired]
        self.assertLess(len(alive), 8)  # some were the dead worker's
        deadline = time.monotonic() + 10
        while True:
            text = yield deferToThread(relay.metrics)
            if metric(text, "msrp_relay_bindings") == len(alive) or \
                    time.monotonic() > deadline:
                break
            yield deferToThread(time.sleep, 0.3)
        self.assertEqual(metric(text, "msrp_relay_bindings"), float(len(alive)))

    @inlineCallbacks
    def test_workers_stop_when_their_supervisor_is_killed(self):
        relay = RelayProcess(self.mktemp(), "--workers", "2")
        self.addCleanup(relay.stop)
        workers = yield deferToThread(PluginTests.workers_of, None, relay.process.pid, 2)
        yield deferToThread(time.sleep, 1.0)
        relay.process.kill()
        relay.process.wait()
        deadline = time.monotonic() + 15
        while running(workers) and time.monotonic() < deadline:
            yield deferToThread(time.sleep, 0.2)
        self.assertEqual(running(workers), [])

    def test_the_metrics_directories_killed_supervisors_left_are_removed(self):
        from msrplib.relayserver.operations import METRICS_PREFIX, SharedMetrics
        parent = os.path.abspath(self.mktemp())
        os.makedirs(parent)
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        names = {"dead": "%s%d-abc" % (METRICS_PREFIX, ended.pid),
                 "alive": "%s%d-def" % (METRICS_PREFIX, os.getpid()),
                 "odd": METRICS_PREFIX + "notapid", "other": "other-%d" % ended.pid}
        for name in names.values():
            os.makedirs(os.path.join(parent, name, "inside"))
        shared = SharedMetrics(parent)
        self.addCleanup(shared.remove)
        left = set(os.listdir(parent))
        self.assertNotIn(names["dead"], left)
        self.assertLessEqual({names["alive"], names["odd"], names["other"]}, left)
        [own] = left - set(names.values())
        self.assertTrue(own.startswith("%s%d-" % (METRICS_PREFIX, os.getpid())))
        self.assertEqual(os.path.join(parent, own), shared.directory)

    def test_a_supervisor_that_gives_up_exits_with_a_failure_status(self):
        ended = subprocess.run(
            [sys.executable, "-c", "import sys; from msrplib.relayserver.daemon import "
             "exit_failed; sys.stdout.write('said'); exit_failed()"],
            cwd=str(ROOT), capture_output=True, timeout=30,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self.assertEqual(ended.returncode, daemon.GAVE_UP_STATUS)
        self.assertNotEqual(ended.returncode, 0)
        self.assertEqual(ended.stdout, b"said")  # written before it ended

    def test_workers_that_keep_ending_as_they_start_stop_the_supervisor(self):
        clock = Spawning()
        ended, at_exit = [], []
        self.patch(daemon.atexit, "register", at_exit.append)
        workers = daemon.WorkerProcesses(["relay"], 1, clock, on_ended=ended.append)
        workers.startService()
        clock.advance(daemon.EARLY_END + 1)
        clock.workers[-1].processEnded(None)  # after a good while: started again in 1 s
        self.assertEqual(ended, [1001])
        delays = []
        for _ in range(daemon.MAX_EARLY_ENDS):
            before = len(clock.workers)
            clock.advance(daemon.RESTART_DELAY)
            waited = daemon.RESTART_DELAY
            while len(clock.workers) == before and not clock.stopped and waited < 100:
                clock.advance(1)
                waited += 1
            if clock.stopped:
                break
            delays.append(waited)
            clock.workers[-1].processEnded(None)  # at once: an early end
        self.assertEqual(delays, [1, 2, 4, 8, 16][:len(delays)])
        self.assertTrue(clock.stopped)
        self.assertEqual(len(clock.workers), 1 + len(delays))
        # Once twistd is done, it exits with a status that says it failed.
        self.assertEqual(at_exit, [daemon.exit_failed])


class HomeSocketTests(RelayHarness, unittest.TestCase):
    """A worker's home socket, as its supervisor hands it down (--home-fd), and the
    relay's ports on IPv6, found by a review of afd4538."""

    @inlineCallbacks
    def auth_through(self, relay, uri):
        """A client AUTHs at ``uri`` of ``relay``: the Use-Path it gets."""
        client = self.endpoint(ConnectorRelay, self.settings("alice", uri))
        path = yield client.prepare()
        return path

    @inlineCallbacks
    def test_a_handed_down_socket_is_accepted_on_even_if_it_blocks(self):
        for interface in ("127.0.0.1", "::1"):
            [home] = daemon.home_sockets(interface, 1)
            self.addCleanup(home.close)
            home.setblocking(True)  # as systemd hands sockets down, say
            relay = MSRPRelay(REALM, HA1, host=interface)
            self.addCleanup(relay.stop)
            relay.listen(0, interface=interface)
            uri = relay.listen(0, interface=interface, home=True,
                               fileno=daemon._check_home(os.dup(home.fileno()), interface))
            self.assertEqual(uri.port, home.getsockname()[1])
            # Non-blocking now (its flag is shared): Twisted's accepts would block else.
            self.assertFalse(os.get_blocking(home.fileno()))
            path = yield self.auth_through(relay, uri)
            self.assertEqual((path[0].host, path[0].port), (interface, uri.port))

    @inlineCallbacks
    def test_ports_shared_by_workers_work_on_ipv6(self):
        relay = MSRPRelay(REALM, HA1, host="::1")
        self.addCleanup(relay.stop)
        uri = relay.listen(0, interface="::1", reuse_port=True)
        path = yield self.auth_through(relay, uri)
        self.assertEqual(path[0].host, "::1")

    def test_what_is_no_listening_socket_of_the_interface_is_refused(self):
        import socket
        with open(self.mktemp(), "w") as regular:
            self.assertRaises(ValueError, daemon._check_home, regular.fileno(), "127.0.0.1")
        cases = []
        idle = socket.socket()
        idle.bind(("127.0.0.1", 0))  # bound, not listening
        cases.append((idle, "127.0.0.1"))
        datagrams = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cases.append((datagrams, "127.0.0.1"))
        [v6] = daemon.home_sockets("::1", 1)
        cases.append((v6, "127.0.0.1"))  # another kind of address than --interface's
        for sock, interface in cases:
            self.addCleanup(sock.close)
            error = self.assertRaises(ValueError, daemon._check_home, sock.fileno(),
                                      interface)
            self.assertIn("is not a TCP socket listening", str(error))
        closed = os.dup(0)
        os.close(closed)
        self.assertRaises(ValueError, daemon._check_home, closed, "127.0.0.1")
