//! Descriptor state that the `Fd` records of 1.3 cannot hold (added in
//! 1.4, the `sockets` field of [`crate::Minor4`]): the shutdown state of
//! Unix sockets, datagram sockets connected to an address (Unix ones to
//! another socket of the process, UDP ones) and the messages waiting on
//! bound ones, TCP connections with both ends in the process, and epoll
//! entries whose file
//! is open only through another descriptor than the one they were added
//! with. Every descriptor named here is one of `Image::fds`.

use alloc::borrow::Cow;
use serde::{Deserialize, Serialize};

/// The descriptor state added in 1.4 (empty: none of it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sockets<'a> {
    /// Unix sockets (`FdKind::UnixPair` or `FdKind::Socket`) that were
    /// shut down, and ends of `tcp` that shut down a direction themselves
    /// (not reads shut down by the other end's `SHUT_WR`), sorted by `fd`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub shutdowns: Cow<'a, [Shutdown]>,
    /// Datagram sockets (`FdKind::Socket`) connected to an address: Unix
    /// ones to a socket of the process whose own peer is not them (a client
    /// of a bound server), UDP ones to any; sorted by `fd`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub connects: Cow<'a, [Connect<'a>]>,
    /// The messages waiting on bound datagram sockets (`FdKind::Socket`:
    /// Unix, UDP), sorted by `fd`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub queues: Cow<'a, [Queue<'a>]>,
    /// Epoll entries whose file is not (or no longer) the one open at the
    /// descriptor number they were added with, sorted by (`epoll`, `entry`).
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub epoll_aliases: Cow<'a, [EpollAlias]>,
    /// Both ends of each TCP connection the process holds both ends of
    /// (recorded as `FdKind::Socket` without an address), sorted by `fd`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub tcp: Cow<'a, [TcpEnd<'a>]>,
}

/// One end of a TCP connection whose other end is in the process too: its
/// address, its peer's (each a `struct sockaddr`), and the bytes waiting
/// to be read on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpEnd<'a> {
    pub fd: i32,
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub local: Cow<'a, [u8]>,
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub peer: Cow<'a, [u8]>,
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub data: Cow<'a, [u8]>,
}

/// `sk_shutdown` bits: reads shut down (`SHUT_RD`), writes (`SHUT_WR`).
pub const SHUT_READS: u8 = 1;
pub const SHUT_WRITES: u8 = 2;

/// A socket's shutdown state: [`SHUT_READS`] and/or [`SHUT_WRITES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    pub fd: i32,
    pub how: u8,
}

/// A datagram socket connected to `addr` (a `struct sockaddr`), the name
/// of another socket of the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connect<'a> {
    pub fd: i32,
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub addr: Cow<'a, [u8]>,
}

/// The messages waiting on datagram socket `fd`, oldest first: each a
/// little-endian u32 length, a little-endian u16 address length, the
/// address of the socket that sent it (a `struct sockaddr`; none for a
/// Unix socket without a name), and its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue<'a> {
    pub fd: i32,
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub messages: Cow<'a, [u8]>,
}

/// Entry `entry` (an index into the `entries` of epoll descriptor
/// `epoll`) watches the file open at descriptor `file`: its own number
/// (`EpollEntry::fd`) was closed since, or holds another file now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollAlias {
    pub epoll: i32,
    pub entry: u32,
    pub file: i32,
}

/// The messages of a [`Queue`]: (sender's address, bytes) each.
pub fn messages(framed: &[u8]) -> impl Iterator<Item = Result<(&[u8], &[u8]), &'static str>> {
    let mut rest = framed;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((head, tail)) = rest.split_first_chunk::<6>() else {
            rest = &[];
            return Some(Err("a queued message's header is cut short"));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let addr_len = u16::from_le_bytes([head[4], head[5]]) as usize;
        let Some((from, bytes)) = tail
            .get(..addr_len)
            .zip(tail.get(addr_len..).and_then(|t| t.get(..len)))
        else {
            rest = &[];
            return Some(Err("a queued message runs past its record"));
        };
        rest = &tail[addr_len + len..];
        Some(Ok((from, bytes)))
    })
}

