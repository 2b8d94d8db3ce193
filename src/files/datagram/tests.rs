//! The datagram protocol in one process over two real UDP sockets on 127.0.0.1: whole
//! transfers through simulated loss and reordering, and the sender and receiver one step at
//! a time against a peer the test plays by hand.

use std::fs;
use std::io::{Seek, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;

use super::*;
use crate::endpoint::{Address, Proto};
use crate::files::packet::HELLO_LEN;
use crate::transport::ephemeral_datagram;

/// The longest any test here may take: a transfer that hangs fails instead.
const BOUND: Duration = Duration::from_secs(60);
/// The longest the hand-played peer waits for one packet.
const PEER_WAIT: Duration = Duration::from_secs(5);

fn udp() -> DatagramSocket {
    let near = Address::Ip("127.0.0.1:0".parse().expect("an address"));
    ephemeral_datagram(Proto::Udp, &near, false).expect("a UDP socket on 127.0.0.1")
}

fn addr(sock: &DatagramSocket) -> PeerAddr {
    PeerAddr(sock.socket().local_addr().expect("getsockname"))
}

/// Starts `f` on a named thread, through `thread::Builder` as the server's own threads are.
fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("the OS refused a test thread")
}

/// Progress nobody watches.
fn quiet(_: u64) {}

/// Runs `f` on a thread of its own and fails the test if it takes longer than `BOUND`.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    spawn("bounded", move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(BOUND) {
        Ok(done) => done,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not end within {BOUND:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} failed (see the panic above)"),
    }
}

/// Bytes that differ from block to block, so a block out of place changes the hash.
fn contents(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 977) as u8).collect()
}

fn file_with(data: &[u8]) -> File {
    let mut file = tempfile::tempfile().expect("a temporary file");
    file.write_all(data).expect("write");
    file.rewind().expect("rewind");
    file
}

fn settings(window: u16, block_size: u16, drop: f64, reorder: f64) -> Settings {
    Settings {
        window,
        block_size,
        drop,
        reorder,
        linger: CLIENT_LINGER,
        version: Version::V1,
    }
}

/// What one whole transfer did: the sender's and the receiver's accounts, and whether the
/// file arrived whole.
struct Outcome {
    sent: Transfer,
    received: Transfer,
    whole: bool,
}

/// Sends a 300-block file through a sender and a receiver that both lose and reorder what
/// they send, with chances drawn from `seed`.
fn transfer(drop: f64, reorder: f64, seed: u64) -> Outcome {
    transfer_as(Version::V1, drop, reorder, seed)
}

/// As [`transfer`], in the protocol version given.
fn transfer_as(version: Version, drop: f64, reorder: f64, seed: u64) -> Outcome {
    within("the transfer", move || {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let target = dir.path().join("target");
        let content = contents(300 * 512 + 123);
        let settings = Settings {
            version,
            ..settings(16, 512, drop, reorder)
        };
        // The receiver lingers as a server does, past the sender's longest timeout: with a
        // client's brief linger, a FINACK lost to the simulated loss was answered again only
        // if the sender's next FIN came within 300 ms, which a loaded machine may not grant
        // its thread ("no answer to the final hash check").
        let lingering = Settings {
            linger: SERVER_LINGER,
            ..settings
        };
        let (a, b) = (udp(), udp());
        let (to_a, to_b) = (addr(&a), addr(&b));
        let receiving = {
            let target = target.clone();
            spawn("receiver", move || -> Result<Transfer> {
                let settings = lingering;
                let mut link = Link::new(&b, to_a, &settings);
                link.impaired = Impaired::seeded(drop, reorder, seed + 1);
                let partial = Partial::create(&target, false)?;
                Receiver::new(&mut link, partial, false, &settings, u64::MAX, &quiet).run(None)
            })
        };
        let mut link = Link::new(&a, to_b, &settings);
        link.impaired = Impaired::seeded(drop, reorder, seed);
        let mut file = file_with(&content);
        let sent = Sender::new(
            &mut link,
            &mut file,
            content.len() as u64,
            &settings,
            &quiet,
        )
        .and_then(Sender::run)
        .expect("the sender finishes");
        let received = receiving
            .join()
            .expect("the receiver does not panic")
            .expect("the receiver finishes");
        Outcome {
            sent,
            received,
            whole: fs::read(&target).ok() == Some(content),
        }
    })
}

#[test]
fn a_file_arrives_whole_through_loss() {
    let done = transfer(0.1, 0.0, 11);
    assert!(done.whole, "the file differs from what was sent");
    assert_eq!(done.received.bytes, 300 * 512 + 123);
    assert!(
        done.sent.dropped > 0,
        "nothing was dropped: {:?}",
        done.sent
    );
    assert!(
        done.sent.retransmitted > 0,
        "lost blocks were not sent again: {:?}",
        done.sent
    );
}

