//! Small process-level operations the deputy needs.

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// Ends the calling process as if killed by `signal`, so its parent sees
/// that status (and a shell prints what it would have printed).
pub fn die_by_signal(signal: i32) -> ! {
    if let Ok(sig) = Signal::try_from(signal) {
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: the default disposition runs no handler code.
        let _ = unsafe { signal::sigaction(sig, &default) };
        let mut only = SigSet::empty();
        only.add(sig);
        let _ = signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
        let _ = signal::kill(nix::unistd::getpid(), sig);
        // A signal whose default is to be ignored or to stop: end anyway.
        let _ = signal::kill(nix::unistd::getpid(), Signal::SIGKILL);
    }
    std::process::exit(128 + signal)
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

/// The value of `field` (`"PPid:"`, `"Groups:"`, …) in `/proc/PID/status`, trimmed.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|value| value.trim().to_owned())
}

/// A numeric field of `/proc/PID/status` (`"Tgid:"`, `"PPid:"`).
pub fn status_number(pid: i32, field: &str) -> Option<i32> {
    status_field(pid, field)?.parse().ok()
}

/// Signal numbers in a `/proc/PID/status` mask line (`SigIgn:`, `SigBlk:`).
pub fn status_mask(pid: i32, field: &str) -> u64 {
    status_field(pid, field)
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .unwrap_or(0)
}

/// The signal the deputy uses to interrupt one of its own threads blocked
/// in a syscall whose caller went away: the first realtime signal glibc
/// leaves to applications, plus one.
pub fn interrupt_signal() -> i32 {
    libc::SIGRTMIN() + 1
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
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Interrupts thread `thread` of this process with [`interrupt_signal`].
pub fn interrupt_thread(thread: libc::pthread_t) {
    // SAFETY: `thread` is a live thread of this process (the caller keeps
    // its JoinHandle); the signal's handler does nothing.
    unsafe {
        libc::pthread_kill(thread, interrupt_signal());
    }
}
