//! `netecho relay FROM TO`: listens on FROM like `serve`, and for each client opens a socket
//! to TO and carries messages both ways, across protocols, through simulated conditions.
//! A connection on FROM gets its own connection to TO; a datagram sender on FROM gets its
//! own socket to TO, so replies find their way back to the right sender. A udp socket to TO
//! follows the port TO answers from (TFTP, netecho's udp files), from TO's address only.

pub(crate) mod flow;
pub(crate) mod link;
mod newcomers;
mod redial;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::access::{Access, Net};
use crate::endpoint::{Address, SockProto, Target, share_key};
use crate::impair::{Conditions, Rng};
use crate::server::admission::Share;
use crate::service::guard::{self, Guard, GuardRules};
use crate::signal::{Shutdown, Signal, Wake};
use crate::transport::framing::Framing;
use crate::transport::message::{Carrier, Receiver};
use crate::transport::udp;
use crate::transport::{
    self, BoundSock, Conn, DatagramSocket, Listener, PeerAddr, Received, SocketOptions, Told,
};

use flow::Flow;
use link::{Link, LinkSpec, PeerSink, QUEUE, Sink};

/// Datagram senders relayed at once (or --max-conns, if lower); past it, the idlest sender
/// that TO never answered makes room, else the new one is ignored (and logged).
pub(crate) const MAX_PEERS: usize = 1024;
/// Clients relayed at once unless --max-conns says otherwise: each connection costs three
/// threads and two sockets.
pub(crate) const DEFAULT_MAX_CONNS: u32 = 1024;
/// How long a datagram sender not in a conversation must have been idle before a newcomer
/// from its source may take its place: a flood holding a source's places must renew them
/// each second, and a sender changing ports cannot make every datagram a flow.
const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// Flows (connections, datagram senders) from one source at once: a peer elsewhere by its
/// address (an IPv6 address's /64), a peer on this host, Unix ones too, by its user (as
/// `serve` counts them, [`Share`]), so one local user holding flows does not shut out
/// another. Each flow opens a socket to TO and runs three threads, and two relays pointed
/// at each other turn each message into a new flow at the other one, from a new port of the
/// same source, hop after hop: at this many the next hop is refused and the chain ends.
pub(crate) const FLOWS_PER_SOURCE: usize = 128;
/// New datagram senders at unproven addresses (off this host, outside --trust) given a flow
/// each second when TO takes a connection (tcp, unix, seqpacket, TLS), after a burst of
/// [`NEW_CONNS_BURST`]: each such flow costs TO a handshake (TLS's too), and one forged
/// datagram makes a new sender. 100 a second is about a tenth of a core of TLS handshakes at
/// TO, and more new clients a second than a relay on a test bench meets; past it the datagram
/// is dropped and counted in the stop line. Senders on this host, and Unix ones, are never
/// held to it; each source (an IPv4 address, an IPv6 /64) to its share of it, smaller as
/// more sources ask, one share kept for a source not asking yet ([`newcomers`]).
const NEW_CONNS_PER_SEC: u64 = 100;
/// The burst: one source may open all its flows ([`FLOWS_PER_SOURCE`]) at once.
const NEW_CONNS_BURST: u64 = FLOWS_PER_SOURCE as u64;
/// A datagram sender silent this long (both ways) is forgotten, its socket to TO closed,
/// unless --idle-timeout says otherwise.
const PEER_IDLE: Duration = Duration::from_secs(30);
/// Flows kept for the summary on exit; past it, finished flows are forgotten (-v logged them).
const MAX_KEPT: usize = 4096;
/// Messages queued per direction of a connection: back-pressure, not loss. A stream's
/// message is one read of at most 64 KiB, so a client that never reads makes its flow hold
/// about 1 MiB, not 8.
const STREAM_QUEUE: usize = 4;
/// After a stop signal, how long the flows get to finish before their lines are printed.
const FINISH: Duration = Duration::from_secs(3);

