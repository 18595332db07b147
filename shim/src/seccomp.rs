//! The guest's seccomp filter and the supervisor's side of its user
//! notifications.
//!
//! The filter is deny-by-default: every syscall goes to the supervisor
//! except the local ones of [`homing_proto::syscall::LOCAL`], anonymous
//! `mmap`, `clone` of a thread, `rt_sigaction` of any signal but SIGCHLD,
//! `sched_getaffinity`/`sched_setaffinity` of the caller itself, and
//! `prctl` of anything but the seccomp mode, `no_new_privs` and the name.
//! A local syscall costs the guest nothing.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use homing_proto::syscall::LOCAL;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

// Offsets into `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const fn data_arg_low(index: u32) -> u32 {
    16 + 8 * index
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// A syscall the filter lets through or not by one of its arguments: its
/// number, the argument's index, the tests (a BPF jump and its operand),
/// and whether passing any of them lets it through.
type ArgumentRule<'a> = (i64, u32, &'a [(u32, u32)], bool);

/// A BPF program for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

impl Filter {
    /// The guest filter: local syscalls allowed, everything else to the supervisor.
    pub fn guest() -> Self {
        use libc::{
            BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
            SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_USER_NOTIF,
        };
        let load = |offset| stmt(BPF_LD | BPF_W | BPF_ABS, offset);
        let locals: Vec<u32> = LOCAL.iter().map(|&nr| nr as u32).collect();
        // Syscalls local or not by one argument: (syscall, the argument's
        // index, the tests, each with its operand, whether a pass of any
        // makes it local).
        let jset = |operand: u32| (BPF_JSET, operand);
        let jeq = |operand: u32| (BPF_JEQ, operand);
        let by_argument: [ArgumentRule<'_>; 6] = [
            // mmap without a file: local.
            (libc::SYS_mmap, 3, &[jset(libc::MAP_ANONYMOUS as u32)], true),
            // clone of a thread: local; of a process: the supervisor's.
            (libc::SYS_clone, 0, &[jset(libc::CLONE_THREAD as u32)], true),
            // rt_sigaction of SIGCHLD: the supervisor's (the deputy must
            // treat its children's zombies alike); of any other: local.
            (
                libc::SYS_rt_sigaction,
                0,
                &[jeq(libc::SIGCHLD as u32)],
                false,
            ),
            // A process's own CPU affinity (pid 0): local; another's: the
            // supervisor's.
            (libc::SYS_sched_getaffinity, 0, &[jeq(0)], true),
            (libc::SYS_sched_setaffinity, 0, &[jeq(0)], true),
            // prctl of the program's seccomp mode and no_new_privs (the
            // guest has homing's filter, and the no_new_privs it needs),
            // and of its name (which home shows): the supervisor's; of
            // anything else: local.
            (
                libc::SYS_prctl,
                0,
                &[
                    jeq(libc::PR_GET_SECCOMP as u32),
                    jeq(libc::PR_SET_SECCOMP as u32),
                    jeq(libc::PR_GET_NO_NEW_PRIVS as u32),
                    jeq(libc::PR_SET_NO_NEW_PRIVS as u32),
                    jeq(libc::PR_SET_NAME as u32),
                ],
                false,
            ),
        ];
        // Layout: a prologue (the architecture, the number, then for each
        // syscall decided by an argument a jump, a load and its tests),
        // then one jump per local syscall, then three returns (notify,
        // allow, kill). Every jump targets a return, so offsets are
        // computed from the distance to the end.
        let prologue = 3
            + (by_argument.iter())
                .map(|(_, _, tests, _)| 2 + tests.len())
                .sum::<usize>();
        let body = prologue + locals.len();
        let (notify, allow, kill) = (body, body + 1, body + 2);
        let to = |from: usize, target: usize| -> u8 {
            u8::try_from(target - from - 1).expect("filter jump fits in 8 bits")
        };
        let mut program = vec![
            load(DATA_ARCH),
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, to(1, kill)),
            load(DATA_NR),
        ];
        for (nr, argument, tests, passing_is_local) in by_argument {
            // Not this syscall: on past its load and tests.
            let skip = u8::try_from(1 + tests.len()).expect("a short rule");
            program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, skip));
            program.push(load(data_arg_low(argument)));
            let (pass, fail) = match passing_is_local {
                true => (allow, notify),
                false => (notify, allow),
            };
            for (index, &(test, operand)) in tests.iter().enumerate() {
                let at = program.len();
                // A test that fails goes on to the next, the last to `fail`.
                let failed = if index + 1 == tests.len() {
                    to(at, fail)
                } else {
                    0
                };
                program.push(jump(BPF_JMP | test | BPF_K, operand, to(at, pass), failed));
            }
        }
        debug_assert_eq!(program.len(), prologue);
        for (i, nr) in locals.iter().enumerate() {
            let at = prologue + i;
            program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, *nr, to(at, allow), 0));
        }
        program.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
        program.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
        program.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
        Self { program }
    }

    /// Installs the filter on the calling thread with a new listener; returns the listener's fd.
    ///
    /// Meant for a freshly forked child: it only issues raw syscalls and
    /// allocates nothing, so it is async-signal-safe.
    pub fn install_with_listener(&self) -> Result<i32, i32> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(errno());
        }
        // Once the supervisor has taken a call, only a fatal signal may end
        // the thread's wait (Linux 5.19): a call that cannot be interrupted
        // where it runs, a `close` or a write to a file, is not cut short
        // here by a signal with a handler. The supervisor ends a call that
        // may block itself when a signal comes for its thread, answering
        // with the kernel's restart codes. An older kernel refuses the
        // flag; its waits end on any signal.
        let killable =
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        match install_filter(&prog, killable) {
            Err(libc::EINVAL) => install_filter(&prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER),
            installed => installed,
        }
    }
}

