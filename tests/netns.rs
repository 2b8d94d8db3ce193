//! `lab --netns`: real loss between two network namespaces, and nothing left behind, also
//! after Ctrl-C. Needs root; skipped with a reason otherwise.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Lacks, bin, eventually, netecho, skip};

/// A `lab --netns` run: its whole measurement, its set-up and its clean-up. A hang guard,
/// not a speed: under --loss a QUIC row's handshake (a Retry first, then the handshake) may
/// lose packets, time out after 5 s and be measured once more, on a loaded machine.
const LAB_RUN: Duration = Duration::from_secs(180);

/// Whether this test process may create network namespaces; what it needs when not.
fn can_make_namespaces(tag: &str) -> Result<(), (String, Lacks)> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(("root to create network namespaces".into(), Lacks::Provided));
    }
    // A name per test: tests of this file run in parallel.
    let probe = format!("netecho-probe-{}-{tag}", std::process::id());
    let made = Command::new("ip").args(["netns", "add", &probe]).output();
    match made {
        Ok(out) if out.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            Ok(())
        }
        // Root, and the kernel still says no: a container without CAP_SYS_ADMIN.
        Ok(out) => Err((
            format!(
                "the right to create network namespaces; ip netns add failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Lacks::Environment,
        )),
        Err(e) => Err((format!("ip (iproute2): {e}"), Lacks::Provided)),
    }
}

/// What a lab run of process `pid` may have left: its namespaces, veth ends, nft tables.
fn leftovers(pid: u32) -> Vec<String> {
    let text = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let mut found = Vec::new();
    let ns = text(&["ip", "netns", "list"]);
    found.extend(
        ns.lines()
            .filter(|l| l.contains(&format!("netecho-{pid}")))
            .map(String::from),
    );
    let links = text(&["ip", "-o", "link"]);
    found.extend(
        links
            .lines()
            .filter(|l| l.contains(&format!("ne{pid}")))
            .map(String::from),
    );
    let tables = text(&["nft", "list", "tables"]);
    found.extend(
        tables
            .lines()
            .filter(|l| l.contains("netecho"))
            .map(String::from),
    );
    found
}

#[test]
fn each_note_under_the_table_names_its_row_as_the_table_does_within_80_columns() {
    let test = "each_note_under_the_table_names_its_row_as_the_table_does_within_80_columns";
    if let Err((needs, lacks)) = can_make_namespaces("names") {
        skip(test, &needs, lacks);
        return;
    }
    // Without --loss: nothing drops a packet, and the notes must not say anything was lost.
    let (out, _) = lab_netns(&["--quick"]);
    let (table, log) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{log}");
    let wide: Vec<&str> = table
        .lines()
        .chain(log.lines())
        .filter(|l| l.chars().count() > 80)
        .collect();
    assert!(wide.is_empty(), "wider than 80 columns: {wide:#?}");
    let lines: Vec<&str> = table.lines().collect();
    let rows: Vec<&str> = lines[1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        rows,
        ["tcp", "tcp6", "udp", "udp6", "tls", "quic"],
        "{table}"
    );
    // A note about a row starts with its name and a colon; every row has one, in order.
    let named: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("- ")?.split_once(':'))
        .map(|(name, _)| name)
        .filter(|name| !name.contains(' '))
        .collect();
    assert_eq!(named, rows, "{table}");
    assert!(!table.contains("the loss shows"), "{table}");
}

