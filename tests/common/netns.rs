//! Two network namespaces joined by a veth pair, made by a test and always removed (when
//! dropped, also after a failed assertion): servers in one, clients in the other, so a
//! test's multicast and broadcast never leave them. Names carry the test process's pid and
//! a tag per test, so tests run in parallel.

use std::net::UdpSocket;
use std::process::{Command, Stdio};

use super::{Lacks, bin, skip};

/// The pair of namespaces, deleted (with the veth inside) when dropped.
pub struct Pair {
    pub server: String,
    pub client: String,
    pub server_if: String,
    pub client_if: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Waits (at most 5 s) until IPv6 is up on `dev`: its multicast route exists once the veth
/// has a carrier, which comes a moment after both ends are up.
fn wait_link(space: &str, dev: &str) -> Result<(), String> {
    for _ in 0..100 {
        let out = Command::new("ip")
            .args([
                "-n", space, "-6", "route", "show", "table", "local", "ff00::/8", "dev", dev,
            ])
            .output()
            .map_err(|e| format!("ip (iproute2): {e}"))?;
        if !out.stdout.is_empty() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(format!(
        "{dev} in {space} had no IPv6 multicast route after 5 s"
    ))
}

impl Pair {
    pub const SERVER_V4: &str = "10.234.0.1";
    pub const CLIENT_V4: &str = "10.234.0.2";
    pub const BROADCAST_V4: &str = "10.234.0.255";
    pub const SERVER_V6: &str = "fd00:234::1";
    /// A second address of the server's, which the kernel does not pick to reach the
    /// client (fd00:234::1/112 shares a longer prefix with fd00:234::2).
    pub const SERVER_V6_OTHER: &str = "fd00:234::4";
    pub const CLIENT_V6: &str = "fd00:234::2";

    /// The namespaces for `tag` (two or three letters), or `None` after a skip when this
    /// process may not make them.
    pub fn new(tag: &str, test: &str) -> Option<Pair> {
        if !nix::unistd::Uid::effective().is_root() {
            skip(test, "root to create network namespaces", Lacks::Provided);
            return None;
        }
        let pid = std::process::id();
        let pair = Pair {
            server: format!("netecho-t{pid}-{tag}-srv"),
            client: format!("netecho-t{pid}-{tag}-cli"),
            server_if: format!("t{pid}{tag}s"),
            client_if: format!("t{pid}{tag}c"),
        };
        if let Err(e) = ip(&["netns", "add", &pair.server]) {
            skip(
                test,
                &format!("the right to create network namespaces: {e}"),
                Lacks::Environment,
            );
            return None;
        }
        if let Err(e) = pair.build() {
            panic!("setting up the namespaces: {e}");
        }
        Some(pair)
    }

    fn build(&self) -> Result<(), String> {
        ip(&["netns", "add", &self.client])?;
        ip(&[
            "link",
            "add",
            &self.server_if,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            &self.client_if,
            "netns",
            &self.client,
        ])?;
        let sides = [
            (
                &self.server,
                &self.server_if,
                [Self::SERVER_V4, Self::SERVER_V6, Self::SERVER_V6_OTHER].as_slice(),
            ),
            (
                &self.client,
                &self.client_if,
                [Self::CLIENT_V4, Self::CLIENT_V6].as_slice(),
            ),
        ];
        for (space, dev, addrs) in sides {
            for addr in addrs {
                // The server's first IPv6 address has the longer prefix, so the kernel picks
                // it as the source of anything it sends the client on its own.
                let (prefix, extra) = match addr.contains(':') {
                    true if *addr == Self::SERVER_V6 => (format!("{addr}/112"), "nodad"),
                    true => (format!("{addr}/64"), "nodad"),
                    false => (format!("{addr}/24"), ""),
                };
                let mut args = vec!["-n", space, "addr", "add", &prefix, "dev", dev];
                if !extra.is_empty() {
                    args.push(extra);
                }
                ip(&args)?;
            }
            ip(&["-n", space, "link", "set", dev, "up"])?;
            ip(&["-n", space, "link", "set", "lo", "up"])?;
        }
        // The clients' only way out is the veth: a group or 255.255.255.255 needs no --iface.
        ip(&[
            "-n",
            &self.client,
            "route",
            "add",
            "default",
            "dev",
            &self.client_if,
        ])?;
        for (space, dev) in [
            (&self.server, &self.server_if),
            (&self.client, &self.client_if),
        ] {
            wait_link(space, dev)?;
        }
        Ok(())
    }

    /// One more address on the server's end, without duplicate address detection (so it is
    /// usable at once, not tentative for a second).
    pub fn add_server_v6(&self, cidr: &str) -> Result<(), String> {
        ip(&[
            "-n",
            &self.server,
            "addr",
            "add",
            cidr,
            "dev",
            &self.server_if,
            "nodad",
        ])
    }

    /// Sets the MTU of both ends of the veth: a narrower path (IPv6's minimum, 1280, as on
    /// many tunnels) than the 1500 everything assumes.
    pub fn mtu(&self, mtu: u16) -> Result<(), String> {
        let mtu = mtu.to_string();
        for (space, dev) in [
            (&self.server, &self.server_if),
            (&self.client, &self.client_if),
        ] {
            ip(&["-n", space, "link", "set", "dev", dev, "mtu", &mtu])?;
        }
        Ok(())
    }

    /// Real loss on both ends (see [`lose_on`]).
    pub fn lose(&self, per_10000: u32) -> Result<(), String> {
        for (space, dev) in [
            (&self.server, &self.server_if),
            (&self.client, &self.client_if),
        ] {
            lose_on(space, dev, per_10000)?;
        }
        Ok(())
    }

    /// `netecho ARGS` inside a namespace.
    fn cmd(space: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", space, bin()]).args(args);
        cmd
    }

    pub fn server_cmd(&self, args: &[&str]) -> Command {
        Self::cmd(&self.server, args)
    }

    pub fn client_cmd(&self, args: &[&str]) -> Command {
        Self::cmd(&self.client, args)
    }

    /// A UDP socket of the client's namespace, bound to its IPv4 address: made on a thread
    /// that joined the namespace (setns changes only the calling thread), usable from any
    /// thread after.
    pub fn client_udp(&self) -> UdpSocket {
        let path = format!("/var/run/netns/{}", self.client);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let f = std::fs::File::open(&path).expect("open the namespace");
                    // Safety: a valid descriptor of a network namespace, for this thread only.
                    let r = unsafe {
                        libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET)
                    };
                    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                    UdpSocket::bind((Self::CLIENT_V4, 0)).expect("bind in the client's namespace")
                })
                .join()
                .unwrap()
        })
    }
}

