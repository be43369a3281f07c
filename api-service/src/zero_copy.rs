//! Zero-copy sending of snapshot bodies with `sendfile(2)`, as nginx sends a static file.
//!
//! hyper sends a body by handing its bytes to the connection's `writev`, and the kernel
//! copies them into the socket buffer: for a 258 KB body that copy was the largest part
//! of what a 200 cost the API. So each body of a snapshot is also kept in a sealed
//! in-memory file ([`BodyFile`]), and [`ZeroCopyStream`], the IO every connection is
//! served on, recognises a write of a body's bytes by their address and sends them from
//! that file instead. Any other write, and a body without a file, goes through `writev`.

use std::fs::File;
use std::io::{self, IoSlice, Write as _};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::Metrics;
use crate::snapshot_cache::SnapshotCache;

/// A body's bytes in a sealed memfd: nothing can change or resize it once made.
pub struct BodyFile(OwnedFd);

impl BodyFile {
    /// A file holding a copy of `body`.
    ///
    /// # Errors
    /// When the kernel refuses the memfd (Linux before 3.17, or out of memory).
    pub fn new(body: &[u8]) -> io::Result<Self> {
        let fd = rustix::fs::memfd_create(
            "ofertasws-body",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        file.write_all(body)?;
        let fd = OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &fd,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        Ok(Self(fd))
    }
}

/// Where a slice about to be written lies in a body that has a file.
pub struct FileRange<'a> {
    /// The body's file.
    pub file: &'a BodyFile,
    /// Offset of the slice's first byte in the body.
    pub offset: u64,
}

/// A connection whose writes of snapshot bodies go out with `sendfile`.
pub struct ZeroCopyStream {
    stream: TcpStream,
    cache: Arc<SnapshotCache>,
    metrics: Arc<Metrics>,
}

impl ZeroCopyStream {
    /// Wraps an accepted connection; bodies are looked up in `cache`'s current snapshot
    /// and bytes sent from files are counted in `metrics`.
    pub fn new(stream: TcpStream, cache: Arc<SnapshotCache>, metrics: Arc<Metrics>) -> Self {
        Self {
            stream,
            cache,
            metrics,
        }
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Writes the slices before the first one that lies in a body with a file (with
    /// `MSG_MORE`, so they share packets with what follows), then that slice with
    /// `sendfile`. Returns how many bytes went out; hyper writes the rest next.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let snapshot = this.cache.load();
        let found = snapshot.as_deref().and_then(|snapshot| {
            bufs.iter()
                .enumerate()
                .find_map(|(at, buf)| snapshot.body_file(buf).map(|range| (at, range)))
        });
        let Some((at, range)) = found else {
            return Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        };
        loop {
            ready!(this.stream.poll_write_ready(cx))?;
            let sent = this.stream.try_io(Interest::WRITABLE, || {
                send(&this.stream, &bufs[..at], &range, bufs[at].len())
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok((total, from_file)) => {
                    this.metrics.sent_from_file(from_file);
                    return Poll::Ready(Ok(total));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Sends `head` then `len` bytes of `range`'s file; returns the bytes sent in all and
/// those sent from the file. A partial head is returned as is, and so is a whole head
/// whose body could not follow yet: the caller writes the rest next time.
fn send(
    socket: &TcpStream,
    head: &[IoSlice<'_>],
    range: &FileRange<'_>,
    len: usize,
) -> io::Result<(usize, usize)> {
    let head_len: usize = head.iter().map(|buf| buf.len()).sum();
    if head_len > 0 {
        let sent = rustix::net::sendmsg(
            socket,
            head,
            &mut SendAncillaryBuffer::default(),
            SendFlags::MORE | SendFlags::NOSIGNAL,
        )?;
        if sent < head_len {
            return Ok((sent, 0));
        }
    }
    let mut offset = range.offset;
    match rustix::fs::sendfile(socket, &range.file.0, Some(&mut offset), len) {
        Ok(from_file) => Ok((head_len + from_file, from_file)),
        Err(_) if head_len > 0 => Ok((head_len, 0)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_file_holds_the_body_and_refuses_writes() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let file = BodyFile::new(&body).unwrap();
        let mut copy = File::from(file.0.try_clone().unwrap());
        let mut read = vec![0; body.len()];
        std::os::unix::fs::FileExt::read_exact_at(&copy, &mut read, 0).unwrap();
        assert_eq!(read, body);
        assert!(copy.write_all(b"x").is_err(), "a sealed file took a write");
        assert!(copy.set_len(10).is_err(), "a sealed file shrank");
    }
}
