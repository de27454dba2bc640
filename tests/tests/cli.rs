//! The `migrate` command (`cli/`): `run` and `restore` round-trip real
//! programs (also behind `timeout` and `setarch`, and from an installed
//! prefix); `inspect` of a fixed image matches golden files
//! (`MIGRATE_BLESS=1` rewrites them); `verify` passes a good image and
//! gives the restore's status for each kind of bad one, naming every
//! problem.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use dumpfmt::{
    Backing, CpuFeatures, Credentials, Fd, FdKind, FileId, Image, Mapping, Minor1, MmFields,
    PROT_EXEC, PROT_READ, PROT_WRITE, PosixTimer, ProcessState, ResumeContext, Settings,
    ThreadState,
};
use migrate_tests::command::{migrate, under_restore, under_run};
use migrate_tests::*;

/// Runs `program` under `migrate run`, dumps it at `step` with the dump
/// signal (with `--after-dump exit`, it exits by itself), restores it
/// with `migrate restore` behind `wrapper`, and checks its output.
fn round_trip(
    dir: &TestDir,
    migrate: &Path,
    program: &Program,
    step: u64,
    exit: bool,
    wrapper: &[&str],
) {
    let expected = reference(program);
    let image = dir.join(&format!("{}.img", program.name));
    let args: &[&str] = if exit { &["--after-dump", "exit"] } else { &[] };
    let run = under_run(migrate, program, &image, args);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_step(step);
    original.dump_signal();
    original.wait_for_image(&image, exit);
    if exit {
        let status = original.wait();
        assert!(
            status.success(),
            "after-dump exit: {}\n{}",
            describe_status(status),
            original.describe()
        );
    } else {
        original.kill();
    }
    let mut restored = dir.spawn_plain(&under_restore(migrate, wrapper, &image), "restored", &[]);
    finish_restored(&mut restored, &original, &expected);
}

#[test]
fn run_restore_c_program() {
    let dir = TestDir::new("cli-c");
    round_trip(&dir, &migrate(), &Program::c(), 10, false, &[]);
}

#[test]
fn run_restore_python_after_dump_exit() {
    let dir = TestDir::new("cli-python");
    round_trip(&dir, &migrate(), &Program::python(), 12, true, &[]);
}

#[test]
fn run_restore_threads() {
    let dir = TestDir::new("cli-threads");
    round_trip(&dir, &migrate(), &Program::cthreads(4), 8, false, &[]);
}

/// Wrappers go before the command, which runs without the library and
/// execs the program: `timeout 60 setarch -R migrate restore IMAGE`.
#[test]
fn restore_behind_timeout_and_setarch() {
    let dir = TestDir::new("cli-setarch");
    round_trip(
        &dir,
        &migrate(),
        &Program::cloop(),
        5,
        false,
        &["timeout", "60", "setarch", "-R"],
    );
}

/// Runs the command to its end; (status, stdout, stderr).
fn command(args: &[&OsStr]) -> (i32, String, String) {
    let out = Command::new(migrate())
        .args(args)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run migrate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_refused_before_exec() {
    for (args, what) in [
        (&["--signal", "KILL"][..], "MIGRATE_SIGNAL=KILL"),
        (&["--signal", "SEGV"][..], "MIGRATE_SIGNAL=SEGV"),
        (&["--log", "loud"][..], "MIGRATE_LOG=loud"),
    ] {
        let mut argv: Vec<&OsStr> = vec!["run".as_ref()];
        argv.extend(args.iter().map(OsStr::new));
        argv.extend(["--", "/bin/echo", "ran"].map(OsStr::new));
        let (code, out, err) = command(&argv);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}: the program ran");
        assert!(
            err.starts_with(&format!("migrate: {what}")),
            "{args:?}: {err}"
        );
    }
    let (code, _, err) = command(&[
        "run".as_ref(),
        "--lib".as_ref(),
        "/nonexistent/libmigrate.so".as_ref(),
        "--".as_ref(),
        "/bin/true".as_ref(),
    ]);
    assert_eq!(code, 72, "{err}");
}

