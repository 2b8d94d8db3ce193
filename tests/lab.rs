//! `netecho lab`: every protocol measured side by side, boundaries measured, and nothing
//! left behind.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{can_open_raw, netecho, ok};

fn lab_json() -> serde_json::Value {
    let out = netecho(&["lab", "--quick", "--format", "json"], b"");
    serde_json::from_str(&ok(&out)).expect("lab prints JSON")
}

#[test]
fn quick_lab_measures_every_protocol() {
    let doc = lab_json();
    assert_eq!(doc["schema"], "netecho-lab/1");
    let rows = doc["rows"].as_array().unwrap();
    let names: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["proto"].as_str().unwrap().into(),
                r["family"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut wanted = vec![
        ("tcp", "AF_INET"),
        ("tcp", "AF_INET6"),
        ("udp", "AF_INET"),
        ("udp", "AF_INET6"),
        ("unix", "AF_UNIX"),
        ("unix-dgram", "AF_UNIX"),
        ("unix-seqpacket", "AF_UNIX"),
    ];
    // Raw rows come with CAP_NET_RAW; can_open_raw says on stderr when they cannot.
    if can_open_raw("quick_lab_measures_every_protocol (raw rows)") {
        wanted.extend([("raw", "AF_INET"), ("raw", "AF_INET6")]);
    }
    for want in wanted {
        assert!(
            names.contains(&(want.0.into(), want.1.into())),
            "{want:?} missing: {names:?}"
        );
    }
    for row in rows {
        let proto = row["proto"].as_str().unwrap();
        assert!(row["messages_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["latency_us"]["p50"].as_u64().unwrap() >= 1, "{row}");
        assert!(row["setup_us"].as_u64().unwrap() >= 1, "{row}");
        assert!(!row["why"].as_str().unwrap().is_empty());
        assert_eq!(row["ordered"], true, "{row}");
        // Datagram and seqpacket sockets never merge messages: one read per send, measured.
        if proto != "tcp" && proto != "unix" {
            assert_eq!(row["boundaries_kept"], true, "{row}");
            assert_eq!(row["burst_reads"], 50, "{row}");
        } else {
            assert!(row["burst_reads"].as_u64().unwrap() <= 50, "{row}");
        }
        // Unix datagrams are never lost in flight, and a stream never loses anything.
        if proto != "udp" {
            assert_eq!(row["lost"], 0, "{row}");
        }
    }
    for b in doc["boundaries"].as_array().unwrap() {
        let framing = b["framing"].as_str().unwrap();
        assert_eq!(b["sends"], 50);
        if framing != "none" {
            assert_eq!(b["messages"], 50, "a framing recovers every message: {b}");
        }
    }
}

#[test]
fn lab_draws_a_well_formed_plot() {
    let dir = common::tempdir();
    let path = dir.path().join("latency.svg");
    let out = netecho(&["lab", "--quick", "--plot", path.to_str().unwrap()], b"");
    let table = ok(&out);
    assert!(table.contains("unix-seqpacket"), "{table}");
    assert!(table.contains("Message boundaries"), "{table}");
    let svg = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let curves = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    // Two raw rows (IPv4, IPv6) join the seven when raw sockets may be opened.
    let raw = can_open_raw("lab_draws_a_well_formed_plot (raw curves)");
    assert_eq!(curves, if raw { 9 } else { 7 }, "one curve per protocol");
}

/// The temporary directory a lab process makes.
fn lab_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("netecho-{pid}"))
}

#[test]
fn lab_cleans_up_after_itself_and_after_ctrl_c() {
    let out = Command::new(common::bin())
        .args(["lab", "--quick"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = out.id();
    let mut out = out;
    let status = common::wait_exit_within(&mut out, "lab --quick", Duration::from_secs(60));
    assert!(status.success());
    assert!(!lab_dir(pid).exists(), "the lab left its directory behind");

    // Interrupted in the middle: the directory and the servers go too.
    let mut lab = Command::new(common::bin())
        .arg("lab")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = lab_dir(lab.id());
    let deadline = Instant::now() + common::STEP;
    while !dir.exists() {
        assert!(
            Instant::now() < deadline,
            "the lab never made its directory"
        );
        thread::sleep(Duration::from_millis(10));
    }
    // In the middle: once its servers run.
    let children = common::eventually("the lab's servers", || {
        Some(child_pids(lab.id())).filter(|c| !c.is_empty())
    });
    Command::new("kill")
        .args(["-INT", &lab.id().to_string()])
        .status()
        .unwrap();
    let status = common::wait_exit(&mut lab, "the lab, after SIGINT,");
    assert!(!status.success());
    assert!(!dir.exists(), "{} left behind", dir.display());
    for pid in children {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "server {pid} still running"
        );
    }
}

/// Processes whose parent is `pid`.
fn child_pids(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
