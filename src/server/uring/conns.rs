//! Connections on io_uring rings (tcp, unix, unix-seqpacket).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use io_uring::{IoUring, cqueue, opcode, types};
use tracing::info;

use crate::endpoint::SocketKind;
use crate::lifecycle::accept_failed;
use crate::logging::Throttle;
use crate::server::event::{Loops, retire_loop};
use crate::server::{Sched, Server};
use crate::service::echo::PendingShare;
use crate::service::{ConnEnd, Drive, InPlace, Service, Session, Step};
use crate::signal::{Shutdown, Signal};
use crate::transport::{Listener, MAX_MESSAGE};

use super::bufring::BufRing;
use super::{Op, TICK, batch_wait, complete, failed, push, ring};

/// Provided buffers per ring for a stream: 1024 of 8 KiB (8 MiB a ring, not a connection).
/// A receive holds its buffer only until its completion is served, but one wake-up may
/// bring a completion from every connection at once; one that finds none left is armed
/// again after the wake-up.
const STREAM_BUFS: (u16, usize) = (1024, 8 * 1024);
/// For seqpacket, a buffer holds the largest message answered.
const PACKET_BUFS: (u16, usize) = (128, MAX_MESSAGE);
/// Reply bytes a connection keeps room for between bursts.
const KEPT: usize = 64 * 1024;
/// How long connections get to finish after the stop.
const GRACE: Duration = Duration::from_secs(2);
/// Requests one wake-up must have brought before the ring waits for a batch: below it, each
/// request is answered as it comes, so a few clients see no added wait.
const BATCH_FROM: usize = 4;
/// The most requests a ring waits for at once.
const BATCH_MAX: usize = 64;
/// Connections a ring can register with the kernel (a sparse file table, 8 bytes an entry):
/// their receives and sends then skip the process's descriptor table and its reference
/// counts. Connections beyond it, or the process's descriptor limit, use their descriptor.
const FIXED_FILES: u32 = 16384;

/// Serves with `threads` rings until a stop signal; returns the signal.
pub(crate) fn serve<S: Service>(
    listener: &Listener,
    server: &Server<S>,
    shutdown: &Shutdown,
    threads: usize,
    sched: Sched,
    max_pending: usize,
) -> Result<Signal> {
    crate::server::event::run_loops("uring", threads, server, shutdown, |n, stop, loops| {
        crate::server::sched::enter(sched, "uring");
        Worker::new(listener, server, loops, n, max_pending)?.run(stop.as_fd().as_raw_fd())
    })
}

/// A connection on a ring, and what is in flight for it.
struct Slot<T> {
    session: T,
    fd: RawFd,
    /// Whether the connection is in the ring's file table, at its token.
    fixed: bool,
    /// Replies not yet handed to a send.
    out: Vec<u8>,
    /// On seqpacket: replies one message each, in order.
    queue: VecDeque<Vec<u8>>,
    /// The bytes of the send in flight (kept until it completes), and how far it got.
    sending: Vec<u8>,
    sent: usize,
    /// A reply sent from the provided buffer it came in (its id and length) instead of
    /// `sending`: the buffer goes back to the kernel once the send is done.
    lent: Option<(u16, usize)>,
    send_busy: bool,
    recv_armed: bool,
    /// How the connection ended, once it has: closed when nothing is in flight.
    ending: Option<ConnEnd>,
    last_active: Instant,
    /// Its replies waiting on the peer, against the process's budget for them.
    share: PendingShare,
}

impl<T> Slot<T> {
    #[inline]
    fn pending(&self) -> usize {
        // Only seqpacket queues: a stream, asked twice a request, skips the walk.
        let queued = match self.queue.is_empty() {
            true => 0,
            false => self.queue.iter().map(Vec::len).sum::<usize>(),
        };
        let sending = self.lent.map_or(self.sending.len(), |(_, len)| len);
        self.out.len() + sending - self.sent + queued
    }
}

