//! The connection a demonstration starts from: the lesson's server and client, connected
//! over loopback, every call shown as one step.

use anyhow::{Context, Result};
use socket2::{SockAddr, Socket, Type};

use super::calls::{self, loopback};
use super::teacher::{Teacher, Who};

/// A listening phone, a client connected to it, and the server's side of the call.
pub(super) struct Call {
    pub phone: Socket,
    pub client: Socket,
    pub conn: Socket,
}

/// The listening phone of the lesson's server, bound to a free port on loopback.
pub(super) fn phone(t: &mut Teacher, backlog: i32) -> Result<(Socket, SockAddr)> {
    t.step(
        Who::Server,
        "socket, bind and listen, as in the lesson",
        "和课上一样：socket、bind、listen",
    );
    let phone = calls::socket(t, "phone", Type::STREAM)?;
    calls::reuseaddr(t, "phone", &phone)?;
    let addr = calls::bind(t, "phone", &phone, &loopback()).context("bind")?;
    calls::listen(t, "phone", &phone, backlog)?;
    t.pause();
    Ok((phone, addr))
}

/// A connection as the lesson makes one: the phone, the client's connect, the accept.
pub(super) fn call(t: &mut Teacher) -> Result<Call> {
    let (phone, addr) = phone(t, 5)?;
    t.step(
        Who::Client,
        "dial: socket, connect",
        "拨号：socket、connect",
    );
    let client = calls::socket(t, "client", Type::STREAM)?;
    calls::connect(t, "client", &client, &addr)?;
    t.pause();
    t.step(Who::Server, "answer: accept", "接听：accept");
    let conn = calls::accept(t, "phone", &phone)?;
    t.pause();
    Ok(Call {
        phone,
        client,
        conn,
    })
}
