//! `netecho serve`: bind, say where, serve clients with a server model until SIGINT or
//! SIGTERM, then close the sockets and print a summary.

pub(crate) mod admission;
pub(crate) mod config;
pub(crate) mod datagrams;
pub(crate) mod event;
pub(crate) mod fork;
pub(crate) mod iterative;
pub(crate) mod lab;
mod model_choice;
pub(crate) mod sched;
pub(crate) mod threads;
pub(crate) mod uring;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::access::Access;
use crate::choice::Choice;
use crate::endpoint::{Address, Endpoint, Proto, SocketKind};
use crate::error::UsageError;
use crate::files::service::Files;
use crate::files::store::Store;
use crate::lifecycle;
use crate::service::datagram::{DatagramEcho, DatagramRules};
use crate::service::echo::Echo;
use crate::service::exec::{Exec, ExecService};
use crate::service::guard::{self, GuardRules};
use crate::service::stats::Stats;
use crate::service::{ConnEnd, Datagrams, Drive, Service, Session, Step};
use crate::signal::{Shutdown, Signal};
use crate::transport::framing::Framing;
use crate::transport::message::Carrier;
use crate::transport::raw::RawSocket;
use crate::transport::{self, Bound, Conn, DatagramSocket, Listener, MAX_MESSAGE};

pub(crate) use admission::Admission;
pub(crate) use config::{ServeConfig, ServeExec, ServeFiles, ServiceConfig};
pub(crate) use sched::Sched;

/// How a server handles many clients. Every model serves every protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Model {
    /// One client at a time, as a first socket lesson writes it
    Iterative,
    /// A thread per connection
    Threads,
    /// Non-blocking sockets on epoll, a fixed number of threads
    #[default]
    Event,
    /// A process per connection, as inetd and `socat ... fork` do
    Fork,
    /// io_uring: a ring per core, completions instead of readiness
    Uring,
}

impl Model {
    /// One sentence on what the model does and why it matters, for connections.
    pub(crate) fn explain(self, threads: usize) -> String {
        match self {
            Model::Iterative => "model iterative: one client at a time, the accept loop around \
                the echo loop; a second client waits in the listen backlog until the first leaves"
                .into(),
            Model::Threads => "model threads: a thread per connection, each blocked in its own \
                recv; simple and fast, but every client, even an idle one, costs a thread"
                .into(),
            Model::Event => format!(
                "model event: {threads} thread(s), each waiting on many non-blocking sockets \
                 with epoll; an idle client costs its socket and a few bytes, not a thread"
            ),
            Model::Fork => "model fork: a process per connection, as inetd does; clients are \
                isolated from each other, at the price of a fork for every connection"
                .into(),
            Model::Uring => format!(
                "model uring: {threads} io_uring ring(s), a thread each; every ring accepts \
                 (multishot) on the one listener and hands each connection to the ring holding \
                 the fewest; receives complete into provided buffers and replies go out as \
                 sends, one io_uring_enter per wake-up"
            ),
        }
    }

    /// The same for a datagram socket, which has no connections.
    pub(crate) fn explain_datagram(self) -> &'static str {
        match self {
            Model::Event => {
                "datagrams: one thread reads and answers up to 32 datagrams per \
                system call (recvmmsg/sendmmsg)"
            }
            Model::Uring => {
                "datagrams: one io_uring ring, a multishot recvmsg into provided buffers, each \
                reply sent from the buffer it came in; one io_uring_enter per wake-up"
            }
            Model::Fork => {
                "datagrams: a child process serves the socket, one recvfrom and one \
                sendto per datagram; the parent starts another if it dies (inetd's wait mode)"
            }
            _ => {
                "datagrams: one thread, one recvfrom and one sendto per datagram, in the order \
                they arrive"
            }
        }
    }
}

/// How a server runs a service's sessions: the model, and whether sockets block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub model: Model,
    /// Each session on a blocking socket, served to its end by one pump.
    pub blocking: bool,
}

