//! `netecho serve`: bind, say where, serve clients with a server model until SIGINT or
//! SIGTERM, then close the sockets and print a summary.

pub mod event;
pub mod fork;
pub mod iterative;
pub mod limits;
mod model_choice;
pub mod threads;

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::cli::ServeArgs;
use crate::endpoint::Proto;
use crate::files::store::Store;
use crate::service::datagram::{DatagramEcho, DatagramRules};
use crate::service::echo::{ConnEnd, EchoConn, Step, Transform};
use crate::service::exec::Exec;
use crate::service::framing::Framing;
use crate::service::stats::{Stats, log_client};
use crate::transport::batch::Batch;
use crate::transport::{self, Bound, Conn, DatagramSocket, Listener, MAX_MESSAGE};

use crate::access::Access;
use crate::signal::{Shutdown, Wake};

/// How a server handles many clients. Every model serves every protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Model {
    /// One client at a time, as a first socket lesson writes it
    Iterative,
    /// A thread per connection
    Threads,
    /// Non-blocking sockets on epoll, a fixed number of threads
    #[default]
    Event,
    /// A process per connection, as inetd and `socat ... fork` do
    Fork,
}

impl Model {
    /// One sentence on what the model does and why it matters, for connections.
    pub fn explain(self, threads: usize) -> String {
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
        }
    }

    /// The same for a datagram socket, which has no connections.
    pub fn explain_datagram(self) -> &'static str {
        match self {
            Model::Event => {
                "datagrams: one thread reads and answers up to 32 datagrams per \
                system call (recvmmsg/sendmmsg)"
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

/// What the server does with a client.
pub enum Work {
    /// The echo service.
    Echo,
    /// `--files`: downloads (and uploads) from a directory, and the simulated loss
    /// (drop, reorder) for datagram transfers.
    Files(Store, (f64, f64)),
    /// `--exec`: a program per connection or datagram.
    Exec(Exec),
}

/// What every server model needs to serve a client.
pub struct Service {
    pub work: Work,
    pub proto: Proto,
    pub transform: Transform,
    pub stats: &'static Stats,
    /// Connections served at once; more are refused, never queued without bound.
    pub max_conns: usize,
    pub active: AtomicUsize,
    /// Set once a stop signal arrived: a connection that ends now ends because of it.
    pub stopping: AtomicBool,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Replies a client has not read, past which it is not read from.
    pub max_pending: usize,
    /// Message boundaries on streams, and the largest frame accepted.
    pub framing: Framing,
    pub max_frame: usize,
    pub datagram: DatagramRules,
    /// --allow and --deny.
    pub access: &'static Access,
}

impl Service {
    /// The model that serves this work: file and exec work blocks on disks and programs, so
    /// the event model gives it a thread per connection. Under fork, a child process would
    /// hold programs (out of --max-children's count) and temporary files that the server's
    /// stop could not reach: threads instead.
    fn model(&self, asked: Model) -> Model {
        match (&self.work, asked) {
            (Work::Echo, model) => model,
            (_, Model::Event) => Model::Threads,
            (_, Model::Fork) => {
                info!(
                    "--files and --exec run under --model threads: a forked child would keep \
                     its programs and temporary files out of the server's reach at stop"
                );
                Model::Threads
            }
            (_, model) => model,
        }
    }

    /// Takes a new connection if there is room: counts it, or logs and closes it.
    pub fn admit(&self, conn: Conn) -> Option<EchoConn> {
        if !self.access.admits_conn(self.proto, &conn) {
            return None;
        }
        if self.active.fetch_add(1, Ordering::Relaxed) >= self.max_conns {
            self.active.fetch_sub(1, Ordering::Relaxed);
            warn!(
                "{} {}: refused, {} connections already (--max-conns)",
                self.proto,
                conn.peer(),
                self.max_conns
            );
            return None;
        }
        self.stats.client();
        Some(EchoConn::new(
            conn,
            self.max_pending,
            self.framing,
            self.max_frame,
        ))
    }

    /// Logs a finished connection's line and frees its slot.
    pub fn finish(&self, echo: EchoConn, ended: &ConnEnd) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        log_client(self.proto, echo.conn.peer(), &echo.tally, ended);
    }

    /// Serves one connection on a blocking socket to its end (threads and fork models).
    /// The idle timeout becomes SO_RCVTIMEO and SO_SNDTIMEO: a recv or send that waits
    /// that long ends the connection.
    pub fn serve_blocking(&self, conn: Conn) {
        if let Some(echo) = self.admit(conn) {
            self.run_blocking(echo);
        }
    }

    /// The rest of [`Service::serve_blocking`], for a connection already admitted.
    pub fn run_blocking(&self, echo: EchoConn) {
        match &self.work {
            Work::Echo => self.echo_blocking(echo),
            Work::Files(store, _) => {
                // A transfer stalls at most this long between two reads.
                let idle = self.idle_timeout.unwrap_or(FILE_IDLE);
                let conn = &echo.conn;
                if let Err(e) = conn
                    .set_read_timeout(Some(idle))
                    .and_then(|_| conn.set_write_timeout(Some(idle)))
                {
                    warn!("{}: cannot set the idle timeout: {e}", conn.peer());
                }
                let (bytes_in, bytes_out) = crate::files::stream::serve(conn, store);
                let mut tally = echo.tally;
                self.stats
                    .message(&mut tally, bytes_in as usize, bytes_out as usize);
                self.active.fetch_sub(1, Ordering::Relaxed);
            }
            Work::Exec(exec) => {
                let mut echo = echo;
                let (bytes_in, bytes_out) = exec.serve_conn(&echo.conn);
                self.stats
                    .message(&mut echo.tally, bytes_in as usize, bytes_out as usize);
                self.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn echo_blocking(&self, mut echo: EchoConn) {
        let conn = &echo.conn;
        if let Some(idle) = self.idle_timeout
            && let Err(e) = conn
                .set_read_timeout(Some(idle))
                .and_then(|_| conn.set_write_timeout(Some(idle)))
        {
            warn!("{}: cannot set the idle timeout: {e}", echo.conn.peer());
        }
        let mut buf = vec![0u8; MAX_MESSAGE];
        let ended = loop {
            match echo.pump(&mut buf, self.transform, self.stats) {
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
        self.finish(echo, &ended);
    }

    /// Answers datagrams until a stop signal (every model but event, and event with
    /// `batched`); returns the signal's name.
    ///
    /// The socket blocks in recvfrom (or recvmmsg) with a short SO_RCVTIMEO instead of a
    /// poll before every read: two system calls per datagram, not three, which is most of a
    /// loopback round trip. The signalfd is looked at between reads, at least every
    /// [`SIGNAL_CHECK`], so a stop signal is noticed within that, even under load.
    pub fn serve_datagrams(
        &self,
        sock: &DatagramSocket,
        shutdown: &Shutdown,
        batched: bool,
    ) -> Result<String> {
        sock.set_nonblocking(false)?;
        sock.set_read_timeout(Some(SIGNAL_CHECK))?;
        let mut echo = DatagramEcho::new(self.proto, self.datagram);
        let mut buf = Vec::new();
        let mut batch = None;
        if batched {
            batch = Some(Box::<Batch>::default());
        } else {
            buf = crate::service::datagram::buffer();
        }
        let mut checked = Instant::now();
        loop {
            if checked.elapsed() >= SIGNAL_CHECK {
                if let Some(signal) = shutdown.wait_signal(Some(Duration::ZERO))? {
                    echo.finish();
                    return Ok(signal);
                }
                checked = Instant::now();
                echo.peers.expire();
                echo.report_drops(false);
            }
            let answered = match batch.as_deref_mut() {
                Some(batch) => echo.answer_batch(sock, batch, self.stats),
                None => echo.answer_each(sock, &mut buf, self.stats),
            };
            if let Err(e) = answered {
                warn!("recvfrom: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// How often a datagram server blocked in recvfrom looks for a stop signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

/// Datagram services other than echo: each datagram is a request, handled on a thread of
/// its own, so a long transfer or a slow program never holds up the next request.
fn serve_requests(
    service: &'static Service,
    sock: &DatagramSocket,
    shutdown: &Shutdown,
) -> Result<String> {
    sock.set_nonblocking(true)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    std::thread::scope(|scope| {
        loop {
            if let Wake::Stop(signal) = shutdown.wait(sock.as_fd(), Some(Duration::from_secs(1)))? {
                return Ok(signal.as_str().to_string());
            }
            loop {
                let (received, from) = match sock.recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        warn!("recvfrom: {e}");
                        break;
                    }
                };
                let n = match received {
                    transport::Received::Data(n) if from.can_reply() => n,
                    _ => {
                        warn!(
                            "{from}: a request that is too large, or from an unbound socket; ignored"
                        );
                        continue;
                    }
                };
                if !service.access.admits_datagram(service.proto, &from) {
                    continue;
                }
                if service.active.fetch_add(1, Ordering::Relaxed) >= service.max_conns {
                    service.active.fetch_sub(1, Ordering::Relaxed);
                    warn!(
                        "{from}: refused, {} requests running (--max-conns)",
                        service.max_conns
                    );
                    continue;
                }
                service.stats.client();
                let request = buf[..n].to_vec();
                match &service.work {
                    Work::Files(store, impair) => {
                        let (store, impair, proto, local) =
                            (store.clone(), *impair, service.proto, sock.local().clone());
                        // A transfer has its own socket and may take long: not waited for on exit.
                        std::thread::spawn(move || {
                            let result = transport::ephemeral_datagram(proto, &local, false)
                                .and_then(|tid| {
                                    crate::files::datagram::serve_request(
                                        &tid,
                                        from.clone(),
                                        &request,
                                        &store,
                                        impair,
                                    )
                                });
                            crate::files::datagram::log_request(&from, result);
                            service.active.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Work::Exec(exec) => {
                        scope.spawn(move || {
                            let peer = from.to_string();
                            let reply =
                                exec.run_once(&peer, &request, transport::udp::MAX_PAYLOAD_V4);
                            service.stats.message(
                                &mut Default::default(),
                                request.len(),
                                reply.len(),
                            );
                            if let Err(e) = sock.send_to(&reply, &from) {
                                warn!("{from}: reply not sent: {e}");
                            }
                            service.active.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Work::Echo => unreachable!("echo answers in serve_datagrams"),
                }
            }
        }
    })
}

/// Waits for connections and hands each to `on_conn` (and, every `tick`, `None`), until a
/// stop signal or until `on_conn` returns one; returns the signal's name.
pub fn accept_loop(
    listener: &Listener,
    shutdown: &Shutdown,
    tick: Option<Duration>,
    mut on_conn: impl FnMut(Option<Conn>) -> Option<String>,
) -> Result<String> {
    // Non-blocking, so a connection that vanishes between poll and accept cannot stall us.
    listener.set_nonblocking(true)?;
    loop {
        if let Some(signal) = stopped(shutdown.wait(listener.as_fd(), tick)?) {
            return Ok(signal);
        }
        if let Some(signal) = on_conn(None) {
            return Ok(signal);
        }
        loop {
            let conn = match listener.accept() {
                Ok(conn) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    accept_failed(&e);
                    break;
                }
            };
            if let Some(signal) = on_conn(Some(conn)) {
                return Ok(signal);
            }
        }
    }
}

/// An accept error concerns one connection, or a limit: log it and go on, pausing when the
/// process is out of file descriptors so the loop does not spin.
pub fn accept_failed(err: &io::Error) {
    warn!("accept: {err}");
    if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let endpoint = args.endpoint()?;
    // Before any thread starts, so every thread inherits the blocked signals.
    let shutdown = Shutdown::install()?;
    limits::raise_nofile(args.max_conns as usize);
    let work = work(args, &endpoint)?;
    let access: &'static Access = Box::leak(Box::new(args.access.access(endpoint.proto)?));
    let opts = args.socket_options(endpoint.proto)?;
    let bound = transport::bind(&endpoint, &opts)?;
    let local = crate::endpoint::Endpoint {
        proto: endpoint.proto,
        addr: bound.local().clone(),
    };
    announce(&format!("listening {local}"))?;
    let threads = args.threads();
    // The server runs until the process ends; its settings live as long.
    let service: &'static Service = Box::leak(Box::new(Service {
        work,
        proto: endpoint.proto,
        transform: args.transform,
        stats: Stats::shared(),
        max_conns: args.max_conns as usize,
        active: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        idle_timeout: args.idle_timeout,
        max_pending: args.max_pending,
        framing: args.framing.framing,
        max_frame: args.framing.max_frame as usize,
        datagram: DatagramRules {
            transform: args.transform,
            allow_loop_ports: args.allow_loop_ports,
            rate_limit: args.rate_limit,
            access,
        },
        access,
    }));
    let model = service.model(args.model);
    if args.framing.framing != Framing::None
        && endpoint.proto.kind() != crate::endpoint::SocketKind::Stream
    {
        warn!(
            "--framing applies to streams; {} keeps message boundaries itself, so it is ignored",
            endpoint.proto
        );
    }
    let signal = match &bound {
        Bound::Listener(listener) => {
            info!("{}", model.explain(threads));
            match model {
                Model::Iterative => iterative::serve(listener, service, &shutdown)?,
                Model::Threads => threads::serve(listener, service, &shutdown)?,
                Model::Event => event::serve(listener, service, &shutdown, threads)?,
                Model::Fork => fork::serve(listener, service, &shutdown)?,
            }
        }
        Bound::Datagram(sock) => {
            info!("model {}: {}", model_name(model), model.explain_datagram());
            match model {
                _ if !matches!(service.work, Work::Echo) => {
                    serve_requests(service, sock, &shutdown)?
                }
                Model::Fork => fork::serve_datagrams(sock, service, &shutdown)?,
                _ => service.serve_datagrams(sock, &shutdown, model == Model::Event)?,
            }
        }
        Bound::Raw(sock) => {
            if args.rate_limit.is_some() || args.allow_loop_ports {
                warn!(
                    "--rate-limit and --allow-loop-ports apply to udp and unix-dgram; ignored for raw"
                );
            }
            info!(
                "raw: one thread reads every IP packet of protocol {} sent to {}, one \
                 recvmsg and one sendto each (--model does not apply)",
                sock.protocol(),
                local
            );
            crate::service::raw::serve(sock, service.transform, service.stats, &shutdown)?
        }
    };
    info!("{signal}: closing {local}");
    // Closes the socket and removes the socket file this server created.
    drop(bound);
    // Uploads cut short by the stop leave no temporary file in DIR.
    crate::files::store::remove_partials();
    announce(&format!("stopped by {signal}: {}", service.stats))
}

/// How long a file transfer connection may stay silent, unless --idle-timeout says.
const FILE_IDLE: Duration = Duration::from_secs(30);

/// The service `serve`'s flags ask for. `--exec` listens on loopback or a Unix socket only,
/// unless --allow-remote-exec says otherwise.
fn work(args: &ServeArgs, endpoint: &crate::endpoint::Endpoint) -> Result<Work> {
    if endpoint.proto == Proto::Raw && (args.files.files.is_some() || args.exec.exec.is_some()) {
        return Err(crate::error::UsageError::new(
            "--files and --exec need ports and connections; raw serves the echo service only",
        )
        .into());
    }
    if let Some(dir) = &args.files.files {
        let store = Store::open(dir, args.files.upload, args.files.max_file)?;
        info!(
            "serving the files under {}{}",
            dir.display(),
            if store.upload {
                ", uploads on"
            } else {
                ", read-only"
            }
        );
        return Ok(Work::Files(
            store,
            (args.files.impair.drop, args.files.impair.reorder),
        ));
    }
    let Some(command) = &args.exec.exec else {
        return Ok(Work::Echo);
    };
    let (program, rest) = command.split_first().expect("clap requires a program");
    crate::service::exec::find_program(program)?;
    let local_only = match &endpoint.addr {
        crate::endpoint::Address::UnixPath(_) | crate::endpoint::Address::UnixAbstract(_) => true,
        addr => transport::ip::resolve(addr)?
            .iter()
            .all(|a| a.ip().is_loopback()),
    };
    if !local_only {
        if !args.exec.allow_remote_exec {
            return Err(crate::error::UsageError::new(format!(
                "--exec on {}: anyone who can reach that address could run {}; bind to \
                 127.0.0.1, ::1 or a Unix socket, or add --allow-remote-exec if you mean it",
                endpoint.addr,
                program.to_string_lossy()
            ))
            .into());
        }
        warn!(
            "--allow-remote-exec: anyone who can reach {} can run {}",
            endpoint.addr,
            program.to_string_lossy()
        );
    }
    Ok(Work::Exec(Exec {
        program: program.clone(),
        args: rest.to_vec(),
        timeout: args.exec.exec_timeout,
        max_output: args.exec.max_output,
        max_children: args.exec.max_children as usize,
        running: AtomicUsize::new(0),
    }))
}

fn model_name(model: Model) -> String {
    crate::choice::Choice::name(model).to_string()
}

/// A line on stdout, flushed at once: scripts and tests wait for it.
pub fn announce(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .context("write to stdout")
}

/// The signal that ended a model's loop, for the closing lines.
pub fn stopped(wake: Wake) -> Option<String> {
    match wake {
        Wake::Stop(signal) => Some(signal.as_str().to_string()),
        _ => None,
    }
}
