//! The vDSO as an ELF image: the functions it exports, read from its bytes.
//!
//! Rules of this module:
//! - Pure code over bytes that may come from an image, that is from another
//!   kernel or from a damaged file: every offset, length and count is
//!   checked before use, nothing indexes out of bounds, any input gives a
//!   result or an error, never a panic. No unsafe.
//! - Runs before teardown only (it allocates); never on the dump path.
//!
//! The vDSO is mapped as its whole ELF file, so file offsets and offsets
//! into the mapping are the same; its section headers are part of it.
//! Symbols are read from `.dynsym` (with their versions from
//! `.gnu.version` and `.gnu.version_d`), and their values turned into
//! offsets from the start of the mapping (the first `PT_LOAD`'s address).

/// An exported function: `name@version` at `offset` from the mapping's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// The version it is defined with (`LINUX_2.6`), empty if none.
    pub version: String,
    pub offset: u64,
    /// Its length in bytes (0: unknown).
    pub size: u64,
}

const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERDEF: u32 = 0x6fff_fffd;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;
const PT_LOAD: u32 = 1;
const STT_FUNC: u8 = 2;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const SHN_LORESERVE: u16 = 0xff00;

/// `N` bytes at `at + plus`, when they lie in `b`.
fn bytes_at<const N: usize>(b: &[u8], at: u64, plus: u64) -> Option<[u8; N]> {
    let at = usize::try_from(at.checked_add(plus)?).ok()?;
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], at: u64, plus: u64) -> Option<u16> {
    bytes_at(b, at, plus).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: u64, plus: u64) -> Option<u32> {
    bytes_at(b, at, plus).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: u64, plus: u64) -> Option<u64> {
    bytes_at(b, at, plus).map(u64::from_le_bytes)
}

/// The NUL-terminated string at `at` in the string table `tab`.
fn string(b: &[u8], tab: &Section, at: u32) -> Option<String> {
    if u64::from(at) >= tab.size {
        return None;
    }
    let start = usize::try_from(tab.offset.checked_add(u64::from(at))?).ok()?;
    let end = usize::try_from(tab.offset.checked_add(tab.size)?).ok()?;
    let s = b.get(start..end.min(b.len()))?;
    let n = s.iter().position(|&c| c == 0)?;
    String::from_utf8(s[..n].to_vec()).ok()
}

#[derive(Clone, Copy)]
struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    entsize: u64,
}

fn section(b: &[u8], shoff: u64, i: u64) -> Option<Section> {
    let at = shoff.checked_add(i.checked_mul(64)?)?;
    let s = Section {
        kind: u32_at(b, at, 4)?,
        offset: u64_at(b, at, 24)?,
        size: u64_at(b, at, 32)?,
        link: u32_at(b, at, 40)?,
        entsize: u64_at(b, at, 56)?,
    };
    // The whole section lies in the bytes.
    (s.offset.checked_add(s.size)? <= b.len() as u64).then_some(s)
}

/// The functions an x86-64 vDSO exports (global or weak, defined), in
/// symbol table order.
pub fn functions(b: &[u8]) -> Result<Vec<Symbol>, String> {
    let bad = |what: &str| format!("not a vDSO it can read: {what}");
    if b.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(bad("no ELF magic"));
    }
    // 64-bit, little-endian, a shared object for x86-64.
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err(bad("not 64-bit little-endian"));
    }
    if u16_at(b, 16, 0) != Some(3) || u16_at(b, 18, 0) != Some(62) {
        return Err(bad("not an x86-64 shared object"));
    }
    let header = || bad("ELF header out of bounds");
    let phoff = u64_at(b, 32, 0).ok_or_else(header)?;
    let shoff = u64_at(b, 40, 0).ok_or_else(header)?;
    let phentsize = u16_at(b, 54, 0).ok_or_else(header)?;
    let phnum = u16_at(b, 56, 0).ok_or_else(header)?;
    let shentsize = u16_at(b, 58, 0).ok_or_else(header)?;
    let shnum = u16_at(b, 60, 0).ok_or_else(header)?;
    if phentsize != 56 || shentsize != 64 {
        return Err(bad("unexpected header entry sizes"));
    }
    // The mapping starts at the first loadable segment's address.
    let mut base = None;
    for i in 0..u64::from(phnum) {
        let at = phoff
            .checked_add(i * 56)
            .ok_or_else(|| bad("program headers"))?;
        let kind = u32_at(b, at, 0).ok_or_else(|| bad("program headers out of bounds"))?;
        let vaddr = u64_at(b, at, 16).ok_or_else(|| bad("program headers out of bounds"))?;
        if kind == PT_LOAD {
            base = Some(base.map_or(vaddr, |v: u64| v.min(vaddr)));
        }
    }
    let base = base.ok_or_else(|| bad("no loadable segment"))?;
    let sections: Vec<Section> = (0..u64::from(shnum))
        .map(|i| section(b, shoff, i).ok_or_else(|| bad("section headers out of bounds")))
        .collect::<Result<_, _>>()?;
    let (dynsym_index, dynsym) = sections
        .iter()
        .enumerate()
        .find(|(_, s)| s.kind == SHT_DYNSYM)
        .ok_or_else(|| bad("no .dynsym"))?;
    if dynsym.entsize != 24 {
        return Err(bad(".dynsym entry size"));
    }
    let strtab = *sections
        .get(dynsym.link as usize)
        .ok_or_else(|| bad(".dynsym names no string table"))?;
    let count = dynsym.size / 24;
    // Versions: one u16 per symbol, indices into the definitions.
    let versym = sections
        .iter()
        .find(|s| s.kind == SHT_GNU_VERSYM && s.link as usize == dynsym_index);
    let versions = sections
        .iter()
        .find(|s| s.kind == SHT_GNU_VERDEF)
        .map(|d| version_names(b, d, &sections))
        .transpose()?
        .unwrap_or_default();
    let mut out = Vec::new();
    for i in 0..count {
        let at = dynsym.offset + i * 24;
        let sym = || bad("symbol out of bounds");
        let name_at = u32_at(b, at, 0).ok_or_else(sym)?;
        let info = *b.get(at as usize + 4).ok_or_else(sym)?;
        let shndx = u16_at(b, at, 6).ok_or_else(sym)?;
        let value = u64_at(b, at, 8).ok_or_else(sym)?;
        let size = u64_at(b, at, 16).ok_or_else(sym)?;
        let (kind, bind) = (info & 0xf, info >> 4);
        if kind != STT_FUNC
            || !matches!(bind, STB_GLOBAL | STB_WEAK)
            || shndx == 0
            || shndx >= SHN_LORESERVE
        {
            continue;
        }
        let name = string(b, &strtab, name_at).ok_or_else(|| bad("symbol name"))?;
        let offset = value
            .checked_sub(base)
            .filter(|&o| o < b.len() as u64)
            .ok_or_else(|| format!("symbol {name} lies outside the vDSO"))?;
        let version = versym
            .and_then(|v| u16_at(b, v.offset.checked_add(i * 2)?, 0))
            .map(|ndx| ndx & 0x7fff)
            .and_then(|ndx| versions.iter().find(|(n, _)| *n == ndx))
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        out.push(Symbol {
            name,
            version,
            offset,
            size,
        });
    }
    Ok(out)
}

