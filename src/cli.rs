//! The command line: one struct per subcommand, with help that teaches.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use std::os::unix::ffi::OsStrExt;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::choice::{Choice, UnknownChoice};
use crate::client::bench::load::Limit;
use crate::client::bench::{BenchConfig, Servers};
use crate::client::exchange::ClientConfig;
use crate::client::exec::ExecConfig;
use crate::client::lab::{LabConfig, NetnsConfig};
use crate::client::ping::PingConfig;
use crate::client::send::SendConfig;
use crate::client::transfer::{GetConfig, PutConfig, TransferConfig};
use crate::endpoint::{Endpoint, Proto, SockProto, SocketKind, Target, join_port};
use crate::error::UsageError;
use crate::impair::Rng;
use crate::lesson::{Demo, Lang, LessonConfig};
use crate::logging::LogConfig;
use crate::relay::Route;
use crate::report::{Format, Layout};
use crate::server::lab::LabServeConfig;
use crate::server::{Model, Sched, ServeConfig, ServeExec, ServeFiles, ServiceConfig};
use crate::service::echo::{DEFAULT_MAX_PENDING, Transform};
use crate::transport::SocketOptions;
use crate::transport::framing::{DEFAULT_MAX_FRAME, Framing};
use crate::transport::message::Carrier;
use crate::transport::multicast::Multicast;
use crate::transport::quic::{QuicMode, QuicOptions};
pub(crate) use crate::units::parse_duration;
use crate::units::size_in;

/// The value parser of a [`Choice`]: its names, each with its help line, for parsing, help,
/// completions and man pages.
fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    choice_hiding::<T>(&[])
}

/// [`choice`] with the values `hidden` taken but not offered (in help, completions, man
/// pages and the list of possible values): a value a command takes only to refuse it with
/// its reason.
fn choice_hiding<T: Choice>(hidden: &'static [&'static str]) -> impl TypedValueParser<Value = T> {
    let values = T::ALL.iter().map(|v| {
        let value = match v.help() {
            "" => PossibleValue::new(v.name()),
            help => PossibleValue::new(v.name()).help(help),
        };
        value.hide(hidden.contains(&v.name()))
    });
    PossibleValuesParser::new(values)
        .try_map(|name| T::from_name(&name).ok_or_else(|| UnknownChoice::of::<T>(&name)))
}

#[derive(Debug, Parser)]
#[command(
    name = "netecho",
    bin_name = "netecho",
    version = env!("NETECHO_VERSION"),
    about = "An uppercase echo service and client over TCP, UDP, Unix and raw IP sockets: the socket lab in one binary",
    long_about = "netecho serves and sends messages over every socket family and type a first \
        socket lesson names: TCP and UDP over IPv4 and IPv6 (AF_INET, AF_INET6), Unix \
        stream, datagram and seqpacket sockets (AF_UNIX), and raw IP (SOCK_RAW). The server \
        answers each message with the same bytes, ASCII letters made upper case. netecho ping \
        sends ICMP echo requests.",
    after_help = "Start with `netecho lab` (every socket type measured on this machine, the \
        numbers explained) or `netecho lesson` (the calls of a first socket lesson, one step \
        at a time).\n\nExamples:\n  \
        netecho serve --proto udp --addr '[::]:3234'   # in one terminal,\n  \
        netecho send --proto udp 127.0.0.1:3234 hello  # in another: HELLO\n  \
        netecho serve --addr unix:///tmp/echo.sock     # in one terminal,\n  \
        netecho send /tmp/echo.sock hello              # in another: HELLO"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub family: FamilyArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line as parsed: every duration flag takes a value that starts with a
    /// dash, and every number flag a negative number, so `--timeout -1s` and `-c -1` hear
    /// from the flag's parser why (a duration is more than 0, a count at least 1), not clap's
    /// "unexpected argument '-1'", whose `-- -1` leaves the flag without its value. A message
    /// after `--` is left as it is.
    pub(crate) fn parsed_from(raw: &[OsString]) -> Result<Cli, clap::Error> {
        // clap wraps help at 100 columns wherever it cannot see a terminal (`--help | less`);
        // netecho's other output falls back to 80, and so does its help.
        let width = crate::logging::width().min(100);
        let cmd = values_take_a_dash(Cli::command()).term_width(width);
        let mut matches = cmd.try_get_matches_from(raw)?;
        Cli::from_arg_matches_mut(&mut matches)
    }
}

/// `cmd` and its subcommands with every duration flag taking a value that starts with a
/// dash, and every number flag a negative number (only a number: `-c -v` is still two flags).
fn values_take_a_dash(cmd: clap::Command) -> clap::Command {
    use std::any::TypeId;
    let durations = [
        TypeId::of::<Duration>(),
        TypeId::of::<TimeLimit>(),
        TypeId::of::<Directed<Duration>>(),
    ];
    let numbers = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<f64>(),
    ];
    cmd.mut_args(|arg| {
        let parses = arg.get_value_parser().type_id();
        // A flag of its own value (-v counts, it takes none).
        let flag = !arg.is_positional() && arg.get_action().takes_values();
        if durations.iter().any(|t| parses == *t) {
            arg.allow_hyphen_values(true)
        } else if flag && numbers.iter().any(|t| parses == *t) {
            arg.allow_negative_numbers(true)
        } else {
            arg
        }
    })
    .mut_subcommands(values_take_a_dash)
}

/// Where -v, -q, -4 and -6 stand in every subcommand's help: after its own flags, together
/// (in declaration order they would fall among the subcommand's first ones).
const GLOBAL: usize = 900;

#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// More log lines on stderr: -v for each read's size, -vv also for each message's bytes
    /// (RUST_LOG overrides)
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = GLOBAL)]
    pub verbose: u8,
    /// Only warnings and errors on stderr; ping prints its summary alone, as ping -q
    #[arg(short, long, global = true, conflicts_with = "verbose", display_order = GLOBAL + 1)]
    pub quiet: bool,
}

/// `-4` and `-6`, as nc, ping and iperf3 take them.
#[derive(Debug, Args)]
pub(crate) struct FamilyArgs {
    /// Resolve host names to IPv4 addresses only
    #[arg(short = '4', global = true, conflicts_with = "ipv6", display_order = GLOBAL + 2)]
    pub ipv4: bool,
    /// Resolve host names to IPv6 addresses only
    #[arg(short = '6', global = true, display_order = GLOBAL + 3)]
    pub ipv6: bool,
}

impl FamilyArgs {
    pub(crate) fn family(&self) -> Option<crate::endpoint::Family> {
        use crate::endpoint::Family;
        match (self.ipv4, self.ipv6) {
            (true, _) => Some(Family::Inet),
            (_, true) => Some(Family::Inet6),
            _ => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the echo server
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// Send messages to an echo server and print the replies
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
    /// Load an echo server with many clients and measure requests/s and latency
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    /// Download a file from a server started with --files
    #[command(after_help = GET_EXAMPLES)]
    Get(GetArgs),
    /// Upload a file to a server started with --files DIR --upload
    #[command(after_help = PUT_EXAMPLES)]
    Put(PutArgs),
    /// Run a server's --exec program: stdin goes to it, its output comes back
    #[command(after_help = EXEC_EXAMPLES)]
    Exec(ExecArgs),
    /// Compare every protocol side by side: starts its own servers (or uses a lab server at
    /// HOST), measures, explains
    #[command(after_help = LAB_EXAMPLES)]
    Lab(LabArgs),
    /// Send ICMP echo requests and print each reply's round trip, then a summary
    #[command(after_help = PING_EXAMPLES)]
    Ping(PingArgs),
    /// Relay between two addresses, across protocols, with simulated delay, loss and rate
    #[command(after_help = RELAY_EXAMPLES)]
    Relay(RelayArgs),
    /// Walk the socket lesson one call at a time on real sockets, and what goes wrong
    #[command(after_help = LESSON_EXAMPLES)]
    Lesson(LessonArgs),
    /// Print shell completions
    #[command(after_help = "Examples:\n  \
        netecho completions bash > /etc/bash_completion.d/netecho\n  \
        netecho completions zsh > \"${fpath[1]}/_netecho\"\n  \
        netecho completions fish > ~/.config/fish/completions/netecho.fish")]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, of netecho or of one subcommand
    #[command(after_help = "Examples:\n  \
        netecho manpage | man -l -\n  \
        netecho manpage serve > netecho-serve.1")]
    Manpage {
        /// A subcommand, for its own page (netecho-serve(1))
        #[arg(value_parser = ["serve", "send", "bench", "lab", "ping", "relay", "get", "put", "exec", "lesson", "completions"])]
        subcommand: Option<String>,
    },
}

const SERVE_EXAMPLES: &str =
    "Once bound, serve prints one line on stdout, `listening <proto> <address>`, \
with the real port when port 0 was asked for (serve --lab adds a line per port it announces). SIGINT, SIGTERM or SIGHUP stops it with a summary line.

Examples:
  netecho serve                                  # tcp on 127.0.0.1:3234
  netecho serve --addr :4000                     # every address, IPv6 and IPv4
  netecho serve --proto udp --addr '[::]:3234'   # dual-stack: IPv6 and IPv4
  sudo netecho -v serve --proto raw --addr ::1   # raw IPv6, IP protocol 253
  netecho serve --lab                            # for a class: netecho lab HOST";

const SEND_EXAMPLES: &str =
    "With MESSAGE, sends it once and prints the reply and a newline. Over a stream (tcp, unix, \
TLS) the reply is every byte that comes until at least as many came as were sent, the server \
closed, or it fell silent for --timeout, with what else has already arrived by then. Without \
MESSAGE, reads stdin: on a terminal after a prompt on stderr (empty and blank lines skipped, as \
the lesson's client skips them, Ctrl-D ends). \
From a pipe over a stream without --framing, as nc: stdin's bytes go out as they are and the \
server's bytes come out as they are, nothing added or dropped; with --framing, or over \
seqpacket, QUIC and datagrams, one message per line and one reply line each. At the end of the \
input send shuts down its writing side and waits for the server to close (at most --timeout of \
silence).

Examples:
  netecho send --proto udp 127.0.0.1:3234 hello
  netecho send 127.0.0.1 4000 hello                   # HOST PORT, as nc
  printf 'a\\nb\\n' | netecho send --proto tcp '[::1]:3234'
  netecho send --iface eth0 udp://239.1.2.3:4000 hello  # every member answers
  netecho send --broadcast udp://192.168.1.255:4000 hello
  sudo netecho send --hdrincl --ttl 7 raw://127.0.0.1 hello";

const BENCH_EXAMPLES: &str =
    "Each client keeps --window requests in flight and checks every reply byte for \
byte. Latency percentiles come from an HdrHistogram in nanoseconds and print in microseconds to a \
tenth. Datagram requests unanswered for --timeout (1s) \
count as lost; over a stream (tcp, unix, seqpacket, TLS, QUIC) nothing is lost, and a reply \
awaited for --timeout fails the run as a stall (unless given: 30s, or a timed run's --duration \
within 5s-30s). Ctrl-C (or SIGTERM) ends the run early and prints what ran, marked as stopped \
(exit 130, or 143); a second one ends bench at once.

Examples:
  netecho bench --clients 50 --size 512 --duration 5s 127.0.0.1:3234
  netecho bench --proto tcp,udp,unix-seqpacket --window 16 --plot latency.svg
  netecho bench --clients 10000 --idle --duration 30s 127.0.0.1:3234  # idle";

const GET_EXAMPLES: &str =
    "Over tcp, unix and unix-seqpacket the file comes as length-prefixed chunks; \
over udp and unix-dgram as numbered, acknowledged blocks. Either way it ends with a BLAKE3 \
check, and the file appears under its name only once verified.

Examples:
  netecho get 127.0.0.1:3234 notes.txt
  netecho get --proto udp --window 8 '[::1]:3234' big.iso -o /tmp/big.iso
  netecho get --proto udp --drop 0.1 -v 127.0.0.1:3234 notes.txt  # resends";

const PUT_EXAMPLES: &str = "The server must run with --files DIR --upload.

Examples:
  netecho put 127.0.0.1:3234 report.pdf
  netecho serve --addr unix-dgram:///tmp/files.sock --files . --upload  # then:
  netecho put --proto unix-dgram /tmp/files.sock data.bin uploaded.bin";

const EXEC_EXAMPLES: &str =
    "The reply comes framed (length-prefixed chunks marked stdout or stderr, \
then the exit status), so output of any size comes back whole; exec exits with the remote \
program's status.

Exit status, as ssh's: the program's (128+N when signal N killed it: 137 for a SIGKILL the \
server did not send); 124 when the server killed it for a limit (--exec-timeout, --max-output, \
a client that stopped reading); 127 when it could not start; 141 (killed by SIGPIPE) when \
the reader of exec's own stdout left; 255 when exec itself failed (no server, a usage error, \
a busy server, or a server silent for --timeout).

Examples:
  netecho serve --exec tr a-z A-Z                  # in one terminal,
  echo hello | netecho exec 127.0.0.1:3234         # in another: HELLO
  netecho serve --addr /tmp/cmd.sock --exec wc -l  # in one terminal,
  printf 'a\\nb\\n' | netecho exec /tmp/cmd.sock     # in another: 2
  netecho exec /tmp/cmd.sock < input.txt           # input.txt's lines, counted";

const LAB_EXAMPLES: &str =
    "The lab starts a netecho server for each protocol on loopback and in a \
temporary directory, measures each the same way (connect time, ping-pong latency, pipelined \
throughput, loss, message boundaries, order), prints one table with a sentence per row, and \
removes everything it made.

With HOST, the lab measures against a lab server on another machine (`netecho serve \
--lab` there): tcp, udp, tls and quic over the real network, the path named (addresses, \
interface, MTU, gateway), and how the server was shared: runs take turns, at most a few \
measuring at once, the others told their place in the queue (turns go round by client \
address, so one address's many runs never keep another's waiting behind them all); each \
report says how many other runs measured beside it and how long it waited. --wait bounds the wait for a turn.

Against a lab server started with --tls, give --tls and trust its certificate with --pin \
(the fingerprint on its listening line), --ca or --insecure: TLS protects the control \
connection; the tcp and udp echo ports stay plain, as they are what the lab measures. The tls \
and quic rows trust the certificate the server's offer names, and nothing else; over a plain \
control connection that shows they reached whoever sent the offer, not that it was the lab \
server (the report says which).

Examples:
  netecho lab
  netecho lab --quick --format json > lab.json
  netecho lab --plot latency.svg
  netecho lab 192.168.1.10            # the teacher runs: netecho serve --lab
  netecho lab --quick '[fd00::1]:3235'
  netecho lab --tls --pin SHA256 192.168.1.10   # against serve --lab --tls";

