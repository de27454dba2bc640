//! The CPU features an image records, as one [`Isa`]: the five cpuid
//! words of `Image::cpu`, the three of `Minor2::cpu_ext` and XCR0. Names
//! are the words Linux uses in `/proc/cpuinfo`. Also the x86-64 baseline
//! levels (`MIGRATE_CPU=x86-64-v3`): what each has, and the glibc
//! tunables that keep a program inside it.
//!
//! What a restore needs ([`Image::required_isa`]): the baseline's
//! features when the program was started for one; otherwise every
//! feature of the dumping CPU that a program can use (glibc chose its
//! code by them), less the ones only the kernel uses (`vmx`, `pcid`,
//! mitigation bits, ...). The xsave state components are needed only where
//! a thread's saved state uses them (checked against the frames).

use serde::{Deserialize, Serialize};

use crate::{CpuFeatures, Image};

/// Words of an [`Isa`].
const WORDS: [&str; 8] = [
    "cpuid1.ecx",
    "cpuid1.edx",
    "cpuid7.ebx",
    "cpuid7.ecx",
    "cpuid7.edx",
    "cpuid_d1.eax",
    "cpuid_e1.ecx",
    "cpuid_e1.edx",
];

/// A set of CPU features: cpuid words (see `WORDS`) and XCR0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Isa {
    pub xcr0: u64,
    pub words: [u32; 8],
}

