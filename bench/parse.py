"""Parser throughput: chunks/s for 200-byte SEND chunks, MB/s for 10 MiB bodies in 64 KiB pieces.

The baseline, run on the same bytes in the same process, is Twisted's own LineReceiver
splitting the stream into lines; each msrplib figure is printed with its ratio to it.
"""

import time

from twisted.protocols.basic import LineReceiver

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
    headers = Headers([("To-Path", "msrp://bob.example.com:2855/s1;tcp"),
                       ("From-Path", "msrp://alice.example.com:2855/s2;tcp"),
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


def baseline(pieces):
    lines = Lines()
    for piece in pieces:
        lines.dataReceived(piece)


def pieces_of(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def main():
    small = send_chunk(200 - 160)
    count = 50000
    stream = pieces_of(small * count, 65536)
    ours, base = best_of(parse, stream), best_of(baseline, stream)
    print("small chunks (%d bytes each): %.0f chunks/s; LineReceiver baseline %.0f chunks/s;"
          " ratio %.2f" % (len(small), count / ours, count / base, base / ours))

    big = send_chunk(10 * 1024 * 1024)
    stream = pieces_of(big, 65536)
    ours, base = best_of(parse, stream), best_of(baseline, stream)
    megabytes = len(big) / 1e6
    print("10 MiB body in 64 KiB pieces: %.0f MB/s; LineReceiver baseline %.0f MB/s; ratio %.2f"
          % (megabytes / ours, megabytes / base, base / ours))


if __name__ == "__main__":
    main()
