//! Which addresses an import may connect to. A URL given by a caller must not reach the
//! server's own network (cloud metadata endpoints, internal services, the loopback), so every
//! address that is not a public unicast one is refused unless the operator allowed it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Whether `ip` is a public unicast address: not private, loopback, link-local, unspecified,
/// multicast, broadcast, shared (CGNAT), documentation, benchmarking or reserved; IPv6 forms
/// that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        // "This network".
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (b & 0xc0) == 64)
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b & 0xfe) == 18)
        // Reserved for future use, 240.0.0.0/4.
        || a >= 240;
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let refused = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (s[0] & 0xfe00) == 0xfc00
        // Link-local, fe80::/10.
        || (s[0] & 0xffc0) == 0xfe80
        // Site-local (deprecated), fec0::/10.
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        // Discard-only, 100::/64.
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0);
    !refused
}

/// The IPv4 address an IPv6 one stands for: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, but not `::` and `::1`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(low(s[1], s[2]));
    }
    None
}

/// A network, `10.0.0.0/8` or `fd00::/8`; a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = canonical(
            address
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .map_err(|_| format!("'{text}' is not an IP address or network"))?,
        );
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("'{text}' has an invalid prefix length"))?,
        };
        Ok(Network { address, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// Which non-public addresses imports may reach anyway (an internal file server, a test's
/// loopback server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrivateAccess {
    /// None: only public addresses.
    #[default]
    Refused,
    /// Every address.
    Allowed,
    /// These networks.
    Only(Vec<Network>),
}

impl PrivateAccess {
    /// Whether an import may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip)
            || match self {
                PrivateAccess::Refused => false,
                PrivateAccess::Allowed => true,
                PrivateAccess::Only(networks) => networks.iter().any(|n| n.contains(ip)),
            }
    }
}

/// `""`, `0`, `false`, `no`: refused; `1`, `true`, `yes`, `all`: allowed; else a comma-separated
/// list of addresses and networks (`127.0.0.1,10.0.0.0/8`).
impl FromStr for PrivateAccess {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "no" | "off" => Ok(PrivateAccess::Refused),
            "1" | "true" | "yes" | "on" | "all" => Ok(PrivateAccess::Allowed),
            list => list
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(Network::from_str)
                .collect::<Result<Vec<_>, _>>()
                .map(PrivateAccess::Only),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn public_unicast_addresses_pass() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "151.101.1.69",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4007:80e::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(address), "{address} should be public");
        }
    }

    #[test]
    fn private_loopback_link_local_and_special_addresses_are_refused() {
        for address in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.170",
            "198.18.0.1",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            // IPv4 in IPv6 clothing.
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::192.168.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
        ] {
            assert!(!public(address), "{address} should be refused");
        }
    }

    #[test]
    fn private_access_parses_flags_and_networks() {
        assert_eq!("".parse(), Ok(PrivateAccess::Refused));
        assert_eq!("0".parse(), Ok(PrivateAccess::Refused));
        assert_eq!("1".parse(), Ok(PrivateAccess::Allowed));
        assert_eq!("TRUE".parse(), Ok(PrivateAccess::Allowed));
        let only: PrivateAccess = "127.0.0.1, 10.0.0.0/8,[::1]".parse().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(only.permits(loopback));
        assert!(only.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(only.permits("10.20.30.40".parse().unwrap()));
        assert!(only.permits("::1".parse().unwrap()));
        assert!(!only.permits("127.0.0.2".parse().unwrap()));
        assert!(!only.permits("169.254.169.254".parse().unwrap()));
        assert!(only.permits("8.8.8.8".parse().unwrap()));
        assert!(!PrivateAccess::Refused.permits(loopback));
        assert!(PrivateAccess::Allowed.permits(loopback));
        assert!("10.0.0.0/33".parse::<PrivateAccess>().is_err());
        assert!("localhost".parse::<PrivateAccess>().is_err());
    }

    #[test]
    fn networks_match_by_prefix() {
        let net: Network = "172.16.0.0/12".parse().unwrap();
        assert!(net.contains("172.31.1.1".parse().unwrap()));
        assert!(!net.contains("172.32.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let everything: Network = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains("203.0.113.9".parse().unwrap()));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert_eq!(net.to_string(), "172.16.0.0/12");
    }
}
