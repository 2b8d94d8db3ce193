//! `serve --exec` run by root on a socket every local user can reach: a Unix socket (stream
//! or datagram), TCP, UDP and QUIC from this host let in the server's own user only, and a
//! socket file is made 0600.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use common::{Server, can_switch_user, skip};
use socket2::{Domain, Socket, Type};

fn as_nobody_runs(url: &str) -> std::process::Output {
    common::run(&mut common::as_nobody(&["exec", url]), b"")
}

/// nobody's `netecho exec URL` ends without the program's output (waiting a second: a
/// refused datagram gets no answer).
fn nobody_is_not_served(url: &str, what: &str) {
    let out = common::run(
        &mut common::as_nobody(&["exec", "--timeout", "1s", url]),
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("uid=0"),
        "{what}: nobody ran id as root: {stdout}"
    );
    assert!(!out.status.success(), "{what}: nobody's exec succeeded");
}

/// The server's own user (root) runs the program at `url`.
fn root_is_served(url: &str, what: &str) {
    let own = common::netecho(&["exec", url], b"");
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("uid=0"),
        "{what}: the server's own user was not served: {}",
        String::from_utf8_lossy(&own.stderr)
    );
}

/// Where a server listens, where a client on this host sends, and a flag the address needs:
/// loopback of each family, and wildcard servers (dual-stack, IPv4), which ask sock_diag by
/// the address the client's datagrams were sent to.
const LOCAL_SERVERS: [(&str, &str, Option<&str>); 4] = [
    ("127.0.0.1:0", "127.0.0.1", None),
    ("[::1]:0", "[::1]", None),
    ("[::]:0", "127.0.0.1", Some("--allow-remote-exec")),
    ("0.0.0.0:0", "127.0.0.1", Some("--allow-remote-exec")),
];

/// `serve --proto PROTO --addr LISTEN [EXTRA] --exec id`, with no rules.
fn id_server(proto: &str, listen: &str, extra: Option<&str>) -> Server {
    let mut args = vec!["--proto", proto, "--addr", listen];
    args.extend(extra);
    args.extend(["--exec", "id"]);
    Server::start(&args)
}

/// What --exec's default rule says when it refuses nobody (uid 65534) for the server's root:
/// one sentence on every transport, and over IP it judges clients from this host.
fn refused_by_default(over_ip: bool) -> String {
    let whence = if over_ip { "from this host " } else { "" };
    format!(
        "refused by --exec's rule: {whence}only this server's user (uid 0) may run the \
         program; serve --allow uid:65534 admits uid 65534"
    )
}

fn root_only(test: &str) -> bool {
    let ok = can_switch_user();
    if !ok {
        skip(
            test,
            "root and setpriv to serve as root and connect as nobody",
            common::Lacks::Provided,
        );
    }
    ok
}

#[test]
fn exec_on_an_abstract_name_refuses_other_users() {
    if !root_only("exec_on_an_abstract_name_refuses_other_users") {
        return;
    }
    for proto in ["unix", "unix-seqpacket"] {
        let name = common::abstract_name(&format!("exec-uid-{proto}"));
        let server = Server::start(&["--proto", proto, "--addr", &name, "--exec", "id"]);
        let out = as_nobody_runs(&server.url());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("uid=0"), "nobody ran id as root: {stdout}");
        server.wait_log(&refused_by_default(false));
    }
}

#[test]
fn exec_on_a_socket_file_makes_it_0600() {
    if !root_only("exec_on_a_socket_file_makes_it_0600") {
        return;
    }
    let dir = common::tempdir();
    // The directory lets anyone in: only the socket file's own mode keeps them out.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("exec.sock");
    let path = path.to_str().unwrap();
    let server = Server::start(&["--proto", "unix", "--addr", path, "--exec", "id"]);
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket file mode {mode:o}");
    let out = as_nobody_runs(&server.url());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("uid=0"), "nobody ran id as root: {stdout}");
}

