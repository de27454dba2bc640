//! Sequences and strings decoded within a memory limit stated in advance.
//!
//! postcard gives a sequence's element count before its elements, and a
//! record in memory can be many times the size of its encoding (an `Fd`
//! takes 80 bytes and can be encoded in 5). Left to serde, a `Vec` grows by
//! doubling as elements arrive, so memory depends on luck as well as on the
//! input. Here every sequence and string of an [`Image`](crate::Image) is
//! decoded by [`seq`] or [`string`], which, before allocating anything:
//!
//! 1. refuse a count above the most a reader accepts of that kind
//!    ([`Element::MAX_COUNT`]: threads and descriptors), with
//!    [`Error::TooMany`];
//! 2. claim `count × Element::MIN_ENCODED_LEN` bytes of the metadata block
//!    (the fewest bytes those elements can be encoded in). Claims of
//!    different sequences cover different bytes (a record's minimum counts
//!    one byte for each sequence or string inside it, whose elements make
//!    their own claims), so the claims of a well-formed block never exceed
//!    its length; a count whose claim does not fit in the bytes not yet
//!    claimed is refused with [`Error::PastEnd`];
//! 3. allocate exactly `count` elements.
//!
//! So decoding allocates at most [`DECODED_BYTES_PER_META_BYTE`] bytes for
//! each byte of metadata (the largest `size_of / MIN_ENCODED_LEN` of any
//! element), whatever the input, and never refuses a well-formed block.
//!
//! The bytes left to claim live in a thread-local set by [`within_budget`]:
//! serde gives a `Deserialize` impl no other way to learn where it is in
//! the input. Outside `within_budget` (postcard used directly, as tests do)
//! nothing is claimed; the count limits still hold.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use crate::Error;
use crate::records::{
    Credentials, EpollEntry, Fd, FileId, Mapping, PageRun, PosixTimer, SigAction, SockOpt,
    ThreadState, XsaveComponent,
};

/// The most threads an image may hold: the shim stops at this many
/// (`MAX_THREADS` in its dump path).
pub const MAX_THREADS: usize = 16384;
/// The most descriptors an image may hold: the kernel's default
/// `fs.nr_open`, above which no process opens descriptors unless an
/// administrator raised it.
pub const MAX_FDS: usize = 1 << 20;

/// A record that appears in sequences of the metadata.
pub(crate) trait Element: Sized {
    /// What a sequence of them is called in an error message.
    const WHAT: &'static str;
    /// The fewest bytes postcard encodes one in: varints of one byte,
    /// strings and sequences empty (their length byte only), the shortest
    /// enum variant. Tests check each against a real encoding.
    const MIN_ENCODED_LEN: usize;
    /// The most one image may hold.
    const MAX_COUNT: usize = usize::MAX;
}

macro_rules! element {
    ($t:ty, $what:literal, $min:literal $(, $max:expr)?) => {
        impl Element for $t {
            const WHAT: &'static str = $what;
            const MIN_ENCODED_LEN: usize = $min;
            $(const MAX_COUNT: usize = $max;)?
        }
    };
}

