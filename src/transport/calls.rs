//! The socket calls netecho makes, each a thin wrapper over socket2 that `--explain`
//! narrates under the kernel's own names. Narration happens after the call, so a thread's
//! lines come in the order it made its calls (across processes a line can come before the
//! line of a call that happened first); each line says which process and thread made it,
//! and EAGAIN is shown where a non-blocking socket had nothing to give.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::explain::{self, on, say, zero};

use super::PeerAddr;

fn domain_name(domain: Domain) -> &'static str {
    match domain {
        Domain::IPV4 => "AF_INET",
        Domain::IPV6 => "AF_INET6",
        Domain::UNIX => "AF_UNIX",
        _ => "AF_?",
    }
}

fn type_name(ty: Type) -> &'static str {
    match ty {
        Type::STREAM => "SOCK_STREAM",
        Type::DGRAM => "SOCK_DGRAM",
        Type::SEQPACKET => "SOCK_SEQPACKET",
        Type::RAW => "SOCK_RAW",
        _ => "SOCK_?",
    }
}

/// An address as the call passed or got it (a dual-stack socket's IPv4 peer as
/// [::ffff:a.b.c.d]:port), as strace shows it.
fn show(addr: &SockAddr) -> String {
    format!("{:#}", PeerAddr(addr.clone()))
}

/// socket(2).
pub(crate) fn socket(domain: Domain, ty: Type) -> io::Result<Socket> {
    socket_for_protocol(domain, ty, 0)
}

/// socket(2) with a protocol number: the IP protocol of a raw socket (253, IPPROTO_ICMP),
/// or 0 for the type's usual one.
pub(crate) fn socket_for_protocol(domain: Domain, ty: Type, protocol: i32) -> io::Result<Socket> {
    let result = Socket::new(domain, ty, (protocol != 0).then_some(protocol.into()));
    if on() {
        let (d, t) = (domain_name(domain), type_name(ty));
        say(format_args!("socket({d}, {t}, {protocol})"), &result, |s| {
            format!("fd {}", s.as_raw_fd())
        });
    }
    result
}

/// setsockopt(2) of a number (IP_TTL, IPV6_UNICAST_HOPS), by its C name.
pub(crate) fn setsockopt_u32(
    sock: &Socket,
    name: &str,
    value: u32,
    set: impl FnOnce(&Socket, u32) -> io::Result<()>,
) -> io::Result<()> {
    let result = set(sock, value);
    if on() {
        zero(
            format_args!("setsockopt(fd {}, {name}, {value})", sock.as_raw_fd()),
            &result,
        );
    }
    result
}

/// The datagrams the kernel has dropped on `sock` for a full receive buffer, now: SO_MEMINFO's
/// SK_MEMINFO_DROPS, the count SO_RXQ_OVFL reports along with each read.
pub(crate) fn drops(sock: &Socket) -> io::Result<u32> {
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // Safety: the kernel writes at most `len` bytes into `info`, which is that long, and
    // stores the length it wrote back into `len`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[libc::SK_MEMINFO_DROPS as usize])
}

/// What recvmsg(2) gave: the bytes (their real length, as with MSG_TRUNC), the sender, the
/// TTL or hop limit the packet arrived with when IP_RECVTTL or IPV6_RECVHOPLIMIT is on, and
/// when the kernel received it (CLOCK_REALTIME) when SO_TIMESTAMPNS is on.
pub(crate) struct Message {
    pub len: usize,
    pub from: SockAddr,
    pub ttl: Option<u8>,
    pub stamp: Option<SystemTime>,
}

