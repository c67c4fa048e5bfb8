//! Replacing a running replicator without dropping a connection. The
//! process that serves listens on a control socket (`--control-socket`,
//! mode 0600 in a folder of mode 0700, answered only to a peer of the same
//! user as the kernel reports it). A new `serve` started with the same
//! control socket asks there first:
//!
//! 1. the old process sends its listening sockets (API, admin, wake, every
//!    front) over `SCM_RIGHTS` ([`crate::base::handover`]) and stops
//!    accepting; what waits in the accept queues is the new one's to accept,
//!    so no connection attempt is refused or reset;
//! 2. it stops acting (autoscaler, keeper, idle watch, reconcile), lets the
//!    commands it began finish, and writes [`RELEASED`]; the new process
//!    holds the commands it receives until then (or until the old one's end
//!    of the socket closes: a process that died acts on nothing);
//! 3. it ends its event streams (followers reconnect to the new one and
//!    resume from `Last-Event-ID`), finishes its requests in flight and lets
//!    its spliced front connections run, up to `--shutdown-grace`, and
//!    exits 0.
//!
//! Without a predecessor (none running, or one killed: its socket file
//! refuses), the new process binds its own listeners, as a plain restart.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::base::handover::{self, Handover, Sockets};

/// What a successor writes to ask for the sockets.
const ASK: &str = "takeover v1";
/// What the old process writes once it no longer acts.
pub const RELEASED: &str = "released";
/// Longest the exchange of the sockets may take, either side.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The control socket of a serving process.
pub struct Control {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's identity, to remove it on exit only if it is still ours.
    inode: (u64, u64),
}

/// A predecessor handing over: its sockets, and the stream on which it says
/// when it no longer acts.
pub struct Predecessor {
    /// What it sent.
    pub handover: Handover,
    stream: UnixStream,
}

/// A successor that asked: the sockets go there, then [`RELEASED`].
pub struct Successor {
    stream: UnixStream,
}

/// Asks the process serving on `path` to hand over; `None` when none
/// answers there (no socket file, or a stale one left by a killed process).
pub fn ask(path: &Path) -> io::Result<Option<Predecessor>> {
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => return Ok(None),
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot reach {}: {e}", path.display()))),
    };
    if !handover::peer_is_same_user(&stream)? {
        return Err(io::Error::other(format!("{} is served by another user: not taken over", path.display())));
    }
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    (&stream).write_all(format!("{ASK}\n").as_bytes())?;
    let handover = handover::receive(&stream)?;
    stream.set_read_timeout(None)?;
    info!(sockets = handover.sockets.len(), control = %path.display(), "taking over from the running replicator");
    Ok(Some(Predecessor { handover, stream }))
}

impl Predecessor {
    /// Waits until the predecessor no longer acts: it says so, or its end closes.
    pub async fn released(self) {
        let stream = self.stream;
        let said = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).map(|_| line.trim() == RELEASED)
        })
        .await;
        match said {
            Ok(Ok(true)) => info!("the predecessor handed acting over"),
            _ => warn!("the predecessor went away without saying it stopped acting; acting now"),
        }
    }
}

