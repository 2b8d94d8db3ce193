//! Two sends read as one: the sticky-packet problem of streams, and what a stream needs to
//! tell messages apart.

use anyhow::{Context, Result};

use super::calls;
use super::setup;
use super::teacher::{Teacher, Who::*};

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "Two sends read as one (sticky packets)",
        "两次发送一次收到（粘包）",
    );
    let c = setup::call(t)?;
    t.step(Client, "send twice, back to back", "连续发两次");
    calls::send(t, "client", &c.client, b"hello").context("send")?;
    calls::send(t, "client", &c.client, b"world").context("send")?;
    calls::wait_queued(&c.conn, 10);
    t.pause();
    t.step(Server, "one recv(1024)", "一次 recv(1024)");
    let first = calls::recv(t, "conn", &c.conn, 1024, 0).context("recv")?;
    if first.len() == 10 {
        t.say(
            "One recv returned both messages as b'helloworld': TCP carries bytes, not \
             messages, and keeps no boundary between two sends.",
            "一次 recv 把两条消息一起返回了：b'helloworld'。TCP 传的是字节，不是消息，\
             两次 send 之间没有边界。",
        );
    } else {
        t.say(
            &format!(
                "This time the kernel delivered them separately ({} bytes first): it may \
                 merge them or not, so a program cannot count on either.",
                first.len()
            ),
            &format!(
                "这次内核分开交付了（先收到 {} 字节）：合不合并由内核决定，程序不能依赖任何一种。",
                first.len()
            ),
        );
    }
    t.say(
        "The cure is a framing the two sides agree on: a line per message or a length \
         before each. Try it: netecho serve --framing line in one terminal, netecho send \
         --framing line in another (or --framing length on both).",
        "解决办法是双方约定的分帧方式：每条消息一行，或在每条消息前加上长度。试试看：\
         一个终端运行 netecho serve --framing line，另一个运行 netecho send --framing \
         line（或两边都用 --framing length）。",
    );
    t.note(
        "The same on macOS and Windows: every TCP stack may merge or split sends.",
        "macOS 和 Windows 上也一样：任何 TCP 实现都可能合并或拆分发送的数据。",
    );
    Ok(())
}
