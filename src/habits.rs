//! The flags people bring from nc, ncat, socat, iperf3 and ping. Those netecho has work as
//! there (`-4`, `-6`, `-v`, ping's `-c -i -s -W -q`, iperf3's `-c -P -t -J -b -l`); each of
//! the others is refused in one line that names the netecho way to do it, rather than
//! clap's generic tip. Every other usage error clap raises is one line too: what was wrong,
//! clap's suggestion, and the subcommand's help to read.

use std::error::Error as _;
use std::ffi::OsString;
use std::iter::Peekable;

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::cli::{Cli, Command};

/// A flag of another tool, and what to type in netecho instead.
pub(crate) struct Habit {
    /// The subcommands it is read for as the tool that subcommand stands in for (ping's -t
    /// is a TTL, iperf3's a duration); empty: any subcommand without its own row.
    pub on: &'static [&'static str],
    /// The flags as typed: short, and the long forms of the tools that have one.
    pub flags: &'static [&'static str],
    /// Which tools have it, and what it does there.
    pub there: &'static str,
    /// The netecho way.
    pub here: &'static str,
}

/// A row for any subcommand.
const fn any(flags: &'static [&'static str], there: &'static str, here: &'static str) -> Habit {
    Habit {
        on: &[],
        flags,
        there,
        here,
    }
}

/// A row for the subcommands `on`.
const fn on(
    on: &'static [&'static str],
    flags: &'static [&'static str],
    there: &'static str,
    here: &'static str,
) -> Habit {
    Habit {
        on,
        flags,
        there,
        here,
    }
}

/// The flags netecho refuses with advice, each read as the tool its subcommand stands in for
/// reads it (a row `on` that subcommand), else as nc, ncat and iperf3 read it. A flag netecho
/// has for a subcommand (ping's -c, bench's -n) works there; bench's -w, -n, -s and -b, which
/// iperf3 reads another way, get their row when their value is refused.
pub(crate) const HABITS: &[Habit] = &[
    any(
        &["-l", "--listen"],
        "nc, ncat: listen",
        "netecho listens with `netecho serve --addr :PORT`",
    ),
    any(
        &["-p", "--port"],
        "nc, iperf3: the port",
        "the port goes with the address: `netecho send 127.0.0.1 4000` (HOST PORT) or \
         127.0.0.1:4000; to listen, `netecho serve --addr :PORT`",
    ),
    any(
        &["-u", "--udp"],
        "nc, ncat, iperf3: UDP",
        "UDP is `--proto udp`, or a udp:// address: `netecho send udp://127.0.0.1:4000`",
    ),
    any(
        &["-U", "--unixsock"],
        "nc, ncat: a Unix socket",
        "a path is a Unix socket: `netecho send /tmp/echo.sock` (--proto unix-dgram or \
         unix-seqpacket for the other types)",
    ),
    any(
        &["-k", "--keep-open"],
        "nc, ncat: keep listening",
        "`netecho serve` keeps listening after each client: leave -k out",
    ),
    any(
        &["-w", "--wait"],
        "nc, ncat: a time-out",
        "the wait for a reply is `--timeout 5s`",
    ),
    any(
        &["-J", "--json"],
        "iperf3: JSON output",
        "JSON is `--format json` (`netecho bench -J` works)",
    ),
    any(
        &["-t", "--time"],
        "iperf3: how long",
        "a timed run is `netecho bench -t 10s` (--duration); a raw packet's TTL is \
         `netecho send --ttl N`",
    ),
    any(
        &["-P", "--parallel"],
        "iperf3: parallel streams",
        "parallel clients are `netecho bench -P 8` (--clients)",
    ),
    any(
        &["-c", "--sh-exec", "--client"],
        "ncat: a shell command; iperf3: the server; ping: a count",
        "a shell command per client is `netecho serve --exec sh -c 'CMD'`; iperf3's -c HOST \
         is `netecho bench -c HOST`; ping's -c is `netecho ping -c 3 HOST`",
    ),
    any(
        &["-e", "--exec"],
        "nc, ncat: a program per client",
        "a program per client is `netecho serve --exec PROGRAM ARGS`",
    ),
    any(
        &["-x", "--hex-dump", "--hex"],
        "ncat: a hex dump",
        "the hex dump is `--hex` on send, serve and relay, written to stderr (`2>FILE` keeps \
         it in a file)",
    ),
    any(
        &["-z", "--zero"],
        "nc: scan for listening ports",
        "netecho scans no ports; `netecho send HOST PORT hello` shows whether a server answers",
    ),
    any(
        &["-n", "--nodns"],
        "nc, ncat: no name lookup",
        "netecho never looks up a numeric address: leave -n out",
    ),
    any(
        &["-s", "--source"],
        "nc, ncat: the source address; iperf3: the server",
        "the kernel picks the source address; iperf3's server is `netecho serve`; sizes are \
         `netecho bench -s 1k` and `netecho ping -s 1000`",
    ),
    any(
        &["-i", "--interval"],
        "nc: a delay between lines; ping: between requests",
        "ping's -i is `netecho ping -i 200ms`; bench paces with `--rate 10mbit`",
    ),
    any(
        &["-b", "--bitrate", "--broadcast"],
        "iperf3: the bitrate; nc: broadcast",
        "a bitrate is `netecho bench -b 10mbit` (--rate); a broadcast is `netecho send \
         --broadcast udp://BROADCAST:PORT`",
    ),
    any(
        &["-M", "--ttl"],
        "nc: the TTL; ncat: the TTL",
        "the TTL is `netecho send --ttl N` (udp and raw; to a group, IP_MULTICAST_TTL)",
    ),
    any(
        &["-R", "--reverse"],
        "iperf3: the server sends",
        "`netecho bench` measures both ways at once: each request comes back as its reply",
    ),
    any(
        &["-C", "--crlf"],
        "nc, ncat: CRLF line endings",
        "`netecho send --framing line` ends each message with \\n; netecho sends no \\r",
    ),
    any(
        &["-N"],
        "nc: shut down writing at the end of input",
        "`netecho send` shuts down its writing side when its input ends: leave -N out",
    ),
    any(
        &["-W"],
        "ping: the wait for a reply",
        "ping's -W is `netecho ping -W 2s`; send waits with `--timeout 2s`",
    ),
    any(
        &["-connect"],
        "openssl s_client: the server to connect to",
        "`netecho send --tls HOST 4000` (--pin the fingerprint serve printed, --ca FILE, or \
         --insecure)",
    ),
    any(
        &["--ssl"],
        "ncat: TLS",
        "netecho's TLS is `--tls` (it sends no TLS unless asked, to show the sockets \
         underneath)",
    ),
    // openssl s_client's one-dash long flags, to `send --tls`.
    on(
        &["send"],
        &["-servername"],
        "openssl s_client: the name sent in SNI",
        "the name is `netecho send --tls --server-name NAME`",
    ),
    on(
        &["send"],
        &["-CAfile"],
        "openssl s_client: the CA certificates to trust",
        "a CA to trust is `netecho send --tls --ca FILE`",
    ),
    on(
        &["send"],
        &["-tls1_2"],
        "openssl s_client: TLS 1.2 only",
        "TLS 1.2 is `netecho send --tls --tls-version 1.2`",
    ),
    on(
        &["send"],
        &["-tls1_3"],
        "openssl s_client: TLS 1.3 only",
        "TLS 1.3 is netecho's default (`--tls-version 1.3`): leave -tls1_3 out",
    ),
    on(
        &["send"],
        &["-showcerts"],
        "openssl s_client: print the certificates",
        "`netecho send --tls -v` logs the version, the cipher and the certificate's subject",
    ),
    on(
        &["send"],
        &["-quiet"],
        "openssl s_client: no session details",
        "`netecho send --tls` prints only the reply: leave -quiet out",
    ),
    // nc's and iperf3's server side.
    on(
        &["serve"],
        &["-u", "--udp"],
        "nc, ncat, iperf3: UDP",
        "a UDP server is `netecho serve --proto udp --addr :PORT` (or --addr udp://:PORT)",
    ),
    on(
        &["serve"],
        &["-p", "--port"],
        "nc, iperf3: the port",
        "a server's port goes with its address: `netecho serve --addr :PORT`",
    ),
    on(
        &["serve"],
        &["-s", "--server"],
        "iperf3: be the server",
        "`netecho serve` is the server: leave -s out (iperf3's port is `--addr :5201`)",
    ),
    // bench stands in for iperf3.
    on(
        &["bench"],
        &["-u", "--udp"],
        "iperf3: UDP",
        "UDP is `netecho bench --proto udp -c HOST 5201` (or a udp:// address)",
    ),
    on(
        &["bench"],
        &["-p", "--port"],
        "iperf3: the port",
        "the port goes with the address: `netecho bench -c HOST 5201` (HOST PORT) or \
         HOST:5201",
    ),
    on(
        &["bench"],
        &["-s", "--server", "--size"],
        "iperf3: be the server",
        "the server is `netecho serve --addr :5201`; bench's -s is the message size (`-s 1k`)",
    ),
    on(
        &["bench"],
        &["-w", "--window"],
        "iperf3: the socket buffer",
        "a socket buffer is `netecho bench --rcvbuf 256k --sndbuf 256k`; bench's -w is how \
         many requests each client keeps in flight (`-w 4`)",
    ),
    on(
        &["bench"],
        &["-n", "--bytes", "--count"],
        "iperf3: how many bytes",
        "bench counts requests of -s bytes each: `netecho bench -n 1000 -s 1k` sends 1000 \
         KiB (or time it: -t 10s)",
    ),
    on(
        &["bench"],
        &["-i", "--interval"],
        "iperf3: a report every so often",
        "a line per interval is `netecho bench --format ndjson --interval 1s`",
    ),
    on(
        &["bench"],
        &["-b", "--bitrate", "--rate"],
        "iperf3: the bitrate, M for Mbit/s",
        "iperf3's -b 10M is `netecho bench -b 10mbit` (--rate; also kbit, gbit, MB/s)",
    ),
    on(
        &["bench"],
        &["--bidir"],
        "iperf3: both directions at once",
        "`netecho bench` measures both ways at once: each request comes back as its reply; \
         leave --bidir out",
    ),
    on(
        &["bench"],
        &["-O", "--omit"],
        "iperf3: leave out the first seconds",
        "netecho bench leaves out nothing: a longer run (`-t 20s`) makes a slow start count \
         less",
    ),
    on(
        &["bench"],
        &["-V", "--verbose"],
        "iperf3: more detail",
        "more detail is `-v` (`-vv` for more); every column is `netecho bench --wide`",
    ),
    // ping's own letters.
    on(
        &["ping"],
        &["-w", "--deadline"],
        "ping: stop after this many seconds",
        "netecho ping stops after a count: `netecho ping -c 5 HOST` ends after about 5 s at \
         the default -i 1s (-c N with -i sets how long)",
    ),
    on(
        &["ping"],
        &["-t", "--ttl"],
        "ping: the TTL",
        "netecho ping sends with the system's default TTL; a udp or raw packet's TTL is \
         `netecho send --ttl N`",
    ),
    on(
        &["ping"],
        &["-M"],
        "ping: path MTU discovery",
        "netecho ping leaves path MTU discovery at the system's default; `-s SIZE` sets how \
         big each request is",
    ),
    on(
        &["ping"],
        &["-I", "--interface"],
        "ping: the interface or source address",
        "netecho ping goes the way the route says (`ip route get HOST` shows it); it takes no \
         interface",
    ),
    on(
        &["ping"],
        &["-f", "--flood"],
        "ping: flood, paced by the replies",
        "netecho ping does not flood: its shortest interval is `-i 1ms`; `netecho bench` loads \
         an echo server",
    ),
    on(
        &["ping"],
        &["-D"],
        "ping: a timestamp per line",
        "netecho ping prints no timestamps; `-q` keeps only the summary",
    ),
    on(
        &["ping"],
        &["-n", "--numeric"],
        "ping: numeric addresses",
        "netecho ping prints addresses as numbers already: leave -n out",
    ),
];

