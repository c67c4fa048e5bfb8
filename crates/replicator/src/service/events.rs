//! replicator's own event stream: what balancers and scripts follow
//! (`GET /v1/events`) instead of the engine, so that they learn of a member
//! *draining* before it is stopped, and can say when they have acted on it.
//!
//! The hub turns each change of the inventory into member events (created,
//! ready, draining, removed, changed), adds the autoscaler's decisions, and
//! numbers them all with one increasing id. A client that reconnects with
//! `Last-Event-ID` gets what it missed, or a full snapshot when that is no
//! longer kept. Followers acknowledge the events they have acted on (a
//! balancer: once its reload succeeded); a scale-down waits for those
//! acknowledgements, or `--drain-timeout`, before stopping a draining member.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::inventory::{Group, Member, MemberState, MemberStatus, Store};
use crate::model::PublishedPort;

/// Events kept for clients that reconnect.
const KEPT: usize = 4096;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing, never reused while the process lives.
    pub id: u64,
    /// `member`, `decision` or `snapshot`.
    pub kind: &'static str,
    /// The group it concerns (empty for a snapshot of every group).
    pub group: String,
    /// The event's body, as JSON text: kept compact for the replay ring
    /// (thousands of events) and serialized once for every follower.
    pub data: Box<str>,
}

impl Event {
    /// The body as a JSON value (for readers that look inside).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// A member as the stream shows it: its status, and where a balancer
/// reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MemberRecord {
    /// Who it is, where it stands, whether it takes traffic.
    #[serde(flatten)]
    pub status: MemberStatus,
    /// Address on each network.
    pub networks: BTreeMap<String, String>,
    /// Ports published on the host.
    pub published: Vec<PublishedPort>,
}

impl MemberRecord {
    fn of(m: &Member) -> Self {
        MemberRecord { status: m.status(), networks: m.networks.clone(), published: m.published.clone() }
    }
}

/// A connected follower.
struct Follower {
    name: String,
    /// The identity that registered the name: only it may acknowledge as it.
    owner: String,
    /// `None`: every group.
    group: Option<String>,
    acked: u64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    kept: VecDeque<Arc<Event>>,
    /// What was last published of each member, by group then member id.
    members: BTreeMap<String, BTreeMap<String, MemberRecord>>,
    followers: HashMap<u64, Follower>,
    next_follower: u64,
    /// The event that announced each draining member.
    draining: HashMap<String, (String, u64)>,
}

impl State {
    fn push(&mut self, kind: &'static str, group: &str, data: Value) -> Arc<Event> {
        self.next_id += 1;
        let event = Arc::new(Event { id: self.next_id, kind, group: group.to_owned(), data: data.to_string().into() });
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(event.clone());
        event
    }
}

/// The hub: one per process, shared by the API, the service and the autoscaler.
pub struct EventHub {
    state: Mutex<State>,
    live: broadcast::Sender<Arc<Event>>,
    /// Bumped on every acknowledgement and every new event.
    progress: watch::Sender<u64>,
    closing: CancellationToken,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::continuing_after(0)
    }
}

impl EventHub {
    /// A hub whose ids come after `last` (the predecessor's last event):
    /// they start from the clock, so a client resuming with an id from an
    /// earlier process gets a snapshot rather than another numbering's
    /// events, and never below `last`, even if the clock stepped back.
    pub fn continuing_after(last: u64) -> Self {
        let epoch = crate::base::clock::unix_millis_now();
        Self {
            state: Mutex::new(State { next_id: (epoch << 10).max(last), ..State::default() }),
            live: broadcast::channel(KEPT).0,
            progress: watch::channel(0).0,
            closing: CancellationToken::new(),
        }
    }
}

/// What a new subscriber gets first: the events it missed, or a snapshot.
pub struct Subscription {
    /// Sent before the live events.
    pub backlog: Vec<Arc<Event>>,
    /// Everything after the backlog.
    pub live: broadcast::Receiver<Arc<Event>>,
    /// Unregisters the follower when dropped.
    pub follower: FollowerGuard,
}

