//! `MIGRATE_COMPRESS`: page data written as independent zstd chunks
//! (format 1.4, `dumpfmt::compress`).
//!
//! Runs in the dump's signal handler: no heap, no locks. zstd works in a
//! static context (`ZSTD_initStaticCCtx`) over a workspace taken from the
//! dump arena, so it never allocates; the chunk being filled and its
//! compressed copy are arena buffers too. Page data goes through
//! [`Chunker::write`] instead of the writer: it collects [`CHUNK`] bytes,
//! compresses them, and writes the compressed bytes (or the raw ones, when
//! compressing does not make them smaller) at the writer's position.
//! [`Chunker::pos`] is the *logical* position, where the bytes would be
//! uncompressed: what runs record as their file offsets.
//!
//! Tree images are not compressed (their sections keep the layout the
//! tree code reads): the setting is ignored there, with an info line.

use core::sync::atomic::{AtomicI32, Ordering::Relaxed};

use dumpfmt::compress::Chunk;

use crate::dump::Fail;
use crate::dump::arena::{Arena, ArenaVec};
use crate::dump::writer::ImageWriter;

/// Page-data bytes per chunk: large enough for zstd's ratio, small enough
/// that a reader decompresses chunks independently and in parallel.
pub const CHUNK: usize = 4 << 20;

/// The zstd level of `MIGRATE_COMPRESS` (0: no compression).
static LEVEL: AtomicI32 = AtomicI32::new(0);

/// The default level of `MIGRATE_COMPRESS=zstd`: about `gzip -6`'s ratio
/// on text, many times its speed.
const DEFAULT_LEVEL: i32 = 3;

/// Parses `MIGRATE_COMPRESS` (in the constructor, not the dump path): `none`, `zstd`, or `zstd:LEVEL` (1 to 19).
pub fn parse(v: &str) -> Result<i32, String> {
    match v {
        "none" => Ok(0),
        "zstd" => Ok(DEFAULT_LEVEL),
        _ => match v.strip_prefix("zstd:").map(str::parse::<i32>) {
            Some(Ok(n)) if (1..=19).contains(&n) => Ok(n),
            _ => Err(format!(
                "MIGRATE_COMPRESS={v}: expected none, zstd or zstd:LEVEL (LEVEL from 1 to 19)"
            )),
        },
    }
}

/// Reads `MIGRATE_COMPRESS` in the constructor; the error is the line to
/// print.
pub fn configure_from_env() -> Result<(), String> {
    if let Ok(v) = std::env::var("MIGRATE_COMPRESS")
        && !v.is_empty()
    {
        LEVEL.store(parse(&v)?, Relaxed);
    }
    Ok(())
}

/// The level the relaunch's `MIGRATE_COMPRESS` asks for (`None`: unset),
/// which a restored process takes over (its own statics hold the old
/// one). Checked already by [`configure_from_env`].
pub fn relaunch_level() -> Option<i32> {
    std::env::var("MIGRATE_COMPRESS")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| parse(&v).ok())
}

/// Sets the level (a restored process, from the relaunch's setting).
pub fn set_level(level: i32) {
    LEVEL.store(level, Relaxed);
}

/// The level dumps use (0: none).
pub fn level() -> i32 {
    LEVEL.load(Relaxed)
}

/// The page data of one image being compressed.
pub struct Chunker<'a> {
    level: i32,
    cctx: *mut zstd_sys::ZSTD_CCtx,
    /// The chunk being filled.
    buf: &'a mut [u8],
    fill: usize,
    /// Its compressed copy (no larger than the chunk: anything larger is
    /// stored raw).
    packed: &'a mut [u8],
    logical: u64,
    chunks: ArenaVec<'a, Chunk>,
}

