//! Forwarded system calls: how each residual syscall's arguments travel.
//!
//! A guest's residual syscall is executed at home, in the deputy's context,
//! with the same number and the same integer arguments. Pointer arguments
//! cannot travel as pointers: [`route`] says, for each syscall the host may
//! see, which arguments point at memory, in which direction the data flows
//! and how long it is. The host copies input buffers out of the guest, the
//! deputy points the syscall at local copies, and the output buffers come
//! back to be written into the guest. This table is the one place that
//! knows syscall argument layouts; both ends read it.
//!
//! The table is also a safety boundary: the deputy substitutes its own
//! buffers for exactly the pointers described here and passes every other
//! argument through unchanged. A forwarded syscall whose pointer argument
//! was left out would make the kernel read or write the *deputy's* memory at
//! an address the guest chose. So every row names every pointer, requests
//! whose layout the table cannot describe (ioctls, fcntl commands, socket
//! options carrying nested pointers) are refused, and an unknown syscall
//! is refused with `ENOSYS`.
//!
//! x86_64 only (syscall numbers and struct sizes are that ABI's).

use serde::{Deserialize, Serialize};

/// Longest C string (a path) copied out of a guest, terminator included.
pub const MAX_CSTR: usize = 4096;

// Numbers of syscalls newer than the `libc` crate's table.
const SYS_MAP_SHADOW_STACK: i64 = 453;
const SYS_FUTEX_WAKE: i64 = 454;
const SYS_FUTEX_WAIT: i64 = 455;
const SYS_FUTEX_REQUEUE: i64 = 456;

/// Syscalls the guest executes on the host node, never intercepted: the
/// seccomp filter allows them.
///
/// Why each group is local:
///
/// - **Memory** (`brk`, `munmap`, `mprotect`, `mremap`, `madvise`, the
///   `mlock` family, `mincore`, `msync`, `membarrier`, protection keys,
///   `mseal`, `map_shadow_stack`): the address space is the host's. `mmap`
///   is *not* here: the filter allows it only for anonymous memory, and a
///   file mapping goes to the supervisor ([`Special::MmapFile`]). So are
///   its NUMA placement (`get_mempolicy`, `set_mempolicy`, `mbind`,
///   `set_mempolicy_home_node`, `migrate_pages`, `move_pages`: the host's
///   memory nodes, which a move does not carry) and the memory of another
///   process read or written by pid (`process_vm_readv`/`writev`, as MPI
///   libraries move data between the ranks of one node): a pid names a
///   guest of the same home on this host, by its home pid, and one that
///   runs elsewhere is not found (`ESRCH`).
/// - **Futexes and thread bookkeeping** (`futex`, `futex_waitv`,
///   `futex_wake`/`wait`/`requeue`, robust lists, `set_tid_address`, `rseq`,
///   `arch_prctl`): they name memory and threads on the host.
/// - **Signals** (`rt_sigprocmask`, `rt_sigreturn`, `rt_sigpending`,
///   `rt_sigsuspend`, `rt_sigtimedwait`, `sigaltstack`, `restart_syscall`,
///   `pause`): signals are delivered to the guest on the host, so its
///   handlers, mask and pending set live there. Timers that raise signals
///   (`alarm`, `getitimer`, `setitimer`, `timer_*`) too. `rt_sigaction`
///   is local too but for SIGCHLD, which the filter sends to the
///   supervisor ([`Special::ChildSignal`]).
/// - **Clocks and sleeps** (`clock_gettime`, `clock_getres`,
///   `gettimeofday`, `time`, `nanosleep`, `clock_nanosleep`): the nodes'
///   clocks agree through NTP, and sleeping is the host CPU's business.
/// - **CPU and scheduling** (`sched_yield`, `sched_getparam`,
///   `sched_setparam`, `sched_getscheduler`, `sched_setscheduler`,
///   `sched_getattr`, `sched_setattr`, `sched_get_priority_max`/`min`,
///   `sched_rr_get_interval`, `getcpu`, `getrusage`, `times`): the
///   process runs on the host's CPUs and is accounted there; the host's kernel decides what policy it may
///   take by the limits (`RLIMIT_RTPRIO`, `RLIMIT_NICE`) it carries from
///   home. Programs call the `sched_*` ones with pid 0 (themselves); a
///   nonzero pid would be resolved among the host's pids.
///   `sched_getaffinity` and `sched_setaffinity` are local too where they
///   name the caller (pid 0): the filter sends another's to the
///   supervisor ([`Special::Affinity`]).
/// - **Process-local state** (`prctl`, `capget`, `personality`,
///   `getrandom`, `exit`): nothing in them names a file, an fd, a pid of
///   another process or an identity that lives at home. (The agent learns
///   of an exit by waiting for the guest; `exit_group` it sees first, see
///   [`Special::Exit`].)
///
/// Nothing here takes a file descriptor or a path, or changes credentials.
pub const LOCAL: &[i64] = &[
    // Memory.
    libc::SYS_brk,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_munlock,
    libc::SYS_mlockall,
    libc::SYS_munlockall,
    libc::SYS_mincore,
    libc::SYS_msync,
    libc::SYS_membarrier,
    libc::SYS_pkey_mprotect,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_mseal,
    SYS_MAP_SHADOW_STACK,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy,
    libc::SYS_mbind,
    libc::SYS_set_mempolicy_home_node,
    libc::SYS_migrate_pages,
    libc::SYS_move_pages,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    // Futexes and thread bookkeeping.
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    SYS_FUTEX_WAKE,
    SYS_FUTEX_WAIT,
    SYS_FUTEX_REQUEUE,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_set_tid_address,
    libc::SYS_rseq,
    libc::SYS_arch_prctl,
    // Signals.
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_pause,
    libc::SYS_alarm,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_timer_create,
    libc::SYS_timer_settime,
    libc::SYS_timer_gettime,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_delete,
    // Clocks and sleeps.
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    // CPU and scheduling.
    libc::SYS_sched_yield,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_setparam,
    libc::SYS_sched_getattr,
    libc::SYS_sched_setattr,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_getcpu,
    libc::SYS_getrusage,
    libc::SYS_times,
    // Process-local state (prctl too, but for the program's seccomp mode
    // and no_new_privs: the filter tells them apart by argument).
    libc::SYS_personality,
    libc::SYS_getrandom,
    libc::SYS_exit,
];

/// Whether `nr` is in [`LOCAL`].
pub fn is_local(nr: u64) -> bool {
    i64::try_from(nr).is_ok_and(|nr| LOCAL.contains(&nr))
}

/// Which way a pointer argument's data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Read by the syscall: copied from the guest before the call.
    In,
    /// Written by the syscall: copied into the guest after the call.
    Out,
    /// Both.
    InOut,
    /// Host-side state: the temporary signal mask of `ppoll`, `pselect6`,
    /// `epoll_pwait` and `epoll_pwait2`.
    ///
    /// Signals are delivered to the guest on the host, so the mask means
    /// something only there (the host applies it to the guest for the
    /// duration of the forwarded call, if it can). The deputy runs the call
    /// with this argument **null**: a guest's mask applied at home would
    /// unblock signals the deputy keeps blocked for itself. A host may send
    /// the bytes as an input (the deputy checks and ignores them) or not.
    /// Nothing comes back.
    Host,
}

/// How long a pointer argument's buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// A NUL-terminated string of at most [`MAX_CSTR`] bytes (terminator included).
    CStr,
    /// A fixed number of bytes (a struct).
    Fixed(usize),
    /// The value of argument `arg` times `elem` bytes.
    Arg {
        /// Index of the argument holding the count.
        arg: u8,
        /// Bytes per counted element.
        elem: usize,
    },
    /// A value-result buffer (a `sockaddr` or a socket option value): its
    /// length is the `socklen_t` that pointer argument `arg` (an `InOut`
    /// `Fixed(4)` argument of the same row) points at, at most `max`.
    ///
    /// The deputy gives the kernel `min(*arg, max)` as the length, and
    /// returns only the bytes the kernel says it filled (the value of `*arg`
    /// after the call, capped by the length it was given), so an output is
    /// never longer than the guest's own buffer. [`buffer_len`] gives `max`,
    /// the bound on any output.
    ValueResult {
        /// Index of the pointer argument holding the length.
        arg: u8,
        /// Upper bound on the length.
        max: usize,
    },
    /// A header of `header` bytes, then as many bytes as argument `arg`
    /// says: a System V message, a `long` type then its text.
    Headed {
        /// Bytes before the counted ones.
        header: usize,
        /// Index of the argument holding the count.
        arg: u8,
    },
}

/// One pointer argument of a forwarded syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtrArg {
    /// Index of the argument (0..6). A null pointer is passed through as null.
    pub index: u8,
    /// Direction of the data.
    pub dir: Dir,
    /// Buffer length.
    pub len: Len,
    /// For output buffers: when `Some(elem)`, only the first `ret * elem`
    /// bytes are meaningful (`read` returns how many bytes it wrote); the
    /// rest is neither sent nor written into the guest.
    pub ret_elems: Option<usize>,
}

/// What the host does with a syscall that reached its supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Execute at home with these pointer arguments (possibly none).
    Forward(Vec<PtrArg>),
    /// Needs host-side logic of its own (mmap of a file, readv, fork, …).
    Special(Special),
    /// Not supported: the guest gets `errno`, and the host logs the syscall's name.
    Refuse {
        /// The errno returned (ENOSYS for an unknown syscall, ENOTTY for an unknown ioctl, …).
        errno: i32,
    },
}

/// Syscalls handled by host-side logic rather than by the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `mmap` of a file descriptor: mapped from the host's cached copy of the home file.
    MmapFile,
    /// `readv`/`preadv`/`preadv2`: gathered into one buffer and forwarded as a read.
    ReadVector,
    /// `writev`/`pwritev`/`pwritev2`: gathered and forwarded as one write.
    WriteVector,
    /// `gettid`: the guest's main thread answers with its home pid.
    Gettid,
    /// `getpid`: the process's home pid, known on the host (a pid never
    /// changes: no round trip home needed).
    Getpid,
    /// `fork`/`vfork`/`clone` of a process: the deputy forks at home, then
    /// the guest forks here.
    Fork,
    /// `execve`: the new program comes from home and replaces the guest.
    Exec,
    /// `sendmsg`/`recvmsg`, and `sendmmsg`/`recvmmsg` as one of those per
    /// message: the message header is flattened (see [`message`]).
    Message,
    /// `rt_sigaction` of SIGCHLD (the filter lets any other through): it
    /// runs on the host, and the deputy takes the same stand on its
    /// children's zombies (ignored, or `SA_NOCLDWAIT`), since they are
    /// the deputies of the program's children.
    ChildSignal,
    /// `exit_group`: the process ends on the host, and the host holds
    /// that end back from a parent that is a guest too until the parent
    /// can take its SIGCHLD as it would at home.
    Exit,
    /// `sched_getaffinity`/`sched_setaffinity` of another process (the
    /// filter lets a process's own through): it runs on the host, but one
    /// guest may learn through it what another did, which the host must
    /// see (a process's affinity is the one thing of its that another
    /// guest can set, and it can read, without a call home).
    Affinity,
    /// `seccomp`, and `prctl` of the seccomp mode, `no_new_privs` or the
    /// name (the filter lets every other `prctl` through): the guest runs
    /// under homing's filter, with the `no_new_privs` that takes, so the
    /// host answers with the program's own, and lets a filter of the
    /// program's be installed as the kernel would at home; a name the main
    /// thread takes, the deputy takes too (see [`SET_NAME`]).
    Sandbox,
}

