//! The `threads` model: a thread per connection, so a slow or idle client never blocks
//! another. Each thread serves its session on a blocking socket.
//!
//! On a stop signal every connection is shut down (a recv or send blocked on it returns) and
//! its thread finishes, so the summary counts everything served and nothing is served after it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Result;
use socket2::Socket;
use tracing::warn;

use crate::service::{Drive, Service, Session};
use crate::signal::{Shutdown, Signal};
use crate::transport::{Listener, calls};

use super::Server;
use super::admission::Sources;
use crate::lifecycle::accept_loop;

/// Stack for a connection thread: the echo loop's buffer is on the heap, so a small stack
/// keeps thousands of threads cheap.
const CONN_STACK: usize = 256 * 1024;
/// How long connection threads get to finish after their sockets were shut down.
const GRACE: Duration = Duration::from_secs(2);

/// Accepts until a stop signal; returns the signal.
pub(crate) fn serve<S: Service>(
    listener: &Listener,
    server: &Arc<Server<S>>,
    shutdown: &Shutdown,
) -> Result<Signal> {
    // A second handle on each live connection's socket, to shut it down on stop.
    let live: Arc<Mutex<HashMap<u64, Socket>>> = Arc::default();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    let sources = Sources::new(super::admission::per_source(&server.service));
    let signal = accept_loop(listener, shutdown, None, |conn| {
        threads.retain(|t| !t.is_finished());
        let conn = conn?;
        // A service that blocks holds a thread per client: a few per source (an address, or
        // a user of this host), whose peer is told once, for the rules too.
        let (source, mut session) = match server.service.blocks() {
            true => {
                let identity = server.admission.identify(&conn);
                match sources.take(conn.peer(), &identity) {
                    Ok(slot) => (slot, server.admit_as(conn, &identity, Drive::Blocking)?),
                    Err(why) => {
                        super::admission::refuse(conn, server.service.refusal(&why).as_deref());
                        return None;
                    }
                }
            }
            false => (None, server.admit(conn, Drive::Blocking)?),
        };
        let id = next_id;
        next_id += 1;
        match calls::dup(session.conn().socket()) {
            Ok(handle) => {
                live.lock().unwrap().insert(id, handle);
                // This session ends before the summary (its socket is shut down at stop), so
                // it may count on its own tally and add it to the totals then.
                session.count_at_end();
            }
            Err(e) => warn!(
                "{}: cannot keep a handle to stop it: {e}",
                session.conn().peer()
            ),
        }
        let (mine, served) = (Arc::clone(&live), Arc::clone(server));
        let spawned = thread::Builder::new()
            .name("conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                let _source = source;
                served.run_blocking(session);
                let handle = mine.lock().unwrap().remove(&id);
                if let Some(handle) = handle {
                    calls::closing(&handle);
                }
            });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                live.lock().unwrap().remove(&id);
                server.admission.release();
                warn!("cannot start a thread for a connection ({e}); it was closed");
            }
        }
        None
    })?;
    server.stopping.store(true, Ordering::Relaxed);
    for sock in live.lock().unwrap().values() {
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
    let deadline = Instant::now() + GRACE;
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    Ok(signal)
}
