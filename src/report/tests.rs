//! Every format pinned against an exact expected text.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::*;

fn run() -> Run {
    let p = |base: u64| Percentiles {
        p50: base as f64,
        p90: (base * 2) as f64,
        p99: (base * 3) as f64,
        p99_9: (base * 4) as f64,
        max: (base * 5) as f64,
        mean: base as f64 + 0.5,
    };
    Run {
        proto: "udp".into(),
        address: "[::1]:3234".into(),
        clients: 2,
        size: 64,
        window: 1,
        duration_s: Some(1.0),
        count: None,
        elapsed_s: 1.001,
        sent: 1000,
        answered: 998,
        bytes: 63872,
        requests_per_s: 997.0,
        mb_per_s: 0.06,
        latency_us: Some(p(10)),
        connect_us: p(3),
        lost: 2,
        duplicated: 0,
        reordered: 1,
        late: 0,
        mismatched: 0,
        failed_clients: 0,
        rxq_overflow: 0,
        rcvbuf_errors: Some(0),
        send_errors: 0,
        loss_cause: Some(Cause::Unseen),
        stall: None,
        stopped: None,
        found: Vec::new(),
        idle: false,
    }
}

#[test]
fn table() {
    let expected = "\
proto  address     clients  size  window  requests_per_s  mb_per_s  mean_us  p50_us  p99_us  p99_9_us  max_us  connect_p50_us  sent  answered  lost  duplicated  reordered  mismatched  failed_clients
udp    [::1]:3234        2    64       1             997      0.06     10.5      10      30        40      50               3  1000       998     2           0          1           0               0
";
    assert_eq!(render(Format::Table, &[run()]), expected);
}

#[test]
fn csv() {
    let expected = "\
proto,address,clients,size,window,requests_per_s,mb_per_s,mean_us,p50_us,p99_us,p99_9_us,max_us,connect_p50_us,sent,answered,lost,duplicated,reordered,mismatched,failed_clients,\
duration_s,count,elapsed_s,bytes,p90_us,connect_p90_us,connect_p99_us,connect_p99_9_us,connect_max_us,connect_mean_us,late,rxq_overflow,rcvbuf_errors,send_errors,loss_cause,stopped,\
stall_silent_s,stall_from_s,stall_to_s
udp,[::1]:3234,2,64,1,997,0.06,10.5,10,30,40,50,3,1000,998,2,0,1,0,0,\
1,,1.001,63872,20,6,9,12,15,3.5,0,0,0,0,unseen,,,,
";
    assert_eq!(render(Format::Csv, &[run()]), expected);
    let mut odd = run();
    odd.address = "/tmp/a,\"b\".sock".into();
    assert!(render(Format::Csv, &[odd]).contains(",\"/tmp/a,\"\"b\"\".sock\","));
}

#[test]
fn json() {
    let text = render(Format::Json, &[run()]);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["schema"], "netecho-bench/2");
    let r = &value["runs"][0];
    assert_eq!(r["proto"], "udp");
    assert_eq!(r["address"], "[::1]:3234");
    assert_eq!(r["duration_s"], 1.0);
    assert_eq!(r["count"], serde_json::Value::Null);
    assert_eq!(r["latency_us"]["p99_9"], 40);
    assert_eq!(r["latency_us"]["mean"], 10.5);
    assert_eq!(r["lost"], 2);
    assert_eq!(r["loss_cause"], "unseen");
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "proto",
            "address",
            "clients",
            "size",
            "window",
            "duration_s",
            "count",
            "elapsed_s",
            "sent",
            "answered",
            "bytes",
            "requests_per_s",
            "mb_per_s",
            "latency_us",
            "connect_us",
            "lost",
            "duplicated",
            "reordered",
            "late",
            "mismatched",
            "failed_clients",
            "rxq_overflow",
            "rcvbuf_errors",
            "send_errors",
            "loss_cause",
            "stall"
        ]
    );
}