/// (word of an [`Isa`], bit, name).
const CPUID_BITS: &[(usize, u32, &str)] = &[
    // cpuid(1).ecx
    (0, 0, "sse3"),
    (0, 1, "pclmulqdq"),
    (0, 2, "dtes64"),
    (0, 3, "monitor"),
    (0, 4, "ds_cpl"),
    (0, 5, "vmx"),
    (0, 6, "smx"),
    (0, 7, "est"),
    (0, 8, "tm2"),
    (0, 9, "ssse3"),
    (0, 10, "cid"),
    (0, 11, "sdbg"),
    (0, 12, "fma"),
    (0, 13, "cx16"),
    (0, 14, "xtpr"),
    (0, 15, "pdcm"),
    (0, 17, "pcid"),
    (0, 18, "dca"),
    (0, 19, "sse4_1"),
    (0, 20, "sse4_2"),
    (0, 21, "x2apic"),
    (0, 22, "movbe"),
    (0, 23, "popcnt"),
    (0, 24, "tsc_deadline_timer"),
    (0, 25, "aes"),
    (0, 26, "xsave"),
    (0, 27, "osxsave"),
    (0, 28, "avx"),
    (0, 29, "f16c"),
    (0, 30, "rdrand"),
    // cpuid(1).edx
    (1, 0, "fpu"),
    (1, 1, "vme"),
    (1, 2, "de"),
    (1, 3, "pse"),
    (1, 4, "tsc"),
    (1, 5, "msr"),
    (1, 6, "pae"),
    (1, 7, "mce"),
    (1, 8, "cx8"),
    (1, 9, "apic"),
    (1, 11, "sep"),
    (1, 12, "mtrr"),
    (1, 13, "pge"),
    (1, 14, "mca"),
    (1, 15, "cmov"),
    (1, 16, "pat"),
    (1, 17, "pse36"),
    (1, 18, "pn"),
    (1, 19, "clflush"),
    (1, 21, "dts"),
    (1, 22, "acpi"),
    (1, 23, "mmx"),
    (1, 24, "fxsr"),
    (1, 25, "sse"),
    (1, 26, "sse2"),
    (1, 27, "ss"),
    (1, 28, "ht"),
    (1, 29, "tm"),
    (1, 30, "ia64"),
    (1, 31, "pbe"),
    // cpuid(7, 0).ebx
    (2, 0, "fsgsbase"),
    (2, 1, "tsc_adjust"),
    (2, 2, "sgx"),
    (2, 3, "bmi1"),
    (2, 4, "hle"),
    (2, 5, "avx2"),
    (2, 6, "fdp_excptn_only"),
    (2, 7, "smep"),
    (2, 8, "bmi2"),
    (2, 9, "erms"),
    (2, 10, "invpcid"),
    (2, 11, "rtm"),
    (2, 12, "cqm"),
    (2, 13, "zero_fcs_fds"),
    (2, 14, "mpx"),
    (2, 15, "rdt_a"),
    (2, 16, "avx512f"),
    (2, 17, "avx512dq"),
    (2, 18, "rdseed"),
    (2, 19, "adx"),
    (2, 20, "smap"),
    (2, 21, "avx512ifma"),
    (2, 22, "pcommit"),
    (2, 23, "clflushopt"),
    (2, 24, "clwb"),
    (2, 25, "intel_pt"),
    (2, 26, "avx512pf"),
    (2, 27, "avx512er"),
    (2, 28, "avx512cd"),
    (2, 29, "sha_ni"),
    (2, 30, "avx512bw"),
    (2, 31, "avx512vl"),
    // cpuid(7, 0).ecx
    (3, 0, "prefetchwt1"),
    (3, 1, "avx512vbmi"),
    (3, 2, "umip"),
    (3, 3, "pku"),
    (3, 4, "ospke"),
    (3, 5, "waitpkg"),
    (3, 6, "avx512_vbmi2"),
    (3, 7, "shstk"),
    (3, 8, "gfni"),
    (3, 9, "vaes"),
    (3, 10, "vpclmulqdq"),
    (3, 11, "avx512_vnni"),
    (3, 12, "avx512_bitalg"),
    (3, 13, "tme"),
    (3, 14, "avx512_vpopcntdq"),
    (3, 16, "la57"),
    (3, 22, "rdpid"),
    (3, 23, "keylocker"),
    (3, 24, "bus_lock_detect"),
    (3, 25, "cldemote"),
    (3, 27, "movdiri"),
    (3, 28, "movdir64b"),
    (3, 29, "enqcmd"),
    (3, 30, "sgx_lc"),
    (3, 31, "pks"),
    // cpuid(7, 0).edx
    (4, 1, "sgx_keys"),
    (4, 2, "avx512_4vnniw"),
    (4, 3, "avx512_4fmaps"),
    (4, 4, "fsrm"),
    (4, 5, "uintr"),
    (4, 8, "avx512_vp2intersect"),
    (4, 9, "srbds_ctrl"),
    (4, 10, "md_clear"),
    (4, 11, "rtm_always_abort"),
    (4, 13, "tsx_force_abort"),
    (4, 14, "serialize"),
    (4, 15, "hybrid_cpu"),
    (4, 16, "tsxldtrk"),
    (4, 18, "pconfig"),
    (4, 19, "arch_lbr"),
    (4, 20, "ibt"),
    (4, 22, "amx_bf16"),
    (4, 23, "avx512_fp16"),
    (4, 24, "amx_tile"),
    (4, 25, "amx_int8"),
    (4, 26, "spec_ctrl"),
    (4, 27, "intel_stibp"),
    (4, 28, "flush_l1d"),
    (4, 29, "arch_capabilities"),
    (4, 30, "core_capabilities"),
    (4, 31, "spec_ctrl_ssbd"),
    // cpuid(0xd, 1).eax
    (5, 0, "xsaveopt"),
    (5, 1, "xsavec"),
    (5, 2, "xgetbv1"),
    (5, 3, "xsaves"),
    (5, 4, "xfd"),
    // cpuid(0x8000_0001).ecx
    (6, 0, "lahf_lm"),
    (6, 1, "cmp_legacy"),
    (6, 2, "svm"),
    (6, 3, "extapic"),
    (6, 4, "cr8_legacy"),
    (6, 5, "abm"),
    (6, 6, "sse4a"),
    (6, 7, "misalignsse"),
    (6, 8, "3dnowprefetch"),
    (6, 9, "osvw"),
    (6, 10, "ibs"),
    (6, 11, "xop"),
    (6, 12, "skinit"),
    (6, 13, "wdt"),
    (6, 15, "lwp"),
    (6, 16, "fma4"),
    (6, 17, "tce"),
    (6, 19, "nodeid_msr"),
    (6, 21, "tbm"),
    (6, 22, "topoext"),
    (6, 23, "perfctr_core"),
    (6, 24, "perfctr_nb"),
    (6, 26, "bpext"),
    (6, 27, "ptsc"),
    (6, 28, "perfctr_llc"),
    (6, 29, "mwaitx"),
    // cpuid(0x8000_0001).edx
    (7, 11, "syscall"),
    (7, 20, "nx"),
    (7, 22, "mmxext"),
    (7, 25, "fxsr_opt"),
    (7, 26, "pdpe1gb"),
    (7, 27, "rdtscp"),
    (7, 29, "lm"),
    (7, 30, "3dnowext"),
    (7, 31, "3dnow"),
];