/// How `sendmsg` and `recvmsg` travel. Their `struct msghdr` points at an
/// address, an iovec array and control data, which no table row can
/// describe, so the host flattens it: the call goes home with the same
/// number and
/// `args = [fd, 0, flags, name length, control length, data length]`,
/// the iovecs gathered into one data buffer. `sendmsg` carries the three
/// buffers as inputs; `recvmsg` gets them back as outputs, with
/// [`message::RETURNED`]: the address length and `msg_flags` the kernel
/// set. The deputy builds its own `msghdr` around its own buffers, so
/// fds passed with `SCM_RIGHTS` are home fds, as the program's are.
pub mod message {
    /// The slot of the data (the iovecs, gathered).
    pub const DATA: u8 = 1;
    /// The slot of the address (`msg_name`).
    pub const NAME: u8 = 3;
    /// The slot of the control data (`msg_control`).
    pub const CONTROL: u8 = 4;
    /// `recvmsg` only: `msg_namelen` (u32) then `msg_flags` (i32), as set.
    pub const RETURNED: u8 = 5;
    /// Longest address: `struct sockaddr_storage`.
    pub const MAX_NAME: usize = 128;
    /// Most control data (the kernel's default `optmem_max` is 20 KiB).
    pub const MAX_CONTROL: usize = 64 << 10;
    /// Most data in one message.
    pub const MAX_DATA: usize = 8 << 20;
    /// `struct msghdr`'s size.
    pub const HEADER_LEN: usize = 56;
}

/// Output index, in the answer to an `open`/`openat` for reading only that
/// opened a regular file, of the file's `struct stat` as it was just
/// after the open. Such an answer also carries [`PREFETCHED_DATA`]: home
/// reads ahead so that the program's first reads can be answered on the
/// host (see [`opens_for_reading`]).
pub const PREFETCHED_STAT: u8 = 250;
/// Output index of the file's first bytes (up to [`PREFETCH_LEN`], fewer
/// only at its end), read without moving the fd's offset.
pub const PREFETCHED_DATA: u8 = 251;
/// How much of a file opened for reading home sends with the open.
pub const PREFETCH_LEN: usize = 16 << 10;
/// Output index, in the answer to a `read` of a regular file that home
/// ran on its fast path, of the fd's offset just after the read (8 bytes,
/// native order): where the program's next read begins, which the host may
/// ask for before the program does (a `pread64` there).
pub const OFFSET_AFTER: u8 = 252;
/// Output index, in the answer to a `getdents64` that returned entries,
/// that home's agent adds (empty) when nothing was left after them: a
/// `getdents64` made then would have returned 0.
pub const DIRECTORY_END: u8 = 254;
/// Output index, in the answer to a call asked ahead of the program
/// ([`crate::guest::ToHome::Syscall`]'s `ahead`), that home's agent adds
/// (empty, and nothing else) when it could not answer the call itself:
/// such a call never goes to the deputy.
pub const NOT_ANSWERED_AHEAD: u8 = 249;
/// Output index the deputy adds to its answer to a call that changed
/// which signals the program's signalfds ask for (a `signalfd4`, or a
/// `close` or `dup2` of one): those signals, as a `u64` mask (bit `n - 1`
/// for signal `n`, native-endian). The host then sends such a signal the
/// program raises itself home, where the signalfd reads it.
pub const SIGNALFD_SIGNALS: u8 = 245;

/// A call no kernel has, which only the home agent answers: opens a
/// program for an exec, for reading whatever its read permission, if the
/// program's credentials may execute it. The program is the one at the
/// path in input 0, looked up with those credentials as `execve` would
/// look it up (from the cwd, following links); or, with no input, what
/// the deputy's fd arg 0 (opened with `O_PATH`) names. What they may not
/// execute, or is no regular file, is refused with EACCES, as `execve`
/// refuses it. The answer is an fd that only `pread64` and `close` may
/// use (the deputy never has it), with the file's stat as output
/// [`PREFETCHED_STAT`] and its canonical path as output [`PROGRAM_PATH`]
/// (empty where the agent and the deputy do not see the same mounts from
/// the same root: the deputy's `/proc/self/fd` link names it then).
/// ENOSYS: not answered there (the deputy got it): by path, the agent
/// cannot look it up (another mount on the way, a magic link); by fd, it
/// cannot open programs at all.
///
/// Where the program names a dynamic loader (`PT_INTERP`) that the agent
/// could open the same way, the answer carries that loader opened too:
/// its fd as output [`LOADER_FD`], its stat as [`LOADER_STAT`] and its
/// path as [`LOADER_PATH`]. Where it could not, they are left out, and
/// the host asks for the loader by its path.
pub const OPEN_PROGRAM: u64 = 0x7000_0001;
/// Output indexes of the dynamic loader an [`OPEN_PROGRAM`] answer
/// carries: its fd (an `i32`, native-endian), its stat, its path.
pub const LOADER_FD: u8 = 246;
/// See [`LOADER_FD`].
pub const LOADER_STAT: u8 = 247;
/// See [`LOADER_FD`].
pub const LOADER_PATH: u8 = 248;
/// Where the fds [`OPEN_PROGRAM`] answers with begin: past any fd a
/// process has (the kernel's `nr_open` is 2^20 unless raised), so none is
/// ever the deputy's. A guest's own call on one is refused on its host.
pub const PROGRAM_FDS_FROM: i32 = 1 << 30;
/// Whether call `nr` uses a file home's agent keeps for the host (see
/// [`OPEN_PROGRAM`] and [`HOLD_MAPPED`]): a `pread64`, `pwrite64` or
/// `close` of a number no fd of the program's ever has.
pub fn uses_held_file(nr: u64, args: &[u64; 6]) -> bool {
    [libc::SYS_pread64, libc::SYS_pwrite64, libc::SYS_close].contains(&(nr as i64))
        && args[0] as i32 >= PROGRAM_FDS_FROM
}

/// Output index of the path of what [`OPEN_PROGRAM`] opened, as
/// `/proc/self/exe` would name it.
pub const PROGRAM_PATH: u8 = 253;

/// A call no kernel has, which the deputy answers: the program's open of
/// one of its own files in `/proc` that tell of its memory, threads and
/// signals ([`PROC_VIEWS`]; its name is input 0). At home those would be
/// the deputy's; the host reads the program's own (input 1), and the
/// deputy opens its file as the program's `open` would (flags arg 0),
/// then gives the program, at the fd number that open took, a copy of it
/// with what belongs to where the program runs taken from the host's: its
/// memory, threads, signal masks, CPU time and state. Its ids, parent,
/// nice value, limits and start time stay home's.
pub const OPEN_PROC_VIEW: u64 = 0x7000_0002;
/// A call the host sends home, unanswered, when the program's main
/// thread names itself (`prctl(PR_SET_NAME)`, which runs on the host):
/// the deputy takes the name (input 0), so that `ps` at home, and the
/// program's own `/proc/self/comm` and `status`, which home answers,
/// show it.
pub const SET_NAME: u64 = 0x7000_0003;
/// A call no kernel has, which home's agent answers: the program is about
/// to map its fd arg 0, a regular file, shared and writable on its host,
/// which maps a copy and writes what changes in it back home. The agent
/// keeps the file open for as long as the deputy lives (a mapping keeps
/// its file, whatever becomes of the fd), under a number from
/// [`PROGRAM_FDS_FROM`] up that only `pread64`, `pwrite64` and `close`
/// may use (the deputy never has it). EBUSY: a process at home other than
/// the deputies of programs on the same host (which share the host's
/// copy) has the file open, so a copy would not be what it sees; ENOSYS:
/// not answered (the deputy got it).
pub const HOLD_MAPPED: u64 = 0x7000_0004;
/// The files of `/proc/PID` that [`OPEN_PROC_VIEW`] serves.
pub const PROC_VIEWS: [&str; 6] = ["status", "stat", "statm", "maps", "smaps", "smaps_rollup"];

/// Whether call `nr` with `args` opens a file for reading only (not
/// `O_PATH`): home then sends the file's stat and first bytes with its
/// answer.
pub fn opens_for_reading(nr: u64, args: &[u64; 6]) -> bool {
    let flags = match nr as i64 {
        libc::SYS_open => args[1],
        libc::SYS_openat => args[2],
        _ => return false,
    } as i32;
    flags & libc::O_ACCMODE == libc::O_RDONLY && flags & libc::O_PATH == 0
}

/// Whether an open with `flags` only opens what is there already: what it
/// finds missing it cannot make (no `O_CREAT`, no `O_TMPFILE`). Such an
/// open is a lookup, which home's agent may answer where its path leads
/// nowhere.
pub fn opens_only_what_is_there(flags: u64) -> bool {
    let flags = flags as i32;
    flags & libc::O_CREAT == 0 && flags & libc::O_TMPFILE != libc::O_TMPFILE
}

/// Data for one pointer argument, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ArgData {
    /// Index of the argument.
    pub index: u8,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A syscall to execute at home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SyscallCall {
    /// The syscall number (x86_64).
    pub nr: u64,
    /// The integer arguments as the guest passed them (pointers included, for reference).
    pub args: [u64; 6],
    /// Input buffers, one per `In`/`InOut` pointer argument that is not null.
    pub inputs: Vec<ArgData>,
}

/// The result of a syscall executed at home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SyscallResult {
    /// The return value; `-errno` on failure, as the raw syscall returns it.
    pub ret: i64,
    /// Output buffers, one per `Out`/`InOut` pointer argument that is not null.
    pub outputs: Vec<ArgData>,
}

impl SyscallResult {
    /// The bytes the call wrote through pointer argument `index`, if any.
    pub fn output(&self, index: u8) -> Option<&[u8]> {
        self.outputs
            .iter()
            .find(|o| o.index == index)
            .map(|o| &o.bytes[..])
    }
}

// x86_64 kernel ABI sizes (checked against the libc crate's types in the tests).
const STAT: usize = 144;
const STATX: usize = 256;
const STATFS: usize = 120;
const UTSNAME: usize = 6 * 65;
const RLIMIT: usize = 16;
const TIMESPEC: usize = 16;
const TIMEVAL: usize = 16;
const ITIMERSPEC: usize = 32;
const UTIMBUF: usize = 16;
const POLLFD: usize = 8;
const EPOLL_EVENT: usize = 12;
const FLOCK: usize = 32;
const F_OWNER_EX: usize = 8;
const SYSINFO: usize = 112;
const RUSAGE: usize = 144;
const SIGINFO: usize = 128;
const SIGSET: usize = 8;
/// `struct __user_cap_header_struct`: a version and a pid.
const CAP_HEADER: usize = 8;
/// Two `struct __user_cap_data_struct`s (versions 2 and 3).
const CAP_DATA: usize = 2 * 12;
/// `_LINUX_CAPABILITY_VERSION_1`, whose data is one struct.
pub const CAPABILITY_VERSION_1: u32 = 0x1998_0330;
/// `pselect6`'s sixth argument: `{ const sigset_t *ss; size_t ss_len; }`.
const PSELECT_SIGDATA: usize = 16;
const SOCKADDR_MAX: usize = 128;
const SOCKLEN: usize = 4;
const INT: usize = 4;
const FDS_PAIR: usize = 8;
const LOFF: usize = 8;
/// The kernel's `struct termios` (`TCGETS`), not glibc's 60-byte one.
const KERNEL_TERMIOS: usize = 36;
/// `struct termios2` (`TCGETS2`, which glibc 2.42 and later use for `tcgetattr`).
const KERNEL_TERMIOS2: usize = 44;
const WINSIZE: usize = 8;
/// `struct fsxattr`.
const FSXATTR: usize = 28;
/// `struct ifreq`: a name of 16 bytes and a union of 24.
const IFREQ: usize = 40;
// `kcmp` types (`linux/kcmp.h`).
const KCMP_FILE: u64 = 0;
const KCMP_FILES: u64 = 2;
const KCMP_FS: u64 = 3;
const KCMP_IO: u64 = 5;
const KCMP_SYSVSEM: u64 = 6;
const KCMP_EPOLL_TFD: u64 = 7;
/// `struct kcmp_epoll_slot`: an epoll fd, a target fd and its offset.
const KCMP_EPOLL_SLOT: usize = 12;
/// `struct timex` (`adjtimex`, `clock_adjtime`).
const TIMEX: usize = 208;
/// `struct timezone` (`settimeofday`): two ints.
const TIMEZONE: usize = 8;
/// `struct mq_attr`.
const MQ_ATTR: usize = 64;
/// `struct sigevent`.
const SIGEVENT: usize = 64;
/// `struct sembuf`: one operation of a `semop`.
const SEMBUF: usize = 6;
/// `struct semid64_ds`, as `semctl` reads and writes it.
const SEMID_DS: usize = 104;
/// `struct msqid64_ds`, as `msgctl` reads and writes it.
const MSQID_DS: usize = 120;
/// `struct seminfo` (`IPC_INFO`, `SEM_INFO` of `semctl`).
const SEMINFO: usize = 40;
/// `struct msginfo` (`IPC_INFO`, `MSG_INFO` of `msgctl`).
const MSGINFO: usize = 32;
/// A System V message's type, before its text.
const MSG_TYPE: usize = 8;
/// Largest socket option value the deputy accepts.
const SOCKOPT_MAX: usize = 64 << 10;
/// Most fds a `select` set may cover: 64 KiB per set.
const SELECT_MAX_FDS: u64 = 1 << 19;

