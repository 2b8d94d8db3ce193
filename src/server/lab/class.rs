//! How a lab server shares itself among a class: at most [`Limits::runs`] runs measure at
//! once; the others wait, each client in a first-come first-served line of its own, and a
//! turn that frees goes to the waiting client holding the fewest turns (on a tie, the one
//! whose next run has waited longest): fair queueing by client, so one client's many runs
//! never keep another's waiting behind all of them. A client is an address as the cap
//! counts it ([`share_key`]: an IPv6 address's /64, an IPv4 address), in the order, the
//! cap and the echo ports' gate alike. At most [`Limits::queue`] runs wait in all and
//! [`Limits::per_address`] runs (measuring or waiting) come from one client. Each run is
//! told its place in that order as it changes, and its account says how many other runs
//! measured while it did and how long it waited, so no result is silently degraded. Only
//! the clients of runs that hold their turn reach the echo ports ([`Class::admits`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::labwire::Account;
use crate::server::admission::{share_key, share_name};

/// What a lab server allows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Runs measuring at once.
    pub runs: usize,
    /// Runs waiting at once; more are refused.
    pub queue: usize,
    /// Runs (measuring and waiting) from one client address; more are refused.
    pub per_address: usize,
    /// The longest a run may hold its turn.
    pub max_time: Duration,
}

/// A run that joined: its number, its client ([`share_key`] of its address).
#[derive(Debug)]
pub(crate) struct Ticket {
    pub run: u32,
    ip: IpAddr,
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

/// A run in its address's line.
struct Waiting {
    run: u32,
    joined: Instant,
}

#[derive(Default)]
struct State {
    next_run: u32,
    /// Each address's waiting runs, in the order they came; no empty lines.
    waiting: HashMap<IpAddr, VecDeque<Waiting>>,
    waiting_count: usize,
    measuring: HashMap<u32, Measuring>,
    /// Runs holding their turn per address: the echo ports' gate, and the fair order.
    by_ip: HashMap<IpAddr, usize>,
    /// Each waiting run's place, worked out when first asked after a change.
    places: Option<HashMap<u32, usize>>,
    /// When each address was last given a turn, or joined when never given one (a count of
    /// turns given, [`SEQ_STEP`] apart), while it has runs.
    served: HashMap<IpAddr, u64>,
    seq: u64,
    /// When each address holding a turn last reached an echo port.
    active: HashMap<IpAddr, Instant>,
}

impl State {
    /// Runs measuring and waiting from client `key` ([`share_key`]).
    fn held_by(&self, key: IpAddr) -> usize {
        let measuring = self.by_ip.get(&key).copied().unwrap_or(0);
        measuring + self.waiting.get(&key).map_or(0, VecDeque::len)
    }

    /// Every waiting run's place: the order turns go in if the runs measuring now end
    /// the longest-running first and each freed turn goes as [`Fair`] says.
    fn order(&self, runs: usize) -> HashMap<u32, usize> {
        let mut fair = Fair::of(self);
        let mut started: Vec<(Instant, IpAddr)> =
            self.measuring.values().map(|m| (m.started, m.ip)).collect();
        started.sort();
        let mut ending: VecDeque<IpAddr> = started.into_iter().map(|(_, ip)| ip).collect();
        let mut free = runs.saturating_sub(self.measuring.len());
        let mut keys: BTreeSet<Key> = self.waiting.keys().filter_map(|ip| fair.key(*ip)).collect();
        let mut places = HashMap::with_capacity(self.waiting_count);
        while !keys.is_empty() {
            if free > 0 {
                free -= 1;
            } else if let Some(ip) = ending.pop_front() {
                let before = fair.key(ip);
                fair.ended(ip);
                if let Some(before) = before {
                    keys.remove(&before);
                    keys.extend(fair.key(ip));
                }
            }
            let Some(first) = keys.pop_first() else {
                break;
            };
            let ip = first.4;
            places.insert(first.3, places.len() + 1);
            fair.given(ip);
            ending.push_back(ip);
            keys.extend(fair.key(ip));
        }
        places
    }

    fn place(&mut self, run: u32, runs: usize) -> usize {
        if self.places.is_none() {
            self.places = Some(self.order(runs));
        }
        self.places
            .as_ref()
            .and_then(|places| places.get(&run).copied())
            .unwrap_or(0)
    }

