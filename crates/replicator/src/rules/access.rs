//! Who may do what: the identities a client certificate can carry and the
//! permissions each holds. Pure, and the one place that decides; the API
//! asks it before any handler runs, and again where a request's group is
//! only known once its container is resolved.
//!
//! An identity is written into a certificate as a URI subject alternative
//! name, `urn:replicator:<kind>[:<binding>]`:
//!
//! | URI | identity | may |
//! |---|---|---|
//! | `urn:replicator:operator` | an operator | everything |
//! | `urn:replicator:app:<group>` | an app of one group | replicate its group's containers, scale and wake its group, push metrics for its containers, read its group |
//! | `urn:replicator:balancer:<name>` | a balancer | read groups, follow the event stream, acknowledge as `<name>` |
//! | `urn:replicator:agent:<node id>` | a Swarm agent | report usage for its node |
//! | `urn:replicator:alertmanager[:<group>]` | Alertmanager | the webhook (one URI per group to limit it) |
//! | `urn:replicator:peer` | another replicator | wake and read groups itself; forward a command for the identity it names |
//!
//! A certificate with no such URI (the original tool's layout, another
//! tool's certificate) is *unbound*: what it may do is `serve
//! --unbound-clients` (nothing by default; `operator` restores the original
//! tool's every permission). A URI of ours that does not parse, or two that
//! disagree, is an error: refused, never taken for no identity.

use std::collections::BTreeSet;
use std::fmt;

use crate::base::id::GroupName;

/// The URI scheme and namespace of every replicator identity.
pub const URI_PREFIX: &str = crate::tls::IDENTITY_URI_PREFIX;

/// The header in which a peer replicator names the caller it forwards for.
pub const FORWARDED_IDENTITY: &str = "x-replicator-identity";

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Clone a container of a group (`GET /{id}`, `POST /v1/containers/{id}/replicas`).
    Replicate,
    /// Change a group's size, or wake it.
    Scale,
    /// Push metric values for a group's containers.
    PushMetrics,
    /// Read groups and their decisions.
    ReadGroups,
    /// Follow the event stream.
    FollowEvents,
    /// Acknowledge events as a follower.
    Acknowledge,
    /// Report a Swarm node's usage.
    ReportUsage,
    /// Send Alertmanager's webhook.
    ReceiveAlerts,
    /// Read the API's description.
    Describe,
}

impl Permission {
    /// Every permission, in the order tables list them.
    pub const ALL: [Permission; 9] = [
        Permission::Replicate,
        Permission::Scale,
        Permission::PushMetrics,
        Permission::ReadGroups,
        Permission::FollowEvents,
        Permission::Acknowledge,
        Permission::ReportUsage,
        Permission::ReceiveAlerts,
        Permission::Describe,
    ];

    /// The permission's name in answers, logs and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Replicate => "replicate",
            Permission::Scale => "scale",
            Permission::PushMetrics => "push-metrics",
            Permission::ReadGroups => "read-groups",
            Permission::FollowEvents => "follow-events",
            Permission::Acknowledge => "acknowledge",
            Permission::ReportUsage => "report-usage",
            Permission::ReceiveAlerts => "receive-alerts",
            Permission::Describe => "describe",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `serve --unbound-clients` grants a certificate without an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UnboundPolicy {
    /// Every permission, as before identities existed.
    Operator,
    /// Reading only: groups, decisions, events, the description.
    Read,
    /// Nothing: every request answers 403 (the default).
    #[default]
    Refuse,
}

impl UnboundPolicy {
    /// What to tell operators, once at start and on the dashboard, about
    /// client certificates that carry no replicator identity.
    pub fn warning(self) -> Option<&'static str> {
        match self {
            UnboundPolicy::Operator => Some(
                "client certificates without a replicator identity (a urn:replicator: URI) hold every permission: \
                 issue identities with `replicator certs issue`, then restrict the others with --unbound-clients read or refuse",
            ),
            UnboundPolicy::Read => {
                Some("client certificates without a replicator identity may only read (--unbound-clients read)")
            }
            UnboundPolicy::Refuse => None,
        }
    }
}