/// recvmsg(2) with MSG_TRUNC, reading the TTL or hop limit and the receive time from its
/// control messages.
pub(crate) fn recv_msg(sock: &Socket, buf: &mut [u8]) -> io::Result<Message> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    let len = buf.len();
    // Room for the TTL (or hop limit) and the receive time, each asked for once: a fixed
    // few dozen bytes a read.
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::c_int, libc::timespec);
    let result = (|| {
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_TRUNC,
        )
        .map_err(io::Error::from)?;
        let (mut ttl, mut stamp) = (None, None);
        for control in msg.cmsgs().map_err(io::Error::from)? {
            match control {
                ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
                ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
                ControlMessageOwned::ScmTimestampns(t) => stamp = wall_time(t),
                _ => {}
            }
        }
        let from = msg.address.and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(SockAddr::from(std::net::SocketAddrV4::from(*v4)))
            } else {
                a.as_sockaddr_in6()
                    .map(|v6| SockAddr::from(std::net::SocketAddrV6::from(*v6)))
            }
        });
        let from = from.ok_or_else(|| io::Error::other("recvmsg gave no IP sender address"))?;
        Ok(Message {
            len: msg.bytes,
            from,
            ttl,
            stamp,
        })
    })();
    if on() {
        say(
            format_args!("recvmsg(fd {}, {len})", sock.as_raw_fd()),
            &result,
            |m| {
                format!(
                    "{} from {}",
                    crate::units::count(m.len, "byte"),
                    show(&m.from)
                )
            },
        );
    }
    result
}

