//! Query strings: form-decoded (`count=%31` is 1), only the parameters a
//! route names, each at most once; refused input is quoted short.

use std::collections::HashMap;
use std::time::Duration;

use super::schemas::MAX_READY_TIMEOUT;
use super::status::ApiError;
use crate::base::quote::clip;

/// How long `wait=ready` waits when no `timeout` is given.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed query: each allowed parameter at most once.
pub struct Query(HashMap<&'static str, String>);

/// Parses `query`, refusing parameters not in `allowed` and repeated ones.
pub fn parse(query: Option<&str>, allowed: &[&'static str]) -> Result<Query, ApiError> {
    let mut values = HashMap::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let Some(name) = allowed.iter().find(|a| **a == key.as_ref()) else {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {:?}: only {} accepted",
                clip(&key),
                allowed.join(", ")
            )));
        };
        if values.insert(*name, value.into_owned()).is_some() {
            return Err(ApiError::bad_request(format!("{name} given twice")));
        }
    }
    Ok(Query(values))
}

impl Query {
    /// One parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `count=N` (digits only, within u32), 1 when absent.
    pub fn count(&self) -> Result<u32, ApiError> {
        let Some(text) = self.get("count") else { return Ok(1) };
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        digits
            .then(|| text.parse::<u32>().ok())
            .flatten()
            .ok_or_else(|| ApiError::bad_request(format!("count must be a positive integer, not {:?}", clip(text))))
    }

    /// `wait=ready[&timeout=D]`: how long to wait for readiness, if asked to.
    pub fn wait(&self) -> Result<Option<Duration>, ApiError> {
        ready_wait(self.get("wait"), self.get("timeout"))
    }
}

/// The one reading of `wait` and `timeout`, for queries and bodies alike.
pub fn ready_wait(wait: Option<&str>, timeout: Option<&str>) -> Result<Option<Duration>, ApiError> {
    match (wait, timeout) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ApiError::bad_request("timeout is only meaningful with wait=ready")),
        (Some("ready"), None) => Ok(Some(DEFAULT_READY_TIMEOUT)),
        // Digits and a unit, nothing around them (the description's pattern).
        (Some("ready"), Some(t)) if !t.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Err(ApiError::bad_request(format!("timeout {:?} is not a duration like 60s", clip(t))))
        }
        (Some("ready"), Some(t)) => match crate::base::duration::parse_positive(t) {
            Ok(d) if d <= MAX_READY_TIMEOUT => Ok(Some(d)),
            Ok(_) => Err(ApiError::bad_request("timeout must be at most 600s")),
            Err(_) => Err(ApiError::bad_request(format!("timeout {:?} is not a duration like 60s", clip(t)))),
        },
        (Some(other), _) => Err(ApiError::bad_request(format!("wait must be \"ready\", not {:?}", clip(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_parameters_each_once() {
        let q = parse(Some("count=%31&wait=ready"), &["count", "wait", "timeout"]).unwrap();
        assert_eq!(q.count().unwrap(), 1);
        assert_eq!(q.wait().unwrap(), Some(DEFAULT_READY_TIMEOUT));
        assert!(parse(Some("count=1&count=2"), &["count"]).is_err());
        assert!(parse(Some("other=1"), &["count"]).is_err());
    }

    #[test]
    fn wait_and_timeout_go_together() {
        assert_eq!(ready_wait(Some("ready"), Some("5s")).unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(ready_wait(None, None).unwrap(), None);
        for (wait, timeout) in [
            (None, Some("5s")),
            (Some("running"), None),
            (Some("ready"), Some("soon")),
            (Some("ready"), Some("0s")),
            (Some("ready"), Some("1h")),
            (Some("ready"), Some(" 5s")),
            (Some("ready"), Some("5s\n")),
            (Some("ready"), Some("+5s")),
        ] {
            assert!(ready_wait(wait, timeout).is_err(), "{wait:?} {timeout:?}");
        }
    }
}
