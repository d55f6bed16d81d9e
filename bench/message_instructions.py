"""CPU instructions per pipelined 100-byte message over real loopback TCP, counted by valgrind.

``instructions.py`` counts both ends in memory, on a ``Clock``; this counts
``messages.py``'s own run with 32 outstanding: both sessions in one process on the real
reactor and real sockets, so the reactor's work and that of sending on a socket are in the
count (the kernel's is not). The same run's echo, counted the same way, is the baseline.
Each runs twice under callgrind, for two counts of messages; the difference per message is
free of start-up, and repeats to within a few hundred instructions.

    python bench/message_instructions.py     # needs valgrind; about a minute
"""

import os
import subprocess
import sys
import tempfile

from twisted.internet import defer, task

import messages
from _common import bound_pair, report
from instructions import callgrind_counts

#: (shorter, longer) run, in messages.
COUNTS = (1600, 6400)


@defer.inlineCallbacks
def run(reactor, kind):
    """``kind`` ("msrplib" or "echo") as ``messages.py`` runs it with 32 outstanding."""
    from msrplib.session import MSRPSession, SessionSettings

    alice_link, bob_link = yield bound_pair()
    if kind == "echo":
        frame = len(alice_link.make_chunk(data=messages.BODY).encode())
        yield messages.echo_baseline(frame, messages.WINDOW)
        return
    settings = SessionSettings(keepalive_interval=0, max_outstanding_chunks=64)
    alice = MSRPSession(alice_link, settings=settings)
    MSRPSession(bob_link, settings=settings)
    yield messages.run_window(lambda: alice.send_message(messages.BODY, "text/plain"),
                              messages.WINDOW)
    yield alice.shutdown()


def instructions(kind, count):
    """What valgrind counts for this script running ``kind`` with ``count`` messages."""
    with tempfile.NamedTemporaryFile() as output:
        subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + output.name,
                        sys.executable, os.path.abspath(__file__), kind, str(count)],
                       env=dict(os.environ, PYTHONHASHSEED="0"), capture_output=True,
                       check=True)
        return callgrind_counts(output.name)[0]


def per_message(kind):
    short, long = (instructions(kind, count) for count in COUNTS)
    return (long - short) / (COUNTS[1] - COUNTS[0])


def main():
    if len(sys.argv) == 3:
        messages.COUNT = int(sys.argv[2])
        task.react(run, [sys.argv[1]])
    print("CPU instructions per message over loopback TCP, %d outstanding, both ends in "
          "one process; ratio = echo / msrplib" % messages.WINDOW)
    report("100-byte messages", per_message("msrplib"), per_message("echo"), "instr",
           lower_is_better=True)


if __name__ == "__main__":
    main()
