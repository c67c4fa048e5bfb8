//! The HTTPS API: mutual TLS, routes, and the one mapping from errors to
//! statuses. Handlers are thin: they validate input and call the service.

mod alertmanager;
mod forward;
mod gate;
pub use alertmanager::AlertReceiver;
mod guard;
mod json;
mod limit;
mod listen;
mod nodes;
mod query;
mod responses;
mod routes;
mod schemas;
mod status;
mod stream;
mod table;
mod trace;
pub mod views;

#[cfg(test)]
mod door_tests;
#[cfg(test)]
mod input_tests;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{middleware, Router};

use crate::autoscale::AutoscaleHandle;
use crate::rules::access::UnboundPolicy;
use crate::service::Replicator;

pub use crate::http::listener::{PeerIdentity, ServerOptions};
pub use forward::Forwarder;
pub use guard::MAX_BODY;
pub use limit::{parse_rate, RateLimiter};
pub use listen::serve;
pub use status::status_of;

/// Everything a handler needs, in one place.
#[derive(Clone)]
pub struct AppState {
    /// The commands.
    pub service: Replicator,
    /// The autoscaler's side: pushed metrics in, decisions out.
    pub autoscale: Arc<AutoscaleHandle>,
    /// `--rate-limit`, when set.
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// Alertmanager's webhook: the group label, and the alerts acted on.
    pub alerts: Arc<alertmanager::AlertReceiver>,
    /// What a client certificate without a replicator identity may do.
    pub unbound: UnboundPolicy,
    /// How commands reach the leader while another replicator acts; `None`: refused, naming it.
    pub forwarder: Option<Arc<Forwarder>>,
}

/// The API's routes, made from the route table, with their layers:
/// permission gate, content rules, JSON errors, rate limit, request ids.
pub fn router(state: AppState) -> Router {
    let (routes, _) = table::registered().split_for_parts();
    let gate = gate::Gate { unbound: state.unbound, service: state.service.clone() };
    let routes = routes
        .route_layer(middleware::from_fn_with_state(state.clone(), forward::forward))
        .route_layer(middleware::from_fn_with_state(table::content_rule as guard::Rules, guard::check))
        .route_layer(middleware::from_fn_with_state(gate, gate::check))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(status::json_errors));
    let routes = match &state.rate_limit {
        Some(limiter) => routes.layer(middleware::from_fn_with_state(limiter.clone(), limit::limit)),
        None => routes,
    };
    routes.layer(middleware::from_fn(trace::trace_requests)).with_state(state)
}
