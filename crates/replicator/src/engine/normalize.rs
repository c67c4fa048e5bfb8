//! What an engine reports, made into what the same engine accepts back,
//! before the planner sees it: the one place for engine dialects. Podman's
//! Docker-compatible API names ulimits `RLIMIT_NOFILE` in an inspect, a name
//! its own create refuses (Docker names them `nofile`); and it reports its
//! default network as mode `bridge` although the network is named `podman`
//! and no network is named `bridge`.

use serde_json::Value;

use crate::model::ContainerDetails;

/// Rewrites the dialects of `details` in place.
pub fn normalize(details: &mut ContainerDetails) {
    default_network(details);
    if let Some(Value::Array(ulimits)) = details.host_config.get_mut("Ulimits") {
        for ulimit in ulimits.iter_mut() {
            if let Some(Value::String(name)) = ulimit.get_mut("Name") {
                *name = ulimit_name(name);
            }
        }
    }
}

/// Mode `bridge` with no network of that name: the one network it is on is
/// what the engine means by its default (Podman's `podman`).
fn default_network(details: &mut ContainerDetails) {
    let mode = details.host_config.get("NetworkMode").and_then(Value::as_str);
    if mode != Some("bridge") || details.endpoints.contains_key("bridge") || details.endpoints.len() != 1 {
        return;
    }
    if let Some(name) = details.endpoints.keys().next().cloned() {
        details.host_config.insert("NetworkMode".into(), Value::String(name));
    }
}

/// An event's action in Docker's words: Podman says `remove` where Docker
/// says `destroy` (Docker never says `remove` of a container).
pub fn event_action(action: &str) -> &str {
    match action {
        "remove" => "destroy",
        other => other,
    }
}

/// `RLIMIT_NOFILE` → `nofile`; Docker's names pass unchanged.
fn ulimit_name(name: &str) -> String {
    match name.strip_prefix("RLIMIT_") {
        Some(rest) => rest.to_ascii_lowercase(),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::docker::details_from;

    fn fixture(engine: &str) -> ContainerDetails {
        let path = format!("{}/tests/fixtures/{engine}/inspect.json", env!("CARGO_MANIFEST_DIR"));
        details_from(&serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
    }

    fn ulimit_names(d: &ContainerDetails) -> Vec<String> {
        d.host_config["Ulimits"].as_array().unwrap().iter().map(|u| u["Name"].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn podman_ulimit_names_become_the_ones_its_create_accepts() {
        let mut podman = fixture("podman-4.3");
        assert_eq!(ulimit_names(&podman), ["RLIMIT_NOFILE", "RLIMIT_NPROC"], "as recorded");
        normalize(&mut podman);
        assert_eq!(ulimit_names(&podman), ["nofile", "nproc"]);
        assert_eq!(podman.host_config["Ulimits"][0]["Soft"], 1024, "values untouched");
    }

    #[test]
    fn podmans_default_network_is_named_as_it_is_created() {
        let mut podman = fixture("podman-4.3");
        assert_eq!(podman.host_config["NetworkMode"], "bridge", "as recorded");
        normalize(&mut podman);
        assert_eq!(podman.host_config["NetworkMode"], "podman");
    }

    #[test]
    fn docker_reports_pass_unchanged() {
        let docker = fixture("docker-20.10");
        let mut normalized = docker.clone();
        normalize(&mut normalized);
        assert_eq!(normalized.host_config, docker.host_config);
        assert_eq!(normalized.config, docker.config);
    }
}
