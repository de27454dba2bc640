//! The restore plan: the list of system calls the restorer executes, and
//! its layout in the restorer's mapping.
//!
//! Everything here runs in the constructor, before teardown, with libc and
//! the heap available. The plan is built with addresses relative to data
//! it owns; [`Plan::place`] fixes them once the mapping's address is known.

use crate::restore::restorer::{KIND_ANY, KIND_CHECK, KIND_CLONE, KIND_RESUME, Op, PlanHeader};

/// An argument or expected value, resolved when the plan is placed.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// A plain value.
    V(u64),
    /// The address of an offset into the plan's data.
    Data(usize),
    /// The address of an offset into the staging area (for the vDSO moves).
    Staging(u64),
    /// The address of the first op of child list `n`.
    ChildOps(usize),
    /// The number of ops of child list `n`.
    ChildLen(usize),
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    Eq(Arg),
    Any,
    Resume,
    Clone,
    /// munmap of the `n`th hole between the ranges to keep (see `unmap_all_but`).
    Hole(usize),
}

#[derive(Debug)]
struct OpSpec {
    nr: i64,
    args: [Arg; 6],
    expect: Expect,
    msg: (usize, usize),
}

#[derive(Debug, Default)]
pub struct Plan {
    ops: Vec<OpSpec>,
    data: Vec<u8>,
    msgs: Vec<u8>,
    /// Ranges the first ops must not unmap (besides the restorer mapping).
    keep: Vec<(u64, u64)>,
    /// (data offset of a pointer field, data offset it points at).
    pointers: Vec<(usize, usize)>,
    /// Op lists run by threads the plan creates, after the main list.
    children: Vec<Vec<OpSpec>>,
    /// Bytes of staging area needed.
    pub staging: u64,
}

const PAGE: u64 = 4096;
/// End of the user address space the restorer clears (47-bit layout).
pub const TASK_END: u64 = 0x7fff_ffff_f000;
const STACK_LEN: u64 = 256 << 10;

fn page_up(v: u64) -> u64 {
    v.div_ceil(PAGE) * PAGE
}

fn args6(a: &[Arg]) -> [Arg; 6] {
    let mut v = [Arg::V(0); 6];
    v[..a.len()].copy_from_slice(a);
    v
}

impl Plan {
    /// Appends plain data (8-byte aligned); returns its offset.
    pub fn data<T: Copy>(&mut self, v: &T) -> usize {
        self.bytes(as_bytes(v))
    }

    pub fn bytes(&mut self, b: &[u8]) -> usize {
        while !self.data.len().is_multiple_of(16) {
            self.data.push(0);
        }
        let off = self.data.len();
        self.data.extend_from_slice(b);
        off
    }

    fn msg(&mut self, m: &str) -> (usize, usize) {
        let off = self.msgs.len();
        self.msgs.extend_from_slice(m.as_bytes());
        self.msgs.push(b'\n');
        (off, m.len() + 1)
    }

    /// Unmaps every range of `[0, TASK_END)` except `keep` and the restorer's
    /// own mapping, whose address is only known when the plan is placed.
    pub fn unmap_all_but(&mut self, keep: &[(u64, u64)]) {
        self.keep = keep.to_vec();
        let msg = self.msg("restore: cannot unmap the fresh address space");
        for n in 0..=keep.len() + 1 {
            self.ops.push(OpSpec {
                nr: libc::SYS_munmap,
                args: args6(&[]),
                expect: Expect::Hole(n),
                msg,
            });
        }
    }

    /// Makes the word at data offset `field` hold the address of data offset `target`.
    pub fn patch_pointer(&mut self, field: usize, target: usize) {
        self.pointers.push((field, target));
    }

    /// Overwrites data at `off` in an already placed plan.
    pub fn write_data(&self, mem: &mut [u8], code_len: usize, off: usize, b: &[u8]) {
        let l = self.layout(code_len);
        put(mem, l.data + off as u64, b);
    }

    /// A call whose result must equal `expect`.
    pub fn call(&mut self, nr: i64, args: &[Arg], expect: Arg, what: &str) {
        let msg = self.msg(what);
        self.ops.push(OpSpec {
            nr,
            args: args6(args),
            expect: Expect::Eq(expect),
            msg,
        });
    }

    /// A call whose result does not matter.
    pub fn call_any(&mut self, nr: i64, args: &[Arg]) {
        self.ops.push(OpSpec {
            nr,
            args: args6(args),
            expect: Expect::Any,
            msg: (0, 0),
        });
    }

    /// The final op: resume a thread from registers stored at `regs` with `handoff`.
    pub fn resume(&mut self, regs: usize, handoff: usize) {
        self.ops.push(OpSpec {
            nr: 0,
            args: args6(&[Arg::Data(regs), Arg::Data(handoff)]),
            expect: Expect::Resume,
            msg: (0, 0),
        });
    }

    /// Builds the op list of a thread the plan will create; returns its index.
    pub fn child(&mut self, build: impl FnOnce(&mut Plan)) -> usize {
        let main = std::mem::take(&mut self.ops);
        build(self);
        let child = std::mem::replace(&mut self.ops, main);
        self.children.push(child);
        self.children.len() - 1
    }

    /// `clone3` with the `struct clone_args` at data offset `args`; the new
    /// thread runs child list `child`.
    pub fn clone_thread(&mut self, args: usize, args_len: u64, child: usize, what: &str) {
        let msg = self.msg(what);
        self.ops.push(OpSpec {
            nr: libc::SYS_clone3,
            args: args6(&[
                Arg::Data(args),
                Arg::V(args_len),
                Arg::ChildOps(child),
                Arg::ChildLen(child),
            ]),
            expect: Expect::Clone,
            msg,
        });
    }