fn install_filter(prog: &libc::sock_fprog, flags: libc::c_ulong) -> Result<i32, i32> {
    // SAFETY: `prog` points at a program that outlives the call; the
    // kernel copies it before returning.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd as i32)
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// One intercepted syscall.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    /// The notification's id, to answer it.
    pub id: u64,
    /// The thread (host tid) that made the syscall.
    pub tid: i32,
    /// The syscall number.
    pub nr: u64,
    /// Its arguments.
    pub args: [u64; 6],
}

/// The supervisor's end of a guest's filter.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

/// What to answer a notification with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The syscall returns this value.
    Value(i64),
    /// The syscall fails with this errno.
    Errno(i32),
    /// The syscall runs in the guest as if never intercepted.
    Continue,
    /// Already given (by [`Listener::deliver`]): nothing more to send.
    Given,
}

impl Listener {
    /// Wraps a listener fd; asks the kernel for synchronous wake-ups (the
    /// supervisor answers on the guest's CPU when it can).
    pub fn new(fd: OwnedFd) -> Self {
        // SAFETY: the ioctl takes an integer flag argument; failure (older
        // kernels) only loses an optimisation.
        unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            );
        }
        Self { fd }
    }

    /// Waits up to `timeout` for a notification. `Ok(None)` on timeout;
    /// `Err` with `ENOTCONN` once no process uses the filter any more.
    pub fn recv(&self, timeout: Duration) -> std::io::Result<Option<Notification>> {
        match self.take(timeout)? {
            Taken::Call(notification) => Ok(Some(notification)),
            Taken::Nothing | Taken::Withdrawn => Ok(None),
        }
    }

    /// Takes the next notification if one comes within `timeout`, and
    /// tells a notification withdrawn before it was taken from none at all.
    fn take(&self, timeout: Duration) -> std::io::Result<Taken> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) => return Ok(Taken::Nothing),
            Ok(_) => {}
            Err(nix::Error::EINTR) => return Ok(Taken::Nothing),
            Err(e) => return Err(e.into()),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if !revents.contains(PollFlags::POLLIN) {
            if revents.contains(PollFlags::POLLHUP) {
                return Err(std::io::Error::from_raw_os_error(libc::ENOTCONN));
            }
            return Ok(Taken::Nothing);
        }
        // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes one seccomp_notif into the struct we own.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut notif as *mut libc::seccomp_notif,
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            // The notifying thread was interrupted or killed before we got it.
            if error.raw_os_error() == Some(libc::ENOENT)
                || error.raw_os_error() == Some(libc::EINTR)
            {
                return Ok(Taken::Withdrawn);
            }
            return Err(error);
        }
        Ok(Taken::Call(Notification {
            id: notif.id,
            tid: notif.pid as i32,
            nr: notif.data.nr as u64,
            args: notif.data.args,
        }))
    }

    /// Whether a notification waits that the supervisor has not taken yet.
    /// Until taken, its thread's wait ends on any signal.
    pub fn has_untaken(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).is_ok_and(|ready| ready > 0)
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN))
    }

    /// Whether notification `id` is still pending (its thread still waits).
    /// Check after reading guest memory: the memory read was the guest's only if so.
    pub fn is_pending(&self, id: u64) -> bool {
        // SAFETY: ID_VALID reads one u64 we own.
        unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &id as *const u64,
            ) == 0
        }
    }

    /// Answers notification `id`. An answer to a thread that is gone is not an error.
    pub fn answer(&self, id: u64, answer: Answer) -> std::io::Result<()> {
        self.deliver(id, answer).map(drop)
    }

    /// Answers notification `id`; `Ok(false)` if its thread no longer
    /// waits for the answer (a signal took it away, or it died).
    pub fn deliver(&self, id: u64, answer: Answer) -> std::io::Result<bool> {
        let (val, error, flags) = match answer {
            Answer::Value(v) => (v, 0, 0),
            Answer::Errno(e) => (0, -e, 0),
            Answer::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
            Answer::Given => return Ok(true),
        };
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags,
        };
        // SAFETY: SEND reads one seccomp_notif_resp we own.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut libc::seccomp_notif_resp,
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::ENOENT) {
                return Ok(false);
            }
            return Err(error);
        }
        Ok(true)
    }

    /// Installs `fd` in the guest thread of notification `id` as fd number `target`.
    pub fn install_fd(
        &self,
        id: u64,
        fd: BorrowedFd<'_>,
        target: i32,
        close_on_exec: bool,
    ) -> std::io::Result<()> {
        let addfd = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
            srcfd: fd.as_raw_fd() as u32,
            newfd: target as u32,
            newfd_flags: if close_on_exec {
                libc::O_CLOEXEC as u32
            } else {
                0
            },
        };
        // SAFETY: ADDFD reads one seccomp_notif_addfd we own; `fd` stays open
        // for the duration of the call.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ADDFD,
                &addfd as *const libc::seccomp_notif_addfd,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// What one look at the listener found.
