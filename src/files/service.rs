//! `serve --files DIR` as a service: one request per connection (stream protocol), one
//! transfer per datagram request on a socket of its own (datagram protocol). Disks block, so
//! connections get blocking sockets and a thread each.

use std::time::Duration;

use tracing::warn;

use crate::service::stats::{Stats, Tally};
use crate::service::{
    ConnEnd, Datagrams, Drive, Requests, Screen, Service, Session, Step, Unproven,
};
use crate::transport::{self, Conn, DatagramSocket, PeerAddr};

use super::packet::Packet;
use super::store::Store;

/// How long a file transfer connection may stay silent, unless --idle-timeout says.
const FILE_IDLE: Duration = Duration::from_secs(30);

/// The file service: the directory, and the simulated loss for datagram transfers.
#[derive(Clone, Debug)]
pub(crate) struct Files {
    pub store: Store,
    /// --drop and --reorder, for datagram transfers.
    pub impair: (f64, f64),
    pub stats: &'static Stats,
    /// A transfer stalls at most this long between two reads (default [`FILE_IDLE`]).
    pub idle_timeout: Option<Duration>,
    /// TFTP requests without options answered at once from any source (--tftp-rfc1350).
    pub tftp_rfc1350: bool,
}

/// One connection of the file service.
pub(crate) struct FileSession {
    conn: Conn,
    files: Files,
}

impl Service for Files {
    type Session = FileSession;
    type Requests = Files;

    fn blocks(&self) -> bool {
        true
    }

    fn open(&self, conn: Conn, _: Drive) -> FileSession {
        let idle = self.idle_timeout.unwrap_or(FILE_IDLE);
        if let Err(e) = conn
            .set_read_timeout(Some(idle))
            .and_then(|_| conn.set_write_timeout(Some(idle)))
        {
            warn!("{}: cannot set the idle timeout: {e}", conn.peer());
        }
        // The request and each chunk must come whole within the idle timeout, and so must
        // each TLS record from its first byte (no frame begins before a record ends).
        conn.set_frame_time(Some(idle));
        conn.limit_records(idle, true, "--idle-timeout");
        FileSession {
            conn,
            files: self.clone(),
        }
    }

    /// The protocol's refusal ("ERR busy: ..." in a frame), which a client prints, instead
    /// of a bare close.
    fn refusal(&self, why: &str) -> Option<Vec<u8>> {
        let mut frame = Vec::new();
        crate::transport::framing::Framing::Length
            .encode(format!("ERR {why}").as_bytes(), &mut frame);
        Some(frame)
    }

    fn datagrams(&self) -> Datagrams<Files> {
        Datagrams::Requests(self.clone())
    }
}

impl Session for FileSession {
    fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Serves the connection's request to its end (a blocking socket).
    fn pump(&mut self, _: &mut [u8]) -> Step {
        let idle = self.files.idle_timeout.unwrap_or(FILE_IDLE);
        let (bytes_in, bytes_out) = super::stream::serve(&self.conn, &self.files.store, idle);
        let stats = self.files.stats;
        stats.message(&mut Tally::default(), bytes_in as usize, bytes_out as usize);
        Step::Done(ConnEnd::PeerClosed)
    }

    /// The transfer's own line ("sent ...", "stored ...") was the connection's log line.
    fn end(self, _: &ConnEnd) {}
}

impl Files {
    /// One request on a transfer socket of its own; `unproven` is held until a TFTP
    /// client's first answer proves its source.
    fn serve(
        &self,
        sock: &DatagramSocket,
        from: &PeerAddr,
        request: &[u8],
        unproven: Option<Unproven>,
    ) {
        crate::hexdump::dump_if(crate::hexdump::Way::In, from, request);
        let result =
            transport::ephemeral_datagram(sock.proto(), sock.local(), false).and_then(|mut tid| {
                tid.answer_as(sock);
                if super::tftp::is_tftp(request) {
                    let tftp = super::tftp::Tftp {
                        store: &self.store,
                        impair: self.impair,
                        rfc1350: self.tftp_rfc1350,
                        whole_refusals: from.unforgeable(),
                    };
                    return super::tftp::serve_request(
                        &tid,
                        from.clone(),
                        request,
                        &tftp,
                        unproven,
                    );
                }
                super::datagram::serve_request(
                    &tid,
                    from.clone(),
                    request,
                    &self.store,
                    self.impair,
                )
            });
        super::datagram::log_request(from, result);
    }
}

impl Requests for Files {
    /// A transfer on a socket of its own, near the server's address, as TFTP does; a TFTP
    /// client's request is told apart by its first bytes.
    fn handle(&self, sock: &DatagramSocket, from: &PeerAddr, request: &[u8]) {
        self.serve(sock, from, request, None);
    }

    fn handle_unproven(
        &self,
        sock: &DatagramSocket,
        from: &PeerAddr,
        request: &[u8],
        unproven: Unproven,
    ) {
        self.serve(sock, from, request, Some(unproven));
    }

    /// netecho's protocol proves a source before any thread (a cookie HELLO answered by
    /// the receive loop); TFTP's proof is the client's first answer to the transfer's own
    /// socket, so a TFTP request from a source that could be forged takes one of the few
    /// threads kept for such requests.
    fn screen(&self, from: &PeerAddr, request: &[u8]) -> Screen {
        if !super::tftp::is_tftp(request) {
            return super::datagram::screen(from, request);
        }
        if from.unforgeable() {
            Screen::Serve
        } else {
            Screen::Unproven
        }
    }

    /// A TFTP client hears TFTP's ERROR, no larger than its request; a malformed TFTP
    /// request, nothing.
    fn busy_for(&self, why: &str, request: &[u8]) -> Option<Vec<u8>> {
        if super::tftp::is_tftp(request) {
            super::tftp::codec::Packet::decode(request)?;
            let message = format!("busy: {why}");
            return super::tftp::codec::error_within(0, &message, request.len());
        }
        self.busy(why)
    }

    fn busy(&self, why: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        Packet::Error {
            message: &format!("busy: {why}"),
        }
        .encode(&mut out);
        Some(out)
    }
}
