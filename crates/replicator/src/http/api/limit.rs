//! `--rate-limit N/s`: a token bucket per client address. A container
//! stuck in a loop of requests gets 429s instead of the engine's attention.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::status::ApiError;
use super::PeerIdentity;
use crate::error::Error;

/// Buckets idle this long are forgotten.
const IDLE: Duration = Duration::from_secs(60);

/// Token buckets by client address, for `--rate-limit`.
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` requests a second per client, with bursts of as many.
    pub fn new(per_second: f64) -> Self {
        Self { per_second, buckets: Mutex::new(HashMap::new()) }
    }

    /// Up to `per_second` requests a second, with bursts of as many.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        let capacity = self.per_second.max(1.0);
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > 4096 {
            buckets.retain(|_, (_, seen)| now.saturating_duration_since(*seen) < IDLE);
        }
        let (tokens, seen) = buckets.entry(client).or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*seen).as_secs_f64() * self.per_second).min(capacity);
        *seen = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `N/s` (or a bare `N`), N a positive number.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let n = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    n.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("{text:?} is not a rate like 10/s"))
}

pub async fn limit(State(limiter): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<PeerIdentity>().and_then(|p| p.addr).map(|a| a.ip());
    match client {
        Some(ip) if !limiter.allow(ip, Instant::now()) => {
            ApiError(Error::RateLimited(format!("more than {} requests per second from {ip}", limiter.per_second)))
                .into_response()
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_per_client_refilled_at_the_rate() {
        let limiter = RateLimiter::new(2.0);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(limiter.allow(a, t0) && limiter.allow(a, t0));
        assert!(!limiter.allow(a, t0), "the burst is spent");
        assert!(limiter.allow(b, t0), "another client has its own bucket");
        assert!(limiter.allow(a, t0 + Duration::from_millis(500)), "half a second buys one request");
    }

    #[test]
    fn rates_parse_like_the_flag_says() {
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        assert_eq!(parse_rate("3"), Ok(3.0));
        for bad in ["0/s", "-1/s", "ten/s", "5/m", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
