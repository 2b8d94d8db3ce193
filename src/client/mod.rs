//! Clients: `send` (interactive, piped, or one message) over one request/reply exchange.

pub mod bench;
pub mod exchange;
pub mod exec;
pub mod interval;
pub mod lab;
pub mod load;
pub mod local;
pub mod loss;
pub mod netns;
pub mod ping;
pub mod raw;
pub mod send;
pub mod transfer;
