//! Group rules, pure: which group a container belongs to, the group's bounds,
//! and the name of its next replica. Every reader of these labels (listing,
//! replication, scaling, autoscaling) goes through the functions here.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::rules::labels;

/// How a group's members are found and scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// The group's name, as the API addresses it.
    pub name: String,
    /// How its members are found and scaled.
    pub kind: GroupKind,
    /// Full id of the original (the container itself unless it is a replica).
    pub original_id: String,
    /// How the group's next replica is named.
    pub naming: Naming,
}

/// Compose project and service of a compose-managed container.
pub fn compose_service(labels: &BTreeMap<String, String>) -> Option<(&str, &str)> {
    let project = labels.get(labels::COMPOSE_PROJECT)?;
    let service = labels.get(labels::COMPOSE_SERVICE)?;
    Some((project.as_str(), service.as_str()))
}

/// Whether compose created the container for `docker-compose run` (never a group member).
pub fn is_compose_oneoff(labels: &BTreeMap<String, String>) -> bool {
    labels::is_true(labels, labels::COMPOSE_ONEOFF)
}

/// The group of container `id` named `name`: its `replicator.group` label,
/// else its Swarm service, else its compose service, else its own name.
pub fn identify(id: &str, name: &str, labels: &BTreeMap<String, String>) -> GroupIdentity {
    let source = labels.get(labels::SOURCE).filter(|s| !s.is_empty());
    let base_name = match source {
        Some(_) => strip_replica_suffix(name).to_owned(),
        None => name.to_owned(),
    };
    let (kind, naming) = if labels.contains_key(labels::SWARM_SERVICE_ID) {
        (GroupKind::Swarm, Naming::Suffix(base_name.clone()))
    } else if let Some((project, service)) = compose_service(labels) {
        (GroupKind::Compose, Naming::compose(project, service, name))
    } else {
        (GroupKind::Containers, Naming::Suffix(base_name.clone()))
    };
    let name = labels
        .get(labels::GROUP)
        .filter(|g| !g.is_empty())
        .cloned()
        .or_else(|| labels.get(labels::SWARM_SERVICE_NAME).cloned())
        .or_else(|| compose_service(labels).map(|(p, s)| format!("{p}_{s}")))
        .unwrap_or(base_name);
    GroupIdentity { name, kind, original_id: source.cloned().unwrap_or_else(|| id.to_owned()), naming }
}

/// `web-3` → `web`; names without a numeric suffix are returned unchanged.
fn strip_replica_suffix(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((stem, n)) if !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => stem,
        _ => name,
    }
}

/// How replicas are named, so they read as members of their group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// `<base>-2`, `<base>-3`, ...
    Suffix(String),
    /// Compose's own scheme, `<project>_<service>_<n>` (v1) or with `-` (v2),
    /// so `docker-compose ps` and `down` see one more container of the service.
    Compose {
        /// The compose project.
        project: String,
        /// The compose service within the project.
        service: String,
        /// `_` for compose v1 names, `-` for v2.
        separator: char,
    },
}

impl Naming {
    fn compose(project: &str, service: &str, source_name: &str) -> Self {
        let v1 = source_name.starts_with(&format!("{project}_{service}_"));
        Self::Compose { project: project.into(), service: service.into(), separator: if v1 { '_' } else { '-' } }
    }

    /// A substring every replica name contains (for the engine's name filter).
    pub fn stem(&self) -> String {
        match self {
            Self::Suffix(base) => format!("{base}-"),
            Self::Compose { project, service, separator: s } => format!("{project}{s}{service}{s}"),
        }
    }

    fn name(&self, n: u64) -> String {
        format!("{}{n}", self.stem())
    }

    /// The first free name: numbers from 2 for plain replicas, from 1 for compose.
    pub fn next_free(&self, taken: &HashSet<String>) -> String {
        let first = match self {
            Self::Suffix(_) => 2,
            Self::Compose { .. } => 1,
        };
        (first..).map(|n| self.name(n)).find(|c| !taken.contains(c)).expect("an unbounded range has a free name")
    }

    /// The number in a name this scheme produced.
    pub fn number_of(&self, name: &str) -> Option<u64> {
        name.strip_prefix(&self.stem())?.parse().ok()
    }

