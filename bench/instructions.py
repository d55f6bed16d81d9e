"""CPU instructions per message and per 64 KiB chunk, counted by valgrind: the same every run.

Rates on these shared machines move by a third from run to run, so a change of a few per
cent cannot be seen in them. An instruction count can: with the hash seed fixed it repeats
to within a few instructions in a hundred thousand. It counts the work of both ends in one
process, in memory (no sockets, no reactor, no kernel), so it tells what a change to
msrplib's Python costs, not how fast a real transfer is: ``messages.py`` and ``files.py``
say that.

Each workload runs under callgrind twice, at two lengths; the difference, divided by the
extra messages or chunks, is the figure per unit, free of start-up. The baselines, in the
same run and measured the same way: a plain Twisted request/response in memory (the frames
of ``messages.py``'s echo, a Deferred per request) for messages, and a plain Twisted
protocol taking the same bytes in the same pieces for chunks. The ratio is baseline over
msrplib: 1.0 would be as cheap as the baseline, and like every other ratio here, higher
is better. A file's chunks are counted three ways: read 64 KiB at a time (a socket's
reads), 16 KiB at a time (the size of the records TLS hands over), and through Twisted's
TLS layer on both ends, where the baseline pays for the same encryption.

    python bench/instructions.py     # needs valgrind (Debian: apt-get install valgrind)
"""

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from _common import report
from files import BLOCK, Counter, Pattern
from messages import Answerer, Asker

BODY = b"m" * 100
WINDOW = 32
PIECE = 64 * 1024
#: Bytes per read handed to a receiving end (``--read-size``): a socket's 64 KiB, or the
#: 16 KiB records that TLS hands over.
read_size = PIECE
#: Whether the two ends talk TLS (``--tls``): Twisted's TLS layer over the same pipe.
tls = False
#: The clock of the sessions and of the TLS layer, whose small writes wait for a turn of
#: it (:func:`deliver` turns it).
CLOCK = Clock()
#: (shorter, longer) run of each workload, in rounds of WINDOW messages or in chunks.
LENGTHS = {"messages": (20, 120), "varied": (20, 120), "echo": (20, 120), "chunks": (16, 80),
           "pump": (16, 80)}


class MemoryTransport(StringTransport):
    """A StringTransport that keeps what is written as it is written, uncopied.

    StringTransport's BytesIO copies its growing buffer again and again; that would count
    against whichever side writes more before its peer reads. What :func:`deliver` does
    instead is the same for msrplib and the baselines: two copies of every byte, as the
    kernel makes (into the socket, then out of it).
    """

    def __init__(self):
        super().__init__()
        self.written = []

    def write(self, data):
        self.written.append(data)

    def writeSequence(self, parts):
        self.written.extend(parts)


class _Existing(Factory):
    """Hands the TLS layer a protocol made already (its ``factory`` left as it is)."""

    def __init__(self, protocol):
        self.existing = protocol

    def buildProtocol(self, addr):
        return self.existing


def connect(client, server, msrp=False):
    """``client`` and ``server`` connected in memory, over TLS when ``tls``: the two ends
    that :func:`deliver` moves bytes between (the protocols, or their TLS layers). The TLS
    layer is msrplib's for ``msrp`` ends, else Twisted's own (what ``connectSSL`` uses)."""
    if not tls:
        client.makeConnection(MemoryTransport())
        server.makeConnection(MemoryTransport())
        return client, server
    from twisted.internet.ssl import CertificateOptions
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from msrplib._speedups import TLSFactory
    from msrplib.tls import TLSIdentity

    layer = TLSFactory if msrp else TLSMemoryBIOFactory
    ends = []
    for protocol, options, is_client in [(client, CertificateOptions(), True),
                                         (server, TLSIdentity.generate().options(), False)]:
        application = _Existing(protocol)
        end = layer(options, is_client, application, CLOCK).buildProtocol(None)
        end.makeConnection(MemoryTransport())
        ends.append(end)
    for _ in range(4):  # the handshake
        deliver(ends[0], ends[1])
        deliver(ends[1], ends[0])
    return ends


