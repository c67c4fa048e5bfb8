//! The clone planner, pure: an inspected container in, the create request and
//! the networks to connect before start out.
//!
//! Each rule below answers one of the Engine API's cloning pitfalls; its unit
//! test sits at the bottom of this file.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::model::{ApiObject, ContainerDetails, CreateRequest, Endpoint, NetworkAttachment};
use crate::rules::labels;

/// What the caller decided about the clone; the rest comes from the source.
#[derive(Debug, Clone)]
pub struct CloneSpec<'a> {
    /// The clone's container name, already chosen free.
    pub name: &'a str,
    /// Written to the clone's `replicator.group` label.
    pub group: &'a str,
    /// Written to the clone's `replicator.source` label: the group's original, even when cloning a replica.
    pub original_id: &'a str,
    /// The image id the source's `Config.Image` resolves to now; `None` if the tag is gone.
    pub tag_image_id: Option<&'a str>,
    /// Keep the source's fixed host ports, bindable only where they are free; else the clone gets ephemeral ones.
    pub keep_host_ports: bool,
    /// Labels that override the source's (compose numbering, for instance).
    pub extra_labels: BTreeMap<String, String>,
}

/// How to build one clone.
#[derive(Debug, Clone, PartialEq)]
pub struct ClonePlan {
    /// The create call, with the primary network in its `NetworkingConfig`.
    pub create: CreateRequest,
    /// Networks beyond the primary one: the engine attaches only one at create time.
    pub connect: Vec<NetworkAttachment>,
    /// Differences from the source a user should be told about.
    pub notes: Vec<String>,
}

/// Config keys that identify the source itself, or attach a terminal nobody holds.
const CONFIG_DROPPED: &[&str] = &["Hostname", "MacAddress", "AttachStdin", "AttachStdout", "AttachStderr"];
/// HostConfig keys that would make the clone's create fail or collide with the source.
const HOST_CONFIG_DROPPED: &[&str] = &["ContainerIDFile"];

/// Plans a clone of `source`; the caller creates it, connects `connect`, then starts it.
pub fn plan_clone(source: &ContainerDetails, spec: &CloneSpec<'_>) -> ClonePlan {
    let mut notes = Vec::new();
    let mut body = clone_config(source, spec, &mut notes);
    let host_config = clone_host_config(&source.host_config, spec.keep_host_ports, &mut notes);
    let network_mode = host_config.get("NetworkMode").and_then(Value::as_str).unwrap_or("default").to_owned();
    body.insert("HostConfig".into(), Value::Object(host_config));

    let (primary, connect) = split_networks(source, &network_mode);
    if let Some(primary) = primary {
        let endpoint = endpoint_config(&primary);
        body.insert("NetworkingConfig".into(), json!({ "EndpointsConfig": { primary.network.clone(): endpoint } }));
    }
    ClonePlan { create: CreateRequest { name: spec.name.to_owned(), body }, connect, notes }
}

fn clone_config(source: &ContainerDetails, spec: &CloneSpec<'_>, notes: &mut Vec<String>) -> ApiObject {
    let mut config = source.config.clone();
    for key in CONFIG_DROPPED {
        config.remove(*key);
    }
    config.insert("Image".into(), Value::String(image_for(source, spec.tag_image_id)));
    let mut labels = source.labels();
    labels.insert(labels::SOURCE.into(), spec.original_id.into());
    labels.insert(labels::GROUP.into(), spec.group.into());
    labels.extend(spec.extra_labels.clone());
    let exposed: Vec<String> =
        config.get("ExposedPorts").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let (traefik, note) = traefik_service(&source.labels(), &exposed, &source.name);
    labels.extend(traefik);
    notes.extend(note);
    config.insert("Labels".into(), json!(labels));
    config
}

