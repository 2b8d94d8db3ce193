//! `netecho get` and `netecho put`: one file to or from a `serve --files` server, over a
//! stream (files::stream) or datagrams (files::datagram).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tracing::info;

use crate::endpoint::{Endpoint, Target};
use crate::error::{Call, silent_peer};
use crate::files::datagram::{self, Settings};
use crate::files::download::Download;
use crate::files::store::{Output, Partial, check_output};
use crate::files::{Transfer, stream};
use crate::report::progress::Progress;
use crate::transport::framing::Framing;
use crate::transport::message::Carrier;
use crate::transport::quic::{QuicMode, QuicOptions};
use crate::transport::{self, SocketOptions};

/// Where a file service is and how to talk to it: shared by get and put.
pub(crate) struct TransferConfig {
    pub endpoint: Target,
    /// Datagrams: blocks in flight.
    pub window: u16,
    /// Datagrams: data bytes per block.
    pub block_size: u16,
    /// Datagrams: the fraction of sent datagrams dropped, and held back, on purpose.
    pub drop: f64,
    pub reorder: f64,
    /// Datagrams: how long to wait for the server's first answer; streams: for the connect.
    pub timeout: Duration,
    /// Streams: the longest silence of the server (no byte sent or taken).
    pub silence: Duration,
    /// Datagrams: how often to send the request again when no answer comes.
    pub retries: u32,
    /// Streams: TLS, and whom it trusts.
    pub tls: Option<crate::transport::tls::TlsEnd>,
}

fn settings(t: &TransferConfig) -> Settings {
    Settings {
        window: t.window,
        block_size: t.block_size,
        drop: t.drop,
        reorder: t.reorder,
        linger: datagram::CLIENT_LINGER,
        version: crate::files::packet::Version::V2,
    }
}

/// `get`: which file, and where it goes.
pub(crate) struct GetConfig {
    pub transfer: TransferConfig,
    /// The file's name on the server.
    pub name: String,
    /// Where to write it (`-`: standard output); without it, the name's last part in this
    /// directory.
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    pub force: bool,
    /// The largest file accepted (--max-file); over a stream the free space where OUT goes
    /// bounds it too (a udp download learns the size only at its end).
    pub max_file: Option<u64>,
}

/// `put`: which local file, and its name on the server.
pub(crate) struct PutConfig {
    pub transfer: TransferConfig,
    pub local: PathBuf,
    /// Its name on the server; without it, the local file's name.
    pub name: Option<String>,
}

/// The first concrete address of the server, for a datagram transfer.
fn datagram_target(target: &Target) -> Result<Endpoint> {
    transport::target_candidates(target)?
        .first()
        .map(Target::endpoint)
        .context("no address")
}

/// Whether the file goes over the stream protocol (a reliable socket), or the datagram
/// protocol, which resends what is lost itself.
fn reliable(target: &Target) -> bool {
    Carrier::of(target.proto.kind(), Framing::None).reliable()
}

/// Ctrl-C (or SIGTERM, or SIGHUP from a closed terminal) in the middle of a download removes
/// its temporary file, then ends the process as the signal would (130, 143, 129).
fn remove_partials_on_signal() -> Result<()> {
    let shutdown = crate::signal::Shutdown::install()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                if let Ok(Some(signal)) = shutdown.wait_signal(None) {
                    crate::files::store::remove_partials();
                    // Not eprintln: stderr may be a closed pipe, and the exit must come.
                    let _ = std::io::Write::write_fmt(
                        &mut std::io::stderr(),
                        format_args!("netecho: {signal}: transfer stopped\n"),
                    );
                    crate::signal::die_of(signal);
                }
            }
        })
        .context("cannot start the thread that watches for Ctrl-C")?;
    Ok(())
}

fn to_stdout(args: &GetConfig) -> bool {
    args.output.as_deref() == Some(Path::new("-"))
}

