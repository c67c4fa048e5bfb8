//! What every operation can answer besides its handler's own outcomes: the
//! refusals of the layers in front of it, written into the description from
//! the same rules the layers apply. The listener refuses a declared body over
//! the limit (413) and a body that does not arrive in time (408); the rate
//! limit answers 429; the permission gate 403; the content rules 400 for a
//! body where none is taken, 415 for a body that is not JSON and 403 for a
//! state-changing request a browser marks cross-site.

use utoipa::openapi::{OpenApi, RefOr, Response};

use super::guard::{Rules, MAX_BODY};
use super::status::error_response;

/// One layer's refusal: status, description, whether it is JSON on every
/// path (the listener's and the rate limit's are; the others follow the
/// path: JSON on `/v1`, text on the original tool's routes).
struct Refusal {
    status: u16,
    description: String,
    always_json: bool,
}

/// The layers' refusals that `method` on `path` can meet.
fn refusals(rules: Rules, method: &axum::http::Method, path: &str) -> Vec<Refusal> {
    let Some(rule) = rules(method, path) else { return Vec::new() };
    let json_path = path.starts_with("/v1/");
    // A JSON refusal names its `code`; the original tool's text does not.
    let refusal = |status, text: &str, code: &str, always_json: bool| {
        let json = always_json || json_path;
        let description = if json { format!("{text} (`{code}`)") } else { text.to_owned() };
        Refusal { status, description, always_json }
    };
    let denied = "Refused: the caller's identity lacks the operation's permission";
    let mut all = vec![
        if !rule.changes_state {
            refusal(403, denied, "denied", false)
        } else if json_path {
            let text = format!("{denied} (`denied`), or a browser marked the request cross-site");
            refusal(403, &text, "cross_site", false)
        } else {
            refusal(403, &format!("{denied}, or a browser marked the request cross-site"), "", false)
        },
        refusal(413, &format!("The body is over {} KiB", MAX_BODY / 1024), "payload_too_large", true),
        refusal(429, "More requests from this address than `serve --rate-limit` allows", "rate_limited", true),
    ];
    if rule.json_body {
        let malformed = "A malformed body: not JSON, a key twice, or not the described shape";
        all.push(refusal(400, malformed, "bad_request", false));
        all.push(refusal(408, "The body did not arrive within `serve --body-timeout`", "request_timeout", true));
        all.push(refusal(415, "A body that is not `application/json`", "unsupported_media_type", false));
    } else {
        all.push(refusal(400, "A request body: this operation takes none", "bad_request", false));
    }
    all
}

/// Adds each operation's layer refusals to its responses: a status the
/// handler does not list gets the layer's answer; one it lists gets the
/// layer's reason and, where the layer answers in another format, that too.
/// `rules` are the content rules the guard applies (the route table's).
pub fn complete(doc: &mut OpenApi, rules: Rules) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let json_path = path.starts_with("/v1/");
        for (method, operation) in [
            (axum::http::Method::GET, item.get.as_mut()),
            (axum::http::Method::PUT, item.put.as_mut()),
            (axum::http::Method::POST, item.post.as_mut()),
            (axum::http::Method::DELETE, item.delete.as_mut()),
        ] {
            let Some(operation) = operation else { continue };
            for refusal in refusals(rules, &method, path) {
                let answer = error_response(&refusal.description, refusal.always_json || json_path);
                let responses = &mut operation.responses.responses;
                match responses.get_mut(&refusal.status.to_string()) {
                    None => {
                        responses.insert(refusal.status.to_string(), RefOr::T(answer));
                    }
                    Some(RefOr::T(listed)) => merge(listed, answer),
                    Some(RefOr::Ref(_)) => {}
                }
            }
        }
    }
}

/// `extra`'s reason and formats added to `listed`.
fn merge(listed: &mut Response, extra: Response) {
    if !listed.description.contains(&extra.description) {
        listed.description = match listed.description.trim() {
            "" => extra.description,
            text => format!("{}; or {}", text.trim_end_matches('.'), lowercase_first(&extra.description)),
        };
    }
    for (content_type, content) in extra.content {
        listed.content.entry(content_type).or_insert(content);
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    /// Every operation lists every status its layers can answer.
    #[test]
    fn every_operation_lists_its_layers_refusals() {
        let doc = serde_json::to_value(super::super::table::description()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let statuses = operation["responses"].as_object().unwrap();
                for status in ["400", "403", "413", "429"] {
                    assert!(statuses.contains_key(status), "{method} {path} does not list {status}");
                }
                let with_body = operation.get("requestBody").is_some();
                for status in ["408", "415"] {
                    assert_eq!(statuses.contains_key(status), with_body, "{method} {path}: {status}");
                }
                let json = statuses["413"]["content"].get("application/json").is_some();
                assert!(json, "{method} {path}: the listener's 413 is JSON everywhere");
                let text = statuses["403"]["content"].get("text/plain").is_some();
                assert_eq!(text, !path.starts_with("/v1/"), "{method} {path}: the gate's 403 follows the path");
            }
        }
    }
}
