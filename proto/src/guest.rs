//! Messages about one guest: a program started on a host node whose home
//! (pid, fds, cwd, credentials) is another node.
//!
//! A guest lives on one bidirectional stream. The home node opens it with a
//! [`crate::peer::PeerRequest::StartGuest`]; from then on the host sends
//! [`ToHome`] frames and the home node sends [`ToHost`] frames, many in
//! flight at once (a syscall blocked at home does not stop signals, and each
//! guest thread's calls are independent).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::frame::{put_back, take_longest, Bulk, FrameError};
use crate::syscall::{SyscallCall, SyscallResult};

/// What the host needs to start a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct GuestStart {
    /// The home node's name.
    pub home_node: String,
    /// The deputy's pid at home: the guest's identity.
    pub home_pid: i32,
    /// User the guest runs as (the deputy's).
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The program at home, as the deputy resolved it (absolute, or relative to the home cwd).
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_bytes()"))]
    pub exe: ByteBuf,
    /// Arguments, `argv[0]` included.
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_byte_list()"))]
    pub argv: Vec<ByteBuf>,
    /// Environment.
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_byte_list()"))]
    pub envp: Vec<ByteBuf>,
    /// The deputy's resource limits, as (resource, soft, hard) with
    /// `u64::MAX` for unlimited: the host enforces those that govern what
    /// it gives the program (CPU time, memory).
    pub limits: Vec<(u32, u64, u64)>,
    /// The signals the deputy was started with ignored (bit N-1 for
    /// signal N), as execve keeps them for the program (`nohup`, a
    /// background job's SIGINT).
    pub ignored_signals: u64,
    /// The deputy's nice value, which the program starts with.
    pub nice: i32,
    /// The deputy's scheduling policy, where not the default: the
    /// program starts with it (`chrt -b homing run …`).
    #[serde(default)]
    pub scheduling: Option<crate::image::Scheduling>,
    /// Home's clocks as it sent this: the guest sees them, not the host's.
    #[serde(default)]
    pub home_clocks: Option<Clocks>,
    /// The deputy's `no_new_privs`, which the program starts with.
    #[serde(default)]
    pub no_new_privs: bool,
}

/// A node's monotonic and boot clocks at one moment, in nanoseconds: they
/// count from its boot, so each machine's differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Clocks {
    /// `CLOCK_MONOTONIC`.
    pub monotonic_ns: i64,
    /// `CLOCK_BOOTTIME`.
    pub boottime_ns: i64,
}

/// How a guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum GuestExit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

/// Who sent a signal, as its `siginfo_t` says at home: what a handler
/// taking `siginfo` (or `sigwaitinfo`) sees of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SignalSender {
    /// `si_code`: `SI_USER` for a `kill`, `SI_TKILL` for a `tgkill`,
    /// `SI_QUEUE` for a `sigqueue`, `SI_MESGQ` for a message queue's
    /// notification, a positive one for the kernel's own.
    pub code: i32,
    /// `si_pid`, a home pid (0 for the kernel or a process outside home's
    /// pid namespace).
    pub pid: i32,
    /// `si_uid`.
    pub uid: u32,
    /// `si_value` of a `sigqueue` or a notification.
    pub value: u64,
}

/// A signal home sent a process while it was frozen to move, which its
/// image does not hold: held by the host it left, and handed back for
/// wherever it goes, its sender with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSignal {
    /// Signal number.
    pub signal: i32,
    /// Who sent it, where that was carried (see [`ToHost::Signal`]).
    pub sender: Option<SignalSender>,
}

/// From the host to the home node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ToHome {
    /// The guest runs; its pid on the host.
    Started {
        /// Host pid, for `homing ps --guests` and logs.
        host_pid: i32,
    },
    /// Execute a syscall in the deputy and answer with [`ToHost::Result`] of the same id.
    Syscall {
        /// Request id, unique within the guest.
        id: u64,
        /// The calling guest thread (host tid), so one thread's blocked call does not stall another's.
        tid: i32,
        /// The call.
        call: SyscallCall,
        /// Asked ahead of the program, which may never make it: home's
        /// agent answers it only if it can itself, never through the
        /// deputy (whose next call, the program's, would wait behind it),
        /// and says [`crate::syscall::NOT_ANSWERED_AHEAD`] otherwise.
        #[serde(default)]
        ahead: bool,
    },
    /// The guest thread that made syscall `id` stopped waiting for it (a
    /// signal interrupted it): interrupt it at home, its answer is not wanted.
    Cancel {
        /// The request's id.
        id: u64,
    },
    /// A process moving in has every page sent so far written: the
    /// answer to an image's sync mark.
    CaughtUp,
    /// The first answer of a host a process moves to, once it has
    /// prepared its memory: the address ranges that map, privately, the
    /// file their region mapped. Of those, only the pages the process
    /// changed need to be sent while it runs.
    FilesMapped {
        /// `(start, end)` address ranges.
        ranges: Vec<(u64, u64)>,
    },
    /// A moved-in process is restored and waits for [`ToHost::Go`]: until
    /// then its old copy may still resume instead.
    Ready,
    /// Sent by the home agent to a deputy: the program comes home into
    /// this very process, which execs `homing hold` and waits for it.
    Return,
    /// Sent by the home agent to a deputy, never by a host: files the
    /// agent opened for the program itself, which the deputy takes into
    /// its fd table at the numbers the program was given. The files come
    /// with the message's bytes (`SCM_RIGHTS`), in this order.
    TakeFiles {
        /// For each file: its number, and whether it is closed on exec.
        files: Vec<(i32, bool)>,
    },
    /// The guest is gone (or never started); the stream ends after this.
    Exited {
        /// How it ended.
        status: GuestExit,
        /// Why, when the end was not the program's own doing.
        reason: Option<String>,
    },
}