/// The row for `flag` (as typed, `-l` or `--listen`) typed to `command`: its own, else the
/// row for any subcommand.
fn habit(command: Option<&str>, flag: &str) -> Option<&'static Habit> {
    let has = |h: &&Habit| h.flags.contains(&flag);
    let own = |h: &&Habit| command.is_some_and(|c| h.on.contains(&c));
    let mut rows = HABITS.iter().filter(has);
    let first = rows.clone().find(own);
    first.or_else(|| rows.find(|h| h.on.is_empty()))
}

/// The flag a habit was typed as: openssl's one-dash long flags (`-connect`, `-servername`)
/// read by clap as a cluster of short ones, of which it names one letter.
fn typed_flag<'a>(command: Option<&str>, flag: &'a str, words: &[&'a str]) -> &'a str {
    let name = flag.split('=').next().unwrap_or(flag);
    let Some(letter) = name.strip_prefix('-').filter(|l| l.len() == 1) else {
        return name;
    };
    let long =
        |w: &&&str| w.len() > 2 && w.starts_with('-') && !w.starts_with("--") && w.contains(letter);
    let known = |w: &&&str| habit(command, w).is_some();
    words
        .iter()
        .find(|w| long(w) && known(w))
        .copied()
        .unwrap_or(name)
}

/// The advice for `flag` (as typed, `-l` or `--listen`) typed to `command` (the subcommand,
/// when there is one), if it is a habit netecho knows. `words` is the command line after the
/// program's name: the advice carries the host, port and protocol typed there.
pub(crate) fn advice(command: Option<&str>, flag: &str, words: &[&str]) -> Option<String> {
    let name = typed_flag(command, flag, words);
    let habit = habit(command, name)?;
    let here = here(command, name, habit, (words, None));
    Some(format!(
        "{name} is not a netecho flag here ({}): {here}",
        habit.there
    ))
}

/// A habit's netecho way, carrying what was typed where it can: the command line's `words`
/// and the value clap `refused` for the flag, if it did.
fn here(
    command: Option<&str>,
    name: &str,
    habit: &Habit,
    typed: (&[&str], Option<&str>),
) -> String {
    let (words, refused) = typed;
    let mut typed = Typed::read(command, words);
    if let Some(value) = refused.filter(|v| pastable(v)) {
        typed.values.push((name.to_string(), value.to_string()));
    }
    let carried = send_here(command, name, &typed).or_else(|| valued_here(command, name, &typed));
    carried
        .or_else(|| typed_here(command, name, &typed))
        .unwrap_or(habit.here.to_string())
}

/// The advice for a value refused for a flag of `command` that a tool it stands in for reads
/// another way (bench's `-w 256K`, iperf3's socket buffer): what was wrong, then that tool's
/// meaning and the netecho way.
fn value_advice(err: &clap::Error, command: Option<&str>, words: &[&str]) -> Option<String> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let long = text(err, ContextKind::InvalidArg)?.split(' ').next()?;
    let row = HABITS
        .iter()
        .find(|h| command.is_some_and(|c| h.on.contains(&c)) && h.flags.contains(&long))?;
    // Only the flag as that tool types it (iperf3's -w): netecho's own long name is netecho's.
    let typed = |f: &&&str| **f != long && words.iter().any(|w| w.split('=').next() == Some(**f));
    let name = row.flags.iter().find(typed).copied()?;
    let refused = text(err, ContextKind::InvalidValue);
    // A plain number (`-n 0`, `-n -3`) is bench's own flag given a wrong number, not
    // iperf3's habit.
    let number = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    if refused.is_some_and(|v| number(v.strip_prefix('-').unwrap_or(v))) {
        return None;
    }
    let path = format!("netecho {}", command.unwrap_or_default());
    let tool = row.there.split(':').next().unwrap_or(row.there);
    Some(format!(
        "{}; {name} here is not {tool}'s ({}): {}",
        what(err, &path),
        row.there,
        here(command, name, row, (words, refused))
    ))
}

