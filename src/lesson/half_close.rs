//! A half-close: shutdown(SHUT_WR) says "I am done sending" while the answer still comes
//! back on the same connection.

use anyhow::{Context, Result};

use super::calls;
use super::setup;
use super::teacher::{Teacher, Who::*};

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "A half-close: shutdown(SHUT_WR)",
        "半关闭：shutdown(SHUT_WR)",
    );
    let c = setup::call(t)?;
    t.step(
        Client,
        "send, then say \"no more from me\": shutdown(SHUT_WR)",
        "发完后说“我说完了”：shutdown(SHUT_WR)",
    );
    calls::send(t, "client", &c.client, b"hello").context("send")?;
    calls::shutdown_write(t, "client", &c.client)?;
    t.pause();
    t.step(Server, "read until b''", "读到 b'' 为止");
    let data = calls::recv(t, "conn", &c.conn, 1024, 0).context("recv")?;
    let end = calls::recv(t, "conn", &c.conn, 1024, 0).context("recv")?;
    t.say(
        &format!(
            "b'' after {} bytes: end of the client's stream (a FIN), yet the client still \
             listens.",
            data.len()
        ),
        &format!(
            "读完 {} 字节后得到 b''：客户端的数据流结束了（FIN），但客户端还在听。",
            data.len()
        ),
    );
    debug_assert!(end.is_empty());
    t.pause();
    t.step(Server, "answer anyway", "照样回复");
    calls::send(t, "conn", &c.conn, &data.to_ascii_uppercase()).context("send")?;
    t.pause();
    t.step(Client, "the answer arrives", "回复照样收到");
    calls::recv(t, "client", &c.client, 1024, 0).context("recv")?;
    t.say(
        "A half-close ends one direction only: the way to say \"that was the whole \
         request\" without a framing, as rsh, nc -N and netecho send do at the end of \
         their input.",
        "半关闭只结束一个方向：不用分帧也能表示“请求说完了”，rsh、nc -N 和 netecho send \
         在输入结束时都这样做。",
    );
    t.note(
        "Windows names it SD_SEND (Python still spells it socket.SHUT_WR).",
        "Windows 里叫 SD_SEND（Python 里仍写作 socket.SHUT_WR）。",
    );
    Ok(())
}
