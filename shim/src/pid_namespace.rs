//! A pid namespace whose pids the supervisor chooses, so that a guest's
//! pid on its host can be the one it has at home.
//!
//! Its pid 1 is a small process of ours: it reaps orphans, and writes the
//! namespace's `ns_last_pid` on request, which only a process inside the
//! namespace can do; the kernel then gives the next fork in the namespace
//! the pid that follows. Processes the supervisor creates in it get their
//! pid from `clone3`'s `set_tid`. Where a pid is taken, the kernel gives
//! another: callers must not count on getting the one they asked for.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use linux_raw_sys::general::{clone_args, CLONE_ARGS_SIZE_VER2, CLONE_NEWPID};
use nix::sched::{setns, CloneFlags};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::time_namespace::TimeNamespace;

/// How often the namespace's pid 1 reaps orphans. Not at once: a guest's
/// exit status is read from its zombie by whoever watches it.
const REAP_EVERY_MS: i64 = 1000;

/// Why a pid namespace could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum PidNamespaceError {
    /// Preparing it (our own namespace, `ns_last_pid`, a socket) failed.
    #[error("cannot prepare a pid namespace: {0}")]
    Prepare(std::io::Error),
    /// Creating its pid 1 failed (no CAP_SYS_ADMIN, or namespaces are off).
    #[error("cannot create a pid namespace: {0}")]
    Create(std::io::Error),
    /// Its pid 1 did not answer, or could not set the next pid.
    #[error("the pid namespace's pid 1 failed: {0}")]
    Control(std::io::Error),
}

/// A pid namespace made by us, and its pid 1.
#[derive(Debug)]
pub struct PidNamespace {
    init: i32,
    init_pidfd: OwnedFd,
    /// Our own pid namespace, to come back to after a process is created
    /// in this one.
    ours: OwnedFd,
    /// The line to its pid 1: a pid goes down, an errno (0: done) comes back.
    control: Mutex<UnixStream>,
    /// The clocks its processes see, where they are another node's.
    time: Option<TimeNamespace>,
}

impl PidNamespace {
    /// Creates a namespace and its pid 1, which ends (and with it every
    /// process in the namespace) when this value is dropped or the
    /// supervisor ends. The processes made in it see the clocks of
    /// `time`, where given.
    pub fn create(time: Option<TimeNamespace>) -> Result<Self, PidNamespaceError> {
        let ours = std::fs::File::open("/proc/self/ns/pid")
            .map_err(PidNamespaceError::Prepare)?
            .into();
        let last_pid = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/sys/kernel/ns_last_pid")
            .map_err(PidNamespaceError::Prepare)?;
        let (control, init_end) = UnixStream::pair().map_err(PidNamespaceError::Prepare)?;
        let init = clone3(CLONE_NEWPID as u64, None).map_err(PidNamespaceError::Create)?;
        if init == 0 {
            namespace_init(init_end.as_raw_fd(), last_pid.as_raw_fd());
        }
        drop(init_end);
        let init_pidfd = pidfd_open(
            Pid::from_raw(init).expect("clone3 returned a pid"),
            PidfdFlags::empty(),
        )
        .map_err(|e| PidNamespaceError::Create(e.into()))?;
        Ok(Self {
            init,
            init_pidfd,
            ours,
            control: Mutex::new(control),
            time,
        })
    }

    /// Whether its processes see another node's clocks.
    pub fn shifts_clocks(&self) -> bool {
        self.time.is_some()
    }

    /// Its pid 1's pid in our namespace.
    pub fn init_pid(&self) -> i32 {
        self.init
    }

