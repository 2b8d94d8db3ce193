//! The echo service: what a server does with each message, whatever socket it came on.

pub mod datagram;
pub mod echo;
pub mod exec;
pub mod framing;
pub mod peers;
pub mod raw;
pub mod stats;
