//! recvmmsg(2) and sendmmsg(2): many datagrams in one system call, for the event model's
//! datagram server; while datagrams come one at a time (a ping-pong), recvmsg(2) and
//! sendto(2), the kernel's shorter paths for one. socket2 has no call for them, so this is
//! where netecho calls libc for socket I/O directly (with `pktinfo.rs`, whose control
//! messages ride along here too).

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::{SockAddr, SockAddrStorage, Socket};

use super::pktinfo::{Arrival, CONTROL, Control, ReplyFrom};
use super::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received, calls};

/// Datagrams read or written in one system call.
pub(crate) const BATCH: usize = 32;
/// While datagrams come one at a time, every this many receives still offers a whole batch,
/// so a queue that built up meanwhile is found and read in batches again.
const PROBE_EVERY: u32 = 8;

/// Buffers for [`BATCH`] datagrams with their addresses, reused for every call.
pub(crate) struct Batch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    /// Each received datagram's sender, made once per datagram as it is read, lent to
    /// every check and count after it.
    peers: Vec<PeerAddr>,
    /// Each Unix sender's user (SCM_CREDENTIALS), on a socket that passes them.
    uids: Vec<Option<u32>>,
    /// Where each datagram arrived (IP_PKTINFO), on a socket that answers from there; the
    /// control buffers it is read into, then the replies' own.
    arrivals: Vec<Option<Arrival>>,
    /// Each Unix path sender's socket file, held for its reply (see [`super::unix::vouched`]).
    held: Vec<Option<super::unix::ReplyPath>>,
    controls: Vec<Control>,
    /// On a socket that receives glued (UDP_GRO): each receive's segment size (0: one
    /// datagram), kept for its reply, which leaves cut at the same size (UDP_SEGMENT).
    segments: Vec<usize>,
    glued: bool,
    /// The replies' iovecs and headers, made for each send.
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// The receives' iovecs and headers, made once (see [`Batch::receive_headers`]), and
    /// whether they were made with control buffers.
    recv_iovs: Vec<libc::iovec>,
    recv_hdrs: Vec<libc::mmsghdr>,
    recv_control: Option<bool>,
    /// The leading receive headers the kernel may have written lengths into since they
    /// were last reset.
    recv_dirty: usize,
    count: usize,
    /// Entries the next receive offers: the whole batch while datagrams come in numbers
    /// (or glued), one while they come one at a time, as a ping-pong's do, whose recvmmsg
    /// would otherwise look for a second datagram after the first (one more receive in the
    /// kernel, found empty) before the reply can leave. `singles` counts the receives of one
    /// datagram in a row.
    offer: usize,
    singles: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            bufs: (0..BATCH).map(|_| vec![0u8; MAX_MESSAGE]).collect(),
            lens: vec![0; BATCH],
            truncated: vec![false; BATCH],
            // Safety: sockaddr_storage is plain old data; all zeroes is a valid (AF_UNSPEC) value.
            addrs: vec![unsafe { mem::zeroed() }; BATCH],
            addr_lens: vec![0; BATCH],
            peers: vec![PeerAddr(SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)))); BATCH],
            uids: vec![None; BATCH],
            arrivals: vec![None; BATCH],
            held: std::iter::repeat_with(|| None).take(BATCH).collect(),
            controls: vec![Control::default(); BATCH],
            segments: vec![0; BATCH],
            glued: false,
            iovs: Vec::with_capacity(BATCH),
            hdrs: Vec::with_capacity(BATCH),
            recv_iovs: Vec::new(),
            recv_hdrs: Vec::new(),
            recv_control: None,
            recv_dirty: 0,
            count: 0,
            offer: BATCH,
            singles: 0,
        }
    }
}

impl Batch {
    /// The datagrams of the last receive.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Where datagram `i` arrived, when the socket reads it.
    pub(crate) fn arrival(&self, i: usize) -> Option<&Arrival> {
        self.arrivals[i].as_ref()
    }

    /// Whether the socket hands over datagrams glued (see [`receive_glued`]): receives then
    /// read the segment size, and replies carry it.
    pub(crate) fn set_glued(&mut self, glued: bool) {
        self.glued = glued;
    }

    /// The segment size receive `i` was glued at, 0 when it holds one datagram.
    pub(crate) fn segment(&self, i: usize) -> usize {
        self.segments[i]
    }

