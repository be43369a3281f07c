//! What a snapshot response sends: bytes held in memory (a sealed body, an error's JSON),
//! or the identity document decompressed from the zstd body while it is sent.
//!
//! The identity document is the one body that is not stored: it is held decompressed
//! only up to `API_IDENTITY_HOLD_MB`. A larger one (a catalogue of hundreds of thousands
//! of offers) is decompressed per request on a blocking thread, [`CHUNK_BYTES`] at a time
//! and at most `CHUNKS_AHEAD` chunks ahead of the socket, so a response's memory stays a
//! few chunks whatever the document's size. Clients that accept zstd or gzip never get it.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Size of the chunks a decompressed document is sent in.
pub const CHUNK_BYTES: usize = 128 * 1024;
/// Chunks decompressed ahead of what the socket has taken.
const CHUNKS_AHEAD: usize = 2;

/// The body of a snapshot-route response.
pub enum SnapshotBody {
    /// Bytes sent as they are (taken on the first poll).
    Full(Option<Bytes>),
    /// The identity document, decompressed from `zstd` as it is sent.
    Inflating(Inflating),
}

/// A document decompressed while it is sent; the work starts on the first poll, so a
/// `HEAD` (whose body is never polled) costs nothing.
pub struct Inflating {
    /// The zstd body (shared with the snapshot, so holding it costs nothing).
    zstd: Bytes,
    remaining: u64,
    /// The decompressed chunks, once the decompression runs.
    chunks: Option<mpsc::Receiver<io::Result<Bytes>>>,
}

impl SnapshotBody {
    /// A body of `bytes`.
    pub fn full(bytes: Bytes) -> Self {
        Self::Full(Some(bytes))
    }

    /// The `len` bytes `zstd` decompresses to, produced while they are sent.
    pub fn inflating(zstd: Bytes, len: u64) -> Self {
        Self::Inflating(Inflating {
            zstd,
            remaining: len,
            chunks: None,
        })
    }

    /// Length of the whole body.
    pub fn len(&self) -> u64 {
        match self {
            Self::Full(bytes) => bytes.as_ref().map_or(0, |b| b.len() as u64),
            Self::Inflating(inflating) => inflating.remaining,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decompresses `zstd` into chunks sent on `chunks` until the receiver goes away.
fn inflate(zstd: &[u8], chunks: &mpsc::Sender<io::Result<Bytes>>) {
    let mut decoder = match zstd::stream::read::Decoder::with_buffer(zstd) {
        Ok(decoder) => decoder,
        Err(e) => {
            let _ = chunks.blocking_send(Err(e));
            return;
        }
    };
    loop {
        let mut chunk = BytesMut::zeroed(CHUNK_BYTES);
        let read = match decoder.read(&mut chunk) {
            Ok(0) => return,
            Ok(read) => Ok(chunk.split_to(read).freeze()),
            Err(e) => Err(e),
        };
        let failed = read.is_err();
        if chunks.blocking_send(read).is_err() || failed {
            return;
        }
    }
}

impl Body for SnapshotBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Self::Inflating(inflating) => {
                if inflating.remaining == 0 {
                    return Poll::Ready(None);
                }
                let zstd = &inflating.zstd;
                let chunks = inflating.chunks.get_or_insert_with(|| {
                    let (send, receive) = mpsc::channel(CHUNKS_AHEAD);
                    let zstd = zstd.clone();
                    tokio::task::spawn_blocking(move || inflate(&zstd, &send));
                    receive
                });
                match chunks.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => {
                        inflating.remaining =
                            inflating.remaining.saturating_sub(chunk.len() as u64);
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the document ended before its recorded length",
                    )))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn an_inflating_body_sends_the_whole_document_in_chunks() {
        let document: Vec<u8> = (0..(3 * CHUNK_BYTES + 17))
            .map(|i| (i % 97) as u8)
            .collect();
        let zstd = zstd::encode_all(&document[..], 3).unwrap();
        let body = SnapshotBody::inflating(Bytes::from(zstd), document.len() as u64);
        assert_eq!(body.size_hint().exact(), Some(document.len() as u64));
        let sent = body.collect().await.unwrap().to_bytes();
        assert!(sent == document, "the sent document differs");
    }

    #[tokio::test]
    async fn a_damaged_zstd_body_ends_the_response_with_an_error() {
        let body = SnapshotBody::inflating(Bytes::from_static(b"not zstd at all"), 1_000);
        assert!(body.collect().await.is_err());
    }
}