/// Features only the kernel uses, or that only report on the machine:
/// not needed by a restored program (by word of an [`Isa`]).
const SYSTEM_ONLY: [u32; 8] = [
    // cpuid1.ecx: dtes64 monitor ds_cpl vmx smx est tm2 cid sdbg xtpr pdcm
    // pcid dca x2apic tsc_deadline_timer
    1 << 2
        | 1 << 3
        | 1 << 4
        | 1 << 5
        | 1 << 6
        | 1 << 7
        | 1 << 8
        | 1 << 10
        | 1 << 11
        | 1 << 14
        | 1 << 15
        | 1 << 17
        | 1 << 18
        | 1 << 21
        | 1 << 24,
    // cpuid1.edx: vme de pse msr pae mce apic mtrr pge mca pat pse36 pn dts
    // acpi ss ht tm ia64 pbe
    1 << 1
        | 1 << 2
        | 1 << 3
        | 1 << 5
        | 1 << 6
        | 1 << 7
        | 1 << 9
        | 1 << 12
        | 1 << 13
        | 1 << 14
        | 1 << 16
        | 1 << 17
        | 1 << 18
        | 1 << 21
        | 1 << 22
        | 1 << 27
        | 1 << 28
        | 1 << 29
        | 1 << 30
        | 1 << 31,
    // cpuid7.ebx: tsc_adjust sgx fdp_excptn_only smep invpcid cqm
    // zero_fcs_fds mpx rdt_a smap pcommit intel_pt
    1 << 1
        | 1 << 2
        | 1 << 6
        | 1 << 7
        | 1 << 10
        | 1 << 12
        | 1 << 13
        | 1 << 14
        | 1 << 15
        | 1 << 20
        | 1 << 22
        | 1 << 25,
    // cpuid7.ecx: umip tme la57 keylocker bus_lock_detect sgx_lc pks
    1 << 2 | 1 << 13 | 1 << 16 | 1 << 23 | 1 << 24 | 1 << 30 | 1 << 31,
    // cpuid7.edx: everything but the instructions (fsrm, avx512_4vnniw,
    // avx512_4fmaps, uintr, avx512_vp2intersect, serialize, tsxldtrk,
    // amx_bf16, avx512_fp16, amx_tile, amx_int8)
    !(1 << 2
        | 1 << 3
        | 1 << 4
        | 1 << 5
        | 1 << 8
        | 1 << 14
        | 1 << 16
        | 1 << 22
        | 1 << 23
        | 1 << 24
        | 1 << 25),
    // cpuid_d1.eax: xsaves (supervisor state), xfd
    1 << 3 | 1 << 4,
    // cpuid_e1.ecx: cmp_legacy svm extapic cr8_legacy osvw ibs skinit wdt nodeid_msr
    // topoext perfctr_core perfctr_nb bpext ptsc perfctr_llc (not mwaitx:
    // AMD's MONITORX/MWAITX run at any privilege level, DPDK uses them)
    1 << 1
        | 1 << 2
        | 1 << 3
        | 1 << 4
        | 1 << 9
        | 1 << 10
        | 1 << 12
        | 1 << 13
        | 1 << 19
        | 1 << 22
        | 1 << 23
        | 1 << 24
        | 1 << 26
        | 1 << 27
        | 1 << 28,
    // cpuid_e1.edx: all but the instructions (syscall, mmxext, rdtscp,
    // lm, 3dnowext, 3dnow): AMD repeats cpuid1.edx's bits here.
    !(1 << 11 | 1 << 22 | 1 << 27 | 1 << 29 | 1 << 30 | 1 << 31),
];