const fn ptr(index: u8, dir: Dir, len: Len) -> PtrArg {
    PtrArg {
        index,
        dir,
        len,
        ret_elems: None,
    }
}

/// A path or other string the syscall reads.
const fn cstr(index: u8) -> PtrArg {
    ptr(index, Dir::In, Len::CStr)
}

/// A struct the syscall reads.
const fn input(index: u8, bytes: usize) -> PtrArg {
    ptr(index, Dir::In, Len::Fixed(bytes))
}

/// A struct the syscall writes.
const fn output(index: u8, bytes: usize) -> PtrArg {
    ptr(index, Dir::Out, Len::Fixed(bytes))
}

/// A struct the syscall reads and writes (or writes only in part, or only
/// sometimes: the bytes it leaves alone go back unchanged).
const fn inout(index: u8, bytes: usize) -> PtrArg {
    ptr(index, Dir::InOut, Len::Fixed(bytes))
}

/// `count` (argument `arg`) elements of `elem` bytes the syscall reads.
const fn input_counted(index: u8, arg: u8, elem: usize) -> PtrArg {
    ptr(index, Dir::In, Len::Arg { arg, elem })
}

/// Room for `count` (argument `arg`) elements of `elem` bytes, of which the
/// syscall fills as many as it returns.
const fn output_returned(index: u8, arg: u8, elem: usize) -> PtrArg {
    PtrArg {
        index,
        dir: Dir::Out,
        len: Len::Arg { arg, elem },
        ret_elems: Some(elem),
    }
}

/// A `sockaddr` the kernel fills, its length at pointer argument `len_arg`.
const fn sockaddr_out(index: u8, len_arg: u8) -> PtrArg {
    ptr(
        index,
        Dir::Out,
        Len::ValueResult {
            arg: len_arg,
            max: SOCKADDR_MAX,
        },
    )
}

/// A temporary signal mask (see [`Dir::Host`]).
const fn host_mask(index: u8, bytes: usize) -> PtrArg {
    ptr(index, Dir::Host, Len::Fixed(bytes))
}

fn forward(ptrs: &[PtrArg]) -> Route {
    Route::Forward(ptrs.to_vec())
}

fn refuse(errno: i32) -> Route {
    Route::Refuse { errno }
}

/// The bytes of an `fd_set` covering `nfds` descriptors, as the kernel
/// reads and writes it (whole longs).
fn fd_set_bytes(nfds: u64) -> usize {
    (nfds as usize).div_ceil(64) * 8
}

/// `select` and `pselect6`: three fd sets sized by `nfds` and a timeout the
/// kernel updates with the time left.
fn select_route(args: &[u64; 6], timeout: usize, mask: Option<PtrArg>) -> Route {
    // `int nfds`: the kernel refuses a negative one.
    let nfds = args[0] as u32 as i32;
    if nfds < 0 {
        return refuse(libc::EINVAL);
    }
    let nfds = nfds as u64;
    if nfds > SELECT_MAX_FDS {
        // The kernel would clamp it to the fd table's size; sets this big
        // are not worth copying.
        return refuse(libc::EINVAL);
    }
    let set = fd_set_bytes(nfds);
    let mut ptrs = vec![
        inout(1, set),
        inout(2, set),
        inout(3, set),
        inout(4, timeout),
    ];
    ptrs.extend(mask);
    Route::Forward(ptrs)
}

/// `fcntl` by command. The command's argument is a pointer for a few
/// commands only; an unknown command is refused because it might be a new
/// one that takes a pointer.
fn fcntl_route(cmd: u64) -> Route {
    // The kernel's `cmd` is an `unsigned int`.
    match cmd as u32 {
        // F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW:
        // struct flock, read, and written back by the GETLK ones.
        5..=7 | 36..=38 => forward(&[inout(2, FLOCK)]),
        // F_SETOWN_EX, F_GETOWN_EX: struct f_owner_ex.
        15 => forward(&[input(2, F_OWNER_EX)]),
        16 => forward(&[output(2, F_OWNER_EX)]),
        // F_GET_RW_HINT, F_GET_FILE_RW_HINT: a u64 out.
        1035 | 1037 => forward(&[output(2, 8)]),
        // F_SET_RW_HINT, F_SET_FILE_RW_HINT: a u64 in.
        1036 | 1038 => forward(&[input(2, 8)]),
        // An integer argument or none: F_DUPFD, F_GETFD, F_SETFD, F_GETFL,
        // F_SETFL, F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG, F_SETLEASE,
        // F_GETLEASE, F_NOTIFY, F_DUPFD_QUERY, F_CREATED_QUERY,
        // F_DUPFD_CLOEXEC, F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS,
        // F_GET_SEALS.
        0..=4 | 8..=11 | 1024..=1028 | 1030..=1034 => forward(&[]),
        // The kernel's answer to a command it does not know.
        _ => refuse(libc::EINVAL),
    }
}

/// `semctl` by command (its fourth argument is a `union semun`, passed
/// by value: a pointer for some commands, an int or nothing for others).
///
/// `GETALL` and `SETALL` read or write one `unsigned short` per semaphore
/// of the set, a count no argument gives: the host learns it first
/// (`IPC_STAT`) and puts it in the second argument, which the kernel
/// ignores for those two, and the deputy checks it against the set before
/// it runs the call (see [`SEM_COUNT_ARG`]).
fn semctl_route(cmd: u64) -> Route {
    match cmd as u32 as i32 {
        libc::IPC_STAT | libc::SEM_STAT | libc::SEM_STAT_ANY => forward(&[output(3, SEMID_DS)]),
        libc::IPC_SET => forward(&[input(3, SEMID_DS)]),
        libc::IPC_INFO | libc::SEM_INFO => forward(&[output(3, SEMINFO)]),
        libc::GETALL => forward(&[ptr(
            3,
            Dir::Out,
            Len::Arg {
                arg: SEM_COUNT_ARG,
                elem: 2,
            },
        )]),
        libc::SETALL => forward(&[input_counted(3, SEM_COUNT_ARG, 2)]),
        // The union holds an int (SETVAL) or is not used.
        libc::IPC_RMID
        | libc::GETPID
        | libc::GETVAL
        | libc::GETNCNT
        | libc::GETZCNT
        | libc::SETVAL => forward(&[]),
        _ => refuse(libc::EINVAL),
    }
}

/// The argument of a `semctl` `GETALL` or `SETALL` that the host sets to
/// the number of semaphores in the set (see [`semctl_route`]).
pub const SEM_COUNT_ARG: u8 = 1;

/// Whether `semctl` with these arguments moves one value per semaphore of
/// the set (`GETALL`, `SETALL`), so that [`SEM_COUNT_ARG`] must hold how
/// many there are.
pub fn moves_whole_semaphore_set(nr: u64, args: &[u64; 6]) -> bool {
    nr as i64 == libc::SYS_semctl && matches!(args[2] as u32 as i32, libc::GETALL | libc::SETALL)
}

/// Whether an `mq_notify` asks for a thread to be started (`SIGEV_THREAD`,
/// given the `struct sigevent` it passes): the kernel then reads a cookie
/// through a pointer inside the struct, which no table row can carry.
/// glibc's `SIGEV_THREAD` makes such calls, on a netlink socket of its own.
pub fn notifies_by_thread(nr: u64, sigevent: &[u8]) -> bool {
    const SIGEV_NOTIFY: usize = 12;
    nr as i64 == libc::SYS_mq_notify
        && sigevent
            .get(SIGEV_NOTIFY..SIGEV_NOTIFY + 4)
            .is_some_and(|word| {
                i32::from_ne_bytes(word.try_into().expect("four bytes")) == libc::SIGEV_THREAD
            })
}

/// `msgctl` by command.
fn msgctl_route(cmd: u64) -> Route {
    // MSG_STAT_ANY, which the libc crate lacks.
    const MSG_STAT_ANY: i32 = 13;
    match cmd as u32 as i32 {
        libc::IPC_STAT | libc::MSG_STAT | MSG_STAT_ANY => forward(&[output(2, MSQID_DS)]),
        libc::IPC_SET => forward(&[input(2, MSQID_DS)]),
        libc::IPC_INFO | libc::MSG_INFO => forward(&[output(2, MSGINFO)]),
        libc::IPC_RMID => forward(&[]),
        _ => refuse(libc::EINVAL),
    }
}

/// `keyctl` by operation (the kernel's numbering, `linux/keyctl.h`).
/// Those that pass structures of pointers (`KEYCTL_INSTANTIATE_IOV`, the
/// Diffie-Hellman and public-key ones) are refused as the kernel refuses
/// an operation it does not know.
fn keyctl_route(operation: u64) -> Route {
    match operation {
        // KEYCTL_JOIN_SESSION_KEYRING: a name, or null for an anonymous one.
        1 => forward(&[cstr(1)]),
        // KEYCTL_UPDATE, KEYCTL_INSTANTIATE: a payload and its length.
        2 | 12 => forward(&[input_counted(2, 3, 1)]),
        // KEYCTL_DESCRIBE, KEYCTL_READ, KEYCTL_GET_SECURITY: a buffer the
        // kernel fills with as much as fits, returning the whole size.
        6 | 11 | 17 => forward(&[output_returned(2, 3, 1)]),
        // KEYCTL_SEARCH: a type and a description; KEYCTL_RESTRICT_KEYRING:
        // a type and a restriction.
        10 | 29 => forward(&[cstr(2), cstr(3)]),
        // KEYCTL_CAPABILITIES: a buffer and its length.
        31 => forward(&[output_returned(1, 2, 1)]),
        // Integers only: KEYCTL_GET_KEYRING_ID, KEYCTL_REVOKE,
        // KEYCTL_CHOWN, KEYCTL_SETPERM, KEYCTL_CLEAR, KEYCTL_LINK,
        // KEYCTL_UNLINK, KEYCTL_NEGATE, KEYCTL_SET_REQKEY_KEYRING,
        // KEYCTL_SET_TIMEOUT, KEYCTL_ASSUME_AUTHORITY,
        // KEYCTL_SESSION_TO_PARENT, KEYCTL_REJECT, KEYCTL_INVALIDATE,
        // KEYCTL_GET_PERSISTENT, KEYCTL_MOVE.
        0 | 3..=5 | 7..=9 | 13..=16 | 18 | 19 | 21 | 22 | 30 => forward(&[]),
        _ => refuse(libc::EOPNOTSUPP),
    }
}

