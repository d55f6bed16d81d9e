"""The plugin-based demo: two ``twistd msrp`` endpoints on one machine, driven through their
control APIs the way a SIP stack would drive them, exchange messages and a file over TLS.

Run it with ``python -m msrplib.demo`` (msrplib installed, so that twistd finds the
plugin). It plays the SIP part itself: it takes each side's ``a=path`` and
``a=fingerprint`` and hands them to the other side. Like any client of the control API,
it reads each service's token from the file the service made and sends it with every
request; the file it sends lies in Alice's outbox.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ["main", "Endpoint"]


def say(who: str, text: str) -> None:
    print("%-5s %s" % (who, text), flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Endpoint:
    """One ``twistd -n msrp`` process and a client for its control API."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.inbox = directory / ("%s-inbox" % name)
        self.outbox = directory / ("%s-outbox" % name)
        self.outbox.mkdir()
        self.log = directory / ("%s.log" % name)
        self.token_file = directory / ("%s-control-token" % name)
        self.token = ""
        self.port = free_port()
        command = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                   "-n", "--pidfile=", "--logfile=%s" % self.log, "msrp",
                   "--control", "tcp:%d:interface=127.0.0.1" % self.port,
                   "--control-token-file", str(self.token_file),
                   "--inbox", str(self.inbox), "--outbox", str(self.outbox),
                   "--tls", "--keepalive", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("%s's twistd exited:\n%s" % (self.name, self.log_text()))
            try:
                self.token = self.token_file.read_text().strip()
                self.call("GET", "/")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise RuntimeError("%s's control API did not come up" % self.name)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        """One control API call; raises ``RuntimeError`` with the API's error."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": "Bearer %s" % self.token}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                         data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RuntimeError("%s %s: %s" % (method, path, error.read().decode())) from None

    def wait_for(self, session: str, kind: str, seconds: float = 60) -> Dict[str, Any]:
        """The first event of ``kind`` in ``session``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for event in self.call("GET", "/sessions/%s/events" % session):
                if event["type"] == kind:
                    found: Dict[str, Any] = event
                    return found
            time.sleep(0.05)
        raise RuntimeError("%s saw no %s event" % (self.name, kind))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run(size: int, directory: Path) -> None:
    """The whole demo; raises on any failure."""
    endpoints: List[Endpoint] = []
    try:
        alice = Endpoint("alice", directory)
        endpoints.append(alice)
        bob = Endpoint("bob", directory)
        endpoints.append(bob)
        say("", "two twistd msrp services are up, control APIs on ports %d and %d"
            % (alice.port, bob.port))
        offer = alice.call("POST", "/sessions", {"setup": "active"})
        answer = bob.call("POST", "/sessions", {"setup": "passive"})
        say("alice", "offers a=path:%s" % offer["path"])
        say("bob", "answers a=path:%s" % answer["path"])
        with ThreadPoolExecutor(2) as pool:
            connecting = [
                pool.submit(alice.call, "POST", "/sessions/%s/complete" % offer["id"],
                            {"path": answer["path"], "fingerprint": answer["fingerprint"]}),
                pool.submit(bob.call, "POST", "/sessions/%s/complete" % answer["id"],
                            {"path": offer["path"], "fingerprint": offer["fingerprint"]})]
            states = {future.result()["state"] for future in connecting}
        if states != {"connected"}:
            raise RuntimeError("the sessions did not connect: %s" % states)
        say("", "both sessions connected over TLS, fingerprints checked")
        alice.call("POST", "/sessions/%s/messages" % offer["id"],
                   {"text": "Hey Bob, are you there? A file is coming."})
        say("bob", "received: %s" % bob.wait_for(answer["id"], "message")["text"])
        bob.call("POST", "/sessions/%s/messages" % answer["id"], {"text": "Yes, send it!"})
        say("alice", "received: %s" % alice.wait_for(offer["id"], "message")["text"])
        source = alice.outbox / "holiday.bin"
        payload = os.urandom(size)
        source.write_bytes(payload)
        delivered = alice.call("POST", "/sessions/%s/files" % offer["id"],
                               {"file": str(source)})
        say("alice", "file delivered, success report received (%s)" % delivered["message_id"])
        events = bob.call("GET", "/sessions/%s/events" % answer["id"])
        [arrived] = [e for e in events if e["type"] == "message" and
                     e["message_id"] == delivered["message_id"]]
        digest = hashlib.sha256(Path(arrived["file"]).read_bytes()).hexdigest()
        same = digest == hashlib.sha256(payload).hexdigest()
        say("bob", "inbox has %s (%d bytes), sha-256 %s" % (
            Path(arrived["file"]).name, arrived["size"], "matches" if same else "DIFFERS"))
        alice.call("DELETE", "/sessions/%s" % offer["id"])
        bob.wait_for(answer["id"], "closed")
        say("bob", "the session closed")
        if not same:
            raise RuntimeError("the file arrived damaged")
        say("", "done")
    except Exception:
        for endpoint in endpoints:
            print("--- %s's log ---\n%s" % (endpoint.name, endpoint.log_text()[-3000:]))
        raise
    finally:
        for endpoint in endpoints:
            endpoint.stop()


def main(argv: Optional[List[str]] = None) -> None:
    """``python -m msrplib.demo [--size BYTES]``."""
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument("--size", type=int, default=16 * 1024 * 1024,
                           help="size of the file to send (default 16 MiB)")
    options = arguments.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="msrp-demo-") as directory:
        run(options.size, Path(directory))


if __name__ == "__main__":
    main()