    /// Whether its pid 1 still runs. Once it has ended (killed by someone),
    /// so has every process in the namespace, and no process can be made
    /// in it any more.
    pub fn is_alive(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        // A pidfd is readable once its process has ended.
        let mut fds = [PollFd::new(self.init_pidfd.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).is_ok_and(|ready| ready == 0)
    }

    /// Makes `pid` the one the namespace's next fork gets, if it is free
    /// then.
    pub fn expect_next(&self, pid: i32) -> Result<(), PidNamespaceError> {
        let mut control = self
            .control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        control
            .write_all(&(pid - 1).to_ne_bytes())
            .map_err(PidNamespaceError::Control)?;
        let mut errno = [0u8; 4];
        control
            .read_exact(&mut errno)
            .map_err(PidNamespaceError::Control)?;
        match i32::from_ne_bytes(errno) {
            0 => Ok(()),
            errno => Err(PidNamespaceError::Control(
                std::io::Error::from_raw_os_error(errno),
            )),
        }
    }

    /// Forks a child into the namespace, with pid `wanted` there if that is
    /// free; like fork, returns 0 in the child (which may only issue raw
    /// syscalls on memory prepared before) and its pid in ours to the caller.
    pub(crate) fn fork_child(&self, wanted: i32) -> std::io::Result<i32> {
        // pid_for_children is the calling thread's own: entering and
        // leaving it here touches no other thread of the supervisor.
        setns(self.init_pidfd.as_fd(), CloneFlags::CLONE_NEWPID)?;
        let mut forked = clone3(0, Some(wanted));
        if forked.is_err() {
            // Taken, or beyond the namespace's pid_max: any pid will do.
            forked = clone3(0, None);
        }
        if forked.as_ref().is_ok_and(|&pid| pid == 0) {
            // One thread, just forked: the only kind the kernel lets in.
            // Failing, it keeps the host's clocks.
            if let Some(time) = &self.time {
                crate::time_namespace::enter(time.raw_fd());
            }
            return forked;
        }
        if let Err(error) = setns(self.ours.as_fd(), CloneFlags::CLONE_NEWPID) {
            tracing::error!("cannot leave a guest pid namespace: {error}");
        }
        forked
    }

    /// Sends `signal` to `target` (a pid of the namespace) from a process
    /// made in the namespace for that, with pid `as_pid` there and real
    /// uid `as_uid`: the target's handler then sees that pid and uid,
    /// with `SI_USER` (`SI_TKILL` for `thread`, sent to `target`'s main
    /// thread), as only a `kill` by such a process gives. `Ok(false)`:
    /// nothing was sent (that pid was taken, or that uid may not signal
    /// the target). The caller must keep other forks into the namespace
    /// from setting its next pid meanwhile.
    ///
    /// The process shares our memory and runs on a small stack of its
    /// own while we wait (`CLONE_VM | CLONE_VFORK`). 300 signals sent in
    /// a row to a program away took 42-62 ms so, 220-260 ms made by a
    /// fork of the whole agent, and 11-16 ms sent by the agent itself
    /// (debug builds).
    pub fn signal_as(
        &self,
        as_pid: i32,
        as_uid: u32,
        target: i32,
        signal: i32,
        thread: bool,
    ) -> std::io::Result<bool> {
        self.expect_next(as_pid).map_err(std::io::Error::other)?;
        self.send_inside(Box::new(move || {
            send_as(as_pid, as_uid, target, signal, thread)
        }))
    }

    /// Queues `signal` for `target` (a pid of the namespace) as `sender`
    /// sent it (`rt_sigqueueinfo`, a code below 0 but `SI_TKILL`: a
    /// `sigqueue`, a message queue's notice), from a process made in the
    /// namespace for that: the kernel keeps the sender's pid only from a
    /// process with a pid in the receiver's namespace, and zeroes it from
    /// ours. `Ok(false)`: not sent. The caller must keep other forks into
    /// the namespace from setting its next pid meanwhile: the process
    /// takes a pid there.
    pub fn queue_as(
        &self,
        target: i32,
        signal: i32,
        sender: &homing_proto::guest::SignalSender,
    ) -> std::io::Result<bool> {
        let info = crate::process::siginfo_of(signal, sender);
        self.send_inside(Box::new(move || {
            // SAFETY: rt_sigqueueinfo reads one siginfo_t (128 bytes)
            // from `info`, which this closure owns.
            let sent =
                unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, target, signal, info.as_ptr()) };
            isize::from(sent != 0)
        }))
    }

    /// Runs `send` in a process made in the namespace (its next pid);
    /// whether it ended with status 0.
    fn send_inside(&self, send: Box<dyn FnMut() -> isize>) -> std::io::Result<bool> {
        // pid_for_children is the calling thread's own: entering and
        // leaving it here touches no other thread of the supervisor.
        setns(self.init_pidfd.as_fd(), CloneFlags::CLONE_NEWPID)?;
        let mut stack = vec![0u8; SENDER_STACK];
        // SAFETY: with CLONE_VFORK we are suspended until the child has
        // ended, so it alone uses the memory we share (CLONE_VM); it runs
        // `send` on `stack`, which outlives it, and makes raw syscalls
        // only (no lock, no allocation, no glibc wrapper that would act for
        // every thread of ours).
        let child = unsafe {
            nix::sched::clone(
                send,
                &mut stack,
                CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
                Some(libc::SIGCHLD),
            )
        };
        if let Err(error) = setns(self.ours.as_fd(), CloneFlags::CLONE_NEWPID) {
            tracing::error!("cannot leave a guest pid namespace: {error}");
        }
        let child = child?.as_raw();
        let mut status = 0;
        // SAFETY: waitpid writes one int, ours.
        let reaped = unsafe { libc::waitpid(child, &mut status, libc::__WALL) };
        Ok(reaped == child && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
    }
}