const PING_EXAMPLES: &str =
    "A raw ICMP socket needs CAP_NET_RAW (root, or `setcap cap_net_raw+ep`); without it \
ping uses the ICMP datagram socket that net.ipv4.ping_group_range allows. Ctrl-C ends it with \
the summary. -i goes down to 1ms, not below: ping reads the replies between its requests, and \
a request delayed while the process was held up goes at once and the schedule carries on \
from it, with no burst to catch up. When the \
kernel dropped messages at ping's own full receive buffer (SO_RXQ_OVFL), the summary says \
so, as that loss is this host's and not the path's.

Examples:
  netecho ping -c 3 127.0.0.1
  netecho ping -c 5 -i 0.2s -s 1000 ::1
  netecho ping -W 500ms localhost";
/// Real loss under TCP between a user's own peers, as commands to paste: a network
/// namespace whose loopback drops packets at random (nftables in the input hook, as `lab
/// --netns` does), both peers run in it.
pub(crate) const LOSSY_NETNS: &str = "`sudo ip netns add lossy && sudo ip netns exec lossy sh \
     -c \"ip link set lo up && nft 'add table inet lossy; add chain inet lossy input { type \
     filter hook input priority 0; }; add rule inet lossy input numgen random mod 100 < 5 \
     drop'\"`, then start the server and the client each under `sudo ip netns exec lossy`";
const RELAY_EXAMPLES: &str =
    "Listens on FROM like serve (one `listening <proto> <address>` line on stdout) and \
connects to TO for each client: a connection per connection, a socket per datagram \
sender, whose replies go back to that sender. A udp socket to TO takes replies from any port \
of TO's address (never another address; when TO is on this host, only from a socket of TO's \
user or root) and, once the client got one from another port, sends \
on to that port, so TFTP and netecho's udp files, which answer from a port of their own, pass. \
A datagram TO where nothing listens is warned about once a flow; a unix-dgram TO whose server \
restarted at the same path is connected to again (else the flow closes with a warning). \
Between a stream and a message socket each \
message is one frame (--framing line|length). SIGINT, SIGTERM or SIGHUP prints a line per flow.

Impairments are simulated inside the relay and logged as such. Each applies to both \
directions, or to one with a prefix: up: is FROM to TO (client to server), down: is TO to FROM \
(`--loss up:5% --delay down:20ms`). On a relay between two reliable sockets (tcp, unix, \
unix-seqpacket) --loss, --duplicate and --reorder are refused: those never happen above TCP \
(the refusal says how to lose packets below TCP instead). A flow's line and the stop line \
count what --delay or --rate still held when the flow closed: not sent. \
What --delay or --rate holds is queued, at most 1,024 datagrams and 4 MiB each way of a flow \
and 64 MiB in all: past that a datagram is dropped and counted (lost to a full queue), a \
stream's reader waits. A datagram FROM opens a connection to a stream TO (tcp, unix, TLS) \
for each new sender: for senders off this host, whose addresses may be forged, at most 100 a \
second after a burst of 128; the rest are dropped and counted in the stop line.

Examples:
  netecho relay tcp://127.0.0.1:4000 unix:///tmp/echo.sock
  netecho relay --loss 5% --delay 20ms --jitter 5ms \\
      'udp://[::1]:4000' unix-dgram:///tmp/echo.sock
  netecho relay --framing line --rate 10mbit \\
      tcp://127.0.0.1:4000 udp://127.0.0.1:3234";

/// `serve --sched`: what the policy trades.
const SCHED_HELP: &str = "Event and uring models: how the kernel schedules the threads that \
serve connections (one per --threads). normal (the default) keeps the process's own policy: a \
loop woken by a request may preempt whatever runs on that core at once. batch puts them under \
SCHED_BATCH, which needs no privilege and keeps the nice level: a woken loop does not preempt \
the program running on that core (on a machine shared with the clients, often a client) but \
takes its turn next, finding more requests ready. It trades latency for throughput: more \
served per wake-up and a third of the context switches per request with 50 clients sharing \
two cores with the server, but a lone request on a busy core waits for the running program's \
turn to end. Where the kernel refuses SCHED_BATCH (a seccomp filter), the server says so once \
and serves under the normal policy. Datagram sockets have no connection loops, and --files, --exec \
and --lab serve without them.";

/// Where and how: the protocol, and the address forms every subcommand accepts, with the
/// example of what a number means told in `command`'s own words (serve, send, bench, get
/// and put, exec, relay's FROM; relay's TO takes no number alone and no second word).
fn addr_help(command: &str) -> String {
    let two_words = |example: &str| {
        format!(
            "HOST PORT as two words, as nc takes them, works too: the second word is the port \
             when the first has none and it is a number from 1 to 65535 (so {example}); other \
             digits there (0, 70000) are refused as a mistyped port. "
        )
    };
    let listens = |example: &str| {
        format!(
            "A number alone is a port, never an address: {example} (or :4000) listens on port \
             4000 of every address, IPv6 and IPv4 ([::], dual-stack). "
        )
    };
    let numbers = match command {
        "serve" => listens("serve --addr 4000"),
        "relay" => listens("relay 4000 TO"),
        "send" => two_words(
            "`send 127.0.0.1 42` sends to port 42; to send the message 42 write \
             127.0.0.1:3234 42",
        ),
        "bench" => two_words("`bench 127.0.0.1 4000` loads port 4000"),
        // get and put share their address argument.
        "get" | "put" => two_words(
            "`get 127.0.0.1 4000 NAME` fetches NAME from port 4000, `put 127.0.0.1 4000 \
             FILE` uploads FILE to it",
        ),
        "exec" => two_words("`exec 127.0.0.1 4000` runs the program of port 4000's server"),
        _ => String::new(),
    };
    format!(
        "IP:PORT, [IPv6]:PORT, HOST:PORT, a Unix socket path, or @abstract (written as the log \
         writes them: \\xNN for a byte that is no UTF-8, \\\\ for a backslash); a URL (tcp://, \
         udp://, unix://, unix-dgram://, unix-seqpacket://) also sets the protocol. A missing \
         port is 3234. {numbers}IPv6 link-local addresses take their zone: fe80::1%eth0, \
         [fe80::1%2]:80 (other addresses refuse one). Raw IP has no ports: raw://127.0.0.1, \
         raw6://::1, or --proto raw with an address alone."
    )
}

#[derive(Debug, Args)]
#[command(mut_args(client_flags_hidden))]
pub(crate) struct ServeArgs {
    /// Protocol: socket family and type [default: tcp, or unix for a path]
    #[arg(long, value_parser = choice::<Proto>())]
    pub proto: Option<Proto>,
    /// Address to bind [default: 127.0.0.1:3234; for Unix protocols /tmp/netecho*.sock]
    #[arg(long, long_help = addr_help("serve"))]
    pub addr: Option<String>,
    /// What to do to each message: upper (ASCII letters upper-cased) or echo (RFC 862, unchanged)
    #[arg(long, value_parser = choice::<Transform>(), default_value = Transform::Upper.name())]
    pub transform: Transform,
    /// Server model: how many clients are served at once (see the first log lines)
    #[arg(long, value_parser = choice::<Model>(), default_value = Model::Event.name())]
    pub model: Model,
    /// Event and uring models: event-loop threads, or io_uring rings [default: number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Event and uring models: how the kernel schedules the loop threads [default: normal]
    #[arg(long, value_name = "POLICY", value_parser = choice::<Sched>(), long_help = SCHED_HELP)]
    pub sched: Option<Sched>,
    /// Serve at most N connections at once; more are refused and closed, never queued
    /// [default: 16384; 256 under --model fork, a process each]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: Option<u32>,
    /// Close a connection silent for this long (e.g. 30s), so an idle client cannot hold a slot forever
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Echo with --framing line or length: close a connection whose frame is still
    /// unfinished this long after its first byte came (e.g. 30s, or off), so a client
    /// trickling a byte now and then cannot hold a connection and its buffer. A bare stream
    /// (--framing none) echoes each read at once: nothing is ever unfinished, and only
    /// --idle-timeout and --max-conns bound a slow client there. Under --tls a record under
    /// way is a frame begun, framed or not (its plaintext comes only with its last byte),
    /// and over QUIC so is a message's stream (past it only that stream is reset); with
    /// this off, the --idle-timeout counted from the first byte bounds them. Datagrams
    /// arrive whole, so it has no meaning over udp, unix-dgram or raw [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = parse_time_limit)]
    pub frame_timeout: Option<TimeLimit>,
    /// Replies a client has not read, in bytes, past which the server stops reading from it.
    /// All clients' together may hold 64 times this (64 MiB at the default): past that, a
    /// client holding more than its share of that (at least 16 KiB) waits until it reads
    /// before it is read from again
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_PENDING, value_parser = parse_max_pending)]
    pub max_pending: usize,
    /// Datagrams: also answer source port 0 and the small services 7, 9, 13, 19, 37 (risks an endless echo loop)
    #[arg(long)]
    pub allow_loop_ports: bool,
    /// Datagrams and raw IP: answer at most N per second per source address
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
    /// Narrate every socket call on stderr as it happens: socket, bind, recvfrom, ...
    #[arg(long)]
    pub explain: bool,
    /// Dump every message both ways on stderr as xxd does: offset, hex, ASCII (ncat -x)
    #[arg(long)]
    pub hex: bool,
    #[command(flatten)]
    pub framing: FramingArgs,
    #[command(flatten)]
    pub raw: IpProtoArg,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub sock: ServerSocketArgs,
    #[command(flatten)]
    pub group: JoinArgs,
    #[command(flatten)]
    pub buffers: BufferArgs,
    #[command(flatten)]
    pub files: FileServeArgs,
    #[command(flatten)]
    pub exec: ExecServeArgs,
    #[command(flatten)]
    pub lab: LabServeArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `serve --lab`: the far end of `lab HOST` for a class.
#[derive(Debug, Args)]
pub(crate) struct LabServeArgs {
    /// Serve `netecho lab HOST` for a class: a control port (3235 on every address, IPv6 and
    /// IPv4, unless --addr) and an echo port per protocol that crosses machines (tcp, udp,
    /// tls, quic), chosen by the kernel and announced one line each. With --tls the control
    /// connection speaks TLS (students give lab --tls --pin) and the tls and quic ports
    /// present its certificate; the tcp and udp echo ports stay plain, as they are what the
    /// lab measures
    #[arg(long, conflicts_with_all = ["files", "exec"])]
    pub lab: bool,
    /// With --lab: runs measuring at once; the others wait their turn in a queue, told their place
    #[arg(long, value_name = "N", default_value_t = 4, requires = "lab", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub lab_runs: u32,
    /// With --lab: runs waiting at once; more are refused with one line saying so. Turns go
    /// round by client address: a turn that frees goes to the waiting address holding the
    /// fewest, so one address's many runs never keep another's waiting behind them all
    #[arg(long, value_name = "N", default_value_t = 64, requires = "lab", value_parser = clap::value_parser!(u32).range(0..=4096))]
    pub lab_queue: u32,
    /// With --lab: runs (measuring and waiting) one client address (an IPv6 /64) may hold;
    /// more are refused with one line naming this flag. Raise it for a class behind one NAT
    /// address. As many connections from an address (at least 4, at most 16) may be still
    /// to say Hello; more are closed at once
    #[arg(long, value_name = "N", default_value_t = 8, requires = "lab", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub lab_per_address: u32,
    /// With --lab: the longest one run may hold its turn, whole seconds from 1s to 24h; past
    /// it the turn ends (the run keeps the rows it measured; `lab --quick` fits a short turn)
    /// and goes to the next run waiting (so does one whose address reached no echo port for
    /// 30 s while others wait)
    #[arg(long, value_name = "DUR", default_value = "120s", requires = "lab", value_parser = parse_lab_max_time)]
    pub lab_max_time: Duration,
}

/// The IP protocol of a raw socket, shared by serve and send.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct IpProtoArg {
    /// Raw: the IP protocol number to send and receive (1 to 254) [default: 253, reserved
    /// for experiments by RFC 3692]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=254))]
    pub ip_proto: Option<u8>,
}

impl IpProtoArg {
    /// The protocol number, checked to go with `proto`: only raw sockets have one.
    pub(crate) fn for_proto(&self, proto: Proto) -> Result<u8, UsageError> {
        match (self.ip_proto, proto) {
            (Some(_), p) if p != Proto::Raw => Err(UsageError::new(format!(
                "--ip-proto applies to --proto raw; {p} has its own IP protocol"
            ))),
            (n, _) => Ok(n.unwrap_or(crate::packet::DEFAULT_IP_PROTO)),
        }
    }
}

/// `serve --files`: the file service instead of echo.
#[derive(Debug, Args)]
pub(crate) struct FileServeArgs {
    /// Serve the regular files under DIR, read-only (get); instead of echo. Over udp, TFTP
    /// clients (curl tftp://, tftp, atftp) are served too, in octet mode
    #[arg(long, value_name = "DIR", conflicts_with = "exec")]
    pub files: Option<std::path::PathBuf>,
    /// With --files: accept uploads (put) into DIR, each refused before any data when its
    /// size is over the space free there (less what uploads under way still need; one
    /// client's, or one local user's, hold back at most half of it, less as more clients
    /// upload, so one more always finds room) or no inode is free
    #[arg(long, requires = "files")]
    pub upload: bool,
    /// With --files: the largest file served or accepted (bytes, or 4G, 512M)
    #[arg(long, value_name = "SIZE", default_value_t = crate::files::DEFAULT_MAX_FILE, value_parser = size_in::<u64>(1, 1 << 50))]
    pub max_file: u64,
    /// With --files: also serve files with more than one hard link. Off by default: a user
    /// who can write in DIR can hard-link any file of the same file system they can read
    /// into it, and the server (often running with more rights) would serve it
    #[arg(long)]
    pub follow_hardlinks: bool,
    /// With --files over udp: answer a TFTP request without options (tftp-hpa's) from any
    /// address with its first block at once, as RFC 1350 does, and send blocks of the size
    /// asked before ACK 1. Off by default: that block would go to a forged source address
    /// unasked, so only this host gets it, and others are told to send an option
    /// (blksize), whose OACK and ACK 0 prove their address, and get blocks no larger than
    /// their request until they ACK the first
    #[arg(long, requires = "files")]
    pub tftp_rfc1350: bool,
    #[command(flatten)]
    pub impair: ImpairArgs,
}

/// Simulated loss for datagram file transfers.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct ImpairArgs {
    /// Datagram transfers: drop this fraction (0 to 1) of the datagrams this side sends, on
    /// purpose, to watch retransmission work
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_fraction)]
    pub drop: f64,
    /// Datagram transfers: hold back this fraction of sent datagrams and send each after the
    /// next one (reordering)
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_fraction)]
    pub reorder: f64,
}

