//! Clients: `send` (interactive, piped, or one message) over one request/reply exchange.

pub mod bench;
pub mod exchange;
pub mod exec;
pub mod lab;
pub mod local;
pub mod ping;
pub mod pipeline;
pub mod raw;
pub mod send;
pub mod transfer;
pub mod unconnected;
