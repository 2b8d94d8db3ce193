//! A datagram socket on an io_uring ring (udp, unix-dgram): a multishot recvmsg into
//! provided buffers; each reply is sent from the buffer its datagram came in, which goes
//! back to the kernel when the send completes.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use io_uring::{IoUring, cqueue, opcode, types};
use nix::sys::eventfd::{EfdFlags, EventFd};
use socket2::SockAddr;
use tracing::{debug, warn};

use crate::endpoint::Proto;
use crate::service::datagram::DatagramEcho;
use crate::service::stats::Stats;
use crate::signal::{Shutdown, Signal};
use crate::transport::unix::{self, ReplyPath};
use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::bufring::BufRing;
use super::{BATCH_WAIT, Op, TICK, complete, failed, push, ring};

/// Buffers: each holds recvmsg's header, the sender's address and the largest datagram.
const BUFS: u16 = 64;
/// struct io_uring_recvmsg_out: four u32s.
const HEADER: usize = 16;
/// How long replies in flight get at the stop.
const GRACE: Duration = Duration::from_secs(1);
const NAME: usize = std::mem::size_of::<libc::sockaddr_storage>();
/// Room for a Unix datagram's control data, as every other receive has: its sender's
/// credentials (SCM_CREDENTIALS), and descriptors a sender may pass, which are closed.
const CONTROL: usize = crate::transport::pktinfo::CONTROL;

/// Answers datagrams on a ring until a stop signal; returns the signal.
pub(crate) fn answer(
    sock: &DatagramSocket,
    echo: DatagramEcho,
    stats: &Stats,
    shutdown: &Shutdown,
) -> Result<Signal> {
    // A reply the kernel cannot take now is lost, as a datagram may be, rather than holding
    // its buffer until a client that does not read makes room.
    sock.set_nonblocking(true)?;
    let stop =
        EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).context("eventfd")?;
    thread::scope(|scope| {
        let stop_fd = stop.as_fd().as_raw_fd();
        let worker = thread::Builder::new()
            .name("uring-dgram".into())
            .spawn_scoped(scope, move || {
                let run = Worker::new(sock, echo, stats).and_then(|w| w.run(stop_fd));
                if let Err(e) = run {
                    warn!("uring datagram loop failed: {e:#}");
                }
            })
            .context("start a uring thread")?;
        let signal = loop {
            if let Some(signal) = shutdown.wait_signal(None)? {
                break signal;
            }
        };
        stop.write(1).context("wake the uring loop")?;
        let _ = worker.join();
        Ok(signal)
    })
}

/// A reply in flight: the message header the send reads, and whom it goes to.
struct Reply {
    hdr: libc::msghdr,
    iov: libc::iovec,
    to: Option<PeerAddr>,
    /// A Unix path sender's socket file, held open until the send completes.
    held: Option<ReplyPath>,
    len: usize,
}

struct Worker<'a> {
    ring: IoUring,
    bufs: BufRing,
    fd: RawFd,
    echo: DatagramEcho,
    stats: &'a Stats,
    /// What recvmsg is told: room for the sender's address, no control data.
    template: Box<libc::msghdr>,
    /// One per buffer, never moved (sends point into them).
    replies: Vec<Reply>,
    recv_armed: bool,
    /// Sends not yet completed, and those the last wake-up started.
    in_flight: usize,
    sends: usize,
    /// Whether the kernel can wait for a batch with a bound (min_wait, Linux 6.12).
    batches: bool,
    tick: Box<types::Timespec>,
}