/// `serve --exec`: a program per connection instead of echo.
#[derive(Debug, Args)]
pub(crate) struct ExecServeArgs {
    /// Run PROGRAM ARGS... for each connection (or datagram): the client's bytes on its stdin,
    /// its stdout and stderr back. No shell: arguments are passed as they are. Everything after
    /// --exec is the program's, so give netecho's options first (or end ARGS with ';'); an ARG
    /// that is one of serve's options is refused, unless it comes after a `--` (passed on too)
    #[arg(long, value_name = "PROGRAM", num_args = 1.., allow_hyphen_values = true, value_terminator = ";")]
    pub exec: Option<Vec<std::ffi::OsString>>,
    /// With --exec: allow an address other than loopback or a Unix socket (anyone who can
    /// reach it runs the program). Over udp a source off this host hears an answer only when
    /// it is no larger than its request (its address could be forged): use tcp for them
    #[arg(long)]
    pub allow_remote_exec: bool,
    /// With --exec: kill a program still running after this long
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub exec_timeout: Duration,
    /// With --exec: the most output (stdout and stderr) sent back; past it the program is killed
    #[arg(long, value_name = "SIZE", default_value_t = 64 << 20, value_parser = size_in::<u64>(1, 1 << 40))]
    pub max_output: u64,
    /// With --exec: programs running at once; a client past it gets a "busy" reply
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_children: u32,
    /// With --exec: pass this variable of the server's environment to the program too
    /// (repeatable; give it before --exec). Programs get PATH, HOME, USER, LOGNAME, LANG,
    /// LC_ALL and TZ only, so secrets in the server's environment stay there
    #[arg(long, value_name = "NAME")]
    pub exec_env: Vec<std::ffi::OsString>,
}

/// Refuses an ARG of `--exec PROGRAM ARGS` (before any `--`) that is one of serve's own long
/// options: written last, a `--deny` or an `--addr` would silently be the program's argument.
fn no_serve_option_among(program: &OsStr, args: &[OsString]) -> Result<(), UsageError> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("serve is a subcommand");
    let options = cli.get_arguments().chain(serve.get_arguments());
    let longs: Vec<&str> = options
        .flat_map(|arg| arg.get_long_and_visible_aliases().unwrap_or_default())
        .collect();
    for arg in args.iter().take_while(|arg| *arg != "--") {
        let Some(option) = arg.to_str().and_then(|arg| arg.strip_prefix("--")) else {
            continue;
        };
        let name = option.split('=').next().unwrap_or(option);
        if longs.contains(&name) {
            return Err(UsageError::new(format!(
                "--{name} after --exec {} would be its argument: put serve's options before \
                 --exec, or the program's arguments after -- (which it gets too)",
                program.to_string_lossy()
            )));
        }
    }
    Ok(())
}

/// A duration of a flag whose namesake in ping and iperf3 counts seconds (`-i 0.2`, `-t 10`):
/// a bare number is refused with seconds offered first, as those tools meant.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v > 0.0 => Err(format!(
            "{t} what? write {t}s (ping and iperf3 count seconds) or {t}ms: a duration needs \
             its unit"
        )),
        _ => parse_duration(text),
    }
}

/// ping's -c: a count of requests, said in those words whatever was wrong (`-c -1`, `-c 0`).
fn parse_ping_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err("-c takes a whole number of requests, at least 1".into()),
    }
}

/// --lab-max-time: whole seconds, as the lab server announces it and offers it to clients
/// (in milliseconds, 32 bits), at most a day.
fn parse_lab_max_time(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.subsec_nanos() != 0 || d.is_zero() || d > Duration::from_secs(24 * 3600) {
        return Err(format!(
            "{}: a run's longest turn is whole seconds from 1s to 24h, e.g. 120s or 10m",
            text.trim()
        ));
    }
    Ok(d)
}

/// get's and put's bound of a connect and of a datagram server's first answer, unless
/// --timeout is given.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long get, put and exec let a connected server send and take nothing, unless
/// --timeout is given: a wedged server cannot hold a script, and a server's program that
/// runs out its default --exec-timeout (10 s) is told of before.
const CLIENT_SILENCE: Duration = Duration::from_secs(30);

/// A time limit that may be turned off: a duration, or `off`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeLimit(pub Option<Duration>);

fn parse_time_limit(text: &str) -> Result<TimeLimit, String> {
    match text {
        "off" | "none" => Ok(TimeLimit(None)),
        _ => parse_duration(text)
            .map(|d| TimeLimit(Some(d)))
            .map_err(|e| format!("{e}, or off")),
    }
}

/// `serve --join`: multicast groups for a udp server.
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// Udp: join this multicast group (repeatable; 224.0.0.0/4 or ff00::/8) and answer its
    /// datagrams, unicast from this host's own address. Bind the group or every address:
    /// --addr 239.1.2.3:4000 --join 239.1.2.3
    #[arg(long, value_name = "GROUP")]
    pub join: Vec<std::net::IpAddr>,
    /// With --join: the interface to join on, by name (see `ip -br link`) [default: the one the
    /// route to the group names]
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,
}

impl JoinArgs {
    /// The groups to join, checked against the address served.
    fn multicast(&self, endpoint: &Endpoint) -> Result<Multicast, UsageError> {
        let bound = match &endpoint.addr {
            crate::endpoint::Address::Ip(addr) => Some(addr.ip().to_canonical()),
            _ => None,
        };
        let group = bound.filter(|ip| ip.is_multicast());
        if self.join.is_empty() && self.iface.is_some() {
            return Err(UsageError::new(
                "--iface on serve names the interface --join joins a group on; add --join GROUP",
            ));
        }
        if self.join.is_empty() {
            return match group {
                Some(ip) => Err(UsageError::new(format!(
                    "{ip} is a multicast group: a server there receives nothing until it \
                     joins; add --join {ip} (and --iface NAME to pick the interface)"
                ))),
                None => Ok(Multicast::default()),
            };
        }
        if endpoint.proto != Proto::Udp {
            return Err(UsageError::new(
                "--join is for --proto udp: groups carry datagrams",
            ));
        }
        for g in &self.join {
            if !g.is_multicast() {
                return Err(UsageError::new(format!(
                    "--join {g}: not a multicast group (224.0.0.0/4 for IPv4, ff00::/8 for IPv6)"
                )));
            }
            if g.is_ipv6() && bound.is_some_and(|ip| ip.is_ipv4()) {
                return Err(UsageError::new(format!(
                    "--join {g}: an IPv6 group needs an IPv6 socket; serve on [::]:PORT or on the group"
                )));
            }
        }
        if let Some(ip) = group.filter(|ip| !self.join.iter().any(|g| g.to_canonical() == *ip)) {
            // A socket bound to a group hears only that group, and only once it is joined.
            return Err(UsageError::new(format!(
                "--addr {ip} is a group this server does not join: add --join {ip}, or bind \
                 :PORT to hear {}",
                self.join[0]
            )));
        }
        if let Some(ip) = bound.filter(|ip| !ip.is_unspecified() && !ip.is_multicast()) {
            return Err(UsageError::new(format!(
                "--join: a socket bound to {ip} never receives a group's datagrams; serve on \
                 the group (--addr {}:PORT) or on every address (--addr :PORT)",
                self.join[0]
            )));
        }
        Ok(Multicast {
            join: self.join.clone(),
            iface: self.iface.clone(),
            ..Multicast::default()
        })
    }
}

/// `send`'s multicast and broadcast options.
#[derive(Debug, Args)]
pub(crate) struct SenderGroupArgs {
    /// Udp to a multicast group: the interface to send by, by name (IP_MULTICAST_IF)
    /// [default: the route's]
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,
    /// Udp to a multicast group: keep the datagrams from this host's own members
    /// (IP_MULTICAST_LOOP off; on by default so a lab on one machine works)
    #[arg(long)]
    pub no_loop: bool,
    /// Udp over IPv4: allow sending to a broadcast address (SO_BROADCAST), such as
    /// 255.255.255.255 or a subnet's last address; every host there may answer
    #[arg(long)]
    pub broadcast: bool,
}

impl SenderGroupArgs {
    /// The sender's options, checked against the destination. `burst`: --burst was given.
    fn multicast(&self, endpoint: &Endpoint, burst: bool) -> Result<Multicast, UsageError> {
        let ip = match &endpoint.addr {
            crate::endpoint::Address::Ip(addr) => Some(addr.ip().to_canonical()),
            _ => None,
        };
        let group = ip.is_some_and(|ip| ip.is_multicast());
        let limited = ip.is_some_and(|ip| ip == std::net::IpAddr::from([255, 255, 255, 255]));
        if (group || limited || self.broadcast) && endpoint.proto != Proto::Udp {
            return Err(UsageError::new(format!(
                "multicast and broadcast carry datagrams: send with --proto udp \
                 (udp://{})",
                endpoint.addr
            )));
        }
        if limited && !self.broadcast {
            return Err(UsageError::new(
                "255.255.255.255 is the broadcast address: add --broadcast (SO_BROADCAST) to send there",
            ));
        }
        if self.broadcast && ip.is_some_and(|ip| ip.is_ipv6()) {
            return Err(UsageError::new(
                "--broadcast is IPv4's; IPv6 has no broadcast: send to a group such as ff02::1 \
                 with --iface NAME",
            ));
        }
        if (self.iface.is_some() || self.no_loop) && ip.is_some() && !group {
            return Err(UsageError::new(format!(
                "--iface and --no-loop apply to a multicast group; {} is not one",
                endpoint.addr
            )));
        }
        if let Some(std::net::IpAddr::V6(v6)) = ip {
            let link = v6.is_multicast() && v6.segments()[0] & 0xf <= 2;
            if link && self.iface.is_none() && !endpoint.addr.to_string().contains('%') {
                return Err(UsageError::new(format!(
                    "{v6} is a link-local group: say which link with --iface NAME (see \
                     `ip -br link`)"
                )));
            }
        }
        if burst && (group || self.broadcast) {
            return Err(UsageError::new(
                "a group or a broadcast gets one message at a time, each answer printed with \
                 its source; leave out --burst",
            ));
        }
        Ok(Multicast {
            iface: self.iface.clone(),
            no_loop: self.no_loop,
            broadcast: self.broadcast,
            ..Multicast::default()
        })
    }
}

/// Message boundaries on a stream, shared by serve, send and bench.
#[derive(Debug, Args)]
pub(crate) struct FramingArgs {
    /// Message boundaries on streams: none (a read is a message), line (newline-ended) or
    /// length (4-byte big-endian length first)
    #[arg(long, value_parser = choice::<Framing>(), default_value = Framing::None.name())]
    pub framing: Framing,
    /// The largest frame accepted, in bytes; a larger one closes the connection
    #[arg(long, value_name = "SIZE", default_value_t = DEFAULT_MAX_FRAME, value_parser = size_in::<u32>(1, u32::MAX as u64))]
    pub max_frame: u32,
    /// QUIC: messages as QUIC datagrams (RFC 9221), which may be lost, instead of a stream each
    #[arg(long)]
    pub quic_datagrams: bool,
}

impl FramingArgs {
    /// How messages travel over QUIC, as --framing and --quic-datagrams ask; an error when
    /// --quic-datagrams is given for another protocol.
    pub(crate) fn quic_mode(&self, proto: Proto) -> Result<QuicMode, UsageError> {
        if self.quic_datagrams && proto != Proto::Quic {
            return Err(UsageError::new(format!(
                "--quic-datagrams applies to --proto quic; {proto} has its own way of carrying messages"
            )));
        }
        if self.quic_datagrams && self.framing != Framing::None {
            return Err(UsageError::new(
                "--quic-datagrams keeps each message's boundaries itself; leave out --framing",
            ));
        }
        Ok(QuicMode::asked(self.framing, self.quic_datagrams))
    }
}

#[derive(Debug, Args)]
pub(crate) struct ServerSocketArgs {
    /// listen(2) backlog: connections the kernel queues before accept(2) takes them
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub backlog: i32,
    /// SO_REUSEADDR on TCP: rebind at once after a restart (the default)
    #[arg(long, overrides_with = "no_reuseaddr")]
    pub reuseaddr: bool,
    /// No SO_REUSEADDR: a restart right after a closed connection fails while it is in TIME_WAIT
    #[arg(long)]
    pub no_reuseaddr: bool,
    /// IPV6_V6ONLY: on [::], serve IPv6 clients only (by default [::] serves IPv4 too)
    #[arg(long)]
    pub v6only: bool,
    /// TCP_NODELAY on each connection: reply at once, no Nagle coalescing
    #[arg(long)]
    pub nodelay: bool,
}

