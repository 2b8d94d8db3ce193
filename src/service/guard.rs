//! What every datagram service (echo, files, exec, the relay's listening side) checks before
//! it answers or starts anything for a datagram, so that one forged datagram cannot start an
//! endless loop and one source cannot take the server: the sender is not the server's own
//! address, not a small-service port, within its rate, and not sending back the same
//! datagram again and again (another echo server answering this one). The rules that
//! depend on the sender's address alone are decided at its first datagram and kept in its
//! slot; the counts (rate, repeats) are updated at every datagram.

use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use socket2::SockAddr;

use crate::endpoint::{Share, share_key};
use crate::transport::PeerAddr;
pub(crate) use crate::transport::ip::is_this_host;
use crate::transport::ip::local_ips;

use super::table_hash::{TableHasher, TableMap, recent_slot};

/// Source ports of the classic small services that answer whatever they get: echo (7),
/// discard (9), daytime (13), chargen (19), time (37). Answering them, or port 0, can start
/// two services talking to each other forever.
pub(crate) const LOOP_PORTS: [u16; 6] = [0, 7, 9, 13, 19, 37];

/// Echo replies per second per source address when --rate-limit is not given: for sources
/// off this host only (loopback and this host's own IPv4 addresses are limited by --rate-limit
/// alone, so bench and lab on one machine measure the server, not the guard).
pub(crate) const DEFAULT_ECHO_RATE: u32 = 50_000;
/// Requests (files, exec) started per second per source address, from any source.
pub(crate) const DEFAULT_REQUEST_RATE: u32 = 100;
/// Datagrams in a row from one sender that each repeat one of its recent datagrams: past
/// this, the sender is answering this server (two echo servers made to talk to each other,
/// with one payload or several in turn) and one datagram is dropped, which takes one
/// payload out of such a loop. A client that sends the same message this many times in a
/// row loses one of them, unless the message cannot be a reply (see
/// [`GuardRules::replies_upper`]). Short, as one forged datagram costs two servers up to
/// twice this many before its loop ends; long enough that distinct datagrams never match
/// this many times in a row by chance (at most a quarter each, see [`SEEN_GENERATION`]).
/// For senders off this host: see [`REFLECT_STREAK_HERE`].
pub(crate) const REFLECT_STREAK: u32 = 16;
/// The same for senders on this host (loopback, its own IPv4 addresses), whose sources no
/// other host can forge (the kernel drops a packet from outside that claims one; see
/// [`datagram_from_this_host`] for why not its other IPv6 addresses): a loop there
/// takes a local program, and a client repeating one message loses one reply in 1000.
pub(crate) const REFLECT_STREAK_HERE: u32 = 1000;

/// Sources tracked at once (rates, repeats); past this, the quietest are forgotten: the
/// older half of the budgets at once (a newcomer is never refused for want of room, so
/// sources cycling through addresses cannot shut others out).
const MAX_SOURCES: usize = 4096;

/// Why a datagram is not answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Verdict {
    Own,
    LoopPort,
    RateLimited,
    Reflected,
}

impl Verdict {
    pub(crate) fn explain(self) -> &'static str {
        match self {
            Verdict::Own => {
                "from the server's own address: answering it would answer itself forever"
            }
            Verdict::LoopPort => {
                "from source port 0 or a small-service port (7, 9, 13, 19, 37): answering could \
                 start an endless echo loop (--allow-loop-ports answers them)"
            }
            Verdict::RateLimited => {
                "over --rate-limit replies per second for its source (by default 50000 for a \
                 source off this host; a source is an IPv4 address, an IPv6 /64, or a user of \
                 this host)"
            }
            Verdict::Reflected => {
                "its sender's last datagrams (16 in a row, 1000 from this host) each repeated \
                 one it sent a moment before: \
                 its own reply coming back from another echo server, so one is dropped to end \
                 the loop"
            }
        }
    }
}

