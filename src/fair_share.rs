//! A budget for everyone, and under it a fair share per source that shrinks as more sources
//! ask: with N sources asking in the last second each gets a (N+1)th of the rate (and an
//! Nth of the burst), so a few busy sources never spend all of it, and the share left over
//! is there for a source that was not asking yet. The relay's new connections to TO are
//! shared so among addresses ([`crate::relay`]), the walks that tell an abstract Unix
//! name's owner among users (`transport::unix::abstract_owner`).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::impair::TokenBucket;

/// The window in which a source counts as asking.
const WINDOW: Duration = Duration::from_secs(1);

pub(crate) struct FairShare<K> {
    all: TokenBucket,
    rate: u64,
    burst: u64,
    /// The most one source's share holds, rate and burst, however few ask.
    most: u64,
    by_source: HashMap<K, Source>,
    /// Sources whose share is kept; past this the ones not asking in the last second are
    /// forgotten, and every one when that frees less than half, so each sweep is paid for
    /// by as many new sources (a forgotten source regains its burst share, which
    /// everyone's budget still bounds).
    max_sources: usize,
    asking: Asking,
}

/// One source's share, and when it last asked.
struct Source {
    own: TokenBucket,
    last: Instant,
    /// The window it was last counted in ([`Asking::note`]).
    counted: u64,
}

impl<K: Copy + Eq + Hash> FairShare<K> {
    /// Everyone's `rate` a second after a `burst`; one source's share never more than
    /// `most` of either; at most `max_sources` shares kept.
    pub(crate) fn new(rate: u64, burst: u64, most: u64, max_sources: usize) -> FairShare<K> {
        FairShare {
            all: TokenBucket::with_burst(rate, burst),
            rate,
            burst,
            most,
            by_source: HashMap::new(),
            max_sources,
            asking: Asking::new(Instant::now()),
        }
    }

    /// Whether `source` would get one now (its share and everyone's budget both have one),
    /// nothing taken: for a check made before work that may yet be refused for another
    /// reason. Asking counts the source among those sharing, refused or not: a busy source
    /// keeps its share small.
    pub(crate) fn holds(&mut self, source: K, now: Instant) -> bool {
        self.own_holds(source, now) && self.all.holds(1, now)
    }

    /// Whether `source`'s own share has one now (counted as asking), whatever everyone's
    /// budget holds.
    pub(crate) fn own_holds(&mut self, source: K, now: Instant) -> bool {
        self.share_of(source, now).holds(1, now)
    }

    /// Takes one for `source`, if its share and everyone's budget both have one.
    pub(crate) fn try_take(&mut self, source: K, now: Instant) -> bool {
        if !self.holds(source, now) {
            return false;
        }
        self.share_of(source, now).try_take(1, now) && self.all.try_take(1, now)
    }

    /// Takes `spent` for `source` from its share and everyone's budget, owing what they do
    /// not hold: for work whose cost is known once it is done (begun when [`holds`] said
    /// so), the debt paid off at their rates before `source`'s next.
    ///
    /// [`holds`]: FairShare::holds
    pub(crate) fn spend(&mut self, source: K, spent: u64, now: Instant) {
        let spent = usize::try_from(spent).unwrap_or(usize::MAX);
        self.share_of(source, now).take(spent, now);
        self.all.take(spent, now);
    }

    /// How many sources' shares are kept.
    #[cfg(test)]
    pub(crate) fn sources(&self) -> usize {
        self.by_source.len()
    }

    /// The budget of `source`, counted as asking and sized to its share now: a (N+1)th of
    /// everyone's rate among N sources asking, and an Nth of the burst (one source alone
    /// may spend all of the burst at once), neither past `most`.
    fn share_of(&mut self, key: K, now: Instant) -> &mut TokenBucket {
        if !self.by_source.contains_key(&key) && self.by_source.len() >= self.max_sources {
            self.by_source
                .retain(|_, s| now.saturating_duration_since(s.last) < WINDOW);
            if self.by_source.len() > self.max_sources / 2 {
                self.by_source.clear();
            }
        }
        let source = self.by_source.entry(key).or_insert_with(|| Source {
            own: TokenBucket::with_burst(self.rate, self.burst.min(self.most)),
            last: now,
            counted: 0,
        });
        source.last = now;
        let sharing = f64::from(self.asking.note(&mut source.counted, now));
        let most = self.most as f64;
        let rate = (self.rate as f64 / (sharing + 1.0)).min(most);
        let burst = (self.burst as f64 / sharing).floor().min(most);
        source.own.reshape(rate, burst, now);
        &mut source.own
    }
}

/// How many sources asked in this window and the one before, so a share is known in O(1)
/// per ask: the larger of the two counts.
struct Asking {
    start: Instant,
    /// The current window's number, from 1.
    window: u64,
    this: u32,
    before: u32,
}

impl Asking {
    fn new(start: Instant) -> Asking {
        Asking {
            start,
            window: 1,
            this: 0,
            before: 0,
        }
    }

    /// Moves on to `now`'s window.
    fn roll(&mut self, now: Instant) {
        let window = 1 + (now.saturating_duration_since(self.start).as_secs() / WINDOW.as_secs());
        if window != self.window {
            self.before = if window == self.window + 1 {
                self.this
            } else {
                0
            };
            self.this = 0;
            self.window = window;
        }
    }

    /// Counts a source (once per window: `counted` is its last) as asking; how many sources
    /// share now, it among them.
    fn note(&mut self, counted: &mut u64, now: Instant) -> u32 {
        self.roll(now);
        if *counted != self.window {
            *counted = self.window;
            self.this += 1;
        }
        self.this.max(self.before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_busy_users_leave_a_share_for_a_fourth() {
        // The abstract-name walks' shape: 250 a second in all, 100 at most for one.
        let mut budget = FairShare::new(250, 250, 100, 1024);
        let start = Instant::now();
        let mut fourth = 0;
        // Three users spending without pause, a tick a hundredth of a second, for 20 s; a
        // fourth asks once a second from the 10th on.
        for tick in 0..2000u32 {
            let now = start + Duration::from_millis(u64::from(tick) * 10);
            for user in 1..=3u32 {
                if budget.holds(user, now) {
                    budget.spend(user, 5, now);
                }
            }
            if tick >= 1000 && tick % 100 == 0 && budget.holds(4, now) {
                budget.spend(4, 5, now);
                fourth += 1;
            }
        }
        assert_eq!(fourth, 10);
    }

    #[test]
    fn one_source_alone_gets_at_most_its_most() {
        let mut budget = FairShare::new(250, 250, 100, 1024);
        let now = Instant::now();
        let taken = (0..1000).filter(|_| budget.try_take(7u32, now)).count();
        assert_eq!(taken, 100);
        // Another finds the rest of everyone's burst.
        assert!(budget.try_take(8u32, now));
    }
}
