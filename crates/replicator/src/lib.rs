//! replicator: replicates Docker containers on demand, over mutual TLS.
//!
//! Data flows one way: [`api`] → [`service`] → [`engine`]. The [`plan`] and
//! [`group`] modules are pure rules the service applies.

pub mod admin;
pub mod api;
pub mod autoscale;
pub mod certs;
pub mod cli;
pub mod client;
pub mod duration;
pub mod engine;
pub mod error;
pub mod group;
pub mod html;
pub mod id;
pub mod labels;
pub mod listener;
pub mod model;
pub mod plan;
pub mod quote;
pub mod selfid;
pub mod service;
pub mod telemetry;
pub mod tls;
pub mod upstreams;
