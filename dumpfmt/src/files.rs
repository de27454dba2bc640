//! What 1.4 adds about files (issue 12, files group): the attributes of a
//! file the restore makes again (a deleted file, a memfd), `O_PATH`
//! descriptors, procfs files of the process itself, and deleted FIFOs.
//!
//! Each entry completes the record of the same descriptor in
//! `Image::fds`, which still says what the descriptor is in the terms an
//! older reader knew (a `File`, `Dir`, `Contents` or `Pipe`); the restore
//! makes the descriptor as the entry says.

use alloc::borrow::Cow;
use serde::{Deserialize, Serialize};

/// `Minor4::files`: one entry per descriptor that needs more than its
/// `Image::fds` record, sorted by descriptor number.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Files<'a> {
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub fds: Cow<'a, [FileFd<'a>]>,
}

/// More about descriptor `fd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFd<'a> {
    pub fd: i32,
    pub how: How<'a>,
}

/// What kind of object an `O_PATH` descriptor refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathKind {
    File,
    Dir,
    /// The symlink itself (opened with `O_PATH | O_NOFOLLOW`).
    Symlink,
    /// A FIFO, socket or device file, never opened itself.
    Other,
}

/// How a descriptor comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum How<'a> {
    /// An `O_PATH` descriptor (its record is a `File` or `Dir` of the same
    /// path): opened again with `O_PATH` (and `O_NOFOLLOW` for a symlink),
    /// and refused unless it is the same inode (`dev`, `ino`).
    Path {
        #[serde(deserialize_with = "crate::bounded::string")]
        path: Cow<'a, str>,
        kind: PathKind,
        dev: u64,
        ino: u64,
    },
    /// A procfs file or directory of the process itself (its record is a
    /// `File` or `Dir` of `/proc/<pid>/<rel>` with size and mtime 0):
    /// opened again as the restored process's own `/proc/<pid>/<rel>`,
    /// at `offset`.
    Proc {
        #[serde(deserialize_with = "crate::bounded::string")]
        rel: Cow<'a, str>,
        dir: bool,
        offset: u64,
    },
    /// The attributes of a file made again from its contents (its record
    /// is a `Contents`): mode bits (`st_mode & 0o7777`), owner, times
    /// (seconds, nanoseconds), and where its data lies: `data` holds the
    /// (start, end) byte ranges `SEEK_DATA`/`SEEK_HOLE` gave, sorted; the
    /// rest of the file up to its size is holes.
    Attrs {
        mode: u32,
        uid: u32,
        gid: u32,
        atime: (i64, i64),
        mtime: (i64, i64),
        #[serde(deserialize_with = "crate::bounded::seq")]
        data: Cow<'a, [(u64, u64)]>,
    },
    /// A FIFO removed from the filesystem while open (its record is a
    /// `Pipe` with an empty path): made again as a FIFO of the same name
    /// in a private directory, then removed from it.
    DeletedFifo {
        #[serde(deserialize_with = "crate::bounded::string")]
        name: Cow<'a, str>,
    },
    /// The mode bits of the file of a Unix socket bound to a path (its
    /// record is a `Socket` with that address): given back after the bind.
    SocketFile { mode: u32 },
    /// An inotify instance (its record is a `Device` of path
    /// [`INOTIFY_RECORD`], which no reader opens): made again with its
    /// watches, each added by path in `wd` order (sorted, increasing), so
    /// that every watch gets its number back.
    Inotify {
        #[serde(deserialize_with = "crate::bounded::seq")]
        watches: Cow<'a, [Watch<'a>]>,
    },
    /// A file made again from its contents (its record is a `Contents`
    /// with empty `data`) whose contents are too large for the metadata:
    /// its attributes as in `Attrs`, its `size`, and its data as runs in
    /// the image's page data (see [`FileRun`]); the rest of the file up to
    /// `size` is holes.
    Stored {
        mode: u32,
        uid: u32,
        gid: u32,
        atime: (i64, i64),
        mtime: (i64, i64),
        size: u64,
        #[serde(deserialize_with = "crate::bounded::seq")]
        runs: Cow<'a, [FileRun]>,
    },
}

