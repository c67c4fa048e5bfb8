//! `replicator upstreams --server URL`: the balancer files follow
//! replicator's own event stream (`GET /v1/events`) rather than the engine,
//! so a member leaves its file as soon as it starts draining; events are
//! acknowledged once the files and the reload reflect them, which is what a
//! scale-down waits for before it stops the member. A burst of events
//! (within `--debounce` of each other) makes one write and one reload.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use http::Method;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::balancer_file::{Output, Written};
use crate::cli::remote::ApiClient;
use crate::rules::backends::{backend, Backend};
use crate::service::events::MemberRecord;
use replicator_client::{next_event, SseEvent};

/// The pause before reconnecting after the stream ended or failed.
const RECONNECT: Duration = Duration::from_secs(1);
/// Longest the stream may stay silent (it carries a keep-alive every 15 s).
const SILENCE: Duration = Duration::from_secs(45);
/// Longest an acknowledgement may take.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The followed groups' members as the stream last described them.
#[derive(Default)]
struct Members(BTreeMap<String, BTreeMap<String, MemberRecord>>);

impl Members {
    /// Applies one event; the snapshot replaces everything.
    fn apply(&mut self, out: &Output, event: &SseEvent) {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else { return };
        let followed = |v: &Value| v.as_str().filter(|g| out.follows(g)).map(str::to_owned);
        match event.kind.as_str() {
            "snapshot" => {
                self.0.clear();
                let groups = data["groups"].as_array().cloned().unwrap_or_default();
                for g in &groups {
                    let Some(name) = followed(&g["name"]) else { continue };
                    let members = self.0.entry(name).or_default();
                    for m in g["members"].as_array().into_iter().flatten() {
                        if let Ok(record) = serde_json::from_value::<MemberRecord>(m.clone()) {
                            members.insert(record.status.id.clone(), record);
                        }
                    }
                }
            }
            "member" => {
                let Some(group) = followed(&data["group"]) else { return };
                let Ok(record) = serde_json::from_value::<MemberRecord>(data["member"].clone()) else { return };
                let members = self.0.entry(group).or_default();
                if data["change"] == "removed" {
                    members.remove(&record.status.id);
                } else {
                    members.insert(record.status.id.clone(), record);
                }
            }
            _ => {}
        }
    }

    /// Every followed group's ready members, as backends.
    fn backends(&self, out: &Output) -> BTreeMap<String, Vec<Backend>> {
        let ready = |members: &BTreeMap<String, MemberRecord>| {
            members
                .values()
                .filter(|m| m.status.ready)
                .filter_map(|m| {
                    backend(&m.status.id, &m.status.name, &m.networks, &m.published, out.port, out.network.as_deref())
                })
                .collect()
        };
        self.0.iter().map(|(group, members)| (group.clone(), ready(members))).collect()
    }
}

