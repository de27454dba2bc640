//! Compressed page data (format 1.4, `Minor4::compression`).
//!
//! A compressed image stores its page data as independent chunks, one
//! after the other from the end of the header page to the start of the
//! metadata. Each chunk holds the next `covers` bytes of the page data
//! as an uncompressed image would store them, compressed on its own (or
//! raw, when compressing would not make it smaller), with the crc32 of
//! the bytes stored and of the bytes they stand for.
//!
//! Runs keep naming *logical* offsets: where their bytes would be if the
//! page data were stored uncompressed (from [`HEADER_LEN`], back to back).
//! A reader gets the bytes of any run by decompressing the chunks that
//! cover it; [`expand`] does this once for the whole image when it is
//! opened (see `ImageFile::from_file_at`), into an unnamed temporary file
//! that holds the same image uncompressed, so every reader of runs works
//! unchanged on compressed images.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::header::{HEADER_ENCODED_LEN, HEADER_LEN, Header};
use crate::records::Image;

/// The most page-data bytes one chunk may cover: a reader's buffer for
/// one chunk is bounded by it whatever the image says.
pub const MAX_CHUNK: u64 = 64 << 20;

/// How the page data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Algorithm {
    /// As is, every run's bytes at its file offset (no chunks).
    #[default]
    None,
    /// Chunks of zstd frames (or raw bytes, see [`Chunk::raw`]).
    Zstd,
}

/// One chunk of compressed page data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Chunk {
    /// Where its stored bytes start, from the image's start (as run file
    /// offsets count).
    pub offset: u64,
    /// How many bytes are stored.
    pub stored: u64,
    /// How many bytes of page data it stands for (uncompressed).
    pub covers: u64,
    /// Stored as is: compressing did not make it smaller.
    pub raw: bool,
    /// crc32 of the stored bytes.
    pub crc_stored: u32,
    /// crc32 of the page data it stands for.
    pub crc_data: u32,
}

/// `Minor4::compression`: how page data is stored, and the chunk table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Compression<'a> {
    pub algorithm: Algorithm,
    /// In page-data order; empty unless `algorithm` compresses.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub chunks: Cow<'a, [Chunk]>,
}

impl Compression<'_> {
    /// Whether the page data is stored in chunks.
    pub fn is_compressed(&self) -> bool {
        self.algorithm != Algorithm::None
    }

    /// Where the logical page data ends: the offset the runs must end at.
    pub fn logical_end(&self) -> u64 {
        HEADER_LEN + self.chunks.iter().map(|c| c.covers).sum::<u64>()
    }

    /// The consistency rules (see `check_consistency`): the chunks tile
    /// the stored page data from the header page to the metadata, each
    /// covers at most [`MAX_CHUNK`] bytes, and stores no more than it
    /// covers (raw chunks exactly as much).
    pub(crate) fn check(&self, meta_offset: u64) -> Result<(), alloc::string::String> {
        if !self.is_compressed() {
            if !self.chunks.is_empty() {
                return Err("uncompressed page data with a chunk table".into());
            }
            return Ok(());
        }
        let mut at = HEADER_LEN;
        for (i, c) in self.chunks.iter().enumerate() {
            if c.offset != at {
                return Err(alloc::format!(
                    "compressed chunk {i} starts at {:#x}, not where the one before it ends ({at:#x})",
                    c.offset
                ));
            }
            if c.covers == 0 || c.covers > MAX_CHUNK || c.stored == 0 || c.stored > c.covers {
                return Err(alloc::format!(
                    "compressed chunk {i} has bad lengths ({} stored for {})",
                    c.stored,
                    c.covers
                ));
            }
            if c.raw && c.stored != c.covers {
                return Err(alloc::format!(
                    "raw chunk {i} stores {} bytes for {}",
                    c.stored,
                    c.covers
                ));
            }
            at = at
                .checked_add(c.stored)
                .ok_or_else(|| alloc::format!("compressed chunk {i} wraps the file offset"))?;
        }
        if at != meta_offset {
            return Err(alloc::format!(
                "compressed page data ends at {at:#x} but the metadata starts at {meta_offset:#x}"
            ));
        }
        Ok(())
    }
}

