//! Watching replicator from a terminal: `replicator events` (the event
//! stream, human-readable or `--json`), `replicator group NAME` (one group
//! in detail), and the progress `--wait` commands show while they wait:
//! each member's state on a terminal, redrawn in place, or one plain line
//! per change when the output is not a terminal.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use bytes::BytesMut;
use clap::Args;
use http::Method;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::connection::{answer_of, Connection};
use crate::base::id::GroupName;
use crate::cli::remote::ApiClient;
use replicator_client::{next_event, SseEvent};

/// The pause before following the stream again after it ended.
const RECONNECT: Duration = Duration::from_secs(1);

/// Whose members a `--wait` command shows.
#[derive(Debug, Clone)]
pub(super) enum Watched {
    /// Every member of this group.
    Group(String),
    /// Members that were not there when the command began (a replication).
    NewMembers,
}

/// Runs a request; while it waits, shows the watched members' progress on standard error.
pub(super) fn call_showing_progress(
    connection: &Connection,
    watched: Option<Watched>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = connection.client()?;
    runtime.block_on(async {
        let request = answer_of(&client, method, path, body);
        let Some(watched) = watched else { return request.await };
        let mut progress = Progress::new(std::io::stderr().is_terminal());
        let showing = show_progress(&client, &watched, &mut progress);
        tokio::pin!(request);
        let result = tokio::select! {
            result = &mut request => result,
            () = showing => request.await,
        };
        progress.finish(result.is_ok());
        result
    })
}

/// Follows the stream and shows the watched members until the stream ends.
async fn show_progress(client: &ApiClient, watched: &Watched, progress: &mut Progress) {
    let path = match watched {
        Watched::Group(g) => format!("/v1/events?group={g}"),
        Watched::NewMembers => "/v1/events".to_owned(),
    };
    let mut known: Option<HashSet<String>> = None;
    let _ = each_event(client, &path, None, |event| {
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else { return };
        match event.kind.as_str() {
            "snapshot" if known.is_none() => {
                let members = data["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| g["members"].as_array().cloned().unwrap_or_default());
                known = Some(members.filter_map(|m| m["id"].as_str().map(str::to_owned)).collect());
            }
            "member" => {
                let id = data["member"]["id"].as_str().unwrap_or_default();
                let shown = match watched {
                    Watched::Group(g) => data["group"] == g.as_str(),
                    Watched::NewMembers => known.as_ref().is_some_and(|k| !k.contains(id)),
                };
                if shown {
                    progress.update(&data["member"], data["change"].as_str().unwrap_or_default());
                }
            }
            _ => {}
        }
    })
    .await;
}

/// One connection to the stream: every event handed to `each` until it ends.
async fn each_event(
    client: &ApiClient,
    path: &str,
    last_id: Option<u64>,
    mut each: impl FnMut(&SseEvent),
) -> anyhow::Result<Option<u64>> {
    let headers: Vec<(&str, String)> = last_id.iter().map(|id| ("last-event-id", id.to_string())).collect();
    let response = client.stream(path, &headers).await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let said: Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = said["error"]["message"]
            .as_str()
            .map_or_else(|| String::from_utf8_lossy(&body).into_owned(), str::to_owned);
        anyhow::bail!("{message} (HTTP {})", status.as_u16());
    }
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    let mut last = last_id;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        buffer.extend_from_slice(&data);
        while let Some(event) = next_event(&mut buffer) {
            last = event.id.or(last);
            if !event.kind.is_empty() {
                each(&event);
            }
        }
    }
    Ok(last)
}

/// The server refused the stream: asking again would not help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// The members shown while a command waits, and how they are drawn.
struct Progress {
    terminal: bool,
    started: Instant,
    lines: BTreeMap<String, String>,
    drawn: usize,
    /// Members shown, and those of them ready.
    shown: HashSet<String>,
    ready: HashSet<String>,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            started: Instant::now(),
            lines: BTreeMap::new(),
            drawn: 0,
            shown: HashSet::new(),
            ready: HashSet::new(),
        }
    }

    /// A member changed: its line now, redrawn or printed.
    fn update(&mut self, member: &Value, change: &str) {
        let name = member["name"].as_str().unwrap_or_default().to_owned();
        let line = format!("{name}  {}  {:.1}s", describe(member, change), self.started.elapsed().as_secs_f64());
        self.shown.insert(name.clone());
        if member["ready"] == true {
            self.ready.insert(name.clone());
        } else {
            self.ready.remove(&name);
        }
        self.draw(&name, line);
    }

    fn draw(&mut self, name: &str, line: String) {
        let mut err = std::io::stderr().lock();
        if !self.terminal {
            let _ = writeln!(err, "{line}");
            return;
        }
        self.lines.insert(name.to_owned(), line);
        // Back up over what was drawn, and draw every member again.
        if self.drawn > 0 {
            let _ = write!(err, "\x1b[{}A", self.drawn);
        }
        for line in self.lines.values() {
            let _ = writeln!(err, "\x1b[2K{line}");
        }
        self.drawn = self.lines.len();
    }

    /// The wait ended: when it succeeded, every member shown is ready (the
    /// server said so), even if its last event has not arrived yet.
    fn finish(&mut self, ready: bool) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let waiting: Vec<String> =
            self.shown.iter().filter(|name| ready && !self.ready.contains(*name)).cloned().collect();
        for name in waiting {
            self.draw(&name, format!("{name}  ready  {elapsed:.1}s"));
        }
        if !self.shown.is_empty() {
            let _ = writeln!(std::io::stderr(), "done in {elapsed:.1}s");
        }
    }
}

