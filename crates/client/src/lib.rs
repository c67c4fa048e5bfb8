//! A client of replicator's API over mutual TLS: the
//! bodies and answers of its routes as types ([`Group`], [`Member`],
//! [`Replication`]), an async client that presents a certificate bundle in
//! the docker CLI's layout (`ca.pem`, `cert.pem`, `key.pem`), and the event
//! stream balancers follow ([`EventStream`]).
//!
//! The server answers every refusal as `{"error": {"code", "message"}}`: the
//! typed calls turn it into [`ClientError::Status`] with the status, the
//! code and the message, so a caller can tell a `403 denied` from a `409
//! limit_reached` without reading JSON.
//!
//! ```no_run
//! use replicator_client::ApiClient;
//!
//! # async fn run() -> Result<(), replicator_client::ClientError> {
//! // The folder `replicator certs issue --identity app:web` wrote.
//! let client = ApiClient::new("https://replicator:8443", std::path::Path::new("/ssl"))?;
//! for group in client.groups().await? {
//!     println!("{}: {} members, {} ready", group.name, group.members.len(), group.ready());
//! }
//! let made = client.replicate("web", 2).await?;
//! println!("made {:?} in group {}", made.replicas.iter().map(|r| &r.name).collect::<Vec<_>>(), made.group);
//! let mut events = client.events(Some("web"), None).await?;
//! while let Some(event) = events.next().await? {
//!     println!("{} {}", event.kind, event.data);
//! }
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod bundle;
mod client;
mod error;
mod events;
mod types;

pub use bundle::{anonymous_config, client_config, BundleError};
pub use client::{ApiClient, ApiResponse};
pub use error::ClientError;
pub use events::{next_event, EventStream, SseEvent};
pub use types::{Group, Member, Replica, Replication};
