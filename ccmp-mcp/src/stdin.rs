//! Knowing at once when the client has gone: stdin reaching end of file.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Reads through to `inner`, and fires `closed` when it reaches end of file.
#[derive(Debug)]
pub struct WatchEof<R> {
    inner: R,
    closed: CancellationToken,
}

impl<R> WatchEof<R> {
    pub fn new(inner: R, closed: CancellationToken) -> Self {
        Self { inner, closed }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WatchEof<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(result) = &poll
            && (result.is_err() || buf.filled().len() == before)
            && buf.remaining() > 0
        {
            self.closed.cancel();
        }
        poll
    }
}
