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

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};

/// Most sockets one handover carries (the kernel's `SCM_MAX_FD` is 253).
pub const MOST: usize = 250;
/// Longest list of names a handover carries, in bytes.
const NAMES_MAX: usize = 64 * 1024;

/// Sends `sockets` (each with the name the receiver knows it by) in one message.
pub fn send(stream: &UnixStream, sockets: &[(String, BorrowedFd<'_>)]) -> io::Result<()> {
    if sockets.len() > MOST {
        return Err(io::Error::other(format!("{} sockets: at most {MOST} can be handed over", sockets.len())));
    }
    let names = sockets.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join("\n");
    if names.len() > NAMES_MAX || sockets.iter().any(|(n, _)| n.contains('\n') || n.is_empty()) {
        return Err(io::Error::other("socket names must be non-empty single lines"));
    }
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|(_, fd)| *fd).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MOST))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("the descriptors do not fit one message"));
    }
    let mut payload = (names.len() as u32).to_be_bytes().to_vec();
    payload.extend_from_slice(names.as_bytes());
    let sent = sendmsg(stream.as_fd(), &[IoSlice::new(&payload)], &mut control, SendFlags::empty())?;
    if sent != payload.len() {
        return Err(io::Error::other("the handover message was cut short"));
    }
    Ok(())
}

/// Receives what [`send`] sent: each socket with its name.
pub fn receive(stream: &UnixStream) -> io::Result<Vec<(String, OwnedFd)>> {
    let mut payload = vec![0u8; 4 + NAMES_MAX];
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
    let names = names_of(&payload[..got.bytes])?;
    if names.len() != fds.len() {
        return Err(io::Error::other(format!("{} names for {} descriptors", names.len(), fds.len())));
    }
    Ok(names.into_iter().zip(fds).collect())
}

fn names_of(payload: &[u8]) -> io::Result<Vec<String>> {
    let malformed = || io::Error::other("a malformed handover message");
    let (length, rest) = payload.split_first_chunk::<4>().ok_or_else(malformed)?;
    let length = u32::from_be_bytes(*length) as usize;
    let names = std::str::from_utf8(rest.get(..length).ok_or_else(malformed)?).map_err(|_| malformed())?;
    Ok(if names.is_empty() { Vec::new() } else { names.split('\n').map(str::to_owned).collect() })
}

/// Whether the peer at the other end of `stream` runs as this process's user.
pub fn peer_is_same_user(stream: &UnixStream) -> io::Result<bool> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(peer.uid == rustix::process::getuid())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
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
        send(&old, &[("api".to_owned(), listener.as_fd())]).unwrap();
        drop(listener);
        let mut received = receive(&new).unwrap();
        assert_eq!(received.len(), 1);
        let (name, fd) = received.remove(0);
        assert_eq!(name, "api");
        let listener = TcpListener::from(fd);
        assert_eq!(listener.local_addr().unwrap(), address, "the same socket, not a new one");
        let (mut accepted, _) = listener.accept().unwrap();
        let mut hello = [0u8; 5];
        accepted.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello");
    }

    #[test]
    fn several_sockets_keep_their_names_and_order() {
        let listeners: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let names = ["api", "admin", "front:6379"];
        let sockets: Vec<(String, BorrowedFd<'_>)> =
            names.iter().zip(&listeners).map(|(n, l)| ((*n).to_owned(), l.as_fd())).collect();
        let (old, new) = UnixStream::pair().unwrap();
        send(&old, &sockets).unwrap();
        let received = receive(&new).unwrap();
        let got: Vec<(String, std::net::SocketAddr)> =
            received.into_iter().map(|(n, fd)| (n, TcpListener::from(fd).local_addr().unwrap())).collect();
        let wanted: Vec<(String, std::net::SocketAddr)> =
            names.iter().zip(&listeners).map(|(n, l)| ((*n).to_owned(), l.local_addr().unwrap())).collect();
        assert_eq!(got, wanted);
    }

    #[test]
    fn a_name_on_two_lines_or_a_message_without_its_names_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (old, _new) = UnixStream::pair().unwrap();
        assert!(send(&old, &[("a\nb".to_owned(), listener.as_fd())]).is_err());
        assert!(names_of(&[0, 0, 0, 9, b'a']).is_err(), "a length past the message");
        assert!(names_of(&[0, 0]).is_err(), "no length");
        assert_eq!(names_of(&[0, 0, 0, 0]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_peer_of_the_same_process_is_the_same_user() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(peer_is_same_user(&a).unwrap());
    }
}