enum Taken {
    Call(Notification),
    /// A notification was there, but its thread was interrupted or killed
    /// before it could be taken.
    Withdrawn,
    Nothing,
}

/// A listener whose notifications are awaited on the tokio runtime, where
/// they are handled: a thread of their own would add a wakeup to every
/// call.
pub struct AsyncListener {
    readiness: tokio::io::unix::AsyncFd<SharedListener>,
}

/// The listener's fd as the runtime's reactor sees it.
struct SharedListener(std::sync::Arc<Listener>);

impl AsRawFd for SharedListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.fd.as_raw_fd()
    }
}

impl AsyncListener {
    /// Registers `listener` with the current runtime's reactor.
    pub fn new(listener: std::sync::Arc<Listener>) -> std::io::Result<Self> {
        let shared = SharedListener(listener);
        // SAFETY: the fd belongs to the `Listener` that `shared` keeps
        // alive in the `AsyncFd`, which never closes or replaces it.
        let readiness = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(shared, tokio::io::Interest::READABLE)
        };
        Ok(Self {
            readiness: readiness.map_err(std::io::Error::from)?,
        })
    }

    /// The next notification; `Err` once no process uses the filter.
    pub async fn recv(&self) -> std::io::Result<Notification> {
        let listener = &self.readiness.get_ref().0;
        loop {
            let mut ready = self.readiness.readable().await?;
            match listener.take(Duration::ZERO)? {
                Taken::Call(notification) => return Ok(notification),
                // Another may wait still: look again before sleeping.
                Taken::Withdrawn => {}
                Taken::Nothing => ready.clear_ready(),
            }
        }
    }
}
