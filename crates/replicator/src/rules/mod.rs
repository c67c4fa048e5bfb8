//! The pure rules: functions of labels, inspected containers and the clock,
//! with no I/O, one named test per rule. Everything that reads a label or
//! decides a shape goes through here, so the API, the inventory, the service
//! and the autoscaler cannot disagree.

pub mod access;
pub mod alerts;
pub mod backends;
pub mod bounds;
pub mod front;
pub mod labels;
pub mod lease;
pub mod plan;
pub mod policy;
pub mod readiness;
pub mod schedule;
