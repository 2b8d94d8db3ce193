//! What a server does with a client, whatever model schedules it: a [`Service`] (echo, files,
//! exec) opens a [`Session`] per connection and takes datagrams its own way. How clients are
//! scheduled (iterative, threads, event, fork) is the server's business, in `server/`.

pub(crate) mod datagram;
pub(crate) mod echo;
pub(crate) mod exec;
pub(crate) mod guard;
pub(crate) mod peers;
pub(crate) mod raw;
pub(crate) mod reaper;
pub(crate) mod stats;
pub(crate) mod table_hash;

use crate::transport::{Conn, DatagramSocket, PeerAddr};

pub(crate) use datagram::DatagramRules;
pub(crate) use echo::{ConnEnd, Step};

/// How a model drives a session's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drive {
    /// Blocking: one pump serves the connection to its end (threads, fork).
    Blocking,
    /// Non-blocking, polled beside the signalfd after each "would block" (iterative).
    Polled,
    /// Non-blocking in a level-triggered epoll loop: what is left to read is reported again,
    /// so a short read may end a pump (event).
    Epoll,
    /// A completion model (uring): the model receives and sends, the session is handed the
    /// bytes (`Session::received`) and never touches the socket.
    Completion,
}

/// What a server does with its clients.
pub(crate) trait Service: Send + Sync + 'static {
    /// One connection being served.
    type Session: Session;

    /// Whether serving a client waits on more than its socket (a disk, a program): such a
    /// service needs blocking sockets and a thread per client (`server::plan` decides).
    fn blocks(&self) -> bool;

    /// Starts serving an admitted connection, its socket driven as `drive` says.
    fn open(&self, conn: Conn, drive: Drive) -> Self::Session;

    /// Connections one source (an address, an IPv6 /64, a user of this host) may hold at
    /// once, when the service bounds them tighter than the model does: a service whose
    /// places are few keeps any one source from taking them all. `None`: the model's bound.
    fn per_source(&self) -> Option<usize> {
        None
    }

    /// Whether the service has room for one more connection from `conn`'s peer, asked
    /// after --allow, --deny and --max-conns let it in; why not, for [`Service::refusal`].
    fn room(&self, _conn: &Conn) -> Result<(), String> {
        Ok(())
    }

    /// How the service's protocol tells a connection that is not admitted why (the refusal
    /// is logged already): the bytes the server sends before it closes; `None` for a bare
    /// close.
    fn refusal(&self, _why: &str) -> Option<Vec<u8>> {
        None
    }

    /// What serves datagram requests, for services that take datagrams as requests.
    type Requests: Requests;

    /// How the service takes datagrams.
    fn datagrams(&self) -> Datagrams<Self::Requests>;
}

/// How a service takes datagrams.
pub(crate) enum Datagrams<R> {
    /// Answered as they are read, by the thread that reads them, with these rules (echo).
    Answered(DatagramRules),
    /// Each datagram is a request that may take long (a transfer, a program), handled on a
    /// thread of its own.
    Requests(R),
}

/// Handles datagram requests, each on a thread of its own.
pub(crate) trait Requests: Send + Sync + 'static {
    /// Handles one request from `from`: replies on `sock`, or on a socket of its own.
    fn handle(&self, sock: &DatagramSocket, from: &PeerAddr, request: &[u8]);

    /// The reply to a request that got no thread (`why` says why); `None` for silence.
    fn busy(&self, why: &str) -> Option<Vec<u8>>;

    /// The same reply, for a service whose answer depends on the request's own bytes.
    fn busy_for(&self, why: &str, _request: &[u8]) -> Option<Vec<u8>> {
        self.busy(why)
    }

    /// What the receive loop does with a request before any thread is spent on it.
    fn screen(&self, _from: &PeerAddr, _request: &[u8]) -> Screen {
        Screen::Serve
    }

    /// Handles a request screened as [`Screen::Unproven`]: `unproven` holds its place among
    /// such requests until the source proves itself (or the request ends).
    fn handle_unproven(
        &self,
        sock: &DatagramSocket,
        from: &PeerAddr,
        request: &[u8],
        unproven: Unproven,
    ) {
        drop(unproven);
        self.handle(sock, from, request);
    }
}

/// A request's fate in the receive loop, decided from its bytes and source alone.
pub(crate) enum Screen {
    /// A thread for it: its source has proven itself, or needs not.
    Serve,
    /// A thread for it among the few kept for sources that have not proven themselves.
    Unproven,
    /// This datagram sent back at once, no thread: never larger than the request unless the
    /// request proved its source.
    Answer(Vec<u8>),
    /// Nothing at all; the reason, for the debug log.
    Ignore(&'static str),
}

/// A place among the requests whose source has not proven itself, given back when dropped.
pub(crate) struct Unproven(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Unproven {
    /// Takes a place in `count`.
    pub(crate) fn take(count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Unproven {
        count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Unproven(std::sync::Arc::clone(count))
    }
}

impl Drop for Unproven {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The requests of a service that answers every datagram as it is read: there are none.
pub(crate) enum NoRequests {}

impl Requests for NoRequests {
    fn handle(&self, _: &DatagramSocket, _: &PeerAddr, _: &[u8]) {
        match *self {}
    }

    fn busy(&self, _: &str) -> Option<Vec<u8>> {
        match *self {}
    }
}

/// What [`Session::received_in_place`] did with a receive's bytes.
#[derive(Debug)]
pub(crate) enum InPlace {
    /// The reply is the receive's first `n` bytes, transformed where they came in; the
    /// connection goes on.
    Reply(usize),
    /// As `received`: the replies appended to `out`, and how the connection ended if it did.
    Appended(Option<ConnEnd>),
}

/// One connection being served.
pub(crate) trait Session: Send + 'static {
    /// The connection's socket.
    fn conn(&self) -> &Conn;

    /// Serves until the socket would block (a non-blocking socket) or to the end (a blocking
    /// one). `buf` is scratch space of at least `transport::MAX_MESSAGE` bytes.
    fn pump(&mut self, buf: &mut [u8]) -> Step;

    /// When the message under way must be complete, if one is (a started frame): a model
    /// that waits on a non-blocking socket pumps the session again by then, and the pump
    /// ends the connection if it is still unfinished.
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }

    /// Serves what a completion model (uring) received: `data` is one receive's bytes
    /// (empty: the peer closed), answered in place; the replies are appended to `out` as they
    /// go on the wire. `None` while the connection goes on, else how it ended (the replies
    /// already in `out` are sent first). A service that blocks never gets here
    /// (`server::plan` gives it threads).
    fn received(&mut self, data: &mut [u8], out: &mut Vec<u8>) -> Option<ConnEnd> {
        let _ = (data, out);
        Some(ConnEnd::Failed(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this service needs a blocking socket",
        )))
    }

    /// `received`, for a model that can send a reply from the receive's own buffer: a reply
    /// that is the message itself, transformed, stays in `data`, nothing copied. Asked only
    /// while none of this connection's replies wait in `out` or on the wire: it goes next.
    fn received_in_place(&mut self, data: &mut [u8], out: &mut Vec<u8>) -> InPlace {
        InPlace::Appended(self.received(data, out))
    }

    /// Counts this session's messages on its own tally only, and into the server's totals
    /// once, at its end: for a model whose threads serve sessions side by side (a thread
    /// each, or event loops and rings), so they do not contend on the shared totals for
    /// every message. The model must end every session before its summary.
    fn count_at_end(&mut self) {}

    /// Counts and logs the end of the connection.
    fn end(self, ended: &ConnEnd);
}
