//! `replicator healthcheck`: asks a replicator's admin listener for
//! `/healthz` and exits 0 when it answers 200. The image is `FROM scratch`
//! (no curl, no shell): this is what its `HEALTHCHECK` and the stack's
//! `healthcheck:` run.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The admin listener's health route.
    #[arg(long, env = "REPLICATOR_HEALTHCHECK_URL", default_value = "http://127.0.0.1:9090/healthz")]
    url: hyper::Uri,
    /// Longest the answer may take.
    #[arg(long, default_value = "3s", value_parser = crate::base::duration::parse_positive)]
    timeout: Duration,
}

/// Exits 0 on a 200, else fails with the status or the reason.
pub fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    if args.url.scheme_str() != Some("http") {
        bail!("{} is not an http:// URL of the admin listener", args.url);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let answer = tokio::time::timeout(args.timeout, client.get(args.url.clone()))
            .await
            .with_context(|| format!("{} did not answer within {:?}", args.url, args.timeout))?
            .map_err(|e| anyhow::anyhow!("{}: {}", args.url, crate::base::chain::chain(&e)))?;
        match answer.status() {
            hyper::StatusCode::OK => Ok(()),
            status => bail!("{} answered {status}", args.url),
        }
    })
}
