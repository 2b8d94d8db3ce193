//! A local user who can change a directory on a server's socket path (here: a symlink that
//! names one of two directories) redirects it while the server clears a stale socket file
//! or removes its own at exit: netecho removes only a socket file in the directory it
//! looked in, never a file the path names after the swap.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, bin, tempdir};

/// Points `link` at `target` in one step (a new symlink renamed over the old), as a user
/// swapping directories does.
fn point(link: &Path, target: &str) {
    let tmp = link.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).unwrap();
    fs::rename(&tmp, link).unwrap();
}

/// `DIR/A`, `DIR/B` and `DIR/link` naming `A`.
fn two_directories(dir: &Path) -> std::path::PathBuf {
    fs::create_dir(dir.join("A")).unwrap();
    fs::create_dir(dir.join("B")).unwrap();
    let link = dir.join("link");
    point(&link, "A");
    link
}

#[test]
fn a_server_removes_its_own_socket_file_even_after_its_directory_is_redirected() {
    let dir = tempdir();
    let link = two_directories(dir.path());
    let path = link.join("x.sock");
    let server = Server::start(&["--addr", path.to_str().unwrap()]);
    assert!(dir.path().join("A/x.sock").exists());
    // Another server's socket in B, then the path is made to lead there.
    let other = UnixListener::bind(dir.path().join("B/x.sock")).unwrap();
    point(&link, "B");
    let (status, _, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(
        dir.path().join("B/x.sock").exists(),
        "the server removed another server's socket file"
    );
    assert!(
        !dir.path().join("A/x.sock").exists(),
        "the server left its own socket file in the directory it bound in"
    );
    drop(other);
}

#[test]
fn a_socket_file_replaced_while_the_server_runs_is_left_alone() {
    let dir = tempdir();
    let path = dir.path().join("x.sock");
    let server = Server::start(&["--addr", path.to_str().unwrap()]);
    fs::remove_file(&path).unwrap();
    let replacement = UnixListener::bind(&path).unwrap();
    let (status, _, stderr) = server.stop("TERM");
    assert!(status.success(), "{stderr}");
    assert!(
        path.exists(),
        "the server removed a socket file it did not make"
    );
    drop(replacement);
}

/// Starts `netecho serve --addr PATH`, waits for its listening line or its exit, and ends it.
fn serve_once(path: &Path) {
    let mut child = Command::new(bin())
        .args(["-q", "serve", "--addr", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = common::first_line(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    first.expect("serve neither listened nor exited");
}

#[test]
fn a_directory_swapped_while_stale_sockets_are_cleared_never_costs_a_file() {
    let dir = tempdir();
    let link = two_directories(dir.path());
    let victim = dir.path().join("B/x.sock");
    fs::write(&victim, "precious\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, link) = (stop.clone(), link.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                point(&link, "A");
                point(&link, "B");
            }
        })
    };
    let stale = dir.path().join("A/x.sock");
    for _ in 0..200 {
        if !stale.exists() {
            drop(UnixListener::bind(&stale).unwrap());
        }
        serve_once(&link.join("x.sock"));
        if !victim.exists() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert_eq!(
        fs::read_to_string(&victim).ok().as_deref(),
        Some("precious\n"),
        "serve removed a regular file through a swapped directory"
    );
}

/// As nobody: binds a unix-dgram socket at `client`, replaces its socket file by a symlink
/// to `victim`, and sends `ready=1` to `server` from it (the kernel still names the sender
/// `client`).
fn planted_request(client: &Path, victim: &Path, server: &Path) -> std::process::Output {
    let script = "import os, socket, sys\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.bind(sys.argv[1]); os.unlink(sys.argv[1]); os.symlink(sys.argv[2], sys.argv[1])\n\
                  s.sendto(b'ready=1', sys.argv[3])\n";
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        // The system python3: a per-user one (pyenv under /root) is not nobody's to run.
        .args(["/usr/bin/python3", "-c", script])
        .args([client, victim, server])
        .output()
        .expect("run python3 as nobody")
}

/// For a test run as root with setpriv and python3 (`None`, the skip said, without them):
/// DIR (0755) with root's unix-dgram socket at DIR/ro/victim.sock, which nobody may not
/// reach (DIR/ro is 0700), and nobody's shared directory DIR/sh (0777).
fn roots_victim(test: &str) -> Option<(tempfile::TempDir, UnixDatagram)> {
    if !common::can_switch_user() {
        common::skip(test, "root and setpriv", common::Lacks::Provided);
        return None;
    }
    if !common::have("python3", test) {
        return None;
    }
    let dir = tempdir();
    let mode = |path: &Path, mode| fs::set_permissions(path, fs::Permissions::from_mode(mode));
    mode(dir.path(), 0o755).unwrap();
    fs::create_dir(dir.path().join("ro")).unwrap();
    mode(&dir.path().join("ro"), 0o700).unwrap();
    let victim = UnixDatagram::bind(dir.path().join("ro/victim.sock")).unwrap();
    victim.set_nonblocking(true).unwrap();
    fs::create_dir(dir.path().join("sh")).unwrap();
    mode(&dir.path().join("sh"), 0o777).unwrap();
    Some((dir, victim))
}

#[test]
fn a_unix_dgram_reply_never_follows_a_symlink_planted_at_the_senders_path() {
    let test = "a_unix_dgram_reply_never_follows_a_symlink_planted_at_the_senders_path";
    let Some((dir, victim)) = roots_victim(test) else {
        return;
    };
    let victim_path = dir.path().join("ro/victim.sock");
    let shared = dir.path().join("sh");
    let (path, server) = open_dgram_server(&shared.join("dg.sock"));
    let out = planted_request(&shared.join("nob.sock"), &victim_path, &path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A client of root's at an honest path: its reply comes after any to the planted one.
    let honest = UnixDatagram::bind(dir.path().join("honest.sock")).unwrap();
    honest
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    honest.send_to(b"hello", &path).unwrap();
    let mut buf = [0u8; 64];
    let n = honest.recv(&mut buf).expect("the honest client's reply");
    assert_eq!(&buf[..n], b"HELLO");
    let got = victim.recv(&mut buf).ok();
    drop(server);
    assert_eq!(
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()),
        None,
        "the server's reply followed the symlink into root's socket"
    );
}

#[test]
fn exec_on_a_socket_file_says_the_users_allow_names_cannot_open_it() {
    let dir = tempdir();
    let path = dir.path().join("x.sock");
    let server = Server::start(&[
        "--proto",
        "unix-dgram",
        "--addr",
        path.to_str().unwrap(),
        "--allow",
        "uid:65534",
        "--exec",
        "/bin/cat",
    ]);
    let (_, _, stderr) = server.stop("TERM");
    assert!(
        stderr.contains("socket file is made 0600") && stderr.contains("chmod 0666"),
        "{stderr}"
    );
}

/// As nobody, in `cwd`, in a network namespace of its own when `own_netns`: see
/// [`request_as`].
fn nobody_request(own_netns: bool, cwd: &Path, client: &str, server: &str) -> std::process::Output {
    request_as(65534, own_netns, cwd, client, server)
}

/// As `uid` (and the group of that number), in `cwd`, in a network namespace of its own when `own_netns`: binds a
/// unix-dgram socket at `client` (a path, its directory made first, or an @abstract name)
/// and sends `ready=1` to `server` (the same); prints the reply that came within 5 s, if any.
fn request_as(
    uid: u32,
    own_netns: bool,
    cwd: &Path,
    client: &str,
    server: &str,
) -> std::process::Output {
    let script = "import os, socket, sys\n\
                  name = lambda a: '\\0' + a[1:] if a.startswith('@') else a\n\
                  if not sys.argv[1].startswith('@'):\n\
                  \x20   os.makedirs(os.path.dirname(sys.argv[1]) or '.', exist_ok=True)\n\
                  \x20   if os.path.exists(sys.argv[1]): os.unlink(sys.argv[1])\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.bind(name(sys.argv[1])); s.settimeout(5)\n\
                  s.sendto(b'ready=1', name(sys.argv[2]))\n\
                  try:\n    print(s.recv(64).decode())\n\
                  except socket.timeout:\n    pass\n";
    let mut cmd = Command::new(if own_netns { "unshare" } else { "env" });
    if own_netns {
        cmd.arg("-n");
    }
    cmd.args([
        "setpriv",
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
    ])
    .args(["--clear-groups", "--"])
    .args(["/usr/bin/python3", "-c", script, client, server])
    .current_dir(cwd)
    .output()
    .expect("run python3 as nobody")
}

/// A unix-dgram server of root's at `path`, its socket file writable by every user.
fn open_dgram_server(path: &Path) -> (std::path::PathBuf, Server) {
    let server = Server::start(&["--proto", "unix-dgram", "--addr", path.to_str().unwrap()]);
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
    (path.to_path_buf(), server)
}

/// Asserts that a python3 client (`who`) printed the server's reply to its `ready=1`.
fn assert_answered(out: &std::process::Output, who: &str) {
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "READY=1",
        "{who}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A request of nobody's, given the model and the server's address.
type Request<'a> = &'a dyn Fn(&str, &str) -> std::process::Output;

/// For each of `models`: starts a server (`serve` gives it and the address it answers at),
/// sends nobody's `astray` request, whose reply would land in `victim`, and checks that
/// neither `victim` nor nobody heard anything (`what` says what went wrong if one did);
/// then nobody's `honest` request, which must be answered. A request is given the model
/// and the server's address.
fn only_the_honest_request_is_answered(
    models: &[&str],
    victim: &UnixDatagram,
    serve: impl Fn(&str) -> (Server, String),
    requests: [Request; 2],
    what: &str,
) {
    let [astray, honest] = requests;
    for &model in models {
        let (server, addr) = serve(model);
        let out = astray(model, &addr);
        let mut buf = [0u8; 64];
        let got = victim.recv(&mut buf).ok();
        assert_eq!(
            got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()),
            None,
            "{model}: {what}"
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{model}");
        assert_answered(&honest(model, &addr), model);
        drop(server);
    }
}

/// A sender's path is resolved by the server, from the server's directory: a relative path
/// a user bound in a deeper directory names, from there, another user's socket. The reply
/// goes only to a socket file its sender owns, in every model.
#[test]
fn a_unix_dgram_reply_goes_only_to_a_socket_file_its_sender_owns() {
    let test = "a_unix_dgram_reply_goes_only_to_a_socket_file_its_sender_owns";
    let Some((dir, victim)) = roots_victim(test) else {
        return;
    };
    let serve = |model: &str| {
        let name = common::abstract_name(model);
        let server = Server::start_with(
            Command::new(bin())
                .current_dir(dir.path())
                .arg("serve")
                .args(["--proto", "unix-dgram", "--model", model])
                .args(["--addr", &name]),
        );
        (server, name)
    };
    // nobody's directory: from there, ro/victim.sock is a path of its own.
    let own = dir.path().join("sh");
    let astray = |_: &str, name: &str| nobody_request(false, &own, "ro/victim.sock", name);
    // nobody's own socket, at a path that names it from the server's directory too.
    let honest = |model: &str, name: &str| {
        nobody_request(false, dir.path(), &format!("sh/{model}/me.sock"), name)
    };
    only_the_honest_request_is_answered(
        &["event", "threads", "iterative", "uring"],
        &victim,
        serve,
        [&astray, &honest],
        "the reply to nobody's relative path reached root's socket",
    );
}

/// An abstract name is looked up in the server's network namespace: a user who binds, in a
/// namespace of its own, the name of a socket of root's here gets no reply, which would
/// land in root's socket; at its own name here it is answered.
#[test]
fn a_unix_dgram_reply_to_an_abstract_name_stays_in_its_senders_network() {
    let test = "a_unix_dgram_reply_to_an_abstract_name_stays_in_its_senders_network";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    if !common::can_unshare(test) {
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = common::abstract_name("abstract-victim");
    let at = std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
    let victim = UnixDatagram::bind_addr(&at).unwrap();
    victim.set_nonblocking(true).unwrap();
    let path = dir.path().join("sh/abs.sock");
    let addr = path.to_str().unwrap();
    let serve = |model: &str| {
        let server = Server::start(&["--proto", "unix-dgram", "--model", model, "--addr", addr]);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        (server, addr.to_string())
    };
    let astray = |_: &str, addr: &str| nobody_request(true, dir.path(), &name, addr);
    let honest = |model: &str, addr: &str| {
        let own = common::abstract_name(&format!("abstract-own-{model}"));
        nobody_request(false, dir.path(), &own, addr)
    };
    only_the_honest_request_is_answered(
        &["event", "threads", "uring"],
        &victim,
        serve,
        [&astray, &honest],
        "the reply to nobody's abstract name in its own network reached root's",
    );
}

/// A server run by one user answers another user's client at an abstract name (netecho's
/// own client autobinds one), though it may not look at that client's process to see its
/// network namespace.
#[test]
fn a_servers_user_answers_another_users_client_at_an_abstract_name() {
    let test = "a_servers_user_answers_another_users_client_at_an_abstract_name";
    if !common::can_switch_user() || !common::have("python3", test) {
        return;
    }
    let name = common::abstract_name("other-user");
    let server = Server::start_with(&mut common::as_nobody(&[
        "serve",
        "--proto",
        "unix-dgram",
        "--addr",
        &name,
    ]));
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.bind(''); s.settimeout(10)\n\
                  s.sendto(b'ready=1', '\\0' + sys.argv[1][1:])\n\
                  print(s.recv(64).decode())\n";
    let out = Command::new("setpriv")
        .args(["--reuid=daemon", "--regid=daemon", "--clear-groups", "--"])
        .args(["/usr/bin/python3", "-c", script, &name])
        .output()
        .expect("run python3 as daemon");
    assert_answered(&out, "daemon's client");
    drop(server);
}

/// As nobody: binds a unix-dgram socket at `path` and sends `count` datagrams from it to
/// `server` while another process keeps swapping that path between the socket file and a
/// symlink to `victim`; prints how many replies came back.
fn swapping_sender(path: &Path, victim: &Path, server: &str, count: usize) -> std::process::Output {
    let script = "import os, socket, sys, signal\n\
                  path, victim, server, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.bind(path); s.setblocking(False)\n\
                  os.symlink(victim, path + '.l')\n\
                  child = os.fork()\n\
                  if child == 0:\n\
                  \x20   while True:\n\
                  \x20       os.rename(path, path + '.s'); os.rename(path + '.l', path)\n\
                  \x20       os.rename(path, path + '.l'); os.rename(path + '.s', path)\n\
                  got = 0\n\
                  for _ in range(count):\n\
                  \x20   try: s.sendto(b'x', '\\0' + server[1:])\n\
                  \x20   except BlockingIOError: pass\n\
                  \x20   try:\n\
                  \x20       while True: s.recv(64); got += 1\n\
                  \x20   except BlockingIOError: pass\n\
                  os.kill(child, signal.SIGKILL); os.waitpid(child, 0)\n\
                  print(got)\n";
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args(["/usr/bin/python3", "-c", script])
        .args([path, victim])
        .args([server, &count.to_string()])
        .output()
        .expect("run python3 as nobody")
}

/// The socket file whose owner the server checked is the one its reply goes through: a
/// sender that swaps its path for a symlink to root's socket between the datagram's
/// arrival and the reply never has the reply follow it (each of many tries is a race).
#[test]
fn a_unix_dgram_reply_goes_to_the_socket_file_checked_not_one_swapped_in_after() {
    let test = "a_unix_dgram_reply_goes_to_the_socket_file_checked_not_one_swapped_in_after";
    let Some((dir, victim)) = roots_victim(test) else {
        return;
    };
    let victim_path = dir.path().join("ro/victim.sock");
    for model in ["threads", "iterative"] {
        let name = common::abstract_name(&format!("swap-{model}"));
        let server = Server::start(&["--proto", "unix-dgram", "--model", model, "--addr", &name]);
        let path = dir.path().join(format!("sh/{model}.sock"));
        let out = swapping_sender(&path, &victim_path, &name, 30_000);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut buf = [0u8; 64];
        let got = victim.recv(&mut buf).ok();
        drop(server);
        assert_eq!(
            got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()),
            None,
            "{model}: a reply followed the symlink swapped in after the owner check"
        );
    }
}

/// In a user namespace every user not mapped into it shows as the overflow uid (65534), on
/// its credentials and its socket files alike: a server there answers none of them at a
/// path, or one unmapped user (here daemon) could have it write into another's (nobody's)
/// socket; a mapped user (root) is answered.
#[test]
fn a_server_in_a_user_namespace_answers_no_unmapped_user_at_a_path() {
    use std::os::linux::net::SocketAddrExt;
    let test = "a_server_in_a_user_namespace_answers_no_unmapped_user_at_a_path";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    if !Command::new("unshare")
        .args(["-U", "-r", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        common::skip(
            test,
            "unshare -U (user namespaces)",
            common::Lacks::Provided,
        );
        return;
    }
    // nobody's socket, writable by all, at ro/nobody.sock from the server's directory.
    let victim_path = dir.path().join("ro/nobody.sock");
    let victim = UnixDatagram::bind(&victim_path).unwrap();
    victim.set_nonblocking(true).unwrap();
    std::os::unix::fs::chown(&victim_path, Some(65534), Some(65534)).unwrap();
    fs::set_permissions(&victim_path, fs::Permissions::from_mode(0o666)).unwrap();
    let name = common::abstract_name("userns");
    let server = Server::start_with(
        Command::new("unshare")
            .args(["-U", "-r", bin(), "serve"])
            .args(["--proto", "unix-dgram", "--addr", &name])
            .current_dir(dir.path()),
    );
    // daemon (uid 1) binds ro/nobody.sock in its own directory: from the server's, nobody's socket.
    let out = request_as(1, false, &dir.path().join("sh"), "ro/nobody.sock", &name);
    let mut buf = [0u8; 64];
    let got = victim.recv(&mut buf).ok();
    assert_eq!(
        got.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned()),
        None,
        "the reply to daemon's path reached nobody's socket"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let honest = UnixDatagram::bind(dir.path().join("root.sock")).unwrap();
    honest
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let at = std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
    honest.send_to_addr(b"hello", &at).unwrap();
    let n = honest.recv(&mut buf).expect("root's reply");
    assert_eq!(&buf[..n], b"HELLO");
    drop(server);
}

/// As `uid` (its group the same number), from a socket made and bound at the abstract `name` in a user and network
/// namespace of its own (where that name is free): sends `ready=1` to the socket file
/// `server` and prints the reply that came within 5 s, if any. `passed`: the socket is
/// handed (SCM_RIGHTS) to the parent, in the server's namespaces, which sends from it; else
/// the namespaced child sends itself.
fn namespaced_request(uid: u32, passed: bool, name: &str, server: &Path) -> std::process::Output {
    let script = "import array, ctypes, os, socket, sys\n\
                  a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  def ask(s):\n\
                  \x20   s.settimeout(5); s.sendto(b'ready=1', sys.argv[3])\n\
                  \x20   try:\n        print(s.recv(64).decode(), flush=True)\n\
                  \x20   except socket.timeout:\n        pass\n\
                  if os.fork() == 0:\n\
                  \x20   assert ctypes.CDLL(None).unshare(0x10000000 | 0x40000000) == 0\n\
                  \x20   s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind('\\0' + sys.argv[2][1:])\n\
                  \x20   if sys.argv[1] == 'passed':\n\
                  \x20       b.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [s.fileno()]))])\n\
                  \x20   else:\n        ask(s)\n\
                  \x20   os._exit(0)\n\
                  if sys.argv[1] == 'passed':\n\
                  \x20   msg, anc, _, _ = a.recvmsg(8, socket.CMSG_SPACE(4))\n\
                  \x20   fd = array.array('i'); fd.frombytes(anc[0][2][:4])\n\
                  \x20   ask(socket.socket(fileno=fd[0]))\n\
                  os.wait()\n";
    let how = if passed { "passed" } else { "direct" };
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "--"])
        .args(["/usr/bin/python3", "-c", script, how, name])
        .arg(server)
        .output()
        .expect("run python3 as another user");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What reached `victim` (a nonblocking socket) so far, if anything.
fn reached(victim: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 64];
    let n = victim.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A socket keeps the network namespace it was made in, whichever process sends from it:
/// nobody binds root's abstract name in a namespace of its own and hands that socket to a
/// process here, which sends from it. The name is judged, not the process: no reply, which
/// would land in root's socket, in every model and with --exec; nobody's own name here is
/// answered.
#[test]
fn a_socket_passed_in_from_another_network_namespace_gets_no_reply() {
    let test = "a_socket_passed_in_from_another_network_namespace_gets_no_reply";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    use std::os::linux::net::SocketAddrExt;
    let name = common::abstract_name("passed-victim");
    let at = std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
    let victim = UnixDatagram::bind_addr(&at).unwrap();
    victim.set_nonblocking(true).unwrap();
    let exec = ["--allow", "uid:65534", "--exec", "/bin/echo"];
    for (model, extra) in [
        ("event", &[][..]),
        ("threads", &[]),
        ("iterative", &[]),
        ("uring", &[]),
        ("fork", &[]),
        ("event", &exec),
    ] {
        // A socket file of its own each: a fork model's child may outlive its parent a moment.
        let path = dir
            .path()
            .join(format!("sh/passed-{model}-{}.sock", extra.len()));
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--proto", "unix-dgram", "--model", model])
            .arg("--addr")
            .arg(&path)
            .args(extra);
        let server = Server::start_with(&mut cmd);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let out = namespaced_request(65534, true, &name, &path);
        assert_eq!(
            reached(&victim),
            None,
            "{model} {extra:?}: root's socket was written"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "",
            "{model} {extra:?}"
        );
        let own = common::abstract_name(&format!("passed-own-{model}-{}", extra.len()));
        let honest = nobody_request(false, dir.path(), &own, path.to_str().unwrap());
        assert!(
            !String::from_utf8_lossy(&honest.stdout).trim().is_empty(),
            "{model} {extra:?}: nobody's own name went unanswered: {}",
            String::from_utf8_lossy(&honest.stderr)
        );
        drop(server);
    }
}

/// A server that is not root answers no other user's name bound in another network
/// namespace either: its reply would carry the server's credentials into its own user's
/// socket at that name here. Server and victim socket are nobody's, the sender daemon, in a
/// user and network namespace of its own (sending itself, or from a process here).
#[test]
fn a_servers_own_users_abstract_socket_gets_no_other_users_reply() {
    let test = "a_servers_own_users_abstract_socket_gets_no_other_users_reply";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    use std::os::linux::net::SocketAddrExt;
    let name = common::abstract_name("servers-own");
    let at = std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
    let victim = common::made_as(65534, move || UnixDatagram::bind_addr(&at).unwrap());
    victim.set_nonblocking(true).unwrap();
    for model in ["event", "threads", "iterative", "uring", "fork"] {
        let path = dir.path().join(format!("sh/nobodys-{model}.sock"));
        let server = Server::start_with(&mut common::as_nobody(&[
            "serve",
            "--proto",
            "unix-dgram",
            "--model",
            model,
            "--addr",
            path.to_str().unwrap(),
        ]));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        for passed in [false, true] {
            let out = namespaced_request(1, passed, &name, &path);
            let how = if passed { "passed in" } else { "sent there" };
            assert_eq!(
                reached(&victim),
                None,
                "{model}, {how}: nobody's socket was written"
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{model}, {how}");
        }
        drop(server);
    }
}

/// Abstract names are kept apart by socket type: nobody binds stream and seqpacket sockets
/// at the names of root's datagram sockets here, then sends from its own datagram sockets at
/// those names in a network namespace of its own. Only a datagram socket at a name counts
/// as its owner (a reply to the name reaches no other): no reply, which would land in
/// root's sockets (the first socket at a name, of any type, was once taken for its owner).
/// Many names, as the kernel lists a name's sockets in an order of its own.
#[test]
fn a_stream_socket_at_another_users_datagram_name_earns_no_reply() {
    use std::os::linux::net::SocketAddrExt;
    let test = "a_stream_socket_at_another_users_datagram_name_earns_no_reply";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    if !common::can_unshare(test) {
        return;
    }
    let script = "import ctypes, os, select, socket, sys\n\
                  srv, names, keep = sys.argv[1], sys.argv[2:], []\n\
                  for n in names:\n\
                  \x20   for t in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):\n\
                  \x20       s = socket.socket(socket.AF_UNIX, t); s.bind('\\0' + n); s.listen(1); keep.append(s)\n\
                  if os.fork() == 0:\n\
                  \x20   assert ctypes.CDLL(None).unshare(0x10000000 | 0x40000000) == 0\n\
                  \x20   for n in names:\n\
                  \x20       d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind('\\0' + n)\n\
                  \x20       d.sendto(b'ready=1', srv); keep.append(d)\n\
                  \x20   for d in select.select(keep, [], [], 2)[0]: print(d.recv(64))\n\
                  \x20   os._exit(0)\n\
                  os.wait()\n";
    for model in ["event", "uring"] {
        let names: Vec<String> = (0..16)
            .map(|i| common::abstract_name(&format!("types-{model}-{i}"))[1..].to_string())
            .collect();
        let victims: Vec<UnixDatagram> = names
            .iter()
            .map(|n| {
                let at = std::os::unix::net::SocketAddr::from_abstract_name(n).unwrap();
                let victim = UnixDatagram::bind_addr(&at).unwrap();
                victim.set_nonblocking(true).unwrap();
                victim
            })
            .collect();
        let path = dir.path().join(format!("sh/types-{model}.sock"));
        let addr = path.to_str().unwrap();
        let server = Server::start(&["--proto", "unix-dgram", "--model", model, "--addr", addr]);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let out = common::run(
            Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .args(["/usr/bin/python3", "-c", script, addr])
                .args(&names),
            b"",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // nobody's own name here is answered, after any reply to the names above.
        let own = common::abstract_name(&format!("types-own-{model}"));
        assert_answered(&nobody_request(false, dir.path(), &own, addr), model);
        for (name, victim) in names.iter().zip(&victims) {
            assert_eq!(
                reached(victim),
                None,
                "{model}: root's socket @{name} was written"
            );
        }
        drop(server);
    }
}

/// Runs `netecho ARGS` in a user namespace of its own, as uid 0 there, whose uid and gid
/// maps are `map` (lines split by `;`, each "inside outside count"), as a rootless
/// container runs it: the process started is netecho itself (python3 makes the namespace,
/// a child of it writes the maps, and it then becomes netecho).
fn netecho_in_userns(map: &str, args: &[&str]) -> Command {
    let script = "import ctypes, os, sys\n\
                  r, w = os.pipe(); me = os.getpid()\n\
                  if os.fork() == 0:\n\
                  \x20   os.close(w); os.read(r, 1)\n\
                  \x20   m = sys.argv[1].replace(';', '\\n') + '\\n'\n\
                  \x20   open(f'/proc/{me}/uid_map', 'w').write(m)\n\
                  \x20   open(f'/proc/{me}/setgroups', 'w').write('deny')\n\
                  \x20   open(f'/proc/{me}/gid_map', 'w').write(m)\n\
                  \x20   os._exit(0)\n\
                  os.close(r)\n\
                  assert ctypes.CDLL(None).unshare(0x10000000) == 0\n\
                  os.close(w); os.wait()\n\
                  os.setgid(0); os.setuid(0)\n\
                  os.execv(sys.argv[2], sys.argv[2:])\n";
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", script, map, bin()]).args(args);
    cmd
}

/// In a user namespace that maps the overflow uid 65534 to a user (a rootless container's
/// own nobody), every user not mapped there still shows as 65534 too: a server there
/// answers no sender with that uid, or the mapped nobody, binding `w.sock` in its own
/// directory, would pass as the owner of root's (unmapped) `w.sock` in the server's
/// directory and have the server write into it. A mapped user (here root of the namespace)
/// is answered.
#[test]
fn a_server_in_a_user_namespace_never_vouches_for_the_overflow_uid() {
    let test = "a_server_in_a_user_namespace_never_vouches_for_the_overflow_uid";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    if !common::can_unshare(test) {
        return;
    }
    // root's socket, writable by all, at w.sock from the server's directory.
    let cwd = dir.path().join("srv");
    fs::create_dir(&cwd).unwrap();
    let victim = UnixDatagram::bind(cwd.join("w.sock")).unwrap();
    victim.set_nonblocking(true).unwrap();
    fs::set_permissions(cwd.join("w.sock"), fs::Permissions::from_mode(0o666)).unwrap();
    let name = common::abstract_name("mapped-nobody");
    let args = ["serve", "--proto", "unix-dgram", "--addr", &name];
    let server =
        Server::start_with(netecho_in_userns("0 5000 1;65534 65534 1", &args).current_dir(&cwd));
    let out = request_as(65534, false, &dir.path().join("sh"), "w.sock", &name);
    assert_eq!(
        reached(&victim),
        None,
        "the reply to nobody's w.sock reached root's"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // uid 5000, root of the namespace, at its own socket file.
    let own = dir.path().join("sh/u5000/me.sock");
    assert_answered(
        &request_as(5000, false, dir.path(), own.to_str().unwrap(), &name),
        "5000",
    );
    drop(server);
}

/// As `uid` (its group the same number): holds `sockets` Unix sockets (socketpairs, in processes of
/// 18,000 each, within the user's open file limit; the others die with the first), prints
/// `ready`, then sends 8-byte datagrams to `server`, each from a socket bound at an
/// abstract name not used before, until killed.
fn fresh_name_flood(uid: u32, sockets: usize, server: &Path, tag: &str) -> common::Peer {
    let script = "import ctypes, os, socket, sys, resource, signal, time\n\
                  left, srv, tag = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n\
                  hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
                  resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
                  pairs = lambda n: [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(n // 2)]\n\
                  while left > 18000:\n\
                  \x20   left -= 18000; r, w = os.pipe()\n\
                  \x20   if os.fork() == 0:\n\
                  \x20       ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n\
                  \x20       keep = pairs(18000); os.write(w, b'x'); signal.pause()\n\
                  \x20   os.read(r, 1)\n\
                  keep = pairs(left)\n\
                  print('ready', flush=True)\n\
                  n = 0\n\
                  while True:\n\
                  \x20   s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.setblocking(False)\n\
                  \x20   s.bind(f'\\0{tag}-{n}'); n += 1\n\
                  \x20   try: s.sendto(b'x' * 8, srv)\n\
                  \x20   except OSError: time.sleep(0.001)\n\
                  \x20   s.close()\n";
    let mut child = Command::new("setpriv")
        .args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
        .args(["--clear-groups", "--"])
        .args(["/usr/bin/python3", "-c", script, &sockets.to_string()])
        .arg(server)
        .arg(tag)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3 as the flooding user");
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    let peer = common::Peer(child);
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the flood did not start");
    peer
}

/// Who owns an abstract name takes a walk of every Unix socket here, which any user can
/// make long. nobody holds 54,000 sockets and floods a server with datagrams, each from a
/// fresh abstract name: another user's client at a path still has all its echoes (the
/// time spent walking is budgeted per user; a walk for each datagram once stalled the
/// server for a second or more at each echo). daemon's client, many datagrams from one
/// autobound name, is answered throughout (the name's socket is remembered, and re-checked
/// alone, not looked up again).
#[test]
fn a_flood_from_fresh_abstract_names_stalls_no_other_client() {
    let test = "a_flood_from_fresh_abstract_names_stalls_no_other_client";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    let (path, server) = open_dgram_server(&dir.path().join("sh/flooded.sock"));
    let tag = common::abstract_name("fresh")[1..].to_string();
    let flood = fresh_name_flood(65534, 54_000, &path, &tag);
    let client = UnixDatagram::bind(dir.path().join("steady.sock")).unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    client.set_write_timeout(Some(common::STEP)).unwrap();
    // A hang guard, far past what 500 echoes take, but short of 500 stalls of a tenth of a
    // second each.
    let start = std::time::Instant::now();
    let mut buf = [0u8; 64];
    for n in 0..500 {
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "{n} of 500 echoes came back in 45 s of nobody's flood of fresh names"
        );
        let msg = format!("ping {n}");
        client.send_to(msg.as_bytes(), &path).unwrap();
        let got = client.recv(&mut buf).expect("the steady client's echo");
        assert_eq!(&buf[..got], msg.to_uppercase().as_bytes());
    }
    // One long walk of nobody's may leave the server's budget for all users spent for a
    // second or two: the client tries again, as a lost datagram's sender does.
    let lines: String = (0..200).map(|n| format!("line {n}\n")).collect();
    let out = common::run(
        Command::new("setpriv")
            .args([
                "--reuid=daemon",
                "--regid=daemon",
                "--clear-groups",
                "--",
                bin(),
            ])
            .args(["send", "--proto", "unix-dgram", "--retries", "5"])
            .arg(&path),
        lines.as_bytes(),
    );
    assert_eq!(common::ok(&out), lines.to_uppercase(), "daemon's client");
    // The flood's datagrams over its user's budget are said, naming the user.
    server.wait_log("uid 65534: a datagram from an abstract name dropped unanswered");
    drop(flood);
    drop(server);
}

/// One person may own many uids (every user useradd makes gets 65,536 subordinate ones, a
/// user namespace's processes send as them): three of them flood a server from fresh
/// abstract names, each walk of the Unix sockets spending the time for such walks, and
/// another user's (daemon's) client, asking from fresh names too, still has most of its
/// requests answered (each user walking gets a fair share of the time in all; once three
/// users' own budgets added up to all of it, and every other user got no reply).
#[test]
fn three_users_flooding_from_fresh_abstract_names_leave_a_share_for_another() {
    let test = "three_users_flooding_from_fresh_abstract_names_leave_a_share_for_another";
    let Some((dir, _)) = roots_victim(test) else {
        return;
    };
    let (path, server) = open_dgram_server(&dir.path().join("sh/shared.sock"));
    let floods: Vec<common::Peer> = (100_001..=100_003)
        .map(|uid| {
            let tag = common::abstract_name(&format!("share-{uid}"))[1..].to_string();
            fresh_name_flood(uid, 0, &path, &tag)
        })
        .collect();
    // The floods spend all they may before daemon asks.
    server.wait_log("a datagram from an abstract name dropped unanswered");
    let answered = (0..10)
        .filter(|n| {
            let name = common::abstract_name(&format!("share-daemon-{n}"));
            let out = request_as(1, false, dir.path(), &name, path.to_str().unwrap());
            String::from_utf8_lossy(&out.stdout).trim() == "READY=1"
        })
        .count();
    assert!(
        answered >= 7,
        "daemon's client had {answered} of 10 requests answered beside three users' floods"
    );
    drop(floods);
    drop(server);
}