/// Bytes `start..start + len` of a stored file: `len` bytes at
/// `file_offset` of the image (as a page run's, counted from the image's
/// start, and logical when compressed), then zeros up to the next page
/// boundary; `crc` is the crc32 of those whole pages. The runs of every
/// `Stored` entry, in descriptor order, follow the page runs in the page
/// data, back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRun {
    pub start: u64,
    pub len: u64,
    pub file_offset: u64,
    pub crc: u32,
}

impl FileRun {
    /// What the run takes in the image: `len` rounded up to whole pages.
    pub fn stored_len(&self) -> u64 {
        self.len.div_ceil(crate::PAGE_SIZE) * crate::PAGE_SIZE
    }
}

/// The `Device` path recorded for an inotify descriptor: a reader that
/// does not know `How::Inotify` fails to open it, naming it.
pub const INOTIFY_RECORD: &str = "anon_inode:inotify";

/// One watch of an inotify instance: its number, its mask as the kernel
/// shows it (events and `IN_ONESHOT`/`IN_EXCL_UNLINK`/`IN_MASK_CREATE`
/// bits), the path it was added by (absolute) and whether that path was
/// not followed (`IN_DONT_FOLLOW`), and the inode it watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch<'a> {
    pub wd: i32,
    pub mask: u32,
    pub dont_follow: bool,
    pub dev: u64,
    pub ino: u64,
    #[serde(deserialize_with = "crate::bounded::string")]
    pub path: Cow<'a, str>,
}

impl<'a> Files<'a> {
    /// The entry of descriptor `fd`, if any.
    pub fn of(&self, fd: i32) -> Option<&How<'a>> {
        self.fds
            .binary_search_by_key(&fd, |f| f.fd)
            .ok()
            .map(|at| &self.fds[at].how)
    }

    /// Entries sorted and unique, each completing a record of the kind it
    /// names in `fds`.
    pub fn check(&self, fds: &[crate::Fd<'_>]) -> Result<(), alloc::string::String> {
        use crate::FdKind;
        use alloc::format;
        let mut prev: Option<i32> = None;
        for e in self.fds.iter() {
            if prev.is_some_and(|p| e.fd <= p) {
                return Err(format!("files: fd {} is repeated or out of order", e.fd));
            }
            prev = Some(e.fd);
            let record = fds
                .binary_search_by_key(&e.fd, |f| f.fd)
                .ok()
                .map(|at| &fds[at].kind);
            let fits = match (&e.how, record) {
                (How::Path { kind, .. }, Some(FdKind::Dir { .. })) => *kind == PathKind::Dir,
                (How::Path { kind, .. }, Some(FdKind::File { .. })) => *kind != PathKind::Dir,
                (How::Proc { dir: true, .. }, Some(FdKind::Dir { .. })) => true,
                (How::Proc { dir: false, .. }, Some(FdKind::File { .. })) => true,
                (How::Attrs { data, .. }, Some(FdKind::Contents { data: bytes, .. })) => {
                    let len = bytes.len() as u64;
                    data.iter().all(|&(a, b)| a < b && b <= len)
                        && data.windows(2).all(|w| w[0].1 <= w[1].0)
                }
                // No file is larger than off_t: so no run's whole pages
                // (`FileRun::stored_len`) overflow a u64.
                (How::Stored { size, runs, .. }, Some(FdKind::Contents { data, .. })) => {
                    data.is_empty()
                        && *size <= i64::MAX as u64
                        && runs.iter().all(|r| {
                            r.len > 0 && r.start.checked_add(r.len).is_some_and(|e| e <= *size)
                        })
                        && runs.windows(2).all(|w| w[0].start + w[0].len <= w[1].start)
                }
                (How::DeletedFifo { .. }, Some(FdKind::Pipe { path, .. })) => path.is_empty(),
                (How::SocketFile { .. }, Some(FdKind::Socket { family, addr, .. })) => {
                    *family == 1 && addr.len() > 2 && addr[2] != 0
                }
                (How::Inotify { watches }, Some(FdKind::Device { path })) => {
                    path == INOTIFY_RECORD
                        && watches.first().is_none_or(|w| w.wd > 0)
                        && watches.windows(2).all(|w| w[0].wd < w[1].wd)
                        && watches.iter().all(|w| w.path.starts_with('/'))
                }
                _ => false,
            };
            if !fits {
                return Err(format!(
                    "files: the entry of fd {} does not fit its descriptor's record",
                    e.fd
                ));
            }
            if let How::Proc { rel, .. } = &e.how
                && (rel.starts_with('/') || rel.split('/').any(|c| c == ".."))
            {
                return Err(format!(
                    "files: fd {} names a procfs path outside its own",
                    e.fd
                ));
            }
        }
        Ok(())
    }
}