/// The flags of nc, ncat and iperf3 that take a value (`-w 5`, `-q 1`): the word after one
/// is its value, never the host or the port.
const TAKES_VALUE: &str = "pwsicexMWtqP";

/// What the user typed around a habit's flag: the host, the port, whether they asked for
/// udp (`-u`) and to listen (`-l`), the program of `-e`, ping's `-w` seconds and the
/// message, so that the advice, pasted, does what they meant.
#[derive(Default)]
struct Typed {
    host: Option<String>,
    port: Option<String>,
    udp: bool,
    listen: bool,
    program: Option<String>,
    seconds: Option<String>,
    /// The message's words, each after a space: " hi", or "".
    said: String,
    /// The values of other flags (`-M 5`, `-servername NAME`), by the flag.
    values: Vec<(String, String)>,
    /// iperf3's `-s` (be the server, no value) typed to bench.
    server: bool,
    /// netecho's own long flags typed (`--timeout 2s`, `--hex`), with their values: a send
    /// line in advice keeps them.
    own: Vec<(String, Option<String>)>,
}

impl Typed {
    /// Reads `words`, the command line after the program's name and `command`.
    fn read(command: Option<&str>, words: &[&str]) -> Typed {
        let mut typed = Typed::default();
        let mut message = vec![];
        let mut words = words
            .iter()
            .copied()
            .skip_while(|w| Some(*w) == command)
            .peekable();
        while let Some(word) = words.next() {
            let value = match word.split_once('=') {
                Some((_, v)) if word.starts_with("--") => Some(v),
                _ => None,
            };
            match word.split('=').next().unwrap_or(word) {
                "--udp" => typed.udp = true,
                "--listen" => typed.listen = true,
                "--port" => typed.port = value.or_else(|| words.next()).map(Into::into),
                "--wait" => typed.seconds = value.or_else(|| words.next()).map(Into::into),
                "--hex-dump" => {
                    let file = value.or_else(|| words.next()).unwrap_or_default();
                    typed.values.push(("-x".into(), file.into()));
                }
                "-servername" | "-CAfile" => {
                    let value = words.next().unwrap_or_default();
                    typed.values.push((word.into(), value.into()));
                }
                // openssl's one-dash long flags that take no value.
                "-showcerts" | "-quiet" | "-tls1_2" | "-tls1_3" => {}
                "-connect" => {
                    if let Some(to) = words.next().filter(|w| !w.starts_with('-')) {
                        let (host, port) = crate::endpoint::socat_split(to);
                        (typed.host, typed.port) = (Some(host), Some(port));
                    }
                }
                long if long.starts_with("--") => typed.long_flag(command, long, value, &mut words),
                short if short.starts_with('-') && short.len() > 1 => {
                    typed.short_flags(command, short, &mut words)
                }
                port if port.parse::<u16>().is_ok_and(|p| p > 0) && typed.port.is_none() => {
                    typed.port = Some(port.into())
                }
                host if typed.host.is_none() => typed.host = Some(host.into()),
                said => message.push(said),
            }
        }
        typed.said = said(message);
        typed.pastable()
    }

    /// netecho's own long flag `long` (`value`: given after `=`), carried into advice with
    /// its value when netecho takes them.
    fn long_flag<'a>(
        &mut self,
        command: Option<&str>,
        long: &str,
        value: Option<&'a str>,
        words: &mut Peekable<impl Iterator<Item = &'a str>>,
    ) {
        // Its value is no host, port or message.
        let Some(arg) = own_flag(command, long) else {
            return;
        };
        let takes = arg.get_action().takes_values();
        let value = takes.then(|| value.or_else(|| words.next())).flatten();
        // Only a value netecho takes is carried: pasted, the advice runs.
        let carried = value.is_none_or(|v| pastable(v) && accepts(command, long, v));
        match (long, value) {
            ("--proto", Some("udp")) => self.udp = true,
            _ if !carried => {}
            _ => self.own.push((long.into(), value.map(Into::into))),
        }
    }

    /// A cluster of short flags (-lu, -lp 4000, -p4000): the last letter's value is next.
    fn short_flags<'a>(
        &mut self,
        command: Option<&str>,
        short: &'a str,
        words: &mut Peekable<impl Iterator<Item = &'a str>>,
    ) {
        let letters = short[1..].trim_end_matches(|c: char| c.is_ascii_digit());
        let attached = &short[1 + letters.len()..];
        self.udp |= letters.contains('u');
        self.listen |= letters.contains('l') && command != Some("bench");
        // iperf3's -b and -l take a value; nc's -b (broadcast) and -l do not.
        let bench = command == Some("bench") && letters.ends_with(['b', 'l']);
        let last = letters
            .chars()
            .last()
            .filter(|c| bench || TAKES_VALUE.contains(*c));
        let value = match (last, attached) {
            (None, _) => None,
            // A flag is no value: `bench -s -p 5201` is iperf3's -s, then -p.
            (Some(_), "") => words.next_if(|w| !w.starts_with('-')),
            (Some(_), attached) => Some(attached),
        };
        match (last, value) {
            (Some('s'), None) => self.server = command == Some("bench"),
            (Some('p'), Some(v)) => self.port = Some(v.into()),
            (Some('c'), Some(v)) if command == Some("bench") => self.host = Some(v.into()),
            (Some('e'), Some(v)) => self.program = Some(v.into()),
            (Some('w'), Some(v)) => self.seconds = Some(v.into()),
            (Some(c), Some(v)) => self.values.push((format!("-{c}"), v.into())),
            _ => {}
        }
    }

    /// Advice is pasted into a shell: only what reads as a port, a number, a host, a path or
    /// a program's name goes into it (the message's words were checked by [`said`]).
    fn pastable(mut self) -> Typed {
        let number = |n: &String| n.parse::<u16>().is_ok_and(|n| n > 0);
        self.port = self.port.filter(number);
        self.seconds = self.seconds.filter(number);
        self.host = self.host.filter(|h| pastable(h));
        self.program = self.program.filter(|p| pastable(p) && !p.contains(':'));
        self.values.retain(|(_, v)| pastable(v));
        self
    }

    /// The value typed for `flag` (`-M`), when it can go into advice.
    fn value(&self, flag: &str) -> Option<&str> {
        let value = self.values.iter().rev().find(|(f, _)| f == flag);
        value.map(|(_, v)| v.as_str())
    }

    /// The Unix socket's path typed (`-U /tmp/s`): the host word, when it is one.
    fn path(&self) -> Option<&str> {
        let path = |h: &&str| crate::endpoint::looks_unix(h) && !h.contains("://");
        self.host.as_deref().filter(path)
    }

    /// The address to listen on: `:PORT` on every address, or HOST:PORT.
    fn listen_addr(&self, default_port: &str) -> String {
        let port = self.port.as_deref().unwrap_or(default_port);
        match &self.host {
            Some(host) => crate::endpoint::join_port(host, port).unwrap_or(host.clone()),
            None => format!(":{port}"),
        }
    }

    /// `netecho serve` where they asked to listen, over udp if they said so, running the
    /// program of `-e` if they typed one (`nc -l -p 4000 -e PROG`, whole).
    fn serve(&self, udp: bool) -> String {
        let proto = if udp || self.udp { "--proto udp " } else { "" };
        let exec = self.program.as_ref().map(|p| format!(" --exec {p}"));
        // --exec listens on loopback unless --allow-remote-exec: `:PORT` would be refused.
        let addr = match (&exec, &self.host) {
            (Some(_), None) => format!("127.0.0.1:{}", self.port.as_deref().unwrap_or("PORT")),
            _ => self.listen_addr("PORT"),
        };
        format!(
            "netecho serve {proto}--addr {addr}{}",
            exec.unwrap_or_default()
        )
    }

    /// The host and port to talk to, as `send` takes them (HOST PORT, or one address).
    fn to(&self, host: &str, port: &str) -> String {
        match (&self.host, &self.port) {
            // A host with its own port (127.0.0.1:4000, [::1]:4000) stands alone.
            (Some(h), None) if crate::endpoint::join_port(h, "1").is_none() => h.clone(),
            (h, p) => format!(
                "{} {}",
                h.as_deref().unwrap_or(host),
                p.as_deref().unwrap_or(port)
            ),
        }
    }

    /// `netecho send` with `flags` ("--tls ", or "") to the address typed, over udp if they
    /// said so, with the message typed; `None` when no host was typed.
    fn send(&self, flags: &str) -> Option<String> {
        self.host.as_ref()?;
        let to = match self.udp {
            true => self.udp_url(),
            false => self.to("HOST", "PORT"),
        };
        Some(self.send_to(flags, &to))
    }

    /// `netecho send` with `flags`, then netecho's own flags typed that `flags` does not set
    /// again, to `to`, with the message typed.
    fn send_to(&self, flags: &str, to: &str) -> String {
        // Only send's own flags: those typed to another subcommand (serve's --exec) are not.
        let kept = |name: &str| send_flag(name) && !flags.split(' ').any(|f| f == name);
        let mut own = String::new();
        for (name, value) in self.own.iter().filter(|(name, _)| kept(name)) {
            own = match value {
                Some(value) => format!("{own}{name} {value} "),
                None => format!("{own}{name} "),
            };
        }
        format!("netecho send {flags}{own}{to}{}", self.said)
    }

    /// `--ttl N ` for the TTL typed with nc's `-M N`, or nothing.
    fn ttl(&self) -> String {
        let ttl = self.value("-M").filter(|v| v.parse::<u8>().is_ok());
        ttl.map(|v| format!("--ttl {v} ")).unwrap_or_default()
    }

    /// `netecho bench` at the server typed (iperf3's port 5201 when none was), over udp if
    /// they said so, with the iperf3 flags typed that bench reads too (-t, -b, -l, -P), each
    /// in bench's units, so that pasting it runs what they meant.
    fn bench(&self, udp: bool) -> String {
        let proto = if udp || self.udp { "--proto udp " } else { "" };
        let mut line = format!("netecho bench {proto}-c {}", self.to("HOST", "5201"));
        for flag in ["-t", "-b", "-l", "-P"] {
            if let Some(value) = self.value(flag).and_then(|v| bench_value(flag, v)) {
                line = format!("{line} {flag} {value}");
            }
        }
        line
    }

    /// The same as one udp:// address.
    fn udp_url(&self) -> String {
        let words = self.to("127.0.0.1", "4000");
        if words.contains("://") {
            return words;
        }
        let joined = words
            .split_once(' ')
            .and_then(|(h, p)| crate::endpoint::join_port(h, p));
        format!("udp://{}", joined.unwrap_or(words))
    }
}

