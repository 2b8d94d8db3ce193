//! Simulated network conditions: loss, duplication, reordering, delay with jitter, and a rate
//! (token bucket). One piece of chance for every user: the relay's impairments and the file
//! transfers' `--drop`/`--reorder`. Everything here is simulated and is logged as such.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A seeded pseudo-random generator (xorshift64*): plenty for simulated loss, and the same
/// seed gives the same run.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded(seed: u64) -> Rng {
        // splitmix64 spreads small seeds (0, 1, 2, ...) over the state; xorshift needs it non-zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// A seed from the clock and the process id, for runs that did not ask for one.
    pub(crate) fn clock_seed() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
    }

    /// A uniform number in [0, 1).
    pub(crate) fn chance(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The conditions on one direction of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Conditions {
    /// Added to every message's passage.
    pub delay: Duration,
    /// Each message's delay varies uniformly by up to this much either way (never below 0).
    pub jitter: Duration,
    /// Fraction of messages dropped.
    pub loss: f64,
    /// Fraction of messages sent twice.
    pub duplicate: f64,
    /// Fraction of messages held back and sent after the next one.
    pub reorder: f64,
    /// Bytes per second, through a token bucket.
    pub rate: Option<u64>,
}

impl Conditions {
    pub(crate) fn is_perfect(&self) -> bool {
        *self == Conditions::default()
    }

    /// Whether these conditions lose, duplicate or reorder messages (impossible above a
    /// reliable transport).
    pub(crate) fn reshapes(&self) -> bool {
        self.loss > 0.0 || self.duplicate > 0.0 || self.reorder > 0.0
    }
}

impl fmt::Display for Conditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_perfect() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if !self.delay.is_zero() {
            parts.push(format!("delay {:?}", self.delay));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter {:?}", self.jitter));
        }
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if p > 0.0 {
                parts.push(format!("{name} {}%", p * 100.0));
            }
        }
        if let Some(rate) = self.rate {
            parts.push(format!("rate {} bit/s", rate * 8));
        }
        f.write_str(&parts.join(", "))
    }
}

/// What chance did to the messages of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub dropped: u64,
    pub duplicated: u64,
    /// Messages held back to go out after the next one.
    pub held: u64,
    /// Held messages that went out after the next one: reordered.
    pub reordered: u64,
    /// Held messages that went out alone, no next message having come (see
    /// [`Chaos::release`]): delayed, not reordered.
    pub alone: u64,
}

/// Loss, duplication and reordering of messages, decided one message at a time.
#[derive(Debug)]
pub(crate) struct Chaos {
    cond: Conditions,
    rng: Rng,
    /// A message held back, sent after the next one (reordering).
    held: Option<Vec<u8>>,
    pub counts: Counts,
}

impl Chaos {
    pub(crate) fn new(cond: Conditions, rng: Rng) -> Chaos {
        Chaos {
            cond,
            rng,
            held: None,
            counts: Counts::default(),
        }
    }

    /// Passes `message` through loss, reordering and duplication; appends what goes out now,
    /// in order, to `out`.
    pub(crate) fn pass(&mut self, message: Vec<u8>, out: &mut Vec<Vec<u8>>) {
        let c = self.cond;
        if c.loss > 0.0 && self.rng.chance() < c.loss {
            self.counts.dropped += 1;
            return;
        }
        if c.reorder > 0.0 && self.held.is_none() && self.rng.chance() < c.reorder {
            self.counts.held += 1;
            self.held = Some(message);
            return;
        }
        if c.duplicate > 0.0 && self.rng.chance() < c.duplicate {
            self.counts.duplicated += 1;
            out.push(message.clone());
        }
        out.push(message);
        if let Some(held) = self.held.take() {
            self.counts.reordered += 1;
            out.push(held);
        }
    }

    /// The message held back, if any, to be sent alone: nothing else came for a while, or
    /// nothing else will.
    pub(crate) fn release(&mut self) -> Option<Vec<u8>> {
        let held = self.held.take();
        self.counts.alone += u64::from(held.is_some());
        held
    }

    /// The message held back, if any, never to be sent (its flow closed): counted as neither
    /// reordered nor sent alone.
    pub(crate) fn abandon(&mut self) -> Option<Vec<u8>> {
        self.held.take()
    }

    pub(crate) fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// This message's delay: the base delay, moved by a uniform jitter.
    pub(crate) fn delay(&mut self) -> Duration {
        let c = self.cond;
        if c.jitter.is_zero() {
            return c.delay;
        }
        let shift = (self.rng.chance() * 2.0 - 1.0) * c.jitter.as_secs_f64();
        Duration::from_secs_f64((c.delay.as_secs_f64() + shift).max(0.0))
    }
}