/// Who a verified client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Everything.
    Operator,
    /// A container of one group, acting for its group.
    App {
        /// The group.
        group: String,
    },
    /// A load balancer following the groups.
    Balancer {
        /// The follower name it acknowledges as.
        name: String,
    },
    /// A Swarm agent on one node.
    Agent {
        /// The node's id.
        node: String,
    },
    /// Alertmanager's webhook, for every group or only some.
    Alertmanager {
        /// The groups its alerts may move; `None`: any.
        groups: Option<BTreeSet<String>>,
    },
    /// Another replicator of the same deployment: it wakes groups for its
    /// data path and forwards commands, speaking for the caller it verified.
    Peer,
    /// A certificate with no replicator identity, under the server's policy.
    Unbound(UnboundPolicy),
}

/// A refusal: the permission asked for, the identity, and what it concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{identity} may not {action}: it lacks the permission {permission}{}", scope.as_deref().map(|s| format!(" for {s}")).unwrap_or_default())]
pub struct Denied {
    /// What was needed.
    pub permission: Permission,
    /// Who asked, as [`Identity`]'s display writes it.
    pub identity: String,
    /// The kind of identity (a metric label).
    pub kind: &'static str,
    /// What was asked, in words.
    pub action: String,
    /// The group or node concerned, when there was one.
    pub scope: Option<String>,
}

