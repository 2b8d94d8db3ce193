//! `serve --lab`: the far end of `lab HOST` for a class. One control port (the lab's control
//! protocol, [`crate::labwire`]) and an echo port per protocol that crosses machines, chosen
//! by the kernel and announced: tcp and udp, tls (TCP with TLS) and quic, each served by the
//! server's own echo service and model, and raw (IP protocol 254) when the process may open
//! raw sockets. Runs take turns as [`class`] says; only the addresses of runs holding their
//! turn reach the echo ports, so the udp port answers no one who has not proven their
//! address with a TCP handshake on the control port, the quic port drops their packets
//! unanswered (and asks every other client for a Retry first), and a reply is never larger
//! than its request. The server opens no other port, runs no program and touches no file.
//!
//! With `--tls` the control connection speaks TLS (the certificate of --cert and --key, or
//! one made at start, its fingerprint on the `listening` line for clients to pin); the tcp
//! and udp echo ports stay plain, as they are what the lab measures. The tls and quic ports
//! present that certificate, or one made at start without --tls, and each run's offer
//! carries its fingerprint.

pub(crate) mod class;
mod control;
mod turns;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::access::{Access, Gate, Rule};
use crate::endpoint::{Address, Endpoint, Proto};
use crate::labwire::{self, Service};
use crate::lifecycle;
use crate::service::datagram::{DatagramEcho, DatagramRules};
use crate::service::echo::{DEFAULT_MAX_PENDING, Echo, Transform};
use crate::service::guard::{self, GuardRules};
use crate::service::stats::Stats;
use crate::signal::Shutdown;
use crate::transport::framing::{DEFAULT_MAX_FRAME, Framing};
use crate::transport::quic::{QuicOptions, Sources};
use crate::transport::tls::TlsEnd;
use crate::transport::{self, Bound, DatagramSocket, Listener, SocketOptions};

use super::{Admission, Server};
use class::{Class, Limits};

/// The lab's raw echo: the other IP protocol RFC 3692 sets aside for experiments, so that
/// raw servers of the default protocol (253) on the same host are neither answered nor
/// answering for it.
pub(crate) const LAB_IP_PROTO: u8 = 254;
/// An echo connection silent this long is closed: a run's connections are busy or done.
const DATA_IDLE: Duration = Duration::from_secs(10);
/// Echo connections at once on each of the tcp, tls and quic ports, all runs together;
/// one address holds at most [`turns::RUN_CONNS`] of them for each turn it holds.
const DATA_CONNS: usize = 4096;
/// File descriptors those take at most: one a connection, two a quic one (the socket pair
/// it reaches the echo through).
const DATA_FDS: usize = 4 * DATA_CONNS;

/// What `serve --lab` is asked, as plain values.
pub(crate) struct LabServeConfig {
    /// The control port's address; the echo ports are on the same address.
    pub addr: Endpoint,
    pub limits: Limits,
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
    /// Datagram replies per second per client address (--rate-limit).
    pub rate_limit: Option<u32>,
    /// Event-loop threads of the tcp echo port.
    pub threads: usize,
    /// TLS on the control connection, when asked for.
    pub tls: Option<crate::transport::tls::TlsEnd>,
}

/// What the control connections share.
pub(crate) struct Lab {
    pub class: Arc<Class>,
    pub services: Vec<Service>,
    /// The datagram rate each address gets (--rate-limit), announced to every run; 0: none.
    pub rate: u32,
    /// Control connections open now (each a thread), bounded by [`Lab::max_control`].
    pub control: AtomicUsize,
    /// Runs measured to their end.
    pub runs: AtomicUsize,
    /// Runs that did not finish, by how ([`control::Unfinished`]).
    pub unfinished: [AtomicUsize; 3],
    pub refused: AtomicUsize,
    /// Control connections that have not said Hello yet.
    pub greeters: control::Greeters,
}

