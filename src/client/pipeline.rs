//! `send` over a stream or seqpacket socket, as nc talks: the input goes out from one thread
//! (read from the input by another, which nobody waits for) while this one prints what comes
//! back, and the end of the input shuts down the writing side (shutdown(SHUT_WR)). On an
//! unframed stream nothing is cut: stdin's bytes go out as they come and the server's bytes
//! are handed over as they come ([`Cut::Bytes`]). A server that answers only at the end of
//! its input, as a block-buffered filter does (`socat EXEC:'tr a-z A-Z'`), is answered too,
//! and send waits for the server to finish and close, for at most --timeout of silence once
//! the input ended.
//!
//! While the input goes on, a message sent and then --timeout of silence from the server (no
//! reply byte, nothing taken) ends send with an error: a wedged server cannot hold a
//! script whose input stays open.
//!
//! Before shutting down, send waits a moment (at most [`GRACE`] of silence) for the replies
//! still owed: `ncat --exec` closes the whole connection at the client's shutdown, so a
//! program that answers line by line must be heard first.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use tracing::warn;

use super::exchange::{Alert, alert_shape, tls_alert_error, waited};
use crate::endpoint::{SocketKind, Target};
use crate::error::{Call, socket_error};
use crate::transport::framing::Framing;
use crate::transport::{Conn, MAX_MESSAGE, Received};

/// How often the reader looks whether the input has ended.
const TICK: Duration = Duration::from_millis(100);
/// The longest silence waited through, replies still owed, before shutting down writing.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// What the reader tells the writer: replies cut so far (bytes, when nothing is cut), and
/// when data last came; and what the writer tells the reader: since when the server owes an
/// answer to what was sent, and whether sending failed (its error is the one to tell).
struct Heard {
    replies: AtomicUsize,
    last: Mutex<Instant>,
    owing: Mutex<Owing>,
    failed: AtomicBool,
}

/// Since when the server has been silent after a send, unless data came since; none while
/// a send is under way (SO_SNDTIMEO bounds that).
#[derive(Default)]
struct Owing {
    since: Option<Instant>,
    sending: bool,
}