impl<'a> Worker<'a> {
    fn new(sock: &DatagramSocket, echo: DatagramEcho, stats: &'a Stats) -> Result<Self> {
        let ring = ring().context("io_uring_setup")?;
        let batches = ring.params().is_feature_min_timeout();
        // A Unix datagram's sender's credentials decide whether its path may be answered.
        let control = if sock.proto() == Proto::UnixDgram {
            CONTROL
        } else {
            0
        };
        let bufs = BufRing::new(&ring, 0, BUFS, HEADER + NAME + control + MAX_MESSAGE)
            .context("register provided buffers")?;
        // SAFETY: msghdr and iovec are plain C structs, valid zeroed.
        let mut template: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        template.msg_namelen = NAME as u32;
        template.msg_controllen = control;
        let replies = (0..BUFS)
            .map(|_| Reply {
                hdr: unsafe { std::mem::zeroed() },
                iov: unsafe { std::mem::zeroed() },
                to: None,
                held: None,
                len: 0,
            })
            .collect();
        Ok(Worker {
            ring,
            bufs,
            fd: sock.as_fd().as_raw_fd(),
            echo,
            stats,
            template,
            replies,
            recv_armed: false,
            in_flight: 0,
            sends: 0,
            batches,
            tick: Box::new(types::Timespec::from(TICK)),
        })
    }

    fn run(mut self, stop: RawFd) -> Result<()> {
        let poll = opcode::PollAdd::new(types::Fd(stop), libc::POLLIN as u32);
        push(&mut self.ring, &poll.build().user_data(Op::Stop.data(0)))?;
        self.arm_tick()?;
        self.arm_recv()?;
        let mut done = Vec::new();
        let mut stopping: Option<Instant> = None;
        loop {
            // The socket is non-blocking, so a send completes within the submission: its
            // completion is waited for with the next datagram, one io_uring_enter per round
            // trip instead of two; the batch wait bounds how long it waits for the datagram.
            let want = match self.batches && stopping.is_none() {
                true => self.sends + 1,
                false => 1,
            };
            complete(&mut self.ring, &mut done, want, BATCH_WAIT.0).context("io_uring_enter")?;
            self.sends = 0;
            for &(data, result, flags) in &done {
                match Op::of(data) {
                    (Some(Op::Recv), _) => self.received(result, flags, stopping.is_some())?,
                    (Some(Op::Send), bid) => self.sent(bid as u16, result),
                    (Some(Op::Tick), _) => {
                        self.echo.peers.expire();
                        self.echo.report_drops(false);
                        self.arm_tick()?;
                    }
                    (Some(Op::Stop), _) => {
                        stopping = Some(Instant::now());
                        let cancel = opcode::AsyncCancel::new(Op::Recv.data(0));
                        push(
                            &mut self.ring,
                            &cancel.build().user_data(Op::Cancel.data(0)),
                        )?;
                    }
                    _ => {}
                }
            }
            self.bufs.publish();
            if let Some(since) = stopping {
                // The replies in flight are counted before the summary, within a bound.
                if self.in_flight == 0 || since.elapsed() >= GRACE {
                    self.echo.finish();
                    // Sends still in flight point into the replies: kept to the process's end.
                    std::mem::forget(std::mem::take(&mut self.replies));
                    return Ok(());
                }
            } else if !self.recv_armed {
                self.arm_recv()?;
            }
        }
    }

