//! `netecho ping` through the real binary over loopback: raw sockets as root, the ICMP
//! datagram socket without CAP_NET_RAW (in a network namespace of its own, where the test
//! may set net.ipv4.ping_group_range without touching the host's), the error line when
//! neither socket is allowed, and loss when nobody answers.

mod common;

use std::process::Command;

use common::{bin, can_drop_net_raw, can_open_raw, fails, netecho, ok, run};

fn assert_no_loss(out: &str, count: usize, how: &str) {
    assert!(out.contains(how), "{how:?} missing from:\n{out}");
    assert_eq!(out.matches(" bytes from ").count(), count, "{out}");
    for seq in 1..=count {
        assert!(out.contains(&format!("icmp_seq={seq} ttl=")), "{out}");
    }
    assert!(
        out.contains(&format!(
            "{count} packets transmitted, {count} received, 0% packet loss"
        )),
        "{out}"
    );
    assert!(out.contains("rtt min/avg/max/mdev = "), "{out}");
}

#[test]
fn ping_loopback_over_ipv4_and_ipv6_loses_nothing() {
    if !can_open_raw("ping_loopback_over_ipv4_and_ipv6_loses_nothing") {
        return;
    }
    for host in ["127.0.0.1", "::1"] {
        let out = ok(&netecho(&["ping", "-c", "3", "-i", "200ms", host], b""));
        assert!(
            out.starts_with(&format!("PING {host} ({host}): 56 data bytes")),
            "{out}"
        );
        assert_no_loss(&out, 3, "raw socket");
    }
    // -s sets the data size: each reply line counts the 8-byte ICMP header too.
    let out = ok(&netecho(&["ping", "-c", "1", "-s", "1000", "::1"], b""));
    assert!(out.contains("1008 bytes from ::1"), "{out}");
}

