//! What bench reports of one run: the spec it ran and what the load loop measured, as the
//! report's [`Run`].

use crate::report::run::round;
use crate::report::{Percentiles, Run};
use crate::signal::Signal;

use super::load::{Limit, LoadResult, LoadSpec};

/// The run of `spec` that produced `r`, which `stopped` ended early if given; `found`, the
/// sentences for its notes.
pub(crate) fn run(
    spec: &LoadSpec,
    r: &LoadResult,
    stopped: Option<Signal>,
    found: Vec<String>,
) -> Run {
    Run {
        proto: spec.target.proto.to_string(),
        address: spec.target.addr.to_string(),
        clients: spec.clients,
        size: spec.size,
        window: spec.window,
        duration_s: match spec.limit {
            Limit::Duration(d) => Some(d.as_secs_f64()),
            Limit::Count(_) => None,
        },
        count: match spec.limit {
            Limit::Count(n) => Some(n),
            Limit::Duration(_) => None,
        },
        elapsed_s: round(r.elapsed.as_secs_f64(), 3),
        sent: r.sent,
        answered: r.answered,
        bytes: r.bytes,
        requests_per_s: round(r.requests_per_sec(), 0),
        mb_per_s: round(r.mb_per_sec(), 2),
        latency_us: Percentiles::measured(&r.latency),
        connect_us: Percentiles::of(&r.connect),
        lost: r.lost,
        duplicated: r.duplicated,
        reordered: r.reordered,
        late: r.late,
        mismatched: r.mismatched,
        failed_clients: r.failed_clients,
        rxq_overflow: r.rxq_overflow,
        rcvbuf_errors: r.machine.map(|m| m.rcvbuf_errors),
        send_errors: r.send_errors,
        loss_cause: r.loss().cause(),
        stall: r
            .silence
            .and_then(|s| s.stall(Percentiles::of(&r.latency).p99_9)),
        stopped: stopped.map(|s| s.to_string()),
        found,
        idle: spec.idle,
    }
}