/// iperf3's value for bench's `flag` as bench takes it: `-t 10` is `-t 10s`, `-b 10M` is
/// `-b 10mbit`; `None` for a value bench would refuse.
fn bench_value(flag: &str, value: &str) -> Option<String> {
    let seconds = value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| format!("{value}s"));
    let kept = |ok: bool| ok.then(|| value.to_string());
    match flag {
        "-t" => seconds.or_else(|| kept(crate::units::parse_duration(value).is_ok())),
        "-b" => iperf3_rate(value).or_else(|| kept(crate::cli::parse_rate(value).is_ok())),
        "-l" => kept(crate::units::parse_size(value).is_ok()),
        _ => kept(value.parse::<u32>().is_ok_and(|n| n > 0)),
    }
}

/// iperf3's bitrate (`10M`, bits per second with K, M or G) in netecho's words (`10mbit`).
fn iperf3_rate(value: &str) -> Option<String> {
    let (number, unit) = value.split_at(value.len().checked_sub(1)?);
    let unit = match unit {
        "K" | "k" => "kbit",
        "M" | "m" => "mbit",
        "G" | "g" => "gbit",
        _ => return None,
    };
    number.parse::<f64>().ok()?;
    Some(format!("{number}{unit}"))
}

/// A message's words as advice carries them, each after a space (" hi"), quoted where a
/// shell would expand them (`'a[1]'`, a glob); nothing when one of them is not `pastable`.
pub(crate) fn said<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut said = String::new();
    for word in words {
        if !pastable(word) {
            return String::new();
        }
        said = format!("{said} {}", crate::report::meta::shell_quote(word));
    }
    said
}

/// Whether `word` can go into advice pasted into a shell (a host or address: a name, IPv4,
/// IPv6 with brackets and a zone, a URL of netecho's; a path; a program; a message's
/// word): nothing a shell would read as more than one word or a command.
fn pastable(word: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".:-_%[]/@+,=".contains(c);
    !word.is_empty() && word.len() <= 255 && !word.starts_with('-') && word.chars().all(allowed)
}

/// The netecho way for the habits whose advice carries the value typed with the flag (`-M
/// 5`, bench's `-b 10M`, `-servername NAME`, ping's `-w 5`) or the broadcast address; `None`
/// for the others, and when nothing was typed.
fn valued_here(command: Option<&str>, name: &str, t: &Typed) -> Option<String> {
    let value = t.value(name);
    let whole = value.filter(|v| v.parse::<u16>().is_ok());
    let here = match (command, name) {
        (Some("ping"), "-t" | "--ttl") => format!(
            "netecho ping sends with the system's default TTL; a udp or raw packet's TTL is \
             `netecho send --ttl {}`",
            whole?
        ),
        (Some("ping"), "-w" | "--deadline") => {
            let host = t.host.as_deref()?;
            let n = t.seconds.as_deref().unwrap_or("5");
            format!(
                "netecho ping stops after a count: `netecho ping -c {n} {host}` ends after \
                 about {n} s at the default -i 1s (-c N with -i sets how long)"
            )
        }
        (Some("ping"), _) => return None,
        (Some("send") | None, "-b" | "--broadcast") => {
            let to = t.host.as_ref().filter(|h| h.contains(['.', ':']));
            let to = to.map(|_| t.udp_url())?;
            format!("a broadcast is `netecho send --broadcast {to}{}`", t.said)
        }
        (_, "-M" | "--ttl") => {
            let ttl = format!("--ttl {}", whole?);
            let send = match t.host {
                Some(_) => t.send_to(&format!("{ttl} "), &t.udp_url()),
                None => format!("netecho send {ttl}"),
            };
            format!("the TTL is `{send}` (udp and raw; to a group, IP_MULTICAST_TTL)")
        }
        (Some("bench"), "-i" | "--interval") => format!(
            "a line per interval is `netecho bench --format ndjson --interval {}s`",
            whole?
        ),
        (Some("bench"), "-w" | "--window") => {
            let size = value.filter(|v| crate::units::parse_size(v).is_ok())?;
            format!(
                "a socket buffer is `netecho bench --rcvbuf {size} --sndbuf {size}`; bench's -w \
                 is how many requests each client keeps in flight (`-w 4`)"
            )
        }
        (Some("bench"), "-n" | "--bytes") => {
            let bytes = crate::units::parse_size(value?).ok()?;
            format!(
                "bench counts requests of -s bytes each: {} bytes is `netecho bench -s 64k -n \
                 {}` (or time it: -t 10s)",
                value?,
                bytes.div_ceil(64 << 10).max(1)
            )
        }
        (Some("bench"), "-b" | "--bitrate") => {
            let v = value?;
            let rate = iperf3_rate(v)?;
            let bench = match t.host {
                Some(_) => t.bench(false),
                None => format!("netecho bench -b {rate}"),
            };
            format!("iperf3's -b {v} is `{bench}` (--rate; also MB/s)")
        }
        _ => return None,
    };
    Some(here)
}

