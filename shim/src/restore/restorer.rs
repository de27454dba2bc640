//! The restorer: the routine that runs while neither the fresh process's
//! memory nor the image's exists in full.
//!
//! # Safety
//!
//! It is written in assembly so that it cannot contain relocations, calls
//! out, or compiler-inserted references to anything outside it (memcpy,
//! stack probes, panics). The shim copies the bytes between
//! `migrate_restorer_start` and `migrate_restorer_end` into a mapping that
//! lies outside every region of both address spaces and jumps there with
//! `rdi` = a [`PlanHeader`] and `rsp` = a stack in the same mapping. It
//! executes the plan's system calls in order, checks each result, and ends
//! by loading a thread's saved registers and jumping into the restored
//! copy of the shim (`migrate_checkpoint`'s resume point). On any mismatch
//! it writes the op's message to fd 2 and exits with the plan's code.
//! `tests/restorer_is_self_contained` disassembles it to prove it jumps
//! nowhere outside itself.

use core::arch::global_asm;

use crate::sys::context::RESUMED;

/// One system call of the plan.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Op {
    pub nr: u64,
    pub args: [u64; 6],
    /// The result required when `kind` is [`KIND_CHECK`].
    pub expect: u64,
    pub kind: u64,
    /// Message written to stderr if the op fails.
    pub msg: u64,
    pub msg_len: u64,
}

/// Run the call and require `expect`.
pub const KIND_CHECK: u64 = 0;
/// Run the call, ignore its result.
pub const KIND_ANY: u64 = 1;
/// Not a call: `args[0]` points at a `SavedRegs`, `args[1]` is the handoff;
/// load the registers and jump. Always the last op.
pub const KIND_RESUME: u64 = 2;

/// `clone3(args[0], args[1])`; in the child (result 0) go on with the
/// `args[3]` ops at `args[2]`; in the parent require a positive result.
pub const KIND_CLONE: u64 = 3;

/// What `rdi` points at on entry.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct PlanHeader {
    pub ops: u64,
    pub n_ops: u64,
    pub exit_code: u64,
}

unsafe extern "C" {
    static migrate_restorer_start: u8;
    static migrate_restorer_end: u8;
}

/// The restorer's machine code, to be copied.
pub fn code() -> &'static [u8] {
    // SAFETY: both symbols are labels in the same section of this object;
    // the bytes between them are the routine below, read-only.
    unsafe {
        let start = &raw const migrate_restorer_start;
        let end = &raw const migrate_restorer_end;
        core::slice::from_raw_parts(start, end as usize - start as usize)
    }
}

global_asm!(
    ".text",
    ".globl migrate_restorer_start",
    ".hidden migrate_restorer_start",
    ".globl migrate_restorer_end",
    ".hidden migrate_restorer_end",
    ".p2align 4",
    "migrate_restorer_start:",
    "    mov r12, rdi",             // plan header
    "    mov r13, [r12]",           // current op
    "    mov r14, [r12 + 8]",       // ops left
    "10:",
    "    test r14, r14",
    "    jz 30f",
    "    mov rcx, [r13 + 64]",
    "    cmp rcx, 2",
    "    je 20f",
    "    mov rax, [r13]",
    "    mov rdi, [r13 + 8]",
    "    mov rsi, [r13 + 16]",
    "    mov rdx, [r13 + 24]",
    "    mov r10, [r13 + 32]",
    "    mov r8,  [r13 + 40]",
    "    mov r9,  [r13 + 48]",
    "    syscall",
    "    mov rcx, [r13 + 64]",
    "    cmp rcx, 3",
    "    je 40f",
    "    test rcx, rcx",
    "    jnz 11f",
    "    cmp rax, [r13 + 56]",
    "    jne 30f",
    "11:",
    "    add r13, 88",
    "    dec r14",
    "    jmp 10b",
    // Resume: load the saved registers, rax = RESUMED, rdx = handoff.
    "20:",
    "    mov rdi, [r13 + 8]",
    "    mov rdx, [r13 + 16]",
    "    mov rbx, [rdi]",
    "    mov rbp, [rdi + 8]",
    "    mov r12, [rdi + 16]",
    "    mov r13, [rdi + 24]",
    "    mov r14, [rdi + 32]",
    "    mov r15, [rdi + 40]",
    "    mov rcx, [rdi + 48]",
    "    mov rsp, [rdi + 56]",
    "    mov rax, {resumed}",
    "    jmp rcx",
    // Clone: the child runs its own ops; the parent needs a TID back.
    "40:",
    "    test rax, rax",
    "    jz 41f",
    "    js 30f",
    "    jmp 11b",
    "41:",
    "    mov r14, [r13 + 32]",
    "    mov r13, [r13 + 24]",
    "    jmp 10b",
    // Failure: write the op's message, exit with the plan's code.
    "30:",
    "    test r14, r14",
    "    jz 31f",
    "    mov eax, 1",
    "    mov edi, 2",
    "    mov rsi, [r13 + 72]",
    "    mov rdx, [r13 + 80]",
    "    syscall",
    "31:",
    "    mov rdi, [r12 + 16]",
    "    mov eax, 231",
    "    syscall",
    "    ud2",
    "migrate_restorer_end:",
    resumed = const RESUMED,
);
