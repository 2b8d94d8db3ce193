//! `--allow` and `--deny`: who may use a server or relay. IP peers are matched by CIDR block;
//! Unix stream and seqpacket peers by the uid or gid the kernel vouches for (SO_PEERCRED);
//! for `--exec`, TCP, UDP and QUIC peers on this host also by the uid that owns their socket,
//! which the kernel tells through sock_diag, and a Unix datagram's sender by the uid the
//! kernel attached to it (SCM_CREDENTIALS). A refused connection is closed, a refused
//! datagram ignored, and each refused peer is logged once, with the rule that refused it.
//! [`Net`], the IP block a rule names, also says whom relay's --trust covers.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;

use tracing::warn;

use crate::endpoint::{Proto, SocketKind};
use crate::error::UsageError;
use crate::logging::Throttle;
use crate::service::guard::is_this_host;
use crate::transport::sock_diag::{self, tcp_owner};
use crate::transport::{Conn, PeerAddr};

/// Refused peers remembered for "logged once"; past it the memory starts again.
const MAX_LOGGED: usize = 4096;

/// One `--allow`/`--deny` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// An IP block (`10.0.0.0/8`, `::1/128`).
    Cidr(Net),
    /// A Unix peer's user id (SO_PEERCRED, or a datagram's SCM_CREDENTIALS).
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
        Net::parse(text, "a rule", wrong).map(Rule::Cidr)
    }
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`; an address alone
/// is itself). The address form of --allow and --deny, and relay's --trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Net {
    pub ip: IpAddr,
    pub len: u8,
}

impl FromStr for Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Net, String> {
        Net::parse(text, "a network", || {
            format!(
                "'{text}' is not a network; write an address or a CIDR block (10.1.2.3, \
                 10.0.0.0/8, fd00::/64)"
            )
        })
    }
}

impl Net {
    /// `text` as a network; `what` names one in the errors, `wrong` is the error for text
    /// that is no address at all.
    fn parse(text: &str, what: &str, wrong: impl Fn() -> String) -> Result<Net, String> {
        // A link-local peer as a log line shows it: the zone names a link, not an address.
        if let Some((ip, rest)) = text.split_once('%') {
            let len = rest.find('/').map_or("", |at| &rest[at..]);
            return Err(format!("'{text}': {what} has no zone: write {ip}{len}"));
        }
        // An address and port copied from a log line: a block names every port of an address.
        if let Ok(with_port) = text.parse::<std::net::SocketAddr>() {
            let ip = with_port.ip().to_canonical();
            return Err(format!(
                "'{text}' has a port, and {what} has none (it names an address, all its \
                 ports): write {ip}"
            ));
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
            // Digits only: u8's parse takes "+8" too.
            Some(len) if len.bytes().all(|b| b.is_ascii_digit()) => len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(wrong)?,
            Some(_) => return Err(wrong()),
            None => max,
        };
        let net = mapped_to_ipv4(text, Net { ip, len })?;
        exact_block(text, net)
    }

    /// Whether `ip` is in this network; an IPv4-mapped address (a dual-stack socket's IPv4
    /// peer) is compared as the IPv4 address it holds.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        in_block(self.ip, self.len, ip.to_canonical())
    }

    /// Refuses a network (given with its flag) of a family a socket bound to `bound` never
    /// receives: IPv6 on an IPv4 socket, IPv4 on an IPv6 one that is `v6only` or bound to
    /// one IPv6 address.
    pub(crate) fn check_family<'a>(
        nets: impl IntoIterator<Item = (&'a str, Net)>,
        bound: IpAddr,
        v6only: bool,
    ) -> Result<(), UsageError> {
        let bound = bound.to_canonical();
        let v4_socket = bound.is_ipv4();
        let hears_v4 = v4_socket || (bound.is_unspecified() && !v6only);
        for (flag, net) in nets {
            let fix = match net.ip {
                IpAddr::V6(_) if v4_socket => "receives IPv4 only; listen on [::]:PORT for both",
                IpAddr::V4(_) if !hears_v4 => {
                    "receives IPv6 only; listen on [::]:PORT without --v6only for both"
                }
                _ => continue,
            };
            return Err(UsageError::new(format!(
                "{flag} {net} never matches: a socket bound to {bound} {fix}"
            )));
        }
        Ok(())
    }

    /// The families (IPv4, IPv6) whose every address `nets` hold between them: one /0, or
    /// blocks that together leave no gap (0.0.0.0/1 and 128.0.0.0/1).
    pub(crate) fn families_covered(nets: &[Net]) -> Vec<&'static str> {
        [("IPv4", 32u32), ("IPv6", 128)]
            .into_iter()
            .filter(|(family, bits)| {
                let mut blocks: Vec<(u128, u128)> = nets
                    .iter()
                    .filter(|net| net.family() == *family)
                    .map(|net| net.range(*bits))
                    .collect();
                blocks.sort_unstable();
                // The first address no block reached yet; `None` past the last IPv6 address.
                let mut next = Some(0u128);
                for (first, last) in blocks {
                    match next {
                        // Sorted by their first address: a block past `n` leaves a gap.
                        Some(n) if first <= n => next = last.checked_add(1).map(|e| e.max(n)),
                        _ => break,
                    }
                }
                // IPv6's end is past u128: reached only as `None`.
                next.is_none_or(|n| 1u128.checked_shl(*bits).is_some_and(|end| n >= end))
            })
            .map(|(family, _)| family)
            .collect()
    }

    /// The family of this network's addresses, as [`Net::families_covered`] names it.
    pub(crate) fn family(&self) -> &'static str {
        match self.ip {
            IpAddr::V4(_) => "IPv4",
            IpAddr::V6(_) => "IPv6",
        }
    }

    /// This network's first and last address, as numbers, in its family `bits` wide.
    fn range(&self, bits: u32) -> (u128, u128) {
        let first = match self.ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        let host_bits = bits.saturating_sub(u32::from(self.len));
        let hosts = u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
        (first, first | hosts)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.len)
    }
}

/// Refuses a block written in a way that reads as something else: IPv4-compatible addresses
/// (`::10.0.0.1`, deprecated, never a peer's address) and host bits past the prefix.
fn exact_block(text: &str, net: Net) -> Result<Net, String> {
    let Net { ip, len } = net;
    if let IpAddr::V6(v6) = ip {
        let s = v6.segments();
        if s[..6].iter().all(|x| *x == 0) && s[6] != 0 {
            let v4 = std::net::Ipv4Addr::from(u128::from(v6) as u32);
            return Err(format!(
                "'{text}' is the deprecated IPv4-compatible form, and IPv4 peers are \
                 compared as IPv4: write {v4}"
            ));
        }
    }
    let block = match ip {
        IpAddr::V4(v4) => IpAddr::V4(
            (u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)).into(),
        ),
        IpAddr::V6(v6) => IpAddr::V6(
            (u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)).into(),
        ),
    };
    if block != ip {
        return Err(format!(
            "'{text}' has host bits set: {ip}/{len} is the block {block}/{len}; write \
             {block}/{len}, or {ip} for that host alone"
        ));
    }
    Ok(net)
}

/// An IPv4-mapped block (`::ffff:10.0.0.0/104`) as the IPv4 block it names (`10.0.0.0/8`):
/// peers are compared as IPv4, so the prefix must count IPv4 bits too.
fn mapped_to_ipv4(text: &str, net: Net) -> Result<Net, String> {
    let IpAddr::V6(v6) = net.ip else {
        return Ok(net);
    };
    let Some(v4) = v6.to_ipv4_mapped() else {
        return Ok(net);
    };
    match net.len.checked_sub(96) {
        Some(len) => Ok(Net {
            ip: IpAddr::V4(v4),
            len,
        }),
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
            Rule::Cidr(net) => net.fmt(f),
            Rule::Uid(uid) => write!(f, "uid:{uid}"),
            Rule::Gid(gid) => write!(f, "gid:{gid}"),
        }
    }
}

/// Who a peer is, as far as rules can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Who {
    Ip(IpAddr),
    Cred {
        uid: u32,
        gid: u32,
    },
    /// A TCP, UDP or QUIC peer on this host and the user that owns its socket.
    Local {
        ip: IpAddr,
        uid: u32,
    },
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Ip(ip) => write!(f, "{ip}"),
            Who::Cred { uid, gid } => write!(f, "uid {uid} gid {gid}"),
            Who::Local { ip, uid } => write!(f, "{ip} uid {uid}"),
        }
    }
}

impl Rule {
    fn matches(&self, who: Who) -> bool {
        match (*self, who) {
            (Rule::Cidr(net), Who::Ip(ip) | Who::Local { ip, .. }) => net.contains(ip),
            (Rule::Uid(u), Who::Cred { uid, .. } | Who::Local { uid, .. }) => u == uid,
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
    /// `--exec`'s default, when no --allow names users: peers must be this user (the server's
    /// own). On a Unix socket every peer; over TCP, UDP or QUIC the peers on this host, and
    /// peers from other addresses are not judged by it.
    owner: Option<u32>,
    logged: Mutex<HashSet<Who>>,
    gate: Option<Gate>,
}

impl Access {
    /// Rules for a socket of `proto`, refusing rules that could never match there.
    pub(crate) fn new(proto: Proto, allow: &[Rule], deny: &[Rule]) -> Result<Access, UsageError> {
        Access::checked(proto, allow, deny, false)
    }

    /// Rules for `serve --exec`: as [`Access::new`], and `uid:N` on tcp, udp and quic too,
    /// matched against the user that owns a peer's socket on this host, and on unix-dgram,
    /// matched against the uid each datagram carries (SCM_CREDENTIALS).
    /// `--allow uid:N` adds a user to the server's own (the default's words: "--allow uid:N
    /// adds others"), which stays admitted unless a `--deny` names it.
    pub(crate) fn for_exec(
        proto: Proto,
        allow: &[Rule],
        deny: &[Rule],
    ) -> Result<Access, UsageError> {
        let own = Rule::Uid(nix::unistd::geteuid().as_raw());
        let mut allow = allow.to_vec();
        if names_users(&allow) && !allow.contains(&own) && !deny.contains(&own) {
            allow.push(own);
        }
        Access::checked(proto, &allow, deny, true)
    }

    /// Whether an `--allow` names users (uid:N, gid:N): the server's own is then among them
    /// ([`Access::for_exec`]); else `--exec`'s default for the server's own user stands
    /// beside the rules given ([`Access::with_owner`]).
    pub(crate) fn names_users(&self) -> bool {
        names_users(&self.allow)
    }

    /// These rules with `--exec`'s default beside them: on a Unix socket only `uid` (and
    /// no one a `--deny` names); over IP from this host only `uid`, and peers from
    /// elsewhere judged by the rules.
    pub(crate) fn with_owner(&self, proto: Proto, uid: u32) -> Result<Access, UsageError> {
        let mut access = Access::for_exec(proto, &self.allow, &self.deny)?;
        access.owner = Some(uid);
        Ok(access)
    }

    fn checked(
        proto: Proto,
        allow: &[Rule],
        deny: &[Rule],
        tcp_uid: bool,
    ) -> Result<Access, UsageError> {
        for (flag, rule) in allow
            .iter()
            .map(|r| ("--allow", r))
            .chain(deny.iter().map(|r| ("--deny", r)))
        {
            let stream = proto.kind() != SocketKind::Datagram;
            let fits = match rule {
                Rule::Cidr(..) => !proto.is_unix(),
                Rule::Uid(_) => {
                    (stream && proto.is_unix())
                        || (tcp_uid
                            && matches!(
                                proto,
                                Proto::Tcp | Proto::Udp | Proto::Quic | Proto::UnixDgram
                            ))
                }
                Rule::Gid(_) => stream && proto.is_unix(),
            };
            if !fits {
                return Err(UsageError::new(format!(
                    "{flag} {rule} on {proto}: {}",
                    misfit(proto, rule, tcp_uid)
                )));
            }
        }
        Ok(Access {
            allow: allow.to_vec(),
            deny: deny.to_vec(),
            owner: None,
            logged: Mutex::default(),
            gate: None,
        })
    }

    /// Refuses an IP block of a family a socket bound to `bound` never receives: IPv6 on an
    /// IPv4 socket, IPv4 on an IPv6 one that is `v6only` or bound to one IPv6 address.
    pub(crate) fn check_family(
        allow: &[Rule],
        deny: &[Rule],
        bound: IpAddr,
        v6only: bool,
    ) -> Result<(), UsageError> {
        let rules = allow.iter().map(|r| ("--allow", r));
        let nets = rules
            .chain(deny.iter().map(|r| ("--deny", r)))
            .filter_map(|(flag, rule)| match rule {
                Rule::Cidr(net) => Some((flag, *net)),
                _ => None,
            });
        Net::check_family(nets, bound, v6only)
    }

    /// These rules, and beyond them only IP peers `gate` lets through now (refused quietly:
    /// the gate's owner says why in its own words).
    pub(crate) fn gated(mut self, gate: Gate) -> Access {
        self.gate = Some(gate);
        self
    }

    /// Whether a gate stands beyond the rules (`serve --lab`'s echo ports).
    pub(crate) fn is_gated(&self) -> bool {
        self.gate.is_some()
    }

    fn gate_refuses(&self, who: &Result<Who, String>) -> bool {
        match (&self.gate, who) {
            (None, _) => false,
            (Some(gate), Ok(Who::Ip(ip) | Who::Local { ip, .. })) => !gate(ip.to_canonical()),
            (Some(_), _) => true,
        }
    }

    /// No rules but one: a TCP, UDP or QUIC peer on this host must be user `uid` (`--exec`'s
    /// default, so another local user cannot run the program as the server's user). Peers
    /// from other addresses are let in as with no rules.
    #[cfg(test)]
    pub(crate) fn loopback_owner(uid: u32) -> Access {
        Access {
            owner: Some(uid),
            ..Access::default()
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.owner.is_none()
    }

    /// Whether a rule needs a peer's user: the owner of a TCP, UDP or QUIC peer's socket, or
    /// the uid a Unix datagram carries (which the socket must ask for: SO_PASSCRED).
    pub(crate) fn asks_uid(&self) -> bool {
        self.owner.is_some()
            || self
                .allow
                .iter()
                .chain(&self.deny)
                .any(|r| matches!(r, Rule::Uid(_)))
    }

    /// Why `who` is refused, worded for the log after "refused" ("by --deny RULE", ": no
    /// --allow rule matches ..."); `None` when allowed.
    fn refusal(&self, proto: Proto, who: Who) -> Option<String> {
        if let Some(rule) = self.deny.iter().find(|r| r.matches(who)) {
            return Some(format!(" by --deny {rule}"));
        }
        // --exec's default: a Unix peer, or an IP one from this host; a peer from elsewhere
        // is judged by the rules.
        if let Some(owner) = self.owner {
            match who {
                Who::Local { uid, .. } | Who::Cred { uid, .. } if uid == owner => return None,
                Who::Local { uid, .. } => {
                    return Some(format!(
                        " by {}",
                        owner_refusal(owner, "from this host ", Some(uid))
                    ));
                }
                Who::Cred { uid, .. } => {
                    return Some(format!(" by {}", owner_refusal(owner, "", Some(uid))));
                }
                // This host's own IPv6 address, which a datagram from anywhere may claim:
                // its user is not asked.
                Who::Ip(ip) if !on_this_host(proto, ip) && is_this_host(ip) => {
                    let rule = owner_rule(owner, "from this host ");
                    return Some(format!(
                        " by {rule}, and a datagram from this host's own IPv6 address may come \
                         from any host, so whose it is cannot be told; send from ::1 or 127.0.0.1"
                    ));
                }
                Who::Ip(ip) if is_this_host(ip) => {
                    return Some(format!(
                        " by {}",
                        owner_refusal(owner, "from this host ", None)
                    ));
                }
                Who::Ip(_) => {}
            }
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|r| r.matches(who)) {
            let list: Vec<String> = self.allow.iter().map(Rule::to_string).collect();
            return Some(format!(": no --allow rule matches ({})", list.join(", ")));
        }
        None
    }

    /// Admits a peer told as `identity`, or says why not (logged once per peer).
    pub(crate) fn judge(
        &self,
        proto: Proto,
        peer: &dyn fmt::Display,
        identity: &Identity,
    ) -> Result<(), String> {
        // Rules that ask no user judge an IP peer by its address, its owner told or not.
        let who = match identity.ip {
            Some(ip) if !self.asks_uid() => Ok(Who::Ip(ip)),
            _ => identity.who.clone(),
        };
        if self.gate_refuses(&who) {
            tracing::debug!("{proto} {peer}: refused, no run of this address holds its turn");
            return Err("refused: no run of this address holds its turn".into());
        }
        if self.is_open() {
            return Ok(());
        }
        let who = match who {
            Ok(who) => who,
            // Rules exist but the kernel would not say who this is: refuse, never guess.
            Err(why) => {
                static LOG: Throttle = Throttle::new();
                if let Some(more) = LOG.allow() {
                    warn!("{proto} {peer}: refused, the peer's identity is unknown: {why}{more}");
                }
                return Err("refused: the server cannot tell who this peer is".into());
            }
        };
        let Some(rule) = self.refusal(proto, who) else {
            return Ok(());
        };
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() >= MAX_LOGGED {
            logged.clear();
        }
        // Once per peer, and throttled: a peer with many addresses causes the line at will
        // (one left out is logged at its next refusal).
        static LOG: Throttle = Throttle::new();
        if !logged.contains(&who)
            && let Some(more) = LOG.allow()
        {
            logged.insert(who);
            // A connection's name says its credentials already; a datagram's sender does not.
            match who {
                Who::Local { uid, .. } => {
                    warn!("{proto} {peer} (uid {uid}): refused{rule}{more}")
                }
                Who::Cred { uid, gid } if proto.kind() == SocketKind::Datagram => {
                    warn!("{proto} {peer} (uid {uid} gid {gid}): refused{rule}{more}")
                }
                _ => warn!("{proto} {peer}: refused{rule}{more}"),
            }
        }
        Err(format!("refused{rule}"))
    }

    /// Whether an accepted connection may stay; the caller closes it if not.
    pub(crate) fn admits_conn(&self, proto: Proto, conn: &Conn) -> bool {
        self.judge_conn(proto, conn).is_ok()
    }

    /// Admits an accepted connection, or says why not, in words the peer may be told.
    pub(crate) fn judge_conn(&self, proto: Proto, conn: &Conn) -> Result<(), String> {
        if self.is_open() && self.gate.is_none() {
            return Ok(());
        }
        self.judge(proto, &conn.peer(), &self.identify_conn(proto, conn, false))
    }

    /// Who `conn`'s peer is, told once for the rules and for a count by user: a Unix peer's
    /// credentials (SO_PEERCRED); an IP peer's address, and for a peer on this host the user
    /// owning its socket when a rule asks or `by_user` (the caller counts peers by user).
    pub(crate) fn identify_conn(&self, proto: Proto, conn: &Conn, by_user: bool) -> Identity {
        if proto.is_unix() {
            let who = crate::transport::unix::peer_cred(conn.socket())
                .map(|(uid, gid)| Who::Cred { uid, gid })
                .map_err(|e| format!("SO_PEERCRED: {e}"));
            return Identity::unix(who);
        }
        match conn.remote() {
            Some(peer) => self.owned_peer(proto, peer, conn.local(), by_user),
            None => Identity::unix(Err("the connection has no peer address".into())),
        }
    }

    /// Who the sender of a datagram from `from` is, received on a socket bound to `local`,
    /// as [`Access::identify_conn`] tells a connection's peer; `cred`: the uid and gid a Unix
    /// datagram carried (SCM_CREDENTIALS), read where [`Access::asks_uid`].
    pub(crate) fn identify_datagram(
        &self,
        proto: Proto,
        from: &PeerAddr,
        local: Option<SocketAddr>,
        cred: Option<(u32, u32)>,
        by_user: bool,
    ) -> Identity {
        let who = match (proto.is_unix(), from.0.as_socket()) {
            (true, _) => cred
                .map(|(uid, gid)| Who::Cred { uid, gid })
                .ok_or_else(|| "the datagram carried no credentials (SCM_CREDENTIALS)".into()),
            (false, Some(peer)) => return self.owned_peer(proto, peer, local, by_user),
            (false, None) => Err("the datagram has no source address".into()),
        };
        Identity::unix(who)
    }

    /// An IP peer of a socket bound to `local`, with the user owning its socket when a rule
    /// asks or `by_user`, and the socket is on this host (on loopback, or on another of this
    /// host's addresses); `Err`, saying why, when a peer of this host's owner cannot be told.
    fn owned_peer(
        &self,
        proto: Proto,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        by_user: bool,
    ) -> Identity {
        let ip = peer.ip();
        // A peer from elsewhere has no socket here to ask about (sock_diag sees this host's).
        let here = on_this_host(proto, ip);
        let told = |who| Identity {
            who,
            ip: Some(ip),
            here,
        };
        if !here || (!by_user && !self.asks_uid()) {
            return told(Ok(Who::Ip(ip)));
        }
        let why = match local.map(|local| socket_owner(proto, peer, local)) {
            Some(Some(Ok(Some(uid)))) => return told(Ok(Who::Local { ip, uid })),
            Some(Some(Err(e))) => e.to_string(),
            Some(None) => return told(Ok(Who::Ip(ip))),
            _ => "no socket of this host holds its port now (closed at once?)".into(),
        };
        // No socket found from an address of this host (any of them, not loopback alone: a
        // local user who closed its socket at once looks the same): unknown, so refused
        // while a rule asks who.
        told(Err(why))
    }

    /// Whether a datagram from `from`, received on a socket bound to `local`, is served;
    /// the caller ignores it if not. `cred`: as [`Access::identify_datagram`] says.
    pub(crate) fn admits_datagram(
        &self,
        proto: Proto,
        from: &PeerAddr,
        local: Option<SocketAddr>,
        cred: Option<(u32, u32)>,
    ) -> bool {
        if self.is_open() && self.gate.is_none() {
            return true;
        }
        let identity = self.identify_datagram(proto, from, local, cred, false);
        self.judge(proto, from, &identity).is_ok()
    }
}

/// A peer as told once per connection or datagram ([`Access::identify_conn`],
/// [`Access::identify_datagram`]), read by the rules and by a count of peers by user.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// Who it is; `Err`, saying why, for a peer on this host whose user was asked and could
    /// not be told, or a peer with no address.
    who: Result<Who, String>,
    /// An IP peer's address.
    ip: Option<IpAddr>,
    /// An IP peer on this host ([`on_this_host`]).
    here: bool,
}

impl Identity {
    /// A peer with no IP address (a Unix one), or none told.
    fn unix(who: Result<Who, String>) -> Identity {
        Identity {
            who,
            ip: None,
            here: false,
        }
    }

    /// An IP peer's address; `None` for a Unix peer.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// A Unix peer's uid, as its credentials told.
    pub(crate) fn unix_uid(&self) -> Option<u32> {
        match self.who {
            Ok(Who::Cred { uid, .. }) => Some(uid),
            _ => None,
        }
    }

    /// For an IP peer on this host, the user that owns its socket (`None` inside: it could
    /// not be told, or was not asked); `None` for a peer elsewhere or a Unix one.
    pub(crate) fn local_user(&self) -> Option<Option<u32>> {
        match (&self.who, self.ip) {
            (Ok(Who::Local { uid, .. }), _) => Some(Some(*uid)),
            _ if self.here => Some(None),
            _ => None,
        }
    }
}

/// The refusal of `--exec`'s default rule, one sentence on every transport: whom it admits
/// (`whence`: from where the rule judges peers) and how to admit `uid`, the peer's user
/// (`None`: a peer on this host whose user could not be told).
fn owner_refusal(owner: u32, whence: &str, uid: Option<u32>) -> String {
    let rule = owner_rule(owner, whence);
    match uid {
        Some(uid) => format!("{rule}; serve --allow uid:{uid} admits uid {uid}"),
        None => format!("{rule}, and the user that owns this peer's socket could not be told"),
    }
}

/// `--exec`'s default rule in words: whom it admits, `whence` judging peers.
fn owner_rule(owner: u32, whence: &str) -> String {
    format!("--exec's rule: {whence}only this server's user (uid {owner}) may run the program")
}

/// Why `rule` cannot match a peer of `proto`.
fn misfit(proto: Proto, rule: &Rule, tcp_uid: bool) -> &'static str {
    match rule {
        Rule::Cidr(..) => "CIDR blocks apply to tcp and udp; match Unix peers by uid:N or gid:N",
        _ if proto == Proto::UnixDgram && tcp_uid => {
            "--exec matches a Unix datagram's sender by the uid the kernel attached to it \
             (SCM_CREDENTIALS); match it by uid:N"
        }
        _ if proto == Proto::UnixDgram => {
            "the echo service checks no credentials on a Unix datagram (SO_PEERCRED needs a \
             connection); uid and gid rules apply to unix and unix-seqpacket, and uid:N to \
             unix-dgram with --exec (SCM_CREDENTIALS)"
        }
        Rule::Gid(_) if tcp_uid => {
            "the kernel tells which user owns a TCP, UDP or QUIC peer's socket on this host, \
             not its group; match it by uid:N"
        }
        _ => {
            "uid and gid come from SO_PEERCRED, on unix and unix-seqpacket sockets (and uid:N \
             on tcp, udp, quic and unix-dgram for --exec); match IP peers by CIDR block"
        }
    }
}

/// The user that owns the socket of a `proto` peer at `peer` that reached a socket bound to
/// `local`, if that socket is on this host: the one place that picks the sock_diag lookup,
/// its TCP socket ([`tcp_owner`]), or the UDP socket a UDP sender or a QUIC connection
/// (which runs over UDP) sends from ([`udp_owner`]). `None`: `proto`'s peers have no such
/// socket.
fn socket_owner(
    proto: Proto,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<io::Result<Option<u32>>> {
    match proto {
        Proto::Tcp => Some(tcp_owner(peer, local)),
        Proto::Udp | Proto::Quic => Some(udp_owner(peer, local)),
        _ => None,
    }
}

/// The user that owns the socket of `conn`'s peer on this host, if the kernel tells: a TCP
/// connection's, or a QUIC stream's (its connection reached the server at `conn.local()`).
pub(crate) fn conn_user(conn: &Conn) -> Option<u32> {
    let peer = conn.remote()?;
    socket_owner(conn_proto(conn), peer, conn.local()?)?
        .ok()
        .flatten()
}

/// The protocol of an IP connection: tcp, or quic, whose connections reach a service as one
/// end of a socket pair.
pub(crate) fn conn_proto(conn: &Conn) -> Proto {
    match conn.socket().local_addr().ok().and_then(|a| a.as_socket()) {
        Some(_) => Proto::Tcp,
        None => Proto::Quic,
    }
}

/// Whether a peer of `proto` at `ip` is on this host. A TCP handshake proves its source:
/// any of this host's addresses. A datagram's source (UDP, QUIC's) proves less: see
/// [`crate::service::guard::datagram_from_this_host`].
pub(crate) fn on_this_host(proto: Proto, ip: IpAddr) -> bool {
    match proto {
        Proto::Tcp => is_this_host(ip),
        _ => crate::service::guard::datagram_from_this_host(ip),
    }
}

/// The user that owns the UDP socket on this host that sent `peer`'s datagrams to a socket
/// bound to `local`, if the kernel tells ([`udp_owner`]).
pub(crate) fn datagram_user(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    socket_owner(Proto::Udp, peer, local)?.ok().flatten()
}

/// Whether `allow` names users (uid:N, gid:N).
fn names_users(allow: &[Rule]) -> bool {
    allow
        .iter()
        .any(|r| matches!(r, Rule::Uid(_) | Rule::Gid(_)))
}

/// The user that owns the UDP socket at `peer` that sent to a socket bound to `local`, if
/// that socket is on this host: the one owner of the sockets on `peer`'s port
/// ([`sock_diag::udp_port_owner`]), several an error. `Ok(None)`: no socket here holds that
/// port, or `peer`'s address is not this host's (no user here can send from it).
fn udp_owner(peer: SocketAddr, local: SocketAddr) -> io::Result<Option<u32>> {
    let ip = peer.ip().to_canonical();
    if !crate::service::guard::datagram_from_this_host(ip) {
        return Ok(None);
    }
    let port = peer.port();
    // The server's own socket holds its port: a sender from that port on another of this
    // host's addresses, its socket closed at once, would leave the server's as the one owner.
    if port == local.port() {
        return Err(io::Error::other(format!(
            "it sent from port {port}, the server's own, which the server's socket holds, so \
             who sent cannot be told; send from a port of your own"
        )));
    }
    sock_diag::udp_port_owner(port, ip.is_ipv4())
        .map_err(|e| io::Error::other(format!("{e}; send from a port of your own")))
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
        assert_eq!(access.refusal(Proto::Tcp, ip("127.0.0.1")), None);
        assert_eq!(
            access.refusal(Proto::Tcp, ip("127.0.0.2")).unwrap(),
            " by --deny 127.0.0.2/32"
        );
        assert!(
            access
                .refusal(Proto::Tcp, ip("10.0.0.1"))
                .unwrap()
                .starts_with(": no --allow rule")
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
    fn rules_that_read_as_something_else_are_refused_with_the_rule_to_write() {
        let err = |t: &str| t.parse::<Rule>().unwrap_err();
        assert!(err("::127.0.0.1").contains("write 127.0.0.1"));
        assert!(err("::10.0.0.0/104").contains("write 10.0.0.0"));
        assert!(err("10.0.0.1/8").contains("is the block 10.0.0.0/8"));
        assert!(err("::ffff:10.0.0.1/104").contains("is the block 10.0.0.0/8"));
        assert!(err("2001:db8::1/64").contains("is the block 2001:db8::/64"));
        assert!(err("fe80::1%eth0").contains("a rule has no zone: write fe80::1"));
        assert!(err("fe80::%eth0/64").contains("write fe80::/64"));
        for fine in [
            "::/0",
            "::1",
            "::",
            "0.0.0.0/0",
            "10.0.0.0/8",
            "::ffff:0.0.0.0/96",
        ] {
            assert!(fine.parse::<Rule>().is_ok(), "{fine}");
        }
    }

    #[test]
    fn ipv4_mapped_rules_become_the_ipv4_block_they_name() {
        let v4 = |t: &str| IpAddr::V4(t.parse().unwrap());
        let net = |ip, len| Net { ip, len };
        assert_eq!(rule("::ffff:10.9.9.9"), Rule::Cidr(net(v4("10.9.9.9"), 32)));
        assert_eq!(
            rule("::ffff:10.9.9.9/128"),
            Rule::Cidr(net(v4("10.9.9.9"), 32))
        );
        assert_eq!(
            rule("::ffff:10.9.9.0/120"),
            Rule::Cidr(net(v4("10.9.9.0"), 24))
        );
        assert_eq!(
            rule("[::ffff:10.0.0.0]/104"),
            Rule::Cidr(net(v4("10.0.0.0"), 8))
        );
        assert_eq!(rule("::ffff:0.0.0.0/96"), Rule::Cidr(net(v4("0.0.0.0"), 0)));
        let short = "::ffff:10.0.0.0/95".parse::<Rule>().unwrap_err();
        assert!(short.contains("96 to 128"), "{short}");
        // Other IPv6 blocks stay IPv6.
        assert_eq!(rule("::1"), Rule::Cidr(net("::1".parse().unwrap(), 128)));
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
        assert!(access.refusal(Proto::Tcp, ip("10.9.9.9")).is_some());
        assert_eq!(access.refusal(Proto::Tcp, ip("10.9.9.10")), None);
        assert_eq!(access.refusal(Proto::Tcp, ip("127.0.0.1")), None);
    }

    #[test]
    fn uid_rules_on_tcp_are_for_exec_only() {
        assert!(Access::new(Proto::Tcp, &[rule("uid:0")], &[]).is_err());
        assert!(Access::for_exec(Proto::Tcp, &[rule("uid:0")], &[]).is_ok());
        assert!(Access::for_exec(Proto::Tcp, &[rule("gid:0")], &[]).is_err());
        assert!(Access::for_exec(Proto::Udp, &[rule("uid:0")], &[]).is_ok());
        assert!(Access::new(Proto::Udp, &[rule("uid:0")], &[]).is_err());
        assert!(Access::for_exec(Proto::Quic, &[rule("uid:0")], &[]).is_ok());
        assert!(Access::new(Proto::Quic, &[rule("uid:0")], &[]).is_err());
        // A Unix datagram carries its sender's uid (SCM_CREDENTIALS) when --exec asks.
        assert!(Access::for_exec(Proto::UnixDgram, &[rule("uid:0")], &[]).is_ok());
        assert!(Access::for_exec(Proto::UnixDgram, &[rule("gid:0")], &[]).is_err());
        assert!(Access::new(Proto::UnixDgram, &[rule("uid:0")], &[]).is_err());
    }

    #[test]
    fn the_owner_of_a_loopback_datagram_sender_is_told_by_the_kernel() {
        let me = nix::unistd::geteuid().as_raw();
        for (host, any) in [("127.0.0.1:0", "0.0.0.0:0"), ("[::1]:0", "[::]:0")] {
            for bind in [host, any] {
                let server = std::net::UdpSocket::bind(bind).unwrap();
                let port = server.local_addr().unwrap().port();
                let mut to: SocketAddr = host.parse().unwrap();
                to.set_port(port);
                // Connected to the server, as `netecho exec` is, and unconnected.
                let connected = std::net::UdpSocket::bind(host).unwrap();
                connected.connect(to).unwrap();
                let loose = std::net::UdpSocket::bind(host).unwrap();
                let local = server.local_addr().unwrap();
                for client in [&connected, &loose] {
                    let peer = client.local_addr().unwrap();
                    assert_eq!(udp_owner(peer, local).unwrap(), Some(me), "{bind} {peer}");
                }
                // Another socket of this user on the port, on another address: still one
                // owner. The port off this host is not this user's: nobody here sends from it.
                let peer = loose.local_addr().unwrap();
                let mut beside = peer;
                beside.set_ip([127, 0, 0, 2].into());
                let held = peer
                    .is_ipv4()
                    .then(|| std::net::UdpSocket::bind(beside).unwrap());
                assert_eq!(udp_owner(peer, local).unwrap(), Some(me), "{bind} {peer}");
                beside.set_ip([192, 0, 2, 1].into());
                assert_eq!(udp_owner(beside, local).unwrap(), None, "{bind} {beside}");
                // A port no socket holds is nobody's.
                let gone = loose.local_addr().unwrap();
                drop((loose, held));
                assert_eq!(udp_owner(gone, local).unwrap(), None, "{bind} closed");
            }
        }
    }

    #[test]
    fn the_loopback_owner_rule_judges_only_peers_on_this_host() {
        let access = Access::loopback_owner(1000);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            access.refusal(Proto::Tcp, Who::Local { ip, uid: 1000 }),
            None
        );
        let other = access
            .refusal(Proto::Tcp, Who::Local { ip, uid: 65534 })
            .unwrap();
        assert!(other.contains("--allow uid:65534"), "{other}");
        assert!(
            access.refusal(Proto::Tcp, Who::Ip(ip)).is_some(),
            "an unknown owner on loopback"
        );
        assert_eq!(
            access.refusal(Proto::Tcp, Who::Ip("10.1.2.3".parse().unwrap())),
            None
        );
        assert!(!access.is_open());
    }

    /// A datagram from one of this host's own IPv6 addresses (not loopback) may come from
    /// the wire: counted as a source elsewhere (its address), never as "this host, user
    /// unknown"; over TCP, whose handshake proves the source, it is this host's.
    #[test]
    fn a_datagram_from_an_own_ipv6_address_is_counted_as_a_source_elsewhere() {
        let ours: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
            .unwrap()
            .filter_map(|a| a.address?.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            .filter(|ip| !ip.is_loopback())
            .collect();
        if ours.is_empty() {
            eprintln!("skipped: this host has no IPv6 address but loopback");
            return;
        }
        let access = Access::new(Proto::Udp, &[], &[]).unwrap();
        let local: SocketAddr = "[::1]:3234".parse().unwrap();
        for ip in ours {
            let from = SocketAddr::new(ip, 4000);
            let sender = access.identify_datagram(
                Proto::Udp,
                &PeerAddr(from.into()),
                Some(local),
                None,
                true,
            );
            assert_eq!(sender.local_user(), None, "{ip} over udp");
            let owner = crate::files::admit::owner(Some(from), Proto::Udp, || Some(0));
            assert_eq!(
                owner,
                Some(crate::endpoint::share_name(ip)),
                "{ip} over udp"
            );
            let peer = access.owned_peer(Proto::Tcp, from, Some(local), true);
            assert!(peer.local_user().is_some(), "{ip} over tcp");
            let owner = crate::files::admit::owner(Some(from), Proto::Tcp, || Some(0));
            assert_eq!(
                owner.as_deref(),
                Some("uid 0 on this host"),
                "{ip} over tcp"
            );
        }
    }

    /// A sender whose socket is gone when the server asks (closed at once) is nobody the
    /// kernel can name: from any address of this host, not loopback alone, it is unknown
    /// (refused while a rule asks who); from elsewhere, a remote peer.
    #[test]
    fn a_peer_on_this_host_whose_socket_is_gone_is_unknown() {
        let access = Access::loopback_owner(0);
        let local: SocketAddr = "127.0.0.1:3234".parse().unwrap();
        let ours = nix::ifaddrs::getifaddrs()
            .unwrap()
            .filter_map(|a| a.address?.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())));
        for ip in ours {
            let gone = std::net::UdpSocket::bind((ip, 0))
                .unwrap()
                .local_addr()
                .unwrap();
            for proto in [Proto::Udp, Proto::Tcp, Proto::Quic] {
                let why = access.owned_peer(proto, gone, Some(local), false).who;
                let why = why.unwrap_err();
                assert!(why.contains("no socket of this host"), "{gone}: {why}");
            }
        }
        let remote: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        assert_eq!(
            access
                .owned_peer(Proto::Udp, remote, Some(local), false)
                .who,
            Ok(Who::Ip(remote.ip()))
        );
    }

    /// A Unix datagram is judged by the credentials it carried (SCM_CREDENTIALS); one
    /// without them is nobody the server can name, so refused.
    #[test]
    fn a_unix_datagram_is_judged_by_its_credentials_and_refused_without() {
        let access = Access::for_exec(Proto::UnixDgram, &[rule("uid:1000")], &[]).unwrap();
        assert!(access.asks_uid());
        let from = PeerAddr(socket2::SockAddr::unix("/run/client.sock").unwrap());
        let admits = |cred| access.admits_datagram(Proto::UnixDgram, &from, None, cred);
        assert!(admits(Some((1000, 1000))));
        assert!(!admits(Some((65534, 65534))));
        assert!(!admits(None), "a datagram without credentials");
    }

    #[test]
    fn a_network_is_written_as_a_rule_s_block_and_holds_mapped_peers() {
        let net = |t: &str| t.parse::<Net>();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(net("10.0.0.1/8").unwrap_err().contains("write 10.0.0.0/8"));
        assert!(net("uid:0").unwrap_err().contains("is not a network"));
        assert!(net("10.0.0.0/+8").is_err(), "a sign is no prefix length");
        assert!(
            net("fe80::1%eth0")
                .unwrap_err()
                .contains("a network has no zone")
        );
        let lan = net("::ffff:192.168.1.0/120").unwrap();
        assert_eq!(lan, net("192.168.1.0/24").unwrap());
        assert!(lan.contains(ip("::ffff:192.168.1.7")));
        assert!(lan.contains(ip("192.168.1.7")));
        assert!(!lan.contains(ip("192.168.2.7")));
        assert!(Net::families_covered(&[lan]).is_empty());
        assert!(!net("::/0").unwrap().contains(ip("10.0.0.1")));
    }

    #[test]
    fn networks_that_together_hold_a_whole_family_are_told() {
        let covered = |nets: &[&str]| {
            let nets: Vec<Net> = nets.iter().map(|t| t.parse().unwrap()).collect();
            Net::families_covered(&nets)
        };
        assert_eq!(covered(&["0.0.0.0/0"]), ["IPv4"]);
        assert_eq!(covered(&["::/0"]), ["IPv6"]);
        assert_eq!(covered(&["::ffff:0.0.0.0/96"]), ["IPv4"]);
        assert_eq!(covered(&["128.0.0.0/1", "0.0.0.0/1"]), ["IPv4"]);
        assert_eq!(
            covered(&["8000::/1", "::/1", "0.0.0.0/0"]),
            ["IPv4", "IPv6"]
        );
        // Overlapping and nested blocks, in any order.
        let quarters = ["192.0.0.0/2", "0.0.0.0/1", "10.0.0.0/8", "128.0.0.0/2"];
        assert_eq!(covered(&quarters), ["IPv4"]);
        // A gap anywhere: at the end, at the start.
        assert!(covered(&["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4"]).is_empty());
        assert!(covered(&["0.0.0.0/1"]).is_empty());
        assert!(covered(&["128.0.0.0/1", "0.0.0.1"]).is_empty());
        assert!(covered(&["::/1"]).is_empty());
        assert!(covered(&[]).is_empty());
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