/// The one rule for a service that blocks (on a disk, a program). An event loop's thread
/// serves many clients, and one of them waiting on a disk would hold all the others: threads
/// instead. A forked child would hold programs (out of --max-children's count) and temporary
/// files that the server's stop could not reach: threads instead. Iterative keeps one client
/// at a time, on a blocking socket in a thread of its own, while the accept loop watches for
/// a stop signal.
pub(crate) fn plan(asked: Model, blocks: bool) -> Plan {
    let model = match asked {
        Model::Event | Model::Fork | Model::Uring if blocks => Model::Threads,
        model => model,
    };
    let blocking = match model {
        Model::Threads | Model::Fork => true,
        Model::Event | Model::Uring => false,
        Model::Iterative => blocks,
    };
    Plan { model, blocking }
}

/// What every model is given: the service, who gets in, and whether the server is stopping.
pub(crate) struct Server<S> {
    pub service: S,
    pub admission: Admission,
    pub stats: &'static Stats,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Set once a stop signal arrived: a connection that ends now ends because of it.
    pub stopping: AtomicBool,
    /// What a datagram request (files, exec) must pass before it is started.
    pub request_guard: GuardRules,
    /// Whether the user picked the connection model (serve --model), so that advice may
    /// name another one; the lab's ports have theirs fixed.
    pub model_asked: bool,
}

impl<S: Service> Server<S> {
    /// A session for a new connection, if it is admitted; a refused one is closed.
    pub(crate) fn admit(&self, conn: Conn, drive: Drive) -> Option<S::Session> {
        let verdict = self.admission.conn(&conn);
        self.opened(conn, verdict, drive)
    }

    /// [`Server::admit`] for a connection whose peer was told already, as `identity`.
    pub(crate) fn admit_as(
        &self,
        conn: Conn,
        identity: &crate::access::Identity,
        drive: Drive,
    ) -> Option<S::Session> {
        let verdict = self.admission.conn_as(&conn, identity);
        self.opened(conn, verdict, drive)
    }

    /// A session for `conn` if `verdict` admits it; else it is told why and closed.
    fn opened(&self, conn: Conn, verdict: Result<(), String>, drive: Drive) -> Option<S::Session> {
        let admitted = verdict.and_then(|()| {
            // Admitted, so counted: a service without room gives the slot back.
            self.service
                .room(&conn)
                .inspect_err(|_| self.admission.release())
        });
        match admitted {
            Ok(()) => Some(self.service.open(conn, drive)),
            Err(why) => {
                admission::refuse(conn, self.service.refusal(&why).as_deref());
                None
            }
        }
    }

    /// Logs a finished session's line and frees its slot. A loop unwinding from a panic
    /// parks its sessions and ends them here after ([`event::Loops::end`]); one finished
    /// during a panic all the same is only dropped: a second panic would abort the server.
    pub(crate) fn finish(&self, session: S::Session, ended: &ConnEnd) {
        // The slot comes back however the end goes, a panic in it too.
        let _slot = self.admission.releasing();
        if !std::thread::panicking() {
            session.conn().goodbye();
            session.end(ended);
        }
    }

    /// Serves an admitted session on a blocking socket to its end.
    pub(crate) fn run_blocking(&self, mut session: S::Session) {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let ended = loop {
            match session.pump(&mut buf) {
                Step::Done(end) => break end,
                Step::Yield { .. } => {}
                // A blocking socket only "would block" when its timeout ran out.
                Step::Wait { .. } => break ConnEnd::Idle,
            }
        };
        let ended = match self.stopping.load(Ordering::Relaxed) {
            true => ConnEnd::Stopped,
            false => ended,
        };
        self.finish(session, &ended);
    }
}

/// After `listening`, for a certificate made at start: how clients trust it.
pub(crate) fn tell_pin(tls: Option<&crate::transport::tls::TlsEnd>) {
    if let Some((fingerprint, true)) = tls.and_then(|t| t.fingerprint()) {
        // Backquoted and without colons: the wrapper keeps `--pin` and the fingerprint a
        // student copies together on one line of an 80-column terminal.
        info!(
            "TLS with a self-signed certificate made at start; clients trust it with \
             `--pin {}`",
            fingerprint.hex()
        );
    }
}