impl Identity {
    /// Reads the identity from a certificate's URI names; none of ours is
    /// unbound (`policy` decides), two that disagree are an error.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>, policy: UnboundPolicy) -> Result<Self, String> {
        let mut found: Option<Identity> = None;
        for uri in uris {
            let Some(rest) = ours(uri) else { continue };
            let next = parse_one(rest)?;
            found = Some(match (found, next) {
                (None, next) => next,
                // Several alertmanager URIs widen the set of groups.
                (Some(Identity::Alertmanager { groups: Some(mut a) }), Identity::Alertmanager { groups: Some(b) }) => {
                    a.extend(b);
                    Identity::Alertmanager { groups: Some(a) }
                }
                (Some(Identity::Alertmanager { .. }), Identity::Alertmanager { .. }) => {
                    Identity::Alertmanager { groups: None }
                }
                (Some(first), next) if first == next => first,
                (Some(first), next) => {
                    return Err(format!("the certificate names two identities: {first} and {next}"));
                }
            });
        }
        Ok(found.unwrap_or(Identity::Unbound(policy)))
    }

    /// The URI that names this identity in a certificate (the first, for an
    /// Alertmanager limited to several groups).
    pub fn uris(&self) -> Vec<String> {
        match self {
            Identity::Operator => vec![format!("{URI_PREFIX}operator")],
            Identity::App { group } => vec![format!("{URI_PREFIX}app:{group}")],
            Identity::Balancer { name } => vec![format!("{URI_PREFIX}balancer:{name}")],
            Identity::Agent { node } => vec![format!("{URI_PREFIX}agent:{node}")],
            Identity::Alertmanager { groups: None } => vec![format!("{URI_PREFIX}alertmanager")],
            Identity::Alertmanager { groups: Some(groups) } => {
                groups.iter().map(|g| format!("{URI_PREFIX}alertmanager:{g}")).collect()
            }
            Identity::Peer => vec![format!("{URI_PREFIX}peer")],
            Identity::Unbound(_) => Vec::new(),
        }
    }

    /// Parses what `certs issue --identity` takes: `operator`, `app:GROUP`,
    /// `balancer:NAME`, `agent:NODE`, `alertmanager[:GROUP,GROUP...]`, `peer`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some(("alertmanager", groups)) => {
                let mut all = BTreeSet::new();
                for g in groups.split(',') {
                    all.insert(name(g, "group")?);
                }
                Ok(Identity::Alertmanager { groups: Some(all) })
            }
            _ => parse_one(text),
        }
    }

    /// What a peer replicator writes in [`FORWARDED_IDENTITY`] for this
    /// identity: its URIs, or `unbound` (the leader applies its own policy).
    pub fn forwarded(&self) -> String {
        match self {
            Identity::Unbound(_) => "unbound".to_owned(),
            other => other.uris().join(","),
        }
    }

    /// Reads what a peer replicator wrote in [`FORWARDED_IDENTITY`]; the
    /// identity it names must be a caller's, never another peer, never none.
    pub fn from_forwarded(text: &str, policy: UnboundPolicy) -> Result<Self, String> {
        if text == "unbound" {
            return Ok(Identity::Unbound(policy));
        }
        let uris: Vec<&str> = text.split(',').map(str::trim).collect();
        if uris.iter().any(|u| ours(u).is_none()) {
            return Err(format!("a forwarded identity names something other than {URI_PREFIX}URIs"));
        }
        match Identity::from_uris(uris, UnboundPolicy::Refuse)? {
            Identity::Peer => Err("a forwarded identity cannot be another peer".to_owned()),
            identity => Ok(identity),
        }
    }

    /// The identity's kind: a metric label and the first word of its display.
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::Operator => "operator",
            Identity::App { .. } => "app",
            Identity::Balancer { .. } => "balancer",
            Identity::Agent { .. } => "agent",
            Identity::Alertmanager { .. } => "alertmanager",
            Identity::Peer => "peer",
            Identity::Unbound(_) => "unbound",
        }
    }

    /// Whether the identity holds `permission` at all (for some group or node).
    pub fn holds(&self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Identity::Operator | Identity::Unbound(UnboundPolicy::Operator) => true,
            Identity::Unbound(UnboundPolicy::Read) => matches!(permission, ReadGroups | FollowEvents | Describe),
            Identity::Unbound(UnboundPolicy::Refuse) => false,
            Identity::App { .. } => matches!(permission, Replicate | Scale | PushMetrics | ReadGroups | Describe),
            Identity::Balancer { .. } => matches!(permission, ReadGroups | FollowEvents | Acknowledge | Describe),
            Identity::Agent { .. } => matches!(permission, ReportUsage | Describe),
            Identity::Alertmanager { .. } => matches!(permission, ReceiveAlerts | Describe),
            Identity::Peer => matches!(permission, Scale | ReadGroups | Describe),
        }
    }

    /// Whether the identity may use `permission` on `scope`: a group (for
    /// groups' permissions), a follower name (acknowledge) or a node (report usage).
    pub fn may(&self, permission: Permission, scope: &str) -> bool {
        if !self.holds(permission) {
            return false;
        }
        match self {
            Identity::App { group } => group == scope,
            Identity::Balancer { name } => permission != Permission::Acknowledge || name == scope,
            Identity::Agent { node } => node == scope,
            Identity::Alertmanager { groups: Some(groups) } => groups.contains(scope),
            _ => true,
        }
    }

    /// `Ok` if the identity holds `permission`, else the refusal.
    pub fn check(&self, permission: Permission, action: &str) -> Result<(), Denied> {
        if self.holds(permission) {
            Ok(())
        } else {
            Err(self.denied(permission, action, None))
        }
    }

    /// `Ok` if the identity may use `permission` on `scope`, else the refusal.
    pub fn check_for(&self, permission: Permission, scope: &str, action: &str) -> Result<(), Denied> {
        if self.may(permission, scope) {
            Ok(())
        } else {
            Err(self.denied(permission, action, Some(scope)))
        }
    }

    fn denied(&self, permission: Permission, action: &str, scope: Option<&str>) -> Denied {
        Denied {
            permission,
            identity: self.to_string(),
            kind: self.kind(),
            action: action.to_owned(),
            scope: scope.map(str::to_owned),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Operator => f.write_str("operator"),
            Identity::App { group } => write!(f, "app:{group}"),
            Identity::Balancer { name } => write!(f, "balancer:{name}"),
            Identity::Agent { node } => write!(f, "agent:{node}"),
            Identity::Alertmanager { groups: None } => f.write_str("alertmanager"),
            Identity::Alertmanager { groups: Some(g) } => {
                write!(f, "alertmanager:{}", g.iter().cloned().collect::<Vec<_>>().join(","))
            }
            Identity::Peer => f.write_str("peer"),
            Identity::Unbound(_) => f.write_str("a certificate without a replicator identity"),
        }
    }
}

/// What follows `urn:replicator:` in `uri`, if it is one of ours. A URN's
/// scheme and namespace are compared without case (RFC 8141), so that
/// `URN:Replicator:app:web` is the app it names, not a certificate without
/// an identity.
fn ours(uri: &str) -> Option<&str> {
    let head = uri.get(..URI_PREFIX.len())?;
    head.eq_ignore_ascii_case(URI_PREFIX).then(|| &uri[URI_PREFIX.len()..])
}

