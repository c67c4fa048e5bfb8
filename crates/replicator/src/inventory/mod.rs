//! The inventory: the one in-memory model of every container, managed group
//! and member, in the shape of a Kubernetes informer cache.
//!
//! Built from one listing, kept current from the engine's events, and
//! re-listed periodically and after a stream cut ([`informer`]): the engine
//! is the truth, the inventory a cache that repairs itself. Like kube-rs's
//! reflector, it is split by role, so who may change what is a matter of
//! types:
//!
//! - [`Writer`]: held by the informer alone; it sets what the engine says.
//! - [`Store`]: read-only and cheap to clone; every reader (API, dashboard,
//!   autoscaler, `replicator upstreams`) takes a consistent snapshot of
//!   [`Group`]s from it and builds its own view.
//! - [`Intents`]: the commands' side. A command records what it is doing
//!   before the engine shows it (a replica being created holds a place and a
//!   name, a member being removed stops counting), so admission and limits
//!   are decided from memory, without a listing on the hot path.

mod build;
mod group;
pub mod informer;
mod intents;
mod state;
mod store;
mod writer;

use std::sync::Arc;

pub use build::ProbeStatus;
pub use build::{may_be_member, Intent, Scope, SwarmService};
pub use group::{Group, Health, Member, MemberState, MemberStatus, ServiceRef};
pub use informer::Informer;
pub use intents::{Full, Intents, Leaving, Limits, Reservation};
pub use store::Store;
pub use writer::Writer;

/// The three handles of one inventory, made together.
pub struct Inventory {
    /// For the informer.
    pub writer: Writer,
    /// For every reader.
    pub store: Store,
    /// For the commands.
    pub intents: Intents,
}

impl Inventory {
    /// An empty inventory for `scope`; an [`Informer`] over `writer` fills it.
    pub fn new(scope: Scope) -> Self {
        let shared = Arc::new(state::Shared::new(scope));
        Self { writer: Writer::new(shared.clone()), store: Store::new(shared.clone()), intents: Intents::new(shared) }
    }
}