/// The netecho way for the habits of a client, as a whole `netecho send` line with the
/// address, message and value typed (`-w 5`, `-x FILE`, `-servername NAME`, `--ssl`); `None`
/// for the others, and when no address was typed.
fn send_here(command: Option<&str>, name: &str, t: &Typed) -> Option<String> {
    let value = t.value(name);
    let here = match (command, name) {
        (Some("send") | None, "-M" | "--ttl")
            if !t.udp && t.host.as_ref().is_some_and(|h| !h.contains("://")) =>
        {
            format!(
                "netecho's --ttl is for udp and raw sends; a tcp connection keeps the system's \
                 default TTL: `{}`",
                t.send("")?
            )
        }
        (_, "-servername" | "-CAfile") => {
            let (what, flag) = match name {
                "-servername" => ("the name is", "--server-name"),
                _ => ("a CA to trust is", "--ca"),
            };
            let flags = format!("--tls {flag} {} ", value?);
            let send = t.send(&flags);
            let send = send.unwrap_or_else(|| format!("netecho send {}", flags.trim_end()));
            format!("{what} {flag}: `{send}`")
        }
        (Some("send") | None, "-w" | "--wait") => format!(
            "the wait for a reply is --timeout: `{}`",
            t.send(&format!("--timeout {}s ", t.seconds.as_deref()?))?
        ),
        (Some("send") | None, "-x" | "--hex-dump") => {
            let file = value.map(|f| format!(" 2>{f}")).unwrap_or_default();
            format!(
                "the hex dump is --hex, written to stderr: `{}{file}`",
                t.send("--hex ")?
            )
        }
        (Some("send") | None, "-c" | "--sh-exec") => {
            let cmd = value?;
            let send = t.send("")?;
            // A pipe is send's input only without a message: the message is left out.
            let send = send.strip_suffix(t.said.as_str()).unwrap_or(&send);
            format!(
                "send runs no command on its connection; it sends its input: `{cmd} | {send}` \
                 (a server running it for each client is `netecho serve --exec sh -c '{cmd}'`)"
            )
        }
        (Some("send") | None, "--ssl") => format!(
            "netecho's TLS is `--tls` (it sends no TLS unless asked, to show the sockets \
             underneath): `{}` (--pin the fingerprint serve printed, --ca FILE, or --insecure)",
            t.send("--tls ")?
        ),
        (Some("serve"), "--ssl") => format!(
            "netecho's TLS is --tls: `{}` (--cert FILE --key FILE, or one made at start)",
            t.serve(false).replacen("serve ", "serve --tls ", 1)
        ),
        (Some("send"), "-tls1_2") => format!(
            "TLS 1.2 is --tls-version 1.2: `{}`",
            t.send("--tls --tls-version 1.2 ")?
        ),
        (Some("send"), "-showcerts") => format!(
            "`-v` logs the version, the cipher and the certificate's subject: `{}`",
            t.send("--tls -v ")?
        ),
        (Some("send"), "-tls1_3" | "-quiet") => {
            let why = match name {
                "-quiet" => "send prints only the reply",
                _ => "TLS 1.3 is netecho's default",
            };
            format!("{why}, so leave {name} out: `{}`", t.send("--tls ")?)
        }
        _ => return None,
    };
    Some(here)
}

/// The netecho way for the habits whose advice carries what the user typed (the port, the
/// host, udp), typed to `command`; `None` for the others.
fn typed_here(command: Option<&str>, name: &str, t: &Typed) -> Option<String> {
    let here = match (command, name) {
        (_, "-l" | "--listen") => format!("netecho listens with `{}`", t.serve(false)),
        (_, "-u" | "--udp") if t.listen => format!("a UDP server is `{}`", t.serve(true)),
        (_, "-connect") => format!(
            "`netecho send --tls {}{}` (--pin the fingerprint serve printed, --ca FILE, or \
             --insecure)",
            t.to("HOST", "4000"),
            t.said
        ),
        (_, "-U" | "--unixsock") => format!(
            "a path is a Unix socket: `netecho send {}{}` (--proto unix-dgram or \
             unix-seqpacket for the other types)",
            t.path()?,
            t.said
        ),
        // Where to listen goes with it when they said (nc -l -p 4000 -e PROG); nc's -e to a
        // host it connects to has no netecho equivalent, so the program alone.
        (_, "-e" | "--exec")
            if t.program.is_some()
                && (t.listen || command == Some("serve") && t.port.is_some()) =>
        {
            format!("a program per client is `{}`", t.serve(false))
        }
        (_, "-e" | "--exec") => format!(
            "a program per client is `netecho serve --exec {}`",
            t.program.as_deref()?
        ),
        (Some("serve"), "-p" | "--port") => {
            format!(
                "a server's port goes with its address: `{}`",
                t.serve(false)
            )
        }
        (Some("serve"), "-u" | "--udp") => format!(
            "a UDP server is `{}` (or --addr udp://{})",
            t.serve(true),
            t.listen_addr("PORT")
        ),
        (Some("bench"), "-p" | "--port") if t.server && t.host.is_none() => format!(
            "iperf3's server (-s) is `netecho serve --addr :{}`; bench is the client: `netecho \
             bench -c HOST PORT`",
            t.port.as_deref().unwrap_or("5201")
        ),
        (Some("bench"), "-p" | "--port") => format!(
            "the port goes with the address: `{}` (HOST PORT) or {}",
            t.bench(false),
            t.to("HOST", "5201").replacen(' ', ":", 1)
        ),
        (Some("bench"), "-u" | "--udp") => {
            format!("UDP is `{}` (or a udp:// address)", t.bench(true))
        }
        (_, "-p" | "--port") => {
            let to = t.to("127.0.0.1", "4000");
            let one = to
                .split_once(' ')
                .and_then(|(h, p)| crate::endpoint::join_port(h, p));
            format!(
                "the port goes with the address: `{}` (HOST PORT) or {}; to listen, `{}`",
                t.send_to("", &to),
                one.unwrap_or(to.clone()),
                t.serve(false)
            )
        }
        (_, "-u" | "--udp") => format!(
            "UDP is `--proto udp`, or a udp:// address: `{}`",
            t.send_to(&t.ttl(), &t.udp_url())
        ),
        _ => return None,
    };
    Some(here)
}

/// `--help` or `--version` asked for, or nothing typed at all: clap's text is the answer.
pub(crate) struct Help {
    text: clap::Error,
    /// The help of `exec`, whose own failures are 255.
    pub exec: bool,
}

impl Help {
    /// Prints the text as clap prints it (not `clap::Error::exit`, which drops a failed
    /// write: a help whose reader left would end 0); a stdout that cannot take it fails as
    /// any command's output does. Its exit code: 0, or 2 for the help of a bare command.
    pub(crate) fn print(&self) -> anyhow::Result<std::process::ExitCode> {
        let printed = self.text.print();
        if !self.text.use_stderr() {
            printed.map_err(crate::error::stdout_write)?;
        }
        Ok(std::process::ExitCode::from(self.text.exit_code() as u8))
    }
}