/// The stack of the process [`PidNamespace::signal_as`] makes.
const SENDER_STACK: usize = 64 << 10;

/// What the process of [`PidNamespace::signal_as`] runs: sends the signal
/// if it has the pid asked for; its status (0: sent, 1: refused, 2: not
/// that pid). Raw syscalls only.
fn send_as(as_pid: i32, as_uid: u32, target: i32, signal: i32, thread: bool) -> isize {
    // SAFETY: getpid, setresuid, kill and tgkill take integers.
    unsafe {
        if libc::syscall(libc::SYS_getpid) != i64::from(as_pid) {
            return 2;
        }
        if as_uid != 0 && libc::syscall(libc::SYS_setresuid, as_uid, as_uid, as_uid) != 0 {
            return 1;
        }
        let sent = if thread {
            libc::syscall(libc::SYS_tgkill, target, target, signal)
        } else {
            libc::syscall(libc::SYS_kill, target, signal)
        };
        isize::from(sent != 0)
    }
}

impl Drop for PidNamespace {
    fn drop(&mut self) {
        // SAFETY: kill takes integers.
        unsafe { libc::kill(self.init, libc::SIGKILL) };
        // Its pid 1 ends only once every process in it has been reaped,
        // some of them by us: it is reaped apart from this thread.
        let init = self.init;
        let reap = move || {
            // SAFETY: waitpid takes integers and a null status pointer.
            unsafe { libc::waitpid(init, std::ptr::null_mut(), 0) };
        };
        if std::thread::Builder::new()
            .name(format!("reap-{init}"))
            .spawn(reap)
            .is_err()
        {
            tracing::warn!(init, "cannot reap a pid namespace's pid 1");
        }
    }
}

/// Makes `pid` the one the next fork of process `like`'s pid namespace
/// gets, where that namespace is ours and `pid` is free in it: the
/// namespace's `ns_last_pid` is ours to write (as root) only there. Other
/// processes fork in it too, so the pid may still go to another, which
/// callers must allow for. Whether it was set.
pub fn expect_next_beside(like: i32, pid: i32) -> std::io::Result<bool> {
    let ours = std::fs::metadata("/proc/self/ns/pid")?;
    let theirs = std::fs::metadata(format!("/proc/{like}/ns/pid"))?;
    let same = (ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino());
    if !same || pid <= 1 || std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Ok(false);
    }
    std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())?;
    Ok(true)
}

/// The innermost pid of process (or thread) `pid`: the one it sees itself,
/// where it lives in a pid namespace of ours.
pub fn innermost_pid(pid: i32) -> Option<i32> {
    innermost_in(&crate::process::read_proc(format!("/proc/{pid}/status")).ok()?)
}

/// The innermost pid in `status`, the text of a `/proc/PID/status`.
pub fn innermost_in(status: &str) -> Option<i32> {
    crate::process::field_in(status, "NSpid:")?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// `clone3` as fork: with `set_tid`, the child's pid in the innermost
/// namespace is `pid`. Returns 0 in the child.
fn clone3(flags: u64, pid: Option<i32>) -> std::io::Result<i32> {
    let set_tid = [pid.unwrap_or(0) as libc::pid_t];
    let args = clone_args {
        flags,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: if pid.is_some() {
            set_tid.as_ptr() as u64
        } else {
            0
        },
        set_tid_size: u64::from(pid.is_some()),
        cgroup: 0,
    };
    // SAFETY: clone3 without CLONE_VM is a fork: the child gets a copy of
    // our memory and returns here with 0; `args` and `set_tid` outlive the
    // call, and the size given is theirs.
    let forked = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const clone_args,
            CLONE_ARGS_SIZE_VER2 as usize,
        )
    };
    if forked < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(forked as i32)
    }
}

