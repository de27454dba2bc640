//! The records of an image's metadata block.
//!
//! Every collection is a `Cow` so that the dump path (inside a signal
//! handler, no heap) can serialize borrowed slices from a pre-mapped arena,
//! while readers get owned data from the same definitions.

use alloc::borrow::Cow;
use serde::{Deserialize, Serialize};

/// Protection bits of a mapping, as in `/proc/self/maps`.
pub const PROT_READ: u8 = 1;
pub const PROT_WRITE: u8 = 2;
pub const PROT_EXEC: u8 = 4;

/// The whole metadata of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image<'a> {
    /// Process id at the time of the dump.
    pub pid: u32,
    /// Wall-clock time of the dump, nanoseconds since the epoch.
    pub time_ns: u64,
    /// How many dumps this process (and its restored ancestors) made, this one included.
    pub sequence: u64,
    /// The executable (`/proc/self/exe`).
    pub exe: FileId<'a>,
    /// CPU features the saved state may depend on.
    pub cpu: CpuFeatures,
    /// Every file a mapping refers to; `Mapping::file` indexes this.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub files: Cow<'a, [FileId<'a>]>,
    /// Every mapping, sorted by address, without gaps between the records of
    /// one `/proc/self/maps` line.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub mappings: Cow<'a, [Mapping<'a>]>,
    /// Runs of page data, sorted by address.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub runs: Cow<'a, [PageRun]>,
    /// One record per thread; the first is the thread that took the dump.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub threads: Cow<'a, [ThreadState]>,
    /// Signal dispositions, one per signal that is not default.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub sigactions: Cow<'a, [SigAction]>,
    /// Memory-descriptor fields restored with `PR_SET_MM_MAP`.
    pub mm: MmFields,
    /// The auxiliary vector, as `/proc/self/auxv` gives it (pairs of words).
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub auxv: Cow<'a, [u64]>,
    /// The shim's own settings, so that a restored process keeps dumping the same way.
    pub settings: Settings<'a>,
    /// Descriptors beyond stdio (from 1.3, a tree member's own stdio
    /// too), sorted by number.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub fds: Cow<'a, [Fd<'a>]>,
    /// Working directory, umask, limits, timers, pending signals.
    pub process: ProcessState<'a>,
    /// What version 1.1 added. Not part of `Image`'s own encoding: it is
    /// the postcard value that follows `Image` in the metadata block of a
    /// 1.1 image (see FORMAT.md, Versioning), and empty in a 1.0 image.
    #[serde(skip)]
    pub minor1: Minor1<'a>,
    /// What version 1.2 added: the value after `minor1` in a 1.2 image,
    /// empty (default) in older ones.
    #[serde(skip)]
    pub minor2: Minor2<'a>,
    /// What version 1.3 added: the value after `minor2` in a 1.3 image,
    /// empty (default) in older ones.
    #[serde(skip)]
    pub minor3: Minor3<'a>,
    /// What version 1.4 added: the value after `minor3` in a 1.4 image,
    /// empty (default) in older ones.
    #[serde(skip)]
    pub minor4: Minor4<'a>,
}

/// The value a 1.4 image's metadata block carries after [`Minor3`]: the
/// page data's encoding and origin (compression, a parent image, lazy
/// ranges) and the kernel objects 1.4 added. Each capability adds one
/// field of a type of its own, defined in a file of its own.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Minor4<'a> {
    /// How the state was captured: stopped, or from a copy-on-write
    /// snapshot, and the pause (see [`crate::capture`]).
    pub capture: crate::capture::Capture,
    /// How a restore may place the page data: mapped from this file
    /// (lazy) or read (see `placement.rs`).
    pub placement: crate::placement::Placement,
    /// The parent chain of an incremental image (empty: standalone).
    pub incremental: crate::incremental::Incremental<'a>,
    /// How page data is stored: as is, or in compressed chunks (see
    /// `compress.rs`).
    pub compression: crate::compress::Compression<'a>,
    /// Shutdown state, Unix datagram sockets connected inside the process
    /// and their queued messages, epoll entries through closed descriptors
    /// (see [`crate::sockets`]).
    pub sockets: crate::sockets::Sockets<'a>,
    /// Queued signals with their `siginfo` (see [`crate::signals`]).
    pub signals: crate::signals::Signals<'a>,
    /// `prctl` state and `oom_score_adj` of the process and its threads
    /// (see [`crate::procattrs`]).
    pub procattrs: crate::procattrs::ProcAttrs<'a>,
    /// Files, `O_PATH` and procfs descriptors, deleted FIFOs: what their
    /// `Image::fds` records lack (see `files.rs`).
    pub files: crate::files::Files<'a>,
}

