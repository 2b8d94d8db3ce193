//! The calls of the lesson, each made on a real socket and shown as it happened: the call,
//! its result (with the errno when it failed), and the Python line that makes it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use socket2::{Domain, SockAddr, Socket, Type};

use super::teacher::Teacher;
use crate::explain::result_text;

/// Loopback, port 0: the kernel picks a free port.
pub(super) fn loopback() -> SockAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()
}

/// An address as the call shows it (`127.0.0.1:41234`) and as Python writes it.
pub(super) fn shown(addr: &SockAddr) -> (String, String) {
    match addr.as_socket() {
        Some(a) => (a.to_string(), format!("(\"{}\", {})", a.ip(), a.port())),
        None => ("?".into(), "?".into()),
    }
}

/// Bytes as Python prints them: `b'hello'`, with escapes.
pub(super) fn py_bytes(data: &[u8]) -> String {
    let mut s = String::from("b'");
    for &b in data {
        match b {
            b'\'' => s.push_str("\\'"),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('\'');
    s
}

/// Bytes as the lesson shows them: Python's form, shortened past 24 bytes.
pub(super) fn short_bytes(data: &[u8]) -> String {
    if data.len() <= 24 {
        return py_bytes(data);
    }
    format!("{}... ({} bytes)", py_bytes(&data[..16]), data.len())
}

fn type_names(ty: Type) -> (&'static str, &'static str) {
    match ty {
        Type::DGRAM => ("AF_INET, SOCK_DGRAM", "socket.AF_INET, socket.SOCK_DGRAM"),
        _ => ("AF_INET, SOCK_STREAM", "socket.AF_INET, socket.SOCK_STREAM"),
    }
}

/// socket(2) over IPv4.
pub(super) fn socket(t: &Teacher, var: &str, ty: Type) -> Result<Socket> {
    let result = Socket::new(Domain::IPV4, ty, None);
    let (c, py) = type_names(ty);
    t.call(
        &format!("socket({c}, 0)"),
        &result_text(&result, |s| format!("fd {}", s.as_raw_fd())),
    );
    t.python(&format!("{var} = socket.socket({py})"));
    result.context("socket")
}

/// setsockopt(2) SO_REUSEADDR = 1.
pub(super) fn reuseaddr(t: &Teacher, var: &str, sock: &Socket) -> Result<()> {
    let result = sock.set_reuse_address(true);
    let fd = sock.as_raw_fd();
    t.call(
        &format!("setsockopt(fd {fd}, SOL_SOCKET, SO_REUSEADDR, 1)"),
        &result_text(&result, |_| "0".into()),
    );
    t.python(&format!(
        "{var}.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)"
    ));
    result.context("setsockopt SO_REUSEADDR")
}

/// bind(2); the result is the caller's to judge (EADDRINUSE is a lesson too).
pub(super) fn bind(t: &Teacher, var: &str, sock: &Socket, addr: &SockAddr) -> io::Result<SockAddr> {
    let result = sock.bind(addr).and_then(|()| sock.local_addr());
    let (a, py) = shown(addr);
    let said = result_text(&result, |got| match (addr.as_socket(), got.as_socket()) {
        (Some(a), Some(g)) if a.port() == 0 => {
            let port = g.port();
            t.lang
                .pick(
                    &format!("0 (port {port} picked)"),
                    &format!("0（选中端口 {port}）"),
                )
                .to_string()
        }
        _ => "0".into(),
    });
    t.call(&format!("bind(fd {}, {a})", sock.as_raw_fd()), &said);
    t.python(&format!("{var}.bind({py})"));
    result
}

/// listen(2).
pub(super) fn listen(t: &Teacher, var: &str, sock: &Socket, backlog: i32) -> Result<()> {
    let result = sock.listen(backlog);
    let fd = sock.as_raw_fd();
    t.call(
        &format!("listen(fd {fd}, {backlog})"),
        &result_text(&result, |_| "0".into()),
    );
    t.python(&format!("{var}.listen({backlog})"));
    result.context("listen")
}

/// connect(2).
pub(super) fn connect(t: &Teacher, var: &str, sock: &Socket, addr: &SockAddr) -> Result<()> {
    let result = sock.connect(addr);
    let (a, py) = shown(addr);
    t.call(
        &format!("connect(fd {}, {a})", sock.as_raw_fd()),
        &result_text(&result, |_| "0".into()),
    );
    t.python(&format!("{var}.connect({py})"));
    result.context("connect")
}

/// accept(2): the connection's own socket, `conn` in the lesson.
pub(super) fn accept(t: &Teacher, var: &str, sock: &Socket) -> Result<Socket> {
    let result = sock.accept();
    t.call(
        &format!("accept(fd {})", sock.as_raw_fd()),
        &result_text(&result, |(c, a)| {
            format!("fd {} from {}", c.as_raw_fd(), shown(a).0)
        }),
    );
    t.python(&format!("conn, addr = {var}.accept()"));
    Ok(result.context("accept")?.0)
}

/// send(2) with MSG_NOSIGNAL: a closed peer is EPIPE, not a SIGPIPE that ends the process.
pub(super) fn send(t: &Teacher, var: &str, sock: &Socket, data: &[u8]) -> io::Result<usize> {
    let result = sock.send_with_flags(data, libc::MSG_NOSIGNAL);
    t.call(
        &format!("send(fd {}, {})", sock.as_raw_fd(), short_bytes(data)),
        &result_text(&result, |n| n.to_string()),
    );
    t.python(&format!("{var}.send({})", short_bytes(data)));
    result
}

/// sendto(2) of one datagram to `to`.
pub(super) fn send_to(
    t: &Teacher,
    var: &str,
    sock: &Socket,
    data: &[u8],
    to: &SockAddr,
) -> io::Result<usize> {
    let result = sock.send_to(data, to);
    let (a, py) = shown(to);
    t.call(
        &format!(
            "sendto(fd {}, {}, {a})",
            sock.as_raw_fd(),
            short_bytes(data)
        ),
        &result_text(&result, |n| n.to_string()),
    );
    t.python(&format!("{var}.sendto({}, {py})", short_bytes(data)));
    result
}

/// recv(2) of at most `len` bytes, with `flags` (MSG_DONTWAIT: do not wait).
pub(super) fn recv_raw(sock: &Socket, len: usize, flags: i32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    // Safety: buf is a live, writable buffer of buf.len() bytes for the whole call.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// recv(2), shown with what it returned: the bytes, 0 bytes, or the errno.
pub(super) fn recv(
    t: &Teacher,
    var: &str,
    sock: &Socket,
    len: usize,
    flags: i32,
) -> io::Result<Vec<u8>> {
    let result = recv_raw(sock, len, flags);
    let shown_flags = if flags & libc::MSG_DONTWAIT != 0 {
        ", MSG_DONTWAIT"
    } else {
        ""
    };
    t.call(
        &format!("recv(fd {}, {len}{shown_flags})", sock.as_raw_fd()),
        &result_text(&result, |d| format!("{} {}", d.len(), short_bytes(d))),
    );
    let py = if flags & libc::MSG_DONTWAIT != 0 {
        format!("data = {var}.recv({len}, socket.MSG_DONTWAIT)")
    } else {
        format!("data = {var}.recv({len})")
    };
    t.python(&py);
    result
}

/// shutdown(2) SHUT_WR: no more sends, while still reading.
pub(super) fn shutdown_write(t: &Teacher, var: &str, sock: &Socket) -> Result<()> {
    let result = sock.shutdown(std::net::Shutdown::Write);
    t.call(
        &format!("shutdown(fd {}, SHUT_WR)", sock.as_raw_fd()),
        &result_text(&result, |_| "0".into()),
    );
    t.python(&format!("{var}.shutdown(socket.SHUT_WR)"));
    result.context("shutdown")
}

/// close(2).
pub(super) fn close(t: &Teacher, var: &str, sock: Socket) {
    t.call(&format!("close(fd {})", sock.as_raw_fd()), "0");
    drop(sock);
    t.python(&format!("{var}.close()"));
}

/// Waits, at most a second, until `sock` has at least `bytes` bytes to read (FIONREAD);
/// the bytes queued then.
pub(super) fn wait_queued(sock: &Socket, bytes: usize) -> usize {
    let mut queued: libc::c_int = 0;
    for _ in 0..100 {
        // Safety: FIONREAD writes one c_int to the pointer given, which is live.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONREAD, &mut queued) };
        if rc < 0 || queued as usize >= bytes {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    queued.max(0) as usize
}