impl Control {
    /// Listens on `path` (mode 0600; its folder made with mode 0700 if
    /// missing), replacing a socket file left there.
    pub fn bind(path: &Path) -> io::Result<Self> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("control socket {}: {e}", path.display()));
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty() && !f.exists()) {
            std::fs::create_dir_all(folder).map_err(context)?;
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(context)?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(context(e)),
            _ => {}
        }
        let listener = UnixListener::bind(path).map_err(context)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(context)?;
        let meta = std::fs::metadata(path).map_err(context)?;
        listener.set_nonblocking(true).map_err(context)?;
        Ok(Self { listener, path: path.to_owned(), inode: (meta.dev(), meta.ino()) })
    }

    /// Answers successors until one asks properly; the others are closed.
    pub async fn successor(&self) -> io::Result<Successor> {
        let (sender, mut asked) = mpsc::channel(1);
        let listener = tokio::net::UnixListener::from_std(self.listener.try_clone()?)?;
        let accepting = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, most likely: a moment for some to close.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let (sender, stream) = (sender.clone(), stream.into_std());
                tokio::task::spawn_blocking(move || match stream.and_then(check) {
                    Ok(stream) => drop(sender.blocking_send(stream)),
                    Err(e) => warn!(error = %e, "a takeover request on the control socket was refused"),
                });
            }
        });
        let stream = asked.recv().await;
        accepting.abort();
        stream.map(|stream| Successor { stream }).ok_or_else(|| io::Error::other("the control socket closed"))
    }

    /// Removes the socket file, unless a successor's has replaced it.
    pub fn remove(&self) {
        let ours = std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A successor of the same user that asked in the right words.
fn check(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
    stream.set_nonblocking(false)?;
    if !handover::peer_is_same_user(&stream)? {
        return Err(io::Error::other("the peer runs as another user"));
    }
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    if line.trim() != ASK {
        return Err(io::Error::other(format!("unexpected request {:?}", crate::base::quote::clip(line.trim()))));
    }
    Ok(stream)
}

impl Successor {
    /// Sends every socket this process serves on, and the last event id.
    pub async fn send(&self, sockets: &Sockets, events_after: u64) -> io::Result<()> {
        let serving = sockets.serving()?;
        let stream = self.stream.try_clone()?;
        tokio::task::spawn_blocking(move || {
            let borrowed: Vec<(String, std::os::fd::BorrowedFd<'_>)> =
                serving.iter().map(|(n, fd)| (n.clone(), fd.as_fd())).collect();
            handover::send(&stream, &borrowed, events_after)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Tells the successor that this process no longer acts.
    pub fn released(&self) {
        if let Err(e) = (&self.stream).write_all(format!("{RELEASED}\n").as_bytes()) {
            warn!(error = %e, "cannot tell the successor that acting is handed over; it acts once this process ends");
        }
    }
}

/// The default control socket for an API listening on `listen`: a file per
/// address in the user's runtime folder; none for port 0 (no successor can
/// listen where an ephemeral port was).
pub fn default_path(listen: std::net::SocketAddr, runtime: Option<PathBuf>, uid: u32) -> Option<PathBuf> {
    if listen.port() == 0 {
        return None;
    }
    let folder = match (runtime, uid) {
        (Some(dir), _) => dir.join("replicator"),
        (None, 0) => PathBuf::from("/run/replicator"),
        (None, uid) => std::env::temp_dir().join(format!("replicator-{uid}")),
    };
    let address = listen.to_string().replace([':', '[', ']'], "_");
    Some(folder.join(format!("control-{address}.sock")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_control_socket_is_per_address_in_the_runtime_folder_and_none_for_port_0() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(default_path(at("0.0.0.0:0"), None, 0), None);
        assert_eq!(
            default_path(at("0.0.0.0:8443"), None, 0).unwrap(),
            PathBuf::from("/run/replicator/control-0.0.0.0_8443.sock")
        );
        assert_eq!(
            default_path(at("[::1]:8443"), Some("/run/user/1000".into()), 1000).unwrap(),
            PathBuf::from("/run/user/1000/replicator/control-___1__8443.sock")
        );
    }

    #[tokio::test]
    async fn a_successor_receives_the_sockets_and_then_the_release() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("sub/control.sock");
        let control = Control::bind(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        let sockets = Sockets::default();
        let api = sockets.listen("api", "127.0.0.1:0".parse().unwrap()).unwrap();
        let asking = tokio::task::spawn_blocking({
            let path = path.clone();
            move || ask(&path)
        });
        let successor = control.successor().await.unwrap();
        successor.send(&sockets, 7).await.unwrap();
        let predecessor = asking.await.unwrap().unwrap().expect("a predecessor answered");
        assert_eq!(predecessor.handover.events_after, 7);
        let (name, fd) = &predecessor.handover.sockets[0];
        let received = std::net::TcpListener::from(fd.try_clone().unwrap());
        assert_eq!((name.as_str(), received.local_addr().unwrap()), ("api", api.local_addr().unwrap()));
        successor.released();
        drop(successor);
        tokio::time::timeout(Duration::from_secs(5), predecessor.released()).await.expect("released");
        control.remove();
        assert!(!path.exists());
    }

    #[test]
    fn no_predecessor_where_no_socket_or_a_stale_one_is() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("control.sock");
        assert!(ask(&path).unwrap().is_none(), "no file");
        drop(UnixListener::bind(&path).unwrap());
        assert!(ask(&path).unwrap().is_none(), "a file nothing listens on");
    }
}