/// An image the command cannot read ends as the restore would: 66 for a
/// missing one, 65 for one that is not an image.
#[test]
fn restore_of_unreadable_image() {
    let dir = TestDir::new("cli-unreadable");
    let missing = dir.join("missing.img");
    let (code, _, err) = command(&["restore".as_ref(), missing.as_os_str()]);
    assert_eq!(code, 66, "{err}");
    assert!(
        err.starts_with("migrate: restore ") && err.lines().count() == 1,
        "{err}"
    );
    let junk = dir.join("junk.img");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let (code, _, err) = command(&["restore".as_ref(), junk.as_os_str()]);
    assert_eq!(code, 65, "{err}");
}

// ---- inspect: a fixed image and golden files ----

const STACK: u64 = 0x7ffd_0000_0000;
/// argv and environment as the kernel lays them out, at `STACK + 0x100`.
const ARGV: &[u8] = b"./app\0--verbose\0input.txt\0";
const ENV: &[u8] = b"HOME=/home/user\0API_TOKEN=s3cret\0LANG=C.UTF-8\0";

fn file_id(path: &str, size: u64) -> FileId<'static> {
    FileId {
        path: Cow::Owned(path.into()),
        size,
        mtime_sec: 1_700_000_000,
        mtime_nsec: 5,
        dev: 0x803,
        ino: 77,
        build_id: Cow::Owned((0..20).collect()),
    }
}

fn thread(tid: u32, name: &[u8], rip: u64) -> ThreadState {
    let mut n = [0u8; 16];
    n[..name.len()].copy_from_slice(name);
    ThreadState {
        tid,
        context: ResumeContext {
            rip,
            rsp: STACK + 0x800,
            ..Default::default()
        },
        fs_base: 0x7f00_0000_0000,
        sigmask: !(1 << 8) & !(1 << 18),
        name: n,
        ..Default::default()
    }
}

fn mapping(start: u64, end: u64, prot: u8, backing: Backing, name: &str) -> Mapping<'static> {
    Mapping {
        start,
        end,
        prot,
        shared: false,
        offset: 0,
        backing,
        name: Cow::Owned(name.into()),
    }
}

