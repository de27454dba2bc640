//! A fixed-size line buffer for log messages and paths: no heap, no
//! formatting machinery, usable inside the signal handler.

/// A byte buffer of fixed capacity; writes past the end are dropped.
pub struct Line<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Line<N> {
    pub const fn new() -> Self {
        Line {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn dec(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&tmp[i..])
    }

    pub fn hex(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 18];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        i -= 2;
        tmp[i] = b'0';
        tmp[i + 1] = b'x';
        self.bytes(&tmp[i..])
    }

    /// Milliseconds with one decimal from nanoseconds.
    pub fn ms(&mut self, ns: u64) -> &mut Self {
        self.dec(ns / 1_000_000)
            .bytes(b".")
            .dec(ns / 100_000 % 10)
            .bytes(b" ms")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The contents followed by a NUL, for system calls; None when full.
    pub fn c_str(&mut self) -> Option<&[u8]> {
        if self.len >= N {
            return None;
        }
        self.buf[self.len] = 0;
        Some(&self.buf[..=self.len])
    }

    pub fn is_full(&self) -> bool {
        self.len >= N
    }

    /// Writes the line plus a newline to stderr (see [`emit_parts`]).
    pub fn emit(&mut self) {
        emit_parts(&[self.as_bytes()]);
    }
}

/// Writes `parts` and a newline to stderr in one `writev`, or drops them
/// when stderr is a pipe or socket that cannot take them now: a log line
/// must never stop the world (a parked process behind a full pipe nobody
/// reads would hang with every thread stopped). Uses 200 bytes of stack.
pub fn emit_parts(parts: &[&[u8]]) {
    const MAX: usize = 8;
    let mut iov = [libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    }; MAX + 1];
    let mut n = 0;
    for p in parts.iter().take(MAX) {
        iov[n] = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
        n += 1;
    }
    iov[n] = libc::iovec {
        iov_base: b"\n".as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    n += 1;
    let _ = super::writev_stderr(&iov[..n]);
}

/// Appends an error number's name (or number) to a line.
pub fn errno_name(e: super::Errno) -> &'static str {
    match e.0 {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC (disk full)",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::EDQUOT => "EDQUOT (quota exceeded)",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => "error",
    }
}
