//! The proxy's code: the old vDSO's bytes with a jump, a system call or
//! a trap at each exported function's start (see the parent module).
//!
//! Rules: pure (no system call, no unsafe), before teardown, with the
//! heap; the symbols come from [`crate::sys::vdso::functions`], checked
//! against the bytes again here.

use crate::sys::vdso::Symbol;

/// What an entry point of the old vDSO becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A jump to this address (the new vDSO's function).
    Jump(u64),
    /// The system call of this number.
    Syscall(u32),
    /// `getrandom`'s stub (see the parent module).
    Getrandom,
    /// `ud2`.
    Trap,
}

impl Entry {
    fn code(self) -> Vec<u8> {
        match self {
            // movabs r11, imm64; jmp r11
            Entry::Jump(to) => [&[0x49, 0xbb][..], &to.to_le_bytes(), &[0x41, 0xff, 0xe3]].concat(),
            // mov eax, imm32; syscall; ret
            Entry::Syscall(nr) => [&[0xb8][..], &nr.to_le_bytes(), &[0x0f, 0x05, 0xc3]].concat(),
            Entry::Getrandom => vec![
                0x49, 0x83, 0xf8, 0xff, // cmp r8, -1 (opaque_len: a parameter query)
                0x74, 0x08, // je query
                0xb8, 0x3e, 0x01, 0x00, 0x00, // mov eax, 318 (getrandom)
                0x0f, 0x05, // syscall
                0xc3, // ret
                0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, // query: mov rax, -ENOSYS
                0xc3, // ret
            ],
            Entry::Trap => vec![0x0f, 0x0b],
        }
    }
}

/// The system call an old vDSO function falls back to, by its name
/// without the `__vdso_` prefix.
fn fallback(base: &str) -> Entry {
    match base {
        "clock_gettime" => Entry::Syscall(228),
        "gettimeofday" => Entry::Syscall(96),
        "time" => Entry::Syscall(201),
        "clock_getres" => Entry::Syscall(229),
        "getcpu" => Entry::Syscall(309),
        "getrandom" => Entry::Getrandom,
        _ => Entry::Trap,
    }
}

/// The old vDSO with its entry points replaced.
pub struct Patched {
    pub bytes: Vec<u8>,
    /// What each exported function became, by name.
    pub entries: Vec<(String, Entry)>,
}

