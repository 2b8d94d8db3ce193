//! The budget of new connections to TO for datagram senders at unproven addresses: one for
//! everyone ([`NEW_CONNS_PER_SEC`]), and under it a small one per source (an IPv4 address,
//! an IPv6 /64), so one host sending from a new address of its /64 each datagram spends its
//! own share, never every other newcomer's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::endpoint::share_key;
use crate::impair::TokenBucket;

use super::{NEW_CONNS_BURST, NEW_CONNS_PER_SEC};

/// New connections a second for one source: a tenth of everyone's, so a source that spends
/// its own without pause leaves nine tenths to the others. The burst is everyone's: one
/// source may still open all its flows at once.
const PER_SOURCE: u64 = NEW_CONNS_PER_SEC / 10;
/// Sources whose budget is kept; past this the idle ones are forgotten (their budget full
/// again), then every one (a forgotten source regains a burst, which everyone's budget
/// still bounds).
const MAX_SOURCES: usize = 4096;

pub(crate) struct Newcomers {
    all: TokenBucket,
    /// Each source's budget, and when it last spent from it.
    by_source: HashMap<IpAddr, (TokenBucket, Instant)>,
}

impl Newcomers {
    pub(crate) fn new() -> Newcomers {
        Newcomers {
            all: TokenBucket::with_burst(NEW_CONNS_PER_SEC, NEW_CONNS_BURST),
            by_source: HashMap::new(),
        }
    }

    /// Whether a sender at `ip` would get a new connection now (its source's budget and
    /// everyone's both have one), nothing taken: the relay asks before it makes room for the
    /// sender, and takes ([`Newcomers::try_take`]) once it has.
    pub(crate) fn holds(&mut self, ip: IpAddr, now: Instant) -> bool {
        let own = match self.by_source.get_mut(&share_key(ip)) {
            Some((own, _)) => own.holds(1, now),
            // A source not seen lately has its whole burst.
            None => true,
        };
        own && self.all.holds(1, now)
    }

    /// Takes one new connection for a sender at `ip`, if its source's budget and everyone's
    /// both have one.
    pub(crate) fn try_take(&mut self, ip: IpAddr, now: Instant) -> bool {
        let source = share_key(ip);
        if !self.by_source.contains_key(&source) && self.by_source.len() >= MAX_SOURCES {
            // A budget unused this long has refilled: forgetting it changes nothing.
            let refilled = Duration::from_secs(NEW_CONNS_BURST / PER_SOURCE + 1);
            self.by_source
                .retain(|_, (_, last)| now.duration_since(*last) < refilled);
            if self.by_source.len() >= MAX_SOURCES {
                self.by_source.clear();
            }
        }
        let (own, last) = self
            .by_source
            .entry(source)
            .or_insert_with(|| (TokenBucket::with_burst(PER_SOURCE, NEW_CONNS_BURST), now));
        *last = now;
        own.try_take(1, now) && self.all.try_take(1, now)
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
        // A second on, the flood has its tenth; another source finds the rest.
        let later = now + Duration::from_secs(1);
        let flood = (0..10_000u32)
            .filter(|i| budget.try_take(format!("2001:db8::1:{i:x}").parse().unwrap(), later))
            .count();
        assert!(flood as u64 <= PER_SOURCE + 1, "{flood}");
        assert!(budget.try_take("192.0.2.1".parse().unwrap(), later));
    }
}