/// A kernel timestamp of CLOCK_REALTIME as a `SystemTime`; `None` before 1970.
fn wall_time(t: nix::sys::time::TimeSpec) -> Option<SystemTime> {
    let secs = u64::try_from(t.tv_sec()).ok()?;
    let nanos = u32::try_from(t.tv_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// setsockopt(2) of a boolean option, by its C name.
pub(crate) fn setsockopt(
    sock: &Socket,
    name: &str,
    value: bool,
    set: impl FnOnce(&Socket, bool) -> io::Result<()>,
) -> io::Result<()> {
    let result = set(sock, value);
    if on() {
        zero(
            format_args!(
                "setsockopt(fd {}, {name}, {})",
                sock.as_raw_fd(),
                u8::from(value)
            ),
            &result,
        );
    }
    result
}

/// setsockopt(2) of SO_RCVTIMEO or SO_SNDTIMEO.
pub(crate) fn set_timeout(sock: &Socket, name: &str, value: Option<Duration>) -> io::Result<()> {
    let value = value.map(timeout_value);
    let result = match name {
        "SO_SNDTIMEO" => sock.set_write_timeout(value),
        _ => sock.set_read_timeout(value),
    };
    if on() {
        let shown = value.map_or("0 (none)".to_string(), |d| {
            format!("{:.3}s", d.as_secs_f64())
        });
        zero(
            format_args!("setsockopt(fd {}, {name}, {shown})", sock.as_raw_fd()),
            &result,
        );
    }
    result
}

/// A wait for SO_RCVTIMEO/SO_SNDTIMEO: at least a microsecond, since the option takes a
/// timeval and one of {0, 0} means "wait forever" (a 500ns --timeout, or the last moments
/// of a deadline, would otherwise never end).
pub(crate) fn timeout_value(wait: Duration) -> Duration {
    wait.max(Duration::from_micros(1))
}

/// setsockopt(2) of SO_RCVBUF or SO_SNDBUF. Linux doubles the value for its own bookkeeping
/// and clamps it to net.core.rmem_max / wmem_max; the narration shows what getsockopt reads back.
pub(crate) fn set_buffer(sock: &Socket, name: &str, bytes: usize) -> io::Result<()> {
    let (result, now) = match name {
        "SO_SNDBUF" => (sock.set_send_buffer_size(bytes), sock.send_buffer_size()),
        _ => (sock.set_recv_buffer_size(bytes), sock.recv_buffer_size()),
    };
    if on() {
        let now = now.map_or("?".to_string(), |n| n.to_string());
        zero(
            format_args!(
                "setsockopt(fd {}, {name}, {bytes}) (getsockopt reads {now})",
                sock.as_raw_fd()
            ),
            &result,
        );
    }
    result
}

/// fcntl(2) O_NONBLOCK.
pub(crate) fn set_nonblocking(sock: &Socket, nonblocking: bool) -> io::Result<()> {
    let result = sock.set_nonblocking(nonblocking);
    if on() {
        let flag = if nonblocking {
            "O_NONBLOCK"
        } else {
            "~O_NONBLOCK"
        };
        zero(
            format_args!("fcntl(fd {}, F_SETFL, {flag})", sock.as_raw_fd()),
            &result,
        );
    }
    result
}

/// bind(2).
pub(crate) fn bind(sock: &Socket, addr: &SockAddr) -> io::Result<()> {
    let result = sock.bind(addr);
    if on() {
        let shown = if addr.is_unnamed() {
            "\"\" (autobind)".to_string()
        } else {
            show(addr)
        };
        zero(
            format_args!("bind(fd {}, {shown})", sock.as_raw_fd()),
            &result,
        );
    }
    result
}

/// listen(2).
pub(crate) fn listen(sock: &Socket, backlog: i32) -> io::Result<()> {
    let result = sock.listen(backlog);
    if on() {
        zero(
            format_args!("listen(fd {}, {backlog})", sock.as_raw_fd()),
            &result,
        );
    }
    result
}

/// connect(2).
pub(crate) fn connect(sock: &Socket, addr: &SockAddr) -> io::Result<()> {
    let result = sock.connect(addr);
    if on() {
        zero(
            format_args!("connect(fd {}, {})", sock.as_raw_fd(), show(addr)),
            &result,
        );
    }
    result
}

/// shutdown(2) of one direction. SHUT_WR sends a FIN: the peer's recv returns 0, the end of
/// the stream, while this side still reads what the peer says.
pub(crate) fn shutdown(sock: &Socket, how: std::net::Shutdown) -> io::Result<()> {
    use std::net::Shutdown;
    let result = sock.shutdown(how);
    if on() {
        let (name, gloss) = match how {
            Shutdown::Write => (
                "SHUT_WR",
                " (a FIN: the peer's recv returns 0, end of stream)",
            ),
            Shutdown::Read => ("SHUT_RD", ""),
            Shutdown::Both => ("SHUT_RDWR", ""),
        };
        say(
            format_args!("shutdown(fd {}, {name})", sock.as_raw_fd()),
            &result,
            |_| format!("0{gloss}"),
        );
    }
    result
}

/// accept(2): the new connection's socket and its peer.
pub(crate) fn accept(sock: &Socket) -> io::Result<(Socket, SockAddr)> {
    let result = sock.accept();
    if on() {
        say(
            format_args!("accept(fd {})", sock.as_raw_fd()),
            &result,
            |(s, a)| format!("fd {} from {}", s.as_raw_fd(), show(a)),
        );
    }
    result
}

/// recv(2) with `flags` (MSG_TRUNC on message sockets). Inlined, and straight to libc: a
/// thread-per-connection server returns through every frame between its loop and the
/// system call after each wake-up, and each return costs there (the kernel refills the
/// return predictor on a context switch).
#[inline(always)]
pub(crate) fn recv(sock: &Socket, buf: &mut [MaybeUninit<u8>], flags: i32) -> io::Result<usize> {
    // Safety: the kernel writes at most `buf.len()` bytes into `buf`, which is that long.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    let result = match n {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n as usize),
    };
    if on() {
        said_recv(sock, buf.len(), &result);
    }
    result
}

#[cold]
fn said_recv(sock: &Socket, len: usize, result: &io::Result<usize>) {
    say(
        format_args!("recv(fd {}, {len})", sock.as_raw_fd()),
        result,
        |n| match n {
            0 => format!("0 ({})", zero_means(sock)),
            n => crate::units::count(*n, "byte"),
        },
    );
}

/// send(2) with MSG_NOSIGNAL: a closed peer is an error (EPIPE), not a SIGPIPE. Inlined and
/// straight to libc, as [`recv`] is.
#[inline(always)]
pub(crate) fn send(sock: &Socket, buf: &[u8]) -> io::Result<usize> {
    // Safety: the kernel reads at most `buf.len()` bytes from `buf`, which is that long.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    let result = match n {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n as usize),
    };
    if on() {
        said_send(sock, buf.len(), &result);
    }
    result
}

