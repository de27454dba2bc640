//! How a restore may place an image's page data (format 1.4, issue 11):
//! the `placement` field of [`crate::Minor4`].
//!
//! An image whose runs are stored raw, each at a page-aligned offset of
//! the file, can be restored lazily: its runs mapped into place as private
//! mappings of the image file, faulting from the page cache. An image
//! whose runs are encoded (compressed chunks) or stored elsewhere (in a
//! parent image) cannot: its bytes must be read and decoded into place.

use serde::{Deserialize, Serialize};

/// What the dump says about its page data, for the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Placement {
    /// Every run's bytes lie raw in this file at `file_offset` (always
    /// page-aligned): a lazy restore may map them from the file. False:
    /// they must be read (and decoded) into place, and a lazy restore
    /// falls back to an eager one.
    pub mappable: bool,
    /// Pages of this image's runs that the dumped process held in ranges
    /// a lazy restore had mapped from an earlier image (the next dump
    /// stores them as anonymous memory, every page; 0 when none).
    pub from_lazy: u64,
}

impl Placement {
    /// Checks the record against the image's runs: `from_lazy` counts
    /// pages among those stored.
    pub(crate) fn check(&self, stored_pages: u64) -> Result<(), String> {
        if self.from_lazy > stored_pages {
            return Err(format!(
                "placement counts {} pages from a lazy restore, but the image stores {stored_pages}",
                self.from_lazy
            ));
        }
        Ok(())
    }
}

/// Whether a restore may map this image's runs from its file: 1.3 and
/// older images store every run raw; a 1.4 image says so in `placement`.
pub fn mappable(minor: u16, placement: &Placement) -> bool {
    minor < 4 || placement.mappable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lazy_within_the_stored_pages() {
        let p = Placement {
            mappable: true,
            from_lazy: 3,
        };
        assert!(p.check(3).is_ok());
        assert!(
            p.check(2)
                .unwrap_err()
                .contains("3 pages from a lazy restore")
        );
    }

    #[test]
    fn older_images_are_mappable() {
        assert!(mappable(3, &Placement::default()));
        assert!(!mappable(4, &Placement::default()));
        let m = Placement {
            mappable: true,
            from_lazy: 0,
        };
        assert!(mappable(4, &m));
    }
}