#[derive(Debug, Args)]
#[command(mut_args(server_flags_hidden))]
pub(crate) struct SendArgs {
    /// Protocol: socket family and type [default: tcp, or unix for a path]
    #[arg(long, value_parser = choice::<Proto>())]
    pub proto: Option<Proto>,
    /// Server address; HOST PORT works too, as nc takes them (see --help)
    #[arg(value_name = "ADDR", long_help = addr_help("send"))]
    pub addr: String,
    /// Message to send (words are joined with spaces); without it, messages come from stdin
    #[arg(
        value_name = "MESSAGE",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub message: Vec<OsString>,
    /// Prompt with `>>> ` (on stderr) even when stdin is not a terminal, and skip blank
    /// lines as on one
    #[arg(short, long)]
    pub interactive: bool,
    /// How long to wait for the server, each wait (as nc -w): for a connection to be
    /// accepted, for each datagram's reply (a --burst waits until this long passes with no
    /// reply), on a connection for a reply owed (no byte sent or taken this long fails send
    /// with exit 1), and for the server's last bytes once the input ended (e.g. 2s, 500ms;
    /// raise it for a slow server)
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Datagrams: how many times to send again when no reply comes
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    /// TCP_NODELAY: send each message at once, no Nagle coalescing
    #[arg(long)]
    pub nodelay: bool,
    /// Send each message N times back to back without waiting, then print the replies as
    /// they come (one line per read on an unframed stream: the sticky-packet lesson). Over
    /// datagrams the burst ends when every reply came or --timeout passed with none, and
    /// says how many were lost
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub burst: Option<u32>,
    /// Narrate every socket call on stderr as it happens: socket, connect, send, recv, ...
    #[arg(long)]
    pub explain: bool,
    /// Dump every message both ways on stderr as xxd does: offset, hex, ASCII (ncat -x)
    #[arg(long)]
    pub hex: bool,
    /// udp, unix-dgram: never connect(); sendto and recvfrom each message, as the lesson does
    #[arg(long)]
    pub unconnected: bool,
    #[command(flatten)]
    pub framing: FramingArgs,
    #[command(flatten)]
    pub raw: IpProtoArg,
    /// Raw over IPv4: write the IPv4 header by hand (IP_HDRINCL) instead of the kernel
    #[arg(long)]
    pub hdrincl: bool,
    /// Raw and udp: the TTL (IPv4) or hop limit (IPv6) of the packets sent; to a multicast
    /// group, how many routers they may cross (IP_MULTICAST_TTL, default 1: this network)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub ttl: Option<u8>,
    #[command(flatten)]
    pub group: SenderGroupArgs,
    #[command(flatten)]
    pub buffers: BufferArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
#[command(mut_args(server_flags_hidden))]
pub(crate) struct BenchArgs {
    /// Protocols, comma-separated: each is measured in turn [default: tcp, or unix for a path]
    #[arg(long, value_parser = choice::<Proto>(), value_delimiter = ',')]
    pub proto: Vec<Proto>,
    /// Server address; without it, bench starts its own server for each protocol
    #[arg(value_name = "ADDR", long_help = addr_help("bench"))]
    pub addr: Option<String>,
    /// The port, when the address is a host alone (HOST PORT, as nc takes them)
    #[arg(value_name = "PORT")]
    pub port: Option<String>,
    /// The server to measure, as iperf3's -c: the same as ADDR
    #[arg(short = 'c', long = "client", value_name = "HOST")]
    pub client: Option<String>,
    /// Concurrent clients (connections, or datagram sockets); -P as in iperf3
    #[arg(long, short = 'P', value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Bytes per message; -l as iperf3's (-l 1K)
    #[arg(long, short = 's', short_alias = 'l', value_name = "SIZE", default_value_t = 64, value_parser = size_in::<u32>(0, 16 << 20))]
    pub size: u32,
    /// How long to send; -t as iperf3's, with a unit (-t 10s)
    #[arg(long, short = 'd', short_alias = 't', value_name = "DUR", default_value = "5s", value_parser = parse_seconds, conflicts_with = "count")]
    pub duration: Duration,
    /// Requests per client, instead of --duration
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Requests each client keeps in flight: 1 is ping-pong (latency), more is pipelining
    #[arg(long, short = 'w', value_name = "W", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub window: u32,
    /// Threads that drive the clients, each an epoll loop over its share of --clients (never
    /// more threads than clients); fewer leaves cores to a server on this machine [default:
    /// number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// A datagram request unanswered this long is lost; a stream, which loses nothing, fails
    /// only when a reply is this late (a stall) [default: 1s for datagrams; for streams 30s,
    /// or a timed run's --duration within 5s-30s]; also the bound of a connect [default: 10s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// What the server does to messages: upper (netecho) or echo (a plain echo server)
    #[arg(long, value_parser = choice::<Transform>(), default_value = Transform::Upper.name())]
    pub expect: Transform,
    /// Connect the clients and hold them without traffic, to see what idle clients cost a server
    #[arg(long)]
    pub idle: bool,
    /// TCP_NODELAY on every client connection (on anyway with a --window over 1, where
    /// Nagle would hold each request's last segment until the one before is acknowledged)
    #[arg(long)]
    pub nodelay: bool,
    /// Output: an aligned table, JSON (schema in the README), CSV, or NDJSON (a line per
    /// --interval while the run goes on, then a summary line)
    #[arg(long, value_parser = choice::<Format>(), default_value = Format::Table.name())]
    pub format: Format,
    /// JSON output, as iperf3's -J: the same as --format json
    #[arg(short = 'J', conflicts_with = "format")]
    pub json: bool,
    /// With --format ndjson: how often to write a line while the run goes on [default: 1s]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Pace each client to RATE of requests on average (10mbit, 500kB/s, ...; as relay
    /// --rate; -b, as iperf3's -b): a sender slower than the receiver, which datagram loss
    /// to a full buffer calls for. Requests a late tick of a busy machine owed go at once,
    /// up to 100 ms of them
    #[arg(long, short_alias = 'b', value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// Also draw the latency distribution of every run into this SVG file (checked before
    /// the run; an existing file is kept unless --force)
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Replace the --plot file if it exists (a regular file or a symlink itself, never the
    /// file a symlink points to, nor a device or FIFO)
    #[arg(long)]
    pub force: bool,
    /// The table with every column and the address on one long line per run (the default
    /// fits 80 columns)
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub framing: FramingArgs,
    #[command(flatten)]
    pub buffers: BufferArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Where a file service is and how to talk to it: shared by get and put.
#[derive(Debug, Args)]
#[command(mut_args(server_flags_hidden))]
pub(crate) struct TransferArgs {
    /// Protocol: socket family and type [default: tcp, or unix for a path]
    #[arg(long, value_parser = choice::<Proto>())]
    pub proto: Option<Proto>,
    /// Server address
    #[arg(value_name = "ADDR", long_help = addr_help("get"))]
    pub addr: String,
    /// Datagrams: blocks in flight (1 is stop-and-wait; more shows why windows exist)
    #[arg(long, value_name = "W", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=crate::files::datagram::MAX_WINDOW as i64))]
    pub window: u16,
    /// Datagrams: data bytes per block
    #[arg(long, value_name = "SIZE", default_value_t = crate::files::datagram::DEFAULT_BLOCK, value_parser = size_in::<u16>(1, crate::files::datagram::MAX_BLOCK as u64))]
    pub block_size: u16,
    /// How long to wait for the server, each wait: for a connection to be accepted and for
    /// a datagram server's first answer; over a connection, the longest the server may send
    /// or take nothing before the transfer fails (exit 1) [default: 2s to connect and for the
    /// first answer, 30s of silence on a connection]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Datagrams: how often to send the request again when no answer comes
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub retries: u32,
    #[command(flatten)]
    pub impair: ImpairArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// The file's name on the server
    pub name: String,
    /// NAME, when `get HOST PORT NAME` put the port where NAME goes
    #[arg(hide = true)]
    pub after_port: Option<String>,
    /// Where to write it [default: the name's last part, in this directory]; `-` writes to
    /// standard output as the bytes come, the hash checked at the end (a mismatch: one error
    /// line and a non-zero exit after the bytes, as curl)
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<std::path::PathBuf>,
    /// Replace OUT if it exists (a regular file only, never a device, FIFO or directory)
    #[arg(long)]
    pub force: bool,
    /// The largest file accepted (bytes, or 4G, 512M) [default: no limit; over a stream also
    /// the free space where OUT goes]
    #[arg(long, value_name = "SIZE", value_parser = size_in::<u64>(1, 1 << 50))]
    pub max_file: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// The local file to upload
    pub local: std::path::PathBuf,
    /// Its name on the server [default: the local file's name]
    pub name: Option<String>,
    /// NAME, when `put HOST PORT FILE NAME` put the port where FILE goes
    #[arg(hide = true)]
    pub after_port: Option<String>,
}

#[derive(Debug, Args)]
#[command(mut_args(server_flags_hidden))]
pub(crate) struct ExecArgs {
    /// Protocol: socket family and type [default: tcp, or unix for a path]
    #[arg(long, value_parser = choice::<Proto>())]
    pub proto: Option<Proto>,
    /// Server address
    #[arg(value_name = "ADDR", long_help = addr_help("exec"))]
    pub addr: String,
    /// The port, when ADDR is a host alone (HOST PORT, as nc takes them)
    #[arg(value_name = "PORT")]
    pub port: Option<String>,
    /// How long to wait for the server, each wait: for a connection to be accepted, and the
    /// longest the server may send or take nothing while the program runs (over datagrams,
    /// for the reply) before exec gives up (exit 255). Over a connection the server sends an
    /// empty frame every 500 ms while its program is silent, so a program that works for
    /// minutes without output needs only the server's longer --exec-timeout; over datagrams
    /// the reply comes when the program ends, so its run needs a --timeout as long (e.g.
    /// 10m), or off [default: 10s to connect, 30s of silence, longer than a server's default
    /// --exec-timeout of 10s, so that its verdict (124) comes first]
    #[arg(long, value_name = "DUR", value_parser = parse_time_limit)]
    pub timeout: Option<TimeLimit>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// Host to ping: an IPv4 or IPv6 address, or a name (its first address)
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Stop after COUNT requests [default: until Ctrl-C]
    #[arg(short = 'c', long, value_name = "COUNT", value_parser = parse_ping_count)]
    pub count: Option<u64>,
    /// Time between requests (e.g. 1s, 200ms), at least 1ms: the replies are read between
    /// requests
    #[arg(short = 'i', long, value_name = "INTERVAL", default_value = "1s", value_parser = parse_seconds)]
    pub interval: Duration,
    /// Data bytes per request, after the 8-byte ICMP header
    #[arg(short = 's', long, value_name = "SIZE", default_value_t = 56, value_parser = size_in::<u32>(0, 1 << 24))]
    pub size: u32,
    /// How long to wait for each reply; a later one counts as lost
    #[arg(short = 'W', long, value_name = "TIMEOUT", default_value = "2s", value_parser = parse_seconds)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Measure against the lab server (`netecho serve --lab`) at HOST[:PORT] (port 3235 unless
    /// given) instead of servers this machine starts: the rows it offers, in the family of
    /// HOST's address, the path to it, and how its turn was shared with other runs
    #[arg(value_name = "HOST[:PORT]", conflicts_with_all = ["netns", "models"])]
    pub host: Option<String>,
    /// A short run (about 5 seconds) with fewer samples
    #[arg(long)]
    pub quick: bool,
    /// Output: an aligned table with explanations, JSON or CSV
    #[arg(long, value_parser = choice_hiding::<Format>(&["ndjson"]), default_value = Format::Table.name())]
    pub format: Format,
    /// Also draw the latency distribution of every protocol into this SVG file (an existing
    /// file is kept unless --force)
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// The table on one long line per row, every column, sentences under the table (the
    /// default fits 80 columns)
    #[arg(long)]
    pub wide: bool,
    /// Also write the whole report as one self-contained HTML page (table, sentences, plot,
    /// boundaries, metadata, command; an existing file is kept unless --force)
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<std::path::PathBuf>,
    /// Replace the --plot and --html files if they exist (a regular file or a symlink itself,
    /// never the file a symlink points to, nor a device or FIFO); both paths are checked
    /// before the run
    #[arg(long)]
    pub force: bool,
    /// The server models (iterative, threads, event, fork, uring) side by side over tcp, with
    /// one client and with many, instead of the protocols
    #[arg(long, conflicts_with = "netns")]
    pub models: bool,
    /// Run tcp and udp across two network namespaces joined by a veth pair, servers in one,
    /// clients in the other (root only); everything is removed at the end
    #[arg(long)]
    pub netns: bool,
    /// With --netns: drop this fraction of the packets each side sends (5% or 0.05), with an
    /// nftables rule: real loss, which TCP turns into retransmissions and latency
    #[arg(long, value_name = "P", value_parser = parse_fraction)]
    pub loss: Option<f64>,
    /// With --netns: limit each direction to this rate with tc tbf (10mbit, 2MB/s)
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// With HOST: the longest to wait in the lab server's queue for a turn; past it the lab
    /// stops, saying the place it reached
    #[arg(long, value_name = "DUR", default_value = "10m", requires = "host", value_parser = parse_duration)]
    pub wait: Duration,
    /// With HOST: speak TLS on the control connection, to a lab server started with serve
    /// --lab --tls (the tcp and udp echo ports stay plain); trust its certificate with
    /// --pin, --ca or --insecure
    #[arg(long)]
    pub tls: bool,
    #[command(flatten)]
    pub trust: TlsTrustArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// Where to listen, as serve's --addr (a URL sets the protocol)
    #[arg(value_name = "FROM", long_help = addr_help("relay"))]
    pub from: String,
    /// Where to relay to, as send's ADDR
    #[arg(value_name = "TO", long_help = addr_help("relay-to"))]
    pub to: String,
    #[command(flatten)]
    pub framing: FramingArgs,
    #[command(flatten)]
    pub impair: RelayImpairArgs,
    /// Dump every message relayed, each way, on stderr as xxd does (ncat -x)
    #[arg(long)]
    pub hex: bool,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub buffers: BufferArgs,
    /// Relay at most N clients at once (connections, or datagram senders); more are refused
    #[arg(long, value_name = "N", default_value_t = crate::relay::DEFAULT_MAX_CONNS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,
    /// Close a flow with no message either way, or a side that takes nothing it is sent,
    /// for this long (e.g. 30s) [default: 30s for datagram senders, none for connections]
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Udp FROM: send every reply to senders in NET (repeatable), though anyone who can forge
    /// an address in NET can then aim the relay's replies at it
    ///
    /// NET is an address or a CIDR block, as --allow takes (192.168.1.0/24, fd00::/64; an IPv4
    /// block also holds a dual-stack FROM's IPv4 senders). Without --trust a sender whose
    /// address is not this host's (loopback or an IPv4 address of its own: Linux takes
    /// packets from the wire that claim its other IPv6 addresses) gets no more bytes than it
    /// sent, however large TO's
    /// answers: a UDP source address is whatever the packet says, and the bound keeps a
    /// forger from making the relay multiply its traffic toward the address it forged. A
    /// sender in NET loses the bound, so trust only a network where no one can forge
    /// addresses (0.0.0.0/0 or ::/0, anyone, or blocks that together hold a whole family, is
    /// warned about at start; a NET of a family FROM never hears from is refused)
    #[arg(long, value_name = "NET")]
    pub trust: Vec<crate::access::Net>,
    /// TLS on FROM: clients connect to the relay with TLS (the certificate of --cert and
    /// --key, or one made at start, its fingerprint beside `listening`)
    #[arg(long)]
    pub tls_from: bool,
    /// TLS on TO: the relay connects to the server with TLS (trusting --ca, --pin, the
    /// system's roots, or --insecure)
    #[arg(long)]
    pub tls_to: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Socket buffer sizes: shared by serve, send, bench and relay.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct BufferArgs {
    /// SO_RCVBUF in bytes (64k, 4M): how much the kernel queues for this side before it drops
    /// datagrams (UDP) or shrinks the advertised window (TCP). Linux doubles it, within
    /// net.core.rmem_max
    #[arg(long, value_name = "SIZE", value_parser = size_in::<usize>(1, 1 << 30))]
    pub rcvbuf: Option<usize>,
    /// SO_SNDBUF in bytes: how much the kernel holds of what this side sent and not yet
    /// delivered (or, on UDP, not yet handed to the device), within net.core.wmem_max
    #[arg(long, value_name = "SIZE", value_parser = size_in::<usize>(1, 1 << 30))]
    pub sndbuf: Option<usize>,
}

/// Who may connect or send: shared by serve and relay.
#[derive(Debug, Args)]
pub(crate) struct AccessArgs {
    /// Serve only peers matching one of these rules (repeatable): a CIDR block for tcp and udp
    /// (127.0.0.0/8, ::1/128), uid:N or gid:N for unix and unix-seqpacket (SO_PEERCRED), and
    /// with --exec uid:N over tcp, udp and quic, the user owning a client's socket on this
    /// host (sock_diag), and over unix-dgram, the uid each datagram carries
    /// (SCM_CREDENTIALS); without rules only the server's own user may run the program from
    /// this host
    #[arg(long, value_name = "RULE")]
    pub allow: Vec<crate::access::Rule>,
    /// Refuse peers matching any of these rules (repeatable; checked before --allow). A
    /// refused connection is closed, a refused datagram ignored, each peer logged once
    #[arg(long, value_name = "RULE")]
    pub deny: Vec<crate::access::Rule>,
}

impl AccessArgs {
    pub(crate) fn access(&self, proto: Proto) -> Result<crate::access::Access, UsageError> {
        crate::access::Access::new(proto, &self.allow, &self.deny)
    }

    /// Refuses an IP block the socket bound at `endpoint` could never hear from.
    fn check_family(&self, endpoint: &Endpoint, v6only: bool) -> Result<(), UsageError> {
        match &endpoint.addr {
            crate::endpoint::Address::Ip(addr) => {
                crate::access::Access::check_family(&self.allow, &self.deny, addr.ip(), v6only)
            }
            _ => Ok(()),
        }
    }

    /// The rules of `serve --exec`, where uid:N also applies on tcp, udp, quic and unix-dgram.
    pub(crate) fn exec_access(&self, proto: Proto) -> Result<crate::access::Access, UsageError> {
        crate::access::Access::for_exec(proto, &self.allow, &self.deny)
    }
}

/// Simulated conditions inside the relay, each for both directions or one (`up:`/`down:`).
#[derive(Debug, Args)]
pub(crate) struct RelayImpairArgs {
    /// Hold every message this long (e.g. 20ms, or up:20ms)
    #[arg(long, value_name = "[DIR:]DUR", value_parser = parse_directed_duration)]
    pub delay: Vec<Directed<Duration>>,
    /// Vary each message's delay by up to this much either way; never reorders
    #[arg(long, value_name = "[DIR:]DUR", value_parser = parse_directed_duration)]
    pub jitter: Vec<Directed<Duration>>,
    /// Drop this fraction of messages (5% or 0.05); datagram relays only
    #[arg(long, value_name = "[DIR:]P", value_parser = parse_directed_fraction)]
    pub loss: Vec<Directed<f64>>,
    /// Send this fraction of messages twice; datagram relays only (a sender off this host and
    /// outside --trust is never sent more bytes or datagrams than it sent)
    #[arg(long, value_name = "[DIR:]P", value_parser = parse_directed_fraction)]
    pub duplicate: Vec<Directed<f64>>,
    /// Hold back this fraction of messages and send each after the next; datagram relays only.
    /// One with no next message within 50 ms (each, in a request-reply flow) goes alone, and
    /// is counted apart: "held up to 50 ms and sent alone", not reordered
    #[arg(long, value_name = "[DIR:]P", value_parser = parse_directed_fraction)]
    pub reorder: Vec<Directed<f64>>,
    /// At most this rate, through a token bucket: 10mbit, 500kbit, 1gbit, 8000bit, 2MB/s
    #[arg(long, value_name = "[DIR:]RATE", value_parser = parse_directed_rate)]
    pub rate: Vec<Directed<u64>>,
    /// Seed of the simulated chance, to repeat a run exactly [default: from the clock]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// Which way through a relay: up is FROM to TO (client to server), down is back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Up,
    Down,
}

/// A value for one direction, or (`dir: None`) for both.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Directed<T> {
    pub dir: Option<Dir>,
    pub value: T,
}

impl RelayImpairArgs {
    /// The conditions of each direction: (up, down).
    pub(crate) fn conditions(&self) -> (crate::impair::Conditions, crate::impair::Conditions) {
        use crate::impair::Conditions;
        let (mut up, mut down) = (Conditions::default(), Conditions::default());
        fn apply<T: Copy>(
            values: &[Directed<T>],
            up: &mut Conditions,
            down: &mut Conditions,
            set: fn(&mut Conditions, T),
        ) {
            for v in values {
                if v.dir != Some(Dir::Down) {
                    set(up, v.value);
                }
                if v.dir != Some(Dir::Up) {
                    set(down, v.value);
                }
            }
        }
        apply(&self.delay, &mut up, &mut down, |c, v| c.delay = v);
        apply(&self.jitter, &mut up, &mut down, |c, v| c.jitter = v);
        apply(&self.loss, &mut up, &mut down, |c, v| c.loss = v);
        apply(&self.duplicate, &mut up, &mut down, |c, v| c.duplicate = v);
        apply(&self.reorder, &mut up, &mut down, |c, v| c.reorder = v);
        apply(&self.rate, &mut up, &mut down, |c, v| c.rate = Some(v));
        (up, down)
    }
}

/// Splits "up:VALUE" / "down:VALUE" / "VALUE" and parses VALUE.
fn parse_directed<T>(
    text: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Directed<T>, String> {
    let (dir, rest) = match text.split_once(':') {
        Some(("up", rest)) => (Some(Dir::Up), rest),
        Some(("down", rest)) => (Some(Dir::Down), rest),
        Some((other, _)) => {
            return Err(format!(
                "'{other}' is not a direction; write up:VALUE, down:VALUE or VALUE for both"
            ));
        }
        None => (None, text),
    };
    Ok(Directed {
        dir,
        value: parse(rest)?,
    })
}

fn parse_directed_duration(text: &str) -> Result<Directed<Duration>, String> {
    parse_directed(text, parse_duration)
}

fn parse_directed_fraction(text: &str) -> Result<Directed<f64>, String> {
    parse_directed(text, parse_fraction)
}

fn parse_directed_rate(text: &str) -> Result<Directed<u64>, String> {
    parse_directed(text, parse_rate)
}

/// A rate in bytes per second from "10mbit", "500kbit", "1gbit", "8000bit" (bits, as tc
/// writes them) or "2MB/s", "100kB/s", "5000B/s" (bytes).
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let units: [(&str, f64); 7] = [
        ("gbit", 1e9 / 8.0),
        ("mbit", 1e6 / 8.0),
        ("kbit", 1e3 / 8.0),
        ("bit", 1.0 / 8.0),
        ("MB/s", 1e6),
        ("kB/s", 1e3),
        ("B/s", 1.0),
    ];
    let wrong = || format!("'{text}' is not a rate; write e.g. 10mbit, 500kbit or 2MB/s");
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, *scale)))
        .ok_or_else(wrong)?;
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v * scale >= 1.0 && v * scale < 1e12 => Ok((v * scale) as u64),
        _ => Err(wrong()),
    }
}