    /// Takes `run` out of its address's line, if it waits there.
    fn unqueue(&mut self, ip: IpAddr, run: u32) {
        let Some(line) = self.waiting.get_mut(&ip) else {
            return;
        };
        let before = line.len();
        line.retain(|w| w.run != run);
        self.waiting_count -= before - line.len();
        if line.is_empty() {
            self.waiting.remove(&ip);
        }
        self.places = None;
        self.forget_if_gone(ip);
    }

    /// An address with no run left measuring or waiting leaves the rotation.
    fn forget_if_gone(&mut self, ip: IpAddr) {
        if !self.waiting.contains_key(&ip) && !self.by_ip.contains_key(&ip) {
            self.served.remove(&ip);
        }
    }
}

/// Turns given are counted in twos, so that a newcomer ranks between two of them.
const SEQ_STEP: u64 = 2;

/// Where an address stands for the next free turn: turns it holds, when it was last given
/// one (for a newcomer: when it came), when its next run came, that run, the address. The
/// least goes first.
type Key = (usize, u64, Instant, u32, IpAddr);

/// The fair order worked forward from a state: turns held and last given per address, and
/// how far into each address's line turns have gone.
struct Fair<'a> {
    waiting: &'a HashMap<IpAddr, VecDeque<Waiting>>,
    held: HashMap<IpAddr, usize>,
    served: HashMap<IpAddr, u64>,
    seq: u64,
    given: HashMap<IpAddr, usize>,
}