impl crate::bounded::Element for FileFd<'_> {
    const WHAT: &'static str = "file records";
    /// fd, variant, and an empty name (`DeletedFifo`) or path (`Proc`).
    const MIN_ENCODED_LEN: usize = 3;
    const MAX_COUNT: usize = crate::MAX_FDS;
}

impl crate::bounded::Element for FileRun {
    const WHAT: &'static str = "stored file runs";
    /// start, len, file_offset, crc.
    const MIN_ENCODED_LEN: usize = 4;
}

impl<'a> Files<'a> {
    /// The runs of every `Stored` entry, in the order their data lies in
    /// the image, with the descriptor of each.
    pub fn stored_runs(&self) -> impl Iterator<Item = (i32, &FileRun)> {
        self.fds.iter().flat_map(|f| {
            let runs: &[FileRun] = match &f.how {
                How::Stored { runs, .. } => runs,
                _ => &[],
            };
            runs.iter().map(move |r| (f.fd, r))
        })
    }
}

impl crate::bounded::Element for Watch<'_> {
    const WHAT: &'static str = "inotify watches";
    /// wd, mask, flag, dev, ino, empty path.
    const MIN_ENCODED_LEN: usize = 6;
}

impl crate::bounded::Element for (u64, u64) {
    const WHAT: &'static str = "data ranges";
    const MIN_ENCODED_LEN: usize = 2;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounded::Element;

    #[test]
    fn shortest_encodings() {
        let short = [
            How::DeletedFifo { name: "".into() },
            How::SocketFile { mode: 0 },
            How::Inotify {
                watches: Cow::Borrowed(&[]),
            },
            How::Proc {
                rel: "".into(),
                dir: false,
                offset: 0,
            },
            How::Path {
                path: "".into(),
                kind: PathKind::File,
                dev: 0,
                ino: 0,
            },
            How::Attrs {
                mode: 0,
                uid: 0,
                gid: 0,
                atime: (0, 0),
                mtime: (0, 0),
                data: Cow::Borrowed(&[]),
            },
        ];
        let lens: alloc::vec::Vec<usize> = short
            .into_iter()
            .map(|how| postcard::to_allocvec(&FileFd { fd: 0, how }).unwrap().len())
            .collect();
        assert_eq!(lens.iter().min(), Some(&FileFd::MIN_ENCODED_LEN));
        let watch = Watch {
            wd: 0,
            mask: 0,
            dont_follow: false,
            dev: 0,
            ino: 0,
            path: "".into(),
        };
        assert_eq!(
            postcard::to_allocvec(&watch).unwrap().len(),
            Watch::MIN_ENCODED_LEN
        );
        assert_eq!(
            postcard::to_allocvec(&(0u64, 0u64)).unwrap().len(),
            <(u64, u64)>::MIN_ENCODED_LEN
        );
    }

