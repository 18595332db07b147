//! The local control protocol between the `homing` command and its node's agent.
//!
//! It runs over a Unix socket. The agent learns who is asking from the
//! socket's peer credentials (`SO_PEERCRED`), never from anything in these
//! messages.

use serde::{Deserialize, Serialize};

/// What the `homing` command asks of its node's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ControlRequest {
    /// The state of every configured peer.
    Nodes,
    /// Who the agent believes the caller is.
    WhoAmI,
    /// Run a program on `node` with the caller as its deputy. On success the
    /// agent answers [`ControlResponse::Running`], and the connection then
    /// carries the guest's frames: [`crate::guest::ToHome`] from the agent,
    /// [`crate::guest::ToHost`] from the deputy.
    Run {
        /// The node to run on.
        node: String,
        /// What to start there (the caller's pid and credentials are taken from the socket).
        start: RunSpec,
    },
    /// The caller is the newly forked deputy of a child of away process
    /// `parent_pid`: attach it to that child on the same node. Answered like
    /// `Run`.
    Adopt {
        /// The deputy that forked the caller.
        parent_pid: i32,
    },
    /// The caller's processes that run away from home.
    Ps,
    /// Move process `pid` (the caller's, at home or away) to `node`, or
    /// back home when `node` is this node or `"home"`. The answer is a
    /// series of [`ControlResponse::Progress`] and then
    /// [`ControlResponse::Migrated`] or an error.
    Migrate {
        /// The process, by its home pid.
        pid: i32,
        /// Where to.
        node: String,
    },
    /// The caller is a process that has just become the deputy of its own
    /// program, moved away: serve it as `Run` would.
    Resume,
    /// The guests this node hosts.
    Guests,
    /// Close this node to new guests and move every guest it hosts off
    /// it, one after another (root only): before the node is taken down,
    /// say. Each goes home, or to node `to`. The answer is one
    /// [`ControlResponse::GuestMoved`] per guest, then
    /// [`ControlResponse::Drained`]. The node stays closed until
    /// [`ControlRequest::Undrain`] or its agent restarts.
    Drain {
        /// Where to: `None` for each guest's home.
        to: Option<String>,
    },
    /// Open this node to new guests again after a drain (root only); the
    /// answer is [`ControlResponse::Undrained`].
    Undrain,
}

/// The program a deputy asks to run, as it resolved it at home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RunSpec {
    /// The executable's path at home.
    pub exe: Vec<u8>,
    /// Arguments, `argv[0]` included.
    pub argv: Vec<Vec<u8>>,
    /// Environment.
    pub envp: Vec<Vec<u8>>,
}

/// One process of the caller's that runs away from home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AwayProcess {
    /// Its pid (at home, the deputy's).
    pub pid: i32,
    /// Its command line.
    pub command: String,
    /// The node it runs on.
    pub node: String,
    /// Its state (`starting`, `running`).
    pub state: String,
    /// Residual syscalls forwarded home so far.
    pub syscalls: u64,
    /// Owner uid.
    pub uid: u32,
    /// The host's pid (for guests listed on the host) or 0.
    pub host_pid: i32,
}

impl AwayProcess {
    /// A `command` from a program's arguments: decoded lossily, joined by spaces.
    pub fn command_line<A: AsRef<[u8]>>(argv: impl IntoIterator<Item = A>) -> String {
        argv.into_iter()
            .map(|arg| String::from_utf8_lossy(arg.as_ref()).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The agent's answer to a [`ControlRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ControlResponse {
    /// Answer to [`ControlRequest::Nodes`].
    Nodes {
        /// This node's name.
        node: String,
        /// This node is drained: it takes no new guests.
        #[serde(default)]
        drained: bool,
        /// One entry per configured peer, in configuration order.
        peers: Vec<PeerInfo>,
    },
    /// Answer to [`ControlRequest::WhoAmI`]: the caller's credentials as the kernel reports them.
    WhoAmI {
        /// This node's name.
        node: String,
        /// Caller's user id.
        uid: u32,
        /// Caller's group id.
        gid: u32,
        /// Caller's process id.
        pid: i32,
    },
    /// The guest was sent to the node; guest frames follow on this connection.
    Running,
    /// Answer to [`ControlRequest::Ps`] and [`ControlRequest::Guests`].
    Processes {
        /// This node's name.
        node: String,
        /// The processes.
        processes: Vec<AwayProcess>,
    },
    /// How far a migration is.
    Progress {
        /// Bytes of memory sent so far.
        sent: u64,
        /// Bytes to send in all (an estimate: present pages).
        total: u64,
    },
    /// A migration is done.
    Migrated {
        /// Where the process runs now.
        node: String,
        /// Bytes of memory moved.
        bytes: u64,
        /// From the request to the process running again, in microseconds.
        total_micros: u64,
        /// How long the process made no progress at the end, in
        /// microseconds.
        frozen_micros: u64,
        /// How many times it was paused before, while its memory was
        /// sent: it wrote faster than the link carries.
        #[serde(default)]
        pauses: u32,
        /// The longest of those pauses, in microseconds.
        #[serde(default)]
        longest_pause_micros: u64,
    },
    /// The request failed.
    Error {
        /// Why, as one line for the user.
        message: String,
    },
    /// What became of one guest a [`ControlRequest::Drain`] moved off.
    GuestMoved {
        /// Its home node.
        home_node: String,
        /// Its pid there.
        pid: i32,
        /// Its command line.
        command: String,
        /// How its move went, in words for the user: `Ok` once it runs
        /// where it was sent, `Err` with why it still runs here.
        outcome: Result<String, String>,
    },
    /// A [`ControlRequest::Drain`] is done: how many guests moved off and
    /// how many are still here.
    Drained {
        /// Guests that moved off.
        moved: u32,
        /// Guests still here.
        left: u32,
    },
    /// Answer to [`ControlRequest::Undrain`]: the node takes new guests.
    Undrained {
        /// Whether it was drained (otherwise it took them already).
        was_drained: bool,
    },
}

/// What a node knows of one of its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PeerInfo {
    /// The peer's node name.
    pub name: String,
    /// The address it is reached at.
    pub address: String,
    /// The connection state.
    pub state: PeerState,
    /// Smoothed round-trip time of the connection, when connected.
    pub rtt_micros: Option<u64>,
    /// The last error seen on this peer, if any.
    pub last_error: Option<String>,
    /// It said, at its last answered ping, that it is drained: it takes
    /// no new guests.
    #[serde(default)]
    pub drained: bool,
}

/// The state of the connection to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PeerState {
    /// No connection yet and no failure seen.
    Connecting,
    /// A live, authenticated connection.
    Connected,
    /// The last attempt failed or the connection timed out.
    Unreachable,
    /// The peer was reached but failed authentication or the handshake.
    Refused,
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerState::Connecting => "connecting",
            PeerState::Connected => "connected",
            PeerState::Unreachable => "unreachable",
            PeerState::Refused => "refused",
        })
    }
}
