//! A process image: everything of a running process that moves when it
//! migrates, and nothing that stays home with its deputy (fds, cwd,
//! credentials, pid, parent).
//!
//! An image travels as one [`ProcessImage`] frame followed by its memory as
//! raw page runs ([`PageRunHeader`] then the bytes), ended by an empty run.
//! Pages are not MessagePack: a gigabyte of memory is copied once, not
//! encoded.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The kernel's `user_regs_struct` on x86_64, in its order (27 words).
pub const REGS_WORDS: usize = 27;
/// Index of `orig_rax` in [`ThreadImage::regs`].
pub const REG_ORIG_RAX: usize = 15;
/// Index of `rip`.
pub const REG_RIP: usize = 16;
/// Index of `rax`.
pub const REG_RAX: usize = 10;
/// Index of `rsp`.
pub const REG_RSP: usize = 19;
/// How a host names the memfd it maps in a guest's place for a home file
/// (`/proc/PID/maps` shows `/memfd:` this, then the file's path at home).
pub const HOME_FILE_COPY: &str = "homing:";

/// A whole process, less its memory contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProcessImage {
    /// Every thread; the first is the thread-group leader.
    pub threads: Vec<ThreadImage>,
    /// The memory map, in address order.
    pub regions: Vec<Region>,
    /// The mm fields `PR_SET_MM_MAP` restores.
    pub mm: MmFields,
    /// The auxiliary vector, as `/proc/PID/auxv` gives it (pairs of words).
    pub auxv: Vec<u64>,
    /// Every signal whose action is not the default.
    pub signal_actions: Vec<SignalAction>,
    /// Signals pending for the whole process.
    pub shared_pending: Vec<PendingSignal>,
    /// `ITIMER_REAL`, `ITIMER_VIRTUAL` and `ITIMER_PROF`, as `getitimer` gave them.
    pub itimers: Vec<Itimer>,
    /// When the process was frozen (Unix time in nanoseconds): real-time
    /// timers are shortened by the time spent moving.
    pub frozen_at_unix_ns: u64,
    /// `personality(2)`.
    pub personality: u32,
    /// Resource limits `(resource, soft, hard)`.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Bytes of memory that follow the image.
    pub page_bytes: u64,
    /// Transparent huge pages turned off for the whole process
    /// (`PR_SET_THP_DISABLE`).
    #[serde(default)]
    pub huge_pages_disabled: bool,
    /// Its `no_new_privs` (a guest's own, not the one homing's filter
    /// takes).
    #[serde(default)]
    pub no_new_privs: bool,
}

/// One thread's CPU and kernel state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ThreadImage {
    /// General registers ([`REGS_WORDS`] words, fs and gs bases included),
    /// already set to restart a syscall the freeze interrupted.
    pub regs: Vec<u64>,
    /// The FPU/SSE/AVX state as `PTRACE_GETREGSET NT_X86_XSTATE` gives it.
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_bytes()"))]
    pub xstate: ByteBuf,
    /// Blocked signals.
    pub sigmask: u64,
    /// Signals pending for this thread alone.
    pub pending: Vec<PendingSignal>,
    /// The alternate signal stack: `(ss_sp, ss_flags, ss_size)`.
    pub altstack: (u64, i32, u64),
    /// The robust futex list: `(head, len)`.
    pub robust_list: (u64, u64),
    /// The rseq registration, if any.
    pub rseq: Option<RseqRegistration>,
    /// `set_tid_address`'s address.
    pub clear_child_tid: u64,
    /// Its name (`PR_SET_NAME`, `/proc/PID/task/TID/comm`), without the
    /// newline; empty when not known.
    #[serde(default)]
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_bytes()"))]
    pub comm: ByteBuf,
    /// Its nice value, which its host schedules it by.
    #[serde(default)]
    pub nice: i32,
    /// Its scheduling policy, where not the default.
    #[serde(default)]
    pub scheduling: Option<Scheduling>,
    /// Its tid as it knew it (`gettid` in its own pid namespace), which
    /// its threading library may keep at `clear_child_tid`; 0 if unknown.
    #[serde(default)]
    pub tid: i32,
}

/// A thread's scheduling policy other than the default (`SCHED_OTHER`
/// without reset-on-fork), which its host schedules it by: `chrt -b`,
/// `chrt -i`, a real-time policy a user may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Scheduling {
    /// The policy as `sched_getscheduler` gives it (`SCHED_BATCH`,
    /// `SCHED_IDLE`, `SCHED_FIFO`, `SCHED_RR`), with
    /// `SCHED_RESET_ON_FORK` or'ed in where set.
    pub policy: i32,
    /// Its static priority (`sched_param`): 1-99 for the real-time
    /// policies, 0 for the others.
    pub priority: i32,
}