impl BenchArgs {
    /// What to measure, against which servers, and how to report it.
    pub(crate) fn config(&self) -> Result<BenchConfig, UsageError> {
        let servers = self.servers()?;
        let tls = self.bench_tls(&servers)?;
        let format = if self.json { Format::Json } else { self.format };
        let every = match (format, self.interval) {
            (Format::Ndjson, every) => Some(every.unwrap_or(Duration::from_secs(1))),
            (_, Some(_)) => {
                return Err(UsageError::new(
                    "--interval writes a line per interval: it needs --format ndjson",
                ));
            }
            _ => None,
        };
        let protos: Vec<SockProto> = match &servers {
            Servers::Given(targets) => targets.iter().map(|t| t.proto).collect(),
            Servers::Local(protos) => protos.clone(),
        };
        // --quic-datagrams when one of the protocols is quic.
        let quic_or_none = match protos.contains(&SockProto::Quic) {
            true => Proto::Quic,
            false => protos.first().map_or(Proto::Tcp, |p| p.proto()),
        };
        for proto in protos {
            self.check_size(proto)?;
        }
        Ok(BenchConfig {
            servers,
            clients: self.clients as usize,
            size: self.size as usize,
            window: self.window as usize,
            limit: match self.count {
                Some(n) => Limit::Count(n),
                None => Limit::Duration(self.duration),
            },
            threads: self.threads.map_or_else(cores, |n| n as usize),
            timeout: self.timeout,
            expect: self.expect,
            idle: self.idle,
            framing: self.framing.framing,
            rate: self.rate,
            opts: SocketOptions {
                nodelay: self.nodelay,
                rcvbuf: self.buffers.rcvbuf,
                sndbuf: self.buffers.sndbuf,
                quic: QuicOptions {
                    mode: self.framing.quic_mode(quic_or_none)?,
                    ..QuicOptions::default()
                },
                tls,
                connect_timeout: self.timeout.unwrap_or(crate::transport::CONNECT_TIMEOUT),
                ..SocketOptions::default()
            },
            tls: self.tls.tls,
            format,
            layout: if self.wide {
                Layout::Wide
            } else {
                Layout::Narrow
            },
            every,
            plot: self.plot.clone(),
            force: self.force,
        })
    }

    /// The servers named on the command line, ADDR once per protocol; without ADDR, the
    /// protocols of the servers bench starts itself.
    /// TLS for every server measured; bench's own servers would need a certificate the
    /// client trusts, so TLS needs ADDR.
    fn bench_tls(
        &self,
        servers: &Servers,
    ) -> Result<Option<crate::transport::tls::TlsEnd>, UsageError> {
        match servers {
            Servers::Given(targets) => match targets.first() {
                Some(t) => {
                    for t in &targets[1..] {
                        self.tls
                            .config_for(self.tls.tls, t.proto.proto(), TlsSide::Client)?;
                    }
                    self.tls.client(self.tls.tls, t.proto.proto())
                }
                None => Ok(None),
            },
            Servers::Local(_) if self.tls.tls => Err(UsageError::new(
                "bench --tls measures a TLS server you started: give its ADDR, and --pin \
                 with the fingerprint it printed (netecho serve --tls)",
            )),
            // A TLS flag without --tls (--pin, --cert, ...) is refused with its reason, as
            // with ADDR.
            Servers::Local(_) => self
                .tls
                .config_for(false, Proto::Tcp, TlsSide::Client)
                .map(|_| None),
        }
    }

    fn servers(&self) -> Result<Servers, UsageError> {
        // Raw is refused before any server starts, in the words of every other refusal.
        let protos = self
            .proto
            .iter()
            .map(|p| p.not_raw("bench"))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(addr) = self.address()? else {
            return Ok(Servers::Local(if protos.is_empty() {
                vec![SockProto::Tcp]
            } else {
                protos
            }));
        };
        if protos.is_empty() {
            return Ok(Servers::Given(vec![
                Endpoint::parse(&addr, None)?.not_raw("bench")?,
            ]));
        }
        let targets: Result<Vec<_>, _> = protos
            .iter()
            .map(|p| {
                Ok(Target {
                    proto: *p,
                    addr: Endpoint::parse(&addr, Some(p.proto()))?.addr,
                })
            })
            .collect();
        targets.map(Servers::Given)
    }

    /// The server's address from ADDR, ADDR PORT, -c HOST or -c HOST PORT; `None` when bench
    /// starts its own servers.
    fn address(&self) -> Result<Option<String>, UsageError> {
        let (host, port) = match (&self.client, &self.addr, &self.port) {
            (Some(c), _, _) if c.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(UsageError::new(format!(
                    "-c {c}: -c names the server, as iperf3's -c HOST; for {c} clients write \
                     -P {c} (or --clients {c})"
                )));
            }
            (Some(_), Some(_), Some(extra)) => {
                return Err(UsageError::new(format!(
                    "bench -c HOST takes at most a PORT after it; '{extra}' is one word too many"
                )));
            }
            // Clap fills ADDR before PORT: with -c, ADDR is the port if anything.
            (Some(c), port, _) => (c, port.as_ref()),
            (None, Some(a), port) => (a, port.as_ref()),
            (None, None, _) => return Ok(None),
        };
        match port {
            None => Ok(Some(host.clone())),
            Some(port) => two_words(host, port, "bench").map(Some),
        }
    }

    /// --size within what one message of `proto` carries.
    fn check_size(&self, proto: SockProto) -> Result<(), UsageError> {
        let kind = match proto {
            SockProto::Quic => self.framing.quic_mode(Proto::Quic)?.kind(),
            other => other.kind(),
        };
        let carrier = Carrier::of(kind, self.framing.framing);
        if self.size == 0 && matches!(carrier, Carrier::Datagrams) {
            return Err(UsageError::new(format!(
                "--size 0 over {proto}: empty datagrams are all alike, so no reply can be told \
                 from another, and an echo server takes a run of alike datagrams from one \
                 sender for an echo loop (netecho's drops one in 1000); give --size 1 or more \
                 (8 carries the whole sequence number)"
            )));
        }
        if self.size as usize > crate::transport::MAX_MESSAGE && carrier.whole_messages() {
            return Err(UsageError::new(format!(
                "--size {}: {} messages are at most {} bytes here",
                self.size,
                proto,
                crate::transport::MAX_MESSAGE
            )));
        }
        Ok(())
    }
}

