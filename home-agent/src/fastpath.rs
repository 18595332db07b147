//! The home side's fast path: data syscalls on regular files run in the
//! agent itself, on a duplicate of the deputy's fd, skipping the round trip
//! through the deputy.
//!
//! `pidfd_getfd` duplicates the deputy's fd, sharing its open file
//! description: the offset, flags and access mode are the deputy's, so a
//! read here moves the same offset a read in the deputy would. Only calls
//! on regular files and directories take this path (they never block);
//! everything that changes the deputy's fd table is seen on its way there
//! and forgets the duplicates it may invalidate.
//!
//! Calls that ask who the deputy is (`getppid`, `getuid`, `getpgrp`, …)
//! are answered from its pidfd (`PIDFD_GET_INFO`) or its `/proc` entry,
//! read at the call: the answer is the one the deputy would get, and
//! never stale.
//!
//! A `stat`, `readlink` or `access` of a path, and an open that cannot
//! create, is looked up here too (an open only to answer why a path leads
//! nowhere: what is there is opened by the deputy), as the deputy would
//! look it up: from its cwd (or the directory fd it names), with its
//! filesystem uid, gid and groups, in the same mount namespace and root.
//! The walk runs under them as an io_uring personality where the kernel
//! can finish it from its caches (`homing_shim::walk_ring`), else with
//! them taken on by this thread alone for the walk. Only a walk that crosses
//! no mount and meets no "magic" link (`/proc/PID/fd/N`, `exe`, `cwd`) is
//! made here, from a directory on a local filesystem. What names one
//! thing for the agent and another for the deputy lives in `/proc` (or
//! leads there, as `/dev/fd` does), another mount, so an ordinary
//! symbolic link (`/lib -> usr/lib`) is followed as the deputy's own walk
//! would follow it; and a lookup on a network filesystem could hang, and
//! with it the agent and every program it serves. Any other goes to the
//! deputy.
//!
//! An open for reading of a regular file or a directory found so is made
//! here too, for the program, at the number the deputy's kernel would
//! give it; the deputy takes the file into its table with its next call,
//! or never if the program closes it first (see `FastPath::open_here`).
//!
//! Nothing else here may change the deputy: a call that would (another
//! open, a close of another fd, a chdir) is never taken, only seen on its
//! way. What it may change (an fd, the cwd, the credentials) is forgotten then, and again
//! once its answer has gone by on the way back: in a program of several
//! threads, another thread's call may read it here meanwhile (which at
//! home could have run first too), but once the change has returned,
//! every call must see what it did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, OnceLock};

use homing_proto::syscall::{self, PtrArg, Route, SyscallCall, SyscallResult};
use homing_shim::execute::never_waits;
use homing_shim::process::PidfdIdentity;
use homing_shim::walk_ring;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};

/// Calls worth taking off the deputy: they act on one fd, arg 0.
const DATA_CALLS: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_getdents64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
];

/// Why a walk here found nothing that is the answer the deputy's own walk
/// would give. A magic link on the way, a loop (ELOOP), a mount crossed
/// (EXDEV) or anything unusual: the deputy looks instead.
const WALK_ANSWERS: [i32; 4] = [
    libc::ENOENT,
    libc::ENOTDIR,
    libc::EACCES,
    libc::ENAMETOOLONG,
];

/// What a call may change of what the fast path keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// One fd (a close, or the target of a dup2).
    Fd(i32),
    /// Any fd.
    Fds,
    Cwd,
    Credentials,
    /// The deputy's nice value, by the program's own `setpriority`.
    Nice,
    /// Everything (an exec).
    All,
}

impl Change {
    /// What `call` may change, if anything.
    fn of(call: &SyscallCall) -> Option<Self> {
        Some(match call.nr as i64 {
            libc::SYS_close => Self::Fd(call.args[0] as i32),
            libc::SYS_dup2 | libc::SYS_dup3 => Self::Fd(call.args[1] as i32),
            libc::SYS_close_range => Self::Fds,
            libc::SYS_execve | libc::SYS_execveat => Self::All,
            libc::SYS_chdir | libc::SYS_fchdir => Self::Cwd,
            libc::SYS_setuid
            | libc::SYS_setgid
            | libc::SYS_setreuid
            | libc::SYS_setregid
            | libc::SYS_setresuid
            | libc::SYS_setresgid
            | libc::SYS_setfsuid
            | libc::SYS_setfsgid
            | libc::SYS_setgroups
            | libc::SYS_capset
            | libc::SYS_prctl => Self::Credentials,
            libc::SYS_setpriority => Self::Nice,
            _ => return None,
        })
    }
}

/// A call sent to the deputy, not answered yet.
#[derive(Debug, Clone, Copy)]
struct UnderWay {
    /// What it may change of what the fast path keeps.
    change: Option<Change>,
    /// The fd it closes, if it is a `close`: it frees a number and takes
    /// none.
    closes: Option<i32>,
}

/// The calls sent to one deputy that may change what its fast path keeps,
/// not answered yet: noted on their way to the deputy, and settled as
/// their answers go by on the way back (another task).
#[derive(Debug, Default)]
pub struct Changes {
    /// Every call sent to the deputy and not answered yet.
    under_way: Mutex<HashMap<u64, UnderWay>>,
    /// Answered since the fast path last looked: what it kept of them
    /// may be stale.
    settled: Mutex<Vec<Change>>,
    /// Whether the deputy has answered a call: until then it may still be
    /// setting itself up, with files of its own open for moments.
    answered_any: std::sync::atomic::AtomicBool,
}

impl Changes {
    /// Sees the deputy's answer to call `id` go by.
    pub fn answered(&self, id: u64) {
        self.answered_any
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let Ok(mut under_way) = self.under_way.lock() else {
            return;
        };
        // Settled before it stops being under way: a look between the two
        // must not find the deputy idle with its change not yet forgotten.
        let change = under_way.remove(&id).and_then(|call| call.change);
        if let (Some(change), Ok(mut settled)) = (change, self.settled.lock()) {
            settled.push(change);
        }
    }

    fn note(&self, id: u64, call: UnderWay) {
        if let Ok(mut under_way) = self.under_way.lock() {
            under_way.insert(id, call);
        }
    }

    /// The fds the deputy is closing, if closing them is all it has to
    /// do: it has answered every other call it was sent, and one at least
    /// (its own setup, which opens files for moments, is behind it).
    /// `None` while it has another (or if the list cannot be read).
    fn only_closing(&self) -> Option<Vec<i32>> {
        if !self.answered_any.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let under_way = self.under_way.lock().ok()?;
        under_way.values().map(|call| call.closes).collect()
    }

    /// Whether an exec is under way: the host does not wait for its
    /// answer before the new program runs, so the new program's calls
    /// may come before the deputy has closed the old one's close-on-exec
    /// fds. Until it has, none of its fds is taken from the deputy here.
    fn exec_under_way(&self) -> bool {
        self.under_way(Change::All)
    }

    /// Whether a call that may close or replace fd `fd` is under way: the
    /// deputy may not have run it yet, and its table still holds the fd
    /// from before.
    fn fd_under_way(&self, fd: i32) -> bool {
        self.any_under_way(|c| matches!(c, Change::Fds | Change::All) || *c == Change::Fd(fd))
    }

    /// Whether a call that may change `change` is under way.
    fn under_way(&self, change: Change) -> bool {
        self.any_under_way(|c| *c == change)
    }

    /// Whether a call whose change `picked` picks is under way (if the
    /// list cannot be read: yes).
    fn any_under_way(&self, picked: impl Fn(&Change) -> bool) -> bool {
        self.under_way.lock().map_or(true, |under_way| {
            under_way
                .values()
                .filter_map(|call| call.change.as_ref())
                .any(picked)
        })
    }

