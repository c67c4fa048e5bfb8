//! A group's TCP front: the labels that declare it, the port range the
//! operator lets labels claim (`serve --front-ports`), and the rules that
//! make a claim void (outside the range, or a port two groups claim).

use std::collections::{BTreeMap, HashMap};

use super::labels::{flag, LabelError};

/// The port replicator listens on for the group (on `serve --front-address`).
pub const PORT: &str = "replicator.front.port";
/// The members' port connections go to (default: the front's port).
pub const TARGET: &str = "replicator.front.target";
/// The network whose address of a member is used (else the host port it publishes).
pub const NETWORK: &str = "replicator.front.network";
/// Send a PROXY protocol v2 header first, so members see the client's address.
pub const PROXY_PROTOCOL: &str = "replicator.front.proxy-protocol";

/// One group's front, from its original's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontSpec {
    /// Where replicator listens.
    pub listen: u16,
    /// The members' port.
    pub target: u16,
    /// The members' network; `None`: the host port they publish for `target`.
    pub network: Option<String>,
    /// Whether members get a PROXY protocol v2 header.
    pub proxy_protocol: bool,
}

fn port_of(labels: &BTreeMap<String, String>, key: &str) -> Result<Option<u16>, LabelError> {
    let Some(raw) = labels.get(key) else { return Ok(None) };
    raw.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .map(Some)
        .ok_or_else(|| LabelError::new(key, raw, "is not a port from 1 to 65535"))
}

impl FrontSpec {
    /// The group's front; `None` when it declares none.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Option<Self>, LabelError> {
        let Some(listen) = port_of(labels, PORT)? else {
            for key in [TARGET, NETWORK, PROXY_PROTOCOL] {
                if let Some(v) = labels.get(key) {
                    return Err(LabelError::new(key, v, format!("needs {PORT}")));
                }
            }
            return Ok(None);
        };
        let target = port_of(labels, TARGET)?.unwrap_or(listen);
        let network = match labels.get(NETWORK) {
            Some(n) if crate::base::id::GroupName::parse(n).is_ok() => Some(n.clone()),
            Some(n) => return Err(LabelError::new(NETWORK, n, "is not a network name")),
            None => None,
        };
        let proxy_protocol = flag(labels, PROXY_PROTOCOL, false)?;
        Ok(Some(FrontSpec { listen, target, network, proxy_protocol }))
    }
}

/// `serve --front-ports`: the ports labels may claim, `7000-7999` or one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port, included.
    pub last: u16,
}