#[test]
fn csv_quotes_a_field_with_a_comma_or_a_quote() {
    let mut odd = run();
    odd.address = "/tmp/a,\"b\".sock".into();
    let expected = "\
proto,address,clients,size,window,requests_per_s,mb_per_s,mean_us,p50_us,p99_us,p99_9_us,max_us,connect_p50_us,sent,answered,lost,duplicated,reordered,mismatched,failed_clients,\
duration_s,count,elapsed_s,bytes,p90_us,connect_p90_us,connect_p99_us,connect_p99_9_us,connect_max_us,connect_mean_us,late,rxq_overflow,rcvbuf_errors,send_errors,loss_cause,stopped,\
stall_silent_s,stall_from_s,stall_to_s
udp,\"/tmp/a,\"\"b\"\".sock\",2,64,1,997,0.06,10.5,10,30,40,50,3,1000,998,2,0,1,0,0,\
1,,1.001,63872,20,6,9,12,15,3.5,0,0,0,0,unseen,,,,
";
    assert_eq!(render(Format::Csv, &[odd]), expected);
}

/// A result of another shape, as the lab's rows are: text columns, then numbers.
struct Note {
    name: &'static str,
    text: &'static str,
    count: u64,
}

fn note_columns() -> Vec<Column<Note>> {
    vec![
        Column::left("name", |n| n.name.to_string()),
        Column::left("text", |n| n.text.to_string()),
        Column::right("count", |n| n.count.to_string()),
    ]
}

fn notes() -> Vec<Note> {
    vec![
        Note {
            name: "plain",
            text: "one",
            count: 1,
        },
        Note {
            name: "comma",
            text: "a,b",
            count: 22,
        },
        Note {
            name: "quote",
            text: "say \"hi\"",
            count: 333,
        },
        Note {
            name: "lines",
            text: "x\ny",
            count: 0,
        },
    ]
}

#[test]
fn csv_of_any_columns_follows_rfc_4180() {
    let expected = "\
name,text,count
plain,one,1
comma,\"a,b\",22
quote,\"say \"\"hi\"\"\",333
lines,\"x
y\",0
";
    assert_eq!(csv::render(&note_columns(), &notes()), expected);
}

#[test]
fn table_of_text_and_number_columns_with_notes_under_it() {
    let rows = &notes()[..3];
    let mut text = table::render(&note_columns(), rows);
    text.push_str(&table::notes(rows.iter().map(|n| n.name)));
    let expected = "\
name   text      count
plain  one           1
comma  a,b          22
quote  say \"hi\"    333
- plain
- comma
- quote
";
    assert_eq!(text, expected);
}

#[test]
fn json_text() {
    let expected = "\
{
  \"schema\": \"netecho-bench/2\",
  \"runs\": [
    {
      \"proto\": \"udp\",
      \"address\": \"[::1]:3234\",
      \"clients\": 2,
      \"size\": 64,
      \"window\": 1,
      \"duration_s\": 1.0,
      \"count\": null,
      \"elapsed_s\": 1.001,
      \"sent\": 1000,
      \"answered\": 998,
      \"bytes\": 63872,
      \"requests_per_s\": 997.0,
      \"mb_per_s\": 0.06,
      \"latency_us\": {
        \"p50\": 10,
        \"p90\": 20,
        \"p99\": 30,
        \"p99_9\": 40,
        \"max\": 50,
        \"mean\": 10.5
      },
      \"connect_us\": {
        \"p50\": 3,
        \"p90\": 6,
        \"p99\": 9,
        \"p99_9\": 12,
        \"max\": 15,
        \"mean\": 3.5
      },
      \"lost\": 2,
      \"duplicated\": 0,
      \"reordered\": 1,
      \"late\": 0,
      \"mismatched\": 0,
      \"failed_clients\": 0,
      \"rxq_overflow\": 0,
      \"rcvbuf_errors\": 0,
      \"send_errors\": 0,
      \"loss_cause\": \"unseen\",
      \"stall\": null
    }
  ]
}
";
    assert_eq!(render(Format::Json, &[run()]), expected);
}

/// Round trips of 10, 20, 30 and 1000 us, in nanoseconds, held exactly enough that each
/// prints as its whole number of microseconds.
fn histogram() -> Histogram<u64> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 10_000_000, 5).unwrap();
    for us in [10, 20, 30, 1000] {
        latency.record(us * 1000).unwrap();
    }
    latency
}

