//! Small process-level operations the deputy needs.

use std::os::fd::{AsRawFd as _, BorrowedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use homing_proto::guest::SignalSender;
use homing_proto::image::Scheduling;

/// Ends the calling process as if killed by `signal`, so its parent sees
/// that status (and a shell prints what it would have printed).
/// Any signal, realtime ones included (nix's `Signal` names none of
/// those: a program killed by one was said to be killed by SIGKILL).
pub fn die_by_signal(signal: i32) -> ! {
    if (1..=64).contains(&signal) {
        let _ = default_action(signal);
        let _ = unblock_signals(signal_bit(signal));
        let _ = send_signal(std::process::id() as i32, signal);
        // A signal whose default is to be ignored or to stop: end anyway.
        let _ = send_signal(std::process::id() as i32, libc::SIGKILL);
    }
    std::process::exit(128 + signal)
}

/// Gives `signal` (realtime ones included) its default action in the
/// calling process (the Rust runtime ignores SIGPIPE, and an ignored
/// signal is never queued, even while blocked).
pub fn default_action(signal: i32) -> std::io::Result<()> {
    // SAFETY: sigaction is plain data; zeroed is SIG_DFL with an empty
    // mask and no flags.
    let default: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: the default disposition runs no handler code; the struct
    // outlives the call.
    let rc = unsafe { libc::sigaction(signal, &default, std::ptr::null_mut()) };
    zero_or_errno(rc.into())
}

/// Which side of a fork the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child.
    Child,
}

/// Forks the calling process. In the child only the calling thread exists:
/// it must not wait on locks other threads may have held.
pub fn fork() -> std::io::Result<Forked> {
    // SAFETY: the deputy's child continues on the forking thread only, takes
    // no lock held elsewhere (it opens its own agent connection) and keeps
    // to the process's own state.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Room for a whole `/proc/PID/status`, `stat` or `limits` in one read.
const PROC_FILE_ROOM: usize = 4096;

/// The text of a file in `/proc`, read in as few calls as the kernel
/// allows: an open, a read that takes it whole, the read that finds its
/// end, a close. `std::fs::read_to_string` sizes its buffer by the file's
/// size, which procfs gives as 0, so it also stats the file and then
/// reads it 32 bytes first and in doubling steps after: eleven calls for
/// a `status`, which the agents read on every fork, exec and end.
pub fn read_proc(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(PROC_FILE_ROOM);
    // `Take` reads with no size hint, straight into the room there is.
    std::fs::File::open(path)?
        .take(u64::MAX)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// The value of `field` (`"PPid:"`, `"Groups:"`, …) in `/proc/PID/status`, trimmed.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = read_proc(format!("/proc/{pid}/status")).ok()?;
    field_in(&status, field).map(str::to_owned)
}

/// The value of `field` in `status`, the text of a `/proc/PID/status`,
/// trimmed: for reading several fields from one read.
pub fn field_in<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(str::trim)
}

/// Whether process (or thread) `pid` has `no_new_privs` set.
pub fn no_new_privs(pid: i32) -> bool {
    read_proc(format!("/proc/{pid}/status")).is_ok_and(|status| no_new_privs_in(&status))
}

/// [`no_new_privs`], of `status`, the text of a `/proc/PID/status`.
pub fn no_new_privs_in(status: &str) -> bool {
    field_in(status, "NoNewPrivs:") == Some("1")
}

/// A numeric field of `/proc/PID/status` (`"Tgid:"`, `"PPid:"`).
pub fn status_number(pid: i32, field: &str) -> Option<i32> {
    status_field(pid, field)?.parse().ok()
}

/// The end of a process, awaited on the current runtime: its pidfd,
/// registered with the runtime's reactor, turns readable once, for good,
/// when the process ends. No thread waits for it.
#[derive(Debug)]
pub struct EndWatch(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>);

impl EndWatch {
    /// Watches process `pid`; `ESRCH` where there is none (it was reaped).
    pub fn new(pid: i32) -> std::io::Result<Self> {
        let pid = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        // SAFETY: the `AsyncFd` owns the pidfd from here on and never
        // closes or replaces it while it is registered.
        let watch = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
        };
        Ok(Self(watch.map_err(std::io::Error::from)?))
    }

    /// Returns once the process has ended.
    pub async fn ended(&self) {
        let _ = self.0.readable().await;
    }
}

/// Whether the process of thread `tid` has that one thread only. Its
/// `task` directory counts a link per thread besides `.` and `..`: one
/// `stat`, where reading `status` takes an open, a stat, several reads
/// and a close (this is asked on calls the agent answers itself, such as
/// an `lseek`).
pub fn single_threaded(tid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{tid}/task")).is_ok_and(|task| task.nlink() == 3)
}

/// The tids of process `pid`'s threads.
pub fn threads(pid: i32) -> std::io::Result<Vec<i32>> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|task| task.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// Who a process is, as `PIDFD_GET_INFO` tells it (Linux 6.13 and
/// later): its parent and its ids, in the caller's pid and user
/// namespaces, as the process itself would get them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidfdIdentity {
    /// `getppid`.
    pub ppid: u32,
    /// `getuid`.
    pub ruid: u32,
    /// `geteuid`.
    pub euid: u32,
    /// `getgid`.
    pub rgid: u32,
    /// `getegid`.
    pub egid: u32,
}

