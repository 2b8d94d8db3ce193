//! The path to a lab server, as `ip route get` would name it: both addresses, the interface
//! the route leaves by and its MTU, the gateway (or none: directly connected), and the path
//! MTU the kernel holds for the route (IP_MTU on a connected udp socket). Read from the
//! connected sockets, getifaddrs, /sys/class/net and /proc/net/route (ipv6_route).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

/// What the kernel says of the way to the server.
#[derive(Debug, Serialize)]
pub(crate) struct Path {
    pub local: SocketAddr,
    pub server: SocketAddr,
    /// The interface holding the local address.
    pub dev: Option<String>,
    pub dev_mtu: Option<u32>,
    /// The next hop; `None` when the server is on the same link.
    pub gateway: Option<IpAddr>,
    /// IP_MTU (IPV6_MTU) of a udp socket connected to the server, after the run.
    pub path_mtu: Option<u32>,
    /// The same before the run, when it was another: the run taught the kernel the path's
    /// own (a router's ICMP "fragmentation needed" or "packet too big").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_mtu_before: Option<u32>,
}

impl Path {
    /// The path between the two ends of a control connection; `udp_port` is a port of the
    /// server to connect a udp socket to, for the path MTU.
    pub(crate) fn of(local: SocketAddr, server: SocketAddr, udp_port: Option<u16>) -> Path {
        let dev = interface_of(local.ip());
        let dev_mtu = dev.as_deref().and_then(|d| {
            std::fs::read_to_string(format!("/sys/class/net/{d}/mtu"))
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        let gateway = match server.ip() {
            IpAddr::V4(ip) => std::fs::read_to_string("/proc/net/route")
                .ok()
                .and_then(|t| gateway_v4(&t, ip, dev.as_deref()))
                .map(IpAddr::V4),
            IpAddr::V6(ip) => std::fs::read_to_string("/proc/net/ipv6_route")
                .ok()
                .and_then(|t| gateway_v6(&t, ip, dev.as_deref()))
                .map(IpAddr::V6),
        };
        let path_mtu = udp_port.and_then(|port| {
            let mut to = server;
            to.set_port(port);
            path_mtu(to)
        });
        Path {
            local,
            server,
            dev,
            dev_mtu,
            gateway,
            path_mtu,
            path_mtu_before: None,
        }
    }

    /// The path, with the path MTU read before the run kept when it was another.
    pub(crate) fn before(mut self, mtu: Option<u32>) -> Path {
        self.path_mtu_before = mtu.filter(|m| Some(*m) != self.path_mtu);
        self
    }

    /// One sentence, as the report gives it.
    pub(crate) fn describe(&self) -> String {
        let dev = match (&self.dev, self.dev_mtu) {
            (Some(d), Some(m)) => format!("dev {d} (mtu {m})"),
            (Some(d), None) => format!("dev {d}"),
            _ => "an interface this host would not name".into(),
        };
        let via = match self.gateway {
            Some(g) => format!("via the gateway {g}"),
            None => "directly connected (no gateway)".into(),
        };
        let mtu = match (self.path_mtu, self.path_mtu_before) {
            (Some(m), Some(before)) => format!(
                "path MTU {m} after the run ({before} before it: the kernel learned the path's \
                 own during the run, from a router's ICMP \"too big\"; IP_MTU of a connected \
                 udp socket)"
            ),
            (Some(m), None) => format!("path MTU {m} (IP_MTU of a connected udp socket)"),
            (None, _) => "path MTU unknown".into(),
        };
        format!(
            "path: {} -> {}, {dev}, {via}, {mtu}",
            self.local.ip(),
            self.server.ip()
        )
    }
}

/// The interface that holds `ip`.
fn interface_of(ip: IpAddr) -> Option<String> {
    let ip = ip.to_canonical();
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let addr = ifa.address?;
        let own: IpAddr = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
            (Some(v4), _) => IpAddr::V4(v4.ip()),
            (_, Some(v6)) => IpAddr::V6(v6.ip()),
            _ => return None,
        };
        (own == ip).then_some(ifa.interface_name)
    })
}

/// IP_MTU (IPV6_MTU) of a udp socket connected to `to`: the MTU the kernel uses for the
/// route, lowered by any "fragmentation needed" it has heard of.
pub(super) fn path_mtu(to: SocketAddr) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let sock = std::net::UdpSocket::bind(match to {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    })
    .ok()?;
    sock.connect(to).ok()?;
    let (level, name) = match to {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_MTU),
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_MTU),
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // Safety: the socket is open and `mtu` and `len` are a c_int and its size.
    let got = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (got == 0 && mtu > 0).then_some(mtu as u32)
}