/// One `<kind>[:<binding>]`.
fn parse_one(text: &str) -> Result<Identity, String> {
    let (kind, binding) = match text.split_once(':') {
        Some((kind, binding)) => (kind, Some(binding)),
        None => (text, None),
    };
    let needs = |what: &str| binding.ok_or_else(|| format!("identity {kind} needs :<{what}>"));
    Ok(match kind {
        "operator" if binding.is_none() => Identity::Operator,
        "peer" if binding.is_none() => Identity::Peer,
        "app" => Identity::App { group: name(needs("group")?, "group")? },
        "balancer" => Identity::Balancer { name: name(needs("name")?, "follower name")? },
        "agent" => Identity::Agent { node: node_id(needs("node id")?)? },
        "alertmanager" => Identity::Alertmanager {
            groups: binding.map(|g| name(g, "group").map(|g| BTreeSet::from([g]))).transpose()?,
        },
        _ => {
            return Err(format!(
                "unknown identity {:?}: expected operator, app:<group>, balancer:<name>, agent:<node id>, alertmanager[:<group>] or peer",
                crate::base::quote::clip(text)
            ))
        }
    })
}

fn name(text: &str, what: &str) -> Result<String, String> {
    GroupName::parse(text)
        .map(|n| n.as_str().to_owned())
        .map_err(|_| format!("{what} {:?} is not a valid name", crate::base::quote::clip(text)))
}