/// The identity of the process `pidfd` refers to, in one `ioctl` (where
/// reading it from `/proc` takes a read and a parse). An error where the
/// kernel is older, or the process has ended or its parent is outside
/// the caller's pid namespace (ESRCH).
pub fn pidfd_identity(pidfd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<PidfdIdentity> {
    use std::os::fd::AsRawFd;
    // SAFETY: `pidfd_info` is plain integers, for which all zeros is a
    // valid value.
    let mut info: libc::pidfd_info = unsafe { std::mem::zeroed() };
    info.mask = u64::from(libc::PIDFD_INFO_PID | libc::PIDFD_INFO_CREDS);
    // SAFETY: the ioctl writes at most `size_of::<pidfd_info>()` bytes (the
    // size is in its number) into `info`, which lives through the call.
    let rc = unsafe { libc::ioctl(pidfd.as_raw_fd(), libc::PIDFD_GET_INFO, &mut info) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let wanted = u64::from(libc::PIDFD_INFO_PID | libc::PIDFD_INFO_CREDS);
    if info.mask & wanted != wanted {
        return Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(PidfdIdentity {
        ppid: info.ppid,
        ruid: info.ruid,
        euid: info.euid,
        rgid: info.rgid,
        egid: info.egid,
    })
}

/// Every resource limit of `pid` as (resource, soft, hard), `u64::MAX`
/// for unlimited, from `/proc/PID/limits` (whose lines are in resource
/// order): `prlimit` on another user's process needs
/// `CAP_SYS_RESOURCE`, which agents may lack.
pub fn limits(pid: i32) -> std::io::Result<Vec<(u32, u64, u64)>> {
    let text = read_proc(format!("/proc/{pid}/limits"))?;
    Ok(parse_limits(&text))
}

/// The limits in `text`, the content of a `/proc/PID/limits`, as
/// [`limits`] gives them.
pub fn parse_limits(text: &str) -> Vec<(u32, u64, u64)> {
    let value = |column: &str| match column.trim() {
        "unlimited" => Some(u64::MAX),
        number => number.parse().ok(),
    };
    text.lines()
        .skip(1)
        .enumerate()
        .filter_map(|(resource, line)| {
            let soft = value(line.get(26..46)?)?;
            let hard = value(line.get(47..67)?)?;
            Some((resource as u32, soft, hard))
        })
        .collect()
}

/// Where the command name of `text`, a `/proc/PID/stat`, ends: just past
/// its closing `)`. The name may hold spaces and parentheses, so it ends
/// at the last `)`; the fields after it follow one space later.
pub fn stat_comm_end(text: &[u8]) -> Option<usize> {
    Some(text.iter().rposition(|&b| b == b')')? + 1)
}

/// Field `at` of `text`, a `/proc/PID/stat`, counted from the one after
/// the command name (0: the state, 1: the parent, …; see
/// [`stat_comm_end`]).
pub fn stat_field_in(text: &str, at: usize) -> Option<&str> {
    let after_comm = text.get(stat_comm_end(text.as_bytes())? + 1..)?;
    after_comm.split_whitespace().nth(at)
}

/// Field `at` (see [`stat_field_in`]) of process (or thread) `pid`'s
/// `/proc/PID/stat`, read now, parsed.
pub fn stat_field<T: std::str::FromStr>(pid: i32, at: usize) -> Option<T> {
    let stat = read_proc(format!("/proc/{pid}/stat")).ok()?;
    stat_field_in(&stat, at)?.parse().ok()
}

/// The nice value of process (or thread) `pid`.
pub fn nice(pid: i32) -> Option<i32> {
    // The 19th field of all, the 17th after the command name.
    stat_field(pid, 16)
}

/// Sets the nice value of thread `tid` (0: the caller); a raw syscall,
/// safe after a fork.
pub fn set_nice(tid: i32, nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes integers.
    let rc = unsafe { libc::syscall(libc::SYS_setpriority, libc::PRIO_PROCESS, tid, nice) };
    zero_or_errno(rc)
}

/// The scheduling policy of thread `tid` as a move or a start away
/// carries it: where it is not the default (`SCHED_OTHER` without
/// reset-on-fork) and can be read.
pub fn scheduling_to_carry(tid: i32) -> Option<Scheduling> {
    // SAFETY: sched_getscheduler takes an integer.
    let policy = unsafe { libc::syscall(libc::SYS_sched_getscheduler, tid) };
    // SCHED_OTHER is 0; -1 is an error.
    if policy <= 0 {
        return None;
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_getparam writes one sched_param, which we own.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getparam, tid, &mut param) };
    (rc == 0).then_some(Scheduling {
        policy: policy as i32,
        priority: param.sched_priority,
    })
}

/// Sets the scheduling policy of thread `tid` (0: the caller); a raw
/// syscall, safe after a fork.
pub fn set_scheduling(tid: i32, scheduling: &Scheduling) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: scheduling.priority,
    };
    // SAFETY: sched_setscheduler reads one sched_param, which we own.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setscheduler, tid, scheduling.policy, &param) };
    zero_or_errno(rc)
}

/// The lowest real-time priority: ahead of every thread of the fair
/// scheduler, behind every other real-time thread.
pub const LOWEST_REAL_TIME: i32 = 1;

/// Puts thread `tid` (0: the caller) on the round-robin real-time
/// scheduler at `priority`, with reset-on-fork: the threads and processes
/// it starts from then on start on the fair scheduler, at nice 0 or above.
pub fn set_real_time(tid: i32, priority: i32) -> std::io::Result<()> {
    const SCHED_RESET_ON_FORK: libc::c_int = 0x4000_0000;
    let policy = libc::SCHED_RR | SCHED_RESET_ON_FORK;
    set_scheduling(tid, &Scheduling { policy, priority })
}

