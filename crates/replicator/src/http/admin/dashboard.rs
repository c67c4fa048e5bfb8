//! The dashboard: one server-rendered page (no JavaScript packages) with the
//! groups, their members, the autoscaler's settings and last decisions, and
//! a chart per group of size and metric over the last 15 minutes. It
//! refreshes itself; its buttons scale through the same service code as the API.

use std::fmt::Write;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use tracing::warn;

use super::AdminState;
use crate::autoscale::board::{AutoscaleView, DecisionView, Sample, SERIES_SECONDS};
use crate::autoscale::NodeView;
use crate::base::clock;
use crate::base::html::escape;
use crate::base::id::GroupName;
use crate::http::listener::{origin, PeerIdentity};
use crate::inventory::{Group, MemberState};
use crate::model::EngineInfo;
use crate::service::ColdStart;

/// Seconds between automatic refreshes.
const REFRESH: u32 = 5;
/// Decisions shown per group.
const RECENT: usize = 5;

/// Everything the page shows of one group.
pub struct GroupPanel<'a> {
    /// The group as the inventory holds it.
    pub group: &'a Group,
    /// The autoscaler's settings and last decision.
    pub autoscale: Option<AutoscaleView>,
    /// Size and metric over the chart's span.
    pub series: Vec<Sample>,
    /// Recent decisions, oldest first.
    pub decisions: Vec<DecisionView>,
    /// A Swarm group's nodes and whether their agents report.
    pub nodes: Vec<NodeView>,
    /// Its last new members' ways to ready, oldest first.
    pub cold_starts: Vec<ColdStart>,
    /// Open connections through its TCP front, by member id (`None`: it has no front).
    pub connections: Option<std::collections::HashMap<String, u64>>,
}

/// The page itself.
pub async fn page(State(state): State<AdminState>, peer: Option<Extension<PeerIdentity>>) -> Response {
    let token = state.actions.as_ref().and_then(|a| a.token_for(peer_addr(&peer)));
    let now = clock::unix_now();
    match state.service.fresh_groups().await {
        Ok(groups) => {
            let panels: Vec<GroupPanel<'_>> = groups
                .iter()
                .map(|g| GroupPanel {
                    group: g,
                    autoscale: state.autoscale.view(g),
                    series: state.autoscale.series(g.name()),
                    decisions: state.autoscale.history(g.name()),
                    nodes: state.autoscale.nodes(g),
                    cold_starts: state.service.cold_starts(g.name()),
                    connections: g.front.as_ref().map(|_| {
                        let board = state.service.connections();
                        g.members.iter().map(|m| (m.id.clone(), board.open_to(&m.id))).collect()
                    }),
                })
                .collect();
            let engine = state.service.inventory().engine();
            let role = Some(role_line(state.service.acting()));
            let page = Page { engine: engine.as_ref(), warning: state.unbound.warning(), token, role };
            Html(render(&panels, &page, now)).into_response()
        }
        Err(e) => {
            let body = format!(
                "{}<p class=error>Cannot list the groups: {}</p></body></html>",
                head(),
                escape(&e.to_string())
            );
            (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response()
        }
    }
}

/// What the page needs besides the groups.
pub struct Page<'a> {
    /// What the engine is, as last probed.
    pub engine: Option<&'a EngineInfo>,
    /// A warning for everyone who opens the page.
    pub warning: Option<&'a str>,
    /// The forms' token, when the dashboard may act.
    pub token: Option<&'a str>,
    /// Who acts: this replicator, or another (with several, `--lease`).
    pub role: Option<String>,
}

/// Who acts, in words, for the page's head.
fn role_line(acting: &crate::service::acting::Acting) -> String {
    use crate::service::acting::Role;
    match (acting.role(), acting.leader()) {
        (Role::Acting, _) => "this replicator acts".to_owned(),
        (Role::Following, Some(leader)) => format!("another replicator acts: {leader}"),
        (Role::Following, None) => "no replicator holds the lease yet".to_owned(),
        (Role::Waiting, _) => "taking over from the running replicator".to_owned(),
        (Role::Released, _) => "handed over to its successor".to_owned(),
    }
}