/// The value a 1.3 image's metadata block carries after [`Minor2`]: what a
/// process of a tree needs beyond its own single-process state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Minor3<'a> {
    /// Shared memory, socket pairs, memfds and open file descriptions
    /// other members may hold too (see [`crate::shared`]).
    pub shared: crate::shared::Shared<'a>,
    /// Zombie children and this process's stop (see `members.rs`).
    pub members: crate::Members<'a>,
}

/// The value a 1.2 image's metadata block carries after [`Minor1`]: what a
/// restore on another boot, kernel or CPU needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Minor2<'a> {
    /// `CLOCK_MONOTONIC` as the process read it at the dump, in
    /// nanoseconds (a restore on another boot, where it reads less,
    /// continues it in a time namespace rather than let it go back).
    pub monotonic_ns: u64,
    /// `CLOCK_BOOTTIME`, likewise.
    pub boottime_ns: u64,
    /// cpuid words `Image::cpu` lacks, of the dumping CPU:
    /// (0xd, 1).eax, (0x8000_0001).ecx, (0x8000_0001).edx.
    pub cpu_ext: [u32; 3],
    /// The CPU baseline the program was started for (`MIGRATE_CPU`): what
    /// it may use, and so what a restore needs. `None`: the whole CPU it
    /// ran on.
    pub baseline: Option<Baseline<'a>>,
    /// One per thread, in the order of `Image::threads`: the address of the
    /// xsave area (`uc_mcontext.fpregs`) of the signal frame the thread
    /// was dumped in (0: unknown).
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub fpstate: Cow<'a, [u64]>,
    /// The dumping CPU's xsave layout (standard format), one entry per
    /// state component above SSE that XCR0 enables.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub xsave: Cow<'a, [XsaveComponent]>,
}

/// A CPU baseline (`x86-64-v3`, ...): its name and the features it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline<'a> {
    #[serde(deserialize_with = "crate::bounded::string")]
    pub name: Cow<'a, str>,
    pub isa: crate::Isa,
}

/// Where an xsave state component lies in the standard-format area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct XsaveComponent {
    /// Its XCR0 bit.
    pub component: u8,
    pub offset: u32,
    pub size: u32,
}

/// The value a 1.1 image's metadata block carries after [`Image`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Minor1<'a> {
    /// One record per thread, in the order of `Image::threads`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub credentials: Cow<'a, [Credentials]>,
    /// The process's POSIX timers (`timer_create`), sorted by id.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub posix_timers: Cow<'a, [PosixTimer]>,
}

/// A POSIX timer (`timer_create`), as the kernel keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PosixTimer {
    /// The timer's id (what `timer_create` returned).
    pub id: i32,
    /// The clock it counts.
    pub clock: i32,
    /// `sigev_notify`: `SIGEV_SIGNAL` 0, `SIGEV_NONE` 1, or
    /// `SIGEV_THREAD_ID` 4 (a signal to thread `tid`).
    pub notify: i32,
    pub signal: i32,
    /// `sigev_value`, handed to the handler in `si_value`.
    pub value: u64,
    pub tid: i32,
    /// Time left until it expires, 0 when disarmed.
    pub value_ns: u64,
    /// Its period, 0 for a one-shot timer.
    pub interval_ns: u64,
}

/// A thread's capability sets (bit `n` is capability `n`), securebits and
/// `no_new_privs`: a restored thread comes back with exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Credentials {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    /// `PR_GET_SECUREBITS`.
    pub securebits: u32,
    pub no_new_privs: bool,
}

/// One open descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fd<'a> {
    pub fd: i32,
    /// Access mode and status flags (`F_GETFL`).
    pub flags: i32,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
    pub kind: FdKind<'a>,
}

