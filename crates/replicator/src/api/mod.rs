//! The HTTPS API: mutual TLS, routes, and the one mapping from errors to
//! statuses. Handlers are thin: they validate input and call the service.

mod error;
mod routes;
mod server;
mod trace;

use crate::service::Replicator;

pub use error::status_of;
pub use routes::router;
pub use server::{serve, ServerOptions};

/// The verified client, as its certificate names it.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity {
    /// Subject common name of the client certificate.
    pub common_name: String,
}

/// Everything a handler needs, in one place.
#[derive(Clone)]
pub struct AppState {
    pub service: Replicator,
}