    /// Labels a replica of this scheme needs besides the source's.
    pub fn labels_for(&self, name: &str) -> BTreeMap<String, String> {
        match (self, self.number_of(name)) {
            (Self::Compose { .. }, Some(n)) => [(labels::COMPOSE_NUMBER.to_owned(), n.to_string())].into(),
            _ => BTreeMap::new(),
        }
    }
}

/// A group's size bounds, the original included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Bounds {
    /// Fewest members a scale-down leaves.
    pub min: u32,
    /// Most members the group may have.
    pub max: u32,
}

impl Bounds {
    /// The one reading of `replicator.min` / `replicator.max`, used by
    /// listing, replication, scaling and autoscaling alike. `ceiling`
    /// (`serve --max-replicas`) is the maximum when the label is unset, and
    /// a label may lower it, never raise it.
    pub fn from_labels(labels: &BTreeMap<String, String>, ceiling: u32) -> Result<Bounds, String> {
        let max = labels::positive_count(labels, labels::MAX, ceiling).map_err(|e| e.to_string())?;
        if max > ceiling {
            return Err(format!(
                "label {}={max} is above the ceiling serve --max-replicas sets ({ceiling})",
                labels::MAX
            ));
        }
        // 0 lets a plain or compose group sleep (see the service's sleep rules).
        let min = labels::count_from(labels, labels::MIN, 1, 0).map_err(|e| e.to_string())?;
        if min > max {
            return Err(format!("label {}={min} is above the group's maximum of {max}", labels::MIN));
        }
        Ok(Bounds { min, max })
    }

    /// The bounds every one of several originals allows: the highest minimum
    /// and the lowest maximum. `None` when they leave no size at all.
    pub fn strictest(all: &[Bounds]) -> Option<Bounds> {
        let min = all.iter().map(|b| b.min).max()?;
        let max = all.iter().map(|b| b.max).min()?;
        (min <= max).then_some(Bounds { min, max })
    }
}

/// Whether a group's name, however it was derived (a `replicator.group`
/// label, a compose project and service, a Swarm service, a container's
/// name), obeys the one rule of names ([`crate::base::id::GroupName`]): a
/// name that does not never reaches a log, a metric, a file or a lock; its
/// containers are no group, and asking to replicate one is refused naming it.
pub fn check_group_name(identity: &GroupIdentity, labels: &BTreeMap<String, String>) -> Result<(), String> {
    check_group_label(labels)?;
    if crate::base::id::GroupName::parse(&identity.name).is_ok() {
        return Ok(());
    }
    let from = match identity.kind {
        GroupKind::Compose => "its compose project and service",
        GroupKind::Swarm => "its Swarm service",
        GroupKind::Containers => "the container's name",
    };
    Err(format!(
        "the group name {:?}, from {from}, is not a name replicator can use: letters, digits, '_', '.' and '-' \
         (at most {} characters, starting with a letter or digit)",
        crate::base::quote::clip(&identity.name),
        crate::base::id::MAX_LEN
    ))
}