/// Settings of a [`Guard`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct GuardRules {
    pub allow_loop_ports: bool,
    /// Datagrams per second per source (an IPv4 address, an IPv6 /64, a Unix sender's user),
    /// from any source (--rate-limit).
    pub rate: Option<u32>,
    /// The limit for sources off this host when `rate` is not set; none: no limit (the
    /// lab's udp port, whose gate admits only the proven addresses of runs holding a turn).
    pub default_rate: Option<u32>,
    /// Whether repeats are looked for (echo and the relay; a request is never repeated
    /// to a server that answered it).
    pub repeats: bool,
    /// Replies are upper-cased (echo's default transform): a datagram with a lower-case
    /// ASCII letter cannot be a reply coming back, so it never counts as a repeat, and a
    /// client's burst of one lower-case message is never cut.
    pub replies_upper: bool,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// What the guard keeps of one sender: the rules decided by its address alone, once (its
/// first datagram), and what it sent lately.
struct Sender {
    /// Its IP address (none for a Unix sender), whose budget the rate rule spends.
    ip: Option<IpAddr>,
    /// On this host beyond forging (see [`datagram_from_this_host`]), or a Unix sender.
    here: bool,
    /// The slot of its budget in the guard's buckets (a hint, see [`recent_slot`]).
    bucket: usize,
    seen: Seen,
}

/// One thread's guard: the server's own address, and per-source budgets and repeats.
pub(crate) struct Guard {
    rules: GuardRules,
    own: Option<SockAddr>,
    /// `own` as an IP address, decoded once.
    own_ip: Option<SocketAddr>,
    /// The wildcard's port, when bound to 0.0.0.0 or [::]: any local address with it is ours.
    wildcard_port: Option<u16>,
    local_ips: Vec<IpAddr>,
    /// Rate budgets by source: an address's [`share_key`], a Unix sender's user.
    buckets: TableMap<Share, Bucket>,
    /// Senders that are not refused by their address alone (those are decided again at
    /// each datagram, and dropped).
    senders: TableMap<PeerAddr, Sender>,
    /// The slot of the last sender (a hint, see [`recent_slot`]).
    last: usize,
}

impl Guard {
    /// A guard for a socket bound to `own` (its getsockname).
    pub(crate) fn new(rules: GuardRules, own: Option<SockAddr>) -> Guard {
        let own_ip = own.as_ref().and_then(SockAddr::as_socket);
        let wildcard_port = own_ip.filter(|a| a.ip().is_unspecified()).map(|a| a.port());
        Guard {
            rules,
            own,
            own_ip,
            wildcard_port,
            local_ips: local_ips(),
            buckets: TableMap::default(),
            senders: TableMap::default(),
            last: 0,
        }
    }

    /// Whether a datagram of `data` from `from` may be answered; `Err` says why not. `uid`:
    /// a Unix sender's user (SCM_CREDENTIALS), whose budget it spends.
    pub(crate) fn check(
        &mut self,
        from: &PeerAddr,
        uid: Option<u32>,
        data: &[u8],
    ) -> Result<(), Verdict> {
        let slot = self.slot(from)?;
        let sender = &mut self.senders[slot];
        let source = source_of(sender.ip, uid);
        if !within_rate(
            &mut self.buckets,
            self.rules,
            (source, sender.here),
            &mut sender.bucket,
        ) {
            return Err(Verdict::RateLimited);
        }
        if self.rules.repeats && repeated(self.rules, &mut sender.seen, data, sender.here) {
            return Err(Verdict::Reflected);
        }
        Ok(())
    }