struct Worker<'a, S: Service> {
    ring: IoUring,
    bufs: BufRing,
    group: u16,
    listener: &'a Listener,
    server: &'a Server<S>,
    loops: &'a Loops<S::Session>,
    index: usize,
    packets: bool,
    max_pending: usize,
    slots: Vec<Option<Slot<S::Session>>>,
    free: Vec<usize>,
    /// Connections whose receive stopped for want of a buffer, or while throttled.
    rearm: Vec<usize>,
    /// Provided buffers lent to sends, and the most that may be: a send to a peer that
    /// does not read holds its buffer, and the receives keep the rest.
    lent: usize,
    lend_max: usize,
    inbox_word: Box<[u8; 8]>,
    tick: Box<types::Timespec>,
    stopping: Option<Instant>,
    /// When the last wake-up began: the clock read once for all its completions.
    now: Instant,
    /// Whether the kernel can wait for a batch with a bound (min_wait, Linux 6.12).
    batches: bool,
    /// Entries of the ring's file table (0: none could be registered).
    fixed_files: u32,
    /// Requests the last wake-up brought, and sends it started (each completes on its own).
    recvs: usize,
    sends: usize,
    /// Out of file descriptors: no accept armed until the next tick.
    accept_paused: bool,
}

impl<'a, S: Service> Worker<'a, S> {
    fn new(
        listener: &'a Listener,
        server: &'a Server<S>,
        loops: &'a Loops<S::Session>,
        index: usize,
        max_pending: usize,
    ) -> Result<Self> {
        let ring = ring().context("io_uring_setup")?;
        let ring_batches = ring.params().is_feature_min_timeout();
        let packets = listener.kind() == SocketKind::SeqPacket;
        let (count, size) = if packets { PACKET_BUFS } else { STREAM_BUFS };
        let group = 0;
        let bufs = BufRing::new(&ring, group, count, size).context("register provided buffers")?;
        let fixed_files = fixed_table(&ring);
        Ok(Worker {
            ring,
            bufs,
            group,
            listener,
            server,
            loops,
            index,
            packets,
            max_pending,
            slots: Vec::new(),
            free: Vec::new(),
            rearm: Vec::new(),
            lent: 0,
            lend_max: count as usize / 2,
            inbox_word: Box::new([0; 8]),
            tick: Box::new(types::Timespec::from(TICK)),
            stopping: None,
            now: Instant::now(),
            batches: ring_batches,
            fixed_files,
            recvs: 0,
            sends: 0,
            accept_paused: false,
        })
    }

    fn run(mut self, stop: RawFd) -> Result<()> {
        self.arm_accept()?;
        self.arm_inbox()?;
        let poll = opcode::PollAdd::new(types::Fd(stop), libc::POLLIN as u32);
        push(&mut self.ring, &poll.build().user_data(Op::Stop.data(0)))?;
        self.arm_tick()?;
        let mut done = Vec::new();
        loop {
            let want = self.want();
            let wait = batch_wait(self.slots.len() - self.free.len());
            complete(&mut self.ring, &mut done, want, wait).context("io_uring_enter")?;
            self.now = Instant::now();
            self.sends = 0;
            self.recvs = 0;
            // The tick's look at idle connections comes after every other completion of
            // the wake-up: a ring that stalled finds the bytes that came meanwhile first.
            let mut ticked = false;
            for &(data, result, flags) in &done {
                match Op::of(data) {
                    (Some(Op::Tick), _) => ticked = true,
                    (op, token) => self.completed(op, token, result, flags)?,
                }
            }
            if ticked {
                self.close_idle();
                self.resume_accept()?;
                self.arm_tick()?;
            }
            self.bufs.publish();
            for token in std::mem::take(&mut self.rearm) {
                self.arm_recv(token)?;
            }
            if let Some(since) = self.stopping {
                let live = self.slots.iter().any(Option::is_some);
                if !live || since.elapsed() >= GRACE {
                    self.close_all(|| ConnEnd::Stopped);
                    return Ok(());
                }
            }
        }
    }

    /// Completions to wait for: the sends just started (a send that finds room completes
    /// within the submission) and one request, or on a busy ring about as many requests as
    /// the last wake-up brought, at most one per two connections (each has one request in
    /// flight when its client waits for the reply). Waiting for a send's completion with
    /// the next request makes a ping-pong round trip one io_uring_enter, not two; the batch
    /// wait bounds how long any completion waits for the rest.
    fn want(&self) -> usize {
        if !self.batches || self.stopping.is_some() {
            return 1;
        }
        if self.recvs < BATCH_FROM {
            return self.sends + 1;
        }
        let live = self.slots.len() - self.free.len();
        self.sends + self.recvs.min(BATCH_MAX).min(live / 2).max(1)
    }

