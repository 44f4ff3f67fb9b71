//! How many connections each protocol (HTTP, PostgreSQL wire, Flight SQL) holds open at
//! once. Past the cap a new connection is turned away at once, in the protocol's own
//! words where it has them (HTTP 503, PostgreSQL's FATAL 53300), so a flood of idle or
//! slow clients costs the server a bounded number of sockets and tasks.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The open connections of one protocol.
#[derive(Clone)]
pub struct ConnectionCap {
    protocol: &'static str,
    open: Arc<Semaphore>,
    max: usize,
}

impl ConnectionCap {
    pub fn new(protocol: &'static str, max: usize) -> Self {
        let max = max.max(1);
        Self {
            protocol,
            open: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for one more connection, held as long as the returned permit lives;
    /// `None` (and a log line) when all are taken.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let admitted = Arc::clone(&self.open).try_acquire_owned().ok();
        if admitted.is_none() {
            metrics::counter!("assay_connections_refused_total", "protocol" => self.protocol)
                .increment(1);
            tracing::warn!(
                protocol = self.protocol,
                max = self.max,
                "connection refused: all connection places are taken"
            );
        }
        admitted
    }
}

/// A connection that gives its place back when it closes.
pub struct Admitted<S> {
    // Dropped first: the place is free before the client sees the connection close,
    // so a client that reconnects at once finds it.
    _place: OwnedSemaphorePermit,
    io: S,
}

impl<S> Admitted<S> {
    pub fn new(io: S, place: OwnedSemaphorePermit) -> Self {
        Self { io, _place: place }
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The connection and its place, to wrap the connection (in TLS) and admit that.
    pub fn into_parts(self) -> (S, OwnedSemaphorePermit) {
        (self.io, self._place)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_back_when_a_connection_closes() {
        let cap = ConnectionCap::new("test", 2);
        let a = cap.admit().unwrap();
        let _b = cap.admit().unwrap();
        assert!(cap.admit().is_none());
        drop(a);
        assert!(cap.admit().is_some());
    }
}
