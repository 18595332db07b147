//! The host role of a homing node.
//!
//! This crate will own what a node does for processes whose home is
//! elsewhere: accept a guest (a program to start, or a migration image),
//! restore it under the shim's supervision, forward its residual system
//! calls to the home node over the node's link, deliver the signals home
//! forwards, report its exit, and evict it when asked.
//!
//! It must not decide anything that belongs to the process's identity — pid,
//! fds, cwd, credentials live at home — nor hold process mechanics itself
//! (those are in `homing-shim`) or the transport (the node in
//! `homing-home-agent` hands it connections).
//!
//! Nothing lives here yet; the first residents arrive with remote execution.

#![deny(missing_docs)]
