//! Copying a spliced connection both ways. Unlike `copy_bidirectional`,
//! a direction holds a buffer only while bytes flow: an idle connection
//! costs its two sockets and a task, not two buffers, so ten thousand idle
//! clients stay cheap, while a bulk transfer reads in large chunks (fewer
//! system calls per byte). A direction that reaches the end of its input
//! shuts the other side's writing half, so half-closed protocols work.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The chunk a flowing direction reads into.
const CHUNK: usize = 64 * 1024;

/// Copies until both directions end; bytes sent (client to member, member
/// to client). An error in either direction ends both.
pub async fn relay(client: TcpStream, member: TcpStream) -> io::Result<(u64, u64)> {
    let (client_read, client_write) = client.into_split();
    let (member_read, member_write) = member.into_split();
    let (inbound, outbound) = tokio::try_join!(one_way(client_read, member_write), one_way(member_read, client_write))?;
    Ok((inbound, outbound))
}

async fn one_way(from: OwnedReadHalf, mut to: OwnedWriteHalf) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        from.readable().await?;
        // Taken only now that bytes wait, and given back once they stop.
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match from.try_read(&mut buffer) {
                Ok(0) => {
                    to.shutdown().await?;
                    return Ok(total);
                }
                Ok(n) => {
                    to.write_all(&buffer[..n]).await?;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A client and a member, relayed; the member echoes in upper case and
    /// answers "bye" once the client has finished sending.
    #[tokio::test]
    async fn bytes_flow_both_ways_and_a_half_close_passes_through() {
        let member_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let member_address = member_listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut member, _) = member_listener.accept().await.unwrap();
            let mut received = Vec::new();
            member.read_to_end(&mut received).await.unwrap();
            member.write_all(&received.to_ascii_uppercase()).await.unwrap();
            member.write_all(b" bye").await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_address = front.local_addr().unwrap();
        let relaying = tokio::spawn(async move {
            let (client, _) = front.accept().await.unwrap();
            relay(client, TcpStream::connect(member_address).await.unwrap()).await.unwrap()
        });
        let mut client = TcpStream::connect(front_address).await.unwrap();
        let big = vec![b'a'; 1 << 20];
        client.write_all(&big).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer.len(), (1 << 20) + 4);
        assert!(answer.starts_with(b"AAAA") && answer.ends_with(b"A bye"));
        assert_eq!(relaying.await.unwrap(), (1 << 20, (1 << 20) + 4));
    }
}