/// Traefik's Docker provider names a container's implicit service after the
/// container: a clone of a plain container whose routers name no service
/// would define the same routers over a service of its own name, and
/// Traefik refuses routers defined differently by two containers. The clone
/// gets the original's implicit service spelled out instead (routers pointing
/// at it, its port), which Traefik merges with the original's into one
/// service with both servers. Compose containers and containers that name
/// their services need nothing.
pub fn traefik_service(
    source: &BTreeMap<String, String>,
    exposed: &[String],
    original_name: &str,
) -> (BTreeMap<String, String>, Option<String>) {
    let mut added = BTreeMap::new();
    let names_services = source.keys().any(|k| k.starts_with("traefik.http.services."));
    let compose = source.contains_key(labels::COMPOSE_SERVICE);
    let mut routers: Vec<&str> =
        source.keys().filter_map(|k| k.strip_prefix("traefik.http.routers.")?.split('.').next()).collect();
    routers.dedup();
    let unnamed: Vec<&str> =
        routers.into_iter().filter(|r| !source.contains_key(&format!("traefik.http.routers.{r}.service"))).collect();
    if names_services || compose || unnamed.is_empty() {
        return (added, None);
    }
    // Traefik's provider.Normalize: words of letters and digits joined by '-'.
    let service =
        original_name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join("-");
    let ports: Vec<&str> = exposed.iter().filter_map(|p| p.strip_suffix("/tcp")).collect();
    let [port] = ports.as_slice() else {
        let note = format!(
            "the original's Traefik routers name no service and it exposes {} TCP ports: add \
             traefik.http.services.{service}.loadbalancer.server.port to it so that Traefik can serve its clones",
            ports.len()
        );
        return (added, Some(note));
    };
    for router in unnamed {
        added.insert(format!("traefik.http.routers.{router}.service"), service.clone());
    }
    added.insert(format!("traefik.http.services.{service}.loadbalancer.server.port"), (*port).to_owned());
    (added, None)
}

/// The tag keeps `docker ps` readable, but only while it still names the
/// exact image the source runs; otherwise the clone must run the same bits.
fn image_for(source: &ContainerDetails, tag_image_id: Option<&str>) -> String {
    let tag = source.config.get("Image").and_then(Value::as_str).unwrap_or_default();
    if tag.is_empty() {
        return source.image_id.clone();
    }
    if tag.starts_with("sha256:") || tag_image_id == Some(source.image_id.as_str()) {
        tag.to_owned()
    } else {
        source.image_id.clone()
    }
}

fn clone_host_config(source: &ApiObject, keep_host_ports: bool, notes: &mut Vec<String>) -> ApiObject {
    let mut hc = source.clone();
    for key in HOST_CONFIG_DROPPED {
        hc.remove(*key);
    }
    if !keep_host_ports {
        if let Some(Value::Object(bindings)) = hc.get_mut("PortBindings") {
            release_host_ports(bindings, notes);
        }
    }
    if let Some(Value::Array(links)) = hc.get_mut("Links") {
        for link in links.iter_mut() {
            if let Some(rewritten) = link.as_str().and_then(rewrite_link) {
                *link = Value::String(rewritten);
            }
        }
    }
    hc
}

/// A fixed host port can be bound once: blank it so the engine picks a free one.
fn release_host_ports(bindings: &mut ApiObject, notes: &mut Vec<String>) {
    for (port, list) in bindings.iter_mut() {
        let Value::Array(list) = list else { continue };
        for binding in list.iter_mut().filter_map(Value::as_object_mut) {
            let fixed = binding.get("HostPort").and_then(Value::as_str).unwrap_or_default().to_owned();
            if !fixed.is_empty() {
                notes.push(format!(
                    "port {port} is published on an ephemeral host port instead of {fixed} (serve --keep-host-ports keeps it)"
                ));
                binding.insert("HostPort".into(), Value::String(String::new()));
            }
        }
    }
}

/// Inspect reports links as `/target:/source/alias`; create wants `target:alias`.
fn rewrite_link(link: &str) -> Option<String> {
    let (target, alias_path) = link.split_once(':')?;
    let target = target.strip_prefix('/')?;
    let alias = alias_path.rsplit('/').next()?;
    Some(format!("{target}:{alias}"))
}

/// Modes in which the container has no endpoints of its own.
fn shares_a_network_stack(mode: &str) -> bool {
    matches!(mode, "host" | "none") || mode.starts_with("container:")
}

/// The create-time network and the ones to connect before start.
fn split_networks(source: &ContainerDetails, mode: &str) -> (Option<NetworkAttachment>, Vec<NetworkAttachment>) {
    if shares_a_network_stack(mode) {
        return (None, Vec::new());
    }
    let primary_name = if mode == "default" { "bridge" } else { mode };
    let is_primary = |name: &str, ep: &Endpoint| {
        name == primary_name || (!ep.network_id.is_empty() && ep.network_id.starts_with(primary_name))
    };
    let mut primary = None;
    let mut others = Vec::new();
    for (name, ep) in &source.endpoints {
        let attachment = attachment(source, name, ep);
        if primary.is_none() && is_primary(name, ep) {
            primary = Some(attachment);
        } else {
            others.push(attachment);
        }
    }
    let primary =
        primary.unwrap_or_else(|| NetworkAttachment { network: primary_name.to_owned(), ..Default::default() });
    (Some(primary), others)
}