/// The link-local address of `dev` in `space`, once duplicate address detection is over
/// (a tentative address takes no connection).
pub fn link_local(space: &str, dev: &str) -> String {
    super::eventually("a link-local address past DAD", || {
        let out = Command::new("ip")
            .args([
                "-n", space, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("tentative") {
            return None;
        }
        let word = text.split_whitespace().find(|w| w.starts_with("fe80:"))?;
        Some(word.split('/').next()?.to_string())
    })
}

/// Real loss, as `lab --netns --loss` makes it: the end `dev` in `space` drops `per_10000`
/// of the packets arriving on it (10000: all of them, as a firewall does) (nftables, `numgen random`), packet by packet (no
/// segmentation offload joins TCP segments or UDP_SEGMENT datagrams into one packet).
pub fn lose_on(space: &str, dev: &str, per_10000: u32) -> Result<(), String> {
    ip(&[
        "-n",
        space,
        "link",
        "set",
        dev,
        "gso_max_segs",
        "1",
        "gso_max_size",
        "1500",
    ])?;
    // 10000 of 10000 is every packet: a firewall that drops everything (nft's numgen
    // cannot say it).
    let some = match per_10000 {
        10_000.. => String::new(),
        n => format!("numgen random mod 10000 < {n} "),
    };
    let rules = format!(
        "table inet netecho_test {{\n  chain in {{\n    type filter hook input \
         priority 0; policy accept;\n    iifname \"{dev}\" {some}drop\n  }}\n}}\n"
    );
    nft(space, &rules)
}

/// A firewall OUTPUT rule in `space`: packets `matching` (nft's words, such as
/// `udp dport 4002`) are dropped as they leave, and the sender's call fails with EPERM.
pub fn refuse_out(space: &str, matching: &str) -> Result<(), String> {
    let rules = format!(
        "table inet netecho_out {{\n  chain out {{\n    type filter hook output \
         priority 0; policy accept;\n    {matching} drop\n  }}\n}}\n"
    );
    nft(space, &rules)
}

/// `nft -f -` of `rules` in `space`.
fn nft(space: &str, rules: &str) -> Result<(), String> {
    let mut nft = Command::new("ip")
        .args(["netns", "exec", space, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip netns exec nft: {e}"))?;
    let _ = std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes());
    let out = nft.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft (nftables): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl Drop for Pair {
    fn drop(&mut self) {
        for space in [&self.server, &self.client] {
            let _ = ip(&["netns", "del", space]);
        }
    }
}