    fn total_ops(&self) -> usize {
        self.ops.len() + self.children.iter().map(Vec::len).sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.total_ops()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes the restorer's mapping needs, code included.
    pub fn mapping_len(&self, code_len: usize) -> u64 {
        let l = self.layout(code_len);
        l.total
    }

    fn layout(&self, code_len: usize) -> Layout {
        let code = page_up(code_len as u64);
        let header = code;
        let ops = header + 64;
        let data = ops + (self.total_ops() * size_of::<Op>()) as u64;
        let msgs = (data + self.data.len() as u64 + 15) & !15;
        let stack_bottom = page_up(msgs + self.msgs.len() as u64);
        let stack_top = stack_bottom + STACK_LEN;
        let staging = stack_top + PAGE;
        Layout {
            code,
            header,
            ops,
            data,
            msgs,
            stack_top,
            staging,
            total: staging + page_up(self.staging),
        }
    }

    /// Writes code and plan into `mem` (the restorer mapping, at address
    /// `base`); returns the offsets of the entry point's stack top and of
    /// the plan header, and the length of the code pages.
    pub fn place(&self, code: &[u8], base: u64, mem: &mut [u8], exit_code: i32) -> Placed {
        let l = self.layout(code.len());
        assert!(mem.len() as u64 >= l.total, "restorer mapping too small");
        mem[..code.len()].copy_from_slice(code);
        let mut child_start = Vec::new();
        let mut next = self.ops.len();
        for c in &self.children {
            child_start.push(next);
            next += c.len();
        }
        let resolve = |a: Arg| match a {
            Arg::V(v) => v,
            Arg::Data(off) => base + l.data + off as u64,
            Arg::Staging(off) => base + l.staging + off,
            Arg::ChildOps(n) => base + l.ops + (child_start[n] * size_of::<Op>()) as u64,
            Arg::ChildLen(n) => self.children[n].len() as u64,
        };
        let mut keep = self.keep.clone();
        keep.push((base, base + l.total));
        keep.sort_unstable();
        let mut holes = Vec::new();
        let mut at = 0u64;
        for &(s, e) in &keep {
            if s > at {
                holes.push((at, s));
            }
            at = at.max(e);
        }
        if at < TASK_END {
            holes.push((at, TASK_END));
        }
        let ops: Vec<Op> = self
            .ops
            .iter()
            .chain(self.children.iter().flatten())
            .map(|s| {
                let mut op = Op {
                    nr: s.nr as u64,
                    ..Op::default()
                };
                if let Expect::Hole(n) = s.expect {
                    match holes.get(n) {
                        Some(&(start, end)) => {
                            op.args[0] = start;
                            op.args[1] = end - start;
                            op.kind = KIND_CHECK;
                        }
                        // Fewer holes than reserved ops: a harmless call.
                        None => {
                            op.nr = libc::SYS_getpid as u64;
                            op.kind = KIND_ANY;
                        }
                    }
                    op.msg = base + l.msgs + s.msg.0 as u64;
                    op.msg_len = s.msg.1 as u64;
                    return op;
                }
                for (dst, a) in op.args.iter_mut().zip(s.args) {
                    *dst = resolve(a);
                }
                match s.expect {
                    Expect::Eq(a) => {
                        op.kind = KIND_CHECK;
                        op.expect = resolve(a);
                    }
                    Expect::Any => op.kind = KIND_ANY,
                    Expect::Resume => op.kind = KIND_RESUME,
                    Expect::Clone => op.kind = KIND_CLONE,
                    Expect::Hole(_) => unreachable!("handled above"),
                }
                op.msg = base + l.msgs + s.msg.0 as u64;
                op.msg_len = s.msg.1 as u64;
                op
            })
            .collect();
        let header = PlanHeader {
            ops: base + l.ops,
            n_ops: ops.len() as u64,
            exit_code: exit_code as u64,
        };
        put(mem, l.header, as_bytes(&header));
        for (i, op) in ops.iter().enumerate() {
            put(mem, l.ops + (i * size_of::<Op>()) as u64, as_bytes(op));
        }
        put(mem, l.data, &self.data);
        for &(field, target) in &self.pointers {
            put(
                mem,
                l.data + field as u64,
                &(base + l.data + target as u64).to_le_bytes(),
            );
        }
        put(mem, l.msgs, &self.msgs);
        Placed {
            header: base + l.header,
            stack_top: base + l.stack_top,
            code_len: l.code,
        }
    }
}

struct Layout {
    code: u64,
    header: u64,
    ops: u64,
    data: u64,
    msgs: u64,
    stack_top: u64,
    staging: u64,
    total: u64,
}

/// Where the placed plan lives.
#[derive(Debug, Clone, Copy)]
pub struct Placed {
    pub header: u64,
    pub stack_top: u64,
    pub code_len: u64,
}

fn put(mem: &mut [u8], at: u64, b: &[u8]) {
    let at = at as usize;
    mem[at..at + b.len()].copy_from_slice(b);
}

/// The bytes of a plain-data value.
pub fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: `T` is plain data (`Copy`, `repr(C)` in every use here, no
    // padding read as anything but bytes written to a mapping).
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The bytes of a slice of words.
pub fn as_bytes_slice(v: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding; the byte view covers the same memory.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 8) }
}