impl<'a> Fair<'a> {
    fn of(state: &'a State) -> Fair<'a> {
        Fair {
            waiting: &state.waiting,
            held: state.by_ip.clone(),
            served: state.served.clone(),
            seq: state.seq,
            given: HashMap::new(),
        }
    }

    /// `ip`'s place in the rotation, while it has a run waiting.
    fn key(&self, ip: IpAddr) -> Option<Key> {
        let next = self
            .waiting
            .get(&ip)?
            .get(self.given.get(&ip).copied().unwrap_or(0))?;
        Some((
            self.held.get(&ip).copied().unwrap_or(0),
            self.served.get(&ip).copied().unwrap_or(0),
            next.joined,
            next.run,
            ip,
        ))
    }

    /// The address the next free turn goes to.
    fn first(&self) -> Option<IpAddr> {
        self.waiting
            .keys()
            .filter_map(|ip| self.key(*ip))
            .min()
            .map(|k| k.4)
    }

    /// `ip` is given a turn: its next run measures.
    fn given(&mut self, ip: IpAddr) {
        *self.held.entry(ip).or_default() += 1;
        self.seq += SEQ_STEP;
        self.served.insert(ip, self.seq);
        *self.given.entry(ip).or_default() += 1;
    }

    /// A run of `ip` ends its turn.
    fn ended(&mut self, ip: IpAddr) {
        if let Some(n) = self.held.get_mut(&ip) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The lab server's runs.
pub(crate) struct Class {
    pub limits: Limits,
    state: Mutex<State>,
    turn: Condvar,
    /// How many times an address's last turn has ended: echo connections look again at the
    /// gate when it moves.
    ended: AtomicU64,
}

impl Class {
    pub(crate) fn new(limits: Limits) -> Class {
        Class {
            limits,
            state: Mutex::default(),
            turn: Condvar::new(),
            ended: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new run from `ip` joins its address's line, or is refused: past the runs one
    /// address may hold, or when the queue is full.
    pub(crate) fn join(&self, ip: IpAddr) -> Result<Ticket, String> {
        // Every count and the fair order by client as the cap counts them: a host spreading
        // its runs over the addresses of its /64 is one client, not many.
        let ip = share_key(ip);
        let mut state = self.lock();
        let held = state.held_by(ip);
        if held >= self.limits.per_address {
            let are = if held == 1 { "is" } else { "are" };
            return Err(format!(
                "{} from {} {are} measuring or waiting, the most one address may \
                 hold; for a class behind one NAT address the teacher raises \
                 --lab-per-address (now {})",
                crate::units::count(held, "run"),
                share_name(ip),
                self.limits.per_address
            ));
        }
        // A free turn is taken at once; past that the queue holds at most its limit.
        if state.measuring.len() >= self.limits.runs && state.waiting_count >= self.limits.queue {
            return Err(format!(
                "the lab server is busy: {} measuring and {} waiting, the most its queue \
                 holds; try again in a minute",
                crate::units::count(state.measuring.len(), "run"),
                state.waiting_count
            ));
        }
        state.next_run = state.next_run.wrapping_add(1);
        let run = state.next_run;
        let joined = Instant::now();
        state
            .waiting
            .entry(ip)
            .or_default()
            .push_back(Waiting { run, joined });
        state.waiting_count += 1;
        // A newcomer ranks as served just before the last turn given when it came: ahead
        // of the address holding that turn, behind every address that waits since earlier,
        // so a stream of new (or returning) addresses never keeps a waiting run waiting.
        let seq = state.seq.saturating_sub(1);
        state.served.entry(ip).or_insert(seq);
        state.places = None;
        self.promote(&mut state);
        Ok(Ticket { run, ip })
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
        Turn::Waiting {
            place: state.place(ticket.run, self.limits.runs),
            measuring: state.measuring.len(),
        }
    }

    /// The run ends (finished, gone, or out of time): its turn goes to the next. Its
    /// account when it had measured.
    #[cfg(test)]
    pub(crate) fn leave(&self, ticket: &Ticket) -> Option<Account> {
        self.leave_saying(ticket, |_| {})
    }

    /// As `leave`, `say` told the account before the turn goes to the next run.
    pub(crate) fn leave_saying(
        &self,
        ticket: &Ticket,
        say: impl FnOnce(Option<&Account>),
    ) -> Option<Account> {
        let mut state = self.lock();
        state.unqueue(ticket.ip, ticket.run);
        let run = state.measuring.remove(&ticket.run);
        if let Some(m) = &run {
            match state.by_ip.get_mut(&m.ip) {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    state.by_ip.remove(&m.ip);
                    state.active.remove(&m.ip);
                    self.ended.fetch_add(1, Ordering::Release);
                }
            }
            state.places = None;
        }
        let account = run.map(|m| Account {
            shared_with: m.shared_with,
            most_at_once: m.most_at_once.min(u16::MAX as usize) as u16,
            waited_ms: millis(m.waited),
            measured_ms: millis(m.started.elapsed()),
        });
        say(account.as_ref());
        self.promote(&mut state);
        state.forget_if_gone(ticket.ip);
        account
    }

    /// Whether `ip` holds a turn now: only such addresses reach the echo ports. Asked at
    /// each echo connection and datagram, so an address let in is active now.
    pub(crate) fn admits(&self, ip: IpAddr) -> bool {
        let ip = share_key(ip);
        let mut state = self.lock();
        let admitted = state.by_ip.contains_key(&ip);
        if admitted {
            state.active.insert(ip, Instant::now());
        }
        admitted
    }

    /// Whether `ticket`'s turn has been idle for `idle` (its address reached no echo port
    /// since its turn began, or for that long) while other runs wait: a turn is for
    /// measuring, and one held doing nothing keeps the class waiting.
    pub(crate) fn idle_while_others_wait(&self, ticket: &Ticket, idle: Duration) -> bool {
        let state = self.lock();
        let Some(m) = state.measuring.get(&ticket.run) else {
            return false;
        };
        let last = state
            .active
            .get(&m.ip)
            .map_or(m.started, |at| (*at).max(m.started));
        state.waiting_count > 0 && last.elapsed() >= idle
    }

    /// Turns `ip` holds now.
    pub(crate) fn turns_of(&self, ip: IpAddr) -> usize {
        self.lock().by_ip.get(&share_key(ip)).copied().unwrap_or(0)
    }

    /// A count that moves whenever an address's last turn ends.
    pub(crate) fn turns_ended(&self) -> u64 {
        self.ended.load(Ordering::Acquire)
    }

    /// Runs waiting now.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting_count
    }

    /// Runs measuring and waiting now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.measuring.len(), state.waiting_count)
    }

    /// Free turns go to the waiting runs the fair order puts first; every run measuring
    /// with them counts them, and they count it.
    fn promote(&self, state: &mut State) {
        let mut promoted = false;
        while state.measuring.len() < self.limits.runs {
            let Some(ip) = Fair::of(state).first() else {
                break;
            };
            let Some((run, joined)) = state.waiting[&ip].front().map(|w| (w.run, w.joined)) else {
                break;
            };
            state.unqueue(ip, run);
            let at_once = state.measuring.len() + 1;
            for m in state.measuring.values_mut() {
                m.shared_with += 1;
                m.most_at_once = m.most_at_once.max(at_once);
            }
            *state.by_ip.entry(ip).or_default() += 1;
            state.seq += SEQ_STEP;
            let seq = state.seq;
            state.served.insert(ip, seq);
            let others = state.measuring.len() as u32;
            state.measuring.insert(
                run,
                Measuring {
                    ip,
                    waited: joined.elapsed(),
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
            per_address: 8,
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
            refused.contains("1 run measuring and 1 waiting"),
            "{refused}"
        );
        class.leave(&a);
        // The same address's second run now holds the turn: the gate stays open.
        assert!(class.admits(ip(1)));
        assert!(class.admits("::ffff:10.0.0.1".parse().unwrap()));
        class.leave(&b);
        assert!(!class.admits(ip(1)));
    }

    fn place(class: &Class, ticket: &Ticket) -> usize {
        match class.wait_turn(ticket, NOW) {
            Turn::Waiting { place, .. } => place,
            Turn::Go { .. } => 0,
        }
    }

    #[test]
    fn a_second_address_waits_behind_none_of_the_first_ones_runs() {
        let class = class(1, 20);
        let first = class.join(ip(1)).unwrap();
        let many: Vec<Ticket> = (0..5).map(|_| class.join(ip(1)).unwrap()).collect();
        let other = class.join(ip(2)).unwrap();
        // ip(1) holds the turn: the other address is next, ip(1)'s own runs after it.
        assert_eq!(place(&class, &other), 1);
        let places: Vec<usize> = many.iter().map(|t| place(&class, t)).collect();
        assert_eq!(places, [2, 3, 4, 5, 6]);
        class.leave(&first);
        assert!(matches!(class.wait_turn(&other, NOW), Turn::Go { .. }));
        assert_eq!(place(&class, &many[0]), 1);
        // A newcomer ranks behind an address that waits since before it came, ahead of
        // that address's next turn; then the turns go round.
        let third = class.join(ip(3)).unwrap();
        assert_eq!(place(&class, &many[0]), 1);
        assert_eq!(place(&class, &third), 2);
        assert_eq!(place(&class, &many[1]), 3);
        class.leave(&other);
        assert!(matches!(class.wait_turn(&many[0], NOW), Turn::Go { .. }));
        assert_eq!(place(&class, &third), 1);
        // Each place told came true: the next turn goes to the run told it is number 1.
        class.leave(&many[0]);
        assert!(matches!(class.wait_turn(&third, NOW), Turn::Go { .. }));
        assert_eq!(class.counts(), (1, 4));
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_mapped_addresses_are_the_same() {
        let class = class(1, 64);
        let held: Vec<Ticket> = (0..8).map(|_| class.join(ip(1)).unwrap()).collect();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let refused = class.join(mapped).unwrap_err();
        assert!(refused.contains("8 runs from 10.0.0.1"), "{refused}");
        assert!(refused.contains("--lab-per-address"), "{refused}");
        assert!(class.join(ip(2)).is_ok());
        class.leave(&held[3]);
        assert!(class.join(ip(1)).is_ok());
    }

    #[test]
    fn an_ipv6_64_counts_as_one_address() {
        let class = class(1, 64);
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let _held: Vec<Ticket> = (1..=8).map(|n| class.join(host(n)).unwrap()).collect();
        let refused = class.join(host(9)).unwrap_err();
        assert!(
            refused.contains("8 runs from 2001:db8:0:1::/64"),
            "{refused}"
        );
        assert!(
            class
                .join(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]))
                .is_ok()
        );
        // The echo ports' gate counts clients as the cap does: the /64 holds the turn.
        assert!(class.admits(host(1)) && class.admits(host(9)));
        assert!(!class.admits(IpAddr::from([0x2001, 0xdb8, 0, 3, 0, 0, 0, 1])));
        assert_eq!(share_key("::ffff:10.0.0.1".parse().unwrap()), ip(1));
    }

    #[test]
    fn the_places_told_are_the_order_turns_go_in() {
        // Two turns, three addresses with several runs each: every place told comes true
        // as the longest-running run ends each time.
        let class = class(2, 40);
        let mut tickets: Vec<Ticket> = Vec::new();
        for round in 0..4 {
            for last in [1, 1, 2, 3] {
                tickets.push(class.join(ip(last + round % 2)).unwrap());
            }
        }
        let mut measuring: VecDeque<Ticket> = VecDeque::new();
        let mut waiting = Vec::new();
        for t in tickets {
            match class.wait_turn(&t, NOW) {
                Turn::Go { .. } => measuring.push_back(t),
                Turn::Waiting { .. } => waiting.push(t),
            }
        }
        waiting.sort_by_key(|t| place(&class, t));
        let places: Vec<usize> = waiting.iter().map(|t| place(&class, t)).collect();
        assert_eq!(places, (1..=waiting.len()).collect::<Vec<_>>());
        for next in waiting {
            let done = measuring.pop_front().unwrap();
            class.leave(&done);
            assert!(matches!(class.wait_turn(&next, NOW), Turn::Go { .. }));
            measuring.push_back(next);
        }
    }
}