/// Serves as `config` says until SIGINT, SIGTERM or SIGHUP, then prints the summary line.
pub(crate) fn run(mut config: ServeConfig) -> Result<()> {
    // Before any thread starts, so every thread inherits the blocked signals.
    let shutdown = Shutdown::install()?;
    lifecycle::raise_nofile(config.max_conns);
    let stats = Stats::shared();
    let access = Arc::new(std::mem::take(&mut config.access));
    // The one place that picks the service.
    match &config.service {
        ServiceConfig::Echo => {
            let echo = echo_service(&config, stats, Arc::clone(&access));
            serve(&config, echo, access, Vec::new(), stats, &shutdown)
        }
        ServiceConfig::Files(files) => {
            let files = files_service(files, config.idle_timeout, stats)?;
            serve(&config, files, access, Vec::new(), stats, &shutdown)
        }
        ServiceConfig::Exec(exec) => {
            let mut warnings = Vec::new();
            let exec = exec_service(exec, &mut config.endpoint, stats, &mut warnings)?;
            warnings.extend(unreachable_users(&config.endpoint.addr, &access));
            let access = exec_access(access, config.endpoint.proto)?;
            serve(&config, exec, access, warnings, stats, &shutdown)
        }
    }
}

/// A warning about the address served, said once it is bound (port 0 has become a port).
type Warning = Box<dyn Fn(&Address) -> String>;

/// Binds, announces, serves with the model the plan picks, and prints the summary.
fn serve<S: Service>(
    config: &ServeConfig,
    service: S,
    access: Arc<Access>,
    warnings: Vec<Warning>,
    stats: &'static Stats,
    shutdown: &Shutdown,
) -> Result<()> {
    let proto = config.endpoint.proto;
    if plan(config.model, service.blocks()).model == Model::Uring {
        uring::available()?;
    }
    let mut bound = bind(
        config,
        plan(config.model, service.blocks()).model,
        |socket| {
            // A source's QUIC connections count as its tcp ones of a blocking service do.
            let limit = match service.blocks() {
                true => admission::per_source(&service),
                false => admission::QUIC_PER_SOURCE,
            };
            socket.quic.places = Some(admission::quic_places(Arc::clone(&access), limit));
        },
    )?;
    if let Bound::Datagram(sock) = &mut bound {
        ask_credentials(sock)?;
    }
    let local = announce(config, &bound, &warnings)?;
    let plan = plan(config.model, service.blocks());
    if config.model == Model::Fork && plan.model != Model::Fork {
        info!(
            "--files and --exec run under --model threads: a forked child would keep \
             its programs and temporary files out of the server's reach at stop"
        );
    }
    warn_ignored(config);
    let max_conns = served_at_once(config.max_conns, service.blocks());
    if plan.model == Model::Fork {
        info!("model fork: a process per client, at most {max_conns} at once (--max-conns)");
    }
    let server = Arc::new(Server {
        service,
        admission: Admission::new(proto, access, max_conns, stats),
        stats,
        idle_timeout: config.idle_timeout,
        stopping: AtomicBool::new(false),
        request_guard: GuardRules {
            allow_loop_ports: config.allow_loop_ports,
            rate: config.rate_limit,
            default_rate: Some(guard::DEFAULT_REQUEST_RATE),
            repeats: false,
            replies_upper: false,
        },
        model_asked: true,
    });
    let signal = match &bound {
        Bound::Listener(listener) => serve_conns(listener, &server, plan, config, shutdown)?,
        Bound::Datagram(sock) => serve_datagram_socket(sock, &server, plan, shutdown)?,
        Bound::Raw(sock) => serve_raw(sock, &local, config, stats, shutdown)?,
    };
    info!("{signal}: closing {local}");
    // Closes the socket and removes the socket file this server created.
    drop(bound);
    // Uploads cut short by the stop leave no temporary file in DIR.
    crate::files::store::remove_partials();
    crate::logging::say_left_out();
    crate::lifecycle::announce(&format!("stopped by {signal}: {stats}"))
}

/// The `listening` line for what `bound` holds, then what the user should know of it: its
/// TLS pin, the `warnings`, and that only this machine reaches a loopback address.
fn announce(config: &ServeConfig, bound: &Bound, warnings: &[Warning]) -> Result<Endpoint> {
    let proto = config.endpoint.proto;
    let local = Endpoint {
        proto,
        addr: bound.local().clone(),
    };
    crate::lifecycle::announce_listening(&local.to_string(), config.socket.tls.as_ref())?;
    tell_pin(config.socket.tls.as_ref());
    for warning in warnings {
        warn!("{}", warning(&local.addr));
    }
    if let Address::Ip(addr) = &local.addr
        && proto != Proto::Raw
        && !local.addr.off_loopback()
    {
        // The default: other machines get "connection refused" and no word why.
        info!(
            "only this machine can reach it; --addr :{p} (or [::]:{p}) serves all",
            p = addr.port()
        );
    }
    Ok(local)
}