/// The fixed image: every section of `inspect` has something in it.
fn fixed_image() -> Vec<u8> {
    let arg_start = STACK + 0x100;
    let arg_end = arg_start + ARGV.len() as u64;
    let env_end = arg_end + ENV.len() as u64;
    let image = Image {
        pid: 4242,
        time_ns: 1_764_449_888_123_456_789,
        sequence: 3,
        exe: file_id("/opt/app/bin/app", 81_920),
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
        files: Cow::Owned(vec![
            file_id("/opt/app/bin/app", 81_920),
            file_id("/var/lib/app/data", 3 << 20),
        ]),
        mappings: Cow::Owned(vec![
            mapping(
                0x40_0000,
                0x41_4000,
                PROT_READ | PROT_EXEC,
                Backing::File(0),
                "/opt/app/bin/app",
            ),
            mapping(
                0x60_0000,
                0x60_3000,
                PROT_READ | PROT_WRITE,
                Backing::Anonymous,
                "[heap]",
            ),
            Mapping {
                shared: true,
                ..mapping(
                    0x7f00_0010_0000,
                    0x7f00_0040_0000,
                    PROT_READ | PROT_WRITE,
                    Backing::SharedFile(1),
                    "/var/lib/app/data",
                )
            },
            mapping(
                0x7f00_1000_0000,
                0x7f00_1000_4000,
                PROT_READ,
                Backing::Kernel,
                "[vvar]",
            ),
            mapping(
                0x7f00_1000_4000,
                0x7f00_1000_6000,
                PROT_READ | PROT_EXEC,
                Backing::Kernel,
                "[vdso]",
            ),
            mapping(
                STACK,
                STACK + 0x2_1000,
                PROT_READ | PROT_WRITE,
                Backing::Anonymous,
                "[stack]",
            ),
        ]),
        runs: Cow::Owned(vec![]),
        threads: Cow::Owned(vec![
            thread(4242, b"app", 0x40_1234),
            thread(4243, b"worker-1", 0x40_2345),
        ]),
        sigactions: Cow::Owned(vec![]),
        mm: MmFields {
            start_brk: 0x60_0000,
            brk: 0x60_3000,
            arg_start,
            arg_end,
            env_start: arg_end,
            env_end,
            ..Default::default()
        },
        auxv: Cow::Owned(vec![6, 4096, 0, 0]),
        settings: Settings {
            signal: 12,
            image: "/home/user/app-%n.img".into(),
            exit_after_dump: false,
            log_level: 0,
        },
        fds: Cow::Owned(vec![
            Fd {
                fd: 3,
                flags: libc::O_RDONLY,
                cloexec: true,
                kind: FdKind::File {
                    path: "/opt/app/input.txt".into(),
                    offset: 1234,
                    size: 9999,
                    mtime_sec: 1,
                    mtime_nsec: 2,
                },
            },
            Fd {
                fd: 4,
                flags: libc::O_RDONLY,
                cloexec: false,
                kind: FdKind::Pipe {
                    id: 1,
                    path: "".into(),
                    write: false,
                    data: Cow::Owned(b"queued".to_vec()),
                    size: 65536,
                },
            },
            Fd {
                fd: 5,
                flags: libc::O_WRONLY | libc::O_NONBLOCK,
                cloexec: false,
                kind: FdKind::Pipe {
                    id: 1,
                    path: "".into(),
                    write: true,
                    data: Cow::Owned(vec![]),
                    size: 65536,
                },
            },
            Fd {
                fd: 6,
                flags: libc::O_RDWR,
                cloexec: true,
                kind: FdKind::Eventfd {
                    count: 3,
                    semaphore: false,
                },
            },
            Fd {
                fd: 7,
                flags: libc::O_RDONLY,
                cloexec: true,
                kind: FdKind::Dup { of: 3 },
            },
        ]),
        process: ProcessState {
            cwd: "/home/user".into(),
            umask: 0o022,
            personality: 0,
            rlimits: Cow::Owned(vec![(3, 8 << 20, u64::MAX), (7, 1024, 524_288)]),
            itimers: [(1_500_000, 0), (0, 0), (0, 0)],
            pending: 1 << 9,
        },
        minor1: Minor1 {
            credentials: Cow::Owned(vec![
                Credentials {
                    bounding: (1 << 41) - 1,
                    ..Default::default()
                };
                2
            ]),
            posix_timers: Cow::Owned(vec![PosixTimer {
                id: 0,
                clock: 1,
                notify: 0,
                signal: 14,
                value: 0,
                tid: 0,
                value_ns: 250_000_000,
                interval_ns: 1_000_000_000,
            }]),
        },
        minor2: Default::default(),
        minor3: Default::default(),
        minor4: dumpfmt::Minor4 {
            capture: dumpfmt::Capture {
                mode: dumpfmt::CaptureMode::Snapshot,
                pause_ns: 1_234_567,
            },
            ..Default::default()
        },
    };
    let mut stack = vec![0u8; 4096];
    stack[0x100..0x100 + ARGV.len()].copy_from_slice(ARGV);
    stack[0x100 + ARGV.len()..0x100 + ARGV.len() + ENV.len()].copy_from_slice(ENV);
    let heap = vec![0xabu8; 8192];
    let data = vec![1u8; 4096];
    dumpfmt::build(
        &image,
        &[
            (0x60_0000, &heap),
            (0x7f00_0010_0000, &data),
            (STACK, &stack),
        ],
    )
    .expect("fixed image builds")
}

/// Compares `got` with golden file `name` (rewritten with `MIGRATE_BLESS=1`).
fn golden(name: &str, got: &str) {
    let path = crate_dir().join("golden").join(name);
    if std::env::var("MIGRATE_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (MIGRATE_BLESS=1 writes it)", path.display()));
    assert!(
        got == want,
        "inspect output differs from {} (MIGRATE_BLESS=1 rewrites it)\n{}",
        path.display(),
        first_difference(want.as_bytes(), got.as_bytes())
    );
}