/// The command line, parsed, or the help asked for. Every usage error, clap's or a
/// habit's, ends netecho with one line (wrapped on a terminal) and exit code 2 (exec: 255).
pub(crate) fn parse() -> Result<Cli, Help> {
    let raw: Vec<OsString> = std::env::args_os().collect();
    match Cli::parsed_from(&raw) {
        Ok(cli) => {
            if let Some(line) = misplaced(&cli, &raw) {
                crate::logging::error(&line);
                std::process::exit(2);
            }
            Ok(cli)
        }
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            let exec = command_path(&err, &raw) == "netecho exec";
            Err(Help { text: err, exec })
        }
        // What was typed is shown escaped: a newline or an escape sequence in an argument
        // stays on the one line.
        Err(err) => {
            crate::logging::error(&usage_line(&err, &raw));
            // exec exits with the remote program's status, and 255 for its own failures.
            match command_path(&err, &raw).as_str() {
                "netecho exec" => std::process::exit(crate::client::exec::FAILED.into()),
                _ => std::process::exit(2),
            }
        }
    }
}

/// The one rendering of a clap error: what was wrong, what clap suggests (a similar flag
/// or value, the possible values when the list is short, the usage when an argument is
/// missing), and the help of the subcommand it was typed to; or a habit's advice.
fn usage_line(err: &clap::Error, raw: &[OsString]) -> String {
    let path = command_path(err, raw);
    let words = words(raw);
    let command = path.strip_prefix("netecho ");
    let habit = match command {
        Some("exec") => exec_command(&words),
        Some("get") if err.kind() == ErrorKind::MissingRequiredArgument => name_in_address(&words),
        _ => None,
    };
    let explained = habit
        .or_else(|| explain(err, command, &words))
        .or_else(|| value_advice(err, command, &words));
    if let Some(line) = explained.or_else(|| s_client(err, &words)) {
        return line;
    }
    let mut parts = vec![what(err, &path)];
    parts.extend(hints(err));
    parts.extend(listen_word(err, &path));
    parts.extend(address_word(err, &words));
    parts.push(format!("see '{path} --help'"));
    parts.join("; ")
}

/// What clap found wrong, naming the subcommand (`path`, "netecho serve").
fn what(err: &clap::Error, path: &str) -> String {
    let arg = text(err, ContextKind::InvalidArg);
    let value = text(err, ContextKind::InvalidValue);
    // A flag by its name alone ("--proto", not "--proto <PROTO>"), a positional as <NAME>.
    let of = |arg: &str| {
        let name = arg.split(' ').next().filter(|_| arg.starts_with('-'));
        format!("'{path} {}'", name.unwrap_or(arg))
    };
    match (err.kind(), arg, value) {
        (ErrorKind::UnknownArgument, Some(arg), _) => {
            format!("unexpected argument '{arg}' for '{path}'")
        }
        (ErrorKind::InvalidValue, Some(arg), Some("")) => format!("{} needs a value", of(arg)),
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some(arg), Some(value)) => {
            match err.source() {
                Some(why) => format!(
                    "invalid value '{value}' for {}: {}",
                    of(arg),
                    reason(why, value)
                ),
                None => format!("invalid value '{value}' for {}", of(arg)),
            }
        }
        (ErrorKind::InvalidSubcommand, ..) => match text(err, ContextKind::InvalidSubcommand) {
            Some(sub) => format!("'{sub}' is not a subcommand of '{path}'"),
            None => clap_says(err),
        },
        (ErrorKind::MissingRequiredArgument, ..) => match err.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(args)) => {
                format!("'{path}' needs {}", args.join(" and "))
            }
            _ => clap_says(err),
        },
        _ => clap_says(err),
    }
}

/// clap's own sentence for an error, its lines joined: the part before the usage.
fn clap_says(err: &clap::Error) -> String {
    let text = err.to_string();
    let head = text.split("\n\n").next().unwrap_or(&text);
    let words: Vec<&str> = head
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = words.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

/// Why a value was refused, in netecho's words where the standard library's are terse.
fn reason(why: &(dyn std::error::Error + 'static), value: &str) -> String {
    use std::num::IntErrorKind;
    let negative = value
        .strip_prefix('-')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match why
        .downcast_ref::<std::num::ParseIntError>()
        .map(|e| e.kind())
    {
        Some(IntErrorKind::PosOverflow | IntErrorKind::NegOverflow) => "too large".into(),
        Some(IntErrorKind::Empty) => "empty: give a number".into(),
        Some(_) if negative => {
            "a negative number: this takes a whole number without a minus sign".into()
        }
        Some(_) => "not a whole number".into(),
        None => {
            let why = why.to_string().lines().collect::<Vec<_>>().join(" ");
            range(&why).unwrap_or(why)
        }
    }
}

/// clap's refusal of a number outside its range ("0 is not in 1..18446744073709551615") in
/// words: "at least 1", "from 1 to 1024"; `None` for any other reason.
fn range(why: &str) -> Option<String> {
    let (value, bounds) = why.split_once(" is not in ")?;
    let (low, high) = bounds.split_once("..")?;
    let (high, inclusive) = match high.strip_prefix('=') {
        Some(high) => (high, true),
        None => (high, false),
    };
    let low: i128 = low.parse().ok()?;
    let high: i128 = high.parse::<i128>().ok()? - i128::from(!inclusive);
    // The type's own largest value is no limit anyone chose: only the low end is.
    let unbounded = [u32::MAX.into(), i64::MAX.into(), u64::MAX.into()];
    let small = value.parse::<i128>().is_ok_and(|v| v < low);
    if small && unbounded.iter().any(|max: &i128| high >= *max - 1) {
        return Some(format!(
            "{value} is too small: give a number at least {low}"
        ));
    }
    Some(format!(
        "{value} is out of range: give a number from {low} to {high}"
    ))
}

/// openssl's `s_client` typed where the subcommand goes: the `send --tls` it stands for.
fn s_client(err: &clap::Error, words: &[&str]) -> Option<String> {
    let sub = text(err, ContextKind::InvalidSubcommand).filter(|s| *s == "s_client")?;
    let line = advice(Some("send"), "-connect", words)?;
    Some(format!("'{sub}' is not a subcommand of 'netecho'; {line}"))
}

/// A word after `serve`, which takes none: where to listen is --addr (`serve 4000`, as
/// `nc -l 4000` or `python3 -m http.server 4000` take it); a socat address in netecho's form.
fn listen_word(err: &clap::Error, path: &str) -> Option<String> {
    let word = text(err, ContextKind::InvalidArg)?;
    let serve = path.ends_with(" serve") && err.kind() == ErrorKind::UnknownArgument;
    if !serve || word.starts_with('-') {
        return None;
    }
    Some(crate::endpoint::socat_address(word, "").unwrap_or_else(|| {
        format!("serve listens where --addr says: `netecho serve --addr {word}`")
    }))
}

/// An address where the subcommand goes (`netecho 127.0.0.1 4000`, `netecho
/// TCP-LISTEN:4000`): the send or serve it stands for.
fn address_word(err: &clap::Error, words: &[&str]) -> Option<String> {
    let mut word = text(err, ContextKind::InvalidSubcommand)?;
    // socat's stdio address first (`socat - TCP:HOST:PORT`): the address is the next word.
    if word == "-" {
        word = words.iter().skip_while(|w| **w != "-").nth(1)?;
    }
    let after = words.iter().skip_while(|w| **w != word).skip(1).copied();
    if let Some(socat) = crate::endpoint::socat_address(word, &said(after)) {
        return Some(socat);
    }
    let next = words.iter().skip_while(|w| **w != word).nth(1);
    let port = next.filter(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let addr = match port {
        Some(port) => crate::endpoint::join_port(word, port)?,
        None => word.to_string(),
    };
    let address =
        crate::endpoint::Endpoint::parse(&addr, None).is_ok() && addr.contains([':', '.']);
    let shown = port.map_or(word.to_string(), |p| format!("{word} {p}"));
    address.then(|| {
        format!(
            "an address goes after a subcommand: `netecho send {shown} hello` talks to it, \
             `netecho serve --addr {addr}` listens there"
        )
    })
}

/// The words typed after `command` that are none of its flags nor their values: ADDR and
/// what follows it (with a flag of another tool among them, as clap met it).
fn positionals<'a>(command: &str, words: &[&'a str]) -> Vec<&'a str> {
    let Some(at) = words.iter().position(|w| *w == command) else {
        return Vec::new();
    };
    let mut rest = words[at + 1..].iter().copied();
    let mut positional = Vec::new();
    while let Some(word) = rest.next() {
        let name = word.split('=').next().unwrap_or(word);
        match own_flag(Some(command), name) {
            Some(arg) if !word.contains('=') && arg.get_action().takes_values() => {
                rest.next();
            }
            Some(_) => {}
            None => positional.push(word),
        }
    }
    positional
}