/// Puts thread `tid` (0: the caller) back on the fair scheduler at `nice`.
pub fn set_fair(tid: i32, nice: i32) -> std::io::Result<()> {
    let fair = Scheduling {
        policy: libc::SCHED_OTHER,
        priority: 0,
    };
    set_scheduling(tid, &fair)?;
    set_nice(tid, nice)
}

/// The scheduling policy of thread `tid` (`SCHED_OTHER`, `SCHED_RR`, …)
/// and its real-time priority (0 on the fair scheduler).
pub fn scheduling(tid: i32) -> Option<(i32, i32)> {
    // The 40th and 41st fields of all, after the command name the 37th and 38th.
    Some((stat_field(tid, 38)?, stat_field(tid, 37)?))
}

/// The resource limits that govern what a host gives a program away
/// from home: its CPU time, its memory, its signals queued and its
/// scheduling. The others (open files, file size, processes, locks)
/// count what is at home, where the deputy's own limits hold them; and
/// a core dump is never left on a host.
pub const ENFORCED_ON_HOST: [u32; 10] = [
    libc::RLIMIT_CPU,
    libc::RLIMIT_DATA,
    libc::RLIMIT_STACK,
    libc::RLIMIT_RSS,
    libc::RLIMIT_MEMLOCK,
    libc::RLIMIT_AS,
    libc::RLIMIT_SIGPENDING,
    libc::RLIMIT_NICE,
    libc::RLIMIT_RTPRIO,
    libc::RLIMIT_RTTIME,
];

/// Of `limits` (as [`limits`] gives them), those a host enforces (see
/// [`ENFORCED_ON_HOST`]).
pub fn enforced_on_host(limits: &[(u32, u64, u64)]) -> Vec<(u32, u64, u64)> {
    limits
        .iter()
        .filter(|(resource, ..)| ENFORCED_ON_HOST.contains(resource))
        .copied()
        .collect()
}

/// One resource limit of process `pid` (0: the caller) as (soft, hard),
/// `u64::MAX` for unlimited; with `new`, set to that first (returning
/// the old one), as `prlimit64` does.
pub fn limit(pid: i32, resource: u32, new: Option<(u64, u64)>) -> std::io::Result<(u64, u64)> {
    let new = new.map(|(soft, hard)| libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    });
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let new_ptr = new
        .as_ref()
        .map_or(std::ptr::null(), |new| new as *const libc::rlimit64);
    // SAFETY: `new_ptr` is null or points at a live rlimit64 the kernel
    // only reads; `old` is a live rlimit64 it writes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            pid,
            resource,
            new_ptr,
            &mut old as *mut libc::rlimit64,
        )
    };
    zero_or_errno(rc).map(|()| (old.rlim_cur, old.rlim_max))
}

/// Whether process `pid` has an fd numbered `fd` open: `kcmp` of it with
/// `own`, an fd of the caller's, which fails with EBADF where either is
/// not open. One syscall, without the duplicate `pidfd_getfd` makes or the
/// entry per fd a listing of `/proc/PID/fd` builds. Needs the right to
/// trace `pid`.
pub fn has_fd(pid: i32, fd: i32, own: std::os::fd::BorrowedFd<'_>) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    const KCMP_FILE: libc::c_int = 0;
    // SAFETY: kcmp takes integers only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            std::process::id() as libc::pid_t,
            pid,
            KCMP_FILE,
            own.as_raw_fd() as libc::c_ulong,
            fd as libc::c_ulong,
        )
    };
    match zero_or_errno(rc.min(0)) {
        Ok(()) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::EBADF) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Signal `signal`'s bit in a kernel signal mask (bit `signal - 1`); 0
/// for a number that is no signal.
pub fn signal_bit(signal: i32) -> u64 {
    u32::try_from(signal - 1)
        .ok()
        .and_then(|at| 1u64.checked_shl(at))
        .unwrap_or(0)
}

/// A thread's signals as `/proc/TID/status` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// Pending for this thread (`SigPnd`).
    pub own_pending: u64,
    /// Pending for its process, for whichever thread takes it (`ShdPnd`).
    pub shared_pending: u64,
    /// Blocked in this thread (`SigBlk`).
    pub blocked: u64,
    /// With a handler in its process (`SigCgt`).
    pub caught: u64,
    /// Ignored by its process (`SigIgn`).
    pub ignored: u64,
    /// Threads in its process.
    pub threads: u32,
}

/// The signals of thread `tid`, from one read of its status.
pub fn signals(tid: i32) -> Option<Signals> {
    let status = read_proc(format!("/proc/{tid}/status")).ok()?;
    let field = |name: &str| field_in(&status, name);
    let mask = |name: &str| u64::from_str_radix(field(name)?, 16).ok();
    Some(Signals {
        own_pending: mask("SigPnd:")?,
        shared_pending: mask("ShdPnd:")?,
        blocked: mask("SigBlk:")?,
        caught: mask("SigCgt:")?,
        ignored: mask("SigIgn:")?,
        threads: field("Threads:")?.parse().ok()?,
    })
}

/// A new signalfd of this process's for `signals` (bit `n - 1` for signal
/// `n`), close-on-exec. A read of it takes the signals pending for the
/// process that reads, so installed in another process it reads that
/// one's.
pub fn signalfd(signals: u64) -> std::io::Result<std::os::fd::OwnedFd> {
    // SAFETY: signalfd4 reads the 8 bytes of `signals`, which outlive the
    // call, and returns a new fd that nothing else owns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            &signals as *const u64,
            8,
            libc::SFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the fd was just made and nothing else owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) })
}

