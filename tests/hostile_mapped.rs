//! An IPv6 datagram from another host whose source is IPv4-mapped (::ffff:127.0.0.1): on a
//! dual-stack socket it would read as this host's own 127.0.0.1, past access rules and the
//! checks that trust loopback. Written as an Ethernet frame in a client namespace (root).

mod common;

use std::process::Command;

use common::Server;
use common::netns::Pair;

/// The MAC address of `dev` in the namespace `space`.
fn mac(space: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            space,
            "cat",
            &format!("/sys/class/net/{dev}/address"),
        ])
        .output()
        .expect("ip netns exec");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_forged_ipv4_mapped_source_from_another_host_is_dropped() {
    let test = "a_forged_ipv4_mapped_source_from_another_host_is_dropped";
    let Some(pair) = Pair::new("mp", test) else {
        return;
    };
    let server = Server::start_with(
        &mut pair.server_cmd(&["serve", "--proto", "udp", "--addr", "[::]:0", "-vv"]),
    );
    let port = server.port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/forge_mapped.py");
    let dest = mac(&pair.server, &pair.server_if);
    let forged = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.client,
            "python3",
            script,
            &pair.client_if,
            &dest,
        ])
        .args([
            "::ffff:127.0.0.1",
            "40000",
            Pair::SERVER_V6,
            &port,
            "forged",
        ])
        .status()
        .expect("python3");
    assert!(forged.success(), "the forged frame was not sent");
    // A real client after it: once it is answered, the forged datagram (read first, from
    // the same socket) was dropped or answered.
    let client = pair.client_udp();
    client
        .set_read_timeout(Some(common::STEP))
        .expect("SO_RCVTIMEO");
    client
        .send_to(b"real", (Pair::SERVER_V4, server.port()))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = client.recv(&mut buf).expect("the real client's reply");
    assert_eq!(&buf[..n], b"REAL");
    let log = server.stderr();
    assert!(
        !log.contains("127.0.0.1:40000") && !log.contains("forged"),
        "the forged datagram was taken:\n{log}"
    );
}
