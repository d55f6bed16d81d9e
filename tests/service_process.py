"""A real ``twistd -n msrp`` process, started as doc/plugin.rst says, and a plain HTTP/1.1
client for its control API that sends exactly the bytes a test asks for (Host, Origin,
Authorization, bodies of any size), over loopback TCP or the UNIX socket."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

ROOT = Path(__file__).resolve().parent.parent
STARTED = re.compile(r"MSRP control API on (\S+?);.* the token is in (\S+)")


class Response:
    def __init__(self, raw):
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:300])


class _Exchange(Protocol):
    """Writes a request, then collects everything until the server closes."""

    def __init__(self, data):
        self.data = data
        self.received = []
        self.done = Deferred()

    def connectionMade(self):
        for piece in self.data:
            self.transport.write(piece)

    def dataReceived(self, data):
        self.received.append(data)

    def connectionLost(self, reason):
        self.done.callback(Response(b"".join(self.received)))


class TwistdMSRP:
    """``twistd -n msrp --control tcp:0:interface=127.0.0.1 ...`` in a directory of its own.

    ``start()`` waits for the line that says where the control API is and where its token
    is; ``request()`` talks HTTP to it; ``stop()`` ends it.
    """

    def __init__(self, directory, *options, control="tcp:0:interface=127.0.0.1",
                 preexec_fn=None, token_file=True):
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.inbox = self.directory / "inbox"
        self.log_path = self.directory / "twistd.log"
        self.token_path = self.directory / "control-token"
        arguments = ["--control", control, "--inbox", str(self.inbox), "--keepalive", "0"]
        if token_file:
            arguments += ["--control-token-file", str(self.token_path)]
        self.command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                        "-n", "--pidfile=", "msrp"] + arguments + list(options)
        self.preexec_fn = preexec_fn
        self.process = None

    def start(self, seconds=20):
        environment = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=str(self.directory), env=environment,
                                            preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            match = STARTED.search(self.log())
            if match is not None:
                self.address, printed_token_path = match.groups()
                self.printed_token_path = printed_token_path
                self.token = Path(printed_token_path).read_text().strip()
                if self.address.startswith("http://"):
                    host, port = self.address[len("http://"):].rstrip("/").rsplit(":", 1)
                    self.host, self.port = host, int(port)
                return self
            if self.process.poll() is not None:
                raise RuntimeError("twistd msrp exited: %s" % self.log())
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("twistd msrp did not start: %s" % self.log())

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def endpoint(self):
        if self.address.startswith("unix:"):
            return UNIXClientEndpoint(reactor, self.address[len("unix:"):])
        return TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)

    def raw(self, *pieces):
        """Send ``pieces`` as they are; fire with the :class:`Response`."""
        exchange = _Exchange(pieces)
        connectProtocol(self.endpoint(), exchange)
        return exchange.done

    def request(self, method, path, body=None, headers=None, token=True, json_body=True):
        """One request. ``body`` is sent as JSON (a dict or list) or as it is (bytes);
        ``headers`` replace the defaults (a value of ``None`` leaves that header out)."""
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        host = "127.0.0.1:%d" % self.port if hasattr(self, "port") else "localhost"
        fields = {"Host": host, "Connection": "close"}
        if token:
            fields["Authorization"] = "Bearer %s" % self.token
        if body is not None:
            fields["Content-Length"] = str(len(body))
            if json_body:
                fields["Content-Type"] = "application/json"
        fields.update(headers or {})
        target = path.encode("utf-8") if isinstance(path, str) else path
        head = b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), target)
        for name, value in fields.items():
            if value is not None:
                head += b"%s: %s\r\n" % (name.encode("ascii"),
                                         value if isinstance(value, bytes) else value.encode())
        return self.raw(head + b"\r\n" + (body or b""))

    @inlineCallbacks
    def ok(self, method, path, body=None):
        """A request that must answer 200; its JSON."""
        response = yield self.request(method, path, body)
        assert response.status == 200, (method, path, response)
        return response.json

    @inlineCallbacks
    def connected_pair(self):
        """Two sessions of this service bound to each other: (active id, passive id)."""
        from twisted.internet.defer import gatherResults
        offer = yield self.ok("POST", "/sessions", {"setup": "active"})
        answer = yield self.ok("POST", "/sessions", {"setup": "passive"})
        yield gatherResults([
            self.ok("POST", "/sessions/%s/complete" % offer["id"],
                    {"path": answer["path"], "fingerprint": answer["fingerprint"]}),
            self.ok("POST", "/sessions/%s/complete" % answer["id"],
                    {"path": offer["path"], "fingerprint": offer["fingerprint"]})])
        return offer["id"], answer["id"]


def started(testcase, *options, **keywords):
    """A started :class:`TwistdMSRP` that is stopped when ``testcase`` ends."""
    service = TwistdMSRP(testcase.mktemp(), *options, **keywords)
    testcase.addCleanup(service.stop)
    return service.start()
