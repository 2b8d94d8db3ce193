//! AF_UNIX sockets: SOCK_STREAM, SOCK_DGRAM and SOCK_SEQPACKET, at a path in the file
//! system or at a Linux abstract name (`@name`, no file at all).

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::sys::socket::sockopt::{PassCred, PeerCredentials};
use nix::sys::socket::{getsockopt, setsockopt};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::endpoint::{Address, Endpoint, Family, Proto};
use crate::error::{Advised, Call, NoAnswer, Subject, UsageError, socket_error};

mod abstract_owner;
mod socket_file;

use socket_file::Place;
pub(crate) use socket_file::SocketFile;

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

/// Binds a socket of `proto` at `addr`, clearing a stale socket file first.
fn bind_socket(
    proto: Proto,
    addr: &Address,
    opts: &SocketOptions,
) -> Result<(Socket, Option<SocketFile>)> {
    let sa = sockaddr(addr)?;
    let place = match addr {
        Address::UnixPath(path) => {
            let place = Place::open(path).map_err(|e| match e.raw_os_error() {
                Some(code) if code == Errno::EACCES as i32 => socket_file::may_not_enter(path),
                _ => bind_error(proto, addr, &e),
            })?;
            place.clear_stale(socket_type(proto))?;
            Some(place)
        }
        _ => None,
    };
    let sock = calls::socket(Domain::UNIX, socket_type(proto))
        .with_context(|| format!("socket for {proto} {addr}"))?;
    super::set_buffers(&sock, opts).with_context(|| format!("setsockopt on {proto} {addr}"))?;
    // bind(2) takes the path, not the directory held open: sun_path is also the name peers
    // see (from "/proc/self/fd/N/name" they would see that, meaningless in their process).
    // A directory swapped between the open and the bind can still send the socket file
    // elsewhere; `record` then notices and refuses to serve.
    if let Err(e) = calls::bind(&sock, &sa) {
        if place.as_ref().is_some_and(Place::moved) {
            return Err(anyhow!(
                "bind {proto} {addr}: a directory on the path changed while netecho bound it \
                 (renamed or replaced by another user?); choose a path in a directory only you \
                 can change"
            ));
        }
        return Err(bind_error(proto, addr, &e));
    }
    let file = place.map(Place::record).transpose()?;
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
        Some(Errno::ENOTDIR) => anyhow!(
            "bind {proto} {addr}: {dir} is not a directory (ENOTDIR): a file stands where the \
             path needs one; choose another path"
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
        passcred: false,
        held: None,
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
        passcred: false,
        held: None,
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
    let within = super::connect_within(&sock, &sa, opts.connect_timeout, |within| {
        NoAnswer::unix(&addr.to_string(), within)
    });
    if let Err(e) = within {
        return Err(match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ECONNREFUSED) => refused(proto, addr),
            Some(Errno::EPROTOTYPE) => match held_by_another_type(proto, addr) {
                Some(other) => Advised::io(
                    Errno::EPROTOTYPE,
                    format!(
                        "the socket there is a {other} socket, not {proto}: use --proto {other}"
                    ),
                ),
                None => e,
            },
            _ => e,
        });
    }
    let max = (proto != Proto::Unix).then_some(MAX_MESSAGE);
    Ok(Conn::new(sock, proto.kind(), addr.to_string(), max))
}

/// Why nothing took a connect to `addr`, as advice: what the path is when it is not a
/// socket; for an abstract name, which has no file, whether a server of another Unix type
/// holds it (each type has names of its own, so the kernel says ECONNREFUSED where a path
/// gets EPROTOTYPE).
fn refused(proto: Proto, addr: &Address) -> io::Error {
    let is_not = |what: &str| {
        format!(
            "{addr} is {what}, not a socket: is it the path serve printed on its listening line?"
        )
    };
    let advice = match addr {
        Address::UnixPath(path) => match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => is_not("a regular file"),
            Ok(meta) if meta.is_dir() => is_not("a directory"),
            Ok(meta) if !meta.file_type().is_socket() => is_not("a special file"),
            _ => {
                "nothing is listening on it (a socket file left behind by a stopped server?)".into()
            }
        },
        _ => match held_by_another_type(proto, addr) {
            Some(other) => format!(
                "no {proto} server holds the abstract name {addr}, but a {other} server does: \
                 use --proto {other}"
            ),
            None => format!(
                "no server holds the abstract name {addr}; is the server running, under this name?"
            ),
        },
    };
    Advised::io(Errno::ECONNREFUSED, advice)
}

