//! The autoscaler: a control loop that turns metrics (pushed by containers,
//! or read from the engine's stats) into group sizes. The decision itself is
//! pure ([`decide`]); the loop ([`controller`]) feeds it and applies it
//! through the same service code as the API.

pub mod controller;
pub mod decide;
pub mod policy;
pub mod prometheus;
pub mod stats;
pub mod store;

pub use controller::{AutoscaleSettings, Autoscaler};
