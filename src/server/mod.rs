//! `netecho serve`: bind, say where, serve clients with a server model until SIGINT or
//! SIGTERM, then close the sockets and print a summary.

pub mod shutdown;
pub mod threads;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing::info;

use crate::cli::ServeArgs;
use crate::endpoint::Proto;
use crate::service::echo::{self, Transform};
use crate::service::stats::{Stats, Tally, log_client};
use crate::transport::{self, Bound, Conn};

use shutdown::{Shutdown, Wake};

/// What every server model needs to serve a client.
pub struct Service {
    pub proto: Proto,
    pub transform: Transform,
    pub stats: Stats,
    /// Connections served at once; more are refused, never queued without bound.
    pub max_conns: usize,
}

impl Service {
    /// Serves one connection to its end and logs its line.
    pub fn serve_conn(&self, conn: Conn) {
        self.stats.client();
        let mut tally = Tally::default();
        let ended = echo::serve_conn(&conn, self.transform, &self.stats, &mut tally);
        log_client(self.proto, conn.peer(), &tally, &ended);
    }
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let endpoint = args.endpoint()?;
    // Before any thread starts, so every thread inherits the blocked signals.
    let shutdown = Shutdown::install()?;
    let bound = transport::bind(&endpoint, &args.socket_options())?;
    announce(&format!("listening {} {}", endpoint.proto, bound.local()))?;
    let service = Arc::new(Service {
        proto: endpoint.proto,
        transform: args.transform,
        stats: Stats::default(),
        max_conns: args.max_conns as usize,
    });
    let signal = match &bound {
        Bound::Listener(listener) => threads::serve_listener(listener, &service, &shutdown)?,
        Bound::Datagram(sock) => threads::serve_datagrams(sock, &service, &shutdown)?,
    };
    info!("{signal}: closing {} {}", endpoint.proto, bound.local());
    // Closes the socket and removes the socket file this server created.
    drop(bound);
    announce(&format!("stopped by {signal}: {}", service.stats))
}

/// A line on stdout, flushed at once: scripts and tests wait for it.
fn announce(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .context("write to stdout")
}

/// The signal that ended a model's loop, for the closing lines.
pub fn stopped(wake: Wake) -> Option<String> {
    match wake {
        Wake::Stop(signal) => Some(signal.as_str().to_string()),
        _ => None,
    }
}