impl Heard {
    fn got(&self, replies: usize) {
        self.replies.fetch_add(replies, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.owing().since = None;
    }

    fn owing(&self) -> std::sync::MutexGuard<'_, Owing> {
        self.owing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Around each send: from its start the server owes an answer, and data that comes
    /// while it goes pays it (a reply may come before the send returns).
    fn sending(&self, sending: bool) {
        let mut owing = self.owing();
        owing.sending = sending;
        if sending || owing.since.is_some() {
            owing.since = Some(Instant::now());
        }
    }

    /// The end of the input, told to the server by shutdown(SHUT_WR): a server still owing
    /// an answer may give it now (`sort` does), so its --timeout starts again.
    fn ended(&self) {
        let mut owing = self.owing();
        if owing.since.is_some() {
            owing.since = Some(Instant::now());
        }
    }

    /// Whether the server owes an answer and has been silent for `timeout`.
    fn overdue(&self, timeout: Duration) -> bool {
        let owing = self.owing();
        !owing.sending && owing.since.is_some_and(|since| since.elapsed() >= timeout)
    }

    /// Waits until `sent` replies (or bytes) came, or the server was silent for `grace`.
    fn owed(&self, sent: usize, grace: Duration) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        while self.replies.load(Ordering::Relaxed) < sent {
            let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= grace {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// How replies are cut out of what arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Each recv is one reply (seqpacket).
    Message,
    /// Nothing: bytes as they come (an unframed stream, as nc shows it).
    Bytes,
    /// One frame of this framing.
    Frame(Framing, usize),
}

impl Cut {
    pub(crate) fn of(kind: SocketKind, framing: Framing, max_frame: usize) -> Cut {
        match (kind, framing) {
            (SocketKind::Stream, Framing::None) => Cut::Bytes,
            (SocketKind::Stream, framing) => Cut::Frame(framing, max_frame),
            _ => Cut::Message,
        }
    }

    /// What a message or reply of `len` bytes counts for, in what the server owes: a byte
    /// each where nothing is cut, else one.
    fn units(self, len: usize) -> usize {
        match self {
            Cut::Bytes => len,
            _ => 1,
        }
    }
}

/// Sends each message `next` gives until it gives `None`, then shuts down writing; hands
/// each reply to `reply` as it is cut; returns once the server closed, or was silent for
/// `timeout` after the input ended having answered the last message; fails when it is
/// silent that long owing an answer. Over `plain` text a TLS alert for the first reply is
/// refused: the server speaks TLS.
pub(crate) fn run(
    conn: &Conn,
    target: &Target,
    cut: Cut,
    plain: bool,
    timeout: Duration,
    next: impl FnMut() -> Result<Option<Vec<u8>>> + Send + 'static,
    reply: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let ended = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let heard = Heard {
        replies: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
        owing: Mutex::default(),
        failed: AtomicBool::new(false),
    };
    let messages = messages(next)?;
    let (lengths, sent) = mpsc::channel::<usize>();
    thread::scope(|scope| {
        let writing = thread::Builder::new().name("send".into());
        let writer = writing.spawn_scoped(scope, || {
            let messages = messages;
            let mut count = 0;
            let result = (|| {
                while let Some(msg) = next_message(&messages, &stop)? {
                    count += cut.units(msg.len());
                    let mut wire = Vec::with_capacity(msg.len() + 4);
                    match cut {
                        Cut::Frame(framing, _) => framing.encode(&msg, &mut wire),
                        _ => wire.extend_from_slice(&msg),
                    }
                    // Known before the reply can come, so the reader can cut it.
                    let _ = lengths.send(msg.len());
                    heard.sending(true);
                    let sent = conn.send_all(&wire);
                    heard.sending(false);
                    sent.map_err(|e| waited(Call::Send, target, timeout, e))?;
                }
                Ok(())
            })();
            heard.failed.store(result.is_err(), Ordering::Relaxed);
            heard.owed(count, GRACE.min(timeout));
            let _ = conn.shutdown_write();
            heard.ended();
            ended.store(true, Ordering::Relaxed);
            drop(lengths);
            result
        });
        let writer = writer.map_err(|e| anyhow!("cannot start the sending thread: {e}"))?;
        let mut reader = Reader::new(cut, target, &heard);
        reader.fresh = plain;
        let read = reader.read(conn, &sent, &ended, timeout, reply);
        // The server closed, or failed send: the input still to come is not waited for.
        stop.store(true, Ordering::Relaxed);
        let wrote = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the sending thread failed")));
        read.and(wrote)
    })
}

/// One message of the input, or none at its end.
type Message = Result<Option<Vec<u8>>>;

/// The messages `next` gives, from a thread of their own that nobody waits for: reading the
/// input may block for ever (a pipe that stays open), and send ends without it once the
/// server closed or failed. One message waits in the channel at most.
fn messages(mut next: impl FnMut() -> Message + Send + 'static) -> Result<mpsc::Receiver<Message>> {
    let (tx, rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let got = next();
                let end = !matches!(got, Ok(Some(_)));
                if tx.send(got).is_err() || end {
                    return;
                }
            }
        })
        .map_err(|e| anyhow!("cannot start the thread that reads the input: {e}"))?;
    Ok(rx)
}

/// The next message of the input; none at its end or once `stop` is set.
fn next_message(messages: &mpsc::Receiver<Message>, stop: &AtomicBool) -> Message {
    loop {
        match messages.recv_timeout(TICK) {
            Ok(got) => return got,
            Err(mpsc::RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(_) => return Ok(None),
        }
    }
}

/// The replies owed and the bytes not yet cut into one.
struct Reader<'t> {
    cut: Cut,
    target: &'t Target,
    heard: &'t Heard,
    owed: VecDeque<usize>,
    sent: usize,
    held: Vec<u8>,
    /// Nothing came yet that could not be the start of a TLS alert.
    fresh: bool,
}

impl<'t> Reader<'t> {
    fn new(cut: Cut, target: &'t Target, heard: &'t Heard) -> Reader<'t> {
        Reader {
            cut,
            target,
            heard,
            owed: VecDeque::new(),
            sent: 0,
            held: Vec::new(),
            fresh: false,
        }
    }

