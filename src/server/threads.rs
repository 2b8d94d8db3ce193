//! The `threads` model: a thread per connection, so a slow or idle client never blocks
//! another. Each thread runs the echo loop on a blocking socket.

use std::thread;

use anyhow::Result;
use tracing::warn;

use crate::transport::Listener;

use super::shutdown::Shutdown;
use super::{Service, accept_loop};

/// Stack for a connection thread: the echo loop's buffer is on the heap, so a small stack
/// keeps thousands of threads cheap.
const CONN_STACK: usize = 256 * 1024;

/// Accepts until a stop signal; returns the signal's name.
pub fn serve(
    listener: &Listener,
    service: &'static Service,
    shutdown: &Shutdown,
) -> Result<String> {
    accept_loop(listener, shutdown, None, |conn| {
        let echo = service.admit(conn?)?;
        let spawned = thread::Builder::new()
            .name("conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || service.run_blocking(echo));
        if let Err(e) = spawned {
            warn!("cannot start a thread for a connection ({e}); it was closed");
        }
        None
    })
}