#[test]
fn a_file_arrives_whole_through_reordering() {
    let done = transfer(0.0, 0.2, 23);
    assert!(done.whole, "the file differs from what was sent");
    assert_eq!(done.sent.dropped, 0);
    assert!(
        done.sent.duplicates > 0,
        "reordering caused no duplicate ACK: {:?}",
        done.sent
    );
}

#[test]
fn a_file_arrives_whole_through_loss_and_reordering() {
    let done = transfer(0.1, 0.1, 37);
    assert!(done.whole, "the file differs from what was sent");
    assert!(done.sent.dropped > 0 && done.sent.retransmitted > 0);
    // The receiver reports the sender's own counts from the FIN.
    assert_eq!(done.received.blocks, done.sent.blocks);
    assert_eq!(done.received.retransmitted, done.sent.retransmitted);
}

/// The next datagram `sock` receives; fails after `PEER_WAIT`.
fn next_packet(sock: &DatagramSocket) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    sock.set_read_timeout(Some(PEER_WAIT)).expect("SO_RCVTIMEO");
    match sock.recv_from(&mut buf) {
        Ok((Received::Data(n), _)) => buf[..n].to_vec(),
        other => panic!("no packet within {PEER_WAIT:?}: {other:?}"),
    }
}

/// The block numbers of the next `count` DATA packets `sock` receives.
fn data_blocks(sock: &DatagramSocket, count: usize) -> Vec<u32> {
    (0..count)
        .map(|_| match Packet::decode(&next_packet(sock)) {
            Some(Packet::Data { block, .. }) => block,
            other => panic!("expected DATA, got {other:?}"),
        })
        .collect()
}