/// Decompresses the chunk stored at `stored` (its bytes) into `out`,
/// which must be exactly `chunk.covers` long, checking both checksums.
/// `at` is where the image starts in its file, for the error.
pub fn fill_chunk(chunk: &Chunk, stored: &[u8], out: &mut [u8], at: u64) -> Result<(), Error> {
    let offset = at + chunk.offset;
    if crc32fast::hash(stored) != chunk.crc_stored {
        return Err(Error::ChunkCrc { offset });
    }
    if chunk.raw {
        out.copy_from_slice(stored);
    } else {
        match zstd::bulk::decompress_to_buffer(stored, out) {
            Ok(n) if n == out.len() => {}
            _ => return Err(Error::ChunkCrc { offset }),
        }
    }
    if crc32fast::hash(out) != chunk.crc_data {
        return Err(Error::ChunkCrc { offset });
    }
    Ok(())
}

/// Where the uncompressed copy goes, in order: memory (`/dev/shm`), then
/// the temporary directory (a small `/dev/shm`, as containers have, fills
/// up: the next one is tried).
fn scratch_dirs() -> [std::path::PathBuf; 2] {
    [std::path::PathBuf::from("/dev/shm"), std::env::temp_dir()]
}

/// An unnamed temporary file (`O_TMPFILE`) in `dir`.
fn scratch(dir: &std::path::Path) -> Result<File, Error> {
    const O_TMPFILE: i32 = 0o20_000_000 | 0o200_000;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(O_TMPFILE)
        .open(dir)
        .map_err(|e| {
            Error::Io(alloc::format!(
                "cannot decompress the image in {}: {e}",
                dir.display()
            ))
        })
}

/// The same image with its page data uncompressed, in a temporary file
/// of its own: every chunk read, checked and decompressed (on two
/// threads) to its logical offset; the metadata written again without
/// the chunk table. The result's header and image describe the new file.
pub(crate) fn expand(
    file: &File,
    base: u64,
    header: &Header,
    image: &Image<'static>,
) -> Result<(File, Header, Image<'static>), Error> {
    let mut last = None;
    for dir in scratch_dirs() {
        match scratch(&dir).and_then(|out| expand_into(out, file, base, header, image)) {
            Ok(done) => return Ok(done),
            // Corrupt: the same anywhere.
            Err(e @ (Error::ChunkCrc { .. } | Error::Truncated { .. })) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Io("no room to decompress the image".into())))
}

fn expand_into(
    out: File,
    file: &File,
    base: u64,
    header: &Header,
    image: &Image<'static>,
) -> Result<(File, Header, Image<'static>), Error> {
    let c = &image.minor4.compression;
    let mut starts = Vec::with_capacity(c.chunks.len());
    let mut logical = HEADER_LEN;
    for chunk in c.chunks.iter() {
        starts.push(logical);
        logical += chunk.covers;
    }
    let write_err =
        |e: std::io::Error| Error::Io(alloc::format!("cannot write the image decompressed: {e}"));
    let workers = 2usize;
    let results: Vec<Result<(), Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (out, starts) = (&out, &starts);
                s.spawn(move || -> Result<(), Error> {
                    let mut stored = Vec::new();
                    let mut data = Vec::new();
                    for (k, chunk) in c.chunks.iter().enumerate().skip(w).step_by(workers) {
                        stored.resize(chunk.stored as usize, 0);
                        let got =
                            crate::verify::read_full_at(file, &mut stored, base + chunk.offset)?;
                        if got != stored.len() {
                            return Err(Error::Truncated {
                                len: base + chunk.offset + got as u64,
                                need: base + chunk.offset + chunk.stored,
                            });
                        }
                        data.resize(chunk.covers as usize, 0);
                        fill_chunk(chunk, &stored, &mut data, base)?;
                        out.write_all_at(&data, starts[k]).map_err(write_err)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Io("decompression failed".into())))
            })
            .collect()
    });
    // The first chunk in file order that failed is the one named.
    let mut first: Option<Error> = None;
    for r in results {
        if let Err(e) = r {
            let earlier = match (&first, &e) {
                (None, _) => true,
                (Some(Error::ChunkCrc { offset: a }), Error::ChunkCrc { offset: b }) => b < a,
                _ => false,
            };
            if earlier {
                first = Some(e);
            }
        }
    }
    if let Some(e) = first {
        return Err(e);
    }
    let mut plain = image.clone();
    plain.minor4.compression = Compression::default();
    let meta = crate::writer::encode_meta(&plain);
    let new_header = Header {
        meta_offset: logical,
        meta_len: meta.len() as u64,
        meta_crc: crc32fast::hash(&meta),
        file_len: logical + meta.len() as u64,
        ..*header
    };
    let mut head = [0u8; HEADER_ENCODED_LEN];
    new_header.encode(&mut head);
    out.write_all_at(&head, 0).map_err(write_err)?;
    out.write_all_at(&meta, logical).map_err(write_err)?;
    Ok((out, new_header, plain))
}
