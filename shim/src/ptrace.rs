//! ptrace control of another process's threads: seize and freeze, registers
//! and extended state, signal state, and syscall injection.
//!
//! ptrace is per thread and per tracer *thread*: every call on a tracee
//! must come from the OS thread that seized it, so a whole dump or restore
//! runs on one thread.

use std::io;

use homing_proto::image::{RseqRegistration, REGS_WORDS, REG_ORIG_RAX, REG_RAX, REG_RIP, REG_RSP};

/// Where `r10`, `rdx`, `rsi` and `rdi` are among the registers
/// (`user_regs_struct` order): a syscall's arguments 4, 3, 2 and 1.
const REG_R10: usize = 7;
const REG_RDX: usize = 12;
const REG_RSI: usize = 13;
const REG_RDI: usize = 14;

/// General registers, in `user_regs_struct` order.
pub type Regs = [u64; REGS_WORDS];

/// Why a thread stopped or went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A ptrace event stop (`PTRACE_EVENT_*`), e.g. after `PTRACE_INTERRUPT`.
    Event(i32),
    /// About to receive this signal.
    Signal(i32),
    /// At a syscall entry or exit.
    Syscall,
    /// It exited with this status.
    Exited(i32),
    /// It was killed by this signal.
    Killed(i32),
}

/// How a thread is seized.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Let injected syscalls past the thread's seccomp filter (a guest's).
    /// Only for a thread stopped already ([`set_options`]): the thread's
    /// own calls pass too, and a running one makes some before it stops.
    pub suspend_seccomp: bool,
    /// Seize the threads it creates, stopped (to restore them).
    pub trace_clone: bool,
}

impl Options {
    fn bits(self) -> usize {
        // Syscall stops are always told apart from signal stops.
        let mut bits = libc::PTRACE_O_TRACESYSGOOD;
        if self.suspend_seccomp {
            bits |= libc::PTRACE_O_SUSPEND_SECCOMP;
        }
        if self.trace_clone {
            bits |= libc::PTRACE_O_TRACECLONE;
        }
        bits as usize
    }
}

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn request(request: libc::c_uint, tid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: every caller passes, for requests that read or write through
    // `addr`/`data`, a pointer to a live buffer of the size the request
    // uses; the other requests take integers.
    check(unsafe { libc::ptrace(request, tid, addr, data) })
}

/// Seizes `tid` without stopping it.
pub fn seize(tid: i32, options: Options) -> io::Result<()> {
    request(libc::PTRACE_SEIZE, tid, 0, options.bits()).map(drop)
}

/// Changes the options of a seized thread, stopped.
pub fn set_options(tid: i32, options: Options) -> io::Result<()> {
    request(libc::PTRACE_SETOPTIONS, tid, 0, options.bits()).map(drop)
}

/// Asks a seized thread to stop (it reports [`Stop::Event`]).
pub fn interrupt(tid: i32) -> io::Result<()> {
    request(libc::PTRACE_INTERRUPT, tid, 0, 0).map(drop)
}

/// Lets a stopped thread go, delivering `signal` (0: none).
pub fn detach(tid: i32, signal: i32) -> io::Result<()> {
    request(libc::PTRACE_DETACH, tid, 0, signal as usize).map(drop)
}

/// Resumes a stopped thread until its next syscall entry or exit.
pub fn resume_to_syscall(tid: i32, signal: i32) -> io::Result<()> {
    request(libc::PTRACE_SYSCALL, tid, 0, signal as usize).map(drop)
}

/// Waits for `tid` (a tracee, or a child) to stop or end.
pub fn wait(tid: i32) -> io::Result<Stop> {
    waitpid(tid, libc::__WALL).map(|(_, stop)| stop)
}

/// Waits, as [`wait`] does, for `tid` to stop or end after an
/// interrupt, calling `release` meanwhile. A thread in a syscall its
/// seccomp supervisor has taken waits for the answer whatever comes but a
/// fatal signal: it stops only once `release` has answered that call (with
/// a restart code, so that the call runs again when the thread goes on).
pub fn wait_releasing(tid: i32, release: &dyn Fn()) -> io::Result<Stop> {
    // A released thread stops within microseconds, woken on this CPU: it
    // is looked for again as soon as it has had the CPU (a sleep, however
    // short, lasts 50 us more of timer slack), and only then with pauses.
    let began = std::time::Instant::now();
    let mut pause = std::time::Duration::from_micros(20);
    loop {
        release();
        // 0: it has not stopped yet.
        let (stopped, stop) = waitpid(tid, libc::__WALL | libc::WNOHANG)?;
        if stopped > 0 {
            return Ok(stop);
        }
        if began.elapsed() < STOP_LOOKS_AT_ONCE {
            std::thread::yield_now();
            continue;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_micros(500));
    }
}

