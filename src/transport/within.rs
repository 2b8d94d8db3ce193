//! A connection as `std::io::Read` and `Write` bounded by a deadline, for dialogues whose
//! codec reads exact lengths (the lab's control protocol): the socket is non-blocking and
//! each wait is a poll(2) for the time left, so a peer trickling a byte now and then, or
//! a TLS record a byte at a time, cannot hold a reader or a writer past the deadline. Every
//! byte goes through [`Conn::recv`] and [`Conn::send_some`], so TLS applies as anywhere.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Conn, Received};

/// A connection read and written until `deadline`; past it, `TimedOut`.
pub(crate) struct Within<'a> {
    conn: &'a Conn,
    deadline: Instant,
}

impl Conn {
    /// This connection, non-blocking from now on, read and written until `deadline`.
    pub(crate) fn within(&self, deadline: Instant) -> io::Result<Within<'_>> {
        self.set_nonblocking(true)?;
        Ok(Within {
            conn: self,
            deadline,
        })
    }
}

impl Within<'_> {
    /// Waits for `flags` on the socket, at most until the deadline.
    fn wait(&self, flags: PollFlags) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the deadline passed",
            ));
        }
        let ms = left.max(Duration::from_millis(1)).as_millis();
        let timeout =
            PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.conn.as_fd(), flags)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Read for Within<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.recv(buf) {
                Ok(Received::Data(n) | Received::Truncated(n)) => return Ok(n.min(buf.len())),
                Ok(Received::Closed) => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(PollFlags::POLLIN)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Within<'_> {
    /// Some of `buf`, waiting while the socket takes nothing; a TLS connection is offered
    /// the same bytes again after a would-block, as its session asks.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.conn.send_some(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(PollFlags::POLLOUT)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