fn write_fixed(dir: &TestDir) -> PathBuf {
    let path = dir.join("fixed.img");
    std::fs::write(&path, fixed_image()).unwrap();
    path
}

#[test]
fn inspect_matches_golden() {
    let dir = TestDir::new("cli-inspect");
    let image = write_fixed(&dir);
    let (code, out, err) = command(&["inspect".as_ref(), image.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("s3cret"),
        "an environment value shown without --env:\n{out}"
    );
    golden("inspect.txt", &out);
    let (code, out, err) = command(&["inspect".as_ref(), "--env".as_ref(), image.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  API_TOKEN=s3cret\n"), "{out}");
    golden("inspect-env.txt", &out);
}

#[test]
fn inspect_json_carries_the_numbers() {
    let dir = TestDir::new("cli-inspect-json");
    let image = write_fixed(&dir);
    let (code, out, err) = command(&["inspect".as_ref(), "--json".as_ref(), image.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    let meta = image_meta(&image);
    let img = &meta.image;
    assert_eq!(v["format"]["minor"], dumpfmt::VERSION_MINOR);
    assert_eq!(v["time_ns"], img.time_ns);
    assert_eq!(v["host"], serde_json::Value::Null);
    assert_eq!(v["pid"], img.pid);
    assert_eq!(v["program"]["path"], "/opt/app/bin/app");
    assert_eq!(
        v["argv"],
        serde_json::json!(["./app", "--verbose", "input.txt"])
    );
    let env = v["environment"].as_array().unwrap();
    assert_eq!(env.len(), 3);
    assert_eq!(
        env[1],
        serde_json::json!({"name": "API_TOKEN", "value": null})
    );
    assert_eq!(v["cpu"]["xcr0"], img.cpu.xcr0);
    assert_eq!(v["threads"][1]["tid"], 4243);
    assert_eq!(v["threads"][1]["name"], "worker-1");
    assert_eq!(v["threads"][1]["rip"], 0x40_2345);
    assert_eq!(v["mappings"].as_array().unwrap().len(), img.mappings.len());
    assert_eq!(v["mappings"][1]["stored_bytes"], 8192);
    assert_eq!(v["descriptors"][0]["offset"], 1234);
    assert_eq!(v["descriptors"][4]["kind"], "dup");
    assert_eq!(v["process"]["umask"], 0o022);
    assert_eq!(v["process"]["rlimits"][0]["soft"], 8 << 20);
    assert_eq!(v["posix_timers"][0]["interval_ns"], 1_000_000_000u64);
    assert_eq!(v["credentials"].as_array().unwrap().len(), 2);
    let data: u64 = img.runs.iter().map(|r| r.pages * 4096).sum();
    assert_eq!(v["totals"]["page_data_bytes"], data);
    assert_eq!(v["totals"]["file_bytes"], meta.header.file_len);
    assert_eq!(v["totals"]["runs"], 3);
    assert_eq!(v["capture"]["mode"], "snapshot");
    assert_eq!(v["capture"]["pause_ns"], 1_234_567);
    // The text shows the same numbers.
    let (_, text, _) = command(&["inspect".as_ref(), image.as_os_str()]);
    assert!(
        text.contains(&format!("({data} bytes) in 3 runs")),
        "{text}"
    );
    assert!(text.contains(&format!("({} ns)", img.time_ns)), "{text}");
    assert!(text.contains("stopped 1.235 ms (1234567 ns)"), "{text}");
}

// ---- verify: an image this host can take, and broken copies of it ----

/// The identity of a file on this host, as a dump records it.
fn identity_of(path: &Path) -> FileId<'static> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(path).unwrap();
    let m = f.metadata().unwrap();
    let mut id = [0u8; dumpfmt::BUILD_ID_MAX];
    let n = dumpfmt::build_id(|off, buf| f.read_at(buf, off).unwrap_or(0), &mut id);
    FileId {
        path: Cow::Owned(path.to_string_lossy().into_owned()),
        size: m.size(),
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        dev: m.dev(),
        ino: m.ino(),
        build_id: Cow::Owned(id[..n].to_vec()),
    }
}

/// This kernel's vDSO mappings, as an image records them.
fn kernel_mappings() -> Vec<Mapping<'static>> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().nth(5)?;
            if !matches!(name, "[vdso]" | "[vvar]" | "[vvar_vclock]") {
                return None;
            }
            let (s, e) = l.split_whitespace().next()?.split_once('-')?;
            let (s, e) = (
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(e, 16).ok()?,
            );
            Some(mapping(s, e, PROT_READ, Backing::Kernel, name))
        })
        .collect()
}

/// An image of `exe` mapping `data` (and reopening it as fd 3), whose
/// every check passes on this host, with `cpu` as its CPU features.
fn host_image(dir: &TestDir, exe: &Path, data: &Path, cpu: CpuFeatures) -> Vec<u8> {
    let mut mappings = vec![
        mapping(0x40_0000, 0x40_1000, PROT_READ, Backing::File(0), "exe"),
        mapping(0x50_0000, 0x50_1000, PROT_READ, Backing::File(1), "data"),
        mapping(
            0x60_0000,
            0x60_2000,
            PROT_READ | PROT_WRITE,
            Backing::Anonymous,
            "[heap]",
        ),
    ];
    mappings.extend(kernel_mappings());
    mappings.sort_by_key(|m| m.start);
    let data_id = identity_of(data);
    let nnp = runs_with_no_new_privs();
    let image = Image {
        pid: 1,
        time_ns: 0,
        sequence: 1,
        exe: identity_of(exe),
        cpu,
        files: Cow::Owned(vec![identity_of(exe), data_id.clone()]),
        mappings: Cow::Owned(mappings),
        runs: Cow::Owned(vec![]),
        threads: Cow::Owned(vec![thread(1, b"t", 0)]),
        sigactions: Cow::Owned(vec![]),
        mm: MmFields::default(),
        auxv: Cow::Owned(vec![]),
        settings: Settings {
            signal: 12,
            image: "/x".into(),
            exit_after_dump: false,
            log_level: 0,
        },
        fds: Cow::Owned(vec![Fd {
            fd: 3,
            flags: libc::O_RDONLY,
            cloexec: false,
            kind: FdKind::File {
                path: data_id.path.clone(),
                offset: 0,
                size: data_id.size,
                mtime_sec: data_id.mtime_sec,
                mtime_nsec: data_id.mtime_nsec,
            },
        }]),
        process: ProcessState {
            cwd: Cow::Owned(dir.path().to_string_lossy().into_owned()),
            ..Default::default()
        },
        minor1: Minor1 {
            credentials: Cow::Owned(vec![Credentials {
                no_new_privs: nnp,
                ..Default::default()
            }]),
            posix_timers: Cow::Owned(vec![]),
        },
        minor2: Default::default(),
        minor3: Default::default(),
        minor4: Default::default(),
    };
    let heap: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    dumpfmt::build(
        &image,
        &[(0x60_0000, &heap[..4096]), (0x60_1000, &heap[4096..])],
    )
    .expect("host image builds")
}

/// Whether this process runs with `no_new_privs` (an image without it
/// could not be restored from here).
fn runs_with_no_new_privs() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1'))
}