/// ssh's habit, `netecho exec HOST COMMAND ARGS`, as clap met it: ADDR, its port when typed
/// as nc takes it, and the command.
fn exec_command(words: &[&str]) -> Option<String> {
    let positional = positionals("exec", words);
    let (&addr, after) = positional.split_first()?;
    ssh_command(addr, after)
}

/// get with its NAME inside ADDR, as scp (`HOST:PORT:NAME`), curl and tftp URLs
/// (`tcp://HOST:PORT/NAME`) take it: the command with NAME a word of its own.
fn name_in_address(words: &[&str]) -> Option<String> {
    let positional = positionals("get", words);
    let [typed] = positional[..] else {
        return None;
    };
    let (addr, name) = match typed.split_once("://") {
        Some((scheme, rest)) if !scheme.starts_with("unix") => {
            let (host, name) = rest.split_once('/')?;
            (format!("{scheme}://{host}"), name)
        }
        Some(_) => return None,
        None => {
            let (host, name) = typed.rsplit_once(':')?;
            let port = host.rsplit_once(':')?.1;
            let digits = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
            (digits(port) && !digits(name)).then_some((host.to_string(), name))?
        }
    };
    let name = name.trim_start_matches('/');
    if name.is_empty() {
        return None;
    }
    // The command as typed, its flags kept, with ADDR and NAME apart.
    let at = words.iter().position(|w| *w == "get")?;
    let fixed: Vec<String> = words[at..]
        .iter()
        .flat_map(|w| match *w == typed {
            true => vec![addr.clone(), name.to_string()],
            false => vec![w.to_string()],
        })
        .map(|w: String| crate::report::meta::shell_quote(&w))
        .collect();
    Some(format!(
        "'netecho get' takes NAME as a word of its own, after ADDR: `netecho {}`",
        fixed.join(" ")
    ))
}

/// `exec ADDR [PORT] COMMAND ARGS` (`after` is what follows ADDR): exec takes no command,
/// since the server runs the one program it was started with (fixed there, so that no
/// client runs a program of its own choosing). `None` when no command word follows.
pub(crate) fn ssh_command(addr: &str, after: &[&str]) -> Option<String> {
    let (addr, after) = match after.split_first() {
        Some((port, rest)) => match crate::endpoint::join_port(addr, port) {
            Some(joined) => (joined, rest),
            None => (addr.to_string(), after),
        },
        None => return None,
    };
    after.first().filter(|w| !w.starts_with('-'))?;
    // Quoted as a shell needs it: a command's words are the user's own, flags and all.
    let quoted: Vec<String> = after
        .iter()
        .map(|w| crate::report::meta::shell_quote(w))
        .collect();
    let program = format!(" {}", quoted.join(" "));
    Some(format!(
        "exec takes no command: it runs the program the server was started with (`netecho \
         serve --exec PROGRAM ARGS`), its stdin to that program and its output back; start \
         the server with `netecho serve --exec{program}`, then run `netecho exec {addr}`"
    ))
}

/// The command line after the program's name, the words that are text.
fn words(raw: &[OsString]) -> Vec<&str> {
    raw.iter().skip(1).filter_map(|w| w.to_str()).collect()
}

/// The most possible values a usage error lists; a longer list is left to the help.
const SHORT_LIST: usize = 12;

/// What clap suggests: a similar flag, value or subcommand, its tips, the possible values
/// when there are few, and the usage when an argument is missing.
fn hints(err: &clap::Error) -> Vec<String> {
    let mut hints = Vec::new();
    let similar = [
        (ContextKind::SuggestedArg, "flag"),
        (ContextKind::SuggestedValue, "value"),
        (ContextKind::SuggestedSubcommand, "subcommand"),
    ];
    for (kind, what) in similar {
        let names = texts(err, kind);
        if !names.is_empty() {
            hints.push(format!("a similar {what} exists: '{}'", names.join("', '")));
        }
    }
    if let Some(ContextValue::StyledStrs(tips)) = err.get(ContextKind::Suggested) {
        hints.extend(tips.iter().map(|t| t.to_string()));
    }
    let values = texts(err, ContextKind::ValidValue);
    if !values.is_empty() && values.len() <= SHORT_LIST {
        hints.push(format!("possible values: {}", values.join(", ")));
    }
    if err.kind() == ErrorKind::MissingRequiredArgument
        && let Some(usage) = usage(err)
    {
        hints.push(format!("usage: {usage}"));
    }
    hints
}

/// A string in the error's context.
fn text(err: &clap::Error, kind: ContextKind) -> Option<&str> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s),
        _ => None,
    }
}

/// The strings in the error's context, one or many.
fn texts(err: &clap::Error, kind: ContextKind) -> Vec<String> {
    match err.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(s)) => s.clone(),
        _ => Vec::new(),
    }
}

/// The usage line clap would print ("netecho get <ADDR> <NAME>"), without its label.
fn usage(err: &clap::Error) -> Option<String> {
    let Some(ContextValue::StyledStr(usage)) = err.get(ContextKind::Usage) else {
        return None;
    };
    let usage = usage.to_string();
    let line = usage.trim().lines().next()?.trim();
    Some(
        line.strip_prefix("Usage:")
            .unwrap_or(line)
            .trim()
            .to_string(),
    )
}

/// The command the error was typed to, "netecho" or "netecho SUBCOMMAND": from clap's
/// usage where it gives one, else the first word of the command line that is not a flag
/// (netecho's own flags, -v -q -4 -6, take no values).
fn command_path(err: &clap::Error, raw: &[OsString]) -> String {
    if let Some(usage) = usage(err) {
        let words = usage
            .split(' ')
            .take_while(|w| !w.starts_with(['-', '[', '<']));
        return words.collect::<Vec<_>>().join(" ");
    }
    let cli = Cli::command();
    let word = raw
        .iter()
        .skip(1)
        .filter_map(|w| w.to_str())
        .find(|w| !w.starts_with('-'));
    match word.and_then(|w| cli.find_subcommand(w)) {
        Some(sub) => format!("netecho {}", sub.get_name()),
        None => "netecho".into(),
    }
}

/// A flag typed after send's ADDR, where every word is the message: one of send's own flags
/// anywhere in it, or a habit as its first word (`send HOST -p 4000`). `raw` is the command
/// line as typed: after a `--` of the user's, every word is the message as it stands.
fn misplaced(cli: &Cli, raw: &[OsString]) -> Option<String> {
    let Command::Send(args) = &cli.command else {
        return None;
    };
    let dashes = |words: &mut dyn Iterator<Item = &OsString>| words.filter(|w| *w == "--").count();
    if dashes(&mut raw.iter()) > dashes(&mut args.message.iter()) {
        return None;
    }
    if let Some(line) = nc_quit(&words(raw), &args.addr) {
        return Some(line);
    }
    // socat's stdio address first (`socat - TCP:HOST:PORT`): send reads its input anyway.
    if args.addr == "-" {
        let mut rest = args.message.iter().filter_map(|w| w.to_str());
        if let Some(line) = rest
            .next()
            .and_then(|w| crate::endpoint::socat_address(w, &said(rest)))
        {
            return Some(line);
        }
    }
    let message = args.message.iter().take_while(|w| *w != "--");
    for (i, word) in message.filter_map(|w| w.to_str()).enumerate() {
        let name = word.split('=').next().unwrap_or(word);
        if send_flag(name) {
            return Some(format!(
                "{name} after ADDR would be sent as part of the message: put flags before ADDR \
                 (`netecho send {name} ... ADDR MESSAGE`); a message with a word that starts \
                 with a dash goes after `--` (`netecho send ADDR -- {word}`)"
            ));
        }
        let habit = (i == 0 && word.starts_with('-'))
            .then(|| advice(Some("send"), word, &words(raw)))
            .flatten();
        if let Some(line) = habit {
            return Some(format!(
                "{line}; a message that starts with a dash goes after `--` (`netecho send \
                 ADDR -- {word}`)"
            ));
        }
    }
    None
}

