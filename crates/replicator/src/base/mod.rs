//! Leaves: small helpers every layer may use. Nothing here imports a module
//! of this crate outside `base`, so they can never close a circle.

pub mod chain;
pub mod cidr;
pub mod clock;
pub mod duration;
pub mod handover;
pub mod html;
pub mod id;
pub mod quote;
pub mod selfid;
pub mod telemetry;
pub mod worker;