/// --max-conns when not given: a process per client under fork is far heavier than a
/// socket under event, and 16384 processes would take a laptop down.
pub(crate) fn default_max_conns(model: Model) -> usize {
    match model {
        Model::Fork => 256,
        _ => 16384,
    }
}

/// Clients of a service that blocks (files, exec) served at once unless --max-conns is
/// lower: each holds a thread, so --max-conns's default would allow thousands.
pub(crate) const BLOCKING_MAX_CONNS: usize = 256;

/// How many clients are served at once: --max-conns, bounded for services that block.
fn served_at_once(max_conns: usize, blocks: bool) -> usize {
    if blocks && max_conns > BLOCKING_MAX_CONNS {
        info!(
            "--files and --exec serve at most {BLOCKING_MAX_CONNS} clients at once (a thread \
             each); more are turned away as past --max-conns"
        );
        return BLOCKING_MAX_CONNS;
    }
    max_conns
}

/// Flags that do not apply to the socket asked for: said once, then ignored.
fn warn_ignored(config: &ServeConfig) {
    let proto = config.endpoint.proto;
    if config.framing != Framing::None
        && proto != Proto::Quic
        && Carrier::of(proto.kind(), Framing::None).keeps_boundaries()
    {
        warn!(
            "--framing applies to streams; {proto} keeps message boundaries itself, so it is ignored"
        );
    }
    if proto == Proto::Raw && config.allow_loop_ports {
        warn!("--allow-loop-ports applies to udp and unix-dgram (raw has no ports); ignored");
    }
}

fn serve_conns<S: Service>(
    listener: &Listener,
    server: &Arc<Server<S>>,
    plan: Plan,
    config: &ServeConfig,
    shutdown: &Shutdown,
) -> Result<Signal> {
    info!("{}", plan.model.explain(config.threads));
    match plan.model {
        Model::Iterative => iterative::serve(listener, server, shutdown, plan.blocking),
        Model::Threads => threads::serve(listener, server, shutdown),
        Model::Event => event::serve(listener, server, shutdown, config.threads, config.sched),
        Model::Fork => fork::serve(listener, server, shutdown),
        Model::Uring => uring::serve(
            listener,
            server,
            shutdown,
            config.threads,
            config.sched,
            config.max_pending,
        ),
    }
}

fn serve_datagram_socket<S: Service>(
    sock: &DatagramSocket,
    server: &Arc<Server<S>>,
    plan: Plan,
    shutdown: &Shutdown,
) -> Result<Signal> {
    let rules = match server.service.datagrams() {
        Datagrams::Answered(rules) => rules,
        Datagrams::Requests(requests) => {
            info!(
                "model {}: datagrams: each request on a thread of its own, at most \
                 --max-conns at once",
                plan.model.name()
            );
            return datagrams::requests(sock, server, requests, shutdown);
        }
    };
    info!(
        "model {}: {}",
        plan.model.name(),
        plan.model.explain_datagram()
    );
    match plan.model {
        Model::Fork => fork::serve_datagrams(sock, rules, server.stats, shutdown),
        Model::Uring if !sock.replies_from_destination() => {
            let echo = DatagramEcho::new(sock.proto(), rules, guard::own_address(sock));
            uring::answer(sock, echo, server.stats, shutdown)
        }
        model => {
            if model == Model::Uring {
                info!(
                    "model uring: a socket on a wildcard address or a group answers each \
                     datagram from its destination (IP_PKTINFO), which the event model's \
                     batches carry: its datagrams are served as under --model event"
                );
            }
            let echo = DatagramEcho::new(sock.proto(), rules, guard::own_address(sock));
            let batched = matches!(model, Model::Event | Model::Uring);
            datagrams::answer(sock, echo, server.stats, shutdown, batched)
        }
    }
}

