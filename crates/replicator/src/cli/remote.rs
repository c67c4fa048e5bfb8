//! A client of replicator's own API over mutual TLS, as the
//! `replicator-client` crate makes it: the CLI's client subcommands, the
//! agent, the benchmarks and the integration tests use the same client as
//! users' programs.

pub use replicator_client::{anonymous_config, ApiClient, ApiResponse, BundleError, ClientError};