/// An rseq registration (`PTRACE_GET_RSEQ_CONFIGURATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RseqRegistration {
    /// The `struct rseq` the thread registered.
    pub address: u64,
    /// Its length.
    pub length: u32,
    /// The abort signature.
    pub signature: u32,
}

/// A pending signal with its `siginfo_t` (128 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PendingSignal {
    /// The raw `siginfo_t`.
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_bytes()"))]
    pub siginfo: ByteBuf,
}

/// One signal's action: the kernel's `struct sigaction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SignalAction {
    /// The signal.
    pub signal: i32,
    /// `sa_handler` (or `SIG_IGN`).
    pub handler: u64,
    /// `sa_flags`.
    pub flags: u64,
    /// `sa_restorer`.
    pub restorer: u64,
    /// `sa_mask`.
    pub mask: u64,
}

/// One interval timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Itimer {
    /// The reload value in microseconds.
    pub interval_us: u64,
    /// Time left in microseconds (0: disarmed).
    pub value_us: u64,
}

/// The mm fields of `struct prctl_mm_map`, less the auxv and exe file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[allow(missing_docs)] // the kernel's own field names
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// One mapping of the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    /// What the region is.
    pub kind: RegionKind,
    /// The name `/proc/PID/maps` shows (a path, `[heap]`, `[stack]`, …), for logs.
    pub name: String,
    /// The home file a private file mapping maps, where it is known: the
    /// destination maps that file (or its copy) there again, so the
    /// process's `/proc/PID/maps` still names it, and the pages follow
    /// over it. Unknown (or without the file), the region is anonymous.
    #[serde(default)]
    pub file: Option<MappedFile>,
    /// What the process asked of the mapping with `madvise` or `mlock`
    /// ([`advice`] bits, as `VmFlags` in `/proc/PID/smaps` shows them):
    /// the destination asks the same.
    #[serde(default)]
    pub advice: u32,
}

/// The [`Region::advice`] bits, each with the `VmFlags` name the kernel
/// shows it by.
pub mod advice {
    /// `dc`: `MADV_DONTFORK`, a child does not get the mapping.
    pub const DONT_FORK: u32 = 1 << 0;
    /// `wf`: `MADV_WIPEONFORK`, a child gets it zeroed.
    pub const WIPE_ON_FORK: u32 = 1 << 1;
    /// `dd`: `MADV_DONTDUMP`, left out of core dumps.
    pub const DONT_DUMP: u32 = 1 << 2;
    /// `lo`: locked in memory (`mlock`).
    pub const LOCKED: u32 = 1 << 3;
    /// `lf`: locked as its pages are faulted in (`MLOCK_ONFAULT`).
    pub const LOCKED_ON_FAULT: u32 = 1 << 4;
    /// `hg`: `MADV_HUGEPAGE`.
    pub const HUGE_PAGES: u32 = 1 << 5;
    /// `nh`: `MADV_NOHUGEPAGE`.
    pub const NO_HUGE_PAGES: u32 = 1 << 6;
    /// `sr`: `MADV_SEQUENTIAL`.
    pub const SEQUENTIAL: u32 = 1 << 7;
    /// `rr`: `MADV_RANDOM`.
    pub const RANDOM: u32 = 1 << 8;
    /// `mg`: `MADV_MERGEABLE` (KSM).
    pub const MERGEABLE: u32 = 1 << 9;

    /// Each bit and its `VmFlags` name.
    pub const NAMES: [(u32, &str); 10] = [
        (DONT_FORK, "dc"),
        (WIPE_ON_FORK, "wf"),
        (DONT_DUMP, "dd"),
        (LOCKED, "lo"),
        (LOCKED_ON_FAULT, "lf"),
        (HUGE_PAGES, "hg"),
        (NO_HUGE_PAGES, "nh"),
        (SEQUENTIAL, "sr"),
        (RANDOM, "rr"),
        (MERGEABLE, "mg"),
    ];

    /// The bits a `VmFlags:` line of `/proc/PID/smaps` names.
    pub fn from_vm_flags(line: &str) -> u32 {
        line.split_whitespace()
            .filter_map(|flag| NAMES.iter().find(|(_, name)| *name == flag))
            .fold(0, |bits, (bit, _)| bits | bit)
    }
}