/// `ioctl` by request: the terminal and generic file requests a program
/// run from a shell uses. Anything else is refused with `ENOTTY`, what a
/// file answers to a request it does not know.
fn ioctl_route(request: u64) -> Route {
    // Requests as the kernel sees them (`unsigned int`).
    const TCGETS: u32 = libc::TCGETS as u32;
    const TCSETS: u32 = libc::TCSETS as u32;
    const TCSETSW: u32 = libc::TCSETSW as u32;
    const TCSETSF: u32 = libc::TCSETSF as u32;
    const TCGETS2: u32 = libc::TCGETS2 as u32;
    const TCSETS2: u32 = libc::TCSETS2 as u32;
    const TCSETSW2: u32 = libc::TCSETSW2 as u32;
    const TCSETSF2: u32 = libc::TCSETSF2 as u32;
    const TIOCGWINSZ: u32 = libc::TIOCGWINSZ as u32;
    const TIOCSWINSZ: u32 = libc::TIOCSWINSZ as u32;
    const TIOCGPGRP: u32 = libc::TIOCGPGRP as u32;
    const TIOCSPGRP: u32 = libc::TIOCSPGRP as u32;
    const TIOCGSID: u32 = libc::TIOCGSID as u32;
    const FIONREAD: u32 = libc::FIONREAD as u32;
    const TIOCOUTQ: u32 = libc::TIOCOUTQ as u32;
    const FIONBIO: u32 = libc::FIONBIO as u32;
    const FIOASYNC: u32 = libc::FIOASYNC as u32;
    const FIOCLEX: u32 = libc::FIOCLEX as u32;
    const FIONCLEX: u32 = libc::FIONCLEX as u32;
    const TIOCSCTTY: u32 = libc::TIOCSCTTY as u32;
    const TIOCNOTTY: u32 = libc::TIOCNOTTY as u32;
    const TIOCGPTN: u32 = libc::TIOCGPTN as u32;
    const TIOCSPTLCK: u32 = libc::TIOCSPTLCK as u32;
    const TIOCGPTPEER: u32 = libc::TIOCGPTPEER as u32;
    const TCFLSH: u32 = libc::TCFLSH as u32;
    const TCXONC: u32 = libc::TCXONC as u32;
    const TCSBRK: u32 = libc::TCSBRK as u32;
    const TCSBRKP: u32 = libc::TCSBRKP as u32;
    const TIOCEXCL: u32 = libc::TIOCEXCL as u32;
    const TIOCNXCL: u32 = libc::TIOCNXCL as u32;
    const TIOCGEXCL: u32 = libc::TIOCGEXCL as u32;
    const TIOCMGET: u32 = libc::TIOCMGET as u32;
    const TIOCMSET: u32 = libc::TIOCMSET as u32;
    const TIOCMBIS: u32 = libc::TIOCMBIS as u32;
    const TIOCMBIC: u32 = libc::TIOCMBIC as u32;
    /// `_IOW(0x94, 9, int)`: clone a file's extents; the argument is an fd.
    const FICLONE: u32 = 0x4004_9409;
    // A file's attributes (`lsattr`, `chattr`): an int, whatever the
    // `long` in their definitions says.
    const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
    const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
    // Its extended attributes (`xfs_io`, project ids): a struct fsxattr.
    const FS_IOC_FSGETXATTR: u32 = 0x801c_581f;
    const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
    const FIGETBSZ: u32 = 2;
    // A block device's sizes (`dd`, `blockdev`).
    const BLKGETSIZE: u32 = 0x1260;
    const BLKSSZGET: u32 = 0x1268;
    const BLKPBSZGET: u32 = 0x127b;
    const BLKGETSIZE64: u32 = 0x8008_1272;
    // A network interface, by name in a struct ifreq (if_nametoindex,
    // older tools reading an address, flags or MTU): the interfaces are
    // home's, where the program's sockets are.
    const SIOCGIFNAME: u32 = 0x8910;
    const SIOCGIFFLAGS: u32 = 0x8913;
    const SIOCGIFADDR: u32 = 0x8915;
    const SIOCGIFDSTADDR: u32 = 0x8917;
    const SIOCGIFBRDADDR: u32 = 0x8919;
    const SIOCGIFNETMASK: u32 = 0x891b;
    const SIOCGIFMETRIC: u32 = 0x891d;
    const SIOCGIFMTU: u32 = 0x8921;
    const SIOCGIFHWADDR: u32 = 0x8927;
    const SIOCGIFINDEX: u32 = 0x8933;
    const SIOCGIFTXQLEN: u32 = 0x8942;
    match request as u32 {
        TCGETS => forward(&[output(2, KERNEL_TERMIOS)]),
        TCSETS | TCSETSW | TCSETSF => forward(&[input(2, KERNEL_TERMIOS)]),
        TCGETS2 => forward(&[output(2, KERNEL_TERMIOS2)]),
        TCSETS2 | TCSETSW2 | TCSETSF2 => forward(&[input(2, KERNEL_TERMIOS2)]),
        TIOCGWINSZ => forward(&[output(2, WINSIZE)]),
        TIOCSWINSZ => forward(&[input(2, WINSIZE)]),
        TIOCGPGRP | TIOCGSID | FIONREAD | TIOCOUTQ | TIOCGPTN | TIOCGEXCL | TIOCMGET => {
            forward(&[output(2, INT)])
        }
        TIOCSPGRP | FIONBIO | FIOASYNC | TIOCSPTLCK | TIOCMSET | TIOCMBIS | TIOCMBIC => {
            forward(&[input(2, INT)])
        }
        // No argument, or an integer one.
        FIOCLEX | FIONCLEX | TIOCSCTTY | TIOCNOTTY | TIOCGPTPEER | TCFLSH | TCXONC | TCSBRK
        | TCSBRKP | TIOCEXCL | TIOCNXCL | FICLONE => forward(&[]),
        FS_IOC_GETFLAGS | FIGETBSZ | BLKSSZGET | BLKPBSZGET => forward(&[output(2, INT)]),
        FS_IOC_SETFLAGS => forward(&[input(2, INT)]),
        FS_IOC_FSGETXATTR => forward(&[output(2, FSXATTR)]),
        FS_IOC_FSSETXATTR => forward(&[input(2, FSXATTR)]),
        BLKGETSIZE | BLKGETSIZE64 => forward(&[output(2, 8)]),
        SIOCGIFNAME | SIOCGIFFLAGS | SIOCGIFADDR | SIOCGIFDSTADDR | SIOCGIFBRDADDR
        | SIOCGIFNETMASK | SIOCGIFMETRIC | SIOCGIFMTU | SIOCGIFHWADDR | SIOCGIFINDEX
        | SIOCGIFTXQLEN => forward(&[inout(2, IFREQ)]),
        _ => refuse(libc::ENOTTY),
    }
}

/// Whether a socket option's value is flat bytes the table can carry.
///
/// Whole protocol levels are allowed where their options are plain data,
/// minus the few options whose value holds a pointer (a classic BPF program,
/// the zero-copy receive area, netfilter's tables) or whose kernel code may
/// write past the length it was given. Everything else is refused: a value
/// with a pointer inside would make the kernel follow a guest address in the
/// deputy.
fn sockopt_flat(level: u64, name: u64) -> bool {
    let (level, name) = (level as u32 as i32, name as u32 as i32);
    match level {
        // SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF: struct sock_fprog.
        libc::SOL_SOCKET => !matches!(name, 26 | 51),
        // Options 64 and up are netfilter's and multicast routing's, except
        // SO_ORIGINAL_DST (80); IP_MSFILTER and MCAST_MSFILTER copy as many
        // sources as the value asks for, whatever its length.
        libc::IPPROTO_IP => ((0..64).contains(&name) && !matches!(name, 41 | 48)) || name == 80,
        // IPv6's own options reach 78, with holes where ip6tables' are
        // (64, 65, 68, 69); MCAST_MSFILTER as for IPv4; SO_ORIGINAL_DST (80).
        libc::IPPROTO_IPV6 => {
            ((0..64).contains(&name) && name != 48) || matches!(name, 66 | 67 | 70 | 72..=78 | 80)
        }
        // TCP_ZEROCOPY_RECEIVE (an address range), TCP_AO_GET_KEYS (writes
        // one value per key).
        libc::IPPROTO_TCP => !matches!(name, 35 | 41),
        libc::IPPROTO_UDP | libc::IPPROTO_ICMPV6 | libc::SOL_RAW | libc::SOL_NETLINK => true,
        _ => false,
    }
}

