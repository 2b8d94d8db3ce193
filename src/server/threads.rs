//! The `threads` model: a thread per connection, so a slow or idle client never blocks
//! another; a datagram socket is served by one thread, since it has no connections.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::Result;
use tracing::{info, warn};

use crate::service::echo::answer_datagrams;
use crate::service::peers::PeerTable;
use crate::transport::{DatagramSocket, Listener, MAX_MESSAGE};

use super::shutdown::Shutdown;
use super::{Service, stopped};

/// Stack for a connection thread: the echo loop's buffer is on the heap, so a small stack
/// keeps a thousand threads cheap.
const CONN_STACK: usize = 256 * 1024;

/// How often a datagram server looks for peers gone silent.
const PEER_SWEEP: Duration = Duration::from_secs(1);

/// Accepts until a stop signal; returns the signal's name.
pub fn serve_listener(
    listener: &Listener,
    service: &Arc<Service>,
    shutdown: &Shutdown,
) -> Result<String> {
    info!(
        "model threads: a thread per connection; an idle or slow client holds only its own thread"
    );
    // Non-blocking, so a connection that vanishes between poll and accept cannot stall us.
    listener.set_nonblocking(true)?;
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        if let Some(signal) = stopped(shutdown.wait(listener.as_fd(), None)?) {
            return Ok(signal);
        }
        loop {
            let conn = match listener.accept() {
                Ok(conn) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    accept_failed(&e);
                    break;
                }
            };
            if active.load(Ordering::Relaxed) >= service.max_conns {
                warn!(
                    "{} {}: refused, {} connections already (--max-conns)",
                    service.proto,
                    conn.peer(),
                    service.max_conns
                );
                continue;
            }
            active.fetch_add(1, Ordering::Relaxed);
            let (svc, count) = (Arc::clone(service), Arc::clone(&active));
            let spawned = thread::Builder::new()
                .name("conn".into())
                .stack_size(CONN_STACK)
                .spawn(move || {
                    svc.serve_conn(conn);
                    count.fetch_sub(1, Ordering::Relaxed);
                });
            if let Err(e) = spawned {
                active.fetch_sub(1, Ordering::Relaxed);
                warn!("cannot start a thread for a connection ({e}); it was closed");
            }
        }
    }
}

/// An accept error concerns one connection, or a limit: log it and go on, pausing when the
/// process is out of file descriptors so the loop does not spin.
fn accept_failed(err: &io::Error) {
    warn!("accept: {err}");
    if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        thread::sleep(Duration::from_millis(100));
    }
}

/// Answers datagrams until a stop signal; returns the signal's name.
pub fn serve_datagrams(
    sock: &DatagramSocket,
    service: &Arc<Service>,
    shutdown: &Shutdown,
) -> Result<String> {
    info!("model threads: one thread answers every datagram, in the order they arrive");
    sock.set_nonblocking(true)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut peers = PeerTable::new(service.proto);
    loop {
        let wake = shutdown.wait(sock.as_fd(), Some(PEER_SWEEP))?;
        if let Some(signal) = stopped(wake) {
            peers.finish();
            return Ok(signal);
        }
        if let Err(e) = answer_datagrams(
            sock,
            &mut buf,
            service.transform,
            &service.stats,
            &mut peers,
        ) {
            warn!("recvfrom: {e}");
            thread::sleep(Duration::from_millis(10));
        }
        peers.expire();
    }
}
