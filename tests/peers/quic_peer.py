"""A QUIC peer that is not netecho (aioquic), for tests/quic.rs and tests/hostile_tls.rs.

    quic_peer.py cert DIR              write DIR/cert.pem and DIR/key.pem (localhost,
                                       127.0.0.1, ::1), signed by DIR/ca.pem, and print
                                       the certificate's SHA-256 fingerprint
    quic_peer.py server HOST [MODE]    an upper-casing echo on HOST, port 0: a reply on each
                                       stream when it ends, and on each datagram; prints
                                       "ready PORT FINGERPRINT", serves until killed. MODE
                                       flood: each stream answered with 64 KiB chunks and
                                       never its end (bounded: 64 chunks); reset: each
                                       stream reset with code 7
    quic_peer.py client HOST PORT MODE TRUST MSG...
                                       MODE: streams (a stream per message) or datagrams;
                                       TRUST: ca=FILE (verify against FILE) or pin=HEX (no
                                       verification, then the certificate's SHA-256
                                       compared), or alpn=NAME (no verification, offering
                                       ALPN NAME alone); prints each reply on a line
    quic_peer.py retried HOST PORT MODE TRUST MSG...
                                       as client, then prints "retries N": the Retry
                                       packets it followed (RFC 9000 section 8.1.2)
    quic_peer.py stall HOST PORT [N]   send a client's first flight (its Initial, again with
                                       the token of a Retry) and never answer: a handshake
                                       that never completes, from each of N sockets (1);
                                       prints "sent", then waits 15 s
    quic_peer.py probe HOST PORT       send a client's Initial from a plain socket, never
                                       answer, and print "sent N received M": the bytes the
                                       server sent back within 2.5 s to an unproven address
    quic_peer.py trickle HOST PORT EVERY BOUND
                                       one stream, a byte every EVERY seconds and never its
                                       end: prints "closed after S" once the server ends the
                                       stream or the connection, or "open after S" at BOUND
    quic_peer.py half HOST PORT MODE   half a message, and no more of it: MODE streams, on a
                                       stream of its own beside whole ones before and after
                                       (prints each reply, "half reset" or "half: connection
                                       closed" when the server drops it); MODE line, half a
                                       line after a whole one on the one stream (prints the
                                       reply and "half: stream ended")
ALPN "netecho" both ways. Every wait is bounded (10 s).
"""

import asyncio
import contextlib
import datetime
import ipaddress
import os
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import DatagramFrameReceived, StreamDataReceived, StreamReset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ALPN = ["netecho"]
WAIT = 10


def fingerprint(cert):
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def build(subject, key, issuer, issuer_key, ca):
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_cert():
    """A certificate for localhost, 127.0.0.1 and ::1, and its key, signed by a CA of its
    own; returns (certificate, key, CA certificate)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aioquic test CA")])
    ca = build(ca_name, ca_key, ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    return build(name, key, ca_name, ca_key, False), key, ca


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def write_cert(directory):
    cert, key, ca = make_cert()
    with open(os.path.join(directory, "cert.pem"), "wb") as f:
        f.write(pem(cert))
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(pem(ca))
    with open(os.path.join(directory, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    print(fingerprint(cert), flush=True)


FLOOD_CHUNKS = 64
RESET_CODE = 7


class Echo(QuicConnectionProtocol):
    """Upper-cases each stream once it ends, and each datagram; or, as `mode` says, floods
    each stream's reply or resets it."""

    mode = "echo"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.streams = {}

    async def flood(self, stream_id):
        for _ in range(FLOOD_CHUNKS):
            try:
                self._quic.send_stream_data(stream_id, b"F" * 65536, end_stream=False)
            except Exception:
                return  # the client stopped the stream, or closed the connection
            self.transmit()
            await asyncio.sleep(0.01)

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived) and self.mode == "flood":
            asyncio.ensure_future(self.flood(event.stream_id))
        elif isinstance(event, StreamDataReceived) and self.mode == "reset":
            self._quic.reset_stream(event.stream_id, RESET_CODE)
            self.transmit()
        elif isinstance(event, StreamDataReceived):
            data = self.streams.pop(event.stream_id, b"") + event.data
            if event.end_stream:
                self._quic.send_stream_data(event.stream_id, data.upper(), end_stream=True)
                self.transmit()
            else:
                self.streams[event.stream_id] = data
        elif isinstance(event, DatagramFrameReceived):
            self._quic.send_datagram_frame(event.data.upper())
            self.transmit()