    /// `from`'s slot, made at its first datagram: its address's rules (not the server's own
    /// address, not a loop port, whether it is on this host) are decided then, once, as
    /// they hold for every datagram of one sender. `Err` for a sender refused by its address.
    fn slot(&mut self, from: &PeerAddr) -> Result<usize, Verdict> {
        if let Some(slot) = recent_slot(&self.senders, from, &mut self.last) {
            return Ok(slot);
        }
        let addr = from.0.as_socket();
        let local = addr.is_none_or(|a| self.is_local(a.ip()));
        if self.is_own(from, addr, local) {
            return Err(Verdict::Own);
        }
        if !self.rules.allow_loop_ports && addr.is_some_and(|a| LOOP_PORTS.contains(&a.port())) {
            return Err(Verdict::LoopPort);
        }
        if self.senders.len() >= MAX_SOURCES {
            // Forgetting everyone costs at most one more streak per loop.
            self.senders.clear();
        }
        let sender = Sender {
            ip: addr.map(|a| a.ip()),
            // From this host beyond forging: loopback or an own IPv4 address (see
            // datagram_from_this_host), which are local ones.
            here: local && addr.is_none_or(|a| Self::unforgeable(a.ip())),
            bucket: 0,
            seen: Seen::default(),
        };
        let (slot, _) = self.senders.insert_full(from.clone(), sender);
        self.last = slot;
        Ok(slot)
    }

    /// `addr`: `from` as an IP address, if it is one; `local`: whether that is one of this
    /// host's.
    fn is_own(&self, from: &PeerAddr, addr: Option<SocketAddr>, local: bool) -> bool {
        let same_end = match (self.own_ip, addr) {
            (Some(own), Some(addr)) => same_ip(own, addr),
            (None, None) => self.own.as_ref().is_some_and(|own| same(own, &from.0)),
            _ => false,
        };
        same_end
            || matches!((self.wildcard_port, addr), (Some(port), Some(a)) if a.port() == port && local)
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_loopback() || self.local_ips.contains(&ip)
    }

    /// Whether a local address `ip` is one no other host can send from: loopback, or IPv4.
    fn unforgeable(ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_loopback() || ip.is_ipv4()
    }
}

/// Whose budget a datagram spends: its sender's IP address's [`share_key`], or (`ip` none)
/// a Unix sender's user `uid` (SCM_CREDENTIALS).
pub(crate) fn source_of(ip: Option<IpAddr>, uid: Option<u32>) -> Share {
    match ip {
        Some(ip) => Share::Address(share_key(ip)),
        None => Share::local(uid),
    }
}