    /// Datagram `i`: what was received, its bytes (transformable in place) and its sender.
    pub(crate) fn get_mut(&mut self, i: usize) -> (Received, &mut [u8], &PeerAddr) {
        let received = if self.truncated[i] {
            Received::Truncated(self.lens[i])
        } else {
            Received::Data(self.lens[i])
        };
        let len = self.lens[i].min(MAX_MESSAGE);
        (received, &mut self.bufs[i][..len], &self.peers[i])
    }

    /// The sender of datagram `i`.
    pub(crate) fn peer(&self, i: usize) -> &PeerAddr {
        &self.peers[i]
    }

    /// Datagram `i`'s sender's user, on a Unix socket that passes credentials.
    pub(crate) fn uid(&self, i: usize) -> Option<u32> {
        self.uids[i]
    }

    /// After a receive of `got` datagrams: what the next one offers (see `offer`).
    fn adapt(&mut self, got: usize) {
        let glued = got == 1 && self.segments[0] > 0;
        if got > 1 || glued {
            self.singles = 0;
            self.offer = BATCH;
        } else {
            self.singles = self.singles.wrapping_add(1);
            self.offer = if self.singles.is_multiple_of(PROBE_EVERY) {
                BATCH
            } else {
                1
            };
        }
    }

    /// The headers of the next receive, `offer` of them. Each points at its buffer, address
    /// and (with `control`) control buffer, which never move (each lives in a Vec that never
    /// grows), so the headers are made once and a receive only resets the lengths the
    /// kernel wrote back, in the headers the last receive filled: a ping-pong's receive no
    /// longer builds, nor resets, a whole batch of headers every [`PROBE_EVERY`] datagrams.
    fn receive_headers(&mut self, control: bool) -> &mut [libc::mmsghdr] {
        if self.recv_control != Some(control) {
            self.recv_dirty = BATCH;
            self.recv_iovs = (self.bufs.iter_mut())
                .map(|buf| libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                })
                .collect();
            self.recv_hdrs = (0..BATCH)
                .map(|i| {
                    // Safety: mmsghdr is plain old data; all zeroes is a valid starting value.
                    let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
                    hdr.msg_hdr.msg_name = ptr::addr_of_mut!(self.addrs[i]).cast();
                    hdr.msg_hdr.msg_iov = ptr::addr_of_mut!(self.recv_iovs[i]);
                    hdr.msg_hdr.msg_iovlen = 1;
                    if control {
                        hdr.msg_hdr.msg_control = self.controls[i].0.as_mut_ptr().cast();
                    }
                    hdr
                })
                .collect();
            self.recv_control = Some(control);
        }
        for hdr in &mut self.recv_hdrs[..self.recv_dirty] {
            hdr.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if control {
                hdr.msg_hdr.msg_controllen = mem::size_of::<Control>() as _;
            }
        }
        // What this receive offers may be written: all of it when it fails, as the kernel
        // may have begun one (set again once it tells how many it filled).
        self.recv_dirty = self.offer;
        &mut self.recv_hdrs[..self.offer]
    }
}

/// The sender recvmsg or recvmmsg wrote into `storage`.
///
/// # Safety
/// `len` bytes of `storage` must hold the address the kernel wrote.
pub(crate) unsafe fn sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> PeerAddr {
    // The storage copied whole (a few wide moves), not zeroed first and then copied `len`
    // bytes of, as SockAddr::try_init does: this runs for every datagram a batch answers.
    let mut copy = SockAddrStorage::zeroed();
    // Safety: socket2's storage is a sockaddr_storage (repr(transparent)), and `storage`
    // holds an address of `len` bytes, as SockAddr::new asks.
    unsafe {
        *copy.view_as::<libc::sockaddr_storage>() = *storage;
        PeerAddr(SockAddr::new(copy, len))
    }
}

/// recvmmsg(2) into every header of `hdrs`: how many datagrams came.
fn recv_many(sock: &Socket, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // Safety: every header points into the batch's addresses, iovecs, controls and buffers,
    // which live through the call and are not moved during it; the kernel writes at most
    // the lengths given. MSG_TRUNC makes msg_len the real length of a longer datagram.
    let got = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            // WAITFORONE: on a blocking socket, return once one datagram is in, with
            // whatever else is waiting, instead of waiting for a full batch.
            libc::MSG_TRUNC | libc::MSG_WAITFORONE,
            ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    if crate::explain::on() {
        let (fd, offer) = (sock.as_raw_fd(), hdrs.len());
        let got = crate::units::count(got, "datagram");
        crate::explain::line(format_args!("recvmmsg(fd {fd}, {offer} messages) = {got}"));
    }
    Ok(got as usize)
}

