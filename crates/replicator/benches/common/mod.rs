//! What the benches share: the integration tests' harness (a scope, a
//! server, the docker CLI), an engine client of their own, and the
//! statistics they print.

#![allow(dead_code)]

#[path = "../../tests/integration/common/mod.rs"]
#[allow(unused_imports)]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use replicator::base::telemetry::Telemetry;
use replicator::engine::{DockerEngine, EngineSettings};

pub use harness::*;

/// The middle of `v`.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The value `p` (0 to 1) of the way up `v`.
pub fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

/// Milliseconds with `decimals` decimals, for a table.
pub fn ms_with(d: Duration, decimals: usize) -> String {
    format!("{:.*} ms", decimals, d.as_secs_f64() * 1000.0)
}

/// Milliseconds with one decimal, for a table.
pub fn ms(d: Duration) -> String {
    ms_with(d, 1)
}

/// A client of the machine's engine, as replicator would make one (the
/// Docker variables, a 30 s timeout).
pub fn engine() -> DockerEngine {
    let settings = EngineSettings::resolve(None, |k| std::env::var(k).ok(), Duration::from_secs(30)).unwrap();
    DockerEngine::new(settings, Arc::new(Telemetry::default())).unwrap()
}