/// Whether a sender's datagram is within its source's rate: `source`, whose budget it
/// spends, `here`, whether the sender is on this host beyond forging; `slot`, the hint for
/// its bucket (see [`recent_slot`]).
fn within_rate(
    buckets: &mut TableMap<Share, Bucket>,
    rules: GuardRules,
    (source, here): (Share, bool),
    slot: &mut usize,
) -> bool {
    let rate = match rules.rate {
        Some(rate) => rate,
        None if here => return true,
        None => match rules.default_rate {
            Some(rate) => rate,
            None => return true,
        },
    };
    let now = Instant::now();
    let rate = f64::from(rate);
    let bucket = match recent_slot(buckets, &source, slot) {
        Some(known) => &mut buckets[known],
        None => {
            if buckets.len() >= MAX_SOURCES {
                forget_older_half(buckets);
            }
            let fresh = Bucket {
                tokens: rate,
                last: now,
            };
            let (made, _) = buckets.insert_full(source, fresh);
            *slot = made;
            &mut buckets[made]
        }
    };
    bucket.tokens =
        (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(rate);
    bucket.last = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// Forgets the budgets used least lately, half of them: room for newcomers at once, and
/// for the next many (a pass over the table per half of it, not per newcomer). A source
/// still sending is among the recent half and keeps its budget.
fn forget_older_half(buckets: &mut TableMap<Share, Bucket>) {
    let mut lasts: Vec<Instant> = buckets.values().map(|b| b.last).collect();
    let middle = lasts.len() / 2;
    let (_, &mut cutoff, _) = lasts.select_nth_unstable(middle);
    buckets.retain(|_, b| b.last > cutoff);
}

/// Counts datagrams in a row from one sender (what it sent lately: `seen`) that repeat one
/// of its recent ones; true (and the count starts again) past [`REFLECT_STREAK`].
fn repeated(rules: GuardRules, seen: &mut Seen, data: &[u8], here: bool) -> bool {
    if rules.replies_upper && data.iter().any(u8::is_ascii_lowercase) {
        return false;
    }
    let streak = if here {
        REFLECT_STREAK_HERE
    } else {
        REFLECT_STREAK
    };
    seen.repeats(fingerprint(data), streak)
}

/// Bits in each generation of [`Seen`]'s filter.
const SEEN_BITS: usize = 1024;
/// Datagrams a generation takes before it becomes the older one: a loop of up to this many
/// payloads in turn is always recognised, and a sender of distinct datagrams matches one
/// of at most twice this many set bits by chance (a quarter of the filter): 16 times in a
/// row about once in 4 billion datagrams.
const SEEN_GENERATION: u32 = 128;

/// What one sender sent lately, as a filter of fingerprints in two generations (256 bytes
/// a sender), and how many datagrams in a row matched it. A loop between two echo servers
/// carries the same few payloads round and round, whatever their number and order: each
/// one that comes back is one this sender sent a moment ago.
#[derive(Default)]
struct Seen {
    bits: [[u64; SEEN_BITS / 64]; 2],
    /// Which of `bits` is the current generation, and how many it took.
    current: usize,
    taken: u32,
    streak: u32,
}

impl Seen {
    /// Records `print`; true when it ends a streak of `streak` datagrams that were each
    /// seen lately (then the streak starts again).
    fn repeats(&mut self, print: u64, streak: u32) -> bool {
        // The fingerprint's top bits pick the bit: its low bits carry the length's word.
        let bit = (print >> 54) as usize % SEEN_BITS;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let seen = (self.bits[0][word] | self.bits[1][word]) & mask != 0;
        if self.taken >= SEEN_GENERATION {
            self.current ^= 1;
            self.bits[self.current] = [0; SEEN_BITS / 64];
            self.taken = 0;
        }
        self.bits[self.current][word] |= mask;
        self.taken += 1;
        if !seen {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        if self.streak >= streak {
            self.streak = 0;
            return true;
        }
        false
    }
}

/// Two socket addresses are the same endpoint (IPv4-mapped IPv6 seen as IPv4).
fn same(a: &SockAddr, b: &SockAddr) -> bool {
    match (a.as_socket(), b.as_socket()) {
        (Some(a), Some(b)) => same_ip(a, b),
        (None, None) => {
            a.as_pathname().is_some() && a.as_pathname() == b.as_pathname()
                || a.as_abstract_namespace().is_some()
                    && a.as_abstract_namespace() == b.as_abstract_namespace()
        }
        _ => false,
    }
}

/// [`same`] for two IP endpoints.
fn same_ip(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip()) && !a.ip().is_unspecified()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A cheap fingerprint of a datagram: its length and its first and last 32 bytes, which
/// tell apart any two messages of a load run (sequence numbers lead each one).
fn fingerprint(data: &[u8]) -> u64 {
    let mut h = TableHasher::default();
    h.write_usize(data.len());
    if let (Some(head), Some(tail)) = (data.first_chunk::<32>(), data.last_chunk::<32>()) {
        // Both ends whole (most datagrams): eight words read straight (loops of a count
        // known ahead, unrolled), the same state as the general case's.
        let word = |end: &[u8; 32], i: usize| {
            u64::from_le_bytes(end[8 * i..8 * i + 8].try_into().expect("eight bytes"))
        };
        for i in 0..4 {
            h.write_u64(word(head, i));
        }
        for i in 0..4 {
            h.write_u64(word(tail, i));
        }
        return h.state();
    }
    h.write(&data[..data.len().min(32)]);
    h.write(&data[data.len().saturating_sub(32)..]);
    h.state()
}

/// Whether a datagram from `ip` can only have been sent on this host, so its source needs no
/// proof: a loopback address, or one of this host's IPv4 addresses (the kernel drops a
/// packet from the wire that claims either, a martian). Not this host's other IPv6
/// addresses: Linux delivers a packet from the wire that claims one of them, so a datagram
/// from there proves nothing and gets the rules for sources elsewhere.
pub(crate) fn datagram_from_this_host(ip: IpAddr) -> bool {
    Guard::unforgeable(ip) && is_this_host(ip)
}

/// Whether `to` reaches the socket bound to `own`: the same port on the same address, on
/// any address of this host for a wildcard, or the wildcard itself (which connect(2) takes
/// for this host).
pub(crate) fn is_same_host_port(own: SocketAddr, to: SocketAddr) -> bool {
    if own.port() != to.port() {
        return false;
    }
    let (own_ip, to_ip) = (canonical(own.ip()), canonical(to.ip()));
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified() || local_ips().contains(&ip);
    own_ip == to_ip || to_ip.is_unspecified() || (own_ip.is_unspecified() && local(to_ip))
}

/// The address a datagram socket is bound to, for [`Guard::new`].
pub(crate) fn own_address(sock: &crate::transport::DatagramSocket) -> Option<SockAddr> {
    sock.local_sockaddr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> GuardRules {
        GuardRules {
            allow_loop_ports: false,
            rate: None,
            default_rate: Some(10),
            repeats: true,
            replies_upper: false,
        }
    }

    fn peer(s: &str) -> PeerAddr {
        PeerAddr(SockAddr::from(s.parse::<SocketAddr>().unwrap()))
    }

    #[test]
    fn own_address_and_wildcard_port_on_a_local_address_are_refused() {
        let mut bound = Guard::new(rules(), Some(peer("127.0.0.1:4000").0));
        assert_eq!(
            bound.check(&peer("127.0.0.1:4000"), None, b"x"),
            Err(Verdict::Own)
        );
        assert_eq!(bound.check(&peer("127.0.0.1:4001"), None, b"x"), Ok(()));
        // The sender before is remembered, and no other sender is taken for it.
        assert_eq!(
            bound.check(&peer("127.0.0.1:4000"), None, b"x"),
            Err(Verdict::Own)
        );
        let mut any = Guard::new(rules(), Some(peer("[::]:4000").0));
        assert_eq!(
            any.check(&peer("[::ffff:127.0.0.2]:4000"), None, b"x"),
            Err(Verdict::Own)
        );
        assert_eq!(
            any.check(&peer("[::1]:4000"), None, b"x"),
            Err(Verdict::Own)
        );
        assert_eq!(any.check(&peer("[::1]:4001"), None, b"x"), Ok(()));
    }

    /// A sender on this host and one off it (TEST-NET-1, never this host's), each with its
    /// streak; no rate, so only repeats drop.
    const SENDERS: [(&str, u32); 2] = [
        ("127.0.0.1:5000", REFLECT_STREAK_HERE),
        ("192.0.2.7:5000", REFLECT_STREAK),
    ];

    fn unlimited() -> GuardRules {
        GuardRules {
            default_rate: None,
            ..rules()
        }
    }

    #[test]
    fn a_sender_repeating_itself_loses_one_datagram_per_streak() {
        for (sender, streak) in SENDERS {
            let mut guard = Guard::new(unlimited(), None);
            let from = peer(sender);
            let dropped = (0..2 * streak + 1)
                .filter(|_| guard.check(&from, None, b"same").is_err())
                .count();
            assert_eq!(dropped, 2, "{sender}");
        }
    }

    #[test]
    fn payloads_in_turn_lose_one_datagram_per_streak() {
        for (sender, streak) in SENDERS {
            for payloads in [2u32, 3, 8, 100] {
                let mut guard = Guard::new(unlimited(), None);
                let from = peer(sender);
                let dropped = (0..2 * streak + payloads)
                    .filter(|n| {
                        let msg = format!("PAYLOAD {}", n % payloads);
                        guard.check(&from, None, msg.as_bytes()).is_err()
                    })
                    .count();
                assert_eq!(dropped, 2, "{sender}, {payloads} payloads");
            }
        }
    }

    #[test]
    fn the_reason_names_the_streaks() {
        let streaks = format!("{REFLECT_STREAK} in a row, {REFLECT_STREAK_HERE} from this host");
        assert!(Verdict::Reflected.explain().contains(&streaks));
    }

    #[test]
    fn distinct_datagrams_are_never_a_repeat() {
        for (sender, _) in SENDERS {
            let mut guard = Guard::new(unlimited(), None);
            let from = peer(sender);
            let dropped = (0..200_000u32)
                .filter(|n| guard.check(&from, None, &n.to_be_bytes()).is_err())
                .count();
            assert_eq!(dropped, 0, "{sender}");
        }
    }

    #[test]
    fn under_upper_case_replies_a_lower_case_burst_is_never_a_repeat() {
        let upper = GuardRules {
            replies_upper: true,
            ..rules()
        };
        let mut guard = Guard::new(upper, None);
        let from = peer("127.0.0.1:5000");
        let count = |g: &mut Guard, msg: &[u8]| {
            (0..2 * REFLECT_STREAK_HERE + 1)
                .filter(|_| g.check(&from, None, msg).is_err())
                .count()
        };
        assert_eq!(count(&mut guard, b"hello"), 0);
        // An upper-case message may be a reply coming back: its streak still ends.
        assert_eq!(count(&mut guard, b"HELLO"), 2);
    }

    #[test]
    fn the_default_rate_applies_off_this_host_only() {
        let mut guard = Guard::new(rules(), None);
        let answered = |g: &mut Guard, p: &str| {
            (0..100)
                .filter(|i| g.check(&peer(p), None, &i.to_string().into_bytes()).is_ok())
                .count()
        };
        assert_eq!(answered(&mut guard, "127.0.0.1:5000"), 100);
        assert!(answered(&mut guard, "192.0.2.1:5000") <= 11);
    }

    #[test]
    fn one_64_is_one_source_and_a_full_table_never_refuses_a_newcomer() {
        let mut guard = Guard::new(rules(), None);
        // Many addresses of one /64, each a datagram: past its rate, as one source.
        let spread = (0..2 * MAX_SOURCES)
            .filter(|i| {
                let from = peer(&format!("[2001:db8::{:x}]:5000", i + 1));
                guard.check(&from, None, b"x").is_ok()
            })
            .count();
        // (10 a second, and its burst: far fewer than one each, whatever the clock did.)
        assert!(spread < 1000, "{spread} answered");
        // Many IPv4 sources fill the table; a newcomer still has its budget.
        for i in 0..2 * MAX_SOURCES as u32 {
            let from = peer(&format!(
                "{}:5000",
                std::net::Ipv4Addr::from(0xc633_0000 + i)
            ));
            let _ = guard.check(&from, None, b"x");
        }
        assert_eq!(guard.check(&peer("192.0.2.1:5000"), None, b"y"), Ok(()));
    }

    #[test]
    fn each_local_user_has_its_own_budget() {
        let limited = GuardRules {
            rate: Some(10),
            ..rules()
        };
        let mut guard = Guard::new(limited, None);
        let from = PeerAddr(SockAddr::unix("/tmp/netecho-guard-test.sock").unwrap());
        let answered = |g: &mut Guard, uid| {
            (0..100u32)
                .filter(|i| g.check(&from, Some(uid), &i.to_be_bytes()).is_ok())
                .count()
        };
        assert!(answered(&mut guard, 1000) <= 11);
        assert!(
            answered(&mut guard, 1001) >= 10,
            "another user is not limited"
        );
    }
}