#[test]
fn ndjson_summary_and_interval_lines() {
    let expected = "\
{\"schema\":\"netecho-bench-ndjson/3\",\"type\":\"summary\",\"proto\":\"udp\",\"address\":\"[::1]:3234\",\"clients\":2,\"size\":64,\"window\":1,\"duration_s\":1.0,\"count\":null,\"elapsed_s\":1.001,\"sent\":1000,\"answered\":998,\"bytes\":63872,\"requests_per_s\":997.0,\"mb_per_s\":0.06,\"latency_us\":{\"p50\":10,\"p90\":20,\"p99\":30,\"p99_9\":40,\"max\":50,\"mean\":10.5},\"connect_us\":{\"p50\":3,\"p90\":6,\"p99\":9,\"p99_9\":12,\"max\":15,\"mean\":3.5},\"lost\":2,\"duplicated\":0,\"reordered\":1,\"late\":0,\"mismatched\":0,\"failed_clients\":0,\"rxq_overflow\":0,\"rcvbuf_errors\":0,\"send_errors\":0,\"loss_cause\":\"unseen\",\"stall\":null}
";
    assert_eq!(render(Format::Ndjson, &[run()]), expected);
    let interval = Interval {
        index: 2,
        start: Duration::from_millis(2000),
        end: Duration::from_millis(3000),
        sent: 500,
        answered: 499,
        bytes: 31936,
        lost: 1,
        latency: histogram(),
    };
    let expected = "\
{\"schema\":\"netecho-bench-ndjson/3\",\"type\":\"interval\",\"proto\":\"udp\",\"address\":\"[::1]:3234\",\"interval\":2,\"start_s\":2.0,\"end_s\":3.0,\"sent\":500,\"answered\":499,\"bytes\":31936,\"requests_per_s\":499.0,\"mb_per_s\":0.03,\"lost\":1,\"latency_us\":{\"p50\":20,\"p90\":1000,\"p99\":1000,\"p99_9\":1000,\"max\":1000,\"mean\":265.0}}
";
    assert_eq!(ndjson::interval("udp", "[::1]:3234", &interval), expected);
}

#[test]
fn svg_text() {
    let expected = "\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"420\" viewBox=\"0 0 720 420\" font-family=\"sans-serif\" font-size=\"12\">
<rect width=\"100%\" height=\"100%\" fill=\"white\"/>
<text x=\"300\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">rtt</text>
<path d=\"M60,40 V370 H540\" fill=\"none\" stroke=\"black\"/>
<line x1=\"60.0\" y1=\"40\" x2=\"60.0\" y2=\"370\" stroke=\"#ddd\"/><text x=\"60.0\" y=\"386\" text-anchor=\"middle\">10 µs</text>
<line x1=\"300.0\" y1=\"40\" x2=\"300.0\" y2=\"370\" stroke=\"#ddd\"/><text x=\"300.0\" y=\"386\" text-anchor=\"middle\">100 µs</text>
<line x1=\"540.0\" y1=\"40\" x2=\"540.0\" y2=\"370\" stroke=\"#ddd\"/><text x=\"540.0\" y=\"386\" text-anchor=\"middle\">1 ms</text>
<line x1=\"60\" y1=\"370.0\" x2=\"540\" y2=\"370.0\" stroke=\"#ddd\"/><text x=\"54\" y=\"374.0\" text-anchor=\"end\">0%</text>
<line x1=\"60\" y1=\"287.5\" x2=\"540\" y2=\"287.5\" stroke=\"#ddd\"/><text x=\"54\" y=\"291.5\" text-anchor=\"end\">90%</text>
<line x1=\"60\" y1=\"205.0\" x2=\"540\" y2=\"205.0\" stroke=\"#ddd\"/><text x=\"54\" y=\"209.0\" text-anchor=\"end\">99%</text>
<line x1=\"60\" y1=\"122.5\" x2=\"540\" y2=\"122.5\" stroke=\"#ddd\"/><text x=\"54\" y=\"126.5\" text-anchor=\"end\">99.9%</text>
<line x1=\"60\" y1=\"40.0\" x2=\"540\" y2=\"40.0\" stroke=\"#ddd\"/><text x=\"54\" y=\"44.0\" text-anchor=\"end\">99.99%</text>
<text x=\"300\" y=\"408\" text-anchor=\"middle\">round-trip latency (log scale)</text>
<text x=\"16\" y=\"205\" text-anchor=\"middle\" transform=\"rotate(-90 16 205)\">requests at or below (by nines)</text>
<polyline points=\"60.0,370.0 60.0,359.7 132.2,345.2 174.5,334.9 174.5,320.3 540.0,310.0 540.0,40.0\" fill=\"none\" stroke=\"#0072b2\" stroke-width=\"2\"><title>udp</title></polyline>
<line x1=\"555\" y1=\"50\" x2=\"575\" y2=\"50\" stroke=\"#0072b2\" stroke-width=\"3\"/><text x=\"581\" y=\"54\">udp</text>
</svg>
";
    assert_eq!(
        svg::render("rtt", &[], &[("udp".into(), &histogram())]),
        expected
    );
}

