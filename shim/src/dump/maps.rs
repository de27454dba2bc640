//! Parsing `/proc/self/maps` lines without allocation.

/// One line of `/proc/self/maps`.
#[derive(Clone, Copy)]
pub struct MapLine<'a> {
    pub start: u64,
    pub end: u64,
    pub prot: u8,
    pub shared: bool,
    pub offset: u64,
    /// Device of the file, as `makedev(major, minor)`.
    pub dev: u64,
    pub inode: u64,
    /// Path or bracketed name; empty for anonymous memory.
    pub name: &'a [u8],
}

impl MapLine<'_> {
    pub fn is_deleted(&self) -> bool {
        self.name.ends_with(b" (deleted)")
    }

    pub fn is_file(&self) -> bool {
        self.name.first() == Some(&b'/') && self.inode != 0
    }

    /// A mapping the kernel provides and a restore moves rather than rebuilds.
    pub fn is_kernel(&self) -> bool {
        matches!(self.name, b"[vdso]" | b"[vvar]" | b"[vvar_vclock]")
    }
}

/// Splits off the next space-separated field.
fn field(s: &[u8]) -> (&[u8], &[u8]) {
    let s = trim_start(s);
    let end = s.iter().position(|&c| c == b' ').unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|&c| c != b' ').unwrap_or(s.len());
    &s[n..]
}

pub fn parse_line(line: &[u8]) -> Option<MapLine<'_>> {
    let (range, rest) = field(line);
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = crate::sys::parse_hex(&range[..dash])?;
    let end = crate::sys::parse_hex(&range[dash + 1..])?;
    let (perms, rest) = field(rest);
    if perms.len() != 4 {
        return None;
    }
    let mut prot = 0;
    if perms[0] == b'r' {
        prot |= dumpfmt::PROT_READ;
    }
    if perms[1] == b'w' {
        prot |= dumpfmt::PROT_WRITE;
    }
    if perms[2] == b'x' {
        prot |= dumpfmt::PROT_EXEC;
    }
    let shared = perms[3] == b's';
    let (offset, rest) = field(rest);
    let offset = crate::sys::parse_hex(offset)?;
    let (dev, rest) = field(rest);
    let colon = dev.iter().position(|&c| c == b':')?;
    let dev = libc::makedev(
        crate::sys::parse_hex(&dev[..colon])? as u32,
        crate::sys::parse_hex(&dev[colon + 1..])? as u32,
    );
    let (inode, rest) = field(rest);
    let inode = crate::sys::parse_dec(inode)?;
    let name = trim_start(rest);
    Some(MapLine {
        start,
        end,
        prot,
        shared,
        offset,
        dev,
        inode,
        name,
    })
}

/// Iterates over the lines of a buffer.
pub fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    buf.split(|&c| c == b'\n').filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_anon_lines() {
        let l = parse_line(b"7fb271dcf000-7fb271dd9000 r--p 00027000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2").unwrap();
        assert_eq!(
            (l.start, l.end, l.offset, l.inode),
            (0x7fb271dcf000, 0x7fb271dd9000, 0x27000, 325843)
        );
        assert_eq!(l.prot, dumpfmt::PROT_READ);
        assert!(l.is_file() && !l.shared);
        let l = parse_line(
            b"7ffee0a70000-7ffee0a91000 rw-p 00000000 00:00 0                          [stack]",
        )
        .unwrap();
        assert_eq!(l.name, b"[stack]");
        assert!(!l.is_file());
        let l = parse_line(b"7f0000000000-7f0000001000 ---p 00000000 00:00 0 ").unwrap();
        assert_eq!(l.name, b"");
        assert_eq!(l.prot, 0);
        let l =
            parse_line(b"7f0000000000-7f0000001000 rw-s 00000000 00:01 1234 /memfd:x (deleted)")
                .unwrap();
        assert!(l.shared && l.is_deleted());
    }
}
