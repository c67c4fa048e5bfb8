//! Lingering close. When a connection is closed with a request body left
//! unread (a 413 on the declared length, a refusal before the handler read
//! it), the client may still be sending it; closing a socket with unread data
//! makes the kernel answer with a reset, and the client sees "broken pipe"
//! instead of our answer. So, as nginx does, after shutting down our side we
//! read and discard for a short while before closing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Longest a closing connection keeps reading what the client still sends.
pub const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and discarded while lingering.
pub const LINGER_BYTES: usize = 1 << 20;

/// A connection's stream that lingers on shutdown when `unread` is set.
pub struct Lingering<I> {
    inner: I,
    /// Set by the listener when a request body was left unread.
    unread: Arc<AtomicBool>,
    shut: bool,
    drained: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<I> Lingering<I> {
    /// `inner`, lingering on shutdown once `unread` is set.
    pub fn new(inner: I, unread: Arc<AtomicBool>) -> Self {
        Self { inner, unread, shut: false, drained: 0, deadline: None }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Lingering<I> {
    /// Reads and discards until the client closes, the time or byte budget is spent, or an error.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER)));
        let mut scratch = [0u8; 8192];
        while self.drained < LINGER_BYTES {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => self.drained += buf.filled().len(),
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return deadline.as_mut().poll(cx),
            }
        }
        Poll::Ready(())
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Lingering<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.shut = true;
        }
        if this.unread.load(Ordering::Acquire) {
            ready!(this.poll_drain(cx));
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An answer sent before the request body was read, as a 413 is.
    const ANSWER: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n";

    #[tokio::test]
    async fn a_closing_connection_reads_what_the_client_still_sends() {
        // The pipe holds 64 bytes each way: the answer fits, the body does not.
        let (server, mut client) = tokio::io::duplex(64);
        let unread = Arc::new(AtomicBool::new(true));
        let mut server = Lingering::new(server, unread);
        let closing = tokio::spawn(async move {
            server.write_all(ANSWER).await?;
            server.shutdown().await?;
            Ok::<_, io::Error>(server.drained)
        });
        let exchange = async {
            // More than the pipe holds: only a lingering reader lets it all through.
            client.write_all(&[b'x'; 10_000]).await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            drop(client);
            (answer, closing.await.unwrap().unwrap())
        };
        // A server that stopped reading would leave the client stuck writing.
        let (answer, drained) =
            tokio::time::timeout(Duration::from_secs(10), exchange).await.expect("the body went through");
        assert_eq!(String::from_utf8_lossy(&answer), String::from_utf8_lossy(ANSWER), "the answer, then the end");
        assert_eq!(drained, 10_000, "the whole body was read and discarded");
    }
}
