//! `lab --netns`: real loss on the real kernel. Two network namespaces joined by a veth pair,
//! the servers in one and the clients in the other; an nftables rule (`numgen random`) drops
//! a fraction of the packets each side receives, and `tc ... tbf` limits the rate when asked.
//! Names are unique per run; the namespaces (and with them the veth pair, the nftables tables
//! and the qdiscs inside) are deleted at the end, on error and on Ctrl-C (see
//! [`crate::client::local::LocalServers`], which owns the clean-up), and after a SIGKILL by
//! the next `lab --netns`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use tracing::debug;

/// The servers' and the clients' addresses on the veth pair (a /30 of their own: the
/// namespaces see nothing else, so no address can collide with the host's).
pub(crate) const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 233, 0, 1);
pub(crate) const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 233, 0, 2);
/// The same two over IPv6, in a unique local /64 (fd00::/8): `nodad`, so they are usable at
/// once instead of after duplicate address detection's second or so.
pub(crate) const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x233, 0, 0, 0, 0, 0, 1);
pub(crate) const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x233, 0, 0, 0, 0, 0, 2);
/// tbf's bucket and queue when a rate is asked for: enough for a few full-size packets.
const TBF_BURST: &str = "32kbit";
const TBF_LATENCY: &str = "400ms";

/// Two namespaces and the veth pair between them.
pub(crate) struct Netns {
    pub server: String,
    pub client: String,
    veth_server: String,
    veth_client: String,
    /// What was set up, and what the kernel or the machine lacked, one sentence each.
    pub notes: Vec<String>,
}

/// Runs a command; its stderr becomes the error.
fn run(args: &[&str]) -> Result<()> {
    run_input(args, None)
}

fn run_input(args: &[&str], input: Option<&str>) -> Result<()> {
    debug!("{}", args.join(" "));
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{}: not found", args[0]))?;
    if let Some(text) = input {
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes());
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        // The first line says what went wrong; nft goes on to quote its input.
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{}: {}",
            args.join(" "),
            stderr.lines().next().unwrap_or("failed").trim()
        );
    }
    Ok(())
}

/// The nftables table dropping `loss` of the packets arriving on `veth`: numgen random gives
/// 0..9999, and below loss * 10000 is dropped (0.01% steps). All of them is a plain drop: nft
/// refuses `< 10000`, a test no number fails.
fn loss_rules(veth: &str, loss: f64) -> String {
    let test = match (loss * 10_000.0).round() as u32 {
        10_000.. => String::new(),
        cut => format!("numgen random mod 10000 < {cut} "),
    };
    format!(
        "table inet netecho {{\n  chain in {{\n    type filter hook input priority 0; policy \
         accept;\n    iifname \"{veth}\" {test}drop\n  }}\n}}\n"
    )
}

/// How many names a lab tries for its namespaces before it gives up: the names of others'
/// namespaces are never used.
const NAME_TRIES: usize = 4;

/// A tag unique to this run: the pid makes names unique among running labs; the clock,
/// across a pid reused.
fn unique_tag() -> String {
    format!(
        "{}{:02x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_micros() & 0xff)
    )
}

impl Netns {
    /// Creates the namespaces and the veth pair, and the loss and rate asked for. Each
    /// namespace's name goes into `cleanup` as soon as it exists, so whatever happens next,
    /// it is deleted.
    pub(crate) fn create(
        cleanup: &Arc<Mutex<Vec<String>>>,
        loss: f64,
        rate: Option<u64>,
    ) -> Result<Netns> {
        if !nix::unistd::Uid::effective().is_root() {
            bail!(
                "lab --netns needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): it creates network \
                 namespaces, a veth pair and nftables rules; run it with sudo"
            );
        }
        remove_stale();
        let mut ns = Netns::unused(cleanup)?;
        ns.add_veth_pair()?;
        ns.notes.push(format!(
            "namespaces {} (servers, {SERVER_IP} and {SERVER_IP6}) and {} (clients, {CLIENT_IP} \
             and {CLIENT_IP6}), joined by the veth pair {}/{}",
            ns.server, ns.client, ns.veth_server, ns.veth_client
        ));
        // What was asked for is made, or the run stops: rows measured without the loss or
        // the rate asked would read as that path's.
        if loss > 0.0 {
            ns.add_loss(loss).with_context(|| {
                format!(
                    "--loss {}%: nftables could not add the rule that drops packets (install                      the nftables package, or run without --loss)",
                    loss * 100.0
                )
            })?;
        }
        if let Some(rate) = rate {
            ns.add_rate(rate).context(
                "--rate: tc could not add the tbf qdisc (install iproute2 with the sch_tbf                  module, or run without --rate)",
            )?;
        }
        Ok(ns)
    }

