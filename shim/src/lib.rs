//! Linux process mechanics for homing.
//!
//! This crate will own everything that touches another process at the
//! kernel's level: the seccomp filter and the user-notification loop that
//! catches a guest's residual system calls, ptrace control and syscall
//! injection into the deputy, reads and writes of another process's memory,
//! and the dump of a process into an image and its restore.
//!
//! It is the only crate allowed `unsafe`, each block small and with a
//! `// SAFETY:` line. It must not do networking or know about nodes or the
//! wire format: it works on one machine, on pids and file descriptors.
//!
//! Nothing lives here yet; the first residents arrive with remote execution.

#![deny(missing_docs)]