element!(FileId<'_>, "files", 7);
element!(Mapping<'_>, "mappings", 7);
element!(PageRun, "page runs", 4);
element!(ThreadState, "threads", 35, MAX_THREADS);
element!(SigAction, "signal actions", 5);
element!(u64, "auxv words", 1);
element!(Fd<'_>, "descriptors", 5, MAX_FDS);
element!(EpollEntry, "epoll entries", 3);
element!(SockOpt, "socket options", 3);
element!((u32, u64, u64), "resource limits", 3);
element!(u8, "bytes", 1);
element!(Credentials, "credential records", 7, MAX_THREADS);
element!(PosixTimer, "POSIX timers", 8);
element!(XsaveComponent, "xsave components", 3, 64);
element!(
    crate::tree::Member,
    "tree members",
    6,
    crate::tree::MAX_MEMBERS
);
element!(crate::SharedMemory, "shared memory records", 5);
element!(crate::SharedFd, "shared descriptor records", 4, MAX_FDS);
element!(crate::Zombie, "zombie children", 5);
element!(
    crate::Ancestor<'_>,
    "ancestors",
    3,
    crate::incremental::MAX_ANCESTORS
);
element!(crate::InheritedRun, "inherited runs", 4);
element!(crate::compress::Chunk, "compressed chunks", 6);
element!(
    crate::ThreadAttrs,
    "thread attribute records",
    2,
    MAX_THREADS
);
element!(crate::MappingAttrs, "mapping attribute records", 3);

/// Bytes in memory per element for each byte it claims, rounded up.
const fn expansion<T: Element>() -> usize {
    size_of::<T>().div_ceil(T::MIN_ENCODED_LEN)
}

const fn max(values: &[usize]) -> usize {
    let mut most = 0;
    let mut i = 0;
    while i < values.len() {
        if values[i] > most {
            most = values[i];
        }
        i += 1;
    }
    most
}

/// Decoding `n` bytes of metadata allocates at most this many times `n`
/// bytes (strings take one byte per byte; every other allocation is a
/// sequence's exact buffer).
pub const DECODED_BYTES_PER_META_BYTE: usize = max(&[
    expansion::<FileId<'_>>(),
    expansion::<Mapping<'_>>(),
    expansion::<PageRun>(),
    expansion::<ThreadState>(),
    expansion::<SigAction>(),
    expansion::<u64>(),
    expansion::<Fd<'_>>(),
    expansion::<EpollEntry>(),
    expansion::<SockOpt>(),
    expansion::<(u32, u64, u64)>(),
    expansion::<u8>(),
    expansion::<Credentials>(),
    expansion::<PosixTimer>(),
    expansion::<XsaveComponent>(),
    expansion::<crate::tree::Member>(),
    expansion::<crate::SharedMemory>(),
    expansion::<crate::SharedFd>(),
    expansion::<crate::Zombie>(),
    expansion::<crate::Ancestor<'_>>(),
    expansion::<crate::InheritedRun>(),
    expansion::<crate::compress::Chunk>(),
    expansion::<crate::QueuedSignal>(),
    expansion::<crate::FileLock>(),
    expansion::<crate::ThreadAttrs>(),
    expansion::<crate::MappingAttrs>(),
    expansion::<crate::files::FileRun>(),
    1, // strings
]);

std::thread_local! {
    /// Metadata bytes not yet claimed by a sequence or string; `None`
    /// outside `within_budget`.
    static UNCLAIMED: Cell<Option<usize>> = const { Cell::new(None) };
    /// Why a limit stopped decoding: postcard keeps no message of a
    /// `Deserialize` impl's error.
    static REFUSAL: Cell<Option<Error>> = const { Cell::new(None) };
}

/// Runs `decode` over a metadata block of `meta_len` bytes with the claims
/// above enforced; a limit that stopped it is returned as its own error,
/// any other failure through `other`.
pub(crate) fn within_budget<T, E>(
    meta_len: usize,
    decode: impl FnOnce() -> Result<T, E>,
    other: impl FnOnce(E) -> Error,
) -> Result<T, Error> {
    let outer = UNCLAIMED.replace(Some(meta_len));
    REFUSAL.set(None);
    let result = decode();
    UNCLAIMED.set(outer);
    let refusal = REFUSAL.take();
    result.map_err(|e| refusal.unwrap_or_else(|| other(e)))
}

/// Checks a count of `T` read from the metadata, before it is allocated;
/// `None` is a count postcard already found larger than the bytes left.
fn claim<T: Element, E: de::Error>(count: Option<usize>) -> Result<(), E> {
    let refusal = match count {
        Some(count) if count > T::MAX_COUNT => Error::TooMany {
            what: T::WHAT,
            count: count as u64,
            max: T::MAX_COUNT as u64,
        },
        Some(count) => {
            let Some(left) = UNCLAIMED.get() else {
                return Ok(());
            };
            match left.checked_sub(count.saturating_mul(T::MIN_ENCODED_LEN)) {
                Some(rest) => {
                    UNCLAIMED.set(Some(rest));
                    return Ok(());
                }
                None => Error::PastEnd { what: T::WHAT },
            }
        }
        None => Error::PastEnd { what: T::WHAT },
    };
    let message = refusal.to_string();
    REFUSAL.set(Some(refusal));
    Err(E::custom(message))
}

/// `deserialize_with` for every `Cow<[T]>` field.
pub(crate) fn seq<'de, 'a, D, T>(deserializer: D) -> Result<Cow<'a, [T]>, D::Error>
where
    D: Deserializer<'de>,
    T: Element + Deserialize<'de> + Clone,
{
    struct Exact<T>(PhantomData<T>);

    impl<'de, T: Element + Deserialize<'de>> Visitor<'de> for Exact<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a sequence of {}", T::WHAT)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let count = seq.size_hint();
            claim::<T, A::Error>(count)?;
            let mut out = Vec::with_capacity(count.unwrap_or(0));
            while let Some(element) = seq.next_element()? {
                out.push(element);
            }
            Ok(out)
        }
    }

    deserializer
        .deserialize_seq(Exact(PhantomData))
        .map(Cow::Owned)
}

/// `deserialize_with` for every `Cow<str>` field.
pub(crate) fn string<'de, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Cow<'a, str>, D::Error> {
    struct Owned;

    impl Visitor<'_> for Owned {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
            claim::<u8, E>(Some(s.len()))?;
            Ok(s.into())
        }
    }

    deserializer.deserialize_string(Owned).map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Backing, FdKind, ResumeContext};
    use serde::Serialize;

    fn encoded_len<T: Serialize>(value: &T) -> usize {
        postcard::to_allocvec(value).unwrap().len()
    }

    /// Each minimum is the length of a real encoding, and no encoding is
    /// shorter: a larger value would refuse good images, a smaller one
    /// would loosen the memory limit.
    #[test]
    fn min_encoded_len_is_the_shortest_encoding() {
        let file = FileId {
            path: "".into(),
            size: 0,
            mtime_sec: 0,
            mtime_nsec: 0,
            dev: 0,
            ino: 0,
            build_id: Cow::Borrowed(&[]),
        };
        assert_eq!(encoded_len(&file), FileId::MIN_ENCODED_LEN);
        for backing in [
            Backing::Anonymous,
            Backing::File(0),
            Backing::Contents,
            Backing::Kernel,
            Backing::Fd(0),
            Backing::SharedFile(0),
        ] {
            let m = Mapping {
                start: 0,
                end: 0,
                prot: 0,
                shared: false,
                offset: 0,
                backing,
                name: "".into(),
            };
            assert!(encoded_len(&m) >= Mapping::MIN_ENCODED_LEN);
            if backing == Backing::Anonymous {
                assert_eq!(encoded_len(&m), Mapping::MIN_ENCODED_LEN);
            }
        }
        let run = PageRun {
            addr: 0,
            pages: 0,
            file_offset: 0,
            crc: 0,
        };
        assert_eq!(encoded_len(&run), PageRun::MIN_ENCODED_LEN);
        let thread = ThreadState {
            context: ResumeContext::default(),
            ..ThreadState::default()
        };
        assert_eq!(encoded_len(&thread), ThreadState::MIN_ENCODED_LEN);
        let act = SigAction {
            signal: 0,
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        assert_eq!(encoded_len(&act), SigAction::MIN_ENCODED_LEN);
        assert_eq!(encoded_len(&0u64), u64::MIN_ENCODED_LEN);
        assert_eq!(encoded_len(&0u8), u8::MIN_ENCODED_LEN);
        let e = EpollEntry {
            fd: 0,
            events: 0,
            data: 0,
        };
        assert_eq!(encoded_len(&e), EpollEntry::MIN_ENCODED_LEN);
        let o = SockOpt {
            level: 0,
            name: 0,
            value: 0,
        };
        assert_eq!(encoded_len(&o), SockOpt::MIN_ENCODED_LEN);
        assert_eq!(
            encoded_len(&Credentials::default()),
            Credentials::MIN_ENCODED_LEN
        );
        assert_eq!(
            encoded_len(&PosixTimer::default()),
            PosixTimer::MIN_ENCODED_LEN
        );
        assert_eq!(
            encoded_len(&crate::Zombie::default()),
            crate::Zombie::MIN_ENCODED_LEN
        );
        assert_eq!(
            encoded_len(&crate::compress::Chunk::default()),
            crate::compress::Chunk::MIN_ENCODED_LEN
        );
        assert_eq!(
            encoded_len(&crate::ThreadAttrs::default()),
            crate::ThreadAttrs::MIN_ENCODED_LEN
        );
        assert_eq!(
            encoded_len(&crate::MappingAttrs::default()),
            crate::MappingAttrs::MIN_ENCODED_LEN
        );
        assert_eq!(
            encoded_len(&(0u32, 0u64, 0u64)),
            <(u32, u64, u64)>::MIN_ENCODED_LEN
        );
        let m = crate::SharedMemory {
            start: 0,
            dev: 0,
            ino: 0,
            offset: 0,
            pages_in: 0,
        };
        assert_eq!(encoded_len(&m), crate::SharedMemory::MIN_ENCODED_LEN);
        for key in [
            crate::SharedKey::Object { dev: 0, ino: 0 },
            crate::SharedKey::SocketEnd { ino: 0, peer: 0 },
            crate::SharedKey::Description { pid: 0, fd: 0 },
        ] {
            let f = crate::SharedFd { fd: 0, key };
            assert_eq!(encoded_len(&f), crate::SharedFd::MIN_ENCODED_LEN);
        }

        let kinds = [
            FdKind::File {
                path: "".into(),
                offset: 0,
                size: 0,
                mtime_sec: 0,
                mtime_nsec: 0,
            },
            FdKind::Contents {
                name: "".into(),
                data: Cow::Borrowed(&[]),
                offset: 0,
                memfd: false,
                seals: 0,
            },
            FdKind::Dir {
                path: "".into(),
                offset: 0,
            },
            FdKind::Device { path: "".into() },
            FdKind::Pipe {
                id: 0,
                path: "".into(),
                write: false,
                data: Cow::Borrowed(&[]),
                size: 0,
            },
            FdKind::Gone {
                what: "".into(),
                sock_type: 0,
                write: false,
                data: Cow::Borrowed(&[]),
            },
            FdKind::Eventfd {
                count: 0,
                semaphore: false,
            },
            FdKind::Timerfd {
                clock: 0,
                value_ns: 0,
                interval_ns: 0,
                ticks: 0,
            },
            FdKind::Signalfd { mask: 0 },
            FdKind::Epoll {
                entries: Cow::Borrowed(&[]),
            },
            FdKind::Socket {
                family: 0,
                sock_type: 0,
                protocol: 0,
                listening: false,
                addr: Cow::Borrowed(&[]),
                options: Cow::Borrowed(&[]),
            },
            FdKind::UnixPair {
                id: 0,
                peer: 0,
                sock_type: 0,
                data: Cow::Borrowed(&[]),
            },
            FdKind::Dup { of: 0 },
        ];
        let shortest = kinds
            .into_iter()
            .map(|kind| {
                encoded_len(&Fd {
                    fd: 0,
                    flags: 0,
                    cloexec: false,
                    kind,
                })
            })
            .min();
        assert_eq!(shortest, Some(Fd::MIN_ENCODED_LEN));
    }

    /// FORMAT.md states this factor; change both together.
    #[test]
    fn decoded_bytes_per_meta_byte_is_as_documented() {
        assert_eq!(DECODED_BYTES_PER_META_BYTE, 16);
        assert_eq!(expansion::<Fd<'_>>(), 16);
    }
}
