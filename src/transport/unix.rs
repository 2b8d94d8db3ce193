//! AF_UNIX sockets: SOCK_STREAM, SOCK_DGRAM and SOCK_SEQPACKET, at a path in the file
//! system or at a Linux abstract name (`@name`, no file at all).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use socket2::{Domain, SockAddr, Socket, Type};
use tracing::{debug, warn};

use crate::endpoint::{Address, Endpoint, Family, Proto};
use crate::error::{Call, Subject, UsageError, socket_error};

use super::{Conn, DatagramSocket, Listener, MAX_MESSAGE, PeerAddr, SocketOptions, calls};

/// sun_path holds 108 bytes; a path needs one of them for its terminating NUL.
pub(crate) const MAX_PATH: usize = 107;

fn socket_type(proto: Proto) -> Type {
    match proto {
        Proto::UnixDgram => Type::DGRAM,
        Proto::UnixSeqpacket => Type::SEQPACKET,
        _ => Type::STREAM,
    }
}

/// The sockaddr_un for a path or an abstract name, refusing names sun_path cannot hold.
fn sockaddr(addr: &Address) -> Result<SockAddr> {
    let bytes = match addr {
        Address::UnixPath(path) => path.as_os_str().as_bytes().to_vec(),
        // An abstract name is sun_path starting with a NUL byte.
        Address::UnixAbstract(name) => [&[0u8][..], name].concat(),
        _ => return Err(anyhow!("{addr} is not a Unix socket address")),
    };
    if bytes.len() > MAX_PATH {
        return Err(UsageError::new(format!(
            "Unix socket address '{addr}' is {} bytes long, but sun_path holds at most {MAX_PATH}; \
             use a shorter path (e.g. in /tmp) or an @abstract name",
            bytes.len()
        ))
        .into());
    }
    Ok(SockAddr::unix(OsStr::from_bytes(&bytes))?)
}

/// The sockaddr_un of a Unix address, for sendto(2).
pub(crate) fn sockaddr_of(addr: &Address) -> Result<SockAddr> {
    sockaddr(addr)
}

/// The socket file a server created, removed when the server is done with it, but only if
/// the file at that path is still the one it created.
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// The process that bound it: a forked child (even one that panics and unwinds) never
    /// removes its parent's socket file.
    owner: u32,
}

impl SocketFile {
    fn record(path: &Path) -> Result<SocketFile> {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("stat {} after bind", path.display()))?;
        Ok(SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            owner: std::process::id(),
        })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta)
                if meta.file_type().is_socket()
                    && meta.dev() == self.dev
                    && meta.ino() == self.ino =>
            {
                match std::fs::remove_file(&self.path) {
                    Ok(()) => debug!("removed socket file {}", self.path.display()),
                    Err(e) => warn!("could not remove {}: {e}", self.path.display()),
                }
            }
            _ => debug!(
                "{} is no longer the socket this server created; left alone",
                self.path.display()
            ),
        }
    }
}

/// Makes room for a server socket at `path`: nothing there is fine, a socket file nobody
/// listens on is removed, and anything else is refused and left untouched.
fn clear_stale(proto: Proto, path: &Path) -> Result<()> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(anyhow!(
                "cannot look for a stale socket at {shown}: permission denied (EACCES): you may \
                 not enter {}; choose a directory you own, such as /tmp",
                directory(path)
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {shown}")),
    };
    if !meta.file_type().is_socket() {
        return Err(anyhow!(
            "{shown} exists and is not a socket; netecho never removes or overwrites it: \
             choose another path"
        ));
    }
    // Ask the socket: if a connect succeeds, a server is alive behind it. Non-blocking, so a
    // server with a full backlog counts as alive instead of stalling us.
    let probe = calls::socket(Domain::UNIX, socket_type(proto))?;
    calls::set_nonblocking(&probe, true)?;
    match calls::connect(&probe, &sockaddr(&Address::UnixPath(path.into()))?) {
        Err(e) if e.raw_os_error() == Some(Errno::ECONNREFUSED as i32) => {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove stale socket file {shown}"))?;
            warn!("removed stale socket file {shown} (nobody was listening on it)");
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(Errno::EPROTOTYPE as i32) => Err(anyhow!(
            "a server of another socket type is using {shown}; stop it or choose another path"
        )),
        Err(e) if e.raw_os_error() == Some(Errno::EACCES as i32) => Err(anyhow!(
            "{shown} is a socket you may not use; choose another path"
        )),
        _ => Err(anyhow!(
            "a server is already listening on {shown}; stop it or choose another path"
        )),
    }
}

/// Binds a socket of `proto` at `addr`, clearing a stale socket file first.
fn bind_socket(
    proto: Proto,
    addr: &Address,
    opts: &SocketOptions,
) -> Result<(Socket, Option<SocketFile>)> {
    let sa = sockaddr(addr)?;
    if let Address::UnixPath(path) = addr {
        clear_stale(proto, path)?;
    }
    let sock = calls::socket(Domain::UNIX, socket_type(proto))
        .with_context(|| format!("socket for {proto} {addr}"))?;
    super::set_buffers(&sock, opts).with_context(|| format!("setsockopt on {proto} {addr}"))?;
    if let Err(e) = calls::bind(&sock, &sa) {
        return Err(bind_error(proto, addr, &e));
    }
    let file = match addr {
        Address::UnixPath(path) => Some(SocketFile::record(path)?),
        _ => None,
    };
    Ok((sock, file))
}

/// The directory a socket path is in, as shown in errors ("." for a bare name).
fn directory(path: &Path) -> String {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
        _ => ".".to_string(),
    }
}