/// What every flow of this relay shares: the two ends, how to cut streams into messages,
/// and the conditions of each direction. The relay's configuration: the command line builds
/// it and checks that its parts go together (no raw end, framing where a stream meets
/// messages, no loss between two reliable sockets).
pub(crate) struct Route {
    pub from: Target,
    pub to: Target,
    /// Set when one side is a byte stream and the other keeps message boundaries.
    pub framing: Option<Framing>,
    pub max_frame: usize,
    pub up: Conditions,
    pub down: Conditions,
    pub seed: u64,
    /// FROM's listener (TLS there: --tls-from).
    pub opts: SocketOptions,
    /// The connections to TO (TLS there: --tls-to).
    pub to_opts: SocketOptions,
    /// --allow and --deny, for the clients on FROM.
    pub access: Access,
    /// Clients (connections, datagram senders) relayed at once.
    pub max_conns: usize,
    /// A flow with no message either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// --trust: datagram senders in these networks get every reply, as this host's do.
    pub trust: Vec<Net>,
    /// The owner of the socket file at TO's path when the relay started (`run` sets it):
    /// a socket another user binds there later gets no flow.
    pub to_owner: Option<u32>,
}

impl Route {
    /// The chance of one direction of one flow: its own stream of numbers from the seed.
    fn rng(&self, flow: u64, down: bool) -> Rng {
        Rng::seeded(self.seed ^ (flow << 1 | u64::from(down)).wrapping_mul(0x9e37_79b9))
    }

    /// What a message is on `side`: framed when it is the stream side of a relay between a
    /// stream and messages.
    fn carrier(&self, side: &Target) -> Carrier {
        let opts = if side == &self.from {
            &self.opts
        } else {
            &self.to_opts
        };
        // TLS makes any socket a stream of records.
        let kind = match opts.tls {
            Some(_) => crate::endpoint::SocketKind::Stream,
            None => side.proto.kind(),
        };
        Carrier::of(kind, self.framing.unwrap_or_default())
    }

    /// The writer of one direction of flow `id` into `sink` (`down`: towards FROM's client),
    /// with that direction's conditions and chance; `replies_of`: the socket to TO whose
    /// replies a down direction carries.
    fn link(
        &self,
        flow: &Arc<Flow>,
        (id, down): (u64, bool),
        sink: Sink,
        queue: usize,
        replies_of: Option<&Arc<Conn>>,
    ) -> Result<Link> {
        let (cond, stats) = match down {
            true => (self.down, &flow.down),
            false => (self.up, &flow.up),
        };
        let rng = self.rng(id, down);
        let spec = LinkSpec {
            sink,
            cond,
            rng,
            queue,
            replies_of: replies_of.cloned(),
            to: (!down).then(|| self.to.clone()),
            to_owner: self.to_owner,
        };
        Ok(Link::spawn(spec, Arc::clone(stats), Arc::clone(flow))?)
    }

    /// Whether a datagram sender at `ip` gets every reply: this host, or --trust. Any other
    /// source address may be forged, so it is sent no more bytes than it sent.
    fn proven(&self, ip: IpAddr) -> bool {
        guard::datagram_from_this_host(ip) || self.trust.iter().any(|net| net.contains(ip))
    }

    /// The reader of messages from `side`; `udp_peer`: where its frames go as udp
    /// datagrams, whose family's limit caps them.
    fn receiver(&self, side: &Target, udp_peer: Option<SocketAddr>) -> Receiver {
        let max = match udp_peer {
            Some(peer) => self.max_frame.min(udp::max_payload(peer)),
            None => self.max_frame,
        };
        self.carrier(side).receiver(max)
    }
}

/// Every flow so far, for the lines on exit.
#[derive(Default)]
struct Flows {
    all: Mutex<Vec<Arc<Flow>>>,
    next: AtomicU64,
    /// New senders dropped past [`NEW_CONNS_PER_SEC`], for the stop line.
    over_rate: AtomicU64,
}

