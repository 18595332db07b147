//! The homing node and its home role.
//!
//! This crate owns the node process that `homing node` starts: the QUIC
//! endpoint and the one authenticated connection per peer ([`link`]), the
//! cluster CA and mutual TLS ([`tls`]), the peer table and the local control
//! socket ([`node`]), and the `homing` command's client side ([`client`]).
//! The home role — deputies and forwarded system calls — grows here too.
//!
//! It must not hold Linux process mechanics (ptrace, seccomp, memory of other
//! processes: that is `homing-shim`), nor define wire formats (that is
//! `homing-proto`); the host role lives in `homing-remote-agent`.

#![deny(missing_docs)]

pub mod client;
pub mod config;
pub mod deputy;
pub mod fastpath;
pub mod link;
pub mod mounts;
pub mod node;
pub mod proc_view;
pub mod tls;
pub mod wire;
