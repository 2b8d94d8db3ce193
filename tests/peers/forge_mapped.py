"""One UDP datagram in an IPv6 packet whose source is IPv4-mapped (::ffff:a.b.c.d), written
as a whole Ethernet frame on DEV (AF_PACKET): what another host on the link can send.

usage: forge_mapped.py DEV DEST_MAC SRC6 SRC_PORT DST6 DST_PORT PAYLOAD
"""
import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def main():
    dev, mac, src, sport, dst, dport, payload = sys.argv[1:8]
    src6 = socket.inet_pton(socket.AF_INET6, src)
    dst6 = socket.inet_pton(socket.AF_INET6, dst)
    data = payload.encode()
    length = 8 + len(data)
    pseudo = src6 + dst6 + struct.pack("!I3xB", length, 17)
    udp = struct.pack("!HHHH", int(sport), int(dport), length, 0) + data
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip6 = struct.pack("!IHBB", 6 << 28, length, 17, 64) + src6 + dst6
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((dev, 0))
    own = sock.getsockname()[4]
    sock.send(bytes.fromhex(mac.replace(":", "")) + own + b"\x86\xdd" + ip6 + udp)


main()