/// Threads when none are asked for: one per core.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl ServeArgs {
    /// The plain config `serve` runs from, every flag combination checked.
    pub(crate) fn config(&self) -> Result<ServeConfig, UsageError> {
        let endpoint = self.endpoint()?;
        let proto = endpoint.proto;
        let mut socket = self.socket_options(proto)?;
        socket.tls = self.tls.server(self.tls.tls, &endpoint)?;
        if proto == Proto::Quic && self.model == Model::Uring {
            return Err(UsageError::new(
                "--model uring accepts with io_uring on a listening socket, and a QUIC server's \
                 connections come from its QUIC thread: serve --proto quic under --model event \
                 (or threads, fork, iterative)",
            ));
        }
        if self.tls.tls && self.model == Model::Uring {
            return Err(UsageError::new(
                "--model uring reads the socket itself, beneath TLS: serve --tls under \
                 --model event (or threads, fork, iterative)",
            ));
        }
        let sched = self.sched(proto)?;
        self.access.check_family(&endpoint, self.sock.v6only)?;
        Ok(ServeConfig {
            service: self.service(proto)?,
            socket: SocketOptions {
                multicast: self.group.multicast(&endpoint)?,
                ..socket
            },
            access: match self.exec.exec.is_some() {
                true => self.access.exec_access(proto)?,
                false => self.access.access(proto)?,
            },
            endpoint,
            transform: self.transform,
            model: self.model,
            threads: self.threads(),
            sched,
            max_conns: self
                .max_conns
                .map_or(crate::server::default_max_conns(self.model), |n| n as usize),
            idle_timeout: self.idle_timeout,
            frame_timeout: self.frame_timeout(proto)?,
            max_pending: self.max_pending,
            framing: self.framing.framing,
            max_frame: self.framing.max_frame as usize,
            allow_loop_ports: self.allow_loop_ports,
            rate_limit: self.rate_limit,
        })
    }

    /// `--sched`: the loop threads' policy, the process's own unless told; only event loops
    /// and rings have loop threads to schedule, and files and exec are served by threads.
    fn sched(&self, proto: Proto) -> Result<Sched, UsageError> {
        let Some(sched) = self.sched else {
            return Ok(Sched::default());
        };
        let loops = matches!(self.model, Model::Event | Model::Uring);
        if !loops || proto.kind() == SocketKind::Datagram {
            return Err(UsageError::new(format!(
                "--sched applies to the connection loops of --model event and uring; \
                 --model {} over {proto} has none to schedule",
                self.model.name()
            )));
        }
        if self.files.files.is_some() || self.exec.exec.is_some() {
            return Err(UsageError::new(
                "--sched applies to the connection loops of an echo server; --files and \
                 --exec wait on a disk or a program, so they are served by a thread per \
                 connection, with no loop to schedule: leave out --sched",
            ));
        }
        Ok(sched)
    }

    /// `--frame-timeout`, 10 s unless told; refused where every message arrives whole.
    fn frame_timeout(&self, proto: Proto) -> Result<Option<Duration>, UsageError> {
        match self.frame_timeout {
            Some(_) if proto.kind() == SocketKind::Datagram => Err(UsageError::new(format!(
                "--frame-timeout bounds a frame arriving in pieces over a stream; {} datagrams \
                 arrive whole: leave it out",
                proto.name()
            ))),
            Some(limit) => Ok(limit.0),
            None => Ok(Some(Duration::from_secs(10))),
        }
    }

    /// Echo, or the service `--files` or `--exec` asks for.
    fn service(&self, proto: Proto) -> Result<ServiceConfig, UsageError> {
        let (files, exec) = (&self.files, &self.exec);
        if proto == Proto::Raw && (files.files.is_some() || exec.exec.is_some()) {
            return Err(UsageError::new(
                "--files and --exec need ports and connections; raw serves the echo service only",
            ));
        }
        let other = [
            ("--files", files.files.is_some()),
            ("--exec", exec.exec.is_some()),
        ];
        if let Some((flag, _)) = other.into_iter().find(|(_, given)| *given)
            && self.framing.framing != Framing::None
        {
            return Err(UsageError::new(format!(
                "--framing is for the echo service; {flag} has a protocol of its own that \
                 frames its messages itself (README {}), so leave out --framing",
                match flag {
                    "--files" => "\"Files\"",
                    _ => "\"Remote commands\"",
                }
            )));
        }
        if let Some(dir) = &files.files {
            return Ok(ServiceConfig::Files(ServeFiles {
                dir: dir.clone(),
                upload: files.upload,
                max_file: files.max_file,
                follow_hardlinks: files.follow_hardlinks,
                drop: files.impair.drop,
                reorder: files.impair.reorder,
                tftp_rfc1350: files.tftp_rfc1350,
            }));
        }
        let Some(command) = &exec.exec else {
            return Ok(ServiceConfig::Echo);
        };
        let Some((program, args)) = command.split_first() else {
            return Err(UsageError::new("--exec needs a program to run"));
        };
        no_serve_option_among(program, args)?;
        Ok(ServiceConfig::Exec(ServeExec {
            program: program.clone(),
            args: args.to_vec(),
            allow_remote: exec.allow_remote_exec,
            timeout: exec.exec_timeout,
            max_output: exec.max_output,
            max_children: exec.max_children as usize,
            env: exec.exec_env.clone(),
        }))
    }

    /// The plain config of `serve --lab`: the control port's address (3235 on [::] unless
    /// --addr), the sharing limits, --allow/--deny and --rate-limit.
    pub(crate) fn lab_config(&self) -> Result<LabServeConfig, UsageError> {
        if let Some(proto) = self.proto {
            return Err(UsageError::new(format!(
                "serve --lab --proto {}: the lab server speaks its own protocol over tcp (a \
                 control port, and the tcp and udp echo ports it opens itself): leave out \
                 --proto (netecho serve --lab, with --addr HOST:PORT for another control port)",
                proto.name()
            )));
        }
        let addr = match &self.addr {
            // An address without a port is the lab's port, where `lab HOST` looks.
            Some(addr) => {
                let port = crate::labwire::LAB_PORT.to_string();
                let with_port = join_port(addr, &port).unwrap_or_else(|| addr.clone());
                Endpoint::parse_listen(&with_port, Some(Proto::Tcp))?
            }
            None => Endpoint {
                proto: Proto::Tcp,
                addr: crate::endpoint::Address::Ip(std::net::SocketAddr::new(
                    std::net::Ipv6Addr::UNSPECIFIED.into(),
                    crate::labwire::LAB_PORT,
                )),
            },
        };
        // Checked as the echo ports will check them: CIDR blocks only.
        self.access.access(Proto::Tcp)?;
        // TLS protects the control connection (and the tls and quic echo ports present its
        // certificate); the tcp and udp echo ports stay plain, as they are what
        // the lab measures.
        let tls = self.tls.server(self.tls.tls, &addr)?;
        if self.transform != Transform::Upper
            || self.framing.framing != Framing::None
            || self.model != Model::Event
            || self.sched.is_some()
        {
            return Err(UsageError::new(
                "serve --lab serves what every lab run expects (upper-cased echo, unframed, the \
                 event model as it starts by default): leave out --transform, --framing, --model \
                 and --sched",
            ));
        }
        Ok(LabServeConfig {
            addr,
            limits: crate::server::lab::class::Limits {
                runs: self.lab.lab_runs as usize,
                queue: self.lab.lab_queue as usize,
                per_address: self.lab.lab_per_address as usize,
                max_time: self.lab.lab_max_time,
            },
            allow: self.access.allow.clone(),
            deny: self.access.deny.clone(),
            rate_limit: self.rate_limit,
            threads: self.threads(),
            tls,
        })
    }

    /// Event-loop threads: as asked, else one per core.
    pub(crate) fn threads(&self) -> usize {
        match self.threads {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    pub(crate) fn endpoint(&self) -> Result<Endpoint, UsageError> {
        match &self.addr {
            Some(addr) => Endpoint::parse_listen(addr, self.proto),
            None => {
                let proto = self.proto.unwrap_or(Proto::Tcp);
                Ok(Endpoint {
                    proto,
                    addr: proto.default_address(),
                })
            }
        }
    }

    pub(crate) fn socket_options(&self, proto: Proto) -> Result<SocketOptions, UsageError> {
        Ok(SocketOptions {
            backlog: self.sock.backlog,
            reuseaddr: !self.sock.no_reuseaddr,
            v6only: self.sock.v6only,
            nodelay: self.sock.nodelay,
            ip_proto: self.raw.for_proto(proto)?,
            hdrincl: false,
            ttl: None,
            rcvbuf: self.buffers.rcvbuf,
            sndbuf: self.buffers.sndbuf,
            tls: None,
            multicast: Default::default(),
            quic: self.quic_options(proto)?,
            connect_timeout: crate::transport::CONNECT_TIMEOUT,
            follow_reply_port: false,
        })
    }

    /// QUIC: a stream per message, one stream (--framing; files and exec, whose protocols
    /// are streams), or datagrams.
    fn quic_options(&self, proto: Proto) -> Result<QuicOptions, UsageError> {
        let mut mode = self.framing.quic_mode(proto)?;
        if self.files.files.is_some() || self.exec.exec.is_some() {
            if mode == QuicMode::Datagrams {
                return Err(UsageError::new(
                    "--quic-datagrams is for the echo service; --files and --exec take one \
                     QUIC stream per client",
                ));
            }
            mode = QuicMode::Stream;
        }
        Ok(QuicOptions {
            mode,
            // A message under way (its stream) has the time a frame has, or the idle
            // timeout's when --frame-timeout is off.
            message_time: self.frame_timeout(proto)?.or(self.idle_timeout),
            ..QuicOptions::default()
        })
    }
}

impl SendArgs {
    /// Where to send, over which socket, and which messages.
    pub(crate) fn config(&self) -> Result<SendConfig, UsageError> {
        let first = self.message.first().and_then(|w| w.to_str());
        if let Some(bad) = first.and_then(|w| no_port(&self.addr, w)) {
            return Err(bad);
        }
        let (addr, message) = match first.and_then(|w| join_port(&self.addr, w)) {
            Some(addr) => (addr, &self.message[1..]),
            None => (self.addr.clone(), &self.message[..]),
        };
        // A socat address's advice carries the message typed after it.
        let said = crate::habits::said(message.iter().map(|w| w.to_str().unwrap_or_default()));
        if let Some(advice) = crate::endpoint::socat_address(&addr, &said) {
            return Err(UsageError::new(advice));
        }
        let endpoint = Endpoint::parse(&addr, self.proto).map_err(|e| match self.interactive {
            true => UsageError::new(format!(
                "{e} (-i takes no value in netecho send: it asks for the `>>> ` prompt)"
            )),
            false => e,
        })?;
        let mut client = self.client_config(endpoint.proto)?;
        client.opts.multicast = self.group.multicast(&endpoint, self.burst.is_some())?;
        let unconnected = self.unconnected(endpoint.proto)?;
        let message = (!message.is_empty()).then(|| join(message));
        if let Some(msg) = &message {
            one_line(msg, &endpoint, &client)?;
        }
        Ok(SendConfig {
            endpoint,
            client,
            message,
            interactive: self.interactive,
            burst: self.burst.map(|n| n as usize),
            hex: self.hex,
            unconnected,
        })
    }

    /// --unconnected, where it applies: udp and unix-dgram, one message at a time.
    fn unconnected(&self, proto: Proto) -> Result<bool, UsageError> {
        if !self.unconnected {
            return Ok(false);
        }
        if !matches!(proto, Proto::Udp | Proto::UnixDgram) {
            return Err(UsageError::new(format!(
                "--unconnected is for udp and unix-dgram; {proto} needs a connection"
            )));
        }
        if self.burst.is_some() {
            return Err(UsageError::new(
                "--unconnected sends one message at a time; leave out --burst",
            ));
        }
        Ok(true)
    }

    fn client_config(&self, proto: Proto) -> Result<ClientConfig, UsageError> {
        if proto != Proto::Raw {
            let ttl = self.ttl.is_some() && proto != Proto::Udp;
            for (flag, used, to) in [
                ("--hdrincl", self.hdrincl, "--proto raw"),
                ("--ttl", ttl, "--proto raw and udp"),
            ] {
                if used {
                    return Err(UsageError::new(format!(
                        "{flag} applies to {to}; over {proto} the kernel writes the IP header"
                    )));
                }
            }
        } else if self.burst.is_some() {
            return Err(UsageError::new(
                "--burst is for udp, tcp and unix sockets; raw sends one message at a time",
            ));
        }
        Ok(ClientConfig {
            opts: SocketOptions {
                nodelay: self.nodelay,
                ip_proto: self.raw.for_proto(proto)?,
                hdrincl: self.hdrincl,
                ttl: self.ttl,
                rcvbuf: self.buffers.rcvbuf,
                sndbuf: self.buffers.sndbuf,
                quic: QuicOptions {
                    mode: self.framing.quic_mode(proto)?,
                    ..QuicOptions::default()
                },
                tls: self.tls.client(self.tls.tls, proto)?,
                connect_timeout: self.timeout,
                ..SocketOptions::default()
            },
            timeout: self.timeout,
            retries: self.retries,
            framing: self.framing.framing,
            max_frame: self.framing.max_frame as usize,
        })
    }
}

/// `HOST PORT` given as two words, joined; an error when the second is no port for the first.
fn two_words(host: &str, port: &str, command: &str) -> Result<String, UsageError> {
    join_port(host, port).ok_or_else(|| {
        UsageError::new(format!(
            "{command} {host} {port}: '{port}' is not a port (1 to 65535) for '{host}'; give \
             the address as HOST:PORT, or HOST PORT when HOST has no port"
        ))
    })
}

/// `send HOST WORD` with WORD all digits but no port (0, 70000): a mistyped port, refused as
/// nc refuses it, rather than sent as the message to the default port.
fn no_port(host: &str, word: &str) -> Option<UsageError> {
    let digits = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    if !digits || join_port(host, "1").is_none() || join_port(host, word).is_some() {
        return None;
    }
    let default = join_port(host, &crate::endpoint::DEFAULT_PORT.to_string())?;
    Some(UsageError::new(format!(
        "send {host} {word}: '{word}' is not a port (1 to 65535); fix the port, or to send \
         {word} as the message write `netecho send {default} {word}`"
    )))
}

/// MESSAGE under --framing line ends at its first newline: the server would read two
/// messages and answer each, where the user typed one and awaits one reply. Refused, since
/// no line framing can carry a newline inside a message (the sticky-packet lesson).
fn one_line(msg: &[u8], endpoint: &Endpoint, client: &ClientConfig) -> Result<(), UsageError> {
    // TLS makes any socket a stream of records; QUIC's mode says what its messages are.
    let kind = match (endpoint.proto, client.opts.tls.is_some()) {
        (_, true) => SocketKind::Stream,
        (Proto::Quic, false) => client.opts.quic.mode.kind(),
        (proto, false) => proto.kind(),
    };
    let line = Carrier::of(kind, client.framing) == Carrier::Frames(Framing::Line);
    if !line || !msg.contains(&b'\n') {
        return Ok(());
    }
    Err(UsageError::new(
        "a message under --framing line cannot hold a newline (the newline ends a frame, so \
         the server would read two messages); send it with --framing length (on both ends), or \
         pipe the lines in to send one message a line",
    ))
}

/// The words of MESSAGE as one message, joined with spaces, bytes as given.
fn join(words: &[OsString]) -> Vec<u8> {
    words
        .iter()
        .map(|w| w.as_bytes())
        .collect::<Vec<_>>()
        .join(&b' ')
}

impl TransferArgs {
    fn config(&self, command: &str, addr: &str) -> Result<TransferConfig, UsageError> {
        let endpoint = Endpoint::parse(addr, self.proto)?.not_raw(command)?;
        Ok(TransferConfig {
            tls: self.tls.client(self.tls.tls, endpoint.proto.proto())?,
            endpoint,
            window: self.window,
            block_size: self.block_size,
            drop: self.impair.drop,
            reorder: self.impair.reorder,
            timeout: self.timeout.unwrap_or(TRANSFER_TIMEOUT),
            silence: self.timeout.unwrap_or(CLIENT_SILENCE),
            retries: self.retries,
        })
    }
}

impl GetArgs {
    pub(crate) fn config(&self) -> Result<GetConfig, UsageError> {
        // `get HOST PORT NAME`: the port came where NAME goes.
        let (addr, name) = match &self.after_port {
            None => (self.transfer.addr.clone(), self.name.clone()),
            Some(name) => (
                two_words(&self.transfer.addr, &self.name, "get")?,
                name.clone(),
            ),
        };
        Ok(GetConfig {
            transfer: self.transfer.config("get", &addr)?,
            name,
            output: self.output.clone(),
            force: self.force,
            max_file: self.max_file,
        })
    }
}

impl PutArgs {
    pub(crate) fn config(&self) -> Result<PutConfig, UsageError> {
        // `put HOST PORT FILE [NAME]`: the port came where FILE goes.
        let port = self.local.to_str().unwrap_or("");
        let (addr, local, name) = match (&self.name, join_port(&self.transfer.addr, port)) {
            (Some(local), Some(addr)) => (addr, local.into(), self.after_port.clone()),
            (_, _) if self.after_port.is_some() => {
                return Err(UsageError::new(format!(
                    "put takes ADDR FILE [NAME], or HOST PORT FILE [NAME]; '{}' is no port",
                    self.local.display()
                )));
            }
            _ => (
                self.transfer.addr.clone(),
                self.local.clone(),
                self.name.clone(),
            ),
        };
        Ok(PutConfig {
            transfer: self.transfer.config("put", &addr)?,
            local,
            name,
        })
    }
}

impl ExecArgs {
    pub(crate) fn config(&self) -> Result<ExecConfig, UsageError> {
        // ssh's `exec HOST COMMAND`: the word after ADDR is no port (digits are a mistyped
        // one) but a command.
        let command = (self.port.as_deref())
            .filter(|word| !word.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|word| crate::habits::ssh_command(&self.addr, &[word]));
        if let Some(line) = command {
            return Err(UsageError::new(line));
        }
        let addr = match &self.port {
            Some(port) => two_words(&self.addr, port, "exec")?,
            None => self.addr.clone(),
        };
        let endpoint = Endpoint::parse(&addr, self.proto)?.not_raw("exec")?;
        let given = self.timeout.map(|TimeLimit(limit)| limit);
        Ok(ExecConfig {
            tls: self.tls.client(self.tls.tls, endpoint.proto.proto())?,
            endpoint,
            connect_timeout: given.flatten().unwrap_or(crate::transport::CONNECT_TIMEOUT),
            timeout: given.unwrap_or(Some(CLIENT_SILENCE)),
        })
    }
}

impl LabArgs {
    pub(crate) fn config(&self) -> Result<LabConfig, UsageError> {
        if self.format == Format::Ndjson {
            return Err(UsageError::new(
                "lab --format ndjson: the lab prints one table at the end; use --format json \
                 (ndjson streams bench's intervals)",
            ));
        }
        let tls = TlsArgs {
            tls: self.tls,
            cert: None,
            key: None,
            trust: self.trust.clone(),
        }
        .config_for(self.tls, Proto::Tcp, TlsSide::Client)?;
        self.impairment_needs_netns()?;
        if tls.is_some() && self.host.is_none() {
            return Err(UsageError::new(
                "lab --tls goes with HOST (a lab server started with serve --lab --tls); the \
                 lab on this machine measures tls rows of its own",
            ));
        }
        Ok(LabConfig {
            quick: self.quick,
            format: self.format,
            layout: if self.wide {
                Layout::Wide
            } else {
                Layout::Narrow
            },
            plot: self.plot.clone(),
            html: self.html.clone(),
            force: self.force,
            models: self.models,
            netns: self.netns.then(|| NetnsConfig {
                loss: self.loss.unwrap_or(0.0),
                rate: self.rate,
            }),
            remote: self.host.clone(),
            tls,
            wait: self.wait,
        })
    }
}

impl LabArgs {
    /// --loss and --rate are made between this machine's two namespaces (--netns): with
    /// HOST, or without --netns, they would change nothing, and the run would not say so.
    fn impairment_needs_netns(&self) -> Result<(), UsageError> {
        let flags = match (self.loss.is_some(), self.rate.is_some()) {
            (true, true) => "--loss and --rate",
            (true, false) => "--loss",
            (false, true) => "--rate",
            (false, false) => return Ok(()),
        };
        match (&self.host, self.netns) {
            (Some(host), _) => Err(UsageError::new(format!(
                "lab {host} {flags}: loss and a rate are made between two namespaces of this \
                 machine (lab --netns, as root), never on the way to a lab server; measure \
                 {host} without them, or run `netecho lab --netns {flags} ...` here"
            ))),
            (None, false) => Err(UsageError::new(format!(
                "lab {flags} goes with --netns (two namespaces of this machine, as root); \
                 usage: netecho lab --netns [--loss P] [--rate RATE]"
            ))),
            (None, true) => Ok(()),
        }
    }
}

impl PingArgs {
    /// The ping; `quiet` (-q) leaves only the summary, as ping -q does.
    pub(crate) fn config(&self, quiet: bool) -> PingConfig {
        PingConfig {
            host: self.host.clone(),
            count: self.count,
            interval: self.interval,
            size: self.size,
            timeout: self.timeout,
            quiet,
        }
    }
}

impl LogArgs {
    pub(crate) fn config(&self) -> LogConfig {
        LogConfig {
            quiet: self.quiet,
            verbose: self.verbose,
        }
    }
}

impl RelayArgs {
    /// The relay's two ends and conditions, checked to make sense together.
    pub(crate) fn config(&self) -> Result<Route, UsageError> {
        let side = |text: &str, listen: bool| {
            let parse = if listen {
                Endpoint::parse_listen
            } else {
                Endpoint::parse
            };
            parse(text, None)?.target().ok_or_else(|| {
                UsageError::new(
                    "relay works between tcp, udp and unix sockets; raw IP is for serve, send \
                     and ping",
                )
            })
        };
        let (from, to) = (side(&self.from, true)?, side(&self.to, false)?);
        if from.proto == SockProto::Quic || to.proto == SockProto::Quic {
            return Err(UsageError::new(
                "relay carries tcp, udp and unix sockets, not quic, whose connections end in \
                 TLS at each side; put the relay on udp (relay udp://:4000 udp://SERVER) to \
                 impair QUIC's packets on their way",
            ));
        }
        let to_proto: Proto = to.proto.into();
        let (up, down) = self.impair.conditions();
        let framing = relay_framing(&from, &to, self.framing.framing)?;
        let datagrams = [&from, &to].iter().any(|e| !bare(e).reliable());
        if !datagrams && (up.reshapes() || down.reshapes()) {
            return Err(UsageError::new(format!(
                "--loss, --duplicate and --reorder on a {} -> {} relay: both sides are reliable \
                 sockets, which never lose, duplicate or reorder data above the transport (TCP \
                 retransmits and orders bytes before any program sees them), so a relay cannot \
                 honestly simulate it; --delay, --jitter and --rate apply. For loss, relay \
                 datagrams (udp, unix-dgram), or lose packets below TCP: run both peers in a \
                 network namespace of their own that drops 5% of its packets, {LOSSY_NETNS}",
                from.proto, to.proto
            )));
        }
        Ok(Route {
            to,
            framing,
            max_frame: self.framing.max_frame as usize,
            up,
            down,
            seed: self.impair.seed.unwrap_or_else(Rng::clock_seed),
            opts: SocketOptions {
                rcvbuf: self.buffers.rcvbuf,
                sndbuf: self.buffers.sndbuf,
                tls: self
                    .tls
                    .relay_from(self.tls_from, &from.endpoint(), self.tls_to)?,
                ..SocketOptions::default()
            },
            to_opts: SocketOptions {
                rcvbuf: self.buffers.rcvbuf,
                sndbuf: self.buffers.sndbuf,
                tls: self.tls.relay_to(self.tls_to, to_proto, self.tls_from)?,
                // TFTP and netecho's udp files answer from a port of their own.
                follow_reply_port: true,
                ..SocketOptions::default()
            },
            access: {
                self.access.check_family(&from.endpoint(), false)?;
                self.access.access(from.proto.into())?
            },
            max_conns: self.max_conns as usize,
            idle_timeout: self.idle_timeout,
            trust: self.trust(&from)?,
            from,
            to_owner: None,
        })
    }

    /// --trust, which only a udp FROM has a use for: its replies alone are held to what
    /// their sender sent.
    fn trust(&self, from: &Target) -> Result<Vec<crate::access::Net>, UsageError> {
        if self.trust.is_empty() {
            return Ok(Vec::new());
        }
        if from.proto == SockProto::Udp {
            if let crate::endpoint::Address::Ip(addr) = &from.endpoint().addr {
                let nets = self.trust.iter().map(|net| ("--trust", *net));
                crate::access::Net::check_family(nets, addr.ip(), false)?;
            }
            return Ok(self.trust.clone());
        }
        Err(UsageError::new(format!(
            "--trust is for a udp FROM, whose senders' addresses may be forged; the clients \
             of a {} FROM get every reply already: leave --trust out",
            from.proto
        )))
    }
}

/// What a message is on `e`'s sockets before any framing.
fn bare(e: &Target) -> Carrier {
    Carrier::of(e.proto.kind(), Framing::None)
}

/// The framing of a relay: needed where a stream meets messages, and only there.
fn relay_framing(
    from: &Target,
    to: &Target,
    asked: Framing,
) -> Result<Option<Framing>, UsageError> {
    if bare(from).keeps_boundaries() == bare(to).keeps_boundaries() {
        if asked != Framing::None {
            tracing::warn!(
                "--framing is for a stream on one side and messages on the other; \
                 {} -> {} is relayed as it comes",
                from.proto,
                to.proto
            );
        }
        return Ok(None);
    }
    if asked == Framing::None {
        return Err(UsageError::new(format!(
            "relay {} -> {}: a stream has no message boundaries; say how to cut it into \
             messages with --framing line or --framing length",
            from.proto, to.proto
        )));
    }
    Ok(Some(asked))
}

/// A pending-reply bound: at least one full message, so a reply always fits.
fn parse_max_pending(text: &str) -> Result<usize, String> {
    size_in::<usize>(crate::transport::MAX_MESSAGE as u64, 1 << 40)(text)
}

/// A fraction from 0 to 1 ("0.05"), or a percentage ("5%").
fn parse_fraction(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&(v * scale)) => Ok(v * scale),
        _ => Err(format!("'{text}' is not a fraction; write e.g. 0.05 or 5%")),
    }
}

