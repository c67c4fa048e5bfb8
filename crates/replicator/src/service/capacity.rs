//! Where a cold start's time goes: each new member's phases (create,
//! start, running → ready), by how the capacity came, observed into
//! `/metrics` and kept, the last few per group, for the dashboard's
//! timeline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::base::telemetry::Telemetry;
use crate::inventory::{MemberState, Store};

/// Cold starts kept per group for the dashboard.
const KEPT: usize = 5;
/// Longest a new member is watched for readiness.
const READY_WATCH: Duration = Duration::from_secs(600);

/// How new capacity came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// A clone created and started.
    Cold,
    /// A paused standby unpaused.
    Standby,
    /// A sleeping original unpaused.
    WakeFromPause,
    /// A sleeping original started.
    WakeFromStop,
}

impl How {
    /// The metric label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Standby => "standby",
            Self::WakeFromPause => "wake-from-pause",
            Self::WakeFromStop => "wake-from-stop",
        }
    }
}

/// One member's way to ready, as far as it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdStart {
    /// The member's container id.
    #[serde(skip)]
    pub id: String,
    /// Its name.
    pub member: String,
    /// How it came.
    pub how: How,
    /// When it began (unix seconds).
    pub at: i64,
    /// Creating the container (cold only), in seconds.
    pub create: Option<f64>,
    /// Starting or unpausing it, in seconds.
    pub start: Option<f64>,
    /// From running to ready, in seconds; `None` while not (or never) ready.
    pub ready: Option<f64>,
    /// Why it never got ready, when it did not.
    pub failed: Option<String>,
}

/// The phases a member goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The engine's create.
    Create,
    /// The engine's start (with network connects) or unpause.
    Start,
    /// Running until ready.
    Ready,
}

/// The last cold starts of every group, and where their phases are counted.
pub(super) struct CapacityLog {
    recent: Mutex<HashMap<String, VecDeque<ColdStart>>>,
    store: Store,
    telemetry: Arc<Telemetry>,
}

impl CapacityLog {
    /// A log that watches members in `store` and observes phases into `telemetry`.
    pub(super) fn new(store: Store, telemetry: Arc<Telemetry>) -> Self {
        Self { recent: Mutex::default(), store, telemetry }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<ColdStart>>> {
        self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets groups that are gone.
    pub(super) fn retain_groups(&self, present: &std::collections::HashSet<&str>) {
        self.lock().retain(|g, _| present.contains(g.as_str()));
    }

    /// Starts the record of a new member of `group`.
    pub(super) fn began(&self, group: &str, id: &str, member: &str, how: How) {
        let entry = ColdStart {
            id: id.to_owned(),
            member: member.to_owned(),
            how,
            at: crate::base::clock::unix_now(),
            create: None,
            start: None,
            ready: None,
            failed: None,
        };
        let mut recent = self.lock();
        let list = recent.entry(group.to_owned()).or_default();
        list.push_back(entry);
        while list.len() > KEPT {
            list.pop_front();
        }
    }

    /// Records one phase of a member whose record began; others are not new capacity.
    pub(super) fn phase(&self, id: &str, phase: Phase, took: Duration) {
        let how = {
            let mut recent = self.lock();
            let Some(entry) = recent.values_mut().flat_map(|l| l.iter_mut()).find(|e| e.id == id) else {
                return;
            };
            let seconds = Some(took.as_secs_f64());
            match phase {
                Phase::Create => entry.create = seconds,
                Phase::Start => entry.start = seconds,
                Phase::Ready => entry.ready = seconds,
            }
            entry.how
        };
        let phase = match phase {
            Phase::Create => "create",
            Phase::Start => "start",
            Phase::Ready => "ready",
        };
        self.telemetry.capacity_phase(how.as_str(), phase, took);
    }

    /// Watches a member that just started until it is ready, then records
    /// the phase (or why it never got there).
    pub(super) fn watch_until_ready(self: &Arc<Self>, id: &str) {
        let tracked = self.lock().values().flatten().any(|e| e.id == id);
        if !tracked {
            return;
        }
        let (this, id) = (self.clone(), id.to_owned());
        let running = Instant::now();
        tokio::spawn(async move {
            let failure = this.readiness_of(&id, running).await;
            match failure {
                None => this.phase(&id, Phase::Ready, running.elapsed()),
                Some(why) => this.failed(&id, why),
            }
        });
    }

    /// `None` once the member is ready, else why it never got there.
    async fn readiness_of(&self, id: &str, running: Instant) -> Option<String> {
        let mut changes = self.store.subscribe();
        let deadline = running + READY_WATCH;
        loop {
            match self.store.member(id) {
                Some(m) if m.ready() => return None,
                Some(m) if m.state.holds_place() || m.state == MemberState::Paused => {}
                Some(m) => return Some(format!("it went {:?}", m.state).to_lowercase()),
                None => return Some("it is gone".to_owned()),
            }
            if !matches!(tokio::time::timeout_at(deadline, changes.changed()).await, Ok(Ok(()))) {
                return Some("it was not ready in time".to_owned());
            }
        }
    }

    fn failed(&self, id: &str, why: String) {
        if let Some(entry) = self.lock().values_mut().flat_map(|l| l.iter_mut()).find(|e| e.id == id) {
            entry.failed = Some(why);
        }
    }

    /// The last cold starts of a group, oldest first.
    pub(super) fn recent(&self, group: &str) -> Vec<ColdStart> {
        self.lock().get(group).map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }
}
