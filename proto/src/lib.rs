//! The homing wire protocol.
//!
//! This crate owns everything two homing processes say to each other: the
//! message types (serde, encoded as MessagePack with rmp-serde), the
//! length-prefixed framing with its hard size limit, and the versioned
//! handshake between nodes.
//!
//! It must not do I/O, spawn tasks, read clocks or depend on tokio: the agents
//! are thin shells around it, and everything here is tested (and fuzzed)
//! without a network. Decoding arbitrary bytes returns an error, never panics.

#![deny(missing_docs)]

pub mod control;
pub mod frame;
pub mod guest;
pub mod handshake;
pub mod image;
pub mod peer;
pub mod syscall;

pub use frame::{decode, encode, FrameDecoder, FrameError, MAX_FRAME_LEN};
pub use handshake::{HandshakeError, Hello, HelloReply, PROTOCOL_VERSION};

#[cfg(test)]
mod properties;