/// The gateway of the most specific route to `to` in /proc/net/route's text (on `dev` when
/// known); `None` when that route has no gateway or none matches.
fn gateway_v4(table: &str, to: Ipv4Addr, dev: Option<&str>) -> Option<Ipv4Addr> {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...: addresses in hex, in the
    // kernel's (little-endian) byte order.
    let hex = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| u32::from_be_bytes(v.to_le_bytes()))
    };
    let to = u32::from(to);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gw, metric, mask) = (
                *f.first()?,
                hex(f.get(1)?)?,
                hex(f.get(2)?)?,
                f.get(6)?,
                hex(f.get(7)?)?,
            );
            let metric: u32 = metric.parse().ok()?;
            (dest == to & mask && dev.is_none_or(|d| d == iface)).then_some((
                mask.count_ones(),
                std::cmp::Reverse(metric),
                gw,
            ))
        })
        .max()
        .and_then(|(_, _, gw)| (gw != 0).then(|| Ipv4Addr::from(gw)))
}

/// As [`gateway_v4`], from /proc/net/ipv6_route (destination, prefix, source, its prefix,
/// next hop, metric, refcount, use, flags, interface; addresses as 32 hex digits).
fn gateway_v6(table: &str, to: Ipv6Addr, dev: Option<&str>) -> Option<Ipv6Addr> {
    let addr = |s: &str| u128::from_str_radix(s, 16).ok();
    let to = u128::from(to);
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = addr(f.first()?)?;
            let len = u32::from_str_radix(f.get(1)?, 16).ok()?.min(128);
            let next = addr(f.get(4)?)?;
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let iface = *f.get(9)?;
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            (dest == to & mask && iface != "lo" && dev.is_none_or(|d| d == iface)).then_some((
                len,
                std::cmp::Reverse(metric),
                next,
            ))
        })
        .max()
        .and_then(|(_, _, next)| (next != 0).then(|| Ipv6Addr::from(next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
";

    const ROUTE6: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
";

    #[test]
    fn a_path_mtu_the_run_lowered_is_said_with_the_one_before() {
        let path = |before: Option<u32>| {
            Path {
                local: "10.0.0.2:1".parse().unwrap(),
                server: "10.1.0.2:3235".parse().unwrap(),
                dev: Some("eth0".into()),
                dev_mtu: Some(1500),
                gateway: None,
                path_mtu: Some(1400),
                path_mtu_before: None,
            }
            .before(before)
        };
        let lowered = path(Some(1500)).describe();
        assert!(
            lowered.contains("path MTU 1400 after the run (1500 before it"),
            "{lowered}"
        );
        let same = path(Some(1400));
        assert_eq!(same.path_mtu_before, None);
        assert!(same.describe().contains("path MTU 1400 (IP_MTU"));
    }

    #[test]
    fn the_most_specific_route_names_the_gateway_or_none() {
        let on_link: Ipv4Addr = "192.168.2.7".parse().unwrap();
        assert_eq!(gateway_v4(ROUTE, on_link, Some("eth0")), None);
        let far: Ipv4Addr = "8.8.8.8".parse().unwrap();
        assert_eq!(
            gateway_v4(ROUTE, far, None),
            Some("192.168.2.1".parse().unwrap())
        );
        assert_eq!(gateway_v4(ROUTE, far, Some("wlan0")), None);
        assert_eq!(gateway_v4("garbage\nx y z", far, None), None);
        let near: Ipv6Addr = "fd00::2".parse().unwrap();
        assert_eq!(gateway_v6(ROUTE6, near, Some("eth0")), None);
        let far6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            gateway_v6(ROUTE6, far6, None),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(gateway_v6("zz 99", far6, None), None);
    }

    #[test]
    fn loopback_has_an_interface_and_a_path_mtu() {
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let path = Path::of(local, "127.0.0.1:9".parse().unwrap(), Some(9));
        assert_eq!(path.dev.as_deref(), Some("lo"));
        assert!(path.path_mtu.is_some_and(|m| m >= 1280), "{path:?}");
        let text = path.describe();
        assert!(
            text.starts_with("path: 127.0.0.1 -> 127.0.0.1, dev lo (mtu "),
            "{text}"
        );
    }
}
