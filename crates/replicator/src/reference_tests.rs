//! `docs/reference.md` against the code: every flag, label, route and metric
//! the code defines has its row in the reference (and the route index of the
//! README), and every row names something that still exists. Each failure
//! names exactly what is missing or stale.
//!
//! Sources of truth:
//! - flags: clap's definition of [`crate::cli::Cli`], every subcommand;
//! - labels: the `pub const NAME: &str = "..."` label names in the source
//!   (they are spread over `rules/labels.rs`, `rules/policy.rs`,
//!   `rules/schedule.rs` and `rules/alerts.rs`, so every file under `src/` is
//!   read, and no list has to be kept);
//! - routes: the API's OpenAPI description (as the API serves it); the admin
//!   and wake listeners have no machine-readable list, so theirs are listed
//!   here ([`ADMIN_ROUTES`], [`WAKE_ROUTES`]) and probed against their routers;
//! - metrics: every `register("name", "help", ...)` call next to the
//!   registry's `Registry::with_prefix` (the source, again), and the `# TYPE`
//!   lines and sample labels of the `/metrics` text of a registry with one
//!   sample per family ([`populated`]): prometheus-client writes nothing, not
//!   even `# TYPE`, for a family without samples.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::autoscale::AutoscaleHandle;
use crate::engine::fake::FakeEngine;
use crate::inventory::Scope;
use crate::service::Replicator;

/// The admin listener's routes (`http/admin/mod.rs`, `router`): it has no list
/// a test can read, so a route added there needs a line here too.
const ADMIN_ROUTES: &[(&str, &str)] =
    &[("GET", "/"), ("POST", "/groups/{name}/scale"), ("GET", "/healthz"), ("GET", "/metrics")];

/// The wake listener's one route (`http/wake.rs`, `router`): a fallback that
/// holds every method on every path, written `ANY /{*path}` in the docs.
const WAKE_ROUTES: &[(&str, &str)] = &[("ANY", "/{*path}")];

/// The doc's names for the three listeners (the route tables' third column).
const API: &str = "API";
const ADMIN: &str = "admin";
const WAKE: &str = "wake";

fn repository_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn reference() -> String {
    repository_file("docs/reference.md")
}

/// The lines under the heading line `heading` (exact), up to the next heading
/// of the same or a higher level; `None` when the heading is absent. A `#`
/// line inside a fenced code block is no heading.
fn section(doc: &str, heading: &str) -> Option<String> {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut lines = doc.lines();
    lines.by_ref().find(|line| line.trim_end() == heading)?;
    let mut out = String::new();
    let mut fenced = false;
    for line in lines {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !fenced && hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// The headings of exactly `level` in `text`, without their hashes.
fn headings(text: &str, level: usize) -> Vec<String> {
    let marker = format!("{} ", "#".repeat(level));
    text.lines().filter_map(|l| l.strip_prefix(marker.as_str())).map(|h| h.trim().to_owned()).collect()
}

/// The cells of every table row in `text` (`\|` stays inside its cell).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let l = l.replace("\\|", "\u{0}");
            let inner = l.trim_start_matches('|').trim_end_matches('|');
            inner.split('|').map(|c| c.replace('\u{0}', "|").trim().to_owned()).collect()
        })
        .collect()
}

/// The first `code span` of a cell.
fn code(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// Fails naming every problem, one per line.
fn report(kind: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "the docs and the code disagree on {kind}:\n  - {}", problems.join("\n  - "));
}

// ---------------------------------------------------------------- flags