/// How `nr` with these arguments is handled when it reaches the host's supervisor.
///
/// Syscalls the seccomp filter lets through locally never reach here: for
/// those (see [`LOCAL`]) this answers `ENOSYS` like for any syscall the
/// table does not know.
pub fn route(nr: u64, args: &[u64; 6]) -> Route {
    use Dir::InOut;
    let Ok(nr) = i64::try_from(nr) else {
        return refuse(libc::ENOSYS);
    };
    match nr {
        // Data on fds.
        libc::SYS_read | libc::SYS_pread64 => forward(&[output_returned(1, 2, 1)]),
        libc::SYS_write | libc::SYS_pwrite64 => forward(&[input_counted(1, 2, 1)]),
        libc::SYS_readv | libc::SYS_preadv | libc::SYS_preadv2 => {
            Route::Special(Special::ReadVector)
        }
        libc::SYS_writev | libc::SYS_pwritev | libc::SYS_pwritev2 => {
            Route::Special(Special::WriteVector)
        }
        libc::SYS_lseek
        | libc::SYS_close
        | libc::SYS_close_range
        | libc::SYS_dup
        | libc::SYS_dup2
        | libc::SYS_dup3
        | libc::SYS_ftruncate
        | libc::SYS_fsync
        | libc::SYS_fdatasync
        | libc::SYS_sync
        | libc::SYS_syncfs
        | libc::SYS_fallocate
        | libc::SYS_fadvise64
        | libc::SYS_readahead
        | libc::SYS_sync_file_range
        | libc::SYS_flock
        | libc::SYS_fchdir
        | libc::SYS_fchmod
        | libc::SYS_fchown
        | libc::SYS_tee => forward(&[]),
        libc::SYS_getdents | libc::SYS_getdents64 => forward(&[output_returned(1, 2, 1)]),
        libc::SYS_fstat => forward(&[output(1, STAT)]),
        libc::SYS_fstatfs => forward(&[output(1, STATFS)]),
        libc::SYS_fcntl => fcntl_route(args[1]),
        libc::SYS_ioctl => ioctl_route(args[1]),
        libc::SYS_pipe | libc::SYS_pipe2 => forward(&[output(0, FDS_PAIR)]),
        libc::SYS_copy_file_range | libc::SYS_splice => forward(&[inout(1, LOFF), inout(3, LOFF)]),
        libc::SYS_sendfile => forward(&[inout(2, LOFF)]),
        libc::SYS_mmap => Route::Special(Special::MmapFile),

        // Paths.
        libc::SYS_open | libc::SYS_creat => forward(&[cstr(0)]),
        libc::SYS_openat => forward(&[cstr(1)]),
        // struct open_how, its size in argument 3.
        libc::SYS_openat2 => forward(&[cstr(1), input_counted(2, 3, 1)]),
        libc::SYS_stat | libc::SYS_lstat => forward(&[cstr(0), output(1, STAT)]),
        libc::SYS_newfstatat => forward(&[cstr(1), output(2, STAT)]),
        libc::SYS_statx => forward(&[cstr(1), output(4, STATX)]),
        libc::SYS_statfs => forward(&[cstr(0), output(1, STATFS)]),
        libc::SYS_readlink => forward(&[cstr(0), output_returned(1, 2, 1)]),
        libc::SYS_readlinkat => forward(&[cstr(1), output_returned(2, 3, 1)]),
        libc::SYS_access
        | libc::SYS_chdir
        | libc::SYS_mkdir
        | libc::SYS_rmdir
        | libc::SYS_unlink
        | libc::SYS_chmod
        | libc::SYS_chown
        | libc::SYS_lchown
        | libc::SYS_truncate
        | libc::SYS_mknod => forward(&[cstr(0)]),
        libc::SYS_faccessat
        | libc::SYS_faccessat2
        | libc::SYS_mkdirat
        | libc::SYS_unlinkat
        | libc::SYS_fchmodat
        | libc::SYS_fchmodat2
        | libc::SYS_fchownat
        | libc::SYS_mknodat
        | libc::SYS_inotify_add_watch => forward(&[cstr(1)]),
        // getcwd returns the length it wrote, terminator included.
        libc::SYS_getcwd => forward(&[output_returned(0, 1, 1)]),
        libc::SYS_rename | libc::SYS_link | libc::SYS_symlink => forward(&[cstr(0), cstr(1)]),
        libc::SYS_renameat | libc::SYS_renameat2 | libc::SYS_linkat => forward(&[cstr(1), cstr(3)]),
        libc::SYS_symlinkat => forward(&[cstr(0), cstr(2)]),
        libc::SYS_utime => forward(&[cstr(0), input(1, UTIMBUF)]),
        libc::SYS_utimes => forward(&[cstr(0), input(1, 2 * TIMEVAL)]),
        libc::SYS_futimesat => forward(&[cstr(1), input(2, 2 * TIMEVAL)]),
        // The path may be null (an fd's own times), and so may the times.
        libc::SYS_utimensat => forward(&[cstr(1), input(2, 2 * TIMESPEC)]),
        libc::SYS_memfd_create => forward(&[cstr(0)]),
        libc::SYS_getxattr | libc::SYS_lgetxattr => {
            forward(&[cstr(0), cstr(1), output_returned(2, 3, 1)])
        }
        libc::SYS_fgetxattr => forward(&[cstr(1), output_returned(2, 3, 1)]),
        libc::SYS_listxattr | libc::SYS_llistxattr => forward(&[cstr(0), output_returned(1, 2, 1)]),
        libc::SYS_flistxattr => forward(&[output_returned(1, 2, 1)]),
        libc::SYS_setxattr | libc::SYS_lsetxattr => {
            forward(&[cstr(0), cstr(1), input_counted(2, 3, 1)])
        }
        libc::SYS_fsetxattr => forward(&[cstr(1), input_counted(2, 3, 1)]),
        libc::SYS_removexattr | libc::SYS_lremovexattr => forward(&[cstr(0), cstr(1)]),
        libc::SYS_fremovexattr => forward(&[cstr(1)]),
        // The home root is the deputy's; a guest may not move it.
        libc::SYS_chroot => refuse(libc::EPERM),
        // A handle would name a home file outside the fd table.
        libc::SYS_name_to_handle_at => refuse(libc::EOPNOTSUPP),

        // Waiting on fds. The timeouts are InOut: the kernel writes back
        // the time left.
        libc::SYS_poll => forward(&[ptr(
            0,
            InOut,
            Len::Arg {
                arg: 1,
                elem: POLLFD,
            },
        )]),
        libc::SYS_ppoll => forward(&[
            ptr(
                0,
                InOut,
                Len::Arg {
                    arg: 1,
                    elem: POLLFD,
                },
            ),
            inout(2, TIMESPEC),
            host_mask(3, SIGSET),
        ]),
        libc::SYS_select => select_route(args, TIMEVAL, None),
        // The sixth argument points at `{ sigset pointer, size }`: the host
        // reads it (and the mask it names); at home it becomes null, which
        // means "no mask change" to the kernel. glibc's select() passes null.
        libc::SYS_pselect6 => select_route(args, TIMESPEC, Some(host_mask(5, PSELECT_SIGDATA))),
        libc::SYS_epoll_create
        | libc::SYS_epoll_create1
        | libc::SYS_eventfd
        | libc::SYS_eventfd2
        | libc::SYS_timerfd_create
        | libc::SYS_inotify_init
        | libc::SYS_inotify_init1
        | libc::SYS_inotify_rm_watch => forward(&[]),
        // The event may be null (EPOLL_CTL_DEL).
        libc::SYS_epoll_ctl => forward(&[input(3, EPOLL_EVENT)]),
        libc::SYS_epoll_wait => forward(&[output_returned(1, 2, EPOLL_EVENT)]),
        libc::SYS_epoll_pwait => {
            forward(&[output_returned(1, 2, EPOLL_EVENT), host_mask(4, SIGSET)])
        }
        libc::SYS_epoll_pwait2 => forward(&[
            output_returned(1, 2, EPOLL_EVENT),
            input(3, TIMESPEC),
            host_mask(4, SIGSET),
        ]),
        libc::SYS_timerfd_settime => forward(&[input(2, ITIMERSPEC), output(3, ITIMERSPEC)]),
        libc::SYS_timerfd_gettime => forward(&[output(1, ITIMERSPEC)]),
        // Made by the deputy, which then leaves the signals it asks for
        // pending at home for it, rather than forwarding them.
        libc::SYS_signalfd | libc::SYS_signalfd4 => forward(&[input_counted(1, 2, 1)]),

        // Sockets.
        libc::SYS_socket | libc::SYS_listen | libc::SYS_shutdown => forward(&[]),
        libc::SYS_socketpair => forward(&[output(3, FDS_PAIR)]),
        libc::SYS_connect | libc::SYS_bind => forward(&[input_counted(1, 2, 1)]),
        libc::SYS_accept | libc::SYS_accept4 | libc::SYS_getsockname | libc::SYS_getpeername => {
            forward(&[sockaddr_out(1, 2), inout(2, SOCKLEN)])
        }
        libc::SYS_sendto => forward(&[input_counted(1, 2, 1), input_counted(4, 5, 1)]),
        libc::SYS_recvfrom => forward(&[
            output_returned(1, 2, 1),
            sockaddr_out(4, 5),
            inout(5, SOCKLEN),
        ]),
        libc::SYS_setsockopt if sockopt_flat(args[1], args[2]) => {
            forward(&[input_counted(3, 4, 1)])
        }
        libc::SYS_getsockopt if sockopt_flat(args[1], args[2]) => forward(&[
            ptr(
                3,
                Dir::Out,
                Len::ValueResult {
                    arg: 4,
                    max: SOCKOPT_MAX,
                },
            ),
            inout(4, SOCKLEN),
        ]),
        libc::SYS_setsockopt | libc::SYS_getsockopt => refuse(libc::ENOPROTOOPT),
        // struct msghdr holds pointers to iovecs, an address and control
        // data: flattened by the host (see [`message`]).
        libc::SYS_sendmsg | libc::SYS_recvmsg | libc::SYS_sendmmsg | libc::SYS_recvmmsg => {
            Route::Special(Special::Message)
        }

        // Identity.
        libc::SYS_getpid => Route::Special(Special::Getpid),
        libc::SYS_prctl | libc::SYS_seccomp => Route::Special(Special::Sandbox),
        libc::SYS_getppid
        | libc::SYS_getuid
        | libc::SYS_geteuid
        | libc::SYS_getgid
        | libc::SYS_getegid
        | libc::SYS_setuid
        | libc::SYS_setgid
        | libc::SYS_setreuid
        | libc::SYS_setregid
        | libc::SYS_setresuid
        | libc::SYS_setresgid
        | libc::SYS_setfsuid
        | libc::SYS_setfsgid
        | libc::SYS_umask
        | libc::SYS_getpgrp
        | libc::SYS_getpgid
        | libc::SYS_setpgid
        | libc::SYS_getsid
        | libc::SYS_setsid => forward(&[]),
        libc::SYS_gettid => Route::Special(Special::Gettid),
        libc::SYS_getgroups => forward(&[output_returned(1, 0, 4)]),
        // Capabilities are credentials, home's (the deputy's thread that
        // runs the caller's calls). The header's version, which the kernel
        // writes back when it is not one it knows, sizes the data: two
        // `__user_cap_data_struct`s for versions 2 and 3 (the host keeps
        // version 1, of one, to itself).
        libc::SYS_capget => forward(&[inout(0, CAP_HEADER), output(1, CAP_DATA)]),
        libc::SYS_capset => forward(&[inout(0, CAP_HEADER), input(1, CAP_DATA)]),
        libc::SYS_setgroups => forward(&[input_counted(1, 0, 4)]),
        libc::SYS_getresuid | libc::SYS_getresgid => {
            forward(&[output(0, 4), output(1, 4), output(2, 4)])
        }
        libc::SYS_uname => forward(&[output(0, UTSNAME)]),
        libc::SYS_sethostname | libc::SYS_setdomainname => forward(&[input_counted(0, 1, 1)]),
        // The deputy's nice value, home's to allow; the host runs one of
        // the process's own on its CPU too (see the host agent).
        libc::SYS_getpriority | libc::SYS_setpriority => forward(&[]),
        // An I/O priority orders the I/O to home's files, which is made
        // at home: it is the deputy's (its main thread's, which runs
        // every such call, so a program reads back what it set).
        libc::SYS_ioprio_get | libc::SYS_ioprio_set => forward(&[]),
        libc::SYS_getrlimit => forward(&[output(1, RLIMIT)]),
        libc::SYS_setrlimit => forward(&[input(1, RLIMIT)]),
        libc::SYS_prlimit64 => forward(&[input(2, RLIMIT), output(3, RLIMIT)]),
        libc::SYS_sysinfo => forward(&[output(0, SYSINFO)]),
        // Kernel keys (Kerberos and AFS credentials kept in keyrings) are
        // home's, as the credentials they go with: the deputy's session,
        // user and process keyrings (its thread's, for the thread keyring:
        // each program thread has its own deputy thread).
        libc::SYS_add_key => forward(&[cstr(0), cstr(1), input_counted(2, 3, 1)]),
        libc::SYS_request_key => forward(&[cstr(0), cstr(1), cstr(2)]),
        libc::SYS_keyctl => keyctl_route(args[0]),
        // The machine's administration is home's, where its files and
        // clocks are: a mount, a swap file, the time set (home refuses
        // them to whom it would refuse them at home). A mount's data is
        // taken as the string of options nearly every filesystem takes.
        libc::SYS_mount => forward(&[cstr(0), cstr(1), cstr(2), cstr(4)]),
        libc::SYS_umount2 | libc::SYS_swapon | libc::SYS_swapoff => forward(&[cstr(0)]),
        libc::SYS_clock_settime => forward(&[input(1, TIMESPEC)]),
        libc::SYS_settimeofday => forward(&[input(0, TIMEVAL), input(1, TIMEZONE)]),
        libc::SYS_adjtimex => forward(&[inout(0, TIMEX)]),
        libc::SYS_clock_adjtime => forward(&[inout(1, TIMEX)]),
        // Process accounting, the terminal's hangup and a filesystem's
        // watch (`fanotify`, whose events bring fds into the deputy's
        // table, the program's) are home's too; the path of a mark may be
        // null.
        libc::SYS_acct => forward(&[cstr(0)]),
        libc::SYS_vhangup | libc::SYS_fanotify_init => forward(&[]),
        libc::SYS_fanotify_mark => forward(&[cstr(4)]),
        // Comparing two processes' files, fd tables, filesystem context,
        // I/O context or System V undo lists: those are their deputies'
        // (by home pid). Their memory and signal handlers are not; an
        // epoll's target is named by a struct.
        libc::SYS_kcmp => match args[2] {
            KCMP_FILE | KCMP_FILES | KCMP_FS | KCMP_IO | KCMP_SYSVSEM => forward(&[]),
            KCMP_EPOLL_TFD => forward(&[input(4, KCMP_EPOLL_SLOT)]),
            _ => refuse(libc::ENOSYS),
        },
        // The kernel's log is home's (`dmesg`, `klogctl`): READ, READ_ALL
        // and READ_CLEAR fill the buffer with as much as they return.
        libc::SYS_syslog if matches!(args[0], 2..=4) => forward(&[output_returned(1, 2, 1)]),
        libc::SYS_syslog => forward(&[]),
        // POSIX message queues are home's: their fds are the deputy's.
        // The new queue's attributes (read only with O_CREAT) may be null:
        // the defaults.
        libc::SYS_mq_open if args[1] & libc::O_CREAT as u64 != 0 => {
            forward(&[cstr(0), input(3, MQ_ATTR)])
        }
        libc::SYS_mq_open => forward(&[cstr(0)]),
        libc::SYS_mq_unlink => forward(&[cstr(0)]),
        libc::SYS_mq_timedsend => forward(&[input_counted(1, 2, 1), input(4, TIMESPEC)]),
        libc::SYS_mq_timedreceive => {
            forward(&[output_returned(1, 2, 1), output(3, INT), input(4, TIMESPEC)])
        }
        libc::SYS_mq_getsetattr => forward(&[input(1, MQ_ATTR), output(2, MQ_ATTR)]),
        // A signal it asks for is sent to the deputy, which passes it on
        // as any other; a thread to start (see [`notifies_by_thread`])
        // is refused.
        libc::SYS_mq_notify => forward(&[input(1, SIGEVENT)]),
        // System V semaphores and message queues are home's, in its IPC
        // namespace, shared with its processes; the deputy holds the
        // program's `SEM_UNDO` adjustments, undone when it ends as the
        // program's own would be.
        libc::SYS_semget | libc::SYS_msgget => forward(&[]),
        libc::SYS_semop => forward(&[input_counted(1, 2, SEMBUF)]),
        libc::SYS_semtimedop => forward(&[input_counted(1, 2, SEMBUF), input(3, TIMESPEC)]),
        libc::SYS_semctl => semctl_route(args[2]),
        libc::SYS_msgctl => msgctl_route(args[1]),
        libc::SYS_msgsnd => forward(&[ptr(
            1,
            Dir::In,
            Len::Headed {
                header: MSG_TYPE,
                arg: 2,
            },
        )]),
        // In and out: the kernel writes the type and as much text as the
        // message has, and the rest of the program's buffer stays as it was.
        libc::SYS_msgrcv => forward(&[ptr(
            1,
            InOut,
            Len::Headed {
                header: MSG_TYPE,
                arg: 2,
            },
        )]),

        // Other processes, by home pid.
        libc::SYS_kill | libc::SYS_tkill | libc::SYS_tgkill => forward(&[]),
        libc::SYS_pidfd_open | libc::SYS_pidfd_getfd => forward(&[]),
        libc::SYS_rt_sigqueueinfo => forward(&[input(2, SIGINFO)]),
        libc::SYS_rt_tgsigqueueinfo => forward(&[input(3, SIGINFO)]),
        libc::SYS_pidfd_send_signal => forward(&[input(2, SIGINFO)]),
        // The kernel writes status and rusage only when it reaps a child:
        // InOut leaves them as they were otherwise (WNOHANG).
        libc::SYS_wait4 => forward(&[inout(1, INT), inout(3, RUSAGE)]),
        // waitid writes only the first fields of siginfo when no child is
        // ready, and rusage only when it reaps one.
        libc::SYS_waitid => forward(&[inout(2, SIGINFO), inout(4, RUSAGE)]),

        // A new process: its deputy forks at home, the guest forks here.
        // (clone of a thread never reaches the host: the filter allows it.)
        libc::SYS_clone | libc::SYS_fork | libc::SYS_vfork => Route::Special(Special::Fork),
        // glibc falls back to clone when clone3 is missing.
        libc::SYS_clone3 => refuse(libc::ENOSYS),
        libc::SYS_execve | libc::SYS_execveat => Route::Special(Special::Exec),
        libc::SYS_exit_group => Route::Special(Special::Exit),
        libc::SYS_rt_sigaction => Route::Special(Special::ChildSignal),
        libc::SYS_sched_getaffinity | libc::SYS_sched_setaffinity => {
            Route::Special(Special::Affinity)
        }

        _ => refuse(libc::ENOSYS),
    }
}

