//! A request body with a deadline: a client that sends its body slower than
//! `limits.bodyReadTimeoutSeconds` gets an error instead of holding its connection slot (and
//! a request permit) for as long as it likes. The handler that reads the body answers 400/408
//! and hyper then closes the connection, whose body was never finished.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The body was not complete in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimedOut(pub Duration);

pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    started: Instant,
    /// Armed only when the body first has to wait: a body already received (most are) costs
    /// no timer.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// The deadline runs from now (the request head has just been read).
    pub fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            started: Instant::now(),
            deadline: None,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let (started, limit) = (this.started, this.limit);
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
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
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn a_complete_body_passes() {
        let b = DeadlineBody::new(
            Full::new(Bytes::from_static(b"hello")),
            Duration::from_secs(5),
        );
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn a_body_that_never_ends_fails_at_the_deadline() {
        let never = StreamBody::new(futures::stream::pending::<
            Result<Frame<Bytes>, std::convert::Infallible>,
        >());
        let err = DeadlineBody::new(never, Duration::from_millis(50))
            .collect()
            .await
            .expect_err("the deadline cuts the body");
        assert!(err.downcast_ref::<BodyTimedOut>().is_some(), "{err}");
    }
}
