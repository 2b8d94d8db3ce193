//! `--allow` and `--deny`: who may use a server or relay. IP peers are matched by CIDR block;
//! Unix stream and seqpacket peers by the uid or gid the kernel vouches for (SO_PEERCRED).
//! A refused connection is closed, a refused datagram ignored, and each refused peer is
//! logged once, with the rule that refused it.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;

use tracing::warn;

use crate::endpoint::{Proto, SocketKind};
use crate::error::UsageError;
use crate::transport::{Conn, PeerAddr};

/// Refused peers remembered for "logged once"; past it the memory starts again.
const MAX_LOGGED: usize = 4096;

/// One `--allow`/`--deny` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// An IP block: address and prefix length (`10.0.0.0/8`, `::1/128`).
    Cidr(IpAddr, u8),
    /// A Unix peer's user id (SO_PEERCRED).
    Uid(u32),
    /// A Unix peer's group id (SO_PEERCRED).
    Gid(u32),
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Rule, String> {
        let wrong = || {
            format!(
                "'{text}' is not a rule; write a CIDR block (127.0.0.0/8, ::1/128, 10.1.2.3) or \
                 uid:N or gid:N"
            )
        };
        if let Some(n) = text.strip_prefix("uid:") {
            return n.parse().map(Rule::Uid).map_err(|_| wrong());
        }
        if let Some(n) = text.strip_prefix("gid:") {
            return n.parse().map(Rule::Gid).map_err(|_| wrong());
        }
        let (ip, len) = match text.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (text, None),
        };
        let ip: IpAddr = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| wrong())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(wrong)?,
            None => max,
        };
        mapped_to_ipv4(text, ip, len)
    }
}

/// An IPv4-mapped block (`::ffff:10.0.0.0/104`) as the IPv4 block it names (`10.0.0.0/8`):
/// peers are compared as IPv4, so the prefix must count IPv4 bits too.
fn mapped_to_ipv4(text: &str, ip: IpAddr, len: u8) -> Result<Rule, String> {
    let IpAddr::V6(v6) = ip else {
        return Ok(Rule::Cidr(ip, len));
    };
    let Some(v4) = v6.to_ipv4_mapped() else {
        return Ok(Rule::Cidr(ip, len));
    };
    match len.checked_sub(96) {
        Some(v4_len) => Ok(Rule::Cidr(IpAddr::V4(v4), v4_len)),
        None => Err(format!(
            "'{text}': an IPv4-mapped block (::ffff:a.b.c.d) needs a prefix of 96 to 128, the \
             96 bits of ::ffff: and then IPv4 bits; write the IPv4 block itself ({v4}/N) for \
             IPv4 clients, or a shorter IPv6 block without ::ffff:"
        )),
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Cidr(ip, len) => write!(f, "{ip}/{len}"),
            Rule::Uid(uid) => write!(f, "uid:{uid}"),
            Rule::Gid(gid) => write!(f, "gid:{gid}"),
        }
    }
}

/// Who a peer is, as far as rules can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Who {
    Ip(IpAddr),
    Cred { uid: u32, gid: u32 },
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Ip(ip) => write!(f, "{ip}"),
            Who::Cred { uid, gid } => write!(f, "uid {uid} gid {gid}"),
        }
    }
}

impl Rule {
    fn matches(&self, who: Who) -> bool {
        match (*self, who) {
            (Rule::Cidr(net, len), Who::Ip(ip)) => in_block(net, len, ip.to_canonical()),
            (Rule::Uid(u), Who::Cred { uid, .. }) => u == uid,
            (Rule::Gid(g), Who::Cred { gid, .. }) => g == gid,
            _ => false,
        }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .field("gated", &self.gate.is_some())
            .finish()
    }
}

fn in_block(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let (net, ip, bits): (u128, u128, u32) = match (net.to_canonical(), ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
        _ => return false,
    };
    // A prefix longer than the family (never parsed, but never trusted either) matches nothing.
    let Some(shift) = bits.checked_sub(u32::from(len)) else {
        return false;
    };
    // An IPv6 /0 block matches every IPv6 address (u128 >> 128 is no number).
    match (net.checked_shr(shift), ip.checked_shr(shift)) {
        (Some(net), Some(ip)) => net == ip,
        _ => true,
    }
}

/// Who may use a port at this moment, beyond the fixed rules: `serve --lab` lets only the
/// addresses of runs that hold their turn reach its echo ports.
pub(crate) type Gate = std::sync::Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// The rules of one server or relay, and the refused peers already logged.
#[derive(Default)]
pub(crate) struct Access {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    logged: Mutex<HashSet<Who>>,
    gate: Option<Gate>,
}