// `netecho lesson`: the lesson walked on real sockets.

const LESSON_EXAMPLES: &str = "Examples:\n  \
    netecho lesson                 # the server and the client, one call per Enter\n  \
    netecho lesson --lang zh       # the same in Chinese (the lesson's language)\n  \
    netecho lesson --list          # what can go wrong, one demonstration each\n  \
    netecho lesson sticky --auto   # two sends read as one, without pauses";

#[derive(Debug, Args)]
pub(crate) struct LessonArgs {
    /// A demonstration of what goes wrong (see --list); without it, the whole lesson
    #[arg(value_name = "DEMO", value_parser = choice::<Demo>())]
    pub demo: Option<Demo>,
    /// List the demonstrations
    #[arg(long)]
    pub list: bool,
    /// Run through without waiting for Enter (the default when stdin is not a terminal; on a
    /// terminal Ctrl-D does the same from that step on, and Ctrl-C leaves)
    #[arg(long)]
    pub auto: bool,
    /// Language of the lesson
    #[arg(long, value_name = "LANG", default_value = "en", value_parser = choice::<Lang>())]
    pub lang: Lang,
}

impl LessonArgs {
    /// Which walk, in which language, waiting or not.
    pub(crate) fn config(&self) -> LessonConfig {
        LessonConfig {
            demo: self.demo,
            list: self.list,
            auto: self.auto,
            lang: self.lang,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Command {
        let argv = std::iter::once("netecho").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect("valid arguments").command
    }

    fn usage_error<T>(result: Result<T, UsageError>) -> String {
        match result {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn an_enum_flag_lists_every_value_with_its_help() {
        let cmd = Cli::command();
        let send = cmd.find_subcommand("send").expect("send");
        let proto = send
            .get_arguments()
            .find(|a| a.get_id() == "proto")
            .expect("--proto");
        let listed: Vec<(String, Option<String>)> = proto
            .get_possible_values()
            .iter()
            .map(|v| {
                (
                    v.get_name().to_string(),
                    v.get_help().map(|h| h.to_string()),
                )
            })
            .collect();
        let expected: Vec<(String, Option<String>)> = Proto::ALL
            .iter()
            .map(|p| (p.name().to_string(), Some(Choice::help(*p).to_string())))
            .collect();
        assert_eq!(listed, expected);
    }

    #[test]
    fn an_enum_flag_gives_the_named_value_and_its_default() {
        let Command::Bench(args) = parse(&["bench", "--proto", "unix-seqpacket,udp"]) else {
            panic!("bench");
        };
        assert_eq!(args.proto, [Proto::UnixSeqpacket, Proto::Udp]);
        assert_eq!(args.format, Format::Table);
        assert_eq!(args.expect, Transform::Upper);
        let Command::Serve(args) = parse(&["serve", "--model", "fork"]) else {
            panic!("serve");
        };
        assert_eq!(
            (args.model, args.framing.framing),
            (Model::Fork, Framing::None)
        );
    }

    #[test]
    fn send_joins_the_words_of_its_message() {
        let Command::Send(args) = parse(&["send", "127.0.0.1", "hello", "-x", "world"]) else {
            panic!("send");
        };
        let config = args.config().expect("config");
        assert_eq!(config.message.as_deref(), Some(&b"hello -x world"[..]));
        let Command::Send(args) = parse(&["send", "127.0.0.1"]) else {
            panic!("send");
        };
        assert_eq!(args.config().expect("config").message, None);
    }

    #[test]
    fn bench_refuses_an_oversized_datagram_before_any_run() {
        let Command::Bench(args) = parse(&["bench", "--proto", "tcp,udp", "-s", "100000"]) else {
            panic!("bench");
        };
        assert_eq!(
            usage_error(args.config()),
            format!(
                "--size 100000: udp messages are at most {} bytes here",
                crate::transport::MAX_MESSAGE
            )
        );
    }

    #[test]
    fn bench_writes_intervals_only_as_ndjson() {
        let Command::Bench(args) = parse(&["bench", "--interval", "2s"]) else {
            panic!("bench");
        };
        assert!(usage_error(args.config()).contains("it needs --format ndjson"));
        let Command::Bench(args) = parse(&["bench", "--format", "ndjson"]) else {
            panic!("bench");
        };
        let config = args.config().expect("config");
        assert_eq!(config.every, Some(Duration::from_secs(1)));
        assert!(matches!(config.servers, Servers::Local(p) if p == [SockProto::Tcp]));
    }

    #[test]
    fn bench_refuses_raw_in_one_place_with_or_without_addr() {
        for argv in [
            &["bench", "--proto", "raw"][..],
            &["bench", "--proto", "udp", "--proto", "raw", "127.0.0.1:9"][..],
            &["bench", "raw://127.0.0.1"][..],
        ] {
            let Command::Bench(args) = parse(argv) else {
                panic!("bench");
            };
            let said = usage_error(args.config());
            assert!(
                said.starts_with("bench does not work over raw sockets"),
                "{argv:?}: {said}"
            );
        }
        let Command::Bench(args) = parse(&["bench", "--proto", "udp", "127.0.0.1:9"]) else {
            panic!("bench");
        };
        let Servers::Given(targets) = args.config().expect("config").servers else {
            panic!("given");
        };
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].proto, SockProto::Udp);
        assert_eq!(targets[0].to_string(), "udp 127.0.0.1:9");
    }

    #[test]
    fn relay_frames_only_where_a_stream_meets_messages() {
        let relay = |args: &[&str]| match parse(args) {
            Command::Relay(args) => args.config(),
            _ => panic!("relay"),
        };
        let cut = relay(&["relay", "tcp://127.0.0.1:0", "udp://127.0.0.1:9"]);
        assert!(usage_error(cut).contains("a stream has no message boundaries"));
        let framed = relay(&[
            "relay",
            "--framing",
            "length",
            "tcp://127.0.0.1:0",
            "udp://127.0.0.1:9",
        ]);
        assert_eq!(framed.expect("config").framing, Some(Framing::Length));
        let same = relay(&["relay", "udp://127.0.0.1:0", "unix-dgram:///tmp/x.sock"]);
        assert_eq!(same.expect("config").framing, None);
        let lossy = relay(&["relay", "--loss", "5%", "tcp://127.0.0.1:0", "unix:///x"]);
        assert!(usage_error(lossy).contains("both sides are reliable"));
    }

    #[test]
    fn the_longest_lab_turn_is_whole_seconds_up_to_a_day() {
        assert_eq!(parse_lab_max_time("10m"), Ok(Duration::from_secs(600)));
        for bad in ["1.5s", "500ms", "25h", "10000h"] {
            let err = parse_lab_max_time(bad).unwrap_err();
            assert!(err.contains("whole seconds from 1s to 24h"), "{bad}: {err}");
        }
    }

    #[test]
    fn lab_takes_a_host_and_serve_lab_its_limits() {
        let Command::Lab(args) = parse(&["lab", "--quick", "10.0.0.1"]) else {
            panic!("lab");
        };
        assert_eq!(
            args.config().expect("config").remote.as_deref(),
            Some("10.0.0.1")
        );
        assert!(Cli::try_parse_from(["netecho", "lab", "--netns", "10.0.0.1"]).is_err());
        let Command::Serve(args) = parse(&["serve", "--lab", "--lab-runs", "2"]) else {
            panic!("serve");
        };
        let config = args.lab_config().expect("lab config");
        assert_eq!(config.addr.addr.to_string(), "[::]:3235");
        assert_eq!((config.limits.runs, config.limits.queue), (2, 64));
        assert!(Cli::try_parse_from(["netecho", "serve", "--lab-runs", "2"]).is_err());
        let Command::Serve(args) = parse(&["serve", "--lab", "--transform", "echo"]) else {
            panic!("serve");
        };
        assert!(usage_error(args.lab_config()).contains("leave out --transform"));
        let Command::Serve(args) = parse(&["serve", "--lab", "--addr", "udp://[::]:4000"]) else {
            panic!("serve");
        };
        assert!(usage_error(args.lab_config()).contains("says udp"));
        let Command::Serve(args) = parse(&["serve", "--lab", "--addr", "/tmp/lab.sock"]) else {
            panic!("serve");
        };
        assert!(usage_error(args.lab_config()).contains("is a Unix socket address"));
        for (given, bound) in [
            ("127.0.0.1", "127.0.0.1:3235"),
            ("::1", "[::1]:3235"),
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("9000", "[::]:9000"),
        ] {
            let Command::Serve(args) = parse(&["serve", "--lab", "--addr", given]) else {
                panic!("serve");
            };
            let config = args.lab_config().expect("lab config");
            assert_eq!(config.addr.addr.to_string(), bound, "{given}");
        }
    }

    #[test]
    fn serve_lab_takes_tls_and_a_share_per_address_and_lab_tls_needs_a_host() {
        let Command::Serve(args) = parse(&["serve", "--lab", "--tls", "--lab-per-address", "32"])
        else {
            panic!("serve");
        };
        let config = args.lab_config().expect("lab config");
        assert!(config.tls.is_some());
        assert_eq!(config.limits.per_address, 32);
        let Command::Serve(args) = parse(&["serve", "--lab"]) else {
            panic!("serve");
        };
        let config = args.lab_config().expect("lab config");
        assert!(config.tls.is_none());
        assert_eq!(config.limits.per_address, 8);
        let Command::Lab(args) = parse(&["lab", "--tls", "--insecure"]) else {
            panic!("lab");
        };
        assert!(usage_error(args.config()).contains("lab --tls goes with HOST"));
        let Command::Lab(args) = parse(&["lab", "--tls", "--wait", "30s", "10.0.0.1"]) else {
            panic!("lab");
        };
        let config = args.config().expect("lab config");
        assert!(config.tls.is_some());
        assert_eq!(config.wait, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["netecho", "lab", "--wait", "30s"]).is_err());
    }

    #[test]
    fn lab_refuses_ndjson_and_gathers_its_netns_conditions() {
        let Command::Lab(args) = parse(&["lab", "--format", "ndjson"]) else {
            panic!("lab");
        };
        assert!(usage_error(args.config()).starts_with("lab --format ndjson"));
        let Command::Lab(args) = parse(&["lab", "--netns", "--loss", "5%", "--rate", "2MB/s"])
        else {
            panic!("lab");
        };
        let netns = args.config().expect("config").netns.expect("netns");
        assert_eq!((netns.loss, netns.rate), (0.05, Some(2_000_000)));
        // Anywhere but --netns they would be ignored: refused in one line instead.
        for (argv, says) in [
            (
                &["lab", "--loss", "5%", "10.0.0.1"][..],
                "lab 10.0.0.1 --loss: ",
            ),
            (
                &["lab", "--rate", "10mbit", "10.0.0.1"],
                "never on the way to a lab server",
            ),
            (
                &["lab", "--quick", "--loss", "5%"],
                "lab --loss goes with --netns",
            ),
        ] {
            let Command::Lab(args) = parse(argv) else {
                panic!("lab");
            };
            let line = usage_error(args.config());
            assert!(line.contains(says), "{argv:?}: {line}");
            assert!(!line.contains("[HOST"), "{argv:?}: {line}");
        }
    }
}

/// TLS over a stream (tcp, unix, unix-seqpacket): shared by serve, send, bench, get, put,
/// exec and relay. The server's half is --cert/--key; the client's half is whom it trusts.
#[derive(Debug, Args, Clone)]
pub(crate) struct TlsArgs {
    /// Encrypt with TLS (rustls; ALPN "netecho"). serve without --cert makes a self-signed
    /// certificate at start and prints its SHA-256 fingerprint beside `listening`; give that
    /// to clients as --pin
    #[arg(long)]
    pub tls: bool,
    /// With --tls, serve: the certificate chain to present (PEM), with --key
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// With --tls, serve: the private key of --cert (PEM: PKCS#8, RSA or EC)
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub trust: TlsTrustArgs,
}

/// The client's half of the TLS flags: whom it trusts, and the version it speaks; all the
/// lab takes (a lab run presents no certificate).
#[derive(Debug, Args, Clone)]
pub(crate) struct TlsTrustArgs {
    /// With --tls, clients: trust the CAs in FILE (PEM) instead of the system's
    /// (/etc/ssl/certs)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pin", "insecure"])]
    pub ca: Option<std::path::PathBuf>,
    /// With --tls, clients: trust exactly the server certificate with this SHA-256
    /// fingerprint (as serve prints it, or `openssl x509 -fingerprint -sha256`; colons and
    /// case do not matter). Names and dates are not checked; the server must still prove it
    /// holds the certificate's key
    #[arg(long, value_name = "SHA256", value_parser = parse_pin, conflicts_with = "insecure")]
    pub pin: Option<crate::transport::tls::cert::Fingerprint>,
    /// With --tls, clients: do not check the server's certificate at all (encrypted, but to
    /// whoever answers); a warning says so
    #[arg(long)]
    pub insecure: bool,
    /// With --tls: the only TLS version to speak, 1.3 (one round trip) or 1.2 (two, and the
    /// certificate in cleartext, as --explain shows)
    #[arg(long, value_name = "VERSION", value_parser = ["1.2", "1.3"], default_value = "1.3")]
    pub tls_version: String,
    /// With --tls, clients: the name the server's certificate must carry [default: the host
    /// connected to; localhost over a Unix socket]
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}

/// A client command's --cert and --key: not in its --help, and taken only to be refused with
/// the reason (a client checks the server's certificate, it presents none), alone or not (no
/// --cert asking for --key first).
fn server_flags_hidden(flag: clap::Arg) -> clap::Arg {
    match flag.get_id().as_str() {
        "cert" | "key" => flag
            .hide(true)
            .requires(clap::builder::Resettable::<clap::Id>::Reset),
        _ => flag,
    }
}

/// serve's --ca, --pin, --insecure and --server-name: not in its --help, and taken only to be
/// refused with the reason (a server presents its certificate).
fn client_flags_hidden(flag: clap::Arg) -> clap::Arg {
    match flag.get_id().as_str() {
        "ca" | "pin" | "insecure" | "server_name" => flag.hide(true),
        _ => flag,
    }
}

fn parse_pin(text: &str) -> Result<crate::transport::tls::cert::Fingerprint, String> {
    crate::transport::tls::cert::Fingerprint::parse(text)
}

/// Which side of a connection a command's TLS flags configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsSide {
    Server,
    Client,
}

