//! One test per rule of the metadata consistency check: each starts from the
//! good sample image, breaks exactly that rule, and expects that rule's error.

mod common;

use dumpfmt::{Backing, Error, HEADER_LEN, PAGE_SIZE, PageRun};

use common::with_meta;

/// Decoding fails with a `BadMeta` whose message contains `want`.
#[track_caller]
fn rejects(bytes: &[u8], want: &str) {
    match dumpfmt::decode(bytes) {
        Err(Error::BadMeta(m)) if m.contains(want) => {}
        other => panic!("want BadMeta containing {want:?}, got {other:?}"),
    }
}

#[test]
fn the_sample_is_consistent() {
    let bytes = with_meta(|_, _| {});
    assert_eq!(bytes, common::good());
    assert!(dumpfmt::decode(&bytes).is_ok());
}

#[test]
fn mapping_bounds_aligned_and_not_empty() {
    let cases: [(u64, u64); 4] = [
        (0x40_0001, 0x40_2000), // unaligned start
        (0x40_0000, 0x40_2001), // unaligned end
        (0x40_0000, 0x40_0000), // empty
        (0x40_2000, 0x40_0000), // reversed
    ];
    for (start, end) in cases {
        let bytes = with_meta(|image, _| {
            let m = &mut image.mappings.to_mut()[0];
            (m.start, m.end) = (start, end);
        });
        rejects(&bytes, "mapping 0 has bad bounds");
    }
}

#[test]
fn mappings_sorted_without_overlap() {
    let bytes = with_meta(|image, _| image.mappings.to_mut()[1].start = 0x40_1000);
    rejects(&bytes, "mapping 1 at 0x401000 overlaps or is out of order");
    let bytes = with_meta(|image, _| image.mappings.to_mut().swap(1, 2));
    rejects(&bytes, "mapping 2 at 0x600000 overlaps or is out of order");
    // Adjacent is fine: end == next start.
    let bytes = with_meta(|image, _| image.mappings.to_mut()[1].start = 0x40_2000);
    assert!(dumpfmt::decode(&bytes).is_ok());
}

#[test]
fn file_index_in_range() {
    let bytes = with_meta(|image, _| image.mappings.to_mut()[0].backing = Backing::File(2));
    rejects(&bytes, "mapping 0 names file 2 of 2");
}

#[test]
fn file_offset_aligned() {
    let bytes = with_meta(|image, _| image.mappings.to_mut()[0].offset = 0x1010);
    rejects(&bytes, "mapping 0 has an unaligned file offset");
    // Only file mappings' offsets matter.
    let bytes = with_meta(|image, _| image.mappings.to_mut()[1].offset = 0x1010);
    assert!(dumpfmt::decode(&bytes).is_ok());
}

#[test]
fn run_length_does_not_overflow() {
    let bytes = with_meta(|_, runs| runs[1].pages = u64::MAX / PAGE_SIZE + 1);
    rejects(&bytes, "run 1 is too long");
}

#[test]
fn run_does_not_wrap_the_address_space() {
    let bytes = with_meta(|_, runs| runs[2].addr = u64::MAX - PAGE_SIZE + 1);
    rejects(&bytes, "run 2 wraps the address space");
}

#[test]
fn run_does_not_wrap_the_file_offset() {
    let bytes = with_meta(|_, runs| runs[0].file_offset = u64::MAX - PAGE_SIZE + 1);
    rejects(&bytes, "run 0 wraps the file offset");
}

#[test]
fn run_not_empty_and_aligned() {
    let breaks: [fn(&mut PageRun); 3] = [|r| r.pages = 0, |r| r.addr += 8, |r| r.file_offset += 8];
    for f in breaks {
        let bytes = with_meta(|_, runs| f(&mut runs[1]));
        rejects(&bytes, "run 1 is empty or unaligned");
    }
}

#[test]
fn runs_sorted_without_overlap() {
    let bytes = with_meta(|_, runs| runs[2].addr = runs[1].addr + PAGE_SIZE);
    rejects(
        &bytes,
        "run 2 at 0x601000 overlaps the previous run or is out of order",
    );
    let bytes = with_meta(|_, runs| {
        let (a, b) = (runs[0].addr, runs[1].addr);
        (runs[0].addr, runs[1].addr) = (b, a);
    });
    rejects(
        &bytes,
        "run 1 at 0x401000 overlaps the previous run or is out of order",
    );
}