/// Why a `replicator.group` label cannot name a group: the API must be able
/// to address every group it lists (`/v1/groups/{name}`).
pub fn check_group_label(labels: &BTreeMap<String, String>) -> Result<(), String> {
    match labels.get(labels::GROUP) {
        Some(name) if crate::base::id::GroupName::parse(name).is_err() => Err(format!(
            "label {}={:?} is not a group name the API can address: use letters, digits, '_', '.' and '-' \
             (at most {} characters, starting with a letter or digit)",
            labels::GROUP,
            crate::base::quote::clip(name),
            crate::base::id::MAX_LEN
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(name: &str, labels: serde_json::Value) -> GroupIdentity {
        let labels: BTreeMap<String, String> = serde_json::from_value(labels).unwrap();
        identify(&format!("{name}-full-id"), name, &labels)
    }

    #[test]
    fn a_plain_container_is_its_own_group() {
        let g = container("web", json!({}));
        assert_eq!(g.name, "web");
        assert_eq!(g.kind, GroupKind::Containers);
        assert_eq!(g.original_id, "web-full-id");
        assert_eq!(g.naming, Naming::Suffix("web".into()));
    }

    #[test]
    fn the_group_label_wins() {
        let g = container("web", json!({"replicator.group": "front"}));
        assert_eq!(g.name, "front");
        assert_eq!(g.naming, Naming::Suffix("web".into()));
    }

    #[test]
    fn a_replica_points_back_at_its_original() {
        let g = container("web-3", json!({"replicator.group": "web", "replicator.source": "orig-id"}));
        assert_eq!(g.name, "web");
        assert_eq!(g.original_id, "orig-id");
        assert_eq!(g.naming, Naming::Suffix("web".into()));
    }

    #[test]
    fn compose_containers_group_by_project_and_service() {
        let g =
            container("shop_web_1", json!({"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}));
        assert_eq!(g.name, "shop_web");
        assert_eq!(g.kind, GroupKind::Compose);
        assert_eq!(g.naming.next_free(&HashSet::from(["shop_web_1".to_string()])), "shop_web_2");
        assert_eq!(g.naming.labels_for("shop_web_2")["com.docker.compose.container-number"], "2");
    }

    #[test]
    fn swarm_tasks_are_grouped_by_service() {
        let g =
            container("t.1.x", json!({"com.docker.swarm.service.id": "svc", "com.docker.swarm.service.name": "api"}));
        assert_eq!(g.kind, GroupKind::Swarm);
        assert_eq!(g.name, "api");
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
        assert_eq!(Bounds::from_labels(&none, 10), Ok(Bounds { min: 1, max: 10 }));
        let set: BTreeMap<_, _> = [("replicator.max".into(), "3".into()), ("replicator.min".into(), "2".into())].into();
        assert_eq!(Bounds::from_labels(&set, 10), Ok(Bounds { min: 2, max: 3 }));
    }

    #[test]
    fn malformed_bounds_are_refused_with_the_label_named() {
        for (k, v) in [
            ("replicator.max", "0"),
            ("replicator.max", "lots"),
            ("replicator.min", "-1"),
            ("replicator.max", "99999999999"),
        ] {
            let l: BTreeMap<_, _> = [(k.to_string(), v.to_string())].into();
            assert!(Bounds::from_labels(&l, 10).unwrap_err().contains(k));
        }
        let inverted: BTreeMap<_, _> =
            [("replicator.max".into(), "2".into()), ("replicator.min".into(), "3".into())].into();
        assert!(Bounds::from_labels(&inverted, 10).is_err());
    }

    #[test]
    fn a_label_may_lower_the_ceiling_never_raise_it() {
        let at = |max: &str| BTreeMap::from([(labels::MAX.to_owned(), max.to_owned())]);
        assert_eq!(Bounds::from_labels(&at("4"), 10), Ok(Bounds { min: 1, max: 4 }));
        assert_eq!(Bounds::from_labels(&at("10"), 10), Ok(Bounds { min: 1, max: 10 }));
        let above = Bounds::from_labels(&at("1000000"), 10).unwrap_err();
        assert!(above.contains("replicator.max=1000000") && above.contains("--max-replicas"), "{above}");
    }

    #[test]
    fn the_strictest_bounds_of_disagreeing_originals_apply() {
        let (a, b) = (Bounds { min: 1, max: 2 }, Bounds { min: 1, max: 6 });
        assert_eq!(Bounds::strictest(&[a, b]), Some(a));
        assert_eq!(Bounds::strictest(&[Bounds { min: 3, max: 6 }, a]), None, "no size satisfies both");
        assert_eq!(Bounds::strictest(&[]), None);
    }

    #[test]
    fn a_group_label_the_api_cannot_address_is_refused() {
        for bad in ["a/b", "a b <x>", &"x".repeat(300)] {
            let l: BTreeMap<_, _> = [("replicator.group".to_string(), bad.to_string())].into();
            assert!(check_group_label(&l).unwrap_err().contains("replicator.group"), "{bad}");
        }
        let ok: BTreeMap<_, _> = [("replicator.group".to_string(), "front".to_string())].into();
        assert_eq!(check_group_label(&ok), Ok(()));
    }

    #[test]
    fn next_name_fills_the_first_gap() {
        let taken: HashSet<String> = ["web-2".into(), "web-4".into()].into();
        assert_eq!(Naming::Suffix("web".into()).next_free(&taken), "web-3");
        assert_eq!(Naming::Suffix("api".into()).next_free(&taken), "api-2");
        assert_eq!(Naming::Suffix("web".into()).labels_for("web-3"), BTreeMap::new());
    }
}