/// The other Unix socket type a server at `addr` has, found without becoming its client
/// (a stream probe would be accepted, and an `--exec` server would run its program): a
/// datagram connect, which no server sees, else the type /proc/net/unix lists for the name.
fn held_by_another_type(proto: Proto, addr: &Address) -> Option<Proto> {
    let sa = sockaddr(addr).ok()?;
    if proto != Proto::UnixDgram
        && calls::socket(Domain::UNIX, Type::DGRAM)
            .is_ok_and(|probe| calls::connect(&probe, &sa).is_ok())
    {
        return Some(Proto::UnixDgram);
    }
    listed_type(addr).filter(|&other| other != proto)
}

/// The type /proc/net/unix (this network namespace's Unix sockets) lists for a socket
/// bound at `addr`: an abstract name by its name ("@name", a NUL shown as @), a path by
/// the file it names (a listed path is as its server bound it, relative ones skipped).
fn listed_type(addr: &Address) -> Option<Proto> {
    use std::os::unix::fs::MetadataExt;
    let table = std::fs::read_to_string("/proc/net/unix").ok()?;
    let file = |path: &str| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let is_it: Box<dyn Fn(&str) -> bool> = match addr {
        Address::UnixAbstract(name) => {
            let shown: String = name
                .iter()
                .map(|&b| if b == 0 { '@' } else { b as char })
                .collect();
            let shown = format!("@{shown}");
            Box::new(move |listed| listed == shown)
        }
        Address::UnixPath(path) => {
            let ours = file(path.to_str()?)?;
            Box::new(move |listed| listed.starts_with('/') && file(listed) == Some(ours))
        }
        _ => return None,
    };
    // Num RefCount Protocol Flags Type St Inode Path
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.splitn(8, ' ').collect();
        let (ty, listed) = (cols.get(4)?, cols.get(7)?);
        is_it(listed).then_some(())?;
        match *ty {
            "0001" => Some(Proto::Unix),
            "0002" => Some(Proto::UnixDgram),
            "0005" => Some(Proto::UnixSeqpacket),
            _ => None,
        }
    })
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

impl DatagramSocket {
    /// SO_PASSCRED: from now on each datagram is read (recvmsg) with the credentials the
    /// kernel attached to it (SCM_CREDENTIALS): its sender's pid, uid and gid, or ones the
    /// sender proved it may claim (its real, effective or saved ids; any, for root).
    pub(crate) fn pass_credentials(&mut self) -> io::Result<()> {
        calls::setsockopt(&self.sock, "SO_PASSCRED", true, |s, on| {
            setsockopt(s, PassCred, &on).map_err(io::Error::from)
        })?;
        self.passcred = true;
        Ok(())
    }
}

/// The uid and gid of a received datagram's SCM_CREDENTIALS; `None` when it has none, or
/// its control messages were cut short (MSG_CTRUNC). Descriptors a sender passed beside
/// them (SCM_RIGHTS: anyone who may write to the socket may) are closed, or each datagram
/// could leave the server a few more, up to its limit.
///
/// # Safety
/// `hdr` must be a msghdr recvmsg(2) has just filled: its msg_control points to at least
/// msg_controllen valid bytes.
pub(crate) unsafe fn credentials(hdr: &libc::msghdr) -> Option<libc::ucred> {
    if hdr.msg_control.is_null() {
        return None;
    }
    let mut cred = None;
    // Safety: the kernel wrote well-formed control messages within msg_controllen, and the
    // CMSG macros never step past it; payloads are read unaligned, and only when whole.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            let len = (*cmsg).cmsg_len as usize;
            let data = libc::CMSG_DATA(cmsg);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::SOL_SOCKET, libc::SCM_CREDENTIALS)
                    if len >= libc::CMSG_LEN(mem::size_of::<libc::ucred>() as u32) as usize =>
                {
                    cred = Some(std::ptr::read_unaligned(data.cast::<libc::ucred>()));
                }
                (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                    let bytes = len.saturating_sub(libc::CMSG_LEN(0) as usize);
                    for i in 0..bytes / mem::size_of::<libc::c_int>() {
                        let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                        libc::close(fd);
                    }
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    // Cut short, what came may lack the credentials or hold another's: none then.
    cred.filter(|_| hdr.msg_flags & libc::MSG_CTRUNC == 0)
}