    /// The names of a run's namespaces and interfaces. Interface names hold at most 15
    /// bytes (IFNAMSIZ).
    fn named(tag: &str) -> Netns {
        Netns {
            server: format!("netecho-{tag}-srv"),
            client: format!("netecho-{tag}-cli"),
            veth_server: format!("ne{tag}s"),
            veth_client: format!("ne{tag}c"),
            notes: Vec::new(),
        }
    }

    /// Both namespaces of a fresh name: a name someone else's namespace has is never this
    /// run's (nor recorded, nor deleted); a few other names are tried instead.
    fn unused(cleanup: &Arc<Mutex<Vec<String>>>) -> Result<Netns> {
        for _ in 0..NAME_TRIES {
            let ns = Netns::named(&unique_tag());
            if ns.add_namespaces(cleanup)? {
                return Ok(ns);
            }
        }
        bail!(
            "lab --netns: the {NAME_TRIES} namespace names it tried (netecho-{}xx-srv and -cli) \
             all belong to namespaces this run did not make, which it leaves alone; delete the \
             ones no longer used (ip netns list) and run the lab again",
            std::process::id()
        )
    }

    /// Creates both namespaces, each recorded and put into `cleanup` once `ip netns add`
    /// made it; false (and none of them left) when a name is taken.
    fn add_namespaces(&self, cleanup: &Arc<Mutex<Vec<String>>>) -> Result<bool> {
        let cleanup_list = || cleanup.lock().unwrap_or_else(|e| e.into_inner());
        for name in [&self.server, &self.client] {
            if let Err(e) = run(&["ip", "netns", "add", name]) {
                if !Path::new("/run/netns").join(name).exists() {
                    return Err(e).context("create a network namespace (ip netns add)");
                }
                debug!("the namespace {name} exists already; trying another name");
                if name == &self.client {
                    cleanup_list().retain(|made| made != &self.server);
                    remove(&Mutex::new(vec![self.server.clone()]));
                }
                return Ok(false);
            }
            cleanup_list().push(name.clone());
            record(name);
        }
        Ok(true)
    }

