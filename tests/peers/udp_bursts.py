#!/usr/bin/env python3
"""Bursts of UDP datagrams of mixed sizes, each burst sent in one sendmsg(2) with
UDP_SEGMENT (the kernel cuts it: every datagram the segment size, the last possibly
shorter), to an upper-casing echo server; every reply must come back as its own datagram,
upper-cased, none merged or cut. Prints "ok N" (datagrams answered) or why not; exit 1.

    udp_bursts.py HOST PORT [PAUSE]

PAUSE: seconds to wait after the first burst, so the others queue at the server while it
answers the first.
"""
import socket
import struct
import sys
import time

SOL_UDP = 17
UDP_SEGMENT = 103

# (segment size, datagrams, bytes short of the segment in the last one)
BURSTS = [(1400, 40, 0), (1400, 17, 399), (9, 30, 0), (64, 50, 55), (512, 3, 1),
          (8000, 7, 4000), (1472, 44, 1000), (100, 2, 90), (3000, 20, 2999)]


def datagram(burst, index, size):
    """A datagram that says which it is, then lower-case letters up to its size."""
    head = b"%04d%04d" % (burst, index)
    body = bytes(97 + (i % 26) for i in range(max(0, size - len(head))))
    return (head + body)[:size]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.connect((host, port))
    expected = {}
    for b, (segment, count, short) in enumerate(BURSTS):
        sizes = [segment] * count
        sizes[-1] -= short
        grams = [datagram(b, i, n) for i, n in enumerate(sizes)]
        for g in grams:
            expected[g[:8]] = g.upper()
        control = [(SOL_UDP, UDP_SEGMENT, struct.pack("H", segment))]
        sock.sendmsg([b"".join(grams)], control)
        if b == 0:
            time.sleep(pause)
    sock.settimeout(5)
    got = 0
    deadline = time.monotonic() + 20
    while expected and time.monotonic() < deadline:
        try:
            reply = sock.recv(65536)
        except socket.timeout:
            break
        want = expected.pop(reply[:8], None)
        if want is None or reply != want:
            print("wrong reply: %d bytes starting %r" % (len(reply), reply[:16]))
            return 1
        got += 1
    if expected:
        print("%d replies missing, e.g. %r" % (len(expected), sorted(expected)[:3]))
        return 1
    print("ok %d" % got)
    return 0


if __name__ == "__main__":
    sys.exit(main())
