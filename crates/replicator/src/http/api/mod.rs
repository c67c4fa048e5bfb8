//! The HTTPS API: mutual TLS, routes, and the one mapping from errors to
//! statuses. Handlers are thin: they validate input and call the service.

mod alertmanager;
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
mod trace;
pub mod views;

#[cfg(test)]
mod input_tests;

use std::sync::Arc;

use crate::autoscale::AutoscaleHandle;
use crate::rules::access::UnboundPolicy;
use crate::service::Replicator;

pub use crate::http::listener::{PeerIdentity, ServerOptions};
pub use limit::{parse_rate, RateLimiter};
pub use listen::serve;
pub use routes::{router, MAX_BODY};
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
}
