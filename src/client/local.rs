//! Echo servers that `lab` and `bench` start for themselves: real `netecho serve` processes
//! on loopback and in a temporary directory, stopped and cleaned up when dropped, on error,
//! and on Ctrl-C.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tracing::debug;

use crate::endpoint::{Address, Endpoint, Proto, SockProto, Target};
use crate::signal::Shutdown;
use crate::transport::SocketOptions;
use crate::transport::tls::TlsEnd;
use crate::transport::tls::cert::{Fingerprint, TlsConfig};

/// How long a local server may take to print its `listening` line.
const START: Duration = Duration::from_secs(10);

/// A temporary directory for socket files, and the servers running in it.
pub(crate) struct LocalServers {
    dir: PathBuf,
    children: Arc<Mutex<Vec<Child>>>,
    /// Network namespaces to delete once the servers in them are gone (`lab --netns`).
    namespaces: Arc<Mutex<Vec<String>>>,
    /// The servers' warnings about one client left out of the output (see `lab::relay`),
    /// not yet said.
    about_clients: Arc<AtomicUsize>,
}

/// Set as soon as a stop signal arrives, before the clean-up: an error that the clean-up
/// itself causes (a server stopped under a running measurement) is then not reported.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether a stop signal is being handled: the process ends by it in a moment.
pub(crate) fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

impl LocalServers {
    /// Creates the directory and arranges for SIGINT, SIGTERM and SIGHUP to clean up before exiting.
    pub(crate) fn new() -> Result<LocalServers> {
        let servers = LocalServers::unwatched()?;
        servers.clean_up_on_signal()?;
        Ok(servers)
    }

    /// Creates the directory, and leaves the stop signals to the caller, who calls
    /// [`LocalServers::stopper`] if the process must end before they are dropped.
    pub(crate) fn unwatched() -> Result<LocalServers> {
        remove_stale_dirs();
        // mkdtemp(3): a random name no other user can make first (it tries again while one
        // is taken), mode 0700 whatever the umask says; no pid in it, which would cost
        // sockets' paths bytes of the 107 they may have.
        let template = std::env::temp_dir().join("netecho-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).map_err(|e| {
            anyhow!(
                "create a temporary directory in {}: {e}; set TMPDIR to a directory this user \
                 may write",
                std::env::temp_dir().display()
            )
        })?;
        // The mark a later run looks for before it clears this directory (remove_stale_dirs).
        std::fs::write(dir.join(MARK), marked(std::process::id()))
            .with_context(|| format!("write {}", dir.join(MARK).display()))?;
        Ok(LocalServers {
            dir,
            children: Arc::default(),
            namespaces: Arc::default(),
            about_clients: Arc::default(),
        })
    }

    /// What stops every server and removes the directory, for a process about to end
    /// without dropping these (a second Ctrl-C).
    pub(crate) fn stopper(&self) -> impl Fn() + Send + 'static {
        let (dir, children) = (self.dir.clone(), Arc::clone(&self.children));
        let namespaces = Arc::clone(&self.namespaces);
        move || {
            STOPPING.store(true, Ordering::SeqCst);
            stop_all(&children, &dir, &namespaces);
        }
    }

    fn clean_up_on_signal(&self) -> Result<()> {
        let shutdown = Shutdown::install()?;
        let (dir, stop) = (self.dir.clone(), self.stopper());
        std::thread::Builder::new()
            .name("cleanup".into())
            .spawn(move || {
                if let Ok(Some(signal)) = shutdown.wait_signal(None) {
                    stop();
                    let mut err = std::io::stderr();
                    let line = format!("netecho: stopped by {signal}; removed {}", dir.display());
                    let _ = writeln!(err, "{line}");
                    crate::signal::die_of(signal);
                }
            })
            .context("start the cleanup thread")?;
        Ok(())
    }

    /// Stops every server and removes what they made (dropping does the same): the
    /// number of their warnings about one client that were left out and not yet counted.
    pub(crate) fn stop(&self) -> usize {
        stop_all(&self.children, &self.dir, &self.namespaces);
        self.about_clients.swap(0, Ordering::Relaxed)
    }

    /// The namespaces deleted with the servers.
    pub(crate) fn namespaces(&self) -> &Arc<Mutex<Vec<String>>> {
        &self.namespaces
    }

    /// A socket path in the temporary directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts `netecho serve` for `proto` at `addr` (port 0 or a path here) with `extra`
    /// flags, and returns where it listens.
    pub(crate) fn start(&self, proto: SockProto, addr: &str, extra: &[&str]) -> Result<Target> {
        self.start_in(&[], proto, addr, extra)
    }

    /// As [`LocalServers::start`], through `wrapper` (e.g. `ip netns exec NAME`).
    pub(crate) fn start_in(
        &self,
        wrapper: &[String],
        proto: SockProto,
        addr: &str,
        extra: &[&str],
    ) -> Result<Target> {
        let bound = self.launch(wrapper, proto.proto(), addr, extra)?;
        Ok(Target {
            proto,
            addr: bound.addr,
        })
    }

    /// A raw echo server at `addr`, and where it listens.
    pub(crate) fn start_raw(&self, addr: &str) -> Result<Endpoint> {
        self.launch(&[], Proto::Raw, addr, &[])
    }

    fn launch(
        &self,
        wrapper: &[String],
        proto: Proto,
        addr: &str,
        extra: &[&str],
    ) -> Result<Endpoint> {
        let exe = std::env::current_exe().context("find the netecho binary")?;
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        // Spawned under the lock the clean-up takes, and not at all once a stop signal came:
        // a server started at the moment of Ctrl-C is either stopped with the others or
        // never started, never left running.
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if stopping() {
            return Err(anyhow!("stopping: no more local servers"));
        }
        cmd.args(["-q", "serve", "--proto", proto.name(), "--addr", addr])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_for_life(cmd).context("start a local netecho server")?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        children.push(child);
        drop(children);
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("local-server".into())
            .spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            })
            .context("cannot start a thread to read the local server's first line")?;
        // Its warnings within the lab's 80 columns, those about one client counted instead;
        // the thread ends with the server.
        let about_clients = Arc::clone(&self.about_clients);
        std::thread::Builder::new()
            .name("local-server-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !crate::client::lab::relay(&line) {
                        about_clients.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .context("cannot start a thread to read the local server's log")?;
        let line = rx
            .recv_timeout(START)
            .map_err(|_| anyhow!("the local {proto} server did not start within {START:?}"))?;
        // A server that ended saying nothing on stdout said why on stderr, relayed above.
        if line.is_empty() {
            return Err(anyhow!("the local {proto} server did not start"));
        }
        let bound = line
            .trim_end()
            .strip_prefix(&format!("listening {proto} "))
            .with_context(|| format!("the local {proto} server said {line:?}"))?;
        debug!("local {proto} server on {bound}");
        // A server with a certificate (QUIC, TLS) says its fingerprint after the address.
        let (bound, pin) = match bound.split_once(" tls sha256 ") {
            Some((bound, pin)) => (bound, Some(pin)),
            None => (bound, None),
        };
        let endpoint = Endpoint::parse(bound, Some(proto))?;
        if let Some(pin) = pin {
            let pin = Fingerprint::parse(pin).map_err(|e| anyhow!("the local server: {e}"))?;
            pin_at(&endpoint.addr, pin, true);
        }
        Ok(endpoint)
    }

    /// Where a server of `proto` should listen: loopback port 0 of the family, or a path.
    pub(crate) fn address_for(&self, proto: Proto, ipv6: bool) -> String {
        match proto {
            Proto::Tcp | Proto::Udp | Proto::Quic if ipv6 => "[::1]:0".into(),
            Proto::Tcp | Proto::Udp | Proto::Quic => "127.0.0.1:0".into(),
            // Raw IP has no ports; the IP protocol tells raw servers apart.
            Proto::Raw if ipv6 => "::1".into(),
            Proto::Raw => "127.0.0.1".into(),
            _ => self
                .path(&format!("{}.sock", proto.name()))
                .display()
                .to_string(),
        }
    }
}

