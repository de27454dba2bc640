//! Incremental images (`Minor4::incremental`): the consistency rules a
//! reader checks alone, and the chain checks (`dumpfmt::chain`) against
//! real ancestor files: the right one passes; a missing, replaced or
//! corrupt one is refused, naming it.

mod common;

use std::borrow::Cow;

use dumpfmt::chain::{self, ChainError};
use dumpfmt::{Ancestor, Error, Incremental, InheritedRun, PAGE_SIZE};

use common::with_meta;

fn one_ancestor(file_len: u64, meta_crc: u32, runs: Vec<InheritedRun>) -> Incremental<'static> {
    Incremental {
        ancestors: Cow::Owned(vec![Ancestor {
            path: "parent.img".into(),
            file_len,
            meta_crc,
        }]),
        inherited: Cow::Owned(runs),
    }
}

fn inherited(ancestor: u32, addr: u64, file_offset: u64) -> InheritedRun {
    InheritedRun {
        ancestor,
        addr,
        pages: 1,
        file_offset,
    }
}

#[track_caller]
fn rejects(bytes: &[u8], want: &str) {
    match dumpfmt::decode(bytes) {
        Err(Error::BadMeta(m)) if m.contains(want) => {}
        other => panic!("want BadMeta containing {want:?}, got {other:?}"),
    }
}

#[test]
fn inherited_pages_round_trip() {
    let chain = one_ancestor(1 << 20, 7, vec![inherited(1, 0x60_2000, 0x1000)]);
    let bytes = with_meta(|image, _| image.minor4.incremental = chain.clone());
    let (_, back) = dumpfmt::decode(&bytes).expect("decodes");
    assert_eq!(back.minor4.incremental, chain);
}

#[test]
fn inherited_pages_follow_the_rules() {
    let bad = |runs| with_meta(|image, _| image.minor4.incremental = one_ancestor(1, 1, runs));
    rejects(
        &bad(vec![inherited(1, 0x60_1000, 0x1000)]),
        "overlaps the image's own pages",
    );
    rejects(
        &bad(vec![inherited(1, 0x7fff_0000_0000, 0x1000)]),
        "inherited run 0 at 0x7fff00000000 is not inside one mapping",
    );
    rejects(
        &bad(vec![inherited(2, 0x60_2000, 0x1000)]),
        "names ancestor 2 of 1",
    );
    rejects(
        &bad(vec![
            inherited(1, 0x60_2000, 0x1000),
            inherited(1, 0x40_0000, 0x1000),
        ]),
        "out of order",
    );
}

/// A parent holding a page at 0x60_2000 and a child (the sample image)
/// inheriting it, written to `dir`; returns the child's path.
fn chain_files(dir: &std::path::Path) -> std::path::PathBuf {
    let mut data = common::run_data();
    data.push((0x60_2000, common::pages(1, 9)));
    data.sort_by_key(|(a, _)| *a);
    let runs: Vec<(u64, &[u8])> = data.iter().map(|(a, d)| (*a, d.as_slice())).collect();
    let parent = dumpfmt::build(&common::image(), &runs).expect("parent");
    let (ph, pimage) = dumpfmt::decode(&parent).expect("parent decodes");
    let at = pimage.runs.iter().find(|r| r.addr == 0x60_2000).unwrap();
    let chain = one_ancestor(
        ph.file_len,
        ph.meta_crc,
        vec![inherited(1, 0x60_2000, at.file_offset)],
    );
    let child = with_meta(|image, _| image.minor4.incremental = chain);
    std::fs::write(dir.join("parent.img"), &parent).unwrap();
    std::fs::write(dir.join("child.img"), &child).unwrap();
    dir.join("child.img")
}

fn open_chain(child: &std::path::Path) -> Result<usize, ChainError> {
    let (_, image) = dumpfmt::decode(&std::fs::read(child).unwrap()).unwrap();
    chain::open(child, &image.minor4.incremental).map(|a| a.len())
}

#[test]
fn the_right_parent_passes() {
    let dir = tempfile::tempdir().unwrap();
    let child = chain_files(dir.path());
    assert_eq!(open_chain(&child).expect("the chain checks"), 1);
}

#[test]
fn a_missing_parent_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let child = chain_files(dir.path());
    std::fs::remove_file(dir.path().join("parent.img")).unwrap();
    let e = open_chain(&child).unwrap_err();
    assert!(matches!(e, ChainError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("parent.img is missing"), "{e}");
}

#[test]
fn a_replaced_parent_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let child = chain_files(dir.path());
    std::fs::copy(&child, dir.path().join("parent.img")).unwrap();
    let e = open_chain(&child).unwrap_err();
    assert!(matches!(e, ChainError::Replaced { .. }), "{e}");
    assert!(e.to_string().contains("parent.img is not the one"), "{e}");
}

#[test]
fn a_corrupt_parent_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let child = chain_files(dir.path());
    let path = dir.path().join("parent.img");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[PAGE_SIZE as usize + 5] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = open_chain(&child).unwrap_err();
    assert!(matches!(e, ChainError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("parent.img is corrupt"), "{e}");
}
