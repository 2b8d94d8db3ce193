//! The other side hangs up: recv returns b'' (0 bytes), and a send after that fails.

use anyhow::{Context, Result};

use super::calls;
use super::setup;
use super::teacher::{Teacher, Who::*};

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title("recv returns b'' at disconnect", "对方挂断时 recv 返回 b''");
    let c = setup::call(t)?;
    t.step(Client, "hang up: close()", "挂电话：close()");
    calls::close(t, "client", c.client);
    t.pause();
    t.step(Server, "recv()", "recv()");
    let data = calls::recv(t, "conn", &c.conn, 1024, 0).context("recv")?;
    if data.is_empty() {
        t.say(
            "0 bytes (b''): on TCP this means the other side sends no more: it closed, or \
             shut down its sending side (netecho lesson half-close); the lesson's server \
             leaves its loop (if not data: break).",
            "0 字节（b''）：在 TCP 上这说明对方不再发送：它关闭了，或关闭了自己的发送方向\
             （netecho lesson half-close）；课上的服务器据此退出循环（if not data: break）。",
        );
    }
    t.pause();
    t.step(
        Server,
        "send to a closed peer, twice",
        "向已关闭的对方发送两次",
    );
    let first = calls::send(t, "conn", &c.conn, b"anyone?");
    // The peer's RST comes back within the first send on loopback; a moment more is slack.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = calls::send(t, "conn", &c.conn, b"anyone?");
    t.say(
        &format!(
            "The first send {} (the data left, and the peer answered RST); the second {}. \
             netecho sends with MSG_NOSIGNAL: without it EPIPE comes with SIGPIPE, which \
             ends a C program (Python ignores SIGPIPE and raises BrokenPipeError).",
            if first.is_ok() { "succeeded" } else { "failed" },
            if second.is_ok() {
                "succeeded too"
            } else {
                "failed"
            }
        ),
        &format!(
            "第一次发送{}（数据发出去了，对方回了 RST）；第二次{}。netecho 发送时带 \
             MSG_NOSIGNAL：不带的话 EPIPE 会伴随 SIGPIPE，C 程序会因此退出（Python 忽略 \
             SIGPIPE，抛出 BrokenPipeError）。",
            if first.is_ok() { "成功" } else { "失败" },
            if second.is_ok() {
                "也成功了"
            } else {
                "失败了"
            }
        ),
    );
    t.note(
        "Windows has no SIGPIPE: the send fails with WSAECONNRESET or WSAECONNABORTED.",
        "Windows 没有 SIGPIPE：发送会报 WSAECONNRESET 或 WSAECONNABORTED。",
    );
    Ok(())
}