    /// The veth pair, an IPv4 and an IPv6 address on each end, and both ends and loopbacks
    /// up. Both ends are born in their namespaces: nothing is ever left in the host's.
    fn add_veth_pair(&self) -> Result<()> {
        run(&[
            "ip",
            "link",
            "add",
            &self.veth_server,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            &self.veth_client,
            "netns",
            &self.client,
        ])
        .context("create the veth pair")?;
        for (space, veth, ip, ip6) in [
            (&self.server, &self.veth_server, SERVER_IP, SERVER_IP6),
            (&self.client, &self.veth_client, CLIENT_IP, CLIENT_IP6),
        ] {
            let address = format!("{ip}/30");
            run(&["ip", "-n", space, "addr", "add", &address, "dev", veth])?;
            let address6 = format!("{ip6}/64");
            run(&[
                "ip", "-n", space, "-6", "addr", "add", &address6, "dev", veth, "nodad",
            ])
            .context("add an IPv6 address to the veth pair (is IPv6 disabled?)")?;
            run(&["ip", "-n", space, "link", "set", veth, "up"])?;
            run(&["ip", "-n", space, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// An nftables rule in each namespace dropping `loss` of the packets arriving on the veth.
    /// On arrival, not on the way out: a packet dropped in the output hook fails the sender's
    /// sendto with EPERM, which is a local error, not loss in flight.
    fn add_loss(&mut self, loss: f64) -> Result<()> {
        let mut bursts = None;
        for (space, veth) in [
            (&self.server, &self.veth_server),
            (&self.client, &self.veth_client),
        ] {
            if let Err(e) = wire_packets(space, veth) {
                bursts = Some(e);
            }
            let script = loss_rules(veth, loss);
            run_input(
                &["ip", "netns", "exec", space, "nft", "-f", "-"],
                Some(&script),
            )?;
        }
        let unit = match bursts {
            None => "packet by packet (gso_max_segs 1: no segmentation offload joins them)".into(),
            Some(e) => format!("each drop a burst of up to 64 KB (offloads kept: {e:#})"),
        };
        self.notes.push(format!(
            "nftables: each side drops {}% of the packets arriving on the veth (numgen \
             random): real loss in flight, below TCP, in both directions, {unit}",
            loss * 100.0
        ));
        Ok(())
    }

    /// A tbf qdisc on each end of the veth pair.
    fn add_rate(&mut self, rate: u64) -> Result<()> {
        let bits = format!("{}bit", rate * 8);
        for (space, veth) in [
            (&self.server, &self.veth_server),
            (&self.client, &self.veth_client),
        ] {
            let args = [
                "tc",
                "-n",
                space,
                "qdisc",
                "add",
                "dev",
                veth,
                "root",
                "tbf",
                "rate",
                &bits,
                "burst",
                TBF_BURST,
                "latency",
                TBF_LATENCY,
            ];
            run(&args)?;
        }
        self.notes
            .push(format!("tc tbf: each direction limited to {bits}/s"));
        Ok(())
    }

    /// `ip netns exec SERVER`: runs a command among the servers.
    pub(crate) fn server_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.server]
            .map(String::from)
            .to_vec()
    }

    /// Moves the calling thread into the clients' namespace; threads it starts afterwards
    /// are born there too.
    pub(crate) fn enter_client(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        let path = format!("/run/netns/{}", self.client);
        let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        // Safety: setns only reads the descriptor, which `file` keeps open during the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(anyhow!(std::io::Error::last_os_error()))
                .context("setns into the clients' namespace");
        }
        Ok(())
    }
}

/// `ip link set VETH gso_max_segs 1 gso_max_size 1500` in `space`: the kernel cuts every
/// TCP segment and UDP_SEGMENT datagram before the veth, which otherwise carries up to 64 KB
/// of them as one packet, so a rule dropping 5% of packets drops 5% of what is on the wire,
/// not 5% of bursts. Read back, so a kernel that takes the setting without keeping it never
/// lets the lab say "packet by packet".
fn wire_packets(space: &str, veth: &str) -> Result<()> {
    run(&[
        "ip",
        "-n",
        space,
        "link",
        "set",
        veth,
        "gso_max_segs",
        "1",
        "gso_max_size",
        "1500",
    ])?;
    let shown = Command::new("ip")
        .args(["-d", "-n", space, "link", "show", veth])
        .output()
        .context("ip -d link show")?;
    if !shown.status.success() {
        let why = String::from_utf8_lossy(&shown.stderr);
        bail!("ip -d link show {veth}: {}", why.trim());
    }
    let shown = String::from_utf8_lossy(&shown.stdout);
    if !shown
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w == ["gso_max_segs", "1"])
    {
        bail!("the kernel kept segmentation offload on {veth} (gso_max_segs is not 1)");
    }
    Ok(())
}

/// Where a lab records each namespace it made, so that a later lab deletes only
/// namespaces a lab made: one of the same pattern made by anyone else is left alone.
const RECORDS: &str = "/run/netecho-netns";

