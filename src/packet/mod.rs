//! Packets netecho reads and writes itself on raw sockets, byte by byte: the IPv4 header
//! (a raw IPv4 socket hands it to the reader, and builds it with IP_HDRINCL), the netecho
//! header that marks requests and replies, ICMP echo messages for `ping`, and the RFC 1071
//! checksum they share. Every parser checks bounds and returns an error, never panics.

pub(crate) mod checksum;
pub(crate) mod header;
pub(crate) mod icmp;
pub(crate) mod ipv4;

#[cfg(test)]
mod property_tests;

/// The IP protocol number `--ip-proto` defaults to: 253 is reserved by RFC 3692 for
/// experiments and testing, so no real protocol is disturbed.
pub(crate) const DEFAULT_IP_PROTO: u8 = 253;