/// The signals this process's signalfds ask for, together (bit `n - 1`
/// for signal `n`): every open fd that is a signalfd, and the mask its
/// `/proc/self/fdinfo` entry shows.
pub fn signalfd_signals() -> u64 {
    signals_asked_by(&signalfds_in("self"))
}

/// The signals `signalfds` (fd, signals) ask for, together.
pub fn signals_asked_by(signalfds: &[(i32, u64)]) -> u64 {
    signalfds.iter().fold(0, |all, (_, mask)| all | mask)
}

/// Process `pid`'s signalfds: each fd, and the signals it asks for.
pub fn signalfds_of(pid: i32) -> Vec<(i32, u64)> {
    signalfds_in(&pid.to_string())
}

fn signalfds_in(process: &str) -> Vec<(i32, u64)> {
    anon_fds_in(process, "anon_inode:[signalfd]")
        .filter_map(|(number, info)| {
            Some((
                number,
                u64::from_str_radix(field_in(&info, "sigmask:")?, 16).ok()?,
            ))
        })
        .collect()
}

/// The registrations of `signalfds` (as [`signalfds_of`] gives them) in
/// process `pid`'s epoll instances: `(epoll fd, signalfd, events, data)`.
pub fn epoll_registrations_of(pid: i32, signalfds: &[(i32, u64)]) -> Vec<(i32, i32, u32, u64)> {
    let mut found = Vec::new();
    if signalfds.is_empty() {
        return found;
    }
    let known = |fd: i32| signalfds.iter().any(|(signalfd, _)| *signalfd == fd);
    for (epoll_fd, info) in anon_fds_in(&pid.to_string(), "anon_inode:[eventpoll]") {
        // One line per registration:
        // `tfd: 5 events: 19 data: 3e9 pos:0 ino:... sdev:...`.
        for line in info.lines().filter(|line| line.starts_with("tfd:")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |name: &str| {
                let at = words.iter().position(|word| *word == name)?;
                words.get(at + 1).copied()
            };
            let registration = (|| {
                let fd: i32 = after("tfd:")?.parse().ok()?;
                let events = u32::from_str_radix(after("events:")?, 16).ok()?;
                let data = u64::from_str_radix(after("data:")?, 16).ok()?;
                Some((fd, events, data))
            })();
            if let Some((fd, events, data)) = registration.filter(|r| known(r.0)) {
                found.push((epoll_fd, fd, events, data));
            }
        }
    }
    found
}

/// Process `process`'s fds that link to `kind`, with their fdinfo.
fn anon_fds_in<'a>(process: &'a str, kind: &'a str) -> impl Iterator<Item = (i32, String)> + 'a {
    let fds = std::fs::read_dir(format!("/proc/{process}/fd")).into_iter();
    fds.flatten()
        .flatten()
        .filter(move |fd| std::fs::read_link(fd.path()).is_ok_and(|to| to.as_os_str() == kind))
        .filter_map(move |fd| {
            let number = fd.file_name().to_str()?.parse().ok()?;
            let info = read_proc(format!("/proc/{process}/fdinfo/{number}")).ok()?;
            Some((number, info))
        })
}

