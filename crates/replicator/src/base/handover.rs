//! Handing listening sockets from one replicator process to the next, as
//! HAProxy (`expose-fd listeners`) and Envoy's hot restart do: the
//! descriptors travel over a Unix socket in one `SCM_RIGHTS` message, their
//! names in the same message. The sockets stay open throughout, so a
//! connection waiting in an accept queue is accepted by the next process,
//! never refused or reset (with `SO_REUSEPORT` alone, closing the old
//! socket resets what waits in its queue).
//!
//! Only a peer running as the same user is answered (its credentials are
//! read from the kernel, not from anything it says).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};
use serde::{Deserialize, Serialize};

/// Most sockets one handover carries (the kernel's `SCM_MAX_FD` is 253).
pub const MOST: usize = 250;
/// Longest header a handover carries, in bytes.
const HEADER_MAX: usize = 64 * 1024;

/// What one process hands the next: its listening sockets by name, and the
/// number of the last event it published (the next one continues from it,
/// so a follower's `Last-Event-ID` still means something).
#[derive(Debug)]
pub struct Handover {
    /// Each socket with the name the receiver knows it by.
    pub sockets: Vec<(String, OwnedFd)>,
    /// The last event id published.
    pub events_after: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    names: Vec<String>,
    events_after: u64,
}

/// Sends `sockets` (each with its name) and `events_after` in one message.
pub fn send(stream: &UnixStream, sockets: &[(String, BorrowedFd<'_>)], events_after: u64) -> io::Result<()> {
    if sockets.len() > MOST {
        return Err(io::Error::other(format!("{} sockets: at most {MOST} can be handed over", sockets.len())));
    }
    let header = Header { names: sockets.iter().map(|(n, _)| n.clone()).collect(), events_after };
    let header = serde_json::to_vec(&header).map_err(io::Error::other)?;
    if header.len() > HEADER_MAX {
        return Err(io::Error::other("the socket names are too long for one message"));
    }
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|(_, fd)| *fd).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MOST))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("the descriptors do not fit one message"));
    }
    let mut payload = (header.len() as u32).to_be_bytes().to_vec();
    payload.extend_from_slice(&header);
    let sent = sendmsg(stream.as_fd(), &[IoSlice::new(&payload)], &mut control, SendFlags::empty())?;
    if sent != payload.len() {
        return Err(io::Error::other("the handover message was cut short"));
    }
    Ok(())
}

/// Receives what [`send`] sent.
pub fn receive(stream: &UnixStream) -> io::Result<Handover> {
    let mut payload = vec![0u8; 4 + HEADER_MAX];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MOST))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(stream.as_fd(), &mut [IoSliceMut::new(&mut payload)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::other("the descriptors were cut short (too many for one message)"));
    }
    let header = header_of(&payload[..got.bytes])?;
    if header.names.len() != fds.len() {
        return Err(io::Error::other(format!("{} names for {} descriptors", header.names.len(), fds.len())));
    }
    Ok(Handover { sockets: header.names.into_iter().zip(fds).collect(), events_after: header.events_after })
}

fn header_of(payload: &[u8]) -> io::Result<Header> {
    let malformed = || io::Error::other("a malformed handover message");
    let (length, rest) = payload.split_first_chunk::<4>().ok_or_else(malformed)?;
    let length = u32::from_be_bytes(*length) as usize;
    serde_json::from_slice(rest.get(..length).ok_or_else(malformed)?).map_err(|_| malformed())
}

/// The listening sockets a process serves on, by name: those it inherited
/// from its predecessor (each taken once), and those it would hand on.
#[derive(Default)]
pub struct Sockets {
    inherited: Mutex<HashMap<String, OwnedFd>>,
    serving: Mutex<BTreeMap<String, OwnedFd>>,
}

impl Sockets {
    /// A registry that first offers the predecessor's sockets.
    pub fn inheriting(sockets: Vec<(String, OwnedFd)>) -> Self {
        Self { inherited: Mutex::new(sockets.into_iter().collect()), serving: Mutex::default() }
    }

    /// A listener named `name` on `address`: the inherited one when it
    /// listens there (any port, when `address` asks for port 0), else a new
    /// one bound. Kept for the next process until [`Self::forget`].
    pub fn listen(&self, name: &str, address: SocketAddr) -> io::Result<TcpListener> {
        let inherited = lock(&self.inherited).remove(name).map(TcpListener::from);
        let fits = |l: &TcpListener| {
            l.local_addr().is_ok_and(|a| a.ip() == address.ip() && (address.port() == 0 || a.port() == address.port()))
        };
        let listener = match inherited {
            Some(l) if fits(&l) => l,
            _ => TcpListener::bind(address)?,
        };
        listener.set_nonblocking(true)?;
        lock(&self.serving).insert(name.to_owned(), OwnedFd::from(listener.try_clone()?));
        Ok(listener)
    }

    /// `name` no longer listens (a front closed): not handed on.
    pub fn forget(&self, name: &str) {
        lock(&self.serving).remove(name);
    }

    /// Every socket served on, duplicated, for [`send`].
    pub fn serving(&self) -> io::Result<Vec<(String, OwnedFd)>> {
        lock(&self.serving).iter().map(|(n, fd)| Ok((n.clone(), fd.try_clone()?))).collect()
    }