impl Flows {
    fn add(&self, flow: &Arc<Flow>) {
        let mut all = self.all.lock().unwrap();
        if all.len() >= MAX_KEPT {
            all.retain(|f| !f.finished());
        }
        all.push(Arc::clone(flow));
    }

    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Closes every flow and waits, at most `limit`, until each has finished: the lines on
    /// exit then count everything the flows sent, and nothing is sent after them.
    fn finish(&self, limit: Duration) {
        let all = self.all.lock().unwrap().clone();
        for flow in &all {
            flow.close();
        }
        let deadline = Instant::now() + limit;
        loop {
            let running = all.iter().filter(|f| !f.finished()).count();
            if running == 0 {
                return;
            }
            if Instant::now() >= deadline {
                warn!(
                    "{running} flows still running {limit:?} after the stop; their lines may \
                     miss their last messages"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

pub(crate) fn run(mut route: Route) -> Result<()> {
    // Before any thread starts, so every thread inherits the blocked signals.
    let shutdown = Shutdown::install()?;
    // Every flow holds a socket to TO, and a connection flow its client's too: as many file
    // descriptors as the hard limit allows (0: no --max-conns to warn about).
    crate::lifecycle::raise_nofile(0);
    let mut bound = transport::bind_sock(&route.from, &route.opts)?;
    refuse_itself(&route, bound.local())?;
    cap_frames(&mut route, bound.local());
    route.to_owner = redial::owner_of(&route.to);
    let what = format!("{} {}", route.from.proto, bound.local());
    crate::lifecycle::announce_listening(&what, route.opts.tls.as_ref())?;
    crate::server::tell_pin(route.opts.tls.as_ref());
    // Blocks that together hold a family are warned about as its /0 is.
    for family in crate::access::Net::families_covered(&route.trust) {
        let nets: Vec<String> = (route.trust.iter())
            .filter(|net| net.family() == family)
            .map(|net| net.to_string())
            .collect();
        warn!(
            "--trust {}: every {family} sender is trusted and gets every reply, so anyone can \
             aim this relay's replies at any address by forging it; trust a network of yours \
             instead",
            nets.join(", ")
        );
    }
    info!(
        "relaying {} {} -> {}",
        route.from.proto,
        bound.local(),
        route.to
    );
    if !route.up.is_perfect() || !route.down.is_perfect() {
        info!(
            "simulated conditions (seed {}): up (FROM to TO) {}; down (TO to FROM) {}",
            route.seed, route.up, route.down
        );
    }
    let route = Arc::new(route);
    let flows = Arc::new(Flows::default());
    let (signal, overflowed) = match &mut bound {
        BoundSock::Listener(listener) => (
            relay_connections(listener, &route, &flows, &shutdown)?,
            None,
        ),
        BoundSock::Datagram(sock) => (
            relay_datagrams(sock, &route, &flows, &shutdown)?,
            Overflowed::of(sock),
        ),
    };
    flows.finish(FINISH);
    let all = std::mem::take(&mut *flows.all.lock().unwrap());
    for flow in &all {
        crate::lifecycle::announce(&flow.summary())?;
    }
    drop(bound);
    crate::logging::say_left_out();
    let mut last = format!("stopped by {signal}: {} flows", all.len());
    let over_rate = flows.over_rate.load(Ordering::Relaxed);
    if over_rate > 0 {
        last += &format!(
            "; {} off this host not relayed: past {NEW_CONNS_PER_SEC} new connections to TO \
             a second",
            crate::units::count(over_rate, "new sender")
        );
    }
    if let Some(overflowed) = overflowed.filter(|o| o.dropped > 0) {
        last += &overflowed.to_string();
    }
    last += &unsent_at_stop(&all);
    crate::lifecycle::announce(&last)
}

/// What every flow still held when the relay stopped (or when it closed before), never sent,
/// for the stop line: nothing when none held anything.
fn unsent_at_stop(all: &[Arc<Flow>]) -> String {
    let (mut messages, mut bytes) = (0, 0);
    for dir in all.iter().flat_map(|flow| [&flow.up, &flow.down]) {
        messages += dir.unsent.load(Ordering::Relaxed);
        bytes += dir.unsent_bytes.load(Ordering::Relaxed);
    }
    match messages {
        0 => String::new(),
        _ => format!("; {}", link::unsent(messages, bytes, "flows")),
    }
}

/// What the kernel dropped at FROM's datagram socket, its receive buffer full, before the
/// relay read it: every sender's datagrams share that buffer, so the count is the relay's,
/// not a flow's.
struct Overflowed {
    dropped: u64,
    /// SO_RCVBUF as the kernel has it (Linux doubles what --rcvbuf asks).
    rcvbuf: Option<usize>,
}

impl Overflowed {
    /// FROM's count so far: SO_MEMINFO's drop count, the one SO_RXQ_OVFL reports, read
    /// once at the stop, so the loop reading datagrams pays nothing for it.
    fn of(sock: &DatagramSocket) -> Option<Overflowed> {
        let dropped = transport::calls::drops(sock.socket()).ok()?;
        Some(Overflowed {
            dropped: u64::from(dropped),
            rcvbuf: sock.socket().recv_buffer_size().ok(),
        })
    }
}

impl std::fmt::Display for Overflowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self
            .rcvbuf
            .map_or(String::new(), |b| format!(", {b} bytes,"));
        write!(
            f,
            "; {} dropped by the kernel at FROM before the relay read them (its receive \
             buffer{size} was full: the senders outran the relay; a larger --rcvbuf holds \
             longer bursts, within net.core.rmem_max)",
            crate::units::count(self.dropped, "datagram")
        )
    }
}

/// Frames between a stream and datagrams: a frame goes out as one datagram, so
/// --max-frame is capped at the largest datagram of the datagram side (a longer frame then
/// ends its flow with a warning, as any frame over --max-frame does). `bound` is FROM's
/// address: a udp side's limit is its family's, and each flow caps its frames again at its
/// own peer's (an IPv4 client of a dual-stack FROM, a name's address).
fn cap_frames(route: &mut Route, bound: &Address) {
    if route.framing.is_none() {
        return;
    }
    let largest = |side: &Target| match side.proto {
        SockProto::Udp if side == &route.from => Some(udp_largest(std::slice::from_ref(bound))),
        SockProto::Udp => {
            let addrs = transport::target_candidates(side).unwrap_or_default();
            Some(udp_largest(
                &addrs.into_iter().map(|t| t.addr).collect::<Vec<_>>(),
            ))
        }
        SockProto::UnixDgram => Some(transport::MAX_MESSAGE),
        _ => None,
    };
    let Some((side, cap)) = [&route.from, &route.to]
        .into_iter()
        .find_map(|side| largest(side).map(|cap| (side, cap)))
    else {
        return;
    };
    if route.max_frame > cap {
        info!(
            "--max-frame {cap}: each frame goes out as one {} datagram, which holds at most {cap} \
             bytes; a longer frame closes its flow",
            side.proto
        );
        route.max_frame = cap;
    }
}

/// The largest udp datagram to or from any of `addrs` (IPv6's when none is known).
fn udp_largest(addrs: &[Address]) -> usize {
    addrs
        .iter()
        .filter_map(|a| match a {
            Address::Ip(ip) => Some(udp::max_payload(*ip)),
            _ => None,
        })
        .max()
        .unwrap_or(udp::MAX_PAYLOAD_V6)
}

/// A relay whose TO is its own FROM would connect to itself for every client, each new
/// flow making another, until no file descriptor is left.
fn refuse_itself(route: &Route, bound: &crate::endpoint::Address) -> Result<()> {
    if route.from.proto.kind() != route.to.proto.kind()
        || route.from.proto.is_unix() != route.to.proto.is_unix()
    {
        return Ok(());
    }
    let itself = match (bound, &route.to.addr) {
        (crate::endpoint::Address::Ip(own), _) => transport::candidates(&route.to.endpoint())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| match e.addr {
                crate::endpoint::Address::Ip(to) => Some(to),
                _ => None,
            })
            .any(|to| crate::service::guard::is_same_host_port(*own, to)),
        (own, to) => own == to,
    };
    if itself {
        return Err(crate::error::UsageError::new(format!(
            "relay {} -> {}: TO is the relay itself ({bound}), so every message would come \
             back to it and every flow open another; point TO at a server",
            route.from, route.to
        ))
        .into());
    }
    Ok(())
}

/// A connection on FROM: its own connection to TO, on a thread of its own; at most
/// --max-conns at once.
fn relay_connections(
    listener: &Listener,
    route: &Arc<Route>,
    flows: &Arc<Flows>,
    shutdown: &Shutdown,
) -> Result<Signal> {
    let running = Arc::new(Running::default());
    crate::lifecycle::accept_loop(listener, shutdown, Some(Duration::from_secs(1)), |conn| {
        let conn = conn?;
        let proto = route.from.proto.into();
        let identity = route.access.identify_conn(proto, &conn, true);
        let source = Share::of_any(&identity);
        if route.access.judge(proto, &conn.peer(), &identity).is_err()
            || !running.start(&conn, source, route.max_conns)
        {
            return None;
        }
        let (route, flows, count) = (Arc::clone(route), Arc::clone(flows), Arc::clone(&running));
        let started = std::thread::Builder::new()
            .name("relay-flow".into())
            .spawn(move || {
                if let Err(e) = connection_flow(conn, &route, &flows) {
                    warn!("{e:#}");
                }
                count.end(source);
            });
        if let Err(e) = started {
            running.end(source);
            warn!("busy: cannot start a thread for a connection: {e}");
        }
        None
    })
}

fn connection_flow(client: Conn, route: &Route, flows: &Flows) -> Result<()> {
    let id = flows.next_id();
    let client = Arc::new(client);
    let flow = Flow::new(id, route.from.proto.into(), client.peer(), &route.to);
    let server = Arc::new(
        redial::same_owner(&route.to, route.to_owner)
            .and_then(|()| transport::connect_first(&route.to, &route.to_opts))
            .with_context(|| format!("flow {id} from {}", client.peer()))?,
    );
    flow.hold(&client);
    flow.hold(&server);
    flow.limit_idle(route.idle_timeout);
    flows.add(&flow);
    let to_server = Sink::Conn(Arc::clone(&server), route.carrier(&route.to));
    let up = route.link(&flow, (id, false), to_server, STREAM_QUEUE, None)?;
    let to_client = Sink::Conn(Arc::clone(&client), route.carrier(&route.from));
    let down = route.link(&flow, (id, true), to_client, STREAM_QUEUE, Some(&server))?;
    let to_udp = (route.to.proto == SockProto::Udp)
        .then(|| server.remote())
        .flatten();
    let (reply_flow, reply_decoder) = (Arc::clone(&flow), route.receiver(&route.to, None));
    let replies = Arc::clone(&server);
    let reader = std::thread::Builder::new()
        .name("relay-reader".into())
        .spawn(move || {
            flow::read_into(&replies, reply_decoder, &down, &reply_flow);
            down
        })?;
    flow::read_into(&client, route.receiver(&route.from, to_udp), &up, &flow);
    // The flow holds its sockets and its four threads until TO's side and both writers end
    // too, and counts against --max-conns and its address's flows until then.
    if let Ok(down) = reader.join() {
        down.join();
    }
    up.join();
    Ok(())
}

/// A datagram sender on FROM and its own connected socket to TO.
struct Peer {
    flow: Arc<Flow>,
    up: Link,
    /// Whose flows it counts with ([`FLOWS_PER_SOURCE`]).
    source: Option<Share>,
}

/// Reads datagrams on FROM and hands each to its sender's flow, until a stop signal.
fn relay_datagrams(
    sock: &mut DatagramSocket,
    route: &Arc<Route>,
    flows: &Arc<Flows>,
    shutdown: &Shutdown,
) -> Result<Signal> {
    sock.set_nonblocking(true)?;
    if route.from.proto == SockProto::UnixDgram {
        // Each datagram with its sender's user, whose flows it counts with.
        sock.pass_credentials().context("SO_PASSCRED on FROM")?;
    }
    let mut buf = vec![0u8; transport::MAX_MESSAGE];
    let mut guard = listening_guard(sock);
    let mut senders = Senders {
        peers: HashMap::new(),
        route: Arc::clone(route),
        flows: Arc::clone(flows),
        // One handle for every flow's replies; the original keeps the socket file.
        replies: Arc::new(sock.try_clone().context("dup the relay's socket")?),
        local: sock.local_sockaddr().ok().and_then(|a| a.as_socket()),
        to_ips: transport::target_candidates(&route.to)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| match t.addr {
                Address::Ip(addr) => Some(share_key(addr.ip())),
                _ => None,
            })
            .collect(),
        max_peers: route.max_conns.min(MAX_PEERS),
        handshakes: handshakes_to(route),
        warned_full: false,
        ending: Vec::new(),
    };
    let idle = route.idle_timeout.unwrap_or(PEER_IDLE);
    loop {
        if let Wake::Stop(signal) = shutdown.wait(sock.as_fd(), Some(flow::TICK))? {
            return Ok(signal);
        }
        while let Some((from, n, told)) = next_datagram(sock, &mut buf, &mut guard) {
            if !senders.peers.contains_key(&from) && !senders.admit(&from, told) {
                continue;
            }
            let peer = &senders.peers[&from];
            peer.flow.touch();
            peer.up.try_push(buf[..n].to_vec());
        }
        let over: Vec<PeerAddr> = (senders.peers.iter())
            .filter(|(_, peer)| peer.flow.over() || peer.flow.idle_for() >= idle)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in over {
            senders.forget(&addr);
        }
        senders.warned_full &= senders.peers.len() >= senders.max_peers;
    }
}

/// The datagram senders being relayed, and what admits a new one.
struct Senders {
    peers: HashMap<PeerAddr, Peer>,
    route: Arc<Route>,
    flows: Arc<Flows>,
    replies: Arc<DatagramSocket>,
    /// FROM's address, to ask who owns a sender's socket on this host.
    local: Option<SocketAddr>,
    /// TO's addresses ([`share_key`]): a source there may be a relay pointed back here.
    to_ips: Vec<IpAddr>,
    max_peers: usize,
    /// New flows of unproven senders ([`NEW_CONNS_PER_SEC`]); none when TO takes no
    /// connection (a datagram socket's connect sends nothing).
    handshakes: Option<newcomers::Newcomers>,
    warned_full: bool,
    /// Flows forgotten (closed) whose threads have not ended yet: at most `max_peers`, so
    /// flows opened and closed at will cannot pile up threads and queues.
    ending: Vec<Arc<Flow>>,
}

impl Senders {
    /// Gives a new sender `from` a flow, unless --allow/--deny refuse it, it comes past the
    /// rate of new connections to TO, its source holds its flows, or every sender is in a
    /// conversation; false (and why, logged) if not.
    fn admit(&mut self, from: &PeerAddr, told: Told) -> bool {
        let proto = self.route.from.proto.into();
        let access = &self.route.access;
        let identity = access.identify_datagram(proto, from, self.local, told.cred, true);
        if access.judge(proto, from, &identity).is_err() {
            return false;
        }
        let source = Share::of_any(&identity);
        // The rate before any room is made: a sender dropped for it must not have cost
        // another its place (a flood past the rate would else empty its source's places).
        // Its token is taken only once there is room: a sender refused for room costs
        // other sources none.
        if !self.ending_within_bound() || !self.handshake_allowed(from) {
            return false;
        }
        if !self.room_for(from, source) {
            return false;
        }
        if self.peers.len() >= self.max_peers && !self.evict_unanswered(|_| true) {
            if !self.warned_full {
                warn!(
                    "{} datagram senders already, each answered by TO; new ones ignored until \
                     one is idle",
                    self.max_peers
                );
                self.warned_full = true;
            }
            return false;
        }
        let held = self.held_to_rate(from);
        if let (Some(bucket), Some(ip)) =
            (self.handshakes.as_mut().filter(|_| held), address_of(from))
        {
            bucket.try_take(ip, Instant::now());
        }
        let sender = (from, told.held);
        match datagram_flow(&self.replies, sender, source, &self.route, &self.flows) {
            Ok(peer) => {
                self.peers.insert(from.clone(), peer);
                true
            }
            Err(e) => {
                warn!("{e:#}");
                false
            }
        }
    }

