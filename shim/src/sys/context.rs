//! Saving and resuming the shim's own place inside the signal handler.
//!
//! # Safety
//!
//! [`checkpoint`] behaves like `setjmp` fused with a call: it records the
//! callee-saved registers, the stack pointer and a resume address, then
//! calls `body`. Later, in a restored process whose memory is a copy of
//! this one, the restorer loads those registers and jumps to the resume
//! address with `rax = RESUMED` and `rdx` = a handoff pointer: `checkpoint`
//! then returns a second time, as if `body` had returned that pair. This
//! is sound only because the caller's frames are part of the restored
//! memory, byte for byte, and `checkpoint` is not inlined anywhere.

use core::arch::global_asm;

/// The value `checkpoint` returns in its first word when it returns in a
/// restored process.
pub const RESUMED: u64 = 0x4d49_4752_4154_4521; // "MIGRATE!"

/// Registers saved by `checkpoint`: the image's own record, whose
/// `repr(C)` layout the assembly below relies on (offsets 0 to 56:
/// rbx, rbp, r12, r13, r14, r15, rip, rsp).
pub type SavedRegs = dumpfmt::ResumeContext;

const _: () = assert!(size_of::<SavedRegs>() == 64 && core::mem::offset_of!(SavedRegs, rsp) == 56);

/// What `checkpoint` returns: `(status, handoff)`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Outcome {
    pub status: u64,
    pub handoff: u64,
}

unsafe extern "C" {
    /// Saves registers into `regs`, then returns `body(arg)` (with handoff 0),
    /// run on the stack that ends at `stack_top` (0: the current stack),
    /// or `(RESUMED, handoff)` when resumed by the restorer.
    pub fn migrate_checkpoint(
        regs: *mut SavedRegs,
        body: extern "C" fn(*mut u8) -> u64,
        arg: *mut u8,
        stack_top: u64,
    ) -> Outcome;
}

unsafe extern "C" {
    /// Returns from the `migrate_checkpoint` call that saved `regs` once
    /// more, with `(status, 0)`, on the stack and with the callee-saved
    /// registers it had then: a `longjmp` that abandons every frame in
    /// between without running anything of them.
    ///
    /// # Safety
    /// The frames of that call must still be live (the call has not
    /// returned), and nothing of the abandoned frames may be used again.
    pub fn migrate_return_to(regs: *const SavedRegs, status: u64) -> !;
}

global_asm!(
    ".text",
    ".globl migrate_return_to",
    ".hidden migrate_return_to",
    ".type migrate_return_to,@function",
    "migrate_return_to:",
    "    mov rbx, [rdi + 0]",
    "    mov rbp, [rdi + 8]",
    "    mov r12, [rdi + 16]",
    "    mov r13, [rdi + 24]",
    "    mov r14, [rdi + 32]",
    "    mov r15, [rdi + 40]",
    "    mov rsp, [rdi + 56]",
    "    mov rax, rsi",
    "    xor edx, edx",
    "    jmp qword ptr [rdi + 48]",
    ".size migrate_return_to, . - migrate_return_to",
);

global_asm!(
    ".text",
    ".globl migrate_checkpoint",
    ".hidden migrate_checkpoint",
    ".type migrate_checkpoint,@function",
    "migrate_checkpoint:",
    "    mov [rdi + 0], rbx",
    "    mov [rdi + 8], rbp",
    "    mov [rdi + 16], r12",
    "    mov [rdi + 24], r13",
    "    mov [rdi + 32], r14",
    "    mov [rdi + 40], r15",
    "    lea rax, [rip + 2f]",
    "    mov [rdi + 48], rax",
    "    mov [rdi + 56], rsp",
    // Call body(arg) on the given stack (or below the current one), 16-byte
    // aligned as the ABI wants, with the old stack pointer kept at [rsp].
    "    mov rax, rsp",
    "    test rcx, rcx",
    "    cmovz rcx, rsp",
    "    and rcx, -16",
    "    lea rsp, [rcx - 16]",
    "    mov [rsp], rax",
    "    mov rdi, rdx",
    "    call rsi",
    "    mov rsp, [rsp]",
    "    xor edx, edx",
    "    ret",
    // Resumed: the restorer set rsp to the saved value (pointing at our
    // return address), the callee-saved registers, rax and rdx.
    "2:",
    "    ret",
    ".size migrate_checkpoint, . - migrate_checkpoint",
);
