//! Two sends read as one: the sticky-packet problem of streams, and the cure shown on the
//! same connection: a newline after each message, and a reader that cuts at newlines.

use anyhow::{Context, Result};

use super::calls;
use super::setup::{self, Call};
use super::teacher::{Teacher, Who::*};

/// What to run to see it with netecho, each line as it can be pasted into a shell.
const TRY: [&str; 4] = [
    "netecho serve                                          # on 127.0.0.1:3234",
    "netecho send --burst 5 127.0.0.1:3234 hello",
    "netecho serve --framing line",
    "netecho send --framing line --burst 5 127.0.0.1:3234 hello",
];

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "Two sends read as one (sticky packets)",
        "两次发送一次收到（粘包）",
    );
    let c = setup::call(t)?;
    problem(t, &c)?;
    cure(t, &c)?;
    t.pause();
    t.blank_line();
    t.say(
        "Try it with netecho, the server in one terminal and the client in another. \
         Unframed, the five replies of a burst usually come back in one read \
         (HELLOHELLO...); stop the server (Ctrl-C) and run both with --framing line: five \
         replies, one per line (or --framing length on both: a 4-byte length before each).",
        "用 netecho 试试：一个终端运行服务器，另一个运行客户端。不分帧时，一次 burst 的五个\
         回复通常一次读到（HELLOHELLO...）；停掉服务器（Ctrl-C），两边都加 --framing \
         line 再运行：五个回复，每行一个（或两边都用 --framing length：每条前面 4 字节长度）。",
    );
    t.code(&TRY);
    t.note(
        "The same on macOS and Windows: every TCP stack may merge or split sends.",
        "macOS 和 Windows 上也一样：任何 TCP 实现都可能合并或拆分发送的数据。",
    );
    Ok(())
}

/// Two sends back to back, and what one recv returns of them.
fn problem(t: &mut Teacher, c: &Call) -> Result<()> {
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
        // The rest, so that the framed messages after it start the stream afresh.
        calls::recv(t, "conn", &c.conn, 1024, 0).context("recv")?;
    }
    t.pause();
    Ok(())
}

/// The cure on the same connection: each message ends with a newline, and the server reads
/// into a buffer and cuts it at each newline, however the reads fell.
fn cure(t: &mut Teacher, c: &Call) -> Result<()> {
    t.step(
        Client,
        "the cure: end each message with a newline",
        "解决办法：每条消息以换行结尾",
    );
    calls::send(t, "client", &c.client, b"hello\n").context("send")?;
    calls::send(t, "client", &c.client, b"world\n").context("send")?;
    calls::wait_queued(&c.conn, 12);
    t.pause();
    t.step(
        Server,
        "recv into a buffer until it holds two newlines, then cut at each",
        "recv 到缓冲区里，直到有两个换行，再按换行切开",
    );
    t.python("buf = b''");
    let mut buf = Vec::new();
    // Bounded: two messages of six bytes come in at most twelve reads.
    for _ in 0..12 {
        if buf.iter().filter(|&&b| b == b'\n').count() >= 2 {
            break;
        }
        let data = calls::recv(t, "conn", &c.conn, 1024, 0).context("recv")?;
        t.python("buf += data");
        if data.is_empty() {
            break;
        }
        buf.extend_from_slice(&data);
    }
    let mut messages = 0;
    while let Some(end) = buf.iter().position(|&b| b == b'\n') {
        let msg: Vec<u8> = buf.drain(..=end).take(end).collect();
        t.python(&format!(
            "msg, buf = buf.split(b'\\n', 1)    # msg = {}",
            calls::py_bytes(&msg)
        ));
        messages += 1;
    }
    t.say(
        &format!(
            "{messages} messages came out, b'hello' and b'world', whether recv returned \
             them together or apart: the newline, not the read, ends a message."
        ),
        &format!(
            "切出了 {messages} 条消息，b'hello' 和 b'world'，不管 recv 是一起还是分开返回的：\
             结束一条消息的是换行，不是一次读。"
        ),
    );
    Ok(())
}
