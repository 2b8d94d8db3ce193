//! `netecho ping` through the real binary over loopback: raw sockets as root, the ICMP
//! datagram socket without CAP_NET_RAW (in a network namespace of its own, where the test
//! may set net.ipv4.ping_group_range without touching the host's), the error line when
//! neither socket is allowed, loss when nobody answers, and the shortest interval: refused
//! below it, stopped by a signal and losing nothing at it.

mod common;

use std::process::{Command, Stdio};

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
fn a_host_with_no_route_is_one_line_naming_the_errno_and_exits_2() {
    let test = "a_host_with_no_route_is_one_line_naming_the_errno_and_exits_2";
    // A namespace with loopback alone has no route elsewhere; an `unreachable` route is one
    // the kernel refuses with EHOSTUNREACH.
    for (host, errno) in [
        ("10.112.0.1", "network is unreachable (ENETUNREACH)"),
        ("fd00:112::1", "network is unreachable (ENETUNREACH)"),
        ("10.9.0.1", "no route to host (EHOSTUNREACH)"),
    ] {
        let script = format!(
            "ip route add unreachable 10.9.0.0/16 && exec {} ping -c 1 -W 1s {host}",
            bin()
        );
        let Some(mut cmd) = in_netns(test, &script) else {
            return;
        };
        let out = run(&mut cmd, b"");
        let line = fails(&out, 2);
        let said = format!("connect {host}: {errno}; ");
        assert!(line.contains(&said), "{said:?} missing from: {line}");
        assert!(line.contains("`ip route`"), "{line}");
        assert!(!line.contains("os error"), "{line}");
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
fn an_icmpv6_error_is_printed_and_counted_and_does_not_end_the_run() {
    let test = "an_icmpv6_error_is_printed_and_counted_and_does_not_end_the_run";
    if !can_open_raw(test) || !common::have("nft", test) {
        return;
    }
    // A firewall that rejects echo requests: real ICMPv6 errors, which on IPv6 arrive with
    // the hop limit beside them in the error queue.
    let script = format!(
        "nft add table inet t && \
         nft add chain inet t in '{{ type filter hook input priority 0; }}' && \
         nft add rule inet t in icmpv6 type echo-request reject with icmpv6 type admin-prohibited \
         && exec {} ping -c 2 -i 200ms -W 1s ::1",
        bin()
    );
    let Some(mut cmd) = in_netns(test, &script) else {
        return;
    };
    let out = run(&mut cmd, b"");
    let line = fails(&out, 1);
    assert!(line.contains("2 ICMP error(s)"), "{line}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for seq in [1, 2] {
        let said = format!("From ::1 icmp_seq={seq} Destination unreachable: Administratively");
        assert!(stdout.contains(&said), "{said} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains("2 packets transmitted, 0 received, +2 errors"),
        "{stdout}"
    );
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

/// Answers each echo request on loopback from a raw socket, as argv[1] says: `unreach`
/// (Destination Host Unreachable and Time Exceeded, each quoting the request), `dup` (the
/// first request's reply five times, so every copy is queued before the next reply), `alter`
/// (other data), `big` (the data a thousand times), `choke` (each reply behind 64 big
/// messages of no ping's, sent while ping, whose pid is in the file argv[3], is stopped: its
/// receive buffer overflows) or `hold` (each reply sent while ping is stopped, which it stays
/// for HOLD seconds more: the reply waits that long to be read); makes the file argv[2] once
/// listening. It reads echo requests alone (ICMP_FILTER), so its own messages never fill its
/// buffer.
const RESPONDER: &str = r#"
import os, signal, socket, struct, sys, time
def state(pid):
    return open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[0]
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def icmp(t, c, ident, seq, data):
    h = struct.pack('!BBHHH', t, c, 0, ident, seq) + data
    return h[:2] + struct.pack('!H', csum(h)) + h[4:]
mode = sys.argv[1]
HOLD = 1.5
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
# SOL_RAW (255), ICMP_FILTER (1): a mask of the ICMP types not to read; all but type 8.
s.setsockopt(255, 1, struct.pack('I', ~(1 << 8) & 0xffffffff))
open(sys.argv[2], 'w').close()
while True:
    pkt, addr = s.recvfrom(70000)
    ihl = (pkt[0] & 15) * 4; ic = pkt[ihl:]
    if ic[0] != 8: continue
    ident, seq = struct.unpack('!HH', ic[4:8]); data = ic[8:]
    if mode == 'unreach':
        s.sendto(icmp(3, 1, 0, 0, pkt[:ihl + 8]), addr)
        s.sendto(icmp(11, 0, 0, 0, pkt[:ihl + 8]), addr)
    elif mode == 'dup':
        for _ in range(5 if seq == 1 else 1): s.sendto(icmp(0, 0, ident, seq, data), addr)
    elif mode == 'alter':
        s.sendto(icmp(0, 0, ident, seq, b'Z' * len(data)), addr)
    elif mode == 'big':
        s.sendto(icmp(0, 0, ident, seq, data * 1000), addr)
    elif mode in ('choke', 'hold'):
        pid = int(open(sys.argv[3]).read())
        os.kill(pid, signal.SIGSTOP)
        for _ in range(2000):
            if state(pid) == 'T': break
            time.sleep(0.005)
        if mode == 'choke':
            for _ in range(64): s.sendto(icmp(0, 0, ident ^ 0xffff, 1, b'x' * 60000), addr)
        s.sendto(icmp(0, 0, ident, seq, data), addr)
        if mode == 'hold': time.sleep(HOLD)
        os.kill(pid, signal.SIGCONT)
"#;

/// `ping -c 2 127.0.0.1` in a namespace of its own where the kernel ignores echo requests
/// and [`RESPONDER`] answers them as `mode` says; `None` when that cannot run here.
fn ping_a_responder(test: &str, mode: &str) -> Option<std::process::Output> {
    if !can_open_raw(test) || !common::have("python3", test) {
        return None;
    }
    let dir = common::tempdir();
    let (ready, pid) = (dir.path().join("ready"), dir.path().join("pid"));
    // ping's pid is written before it runs (the shell's own, which exec keeps).
    let script = format!(
        "echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all && \
         {{ python3 -c \"$0\" {mode} {ready} {pid} & py=$!; }} && \
         for i in $(seq 400); do [ -e {ready} ] && break; sleep 0.05; done; \
         sh -c 'echo $$ > {pid}; exec {bin} ping -c 2 -i 200ms -W 2s 127.0.0.1'; rc=$?; \
         kill $py; exit $rc",
        ready = ready.display(),
        pid = pid.display(),
        bin = bin()
    );
    let mut cmd = in_netns(test, &script)?;
    Some(run(cmd.arg(RESPONDER), b""))
}

#[test]
fn icmp_errors_quoting_a_request_are_printed_as_ping_prints_them() {
    let test = "icmp_errors_quoting_a_request_are_printed_as_ping_prints_them";
    let Some(out) = ping_a_responder(test, "unreach") else {
        return;
    };
    let line = fails(&out, 1);
    assert!(line.contains("ICMP error(s)"), "{line}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The run ends at the last request's first error, maybe before its second.
    for (seq, what) in [
        (1, "Destination Host Unreachable"),
        (1, "Time to live exceeded"),
        (2, "Destination Host Unreachable"),
    ] {
        let said = format!("From 127.0.0.1 icmp_seq={seq} {what}");
        assert!(stdout.contains(&said), "{said} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains("2 packets transmitted, 0 received, +"),
        "{stdout}"
    );
    assert!(stdout.contains(" errors, 100% packet loss"), "{stdout}");
}

#[test]
fn duplicate_replies_are_counted_and_flagged() {
    let test = "duplicate_replies_are_counted_and_flagged";
    let Some(out) = ping_a_responder(test, "dup") else {
        return;
    };
    let stdout = ok(&out);
    assert_eq!(
        stdout.matches("icmp_seq=1 ttl=64 (DUP!)").count(),
        4,
        "{stdout}"
    );
    assert!(
        stdout.contains("2 received, +4 duplicates, 0% packet loss"),
        "{stdout}"
    );
}

#[test]
fn replies_with_other_data_are_not_echoes() {
    for mode in ["alter", "big"] {
        let Some(out) = ping_a_responder("replies_with_other_data_are_not_echoes", mode) else {
            return;
        };
        let line = fails(&out, 1);
        assert!(line.contains("not echoes"), "{mode}: {line}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout
                .matches("(wrong data: not the 64 bytes sent)")
                .count(),
            2,
            "{stdout}"
        );
        assert!(stdout.contains("0 received, +2 wrong data"), "{stdout}");
    }
}

#[test]
fn replies_dropped_at_pings_own_receive_buffer_are_named_as_this_hosts_loss() {
    let test = "replies_dropped_at_pings_own_receive_buffer_are_named_as_this_hosts_loss";
    let Some(out) = ping_a_responder(test, "choke") else {
        return;
    };
    let line = fails(&out, 1);
    assert!(
        line.contains("this ping's own receive buffer overflowed") && !line.contains("firewall"),
        "{line}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "ICMP messages were dropped at this ping's own full receive buffer (SO_RXQ_OVFL): \
             the lost replies may be among them, lost on this host and not on the path"
        ),
        "{stdout}"
    );
}

#[test]
fn a_round_trip_ends_when_the_kernel_received_the_reply_not_when_ping_read_it() {
    let test = "a_round_trip_ends_when_the_kernel_received_the_reply_not_when_ping_read_it";
    let Some(out) = ping_a_responder(test, "hold") else {
        return;
    };
    let stdout = ok(&out);
    let times: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.split_once(" time=")?.1.strip_suffix(" ms")?.parse().ok())
        .collect();
    assert_eq!(times.len(), 2, "{stdout}");
    // Each reply came while ping was stopped and stayed unread for the responder's HOLD
    // (1.5 s) after: read on ping's own clock, every round trip would be longer than that.
    assert!(times.iter().all(|t| *t < 1500.0), "{stdout}");
}

#[test]
fn a_multicast_group_is_refused_with_why() {
    for group in ["224.0.0.1", "ff02::1", "ff02::1%lo"] {
        let line = fails(&netecho(&["ping", "-c", "1", group], b""), 2);
        assert!(line.contains("is a multicast group"), "{group}: {line}");
        assert_eq!(line.trim().lines().count(), 1, "{line}");
    }
    // -s past IPv6's limit names the family's own limit.
    let line = fails(&netecho(&["ping", "-s", "70000", "127.0.0.1"], b""), 2);
    assert!(line.contains("at most 65507 data bytes"), "{line}");
}

#[test]
fn an_interval_below_a_millisecond_is_refused_in_one_line() {
    for interval in ["1ns", "10us", "999us"] {
        let out = netecho(&["ping", "-c", "1", "-i", interval, "127.0.0.1"], b"");
        let line = fails(&out, 2);
        assert!(line.contains(&format!("-i {interval}:")), "{line}");
        assert!(line.contains("give -i 1ms or more"), "{line}");
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let line = fails(&netecho(&["ping", "-f", "127.0.0.1"], b""), 2);
    assert!(
        line.contains("does not flood") && line.contains("-i 1ms"),
        "{line}"
    );
}

#[test]
fn a_ping_at_the_shortest_interval_stops_at_a_signal_with_its_summary() {
    let test = "a_ping_at_the_shortest_interval_stops_at_a_signal_with_its_summary";
    if !can_open_raw(test) {
        return;
    }
    for signal in ["INT", "TERM"] {
        let dir = common::tempdir();
        let path = dir.path().join("out");
        // Killed if the test fails before the signal ends it.
        let mut ping = common::Peer(
            Command::new(bin())
                .args(["ping", "-i", "1ms", "127.0.0.1"])
                .stdout(std::fs::File::create(&path).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let stdout = || std::fs::read_to_string(&path).unwrap_or_default();
        // Stopped in its stride: once replies come.
        common::eventually("50 replies", || {
            (stdout().matches(" bytes from ").count() >= 50).then_some(())
        });
        common::signal(ping.0.id(), signal);
        let status = common::wait_exit(&mut ping.0, &format!("ping, after SIG{signal},"));
        let out = stdout();
        assert!(status.success(), "{status:?}\n{out}");
        assert!(out.contains("--- 127.0.0.1 ping statistics ---"), "{out}");
        assert!(out.contains(" packets transmitted, "), "{out}");
        assert!(out.contains("rtt min/avg/max/mdev = "), "{out}");
    }
}

#[test]
fn a_ping_at_the_shortest_interval_loses_nothing_on_loopback() {
    if !can_open_raw("a_ping_at_the_shortest_interval_loses_nothing_on_loopback") {
        return;
    }
    for host in ["127.0.0.1", "::1"] {
        // -W well past any stall of a loaded machine, so a late reply is not lost. A reply
        // dropped at the own buffer (named below, so allowed) is waited for that whole -W
        // after its request: the hang guard is -W on top of 1000 requests sent at a loaded
        // machine's pace, not one step.
        let ping = Command::new(bin())
            .args(["ping", "-q", "-c", "1000", "-i", "1ms", "-W", "10s", host])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = ok(&common::output_within(
            ping,
            &format!("ping -c 1000 -i 1ms {host}"),
            3 * common::STEP,
        ));
        let whole = out.contains("1000 packets transmitted, 1000 received, 0% packet loss");
        // A loss may only be this host's, and then the summary says so.
        let named = out.contains("dropped at this ping's own full receive buffer (SO_RXQ_OVFL)");
        assert!(whole || named, "{out}");
    }
}