/// The source's endpoint without what identifies the source on that network:
/// addresses, MAC, endpoint ids and the aliases the engine derived from it.
fn attachment(source: &ContainerDetails, network: &str, ep: &Endpoint) -> NetworkAttachment {
    let own_names = [source.id.as_str(), source.short_id(), source.name.as_str()];
    let aliases = if network == "bridge" {
        Vec::new() // the default bridge has no aliases
    } else {
        ep.aliases.iter().filter(|a| !own_names.contains(&a.as_str())).cloned().collect()
    };
    NetworkAttachment {
        network: network.to_owned(),
        aliases,
        links: ep.links.clone(),
        driver_opts: ep.driver_opts.clone(),
    }
}

fn endpoint_config(a: &NetworkAttachment) -> Value {
    let mut ep = ApiObject::new();
    if !a.aliases.is_empty() {
        ep.insert("Aliases".into(), json!(a.aliases));
    }
    if !a.links.is_empty() {
        ep.insert("Links".into(), json!(a.links));
    }
    if !a.driver_opts.is_empty() {
        ep.insert("DriverOpts".into(), json!(a.driver_opts));
    }
    Value::Object(ep)
}

/// Host settings a clone keeps exactly as its source has them (resources,
/// restart and log policy, mounts, capabilities, devices, security, the
/// network mode): the planner's tests and the fidelity test against the
/// engine both check each one.
pub const HOST_SETTINGS_KEPT: &[&str] = &[
    "Memory",
    "NanoCpus",
    "PidsLimit",
    "Ulimits",
    "RestartPolicy",
    "LogConfig",
    "Binds",
    "CapAdd",
    "CapDrop",
    "Devices",
    "SecurityOpt",
    "NetworkMode",
];

#[cfg(test)]
mod tests {

    fn traefik(labels: &[(&str, &str)], exposed: &[&str], name: &str) -> (BTreeMap<String, String>, Option<String>) {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let exposed: Vec<String> = exposed.iter().map(|p| p.to_string()).collect();
        super::traefik_service(&labels, &exposed, name)
    }