/// `sh -c SCRIPT` in a new network namespace with its loopback up; `None` (and a reason
/// on stderr) when namespaces cannot be made here.
fn in_netns(test: &str, script: &str) -> Option<Command> {
    let probe = Command::new("unshare")
        .args(["--net", "--", "ip", "link", "set", "lo", "up"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        other => {
            // Root with both commands present and still refused: a container without
            // CAP_SYS_ADMIN, which no install step can give.
            let provided = nix::unistd::Uid::effective().is_root()
                && matches!(&other, Ok(o) if o.status.code() != Some(127));
            common::skip(
                test,
                &format!(
                    "unshare (util-linux), ip (iproute2) and root to make a network namespace; \
                     here: {other:?}"
                ),
                if provided {
                    common::Lacks::Environment
                } else {
                    common::Lacks::Provided
                },
            );
            return None;
        }
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--", "sh", "-c"])
        .arg(format!("ip link set lo up && {script}"));
    Some(cmd)
}

#[test]
fn ping_without_cap_net_raw_uses_the_icmp_datagram_socket() {
    let test = "ping_without_cap_net_raw_uses_the_icmp_datagram_socket";
    if !can_drop_net_raw(test) {
        return;
    }
    for host in ["127.0.0.1", "::1"] {
        // ping_group_range belongs to the namespace: the host's stays as it is.
        let script = format!(
            "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range && exec setpriv \
             --bounding-set=-net_raw --inh-caps=-net_raw -- {} ping -c 2 -i 200ms {host}",
            bin()
        );
        let Some(mut cmd) = in_netns(test, &script) else {
            return;
        };
        assert_no_loss(
            &ok(&run(&mut cmd, b"")),
            2,
            "ICMP datagram socket (no CAP_NET_RAW)",
        );
    }
}

#[test]
fn ping_without_any_icmp_socket_says_what_is_missing() {
    let test = "ping_without_any_icmp_socket_says_what_is_missing";
    if !can_drop_net_raw(test) {
        return;
    }
    // The range is set in a namespace of the test's own, so the host's setting (Docker's
    // default lets every group in) cannot turn this into a test of the fallback: "1 0" is
    // the kernel's own default, no group may open an ICMP datagram socket.
    let script = format!(
        "echo '1 0' > /proc/sys/net/ipv4/ping_group_range && exec setpriv \
         --bounding-set=-net_raw --inh-caps=-net_raw -- {} ping -c 1 127.0.0.1",
        bin()
    );
    let Some(mut cmd) = in_netns(test, &script) else {
        return;
    };
    let line = fails(&run(&mut cmd, b""), 1);
    for part in [
        "no CAP_NET_RAW",
        "EACCES",
        "net.ipv4.ping_group_range",
        "run as root",
        "setcap cap_net_raw+ep",
        "sysctl -w net.ipv4.ping_group_range",
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
}

#[test]
fn ping_counts_loss_when_nobody_answers() {
    let test = "ping_counts_loss_when_nobody_answers";
    if !can_open_raw(test) {
        return;
    }
    // In a namespace of its own, loopback is told to ignore echo requests.
    let script = format!(
        "echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all && exec {} ping -c 2 -i 100ms \
         -W 300ms 127.0.0.1",
        bin()
    );
    let Some(mut cmd) = in_netns(test, &script) else {
        return;
    };
    let out = run(&mut cmd, b"");
    let line = fails(&out, 1);
    assert!(
        line.contains("no reply from 127.0.0.1: 2 echo request(s) lost"),
        "{line}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{stdout}"
    );
    assert!(!stdout.contains("rtt"), "{stdout}");
}

#[test]
fn ping_bad_input_is_a_usage_error() {
    let line = fails(&netecho(&["ping", "127.0.0.1:80"], b""), 2);
    assert!(line.contains("no port"), "{line}");
    let line = fails(&netecho(&["ping", "-s", "65520", "127.0.0.1"], b""), 2);
    assert!(line.contains("at most 65507 data bytes"), "{line}");
    let line = fails(&netecho(&["ping", "-c", "0", "::1"], b""), 2);
    assert!(line.contains("-c"), "{line}");
    let line = fails(&netecho(&["ping", "-i", "soon", "::1"], b""), 2);
    assert!(line.contains("not a duration"), "{line}");
}

#[test]
fn a_link_local_address_is_pinged_through_the_interface_its_zone_names() {
    let test = "a_link_local_address_is_pinged_through_the_interface_its_zone_names";
    // A veth pair in the namespace: each end has its own fe80:: address once the link is up
    // (no duplicate detection in a namespace of our own; still wait, bounded, until both ends
    // have theirs).
    let script = format!(
        "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad && \
         ip link add ne-va type veth peer name ne-vb && ip link set ne-va up && \
         ip link set ne-vb up && for i in $(seq 100); do \
         [ \"$(ip -6 addr show scope link | grep -v tentative | grep -c 'inet6 fe80')\" = 2 ] \
         && break; sleep 0.05; done; \
         peer=$(ip -6 addr show dev ne-vb | grep -o 'fe80[^/]*') && \
         {bin} ping -c 1 \"$peer\" ; echo \"bare: $?\"; \
         exec {bin} ping -c 2 -i 200ms \"$peer%ne-va\"",
        bin = bin()
    );
    let Some(mut cmd) = in_netns(test, &script) else {
        return;
    };
    let out = run(&mut cmd, b"");
    let text = ok(&out);
    assert_no_loss(&text, 2, "%ne-va (fe80::");
    assert!(text.contains("bare: 2"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is link-local") && err.contains("%eth0"),
        "{err}"
    );
}

#[test]
fn a_link_local_address_without_a_zone_is_one_readable_line() {
    let line = fails(&netecho(&["ping", "-c", "1", "fe80::1"], b""), 2);
    assert!(line.contains("so name the one to ping through"), "{line}");
    assert!(!line.contains("  "), "a run of spaces: {line:?}");
}
