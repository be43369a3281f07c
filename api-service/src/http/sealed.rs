//! Snapshot body memory: every body is held once, in a sealed memfd mapped read-only, and
//! the mapping is the `Bytes` the response is built from.
//!
//! A sealed memfd can never be written, grown or shrunk again, so its mapping is as
//! immutable as a `&'static [u8]`, and the same pages can be sent with `sendfile(2)`
//! ([`crate::http::zero_copy`]) or read through the mapping (HTTP/2, decompression). Its
//! pages are shared memory: the kernel charges them to the process whether or not they
//! are mapped in, so [`BodyFiles::held_bytes`] counts them for the memory figures
//! (`VmRSS` alone misses those not touched through the mapping).
//!
//! [`BodyFiles`] also answers "which file holds these bytes?" for a slice that hyper is
//! about to write: the index is kept by address, and an entry lives exactly as long as
//! its body, so a body still on its way when a new snapshot arrives keeps being sent
//! from its file.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};
use rustix::fs::{MemfdFlags, SealFlags};

/// One registered body: its address range and its file.
struct Entry {
    start: usize,
    end: usize,
    file: Arc<OwnedFd>,
}

/// The files of every body alive, by address, and how many bytes they hold.
#[derive(Default)]
pub struct BodyFiles {
    entries: ArcSwap<Vec<Entry>>,
    held: AtomicU64,
}

/// Where a slice lies in a body's file; holds the index entry it was found in.
pub struct FileSlice {
    entries: arc_swap::Guard<Arc<Vec<Entry>>>,
    index: usize,
    offset: u64,
}

impl FileSlice {
    /// The body's file.
    pub fn file(&self) -> &OwnedFd {
        &self.entries[self.index].file
    }

    /// Offset of the slice's first byte in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl BodyFiles {
    /// The file holding `bytes`, when they lie inside one body (told by address: a
    /// body's mapping is its own while it lives).
    pub fn find(&self, bytes: &[u8]) -> Option<FileSlice> {
        if bytes.is_empty() {
            return None;
        }
        let start = bytes.as_ptr() as usize;
        let end = start + bytes.len();
        let entries = self.entries.load();
        let index = entries
            .iter()
            .position(|e| e.start <= start && end <= e.end)?;
        let offset = (start - entries[index].start) as u64;
        Some(FileSlice {
            entries,
            index,
            offset,
        })
    }

    /// Bytes held in sealed files right now (the charged memory `VmRSS` may miss).
    pub fn held_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The process's memory as the kernel charges it: resident memory without shared
    /// pages, plus every sealed body (charged whether its pages are mapped in or not).
    pub fn charged_memory(&self) -> Option<u64> {
        shared::memory::rss_private_bytes().map(|rss| rss + self.held_bytes())
    }

    fn register(self: &Arc<Self>, range: &[u8], file: Arc<OwnedFd>) -> Registration {
        let start = range.as_ptr() as usize;
        let len = range.len();
        self.entries.rcu(|entries| {
            let mut next: Vec<Entry> = entries
                .iter()
                .map(|e| Entry {
                    start: e.start,
                    end: e.end,
                    file: e.file.clone(),
                })
                .collect();
            next.push(Entry {
                start,
                end: start + len,
                file: file.clone(),
            });
            next
        });
        self.held.fetch_add(len as u64, Ordering::Relaxed);
        Registration {
            files: self.clone(),
            start,
            len: len as u64,
        }
    }
}

/// A body's entry in [`BodyFiles`]; removed when the body is dropped.
struct Registration {
    files: Arc<BodyFiles>,
    start: usize,
    len: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let start = self.start;
        self.files.entries.rcu(|entries| {
            entries
                .iter()
                .filter(|e| e.start != start)
                .map(|e| Entry {
                    start: e.start,
                    end: e.end,
                    file: e.file.clone(),
                })
                .collect::<Vec<_>>()
        });
        self.files.held.fetch_sub(self.len, Ordering::Relaxed);
    }
}

/// The owner behind a body's `Bytes`. Fields drop in order: the entry goes before the
/// mapping, so no lookup can find an address that is being unmapped.
struct Sealed {
    _registration: Registration,
    map: Mmap,
}

impl AsRef<[u8]> for Sealed {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// Writes one body into a new memfd; [`Self::seal`] then freezes it into `Bytes`.
pub struct SealedWriter {
    file: File,
    len: u64,
}

impl SealedWriter {
    /// A new, empty memfd that allows sealing.
    ///
    /// # Errors
    /// When the kernel refuses the memfd (out of memory or file descriptors).
    pub fn new() -> io::Result<Self> {
        let fd = rustix::fs::memfd_create(
            "ofertasws-body",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        Ok(Self {
            file: File::from(fd),
            len: 0,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Seals the file against any change, maps it read-only and registers it in `files`.
    ///
    /// # Errors
    /// When sealing or mapping fails.
    pub fn seal(self, files: &Arc<BodyFiles>) -> io::Result<Bytes> {
        if self.len == 0 {
            return Ok(Bytes::new());
        }
        let fd = OwnedFd::from(self.file);
        rustix::fs::fcntl_add_seals(
            &fd,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        let map = map_sealed(&fd)?;
        let registration = files.register(&map, Arc::new(fd));
        Ok(Bytes::from_owner(Sealed {
            _registration: registration,
            map,
        }))
    }
}

impl Write for SealedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Maps a sealed memfd read-only.
#[allow(unsafe_code)]
fn map_sealed(fd: &OwnedFd) -> io::Result<Mmap> {
    // SAFETY: memmap2 requires that nothing modifies or truncates the file while it is
    // mapped. This is an anonymous memfd (no path, close-on-exec, never handed out) and
    // `seal` applied F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL before this
    // call: the kernel refuses every write, resize and further seal change from now on,
    // from any process, so the mapped bytes can never change under us.
    unsafe { MmapOptions::new().map(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn sealed(files: &Arc<BodyFiles>, body: &[u8]) -> Bytes {
        let mut writer = SealedWriter::new().unwrap();
        writer.write_all(body).unwrap();
        writer.seal(files).unwrap()
    }

    #[test]
    fn a_sealed_body_reads_back_and_its_file_refuses_changes() {
        let files = Arc::new(BodyFiles::default());
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let bytes = sealed(&files, &body);
        assert_eq!(&bytes[..], &body[..]);
        assert_eq!(files.held_bytes(), body.len() as u64);
        let found = files.find(&bytes[10..20]).unwrap();
        assert_eq!(found.offset(), 10);
        let file = File::from(found.file().try_clone().unwrap());
        let mut read = [0; 10];
        file.read_exact_at(&mut read, 10).unwrap();
        assert_eq!(read, body[10..20]);
        assert!(file.set_len(10).is_err(), "a sealed file shrank");
        assert!(
            file.write_at(b"x", 0).is_err(),
            "a sealed file took a write"
        );
        assert!(files.find(&body[..10]).is_none(), "a copy is not the body");
    }

    #[test]
    fn a_body_leaves_the_index_when_its_last_reference_goes() {
        let files = Arc::new(BodyFiles::default());
        let first = sealed(&files, b"first body");
        let second = sealed(&files, b"second body");
        let slice = first.slice(2..5);
        drop(first);
        assert_eq!(files.find(&slice).map(|f| f.offset()), Some(2));
        drop(slice);
        assert_eq!(files.held_bytes(), second.len() as u64);
        assert_eq!(files.find(&second).map(|f| f.offset()), Some(0));
        drop(second);
        assert_eq!(files.held_bytes(), 0);
        assert!(sealed(&files, b"").is_empty());
    }
}
