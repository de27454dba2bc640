//! Process trees (issue 9): a program and its descendants.
//!
//! What is built so far: nothing is lost silently. A process with children
//! (live, stopped, or exited and not yet waited for) fails its dump with
//! one line naming each child, and goes on; `MIGRATE_CHILDREN=leave` dumps
//! it alone and the `info` log names the children left out
//! ([`children`]).
//!
//! # Rules
//!
//! Code under this module that runs in the dump signal's handler keeps the
//! `dump` module's rules (no heap, no locks, no libc, no panics; raw
//! system calls, the arena for memory); code that runs after a restore's
//! teardown keeps the restorer's (no libc at all). Each file says which.
//!

// `Fail` carries its message inline (there is no heap to box it in), as
// in `dump`.
#![allow(clippy::result_large_err)]

pub mod children;