/// The home file a private mapping was made of, and where in it the
/// mapping begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MappedFile {
    /// Its path at home.
    #[cfg_attr(test, proptest(strategy = "crate::guest::arbitrary_bytes()"))]
    pub path: ByteBuf,
    /// The file offset of the region's first byte.
    pub offset: u64,
    /// `st_dev` at home.
    pub dev: u64,
    /// `st_ino` at home.
    pub ino: u64,
    /// `st_size` at home.
    pub size: u64,
    /// `st_mtime` at home: seconds, and nanoseconds.
    pub mtime: (i64, i64),
    /// A shared mapping (read-only: a writable one cannot move), whose
    /// pages are the file's own: mapped again, it takes none.
    #[serde(default)]
    pub shared: bool,
}

impl MappedFile {
    /// Whether `other` names the same file (wherever it maps it from).
    pub fn same_file(&self, other: &Self) -> bool {
        self.identity() == other.identity() && self.path == other.path
    }

    /// Whether `metadata` (of a file found by this one's path) is this
    /// very file, as it was when mapped.
    pub fn is(&self, metadata: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (dev, ino, size) = (metadata.dev(), metadata.ino(), metadata.size());
        let mtime = (metadata.mtime(), metadata.mtime_nsec());
        metadata.is_file() && (dev, ino, size, mtime) == self.identity()
    }

    fn identity(&self) -> (u64, u64, u64, (i64, i64)) {
        (self.dev, self.ino, self.size, self.mtime)
    }
}

/// The files `regions` map, each once.
pub fn mapped_files(regions: &[Region]) -> Vec<&MappedFile> {
    let mut files: Vec<&MappedFile> = Vec::new();
    for file in regions.iter().filter_map(|region| region.file.as_ref()) {
        if !files.iter().any(|known| known.same_file(file)) {
            files.push(file);
        }
    }
    files
}

/// What a [`Region`] is, which decides how it is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RegionKind {
    /// Private memory (anonymous, heap, or a private file mapping): its
    /// pages travel; pages absent from the image are zero.
    Private,
    /// Private memory that grows down (the main stack).
    Stack,
    /// The vDSO: not sent, the destination's own is moved here.
    Vdso,
    /// The vDSO's data pages (`[vvar]`, `[vvar_vclock]`): likewise.
    Vvar,
}

/// The final state of a process whose memory was sent while it ran: it
/// follows a [`PageRunHeader::FINAL`] mark, and the last pages follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FinalImage {
    /// The whole image, taken frozen.
    pub image: ProcessImage,
    /// Memory whose writes were not tracked: mapped anew, empty, before
    /// its pages follow.
    pub fresh: Vec<(u64, u64)>,
}

/// Precedes the bytes of one run of pages, or marks a place in the
/// stream: the end, the final state, or pages to empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRunHeader {
    /// Address of the run's first byte.
    pub address: u64,
    /// Bytes in the run; with [`Self::DISCARD`] set, pages to empty
    /// (no bytes follow); 0 marks the end or the final state.
    pub length: u32,
}

impl PageRunHeader {
    /// Bytes of an encoded header.
    pub const LEN: usize = 12;
    /// The largest run a reader accepts.
    pub const MAX_LENGTH: u32 = 4 << 20;
    /// Set in `length`: the pages are emptied, and the rest of `length`
    /// counts pages, not bytes.
    pub const DISCARD: u32 = 1 << 31;

    /// The header that ends the memory.
    pub const END: Self = Self {
        address: 0,
        length: 0,
    };

    /// The header a [`FinalImage`] frame follows.
    pub const FINAL: Self = Self {
        address: !4095,
        length: 0,
    };

    /// Marks the end of the pages sent while the process runs: the
    /// source freezes it once the destination has written them all
    /// (which it says), so that little is in flight while it is frozen.
    pub const SYNC: Self = Self {
        address: !4095 - 4096,
        length: 0,
    };

    /// Empties `pages` pages from `address`.
    pub fn discard(address: u64, pages: u32) -> Self {
        Self {
            address,
            length: Self::DISCARD | pages.min(Self::DISCARD - 1),
        }
    }