impl Access {
    /// Rules for a socket of `proto`, refusing rules that could never match there.
    pub(crate) fn new(proto: Proto, allow: &[Rule], deny: &[Rule]) -> Result<Access, UsageError> {
        for (flag, rule) in allow
            .iter()
            .map(|r| ("--allow", r))
            .chain(deny.iter().map(|r| ("--deny", r)))
        {
            let fits = match rule {
                Rule::Cidr(..) => !proto.is_unix(),
                Rule::Uid(_) | Rule::Gid(_) => {
                    proto.is_unix() && proto.kind() != SocketKind::Datagram
                }
            };
            if !fits {
                let why = match rule {
                    Rule::Cidr(..) => {
                        "CIDR blocks apply to tcp and udp; match Unix peers by uid:N or gid:N"
                    }
                    _ if proto == Proto::UnixDgram => {
                        "a Unix datagram carries no credentials the receiver can check (SO_PEERCRED \
                         needs a connection); uid and gid rules apply to unix and unix-seqpacket"
                    }
                    _ => {
                        "uid and gid come from SO_PEERCRED, on unix and unix-seqpacket sockets; match IP peers by CIDR block"
                    }
                };
                return Err(UsageError::new(format!("{flag} {rule} on {proto}: {why}")));
            }
        }
        Ok(Access {
            allow: allow.to_vec(),
            deny: deny.to_vec(),
            logged: Mutex::default(),
            gate: None,
        })
    }

    /// These rules, and beyond them only IP peers `gate` lets through now (refused quietly:
    /// the gate's owner says why in its own words).
    pub(crate) fn gated(mut self, gate: Gate) -> Access {
        self.gate = Some(gate);
        self
    }