/// recvmsg(2) into one header, as a one-entry recvmmsg fills it (msg_len the datagram's
/// real length): the kernel's path for one datagram, without recvmmsg's loop around it.
fn recv_one(sock: &Socket, hdr: &mut libc::mmsghdr) -> io::Result<usize> {
    // Safety: as in recv_many, for the one header.
    let got = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr.msg_hdr, libc::MSG_TRUNC) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    hdr.msg_len = got as libc::c_uint;
    if crate::explain::on() {
        let fd = sock.as_raw_fd();
        let bytes = crate::units::count(got, "byte");
        crate::explain::line(format_args!("recvmsg(fd {fd}) = {bytes}, 1 datagram"));
    }
    Ok(1)
}

impl DatagramSocket {
    /// recvmmsg(2): up to [`BATCH`] waiting datagrams. On a blocking socket it waits for the
    /// first (up to SO_RCVTIMEO); WouldBlock when none came.
    pub(crate) fn recv_batch(&self, batch: &mut Batch) -> io::Result<usize> {
        let pktinfo = self.reply == ReplyFrom::Destination;
        let control = pktinfo || batch.glued || self.passcred;
        if self.passcred {
            // The last receive's socket files, answered or not, are closed now.
            batch.held.fill_with(|| None);
        }
        let received = match batch.receive_headers(control) {
            [one] => recv_one(&self.sock, one),
            hdrs => recv_many(&self.sock, hdrs),
        };
        let got = received.inspect_err(|_| batch.count = 0)?;
        for i in 0..got {
            let hdr = &batch.recv_hdrs[i];
            batch.lens[i] = hdr.msg_len as usize;
            batch.truncated[i] =
                hdr.msg_len as usize > MAX_MESSAGE || hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            batch.addr_lens[i] = hdr.msg_hdr.msg_namelen;
            // Safety: recvmmsg wrote `msg_namelen` bytes of an address into `addrs[i]`.
            batch.peers[i] = unsafe { sockaddr(&batch.addrs[i], hdr.msg_hdr.msg_namelen) };
            if self.passcred {
                // Safety: the header recvmmsg just filled, its control in `batch.controls[i]`.
                let cred = unsafe { super::unix::credentials(&hdr.msg_hdr) };
                batch.uids[i] = cred.map(|c| c.uid);
                let from = std::mem::replace(&mut batch.peers[i], PeerAddr::unnamed());
                (batch.peers[i], batch.held[i]) = super::unix::vouched(from, cred);
            }
            // Safety: the header recvmmsg just filled, its control in `batch.controls[i]`.
            batch.arrivals[i] = if pktinfo {
                unsafe { Arrival::decode(&hdr.msg_hdr) }
            } else {
                None
            };
            // Safety: as above.
            batch.segments[i] = if batch.glued {
                unsafe { segment_of(&hdr.msg_hdr) }.unwrap_or(0)
            } else {
                0
            };
        }
        batch.count = got;
        // The header after the last filled may hold a receive that failed part way.
        batch.recv_dirty = (got + 1).min(batch.offer);
        batch.adapt(got);
        Ok(got)
    }

