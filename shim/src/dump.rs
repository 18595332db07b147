//! Freezing a running process and taking its image: every thread's
//! registers and kernel state by ptrace and syscall injection, its memory
//! map, and its pages.
//!
//! The process stays frozen, whole, until the caller decides: [`Frozen::thaw`]
//! lets it go on exactly where it was (a migration that failed), the
//! caller kills it or turns it into a deputy (one that succeeded).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use homing_proto::image::{
    advice, Itimer, MappedFile, MmFields, PendingSignal, ProcessImage, Region, RegionKind,
    SignalAction, ThreadImage, REG_ORIG_RAX, REG_RAX, REG_RIP,
};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use serde_bytes::ByteBuf;

use crate::memory::ProcessMemory;
use crate::ptrace::{self, InjectError, Injector, Regs, Stop};

const PAGE: u64 = 4096;
/// Bytes of scratch memory mapped into a frozen process for the structs
/// injected syscalls read and write.
const SCRATCH_LEN: u64 = 64 << 10;
/// The most bytes read from the process at once: a huge page, read
/// aligned, so that a run of pages never crosses one (a whole one goes in
/// as one at the destination).
const READ_CHUNK: u64 = crate::filling::HUGE_PAGE;

/// Why a process could not be frozen or dumped. The process is left running.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// No such process, or it ended. Its pid may be this node's, not
    /// home's, so the message does not name it.
    #[error("{}", homing_proto::peer::ENDED_BEFORE_MOVING)]
    Gone(i32),
    /// The process has a mapping that cannot move.
    #[error("cannot move process {pid}: {reason}")]
    Unmovable {
        /// The process.
        pid: i32,
        /// Why, naming the mapping.
        reason: String,
    },
    /// ptrace or a read of `/proc` failed.
    #[error("cannot freeze process {pid}: {error}")]
    Io {
        /// The process.
        pid: i32,
        /// What failed.
        error: io::Error,
    },
    /// A syscall injected into the process failed.
    #[error("cannot dump process {pid}: {error}")]
    Inject {
        /// The process.
        pid: i32,
        /// What failed.
        error: InjectError,
    },
}

/// One frozen thread.
#[derive(Debug)]
struct FrozenThread {
    tid: i32,
    /// Registers to resume it with (an interrupted syscall rewound).
    resume: Regs,
    /// Its own signal mask; all signals are blocked while it is frozen.
    sigmask: u64,
}

/// A process whose every thread is stopped under this thread's ptrace.
#[derive(Debug)]
pub struct Frozen {
    pid: i32,
    threads: Vec<FrozenThread>,
    /// A `syscall` instruction in its vDSO.
    syscall_at: u64,
    /// Seized as a guest: injected syscalls pass its seccomp filter.
    guest: bool,
}

/// A mapping as `/proc/PID/maps` shows it.
#[derive(Debug, Clone)]
pub struct MapsEntry {
    /// First address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// `rwxp` / `rwxs`.
    pub perms: String,
    /// The file offset of a file mapping's first byte.
    pub offset: u64,
    /// The inode of a file mapping (0: anonymous).
    pub inode: u64,
    /// Path or `[name]`, possibly empty.
    pub name: String,
}

impl MapsEntry {
    fn prot(&self) -> u32 {
        let bit = |i: usize, flag: i32| {
            if self.perms.as_bytes()[i] != b'-' {
                flag as u32
            } else {
                0
            }
        };
        bit(0, libc::PROT_READ) | bit(1, libc::PROT_WRITE) | bit(2, libc::PROT_EXEC)
    }

    fn shared(&self) -> bool {
        self.perms.as_bytes()[3] == b's'
    }
}

/// The mappings of `pid`.
pub fn maps(pid: i32) -> io::Result<Vec<MapsEntry>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/maps");
    text.lines()
        .map(|line| MapsEntry::parse(line).ok_or_else(bad))
        .collect()
}

impl MapsEntry {
    /// A line of `/proc/PID/maps` (the first line of each mapping in
    /// `smaps` too); `None` for any other.
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.splitn(6, ' ');
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?.to_owned();
        let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
        let _device = fields.next();
        let inode = fields.next()?.parse().ok()?;
        let name = fields.next().unwrap_or("").trim().to_owned();
        Some(MapsEntry {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            perms,
            offset,
            inode,
            name,
        })
    }
}

/// Where a `syscall` instruction is in `pid`'s vDSO.
pub fn vdso_syscall_instruction(pid: i32) -> io::Result<u64> {
    let vdso = maps(pid)?
        .into_iter()
        .find(|m| m.name == "[vdso]")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the process has no vDSO"))?;
    let code = ProcessMemory::new(pid)
        .read(vdso.start, (vdso.end - vdso.start) as usize)
        .map_err(|e| io::Error::other(e.to_string()))?;
    crate::ptrace::find_syscall_instruction(&code)
        .map(|offset| vdso.start + offset as u64)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no syscall instruction in the vDSO",
            )
        })
}

fn tids(pid: i32) -> io::Result<BTreeSet<i32>> {
    Ok(crate::process::threads(pid)?.into_iter().collect())
}