    fn take_settled(&self) -> Vec<Change> {
        self.settled
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// What the fast path keeps for one deputy: duplicates of its fds, its
/// `/proc` entry, and what its path lookups need.
pub struct FastPath {
    pid: i32,
    pidfd: OwnedFd,
    /// The deputy's `/proc/PID/stat` and `/proc/PID/status`, opened once
    /// and read again from the start for each call they answer.
    proc_stat: Option<File>,
    proc_status: Option<File>,
    /// Its `/proc/PID/limits`, read where `prlimit` may not be: on
    /// another user's process it takes `CAP_SYS_RESOURCE`, which an agent
    /// may lack.
    proc_limits: Option<File>,
    /// Whether `prlimit` on the deputy works (one syscall, where reading
    /// `/proc/PID/limits` takes a few microseconds).
    prlimit_works: bool,
    /// Deputy fd number -> our duplicate, or `None` when it is not a
    /// regular file or directory (a pipe or tty must stay with the deputy:
    /// a read there may block).
    fds: HashMap<i32, Option<Arc<OwnedFd>>>,
    /// Whether paths may be looked up here: the deputy shares the agent's
    /// mount namespace and root, which is on a local filesystem, and has
    /// not changed either since.
    looks_up_paths: bool,
    /// The deputy's cwd, opened here (`O_PATH`) at the first lookup and
    /// forgotten when it changes directory.
    cwd: Option<Arc<OwnedFd>>,
    /// The root (the deputy's is the agent's), where an absolute path
    /// starts: a walk may not cross from the cwd's mount to the root's.
    root: Option<Arc<OwnedFd>>,
    /// The deputy's credentials for a walk (`None` inside: it cannot be
    /// made here), read at the first lookup and forgotten when a call that
    /// may change them goes by: only the program's calls change them.
    walker: Option<Option<Arc<Walker>>>,
    /// Calls under way that may change any of the above.
    changes: Arc<Changes>,
    /// Whether another deputy's program runs on the same host as this
    /// one's (see [`Self::hold_mapped`]).
    neighbour: Neighbours,
    /// Files opened or kept for a host, by the number the host knows each
    /// by: programs for it to fetch for an exec (see
    /// [`syscall::OPEN_PROGRAM`]), and files the program maps shared and
    /// writable there (see [`syscall::HOLD_MAPPED`]).
    held: HashMap<i32, Arc<OwnedFd>>,
    next_held: i32,
    /// The deputy's nice value as the host last had it for the program's
    /// main thread (`None`: not known, read again at the next look).
    nice_on_host: Option<i32>,
    /// Files opened here for the program, by the number it was given,
    /// not yet in the deputy's fd table (see [`Self::open_here`]), and
    /// since when the first of them waits.
    opened_here: BTreeMap<i32, OpenedHere>,
    opened_here_since: Option<std::time::Instant>,
    /// Numbers found in use in the deputy's fd table (one `kcmp` each)
    /// while it had no call to answer but closes, and how many calls it
    /// had been sent then: only a call can change its table, so they hold until
    /// the next one is sent.
    deputy_fds: Option<(u64, BTreeSet<i32>)>,
    /// How many calls have been sent to the deputy.
    sent_to_deputy: u64,
    /// The numbers of files handed to the deputy that it may not have
    /// placed yet, with how many calls it had been sent then. Neither its
    /// table (which shows such a number free until it reads the handover)
    /// nor a close of that number sent before the handover (which frees
    /// the number for the file handed, not for the next) says it is free.
    /// Placed for certain once a later call other than a close has been
    /// answered: the deputy reads in order.
    handed: BTreeMap<i32, u64>,
    /// The count of calls sent when the last call other than a close was.
    last_not_closing: u64,
    /// Whether files may be opened here at all (the node's
    /// `open_files_here`).
    opens_files: bool,
    /// Whether the deputy has held a POSIX record lock (`fcntl`'s
    /// `F_SETLK`, `lockf`): a close of any fd of a file releases the
    /// process's locks on it, and the close of a file opened here would
    /// not.
    has_locked_records: bool,
}

/// A file opened here for the program (see `FastPath::open_here`).
struct OpenedHere {
    file: Arc<OwnedFd>,
    close_on_exec: bool,
}

/// What the deputy is to take into its fd table with its next call: the
/// numbers the program knows the files by, whether each closes on exec,
/// and the files (see [`FastPath::take_opened_here`]).
pub struct FilesForDeputy {
    /// Each file's number, and whether it closes on exec.
    pub numbers: Vec<(i32, bool)>,
    /// The files, in the same order.
    pub files: Vec<Arc<OwnedFd>>,
}

/// Most files opened here at once, not yet in the deputy's table.
const MOST_OPENED_HERE: usize = 16;

/// How long a file opened here may stay out of the deputy's table while
/// the program makes no call that goes there: the program cannot tell,
/// but another process at home listing the deputy's fds (`lsof`, `ls -l
/// /proc/PID/fd`) would not see it. A program that opens, reads and
/// closes a file is done well within it.
pub const GIVE_OPENED_AFTER: std::time::Duration = std::time::Duration::from_millis(2);

/// Whether the process with a pid is a deputy whose program runs on the
/// same host as this deputy's.
pub type Neighbours = Box<dyn Fn(i32) -> bool + Send>;

impl FastPath {
    /// The fast path for deputy `pid`, if its fds can be duplicated;
    /// `changes` hears the deputy's answers.
    pub fn new(
        pid: i32,
        changes: Arc<Changes>,
        neighbour: Neighbours,
        opens_files: bool,
    ) -> Option<Self> {
        let pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
        Some(Self {
            pid,
            pidfd,
            proc_stat: File::open(format!("/proc/{pid}/stat")).ok(),
            proc_status: File::open(format!("/proc/{pid}/status")).ok(),
            proc_limits: File::open(format!("/proc/{pid}/limits")).ok(),
            prlimit_works: homing_shim::process::limit(pid, libc::RLIMIT_FSIZE, None).is_ok(),
            fds: HashMap::new(),
            looks_up_paths: same_namespace_and_root(pid)
                && rustix::fs::statfs("/").is_ok_and(|fs| local_filesystem(fs.f_type)),
            cwd: None,
            root: rustix::fs::open(
                "/",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
            .map(Arc::new),
            walker: None,
            changes,
            neighbour,
            held: HashMap::new(),
            next_held: syscall::PROGRAM_FDS_FROM,
            // The program started with the deputy's.
            nice_on_host: homing_shim::process::nice(pid),
            opened_here: BTreeMap::new(),
            opened_here_since: None,
            deputy_fds: None,
            sent_to_deputy: 0,
            handed: BTreeMap::new(),
            last_not_closing: 0,
            opens_files,
            // Looked at only where it matters: `/proc/locks` is read at
            // every deputy's start otherwise, each fork's included.
            has_locked_records: opens_files && holds_record_locks(pid),
        })
    }

    /// Sees call `id` on its way to the deputy: forgets what it may change
    /// (every fd it may close or replace, the cwd, the credentials), and
    /// will again once its answer has gone by.
    pub fn observe(&mut self, id: u64, call: &SyscallCall) {
        let change = Change::of(call);
        if let Some(change) = change {
            self.forget(change);
        }
        let nr = call.nr as i64;
        let closes = (nr == libc::SYS_close).then_some(call.args[0] as i32);
        // Every call under way matters only to opens made here; without
        // them, only those that change what is kept here are noted.
        if change.is_some() || self.opens_files {
            self.changes.note(id, UnderWay { change, closes });
        }
        // A close takes nothing: the numbers known in use in the deputy's
        // table, if they were known now, are known once the close is done.
        let known_now = self.known_now();
        self.sent_to_deputy += 1;
        match closes {
            // Read after its file's handover: free once the close is made.
            Some(fd) => _ = self.handed.remove(&fd),
            None => self.last_not_closing = self.sent_to_deputy,
        }
        if let (Some(fd), true, Some((sent, in_use))) = (closes, known_now, &mut self.deputy_fds) {
            in_use.remove(&fd);
            *sent = self.sent_to_deputy;
        }
        let record_lock = [libc::F_SETLK, libc::F_SETLKW];
        if nr == libc::SYS_fcntl && record_lock.contains(&(call.args[1] as i32)) {
            self.has_locked_records = true;
        }
        let unshares = [
            libc::SYS_chroot,
            libc::SYS_pivot_root,
            libc::SYS_unshare,
            libc::SYS_setns,
        ];
        if unshares.contains(&nr) {
            self.looks_up_paths = false;
            self.cwd = None;
            self.root = None;
        }
    }

    /// The deputy's nice value, if it has changed since the host last
    /// had it by other means than the program's own calls: a `renice` at
    /// home of its pid, group or user, which the program's main thread
    /// takes on where it runs.
    pub fn reniced(&mut self) -> Option<i32> {
        self.settle();
        if self.changes.under_way(Change::Nice) {
            return None;
        }
        let now = homing_shim::process::nice(self.pid)?;
        match self.nice_on_host.replace(now) {
            Some(before) => (before != now).then_some(now),
            None => None,
        }
    }

    /// Forgets what the calls answered since last time may have changed.
    fn settle(&mut self) {
        for change in self.changes.take_settled() {
            self.forget(change);
        }
    }

    /// The files opened here since the deputy's last call, for it to take
    /// (see `Self::open_here`); `None` if there are none. To be called
    /// for each call sent to the deputy, before it goes, and once files
    /// have waited [`GIVE_OPENED_AFTER`].
    pub fn take_opened_here(&mut self) -> Option<FilesForDeputy> {
        if self.opened_here.is_empty() {
            return None;
        }
        self.opened_here_since = None;
        let (numbers, files): (Vec<(i32, bool)>, _) = std::mem::take(&mut self.opened_here)
            .into_iter()
            .map(|(number, opened)| ((number, opened.close_on_exec), opened.file))
            .unzip();
        // In use from now on: the deputy places them before anything it
        // is sent later, and its table is not looked at again before its
        // next call.
        if let Some((_, in_use)) = &mut self.deputy_fds {
            in_use.extend(numbers.iter().map(|(number, _)| number));
        }
        let sent = self.sent_to_deputy;
        self.handed
            .extend(numbers.iter().map(|&(number, _)| (number, sent)));
        Some(FilesForDeputy { numbers, files })
    }

    /// When the files opened here are due to the deputy even without a
    /// call of the program's: `None` while there are none.
    pub fn opened_here_due(&self) -> Option<std::time::Instant> {
        self.opened_here_since
            .map(|since| since + GIVE_OPENED_AFTER)
    }

    /// Runs `call` here if it qualifies, taking its input buffers; `None`
    /// sends it, untouched, to the deputy. `ahead`: asked ahead of the
    /// program, which may never make it.
    pub fn try_execute(&mut self, call: &mut SyscallCall, ahead: bool) -> Option<SyscallResult> {
        self.settle();
        if let Some(ret) = self.identity(call) {
            return Some(SyscallResult {
                ret,
                outputs: vec![],
            });
        }
        if !ahead {
            if let Some(result) = self.close_opened_here(call) {
                return Some(result);
            }
        }
        if let Some(result) = self.fd_link(call) {
            return Some(result);
        }
        if let Some(result) = self.look_up_path(call, ahead) {
            return Some(result);
        }
        if let Some(result) = self.read_limit(call) {
            return Some(result);
        }
        if call.nr as i64 == libc::SYS_getcwd {
            return self.cwd_path(call);
        }
        if call.nr == syscall::OPEN_PROGRAM {
            return self.open_program(call);
        }
        if call.nr == syscall::HOLD_MAPPED {
            return self.hold_mapped(call);
        }
        if syscall::uses_held_file(call.nr, &call.args) {
            return self.use_held(call);
        }
        let nr = call.nr as i64;
        if !DATA_CALLS.contains(&nr) && !stats_the_fd(call) {
            return None;
        }
        let fd = call.args[0] as i32;
        if fd < 0 {
            return None;
        }
        // The deputy's limit on the size of what it writes holds its own
        // writes only: under one, the deputy writes (and gets EFBIG and
        // SIGXFSZ where it should).
        let writes = [libc::SYS_write, libc::SYS_pwrite64].contains(&nr);
        if writes && !self.writes_any_size() {
            return None;
        }
        let local = self.duplicate(fd)?;
        let Route::Forward(ptrs) = syscall::route(call.nr, &call.args) else {
            return None;
        };
        let mut result = run_on(&local, call, &ptrs);
        if nr == libc::SYS_getdents64 && result.ret > 0 && at_directory_end(&local) {
            result.outputs.push(syscall::ArgData {
                index: syscall::DIRECTORY_END,
                bytes: vec![],
            });
        }
        if nr == libc::SYS_read && result.ret > 0 {
            // Where the next read begins, for the host to ask ahead.
            if let Ok(offset) = rustix::fs::seek(&*local, rustix::fs::SeekFrom::Current(0)) {
                result.outputs.push(syscall::ArgData {
                    index: syscall::OFFSET_AFTER,
                    bytes: offset.to_ne_bytes().to_vec(),
                });
            }
        }
        Some(result)
    }

    /// The answer to a call about the deputy's identity that returns it
    /// whole, read from `/proc` now; `None` for any other call.
    fn identity(&self, call: &SyscallCall) -> Option<i64> {
        // /proc/PID/stat: pid (comm) state ppid pgrp session ...
        let stat_field = |at: usize| -> Option<i64> {
            let text = read_again(self.proc_stat.as_ref()?)?;
            homing_shim::process::stat_field_in(&text, at)?.parse().ok()
        };
        // /proc/PID/status: "Uid:\treal\teffective\tsaved\tfs".
        let status_field = |key: &str, at: usize| -> Option<i64> {
            let text = read_again(self.proc_status.as_ref()?)?;
            status_line(&text, key)?
                .split_whitespace()
                .nth(at)?
                .parse()
                .ok()
        };
        // One ioctl where the kernel has it, a quarter of a read of /proc.
        let told = |field: fn(&PidfdIdentity) -> u32| -> Option<i64> {
            homing_shim::process::pidfd_identity(self.pidfd.as_fd())
                .ok()
                .map(|identity| field(&identity).into())
        };
        match call.nr as i64 {
            libc::SYS_getppid => told(|i| i.ppid).or_else(|| stat_field(1)),
            libc::SYS_getpgrp => stat_field(2),
            libc::SYS_getpgid if self.names_deputy(call.args[0]) => stat_field(2),
            libc::SYS_getsid if self.names_deputy(call.args[0]) => stat_field(3),
            libc::SYS_getuid => told(|i| i.ruid).or_else(|| status_field("Uid:", 0)),
            libc::SYS_geteuid => told(|i| i.euid).or_else(|| status_field("Uid:", 1)),
            libc::SYS_getgid => told(|i| i.rgid).or_else(|| status_field("Gid:", 0)),
            libc::SYS_getegid => told(|i| i.egid).or_else(|| status_field("Gid:", 1)),
            _ => None,
        }
    }

    /// A `getcwd`: the deputy's cwd, read now from its `/proc` entry,
    /// which names it from the same root (the deputy shares the agent's).
    /// A cwd removed since, or one the root does not reach, goes to the
    /// deputy, whose kernel says what then (ENOENT).
    fn cwd_path(&self, call: &SyscallCall) -> Option<SyscallResult> {
        if !self.looks_up_paths {
            return None;
        }
        let cwd = rustix::fs::readlink(format!("/proc/{}/cwd", self.pid), Vec::new()).ok()?;
        let mut path = cwd.into_bytes();
        if !path.starts_with(b"/") || path.ends_with(b" (deleted)") {
            return None;
        }
        path.push(0);
        if path.len() as u64 > call.args[1] {
            return Some(failed(libc::ERANGE));
        }
        Some(SyscallResult {
            ret: path.len() as i64,
            outputs: vec![syscall::ArgData {
                index: 0,
                bytes: path,
            }],
        })
    }

    /// Whether a pid argument names the deputy itself (0, or its pid).
    fn names_deputy(&self, pid: u64) -> bool {
        pid == 0 || pid as i32 == self.pid
    }

    /// A `getrlimit`, or a `prlimit64` that only reads, of the deputy
    /// itself: its limit, read now (limits are the process's, not a
    /// thread's). `None` for any other call, and where the deputy's own
    /// call would fail (a resource that is none, no buffer).
    fn read_limit(&self, call: &SyscallCall) -> Option<SyscallResult> {
        let args = &call.args;
        let (resource, buffer_at) = match call.nr as i64 {
            libc::SYS_getrlimit => (args[0], 1),
            libc::SYS_prlimit64 if self.names_deputy(args[0]) && args[2] == 0 => (args[1], 3),
            _ => return None,
        };
        if args[buffer_at] == 0 {
            return None;
        }
        let resource = u32::try_from(resource).ok()?;
        let (soft, hard) = self.limit(resource)?;
        Some(SyscallResult {
            ret: 0,
            outputs: vec![syscall::ArgData {
                index: buffer_at as u8,
                bytes: [soft.to_ne_bytes(), hard.to_ne_bytes()].concat(),
            }],
        })
    }

    /// Whether the deputy may write a file of any size (no
    /// `RLIMIT_FSIZE`), read now: another process may set it
    /// (`prlimit --pid`).
    fn writes_any_size(&self) -> bool {
        self.limit(libc::RLIMIT_FSIZE)
            .is_some_and(|(soft, _)| soft == libc::RLIM_INFINITY)
    }

    /// The deputy's limit of `resource` as (soft, hard), read now.
    fn limit(&self, resource: u32) -> Option<(u64, u64)> {
        if self.prlimit_works {
            return homing_shim::process::limit(self.pid, resource, None).ok();
        }
        let text = read_again(self.proc_limits.as_ref()?)?;
        homing_shim::process::parse_limits(&text)
            .into_iter()
            .find(|(of, ..)| *of == resource)
            .map(|(_, soft, hard)| (soft, hard))
    }

    /// A `stat`, `readlink` or `access` of a path (in any of their forms),
    /// or an open that cannot create (when the path leads nowhere),
    /// looked up here as the deputy would look it up (see the module doc);
    /// `None` sends it to the deputy.
    fn look_up_path(&mut self, call: &SyscallCall, ahead: bool) -> Option<SyscallResult> {
        let args = &call.args;
        let nofollow = libc::AT_SYMLINK_NOFOLLOW as u64;
        let follows = |flags: u64| flags & nofollow == 0;
        // (dirfd, where the path is, whether its last link is followed,
        // and what is done with what it names)
        let (dirfd, path_at, follow, then) = match call.nr as i64 {
            libc::SYS_stat => (libc::AT_FDCWD, 0, true, Then::Stat { buffer_at: 1 }),
            libc::SYS_lstat => (libc::AT_FDCWD, 0, false, Then::Stat { buffer_at: 1 }),
            libc::SYS_newfstatat if args[3] & !(nofollow | libc::AT_NO_AUTOMOUNT as u64) == 0 => (
                args[0] as i32,
                1,
                follows(args[3]),
                Then::Stat { buffer_at: 2 },
            ),
            libc::SYS_statx if args[2] & libc::AT_EMPTY_PATH as u64 == 0 => {
                (args[0] as i32, 1, follows(args[2]), Then::Statx)
            }
            libc::SYS_readlink => (libc::AT_FDCWD, 0, false, Then::Readlink { buffer_at: 1 }),
            libc::SYS_readlinkat => (args[0] as i32, 1, false, Then::Readlink { buffer_at: 2 }),
            libc::SYS_access => (libc::AT_FDCWD, 0, true, Then::Access { mode: args[1] }),
            libc::SYS_faccessat => (args[0] as i32, 1, true, Then::Access { mode: args[2] }),
            libc::SYS_faccessat2 if args[3] & !(nofollow | libc::AT_EACCESS as u64) == 0 => (
                args[0] as i32,
                1,
                follows(args[3]),
                Then::Access { mode: args[2] },
            ),
            libc::SYS_open if syscall::opens_only_what_is_there(args[1]) => {
                (libc::AT_FDCWD, 0, open_follows(args[1]), Then::OpenIfThere)
            }
            libc::SYS_openat if syscall::opens_only_what_is_there(args[2]) => {
                (args[0] as i32, 1, open_follows(args[2]), Then::OpenIfThere)
            }
            _ => return None,
        };
        if !self.looks_up_paths {
            return None;
        }
        let path = call.inputs.iter().find(|i| i.index == path_at)?;
        let path = path.bytes.strip_suffix(&[0]).unwrap_or(&path.bytes);
        if path.is_empty() {
            return None;
        }
        let walker = self.walker()?;
        let (dir, path) = match dirfd {
            // An absolute path starts from the root whatever the fd.
            _ if path.starts_with(b"/") => self.start_of(&walker, path)?,
            libc::AT_FDCWD => (self.cwd()?, path),
            fd if fd < 0 => return None,
            fd => {
                let dir = self.duplicate(fd)?;
                if !on_local_filesystem(&dir) {
                    return None;
                }
                (dir, path)
            }
        };
        let mut flags = OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        let found = match walker.walk(dir.as_fd(), path, flags)? {
            Ok(found) => found,
            Err(error) => {
                let errno = error.raw_os_error();
                return WALK_ANSWERS.contains(&errno).then(|| SyscallResult {
                    ret: -(errno as i64),
                    outputs: vec![],
                });
            }
        };
        // The same call on what was found: the fd with an empty path.
        let fd = found.as_raw_fd() as u64;
        let empty = libc::AT_EMPTY_PATH as u64;
        let (nr, here_args, buffer_at) = match then {
            Then::Stat { buffer_at } => (
                libc::SYS_newfstatat,
                [fd, 1, args[buffer_at], empty, 0, 0],
                buffer_at,
            ),
            Then::Statx => (
                libc::SYS_statx,
                [fd, 1, (args[2] & !nofollow) | empty, args[3], args[4], 0],
                4,
            ),
            Then::Readlink { buffer_at } => (
                libc::SYS_readlinkat,
                [fd, 1, args[buffer_at], args[buffer_at + 1], 0, 0],
                buffer_at,
            ),
            Then::Access { mode } => (
                libc::SYS_faccessat2,
                [fd, 1, mode, empty | libc::AT_EACCESS as u64, 0, 0],
                0,
            ),
            // What is there is the program's to open, not one asked ahead.
            Then::OpenIfThere if ahead => return None,
            Then::OpenIfThere => {
                let flags = args[usize::from(path_at) + 1];
                return self.open_here(&walker, dir.as_fd(), path, flags, found);
            }
        };
        let here = SyscallCall {
            nr: nr as u64,
            args: here_args,
            inputs: vec![homing_proto::syscall::ArgData {
                index: 1,
                bytes: vec![0],
            }],
        };
        let Route::Forward(ptrs) = syscall::route(here.nr, &here.args) else {
            return None;
        };
        // What was found is stat'ed and read as it is; only access is
        // checked with the deputy's rights.
        let _as_deputy = match then {
            Then::Access { .. } => Some(walker.take_on()?),
            _ => None,
        };
        let mut result = homing_shim::execute::execute(&here, &ptrs);
        if matches!(then, Then::Readlink { .. }) && result.ret == -(libc::ENOENT as i64) {
            // What was found is no link: readlink of a path says EINVAL.
            result.ret = -(libc::EINVAL as i64);
        }
        for output in &mut result.outputs {
            output.index = buffer_at as u8;
        }
        Some(result)
    }

    /// A `readlink` of one of the deputy's own fd links
    /// (`/proc/self/fd/N`, `/proc/thread-self/fd/N`, `/proc/PID/fd/N`):
    /// the link of this agent's duplicate of that fd, which names the same
    /// file from the same root. A host asks it of each file its program
    /// maps. `None` for anything else, and for an fd the fast path does
    /// not take (a pipe, a socket, the deputy's own).
    fn fd_link(&mut self, call: &SyscallCall) -> Option<SyscallResult> {
        let (path_at, buffer_at) = match call.nr as i64 {
            libc::SYS_readlink => (0, 1),
            libc::SYS_readlinkat => (1, 2),
            _ => return None,
        };
        if !self.looks_up_paths {
            return None;
        }
        let path = call.inputs.iter().find(|i| i.index == path_at)?;
        let path = std::str::from_utf8(path.bytes.strip_suffix(&[0])?).ok()?;
        let own = format!("/proc/{}/fd/", self.pid);
        let number = ["/proc/self/fd/", "/proc/thread-self/fd/", own.as_str()]
            .iter()
            .find_map(|prefix| path.strip_prefix(prefix))?;
        // As the kernel names fds: no sign, no leading zero.
        let fd: i32 = number.parse().ok()?;
        if fd.to_string() != number {
            return None;
        }
        let room = usize::try_from(call.args[buffer_at + 1]).ok()?;
        if room == 0 {
            return None;
        }
        let file = self.duplicate(fd)?;
        let link = format!("/proc/self/fd/{}", file.as_raw_fd());
        let mut target = rustix::fs::readlink(link.as_str(), Vec::new())
            .ok()?
            .into_bytes();
        target.truncate(room);
        Some(SyscallResult {
            ret: target.len() as i64,
            outputs: vec![syscall::ArgData {
                index: buffer_at as u8,
                bytes: target,
            }],
        })
    }

    /// Opens here, for the program, the regular file or directory a walk
    /// for its open for reading found (`found`, `O_PATH`), as the deputy
    /// would open it:
    /// with its credentials, at the number the deputy's kernel would give
    /// it, with the answer the deputy would add (see
    /// [`homing_shim::execute::prefetch`]). The deputy takes the file into
    /// its table with its next call ([`Self::take_opened_here`]); one the
    /// program closes before that never goes there. So open, read and
    /// close of a file cost the deputy nothing. `None`: the deputy opens.
    ///
    /// Only while the deputy has answered every call but closes (see
    /// [`Changes::only_closing`]), for a program that has never held a record lock, and never
    /// anything but a regular file or a directory: opening a FIFO or a
    /// device may do something of its own (let a writer waiting in its
    /// open go on).
    fn open_here(
        &mut self,
        walker: &Walker,
        dir: BorrowedFd<'_>,
        path: &[u8],
        flags: u64,
        found: OwnedFd,
    ) -> Option<SyscallResult> {
        let flags = flags as i32;
        // Truncation writes; signal-driven I/O is left to the deputy.
        let unusual = libc::O_TRUNC | libc::O_ASYNC;
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY && flags & libc::O_PATH == 0;
        if !self.opens_files
            || !read_only
            || flags & unusual != 0
            || !syscall::opens_only_what_is_there(flags as u64)
            || self.has_locked_records
            || self.opened_here.len() >= MOST_OPENED_HERE
        {
            return None;
        }
        let kind = |file: &OwnedFd| {
            let st = rustix::fs::fstat(file).ok()?;
            Some(rustix::fs::FileType::from_raw_mode(st.st_mode))
        };
        let directory = match kind(&found)? {
            rustix::fs::FileType::RegularFile if flags & libc::O_DIRECTORY == 0 => false,
            rustix::fs::FileType::Directory => true,
            _ => return None,
        };
        drop(found);
        let number = self.free_number()?;
        // Without waiting (a lease to break, EAGAIN, is the deputy's to
        // wait for) or taking a terminal, as the deputy opens; closed on
        // exec here, as anything of the agent's (the deputy's copy is as
        // the program asked, and this flag is no part of what `F_GETFL`
        // shows).
        let here = flags | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        let opened = walker
            .open(dir, path, OFlags::from_bits_retain(here as u32))?
            .ok()?;
        // Swapped for something else since the walk: the deputy opens.
        let outputs = match directory {
            true => (kind(&opened)? == rustix::fs::FileType::Directory).then(Vec::new)?,
            false => homing_shim::execute::prefetch(opened.as_fd())?.into(),
        };
        if flags & libc::O_NONBLOCK == 0 {
            let status = rustix::fs::fcntl_getfl(&opened).ok()?;
            rustix::fs::fcntl_setfl(&opened, status - OFlags::NONBLOCK).ok()?;
        }
        let file = Arc::new(opened);
        let close_on_exec = flags & libc::O_CLOEXEC != 0;
        self.opened_here.insert(
            number,
            OpenedHere {
                file: file.clone(),
                close_on_exec,
            },
        );
        self.fds.insert(number, Some(file));
        self.opened_here_since
            .get_or_insert_with(std::time::Instant::now);
        tracing::trace!(pid = self.pid, number, "opened here for the program");
        Some(SyscallResult {
            ret: number.into(),
            outputs,
        })
    }

    /// The program's `close` of a file opened here that the deputy has not
    /// taken yet: it closes here, and the deputy never has it.
    fn close_opened_here(&mut self, call: &SyscallCall) -> Option<SyscallResult> {
        if call.nr as i64 != libc::SYS_close {
            return None;
        }
        let number = i32::try_from(call.args[0]).ok()?;
        self.opened_here.remove(&number)?;
        self.fds.remove(&number);
        if self.opened_here.is_empty() {
            self.opened_here_since = None;
        }
        Some(SyscallResult {
            ret: 0,
            outputs: vec![],
        })
    }

    /// The number the deputy's kernel would give the next fd it opens:
    /// the lowest free in its table and not given to a file opened here,
    /// if below its limit. `None` while the deputy has a call to answer
    /// but closes (which may open any fd meanwhile), or if its table
    /// cannot be looked at.
    fn free_number(&mut self) -> Option<i32> {
        // A close the deputy has yet to make frees its number before the
        // open the program made after it.
        let closing = self.changes.only_closing()?;
        if !self.known_now() {
            self.deputy_fds = Some((self.sent_to_deputy, BTreeSet::new()));
        }
        let Some((_, in_use)) = &mut self.deputy_fds else {
            return None;
        };
        for fd in &closing {
            in_use.remove(fd);
        }
        // Every call but closes has been answered by now.
        let answered = self.last_not_closing;
        self.handed.retain(|_, sent| *sent >= answered);
        let mut number = 0;
        loop {
            if self.opened_here.contains_key(&number)
                || in_use.contains(&number)
                || self.handed.contains_key(&number)
            {
                number = number.checked_add(1)?;
                continue;
            }
            if closing.contains(&number)
                || !homing_shim::process::has_fd(self.pid, number, self.pidfd.as_fd()).ok()?
            {
                break;
            }
            in_use.insert(number);
            number = number.checked_add(1)?;
        }
        let (soft, _) = self.limit(libc::RLIMIT_NOFILE)?;
        (u64::try_from(number).ok()? < soft).then_some(number)
    }

    /// Whether the numbers known in use in the deputy's table are known
    /// still (but for closes under way): no call has been sent it since
    /// they were looked at.
    fn known_now(&self) -> bool {
        matches!(&self.deputy_fds, Some((sent, _)) if *sent == self.sent_to_deputy)
    }

    /// The deputy's open file numbered `fd` (a duplicate sharing its open
    /// file description), a file opened here for it included.
    fn deputy_file(&self, fd: i32) -> rustix::io::Result<OwnedFd> {
        match self.opened_here.get(&fd) {
            Some(opened) => rustix::io::fcntl_dupfd_cloexec(&*opened.file, 0),
            None => pidfd_getfd(self.pidfd.as_fd(), fd, PidfdGetfdFlags::empty()),
        }
    }

    /// Opens a program for a host to fetch for an exec (see
    /// [`syscall::OPEN_PROGRAM`]): found by its path, looked up here with
    /// the deputy's credentials, or by an fd of the deputy's that the
    /// deputy opened with `O_PATH`; and the dynamic loader it names, found
    /// by its path, where that can be done here. `None`: not here (the
    /// deputy answers ENOSYS).
    fn open_program(&mut self, call: &SyscallCall) -> Option<SyscallResult> {
        let walker = self.walker()?;
        let found = match call.inputs.iter().find(|i| i.index == 0) {
            Some(path) => match self.walk_to_program(&walker, &path.bytes)? {
                Ok(found) => found,
                Err(errno) => return Some(failed(errno)),
            },
            None => {
                let fd = i32::try_from(call.args[0]).ok()?;
                self.deputy_file(fd).ok()?
            }
        };
        let program = match self.open_found_program(&walker, found)? {
            Ok(program) => program,
            Err(refused) => return Some(refused),
        };
        let mut outputs = vec![
            syscall::ArgData {
                index: syscall::PREFETCHED_STAT,
                bytes: program.stat,
            },
            syscall::ArgData {
                index: syscall::PROGRAM_PATH,
                bytes: program.home_path,
            },
        ];
        // What the host would ask for next, saving it a round trip.
        let interpreter = homing_remote_agent::home_loader::interpreter_of(&*program.opened);
        let loader = interpreter.ok().flatten().and_then(|interpreter| {
            let found = self.walk_to_program(&walker, &interpreter.path)?.ok()?;
            self.open_found_program(&walker, found)?.ok()
        });
        if let Some(loader) = loader {
            let fd = loader.number.to_ne_bytes().to_vec();
            outputs.extend(
                [
                    (syscall::LOADER_FD, fd),
                    (syscall::LOADER_STAT, loader.stat),
                    (syscall::LOADER_PATH, loader.home_path),
                ]
                .map(|(index, bytes)| syscall::ArgData { index, bytes }),
            );
        }
        Some(SyscallResult {
            ret: program.number.into(),
            outputs,
        })
    }

    /// Opens `found`, what a walk for an exec found: checked for execution
    /// with the deputy's credentials, as `execve` would check it, then
    /// opened for reading with the agent's, which may read what the deputy
    /// may only execute; the host knows it by the number it gets. `Err`:
    /// the deputy's exec would fail, with that answer. `None`: not here.
    fn open_found_program(
        &mut self,
        walker: &Walker,
        found: OwnedFd,
    ) -> Option<Result<OpenedProgram, SyscallResult>> {
        {
            // As `execve` checks it: with the effective ids.
            let _as_deputy = walker.take_on()?;
            let flags = libc::AT_EMPTY_PATH | libc::AT_EACCESS;
            let may_run = on_found(&found, libc::SYS_faccessat2, libc::X_OK as u64, flags)?;
            if may_run.ret < 0 {
                return Some(Err(may_run));
            }
        }
        let regular = rustix::fs::fstat(&found).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        });
        if !regular {
            return Some(Err(failed(libc::EACCES)));
        }
        let link = format!("/proc/self/fd/{}", found.as_raw_fd());
        // Its path as the deputy would name it, where the agent sees the
        // same mounts from the same root (the host asks the deputy else).
        let home_path = match self.looks_up_paths {
            true => rustix::fs::readlink(link.as_str(), Vec::new()).ok()?,
            false => Default::default(),
        };
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let opened = rustix::fs::open(link.as_str(), flags, Mode::empty()).ok()?;
        let stat = on_found(&opened, libc::SYS_newfstatat, 1, libc::AT_EMPTY_PATH)?;
        let stat = stat.outputs.into_iter().find(|o| o.index == 2)?.bytes;
        let opened = Arc::new(opened);
        let number = self.keep(opened.clone())?;
        Some(Ok(OpenedProgram {
            number,
            stat,
            home_path: home_path.into_bytes(),
            opened,
        }))
    }

    /// Looks up the program at `path` (NUL-terminated) with the deputy's
    /// credentials, following links, as a path lookup here may (see the
    /// module doc): what it found (`O_PATH`), or why nothing; `None`:
    /// not here.
    fn walk_to_program(&mut self, walker: &Walker, path: &[u8]) -> Option<Result<OwnedFd, i32>> {
        let path = path.strip_suffix(&[0]).unwrap_or(path);
        if path.is_empty() {
            return Some(Err(libc::ENOENT));
        }
        if !self.looks_up_paths {
            return None;
        }
        let (dir, path) = match path.starts_with(b"/") {
            true => self.start_of(walker, path)?,
            false => (self.cwd()?, path),
        };
        match walker.walk(dir.as_fd(), path, OFlags::CLOEXEC)? {
            Ok(found) => Some(Ok(found)),
            Err(error) => {
                let errno = error.raw_os_error();
                WALK_ANSWERS.contains(&errno).then_some(Err(errno))
            }
        }
    }

    /// Where a walk of the absolute `path` begins, and what is left of it
    /// to walk from there (never empty): the root and the path, or, for a
    /// path below another mount point, that mount's root, reached from
    /// the root by the path's own text (see [`crate::mounts`]), and the
    /// rest. `None`: the deputy walks it (the mount point is not reached
    /// so from the caches, or is no root of a mount on a local
    /// filesystem).
    fn start_of<'p>(
        &mut self,
        walker: &Walker,
        path: &'p [u8],
    ) -> Option<(Arc<OwnedFd>, &'p [u8])> {
        let root = self.root.clone()?;
        let Some(point) = crate::mounts::longest_within(path) else {
            return Some((root, path));
        };
        let mount = walker.walk_cached(root.as_fd(), &point)?.ok()?;
        let attribute = rustix::fs::StatxAttributes::MOUNT_ROOT;
        let mount_root = rustix::fs::statx(
            &mount,
            "",
            rustix::fs::AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::BASIC_STATS,
        )
        .is_ok_and(|st| {
            st.stx_attributes_mask.contains(attribute) && st.stx_attributes.contains(attribute)
        });
        if !mount_root || !on_local_filesystem(&mount) {
            return None;
        }
        let rest = &path[point.len()..];
        let rest = match rest.iter().position(|&b| b != b'/') {
            Some(at) => &rest[at..],
            // The mount point itself.
            None => b".",
        };
        Some((Arc::new(mount), rest))
    }

