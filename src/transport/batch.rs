//! recvmmsg(2) and sendmmsg(2): many datagrams in one system call, for the event model's
//! datagram server. socket2 has no call for them, so this is where netecho calls libc for
//! socket I/O directly (with `pktinfo.rs`, whose control messages ride along here too).

use std::io;
use std::mem;
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::SockAddr;

use super::pktinfo::{Arrival, Control, ReplyFrom};
use super::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

/// Datagrams read or written in one system call.
pub(crate) const BATCH: usize = 32;

/// Buffers for [`BATCH`] datagrams with their addresses, reused for every call.
pub(crate) struct Batch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    /// Where each datagram arrived (IP_PKTINFO), on a socket that answers from there; the
    /// control buffers it is read into, then the replies' own.
    arrivals: Vec<Option<Arrival>>,
    controls: Vec<Control>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
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
            arrivals: vec![None; BATCH],
            controls: vec![Control::default(); BATCH],
            iovs: Vec::with_capacity(BATCH),
            hdrs: Vec::with_capacity(BATCH),
            count: 0,
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

    /// Datagram `i`: what was received, its bytes (transformable in place) and its sender.
    pub(crate) fn get_mut(&mut self, i: usize) -> (Received, &mut [u8], PeerAddr) {
        let received = if self.truncated[i] {
            Received::Truncated(self.lens[i])
        } else {
            Received::Data(self.lens[i])
        };
        let len = self.lens[i].min(MAX_MESSAGE);
        let peer = self.peer(i);
        (received, &mut self.bufs[i][..len], peer)
    }

    fn peer(&self, i: usize) -> PeerAddr {
        // Safety: recvmmsg wrote `addr_lens[i]` bytes of an address into `addrs[i]`.
        unsafe { sockaddr(&self.addrs[i], self.addr_lens[i]) }
    }
}

/// The sender recvmsg or recvmmsg wrote into `storage`.
///
/// # Safety
/// `len` bytes of `storage` must hold the address the kernel wrote.
pub(crate) unsafe fn sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> PeerAddr {
    // Safety: `storage` has the size and alignment socket2's storage expects, and holds
    // `len` valid bytes; copying them is all try_init does.
    let ((), addr) = unsafe {
        SockAddr::try_init(|dst, dst_len| {
            ptr::copy_nonoverlapping(
                ptr::from_ref(storage).cast::<u8>(),
                dst.cast::<u8>(),
                len as usize,
            );
            *dst_len = len;
            Ok(())
        })
    }
    .expect("copying an address cannot fail");
    PeerAddr(addr)
}

impl DatagramSocket {
    /// recvmmsg(2): up to [`BATCH`] waiting datagrams. On a blocking socket it waits for the
    /// first (up to SO_RCVTIMEO); WouldBlock when none came.
    pub(crate) fn recv_batch(&self, batch: &mut Batch) -> io::Result<usize> {
        let pktinfo = self.reply == ReplyFrom::Destination;
        batch.iovs.clear();
        for buf in &mut batch.bufs {
            batch.iovs.push(libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            });
        }
        batch.hdrs.clear();
        for i in 0..BATCH {
            // Safety: mmsghdr is plain old data; all zeroes is a valid starting value.
            let mut hdr: libc::mmsghdr = unsafe { mem::zeroed() };
            hdr.msg_hdr.msg_name = ptr::addr_of_mut!(batch.addrs[i]).cast();
            hdr.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = ptr::addr_of_mut!(batch.iovs[i]);
            hdr.msg_hdr.msg_iovlen = 1;
            if pktinfo {
                hdr.msg_hdr.msg_control = batch.controls[i].0.as_mut_ptr().cast();
                hdr.msg_hdr.msg_controllen = mem::size_of::<Control>() as _;
            }
            batch.hdrs.push(hdr);
        }
        // Safety: every header points into `batch.addrs`, `batch.iovs`, `batch.controls` and `batch.bufs`, which
        // live through the call and are not moved during it; the kernel writes at most the
        // lengths given. MSG_TRUNC makes msg_len the real length of a longer datagram.
        let got = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                batch.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                // WAITFORONE: on a blocking socket, return once one datagram is in, with
                // whatever else is waiting, instead of waiting for a full batch.
                libc::MSG_TRUNC | libc::MSG_WAITFORONE,
                ptr::null_mut(),
            )
        };
        if got < 0 {
            batch.count = 0;
            return Err(io::Error::last_os_error());
        }
        if crate::explain::on() {
            let fd = self.sock.as_raw_fd();
            crate::explain::line(format_args!(
                "recvmmsg(fd {fd}, {BATCH} messages) = {got} datagrams"
            ));
        }
        let got = got as usize;
        for i in 0..got {
            let hdr = &batch.hdrs[i];
            batch.lens[i] = hdr.msg_len as usize;
            batch.truncated[i] =
                hdr.msg_len as usize > MAX_MESSAGE || hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            batch.addr_lens[i] = hdr.msg_hdr.msg_namelen;
            // Safety: the header recvmmsg just filled, its control in `batch.controls[i]`.
            batch.arrivals[i] = if pktinfo {
                unsafe { Arrival::decode(&hdr.msg_hdr) }
            } else {
                None
            };
        }
        batch.count = got;
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
            // The reply's source, written over the request's control data it was read from.
            if let Some(arrival) = batch.arrivals[i] {
                let control = &mut batch.controls[i];
                hdr.msg_hdr.msg_controllen = arrival.encode(control) as _;
                hdr.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            }
            batch.hdrs.push(hdr);
        }
        // Safety: as in recv_batch, every pointer refers to memory owned by `batch` that
        // outlives the call; the kernel only reads from it.
        let sent = unsafe {
            libc::sendmmsg(
                self.sock.as_raw_fd(),
                batch.hdrs.as_mut_ptr(),
                replies.len() as libc::c_uint,
                // Never blocks: a full Unix datagram receiver fails its reply, not the server.
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        if crate::explain::on() {
            let fd = self.sock.as_raw_fd();
            let n = replies.len();
            crate::explain::line(format_args!("sendmmsg(fd {fd}, {n} messages) = {sent}"));
        }
        Ok(sent as usize)
    }
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
pub(crate) fn no_segmentation(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

impl DatagramSocket {
    /// One sendmsg(2) with UDP_SEGMENT on a UDP socket: `buf` leaves for `to` as datagrams
    /// of `segment` bytes each, the last one possibly shorter. At most [`MAX_SEGMENTS`]
    /// datagrams and [`MAX_SEGMENTED`] bytes; all or nothing.
    pub(crate) fn send_segments(&self, buf: &[u8], segment: u16, to: &PeerAddr) -> io::Result<()> {
        // A control buffer aligned for cmsghdr, with room for one u16.
        let mut control = [0u64; 4];
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        // Safety: msghdr is plain old data; all zeroes is a valid starting value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = to.0.as_ptr().cast_mut().cast();
        msg.msg_namelen = to.0.len();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // Safety: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
        // Safety: the control buffer holds CMSG_SPACE(2) bytes (32 >= 24), aligned for
        // cmsghdr; the first header and its data lie within it. The kernel only reads
        // `buf` and `to` through pointers that live through the call.
        let sent = unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as usize;
            ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
            libc::sendmsg(self.sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
        };
        let result = if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        };
        if crate::explain::on() {
            let fd = self.sock.as_raw_fd();
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
}
