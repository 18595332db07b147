//! Linux process mechanics for homing.
//!
//! This crate owns everything that touches another process at the
//! kernel's level: the seccomp filter and the user-notification loop that
//! catches a guest's residual system calls, ptrace control and syscall
//! injection, reads and writes of another process's memory, path walks
//! under another process's credentials (an io_uring personality, in
//! `walk_ring`), and the dump of a running process into an image and its
//! restore into another.
//!
//! It is the only crate allowed `unsafe`, each block small and with a
//! `// SAFETY:` line. It must not do networking or know about nodes or
//! framing: it works on one machine, on pids and file descriptors, and
//! uses `homing-proto`'s data types (the syscall table, the process image)
//! without ever encoding them.

#![deny(missing_docs)]
// The one crate of the workspace allowed `unsafe`: each block is small and
// says why it is sound (clippy::undocumented_unsafe_blocks is denied).
#![allow(unsafe_code)]

pub mod dump;
pub mod execute;
pub mod filling;
pub mod held_ends;
pub mod memory;
pub mod pid_namespace;
pub mod process;
pub mod ptrace;
pub mod restore;
pub mod seccomp;
pub mod spawn;
pub mod staging;
pub mod time_namespace;
pub mod tracking;
pub mod walk_ring;