#[cold]
fn said_send(sock: &Socket, len: usize, result: &io::Result<usize>) {
    say(
        format_args!(
            "send(fd {}, {})",
            sock.as_raw_fd(),
            crate::units::count(len, "byte")
        ),
        result,
        |n| format!("{n}"),
    );
}

/// recvfrom(2) with MSG_TRUNC: the real length of a datagram longer than `buf`.
pub(crate) fn recv_from(
    sock: &Socket,
    buf: &mut [MaybeUninit<u8>],
) -> io::Result<(usize, SockAddr)> {
    recv_from_flags(sock, buf, 0)
}

/// recvfrom(2) with MSG_DONTWAIT: never blocks, whatever the socket's mode.
pub(crate) fn try_recv_from(
    sock: &Socket,
    buf: &mut [MaybeUninit<u8>],
) -> io::Result<(usize, SockAddr)> {
    recv_from_flags(sock, buf, libc::MSG_DONTWAIT)
}

fn recv_from_flags(
    sock: &Socket,
    buf: &mut [MaybeUninit<u8>],
    flags: libc::c_int,
) -> io::Result<(usize, SockAddr)> {
    let len = buf.len();
    let result = sock.recv_from_with_flags(buf, libc::MSG_TRUNC | flags);
    // EAGAIN from a blocking recvfrom is its SO_RCVTIMEO passing, the datagram server's
    // tick: a wait that timed out, not narrated. From MSG_DONTWAIT it is the answer.
    if on() && (flags & libc::MSG_DONTWAIT != 0 || !is_would_block(&result)) {
        say(
            format_args!("recvfrom(fd {}, {len})", sock.as_raw_fd()),
            &result,
            |(n, a)| format!("{} from {}", crate::units::count(*n, "byte"), show(a)),
        );
    }
    result
}

/// sendto(2).
pub(crate) fn send_to(sock: &Socket, buf: &[u8], to: &SockAddr) -> io::Result<usize> {
    send_to_flags(sock, buf, to, 0)
}

pub(crate) fn send_to_flags(
    sock: &Socket,
    buf: &[u8],
    to: &SockAddr,
    flags: libc::c_int,
) -> io::Result<usize> {
    let result = sock.send_to_with_flags(buf, to, flags);
    if on() {
        say(
            format_args!(
                "sendto(fd {}, {}, {})",
                sock.as_raw_fd(),
                crate::units::count(buf.len(), "byte"),
                show(to)
            ),
            &result,
            |n| format!("{n}"),
        );
    }
    result
}

/// fcntl(2) F_DUPFD_CLOEXEC: a second descriptor of the same socket, to shut it down from
/// another thread.
pub(crate) fn dup(sock: &Socket) -> io::Result<Socket> {
    let result = sock.try_clone();
    if on() {
        say(
            format_args!("fcntl(fd {}, F_DUPFD_CLOEXEC)", sock.as_raw_fd()),
            &result,
            |s| format!("fd {}", s.as_raw_fd()),
        );
    }
    result
}

/// Narrates close(2) of a socket about to be dropped.
pub(crate) fn closing(sock: &Socket) {
    if on() {
        explain::zero(format_args!("close(fd {})", sock.as_raw_fd()), &Ok(()));
    }
}

/// What a recv of 0 bytes means on this socket: on a stream only the end of it; on
/// seqpacket an empty message or the end, which read the same; on a datagram socket an empty
/// datagram.
fn zero_means(sock: &Socket) -> &'static str {
    match sock.r#type() {
        Ok(Type::STREAM) => "end of stream",
        Ok(Type::SEQPACKET) => "an empty message, or end of stream",
        Ok(Type::DGRAM) => "an empty datagram",
        _ => "end of stream, or an empty message",
    }
}

fn is_would_block<T>(result: &io::Result<T>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
