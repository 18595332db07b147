//! Requests one node makes of another once the handshake is done.
//!
//! Each request travels on a bidirectional stream of its own, so a request
//! that takes long (a blocking read at home, say) never delays another.

use serde::{Deserialize, Serialize};

use crate::guest::GuestStart;
use crate::image::ProcessImage;

/// A request on a fresh stream between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PeerRequest {
    /// Echo `payload` back; proves the peer's request path is alive.
    Ping {
        /// Bytes to echo.
        payload: Vec<u8>,
    },
    /// Start a guest; the stream then carries its [`crate::guest::ToHome`]
    /// and [`crate::guest::ToHost`] frames until it ends.
    StartGuest(GuestStart),
    /// Attach the deputy of a guest's forked child: `home_pid` is the new
    /// deputy, `parent_home_pid` the deputy of the guest that forked. The
    /// stream then carries the child's frames, as for `StartGuest`.
    AttachChild {
        /// The child's pid at home.
        home_pid: i32,
        /// Its parent's pid at home (a guest of the same host).
        parent_home_pid: i32,
    },
    /// Receive a running process moved here: its memory follows as page
    /// runs ([`crate::image::PageRunHeader`]), then the stream carries its
    /// frames as for `StartGuest`, beginning with
    /// [`crate::guest::ToHome::Ready`] and [`crate::guest::ToHost::Go`].
    Immigrate(Box<Immigrant>),
    /// Give up the guest whose home is the requester and whose home pid
    /// is `home_pid`: the host answers with an [`Eviction`], sends its
    /// image, and waits for a [`Verdict`].
    Evict {
        /// The guest, by its pid at home.
        home_pid: i32,
        /// Send its memory while it runs, then freeze it (pre-copy);
        /// otherwise freeze it first.
        while_running: bool,
    },
}

/// A host's answer to [`PeerRequest::Evict`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Eviction {
    /// The guest's layout (its image so far); its memory follows.
    Image(Box<Immigrant>),
    /// The guest cannot move.
    Refused {
        /// Why, for the user.
        message: String,
    },
}

/// What becomes of an evicted guest's frozen copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Verdict {
    /// The next host has written every page sent so far: freeze it now.
    CaughtUp,
    /// It runs elsewhere now: end it, silently. The host answers how long
    /// it has been frozen (8 bytes, microseconds, big-endian), closes the
    /// stream, and ends it.
    Commit,
    /// The move failed: let it go on.
    Abort,
}

/// A process moving to another node, less its memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Immigrant {
    /// Its home node.
    pub home_node: String,
    /// Its pid at home (its deputy's).
    pub home_pid: i32,
    /// User it runs as.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Its command line, for `homing ps`.
    pub command: String,
    /// Its program's path at home, canonical (what `/proc/self/exe` names
    /// for it); empty when not known.
    #[serde(default)]
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_bytes()"))]
    pub exe: serde_bytes::ByteBuf,
    /// Everything but its memory's contents.
    pub image: ProcessImage,
    /// The first id its forwarded syscalls may use, above any its old host
    /// used (a late answer to an old call must not be taken for a new one).
    pub next_call_id: u64,
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PeerResponse {
    /// The echo of a [`PeerRequest::Ping`].
    Pong {
        /// The bytes that were sent.
        payload: Vec<u8>,
    },
    /// The request could not be served.
    Error {
        /// Why, in words for the requester's log or user.
        message: String,
    },
}
