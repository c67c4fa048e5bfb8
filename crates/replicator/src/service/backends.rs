//! The addresses of a group's running members, for load balancers.

use super::Replicator;
use crate::error::Result;
use crate::model::{ContainerDetails, RunState};
use crate::upstreams::Backend;

impl Replicator {
    /// Running members as `address:port`: their address on `network`, or
    /// the host port they publish for `port` when no network is given.
    pub async fn backends(&self, group: &str, port: u16, network: Option<&str>) -> Result<Vec<Backend>> {
        let view = self.group(group).await?;
        let mut backends = Vec::new();
        for member in view.members.iter().filter(|m| m.state == RunState::Running) {
            let details = match self.engine().inspect_container(&member.id).await {
                Ok(d) => d,
                Err(crate::engine::EngineError::NotFound(_)) => continue, // removed meanwhile
                Err(e) => return Err(e.into()),
            };
            if let Some(address) = address_of(&details, port, network) {
                backends.push(Backend { id: details.id.clone(), name: details.name.clone(), address });
            }
        }
        Ok(backends)
    }
}

fn address_of(c: &ContainerDetails, port: u16, network: Option<&str>) -> Option<String> {
    match network {
        Some(net) => {
            let ip = &c.endpoints.get(net)?.ip_address;
            (!ip.is_empty()).then(|| socket_address(ip, port))
        }
        None => {
            let wanted = format!("{port}/tcp");
            let (_, host_ip, host_port) = c.published.iter().find(|(p, _, _)| *p == wanted)?;
            let ip = if host_ip.is_empty() || host_ip == "0.0.0.0" || host_ip == "::" { "127.0.0.1" } else { host_ip };
            Some(socket_address(ip, *host_port))
        }
    }
}

/// `ip:port`, with an IPv6 address in brackets as balancers expect.
fn socket_address(ip: &str, port: u16) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{ip}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;

    fn published(ports: &[(&str, &str, u16)]) -> ContainerDetails {
        let published = ports.iter().map(|(p, ip, hp)| (p.to_string(), ip.to_string(), *hp)).collect();
        ContainerDetails { published, ..Default::default() }
    }

    #[test]
    fn a_network_address_and_the_members_port() {
        let mut c = ContainerDetails::default();
        let endpoint = Endpoint { ip_address: "172.18.0.5".into(), ..Default::default() };
        c.endpoints.insert("shop".into(), endpoint);
        assert_eq!(address_of(&c, 80, Some("shop")).as_deref(), Some("172.18.0.5:80"));
        assert_eq!(address_of(&c, 80, Some("other")), None);
    }

    #[test]
    fn the_published_tcp_port_on_its_host_address() {
        let c = published(&[("53/udp", "0.0.0.0", 1053), ("53/tcp", "0.0.0.0", 2053), ("80/tcp", "::1", 8080)]);
        assert_eq!(address_of(&c, 53, None).as_deref(), Some("127.0.0.1:2053"), "tcp, not udp");
        assert_eq!(address_of(&c, 80, None).as_deref(), Some("[::1]:8080"), "IPv6 in brackets");
        assert_eq!(address_of(&c, 443, None), None);
    }
}