/// Keeps freed heap memory for reuse rather than handing it back to the
/// kernel at once. The agents go through megabyte buffers as memory moves;
/// memory handed back comes again as fresh pages, each zeroed by the kernel
/// at its first touch: a tenth of the CPU time of a 1 GiB move, measured.
pub fn keep_freed_heap_memory() {
    // glibc's largest mmap threshold (half its 64 MiB arena heap): every
    // buffer up to a whole frame comes from the heap.
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TRIM_THRESHOLD: libc::c_int = 256 << 20;
    // SAFETY: mallopt only sets allocator parameters; it touches no memory
    // of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Makes every thread of this process allocate from the one main heap.
/// glibc gives each thread that allocates a heap of its own, and each
/// such heap reserves 64 MiB of address space: a deputy of three threads
/// took 147 MB of it, 128 MB of that reserved so. A deputy keeps its
/// program's limits as its own (they are the program's at home, for it
/// to read back, for `/proc/PID/limits` and for its children), and its
/// address space counts against the program's `RLIMIT_AS`: under
/// `ulimit -v 100000` the deputy of the program's next child could not
/// start its threads, and the child died with it.
pub fn one_heap_for_all_threads() {
    // SAFETY: mallopt only sets an allocator parameter; it touches no
    // memory of ours.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The signal the deputy uses to interrupt one of its own threads blocked
/// in a syscall whose caller went away: the last realtime signal, the one
/// programs are least likely to use (it is the one signal a deputy does
/// not forward to its program).
pub fn interrupt_signal() -> i32 {
    libc::SIGRTMAX()
}

/// The signals a deputy forwards to its program, as a kernel signal mask
/// (bit `n - 1` for signal `n`): all but those it cannot or must not take
/// (SIGKILL, SIGSTOP), faults of its own, SIGCHLD (about its own
/// children), glibc's two internal ones, and [`interrupt_signal`].
pub fn forwarded_signal_mask() -> u64 {
    let kept = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        libc::SIGSYS,
        libc::SIGCHLD,
        32,
        33,
        interrupt_signal(),
    ];
    (1..=64)
        .filter(|signal| !kept.contains(signal))
        .fold(0, |mask, signal| mask | signal_bit(signal))
}

/// Sets the calling thread's signal mask to `mask` (as
/// [`forwarded_signal_mask`] gives one), realtime signals included.
pub fn set_thread_signal_mask(mask: u64) -> std::io::Result<()> {
    change_thread_signal_mask(libc::SIG_SETMASK, mask)
}

/// Unblocks the signals in `mask` in the calling thread.
pub fn unblock_signals(mask: u64) -> std::io::Result<()> {
    change_thread_signal_mask(libc::SIG_UNBLOCK, mask)
}

/// `rt_sigprocmask(how, mask)` for the calling thread, realtime signals
/// included.
fn change_thread_signal_mask(how: libc::c_int, mask: u64) -> std::io::Result<()> {
    // SAFETY: rt_sigprocmask reads 8 bytes of `mask`, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            how,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    zero_or_errno(rc)
}

/// Makes the calling process's children leave no zombie when they end
/// (`ignore`: SIGCHLD ignored; `no_wait`: `SA_NOCLDWAIT`), or leave one
/// for a wait again, as the kernel does for a program that asks so. A
/// handler the program has is not taken on: SIGCHLD stays at its default
/// action otherwise.
pub fn set_child_signal_stand(ignore: bool, no_wait: bool) -> std::io::Result<()> {
    // The kernel's struct sigaction on x86-64: handler, flags, restorer, mask.
    let action: [u64; 4] = [
        if ignore { 1 } else { 0 },
        if no_wait {
            libc::SA_NOCLDWAIT as u64
        } else {
            0
        },
        0,
        0,
    ];
    // SAFETY: rt_sigaction reads 32 bytes of `action`, which outlives the
    // call; the handler is SIG_IGN or SIG_DFL, no code of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGCHLD,
            action.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    zero_or_errno(rc)
}

/// Sends signal `signal` (realtime ones included) to process `pid`.
pub fn send_signal(pid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: kill takes integers.
    zero_or_errno(unsafe { libc::kill(pid, signal) }.into())
}

/// Sends signal `signal` to thread `tid` of process `group` (`tgkill`).
pub fn send_thread_signal(group: i32, tid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: tgkill takes integers.
    zero_or_errno(unsafe { libc::syscall(libc::SYS_tgkill, group, tid, signal) })
}

/// The siginfo of the signal [`take_forwarded`] took last, word by word,
/// and its number (0: none since it was read). Atomics: the handler runs
/// in the middle of the thread that reads them.
static TAKEN_INFO: [AtomicU64; SIGINFO_LEN / 8] = [const { AtomicU64::new(0) }; SIGINFO_LEN / 8];
static TAKEN_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn take_forwarded(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    for (at, word) in TAKEN_INFO.iter().enumerate() {
        // SAFETY: the kernel passes a whole siginfo_t (128 bytes, 8-aligned)
        // to an SA_SIGINFO handler; each read is of one word within it.
        let value = unsafe { info.cast::<u64>().add(at).read() };
        word.store(value, Ordering::Relaxed);
    }
    TAKEN_SIGNAL.store(signal, Ordering::Release);
}

/// Has the signals in `mask` taken by [`wait_readable_or_signal`] from
/// now on: the calling thread, blocking them everywhere else, lets them
/// in only while it waits there. Each is handled with the others held
/// off, so one wait takes one signal at most.
pub fn take_signals_while_waiting(mask: u64) -> std::io::Result<()> {
    // A process forked from one that took a signal holds its copy of it.
    TAKEN_SIGNAL.store(0, Ordering::Release);
    for signal in (1..=64).filter(|&signal| mask & signal_bit(signal) != 0) {
        // SAFETY: sigaction is plain data; zeroed is a valid empty mask
        // and flags.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = take_forwarded
            as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
            as usize;
        action.sa_flags = libc::SA_SIGINFO;
        // SAFETY: a sigset_t is 128 bytes, of which the kernel reads the
        // first 8: the signals `mask` names.
        unsafe { std::ptr::write(std::ptr::addr_of_mut!(action.sa_mask).cast::<u64>(), mask) };
        // SAFETY: the handler only stores into atomics, which is
        // async-signal-safe; the struct outlives the call.
        let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        zero_or_errno(rc.into())?;
    }
    Ok(())
}

/// What ended a [`wait_readable_or_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The fd has something to read (or was closed at its other end).
    Readable,
    /// One of the signals waited for came: its number and who sent it.
    Signal(i32, SignalSender),
    /// Another signal interrupted the wait.
    Interrupted,
}

/// Waits until `fd` can be read or one of the signals in `taking` comes,
/// and takes that signal (see [`take_signals_while_waiting`], which must
/// have been called for them); the calling thread's other signals in
/// `blocked` (its mask, which the caller keeps) stay blocked.
pub fn wait_readable_or_signal(
    fd: BorrowedFd<'_>,
    taking: u64,
    blocked: u64,
) -> std::io::Result<Woken> {
    let during = blocked & !taking;
    let mut ready = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd and the 8-byte mask, both ours and alive for the
    // call; no timeout (null: wait for ever).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            &mut ready as *mut libc::pollfd,
            1u64,
            std::ptr::null::<libc::timespec>(),
            &during as *const u64,
            8usize,
        )
    };
    let error = std::io::Error::last_os_error();
    let signal = TAKEN_SIGNAL.swap(0, Ordering::Acquire);
    if signal != 0 {
        let mut info = [0u8; SIGINFO_LEN];
        for (at, word) in TAKEN_INFO.iter().enumerate() {
            info[at * 8..at * 8 + 8].copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        return Ok(Woken::Signal(signal, sender_in(&info)));
    }
    match rc {
        // A wait that finds its fd ready lets no signal in: one pending all
        // the same is taken now, or a stream of input would hold it off.
        1.. => Ok(take_signal_now(taking).unwrap_or(Woken::Readable)),
        _ if error.raw_os_error() == Some(libc::EINTR) => Ok(Woken::Interrupted),
        _ => Err(error),
    }
}

