//! The body read timeout: hyper bounds the headers, not the body, so a
//! client could hold a connection (and its slot) forever by trickling one
//! byte now and then. The whole body must arrive within the timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// What became of a request body, for the listener once the handler answered.
#[derive(Debug, Default)]
pub struct BodyState {
    /// The deadline passed: the listener answers 408 whatever the handler made of it.
    pub expired: AtomicBool,
    /// The body was read to its end (or was empty).
    pub finished: AtomicBool,
}

/// A request body that fails once its deadline passes, and records what became of it.
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    deadline: Instant,
    /// Created on the first wait, so bodies read at once cost no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    state: Arc<BodyState>,
}

impl<B: Body> TimedBody<B> {
    /// `inner`, to be read within `limit` from now.
    pub fn new(inner: B, limit: Duration, state: Arc<BodyState>) -> Self {
        if inner.is_end_stream() {
            state.finished.store(true, Ordering::Release);
        }
        Self { inner, limit, deadline: Instant::now() + limit, sleep: None, state }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() {
                this.state.finished.store(true, Ordering::Release);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.state.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyTimedOut(this.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn a_body_that_stalls_fails_at_the_deadline_and_says_so() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.unwrap();
        let stream = StreamBody::new(tokio_stream_from(rx));
        let state = Arc::new(BodyState::default());
        let body = TimedBody::new(stream, Duration::from_millis(100), state.clone());
        let error = body.collect().await.expect_err("the stalled body fails");
        assert!(error.to_string().contains("not received within 100ms"), "{error}");
        assert!(state.expired.load(Ordering::Acquire) && !state.finished.load(Ordering::Acquire));
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_sent_in_time_is_untouched() {
        let state = Arc::new(BodyState::default());
        let full = http_body_util::Full::new(Bytes::from_static(b"{}"));
        let body = TimedBody::new(full, Duration::from_secs(1), state.clone());
        assert_eq!(body.collect().await.unwrap().to_bytes(), Bytes::from_static(b"{}"));
        assert!(state.finished.load(Ordering::Acquire) && !state.expired.load(Ordering::Acquire));
    }

    /// An mpsc receiver as a stream, without tokio-stream.
    fn tokio_stream_from<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
    }
}
