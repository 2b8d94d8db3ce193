//! recv(1024) of a longer message: on TCP the rest waits for the next recv; on UDP the
//! rest of the datagram is gone.

use anyhow::{Context, Result};
use socket2::Type;

use super::calls::{self, loopback};
use super::setup;
use super::teacher::{Teacher, Who::*};

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "recv(1024) of a longer message",
        "recv(1024) 收一条更长的消息",
    );
    let c = setup::call(t)?;
    let message = vec![b'x'; 2000];
    t.step(Client, "send 2000 bytes", "发 2000 字节");
    calls::send(t, "client", &c.client, &message).context("send")?;
    calls::wait_queued(&c.conn, message.len());
    t.pause();
    t.step(Server, "recv(1024)", "recv(1024)");
    let first = calls::recv(t, "conn", &c.conn, 1024, 0).context("recv")?;
    t.pause();
    t.step(Server, "recv(1024) again", "再 recv(1024)");
    let second = calls::recv(t, "conn", &c.conn, 1024, libc::MSG_DONTWAIT).unwrap_or_default();
    let total = first.len() + second.len();
    t.say(
        &format!(
            "Two reads gave {} + {} = {total} bytes: on a stream the rest waits in the \
             kernel for the next recv(). A server must loop until it has the whole message.",
            first.len(),
            second.len()
        ),
        &format!(
            "两次读到 {} + {} = {total} 字节：字节流里剩下的数据留在内核里等下一次 recv()。\
             服务器要循环读，直到读完整条消息。",
            first.len(),
            second.len()
        ),
    );
    t.pause();
    datagram(t, &message)
}

/// The same over UDP: one recv per datagram, and what does not fit is lost.
fn datagram(t: &mut Teacher, message: &[u8]) -> Result<()> {
    t.step(
        Server,
        "the same over UDP: a datagram socket, bound",
        "换成 UDP：一个数据报 socket，bind",
    );
    let server = calls::socket(t, "server", Type::DGRAM)?;
    let addr = calls::bind(t, "server", &server, &loopback()).context("bind")?;
    t.pause();
    t.step(
        Client,
        "a UDP client of its own: socket, then sendto",
        "一个自己的 UDP 客户端：socket，然后 sendto",
    );
    let udp_client = calls::socket(t, "udp_client", Type::DGRAM)?;
    calls::send_to(t, "udp_client", &udp_client, message, &addr).context("sendto")?;
    t.pause();
    t.step(Server, "recv(1024), and again", "recv(1024)，再来一次");
    calls::wait_queued(&server, 1);
    let first = calls::recv(t, "server", &server, 1024, 0).context("recv")?;
    let again = calls::recv(t, "server", &server, 1024, libc::MSG_DONTWAIT);
    // What the second recv saw: EAGAIN (nothing waiting), or bytes if something else came.
    let (next, next_zh) = match again {
        Ok(d) => (
            format!("gave {} bytes", d.len()),
            format!("得到 {} 字节", d.len()),
        ),
        Err(_) => (
            "found nothing (-1, EAGAIN; Python raises BlockingIOError)".to_string(),
            "什么也没有（返回 -1，EAGAIN；Python 抛出 BlockingIOError）".to_string(),
        ),
    };
    t.say(
        &format!(
            "One recv gave {} bytes and the next {next}: the other {} bytes of the datagram \
             were discarded. A datagram is read whole or cut, never in parts.",
            first.len(),
            message.len() - first.len()
        ),
        &format!(
            "一次 recv 得到 {} 字节，下一次{next_zh}：数据报剩下的 {} 字节被丢掉了。\
             数据报要么整个读出，要么被截断，不会分几次读。",
            first.len(),
            message.len() - first.len()
        ),
    );
    t.note(
        "On Windows, recvfrom() of a datagram longer than the buffer fails with \
         WSAEMSGSIZE (Python: OSError 10040) after filling the buffer.",
        "在 Windows 上，缓冲区放不下的数据报会让 recvfrom() 填满缓冲区后报 WSAEMSGSIZE\
         （Python：OSError 10040）。",
    );
    Ok(())
}