/// Takes one of the signals in `mask` (blocked) pending for the calling
/// thread or its process, with its sender, without waiting.
fn take_signal_now(mask: u64) -> Option<Woken> {
    let mut info = [0u8; SIGINFO_LEN];
    let no_wait = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: rt_sigtimedwait reads 8 bytes of `mask` and the timespec and
    // writes one siginfo_t (128 bytes) into `info`, all ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigtimedwait,
            &mask as *const u64,
            info.as_mut_ptr(),
            &no_wait as *const libc::timespec,
            8usize,
        )
    };
    match rc as i32 {
        signal if signal <= 0 => None,
        signal if signal == interrupt_signal() => Some(Woken::Interrupted),
        signal => Some(Woken::Signal(signal, sender_in(&info))),
    }
}

/// `sizeof(siginfo_t)`.
const SIGINFO_LEN: usize = 128;
// Where x86_64's siginfo_t keeps what a sender leaves in it (the kill,
// rt and timer forms share these places).
const SI_CODE: usize = 8;
const SI_PID: usize = 16;
const SI_UID: usize = 20;
const SI_VALUE: usize = 24;

fn word_at<const N: usize>(info: &[u8; SIGINFO_LEN], at: usize) -> [u8; N] {
    info[at..at + N].try_into().expect("within siginfo_t")
}

/// The sender a `siginfo_t` names.
fn sender_in(info: &[u8; SIGINFO_LEN]) -> SignalSender {
    SignalSender {
        code: i32::from_ne_bytes(word_at(info, SI_CODE)),
        pid: i32::from_ne_bytes(word_at(info, SI_PID)),
        uid: u32::from_ne_bytes(word_at(info, SI_UID)),
        value: u64::from_ne_bytes(word_at(info, SI_VALUE)),
    }
}

/// Whether the kernel lets a process other than the receiver queue a
/// signal of code `code` (`rt_sigqueueinfo`): codes below 0 but
/// `SI_TKILL`, which no `kill` gives. Any other only a process may queue
/// itself.
pub fn queued_by_another(code: i32) -> bool {
    code < 0 && code != libc::SI_TKILL
}

/// Sends process `pid` signal `signal` as `sender` sent it
/// (`rt_sigqueueinfo`): its handler sees that code, pid, uid and value.
/// The kernel takes only codes [`queued_by_another`] from another
/// process: EPERM for the rest.
/// The kernel zeroes the pid of a sender with no pid in the receiver's
/// pid namespace (see [`crate::pid_namespace::PidNamespace::queue_as`]).
pub fn queue_signal(pid: i32, signal: i32, sender: &SignalSender) -> std::io::Result<()> {
    let info = siginfo_of(signal, sender);
    // SAFETY: rt_sigqueueinfo reads one siginfo_t (128 bytes) from `info`.
    zero_or_errno(unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid, signal, info.as_ptr()) })
}

/// The `siginfo_t` of signal `signal` sent by `sender`.
pub fn siginfo_of(signal: i32, sender: &SignalSender) -> [u8; SIGINFO_LEN] {
    let mut info = [0u8; SIGINFO_LEN];
    info[..4].copy_from_slice(&signal.to_ne_bytes());
    info[SI_CODE..SI_CODE + 4].copy_from_slice(&sender.code.to_ne_bytes());
    info[SI_PID..SI_PID + 4].copy_from_slice(&sender.pid.to_ne_bytes());
    info[SI_UID..SI_UID + 4].copy_from_slice(&sender.uid.to_ne_bytes());
    info[SI_VALUE..SI_VALUE + 8].copy_from_slice(&sender.value.to_ne_bytes());
    info
}

/// Takes one of the signals in `mask` (blocked) that is pending for the
/// calling thread or its process, without waiting; `None` if none is.
pub fn take_pending_signal(mask: u64) -> Option<i32> {
    let no_wait = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: rt_sigtimedwait reads 8 bytes of `mask` and the timespec,
    // both ours; no siginfo is written (null).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigtimedwait,
            &mask as *const u64,
            std::ptr::null_mut::<libc::siginfo_t>(),
            &no_wait as *const libc::timespec,
            8usize,
        )
    };
    (rc > 0).then_some(rc as i32)
}

extern "C" fn interrupted(_: libc::c_int) {}

/// Installs a do-nothing handler for [`interrupt_signal`] without
/// `SA_RESTART`, so a blocked syscall it hits returns `EINTR`.
pub fn install_interrupt_handler() -> std::io::Result<()> {
    // SAFETY: sigaction is plain data; zeroed is a valid empty mask and flags.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = interrupted as extern "C" fn(libc::c_int) as usize;
    // SAFETY: the handler does nothing, so it is async-signal-safe; the
    // struct outlives the call.
    let rc = unsafe { libc::sigaction(interrupt_signal(), &action, std::ptr::null_mut()) };
    zero_or_errno(rc.into())
}

