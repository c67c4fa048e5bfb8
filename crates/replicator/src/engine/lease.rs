//! The lease's store: where several replicators learn which of them acts.
//! A store's one promise is that of two writes naming the version they
//! read, exactly one succeeds; the rules of taking and keeping the lease
//! (`rules::lease`) and the loop that follows them (`service::lease`) need
//! nothing else. [`FileLease`] keeps the record in a file, each write under
//! the kernel's `flock`: replicators on one host, or in containers sharing
//! a folder of it. On a Swarm the record is a config object of the
//! cluster's own Raft store, updated by version ([`super::DockerEngine`]).

use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{EngineError, EngineResult, ErrorKind, Op};

/// Who holds the lease, as its holder wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The holder's own name (unique per process: host, pid and start).
    pub holder: String,
    /// Where the holder's API answers (`--advertise`), for the others to name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A record and the version the store gave it; version 0 and no record:
/// nobody ever held the lease.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versioned {
    /// The store's counter, changed by every write.
    pub version: u64,
    /// The record, if any was ever written.
    pub record: Option<LeaseRecord>,
}

/// A store that lets exactly one of two writers of the same version win.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// The record as it is now.
    async fn read(&self) -> EngineResult<Versioned>;
    /// Writes `record` if the store is still at `version`: `Ok(false)` when
    /// another write came first.
    async fn write(&self, version: u64, record: &LeaseRecord) -> EngineResult<bool>;
    /// What the store is, for logs.
    fn describe(&self) -> String;
}

/// The record in a file, read and written under an exclusive `flock`.
pub struct FileLease {
    path: PathBuf,
}

/// The file's content.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u64,
    #[serde(flatten)]
    record: Option<LeaseRecord>,
}

impl FileLease {
    /// The store in `path` (made at the first write; its folder must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Runs `with` on the open file under the lock, off the runtime's threads.
    async fn locked<T: Send + 'static>(
        &self,
        with: impl FnOnce(&mut std::fs::File) -> std::io::Result<T> + Send + 'static,
    ) -> EngineResult<T> {
        let path = self.path.clone();
        let failed = |e: std::io::Error| {
            EngineError::new(Op::Lease, path.display().to_string(), ErrorKind::Unavailable, e.to_string())
        };
        let (failed_too, path_too) = (failed, self.path.clone());
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path_too)?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
            // Closing the file releases the lock, whatever `with` did.
            with(&mut file)
        })
        .await
        .map_err(|e| failed_too(std::io::Error::other(e.to_string())))?
        .map_err(failed)
    }
}

fn read_from(file: &mut std::fs::File) -> std::io::Result<Versioned> {
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    if text.trim().is_empty() {
        return Ok(Versioned::default());
    }
    let on_disk: OnDisk =
        serde_json::from_str(&text).map_err(|e| std::io::Error::other(format!("not a lease record: {e}")))?;
    Ok(Versioned { version: on_disk.version, record: on_disk.record })
}

#[async_trait]
impl LeaseStore for FileLease {
    async fn read(&self) -> EngineResult<Versioned> {
        self.locked(read_from).await
    }

    async fn write(&self, version: u64, record: &LeaseRecord) -> EngineResult<bool> {
        let record = record.clone();
        self.locked(move |file| {
            if read_from(file)?.version != version {
                return Ok(false);
            }
            let text = serde_json::to_vec(&OnDisk { version: version + 1, record: Some(record) })?;
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(&text)?;
            file.sync_data()?;
            Ok(true)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// A store in memory, for the service's unit tests; `down` makes every
/// call fail as an unreachable store would.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryLease {
    /// The record.
    pub state: std::sync::Mutex<Versioned>,
    /// Every call fails while set.
    pub down: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
#[async_trait]
impl LeaseStore for MemoryLease {
    async fn read(&self) -> EngineResult<Versioned> {
        self.check()?;
        Ok(self.state.lock().unwrap().clone())
    }

    async fn write(&self, version: u64, record: &LeaseRecord) -> EngineResult<bool> {
        self.check()?;
        let mut state = self.state.lock().unwrap();
        if state.version != version {
            return Ok(false);
        }
        *state = Versioned { version: version + 1, record: Some(record.clone()) };
        Ok(true)
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
impl MemoryLease {
    fn check(&self) -> EngineResult<()> {
        match self.down.load(std::sync::atomic::Ordering::SeqCst) {
            true => Err(EngineError::new(Op::Lease, "", ErrorKind::Unavailable, "down")),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str) -> LeaseRecord {
        LeaseRecord { holder: holder.into(), address: Some(format!("https://{holder}:8443")) }
    }

    #[tokio::test]
    async fn of_two_writes_of_one_version_in_a_file_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(FileLease::new(dir.path().join("lease")));
        assert_eq!(store.read().await.unwrap(), Versioned::default(), "nobody ever held it");
        let writes = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.write(0, &record(&format!("r{i}"))).await.unwrap() })
        });
        let won: Vec<bool> = futures_util::future::join_all(writes).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        let now = store.read().await.unwrap();
        assert_eq!(now.version, 1);
        assert!(!store.write(0, &record("late")).await.unwrap(), "a stale version loses");
        assert!(store.write(1, &now.record.clone().unwrap()).await.unwrap(), "the holder renews");
        assert_eq!(store.read().await.unwrap().version, 2);
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_record_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lease");
        std::fs::write(&path, "hello").unwrap();
        let e = FileLease::new(&path).read().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.to_string().contains(path.to_str().unwrap()) && e.to_string().contains("not a lease record"), "{e}");
    }
}