    /// Keeps `file` for the host, under the number it returns.
    fn keep(&mut self, file: Arc<OwnedFd>) -> Option<i32> {
        let number = self.next_held;
        self.next_held = self.next_held.checked_add(1)?;
        self.held.insert(number, file);
        Some(number)
    }

    /// Keeps the file the program is about to map shared and writable on
    /// its host (see [`syscall::HOLD_MAPPED`]), if no other process here
    /// has it open. `None`: not here (the deputy answers ENOSYS).
    fn hold_mapped(&mut self, call: &SyscallCall) -> Option<SyscallResult> {
        let fd = i32::try_from(call.args[0]).ok()?;
        // The deputy's own open file: a lease taken on it looks past the
        // deputy's open, and only past that one.
        let file = match self.deputy_file(fd) {
            Ok(file) => file,
            Err(error) => return Some(failed(error.raw_os_error())),
        };
        match homing_shim::execute::open_only_here(file.as_fd()) {
            Ok(true) => {}
            // Programs on one host share one copy, as processes here share
            // the file: a database several of them use maps alike there.
            Ok(false) if self.opened_only_by_neighbours(&file) => {}
            Ok(false) => return Some(failed(libc::EBUSY)),
            Err(error) => {
                tracing::debug!(
                    pid = self.pid,
                    fd,
                    "cannot tell whether another process has the file open: {error}"
                );
                return Some(failed(libc::EBUSY));
            }
        }
        let number = self.keep(Arc::new(file))?;
        Some(SyscallResult {
            ret: number.into(),
            outputs: vec![],
        })
    }