/// Follows the stream until the process is stopped (or once, with `--once`).
pub async fn run(server: &str, out: Output) -> anyhow::Result<()> {
    let client = ApiClient::new(server, &out.certs).context("cannot load the client certificates")?;
    let mut members = Members::default();
    let mut written = Written::new();
    let mut last_id: Option<u64> = None;
    loop {
        match follow_once(&client, &out, &mut members, &mut written, &mut last_id).await {
            Ok(()) if out.once => return Ok(()),
            Ok(()) => info!("event stream ended; resuming"),
            Err(e) => warn!(error = %format!("{e:#}"), "event stream failed; resuming"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// One connection: events in, file and reload out, acknowledgements back.
async fn follow_once(
    client: &ApiClient,
    out: &Output,
    members: &mut Members,
    written: &mut Written,
    last_id: &mut Option<u64>,
) -> anyhow::Result<()> {
    // One group by its exact name: the server sends only its events.
    let only = match out.groups.as_slice() {
        [one] if !one.contains(['*', '?']) => format!("group={one}&"),
        _ => String::new(),
    };
    let path = format!("/v1/events?{only}follower={}", out.follower);
    let headers: Vec<(&str, String)> = last_id.iter().map(|id| ("last-event-id", id.to_string())).collect();
    let response = client.stream(&path, &headers).await?;
    anyhow::ensure!(response.status().is_success(), "the server answered {}", response.status());
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    // The server sends a comment every 15 s: a silent minute is a dead connection.
    while let Some(frame) = tokio::time::timeout(SILENCE, body.frame()).await.context("the event stream went silent")? {
        let Ok(data) = frame?.into_data() else { continue };
        buffer.extend_from_slice(&data);
        let mut acted_on = None;
        while let Some(event) = next_event(&mut buffer) {
            members.apply(out, &event);
            acted_on = event.id.or(acted_on);
        }
        let Some(mut id) = acted_on else { continue };
        // More of the same burst: taken in before the files are written.
        let latest = tokio::time::Instant::now() + out.debounce * 10;
        loop {
            if out.once {
                break;
            }
            let quiet = latest.min(tokio::time::Instant::now() + out.debounce);
            let Ok(Some(frame)) = tokio::time::timeout_at(quiet, body.frame()).await else { break };
            let Ok(data) = frame?.into_data() else { continue };
            buffer.extend_from_slice(&data);
            while let Some(event) = next_event(&mut buffer) {
                members.apply(out, &event);
                id = event.id.unwrap_or(id);
            }
        }
        *last_id = Some(id);
        if out.apply(&members.backends(out), written).await {
            acknowledge(client, &out.follower, id).await;
        }
        if out.once {
            return Ok(());
        }
    }
    Ok(())
}

async fn acknowledge(client: &ApiClient, follower: &str, id: u64) {
    let body = json!({ "follower": follower, "id": id });
    match tokio::time::timeout(ACK_TIMEOUT, client.request(Method::POST, "/v1/events/ack", Some(&body))).await {
        Ok(Ok(r)) if r.status.is_success() => {}
        Ok(Ok(r)) => warn!(status = %r.status, body = %r.text(), "acknowledgement refused"),
        Ok(Err(e)) => warn!(error = %e, "cannot acknowledge"),
        Err(_) => warn!("acknowledgement timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_follow_snapshot_and_changes_and_only_ready_ones_are_served() {
        let record = |id: &str, ready: bool, state: &str| {
            json!({"id": id, "name": id, "state": state, "ready": ready, "health": null,
                   "networks": {"net": format!("10.0.0.{}", id.len())}, "published": []})
        };
        let out = Output {
            groups: vec!["web".into()],
            format: crate::rules::backends::Format::Json,
            out: "x".into(),
            port: 80,
            network: Some("net".into()),
            reload: None,
            certs: "c".into(),
            follower: "f".into(),
            once: false,
            wake: None,
            debounce: Duration::ZERO,
        };
        let mut members = Members::default();
        let snapshot = json!({"groups": [{"name": "web", "members": [record("a", true, "running")]}, {"name": "api", "members": [record("zz", true, "running")]}]});
        members.apply(&out, &SseEvent { id: Some(1), kind: "snapshot".into(), data: snapshot.to_string() });
        let change = |c: &str, r: Value| SseEvent {
            id: None,
            kind: "member".into(),
            data: json!({"group": "web", "change": c, "member": r}).to_string(),
        };
        members.apply(&out, &change("created", record("bb", false, "running")));
        assert_eq!(members.0.len(), 1, "the group not followed is left out");
        assert_eq!(members.0["web"].len(), 2);
        assert_eq!(members.backends(&out)["web"].len(), 1, "only the ready one");
        members.apply(&out, &change("draining", record("a", false, "draining")));
        assert!(members.backends(&out)["web"].is_empty(), "a draining member is out");
        members.apply(&out, &change("removed", record("a", false, "draining")));
        assert_eq!(members.0["web"].len(), 1);
    }
}