    /// sendmmsg(2): the replies `(index, length)` of the last receive, each back to its
    /// sender. Returns how many the kernel took, in order: the kernel stops at the first
    /// reply it cannot send (an error when that is the first), and the caller decides what
    /// happens to the rest.
    pub(crate) fn send_batch(
        &self,
        batch: &mut Batch,
        replies: &[(usize, usize)],
    ) -> io::Result<usize> {
        if replies.is_empty() {
            return Ok(0);
        }
        if self.proto == crate::endpoint::Proto::UnixDgram {
            return self.send_each(batch, replies);
        }
        if let [(i, len)] = *replies {
            // One reply with nothing to carry (no source to pick, not glued): sendto(2)
            // straight from the batch, no header made.
            let segment = batch.segments[i];
            if batch.arrivals[i].is_none() && (segment == 0 || len <= segment) {
                let to = (&batch.addrs[i], batch.addr_lens[i]);
                return send_one(&self.sock, &batch.bufs[i][..len], to);
            }
        }
        batch.iovs.clear();
        for &(i, len) in replies {
            batch.iovs.push(libc::iovec {
                iov_base: batch.bufs[i].as_mut_ptr().cast(),
                iov_len: len,
            });
        }
        batch.hdrs.clear();
        for (k, &(i, _)) in replies.iter().enumerate() {
            // Safety: mmsghdr is plain old data; all zeroes is a valid starting value.
            let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
            hdr.msg_hdr.msg_name = ptr::addr_of_mut!(batch.addrs[i]).cast();
            hdr.msg_hdr.msg_namelen = batch.addr_lens[i];
            hdr.msg_hdr.msg_iov = ptr::addr_of_mut!(batch.iovs[k]);
            hdr.msg_hdr.msg_iovlen = 1;
            // The reply's source, written over the request's control data it was read from,
            // and the size to cut a glued reply at.
            let control = &mut batch.controls[i];
            let mut len = batch.arrivals[i].map_or(0, |arrival| arrival.encode(control));
            let segment = batch.segments[i];
            if segment > 0 && batch.iovs[k].iov_len > segment {
                len = put_segment(&mut control.0, len, segment as u16);
            }
            if len > 0 {
                hdr.msg_hdr.msg_controllen = len as _;
                hdr.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            }
            batch.hdrs.push(hdr);
        }
        send_many(&self.sock, &mut batch.hdrs)
    }
}

impl DatagramSocket {
    /// Unix datagram replies one by one, each through its sender's socket file held open
    /// (see [`super::unix::reply_addr`]): a path in a batch header would be resolved again.
    fn send_each(&self, batch: &Batch, replies: &[(usize, usize)]) -> io::Result<usize> {
        for (k, &(i, len)) in replies.iter().enumerate() {
            let (to, held) = (batch.peer(i), batch.held[i].as_ref());
            if let Err(e) = self.send_via(&batch.bufs[i][..len], to, held, SEND_FLAGS) {
                return if k == 0 { Err(e) } else { Ok(k) };
            }
        }
        Ok(replies.len())
    }
}

/// Never blocks: a full Unix datagram receiver fails its reply, not the server.
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;

/// sendmmsg(2) of every header in `hdrs`: how many the kernel took.
fn send_many(sock: &Socket, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // Safety: every pointer in the headers refers to memory owned by the batch that
    // outlives the call; the kernel only reads from it, and writes each header's msg_len.
    let sent = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            SEND_FLAGS,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    if crate::explain::on() {
        let (fd, n) = (sock.as_raw_fd(), crate::units::count(hdrs.len(), "message"));
        crate::explain::line(format_args!("sendmmsg(fd {fd}, {n}) = {sent}"));
    }
    Ok(sent as usize)
}

/// sendto(2) of one reply without control messages to `to` (an address and its length), as
/// a one-entry sendmmsg would send it: the kernel's cheapest path for one datagram (no
/// message header to copy in).
fn send_one(
    sock: &Socket,
    buf: &[u8],
    (to, to_len): (&libc::sockaddr_storage, libc::socklen_t),
) -> io::Result<usize> {
    // Safety: the buffer and the address are the batch's and outlive the call; the kernel
    // only reads them, at most `to_len` bytes of the address.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            SEND_FLAGS,
            ptr::from_ref(to).cast(),
            to_len,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    if crate::explain::on() {
        let fd = sock.as_raw_fd();
        let bytes = crate::units::count(sent, "byte");
        crate::explain::line(format_args!("sendto(fd {fd}, 1 message) = {bytes}"));
    }
    Ok(1)
}

/// UDP_SEGMENT (linux/udp.h; libc has no name for it): a sendmsg(2) control message that
/// has the kernel cut one buffer into datagrams of the size it carries (UDP generic
/// segmentation offload, Linux 4.18).
const UDP_SEGMENT: libc::c_int = 103;
/// The most datagrams one UDP_SEGMENT send may carry (UDP_MAX_SEGMENTS in older kernels).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// The most bytes one UDP_SEGMENT send may carry: one IP datagram's worth.
pub(crate) const MAX_SEGMENTED: usize = 65_000;

