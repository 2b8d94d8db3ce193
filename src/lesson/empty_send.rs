//! An empty send: on TCP nothing at all goes out; on SOCK_SEQPACKET an empty message does,
//! and the reader cannot tell it from a hang-up.

use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};

use super::calls;
use super::setup;
use super::teacher::{Teacher, Who::*};
use crate::explain::result_text;

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title("An empty send", "发送空消息");
    t.say(
        "The lesson's client skips empty input. Here is why, on real sockets.",
        "课上的客户端会跳过空输入。下面在真实套接字上看看为什么。",
    );
    let c = setup::call(t)?;
    t.step(Client, "send nothing: send(b'')", "发一个空消息：send(b'')");
    calls::send(t, "client", &c.client, b"").context("send")?;
    t.pause();
    t.step(
        Server,
        "look without waiting: recv(MSG_DONTWAIT)",
        "不等待地看一眼：recv(MSG_DONTWAIT)",
    );
    let got = calls::recv(t, "conn", &c.conn, 1024, libc::MSG_DONTWAIT);
    match got {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => t.say(
            "EAGAIN: nothing arrived (Python raises BlockingIOError). On TCP an empty send \
             sends nothing at all: a stream \
             has no messages, only bytes, and zero bytes are none. A recv() without \
             MSG_DONTWAIT would wait here for ever, as the lesson's server would.",
            "EAGAIN：什么也没收到（Python 抛出 BlockingIOError）。TCP 上发空消息根本不会发出任何东西：字节流没有“消息”，\
             只有字节，0 个字节就是没有。不加 MSG_DONTWAIT 的 recv() 会一直等下去，\
             课上的服务器就会这样卡住。",
        ),
        Ok(d) => t.say(
            &format!(
                "recv returned {} bytes: not what TCP usually does.",
                d.len()
            ),
            &format!("recv 返回了 {} 字节：TCP 通常不会这样。", d.len()),
        ),
        Err(e) => return Err(e).context("recv"),
    }
    t.pause();
    seqpacket(t)
}

/// The same on SOCK_SEQPACKET, where an empty message is a message.
fn seqpacket(t: &mut Teacher) -> Result<()> {
    t.step(
        Client,
        "the same over a message socket: SOCK_SEQPACKET",
        "换成保留消息边界的套接字：SOCK_SEQPACKET",
    );
    let pair = Socket::pair(Domain::UNIX, Type::SEQPACKET, None);
    t.call(
        "socketpair(AF_UNIX, SOCK_SEQPACKET, 0)",
        &result_text(&pair, |(a, b)| {
            format!("0 [fd {}, fd {}]", a.as_raw_fd(), b.as_raw_fd())
        }),
    );
    t.python("a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)");
    let (a, b) = pair.context("socketpair")?;
    calls::send(t, "a", &a, b"").context("send")?;
    let got = calls::recv(t, "b", &b, 1024, libc::MSG_DONTWAIT);
    match got {
        Ok(d) if d.is_empty() => t.say(
            "recv returned 0 bytes: an empty message arrived. The lesson's server reads \
             b'' as a hang-up and closes, though the client is still there.",
            "recv 返回 0 字节：收到了一条空消息。课上的服务器会把 b'' 当成对方挂了并关闭连接，\
             其实客户端还在。",
        ),
        Ok(d) => t.say(
            &format!("recv returned {} bytes.", d.len()),
            &format!("recv 返回了 {} 字节。", d.len()),
        ),
        Err(e) => t.say(&format!("recv failed: {e}."), &format!("recv 失败：{e}。")),
    }
    t.note(
        "UDP carries empty datagrams too (recvfrom returns 0 bytes and the sender), on \
         Linux, macOS and Windows alike.",
        "UDP 也能发空数据报（recvfrom 返回 0 字节和发送方地址），Linux、macOS、Windows 都一样。",
    );
    Ok(())
}
