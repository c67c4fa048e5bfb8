//! Address ranges (`127.0.0.0/8`, `::1/128`, or one address), for flags
//! that say where a request may come from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Loopback, both families: `127.0.0.0/8` and `::1/128`.
    pub fn loopback() -> Vec<Cidr> {
        vec![Cidr { network: [127, 0, 0, 0].into(), prefix: 8 }, Cidr { network: IpAddr::V6(1.into()), prefix: 128 }]
    }

    /// Whether `ip` is in the range; an IPv4 address written as IPv6
    /// (`::ffff:127.0.0.1`, as a dual-stack socket reports it) counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr =
            address.parse().map_err(|_| format!("{text:?} is not an address range (e.g. 172.17.0.1/32 or ::1/128)"))?;
        let most = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => most,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= most)
                .ok_or_else(|| format!("{text:?}: the prefix length must be a number from 0 to {most}"))?,
        };
        let cidr = Cidr { network, prefix };
        if host_bits_set(network, prefix) {
            return Err(format!("{text:?} has bits set past its /{prefix}: write the network's first address"));
        }
        Ok(cidr)
    }
}

fn host_bits_set(ip: IpAddr, prefix: u8) -> bool {
    let bits: u128 = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
        IpAddr::V6(v6) => u128::from(v6),
    };
    prefix < 128 && bits << prefix != 0
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_range_holds_the_addresses_under_its_prefix() {
        let net: Cidr = "172.17.0.0/16".parse().unwrap();
        assert!(net.contains(ip("172.17.3.4")));
        assert!(!net.contains(ip("172.18.0.1")));
        let one: Cidr = "172.17.0.1".parse().unwrap();
        assert!(one.contains(ip("172.17.0.1")) && !one.contains(ip("172.17.0.2")));
        let odd: Cidr = "10.0.0.0/9".parse().unwrap();
        assert!(odd.contains(ip("10.127.255.255")) && !odd.contains(ip("10.128.0.0")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
    }

    #[test]
    fn loopback_holds_both_families_and_mapped_addresses() {
        let loopback = Cidr::loopback();
        for local in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(loopback.iter().any(|c| c.contains(ip(local))), "{local}");
        }
        for remote in ["172.17.0.2", "::2", "::ffff:10.0.0.1"] {
            assert!(!loopback.iter().any(|c| c.contains(ip(remote))), "{remote}");
        }
    }

    #[test]
    fn malformed_ranges_are_refused_with_the_reason() {
        for bad in ["", "localhost", "10.0.0.0/33", "::/129", "10.0.0.1/8", "10.0.0.0/x", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!("10.0.0.0/8".parse::<Cidr>().unwrap().to_string(), "10.0.0.0/8");
    }
}