/// For how long [`wait_releasing`] looks for the stop again at once.
const STOP_LOOKS_AT_ONCE: std::time::Duration = std::time::Duration::from_micros(300);

/// Takes the end of tracee `pid` if it has come: its parent hears of it
/// then (see [`crate::held_ends`]). `Ok(false)` while it has not ended.
/// A tracee stopped on its way (a signal came before it ended) is let
/// go: its end then goes to its parent as the kernel gives it.
pub fn take_end(pid: i32) -> io::Result<bool> {
    match waitpid(pid, libc::__WALL | libc::WNOHANG) {
        Ok((0, _)) => Ok(false),
        Ok((_, Stop::Exited(_) | Stop::Killed(_))) => Ok(true),
        Ok((_, Stop::Signal(signal))) => detach(pid, signal).map(|()| true),
        Ok((_, Stop::Syscall | Stop::Event(_))) => detach(pid, 0).map(|()| true),
        // Not traced here (any more): nothing is held.
        Err(error) if error.raw_os_error() == Some(libc::ECHILD) => Ok(true),
        Err(error) => Err(error),
    }
}

/// Waits for any tracee or child of this very thread (not of the other
/// threads of its process, whose children are not its business) to stop
/// or end.
pub fn wait_any() -> io::Result<(i32, Stop)> {
    waitpid(-1, libc::__WALL | libc::__WNOTHREAD)
}

fn waitpid(pid: i32, flags: i32) -> io::Result<(i32, Stop)> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a live int the kernel writes.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc >= 0 {
            let stop = decode_status(status);
            if rc > 0 && matches!(stop, Stop::Exited(_) | Stop::Killed(_)) {
                keep_end(rc, stop);
            }
            return Ok((rc, stop));
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Ends that a tracer's wait took, newest last: where the tracer is the
/// process's parent too (a guest the agent made), that wait reaps it, and
/// its parent's own wait would find nothing ([`end_taken`]).
static ENDS_TAKEN: std::sync::Mutex<std::collections::VecDeque<(i32, Stop)>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

/// How many taken ends are kept: threads' ends, which nobody asks for,
/// go too.
const ENDS_KEPT: usize = 256;

fn keep_end(tid: i32, stop: Stop) {
    let mut ends = ENDS_TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    if ends.len() == ENDS_KEPT {
        ends.pop_front();
    }
    ends.push_back((tid, stop));
}

/// How process `pid` ended, where a tracer's wait took its end (and may
/// have reaped it): [`Stop::Exited`] or [`Stop::Killed`]; each is told
/// once.
pub fn end_taken(pid: i32) -> Option<Stop> {
    let mut ends = ENDS_TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let at = ends.iter().rposition(|&(tid, _)| tid == pid)?;
    ends.remove(at).map(|(_, stop)| stop)
}

fn decode_status(status: i32) -> Stop {
    if libc::WIFEXITED(status) {
        Stop::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Stop::Killed(libc::WTERMSIG(status))
    } else if libc::WSTOPSIG(status) == libc::SIGTRAP | 0x80 {
        Stop::Syscall
    } else if status >> 16 != 0 {
        Stop::Event(status >> 16)
    } else {
        Stop::Signal(libc::WSTOPSIG(status))
    }
}

/// A stopped thread's general registers.
pub fn regs(tid: i32) -> io::Result<Regs> {
    let mut regs: Regs = [0; REGS_WORDS];
    request(libc::PTRACE_GETREGS, tid, 0, regs.as_mut_ptr() as usize)?;
    Ok(regs)
}

/// Sets a stopped thread's general registers.
pub fn set_regs(tid: i32, regs: &Regs) -> io::Result<()> {
    request(libc::PTRACE_SETREGS, tid, 0, regs.as_ptr() as usize).map(drop)
}

const NT_X86_XSTATE: usize = 0x202;
/// Larger than any XSAVE area this architecture has (AMX included).
const XSTATE_MAX: usize = 16 << 10;

/// A stopped thread's extended FPU state (XSAVE layout).
pub fn xstate(tid: i32) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    request(
        libc::PTRACE_GETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut libc::iovec as usize,
    )?;
    buffer.truncate(iov.iov_len);
    Ok(buffer)
}

