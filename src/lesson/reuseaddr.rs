//! "Address already in use": a connection the server closed first stays in TIME_WAIT on
//! the server's port, and Linux lets a new socket bind that port only when both the old
//! socket and the new one set SO_REUSEADDR.

use std::io;

use anyhow::{Context, Result};
use socket2::{SockAddr, Type};

use super::calls::{self, loopback};
use super::teacher::{Teacher, Who::*};

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "Address already in use, and SO_REUSEADDR",
        "地址已被占用（Address already in use）与 SO_REUSEADDR",
    );
    t.say(
        "The side that closes a TCP connection first keeps it in TIME_WAIT for a minute, \
         on the server's port when the server closed first.",
        "先关闭 TCP 连接的一方会让它在 TIME_WAIT 状态停留约一分钟；服务器先关时，占住的就是\
         服务器的端口。",
    );
    let addr = time_wait(t, false)?;
    let plain = rebind(t, &addr, false);
    let reuse = rebind(t, &addr, true);
    say_round(t, &plain, &reuse, false);
    let addr = time_wait(t, true)?;
    let plain = rebind(t, &addr, false);
    let reuse = rebind(t, &addr, true);
    say_round(t, &plain, &reuse, true);
    t.note(
        "macOS (BSD) needs SO_REUSEADDR on the new socket only. On Windows SO_REUSEADDR \
         lets a socket take over a port another socket is using: servers there set \
         SO_EXCLUSIVEADDRUSE instead, and Python's socket.create_server() sets \
         SO_REUSEADDR on POSIX only.",
        "macOS（BSD）只要求新套接字设置 SO_REUSEADDR。Windows 上 SO_REUSEADDR 允许抢占别的\
         套接字正在用的端口：那里的服务器改用 SO_EXCLUSIVEADDRUSE，Python 的 \
         socket.create_server() 也只在 POSIX 系统上设置 SO_REUSEADDR。",
    );
    Ok(())
}

/// A server that answers one call and hangs up first, with or without SO_REUSEADDR; the
/// address its connection is left in TIME_WAIT on.
fn time_wait(t: &mut Teacher, reuse: bool) -> Result<SockAddr> {
    let (en, zh) = if reuse {
        (
            "a server WITH SO_REUSEADDR hangs up first",
            "设置了 SO_REUSEADDR 的服务器先挂断",
        )
    } else {
        (
            "a server WITHOUT SO_REUSEADDR hangs up first",
            "没设 SO_REUSEADDR 的服务器先挂断",
        )
    };
    t.step(Server, en, zh);
    let phone = calls::socket(t, "phone", Type::STREAM)?;
    if reuse {
        calls::reuseaddr(t, "phone", &phone)?;
    }
    let addr = calls::bind(t, "phone", &phone, &loopback()).context("bind")?;
    calls::listen(t, "phone", &phone, 5)?;
    let client = socket2::Socket::new(socket2::Domain::IPV4, Type::STREAM, None)?;
    client.connect(&addr).context("connect")?;
    let conn = calls::accept(t, "phone", &phone)?;
    calls::close(t, "conn", conn);
    calls::close(t, "phone", phone);
    drop(client);
    t.pause();
    Ok(addr)
}

/// A new server on the same address, with or without SO_REUSEADDR: its bind's result.
fn rebind(t: &mut Teacher, addr: &SockAddr, reuse: bool) -> io::Result<SockAddr> {
    let (en, zh) = if reuse {
        (
            "start again WITH SO_REUSEADDR",
            "设置 SO_REUSEADDR 后重新启动",
        )
    } else {
        ("start again on the same port", "在同一端口上重新启动")
    };
    t.step(Server, en, zh);
    let result = (|| {
        let phone = calls::socket(t, "phone", Type::STREAM).map_err(io::Error::other)?;
        if reuse {
            calls::reuseaddr(t, "phone", &phone).map_err(io::Error::other)?;
        }
        calls::bind(t, "phone", &phone, addr)
    })();
    t.pause();
    result
}

fn in_use<T>(result: &io::Result<T>) -> bool {
    matches!(result, Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE))
}

/// What the two binds after one server showed.
fn say_round(
    t: &mut Teacher,
    plain: &io::Result<SockAddr>,
    reuse: &io::Result<SockAddr>,
    old: bool,
) {
    let (en, zh) = match (in_use(plain), in_use(reuse), old) {
        (true, true, false) => (
            "EADDRINUSE both times: the old connection did not set SO_REUSEADDR, and Linux \
             lets a new socket share the port only when both set it.",
            "两次都是 EADDRINUSE：旧连接没有设置 SO_REUSEADDR，而 Linux 要求新旧两个套接字都\
             设置了才允许共用端口。",
        ),
        (true, false, _) => (
            "EADDRINUSE without SO_REUSEADDR, success with it: set it before bind(), as the \
             lesson's server does, in every server.",
            "不设 SO_REUSEADDR 是 EADDRINUSE，设了就成功：每个服务器都应像课上那样在 bind() \
             之前设置它。",
        ),
        (false, false, _) => (
            "Both binds succeeded: nothing held the port this time.",
            "两次 bind 都成功了：这次端口没有被占用。",
        ),
        _ => (
            "The two binds disagreed with the rules above; their results are as shown.",
            "两次 bind 的结果和上面的规则不一致，以实际结果为准。",
        ),
    };
    t.say(en, zh);
}