async def run_server(host, mode):
    Echo.mode = mode
    cert, key, _ = make_cert()
    config = QuicConfiguration(is_client=False, alpn_protocols=ALPN,
                               max_datagram_frame_size=65536)
    config.certificate = cert
    config.private_key = key
    server = await serve(host, 0, configuration=config, create_protocol=Echo)
    port = server._transport.get_extra_info("sockname")[1]
    print(f"ready {port} {fingerprint(cert)}", flush=True)
    await asyncio.Future()


class PinMismatch(Exception):
    pass


class Client(QuicConnectionProtocol):
    """Streams as aioquic gives them, and datagrams into a queue."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.datagrams = asyncio.Queue()
        self.reset = set()

    def quic_event_received(self, event):
        if isinstance(event, DatagramFrameReceived):
            self.datagrams.put_nowait(event.data)
        if isinstance(event, StreamReset):
            # aioquic's reader hears nothing of a reset: a read of the stream ends.
            self.reset.add(event.stream_id)
            reader = self._stream_readers.get(event.stream_id)
            if reader is not None:
                reader.feed_eof()
        super().quic_event_received(event)


async def exchange(client, mode, msg):
    if mode == "datagrams":
        client._quic.send_datagram_frame(msg)
        client.transmit()
        return await client.datagrams.get()
    reader, writer = await client.create_stream()
    writer.write(msg)
    writer.write_eof()
    return await reader.read()


async def run_client(host, port, mode, trust, messages, retries=False):
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN,
                               max_datagram_frame_size=65536, server_name="localhost")
    how, _, value = trust.partition("=")
    if how == "alpn":
        config.alpn_protocols = [value]
    if how == "ca":
        config.load_verify_locations(value)
    else:
        config.verify_mode = ssl.CERT_NONE
    async with connect(host, port, configuration=config, create_protocol=Client) as client:
        if how == "pin":
            got = fingerprint(client._quic.tls._peer_certificate)
            want = value.replace(":", "").upper()
            if got.replace(":", "") != want:
                raise PinMismatch(f"pin mismatch: the server presented {got}")
        for msg in messages:
            reply = await asyncio.wait_for(exchange(client, mode, msg.encode()), WAIT)
            # An --exec server's reply is framed: its lengths are bytes, not text.
            print(reply.decode(errors="replace"), flush=True)
        if retries:
            print(f"retries {client._quic._retry_count}", flush=True)


async def hold(host, port, count):
    """Opens `count` connections one after another and holds them all; prints how many
    handshakes the server finished and how many it refused."""
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    held = refused = 0
    async with contextlib.AsyncExitStack() as connections:
        for _ in range(count):
            try:
                opening = connections.enter_async_context(connect(host, port, configuration=config))
                await asyncio.wait_for(opening, WAIT)
                held += 1
            except (ConnectionError, asyncio.TimeoutError):
                refused += 1
        print(f"held {held} refused {refused}", flush=True)


def stall(host, port, count):
    """The first flight of real clients, each from a plain socket that then stays silent."""
    import socket
    import time
    from aioquic.quic.connection import QuicConnection
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    for _ in range(count):
        quic = QuicConnection(configuration=config)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.settimeout(WAIT)
        quic.connect((host, port), now=time.time())
        for data, addr in quic.datagrams_to_send(now=time.time()):
            sock.sendto(data, (host, port))
        # A server that asks for a Retry gets the Initial again with its token, and then
        # nothing more; one that answered at once gets nothing at all.
        data = sock.recv(65536)
        quic.receive_datagram(data, (host, port), now=time.time())
        if quic._retry_count:
            for data, addr in quic.datagrams_to_send(now=time.time()):
                sock.sendto(data, (host, port))
        socks.append(sock)
    print("sent", flush=True)
    time.sleep(15)


def probe(host, port):
    """A real client's Initial from a plain socket, and the bytes that come back for it."""
    import socket
    import time
    from aioquic.quic.connection import QuicConnection
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    quic = QuicConnection(configuration=config)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    quic.connect((host, port), now=time.time())
    sent = received = 0
    for data, addr in quic.datagrams_to_send(now=time.time()):
        sent += sock.sendto(data, (host, port))
    # The server's first flight and its retransmissions (the first after about 1 s).
    until = time.monotonic() + 2.5
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            received += len(sock.recv(65536))
        except socket.timeout:
            break
    print(f"sent {sent} received {received}", flush=True)


