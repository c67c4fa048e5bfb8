//! `POST /v1/alertmanager`: Alertmanager's webhook (payload version 4),
//! through the same mutual-TLS listener as every route (Alertmanager's
//! `http_config.tls_config` presents a client certificate). The payload is
//! checked here; what each alert asks for is [`crate::rules::alerts`]' rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::status::ApiError;
use super::{json, AppState};
use crate::base::quote::clip_to;
use crate::rules::access::{Identity, Permission};
use crate::rules::alerts::{Alert, AlertStatus, Seen};

/// Most alerts one notification may carry: as many as a body of at most
/// `MAX_BODY` (64 KiB) can hold and more (a minimal alert takes 70 bytes).
const MAX_ALERTS: usize = 500;

/// The receiver's state: which label names the group, and the alerts acted on.
pub struct AlertReceiver {
    /// `serve --alert-group-label`.
    pub group_label: String,
    /// Alerts already acted on.
    pub seen: Seen,
}

impl AlertReceiver {
    /// A receiver reading the group from `group_label`.
    pub fn new(group_label: &str) -> Arc<Self> {
        Arc::new(Self { group_label: group_label.to_owned(), seen: Seen::default() })
    }
}

/// Alertmanager's webhook payload; the fields not described here
/// (`receiver`, `groupLabels`...) are ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct Notification {
    /// The payload's version: `4`.
    #[schema(schema_with = version_schema)]
    version: String,
    /// The alerts, at most 500.
    #[schema(schema_with = alerts_schema)]
    alerts: Vec<AlertBody>,
}

/// One alert; its fields not described here (`endsAt`, `generatorURL`...)
/// are ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AlertBody {
    /// `firing` or `resolved`.
    #[schema(schema_with = status_schema)]
    status: String,
    /// The alert's labels: the group's label names the group to scale.
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// The alert's annotations: `replicator_action`, `replicator_step`... (labels may carry them too).
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    #[schema(format = DateTime)]
    starts_at: String,
    /// Alertmanager's fingerprint: 1 to 64 hex digits.
    #[serde(default)]
    #[schema(required = true, pattern = "^[0-9A-Fa-f]{1,64}$")]
    fingerprint: String,
}

fn version_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).enum_values(Some(["4"]))
}

fn status_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["firing", "resolved"]))
}

fn alerts_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
    use utoipa::PartialSchema;
    utoipa::openapi::schema::ArrayBuilder::new().items(AlertBody::schema()).max_items(Some(MAX_ALERTS))
}

fn parse(body: &[u8]) -> Result<Vec<Alert>, ApiError> {
    let refuse =
        |why: String| ApiError::bad_request(format!("expected Alertmanager's webhook payload (version 4): {why}"));
    let value = json::parse(body).map_err(|e| refuse(clip_to(&e.to_string(), 160)))?;
    let n: Notification = serde_json::from_value(value).map_err(|e| refuse(clip_to(&e.to_string(), 160)))?;
    if n.version != "4" {
        return Err(refuse(format!("version {:?} is not 4", crate::base::quote::clip(&n.version))));
    }
    if n.alerts.len() > MAX_ALERTS {
        return Err(refuse(format!("at most {MAX_ALERTS} alerts per notification")));
    }
    n.alerts
        .into_iter()
        .map(|a| {
            let status = match a.status.as_str() {
                "firing" => AlertStatus::Firing,
                "resolved" => AlertStatus::Resolved,
                other => {
                    return Err(refuse(format!(
                        "alert status {:?} is neither firing nor resolved",
                        crate::base::quote::clip(other)
                    )))
                }
            };
            if a.fingerprint.is_empty()
                || a.fingerprint.len() > 64
                || !a.fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(refuse("an alert's fingerprint is not a hex string of at most 64 characters".into()));
            }
            let starts_at = crate::base::clock::parse_rfc3339(&a.starts_at).ok_or_else(|| {
                refuse(format!("startsAt {:?} is not an RFC 3339 time", crate::base::quote::clip(&a.starts_at)))
            })?;
            let starts_at =
                starts_at.timestamp_nanos_opt().map_or_else(|| starts_at.timestamp().to_string(), |n| n.to_string());
            Ok(Alert { status, labels: a.labels, annotations: a.annotations, starts_at, fingerprint: a.fingerprint })
        })
        .collect()
}

