//! The budget of new connections to TO for datagram senders at unproven addresses: one for
//! everyone ([`NEW_CONNS_PER_SEC`]), and under it a fair share per source (an IPv4 address,
//! an IPv6 /64) that shrinks as more sources ask: with N sources asking in the last second
//! each gets a (N+1)th of it, so a few busy sources (or one host sending from a new address
//! of its /64 each datagram) never spend all of it, and the share left over is there for a
//! source that was not asking yet ([`FairShare`]).

use std::net::IpAddr;
use std::time::Instant;

use crate::endpoint::share_key;
use crate::fair_share::FairShare;

use super::{NEW_CONNS_BURST, NEW_CONNS_PER_SEC};

/// Sources whose budget is kept ([`FairShare`] forgets the ones not asking past this).
const MAX_SOURCES: usize = 4096;

pub(crate) struct Newcomers(FairShare<IpAddr>);

impl Newcomers {
    pub(crate) fn new() -> Newcomers {
        Newcomers(FairShare::new(
            NEW_CONNS_PER_SEC,
            NEW_CONNS_BURST,
            NEW_CONNS_BURST,
            MAX_SOURCES,
        ))
    }

    /// Whether a sender at `ip` would get a new connection now (its source's share and
    /// everyone's budget both have one), nothing taken: the relay asks before it makes room
    /// for the sender, and takes ([`Newcomers::try_take`]) once it has. Asking counts the
    /// source among those sharing, refused or not: a busy source keeps its share small.
    pub(crate) fn holds(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.0.holds(share_key(ip), now)
    }

    /// Takes one new connection for a sender at `ip`, if its source's share and everyone's
    /// budget both have one.
    pub(crate) fn try_take(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.0.try_take(share_key(ip), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert!(budget.0.sources() <= MAX_SOURCES);
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
