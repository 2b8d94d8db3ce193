//! Results while a run goes on (`bench --interval 1s`): each load thread reports what it did
//! in each interval, and the interval is emitted once every thread still running has reported.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::load::LoadResult;

pub(crate) use crate::report::Interval;

// An interval is report data; how bench cuts one from its running totals, and adds up the
// threads' shares, is bench's and lives here.
impl Interval {
    /// What a thread did between two snapshots of its running totals.
    pub(crate) fn between(
        index: u64,
        start: Duration,
        end: Duration,
        before: &Snapshot,
        now: &LoadResult,
    ) -> Interval {
        let mut latency = now.latency.clone();
        // These totals only grow, so the difference is this interval's samples.
        let _ = latency.subtract(&before.latency);
        Interval {
            index,
            start,
            end,
            sent: now.sent - before.sent,
            answered: now.answered - before.answered,
            bytes: now.bytes - before.bytes,
            // A late reply moves a request from lost to late: their sum only grows, and its
            // growth is the requests whose --timeout ran out in this interval.
            lost: (now.lost + now.late).saturating_sub(before.timed_out),
            latency,
        }
    }

    fn empty(index: u64, start: Duration) -> Interval {
        Interval {
            index,
            start,
            end: start,
            sent: 0,
            answered: 0,
            bytes: 0,
            lost: 0,
            latency: crate::report::latency_histogram(),
        }
    }

    fn merge(&mut self, other: Interval) {
        self.end = self.end.max(other.end);
        self.sent += other.sent;
        self.answered += other.answered;
        self.bytes += other.bytes;
        self.lost += other.lost;
        let _ = self.latency.add(&other.latency);
    }
}

/// A thread's running totals at the start of an interval.
pub(crate) struct Snapshot {
    sent: u64,
    answered: u64,
    bytes: u64,
    /// Requests whose --timeout ran out so far, answered late or never.
    timed_out: u64,
    latency: Histogram<u64>,
}

impl Snapshot {
    pub(crate) fn of(r: &LoadResult) -> Snapshot {
        Snapshot {
            sent: r.sent,
            answered: r.answered,
            bytes: r.bytes,
            timed_out: r.lost + r.late,
            latency: r.latency.clone(),
        }
    }
}

/// Where the load threads report their intervals, and whence complete intervals go out.
pub(crate) struct Board<'a> {
    pub every: Duration,
    state: Mutex<State>,
    emit: &'a (dyn Fn(&Interval) + Sync),
}

#[derive(Default)]
struct State {
    /// Intervals not yet emitted: which threads reported them, and their sum so far.
    pending: BTreeMap<u64, (Vec<bool>, Interval)>,
    /// Threads that will report no more.
    finished: Vec<bool>,
}

impl<'a> Board<'a> {
    pub(crate) fn new(
        every: Duration,
        threads: usize,
        emit: &'a (dyn Fn(&Interval) + Sync),
    ) -> Board<'a> {
        Board {
            every,
            state: Mutex::new(State {
                pending: BTreeMap::new(),
                finished: vec![false; threads],
            }),
            emit,
        }
    }

    /// Thread `thread`'s share of an interval.
    pub(crate) fn report(&self, thread: usize, interval: Interval) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let threads = state.finished.len();
        let (seen, merged) = state.pending.entry(interval.index).or_insert_with(|| {
            (
                vec![false; threads],
                Interval::empty(interval.index, interval.start),
            )
        });
        seen[thread] = true;
        merged.merge(interval);
        self.emit_complete(&mut state);
    }

    /// Thread `thread` is done: later intervals no longer wait for it.
    pub(crate) fn finish(&self, thread: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.finished[thread] = true;
        self.emit_complete(&mut state);
    }

    /// Emits, in order, the intervals every thread has reported or finished before.
    fn emit_complete(&self, state: &mut State) {
        let State { pending, finished } = state;
        while let Some(entry) = pending.first_entry() {
            let seen = &entry.get().0;
            if !seen.iter().zip(finished.iter()).all(|(s, f)| *s || *f) {
                break;
            }
            let (_, interval) = entry.remove();
            (self.emit)(&interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(index: u64, sent: u64) -> Interval {
        let mut i = Interval::empty(index, Duration::from_secs(index));
        i.sent = sent;
        i
    }

    #[test]
    fn an_interval_goes_out_once_every_thread_reported_or_finished() {
        let out = Mutex::new(Vec::new());
        let emit = |i: &Interval| out.lock().unwrap().push((i.index, i.sent));
        let board = Board::new(Duration::from_secs(1), 2, &emit);
        board.report(0, part(0, 5));
        assert!(out.lock().unwrap().is_empty());
        board.report(1, part(0, 7));
        board.report(0, part(1, 1));
        board.finish(0);
        assert_eq!(*out.lock().unwrap(), [(0, 12)]);
        board.report(1, part(1, 2));
        board.report(1, part(2, 3));
        assert_eq!(*out.lock().unwrap(), [(0, 12), (1, 3), (2, 3)]);
    }
}