impl Sockets<'_> {
    /// Every descriptor named is one of `fds` (sorted by number, with
    /// whether it is an epoll set and how many entries it has), lists are
    /// sorted, and every queue's messages are whole.
    pub fn check(&self, fds: &[(i32, Option<usize>)]) -> Result<(), alloc::string::String> {
        use alloc::format;
        let find = |fd: i32| fds.binary_search_by_key(&fd, |f| f.0).ok().map(|i| fds[i]);
        let has = |fd: i32, what: &str| {
            find(fd)
                .map(|_| ())
                .ok_or_else(|| format!("{what} names fd {fd}, which the image does not hold"))
        };
        let sorted = |keys: &mut dyn Iterator<Item = (i32, u32)>, what: &str| {
            let mut prev = None;
            for k in keys {
                if prev.is_some_and(|p| p >= k) {
                    return Err(format!("{what} are repeated or out of order"));
                }
                prev = Some(k);
            }
            Ok(())
        };
        sorted(&mut self.shutdowns.iter().map(|s| (s.fd, 0)), "shutdowns")?;
        sorted(&mut self.connects.iter().map(|c| (c.fd, 0)), "connects")?;
        sorted(&mut self.queues.iter().map(|q| (q.fd, 0)), "queues")?;
        sorted(
            &mut self.epoll_aliases.iter().map(|a| (a.epoll, a.entry)),
            "epoll aliases",
        )?;
        for s in self.shutdowns.iter() {
            has(s.fd, "a shutdown")?;
            if s.how == 0 || s.how & !(SHUT_READS | SHUT_WRITES) != 0 {
                return Err(format!("fd {}: shutdown state {} is not one", s.fd, s.how));
            }
        }
        for c in self.connects.iter() {
            has(c.fd, "a connect")?;
            if c.addr.len() < 2 {
                return Err(format!("fd {}: connected to an empty address", c.fd));
            }
        }
        for q in self.queues.iter() {
            has(q.fd, "a queue")?;
            for m in messages(&q.messages) {
                m.map_err(|e| format!("fd {}: {e}", q.fd))?;
            }
        }
        sorted(&mut self.tcp.iter().map(|t| (t.fd, 0)), "TCP ends")?;
        for t in self.tcp.iter() {
            has(t.fd, "a TCP end")?;
            let peers = self
                .tcp
                .iter()
                .filter(|o| o.local == t.peer && o.peer == t.local)
                .count();
            if peers != 1 || t.local.len() < 2 {
                return Err(format!(
                    "fd {}: a TCP end without exactly one other end",
                    t.fd
                ));
            }
        }
        for a in self.epoll_aliases.iter() {
            match find(a.epoll) {
                Some((_, Some(n))) if (a.entry as usize) < n => {}
                _ => {
                    return Err(format!(
                        "an epoll alias names entry {} of fd {}, which is no such entry",
                        a.entry, a.epoll
                    ));
                }
            }
            has(a.file, "an epoll alias")?;
        }
        Ok(())
    }
}

impl crate::bounded::Element for Shutdown {
    const WHAT: &'static str = "socket shutdowns";
    const MIN_ENCODED_LEN: usize = 2;
    const MAX_COUNT: usize = crate::MAX_FDS;
}

impl crate::bounded::Element for Connect<'_> {
    const WHAT: &'static str = "socket connects";
    const MIN_ENCODED_LEN: usize = 2;
    const MAX_COUNT: usize = crate::MAX_FDS;
}

impl crate::bounded::Element for Queue<'_> {
    const WHAT: &'static str = "socket queues";
    const MIN_ENCODED_LEN: usize = 2;
    const MAX_COUNT: usize = crate::MAX_FDS;
}

impl crate::bounded::Element for EpollAlias {
    const WHAT: &'static str = "epoll aliases";
    const MIN_ENCODED_LEN: usize = 3;
}

impl crate::bounded::Element for TcpEnd<'_> {
    const WHAT: &'static str = "TCP ends";
    const MIN_ENCODED_LEN: usize = 4;
    const MAX_COUNT: usize = crate::MAX_FDS;
}