    #[test]
    fn entries_must_fit_their_records() {
        let record = |fd, kind| crate::Fd {
            fd,
            flags: 0,
            cloexec: false,
            kind,
        };
        let fds = [
            record(
                3,
                crate::FdKind::Dir {
                    path: "/proc/1/fd".into(),
                    offset: 0,
                },
            ),
            record(
                4,
                crate::FdKind::Eventfd {
                    count: 0,
                    semaphore: false,
                },
            ),
        ];
        let files = |fd, rel: &'static str| Files {
            fds: alloc::vec![FileFd {
                fd,
                how: How::Proc {
                    rel: rel.into(),
                    dir: true,
                    offset: 0,
                },
            }]
            .into(),
        };
        assert_eq!(files(3, "fd").check(&fds), Ok(()));
        assert!(
            files(4, "fd").check(&fds).is_err(),
            "not a directory record"
        );
        assert!(files(5, "fd").check(&fds).is_err(), "no such record");
        assert!(files(3, "../2/fd").check(&fds).is_err(), "outside its own");
    }

    #[test]
    fn stored_runs_must_fit_their_file() {
        let fds = [crate::Fd {
            fd: 3,
            flags: 0,
            cloexec: false,
            kind: crate::FdKind::Contents {
                name: "big".into(),
                data: Cow::Borrowed(&[]),
                offset: 0,
                memfd: true,
                seals: 0,
            },
        }];
        let run = |start, len| FileRun {
            start,
            len,
            file_offset: 0,
            crc: 0,
        };
        let stored = |runs: alloc::vec::Vec<FileRun>| Files {
            fds: alloc::vec![FileFd {
                fd: 3,
                how: How::Stored {
                    mode: 0o600,
                    uid: 0,
                    gid: 0,
                    atime: (0, 0),
                    mtime: (0, 0),
                    size: 100,
                    runs: runs.into(),
                },
            }]
            .into(),
        };
        assert_eq!(
            stored(alloc::vec![run(0, 10), run(50, 50)]).check(&fds),
            Ok(())
        );
        assert!(
            stored(alloc::vec![run(50, 51)]).check(&fds).is_err(),
            "past the size"
        );
        assert!(stored(alloc::vec![run(0, 0)]).check(&fds).is_err(), "empty");
        assert!(
            stored(alloc::vec![run(50, 10), run(0, 10)])
                .check(&fds)
                .is_err(),
            "out of order"
        );
        assert!(
            stored(alloc::vec![run(0, 10), run(5, 10)])
                .check(&fds)
                .is_err(),
            "overlapping"
        );
        assert!(
            stored(alloc::vec![run(u64::MAX, 2)]).check(&fds).is_err(),
            "wrapping"
        );
        // A file no larger than off_t allows: else a run's whole pages
        // (`stored_len`) would not fit a u64 (a panic with overflow
        // checks, as in the fuzz build; 0 pages of data without).
        let huge = |size: u64, r: FileRun| Files {
            fds: alloc::vec![FileFd {
                fd: 3,
                how: How::Stored {
                    mode: 0o600,
                    uid: 0,
                    gid: 0,
                    atime: (0, 0),
                    mtime: (0, 0),
                    size,
                    runs: alloc::vec![r].into(),
                },
            }]
            .into(),
        };
        assert!(
            huge(u64::MAX, run(0, u64::MAX)).check(&fds).is_err(),
            "larger than off_t"
        );
        assert!(
            huge(u64::MAX, run(u64::MAX - 4096, 4096))
                .check(&fds)
                .is_err(),
            "past off_t"
        );
        let most = i64::MAX as u64;
        assert_eq!(huge(most, run(0, most)).check(&fds), Ok(()));
        assert_eq!(run(0, most).stored_len(), most + 1);
        assert_eq!(run(0, 1).stored_len(), 4096);
        assert_eq!(run(0, 8192).stored_len(), 8192);
    }

    #[test]
    fn an_empty_files_encodes_to_one_byte() {
        assert_eq!(postcard::to_allocvec(&Files::default()).unwrap(), [0]);
    }
}