/// A libc call's return value as a result: 0 is success, anything else
/// the `errno` it left.
fn zero_or_errno(rc: libc::c_long) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread, as [`interrupt_thread`] names it.
pub fn this_thread() -> libc::pthread_t {
    // SAFETY: pthread_self only returns the caller's own id.
    unsafe { libc::pthread_self() }
}

/// Interrupts thread `thread` of this process with [`interrupt_signal`].
pub fn interrupt_thread(thread: libc::pthread_t) {
    // SAFETY: `thread` is a live thread of this process (the caller keeps
    // its JoinHandle); the signal's handler does nothing.
    unsafe {
        libc::pthread_kill(thread, interrupt_signal());
    }
}

/// The kernel's `struct prctl_mm_map`.
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *const u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// Makes `/proc/self/cmdline` (what `ps -f` and `pgrep -f` read) show
/// `args`, as a program's own exec would have: a deputy takes its
/// program's command line. Everything else of the process's memory
/// description stays as it is (`PR_SET_MM_MAP`, allowed without
/// privilege when the executable is left alone).
pub fn set_command_line(args: &[Vec<u8>]) -> std::io::Result<()> {
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "unreadable /proc/self/stat",
        )
    };
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name (which may hold spaces), from
    // field 3, the state.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .ok_or_else(bad)?
        .1
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |number: usize| fields.get(number - 3).copied().ok_or_else(bad);
    let auxv = std::fs::read("/proc/self/auxv")?;
    let auxv: Vec<u64> = auxv
        .chunks_exact(8)
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .collect();
    let mut area: Vec<u8> = Vec::new();
    for arg in args {
        area.extend_from_slice(arg);
        area.push(0);
    }
    if area.is_empty() {
        area.push(0);
    }
    // It stays the command line for as long as the process lives.
    let area: &'static [u8] = Box::leak(area.into_boxed_slice());
    // SAFETY: brk(0) changes nothing and returns the current break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    let map = MmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk,
        start_stack: field(28)?,
        arg_start: area.as_ptr() as u64,
        arg_end: area.as_ptr() as u64 + area.len() as u64,
        env_start: field(50)?,
        env_end: field(51)?,
        auxv: auxv.as_ptr(),
        auxv_size: (auxv.len() * 8) as u32,
        exe_fd: u32::MAX,
    };
    // SAFETY: PR_SET_MM_MAP reads `map` and the auxv it points at, both
    // alive for the call; the command line area is leaked, so it outlives
    // the process's use of it.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP,
            &map as *const MmMap,
            std::mem::size_of::<MmMap>(),
            0,
        )
    };
    zero_or_errno(rc.into())
}

