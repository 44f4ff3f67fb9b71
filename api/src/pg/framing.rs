//! A length check on the PostgreSQL wire protocol's messages as their bytes arrive.
//!
//! pgwire buffers a whole message before it decodes it and accepts messages of up to
//! 1 GiB, so a 10 MB `Query` cost 10 MB per connection before any SQL limit could look
//! at it. [`Framing`] sits under pgwire's codec, reads each message's type and length
//! from the bytes as they pass, and fails the read as soon as a header announces more
//! than the connection may send, before the body is buffered.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A message whose header announced more bytes than one message may carry.
#[derive(Debug, thiserror::Error)]
#[error(
    "a protocol message of {announced} bytes was sent; messages may be at most {max} bytes (and SQL text at most the SQL limit)"
)]
pub struct Oversize {
    pub announced: usize,
    pub max: usize,
    /// Bytes of the message's body still to come after those already read.
    pub body_left: usize,
}

impl Oversize {
    /// The refusal inside an error from reading a connection wrapped in [`Framing`].
    pub fn of(e: &io::Error) -> Option<&Oversize> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Oversize>())
    }
}

/// Where the parser stands in the byte stream.
#[derive(Debug, Clone, Copy)]
enum Position {
    /// Reading the startup (or cancel) packet's header: it has no type byte.
    StartupHeader { have: usize, len: [u8; 4] },
    /// Reading a typed message's header: one type byte and a 4-byte length.
    Header { have: usize, header: [u8; 5] },
    /// Passing over a message's body.
    Body { left: usize },
}

/// A connection whose reads fail once a message longer than `max` is announced.
pub struct Framing<S> {
    inner: S,
    max: usize,
    position: Position,
    refused: Option<Oversize>,
    /// After a refusal nothing more is parsed: the connection only ends.
    done: bool,
}

impl<S> Framing<S> {
    /// Wraps a connection positioned at its startup packet (after any SSL request).
    pub fn new(inner: S, max: usize) -> Self {
        Self {
            inner,
            max,
            position: Position::StartupHeader {
                have: 0,
                len: [0; 4],
            },
            refused: None,
            done: false,
        }
    }

    /// Moves the parser over bytes the connection has delivered.
    pub fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.done {
            match &mut self.position {
                Position::StartupHeader { have, len } => {
                    let take = (4 - *have).min(bytes.len());
                    len[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have == 4 {
                        // pgwire refuses startup packets over 10,000 bytes itself; after
                        // this one every message is typed.
                        let announced = u32::from_be_bytes(*len) as usize;
                        self.position = Position::Body {
                            left: announced.saturating_sub(4),
                        };
                    }
                }
                Position::Header { have, header } => {
                    let take = (5 - *have).min(bytes.len());
                    header[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    bytes = &bytes[take..];
                    if *have == 5 {
                        let announced =
                            u32::from_be_bytes([header[1], header[2], header[3], header[4]])
                                as usize;
                        if announced > self.max {
                            self.refused = Some(Oversize {
                                announced,
                                max: self.max,
                                body_left: announced.saturating_sub(4 + bytes.len()),
                            });
                            self.done = true;
                            return;
                        }
                        self.position = Position::Body {
                            left: announced.saturating_sub(4),
                        };
                    }
                }
                Position::Body { left } => {
                    let take = (*left).min(bytes.len());
                    *left -= take;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.position = Position::Header {
                            have: 0,
                            header: [0; 5],
                        };
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Framing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // The bytes before the oversized header were delivered with it: the messages
        // they complete are answered first, then the read fails.
        if let Some(refused) = self.refused.take() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, refused)));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            this.observe(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framing<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup() -> Vec<u8> {
        let body = b"\0\x03\0\0user\0alice\0\0";
        let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(body);
        packet
    }

    fn message(kind: u8, body_len: usize) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body_len + 4) as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(b'x', body_len));
        m
    }

    #[test]
    fn messages_within_the_limit_pass_in_any_split_and_a_long_one_is_refused_at_its_header() {
        let mut stream = startup();
        stream.extend(message(b'p', 40));
        stream.extend(message(b'Q', 1000));
        stream.extend(message(b'Q', 5000));
        for chunk in [1, 3, 7, 4096] {
            let mut framing = Framing::new((), 2000);
            let mut refused_at = None;
            for (i, piece) in stream.chunks(chunk).enumerate() {
                framing.observe(piece);
                if framing.refused.is_some() {
                    refused_at = Some(i * chunk);
                    break;
                }
            }
            let refused = framing.refused.expect("the 5000-byte query is refused");
            assert_eq!(refused.announced, 5004);
            // Refused before its body arrived.
            let header_end = startup().len() + 45 + 1005 + 5;
            assert!(refused_at.unwrap() < header_end, "chunk {chunk}");
        }
    }
}
