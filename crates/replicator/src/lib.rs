//! replicator: replicates Docker containers on demand, over mutual TLS, and
//! scales the groups they form.
//!
//! The folders are the architecture, and data flows one way, top to bottom:
//!
//! - [`cli`]: the commands; `serve` calls [`server::run`], which wires the
//!   rest and owns every background task.
//! - [`http`]: the listeners (mTLS API, admin, wake) and what they share.
//!   Nothing below it knows HTTP. [`front`], its peer: the TCP fronts.
//! - [`autoscale`]: the control loop that turns metrics into group sizes.
//! - [`service`]: the commands that change the world (replicate, scale,
//!   sleep, keep standbys) and the event hub balancers follow.
//! - [`inventory`]: the one model of groups and members: a read-only
//!   [`inventory::Store`], a [`inventory::Writer`] only the informer holds,
//!   and the commands' [`inventory::Intents`].
//! - [`rules`]: pure functions of labels and state (clone plans, bounds,
//!   policies, schedules, alerts, balancer blocks).
//! - [`engine`]: the Engine API port and its adapters, the only code that
//!   knows bollard.
//! - [`base`] (layer 1), [`tls`] and [`model`] (2), [`error`] (5): below
//!   every layer that uses them; `layering_tests` holds the order, and that
//!   no files of one folder name each other in a circle.

#![warn(missing_docs)]

pub mod autoscale;
pub mod base;
pub mod cli;
#[cfg(test)]
mod docs_tests;
pub mod engine;
pub mod error;
pub mod front;
pub mod http;
pub mod inventory;
#[cfg(test)]
mod layering_tests;
pub mod model;
#[cfg(test)]
mod reference_tests;
pub mod rules;
pub mod server;
pub mod service;
pub mod takeover;
pub mod tls;