/// What a descriptor refers to, with what it takes to make it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdKind<'a> {
    /// A regular file, reopened by path at `offset`. A file opened
    /// read-only must still have the size and mtime it had.
    File {
        #[serde(deserialize_with = "crate::bounded::string")]
        path: Cow<'a, str>,
        offset: u64,
        size: u64,
        mtime_sec: i64,
        mtime_nsec: i64,
    },
    /// A file without a name (deleted while open, or a memfd): its
    /// contents are here.
    Contents {
        #[serde(deserialize_with = "crate::bounded::string")]
        name: Cow<'a, str>,
        #[serde(deserialize_with = "crate::bounded::seq")]
        data: Cow<'a, [u8]>,
        offset: u64,
        memfd: bool,
        seals: u32,
    },
    Dir {
        #[serde(deserialize_with = "crate::bounded::string")]
        path: Cow<'a, str>,
        offset: u64,
    },
    /// A character device (`/dev/null`, `/dev/tty`, ...), reopened by path.
    Device {
        #[serde(deserialize_with = "crate::bounded::string")]
        path: Cow<'a, str>,
    },
    /// One end of a pipe or FIFO whose ends are all in the process; `id`
    /// pairs the ends. `data` (on the read end) is what was buffered.
    Pipe {
        id: u64,
        #[serde(deserialize_with = "crate::bounded::string")]
        path: Cow<'a, str>,
        write: bool,
        #[serde(deserialize_with = "crate::bounded::seq")]
        data: Cow<'a, [u8]>,
        size: u32,
    },
    /// A pipe end or socket whose peer is another process: it comes back
    /// with its peer gone. `sock_type` is 0 for a pipe; a read end keeps
    /// the bytes that were buffered for it.
    Gone {
        #[serde(deserialize_with = "crate::bounded::string")]
        what: Cow<'a, str>,
        sock_type: i32,
        write: bool,
        #[serde(deserialize_with = "crate::bounded::seq")]
        data: Cow<'a, [u8]>,
    },
    Eventfd {
        count: u64,
        semaphore: bool,
    },
    /// A timer; `value_ns` is what remained until it fires.
    Timerfd {
        clock: i32,
        value_ns: u64,
        interval_ns: u64,
        ticks: u64,
    },
    Signalfd {
        mask: u64,
    },
    Epoll {
        #[serde(deserialize_with = "crate::bounded::seq")]
        entries: Cow<'a, [EpollEntry]>,
    },
    /// A socket not connected to anyone: listening, bound, or fresh.
    Socket {
        family: i32,
        sock_type: i32,
        protocol: i32,
        listening: bool,
        /// `struct sockaddr` bytes from getsockname (empty: unbound).
        #[serde(deserialize_with = "crate::bounded::seq")]
        addr: Cow<'a, [u8]>,
        #[serde(deserialize_with = "crate::bounded::seq")]
        options: Cow<'a, [SockOpt]>,
    },
    /// One end of a Unix socket pair with both ends in the process; `data`
    /// is what was waiting to be read on this end: a stream's bytes, or, for
    /// datagram and seqpacket sockets, each message as a little-endian u32
    /// length followed by its bytes (the same for `Gone` sockets).
    UnixPair {
        id: u64,
        peer: u64,
        sock_type: i32,
        #[serde(deserialize_with = "crate::bounded::seq")]
        data: Cow<'a, [u8]>,
    },
    /// The same open file as descriptor `of` (a lower number): a `dup`.
    /// Made again as a duplicate of it, so both share offset and status
    /// flags, and queued data is not doubled.
    Dup {
        of: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollEntry {
    pub fd: i32,
    pub events: u32,
    pub data: u64,
}

/// An integer socket option (`setsockopt(level, name, &value)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockOpt {
    pub level: i32,
    pub name: i32,
    pub value: i32,
}

/// Process-wide state besides memory and descriptors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProcessState<'a> {
    #[serde(deserialize_with = "crate::bounded::string")]
    pub cwd: Cow<'a, str>,
    pub umask: u32,
    pub personality: u64,
    /// (resource, soft, hard) for every resource.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub rlimits: Cow<'a, [(u32, u64, u64)]>,
    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF: (value, interval) in microseconds.
    pub itimers: [(u64, u64); 3],
    /// Signals pending for the whole process (bit n-1 for signal n).
    pub pending: u64,
}

/// Identity of a file, used to check it did not change before mapping it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId<'a> {
    #[serde(deserialize_with = "crate::bounded::string")]
    pub path: Cow<'a, str>,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub dev: u64,
    pub ino: u64,
    /// ELF `NT_GNU_BUILD_ID`, empty when the file has none.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub build_id: Cow<'a, [u8]>,
}

