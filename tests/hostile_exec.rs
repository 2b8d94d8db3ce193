//! `serve --exec` run by root on a socket every local user can reach: a Unix socket lets in
//! the server's own user only, a socket file is made 0600, and loopback draws a warning.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Server, can_switch_user, skip};

fn as_nobody_runs(url: &str) -> std::process::Output {
    common::run(&mut common::as_nobody(&["exec", url]), b"")
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
    let name = common::abstract_name("exec-uid");
    let server = Server::start(&["--proto", "unix", "--addr", &name, "--exec", "id"]);
    let out = as_nobody_runs(&server.url());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("uid=0"), "nobody ran id as root: {stdout}");
    server.wait_log("refused");
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

#[test]
fn exec_on_loopback_as_root_warns_that_every_local_user_can_run_it() {
    if !root_only("exec_on_loopback_as_root_warns_that_every_local_user_can_run_it") {
        return;
    }
    let server = Server::start(&["--proto", "tcp", "--addr", "127.0.0.1:0", "--exec", "id"]);
    server.wait_log("every local user can connect and run the program as root");
}
