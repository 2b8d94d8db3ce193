//! netecho: an uppercase echo service and its client over TCP, UDP and Unix sockets.
//!
//! The path of a message: [`cli`] parses the command line, [`endpoint`] turns an address
//! into a protocol and an address, [`transport`] opens the socket, [`server`] runs a server
//! model that hands each message to the [`service`], and [`client`] sends and reads replies.

pub mod access;
pub mod choice;
pub mod cli;
pub mod client;
pub mod docs;
pub mod endpoint;
pub mod error;
pub mod explain;
pub mod files;
pub mod habits;
pub mod hexdump;
pub mod impair;
pub mod lesson;
pub mod lifecycle;
pub mod logging;
pub mod packet;
pub mod relay;
pub mod report;
pub mod server;
pub mod service;
pub mod signal;
pub mod transport;
pub mod units;
