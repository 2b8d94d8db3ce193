use super::*;
use crate::files::packet::{Packet as Own, Version};

#[test]
fn netecho_requests_are_never_taken_for_tftp() {
    for window in 1..=crate::files::datagram::MAX_WINDOW {
        let names = ["", "a", "file.bin", "octet"];
        for (name, version) in names
            .iter()
            .flat_map(|n| [(*n, Version::V1), (*n, Version::V2)])
        {
            let read = Own::Read {
                version,
                window,
                block_size: 0x6f63,
                nonce: u64::from_be_bytes(*b"tet\0blks"),
                name,
            };
            let write = Own::Write {
                version,
                window,
                block_size: 512,
                size: 7,
                nonce: 1,
                name,
            };
            for request in [read, write] {
                assert!(!is_tftp(&request.to_vec()), "{request:?}");
            }
        }
    }
}

#[test]
fn tftp_requests_are_taken_for_tftp() {
    for (write, name) in [(false, "f"), (true, "a/b.txt"), (false, " x"), (false, "~")] {
        let request = Packet::Request {
            write,
            name,
            mode: "octet",
            options: vec![],
        };
        assert!(is_tftp(&request.to_vec()), "{request:?}");
    }
    for other in [
        &b"\x00\x03f"[..],
        b"\x00\x04\x00\x01",
        b"\x00\x01",
        b"",
        b"\x00\x05ab",
    ] {
        assert!(!is_tftp(other), "{other:?}");
    }
}

#[test]
fn only_loopback_and_unix_sources_count_as_unforgeable() {
    let ip = |s: &str| PeerAddr(s.parse::<std::net::SocketAddr>().unwrap().into());
    for yes in [
        "127.0.0.1:69",
        "127.9.8.7:1",
        "[::1]:69",
        "[::ffff:127.0.0.2]:69",
    ] {
        assert!(ip(yes).unforgeable(), "{yes}");
    }
    for no in [
        "10.0.0.1:69",
        "192.168.1.1:69",
        "[::ffff:10.0.0.1]:69",
        "[fe80::1]:69",
        "0.0.0.0:69",
    ] {
        assert!(!ip(no).unforgeable(), "{no}");
    }
}

/// A server's transfer socket and a client's, both on loopback, the request served on a
/// thread; the client's socket and the request's bytes are returned with the handle.
fn serve(
    request: Vec<u8>,
    store: Store,
    rfc1350: bool,
) -> (std::net::UdpSocket, std::thread::JoinHandle<Result<String>>) {
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let peer = PeerAddr(client.local_addr().unwrap().into());
    let handle = std::thread::spawn(move || {
        let near = crate::endpoint::Address::Ip("127.0.0.1:0".parse().unwrap());
        let sock = crate::transport::ephemeral_datagram(crate::endpoint::Proto::Udp, &near, false)?;
        let tftp = Tftp {
            store: &store,
            impair: (0.0, 0.0),
            rfc1350,
            // As from an address that could be forged: every refusal cut to the request.
            whole_refusals: false,
        };
        serve_request(&sock, peer, &request, &tftp, None)
    });
    (client, handle)
}

fn store_with(name: &str, bytes: &[u8]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    let store = Store::open(dir.path(), true, 1 << 30).unwrap();
    (dir, store)
}

#[test]
fn with_options_nothing_but_an_oack_no_larger_than_the_request_comes_before_ack_0() {
    let (_dir, store) = store_with("f", &[7u8; 3000]);
    let request = Packet::Request {
        write: false,
        name: "f",
        mode: "octet",
        options: vec![("blksize", "1024"), ("tsize", "0")],
    }
    .to_vec();
    let (client, server) = serve(request.clone(), store, false);
    let mut buf = [0u8; 2048];
    let (n, tid) = client.recv_from(&mut buf).unwrap();
    assert!(
        n <= request.len(),
        "an OACK of {n} bytes for {}",
        request.len()
    );
    assert_eq!(
        Packet::decode(&buf[..n]),
        Some(Packet::Oack {
            options: vec![("blksize", "1024"), ("tsize", "3000")]
        })
    );
    // Silence: no DATA, and no OACK again (what goes before the proof is, in all, no
    // larger than the request).
    let mut oacks = 1;
    while let Ok((n, _)) = client.recv_from(&mut buf) {
        assert!(matches!(
            Packet::decode(&buf[..n]),
            Some(Packet::Oack { .. })
        ));
        oacks += 1;
    }
    assert_eq!(oacks, 1, "the OACK is sent once");
    let err = server.join().unwrap().unwrap_err();
    assert!(format!("{err:#}").contains("no answer"), "{err:#}");
    let _ = tid;
}