impl<'a> Chunker<'a> {
    /// A chunker at level `level` whose page data starts at the writer's
    /// position `start`; its memory comes from `arena`.
    pub fn new(arena: &'a Arena, level: i32, start: u64, max_chunks: usize) -> Result<Self, Fail> {
        let no_mem = || Fail::new("the dump arena is too small for compression");
        // SAFETY: pure functions of their arguments.
        let work_len = unsafe {
            let params = zstd_sys::ZSTD_getCParams(level, CHUNK as u64, 0);
            zstd_sys::ZSTD_estimateCCtxSize_usingCParams(params)
        };
        let work = arena.bytes(work_len).ok_or_else(no_mem)?;
        // SAFETY: `work` is ours for the arena's lifetime, 4096-aligned,
        // `work_len` bytes; zstd keeps its context inside it.
        let cctx = unsafe { zstd_sys::ZSTD_initStaticCCtx(work.as_mut_ptr().cast(), work_len) };
        if cctx.is_null() {
            return Err(Fail::new("cannot set up zstd in the dump arena"));
        }
        Ok(Chunker {
            level,
            cctx,
            buf: arena.bytes(CHUNK).ok_or_else(no_mem)?,
            fill: 0,
            packed: arena.bytes(CHUNK).ok_or_else(no_mem)?,
            logical: start,
            chunks: arena.vec::<Chunk>(max_chunks).ok_or_else(no_mem)?,
        })
    }

    /// Where the next byte of page data goes, uncompressed.
    pub fn pos(&self) -> u64 {
        self.logical
    }

    /// Appends page data.
    pub fn write(&mut self, out: &mut ImageWriter, mut data: &[u8]) -> Result<(), Fail> {
        while !data.is_empty() {
            let n = data.len().min(CHUNK - self.fill);
            self.buf[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            self.logical += n as u64;
            data = &data[n..];
            if self.fill == CHUNK {
                self.flush(out)?;
            }
        }
        Ok(())
    }

    /// Compresses and writes the chunk filled so far.
    fn flush(&mut self, out: &mut ImageWriter) -> Result<(), Fail> {
        if self.fill == 0 {
            return Ok(());
        }
        let data = &self.buf[..self.fill];
        // SAFETY: the context was made by `new`; both buffers are ours and
        // their lengths are the ones given.
        let n = unsafe {
            zstd_sys::ZSTD_compressCCtx(
                self.cctx,
                self.packed.as_mut_ptr().cast(),
                self.packed.len(),
                data.as_ptr().cast(),
                data.len(),
                self.level,
            )
        };
        // SAFETY: a pure function of its argument.
        let failed = unsafe { zstd_sys::ZSTD_isError(n) } != 0;
        // An error here is "destination too small": incompressible data,
        // stored raw.
        let raw = failed || n >= data.len();
        let stored: &[u8] = if raw { data } else { &self.packed[..n] };
        let crc_stored = crc32fast::hash(stored);
        let chunk = Chunk {
            offset: out.pos(),
            stored: stored.len() as u64,
            covers: data.len() as u64,
            raw,
            crc_stored,
            crc_data: if raw {
                crc_stored
            } else {
                crc32fast::hash(data)
            },
        };
        out.write(stored)?;
        self.chunks
            .push(chunk)
            .map_err(|_| Fail::new("too many compressed chunks for the dump arena"))?;
        self.fill = 0;
        Ok(())
    }

    /// Writes the last chunk; returns the chunk table.
    pub fn finish(mut self, out: &mut ImageWriter) -> Result<&'a [Chunk], Fail> {
        self.flush(out)?;
        Ok(self.chunks.into_slice())
    }
}

/// Most chunks one image may have: 1 TiB of page data.
const MAX_CHUNKS: usize = 1 << 18;

/// The chunker of a dump, when `MIGRATE_COMPRESS` asks for one and the
/// image is not a tree's (said once, on an info line).
pub fn start<'a>(
    arena: &'a Arena,
    out: &ImageWriter,
    in_tree: bool,
    log: crate::config::LogLevel,
) -> Result<Option<Chunker<'a>>, Fail> {
    let level = level();
    if level == 0 {
        return Ok(None);
    }
    if in_tree {
        if log >= crate::config::LogLevel::Info {
            crate::sys::line::emit_parts(&[
                b"migrate: MIGRATE_COMPRESS is ignored for a tree image (stored uncompressed)",
            ]);
        }
        return Ok(None);
    }
    Chunker::new(arena, level, out.pos(), MAX_CHUNKS).map(Some)
}

/// Writes the last chunk; the record for `Minor4::compression`.
pub fn finish<'a>(
    chunker: Option<Chunker<'a>>,
    out: &mut ImageWriter,
) -> Result<dumpfmt::compress::Compression<'a>, Fail> {
    let Some(c) = chunker else {
        return Ok(dumpfmt::compress::Compression::default());
    };
    Ok(dumpfmt::compress::Compression {
        algorithm: dumpfmt::compress::Algorithm::Zstd,
        chunks: std::borrow::Cow::Borrowed(c.finish(out)?),
    })
}
