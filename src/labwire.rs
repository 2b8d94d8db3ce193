//! The lab's control protocol, spoken on the control port of `serve --lab` by `lab HOST`: a
//! codec, bytes only. Each message is a frame: a 2-byte big-endian length, then that many
//! bytes, at most [`MAX_FRAME`]; the first byte of a frame says which message it is. The
//! client's first frame is [`Msg::Hello`] with [`MAGIC`] and its [`VERSION`]; anything else
//! is refused with one [`Msg::Error`] and the connection closed.
//!
//! A run: Hello -> (Queued ...) -> Go -> the client measures the announced ports -> Done ->
//! Account. The server may send Error at any point (refused, queue full, time is up), then
//! it closes.
//!
//! An offer grows without a new version: a client measures the services whose names it
//! knows and passes over the rest. A secure service (tls, quic) carries the fingerprint of
//! its certificate in its name, `tls sha256 ABCD...` (64 hex digits, as `--pin` takes them):
//! a client that knows no fingerprints (control protocol 1 before tls and quic) knows no
//! such name, so it measures what it did and never a port it cannot trust.

use std::fmt;
use std::io::{self, Read, Write};

/// The control port of `serve --lab`, and the one `lab HOST` connects to unless told.
pub(crate) const LAB_PORT: u16 = 3235;
/// The first bytes of a Hello: a server tells its clients from anything else that connects.
pub(crate) const MAGIC: &[u8; 4] = b"NELB";
/// The control protocol's version; a server refuses every other.
pub(crate) const VERSION: u8 = 1;
/// The largest frame either side sends or accepts, its length prefix excluded.
pub(crate) const MAX_FRAME: usize = 1024;
/// Services one offer may announce.
pub(crate) const MAX_SERVICES: usize = 16;
/// The longest error text or protocol name, in bytes.
const MAX_TEXT: usize = 512;
/// The longest protocol name an offer carries, a fingerprint included; past
/// [`MAX_FRAME`] an offer leaves out its last services.
const MAX_NAME: usize = 112;
/// What separates a secure service's protocol from its certificate's fingerprint.
const SHA256: &str = " sha256 ";

/// One service a lab server offers: a protocol by name ("tcp", "udp", "tls") and its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Service {
    pub proto: String,
    pub port: u16,
    /// The SHA-256 fingerprint of the certificate a secure service presents, as text.
    pub sha256: Option<String>,
}

impl Service {
    /// A service without a certificate.
    pub(crate) fn plain(proto: &str, port: u16) -> Service {
        Service {
            proto: proto.into(),
            port,
            sha256: None,
        }
    }

    /// Its name on the wire: the protocol, then its fingerprint when it has one.
    fn wire_name(&self) -> String {
        match &self.sha256 {
            Some(fp) => format!("{}{SHA256}{fp}", self.proto),
            None => self.proto.clone(),
        }
    }

    fn from_wire(name: String, port: u16) -> Service {
        match name.split_once(SHA256) {
            Some((proto, fp)) => Service {
                proto: proto.into(),
                port,
                sha256: Some(fp.into()),
            },
            None => Service {
                proto: name,
                port,
                sha256: None,
            },
        }
    }
}

/// What a run is given when its turn comes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Offer {
    /// The run's number on this server, for both sides' logs.
    pub run: u32,
    /// How long it waited in the queue.
    pub waited_ms: u32,
    /// Other runs measuring at this moment.
    pub measuring: u16,
    /// Runs the server lets measure at once.
    pub max_runs: u16,
    /// The longest a run may take from here; past it the server takes its turn back.
    pub max_ms: u32,
    /// Datagram replies per second each client address gets at most (0: no limit).
    pub rate: u32,
    pub services: Vec<Service>,
}

/// The server's account of a finished run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    /// Other runs that measured at some point while this one did.
    pub shared_with: u32,
    /// The most runs measuring at once during this one, itself included.
    pub most_at_once: u16,
    pub waited_ms: u32,
    pub measured_ms: u32,
}

