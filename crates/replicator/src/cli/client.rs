//! Client subcommands for people who would rather not write curl:
//! `groups`, `scale GROUP N`, `replicate ID [--count N]`, `wake GROUP`.
//! Where replicator answers and which certificates to use: flags, else
//! `REPLICATOR_SERVER`/`REPLICATOR_CERTS`, else the per-user defaults
//! ([`super::user_config`]), else `https://localhost:8443` and `./certs`.

use clap::Args;
use http::Method;
use serde_json::{json, Value};

use super::connection::{answer_of, Connection};
use crate::base::id::{ContainerRef, GroupName};

#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print the API's JSON instead of a table (as --format json).
    #[arg(long)]
    json: bool,
    /// Only the groups' names, one a line.
    #[arg(short, long)]
    quiet: bool,
    /// `table` (default), `json`, or a template such as '{{.Name}} {{.Replicas}}'
    /// (fields: Name, Kind, Replicas, Min, Max, Asleep).
    #[arg(long)]
    format: Option<String>,
}

/// `--wait [--timeout D]`, shared by the commands that make or wake members.
#[derive(Debug, Args)]
pub struct Wait {
    /// Answer once the new (or woken) members are ready: running, and healthy
    /// if they have a healthcheck. New replicas not ready in time are removed.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "60s", requires = "wait")]
    timeout: String,
}

impl Wait {
    /// `wait=ready&timeout=D` for a query string, when waiting.
    fn query(&self) -> Option<String> {
        let timeout: String = form_urlencoded::byte_serialize(self.timeout.as_bytes()).collect();
        self.wait.then(|| format!("wait=ready&timeout={timeout}"))
    }
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Group name.
    group: String,
    /// Members wanted, the original included.
    replicas: u32,
    #[command(flatten)]
    wait: Wait,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// Container id or name.
    id: String,
    #[arg(long, default_value_t = 1)]
    count: u32,
    #[command(flatten)]
    wait: Wait,
    #[command(flatten)]
    connection: Connection,
}

fn call(connection: &Connection, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = connection.client()?;
    runtime.block_on(answer_of(&client, method, path, body))
}

pub fn groups(args: GroupsArgs) -> anyhow::Result<()> {
    let groups = call(&args.connection, Method::GET, "/v1/groups", None)?;
    let list = groups.as_array().map(Vec::as_slice).unwrap_or_default();
    match (args.quiet, args.json, args.format.as_deref()) {
        (true, ..) => list.iter().for_each(|g| println!("{}", g["name"].as_str().unwrap_or_default())),
        (_, true, _) | (_, _, Some("json")) => println!("{}", serde_json::to_string_pretty(&groups)?),
        (_, _, None | Some("table")) => print!("{}", groups_table(list)),
        (_, _, Some(template)) => list.iter().for_each(|g| println!("{}", fill(template, g))),
    }
    Ok(())
}

