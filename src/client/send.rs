//! `netecho send`: one message from the command line, an interactive prompt on a terminal,
//! or one message per line when stdin is a pipe.

use std::io::{self, BufRead, IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use tracing::{debug, info, warn};

use crate::endpoint::Endpoint;
use crate::hexdump::{self, Way};

use super::exchange::{ClientConfig, Session};
use super::raw::RawClient;

/// The prompt of the lesson's client.
pub const PROMPT: &str = ">>> ";
/// The longest input line read as one message.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// What `send` does: to whom, over which socket, and which messages.
pub struct SendConfig {
    pub endpoint: Endpoint,
    pub client: ClientConfig,
    /// The one message to send; without it, messages come from stdin.
    pub message: Option<Vec<u8>>,
    /// Prompt with `>>> ` even when stdin is not a terminal.
    pub interactive: bool,
    /// Send each message this many times back to back, then read the replies (not raw).
    pub burst: Option<usize>,
    /// Dump every message both ways on stderr, as xxd does.
    pub hex: bool,
}

pub fn run(config: SendConfig) -> Result<()> {
    let endpoint = &config.endpoint;
    // A raw packet carries headers the raw client writes itself: no Session message.
    let Some(target) = endpoint.target() else {
        let mut client = RawClient::open(endpoint, &config.client)?;
        return each_message(&config, |msg, out| {
            show(config.hex, Way::Out, endpoint, msg);
            let reply = client.exchange(msg)?;
            show(config.hex, Way::In, endpoint, &reply);
            print_reply(out, &reply)
        });
    };
    let mut session = Session::open(&target, config.client.clone())?;
    each_message(&config, |msg, out| answer(&mut session, msg, &config, out))
}

/// The hex dump of one message, when --hex asked for it.
fn show(hex: bool, way: Way, endpoint: &Endpoint, data: &[u8]) {
    if hex {
        hexdump::dump(way, endpoint, data);
    }
}

/// Hands `exchange` the message on the command line, or each line of stdin (after a
/// prompt on a terminal, skipping empty lines as the lesson's client does).
fn each_message(
    config: &SendConfig,
    mut exchange: impl FnMut(&[u8], &mut io::StdoutLock<'static>) -> Result<()>,
) -> Result<()> {
    let mut out = io::stdout().lock();
    if let Some(msg) = &config.message {
        return exchange(msg, &mut out);
    }
    let stdin = io::stdin();
    let interactive = config.interactive || stdin.is_terminal();
    let mut input = stdin.lock();
    loop {
        if interactive {
            write!(out, "{PROMPT}").and_then(|_| out.flush())?;
        }
        let Some(line) = read_line(&mut input)? else {
            if interactive {
                writeln!(out)?;
            }
            return Ok(());
        };
        if line.is_empty() {
            continue;
        }
        exchange(&line, &mut out)?;
    }
}

/// Exchanges one message, or says why an empty one is not sent where the connection cannot
/// carry it (see [`crate::transport::message::Carrier::carries_empty`]).
fn answer(
    session: &mut Session,
    msg: &[u8],
    config: &SendConfig,
    out: &mut impl Write,
) -> Result<()> {
    let carrier = session.carrier();
    let proto = session.target().proto;
    let target = &config.endpoint;
    if msg.is_empty() && !carrier.carries_empty() {
        warn!(
            "empty message not sent: {proto} cannot carry an empty message (the server would \
             read 0 bytes as end of connection)"
        );
        return Ok(());
    }
    show(config.hex, Way::Out, target, msg);
    let Some(count) = config.burst else {
        let reply = session.exchange(msg)?;
        show(config.hex, Way::In, target, &reply);
        return print_reply(out, &reply);
    };
    let got = session.burst(msg, count)?;
    for reply in &got.replies {
        show(config.hex, Way::In, target, reply);
        print_reply(out, reply)?;
    }
    let bytes: usize = got.replies.iter().map(Vec::len).sum();
    info!(
        "burst: sent {count} messages of {} bytes back to back; got {bytes} bytes back in {} {}{}",
        msg.len(),
        got.replies.len(),
        carrier.unit(),
        if got.missing > 0 {
            format!(", {} replies missing", got.missing)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// One line of input without its line ending, as bytes (not necessarily UTF-8); `None` at
/// end of input.
fn read_line(input: &mut impl BufRead) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .context("read stdin")?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        bail!("an input line is longer than {MAX_LINE} bytes; split it");
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    debug!("read a {}-byte line", line.len());
    Ok(Some(line))
}

fn print_reply(out: &mut impl Write, reply: &[u8]) -> Result<()> {
    out.write_all(reply)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush())
        .context("write to stdout")
}
