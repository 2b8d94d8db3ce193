//! What `serve` is asked to do, as plain values: the command line builds a [`ServeConfig`],
//! and the server reads nothing else.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::access::Access;
use crate::endpoint::Endpoint;
use crate::service::echo::Transform;
use crate::transport::SocketOptions;
use crate::transport::framing::Framing;

use super::{Model, Sched};

pub(crate) struct ServeConfig {
    pub endpoint: Endpoint,
    pub socket: SocketOptions,
    /// The service: echo, files or exec.
    pub service: ServiceConfig,
    pub transform: Transform,
    pub model: Model,
    /// Event-loop threads.
    pub threads: usize,
    /// Event and uring models: the loop threads' scheduling policy.
    pub sched: Sched,
    pub max_conns: usize,
    pub idle_timeout: Option<Duration>,
    /// How long a started frame may take to complete (`None`: no limit).
    pub frame_timeout: Option<Duration>,
    pub max_pending: usize,
    pub framing: Framing,
    pub max_frame: usize,
    /// Datagrams: answer port 0 and the small-service ports too.
    pub allow_loop_ports: bool,
    /// Datagrams: replies per second per source address.
    pub rate_limit: Option<u32>,
    /// --allow and --deny, already checked against the protocol.
    pub access: Access,
}

/// Which service `serve` runs.
pub(crate) enum ServiceConfig {
    Echo,
    Files(ServeFiles),
    Exec(ServeExec),
}

/// `--files DIR` and its options.
pub(crate) struct ServeFiles {
    pub dir: PathBuf,
    pub upload: bool,
    pub max_file: u64,
    /// Serve files with more than one hard link too.
    pub follow_hardlinks: bool,
    /// Datagram transfers: simulated loss and reordering (fractions).
    pub drop: f64,
    pub reorder: f64,
    /// TFTP requests without options answered at once from any source.
    pub tftp_rfc1350: bool,
}

/// `--exec PROGRAM ARGS...` and its limits.
pub(crate) struct ServeExec {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Serve on an address other than loopback or a Unix socket.
    pub allow_remote: bool,
    pub timeout: Duration,
    pub max_output: u64,
    pub max_children: usize,
    /// Variables of the server's environment passed on beyond the default few.
    pub env: Vec<OsString>,
}
