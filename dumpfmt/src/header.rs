//! The fixed header page at offset 0.
//!
//! Checks run in this order: length, magic, version, checksum, consistency
//! (file length, reserved bytes, metadata bounds). `FORMAT.md` has the layout.

use crate::Error;

/// The page size images are laid out in (x86-64).
pub const PAGE_SIZE: u64 = 4096;
/// The header occupies the whole first page, so page data starts aligned.
pub const HEADER_LEN: u64 = PAGE_SIZE;
pub const MAGIC: [u8; 8] = *b"MIGRATE\0";
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 4;
/// Upper bound on the metadata block, checked before it is allocated;
/// with `DECODED_BYTES_PER_META_BYTE` it bounds a reader's memory
/// (FORMAT.md, "Limits", says why this value).
pub const MAX_META_LEN: u64 = 512 << 20;

/// Bytes of the header that carry data; the rest of the page is reserved
/// and must be zero (checked on decode).
pub const HEADER_ENCODED_LEN: usize = 64;
const ENCODED_LEN: usize = HEADER_ENCODED_LEN;

/// The header, as decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    /// Offset and length of the postcard metadata block.
    pub meta_offset: u64,
    pub meta_len: u64,
    pub meta_crc: u32,
    /// Total length of the image file.
    pub file_len: u64,
    /// Bytes 12 to 15 (from 1.3 on; read as 0 in older images): bit 0,
    /// [`FLAG_TREE`](crate::FLAG_TREE), says a tree image.
    pub flags: u32,
}