    fn completed(&mut self, op: Option<Op>, token: usize, result: i32, flags: u32) -> Result<()> {
        match op {
            Some(Op::Accept) => self.accepted(result, flags)?,
            Some(Op::Recv) => {
                self.recvs += 1;
                self.received(token, result, flags)?
            }
            Some(Op::Send) => self.sent(token, result)?,
            Some(Op::Inbox) => {
                self.take_inbox();
                if self.stopping.is_none() {
                    self.arm_inbox()?;
                }
            }
            Some(Op::Stop) => self.stop(),
            Some(Op::Tick) | Some(Op::Cancel) | None => {}
        }
        Ok(())
    }

    fn arm_accept(&mut self) -> Result<()> {
        let fd = types::Fd(self.listener.as_fd().as_raw_fd());
        let accept = opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC);
        push(
            &mut self.ring,
            &accept.build().user_data(Op::Accept.data(0)),
        )?;
        Ok(())
    }

    fn arm_inbox(&mut self) -> Result<()> {
        let fd = types::Fd(self.loops.wake(self.index).as_fd().as_raw_fd());
        let read = opcode::Read::new(fd, self.inbox_word.as_mut_ptr(), 8);
        push(&mut self.ring, &read.build().user_data(Op::Inbox.data(0)))?;
        Ok(())
    }

    fn arm_tick(&mut self) -> Result<()> {
        let timeout = opcode::Timeout::new(&*self.tick);
        push(&mut self.ring, &timeout.build().user_data(Op::Tick.data(0)))?;
        Ok(())
    }

    fn accepted(&mut self, result: i32, flags: u32) -> Result<()> {
        if self.stopping.is_some() {
            if result >= 0 {
                // SAFETY: a descriptor the accept just made, owned by nobody else.
                drop(unsafe { OwnedFd::from_raw_fd(result) });
            }
            return Ok(());
        }
        if result < 0 {
            // Out of file descriptors (which ends a multishot accept), the ring accepts again
            // at its next tick instead of meeting the error at once.
            self.accept_paused |= accept_failed(&failed(result));
        } else {
            // SAFETY: as above.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            self.admit(fd);
        }
        if !cqueue::more(flags) && !self.accept_paused {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// The accept armed again at a tick after the ring ran out of file descriptors.
    fn resume_accept(&mut self) -> Result<()> {
        if std::mem::take(&mut self.accept_paused) && self.stopping.is_none() {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// Admits a new connection and gives it to the ring holding the fewest.
    fn admit(&mut self, fd: OwnedFd) {
        let conn = match self.listener.adopt(fd) {
            Ok(conn) => conn,
            // Reset by its peer between the accept and getpeername: nobody to serve, and
            // its address went with it (a multishot accept does not keep one).
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                static RESET: Throttle = Throttle::new();
                if let Some(more) = RESET.allow() {
                    info!(
                        "{}: a client reset its connection before it was served; its address \
                         is gone with it{more}",
                        self.listener.proto()
                    );
                }
                return;
            }
            Err(e) => {
                accept_failed(&e);
                return;
            }
        };
        let Some(session) = self.server.admit(conn, Drive::Completion) else {
            return;
        };
        if let Some(session) = self.loops.hand_over(self.index, session) {
            self.register(session);
        }
    }

    fn take_inbox(&mut self) {
        for session in self.loops.take(self.index) {
            self.register(session);
        }
    }

    fn register(&mut self, mut session: S::Session) {
        // Every session ends before the server's summary (close_all): counting on its own
        // tally keeps the rings off the shared totals' cache line for every message.
        session.count_at_end();
        let token = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let fd = session.conn().as_fd().as_raw_fd();
        let fixed = token < self.fixed_files as usize
            && self
                .ring
                .submitter()
                .register_files_update(token as u32, &[fd])
                .ok()
                == Some(1);
        self.slots[token] = Some(Slot {
            session,
            fd,
            fixed,
            out: Vec::new(),
            queue: VecDeque::new(),
            sending: Vec::new(),
            sent: 0,
            lent: None,
            send_busy: false,
            recv_armed: false,
            ending: None,
            last_active: Instant::now(),
            share: PendingShare::new(self.max_pending),
        });
        self.rearm.push(token);
    }

    fn arm_recv(&mut self, token: usize) -> Result<()> {
        let Some(slot) = self.slots.get_mut(token).and_then(Option::as_mut) else {
            return Ok(());
        };
        if slot.recv_armed || slot.ending.is_some() || slot.share.throttled(slot.pending()) {
            return Ok(());
        }
        slot.recv_armed = true;
        // MSG_TRUNC: a seqpacket message larger than its buffer completes with its real length.
        let flags = if self.packets { libc::MSG_TRUNC } else { 0 };
        // Past the process's budget for waiting replies, one buffer a receive (a multishot
        // one takes all the socket holds before its connection can be throttled), and on a
        // stream no more than what is left of the connection's share.
        let small = slot.share.reads_small();
        let size = match small && !self.packets {
            true => slot.share.stream_read(slot.pending()).min(self.bufs.size()),
            false => self.bufs.size(),
        } as u32;
        let group = self.group;
        // The same receive on a registered file or a plain descriptor (two types).
        macro_rules! recv {
            ($fd:expr) => {
                match small {
                    true => opcode::Recv::new($fd, std::ptr::null_mut(), size)
                        .buf_group(group)
                        .flags(flags)
                        .build()
                        .flags(io_uring::squeue::Flags::BUFFER_SELECT),
                    false => opcode::RecvMulti::new($fd, group).flags(flags).build(),
                }
            };
        }
        let recv = match slot.fixed {
            true => recv!(types::Fixed(token as u32)),
            false => recv!(types::Fd(slot.fd)),
        };
        push(&mut self.ring, &recv.user_data(Op::Recv.data(token)))?;
        Ok(())
    }

    fn received(&mut self, token: usize, result: i32, flags: u32) -> Result<()> {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let Some(slot) = self.slots.get_mut(token).and_then(Option::as_mut) else {
            return Ok(());
        };
        if !more {
            slot.recv_armed = false;
            if result > 0 {
                // A receive of one buffer: the next is armed unless throttled.
                self.rearm.push(token);
            }
        }
        slot.last_active = self.now;
        if result == -libc::ENOBUFS || result == -libc::ECANCELED {
            // Out of buffers for now, or stopped while throttled: taken up again later.
            self.rearm.push(token);
            return self.flush(token);
        }
        let mut lent = false;
        if slot.ending.is_none() {
            let end = if result < 0 {
                Some(ConnEnd::Failed(failed(result)))
            } else {
                // Only a reply that goes next may be sent from its buffer.
                let lend = !self.packets
                    && self.lent < self.lend_max
                    && slot.lent.is_none()
                    && slot.out.is_empty()
                    && slot.sent == slot.sending.len();
                let end = serve_bytes(
                    slot,
                    &mut self.bufs,
                    bid,
                    result as usize,
                    self.packets,
                    lend,
                );
                // Lent now: a send from an earlier buffer may still be under way.
                lent = lend && slot.lent.is_some();
                end
            };
            let pending = slot.pending();
            slot.share.hold(pending);
            if let Some(end) = end {
                self.end(token, end);
            } else if slot.recv_armed && slot.share.throttled(pending) {
                // A peer that does not read its replies is not read from.
                let cancel = opcode::AsyncCancel::new(Op::Recv.data(token));
                push(
                    &mut self.ring,
                    &cancel.build().user_data(Op::Cancel.data(token)),
                )?;
            }
        }
        match bid {
            Some(_) if lent => self.lent += 1,
            Some(bid) => self.bufs.give_back(bid),
            None => {}
        }
        self.flush(token)
    }

    fn end(&mut self, token: usize, end: ConnEnd) {
        let Some(slot) = self.slots.get_mut(token).and_then(Option::as_mut) else {
            return;
        };
        if slot.ending.is_none() {
            slot.ending = Some(end);
        }
        if slot.recv_armed {
            let cancel = opcode::AsyncCancel::new(Op::Recv.data(token));
            let _ = push(
                &mut self.ring,
                &cancel.build().user_data(Op::Cancel.data(token)),
            );
        }
    }
}

/// Registers a sparse file table as large as FIXED_FILES and the descriptor limit allow;
/// returns its entries, 0 when the kernel would not have one.
fn fixed_table(ring: &IoUring) -> u32 {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| soft);
    let entries = FIXED_FILES.min(limit.min(u32::MAX as u64) as u32);
    match ring.submitter().register_files_sparse(entries) {
        Ok(()) => entries,
        Err(_) => 0,
    }
}

/// Hands one receive's bytes (`len`, in provided buffer `bid` if one was taken) to the
/// session; its replies join what the slot sends. When `lend`, a reply the session leaves
/// where it came in is sent from the buffer itself (not copied): the slot holds the buffer
/// (`lent`) until that send is done.
fn serve_bytes<T: Session>(
    slot: &mut Slot<T>,
    bufs: &mut BufRing,
    bid: Option<u16>,
    len: usize,
    packets: bool,
    lend: bool,
) -> Option<ConnEnd> {
    // A seqpacket message larger than its buffer (MSG_TRUNC gave its length): its bytes are
    // lost, and the session decides what that means.
    let mut lost = Vec::new();
    let data = match bid {
        Some(_) if len > bufs.size() => {
            lost.resize(len, 0);
            &mut lost[..]
        }
        Some(bid) => bufs.get(bid, len),
        None => &mut [][..],
    };
    if packets {
        // One message in, at most one out: each goes as a send of its own.
        let mut reply = Vec::new();
        let end = slot.session.received(data, &mut reply);
        if !reply.is_empty() {
            slot.queue.push_back(reply);
        }
        return end;
    }
    match bid {
        Some(bid) if lend => match slot.session.received_in_place(data, &mut slot.out) {
            InPlace::Reply(0) => None,
            InPlace::Reply(n) => {
                slot.lent = Some((bid, n));
                None
            }
            InPlace::Appended(end) => end,
        },
        _ => slot.session.received(data, &mut slot.out),
    }
}

/// Gives the provided buffer a slot's reply was sent from back to the kernel (seen at the
/// next publish), if it holds one.
#[inline]
fn give_lent<T>(bufs: &mut BufRing, lent: &mut usize, slot: &mut Slot<T>) {
    if let Some((bid, _)) = slot.lent.take() {
        bufs.give_back(bid);
        *lent -= 1;
        slot.sent = 0;
    }
}

impl<S: Service> Worker<'_, S> {
    /// Starts a send of what is waiting, when none is in flight; closes a connection that
    /// ended and has nothing left in flight.
    fn flush(&mut self, token: usize) -> Result<()> {
        let Some(slot) = self.slots.get_mut(token).and_then(Option::as_mut) else {
            return Ok(());
        };
        let failed_before = matches!(slot.ending, Some(ConnEnd::Failed(_)));
        if !slot.send_busy
            && let Some((_, len)) = slot.lent
            && (slot.sent == len || failed_before)
        {
            give_lent(&mut self.bufs, &mut self.lent, slot);
        }
        if !slot.send_busy && slot.lent.is_none() && slot.sent == slot.sending.len() {
            slot.sending.clear();
            slot.sent = 0;
            if slot.sending.capacity() > KEPT {
                // A burst is over: its memory goes back.
                slot.sending = Vec::new();
            }
            if self.packets {
                if let Some(next) = slot.queue.pop_front() {
                    slot.sending = next;
                }
            } else {
                std::mem::swap(&mut slot.sending, &mut slot.out);
            }
            if failed_before {
                slot.sending.clear();
            }
        }
        let (ptr, rest) = match slot.lent {
            Some((bid, len)) => (
                self.bufs.get(bid, len)[slot.sent..].as_ptr(),
                len - slot.sent,
            ),
            None => (
                slot.sending[slot.sent..].as_ptr(),
                slot.sending.len() - slot.sent,
            ),
        };
        if !slot.send_busy && rest > 0 {
            slot.send_busy = true;
            self.sends += 1;
            let send = if slot.fixed {
                opcode::Send::new(types::Fixed(token as u32), ptr, rest as u32)
            } else {
                opcode::Send::new(types::Fd(slot.fd), ptr, rest as u32)
            };
            let send = send.flags(libc::MSG_NOSIGNAL);
            push(
                &mut self.ring,
                &send.build().user_data(Op::Send.data(token)),
            )?;
        }
        if slot.ending.is_some() && !slot.send_busy && !slot.recv_armed {
            self.close(token);
        }
        Ok(())
    }

    fn sent(&mut self, token: usize, result: i32) -> Result<()> {
        let Some(slot) = self.slots.get_mut(token).and_then(Option::as_mut) else {
            return Ok(());
        };
        slot.send_busy = false;
        if result < 0 {
            give_lent(&mut self.bufs, &mut self.lent, slot);
            slot.sending.clear();
            slot.sent = 0;
            slot.out.clear();
            slot.queue.clear();
            self.end(token, ConnEnd::Failed(failed(result)));
            return self.flush(token);
        }
        slot.sent += result as usize;
        slot.share.hold(slot.pending());
        slot.last_active = self.now;
        if !slot.recv_armed && slot.ending.is_none() {
            // Throttled until the peer read its replies: read again once there is room.
            self.rearm.push(token);
        }
        self.flush(token)
    }

    /// The stop: every connection is shut down, so its receive and send complete, and ends
    /// as stopped.
    fn stop(&mut self) {
        self.stopping = Some(Instant::now());
        let cancel = opcode::AsyncCancel::new(Op::Accept.data(0));
        let _ = push(
            &mut self.ring,
            &cancel.build().user_data(Op::Cancel.data(0)),
        );
        for token in 0..self.slots.len() {
            if let Some(slot) = self.slots[token].as_mut() {
                slot.ending = Some(ConnEnd::Stopped);
                let _ = slot
                    .session
                    .conn()
                    .socket()
                    .shutdown(std::net::Shutdown::Both);
            }
            let _ = self.flush(token);
        }
    }

    /// Ends connections idle for the idle timeout, and those whose frame is past its
    /// deadline: the session's pump says so (with the frame's reason) before any read.
    fn close_idle(&mut self) {
        let idle = self.server.idle_timeout;
        let now = Instant::now();
        for token in 0..self.slots.len() {
            let Some(slot) = self.slots[token].as_mut() else {
                continue;
            };
            if slot.ending.is_some() {
                continue;
            }
            if slot.session.deadline().is_some_and(|d| d <= now) {
                if let Step::Done(end) = slot.session.pump(&mut []) {
                    slot.ending = Some(end);
                }
            } else if idle.is_some_and(|idle| slot.last_active.elapsed() >= idle)
                // Bytes in the socket that an armed recv has not handed over yet (the ring
                // was held up: SIGSTOP, a loaded machine) are activity, not idleness.
                && !(slot.recv_armed && slot.session.conn().unread_now())
            {
                slot.ending = Some(ConnEnd::Idle);
            }
            if slot.ending.is_some() {
                let _ = slot
                    .session
                    .conn()
                    .socket()
                    .shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn close(&mut self, token: usize) {
        if let Some(mut slot) = self.slots[token].take() {
            if !slot.send_busy {
                give_lent(&mut self.bufs, &mut self.lent, &mut slot);
            }
            if slot.fixed {
                // Out of the table before the session closes its descriptor: an entry would
                // keep the socket open. Should the kernel refuse, the peer still hears the
                // end now (a shutdown), not when the slot is next taken.
                let removed = self
                    .ring
                    .submitter()
                    .register_files_update(token as u32, &[-1]);
                if removed.is_err() {
                    let _ = nix::sys::socket::shutdown(slot.fd, nix::sys::socket::Shutdown::Both);
                }
            }
            let end = slot.ending.unwrap_or(ConnEnd::Stopped);
            let server = self.server;
            self.loops
                .end(self.index, slot.session, end, |s, e| server.finish(s, e));
            self.free.push(token);
            self.loops.loads[self.index].fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn close_all(&mut self, end: fn() -> ConnEnd) {
        self.take_inbox();
        for token in 0..self.slots.len() {
            if let Some(slot) = self.slots[token].as_mut() {
                // Sends still in flight point into the slot: kept until the process ends.
                if slot.send_busy {
                    std::mem::forget(std::mem::take(&mut slot.sending));
                }
                slot.ending.get_or_insert_with(end);
            }
            self.close(token);
        }
    }
}

impl<S: Service> Drop for Worker<'_, S> {
    /// However the ring's loop ends, every connection it still holds ends with its log line
    /// and gives its --max-conns slot back, once: after the stop none is left, and a loop
    /// that failed (or panicked) leaves them here.
    fn drop(&mut self) {
        let end = retire_loop(self.loops, self.index, self.server);
        self.close_all(end);
    }
}