/// Where `get` writes: standard output for `-o -`, else a file checked before the server
/// is bothered (a directory, a device, a FIFO, a file without --force are refused), and
/// how the summary line names it.
fn download(args: &GetConfig) -> Result<(Download, String)> {
    if to_stdout(args) {
        return Ok((Download::stdout()?, "standard output".into()));
    }
    let out = match &args.output {
        Some(out) => out.clone(),
        None => PathBuf::from(
            Path::new(&args.name)
                .file_name()
                .ok_or_else(|| anyhow!("'{}' has no file name; give -o OUT", args.name))?,
        ),
    };
    let output = Output {
        flag: "-o",
        path: &out,
    };
    check_output(output, args.force, &args.name)?;
    let partial = Partial::create(&output, args.force)?;
    Ok((partial.into(), out.display().to_string()))
}

pub(crate) fn get(args: GetConfig) -> Result<()> {
    remove_partials_on_signal()?;
    let t = &args.transfer;
    let endpoint = &t.endpoint;
    let (out, shown) = download(&args)?;
    let (bar, done) = Progress::start_bytes(format!("get {}", args.name), 0);
    let progress = |bytes: u64| done.done.store(bytes, Ordering::Relaxed);
    let transfer: Transfer = if reliable(endpoint) {
        let conn = connect(t)?;
        stream::get(
            &conn,
            &args.name,
            out,
            (args.force, args.max_file),
            &|got, size| {
                done.total.store(size, Ordering::Relaxed);
                progress(got)
            },
        )
        .map_err(|e| silent(e, "get", t.silence))
    } else {
        let target = datagram_target(endpoint)?;
        let sock = transport::ephemeral_datagram(target.proto, &target.addr, true)?;
        let server = transport::peer_addr(&target)?;
        datagram::get(
            &sock,
            &server,
            &args.name,
            out,
            (args.force, args.max_file),
            &settings(t),
            t.timeout,
            t.retries,
            &progress,
        )
    }
    .map_err(|e| match to_stdout(&args) {
        true => as_stdouts(e),
        false => other_service(e, endpoint),
    })
    .with_context(|| format!("get '{}' from {endpoint}", args.name))?;
    drop(bar);
    info!(
        "{}",
        transfer.summary(
            &format!("got '{}' into {shown}", args.name),
            crate::files::GOT
        )
    );
    Ok(())
}

/// A `serve --exec` server where a `--files` one was meant, worded with the address as
/// the user typed it.
fn other_service(e: anyhow::Error, endpoint: &Target) -> anyhow::Error {
    match e.downcast_ref::<crate::error::Runs>() {
        Some(runs) => runs.at(endpoint),
        None => e,
    }
}

/// The server's "already exists" with the command that puts the file under another name.
fn name_taken(e: anyhow::Error, endpoint: &Target, local: &Path) -> anyhow::Error {
    if !format!("{e:#}").contains("already exists on the server") {
        return e;
    }
    let local = crate::report::meta::shell_quote(&local.to_string_lossy());
    anyhow!("{e:#}: `netecho put {} {local} NEWNAME`", endpoint.typed())
}

/// `get -o -`'s error, the file's failure told as stdout's: a reader gone (`| head`) is the
/// quiet end of any command, and a full disk is said of stdout, never of "the file".
fn as_stdouts(e: anyhow::Error) -> anyhow::Error {
    let failed = e
        .chain()
        .find_map(|c| c.downcast_ref::<crate::files::FileWrite>());
    if let Some(crate::files::FileWrite(w)) = failed {
        let copy = w.raw_os_error().map(std::io::Error::from_raw_os_error);
        return crate::error::stdout_write(copy.unwrap_or_else(|| w.kind().into()));
    }
    // A reader gone may end the transfer by another error first: the pipe itself tells.
    match crate::error::stdout_reader_gone() {
        true => crate::error::stdout_write(std::io::ErrorKind::BrokenPipe.into()),
        false => e,
    }
}