    /// Whether every process here that has `file` open but this agent and
    /// the deputy is a deputy whose program runs on the same host as the
    /// deputy's: one that maps it maps the same copy there. Each process's
    /// fds are looked at (`/proc/PID/fd`, as `fuser` does), only when a
    /// lease could not be taken, at a mapping.
    fn opened_only_by_neighbours(&self, file: &OwnedFd) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(wanted) = rustix::fs::fstat(file) else {
            return false;
        };
        let Ok(processes) = std::fs::read_dir("/proc") else {
            return false;
        };
        let own = std::process::id() as i32;
        for process in processes.flatten() {
            let Some(pid) = process
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if pid == self.pid || pid == own {
                continue;
            }
            let fds = match std::fs::read_dir(process.path().join("fd")) {
                Ok(fds) => fds,
                // Ended meanwhile.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                // Cannot tell.
                Err(_) => return false,
            };
            let opens_it = fds.flatten().any(|fd| {
                std::fs::metadata(fd.path())
                    .is_ok_and(|st| st.dev() == wanted.st_dev && st.ino() == wanted.st_ino)
            });
            if opens_it && !(self.neighbour)(pid) {
                return false;
            }
        }
        true
    }

    /// A `pread64`, `pwrite64` or `close` of a file kept for the host.
    fn use_held(&mut self, call: &mut SyscallCall) -> Option<SyscallResult> {
        let number = call.args[0] as i32;
        if call.nr as i64 == libc::SYS_close {
            return Some(match self.held.remove(&number) {
                Some(_) => SyscallResult {
                    ret: 0,
                    outputs: vec![],
                },
                None => failed(libc::EBADF),
            });
        }
        let Some(file) = self.held.get(&number) else {
            return Some(failed(libc::EBADF));
        };
        let Route::Forward(ptrs) = syscall::route(call.nr, &call.args) else {
            return None;
        };
        Some(run_on(file, call, &ptrs))
    }

    /// Forgets what a call that has returned may have changed.
    fn forget(&mut self, change: Change) {
        match change {
            Change::Fd(fd) => drop(self.fds.remove(&fd)),
            Change::Fds => self.fds.clear(),
            Change::Cwd => self.cwd = None,
            Change::Credentials => self.walker = None,
            // The program's own: its host has it already, or it named
            // another thread, which the deputy's main one stands for here.
            Change::Nice => self.nice_on_host = None,
            Change::All => {
                self.fds.clear();
                self.cwd = None;
                self.walker = None;
            }
        }
        // A file opened here since is the program's at that number, not
        // what the change was about (a close answered after the open that
        // took its number).
        for (&number, opened) in &self.opened_here {
            self.fds.insert(number, Some(opened.file.clone()));
        }
    }

    /// The deputy's credentials for a path walk, if the walk can be made
    /// here with them: a root deputy with all the agent's capabilities, or
    /// another with none.
    fn walker(&mut self) -> Option<Arc<Walker>> {
        if self.walker.is_none() {
            self.walker = Some(self.read_walker().map(Arc::new));
        }
        self.walker.clone().flatten()
    }

    fn read_walker(&self) -> Option<Walker> {
        let status = read_again(self.proc_status.as_ref()?)?;
        let field = |key: &str| status_line(&status, key);
        // "Uid:\treal\teffective\tsaved\tfs": one identity for every
        // check (`stat` walks with the fs ids, `access` with the real ones,
        // AT_EACCESS with the effective ones), or none is made here.
        let one_id = |key: &str| -> Option<u32> {
            let ids: Vec<&str> = field(key)?.split_whitespace().collect();
            let (real, effective, fs) = (ids.first()?, ids.get(1)?, ids.get(3)?);
            (real == effective && real == fs).then(|| real.parse().ok())?
        };
        let capabilities = u64::from_str_radix(field("CapEff:")?.trim(), 16).ok()?;
        let walker = Walker {
            fsuid: one_id("Uid:")?,
            fsgid: one_id("Gid:")?,
            groups: field("Groups:")?
                .split_whitespace()
                .map(|gid| gid.parse().ok())
                .collect::<Option<Vec<u32>>>()?,
            registered: OnceLock::new(),
        };
        let agent = agent_identity()?;
        let as_agent = walker.fsuid == agent.fsuid && capabilities == agent.capabilities;
        let unprivileged = walker.fsuid != 0 && capabilities == 0;
        (as_agent || unprivileged).then_some(walker)
    }

    /// The deputy's cwd, opened here.
    fn cwd(&mut self) -> Option<Arc<OwnedFd>> {
        if self.cwd.is_none() {
            let cwd = rustix::fs::open(
                format!("/proc/{}/cwd", self.pid),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()?;
            if !on_local_filesystem(&cwd) {
                return None;
            }
            self.cwd = Some(Arc::new(cwd));
        }
        self.cwd.clone()
    }

    fn duplicate(&mut self, fd: i32) -> Option<Arc<OwnedFd>> {
        if self.changes.exec_under_way() {
            return None;
        }
        if let Some(known) = self.fds.get(&fd) {
            return known.clone();
        }
        // Taken now, it could be the file a close on its way to the deputy
        // is about to close (a program's close and its next call come
        // together): the call goes to the deputy, behind the close.
        if self.changes.fd_under_way(fd) {
            return None;
        }
        let dup = pidfd_getfd(self.pidfd.as_fd(), fd, PidfdGetfdFlags::empty()).ok()?;
        let eligible = rustix::fs::fstat(&dup).is_ok_and(|st| {
            use rustix::fs::FileType;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => true,
                // A listing of the deputy's own fds in `/proc` must not
                // show its agent socket: the deputy lists those.
                FileType::Directory => !on_procfs(&dup),
                FileType::CharacterDevice => never_waits(st.st_rdev),
                _ => false,
            }
        });
        let entry = eligible.then(|| Arc::new(dup));
        self.fds.insert(fd, entry.clone());
        entry
    }
}

