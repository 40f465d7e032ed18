//! Reads a request body within `--max-body-bytes`. A body over the limit is never
//! buffered whole: its start is kept (the review's head is read from it) and the rest
//! is read and dropped until it ends or the request's deadline passes, so that the
//! client gets the answer. Not reading it would lose that answer: over HTTP/2 the
//! stream would be reset while the client is still sending, and over HTTP/1.1
//! closing a connection with unread data resets it.

use crate::review::head::HEAD_SCAN_BYTES;
use axum::body::{Body, Bytes};
use futures::StreamExt;
use std::fmt;
use std::time::Instant;

/// How big a body over the limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Read to its end, or declared by Content-Length.
    Exact(u64),
    /// The deadline passed (or the client stopped) after this many bytes.
    AtLeast(u64),
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Exact(n) => write!(f, "{n} bytes"),
            Size::AtLeast(n) => write!(f, "more than {n} bytes"),
        }
    }
}

/// A body as read.
#[derive(Debug)]
pub enum Read {
    Whole(Bytes),
    /// Over the limit: its first bytes (at most [`HEAD_SCAN_BYTES`]) and its size.
    TooLarge {
        start: Vec<u8>,
        size: Size,
    },
}

/// Reads `body` of at most `limit` bytes; `declared` is its Content-Length. A body
/// over the limit is drained until `deadline`. Errors are the client's (a broken or
/// aborted body).
pub async fn read(
    body: Body,
    limit: usize,
    declared: Option<u64>,
    deadline: Instant,
) -> Result<Read, axum::Error> {
    let mut stream = body.into_data_stream();
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let mut buffer: Vec<u8> = Vec::new();
    let over_from_start = declared.is_some_and(|n| n > limit_u64);
    if !over_from_start {
        // The declared length, when given, is all there is to hold.
        buffer.reserve(declared.map_or(0, |n| n as usize).min(limit));
        loop {
            match stream.next().await {
                None => return Ok(Read::Whole(Bytes::from(buffer))),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) if buffer.len() + chunk.len() <= limit => {
                    buffer.extend_from_slice(&chunk);
                }
                Some(Ok(chunk)) => {
                    let seen = (buffer.len() + chunk.len()) as u64;
                    buffer.truncate(HEAD_SCAN_BYTES);
                    keep_start(&mut buffer, &chunk);
                    break drain(stream, buffer, seen, declared, deadline).await;
                }
            }
        }
    } else {
        drain(stream, buffer, 0, declared, deadline).await
    }
}

/// Appends what of `chunk` still fits in the first [`HEAD_SCAN_BYTES`].
fn keep_start(start: &mut Vec<u8>, chunk: &[u8]) {
    let room = HEAD_SCAN_BYTES.saturating_sub(start.len()).min(chunk.len());
    start.extend_from_slice(chunk.get(..room).unwrap_or_default());
}

/// Keeps the first [`HEAD_SCAN_BYTES`] of what is left (after `start`, `seen`
/// bytes in all so far) and counts the rest until the end or `deadline`.
async fn drain(
    mut stream: axum::body::BodyDataStream,
    mut start: Vec<u8>,
    mut seen: u64,
    declared: Option<u64>,
    deadline: Instant,
) -> Result<Read, axum::Error> {
    start.truncate(HEAD_SCAN_BYTES);
    start.shrink_to_fit();
    let ended = loop {
        match tokio::time::timeout_at(deadline.into(), stream.next()).await {
            Ok(None) => break true,
            Ok(Some(Ok(chunk))) => {
                keep_start(&mut start, &chunk);
                seen += chunk.len() as u64;
            }
            // The answer still goes out; the client may or may not read it.
            Ok(Some(Err(_))) | Err(_) => break false,
        }
    };
    let size = match declared {
        Some(n) => Size::Exact(n),
        None if ended => Size::Exact(seen),
        None => Size::AtLeast(seen),
    };
    Ok(Read::TooLarge { start, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn chunked(parts: Vec<Vec<u8>>) -> Body {
        Body::from_stream(futures::stream::iter(
            parts.into_iter().map(Ok::<_, std::io::Error>),
        ))
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = chunked(vec![b"ab".to_vec(), b"cd".to_vec()]);
        match read(body, 4, None, later()).await {
            Ok(Read::Whole(bytes)) => assert_eq!(&bytes[..], b"abcd"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_keeps_its_start_and_is_counted_to_its_end() {
        let parts: Vec<Vec<u8>> = (0..40).map(|i| vec![b'a' + (i % 26) as u8; 4096]).collect();
        let total: usize = parts.iter().map(Vec::len).sum();
        let expected: Vec<u8> = parts.concat();
        match read(chunked(parts), 10_000, None, later()).await {
            Ok(Read::TooLarge { start, size }) => {
                assert_eq!(size, Size::Exact(total as u64));
                assert_eq!(start.len(), HEAD_SCAN_BYTES);
                assert_eq!(start[..], expected[..HEAD_SCAN_BYTES]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_the_size() {
        let body = chunked(vec![vec![b'x'; 100]]);
        match read(body, 10, Some(100), later()).await {
            Ok(Read::TooLarge { start, size }) => {
                assert_eq!(size, Size::Exact(100));
                assert_eq!(start, vec![b'x'; 100]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn draining_stops_at_the_deadline() {
        // The first chunk is over the limit; the stream then never ends.
        let endless = futures::stream::iter([Ok::<_, std::io::Error>(vec![b'x'; 64])])
            .chain(futures::stream::pending());
        let body = Body::from_stream(endless);
        let deadline = Instant::now() + Duration::from_millis(50);
        match read(body, 10, None, deadline).await {
            Ok(Read::TooLarge { size, .. }) => assert_eq!(size, Size::AtLeast(64)),
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() >= deadline);
    }
}