impl TlsArgs {
    /// The TLS config when `on` (--tls, or a relay's --tls-from/--tls-to), every flag
    /// checked against `proto` and the side it configures; None without TLS.
    pub(crate) fn config_for(
        &self,
        on: bool,
        proto: Proto,
        side: TlsSide,
    ) -> Result<Option<crate::transport::tls::cert::TlsConfig>, UsageError> {
        use crate::transport::tls::cert::{TlsConfig, TlsVersion};
        let given = self.given();
        // QUIC always speaks TLS 1.3: its flags apply without --tls.
        let on = on || proto == Proto::Quic;
        if proto == Proto::Quic && self.trust.tls_version == "1.2" {
            return Err(UsageError::new(
                "QUIC carries TLS 1.3 only (RFC 9001); leave out --tls-version 1.2",
            ));
        }
        // A flag of the other side is refused with its reason, --tls or not.
        let wrong: &[&str] = match side {
            Side::Server => &["--ca", "--pin", "--insecure", "--server-name"],
            Side::Client => &["--cert", "--key"],
        };
        if let Some(flag) = given.iter().find(|f| wrong.contains(f)) {
            let why = match side {
                Side::Server => "is for clients: a server presents its certificate (--cert, --key)",
                Side::Client => {
                    "is for serve: a client checks the server's certificate (--ca, --pin)"
                }
            };
            return Err(UsageError::new(format!("{flag} {why}")));
        }
        if !on {
            return match given.first() {
                Some(flag) => Err(UsageError::new(format!(
                    "{flag} goes with --tls; add --tls to encrypt"
                ))),
                None => Ok(None),
            };
        }
        if proto.kind() == crate::endpoint::SocketKind::Datagram || proto == Proto::Raw {
            return Err(UsageError::new(format!(
                "TLS needs a reliable stream, and {proto} is not one; use --proto quic for \
                 encryption over udp"
            )));
        }
        let trust = &self.trust;
        Ok(Some(TlsConfig {
            cert: self.cert.clone(),
            key: self.key.clone(),
            ca: trust.ca.clone(),
            pin: trust.pin,
            insecure: trust.insecure,
            version: match trust.tls_version.as_str() {
                "1.2" => TlsVersion::V12,
                _ => TlsVersion::V13,
            },
            server_name: trust.server_name.clone(),
        }))
    }

    /// The TLS flags given on the command line (other than --tls itself).
    fn given(&self) -> Vec<&'static str> {
        [
            ("--cert", self.cert.is_some()),
            ("--key", self.key.is_some()),
            ("--ca", self.trust.ca.is_some()),
            ("--pin", self.trust.pin.is_some()),
            ("--insecure", self.trust.insecure),
            ("--tls-version", self.trust.tls_version != "1.3"),
            ("--server-name", self.trust.server_name.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, used)| used.then_some(flag))
        .collect()
    }
}

use TlsSide as Side;

impl TlsArgs {
    /// A server's TLS for `endpoint` (a certificate made for the names it listens on when
    /// none was given), when `on`.
    pub(crate) fn server(
        &self,
        on: bool,
        endpoint: &Endpoint,
    ) -> Result<Option<crate::transport::tls::TlsEnd>, UsageError> {
        use crate::endpoint::Address;
        use crate::transport::tls::{TlsEnd, cert::names_for};
        let Some(config) = self.config_for(on, endpoint.proto, Side::Server)? else {
            return Ok(None);
        };
        let names = match &endpoint.addr {
            Address::Ip(addr) => names_for(Some(addr.ip())),
            Address::Host(name, _) => {
                let mut names = vec![name.clone()];
                names.extend(names_for(None));
                names
            }
            _ => names_for(None),
        };
        // What a client names the server by: a host, or an address that is not a wildcard.
        let served = match &endpoint.addr {
            Address::Ip(addr) if !addr.ip().is_unspecified() => Some(addr.ip().to_string()),
            Address::Host(name, _) => Some(name.clone()),
            _ => None,
        };
        TlsEnd::server(&config, &names, served.as_deref())
            .map(Some)
            .map_err(|e| UsageError::new(format!("{e:#}")))
    }

    /// A relay's TLS on FROM (--tls-from): the server's flags only, the client's being for
    /// TO when `to` is on too.
    pub(crate) fn relay_from(
        &self,
        on: bool,
        endpoint: &Endpoint,
        to: bool,
    ) -> Result<Option<crate::transport::tls::TlsEnd>, UsageError> {
        if self.tls {
            return Err(UsageError::new(
                "relay has two ends: --tls-from (clients connect with TLS) or --tls-to (the \
                 relay connects with TLS), or both",
            ));
        }
        let only_server = TlsArgs {
            trust: TlsTrustArgs {
                ca: None,
                pin: None,
                insecure: false,
                server_name: None,
                ..self.trust.clone()
            },
            ..self.clone()
        };
        if !on {
            return match self.given().first() {
                Some(flag) if !to => Err(UsageError::new(format!(
                    "{flag} goes with --tls-from or --tls-to"
                ))),
                _ => Ok(None),
            };
        }
        let args = if to { &only_server } else { self };
        args.server(on, endpoint)
    }

    /// A relay's TLS on TO (--tls-to): the client's flags only.
    pub(crate) fn relay_to(
        &self,
        on: bool,
        proto: Proto,
        from: bool,
    ) -> Result<Option<crate::transport::tls::TlsEnd>, UsageError> {
        let only_client = TlsArgs {
            cert: None,
            key: None,
            ..self.clone()
        };
        let args = if from { &only_client } else { self };
        if !on && from {
            return Ok(None);
        }
        args.client(on, proto)
    }

    /// A client's TLS over `proto`, when `on`.
    pub(crate) fn client(
        &self,
        on: bool,
        proto: Proto,
    ) -> Result<Option<crate::transport::tls::TlsEnd>, UsageError> {
        let Some(config) = self.config_for(on, proto, Side::Client)? else {
            return Ok(None);
        };
        crate::transport::tls::TlsEnd::client(&config)
            .map(Some)
            .map_err(|e| UsageError::new(format!("{e:#}")))
    }
}