#[test]
fn notes_wrap_at_spaces_to_eighty_columns() {
    let long = "word ".repeat(40);
    let text = table::notes([long.as_str()]);
    assert!(
        text.lines().all(|l| l.chars().count() <= table::WIDTH),
        "{text}"
    );
    assert!(text.starts_with("- word word"), "{text}");
    assert!(
        text.lines().skip(1).all(|l| l.starts_with("  word")),
        "{text}"
    );
    assert_eq!(text.matches("word").count(), 40);
}

#[test]
fn a_chinese_note_fits_eighty_columns_of_two_for_each_character() {
    let long = "服务器在听".repeat(20);
    let text = table::notes([long.as_str()]);
    assert!(text.lines().count() > 1, "{text}");
    assert!(
        text.lines()
            .all(|l| crate::wrap::columns(l) <= table::WIDTH),
        "{text}"
    );
}

fn meta() -> Meta {
    let mut parameters = serde_json::Map::new();
    parameters.insert("clients".into(), serde_json::Value::from(2));
    Meta {
        netecho_version: "0.1.0",
        host: "lab1".into(),
        kernel: "Linux 6.1.0".into(),
        cores: 2,
        date_utc: "2026-11-30T17:03:41Z".into(),
        command: "netecho bench -c 2".into(),
        parameters,
    }
}

#[test]
fn bench_reports_carry_their_metadata_and_the_narrow_table_fits() {
    let text = report(Format::Table, Layout::Narrow, &[run()], &meta());
    let expected = "\
proto  cl  size  win  req/s  MB/s  p50  p99  p99.9  lost
udp     2    64    1    997  0.06   10   30     40     2
    at [::1]:3234
cl = clients, size = bytes per message, win = requests in flight per client;
p50/p99/p99.9 = round trip in us; lost = requests unanswered within --timeout;
--wide or --format csv for every column
";
    assert_eq!(text, expected);
    assert_eq!(
        report(Format::Table, Layout::Wide, &[run()], &meta()),
        render(Format::Table, &[run()])
    );
    let json: serde_json::Value =
        serde_json::from_str(&report(Format::Json, Layout::Narrow, &[run()], &meta())).unwrap();
    assert_eq!(json["meta"]["host"], "lab1");
    assert_eq!(json["meta"]["parameters"]["clients"], 2);
    assert_eq!(json["runs"][0]["proto"], "udp");
    let csv = report(Format::Csv, Layout::Narrow, &[run()], &meta());
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(
        ",stopped,stall_silent_s,stall_from_s,stall_to_s,netecho_version,host,kernel,cores,\
         date_utc,command,param_clients"
    ));
    assert!(lines[1].ends_with(
        ",unseen,,,,,0.1.0,lab1,Linux 6.1.0,2,2026-11-30T17:03:41Z,netecho bench -c 2,2"
    ));
    let line = report(Format::Ndjson, Layout::Narrow, &[run()], &meta());
    let summary: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["meta"]["command"], "netecho bench -c 2");
}

