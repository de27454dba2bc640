//! Writing an image in memory, for tests and tools.
//!
//! This is the layout `FORMAT.md` describes: the header page, then the page
//! data of every run back to back in order, then the postcard metadata. The
//! shim's dump path writes the same bytes without a heap; this helper
//! allocates freely and is not meant for a signal handler.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::Error;
use crate::header::{
    HEADER_ENCODED_LEN, HEADER_LEN, Header, PAGE_SIZE, VERSION_MAJOR, VERSION_MINOR,
};
use crate::records::{Image, PageRun};

/// Builds a complete, valid image.
///
/// `runs` gives, in address order, each run's address and its data (a whole
/// number of pages). `image.runs` is ignored: the runs written are made from
/// `runs`, with their file offsets and checksums filled in.
///
/// The result is decoded again before it is returned, so an image the
/// reader would reject (a run outside every mapping, say) comes back as the
/// error the reader gives. A run whose data is not a whole number of pages
/// is reported as [`Error::BadMeta`].
pub fn build(image: &Image<'_>, runs: &[(u64, &[u8])]) -> Result<Vec<u8>, Error> {
    let mut records = Vec::with_capacity(runs.len());
    let mut data_len = 0usize;
    let mut file_offset = HEADER_LEN;
    for (i, &(addr, data)) in runs.iter().enumerate() {
        if data.is_empty() || data.len() as u64 % PAGE_SIZE != 0 {
            return Err(Error::BadMeta(format!(
                "run {i} has {} bytes of data, not a whole number of pages",
                data.len()
            )));
        }
        let len = data.len() as u64;
        records.push(PageRun {
            addr,
            pages: len / PAGE_SIZE,
            file_offset,
            crc: crc32fast::hash(data),
        });
        file_offset += len;
        data_len += data.len();
    }
    let mut page_data = Vec::with_capacity(data_len);
    for &(_, data) in runs {
        page_data.extend_from_slice(data);
    }
    let image = Image {
        runs: Cow::Owned(records),
        ..image.clone()
    };
    let bytes = frame(&image, &page_data);
    crate::decode(&bytes)?;
    Ok(bytes)
}

/// Frames an image exactly as given, without any check: the header page
/// (current version), `page_data` right after it, and `image` encoded with
/// postcard at the end.
///
/// `image.runs` must already carry the file offsets and checksums that
/// match `page_data` for the result to verify; use [`build`] to have them
/// filled in. Tests use this directly to make images that break one rule.
pub fn frame(image: &Image<'_>, page_data: &[u8]) -> Vec<u8> {
    let meta = encode_meta(image);
    let meta_offset = HEADER_LEN + page_data.len() as u64;
    let header = Header {
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        meta_offset,
        meta_len: meta.len() as u64,
        meta_crc: crc32fast::hash(&meta),
        file_len: meta_offset + meta.len() as u64,
        flags: 0,
    };
    let mut out = Vec::with_capacity(header.file_len as usize);
    let mut head = [0u8; HEADER_ENCODED_LEN];
    header.encode(&mut head);
    out.extend_from_slice(&head);
    out.resize(HEADER_LEN as usize, 0);
    out.extend_from_slice(page_data);
    out.extend_from_slice(&meta);
    out
}

/// The metadata block of `image` in the current version: the `Image`
/// value, then the values versions 1.1 to 1.4 added.
pub fn encode_meta(image: &Image<'_>) -> Vec<u8> {
    let mut meta = postcard::to_allocvec(image).expect("postcard encodes into a Vec infallibly");
    meta.extend(postcard::to_allocvec(&image.minor1).expect("postcard encodes into a Vec"));
    meta.extend(postcard::to_allocvec(&image.minor2).expect("postcard encodes into a Vec"));
    meta.extend(postcard::to_allocvec(&image.minor3).expect("postcard encodes into a Vec"));
    meta.extend(postcard::to_allocvec(&image.minor4).expect("postcard encodes into a Vec"));
    meta
}