/// Runs a credential change the program made (`setuid` and its kin,
/// `setgroups`: `nr`, `args`, and for `setgroups` its list of gids) for
/// this whole process, through the C library: the kernel keeps
/// credentials per thread, and a raw syscall would change only the thread
/// that made it, while glibc changes every thread, as a program expects
/// (the deputy runs the program's calls on several threads). Returns the
/// syscall's result (`-errno` on failure), or `None` for any other call.
pub fn change_credentials(nr: i64, args: &[u64; 6], gids: &[u8]) -> Option<i64> {
    let id = |at: usize| args[at] as u32;
    let outcome = match nr {
        // SAFETY: each is a plain C library call on integers.
        libc::SYS_setuid => unsafe { libc::setuid(id(0)) },
        // SAFETY: as above.
        libc::SYS_setgid => unsafe { libc::setgid(id(0)) },
        // SAFETY: as above.
        libc::SYS_setreuid => unsafe { libc::setreuid(id(0), id(1)) },
        // SAFETY: as above.
        libc::SYS_setregid => unsafe { libc::setregid(id(0), id(1)) },
        // SAFETY: as above.
        libc::SYS_setresuid => unsafe { libc::setresuid(id(0), id(1), id(2)) },
        // SAFETY: as above.
        libc::SYS_setresgid => unsafe { libc::setresgid(id(0), id(1), id(2)) },
        libc::SYS_setgroups => {
            let list: Vec<libc::gid_t> = gids
                .chunks_exact(4)
                .map(|gid| u32::from_ne_bytes(gid.try_into().expect("4 bytes")))
                .collect();
            if list.len() != args[0] as usize {
                return Some(-(libc::EFAULT as i64));
            }
            // SAFETY: the list holds as many gids as its length says.
            unsafe { libc::setgroups(list.len(), list.as_ptr()) }
        }
        _ => return None,
    };
    Some(match outcome {
        0 => 0,
        _ => {
            -(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EPERM) as i64)
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_threads_scheduling_policy_is_read_as_a_move_carries_it() {
        let (told, tid) = std::sync::mpsc::channel();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            told.send(nix::unistd::gettid().as_raw()).unwrap();
            let _ = finished.recv();
        });
        let tid = tid.recv().unwrap();
        assert_eq!(super::scheduling_to_carry(tid), None);
        let batch = super::Scheduling {
            policy: libc::SCHED_BATCH,
            priority: 0,
        };
        super::set_scheduling(tid, &batch).unwrap();
        assert_eq!(super::scheduling_to_carry(tid), Some(batch));
        assert_eq!(super::scheduling_to_carry(std::process::id() as i32), None);
        finish.send(()).unwrap();
        thread.join().unwrap();
    }

    #[test]
    fn a_signalfds_registration_in_an_epoll_instance_is_read_with_its_data() {
        use rustix::event::epoll;
        use std::os::fd::AsRawFd;
        let usr2 = super::signal_bit(libc::SIGUSR2);
        let signalfd = super::signalfd(usr2).unwrap();
        let other = super::signalfd(usr2).unwrap();
        let instance = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        let data = epoll::EventData::new_u64(0x1234_5678_9abc);
        epoll::add(&instance, &signalfd, data, epoll::EventFlags::IN).unwrap();
        epoll::add(&instance, &other, data, epoll::EventFlags::OUT).unwrap();
        let pid = std::process::id() as i32;
        let found = super::epoll_registrations_of(pid, &[(signalfd.as_raw_fd(), usr2)]);
        let (epoll_fd, fd) = (instance.as_raw_fd(), signalfd.as_raw_fd());
        // The kernel keeps EPOLLERR and EPOLLHUP with every registration.
        let events = (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32;
        assert_eq!(found, [(epoll_fd, fd, events, 0x1234_5678_9abc)]);
    }

    #[test]
    fn a_proc_file_or_any_file_is_read_whole() {
        let status = super::read_proc("/proc/self/status").unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(super::field_in(&status, "Pid:"), Some(pid.as_str()));
        let dir = std::env::temp_dir().join(format!("homing-read-proc-{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        let text: String = (0..2000).map(|n| format!("{n}\n")).collect();
        std::fs::write(dir.join("long"), &text).unwrap();
        assert_eq!(super::read_proc(dir.join("long")).unwrap(), text);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_thread_is_told_from_several() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let alone = super::single_threaded(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        assert!(alone);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || stopped.recv().is_ok());
        let several = !super::single_threaded(std::process::id() as i32);
        drop(stop);
        helper.join().unwrap();
        assert!(several);
        assert!(!super::single_threaded(i32::MAX));
    }

    #[test]
    fn the_signals_of_open_signalfds_are_told_together() {
        let make = |signals: &[i32]| {
            let mask: u64 = signals.iter().map(|&s| super::signal_bit(s)).sum();
            super::signalfd(mask).expect("signalfd")
        };
        let before = super::signalfd_signals();
        let (usr1, term) = (
            make(&[libc::SIGUSR1]),
            make(&[libc::SIGTERM, libc::SIGCHLD]),
        );
        let bits = super::signal_bit(libc::SIGUSR1)
            | super::signal_bit(libc::SIGTERM)
            | super::signal_bit(libc::SIGCHLD);
        assert_eq!(super::signalfd_signals() & bits, bits);
        drop(term);
        assert_eq!(
            super::signalfd_signals() & bits,
            super::signal_bit(libc::SIGUSR1) | (before & bits)
        );
        drop(usr1);
        assert_eq!(super::signalfd_signals(), before);
    }

    #[test]
    fn stat_fields_are_counted_past_a_name_with_spaces_and_parentheses() {
        let text = "41 (odd) name )) S 7 41 41 0 -1\n";
        assert_eq!(super::stat_field_in(text, 0), Some("S"));
        assert_eq!(super::stat_field_in(text, 1), Some("7"));
        assert_eq!(super::stat_field_in(text, 5), Some("-1"));
        assert_eq!(super::stat_field_in(text, 6), None);
        let me = std::process::id() as i32;
        assert_eq!(
            super::stat_field::<i32>(me, 1),
            Some(nix::unistd::getppid().as_raw())
        );
    }

    #[test]
    fn a_pidfd_tells_the_identity_the_process_itself_gets() {
        use std::os::fd::AsFd;
        let me = rustix::process::getpid();
        let pidfd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).unwrap();
        let told = super::pidfd_identity(pidfd.as_fd()).unwrap();
        assert_eq!(
            told,
            super::PidfdIdentity {
                ppid: nix::unistd::getppid().as_raw() as u32,
                ruid: nix::unistd::getuid().as_raw(),
                euid: nix::unistd::geteuid().as_raw(),
                rgid: nix::unistd::getgid().as_raw(),
                egid: nix::unistd::getegid().as_raw(),
            }
        );
    }

    #[test]
    fn an_open_fd_of_another_process_is_told_from_a_free_number() {
        use std::os::fd::{AsFd, AsRawFd};
        // A child that keeps one file open and waits for its end.
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let child = match super::fork().unwrap() {
            super::Forked::Child => {
                drop(write_end);
                let mut byte = [0u8; 1];
                let _ = nix::unistd::read(read_end.as_raw_fd(), &mut byte);
                // SAFETY: _exit ends the forked child without running the parent's atexit.
                unsafe { libc::_exit(0) }
            }
            super::Forked::Parent(pid) => pid,
        };
        let own = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(super::has_fd(child, read_end.as_raw_fd(), own.as_fd()).unwrap());
        assert!(!super::has_fd(child, 900, own.as_fd()).unwrap());
        drop(write_end);
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None).unwrap();
    }

    #[test]
    fn the_command_line_is_replaced() {
        // In a child: the test harness's own command line stays.
        match super::fork().unwrap() {
            super::Forked::Child => {
                let set = super::set_command_line(&[b"python3".to_vec(), b"analyse.py".to_vec()]);
                let shown = std::fs::read("/proc/self/cmdline").unwrap_or_default();
                let ok = set.is_ok() && shown == b"python3\0analyse.py\0";
                // SAFETY: _exit ends the forked child without running the parent's atexit.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            super::Forked::Parent(child) => {
                let status =
                    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None).unwrap();
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(child), 0)
                );
            }
        }
    }
}
