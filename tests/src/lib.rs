//! Helpers for homing's multi-node integration tests.
//!
//! The tests run real node agents, on real QUIC with real TLS, inside the
//! namespaced local cluster that `deploy/local-cluster` builds. This library
//! drives that script and reads what the nodes report; it must not fake a
//! node or short-cut the network.

#![deny(missing_docs)]
