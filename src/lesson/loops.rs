//! The lesson's two loops: the communication loop (many messages on one connection, until
//! recv returns b'') inside the connection loop (accept the next client once the first has
//! gone), as an iterative server runs them, one client at a time.

use anyhow::{Context, Result};
use socket2::{SockAddr, Socket, Type};

use super::calls;
use super::setup;
use super::teacher::{Teacher, Who::*};

/// The server's two loops, as the lesson writes them.
const SERVER: [&str; 7] = [
    "while True:                        # the connection loop",
    "    conn, addr = phone.accept()",
    "    while True:                    # the communication loop",
    "        data = conn.recv(1024)",
    "        if not data: break",
    "        conn.send(data.upper())",
    "    conn.close()",
];

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "The two loops: many messages, then the next client",
        "两个循环：多条消息，然后下一个客户端",
    );
    t.say(
        "The lesson's server runs two loops, one inside the other:",
        "课上的服务器有两个循环，一个套着另一个：",
    );
    t.code(&SERVER);
    let (phone, addr) = setup::phone(t, 5)?;
    let step = (
        "client 1 dials: socket, connect",
        "客户端 1 拨号：socket、connect",
    );
    let first = dial(t, step, "client", &addr)?;
    t.step(Server, "answer client 1: accept", "接听客户端 1：accept");
    let conn = calls::accept(t, "phone", &phone)?;
    t.pause();
    let step = (
        "client 2 dials while client 1 talks",
        "客户端 1 通话时客户端 2 拨号",
    );
    let second = dial(t, step, "client2", &addr)?;
    t.say(
        "connect() returned: the kernel completed the handshake, and client 2 waits in the \
         backlog. The server is inside its communication loop with client 1 and calls \
         accept() again only when that loop ends: one client at a time (iterative).",
        "connect() 已返回：内核完成了握手，客户端 2 在 backlog 队列里等着。服务器正在和\
         客户端 1 的通信循环里，只有这个循环结束才会再调用 accept()：一次服务一个客户端\
         （迭代模型）。",
    );
    t.pause();
    for message in [&b"hello"[..], b"again"] {
        round(t, ("client", &first), &conn, message)?;
    }
    t.step(Client, "client 1 hangs up: close", "客户端 1 挂断：close");
    calls::close(t, "client", first);
    t.step(Server, "recv returns b'': break", "recv 返回 b''：break");
    calls::recv(t, "conn", &conn, 1024, 0).context("recv")?;
    t.python("if not data: break");
    calls::close(t, "conn", conn);
    t.say(
        "The communication loop has ended; the connection loop goes round again.",
        "通信循环结束了；连接循环再转一圈。",
    );
    t.pause();
    next_client(t, phone, second)
}

/// A client's step (its name in both languages): socket and connect, as `var`.
fn dial(t: &mut Teacher, step: (&str, &str), var: &str, addr: &SockAddr) -> Result<Socket> {
    t.step(Client, step.0, step.1);
    let client = calls::socket(t, var, Type::STREAM)?;
    calls::connect(t, var, &client, addr)?;
    Ok(client)
}

/// One turn of the communication loop: the client (its name in the Python, and its socket)
/// sends, the server answers on `conn`.
fn round(
    t: &mut Teacher,
    (var, client): (&str, &Socket),
    conn: &Socket,
    message: &[u8],
) -> Result<()> {
    t.step(
        Client,
        "communication loop: send, and the server answers",
        "通信循环：发送，服务器回复",
    );
    calls::send(t, var, client, message).context("send")?;
    let data = calls::recv(t, "conn", conn, 1024, 0).context("recv")?;
    calls::send(t, "conn", conn, &data.to_ascii_uppercase()).context("send")?;
    calls::recv(t, var, client, 1024, 0).context("recv")?;
    t.say(
        "Same connection, same conn: no new accept() for a new message.",
        "同一个连接、同一个 conn：新消息不需要新的 accept()。",
    );
    t.pause();
    Ok(())
}

/// The connection loop's second turn: accept returns at once with the waiting client.
fn next_client(t: &mut Teacher, phone: Socket, second: Socket) -> Result<()> {
    t.step(
        Server,
        "connection loop: accept the next client",
        "连接循环：接听下一个客户端",
    );
    let conn = calls::accept(t, "phone", &phone)?;
    t.say(
        "accept() returned at once: client 2 had been waiting in the backlog since it \
         dialed.",
        "accept() 马上返回：客户端 2 从拨号起就在 backlog 队列里等着。",
    );
    round(t, ("client2", &second), &conn, b"hi")?;
    t.step(Client, "client 2 hangs up: close", "客户端 2 挂断：close");
    calls::close(t, "client2", second);
    calls::recv(t, "conn", &conn, 1024, 0).context("recv")?;
    calls::close(t, "conn", conn);
    calls::close(t, "phone", phone);
    t.note(
        "The two loops are the same on Windows and macOS; a full backlog is not: Windows \
         refuses the next client, Linux and macOS leave it waiting (netecho lesson backlog).",
        "两个循环在 Windows 和 macOS 上一样；backlog 满时不一样：Windows 拒绝下一个客户端，\
         Linux 和 macOS 让它等着（netecho lesson backlog）。",
    );
    t.blank_line();
    t.say(
        "A server that talks to many clients at once runs the communication loop of each \
         in its own thread or event loop: netecho serve --model threads, or event.",
        "要同时和多个客户端通话，服务器就在各自的线程或事件循环里跑每个通信循环：\
         netecho serve --model threads 或 event。",
    );
    Ok(())
}
