//! replicator: replicates Docker containers on demand, over mutual TLS, and
//! scales the groups they form.
//!
//! Data flows one way: [`api`] and [`admin`] → [`service`] (commands) →
//! [`engine`] (the only code that knows bollard). The [`inventory`] is the
//! one model of groups and members: the [`inventory::Informer`] feeds it from
//! the engine, the service records its intents in it, and every reader
//! (API, dashboard, [`autoscale`], `replicator upstreams`) builds its own
//! view from it. [`plan`], [`group`] and [`policy`] are pure rules.
//! [`server::run`] wires it all and owns every background task.

#![warn(missing_docs)]

pub mod admin;
pub mod agent;
pub mod alerts;
pub mod api;
pub mod autoscale;
pub mod certs;
pub mod cli;
pub mod client;
pub mod duration;
pub mod engine;
pub mod error;
pub mod events;
pub mod group;
pub mod html;
pub mod id;
pub mod inventory;
pub mod labels;
pub mod listener;
pub mod model;
pub mod plan;
pub mod policy;
pub mod quote;
pub mod schedule;
pub mod selfid;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod tls;
pub mod upstreams;
pub mod wake;