/// A control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    /// Client, first: the magic and the version it speaks.
    Hello { version: u8 },
    /// Server: the run waits; `place` 1 is next. Sent again when the place changes, and
    /// every few seconds as a sign of life.
    Queued { place: u16, measuring: u16 },
    /// Server: measure now.
    Go(Offer),
    /// Client: finished measuring.
    Done,
    /// Server: the run's account; then it closes.
    Account(Account),
    /// Either side: why it stops; then it closes.
    Error(String),
}

impl Msg {
    /// The message's name, for a line about one that came out of turn.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Msg::Hello { .. } => "Hello",
            Msg::Queued { .. } => "Queued",
            Msg::Go(_) => "Go",
            Msg::Done => "Done",
            Msg::Account(_) => "Account",
            Msg::Error(_) => "Error",
        }
    }
}

const HELLO: u8 = 1;
const QUEUED: u8 = 2;
const GO: u8 = 3;
const DONE: u8 = 4;
const ACCOUNT: u8 = 5;
const ERROR: u8 = 6;

/// Why bytes are not a control message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WireError {
    /// A length prefix past [`MAX_FRAME`] (or zero).
    Length(usize),
    /// The start of a TLS record where a frame's length belongs: the peer speaks TLS.
    Tls,
    /// A first frame that is not a Hello with [`MAGIC`].
    NotLab,
    /// A Hello of another version.
    Version(u8),
    /// A frame cut short, with bytes left over, or with a field out of bounds.
    Malformed(&'static str),
    /// A message type this version does not know.
    Unknown(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Length(n) => write!(
                f,
                "a frame of {n} bytes (at most {MAX_FRAME}): not the lab's control protocol"
            ),
            WireError::Tls => write!(f, "a TLS record where a control frame belongs"),
            WireError::NotLab => write!(f, "no lab Hello: not the lab's control protocol"),
            WireError::Version(v) => write!(
                f,
                "control protocol version {v}; this side speaks version {VERSION}: run the same \
                 netecho version on both machines"
            ),
            WireError::Malformed(what) => write!(f, "a malformed control message ({what})"),
            WireError::Unknown(t) => write!(f, "an unknown control message (type {t})"),
        }
    }
}

impl std::error::Error for WireError {}

impl Msg {
    /// The frame of this message, length prefix included.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0, 0];
        match self {
            Msg::Hello { version } => {
                b.push(HELLO);
                b.extend_from_slice(MAGIC);
                b.push(*version);
            }
            Msg::Queued { place, measuring } => {
                b.push(QUEUED);
                b.extend_from_slice(&place.to_be_bytes());
                b.extend_from_slice(&measuring.to_be_bytes());
            }
            Msg::Go(offer) => encode_offer(&mut b, offer),
            Msg::Done => b.push(DONE),
            Msg::Account(a) => {
                b.push(ACCOUNT);
                b.extend_from_slice(&a.shared_with.to_be_bytes());
                b.extend_from_slice(&a.most_at_once.to_be_bytes());
                b.extend_from_slice(&a.waited_ms.to_be_bytes());
                b.extend_from_slice(&a.measured_ms.to_be_bytes());
            }
            Msg::Error(text) => {
                b.push(ERROR);
                put_text(&mut b, text, MAX_TEXT);
            }
        }
        let len = (b.len() - 2) as u16;
        b[..2].copy_from_slice(&len.to_be_bytes());
        b
    }

    /// The message of one frame's body (its length prefix already taken off).
    pub(crate) fn decode(body: &[u8]) -> Result<Msg, WireError> {
        let mut r = Fields(body);
        let msg = match r.u8()? {
            HELLO => {
                if r.take(MAGIC.len())? != MAGIC {
                    return Err(WireError::NotLab);
                }
                Msg::Hello { version: r.u8()? }
            }
            QUEUED => Msg::Queued {
                place: r.u16()?,
                measuring: r.u16()?,
            },
            GO => Msg::Go(decode_offer(&mut r)?),
            DONE => Msg::Done,
            ACCOUNT => Msg::Account(Account {
                shared_with: r.u32()?,
                most_at_once: r.u16()?,
                waited_ms: r.u32()?,
                measured_ms: r.u32()?,
            }),
            ERROR => Msg::Error(r.text()?),
            other => return Err(WireError::Unknown(other)),
        };
        if !r.0.is_empty() {
            return Err(WireError::Malformed("bytes after the message"));
        }
        Ok(msg)
    }

    /// The first message of a connection, which must be a Hello of this version.
    pub(crate) fn decode_hello(body: &[u8]) -> Result<Msg, WireError> {
        if body.first() != Some(&HELLO) || body.get(1..1 + MAGIC.len()) != Some(MAGIC) {
            return Err(WireError::NotLab);
        }
        match Msg::decode(body)? {
            Msg::Hello { version } if version != VERSION => Err(WireError::Version(version)),
            hello => Ok(hello),
        }
    }
}

