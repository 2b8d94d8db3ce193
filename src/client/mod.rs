//! Clients: `send` (interactive, piped, or one message) over one request/reply exchange.

pub(crate) mod bench;
pub(crate) mod exchange;
pub(crate) mod exec;
pub(crate) mod lab;
pub(crate) mod local;
pub(crate) mod ping;
pub(crate) mod pipeline;
pub(crate) mod raw;
pub(crate) mod send;
pub(crate) mod transfer;
pub(crate) mod unconnected;