/// The file `put` uploads, opened, and its size: a regular file, checked before anything
/// goes out (a directory or a device has no size to announce, and would fail mid-way).
fn upload_source(path: &Path) -> Result<(File, u64)> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| match e.kind() {
        // `get -o -` writes to stdout; put cannot read stdin: a file's size goes first.
        std::io::ErrorKind::NotFound if path == Path::new("-") => anyhow!(
            "put reads no stdin (-): the file's size goes before its bytes; save the data to \
             a file first, then put that file"
        ),
        std::io::ErrorKind::NotFound => {
            anyhow!("{shown}: no such file; give the path of the file to upload")
        }
        std::io::ErrorKind::PermissionDenied => {
            anyhow!("{shown}: permission denied; put must be able to read the file")
        }
        _ => anyhow!("open {shown}: {e}"),
    })?;
    let meta = file.metadata().with_context(|| format!("stat {shown}"))?;
    if meta.is_dir() {
        return Err(anyhow!(
            "{shown} is a directory; put uploads one file: give a file in it (or a tar of it)"
        ));
    }
    if !meta.is_file() {
        return Err(anyhow!(
            "{shown} is not a regular file (a device, pipe or socket has no size to announce); \
             put uploads one file"
        ));
    }
    Ok((file, meta.len()))
}

pub(crate) fn put(args: PutConfig) -> Result<()> {
    let t = &args.transfer;
    let endpoint = &t.endpoint;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow!("{} has no file name; give NAME", args.local.display()))?,
    };
    let (mut file, size) = upload_source(&args.local)?;
    let (bar, done) = Progress::start_bytes(format!("put {name}"), size);
    let progress = |bytes: u64| done.done.store(bytes, Ordering::Relaxed);
    let transfer = if reliable(endpoint) {
        let conn = connect(t)?;
        stream::put(&conn, &mut file, size, &name, &progress)
            .map_err(|e| silent(e, "put", t.silence))
    } else {
        let target = datagram_target(endpoint)?;
        let sock = transport::ephemeral_datagram(target.proto, &target.addr, true)?;
        let server = transport::peer_addr(&target)?;
        datagram::put(
            &sock,
            &server,
            &mut file,
            size,
            &name,
            &settings(t),
            t.timeout,
            t.retries,
            &progress,
        )
    }
    .map_err(|e| other_service(e, endpoint))
    .map_err(|e| name_taken(e, endpoint, &args.local))
    .with_context(|| format!("put {} to {endpoint}", args.local.display()))?;
    drop(bar);
    info!(
        "{}",
        transfer.summary(&format!("put '{name}'"), crate::files::PUT)
    );
    if let Some(grew) = crate::files::grew(&file, size) {
        tracing::warn!("put {}: {grew}", args.local.display());
    }
    Ok(())
}

/// The connection of a stream transfer, on which no recv or send waits longer than the
/// silence allowed (SO_RCVTIMEO, SO_SNDTIMEO).
fn connect(t: &TransferConfig) -> Result<transport::Conn> {
    let conn = transport::connect_first(&t.endpoint, &request_reply(t))?;
    conn.set_read_timeout(Some(t.silence))
        .and_then(|()| conn.set_write_timeout(Some(t.silence)))
        .context("setsockopt SO_RCVTIMEO, SO_SNDTIMEO")?;
    Ok(conn)
}

/// A stream transfer's error, as the one line for a server that sent or took nothing for
/// `silence`; any other as it is.
fn silent(e: anyhow::Error, command: &str, silence: Duration) -> anyhow::Error {
    let advice = "is it a `netecho serve --files` server? For a slow one, raise --timeout";
    if let Some(stream::Idle(what)) = e.chain().find_map(|c| c.downcast_ref()) {
        let waited = format!("{command} waited for {what}");
        return silent_peer(Call::Recv, "the server", &waited, silence, advice);
    }
    let timed_out = |c: &(dyn std::error::Error + 'static)| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(transport::is_timeout)
    };
    match e.chain().any(timed_out) {
        true => silent_peer(
            Call::Send,
            "the server",
            &format!("{command} was sending"),
            silence,
            advice,
        ),
        false => e,
    }
}

/// A request, then a wait for its answer: TCP_NODELAY, or Nagle holds the request's last
/// small segment until the server's delayed ACK (40 ms a request). Over QUIC, one stream.
fn request_reply(t: &TransferConfig) -> SocketOptions {
    SocketOptions {
        nodelay: true,
        quic: QuicOptions {
            mode: QuicMode::Stream,
            ..QuicOptions::default()
        },
        tls: t.tls.clone(),
        connect_timeout: t.timeout,
        ..SocketOptions::default()
    }
}