/// A member's state in words: `ready`, `running, not ready (probe: starting)`, `created`...
fn describe(member: &Value, change: &str) -> String {
    let state = member["state"].as_str().unwrap_or(change);
    if member["ready"] == true {
        return "ready".to_owned();
    }
    let checks: Vec<String> =
        ["health", "probe"].iter().filter_map(|k| member[*k].as_str().map(|v| format!("{k}: {v}"))).collect();
    match (state, checks.is_empty()) {
        ("running", true) => "running".to_owned(),
        ("running", false) => format!("running, not ready ({})", checks.join(", ")),
        (state, _) => state.to_owned(),
    }
}

/// `replicator events`: follows replicator's event stream.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// One group only.
    #[arg(long)]
    group: Option<String>,
    /// One JSON object a line (`{"id", "event", "data"}`) instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Prints every event as it comes, following the stream again after a cut.
pub fn events(args: EventsArgs) -> anyhow::Result<()> {
    let group = args.group.as_deref().map(GroupName::parse).transpose()?;
    let path = match &group {
        Some(g) => format!("/v1/events?group={}", g.as_str()),
        None => "/v1/events".to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = args.connection.client()?;
    runtime.block_on(async {
        let mut last = None;
        loop {
            let print = |event: &SseEvent| println!("{}", if args.json { json_line(event) } else { text_line(event) });
            match each_event(&client, &path, last, print).await {
                Ok(resume) => last = resume,
                Err(e) if e.is::<Refused>() => return Err(e.context("cannot follow the event stream")),
                // A cut or an unreachable server: try again, as the followers do.
                Err(e) => eprintln!("replicator events: {e:#}; following again"),
            }
            tokio::time::sleep(RECONNECT).await;
        }
    })
}

fn json_line(event: &SseEvent) -> String {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::String(event.data.clone()));
    json!({ "id": event.id, "event": event.kind, "data": data }).to_string()
}

/// One event as a line of text.
fn text_line(event: &SseEvent) -> String {
    let now = chrono::Utc::now().format("%H:%M:%S");
    let data: Value = serde_json::from_str(&event.data).unwrap_or_default();
    match event.kind.as_str() {
        "member" => {
            let m = &data["member"];
            let (group, name) = (data["group"].as_str().unwrap_or_default(), m["name"].as_str().unwrap_or_default());
            let change = data["change"].as_str().unwrap_or_default();
            format!("{now}  member    {group}  {name}  {change}: {}", describe(m, change))
        }
        "decision" => format!(
            "{now}  decision  {}  {} -> {}  {}{}",
            data["group"].as_str().unwrap_or("-"),
            data["from"],
            data["to"],
            data["reason"].as_str().unwrap_or_default(),
            if data["applied"] == true { "" } else { " (not applied)" }
        ),
        "snapshot" => {
            let groups: Vec<String> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| {
                    format!(
                        "{} ({})",
                        g["name"].as_str().unwrap_or_default(),
                        g["members"].as_array().map_or(0, Vec::len)
                    )
                })
                .collect();
            format!("{now}  snapshot  {}", if groups.is_empty() { "no group".to_owned() } else { groups.join(", ") })
        }
        other => format!("{now}  {other}  {}", event.data),
    }
}

/// `replicator group NAME`: one group in detail.
#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Group name.
    name: String,
    /// The API's JSON (the group and its recent decisions) instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub fn group(args: GroupArgs) -> anyhow::Result<()> {
    let name = GroupName::parse(&args.name)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = args.connection.client()?;
    let (group, decisions) = runtime.block_on(async {
        let group = answer_of(&client, Method::GET, &format!("/v1/groups/{}", name.as_str()), None).await?;
        let decisions =
            answer_of(&client, Method::GET, &format!("/v1/groups/{}/decisions", name.as_str()), None).await?;
        anyhow::Ok((group, decisions))
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "group": group, "decisions": decisions }))?);
    } else {
        print!("{}", detail(&group, &decisions));
    }
    Ok(())
}

