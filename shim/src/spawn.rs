//! Starting a guest: a child process that runs a program under the guest
//! filter, with the supervisor holding the filter's listener.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};

use crate::pid_namespace::PidNamespace;
use crate::seccomp::{Answer, Filter, Listener};

/// What to run and as whom.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// The local file to execute (the host's cached copy of the home program).
    pub exe: CString,
    /// The program's arguments, `argv[0]` included.
    pub argv: Vec<CString>,
    /// Its environment.
    pub envp: Vec<CString>,
    /// User, group and supplementary groups to run as (ignored unless the supervisor is root).
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Signals ignored across exec (bit N-1 for signal N), as execve keeps them.
    pub ignored_signals: u64,
    /// The signal mask, as execve keeps it.
    pub blocked_signals: u64,
    /// Resource limits to run under, as (resource, soft, hard) with
    /// `u64::MAX` for unlimited: those of the process at home that the
    /// host enforces (its CPU time, its memory).
    pub limits: Vec<(u32, u64, u64)>,
    /// Nice value to run at.
    pub nice: i32,
    /// Scheduling policy to run under, where not the default.
    pub scheduling: Option<homing_proto::image::Scheduling>,
}

/// A running guest.
#[derive(Debug)]
pub struct Guest {
    /// Its pid on this host.
    pub pid: i32,
    /// A pidfd for it.
    pub pidfd: OwnedFd,
    /// The listener of its filter.
    pub listener: Listener,
}

/// Why a guest could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// fork failed.
    #[error("fork failed: {0}")]
    Fork(std::io::Error),
    /// The child failed before its program started (bad executable, setuid failure, …).
    #[error("the guest could not start: {0}")]
    Child(String),
    /// The supervisor could not take the filter's listener.
    #[error("cannot take the guest's seccomp listener: {0}")]
    Listener(std::io::Error),
    /// The kernel refused to execute the program, each time it was tried.
    #[error("the guest could not start: cannot execute the program")]
    Exec,
}

/// How many times a guest is started whose exec failed: an exec fails
/// with ETXTBSY while any process holds the program open for writing, and
/// a child the agent forks holds, until it has closed its fds, every fd
/// the agent's other threads had open at that moment, a cache entry or
/// launch copy being written among them. Two programs started together
/// on a host both failed so (status 122), each exec'ing what the other's
/// child held.
const EXEC_TRIES: u32 = 5;

/// Exit codes the child uses to say which setup step failed.
const STEP_CREDENTIALS: i32 = 120;
const STEP_FILTER: i32 = 121;
const STEP_EXEC: i32 = 122;