#[test]
fn runs_back_to_back_from_the_header() {
    // The first run must start right after the header page...
    let bytes = with_meta(|_, runs| runs[0].file_offset += PAGE_SIZE);
    rejects(
        &bytes,
        "run 0 starts at file offset 0x2000, not where the page data before it ends (0x1000)",
    );
    // ...and each next one where the one before it ends: no gap, no overlap.
    let bytes = with_meta(|_, runs| runs[2].file_offset += PAGE_SIZE);
    rejects(&bytes, "run 2 starts at file offset 0x5000, not where");
    let bytes = with_meta(|_, runs| runs[1].file_offset -= PAGE_SIZE);
    rejects(&bytes, "run 1 starts at file offset 0x1000, not where");
}

#[test]
fn run_does_not_extend_into_the_metadata() {
    let bytes = with_meta(|_, runs| runs[2].pages += 1);
    rejects(&bytes, "run 2 extends into the metadata");
}

#[test]
fn run_inside_one_mapping() {
    // In the gap between two mappings.
    let bytes = with_meta(|_, runs| runs[1].addr = 0x50_0000);
    rejects(&bytes, "run 1 at 0x500000 is not inside one mapping");
    // Starting inside a mapping and running past its end.
    let bytes = with_meta(|_, runs| runs[1].addr = 0x60_2000);
    rejects(&bytes, "run 1 at 0x602000 is not inside one mapping");
    // Spanning two adjacent mappings is not inside one either.
    let bytes = with_meta(|image, runs| {
        let m = image.mappings.to_mut();
        m[1].end = 0x60_1000;
        let mut next = m[1].clone();
        (next.start, next.end) = (0x60_1000, 0x60_3000);
        m.insert(2, next);
        runs[1].addr = 0x60_0000;
    });
    rejects(&bytes, "run 1 at 0x600000 is not inside one mapping");
    // Past the last mapping.
    let bytes = with_meta(|_, runs| runs[2].addr = 0x8000_0000);
    rejects(&bytes, "run 2 at 0x80000000 is not inside one mapping");
}

#[test]
fn no_run_inside_a_kernel_mapping_but_the_vdso_from_1_2() {
    // [vdso] holds runs from 1.2 on (its code, to compare kernels).
    let bytes = with_meta(|_, runs| runs[2].addr = 0x7fff_0000_0000);
    dumpfmt::decode(&bytes).expect("a 1.2 image keeps its vDSO's pages");
    // In a 1.1 image it did not.
    rejects(
        &as_1_1(bytes),
        "run 2 at 0x7fff00000000 is inside a kernel mapping ([vdso])",
    );
    // [vvar] never does.
    let bytes = with_meta(|image, runs| {
        image.mappings.to_mut().last_mut().unwrap().name = "[vvar]".into();
        runs[2].addr = 0x7fff_0000_0000;
    });
    rejects(
        &bytes,
        "run 2 at 0x7fff00000000 is inside a kernel mapping ([vvar])",
    );
}

#[test]
fn page_data_ends_at_the_metadata() {
    let good = common::good();
    let (_, image, mut data) = common::split(&good);
    data.extend_from_slice(&[0; PAGE_SIZE as usize]);
    let bytes = dumpfmt::frame(&image, &data);
    rejects(
        &bytes,
        "page data ends at 0x6000 but the metadata starts at 0x7000",
    );
    // With no runs at all, the metadata starts right after the header.
    let mut image = image;
    image.runs = Vec::new().into();
    let bytes = dumpfmt::frame(&image, &data);
    rejects(
        &bytes,
        &format!("page data ends at {HEADER_LEN:#x} but the metadata starts at 0x7000"),
    );
}

#[test]
fn at_least_one_thread() {
    let bytes = with_meta(|image, _| image.threads = Vec::new().into());
    rejects(&bytes, "no thread");
}

#[test]
fn auxv_is_pairs() {
    let bytes = with_meta(|image, _| image.auxv.to_mut().push(0));
    rejects(&bytes, "auxv has an odd number of words");
}

#[test]
fn build_reports_what_the_reader_would() {
    let data = common::pages(1, 9);
    assert_eq!(
        dumpfmt::build(&common::image(), &[(0x50_0000, &data)]),
        Err(Error::BadMeta(
            "run 0 at 0x500000 is not inside one mapping".into()
        ))
    );
    assert!(matches!(
        dumpfmt::build(&common::image(), &[(0x60_0000, &data[..100])]),
        Err(Error::BadMeta(m)) if m.contains("not a whole number of pages")
    ));
    assert!(matches!(
        dumpfmt::build(&common::image(), &[(0x60_0000, &[])]),
        Err(Error::BadMeta(m)) if m.contains("not a whole number of pages")
    ));
}