impl Lab {
    /// Control connections at once: every run measuring or waiting, and those that have
    /// not said Hello yet (bounded apart, so they never take a run's place).
    pub(crate) fn max_control(&self) -> usize {
        // Twice the silent ones: room for those shut to make room while they wind down.
        self.class.limits.runs + self.class.limits.queue + 2 * control::MAX_GREETING
    }
}

/// Serves the lab until SIGINT, SIGTERM or SIGHUP, then prints the summary.
pub(crate) fn run(config: LabServeConfig) -> Result<()> {
    let shutdown = Shutdown::install()?;
    lifecycle::raise_nofile(
        DATA_FDS + config.limits.runs + config.limits.queue + 3 * control::MAX_GREETING,
    );
    let stats = Stats::shared();
    let (control, control_addr) = bind_control(&config.addr, config.tls.clone())?;
    lifecycle::announce_listening(&format!("tcp {control_addr}"), config.tls.as_ref())?;
    super::tell_pin(config.tls.as_ref());
    let class = Arc::new(Class::new(config.limits));
    let gated = Arc::clone(&class);
    let gate: Gate = Arc::new(move |ip: IpAddr| gated.admits(ip));
    let ports = Ports {
        ip: control_addr.ip(),
        config: &config,
        class: &class,
        gate: &gate,
        stats,
    };
    let (services, not_offered) = ports.start()?;
    let lab = Lab {
        class: Arc::clone(&class),
        services,
        rate: config.rate_limit.unwrap_or(0),
        control: AtomicUsize::new(0),
        runs: AtomicUsize::new(0),
        unfinished: Default::default(),
        refused: AtomicUsize::new(0),
        greeters: control::greeters(),
    };
    say_what_is_served(control_addr, &lab, config.tls.is_some(), &not_offered)?;
    let lab = Arc::new(lab);
    let control_access = Arc::new(Access::new(Proto::Tcp, &config.allow, &config.deny)?);
    let signal = control::accept(&control, &lab, &control_access, &shutdown)?;
    info!("{signal}: closing the lab's ports");
    crate::logging::say_left_out();
    lifecycle::announce(&format!(
        "stopped by {signal}: {}; {} refused; echo ports: {stats}",
        runs_told(&lab),
        lab.refused.load(Ordering::Relaxed)
    ))
}

/// Every run the server took, as the stop line tells them: measured, how those that did
/// not finish ended, and those cut short by the stop; a teacher sees who got no report.
fn runs_told(lab: &Lab) -> String {
    let n = |i: usize| lab.unfinished[i].load(Ordering::Relaxed);
    let (measuring, waiting) = lab.class.counts();
    let measured = lab.runs.load(Ordering::Relaxed);
    let parts = [
        (
            n(control::Unfinished::Measuring as usize),
            "left while measuring",
        ),
        (n(control::Unfinished::Queue as usize), "left the queue"),
        (n(control::Unfinished::Turn as usize), "lost their turn"),
        (measuring, "measuring when stopped"),
        (waiting, "waiting when stopped"),
    ];
    let total = measured + parts.iter().map(|(n, _)| n).sum::<usize>();
    let mut told = format!("{}: {measured} measured", crate::units::count(total, "run"));
    for (n, what) in parts.iter().filter(|(n, _)| *n > 0) {
        told.push_str(&format!(", {n} {what}"));
    }
    told
}

/// The control port: a TCP listener, its connections in TLS when `tls` is given.
fn bind_control(
    addr: &Endpoint,
    tls: Option<crate::transport::tls::TlsEnd>,
) -> Result<(Listener, SocketAddr)> {
    let opts = SocketOptions {
        tls,
        ..SocketOptions::default()
    };
    let bound = transport::bind(addr, &opts)?;
    let Address::Ip(local) = bound.local().clone() else {
        anyhow::bail!("serve --lab listens on an IP address");
    };
    match bound {
        Bound::Listener(listener) => Ok((listener, local)),
        _ => anyhow::bail!("serve --lab: the control port is a TCP port"),
    }
}

