//! `lab --models`: the server models side by side over tcp, each as `netecho serve
//! --model X`, with one client and with many; a sentence per model on why they differ,
//! computed from what was measured.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::client::bench::load::{self, LoadResult};
use crate::client::local::LocalServers;
use crate::endpoint::{Proto, SockProto, Target};
use crate::report::{self, Column, Format, Meta, Percentiles};

use super::measure::{PING_SIZE, spec};
use super::pin::Cores;
use super::plan::Plan;
use super::why::stalled;

/// The models, in the order a course meets them.
pub(super) const MODELS: [&str; 5] = ["iterative", "threads", "event", "fork", "uring"];
/// Clients of the "many" run: more than the cores of a laptop, few enough for a fork each.
pub(super) const MANY: usize = 16;

/// How long the iterative model's waiting clients are waited for after the run: its first
/// client holds the server until the load ends, so the others are answered only after, and
/// a longer wait (a stream row's 30 s) shows nothing more.
const ITERATIVE_DRAIN: Duration = Duration::from_secs(1);

/// One model's row.
#[derive(Debug, Serialize)]
pub(super) struct ModelRow {
    pub model: &'static str,
    /// One client, one message in flight.
    pub one_latency_us: Percentiles,
    pub one_messages_per_s: f64,
    /// [`MANY`] clients, one message in flight each.
    pub many_clients: usize,
    pub many_latency_us: Percentiles,
    pub many_messages_per_s: f64,
    pub many_sent: u64,
    pub many_lost: u64,
    pub many_failed_clients: u64,
    /// Clients of the many answered to the end of the run: [`MANY`] less the failed.
    pub many_served_clients: u64,
    /// The first failed client's error, as the load loop saw it.
    pub many_first_error: Option<String>,
    pub why: String,
}

/// `--format json` of `lab --models`.
#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    meta: &'a Meta,
    models: &'a [ModelRow],
}

/// Every model measured with one and with [`MANY`] clients: each server on the servers'
/// core and the clients on theirs, as for the protocols' rows.
pub(super) fn measure_models(
    servers: &LocalServers,
    plan: &Plan,
    cores: Option<Cores>,
) -> Result<Vec<ModelRow>> {
    MODELS
        .iter()
        // Where io_uring is refused, its row is left out with the reason, not the lab.
        .filter(|&&model| match model {
            "uring" => crate::server::uring::available()
                .inspect_err(|e| {
                    let line = format!("lab --models: no uring row: {e:#}");
                    super::say(tracing::Level::WARN, &line);
                })
                .is_ok(),
            _ => true,
        })
        .map(|model| {
            super::progress(&format!("model {model}"));
            let addr = servers.address_for(Proto::Tcp, false);
            let start = || servers.start(SockProto::Tcp, &addr, &["--model", model]);
            let target = super::start_pinned(start, cores)?;
            measure_model(model, &target, plan)
        })
        .collect()
}

fn measure_model(model: &'static str, target: &Target, plan: &Plan) -> Result<ModelRow> {
    let time = plan.ping * plan.rounds as u32;
    let one: LoadResult = load::run(&spec(target, 1, PING_SIZE, 1, time))?;
    let mut many_spec = spec(target, MANY, PING_SIZE, 1, time);
    if model == "iterative" {
        many_spec.stall = ITERATIVE_DRAIN;
    }
    let many: LoadResult = load::run(&many_spec)?;
    let mut row = ModelRow {
        model,
        one_latency_us: Percentiles::of(&one.latency),
        one_messages_per_s: one.requests_per_sec().round(),
        many_clients: MANY,
        many_latency_us: Percentiles::of(&many.latency),
        many_messages_per_s: many.requests_per_sec().round(),
        many_sent: many.sent,
        many_lost: many.lost,
        many_failed_clients: many.failed_clients,
        many_served_clients: (MANY as u64).saturating_sub(many.failed_clients),
        many_first_error: many.first_error.clone(),
        why: String::new(),
    };
    row.why = why(&row);
    Ok(row)
}