/// A `--format` template filled with one group's fields (`{{.Name}}`...), as docker's.
fn fill(template: &str, g: &Value) -> String {
    let field = |name: &str| match name {
        "Name" => g["name"].as_str().unwrap_or_default().to_owned(),
        "Kind" => g["kind"].as_str().unwrap_or_default().to_owned(),
        "Replicas" => g["replicas"].to_string(),
        "Min" => bound(&g["min"]),
        "Max" => bound(&g["max"]),
        "Asleep" => g["asleep"].as_bool().unwrap_or(false).to_string(),
        other => format!("<no field {other}>"),
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else { break };
        out.push_str(&field(rest[start + 2..start + end].trim().trim_start_matches('.')));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out.replace("\\t", "\t")
}

/// A bound as a number, `-` while the group's labels make it invalid.
fn bound(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn groups_table(groups: &[Value]) -> String {
    let mut rows = vec![["NAME", "KIND", "REPLICAS", "MIN", "MAX", "STANDBYS", "MEMBERS"].map(String::from).to_vec()];
    for g in groups {
        // A member that is not simply running says what it is doing: web-3(draining).
        let members: Vec<String> = g["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let name = m["name"].as_str()?;
                Some(match m["state"].as_str() {
                    Some("running") | None if m["ready"] != false => name.to_owned(),
                    Some("running") | None => format!("{name}(not ready)"),
                    Some(state) => format!("{name}({state})"),
                })
            })
            .collect();
        let standbys = g["standbys"].as_array().map_or(0, |s| s.iter().filter(|m| m["state"] == "paused").count());
        let warm = g["warm"].as_u64().unwrap_or(0);
        let replicas = match g["asleep"].as_bool() {
            Some(true) => format!("{} (asleep)", g["replicas"]),
            _ => g["replicas"].to_string(),
        };
        rows.push(vec![
            g["name"].as_str().unwrap_or_default().to_owned(),
            g["kind"].as_str().unwrap_or_default().to_owned(),
            replicas,
            bound(&g["min"]),
            bound(&g["max"]),
            if warm == 0 && standbys == 0 { "-".to_owned() } else { format!("{standbys}/{warm}") },
            members.join(","),
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

pub fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let group = GroupName::parse(&args.group)?;
    let body = match args.wait.wait {
        true => json!({ "replicas": args.replicas, "wait": "ready", "timeout": args.wait.timeout }),
        false => json!({ "replicas": args.replicas }),
    };
    let path = format!("/v1/groups/{}/replicas", group.as_str());
    let watch = args.wait.wait.then(|| super::watch::Watched::Group(group.as_str().to_owned()));
    let g = super::watch::call_showing_progress(&args.connection, watch, Method::PUT, &path, Some(body))?;
    println!(
        "{}: {} running (min {}, max {})",
        g["name"].as_str().unwrap_or_default(),
        g["replicas"],
        bound(&g["min"]),
        bound(&g["max"])
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct WakeArgs {
    /// Group name.
    group: String,
    #[command(flatten)]
    wait: Wait,
    #[command(flatten)]
    connection: Connection,
}

/// `replicator wake GROUP`: wakes a sleeping group (nothing to do for one awake).
pub fn wake(args: WakeArgs) -> anyhow::Result<()> {
    let group = GroupName::parse(&args.group)?;
    let mut path = format!("/v1/groups/{}/wake", group.as_str());
    if let Some(query) = args.wait.query() {
        path.push_str(&format!("?{query}"));
    }
    let watch = args.wait.wait.then(|| super::watch::Watched::Group(group.as_str().to_owned()));
    let g = super::watch::call_showing_progress(&args.connection, watch, Method::POST, &path, None)?;
    println!("{}: {} running", g["name"].as_str().unwrap_or_default(), g["replicas"]);
    Ok(())
}

pub fn replicate(args: ReplicateArgs) -> anyhow::Result<()> {
    let id = ContainerRef::parse(&args.id)?;
    let mut path = format!("/v1/containers/{}/replicas?count={}", id.as_str(), args.count);
    if let Some(query) = args.wait.query() {
        path.push_str(&format!("&{query}"));
    }
    let watch = args.wait.wait.then_some(super::watch::Watched::NewMembers);
    let r = super::watch::call_showing_progress(&args.connection, watch, Method::POST, &path, None)?;
    for replica in r["replicas"].as_array().into_iter().flatten() {
        println!("{} {}", replica["id"].as_str().unwrap_or_default(), replica["name"].as_str().unwrap_or_default());
    }
    for note in r["notes"].as_array().into_iter().flatten() {
        eprintln!("note: {}", note.as_str().unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_template_takes_the_groups_fields() {
        let g = json!({"name": "web", "kind": "containers", "replicas": 2, "min": 1, "max": null, "asleep": false});
        assert_eq!(
            fill("{{.Name}}\\t{{ .Replicas }} [{{.Min}},{{.Max}}] {{.Nope}}", &g),
            "web\t2 [1,-] <no field Nope>"
        );
    }

    #[test]
    fn the_table_aligns_columns() {
        let groups = [json!({"name": "web", "kind": "containers", "replicas": 2, "min": 1, "max": 10,
                             "members": [{"name": "web"}, {"name": "web-2"}]})];
        assert_eq!(
            groups_table(&groups),
            "NAME  KIND        REPLICAS  MIN  MAX  STANDBYS  MEMBERS\nweb   containers  2         1    10   -         web,web-2\n"
        );
        let warm = [json!({"name": "api", "kind": "compose", "replicas": 0, "asleep": true, "min": 0, "max": 4,
                           "warm": 2, "standbys": [{"state": "paused"}], "members": [{"name": "api", "state": "sleeping"}]})];
        assert!(
            groups_table(&warm).contains("0 (asleep)  0    4    1/2       api(sleeping)"),
            "{}",
            groups_table(&warm)
        );
    }
}