    /// Whether `source` may have one more flow: it holds fewer than [`FLOWS_PER_SOURCE`],
    /// or the idlest of its flows not in a conversation gives way, so datagrams forged with
    /// a victim's address cannot shut the victim out. Not for a source that may be a relay
    /// pointed back at this one (this host, TO's host, a Unix sender): there its loop makes
    /// flows just as new, and only a refusal ends the chain.
    fn room_for(&mut self, from: &PeerAddr, source: Option<Share>) -> bool {
        let held = self.peers.values().filter(|p| p.source == source).count();
        if held < FLOWS_PER_SOURCE {
            return true;
        }
        // A sender at any of this host's addresses (its own IPv6 ones too, which count as a
        // source elsewhere) may be another relay here pointed back at this one: refused at
        // the cap, never let in by making room, so such a loop ends.
        let on_this_host = from
            .0
            .as_socket()
            .is_some_and(|a| guard::is_this_host(a.ip()));
        let may_loop = match source {
            Some(Share::Address(ip)) => on_this_host || self.to_ips.contains(&ip),
            _ => true,
        };
        (!may_loop && self.evict_unanswered(|p| p.source == source))
            || refused_for_source(&from.to_string(), source)
    }

    /// Makes room for a new datagram sender: forgets the idlest one of those `which` picks not
    /// yet in a conversation (TO never answered it, or it sent one datagram only, as each
    /// forged source does) and idle for [`EVICTABLE_AFTER`], so a flood of one-datagram
    /// senders cannot lock real ones out, nor one sender changing its port each datagram make
    /// a new flow of every one; false when there is none such.
    fn evict_unanswered(&mut self, which: impl Fn(&Peer) -> bool) -> bool {
        let idlest = self
            .peers
            .iter()
            .filter(|(_, p)| {
                which(p)
                    && p.flow.idle_for() >= EVICTABLE_AFTER
                    && (p.flow.down.messages_in.load(Ordering::Relaxed) == 0
                        || p.flow.up.messages_in.load(Ordering::Relaxed) <= 1)
            })
            .max_by_key(|(_, p)| p.flow.idle_for())
            .map(|(addr, _)| addr.clone());
        let Some(addr) = idlest else {
            return false;
        };
        // Forged sources make one at will: at most ten lines a second, as the peer table.
        static FORGOTTEN: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = FORGOTTEN.allow_debug() {
            tracing::debug!("{addr}: forgotten to make room: it was not in a conversation{more}");
        }
        self.forget(&addr);
        true
    }

