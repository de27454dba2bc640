//! A sample image shared by the integration tests.

#![allow(dead_code)]

use std::borrow::Cow;

use dumpfmt::{
    Backing, CpuFeatures, FileId, HEADER_ENCODED_LEN, HEADER_LEN, Header, Image, Mapping, MmFields,
    PROT_EXEC, PROT_READ, PROT_WRITE, PageRun, ResumeContext, Settings, SigAction, ThreadState,
};
use dumpfmt::{Credentials, Minor1, PosixTimer, ProcessState};

pub fn file_id(path: &str) -> FileId<'static> {
    FileId {
        path: Cow::Owned(path.into()),
        size: 123_456,
        mtime_sec: 1_700_000_000,
        mtime_nsec: 999_999_999,
        dev: 0x803,
        ino: 42,
        build_id: Cow::Owned((0..20).collect()),
    }
}

pub fn thread(tid: u32) -> ThreadState {
    ThreadState {
        tid,
        context: ResumeContext {
            rbx: 1,
            rbp: 2,
            r12: 3,
            r13: 4,
            r14: 5,
            r15: 6,
            rip: 0x401234,
            rsp: 0x7ffd_0000_1000,
        },
        fs_base: 0x7f00_0000_0000,
        gs_base: 0,
        sigmask: 1 << 9,
        clear_child_tid: 0x7f00_0000_02d0,
        robust_list: 0x7f00_0000_02e0,
        robust_list_len: 24,
        rseq_addr: 0x7f00_0000_0fe0,
        rseq_len: 32,
        rseq_sig: 0x5305_3053,
        pthread_tid_offset: 0x2d0,
        name: *b"worker-1\0\0\0\0\0\0\0\0",
    }
}

/// Mappings: a file-backed text mapping, an anonymous heap, a shared
/// `Contents` mapping and the vDSO, with gaps between them.
pub fn image() -> Image<'static> {
    Image {
        pid: 4242,
        time_ns: 1_700_000_000_123_456_789,
        sequence: 3,
        exe: file_id("/usr/bin/app"),
        cpu: CpuFeatures {
            xcr0: 0x2e7,
            cpuid: [
                0x7ffa_f3bf,
                0xbfeb_fbff,
                0x029c_6fbf,
                0x4000_0004,
                0xbc00_0400,
            ],
        },
        files: Cow::Owned(vec![file_id("/usr/bin/app"), file_id("/usr/lib/libc.so.6")]),
        mappings: Cow::Owned(vec![
            Mapping {
                start: 0x40_0000,
                end: 0x40_2000,
                prot: PROT_READ | PROT_EXEC,
                shared: false,
                offset: 0x1000,
                backing: Backing::File(0),
                name: "/usr/bin/app".into(),
            },
            Mapping {
                start: 0x60_0000,
                end: 0x60_3000,
                prot: PROT_READ | PROT_WRITE,
                shared: false,
                offset: 0,
                backing: Backing::Anonymous,
                name: "[heap]".into(),
            },
            Mapping {
                start: 0x7000_0000,
                end: 0x7000_2000,
                prot: PROT_READ | PROT_WRITE,
                shared: true,
                offset: 0,
                backing: Backing::Contents,
                name: "/dev/shm/x (deleted)".into(),
            },
            Mapping {
                start: 0x7fff_0000_0000,
                end: 0x7fff_0000_2000,
                prot: PROT_READ | PROT_EXEC,
                shared: false,
                offset: 0,
                backing: Backing::Kernel,
                name: "[vdso]".into(),
            },
        ]),
        runs: Cow::Owned(vec![]),
        threads: Cow::Owned(vec![thread(4242), thread(4243)]),
        sigactions: Cow::Owned(vec![SigAction {
            signal: 12,
            handler: 0x40_1100,
            flags: 0x0400_0004,
            restorer: 0x40_1200,
            mask: 0,
        }]),
        mm: MmFields {
            start_code: 0x40_0000,
            end_code: 0x40_2000,
            start_data: 0x60_0000,
            end_data: 0x60_1000,
            start_brk: 0x60_1000,
            brk: 0x60_3000,
            start_stack: 0x7ffd_0000_2000,
            arg_start: 0x7ffd_0000_2100,
            arg_end: 0x7ffd_0000_2200,
            env_start: 0x7ffd_0000_2200,
            env_end: 0x7ffd_0000_2f00,
        },
        auxv: Cow::Owned(vec![6, 4096, 0, 0]),
        settings: Settings {
            signal: 12,
            image: "/tmp/app.%p.%n.img".into(),
            exit_after_dump: false,
            log_level: 1,
        },
        fds: Cow::Owned(vec![]),
        process: ProcessState::default(),
        minor1: Minor1 {
            credentials: Cow::Owned(vec![credentials(0), credentials(1 << 13)]),
            posix_timers: Cow::Owned(vec![PosixTimer {
                id: 0,
                clock: 1,
                notify: 0,
                signal: 26,
                value: 0x55d0_0000_1000,
                tid: 0,
                value_ns: 5_000_000,
                interval_ns: 10_000_000,
            }]),
        },
        minor2: dumpfmt::Minor2 {
            monotonic_ns: 1_000_000_000,
            boottime_ns: 2_000_000_000,
            cpu_ext: [0x3, 0x121, 0x2c10_0800],
            baseline: Some(dumpfmt::Baseline {
                name: "x86-64-v3".into(),
                isa: dumpfmt::level("x86-64-v3").unwrap().isa,
            }),
            fpstate: Cow::Owned(vec![0x7ffd_1000_0c40, 0x7f00_0000_2c40]),
            xsave: Cow::Owned(vec![dumpfmt::XsaveComponent {
                component: 2,
                offset: 576,
                size: 256,
            }]),
        },
        minor3: dumpfmt::Minor3 {
            shared: dumpfmt::Shared {
                memory: Cow::Owned(vec![dumpfmt::SharedMemory {
                    start: 0x7000_0000,
                    dev: 1,
                    ino: 4242,
                    offset: 8192,
                    pages_in: 0,
                }]),
                // The sample has no descriptors (see `with_fds_count`).
                fds: Cow::Owned(vec![]),
            },
            members: dumpfmt::Members {
                zombies: Cow::Owned(vec![dumpfmt::Zombie {
                    pid: 4243,
                    killed: false,
                    status: 7,
                    pgid: 4242,
                    sid: 4000,
                }]),
                stop: None,
            },
        },
        minor4: Default::default(),
    }
}

