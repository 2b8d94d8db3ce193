"""A TLS client that controls its record bytes (ssl.SSLObject over memory BIOs), for
tests/hostile_tls.rs.

  tls_trickle.py trickle HOST PORT EVERY BOUND TEXT
      The handshake, then TEXT as one TLS record sent a byte every EVERY seconds, its last
      byte never: prints "closed after S" once the server closes the connection, or
      "open after S" at BOUND seconds.
  tls_trickle.py whole HOST PORT EVERY COUNT TEXT
      The handshake, then TEXT COUNT times, each as one whole record EVERY seconds apart,
      each reply read: prints each reply, or "closed" if the server closes first.
  tls_trickle.py hello HOST PORT EVERY BOUND
      A ClientHello sent a byte every EVERY seconds, its last byte never: as trickle.
  tls_trickle.py late HOST PORT PAUSE SIZE
      The handshake, then SIZE bytes as full records sent as fast as the server takes them,
      its replies not read for the first PAUSE seconds (small socket buffers, so the server
      stops reading from it), then all read: prints "echoed SIZE", or "closed after S,
      N echoed" if the server closes first.
  tls_trickle.py raw HOST PORT WAIT HEX
      The handshake, then the bytes HEX as they are (no record around them): prints
      "closed" once the server closes the connection, or "open" after WAIT seconds.
  tls_trickle.py halves HOST PORT FROM COUNT
      COUNT connections from the address FROM, each a record header announcing 16384 bytes
      and 16000 of them (a ClientHello, padded), then nothing: prints "sent COUNT" and holds
      them for 30 s (until killed).
  tls_trickle.py hold HOST PORT FROMS COUNT SECONDS
      COUNT connections from each address of FROMS (comma-separated), each the start of a
      handshake record (a header announcing 16384 bytes, and 100 of them), then nothing:
      prints "held N" once all are open. One the server closes after a second or more is
      opened again (from its address), so they keep their places for SECONDS (or until
      killed); one closed sooner (refused) is not. HOST "unix": PORT is a Unix socket's
      path (@name: an abstract one) and FROMS "-".

Every wait is bounded; the exit status is 0 unless something other than the server went
wrong.
"""

import select
import socket
import ssl
import sys
import time

# Any one wait of this peer (a connect, the handshake, a reply, the rest of an echo): a hang
# guard, long enough for a loaded machine, never what a test measures.
WAIT = 30