/// The length a frame's 2-byte prefix announces, checked against [`MAX_FRAME`].
pub(crate) fn frame_len(prefix: [u8; 2]) -> Result<usize, WireError> {
    // A record's type (change_cipher_spec to application_data) and major version 3: a
    // length no frame has, as every TLS record's is past MAX_FRAME.
    if let [20..=23, 3] = prefix {
        return Err(WireError::Tls);
    }
    match u16::from_be_bytes(prefix) as usize {
        n @ 1..=MAX_FRAME => Ok(n),
        n => Err(WireError::Length(n)),
    }
}

fn encode_offer(b: &mut Vec<u8>, o: &Offer) {
    b.push(GO);
    b.extend_from_slice(&o.run.to_be_bytes());
    b.extend_from_slice(&o.waited_ms.to_be_bytes());
    b.extend_from_slice(&o.measuring.to_be_bytes());
    b.extend_from_slice(&o.max_runs.to_be_bytes());
    b.extend_from_slice(&o.max_ms.to_be_bytes());
    b.extend_from_slice(&o.rate.to_be_bytes());
    let count_at = b.len();
    b.push(0);
    for s in o.services.iter().take(MAX_SERVICES) {
        let mut entry = Vec::new();
        put_text(&mut entry, &s.wire_name(), MAX_NAME);
        entry.extend_from_slice(&s.port.to_be_bytes());
        // The frame's length prefix (2 bytes) is not part of its bound.
        if b.len() - 2 + entry.len() > MAX_FRAME {
            break;
        }
        b.extend(entry);
        b[count_at] += 1;
    }
}

fn decode_offer(r: &mut Fields) -> Result<Offer, WireError> {
    let mut offer = Offer {
        run: r.u32()?,
        waited_ms: r.u32()?,
        measuring: r.u16()?,
        max_runs: r.u16()?,
        max_ms: r.u32()?,
        rate: r.u32()?,
        services: Vec::new(),
    };
    let count = r.u8()? as usize;
    if count > MAX_SERVICES {
        return Err(WireError::Malformed("too many services"));
    }
    for _ in 0..count {
        let name = r.text()?;
        offer.services.push(Service::from_wire(name, r.u16()?));
    }
    Ok(offer)
}

/// A text field: a 2-byte length, then UTF-8, at most `max` bytes (cut at a character
/// boundary when longer).
fn put_text(b: &mut Vec<u8>, text: &str, max: usize) {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    b.extend_from_slice(&(end as u16).to_be_bytes());
    b.extend_from_slice(&text.as_bytes()[..end]);
}

/// A frame's body read field by field; every read checks what is left.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Malformed("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self) -> Result<String, WireError> {
        let len = self.u16()? as usize;
        if len > MAX_TEXT {
            return Err(WireError::Malformed("text too long"));
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Malformed("text not UTF-8"))
    }
}