/// Whether process `pid` holds a POSIX record lock (or whether that cannot
/// be told): `/proc/locks` names the holder of each.
fn holds_record_locks(pid: i32) -> bool {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return true;
    };
    // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
    locks.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"POSIX") && fields.get(4) == Some(&pid.to_string().as_str())
    })
}

/// Runs `nr` (`faccessat2` or `newfstatat`) on `found` itself, an empty
/// path, with `arg` (the mode, or a stat buffer's stand-in) and `flags`.
fn on_found(found: &OwnedFd, nr: i64, arg: u64, flags: i32) -> Option<SyscallResult> {
    let call = SyscallCall {
        nr: nr as u64,
        args: [found.as_raw_fd() as u64, 1, arg, flags as u64, 0, 0],
        inputs: vec![syscall::ArgData {
            index: 1,
            bytes: vec![0],
        }],
    };
    let Route::Forward(ptrs) = syscall::route(call.nr, &call.args) else {
        return None;
    };
    Some(homing_shim::execute::execute(&call, &ptrs))
}

/// Whether a directory's listing has nothing left from its position: a
/// `getdents64` with room for no entry returns 0 there, and EINVAL (having
/// moved nowhere: an entry that does not fit is not passed) where one is
/// left. Only on a local filesystem, whose listing is known to work so.
fn at_directory_end(dir: &OwnedFd) -> bool {
    if !on_local_filesystem(dir) {
        return false;
    }
    let probe = SyscallCall {
        nr: libc::SYS_getdents64 as u64,
        args: [dir.as_raw_fd() as u64, 1, 1, 0, 0, 0],
        inputs: vec![],
    };
    let Route::Forward(ptrs) = syscall::route(probe.nr, &probe.args) else {
        return false;
    };
    homing_shim::execute::execute(&probe, &ptrs).ret == 0
}