#[test]
fn a_stopped_run_is_marked_in_every_format() {
    let mut r = run();
    r.stopped = Some("SIGINT".into());
    r.elapsed_s = 2.513;
    r.duration_s = Some(10.0);
    let runs = std::slice::from_ref(&r);
    let table = report(Format::Table, Layout::Narrow, runs, &meta());
    assert!(
        table.ends_with(
            "- udp: stopped by SIGINT after 2.5 s of 10 s; the numbers are of what ran\n"
        ),
        "{table}"
    );
    let wide = report(Format::Table, Layout::Wide, runs, &meta());
    assert!(
        wide.contains("stopped by SIGINT after 2.5 s of 10 s"),
        "{wide}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&report(Format::Json, Layout::Narrow, runs, &meta())).unwrap();
    assert_eq!(json["runs"][0]["stopped"], "SIGINT");
    let line = report(Format::Ndjson, Layout::Narrow, runs, &meta());
    let summary: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(summary["stopped"], "SIGINT");
    let csv = report(Format::Csv, Layout::Narrow, runs, &meta());
    assert!(csv.contains(",unseen,SIGINT,,,,0.1.0,"), "{csv}");
    // A run that ran whole says nothing of stopping, in the JSON or under the table.
    let whole = report(Format::Json, Layout::Narrow, &[run()], &meta());
    assert!(!whole.contains("stopped"), "{whole}");
    r.duration_s = None;
    r.count = Some(1000);
    assert_eq!(
        r.stop_note().unwrap(),
        "udp: stopped by SIGINT after 2.5 s (1000 of 2000 requests sent); the numbers are of \
         what ran"
    );
}

fn stall() -> Stall {
    Stall {
        silent_s: 3.005,
        from_s: 2.01,
        to_s: 5.015,
    }
}

#[test]
fn a_stall_and_late_replies_are_said_under_the_table_and_kept_in_every_format() {
    let mut r = run();
    r.stall = Some(stall());
    (r.lost, r.late, r.duplicated) = (0, 2, 3);
    let runs = std::slice::from_ref(&r);
    let table = report(Format::Table, Layout::Narrow, runs, &meta());
    let notes = table.split_once("every column\n").unwrap().1;
    assert_eq!(
        notes,
        "\
- udp: the server answered nothing for 3.0 s (2.0-5.0 s into the run): req/s and
  the percentiles average over it
- udp: 2 requests answered after the loss timeout (--timeout): counted late,
  neither answered nor lost (sent 1000 = answered 998 + lost 0 + late 2)
- udp: 3 replies came a second time: counted duplicated, not answered
"
    );
    let wide = report(Format::Table, Layout::Wide, runs, &meta());
    assert!(wide.ends_with(notes), "{wide}");
    let json: serde_json::Value =
        serde_json::from_str(&report(Format::Json, Layout::Narrow, runs, &meta())).unwrap();
    let s = &json["runs"][0]["stall"];
    assert_eq!(
        (&s["silent_s"], &s["from_s"], &s["to_s"]),
        (&3.005.into(), &2.01.into(), &5.015.into())
    );
    let csv = report(Format::Csv, Layout::Narrow, runs, &meta());
    assert!(csv.contains(",unseen,,3.005,2.01,5.015,0.1.0,"), "{csv}");
    // Nothing to say of a run without them; a stall is null in the JSON.
    let quiet = report(Format::Table, Layout::Narrow, &[run()], &meta());
    assert!(quiet.ends_with("every column\n"), "{quiet}");
    let whole = render(Format::Json, &[run()]);
    let json: serde_json::Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(json["runs"][0]["stall"], serde_json::Value::Null);
    // When the counters do not add up (a failed client's requests), no sum is shown.
    r.sent = 1010;
    assert!(!r.notes().concat().contains("sent 1010 ="));
}

#[test]
fn the_csv_has_every_field_of_the_json() {
    let mut r = run();
    r.stopped = Some("SIGTERM".into());
    r.stall = Some(stall());
    let json: serde_json::Value = serde_json::from_str(&render(Format::Json, &[r])).unwrap();
    let csv = render(Format::Csv, &[run()]);
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for (name, value) in json["runs"][0].as_object().unwrap() {
        match value.as_object() {
            // Percentiles: one column per field, p50_us or connect_p50_us; the stall's
            // stall_from_s.
            Some(p) => {
                for field in p.keys() {
                    let col = match name.as_str() {
                        "latency_us" => format!("{field}_us"),
                        "connect_us" => format!("connect_{field}_us"),
                        _ => format!("{name}_{field}"),
                    };
                    assert!(head.contains(&col.as_str()), "{col} missing from {head:?}");
                }
            }
            None => assert!(
                head.contains(&name.as_str()),
                "{name} missing from {head:?}"
            ),
        }
    }
}

/// Latencies below a microsecond, and between whole ones, keep their tenth.
#[test]
fn latencies_keep_tenths_of_a_microsecond() {
    let mut h = latency_histogram();
    for ns in [400, 7_400, 7_400, 19_400, 19_400, 19_400] {
        record_latency(&mut h, Duration::from_nanos(ns));
    }
    let p = Percentiles::of(&h);
    assert_eq!((p.p50, p.p90, p.max), (7.4, 19.4, 19.4));
    assert_eq!(p.mean, 12.2);
    assert_eq!(Percentiles::of(&h.clone()).p50, 7.4);
    let mut fast = latency_histogram();
    record_latency(&mut fast, Duration::from_nanos(400));
    assert_eq!(Percentiles::of(&fast).p50, 0.4);
    // Nothing is recorded as zero, nor beyond the top.
    record_latency(&mut fast, Duration::ZERO);
    record_latency(&mut fast, Duration::from_secs(3600));
    assert_eq!(fast.min(), 1);
    assert!(Percentiles::of(&fast).max <= 60_100_000.0);
}

/// A histogram takes any number of samples in the same memory.
#[test]
fn a_latency_histogram_stays_the_same_size() {
    let mut h = latency_histogram();
    let size = h.distinct_values();
    assert!(size * 8 <= 256 * 1024, "{size} counters");
    for i in 0..200_000u64 {
        record_latency(&mut h, Duration::from_nanos(i * i));
    }
    assert_eq!(h.distinct_values(), size);
    assert_eq!(h.len(), 200_000);
}

/// Every format prints a latency's tenth; a whole number stays without a decimal point.
#[test]
fn latencies_with_a_tenth_in_every_format() {
    let mut r = run();
    let latency = r.latency_us.as_mut().unwrap();
    latency.p50 = 19.4;
    latency.p99 = 7.0;
    let csv = render(Format::Csv, std::slice::from_ref(&r));
    assert!(csv.contains(",10.5,19.4,7,40,50,"), "{csv}");
    let table = render(Format::Table, std::slice::from_ref(&r));
    assert!(table.contains("10.5    19.4       7"), "{table}");
    let line = render(Format::Ndjson, std::slice::from_ref(&r));
    assert!(
        line.contains("\"latency_us\":{\"p50\":19.4,\"p90\":20,\"p99\":7,"),
        "{line}"
    );
    let value: serde_json::Value = serde_json::from_str(&render(Format::Json, &[r])).unwrap();
    assert_eq!(value["runs"][0]["latency_us"]["p50"].as_f64(), Some(19.4));
}

/// A run with no round trip measured (--idle) has no latency figure: null in the JSON and
/// the NDJSON summary, empty in the CSV, `-` in either table; never zeros, the fastest.
#[test]
fn a_run_without_a_round_trip_has_no_latency_in_any_format() {
    let mut r = run();
    r.latency_us = Percentiles::measured(&latency_histogram());
    assert_eq!(r.latency_us, None);
    let runs = std::slice::from_ref(&r);
    let value: serde_json::Value = serde_json::from_str(&render(Format::Json, runs)).unwrap();
    assert!(value["runs"][0]["latency_us"].is_null(), "{value}");
    let line: serde_json::Value = serde_json::from_str(&render(Format::Ndjson, runs)).unwrap();
    assert!(line["latency_us"].is_null(), "{line}");
    let csv = render(Format::Csv, runs);
    assert!(csv.contains(",0.06,,,,,,3,1000,"), "{csv}");
    assert!(csv.contains(",1.001,63872,,6,"), "{csv}");
    let wide = render(Format::Table, runs);
    assert!(
        wide.contains("0.06        -       -       -         -       -"),
        "{wide}"
    );
    let narrow = report(Format::Table, Layout::Narrow, runs, &meta());
    assert!(narrow.contains("0.06    -    -      -     2"), "{narrow}");
}

#[test]
fn the_p50_of_two_rounds_is_their_mean_not_the_upper_one() {
    // One round of two stalled: its p50 alone must not become the row's.
    let (p50, each) = p50_of_rounds(vec![1_018_000, 76_000]);
    assert_eq!(p50, Some(547.0));
    assert_eq!(each, vec![76, 1018]);
    assert_eq!(p50_of_rounds(vec![66_000, 64_000, 90_000]).0, Some(66.0));
    assert_eq!(p50_of_rounds(Vec::new()).0, None);
}
