//! Finds HTTP/2 request heads in the bytes a connection reads, for the head timer.
//!
//! An HTTP/2 connection multiplexes streams and exchanges control frames while no
//! request is pending (`PING`, `SETTINGS`, `WINDOW_UPDATE`), so "bytes arrived" does not
//! mean "a head has begun" as it does for HTTP/1. Instead the frames are followed by
//! their 9-byte headers (payloads are skipped, never parsed): a head is pending while a
//! frame is partly received, unless it is a `DATA` frame (a request body, never timed),
//! and while a header block is open (`HEADERS` until the frame with `END_HEADERS`). A
//! client that stalls mid-frame, or mid-header-block, is closed like an HTTP/1 client
//! that stalls mid-head; one that sends whole frames and then nothing is idle.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Where the client's frame stream is, after the preface.
#[derive(Debug, Default)]
pub struct Frames {
    /// The frame header being received, and how much of it has been.
    header: [u8; FRAME_HEADER],
    have: usize,
    /// Type of the frame whose payload is being received, and how much is still to come.
    kind: u8,
    remaining: usize,
    /// A header block has begun and its `END_HEADERS` frame has not come.
    block_open: bool,
    /// Whether a head was pending after the last read, and how many have begun.
    pending: bool,
    heads: u32,
}

impl Frames {
    /// Follows the frames over `bytes`, just read.
    pub fn read(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(bytes.len());
                self.remaining -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == FRAME_HEADER {
                self.have = 0;
                let [l0, l1, l2, kind, flags, ..] = self.header;
                self.remaining = (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2);
                self.kind = kind;
                if matches!(kind, HEADERS | PUSH_PROMISE | CONTINUATION) {
                    self.block_open = flags & END_HEADERS == 0;
                }
            }
        }
        let pending = self.have > 0 || self.block_open || (self.remaining > 0 && self.kind != DATA);
        if pending && !self.pending {
            self.heads = self.heads.wrapping_add(1);
        }
        self.pending = pending;
    }

    /// The count of the head in progress, if one is.
    pub fn head(&self) -> Option<u32> {
        self.pending.then_some(self.heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: usize) -> Vec<u8> {
        let mut bytes = vec![
            0,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        bytes.resize(FRAME_HEADER + payload, 0);
        bytes
    }

    #[test]
    fn whole_frames_leave_the_connection_idle() {
        let mut frames = Frames::default();
        let mut bytes = frame(0x4, 0, 6);
        bytes.extend(frame(HEADERS, END_HEADERS, 20));
        bytes.extend(frame(DATA, 0, 100));
        frames.read(&bytes);
        assert_eq!(frames.head(), None);
    }

    #[test]
    fn a_partial_frame_is_a_pending_head_but_a_partial_data_frame_is_not() {
        let mut frames = Frames::default();
        let headers = frame(HEADERS, END_HEADERS, 20);
        frames.read(&headers[..4]);
        let first = frames.head().unwrap();
        frames.read(&headers[4..15]);
        assert_eq!(frames.head(), Some(first), "the same head, still partial");
        frames.read(&headers[15..]);
        assert_eq!(frames.head(), None);
        let data = frame(DATA, 0, 100);
        frames.read(&data[..50]);
        assert_eq!(frames.head(), None, "a body is never timed");
        frames.read(&data[50..]);
        frames.read(&frame(0x6, 0, 8)[..3]);
        assert_ne!(
            frames.head().unwrap(),
            first,
            "a new partial frame, a new deadline"
        );
    }

    #[test]
    fn a_header_block_is_pending_until_its_end_headers_frame() {
        let mut frames = Frames::default();
        frames.read(&frame(HEADERS, 0, 10));
        assert!(frames.head().is_some());
        frames.read(&frame(CONTINUATION, 0, 10));
        assert!(frames.head().is_some());
        frames.read(&frame(CONTINUATION, END_HEADERS, 10));
        assert_eq!(frames.head(), None);
    }
}