/// Members (or standbys) under `title`, in aligned columns.
fn members_table(title: &str, members: &Value) -> String {
    let mut rows =
        vec![["NAME", "STATE", "READY", "HEALTH", "PROBE", "ORIGINAL", "CREATED"].map(String::from).to_vec()];
    for m in members.as_array().into_iter().flatten() {
        let text = |k: &str| m[k].as_str().unwrap_or("-").to_owned();
        rows.push(vec![
            text("name"),
            text("state"),
            (m["ready"] == true).to_string(),
            text("health"),
            text("probe"),
            (m["original"] == true).to_string(),
            text("created"),
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut text = format!("{title}:\n");
    for r in &rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        text.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
    }
    text
}

/// The text of `replicator group`.
fn detail(g: &Value, decisions: &Value) -> String {
    let mut out = format!(
        "{} ({})\n{} running{}, bounds [{}, {}]\n",
        g["name"].as_str().unwrap_or_default(),
        g["kind"].as_str().unwrap_or_default(),
        g["replicas"],
        if g["asleep"] == true { ", asleep" } else { "" },
        g["min"].as_u64().map_or("-".to_owned(), |n| n.to_string()),
        g["max"].as_u64().map_or("-".to_owned(), |n| n.to_string()),
    );
    for key in ["error", "conflict"] {
        if let Some(text) = g[key].as_str() {
            out.push_str(&format!("{key}: {text}\n"));
        }
    }
    out.push_str(&members_table("members", &g["members"]));
    if g["warm"].as_u64().unwrap_or(0) > 0 || g["standbys"].as_array().is_some_and(|s| !s.is_empty()) {
        out.push_str(&format!("standbys (warm {}):\n", g["warm"]));
        out.push_str(&members_table("", &g["standbys"]).replacen(":\n", "", 1));
    }
    if !g["schedule"].is_null() {
        out.push_str(&format!("schedule: {}\n", g["schedule"]));
    }
    if !g["autoscale"].is_null() {
        out.push_str(&format!("autoscale: {}\n", g["autoscale"]));
    }
    let recent: Vec<&Value> = decisions.as_array().into_iter().flatten().rev().take(5).collect();
    if !recent.is_empty() {
        out.push_str("last decisions:\n");
        for d in recent.into_iter().rev() {
            out.push_str(&format!(
                "  {}  {} -> {}  {}\n",
                d["at"].as_str().unwrap_or_default(),
                d["from"],
                d["to"],
                d["reason"].as_str().unwrap_or_default()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_reads_as_its_state_and_the_checks_it_waits_for() {
        assert_eq!(describe(&json!({"state": "running", "ready": true}), "changed"), "ready");
        assert_eq!(
            describe(&json!({"state": "running", "ready": false, "health": null, "probe": "starting"}), "changed"),
            "running, not ready (probe: starting)"
        );
        assert_eq!(describe(&json!({"state": "starting", "ready": false}), "created"), "starting");
    }

    #[test]
    fn events_read_as_lines_of_text_or_json() {
        let member = SseEvent {
            id: Some(3),
            kind: "member".into(),
            data: json!({"group": "web", "change": "created", "member": {"name": "web-2", "state": "starting", "ready": false}}).to_string(),
        };
        assert!(text_line(&member).ends_with("member    web  web-2  created: starting"), "{}", text_line(&member));
        let decision = SseEvent {
            id: Some(4),
            kind: "decision".into(),
            data: json!({"group": "web", "from": 1, "to": 3, "reason": "busy", "applied": true}).to_string(),
        };
        assert!(text_line(&decision).ends_with("decision  web  1 -> 3  busy"));
        let line: Value = serde_json::from_str(&json_line(&member)).unwrap();
        assert_eq!((line["id"].as_u64(), line["event"].as_str()), (Some(3), Some("member")));
    }

    #[test]
    fn a_group_in_detail_lists_members_with_readiness_and_the_last_decisions() {
        let g = json!({"name": "web", "kind": "containers", "replicas": 2, "asleep": false, "min": 1, "max": 4, "warm": 0,
            "members": [{"name": "web", "state": "running", "ready": true, "health": null, "probe": "healthy", "original": true, "created": "2026-12-01T00:00:00Z"}],
            "standbys": [], "schedule": null, "autoscale": null});
        let text = detail(&g, &json!([{"at": "2026-12-01T00:01:00Z", "from": 1, "to": 2, "reason": "busy"}]));
        assert!(text.starts_with("web (containers)\n2 running, bounds [1, 4]\n"), "{text}");
        assert!(text.contains("web   running  true   -       healthy  true"), "{text}");
        assert!(text.contains("2026-12-01T00:01:00Z  1 -> 2  busy"), "{text}");
    }
}