/// Swarm node ids are 25 lowercase alphanumerics; accept what the engine could name.
fn node_id(text: &str) -> Result<String, String> {
    let ok = !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("node id {:?} is not a Swarm node id", crate::base::quote::clip(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    fn id(uris: &[&str]) -> Identity {
        Identity::from_uris(uris.iter().copied(), UnboundPolicy::Operator).unwrap()
    }

    #[test]
    fn a_peer_wakes_and_reads_and_speaks_only_for_a_callers_identity() {
        let peer = id(&["urn:replicator:peer"]);
        assert!(peer.may(Scale, "web") && peer.may(ReadGroups, "web"));
        for p in [Replicate, PushMetrics, FollowEvents, Acknowledge, ReportUsage, ReceiveAlerts] {
            assert!(!peer.holds(p), "{p}");
        }
        let app = Identity::App { group: "web".into() };
        assert_eq!(Identity::from_forwarded(&app.forwarded(), UnboundPolicy::Refuse), Ok(app));
        let unbound = Identity::Unbound(UnboundPolicy::Read);
        assert_eq!(
            Identity::from_forwarded(&unbound.forwarded(), UnboundPolicy::Refuse),
            Ok(Identity::Unbound(UnboundPolicy::Refuse)),
            "the leader's policy"
        );
        let limited = Identity::Alertmanager { groups: Some(["a".to_owned(), "b".to_owned()].into()) };
        assert_eq!(Identity::from_forwarded(&limited.forwarded(), UnboundPolicy::Refuse), Ok(limited));
        for bad in ["urn:replicator:peer", "", "https://x", "urn:replicator:operator,https://x", "urn:replicator:root"]
        {
            assert!(Identity::from_forwarded(bad, UnboundPolicy::Operator).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_operator_may_do_everything() {
        let op = id(&["urn:replicator:operator"]);
        assert!(Permission::ALL.iter().all(|p| op.may(*p, "any")));
    }

    #[test]
    fn an_app_acts_only_for_its_own_group() {
        let app = id(&["urn:replicator:app:web"]);
        for p in [Replicate, Scale, PushMetrics, ReadGroups] {
            assert!(app.may(p, "web"), "{p} for its group");
            assert!(!app.may(p, "api"), "{p} for another group");
        }
        for p in [FollowEvents, Acknowledge, ReportUsage, ReceiveAlerts] {
            assert!(!app.holds(p), "{p}");
        }
    }

    #[test]
    fn a_balancer_reads_and_acknowledges_only_as_itself() {
        let lb = id(&["urn:replicator:balancer:nginx-1"]);
        assert!(lb.may(ReadGroups, "web") && lb.may(FollowEvents, "web"));
        assert!(lb.may(Acknowledge, "nginx-1"));
        assert!(!lb.may(Acknowledge, "nginx-2"));
        assert!(!lb.holds(Scale) && !lb.holds(Replicate));
    }

    #[test]
    fn an_agent_reports_only_for_its_node() {
        let agent = id(&["urn:replicator:agent:abc123"]);
        assert!(agent.may(ReportUsage, "abc123"));
        assert!(!agent.may(ReportUsage, "def456"));
        assert!(!agent.holds(ReadGroups));
    }

    #[test]
    fn alertmanager_may_be_limited_to_groups() {
        let any = id(&["urn:replicator:alertmanager"]);
        assert!(any.may(ReceiveAlerts, "web") && !any.holds(Scale));
        let some = id(&["urn:replicator:alertmanager:web", "urn:replicator:alertmanager:api"]);
        assert!(some.may(ReceiveAlerts, "web") && some.may(ReceiveAlerts, "api"));
        assert!(!some.may(ReceiveAlerts, "db"));
    }

    #[test]
    fn a_certificate_without_an_identity_follows_the_policy() {
        let none = |p| Identity::from_uris(["https://example.test"], p).unwrap();
        assert!(none(UnboundPolicy::Operator).may(Scale, "web"));
        assert!(none(UnboundPolicy::Read).may(ReadGroups, "web"));
        assert!(!none(UnboundPolicy::Read).holds(Replicate));
        assert!(!none(UnboundPolicy::Refuse).holds(Describe));
    }

    #[test]
    fn a_urns_scheme_and_namespace_are_read_without_case() {
        for uri in ["URN:replicator:app:web", "urn:REPLICATOR:app:web", "Urn:Replicator:app:web"] {
            let read = Identity::from_uris([uri], UnboundPolicy::Operator);
            assert_eq!(read, Ok(Identity::App { group: "web".into() }), "{uri}");
        }
        let upper_kind = Identity::from_uris(["urn:replicator:APP:web"], UnboundPolicy::Operator);
        assert!(upper_kind.is_err(), "the kind is ours, case and all: refused, not unbound");
        for malformed in ["urn:replicator:", "URN:REPLICATOR:", "urn:replicator:app:web:x"] {
            assert!(Identity::from_uris([malformed], UnboundPolicy::Operator).is_err(), "{malformed}");
        }
    }

    #[test]
    fn no_identity_is_nothing_unless_the_server_says_otherwise() {
        assert_eq!(Identity::from_uris([], UnboundPolicy::default()), Ok(Identity::Unbound(UnboundPolicy::Refuse)));
        assert!(!Identity::Unbound(UnboundPolicy::default()).holds(Permission::Describe));
    }

    #[test]
    fn two_identities_in_one_certificate_are_refused() {
        let e = Identity::from_uris(["urn:replicator:operator", "urn:replicator:app:web"], UnboundPolicy::Operator);
        assert!(e.unwrap_err().contains("two identities"));
    }

    #[test]
    fn malformed_identities_are_refused_with_the_reason() {
        for bad in ["app", "app:", "app:we/b", "agent:n-1", "balancer", "root", "operator:x"] {
            assert!(Identity::parse(bad).is_err(), "{bad}");
            assert!(Identity::from_uris([format!("urn:replicator:{bad}").as_str()], UnboundPolicy::Operator).is_err());
        }
    }

    #[test]
    fn an_identity_round_trips_through_its_uris() {
        for text in ["operator", "app:web", "balancer:nginx-1", "agent:abc123", "alertmanager", "alertmanager:api,web"]
        {
            let identity = Identity::parse(text).unwrap();
            let uris = identity.uris();
            let back = Identity::from_uris(uris.iter().map(String::as_str), UnboundPolicy::Refuse).unwrap();
            assert_eq!(back, identity, "{text}");
            assert_eq!(back.to_string(), text);
        }
    }

    #[test]
    fn a_refusal_names_the_permission_the_identity_and_the_scope() {
        let e = id(&["urn:replicator:app:web"]).check_for(Scale, "api", "scale group api").unwrap_err();
        assert_eq!(e.to_string(), "app:web may not scale group api: it lacks the permission scale for api");
    }
}