/// The byte length of pointer argument `ptr` given the syscall's arguments.
///
/// `None` for a C string (its length is where its NUL is) and when the count
/// times the element size overflows. For [`Len::ValueResult`], `max`: the
/// most the deputy allocates and the longest output it may send back.
pub fn buffer_len(ptr: &PtrArg, args: &[u64; 6]) -> Option<usize> {
    match ptr.len {
        Len::CStr => None,
        Len::Fixed(n) => Some(n),
        Len::Arg { arg, elem } => usize::try_from(*args.get(arg as usize)?)
            .ok()?
            .checked_mul(elem),
        Len::ValueResult { max, .. } => Some(max),
        Len::Headed { header, arg } => usize::try_from(*args.get(arg as usize)?)
            .ok()?
            .checked_add(header),
    }
}

macro_rules! libc_names {
    ($($sys:ident)*) => {
        fn libc_name(nr: i64) -> Option<&'static str> {
            match nr {
                $(libc::$sys => Some(stringify!($sys)),)*
                _ => None,
            }
        }
    };
}

libc_names! {
    SYS_read SYS_write SYS_open SYS_close SYS_stat SYS_fstat
    SYS_lstat SYS_poll SYS_lseek SYS_mmap SYS_mprotect SYS_munmap
    SYS_brk SYS_rt_sigaction SYS_rt_sigprocmask SYS_rt_sigreturn SYS_ioctl SYS_pread64
    SYS_pwrite64 SYS_readv SYS_writev SYS_access SYS_pipe SYS_select
    SYS_sched_yield SYS_mremap SYS_msync SYS_mincore SYS_madvise SYS_shmget
    SYS_shmat SYS_shmctl SYS_dup SYS_dup2 SYS_pause SYS_nanosleep
    SYS_getitimer SYS_alarm SYS_setitimer SYS_getpid SYS_sendfile SYS_socket
    SYS_connect SYS_accept SYS_sendto SYS_recvfrom SYS_sendmsg SYS_recvmsg
    SYS_shutdown SYS_bind SYS_listen SYS_getsockname SYS_getpeername SYS_socketpair
    SYS_setsockopt SYS_getsockopt SYS_clone SYS_fork SYS_vfork SYS_execve
    SYS_exit SYS_wait4 SYS_kill SYS_uname SYS_semget SYS_semop
    SYS_semctl SYS_shmdt SYS_msgget SYS_msgsnd SYS_msgrcv SYS_msgctl
    SYS_fcntl SYS_flock SYS_fsync SYS_fdatasync SYS_truncate SYS_ftruncate
    SYS_getdents SYS_getcwd SYS_chdir SYS_fchdir SYS_rename SYS_mkdir
    SYS_rmdir SYS_creat SYS_link SYS_unlink SYS_symlink SYS_readlink
    SYS_chmod SYS_fchmod SYS_chown SYS_fchown SYS_lchown SYS_umask
    SYS_gettimeofday SYS_getrlimit SYS_getrusage SYS_sysinfo SYS_times SYS_ptrace
    SYS_getuid SYS_syslog SYS_getgid SYS_setuid SYS_setgid SYS_geteuid
    SYS_getegid SYS_setpgid SYS_getppid SYS_getpgrp SYS_setsid SYS_setreuid
    SYS_setregid SYS_getgroups SYS_setgroups SYS_setresuid SYS_getresuid SYS_setresgid
    SYS_getresgid SYS_getpgid SYS_setfsuid SYS_setfsgid SYS_getsid SYS_capget
    SYS_capset SYS_rt_sigpending SYS_rt_sigtimedwait SYS_rt_sigqueueinfo SYS_rt_sigsuspend
    SYS_sigaltstack SYS_utime SYS_mknod SYS_uselib SYS_personality SYS_ustat SYS_statfs
    SYS_fstatfs SYS_sysfs SYS_getpriority SYS_setpriority SYS_sched_setparam SYS_sched_getparam
    SYS_sched_setscheduler SYS_sched_getscheduler SYS_sched_get_priority_max
    SYS_sched_get_priority_min SYS_sched_rr_get_interval SYS_mlock
    SYS_munlock SYS_mlockall SYS_munlockall SYS_vhangup SYS_modify_ldt SYS_pivot_root
    SYS__sysctl SYS_prctl SYS_arch_prctl SYS_adjtimex SYS_setrlimit SYS_chroot
    SYS_sync SYS_acct SYS_settimeofday SYS_mount SYS_umount2 SYS_swapon
    SYS_swapoff SYS_reboot SYS_sethostname SYS_setdomainname SYS_iopl SYS_ioperm
    SYS_init_module SYS_delete_module SYS_quotactl SYS_nfsservctl SYS_getpmsg SYS_putpmsg
    SYS_afs_syscall SYS_tuxcall SYS_security SYS_gettid SYS_readahead SYS_setxattr
    SYS_lsetxattr SYS_fsetxattr SYS_getxattr SYS_lgetxattr SYS_fgetxattr SYS_listxattr
    SYS_llistxattr SYS_flistxattr SYS_removexattr SYS_lremovexattr SYS_fremovexattr SYS_tkill
    SYS_time SYS_futex SYS_sched_setaffinity SYS_sched_getaffinity SYS_set_thread_area SYS_io_setup
    SYS_io_destroy SYS_io_getevents SYS_io_submit SYS_io_cancel SYS_get_thread_area
    SYS_lookup_dcookie SYS_epoll_create SYS_epoll_ctl_old SYS_epoll_wait_old SYS_remap_file_pages
    SYS_getdents64 SYS_set_tid_address SYS_restart_syscall SYS_semtimedop SYS_fadvise64
    SYS_timer_create SYS_timer_settime SYS_timer_gettime SYS_timer_getoverrun SYS_timer_delete
    SYS_clock_settime SYS_clock_gettime SYS_clock_getres SYS_clock_nanosleep
    SYS_exit_group SYS_epoll_wait SYS_epoll_ctl SYS_tgkill SYS_utimes SYS_vserver
    SYS_mbind SYS_set_mempolicy SYS_get_mempolicy SYS_mq_open SYS_mq_unlink SYS_mq_timedsend
    SYS_mq_timedreceive SYS_mq_notify SYS_mq_getsetattr SYS_kexec_load SYS_waitid SYS_add_key
    SYS_request_key SYS_keyctl SYS_ioprio_set SYS_ioprio_get SYS_inotify_init SYS_inotify_add_watch
    SYS_inotify_rm_watch SYS_migrate_pages SYS_openat SYS_mkdirat SYS_mknodat SYS_fchownat
    SYS_futimesat SYS_newfstatat SYS_unlinkat SYS_renameat SYS_linkat SYS_symlinkat
    SYS_readlinkat SYS_fchmodat SYS_faccessat SYS_pselect6 SYS_ppoll SYS_unshare
    SYS_set_robust_list SYS_get_robust_list SYS_splice SYS_tee SYS_sync_file_range SYS_vmsplice
    SYS_move_pages SYS_utimensat SYS_epoll_pwait SYS_signalfd SYS_timerfd_create SYS_eventfd
    SYS_fallocate SYS_timerfd_settime SYS_timerfd_gettime SYS_accept4 SYS_signalfd4 SYS_eventfd2
    SYS_epoll_create1 SYS_dup3 SYS_pipe2 SYS_inotify_init1 SYS_preadv SYS_pwritev
    SYS_rt_tgsigqueueinfo SYS_perf_event_open SYS_recvmmsg SYS_fanotify_init SYS_fanotify_mark
    SYS_prlimit64 SYS_name_to_handle_at SYS_open_by_handle_at SYS_clock_adjtime SYS_syncfs
    SYS_sendmmsg SYS_setns SYS_getcpu SYS_process_vm_readv SYS_process_vm_writev SYS_kcmp
    SYS_finit_module SYS_sched_setattr SYS_sched_getattr SYS_renameat2 SYS_seccomp SYS_getrandom
    SYS_memfd_create SYS_kexec_file_load SYS_bpf SYS_execveat SYS_userfaultfd SYS_membarrier
    SYS_mlock2 SYS_copy_file_range SYS_preadv2 SYS_pwritev2 SYS_pkey_mprotect SYS_pkey_alloc
    SYS_pkey_free SYS_statx SYS_rseq SYS_pidfd_send_signal SYS_io_uring_setup
    SYS_io_uring_enter SYS_io_uring_register SYS_open_tree SYS_move_mount SYS_fsopen
    SYS_fsconfig SYS_fsmount SYS_fspick SYS_pidfd_open SYS_clone3 SYS_close_range SYS_openat2
    SYS_pidfd_getfd SYS_faccessat2 SYS_process_madvise SYS_epoll_pwait2 SYS_mount_setattr
    SYS_quotactl_fd SYS_landlock_create_ruleset SYS_landlock_add_rule SYS_landlock_restrict_self
    SYS_memfd_secret SYS_process_mrelease SYS_futex_waitv SYS_set_mempolicy_home_node
    SYS_fchmodat2 SYS_mseal
}