/// Sets a stopped thread's extended FPU state.
pub fn set_xstate(tid: i32, xstate: &[u8]) -> io::Result<()> {
    let mut copy = xstate.to_vec();
    let mut iov = libc::iovec {
        iov_base: copy.as_mut_ptr().cast(),
        iov_len: copy.len(),
    };
    request(
        libc::PTRACE_SETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut libc::iovec as usize,
    )
    .map(drop)
}

/// A stopped thread's blocked signals.
pub fn sigmask(tid: i32) -> io::Result<u64> {
    let mut mask = 0u64;
    request(
        libc::PTRACE_GETSIGMASK,
        tid,
        8,
        &mut mask as *mut u64 as usize,
    )?;
    Ok(mask)
}

/// Sets a stopped thread's blocked signals.
pub fn set_sigmask(tid: i32, mask: u64) -> io::Result<()> {
    request(
        libc::PTRACE_SETSIGMASK,
        tid,
        8,
        &mask as *const u64 as usize,
    )
    .map(drop)
}

/// `struct ptrace_peeksiginfo_args`.
#[repr(C)]
struct PeekSiginfoArgs {
    offset: u64,
    flags: u32,
    count: i32,
}
const PTRACE_PEEKSIGINFO_SHARED: u32 = 1;
const SIGINFO_LEN: usize = 128;

/// The signals pending for the thread (`shared`: for its whole process),
/// each as a raw `siginfo_t`.
pub fn pending_signals(tid: i32, shared: bool) -> io::Result<Vec<Vec<u8>>> {
    let mut found = Vec::new();
    loop {
        let args = PeekSiginfoArgs {
            offset: found.len() as u64,
            flags: if shared { PTRACE_PEEKSIGINFO_SHARED } else { 0 },
            count: 1,
        };
        let mut siginfo = vec![0u8; SIGINFO_LEN];
        let got = request(
            libc::PTRACE_PEEKSIGINFO,
            tid,
            &args as *const PeekSiginfoArgs as usize,
            siginfo.as_mut_ptr() as usize,
        )?;
        if got == 0 {
            return Ok(found);
        }
        found.push(siginfo);
    }
}

/// `struct ptrace_rseq_configuration`.
#[repr(C)]
#[derive(Default)]
struct RseqConfiguration {
    rseq_abi_pointer: u64,
    rseq_abi_size: u32,
    signature: u32,
    flags: u32,
    pad: u32,
}
const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;

/// The thread's rseq registration, if it has one.
pub fn rseq(tid: i32) -> io::Result<Option<RseqRegistration>> {
    let mut configuration = RseqConfiguration::default();
    request(
        PTRACE_GET_RSEQ_CONFIGURATION,
        tid,
        std::mem::size_of::<RseqConfiguration>(),
        &mut configuration as *mut RseqConfiguration as usize,
    )?;
    Ok(
        (configuration.rseq_abi_pointer != 0).then_some(RseqRegistration {
            address: configuration.rseq_abi_pointer,
            length: configuration.rseq_abi_size,
            signature: configuration.signature,
        }),
    )
}

/// The thread's robust futex list `(head, len)`, read without stopping it.
pub fn robust_list(tid: i32) -> io::Result<(u64, u64)> {
    let mut head = 0u64;
    let mut len = 0usize;
    // SAFETY: both out-pointers point at live locals of the right size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            tid,
            &mut head as *mut u64,
            &mut len as *mut usize,
        )
    };
    check(rc)?;
    Ok((head, len as u64))
}

/// The kernel's codes for a syscall a signal ended before it did anything
/// (`include/linux/errno.h`). A thread that takes a signal on its way out
/// of the call restarts it or fails it with `EINTR`, as the signal's
/// handler asks (`ERESTARTNOHAND`: restarts only if no handler ran); one
/// with no signal to take would see the code itself.
pub const ERESTARTSYS: i64 = 512;
/// Restarts whatever the handler asks.
pub const ERESTARTNOINTR: i64 = 513;
/// Restarts only if no handler ran (`poll`, `select`).
pub const ERESTARTNOHAND: i64 = 514;
/// Restarts by `restart_syscall`, with what the call saved.
pub const ERESTART_RESTARTBLOCK: i64 = 516;