/// The file that marks a run's temporary directory as netecho's, and what it holds.
const MARK: &str = ".netecho-run";

/// What the mark holds: this, the run's pid, and a newline.
const MARKED: &str = "netecho lab or bench, pid ";

fn marked(pid: impl std::fmt::Display) -> String {
    format!("{MARKED}{pid}\n")
}

/// Clears what a killed lab or bench left in the temporary directory: `netecho-*`, this
/// user's, marked by the run that made it ([`MARK`]), its process gone. SIGKILL gives a
/// process no moment to clean up; its servers died with it (see [`spawn_for_life`]). Only
/// socket files and the mark are removed, then the directory if it is empty: anything else
/// in it, whoever put it there, stays.
fn remove_stale_dirs() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !ours || !entry.file_name().as_bytes().starts_with(b"netecho-") {
            continue;
        }
        // The name is random: the mark says whose run it was.
        let dir = entry.path();
        let mark = std::fs::read_to_string(dir.join(MARK)).unwrap_or_default();
        let pid = mark.strip_prefix(MARKED).and_then(|m| m.strip_suffix('\n'));
        if !pid.is_some_and(pid_gone) {
            continue;
        }
        debug!("clearing {}, left by a killed run", dir.display());
        for inner in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if inner.file_type().is_ok_and(|t| t.is_socket()) {
                let _ = std::fs::remove_file(inner.path());
            }
        }
        let _ = std::fs::remove_file(dir.join(MARK));
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Whether `pid` (digits only) names no process in this PID namespace.
pub(crate) fn pid_gone(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !Path::new("/proc").join(pid).exists()
}

