//! Load-balancer upstreams, pure: members' addresses in, an nginx
//! `upstream` block, an haproxy backend, a Caddy snippet or a JSON document
//! out. Which members count is the group's business ([`crate::inventory::Group::backends`]).

use serde::Serialize;

use std::collections::BTreeMap;

use crate::model::PublishedPort;

/// One member a balancer should send traffic to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// Container id.
    pub id: String,
    /// Container name, for people reading the file.
    pub name: String,
    /// `host:port`.
    pub address: String,
}

/// Output formats of `replicator upstreams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An nginx `upstream` block.
    Nginx,
    /// `{"group", "servers": [{"id", "name", "address"}]}`.
    Json,
    /// An haproxy `backend` section (loaded with a second `-f`, reloaded with `-sf`).
    Haproxy,
    /// A Caddyfile snippet `(<group>_upstream)` holding a `reverse_proxy` (`import` it in a site block).
    Caddy,
}

/// One member's backend, if it has an address for `port`: its address on
/// `network`, or the host port it publishes for `port` when no network is given.
pub fn backend(
    id: &str,
    name: &str,
    networks: &BTreeMap<String, String>,
    published: &[PublishedPort],
    port: u16,
    network: Option<&str>,
) -> Option<Backend> {
    let address = match network {
        Some(net) => {
            let ip = networks.get(net)?;
            (!ip.is_empty()).then(|| socket_address(ip, port))?
        }
        None => {
            let p = published.iter().find(|p| p.container_port == port && p.protocol == "tcp")?;
            let ip = match p.host_ip.as_str() {
                "" | "0.0.0.0" | "::" => "127.0.0.1",
                ip => ip,
            };
            socket_address(ip, p.host_port)
        }
    };
    Some(Backend { id: id.to_owned(), name: name.to_owned(), address })
}

/// Where replicator itself runs, for the connections it makes to members
/// (the TCP front, the wake listener): on the host, a member's published
/// port on 127.0.0.1 is the member; in a container, 127.0.0.1 is
/// replicator's own loopback, and only a network it shares with the member
/// reaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Vantage {
    /// On the host: its loopback is the host's.
    #[default]
    Host,
    /// In a container attached to these networks.
    Container {
        /// The networks replicator's container is on.
        networks: Vec<String>,
    },
}

impl Vantage {
    /// Replicator in a container attached to `networks`; on the host network
    /// its loopback is the host's, so it reaches members as from the host.
    pub fn container(networks: Vec<String>) -> Self {
        if networks.iter().any(|n| n == "host") {
            Vantage::Host
        } else {
            Vantage::Container { networks }
        }
    }
}

/// A member as replicator itself reaches it from `vantage`, for `port`:
/// on `network` when the group names one; else, on the host, the host port
/// it publishes; in a container, its address on the first network it
/// shares with replicator. Why it cannot be reached otherwise.
pub fn reach(
    (id, name): (&str, &str),
    networks: &BTreeMap<String, String>,
    published: &[PublishedPort],
    port: u16,
    network: Option<&str>,
    vantage: &Vantage,
) -> Result<Backend, String> {
    let shared = match (network, vantage) {
        (Some(_), _) | (None, Vantage::Host) => {
            return backend(id, name, networks, published, port, network).ok_or_else(|| match network {
                Some(net) => format!("member {} has no address on network {net}", name),
                None => format!("member {} publishes no host port for {port}/tcp: name a network for it", name),
            })
        }
        (None, Vantage::Container { networks: own }) => {
            own.iter().find(|n| networks.get(*n).is_some_and(|ip| !ip.is_empty()))
        }
    };
    match shared {
        Some(net) => backend(id, name, networks, published, port, Some(net)).ok_or_else(|| format!("member {} has no address on network {net}", name)),
        None => Err(format!(
            "replicator runs in a container that shares no network with member {}: its published port on 127.0.0.1 would be replicator's own loopback; connect replicator to one of the member's networks, or name one with the group's network label",
            name
        )),
    }
}

/// `ip:port`, with an IPv6 address in brackets as balancers expect.
fn socket_address(ip: &str, port: u16) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{ip}:{port}"),
    }
}