#[test]
fn descriptors_above_stdio_sorted_and_unique() {
    let fd = |n: i32| dumpfmt::Fd {
        fd: n,
        flags: 0,
        cloexec: false,
        kind: dumpfmt::FdKind::Eventfd {
            count: 1,
            semaphore: false,
        },
    };
    let good = with_meta(|image, _| image.fds = vec![fd(3), fd(7)].into());
    assert!(dumpfmt::decode(&good).is_ok());
    // From 1.3, a tree member's own stdio.
    let stdio = with_meta(|image, _| image.fds = vec![fd(0), fd(2), fd(3)].into());
    assert!(dumpfmt::decode(&stdio).is_ok());
    for (fds, bad) in [
        (vec![fd(-1)], -1),
        (vec![fd(5), fd(4)], 4),
        (vec![fd(5), fd(5)], 5),
    ] {
        let bytes = with_meta(|image, _| image.fds = fds.clone().into());
        rejects(
            &bytes,
            &format!("fd {bad} is stdio, repeated or out of order"),
        );
    }
}

#[test]
fn a_dup_names_an_earlier_original() {
    let fd = |n: i32, kind: dumpfmt::FdKind<'static>| dumpfmt::Fd {
        fd: n,
        flags: 0,
        cloexec: false,
        kind,
    };
    let ev = || dumpfmt::FdKind::Eventfd {
        count: 1,
        semaphore: false,
    };
    let dup = |of| dumpfmt::FdKind::Dup { of };
    let good = with_meta(|image, _| image.fds = vec![fd(3, ev()), fd(4, dup(3))].into());
    assert!(dumpfmt::decode(&good).is_ok());
    for fds in [
        vec![fd(3, dup(4)), fd(4, ev())],
        vec![fd(3, ev()), fd(4, dup(9))],
        vec![fd(3, ev()), fd(4, dup(3)), fd(5, dup(4))],
    ] {
        let bytes = with_meta(|image, _| image.fds = fds.clone().into());
        rejects(&bytes, "which is not an earlier original");
    }
}

#[test]
fn one_credential_record_per_thread() {
    let bytes = with_meta(|image, _| {
        image.minor1.credentials.to_mut().pop();
    });
    rejects(&bytes, "1 credential records for 2 threads");
}

/// `image` framed as an image of version 1.`minor`: the values later
/// `bytes`, a 1.2 image, as a 1.1 image (its `Minor2` dropped).
fn as_1_1(bytes: Vec<u8>) -> Vec<u8> {
    let (_, mut image, data) = common::split(&bytes);
    image.minor2 = dumpfmt::Minor2::default();
    image.minor3 = dumpfmt::Minor3::default();
    older_image(&image, &data, 1)
}

/// versions appended (`Minor1` to `Minor4`, empty here) cut off the metadata.
fn older_image(image: &dumpfmt::Image<'_>, data: &[u8], minor: u16) -> Vec<u8> {
    let mut bytes = dumpfmt::frame(image, data);
    let mut cut = postcard::to_allocvec(&dumpfmt::Minor3::default()).unwrap();
    // (and the 1.4 value after it)
    cut.extend(postcard::to_allocvec(&dumpfmt::Minor4::default()).unwrap());
    if minor <= 1 {
        cut.splice(
            0..0,
            postcard::to_allocvec(&dumpfmt::Minor2::default()).unwrap(),
        );
    }
    if minor == 0 {
        cut.splice(
            0..0,
            postcard::to_allocvec(&dumpfmt::Minor1::default()).unwrap(),
        );
    }
    assert!(bytes.ends_with(&cut));
    bytes.truncate(bytes.len() - cut.len());
    let meta_offset = HEADER_LEN + data.len() as u64;
    let meta_crc = crc32fast::hash(&bytes[meta_offset as usize..]);
    let len = bytes.len() as u64;
    common::with_header(&mut bytes, |h| {
        h.minor = minor;
        h.meta_len = len - meta_offset;
        h.meta_crc = meta_crc;
        h.file_len = len;
    });
    bytes
}

/// A 1.0 image (metadata = `Image` alone) is still read, without
/// credentials; a 1.1 reader expects the `Minor1` value only in 1.1 images.
#[test]
fn a_1_0_image_is_still_read() {
    let (_, mut image, data) = common::split(&common::good());
    image.minor1 = dumpfmt::Minor1::default();
    image.minor2 = dumpfmt::Minor2::default();
    image.minor3 = dumpfmt::Minor3::default();
    let (header, back) =
        dumpfmt::decode(&older_image(&image, &data, 0)).expect("a 1.0 image decodes");
    assert_eq!(header.minor, 0);
    assert!(back.minor1.credentials.is_empty());
    assert_eq!(back.threads, image.threads);
}