/// A request to start a program, and where its child goes.
type Spawn = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Starts `cmd` as a child that dies with this netecho, however it ends (SIGKILL too): a
/// killed lab never leaves its servers running. PR_SET_PDEATHSIG fires when the thread that
/// forked the child ends, not the process, so every child is forked by one thread that
/// lives as long as the process.
fn spawn_for_life(mut cmd: Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    static SPAWNER: Mutex<Option<mpsc::Sender<Spawn>>> = Mutex::new(None);
    let parent = std::process::id() as libc::pid_t;
    // Safety: prctl, getppid and _exit are async-signal-safe, and nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have ended before the line above: then nobody is left to
            // serve, and nobody to send the signal.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut spawner = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    if spawner.is_none() {
        let (tx, rx) = mpsc::channel::<Spawn>();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                // The sender is kept in SPAWNER for good: this loop ends with the process.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        *spawner = Some(tx);
    }
    let (reply, child) = mpsc::channel();
    let sent = spawner
        .as_ref()
        .is_some_and(|tx| tx.send((cmd, reply)).is_ok());
    drop(spawner);
    let gone = || std::io::Error::other("the thread that starts servers is gone");
    if !sent {
        return Err(gone());
    }
    child.recv().unwrap_or_else(|_| Err(gone()))
}

/// A certificate clients pin: where, which, and whether a server of this process's own
/// making offered it (a local server) or a lab server did.
struct Pin {
    addr: Address,
    fingerprint: Fingerprint,
    ours: bool,
}

/// The certificate fingerprints local servers printed, or a lab server offered, by
/// address: clients pin them.
static PINS: Mutex<Vec<Pin>> = Mutex::new(Vec::new());

/// Fresh QUIC handshakes a client of a local server tries: the server is known to be up,
/// so a handshake lost on the way (`lab --netns --loss`) is the path's, and tried again.
const OUR_HANDSHAKE_TRIES: u32 = 3;

/// From now on a client of `addr` trusts the certificate with fingerprint `pin`, and only
/// it.
pub(crate) fn trust_at(addr: &Address, pin: Fingerprint) {
    pin_at(addr, pin, false);
}

fn pin_at(addr: &Address, fingerprint: Fingerprint, ours: bool) {
    let mut pins = PINS.lock().unwrap_or_else(|e| e.into_inner());
    pins.retain(|p| p.addr != *addr);
    pins.push(Pin {
        addr: addr.clone(),
        fingerprint,
        ours,
    });
}

/// The pin for `target`'s address, and whether its server is one of this process's own.
fn pin_for(target: &Target) -> Option<(Fingerprint, bool)> {
    PINS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|p| p.addr == target.addr)
        .map(|p| (p.fingerprint, p.ours))
}

/// What a client of a local server trusts: the certificate it printed (a server of this
/// process's own making, on loopback); `None` for a server that has no certificate.
pub(crate) fn trust(target: &Target) -> Option<TlsEnd> {
    let (pin, _) = pin_for(target)?;
    let pinned = TlsConfig {
        pin: Some(pin),
        ..TlsConfig::default()
    };
    TlsEnd::client(&pinned).ok()
}

/// The socket options for a client of `target`, trusting it when it is a local server with
/// a certificate (and trying a QUIC handshake lost on the way again, when it is one of
/// this process's own).
pub(crate) fn options_for(target: &Target, base: &SocketOptions) -> SocketOptions {
    let mut opts = base.clone();
    if let Some(tls) = trust(target) {
        opts.tls = Some(tls);
    }
    if pin_for(target).is_some_and(|(_, ours)| ours) {
        opts.quic.handshake_tries = OUR_HANDSHAKE_TRIES;
    }
    opts
}

impl Drop for LocalServers {
    fn drop(&mut self) {
        let left_out = self.stop();
        if let Some(text) = crate::client::lab::about_clients(left_out, false) {
            crate::client::lab::say(tracing::Level::WARN, &text);
        }
    }
}

/// Stops every server (SIGTERM, so each removes its socket file), removes the directory and
/// deletes the namespaces the servers ran in.
fn stop_all(children: &Mutex<Vec<Child>>, dir: &Path, namespaces: &Mutex<Vec<String>>) {
    let mut children = children.lock().unwrap_or_else(|e| e.into_inner());
    for child in children.iter() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for mut child in children.drain(..) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(dir);
    super::lab::netns::remove(namespaces);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::SockProto;

    fn quic_at(port: u16) -> Target {
        Target {
            proto: SockProto::Quic,
            addr: Address::Ip(([127, 0, 0, 1], port).into()),
        }
    }

    /// A handshake to a server of this process's own is tried again (its loss is the
    /// path's); to a lab server, which may have stalled, once.
    #[test]
    fn only_a_local_servers_clients_try_a_lost_handshake_again() {
        let (ours, theirs) = (quic_at(1), quic_at(2));
        pin_at(&ours.addr, Fingerprint([1; 32]), true);
        trust_at(&theirs.addr, Fingerprint([2; 32]));
        let base = SocketOptions::default();
        assert_eq!(
            options_for(&ours, &base).quic.handshake_tries,
            OUR_HANDSHAKE_TRIES
        );
        assert_eq!(options_for(&theirs, &base).quic.handshake_tries, 0);
        assert!(options_for(&theirs, &base).tls.is_some());
    }
}
