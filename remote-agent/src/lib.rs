//! The host role of a homing node.
//!
//! This crate owns what a node does for processes whose home is elsewhere:
//! it fetches the program from home into a content cache (its dynamic
//! loader too, in `home_loader`), starts it as a
//! guest under the shim's seccomp supervision, forwards each residual
//! syscall home and writes the answer back into the guest, maps home files
//! from the cache (and home's shared memory from one copy its guests
//! share, in `shared_here`), delivers the signals home forwards, and reports the
//! guest's end. For migrations it drives both ends' process mechanics on
//! threads of their own: freezing a process and streaming its image out,
//! and restoring a received image into a blank guest (or into a deputy at
//! home), over whatever async streams the caller gives it. It keeps the
//! agent's runtime polling while calls flow ([`spin`]), for the node and
//! for the guests' own calls alike.
//!
//! It must not decide anything that belongs to the process's identity —
//! pid, fds, cwd, credentials live at home — nor hold process mechanics
//! itself (those are in `homing-shim`) or the transport: the node in
//! `homing-home-agent` hands it channels to and from the home node.

#![deny(missing_docs)]

pub mod cache;
pub mod guest;
pub mod home_calls;
pub mod home_loader;
mod lookup_ahead;
pub mod migration;
pub mod move_priority;
mod proc_view;
mod read_ahead;
mod shared_here;
mod signalfd_wait;
pub mod spin;
mod task_dir;
mod ticker;
mod written_back;