/// Runs `call` on `local`, an fd of this agent's standing for the one it
/// names, taking its input buffers: a read into a buffer not zeroed
/// first ([`read_unzeroed`]), anything else through the executor.
fn run_on(local: &OwnedFd, call: &mut SyscallCall, ptrs: &[PtrArg]) -> SyscallResult {
    read_unzeroed(local, call).unwrap_or_else(|| execute_on(local, call, ptrs))
}

/// Runs `call` on `local` through the executor, taking its input buffers.
fn execute_on(local: &OwnedFd, call: &mut SyscallCall, ptrs: &[PtrArg]) -> SyscallResult {
    // A write's bytes go to the kernel as they came.
    let mut here = SyscallCall {
        nr: call.nr,
        args: call.args,
        inputs: std::mem::take(&mut call.inputs),
    };
    here.args[0] = local.as_raw_fd() as u64;
    homing_shim::execute::execute_owned(here, ptrs)
}

/// A `read` or `pread64` of `file`, a well-formed one (a buffer, no
/// input, a length the executor takes, not 0), into a buffer the kernel
/// fills without zeroing it first: the answer the executor would give, a
/// megabyte's `memset` cheaper. `None` for any other call.
fn read_unzeroed(file: &OwnedFd, call: &SyscallCall) -> Option<SyscallResult> {
    let nr = call.nr as i64;
    let [_, buffer, len, offset, ..] = call.args;
    let len = usize::try_from(len).ok()?;
    // An empty read has no buffer to fill (and rustix wants room for one
    // byte at least).
    let well_formed = buffer != 0
        && call.inputs.is_empty()
        && (1..=homing_shim::execute::MAX_BUFFER).contains(&len);
    if !well_formed {
        return None;
    }
    let mut bytes = Vec::with_capacity(len);
    let spare = rustix::buffer::spare_capacity(&mut bytes);
    let read = match nr {
        libc::SYS_read => rustix::io::read(file, spare),
        libc::SYS_pread64 if i64::try_from(offset).is_ok() => {
            rustix::io::pread(file, spare, offset)
        }
        _ => return None,
    };
    Some(match read {
        Ok(count) => SyscallResult {
            ret: count as i64,
            outputs: vec![syscall::ArgData { index: 1, bytes }],
        },
        Err(errno) => failed(errno.raw_os_error()),
    })
}

/// A call's answer that it failed with `errno`.
fn failed(errno: i32) -> SyscallResult {
    SyscallResult {
        ret: -i64::from(errno),
        outputs: vec![],
    }
}

/// Whether `call` is a `newfstatat` or `statx` of its fd itself (an empty
/// path with AT_EMPTY_PATH): glibc's `fstat` is one of those.
fn stats_the_fd(call: &SyscallCall) -> bool {
    let flags_at = match call.nr as i64 {
        libc::SYS_newfstatat => 3,
        libc::SYS_statx => 2,
        _ => return false,
    };
    let empty_path = call
        .inputs
        .iter()
        .find(|input| input.index == 1)
        .is_some_and(|path| path.bytes.first().is_none_or(|&byte| byte == 0));
    call.args[flags_at] & libc::AT_EMPTY_PATH as u64 != 0 && empty_path
}

/// The whole of a `/proc` file, made anew by reading it from the start.
fn read_again(file: &File) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    let mut length = 0;
    loop {
        let room = buffer.len() - length;
        let read = file.read_at(&mut buffer[length..], length as u64).ok()?;
        length += read;
        // A /proc file gives all it has to a read with room for it.
        if read < room {
            break;
        }
        buffer.resize(2 * length, 0);
    }
    buffer.truncate(length);
    String::from_utf8(buffer).ok()
}

/// Whether process `pid` resolves paths as the agent does: the same mount
/// namespace and the same root.
fn same_namespace_and_root(pid: i32) -> bool {
    let namespace = |of: &str| std::fs::read_link(format!("/proc/{of}/ns/mnt")).ok();
    let root = |path: &str| {
        std::fs::metadata(path).ok().map(|m| {
            (
                std::os::unix::fs::MetadataExt::dev(&m),
                std::os::unix::fs::MetadataExt::ino(&m),
            )
        })
    };
    let pid = pid.to_string();
    namespace(&pid).is_some()
        && namespace(&pid) == namespace("self")
        && root(&format!("/proc/{pid}/root")).is_some()
        && root(&format!("/proc/{pid}/root")) == root("/")
}

/// Whether `dir` is on a local filesystem (see [`local_filesystem`]).
fn on_local_filesystem(dir: &OwnedFd) -> bool {
    rustix::fs::fstatfs(dir).is_ok_and(|fs| local_filesystem(fs.f_type))
}

fn on_procfs(dir: &OwnedFd) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    rustix::fs::fstatfs(dir).map_or(true, |fs| fs.f_type == PROC_SUPER_MAGIC)
}

/// The value of line `key` (`"Uid:"`) of a `/proc/PID/status` text.
fn status_line<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| line.strip_prefix(key))
}

/// Whether a filesystem of type `kind` (`f_type`) is local: a lookup
/// there cannot wait on a network.
fn local_filesystem(kind: i64) -> bool {
    const LOCAL: &[i64] = &[
        0xEF53,     // ext2, ext3, ext4
        0x58465342, // xfs
        0x9123683E, // btrfs
        0x01021994, // tmpfs
        0x858458F6, // ramfs
        0x794C7630, // overlayfs
        0xF2F52010, // f2fs
        0x2FC12FC1, // zfs
        0xCA451A4E, // bcachefs
    ];
    LOCAL.contains(&kind)
}

