//! The autoscaler: a control loop that turns metrics (pushed by containers,
//! read from the engine's stats, or queried from Prometheus) into group
//! sizes. The decision itself is pure ([`decide`]); the loop
//! ([`controller`]) reads groups and acts only through the narrow
//! [`GroupControl`] trait, and owns its state (metric store, decisions).

pub mod agents;
pub mod board;
pub mod control;
pub mod controller;
pub mod decide;
pub mod prometheus;
pub mod stats;

pub use agents::{NodeReport, NodeView, Usage};
pub use control::{AutoscaleHandle, GroupControl, MetricSample, ReportOutcome};
pub use controller::{AutoscaleSettings, Autoscaler};