/// Whether an error from [`DatagramSocket::send_segments`] says this kernel or path has no
/// segmentation offload (not that the peer or the network failed): send one by one then.
/// EMSGSIZE is a segment wider than the path's MTU (1280 on many tunnels): segmented
/// datagrams may not be fragmented, one sent alone may.
pub(crate) fn no_segmentation(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP | libc::EMSGSIZE)
    )
}

impl DatagramSocket {
    /// One sendmsg(2) with UDP_SEGMENT on a UDP socket: `buf` leaves for `to` as datagrams
    /// of `segment` bytes each, the last one possibly shorter. At most [`MAX_SEGMENTS`]
    /// datagrams and [`MAX_SEGMENTED`] bytes; all or nothing.
    pub(crate) fn send_segments(&self, buf: &[u8], segment: u16, to: &PeerAddr) -> io::Result<()> {
        send_segments(&self.sock, buf, segment, Some(to))
    }
}

/// sendmsg(2) with UDP_SEGMENT on a UDP socket, to `to` or to its connected peer: `buf`
/// leaves as datagrams of `segment` bytes each, the last one possibly shorter.
pub(crate) fn send_segments(
    sock: &Socket,
    buf: &[u8],
    segment: u16,
    to: Option<&PeerAddr>,
) -> io::Result<()> {
    let mut control = Control::default();
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: buf.len(),
    };
    // Safety: msghdr is plain old data; all zeroes is a valid starting value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    if let Some(to) = to {
        msg.msg_name = to.0.as_ptr().cast_mut().cast();
        msg.msg_namelen = to.0.len();
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_controllen = put_segment(&mut control.0, 0, segment) as _;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // Safety: every pointer in `msg` refers to memory that lives through the call; the
    // kernel only reads it.
    let sent = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    let result = if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    if crate::explain::on() {
        let fd = sock.as_raw_fd();
        let (n, len) = (buf.len().div_ceil(usize::from(segment.max(1))), buf.len());
        let outcome = match &result {
            Ok(()) => format!("{sent}"),
            Err(e) => format!("-1 ({e})"),
        };
        crate::explain::line(format_args!(
            "sendmsg(fd {fd}, {len} bytes, UDP_SEGMENT {segment}: {n} datagrams) = {outcome}"
        ));
    }
    result
}

/// Writes a UDP_SEGMENT control message at byte `at` of `control` (a multiple of 8, the
/// end of the messages before it); returns where it ends, the new msg_controllen.
fn put_segment(control: &mut [u8; CONTROL], at: usize, segment: u16) -> usize {
    // Safety: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
    assert!(
        at.is_multiple_of(8) && at + space <= CONTROL,
        "no room for UDP_SEGMENT"
    );
    // Safety: a msghdr over the `space` bytes at `at`, aligned for cmsghdr (the buffer is,
    // and `at` is a multiple of 8); the header and its u16 lie within them.
    unsafe {
        let mut hdr: libc::msghdr = mem::zeroed();
        hdr.msg_control = control.as_mut_ptr().add(at).cast();
        hdr.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
    }
    at + space
}

/// UDP_GRO (linux/udp.h): the socket option that has the kernel hand over datagrams of one
/// flow glued into one receive (UDP generic receive offload, Linux 5.0), and the control
/// message that says the size they were cut at. Only datagrams of one size are glued (the
/// last may be shorter), so a receive cuts back into its datagrams exactly.
const UDP_GRO: libc::c_int = 104;