fn verify(image: &Path) -> (i32, Vec<String>) {
    let (code, out, err) = command(&["verify".as_ref(), image.as_os_str()]);
    if code == 0 {
        assert_eq!(err, "", "a good image");
        assert!(out.ends_with(": good\n"), "{out}");
    }
    let prefix = format!("migrate: verify {}: ", image.display());
    let lines: Vec<String> = err.lines().map(String::from).collect();
    assert!(lines.iter().all(|l| l.starts_with(&prefix)), "{err}");
    (code, lines)
}

struct Fixture {
    dir: TestDir,
    exe: PathBuf,
    data: PathBuf,
}

fn fixture(test: &str) -> Fixture {
    let dir = TestDir::new(test);
    let exe = dir.join("app");
    std::fs::copy("/bin/true", &exe).unwrap();
    let data = dir.join("data.bin");
    std::fs::write(&data, noise(7, 8192)).unwrap();
    Fixture { dir, exe, data }
}

impl Fixture {
    fn image(&self, name: &str, cpu: CpuFeatures) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, host_image(&self.dir, &self.exe, &self.data, cpu)).unwrap();
        path
    }
}

#[test]
fn verify_good_image() {
    let f = fixture("cli-verify-good");
    let image = f.image("good.img", CpuFeatures::default());
    assert_eq!(verify(&image), (0, vec![]));
}