/// nc's `-q SECS` (quit that long after the input ends) typed to send, where -q is quiet and
/// takes no value: SECS would be read as the address.
fn nc_quit(words: &[&str], addr: &str) -> Option<String> {
    let at = words.windows(2).position(|w| w == ["-q", addr])?;
    let secs = addr.bytes().all(|b| b.is_ascii_digit()).then_some(addr)?;
    let rest: Vec<&str> = words
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at && *i != at + 1)
        .map(|(_, w)| *w)
        .chain((words.len() <= 3).then_some("HOST PORT"))
        .collect();
    Some(format!(
        "-q {secs} is nc's wait after the input ends; netecho's -q is quiet and takes no \
         value, and send ends once the reply to its input is in: `netecho {}`",
        rest.join(" ")
    ))
}

/// Whether `name` (`--timeout`, `-i`) is a flag `netecho send` takes.
fn send_flag(name: &str) -> bool {
    own_flag(Some("send"), name).is_some()
}

/// Whether netecho's `command` takes `value` for its flag `long` (`--timeout 5` is refused:
/// no unit). What else it would miss (the address) is no matter here.
fn accepts(command: Option<&str>, long: &str, value: &str) -> bool {
    let flag = format!("{long}={value}");
    let words = ["netecho"]
        .into_iter()
        .chain(command)
        .chain([flag.as_str()]);
    match Cli::command().try_get_matches_from(words) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            ErrorKind::InvalidValue | ErrorKind::ValueValidation
        ),
    }
}

/// The flag `name` (`--timeout`, `-i`) of netecho's `command` (or of netecho, with none);
/// `None` when it is no flag there.
fn own_flag(command: Option<&str>, name: &str) -> Option<clap::Arg> {
    if !name.starts_with('-') || name == "-" || name == "--" {
        return None;
    }
    let mut cli = Cli::command();
    cli.build();
    let sub = match command {
        Some(command) => cli.find_subcommand(command)?,
        None => &cli,
    };
    let mut args = sub.get_arguments();
    let arg = args.find(|arg| {
        let long = name.strip_prefix("--").is_some_and(|n| {
            arg.get_long() == Some(n) || arg.get_all_aliases().is_some_and(|a| a.contains(&n))
        });
        let short = name.strip_prefix('-').and_then(|n| {
            let mut chars = n.chars();
            chars.next().filter(|_| chars.next().is_none())
        });
        long || short.is_some_and(|c| arg.get_short() == Some(c))
    })?;
    Some(arg.clone())
}

/// The advice for a clap error about an unknown flag, if that flag is a known habit.
fn explain(err: &clap::Error, command: Option<&str>, words: &[&str]) -> Option<String> {
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    match err.get(ContextKind::InvalidArg)? {
        ContextValue::String(flag) => advice(command, flag, words),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_habit_gets_one_line_naming_the_netecho_way() {
        let line = advice(None, "-l", &[]).unwrap();
        assert_eq!(
            line,
            "-l is not a netecho flag here (nc, ncat: listen): netecho listens with \
             `netecho serve --addr :PORT`"
        );
        assert!(
            advice(None, "--port=80", &[])
                .unwrap()
                .contains("HOST PORT")
        );
        assert!(!advice(None, "-u", &[]).unwrap().contains('\n'));
        assert_eq!(advice(None, "--frobnicate", &[]), None);
    }

    #[test]
    fn words_a_shell_would_run_never_reach_the_advice() {
        for words in [
            &["-l", "-p", "80 --exec sh"][..],
            &["-p", "80", "x;touch /tmp/PWNED"],
            &["-p", "$(id)", "`id`"],
            &["-p", "80", "--exec"],
        ] {
            let typed = Typed::read(Some("serve"), words);
            for flag in ["-l", "-p", "-u"] {
                let here = typed_here(Some("serve"), flag, &typed).unwrap_or_default();
                let there = typed_here(Some("send"), flag, &typed).unwrap_or_default();
                for advice in [here, there] {
                    let bad = ["--exec", "touch", "$(id)", "`id`", "x;"];
                    assert!(
                        bad.iter().all(|b| !advice.contains(b)),
                        "{words:?}: {advice}"
                    );
                }
            }
        }
    }

    #[test]
    fn with_nothing_typed_the_advice_is_the_table_s() {
        let none = Typed::default();
        for habit in HABITS {
            let command = habit.on.first().copied();
            for flag in habit.flags {
                assert_eq!(
                    valued_here(command, flag, &none),
                    None,
                    "{command:?} {flag}"
                );
                if let Some(here) = typed_here(command, flag, &none) {
                    assert_eq!(here, habit.here, "{command:?} {flag}");
                }
            }
        }
    }

    fn misplaced_in(args: &[&str]) -> Option<String> {
        let raw: Vec<OsString> = args.iter().map(OsString::from).collect();
        misplaced(&Cli::try_parse_from(&raw).unwrap(), &raw)
    }

    #[test]
    fn a_flag_after_send_s_addr_is_refused_not_sent() {
        let line = misplaced_in(&["netecho", "send", "127.0.0.1:1", "hi", "--timeout", "1s"]);
        assert!(line.unwrap().contains("put flags before ADDR"));
        let line = misplaced_in(&["netecho", "send", "127.0.0.1", "-p", "4000"]).unwrap();
        assert!(
            line.contains("HOST PORT") && line.contains("`--`"),
            "{line}"
        );
        assert!(misplaced_in(&["netecho", "send", "h", "x", "--hex"]).is_some());
        assert!(misplaced_in(&["netecho", "send", "h", "x", "-i"]).is_some());
        assert!(misplaced_in(&["netecho", "send", "h", "x", "--framing=line"]).is_some());
        for fine in [
            &["netecho", "send", "h", "--", "-p", "x"][..],
            &["netecho", "send", "h", "hello", "-x", "world"],
            &["netecho", "send", "h", "a", "--", "--timeout"],
            &["netecho", "send", "--timeout", "1s", "h", "-", "-1"],
            &["netecho", "serve", "--addr", "127.0.0.1:0"],
        ] {
            assert_eq!(misplaced_in(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn a_range_refused_is_said_in_words() {
        let at_least = range("0 is not in 1..18446744073709551615");
        assert_eq!(
            at_least.unwrap(),
            "0 is too small: give a number at least 1"
        );
        let within = range("2000 is not in 1..=1024").unwrap();
        assert_eq!(within, "2000 is out of range: give a number from 1 to 1024");
        assert_eq!(range("not a number"), None);
    }

    #[test]
    fn an_unknown_habit_flag_is_explained_from_clap_s_error() {
        let err = Cli::try_parse_from(["netecho", "send", "-l", "127.0.0.1:1"]).unwrap_err();
        assert!(
            explain(&err, Some("send"), &[])
                .unwrap()
                .contains("netecho serve --addr :PORT")
        );
        let err = Cli::try_parse_from(["netecho", "send", "--port", "80", "x"]).unwrap_err();
        assert!(
            explain(&err, Some("send"), &[])
                .unwrap()
                .contains("HOST PORT")
        );
    }
}
