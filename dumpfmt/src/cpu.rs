//! Names of the CPU features an image records ([`CpuFeatures`]), in the
//! words Linux uses in `/proc/cpuinfo`, for messages and `migrate inspect`.

use crate::CpuFeatures;

/// (word of `CpuFeatures::cpuid`, bit, name).
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

impl CpuFeatures {
    /// The names of every feature set in `self`: cpuid bits first, then
    /// the xsave state components; a bit without a name is shown as
    /// `cpuid7.ecx.15` or `xcr0.10`.
    pub fn names(&self) -> Vec<String> {
        const WORDS: [&str; 5] = [
            "cpuid1.ecx",
            "cpuid1.edx",
            "cpuid7.ebx",
            "cpuid7.ecx",
            "cpuid7.edx",
        ];
        let mut out = Vec::new();
        for (w, word) in self.cpuid.iter().enumerate() {
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
        for bit in 0..64 {
            if self.xcr0 & (1 << bit) == 0 {
                continue;
            }
            match XCR0_BITS.iter().find(|&&(b, _)| b == bit) {
                Some(&(_, name)) => out.push(name.to_string()),
                None => out.push(format!("xcr0.{bit}")),
            }
        }
        out
    }

    /// The names of the features `self` has and `other` lacks (empty when
    /// `other` has them all).
    pub fn missing_names(&self, other: &CpuFeatures) -> Vec<String> {
        match self.missing_in(other) {
            Some((xcr0, cpuid)) => CpuFeatures { xcr0, cpuid }.names(),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::CpuFeatures;

    #[test]
    fn names_in_words() {
        let image = CpuFeatures {
            xcr0: 0x600e7,
            cpuid: [1 << 28, 0, 1 << 16 | 1 << 29, 1 << 15, 0],
        };
        let here = CpuFeatures {
            xcr0: 0x7,
            cpuid: [1 << 28, 0, 0, 0, 0],
        };
        assert_eq!(
            image.missing_names(&here),
            [
                "avx512f",
                "sha_ni",
                "cpuid7.ecx.15",
                "avx512_opmask_state",
                "avx512_zmm_hi256_state",
                "avx512_hi16_zmm_state",
                "amx_tilecfg_state",
                "amx_tiledata_state",
            ]
        );
        assert!(here.missing_names(&image).is_empty());
        assert_eq!(here.names(), ["avx", "x87_state", "sse_state", "avx_state"]);
    }
}