/// One line per protocol: what it serves, where, to whom; the certificate of the secure
/// ones; why a protocol is not offered, when not.
fn say_what_is_served(
    control: SocketAddr,
    lab: &Lab,
    tls: bool,
    not_offered: &[NotOffered],
) -> Result<()> {
    let limits = lab.class.limits;
    let over = match tls {
        true => " in TLS (the tcp and udp echo ports stay plain: they are what the lab measures)",
        false => "",
    };
    lifecycle::announce(&format!(
        "lab control: tcp {control}, control protocol {}{over}; {} runs measure at once, \
         turns go round by client address, up to {} wait their turn in a queue and {} come \
         from one address, each at most {} s",
        labwire::VERSION,
        limits.runs,
        limits.queue,
        limits.per_address,
        limits.max_time.as_secs()
    ))?;
    for s in &lab.services {
        lifecycle::announce(&what_is_served(s, lab.rate))?;
    }
    for (proto, why) in not_offered {
        lifecycle::announce(&format!("lab {proto}: not offered: {why}"))?;
    }
    lifecycle::announce(
        "lab unix, unix-dgram, unix-seqpacket: not offered: they stay on one machine",
    )
}

/// The line of one offered service.
fn what_is_served(s: &Service, rate: u32) -> String {
    let turn = "to the addresses of runs holding their turn";
    let what = match s.proto.as_str() {
        "raw" => {
            return format!(
                "lab raw: IP protocol {}, the raw echo (a netecho header, upper), one reply per \
                 packet, never larger than the request, {turn}",
                s.port
            );
        }
        "udp" => format!(
            "the echo service (upper), one reply per datagram, never larger than the request, \
             {}",
            match rate {
                0 => "as fast as a run sends (--rate-limit sets a limit)".to_string(),
                rate => format!("at most {rate} per second per address (--rate-limit)"),
            }
        ),
        "quic" => "the echo service (upper), a stream per message, each new client asked to \
                   prove its address first (a Retry, smaller than its Initial)"
            .to_string(),
        "tls" => "the echo service (upper) in TLS, a connection per client".to_string(),
        _ => "the echo service (upper), a connection per client".to_string(),
    };
    let cert = match &s.sha256 {
        Some(fp) => format!(", certificate sha256 {fp} (each run's offer carries it)"),
        None => String::new(),
    };
    format!("lab {}: port {}, {what}, {turn}{cert}", s.proto, s.port)
}

/// A protocol the server does not offer, and why: said on its line at start.
type NotOffered = (&'static str, String);

/// What every echo port is started with: the address, the lab's settings, and the turns.
struct Ports<'a> {
    ip: IpAddr,
    config: &'a LabServeConfig,
    class: &'a Arc<Class>,
    /// Whether an address holds a turn now.
    gate: &'a Gate,
    stats: &'static Stats,
}