/// Over UDP from this host, as over TCP, the user owning the sender's socket (sock_diag)
/// must be the server's: nobody's datagram is ignored and logged, root's runs the program.
#[test]
fn exec_over_udp_loopback_admits_only_the_servers_user() {
    if !root_only("exec_over_udp_loopback_admits_only_the_servers_user") {
        return;
    }
    for (listen, connect, extra) in LOCAL_SERVERS {
        let server = id_server("udp", listen, extra);
        assert!(!server.stderr().contains("every local user"), "{listen}");
        // What sock_diag cannot close is said once: a sender gone before the lookup.
        server.wait_log("--exec over udp: a sender's user is looked up after");
        let url = format!("udp://{connect}:{}", server.port());
        nobody_is_not_served(&url, listen);
        server.wait_log(&format!("(uid 65534): {}", refused_by_default(true)));
        root_is_served(&url, listen);
    }
}

/// Over TCP from this host, the user owning the client's socket (sock_diag) must be the
/// server's: nobody is refused with a line on each side, root runs the program.
fn tcp_exec_admits_only_the_servers_user(listen: &str, connect: &str, extra: &[&str]) {
    let mut args = vec!["--proto", "tcp", "--addr", listen];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--exec", "id"]);
    let server = Server::start(&args);
    let url = format!("tcp://{connect}:{}", server.port());
    let out = as_nobody_runs(&url);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!stdout.contains("uid=0"), "nobody ran id as root: {stdout}");
    assert!(!out.status.success(), "{connect}: {stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("uid 0") && stderr.lines().count() == 1,
        "{connect}: the client's message: {stderr}"
    );
    let log = server.wait_log(&format!("(uid 65534): {}", refused_by_default(true)));
    assert_eq!(log.matches("refused").count(), 1, "{log}");
    assert!(
        !log.contains("is looked up after"),
        "a connection's owner is told: {log}"
    );
    root_is_served(&url, connect);
}

/// A connection from this host is looked up once (one sock_diag query): its owner is read
/// by --exec's rule and by its user's share of the connections alike.
#[test]
fn a_local_tcp_exec_connection_is_looked_up_once() {
    let test = "a_local_tcp_exec_connection_is_looked_up_once";
    let server = Server::start(&["--proto", "tcp", "--addr", "127.0.0.1:0", "--exec", "id"]);
    let dir = common::tempdir();
    let log = dir.path().join("trace");
    let log = log.to_str().unwrap();
    let options = ["-e", "trace=socket", "-e", "signal=none"];
    let Some(mut strace) = common::strace::attach_logging(test, server.pid(), log, &options) else {
        return;
    };
    root_is_served(&server.url(), "tcp");
    let trace = common::strace::stop_with(server, &mut strace, log);
    let lookups = trace.lines().filter(|l| l.contains("NETLINK_SOCK_DIAG"));
    assert_eq!(lookups.count(), 1, "{trace}");
}

#[test]
fn exec_over_tcp_loopback_admits_only_the_servers_user() {
    if !root_only("exec_over_tcp_loopback_admits_only_the_servers_user") {
        return;
    }
    tcp_exec_admits_only_the_servers_user("127.0.0.1:0", "127.0.0.1", &[]);
    tcp_exec_admits_only_the_servers_user("[::1]:0", "[::1]", &[]);
    // A dual-stack socket sees an IPv4 client as ::ffff:127.0.0.1.
    tcp_exec_admits_only_the_servers_user("[::]:0", "127.0.0.1", &["--allow-remote-exec"]);
}

#[test]
fn exec_over_tcp_admits_another_user_named_by_allow_uid() {
    if !root_only("exec_over_tcp_admits_another_user_named_by_allow_uid") {
        return;
    }
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--allow",
        "uid:65534",
        "--exec",
        "id",
    ]);
    let out = as_nobody_runs(&server.url());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The program runs as the server's user, for the client the rule names.
    assert!(
        stdout.contains("uid=0"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The rule adds a user, as the refusal's advice says: the server's own stays.
    let own = common::netecho(&["exec", "--timeout", "5s", &server.url()], b"");
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("uid=0"),
        "root was refused"
    );
    // Unless a --deny names it.
    let args = "--proto tcp --addr 127.0.0.1:0 --allow uid:65534 --deny uid:0 --exec id";
    let denied = Server::start(&args.split(' ').collect::<Vec<_>>());
    let own = common::netecho(&["exec", "--timeout", "5s", &denied.url()], b"");
    assert!(!own.status.success(), "root was served");
    denied.wait_log("(uid 0): refused by --deny uid:0");
}

