//! The API's content rules, one middleware over every route, so that a
//! browser holding a client certificate cannot be driven by another site:
//! request bodies must be `application/json` (415 otherwise), routes that
//! take no body refuse one (400), and state-changing requests a browser marks
//! cross-site are refused (403; the rule is [`crate::http::listener::origin`]).
//! A method the path does not route has no rule: the router answers it 405
//! (with `Allow`), whatever its body.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::base::quote::clip;
use crate::http::listener::{json_refusal, origin};

/// Request bodies above this are refused with 413 before any handler runs.
pub const MAX_BODY: usize = 64 * 1024;

/// What a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The route reads a JSON body; every other route refuses a body.
    pub json_body: bool,
    /// The route changes something: cross-site requests are refused.
    pub changes_state: bool,
}

/// The rule of a route, given its method and matched path (`/v1/groups/{name}`);
/// `None` when that method is not routed there.
pub type Rules = fn(&Method, &str) -> Option<Rule>;

/// The middleware: refuses what the route's rule does not allow, before any handler runs.
pub async fn check(State(rules): State<Rules>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or(req.uri().path(), MatchedPath::as_str);
    let Some(rule) = rules(req.method(), route) else {
        // Not an operation: the router's 405 comes before any content rule.
        return next.run(req).await;
    };
    match refusal(rule, req.headers()) {
        None => next.run(req).await,
        Some((status, code, message)) if req.uri().path().starts_with("/v1/") => json_refusal(status, code, &message),
        Some((status, _, message)) => (status, message).into_response(),
    }
}

/// Why a request breaks `rule`: status, code and message.
fn refusal(rule: Rule, headers: &HeaderMap) -> Option<(StatusCode, &'static str, String)> {
    if rule.changes_state {
        if let Some(why) = origin::cross_site(headers, "https") {
            return Some((StatusCode::FORBIDDEN, "cross_site", format!("cross-site request refused: {why}")));
        }
    }
    if !has_body(headers) {
        return None;
    }
    if !rule.json_body {
        return Some((StatusCode::BAD_REQUEST, "bad_request", "this route takes no request body".into()));
    }
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>"));
    match content_type {
        Some(t) if is_json(t) => None,
        other => Some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be application/json, not {:?}", clip(other.unwrap_or("(none)"))),
        )),
    }
}

/// A body is coming: a non-zero `Content-Length`, or any `Transfer-Encoding`.
fn has_body(headers: &HeaderMap) -> bool {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).map(str::trim);
    headers.contains_key(header::TRANSFER_ENCODING) || declared.is_some_and(|n| n.parse::<u64>() != Ok(0))
}

/// `application/json`, optionally with `charset=utf-8`, nothing else.
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|p| {
            let p = p.replace('"', "");
            p.is_empty() || p.eq_ignore_ascii_case("charset=utf-8")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    const JSON: Rule = Rule { json_body: true, changes_state: true };

    #[test]
    fn bodies_must_be_json() {
        for ok in ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\""] {
            assert_eq!(refusal(JSON, &headers(&[("content-length", "2"), ("content-type", ok)])), None, "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            let refused = refusal(JSON, &headers(&[("content-length", "2"), ("content-type", bad)]));
            assert_eq!(refused.map(|r| r.0), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE), "{bad}");
        }
        let untyped = refusal(JSON, &headers(&[("transfer-encoding", "chunked")]));
        assert_eq!(untyped.map(|r| r.0), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(refusal(JSON, &headers(&[("content-length", "0")])), None, "no body, nothing to type");
    }

    #[test]
    fn routes_without_a_body_refuse_one() {
        let rule = Rule { json_body: false, changes_state: true };
        let body = headers(&[("content-length", "2"), ("content-type", "application/json")]);
        assert_eq!(refusal(rule, &body).map(|r| r.0), Some(StatusCode::BAD_REQUEST));
        assert_eq!(refusal(rule, &headers(&[("content-length", "0")])), None);
    }

    #[test]
    fn cross_site_requests_are_refused_only_where_they_change_something() {
        let cross = headers(&[("host", "localhost:8443"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(refusal(JSON, &cross).map(|r| r.1), Some("cross_site"));
        assert_eq!(refusal(Rule { json_body: false, changes_state: false }, &cross), None, "reading is harmless");
    }
}