/// XCR0 bits: the state components `xsave` saves.
const XCR0_BITS: &[(u32, &str)] = &[
    (0, "x87_state"),
    (1, "sse_state"),
    (2, "avx_state"),
    (3, "mpx_bndregs_state"),
    (4, "mpx_bndcsr_state"),
    (5, "avx512_opmask_state"),
    (6, "avx512_zmm_hi256_state"),
    (7, "avx512_hi16_zmm_state"),
    (9, "pkru_state"),
    (11, "cet_u_state"),
    (12, "cet_s_state"),
    (17, "amx_tilecfg_state"),
    (18, "amx_tiledata_state"),
    (19, "apx_state"),
];

impl Isa {
    /// The features of `cpu` and `ext` (see [`crate::Minor2::cpu_ext`]).
    pub fn of(cpu: &CpuFeatures, ext: [u32; 3]) -> Isa {
        let c = cpu.cpuid;
        Isa {
            xcr0: cpu.xcr0,
            words: [c[0], c[1], c[2], c[3], c[4], ext[0], ext[1], ext[2]],
        }
    }

    /// The features of `self` that `other` lacks.
    pub fn missing_in(&self, other: &Isa) -> Isa {
        let mut out = Isa {
            xcr0: self.xcr0 & !other.xcr0,
            words: [0; 8],
        };
        for (i, w) in out.words.iter_mut().enumerate() {
            *w = self.words[i] & !other.words[i];
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.xcr0 == 0 && self.words.iter().all(|&w| w == 0)
    }

    /// The names of every feature in the set: cpuid bits first, then
    /// the xsave state components; a bit without a name is shown as
    /// `cpuid7.ecx.15` or `xcr0.10`.
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (w, word) in self.words.iter().enumerate() {
            for bit in 0..32 {
                if word & (1 << bit) == 0 {
                    continue;
                }
                match CPUID_BITS.iter().find(|&&(ww, b, _)| ww == w && b == bit) {
                    Some(&(_, _, name)) => out.push(name.to_string()),
                    None => out.push(format!("{}.{bit}", WORDS[w])),
                }
            }
        }
        out.extend(xstate_names(self.xcr0));
        out
    }
}

/// The names of the xsave state components in `mask` (XCR0 bits).
pub fn xstate_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(|bit| match XCR0_BITS.iter().find(|&&(b, _)| b == bit) {
            Some(&(_, name)) => name.to_string(),
            None => format!("xcr0.{bit}"),
        })
        .collect()
}

impl Image<'_> {
    /// The features of the CPU the image was dumped on.
    pub fn isa(&self) -> Isa {
        Isa::of(&self.cpu, self.minor2.cpu_ext)
    }

    /// The features a CPU needs to take this image (see the module's
    /// note); xsave components are checked against the threads' frames.
    ///
    /// An image without frame addresses (older than 1.2) cannot have its
    /// threads' state checked one by one: it needs every state component
    /// of the dumping CPU but PKRU (whose loss costs nothing, see the
    /// shim's `cpu::LEGACY`), as it did before 1.2.
    pub fn required_isa(&self) -> Isa {
        let xcr0 = if self.minor2.fpstate.is_empty() {
            self.cpu.xcr0 & !(1 << 9)
        } else {
            0
        };
        if let Some(b) = &self.minor2.baseline {
            return Isa {
                xcr0,
                words: b.isa.words,
            };
        }
        let mut isa = self.isa();
        isa.xcr0 = xcr0;
        for (w, sys) in isa.words.iter_mut().zip(SYSTEM_ONLY) {
            *w &= !sys;
        }
        isa
    }
}

/// An x86-64 baseline level (the psABI's micro-architecture levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub name: &'static str,
    /// What a CPU must have to run a program started for the level.
    pub isa: Isa,
    /// `glibc.cpu.hwcaps` value that keeps glibc (its string functions,
    /// ld.so's lazy-binding trampoline) inside the level.
    pub glibc_hwcaps: &'static str,
}

const V1: [u32; 8] = [
    0,
    // fpu cx8 cmov mmx fxsr sse sse2
    1 | 1 << 8 | 1 << 15 | 1 << 23 | 1 << 24 | 1 << 25 | 1 << 26,
    0,
    0,
    0,
    0,
    0,
    // syscall lm
    1 << 11 | 1 << 29,
];
/// sse3 ssse3 cx16 sse4_1 sse4_2 popcnt; lahf_lm.
const V2_ECX: u32 = 1 | 1 << 9 | 1 << 13 | 1 << 19 | 1 << 20 | 1 << 23;
/// fma movbe xsave osxsave avx f16c.
const V3_ECX: u32 = 1 << 12 | 1 << 22 | 1 << 26 | 1 << 27 | 1 << 28 | 1 << 29;
/// bmi1 avx2 bmi2.
const V3_EBX7: u32 = 1 << 3 | 1 << 5 | 1 << 8;
/// avx512f avx512dq avx512cd avx512bw avx512vl.
const V4_EBX7: u32 = 1 << 16 | 1 << 17 | 1 << 28 | 1 << 30 | 1 << 31;

