//! Everything that can be wrong with an image, one variant per check.

/// Why an image cannot be read or restored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("cannot read image: {0}")]
    Io(String),
    #[error("image is truncated: {len} bytes, need at least {need}")]
    Truncated { len: u64, need: u64 },
    #[error("not a migrate image (bad magic)")]
    BadMagic,
    #[error(
        "image format {major}.{minor} is newer than this migrate (reads {}.x)",
        crate::VERSION_MAJOR
    )]
    NewerVersion { major: u16, minor: u16 },
    #[error("image format {major}.{minor} is too old for this migrate")]
    OlderVersion { major: u16, minor: u16 },
    #[error("image header checksum mismatch")]
    HeaderCrc,
    #[error("image header is inconsistent: {0}")]
    BadHeader(&'static str),
    #[error("image metadata checksum mismatch")]
    MetaCrc,
    #[error("image metadata does not decode: {0}")]
    MetaDecode(String),
    /// A count read from the metadata is above the most a reader accepts
    /// of that kind (checked before anything is allocated for it).
    #[error("image metadata lists {count} {what}, more than the {max} this migrate accepts")]
    TooMany {
        what: &'static str,
        count: u64,
        max: u64,
    },
    /// A count read from the metadata needs more bytes than the metadata
    /// has left (checked before anything is allocated for it).
    #[error("image metadata lists more {what} than its remaining bytes can hold")]
    PastEnd { what: &'static str },
    #[error("image metadata is inconsistent: {0}")]
    BadMeta(String),
    #[error("page data checksum mismatch in run {index} at {addr:#x}")]
    RunCrc { index: usize, addr: u64 },
    /// The data a stored file (format 1.4) keeps in the page data is not
    /// what its checksum says.
    #[error("stored contents of fd {fd} are corrupt: checksum mismatch in the run at byte {start}")]
    FileRunCrc { fd: i32, start: u64 },
    /// A chunk of compressed page data (format 1.4) is not what its
    /// checksums say, or does not decompress to its length.
    #[error("compressed page data is corrupt: the chunk at file offset {offset:#x}")]
    ChunkCrc { offset: u64 },
    /// A tree image (format 1.3) where one process's image was expected.
    #[error("a tree image (a process and its children), not a single process's")]
    TreeImage,
    /// The index of a tree image is wrong.
    #[error("tree image index is inconsistent: {0}")]
    BadTree(String),
    /// One process's section of a tree image is wrong.
    #[error("tree image: the section of pid {pid}: {error}")]
    Section {
        pid: u32,
        error: alloc::boxed::Box<Error>,
    },
}