#[test]
fn after_ack_0_the_file_comes_in_blocks_and_duplicate_acks_send_nothing() {
    let body: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
    let (_dir, store) = store_with("f", &body);
    let request = Packet::Request {
        write: false,
        name: "f",
        mode: "OCTET",
        options: vec![("blksize", "1000")],
    }
    .to_vec();
    let (client, server) = serve(request, store, false);
    let mut buf = [0u8; 2048];
    let (_, tid) = client.recv_from(&mut buf).unwrap();
    client.connect(tid).unwrap();
    client.send(&Packet::Ack { block: 0 }.to_vec()).unwrap();
    let mut got = Vec::new();
    for block in 1..=3u16 {
        let n = client.recv(&mut buf).unwrap();
        let Some(Packet::Data { block: b, data }) = Packet::decode(&buf[..n]) else {
            panic!("not DATA: {:?}", &buf[..n]);
        };
        assert_eq!(b, block);
        got.extend_from_slice(data);
        if block == 1 {
            // The Sorcerer's Apprentice: ACK 0 again, twice, must not send block 1 again.
            client.send(&Packet::Ack { block: 0 }.to_vec()).unwrap();
            client.send(&Packet::Ack { block: 0 }.to_vec()).unwrap();
        }
        client.send(&Packet::Ack { block }.to_vec()).unwrap();
    }
    assert_eq!(got, body);
    let line = server.join().unwrap().unwrap();
    assert!(line.contains("retransmitted 0"), "{line}");
    assert!(line.contains("blocks sent 3"), "{line}");
}

#[test]
fn a_plain_request_from_loopback_gets_data_at_once() {
    let (_dir, store) = store_with("f", b"hello");
    let request = b"\x00\x01f\x00octet\x00".to_vec();
    let (client, server) = serve(request, store, false);
    let mut buf = [0u8; 600];
    let (n, tid) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\x00\x03\x00\x01hello");
    client.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn a_missing_file_is_error_1_no_larger_than_the_request() {
    let (_dir, store) = store_with("f", b"x");
    let request = b"\x00\x01nope\x00octet\x00".to_vec();
    let (client, server) = serve(request.clone(), store, false);
    let mut buf = [0u8; 600];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    // 13 bytes asked, 13 answered: the message is cut to "not foun".
    assert_eq!(n, request.len());
    assert_eq!(&buf[..n], b"\x00\x05\x00\x01not foun\x00");
    assert!(server.join().unwrap().is_err());
}

#[test]
fn netascii_is_refused_with_what_to_type_first() {
    let (_dir, store) = store_with("f", b"x");
    let request = b"\x00\x01f\x00netascii\x00blksize\x00512\x00".to_vec();
    let (client, server) = serve(request.clone(), store, false);
    let mut buf = [0u8; 600];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert!(n <= request.len());
    let text = String::from_utf8_lossy(&buf[4..n]);
    assert!(text.starts_with("use -m binary: only"), "{text}");
    assert!(server.join().unwrap().is_err());
}

#[test]
fn an_upload_is_stored_and_never_replaces_a_file() {
    let (dir, store) = store_with("taken", b"mine");
    for (name, stored) in [("new.bin", true), ("taken", false)] {
        let request = Packet::Request {
            write: true,
            name,
            mode: "octet",
            options: vec![],
        }
        .to_vec();
        let (client, server) = serve(request, store.clone(), false);
        let mut buf = [0u8; 600];
        let (n, tid) = client.recv_from(&mut buf).unwrap();
        if !stored {
            assert!(buf[..n].starts_with(b"\x00\x05\x00\x06"), "{:?}", &buf[..n]);
            assert!(server.join().unwrap().is_err());
            continue;
        }
        assert_eq!(&buf[..n], b"\x00\x04\x00\x00");
        client.send_to(b"\x00\x03\x00\x01up", tid).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x00\x04\x00\x01");
        server.join().unwrap().unwrap();
    }
    assert_eq!(std::fs::read(dir.path().join("new.bin")).unwrap(), b"up");
    assert_eq!(std::fs::read(dir.path().join("taken")).unwrap(), b"mine");
}