/// Names the step an io error happened at, keeping its kind.
pub(crate) fn step(what: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// Freezes every thread of `pid`. `guest`, for a process under the guest
/// filter (which injected syscalls must pass by): what answers the calls
/// that the filter's supervisor holds of a thread it is given, one
/// interrupted here (see [`ptrace::wait_releasing`]).
pub fn freeze(pid: i32, guest: Option<&dyn Fn(i32)>) -> Result<Frozen, DumpError> {
    let mut seized: Vec<i32> = Vec::new();
    let outcome = (|| {
        seize_threads(pid, &|_| true, &mut seized)?;
        let mut threads = Vec::new();
        for &tid in &seized {
            let stopped = wait_for_stop(tid, guest);
            let stop = stopped.map_err(|e| step("waiting for it to stop", e))?;
            if matches!(stop, Stop::Exited(_) | Stop::Killed(_)) {
                continue;
            }
            // Only now that it is stopped: seized with its filter
            // suspended, a thread still running could make a call of its
            // own past the filter before the stop, run on this node as
            // if it were home's.
            if guest.is_some() {
                let suspended = ptrace::Options {
                    suspend_seccomp: true,
                    trace_clone: false,
                };
                ptrace::set_options(tid, suspended).map_err(|e| step("PTRACE_SETOPTIONS", e))?;
            }
            let sigmask = ptrace::sigmask(tid).map_err(|e| step("PTRACE_GETSIGMASK", e))?;
            // Signals that arrive while frozen stay pending, to be read
            // with the rest, instead of stopping an injected syscall.
            ptrace::set_sigmask(tid, u64::MAX).map_err(|e| step("PTRACE_SETSIGMASK", e))?;
            let mut regs = ptrace::regs(tid).map_err(|e| step("PTRACE_GETREGS", e))?;
            if matches!(stop, Stop::Event(_)) && ended_by_the_stop(pid, tid, &regs, sigmask) {
                regs[REG_RAX] = (-ptrace::ERESTARTNOHAND) as u64;
            }
            threads.push(FrozenThread {
                tid,
                resume: ptrace::resumable(regs),
                sigmask,
            });
        }
        // The leader first: it is the thread restored into the new process.
        threads.sort_by_key(|t| t.tid != pid);
        if threads.first().map(|t| t.tid) != Some(pid) {
            return Err(step(
                "its main thread",
                io::Error::from_raw_os_error(libc::ESRCH),
            ));
        }
        let syscall_at = vdso_syscall_instruction(pid).map_err(|e| step("finding its vDSO", e))?;
        Ok(Frozen {
            pid,
            threads,
            syscall_at,
            guest: guest.is_some(),
        })
    })();
    outcome.map_err(|error| {
        for &tid in &seized {
            let _ = ptrace::detach(tid, 0);
        }
        gone_or(pid, error)
    })
}

/// Waits for interrupted thread `tid` to stop; `guest`: what answers the
/// calls its supervisor holds for it (see [`freeze`]).
fn wait_for_stop(tid: i32, guest: Option<&dyn Fn(i32)>) -> io::Result<Stop> {
    match guest {
        Some(release) => ptrace::wait_releasing(tid, &|| release(tid)),
        None => ptrace::wait(tid),
    }
}

/// [`DumpError::Gone`] if `pid` has ended, else `error`. A process that
/// is ending refuses ptrace (`PTRACE_SEIZE` fails with EPERM) before it
/// is a zombie, and its memory reads come up short: a failure waits a
/// moment for the end it may be the sign of.
fn gone_or(pid: i32, error: io::Error) -> DumpError {
    const ENDING_TAKES_AT_MOST: std::time::Duration = std::time::Duration::from_millis(100);
    let looked_from = std::time::Instant::now();
    loop {
        if has_ended(pid) {
            return DumpError::Gone(pid);
        }
        if looked_from.elapsed() > ENDING_TAKES_AT_MOST {
            return DumpError::Io { pid, error };
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether `pid` is gone or a zombie. (Its first thread alone a zombie,
/// ended before the others, is not the end of it.)
fn has_ended(pid: i32) -> bool {
    let Ok(status) = crate::process::read_proc(format!("/proc/{pid}/status")) else {
        return true;
    };
    let field = |name| crate::process::field_in(&status, name);
    let zombie = field("State:").is_some_and(|state| state.starts_with(['Z', 'X']));
    let threads = field("Threads:").and_then(|n| n.parse::<u32>().ok());
    zombie && threads.is_none_or(|n| n <= 1)
}

/// Seizes and interrupts every thread of `pid` that `stopped` picks,
/// adding each to `seized`. Threads may start while others are being
/// seized: it goes round until a pass finds none new.
fn seize_threads(pid: i32, stopped: &dyn Fn(i32) -> bool, seized: &mut Vec<i32>) -> io::Result<()> {
    loop {
        let fresh: Vec<i32> = tids(pid)
            .map_err(|e| step("listing its threads", e))?
            .into_iter()
            .filter(|&tid| !seized.contains(&tid) && stopped(tid))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        for tid in fresh {
            match ptrace::seize(tid, ptrace::Options::default()) {
                Ok(()) => seized.push(tid),
                // It ended in between.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                Err(e) => return Err(step("PTRACE_SEIZE", e)),
            }
            ptrace::interrupt(tid).map_err(|e| step("PTRACE_INTERRUPT", e))?;
        }
    }
}

/// A process some threads of which [`pause`] stopped; they go on when it
/// is dropped.
#[derive(Debug)]
pub struct Paused {
    /// Each stopped thread, and the signal its stop held (0: none).
    threads: Vec<(i32, i32)>,
}

impl Drop for Paused {
    fn drop(&mut self) {
        for &(tid, signal) in &self.threads {
            let _ = ptrace::detach(tid, signal);
        }
    }
}

/// Stops the threads of `pid` that are running, but those in
/// `left_running`, for a moment in which they change nothing. A thread
/// asleep in a call is left so: it changes nothing before it wakes, and
/// what it writes then is any write, while stopping it would end its
/// call, to be made again with its whole timeout. `guest`: as for
/// [`freeze`], what answers the calls its supervisor holds for the
/// threads that are stopped.
/// Unlike a freeze, nothing of a thread is made ready to go elsewhere:
/// each goes on as the kernel left it, a call the stop interrupted
/// restarting as after any stop, with the sleep's restart block it had,
/// and one the stop alone ended with `EINTR` made again (see
/// [`ended_by_the_stop`]).
pub fn pause(
    pid: i32,
    left_running: &[i32],
    guest: Option<&dyn Fn(i32)>,
) -> Result<Paused, DumpError> {
    let mut seized: Vec<i32> = Vec::new();
    let mut paused = Paused {
        threads: Vec::new(),
    };
    let outcome = (|| {
        let running = |tid| {
            !left_running.contains(&tid)
                && crate::process::stat_field::<char>(tid, 0).is_none_or(|state| state == 'R')
        };
        seize_threads(pid, &running, &mut seized)?;
        for &tid in &seized {
            let stopped = wait_for_stop(tid, guest);
            let signal = match stopped.map_err(|e| step("waiting for it to stop", e))? {
                Stop::Exited(_) | Stop::Killed(_) => continue,
                Stop::Signal(signal) => signal,
                Stop::Event(_) => {
                    let mut regs = ptrace::regs(tid).map_err(|e| step("PTRACE_GETREGS", e))?;
                    let sigmask = ptrace::sigmask(tid).map_err(|e| step("PTRACE_GETSIGMASK", e))?;
                    if ended_by_the_stop(pid, tid, &regs, sigmask) {
                        regs[REG_RAX] = (-ptrace::ERESTARTNOHAND) as u64;
                        ptrace::set_regs(tid, &regs).map_err(|e| step("PTRACE_SETREGS", e))?;
                    }
                    0
                }
                Stop::Syscall => 0,
            };
            paused.threads.push((tid, signal));
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => Ok(paused),
        Err(error) => {
            // Those seized but not yet waited for go on too.
            for &tid in seized
                .iter()
                .filter(|&&tid| !paused.threads.iter().any(|&(stopped, _)| stopped == tid))
            {
                let _ = ptrace::detach(tid, 0);
            }
            Err(gone_or(pid, error))
        }
    }
}

/// Whether the syscall that thread `tid` of `pid`, stopped by a freeze's
/// interrupt at `regs`, was in ended with `EINTR` only because it
/// stopped. Linux ends some calls so whenever their thread stops and goes
/// on, though no handler runs (`epoll_wait`, `semop`, `sigtimedwait`, a
/// socket call with a timeout: see signal(7)); the program must not see
/// a freeze, so such a call is made again. Not if a signal its mask
/// (`sigmask`) lets through is pending, which may have ended it and has
/// its handler to run; nor unless the thread is just past a `syscall`
/// instruction (a signal that did end it may have had its handler's frame
/// set up already).
fn ended_by_the_stop(pid: i32, tid: i32, regs: &Regs, sigmask: u64) -> bool {
    let in_syscall = regs[REG_ORIG_RAX] as i64 >= 0;
    if !in_syscall || regs[REG_RAX] as i64 != -i64::from(libc::EINTR) {
        return false;
    }
    let Some(signals) = crate::process::signals(tid) else {
        return false;
    };
    if (signals.own_pending | signals.shared_pending) & !sigmask != 0 {
        return false;
    }
    let after_syscall = ProcessMemory::new(pid).read(regs[REG_RIP].wrapping_sub(2), 2);
    after_syscall.is_ok_and(|code| code == [0x0f, 0x05])
}

/// The kernel's `struct sigaction` on x86_64.
const SIGACTION_LEN: usize = 32;
/// `struct itimerval`.
const ITIMERVAL_LEN: usize = 32;
/// `stack_t`.
const STACK_T_LEN: usize = 24;
const PR_GET_TID_ADDRESS: u64 = 40;

fn word(bytes: &[u8], index: usize) -> u64 {
    u64::from_ne_bytes(bytes[index * 8..index * 8 + 8].try_into().expect("8 bytes"))
}

impl Frozen {
    /// The process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its threads.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    fn inject_error(&self, error: InjectError) -> DumpError {
        DumpError::Inject {
            pid: self.pid,
            error,
        }
    }

    fn io_error(&self, error: io::Error) -> DumpError {
        DumpError::Io {
            pid: self.pid,
            error,
        }
    }

    /// Runs one syscall in the leader; its registers are put back after.
    pub(crate) fn inject(
        &self,
        call: &'static str,
        nr: i64,
        args: [u64; 6],
    ) -> Result<u64, DumpError> {
        let leader = self.threads[0].tid;
        let mut injector = Injector::new(leader, self.syscall_at);
        let result = injector.call(call, nr, args);
        ptrace::set_regs(leader, &self.threads[0].resume).map_err(|e| self.io_error(e))?;
        result.map_err(|e| self.inject_error(e))
    }

    /// Runs one syscall in the leader and gives its raw result (a
    /// failure as a negative errno); its registers are put back after.
    pub(crate) fn inject_raw(&self, nr: i64, args: [u64; 6]) -> Result<i64, DumpError> {
        let leader = self.threads[0].tid;
        let mut injector = Injector::new(leader, self.syscall_at);
        let result = injector.raw(nr, args);
        ptrace::set_regs(leader, &self.threads[0].resume).map_err(|e| self.io_error(e))?;
        result.map_err(|e| self.inject_error(e))
    }

    /// The memory map, as the image will have it; refused when a mapping
    /// cannot move.
    pub fn layout(&self) -> Result<Vec<Region>, DumpError> {
        self.refuse_own_seccomp(&self.status()?)?;
        let entries = maps(self.pid).map_err(|e| self.io_error(e))?;
        regions(self.pid, &entries)
    }

    /// Refuses a process under seccomp of its own: strict mode, or a
    /// filter it installed (a guest has homing's too). The filters are
    /// the kernel's, and no image carries them: moved, a sandboxed
    /// program would leave its sandbox behind.
    fn refuse_own_seccomp(&self, status: &str) -> Result<(), DumpError> {
        let pid = self.pid;
        let field = |name| crate::process::field_in(status, name);
        let filters: u32 = field("Seccomp_filters:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let reason = match field("Seccomp:") {
            Some("1") => "it runs in seccomp strict mode",
            Some("2") if filters > u32::from(self.guest) => {
                "it runs under a seccomp filter of its own, which cannot move with it"
            }
            _ => return Ok(()),
        };
        Err(DumpError::Unmovable {
            pid,
            reason: reason.into(),
        })
    }

    /// The text of its `/proc/PID/status`.
    fn status(&self) -> Result<String, DumpError> {
        crate::process::read_proc(format!("/proc/{}/status", self.pid))
            .map_err(|e| self.io_error(e))
    }

    /// Runs `work` with an injector in thread `index` and a scratch
    /// mapping in the process; the thread's registers are put back after.
    fn with_scratch<T>(
        &self,
        work: impl FnOnce(&mut Injector, u64, &ProcessMemory) -> Result<T, InjectError>,
    ) -> Result<T, DumpError> {
        let leader = self.threads[0].tid;
        let mut injector = Injector::new(leader, self.syscall_at);
        let memory = ProcessMemory::new(self.pid);
        let result = (|| {
            let scratch = injector.map_scratch(SCRATCH_LEN)?;
            let outcome = work(&mut injector, scratch, &memory);
            injector.call(
                "munmap",
                libc::SYS_munmap,
                [scratch, SCRATCH_LEN, 0, 0, 0, 0],
            )?;
            outcome
        })();
        ptrace::set_regs(leader, &self.threads[0].resume).map_err(|e| self.io_error(e))?;
        result.map_err(|e| self.inject_error(e))
    }

    /// Takes the image of the frozen process. `carry_pending_signals`:
    /// move its pending signals with it (a guest being moved on), rather
    /// than leave them to the deputy it becomes at home.
    pub fn image(&self, carry_pending_signals: bool) -> Result<ProcessImage, DumpError> {
        let status = self.status()?;
        self.refuse_own_seccomp(&status)?;
        let pid = self.pid;
        let entries = maps(pid).map_err(|e| self.io_error(e))?;
        let regions = regions(pid, &entries)?;
        // Only a caught or ignored signal has an action to take (one
        // injection each, instead of 62).
        let mask = |field| {
            crate::process::field_in(&status, field)
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        };
        let handled = match (mask("SigCgt:"), mask("SigIgn:")) {
            (Some(caught), Some(ignored)) => caught | ignored,
            _ => u64::MAX,
        };
        let (signal_actions, itimers, brk, personality, per_thread) =
            self.with_scratch(|injector, scratch, memory| {
                let read = |len| {
                    memory
                        .read(scratch, len)
                        .map_err(|e| InjectError::Ptrace(io::Error::other(e.to_string())))
                };
                let mut actions = Vec::new();
                for signal in 1..=64u64 {
                    if signal == libc::SIGKILL as u64
                        || signal == libc::SIGSTOP as u64
                        || handled & (1 << (signal - 1)) == 0
                    {
                        continue;
                    }
                    injector.call(
                        "rt_sigaction",
                        libc::SYS_rt_sigaction,
                        [signal, 0, scratch, 8, 0, 0],
                    )?;
                    let raw = read(SIGACTION_LEN)?;
                    if word(&raw, 0) != 0 {
                        actions.push(SignalAction {
                            signal: signal as i32,
                            handler: word(&raw, 0),
                            flags: word(&raw, 1),
                            restorer: word(&raw, 2),
                            mask: word(&raw, 3),
                        });
                    }
                }
                let mut itimers = Vec::new();
                for which in 0..3u64 {
                    injector.call(
                        "getitimer",
                        libc::SYS_getitimer,
                        [which, scratch, 0, 0, 0, 0],
                    )?;
                    let raw = read(ITIMERVAL_LEN)?;
                    let micros = |sec: u64, usec: u64| sec * 1_000_000 + usec;
                    itimers.push(Itimer {
                        interval_us: micros(word(&raw, 0), word(&raw, 1)),
                        value_us: micros(word(&raw, 2), word(&raw, 3)),
                    });
                }
                let brk = injector.call("brk", libc::SYS_brk, [0; 6])?;
                let personality = injector.call(
                    "personality",
                    libc::SYS_personality,
                    [0xffff_ffff, 0, 0, 0, 0, 0],
                )?;
                // Each thread's own state, injected in that thread.
                let mut per_thread = Vec::new();
                for thread in &self.threads {
                    let mut own = Injector::new(thread.tid, self.syscall_at);
                    let injector = if thread.tid == self.pid {
                        &mut *injector
                    } else {
                        &mut own
                    };
                    injector.call(
                        "sigaltstack",
                        libc::SYS_sigaltstack,
                        [0, scratch, 0, 0, 0, 0],
                    )?;
                    let stack = read(STACK_T_LEN)?;
                    let altstack = (word(&stack, 0), word(&stack, 1) as i32, word(&stack, 2));
                    injector.call(
                        "prctl(PR_GET_TID_ADDRESS)",
                        libc::SYS_prctl,
                        [PR_GET_TID_ADDRESS, scratch, 0, 0, 0, 0],
                    )?;
                    let clear_child_tid = word(&read(8)?, 0);
                    if thread.tid != self.pid {
                        ptrace::set_regs(thread.tid, &thread.resume)?;
                    }
                    per_thread.push((altstack, clear_child_tid));
                }
                Ok((actions, itimers, brk, personality as u32, per_thread))
            })?;

        let mut threads = Vec::new();
        for (thread, (altstack, clear_child_tid)) in self.threads.iter().zip(per_thread) {
            let tid = thread.tid;
            let io = |e| self.io_error(e);
            let pending = if carry_pending_signals {
                ptrace::pending_signals(tid, false).map_err(io)?
            } else {
                Vec::new()
            };
            threads.push(ThreadImage {
                regs: thread.resume.to_vec(),
                xstate: ByteBuf::from(ptrace::xstate(tid).map_err(io)?),
                sigmask: thread.sigmask,
                pending: pending
                    .into_iter()
                    .map(|s| PendingSignal {
                        siginfo: ByteBuf::from(s),
                    })
                    .collect(),
                altstack,
                robust_list: ptrace::robust_list(tid).map_err(io)?,
                rseq: ptrace::rseq(tid).map_err(io)?,
                clear_child_tid,
                comm: ByteBuf::from(thread_name(pid, tid)),
                nice: crate::process::nice(tid).unwrap_or(0),
                scheduling: crate::process::scheduling_to_carry(tid),
                tid: crate::pid_namespace::innermost_pid(tid).unwrap_or(tid),
            });
        }
        let shared_pending = if carry_pending_signals {
            ptrace::pending_signals(pid, true)
                .map_err(|e| self.io_error(e))?
                .into_iter()
                .map(|s| PendingSignal {
                    siginfo: ByteBuf::from(s),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut mm = mm_fields(pid).map_err(|e| self.io_error(e))?;
        mm.brk = brk;
        let auxv = std::fs::read(format!("/proc/{pid}/auxv"))
            .map_err(|e| self.io_error(e))?
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
            .collect();
        let page_bytes = 0;
        Ok(ProcessImage {
            threads,
            regions,
            mm,
            auxv,
            signal_actions,
            shared_pending,
            itimers,
            frozen_at_unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            personality,
            // Only those the host enforces: the others are the deputy's at home,
            // where every change to one is made.
            rlimits: crate::process::enforced_on_host(
                &crate::process::limits(pid).map_err(|e| self.io_error(e))?,
            ),
            page_bytes,
            huge_pages_disabled: huge_pages_disabled_in(&status),
            // A guest's is the agent's to tell: it has the one its filter took.
            no_new_privs: crate::process::no_new_privs_in(&status),
        })
    }

    /// Reads the memory of every region of `image` that travels and hands
    /// it to `sink` in runs of present, non-zero pages (at most `max_run`
    /// bytes each). Returns the bytes handed over.
    pub fn read_memory<E>(
        &self,
        image: &ProcessImage,
        max_run: usize,
        mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<Result<u64, E>, DumpError> {
        let sink = |address: u64, run: Run| match run {
            Run::Bytes(bytes) => sink(address, &bytes),
            Run::Zeros(_) => Ok(()),
        };
        let ranges: Vec<(u64, u64)> = image
            .regions
            .iter()
            .filter(|r| travels(r))
            .map(|r| (r.start, r.end))
            .collect();
        Ok(read_pages(self.pid, &ranges, Pick::Kept, max_run, sink)?.map(|read| read.bytes))
    }

    /// Lets the process go on exactly where it was frozen.
    pub fn thaw(self) {
        for thread in &self.threads {
            let _ = ptrace::set_regs(thread.tid, &thread.resume);
            let _ = ptrace::set_sigmask(thread.tid, thread.sigmask);
            let _ = ptrace::detach(thread.tid, 0);
        }
    }

    /// Ends the frozen process (it runs elsewhere now). Its threads'
    /// deaths are reported to this tracer, which takes them; the leader's
    /// is left to its parent.
    pub fn kill(self) {
        // SAFETY: kill takes integers.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        for thread in &self.threads[1..] {
            let _ = ptrace::wait(thread.tid);
        }
    }

    /// Turns the frozen process into another program in place, keeping its
    /// pid, parent, fds, cwd and credentials: fds marked close-on-exec are
    /// unmarked first (their numbers are returned, to mark them again if
    /// the process comes back). On failure the process is as it was, still
    /// frozen.
    pub fn exec_in_place(
        &self,
        program: &std::ffi::CStr,
        argv: &[&std::ffi::CStr],
    ) -> Result<Vec<i32>, DumpError> {
        let fds: Vec<i32> = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map_err(|e| self.io_error(e))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let leader = self.threads[0].tid;
        let mut unmarked = Vec::new();
        let mut injector = Injector::new(leader, self.syscall_at);
        let memory = ProcessMemory::new(self.pid);
        let outcome = (|| {
            for &fd in &fds {
                let flags = injector.call(
                    "fcntl",
                    libc::SYS_fcntl,
                    [fd as u64, libc::F_GETFD as u64, 0, 0, 0, 0],
                )?;
                if flags & libc::FD_CLOEXEC as u64 != 0 {
                    injector.call(
                        "fcntl",
                        libc::SYS_fcntl,
                        [fd as u64, libc::F_SETFD as u64, 0, 0, 0, 0],
                    )?;
                    unmarked.push(fd);
                }
            }
            let scratch = injector.map_scratch(SCRATCH_LEN)?;
            // Interval timers outlive an exec: the deputy must not get the
            // alarms its program now gets on the other node. Each old value
            // is kept, to set it back if the exec fails.
            let timers_at = scratch + SCRATCH_LEN - 4 * 32;
            // The deputy keeps the program's environment, for whoever reads
            // it at home (`/proc/PID/environ`, `ps e`).
            let (program_at, envp) = write_exec_arguments(
                &memory,
                (scratch, timers_at - scratch),
                program,
                argv,
                &environment(self.pid),
            )?;
            for which in 0..3u64 {
                injector.call(
                    "setitimer",
                    libc::SYS_setitimer,
                    [which, timers_at + 96, timers_at + which * 32, 0, 0, 0],
                )?;
            }
            let holder = self.hold_address_space(&mut injector);
            let result = injector
                .raw_reaping_siblings(libc::SYS_execve, [program_at, scratch, envp, 0, 0, 0]);
            let result = match (result, holder) {
                (Ok(result), Some(holder)) if result >= 0 => {
                    holder.end_after_exec();
                    result
                }
                (result, Some(holder)) => {
                    holder.end_before_going_on(&mut injector);
                    result?
                }
                (result, None) => result?,
            };
            if result < 0 {
                for which in 0..3u64 {
                    let _ = injector.raw(
                        libc::SYS_setitimer,
                        [which, timers_at + which * 32, 0, 0, 0, 0],
                    );
                }
                let _ = injector.call(
                    "munmap",
                    libc::SYS_munmap,
                    [scratch, SCRATCH_LEN, 0, 0, 0, 0],
                );
                return Err(InjectError::Failed {
                    call: "execve",
                    error: io::Error::from_raw_os_error(-result as i32),
                });
            }
            Ok(())
        })();
        match outcome {
            // The other threads ended with the exec.
            Ok(()) => Ok(unmarked),
            Err(error) => {
                for &fd in &unmarked {
                    let _ = injector.call(
                        "fcntl",
                        libc::SYS_fcntl,
                        [
                            fd as u64,
                            libc::F_SETFD as u64,
                            libc::FD_CLOEXEC as u64,
                            0,
                            0,
                            0,
                        ],
                    );
                }
                let _ = ptrace::set_regs(leader, &self.threads[0].resume);
                Err(self.inject_error(error))
            }
        }
    }

    /// A clone of the process sharing its memory, held stopped for the
    /// length of an exec; `None` where none can be made (the exec then
    /// tears the old memory down itself, as any exec does).
    fn hold_address_space(&self, injector: &mut Injector) -> Option<AddressSpaceHolder> {
        let leader = self.threads[0].tid;
        let before = children(self.pid, leader);
        let options = |trace_clone| ptrace::Options {
            suspend_seccomp: self.guest,
            trace_clone,
        };
        ptrace::set_options(leader, options(true)).ok()?;
        // Exit signal 0: its end signals nobody. A stack pointer that is
        // no address: should it ever run (this agent gone), its first
        // return faults and ends it.
        let cloned = injector.raw(libc::SYS_clone, [libc::CLONE_VM as u64, 8, 0, 0, 0, 0]);
        let _ = ptrace::set_options(leader, options(false));
        let pid_there = u64::try_from(cloned.ok()?).ok().filter(|&pid| pid > 0)?;
        let pid = children(self.pid, leader)
            .into_iter()
            .find(|child| !before.contains(child))?;
        // Traced here from its start, it stops before its first instruction.
        match ptrace::wait(pid) {
            Ok(Stop::Event(_) | Stop::Signal(_)) => Some(AddressSpaceHolder { pid, pid_there }),
            _ => None,
        }
    }

    /// After [`Self::exec_in_place`] succeeded: lets the new program run.
    pub fn release_exec(self, sigmask: Option<u64>) {
        let leader = self.threads[0].tid;
        if let Some(mask) = sigmask {
            let _ = ptrace::set_sigmask(leader, mask);
        }
        let _ = ptrace::detach(leader, 0);
    }
}

/// A clone of a process made with `CLONE_VM` (so sharing its address
/// space, and nothing else it needs), held stopped under this thread's
/// ptrace while the process execs. An exec frees the old address space
/// as it drops its last user, before the new program runs: 100 ms a GiB
/// on this kind of machine, which a process moved away from home paid
/// between its last pages sent and its deputy serving it. With a holder,
/// the exec drops a user that is not the last, and the freeing happens as
/// the holder dies, once the deputy runs. It never runs a user
/// instruction: it is killed while stopped.
#[derive(Debug)]
struct AddressSpaceHolder {
    /// Its pid here.
    pid: i32,
    /// Its pid in the process's pid namespace.
    pid_there: u64,
}

impl AddressSpaceHolder {
    /// After the exec: ends it, off this thread. Its death (the old
    /// address space freed) is for its tracer to take first; then it is
    /// the deputy's child to reap.
    fn end_after_exec(self) {
        let pid = Pid::from_raw(self.pid);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let take_death = move || {
            let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
        };
        let reaping = std::thread::Builder::new().name("holder-end".into());
        if reaping.spawn(take_death).is_err() {
            take_death();
        }
    }

    /// When the exec failed: ends it and has the process, which goes on,
    /// reap it (a clone with no exit signal shows only to `__WCLONE`).
    fn end_before_going_on(self, injector: &mut Injector) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::__WALL));
        // Taken by its tracer, it is its parent's to reap at once; never
        // wait longer in the process, should it not be.
        let wait_clone = (libc::__WCLONE as u32 | libc::WNOHANG as u32) as u64;
        let _ = injector.raw(libc::SYS_wait4, [self.pid_there, 0, wait_clone, 0, 0, 0]);
    }
}

/// The children thread `tid` of process `pid` started, as pids here.
fn children(pid: i32, tid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|child| child.parse().ok())
        .collect()
}

/// Thread `tid`'s name, without the newline (empty if unreadable).
fn thread_name(pid: i32, tid: i32) -> Vec<u8> {
    let mut name = std::fs::read(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    name
}

/// Writes an execve's program path, `argv` and `envp` into `scratch`, of
/// `room` bytes, in the process: the argv pointers and a null, the envp
/// pointers and a null, then the strings. Returns the program's and the
/// environment's addresses; `scratch` is argv's. An environment that does
/// not fit is left out.
pub(crate) fn write_exec_arguments(
    memory: &ProcessMemory,
    (scratch, room): (u64, u64),
    program: &std::ffi::CStr,
    argv: &[&std::ffi::CStr],
    envp: &[std::ffi::CString],
) -> Result<(u64, u64), InjectError> {
    // Pointers (each list ends with a null), then the strings.
    let needed = 8 * (argv.len() + envp.len() + 2)
        + program.to_bytes_with_nul().len()
        + argv
            .iter()
            .map(|a| a.to_bytes_with_nul().len())
            .sum::<usize>()
        + envp
            .iter()
            .map(|e| e.as_bytes_with_nul().len())
            .sum::<usize>();
    let envp = if needed as u64 <= room { envp } else { &[] };
    let mut strings = Vec::new();
    let mut pointers = Vec::new();
    let strings_at = scratch + 8 * (argv.len() + envp.len() + 2) as u64;
    let mut place = |s: &std::ffi::CStr| {
        let at = strings_at + strings.len() as u64;
        strings.extend_from_slice(s.to_bytes_with_nul());
        at
    };
    let program_at = place(program);
    for arg in argv {
        pointers.push(place(arg));
    }
    pointers.push(0);
    for variable in envp {
        pointers.push(place(variable));
    }
    pointers.push(0);
    let mut block: Vec<u8> = pointers.iter().flat_map(|p| p.to_ne_bytes()).collect();
    block.extend_from_slice(&strings);
    memory
        .write(scratch, &block)
        .map_err(|e| InjectError::Ptrace(io::Error::other(e.to_string())))?;
    Ok((program_at, scratch + 8 * (argv.len() as u64 + 1)))
}

/// Process `pid`'s environment as it was given to it (`/proc/PID/environ`).
pub(crate) fn environment(pid: i32) -> Vec<std::ffi::CString> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|variable| !variable.is_empty())
        .filter_map(|variable| std::ffi::CString::new(variable).ok())
        .collect()
}

/// The most bytes an image's memory can take: the size of its regions
/// whose pages travel.
pub fn travelling_bytes(image: &ProcessImage) -> u64 {
    image
        .regions
        .iter()
        .filter(|r| travels(r))
        .map(|r| r.end - r.start)
        .sum()
}

/// Whether a region's pages travel in the image.
pub fn travels(region: &Region) -> bool {
    matches!(region.kind, RegionKind::Private | RegionKind::Stack)
        && region.prot & libc::PROT_READ as u32 != 0
}

/// Which pages of a range [`read_pages`] hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick<'a> {
    /// Pages that hold something: present (or swapped) and not all zero;
    /// every page of a file mapping, whose absent pages read from the
    /// file, zero or not.
    Kept,
    /// As [`Pick::Kept`], but in the file mappings within these ranges,
    /// which the destination maps from the very same file, only the pages
    /// the process holds of its own (changed since they were mapped): the
    /// others are the file's, and read from it there.
    KeptOwn(&'a [(u64, u64)]),
    /// Every page that can be read: pages written since they were sent.
    /// Those that are zero now (dropped, or cleared) come as [`Run::Zeros`].
    All,
}

/// A run of pages [`read_pages`] hands over.
#[derive(Debug, Clone)]
pub enum Run {
    /// Their bytes: a share of the buffer they were read into, so that
    /// they can be sent on without a copy.
    Bytes(Bytes),
    /// So many bytes of pages that are all zero now ([`Pick::All`]).
    Zeros(u64),
}

impl Run {
    fn same_kind(&self, other: &Run) -> bool {
        matches!(
            (self, other),
            (Run::Bytes(_), Run::Bytes(_)) | (Run::Zeros(_), Run::Zeros(_))
        )
    }
}

/// What [`read_pages`] handed over.
#[derive(Debug, Default)]
pub struct PagesRead {
    /// Bytes handed over (zero runs aside).
    pub bytes: u64,
    /// Pages [`Pick::All`] could not read (the process changed their
    /// protection meanwhile): to be read again once it is frozen.
    pub unreadable: Vec<(u64, u64)>,
}

/// Reads the pages of `ranges` (page-aligned) in `pid`, which may be
/// running, and hands the ones `pick` keeps to `sink` in runs of at most
/// `max_run` bytes.
pub fn read_pages<E>(
    pid: i32,
    ranges: &[(u64, u64)],
    pick: Pick,
    max_run: usize,
    mut sink: impl FnMut(u64, Run) -> Result<(), E>,
) -> Result<Result<PagesRead, E>, DumpError> {
    let io_error = |error| DumpError::Io { pid, error };
    let memory = ProcessMemory::new(pid);
    let entries = maps(pid).map_err(io_error)?;
    let mut pagemap = PageMap::open(pid).map_err(io_error)?;
    let mut read = PagesRead::default();
    let page = PAGE as usize;
    for &(start, end) in ranges {
        let mut address = start;
        while address < end {
            // Never past the mapping the address is in: whether its
            // absent pages are zero depends on it.
            let entry = entries
                .iter()
                .find(|e| e.start <= address && address < e.end);
            let stop = entry.map_or(end, |e| e.end.min(end));
            let len = (stop - address).min(READ_CHUNK - address % READ_CHUNK);
            let anonymous = entry.is_none_or(|e| e.inode == 0);
            let mapped_there = |there: &[(u64, u64)]| {
                (there.iter()).any(|&(start, end)| start <= address && address + len <= end)
            };
            let present = match pick {
                Pick::Kept | Pick::KeptOwn(_) if anonymous => {
                    pagemap.present(address, len).map_err(io_error)?
                }
                Pick::KeptOwn(there) if mapped_there(there) => {
                    pagemap.own(address, len).map_err(io_error)?
                }
                _ => vec![true; (len / PAGE) as usize],
            };
            let (bytes, readable) = if present.iter().any(|&p| p) {
                read_readable(&memory, address, len)
            } else {
                (Vec::new(), Vec::new())
            };
            let bytes = Bytes::from(bytes);
            let pages = bytes.len() / page;
            if pick == Pick::All {
                for index in (0..pages).filter(|&i| !readable[i]) {
                    let at = address + (index * page) as u64;
                    match read.unreadable.last_mut() {
                        Some(last) if last.1 == at => last.1 = at + PAGE,
                        _ => read.unreadable.push((at, at + PAGE)),
                    }
                }
            }
            // What becomes of each page: left out, sent, or (written
            // pages that are zero now) emptied. A page of a file mapping
            // is sent even when zero: where the destination maps the file
            // again, a page left out (or emptied) reads the file's.
            let class = |index: usize| {
                if !present[index] || !readable[index] {
                    None
                } else if anonymous && is_zero(&bytes[index * page..(index + 1) * page]) {
                    (pick == Pick::All).then_some(Run::Zeros(PAGE))
                } else {
                    Some(Run::Bytes(Bytes::new()))
                }
            };
            let mut index = 0;
            while index < pages {
                let Some(kind) = class(index) else {
                    index += 1;
                    continue;
                };
                let first = index;
                while index < pages
                    && class(index).is_some_and(|k| k.same_kind(&kind))
                    && (index - first) * page < max_run
                {
                    index += 1;
                }
                let at = address + (first * page) as u64;
                let run = match kind {
                    Run::Bytes(_) => {
                        let run = bytes.slice(first * page..index * page);
                        read.bytes += run.len() as u64;
                        Run::Bytes(run)
                    }
                    Run::Zeros(_) => Run::Zeros(((index - first) * page) as u64),
                };
                if let Err(e) = sink(at, run) {
                    return Ok(Err(e));
                }
            }
            address += len;
        }
    }
    Ok(Ok(read))
}

fn is_zero(page: &[u8]) -> bool {
    page.chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().expect("16 bytes")) == 0)
}

/// Reads `len` bytes at `address`, and which of its pages could be read;
/// a page that cannot be (past the end of a mapped file) reads as zeros.
fn read_readable(memory: &ProcessMemory, address: u64, len: u64) -> (Vec<u8>, Vec<bool>) {
    let pages = (len / PAGE) as usize;
    if let Ok(bytes) = memory.read(address, len as usize) {
        return (bytes, vec![true; pages]);
    }
    let mut bytes = vec![0u8; len as usize];
    let mut readable = vec![false; pages];
    for (index, page) in bytes.chunks_mut(PAGE as usize).enumerate() {
        if let Ok(read) = memory.read(address + index as u64 * PAGE, PAGE as usize) {
            page.copy_from_slice(&read);
            readable[index] = true;
        }
    }
    (bytes, readable)
}

/// `/proc/PID/pagemap`: which pages are in memory or swap.
struct PageMap {
    file: std::fs::File,
}

impl PageMap {
    fn open(pid: i32) -> io::Result<Self> {
        Ok(Self {
            file: std::fs::File::open(format!("/proc/{pid}/pagemap"))?,
        })
    }

    fn present(&mut self, address: u64, len: u64) -> io::Result<Vec<bool>> {
        self.entries(address, len, holds_a_page)
    }

    /// Which pages of a private file mapping the process holds of its
    /// own (copied when written): not the file's page.
    fn own(&mut self, address: u64, len: u64) -> io::Result<Vec<bool>> {
        self.entries(address, len, |entry| {
            holds_a_page(entry) && entry & PM_FILE == 0
        })
    }

    fn entries(&mut self, address: u64, len: u64, test: fn(u64) -> bool) -> io::Result<Vec<bool>> {
        use std::os::unix::fs::FileExt;
        let pages = (len / PAGE) as usize;
        let mut raw = vec![0u8; pages * 8];
        self.file.read_exact_at(&mut raw, address / PAGE * 8)?;
        Ok(raw
            .chunks_exact(8)
            .map(|entry| test(u64::from_ne_bytes(entry.try_into().expect("8 bytes"))))
            .collect())
    }
}

/// `/proc/PID/pagemap` bits: the page is in memory, or in swap.
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;
/// The page is a file's page (or shared anonymous memory).
const PM_FILE: u64 = 1 << 61;
/// The swap type (low 5 bits, shown to root) of a PTE marker: no page,
/// only a mark, such as userfaultfd write-protection leaves on memory
/// never touched (`WP_UNPOPULATED`) or a guard region.
const SWAP_TYPE_PTE_MARKER: u64 = 31;

/// Whether a pagemap entry stands for a page that holds something.
fn holds_a_page(entry: u64) -> bool {
    entry & PM_PRESENT != 0 || (entry & PM_SWAP != 0 && entry & 0x1f != SWAP_TYPE_PTE_MARKER)
}

/// The image's regions, or why the process cannot move.
fn regions(pid: i32, entries: &[MapsEntry]) -> Result<Vec<Region>, DumpError> {
    let unmovable = |reason: String| DumpError::Unmovable { pid, reason };
    let mut regions = Vec::new();
    for entry in entries {
        let kind = match entry.name.as_str() {
            "[vdso]" => RegionKind::Vdso,
            "[vvar]" | "[vvar_vclock]" => RegionKind::Vvar,
            // The same fixed page in every process.
            "[vsyscall]" => continue,
            "[stack]" => RegionKind::Stack,
            name if entry.shared() && entry.prot() & libc::PROT_WRITE as u32 != 0 => {
                // Shared anonymous memory shows as a deleted /dev/zero;
                // a home file mapped away, as its host's copy.
                let copy = format!("/memfd:{}", homing_proto::image::HOME_FILE_COPY);
                let home_file = name
                    .strip_prefix(&copy)
                    .map(|path| path.trim_end_matches(" (deleted)"));
                let what = match home_file {
                    Some(path) => format!("the home file {path}"),
                    None if name.is_empty() || name.starts_with("/dev/zero") => {
                        "anonymous memory".to_owned()
                    }
                    None => name.to_owned(),
                };
                return Err(unmovable(format!(
                    "it has a writable shared mapping of {what} at {:#x}",
                    entry.start
                )));
            }
            name if name.starts_with("/dev/") && !name.starts_with("/dev/zero") => {
                return Err(unmovable(format!(
                    "it maps the device {name} at {:#x}",
                    entry.start
                )))
            }
            _ => RegionKind::Private,
        };
        let file = (kind == RegionKind::Private)
            .then(|| mapped_file(pid, entry))
            .flatten();
        regions.push(Region {
            start: entry.start,
            end: entry.end,
            prot: entry.prot(),
            kind,
            name: entry.name.clone(),
            file,
            // Read apart (see `read_mappings`).
            advice: 0,
        });
    }
    Ok(regions)
}

/// What `/proc/PID/smaps` tells of a process's mappings.
#[derive(Debug, Default, Clone)]
pub struct MappingsRead {
    /// What the process asked of each mapping (see
    /// [`homing_proto::image::advice`]), by its first and last address:
    /// every mapping it had when read.
    pub advice: HashMap<(u64, u64), u32>,
    /// Bytes of memory present (`Rss`), all mappings together.
    pub resident: u64,
}

impl MappingsRead {
    /// Whether it names every range of `mapped` (the process has made
    /// no mapping and changed none since it was read, but, unseen here,
    /// by advice given a whole mapping).
    pub fn covers(&self, mapped: &[MapsEntry]) -> bool {
        (mapped.iter()).all(|entry| self.advice.contains_key(&(entry.start, entry.end)))
    }
}

/// Reads the `VmFlags` and `Rss` of each mapping of process `pid` in its
/// `/proc/PID/smaps`. That walks every page the process has (25-40 ms for
/// 1 GiB), so it is read while the process runs, not in a freeze: see
/// [`advise`].
pub fn read_mappings(pid: i32) -> io::Result<MappingsRead> {
    let smaps = crate::process::read_proc(format!("/proc/{pid}/smaps"))?;
    let mut read = MappingsRead::default();
    let mut mapping = None;
    for line in smaps.lines() {
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(range) = mapping.take() {
                read.advice.insert(range, advice::from_vm_flags(flags));
            }
        } else if let Some(kb) = line.strip_prefix("Rss:") {
            let kb = kb.trim().trim_end_matches("kB").trim().parse::<u64>();
            read.resident += kb.unwrap_or(0) * 1024;
        } else if let Some(entry) = MapsEntry::parse(line) {
            mapping = Some((entry.start, entry.end));
        }
    }
    Ok(read)
}

/// Gives each of `regions` the advice `read` found for the very same
/// mapping; one it does not name gets none.
pub fn advise(regions: &mut [Region], read: &MappingsRead) {
    for region in regions {
        let advice = read.advice.get(&(region.start, region.end));
        region.advice = advice.copied().unwrap_or(0);
    }
}

/// Whether process `pid` has transparent huge pages turned off
/// (`PR_SET_THP_DISABLE`).
pub fn huge_pages_disabled(pid: i32) -> io::Result<bool> {
    let status = crate::process::read_proc(format!("/proc/{pid}/status"))?;
    Ok(huge_pages_disabled_in(&status))
}

/// [`huge_pages_disabled`], of `status`, the text of a `/proc/PID/status`.
fn huge_pages_disabled_in(status: &str) -> bool {
    crate::process::field_in(status, "THP_enabled:") == Some("0")
}

/// The file that `entry`, a mapping of `pid` (private, or shared
/// read-only), maps, as this node names it: its path, and its identity
/// as the mapping holds it (through `/proc/PID/map_files`, which names
/// the very file mapped). `None` for anonymous memory, and for a file
/// since removed or renamed, which its path no longer finds.
fn mapped_file(pid: i32, entry: &MapsEntry) -> Option<MappedFile> {
    use std::os::unix::fs::MetadataExt;
    if entry.inode == 0 || !entry.name.starts_with('/') || entry.name.ends_with(" (deleted)") {
        return None;
    }
    let mapped = format!("/proc/{pid}/map_files/{:x}-{:x}", entry.start, entry.end);
    let file = std::fs::metadata(mapped).ok()?;
    let named = std::fs::metadata(&entry.name).ok()?;
    if (named.dev(), named.ino()) != (file.dev(), file.ino()) || !file.is_file() {
        return None;
    }
    Some(MappedFile {
        path: ByteBuf::from(entry.name.as_bytes()),
        offset: entry.offset,
        dev: file.dev(),
        ino: file.ino(),
        size: file.size(),
        mtime: (file.mtime(), file.mtime_nsec()),
        shared: entry.shared(),
    })
}

/// The mm fields of `/proc/PID/stat` (brk itself is not there).
fn mm_fields(pid: i32) -> io::Result<MmFields> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces: field 3 first.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/PID/stat"))?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| fields.get(n - 4).copied().unwrap_or(0);
    Ok(MmFields {
        start_code: field(26),
        end_code: field(27),
        start_stack: field(28),
        start_data: field(45),
        end_data: field(46),
        start_brk: field(47),
        brk: 0,
        arg_start: field(48),
        arg_end: field(49),
        env_start: field(50),
        env_end: field(51),
    })
}

