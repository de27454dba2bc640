//! Incremental images (format 1.4, [`crate::Minor4::incremental`]): an
//! image that stores only the pages written since its parent and names
//! where every other page is.
//!
//! The parent is named by path and by identity (its length and metadata
//! checksum, which covers every run's checksum, the pid and the time of
//! the dump): a file at that path that is not the same image is refused.
//! The list of ancestors is whole (parent first, then its parent, ...),
//! so a reader never needs an ancestor's metadata to find a page, only to
//! check it: each inherited piece lies inside one of that ancestor's own
//! runs, whose checksum covers it.

use alloc::borrow::Cow;
use alloc::string::String;

use serde::{Deserialize, Serialize};

use crate::header::PAGE_SIZE;

/// Most ancestors an image may name.
pub const MAX_ANCESTORS: usize = 256;

/// Where the pages of an image that its own runs do not hold are: nothing
/// (a standalone image, the default) or its ancestors.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Incremental<'a> {
    /// Parent first; empty for a standalone image.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub ancestors: Cow<'a, [Ancestor<'a>]>,
    /// Pages kept in an ancestor's file, in address order, apart from each
    /// other and from the image's own runs.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub inherited: Cow<'a, [InheritedRun]>,
}

/// An image this one needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ancestor<'a> {
    /// Relative to the directory of the image that names it when it is in
    /// that directory (a file name), else absolute.
    #[serde(deserialize_with = "crate::bounded::string")]
    pub path: Cow<'a, str>,
    /// The ancestor's `file_len` and `meta_crc` (its header's).
    pub file_len: u64,
    pub meta_crc: u32,
}

/// Pages stored in an ancestor's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InheritedRun {
    /// 1: the parent, 2: its parent, ... (index + 1 in `ancestors`).
    pub ancestor: u32,
    pub addr: u64,
    pub pages: u64,
    /// Offset of the data in the ancestor's file.
    pub file_offset: u64,
}

impl Incremental<'_> {
    /// Whether the image stands alone.
    pub fn is_standalone(&self) -> bool {
        self.ancestors.is_empty() && self.inherited.is_empty()
    }

    /// Checks what can be checked without the ancestors: indices, bounds,
    /// alignment and order, and that no inherited page is also one of the
    /// image's own (`own`: the image's runs as address ranges, in order).
    pub fn check(&self, own: &[(u64, u64)]) -> Result<(), String> {
        if self.ancestors.len() > MAX_ANCESTORS {
            return Err(alloc::format!(
                "{} ancestors (at most {MAX_ANCESTORS})",
                self.ancestors.len()
            ));
        }
        if self.ancestors.is_empty() && !self.inherited.is_empty() {
            return Err("inherited pages but no ancestor".into());
        }
        for (i, a) in self.ancestors.iter().enumerate() {
            if a.path.is_empty() || a.path.contains('\0') {
                return Err(alloc::format!("ancestor {} has a bad path", i + 1));
            }
        }
        let mut prev_end = 0u64;
        let mut o = 0usize;
        for (i, r) in self.inherited.iter().enumerate() {
            if r.ancestor == 0 || r.ancestor as usize > self.ancestors.len() {
                return Err(alloc::format!(
                    "inherited run {i} names ancestor {} of {}",
                    r.ancestor,
                    self.ancestors.len()
                ));
            }
            let end = r
                .pages
                .checked_mul(PAGE_SIZE)
                .and_then(|len| r.addr.checked_add(len))
                .filter(|_| r.file_offset.checked_add(r.pages * PAGE_SIZE).is_some())
                .ok_or_else(|| alloc::format!("inherited run {i} is too long"))?;
            if r.pages == 0 || r.addr % PAGE_SIZE != 0 || r.file_offset % PAGE_SIZE != 0 {
                return Err(alloc::format!("inherited run {i} is empty or unaligned"));
            }
            if r.addr < prev_end {
                return Err(alloc::format!(
                    "inherited run {i} at {:#x} overlaps the previous one or is out of order",
                    r.addr
                ));
            }
            while o < own.len() && own[o].1 <= r.addr {
                o += 1;
            }
            if o < own.len() && own[o].0 < end {
                return Err(alloc::format!(
                    "inherited run {i} at {:#x} overlaps the image's own pages",
                    r.addr
                ));
            }
            prev_end = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(runs: &[InheritedRun]) -> Incremental<'static> {
        Incremental {
            ancestors: Cow::Owned(alloc::vec![Ancestor {
                path: "a.img".into(),
                file_len: 8192,
                meta_crc: 1,
            }]),
            inherited: Cow::Owned(runs.to_vec()),
        }
    }

    fn run(ancestor: u32, addr: u64, pages: u64) -> InheritedRun {
        InheritedRun {
            ancestor,
            addr,
            pages,
            file_offset: 4096,
        }
    }

    #[test]
    fn standalone_by_default() {
        assert!(Incremental::default().is_standalone());
        assert_eq!(Incremental::default().check(&[]), Ok(()));
    }

    #[test]
    fn good_chain_passes() {
        let i = inc(&[run(1, 0x1000, 1), run(1, 0x3000, 2)]);
        assert_eq!(i.check(&[(0x2000, 0x3000)]), Ok(()));
    }

    #[test]
    fn refuses_bad_ancestor_index() {
        let e = inc(&[run(2, 0x1000, 1)]).check(&[]).unwrap_err();
        assert!(e.contains("names ancestor 2 of 1"), "{e}");
        let e = inc(&[run(0, 0x1000, 1)]).check(&[]).unwrap_err();
        assert!(e.contains("ancestor 0"), "{e}");
    }

    #[test]
    fn refuses_overlap_with_own_pages() {
        let e = inc(&[run(1, 0x1000, 2)])
            .check(&[(0x2000, 0x3000)])
            .unwrap_err();
        assert!(e.contains("overlaps the image's own pages"), "{e}");
    }

    #[test]
    fn refuses_disorder_and_misalignment() {
        let e = inc(&[run(1, 0x3000, 1), run(1, 0x1000, 1)])
            .check(&[])
            .unwrap_err();
        assert!(e.contains("out of order"), "{e}");
        let e = inc(&[run(1, 0x1001, 1)]).check(&[]).unwrap_err();
        assert!(e.contains("unaligned"), "{e}");
        let e = inc(&[run(1, u64::MAX - 4095, 2)]).check(&[]).unwrap_err();
        assert!(e.contains("too long"), "{e}");
    }

    #[test]
    fn refuses_orphan_pages() {
        let mut i = inc(&[run(1, 0x1000, 1)]);
        i.ancestors = Cow::Owned(alloc::vec![]);
        assert!(i.check(&[]).unwrap_err().contains("no ancestor"));
    }
}