/// Registers to resume a thread frozen at `regs` later, possibly on
/// another host: a syscall the freeze interrupted is set to run again from
/// its start, and `orig_rax` is cleared so the kernel restarts nothing
/// itself.
///
/// The restart block of a sleep does not travel, and a freeze thawed here
/// drops it too, so a sleep would start over with its whole length. A
/// relative `nanosleep` or `clock_nanosleep` given room for what is left
/// (`rem`) has had it written there as the freeze interrupted it (its
/// memory goes with it): it sleeps again for that, read from there (`rem`
/// as its request too, so the register that held the request holds
/// `rem` after the call; C's wrappers do not look). One given no room
/// starts over.
pub fn resumable(mut regs: Regs) -> Regs {
    let in_syscall = regs[REG_ORIG_RAX] as i64 >= 0;
    if in_syscall {
        let result = regs[REG_RAX] as i64;
        if matches!(
            -result,
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
        ) {
            if -result == ERESTART_RESTARTBLOCK {
                sleep_for_what_is_left(&mut regs);
            }
            regs[REG_RAX] = regs[REG_ORIG_RAX];
            regs[REG_RIP] -= 2;
        }
    }
    regs[REG_ORIG_RAX] = u64::MAX;
    regs
}

/// For a relative sleep interrupted at `regs` with room for what was left
/// of it: the request becomes that room (see [`resumable`]).
fn sleep_for_what_is_left(regs: &mut Regs) {
    let nr = regs[REG_ORIG_RAX] as i64;
    if nr == libc::SYS_nanosleep && regs[REG_RSI] != 0 {
        regs[REG_RDI] = regs[REG_RSI];
    } else if nr == libc::SYS_clock_nanosleep
        && regs[REG_R10] != 0
        && regs[REG_RSI] & libc::TIMER_ABSTIME as u64 == 0
    {
        regs[REG_RDX] = regs[REG_R10];
    }
}

/// Makes thread `tid`, blocked in a syscall that nobody will answer (a
/// seccomp notification), end its process with exit status `code`: it is
/// interrupted, and the syscall the kernel then restarts is `exit_group`.
/// No code of the process runs meanwhile, and none needs to be mapped.
pub fn exit_from_syscall(tid: i32, code: i32, release: &dyn Fn()) -> io::Result<()> {
    let Some(mut regs) = stop_in_syscall(tid, release)? else {
        return Ok(());
    };
    regs[REG_ORIG_RAX] = libc::SYS_exit_group as u64;
    regs[REG_RDI] = code as u64;
    set_regs(tid, &regs)?;
    // A signal that stopped it is dropped: the process ends.
    detach(tid, 0)
}

/// Makes thread `tid`, blocked in a syscall that nobody will answer, end
/// its process killed by `signal`, as that signal's default action would:
/// calls injected into the thread reset the signal's action and unblock
/// it, and the signal comes as the thread goes on. No code of the process
/// runs meanwhile.
pub fn kill_from_syscall(tid: i32, signal: i32, release: &dyn Fn()) -> io::Result<()> {
    if !(1..=64).contains(&signal) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let Some(regs) = stop_in_syscall(tid, release)? else {
        return Ok(());
    };
    let injected = (|| -> Result<(), InjectError> {
        // Below the stack's red zone: a zeroed kernel sigaction (SIG_DFL,
        // no flags, empty mask), then the set holding the signal.
        let scratch = (regs[REG_RSP] - 512) & !15;
        let memory = crate::memory::ProcessMemory::new(tid);
        let set = crate::process::signal_bit(signal);
        let mut room = [0u8; 40];
        room[32..].copy_from_slice(&set.to_ne_bytes());
        memory
            .write(scratch, &room)
            .map_err(|e| InjectError::Ptrace(io::Error::other(e.to_string())))?;
        // The thread stopped just past the syscall instruction it was in.
        let mut injector = Injector::new(tid, regs[REG_RIP] - 2);
        injector.call(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            [signal as u64, scratch, 0, 8, 0, 0],
        )?;
        injector.call(
            "rt_sigprocmask",
            libc::SYS_rt_sigprocmask,
            [libc::SIG_UNBLOCK as u64, scratch + 32, 0, 8, 0, 0],
        )?;
        Ok(())
    })();
    if let Err(error) = injected {
        let _ = detach(tid, 0);
        return Err(io::Error::other(error.to_string()));
    }
    detach(tid, signal)
}

