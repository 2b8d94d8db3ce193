//! A client's ICMP port unreachable (nothing listens on the server's port), heard at once.
//! Linux keeps it to itself on an unconnected UDP socket unless IP_RECVERR is on; with it
//! the error is queued, where quinn (which reads past errors) never looks. A second
//! descriptor of the same socket waits for the error readiness and reads the queue, so the
//! handshake fails at once instead of waiting out its deadline (as a udp `send` does).

use std::net::IpAddr;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Turns IP_RECVERR on for `sock` (the one quinn gets) and returns the descriptor to
/// watch; None when the socket takes no IP_RECVERR (an unreachable port then shows as no
/// answer).
pub(super) fn watch(sock: &std::net::UdpSocket) -> Option<std::net::UdpSocket> {
    use nix::sys::socket::{setsockopt, sockopt};
    let v4 = setsockopt(sock, sockopt::Ipv4RecvErr, &true);
    let v6 = setsockopt(sock, sockopt::Ipv6RecvErr, &true);
    if v4.is_err() && v6.is_err() {
        return None;
    }
    sock.try_clone().ok()
}

/// Turns IP_RECVERR off again once the handshake is over, which also empties the error
/// queue: past it quinn's own deadlines judge a path, and a queue nobody reads would only
/// take room from the receive buffer.
pub(super) fn unwatch(sock: Option<std::net::UdpSocket>) {
    use nix::sys::socket::{setsockopt, sockopt};
    if let Some(sock) = sock {
        let _ = setsockopt(&sock, sockopt::Ipv4RecvErr, &false);
        let _ = setsockopt(&sock, sockopt::Ipv6RecvErr, &false);
    }
}

/// Resolves once a port unreachable from `server` is queued on `watched` (run on the QUIC
/// thread: tokio registers it there); never, if it cannot be watched. Only the server's
/// host says its port is closed: one from any other address (forged) is read and ignored.
pub(super) async fn unreachable(watched: Option<std::net::UdpSocket>, server: IpAddr) {
    let registered = watched.and_then(|w| {
        // Safety: the UdpSocket owns its descriptor, open and the same until the AsyncFd
        // (which owns the socket) is dropped.
        unsafe { AsyncFd::register_with_interest(w, Interest::ERROR) }.ok()
    });
    let Some(errors) = registered else {
        return std::future::pending().await;
    };
    loop {
        let Ok(mut ready) = errors.ready(Interest::ERROR).await else {
            return std::future::pending().await;
        };
        if queued_unreachable(errors.get_ref(), server) {
            return;
        }
        ready.clear_ready();
    }
}

/// Empties the socket's error queue; whether it held a port unreachable from `server`.
fn queued_unreachable(sock: &std::net::UdpSocket, server: IpAddr) -> bool {
    let mut found = false;
    let mut buf = [0u8; 64];
    // Bounded: the queue holds what the receive buffer allows; a few suffice.
    for _ in 0..16 {
        let Ok(Some((error, _))) = crate::transport::icmp::queued(sock, &mut buf) else {
            break;
        };
        found |= error.is_some_and(|(ee, from)| {
            ee.ee_errno == libc::ECONNREFUSED as u32 && from.to_canonical() == server.to_canonical()
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's port unreachable for a datagram to 127.0.0.2 counts for a server there
    /// only: to a client of 127.0.0.1 it is another host's word.
    #[test]
    fn a_port_unreachable_counts_only_from_the_servers_address() {
        let closed = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        let to = closed.local_addr().unwrap();
        drop(closed);
        for (server, counts) in [("127.0.0.1", false), ("127.0.0.2", true)] {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let watched = watch(&sock).expect("IP_RECVERR");
            sock.send_to(b"x", to).unwrap();
            // Loopback queues the ICMP error within the send; a read tells it for sure.
            let mut buf = [0u8; 8];
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let _ = sock.recv(&mut buf);
            let got = queued_unreachable(&watched, server.parse().unwrap());
            assert_eq!(
                got, counts,
                "a port unreachable from {to} to a client of {server}"
            );
        }
    }
}
