//! Open connections per member, as the TCP front counts them: a scale-down
//! waits for a leaving member's connections to end (up to the drain
//! timeout), removes the members with the fewest first, and the autoscaler
//! scales on them (`replicator.autoscale.metric=connections`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Open connections by member; every change is announced.
pub struct Connections {
    open: Mutex<HashMap<String, Slot>>,
    changed: watch::Sender<u64>,
}

/// One member's count, and its time integral since the autoscaler last read it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    open: u64,
    /// Connection-seconds since `read`, up to `changed`.
    area: f64,
    changed: Instant,
    read: Option<Instant>,
}

impl Slot {
    fn new(now: Instant) -> Self {
        Self { open: 0, area: 0.0, changed: now, read: None }
    }

    /// Moves the integral up to `now`, then applies `delta`.
    fn step(&mut self, now: Instant, delta: i64) {
        self.area += self.open as f64 * now.saturating_duration_since(self.changed).as_secs_f64();
        self.changed = now;
        self.open = self.open.saturating_add_signed(delta);
    }
}

/// Beyond this many members known, those idle are forgotten.
const KEPT_IDLE: usize = 1024;

impl Default for Connections {
    fn default() -> Self {
        Self { open: Mutex::default(), changed: watch::channel(0).0 }
    }
}

/// One open connection to a member; it counts until dropped.
pub struct Open {
    board: Arc<Connections>,
    member: String,
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(slot) = self.board.lock().get_mut(&self.member) {
            slot.step(Instant::now(), -1);
        }
        self.board.changed.send_modify(|v| *v += 1);
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a connection to `member` until the guard is dropped.
    pub fn opened(self: &Arc<Self>, member: &str) -> Open {
        let now = Instant::now();
        {
            let mut open = self.lock();
            if open.len() > KEPT_IDLE {
                open.retain(|_, slot| slot.open > 0);
            }
            open.entry(member.to_owned()).or_insert_with(|| Slot::new(now)).step(now, 1);
        }
        self.changed.send_modify(|v| *v += 1);
        Open { board: self.clone(), member: member.to_owned() }
    }

    /// Connections open to `member` now.
    pub fn open_to(&self, member: &str) -> u64 {
        self.lock().get(member).map_or(0, |slot| slot.open)
    }

    /// `member`'s open connections averaged over the time since the last
    /// call for it (the count now at the first call).
    pub fn average(&self, member: &str) -> f64 {
        let now = Instant::now();
        let mut open = self.lock();
        let Some(slot) = open.get_mut(member) else { return 0.0 };
        slot.step(now, 0);
        let average = match slot.read.map(|at| now.saturating_duration_since(at).as_secs_f64()) {
            Some(elapsed) if elapsed > 0.0 => slot.area / elapsed,
            _ => slot.open as f64,
        };
        (slot.area, slot.read) = (0.0, Some(now));
        average
    }

    /// Waits until none of `members` has an open connection, up to `within`;
    /// whether they all closed.
    pub async fn closed(&self, members: &[String], within: Duration) -> bool {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if members.iter().all(|m| self.open_to(m) == 0) {
                return true;
            }
            if !matches!(tokio::time::timeout_at(deadline, changes.changed()).await, Ok(Ok(()))) {
                return members.iter().all(|m| self.open_to(m) == 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_member_counts_its_open_connections_and_a_drain_waits_for_them() {
        let board = Arc::new(Connections::default());
        let first = board.opened("a");
        let second = board.opened("a");
        assert_eq!(board.open_to("a"), 2);
        assert!(!board.closed(&["a".into()], Duration::from_secs(1)).await, "up to the drain timeout");
        drop(first);
        let waiting = tokio::spawn({
            let board = board.clone();
            async move { board.closed(&["a".into(), "b".into()], Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        drop(second);
        assert!(waiting.await.unwrap(), "done once the last one closes");
        assert_eq!(board.open_to("a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_average_weighs_each_count_by_how_long_it_lasted() {
        let board = Arc::new(Connections::default());
        let first = board.opened("a");
        assert_eq!(board.average("a"), 1.0, "the first read: the count now");
        let second = board.opened("a");
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(second);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(board.average("a"), 1.25, "two for one second, one for three");
        drop(first);
        assert_eq!(board.average("b"), 0.0);
    }
}