/// Each kind of problem gives the restore's status; every problem is named.
#[test]
fn verify_bad_images() {
    let f = fixture("cli-verify-bad");
    let good = f.image("good.img", CpuFeatures::default());
    let missing = f.dir.join("missing.img");
    let (code, lines) = verify(&missing);
    assert_eq!((code, lines.len()), (66, 1), "{lines:?}");

    // Both runs damaged: two lines, 65.
    let corrupt = copy_image(&good, &f.dir, "corrupt.img");
    let len = std::fs::metadata(&corrupt).unwrap().len();
    let meta = image_meta(&corrupt);
    for r in meta.image.runs.iter() {
        flip_byte(&corrupt, r.file_offset + 100);
    }
    assert!(meta.header.file_len == len);
    let (code, lines) = verify(&corrupt);
    assert_eq!((code, lines.len()), (65, 2), "{lines:?}");

    // Another format version (minor 99): 67.
    let version = copy_image(&good, &f.dir, "version.img");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&version)
        .unwrap()
        .write_at(&99u16.to_le_bytes(), 10)
        .unwrap();
    let (code, lines) = verify(&version);
    assert_eq!((code, lines.len()), (67, 1), "{lines:?}");

    // A CPU with every feature: 70.
    let cpu = f.image(
        "cpu.img",
        CpuFeatures {
            xcr0: !0,
            cpuid: [!0; 5],
        },
    );
    let (code, lines) = verify(&cpu);
    assert_eq!((code, lines.len()), (70, 1), "{lines:?}");

    // The mapped (and reopened) data file changed, and the CPU: both
    // named; the status is the first the restore meets (CPU, 70).
    std::fs::write(&f.data, noise(8, 4096)).unwrap();
    let (code, lines) = verify(&cpu);
    assert_eq!((code, lines.len()), (70, 3), "{lines:?}");
    assert!(
        lines[1].contains("mapped file") && lines[2].contains("(fd 3, open for reading) changed"),
        "{lines:?}"
    );
    let (code, lines) = verify(&good);
    assert_eq!((code, lines.len()), (69, 2), "{lines:?}");

    // The executable gone (it is mapped too), and the data file: 69,
    // four problems.
    std::fs::remove_file(&f.exe).unwrap();
    let (code, lines) = verify(&good);
    assert_eq!((code, lines.len()), (69, 4), "{lines:?}");
    assert!(lines[0].contains("executable"), "{lines:?}");
}

// ---- install ----

/// `make install-files PREFIX=...` (what `make install` does once built):
/// the installed command finds its library and round-trips a program.
#[test]
fn installed_command_round_trips() {
    let dir = TestDir::new("cli-install");
    let prefix = dir.join("prefix");
    let root = crate_dir().join("..");
    let out = Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg("install-files")
        .arg(format!("PREFIX={}", prefix.display()))
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make install-files: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = prefix.join("bin/migrate");
    assert!(prefix.join("lib/libmigrate.so").is_file());
    round_trip(&dir, &installed, &Program::cloop(), 4, false, &[]);
    // It preloads the installed copy, not the build tree's.
    let (_, out, _) = {
        let o = Command::new(&installed)
            .args(["run", "--", "/bin/sh", "-c", "echo $LD_PRELOAD"])
            .env_remove("LD_PRELOAD")
            .output()
            .unwrap();
        (0, String::from_utf8_lossy(&o.stdout).into_owned(), ())
    };
    assert_eq!(
        out.trim(),
        prefix
            .join("lib/libmigrate.so")
            .canonicalize()
            .unwrap()
            .to_str()
            .unwrap()
    );
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = command(&["completions".as_ref(), shell.as_ref()]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(
            out.contains("inspect") && out.contains("restore") && out.contains("timeout"),
            "{shell}: {out}"
        );
    }
}