/// Makes thread `tid`, the only thread of its process and blocked in a
/// syscall that nobody will answer (its `execve`, notified), exec
/// `program` instead, with `argv` and `envp`: an `execve` injected into
/// it. The process keeps its pid, its parent, its credentials, its
/// ignored signals and mask, as an exec does. Injected calls are seen by
/// its filter like its own: the `execve` is notified, and its supervisor
/// must let it run. On failure the thread is put back as it was, its own
/// syscall to restart.
pub fn exec_from_syscall(
    tid: i32,
    program: &std::ffi::CStr,
    argv: &[&std::ffi::CStr],
    envp: &[std::ffi::CString],
    release: &dyn Fn(),
) -> io::Result<()> {
    let Some(regs) = stop_in_syscall(tid, release)? else {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    };
    let strings: usize = [program.to_bytes_with_nul().len()]
        .into_iter()
        .chain(argv.iter().map(|a| a.to_bytes_with_nul().len()))
        .chain(envp.iter().map(|e| e.as_bytes_with_nul().len()))
        .sum();
    let room = ((strings + 8 * (argv.len() + envp.len() + 2)) as u64 + 4095) & !4095;
    let memory = crate::memory::ProcessMemory::new(tid);
    // The thread stopped just past the syscall instruction it was in.
    let mut injector = Injector::new(tid, regs[REG_RIP] - 2);
    let outcome = (|| -> Result<i64, InjectError> {
        let scratch = injector.map_scratch(room)?;
        let (program_at, envp_at) =
            crate::dump::write_exec_arguments(&memory, (scratch, room), program, argv, envp)?;
        let result = injector.raw(libc::SYS_execve, [program_at, scratch, envp_at, 0, 0, 0])?;
        if result < 0 {
            let _ = injector.raw(libc::SYS_munmap, [scratch, room, 0, 0, 0, 0]);
        }
        Ok(result)
    })();
    match outcome {
        Ok(0) => detach(tid, 0),
        Ok(errno) => {
            set_regs(tid, &regs)?;
            detach(tid, 0)?;
            Err(io::Error::from_raw_os_error(-errno as i32))
        }
        Err(error) => {
            let _ = set_regs(tid, &regs);
            let _ = detach(tid, 0);
            Err(io::Error::other(error.to_string()))
        }
    }
}

/// Seizes thread `tid` and stops it in the syscall it is blocked in;
/// returns its registers there, or `None` if it has ended. A thread not
/// blocked in a syscall is let go again, with an error. `release`
/// answers the call if its seccomp supervisor holds it (see
/// [`wait_releasing`]).
fn stop_in_syscall(tid: i32, release: &dyn Fn()) -> io::Result<Option<Regs>> {
    seize(tid, Options::default())?;
    interrupt(tid)?;
    match wait_releasing(tid, release)? {
        Stop::Exited(_) | Stop::Killed(_) => return Ok(None),
        Stop::Syscall | Stop::Event(_) | Stop::Signal(_) => {}
    }
    let regs = regs(tid)?;
    let interrupted = matches!(
        -(regs[REG_RAX] as i64),
        ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND
    );
    if interrupted && regs[REG_ORIG_RAX] as i64 >= 0 {
        return Ok(Some(regs));
    }
    detach(tid, 0)?;
    Err(io::Error::other("the thread was not blocked in a syscall"))
}

/// Runs syscalls inside a stopped thread: its registers point at a
/// `syscall` instruction, the thread runs to the syscall's exit, and the
/// result is read back. The caller restores the thread's registers after.
#[derive(Debug)]
pub struct Injector {
    tid: i32,
    /// The address of a `syscall` instruction mapped in the tracee.
    syscall_at: u64,
    /// Signals that arrived while injecting; the caller re-delivers them.
    pub deferred_signals: Vec<i32>,
}

/// Errors of an injected syscall.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// ptrace itself failed.
    #[error("ptrace: {0}")]
    Ptrace(#[from] io::Error),
    /// The thread went away.
    #[error("the thread ended while a syscall was injected ({0:?})")]
    Gone(Stop),
    /// The thread faulted instead of reaching the syscall.
    #[error("the traced thread faulted (signal {0}) instead of making the syscall")]
    Fault(i32),
    /// The injected syscall failed.
    #[error("{call} failed in the traced process: {error}")]
    Failed {
        /// What was injected.
        call: &'static str,
        /// Its errno.
        error: io::Error,
    },
}