def connect(host, port, buffers=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if buffers:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffers)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffers)
    sock.settimeout(WAIT)
    sock.connect((host, int(port)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["netecho"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    return sock, tls, incoming, outgoing


def handshake(sock, tls, incoming, outgoing):
    deadline = time.monotonic() + WAIT
    while True:
        try:
            tls.do_handshake()
            sock.sendall(outgoing.read())
            return
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            if time.monotonic() > deadline:
                raise TimeoutError(f"no handshake within {WAIT} s")
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            incoming.write(data)


def closed(sock, wait):
    """Whether the server closed (or reset) the connection, waiting at most `wait`."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        # Whatever comes before the end (a TLS 1.3 ticket, an alert) is read and dropped.
        return sock.recv(65536) == b""
    except OSError:
        return True


def closed_within(sock, bound):
    """Whether the server closes the connection within `bound` seconds, whatever it sends
    before."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if closed(sock, deadline - time.monotonic()):
            return True
    return False


def trickle(sock, wire, every, bound):
    """`wire` a byte every `every` seconds, all but its last, until the server closes."""
    started = time.monotonic()
    for byte in wire[:-1]:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        if closed(sock, every):
            break
        if time.monotonic() - started > bound:
            print(f"open after {time.monotonic() - started:.1f}")
            return
    else:
        # Every byte but the last went: wait out the bound for the close.
        while time.monotonic() - started <= bound:
            if closed(sock, every):
                break
        else:
            print(f"open after {time.monotonic() - started:.1f}")
            return
    print(f"closed after {time.monotonic() - started:.1f}")


def whole(sock, tls, incoming, outgoing, every, count, text):
    for _ in range(count):
        tls.write(text.encode())
        sock.sendall(outgoing.read())
        reply = b""
        deadline = time.monotonic() + WAIT
        while len(reply) < len(text):
            try:
                reply += tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply within {WAIT} s")
            readable, _, _ = select.select([sock], [], [], 1)
            if not readable:
                continue
            data = sock.recv(65536)
            if not data:
                print("closed")
                return
            incoming.write(data)
        print(reply.decode().strip())
        sys.stdout.flush()
        time.sleep(every)


def late(sock, tls, incoming, outgoing, pause, size):
    """`size` bytes in full records, replies unread for `pause` seconds, then all read."""
    wire = b""
    for _ in range(size // 16384):
        tls.write(b"a" * 16384)
        wire += outgoing.read()
    size = size // 16384 * 16384
    sock.setblocking(False)
    sent, echoed, started = 0, 0, time.monotonic()
    while echoed < size:
        elapsed = time.monotonic() - started
        if elapsed > pause + WAIT:
            raise TimeoutError(f"{echoed} of {size} echoed in {elapsed:.1f} s")
        reading = [sock] if elapsed > pause else []
        writing = [sock] if sent < len(wire) else []
        readable, writable, _ = select.select(reading, writing, [], 0.1)
        try:
            if writable:
                sent += sock.send(wire[sent : sent + 65536])
            data = sock.recv(65536) if readable else None
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data:
            incoming.write(data)
            data = replies(tls)
            echoed += len(data or b"")
        if data == b"":
            print(f"closed after {elapsed:.1f}, {echoed} echoed")
            return
    print(f"echoed {echoed}")


def replies(tls):
    """The plaintext `tls` has now; b"" once the server said goodbye (close_notify)."""
    got = bytearray()
    while True:
        try:
            more = tls.read(65536)
        except ssl.SSLWantReadError:
            return bytes(got) or None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            more = b""
        if not more:
            return bytes(got)
        got += more


def halves(host, port, source, count):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    body = hello[5:] + bytes(16384 - len(hello) + 5)
    record = bytes([0x16, 3, 1, 0x40, 0x00]) + body
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(WAIT)
        sock.connect((host, int(port)))
        try:
            sock.sendall(record[:16000])
        except OSError:
            pass
        socks.append(sock)
    print(f"sent {count}", flush=True)
    time.sleep(30)


def held_open(host, port, source):
    """A connection from `source` that began a handshake record and sent no more of it."""
    if host == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = "\0" + port[1:] if port.startswith("@") else port
    else:
        sock = socket.socket()
        sock.bind((source, 0))
        path = (host, int(port))
    sock.settimeout(WAIT)
    sock.connect(path)
    try:
        sock.sendall(bytes([0x16, 3, 1, 0x40, 0x00]) + bytes(100))
    except OSError:
        pass
    sock.setblocking(False)
    return sock


def hold(host, port, sources, count, seconds):
    opened = {}
    for source in sources.split(","):
        for _ in range(count):
            opened[held_open(host, port, source)] = (source, time.monotonic())
    print(f"held {len(opened)}", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end and opened:
        ready, _, _ = select.select(list(opened), [], [], 0.5)
        for sock in ready:
            try:
                more = sock.recv(4096)
            except OSError:
                more = b""
            if more:
                continue
            source, since = opened.pop(sock)
            sock.close()
            if time.monotonic() - since >= 1:
                opened[held_open(host, port, source)] = (source, time.monotonic())


def main():
    if sys.argv[1] == "halves":
        halves(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    if sys.argv[1] == "hold":
        hold(*sys.argv[2:5], int(sys.argv[5]), float(sys.argv[6]))
        return
    what, host, port, every = sys.argv[1:5]
    every = float(every)
    sock, tls, incoming, outgoing = connect(host, port, 65536 if what == "late" else None)
    if what == "hello":
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        trickle(sock, outgoing.read(), every, float(sys.argv[5]))
        return
    handshake(sock, tls, incoming, outgoing)
    if what == "trickle":
        tls.write(sys.argv[6].encode())
        trickle(sock, outgoing.read(), every, float(sys.argv[5]))
    elif what == "late":
        late(sock, tls, incoming, outgoing, every, int(sys.argv[5]))
    elif what == "raw":
        sock.sendall(bytes.fromhex(sys.argv[5]))
        print("closed" if closed_within(sock, every) else "open")
    elif what == "whole":
        whole(sock, tls, incoming, outgoing, every, int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(f"unknown: {what}")


if __name__ == "__main__":
    main()