/// The namespace's pid 1: sets the next pid when asked, reaps orphans, and
/// ends when the supervisor's end of `control` closes. Raw syscalls only:
/// it is a fork of a multithreaded process.
fn namespace_init(control: RawFd, last_pid: RawFd) -> ! {
    keep_only(control, last_pid);
    // Orphans are reaped every REAP_EVERY_MS even while requests keep
    // coming (a shell's pipelines, one fork after another).
    let mut next_reap = monotonic_ms() + REAP_EVERY_MS;
    loop {
        let now = monotonic_ms();
        if now >= next_reap {
            reap_orphans();
            next_reap = now + REAP_EVERY_MS;
        }
        let mut ready = libc::pollfd {
            fd: control,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = next_reap - now;
        // Anew each time: ppoll writes back the time it had left.
        let mut timeout = libc::timespec {
            tv_sec: wait / 1000,
            tv_nsec: (wait % 1000) * 1_000_000,
        };
        // SAFETY: one pollfd and a timespec on our stack, both writable
        // by the kernel; no signal mask.
        let polled = unsafe {
            libc::syscall(
                libc::SYS_ppoll,
                &mut ready as *mut libc::pollfd,
                1u64,
                &mut timeout as *mut libc::timespec,
                std::ptr::null::<u64>(),
                8usize,
            )
        };
        if polled == 0 {
            continue;
        }
        let mut request = [0u8; 4];
        // SAFETY: reads at most 4 bytes into a buffer of 4 on our stack.
        let got = unsafe { libc::syscall(libc::SYS_read, control, request.as_mut_ptr(), 4usize) };
        if got == 0 || (got < 0 && errno() != libc::EINTR) {
            crate::spawn::exit(0);
        }
        if got != 4 {
            continue;
        }
        let mut digits = [0u8; 12];
        let text = decimal(i32::from_ne_bytes(request), &mut digits);
        // SAFETY: writes `text`, a slice of our stack buffer, at offset 0.
        let written = unsafe {
            libc::syscall(
                libc::SYS_pwrite64,
                last_pid,
                text.as_ptr(),
                text.len(),
                0i64,
            )
        };
        let answer = if written < 0 { errno() } else { 0 }.to_ne_bytes();
        // SAFETY: writes 4 bytes from a buffer on our stack.
        unsafe { libc::syscall(libc::SYS_write, control, answer.as_ptr(), 4usize) };
    }
}

/// Closes every fd but `a` and `b`.
fn keep_only(a: RawFd, b: RawFd) {
    let (low, high) = (a.min(b) as u32, a.max(b) as u32);
    // SAFETY: close_range takes integers; the ranges skip the two kept fds.
    unsafe {
        if low > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, low - 1, 0u32);
        }
        if high > low + 1 {
            libc::syscall(libc::SYS_close_range, low + 1, high - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, high + 1, u32::MAX, 0u32);
    }
}

/// Milliseconds of the monotonic clock, by a raw syscall.
fn monotonic_ms() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec on our stack.
    unsafe {
        libc::syscall(
            libc::SYS_clock_gettime,
            libc::CLOCK_MONOTONIC,
            &mut now as *mut libc::timespec,
        )
    };
    now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}

fn reap_orphans() {
    loop {
        // SAFETY: wait4 with integer arguments and null pointers.
        let reaped = unsafe {
            libc::syscall(
                libc::SYS_wait4,
                -1,
                std::ptr::null_mut::<i32>(),
                libc::WNOHANG | libc::__WALL,
                std::ptr::null_mut::<libc::rusage>(),
            )
        };
        if reaped <= 0 {
            return;
        }
    }
}

/// `value` in decimal, written into `buffer` without allocating.
fn decimal(value: i32, buffer: &mut [u8; 12]) -> &[u8] {
    let negative = value < 0;
    let mut rest = value.unsigned_abs();
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buffer[at] = b'-';
    }
    &buffer[at..]
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_the_kernel_reads_them() {
        let mut buffer = [0u8; 12];
        assert_eq!(decimal(0, &mut buffer), b"0");
        assert_eq!(decimal(4095, &mut buffer), b"4095");
        assert_eq!(decimal(i32::MIN, &mut buffer), b"-2147483648");
    }
}