#[cfg(test)]
mod pagemap_tests {
    use super::*;

    #[test]
    fn a_pte_marker_holds_no_page_but_a_swapped_page_does() {
        assert!(holds_a_page(PM_PRESENT | 0x1234));
        assert!(holds_a_page(PM_SWAP | (7 << 5)));
        assert!(!holds_a_page(PM_SWAP | (1 << 57) | SWAP_TYPE_PTE_MARKER));
        assert!(!holds_a_page(0));
    }
}

#[cfg(test)]
mod exec_in_place_tests {
    use super::*;

    fn state_of(pid: i32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next())
            .unwrap_or('?')
    }

    #[test]
    fn the_memory_holder_of_an_exec_in_place_is_gone_after_it_succeeds_or_fails() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: freezing a process needs ptrace rights");
            return;
        }
        let mut sleeper = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("sleep");
        let pid = sleeper.id() as i32;
        let frozen = freeze(pid, None).expect("freeze");
        let missing = c"/nonexistent/homing-deputy";
        assert!(frozen.exec_in_place(missing, &[missing]).is_err());
        frozen.thaw();
        assert_eq!(
            children(pid, pid),
            Vec::<i32>::new(),
            "the failed exec left a child"
        );
        assert_eq!(sleeper.try_wait().expect("wait"), None, "it goes on");

        let frozen = freeze(pid, None).expect("freeze again");
        let sleep = c"/bin/sleep";
        frozen
            .exec_in_place(sleep, &[c"sleep", c"60"])
            .expect("exec");
        frozen.release_exec(None);
        // The holder, killed, waits as a zombie for a parent that reaps
        // clones (the deputy does; sleep does not).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let held = loop {
            let held = children(pid, pid);
            if held.iter().all(|&child| state_of(child) == 'Z')
                || std::time::Instant::now() > deadline
            {
                break held;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(held.len(), 1, "one holder: {held:?}");
        assert_eq!(state_of(held[0]), 'Z', "the holder ended");
        assert_eq!(
            sleeper.try_wait().expect("wait"),
            None,
            "it runs its new program"
        );
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// What a child's filter answers its `getppid` with, in place of the
    /// kernel's answer.
    const REFUSED: u32 = 77;

    /// Forks a child that refuses itself `getppid` by a seccomp filter and
    /// makes it in a loop, writing a byte to `bypassed` each time the
    /// call got past the filter. Only raw syscalls run in the child.
    fn refusing_child(bypassed: i32) -> i32 {
        use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
        let filter = [
            libc::sock_filter {
                code: (BPF_LD | BPF_W | BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            },
            libc::sock_filter {
                code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
                jt: 0,
                jf: 1,
                k: libc::SYS_getppid as u32,
            },
            libc::sock_filter {
                code: (BPF_RET | BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ERRNO | REFUSED,
            },
            libc::sock_filter {
                code: (BPF_RET | BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ALLOW,
            },
        ];
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: the child runs raw syscalls only, on memory it has (the
        // filter, a byte), and ends with `_exit`; the parent reads nothing
        // it shares.
        unsafe {
            let pid = libc::fork();
            if pid != 0 {
                return pid;
            }
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let installed = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &program as *const libc::sock_fprog,
            );
            if installed != 0 {
                libc::_exit(3);
            }
            loop {
                if libc::syscall(libc::SYS_getppid) >= 0 {
                    libc::write(bypassed, b"!".as_ptr().cast(), 1);
                }
            }
        }
    }

    /// A child process, killed and reaped when dropped.
    struct Child(i32);

    impl Drop for Child {
        fn drop(&mut self) {
            // SAFETY: kill and waitpid take integers and a null status.
            unsafe {
                libc::kill(self.0, libc::SIGKILL);
                libc::waitpid(self.0, std::ptr::null_mut(), 0);
            }
        }
    }

    /// A guest frozen and thawed while it makes call after call: none of
    /// its calls passes its filter meanwhile, though the freeze lets the
    /// calls it injects pass.
    #[test]
    fn a_guest_frozen_again_and_again_never_makes_a_call_past_its_filter() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: suspending a filter needs CAP_SYS_ADMIN");
            return;
        }
        let (read_end, write_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
                .expect("pipe");
        let child = Child(refusing_child(write_end.as_raw_fd()));
        drop(write_end);
        let nothing_held = |_tid: i32| {};
        for _ in 0..300 {
            let frozen = freeze(child.0, Some(&nothing_held)).expect("freeze");
            frozen.thaw();
        }
        let mut bypassed = [0u8; 4096];
        match nix::unistd::read(read_end.as_raw_fd(), &mut bypassed) {
            Err(nix::errno::Errno::EAGAIN) => {}
            Ok(n) => panic!("{n} calls passed the filter while it was frozen"),
            Err(error) => panic!("reading the child's pipe: {error}"),
        }
    }
}