/// nginx names upstreams with what a host name allows.
pub fn upstream_name(group: &str) -> String {
    group.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect()
}

/// The file for `format`.
pub fn render(format: Format, group: &str, backends: &[Backend]) -> String {
    match format {
        Format::Nginx => nginx(group, backends),
        Format::Haproxy => haproxy(group, backends),
        Format::Caddy => caddy(group, backends),
        Format::Json => {
            let doc = serde_json::json!({ "group": group, "servers": backends });
            format!("{}\n", serde_json::to_string_pretty(&doc).expect("plain data serializes"))
        }
    }
}

/// A backend with no server answers 503 by itself: no placeholder needed.
fn haproxy(group: &str, backends: &[Backend]) -> String {
    let mut text = format!(
        "# written by replicator upstreams for group {}\nbackend {}\n    balance leastconn\n",
        comment(group),
        upstream_name(group)
    );
    for (i, b) in backends.iter().enumerate() {
        text.push_str(&format!("    server m{i} {}  # {}\n", b.address, comment(&b.name)));
    }
    text
}

/// Text for a comment line of any format: printable ASCII only, so a name
/// that arrived over the wire cannot end the comment and write configuration.
fn comment(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

/// Caddy refuses a `reverse_proxy` without upstreams: with no member the
/// snippet answers 502 itself. A member removed a moment before the reload
/// refuses connections: Caddy tries another for up to 2 s.
fn caddy(group: &str, backends: &[Backend]) -> String {
    let mut text = format!(
        "# written by replicator upstreams for group {}\n({}_upstream) {{\n",
        comment(group),
        upstream_name(group)
    );
    if backends.is_empty() {
        text.push_str("    respond \"no running member\" 502\n");
    } else {
        let addresses: Vec<&str> = backends.iter().map(|b| b.address.as_str()).collect();
        text.push_str(&format!(
            "    reverse_proxy {} {{\n        lb_policy least_conn\n        lb_try_duration 2s\n    }}\n",
            addresses.join(" ")
        ));
    }
    text.push_str("}\n");
    text
}

fn nginx(group: &str, backends: &[Backend]) -> String {
    let mut text = format!(
        "# written by replicator upstreams for group {}\nupstream {} {{\n    least_conn;\n",
        comment(group),
        upstream_name(group)
    );
    for b in backends {
        text.push_str(&format!("    server {};  # {}\n", b.address, comment(&b.name)));
    }
    if backends.is_empty() {
        // nginx refuses an empty upstream; this one answers 502 until a member runs.
        text.push_str("    server 127.0.0.1:9 down;  # no running member\n");
    }
    text.push_str("}\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicator_in_a_container_reaches_members_on_a_shared_network_never_on_its_own_loopback() {
        let member = ("m1", "web-2");
        let networks: BTreeMap<String, String> =
            [("front".into(), "10.1.0.5".into()), ("back".into(), "10.2.0.5".into())].into();
        let published =
            [PublishedPort { container_port: 80, host_port: 32768, host_ip: "0.0.0.0".into(), protocol: "tcp".into() }];
        let on_host = reach(member, &networks, &published, 80, None, &Vantage::Host).unwrap();
        assert_eq!(on_host.address, "127.0.0.1:32768", "on the host, the published port");
        let inside = Vantage::Container { networks: vec!["other".into(), "back".into()] };
        assert_eq!(
            reach(member, &networks, &published, 80, None, &inside).unwrap().address,
            "10.2.0.5:80",
            "the shared network"
        );
        let alone = Vantage::Container { networks: vec!["other".into()] };
        let refused = reach(member, &networks, &published, 80, None, &alone).unwrap_err();
        assert!(refused.contains("own loopback") && refused.contains("web-2"), "{refused}");
        assert_eq!(Vantage::container(vec!["host".into()]), Vantage::Host, "host networking: the host's loopback");
        let named = reach(member, &networks, &published, 80, Some("front"), &alone).unwrap();
        assert_eq!(named.address, "10.1.0.5:80", "a network the group names is used as named");
    }

    /// A member's networks and published ports.
    type Addresses = (BTreeMap<String, String>, Vec<PublishedPort>);

    fn address_of(m: &Addresses, port: u16, network: Option<&str>) -> Option<String> {
        super::backend("id", "web-2", &m.0, &m.1, port, network).map(|b| b.address)
    }

    fn member(networks: &[(&str, &str)], published: &[(u16, &str, &str, u16)]) -> Addresses {
        (
            networks.iter().map(|(n, ip)| (n.to_string(), ip.to_string())).collect(),
            published
                .iter()
                .map(|(c, proto, ip, h)| PublishedPort {
                    container_port: *c,
                    protocol: proto.to_string(),
                    host_ip: ip.to_string(),
                    host_port: *h,
                })
                .collect(),
        )
    }

    #[test]
    fn a_network_address_and_the_members_port() {
        let m = member(&[("shop", "172.18.0.5")], &[]);
        assert_eq!(address_of(&m, 80, Some("shop")).as_deref(), Some("172.18.0.5:80"));
        assert_eq!(address_of(&m, 80, Some("other")), None);
    }

    #[test]
    fn the_published_tcp_port_on_its_host_address() {
        let m = member(&[], &[(53, "udp", "0.0.0.0", 1053), (53, "tcp", "0.0.0.0", 2053), (80, "tcp", "::1", 8080)]);
        assert_eq!(address_of(&m, 53, None).as_deref(), Some("127.0.0.1:2053"), "tcp, not udp");
        assert_eq!(address_of(&m, 80, None).as_deref(), Some("[::1]:8080"), "IPv6 in brackets");
        assert_eq!(address_of(&m, 443, None), None);
    }

    fn backend(n: u8) -> Backend {
        Backend { id: format!("id{n}"), name: format!("web-{n}"), address: format!("172.18.0.{n}:80") }
    }

    #[test]
    fn nginx_block_lists_every_member() {
        assert_eq!(
            render(Format::Nginx, "shop web", &[backend(2), backend(3)]),
            "# written by replicator upstreams for group shop web\nupstream shop_web {\n    least_conn;\n    \
             server 172.18.0.2:80;  # web-2\n    server 172.18.0.3:80;  # web-3\n}\n"
        );
    }

    #[test]
    fn a_name_cannot_end_its_comment_in_any_format() {
        let sly = Backend { id: "x".into(), name: "web-2\nserver 6.6.6.6:80;".into(), address: "172.18.0.2:80".into() };
        for format in [Format::Nginx, Format::Haproxy, Format::Caddy] {
            let text = render(format, "web\nbad", std::slice::from_ref(&sly));
            assert!(!text.lines().any(|l| l.trim_start().starts_with("server 6.6.6.6")), "{text}");
            assert!(!text.lines().any(|l| l == "bad"), "{text}");
        }
    }

    #[test]
    fn an_empty_group_still_makes_a_valid_block() {
        assert!(render(Format::Nginx, "web", &[]).contains("server 127.0.0.1:9 down;"));
    }

    #[test]
    fn haproxy_gets_a_backend_and_caddy_a_snippet_even_when_empty() {
        let h = render(Format::Haproxy, "web", &[backend(2), backend(3)]);
        assert!(
            h.contains("backend web\n")
                && h.contains("server m0 172.18.0.2:80")
                && h.contains("server m1 172.18.0.3:80"),
            "{h}"
        );
        assert!(!render(Format::Haproxy, "web", &[]).contains("server "), "an empty backend answers 503 itself");
        let c = render(Format::Caddy, "web", &[backend(2), backend(3)]);
        assert!(c.contains("(web_upstream) {") && c.contains("reverse_proxy 172.18.0.2:80 172.18.0.3:80 {"), "{c}");
        assert!(render(Format::Caddy, "web", &[]).contains("respond \"no running member\" 502"));
    }

    #[test]
    fn json_for_other_balancers() {
        let v: serde_json::Value = serde_json::from_str(&render(Format::Json, "web", &[backend(2)])).unwrap();
        assert_eq!(v["servers"][0]["address"], "172.18.0.2:80");
        assert_eq!(v["group"], "web");
    }
}