    /// Lets go of every socket kept for a successor, once none will ask
    /// (this process stops): a socket then closes with its listener, and
    /// connections no longer queue where nothing will accept them.
    pub fn release(&self) {
        lock(&self.serving).clear();
        lock(&self.inherited).clear();
    }

    /// Inherited sockets nothing asked for (a front whose group is gone, a
    /// listener moved by a changed flag): closed now.
    pub fn close_unclaimed(&self) -> Vec<String> {
        lock(&self.inherited).drain().map(|(name, _)| name).collect()
    }
}

/// Closes a listener, first taking what its backlog holds: connections the
/// kernel completed (a balancer counts them as sent) that closing would
/// reset. Its owner serves them like any connection accepted before.
pub fn backlog(listener: tokio::net::TcpListener) -> Vec<(tokio::net::TcpStream, SocketAddr)> {
    let Ok(listener) = listener.into_std() else { return Vec::new() };
    let mut queued = Vec::new();
    // Still non-blocking, as tokio left it: the loop ends when the backlog is empty.
    while let Ok((tcp, remote)) = listener.accept() {
        match tcp.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(tcp)) {
            Ok(tcp) => queued.push((tcp, remote)),
            Err(e) => tracing::warn!(error = %e, "a connection of the backlog could not be served"),
        }
    }
    queued
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the peer at the other end of `stream` runs as this process's user.
pub fn peer_is_same_user(stream: &UnixStream) -> io::Result<bool> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(peer.uid == rustix::process::getuid())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_connection_waiting_in_the_accept_queue_is_accepted_by_the_receiver() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // The kernel completes the handshake: the connection waits in the queue.
        let mut client = TcpStream::connect(address).unwrap();
        client.write_all(b"hello").unwrap();
        let (old, new) = UnixStream::pair().unwrap();
        send(&old, &[("api".to_owned(), listener.as_fd())], 41).unwrap();
        drop(listener);
        let Handover { mut sockets, events_after } = receive(&new).unwrap();
        assert_eq!((sockets.len(), events_after), (1, 41));
        let (name, fd) = sockets.remove(0);
        assert_eq!(name, "api");
        let listener = TcpListener::from(fd);
        assert_eq!(listener.local_addr().unwrap(), address, "the same socket, not a new one");
        let (mut accepted, _) = listener.accept().unwrap();
        let mut hello = [0u8; 5];
        accepted.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello");
    }

    #[test]
    fn a_released_socket_closes_with_its_listener_and_refuses_connections() {
        let sockets = Sockets::default();
        let listener = sockets.listen("api", "127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        assert!(TcpStream::connect(address).is_ok(), "kept for a successor, the socket still listens");
        sockets.release();
        let refused = TcpStream::connect(address).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn several_sockets_keep_their_names_and_order() {
        let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let names = ["api", "admin", "front:6379"];
        let sockets: Vec<(String, BorrowedFd<'_>)> =
            names.iter().zip(&listeners).map(|(n, l)| ((*n).to_owned(), l.as_fd())).collect();
        let (old, new) = UnixStream::pair().unwrap();
        send(&old, &sockets, 0).unwrap();
        let received = receive(&new).unwrap().sockets;
        let got: Vec<(String, SocketAddr)> =
            received.into_iter().map(|(n, fd)| (n, TcpListener::from(fd).local_addr().unwrap())).collect();
        let wanted: Vec<(String, SocketAddr)> =
            names.iter().zip(&listeners).map(|(n, l)| ((*n).to_owned(), l.local_addr().unwrap())).collect();
        assert_eq!(got, wanted);
    }

    #[test]
    fn a_message_without_its_header_is_refused() {
        assert!(header_of(&[0, 0, 0, 9, b'{']).is_err(), "a length past the message");
        assert!(header_of(&[0, 0]).is_err(), "no length");
        assert!(header_of(&[0, 0, 0, 2, b'{', b'}']).is_err(), "no names");
    }

    #[test]
    fn the_registry_offers_an_inherited_socket_where_it_listens_and_binds_anew_elsewhere() {
        let old = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = old.local_addr().unwrap();
        let moved = TcpListener::bind("127.0.0.1:0").unwrap();
        let sockets = Sockets::inheriting(vec![("api".into(), old.into()), ("admin".into(), moved.into())]);
        assert_eq!(sockets.listen("api", at).unwrap().local_addr().unwrap(), at, "inherited");
        // Asked elsewhere (a changed flag): a new socket there, the inherited one closed.
        let elsewhere = sockets.listen("admin", "127.0.0.2:0".parse().unwrap()).unwrap();
        assert_eq!(elsewhere.local_addr().unwrap().ip().to_string(), "127.0.0.2");
        let wake = sockets.listen("wake", "127.0.0.1:0".parse().unwrap()).unwrap();
        let names: Vec<String> = sockets.serving().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["admin", "api", "wake"]);
        sockets.forget("wake");
        drop(wake);
        assert_eq!(sockets.serving().unwrap().len(), 2);
        assert!(sockets.close_unclaimed().is_empty());
    }

    #[test]
    fn a_peer_of_the_same_process_is_the_same_user() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(peer_is_same_user(&a).unwrap());
    }
}