/// What a mapping is backed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backing {
    /// Anonymous memory (including `[heap]` and `[stack]`).
    Anonymous,
    /// A file, index into `Image::files`; pages not in the image come from it.
    File(u32),
    /// Memory the restore cannot find elsewhere (deleted files, shared anonymous
    /// memory): every page is in the image, except all-zero pages.
    Contents,
    /// A mapping the kernel provides (`[vdso]`, `[vvar]`, `[vvar_vclock]`):
    /// never stored; the restore moves the fresh process's copy to this address.
    Kernel,
    /// The file of descriptor N of `Image::fds` (a memfd or deleted file,
    /// whose contents the descriptor's record holds): mapped from it again,
    /// so the mapping and the descriptor stay one object.
    Fd(i32),
    /// A file the program maps shared and writable, index into
    /// `Image::files` (added in 1.1): its contents are the program's data,
    /// so every page of the mapping is in the image (except all-zero
    /// pages, which are zero) and the restore writes them back into the
    /// file (made again if it is gone) instead of checking it unchanged.
    SharedFile(u32),
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping<'a> {
    pub start: u64,
    pub end: u64,
    /// `PROT_*` bits above.
    pub prot: u8,
    pub shared: bool,
    /// Offset into the file, for file mappings.
    pub offset: u64,
    pub backing: Backing,
    /// The name `/proc/self/maps` shows (`[heap]`, `[stack]`, a path, or empty).
    #[serde(deserialize_with = "crate::bounded::string")]
    pub name: Cow<'a, str>,
}

/// A run of pages stored in the image, contiguous in memory and in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRun {
    /// Address of the first page.
    pub addr: u64,
    /// Number of pages.
    pub pages: u64,
    /// Offset of the data in the image file (page-aligned).
    pub file_offset: u64,
    /// crc32 of the data.
    pub crc: u32,
}

/// The registers the shim saved when it stopped a thread inside its signal
/// handler. The rest of the user context (all general registers, the FPU and
/// xsave state, the signal mask) lies in the signal frame on the thread's stack,
/// which is part of the restored memory; returning from the handler restores it.
///
/// The layout is fixed (`repr(C)`, this order): the shim's assembly saves
/// and loads these fields by offset.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResumeContext {
    pub rbx: u64,
    pub rbp: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rsp: u64,
}

/// What the kernel holds for a thread that memory does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ThreadState {
    pub tid: u32,
    pub context: ResumeContext,
    pub fs_base: u64,
    pub gs_base: u64,
    /// Signal mask in force inside the handler (the interrupted code's mask is in the frame).
    pub sigmask: u64,
    /// `PR_GET_TID_ADDRESS`.
    pub clear_child_tid: u64,
    pub robust_list: u64,
    pub robust_list_len: u64,
    /// rseq area registered by glibc; 0 when none.
    pub rseq_addr: u64,
    pub rseq_len: u32,
    pub rseq_sig: u32,
    /// Offset from the thread pointer where glibc caches the TID (0: unknown).
    pub pthread_tid_offset: u32,
    /// The thread's name (`/proc/self/task/T/comm`), NUL-padded.
    pub name: [u8; 16],
}

/// A signal disposition in the kernel's `struct sigaction` layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigAction {
    pub signal: u8,
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// The fields of `struct prctl_mm_map` (less auxv and exe_fd), in its
/// order and layout, so the restore can hand them to the kernel as they are.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// CPU features recorded at dump time: a restore needs at least these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CpuFeatures {
    /// XCR0: the xsave components enabled.
    pub xcr0: u64,
    /// cpuid(1).ecx, cpuid(1).edx, cpuid(7,0).ebx, cpuid(7,0).ecx, cpuid(7,0).edx.
    pub cpuid: [u32; 5],
}

impl CpuFeatures {
    /// The features in `self` that `other` lacks, as (xcr0 bits, cpuid words).
    pub fn missing_in(&self, other: &CpuFeatures) -> Option<(u64, [u32; 5])> {
        let xcr0 = self.xcr0 & !other.xcr0;
        let mut words = [0u32; 5];
        let mut any = xcr0 != 0;
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.cpuid[i] & !other.cpuid[i];
            any |= *w != 0;
        }
        any.then_some((xcr0, words))
    }
}

/// The shim's settings carried across a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings<'a> {
    pub signal: u8,
    /// Image path pattern (`%p`, `%n`), absolute.
    #[serde(deserialize_with = "crate::bounded::string")]
    pub image: Cow<'a, str>,
    pub exit_after_dump: bool,
    /// 0 error, 1 info, 2 debug.
    pub log_level: u8,
}
