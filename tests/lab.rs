//! `netecho lab`: every protocol measured side by side, boundaries measured, and nothing
//! left behind.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{can_open_raw, netecho, ok};

/// Held by every test that runs a lab. A raw socket receives every packet of its IP protocol
/// on the machine, so two labs at once answer each other's raw requests (replies twice, out
/// of order): the labs of this file take turns.
fn one_lab_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LAB.lock().unwrap_or_else(|e| e.into_inner())
}

/// `netecho ARGS` (a lab run) to its end: a whole lab measures for some seconds, and a
/// loaded machine makes that several times longer, so it has 120 s, not one step's 20.
fn lab(args: &[&str]) -> std::process::Output {
    let child = Command::new(common::bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the lab");
    common::output_within(child, &format!("netecho {args:?}"), common::LAB_RUN)
}

fn lab_json() -> serde_json::Value {
    let out = lab(&["lab", "--quick", "--format", "json"]);
    serde_json::from_str(&ok(&out)).expect("lab prints JSON")
}

#[test]
fn quick_lab_measures_every_protocol() {
    let _turn = one_lab_at_a_time();
    let doc = lab_json();
    assert_eq!(doc["schema"], "netecho-lab/3");
    let rows = doc["rows"].as_array().unwrap();
    assert_every_protocol_has_a_row(rows);
    for row in rows {
        assert_row_is_consistent(row);
    }
    for b in doc["boundaries"].as_array().unwrap() {
        let framing = b["framing"].as_str().unwrap();
        assert_eq!(b["sends"], 50);
        if framing != "none" {
            assert_eq!(b["messages"], 50, "a framing recovers every message: {b}");
        }
    }
}

fn assert_every_protocol_has_a_row(rows: &[serde_json::Value]) {
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
        ("tls", "AF_INET"),
        ("quic", "AF_INET"),
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
}

/// One row's figures agree with each other and its sentence with its protocol.
fn assert_row_is_consistent(row: &serde_json::Value) {
    let proto = row["proto"].as_str().unwrap();
    assert!(row["messages_per_s"].as_f64().unwrap() > 0.0, "{row}");
    assert!(row["latency_us"]["p50"].as_f64().unwrap() >= 1.0, "{row}");
    // latency_us are the percentiles of all round trips together: p50 never above p90.
    // The table's p50, the median of the rounds' p50s, has a name of its own.
    let p50 = |key: &str| row["latency_us"][key].as_f64().unwrap();
    assert!(p50("p50") <= p50("p90"), "{row}");
    let rounds: Vec<f64> = row["p50_rounds_us"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let median = row["median_round_p50_us"].as_f64().unwrap();
    if let Some(&upper) = rounds.get(rounds.len() / 2) {
        // Of an even count, the mean of the middle two: never the upper one alone.
        let middle = match rounds.len() % 2 {
            1 => upper,
            _ => (upper + rounds[rounds.len() / 2 - 1]) / 2.0,
        };
        // Each round's p50 is listed in whole microseconds, the median to a tenth.
        assert!((median - middle).abs() <= 1.0, "{row}");
    }
    // Every round is either among the p50s or left out of them, and told of.
    let left_out = row["rounds_left_out"].as_u64().unwrap() as usize;
    assert_eq!(rounds.len() + left_out, 3, "{row}");
    // Each load round's msg/s, so a stalled one shows; raw's load is one run.
    let loads = row["messages_per_s_rounds"].as_array().map(Vec::len);
    let raw = proto.starts_with("raw");
    assert_eq!(loads, (!raw).then_some(3), "{row}");
    // Which load the msg/s is of: raw's is one request at a time.
    assert_eq!(row["in_flight"].as_u64() == Some(1), raw, "{row}");
    assert!(row["setup_us"].as_u64().unwrap() >= 1, "{row}");
    assert!(!row["why"].as_str().unwrap().is_empty());
    if proto == "quic" {
        assert_quic_sentence(row);
    } else {
        assert_eq!(row["ordered"], true, "{row}");
    }
    // Datagram and seqpacket sockets never merge messages: one read per send, measured;
    // nor do QUIC's streams. TLS is a stream of records, which merge as tcp's bytes do. IP
    // datagrams (udp, raw) may be lost at a full receive buffer on a busy machine: a read
    // per datagram that came, never more.
    let lossy = proto == "udp" || proto == "raw";
    let reads = row["burst_reads"].as_u64().unwrap();
    if proto != "tcp" && proto != "unix" && proto != "tls" {
        assert_eq!(row["boundaries_kept"], true, "{row}");
        assert!(reads == 50 || (lossy && reads <= 50), "{row}");
    } else {
        assert!(reads <= 50, "{row}");
    }
    // Unix datagrams are never lost in flight, and a stream never loses anything.
    if !lossy {
        assert_eq!(row["lost"], 0, "{row}");
    }
}

fn assert_quic_sentence(row: &serde_json::Value) {
    // A stream per message: each stream is ordered, the streams among themselves
    // are not, and the sentence says which it was.
    let why = row["why"].as_str().unwrap();
    assert_eq!(
        row["ordered"] == false,
        why.contains("not the streams among themselves"),
        "{row}"
    );
    // Its server asks every new client for a Retry (tests/quic.rs shows it): the
    // setup the row times is two round trips, and the sentence says so.
    assert!(why.contains("(a Retry)"), "{row}");
    assert!(why.contains("two round trips of setup"), "{row}");
}

#[test]
fn lab_draws_a_well_formed_plot() {
    let _turn = one_lab_at_a_time();
    let dir = common::tempdir();
    let path = dir.path().join("latency.svg");
    // An older plot there: replaced, as asked.
    std::fs::write(&path, "last week's plot").unwrap();
    let out = lab(&[
        "lab",
        "--quick",
        "--force",
        "--plot",
        path.to_str().unwrap(),
    ]);
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
    // Two raw rows (IPv4, IPv6) join the nine (tls and quic among them) when raw sockets
    // may be opened.
    let raw = can_open_raw("lab_draws_a_well_formed_plot (raw curves)");
    assert_eq!(curves, if raw { 11 } else { 9 }, "one curve per protocol");
    // The curves pool every round's round trips; the table's p50 is the rounds' median:
    // the caption says which, so a curve's 50% that differs from p50 is no surprise.
    let caption: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("caption"))
        .filter_map(|n| n.text())
        .collect();
    let caption = caption.join(" ");
    assert!(
        caption.contains("every ping-pong round trip of the row's 3 rounds together"),
        "{caption}"
    );
    assert!(
        caption.contains("The table's p50 is the median of the rounds' p50s"),
        "{caption}"
    );
    assert!(caption.contains("can differ from it"), "{caption}");
}

#[test]
fn html_and_plot_never_write_through_a_symlink_nor_over_a_file_unless_forced() {
    let planted = common::Planted::new();
    for (flag, name) in [
        ("--html", "link"),
        ("--plot", "dangling"),
        ("--html", "mine"),
    ] {
        let path = planted.at(name);
        // Refused before anything is measured: no turn needed.
        let line = common::fails(&lab(&["lab", "--quick", flag, path.to_str().unwrap()]), 1);
        assert!(line.contains("already exists"), "{name}: {line}");
        assert!(line.contains(&format!("({flag}) or add --force")), "{line}");
    }
    planted.untouched();
    let mine = std::fs::read_to_string(planted.at("mine")).unwrap();
    assert_eq!(mine, "my own work");
    let line = common::fails(
        &lab(&["lab", "--quick", "--plot", "/dev/null", "--force"]),
        1,
    );
    assert!(line.contains("not a regular file"), "{line}");
}

/// The temporary directory a lab process made, once it is there.
fn lab_dir(pid: u32) -> Option<PathBuf> {
    common::run_dir(&std::env::temp_dir(), pid)
}

#[test]
fn lab_cleans_up_after_itself_and_after_ctrl_c() {
    let _turn = one_lab_at_a_time();
    // Its stderr goes to a file, read only if it fails: nothing to drain while it runs.
    let (logs, tmp) = (common::tempdir(), common::tempdir());
    let log = logs.path().join("stderr");
    let mut out = Command::new(common::bin())
        .args(["lab", "--quick"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = common::wait_exit_within(&mut out, "lab --quick", common::LAB_RUN);
    assert!(
        status.success(),
        "lab --quick: {status}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the lab left {left:?} behind");

    // Interrupted in the middle: the directory and the servers go too.
    let mut lab = common::with_sigint(&mut Command::new(common::bin()), false)
        .arg("lab")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = common::eventually("the lab's directory", || lab_dir(lab.id()));
    // In the middle: once its servers run.
    let children = common::eventually("the lab's servers", || {
        Some(common::child_pids(lab.id())).filter(|c| !c.is_empty())
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

#[test]
fn a_lab_killed_with_sigkill_takes_its_servers_with_it() {
    let _turn = one_lab_at_a_time();
    let mut lab = Command::new(common::bin())
        .arg("lab")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let servers: Vec<(u32, u64)> = common::eventually("the lab's servers", || {
        let found: Vec<_> = common::child_pids(lab.id())
            .into_iter()
            .filter_map(|pid| Some((pid, common::running_since(pid)?)))
            .collect();
        Some(found).filter(|c| !c.is_empty())
    });
    lab.kill().unwrap();
    common::wait_exit(&mut lab, "the lab, after SIGKILL,");
    // Each server ends within a step; one still running is killed here, not left behind.
    let deadline = Instant::now() + common::STEP;
    let mut left = servers.clone();
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|&(pid, since)| common::running_since(pid) == Some(since));
        thread::sleep(Duration::from_millis(20));
    }
    for &(pid, _) in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    // What a SIGKILL cannot clean: the next run would.
    if let Some(dir) = lab_dir(lab.id()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    assert!(
        left.is_empty(),
        "{} of the lab's {} servers outlived it: {left:?}",
        left.len(),
        servers.len()
    );
}

/// Lines of `text` wider than 80 columns.
fn too_wide(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.chars().count() > 80).collect()
}

#[test]
fn the_quick_lab_table_fits_eighty_columns_and_wide_keeps_every_column() {
    let _turn = one_lab_at_a_time();
    let table = ok(&lab(&["lab", "--quick"]));
    assert_eq!(too_wide(&table), Vec::<&str>::new(), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("proto  "), "{table}");
    // Each row's line, then its sentence indented under it.
    let row = lines.iter().position(|l| l.starts_with("udp6 ")).unwrap();
    assert!(lines[row + 1].starts_with("    udp over IPv6"), "{table}");
    assert!(table.contains("times in us"), "{table}");
    assert!(table.contains("Message boundaries"), "{table}");
    let wide = ok(&lab(&["lab", "--quick", "--wide"]));
    assert!(wide.starts_with("proto           family    type"), "{wide}");
    assert!(wide.lines().next().unwrap().contains("msgs/s"), "{wide}");
}

#[test]
fn lab_reports_carry_metadata_and_the_csv_the_boundaries_table() {
    let _turn = one_lab_at_a_time();
    let doc = lab_json();
    let meta = &doc["meta"];
    assert_eq!(meta["netecho_version"], env!("CARGO_PKG_VERSION"));
    for field in ["host", "kernel", "date_utc", "command"] {
        assert!(!meta[field].as_str().unwrap().is_empty(), "{meta}");
    }
    assert!(meta["cores"].as_u64().unwrap() >= 1, "{meta}");
    assert!(meta["date_utc"].as_str().unwrap().ends_with('Z'), "{meta}");
    assert!(
        meta["command"]
            .as_str()
            .unwrap()
            .ends_with("lab --quick --format json"),
        "{meta}"
    );
    assert_eq!(meta["parameters"]["quick"], true, "{meta}");
    assert_eq!(meta["parameters"]["rounds"], 3, "{meta}");
    let csv = ok(&lab(&["lab", "--quick", "--format", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    let head: Vec<&str> = lines[0].split(',').collect();
    for column in [
        "kind",
        "why",
        "p50_rounds_us",
        "framing",
        "host",
        "command",
        "param_rounds",
    ] {
        assert!(head.contains(&column), "{column} missing: {}", lines[0]);
    }
    let boundary = lines.iter().filter(|l| l.starts_with("boundary,")).count();
    assert_eq!(boundary, 6, "three framings over tcp and unix: {csv}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("protocol,unix-seqpacket,")),
        "{csv}"
    );
}

/// The rows of a quick lab as (name, each round's p50 as listed).
fn p50_rounds() -> Vec<(String, Vec<u64>)> {
    let doc = lab_json();
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let rounds: Vec<u64> = r["p50_rounds_us"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            (format!("{} {}", r["proto"], r["family"]), rounds)
        })
        .collect()
}

#[test]
fn runs_report_the_same_rows_in_the_same_order_each_with_its_rounds() {
    let _turn = one_lab_at_a_time();
    // Which protocol is faster is a measurement, and a loaded machine turns it around: the
    // order by p50 across runs is bench/timing.sh's table. What a run reports is asserted:
    // the same rows in the same order every time, each with its rounds' p50s in order
    // (a row may have none: a round too short for a p50 on a loaded machine).
    let runs: Vec<_> = (0..2).map(|_| p50_rounds()).collect();
    let names = |run: &Vec<(String, Vec<u64>)>| -> Vec<String> {
        run.iter().map(|(name, _)| name.clone()).collect()
    };
    assert_eq!(names(&runs[0]), names(&runs[1]), "{runs:?}");
    for (name, rounds) in runs.iter().flatten() {
        assert!(
            rounds.windows(2).all(|w| w[0] <= w[1]),
            "{name}'s rounds are not listed lowest first: {rounds:?}"
        );
    }
}

/// Runs `cmd` to its end or for at most `limit`; its status and stdout and stderr.
fn bounded(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let dir = common::tempdir();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran over {limit:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    (status.success(), read(&out), read(&err))
}

/// Headless Chromium over `page`: what it says of the page with `args`.
fn chromium(page: &std::path::Path, profile: &std::path::Path, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1024,2600",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    let (ok, out, err) = bounded(&mut cmd, common::LAB_RUN);
    assert!(ok, "chromium failed: {err}");
    (out, err)
}

#[test]
fn the_report_page_renders_in_a_browser_with_nothing_to_fetch_or_overflow() {
    let _turn = one_lab_at_a_time();
    let dir = common::tempdir();
    let page = dir.path().join("report.html");
    let out = lab(&[
        "lab",
        "--quick",
        "--format",
        "json",
        "--html",
        page.to_str().unwrap(),
    ]);
    let doc: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing in it names anything to fetch.
    for fetch in [
        "src=", "href=", "url(", "@import", "<link", "<img", "<iframe",
    ] {
        assert!(!html.contains(fetch), "{fetch} in the page");
    }
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    for row in doc["rows"].as_array().unwrap() {
        let why = escape(row["why"].as_str().unwrap());
        assert!(html.contains(&why), "sentence missing: {why}");
    }
    for part in [
        "<table",
        "<svg",
        "99.9%",
        "Message boundaries",
        "lab --quick --format json",
    ] {
        assert!(html.contains(part), "{part} missing");
    }
    if Command::new("chromium").arg("--version").output().is_err() {
        common::skip(
            "the_report_page_renders_in_a_browser_with_nothing_to_fetch_or_overflow (browser)",
            "chromium (Debian package chromium) to load the page headless",
            common::Lacks::Provided,
        );
        return;
    }
    let profile = dir.path().join("profile");
    let shot = dir.path().join("report.png");
    let (dom, log) = chromium(&page, &profile, &["--dump-dom"]);
    assert!(
        dom.contains("data-checked=\"yes\""),
        "the page's script did not run: {log}"
    );
    assert!(
        dom.contains("data-overflow=\"\""),
        "something is wider than its box: {dom}"
    );
    assert!(dom.contains("<table") && dom.contains("<svg") && dom.contains("<polyline"));
    for bad in ["Uncaught", "CONSOLE", "ERR_"] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(bad)).collect();
        assert!(lines.is_empty(), "console or load errors: {lines:?}");
    }
    let shot_arg = format!("--screenshot={}", shot.display());
    chromium(&page, &profile, &[&shot_arg]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}

#[test]
fn the_models_side_by_side_each_with_a_sentence_that_follows_its_numbers() {
    let _turn = one_lab_at_a_time();
    let out = lab(&["lab", "--quick", "--models", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(doc["schema"], "netecho-lab-models/1");
    assert_eq!(doc["meta"]["parameters"]["models"], true);
    let models = doc["models"].as_array().unwrap();
    let names: Vec<&str> = models
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["iterative", "threads", "event", "fork", "uring"]);
    for m in models {
        assert!(m["one_messages_per_s"].as_f64().unwrap() > 0.0, "{m}");
        let why = m["why"].as_str().unwrap();
        let failed = m["many_failed_clients"].as_u64().unwrap();
        // The iterative model's others wait behind its first client: no fault to explain.
        let waited = match m["model"] == "iterative" {
            true => format!("{failed} waited in the backlog behind it"),
            false => format!("{failed} gave up"),
        };
        if failed > 0 {
            assert!(why.contains(&waited), "{m}");
            if m["model"] == "iterative" {
                assert!(!why.contains("--timeout"), "lab has no --timeout: {m}");
            }
        } else if m["many_lost"] == 0 {
            assert!(why.contains("were all answered"), "{m}");
        }
    }
    // One client at a time: while the first holds the server, the others wait for good.
    assert!(
        models[0]["many_failed_clients"].as_u64().unwrap() > 0,
        "{}",
        models[0]
    );
    for m in models {
        let served = m["many_served_clients"].as_u64().unwrap();
        let failed = m["many_failed_clients"].as_u64().unwrap();
        assert_eq!(served + failed, 16, "{m}");
    }
    let table = ok(&lab(&["lab", "--quick", "--models"]));
    assert_eq!(too_wide(&table), Vec::<&str>::new(), "{table}");
    assert!(table.starts_with("model "), "{table}");
    // The row and its sentence agree on how many of the 16 were served.
    let iterative = table.lines().find(|l| l.starts_with("iterative ")).unwrap();
    let served = iterative.split_whitespace().last().unwrap();
    let (n, of) = served.split_once('/').unwrap_or_else(|| panic!("{table}"));
    assert_eq!(of, "16", "{table}");
    let said = match n {
        "16" => "were all answered".to_string(),
        "1" => "only 1 was served".to_string(),
        n => format!("only {n} were served"),
    };
    let flat = table.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&said), "{said:?} missing:\n{table}");
}

#[test]
fn lab_help_lists_only_what_the_lab_takes_and_the_server_flags_are_refused() {
    let help = ok(&netecho(&["lab", "--help"], b""));
    let lists = |flag: &str| {
        help.lines()
            .any(|l| l.split_whitespace().next() == Some(flag))
    };
    for flag in [
        "--tls",
        "--ca",
        "--pin",
        "--insecure",
        "--tls-version",
        "--server-name",
    ] {
        assert!(lists(flag), "{flag} missing:\n{help}");
    }
    // A lab run presents no certificate, and prints one report at the end.
    for absent in ["--cert", "--key"] {
        assert!(!lists(absent), "{absent} listed:\n{help}");
    }
    assert!(!help.contains("ndjson"), "{help}");
    // Words as written, wherever the help's width wrapped them.
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("[possible values: table, json, csv]"),
        "{help}"
    );
    for flags in [
        &["--cert", "c.pem"][..],
        &["--key", "k.pem"],
        &["--cert", "c.pem", "--key", "k.pem"],
    ] {
        let args = [&["lab", "--tls", "--insecure"], flags, &["127.0.0.1:9"]].concat();
        let line = common::fails(&netecho(&args, b""), 2);
        assert!(
            line.contains(&format!("unexpected argument '{}'", flags[0])),
            "{line}"
        );
    }
}

/// A temporary directory as deep as a student's home can make it, for TMPDIR: the lab's
/// socket files, and its status lines, name it (a Unix socket path still fits 108 bytes).
fn long_tmpdir() -> (tempfile::TempDir, PathBuf) {
    let dir = common::tempdir();
    let deep = dir
        .path()
        .join("home-of-student-with-a-rather-long-user-name/tmp");
    std::fs::create_dir_all(&deep).unwrap();
    (dir, deep)
}

/// `lab --quick` on an 80-column terminal (`script` gives it one: its status lines show, as
/// a class sees them), `prefix` before netecho on the command line: what the terminal
/// showed, whole and a line each. Fails unless the lab succeeded.
fn quick_lab_on_a_terminal(prefix: &str) -> (String, Vec<String>) {
    let (_dir, tmp) = long_tmpdir();
    let cmd = format!("{prefix}{} lab --quick", common::bin());
    let child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("COLUMNS", "80")
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let out = common::output_within(child, "lab --quick on a terminal", common::LAB_RUN);
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    let lines = common::screen_lines(&screen);
    (screen, lines)
}

#[test]
fn on_an_80_column_terminal_every_line_fits_and_each_row_is_named_as_the_table_names_it() {
    let _turn = one_lab_at_a_time();
    let (screen, lines) = quick_lab_on_a_terminal("");
    let wide: Vec<&String> = lines.iter().filter(|l| l.chars().count() > 80).collect();
    assert!(wide.is_empty(), "wider than 80 columns: {wide:#?}");
    // The status lines ran (the path of the unix rows' sockets among them), each row called
    // by its table name: the tls row is not a second tcp. One count for every row, the raw
    // rows too when this run may open raw sockets.
    let raw = lines.iter().any(|l| l.contains("raw 127.0.0.1"));
    let n = if raw { 11 } else { 9 };
    let steps: Vec<&String> = lines.iter().filter(|l| l.starts_with("lab: [")).collect();
    assert!(
        steps.iter().all(|l| l.contains(&format!("/{n}] "))),
        "{steps:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("lab: [5/{n}] unix "))),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("lab: [8/{n}] tls 127.0.0.1")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("lab: [2/{n}] tcp6 [::1]")),
        "{lines:#?}"
    );
    if raw {
        assert!(
            lines.iter().any(|l| l == "lab: [11/11] raw ::1"),
            "{lines:#?}"
        );
    }
    // Loopback loses nothing: a TCP resend there is no loss.
    assert!(!screen.contains("the loss shows"), "{screen}");
    // The boundaries table says every byte came back, and that its bursts are its own.
    assert!(screen.contains("reads  bytes  messages"), "{screen}");
    assert!(
        screen.contains("each line is a burst of its own"),
        "{screen}"
    );
}

/// `lab` (as `cmd` starts it) with `tmp` for TMPDIR, to its end.
fn lab_with_tmpdir(cmd: &mut Command, tmp: &std::path::Path, what: &str) -> std::process::Output {
    let child = cmd
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::output_within(child, what, common::LAB_RUN)
}

#[test]
fn without_raw_sockets_the_lab_says_so_within_80_columns() {
    if !common::can_drop_net_raw("without_raw_sockets_the_lab_says_so_within_80_columns") {
        return;
    }
    let _turn = one_lab_at_a_time();
    let (_dir, tmp) = long_tmpdir();
    let mut lab = common::without_net_raw(&["lab", "--quick", "--format", "json"]);
    let out = lab_with_tmpdir(&mut lab, &tmp, "lab without CAP_NET_RAW");
    let doc: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("lab: raw rows skipped"), "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    // The report says it too: the rows it lacks, and why.
    let left_out = doc["left_out"].to_string();
    assert!(
        left_out.contains("raw, raw6: not measured: this run cannot open raw sockets"),
        "{doc}"
    );
    assert_eq!(too_wide(&err), Vec::<&str>::new(), "{err}");
    // Every byte of each boundaries burst came back, however the reads cut it.
    for b in doc["boundaries"].as_array().unwrap() {
        assert_eq!(b["bytes"], 800, "{b}");
    }
}

/// The status line has no newline: a log line written after it, unless it is cleared
/// first, starts on the same line of the screen, glued to it and wider than the terminal.
/// Without raw sockets the lab warns while its status line shows the last row.
#[test]
fn a_warning_on_a_terminal_clears_the_status_line_before_it() {
    if !common::can_drop_net_raw("a_warning_on_a_terminal_clears_the_status_line_before_it") {
        return;
    }
    let _turn = one_lab_at_a_time();
    let setpriv = format!("setpriv {} ", common::NO_NET_RAW.join(" "));
    let (screen, lines) = quick_lab_on_a_terminal(&setpriv);
    assert!(screen.contains("raw rows skipped"), "{screen}");
    let glued: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("lab: [") && (l.contains(" WARN ") || l.contains(" INFO ")))
        .collect();
    assert!(
        glued.is_empty(),
        "a status line and a log line on one line: {glued:#?}"
    );
    // The warning sits on a line of its own, its tag first; the rows it left out are
    // named under the table too.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(" WARN lab: raw rows skipped")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("- raw, raw6: not measured")),
        "{lines:#?}"
    );
}

#[test]
fn ctrl_c_in_the_middle_of_a_row_says_only_that_the_lab_stopped() {
    let _turn = one_lab_at_a_time();
    // The clean-up stops the servers under the measurement: what fails then is no reason
    // to measure again, nor to say so. The moment is a race, so three interruptions.
    for _ in 0..3 {
        let logs = common::tempdir();
        let log = logs.path().join("stderr");
        let mut lab = common::with_sigint(&mut Command::new(common::bin()), false)
            .args(["lab", "--quick"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        common::eventually("the lab's unix row", || {
            lab_dir(lab.id()).filter(|dir| dir.join("unix.sock").exists())
        });
        thread::sleep(Duration::from_millis(100));
        Command::new("kill")
            .args(["-INT", &lab.id().to_string()])
            .status()
            .unwrap();
        let status = common::wait_exit(&mut lab, "the lab, after SIGINT,");
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(common::shell_status(&status), 130, "{err}");
        assert!(err.contains("stopped by SIGINT"), "{err}");
        assert!(!err.contains("measuring it once more"), "{err}");
    }
}

#[test]
fn a_tmpdir_too_long_for_unix_socket_paths_is_said_in_one_line_before_measuring() {
    let _turn = one_lab_at_a_time();
    // 81 bytes: the lab's directory and its unix.sock fit a socket address, its
    // unix-seqpacket.sock does not.
    let dir = common::tempdir();
    let base = dir.path().as_os_str().len();
    let tmp = dir.path().join("x".repeat(80 - base));
    std::fs::create_dir_all(&tmp).unwrap();
    assert_eq!(tmp.as_os_str().len(), 81);
    let mut lab = Command::new(common::bin());
    lab.args(["lab", "--quick"]);
    let out = lab_with_tmpdir(&mut lab, &tmp, "lab with a long TMPDIR");
    let line = common::fails(&out, 1);
    assert!(
        line.contains("TMPDIR is too long for Unix socket paths")
            && line.contains("run with TMPDIR=/tmp"),
        "{line}"
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("said \"\""), "{err}");
    // Nothing was measured, and the lab's directory is gone.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(common::listing(&tmp), Vec::<String>::new());
}