    #[test]
    fn a_plain_containers_unnamed_traefik_service_is_spelled_out_on_its_clones() {
        let routers = [("traefik.enable", "true"), ("traefik.http.routers.shop.rule", "Host(`shop`)")];
        let (added, note) = traefik(&routers, &["8080/tcp"], "my_shop.1");
        let expected: BTreeMap<String, String> = [
            ("traefik.http.routers.shop.service", "my-shop-1"),
            ("traefik.http.services.my-shop-1.loadbalancer.server.port", "8080"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!((added, note), (expected, None));
    }

    #[test]
    fn named_services_and_compose_containers_are_left_as_they_are() {
        let named = [
            ("traefik.http.routers.shop.rule", "Host(`shop`)"),
            ("traefik.http.services.shop.loadbalancer.server.port", "80"),
        ];
        assert!(traefik(&named, &["80/tcp"], "web").0.is_empty());
        let pointed =
            [("traefik.http.routers.shop.rule", "Host(`shop`)"), ("traefik.http.routers.shop.service", "api@file")];
        assert!(traefik(&pointed, &["80/tcp"], "web").0.is_empty());
        let compose = [("traefik.http.routers.shop.rule", "Host(`shop`)"), ("com.docker.compose.service", "web")];
        assert!(traefik(&compose, &["80/tcp"], "p_web_1").0.is_empty());
        assert!(traefik(&[("traefik.enable", "true")], &["80/tcp"], "web").0.is_empty(), "no router, nothing to fix");
    }

    #[test]
    fn without_one_exposed_port_the_clone_is_left_alone_with_a_note_naming_the_label_to_add() {
        let routers = [("traefik.http.routers.shop.rule", "Host(`shop`)")];
        let (added, note) = traefik(&routers, &["80/tcp", "443/tcp"], "web");
        assert!(added.is_empty());
        assert!(note.unwrap().contains("traefik.http.services.web.loadbalancer.server.port"));
    }

    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const IMAGE_ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn obj(v: Value) -> ApiObject {
        v.as_object().expect("object").clone()
    }

    fn source() -> ContainerDetails {
        ContainerDetails {
            id: ID.into(),
            name: "web".into(),
            image_id: IMAGE_ID.into(),
            config: obj(json!({
                "Hostname": "0123456789ab",
                "Domainname": "example.org",
                "User": "nobody",
                "Env": ["A=1", "PATH=/bin"],
                "Cmd": ["httpd", "-f"],
                "Entrypoint": ["/bin/sh", "-c"],
                "WorkingDir": "/srv",
                "Image": "shop/web:1",
                "Labels": {"app": "shop", "replicator.enable": "true"},
                "ExposedPorts": {"80/tcp": {}},
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
                "StopSignal": "SIGUSR1",
                "StopTimeout": 7,
                "MacAddress": "02:42:ac:11:00:02",
                "AttachStdout": true,
                "Volumes": {"/scratch": {}}
            })),
            host_config: obj(json!({
                "NetworkMode": "front",
                "Memory": 67108864,
                "NanoCpus": 500000000,
                "PidsLimit": 64,
                "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                "Binds": ["/srv/data:/data:ro", "named:/cache"],
                "CapAdd": ["NET_ADMIN"],
                "CapDrop": ["MKNOD"],
                "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}],
                "SecurityOpt": ["no-new-privileges"],
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "81/tcp": [{"HostIp": "", "HostPort": ""}]},
                "Links": ["/db:/web/database"],
                "ContainerIDFile": "/tmp/cid"
            })),
            endpoints: [
                (
                    "front".to_string(),
                    Endpoint {
                        network_id: "f1f1".into(),
                        aliases: vec!["www".into(), "0123456789ab".into(), "web".into()],
                        ip_address: "172.20.0.5".into(),
                        ..Default::default()
                    },
                ),
                (
                    "back".to_string(),
                    Endpoint {
                        network_id: "b2b2".into(),
                        aliases: vec!["web-back".into(), "0123456789ab".into()],
                        ..Default::default()
                    },
                ),
            ]
            .into(),
            ..Default::default()
        }
    }

    fn spec() -> CloneSpec<'static> {
        CloneSpec {
            name: "web-2",
            group: "web",
            original_id: ID,
            tag_image_id: Some(IMAGE_ID),
            keep_host_ports: false,
            extra_labels: BTreeMap::new(),
        }
    }

    fn plan() -> ClonePlan {
        plan_clone(&source(), &spec())
    }

    fn host_config(p: &ClonePlan) -> &ApiObject {
        p.create.body["HostConfig"].as_object().unwrap()
    }

    #[test]
    fn copies_the_runtime_config_verbatim() {
        let p = plan();
        let b = &p.create.body;
        for key in [
            "User",
            "Env",
            "Cmd",
            "Entrypoint",
            "WorkingDir",
            "ExposedPorts",
            "Healthcheck",
            "StopSignal",
            "StopTimeout",
            "Domainname",
            "Volumes",
        ] {
            assert_eq!(b[key], source().config[key], "{key}");
        }
        assert_eq!(p.create.name, "web-2");
    }

    #[test]
    fn copies_resources_and_host_settings() {
        let p = plan();
        let hc = host_config(&p);
        for key in HOST_SETTINGS_KEPT {
            assert_eq!(hc[*key], source().host_config[*key], "{key}");
        }
    }

    #[test]
    fn drops_what_identifies_the_source() {
        let p = plan();
        for key in ["Hostname", "MacAddress", "AttachStdout"] {
            assert!(!p.create.body.contains_key(key), "{key} copied");
        }
        assert!(!host_config(&p).contains_key("ContainerIDFile"));
    }

    #[test]
    fn labels_link_the_clone_to_its_group_and_original() {
        let p = plan();
        let labels = &p.create.body["Labels"];
        assert_eq!(labels["app"], "shop");
        assert_eq!(labels["replicator.enable"], "true");
        assert_eq!(labels["replicator.source"], ID);
        assert_eq!(labels["replicator.group"], "web");
    }

    #[test]
    fn extra_labels_override_the_source() {
        let mut s = spec();
        s.extra_labels.insert("app".into(), "other".into());
        assert_eq!(plan_clone(&source(), &s).create.body["Labels"]["app"], "other");
    }