/// A token bucket: on average `rate` bytes per second, with bursts of at most `burst` bytes.
/// A message larger than the tokens left goes into debt, and the next one waits it off, so
/// large messages keep the average exact.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

/// The bucket holds this long's worth of bytes: enough for smooth sending, too little to
/// bend a measured rate.
const BURST: Duration = Duration::from_millis(20);

impl TokenBucket {
    pub(crate) fn new(rate: u64) -> TokenBucket {
        TokenBucket::with_burst(rate, (rate as f64 * BURST.as_secs_f64()).max(1500.0) as u64)
    }

    /// A bucket that holds at most `burst` bytes: how much may go back to back.
    pub(crate) fn with_burst(rate: u64, burst: u64) -> TokenBucket {
        let burst = burst.max(1) as f64;
        TokenBucket {
            rate: rate as f64,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// A bucket for a sender pacing itself on a timer that may fire late: it starts with
    /// `first` bytes (no burst at the start) and holds up to `catch_up` of the rate, so
    /// what a late wake-up owes goes then and the rate asked is kept on average, as
    /// iperf3's -b is (a bucket of a tick's worth would throw each late tick's share away).
    pub(crate) fn catching_up(rate: u64, first: u64, catch_up: Duration) -> TokenBucket {
        let held = (rate as f64 * catch_up.as_secs_f64()) as u64;
        let mut bucket = TokenBucket::with_burst(rate, held.max(first));
        bucket.tokens = first as f64;
        bucket
    }

    /// Takes `bytes` and says how long to wait before sending them.
    pub(crate) fn take(&mut self, bytes: usize, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Takes `n` tokens if the bucket holds them, never going into debt: for work that is
    /// refused, not delayed, past the rate.
    pub(crate) fn try_take(&mut self, n: u64, now: Instant) -> bool {
        if !self.holds(n, now) {
            return false;
        }
        self.tokens -= n as f64;
        true
    }

    /// Whether the bucket holds `n` tokens now, taking none: for a check made before work
    /// that may yet be refused for another reason, the tokens taken once it is not.
    pub(crate) fn holds(&mut self, n: u64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens >= n as f64
    }

    /// A new rate and burst from `now` on, what was earned until then kept up to the new
    /// burst: for a share that shrinks and grows with how many hold one.
    pub(crate) fn reshape(&mut self, rate: f64, burst: f64, now: Instant) {
        self.holds(0, now);
        self.rate = rate;
        self.burst = burst.max(1.0);
        self.tokens = self.tokens.min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_is_roughly_uniform() {
        let mut rng = Rng::seeded(7);
        let below = (0..10_000).filter(|_| rng.chance() < 0.1).count();
        assert!((800..1200).contains(&below), "{below}");
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let (mut a, mut b) = (Rng::seeded(42), Rng::seeded(42));
        assert!((0..100).all(|_| a.chance() == b.chance()));
    }

    #[test]
    fn reordering_sends_the_held_message_after_the_next() {
        let cond = Conditions {
            reorder: 1.0,
            ..Conditions::default()
        };
        let mut chaos = Chaos::new(cond, Rng::seeded(1));
        let mut out = Vec::new();
        chaos.pass(b"a".to_vec(), &mut out);
        assert!(out.is_empty() && chaos.holding());
        chaos.pass(b"b".to_vec(), &mut out);
        assert_eq!(out, [b"b".to_vec(), b"a".to_vec()]);
        assert_eq!(chaos.counts.reordered, 1);
        // With no next message the held one goes alone: held, not reordered.
        out.clear();
        chaos.pass(b"c".to_vec(), &mut out);
        assert_eq!(chaos.release(), Some(b"c".to_vec()));
        assert_eq!((chaos.counts.held, chaos.counts.reordered), (2, 1));
        assert_eq!(chaos.counts.alone, 1);
    }

    #[test]
    fn a_bucket_refuses_past_its_burst_and_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::with_burst(100, 128);
        let taken = (0..1000).filter(|_| bucket.try_take(1, start)).count();
        assert_eq!(taken, 128);
        // A second later, a second's worth more: no debt was run up by the refusals.
        let later = start + Duration::from_secs(1);
        let taken = (0..1000).filter(|_| bucket.try_take(1, later)).count();
        assert_eq!(taken, 100);
    }

    #[test]
    fn a_bucket_paces_to_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000_000);
        // 1 MB at once at 1 MB/s: the last 10 kB wait a second, less the 20 ms burst.
        let last = (0..100).map(|_| bucket.take(10_000, start)).last().unwrap();
        assert!((970..=990).contains(&last.as_millis()), "{last:?}");
    }
}
