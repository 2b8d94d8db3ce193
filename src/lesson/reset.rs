//! A reset: the client closes with SO_LINGER 0, the kernel sends RST instead of FIN, and
//! the server's recv fails with ECONNRESET instead of returning b''.

use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result};

use super::calls;
use super::setup;
use super::teacher::{Teacher, Who::*};
use crate::explain::result_text;

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title("A reset (RST): ECONNRESET", "连接被重置（RST）：ECONNRESET");
    let c = setup::call(t)?;
    t.step(
        Client,
        "hang up abruptly: SO_LINGER 0, then close()",
        "粗暴地挂断：SO_LINGER 设为 0，再 close()",
    );
    let linger = c.client.set_linger(Some(Duration::ZERO));
    t.call(
        &format!(
            "setsockopt(fd {}, SOL_SOCKET, SO_LINGER, {{on, 0}})",
            c.client.as_raw_fd()
        ),
        &result_text(&linger, |_| "0".into()),
    );
    t.python("linger = struct.pack('ii', 1, 0)");
    t.python("client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)");
    linger.context("SO_LINGER")?;
    t.say(
        "SO_LINGER says what close() does with data not yet sent: by default the kernel \
         sends it and then a FIN (\"no more from me\"); lingering on for 0 seconds means \
         throw it away and send RST (\"this connection is over\") instead.",
        "SO_LINGER 决定 close() 怎样处理还没发出的数据：默认内核先发完，再发 FIN\
         （“我不再发送了”）；设为逗留 0 秒，就是丢掉这些数据，改发 RST（“这个连接作废了”）。",
    );
    calls::close(t, "client", c.client);
    t.pause();
    t.step(Server, "recv()", "recv()");
    match calls::recv(t, "conn", &c.conn, 1024, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => t.say(
            "ECONNRESET: the kernel sent RST instead of FIN, and recv() fails instead of \
             returning b''. Python raises ConnectionResetError: a server must catch it, or \
             one client's reset ends the server.",
            "ECONNRESET：内核发的是 RST 而不是 FIN，recv() 直接报错，而不是返回 b''。\
             Python 会抛出 ConnectionResetError：服务器要捕获它，否则一个客户端的重置就会\
             让整个服务器退出。",
        ),
        Ok(d) => t.say(
            &format!("recv returned {} bytes this time, not a reset.", d.len()),
            &format!("这次 recv 返回了 {} 字节，没有收到重置。", d.len()),
        ),
        Err(e) => t.say(&format!("recv failed: {e}."), &format!("recv 失败：{e}。")),
    }
    t.say(
        "A close() with unread data in its receive buffer sends RST too.",
        "接收缓冲区里还有没读的数据时 close()，同样会发 RST。",
    );
    t.note(
        "Windows reports a reset as WSAECONNRESET (10054) and also when a UDP send got an \
         ICMP port unreachable back; macOS as ECONNRESET, as Linux.",
        "Windows 上重置报 WSAECONNRESET（10054），UDP 发送收到 ICMP 端口不可达时也会这样报；\
         macOS 和 Linux 一样报 ECONNRESET。",
    );
    drop(c.phone);
    Ok(())
}
