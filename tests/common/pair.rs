//! Two network namespaces joined by a veth pair, for tests that need a peer whose address is
//! not loopback (a source that could be forged): made by the test, removed when dropped.

use std::fs;
use std::net::UdpSocket;
use std::process::Command;

use super::{Lacks, skip};

/// Two network namespaces joined by a veth pair: the server's at 10.203.7.1, the client's
/// at 10.203.7.2. Removed when dropped.
pub struct Pair {
    pub server: String,
    pub client: String,
}

impl Pair {
    pub fn new(tag: &str) -> Result<Pair, String> {
        let id = format!("{}-{tag}", std::process::id());
        let pair = Pair {
            server: format!("netecho-s{id}"),
            client: format!("netecho-c{id}"),
        };
        let (vs, vc) = (
            format!("nts{}", std::process::id()),
            format!("ntc{}", std::process::id()),
        );
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &pair.server],
            vec!["netns", "add", &pair.client],
            vec![
                "link",
                "add",
                &vs,
                "netns",
                &pair.server,
                "type",
                "veth",
                "peer",
                &vc,
                "netns",
                &pair.client,
            ],
            vec![
                "-n",
                &pair.server,
                "addr",
                "add",
                "10.203.7.1/24",
                "dev",
                &vs,
            ],
            vec![
                "-n",
                &pair.client,
                "addr",
                "add",
                "10.203.7.2/24",
                "dev",
                &vc,
            ],
            vec!["-n", &pair.server, "link", "set", &vs, "up"],
            vec!["-n", &pair.client, "link", "set", &vc, "up"],
            vec!["-n", &pair.server, "link", "set", "lo", "up"],
        ];
        for step in steps {
            let o = Command::new("ip")
                .args(&step)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if !o.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
        }
        Ok(pair)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A UDP socket of the client's namespace, bound to 10.203.7.2: made on a thread that
/// joined it (setns changes only the calling thread), usable from any thread after.
pub fn socket_in(ns: &str) -> UdpSocket {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let f = fs::File::open(&path).expect("open the namespace");
                // Safety: a valid descriptor of a network namespace, for this thread only.
                let r =
                    unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                UdpSocket::bind("10.203.7.2:0").expect("bind in the client's namespace")
            })
            .join()
            .unwrap()
    })
}

/// The namespaces of a test, or its skip when this process may not make them.
pub fn namespaces(test: &str, tag: &str) -> Option<Pair> {
    if !nix::unistd::Uid::effective().is_root() {
        skip(test, "root to create network namespaces", Lacks::Provided);
        return None;
    }
    Pair::new(tag)
        .map_err(|e| {
            let needs = format!("network namespaces and veth pairs ({e})");
            skip(test, &needs, Lacks::Environment);
        })
        .ok()
}
