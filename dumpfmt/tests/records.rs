//! Every record survives postcard encoding and decoding, borrowed on the way
//! in (as the dump path writes it) and owned on the way out (as readers get it).

mod common;

use std::borrow::Cow;
use std::fmt::Debug;

use dumpfmt::{
    Backing, CpuFeatures, Credentials, FileId, Image, Mapping, Minor1, MmFields, PageRun,
    PosixTimer, ProcessState, ResumeContext, Settings, SigAction, ThreadState,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> Vec<u8> {
    let bytes = postcard::to_allocvec(value).unwrap();
    let back: T = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(&back, value);
    // Every strict prefix is an error, never a panic or a shorter value.
    for n in 0..bytes.len() {
        assert!(
            postcard::from_bytes::<T>(&bytes[..n]).is_err(),
            "prefix {n}"
        );
    }
    bytes
}

#[test]
fn image_round_trip_borrowed_to_owned() {
    let owned = common::image();
    let files = owned.files.to_vec();
    let mappings = owned.mappings.to_vec();
    let runs = [PageRun {
        addr: 0x60_0000,
        pages: 1,
        file_offset: 4096,
        crc: 7,
    }];
    let threads = owned.threads.to_vec();
    let sigactions = owned.sigactions.to_vec();
    let auxv = owned.auxv.to_vec();
    let fds = owned.fds.to_vec();
    let borrowed = Image {
        exe: FileId {
            path: Cow::Borrowed(&owned.exe.path),
            build_id: Cow::Borrowed(&owned.exe.build_id),
            ..owned.exe.clone()
        },
        files: Cow::Borrowed(&files),
        mappings: Cow::Borrowed(&mappings),
        runs: Cow::Borrowed(&runs),
        threads: Cow::Borrowed(&threads),
        sigactions: Cow::Borrowed(&sigactions),
        auxv: Cow::Borrowed(&auxv),
        settings: Settings {
            image: Cow::Borrowed(&owned.settings.image),
            ..owned.settings.clone()
        },
        fds: Cow::Borrowed(&fds),
        process: owned.process.clone(),
        // Encoded after the `Image`, not inside it (see `minor1_follows_the_image`).
        minor1: Minor1::default(),
        minor2: Default::default(),
        minor3: Default::default(),
        minor4: Default::default(),
        ..owned.clone()
    };
    let bytes = postcard::to_allocvec(&borrowed).unwrap();
    let back: Image<'static> = postcard::from_bytes(&bytes).unwrap();
    let expect = Image {
        runs: Cow::Owned(runs.to_vec()),
        minor1: Minor1::default(),
        minor2: Default::default(),
        minor3: Default::default(),
        minor4: Default::default(),
        ..owned.clone()
    };
    assert_eq!(back, expect);
    assert!(matches!(back.files, Cow::Owned(_)));
    assert!(matches!(back.settings.image, Cow::Owned(_)));
    // Borrowed and owned forms encode to the same bytes.
    assert_eq!(postcard::to_allocvec(&expect).unwrap(), bytes);
    round_trip(&expect);
}

#[test]
fn image_with_empty_collections() {
    let image = Image {
        files: Cow::Borrowed(&[]),
        mappings: Cow::Borrowed(&[]),
        runs: Cow::Borrowed(&[]),
        threads: Cow::Borrowed(&[]),
        sigactions: Cow::Borrowed(&[]),
        auxv: Cow::Borrowed(&[]),
        minor1: Minor1::default(),
        minor2: Default::default(),
        minor3: Default::default(),
        minor4: Default::default(),
        ..common::image()
    };
    round_trip(&image);
}

#[test]
fn file_id() {
    round_trip(&common::file_id("/usr/lib/x86_64-linux-gnu/libc.so.6"));
    round_trip(&FileId {
        path: "".into(),
        size: u64::MAX,
        mtime_sec: i64::MIN,
        mtime_nsec: -1,
        dev: 0,
        ino: u64::MAX,
        build_id: Cow::Borrowed(&[]),
    });
}

#[test]
fn mapping_with_each_backing() {
    for backing in [
        Backing::Anonymous,
        Backing::File(0),
        Backing::File(u32::MAX),
        Backing::Contents,
        Backing::Kernel,
        Backing::Fd(3),
        Backing::SharedFile(2),
    ] {
        let m = Mapping {
            start: 0x7fff_f000_0000,
            end: 0x7fff_f000_8000,
            prot: 7,
            shared: true,
            offset: 0x10_0000,
            backing,
            name: "[stack]".into(),
        };
        round_trip(&m);
        round_trip(&backing);
    }
}

#[test]
fn page_run() {
    round_trip(&PageRun {
        addr: 0xffff_ffff_ffff_f000,
        pages: u64::MAX,
        file_offset: 4096,
        crc: u32::MAX,
    });
}

#[test]
fn thread_state_and_resume_context() {
    let t = common::thread(77);
    round_trip(&t);
    round_trip(&t.context);
    round_trip(&ThreadState::default());
    round_trip(&ResumeContext {
        rip: u64::MAX,
        ..ResumeContext::default()
    });
}

#[test]
fn sig_action() {
    round_trip(&SigAction {
        signal: 64,
        handler: 1,
        flags: u64::MAX,
        restorer: 0,
        mask: 0xffff_ffff_ffff_fffe,
    });
}

#[test]
fn mm_fields() {
    round_trip(&common::image().mm);
    round_trip(&MmFields::default());
}

#[test]
fn cpu_features() {
    round_trip(&common::image().cpu);
    round_trip(&CpuFeatures {
        xcr0: u64::MAX,
        cpuid: [u32::MAX; 5],
    });
}

#[test]
fn settings() {
    round_trip(&common::image().settings);
    round_trip(&Settings {
        signal: 0,
        image: "".into(),
        exit_after_dump: true,
        log_level: 2,
    });
}

#[test]
fn bools_other_than_0_and_1_do_not_decode() {
    let mut bytes = postcard::to_allocvec(&common::image().settings).unwrap();
    let at = bytes.len() - 2; // exit_after_dump, then log_level
    assert_eq!(bytes[at], 0);
    bytes[at] = 2;
    assert!(postcard::from_bytes::<Settings>(&bytes).is_err());
}

#[test]
fn missing_in_same_or_more_features() {
    let cpu = common::image().cpu;
    assert_eq!(cpu.missing_in(&cpu), None);
    let more = CpuFeatures {
        xcr0: cpu.xcr0 | 1 << 40,
        cpuid: cpu.cpuid.map(|w| w | 0x8000_0000),
    };
    assert_eq!(cpu.missing_in(&more), None);
    assert_eq!(CpuFeatures::default().missing_in(&cpu), None);
}

#[test]
fn missing_in_reports_exactly_what_lacks() {
    let cpu = common::image().cpu;
    let mut less = cpu;
    less.xcr0 &= !0x4;
    assert_eq!(cpu.missing_in(&less), Some((0x4, [0; 5])));
    for word in 0..5 {
        let mut less = cpu;
        let bit = 1 << cpu.cpuid[word].trailing_zeros();
        less.cpuid[word] &= !bit;
        let mut want = [0u32; 5];
        want[word] = bit;
        assert_eq!(cpu.missing_in(&less), Some((0, want)), "word {word}");
    }
    assert_eq!(
        cpu.missing_in(&CpuFeatures::default()),
        Some((cpu.xcr0, cpu.cpuid))
    );
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// Pins the wire encoding: postcard is not self-describing, so reordering,
/// inserting, removing or retyping a field silently changes what existing
/// images mean. If this fails, read "Versioning" in FORMAT.md first.
#[test]
fn encoding_is_pinned() {
    let run = PageRun {
        addr: 0x1000,
        pages: 2,
        file_offset: 0x1000,
        crc: 0xdead_beef,
    };
    // varint(0x1000) varint(2) varint(0x1000) varint(0xdeadbeef)
    assert_eq!(hex(&round_trip(&run)), "8020028020effdb6f50d");
    // Enum variants are their index as a varint, then the payload.
    assert_eq!(hex(&round_trip(&Backing::Anonymous)), "00");
    assert_eq!(hex(&round_trip(&Backing::File(5))), "0105");
    assert_eq!(hex(&round_trip(&Backing::Contents)), "02");
    assert_eq!(hex(&round_trip(&Backing::Kernel)), "03");
    assert_eq!(hex(&round_trip(&Backing::Fd(3))), "0406");
    assert_eq!(hex(&round_trip(&Backing::SharedFile(2))), "0502");

    let image = Image {
        pid: 1,
        time_ns: 2,
        sequence: 3,
        exe: FileId {
            path: "/e".into(),
            size: 4,
            mtime_sec: -1,
            mtime_nsec: 1,
            dev: 5,
            ino: 6,
            build_id: Cow::Borrowed(&[0xab]),
        },
        cpu: CpuFeatures {
            xcr0: 7,
            cpuid: [1, 2, 3, 4, 5],
        },
        files: Cow::Owned(vec![]),
        mappings: Cow::Owned(vec![Mapping {
            start: 0x10,
            end: 0x20,
            prot: 3,
            shared: true,
            offset: 8,
            backing: Backing::File(0),
            name: "m".into(),
        }]),
        runs: Cow::Owned(vec![PageRun {
            addr: 9,
            pages: 1,
            file_offset: 10,
            crc: 11,
        }]),
        threads: Cow::Owned(vec![ThreadState {
            tid: 12,
            context: ResumeContext {
                rbx: 1,
                rbp: 2,
                r12: 3,
                r13: 4,
                r14: 5,
                r15: 6,
                rip: 7,
                rsp: 8,
            },
            fs_base: 13,
            gs_base: 14,
            sigmask: 15,
            clear_child_tid: 16,
            robust_list: 17,
            robust_list_len: 18,
            rseq_addr: 19,
            rseq_len: 20,
            rseq_sig: 21,
            pthread_tid_offset: 22,
            name: *b"worker-1\0\0\0\0\0\0\0\0",
        }]),
        sigactions: Cow::Owned(vec![SigAction {
            signal: 10,
            handler: 23,
            flags: 24,
            restorer: 25,
            mask: 26,
        }]),
        mm: MmFields {
            start_code: 31,
            end_code: 32,
            start_data: 33,
            end_data: 34,
            start_brk: 35,
            brk: 36,
            start_stack: 37,
            arg_start: 38,
            arg_end: 39,
            env_start: 40,
            env_end: 41,
        },
        auxv: Cow::Owned(vec![6, 0x1000]),
        settings: Settings {
            signal: 12,
            image: "/i".into(),
            exit_after_dump: true,
            log_level: 2,
        },
        fds: Cow::Owned(vec![]),
        process: ProcessState::default(),
        minor1: Minor1::default(),
        minor2: Default::default(),
        minor3: Default::default(),
        minor4: Default::default(),
    };
    let want = [
        "01 02 03",                    // pid, time_ns, sequence
        "022f65 04 01 02 05 06 01ab",  // exe: path, size, mtime (zigzag), dev, ino, build_id
        "07 0102030405",               // cpu: xcr0, cpuid[5] (no length: an array)
        "00",                          // files: length 0
        "01 10 20 03 01 08 0100 016d", // mappings: 1 [start end prot shared offset File(0) name]
        "01 09 01 0a 0b",              // runs: 1 [addr pages file_offset crc]
        "01 0c 0102030405060708 0d0e0f101112131415 16 776f726b65722d310000000000000000", // threads: 1 [tid context ... name]
        "01 0a 17 18 19 1a", // sigactions: 1 [signal handler flags restorer mask]
        "1f202122232425262728 29", // mm
        "02 06 8020",        // auxv: 2 words
        "0c 022f69 01 02",   // settings: signal image exit_after_dump log_level
        "00",                // fds: length 0
        "00 00 00 00 000000000000 00", // process: cwd umask personality rlimits itimers pending
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex(&round_trip(&image)), want);

    // The value 1.1 appends after `Image`.
    let minor1 = Minor1 {
        credentials: Cow::Owned(vec![Credentials {
            effective: 1,
            permitted: 2,
            inheritable: 3,
            bounding: 0x1ff_ffff_ffff,
            ambient: 4,
            securebits: 5,
            no_new_privs: true,
        }]),
        posix_timers: Cow::Owned(vec![PosixTimer {
            id: 1,
            clock: -6,
            notify: 4,
            signal: 26,
            value: 0x100,
            tid: 7,
            value_ns: 8,
            interval_ns: 9,
        }]),
    };
    let want = [
        "01 01 02 03 ffffffffff3f 04 05 01", // credentials: 1 [eff prm inh bnd amb securebits nnp]
        "01 02 0b 08 34 8002 0e 08 09", // posix_timers: 1 [id clock(zigzag) notify signal value tid value_ns interval_ns]
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex(&round_trip(&minor1)), want);

    // The value 1.2 appends after that.
    let minor2 = dumpfmt::Minor2 {
        monotonic_ns: 0x1000,
        boottime_ns: 1,
        cpu_ext: [2, 3, 4],
        baseline: Some(dumpfmt::Baseline {
            name: "v".into(),
            isa: dumpfmt::Isa {
                xcr0: 7,
                words: [1, 0, 0, 0, 0, 0, 0, 0x80],
            },
        }),
        fpstate: vec![0x7000].into(),
        xsave: vec![dumpfmt::XsaveComponent {
            component: 2,
            offset: 576,
            size: 256,
        }]
        .into(),
    };
    let want = [
        "802001",                 // monotonic_ns boottime_ns
        "020304",                 // cpu_ext
        "01 01 76",               // baseline: Some, name "v"
        "07 01000000000000 8001", // isa: xcr0, words
        "01 80e001",              // fpstate: 1 [0x7000]
        "01 02 c004 8002",        // xsave: 1 [component offset size]
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex(&round_trip(&minor2)), want);

    // The value 1.3 appends after that.
    let minor3 = dumpfmt::Minor3 {
        shared: dumpfmt::Shared {
            memory: vec![dumpfmt::SharedMemory {
                start: 0x1000,
                dev: 1,
                ino: 2,
                offset: 3,
                pages_in: 4,
            }]
            .into(),
            fds: vec![
                dumpfmt::SharedFd {
                    fd: 3,
                    key: dumpfmt::SharedKey::Object { dev: 1, ino: 2 },
                },
                dumpfmt::SharedFd {
                    fd: 4,
                    key: dumpfmt::SharedKey::SocketEnd { ino: 5, peer: 6 },
                },
                dumpfmt::SharedFd {
                    fd: 5,
                    key: dumpfmt::SharedKey::Description { pid: 7, fd: 3 },
                },
            ]
            .into(),
        },
        members: dumpfmt::Members {
            zombies: vec![
                dumpfmt::Zombie {
                    pid: 300,
                    killed: false,
                    status: 7,
                    pgid: 1,
                    sid: 1,
                },
                dumpfmt::Zombie {
                    pid: 301,
                    killed: true,
                    status: 9,
                    pgid: 301,
                    sid: 1,
                },
            ]
            .into(),
            stop: Some(dumpfmt::Stop {
                signal: 19,
                reported: true,
            }),
        },
    };
    let want = [
        "01 8020 01 02 03 04", // memory: 1 [start dev ino offset pages_in]
        "03 06 00 0102",       // fds: 3 [fd(zigzag) Object dev ino]
        "08 01 0506",          // [fd SocketEnd ino peer]
        "0a 02 07 06",         // [fd Description pid fd(zigzag)]
        "02 ac02 00 07 01 01 ad02 01 09 ad02 01", // zombies: 2 [pid killed status pgid sid]
        "01 13 01",            // stop: Some [signal reported]
    ]
    .concat()
    .replace(' ', "");
    assert_eq!(hex(&round_trip(&minor3)), want);
}

/// What a tree member shares travels in the value after `Minor2`, and
/// comes back from a whole image; a 1.2 image has none.
#[test]
fn minor3_follows_minor2() {
    let image = common::image();
    assert!(!image.minor3.shared.memory.is_empty());
    let (_, back, _) = common::split(&common::good());
    assert_eq!(back.minor3, image.minor3);
}

/// The credentials of a 1.1 image travel in the value after `Image`, and
/// come back from a whole image.
#[test]
fn minor1_follows_the_image() {
    let image = common::image();
    assert_eq!(image.minor1.credentials.len(), image.threads.len());
    let (_, back, _) = common::split(&common::good());
    assert_eq!(back.minor1, image.minor1);
}
