//! Following an incremental image's ancestors (see [`crate::incremental`]):
//! finding, opening and checking each one, and reading the pages it holds
//! for the image.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::incremental::{Ancestor, Incremental};
use crate::verify::ImageFile;

/// Why an ancestor cannot be used: each names the ancestor's path.
#[derive(Debug)]
pub enum ChainError {
    /// It cannot be opened (gone, unreadable).
    Missing { path: PathBuf, why: String },
    /// A file is there but it is not the image the chain names.
    Replaced { path: PathBuf, why: String },
    /// It is the image named, but does not check out.
    Corrupt { path: PathBuf, why: String },
}

impl core::fmt::Display for ChainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ChainError::Missing { path, why } => {
                write!(f, "ancestor image {} is missing: {why}", path.display())
            }
            ChainError::Replaced { path, why } => write!(
                f,
                "ancestor image {} is not the one this image was dumped over: {why}",
                path.display()
            ),
            ChainError::Corrupt { path, why } => {
                write!(f, "ancestor image {} is corrupt: {why}", path.display())
            }
        }
    }
}

/// Where `a` is: its path, relative to the directory of `head` (the
/// image that names it) unless absolute.
pub fn resolve(head: &Path, a: &Ancestor<'_>) -> PathBuf {
    let p = Path::new(&*a.path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        head.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Checks an opened ancestor (`index`: 0 for the parent): the image the
/// chain names, its own pages intact, and every piece the head inherits
/// from it inside one of its own runs at the same place.
pub fn check_ancestor(
    path: &Path,
    file: File,
    index: usize,
    chain: &Incremental<'_>,
) -> Result<ImageFile, ChainError> {
    let a = &chain.ancestors[index];
    let corrupt = |why: String| ChainError::Corrupt {
        path: path.to_path_buf(),
        why,
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len != a.file_len {
        return Err(ChainError::Replaced {
            path: path.to_path_buf(),
            why: format!("{len} bytes, the ancestor had {}", a.file_len),
        });
    }
    let img = ImageFile::from_file(file).map_err(|e| match e {
        crate::Error::MetaCrc => ChainError::Replaced {
            path: path.to_path_buf(),
            why: e.to_string(),
        },
        e => corrupt(e.to_string()),
    })?;
    if img.header.meta_crc != a.meta_crc {
        return Err(ChainError::Replaced {
            path: path.to_path_buf(),
            why: "its metadata checksum differs".into(),
        });
    }
    img.check_pages().map_err(|e| corrupt(e.to_string()))?;
    let own = &img.image.runs[..];
    for r in chain
        .inherited
        .iter()
        .filter(|r| r.ancestor as usize == index + 1)
    {
        let end = r.addr + r.pages * crate::PAGE_SIZE;
        let inside = own
            .get(own.partition_point(|o| o.addr + o.pages * crate::PAGE_SIZE <= r.addr))
            .is_some_and(|o| {
                o.addr <= r.addr
                    && end <= o.addr + o.pages * crate::PAGE_SIZE
                    && r.file_offset == o.file_offset + (r.addr - o.addr)
            });
        if !inside {
            return Err(corrupt(format!(
                "it holds no page data for {:#x} where the image says",
                r.addr
            )));
        }
    }
    Ok(img)
}

/// Opens and checks every ancestor of the image at `head`, parent first.
pub fn open(head: &Path, chain: &Incremental<'_>) -> Result<Vec<ImageFile>, ChainError> {
    let mut out = Vec::with_capacity(chain.ancestors.len());
    for (i, a) in chain.ancestors.iter().enumerate() {
        let path = resolve(head, a);
        let file = File::open(&path).map_err(|e| ChainError::Missing {
            path: path.clone(),
            why: e.to_string(),
        })?;
        out.push(check_ancestor(&path, file, i, chain)?);
    }
    Ok(out)
}
