//! Waiting with a deadline, the harness's one way to wait: a probe is looked
//! at until it gives the awaited value or the time is up, and a test that
//! waits in vain fails naming what it waited for and what it saw last.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How long a blocking wait sleeps between two looks.
const BLOCKING_POLL: Duration = Duration::from_millis(50);
/// How long an async wait sleeps between two looks.
const ASYNC_POLL: Duration = Duration::from_millis(100);

/// What one look of a probe saw: the awaited value, or the state so far
/// (shown when the wait fails).
pub trait Look {
    type Value;
    type State: Display;
    fn seen(self) -> Result<Self::Value, Self::State>;
}

/// `Some(value)`, or nothing to tell yet.
impl<T> Look for Option<T> {
    type Value = T;
    type State = &'static str;
    fn seen(self) -> Result<T, &'static str> {
        self.ok_or("nothing yet")
    }
}

/// `Ok(value)`, or `Err(the state seen instead)`.
impl<T, S: Display> Look for Result<T, S> {
    type Value = T;
    type State = S;
    fn seen(self) -> Result<T, S> {
        self
    }
}

/// A probe's answer when what it saw is both the awaited value (`done`) and
/// otherwise the state to show.
pub fn ready_if<T>(done: bool, seen: T) -> Result<T, T> {
    if done {
        Ok(seen)
    } else {
        Err(seen)
    }
}

/// Looks at `probe` until it gives a value (`Ok`), or `timeout` has passed
/// (`Err` with the last state it saw). Blocks between looks.
pub fn poll_until<L: Look>(timeout: Duration, mut probe: impl FnMut() -> L) -> Result<L::Value, L::State> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe().seen() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => std::thread::sleep(BLOCKING_POLL),
        }
    }
}

/// The same with an async `probe`, sleeping on the runtime between looks.
pub async fn poll_until_async<L: Look>(
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> L,
) -> Result<L::Value, L::State> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await.seen() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(ASYNC_POLL).await,
        }
    }
}

/// Fails the test: `what` was awaited in vain, `last` is what was seen.
fn waited_in_vain(what: &str, timeout: Duration, last: impl Display) -> ! {
    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
}

/// Polls `probe` (a blocking one) until it gives a value, or fails the test after `timeout`.
pub fn eventually<L: Look>(what: &str, timeout: Duration, probe: impl FnMut() -> L) -> L::Value {
    poll_until(timeout, probe).unwrap_or_else(|last| waited_in_vain(what, timeout, last))
}

/// Polls the async `probe` until it gives a value, or fails the test after
/// `timeout`, naming `what` it waited for and the last state the probe saw.
pub async fn eventually_async<L: Look>(what: &str, timeout: Duration, probe: impl AsyncFnMut() -> L) -> L::Value {
    poll_until_async(timeout, probe).await.unwrap_or_else(|last| waited_in_vain(what, timeout, last))
}