    fn arm_tick(&mut self) -> Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick);
        push(&mut self.ring, &timeout.build().user_data(Op::Tick.data(0)))?;
        Ok(())
    }

    fn arm_recv(&mut self) -> Result<()> {
        self.recv_armed = true;
        let recv = opcode::RecvMsgMulti::new(types::Fd(self.fd), &*self.template, 0);
        push(&mut self.ring, &recv.build().user_data(Op::Recv.data(0)))?;
        Ok(())
    }

    fn received(&mut self, result: i32, flags: u32, stopping: bool) -> Result<()> {
        if !cqueue::more(flags) {
            self.recv_armed = false;
        }
        if stopping {
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.give_back(bid);
            }
            return Ok(());
        }
        let Some(bid) = cqueue::buffer_select(flags) else {
            if result < 0 && result != -libc::ENOBUFS {
                debug!("recvmsg: {} (ignored)", failed(result));
            }
            return Ok(());
        };
        let len = (result.max(0) as usize).min(self.bufs.size());
        let buf = self.bufs.get(bid, len);
        let Some((received, (from, held, uid), start)) = parse(buf, &self.template) else {
            self.bufs.give_back(bid);
            return Ok(());
        };
        let payload = &mut buf[start..];
        let Some(n) = self.echo.answer_in_place(received, payload, (&from, uid)) else {
            self.bufs.give_back(bid);
            return Ok(());
        };
        if let Err(e) = unix::reply_addr(&from, held.as_ref()) {
            debug!("{from}: reply not sent: {e}");
            self.echo.count(&from, n, 0, self.stats);
            self.bufs.give_back(bid);
            return Ok(());
        }
        let reply = &mut self.replies[bid as usize];
        reply.iov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: n,
        };
        let to = reply.to.insert(from);
        reply.held = held;
        let name = unix::reply_addr(to, reply.held.as_ref()).expect("its address was checked");
        reply.hdr.msg_name = name.as_ptr() as *mut libc::c_void;
        reply.hdr.msg_namelen = name.len();
        reply.hdr.msg_iov = &mut reply.iov;
        reply.hdr.msg_iovlen = 1;
        reply.len = n;
        let send =
            opcode::SendMsg::new(types::Fd(self.fd), &reply.hdr).flags(libc::MSG_NOSIGNAL as u32);
        push(
            &mut self.ring,
            &send.build().user_data(Op::Send.data(bid as usize)),
        )?;
        self.in_flight += 1;
        self.sends += 1;
        Ok(())
    }

    fn sent(&mut self, bid: u16, result: i32) {
        self.in_flight -= 1;
        let reply = &mut self.replies[bid as usize];
        let to = reply.to.take();
        reply.held = None;
        if let Some(to) = &to {
            let sent = if result >= 0 {
                reply.len
            } else {
                debug!("{to}: reply not sent: {}", failed(result));
                0
            };
            self.echo.count(to, reply.len, sent, self.stats);
        }
        self.bufs.give_back(bid);
    }
}

/// A datagram's sender: its address, a Unix path sender's socket file held for the reply,
/// and a Unix sender's uid.
type Sender = (PeerAddr, Option<ReplyPath>, Option<u32>);

/// What one recvmsg completion holds: how it was received, from whom (and a Unix path
/// sender's socket file, held for the reply: see [`unix::vouched`]; a Unix sender's uid, for
/// its reply budget), and where the payload starts in the buffer.
fn parse(buf: &[u8], template: &libc::msghdr) -> Option<(Received, Sender, usize)> {
    let out = types::RecvMsgOut::parse(buf, template).ok()?;
    let real = out.incoming_payload_len() as usize;
    let received = if out.is_payload_truncated() {
        Received::Truncated(real)
    } else {
        Received::Data(real)
    };
    let name = out.name_data();
    // SAFETY: sockaddr_storage is valid zeroed; at most its size is copied into it.
    let (_, from) = unsafe {
        SockAddr::try_init(|storage, len| {
            let n = name.len().min(NAME);
            std::ptr::copy_nonoverlapping(name.as_ptr(), storage.cast::<u8>(), n);
            *len = n as libc::socklen_t;
            Ok(())
        })
    }
    .ok()?;
    let mut from = (PeerAddr(from), None);
    let mut uid = None;
    if template.msg_controllen > 0 {
        let cred = credentials(&out);
        uid = cred.map(|c| c.uid);
        from = unix::vouched(from.0, cred);
    }
    let start = HEADER + template.msg_namelen as usize + template.msg_controllen;
    Some((received, (from.0, from.1, uid), start))
}

/// The sender's credentials in a multishot recvmsg's control data, read as recvmsg's
/// own are: through a header pointing at an aligned copy of them.
fn credentials(out: &types::RecvMsgOut<'_>) -> Option<libc::ucred> {
    let data = out.control_data();
    let mut control = [0u64; CONTROL / 8];
    let n = data.len().min(CONTROL);
    // SAFETY: `control` has room for CONTROL bytes, and at most that many are copied.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), control.as_mut_ptr().cast(), n) };
    // SAFETY: msghdr is a plain C struct, valid zeroed.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = n;
    if out.is_control_data_truncated() {
        hdr.msg_flags = libc::MSG_CTRUNC;
    }
    // SAFETY: the header's control points at `n` bytes of control messages as the kernel
    // wrote them, aligned as cmsghdr needs.
    unsafe { unix::credentials(&hdr) }
}