    /// Whether a new flow for `from` may open a connection to TO now: always for a proven
    /// sender (this host, a Unix name, --trust), else within [`NEW_CONNS_PER_SEC`] (the
    /// token taken once the flow opens). A dropped one is counted for the stop line and
    /// logged (at most ten lines a second).
    fn handshake_allowed(&mut self, from: &PeerAddr) -> bool {
        let held = self.held_to_rate(from);
        let Some(bucket) = &mut self.handshakes else {
            return true;
        };
        let Some(ip) = address_of(from).filter(|_| held) else {
            return true;
        };
        if bucket.holds(ip, Instant::now()) {
            return true;
        }
        self.flows.over_rate.fetch_add(1, Ordering::Relaxed);
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = LOG.allow() {
            warn!(
                "{from}: not relayed, {NEW_CONNS_PER_SEC} new senders off this host a second \
                 already (or its source's share of them, shared among the sources asking), \
                 each a connection to TO: forged sources cost TO a handshake each; a sender on \
                 this host or in --trust is never held to it{more}"
            );
        }
        false
    }

    /// Whether a new flow for `from` is held to [`NEW_CONNS_PER_SEC`]: an unproven sender's,
    /// when TO takes a connection.
    fn held_to_rate(&self, from: &PeerAddr) -> bool {
        self.handshakes.is_some() && address_of(from).is_some_and(|ip| !self.route.proven(ip))
    }