    /// Big-endian address then length.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut bytes = [0; Self::LEN];
        bytes[..8].copy_from_slice(&self.address.to_be_bytes());
        bytes[8..].copy_from_slice(&self.length.to_be_bytes());
        bytes
    }

    /// Reads a header; a run longer than [`Self::MAX_LENGTH`] or not
    /// page-aligned is an error.
    pub fn decode(bytes: &[u8; Self::LEN]) -> Result<Self, ImageError> {
        let address = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let length = u32::from_be_bytes(bytes[8..].try_into().expect("4 bytes"));
        let header = Self { address, length };
        if address % 4096 != 0 {
            return Err(ImageError::Unaligned { address, length });
        }
        if header.discarded_bytes().is_some() {
            return Ok(header);
        }
        if length > Self::MAX_LENGTH {
            return Err(ImageError::RunTooLong(length));
        }
        let mark = [Self::END, Self::FINAL, Self::SYNC].contains(&header);
        if length % 4096 != 0 || (length == 0 && !mark) {
            return Err(ImageError::Unaligned { address, length });
        }
        Ok(header)
    }

    /// Whether this header ends the memory.
    pub fn is_end(&self) -> bool {
        *self == Self::END
    }

    /// Whether a [`FinalImage`] frame follows.
    pub fn is_final(&self) -> bool {
        *self == Self::FINAL
    }

    /// Whether this is the sync mark.
    pub fn is_sync(&self) -> bool {
        *self == Self::SYNC
    }

    /// The bytes to empty, for a discard.
    pub fn discarded_bytes(&self) -> Option<u64> {
        (self.length & Self::DISCARD != 0).then(|| u64::from(self.length & !Self::DISCARD) * 4096)
    }
}

/// A malformed image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// A page run longer than any writer sends.
    #[error("a page run of {0} bytes is longer than the limit")]
    RunTooLong(u32),
    /// A page run that does not start or end on a page.
    #[error("a page run at {address:#x} of {length} bytes is not page-aligned")]
    Unaligned {
        /// Its address.
        address: u64,
        /// Its length.
        length: u32,
    },
}

/// Unix time now in nanoseconds is the caller's to read: this crate reads
/// no clocks. Whole microseconds left of a timer that had `left_us` when
/// frozen at `frozen_at_ns`, at `now_ns`; never 0 for an armed timer, so it
/// still fires.
pub fn timer_left_after(left_us: u64, frozen_at_ns: u64, now_ns: u64) -> u64 {
    if left_us == 0 {
        return 0;
    }
    let spent_us = now_ns.saturating_sub(frozen_at_ns) / 1000;
    left_us.saturating_sub(spent_us).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_run_headers_round_trip_and_reject_bad_runs() {
        let run = PageRunHeader {
            address: 0x7f00_0000_1000,
            length: 8192,
        };
        assert_eq!(PageRunHeader::decode(&run.encode()), Ok(run));
        assert!(PageRunHeader::decode(&PageRunHeader::END.encode())
            .unwrap()
            .is_end());
        let long = PageRunHeader {
            address: 0,
            length: PageRunHeader::MAX_LENGTH + 4096,
        };
        assert_eq!(
            PageRunHeader::decode(&long.encode()),
            Err(ImageError::RunTooLong(PageRunHeader::MAX_LENGTH + 4096))
        );
        let crooked = PageRunHeader {
            address: 12,
            length: 4096,
        };
        assert!(PageRunHeader::decode(&crooked.encode()).is_err());
        let empty = PageRunHeader {
            address: 4096,
            length: 0,
        };
        assert!(PageRunHeader::decode(&empty.encode()).is_err());
        let last = PageRunHeader::decode(&PageRunHeader::FINAL.encode()).unwrap();
        assert!(last.is_final() && !last.is_end());
        let sync = PageRunHeader::decode(&PageRunHeader::SYNC.encode()).unwrap();
        assert!(sync.is_sync() && !sync.is_final() && !sync.is_end());
        // A discard may span far more than a run.
        let dropped =
            PageRunHeader::decode(&PageRunHeader::discard(0x10000, 1 << 20).encode()).unwrap();
        assert_eq!(dropped.discarded_bytes(), Some(4 << 30));
        assert_eq!(run.discarded_bytes(), None);
    }

    #[test]
    fn a_timer_loses_the_time_spent_moving_but_still_fires() {
        assert_eq!(timer_left_after(0, 0, 5_000_000), 0);
        assert_eq!(
            timer_left_after(3_000_000, 1_000_000_000, 1_500_000_000),
            2_500_000
        );
        assert_eq!(timer_left_after(1000, 0, 10_000_000_000), 1);
    }
}