    #[test]
    fn fixed_host_ports_become_ephemeral_and_say_so() {
        let p = plan();
        let bindings = &host_config(&p)["PortBindings"];
        assert_eq!(bindings["80/tcp"][0]["HostPort"], "");
        assert_eq!(bindings["80/tcp"][0]["HostIp"], "127.0.0.1");
        assert_eq!(p.notes.len(), 1, "only the fixed port is reported: {:?}", p.notes);
        assert!(p.notes[0].contains("80/tcp") && p.notes[0].contains("8080"));
    }

    #[test]
    fn keep_host_ports_keeps_them() {
        let mut s = spec();
        s.keep_host_ports = true;
        let p = plan_clone(&source(), &s);
        assert_eq!(host_config(&p)["PortBindings"]["80/tcp"][0]["HostPort"], "8080");
        assert!(p.notes.is_empty());
    }

    #[test]
    fn links_are_rewritten_for_create() {
        assert_eq!(host_config(&plan())["Links"], json!(["db:database"]));
        assert_eq!(rewrite_link("/a:/b/c"), Some("a:c".into()));
        assert_eq!(rewrite_link("a:c"), None);
    }

    #[test]
    fn the_primary_network_is_set_at_create_and_the_rest_connected_before_start() {
        let p = plan();
        let endpoints = p.create.body["NetworkingConfig"]["EndpointsConfig"].as_object().unwrap();
        assert_eq!(endpoints.len(), 1, "API 1.41 accepts one endpoint at create");
        assert_eq!(endpoints["front"], json!({"Aliases": ["www"]}));
        assert_eq!(
            p.connect,
            vec![NetworkAttachment { network: "back".into(), aliases: vec!["web-back".into()], ..Default::default() }]
        );
    }

    #[test]
    fn endpoints_never_carry_addresses() {
        let text = serde_json::to_string(&plan().create.body).unwrap();
        assert!(!text.contains("172.20.0.5") && !text.contains("IPAMConfig") && !text.contains("f1f1"));
    }

    #[test]
    fn default_network_mode_means_the_bridge_without_aliases() {
        let mut s = source();
        s.host_config.insert("NetworkMode".into(), json!("default"));
        s.endpoints = [("bridge".to_string(), Endpoint { aliases: vec!["x".into()], ..Default::default() })].into();
        let p = plan_clone(&s, &spec());
        assert_eq!(p.create.body["NetworkingConfig"]["EndpointsConfig"], json!({"bridge": {}}));
        assert!(p.connect.is_empty());
    }

    #[test]
    fn a_network_mode_given_by_id_matches_its_endpoint() {
        let mut s = source();
        s.host_config.insert("NetworkMode".into(), json!("b2b2"));
        let p = plan_clone(&s, &spec());
        assert!(p.create.body["NetworkingConfig"]["EndpointsConfig"].get("back").is_some());
        assert_eq!(p.connect.len(), 1);
        assert_eq!(p.connect[0].network, "front");
    }

    #[test]
    fn shared_network_stacks_get_no_endpoints() {
        for mode in ["host", "none", "container:abc"] {
            let mut s = source();
            s.host_config.insert("NetworkMode".into(), json!(mode));
            let p = plan_clone(&s, &spec());
            assert!(!p.create.body.contains_key("NetworkingConfig"), "{mode}");
            assert!(p.connect.is_empty(), "{mode}");
            assert_eq!(host_config(&p)["NetworkMode"], mode);
        }
    }

    #[test]
    fn the_tag_is_used_while_it_names_the_same_image() {
        assert_eq!(plan().create.body["Image"], "shop/web:1");
    }

    #[test]
    fn a_moved_or_missing_tag_falls_back_to_the_exact_image() {
        for tag_now in [Some("sha256:2222"), None] {
            let mut s = spec();
            s.tag_image_id = tag_now;
            assert_eq!(plan_clone(&source(), &s).create.body["Image"], IMAGE_ID);
        }
    }

    #[test]
    fn an_image_given_by_id_is_kept() {
        let mut src = source();
        src.config.insert("Image".into(), json!("sha256:abcd"));
        let mut s = spec();
        s.tag_image_id = None;
        assert_eq!(plan_clone(&src, &s).create.body["Image"], "sha256:abcd");
    }

    #[test]
    fn unknown_fields_pass_through() {
        let mut src = source();
        src.host_config.insert("FutureKnob".into(), json!(42));
        src.config.insert("FutureField".into(), json!("x"));
        let p = plan_clone(&src, &spec());
        assert_eq!(host_config(&p)["FutureKnob"], 42);
        assert_eq!(p.create.body["FutureField"], "x");
    }
}