def memory_sessions(receiver=None):
    """Alice's and Bob's MSRPSessions connected in memory, and the two ends of the pipe."""
    from msrplib.protocol import URI
    from msrplib.session import MSRPSession, SessionSettings
    from msrplib.transport import MSRPProtocol, MSRPTransport

    alice_uri = URI.parse("msrp://127.0.0.1:40001/alicesessionid12;tcp")
    bob_uri = URI.parse("msrp://127.0.0.1:40002/bobsessionid1234;tcp")
    alice_protocol, bob_protocol = MSRPProtocol(clock=CLOCK), MSRPProtocol(clock=CLOCK)
    alice_end, bob_end = connect(alice_protocol, bob_protocol, msrp=True)
    settings = SessionSettings(keepalive_interval=0, max_outstanding_chunks=64,
                               max_message_size=None)
    alice = MSRPSession(MSRPTransport(alice_protocol, [alice_uri], [bob_uri]),
                        settings=settings, reactor=CLOCK)
    MSRPSession(MSRPTransport(bob_protocol, [bob_uri], [alice_uri]),
                settings=settings, reactor=CLOCK, receiver=receiver)
    return alice, alice_end, bob_end


def deliver(sender, receiver):
    """Hand what the ``sender`` end wrote to the ``receiver`` end, in reads of
    ``read_size``; a TLS layer's small writes are let out first."""
    CLOCK.advance(0)
    written, sender.transport.written = sender.transport.written, []
    stream = bytearray().join(written)  # a copy even of a single part, made to size
    with memoryview(stream) as view:
        for start in range(0, len(stream), read_size):
            receiver.dataReceived(view[start:start + read_size].tobytes())


def run_messages(rounds, bodies=(BODY,)):
    """WINDOW messages sent at once, then their 200s, ``rounds`` times; their bodies are
    ``bodies`` in turn."""
    alice, alice_end, bob_end = memory_sessions()
    answered = []
    next_body = itertools.cycle(bodies).__next__
    for _ in range(rounds):
        for _ in range(WINDOW):
            alice.send_message(next_body(), "text/plain").addCallback(answered.append)
        deliver(alice_end, bob_end)
        deliver(bob_end, alice_end)
    assert len(answered) == rounds * WINDOW, len(answered)


def run_varied_messages(rounds):
    """:func:`run_messages` with bodies of 50 to 150 bytes, as a chat's are: each size is
    a new Byte-Range, so a new request header block, for the receiving parser."""
    run_messages(rounds, [b"m" * size for size in range(50, 151)])


def run_chunks(count):
    """A file of ``count`` 64 KiB chunks, every chunk answered with a 200; read and taken
    as ``files.py`` does (one repeated block, a consumer that counts), so that neither
    end copies more than msrplib does."""
    from msrplib.session import MessageReceiver

    class Consume(MessageReceiver):
        def message_started(self, message):
            self.counter = Counter()
            return self.counter

    receiver = Consume()
    alice, alice_end, bob_end = memory_sessions(receiver)
    sent = alice.send_message(Pattern(count * PIECE), "application/octet-stream")
    answered = []
    sent.addCallback(answered.append)
    while not answered:
        deliver(alice_end, bob_end)
        deliver(bob_end, alice_end)
    assert receiver.counter.count == count * PIECE


def run_echo(rounds):
    """``messages.py``'s plain request/response, with the frame size of an msrplib message."""
    alice, _, _ = memory_sessions()  # start-up, the same at both lengths
    frame_size = len(alice.transport.make_chunk(data=BODY).encode())
    Answerer.size = frame_size  # as messages.py's echo_baseline sets it
    asker, answerer = Asker(), Answerer()
    asker.factory = Factory()
    asker.factory.connected = Deferred()
    asker_end, answerer_end = connect(asker, answerer)
    asker.received, asker.waiters, asker.frame = 0, [], b"x" * frame_size
    answered = []
    for _ in range(rounds):
        for _ in range(WINDOW):
            asker.ask().addCallback(answered.append)
        deliver(asker_end, answerer_end)
        deliver(answerer_end, asker_end)
    assert len(answered) == rounds * WINDOW, len(answered)


class Counting(Protocol):
    def connectionMade(self):
        self.count = 0

    def dataReceived(self, data):
        self.count += len(data)


