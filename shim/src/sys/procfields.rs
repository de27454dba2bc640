//! Numbers from procfs "Key:  value" text: `/proc/*/status` lines
//! (`Umask:`, `SigPnd:`, `VmLck:`) and `/proc/*/fdinfo/*` fields
//! (`eventfd-count:`, `inotify wd:1 ino:...`), in the radix each file
//! prints them in (decimal, octal, hex without `0x`).
//!
//! Same rules as the rest of `sys`: no heap, no locks, no panics.
//! [`read_line_field`] reads its file through a few hundred bytes of stack,
//! so a thread parked on a small stack of its own can call it.

/// The number at the start of `text` (blanks skipped) in `radix`, up to
/// the first character that is not a digit; `None` without a digit.
pub fn number(text: &[u8], radix: u32) -> Option<u64> {
    let start = text.iter().position(|c| !c.is_ascii_whitespace())?;
    let mut v = 0u64;
    let mut any = false;
    for &c in &text[start..] {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        v = v.wrapping_mul(u64::from(radix)).wrapping_add(u64::from(d));
        any = true;
    }
    any.then_some(v)
}

/// The number after the first `key` anywhere in `text` (an fdinfo line
/// holds several `key:value` fields).
pub fn field(text: &[u8], key: &[u8], radix: u32) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    number(&text[at..], radix)
}

/// The number of the line of `text` that starts with `key` (a
/// `/proc/*/status` line).
pub fn line_field(text: &[u8], key: &[u8], radix: u32) -> Option<u64> {
    text.split(|&c| c == b'\n')
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| number(rest, radix))
}

/// As [`line_field`], for the file at `path` (NUL-terminated), read a
/// little at a time. It is opened with [`super::open_transient`]: a fork
/// may be in flight in another thread.
pub fn read_line_field(path: &[u8], key: &[u8], radix: u32) -> Option<u64> {
    let (fd, claim) = super::open_transient(path, libc::O_RDONLY | libc::O_CLOEXEC).ok()?;
    let mut chunk = [0u8; 256];
    // The start of the current line: enough for a key and its number.
    let mut line = [0u8; 64];
    let mut len = 0usize;
    let mut found = None;
    'read: loop {
        let n = match super::read(fd, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &c in &chunk[..n] {
            if c != b'\n' {
                if let Some(slot) = line.get_mut(len) {
                    *slot = c;
                }
                len += 1;
                continue;
            }
            if let Some(rest) = line[..len.min(line.len())].strip_prefix(key) {
                found = number(rest, radix);
                break 'read;
            }
            len = 0;
        }
    }
    super::close_transient(fd, claim);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &[u8] = b"Name:\tcat\nUmask:\t0022\nPPid:\t7\nPid:\t42\n\
        SigPnd:\t0000000000000200\nShdPnd:\t8000000000000001\nVmLck:\t       12 kB\n";

    #[test]
    fn numbers_in_each_radix() {
        assert_eq!(line_field(STATUS, b"Umask:", 8), Some(0o22));
        assert_eq!(line_field(STATUS, b"SigPnd:", 16), Some(0x200));
        assert_eq!(
            line_field(STATUS, b"ShdPnd:", 16),
            Some(0x8000_0000_0000_0001)
        );
        assert_eq!(line_field(STATUS, b"VmLck:", 10), Some(12));
    }

    #[test]
    fn line_field_takes_the_key_at_a_line_start_only() {
        assert_eq!(line_field(STATUS, b"Pid:", 10), Some(42));
        assert_eq!(field(STATUS, b"Pid:", 10), Some(7), "PPid: holds Pid:");
        assert_eq!(line_field(STATUS, b"Gone:", 10), None);
    }

    #[test]
    fn field_finds_a_key_inside_a_line() {
        let l = b"inotify wd:1f ino:a1b sdev:800001 mask:fff ignored_mask:0";
        assert_eq!(field(l, b"wd:", 16), Some(0x1f));
        assert_eq!(field(l, b"sdev:", 16), Some(0x80_0001));
        assert_eq!(field(l, b"mask:", 16), Some(0xfff));
        assert_eq!(
            field(b"tfd:        5 events:       19", b"tfd:", 10),
            Some(5)
        );
    }

    #[test]
    fn no_digit_is_no_number() {
        assert_eq!(number(b"  kB", 10), None);
        assert_eq!(number(b"", 10), None);
        assert_eq!(line_field(b"Umask:\n", b"Umask:", 8), None);
    }

    #[test]
    fn read_line_field_agrees_with_the_whole_file() {
        let mut buf = [0u8; 8192];
        let n = super::super::read_file(b"/proc/self/status\0", &mut buf).unwrap_or(0);
        assert!(n > 0);
        // Fields no other test thread changes meanwhile.
        for (key, radix) in [(&b"Tgid:"[..], 16), (b"Pid:", 10), (b"PPid:", 8)] {
            let whole = line_field(&buf[..n], key, radix);
            assert!(whole.is_some());
            assert_eq!(read_line_field(b"/proc/self/status\0", key, radix), whole);
        }
        assert_eq!(read_line_field(b"/proc/self/status\0", b"Gone:", 10), None);
    }
}
