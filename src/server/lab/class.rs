//! How a lab server shares itself among a class: at most [`Limits::runs`] runs measure at
//! once, the others wait in one first-come first-served queue of at most
//! [`Limits::queue`], each told its place. Every run's account says how many other runs
//! measured while it did and how long it waited, so no result is silently degraded. Only
//! the addresses of runs that hold their turn reach the echo ports ([`Class::admits`]).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::labwire::Account;

/// What a lab server allows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Runs measuring at once.
    pub runs: usize,
    /// Runs waiting at once; more are refused.
    pub queue: usize,
    /// The longest a run may hold its turn.
    pub max_time: Duration,
}

/// A run that joined: its number, its address, when it came.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub run: u32,
    ip: IpAddr,
    joined: Instant,
}

/// Where a run stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Its turn: measure now, beside `others` runs.
    Go { others: usize, waited: Duration },
    /// Waiting: `place` 1 is next; `measuring` runs hold their turn.
    Waiting { place: usize, measuring: usize },
}

/// A run holding its turn.
struct Measuring {
    ip: IpAddr,
    waited: Duration,
    started: Instant,
    shared_with: u32,
    most_at_once: usize,
}

#[derive(Default)]
struct State {
    next_run: u32,
    waiting: VecDeque<Ticket>,
    measuring: HashMap<u32, Measuring>,
    /// Runs holding their turn per address: the echo ports' gate.
    by_ip: HashMap<IpAddr, usize>,
}

/// The lab server's runs.
pub(crate) struct Class {
    pub limits: Limits,
    state: Mutex<State>,
    turn: Condvar,
}