fn bind_error(proto: Proto, addr: &Address, err: &io::Error) -> anyhow::Error {
    let dir = match addr {
        Address::UnixPath(path) => directory(path),
        _ => String::new(),
    };
    // /proc and /sys exist but take no new files: ENOENT or EPERM there is the file system's.
    let takes_none = || {
        anyhow!(
            "bind {proto} {addr}: {dir} takes no socket files (a kernel file system such as \
             /proc or /sys, or mounted read-only); choose a directory you own, such as /tmp"
        )
    };
    match err.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT) if Path::new(&dir).is_dir() => takes_none(),
        Some(Errno::EPERM | Errno::EROFS) => takes_none(),
        Some(Errno::ENOENT) => anyhow!(
            "bind {proto} {addr}: directory {dir} does not exist; create it or choose another path"
        ),
        Some(Errno::EACCES) => anyhow!(
            "bind {proto} {addr}: permission denied (EACCES): you may not create files in \
             {dir}; choose a directory you own, such as /tmp"
        ),
        _ => socket_error(
            Call::Bind,
            Subject::new(format!("{proto} {addr}"), Some(Family::Unix)),
            err,
        ),
    }
}

/// A listening Unix stream or seqpacket socket.
pub(crate) fn bind_listener(endpoint: &Endpoint, opts: &SocketOptions) -> Result<Listener> {
    let (sock, file) = bind_socket(endpoint.proto, &endpoint.addr, opts)?;
    calls::listen(&sock, opts.backlog).map_err(|e| socket_error(Call::Listen, endpoint, &e))?;
    Ok(Listener {
        sock,
        proto: endpoint.proto,
        local: endpoint.addr.clone(),
        nodelay: false,
        _file: file,
        _quic: None,
        tls: None,
    })
}

/// A bound Unix datagram socket.
pub(crate) fn bind_datagram(endpoint: &Endpoint, opts: &SocketOptions) -> Result<DatagramSocket> {
    let (sock, file) = bind_socket(endpoint.proto, &endpoint.addr, opts)?;
    Ok(DatagramSocket {
        sock,
        proto: endpoint.proto,
        local: endpoint.addr.clone(),
        _file: file,
        reply: super::pktinfo::ReplyFrom::Kernel,
    })
}

/// An unconnected Unix datagram socket at an autobound abstract name.
pub(crate) fn bind_autobound(proto: Proto) -> Result<DatagramSocket> {
    let sock = calls::socket(Domain::UNIX, socket_type(proto))?;
    calls::bind(&sock, &SockAddr::unix("")?)?;
    let local = sock.local_addr()?;
    let name = local.as_abstract_namespace().unwrap_or_default().to_vec();
    Ok(DatagramSocket {
        sock,
        proto,
        local: Address::UnixAbstract(name),
        _file: None,
        reply: super::pktinfo::ReplyFrom::Kernel,
    })
}

/// A client socket connected to `addr`.
pub(crate) fn connect(proto: Proto, addr: &Address, opts: &SocketOptions) -> io::Result<Conn> {
    // A name sun_path cannot hold is a usage error: kept as one inside the io::Error, so
    // socket_error passes it on as it is (exit 2) instead of as a failed connect.
    let sa = sockaddr(addr).map_err(|e| match e.downcast::<UsageError>() {
        Ok(usage) => io::Error::new(io::ErrorKind::InvalidInput, usage),
        Err(e) => io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    let sock = calls::socket(Domain::UNIX, socket_type(proto))?;
    super::set_buffers(&sock, opts)?;
    if proto == Proto::UnixDgram {
        // A datagram server can only answer a sender that has an address. Binding to an empty
        // name asks Linux to autobind a unique abstract name: no file to clean up afterwards.
        calls::bind(&sock, &SockAddr::unix("")?)?;
    }
    calls::connect(&sock, &sa)?;
    let max = (proto != Proto::Unix).then_some(MAX_MESSAGE);
    Ok(Conn::new(sock, proto.kind(), addr.to_string(), max))
}

/// "pid 4242 uid 1000 gid 1000" of an accepted Unix peer (SO_PEERCRED), with its address if
/// it has one.
pub(crate) fn describe_peer(sock: &Socket, addr: &SockAddr) -> String {
    let who = PeerAddr(addr.clone()).to_string();
    match getsockopt(sock, PeerCredentials) {
        Ok(cred) => format!(
            "{who} pid {} uid {} gid {}",
            cred.pid(),
            cred.uid(),
            cred.gid()
        ),
        Err(_) => who,
    }
}

/// The uid and gid of a connected Unix peer, as the kernel recorded them at connect (SO_PEERCRED).
pub(crate) fn peer_cred(sock: &Socket) -> io::Result<(u32, u32)> {
    let cred = getsockopt(sock, PeerCredentials).map_err(io::Error::from)?;
    Ok((cred.uid(), cred.gid()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_file_is_removed_only_by_the_process_that_bound_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut inherited = SocketFile::record(&path).unwrap();
        // As a forked child sees it: bound by another process.
        inherited.owner += 1;
        drop(inherited);
        assert!(path.exists(), "a child removed its parent's socket file");
        drop(SocketFile::record(&path).unwrap());
        assert!(!path.exists(), "the owner left its socket file");
    }
}