#[test]
fn real_loss_shows_as_retransmits_on_tcp_and_gaps_on_udp_and_leaves_nothing() {
    let test = "real_loss_shows_as_retransmits_on_tcp_and_gaps_on_udp_and_leaves_nothing";
    let Some((out, pid)) = lab_json(test, "loss", &["--loss", "5%"]) else {
        return;
    };
    let log = String::from_utf8_lossy(&out.stderr);
    let wide: Vec<&str> = log.lines().filter(|l| l.chars().count() > 80).collect();
    assert!(wide.is_empty(), "wider than 80 columns: {wide:#?}");
    // The lab's own servers' warnings about its own clients (a QUIC handshake the client
    // gave up on under the loss) are counted in a note, not shown as they came.
    let about_a_client = log.lines().find(|l| l.contains(" WARN quic "));
    assert!(about_a_client.is_none(), "{log}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows_cross_the_veth_pair_over_both_families(&doc);
    if log.contains("nftables unavailable") {
        skip(
            &format!("{test} (the loss half)"),
            &format!(
                "nft (nftables) for real loss; the lab ran without it, as it said: {}",
                log.lines()
                    .find(|l| l.contains("nftables"))
                    .unwrap_or_default()
            ),
            Lacks::Provided,
        );
    } else {
        the_loss_shows_in_the_rows(&doc);
        the_notes_tell_the_loss(&doc);
    }
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// `lab --netns ARGS` to its end (within [`LAB_RUN`]): its output and its pid.
fn lab_netns(args: &[&str]) -> (std::process::Output, u32) {
    let child = Command::new(bin())
        .args(["lab", "--netns"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let what = format!("lab --netns {}", args.join(" "));
    (common::output_within(child, &what, LAB_RUN), pid)
}

/// `lab --netns ARGS --quick --format json` of `test` to its end (within [`LAB_RUN`]),
/// successful, and its pid; `None`, the test skipped, where namespaces cannot be made.
fn lab_json(test: &str, tag: &str, args: &[&str]) -> Option<(std::process::Output, u32)> {
    if let Err((needs, lacks)) = can_make_namespaces(tag) {
        skip(test, &needs, lacks);
        return None;
    }
    let (out, pid) = lab_netns(&[args, &["--quick", "--format", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out, pid))
}

/// A slow link (tc tbf, 1 Mbit/s each way): the tcp row's pipelined load moves far fewer
/// messages than its round trips allow, round after round, and its sentence says the
/// link's bytes a second bound it, with the bytes a second it measured.
#[test]
fn a_slow_links_rows_name_its_bytes_a_second_as_what_bounds_msg_s() {
    let test = "a_slow_links_rows_name_its_bytes_a_second_as_what_bounds_msg_s";
    let Some((out, pid)) = lab_json(test, "rate", &["--rate", "1mbit"]) else {
        return;
    };
    let log = String::from_utf8_lossy(&out.stderr);
    if log.contains("tc tbf unavailable") {
        return skip(test, "tc tbf for a rate", Lacks::Provided);
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tcp = row(&doc, "tcp", "AF_INET");
    let why = tcp["why"].as_str().unwrap();
    assert!(
        why.contains("msg/s measures the path's bytes a second, not round trips"),
        "{tcp}"
    );
    // 1 Mbit/s with the headers of each packet (and tbf's bucket at a round's start): the
    // replies' own bytes, about that.
    let mbit: f64 = why
        .split(" Mbit/s")
        .next()
        .and_then(|before| before.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Mbit/s in {why}"));
    assert!(mbit > 0.0 && mbit < 2.0, "{why}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// The first row of a lab's JSON report for `proto`.
fn first<'d>(doc: &'d serde_json::Value, proto: &str) -> &'d serde_json::Value {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["proto"] == proto)
        .unwrap_or_else(|| panic!("no {proto} row: {doc}"))
}

/// The row of a lab's JSON report for `proto` over `family` (AF_INET, AF_INET6).
fn row<'d>(doc: &'d serde_json::Value, proto: &str, family: &str) -> &'d serde_json::Value {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["proto"] == proto && r["family"] == family)
        .unwrap_or_else(|| panic!("no {proto} row over {family}: {doc}"))
}

/// Every row that crosses machines runs over IPv4 and over IPv6, across the veth pair.
fn rows_cross_the_veth_pair_over_both_families(doc: &serde_json::Value) {
    for proto in ["tcp", "udp"] {
        let r = row(doc, proto, "AF_INET6");
        assert!(
            r["address"].as_str().unwrap().starts_with("[fd00:233::1]:"),
            "{r}"
        );
        assert!(r["sent"].as_u64().unwrap() > 0, "{r}");
    }
    let tcp = first(doc, "tcp");
    assert_eq!(tcp["family"], "AF_INET", "{tcp}");
    assert!(
        doc["netns"][0].as_str().unwrap().contains("fd00:233::2"),
        "{doc}"
    );
}

/// Under 5% loss each way, over both families: TCP resent and the program lost nothing,
/// UDP lost datagrams (not merged), quic resent; the sentences follow what was measured.
fn the_loss_shows_in_the_rows(doc: &serde_json::Value) {
    let (tcp, udp) = (first(doc, "tcp"), first(doc, "udp"));
    let why = |r: &serde_json::Value| r["why"].as_str().unwrap().to_string();
    assert!(why(tcp).contains("TCP resent"), "{tcp}");
    assert!(why(tcp).contains("nothing lost of"), "{tcp}");
    let lost = format!("{} of {} lost", udp["lost"], udp["sent"]);
    assert!(why(udp).contains(&lost), "{udp}");
    assert!(why(udp).contains("lost on the way"), "{udp}");
    // Each lost request held its place for the timeout: udp's msg/s is those waits.
    assert!(why(udp).contains("held its place for 500 ms"), "{udp}");
    assert!(!why(udp).contains("nothing lost"), "{udp}");
    assert_eq!(
        udp["boundaries_kept"], true,
        "lost datagrams are not merged: {udp}"
    );
    let burst_lost = udp["burst_lost"].as_u64().unwrap();
    if burst_lost > 0 {
        let said = format!("{burst_lost} of 50 burst datagrams lost, none merged");
        assert!(why(udp).contains(&said), "{udp}");
    }
    // Hundreds of segments at 5% each way, and nftables' inet table drops both families.
    let six = |proto| row(doc, proto, "AF_INET6");
    for (tcp, udp) in [(tcp, udp), (six("tcp"), six("udp"))] {
        assert!(
            tcp["tcp_info"]["retransmits"].as_u64().unwrap() > 0,
            "{tcp}"
        );
        assert_eq!(tcp["lost"], 0, "{tcp}");
        assert!(udp["lost"].as_u64().unwrap() > 0, "{udp}");
    }
    let rows = doc["rows"].as_array().unwrap();
    let quic = rows.iter().find(|r| r["proto"] == "quic").unwrap();
    assert!(rows.iter().any(|r| r["proto"] == "tls"), "{rows:?}");
    assert_eq!(quic["lost"], 0, "{quic}");
}

/// The notes under the rows: the loss is of wire packets, not of 64 KB offload bursts that
/// one drop takes whole, and a sentence compares the messages of one tcp connection with
/// quic's streams.
fn the_notes_tell_the_loss(doc: &serde_json::Value) {
    let notes: Vec<&str> = doc["netns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("drops 5% of the packets") && n.contains("packet by packet")),
        "{notes:?}"
    );
    let hol = notes
        .iter()
        .find(|n| n.starts_with("head-of-line blocking"))
        .expect("the head-of-line sentence");
    let verdicts = [
        "tcp's messages waited",
        "quic's messages waited",
        "about the same",
    ];
    assert!(verdicts.iter().any(|v| hol.contains(v)), "{hol}");
}

/// Held by the tests that stop a lab in the middle: each looks for servers another left.
fn one_stop_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static STOP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    STOP.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn ctrl_c_in_the_middle_removes_everything() {
    if let Err((needs, lacks)) = can_make_namespaces("ctrl-c") {
        skip("ctrl_c_in_the_middle_removes_everything", &needs, lacks);
        return;
    }
    let _turn = one_stop_at_a_time();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = common::with_sigint(&mut Command::new(bin()), false)
        .args(["lab", "--netns", "--loss", "5%"])
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the namespaces exist and the servers in them run, then interrupt.
    eventually("the lab's namespaces", || {
        (leftovers(pid).len() >= 2).then_some(())
    });
    eventually("the lab's servers in the namespaces", || {
        (!common::child_pids(pid).is_empty()).then_some(())
    });
    let sent = Command::new("kill")
        .args(["-s", "INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = common::wait_exit(&mut child, "the lab, after SIGINT,");
    let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert_eq!(common::shell_status(&status), 130, "stderr:\n{stderr}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
    // A server started at the moment of the signal is stopped too, never left running.
    assert_eq!(orphaned_lab_servers(), Vec::<String>::new());
}

/// A `lab --netns` started in the background, once its namespaces exist.
fn netns_lab() -> std::process::Child {
    let child = common::with_sigint(&mut Command::new(bin()), false)
        .args(["lab", "--netns", "--loss", "5%"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    eventually("the lab's namespaces", || {
        (leftovers(pid).len() >= 2).then_some(())
    });
    child
}

#[test]
fn sigkill_leaves_no_server_running_and_the_next_run_deletes_the_namespaces() {
    let test = "sigkill_leaves_no_server_running_and_the_next_run_deletes_the_namespaces";
    if let Err((needs, lacks)) = can_make_namespaces("sigkill") {
        skip(test, &needs, lacks);
        return;
    }
    let _turn = one_stop_at_a_time();
    let mut lab = netns_lab();
    let pid = lab.id();
    let servers: Vec<(u32, u64)> = eventually("the lab's servers in the namespaces", || {
        let found: Vec<_> = common::child_pids(pid)
            .into_iter()
            .filter_map(|p| Some((p, common::running_since(p)?)))
            .collect();
        Some(found).filter(|f| !f.is_empty())
    });
    lab.kill().unwrap();
    common::wait_exit(&mut lab, "the lab, after SIGKILL,");
    eventually("each of the lab's servers to end", || {
        let left: Vec<_> = servers
            .iter()
            .filter(|&&(p, since)| common::running_since(p) == Some(since))
            .collect();
        left.is_empty().then_some(())
    });
    assert_eq!(orphaned_lab_servers(), Vec::<String>::new());
    // A namespace of the lab's pattern that no lab made (of a pid that is gone): left alone.
    let foreign = format!("netecho-{}00-srv", gone_pid());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &foreign])
            .status()
            .unwrap()
            .success()
    );
    // SIGKILL ran no clean-up: the next lab deletes what this one left before it makes its own.
    let mut next = netns_lab();
    let stale = leftovers(pid);
    Command::new("kill")
        .args(["-s", "INT", &next.id().to_string()])
        .status()
        .unwrap();
    common::wait_exit(&mut next, "the next lab, after SIGINT,");
    for name in stale.iter().filter_map(|l| l.split_whitespace().next()) {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
    let kept = std::path::Path::new("/run/netns").join(&foreign).exists();
    let _ = Command::new("ip").args(["netns", "del", &foreign]).status();
    assert_eq!(stale, Vec::<String>::new(), "left by the killed lab");
    assert!(kept, "the next lab deleted {foreign}, which no lab made");
}

/// The pid of a process that has ended.
fn gone_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Servers of this build that a `lab --netns` started (on the addresses only it uses) and
/// that now have no parent: what a lab that lost track of one would leave running.
fn orphaned_lab_servers() -> Vec<String> {
    let exe = std::fs::canonicalize(bin()).unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let orphan = status
            .lines()
            .any(|l| l.split_whitespace().eq(["PPid:", "1"]));
        let ours = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe);
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let lab = cmd.contains("10.233.0.") || cmd.contains("fd00:233::");
        if orphan && ours && lab && cmd.contains(" serve ") {
            found.push(format!("{pid}: {cmd}"));
        }
    }
    found
}

#[test]
fn without_root_the_lab_says_so() {
    let out = netecho(&["lab", "--loss", "5%"], b"");
    common::fails(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--netns"), "{err}");
    if !common::can_switch_user() {
        skip(
            "without_root_the_lab_says_so (the unprivileged run)",
            "root and setpriv (util-linux) to run the lab as nobody",
            Lacks::Provided,
        );
        return;
    }
    let out = common::run(&mut common::as_nobody(&["lab", "--netns"]), b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("needs root"), "{line}");
}

/// Namespaces a test made, deleted when dropped (also after a failed assertion).
struct Made(Vec<String>);

impl Drop for Made {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

#[test]
fn a_namespace_of_the_name_the_lab_picks_is_never_its_to_delete() {
    let test = "a_namespace_of_the_name_the_lab_picks_is_never_its_to_delete";
    if let Err((needs, lacks)) = can_make_namespaces("taken") {
        skip(test, &needs, lacks);
        return;
    }
    for side in ["srv", "cli"] {
        lab_among_taken_names(side);
    }
}

/// Runs `lab --netns` after every name it can pick for one `side`'s namespace
/// (netecho-PIDxx-SIDE, xx a byte of the clock) was made by the shell that then becomes
/// the lab, keeping its pid: none of them is deleted, and the lab says why it gives up.
fn lab_among_taken_names(side: &str) {
    let script = format!(
        "for h in $(printf '%02x ' $(seq 0 255)); do ip netns add netecho-$$$h-{side} || exit 3; \
         done; exec {} lab --netns --quick",
        bin()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let made = Made(
        (0..=255)
            .map(|h| format!("netecho-{pid}{h:02x}-{side}"))
            .collect(),
    );
    let out = common::output_within(child, "the lab", LAB_RUN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let lost: Vec<&String> = made
        .0
        .iter()
        .filter(|n| !names.contains(&n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{side}: the lab deleted namespaces it did not make: {lost:?}"
    );
    assert_eq!(out.status.code(), Some(1), "{side}: stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{side}: {stderr}");
    assert!(stderr.contains("did not make"), "{side}: {stderr}");
    drop(made);
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "{side}: left by the lab"
    );
}

/// The lab's own --loss drops nearly every packet (99.99% each way): the tcp handshake gets
/// no answer, and the one error line names the loss the lab set as the cause and what to
/// do, never a firewall or a host that is down; nothing on stdout, nothing left behind.
#[test]
fn a_loss_no_handshake_gets_through_is_said_to_be_the_labs_own() {
    let test = "a_loss_no_handshake_gets_through_is_said_to_be_the_labs_own";
    if let Err((needs, lacks)) = can_make_namespaces("all-lost") {
        skip(test, &needs, lacks);
        return;
    }
    let (out, pid) = lab_netns(&["--loss", "99.99%", "--quick"]);
    let log = String::from_utf8_lossy(&out.stderr);
    let line = common::fails(&out, 1);
    assert!(
        line.contains("the tcp handshake with 10.233.0.1:"),
        "{line}"
    );
    assert!(
        line.contains("got no answer through the --loss 99.99% this lab set: use a lower --loss"),
        "{line}"
    );
    assert!(!log.contains("firewall"), "{log}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(leftovers(pid), Vec::<String>::new());
}
