//! Process limits a server that holds a classroom needs: enough file descriptors.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{debug, warn};

/// File descriptors a server uses besides its connections: the listener, signalfd, epoll
/// instances, stdio.
const SPARE_FDS: u64 = 64;

/// Raises RLIMIT_NOFILE's soft limit to the hard limit, and says so in one line when even
/// that is too low for `max_conns` connections.
pub fn raise_nofile(max_conns: usize) {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => debug!("RLIMIT_NOFILE raised from {soft} to {hard}"),
            Err(e) => warn!("cannot raise RLIMIT_NOFILE from {soft} to {hard}: {e}"),
        }
    }
    let (now, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((soft, hard));
    let needed = max_conns as u64 + SPARE_FDS;
    if now < needed {
        warn!(
            "--max-conns {max_conns} needs {needed} file descriptors, but the limit is {now}: \
             connections past about {} will fail; raise it (ulimit -Hn {needed}, as root) or \
             lower --max-conns",
            now.saturating_sub(SPARE_FDS)
        );
    }
}
