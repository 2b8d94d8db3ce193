//! Clients: `send` (interactive, piped, or one message) over one request/reply exchange.

pub mod exchange;
pub mod send;