impl Ports<'_> {
    /// Every echo port: the services to offer, and those not offered with why.
    fn start(&self) -> Result<(Vec<Service>, Vec<NotOffered>)> {
        let tcp = self.conns("tcp", Proto::Tcp, SocketOptions::default())?;
        let udp = self.udp()?;
        let mut services = vec![Service::plain("tcp", tcp), Service::plain("udp", udp)];
        let mut not_offered = Vec::new();
        // The control port's certificate under --tls, else one made now as `serve --tls`
        // makes one: the tls and quic ports present the same.
        let cert = match &self.config.tls {
            Some(TlsEnd::Server(cert)) => cert.clone(),
            _ => crate::transport::tls::cert::made_for(self.ip)?,
        };
        // Hex without colons: 64 characters, so a note naming it (an older client's too)
        // wraps within 80 columns.
        let fingerprint = cert.fingerprint.hex();
        let secure = |proto: &str, port| Service {
            proto: proto.into(),
            port,
            sha256: Some(fingerprint.clone()),
        };
        let tls = SocketOptions {
            tls: Some(TlsEnd::Server(cert.clone())),
            ..SocketOptions::default()
        };
        services.push(secure("tls", self.conns("tls", Proto::Tcp, tls.clone())?));
        let quic = SocketOptions {
            quic: QuicOptions {
                // A message under way has as long as a connection may be idle.
                message_time: Some(DATA_IDLE),
                sources: Some(Sources(Arc::clone(self.gate))),
                ..QuicOptions::default()
            },
            ..tls
        };
        // QUIC is TLS 1.3 only: a certificate of --tls-version 1.2 cannot serve it.
        match self.conns("quic", Proto::Quic, quic) {
            Ok(port) => services.push(secure("quic", port)),
            Err(e) => not_offered.push(("quic", format!("{e:#}"))),
        }
        match start_raw(self.ip, self.gate, self.config.rate_limit, self.stats) {
            Ok(raw) => services.push(raw),
            Err(why) => not_offered.push(("raw", why)),
        }
        Ok((services, not_offered))
    }

    fn access(&self, proto: Proto) -> Result<Arc<Access>> {
        let access = Access::new(proto, &self.config.allow, &self.config.deny)?;
        Ok(Arc::new(access.gated(Arc::clone(self.gate))))
    }

    /// A port of connections (tcp, tls, quic) under the event model on threads of its own;
    /// a connection ends at its address's next bytes once the address no longer holds a
    /// turn. Its port number.
    fn conns(&self, name: &str, proto: Proto, opts: SocketOptions) -> Result<u16> {
        let endpoint = Endpoint {
            proto,
            addr: Address::Ip(SocketAddr::new(self.ip, 0)),
        };
        let bound = transport::bind(&endpoint, &opts)?;
        let port = port_of(bound.local())?;
        let Bound::Listener(listener) = bound else {
            anyhow::bail!("a {name} port is a listener");
        };
        let access = self.access(proto)?;
        let server = Arc::new(Server {
            service: turns::TurnBound {
                echo: echo(proto, self.config, self.stats, Arc::clone(&access)),
                class: Arc::clone(self.class),
                held: turns::Held::default(),
            },
            admission: Admission::new(proto, access, DATA_CONNS, self.stats),
            stats: self.stats,
            idle_timeout: Some(DATA_IDLE),
            stopping: AtomicBool::new(false),
            request_guard: request_guard(self.config),
            model_asked: false,
        });
        let threads = self.config.threads;
        spawn_port(&format!("lab-{name}"), move |never| {
            super::event::serve(&listener, &server, never, threads, super::Sched::Normal)
        })?;
        Ok(port)
    }

    /// The udp echo port: the datagram echo, batched, its guard and the class's gate.
    fn udp(&self) -> Result<u16> {
        let endpoint = Endpoint {
            proto: Proto::Udp,
            addr: Address::Ip(SocketAddr::new(self.ip, 0)),
        };
        let bound = transport::bind(&endpoint, &SocketOptions::default())?;
        let port = port_of(bound.local())?;
        let Bound::Datagram(sock) = bound else {
            anyhow::bail!("a udp port is a datagram socket");
        };
        let rules = echo(
            Proto::Udp,
            self.config,
            self.stats,
            self.access(Proto::Udp)?,
        )
        .datagram;
        let stats = self.stats;
        spawn_port("lab-udp", move |never| {
            answer_datagrams(&sock, rules, stats, never)
        })?;
        Ok(port)
    }
}

fn answer_datagrams(
    sock: &DatagramSocket,
    rules: DatagramRules,
    stats: &'static Stats,
    never: &Shutdown,
) -> Result<crate::signal::Signal> {
    let mut echo = DatagramEcho::new(Proto::Udp, rules, guard::own_address(sock));
    // A line per udp flow, a minute after it and naming no run, would bury the runs' own
    // lines (a run opens ten): at debug level, as the tcp echo's connections are.
    echo.peers.quiet = true;
    super::datagrams::answer(sock, echo, stats, never, true)
}