/// The records' directory, when it is a directory of this user's and no one else's (not a
/// link); created (0700) when `create`.
fn records(create: bool) -> Option<&'static Path> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let dir = Path::new(RECORDS);
    if create {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    }
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let mine = meta.uid() == nix::unistd::geteuid().as_raw();
    (meta.is_dir() && mine && meta.permissions().mode() & 0o022 == 0).then_some(dir)
}

/// Records `name` as a namespace a lab makes (best effort: unrecorded, a namespace left by a
/// killed lab stays until `ip netns del`).
fn record(name: &str) {
    if let Some(dir) = records(true)
        && let Err(e) = std::fs::write(dir.join(name), b"")
    {
        debug!("cannot record the namespace {name} in {RECORDS}: {e}");
    }
}

/// Forgets a namespace deleted (or never made).
fn forget(name: &str) {
    if let Some(dir) = records(false) {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// Deletes the namespaces a killed lab left behind. SIGKILL runs no clean-up, and a
/// namespace's name in /run/netns is a mount that outlives every process; the servers in it
/// died with their lab, and the veth pair, nftables tables and qdiscs go with the namespace.
/// Only namespaces a lab recorded ([`record`]), of a lab gone, with no process left inside.
fn remove_stale() {
    let Some(entries) = records(false).and_then(|dir| std::fs::read_dir(dir).ok()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = owner(name) else { continue };
        if !crate::client::local::pid_gone(pid) {
            continue;
        }
        if !Path::new("/run/netns").join(name).exists() {
            forget(name);
            continue;
        }
        let empty = Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii().is_empty());
        if empty && run(&["ip", "netns", "del", name]).is_ok() {
            forget(name);
            debug!("deleted the namespace {name}, left by a killed lab");
        }
    }
}

/// The pid in a namespace name [`Netns::named`] made: `netecho-PIDxx-srv` (or `-cli`), xx
/// two hex digits.
fn owner(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("netecho-")?;
    let tag = rest
        .strip_suffix("-srv")
        .or_else(|| rest.strip_suffix("-cli"))?;
    let pid = tag.get(..tag.len().checked_sub(2)?)?;
    let hex = &tag[pid.len()..];
    (hex.bytes().all(|b| b.is_ascii_hexdigit()) && !pid.is_empty()).then_some(pid)
}

/// Deletes the namespaces named in `cleanup` (the veth pair, nftables tables and qdiscs
/// inside go with them), once no process is left in them.
pub(crate) fn remove(cleanup: &Mutex<Vec<String>>) {
    let mut names = cleanup.lock().unwrap_or_else(|e| e.into_inner());
    for name in names.drain(..) {
        match run(&["ip", "netns", "del", &name]) {
            Ok(_) => forget(&name),
            Err(e) => debug!("{e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_namespace_is_known_by_the_name_this_lab_gives() {
        let ns = Netns::named("123456ab");
        assert_eq!(owner(&ns.server), Some("123456"));
        assert_eq!(owner(&ns.client), Some("123456"));
        for other in [
            "netecho-ab-srv",
            "netecho-12345zz-cli",
            "other-123456ab-srv",
            "netecho-1",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
    }

    /// Every loss the lab takes makes a table nft accepts: checked by nft itself (`-c`
    /// applies nothing), where this process may run it (root, as `.ci/run` is).
    #[test]
    fn the_loss_rules_are_ones_nft_accepts_up_to_every_packet() {
        assert!(loss_rules("v", 0.05).contains("iifname \"v\" numgen random mod 10000 < 500 drop"));
        assert!(loss_rules("v", 1.0).contains("iifname \"v\" drop"));
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        for loss in [0.0001, 0.05, 0.9999, 1.0] {
            let rules = loss_rules("v", loss);
            run_input(&["nft", "-c", "-f", "-"], Some(&rules))
                .unwrap_or_else(|e| panic!("{loss}: {e:#}\n{rules}"));
        }
    }
}