// The `glibc.cpu.hwcaps` masks of each level: features glibc 2.36
// dispatches on that no level has (TSX, XSAVEC in ld.so's lazy-binding
// trampoline, AMD's FMA4), then those each lower level lacks.
macro_rules! hwcaps_v4 {
    () => {
        "-XSAVEC,-RTM,-FMA4,-AVX512ER,-AVX512PF"
    };
}
macro_rules! hwcaps_v3 {
    () => {
        concat!(
            hwcaps_v4!(),
            ",-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD"
        )
    };
}
macro_rules! hwcaps_v2 {
    () => {
        concat!(
            hwcaps_v3!(),
            ",-AVX,-AVX2,-FMA,-BMI1,-BMI2,-LZCNT,-MOVBE,-XSAVE"
        )
    };
}
macro_rules! hwcaps_v1 {
    () => {
        concat!(hwcaps_v2!(), ",-POPCNT,-SSE4_1,-SSE4_2,-SSSE3")
    };
}

/// The levels `MIGRATE_CPU` names, lowest first.
pub fn levels() -> [Level; 4] {
    let v2 = {
        let mut w = V1;
        w[0] |= V2_ECX;
        w[6] |= 1; // lahf_lm
        w
    };
    let v3 = {
        let mut w = v2;
        w[0] |= V3_ECX;
        w[2] |= V3_EBX7;
        w[6] |= 1 << 5; // abm (lzcnt)
        w
    };
    let v4 = {
        let mut w = v3;
        w[2] |= V4_EBX7;
        w
    };
    let isa = |words| Isa { xcr0: 0, words };
    [
        Level {
            name: "x86-64",
            isa: isa(V1),
            glibc_hwcaps: hwcaps_v1!(),
        },
        Level {
            name: "x86-64-v2",
            isa: isa(v2),
            glibc_hwcaps: hwcaps_v2!(),
        },
        Level {
            name: "x86-64-v3",
            isa: isa(v3),
            glibc_hwcaps: hwcaps_v3!(),
        },
        Level {
            name: "x86-64-v4",
            isa: isa(v4),
            glibc_hwcaps: hwcaps_v4!(),
        },
    ]
}

impl Level {
    /// `GLIBC_TUNABLES` holding glibc inside this level: `now` (the
    /// current value) with this level's masks added to its
    /// `glibc.cpu.hwcaps`; `None` when `now` has them all already.
    pub fn tunables(&self, now: Option<&str>) -> Option<String> {
        const KEY: &str = "glibc.cpu.hwcaps=";
        let now = now.unwrap_or("");
        let mut parts: Vec<String> = now
            .split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let at = parts.iter().position(|p| p.starts_with(KEY));
        let have: Vec<&str> = at.map_or(Vec::new(), |i| parts[i][KEY.len()..].split(',').collect());
        let add: Vec<&str> = self
            .glibc_hwcaps
            .split(',')
            .filter(|m| !have.contains(m))
            .collect();
        if add.is_empty() {
            return None;
        }
        let mut all: Vec<&str> = have.into_iter().filter(|h| !h.is_empty()).collect();
        all.extend(add);
        let value = format!("{KEY}{}", all.join(","));
        match at {
            Some(i) => parts[i] = value,
            None => parts.push(value),
        }
        Some(parts.join(":"))
    }
}

