//! `lab --netns`: real loss between two network namespaces, and nothing left behind, also
//! after Ctrl-C. Needs root; skipped with a reason otherwise.

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{bin, netecho};

/// Whether this test process may create network namespaces; the reason when not.
fn can_make_namespaces(tag: &str) -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root to create network namespaces".into());
    }
    // A name per test: tests of this file run in parallel.
    let probe = format!("netecho-probe-{}-{tag}", std::process::id());
    let made = Command::new("ip").args(["netns", "add", &probe]).output();
    match made {
        Ok(out) if out.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            Ok(())
        }
        Ok(out) => Err(format!(
            "ip netns add failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("no ip command: {e}")),
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
fn real_loss_shows_as_retransmits_on_tcp_and_gaps_on_udp_and_leaves_nothing() {
    if let Err(why) = can_make_namespaces("loss") {
        eprintln!("skipped: {why}");
        return;
    }
    let child = Command::new(bin())
        .args([
            "lab", "--netns", "--loss", "5%", "--quick", "--format", "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    let tcp = rows.iter().find(|r| r["proto"] == "tcp").unwrap();
    let udp = rows.iter().find(|r| r["proto"] == "udp").unwrap();
    if log.contains("nftables unavailable") {
        eprintln!("nftables missing here: the lab ran without loss, as it said: {log}");
    } else {
        // Hundreds of segments at 5% each way: TCP retransmitted and the program lost nothing.
        assert!(
            tcp["tcp_info"]["retransmits"].as_u64().unwrap() > 0,
            "{tcp}"
        );
        assert_eq!(tcp["lost"], 0, "{tcp}");
        assert!(udp["lost"].as_u64().unwrap() > 0, "{udp}");
    }
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn ctrl_c_in_the_middle_removes_everything() {
    if let Err(why) = can_make_namespaces("ctrl-c") {
        eprintln!("skipped: {why}");
        return;
    }
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(bin())
        .args(["lab", "--netns", "--loss", "5%"])
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the namespaces exist, then interrupt.
    let deadline = Instant::now() + common::STEP;
    while leftovers(pid).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the lab never made its namespaces"
        );
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill")
        .args(["-s", "INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + common::STEP;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the lab did not stop on SIGINT");
        thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn without_root_the_lab_says_so() {
    let out = netecho(&["lab", "--loss", "5%"], b"");
    common::fails(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--netns"), "{err}");
    if !common::can_switch_user() {
        eprintln!("skipped the unprivileged run: needs root and setpriv to become nobody");
        return;
    }
    let out = common::run(&mut common::as_nobody(&["lab", "--netns"]), b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("needs root"), "{line}");
}