    fn read(
        mut self,
        conn: &Conn,
        sent: &mpsc::Receiver<usize>,
        ended: &AtomicBool,
        timeout: Duration,
        reply: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let target = self.target;
        let fail = |e: io::Error| socket_error(Call::Recv, target, &e);
        conn.set_read_timeout(Some(TICK)).map_err(fail)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut quiet_since: Option<Instant> = None;
        loop {
            let got = conn.recv(&mut buf);
            self.owe(sent);
            match got {
                Ok(Received::Data(n)) => {
                    quiet_since = None;
                    self.take(&buf[..n], reply)?;
                }
                Ok(Received::Truncated(n)) => {
                    warn!("a reply longer than {} bytes was cut short", buf.len());
                    self.take(&buf[..n.min(buf.len())], reply)?;
                }
                Ok(Received::Closed) => break,
                Err(e) if is_tick(&e) => {
                    // The writer's error is the one to tell.
                    if self.heard.failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    if self.heard.overdue(timeout) {
                        return Err(waited(Call::Recv, target, timeout, e));
                    }
                    if !ended.load(Ordering::Relaxed) {
                        continue;
                    }
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= timeout {
                        self.owe(sent);
                        warn!(
                            "{}: nothing more from the server within --timeout {:?} after the \
                             input ended; closing",
                            self.target, timeout
                        );
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(e)),
            }
        }
        self.finish(reply)
    }

    /// Takes the lengths of the messages sent since the last look (bytes as they come owe
    /// no reply of their own).
    fn owe(&mut self, sent: &mpsc::Receiver<usize>) {
        while let Ok(len) = sent.try_recv() {
            if self.cut != Cut::Bytes {
                self.owed.push_back(len);
                self.sent += 1;
            }
        }
    }

    /// Cuts and hands over every whole reply in what has come so far.
    fn take(&mut self, data: &[u8], reply: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if self.cut == Cut::Message || (self.cut == Cut::Bytes && !self.fresh) {
            self.owed.pop_front();
            self.heard.got(self.cut.units(data.len()));
            return reply(data);
        }
        self.held.extend_from_slice(data);
        self.heard.got(0);
        if self.fresh {
            match alert_shape(&self.held) {
                Alert::Whole => return Err(tls_alert_error()),
                // The rest of it is on its way (or the server closes, and finish shows it).
                Alert::Start => return Ok(()),
                Alert::No => self.fresh = false,
            }
        }
        while let Some(one) = self.next_reply()? {
            self.owed.pop_front();
            self.heard.got(self.cut.units(one.len()));
            reply(&one)?;
        }
        Ok(())
    }

    /// The next whole reply in `held`, if there is one.
    fn next_reply(&mut self) -> Result<Option<Vec<u8>>> {
        let end = match self.cut {
            Cut::Message => None,
            Cut::Bytes => (!self.held.is_empty()).then_some(self.held.len()),
            Cut::Frame(Framing::Line, _) => self.held.iter().position(|&b| b == b'\n'),
            Cut::Frame(_, max) => {
                let Some(head) = self.held.first_chunk::<4>() else {
                    return Ok(None);
                };
                let len = u32::from_be_bytes(*head) as usize;
                if len > max {
                    bail!(
                        "{}: a {len}-byte reply frame is over --max-frame {max}",
                        self.target
                    );
                }
                let whole = self.held.len() >= 4 + len;
                return Ok(whole.then(|| {
                    let frame = self.held[4..4 + len].to_vec();
                    self.held.drain(..4 + len);
                    frame
                }));
            }
        };
        Ok(end.map(|end| {
            let one = self.held[..end].to_vec();
            let skip = usize::from(matches!(self.cut, Cut::Frame(Framing::Line, _)));
            self.held.drain(..(end + skip).min(self.held.len()));
            one
        }))
    }

    /// What is left when the server closed: a last partial reply, and a word about replies
    /// that never came.
    fn finish(mut self, reply: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if !self.held.is_empty() {
            let rest = std::mem::take(&mut self.held);
            self.owed.pop_front();
            reply(&rest)?;
        }
        if !self.owed.is_empty() {
            warn!(
                "{}: {} of {} messages got no reply before the server closed",
                self.target,
                self.owed.len(),
                self.sent
            );
        }
        Ok(())
    }
}

/// A read that ended for the tick, not for the peer.
fn is_tick(e: &io::Error) -> bool {
    crate::transport::is_timeout(e)
}