/// The body of a +/− button.
#[derive(serde::Deserialize)]
pub struct ScaleForm {
    replicas: u32,
    /// The page's token: only a form of this page's carries it.
    token: Option<String>,
}

/// The buttons' target: a form POST, answered with a redirect to the page.
pub async fn scale(
    State(state): State<AdminState>,
    peer: Option<Extension<PeerIdentity>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Result<Form<ScaleForm>, FormRejection>,
) -> Response {
    let Some(actions) = state.actions.as_ref() else {
        return failure(
            StatusCode::FORBIDDEN,
            "the dashboard only shows: its actions are off (serve --dashboard-actions)",
        );
    };
    let Some(token) = actions.token_for(peer_addr(&peer)) else {
        let from = peer_addr(&peer).map_or_else(|| "an unknown address".to_owned(), |p| p.ip().to_string());
        warn!(peer = %from, "dashboard action refused: the peer is outside --dashboard-actions-from");
        let allowed: Vec<String> = actions.from.iter().map(ToString::to_string).collect();
        let why = format!(
            "the dashboard acts only for peers in --dashboard-actions-from ({}), not {from}",
            allowed.join(", ")
        );
        return failure(StatusCode::FORBIDDEN, &why);
    };
    if let Some(why) = post_refused(&headers) {
        return failure(StatusCode::FORBIDDEN, &why);
    }
    let Ok(group) = GroupName::parse(&name) else {
        return failure(StatusCode::BAD_REQUEST, "invalid group name");
    };
    let Ok(Form(form)) = form else {
        return failure(StatusCode::BAD_REQUEST, "expected a form with replicas=<number>");
    };
    if form.token.as_deref() != Some(token) {
        return failure(StatusCode::FORBIDDEN, "the form does not carry this page's token: reload the dashboard");
    }
    match state.service.scale(group.as_str(), form.replicas, "dashboard", None).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => failure(crate::http::api::status_of(&e).0, &e.to_string()),
    }
}

fn peer_addr(peer: &Option<Extension<PeerIdentity>>) -> Option<std::net::SocketAddr> {
    peer.as_ref().and_then(|Extension(p)| p.addr)
}

/// An answer to a button in the page's own style, with the way back.
fn failure(status: StatusCode, message: &str) -> Response {
    let body = format!("{}<p class=error>{}</p><p><a href=\"/\">Back</a></p></body></html>", head(), escape(message));
    (status, Html(body)).into_response()
}

/// Why a button's POST may not act, if it may not. A page on another site
/// must not drive these buttons: the listeners' one cross-site rule
/// ([`origin::cross_site`]) applies; and the listener must have been reached
/// by address or as localhost, so a name rebound to it by a hostile DNS
/// cannot pass for it.
fn post_refused(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(is_local_name) {
        return Some("the dashboard acts only when reached by IP address or as localhost".into());
    }
    if let Some(why) = origin::cross_site(headers, "http") {
        return Some(format!("cross-site request refused: {why}"));
    }
    // A program may omit both headers; the page's own form never does.
    let same_origin = headers.contains_key(header::ORIGIN)
        || headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    (!same_origin).then(|| "only the dashboard's own page may act: no Origin or Sec-Fetch-Site".to_owned())
}

/// `127.0.0.1:9090`, `[::1]:9090`, `localhost:9090`: names no DNS can rebind.
fn is_local_name(host: &str) -> bool {
    let hostname = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    hostname.eq_ignore_ascii_case("localhost") || hostname.parse::<std::net::IpAddr>().is_ok()
}