impl PortRange {
    /// `FIRST-LAST` or `PORT`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (port(a), port(b)),
            None => (port(text), port(text)),
        };
        match (first, last) {
            (Some(first), Some(last)) if first <= last => Ok(Self { first, last }),
            _ => Err(format!("{text:?} is not a port range like 7000-7999 (ports 1 to 65535, first ≤ last)")),
        }
    }

    /// Whether the range holds `port`.
    pub fn holds(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a group's claim of a front port is void: outside `range` (or no
/// range at all), or the same port claimed by another group.
pub fn void_claims(claims: &[(&str, u16)], range: Option<PortRange>) -> HashMap<String, String> {
    let mut claimants: HashMap<u16, Vec<&str>> = HashMap::new();
    for (group, port) in claims {
        claimants.entry(*port).or_default().push(group);
    }
    let mut void = HashMap::new();
    for (group, port) in claims {
        let reason = match range {
            None => {
                Some(format!("label {PORT}={port}: this replicator opens no front (serve --front-ports is not set)"))
            }
            Some(r) if !r.holds(*port) => {
                Some(format!("label {PORT}={port} is outside the ports fronts may claim ({r}, serve --front-ports)"))
            }
            _ => {
                let mut others: Vec<&str> = claimants[port].iter().copied().filter(|g| g != group).collect();
                others.sort_unstable();
                (!others.is_empty())
                    .then(|| format!("label {PORT}={port} is claimed by another group too ({})", others.join(", ")))
            }
        };
        if let Some(reason) = reason {
            void.insert((*group).to_owned(), reason);
        }
    }
    void
}

/// The PROXY protocol v2 header for a TCP connection from `client` to `server`.
pub fn proxy_v2_header(client: std::net::SocketAddr, server: std::net::SocketAddr) -> Vec<u8> {
    use std::net::SocketAddr::{V4, V6};
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x21); // version 2, PROXY command
    match (client, server) {
        (V4(c), V4(s)) => {
            header.push(0x11); // TCP over IPv4
            header.extend_from_slice(&12u16.to_be_bytes());
            header.extend_from_slice(&c.ip().octets());
            header.extend_from_slice(&s.ip().octets());
            header.extend_from_slice(&c.port().to_be_bytes());
            header.extend_from_slice(&s.port().to_be_bytes());
        }
        (c, s) => {
            let v6 = |a: std::net::SocketAddr| match a {
                V4(a) => a.ip().to_ipv6_mapped(),
                V6(a) => *a.ip(),
            };
            header.push(0x21); // TCP over IPv6
            header.extend_from_slice(&36u16.to_be_bytes());
            header.extend_from_slice(&v6(c).octets());
            header.extend_from_slice(&v6(s).octets());
            header.extend_from_slice(&c.port().to_be_bytes());
            header.extend_from_slice(&s.port().to_be_bytes());
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_front_names_its_port_and_the_members_port_defaults_to_it() {
        let spec = FrontSpec::from_labels(&labels(&[(PORT, "7001")])).unwrap().unwrap();
        assert_eq!((spec.listen, spec.target, spec.network, spec.proxy_protocol), (7001, 7001, None, false));
        let spec = FrontSpec::from_labels(&labels(&[
            (PORT, "7001"),
            (TARGET, "6379"),
            (NETWORK, "cache"),
            (PROXY_PROTOCOL, "true"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((spec.target, spec.network.as_deref(), spec.proxy_protocol), (6379, Some("cache"), true));
        assert_eq!(FrontSpec::from_labels(&labels(&[])), Ok(None));
    }

    #[test]
    fn a_malformed_front_names_its_label() {
        for (pairs, says) in [
            (vec![(PORT, "0")], PORT),
            (vec![(PORT, "70000")], PORT),
            (vec![(PORT, "7001"), (TARGET, "x")], TARGET),
            (vec![(PORT, "7001"), (NETWORK, "a b")], NETWORK),
            (vec![(PORT, "7001"), (PROXY_PROTOCOL, "maybe")], PROXY_PROTOCOL),
            (vec![(TARGET, "6379")], "needs replicator.front.port"),
        ] {
            let e = FrontSpec::from_labels(&labels(&pairs)).unwrap_err().to_string();
            assert!(e.contains(says), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn port_ranges_are_first_to_last_or_one_port() {
        assert_eq!(PortRange::parse("7000-7999"), Ok(PortRange { first: 7000, last: 7999 }));
        assert_eq!(PortRange::parse("7000"), Ok(PortRange { first: 7000, last: 7000 }));
        for bad in ["", "0-10", "10-5", "a-b", "1-70000"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_claim_outside_the_range_or_shared_is_void_and_says_why() {
        let range = PortRange::parse("7000-7010").ok();
        let void = void_claims(&[("a", 7001), ("b", 7001), ("c", 8000), ("d", 7002)], range);
        assert!(void["a"].contains("another group too (b)"));
        assert!(void["b"].contains("another group too (a)"));
        assert!(void["c"].contains("outside") && void["c"].contains("7000-7010"));
        assert!(!void.contains_key("d"));
        assert!(void_claims(&[("d", 7002)], None)["d"].contains("--front-ports is not set"));
    }

    #[test]
    fn the_proxy_header_carries_both_addresses() {
        let h = proxy_v2_header("10.0.0.1:5000".parse().unwrap(), "10.0.0.2:7001".parse().unwrap());
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[10, 0, 0, 1]);
        assert_eq!(&h[24..26], &5000u16.to_be_bytes());
        assert_eq!(h.len(), 28);
        let h6 = proxy_v2_header("[::1]:5000".parse().unwrap(), "10.0.0.2:7001".parse().unwrap());
        assert_eq!((h6[13], h6.len()), (0x21, 52));
    }
}