impl Class {
    pub(crate) fn new(limits: Limits) -> Class {
        Class {
            limits,
            state: Mutex::default(),
            turn: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new run from `ip` joins the queue, or is refused when the queue is full.
    pub(crate) fn join(&self, ip: IpAddr) -> Result<Ticket, String> {
        let mut state = self.lock();
        // A free turn is taken at once; past that the queue holds at most its limit.
        if state.measuring.len() >= self.limits.runs && state.waiting.len() >= self.limits.queue {
            return Err(format!(
                "the lab server is busy: {} runs measuring and {} waiting, the most its queue \
                 holds; try again in a minute",
                state.measuring.len(),
                state.waiting.len()
            ));
        }
        state.next_run = state.next_run.wrapping_add(1);
        let run = state.next_run;
        state.waiting.push_back(Ticket {
            run,
            ip: ip.to_canonical(),
            joined: Instant::now(),
        });
        self.promote(&mut state);
        Ok(Ticket {
            run,
            ip: ip.to_canonical(),
            joined: Instant::now(),
        })
    }

    /// Where `ticket` stands, waiting up to `wait` for its turn to come.
    pub(crate) fn wait_turn(&self, ticket: &Ticket, wait: Duration) -> Turn {
        let mut state = self.lock();
        if !state.measuring.contains_key(&ticket.run) {
            state = self
                .turn
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(m) = state.measuring.get(&ticket.run) {
            return Turn::Go {
                others: state.measuring.len() - 1,
                waited: m.waited,
            };
        }
        let place = state
            .waiting
            .iter()
            .position(|t| t.run == ticket.run)
            .map_or(0, |i| i + 1);
        Turn::Waiting {
            place,
            measuring: state.measuring.len(),
        }
    }

    /// The run ends (finished, gone, or out of time): its turn goes to the next. Its
    /// account when it had measured.
    pub(crate) fn leave(&self, ticket: &Ticket) -> Option<Account> {
        let mut state = self.lock();
        state.waiting.retain(|t| t.run != ticket.run);
        let run = state.measuring.remove(&ticket.run);
        if let Some(m) = &run {
            match state.by_ip.get_mut(&m.ip) {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    state.by_ip.remove(&m.ip);
                }
            }
        }
        self.promote(&mut state);
        run.map(|m| Account {
            shared_with: m.shared_with,
            most_at_once: m.most_at_once.min(u16::MAX as usize) as u16,
            waited_ms: millis(m.waited),
            measured_ms: millis(m.started.elapsed()),
        })
    }

    /// Whether `ip` holds a turn now: only such addresses reach the echo ports.
    pub(crate) fn admits(&self, ip: IpAddr) -> bool {
        self.lock().by_ip.contains_key(&ip.to_canonical())
    }

    /// Runs measuring and waiting now.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.measuring.len(), state.waiting.len())
    }

    /// The first waiting runs take the free turns; every run measuring with them counts
    /// them, and they count it.
    fn promote(&self, state: &mut State) {
        let mut promoted = false;
        while state.measuring.len() < self.limits.runs {
            let Some(next) = state.waiting.pop_front() else {
                break;
            };
            let at_once = state.measuring.len() + 1;
            for m in state.measuring.values_mut() {
                m.shared_with += 1;
                m.most_at_once = m.most_at_once.max(at_once);
            }
            *state.by_ip.entry(next.ip).or_default() += 1;
            let others = state.measuring.len() as u32;
            state.measuring.insert(
                next.run,
                Measuring {
                    ip: next.ip,
                    waited: next.joined.elapsed(),
                    started: Instant::now(),
                    shared_with: others,
                    most_at_once: at_once,
                },
            );
            promoted = true;
        }
        if promoted {
            self.turn.notify_all();
        }
    }
}

/// Milliseconds, saturating at u32.
pub(crate) fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(runs: usize, queue: usize) -> Class {
        Class::new(Limits {
            runs,
            queue,
            max_time: Duration::from_secs(60),
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn runs_past_the_limit_wait_their_turn_in_order() {
        let class = class(2, 10);
        let a = class.join(ip(1)).unwrap();
        let b = class.join(ip(2)).unwrap();
        let c = class.join(ip(3)).unwrap();
        let d = class.join(ip(4)).unwrap();
        assert!(matches!(
            class.wait_turn(&a, NOW),
            Turn::Go { others: 1, .. }
        ));
        assert!(matches!(class.wait_turn(&b, NOW), Turn::Go { .. }));
        assert_eq!(
            class.wait_turn(&c, NOW),
            Turn::Waiting {
                place: 1,
                measuring: 2
            }
        );
        assert_eq!(
            class.wait_turn(&d, NOW),
            Turn::Waiting {
                place: 2,
                measuring: 2
            }
        );
        assert!(class.admits(ip(1)) && !class.admits(ip(3)));
        let account = class.leave(&a).unwrap();
        assert_eq!((account.shared_with, account.most_at_once), (1, 2));
        assert!(!class.admits(ip(1)));
        assert!(matches!(
            class.wait_turn(&c, NOW),
            Turn::Go { others: 1, .. }
        ));
        assert_eq!(
            class.wait_turn(&d, NOW),
            Turn::Waiting {
                place: 1,
                measuring: 2
            }
        );
        // b saw a and then c beside it: two other runs; its leaving lets d in.
        assert_eq!(class.leave(&b).unwrap().shared_with, 2);
        assert!(matches!(
            class.wait_turn(&d, NOW),
            Turn::Go { others: 1, .. }
        ));
        assert_eq!(class.leave(&d).unwrap().shared_with, 1);
        assert_eq!(class.counts(), (1, 0));
        assert_eq!(class.leave(&c).unwrap().shared_with, 2);
    }

    #[test]
    fn without_a_queue_a_free_turn_is_still_taken() {
        let class = class(1, 0);
        let a = class.join(ip(1)).unwrap();
        assert!(matches!(
            class.wait_turn(&a, NOW),
            Turn::Go { others: 0, .. }
        ));
        assert!(class.join(ip(2)).is_err());
        class.leave(&a);
        assert!(class.join(ip(2)).is_ok());
    }

    #[test]
    fn a_full_queue_refuses_and_the_gate_counts_runs_per_address() {
        let class = class(1, 1);
        let a = class.join(ip(1)).unwrap();
        let b = class.join(ip(1)).unwrap();
        let refused = class.join(ip(2)).unwrap_err();
        assert!(
            refused.contains("1 runs measuring and 1 waiting"),
            "{refused}"
        );
        class.leave(&a);
        // The same address's second run now holds the turn: the gate stays open.
        assert!(class.admits(ip(1)));
        assert!(class.admits("::ffff:10.0.0.1".parse().unwrap()));
        class.leave(&b);
        assert!(!class.admits(ip(1)));
    }
}