/// A 1.1 image (no `Minor2`) is still read: no CPU baseline, no frames.
#[test]
fn a_1_1_image_is_still_read() {
    let (_, mut image, data) = common::split(&common::good());
    image.minor2 = dumpfmt::Minor2::default();
    image.minor3 = dumpfmt::Minor3::default();
    let (header, back) =
        dumpfmt::decode(&older_image(&image, &data, 1)).expect("a 1.1 image decodes");
    assert_eq!(header.minor, 1);
    assert_eq!(back.minor1, image.minor1);
    assert!(back.minor2.baseline.is_none() && back.minor2.fpstate.is_empty());
    assert_eq!(back.minor2.monotonic_ns, 0);
}

/// A 1.2 image (no `Minor3`) is still read: it shares nothing, has no
/// zombie children and is not stopped.
#[test]
fn a_1_2_image_is_still_read() {
    let (_, mut image, data) = common::split(&common::good());
    image.minor3 = dumpfmt::Minor3::default();
    let (header, back) =
        dumpfmt::decode(&older_image(&image, &data, 2)).expect("a 1.2 image decodes");
    assert_eq!(header.minor, 2);
    assert_eq!(back.minor2, image.minor2);
    assert!(back.minor3.shared.memory.is_empty() && back.minor3.shared.fds.is_empty());
    assert!(back.minor3.members.zombies.is_empty() && back.minor3.members.stop.is_none());
}

/// Zombie children are sorted by PID, each once, none of them the
/// process itself, each killed by a signal that exists.
#[test]
fn zombies_sorted_once_with_real_signals() {
    let z = |pid: u32, killed: bool, status: u8| dumpfmt::Zombie {
        pid,
        killed,
        status,
        pgid: 1,
        sid: 1,
    };
    for (zombies, why) in [
        (
            vec![z(9, false, 0), z(8, false, 0)],
            "zombie child 8 is out of order",
        ),
        (
            vec![z(9, false, 0), z(9, false, 0)],
            "zombie child 9 is out of order",
        ),
        (vec![z(4242, false, 0)], "zombie child 4242 is out of order"),
        (vec![z(9, true, 0)], "zombie child 9 was killed by signal 0"),
        (
            vec![z(9, true, 65)],
            "zombie child 9 was killed by signal 65",
        ),
    ] {
        let bytes = with_meta(|image, _| image.minor3.members.zombies = zombies.clone().into());
        rejects(&bytes, why);
    }
    let bytes = with_meta(|image, _| {
        image.minor3.members.stop = Some(dumpfmt::Stop {
            signal: 99,
            reported: true,
        })
    });
    rejects(&bytes, "stopped by signal 99");
}

#[test]
fn frame_addresses_one_per_thread() {
    let bytes = with_meta(|image, _| {
        image.minor2.fpstate = vec![0x7000].into();
    });
    rejects(&bytes, "1 signal frame addresses for 2 threads");
}

#[test]
fn posix_timers_sorted_by_id() {
    let bytes = with_meta(|image, _| {
        let t = image.minor1.posix_timers[0];
        image.minor1.posix_timers.to_mut().push(t);
    });
    rejects(&bytes, "POSIX timer 0 is repeated or out of order");
}

#[test]
fn shared_memory_names_a_shared_contents_mapping() {
    let bytes = with_meta(|image, _| {
        image.minor3.shared.memory.to_mut()[0].start = 0x60_0000;
    });
    rejects(&bytes, "names no shared mapping of contents");
    let bytes = with_meta(|image, _| {
        image.minor3.shared.memory.to_mut()[0].offset = u64::MAX - 4095;
    });
    rejects(&bytes, "has a bad offset");
    let bytes = with_meta(|image, _| {
        let m = image.minor3.shared.memory[0];
        image.minor3.shared.memory.to_mut().push(m);
    });
    rejects(&bytes, "is repeated or out of order");
}

#[test]
fn shared_descriptors_name_descriptors_of_their_kind() {
    let bytes = with_meta(|image, _| {
        image.minor3.shared.fds.to_mut().push(dumpfmt::SharedFd {
            fd: 3,
            key: dumpfmt::SharedKey::Description { pid: 1, fd: 3 },
        });
    });
    rejects(
        &bytes,
        "shared descriptor record 3 names no descriptor of its kind",
    );
}
