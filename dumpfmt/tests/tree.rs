//! Tree images (format 1.3): the index's encoding, a good tree image, and
//! each rule `TreeFile` checks.

mod common;

use std::borrow::Cow;

use dumpfmt::{
    Error, FLAG_TREE, HEADER_LEN, ImageFile, Member, Opened, PAGE_SIZE, Tree, TreeFile, frame_tree,
    open_any,
};

fn members() -> Vec<Member> {
    let m = |pid, ppid| Member {
        pid,
        ppid,
        pgid: 1,
        sid: 1,
        offset: 0,
        len: 0,
    };
    vec![m(common::image().pid, 1), m(4001, common::image().pid)]
}

/// The good image as a tree's root, and a copy with another pid as its child.
fn sections() -> (Vec<u8>, Vec<u8>) {
    let root = common::good();
    let child = common::with_meta(|image, _| image.pid = 4001);
    (root, child)
}

fn tree_with(members: Vec<Member>) -> Vec<u8> {
    let (a, b) = sections();
    frame_tree(
        &Tree {
            members: Cow::Owned(members),
        },
        &[&a, &b],
    )
}

fn open(bytes: &[u8]) -> Result<TreeFile, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tree.img");
    std::fs::write(&path, bytes).unwrap();
    let t = TreeFile::open(&path)?;
    t.check_pages()?;
    Ok(t)
}

/// The index's bytes: a sequence of members, each six varints.
#[test]
fn index_encoding_is_pinned() {
    let tree = Tree {
        members: Cow::Owned(vec![Member {
            pid: 1,
            ppid: 2,
            pgid: 3,
            sid: 4,
            offset: 0x1000,
            len: 0x80,
        }]),
    };
    assert_eq!(
        dumpfmt::encode_tree(&tree),
        [1, 1, 2, 3, 4, 0x80, 0x20, 0x80, 0x01]
    );
}

#[test]
fn good_tree_verifies() {
    let bytes = tree_with(members());
    assert_eq!(&bytes[12..16], &FLAG_TREE.to_le_bytes());
    let t = open(&bytes).unwrap();
    assert_eq!(t.sections.len(), 2);
    assert_eq!(t.tree.members[0].offset, HEADER_LEN);
    assert_eq!(t.tree.members[1].offset % PAGE_SIZE, 0);
    assert_eq!(t.sections[1].image.pid, 4001);
    assert_eq!(t.sections[1].base, t.tree.members[1].offset);
    // Each section reads as the image it was.
    let (a, _) = sections();
    let (_, image) = dumpfmt::decode(&a).unwrap();
    assert_eq!(t.sections[0].image, image);
    // A single-image reader says what it is; `open_any` opens it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.img");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(ImageFile::open(&path).err(), Some(Error::TreeImage));
    assert_eq!(dumpfmt::decode(&bytes).err(), Some(Error::TreeImage));
    assert!(matches!(open_any(&path), Ok(Opened::Tree(_))));
    std::fs::write(&path, common::good()).unwrap();
    assert!(matches!(open_any(&path), Ok(Opened::Single(_))));
}

fn bad_tree(bytes: &[u8], want: &str) {
    match open(bytes) {
        Err(e) => assert!(e.to_string().contains(want), "{e}"),
        Ok(_) => panic!("accepted; wanted {want}"),
    }
}

#[test]
fn repeated_pid_is_refused() {
    let mut m = members();
    m[1].pid = m[0].pid;
    bad_tree(&tree_with(m), "listed twice");
}

#[test]
fn parent_must_come_earlier() {
    let mut m = members();
    m[1].ppid = 77;
    bad_tree(&tree_with(m), "is not an earlier member");
}

#[test]
fn section_of_another_pid_is_refused() {
    let mut m = members();
    m[1].pid = 5000;
    m[1].ppid = m[0].pid;
    bad_tree(&tree_with(m), "it is the image of pid 4001");
}

#[test]
fn truncated_and_corrupted_trees_are_refused() {
    let bytes = tree_with(members());
    let cut = &bytes[..bytes.len() - 10];
    bad_tree(cut, "truncated");
    // A page of the child's data changed.
    let mut bad = bytes.clone();
    let off = members_of(&bytes)[1].offset as usize + HEADER_LEN as usize + 5;
    bad[off] ^= 1;
    bad_tree(&bad, "the section of pid 4001: page data checksum");
    // Padding after the root's section.
    let m = members_of(&bytes);
    let end = (m[0].offset + m[0].len) as usize;
    if end % PAGE_SIZE as usize != 0 {
        let mut bad = bytes.clone();
        bad[end] = 1;
        bad_tree(&bad, "are not zero");
    }
}

fn members_of(bytes: &[u8]) -> Vec<Member> {
    open(bytes).unwrap().tree.members.to_vec()
}
