//! Compressed page data (format 1.4, `Minor4::compression`): an image
//! whose chunks are zstd frames or raw bytes opens as the same image
//! uncompressed; a corrupt chunk is named by its offset; the chunk table
//! is checked like the runs are.

mod common;

use std::borrow::Cow;
use std::os::unix::fs::FileExt;

use dumpfmt::compress::{Algorithm, Chunk, Compression};
use dumpfmt::{Error, HEADER_LEN, Image, ImageFile};

const CHUNK: usize = 8192;

/// The sample image's runs, the first two of text, the last random.
fn data() -> Vec<(u64, Vec<u8>)> {
    let text = |n: usize| {
        b"the process image of a checkpoint "
            .iter()
            .copied()
            .cycle()
            .take(n * 4096)
            .collect::<Vec<u8>>()
    };
    vec![
        (0x40_1000, text(1)),
        (0x60_0000, text(2)),
        (0x7000_0000, common::pages(2, 3)),
    ]
}

/// The sample image with its page data in chunks of `CHUNK` bytes (the
/// last shorter), then `tweak` applied to the image before it is framed.
fn compressed(tweak: impl FnOnce(&mut Image<'static>, &mut Vec<u8>)) -> Vec<u8> {
    let data = data();
    let runs: Vec<(u64, &[u8])> = data.iter().map(|(a, d)| (*a, d.as_slice())).collect();
    let plain = dumpfmt::build(&common::image(), &runs).unwrap();
    let (_, mut image, page_data) = common::split(&plain);
    let mut stored = Vec::new();
    let mut chunks = Vec::new();
    for piece in page_data.chunks(CHUNK) {
        let packed = zstd::bulk::compress(piece, 3).unwrap();
        let raw = packed.len() >= piece.len();
        let bytes: &[u8] = if raw { piece } else { &packed };
        chunks.push(Chunk {
            offset: HEADER_LEN + stored.len() as u64,
            stored: bytes.len() as u64,
            covers: piece.len() as u64,
            raw,
            crc_stored: crc32fast::hash(bytes),
            crc_data: crc32fast::hash(piece),
        });
        stored.extend_from_slice(bytes);
    }
    image.minor4.compression = Compression {
        algorithm: Algorithm::Zstd,
        chunks: Cow::Owned(chunks),
    };
    tweak(&mut image, &mut stored);
    dumpfmt::frame(&image, &stored)
}

fn open(bytes: &[u8]) -> Result<ImageFile, Error> {
    let file = tempfile::tempfile().unwrap();
    file.write_all_at(bytes, 0).unwrap();
    ImageFile::from_file(file)
}

#[test]
fn opens_as_the_image_uncompressed() {
    let bytes = compressed(|_, _| {});
    let (_, image) = dumpfmt::decode(&bytes).unwrap();
    let chunks = &image.minor4.compression.chunks;
    assert_eq!(chunks.len(), 3);
    assert!(
        !chunks[0].raw && chunks[0].stored < chunks[0].covers / 4,
        "{chunks:?}"
    );
    assert!(chunks[2].raw, "{chunks:?}");
    let f = open(&bytes).unwrap();
    assert!(f.compressed);
    assert!(!f.image.minor4.compression.is_compressed());
    assert_eq!(f.check_pages().unwrap(), 5 * 4096);
    for (addr, d) in data() {
        assert_eq!(f.read_memory(addr, d.len() as u64).unwrap(), d, "{addr:#x}");
    }
}

#[test]
fn corrupt_chunks_are_named_by_offset() {
    let bytes = compressed(|_, _| {});
    let (_, image) = dumpfmt::decode(&bytes).unwrap();
    for c in image.minor4.compression.chunks.iter() {
        let mut bad = bytes.clone();
        bad[(c.offset + c.stored / 2) as usize] ^= 0x40;
        match open(&bad) {
            Err(Error::ChunkCrc { offset }) => assert_eq!(offset, c.offset),
            other => panic!("{other:?}"),
        }
    }
}

/// Decoding fails with a `BadMeta` whose message contains `want`.
#[track_caller]
fn rejects(bytes: &[u8], want: &str) {
    match dumpfmt::decode(bytes) {
        Err(Error::BadMeta(m)) if m.contains(want) => {}
        other => panic!("want BadMeta containing {want:?}, got {other:?}"),
    }
}

#[test]
fn chunks_tile_the_stored_page_data() {
    rejects(
        &compressed(|i, _| i.minor4.compression.chunks.to_mut()[1].offset += 1),
        "compressed chunk 1 starts at",
    );
    rejects(
        &compressed(|_, s| s.push(0)),
        "compressed page data ends at",
    );
    rejects(
        &compressed(|i, _| i.minor4.compression.chunks.to_mut()[0].covers = 0),
        "compressed chunk 0 has bad lengths",
    );
    rejects(
        &compressed(|i, _| {
            let c = &mut i.minor4.compression.chunks.to_mut()[0];
            c.covers = c.stored - 1;
        }),
        "compressed chunk 0 has bad lengths",
    );
    rejects(
        &compressed(|i, _| {
            let c = &mut i.minor4.compression.chunks.to_mut()[0];
            c.covers = dumpfmt::compress::MAX_CHUNK + 1;
        }),
        "compressed chunk 0 has bad lengths",
    );
    rejects(
        &compressed(|i, _| i.minor4.compression.chunks.to_mut()[0].raw = true),
        "raw chunk 0 stores",
    );
    rejects(
        &compressed(|i, _| i.minor4.compression.algorithm = Algorithm::None),
        "uncompressed page data with a chunk table",
    );
}

#[test]
fn runs_tile_the_logical_page_data() {
    // The first chunk covers a page less: the last run reaches past it.
    rejects(
        &compressed(|i, _| i.minor4.compression.chunks.to_mut()[0].covers -= 4096),
        "run 2 extends into the metadata",
    );
    // A page more: the runs end before the chunks do.
    rejects(
        &compressed(|i, _| i.minor4.compression.chunks.to_mut()[0].covers += 4096),
        "page data ends at",
    );
}