/// From the home node to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ToHost {
    /// The answer to [`ToHome::Syscall`] `id`.
    Result {
        /// The request's id.
        id: u64,
        /// What the syscall returned.
        result: SyscallResult,
    },
    /// Deliver this signal to the guest (it was sent to the deputy at home).
    Signal {
        /// Signal number.
        signal: i32,
        /// Who sent it, as the deputy's kernel told it; `None` where
        /// nothing of a sender is carried (a signal the kernel raised for
        /// a call the deputy made, a SIGKILL of home's agent's own).
        #[serde(default)]
        sender: Option<SignalSender>,
    },
    /// The deputy's nice value changed at home by other means than the
    /// program's own calls (`renice` of its pid, of its group or user):
    /// the program's main thread takes it on, where it runs.
    Nice {
        /// The new nice value.
        nice: i32,
    },
    /// The moved-in process may run: its old copy is gone.
    Go,
    /// Nothing more comes on this stream: home holds what it would send
    /// (the process is moving away from this host). What came before,
    /// signals included, has all been sent.
    Held,
}

impl Bulk for ToHome {
    fn take_bulk(&mut self) -> Option<(u32, Vec<u8>)> {
        match self {
            Self::Syscall { call, .. } => take_longest(&mut call.inputs),
            _ => None,
        }
    }

    fn put_bulk(&mut self, at: u32, bytes: Vec<u8>) -> Result<(), FrameError> {
        match self {
            Self::Syscall { call, .. } => put_back(&mut call.inputs, at, bytes),
            _ => Err(FrameError::MisplacedBulk { at }),
        }
    }
}

impl Bulk for ToHost {
    fn take_bulk(&mut self) -> Option<(u32, Vec<u8>)> {
        match self {
            Self::Result { result, .. } => take_longest(&mut result.outputs),
            _ => None,
        }
    }

    fn put_bulk(&mut self, at: u32, bytes: Vec<u8>) -> Result<(), FrameError> {
        match self {
            Self::Result { result, .. } => put_back(&mut result.outputs, at, bytes),
            _ => Err(FrameError::MisplacedBulk { at }),
        }
    }
}

impl ToHost {
    /// Whether the frame body `body` is a valid [`ToHost`], and if it is a
    /// [`ToHost::Result`], the id it answers. The result itself is skipped
    /// unread: decoding it whole would copy each byte of data it carries,
    /// which a relay that passes the frame on as it came never needs.
    pub fn answered_id(body: &[u8]) -> Result<Option<u64>, crate::FrameError> {
        use serde::de::IgnoredAny;
        // The same variants as `ToHost`, each field taken as anything.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum Outline {
            Result {
                id: u64,
                result: IgnoredAny,
            },
            Signal {
                signal: IgnoredAny,
                #[serde(default)]
                sender: IgnoredAny,
            },
            Nice {
                nice: IgnoredAny,
            },
            Go,
            Held,
        }
        Ok(match crate::decode::<Outline>(body)? {
            Outline::Result { id, .. } => Some(id),
            _ => None,
        })
    }
}

#[cfg(test)]
pub(crate) fn arbitrary_bytes() -> impl proptest::strategy::Strategy<Value = ByteBuf> {
    use proptest::prelude::*;
    proptest::collection::vec(any::<u8>(), 0..32).prop_map(ByteBuf::from)
}

#[cfg(test)]
pub(crate) fn arbitrary_byte_list() -> impl proptest::strategy::Strategy<Value = Vec<ByteBuf>> {
    proptest::collection::vec(arbitrary_bytes(), 0..4)
}