    fn gate_refuses(&self, who: Option<Who>) -> bool {
        match (&self.gate, who) {
            (None, _) => false,
            (Some(gate), Some(Who::Ip(ip))) => !gate(ip.to_canonical()),
            (Some(_), _) => true,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// The rule that refuses `who`, worded for the log; `None` when allowed.
    fn refusal(&self, who: Who) -> Option<String> {
        if let Some(rule) = self.deny.iter().find(|r| r.matches(who)) {
            return Some(format!("--deny {rule}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|r| r.matches(who)) {
            let list: Vec<String> = self.allow.iter().map(Rule::to_string).collect();
            return Some(format!("no --allow rule matches ({})", list.join(", ")));
        }
        None
    }

    fn decide(&self, proto: Proto, peer: &dyn fmt::Display, who: Option<Who>) -> bool {
        if self.gate_refuses(who) {
            tracing::debug!("{proto} {peer}: refused, no run of this address holds its turn");
            return false;
        }
        if self.is_open() {
            return true;
        }
        let Some(who) = who else {
            // Rules exist but the kernel would not say who this is: refuse, never guess.
            warn!("{proto} {peer}: refused, the peer's identity is unknown");
            return false;
        };
        let Some(rule) = self.refusal(who) else {
            return true;
        };
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() >= MAX_LOGGED {
            logged.clear();
        }
        if logged.insert(who) {
            warn!("{proto} {peer}: refused by {rule}");
        }
        false
    }

    /// Whether an accepted connection may stay; the caller closes it if not.
    pub(crate) fn admits_conn(&self, proto: Proto, conn: &Conn) -> bool {
        if self.is_open() && self.gate.is_none() {
            return true;
        }
        let who = if proto.is_unix() {
            crate::transport::unix::peer_cred(conn.socket())
                .ok()
                .map(|(uid, gid)| Who::Cred { uid, gid })
        } else {
            conn.socket()
                .peer_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| Who::Ip(a.ip()))
        };
        self.decide(proto, &conn.peer(), who)
    }

    /// Whether a datagram from `from` is served; the caller ignores it if not.
    pub(crate) fn admits_datagram(&self, proto: Proto, from: &PeerAddr) -> bool {
        if self.is_open() && self.gate.is_none() {
            return true;
        }
        let who = from.0.as_socket().map(|a| Who::Ip(a.ip()));
        self.decide(proto, from, who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_match_their_addresses_only() {
        let ip = |t: &str| Who::Ip(t.parse().unwrap());
        assert!(rule("127.0.0.0/8").matches(ip("127.1.2.3")));
        assert!(!rule("127.0.0.0/8").matches(ip("128.0.0.1")));
        assert!(rule("10.1.2.3").matches(ip("10.1.2.3")));
        assert!(!rule("10.1.2.3").matches(ip("10.1.2.4")));
        assert!(rule("0.0.0.0/0").matches(ip("8.8.8.8")));
        assert!(rule("::1").matches(ip("::1")));
        assert!(rule("fe80::/10").matches(ip("fe80::1")));
        // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
        assert!(rule("127.0.0.1/32").matches(ip("::ffff:127.0.0.1")));
        assert!(!rule("::1").matches(ip("127.0.0.1")));
    }

    #[test]
    fn deny_wins_and_allow_lists_who_may() {
        let access = Access::new(Proto::Tcp, &[rule("127.0.0.0/8")], &[rule("127.0.0.2")]).unwrap();
        let ip = |t: &str| Who::Ip(t.parse().unwrap());
        assert_eq!(access.refusal(ip("127.0.0.1")), None);
        assert_eq!(
            access.refusal(ip("127.0.0.2")).unwrap(),
            "--deny 127.0.0.2/32"
        );
        assert!(
            access
                .refusal(ip("10.0.0.1"))
                .unwrap()
                .starts_with("no --allow rule")
        );
    }

    #[test]
    fn rules_that_cannot_match_are_refused() {
        assert!(Access::new(Proto::Unix, &[rule("10.0.0.0/8")], &[]).is_err());
        assert!(Access::new(Proto::Udp, &[rule("uid:0")], &[]).is_err());
        assert!(Access::new(Proto::UnixDgram, &[], &[rule("gid:0")]).is_err());
        assert!(Access::new(Proto::UnixSeqpacket, &[], &[rule("gid:0")]).is_ok());
        assert!("10.0.0.0/33".parse::<Rule>().is_err());
        assert!("uid:x".parse::<Rule>().is_err());
    }

    #[test]
    fn ipv4_mapped_rules_become_the_ipv4_block_they_name() {
        let v4 = |t: &str| IpAddr::V4(t.parse().unwrap());
        assert_eq!(rule("::ffff:10.9.9.9"), Rule::Cidr(v4("10.9.9.9"), 32));
        assert_eq!(rule("::ffff:10.9.9.9/128"), Rule::Cidr(v4("10.9.9.9"), 32));
        assert_eq!(rule("::ffff:10.9.9.0/120"), Rule::Cidr(v4("10.9.9.0"), 24));
        assert_eq!(rule("[::ffff:10.0.0.0]/104"), Rule::Cidr(v4("10.0.0.0"), 8));
        assert_eq!(rule("::ffff:0.0.0.0/96"), Rule::Cidr(v4("0.0.0.0"), 0));
        let short = "::ffff:10.0.0.0/95".parse::<Rule>().unwrap_err();
        assert!(short.contains("96 to 128"), "{short}");
        // Other IPv6 blocks stay IPv6.
        assert_eq!(rule("::1"), Rule::Cidr("::1".parse().unwrap(), 128));
    }

    #[test]
    fn ipv4_mapped_rules_match_only_their_block() {
        let ip = |t: &str| Who::Ip(t.parse().unwrap());
        for (text, inside, outside) in [
            ("::ffff:10.9.9.9", "10.9.9.9", "10.9.9.8"),
            ("::ffff:10.9.9.0/120", "10.9.9.200", "10.9.8.1"),
            ("::ffff:10.0.0.0/104", "10.200.1.1", "11.0.0.1"),
        ] {
            let r = rule(text);
            assert!(r.matches(ip(inside)), "{text} {inside}");
            assert!(
                r.matches(ip(&format!("::ffff:{inside}"))),
                "{text} mapped {inside}"
            );
            assert!(!r.matches(ip(outside)), "{text} {outside}");
            assert!(
                !r.matches(ip(&format!("::ffff:{outside}"))),
                "{text} mapped {outside}"
            );
            assert!(!r.matches(ip("::1")), "{text} ::1");
        }
        // A deny rule for one IPv4 address leaves the others of its family alone.
        let access = Access::new(Proto::Udp, &[], &[rule("::ffff:10.9.9.9")]).unwrap();
        assert!(access.refusal(ip("10.9.9.9")).is_some());
        assert_eq!(access.refusal(ip("10.9.9.10")), None);
        assert_eq!(access.refusal(ip("127.0.0.1")), None);
    }

    #[test]
    fn a_prefix_past_the_family_width_matches_nothing() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(!in_block(v4, 128, v4));
        assert!(in_block(v4, 32, v4));
        assert!(in_block(v4, 0, "1.2.3.4".parse().unwrap()));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert!(in_block(v6, 0, "::1".parse().unwrap()));
        assert!(!in_block(v6, 129, v6));
    }
}
