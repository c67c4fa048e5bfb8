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
            (!ip.is_empty()).then(|| format!("{ip}:{port}"))
        }
        None => {
            let (_, host_ip, host_port) =
                c.published.iter().find(|(p, _, _)| p.split('/').next() == Some(port.to_string().as_str()))?;
            let ip = if host_ip.is_empty() || host_ip == "0.0.0.0" || host_ip == "::" { "127.0.0.1" } else { host_ip };
            Some(format!("{ip}:{host_port}"))
        }
    }
}