fn serve_raw(
    sock: &RawSocket,
    local: &Endpoint,
    config: &ServeConfig,
    stats: &'static Stats,
    shutdown: &Shutdown,
) -> Result<Signal> {
    info!(
        "raw: one thread reads every IP packet of protocol {} sent to {}, one \
         recvmsg and one sendto each (--model does not apply)",
        sock.protocol(),
        local
    );
    let rules = crate::service::raw::RawRules {
        transform: config.transform,
        rate: config.rate_limit,
        default_rate: Some(crate::service::guard::DEFAULT_ECHO_RATE),
    };
    crate::service::raw::serve(sock, rules, stats, shutdown)
}

fn echo_service(config: &ServeConfig, stats: &'static Stats, access: Arc<Access>) -> Echo {
    Echo {
        proto: config.endpoint.proto,
        transform: config.transform,
        stats,
        idle_timeout: config.idle_timeout,
        frame_timeout: config.frame_timeout,
        max_pending: config.max_pending,
        framing: config.framing,
        max_frame: config.max_frame,
        datagram: DatagramRules {
            transform: config.transform,
            allow_loop_ports: config.allow_loop_ports,
            rate_limit: config.rate_limit,
            default_rate: Some(crate::service::guard::DEFAULT_ECHO_RATE),
            access,
        },
        quiet_clients: false,
    }
}

fn files_service(
    config: &ServeFiles,
    idle_timeout: Option<Duration>,
    stats: &'static Stats,
) -> Result<Files> {
    let mut store = Store::open(&config.dir, config.upload, config.max_file)?;
    store.follow_hardlinks = config.follow_hardlinks;
    info!(
        "serving the files under {}{}",
        config.dir.display(),
        if store.upload {
            ", uploads on"
        } else {
            ", read-only"
        }
    );
    Ok(Files {
        store,
        impair: (config.drop, config.reorder),
        stats,
        idle_timeout,
        tftp_rfc1350: config.tftp_rfc1350,
    })
}