/// A Unix datagram's sender as a server may answer it (`cred`: what SCM_CREDENTIALS said
/// of it), and, at a path, the socket file its reply goes through. A name is resolved by
/// the server, not by its sender: a path from the server's directory and in its mounts, an
/// abstract name in its network namespace. So a sender keeps its address only when that
/// name is its own here: at a path, the socket file this server finds belongs to the
/// sender's user (and is held open: see [`ReplyPath`]); at an abstract name, the socket
/// bound at it in the server's network namespace does (root's may name any). Else it is
/// made unnamed, which no reply goes to: a user could otherwise name another's socket
/// (`../../run/x.sock` from a deeper directory, a private mount over /run, an abstract name
/// bound in a network namespace of its own, or by a socket made there and passed to a
/// process here) and have the server write to it, with the server's credentials.
pub(crate) fn vouched(from: PeerAddr, cred: Option<libc::ucred>) -> (PeerAddr, Option<ReplyPath>) {
    let verdict = if let Some(path) = from.0.as_pathname() {
        senders_own(&from, path, cred).map(Some)
    } else if let Some(name) = from.0.as_abstract_namespace() {
        names_own(name, cred).map(|()| None)
    } else {
        return (from, None);
    };
    match verdict {
        Ok(held) => (from, held),
        Err(why) => {
            tracing::debug!("{from}: gets no reply: {why}");
            (PeerAddr::unnamed(), None)
        }
    }
}

/// The socket file at `path`, held for the reply, when it is the sender's own: one open
/// serves the owner check and the reply, so the file checked is the file answered. What
/// remains is that the sender may replace its own socket file, before it is opened, by
/// another socket of its own: the reply then reaches nothing its sender could not.
fn senders_own(
    from: &PeerAddr,
    path: &Path,
    cred: Option<libc::ucred>,
) -> Result<ReplyPath, String> {
    let Some(libc::ucred { uid, .. }) = cred else {
        return Err("its datagram came without its sender's credentials".to_string());
    };
    unmapped_here(uid, "its sender")?;
    let (held, owner) = held_socket(from, path).map_err(|e| e.to_string())?;
    if uid != 0 && owner != uid {
        return Err(format!(
            "the socket file at that path here belongs to uid {owner}, the datagram came from \
             uid {uid} (a relative path, or one in another mount namespace, names another \
             file here); a reply goes only to its sender's own socket file"
        ));
    }
    Ok(held)
}

/// The socket file at `to`'s `path` (no symlink followed) held open for datagrams to `to`,
/// and its owner. Refused, as advice: a path with a symlink anywhere on it, one that names
/// no socket, and a socket file with another name too (a hard link to someone else's
/// socket, as /dev/log may be linked by any user who may write to it).
fn held_socket(to: &PeerAddr, path: &Path) -> io::Result<(ReplyPath, u32)> {
    let refuse = |what: &str| {
        Advised::io(
            Errno::ELOOP,
            format!("{what}; a reply goes only to the socket file its sender bound"),
        )
    };
    let file = open_no_symlinks(path).map_err(|e| match e.raw_os_error() {
        Some(code) if code == Errno::ELOOP as i32 => refuse("a symlink is on its path"),
        _ => e,
    })?;
    let meta = nix::sys::stat::fstat(&file).map_err(io::Error::from)?;
    if meta.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(refuse("it is not a socket file"));
    }
    if meta.st_nlink != 1 {
        return Err(refuse("the socket file has another name too (a hard link)"));
    }
    let name = format!("/proc/self/fd/{}", file.as_raw_fd());
    let addr = SockAddr::unix(name)?;
    let held = ReplyPath {
        _file: file,
        addr,
        sender: to.clone(),
    };
    Ok((held, meta.st_uid))
}

/// Refuses `uid` when it is the overflow uid (/proc/sys/kernel/overflowuid) and this
/// server runs in a user namespace: there every user not mapped into it shows as that one
/// uid, on credentials and file owners alike, so one such user would pass as another, or
/// as the user mapped to that uid if one is (as a container maps its own nobody).
fn unmapped_here(uid: u32, who: &str) -> Result<(), String> {
    static OVERFLOW: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    if Some(uid) != *OVERFLOW.get_or_init(overflow_uid_unsure) {
        return Ok(());
    }
    Err(format!(
        "{who} is uid {uid}, which in this server's user namespace stands for every user \
         not mapped into it (/proc/self/uid_map), so it is not known to be the user whose \
         name that is; run the server where its clients' users are mapped"
    ))
}

