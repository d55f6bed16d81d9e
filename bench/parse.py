"""Parser throughput: chunks/s for 200-byte SEND chunks, MB/s for 10 MiB bodies in 64 KiB pieces.

Baselines, run on the same bytes in the same process: for small chunks, Twisted's own
LineReceiver splitting the stream into lines; for the big body, a plain Protocol that only
looks for the end-line in each piece (bytes.find). Each figure is printed with its ratio.
"""

import time

from twisted.internet.protocol import Protocol
from twisted.protocols.basic import LineReceiver

from _common import report
from msrplib.protocol import ChunkParser, Headers, MSRPData

REPEAT = 3


def best_of(function, *args):
    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - started)
    return best


def send_chunk(size):
    headers = Headers([("To-Path", "msrp://bob.test:2855/s1;tcp"),
                       ("From-Path", "msrp://alice.test:2855/s2;tcp"),
                       ("Message-ID", "m1234567"), ("Byte-Range", "1-%d/%d" % (size, size)),
                       ("Content-Type", "text/plain")])
    chunk = MSRPData("tx1234567", method="SEND", headers=headers, data=b"x" * size)
    return chunk.encode()


def parse(pieces):
    parser = ChunkParser()
    for piece in pieces:
        for _ in parser.feed(piece):
            pass


class Lines(LineReceiver):
    MAX_LENGTH = 1 << 30

    def lineReceived(self, line):
        pass


def line_baseline(pieces):
    """Twisted's LineReceiver splitting the same stream into lines."""
    lines = Lines()
    for piece in pieces:
        lines.dataReceived(piece)


class EndLineFinder(Protocol):
    """The least a body parser must do: look for the end-line in every piece received."""

    end_line = b"\r\n-------tx1234567"

    def dataReceived(self, data):
        self.found = data.find(self.end_line)


def scan_baseline(pieces):
    finder = EndLineFinder()
    for piece in pieces:
        finder.dataReceived(piece)


def pieces_of(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def main():
    small = send_chunk(200 - len(send_chunk(0)))  # 200 bytes on the wire, body included
    count = 50000
    stream = pieces_of(small * count, 65536)
    ours, base = best_of(parse, stream), best_of(line_baseline, stream)
    report("parse %d-byte SEND chunks" % len(small), count / ours, count / base, "chunk/s")

    big = send_chunk(10 * 1024 * 1024)
    stream = pieces_of(big, 65536)
    ours, base = best_of(parse, stream), best_of(scan_baseline, stream)
    megabytes = len(big) / 1e6
    report("parse a 10 MiB body in 64 KiB pieces", megabytes / ours, megabytes / base, "MB/s")


if __name__ == "__main__":
    main()
