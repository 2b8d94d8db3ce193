//! The backlog filling up: listen(1) and no accept; connections queue in the kernel until
//! the queue is full, and the next connect is left waiting.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Socket, Type};

use super::calls;
use super::setup;
use super::teacher::{Teacher, Who::*};
use crate::explain::result_text;

/// Connections tried at most.
const TRIES: usize = 6;

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "listen(1): the backlog filling up",
        "listen(1)：等待队列满了",
    );
    let (phone, addr) = setup::phone(t, 1)?;
    t.say(
        "The server never calls accept(). Clients dial without waiting: on a non-blocking \
         socket (O_NONBLOCK) connect() returns at once with EINPROGRESS while the kernel \
         shakes hands, and poll() then waits at most 200 ms for the socket to become \
         writable, which means connected.",
        "服务器一直不调用 accept()。客户端不等着拨号：在非阻塞套接字（O_NONBLOCK）上 \
         connect() 立刻返回 EINPROGRESS，握手由内核继续完成；然后 poll() 最多等 200 毫秒，\
         等套接字变得可写，也就是连上了。",
    );
    let mut clients = Vec::new();
    let mut queued = 0;
    for i in 1..=TRIES {
        t.step(
            Client,
            &format!("client {i} dials"),
            &format!("客户端 {i} 拨号"),
        );
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).context("socket")?;
        sock.set_nonblocking(true).context("O_NONBLOCK")?;
        let started = sock.connect(&addr);
        t.call(
            &format!(
                "connect(fd {}, {})",
                sock.as_raw_fd(),
                calls::shown(&addr).0
            ),
            &result_text(&started, |_| "0".into()),
        );
        let var = format!("c{i}");
        t.python(&format!(
            "{var} = socket.socket(); {var}.setblocking(False); {var}.connect_ex({})",
            calls::shown(&addr).1
        ));
        let connected = writable(&sock) && sock.take_error().ok().flatten().is_none();
        t.call(
            &format!("poll(fd {} POLLOUT, 200 ms)", sock.as_raw_fd()),
            if connected {
                "1 (connected)"
            } else {
                "0 (still waiting)"
            },
        );
        t.python(&format!("select.select([], [{var}], [], 0.2)"));
        clients.push(sock);
        if !connected {
            break;
        }
        queued += 1;
    }
    t.pause();
    say_queue(t, queued);
    drop(phone);
    Ok(())
}

fn writable(sock: &Socket) -> bool {
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::from(200u16)), Ok(n) if n > 0)
}

fn say_queue(t: &Teacher, queued: usize) {
    if queued < TRIES {
        t.say(
            &format!(
                "{queued} connections completed and wait in the accept queue; the next one \
                 did not: Linux drops its SYN while the queue is full (listen(1) holds \
                 backlog + 1 = 2), and the client's kernel sends it again 1 s, 3 s, 7 s \
                 later. connect() hangs, it does not fail."
            ),
            &format!(
                "{queued} 个连接建立好了，在 accept 队列里排队；下一个没有：队列满时 Linux 丢弃\
                 它的 SYN（listen(1) 能放 backlog + 1 = 2 个），客户端内核在 1 秒、3 秒、7 秒后\
                 重发。connect() 会卡住，而不是失败。"
            ),
        );
    } else {
        t.say(
            &format!("All {queued} connections completed: the queue was not full this time."),
            &format!("{queued} 个连接都建立了：这次队列没满。"),
        );
    }
    t.note(
        "Windows refuses a connection when the backlog is full (WSAECONNREFUSED); macOS, \
         like Linux, ignores the SYN and the client waits.",
        "Windows 在队列满时直接拒绝连接（WSAECONNREFUSED）；macOS 和 Linux 一样忽略 SYN，\
         客户端继续等。",
    );
}
