//! The `migrate` image format.
//!
//! An image is a fixed header page, raw page data (every run page-aligned),
//! and a postcard-encoded [`Image`] metadata block at the end. See
//! `FORMAT.md` beside this crate for the byte layout and versioning rules.
//!
//! [`decode`], [`ImageFile`] and [`verify`] read images; [`build`] and
//! [`frame`] write them in memory (for tests and tools; the shim's dump path
//! writes the same layout without a heap).
//!
//! Decoding never panics on any input: every length and offset is checked
//! before use (the fuzz targets in `fuzz/` exercise this).

#![forbid(unsafe_code)]

extern crate alloc;

mod bounded;
pub mod capture;
pub mod chain;
pub mod compress;
mod cpu;
mod elf;
mod error;
pub mod files;
mod header;
pub mod incremental;
mod members;
pub mod placement;
pub mod procattrs;
mod records;
pub mod shared;
mod signals;
pub mod sockets;
mod tree;
mod verify;
mod writer;

pub use bounded::{DECODED_BYTES_PER_META_BYTE, MAX_FDS, MAX_THREADS};
pub use capture::{Capture, CaptureMode};
pub use cpu::{Isa, Level, level, levels, xstate_names};
pub use elf::{BUILD_ID_MAX, build_id};
pub use error::Error;
pub use header::{
    HEADER_ENCODED_LEN, HEADER_LEN, Header, MAGIC, MAX_META_LEN, PAGE_SIZE, VERSION_MAJOR,
    VERSION_MINOR,
};
pub use incremental::{Ancestor, Incremental, InheritedRun};
pub use members::{Members, Stop, Zombie};
pub use placement::Placement;
pub use procattrs::{MappingAttrs, ProcAttrs, ProcessAttrs, ThreadAttrs};
pub use records::*;
pub use shared::{Shared, SharedFd, SharedKey, SharedMemory};
pub use signals::{
    FileLock, LOCK_FLOCK, LOCK_OFD, LOCK_POSIX, LOCK_TO_EOF, MAX_QUEUED, QueuedSignal, Signals,
};
pub use tree::{
    FLAG_TREE, MAX_MEMBERS, Member, Tree, TreeFile, TreeSummary, encode_tree, frame_tree,
};
pub use verify::{ImageFile, Opened, Summary, decode, open_any, open_any_file, verify};
pub use writer::{build, encode_meta, frame};
