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