/// What the model is, then what the measurement showed of it.
pub(super) fn why(r: &ModelRow) -> String {
    let nature = match r.model {
        "iterative" => "one client at a time: the others wait in the listen backlog",
        "threads" => "a thread per connection, each blocked in its own recv",
        "event" => "a few threads, each waiting on many sockets with epoll",
        "uring" => "a ring per core: the kernel receives and sends, one system call a wake-up",
        _ => "a process per connection, forked at accept",
    };
    let scale = r.many_messages_per_s / r.one_messages_per_s.max(1.0);
    let mut parts = vec![nature.to_string()];
    if r.many_failed_clients > 0 {
        let served = r.many_clients as u64 - r.many_failed_clients.min(r.many_clients as u64);
        let served = match served {
            1 => "1 was".to_string(),
            n => format!("{n} were"),
        };
        // The iterative model's waiting clients are the lesson, not a fault to explain.
        let after = match r.model {
            "iterative" => "waited in the backlog behind it until the run ended".to_string(),
            _ => format!(
                "gave up ({})",
                r.many_first_error.as_deref().unwrap_or("no error given")
            ),
        };
        parts.push(format!(
            "with {} clients only {served} served; {} {after}",
            r.many_clients, r.many_failed_clients
        ));
    } else if r.many_lost > 0 {
        parts.push(format!(
            "with {} clients {} of {} requests went unanswered within the run",
            r.many_clients, r.many_lost, r.many_sent
        ));
    } else if stalled(1, r.one_latency_us.p50, r.one_messages_per_s).is_some() {
        // A ratio to a stalled run is the stall's, not the model's: not printed at all.
        parts.push(format!(
            "{} clients were all answered; no ratio to one client's msg/s, whose run \
             stalled",
            r.many_clients
        ));
    } else {
        parts.push(format!(
            "{} clients were all answered, at {scale:.1}x the messages per second of one",
            r.many_clients
        ));
    }
    // Whole microseconds, as the table shows them.
    let (one, many) = (r.one_latency_us.p50.round(), r.many_latency_us.p50.round());
    if many > one * 2.0 {
        parts.push(format!(
            "each round trip waited its turn: p50 {one} us alone, {many} us among {}",
            r.many_clients
        ));
    }
    parts.extend(stalls(r));
    parts.join("; ")
}

/// The runs whose msg/s its own p50 contradicts, said, so a ratio between them is not
/// taken for the model's.
fn stalls(r: &ModelRow) -> Option<String> {
    let one = stalled(1, r.one_latency_us.p50, r.one_messages_per_s).map(|allows| {
        format!(
            "one client moved {} msg/s where its p50 allows {allows}",
            r.one_messages_per_s
        )
    });
    // A client still waiting at the end stalls the many by design (iterative).
    let many = match r.many_failed_clients {
        0 => stalled(r.many_clients, r.many_latency_us.p50, r.many_messages_per_s),
        _ => None,
    }
    .map(|allows| {
        format!(
            "{} clients moved {} msg/s where their p50 allows {allows}",
            r.many_clients, r.many_messages_per_s
        )
    });
    let said: Vec<String> = one.into_iter().chain(many).collect();
    (!said.is_empty()).then(|| {
        format!(
            "compare with care: {}, a run that stalled on a few long waits (a busy machine)",
            said.join(", and ")
        )
    })
}

fn columns() -> Vec<Column<ModelRow>> {
    vec![
        Column::left("model", |r| r.model.to_string()),
        // Whole microseconds keep the table within 80 columns.
        Column::right("1:p50", |r| format!("{:.0}", r.one_latency_us.p50)),
        Column::right("1:msg/s", |r| format!("{:.0}", r.one_messages_per_s)),
        Column::right("n:p50", |r| format!("{:.0}", r.many_latency_us.p50)),
        Column::right("n:p99", |r| format!("{:.0}", r.many_latency_us.p99)),
        Column::right("n:msg/s", |r| format!("{:.0}", r.many_messages_per_s)),
        Column::right("n:lost", |r| r.many_lost.to_string()),
        Column::right("served", |r| {
            format!("{}/{}", r.many_served_clients, r.many_clients)
        }),
    ]
}

/// The CSV's columns: every field of the JSON but the percentiles beyond p50 and p99.
fn csv_columns() -> Vec<Column<ModelRow>> {
    let mut all = columns();
    all.extend::<[Column<ModelRow>; 4]>([
        Column::right("many_clients", |r| r.many_clients.to_string()),
        Column::right("many_sent", |r| r.many_sent.to_string()),
        Column::right("many_failed_clients", |r| r.many_failed_clients.to_string()),
        Column::left("why", |r| r.why.clone()),
    ]);
    all
}