/// What a path lookup does with what it found.
#[derive(Clone, Copy)]
enum Then {
    /// `stat`, `lstat`, `newfstatat`: the stat buffer is argument `buffer_at`.
    Stat {
        buffer_at: usize,
    },
    Statx,
    /// `readlink`, `readlinkat`: the buffer and its size are arguments
    /// `buffer_at` and the next.
    Readlink {
        buffer_at: usize,
    },
    /// `access`, `faccessat`, `faccessat2`.
    Access {
        mode: u64,
    },
    /// `open`, `openat` of what must be there already (no `O_CREAT`):
    /// a path that leads nowhere is answered here, with why (a compiler's
    /// search for a header tries every directory of its path); what is
    /// there is opened by the deputy.
    OpenIfThere,
}

/// Whether an open with `flags` follows a link its path ends in.
fn open_follows(flags: u64) -> bool {
    flags as i32 & libc::O_NOFOLLOW == 0
}

/// A program opened for a host to fetch for an exec.
struct OpenedProgram {
    /// The number the host knows it by.
    number: i32,
    /// Its `struct stat`.
    stat: Vec<u8>,
    /// Its path as the deputy would name it (empty where not known here).
    home_path: Vec<u8>,
    opened: Arc<OwnedFd>,
}

/// What a path walk checks a deputy's rights with.
struct Walker {
    fsuid: u32,
    fsgid: u32,
    groups: Vec<u32>,
    /// These credentials registered for cached walks, at the first walk
    /// that needs them (`None`: they could not be).
    registered: OnceLock<Option<walk_ring::Identity>>,
}

/// Drops the supplementary groups of a privileged agent, in every
/// thread: its capabilities already give it what they would, and a path
/// walk for a deputy whose one group is its own then need not change
/// this thread's groups and change them back (two of the six calls a
/// walk as the deputy costs). To be called before the first walk.
pub fn drop_own_groups() -> std::io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    nix::unistd::setgroups(&[]).map_err(std::io::Error::from)
}

/// The agent's own: its filesystem uid and gid, groups and capabilities.
struct AgentIdentity {
    fsuid: u32,
    fsgid: u32,
    groups: Vec<rustix::process::Gid>,
    capabilities: u64,
}

fn agent_identity() -> Option<&'static AgentIdentity> {
    static AGENT: std::sync::OnceLock<Option<AgentIdentity>> = std::sync::OnceLock::new();
    AGENT
        .get_or_init(|| {
            // Made before any walk: the thread's ids are the agent's own,
            // and it never changes them but for a walk (its fs ids follow
            // its effective ones).
            let own = std::process::id() as i32;
            Some(AgentIdentity {
                fsuid: rustix::process::geteuid().as_raw(),
                fsgid: rustix::process::getegid().as_raw(),
                groups: rustix::process::getgroups().ok()?,
                capabilities: u64::from_str_radix(
                    &homing_shim::process::status_field(own, "CapEff:")?,
                    16,
                )
                .ok()?,
            })
        })
        .as_ref()
}

impl Walker {
    /// Looks `path` up from `dir` (`O_PATH`, with `flags`) with these
    /// credentials, neither crossing a mount (which could lead off this
    /// filesystem, or into /proc, where "self" is the agent) nor following
    /// a magic link: what it found, or why nothing. `None`: the walk
    /// cannot be made here.
    fn walk(
        &self,
        dir: BorrowedFd<'_>,
        path: &[u8],
        flags: OFlags,
    ) -> Option<Result<OwnedFd, Errno>> {
        self.open(dir, path, flags | OFlags::PATH)
    }

    /// Walks `path` from `dir` as [`Self::walk`] does, but through no
    /// symbolic link, across mounts, and from the kernel's caches alone,
    /// so that no filesystem on the way can make it wait. `None`: it
    /// cannot be made so here.
    fn walk_cached(&self, dir: BorrowedFd<'_>, path: &[u8]) -> Option<Result<OwnedFd, Errno>> {
        let resolve =
            ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS | ResolveFlags::CACHED;
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        if let Some(identity) = self.registered() {
            let path = std::ffi::CString::new(path).ok()?;
            return Some(identity.open_cached(dir, &path, flags, resolve));
        }
        // Unregistered, a walk is the agent's own: only for these
        // credentials.
        if self.fsuid != agent_identity()?.fsuid {
            return None;
        }
        Some(open_at(dir, path, flags, resolve))
    }

    /// Opens `path` from `dir` with `flags` and these credentials, walking
    /// it as [`Self::walk`] does.
    fn open(
        &self,
        dir: BorrowedFd<'_>,
        path: &[u8],
        flags: OFlags,
    ) -> Option<Result<OwnedFd, Errno>> {
        let resolve = ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
        if let Some(identity) = self.registered() {
            let cached = std::ffi::CString::new(path)
                .map_err(|_| Errno::INVAL)
                .and_then(|path| identity.open_cached(dir, &path, flags, resolve));
            match cached {
                // Not from the kernel's caches (or a kernel older than
                // RESOLVE_CACHED, which says EINVAL): the ordinary way.
                Err(Errno::AGAIN) | Err(Errno::INVAL) => {}
                done => return Some(done),
            }
        }
        let _as_deputy = self.take_on()?;
        Some(open_at(dir, path, flags, resolve))
    }

    /// These credentials as registered for cached walks, unless they are
    /// the agent's own (which a walk need not change).
    fn registered(&self) -> Option<&walk_ring::Identity> {
        if self.fsuid == agent_identity()?.fsuid {
            return None;
        }
        self.registered
            .get_or_init(|| {
                let _as_deputy = self.take_on()?;
                walk_ring::Identity::register_current()
            })
            .as_ref()
    }

    /// Takes on these credentials in this thread until the guard goes.
    /// `None` (nothing changed) where they cannot be taken.
    fn take_on(&self) -> Option<AsDeputy> {
        let agent = agent_identity()?;
        if self.fsuid == agent.fsuid {
            return Some(AsDeputy {
                agent: None,
                groups_set: false,
            });
        }
        // The groups a walk is checked with are the fs gid and the
        // supplementary groups: where the deputy has no group but its own
        // and the agent none at all (see `drop_own_groups`), they are
        // the same sets once the fs gid is the deputy's, and two calls of
        // the six are saved.
        let same_groups = agent.groups.is_empty() && self.groups.iter().all(|&g| g == self.fsgid);
        if !same_groups {
            let groups: Vec<rustix::process::Gid> = self
                .groups
                .iter()
                .map(|&g| rustix::process::Gid::from_raw(g))
                .collect();
            rustix::thread::set_thread_groups(&groups).ok()?;
        }
        let guard = AsDeputy {
            agent: Some(agent),
            groups_set: !same_groups,
        };
        nix::unistd::setfsgid(nix::unistd::Gid::from_raw(self.fsgid));
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(self.fsuid));
        Some(guard)
    }
}

/// `openat2` of a path given as bytes, with this thread's credentials.
fn open_at(
    dir: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let path = std::ffi::OsStr::from_bytes(path);
    rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve)
}

/// The agent's thread walking as a deputy; back to the agent when dropped.
struct AsDeputy {
    agent: Option<&'static AgentIdentity>,
    /// Whether the deputy's supplementary groups were taken on.
    groups_set: bool,
}

