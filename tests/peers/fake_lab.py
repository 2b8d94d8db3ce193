"""A lab server that is not netecho's, for tests/hostile_lab_server.rs: it speaks the control
protocol (Hello, Go, Done, Account) and offers echo ports that misbehave.

    fake_lab.py MODE [PORT [TEXT]]
                        MODE garbage: the tcp and udp ports answer bytes that are not the
                        request; udp-silent: tcp echoes upper-cased, udp answers nothing;
                        pin-mismatch: both echo upper-cased, and the offer names PORT
                        (another server's) as its tls port, with a fingerprint of zeros;
                        names: both echo upper-cased, and the offer holds a third service
                        whose name is terminal escapes; queued: after the Hello, a Queued
                        frame every millisecond (the place going round 65535, 65534, 65533)
                        and never a turn; gone: the offer's tcp port is closed (bound,
                        not listening: a connect is refused) and the control connection
                        is closed right after the offer, as a server that stopped; full:
                        the tcp port closes each connection at once (as a port whose share
                        is taken), udp echoes upper-cased; error-after-done: the offer
                        names PORT alone, as its tcp port (a real echo server's), and
                        the client's Done is answered with an Error frame of TEXT, sent as
                        it is (past the protocol's 512 bytes if it is longer), then the
                        close. The account claims 4294967295 other runs and as
                        many milliseconds waited. Prints "ready PORT" (the control port, on
                        127.0.0.1), serves runs one after another, ends after 60 s.
"""

import socket
import struct
import sys
import threading
import time


def text(t):
    b = t.encode()
    return struct.pack(">H", len(b)) + b


def frame(body):
    return struct.pack(">H", len(body)) + body


def read_frame(conn):
    head = conn.recv(2)
    if len(head) < 2:
        return None
    n = struct.unpack(">H", head)[0]
    body = b""
    while len(body) < n:
        more = conn.recv(n - len(body))
        if not more:
            return None
        body += more
    return body


def tcp_echo(listener, mode):
    def serve(conn):
        if mode == "full":
            conn.close()
            return
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                if mode == "garbage":
                    conn.sendall(b"\x1b[2J" + data[::-1])
                else:
                    conn.sendall(data.upper())
        except OSError:
            pass

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def udp_echo(sock, mode):
    while True:
        data, addr = sock.recvfrom(65536)
        if mode == "garbage":
            sock.sendto(b"\x1b[31m" + data[::-1], addr)
        elif mode in ("pin-mismatch", "names", "full"):
            sock.sendto(data.upper(), addr)


ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED</td><scri"


def run(conn, tcp_port, udp_port, mode, tls_port):
    conn.settimeout(60)
    if read_frame(conn) is None:
        return
    if mode == "queued":
        for i in range(60000):
            conn.sendall(frame(b"\x02" + struct.pack(">HH", 65535 - i % 3, 65535)))
            time.sleep(0.001)
        return
    services = [("tcp", tcp_port), ("udp", udp_port)]
    if mode == "error-after-done":
        services = [("tcp", tls_port)]
    elif tls_port is not None:
        services.append(("tls sha256 " + ":".join(["00"] * 32), tls_port))
    if mode == "names":
        services.append((ESCAPES, tcp_port))
    go = b"\x03" + struct.pack(">IIHHII", 7, 0, 0, 1, 0xFFFFFFFF, 0) + bytes([len(services)])
    for name, port in services:
        go += text(name) + struct.pack(">H", port)
    conn.sendall(frame(go))
    if mode == "gone":
        return
    while True:
        body = read_frame(conn)
        if body is None:
            return
        if body[:1] == b"\x04" and mode == "error-after-done":
            conn.sendall(frame(b"\x06" + text(sys.argv[3])))
            return
        if body[:1] == b"\x04":
            account = struct.pack(">IHII", 0xFFFFFFFF, 65535, 0xFFFFFFFF, 0xFFFFFFFF)
            conn.sendall(frame(b"\x05" + account))


def main():
    mode = sys.argv[1]
    tls_port = int(sys.argv[2]) if len(sys.argv) > 2 else None
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(100)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    threading.Thread(target=tcp_echo, args=(echo, mode), daemon=True).start()
    # Bound and never listening: a connect to it is refused, as a stopped server's port.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    tcp_port = (closed if mode == "gone" else echo).getsockname()[1]
    threading.Thread(target=udp_echo, args=(udp, mode), daemon=True).start()
    control = socket.socket()
    control.bind(("127.0.0.1", 0))
    control.listen(5)
    control.settimeout(60)
    print("ready", control.getsockname()[1], flush=True)
    until = time.monotonic() + 60
    while time.monotonic() < until:
        try:
            conn, _ = control.accept()
        except OSError:
            return
        try:
            run(conn, tcp_port, udp.getsockname()[1], mode, tls_port)
        except OSError:
            pass
        conn.close()


if __name__ == "__main__":
    main()