/// Every subcommand that takes arguments, as `replicator serve`, `replicator certs init`...
fn leaves(command: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    let mut subcommands = command.get_subcommands().filter(|c| c.get_name() != "help").peekable();
    if subcommands.peek().is_none() {
        out.push((path.to_owned(), command.clone()));
    }
    for sub in subcommands {
        leaves(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_flag_of_every_subcommand_has_its_row_in_the_reference() {
    let doc = reference();
    let Some(flags) = section(&doc, "## Flags") else { return report("flags", vec!["no `## Flags` section".into()]) };
    let cli = <crate::cli::Cli as clap::CommandFactory>::command();
    let mut commands = Vec::new();
    leaves(&cli, "replicator", &mut commands);
    let mut problems = Vec::new();
    for (name, command) in &commands {
        let heading = format!("### `{name}`");
        let Some(table) = section(&flags, &heading) else {
            problems.push(format!("`{name}` has no section (a heading {heading} under `## Flags`)"));
            continue;
        };
        // Doc rows by flag: the first word of the first cell's code span.
        let documented: BTreeMap<String, Vec<String>> = rows(&table)
            .into_iter()
            .filter_map(|row| {
                let flag = code(row.first()?)?.split_whitespace().next()?.to_owned();
                flag.starts_with("--").then_some((flag, row))
            })
            .collect();
        let mut defined = BTreeSet::new();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let flag = format!("--{long}");
            defined.insert(flag.clone());
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let Some(row) = documented.get(&flag) else {
                let env = env.map(|e| format!(" (env {e})")).unwrap_or_default();
                problems.push(format!("`{name} {flag}`{env} has no row under {heading}"));
                continue;
            };
            let doc_env = row.get(1).and_then(|c| code(c)).map(str::to_owned);
            if doc_env != env {
                problems.push(format!(
                    "`{name} {flag}`: the code reads env {}, the doc says {}",
                    env.as_deref().unwrap_or("none"),
                    doc_env.as_deref().unwrap_or("none")
                ));
            }
            let defaults: Vec<String> =
                arg.get_default_values().iter().map(|d| d.to_string_lossy().into_owned()).collect();
            if arg.get_action().takes_values() && !defaults.is_empty() {
                let default = defaults.join(",");
                let cell = row.get(2).map(String::as_str).unwrap_or_default();
                if !cell.contains(&format!("`{default}`")) {
                    problems.push(format!("`{name} {flag}`: the default is `{default}`, the doc says {cell:?}"));
                }
            }
        }
        for flag in documented.keys().filter(|f| !defined.contains(*f)) {
            problems.push(format!("{heading} has a row for `{flag}`, which `{name}` does not take"));
        }
    }
    let names: BTreeSet<String> = commands.iter().map(|(n, _)| format!("`{n}`")).collect();
    for heading in headings(&flags, 3).into_iter().filter(|h| !names.contains(h)) {
        problems.push(format!("`## Flags` has a section ### {heading}, which is no subcommand"));
    }
    report("flags", problems);
}

// ---------------------------------------------------------------- labels

/// Every `.rs` file under `dir`, recursively, but this one (it quotes the
/// patterns it looks for).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("reference_tests.rs") {
            out.push(path);
        }
    }
}

/// Whether a string constant's value is a label name replicator reads or
/// writes: its own (`replicator.*`), an alert's (`replicator_*`), or
/// compose's and Swarm's (`com.docker.*`).
fn is_label(value: &str) -> bool {
    value.starts_with("replicator.") || value.starts_with("replicator_") || value.starts_with("com.docker.")
}

/// `pub const NAME: &str = "value";` lines whose value is a label name, as
/// value → where it is defined.
fn labels_in_source() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut labels = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("pub const ") else { continue };
            let Some((name, value)) = rest.split_once(": &str = \"") else { continue };
            let Some(value) = value.strip_suffix("\";") else { continue };
            if is_label(value) {
                let place = file.strip_prefix(&src).unwrap_or(&file).display().to_string();
                labels.insert(value.to_owned(), format!("{place} ({name})"));
            }
        }
    }
    labels
}

#[test]
fn every_label_has_its_row_in_the_reference() {
    let doc = reference();
    let Some(section) = section(&doc, "## Labels") else {
        return report("labels", vec!["no `## Labels` section".into()]);
    };
    let defined = labels_in_source();
    assert!(defined.contains_key("replicator.enable"), "the label constants were not found: {defined:?}");
    // A label's row: the first cell's code span, up to a `=` or a space.
    let documented: BTreeSet<String> = rows(&section)
        .iter()
        .filter_map(|row| code(row.first()?))
        .filter_map(|c| c.split(['=', ' ']).next())
        .map(str::to_owned)
        .collect();
    let mut problems: Vec<String> = defined
        .iter()
        .filter(|(label, _)| !documented.contains(*label))
        .map(|(label, place)| format!("label `{label}` (src/{place}) has no row under `## Labels`"))
        .collect();
    // Patterns such as `traefik.http.routers.<router>.service` are written by
    // code, not named by a constant: only concrete names are checked back.
    for label in documented.iter().filter(|l| is_label(l) && !l.contains('<')) {
        if !defined.contains_key(label) {
            problems.push(format!("`## Labels` has a row for `{label}`, which no constant in src/ names"));
        }
    }
    report("labels", problems);
}

