//! Requests one node makes of another once the handshake is done.
//!
//! Each request travels on a bidirectional stream of its own, so a request
//! that takes long (a blocking read at home, say) never delays another.

use serde::{Deserialize, Serialize};

use crate::guest::GuestStart;
use crate::image::{MappedFile, ProcessImage};

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
        /// Send the image straight to the guest's next host, not to
        /// home: the host then tells home how far it got
        /// ([`Handing`]) where it would send the image.
        #[serde(default)]
        hand_to: Option<Handoff>,
    },
    /// Receive a process moving on from another host, as for
    /// `Immigrate`, except that its memory comes on the stream that
    /// `handoff.node` opens with a [`PeerRequest::HandOver`] of the same
    /// token.
    ImmigrateFrom {
        /// The process, as its old host described it to home.
        immigrant: Box<Immigrant>,
        /// Its old host, and the token its stream will carry.
        handoff: Handoff,
    },
    /// From the old host of a process moving on, to its new host: the
    /// stream carries its image, as after `Immigrate`, and the new host
    /// answers the sync mark on it.
    HandOver {
        /// The process's home node, which chose the token.
        home_node: String,
        /// The token home gave both hosts for this move.
        token: u64,
    },
    /// From the new host of a process moving there, to its home: the
    /// home file `file` that a region of the process maps, which the host
    /// lacks. Home serves it only for a process moving to the requester,
    /// opened with the rights of that process's user, and only while it
    /// is still the file named: a [`PeerResponse::FileFollows`], then its
    /// `file.size` bytes.
    FetchMapped {
        /// The process, by its pid at home.
        home_pid: i32,
        /// The file, as the process's image names it.
        file: MappedFile,
    },
    /// From a process's host to its home: move process `home_pid` off the
    /// host (it is being drained), home or on to node `to`. Home moves it
    /// as `homing migrate PID home` (or `TO`) would, only if the requester
    /// is where it runs, and answers [`PeerResponse::MovedOff`] or
    /// [`PeerResponse::Error`].
    MoveOff {
        /// The process, by its pid at home.
        home_pid: i32,
        /// Where to: `None` for home.
        to: Option<String>,
    },
}

/// One half of a process's move from one host straight to another: the
/// other host, and the token that pairs home's request to the new host
/// with the old host's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Handoff {
    /// The other host.
    pub node: String,
    /// Chosen by home, once per move.
    pub token: u64,
}

/// Why a move failed when the process ended while it was being moved:
/// home then says so instead of saying it goes on where it was.
pub const ENDED_BEFORE_MOVING: &str = "the process ended before it could move";

/// What an old host sending a process's image straight to its new host
/// tells home on the [`PeerRequest::Evict`] stream, where the image would
/// otherwise go; a [`Verdict`] follows as for any eviction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Handing {
    /// Bytes of memory sent so far.
    Progress {
        /// Bytes sent.
        sent: u64,
    },
    /// The whole image has gone; the new host says ready to home.
    Delivered {
        /// Bytes of memory sent in all.
        bytes: u64,
    },
    /// The image could not be sent: the process goes on at its old host.
    Failed {
        /// Why, for the user.
        message: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Verdict {
    /// Home's first word to a process's host when it comes home: the
    /// address ranges where home maps, privately, the file their region
    /// mapped. Of those, only the pages the process changed are sent
    /// while it runs.
    FilesMapped {
        /// `(start, end)` address ranges.
        ranges: Vec<(u64, u64)>,
    },
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
    /// Home's clocks as it sent this (see [`crate::guest::GuestStart`]).
    #[serde(default)]
    pub home_clocks: Option<crate::guest::Clocks>,
    /// The signals its signalfds (at home, with its fds) ask for, bit
    /// `n - 1` for signal `n`: such a signal it raises itself goes home.
    #[serde(default)]
    pub signalfd_signals: u64,
    /// Each of its signalfds, and the signals it asks for.
    #[serde(default)]
    pub signalfds: Vec<(i32, u64)>,
    /// Its signalfds registered in its epoll instances: `(epoll fd,
    /// signalfd, events, data)` as given to `epoll_ctl`.
    #[serde(default)]
    pub epoll_signalfds: Vec<(i32, i32, u32, u64)>,
    /// Its `no_new_privs` (a guest's own, not the one homing's filter
    /// takes).
    #[serde(default)]
    pub no_new_privs: bool,
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PeerResponse {
    /// The echo of a [`PeerRequest::Ping`].
    Pong {
        /// The bytes that were sent.
        payload: Vec<u8>,
        /// The answering node is drained: it takes no new guests.
        #[serde(default)]
        drained: bool,
    },
    /// The file a [`PeerRequest::FetchMapped`] asked for: its bytes follow.
    FileFollows {
        /// Its permission bits (and type).
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// A [`PeerRequest::MoveOff`]'s process runs where it was asked to.
    MovedOff {
        /// How the move went, in words for the user.
        summary: String,
    },
    /// The request could not be served.
    Error {
        /// Why, in words for the requester's log or user.
        message: String,
    },
}
