//! `migrate merge CHAIN_HEAD -o OUT`: one standalone image of an
//! incremental image and its ancestors (see `dumpfmt::chain`), read and
//! written through `dumpfmt` only. Every ancestor is checked first (the
//! image the chain names, page checksums); page data is streamed, a run
//! at a time; the result is verified before it is renamed into place, so
//! OUT is either the complete image or not there at all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use dumpfmt::chain::{self, ChainError};
use dumpfmt::{HEADER_LEN, Header, ImageFile, Incremental, PAGE_SIZE, PageRun};

use crate::Failure;

/// Exit statuses as a restore gives them.
const CORRUPT: i32 = 65;
const MISSING: i32 = 66;
const CANNOT_WRITE: i32 = 73;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The newest image of the chain.
    image: PathBuf,
    /// Where to write the standalone image.
    #[arg(short, long)]
    output: PathBuf,
}

fn chain_failure(e: ChainError) -> Failure {
    let code = match e {
        ChainError::Missing { .. } => MISSING,
        _ => CORRUPT,
    };
    Failure::new(code, e.to_string())
}

pub fn main(a: Args) -> Result<(), Failure> {
    let head = ImageFile::open(&a.image).map_err(|e| {
        let code = if matches!(e, dumpfmt::Error::Io(_)) {
            MISSING
        } else {
            CORRUPT
        };
        Failure::new(code, format!("{}: {e}", a.image.display()))
    })?;
    head.check_pages()
        .map_err(|e| Failure::new(CORRUPT, format!("{}: {e}", a.image.display())))?;
    let ancestors = chain::open(&a.image, &head.image.minor4.incremental).map_err(chain_failure)?;
    let tmp = temp_path(&a.output);
    let result = write(&head, &ancestors, &tmp).and_then(|()| {
        dumpfmt::verify(&tmp)
            .map_err(|e| Failure::new(CORRUPT, format!("the merged image does not verify: {e}")))?;
        std::fs::rename(&tmp, &a.output).map_err(|e| {
            Failure::new(
                CANNOT_WRITE,
                format!("cannot rename into {}: {e}", a.output.display()),
            )
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    println!(
        "{}: standalone image of {} and {} ancestor(s)",
        a.output.display(),
        a.image.display(),
        ancestors.len()
    );
    Ok(())
}

fn temp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.merge-{}", std::process::id()))
}

/// One run of the merged image: where it is now.
struct Piece<'a> {
    addr: u64,
    pages: u64,
    from: &'a File,
    offset: u64,
}

fn write(head: &ImageFile, ancestors: &[ImageFile], tmp: &Path) -> Result<(), Failure> {
    let werr = |e: std::io::Error| {
        Failure::new(CANNOT_WRITE, format!("cannot write {}: {e}", tmp.display()))
    };
    let mut pieces: Vec<Piece<'_>> = head
        .image
        .runs
        .iter()
        .map(|r| Piece {
            addr: r.addr,
            pages: r.pages,
            from: &head.file,
            offset: head.base + r.file_offset,
        })
        .collect();
    for r in head.image.minor4.incremental.inherited.iter() {
        let a = &ancestors[r.ancestor as usize - 1];
        pieces.push(Piece {
            addr: r.addr,
            pages: r.pages,
            from: &a.file,
            offset: a.base + r.file_offset,
        });
    }
    pieces.sort_unstable_by_key(|p| p.addr);
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(werr)?;
    let mut runs = Vec::with_capacity(pieces.len());
    let mut at = HEADER_LEN;
    let mut buf = vec![0u8; 8 << 20];
    for p in &pieces {
        let mut crc = crc32fast::Hasher::new();
        let len = p.pages * PAGE_SIZE;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            p.from
                .read_exact_at(&mut buf[..n], p.offset + done)
                .map_err(|e| {
                    Failure::new(CORRUPT, format!("cannot read pages for {:#x}: {e}", p.addr))
                })?;
            crc.update(&buf[..n]);
            out.write_all_at(&buf[..n], at + done).map_err(werr)?;
            done += n as u64;
        }
        runs.push(PageRun {
            addr: p.addr,
            pages: p.pages,
            file_offset: at,
            crc: crc.finalize(),
        });
        at += len;
    }
    let mut image = head.image.clone();
    image.runs = runs.into();
    // The data of stored files (always the head's own) follows the pages.
    for entry in image.minor4.files.fds.to_mut().iter_mut() {
        let dumpfmt::files::How::Stored { runs, .. } = &mut entry.how else {
            continue;
        };
        for r in runs.to_mut().iter_mut() {
            let len = r.stored_len();
            let mut done = 0;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                head.file
                    .read_exact_at(&mut buf[..n], head.base + r.file_offset + done)
                    .map_err(|e| {
                        Failure::new(
                            CORRUPT,
                            format!("cannot read the stored contents of fd {}: {e}", entry.fd),
                        )
                    })?;
                out.write_all_at(&buf[..n], at + done).map_err(werr)?;
                done += n as u64;
            }
            r.file_offset = at;
            at += len;
        }
    }
    image.minor4.incremental = Incremental::default();
    let meta = dumpfmt::encode_meta(&image);
    out.write_all_at(&meta, at).map_err(werr)?;
    let header = Header {
        major: dumpfmt::VERSION_MAJOR,
        minor: dumpfmt::VERSION_MINOR,
        meta_offset: at,
        meta_len: meta.len() as u64,
        meta_crc: crc32fast::hash(&meta),
        file_len: at + meta.len() as u64,
        flags: 0,
    };
    let mut head_bytes = [0u8; dumpfmt::HEADER_ENCODED_LEN];
    header.encode(&mut head_bytes);
    out.write_all_at(&head_bytes, 0).map_err(werr)?;
    let mut out = out;
    out.flush().map_err(werr)?;
    out.sync_all().map_err(werr)
}