/// Why a control message could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed before a whole frame came.
    Closed,
    /// The deadline passed first.
    Timeout,
    Io(io::Error),
    Wire(WireError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "the connection closed"),
            ReadError::Timeout => write!(f, "no control message in time"),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Wire(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads one frame's body, whole. The reader bounds the wait (a connection
/// [`within`](crate::transport::Conn::within) a deadline): a peer sending a byte at a time
/// cannot hold it past the deadline, and a length past [`MAX_FRAME`] is refused before
/// any of its body is read.
pub(crate) fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, ReadError> {
    let mut prefix = [0u8; 2];
    read_exact(r, &mut prefix)?;
    let len = frame_len(prefix).map_err(ReadError::Wire)?;
    let mut body = vec![0u8; len];
    read_exact(r, &mut body)?;
    Ok(body)
}

/// Reads and decodes one message.
pub(crate) fn read_msg(r: &mut impl Read) -> Result<Msg, ReadError> {
    let body = read_frame(r)?;
    Msg::decode(&body).map_err(ReadError::Wire)
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), ReadError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ReadError::Closed,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ReadError::Timeout,
        _ => ReadError::Io(e),
    })
}

/// Sends one message, whole; the writer bounds the wait, so a peer that reads nothing
/// cannot hold it.
pub(crate) fn write_msg(w: &mut impl Write, msg: &Msg) -> io::Result<()> {
    w.write_all(&msg.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_message() -> Vec<Msg> {
        vec![
            Msg::Hello { version: VERSION },
            Msg::Queued {
                place: 7,
                measuring: 4,
            },
            Msg::Go(Offer {
                run: 12,
                waited_ms: 3400,
                measuring: 3,
                max_runs: 4,
                max_ms: 120_000,
                rate: 50_000,
                services: vec![
                    Service::plain("tcp", 40001),
                    Service::plain("udp", 40002),
                    Service {
                        proto: "quic".into(),
                        port: 40003,
                        sha256: Some(["AB"; 32].join(":")),
                    },
                ],
            }),
            Msg::Done,
            Msg::Account(Account {
                shared_with: 29,
                most_at_once: 4,
                waited_ms: 12_000,
                measured_ms: 1500,
            }),
            Msg::Error("the queue is full (64 runs); try again in a minute".into()),
        ]
    }

    fn body(frame: &[u8]) -> &[u8] {
        let len = frame_len([frame[0], frame[1]]).unwrap();
        assert_eq!(len, frame.len() - 2);
        &frame[2..]
    }

    #[test]
    fn every_message_comes_back_as_it_was_sent() {
        for msg in every_message() {
            let frame = msg.encode();
            assert!(frame.len() - 2 <= MAX_FRAME, "{msg:?}");
            assert_eq!(Msg::decode(body(&frame)), Ok(msg));
        }
    }

    #[test]
    fn every_truncation_is_refused_without_a_panic() {
        for msg in every_message() {
            let frame = msg.encode();
            let body = body(&frame);
            for cut in 0..body.len() {
                assert!(Msg::decode(&body[..cut]).is_err(), "{msg:?} cut at {cut}");
            }
            let mut longer = body.to_vec();
            longer.push(0);
            assert_eq!(
                Msg::decode(&longer),
                Err(WireError::Malformed("bytes after the message"))
            );
        }
    }

    #[test]
    fn a_first_frame_that_is_not_this_versions_hello_is_refused() {
        let hello = Msg::Hello { version: VERSION }.encode();
        assert!(Msg::decode_hello(body(&hello)).is_ok());
        let other = Msg::Hello { version: 9 }.encode();
        assert_eq!(Msg::decode_hello(body(&other)), Err(WireError::Version(9)));
        assert_eq!(Msg::decode_hello(b"GET / HTTP/1.1"), Err(WireError::NotLab));
        assert_eq!(
            Msg::decode_hello(body(&Msg::Done.encode())),
            Err(WireError::NotLab)
        );
        assert_eq!(Msg::decode_hello(&[]), Err(WireError::NotLab));
        // An HTTP request's first two bytes, read as a length, are past the limit.
        assert_eq!(frame_len(*b"GE"), Err(WireError::Length(0x4745)));
        assert_eq!(frame_len([0, 0]), Err(WireError::Length(0)));
        // A TLS ClientHello or alert where a frame belongs.
        assert_eq!(frame_len([22, 3]), Err(WireError::Tls));
        assert_eq!(frame_len([21, 3]), Err(WireError::Tls));
    }

    #[test]
    fn frames_are_read_whole_one_after_another_and_a_cut_one_is_a_close() {
        let mut bytes = Msg::Done.encode();
        bytes.extend(Msg::Hello { version: VERSION }.encode());
        bytes.extend(&Msg::Done.encode()[..2]);
        let mut r = io::Cursor::new(bytes);
        assert_eq!(read_msg(&mut r).unwrap(), Msg::Done);
        assert_eq!(read_msg(&mut r).unwrap(), Msg::Hello { version: VERSION });
        assert!(matches!(read_msg(&mut r), Err(ReadError::Closed)));
        // A length past the limit is refused before its body is waited for.
        let mut r = io::Cursor::new(vec![0x40, 0, 1]);
        assert!(matches!(
            read_frame(&mut r),
            Err(ReadError::Wire(WireError::Length(0x4000)))
        ));
        let mut out = Vec::new();
        write_msg(&mut out, &Msg::Done).unwrap();
        assert_eq!(out, Msg::Done.encode());
    }

    #[test]
    fn long_texts_and_lists_are_cut_to_their_bounds() {
        let long = "é".repeat(MAX_TEXT);
        let frame = Msg::Error(long).encode();
        assert!(frame.len() - 2 <= MAX_FRAME);
        let Ok(Msg::Error(text)) = Msg::decode(body(&frame)) else {
            panic!("an error message");
        };
        assert!(text.len() <= MAX_TEXT && text.chars().all(|c| c == 'é'));
        let many = Offer {
            run: 1,
            waited_ms: 0,
            measuring: 0,
            max_runs: 1,
            max_ms: 1,
            rate: 0,
            services: vec![Service::plain("udp", 1); 100],
        };
        let frame = Msg::Go(many.clone()).encode();
        assert!(frame.len() - 2 <= MAX_FRAME);
        let Ok(Msg::Go(offer)) = Msg::decode(body(&frame)) else {
            panic!("an offer");
        };
        assert_eq!(offer.services.len(), MAX_SERVICES);
        // Long names: as many services as the frame holds, each whole.
        let secure = Service {
            proto: "quic".into(),
            port: 1,
            sha256: Some("F".repeat(MAX_NAME)),
        };
        let long = Offer {
            services: vec![secure; MAX_SERVICES],
            ..many
        };
        let frame = Msg::Go(long).encode();
        assert!(frame.len() - 2 <= MAX_FRAME);
        let Ok(Msg::Go(offer)) = Msg::decode(body(&frame)) else {
            panic!("an offer");
        };
        assert!(
            (1..MAX_SERVICES).contains(&offer.services.len()),
            "{offer:?}"
        );
    }

    #[test]
    fn a_secure_service_is_a_name_a_client_of_tcp_and_udp_only_passes_over() {
        let tls = Service {
            proto: "tls".into(),
            port: 7,
            sha256: Some(["0A"; 32].join(":")),
        };
        let quic = Service {
            proto: "quic".into(),
            ..tls.clone()
        };
        assert_eq!(
            tls.wire_name(),
            format!("tls sha256 {}", ["0A"; 32].join(":"))
        );
        assert!(quic.wire_name().len() <= MAX_NAME);
        // The names such a client looks up, compared as it compares them: whole.
        for known in [
            "tcp",
            "udp",
            "quic",
            "raw",
            "unix",
            "unix-dgram",
            "unix-seqpacket",
        ] {
            assert_ne!(tls.wire_name(), known);
            assert_ne!(quic.wire_name(), known);
        }
        assert_eq!(Service::from_wire(tls.wire_name(), 7), tls);
        assert_eq!(
            Service::from_wire("udp".into(), 9),
            Service::plain("udp", 9)
        );
    }

    #[test]
    fn garbage_never_panics() {
        // xorshift: the same 20,000 inputs every run, no crate needed.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let known = every_message();
        for i in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                // Mostly valid types, so the fields' checks are reached too.
                let template = known[i % known.len()].encode();
                bytes.splice(0..0, template[2..].iter().take(1 + i % 8).copied());
            }
            let _ = Msg::decode(&bytes);
            let _ = Msg::decode_hello(&bytes);
            if bytes.len() >= 2 {
                let _ = frame_len([bytes[0], bytes[1]]);
            }
        }
    }
}
