//! The restorer runs after the address space it came from is gone: its
//! machine code must not call, jump or refer to anything outside itself.
//! This disassembles the exact bytes the shim copies and checks every
//! control transfer and memory operand.

use std::process::Command;

#[test]
fn restorer_is_self_contained() {
    let code = migrate::restore::restorer::code();
    assert!(
        code.len() > 32 && code.len() < 4096,
        "restorer is {} bytes",
        code.len()
    );
    let dir = std::env::temp_dir().join(format!("migrate-restorer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("restorer.bin");
    std::fs::write(&bin, code).unwrap();
    let out = Command::new("objdump")
        .args([
            "-D",
            "-b",
            "binary",
            "-m",
            "i386:x86-64",
            "-M",
            "intel",
            "--no-show-raw-insn",
        ])
        .arg(&bin)
        .output()
        .expect("objdump (binutils) is needed for this test");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "objdump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut insns = 0;
    let mut register_jumps = 0;
    for line in text.lines() {
        // "  1f:	jmp    0x12"
        let Some((addr, insn)) = line.split_once(":\t") else {
            continue;
        };
        let Ok(_) = u64::from_str_radix(addr.trim(), 16) else {
            continue;
        };
        insns += 1;
        let insn = insn.trim();
        let mnemonic = insn.split_whitespace().next().unwrap_or("");
        assert!(
            !insn.contains("rip"),
            "restorer refers to memory relative to rip: {insn}"
        );
        assert!(
            !matches!(mnemonic, "call" | "ret" | "leave" | "push" | "pop"),
            "restorer uses {insn}"
        );
        if mnemonic.starts_with('j') {
            let target = insn.split_whitespace().nth(1).unwrap_or("");
            match u64::from_str_radix(target.trim_start_matches("0x"), 16) {
                Ok(t) => assert!(
                    (t as usize) < code.len(),
                    "restorer jumps outside itself: {insn}"
                ),
                Err(_) => {
                    assert_eq!(
                        insn, "jmp    rcx",
                        "restorer jumps through memory or an unexpected register: {insn}"
                    );
                    register_jumps += 1;
                }
            }
        }
    }
    assert!(insns > 20, "objdump output not understood:\n{text}");
    assert_eq!(
        register_jumps, 1,
        "exactly one jump leaves the restorer: the resume into the restored shim"
    );
}