/// A `--deny` given alone stands beside --exec's default, never instead of it: another
/// local user is still refused, over tcp and on a Unix socket, and the server's own served.
#[test]
fn a_deny_alone_keeps_the_servers_user_only_default() {
    if !root_only("a_deny_alone_keeps_the_servers_user_only_default") {
        return;
    }
    // An abstract name: a socket file of --exec's is 0600, which keeps nobody out anyway.
    let name = common::abstract_name("exec-deny-alone");
    for addr in ["127.0.0.1:0", name.as_str()] {
        let server = Server::start(&["--addr", addr, "--deny", "uid:12345", "--exec", "id"]);
        let out = as_nobody_runs(&server.url());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("uid=0"),
            "{addr}: nobody ran id as root: {stdout}"
        );
        root_is_served(&server.url(), addr);
    }
}

/// `netecho send --proto quic ADDR hello` to an --exec server, as nobody or as this user:
/// what came back (the program's output, or the server's refusal), as text.
fn quic_send(server: &Server, addr: &str, as_nobody: bool) -> String {
    let pin = server.pin();
    let args = ["send", "--proto", "quic", "--pin", &pin, addr, "hello"];
    let out = match as_nobody {
        true => common::run(&mut common::as_nobody(&args), b""),
        false => common::netecho(&args, b""),
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    format!("{stdout}{stderr}")
}

/// Over QUIC from this host, as over UDP (QUIC runs over it), the user owning the client's
/// UDP socket (sock_diag) must be the server's: nobody is refused at the connection, with
/// the reason on both sides, before the program could run; root runs the program.
#[test]
fn exec_over_quic_from_this_host_admits_only_the_servers_user() {
    if !root_only("exec_over_quic_from_this_host_admits_only_the_servers_user") {
        return;
    }
    for (listen, connect, extra) in LOCAL_SERVERS {
        let server = id_server("quic", listen, extra);
        let log = server.wait_log("may connect, told by the kernel (sock_diag)");
        assert!(!log.contains("every local user"), "{listen}: {log}");
        let addr = format!("{connect}:{}", server.port());
        let refused = quic_send(&server, &addr, true);
        assert!(
            !refused.contains("uid=0"),
            "{listen}: nobody ran id as root: {refused}"
        );
        assert!(
            refused.contains("refused by --exec's rule") && refused.contains("uid 0"),
            "{listen}: the client's message: {refused}"
        );
        let log = server.wait_log(&format!("(uid 65534): {}", refused_by_default(true)));
        assert!(!log.contains("ran id"), "{listen}: {log}");
        let own = quic_send(&server, &addr, false);
        assert!(
            own.contains("uid=0"),
            "{listen}: root was not served: {own}"
        );
    }
}

#[test]
fn exec_over_quic_admits_another_user_named_by_allow_uid() {
    if !root_only("exec_over_quic_admits_another_user_named_by_allow_uid") {
        return;
    }
    let args = ["--proto", "quic", "--addr", "127.0.0.1:0"];
    let server = Server::start(&[&args[..], &["--allow", "uid:65534", "--exec", "id"]].concat());
    let addr = format!("127.0.0.1:{}", server.port());
    // The program runs as the server's user, for the client the rule names; the rule adds
    // a user, so the server's own is served too.
    let admitted = quic_send(&server, &addr, true);
    assert!(admitted.contains("uid=0"), "{admitted}");
    let own = quic_send(&server, &addr, false);
    assert!(own.contains("uid=0"), "{own}");
}

/// Over unix-dgram at an abstract name each datagram carries the uid and gid of its sender
/// (SCM_CREDENTIALS, which the server asks for): nobody's request is ignored and logged,
/// root's runs the program.
#[test]
fn exec_over_unix_dgram_admits_only_the_servers_user() {
    if !root_only("exec_over_unix_dgram_admits_only_the_servers_user") {
        return;
    }
    let name = common::abstract_name("exec-dgram-uid");
    let server = Server::start(&["--proto", "unix-dgram", "--addr", &name, "--exec", "id"]);
    let log = server.wait_log("may send, told by the kernel (SCM_CREDENTIALS)");
    assert!(!log.contains("every local user"), "{log}");
    let url = server.url();
    nobody_is_not_served(&url, &name);
    server.wait_log(&format!(
        "(uid 65534 gid 65534): {}",
        refused_by_default(false)
    ));
    root_is_served(&url, &name);
}

#[test]
fn exec_over_unix_dgram_admits_another_user_named_by_allow_uid() {
    if !root_only("exec_over_unix_dgram_admits_another_user_named_by_allow_uid") {
        return;
    }
    let name = common::abstract_name("exec-dgram-allow");
    let server = Server::start(&[
        "--proto",
        "unix-dgram",
        "--addr",
        &name,
        "--allow",
        "uid:65534",
        "--exec",
        "id",
    ]);
    let url = server.url();
    let out = common::run(
        &mut common::as_nobody(&["exec", "--timeout", "5s", &url]),
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("uid=0"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The rule adds a user: the server's own is served too.
    let own = common::netecho(&["exec", "--timeout", "5s", &url], b"");
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("uid=0"),
        "root was refused"
    );
}

#[test]
fn exec_over_udp_answers_a_source_off_this_host_no_more_than_it_sent() {
    let test = "exec_over_udp_answers_a_source_off_this_host_no_more_than_it_sent";
    let Some(pair) = common::netns::Pair::new("ex", test) else {
        return;
    };
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &pair.server, common::bin(), "serve"]);
    cmd.args([
        "--proto",
        "udp",
        "--addr",
        &format!("{}:0", common::netns::Pair::SERVER_V4),
        "--allow-remote-exec",
    ]);
    cmd.args(["--exec", "head", "-c", "10"]);
    let server = Server::start_with(&mut cmd);
    let to = format!("{}:{}", common::netns::Pair::SERVER_V4, server.port());
    let sock = pair.client_udp();
    let mut buf = [0u8; 2048];
    // 100 bytes in: ten bytes of output and the exit status fit in fewer, and come back.
    sock.send_to(&[b'x'; 100], &to).unwrap();
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    let n = sock.recv(&mut buf).expect("the answer to a larger request");
    assert!(
        n <= 100 && buf[..n].windows(10).any(|w| w == [b'x'; 10]),
        "{n}"
    );
    // 8 bytes in: the answer would be larger, and this source could be forged.
    sock.send_to(b"abcdefgh", &to).unwrap();
    server.wait_log("not sent");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    assert!(
        sock.recv(&mut buf).is_err(),
        "an answer larger than the request"
    );
}