/// The raw echo on IP protocol [`LAB_IP_PROTO`], on `ip` (on 0.0.0.0 and :: both for
/// [::]), when this process may open raw sockets; why not, otherwise.
fn start_raw(
    ip: IpAddr,
    gate: &Gate,
    rate: Option<u32>,
    stats: &'static Stats,
) -> Result<Service, String> {
    // As the lab's udp: the gate admits only runs holding their turn, so no default limit.
    let rules = crate::service::raw::RawRules {
        transform: Transform::Upper,
        rate,
        default_rate: None,
    };
    let ips = match ip {
        IpAddr::V6(v6) if v6.is_unspecified() => vec![IpAddr::from([0u8; 4]), ip],
        ip => vec![ip],
    };
    let opts = SocketOptions {
        ip_proto: LAB_IP_PROTO,
        ..SocketOptions::default()
    };
    // Every socket bound before any is served: none is left open unannounced.
    let mut socks = Vec::new();
    for ip in ips {
        let endpoint = Endpoint {
            proto: Proto::Raw,
            addr: Address::Ip(SocketAddr::new(ip, 0)),
        };
        match transport::bind(&endpoint, &opts) {
            Ok(Bound::Raw(sock)) => socks.push(sock),
            Ok(_) => return Err("a raw endpoint bound as something else".into()),
            Err(e) => return Err(format!("{e:#}")),
        }
    }
    for sock in socks {
        let gate = Arc::clone(gate);
        spawn_port("lab-raw", move |never| {
            crate::service::raw::serve_gated(&sock, rules, stats, never, Some(&gate))
        })
        .map_err(|e| format!("{e:#}"))?;
    }
    Ok(Service::plain("raw", u16::from(LAB_IP_PROTO)))
}

/// Runs a port's loop on a thread of its own. Its loop never sees a stop signal: the
/// control port's loop does, and the process ends with it.
fn spawn_port(
    name: &str,
    serve: impl FnOnce(&Shutdown) -> Result<crate::signal::Signal> + Send + 'static,
) -> Result<()> {
    let never = Shutdown::never()?;
    let label = name.to_string();
    std::thread::Builder::new()
        .name(label.clone())
        .spawn(move || {
            if let Err(e) = serve(&never) {
                warn!("{label}: {e:#}; the port stopped serving");
            }
        })
        .with_context(|| format!("start the {name} thread"))?;
    Ok(())
}

fn port_of(addr: &Address) -> Result<u16> {
    match addr {
        Address::Ip(a) => Ok(a.port()),
        other => anyhow::bail!("{other} has no port"),
    }
}

/// The echo service every lab run expects: upper-cased, unframed.
fn echo(proto: Proto, config: &LabServeConfig, stats: &'static Stats, access: Arc<Access>) -> Echo {
    Echo {
        proto,
        transform: Transform::Upper,
        stats,
        idle_timeout: Some(DATA_IDLE),
        max_pending: DEFAULT_MAX_PENDING,
        framing: Framing::None,
        max_frame: DEFAULT_MAX_FRAME as usize,
        // Unframed: each read is echoed at once, nothing is ever left unfinished.
        frame_timeout: None,
        datagram: DatagramRules {
            transform: Transform::Upper,
            allow_loop_ports: false,
            rate_limit: config.rate_limit,
            // Every datagram the gate lets through is from a run holding its turn, whose
            // address the control connection proved: without --rate-limit its udp row
            // measures the network, not a limit (replies are never larger than requests,
            // and the turns bound how many runs send at once).
            default_rate: None,
            access,
        },
        quiet_clients: true,
    }
}

fn request_guard(config: &LabServeConfig) -> GuardRules {
    GuardRules {
        allow_loop_ports: false,
        rate: config.rate_limit,
        default_rate: Some(guard::DEFAULT_REQUEST_RATE),
        repeats: false,
        replies_upper: false,
    }
}