/// The level called `name` (`x86-64`, `x86-64-v2`, `-v3`, `-v4`).
pub fn level(name: &str) -> Option<Level> {
    levels().into_iter().find(|l| l.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_words() {
        let image = Isa {
            xcr0: 0x600e7,
            words: [1 << 28, 0, 1 << 16 | 1 << 29, 1 << 15, 0, 1 << 1, 0, 0],
        };
        let here = Isa {
            xcr0: 0x7,
            words: [1 << 28, 0, 0, 0, 0, 0, 0, 0],
        };
        assert_eq!(
            image.missing_in(&here).names(),
            [
                "avx512f",
                "sha_ni",
                "cpuid7.ecx.15",
                "xsavec",
                "avx512_opmask_state",
                "avx512_zmm_hi256_state",
                "avx512_hi16_zmm_state",
                "amx_tilecfg_state",
                "amx_tiledata_state",
            ]
        );
        assert!(here.missing_in(&image).is_empty());
        assert_eq!(here.names(), ["avx", "x87_state", "sse_state", "avx_state"]);
    }

    /// Instructions a program can execute in user mode are never taken
    /// for the kernel's: a restore without them would end in SIGILL.
    #[test]
    fn user_instructions_are_not_system_only() {
        for name in [
            "sse3",
            "pclmulqdq",
            "ssse3",
            "fma",
            "cx16",
            "sse4_1",
            "sse4_2",
            "movbe",
            "popcnt",
            "aes",
            "xsave",
            "avx",
            "f16c",
            "rdrand",
            "cmov",
            "mmx",
            "fxsr",
            "sse",
            "sse2",
            "tsc",
            "clflush",
            "cx8",
            "fsgsbase",
            "bmi1",
            "avx2",
            "bmi2",
            "rtm",
            "hle",
            "avx512f",
            "rdseed",
            "adx",
            "clflushopt",
            "clwb",
            "sha_ni",
            "avx512bw",
            "avx512vl",
            "pku",
            "ospke",
            "waitpkg",
            "gfni",
            "vaes",
            "vpclmulqdq",
            "rdpid",
            "movdiri",
            "movdir64b",
            "serialize",
            "amx_tile",
            "xsaveopt",
            "xsavec",
            "xgetbv1",
            "lahf_lm",
            "abm",
            "sse4a",
            "3dnowprefetch",
            "xop",
            "fma4",
            "tbm",
            "mwaitx",
            "syscall",
            "rdtscp",
            "lm",
        ] {
            let &(w, b, _) = CPUID_BITS
                .iter()
                .find(|&&(_, _, n)| n == name)
                .unwrap_or_else(|| panic!("{name} has no bit"));
            assert_eq!(
                SYSTEM_ONLY[w] & (1 << b),
                0,
                "{name} is taken for system-only"
            );
        }
    }

    #[test]
    fn levels_nest_and_name_their_features() {
        let l = levels();
        for w in l.windows(2) {
            assert!(w[0].isa.missing_in(&w[1].isa).is_empty(), "{}", w[1].name);
            assert!(w[1].glibc_hwcaps.len() < w[0].glibc_hwcaps.len());
        }
        let v3 = level("x86-64-v3").unwrap();
        let v4 = level("x86-64-v4").unwrap();
        assert_eq!(
            v4.isa.missing_in(&v3.isa).names(),
            ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]
        );
        let v2 = level("x86-64-v2").unwrap();
        assert_eq!(
            v3.isa.missing_in(&v2.isa).names(),
            [
                "fma", "movbe", "xsave", "osxsave", "avx", "f16c", "bmi1", "avx2", "bmi2", "abm"
            ]
        );
        assert!(level("x86-64-v5").is_none());
        let t = v4.tunables(None).unwrap();
        assert_eq!(t, format!("glibc.cpu.hwcaps={}", v4.glibc_hwcaps));
        assert_eq!(v4.tunables(Some(&t)), None);
        assert_eq!(
            v4.tunables(Some("glibc.malloc.arena_max=2:glibc.cpu.hwcaps=-AVX2,-RTM"))
                .unwrap(),
            "glibc.malloc.arena_max=2:glibc.cpu.hwcaps=-AVX2,-RTM,-XSAVEC,-FMA4,-AVX512ER,-AVX512PF"
        );
        assert!(!v2.glibc_hwcaps.contains(' ') && !v2.glibc_hwcaps.contains('\\'));
        // Every mask of a level is in the lower levels' masks too.
        for w in l.windows(2) {
            for m in w[1].glibc_hwcaps.split(',') {
                assert!(w[0].glibc_hwcaps.split(',').any(|x| x == m), "{m}");
            }
        }
    }
}