/// The models in `format`: the table with each sentence under its row and a legend.
pub(super) fn render(format: Format, rows: &[ModelRow], meta: &Meta) -> String {
    match format {
        Format::Csv => report::csv::render_with(&csv_columns(), rows, &meta.fields()),
        Format::Json => report::json::document(&Document {
            schema: "netecho-lab-models/1",
            meta,
            models: rows,
        }),
        _ => {
            let table = report::table::render(&columns(), rows);
            let mut lines = table.lines();
            let mut text = format!("{}\n", lines.next().unwrap_or_default());
            for (line, row) in lines.zip(rows) {
                text.push_str(line);
                text.push('\n');
                text.push_str(&crate::wrap::paragraph(&row.why, "    ", "    ", 80));
            }
            let legend = format!(
                "tcp on loopback, 64-byte messages, one in flight per client; 1: one client, \
                 n: {MANY} clients at once; times in us; lost = requests unanswered (a stream \
                 loses none); served = clients of the {MANY} answered to the end, the others \
                 still waiting for a reply when the run ended"
            );
            text.push('\n');
            text.push_str(&crate::wrap::paragraph(&legend, "", "", 80));
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(p50: u64) -> Percentiles {
        Percentiles {
            p50: p50 as f64,
            p90: p50 as f64,
            p99: (p50 * 2) as f64,
            p99_9: (p50 * 3) as f64,
            max: (p50 * 4) as f64,
            mean: p50 as f64,
        }
    }

    fn row(model: &'static str, many_p50: u64, lost: u64) -> ModelRow {
        ModelRow {
            model,
            one_latency_us: p(20),
            one_messages_per_s: 40000.0,
            many_clients: MANY,
            many_latency_us: p(many_p50),
            many_messages_per_s: 80000.0,
            many_sent: 1000,
            many_lost: lost,
            many_failed_clients: 0,
            many_served_clients: MANY as u64,
            many_first_error: None,
            why: String::new(),
        }
    }

    #[test]
    fn the_sentence_follows_the_numbers() {
        let iterative = why(&row("iterative", 20, 15));
        assert!(
            iterative.contains("15 of 1000 requests went unanswered"),
            "{iterative}"
        );
        let mut stuck = row("iterative", 20, 0);
        stuck.many_failed_clients = 14;
        stuck.many_first_error = Some("no reply within 500 ms".into());
        let s = why(&stuck);
        assert!(
            s.contains("only 2 were served; 14 waited in the backlog behind it until the run"),
            "{s}"
        );
        assert!(!s.contains("500 ms"), "{s}");
        let mut failed = row("threads", 20, 0);
        failed.many_failed_clients = 14;
        failed.many_first_error = Some("no reply within 500 ms".into());
        let s = why(&failed);
        assert!(
            s.contains("only 2 were served; 14 gave up (no reply within 500 ms)"),
            "{s}"
        );
        let event = why(&row("event", 30, 0));
        assert!(event.contains("all answered, at 2.0x"), "{event}");
        assert!(!event.contains("waited its turn"), "{event}");
        let threads = why(&row("threads", 200, 0));
        assert!(
            threads.contains("p50 20 us alone, 200 us among 16"),
            "{threads}"
        );
    }

    #[test]
    fn a_run_its_own_p50_contradicts_is_to_be_compared_with_care() {
        let mut slow = row("threads", 155, 0);
        slow.one_latency_us = p(466);
        slow.one_messages_per_s = 18.0;
        slow.many_messages_per_s = 33309.0;
        let s = why(&slow);
        assert!(
            s.contains("compare with care: one client moved 18 msg/s where its p50 allows 2146"),
            "{s}"
        );
        // The ratio to the stalled run (1850x) is not printed as if it were the model's.
        assert!(!s.contains("x the messages per second"), "{s}");
        assert!(
            s.contains("no ratio to one client's msg/s, whose run stalled"),
            "{s}"
        );
        let mut steady = row("event", 30, 0);
        steady.many_messages_per_s = 400000.0;
        assert!(
            !why(&steady).contains("compare with care"),
            "{}",
            why(&steady)
        );
        let mut stuck = row("iterative", 20, 0);
        stuck.many_failed_clients = 15;
        stuck.many_served_clients = 1;
        stuck.many_messages_per_s = 10.0;
        assert!(!why(&stuck).contains("compare with care"));
        let mut meta = Meta::now(serde_json::Map::new());
        meta.command = "netecho lab --models".into();
        let text = render(Format::Table, &[stuck], &meta);
        let line = text.lines().nth(1).unwrap();
        assert!(line.ends_with(" 0    1/16"), "{text}");
    }

    #[test]
    fn the_table_fits_eighty_columns() {
        let rows: Vec<ModelRow> = MODELS.iter().map(|m| row(m, 123456, 99999)).collect();
        let mut meta = Meta::now(serde_json::Map::new());
        meta.command = "netecho lab --models".into();
        let text = render(Format::Table, &rows, &meta);
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert!(text.starts_with("model"), "{text}");
    }
}