/// Nothing is queued for `sock` now. Loopback delivers a datagram within sendto(2), so
/// what was sent before this call is already there.
fn nothing_queued(sock: &DatagramSocket) -> bool {
    let mut buf = vec![0u8; MAX_MESSAGE];
    matches!(sock.try_recv_from(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn send(sock: &DatagramSocket, to: &PeerAddr, packet: &Packet<'_>) {
    sock.send_to(&packet.to_vec(), to).expect("sendto");
}

#[test]
fn three_duplicate_acks_send_the_oldest_block_again() {
    within("fast retransmit", || {
        let (a, peer) = (udp(), udp());
        let (to_a, to_peer) = (addr(&a), addr(&peer));
        let settings = settings(4, 100, 0.0, 0.0);
        let mut file = file_with(&contents(450));
        let mut link = Link::new(&a, to_peer, &settings);
        let mut sender = Sender::new(&mut link, &mut file, 450, &settings, &quiet).unwrap();
        sender.fill_window().unwrap();
        assert_eq!(data_blocks(&peer, 2), [1, 2], "two blocks before any ACK");
        send(&peer, &to_a, &Packet::Ack { block: 1 });
        sender.step().unwrap();
        sender.fill_window().unwrap();
        assert_eq!(data_blocks(&peer, 2), [3, 4], "the ACK grew the window");
        // Blocks 3 and 4 arrived without 2: the receiver says 1 again for each.
        for _ in 0..2 {
            send(&peer, &to_a, &Packet::Ack { block: 1 });
            sender.step().unwrap();
        }
        assert!(
            nothing_queued(&peer),
            "sent again before the third duplicate"
        );
        send(&peer, &to_a, &Packet::Ack { block: 1 });
        sender.step().unwrap();
        assert_eq!(data_blocks(&peer, 1), [2]);
        assert_eq!(sender.t.duplicates, 3);
        assert_eq!(sender.t.retransmitted, 1);
        assert_eq!(sender.cwnd, 1.5, "the window halves on a loss");
    });
}

#[test]
fn a_window_starts_at_two_blocks_whatever_was_asked() {
    within("the first window", || {
        let (a, peer) = (udp(), udp());
        let settings = settings(64, 100, 0.0, 0.0);
        let mut file = file_with(&contents(5000));
        let mut link = Link::new(&a, addr(&peer), &settings);
        let mut sender = Sender::new(&mut link, &mut file, 5000, &settings, &quiet).unwrap();
        sender.fill_window().unwrap();
        assert_eq!(data_blocks(&peer, 2), [1, 2]);
        assert!(nothing_queued(&peer), "more than two blocks before any ACK");
    });
}

#[test]
fn a_timeout_sends_only_the_oldest_block_again() {
    within("the timeout", || {
        let (a, peer) = (udp(), udp());
        let (to_a, to_peer) = (addr(&a), addr(&peer));
        let settings = settings(2, 100, 0.0, 0.0);
        let mut file = file_with(&contents(250));
        let mut link = Link::new(&a, to_peer, &settings);
        let mut sender = Sender::new(&mut link, &mut file, 250, &settings, &quiet).unwrap();
        sender.fill_window().unwrap();
        assert_eq!(data_blocks(&peer, 2), [1, 2]);
        // The peer stays silent: after one timeout only block 1 goes again.
        sender.step().unwrap();
        sender.fill_window().unwrap();
        assert_eq!(data_blocks(&peer, 1), [1]);
        assert!(
            nothing_queued(&peer),
            "more than the oldest block sent again"
        );
        assert_eq!(sender.t.retransmitted, 1);
        assert_eq!(sender.rto.rto, INITIAL_RTO * 2, "the timeout doubles");
        assert_eq!(sender.cwnd, 1.0, "the window starts again from one block");
        // Its ACK opens the window again: block 2 (given up for lost) goes, then block 3.
        send(&peer, &to_a, &Packet::Ack { block: 1 });
        sender.step().unwrap();
        sender.fill_window().unwrap();
        assert_eq!(data_blocks(&peer, 2), [2, 3]);
        assert_eq!(sender.t.retransmitted, 2);
    });
}

#[test]
fn an_ack_for_a_block_never_sent_is_ignored_and_counted() {
    within("the optimistic ACK", || {
        let (a, peer) = (udp(), udp());
        let (to_a, to_peer) = (addr(&a), addr(&peer));
        let settings = settings(8, 100, 0.0, 0.0);
        let mut file = file_with(&contents(1000));
        let mut link = Link::new(&a, to_peer, &settings);
        let mut sender = Sender::new(&mut link, &mut file, 1000, &settings, &quiet).unwrap();
        sender.fill_window().unwrap();
        assert_eq!(data_blocks(&peer, 2), [1, 2]);
        // Claims every block of the file, though only two were sent.
        send(&peer, &to_a, &Packet::Ack { block: 11 });
        sender.step().unwrap();
        sender.fill_window().unwrap();
        assert!(nothing_queued(&peer), "the claim opened the window");
        assert_eq!(sender.flight.len(), 2, "taken as delivered");
        assert_eq!(sender.t.unsent_acks, 1);
        assert_eq!(sender.cwnd, 2.0);
        send(&peer, &to_a, &Packet::Ack { block: 2 });
        sender.step().unwrap();
        assert!(sender.flight.is_empty(), "a true ACK still counts");
    });
}

#[test]
fn block_numbers_never_wrap() {
    assert_eq!(last_block(0, 512).unwrap(), 1);
    assert_eq!(last_block(1024, 512).unwrap(), 3, "an empty last block");
    let too_big = 512 * u64::from(u32::MAX);
    let e = last_block(too_big, 512).unwrap_err().to_string();
    assert!(e.contains("2^32") && e.contains("--block-size"), "{e}");
    let least: u64 = e
        .split("--block-size of ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the advice names a block size");
    assert!(last_block(too_big, least as u16).is_ok(), "{e}");
    assert!(last_block(too_big, least as u16 - 1).is_err(), "{e}");
}

#[test]
fn a_lost_fin_is_sent_again() {
    within("the FIN", || {
        let (a, peer) = (udp(), udp());
        let (to_a, to_peer) = (addr(&a), addr(&peer));
        let content = contents(100);
        let sending = spawn("sender", move || {
            let settings = settings(4, 512, 0.0, 0.0);
            let mut link = Link::new(&a, to_peer, &settings);
            let mut file = file_with(&content);
            Sender::new(&mut link, &mut file, 100, &settings, &quiet)?.run()
        });
        assert_eq!(data_blocks(&peer, 1), [1]);
        send(&peer, &to_a, &Packet::Ack { block: 1 });
        let fin = next_packet(&peer);
        assert!(matches!(
            Packet::decode(&fin),
            Some(Packet::Fin { size: 100, .. })
        ));
        // That FIN is lost: the sender sends it again after its timeout.
        assert_eq!(next_packet(&peer), fin);
        send(&peer, &to_a, &Packet::FinAck { ok: true });
        let t = sending.join().unwrap().expect("the sender finishes");
        assert_eq!(t.bytes, 100);
    });
}

#[test]
fn a_lost_finack_is_answered_again_while_the_receiver_lingers() {
    within("the FINACK", || {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let (b, peer) = (udp(), udp());
        let (to_b, to_peer) = (addr(&b), addr(&peer));
        let receiving = {
            let target = target.clone();
            spawn("receiver", move || -> Result<Transfer> {
                let settings = Settings {
                    linger: Duration::from_secs(2),
                    ..settings(4, 512, 0.0, 0.0)
                };
                let mut link = Link::new(&b, to_peer, &settings);
                let partial = Partial::create(&target, false)?;
                Receiver::new(&mut link, partial, false, &settings, u64::MAX, &quiet).run(None)
            })
        };
        let content = contents(100);
        send(
            &peer,
            &to_b,
            &Packet::Data {
                block: 1,
                data: &content,
            },
        );
        assert!(matches!(
            Packet::decode(&next_packet(&peer)),
            Some(Packet::Ack { block: 1 })
        ));
        let fin = Packet::Fin {
            size: 100,
            digest: {
                use sha2::Digest;
                sha2::Sha256::digest(&content).into()
            },
            blocks: 1,
            retransmitted: 0,
        };
        send(&peer, &to_b, &fin);
        let finack = next_packet(&peer);
        assert_eq!(Packet::decode(&finack), Some(Packet::FinAck { ok: true }));
        assert_eq!(
            fs::read(&target).unwrap(),
            content,
            "committed before the FINACK"
        );
        // That FINACK is lost: the sender's next FIN is answered again.
        send(&peer, &to_b, &fin);
        assert_eq!(next_packet(&peer), finack);
        let t = receiving.join().unwrap().expect("the receiver finishes");
        assert_eq!(t.bytes, 100);
    });
}

#[test]
fn an_early_block_waits_for_the_gap_and_the_ack_then_jumps() {
    within("the receiver", || {
        let dir = tempfile::tempdir().unwrap();
        let (b, peer) = (udp(), udp());
        let settings = settings(4, 10, 0.0, 0.0);
        let mut link = Link::new(&b, addr(&peer), &settings);
        let partial = Partial::create(&dir.path().join("target"), false).unwrap();
        let mut receiver = Receiver::new(&mut link, partial, false, &settings, 100, &quiet);
        let ack = |peer: &DatagramSocket| match Packet::decode(&next_packet(peer)) {
            Some(Packet::Ack { block }) => block,
            other => panic!("expected an ACK, got {other:?}"),
        };
        let data = |block, data| Packet::Data { block, data }.to_vec();
        receiver.on_packet(&data(2, b"0123456789")).unwrap();
        assert_eq!(ack(&peer), 0, "block 1 is still missing");
        receiver.on_packet(&data(2, b"0123456789")).unwrap();
        assert_eq!(ack(&peer), 0);
        assert_eq!(receiver.t.duplicates, 1, "the early block came twice");
        receiver.on_packet(&data(1, b"abcdefghij")).unwrap();
        assert_eq!(ack(&peer), 2, "blocks 1 and 2 are in");
        receiver.on_packet(&data(3, b"end")).unwrap();
        assert_eq!(ack(&peer), 3);
        assert!(receiver.complete);
        assert_eq!(receiver.got, 23);
    });
}

fn udp_on(ip: &str) -> DatagramSocket {
    let near = Address::Ip(format!("{ip}:0").parse().expect("an address"));
    ephemeral_datagram(Proto::Udp, &near, false).expect("a UDP socket on loopback")
}

#[test]
fn the_server_sends_one_hello_and_nothing_more_until_it_comes_back() {
    within("the challenge", || {
        let (server, client) = (udp(), udp());
        let settings = settings(4, 100, 0.0, 0.0);
        let (to_server, to_client) = (addr(&server), addr(&client));
        let challenged = spawn("challenger", move || {
            connect(&server, &to_client).unwrap();
            let mut link = Link::new(&server, to_client, &settings);
            handshake::challenge(&mut link, 7, 32).is_ok()
        });
        let hello = next_packet(&client);
        let Some(Packet::Hello { nonce: 7, token }) = Packet::decode(&hello) else {
            panic!("expected a HELLO with the request's nonce, got {hello:?}");
        };
        // A wrong token is no proof.
        let wrong = Packet::Hello {
            nonce: 7,
            token: token ^ 1,
        };
        send(&client, &to_server, &wrong);
        send(&client, &to_server, &Packet::Ack { block: 0 });
        thread::sleep(Duration::from_millis(100));
        assert!(nothing_queued(&client), "answered before the proof");
        client.send_to(&hello, &to_server).unwrap();
        assert!(challenged.join().unwrap(), "the HELLO came back");
    });
}

#[test]
fn a_request_shorter_than_a_hello_gets_no_answer() {
    within("the short request", || {
        let (server, client) = (udp(), udp());
        let settings = settings(4, 100, 0.0, 0.0);
        let mut link = Link::new(&server, addr(&client), &settings);
        assert!(handshake::challenge(&mut link, 7, HELLO_LEN - 1).is_err());
        assert!(nothing_queued(&client));
    });
}

#[test]
fn a_client_takes_a_hello_only_from_the_server_host_with_its_nonce() {
    within("the client's start", || {
        let (client, server, third, transfer) = (udp(), udp(), udp_on("127.0.0.2"), udp());
        let settings = settings(1, 100, 0.0, 0.0);
        let (to_client, to_server) = (addr(&client), addr(&server));
        let starting = spawn("requester", move || {
            let request = Packet::Read {
                version: Version::V1,
                window: 1,
                block_size: 100,
                nonce: 99,
                name: "f",
            }
            .to_vec();
            handshake::start(
                &client,
                &to_server,
                &request,
                99,
                &settings,
                (Duration::from_secs(5), 0),
            )
            .map(|hello| hello.tid)
        });
        assert!(matches!(
            Packet::decode(&next_packet(&server)),
            Some(Packet::Read { nonce: 99, .. })
        ));
        // Another host with the right nonce, and the server's host with a wrong one.
        send(
            &third,
            &to_client,
            &Packet::Hello {
                nonce: 99,
                token: 1,
            },
        );
        send(
            &transfer,
            &to_client,
            &Packet::Hello {
                nonce: 98,
                token: 2,
            },
        );
        send(
            &transfer,
            &to_client,
            &Packet::Hello {
                nonce: 99,
                token: 3,
            },
        );
        let tid = starting
            .join()
            .unwrap()
            .expect("the server's HELLO is taken");
        assert_eq!(
            tid,
            addr(&transfer),
            "a port of its own on the server's host"
        );
    });
}

#[test]
fn a_repeated_hello_is_answered_with_the_receivers_ack() {
    within("the receiver", || {
        let dir = tempfile::tempdir().unwrap();
        let (b, peer) = (udp(), udp());
        let settings = settings(4, 10, 0.0, 0.0);
        let mut link = Link::new(&b, addr(&peer), &settings);
        let partial = Partial::create(&dir.path().join("target"), false).unwrap();
        let mut receiver = Receiver::new(&mut link, partial, false, &settings, 100, &quiet);
        // The upload's ACK 0 was lost: the client's HELLO comes again.
        let hello = Packet::Hello { nonce: 1, token: 2 }.to_vec();
        assert!(receiver.on_packet(&hello).unwrap().is_none());
        assert_eq!(
            Packet::decode(&next_packet(&peer)),
            Some(Packet::Ack { block: 0 })
        );
    });
}

/// Settings of version 2: BLAKE3, and SACKs from the receiver.
fn settings_v2(window: u16, block_size: u16) -> Settings {
    Settings {
        version: Version::V2,
        ..settings(window, block_size, 0.0, 0.0)
    }
}

#[test]
fn with_sack_a_file_arrives_whole_through_loss_and_reordering() {
    for seed in [5, 23, 77] {
        let done = transfer_as(Version::V2, 0.1, 0.1, seed);
        assert!(done.whole, "seed {seed}: the file differs");
        assert!(done.sent.retransmitted > 0, "seed {seed}: nothing was lost");
        assert_eq!(done.received.hash, Some(crate::files::hash::Algo::Blake3));
    }
}

/// A sender of version 2 that has sent blocks 1 to 6, with block 3 lost: the peer's SACK
/// says 4, 5 and 6 arrived.
fn sender_with_a_hole(peer: &DatagramSocket, to_a: &PeerAddr, sender: &mut Sender<'_, '_>) {
    sender.fill_window().unwrap();
    assert_eq!(data_blocks(peer, 2), [1, 2]);
    send(peer, to_a, &Packet::Ack { block: 2 });
    sender.step().unwrap();
    sender.fill_window().unwrap();
    assert_eq!(
        data_blocks(peer, 4),
        [3, 4, 5, 6],
        "the ACK grew the window"
    );
}

/// The peer's SACK: `block` in order, and the early blocks `bits` names.
fn sack(peer: &DatagramSocket, to: &PeerAddr, block: u32, bits: &[u8]) {
    send(peer, to, &Packet::Sack { block, bits });
}

/// Runs `f` with a sender of version 2 as [`sender_with_a_hole`] leaves it (blocks 1 and 2
/// acknowledged, a round trip measured, 3 to 6 in flight), its peer and the sender's address.
fn with_a_hole(f: impl FnOnce(&DatagramSocket, &PeerAddr, &mut Sender<'_, '_>)) {
    let (a, peer) = (udp(), udp());
    let (to_a, to_peer) = (addr(&a), addr(&peer));
    let settings = settings_v2(16, 10);
    let mut file = file_with(&contents(200));
    let mut link = Link::new(&a, to_peer, &settings);
    let mut sender = Sender::new(&mut link, &mut file, 200, &settings, &quiet).unwrap();
    sender_with_a_hole(&peer, &to_a, &mut sender);
    f(&peer, &to_a, &mut sender);
}

#[test]
fn a_sack_sends_only_the_holes_again() {
    within("the SACK", || {
        with_a_hole(|peer, to_a, sender| {
            // Bits 0, 1 and 2: blocks 4, 5 and 6 (ACK + 2 + bit).
            sack(peer, to_a, 2, &[0b111]);
            sender.step().unwrap();
            sender.fill_window().unwrap();
            let cwnd = sender.cwnd as usize;
            let sent = data_blocks(peer, cwnd);
            assert_eq!(sent[0], 3, "the hole goes first");
            assert!(!sent[1..].iter().any(|b| (4..=6).contains(b)), "{sent:?}");
            assert_eq!(sent[1..].first(), Some(&7), "then new blocks: {sent:?}");
            assert!(nothing_queued(peer), "more than the window");
            assert_eq!(sender.t.retransmitted, 1, "only the hole went again");
            assert_eq!(
                sender.cwnd,
                7.0 * 0.7,
                "the window shrinks to 0.7 on the loss"
            );
            // A second SACK for the same hole changes nothing: one cut per loss event.
            sack(peer, to_a, 2, &[0b111]);
            sender.step().unwrap();
            sender.fill_window().unwrap();
            assert!(nothing_queued(peer), "the hole sent twice");
            assert_eq!(sender.cwnd, 7.0 * 0.7);
            // The hole filled: the cumulative ACK jumps past the SACKed blocks.
            send(
                peer,
                to_a,
                &Packet::Ack {
                    block: 6 + cwnd as u32 - 1,
                },
            );
            sender.step().unwrap();
            assert!(sender.flight.is_empty(), "{:?}", sender.flight.len());
        });
    });
}

#[test]
fn a_sack_for_a_block_never_sent_is_ignored_and_counted() {
    within("the optimistic SACK", || {
        with_a_hole(|peer, to_a, sender| {
            let cwnd = sender.cwnd;
            // Blocks 4, 5 and 6 are true; bit 10 (block 14) was never sent.
            sack(peer, to_a, 2, &[0b111, 0b100]);
            sender.step().unwrap();
            sender.fill_window().unwrap();
            assert!(nothing_queued(peer), "the claim moved the sender");
            assert_eq!(sender.t.unsent_acks, 1);
            assert_eq!(sender.cwnd, cwnd, "the window grew on a false claim");
            assert!(
                sender.flight.iter().all(|f| !f.sacked),
                "a false SACK was taken"
            );
            sack(peer, to_a, 2, &[0b111]);
            sender.step().unwrap();
            assert_eq!(sender.flight.iter().filter(|f| f.sacked).count(), 3);
        });
    });
}

#[test]
fn a_timeout_after_a_sack_sends_again_only_what_the_receiver_lacks() {
    within("the timeout with SACK", || {
        with_a_hole(|peer, to_a, sender| {
            // Only block 5 arrived: too few past 3 and 4 to call them lost.
            sack(peer, to_a, 2, &[0b10]);
            sender.step().unwrap();
            sender.fill_window().unwrap();
            assert_eq!(data_blocks(peer, 2), [7, 8], "the SACK grew the window");
            assert!(nothing_queued(peer), "3 or 4 taken for lost too early");
            // Then silence: one block per timeout, the oldest the receiver lacks.
            sender.step().unwrap();
            sender.fill_window().unwrap();
            assert_eq!(data_blocks(peer, 1), [3]);
            assert!(nothing_queued(peer), "more than one block after a timeout");
            assert!(
                sender
                    .flight
                    .iter()
                    .any(|f| f.block == 5 && f.sacked && !f.lost)
            );
        });
    });
}

#[test]
fn a_receiver_of_version_2_names_its_early_blocks() {
    within("the receiver's SACK", || {
        let dir = tempfile::tempdir().unwrap();
        let (b, peer) = (udp(), udp());
        let settings = settings_v2(16, 10);
        let mut link = Link::new(&b, addr(&peer), &settings);
        let partial = Partial::create(&dir.path().join("target"), false).unwrap();
        let mut receiver = Receiver::new(&mut link, partial, false, &settings, 1000, &quiet);
        let data = |block, data| Packet::Data { block, data }.to_vec();
        receiver.on_packet(&data(3, b"0123456789")).unwrap();
        receiver.on_packet(&data(12, b"0123456789")).unwrap();
        assert_eq!(
            Packet::decode(&next_packet(&peer)),
            Some(Packet::Sack {
                block: 0,
                bits: &[0b10]
            }),
            "block 3: bit 1"
        );
        assert_eq!(
            Packet::decode(&next_packet(&peer)),
            Some(Packet::Sack {
                block: 0,
                bits: &[0b10, 0b100]
            }),
            "blocks 3 and 12: bits 1 and 10"
        );
        receiver.on_packet(&data(1, b"abcdefghij")).unwrap();
        assert_eq!(
            Packet::decode(&next_packet(&peer)),
            Some(Packet::Sack {
                block: 1,
                bits: &[0b1, 0b10]
            }),
            "block 2 is the gap now: 3 is bit 0, 12 bit 9"
        );
        receiver.on_packet(&data(2, b"abcdefghij")).unwrap();
        assert_eq!(
            Packet::decode(&next_packet(&peer)),
            Some(Packet::Sack {
                block: 3,
                bits: &[0b1000_0000]
            }),
            "blocks 1 to 3 in order; 12 is bit 7"
        );
    });
}

#[test]
fn a_receiver_of_version_2_acknowledges_blocks_in_order_together() {
    within("the receiver's grouped ACK", || {
        let dir = tempfile::tempdir().unwrap();
        let (b, peer) = (udp(), udp());
        let settings = settings_v2(16, 10);
        let mut link = Link::new(&b, addr(&peer), &settings);
        let partial = Partial::create(&dir.path().join("target"), false).unwrap();
        let mut receiver = Receiver::new(&mut link, partial, false, &settings, 1000, &quiet);
        for block in 1..=3 {
            let data = Packet::Data {
                block,
                data: b"0123456789",
            }
            .to_vec();
            receiver.on_packet(&data).unwrap();
        }
        // Nothing more is queued: the ACK owed goes out before the receiver waits.
        assert_eq!(receiver.next_packet().unwrap(), None);
        assert_eq!(
            Packet::decode(&next_packet(&peer)),
            Some(Packet::Ack { block: 3 }),
            "the first ACK covers all three"
        );
        assert!(nothing_queued(&peer), "more than one ACK");
        assert_eq!(receiver.got, 30);
    });
}

/// Gives the sender the estimate of a 1 ms round trip with a timeout of a second (as after
/// round trips that varied), for tests that count probes before the timeout. The round trip
/// `with_a_hole` measures is the test thread's own turn around the loop, which a loaded
/// machine stretches and varies; with a second between them, the order is the sender's
/// rule, not the scheduler's.
fn probes_well_before_the_timeout(sender: &mut Sender<'_, '_>) {
    sender.rto = Rto {
        srtt: Some(0.001),
        rttvar: 0.25,
        rto: Duration::from_secs(1),
    };
    assert!(sender.rto.probe().is_some(), "no probe before the timeout");
}

#[test]
fn a_silence_after_a_measured_round_trip_is_probed_before_it_times_out() {
    within("the tail loss probe", || {
        with_a_hole(|peer, _, sender| {
            probes_well_before_the_timeout(sender);
            let (cwnd, rto) = (sender.cwnd, sender.rto.rto);
            // The peer is silent: before any timeout, the oldest block goes again, alone, as
            // many times as probes are allowed (at least once).
            for probe in 1..=MAX_PROBES.max(1) {
                sender.step().unwrap();
                assert_eq!(
                    data_blocks(peer, 1),
                    [3],
                    "no probe {probe} before the timeout"
                );
                assert!(nothing_queued(peer), "more than one block probed");
                assert_eq!(sender.t.retransmitted, u64::from(probe));
                assert_eq!(sender.cwnd, cwnd, "a probe shrank the window");
                assert_eq!(sender.rto.rto, rto, "a probe backed the timeout off");
            }
            // Still silent: no more probes, the timeout and its one block.
            sender.step().unwrap();
            sender.fill_window().unwrap();
            assert_eq!(data_blocks(peer, 1), [3]);
            assert!(nothing_queued(peer), "more than one block after a timeout");
            assert_eq!(sender.cwnd, 1.0, "the timeout starts again from one block");
            assert_eq!(sender.rto.rto, rto * 2);
        });
    });
}

#[test]
fn a_probe_answered_lets_the_window_go_on_where_it_was() {
    within("the answered probe", || {
        with_a_hole(|peer, to_a, sender| {
            // Blocks 3 to 6 arrived, their ACK was lost; the probe (3 again) brings it back.
            sender.step().unwrap();
            assert_eq!(data_blocks(peer, 1), [3]);
            send(peer, to_a, &Packet::Ack { block: 6 });
            sender.step().unwrap();
            sender.fill_window().unwrap();
            let cwnd = sender.cwnd as usize;
            assert!(cwnd > 4, "the window did not grow: {cwnd}");
            let next: Vec<u32> = (7..7 + cwnd as u32).collect();
            assert_eq!(
                data_blocks(peer, cwnd),
                next,
                "new blocks, the window whole"
            );
            assert!(nothing_queued(peer));
            // A later silence may be probed again.
            sender.step().unwrap();
            assert_eq!(data_blocks(peer, 1), [7]);
            assert_eq!(sender.timeouts, 0);
        });
    });
}

#[test]
fn acks_that_deliver_nothing_earn_no_more_probes() {
    within("probes without progress", || {
        with_a_hole(|peer, to_a, sender| {
            probes_well_before_the_timeout(sender);
            // Each probe is answered with the same ACK (below three duplicates): nothing new.
            for _ in 0..MAX_PROBES.max(1) {
                sender.step().unwrap();
                assert_eq!(data_blocks(peer, 1), [3]);
                send(peer, to_a, &Packet::Ack { block: 2 });
                sender.step().unwrap();
            }
            // The next silence is a timeout: no further probe, the window from one block.
            sender.step().unwrap();
            assert!(nothing_queued(peer), "a probe earned by an empty ACK");
            assert_eq!(sender.cwnd, 1.0);
            assert_eq!(sender.timeouts, 1);
        });
    });
}

/// Gives the sender the estimate one measured round trip of 20 ms leaves: a probe after two
/// smoothed round trips (40 ms), a timeout of three (60 ms).
fn a_measured_round_trip_of_20_ms(sender: &mut Sender<'_, '_>) {
    sender.rto = Rto::new();
    sender.rto.sample(Duration::from_millis(20));
    assert_eq!(sender.rto.rto, Duration::from_millis(60));
    assert_eq!(sender.rto.probe(), Some(Duration::from_millis(40)));
}

/// A peer that answers nothing, on a path whose round trip is well above the timeout's floor:
/// every probe goes before the timeout (each restarts it: counted from the oldest block
/// instead, a second probe, four round trips after it, would come after the timeout of
/// three), then one block per timeout, and the sender gives up at timeout MAX_STALLS + 1,
/// without a probe more, within the bound MAX_STALLS states (about 14 s here).
#[test]
fn a_silent_peer_gets_every_probe_before_the_timeout_then_is_given_up() {
    within("a silent peer", || {
        with_a_hole(|peer, _, sender| {
            a_measured_round_trip_of_20_ms(sender);
            let start = Instant::now();
            for probe in 1..=u64::from(MAX_PROBES) {
                sender.step().unwrap();
                assert_eq!(
                    (sender.probes, sender.timeouts),
                    (probe, 0),
                    "(probes, timeouts): probe {probe} did not come before the timeout"
                );
                assert_eq!(data_blocks(peer, 1), [3]);
                assert!(nothing_queued(peer), "more than one block probed");
            }
            let mut timeouts = 0;
            let e = loop {
                if let Err(e) = sender.step() {
                    break e;
                }
                timeouts += 1;
                assert!(
                    timeouts <= MAX_STALLS,
                    "still sending after {timeouts} timeouts"
                );
                assert_eq!(
                    (sender.probes, sender.timeouts),
                    (u64::from(MAX_PROBES), u64::from(timeouts)),
                    "(probes, timeouts): a silence after the probes is a timeout"
                );
                sender.fill_window().unwrap();
                assert_eq!(data_blocks(peer, 1), [3], "timeout {timeouts}");
                assert!(nothing_queued(peer), "more than one block after a timeout");
            };
            assert!(format!("{e:#}").contains("stopped answering"), "{e:#}");
            assert_eq!(timeouts, MAX_STALLS);
            let took = start.elapsed();
            assert!(took < NO_PROGRESS + MAX_RTO, "gave up only after {took:?}");
        });
    });
}

/// SACKs with a cumulative ACK older than the sender's (a liar's, or late) count for
/// nothing: they cannot name the oldest block in flight as held, so the sender always has a
/// block to wait for (a flight held whole, never acknowledged, left it looping without a
/// wait until NO_PROGRESS).
#[test]
fn stale_sacks_cannot_mark_the_oldest_block_held() {
    within("stale SACKs", || {
        with_a_hole(|peer, to_a, sender| {
            for _ in 0..4 {
                sender.fill_window().unwrap();
                while !nothing_queued(peer) {}
                // Blocks 3 to next - 1 are bits 0 to n - 1 past ACK 1.
                let n = (sender.next - 3) as usize;
                let mut bits = vec![0u8; n.div_ceil(8)];
                for k in 0..n {
                    bits[k / 8] |= 1 << (k % 8);
                }
                let before = sender.t.duplicates;
                sack(peer, to_a, 1, &bits);
                sender.step().unwrap();
                assert_eq!(
                    sender.t.duplicates,
                    before + 1,
                    "a stale SACK is a duplicate"
                );
                let front = sender.flight.front().expect("blocks in flight");
                assert!(!front.sacked, "block {} taken as held", front.block);
            }
        });
    });
}

#[test]
fn the_receive_loop_answers_a_request_with_a_cookie_and_serves_only_its_proof() {
    use crate::service::Screen;
    let peer = |a: &str| PeerAddr(a.parse::<std::net::SocketAddr>().unwrap().into());
    let (client, other) = (peer("192.0.2.7:4000"), peer("192.0.2.8:4000"));
    let request = Packet::Read {
        version: Version::V2,
        window: 8,
        block_size: 1408,
        nonce: 31,
        name: "f",
    }
    .to_vec();
    let Screen::Answer(cookie) = screen(&client, &request) else {
        panic!("a request gets its COOKIE at once");
    };
    assert!(
        cookie.len() <= request.len(),
        "a COOKIE larger than the request"
    );
    let Some(Packet::Cookie { nonce: 31, token }) = Packet::decode(&cookie) else {
        panic!("a COOKIE with the request's nonce: {cookie:?}");
    };
    let proof = |token| {
        Packet::Proof {
            token,
            request: &request,
        }
        .to_vec()
    };
    assert!(matches!(screen(&client, &proof(token)), Screen::Serve));
    assert!(
        matches!(screen(&other, &proof(token)), Screen::Ignore(_)),
        "another source"
    );
    assert!(
        matches!(screen(&client, &proof(token ^ 1)), Screen::Ignore(_)),
        "a guess"
    );
    // A whole READ (its header and name) without its padding: shorter than the COOKIE.
    let short = &request[..15];
    assert!(matches!(Packet::decode(short), Some(Packet::Read { .. })));
    assert!(matches!(
        screen(&client, short),
        Screen::Ignore("a request shorter than the COOKIE that would answer it")
    ));
}