impl Drop for AsDeputy {
    fn drop(&mut self) {
        if let Some(agent) = self.agent {
            // The fsuid first: going back to it gives the capabilities back.
            nix::unistd::setfsuid(nix::unistd::Uid::from_raw(agent.fsuid));
            nix::unistd::setfsgid(nix::unistd::Gid::from_raw(agent.fsgid));
            if !self.groups_set {
                return;
            }
            if let Err(error) = rustix::thread::set_thread_groups(&agent.groups) {
                tracing::error!("the agent's groups could not be restored: {error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the executor answers to `nr(file, buffer, len, offset)`.
    fn executed(file: &OwnedFd, nr: i64, len: u64, offset: u64) -> SyscallResult {
        let mut call = read_call(nr, len, offset);
        let Route::Forward(ptrs) = syscall::route(call.nr, &call.args) else {
            panic!("reads are forwarded");
        };
        execute_on(file, &mut call, &ptrs)
    }

    fn read_call(nr: i64, len: u64, offset: u64) -> SyscallCall {
        SyscallCall {
            nr: nr as u64,
            args: [0, 0x7000_1000, len, offset, 0, 0],
            inputs: vec![],
        }
    }

    /// This test's process standing for a deputy.
    fn own_fast_path() -> FastPath {
        let own = std::process::id() as i32;
        FastPath::new(own, Arc::new(Changes::default()), Box::new(|_| false), true).unwrap()
    }

    /// A file `name` holding `bytes`, in a directory of the test's own
    /// (`homing-TAG-PID` in the temp dir, for the test to remove): the
    /// directory and the file.
    fn file_in_own_dir(
        tag: &str,
        name: &str,
        bytes: &[u8],
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("homing-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn open_call(path: &std::path::Path, flags: i32) -> SyscallCall {
        let mut bytes = path.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        SyscallCall {
            nr: libc::SYS_open as u64,
            args: [0, flags as u64, 0, 0, 0, 0],
            inputs: vec![syscall::ArgData { index: 0, bytes }],
        }
    }

    #[test]
    fn an_open_for_reading_is_made_here_and_handed_to_the_deputy_with_its_next_call() {
        let (dir, path) = file_in_own_dir("open-here", "file", b"first bytes");
        let mut fast = own_fast_path();

        let mut open = open_call(&path, libc::O_RDONLY | libc::O_CLOEXEC);
        // Not before the deputy has answered a call: it may be setting
        // itself up.
        assert!(fast.try_execute(&mut open, false).is_none());
        fast.changes.answered(0);
        // This process stands for the deputy: the number is its lowest free.
        let lowest_free = (0..)
            .find(|n| std::fs::read_link(format!("/proc/self/fd/{n}")).is_err())
            .unwrap();
        let opened = fast.try_execute(&mut open, false).expect("opened here");
        let number = i32::try_from(opened.ret).expect("a number");
        assert_eq!(number, lowest_free);
        assert_eq!(
            opened.output(syscall::PREFETCHED_DATA),
            Some(&b"first bytes"[..])
        );
        // Read here, at the number the program knows.
        let mut read = read_call(libc::SYS_pread64, 5, 6);
        read.args[0] = number as u64;
        let got = fast.try_execute(&mut read, false).expect("read here");
        assert_eq!(got.ret, 5);
        assert_eq!(got.outputs[0].bytes, b"bytes");
        // Its link in the deputy's /proc names it, as the deputy's would.
        let mut link = format!("/proc/self/fd/{number}").into_bytes();
        link.push(0);
        let mut readlink = |room: u64| {
            let mut call = SyscallCall {
                nr: libc::SYS_readlink as u64,
                args: [0x7000_0000, 0x7000_1000, room, 0, 0, 0],
                inputs: vec![syscall::ArgData {
                    index: 0,
                    bytes: link.clone(),
                }],
            };
            fast.try_execute(&mut call, false).expect("answered here")
        };
        let whole = path.as_os_str().as_bytes();
        assert_eq!(readlink(4096).outputs[0].bytes, whole);
        assert_eq!(readlink(4096).ret, whole.len() as i64);
        assert_eq!(readlink(3).outputs[0].bytes, &whole[..3]);
        // Asked ahead of the program, an open is never made.
        assert!(fast.try_execute(&mut open_call(&path, 0), true).is_none());
        // A second, closed before any call goes to the deputy: it never
        // has it, and its number is given again.
        let second = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert!(second.ret > opened.ret);
        let mut close = SyscallCall {
            nr: libc::SYS_close as u64,
            args: [second.ret as u64, 0, 0, 0, 0, 0],
            inputs: vec![],
        };
        assert_eq!(fast.try_execute(&mut close, false).unwrap().ret, 0);
        let third = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert_eq!(third.ret, second.ret);
        assert!(fast.opened_here_due().is_some());
        let given = fast.take_opened_here().expect("files for the deputy");
        assert_eq!(given.numbers, [(number, true), (third.ret as i32, false)]);
        assert!(fast.take_opened_here().is_none());
        assert!(fast.opened_here_due().is_none());
        // Given, their numbers are the deputy's.
        let after = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert!(![opened.ret, third.ret].contains(&after.ret), "{after:?}");
        fast.take_opened_here();

        // A close the deputy has yet to make frees its number first.
        let taken = after.ret as i32;
        let close_taken = SyscallCall {
            nr: libc::SYS_close as u64,
            args: [taken as u64, 0, 0, 0, 0, 0],
            inputs: vec![],
        };
        fast.observe(9, &close_taken);
        let again = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert_eq!(again.ret, after.ret);
        fast.changes.answered(9);
        let mut read = read_call(libc::SYS_pread64, 5, 0);
        read.args[0] = taken as u64;
        assert_eq!(fast.try_execute(&mut read, false).unwrap().ret, 5);
        fast.take_opened_here();

        // Not while the deputy has another call to answer, nor for
        // writing, nor what is not a regular file or directory.
        fast.observe(1, &read_call(libc::SYS_read, 1, 0));
        assert!(fast.try_execute(&mut open_call(&path, 0), false).is_none());
        fast.changes.answered(1);
        assert!(fast.try_execute(&mut open_call(&path, 0), false).is_some());
        assert!(fast
            .try_execute(&mut open_call(&path, libc::O_RDWR), false)
            .is_none());
        let null = std::path::Path::new("/dev/null");
        assert!(fast.try_execute(&mut open_call(null, 0), false).is_none());
        assert!(fast
            .try_execute(&mut open_call(&path, libc::O_DIRECTORY), false)
            .is_none());
        let listing = fast.try_execute(&mut open_call(&dir, libc::O_DIRECTORY), false);
        assert!(listing.is_some_and(|opened| opened.ret >= 0 && opened.outputs.is_empty()));
        fast.take_opened_here();
        // Nor once the program has taken a record lock.
        let mut lock = read_call(libc::SYS_fcntl, 0, 0);
        lock.args[1] = libc::F_SETLK as u64;
        fast.observe(2, &lock);
        fast.changes.answered(2);
        assert!(fast.try_execute(&mut open_call(&path, 0), false).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_number_handed_to_the_deputy_is_not_given_again_before_it_has_placed_it() {
        let (dir, path) = file_in_own_dir("handed", "file", b"bytes");
        // A deputy of its own, whose table holds 0, 1 and 2 alone, and
        // which never places what it is handed (as one that has not read
        // the handover yet).
        let mut deputy = std::process::Command::new("sleep")
            .arg("60")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let changes = Arc::new(Changes::default());
        let mut fast =
            FastPath::new(deputy.id() as i32, changes, Box::new(|_| false), true).unwrap();
        let getppid = SyscallCall {
            nr: libc::SYS_getppid as u64,
            args: [0; 6],
            inputs: vec![],
        };
        let close = |fd: u64| SyscallCall {
            nr: libc::SYS_close as u64,
            args: [fd, 0, 0, 0, 0, 0],
            inputs: vec![],
        };
        fast.observe(0, &getppid);
        fast.changes.answered(0);
        // The deputy is closing its 3: the program's next open gets it.
        fast.observe(1, &close(3));
        let first = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert_eq!(first.ret, 3);
        // Handed over with no call after it (the files waited their time):
        // while that close is under way, 3 is no longer the one it frees.
        let handed = fast.take_opened_here().expect("a file to hand over");
        assert_eq!(handed.numbers, [(3, false)]);
        let second = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert_eq!(second.ret, 4);
        fast.changes.answered(1);
        fast.take_opened_here();
        // A close sent after the handover frees the number once made.
        fast.observe(2, &close(3));
        let third = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert_eq!(third.ret, 3);
        fast.changes.answered(2);
        fast.take_opened_here();
        // A later call answered says the handovers were read: the table is
        // believed again, and shows 3 free (nothing was placed).
        fast.observe(3, &getppid);
        assert!(fast.try_execute(&mut open_call(&path, 0), false).is_none());
        fast.changes.answered(3);
        let fourth = fast.try_execute(&mut open_call(&path, 0), false).unwrap();
        assert_eq!(fourth.ret, 3);
        deputy.kill().unwrap();
        deputy.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cwd_is_read_now_and_a_buffer_too_small_is_refused() {
        let mut fast = own_fast_path();
        let mut getcwd = |size: u64| {
            let mut call = SyscallCall {
                nr: libc::SYS_getcwd as u64,
                args: [0x7000_1000, size, 0, 0, 0, 0],
                inputs: vec![],
            };
            fast.try_execute(&mut call, false).expect("answered here")
        };
        let mut cwd = std::os::unix::ffi::OsStringExt::into_vec(
            std::env::current_dir().unwrap().into_os_string(),
        );
        cwd.push(0);
        let whole = getcwd(4096);
        assert_eq!(whole.ret, cwd.len() as i64);
        assert_eq!(whole.outputs[0].bytes, cwd);
        assert_eq!(getcwd(cwd.len() as u64).ret, cwd.len() as i64);
        assert_eq!(getcwd(cwd.len() as u64 - 1).ret, -i64::from(libc::ERANGE));
    }

    #[test]
    fn only_the_memory_devices_that_never_wait_are_served_here() {
        let rdev = |path: &str| rustix::fs::stat(path).unwrap().st_rdev;
        for path in ["/dev/null", "/dev/zero", "/dev/full", "/dev/urandom"] {
            assert!(never_waits(rdev(path)), "{path}");
        }
        // A terminal, and memory a read of which needs privilege.
        assert!(!never_waits(rustix::fs::makedev(5, 0)));
        assert!(!never_waits(rustix::fs::makedev(1, 1)));
    }

    #[test]
    fn reads_into_unzeroed_buffers_answer_as_the_executor_does() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let (dir, path) = file_in_own_dir("unzeroed", "data", &data);
        let file = OwnedFd::from(File::open(&path).unwrap());
        let directory = OwnedFd::from(File::open(&dir).unwrap());
        for (len, offset) in [(4096, 0), (1 << 20, 0), (1, 5), (10, 99_995), (10, 200_000)] {
            let unzeroed = read_unzeroed(&file, &read_call(libc::SYS_pread64, len, offset));
            assert_eq!(
                unzeroed,
                Some(executed(&file, libc::SYS_pread64, len, offset)),
                "pread64 of {len} at {offset}"
            );
        }
        // Reads move the fd's offset alike: the two take turns through
        // the file, each going on where the other stopped.
        let mut at = 0;
        for turn in 0..8 {
            let read = match turn % 2 {
                0 => read_unzeroed(&file, &read_call(libc::SYS_read, 30_000, 0)).unwrap(),
                _ => executed(&file, libc::SYS_read, 30_000, 0),
            };
            let end = (at + 30_000).min(data.len());
            assert_eq!(read.ret, (end - at) as i64, "turn {turn}");
            assert_eq!(read.output(1), Some(&data[at..end]), "turn {turn}");
            at = end;
        }
        let on_directory = read_unzeroed(&directory, &read_call(libc::SYS_read, 16, 0));
        assert_eq!(
            on_directory,
            Some(executed(&directory, libc::SYS_read, 16, 0))
        );
        assert_eq!(on_directory.unwrap().ret, -i64::from(libc::EISDIR));
        // What the executor alone judges (no buffer, an offset past any
        // file's, no length or one over its limit) is left to it.
        assert_eq!(read_unzeroed(&file, &read_call(libc::SYS_read, 0, 0)), None);
        let mut unbuffered = read_call(libc::SYS_read, 16, 0);
        unbuffered.args[1] = 0;
        assert_eq!(read_unzeroed(&file, &unbuffered), None);
        assert_eq!(
            read_unzeroed(&file, &read_call(libc::SYS_pread64, 16, u64::MAX)),
            None
        );
        let too_long = homing_shim::execute::MAX_BUFFER as u64 + 1;
        assert_eq!(
            read_unzeroed(&file, &read_call(libc::SYS_read, too_long, 0)),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