/// (index, name) of every version definition but the file's own.
fn version_names(
    b: &[u8],
    verdef: &Section,
    sections: &[Section],
) -> Result<Vec<(u16, String)>, String> {
    let bad = || "not a vDSO it can read: version definitions".to_string();
    let strtab = sections.get(verdef.link as usize).ok_or_else(bad)?;
    let end = verdef.offset + verdef.size;
    let mut out = Vec::new();
    let mut at = verdef.offset;
    // A chain of at most as many entries as fit the section.
    for _ in 0..verdef.size / 20 {
        if at.checked_add(20).is_none_or(|e| e > end) {
            return Err(bad());
        }
        let flags = u16_at(b, at, 2).ok_or_else(bad)?;
        let ndx = u16_at(b, at, 4).ok_or_else(bad)?;
        let aux = u32_at(b, at, 12).ok_or_else(bad)?;
        let next = u32_at(b, at, 16).ok_or_else(bad)?;
        let name_at = u32_at(b, at + u64::from(aux), 0).ok_or_else(bad)?;
        // VER_FLG_BASE names the file itself, not a version.
        if flags & 1 == 0 {
            out.push((ndx, string(b, strtab, name_at).ok_or_else(bad)?));
        }
        if next == 0 {
            return Ok(out);
        }
        at = at.checked_add(u64::from(next)).ok_or_else(bad)?;
    }
    Err(bad())
}

/// This process's own vDSO, as the kernel mapped it: its address and a
/// copy of its bytes (for tests, here and in `restore::vdso`).
#[cfg(test)]
pub(crate) fn own_vdso() -> (u64, Vec<u8>) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps.lines().find(|l| l.ends_with("[vdso]")).unwrap();
    let (s, e) = line
        .split_whitespace()
        .next()
        .unwrap()
        .split_once('-')
        .unwrap();
    let s = u64::from_str_radix(s, 16).unwrap();
    let e = u64::from_str_radix(e, 16).unwrap();
    let mut buf = vec![0u8; (e - s) as usize];
    use std::os::unix::fs::FileExt;
    std::fs::File::open("/proc/self/mem")
        .unwrap()
        .read_exact_at(&mut buf, s)
        .unwrap();
    (s, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_kernels_vdso() {
        let (_, b) = own_vdso();
        let syms = functions(&b).unwrap();
        let find = |n: &str| syms.iter().find(|s| s.name == n).unwrap();
        for n in [
            "__vdso_clock_gettime",
            "clock_gettime",
            "__vdso_gettimeofday",
            "__vdso_time",
            "__vdso_clock_getres",
            "__vdso_getcpu",
        ] {
            let s = find(n);
            assert_eq!(s.version, "LINUX_2.6", "{n}");
            assert!(s.size > 0 && s.offset + s.size <= b.len() as u64, "{n}");
        }
        // Aliases share their code.
        assert_eq!(
            find("clock_gettime").offset,
            find("__vdso_clock_gettime").offset
        );
        // glibc's own lookup agrees.
        // SAFETY: getauxval has no preconditions.
        let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) };
        // SAFETY: looking up a symbol by name in the vDSO glibc loaded.
        let addr = unsafe {
            let h = libc::dlopen(
                c"linux-vdso.so.1".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_NOLOAD,
            );
            assert!(!h.is_null());
            libc::dlsym(h, c"__vdso_clock_gettime".as_ptr()) as u64
        };
        assert_eq!(addr, base + find("__vdso_clock_gettime").offset);
    }

    #[test]
    fn any_damage_is_an_error_or_a_result_never_a_panic() {
        let (_, b) = own_vdso();
        let good = functions(&b).unwrap();
        // Every truncation, and every byte (the section headers lie at the
        // end) set to each of a few values.
        for n in 0..b.len() {
            let _ = functions(&b[..n]);
        }
        for at in 0..b.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut c = b.clone();
                c[at] = v;
                let _ = functions(&c);
            }
        }
        assert!(functions(&[]).is_err());
        assert_eq!(functions(&b).unwrap(), good);
    }
}