impl EventHub {
    /// The id of the last event published (or where the numbering starts).
    pub fn last_id(&self) -> u64 {
        self.lock().next_id
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every stream (shutdown): clients reconnect to the next process.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Resolves when the hub is closing.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Call with the state lock held, so events go out in id order.
    fn publish(&self, events: Vec<Arc<Event>>) {
        if events.is_empty() {
            return;
        }
        let last = events.last().map_or(0, |e| e.id);
        for event in events {
            let _ = self.live.send(event);
        }
        self.progress.send_replace(last);
    }

    /// Compares the groups with what was last published and emits the differences.
    pub fn observe(&self, groups: &[Group]) {
        let mut state = self.lock();
        let mut events = Vec::new();
        let mut seen_groups = HashSet::new();
        for group in groups {
            seen_groups.insert(group.name().to_owned());
            let now: BTreeMap<String, MemberRecord> = group
                .members
                .iter()
                .filter(|m| !m.id.is_empty() && m.state != MemberState::Exited)
                .map(|m| (m.id.clone(), MemberRecord::of(m)))
                .collect();
            let before = state.members.remove(group.name()).unwrap_or_default();
            for (id, record) in &now {
                let change = match before.get(id) {
                    None if record.status.ready => "ready",
                    None => "created",
                    Some(old) if old == record => continue,
                    Some(_) if record.status.state == MemberState::Draining => "draining",
                    Some(old) if record.status.ready && !old.status.ready => "ready",
                    Some(_) => "changed",
                };
                let event = state.push("member", group.name(), member_data(group.name(), change, record));
                if change == "draining" {
                    state.draining.insert(id.clone(), (group.name().to_owned(), event.id));
                } else if record.status.state != MemberState::Draining {
                    // A drain that ended without a removal (a failed stop) must not
                    // vouch for the next one.
                    state.draining.remove(id);
                }
                events.push(event);
            }
            for (id, record) in before.iter().filter(|(id, _)| !now.contains_key(*id)) {
                events.push(state.push("member", group.name(), member_data(group.name(), "removed", record)));
                state.draining.remove(id);
            }
            state.members.insert(group.name().to_owned(), now);
        }
        let gone: Vec<String> = state.members.keys().filter(|g| !seen_groups.contains(*g)).cloned().collect();
        for group in gone {
            for record in state.members.remove(&group).unwrap_or_default().values() {
                events.push(state.push("member", &group, member_data(&group, "removed", record)));
                state.draining.remove(&record.status.id);
            }
        }
        // Sent in id order: a follower never sees an event before an earlier one.
        self.publish(events);
        drop(state);
    }

    /// Publishes an autoscaler decision.
    pub fn decision(&self, group: &str, data: Value) {
        let mut state = self.lock();
        let event = state.push("decision", group, data);
        self.publish(vec![event]);
    }

    /// Registers a follower for `owner` (an identity) and hands it what it
    /// missed since `last_id` (or a snapshot), then the live events. A name
    /// another identity follows as is refused with that identity.
    pub fn subscribe(
        self: &Arc<Self>,
        name: &str,
        group: Option<&str>,
        last_id: Option<u64>,
        owner: &str,
    ) -> Result<Subscription, String> {
        let mut state = self.lock();
        if let Some(other) = state.followers.values().find(|f| !name.is_empty() && f.name == name && f.owner != owner) {
            return Err(other.owner.clone());
        }
        let live = self.live.subscribe();
        let oldest = state.kept.front().map_or(state.next_id + 1, |e| e.id);
        let backlog = match last_id {
            // Nothing missed is lost: replay what came after.
            Some(last) if last.saturating_add(1) >= oldest && last <= state.next_id => {
                state.kept.iter().filter(|e| e.id > last).cloned().collect()
            }
            _ => vec![snapshot(&state, group)],
        };
        state.next_follower += 1;
        let key = state.next_follower;
        // Only a named follower acknowledges, and only it is waited for: an
        // observer (a script, curl) never holds up a scale-down.
        if !name.is_empty() {
            let acked = backlog.first().map_or(state.next_id, |e| e.id.saturating_sub(1));
            let follower =
                Follower { name: name.to_owned(), owner: owner.to_owned(), group: group.map(str::to_owned), acked };
            state.followers.insert(key, follower);
        }
        drop(state);
        Ok(Subscription { backlog, live, follower: FollowerGuard { hub: self.clone(), key } })
    }

    /// Follower `follower` (registered by `owner`) has acted on every event
    /// up to `id`, capped at the latest event: no follower can promise to
    /// have seen the future. Returns the id kept, or the identity that
    /// registered the name when it is not `owner`.
    pub fn ack(&self, follower: &str, id: u64, owner: &str) -> Result<u64, String> {
        let mut state = self.lock();
        if let Some(other) = state.followers.values().find(|f| f.name == follower && f.owner != owner) {
            return Err(other.owner.clone());
        }
        let id = id.min(state.next_id);
        for f in state.followers.values_mut().filter(|f| f.name == follower) {
            f.acked = f.acked.max(id);
        }
        drop(state);
        self.progress.send_modify(|_| {});
        Ok(id)
    }

    /// Waits until every follower of `group` has acknowledged the events
    /// that announced these members draining, or `timeout`. Returns whether
    /// they all did; a group nobody follows is drained at once.
    pub async fn drained(&self, group: &str, members: &[String], timeout: Duration) -> bool {
        let mut progress = self.progress.subscribe();
        let wait = async {
            loop {
                if self.all_acked(group, members) {
                    return;
                }
                if progress.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    fn all_acked(&self, group: &str, members: &[String]) -> bool {
        let state = self.lock();
        let mut followers =
            state.followers.values().filter(|f| f.group.as_deref().is_none_or(|g| g == group)).peekable();
        if followers.peek().is_none() {
            return true;
        }
        let announced: Option<Vec<u64>> = members.iter().map(|id| state.draining.get(id).map(|(_, e)| *e)).collect();
        // Not announced yet: the hub has not seen the change.
        let Some(latest) = announced.map(|events| events.into_iter().max().unwrap_or(0)) else { return false };
        followers.all(|f| f.acked >= latest)
    }

    fn unregister(&self, key: u64) {
        self.lock().followers.remove(&key);
        self.progress.send_modify(|_| {});
    }

    /// Feeds the hub from the inventory until `cancel`.
    pub async fn follow(self: Arc<Self>, inventory: Store, cancel: CancellationToken) {
        let mut changes = inventory.subscribe();
        loop {
            if let Ok(groups) = inventory.groups() {
                self.observe(&groups);
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                () = cancel.cancelled() => break,
            }
        }
        self.close();
    }
}

/// A follower's registration; dropping it (the stream ended) unregisters it.
pub struct FollowerGuard {
    hub: Arc<EventHub>,
    key: u64,
}

impl Drop for FollowerGuard {
    fn drop(&mut self) {
        self.hub.unregister(self.key);
    }
}

fn member_data(group: &str, change: &str, record: &MemberRecord) -> Value {
    json!({ "group": group, "change": change, "member": record })
}

/// Every group's members (or one group's), as the newest event id sees them.
fn snapshot(state: &State, group: Option<&str>) -> Arc<Event> {
    let groups: Vec<Value> = state
        .members
        .iter()
        .filter(|(name, _)| group.is_none_or(|g| g == name.as_str()))
        .map(|(name, members)| json!({ "name": name, "members": members.values().collect::<Vec<_>>() }))
        .collect();
    Arc::new(Event {
        id: state.next_id,
        kind: "snapshot",
        group: group.unwrap_or_default().to_owned(),
        data: json!({ "groups": groups }).to_string().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Health;

    fn member(id: &str, state: MemberState, health: Option<Health>) -> Member {
        Member { health, ..Member::for_test(id, state) }
    }

    fn group(members: Vec<Member>) -> Group {
        Group::for_test("web", members)
    }

    fn changes(events: &[Arc<Event>]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| {
                (
                    e.json()["change"].as_str().unwrap_or(e.kind).to_owned(),
                    e.json()["member"]["id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn member_changes_become_numbered_events() {
        let hub = Arc::new(EventHub::default());
        let start = hub.subscribe("t", None, None, "test").unwrap();
        hub.observe(&[group(vec![member("a", MemberState::Running, Some(Health::Starting))])]);
        hub.observe(&[group(vec![member("a", MemberState::Running, Some(Health::Healthy))])]);
        hub.observe(&[group(vec![member("a", MemberState::Draining, Some(Health::Healthy))])]);
        hub.observe(&[group(vec![])]);
        let all = hub.subscribe("late", None, Some(start.backlog[0].id), "test").unwrap().backlog;
        assert_eq!(
            changes(&all),
            [
                ("created".into(), "a".into()),
                ("ready".into(), "a".into()),
                ("draining".into(), "a".into()),
                ("removed".into(), "a".into())
            ]
        );
        assert!(all.windows(2).all(|w| w[1].id == w[0].id + 1), "ids increase one by one");
    }

    #[test]
    fn a_client_too_far_behind_gets_a_snapshot_first() {
        let hub = Arc::new(EventHub::default());
        for i in 0..(KEPT + 10) {
            let state = if i % 2 == 0 { MemberState::Running } else { MemberState::Paused };
            hub.observe(&[group(vec![member("a", state, None)])]);
        }
        let behind = hub.subscribe("t", Some("web"), Some(1), "test").unwrap().backlog;
        assert_eq!(behind.len(), 1);
        assert_eq!(behind[0].kind, "snapshot");
        assert_eq!(behind[0].json()["groups"][0]["members"][0]["id"], "a");
        let current = hub.subscribe("t", Some("web"), Some(behind[0].id), "test").unwrap().backlog;
        assert!(current.is_empty(), "up to date: nothing to replay");
    }

    #[tokio::test(start_paused = true)]
    async fn draining_waits_for_every_follower_of_the_group_or_the_timeout() {
        let hub = Arc::new(EventHub::default());
        assert!(hub.drained("web", &["a".into()], Duration::from_secs(10)).await, "nobody follows: drained at once");
        let follower = hub.subscribe("nginx", Some("web"), None, "test").unwrap();
        let _other_group = hub.subscribe("other", Some("api"), None, "test").unwrap();
        hub.observe(&[group(vec![member("a", MemberState::Running, None)])]);
        hub.observe(&[group(vec![member("a", MemberState::Draining, None)])]);
        let announced = hub.lock().draining["a"].1;
        let waiting = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.drained("web", &["a".into()], Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "not before the follower acknowledged");
        hub.ack("nginx", announced, "test").unwrap();
        assert!(waiting.await.unwrap(), "acknowledged");
        drop(follower);
        let _slow = hub.subscribe("slow", None, None, "test").unwrap();
        hub.observe(&[group(vec![member("b", MemberState::Running, None)])]);
        hub.observe(&[group(vec![member("b", MemberState::Draining, None)])]);
        assert!(
            !hub.drained("web", &["b".into()], Duration::from_secs(10)).await,
            "a follower that never acknowledges"
        );
    }
}
