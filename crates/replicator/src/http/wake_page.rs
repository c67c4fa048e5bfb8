//! The waiting page (`replicator.wake.page=true`): a person who opens a
//! sleeping app in a browser sees at once which group is waking, how long
//! it has taken and each phase as it completes, on a page that reloads
//! itself until a member is ready; the reload then reaches the app. Only a
//! browser's page load gets it (a `GET` that accepts `text/html`): an API
//! call is held as any other request. Every value is escaped, the page
//! carries no script, and no cache may keep it. An operator may replace it
//! (`serve --wake-page FILE`) with a template of their own.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::base::html::escape;
use crate::inventory::Group;

/// How often the page reloads itself, in seconds.
pub const REFRESH_SECONDS: u32 = 2;

/// Largest template `--wake-page` may name.
const MAX_TEMPLATE: usize = 64 * 1024;

/// The page replicator shows unless `--wake-page` names another. Its
/// placeholders are those a template may use: `{{group}}`, `{{waited}}`
/// (whole seconds), `{{phases}}` (a list) and `{{refresh}}` (seconds).
pub const DEFAULT_TEMPLATE: &str = "<!doctype html>
<html lang=en><head><meta charset=utf-8>
<meta http-equiv=refresh content=\"{{refresh}}\">
<meta name=viewport content=\"width=device-width, initial-scale=1\">
<title>Waking {{group}}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:4em auto;color:#222}li.done{color:#1a7f37}li{color:#777}</style>
</head><body>
<h1>Waking {{group}}</h1>
<p>It was asleep; it has been waking for {{waited}} s. This page reloads every {{refresh}} s and shows the app once it is ready.</p>
{{phases}}
</body></html>
";

/// One step of a wake, and whether it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// What the step is, in words (escaped when shown).
    pub what: String,
    /// Whether it completed.
    pub done: bool,
}

/// What one waiting page shows.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The group's name.
    pub group: String,
    /// Since the first page of this wake.
    pub waited: Duration,
    /// The wake's steps, in order.
    pub phases: Vec<Phase>,
}

/// Whether the request is a browser's page load: a `GET` that accepts
/// HTML. `Accept: application/json` (an API call) never is.
pub fn wants_page(method: &Method, headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    *method == Method::GET && accept.split(',').any(|kind| kind.trim().starts_with("text/html"))
}

/// The steps of a wake as `group` shows them now.
pub fn phases_of(group: &Group) -> Vec<Phase> {
    let mut phases = vec![Phase { what: "woken".into(), done: !group.asleep() }];
    for member in &group.members {
        let state = format!("{:?}", member.state).to_lowercase();
        phases.push(Phase { what: format!("{}: {state}", member.name), done: member.ready() });
    }
    phases.push(Phase { what: "ready".into(), done: group.members.iter().any(|m| m.ready()) });
    phases
}

/// The page from `template`, each placeholder replaced once, in one pass
/// (a value that looks like a placeholder stays text).
pub fn render(template: &str, waiting: &Waiting) -> String {
    let phases: String = waiting
        .phases
        .iter()
        .map(|p| {
            format!(
                "<li class={}>{} {}</li>",
                if p.done { "done" } else { "todo" },
                if p.done { "✓" } else { "…" },
                escape(&p.what)
            )
        })
        .collect();
    let value = |name: &str| match name {
        "group" => Some(escape(&waiting.group)),
        "waited" => Some(waiting.waited.as_secs().to_string()),
        "phases" => Some(format!("<ul>{phases}</ul>")),
        "refresh" => Some(REFRESH_SECONDS.to_string()),
        _ => None,
    };
    let (mut out, mut rest) = (String::with_capacity(template.len() + 256), template);
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}").and_then(|close| Some((close, value(&after[..close])?))) {
            Some((close, text)) => {
                out.push_str(&text);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The page as an answer: 503 with `Retry-After` and `Refresh` (a custom
/// template without its own reload reloads all the same), never cached.
pub fn response(html: String) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, html).into_response();
    let headers = response.headers_mut();
    let seconds = HeaderValue::from(REFRESH_SECONDS);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
    headers.insert(header::RETRY_AFTER, seconds.clone());
    headers.insert(header::REFRESH, seconds);
    response
}

/// `--wake-page FILE`: the operator's template, read once at start.
pub fn load(path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("--wake-page {}: {e}", path.display()))?;
    if bytes.len() > MAX_TEMPLATE {
        return Err(format!("--wake-page {}: larger than {MAX_TEMPLATE} bytes", path.display()));
    }
    String::from_utf8(bytes).map_err(|_| format!("--wake-page {}: not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Waiting {
        Waiting {
            group: "<script>alert(1)</script>".into(),
            waited: Duration::from_millis(3_700),
            phases: vec![
                Phase { what: "woken".into(), done: true },
                Phase { what: "web-2: \"><img src=x onerror=alert(2)>".into(), done: false },
                Phase { what: "{{group}}".into(), done: false },
            ],
        }
    }

    #[test]
    fn every_value_the_page_shows_is_escaped() {
        let html = render(DEFAULT_TEMPLATE, &hostile());
        assert!(!html.contains("<script") && !html.contains("<img"), "{html}");
        assert!(html.contains("Waking &lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"), "{html}");
        assert!(html.contains("for 3 s") && html.contains("content=\"2\""), "{html}");
        assert!(
            html.contains("<li class=todo>… {{group}}</li>"),
            "a value that looks like a placeholder stays text: {html}"
        );
    }

    #[test]
    fn a_template_gets_its_placeholders_and_keeps_what_it_does_not_know() {
        let html = render("<h1>{{group}}</h1>{{unknown}} {{waited}}s {{phases", &hostile());
        assert!(html.starts_with("<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>{{unknown}} 3s {{phases"), "{html}");
    }

    #[test]
    fn only_a_browsers_page_load_gets_a_page() {
        let accept = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, value.parse().unwrap());
            h
        };
        let browser = accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        assert!(wants_page(&Method::GET, &browser));
        assert!(!wants_page(&Method::POST, &browser), "a form post is held");
        assert!(!wants_page(&Method::GET, &accept("application/json")));
        assert!(!wants_page(&Method::GET, &accept("*/*")), "curl's default is held");
        assert!(!wants_page(&Method::GET, &HeaderMap::new()));
    }

    #[test]
    fn the_answer_reloads_and_is_never_cached() {
        let r = response("x".into());
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let h = r.headers();
        assert_eq!(h[header::REFRESH], "2");
        assert!(h[header::CACHE_CONTROL].to_str().unwrap().contains("no-store"));
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    }
}