/// Forks a guest running `spec` under `filter`.
///
/// The guest dies with the thread that calls this (`PR_SET_PDEATHSIG`), so
/// call it from a thread that lives as long as the agent. The guest has no
/// local fds at all: every fd it will use is a home fd.
///
/// `within`: the pid namespace to start it in, and the pid it should have
/// there (it gets another if that one is taken).
pub fn spawn(
    spec: &GuestSpec,
    filter: &Filter,
    within: Option<(&PidNamespace, i32)>,
) -> Result<Guest, SpawnError> {
    let mut tries = 1;
    loop {
        match spawn_once(spec, filter, within) {
            Err(SpawnError::Exec) if tries < EXEC_TRIES => {
                tracing::debug!(tries, "the guest's exec failed; starting it again");
                std::thread::sleep(Duration::from_millis(2 << tries));
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

fn spawn_once(
    spec: &GuestSpec,
    filter: &Filter,
    within: Option<(&PidNamespace, i32)>,
) -> Result<Guest, SpawnError> {
    // Everything the child touches is prepared before fork: after fork it
    // may only issue raw syscalls.
    let argv: Vec<*const libc::c_char> = spec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = spec
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let groups: Vec<libc::gid_t> = spec.groups.clone();
    let as_root = rustix::process::geteuid().is_root();

    let pid = fork_child(within).map_err(SpawnError::Fork)?;
    if pid == 0 {
        child(spec, filter, &argv, &envp, &groups, as_root);
    }
    let pidfd = pidfd_open(
        Pid::from_raw(pid).expect("fork returned a pid"),
        PidfdFlags::empty(),
    )
    .map_err(|e| SpawnError::Listener(e.into()))?;
    let listener = take_listener(pid, &pidfd)?;
    // The guest's first intercepted syscall is the execve of its program.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.recv(Duration::from_millis(100)) {
            Ok(Some(n)) if n.nr == libc::SYS_execve as u64 => {
                listener
                    .answer(n.id, Answer::Continue)
                    .map_err(SpawnError::Listener)?;
                break;
            }
            Ok(Some(n)) => listener
                .answer(n.id, Answer::Errno(libc::EPERM))
                .map_err(SpawnError::Listener)?,
            Ok(None) if Instant::now() < deadline => {}
            Ok(None) => return Err(SpawnError::Child("no exec within 5 s".into())),
            Err(e) => return Err(child_failure(pid, e)),
        }
    }
    until_executed(pid)?;
    Ok(Guest {
        pid,
        pidfd,
        listener,
    })
}

/// Forks, into `within`'s namespace with its pid if given; in the child
/// only raw syscalls on memory prepared before are safe.
pub(crate) fn fork_child(within: Option<(&PidNamespace, i32)>) -> std::io::Result<i32> {
    match within {
        Some((namespace, pid)) => namespace.fork_child(pid),
        None => fork(),
    }
}

/// A blank child's side: credentials, no fds, the filter if any, then it
/// sleeps until the supervisor seizes it and restores an image into it.
pub(crate) fn blank_child(
    uid: u32,
    gid: u32,
    groups: &[libc::gid_t],
    as_root: bool,
    filter: Option<&Filter>,
) -> ! {
    if as_root && set_credentials(uid, gid, groups).is_err() {
        exit(STEP_CREDENTIALS);
    }
    prepare_child();
    if let Some(filter) = filter {
        if filter.install_with_listener().is_err() {
            exit(STEP_FILTER);
        }
    }
    loop {
        // SAFETY: pause takes nothing; it returns only on a signal.
        unsafe { libc::syscall(libc::SYS_pause) };
    }
}

pub(crate) fn fork() -> std::io::Result<i32> {
    // SAFETY: the child only runs `child`, which issues raw syscalls on
    // memory prepared before the fork and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// The child's side: credentials, no fds, filter, exec. Never returns.
fn child(
    spec: &GuestSpec,
    filter: &Filter,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    groups: &[libc::gid_t],
    as_root: bool,
) -> ! {
    // First of all: the fds it shares with the agent include files its
    // other threads are writing, which no program may exec meanwhile
    // (see `EXEC_TRIES`).
    close_every_fd();
    set_limits(&spec.limits);
    // Before the credentials go: a nice value below the agent's takes
    // privilege (the deputy had it, or `RLIMIT_NICE` let it).
    let _ = crate::process::set_nice(0, spec.nice);
    if let Some(scheduling) = &spec.scheduling {
        let _ = crate::process::set_scheduling(0, scheduling);
    }
    if as_root && set_credentials(spec.uid, spec.gid, groups).is_err() {
        exit(STEP_CREDENTIALS);
    }
    prepare_child();
    inherit_signals(spec.ignored_signals, spec.blocked_signals);
    if filter.install_with_listener().is_err() {
        exit(STEP_FILTER);
    }
    exec(&spec.exe, argv, envp);
    exit(STEP_EXEC)
}

/// Sets each of `limits` on the calling process. A hard limit may be
/// raised only with `CAP_SYS_RESOURCE`, which an agent may lack: where
/// one cannot be, the limit is lowered to it instead, never raised.
/// Raw syscalls only: safe after a fork.
fn set_limits(limits: &[(u32, u64, u64)]) {
    use crate::process::limit;
    for &(resource, soft, hard) in limits {
        if limit(0, resource, Some((soft, hard))).is_ok() {
            continue;
        }
        if let Ok((_, own_hard)) = limit(0, resource, None) {
            let hard = hard.min(own_hard);
            let _ = limit(0, resource, Some((soft.min(hard), hard)));
        }
    }
}

fn set_credentials(uid: u32, gid: u32, groups: &[libc::gid_t]) -> Result<(), ()> {
    // SAFETY: raw credential syscalls with integer arguments and a pointer
    // to `groups`, which lives until the child execs.
    let ok = unsafe {
        libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) == 0
            && libc::syscall(libc::SYS_setresgid, gid, gid, gid) == 0
            && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// Closes every fd of the calling process; a raw syscall, safe after a fork.
fn close_every_fd() {
    // SAFETY: close_range takes integers.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
}

fn prepare_child() {
    // SAFETY: raw syscalls with integer arguments and a static string.
    unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL,
            0,
            0,
            0,
        );
        libc::syscall(libc::SYS_chdir, c"/".as_ptr());
    }
    close_every_fd();
}

/// The kernel's `struct sigaction` on x86_64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Applies what execve carries over from the program being replaced:
/// ignored signals stay ignored, the mask stays. Every other signal
/// takes its default action: the agent's own dispositions are not the
/// program's (the Rust runtime ignores SIGPIPE, which execve would keep).
fn inherit_signals(ignored: u64, blocked: u64) {
    for signal in 1..=64 {
        let handler = match ignored & crate::process::signal_bit(signal) {
            0 => libc::SIG_DFL,
            _ => libc::SIG_IGN,
        };
        let action = KernelSigaction {
            handler,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: a raw rt_sigaction with a struct we own; SIG_DFL and
        // SIG_IGN run no code. SIGKILL and SIGSTOP refuse it, harmlessly.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                &action as *const KernelSigaction,
                std::ptr::null::<KernelSigaction>(),
                8usize,
            );
        }
    }
    // SAFETY: a raw rt_sigprocmask with a mask we own.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &blocked as *const u64,
            std::ptr::null::<u64>(),
            8usize,
        );
    }
}

