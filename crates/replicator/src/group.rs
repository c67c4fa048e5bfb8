//! Group rules, pure: which group a container belongs to, the group's bounds,
//! and the name of its next replica.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::labels;
use crate::model::ContainerDetails;

/// How a group's members are found and scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    /// Plain containers: the original plus everything labelled `replicator.group`.
    Containers,
    /// The containers of one docker-compose service.
    Compose,
    /// The tasks of one Swarm-mode service.
    Swarm,
}

/// Where a container stands: its group and the original it descends from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIdentity {
    pub name: String,
    pub kind: GroupKind,
    /// Full id of the original (the container itself unless it is a replica).
    pub original_id: String,
    /// Stem of replica names: the original's name.
    pub base_name: String,
}

/// Compose project and service of a compose-managed container.
pub fn compose_service(labels: &BTreeMap<String, String>) -> Option<(&str, &str)> {
    let project = labels.get(labels::COMPOSE_PROJECT)?;
    let service = labels.get(labels::COMPOSE_SERVICE)?;
    Some((project.as_str(), service.as_str()))
}

pub fn identify(c: &ContainerDetails) -> GroupIdentity {
    let labels = c.labels();
    let kind = if labels.contains_key(labels::SWARM_SERVICE_ID) {
        GroupKind::Swarm
    } else if compose_service(&labels).is_some() {
        GroupKind::Compose
    } else {
        GroupKind::Containers
    };
    let source = labels.get(labels::SOURCE).filter(|s| !s.is_empty());
    let base_name = match source {
        Some(_) => strip_replica_suffix(&c.name).to_owned(),
        None => c.name.clone(),
    };
    let name = labels
        .get(labels::GROUP)
        .filter(|g| !g.is_empty())
        .cloned()
        .or_else(|| compose_service(&labels).map(|(p, s)| format!("{p}_{s}")))
        .unwrap_or_else(|| base_name.clone());
    GroupIdentity {
        name,
        kind,
        original_id: source.cloned().unwrap_or_else(|| c.id.clone()),
        base_name,
    }
}

/// `web-3` → `web`; names without a numeric suffix are returned unchanged.
fn strip_replica_suffix(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((stem, n))
            if !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            stem
        }
        _ => name,
    }
}

/// A group's size bounds, the original included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

/// Reads `replicator.min` / `replicator.max`; `default_max` when unset.
pub fn bounds(labels: &BTreeMap<String, String>, default_max: u32) -> Result<Bounds, String> {
    let read = |key: &str, default: u32| -> Result<u32, String> {
        match labels.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("label {key}={v:?} is not a positive integer")),
        }
    };
    let max = read(labels::MAX, default_max)?;
    let min = read(labels::MIN, 1)?;
    if min > max {
        return Err(format!(
            "label {}={min} is above the group's maximum of {max}",
            labels::MIN
        ));
    }
    Ok(Bounds { min, max })
}

/// The first `<base>-<n>` (n ≥ 2) not in `taken`.
pub fn next_replica_name(base: &str, taken: &HashSet<String>) -> String {
    (2u64..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .expect("an unbounded range always has a free name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(name: &str, labels: serde_json::Value) -> ContainerDetails {
        ContainerDetails {
            id: format!("{name}-full-id"),
            name: name.into(),
            config: json!({ "Labels": labels }).as_object().unwrap().clone(),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_container_is_its_own_group() {
        let g = identify(&container("web", json!({})));
        assert_eq!(g.name, "web");
        assert_eq!(g.kind, GroupKind::Containers);
        assert_eq!(g.original_id, "web-full-id");
        assert_eq!(g.base_name, "web");
    }

    #[test]
    fn the_group_label_wins() {
        let g = identify(&container("web", json!({"replicator.group": "front"})));
        assert_eq!(g.name, "front");
        assert_eq!(g.base_name, "web");
    }

    #[test]
    fn a_replica_points_back_at_its_original() {
        let g = identify(&container(
            "web-3",
            json!({"replicator.group": "web", "replicator.source": "orig-id"}),
        ));
        assert_eq!(g.name, "web");
        assert_eq!(g.original_id, "orig-id");
        assert_eq!(g.base_name, "web");
    }

    #[test]
    fn compose_containers_group_by_project_and_service() {
        let g = identify(&container(
            "shop_web_1",
            json!({"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}),
        ));
        assert_eq!(g.name, "shop_web");
        assert_eq!(g.kind, GroupKind::Compose);
    }

    #[test]
    fn swarm_tasks_are_swarm_groups() {
        let g = identify(&container(
            "t.1.x",
            json!({"com.docker.swarm.service.id": "svc"}),
        ));
        assert_eq!(g.kind, GroupKind::Swarm);
    }

    #[test]
    fn suffix_stripping_only_removes_numbers() {
        assert_eq!(strip_replica_suffix("web-12"), "web");
        assert_eq!(strip_replica_suffix("my-web"), "my-web");
        assert_eq!(strip_replica_suffix("web-"), "web-");
        assert_eq!(strip_replica_suffix("-3"), "-3");
    }

    #[test]
    fn bounds_default_and_labels() {
        let none = BTreeMap::new();
        assert_eq!(bounds(&none, 10), Ok(Bounds { min: 1, max: 10 }));
        let set: BTreeMap<_, _> = [
            ("replicator.max".into(), "3".into()),
            ("replicator.min".into(), "2".into()),
        ]
        .into();
        assert_eq!(bounds(&set, 10), Ok(Bounds { min: 2, max: 3 }));
    }

    #[test]
    fn malformed_bounds_are_refused_with_the_label_named() {
        for (k, v) in [
            ("replicator.max", "0"),
            ("replicator.max", "lots"),
            ("replicator.min", "-1"),
        ] {
            let l: BTreeMap<_, _> = [(k.to_string(), v.to_string())].into();
            assert!(bounds(&l, 10).unwrap_err().contains(k));
        }
        let inverted: BTreeMap<_, _> = [
            ("replicator.max".into(), "2".into()),
            ("replicator.min".into(), "3".into()),
        ]
        .into();
        assert!(bounds(&inverted, 10).is_err());
    }

    #[test]
    fn next_name_fills_the_first_gap() {
        let taken: HashSet<String> = ["web-2".into(), "web-4".into()].into();
        assert_eq!(next_replica_name("web", &taken), "web-3");
        assert_eq!(next_replica_name("api", &taken), "api-2");
    }
}
