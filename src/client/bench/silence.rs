//! Silences: stretches of a run in which requests waited and no reply came at all (a server
//! paused, a machine that stalled). The load loop's totals average over them, so each load
//! thread watches for them between its replies, and the report tells of a long one.

use std::time::Duration;

use crate::report::Stall;
use crate::report::run::round;

/// The shortest silence the report tells of ...
const STALL_MIN: Duration = Duration::from_secs(1);
/// ... and how many times the run's p99.9 round trip it must last as well, so that a slow
/// server, whose every reply takes a second, is not told of.
const STALL_TIMES: f64 = 10.0;

/// Whether a wait of `length` is a stall worth telling of, in a run whose p99.9 round trip
/// took `p99_9_us`: at least [`STALL_MIN`] and over [`STALL_TIMES`] times the p99.9. The
/// lab asks it of its longest round trip.
pub(crate) fn long_enough(length: Duration, p99_9_us: f64) -> bool {
    length >= STALL_MIN && length.as_secs_f64() * 1e6 > STALL_TIMES * p99_9_us
}

/// A stretch with requests waiting and no reply, in time since the start of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Silence {
    pub from: Duration,
    pub to: Duration,
}

impl Silence {
    fn length(&self) -> Duration {
        self.to.saturating_sub(self.from)
    }

    /// The silence every thread of a run kept: the part their longest ones share, when
    /// they overlap. A thread whose clients got replies meanwhile had none then.
    pub(crate) fn common(each: &[Option<Silence>]) -> Option<Silence> {
        each.iter().copied().reduce(|a, b| {
            let (a, b) = (a?, b?);
            let shared = Silence {
                from: a.from.max(b.from),
                to: a.to.min(b.to),
            };
            (shared.to > shared.from).then_some(shared)
        })?
    }

    /// The silence as the report gives it, when long enough to tell of: at least
    /// [`STALL_MIN`] and over [`STALL_TIMES`] times the run's p99.9 round trip.
    pub(crate) fn stall(self, p99_9_us: f64) -> Option<Stall> {
        let length = self.length();
        long_enough(length, p99_9_us).then(|| Stall {
            silent_s: round(length.as_secs_f64(), 3),
            from_s: round(self.from.as_secs_f64(), 3),
            to_s: round(self.to.as_secs_f64(), 3),
        })
    }
}

/// One load thread's watch for silences, checked every few milliseconds (not per reply):
/// a silence is known to within two checks.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Replies of any kind (answered, late, duplicated, wrong) at the last check, and when.
    replies: u64,
    last: Duration,
    /// Since when requests have waited with no reply, if they do.
    since: Option<Duration>,
    longest: Option<Silence>,
}

impl Watch {
    /// A check at `at`: `replies` so far, and whether any request is `waiting`.
    pub(crate) fn check(&mut self, at: Duration, replies: u64, waiting: bool) {
        if replies != self.replies || !waiting {
            // A reply came after the last check, or nothing was asked: a silence ended.
            self.end();
        }
        if waiting && self.since.is_none() {
            self.since = Some(at);
        }
        self.replies = replies;
        self.last = at;
    }

    /// The silence under way ends at the last check, when nothing came until then.
    fn end(&mut self) {
        let Some(from) = self.since.take() else {
            return;
        };
        let now = Silence {
            from,
            to: self.last,
        };
        if self.longest.is_none_or(|l| now.length() > l.length()) {
            self.longest = Some(now);
        }
    }

    /// The longest silence of the thread's run, which ended with its last check.
    pub(crate) fn longest(mut self) -> Option<Silence> {
        self.end();
        self.longest.filter(|s| s.length() > Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_silence_runs_from_the_check_after_a_reply_to_the_last_check_before_the_next() {
        let mut w = Watch::default();
        for (at, replies) in [
            (0, 5),
            (20, 9),
            (40, 9),
            (60, 9),
            (80, 9),
            (100, 12),
            (120, 15),
        ] {
            w.check(ms(at), replies, true);
        }
        let s = w.longest().unwrap();
        assert_eq!((s.from, s.to), (ms(20), ms(80)));
    }

    #[test]
    fn no_silence_while_nothing_waits() {
        let mut w = Watch::default();
        for at in [0, 20, 40, 60] {
            w.check(ms(at), 3, false);
        }
        assert_eq!(w.longest(), None);
    }

    #[test]
    fn threads_share_the_part_of_their_silences_that_overlaps() {
        let s = |from, to| {
            Some(Silence {
                from: ms(from),
                to: ms(to),
            })
        };
        assert_eq!(Silence::common(&[s(100, 3100), s(120, 3080)]), s(120, 3080));
        assert_eq!(Silence::common(&[s(100, 200), s(300, 400)]), None);
        assert_eq!(Silence::common(&[s(100, 200), None]), None);
    }

    #[test]
    fn a_stall_is_told_when_a_second_long_and_ten_times_the_p99_9() {
        let s = Silence {
            from: ms(2000),
            to: ms(5000),
        };
        let stall = s.stall(250.0).unwrap();
        assert_eq!((stall.silent_s, stall.from_s, stall.to_s), (3.0, 2.0, 5.0));
        // A server whose replies all take 0.5 s: its silences are its round trips.
        assert_eq!(s.stall(500_000.0), None);
        assert_eq!(
            Silence {
                from: ms(0),
                to: ms(900)
            }
            .stall(10.0),
            None
        );
    }
}
