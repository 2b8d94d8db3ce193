//! A ring of provided buffers registered with the kernel: a receive takes whichever buffer
//! is next, and the buffer goes back once its bytes are served.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// One entry of the shared ring, as the kernel reads it (struct io_uring_buf).
const ENTRY: usize = 16;

pub(super) struct BufRing {
    /// The entries, mapped page-aligned; the tail shares the first entry's last two bytes.
    entries: *mut u8,
    count: u16,
    tail: u16,
    /// The buffers themselves, `size` bytes each.
    mem: Vec<u8>,
    size: usize,
}

// SAFETY: the mapping is owned by the BufRing and only used from the thread holding it.
unsafe impl Send for BufRing {}

impl BufRing {
    /// `count` (a power of two) buffers of `size` bytes, registered as group `group`.
    pub(super) fn new(ring: &IoUring, group: u16, count: u16, size: usize) -> io::Result<BufRing> {
        let len = count as usize * ENTRY;
        // SAFETY: an anonymous private mapping, checked below.
        let entries = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if entries == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut bufs = BufRing {
            entries: entries.cast(),
            count,
            tail: 0,
            mem: vec![0u8; count as usize * size],
            size,
        };
        for bid in 0..count {
            bufs.give_back(bid);
        }
        bufs.publish();
        // SAFETY: the entries stay mapped while the ring lives (see Drop).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, group, 0)?;
        }
        Ok(bufs)
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// Buffer `bid`'s first `len` bytes, as a receive filled them.
    pub(super) fn get(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = bid as usize * self.size;
        &mut self.mem[start..start + len.min(self.size)]
    }

    /// Puts buffer `bid` back at the tail; the kernel sees it at the next [`BufRing::publish`].
    pub(super) fn give_back(&mut self, bid: u16) {
        let slot = (self.tail & (self.count - 1)) as usize;
        let addr = self.mem.as_ptr() as u64 + (bid as usize * self.size) as u64;
        // SAFETY: slot < count, inside the mapping; the tail bytes (14..16 of entry 0) are
        // not written here.
        unsafe {
            let entry = self.entries.add(slot * ENTRY);
            entry.cast::<u64>().write(addr);
            entry.add(8).cast::<u32>().write(self.size as u32);
            entry.add(12).cast::<u16>().write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Lets the kernel use the buffers given back.
    pub(super) fn publish(&self) {
        // SAFETY: offset 14 of the mapping is the ring's tail, aligned for a u16.
        let tail = unsafe { &*self.entries.add(14).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // The kernel may still hold the ring while it tears down: the memory is left to the
        // process's end rather than freed under it (once per server).
        std::mem::forget(std::mem::take(&mut self.mem));
    }
}