#[test]
fn exec_over_udp_tells_a_source_off_this_host_to_use_tcp_when_the_answer_is_larger() {
    let test = "exec_over_udp_tells_a_source_off_this_host_to_use_tcp_when_the_answer_is_larger";
    let Some(pair) = common::netns::Pair::new("ey", test) else {
        return;
    };
    let server = Server::start_with(&mut pair.server_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--addr",
        &format!("{}:0", common::netns::Pair::SERVER_V4),
        "--allow-remote-exec",
        "--exec",
        "seq",
        "1000",
    ]));
    let to = format!("udp://{}:{}", common::netns::Pair::SERVER_V4, server.port());
    // 64 bytes in, four kilobytes out: the answer is not sent, a short end frame is.
    let out = common::run(
        &mut pair.client_cmd(&["exec", "--timeout", "5s", &to]),
        &[b'x'; 64],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("use tcp"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");
    server.wait_log("not sent");
}

/// A udp exec server (given `rules`) whose program sleeps, and `count` requests sent to it
/// from 127.0.0.1 by this user: a source holds eight at most, so from the ninth on this user
/// is told busy. The clients' sockets stay open: the server asks the kernel whose they are.
fn sleeping_over_udp(count: usize, rules: &[&str]) -> (Server, Vec<std::net::UdpSocket>) {
    let mut args = vec!["--proto", "udp", "--addr", "127.0.0.1:0"];
    args.extend_from_slice(rules);
    args.extend_from_slice(&["--exec", "sleep", "30"]);
    let server = Server::start(&args);
    let clients: Vec<std::net::UdpSocket> = (0..count)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for client in &clients {
        client.send_to(b"x", &server.addr).unwrap();
    }
    (server, clients)
}

/// One source may not take every request thread of a datagram server: its ninth request at
/// once is turned away as busy. On this host a source is a user, the owner of the sender's
/// socket (as a connection's is), not 127.0.0.1, which every local user sends from: root
/// holding its eight locks nobody out, from the same address.
#[test]
fn one_local_user_holds_at_most_eight_datagram_requests_and_locks_no_other_out() {
    if !root_only("one_local_user_holds_at_most_eight_datagram_requests_and_locks_no_other_out") {
        return;
    }
    let (server, _clients) = sleeping_over_udp(9, &["--allow", "uid:65534"]);
    let busy_line = "busy: too many requests from your user (uid 0) on this host at once";
    server.wait_log(busy_line);
    let nobody = common::nobody_socket(Type::DGRAM);
    nobody
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let to: SocketAddr = server.addr.parse().unwrap();
    nobody.send_to(b"x", &to.into()).unwrap();
    common::eventually("nobody's program running", || {
        let log = server.stderr();
        let busy = log.lines().filter(|l| l.contains("busy:")).count();
        assert_eq!(busy, 1, "{log}");
        (std::process::Command::new("pgrep")
            .args(["-c", "-P", &server.pid().to_string(), "sleep"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "9")
            .unwrap_or(false))
        .then_some(())
    });
}

/// A request turned away as busy hears the busy line no larger than itself: the whole line,
/// "busy" alone, and for an empty request nothing (no end frame is that short), which the
/// client's advice names when no reply comes.
#[test]
fn a_busy_line_over_udp_fits_the_request_and_an_empty_request_hears_nothing() {
    let (server, _clients) = sleeping_over_udp(8, &[]);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    let mut buf = [0u8; 2048];
    let mut answer = |request: &[u8]| {
        client.send_to(request, &server.addr).unwrap();
        let n = client
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no busy line ({e}):\n{}", server.stderr()));
        assert!(n <= request.len(), "{n} bytes to {}", request.len());
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let me = nix::unistd::geteuid();
    let whole = format!("busy: too many requests from your user (uid {me}) on this host at once");
    assert!(answer(&[b'x'; 100]).ends_with(&whole), "the whole line");
    assert!(answer(&[b'x'; 20]).ends_with("busy"), "\"busy\" alone");
    // Requests are answered in the order they came: had the empty one been answered, its
    // answer would come before the next request's.
    client.send_to(b"", &server.addr).unwrap();
    assert!(
        answer(&[b'x'; 100]).ends_with(&whole),
        "an empty request answered"
    );
    let out = common::netecho(&["exec", "--timeout", "1s", &server.url()], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("an empty request always is"), "{stderr}");
}

/// The warning that a udp sender's user is looked up late comes from the rules in force:
/// --exec's default (this host's clients must be the server's user) stands beside a --deny
/// or an --allow of addresses, so the lookup is made and the warning said.
#[test]
fn exec_over_udp_with_address_rules_alone_warns_of_the_late_lookup() {
    for rule in [["--deny", "10.0.0.0/8"], ["--allow", "127.0.0.1"]] {
        let mut args = vec!["--proto", "udp", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(&rule);
        args.extend_from_slice(&["--exec", "id"]);
        let server = Server::start(&args);
        server.wait_log("--exec over udp: a sender's user is looked up after its datagrams came");
    }
}

/// Over UDP, sockets of several users may hold one port at once: on one address (both with
/// SO_REUSEADDR), or on two addresses of this host (IP_PKTINFO sends from either). Which of
/// them sent a datagram cannot be told, so nobody's datagram from a port a root socket
/// shares is refused as from an unknown user, and the program never runs.
#[test]
fn exec_over_udp_refuses_a_port_another_user_shares() {
    if !root_only("exec_over_udp_refuses_a_port_another_user_shares") {
        return;
    }
    let dir = common::tempdir();
    let proof = dir.path().join("proof");
    let proof_arg = proof.to_str().unwrap();
    let args = "--proto udp --addr 127.0.0.1:0 --exec tee -a".split(' ');
    let server = Server::start(&args.chain([proof_arg]).collect::<Vec<_>>());
    let to: SocketAddr = server.addr.parse().unwrap();
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    // nobody first on 127.0.0.1, and root's socket joins it there.
    let nobody = common::nobody_socket(Type::DGRAM);
    nobody.set_reuse_address(true).unwrap();
    nobody.bind(&loopback(0).into()).unwrap();
    let port = nobody.local_addr().unwrap().as_socket().unwrap().port();
    let root = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    root.set_reuse_address(true).unwrap();
    root.bind(&loopback(port).into()).unwrap();
    nobody
        .send_to(b"written by uid 65534\n", &to.into())
        .unwrap();
    server.wait_log("is shared by sockets of several users");
    // Root's socket first, and nobody's beside it on another address.
    let root = std::net::UdpSocket::bind(loopback(0)).unwrap();
    let port = root.local_addr().unwrap().port();
    let nobody = common::nobody_socket(Type::DGRAM);
    nobody
        .bind(&SocketAddr::from(([127, 0, 0, 2], port)).into())
        .unwrap();
    send_from_loopback(&nobody, to, b"written by uid 65534 beside\n");
    server.wait_log_count("is shared by sockets of several users", 2);
    let log = server.stderr();
    assert!(
        !log.contains("ran tee"),
        "nobody's datagram ran the program:\n{log}"
    );
    assert!(!proof.exists(), "the program wrote {}", proof.display());
}

/// The server's own socket holds its port: a sender from that port on another of this
/// host's addresses, its socket closed at once, would leave the server's as the one owner
/// the lookup finds. So a sender from the server's port is refused, whoever holds it.
#[test]
fn exec_over_udp_refuses_a_sender_from_the_servers_own_port() {
    if !root_only("exec_over_udp_refuses_a_sender_from_the_servers_own_port") {
        return;
    }
    let dir = common::tempdir();
    let proof = dir.path().join("proof");
    let args = "--proto udp --addr 127.0.0.1:0 --exec tee -a".split(' ');
    let server = Server::start(&args.chain([proof.to_str().unwrap()]).collect::<Vec<_>>());
    let to: SocketAddr = server.addr.parse().unwrap();
    let beside = std::net::UdpSocket::bind(("127.0.0.2", to.port())).unwrap();
    beside.send_to(b"from the server's port\n", to).unwrap();
    let log = server.wait_log("the server's own");
    assert!(!log.contains("ran tee"), "{log}");
    assert!(!proof.exists(), "the program wrote {}", proof.display());
}

/// Descriptors a sender passes beside its datagram (SCM_RIGHTS) to a unix-dgram --exec
/// server, which reads credentials with recvmsg, are closed at once: they never pile up to
/// the server's limit, nor reach the programs it runs.
#[test]
fn descriptors_passed_to_a_unix_dgram_exec_server_are_closed() {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    use std::os::fd::AsRawFd;
    let name = common::abstract_name("exec-dgram-rights");
    let server = Server::start(&["--proto", "unix-dgram", "--addr", &name, "--exec", "true"]);
    server.wait_log("SCM_CREDENTIALS");
    let before = common::open_fds(server.pid());
    let sock = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
    let to = UnixAddr::new_abstract(name.trim_start_matches('@').as_bytes()).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let fds = [null.as_raw_fd(); 10];
    for _ in 0..20 {
        let iov = [std::io::IoSlice::new(b"x")];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&to)).unwrap();
    }
    // The server has read them all once a request sent after them is answered.
    let out = common::netecho(&["exec", "--timeout", "5s", &server.url()], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = common::open_fds(server.pid());
    assert!(
        after < before + 20,
        "{before} descriptors before, {after} after 200 passed"
    );
}

/// Sends `data` to `to` from 127.0.0.1, whatever address `sock` is bound to (IP_PKTINFO).
fn send_from_loopback(sock: &Socket, to: SocketAddr, data: &[u8]) {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn, sendmsg};
    use std::os::fd::AsRawFd;
    let info = libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let SocketAddr::V4(to) = to else {
        panic!("{to} is not IPv4")
    };
    let iov = [std::io::IoSlice::new(data)];
    let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
    let to = SockaddrIn::from(to);
    sendmsg(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), Some(&to)).unwrap();
}
