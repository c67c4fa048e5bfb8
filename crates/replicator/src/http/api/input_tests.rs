//! Property tests over every route's path, query and body: whatever arrives,
//! no panic, a 4xx with a message, and no engine call for invalid input.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use tower::ServiceExt;

use super::{router, AppState};
use crate::autoscale::AutoscaleHandle;
use crate::base::id::{ContainerRef, GroupName};
use crate::engine::fake::FakeEngine;
use crate::inventory::Scope;
use crate::service::Replicator;

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// Sends one request (a JSON body when there is one) to a fresh router over
/// an empty engine: (status, body, engine calls).
fn send(method: Method, path: &str, body: Vec<u8>) -> (StatusCode, String, usize) {
    let json: &[(&str, &str)] = if body.is_empty() { &[] } else { &[("content-type", "application/json")] };
    send_with(method, path, json, body)
}

/// `send` with the given headers only.
fn send_with(method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (StatusCode, String, usize) {
    let (status, _, text, calls) = exchange(method, path, headers, body);
    (status, text, calls)
}

/// `send_with`, with the response's headers too.
fn exchange(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, String, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let engine = Arc::new(FakeEngine::default());
        let service = Replicator::for_test(engine.clone(), Scope::default()).await;
        let before = engine.total_calls();
        let autoscale = AutoscaleHandle::new(
            Arc::new(service.clone()),
            service.events().clone(),
            false,
            std::time::Duration::from_secs(15),
        );
        let app = router(AppState {
            service,
            autoscale,
            rate_limit: None,
            alerts: super::alertmanager::AlertReceiver::new("replicator_group"),
            unbound: crate::rules::access::UnboundPolicy::Operator,
            forwarder: None,
        });
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let length = body.len().to_string();
        let request = request.header("content-length", length).body(Body::from(body)).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, String::from_utf8_lossy(&text).into_owned(), engine.total_calls() - before)
    })
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.-]{0,20}",
        "[\\PC]{0,40}",
        Just("..".to_owned()),
        Just("a/b".to_owned()),
        Just("a\0b".to_owned()),
        "[a-z]{129,140}",
    ]
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..100),
        (any::<i64>()).prop_map(|n| format!(r#"{{"replicas": {n}}}"#).into_bytes()),
        (any::<f64>()).prop_map(|n| format!(r#"{{"replicas": {n}}}"#).into_bytes()),
        (any_text(), any_text(), any::<f64>()).prop_map(|(c, m, v)| {
            serde_json::json!({"container": c, "metric": m, "value": v}).to_string().into_bytes()
        }),
        Just(b"[]".to_vec()),
        Just(br#"[{"container": "a", "metric": "m", "value": 1}, 3]"#.to_vec()),
    ]
}

fn assert_refused_without_engine(status: StatusCode, body: &str, calls: usize, what: &str) {
    assert!(status.is_client_error(), "{what}: {status} {body}");
    assert!(!body.is_empty(), "{what}: no message");
    if status == StatusCode::BAD_REQUEST {
        assert_eq!(calls, 0, "{what}: invalid input reached the engine");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ids_on_every_route(id in any_text(), count in "[0-9a-z=&-]{0,12}") {
        let e = encode(&id);
        let valid = ContainerRef::parse(&id).is_ok();
        for (method, path) in [
            (Method::GET, format!("/{e}")),
            (Method::POST, format!("/v1/containers/{e}/replicas?count={count}")),
            (Method::GET, format!("/v1/groups/{e}")),
            (Method::GET, format!("/v1/groups/{e}/decisions")),
        ] {
            let (status, body, calls) = send(method.clone(), &path, Vec::new());
            assert_refused_without_engine(status, &body, calls, &path);
            if !valid && !id.is_empty() {
                prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{} {}", method, path);
            }
        }
    }

    #[test]
    fn bodies_of_scale_and_metrics(name in any_text(), body in any_body()) {
        let valid_name = GroupName::parse(&name).is_ok();
        let path = format!("/v1/groups/{}/replicas", encode(&name));
        let (status, text, calls) = send(Method::PUT, &path, body.clone());
        assert_refused_without_engine(status, &text, calls, &path);
        if !valid_name && !name.is_empty() {
            prop_assert_eq!(status, StatusCode::BAD_REQUEST);
        }
        let (status, text, calls) = send(Method::POST, "/v1/metrics", body);
        assert_refused_without_engine(status, &text, calls, "/v1/metrics");
    }
}

#[test]
fn oversized_bodies_are_413_before_any_engine_call() {
    let body = vec![b' '; 65 * 1024];
    let (status, _, calls) = send(Method::PUT, "/v1/groups/web/replicas", body.clone());
    assert_eq!((status, calls), (StatusCode::PAYLOAD_TOO_LARGE, 0));
    let (status, text, calls) = send(Method::POST, "/v1/metrics", body);
    assert_eq!((status, calls), (StatusCode::PAYLOAD_TOO_LARGE, 0));
    assert_eq!(error_code(&text), "payload_too_large", "{text}");
}

/// The `code` of a JSON error body, or the body itself when it is not one.
fn error_code(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("not a JSON error: {text}"))
}

const SAMPLE: &str = r#"{"container": "web", "metric": "rps", "value": 1}"#;

#[test]
fn bodies_that_are_not_json_are_415() {
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let headers = [("content-type", content_type)];
        let (status, text, calls) = send_with(Method::POST, "/v1/metrics", &headers, SAMPLE.into());
        assert_eq!((status, calls), (StatusCode::UNSUPPORTED_MEDIA_TYPE, 0), "{content_type}: {text}");
        assert_eq!(error_code(&text), "unsupported_media_type");
    }
    let (status, text, _) = send_with(Method::PUT, "/v1/groups/web/replicas", &[], br#"{"replicas": 2}"#.to_vec());
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "no content type: {text}");
    let charset = [("content-type", "application/json; charset=utf-8")];
    let (status, text, _) = send_with(Method::POST, "/v1/metrics", &charset, SAMPLE.into());
    assert_eq!(status, StatusCode::NOT_FOUND, "accepted, and the container is unknown: {text}");
}

#[test]
fn routes_without_a_body_refuse_one() {
    let json = [("content-type", "application/json")];
    let (status, text, calls) = send_with(Method::POST, "/v1/containers/web/replicas", &json, b"{}".to_vec());
    assert_eq!((status, calls), (StatusCode::BAD_REQUEST, 0), "{text}");
    assert_eq!(error_code(&text), "bad_request");
    let (status, text, _) = send_with(Method::GET, "/v1/groups", &json, b"{}".to_vec());
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
}

#[test]
fn state_changing_requests_a_browser_marks_cross_site_are_403() {
    let json = ("content-type", "application/json");
    let host = ("host", "localhost:8443");
    for marks in [[("sec-fetch-site", "cross-site"), host, json], [("origin", "https://evil.example"), host, json]] {
        let (status, text, calls) =
            send_with(Method::PUT, "/v1/groups/web/replicas", &marks, br#"{"replicas": 2}"#.to_vec());
        assert_eq!((status, calls), (StatusCode::FORBIDDEN, 0), "{marks:?}: {text}");
        assert_eq!(error_code(&text), "cross_site");
        let (status, _, calls) = send_with(Method::POST, "/v1/containers/web/replicas", &marks[..2], Vec::new());
        assert_eq!((status, calls), (StatusCode::FORBIDDEN, 0), "{marks:?}");
        let (status, _, calls) = send_with(Method::GET, "/web", &marks[..2], Vec::new());
        assert_eq!((status, calls), (StatusCode::FORBIDDEN, 0), "the original route replicates too");
    }
    let own = [("origin", "https://localhost:8443"), host, json];
    let (status, text, _) = send_with(Method::PUT, "/v1/groups/web/replicas", &own, br#"{"replicas": 2}"#.to_vec());
    assert_eq!(status, StatusCode::NOT_FOUND, "the API's own origin passes: {text}");
    let (status, _, _) = send_with(Method::GET, "/v1/groups", &[("sec-fetch-site", "cross-site")], Vec::new());
    assert_eq!(status, StatusCode::OK, "reading is not refused");
}

#[test]
fn duplicate_keys_are_400() {
    let (status, text, calls) =
        send(Method::PUT, "/v1/groups/web/replicas", br#"{"replicas":1,"replicas":2}"#.to_vec());
    assert_eq!((status, calls), (StatusCode::BAD_REQUEST, 0), "{text}");
    assert!(text.contains("duplicate key"), "{text}");
}

#[test]
fn refused_input_comes_back_as_a_short_prefix_only() {
    let long = "x".repeat(60_000);
    for path in [format!("/v1/containers/web/replicas?{long}=1"), format!("/v1/containers/web/replicas?count={long}")] {
        let (status, text, _) = send(Method::POST, &path, Vec::new());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.len() < 400 && text.contains("xxx…"), "{} bytes: {}", text.len(), &text[..200.min(text.len())]);
    }
    for body in [format!(r#"{{"replicas": "{long}"}}"#), format!(r#"{{"{long}": 1}}"#)] {
        let (status, text, _) = send(Method::PUT, "/v1/groups/web/replicas", body.into_bytes());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.len() < 400, "{} bytes: {}", text.len(), &text[..200.min(text.len())]);
    }
}

#[test]
fn every_v1_error_is_json() {
    let (status, text, _) = send(Method::DELETE, "/v1/metrics", Vec::new());
    assert_eq!((status, error_code(&text).as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (status, text, _) = send(Method::GET, "/", Vec::new());
    assert_eq!((status, text.as_str()), (StatusCode::BAD_REQUEST, "container id missing"), "the original's text stays");
}

/// A method a path does not route is 405 with `Allow`, whatever its body
/// and its content type: the content rules are those of the path's
/// operations, and a wrong method has none.
#[test]
fn a_wrong_method_is_405_with_allow_whatever_its_body() {
    let trace = Method::from_bytes(b"TRACE").unwrap();
    for (method, path, allow) in [
        (trace.clone(), "/v1/metrics", "POST"),
        (trace, "/v1/groups/web/replicas", "PUT"),
        (Method::DELETE, "/v1/alertmanager", "POST"),
        (Method::PATCH, "/v1/nodes/abc/usage", "PUT"),
        (Method::POST, "/v1/groups/web/replicas", "PUT"),
        (Method::POST, "/v1/groups", "GET,HEAD"),
        (Method::PUT, "/v1/groups/web/wake", "POST"),
        (Method::POST, "/web", "GET,HEAD"),
    ] {
        for (headers, body) in [
            (&[("content-type", "application/json")][..], br#"{"replicas": 1}"#.to_vec()),
            (&[("content-type", "text/plain")][..], b"x".to_vec()),
            (&[][..], b"{}".to_vec()),
            (&[][..], Vec::new()),
        ] {
            let (status, response, text, calls) = exchange(method.clone(), path, headers, body.clone());
            let what = format!("{method} {path} {headers:?} {}", String::from_utf8_lossy(&body));
            assert_eq!((status, calls), (StatusCode::METHOD_NOT_ALLOWED, 0), "{what}: {text}");
            assert_eq!(response.get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{what}");
            if path.starts_with("/v1/") {
                assert_eq!(error_code(&text), "method_not_allowed", "{what}");
            }
        }
    }
    // The routed methods keep their content rules.
    let json = [("content-type", "application/json")];
    let (status, text, _) = send_with(Method::GET, "/v1/groups", &json, b"{}".to_vec());
    assert_eq!((status, error_code(&text).as_str()), (StatusCode::BAD_REQUEST, "bad_request"));
    let (status, _, _) = send_with(Method::POST, "/v1/metrics", &[("content-type", "text/plain")], SAMPLE.into());
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// The router and the OpenAPI description agree: every documented operation
/// is routed (neither the fallback's 404 nor a 405), and on every
/// documented path every other method is refused with 405.
#[test]
fn every_route_is_in_the_openapi_description_and_every_description_routed() {
    let doc = super::table::description();
    let text = serde_json::to_value(doc).unwrap();
    assert_eq!(text["openapi"], "3.1.0");
    let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH];
    let mut checked = 0;
    for (path, item) in &doc.paths.paths {
        let concrete = path.replace("{id}", "web").replace("{name}", "web").replace("{node}", "abc");
        let documented: Vec<Method> = [
            (Method::GET, item.get.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::PATCH, item.patch.is_some()),
        ]
        .into_iter()
        .filter_map(|(m, on)| on.then_some(m))
        .collect();
        assert!(!documented.is_empty(), "{path} documents no operation");
        for method in methods.iter() {
            let (status, body) = status_only(method.clone(), &concrete);
            if documented.contains(method) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is documented but not routed");
                assert!(!body.contains("no such route"), "{method} {path} is documented but not routed");
                checked += 1;
            } else if path != "/{id}" || *method != Method::GET {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is routed but not documented");
            }
        }
    }
    assert!(checked >= 14, "{checked} operations");
    let (status, body) = status_only(Method::GET, "/v1/openapi.json");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"/v1/groups/{name}/replicas\""), "the description is served");
}

/// One request's status, and its body unless it is an event stream (which never ends).
fn status_only(method: Method, path: &str) -> (StatusCode, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let engine = Arc::new(FakeEngine::default());
        let service = Replicator::for_test(engine.clone(), Scope::default()).await;
        let events = service.events().clone();
        let autoscale =
            AutoscaleHandle::new(Arc::new(service.clone()), events, false, std::time::Duration::from_secs(15));
        let alerts = super::alertmanager::AlertReceiver::new("replicator_group");
        let app = router(AppState {
            service,
            autoscale,
            rate_limit: None,
            alerts,
            unbound: crate::rules::access::UnboundPolicy::Operator,
            forwarder: None,
        });
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let streaming = response.headers().get("content-type").is_some_and(|v| v == "text/event-stream");
        let body =
            if streaming { Vec::new() } else { to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec() };
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}