// ---------------------------------------------------------------- routes

/// A service over an empty fake engine, and the autoscaler's handle on it.
async fn service() -> (Replicator, Arc<AutoscaleHandle>) {
    let service = Replicator::for_test(Arc::new(FakeEngine::default()), Scope::default()).await;
    let autoscale = AutoscaleHandle::new(
        Arc::new(service.clone()),
        service.events().clone(),
        false,
        std::time::Duration::from_secs(15),
    );
    (service, autoscale)
}

async fn send(router: axum::Router, method: &str, path: &str) -> (StatusCode, String) {
    let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("a request");
    let response = router.oneshot(request).await.expect("the router answers");
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("a body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The API's operations as its OpenAPI description lists them: (METHOD, path).
async fn api_routes() -> BTreeSet<(String, String)> {
    let (service, autoscale) = service().await;
    let app = crate::http::api::router(crate::http::api::AppState {
        service,
        autoscale,
        rate_limit: None,
        alerts: crate::http::api::AlertReceiver::new(crate::rules::alerts::DEFAULT_GROUP_LABEL),
        // No certificate here: reading the description needs the operator's leave.
        unbound: crate::rules::access::UnboundPolicy::Operator,
        forwarder: None,
    });
    let (status, body) = send(app, "GET", "/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("the description is JSON");
    let paths = doc["paths"].as_object().expect("the description has paths");
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        for method in methods.iter().filter(|m| item.get(**m).is_some()) {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

/// The hand-kept lists of the admin and wake listeners, checked against
/// their routers: each listed route is routed (not the router's empty 404,
/// not a 405), and the wake listener takes any method on any path.
async fn check_unlisted_routers() {
    let (service, autoscale) = service().await;
    let admin = crate::http::admin::router(crate::http::admin::AdminState {
        actions: None,
        tls: None,
        service: service.clone(),
        autoscale,
        unbound: Default::default(),
    });
    for (method, path) in ADMIN_ROUTES {
        let concrete = path.replace("{name}", "web");
        let (status, body) = send(admin.clone(), method, &concrete).await;
        let unrouted = status == StatusCode::METHOD_NOT_ALLOWED || (status == StatusCode::NOT_FOUND && body.is_empty());
        assert!(!unrouted, "ADMIN_ROUTES lists {method} {path}, which the admin router does not route ({status})");
    }
    let second = std::time::Duration::from_secs(1);
    let settings = crate::http::wake::WakeSettings {
        queue: 10,
        timeout: second,
        forward_timeout: second,
        max_held_bytes: 1 << 20,
        page: None,
    };
    let wake = crate::http::wake::router(service, settings);
    for (method, path) in [("GET", "/"), ("DELETE", "/any/path"), ("PATCH", "/x?y=z")] {
        let (status, body) = send(wake.clone(), method, path).await;
        assert!(
            status == StatusCode::BAD_REQUEST && body.contains(crate::http::wake::GROUP_HEADER),
            "the wake listener no longer holds {method} {path} ({status} {body}): update WAKE_ROUTES and the docs"
        );
    }
}

/// The route index's rows in `text`: (listener, METHOD, path), from rows
/// whose first two cells are code spans and whose third names a listener.
fn documented_routes(text: &str) -> BTreeSet<(String, String, String)> {
    rows(text)
        .iter()
        .filter_map(|row| {
            let method = code(row.first()?)?;
            let path = code(row.get(1)?)?;
            let listener = row.get(2)?.trim();
            [API, ADMIN, WAKE].contains(&listener).then(|| (listener.to_owned(), method.to_owned(), path.to_owned()))
        })
        .collect()
}

fn route_problems(file: &str, heading: &str, text: &str, code: &BTreeSet<(String, String, String)>) -> Vec<String> {
    let Some(index) = section(text, heading) else { return vec![format!("{file} has no `{heading}` section")] };
    let documented = documented_routes(&index);
    let mut problems: Vec<String> = code
        .difference(&documented)
        .map(|(listener, method, path)| format!("{file}: `{method} {path}` ({listener}) has no row under `{heading}`"))
        .collect();
    problems.extend(documented.difference(code).map(|(listener, method, path)| {
        format!("{file}: `{heading}` has a row for `{method} {path}` ({listener}), which no listener routes")
    }));
    problems
}

#[tokio::test]
async fn every_route_of_every_listener_has_its_row_in_the_reference_and_the_readme() {
    check_unlisted_routers().await;
    let mut code: BTreeSet<(String, String, String)> =
        api_routes().await.into_iter().map(|(m, p)| (API.to_owned(), m, p)).collect();
    assert!(code.len() >= 14, "the OpenAPI description lists only {} operations", code.len());
    for (listener, routes) in [(ADMIN, ADMIN_ROUTES), (WAKE, WAKE_ROUTES)] {
        code.extend(routes.iter().map(|(m, p)| (listener.to_owned(), m.to_string(), p.to_string())));
    }
    let mut problems = route_problems("docs/reference.md", "## Routes", &reference(), &code);
    problems.extend(route_problems("README.md", "## Routes", &repository_file("README.md"), &code));
    report("routes", problems);
}

// ---------------------------------------------------------------- metrics

/// The metric families registered in the source: in every file that makes a
/// `Registry::with_prefix("P")`, each `.register("name", "help", ...)` call,
/// as `P_name` → (help, file).
fn metrics_in_source() -> BTreeMap<String, (String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut metrics = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let Some((_, after)) = text.split_once("Registry::with_prefix(\"") else { continue };
        let prefix = after.split('"').next().unwrap_or_default();
        let place = file.strip_prefix(&src).unwrap_or(&file).display().to_string();
        assert!(
            !text.contains("register_with_unit("),
            "src/{place} registers a metric with a unit: teach reference_tests::metrics_in_source to read it"
        );
        // `registry.register("name", "help", …)`, or telemetry's one-line `add(&mut registry, "name", "help", …)`.
        let calls = text.split(".register(").skip(1).chain(text.split("add(&mut registry,").skip(1));
        for call in calls.filter(|c| c.trim_start().starts_with('"')) {
            // The call's first two string literals: the name and the help.
            let mut literals = call.split('"').skip(1).step_by(2);
            let (Some(name), Some(help)) = (literals.next(), literals.next()) else { continue };
            metrics.insert(format!("{prefix}_{name}"), (help.to_owned(), place.clone()));
        }
    }
    metrics
}

/// The registry with one sample in every family: prometheus-client leaves a
/// family without samples out of the text altogether, `# TYPE` line
/// included. A metric added to `Telemetry` needs a sample here for its type
/// and labels to be checked (the test says so).
fn populated() -> crate::base::telemetry::Telemetry {
    use crate::base::telemetry::{DecisionLabels, GroupLabel, WorkerLabel};
    let telemetry = crate::base::telemetry::Telemetry::default();
    telemetry.replication("web", "created", 0.1);
    telemetry.engine_error("timeout");
    telemetry.engine_call("ping");
    telemetry.tls_handshake_failure("timeout");
    telemetry.tls_connection_closed("revoked");
    telemetry.group_size.get_or_create(&GroupLabel { group: "web".into() }).set(1);
    telemetry.group_desired.get_or_create(&GroupLabel { group: "web".into() }).set(1);
    telemetry.decisions.get_or_create(&DecisionLabels { group: "web".into(), direction: "up".into() }).inc();
    telemetry.job_panics.get_or_create(&WorkerLabel { worker: "keeper".into() }).inc();
    telemetry.capacity_phase("cold", "ready", std::time::Duration::from_millis(300));
    telemetry.wake_request("held");
    telemetry.front_event("web", "accepted");
    telemetry.front_bytes("web", 10, 20);
    telemetry.front_open("web", "web-2", 1);
    telemetry.ceiling_refusals.get_or_create(&crate::base::telemetry::CeilingLabel { ceiling: "rate".into() }).inc();
    telemetry
        .access_denied
        .get_or_create(&crate::base::telemetry::DeniedLabels { route: "/v1/metrics".into(), identity: "app".into() })
        .inc();
    telemetry
}

/// What the `/metrics` text says of each family: its type, and the label
/// names of its samples (a histogram's `le` left out).
fn metrics_in_text(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .map(|(family, kind)| (family.to_owned(), (kind.to_owned(), BTreeSet::new())))
        .collect();
    for sample in text.lines().filter(|l| !l.starts_with('#')) {
        let name = sample.split(['{', ' ']).next().unwrap_or_default();
        let Some(family) = families.keys().filter(|f| name.starts_with(f.as_str())).max_by_key(|f| f.len()).cloned()
        else {
            continue;
        };
        let labels = sample.split_once('{').and_then(|(_, rest)| rest.split_once('}')).map_or("", |(l, _)| l);
        let names = labels.split(',').filter_map(|pair| pair.split_once('=')).map(|(k, _)| k.trim().to_owned());
        families.entry(family).or_default().1.extend(names.filter(|k| k != "le"));
    }
    families
}

#[test]
fn every_metric_has_its_row_in_the_reference() {
    let doc = reference();
    let Some(section) = section(&doc, "## Metrics") else {
        return report("metrics", vec!["no `## Metrics` section".into()]);
    };
    let registered = metrics_in_source();
    assert!(registered.len() >= 8, "the registry's metrics were not found in the source: {registered:?}");
    let exposed = metrics_in_text(&populated().encode());
    // A metric's row: name (code span), type, labels, help.
    let documented: BTreeMap<String, Vec<String>> = rows(&section)
        .into_iter()
        .filter_map(|row| Some((code(row.first()?)?.to_owned(), row)))
        .filter(|(name, _)| name.starts_with("replicator_"))
        .collect();
    let mut problems = Vec::new();
    let mut expected = BTreeSet::new();
    let families: BTreeSet<&String> = registered.keys().chain(exposed.keys()).collect();
    for family in families {
        let (help, place) = registered.get(family).cloned().unwrap_or_default();
        let Some((kind, labels)) = exposed.get(family) else {
            // Unknown type: its row may name it with or without `_total`.
            problems.push(format!(
                "metric `{family}` (src/{place}) has no sample in reference_tests::populated: give it one, so \
                 that its type and labels are checked"
            ));
            expected.insert(family.clone());
            expected.insert(format!("{family}_total"));
            if !documented.contains_key(family) && !documented.contains_key(&format!("{family}_total")) {
                problems.push(format!("metric `{family}` ({help}) has no row under `## Metrics`"));
            }
            continue;
        };
        // The name a query uses: a counter's samples carry `_total`.
        let name = if kind == "counter" { format!("{family}_total") } else { family.clone() };
        expected.insert(name.clone());
        let Some(row) = documented.get(&name) else {
            problems.push(format!("metric `{name}` ({kind}, labels {labels:?}: {help}) has no row under `## Metrics`"));
            continue;
        };
        let doc_kind = row.get(1).map(|c| c.trim_matches('`')).unwrap_or_default();
        if doc_kind != kind {
            problems.push(format!("metric `{name}` is a {kind}, the doc says {doc_kind:?}"));
        }
        let doc_labels = row.get(2).map(String::as_str).unwrap_or_default();
        for label in labels.iter().filter(|l| !doc_labels.contains(&format!("`{l}`"))) {
            problems.push(format!("metric `{name}`: its label `{label}` is not in the doc's labels {doc_labels:?}"));
        }
        let doc_help = row.get(3).map(|c| c.trim_end_matches('.')).unwrap_or_default();
        if registered.contains_key(family) && doc_help != help {
            problems.push(format!("metric `{name}`: the help is {help:?}, the doc says {doc_help:?}"));
        }
    }
    for name in documented.keys().filter(|n| !expected.contains(*n)) {
        problems.push(format!("`## Metrics` has a row for `{name}`, which the registry does not export"));
    }
    report("metrics", problems);
}