def run_pump(count):
    """The same bytes written in PIECE blocks and taken by a protocol that counts them."""
    writer, counter = Protocol(), Counting()
    writer_end, counter_end = connect(writer, counter)
    for _ in range(count):
        writer.transport.write(BLOCK)
        deliver(writer_end, counter_end)
    assert counter.count == count * PIECE


WORKLOADS = {"messages": run_messages, "varied": run_varied_messages, "chunks": run_chunks,
             "echo": run_echo, "pump": run_pump}


def instructions(workload, length, reads=PIECE, over_tls=False):
    """``(instructions, of which memory copies)`` that valgrind counts for this script
    running ``workload`` at ``length``, its receivers reading ``reads`` bytes at a time,
    over TLS if ``over_tls``."""
    with tempfile.NamedTemporaryFile() as output:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + output.name,
                   sys.executable, os.path.abspath(__file__), "--workload", workload,
                   "--length", str(length), "--read-size", str(reads)]
        if over_tls:
            command.append("--tls")
        subprocess.run(command, env=dict(os.environ, PYTHONHASHSEED="0"),
                       capture_output=True, check=True)
        return callgrind_counts(output.name)


def callgrind_counts(output):
    """``(instructions, of which memory copies)`` in callgrind's output file ``output``."""
    summary = subprocess.run(["callgrind_annotate", "--threshold=100", output],
                             capture_output=True, text=True, check=True).stdout
    total = copies = 0
    for line in summary.splitlines():
        found = re.match(r"\s*([0-9,]+) .*?(PROGRAM TOTALS|\S*mem(?:p?cpy|move)\S*)", line)
        if found is None:
            continue
        count = int(found.group(1).replace(",", ""))
        if found.group(2) == "PROGRAM TOTALS":
            total = count
        else:
            copies += count
    if not total:
        raise RuntimeError("callgrind_annotate printed no totals:\n%s" % summary[-2000:])
    return total, copies


def per_unit(workload, reads=PIECE, over_tls=False):
    """Instructions per message (or per 64 KiB chunk) of ``workload`` other than memory
    copies, and the instructions of memory copies."""
    short, long = LENGTHS[workload]
    units = (long - short) * (WINDOW if workload in ("messages", "varied", "echo") else 1)
    (total_short, copies_short), (total_long, copies_long) = (
        instructions(workload, short, reads, over_tls),
        instructions(workload, long, reads, over_tls))
    copies = (copies_long - copies_short) / units
    return (total_long - total_short) / units - copies, copies


def main():
    global read_size, tls
    arguments = argparse.ArgumentParser()
    arguments.add_argument("--workload", choices=sorted(WORKLOADS))
    arguments.add_argument("--length", type=int)
    arguments.add_argument("--read-size", type=int, default=PIECE)
    arguments.add_argument("--tls", action="store_true")
    options = arguments.parse_args()
    if options.workload is not None:
        read_size, tls = options.read_size, options.tls
        WORKLOADS[options.workload](options.length)
        return
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py counts with valgrind, which is not installed "
                 "(Debian: apt-get install valgrind)")
    print("CPU instructions, both ends in memory, memory copies apart; "
          "ratio = baseline / msrplib")
    for ours, baseline, reads, over_tls, name in [
            ("messages", "echo", PIECE, False,
             "per 100-byte message, %d outstanding" % WINDOW),
            ("varied", "echo", PIECE, False, "the same, 50 to 150 bytes each"),
            ("chunks", "pump", PIECE, False, "per 64 KiB chunk of a file"),
            ("chunks", "pump", 16 * 1024, False, "the same, read 16 KiB at a time"),
            ("chunks", "pump", PIECE, True, "per 64 KiB chunk of a file over TLS")]:
        (work, copies), (base_work, base_copies) = (per_unit(ours, reads, over_tls),
                                                    per_unit(baseline, reads, over_tls))
        report(name, work, base_work, "instr", lower_is_better=True)
        # valgrind counts a large copy's "rep movsb" once per byte, so this is about how
        # many bytes were copied; the baseline's two copies per byte are deliver()'s.
        print("    memory copies: %.0f instructions (baseline %.0f)" % (copies, base_copies))


if __name__ == "__main__":
    main()