/// Credentials of an unprivileged thread with `ambient` capabilities.
pub fn credentials(ambient: u64) -> Credentials {
    Credentials {
        effective: ambient,
        permitted: ambient,
        inheritable: ambient,
        bounding: 0x1ff_ffff_ffff,
        ambient,
        securebits: 0,
        no_new_privs: ambient != 0,
    }
}

/// Deterministic, non-repeating page contents.
pub fn pages(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n * 4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The run data of the sample image: one dirty page of the text mapping,
/// two heap pages, the whole shared mapping.
pub fn run_data() -> Vec<(u64, Vec<u8>)> {
    vec![
        (0x40_1000, pages(1, 1)),
        (0x60_0000, pages(2, 2)),
        (0x7000_0000, pages(2, 3)),
    ]
}

/// The sample image, built with `dumpfmt::build`.
pub fn good() -> Vec<u8> {
    let data = run_data();
    let runs: Vec<(u64, &[u8])> = data.iter().map(|(a, d)| (*a, d.as_slice())).collect();
    dumpfmt::build(&image(), &runs).expect("the sample image is valid")
}

/// The decoded metadata and the page data of an image.
pub fn split(bytes: &[u8]) -> (Header, Image<'static>, Vec<u8>) {
    let (header, image) = dumpfmt::decode(bytes).expect("a valid image");
    let data = bytes[HEADER_LEN as usize..header.meta_offset as usize].to_vec();
    (header, image, data)
}

/// The good image with its metadata changed by `f` and framed again.
pub fn with_meta(f: impl FnOnce(&mut Image<'static>, &mut Vec<PageRun>)) -> Vec<u8> {
    let (_, mut image, data) = split(&good());
    let mut runs = image.runs.to_vec();
    f(&mut image, &mut runs);
    image.runs = Cow::Owned(runs);
    dumpfmt::frame(&image, &data)
}

/// Rewrites the header of `bytes`, with a correct header checksum. The
/// fields are read as they are, without any check.
pub fn with_header(bytes: &mut [u8], f: impl FnOnce(&mut Header)) {
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let mut h = Header {
        major: u16_at(8),
        minor: u16_at(10),
        meta_offset: u64_at(16),
        meta_len: u64_at(24),
        meta_crc: u32_at(32),
        file_len: u64_at(40),
        flags: u32_at(12),
    };
    f(&mut h);
    let mut head = [0u8; HEADER_ENCODED_LEN];
    h.encode(&mut head);
    bytes[..HEADER_ENCODED_LEN].copy_from_slice(&head);
}

/// The good image with its metadata block replaced by `meta`, the header
/// fixed up to match.
pub fn with_raw_meta(meta: &[u8]) -> Vec<u8> {
    let good = good();
    let (header, _, _) = split(&good);
    let mut bytes = good[..header.meta_offset as usize].to_vec();
    bytes.extend_from_slice(meta);
    let len = bytes.len() as u64;
    with_header(&mut bytes, |h| {
        h.meta_len = meta.len() as u64;
        h.meta_crc = crc32fast::hash(meta);
        h.file_len = len;
    });
    bytes
}

/// The good image without descriptors, its (empty) `fds` count replaced by
/// the varint `count` followed by `then`, not descriptors: the count lies.
pub fn with_fds_count(count: &[u8], then: &[u8]) -> Vec<u8> {
    let good = good();
    let (header, _, _) = split(&good);
    let meta = &good[header.meta_offset as usize..];
    // After `Image` come the values versions 1.1 to 1.4 added.
    let mut later = postcard::to_allocvec(&image().minor1).unwrap();
    later.extend(postcard::to_allocvec(&image().minor2).unwrap());
    later.extend(postcard::to_allocvec(&image().minor3).unwrap());
    later.extend(postcard::to_allocvec(&image().minor4).unwrap());
    let (meta, after) = meta.split_at(meta.len() - later.len());
    assert_eq!(after, later.as_slice());
    // `fds` is last but for a default `ProcessState`: 11 zero bytes.
    let (head, tail) = meta.split_at(meta.len() - 12);
    assert_eq!(tail, &[0; 12], "fds empty, process default");
    let mut lying = head.to_vec();
    lying.extend_from_slice(count);
    lying.extend_from_slice(then);
    lying.extend_from_slice(&tail[1..]);
    lying.extend_from_slice(after);
    with_raw_meta(&lying)
}