/// Acts on each alert once; answers what became of each (200 unless the
/// payload is malformed: Alertmanager retries failed notifications).
#[utoipa::path(post, path = "/v1/alertmanager", tag = "alertmanager", request_body = Notification,
    responses((status = 200, description = "What became of each alert: `{\"alerts\": [{\"fingerprint\", \"outcome\", ...}]}`", body = Object),
              (status = 400, description = "Not a version 4 payload", body = super::status::ErrorBody),
              (status = 403, description = "An Alertmanager limited to some groups named another", body = super::status::ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let alerts = parse(&body)?;
    let receiver = &state.alerts;
    // An Alertmanager limited to some groups moves none unless it may move
    // every group it names, whether or not that alert asks for a change.
    for group in alerts.iter().filter_map(|a| a.labels.get(&receiver.group_label)) {
        let what = format!("send alerts for group {group}");
        identity.check_for(Permission::ReceiveAlerts, group, &what).map_err(|d| ApiError(d.into()))?;
    }
    let mut outcomes = Vec::with_capacity(alerts.len());
    for alert in &alerts {
        let outcome = match alert.action(&receiver.group_label) {
            Ok(None) => json!({ "outcome": "nothing to do" }),
            Err(reason) => json!({ "outcome": "ignored", "reason": reason }),
            Ok(Some(action)) => {
                let key = alert.key();
                if !receiver.seen.first(&key, crate::base::clock::monotonic()) {
                    json!({ "group": action.group, "outcome": "already acted on" })
                } else {
                    match apply(&state, &action, &alert.fingerprint).await {
                        Ok((from, to)) => json!({ "group": action.group, "outcome": "scaled", "from": from, "to": to }),
                        Err(e) => {
                            receiver.seen.forget(&key);
                            warn!(group = %action.group, fingerprint = %alert.fingerprint, error = %e, "alert not acted on");
                            json!({ "group": action.group, "outcome": "failed", "reason": e.to_string() })
                        }
                    }
                }
            }
        };
        let mut outcome = outcome;
        outcome["fingerprint"] = json!(alert.fingerprint);
        outcomes.push(outcome);
    }
    Ok(Json(json!({ "alerts": outcomes })))
}

async fn apply(
    state: &AppState,
    action: &crate::rules::alerts::Action,
    fingerprint: &str,
) -> crate::error::Result<(u32, u32)> {
    let caller = format!("alertmanager:{fingerprint}");
    let (from, to) = state.service.scale_by(&action.group, action.signed_step(), &caller).await?;
    if from != to {
        info!(group = %action.group, from, to, fingerprint, "scaled on an alert");
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_checked_before_anything_is_done() {
        let refused = |body: &str| parse(body.as_bytes()).unwrap_err().0.to_string();
        assert!(refused(r#"{"version": "3", "alerts": []}"#).contains("not 4"));
        assert!(refused(r#"{"version": "4"}"#).contains("alerts"));
        let bad_status = r#"{"version": "4", "alerts": [{"status": "burning", "startsAt": "2026-11-26T00:00:00Z", "fingerprint": "ab"}]}"#;
        assert!(refused(bad_status).contains("neither firing nor resolved"));
        let bad_time =
            r#"{"version": "4", "alerts": [{"status": "firing", "startsAt": "today", "fingerprint": "ab"}]}"#;
        assert!(refused(bad_time).contains("RFC 3339"));
        let good = r#"{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"replicator_group": "web"},
            "annotations": {}, "startsAt": "2026-11-26T00:00:00.123Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "0a1b"}]}"#;
        let alerts = parse(good.as_bytes()).unwrap();
        assert_eq!((alerts[0].status, alerts[0].fingerprint.as_str()), (AlertStatus::Firing, "0a1b"));
    }
}