async def trickle(host, port, every, bound):
    import time
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    async with connect(host, port, configuration=config, create_protocol=Client) as client:
        reader, writer = await client.create_stream()
        closing = asyncio.ensure_future(client.wait_closed())
        ended = asyncio.ensure_future(reader.read())
        started = time.monotonic()
        while time.monotonic() - started < bound:
            writer.write(b"a")
            done, _ = await asyncio.wait([closing, ended], timeout=every)
            if done:
                print(f"closed after {time.monotonic() - started:.1f}", flush=True)
                return
        print(f"open after {time.monotonic() - started:.1f}", flush=True)


async def half(host, port, mode):
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    async with connect(host, port, configuration=config, create_protocol=Client) as client:
        closing = asyncio.ensure_future(client.wait_closed())
        if mode == "line":
            reader, writer = await client.create_stream()
            writer.write(b"whole\nhalf")
            print((await asyncio.wait_for(reader.readline(), WAIT)).decode().strip(), flush=True)
            await asyncio.wait_for(reader.read(), 2 * WAIT)
            print("half: stream ended", flush=True)
            return
        print((await asyncio.wait_for(exchange(client, mode, b"before"), WAIT)).decode())
        reader, writer = await client.create_stream()
        writer.write(b"half")
        ended = asyncio.ensure_future(reader.read())
        await asyncio.wait([closing, ended], timeout=2 * WAIT,
                           return_when=asyncio.FIRST_COMPLETED)
        if closing.done():
            print("half: connection closed", flush=True)
            return
        print("half reset" if ended.done() else "half: still open", flush=True)
        print((await asyncio.wait_for(exchange(client, mode, b"after"), WAIT)).decode())


async def second(host, port):
    """On a connection that carries one stream (--framing line): a line on the first, a
    second stream opened (is it reset?), then another line on the first."""
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost")
    config.verify_mode = ssl.CERT_NONE
    async with connect(host, port, configuration=config, create_protocol=Client) as client:
        reader, writer = await client.create_stream()
        writer.write(b"one\n")
        print((await asyncio.wait_for(reader.readline(), WAIT)).decode().strip(), flush=True)
        extra, extra_writer = await client.create_stream()
        extra_writer.write(b"three\n")
        extra_writer.write_eof()
        try:
            got = await asyncio.wait_for(extra.read(), WAIT)
        except asyncio.TimeoutError:
            got = None
        reset = extra_writer.get_extra_info("stream_id") in client.reset
        print("second reset" if reset else f"second: {got!r}", flush=True)
        writer.write(b"two\n")
        print((await asyncio.wait_for(reader.readline(), WAIT)).decode().strip(), flush=True)


def main():
    what = sys.argv[1]
    if what == "second":
        asyncio.run(asyncio.wait_for(second(sys.argv[2], int(sys.argv[3])), 4 * WAIT))
        return
    if what == "trickle":
        host, port, every, bound = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        asyncio.run(asyncio.wait_for(trickle(host, port, float(every), float(bound)), 3 * WAIT))
        return
    if what == "half":
        asyncio.run(asyncio.wait_for(half(sys.argv[2], int(sys.argv[3]), sys.argv[4]), 4 * WAIT))
        return
    if what == "cert":
        write_cert(sys.argv[2])
    elif what == "hold":
        asyncio.run(hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif what == "stall":
        stall(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    elif what == "probe":
        probe(sys.argv[2], int(sys.argv[3]))
    elif what == "server":
        asyncio.run(run_server(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "echo"))
    elif what in ("client", "retried"):
        host, port, mode, trust = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        client = run_client(host, port, mode, trust, sys.argv[6:], what == "retried")
        try:
            asyncio.run(asyncio.wait_for(client, 3 * WAIT))
        except PinMismatch as e:
            sys.exit(str(e))


if __name__ == "__main__":
    main()
