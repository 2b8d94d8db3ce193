//! The budget of new connections to TO for datagram senders at unproven addresses: one for
//! everyone ([`NEW_CONNS_PER_SEC`]), and under it a fair share per source (an IPv4 address,
//! an IPv6 /64) that shrinks as more sources ask: with N sources asking in the last second
//! each gets a (N+1)th of it, so a few busy sources (or one host sending from a new address
//! of its /64 each datagram) never spend all of it, and the share left over is there for a
//! source that was not asking yet.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::endpoint::share_key;
use crate::impair::TokenBucket;

use super::{NEW_CONNS_BURST, NEW_CONNS_PER_SEC};

/// Sources whose budget is kept; past this the ones not asking in the last second are
/// forgotten, and every one when that frees less than half, so each sweep is paid for by as
/// many new sources (a forgotten source regains its burst share, which everyone's budget
/// still bounds).
const MAX_SOURCES: usize = 4096;
/// The window in which a source counts as asking.
const WINDOW: Duration = Duration::from_secs(1);

pub(crate) struct Newcomers {
    all: TokenBucket,
    by_source: HashMap<IpAddr, Source>,
    asking: Asking,
}

/// One source's share, and when it last asked.
struct Source {
    own: TokenBucket,
    last: Instant,
    /// The window it was last counted in ([`Asking::note`]).
    counted: u64,
}

impl Newcomers {
    pub(crate) fn new() -> Newcomers {
        Newcomers {
            all: TokenBucket::with_burst(NEW_CONNS_PER_SEC, NEW_CONNS_BURST),
            by_source: HashMap::new(),
            asking: Asking::new(Instant::now()),
        }
    }

    /// Whether a sender at `ip` would get a new connection now (its source's share and
    /// everyone's budget both have one), nothing taken: the relay asks before it makes room
    /// for the sender, and takes ([`Newcomers::try_take`]) once it has. Asking counts the
    /// source among those sharing, refused or not: a busy source keeps its share small.
    pub(crate) fn holds(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.share_of(ip, now).holds(1, now) && self.all.holds(1, now)
    }

    /// Takes one new connection for a sender at `ip`, if its source's share and everyone's
    /// budget both have one.
    pub(crate) fn try_take(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.holds(ip, now) {
            return false;
        }
        self.share_of(ip, now).try_take(1, now) && self.all.try_take(1, now)
    }

    /// The budget of `ip`'s source, counted as asking and sized to its share now: a
    /// (N+1)th of everyone's rate among N sources asking, and an Nth of the burst (one
    /// source alone may open all its flows at once).
    fn share_of(&mut self, ip: IpAddr, now: Instant) -> &mut TokenBucket {
        let key = share_key(ip);
        if !self.by_source.contains_key(&key) && self.by_source.len() >= MAX_SOURCES {
            self.by_source
                .retain(|_, s| now.saturating_duration_since(s.last) < WINDOW);
            if self.by_source.len() > MAX_SOURCES / 2 {
                self.by_source.clear();
            }
        }
        let source = self.by_source.entry(key).or_insert_with(|| Source {
            own: TokenBucket::with_burst(NEW_CONNS_PER_SEC, NEW_CONNS_BURST),
            last: now,
            counted: 0,
        });
        source.last = now;
        let sharing = f64::from(self.asking.note(&mut source.counted, now));
        let rate = NEW_CONNS_PER_SEC as f64 / (sharing + 1.0);
        let burst = (NEW_CONNS_BURST as f64 / sharing).floor();
        source.own.reshape(rate, burst, now);
        &mut source.own
    }
}

/// How many sources asked in this window and the one before, so a share is known in O(1)
/// per datagram: the larger of the two counts.
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
    fn one_64_spending_its_budget_leaves_the_rest_to_others() {
        let mut budget = Newcomers::new();
        let now = Instant::now();
        let flood = (0..10_000u32)
            .filter(|i| budget.try_take(format!("2001:db8::{i:x}").parse().unwrap(), now))
            .count();
        assert_eq!(flood as u64, NEW_CONNS_BURST);
        // A second on, the flood has its half (it alone asked); another source finds the
        // rest.
        let later = now + Duration::from_secs(1);
        let flood = (0..10_000u32)
            .filter(|i| budget.try_take(format!("2001:db8::1:{i:x}").parse().unwrap(), later))
            .count();
        assert!(flood as u64 <= NEW_CONNS_PER_SEC / 2 + 1, "{flood}");
        assert!(budget.try_take("192.0.2.1".parse().unwrap(), later));
    }

    #[test]
    fn forged_sources_spend_only_everyones_budget_and_are_kept_within_bounds() {
        let mut budget = Newcomers::new();
        let now = Instant::now();
        let taken = (0..20_000u32)
            .filter(|i| budget.try_take(IpAddr::from(std::net::Ipv4Addr::from(i << 8)), now))
            .count();
        assert_eq!(taken as u64, NEW_CONNS_BURST);
        assert!(budget.by_source.len() <= MAX_SOURCES);
    }

    #[test]
    fn twelve_busy_sources_leave_a_share_for_a_new_one() {
        let mut budget = Newcomers::new();
        let start = Instant::now();
        let mut newcomer = 0;
        // Twelve sources asking without pause, a tick a hundredth of a second, for 20 s;
        // a thirteenth source asks once a second from the 10th on.
        for tick in 0..2000u32 {
            let now = start + Duration::from_millis(u64::from(tick) * 10);
            for source in 1..=12 {
                budget.try_take(format!("198.51.100.{source}").parse().unwrap(), now);
            }
            if tick >= 1000 && tick % 100 == 0 {
                newcomer += usize::from(budget.try_take("192.0.2.1".parse().unwrap(), now));
            }
        }
        assert_eq!(newcomer, 10);
    }
}
