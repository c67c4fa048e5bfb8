//! Load-balancer upstreams, pure: a group's running members and their
//! addresses in, an nginx `upstream` block or a JSON document out.

use serde::Serialize;

/// One member a balancer should send traffic to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    pub id: String,
    pub name: String,
    /// `host:port`.
    pub address: String,
}

/// Output formats of `replicator upstreams`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Nginx,
    Json,
}

/// nginx names upstreams with what a host name allows.
pub fn upstream_name(group: &str) -> String {
    group.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect()
}

pub fn render(format: Format, group: &str, backends: &[Backend]) -> String {
    match format {
        Format::Nginx => nginx(group, backends),
        Format::Json => {
            let doc = serde_json::json!({ "group": group, "servers": backends });
            format!("{}\n", serde_json::to_string_pretty(&doc).expect("plain data serializes"))
        }
    }
}

fn nginx(group: &str, backends: &[Backend]) -> String {
    let mut text = format!(
        "# written by replicator upstreams for group {group}\nupstream {} {{\n    least_conn;\n",
        upstream_name(group)
    );
    for b in backends {
        text.push_str(&format!("    server {};  # {}\n", b.address, b.name));
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
    fn an_empty_group_still_makes_a_valid_block() {
        assert!(render(Format::Nginx, "web", &[]).contains("server 127.0.0.1:9 down;"));
    }

    #[test]
    fn json_for_other_balancers() {
        let v: serde_json::Value = serde_json::from_str(&render(Format::Json, "web", &[backend(2)])).unwrap();
        assert_eq!(v["servers"][0]["address"], "172.18.0.2:80");
        assert_eq!(v["group"], "web");
    }
}
