//! ELF build-id extraction without allocation, so the dump path (inside a
//! signal handler) and the restore checks compute it the same way.

/// Longest build-id kept; GNU ld writes 20 bytes (sha1).
pub const BUILD_ID_MAX: usize = 64;

const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;

/// Finds the `NT_GNU_BUILD_ID` note of a 64-bit little-endian ELF file.
///
/// `read_at(offset, buf)` fills `buf` from the file and returns how many
/// bytes it read (fewer at end of file). Returns the id's length in `out`,
/// or 0 when the file is not such an ELF file or has no build-id.
pub fn build_id(
    mut read_at: impl FnMut(u64, &mut [u8]) -> usize,
    out: &mut [u8; BUILD_ID_MAX],
) -> usize {
    let mut ehdr = [0u8; 64];
    if read_at(0, &mut ehdr) < 64 || ehdr[0..4] != *b"\x7fELF" || ehdr[4] != 2 || ehdr[5] != 1 {
        return 0;
    }
    let phoff = u64_at(&ehdr, 32);
    let phentsize = u64::from(u16_at(&ehdr, 54));
    let phnum = u64::from(u16_at(&ehdr, 56));
    if phentsize < 56 {
        return 0;
    }
    for i in 0..phnum.min(256) {
        let mut ph = [0u8; 56];
        let Some(at) = phoff.checked_add(i * phentsize) else {
            return 0;
        };
        if read_at(at, &mut ph) < 56 || u32_at(&ph, 0) != PT_NOTE {
            continue;
        }
        let (off, size) = (u64_at(&ph, 8), u64_at(&ph, 32));
        let mut notes = [0u8; 512];
        let want = (size.min(notes.len() as u64)) as usize;
        let got = read_at(off, &mut notes[..want]);
        if let Some(n) = find_note(&notes[..got], out) {
            return n;
        }
    }
    0
}

fn find_note(mut notes: &[u8], out: &mut [u8; BUILD_ID_MAX]) -> Option<usize> {
    let align4 = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0) as usize;
        let descsz = u32_at(notes, 4) as usize;
        let kind = u32_at(notes, 8);
        let name_end = 12 + align4(namesz);
        let desc = notes.get(name_end..name_end + descsz)?;
        if kind == NT_GNU_BUILD_ID && notes.get(12..12 + namesz) == Some(b"GNU\0") {
            let n = desc.len().min(BUILD_ID_MAX);
            out[..n].copy_from_slice(&desc[..n]);
            return Some(n);
        }
        notes = notes.get(name_end + align4(descsz)..)?;
    }
    None
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of_file(path: &str) -> Vec<u8> {
        let data = std::fs::read(path).unwrap();
        let mut out = [0u8; BUILD_ID_MAX];
        let n = build_id(
            |off, buf| {
                let off = off as usize;
                if off >= data.len() {
                    return 0;
                }
                let n = buf.len().min(data.len() - off);
                buf[..n].copy_from_slice(&data[off..off + n]);
                n
            },
            &mut out,
        );
        out[..n].to_vec()
    }

    #[test]
    fn libc_has_a_build_id() {
        let id = of_file("/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert_eq!(id.len(), 20);
    }

    #[test]
    fn not_elf() {
        assert!(of_file("/etc/hostname").is_empty() || of_file("/etc/passwd").is_empty());
    }

    #[test]
    fn garbage_never_panics() {
        let mut out = [0u8; BUILD_ID_MAX];
        let mut seed = 1u64;
        for _ in 0..2000 {
            let mut data = vec![0u8; 700];
            for b in data.iter_mut() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (seed >> 56) as u8;
            }
            data[..4].copy_from_slice(b"\x7fELF");
            data[4] = 2;
            data[5] = 1;
            build_id(
                |off, buf| {
                    let Ok(off) = usize::try_from(off) else {
                        return 0;
                    };
                    if off >= data.len() {
                        return 0;
                    }
                    let n = buf.len().min(data.len() - off);
                    buf[..n].copy_from_slice(&data[off..off + n]);
                    n
                },
                &mut out,
            );
        }
    }
}