    /// Closes a sender's flow and keeps it among the ending ones until its threads end.
    /// Never waits on the flow's writer (its queue may be full under --delay): the loop
    /// calling it serves every other sender.
    fn forget(&mut self, addr: &PeerAddr) {
        if let Some(peer) = self.peers.remove(addr) {
            peer.flow.close();
            peer.up.abandon();
            self.ending.push(peer.flow);
        }
    }

    /// Whether fewer than `max_peers` forgotten flows still run (their writers wake to end
    /// within a tick of the close): else a new sender waits, and the relay says so.
    fn ending_within_bound(&mut self) -> bool {
        self.ending.retain(|flow| !flow.finished());
        if self.ending.len() < self.max_peers {
            return true;
        }
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = LOG.allow() {
            warn!(
                "{} closed flows still ending; new datagram senders ignored until they \
                 have{more}",
                self.max_peers
            );
        }
        false
    }
}

/// The bucket of new connections to TO for unproven senders ([`NEW_CONNS_PER_SEC`]), when
/// opening a flow to TO is a handshake.
fn handshakes_to(route: &Route) -> Option<newcomers::Newcomers> {
    let connects = route.to.proto.kind() != crate::endpoint::SocketKind::Datagram
        || route.to_opts.tls.is_some();
    connects.then(newcomers::Newcomers::new)
}

/// The checks on the relay's listening side: never the relay's own address or a loop port,
/// the default rate for sources off this host, no sender repeating itself without end.
fn listening_guard(sock: &DatagramSocket) -> Guard {
    Guard::new(
        GuardRules {
            allow_loop_ports: false,
            rate: None,
            default_rate: Some(guard::DEFAULT_ECHO_RATE),
            repeats: true,
            replies_upper: false,
        },
        sock.local_sockaddr().ok(),
    )
}

/// A datagram sender's IP address; none for a Unix sender.
fn address_of(peer: &PeerAddr) -> Option<IpAddr> {
    peer.0.as_socket().map(|a| a.ip())
}

/// Says (at most ten lines a second: a loop or a flood causes it at will) that a client
/// was refused for its source's flows; false.
fn refused_for_source(client: &str, source: Option<Share>) -> bool {
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = LOG.allow() {
        let whose = source.map_or("Unix senders whose user is unknown".into(), |s| {
            s.to_string()
        });
        warn!(
            "{client}: refused, {FLOWS_PER_SOURCE} flows from {whose} already: a client \
             holding that many at once, or a relay whose TO leads back to this one{more}"
        );
    }
    false
}

/// Connection flows running, in all and per source ([`FLOWS_PER_SOURCE`]).
#[derive(Default)]
struct Running(Mutex<(usize, HashMap<Option<Share>, usize>)>);

impl Running {
    /// Counts a new flow from `source`, or says why it is refused (--max-conns, or
    /// [`FLOWS_PER_SOURCE`]).
    fn start(&self, conn: &Conn, source: Option<Share>, max_conns: usize) -> bool {
        let mut running = self.0.lock().unwrap();
        let (all, per_source) = &mut *running;
        if *all >= max_conns {
            warn!(
                "{}: refused, {} already (--max-conns)",
                conn.peer(),
                crate::units::count(max_conns, "connection")
            );
            return false;
        }
        let held = per_source.entry(source).or_default();
        if *held >= FLOWS_PER_SOURCE {
            return refused_for_source(conn.peer(), source);
        }
        *held += 1;
        *all += 1;
        true
    }

