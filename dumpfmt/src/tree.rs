//! Tree images (format 1.3): one file for a process and its descendants.
//!
//! The outer file is framed as any image (header page, page data,
//! metadata at the tail) with [`FLAG_TREE`] set in the header. Its page
//! data is the members' *sections*, back to back from 4096, each starting
//! page-aligned (the bytes between the end of one section and the next
//! page boundary are zero); each section is a complete single-process
//! image whose own offsets count from the section's start. The metadata
//! block is one postcard [`Tree`]: the index, one [`Member`] per live
//! process in pre-order (the root first, every parent before its
//! children). `FORMAT.md` ("Tree images") has the rules [`TreeFile`]
//! checks.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::header::{HEADER_ENCODED_LEN, HEADER_LEN, Header, PAGE_SIZE};
use crate::verify::{ImageFile, io_err, read_full_at};

/// Header flag (bytes 12 to 15, bit 0): the image is a tree image.
pub const FLAG_TREE: u32 = 1;
/// The most members a tree image holds (the shim's tree dump stops at
/// this many).
pub const MAX_MEMBERS: usize = 1024;

/// A tree image's index: the metadata block of the outer file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree<'a> {
    /// Every live member, in pre-order, the root first.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub members: Cow<'a, [Member]>,
}

/// One process of a tree image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Member {
    /// Its PID, parent's PID, process group and session, as the dump saw
    /// them (the root's parent is outside the tree).
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Its section: offset in the outer file (page-aligned) and length.
    pub offset: u64,
    pub len: u64,
}

/// The outer metadata block of a tree image with `tree` as index.
pub fn encode_tree(tree: &Tree<'_>) -> Vec<u8> {
    postcard::to_allocvec(tree).expect("postcard encodes into a Vec infallibly")
}

/// Frames a tree image in memory from complete single-process images
/// (`sections`, one per member of `tree`, in its order): the offsets and
/// lengths of `tree` are filled in. For tests and tools.
pub fn frame_tree(tree: &Tree<'_>, sections: &[&[u8]]) -> Vec<u8> {
    let mut out = alloc::vec![0u8; HEADER_LEN as usize];
    let mut members = tree.members.to_vec();
    for (m, s) in members.iter_mut().zip(sections) {
        m.offset = out.len() as u64;
        m.len = s.len() as u64;
        out.extend_from_slice(s);
        out.resize((out.len() as u64).next_multiple_of(PAGE_SIZE) as usize, 0);
    }
    let meta = encode_tree(&Tree {
        members: Cow::Owned(members),
    });
    let header = Header {
        major: crate::VERSION_MAJOR,
        minor: crate::VERSION_MINOR,
        meta_offset: out.len() as u64,
        meta_len: meta.len() as u64,
        meta_crc: crc32fast::hash(&meta),
        file_len: (out.len() + meta.len()) as u64,
        flags: FLAG_TREE,
    };
    let mut head = [0u8; HEADER_ENCODED_LEN];
    header.encode(&mut head);
    out[..HEADER_ENCODED_LEN].copy_from_slice(&head);
    out.extend_from_slice(&meta);
    out
}

/// Whether the file is a tree image (its header decodes and says so).
pub(crate) fn is_tree(file: &File) -> Result<bool, Error> {
    let len = file.metadata().map_err(|e| Error::Io(e.to_string()))?.len();
    let mut head = [0u8; HEADER_LEN as usize];
    let got = read_full_at(file, &mut head, 0)?;
    Ok(Header::decode(&head[..got], len)?.flags & FLAG_TREE != 0)
}

/// A tree image opened for reading: the outer header, the index, and
/// every section opened as an image (metadata decoded and checked; page
/// data by [`TreeFile::check_pages`]).
#[derive(Debug)]
pub struct TreeFile {
    pub header: Header,
    pub tree: Tree<'static>,
    /// One per member, in the index's order.
    pub sections: Vec<ImageFile>,
    pub file: File,
}

/// What [`TreeFile::verify`] found in a good tree image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    pub file_len: u64,
    pub members: Vec<(Member, crate::Summary)>,
}