impl Header {
    /// Encodes into the first `ENCODED_LEN` bytes of `out` (no allocation;
    /// used by the dump path).
    pub fn encode(&self, out: &mut [u8; ENCODED_LEN]) {
        *out = [0; ENCODED_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&self.major.to_le_bytes());
        out[10..12].copy_from_slice(&self.minor.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.meta_offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.meta_len.to_le_bytes());
        out[32..36].copy_from_slice(&self.meta_crc.to_le_bytes());
        out[40..48].copy_from_slice(&self.file_len.to_le_bytes());
        let crc = crc32fast::hash(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and checks a header against the real length of the file.
    pub fn decode(bytes: &[u8], real_len: u64) -> Result<Header, Error> {
        if real_len < HEADER_LEN || bytes.len() < ENCODED_LEN {
            return Err(Error::Truncated {
                len: real_len,
                need: HEADER_LEN,
            });
        }
        if bytes[0..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at = |o: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[o..o + 4]);
            u32::from_le_bytes(b)
        };
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let (major, minor) = (u16_at(8), u16_at(10));
        if major > VERSION_MAJOR || (major == VERSION_MAJOR && minor > VERSION_MINOR) {
            return Err(Error::NewerVersion { major, minor });
        }
        if major < VERSION_MAJOR {
            return Err(Error::OlderVersion { major, minor });
        }
        if crc32fast::hash(&bytes[..60]) != u32_at(60) {
            return Err(Error::HeaderCrc);
        }
        let h = Header {
            major,
            minor,
            meta_offset: u64_at(16),
            meta_len: u64_at(24),
            meta_crc: u32_at(32),
            file_len: u64_at(40),
            // Reserved (and written zero) before 1.3.
            flags: if minor >= 3 { u32_at(12) } else { 0 },
        };
        if h.flags & !crate::FLAG_TREE != 0 {
            return Err(Error::BadHeader("unknown header flags"));
        }
        if h.file_len > real_len {
            return Err(Error::Truncated {
                len: real_len,
                need: h.file_len,
            });
        }
        if h.file_len < real_len {
            return Err(Error::BadHeader("file is longer than the header says"));
        }
        let reserved = &bytes[ENCODED_LEN..bytes.len().min(HEADER_LEN as usize)];
        if reserved.iter().any(|&b| b != 0) {
            return Err(Error::BadHeader("reserved header bytes are not zero"));
        }
        if h.meta_len > MAX_META_LEN {
            return Err(Error::BadHeader("metadata length exceeds the cap"));
        }
        let meta_end = h.meta_offset.checked_add(h.meta_len);
        if h.meta_offset < HEADER_LEN || meta_end != Some(h.file_len) {
            return Err(Error::BadHeader("metadata is not the tail of the file"));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; ENCODED_LEN] {
        let h = Header {
            major: VERSION_MAJOR,
            minor: VERSION_MINOR,
            meta_offset: 8192,
            meta_len: 100,
            meta_crc: 7,
            file_len: 8292,
            flags: 0,
        };
        let mut b = [0; ENCODED_LEN];
        h.encode(&mut b);
        b
    }

    #[test]
    fn round_trip() {
        let b = sample();
        let h = Header::decode(&b, 8292).unwrap();
        assert_eq!(h.meta_offset, 8192);
        assert_eq!(h.meta_len, 100);
    }

    #[test]
    fn truncated() {
        assert!(matches!(
            Header::decode(&sample(), 100),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            Header::decode(&sample(), 8000),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn bad_magic() {
        let mut b = sample();
        b[0] ^= 1;
        assert_eq!(Header::decode(&b, 8292), Err(Error::BadMagic));
    }

    #[test]
    fn newer_version() {
        let mut b = sample();
        b[8..10].copy_from_slice(&(VERSION_MAJOR + 1).to_le_bytes());
        assert!(matches!(
            Header::decode(&b, 8292),
            Err(Error::NewerVersion { .. })
        ));
        let mut b = sample();
        b[10..12].copy_from_slice(&(VERSION_MINOR + 1).to_le_bytes());
        assert!(matches!(
            Header::decode(&b, 8292),
            Err(Error::NewerVersion { .. })
        ));
    }

    #[test]
    fn older_version() {
        let mut b = sample();
        b[8..10].copy_from_slice(&0u16.to_le_bytes());
        assert!(matches!(
            Header::decode(&b, 8292),
            Err(Error::OlderVersion { .. })
        ));
    }

    #[test]
    fn header_crc() {
        let mut b = sample();
        b[20] ^= 1;
        assert_eq!(Header::decode(&b, 8292), Err(Error::HeaderCrc));
    }

    #[test]
    fn longer_than_header_says() {
        assert!(matches!(
            Header::decode(&sample(), 9000),
            Err(Error::BadHeader(_))
        ));
    }

    #[test]
    fn reserved_bytes_not_zero() {
        let mut page = vec![0u8; HEADER_LEN as usize];
        page[..ENCODED_LEN].copy_from_slice(&sample());
        assert!(Header::decode(&page, 8292).is_ok());
        for at in [ENCODED_LEN, 1000, HEADER_LEN as usize - 1] {
            let mut bad = page.clone();
            bad[at] = 0x10;
            assert_eq!(
                Header::decode(&bad, 8292),
                Err(Error::BadHeader("reserved header bytes are not zero"))
            );
        }
    }

    #[test]
    fn metadata_not_tail() {
        let h = Header {
            major: 1,
            minor: 0,
            meta_offset: 100,
            meta_len: 4000,
            meta_crc: 0,
            file_len: 4100,
            flags: 0,
        };
        let mut b = [0; ENCODED_LEN];
        h.encode(&mut b);
        assert!(matches!(Header::decode(&b, 4100), Err(Error::BadHeader(_))));
    }

    #[test]
    fn metadata_over_cap() {
        let h = Header {
            major: 1,
            minor: 0,
            meta_offset: 4096,
            meta_len: MAX_META_LEN + 1,
            meta_crc: 0,
            file_len: 4096 + MAX_META_LEN + 1,
            flags: 0,
        };
        let mut b = [0; ENCODED_LEN];
        h.encode(&mut b);
        assert!(matches!(
            Header::decode(&b, h.file_len),
            Err(Error::BadHeader(_))
        ));
    }
}