    fn end(&self, source: Option<Share>) {
        let mut running = self.0.lock().unwrap();
        let (all, per_source) = &mut *running;
        *all -= 1;
        if let Some(n) = per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                per_source.remove(&source);
            }
        }
    }
}

/// The next datagram on FROM worth relaying: its sender, length and what recvmsg told of
/// it (a Unix sender's credentials); `None` when none waits.
fn next_datagram(
    sock: &DatagramSocket,
    buf: &mut [u8],
    guard: &mut Guard,
) -> Option<(PeerAddr, usize, Told)> {
    loop {
        let (received, from, told) = match sock.recv_request(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) => {
                warn!("recvfrom: {e}");
                return None;
            }
        };
        let Received::Data(n) = received else {
            warn!(
                "{from}: a datagram larger than {} bytes; not relayed",
                buf.len()
            );
            continue;
        };
        if !from.can_reply() {
            warn!("{from}: a datagram from an unbound socket cannot be answered; not relayed");
            continue;
        }
        match guard.check(&from, told.cred.map(|(uid, _)| uid), &buf[..n]) {
            Ok(()) => return Some((from, n, told)),
            Err(verdict) => tracing::debug!("{from}: not relayed: {}", verdict.explain()),
        }
    }
}

/// A flow for a new sender `from` (its socket file `held` when at a path: the flow's
/// replies go through it).
fn datagram_flow(
    replies: &Arc<DatagramSocket>,
    (from, held): (&PeerAddr, Option<transport::unix::ReplyPath>),
    source: Option<Share>,
    route: &Route,
    flows: &Flows,
) -> Result<Peer> {
    let id = flows.next_id();
    let flow = Flow::new(id, route.from.proto.into(), &from.to_string(), &route.to);
    let server = Arc::new(
        redial::same_owner(&route.to, route.to_owner)
            .and_then(|()| transport::connect_first(&route.to, &route.to_opts))
            .with_context(|| format!("flow {id} from {from}"))?,
    );
    flow.hold(&server);
    flows.add(&flow);
    let to_server = Sink::Conn(Arc::clone(&server), route.carrier(&route.to));
    let up = route.link(&flow, (id, false), to_server, QUEUE, None)?;
    let to_sender = Sink::Peer(Box::new(PeerSink {
        sock: Arc::clone(replies),
        to: from.clone(),
        held,
        proven: address_of(from).is_none_or(|ip| route.proven(ip)),
    }));
    let down = route.link(&flow, (id, true), to_sender, QUEUE, Some(&server))?;
    let sender_udp = match route.from.proto {
        SockProto::Udp => from.0.as_socket(),
        _ => None,
    };
    let (reply_flow, decoder) = (Arc::clone(&flow), route.receiver(&route.to, sender_udp));
    std::thread::Builder::new()
        .name("relay-reader".into())
        .spawn(move || flow::read_into(&server, decoder, &down, &reply_flow))?;
    flow.touch();
    Ok(Peer { flow, up, source })
}