// ---- tree images (format 1.3) ----

/// `image` (a whole single image) as the image of process `pid`.
fn with_pid(image: &[u8], pid: u32) -> Vec<u8> {
    let (h, mut img) = dumpfmt::decode(image).expect("a good image");
    img.pid = pid;
    dumpfmt::frame(&img, &image[4096..h.meta_offset as usize])
}

/// A tree image of `root` (pid `root_pid`) and a child of it (a copy
/// as pid `root_pid + 1`), the child leading its own process group.
fn tree_of(root: &[u8], root_pid: u32) -> Vec<u8> {
    let member = |pid, ppid, pgid| dumpfmt::Member {
        pid,
        ppid,
        pgid,
        sid: 7,
        offset: 0,
        len: 0,
    };
    let child = with_pid(root, root_pid + 1);
    dumpfmt::frame_tree(
        &dumpfmt::Tree {
            members: Cow::Owned(vec![
                member(root_pid, 7, 7),
                member(root_pid + 1, root_pid, root_pid + 1),
            ]),
        },
        &[root, &child],
    )
}

/// `inspect` of a tree image lists its processes (pid, parent, group,
/// session, program, size) and then shows each one's image as for a
/// single one; `--json` has the same, each image's facts under its
/// process.
#[test]
fn inspect_of_a_tree_image() {
    let dir = TestDir::new("cli-inspect-tree");
    let image = dir.join("tree.img");
    std::fs::write(&image, tree_of(&fixed_image(), 4242)).unwrap();
    let (code, out, err) = command(&["inspect".as_ref(), image.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    golden("inspect-tree.txt", &out);
    let (code, out, err) = command(&["inspect".as_ref(), "--json".as_ref(), image.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    assert_eq!(v["tree"], true);
    assert_eq!(v["format"]["minor"], dumpfmt::VERSION_MINOR);
    let m = v["members"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        (&m[1]["pid"], &m[1]["ppid"], &m[1]["pgid"], &m[1]["sid"]),
        (
            &serde_json::json!(4243),
            &serde_json::json!(4242),
            &serde_json::json!(4243),
            &serde_json::json!(7)
        )
    );
    assert_eq!(m[1]["program"], "/opt/app/bin/app");
    assert_eq!(m[1]["image"]["pid"], 4243);
    assert_eq!(m[0]["section"]["offset"], 4096);
    assert_eq!(
        v["totals"]["file_bytes"],
        std::fs::metadata(&image).unwrap().len()
    );
}

/// `verify` of a tree image checks every process's image as a restore
/// would, naming the process of each problem.
#[test]
fn verify_of_a_tree_image() {
    let f = fixture("cli-verify-tree");
    let single = f.image("single.img", CpuFeatures::default());
    let tree = f.dir.join("tree.img");
    std::fs::write(&tree, tree_of(&std::fs::read(&single).unwrap(), 1)).unwrap();
    assert_eq!(verify(&tree), (0, vec![]));
    // A page of the child's data damaged: 65, naming it.
    let t = dumpfmt::TreeFile::open(&tree).unwrap();
    let at = t.tree.members[1].offset + t.sections[1].image.runs[0].file_offset + 10;
    drop(t);
    flip_byte(&tree, at);
    let (code, lines) = verify(&tree);
    assert_eq!((code, lines.len()), (65, 1), "{lines:?}");
    assert!(lines[0].contains("pid 2"), "{lines:?}");
}
