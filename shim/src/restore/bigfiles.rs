//! Files without a name whose data the image stores with its page data
//! (`dumpfmt::files::How::Stored`, written by `dump::bigfiles`): the file
//! the restore made gets its size and then each run's data, read from the
//! image and checked against the run's checksum; what no run covers stays
//! a hole.
//!
//! Runs in the constructor before teardown (libc available): a failure
//! refuses the restore while nothing has been torn down.

use std::fs::File;
use std::os::unix::fs::FileExt;

use dumpfmt::files::How;

use super::{Refusal, exit, refuse};

/// Bytes read from the image at a time.
const CHUNK: u64 = 8 << 20;

/// Gives `target` the size and data `how` (a `Stored` entry of fd `n`)
/// records, from `image` (the image starting at `base` in it).
pub fn fill(image: &File, base: u64, n: i32, how: &How<'_>, target: &File) -> Result<(), Refusal> {
    let How::Stored { size, runs, .. } = how else {
        return Ok(());
    };
    let failed = |what: &str, e: std::io::Error| {
        refuse(
            exit::UNSUPPORTED,
            format!("fd {n}: cannot {what} its contents again: {e}"),
        )
    };
    target.set_len(*size).map_err(|e| failed("size", e))?;
    let mut buf =
        vec![0u8; CHUNK.min(runs.iter().map(|r| r.stored_len()).max().unwrap_or(0)) as usize];
    for r in runs.iter() {
        let mut crc = crc32fast::Hasher::new();
        let stored = r.stored_len();
        let mut done = 0u64;
        while done < stored {
            let k = (stored - done).min(CHUNK) as usize;
            image
                .read_exact_at(&mut buf[..k], base + r.file_offset + done)
                .map_err(|e| {
                    refuse(
                        exit::CORRUPT,
                        format!(
                            "fd {n}: its stored contents at byte {} cannot be read from the image: {e}",
                            r.start + done
                        ),
                    )
                })?;
            crc.update(&buf[..k]);
            // The padding after the run's last byte is not the file's.
            let data = (r.len.saturating_sub(done)).min(k as u64) as usize;
            target
                .write_all_at(&buf[..data], r.start + done)
                .map_err(|e| failed("write", e))?;
            done += k as u64;
        }
        if crc.finalize() != r.crc {
            let e = dumpfmt::Error::FileRunCrc {
                fd: n,
                start: r.start,
            };
            return Err(refuse(exit::CORRUPT, e.to_string()));
        }
    }
    Ok(())
}
