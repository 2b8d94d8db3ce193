//! The `iterative` model: one client at a time, the accept loop around the echo loop, as a
//! first socket lesson writes it. A second client is accepted only when the first leaves.

use std::os::fd::AsFd;

use anyhow::Result;

use crate::service::echo::{ConnEnd, Step};
use crate::transport::{Listener, MAX_MESSAGE};

use super::{Service, accept_loop};
use crate::signal::{Shutdown, Wake};

/// Accepts and serves one connection after another until a stop signal.
pub fn serve(
    listener: &Listener,
    service: &'static Service,
    shutdown: &Shutdown,
) -> Result<String> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    accept_loop(listener, shutdown, None, |conn| {
        let mut echo = service.admit(conn?)?;
        // Non-blocking, and polled beside the signalfd, so SIGTERM is noticed even while a
        // client holds the server.
        if let Err(e) = echo.conn.set_nonblocking(true) {
            let ended = ConnEnd::Failed(e);
            service.finish(echo, &ended);
            return None;
        }
        let mut stop = None;
        let ended = loop {
            let (read, write) = match echo.pump(&mut buf, service.transform, service.stats) {
                Step::Done(end) => break end,
                Step::Yield { .. } => continue,
                Step::Wait { read, write } => (read, write),
            };
            match shutdown.wait_for(echo.conn.as_fd(), read, write, service.idle_timeout) {
                Ok(Wake::Ready) => {}
                Ok(Wake::Timeout) => break ConnEnd::Idle,
                Ok(Wake::Stop(signal)) => {
                    stop = Some(signal.as_str().to_string());
                    break ConnEnd::Stopped;
                }
                Err(e) => break ConnEnd::Failed(std::io::Error::other(e)),
            }
        };
        service.finish(echo, &ended);
        stop
    })
}