/// The old vDSO's bytes with every exported function's entry replaced
/// (see the parent module). `new_base` is where the new vDSO is
/// mapped.
pub fn patch(
    old: &[u8],
    old_syms: &[Symbol],
    new_syms: &[Symbol],
    new_base: u64,
) -> Result<Patched, String> {
    let base_name = |n: &str| n.strip_prefix("__vdso_").unwrap_or(n).to_string();
    let target = |s: &Symbol| -> Entry {
        // The same name and version, else the same name, else its alias
        // (with or without the prefix).
        let named = |n: &str| new_syms.iter().find(|t| t.name == n);
        let found = new_syms
            .iter()
            .find(|t| t.name == s.name && t.version == s.version)
            .or_else(|| named(&s.name))
            .or_else(|| {
                let b = base_name(&s.name);
                let alias = if b == s.name {
                    format!("__vdso_{b}")
                } else {
                    b
                };
                named(&alias)
            });
        match found {
            Some(t) => Entry::Jump(new_base + t.offset),
            None => fallback(&base_name(&s.name)),
        }
    };
    let mut entries: Vec<(String, Entry)> = Vec::new();
    let mut at: Vec<(u64, Entry, u64, &str)> = Vec::new();
    for s in old_syms {
        let e = target(s);
        entries.push((s.name.clone(), e));
        match at.iter_mut().find(|a| a.0 == s.offset) {
            Some(a) if a.1 != e => {
                return Err(format!(
                    "{} and {}, one function in the image's vDSO, are two in this kernel's",
                    a.3, s.name
                ));
            }
            Some(a) => {
                if s.size != 0 {
                    a.2 = if a.2 == 0 { s.size } else { a.2.min(s.size) };
                }
            }
            None => at.push((s.offset, e, s.size, &s.name)),
        }
    }
    at.sort_unstable_by_key(|a| a.0);
    let mut out = old.to_vec();
    for (i, &(off, e, size, name)) in at.iter().enumerate() {
        if off >= old.len() as u64 {
            return Err(format!("{name} lies outside the image's vDSO"));
        }
        let next = at.get(i + 1).map_or(old.len() as u64, |n| n.0);
        let room = if size == 0 {
            next - off
        } else {
            size.min(next - off)
        };
        let code = e.code();
        if (code.len() as u64) > room {
            return Err(format!(
                "{name} in the image's vDSO has {room} bytes, its stub needs {}",
                code.len()
            ));
        }
        out[off as usize..off as usize + code.len()].copy_from_slice(&code);
    }
    Ok(Patched {
        bytes: out,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::vdso::functions;

    fn sym(name: &str, offset: u64, size: u64) -> Symbol {
        Symbol {
            name: name.into(),
            version: "LINUX_2.6".into(),
            offset,
            size,
        }
    }

    #[test]
    fn entries_jump_to_the_same_name_or_fall_back() {
        let old = vec![0x90u8; 0x400];
        let old_syms = [
            sym("__vdso_clock_gettime", 0x100, 64),
            sym("clock_gettime", 0x100, 64),
            sym("__vdso_time", 0x180, 16),
            sym("__vdso_getcpu", 0x200, 16),
            sym("__vdso_getrandom", 0x240, 64),
            sym("__vdso_sgx_enter_enclave", 0x300, 64),
        ];
        // The new one lacks getcpu and getrandom, and has time only unprefixed.
        let new_syms = [
            sym("__vdso_clock_gettime", 0x800, 90),
            sym("clock_gettime", 0x800, 90),
            sym("time", 0x900, 40),
        ];
        let Ok(Patched { bytes, entries }) = patch(&old, &old_syms, &new_syms, 0x7000_0000) else {
            panic!("patched");
        };
        let get = |n: &str| entries.iter().find(|e| e.0 == n).unwrap().1;
        assert_eq!(get("clock_gettime"), Entry::Jump(0x7000_0800));
        assert_eq!(get("__vdso_clock_gettime"), Entry::Jump(0x7000_0800));
        assert_eq!(get("__vdso_time"), Entry::Jump(0x7000_0900));
        assert_eq!(get("__vdso_getcpu"), Entry::Syscall(309));
        assert_eq!(get("__vdso_getrandom"), Entry::Getrandom);
        assert_eq!(get("__vdso_sgx_enter_enclave"), Entry::Trap);
        assert_eq!(
            &bytes[0x100..0x10d],
            &[
                0x49, 0xbb, 0x00, 0x08, 0, 0x70, 0, 0, 0, 0, 0x41, 0xff, 0xe3
            ]
        );
        assert_eq!(
            &bytes[0x200..0x208],
            &[0xb8, 0x35, 0x01, 0, 0, 0x0f, 0x05, 0xc3]
        );
        assert_eq!(&bytes[0x300..0x302], &[0x0f, 0x0b]);
        // Nothing else changed.
        assert_eq!(bytes[0x10d], 0x90);
        assert_eq!(bytes[..0x100], old[..0x100]);
    }

    #[test]
    fn a_function_too_small_for_its_jump_is_refused() {
        let old = vec![0u8; 0x400];
        let new_syms = [sym("__vdso_time", 0x10, 40)];
        let Err(e) = patch(&old, &[sym("__vdso_time", 0x100, 12)], &new_syms, 0) else {
            panic!("a jump in 12 bytes");
        };
        assert!(e.contains("__vdso_time") && e.contains("12 bytes"), "{e}");
        // A neighbour too close counts as well as a size.
        let close = [sym("__vdso_time", 0x100, 0), sym("__vdso_getcpu", 0x108, 0)];
        assert!(patch(&old, &close, &new_syms, 0).is_err());
    }

    #[test]
    fn aliases_that_part_ways_are_refused() {
        let old = vec![0u8; 0x400];
        let old_syms = [sym("__vdso_time", 0x100, 40), sym("time", 0x100, 40)];
        let new_syms = [sym("__vdso_time", 0x10, 40), sym("time", 0x80, 40)];
        assert!(patch(&old, &old_syms, &new_syms, 0).is_err());
    }

    #[test]
    fn this_kernels_vdso_proxies_onto_itself() {
        // The real thing's symbols, patched to jump into a copy of itself.
        let (s, b) = crate::sys::vdso::own_vdso();
        let b = &b[..];
        let syms = functions(b).unwrap();
        let Ok(Patched { entries, .. }) = patch(b, &syms, &syms, s) else {
            panic!("patched");
        };
        assert!(entries.iter().all(|(_, e)| matches!(e, Entry::Jump(_))));
        assert!(entries.len() >= 10, "{entries:?}");
    }
}