/// Binds the server's socket; for --exec, a socket file only its owner may open (umask
/// 0177 while it is made, so no other user connects before a chmod).
fn bind(
    config: &ServeConfig,
    model: Model,
    quic: impl FnOnce(&mut transport::SocketOptions),
) -> Result<Bound> {
    let mut socket = config.socket.clone();
    if config.endpoint.proto == Proto::Quic {
        quic(&mut socket);
    }
    // Under fork a QUIC endpoint runs in a process of its own: the parent forks children
    // and must run no other thread.
    socket.quic.own_process = model == Model::Fork;
    let private = matches!(config.service, ServiceConfig::Exec(_))
        && matches!(config.endpoint.addr, Address::UnixPath(_));
    if !private {
        return transport::bind(&config.endpoint, &socket);
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = transport::bind(&config.endpoint, &socket);
    nix::sys::stat::umask(old);
    bound
}

/// A Unix datagram socket asks the kernel for each sender's uid (SO_PASSCRED): for rules
/// that name users, and so a reply goes to a path only when the socket file there is its
/// sender's (see [`crate::transport::unix::vouched`]).
fn ask_credentials(sock: &mut DatagramSocket) -> Result<()> {
    if sock.proto() == Proto::UnixDgram {
        sock.pass_credentials()
            .context("SO_PASSCRED, to tell who sends each datagram")?;
    }
    Ok(())
}

/// The users an `--allow` names cannot open `--exec`'s socket file, made 0600 ([`bind`]):
/// said at start, or the rule seems to admit them.
fn unreachable_users(addr: &Address, access: &Access) -> Option<Warning> {
    if !matches!(addr, Address::UnixPath(_)) || !access.names_users() {
        return None;
    }
    Some(Box::new(|addr| {
        format!(
            "--exec on {addr}: its socket file is made 0600, so the users --allow names cannot \
             open it until you let them (chmod 0666 {addr}, or chgrp it to a group of theirs \
             and chmod 0660); --allow and --deny still decide who runs the program"
        )
    }))
}

/// Who may run the program, with no --allow or --deny: on a Unix socket the server's own
/// user only (SO_PEERCRED, or each datagram's SCM_CREDENTIALS on unix-dgram), over tcp, udp
/// and quic the same for clients on this host (sock_diag).
fn exec_access(access: Arc<Access>, proto: Proto) -> Result<Arc<Access>> {
    let uid = nix::unistd::geteuid();
    // An --allow naming users has the server's own among them already; any other rule
    // (a --deny, an --allow of addresses) stands beside the default, never instead of it.
    let default = !access.names_users();
    let access = match default {
        true => Arc::new(access.with_owner(proto, uid.as_raw())?),
        false => access,
    };
    // Decided from the rules in force, the default among them: sock_diag is asked after the
    // datagrams came, and a UDP socket closed by then is gone.
    if matches!(proto, Proto::Udp | Proto::Quic) && access.asks_uid() {
        warn!(
            "--exec over {proto}: a sender's user is looked up after its datagrams came, so a \
             local user who sends from a port a socket of uid {uid} holds and closes its own \
             socket at once can pass as uid {uid}; where local users are not trusted, serve \
             --exec over tcp or a Unix socket"
        );
    }
    if !default {
        return Ok(access);
    }
    if proto.is_unix() {
        let (verb, told) = match proto.kind() {
            SocketKind::Datagram => ("send", "SCM_CREDENTIALS"),
            _ => ("connect", "SO_PEERCRED"),
        };
        info!(
            "--exec: only uid {uid} (this server's user) may {verb}, told by the kernel \
             ({told}); --allow uid:N adds others"
        );
    } else {
        info!(
            "--exec: from this host only uid {uid} (this server's user) may connect, told by \
             the kernel (sock_diag); --allow uid:N admits others"
        );
    }
    Ok(access)
}

/// `--exec` listens on loopback or a Unix socket only, unless --allow-remote-exec says
/// otherwise. A host name is resolved once: the server binds the address that was checked.
fn exec_service(
    config: &ServeExec,
    endpoint: &mut Endpoint,
    stats: &'static Stats,
    warnings: &mut Vec<Warning>,
) -> Result<ExecService> {
    let program = &config.program;
    crate::service::exec::find_program(program)?;
    let local_only = match &endpoint.addr {
        Address::UnixPath(_) | Address::UnixAbstract(_) => true,
        addr => {
            let resolved = transport::ip::resolve(addr)?;
            if let Some(first) = resolved.first() {
                endpoint.addr = Address::Ip(*first);
            }
            resolved.iter().all(|a| a.ip().is_loopback())
        }
    };
    if !local_only {
        if !config.allow_remote {
            return Err(UsageError::new(format!(
                "--exec on {}: anyone who can reach that address could run {}; bind to \
                 127.0.0.1, ::1 or a Unix socket, or add --allow-remote-exec if you mean it",
                endpoint.addr,
                program.to_string_lossy()
            ))
            .into());
        }
        let program = program.to_string_lossy().into_owned();
        warnings.push(Box::new(move |addr| {
            format!("--allow-remote-exec: anyone who can reach {addr} can run {program}")
        }));
    }
    let exec = Exec {
        program: program.clone(),
        args: config.args.clone(),
        timeout: config.timeout,
        max_output: config.max_output,
        max_children: config.max_children,
        env: config.env.clone(),
        running: AtomicUsize::new(0),
        reaper: crate::service::reaper::Reaper::start(),
    };
    Ok(ExecService {
        exec: Arc::new(exec),
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_that_blocks_never_runs_in_an_event_loop_or_a_forked_child() {
        for model in [
            Model::Iterative,
            Model::Threads,
            Model::Event,
            Model::Fork,
            Model::Uring,
        ] {
            let planned = plan(model, true);
            assert!(planned.blocking, "{model:?}");
            assert!(
                !matches!(planned.model, Model::Event | Model::Fork | Model::Uring),
                "{model:?}"
            );
            // One client at a time stays one client at a time.
            assert_eq!(
                planned.model == Model::Iterative,
                model == Model::Iterative,
                "{model:?}"
            );
        }
    }

    #[test]
    fn a_service_that_does_not_block_runs_under_the_model_asked_for() {
        for (model, blocking) in [
            (Model::Iterative, false),
            (Model::Threads, true),
            (Model::Event, false),
            (Model::Fork, true),
            (Model::Uring, false),
        ] {
            assert_eq!(plan(model, false), Plan { model, blocking });
        }
    }
}