/// The name of syscall `nr` (x86_64), for log lines: `"openat"`, or
/// `"unknown"` for a number the table does not know (log the number too).
pub fn name(nr: u64) -> &'static str {
    let Ok(nr) = i64::try_from(nr) else {
        return "unknown";
    };
    if let Some(name) = libc_name(nr) {
        return name.strip_prefix("SYS_").unwrap_or(name);
    }
    // Numbers missing from the libc crate's table.
    match nr {
        174 => "create_module",
        177 => "get_kernel_syms",
        178 => "query_module",
        333 => "io_pgetevents",
        335 => "uretprobe",
        451 => "cachestat",
        SYS_MAP_SHADOW_STACK => "map_shadow_stack",
        SYS_FUTEX_WAKE => "futex_wake",
        SYS_FUTEX_WAIT => "futex_wait",
        SYS_FUTEX_REQUEUE => "futex_requeue",
        457 => "statmount",
        458 => "listmount",
        459 => "lsm_get_self_attr",
        460 => "lsm_set_self_attr",
        461 => "lsm_list_modules",
        463 => "setxattrat",
        464 => "getxattrat",
        465 => "listxattrat",
        466 => "removexattrat",
        467 => "open_tree_attr",
        468 => "file_getattr",
        469 => "file_setattr",
        _ => "unknown",
    }
}

#[cfg(test)]
// libc's ioctl request type is `c_ulong` here but `c_int` on other targets.
#[allow(clippy::unnecessary_cast)]
mod tests {
    use super::*;
    use std::mem::size_of;

    const NO_ARGS: [u64; 6] = [0; 6];

    fn ptrs(nr: i64, args: &[u64; 6]) -> Vec<PtrArg> {
        match route(nr as u64, args) {
            Route::Forward(ptrs) => ptrs,
            other => panic!("{} is not forwarded: {other:?}", name(nr as u64)),
        }
    }

    /// Argument patterns under which every table row is checked.
    fn arg_patterns() -> Vec<[u64; 6]> {
        let mut patterns = vec![NO_ARGS, [u64::MAX; 6], [1; 6], [1024; 6]];
        // fcntl commands, ioctl requests and socket levels live in args 1 and 2.
        for a1 in [
            0u64,
            5,
            15,
            16,
            36,
            1035,
            1036,
            libc::TCGETS as u64,
            libc::TCSETS as u64,
            libc::TIOCGWINSZ as u64,
            libc::SOL_SOCKET as u64,
            libc::IPPROTO_TCP as u64,
        ] {
            patterns.push([3, a1, 1, 0, 0, 0]);
        }
        patterns
    }

    #[test]
    fn abi_sizes_match_libc() {
        assert_eq!(size_of::<libc::stat>(), STAT);
        assert_eq!(size_of::<libc::statx>(), STATX);
        assert_eq!(size_of::<libc::statfs>(), STATFS);
        assert_eq!(size_of::<libc::utsname>(), UTSNAME);
        assert_eq!(size_of::<libc::rlimit>(), RLIMIT);
        assert_eq!(size_of::<libc::timespec>(), TIMESPEC);
        assert_eq!(size_of::<libc::timeval>(), TIMEVAL);
        assert_eq!(size_of::<libc::itimerspec>(), ITIMERSPEC);
        assert_eq!(size_of::<libc::utimbuf>(), UTIMBUF);
        assert_eq!(size_of::<libc::pollfd>(), POLLFD);
        assert_eq!(size_of::<libc::epoll_event>(), EPOLL_EVENT);
        assert_eq!(size_of::<libc::flock>(), FLOCK);
        assert_eq!(size_of::<libc::sysinfo>(), SYSINFO);
        assert_eq!(size_of::<libc::rusage>(), RUSAGE);
        assert_eq!(size_of::<libc::siginfo_t>(), SIGINFO);
        assert_eq!(size_of::<libc::sockaddr_storage>(), SOCKADDR_MAX);
        assert_eq!(size_of::<libc::socklen_t>(), SOCKLEN);
        assert_eq!(size_of::<libc::termios2>(), KERNEL_TERMIOS2);
        assert_eq!(size_of::<libc::winsize>(), WINSIZE);
        assert_eq!(size_of::<libc::sembuf>(), SEMBUF);
        assert_eq!(size_of::<libc::mq_attr>(), MQ_ATTR);
        assert_eq!(size_of::<libc::timex>(), TIMEX);
        // The libc crate's `timezone` is opaque: two ints.
        assert_eq!(2 * size_of::<libc::c_int>(), TIMEZONE);
        assert_eq!(size_of::<libc::sigevent>(), SIGEVENT);
        assert_eq!(size_of::<libc::semid_ds>(), SEMID_DS);
        assert_eq!(size_of::<libc::msqid_ds>(), MSQID_DS);
        assert_eq!(size_of::<libc::seminfo>(), SEMINFO);
        assert_eq!(size_of::<libc::msginfo>(), MSGINFO);
        assert_eq!(size_of::<libc::c_long>(), MSG_TYPE);
        assert_eq!(size_of::<libc::fd_set>(), fd_set_bytes(1024));
        assert_eq!(size_of::<libc::open_how>(), 24);
        // The kernel's termios is termios2 without the two speed fields.
        assert_eq!(
            KERNEL_TERMIOS + 2 * size_of::<libc::speed_t>(),
            KERNEL_TERMIOS2
        );
        // The kernel's sigset is 64 bits (glibc's sigset_t is 1024).
        assert_eq!(SIGSET * 8, 64);
    }

    #[test]
    fn read_write_layouts() {
        assert_eq!(
            ptrs(libc::SYS_read, &NO_ARGS),
            vec![PtrArg {
                index: 1,
                dir: Dir::Out,
                len: Len::Arg { arg: 2, elem: 1 },
                ret_elems: Some(1),
            }]
        );
        assert_eq!(
            ptrs(libc::SYS_write, &NO_ARGS),
            vec![PtrArg {
                index: 1,
                dir: Dir::In,
                len: Len::Arg { arg: 2, elem: 1 },
                ret_elems: None,
            }]
        );
        let read = ptrs(libc::SYS_read, &[3, 0x1000, 100, 0, 0, 0]);
        assert_eq!(buffer_len(&read[0], &[3, 0x1000, 100, 0, 0, 0]), Some(100));
    }

    #[test]
    fn path_layouts() {
        // openat(dirfd, pathname, flags, mode)
        assert_eq!(ptrs(libc::SYS_openat, &NO_ARGS), vec![cstr(1)]);
        // newfstatat(dirfd, pathname, statbuf, flags)
        assert_eq!(
            ptrs(libc::SYS_newfstatat, &NO_ARGS),
            vec![
                cstr(1),
                PtrArg {
                    index: 2,
                    dir: Dir::Out,
                    len: Len::Fixed(144),
                    ret_elems: None,
                }
            ]
        );
        // getdents64(fd, dirp, count) returns the bytes it filled.
        assert_eq!(
            ptrs(libc::SYS_getdents64, &NO_ARGS),
            vec![PtrArg {
                index: 1,
                dir: Dir::Out,
                len: Len::Arg { arg: 2, elem: 1 },
                ret_elems: Some(1),
            }]
        );
        // renameat2(olddirfd, oldpath, newdirfd, newpath, flags)
        assert_eq!(ptrs(libc::SYS_renameat2, &NO_ARGS), vec![cstr(1), cstr(3)]);
        // getcwd(buf, size)
        assert_eq!(
            ptrs(libc::SYS_getcwd, &NO_ARGS),
            vec![output_returned(0, 1, 1)]
        );
    }

    #[test]
    fn fcntl_by_command() {
        let setlk = [3, libc::F_SETLK as u64, 0x1000, 0, 0, 0];
        assert_eq!(
            ptrs(libc::SYS_fcntl, &setlk),
            vec![PtrArg {
                index: 2,
                dir: Dir::InOut,
                len: Len::Fixed(32),
                ret_elems: None,
            }]
        );
        for cmd in [
            libc::F_GETLK,
            libc::F_SETLKW,
            libc::F_OFD_GETLK,
            libc::F_OFD_SETLKW,
        ] {
            assert_eq!(
                ptrs(libc::SYS_fcntl, &[3, cmd as u64, 0, 0, 0, 0]),
                vec![inout(2, 32)]
            );
        }
        let getfl = [3, libc::F_GETFL as u64, 0, 0, 0, 0];
        assert_eq!(ptrs(libc::SYS_fcntl, &getfl), vec![]);
        let setfd = [3, libc::F_SETFD as u64, libc::FD_CLOEXEC as u64, 0, 0, 0];
        assert_eq!(ptrs(libc::SYS_fcntl, &setfd), vec![]);
        // The upper half of the command is not the kernel's.
        let getfl_high = [3, (1 << 32) | libc::F_GETFL as u64, 0, 0, 0, 0];
        assert_eq!(ptrs(libc::SYS_fcntl, &getfl_high), vec![]);
        assert_eq!(
            route(libc::SYS_fcntl as u64, &[3, 9999, 0, 0, 0, 0]),
            Route::Refuse {
                errno: libc::EINVAL
            }
        );
    }

    #[test]
    fn ioctl_by_request() {
        let tcgets = [0, libc::TCGETS as u64, 0x1000, 0, 0, 0];
        assert_eq!(
            ptrs(libc::SYS_ioctl, &tcgets),
            vec![PtrArg {
                index: 2,
                dir: Dir::Out,
                len: Len::Fixed(36),
                ret_elems: None,
            }]
        );
        let tcsetsw = [0, libc::TCSETSW as u64, 0x1000, 0, 0, 0];
        assert_eq!(ptrs(libc::SYS_ioctl, &tcsetsw), vec![input(2, 36)]);
        let winsz = [0, libc::TIOCGWINSZ as u64, 0x1000, 0, 0, 0];
        assert_eq!(ptrs(libc::SYS_ioctl, &winsz), vec![output(2, 8)]);
        let fioclex = [0, libc::FIOCLEX as u64, 0, 0, 0, 0];
        assert_eq!(ptrs(libc::SYS_ioctl, &fioclex), vec![]);
        // SIOCGIFCONF: a struct with a pointer in it.
        let unknown = [0, 0x8912, 0x1000, 0, 0, 0];
        assert_eq!(
            route(libc::SYS_ioctl as u64, &unknown),
            Route::Refuse {
                errno: libc::ENOTTY
            }
        );
    }

    #[test]
    fn poll_and_select_layouts() {
        // poll(fds, nfds, timeout)
        assert_eq!(
            ptrs(libc::SYS_poll, &NO_ARGS),
            vec![PtrArg {
                index: 0,
                dir: Dir::InOut,
                len: Len::Arg { arg: 1, elem: 8 },
                ret_elems: None,
            }]
        );
        // select(nfds, readfds, writefds, exceptfds, timeout): sets sized by nfds.
        let select = ptrs(libc::SYS_select, &[1024, 1, 1, 1, 1, 0]);
        assert_eq!(
            select,
            vec![inout(1, 128), inout(2, 128), inout(3, 128), inout(4, 16)]
        );
        let small = ptrs(libc::SYS_select, &[5, 1, 0, 0, 0, 0]);
        assert_eq!(small[0], inout(1, 8));
        assert_eq!(fd_set_bytes(0), 0);
        assert_eq!(fd_set_bytes(65), 16);
        assert_eq!(
            route(libc::SYS_select as u64, &[u32::MAX as u64, 0, 0, 0, 0, 0]),
            Route::Refuse {
                errno: libc::EINVAL
            }
        );
        // pselect6's sigmask data stays on the host.
        let pselect = ptrs(libc::SYS_pselect6, &[64, 1, 0, 0, 1, 1]);
        assert_eq!(pselect.last(), Some(&host_mask(5, 16)));
    }