impl Injector {
    /// An injector for the stopped thread `tid`, with a `syscall`
    /// instruction at `syscall_at` in its address space.
    pub fn new(tid: i32, syscall_at: u64) -> Self {
        Self {
            tid,
            syscall_at,
            deferred_signals: Vec::new(),
        }
    }

    /// The `syscall` instruction used.
    pub fn syscall_at(&self) -> u64 {
        self.syscall_at
    }

    /// Moves the `syscall` instruction used (after the vDSO has moved).
    pub fn set_syscall_at(&mut self, syscall_at: u64) {
        self.syscall_at = syscall_at;
    }

    /// Runs `nr` with `args`; returns the raw result (negative errno on failure).
    pub fn raw(&mut self, nr: i64, args: [u64; 6]) -> Result<i64, InjectError> {
        self.load_syscall(nr, args)?;
        self.run_to_syscall_stop(false)?; // entry
        self.run_to_syscall_stop(false)?; // exit
        Ok(self::regs(self.tid)?[REG_RAX] as i64)
    }

    /// Ends the thread (not its process) with an injected `exit`, and
    /// takes its death.
    pub fn exit_thread(&mut self) -> Result<(), InjectError> {
        self.load_syscall(libc::SYS_exit, [0; 6])?;
        loop {
            resume_to_syscall(self.tid, 0)?;
            match wait(self.tid)? {
                Stop::Exited(_) | Stop::Killed(_) => return Ok(()),
                Stop::Signal(signal) => self.deferred_signals.push(signal),
                Stop::Syscall | Stop::Event(_) => {}
            }
        }
    }

    /// Points the thread at the `syscall` instruction with `nr` and `args` loaded.
    fn load_syscall(&self, nr: i64, args: [u64; 6]) -> Result<(), InjectError> {
        let mut regs = regs(self.tid)?;
        regs[REG_RAX] = nr as u64;
        regs[REG_ORIG_RAX] = u64::MAX;
        regs[REG_RIP] = self.syscall_at;
        // rdi, rsi, rdx, r10, r8, r9.
        for (index, value) in [14, 13, 12, 7, 9, 8].into_iter().zip(args) {
            regs[index] = value;
        }
        set_regs(self.tid, &regs)?;
        Ok(())
    }