fn exec(exe: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) {
    // SAFETY: null-terminated arrays of pointers to C strings that outlive the call.
    unsafe {
        libc::syscall(libc::SYS_execve, exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
}

/// Ends the calling process at once, by a raw syscall: safe in a fork of
/// a multithreaded process.
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: exit_group and exit take an integer. Under a guest filter
    // whose supervisor is gone, exit_group fails (ENOSYS); exit, which the
    // filter lets through, ends the one thread a fork has.
    unsafe {
        libc::syscall(libc::SYS_exit_group, code);
        libc::syscall(libc::SYS_exit, code);
    }
    unreachable!("exit returned")
}

/// Takes the child's listener: after closing every fd, the child's filter
/// listener is its fd 0.
pub(crate) fn take_listener(pid: i32, pidfd: &OwnedFd) -> Result<Listener, SpawnError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(fd) = pidfd_getfd(pidfd.as_fd(), 0, PidfdGetfdFlags::empty()) {
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            if link.is_ok_and(|l| l.as_os_str() == "anon_inode:seccomp notify") {
                return Ok(Listener::new(fd));
            }
        }
        if let Some(failure) = exited(pid) {
            return Err(SpawnError::Child(failure));
        }
        if Instant::now() > deadline {
            return Err(SpawnError::Listener(std::io::Error::from_raw_os_error(
                libc::ETIMEDOUT,
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn child_failure(pid: i32, error: std::io::Error) -> SpawnError {
    match exited(pid) {
        Some(failure) => SpawnError::Child(failure),
        None => SpawnError::Listener(error),
    }
}

/// Waits until the child `pid`, let through its execve, runs its program
/// (its `/proc/PID/exe` no longer names the agent's), or says why not:
/// [`SpawnError::Exec`] where the exec failed (the child is reaped).
fn until_executed(pid: i32) -> Result<(), SpawnError> {
    let own = std::fs::read_link("/proc/self/exe").ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) if Some(&exe) != own.as_ref() => return Ok(()),
            // A kernel thread's, or a zombie's: its end says why.
            Ok(_) | Err(_) => {}
        }
        match exit_code(pid) {
            Some(Ok(STEP_EXEC)) => return Err(SpawnError::Exec),
            Some(end) => return Err(SpawnError::Child(why_ended(end))),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(100)),
            None => {
                // Unsupervised, it must not run on.
                let child = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(SpawnError::Child(
                    "its program did not start within 5 s".into(),
                ));
            }
        }
    }
}

/// Why a child that exited with `code` did not start.
fn step_failure(code: i32) -> String {
    match code {
        STEP_CREDENTIALS => "cannot take on the caller's credentials".into(),
        STEP_FILTER => "cannot install the seccomp filter".into(),
        STEP_EXEC => "cannot execute the program".into(),
        other => format!("exited with status {other}"),
    }
}

/// The child's exit code, or the signal that killed it, once it has
/// ended (it is then reaped).
fn exit_code(pid: i32) -> Option<Result<i32, nix::sys::signal::Signal>> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(Ok(code)),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(Err(signal)),
        _ => None,
    }
}

/// Why a child that ended so (see [`exit_code`]) did not start.
fn why_ended(end: Result<i32, nix::sys::signal::Signal>) -> String {
    match end {
        Ok(code) => step_failure(code),
        Err(signal) => format!("killed by {signal}"),
    }
}

/// If the child has exited, why (and reaps it).
fn exited(pid: i32) -> Option<String> {
    exit_code(pid).map(why_ended)
}