    #[test]
    fn sockaddr_is_value_result() {
        let accept = ptrs(libc::SYS_accept4, &NO_ARGS);
        assert_eq!(accept, vec![sockaddr_out(1, 2), inout(2, 4)]);
        assert_eq!(buffer_len(&accept[0], &NO_ARGS), Some(128));
        // SO_ATTACH_FILTER carries a pointer.
        let attach = [3, libc::SOL_SOCKET as u64, 26, 0x1000, 16, 0];
        assert_eq!(
            route(libc::SYS_setsockopt as u64, &attach),
            Route::Refuse {
                errno: libc::ENOPROTOOPT
            }
        );
        // IPT_SO_SET_REPLACE holds a pointer; IPV6_TCLASS shares its number range.
        let ipt = [3, libc::IPPROTO_IP as u64, 64, 0x1000, 16, 0];
        assert_eq!(
            route(libc::SYS_setsockopt as u64, &ipt),
            Route::Refuse {
                errno: libc::ENOPROTOOPT
            }
        );
        let tclass = [
            3,
            libc::IPPROTO_IPV6 as u64,
            libc::IPV6_TCLASS as u64,
            0x1000,
            4,
            0,
        ];
        assert_eq!(
            ptrs(libc::SYS_setsockopt, &tclass),
            vec![input_counted(3, 4, 1)]
        );
        let reuse = [
            3,
            libc::SOL_SOCKET as u64,
            libc::SO_REUSEADDR as u64,
            0x1000,
            4,
            0,
        ];
        assert_eq!(
            ptrs(libc::SYS_setsockopt, &reuse),
            vec![input_counted(3, 4, 1)]
        );
    }

    #[test]
    fn specials_and_refusals() {
        let special = |nr: i64| route(nr as u64, &NO_ARGS);
        assert_eq!(special(libc::SYS_mmap), Route::Special(Special::MmapFile));
        assert_eq!(
            special(libc::SYS_preadv2),
            Route::Special(Special::ReadVector)
        );
        assert_eq!(
            special(libc::SYS_writev),
            Route::Special(Special::WriteVector)
        );
        assert_eq!(special(libc::SYS_gettid), Route::Special(Special::Gettid));
        assert_eq!(special(libc::SYS_getpid), Route::Special(Special::Getpid));
        assert_eq!(special(libc::SYS_sendmsg), Route::Special(Special::Message));
        assert_eq!(special(libc::SYS_recvmsg), Route::Special(Special::Message));
        assert_eq!(std::mem::size_of::<libc::msghdr>(), message::HEADER_LEN);
        assert_eq!(special(libc::SYS_exit_group), Route::Special(Special::Exit));
        assert_eq!(
            special(libc::SYS_rt_sigaction),
            Route::Special(Special::ChildSignal)
        );
        assert_eq!(special(libc::SYS_execve), Route::Special(Special::Exec));
        assert_eq!(special(libc::SYS_execveat), Route::Special(Special::Exec));
        assert_eq!(special(libc::SYS_fork), Route::Special(Special::Fork));
        assert_eq!(special(libc::SYS_clone3), refuse(libc::ENOSYS));
        assert_eq!(special(libc::SYS_chroot), refuse(libc::EPERM));
        assert_eq!(special(libc::SYS_kexec_load), refuse(libc::ENOSYS));
        assert_eq!(route(u64::MAX, &NO_ARGS), refuse(libc::ENOSYS));
        assert_eq!(route(0x4000_0000, &NO_ARGS), refuse(libc::ENOSYS));
    }

    #[test]
    fn local_syscalls_are_never_forwarded() {
        let mut seen = std::collections::HashSet::new();
        for &nr in LOCAL {
            assert!(seen.insert(nr), "{} twice in LOCAL", name(nr as u64));
            assert!(is_local(nr as u64));
        }
        assert!(!is_local(libc::SYS_mmap as u64));
        assert!(!is_local(libc::SYS_read as u64));
        for nr in 0..512u64 {
            for args in arg_patterns() {
                if is_local(nr) {
                    assert_eq!(route(nr, &args), refuse(libc::ENOSYS), "{}", name(nr));
                }
            }
        }
    }

    #[test]
    fn every_row_is_sane() {
        for nr in 0..512u64 {
            for args in arg_patterns() {
                let Route::Forward(ptrs) = route(nr, &args) else {
                    continue;
                };
                let mut indices = std::collections::HashSet::new();
                for p in &ptrs {
                    let what = format!("{} {p:?}", name(nr));
                    assert!(p.index < 6, "{what}");
                    assert!(indices.insert(p.index), "{what}: index twice");
                    match p.len {
                        Len::CStr => assert_eq!(p.dir, Dir::In, "{what}"),
                        Len::Fixed(n) => assert!(n <= 64 << 10, "{what}"),
                        Len::Arg { arg, elem } => {
                            assert!(arg < 6 && arg != p.index, "{what}");
                            assert!(elem > 0 && elem <= 128, "{what}");
                        }
                        Len::Headed { header, arg } => {
                            assert!(arg < 6 && arg != p.index, "{what}");
                            assert!(header > 0 && header <= 64, "{what}");
                        }
                        Len::ValueResult { arg, max } => {
                            assert_eq!(p.dir, Dir::Out, "{what}");
                            assert!(max > 0 && max <= 64 << 10, "{what}");
                            assert!(
                                ptrs.contains(&inout(arg, SOCKLEN)),
                                "{what}: its length is not an InOut socklen"
                            );
                        }
                    }
                    if let Some(elem) = p.ret_elems {
                        assert_eq!(p.dir, Dir::Out, "{what}");
                        assert!(
                            matches!(p.len, Len::Arg { elem: e, .. } if e == elem),
                            "{what}"
                        );
                    }
                    if p.dir == Dir::Host {
                        assert!(matches!(p.len, Len::Fixed(_)), "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn buffer_len_never_overflows() {
        let poll = ptrs(libc::SYS_poll, &NO_ARGS);
        assert_eq!(buffer_len(&poll[0], &[0, u64::MAX, 0, 0, 0, 0]), None);
        assert_eq!(buffer_len(&poll[0], &[0, 1 << 61, 0, 0, 0, 0]), None);
        assert_eq!(buffer_len(&poll[0], &[0, 3, 0, 0, 0, 0]), Some(24));
        let bad_index = PtrArg {
            index: 0,
            dir: Dir::In,
            len: Len::Arg { arg: 9, elem: 1 },
            ret_elems: None,
        };
        assert_eq!(buffer_len(&bad_index, &NO_ARGS), None);
        assert_eq!(buffer_len(&cstr(0), &NO_ARGS), None);
    }

    #[test]
    fn system_v_calls_carry_their_structures_by_command() {
        let semctl = |cmd: i32| route(libc::SYS_semctl as u64, &[7, 0, cmd as u64, 1, 0, 0]);
        assert_eq!(semctl(libc::IPC_STAT), forward(&[output(3, SEMID_DS)]));
        assert_eq!(semctl(libc::IPC_SET), forward(&[input(3, SEMID_DS)]));
        assert_eq!(semctl(libc::SEM_INFO), forward(&[output(3, SEMINFO)]));
        assert_eq!(semctl(libc::SETVAL), forward(&[]));
        assert_eq!(semctl(99), refuse(libc::EINVAL));
        // GETALL's array is as long as the count the host puts in arg 1.
        let all = ptrs(libc::SYS_semctl, &[7, 5, libc::GETALL as u64, 1, 0, 0]);
        assert_eq!(
            buffer_len(&all[0], &[7, 5, libc::GETALL as u64, 1, 0, 0]),
            Some(10)
        );
        assert!(moves_whole_semaphore_set(
            libc::SYS_semctl as u64,
            &[7, 0, libc::SETALL as u64, 1, 0, 0]
        ));
        assert!(!moves_whole_semaphore_set(
            libc::SYS_semctl as u64,
            &[7, 0, libc::GETVAL as u64, 1, 0, 0]
        ));
        let msgctl = |cmd: i32| route(libc::SYS_msgctl as u64, &[7, cmd as u64, 1, 0, 0, 0]);
        assert_eq!(msgctl(libc::IPC_STAT), forward(&[output(2, MSQID_DS)]));
        assert_eq!(msgctl(libc::MSG_INFO), forward(&[output(2, MSGINFO)]));
        assert_eq!(msgctl(libc::IPC_RMID), forward(&[]));
        // A message is its type and then as much text as arg 2 says.
        let args = [7, 1, 100, 0, 0, 0];
        let sent = ptrs(libc::SYS_msgsnd, &args);
        assert_eq!(sent[0].dir, Dir::In);
        assert_eq!(buffer_len(&sent[0], &args), Some(108));
        assert_eq!(ptrs(libc::SYS_msgrcv, &args)[0].dir, Dir::InOut);
        assert_eq!(buffer_len(&sent[0], &[7, 1, u64::MAX, 0, 0, 0]), None);
        assert_eq!(
            ptrs(libc::SYS_semop, &[7, 1, 3, 0, 0, 0]),
            [input_counted(1, 2, SEMBUF)]
        );
        // What an mq_open without O_CREAT passes as attributes is not read.
        let creating = [1, libc::O_CREAT as u64, 0o600, 1, 0, 0];
        assert_eq!(ptrs(libc::SYS_mq_open, &creating).len(), 2);
        assert_eq!(ptrs(libc::SYS_mq_open, &[1, 0, 0, 1, 0, 0]), [cstr(0)]);
    }

    #[test]
    fn the_kernel_logs_reads_fill_the_buffer_and_the_rest_carry_none() {
        for read in 2..=4 {
            assert_eq!(
                ptrs(libc::SYS_syslog, &[read, 1, 4096, 0, 0, 0]),
                [output_returned(1, 2, 1)]
            );
        }
        assert_eq!(ptrs(libc::SYS_syslog, &[10, 0, 0, 0, 0, 0]), []);
    }

    #[test]
    fn kcmp_goes_home_only_for_what_the_deputies_hold() {
        let kcmp = |kind: u64| route(libc::SYS_kcmp as u64, &[1, 2, kind, 0, 0, 0]);
        for kind in [KCMP_FILE, KCMP_FILES, KCMP_FS, KCMP_IO, KCMP_SYSVSEM] {
            assert_eq!(kcmp(kind), forward(&[]), "{kind}");
        }
        // KCMP_VM and KCMP_SIGHAND: the host's.
        assert_eq!(kcmp(1), refuse(libc::ENOSYS));
        assert_eq!(kcmp(4), refuse(libc::ENOSYS));
        assert_eq!(kcmp(KCMP_EPOLL_TFD), forward(&[input(4, KCMP_EPOLL_SLOT)]));
    }

    #[test]
    fn only_an_mq_notify_that_starts_a_thread_is_told_apart() {
        let mut event = [0u8; SIGEVENT];
        let mq_notify = libc::SYS_mq_notify as u64;
        assert!(!notifies_by_thread(mq_notify, &event), "SIGEV_SIGNAL");
        event[12..16].copy_from_slice(&libc::SIGEV_THREAD.to_ne_bytes());
        assert!(notifies_by_thread(mq_notify, &event));
        assert!(!notifies_by_thread(libc::SYS_write as u64, &event));
        assert!(!notifies_by_thread(mq_notify, &event[..8]));
    }

    #[test]
    fn names() {
        assert_eq!(name(0), "read");
        assert_eq!(name(libc::SYS_openat as u64), "openat");
        assert_eq!(name(libc::SYS__sysctl as u64), "_sysctl");
        assert_eq!(name(455), "futex_wait");
        assert_eq!(name(469), "file_setattr");
        assert_eq!(name(9999), "unknown");
        assert_eq!(name(u64::MAX), "unknown");
        for nr in 0..470 {
            if !(336..=423).contains(&nr) {
                assert_ne!(name(nr), "unknown", "{nr}");
            }
        }
    }
}