    /// Maps `len` bytes of private read-write memory in the process, for
    /// the structs injected syscalls read and write; returns its address.
    pub fn map_scratch(&mut self, len: u64) -> Result<u64, InjectError> {
        self.call(
            "mmap",
            libc::SYS_mmap,
            [
                0,
                len,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
        )
    }

    /// Runs `nr`; a negative result is an error naming `call`.
    pub fn call(
        &mut self,
        call: &'static str,
        nr: i64,
        args: [u64; 6],
    ) -> Result<u64, InjectError> {
        let result = self.raw(nr, args)?;
        if (-4095..0).contains(&result) {
            return Err(InjectError::Failed {
                call,
                error: io::Error::from_raw_os_error(-result as i32),
            });
        }
        Ok(result as u64)
    }

    /// Runs `nr` like [`Self::raw`] while the thread's siblings, also
    /// traced here, die: an exec ends them and waits until their tracer
    /// (this thread) has taken their deaths.
    pub fn raw_reaping_siblings(&mut self, nr: i64, args: [u64; 6]) -> Result<i64, InjectError> {
        self.load_syscall(nr, args)?;
        self.run_to_syscall_stop(true)?; // entry
        self.run_to_syscall_stop(true)?; // exit
        Ok(self::regs(self.tid)?[REG_RAX] as i64)
    }

    /// Lets the thread run to its next syscall stop. `reap_siblings`: the
    /// deaths of other tracees of this thread are taken on the way.
    fn run_to_syscall_stop(&mut self, reap_siblings: bool) -> Result<(), InjectError> {
        resume_to_syscall(self.tid, 0)?;
        loop {
            let stop = if reap_siblings {
                match wait_any()? {
                    (pid, stop) if pid == self.tid => stop,
                    _ => continue, // a sibling's death, now taken
                }
            } else {
                wait(self.tid)?
            };
            match stop {
                Stop::Syscall => return Ok(()),
                // The injected instruction itself faulted: running it
                // again would fault forever.
                Stop::Signal(signal @ (libc::SIGSEGV | libc::SIGBUS | libc::SIGILL)) => {
                    return Err(InjectError::Fault(signal))
                }
                Stop::Signal(signal) => self.deferred_signals.push(signal),
                Stop::Event(_) => {}
                gone @ (Stop::Exited(_) | Stop::Killed(_)) => return Err(InjectError::Gone(gone)),
            }
            resume_to_syscall(self.tid, 0)?;
        }
    }
}

/// Where a `syscall` instruction (`0f 05`) is in `code`, if anywhere. Any
/// such byte pair will do: execution starts there whatever the
/// instruction boundaries around it.
pub fn find_syscall_instruction(code: &[u8]) -> Option<usize> {
    code.windows(2).position(|pair| pair == [0x0f, 0x05])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_syscall_is_rewound_to_run_again() {
        let mut regs: Regs = [0; REGS_WORDS];
        regs[REG_ORIG_RAX] = libc::SYS_read as u64;
        regs[REG_RAX] = (-ERESTARTSYS) as u64;
        regs[REG_RIP] = 0x1002;
        let resumed = resumable(regs);
        assert_eq!(resumed[REG_RAX], libc::SYS_read as u64);
        assert_eq!(resumed[REG_RIP], 0x1000);
        assert_eq!(resumed[REG_ORIG_RAX], u64::MAX);
    }

    /// A relative sleep interrupted with room for what was left sleeps
    /// that again; an absolute one, or one without room, keeps its
    /// request.
    #[test]
    fn an_interrupted_relative_sleep_goes_on_for_what_was_left() {
        let interrupted = |nr: i64, args: [u64; 4]| {
            let mut regs: Regs = [0; REGS_WORDS];
            regs[REG_ORIG_RAX] = nr as u64;
            regs[REG_RAX] = (-ERESTART_RESTARTBLOCK) as u64;
            regs[REG_RIP] = 0x1002;
            (regs[REG_RDI], regs[REG_RSI], regs[REG_RDX], regs[REG_R10]) =
                (args[0], args[1], args[2], args[3]);
            let resumed = resumable(regs);
            assert_eq!(resumed[REG_RIP], 0x1000);
            assert_eq!(resumed[REG_RAX], nr as u64);
            [
                resumed[REG_RDI],
                resumed[REG_RSI],
                resumed[REG_RDX],
                resumed[REG_R10],
            ]
        };
        let (req, rem) = (0x7000, 0x7100);
        let abs = libc::TIMER_ABSTIME as u64;
        let mono = libc::CLOCK_MONOTONIC as u64;
        assert_eq!(
            interrupted(libc::SYS_nanosleep, [req, rem, 0, 0]),
            [rem, rem, 0, 0]
        );
        assert_eq!(
            interrupted(libc::SYS_nanosleep, [req, 0, 0, 0]),
            [req, 0, 0, 0]
        );
        assert_eq!(
            interrupted(libc::SYS_clock_nanosleep, [mono, 0, req, rem]),
            [mono, 0, rem, rem]
        );
        assert_eq!(
            interrupted(libc::SYS_clock_nanosleep, [mono, abs, req, rem]),
            [mono, abs, req, rem]
        );
        assert_eq!(
            interrupted(libc::SYS_clock_nanosleep, [mono, 0, req, 0]),
            [mono, 0, req, 0]
        );
    }

    #[test]
    fn a_finished_syscall_and_user_code_are_left_alone() {
        let mut regs: Regs = [0; REGS_WORDS];
        regs[REG_ORIG_RAX] = libc::SYS_read as u64;
        regs[REG_RAX] = 5;
        regs[REG_RIP] = 0x1002;
        assert_eq!(resumable(regs)[REG_RIP], 0x1002);
        regs[REG_ORIG_RAX] = u64::MAX;
        regs[REG_RAX] = (-ERESTARTSYS) as u64;
        assert_eq!(resumable(regs)[REG_RIP], 0x1002);
    }

    #[test]
    fn finds_a_syscall_instruction_anywhere() {
        assert_eq!(find_syscall_instruction(&[0x90, 0x0f, 0x05, 0xc3]), Some(1));
        assert_eq!(find_syscall_instruction(&[0x90, 0x0f, 0xc3]), None);
    }
}