fn head() -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content={REFRESH}>\
         <title>replicator</title><style>{STYLE}</style></head><body><h1>replicator</h1>"
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222;background:#fafafa}\
    section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.2em}\
    table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}\
    .running{color:#1a7f37}.exited,.dead{color:#b42318}.error{color:#b42318}\
    form{display:inline}button{font-size:1em;padding:.2em .8em;margin-right:.3em}\
    .muted{color:#777}svg{background:#fff;border:1px solid #eee}";

/// The whole page; `engine` says what the engine is, as last probed.
pub fn render(panels: &[GroupPanel<'_>], page: &Page<'_>, now: i64) -> String {
    let mut html = head();
    if let Some(warning) = page.warning {
        let _ = write!(html, "<p class=error>{}</p>", escape(warning));
    }
    if let Some(role) = &page.role {
        let _ = write!(html, "<p class=muted>{}</p>", escape(role));
    }
    if let Some(e) = page.engine {
        let swarm = serde_json::to_value(e.swarm).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let _ = write!(
            html,
            "<p class=muted>engine: {} {} (API {}), swarm {}</p>",
            escape(&e.kind),
            escape(&e.version),
            escape(&e.api_version),
            swarm
        );
    }
    if panels.is_empty() {
        html.push_str(
            "<p class=muted>No group yet: label a container <code>replicator.enable=true</code> and replicate it.</p>",
        );
    }
    for panel in panels {
        group_section(&mut html, panel, page.token, now);
    }
    let _ = write!(html, "<p class=muted>Refreshes every {REFRESH} s.</p></body></html>");
    html
}

fn group_section(html: &mut String, panel: &GroupPanel<'_>, token: Option<&str>, now: i64) {
    let g = panel.group;
    let name = escape(g.name());
    let kind = serde_json::to_value(g.kind()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let running = g.running();
    let (min, max) = g.bounds.as_ref().map_or((u32::MAX, 0), |b| (b.min, b.max));
    let _ = write!(
        html,
        "<section id=\"group-{name}\"><h2>{name} <span class=muted>({kind})</span></h2>\
         <p><strong class=size>{running}</strong> running, "
    );
    match &g.bounds {
        Ok(b) => {
            let _ = write!(html, "bounds [{}, {}] ", b.min, b.max);
        }
        Err(reason) => {
            let _ = write!(html, "<span class=error>refuses changes: {}</span> ", escape(reason));
        }
    }
    // Buttons only where the dashboard may act; each form carries the page's token.
    for (label, to) in token.map_or(Vec::new(), |_| vec![("−", running.saturating_sub(1)), ("+", running + 1)]) {
        let disabled = if (to as u32) < min || (to as u32) > max || to == running { " disabled" } else { "" };
        let token = escape(token.unwrap_or_default());
        let _ = write!(
            html,
            "<form method=post action=\"/groups/{name}/scale\"><input type=hidden name=replicas value={to}>\
             <input type=hidden name=token value=\"{token}\"><button title=\"scale to {to}\"{disabled}>{label}</button></form>"
        );
    }
    members_part(html, panel, now);
    standbys_part(html, g);
    if g.asleep() {
        html.push_str("<p class=asleep>asleep: the next scale-up or request wakes it</p>");
    }
    nodes_part(html, &panel.nodes);
    cold_start_part(html, &panel.cold_starts, now);
    autoscale_part(html, panel.autoscale.as_ref(), &panel.decisions, now);
    html.push_str(&chart(&panel.series, max, now));
    html.push_str("</section>");
}

/// The members' table: state (and whether a running one is not ready yet),
/// age, open front connections when the group has a front.
fn members_part(html: &mut String, panel: &GroupPanel<'_>, now: i64) {
    let g = panel.group;
    let front = panel.connections.as_ref();
    let heading = if front.is_some() { "<th>connections</th>" } else { "" };
    let _ = write!(html, "</p><table><tr><th>member</th><th>state</th><th>age</th>{heading}<th></th></tr>");
    if let Some(conflict) = &g.conflict {
        let _ = write!(html, "<p class=muted>{}</p>", escape(conflict));
    }
    for m in &g.members {
        let age = if m.created == i64::MAX { String::new() } else { human_age(now - m.created) };
        let state = serde_json::to_value(m.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let waiting = if m.state.serves() && !m.ready() { " (not ready)" } else { "" };
        let open = front.map_or(String::new(), |c| format!("<td class=open>{}</td>", c.get(&m.id).unwrap_or(&0)));
        let _ = write!(
            html,
            "<tr><td>{}</td><td class={state}>{state}{waiting}</td><td>{age}</td>{open}<td>{}</td></tr>",
            escape(&m.name),
            if m.original { "original" } else { "" }
        );
    }
    html.push_str("</table>");
}

/// The standbys: how many are paused of those wanted, and how many warm up.
fn standbys_part(html: &mut String, g: &Group) {
    if g.warm == 0 && g.standbys.is_empty() {
        return;
    }
    let paused = g.standbys.iter().filter(|m| m.state == MemberState::Paused).count();
    let _ = write!(html, "<p class=standbys>standbys: {paused} paused of {} wanted", g.warm);
    let warming = g.standbys.len() - paused;
    if warming > 0 {
        let _ = write!(html, ", {warming} warming up");
    }
    html.push_str("</p>");
}

/// The last cold starts as a small timeline: one bar per new member, its
/// phases (create, start, running → ready) side by side at a common scale.
fn cold_start_part(html: &mut String, starts: &[ColdStart], now: i64) {
    if starts.is_empty() {
        return;
    }
    let total = |c: &ColdStart| c.create.unwrap_or(0.0) + c.start.unwrap_or(0.0) + c.ready.unwrap_or(0.0);
    let longest = starts.iter().map(total).fold(0.001_f64, f64::max);
    html.push_str("<table class=coldstarts><tr><th>new capacity</th><th>how</th><th>when</th><th>phases</th></tr>");
    for c in starts {
        let how = c.how.as_str();
        let _ =
            write!(html, "<tr><td>{}</td><td>{how}</td><td>{} ago</td><td>", escape(&c.member), human_age(now - c.at));
        for (phase, took, colour) in
            [("create", c.create, "#8ab4f8"), ("start", c.start, "#f4b400"), ("ready", c.ready, "#1a7f37")]
        {
            if let Some(seconds) = took {
                let width = (seconds / longest * 240.0).max(2.0);
                let _ = write!(
                    html,
                    "<span title=\"{phase} {ms:.0} ms\" style=\"display:inline-block;height:.8em;width:{width:.0}px;\
                     background:{colour}\"></span>",
                    ms = seconds * 1000.0
                );
            }
        }
        let ms = |t: Option<f64>| t.map_or("–".to_owned(), |s| format!("{:.0} ms", s * 1000.0));
        let _ = write!(
            html,
            " <span class=muted>create {} · start {} · ready {}</span>",
            ms(c.create),
            ms(c.start),
            ms(c.ready)
        );
        if let Some(why) = &c.failed {
            let _ = write!(html, " <span class=error>{}</span>", escape(why));
        }
        html.push_str("</td></tr>");
    }
    html.push_str("</table>");
}

/// One line per node of a Swarm group: its tasks, and whether its agent reports.
fn nodes_part(html: &mut String, nodes: &[NodeView]) {
    for n in nodes {
        let agent = match (n.reporting, n.local) {
            (true, _) => "agent reporting",
            (false, true) => "no agent; replicator reads its engine",
            (false, false) => "<span class=error>agent silent</span>",
        };
        let _ = write!(
            html,
            "<p class=node>node {} ({}, {}): {} tasks, {agent}</p>",
            escape(&n.hostname),
            escape(&n.id),
            escape(&n.state),
            n.tasks
        );
    }
}

fn autoscale_part(html: &mut String, autoscale: Option<&AutoscaleView>, decisions: &[DecisionView], now: i64) {
    match autoscale {
        None => html.push_str("<p class=muted>Not autoscaled.</p>"),
        Some(AutoscaleView::Invalid { error }) => {
            let _ = write!(html, "<p class=error>Autoscaling off: {}</p>", escape(error));
        }
        Some(AutoscaleView::Active { metric, target, min, max, current, desired, dry_run, .. }) => {
            let current = current.map(|c| format!("{c:.2}")).unwrap_or_else(|| "no value".into());
            let _ = write!(
                html,
                "<p>Autoscaled on <strong>{}</strong>: target {target} per member, bounds [{min}, {max}], \
                 current {current}, desired {desired}{}</p>",
                escape(metric),
                if *dry_run { " <strong>(dry-run)</strong>" } else { "" }
            );
            if !decisions.is_empty() {
                html.push_str("<table><tr><th>when</th><th>from</th><th>to</th><th>reason</th></tr>");
                for d in decisions.iter().rev().take(RECENT) {
                    let _ = write!(
                        html,
                        "<tr><td title=\"{}\">{} ago</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                        escape(&d.at),
                        age_of(&d.at, now),
                        d.from,
                        d.to,
                        escape(&d.reason),
                        if d.dry_run { " (dry-run)" } else { "" }
                    );
                }
                html.push_str("</table>");
            }
        }
    }
}

/// How long ago an RFC 3339 instant was, for people.
fn age_of(instant: &str, now: i64) -> String {
    clock::parse_rfc3339(instant).map(|t| human_age(now - t.timestamp())).unwrap_or_default()
}

fn human_age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// Size (blue) and metric (orange) over the last 15 minutes, as inline SVG.
pub fn chart(series: &[Sample], max_size: u32, now: i64) -> String {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    let x = |t: i64| W * (1.0 - (now - t).clamp(0, SERIES_SECONDS) as f64 / SERIES_SECONDS as f64);
    let size_top = f64::from(max_size.max(1));
    let metric_top = series.iter().filter_map(|s| s.2).fold(0.0f64, f64::max).max(1.0) * 1.1;
    let line = |points: Vec<(f64, f64)>, color: &str| -> String {
        if points.is_empty() {
            return String::new();
        }
        let path: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        format!("<polyline fill=none stroke=\"{color}\" stroke-width=2 points=\"{}\"/>", path.join(" "))
    };
    let sizes = series.iter().map(|(t, n, _)| (x(*t), H - H * f64::from(*n) / size_top)).collect();
    let metric = series.iter().filter_map(|(t, _, m)| m.map(|m| (x(*t), H - H * m / metric_top))).collect();
    format!(
        "<svg class=chart width={W} height={} viewBox=\"0 0 {W} {}\" role=img aria-label=\"size and metric, last 15 minutes\">\
         {}{}<text x=4 y={} font-size=11 fill=\"#2563eb\">size (0–{max_size})</text>\
         <text x=120 y={} font-size=11 fill=\"#d97706\">metric (0–{metric_top:.1})</text>\
         <text x={} y={} font-size=11 fill=\"#777\" text-anchor=end>last 15 min</text></svg>",
        H + 16.0,
        H + 16.0,
        line(sizes, "#2563eb"),
        line(metric, "#d97706"),
        H + 13.0,
        H + 13.0,
        W - 4.0,
        H + 13.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Member, MemberState};
    use crate::rules::bounds::Bounds;
    use crate::service::How;

    fn group(name: &str) -> Group {
        let member = |id: &str, original| Member {
            name: if original { "<b>web</b>".into() } else { format!("{id}-2") },
            original,
            created: 1_767_225_600,
            ..Member::for_test(id, MemberState::Running)
        };
        let mut g = Group::for_test(name, vec![member("abc", true), member("def", false)]);
        g.identity.original_id = "abc".into();
        g.bounds = Ok(Bounds { min: 1, max: 2 });
        g
    }

    fn panel(g: &Group) -> GroupPanel<'_> {
        GroupPanel {
            group: g,
            autoscale: None,
            series: Vec::new(),
            decisions: Vec::new(),
            nodes: Vec::new(),
            cold_starts: Vec::new(),
            connections: None,
        }
    }

    #[test]
    fn the_page_says_who_acts_escaped() {
        let g = group("web");
        let role = Some("another replicator acts: https://r2:8443/<b>".to_owned());
        let html = render(&[panel(&g)], &Page { engine: None, warning: None, token: None, role }, 1_767_225_660);
        assert!(html.contains("another replicator acts: https://r2:8443/&lt;b&gt;"), "{html}");
    }

    #[test]
    fn a_group_with_a_front_shows_each_members_open_connections() {
        let g = group("web");
        let mut p = panel(&g);
        p.connections = Some([("abc".to_owned(), 3)].into());
        let html = render(&[p], &Page { engine: None, warning: None, token: None, role: None }, 1_767_225_660);
        assert!(html.contains("<th>connections</th>"));
        assert!(html.contains("<td class=open>3</td>") && html.contains("<td class=open>0</td>"), "{html}");
        let plain = render(&[panel(&g)], &Page { engine: None, warning: None, token: None, role: None }, 1_767_225_660);
        assert!(!plain.contains("connections"));
    }

    #[test]
    fn the_last_cold_starts_show_as_a_timeline_of_their_phases() {
        let g = group("web");
        let start = |member: &str, how, ready| ColdStart {
            id: member.into(),
            member: member.into(),
            how,
            at: 1_767_225_600,
            create: (how == How::Cold).then_some(0.04),
            start: Some(0.2),
            ready,
            failed: None,
        };
        let mut p = panel(&g);
        p.cold_starts = vec![start("web-2", How::Cold, Some(1.2)), start("web", How::WakeFromStop, None)];
        let html = render(&[p], &Page { engine: None, warning: None, token: None, role: None }, 1_767_225_660);
        assert!(html.contains("<td>web-2</td><td>cold</td><td>60 s ago</td>"), "{html}");
        assert!(html.contains("create 40 ms · start 200 ms · ready 1200 ms"));
        assert!(html.contains("<td>wake-from-stop</td>") && html.contains("create – · start 200 ms · ready –"));
        assert!(html.contains("title=\"ready 1200 ms\""), "a bar per phase");
    }

    #[test]
    fn the_page_escapes_names_and_disables_buttons_at_the_bounds() {
        let g = group("web");
        let html =
            render(&[panel(&g)], &Page { engine: None, warning: None, token: Some("t0k"), role: None }, 1_767_225_660);
        assert!(html.contains("&lt;b&gt;web&lt;/b&gt;") && !html.contains("<b>web</b>"));
        assert!(html.contains("value=\"t0k\"><button title=\"scale to 1\">−"), "scale down allowed, with the token");
        assert!(html.contains("value=\"t0k\"><button title=\"scale to 3\" disabled>+"), "at max: + disabled");
        assert!(html.contains("60 s"), "the member's age");
        assert!(html.contains("http-equiv=refresh"));
        let shows = render(&[panel(&g)], &Page { engine: None, warning: None, token: None, role: None }, 1_767_225_660);
        assert!(!shows.contains("<button"), "no button where the dashboard may not act");
    }

    fn post_allowed(origin: Option<&str>, host: Option<&str>, fetch_site: Option<&str>) -> bool {
        let mut headers = HeaderMap::new();
        for (name, value) in [(header::ORIGIN, origin), (header::HOST, host)] {
            if let Some(value) = value {
                headers.insert(name, value.parse().unwrap());
            }
        }
        if let Some(site) = fetch_site {
            headers.insert("sec-fetch-site", site.parse().unwrap());
        }
        post_refused(&headers).is_none()
    }

    #[test]
    fn a_group_with_malformed_labels_shows_why_and_offers_no_button() {
        let mut g = group("web");
        g.bounds = Err("label replicator.max=\"-1\" is not a positive integer".into());
        let html =
            render(&[panel(&g)], &Page { engine: None, warning: None, token: Some("t0k"), role: None }, 1_767_225_660);
        assert!(html.contains("refuses changes: label replicator.max"), "{html}");
        assert_eq!(html.matches(" disabled>").count(), 2, "both buttons disabled");
    }

    #[test]
    fn buttons_act_only_for_this_listener_reached_by_address() {
        assert!(post_allowed(Some("http://127.0.0.1:9090"), Some("127.0.0.1:9090"), Some("same-origin")));
        assert!(post_allowed(Some("http://localhost:9090"), Some("localhost:9090"), None));
        assert!(post_allowed(Some("http://[::1]:9090"), Some("[::1]:9090"), None));
        assert!(!post_allowed(None, Some("127.0.0.1:9090"), None), "only the page itself: it sends an Origin");
        assert!(!post_allowed(Some("http://evil.example"), Some("127.0.0.1:9090"), None), "another site");
        assert!(!post_allowed(Some("https://127.0.0.1:9090"), Some("127.0.0.1:9090"), None), "another scheme");
        assert!(!post_allowed(Some("http://rebound.example:9090"), Some("rebound.example:9090"), None), "rebinding");
        assert!(!post_allowed(None, Some("127.0.0.1:9090"), Some("cross-site")), "a browser says cross-site");
        assert!(!post_allowed(None, Some("127.0.0.1:9090"), Some("same-site")), "another port of this host");
        assert!(!post_allowed(None, None, None));
    }

    #[test]
    fn the_chart_plots_size_and_metric() {
        let now = 10_000;
        let svg = chart(&[(now - 600, 1, Some(50.0)), (now, 3, Some(100.0))], 4, now);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("600.0,30.0"), "3 of 4 at the right edge: {svg}");
    }
}