/// The overflow uid when this process is in a user namespace that does not map every uid
/// (its uid_map is not the initial namespace's "0 0 4294967295"), where it may stand for
/// any unmapped user; `None` in the initial namespace, where it is one real user (nobody).
/// When either file cannot be read: the usual 65534, as in a user namespace.
fn overflow_uid_unsure() -> Option<u32> {
    let overflow = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(65534);
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let identity = lines == [vec!["0", "0", "4294967295"]];
    (!identity).then_some(overflow)
}

/// Whether the datagram socket bound at the abstract `name` in this server's network
/// namespace, where a reply to it goes, belongs to the datagram's user (root's may name
/// any), as [`abstract_owner::owner`] tells at a bounded cost. The
/// name is judged, not the sending process: a socket keeps the namespace it was made in,
/// whichever process sends from it, and a process may claim another pid of its own pid
/// namespace. Not the server's own user either: its reply carries the server's
/// credentials, which another user's datagram to that name would not. Unknown (no
/// sock_diag, or over the budget of lookups), no reply. What remains: the name unbound and
/// bound again by another user between the last look at it (at most 250 ms before, a few
/// milliseconds where looks are quick) and the reply.
/// Whom a datagram from the abstract `name` counts against: the owner of the socket
/// [`vouched`] last found there, if it looked (not for root's, nor for a name forgotten
/// since among many newer ones).
pub(crate) fn abstract_sender(name: &[u8]) -> Option<u32> {
    abstract_owner::last_owner(name)
}

fn names_own(name: &[u8], cred: Option<libc::ucred>) -> Result<(), String> {
    let Some(libc::ucred { uid, .. }) = cred else {
        return Err("its datagram came without its sender's credentials".to_string());
    };
    unmapped_here(uid, "its sender")?;
    if uid == 0 {
        return Ok(());
    }
    match abstract_owner::owner(name, uid)? {
        Some(owner) if owner == uid => Ok(()),
        Some(owner) => Err(format!(
            "the socket at that abstract name in this server's network namespace belongs to \
             uid {owner}, the datagram came from uid {uid} (a socket bound in another network \
             namespace names another one here); a reply goes only to its sender's own name"
        )),
        None => Err(
            "no datagram socket is bound at that abstract name in this server's network \
             namespace (its sender's socket was made in another one)"
                .to_string(),
        ),
    }
}

/// The way a reply reaches a Unix datagram sender bound at a path: the socket file
/// [`vouched`] checked, held open (O_PATH) and named through /proc/self/fd, so sendto(2)
/// reaches that inode and no other. Without it the kernel resolves the sender's path anew
/// at each reply with the server's rights, following whatever a user put there since (a
/// symlink to /run/systemd/notify or /dev/log), and root's server writes into it.
#[derive(Debug)]
pub(crate) struct ReplyPath {
    _file: OwnedFd,
    addr: SockAddr,
    /// The sender's path, as its datagram named it.
    sender: PeerAddr,
}

/// The address a datagram to `to` is sent to: a Unix path only through `held`, its
/// sender's socket file as [`vouched`] held it, never by resolving the path again (any
/// other address as it is). Refused, as advice, when no such file is held for it.
pub(crate) fn reply_addr<'a>(
    to: &'a PeerAddr,
    held: Option<&'a ReplyPath>,
) -> io::Result<&'a SockAddr> {
    let Some(path) = to.0.as_pathname() else {
        return Ok(&to.0);
    };
    match held {
        Some(held) if held.sender == *to => Ok(&held.addr),
        _ => Err(Advised::io(
            Errno::EPERM,
            format!(
                "no reply to {}: its socket file was not found to be its sender's when its \
                 datagram came; a reply goes only to the socket file its sender bound",
                path.display()
            ),
        )),
    }
}

/// The socket file a client's datagram to `to` goes through when `to` is a Unix path its
/// user named (`None` for any other address), opened for that send alone and held to what
/// a reply is (see [`held_socket`]), whoever owns it.
pub(crate) fn named_path(to: &PeerAddr) -> io::Result<Option<ReplyPath>> {
    match to.0.as_pathname() {
        Some(path) => held_socket(to, path).map(|(held, _)| Some(held)),
        None => Ok(None),
    }
}

/// openat2(2) with O_PATH and RESOLVE_NO_SYMLINKS: `path`, with no symlink followed on
/// any part of it (ELOOP if there is one).
fn open_no_symlinks(path: &Path) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Safety: all zeroes is a valid open_how; its fields are set below.
    let mut how: libc::open_how = unsafe { mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // Safety: `name` is a NUL-terminated string and `how` a live open_how of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            name.as_ptr(),
            &how as *const libc::open_how,
            mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: the kernel just returned this descriptor, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
