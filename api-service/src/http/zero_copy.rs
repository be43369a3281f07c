//! Zero-copy sending of snapshot bodies with `sendfile(2)`, as nginx sends a static file.
//!
//! hyper sends a body by handing its bytes to the connection's `writev`, and the kernel
//! copies them into the socket buffer: for a 258 KB body that copy was the largest part
//! of what a 200 cost the API. Each body lives in a sealed in-memory file
//! ([`crate::http::sealed`]), and [`ZeroCopyStream`], the IO every connection is served on,
//! recognises a write of a body's bytes by their address ([`BodyFiles::find`]) and
//! sends them from that file instead. Any other write goes through `writev`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use prometheus_client::metrics::counter::Counter;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::http::sealed::{BodyFiles, FileSlice};

/// A connection whose writes of snapshot bodies go out with `sendfile`.
pub struct ZeroCopyStream {
    stream: TcpStream,
    files: Arc<BodyFiles>,
    sent_from_file: Counter,
}

impl ZeroCopyStream {
    /// Wraps an accepted connection; bodies are looked up in `files` and bytes sent from
    /// files are counted in `sent_from_file`.
    pub fn new(stream: TcpStream, files: Arc<BodyFiles>, sent_from_file: Counter) -> Self {
        Self {
            stream,
            files,
            sent_from_file,
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
        let found = bufs
            .iter()
            .enumerate()
            .find_map(|(at, buf)| this.files.find(buf).map(|slice| (at, slice)));
        let Some((at, slice)) = found else {
            return Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        };
        loop {
            ready!(this.stream.poll_write_ready(cx))?;
            let sent = this.stream.try_io(Interest::WRITABLE, || {
                send(&this.stream, &bufs[..at], &slice, bufs[at].len())
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok((total, from_file)) => {
                    if from_file > 0 {
                        this.sent_from_file.inc_by(from_file as u64);
                    }
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

/// Sends `head` then `len` bytes of the body file from `slice`'s offset; returns the bytes
/// sent in all and those sent from the file. A partial head is returned as is, and so is a whole head
/// whose body could not follow yet: the caller writes the rest next time.
fn send(
    socket: &TcpStream,
    head: &[IoSlice<'_>],
    slice: &FileSlice,
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
    let mut offset = slice.offset();
    match rustix::fs::sendfile(socket, slice.file(), Some(&mut offset), len) {
        Ok(from_file) => Ok((head_len + from_file, from_file)),
        Err(_) if head_len > 0 => Ok((head_len, 0)),
        Err(e) => Err(e.into()),
    }
}