impl TreeFile {
    pub fn open(path: &Path) -> Result<TreeFile, Error> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        Self::from_file(file)
    }

    /// Decodes the outer header and index, checks the index, and opens
    /// every section.
    pub fn from_file(file: File) -> Result<TreeFile, Error> {
        let len = file.metadata().map_err(|e| Error::Io(e.to_string()))?.len();
        let mut head = [0u8; HEADER_LEN as usize];
        let got = read_full_at(&file, &mut head, 0)?;
        let header = Header::decode(&head[..got], len)?;
        if header.flags & FLAG_TREE == 0 {
            return Err(Error::BadTree("the header does not say tree image".into()));
        }
        let mut meta = alloc::vec![0u8; header.meta_len as usize];
        if read_full_at(&file, &mut meta, header.meta_offset)? != meta.len() {
            return Err(Error::Truncated {
                len,
                need: header.file_len,
            });
        }
        if crc32fast::hash(&meta) != header.meta_crc {
            return Err(Error::MetaCrc);
        }
        let (tree, rest) = crate::bounded::within_budget(
            meta.len(),
            || postcard::take_from_bytes::<Tree<'static>>(&meta),
            |e: postcard::Error| Error::MetaDecode(e.to_string()),
        )?;
        if !rest.is_empty() {
            return Err(Error::MetaDecode(format!(
                "{} bytes after the tree index",
                rest.len()
            )));
        }
        check_index(&header, &tree).map_err(Error::BadTree)?;
        let mut sections = Vec::with_capacity(tree.members.len());
        for m in tree.members.iter() {
            let section = |e: Error| Error::Section {
                pid: m.pid,
                error: Box::new(e),
            };
            let f = file.try_clone().map_err(|e| Error::Io(e.to_string()))?;
            let img = ImageFile::from_file_at(f, m.offset, m.len).map_err(section)?;
            if img.image.pid != m.pid {
                return Err(section(Error::BadMeta(format!(
                    "it is the image of pid {}",
                    img.image.pid
                ))));
            }
            sections.push(img);
        }
        Ok(TreeFile {
            header,
            tree,
            sections,
            file,
        })
    }

    /// Checks every section's page data and the zero padding between
    /// sections; returns the bytes of page data checked.
    pub fn check_pages(&self) -> Result<u64, Error> {
        let mut total = 0;
        for (m, s) in self.tree.members.iter().zip(&self.sections) {
            total += s.check_pages().map_err(|e| Error::Section {
                pid: m.pid,
                error: Box::new(e),
            })?;
            let end = m.offset + m.len;
            let pad = end.next_multiple_of(PAGE_SIZE) - end;
            let mut buf = [0u8; PAGE_SIZE as usize];
            let got = read_full_at(&self.file, &mut buf[..pad as usize], end)?;
            if got != pad as usize || buf[..got].iter().any(|&b| b != 0) {
                return Err(Error::BadTree(format!(
                    "the bytes after the section of pid {} are not zero",
                    m.pid
                )));
            }
        }
        Ok(total)
    }

    /// Opens a tree image and checks everything, page data included.
    pub fn verify(path: &Path) -> Result<TreeSummary, Error> {
        let t = TreeFile::open(path)?;
        t.check_pages()?;
        Ok(TreeSummary {
            file_len: t.header.file_len,
            members: t
                .tree
                .members
                .iter()
                .zip(&t.sections)
                .map(|(m, s)| (*m, s.summary()))
                .collect(),
        })
    }

    /// Index of the member with `pid`.
    pub fn position(&self, pid: u32) -> Option<usize> {
        self.tree.members.iter().position(|m| m.pid == pid)
    }
}

/// The index's rules: members, root first, pids unique, parents earlier,
/// sections tiling the page data.
fn check_index(header: &Header, tree: &Tree<'_>) -> Result<(), String> {
    let members = &tree.members[..];
    if members.is_empty() {
        return Err("no member".into());
    }
    let mut next = HEADER_LEN;
    for (i, m) in members.iter().enumerate() {
        if m.pid == 0 {
            return Err(format!("member {i} has pid 0"));
        }
        if members[..i].iter().any(|o| o.pid == m.pid) {
            return Err(format!("pid {} is listed twice", m.pid));
        }
        if i > 0 && !members[..i].iter().any(|o| o.pid == m.ppid) {
            return Err(format!(
                "the parent of pid {} (pid {}) is not an earlier member",
                m.pid, m.ppid
            ));
        }
        if m.offset != next {
            return Err(format!(
                "the section of pid {} starts at {:#x}, not at {next:#x}",
                m.pid, m.offset
            ));
        }
        if m.len < HEADER_LEN {
            return Err(format!("the section of pid {} is too short", m.pid));
        }
        next = m
            .offset
            .checked_add(m.len)
            .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE))
            .ok_or_else(|| format!("the section of pid {} is too long", m.pid))?;
    }
    if next != header.meta_offset {
        return Err(format!(
            "the sections end at {next:#x} but the index starts at {:#x}",
            header.meta_offset
        ));
    }
    Ok(())
}