/// setsockopt UDP_GRO on a UDP socket: receives may then hold many datagrams, read with
/// [`recv_glued`] or [`DatagramSocket::recv_batch`]; an error where the kernel has none.
pub(crate) fn receive_glued(sock: &Socket, on: bool) -> io::Result<()> {
    calls::setsockopt(sock, "UDP_GRO", on, |s, on| {
        let value = libc::c_int::from(on);
        // Safety: the kernel reads one int from `value`, which lives through the call.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_UDP,
                UDP_GRO,
                ptr::from_ref(&value).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
}

/// The segment size a glued receive carries (its UDP_GRO control message).
///
/// # Safety
/// `hdr` must be a msghdr recvmsg(2) or recvmmsg(2) has just filled: its msg_control points
/// to at least msg_controllen valid bytes.
unsafe fn segment_of(hdr: &libc::msghdr) -> Option<usize> {
    if hdr.msg_control.is_null() {
        return None;
    }
    // Safety: the kernel wrote well-formed control messages within msg_controllen, and the
    // CMSG macros never step past it; the payload is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if ((*cmsg).cmsg_level, (*cmsg).cmsg_type) == (libc::SOL_UDP, UDP_GRO) {
                let size = ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(size).ok().filter(|&s| s > 0);
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// The datagrams in `len` received bytes glued at `segment` (0: one datagram), as ranges:
/// each `segment` long, the last possibly shorter.
pub(crate) fn datagrams(
    len: usize,
    segment: usize,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let step = if segment == 0 { len.max(1) } else { segment };
    (0..len.max(1))
        .step_by(step)
        .map(move |start| start..(start + step).min(len))
}

/// What one receive on a socket that may glue gave.
pub(crate) struct Glued {
    pub received: Received,
    /// The socket's SO_RXQ_OVFL drop count, when the kernel sent it along.
    pub drops: Option<u32>,
    /// The size the datagrams were glued at; 0 for one datagram.
    pub segment: usize,
    pub from: PeerAddr,
}

/// recvmsg(2) with `flags` on a UDP socket that may glue (UDP_GRO) and count drops
/// (SO_RXQ_OVFL): the bytes, their sender, and what the control messages said.
pub(crate) fn recv_glued(sock: &Socket, buf: &mut [u8], flags: libc::c_int) -> io::Result<Glued> {
    let mut control = Control::default();
    // Safety: sockaddr_storage is plain old data; all zeroes is a valid (AF_UNSPEC) value.
    let mut from: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Safety: msghdr is plain old data; all zeroes is a valid starting value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = ptr::addr_of_mut!(from).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL as _;
    // Safety: `buf`, `from` and `control` live through the call; the kernel writes at most
    // the lengths given. MSG_TRUNC: the real length of a longer datagram.
    let got = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_TRUNC | flags) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    let received = if msg.msg_flags & libc::MSG_TRUNC != 0 || got > buf.len() {
        Received::Truncated(got)
    } else {
        Received::Data(got)
    };
    // Safety: the header recvmsg just filled.
    let (segment, drops) = unsafe { (segment_of(&msg), drops_of(&msg)) };
    Ok(Glued {
        received,
        drops,
        segment: segment.unwrap_or(0),
        // Safety: recvmsg wrote `msg_namelen` bytes of the sender into `from`.
        from: unsafe { sockaddr(&from, msg.msg_namelen) },
    })
}

/// The SO_RXQ_OVFL count a receive carries.
///
/// # Safety
/// As [`segment_of`].
unsafe fn drops_of(hdr: &libc::msghdr) -> Option<u32> {
    // Safety: as in segment_of.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if ((*cmsg).cmsg_level, (*cmsg).cmsg_type) == (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) {
                return Some(ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<u32>()));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(len: usize, segment: usize) -> Vec<(usize, usize)> {
        datagrams(len, segment).map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn a_glued_receive_cuts_at_its_segment_and_the_last_may_be_shorter() {
        assert_eq!(cut(4200, 1400), [(0, 1400), (1400, 2800), (2800, 4200)]);
        assert_eq!(cut(3000, 1400), [(0, 1400), (1400, 2800), (2800, 3000)]);
        assert_eq!(cut(9, 9), [(0, 9)]);
    }

    #[test]
    fn one_datagram_is_one_piece_even_when_empty() {
        assert_eq!(cut(1400, 0), [(0, 1400)]);
        assert_eq!(cut(0, 0), [(0, 0)]);
    }

    #[test]
    fn a_segment_message_follows_the_one_before_it() {
        let mut control = Control::default();
        let end = put_segment(&mut control.0, 0, 1400);
        let after = put_segment(&mut control.0, end, 9);
        // Safety: a msghdr over the control messages just written.
        unsafe {
            let mut hdr: libc::msghdr = mem::zeroed();
            hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_controllen = after as _;
            let first = libc::CMSG_FIRSTHDR(&hdr);
            let second = libc::CMSG_NXTHDR(&hdr, first);
            assert_eq!((*second).cmsg_type, UDP_SEGMENT);
            assert_eq!(
                ptr::read_unaligned(libc::CMSG_DATA(second).cast::<u16>()),
                9
            );
        }
    }
}
