"""CPU instructions per 64 KiB chunk of a real file transfer: each process counted apart.

``instructions.py`` counts both ends in one process, in memory. This counts ``files.py``'s
own sender and receiver, two processes on a real loopback connection, each under valgrind:
a 20 MiB file less a 4 MiB one (start-up cancels out), per 64 KiB, for msrplib in 64 KiB
chunks and for the plain pump, over TLS or TCP. It sees what only real sockets bring: how
reads split, the answers' records and wake-ups. It does not count system calls or waiting,
and reads split a little differently from run to run, which moves a count by about 30,000;
the rates of ``files.py`` say how fast it really goes.

    python bench/socket_instructions.py [--tcp]     # needs valgrind; about 3 minutes
"""

import argparse
import os
import subprocess
import sys
import tempfile

from _common import report
from instructions import callgrind_counts

FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files.py")
#: (shorter, longer) file, in MiB.
SIZES = (4, 20)
CHUNK = 64 * 1024


def counted(command, output):
    """``command`` under callgrind, writing its counts to ``output``."""
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + output, sys.executable,
         FILES] + command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, PYTHONHASHSEED="0"))


def transfer(kind, mib, tls):
    """(sender, receiver) instructions for one transfer of ``mib`` MiB."""
    size = str(mib * 2**20)
    secure = ["--tls"] if tls else []
    with tempfile.TemporaryDirectory() as folder:
        received, sent = os.path.join(folder, "receiver"), os.path.join(folder, "sender")
        receiver = counted(["--role", "receive", "--kind", kind, "--size", size] + secure,
                           received)
        ready = receiver.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError("the receiver said %r" % ready)
        sender = counted(["--role", "send", "--kind", kind, "--size", size, "--target",
                          ready[1], "--chunk-size", str(CHUNK)] + secure, sent)
        sender.communicate()
        receiver.communicate()
        if sender.returncode or receiver.returncode:
            raise RuntimeError("%s transfer failed" % kind)
        return callgrind_counts(sent)[0], callgrind_counts(received)[0]


def per_chunk(kind, tls):
    """(sender, receiver) instructions per 64 KiB."""
    short, long = (transfer(kind, mib, tls) for mib in SIZES)
    chunks = (SIZES[1] - SIZES[0]) * 2**20 / CHUNK
    return tuple((long[side] - short[side]) / chunks for side in range(2))


def main():
    arguments = argparse.ArgumentParser()
    arguments.add_argument("--tcp", action="store_true", help="TCP instead of TLS")
    tls = not arguments.parse_args().tcp
    ours, pump = per_chunk("msrplib", tls), per_chunk("pump", tls)
    name = "TLS" if tls else "TCP"
    print("CPU instructions per 64 KiB over loopback %s, each process apart; "
          "ratio = pump / msrplib" % name)
    report("sender, 64 KiB chunks", ours[0], pump[0], "instr", lower_is_better=True)
    report("receiver, 64 KiB chunks", ours[1], pump[1], "instr", lower_is_better=True)
    report("the busier side of each", max(ours), max(pump), "instr", lower_is_better=True)


if __name__ == "__main__":
    main()
