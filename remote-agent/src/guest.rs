//! Running guests: fetch a program from home, start it under the filter,
//! answer its intercepted syscalls, follow it through fork and exec, and
//! report each process's end to its deputy.
//!
//! Every guest process is a *member* with a deputy at home (its own stream
//! and its own home pid). A fork makes a new member: the deputy forks at
//! home, the guest forks here, and the child's deputy attaches on a stream
//! of its own. An exec keeps the member and replaces its host process with
//! a fresh one running the new program from home.

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use homing_proto::control::AwayProcess;
use homing_proto::guest::{GuestExit, GuestStart, HeldSignal, SignalSender, ToHome, ToHost};
use homing_proto::syscall::{self, ArgData, Dir, Len, Route, Special, SyscallCall};
use homing_shim::held_ends::EndHolder;
use homing_shim::memory::{MemoryError, ProcessMemory};
use homing_shim::pid_namespace::{innermost_in, innermost_pid, PidNamespace};
use homing_shim::ptrace::{ERESTARTNOHAND, ERESTARTSYS};
use homing_shim::seccomp::{Answer, AsyncListener, Filter, Listener, Notification};
use homing_shim::spawn::{spawn, Guest, GuestSpec};
use homing_shim::time_namespace::{ClockOffsets, TimeNamespace};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, trace, warn};

use crate::cache::{Cache, HomeFile};
use crate::home_calls::{HomeCalls, HomeGone, ProgramAtHome};
use crate::home_loader::HeaderFix;
use crate::lookup_ahead::{LookupKey, LookupsAhead, Successors};
use crate::read_ahead::{Ahead, Pace, ReadAhead};
use crate::written_back::{MappedCopy, WrittenBack};

/// How often a process that maps home files shared and writable is looked
/// at for those it maps no more.
const UNMAPPED_LOOK: Duration = Duration::from_secs(1);

/// Longest iovec array accepted (the kernel's IOV_MAX).
const IOV_MAX: usize = 1024;
/// Largest single read or write forwarded at once; bigger ones are shortened,
/// which POSIX allows for both.
const MAX_TRANSFER: usize = 8 << 20;
/// Most argv or envp entries copied out of an execve.
const MAX_EXEC_STRINGS: usize = 65536;
/// Longest argv or envp string copied out of an execve (the kernel's
/// `MAX_ARG_STRLEN`).
const MAX_EXEC_STRING: usize = 128 * 1024;
/// Longest a fork in a home node's pid namespace keeps the next from
/// setting the next pid: time for the kernel to copy a large process.
const FORK_TURN: Duration = Duration::from_secs(1);
/// For how long a fork looks for its child again as soon as other tasks
/// have run, before it sleeps between looks.
const FORK_LOOKS_AT_ONCE: Duration = Duration::from_millis(2);
/// How long a forked child may wait for its deputy to attach.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// The host role of a node: its guests and its cache.
pub struct HostRole {
    node: String,
    cache: Cache,
    filter: Filter,
    /// Every member, by (home node, home pid).
    members: DashMap<(String, i32), Arc<Member>>,
    /// The member each guest process (host pid) belongs to.
    by_host: DashMap<i32, Arc<Member>>,
    /// Forks whose child process has not been seen yet.
    pending_forks: Mutex<VecDeque<PendingFork>>,
    /// The parent of each child forked here whose deputy has not attached
    /// yet, by (home node, child's home pid), and when it forked: a parent
    /// may end first (a shell's `( … ) &` as its last command, a daemon's
    /// fork), and its child still takes its credentials and command.
    fork_parents: DashMap<(String, i32), (Arc<Member>, std::time::Instant)>,
    /// The copies of home's shared memory files its guests map.
    shared_here: crate::shared_here::SharedHere,
    /// The copies of other home files its guests map shared and writable.
    written_back: crate::written_back::WrittenBack,
    /// Processes being bound to their deputy right now.
    binding: DashMap<i32, ()>,
    /// Wakes children waiting for their deputy to attach, and anyone
    /// waiting for a child to be bound.
    attached: Notify,
    /// An empty epoll instance: a file that is never ready, lent to a
    /// guest whose wait must end on a signal (`let_signal_through`).
    never_ready: std::os::fd::OwnedFd,
    /// Ticks while calls are out at home, each of which looks then
    /// whether its thread still waits (every [`STILL_WAITING_POLL`]).
    still_waiting: Arc<crate::ticker::Ticker>,
    /// Per home node, the pid namespace its guests live in here (none
    /// where one cannot be made: they then see host pids).
    pid_namespaces: Arc<DashMap<String, Option<Arc<HomePids>>>>,
    /// Per home node, how far its clocks are ahead of this host's (see
    /// [`Self::note_home_clocks`]).
    home_clocks: DashMap<String, ClockOffsets>,
    /// Threads whose next `execve` is one the agent injected (its path):
    /// it runs as it is.
    injected_execs: DashMap<i32, Vec<u8>>,
    /// Threads whose exec in place failed: their `execve`, made again,
    /// replaces their process instead.
    not_in_place: DashMap<i32, ()>,
    /// Traces guests about to end whose parents are guests too (see
    /// [`HostRole::hold_end`]); none where it cannot start.
    end_holder: Option<EndHolder>,
    /// Replaced processes the agent is ending (see `end_parked`): their
    /// ends go to their parents as the kernel gives them.
    ending_parked: DashMap<i32, ()>,
    /// Which path lookup followed which in the programs here, per home
    /// node and user: one user's lookups never send another's ahead (see
    /// [`crate::lookup_ahead`]).
    lookup_successors: DashMap<(String, u32), Arc<Mutex<Successors>>>,
}

/// The pid namespace where a home node's guests live here: in it, each
/// has its home pid where that is free.
pub(crate) struct HomePids {
    pub(crate) namespace: PidNamespace,
    /// Its forks are made one at a time: each sets the next pid first.
    forks: tokio::sync::Mutex<()>,
}

impl HomePids {
    /// How a process restored in the namespace gets its threads' tids
    /// back: each thread is made in a turn of the namespace's forks, the
    /// tid it had set next. To be used off the runtime (a restore's own
    /// thread): it waits for the turn.
    pub(crate) fn tid_turn(self: Arc<Self>) -> homing_shim::restore::TidTurn {
        Box::new(move |tid, clone| {
            let _turn = self.forks.blocking_lock();
            if let Err(error) = self.namespace.expect_next(tid) {
                debug!(tid, "a restored thread may get another tid: {error}");
            }
            clone()
        })
    }
}

/// A forked child as its parent knows it.
#[derive(Debug, Clone, Copy)]
struct Child {
    /// Its home pid (its deputy's).
    home: i32,
    /// Its first process here (the agent's pid for it): the parent's child
    /// in the kernel's eyes even after an exec replaced it (see [`Context::park`]).
    host: i32,
}

/// A file just opened for reading, as home saw it then: its stat and its
/// first bytes.
struct Prefetched {
    fd: i32,
    stat: Vec<u8>,
    data: Vec<u8>,
    /// Where the program's next read of the fd begins: its offset at home
    /// once the `lseek`s sent for the reads answered here have run.
    offset: usize,
    /// The open that brought it (its notification's id).
    open: u64,
    /// [`Member::traffic`] once that open was answered; it serves only while
    /// nothing else has gone home or come from there since.
    armed: Option<u64>,
    at: std::time::Instant,
}

/// A regular file the program opened for reading (see [`Member::seekable`]).
#[derive(Debug, Clone, Copy)]
struct Seekable {
    /// Its size then.
    size: u64,
    /// How much of it to read ahead of the program next.
    pace: Pace,
}

/// A directory home listed to its end in answer to a `getdents64`, with
/// nothing left after (see [`syscall::DIRECTORY_END`]).
struct DirectoryEnd {
    fd: i32,
    /// The call that listed it (its notification's id).
    call: u64,
    /// [`Member::traffic`] once that call was answered: the program's next
    /// `getdents64` of the fd gets 0 here while this count stands.
    armed: Option<u64>,
    at: std::time::Instant,
}

/// Where a shared mapping of a home file goes (see
/// [`Context::map_shared_here`]).
enum SharedMapping {
    /// To this host's copy of shared memory, with this answer.
    Here(Answer),
    /// To the cache, as any mapping, with the file's path at home if it
    /// was read to tell.
    Cached(Option<Vec<u8>>),
}

struct PendingFork {
    parent_host: i32,
    /// The thread that forked.
    tid: i32,
    home_node: String,
    child_home: i32,
    /// How many times the thread's fork has come for this child: a fork
    /// the kernel restarts comes again (see [`Context::fork`]).
    attempt: u32,
}

/// One guest process and its deputy at home.
pub struct Member {
    pub(crate) home_node: String,
    pub(crate) home_pid: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
    command: Mutex<String>,
    pub(crate) calls: Arc<HomeCalls>,
    /// The host's pid namespaces, per home node (see
    /// `HostRole::pid_namespaces`): a signal from home is sent from its
    /// home's, as its sender (see [`Member::signal_as`]).
    pid_namespaces: Arc<DashMap<String, Option<Arc<HomePids>>>>,
    /// The guest process that is this member now (0 before it exists).
    pub(crate) host_pid: AtomicI32,
    /// Exits of this member's host processes (old ones after an exec included).
    exits: mpsc::UnboundedSender<(i32, GuestExit)>,
    /// The member's children, by the pid its fork returned (their pid in
    /// the home node's pid namespace here: their home pid where it was free).
    children: DashMap<i32, Child>,
    /// Children reaped, by that pid: for the program they are gone, even
    /// where their processes here stay zombies (reaped at home by a wait
    /// that did not run here too).
    reaped: DashMap<i32, ()>,
    /// Open while its syscalls may go home; closed while it is being
    /// frozen to move, so that no call is half done when it leaves.
    pub(crate) gate: tokio::sync::watch::Sender<bool>,
    /// Its process moved on: its end here is no end for home to hear of.
    pub(crate) moved: std::sync::atomic::AtomicBool,
    /// Notifications of its process being handled right now.
    pub(crate) handling: std::sync::atomic::AtomicUsize,
    /// Those past its gate (home may be running them): by notification
    /// id, the thread. Counted, as `handling`, before the gate is looked
    /// at.
    pub(crate) in_hand: DashMap<u64, i32>,
    /// The process a forked child was before its exec replaced it here
    /// (the program runs in a process of the agent's): its parent's
    /// child, kept blocked in its execve, to end as the program ends. Its
    /// parent's wait can then reap it here too (see `reaped_here`). 0: none.
    parked: AtomicI32,
    /// The signals its signalfds at home ask for, as home last told
    /// ([`syscall::SIGNALFD_SIGNALS`]): such a signal it raises itself
    /// goes home, where they read it.
    signalfd_signals: AtomicU64,
    /// Its own `no_new_privs`: the guest has the one homing's filter took
    /// (see [`Special::Sandbox`]).
    no_new_privs: AtomicBool,
    /// What to put back in the program headers of the program it is
    /// exec'ing from a launch copy, at its first call (see
    /// [`crate::home_loader::HeaderFix`]); `header_fix_due` says there is.
    header_fix: Mutex<Option<HeaderFix>>,
    header_fix_due: AtomicBool,
    /// Fds it opened read-only at home and has not closed since: their
    /// close cannot fail, so it is answered at once (see [`Context::forward`]).
    read_only: Mutex<std::collections::HashSet<i32>>,
    /// Its signalfds (at home), by fd, with the signals each asks for:
    /// those home listed when it moved here, its parent's when it forked,
    /// and those it made here; forgotten as it closes or replaces them,
    /// and at an exec (see [`Context::read_signals_here`]).
    signalfds: Mutex<std::collections::HashMap<i32, u64>>,
    /// The signalfds among those registered in its epoll instances (see
    /// [`crate::signalfd_wait`]); forgotten with the epoll fd.
    epoll_watches: Mutex<crate::signalfd_wait::EpollWatches>,
    /// Fds that opened its own task directory, whose listings are its
    /// threads here (see [`crate::task_dir`]).
    task_dirs: Mutex<crate::task_dir::TaskDirs>,
    /// Regular files it opened for reading at home, not closed since, with
    /// the size each had then; forgotten all at once when it forks or
    /// sends fds (their offsets are then shared with another process). An
    /// `lseek` to an offset within that size from the start can only
    /// return that offset (see [`Context::seek_here`]).
    seekable: Mutex<std::collections::HashMap<i32, Seekable>>,
    /// While its process is frozen to move on: the signals home sent it
    /// meanwhile, which its image does not hold; they go with it.
    pub(crate) held_signals: Mutex<Option<Vec<HeldSignal>>>,
    /// Set when home says it sends nothing more on this stream.
    pub(crate) home_holds: tokio::sync::watch::Sender<bool>,
    /// Its program's canonical path at home: what `/proc/self/exe` names
    /// for it (the deputy's own names the homing binary). Empty: unknown.
    pub(crate) exe: Mutex<Vec<u8>>,
    /// Per fd read at home: bytes a read took there for a thread that a
    /// signal took away before they reached it. The fd's next read gets
    /// them first; the lock is held while a read of the fd is out at home,
    /// so that no later read can overtake one whose thread left.
    unread: DashMap<i32, Arc<tokio::sync::Mutex<Vec<u8>>>>,
    /// The copies of home files it maps shared and writable, each with the
    /// number home's agent keeps the file under for it (see
    /// [`crate::written_back`]); `maps_written_back` says there are some.
    mapped: Mutex<Vec<(Arc<MappedCopy>, i32)>>,
    maps_written_back: AtomicBool,
    /// When it was last looked at for copies it maps no more.
    mapped_looked_at: Mutex<std::time::Instant>,
    /// Children that home reaped for a wait whose thread a signal took
    /// away before the answer reached it (the host's SIGCHLD for that very
    /// child, most often): `(syscall, child's home pid, home's answer)`.
    /// The member's next wait of the same kind that may reap that child
    /// gets the answer, as the kernel would have given it: at home the
    /// child is gone.
    late_reaps: Mutex<Vec<(u64, i32, homing_proto::syscall::SyscallResult)>>,
    /// Per thread, held while one of its waits is out at home and until
    /// what that wait reaped is known: the wait its signal handler or its
    /// restart makes next must not overtake it.
    wait_turns: DashMap<i32, Arc<tokio::sync::Mutex<()>>>,
    /// The fd the program's last call was an `fstat` of, what home said of
    /// it, and that call's number: the `mmap`s of that fd that follow (the
    /// dynamic loader's, four per library) need not ask home again. Any
    /// other call begun since (by any thread) makes it void, so that
    /// nothing the program learned since can make it stale.
    last_fstat: Mutex<Option<(i32, HomeFile, u64)>>,
    /// What home sent with the answer to the program's latest open of a
    /// file for reading: its first reads and its fstat are answered here
    /// (see [`Context::serve_prefetched`]).
    prefetched: Mutex<Option<Prefetched>>,
    /// Where reads answered here left an fd's offset, not yet told home:
    /// `(fd, offset, tid)`. The `lseek` goes just before the program's
    /// next call home, or not at all when that call closes the fd (no one
    /// else can have seen the offset: sharing the fd takes a call).
    pending_seek: Mutex<Option<(i32, u64, i32)>>,
    /// The calls of its threads the agent has taken and not answered:
    /// by notification id, the thread and the listener to answer on. A
    /// thread in one waits for the answer whatever comes but a fatal
    /// signal, so ptrace stops it only once the call is answered (see
    /// [`Member::release_calls`]).
    taken_calls: DashMap<u64, (i32, Arc<Listener>)>,
    /// Signals home sent, and ends of its children, that wait for the
    /// agent to take a call of its process's one thread (see
    /// [`Member::give_when_safe`]).
    signals_for_a_call: Mutex<Vec<ForACall>>,
    /// Its children here (host pids) that have ended, or are ending, and
    /// whose ends are held back from it (see [`HostRole::hold_end`]).
    held_children: DashMap<i32, ()>,
    /// The listener of its process's filter, as of its latest call.
    listener: Mutex<Option<Arc<Listener>>>,
    /// Its next read, asked of home before it makes it (see
    /// [`Context::serve_read_ahead`]).
    read_ahead: Mutex<Option<Ahead>>,
    /// The directory the program's last `getdents64` listed to its end
    /// (see [`Context::serve_directory_end`]).
    directory_end: Mutex<Option<DirectoryEnd>>,
    /// Its next path lookups, asked of home behind one of its own (see
    /// [`Context::serve_lookup_ahead`]).
    lookups_ahead: Mutex<Option<LookupsAhead>>,
    /// Its last call, if that was a path lookup: what the next follows.
    last_lookup: Mutex<Option<LookupKey>>,
    /// What the programs of its user from its home node taught the host
    /// of the lookups that follow which.
    lookup_successors: Arc<Mutex<Successors>>,
    /// How many of its lookups were answered from those asked ahead.
    lookups_answered_ahead: std::sync::atomic::AtomicU64,
    /// The unsupported syscalls it was refused: each is logged as a
    /// warning the first time only (glibc tries `clone3` for every
    /// thread it starts, and falls back to `clone`).
    refused: DashMap<u64, ()>,
    /// How many lookups go ahead of its next one to go home.
    lookups_pace: Mutex<crate::lookup_ahead::Pace>,
    /// The notification whose answer was counted in its traffic as
    /// it was given, before its handling ended (0: none).
    answer_counted: std::sync::atomic::AtomicU64,
    /// Calls other than `mmap`s of files begun so far: their numbers.
    calls_begun: std::sync::atomic::AtomicU64,
    /// The count of the moments its family may have learned something
    /// from home (see [`Member::traffic`]), shared with every process
    /// here it may share memory with.
    family: Mutex<Arc<AtomicU64>>,
}

/// What waits for a call of a guest's (see [`Member::give_when_safe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForACall {
    /// A signal home sent it, and who sent it there.
    Signal(i32, Option<SignalSender>),
    /// The end of its child here (host pid), held back from it so far:
    /// its SIGCHLD.
    ChildEnd(i32),
}

impl ForACall {
    /// The signal it brings.
    fn signal(self) -> i32 {
        match self {
            Self::Signal(signal, _) => signal,
            Self::ChildEnd(_) => libc::SIGCHLD,
        }
    }
}

/// A thread's turn to wait (see [`Member::wait_turns`]). When it goes,
/// the thread's entry goes too unless another wait of it is queued: a
/// program that makes threads without end must not grow the map so.
struct WaitTurn<'a> {
    member: &'a Member,
    tid: i32,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for WaitTurn<'_> {
    fn drop(&mut self) {
        self.held = None;
        self.member
            .wait_turns
            .remove_if(&self.tid, |_, turn| Arc::strong_count(turn) == 1);
    }
}

impl Member {
    /// Ends, with a restart code, the calls the agent holds of thread
    /// `tid`, so that ptrace can stop it: the call runs again when the
    /// thread goes on. Only for a thread that ptrace has interrupted, whose
    /// way out then stops at once: a restart code must never reach a
    /// thread with no signal to take (the program would see it as the
    /// call's result, errno 512).
    pub(crate) fn release_calls(&self, tid: i32) {
        self.taken_calls.retain(|&id, (thread, listener)| {
            if *thread != tid {
                return true;
            }
            let _ = listener.answer(id, Answer::Errno(ERESTARTSYS as i32));
            false
        });
    }

    /// The program it is about to exec started from a launch copy: its
    /// program headers are mended at its first call.
    fn expect_header_fix(&self, fix: Option<HeaderFix>) {
        if let Ok(mut slot) = self.header_fix.lock() {
            *slot = fix;
            self.header_fix_due.store(fix.is_some(), Ordering::SeqCst);
        }
    }

    /// Mends the program headers of the program thread `tid` runs, if
    /// its exec from a launch copy left them to mend: at its first call,
    /// made by its loader before any code of its own has run.
    fn mend_header(&self, tid: i32) {
        if !self.header_fix_due.swap(false, Ordering::SeqCst) {
            return;
        }
        let Some(fix) = self.header_fix.lock().ok().and_then(|mut slot| slot.take()) else {
            return;
        };
        match fix.apply(tid) {
            Ok(true) => {}
            Ok(false) => debug!(tid, "no launch copy's program headers to mend"),
            Err(error) => warn!(tid, "cannot mend a launched program's headers: {error}"),
        }
    }

    /// Keeps `listener` as its process's (an exec here may have put the
    /// program in another process, under another filter).
    fn note_listener(&self, listener: &Arc<Listener>) {
        if let Ok(mut kept) = self.listener.lock() {
            if !kept.as_ref().is_some_and(|k| Arc::ptr_eq(k, listener)) {
                *kept = Some(listener.clone());
            }
        }
    }

    /// Gives the guest a signal home sent it, at a moment it can cut no
    /// call short that the kernel would have let finish (see
    /// [`Member::give_when_safe`]).
    pub(crate) async fn signal_from_home(
        self: &Arc<Self>,
        signal: i32,
        sender: Option<SignalSender>,
    ) {
        self.give_when_safe(ForACall::Signal(signal, sender)).await;
    }

    /// Sets the nice value of the program's main thread, reniced at home
    /// (see [`ToHost::Nice`]).
    fn renice(&self, nice: i32) {
        let pid = self.host_pid.load(Ordering::Relaxed);
        if pid == 0 {
            return;
        }
        match homing_shim::process::set_nice(pid, nice) {
            Ok(()) => debug!(home_pid = self.home_pid, nice, "reniced at home"),
            Err(error) => warn!(
                home_pid = self.home_pid,
                nice, "a renice at home is not taken on here: {error}"
            ),
        }
    }

    /// Lets the guest hear of the end of its child `child` (host pid),
    /// held back from it so far (see [`HostRole::hold_end`]), as it would
    /// at home. Under the default action nothing shows the end but a
    /// wait: it stays held until one of the guest's waits gets that child
    /// from home, so that the wait reaps here the child home reaped. An
    /// ignored SIGCHLD makes the kernel reap the child at once, as at
    /// home. A handler gets its SIGCHLD as a signal from home would come.
    fn child_ended(self: &Arc<Self>, child: i32) {
        let pid = self.host_pid.load(Ordering::Relaxed);
        let bit = homing_shim::process::signal_bit(libc::SIGCHLD);
        match homing_shim::process::signals(pid) {
            Some(signals) if signals.caught & bit != 0 => {
                let member = self.clone();
                tokio::spawn(async move { member.give_when_safe(ForACall::ChildEnd(child)).await });
            }
            Some(signals) if signals.ignored & bit == 0 => {}
            _ => self.release_child(child),
        }
    }

    /// Lets the guest hear of the end of its held child `child` now: its
    /// SIGCHLD comes, and its wait finds the child here.
    fn release_child(&self, child: i32) {
        if self.held_children.remove(&child).is_some() {
            self.note_traffic();
            release_end(child);
        }
    }

    /// Gives the guest `what` at a moment it can cut no call short that
    /// the kernel would have let finish.
    ///
    /// A call the agent has taken waits for its answer whatever comes but
    /// a fatal signal (see `Filter::install_with_listener`). One it has
    /// not taken yet, the kernel ends on any signal, with `EINTR` for a
    /// program whose handler asks for no restart: even a `close` or a
    /// write to a file, which nothing interrupts where no agent stands
    /// between. A thread that may be about to make a call, or is in one
    /// not taken yet, is therefore not given a signal it has a handler
    /// for: the signal waits for the next call the agent takes from the
    /// process's one thread, or until the thread sleeps in a call of its
    /// own here, or 50 ms at most for one that computes without calls. A
    /// process of several threads gets it once the agent has taken the
    /// calls made so far: another thread may be making one meanwhile.
    async fn give_when_safe(self: &Arc<Self>, what: ForACall) {
        if let ForACall::Signal(signal, sender) = what {
            if let Ok(mut held) = self.held_signals.lock() {
                if let Some(held) = held.as_mut() {
                    held.push(HeldSignal { signal, sender });
                    return;
                }
            }
        }
        let pid = self.host_pid.load(Ordering::Relaxed);
        if pid == 0 {
            if let ForACall::ChildEnd(child) = what {
                self.release_child(child);
            }
            return;
        }
        debug!(home_pid = self.home_pid, ?what, "giving to guest");
        // A signal without a handler ends the process, stops it (its call
        // then runs again when it goes on) or is ignored: no call of its
        // can end with EINTR.
        let Some(signals) = homing_shim::process::signals(pid) else {
            self.give(pid, what);
            return;
        };
        let bit = homing_shim::process::signal_bit(what.signal());
        if signals.caught & bit == 0 {
            self.give(pid, what);
            return;
        }
        if signals.threads != 1 {
            self.calls_taken().await;
            self.give(pid, what);
            return;
        }
        if let Ok(mut waiting) = self.signals_for_a_call.lock() {
            waiting.push(what);
        }
        // A call out at home takes it at once (see `call_while_waited_for`).
        SIGNALLED.notify_waiters();
        let member = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + SIGNAL_WAITS_FOR_A_CALL * 50;
            loop {
                tokio::time::sleep(SIGNAL_WAITS_FOR_A_CALL).await;
                // A call not taken yet takes the signals when it is; a
                // thread that runs may make one at any moment. One that
                // sleeps otherwise does so in a call of its own here (a
                // `pause`, a futex), which the signal ends as it would
                // anywhere.
                let running = homing_shim::process::status_field(pid, "State:")
                    .is_some_and(|state| state.starts_with('R'));
                let now = tokio::time::Instant::now();
                if !(member.has_untaken_calls() || running) || now > deadline {
                    break;
                }
            }
            member.give_signals_for_a_call();
        });
    }

    /// Sends process `pid` (the member's) `signal` as `sender` sent it at
    /// home, so that a handler taking `siginfo` sees the sender's pid,
    /// uid, code and value there: a `kill` or `tgkill` from a process made
    /// for it in the guests' pid namespace with the sender's pid and uid,
    /// a `sigqueue` or a message queue's notice as such. `false`: not sent
    /// (a signal of the kernel's, a sender with no pid here, or one whose
    /// pid a guest holds here), for the caller to send as before.
    fn signal_as(&self, pid: i32, signal: i32, sender: &SignalSender) -> bool {
        let pids = || {
            let pids = self
                .pid_namespaces
                .get(&self.home_node)
                .and_then(|pids| pids.clone());
            pids.zip(innermost_pid(pid))
        };
        let sent = match sender.code {
            libc::SI_USER | libc::SI_TKILL if sender.pid > 0 => {
                let Some((pids, target)) = pids() else {
                    return false;
                };
                // It sets the namespace's next pid, as a fork does: never
                // while a fork is under way (the signal goes as before).
                let Ok(_turn) = pids.forks.try_lock() else {
                    return false;
                };
                let thread = sender.code == libc::SI_TKILL;
                pids.namespace
                    .signal_as(sender.pid, sender.uid, target, signal, thread)
                    .unwrap_or(false)
            }
            code if homing_shim::process::queued_by_another(code) => {
                // From inside the namespace, or the kernel zeroes the
                // sender's pid; its process takes a pid there, which a
                // fork under way may have set for its child.
                let inside = pids().and_then(|(pids, target)| {
                    let _turn = pids.forks.try_lock().ok()?;
                    pids.namespace.queue_as(target, signal, sender).ok()
                });
                inside.unwrap_or(false)
                    || homing_shim::process::queue_signal(pid, signal, sender).is_ok()
            }
            _ => false,
        };
        if sent {
            SIGNALLED.notify_waiters();
        }
        sent
    }

    /// Gives its process now a signal held while it moved, from its
    /// sender where that is known.
    pub(crate) fn give_held(&self, held: HeldSignal) {
        let pid = self.host_pid.load(Ordering::Relaxed);
        self.give(pid, ForACall::Signal(held.signal, held.sender));
    }

    /// Gives process `pid` (the member's) `what` now.
    fn give(&self, pid: i32, what: ForACall) {
        match what {
            ForACall::Signal(signal, sender) => {
                self.note_traffic();
                if !sender.is_some_and(|sender| self.signal_as(pid, signal, &sender)) {
                    signal_guest(pid, signal);
                }
            }
            ForACall::ChildEnd(child) => self.release_child(child),
        }
    }

    /// Gives the guest the signals from home, and the ends of its
    /// children, that wait for a call of its (see
    /// [`Member::give_when_safe`]); the signals that come while it is
    /// frozen to move go with it.
    pub(crate) fn give_signals_for_a_call(&self) {
        let waiting: Vec<ForACall> = match self.signals_for_a_call.lock() {
            Ok(mut waiting) if !waiting.is_empty() => waiting.drain(..).collect(),
            _ => return,
        };
        let pid = self.host_pid.load(Ordering::Relaxed);
        let mut frozen = self.held_signals.lock().ok();
        let mut signals = Vec::new();
        for what in waiting {
            match (what, frozen.as_mut().and_then(|held| held.as_mut())) {
                (ForACall::Signal(signal, sender), Some(_)) => {
                    signals.push(HeldSignal { signal, sender })
                }
                (what, _) => self.give(pid, what),
            }
        }
        if let Some(held) = frozen.as_mut().and_then(|held| held.as_mut()) {
            held.splice(0..0, signals);
        }
    }

    /// Waits, briefly, until the agent has taken every call the process
    /// has made (see [`Member::signal_from_home`]).
    async fn calls_taken(&self) {
        let deadline = std::time::Instant::now() + UNTAKEN_CALL_WAIT;
        while self.has_untaken_calls() && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }

    /// Whether its process has made a call the agent has not taken yet.
    fn has_untaken_calls(&self) -> bool {
        let listener = self.listener.lock().ok().and_then(|l| l.clone());
        listener.is_some_and(|listener| listener.has_untaken())
    }

    /// Numbers a call as it begins: 0 for an `mmap` of a file, which
    /// changes nothing at home.
    fn begin_call(&self, route: &Route) -> u64 {
        if *route == Route::Special(Special::MmapFile) {
            return 0;
        }
        self.calls_begun.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Thread `tid`'s turn to wait (see [`Self::wait_turns`]), until the
    /// returned turn goes.
    async fn wait_turn(&self, tid: i32) -> WaitTurn<'_> {
        let turn = self.wait_turns.entry(tid).or_default().clone();
        WaitTurn {
            member: self,
            tid,
            held: Some(turn.lock_owned().await),
        }
    }

    /// Keeps what a wait (`n`) whose thread left reaped at home.
    fn keep_late_reap(&self, n: &Notification, late: homing_proto::syscall::SyscallResult) {
        if let Some((child, _)) = reaped_at_home(n, &late) {
            if let Ok(mut reaps) = self.late_reaps.lock() {
                reaps.push((n.nr, child, late));
            }
        }
    }

    /// A reap kept for wait `nr` with `args` (home pids), if one matches.
    fn take_late_reap(
        &self,
        nr: u64,
        args: &[u64; 6],
    ) -> Option<homing_proto::syscall::SyscallResult> {
        let mut reaps = self.late_reaps.lock().ok()?;
        let at = reaps
            .iter()
            .position(|(kept_nr, child, _)| *kept_nr == nr && may_reap(nr, args, *child))?;
        Some(reaps.remove(at).2)
    }

    /// Holds fd `fd`'s unread bytes, for as long as a read of it is out at
    /// home (see [`Self::unread`]).
    async fn hold_unread(&self, fd: i32) -> tokio::sync::OwnedMutexGuard<Vec<u8>> {
        let bytes = self.unread.entry(fd).or_default().clone();
        bytes.lock_owned().await
    }

    /// Remembers what home said of an fd the program asked `fstat` (or
    /// `newfstatat` with an empty path) about in call number `call`, the
    /// stat being its output `stat_output`.
    fn note_fstat(
        &self,
        n: &Notification,
        call: u64,
        stat_output: Option<u8>,
        result: &homing_proto::syscall::SyscallResult,
    ) {
        let file = stat_output
            .and_then(|index| result.output(index))
            .filter(|_| result.ret == 0)
            .filter(|stat| stat.len() == crate::cache::STAT_SIZE)
            .and_then(HomeFile::from_stat);
        if let (Some(file), Ok(mut last)) = (file, self.last_fstat.lock()) {
            *last = Some((n.args[0] as i32, file, call));
        }
    }

    /// Keeps what home sent with the answer to an open for reading, until
    /// the open is answered ([`Self::arm_prefetched`]).
    fn note_prefetched(&self, n: &Notification, result: &homing_proto::syscall::SyscallResult) {
        let (Some(stat), Some(data)) = (
            result.output(syscall::PREFETCHED_STAT),
            result.output(syscall::PREFETCHED_DATA),
        ) else {
            return;
        };
        if result.ret < 0 || !syscall::opens_for_reading(n.nr, &n.args) {
            return;
        }
        let size = HomeFile::from_stat(stat).map_or(0, |file| file.size);
        if let Ok(mut seekable) = self.seekable.lock() {
            // A file of no size may be one of /proc's, whose seeks differ.
            if size > 0 {
                let file = Seekable {
                    size,
                    pace: Pace::Untried,
                };
                seekable.insert(result.ret as i32, file);
            }
        }
        if let Ok(mut prefetched) = self.prefetched.lock() {
            *prefetched = Some(Prefetched {
                fd: result.ret as i32,
                stat: stat.to_vec(),
                data: data.to_vec(),
                offset: 0,
                open: n.id,
                armed: None,
                at: std::time::Instant::now(),
            });
        }
    }

    /// The open `id` has been answered, at `traffic`: what it brought may
    /// serve from now on; so may the end of a directory call `id` listed.
    fn arm_prefetched(&self, id: u64, traffic: u64) {
        if let Ok(mut prefetched) = self.prefetched.lock() {
            if let Some(prefetched) = prefetched.as_mut().filter(|p| p.open == id) {
                prefetched.armed = Some(traffic);
            }
        }
        if let Ok(mut end) = self.directory_end.lock() {
            if let Some(end) = end.as_mut().filter(|end| end.call == id) {
                end.armed = Some(traffic);
            }
        }
        if let Ok(mut ahead) = self.lookups_ahead.lock() {
            if let Some(ahead) = ahead.as_mut().filter(|ahead| ahead.behind == id) {
                ahead.arm(traffic);
            }
        }
    }

    /// The program's call just begun is the lookup `key` (`None`: no
    /// lookup): what followed its last call, if that was one.
    fn learn_lookup(&self, key: Option<LookupKey>) {
        let Ok(mut last) = self.last_lookup.lock() else {
            return;
        };
        let before = std::mem::replace(&mut *last, key.clone());
        if let (Some(before), Ok(mut successors)) = (before, self.lookup_successors.lock()) {
            successors.learn(before, key);
        }
    }

    /// Keeps that call `n`, a `getdents64`, listed its directory to the
    /// end, if home says so, until it is answered ([`Self::arm_prefetched`]).
    fn note_directory_end(&self, n: &Notification, result: &homing_proto::syscall::SyscallResult) {
        if n.nr as i64 != libc::SYS_getdents64 || result.output(syscall::DIRECTORY_END).is_none() {
            return;
        }
        if let Ok(mut end) = self.directory_end.lock() {
            *end = Some(DirectoryEnd {
                fd: n.args[0] as i32,
                call: n.id,
                armed: None,
                at: std::time::Instant::now(),
            });
        }
    }

    /// Its family's traffic count: how many moments it, or a process
    /// here it may share memory with, may have learned something from
    /// home (a call that went home, as it began and as it was answered, a
    /// signal the agent gave it, a child's end told), plus each moment
    /// that crossed families. What home said for it in the past serves
    /// only while this count stands.
    ///
    /// A program can learn what another program learned only through
    /// memory they share or through home, where its own call counts. So a
    /// family is a process and its forks until they exec (an exec leaves
    /// no memory shared; a fork may leave `MAP_SHARED` memory and a
    /// `vfork` all of it), and the agent gives every signal and child's
    /// end itself. Threads are one process. Nothing else the kernel keeps
    /// here for a guest can be seen by another, but for CPU affinity,
    /// which one may set for another (see [`Context::other_process`]):
    /// that crosses every family.
    pub(crate) fn traffic(&self) -> u64 {
        self.family().load(Ordering::SeqCst) + CROSSED_FAMILIES.load(Ordering::SeqCst)
    }

    /// Counts one more moment of its family's traffic; returns the count.
    pub(crate) fn note_traffic(&self) -> u64 {
        self.family().fetch_add(1, Ordering::SeqCst) + 1 + CROSSED_FAMILIES.load(Ordering::SeqCst)
    }

    fn family(&self) -> Arc<AtomicU64> {
        self.family_slot().clone()
    }

    /// Its family's count, to look at or replace: a count is never left
    /// half-changed, so a poisoned lock still holds a whole one.
    fn family_slot(&self) -> std::sync::MutexGuard<'_, Arc<AtomicU64>> {
        self.family
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes it one of `parent`'s family (a fork's child).
    fn join_family_of(&self, parent: &Member) {
        *self.family_slot() = parent.family();
    }

    /// Makes it a family of its own: its exec left it no memory shared.
    /// The new count starts past the old one, so that nothing counted by
    /// the old can pass for fresh.
    fn leave_family(&self) {
        let from = self.traffic();
        *self.family_slot() = Arc::new(AtomicU64::new(from + 1));
    }

    /// Drops what was read ahead of the program, if anything: the call
    /// it makes now is not a read it can answer.
    fn drop_read_ahead(&self) {
        let dropped = self.read_ahead.lock().ok().and_then(|mut slot| slot.take());
        if let Some(ahead) = dropped {
            self.left_ahead(&ahead.now);
        }
    }

    /// How much of `fd` to read ahead of the program next (see [`Pace`]).
    fn pace(&self, fd: i32) -> Pace {
        let files = self.seekable.lock();
        files
            .ok()
            .and_then(|files| Some(files.get(&fd)?.pace))
            .unwrap_or(Pace::Off)
    }

    /// The program left `ahead` (see [`Pace::left`]).
    fn left_ahead(&self, ahead: &ReadAhead) {
        self.set_pace(ahead.fd, self.pace(ahead.fd).left(ahead));
    }

    fn set_pace(&self, fd: i32, pace: Pace) {
        if let Ok(mut files) = self.seekable.lock() {
            if let Some(file) = files.get_mut(&fd) {
                file.pace = pace;
            }
        }
    }

    /// Notes where a call answered here left `fd`'s offset, for home to
    /// hear later; where another fd's is still to be told, it goes now.
    fn set_pending_seek(&self, fd: i32, offset: u64, tid: i32) {
        let other_waits = self
            .pending_seek
            .lock()
            .is_ok_and(|pending| pending.is_some_and(|(other, ..)| other != fd));
        if other_waits {
            self.send_pending_seek(None);
        }
        if let Ok(mut pending) = self.pending_seek.lock() {
            *pending = Some((fd, offset, tid));
        }
    }

    /// Sends home the offset reads answered here left, before call `next`
    /// (none: before the process is frozen to move); not when `next` closes
    /// that fd.
    pub(crate) fn send_pending_seek(&self, next: Option<&Notification>) {
        let Some((fd, offset, tid)) = self.pending_seek.lock().ok().and_then(|mut p| p.take())
        else {
            return;
        };
        if next.is_some_and(|n| n.nr as i64 == libc::SYS_close && n.args[0] as i32 == fd) {
            return;
        }
        let seek = SyscallCall {
            nr: libc::SYS_lseek as u64,
            args: [fd as u64, offset, libc::SEEK_SET as u64, 0, 0, 0],
            inputs: vec![],
        };
        if self.calls.start_unanswered(tid, seek).is_err() {
            debug!(
                home_pid = self.home_pid,
                fd, "home is gone: an fd's offset stays"
            );
        }
    }

    /// What home said of `fd` in the program's last call begun, if that
    /// was its `fstat`.
    fn fstat_of(&self, fd: i32) -> Option<HomeFile> {
        let last = self.last_fstat.lock().ok()?;
        let begun = self.calls_begun.load(Ordering::SeqCst);
        last.filter(|&(of, _, call)| of == fd && call == begun)
            .map(|(_, file, _)| file)
    }

    /// The signalfds of its own that wait `n` looks at for reading, with
    /// the signals of each that may be raised here (see
    /// [`crate::signalfd_wait`]). `read` reads the program's memory.
    fn signalfds_waited(
        &self,
        n: &Notification,
        read: impl Fn(u64, usize) -> Option<Vec<u8>>,
    ) -> Vec<crate::signalfd_wait::Watch> {
        if !crate::signalfd_wait::waits_on_fds(n.nr) {
            return vec![];
        }
        let (Ok(signalfds), Ok(epoll)) = (self.signalfds.lock(), self.epoll_watches.lock()) else {
            return vec![];
        };
        if signalfds.is_empty() {
            return vec![];
        }
        let raised_here = signalfds
            .iter()
            .map(|(&fd, &s)| (fd, raised_here(s)))
            .collect();
        crate::signalfd_wait::watches(n.nr, &n.args, &raised_here, &epoll, read)
    }

    /// Notes a successful `epoll_ctl` with `args` (see [`Member::epoll_watches`]).
    fn note_epoll_ctl(&self, args: &[u64; 6], memory: &ProcessMemory) {
        const EPOLL_EVENT: usize = 12;
        let event = (args[3] != 0)
            .then(|| memory.read(args[3], EPOLL_EVENT).ok())
            .flatten();
        if let (Ok(signalfds), Ok(mut watches)) = (self.signalfds.lock(), self.epoll_watches.lock())
        {
            crate::signalfd_wait::note_epoll_ctl(&mut watches, args, event.as_deref(), &signalfds);
        }
    }

    /// Takes `signalfds` (fd, signals) as its signalfds, and `in_epoll`
    /// (epoll fd, signalfd, events, data) as their registrations in its
    /// epoll instances: home's lists when it moves here.
    pub(crate) fn know_signalfds(
        &self,
        signalfds: &[(i32, u64)],
        in_epoll: &[(i32, i32, u32, u64)],
    ) {
        if let Ok(mut known) = self.signalfds.lock() {
            known.extend(signalfds.iter().copied());
        }
        if let Ok(mut watches) = self.epoll_watches.lock() {
            for &(epoll_fd, fd, events, data) in in_epoll {
                watches
                    .entry(epoll_fd)
                    .or_default()
                    .insert(fd, (events, data));
            }
        }
    }

    /// Notes an fd opened read-only by a call that returned `ret`.
    fn note_read_only(&self, nr: u64, args: &[u64; 6], ret: i64) {
        let flags = match nr as i64 {
            libc::SYS_open => args[1],
            libc::SYS_openat => args[2],
            _ => return,
        };
        if ret >= 0 && flags as i32 & libc::O_ACCMODE == libc::O_RDONLY {
            if let Ok(mut fds) = self.read_only.lock() {
                fds.insert(ret as i32);
            }
        }
    }

    /// Sees a call on its way home: forgets the fds it may close or
    /// replace, and starts a task directory's listing over at an `lseek`
    /// to its start. Returns whether it is the close of an fd opened
    /// read-only.
    fn forget_read_only(&self, nr: u64, args: &[u64; 6]) -> bool {
        // Locked only for calls on the fd table: this is on every call's way.
        let fds = || self.read_only.lock().ok();
        let forget_seekable = |fd: Option<i32>| {
            if let Ok(mut seekable) = self.seekable.lock() {
                match fd {
                    Some(fd) => drop(seekable.remove(&fd)),
                    None => seekable.clear(),
                }
            }
            if let Ok(mut signalfds) = self.signalfds.lock() {
                match fd {
                    Some(fd) => drop(signalfds.remove(&fd)),
                    None => signalfds.clear(),
                }
            }
            if let Ok(mut watches) = self.epoll_watches.lock() {
                match fd {
                    // An epoll fd, or a signalfd whose registrations go
                    // with it (an fd of the same number later is another).
                    Some(fd) => {
                        watches.remove(&fd);
                        for set in watches.values_mut() {
                            set.remove(&fd);
                        }
                    }
                    None => watches.clear(),
                }
            }
        };
        let task_dirs = || self.task_dirs.lock().ok();
        match nr as i64 {
            libc::SYS_close => {
                self.unread.remove(&(args[0] as i32));
                forget_seekable(Some(args[0] as i32));
                if let Some(mut dirs) = task_dirs() {
                    dirs.forget(args[0] as i32);
                }
                fds().is_some_and(|mut fds| fds.remove(&(args[0] as i32)))
            }
            libc::SYS_dup2 | libc::SYS_dup3 => {
                self.unread.remove(&(args[1] as i32));
                forget_seekable(Some(args[1] as i32));
                if let Some(mut dirs) = task_dirs() {
                    dirs.forget(args[1] as i32);
                }
                if let Some(mut fds) = fds() {
                    fds.remove(&(args[1] as i32));
                }
                false
            }
            libc::SYS_close_range | libc::SYS_execve | libc::SYS_execveat => {
                self.unread.clear();
                forget_seekable(None);
                if let Some(mut dirs) = task_dirs() {
                    dirs.forget_all();
                }
                if let Some(mut fds) = fds() {
                    fds.clear();
                }
                false
            }
            libc::SYS_lseek if args[1] == 0 && args[2] == libc::SEEK_SET as u64 => {
                if let Some(mut dirs) = task_dirs() {
                    dirs.rewind(args[0] as i32);
                }
                false
            }
            _ => false,
        }
    }

    /// Sees a call that may share its open files with another process (a
    /// fork, a thread, fds sent over a socket): an `lseek` answered here
    /// and told home only later could then be missed by the other.
    fn note_sharing(&self, nr: u64) {
        let shares = [
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_sendmsg,
            libc::SYS_sendmmsg,
        ];
        if shares.contains(&(nr as i64)) {
            if let Ok(mut seekable) = self.seekable.lock() {
                seekable.clear();
            }
        }
    }

    pub(crate) fn command(&self) -> String {
        self.command.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub(crate) fn set_command(&self, command: &str) {
        if let Ok(mut current) = self.command.lock() {
            *current = command.to_owned();
        }
    }

    /// Its own `no_new_privs`.
    pub(crate) fn no_new_privs(&self) -> bool {
        self.no_new_privs.load(Ordering::SeqCst)
    }

    /// Sets its own `no_new_privs` (once set, it stays).
    pub(crate) fn set_no_new_privs(&self, set: bool) {
        self.no_new_privs.fetch_or(set, Ordering::SeqCst);
    }

    /// The number home keeps the file of `copy` under for it, if it maps
    /// that copy already.
    fn held_for(&self, copy: &Arc<MappedCopy>) -> Option<i32> {
        let mapped = self.mapped.lock().ok()?;
        mapped
            .iter()
            .find(|(mine, _)| Arc::ptr_eq(mine, copy))
            .map(|(_, held)| *held)
    }

    /// It maps `copy`, whose file home keeps for it under `held`.
    fn note_mapped(&self, copy: Arc<MappedCopy>, held: i32) {
        if let Ok(mut mapped) = self.mapped.lock() {
            if !mapped.iter().any(|(mine, _)| Arc::ptr_eq(mine, &copy)) {
                mapped.push((copy, held));
            }
        }
        self.maps_written_back.store(true, Ordering::SeqCst);
    }

    /// Writes home what it wrote into the home files it maps shared and
    /// writable since home last had them (see [`crate::written_back`]);
    /// then, at most once a second, lets go of those its process maps no
    /// more (see [`Self::let_go_unmapped`]).
    async fn write_back_mapped(&self, copies: &WrittenBack) {
        if !self.maps_written_back.load(Ordering::SeqCst) {
            return;
        }
        let mapped = self.mapped.lock().map(|m| m.clone()).unwrap_or_default();
        for (copy, held) in mapped {
            let write = |offset: u64, bytes: Vec<u8>| async move {
                let wrote = self.calls.pwrite(self.home_pid, held, offset, bytes).await;
                match wrote.map_err(|gone| std::io::Error::other(gone.to_string()))? {
                    Ok(_) => Ok(()),
                    Err(errno) => Err(std::io::Error::from_raw_os_error(-errno as i32)),
                }
            };
            match copy.write_back(write).await {
                Ok(0) => {}
                Ok(bytes) => trace!(
                    home_pid = self.home_pid,
                    bytes,
                    "wrote a mapped file back home"
                ),
                Err(error) => warn!(
                    home_pid = self.home_pid,
                    "cannot write a mapped file back home (tried again at its next call): {error}"
                ),
            }
        }
        let due = self.mapped_looked_at.lock().is_ok_and(|mut at| {
            let due = at.elapsed() >= UNMAPPED_LOOK;
            if due {
                *at = std::time::Instant::now();
            }
            due
        });
        if due {
            let maps = std::fs::read_to_string(format!(
                "/proc/{}/maps",
                self.host_pid.load(Ordering::Relaxed)
            ));
            self.let_go_unmapped(copies, maps.ok().as_deref());
        }
    }

    /// Lets go of the copies its process does not map (`maps`, its
    /// `/proc/PID/maps`; `None`: it is gone, so none), once written back:
    /// home closes the file it kept, and this host drops a copy no guest
    /// maps. A program that opens and closes database after database
    /// would otherwise compare more copies at each call, and keep them all.
    fn let_go_unmapped(&self, copies: &WrittenBack, maps: Option<&str>) {
        let Ok(mut mapped) = self.mapped.lock() else {
            return;
        };
        mapped.retain(|(copy, held)| {
            if maps.is_some_and(|maps| copy.mapped_in(maps)) {
                return true;
            }
            let _ = self.calls.close_read_only(self.home_pid, *held);
            copies.let_go(copy);
            false
        });
        if mapped.is_empty() {
            self.maps_written_back.store(false, Ordering::SeqCst);
        }
    }

    /// The signals its signalfds at home ask for, as last heard.
    pub(crate) fn signalfd_signals(&self) -> u64 {
        self.signalfd_signals.load(Ordering::SeqCst)
    }

    /// Takes `signals` as those its signalfds at home ask for.
    pub(crate) fn ask_signalfds_for(&self, signals: u64) {
        self.signalfd_signals.store(signals, Ordering::SeqCst);
    }
}

/// Why a program could not be started.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Home(#[from] HomeGone),
    #[error("{path}: {message}")]
    Program {
        path: String,
        message: String,
        errno: i32,
    },
    #[error("{0}")]
    Spawn(#[from] homing_shim::spawn::SpawnError),
}

impl StartError {
    fn errno(&self) -> i32 {
        match self {
            StartError::Program { errno, .. } => *errno,
            StartError::Home(_) => libc::EIO,
            StartError::Spawn(_) => libc::ENOEXEC,
        }
    }
}

/// A program ready to start: the local copy and the argv it gets.
struct Program {
    local: PathBuf,
    argv: Vec<Vec<u8>>,
    /// Its canonical path at home (a script's interpreter's, as the kernel
    /// would have it).
    home_path: Vec<u8>,
    /// The file name it was exec'd by: the process's name.
    name: Vec<u8>,
    /// What to mend in its memory, where `local` is a launch copy.
    header_fix: Option<HeaderFix>,
}

impl HostRole {
    /// The host role of node `node`, caching under `state_dir`.
    pub fn new(node: &str, state_dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            node: node.to_owned(),
            cache: Cache::new(&state_dir.join("cache"))?,
            filter: Filter::guest(),
            members: DashMap::new(),
            by_host: DashMap::new(),
            pending_forks: Mutex::new(VecDeque::new()),
            fork_parents: DashMap::new(),
            shared_here: Default::default(),
            written_back: Default::default(),
            binding: DashMap::new(),
            attached: Notify::new(),
            never_ready: nix::sys::epoll::Epoll::new(
                nix::sys::epoll::EpollCreateFlags::EPOLL_CLOEXEC,
            )
            .map_err(std::io::Error::from)?
            .0,
            still_waiting: crate::ticker::Ticker::new(STILL_WAITING_POLL),
            pid_namespaces: Arc::new(DashMap::new()),
            home_clocks: DashMap::new(),
            injected_execs: DashMap::new(),
            not_in_place: DashMap::new(),
            end_holder: EndHolder::start()
                .inspect_err(|error| warn!("children's ends go to their parents unheld: {error}"))
                .ok(),
            ending_parked: DashMap::new(),
            lookup_successors: DashMap::new(),
        })
    }

    /// Notes how far `home_node`'s monotonic and boot clocks are ahead of
    /// this host's: its guests' pid namespace, when made, takes a time
    /// namespace that shows them those clocks (see
    /// [`homing_shim::time_namespace`]). A namespace made already keeps
    /// the clocks it has.
    pub fn note_home_clocks(&self, home_node: &str, offsets: ClockOffsets) {
        self.home_clocks.insert(home_node.to_owned(), offsets);
    }

    /// The pid namespace of `home_node`'s guests, made at its first guest,
    /// and made again if its pid 1 was killed (which ended its guests).
    pub(crate) fn home_pids(&self, home_node: &str) -> Option<Arc<HomePids>> {
        if let Some(pids) = self.pid_namespaces.get(home_node) {
            match pids.as_ref() {
                Some(live) if !live.namespace.is_alive() => {}
                _ => return pids.clone(),
            }
        }
        let mut entry = self
            .pid_namespaces
            .entry(home_node.to_owned())
            .or_insert(None);
        if let Some(dead) = entry.as_ref().filter(|pids| !pids.namespace.is_alive()) {
            warn!(
                home_node,
                init = dead.namespace.init_pid(),
                "the guests' pid namespace ended; making another"
            );
            *entry = None;
        }
        if entry.is_some() {
            return entry.clone();
        }
        let offsets = self.home_clocks.get(home_node).map(|offsets| *offsets);
        let time = offsets.and_then(|offsets| match TimeNamespace::create(offsets) {
            Ok(time) => Some(time),
            Err(error) => {
                warn!(home_node, "{error}: its guests will see this host's clocks");
                None
            }
        });
        *entry = match PidNamespace::create(time) {
            Ok(namespace) => {
                info!(
                    home_node,
                    init = namespace.init_pid(),
                    monotonic_offset_ms = offsets.map(|o| o.monotonic_ns / 1_000_000),
                    home_clocks = namespace.shifts_clocks(),
                    "a pid namespace for the guests of {home_node}"
                );
                Some(Arc::new(HomePids {
                    namespace,
                    forks: tokio::sync::Mutex::new(()),
                }))
            }
            Err(error) => {
                warn!(home_node, "{error}: its guests will see host pids");
                None
            }
        };
        entry.clone()
    }

    /// The guests running here now.
    pub fn guests(&self) -> Vec<AwayProcess> {
        self.members
            .iter()
            .filter(|m| m.host_pid.load(Ordering::Relaxed) != 0)
            .map(|m| AwayProcess {
                pid: m.home_pid,
                command: m.command.lock().map(|c| c.clone()).unwrap_or_default(),
                node: m.home_node.clone(),
                state: "running".into(),
                syscalls: m.calls.forwarded(),
                uid: m.uid,
                host_pid: m.host_pid.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub(crate) fn new_member(
        &self,
        home_node: &str,
        home_pid: i32,
        creds: (u32, u32, Vec<u32>),
        to_home: mpsc::UnboundedSender<ToHome>,
    ) -> (Arc<Member>, mpsc::UnboundedReceiver<(i32, GuestExit)>) {
        let (exits, exit_rx) = mpsc::unbounded_channel();
        let member = Arc::new(Member {
            home_node: home_node.to_owned(),
            home_pid,
            uid: creds.0,
            gid: creds.1,
            groups: creds.2,
            command: Mutex::new(String::new()),
            calls: Arc::new(HomeCalls::new(to_home)),
            pid_namespaces: self.pid_namespaces.clone(),
            host_pid: AtomicI32::new(0),
            exits,
            children: DashMap::new(),
            reaped: DashMap::new(),
            read_only: Mutex::new(std::collections::HashSet::new()),
            signalfds: Mutex::new(std::collections::HashMap::new()),
            epoll_watches: Mutex::new(Default::default()),
            task_dirs: Mutex::new(Default::default()),
            seekable: Mutex::new(std::collections::HashMap::new()),
            held_signals: Mutex::new(None),
            home_holds: tokio::sync::watch::channel(false).0,
            exe: Mutex::new(Vec::new()),
            gate: tokio::sync::watch::Sender::new(true),
            moved: std::sync::atomic::AtomicBool::new(false),
            handling: std::sync::atomic::AtomicUsize::new(0),
            in_hand: DashMap::new(),
            parked: AtomicI32::new(0),
            signalfd_signals: AtomicU64::new(0),
            no_new_privs: AtomicBool::new(false),
            header_fix: Mutex::new(None),
            header_fix_due: AtomicBool::new(false),
            unread: DashMap::new(),
            mapped: Mutex::new(Vec::new()),
            maps_written_back: AtomicBool::new(false),
            mapped_looked_at: Mutex::new(std::time::Instant::now()),
            late_reaps: Mutex::new(Vec::new()),
            wait_turns: DashMap::new(),
            last_fstat: Mutex::new(None),
            prefetched: Mutex::new(None),
            pending_seek: Mutex::new(None),
            taken_calls: DashMap::new(),
            signals_for_a_call: Mutex::new(Vec::new()),
            held_children: DashMap::new(),
            listener: Mutex::new(None),
            read_ahead: Mutex::new(None),
            directory_end: Mutex::new(None),
            lookups_ahead: Mutex::new(None),
            last_lookup: Mutex::new(None),
            lookup_successors: self
                .lookup_successors
                .entry((home_node.to_owned(), creds.0))
                .or_default()
                .clone(),
            lookups_answered_ahead: std::sync::atomic::AtomicU64::new(0),
            refused: DashMap::new(),
            lookups_pace: Mutex::new(Default::default()),
            answer_counted: std::sync::atomic::AtomicU64::new(0),
            calls_begun: std::sync::atomic::AtomicU64::new(0),
            family: Mutex::new(Arc::default()),
        });
        self.members
            .insert((home_node.to_owned(), home_pid), member.clone());
        (member, exit_rx)
    }

    /// Runs the guest `start` until it ends, talking to its home over the two channels.
    pub async fn run_guest(
        self: Arc<Self>,
        start: GuestStart,
        to_home: mpsc::UnboundedSender<ToHome>,
        from_home: mpsc::UnboundedReceiver<ToHost>,
    ) {
        let creds = (start.uid, start.gid, start.groups.clone());
        let (member, exits) = self.new_member(&start.home_node, start.home_pid, creds, to_home);
        member.set_no_new_privs(start.no_new_privs);
        let pump = tokio::spawn(pump_from_home(member.clone(), from_home));
        let argv: Vec<Vec<u8>> = start.argv.iter().map(|a| a.to_vec()).collect();
        let envp: Vec<Vec<u8>> = start.envp.iter().map(|e| e.to_vec()).collect();
        let started = async {
            let program = self
                .prepare(&member, 0, &start.exe, (&start.exe, None), argv, || {})
                .await?;
            let carried = CarriedOver {
                signals: (start.ignored_signals, 0),
                limits: start.limits.clone(),
                nice: start.nice,
                scheduling: start.scheduling,
            };
            self.start_process(&member, program, &envp, carried)
        }
        .await;
        let (status, reason) = match started {
            Ok(pid) => {
                info!(home_node = %start.home_node, home_pid = start.home_pid, host_pid = pid,
                      command = %member.command.lock().map(|c| c.clone()).unwrap_or_default(), "guest started");
                let _ = member.calls.send(ToHome::Started { host_pid: pid });
                let mut exits = exits;
                (self.follow(&member, &mut exits).await, None)
            }
            Err(error) => {
                warn!(home_node = %start.home_node, home_pid = start.home_pid, "guest could not start: {error}");
                // As a shell has it: not found (a script's interpreter
                // missing too) 127, found but not to be run 126.
                let code = match &error {
                    StartError::Program { errno, .. } if *errno == libc::ENOENT => 127,
                    StartError::Program { .. } => 126,
                    _ => 1,
                };
                (
                    GuestExit::Code(code),
                    Some(format!("{} could not start it: {error}", self.node)),
                )
            }
        };
        self.finish(&member, status, reason).await;
        pump.abort();
    }

    /// Attaches the deputy of a forked child and serves the child until it ends.
    pub async fn attach_child(
        self: Arc<Self>,
        home_node: &str,
        home_pid: i32,
        parent_home_pid: i32,
        to_home: mpsc::UnboundedSender<ToHome>,
        from_home: mpsc::UnboundedReceiver<ToHost>,
    ) {
        let forked_by = self
            .fork_parents
            .remove(&(home_node.to_owned(), home_pid))
            .map(|(_, (parent, _))| parent)
            .filter(|parent| parent.home_pid == parent_home_pid);
        let parent = self
            .members
            .get(&(home_node.to_owned(), parent_home_pid))
            .map(|m| m.clone())
            .or(forked_by);
        let Some(parent) = parent else {
            let _ = to_home.send(ToHome::Exited {
                status: GuestExit::Signal(libc::SIGKILL),
                reason: Some(format!(
                    "{} hosts no process {parent_home_pid} of {home_node}",
                    self.node
                )),
            });
            return;
        };
        let creds = (parent.uid, parent.gid, parent.groups.clone());
        let (member, exits) = self.new_member(home_node, home_pid, creds, to_home);
        // Until it execs, it may share memory with its parent, and it has
        // its parent's fds, signalfds included.
        member.join_family_of(&parent);
        let signalfd_signals = parent.signalfd_signals.load(Ordering::SeqCst);
        member
            .signalfd_signals
            .store(signalfd_signals, Ordering::SeqCst);
        if let (Ok(theirs), Ok(mut its)) = (parent.signalfds.lock(), member.signalfds.lock()) {
            its.clone_from(&theirs);
        }
        if let (Ok(theirs), Ok(mut its)) =
            (parent.epoll_watches.lock(), member.epoll_watches.lock())
        {
            its.clone_from(&theirs);
        }
        member.set_no_new_privs(parent.no_new_privs());
        if let Ok(mut exe) = member.exe.lock() {
            *exe = parent.exe.lock().map(|e| e.clone()).unwrap_or_default();
        }
        if let Ok(mut command) = member.command.lock() {
            *command = parent.command.lock().map(|c| c.clone()).unwrap_or_default();
        }
        self.attached.notify_waiters();
        let pump = tokio::spawn(pump_from_home(member.clone(), from_home));
        let mut exits = exits;
        let status = loop {
            tokio::select! {
                status = self.follow(&member, &mut exits) => break status,
                // A fork that never produced its child (it failed here after
                // the deputy forked) leaves nothing to wait for.
                _ = tokio::time::sleep(ATTACH_TIMEOUT) => {
                    if member.host_pid.load(Ordering::Relaxed) == 0 {
                        break GuestExit::Signal(libc::SIGKILL);
                    }
                }
            }
        };
        self.finish(&member, status, None).await;
        pump.abort();
    }

    /// Waits until the member's current process ends.
    pub(crate) async fn follow(
        &self,
        member: &Member,
        exits: &mut mpsc::UnboundedReceiver<(i32, GuestExit)>,
    ) -> GuestExit {
        while let Some((pid, status)) = exits.recv().await {
            // An exit of a process the member has since replaced (exec) is not its end.
            if pid == member.host_pid.load(Ordering::Relaxed) {
                return status;
            }
        }
        GuestExit::Signal(libc::SIGKILL)
    }

    /// The member whose home is `home_node` and home pid `home_pid`.
    pub(crate) fn member(&self, home_node: &str, home_pid: i32) -> Option<Arc<Member>> {
        self.members
            .get(&(home_node.to_owned(), home_pid))
            .map(|m| m.clone())
    }

    /// Forgets a member that never ran (a move called off), telling home nothing.
    pub(crate) fn forget(&self, member: &Member) {
        self.members
            .remove(&(member.home_node.clone(), member.home_pid));
    }

    /// This node's name.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// This node's copies of home files.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The guest filter.
    pub(crate) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Makes `guest` (restored, not started here) the member's process.
    pub(crate) fn adopt_process(self: &Arc<Self>, member: &Arc<Member>, guest: Guest) {
        self.by_host.insert(guest.pid, member.clone());
        self.clone().supervise(guest, member.exits.clone());
    }

    pub(crate) async fn finish(&self, member: &Member, status: GuestExit, reason: Option<String>) {
        let pid = member.host_pid.load(Ordering::Relaxed);
        let parked = member.parked.swap(0, Ordering::SeqCst);
        if parked != 0 {
            // Before home hears of the end: its parent's wait must find it
            // ended. Its exit_group comes to the agent as it ends.
            self.ending_parked.insert(parked, ());
            end_parked(member, parked, status).await;
            self.ending_parked.remove(&parked);
        }
        self.by_host.remove(&pid);
        let key = (member.home_node.clone(), member.home_pid);
        self.members.remove(&key);
        // Noted after it attached, where its fork's answer came last.
        self.fork_parents.remove(&key);
        if !self.members.iter().any(|m| m.key().0 == member.home_node) {
            self.shared_here.forget(&member.home_node);
            self.written_back.forget(&member.home_node);
        }
        // Its children whose ends it was not told of go to its
        // namespace's pid 1, which reaps them.
        let mut orphans = Vec::new();
        member.held_children.retain(|child, _| {
            orphans.push(*child);
            false
        });
        if !orphans.is_empty() {
            tokio::task::spawn_blocking(move || orphans.into_iter().for_each(release_end));
        }
        if member.moved.load(Ordering::Relaxed) {
            info!(home_pid = member.home_pid, host_pid = pid, "guest moved on");
            return;
        }
        // What it wrote into files it mapped stays, as the page cache
        // keeps it at home, however the process ended.
        member.write_back_mapped(&self.written_back).await;
        member.let_go_unmapped(&self.written_back, None);
        info!(
            home_pid = member.home_pid,
            host_pid = pid,
            ?status,
            forwarded = member.calls.forwarded(),
            lookups_answered_ahead = member.lookups_answered_ahead.load(Ordering::Relaxed),
            "guest ended"
        );
        let _ = member.calls.send(ToHome::Exited { status, reason });
        self.hand_end_to_parent(pid);
    }

    /// Writes home what `member`, and every other guest from its home node
    /// here, wrote into the home files they map shared and writable, before
    /// a call of `member`'s goes home: nothing home then tells it may be
    /// older than what the processes here wrote, as at home, where another
    /// process's `read` of the file sees a write into a mapping at once.
    async fn write_back_mapped(&self, member: &Arc<Member>) {
        member.write_back_mapped(&self.written_back).await;
        if !self.written_back.maps_any_of(&member.home_node) {
            return;
        }
        let others: Vec<Arc<Member>> = self
            .members
            .iter()
            .filter(|other| {
                other.key().0 == member.home_node && !Arc::ptr_eq(other.value(), member)
            })
            .map(|other| other.value().clone())
            .collect();
        for other in others {
            other.write_back_mapped(&self.written_back).await;
        }
    }

    /// Fetches the program at `path` (home) and, for a script, its
    /// interpreter. `named`: the file name the exec names it by, as the
    /// kernel has it (the path, or `/dev/fd/N/...` for an `execveat` by
    /// fd): the process's name, and a script's path for its interpreter;
    /// with the fd N of such a name.
    async fn prepare(
        &self,
        member: &Member,
        tid: i32,
        path: &[u8],
        (named, through_fd): (&[u8], Option<i32>),
        argv: Vec<Vec<u8>>,
        behind: impl FnOnce(),
    ) -> Result<Program, StartError> {
        let name = last_component(named).to_vec();
        let (local, home_path, loader) = self.fetch_program(member, tid, path, behind).await?;
        // A script names its interpreter: that comes from home too, and gets
        // the script's home path, as the kernel would give it.
        if let Some((interpreter, arg)) = shebang(&local) {
            if let Some(loader) = loader {
                member.calls.close_read_only(tid, loader.fd)?;
            }
            // Its interpreter could not open `/dev/fd/N` once the exec has
            // closed N: the kernel refuses such a script at once.
            if let Some(fd) = through_fd {
                let flags = member.calls.fd_flags(tid, fd).await?;
                if flags >= 0 && flags & i64::from(libc::FD_CLOEXEC) != 0 {
                    return Err(StartError::Program {
                        path: String::from_utf8_lossy(named).into_owned(),
                        message: "a script named by a close-on-exec fd".into(),
                        errno: libc::ENOENT,
                    });
                }
            }
            let mut new_argv = vec![interpreter.clone()];
            new_argv.extend(arg);
            new_argv.push(named.to_vec());
            new_argv.extend(argv.into_iter().skip(1));
            let (local, home_path, loader) =
                self.fetch_program(member, tid, &interpreter, || {}).await?;
            let (local, header_fix) = self.with_home_loader(member, tid, local, loader).await?;
            return Ok(Program {
                local,
                argv: new_argv,
                home_path,
                name,
                header_fix,
            });
        }
        let (local, header_fix) = self.with_home_loader(member, tid, local, loader).await?;
        Ok(Program {
            local,
            argv,
            home_path,
            name,
            header_fix,
        })
    }

    /// What to exec for the cached program `local` so that it starts in
    /// home's dynamic loader (see [`crate::home_loader`]): `local` itself
    /// where it names none, its launch copy else, with what to mend in
    /// the program's memory once it runs. The loader is the one
    /// home opened with the program (`opened`), or else fetched as the
    /// kernel would open it at home, so a loader home lacks fails the
    /// exec as it would there.
    async fn with_home_loader(
        &self,
        member: &Member,
        tid: i32,
        local: PathBuf,
        opened: Option<Box<ProgramAtHome>>,
    ) -> Result<(PathBuf, Option<HeaderFix>), StartError> {
        let interpreter = std::fs::File::open(&local)
            .and_then(|program| crate::home_loader::interpreter_of(&program));
        let interpreter = match interpreter {
            Ok(Some(interpreter)) => interpreter,
            Ok(None) | Err(_) => {
                if let Some(opened) = opened {
                    member.calls.close_read_only(tid, opened.fd)?;
                }
                if let Err(error) = interpreter {
                    warn!("reading the loader a cached program names: {error}");
                }
                return Ok((local, None));
            }
        };
        let loader = match opened {
            Some(opened) => {
                let taken = self.take_program(member, tid, &interpreter.path, *opened);
                taken.await?.0
            }
            None => {
                let fetched = self.fetch_program(member, tid, &interpreter.path, || {});
                let (loader, _, its_own) = fetched.await?;
                if let Some(its_own) = its_own {
                    member.calls.close_read_only(tid, its_own.fd)?;
                }
                loader
            }
        };
        let launched = self
            .cache
            .launch_copy(&local, &interpreter, &loader)
            .and_then(|launch| Ok((launch, std::fs::metadata(&local)?.len())));
        match launched {
            Ok((launch, length)) => Ok((launch, Some(interpreter.header_fix(length, &loader)))),
            Err(error) => {
                warn!(
                    "no launch copy of {} (it starts in this node's loader): {error}",
                    local.display()
                );
                Ok((local, None))
            }
        }
    }

    /// Starts `program` as the member's process; returns its host pid.
    fn start_process(
        self: &Arc<Self>,
        member: &Arc<Member>,
        program: Program,
        envp: &[Vec<u8>],
        carried: CarriedOver,
    ) -> Result<i32, StartError> {
        let command = AwayProcess::command_line(&program.argv);
        let exe = self.cache.named(&program.local, &program.name);
        let spec = GuestSpec {
            exe: CString::new(exe.into_os_string().into_encoded_bytes())
                .expect("cache paths have no NUL"),
            argv: c_strings(&program.argv),
            envp: c_strings(envp),
            uid: member.uid,
            gid: member.gid,
            groups: member.groups.clone(),
            ignored_signals: carried.signals.0,
            blocked_signals: carried.signals.1,
            limits: homing_shim::process::enforced_on_host(&carried.limits),
            nice: carried.nice,
            scheduling: carried.scheduling,
        };
        let pids = self.home_pids(&member.home_node);
        let within = pids.as_ref().map(|pids| (&pids.namespace, member.home_pid));
        member.expect_header_fix(program.header_fix);
        let guest = spawn(&spec, &self.filter, within)?;
        let pid = guest.pid;
        if let Ok(mut current) = member.command.lock() {
            *current = command;
        }
        if let Ok(mut exe) = member.exe.lock() {
            *exe = program.home_path;
        }
        member.host_pid.store(pid, Ordering::Relaxed);
        self.by_host.insert(pid, member.clone());
        self.clone().supervise(guest, member.exits.clone());
        Ok(pid)
    }

    /// Serves the notifications of `guest`'s filter (its forked children's
    /// too) and reports its exit. A guest that cannot be supervised (its
    /// notifications or its end cannot be watched) is killed: its end is
    /// then reported as usual.
    fn supervise(self: Arc<Self>, guest: Guest, exits: mpsc::UnboundedSender<(i32, GuestExit)>) {
        let pid = guest.pid;
        let listener = Arc::new(guest.listener);
        // Notifications are taken where they are handled, on the runtime:
        // a thread of their own would add a wakeup to every call.
        match AsyncListener::new(listener.clone()) {
            Ok(notifications) => {
                let role = self.clone();
                tokio::spawn(async move { role.take_notifications(listener, notifications).await });
            }
            Err(error) => {
                warn!(pid, "cannot supervise a guest ({error}); killing it");
                signal_guest(pid, libc::SIGKILL);
            }
        }
        // Its end is watched by the runtime's reactor, and only reaped on
        // a thread of the blocking pool: no thread of its own waits.
        let pidfd = guest.pidfd;
        let watch = homing_shim::process::EndWatch::new(pid)
            .inspect_err(|error| {
                warn!(pid, "cannot watch a guest's end ({error}); killing it");
                signal_guest(pid, libc::SIGKILL);
            })
            .ok();
        tokio::spawn(async move {
            if let Some(watch) = watch {
                watch.ended().await;
            }
            let reaped = tokio::task::spawn_blocking(move || wait_for_exit(pid, &pidfd));
            let status = reaped.await.unwrap_or(GuestExit::Signal(libc::SIGKILL));
            // Its parent has a SIGCHLD now.
            SIGNALLED.notify_waiters();
            let _ = exits.send((pid, status));
        });
    }

    /// Handles each notification of a guest's filter as it comes, until no
    /// process uses the filter any more.
    async fn take_notifications(
        self: Arc<Self>,
        listener: Arc<Listener>,
        notifications: AsyncListener,
    ) {
        while let Ok(n) = notifications.recv().await {
            // The program's next call, or its answer from home, is near.
            crate::spin::keep_hot();
            let role = self.clone();
            let listener = listener.clone();
            tokio::spawn(async move { role.handle(listener, n).await });
        }
    }

    /// The member a notifying thread belongs to; a process not seen before
    /// is the child of a fork under way, bound once its deputy attaches.
    async fn member_of(self: &Arc<Self>, tid: i32) -> Option<Arc<Member>> {
        // The main thread's tid is its process's pid: no /proc read on the hot path.
        if let Some(member) = self.by_host.get(&tid) {
            return Some(member.clone());
        }
        let tgid = homing_shim::process::status_number(tid, "Tgid:").unwrap_or(tid);
        let deadline = tokio::time::Instant::now() + ATTACH_TIMEOUT;
        loop {
            let notified = self.attached.notified();
            if let Some(member) = self.by_host.get(&tgid) {
                return Some(member.clone());
            }
            // Another thread of ours may be binding this process already.
            if !self.binding.contains_key(&tgid) {
                if let Some(fork) = self.claim_fork(tgid) {
                    return self.bind_child(tgid, fork, deadline).await;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Holds the end of the process thread `tid` is ending (its
    /// `exit_group`) back from its parent, when that parent is a guest
    /// here too: the kernel would tell the parent at once, with a SIGCHLD
    /// that may end a call of its not taken yet (`EINTR`, where at home
    /// its `wait4` would have returned the child), and with a zombie its
    /// own waits here could reap before the one home reaped. The parent
    /// hears of the end once home has (see [`Member::child_ended`]).
    async fn hold_end(self: &Arc<Self>, tid: i32) {
        let Some(holder) = &self.end_holder else {
            return;
        };
        if self.ending_parked.contains_key(&tid) {
            return;
        }
        let pid = homing_shim::process::status_number(tid, "Tgid:").unwrap_or(tid);
        let Some(parent_pid) = homing_shim::process::status_number(pid, "PPid:") else {
            return;
        };
        let Some(parent) = self.by_host.get(&parent_pid).map(|m| m.clone()) else {
            return;
        };
        // A child whose first call is its last is bound to its deputy
        // now: its end must reach home.
        let unbound = !self.by_host.contains_key(&pid);
        let forked = || {
            self.binding.contains_key(&pid)
                || self
                    .pending_forks
                    .lock()
                    .is_ok_and(|forks| forks.iter().any(|f| f.parent_host == parent_pid))
        };
        if unbound && forked() {
            let _ = self.member_of(tid).await;
        }
        match holder.hold(pid) {
            Ok(()) => {
                parent.held_children.insert(pid, ());
            }
            Err(error) => debug!(pid, "its end goes to its parent unheld: {error}"),
        }
    }

    /// Lets the parent of process `pid`, whose end was held back from it,
    /// hear of that end (see [`Self::hold_end`]) now that home has. A
    /// parent gone meanwhile leaves it to its namespace's pid 1.
    fn hand_end_to_parent(&self, pid: i32) {
        let parent = self
            .members
            .iter()
            .find(|member| member.held_children.contains_key(&pid))
            .map(|member| member.clone());
        match parent {
            Some(parent) => parent.child_ended(pid),
            None => release_end(pid),
        }
    }

    /// Whether the fork by process `parent_host` whose child is `child_home`
    /// at home still waits for its child here.
    fn fork_unclaimed(&self, parent_host: i32, child_home: i32, attempt: u32) -> bool {
        self.pending_forks.lock().is_ok_and(|pending| {
            pending.iter().any(|f| {
                f.parent_host == parent_host && f.child_home == child_home && f.attempt == attempt
            })
        })
    }

    /// The home pid, and the attempt it now is, of a fork by thread `tid`
    /// of process `parent_host` whose child never came: the same thread
    /// forking again means the kernel gave that fork up (or it failed),
    /// unless the child is there and has only made no call yet.
    fn fork_again(&self, parent_host: i32, tid: i32) -> Option<(i32, u32)> {
        let mut pending = self.pending_forks.lock().ok()?;
        let mut of_thread = pending
            .iter_mut()
            .filter(|f| f.parent_host == parent_host && f.tid == tid)
            .peekable();
        of_thread.peek()?;
        let made: Vec<i32> = children_of(parent_host, tid)
            .into_iter()
            .filter_map(innermost_pid)
            .collect();
        let fork = of_thread.find(|f| !made.contains(&f.child_home))?;
        fork.attempt += 1;
        debug!(
            host_pid = parent_host,
            child_home = fork.child_home,
            attempt = fork.attempt,
            "a fork comes again (the kernel restarted it): the same child at home"
        );
        Some((fork.child_home, fork.attempt))
    }

    /// Notes `parent` as the parent of its child forked at home as
    /// `child_home`, until that child's deputy attaches (see
    /// `fork_parents`). A child that never attached is forgotten a minute on.
    fn note_fork_parent(&self, parent: &Arc<Member>, child_home: i32) {
        let now = std::time::Instant::now();
        let stale = now.checked_sub(Duration::from_secs(60));
        self.fork_parents
            .retain(|_, (_, forked)| stale.is_none_or(|stale| *forked > stale));
        let child = (parent.home_node.clone(), child_home);
        // Its deputy may have attached already, with the parent there.
        if !self.members.contains_key(&child) {
            self.fork_parents.insert(child, (parent.clone(), now));
        }
    }

    /// Takes the pending fork that produced process `tgid`, if any.
    ///
    /// A parent may fork again before its first child has made a call
    /// (a shell starting a pipeline): two forks of one parent then wait,
    /// and their children's first calls may come in either order. A
    /// child is known by its pid in the home node's namespace, which its
    /// fork chose: the home pid, whoever its parent is now (the one that
    /// forked it may have ended). A child that could not have that pid
    /// (it was taken here) takes the parent's first fork whose child is
    /// not another of the parent's children here by its home pid.
    fn claim_fork(&self, tgid: i32) -> Option<PendingFork> {
        let status = homing_shim::process::read_proc(format!("/proc/{tgid}/status"));
        let status = status.as_deref().unwrap_or_default();
        let field = |name: &str| homing_shim::process::field_in(status, name);
        let parent = field("PPid:").and_then(|p| p.parse().ok()).unwrap_or(0);
        let seen = innermost_in(status);
        let mut pending = self.pending_forks.lock().ok()?;
        let at = pending
            .iter()
            .position(|f| f.parent_host == parent && Some(f.child_home) == seen)
            // Its parent may have ended since (it is then another's child).
            .or_else(|| pending.iter().position(|f| Some(f.child_home) == seen))
            .or_else(|| {
                let siblings: Vec<i32> = children_of(parent, parent)
                    .into_iter()
                    .filter(|&child| child != tgid)
                    .filter_map(innermost_pid)
                    .collect();
                pending
                    .iter()
                    .position(|f| f.parent_host == parent && !siblings.contains(&f.child_home))
            })
            .or(if pending.is_empty() { None } else { Some(0) })?;
        let fork = pending.remove(at)?;
        self.binding.insert(tgid, ());
        Some(fork)
    }

    /// Binds process `tgid` to the deputy of `fork`'s child once it attaches.
    async fn bind_child(
        self: &Arc<Self>,
        tgid: i32,
        fork: PendingFork,
        deadline: tokio::time::Instant,
    ) -> Option<Arc<Member>> {
        let key = (fork.home_node.clone(), fork.child_home);
        let member = loop {
            let notified = self.attached.notified();
            if let Some(member) = self.members.get(&key) {
                break Some(member.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break None;
            }
        };
        let Some(member) = member else {
            warn!(
                home_pid = fork.child_home,
                "a forked child's deputy never attached; killing the child"
            );
            self.binding.remove(&tgid);
            signal_guest(tgid, libc::SIGKILL);
            return None;
        };
        member.host_pid.store(tgid, Ordering::Relaxed);
        self.by_host.insert(tgid, member.clone());
        if let Some(parent) = self.by_host.get(&fork.parent_host) {
            let seen = innermost_pid(tgid).unwrap_or(tgid);
            let child = Child {
                home: fork.child_home,
                host: tgid,
            };
            parent.children.insert(seen, child);
            // Its pid may be that of a child reaped before.
            parent.reaped.remove(&seen);
        }
        self.binding.remove(&tgid);
        self.attached.notify_waiters();
        let _ = member.calls.send(ToHome::Started { host_pid: tgid });
        watch_child_exit(tgid, member.exits.clone());
        debug!(
            home_pid = fork.child_home,
            host_pid = tgid,
            "forked child attached"
        );
        Some(member)
    }

    async fn handle(self: Arc<Self>, listener: Arc<Listener>, n: Notification) {
        // Its process ends: whether it is frozen to move is moot.
        if n.nr == libc::SYS_exit_group as u64 {
            self.hold_end(n.tid).await;
            let _ = listener.answer(n.id, Answer::Continue);
            return;
        }
        let Some(member) = self.member_of(n.tid).await else {
            let _ = listener.answer(n.id, Answer::Errno(libc::ESRCH));
            return;
        };
        member.note_listener(&listener);
        // Not at the exec itself (injected, it comes here too).
        if n.nr != libc::SYS_execve as u64 {
            member.mend_header(n.tid);
        }
        member.taken_calls.insert(n.id, (n.tid, listener.clone()));
        // A member being frozen to move sends nothing more home: its call
        // waits here, and runs wherever the member is when it goes on.
        // Counted as handled before the gate is looked at, so a freeze
        // either waits for it or finds it waiting.
        let mut gate = member.gate.subscribe();
        let mut waited = false;
        loop {
            member.handling.fetch_add(1, Ordering::SeqCst);
            member.in_hand.insert(n.id, n.tid);
            if *gate.borrow_and_update() {
                break;
            }
            member.in_hand.remove(&n.id);
            member.handling.fetch_sub(1, Ordering::SeqCst);
            waited = true;
            if gate.wait_for(|open| *open).await.is_err() {
                member.taken_calls.remove(&n.id);
                return;
            }
        }
        // The freeze withdrew a call that waited: the thread makes it
        // again, and that one is served.
        if waited && !listener.is_pending(n.id) {
            member.taken_calls.remove(&n.id);
            member.in_hand.remove(&n.id);
            member.handling.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        // Its thread waits for this call's answer: no signal can end that.
        member.give_signals_for_a_call();
        let route = syscall::route(n.nr, &n.args);
        let ctx = Context {
            call: member.begin_call(&route),
            home_node: member.home_node.clone(),
            home_pid: member.home_pid,
            guest_pid: member.host_pid.load(Ordering::Relaxed),
            calls: member.calls.clone(),
            listener,
            role: self.clone(),
            member: member.clone(),
        };
        let id = n.id;
        if ctx.handle(n, route).await == Held::Answered {
            member.taken_calls.remove(&id);
        }
        member.in_hand.remove(&id);
        member.handling.fetch_sub(1, Ordering::SeqCst);
    }

    /// Caches the program at `path` at home; returns the local copy, the
    /// program's canonical path at home, and the dynamic loader it names
    /// where home opened that too (to be taken with [`Self::take_program`]).
    /// `behind` runs once the program's open is on its way home.
    async fn fetch_program(
        &self,
        member: &Member,
        tid: i32,
        path: &[u8],
        behind: impl FnOnce(),
    ) -> Result<(PathBuf, Vec<u8>, Option<Box<ProgramAtHome>>), StartError> {
        let calls = &member.calls;
        let fail = |errno: i64| program_error(path, errno);
        // Without blocking: what is there may be a FIFO or a device, which
        // an exec refuses (EACCES) where an open would wait for a writer.
        // A socket (or a device with no driver) cannot be opened at all:
        // an exec refuses it as it refuses any file that is not regular.
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        // Home's agent opens it for us if it can: then a program the user
        // may run but not read runs here too, as it does at home. Where
        // the agent cannot look its path up, the deputy does.
        let enosys = -(libc::ENOSYS as i64);
        let opened = open_program_at_home(calls, tid, path, behind)
            .await?
            .map_err(fail)?;
        let mut program = match opened {
            Ok(program) => program,
            Err(errno) if errno == enosys => {
                calls.may_execute(tid, path).await?.map_err(fail)?;
                let (fd, file) = calls
                    .open_to_read(tid, path, flags)
                    .await?
                    .map_err(|errno| match -errno as i32 {
                        libc::ENXIO | libc::ENODEV => fail(-(libc::EACCES as i64)),
                        _ => fail(errno),
                    })?;
                ProgramAtHome {
                    fd,
                    file,
                    home_path: vec![],
                    loader: None,
                }
            }
            Err(errno) => return Err(fail(errno)),
        };
        let loader = program.loader.take();
        match self.take_program(member, tid, path, program).await {
            Ok((local, home_path)) => Ok((local, home_path, loader)),
            Err(error) => {
                if let Some(loader) = loader {
                    calls.close_read_only(tid, loader.fd)?;
                }
                Err(error)
            }
        }
    }

    /// Caches `program`, which home opened for an exec of `path`, and
    /// closes it at home; returns the local copy and the program's
    /// canonical path at home.
    async fn take_program(
        &self,
        member: &Member,
        tid: i32,
        path: &[u8],
        program: ProgramAtHome,
    ) -> Result<(PathBuf, Vec<u8>), StartError> {
        let calls = &member.calls;
        let fail = |errno: i64| program_error(path, errno);
        let fd = program.fd;
        let result = async {
            let file = match program.file {
                Some(file) => file,
                None => calls.fstat(tid, fd).await?.map_err(fail)?,
            };
            if !file.is_regular() {
                return Err(fail(-(libc::EACCES as i64)));
            }
            let local = self.cache_file(&member.home_node, &file, fd, calls).await?;
            let home_path = match program.home_path {
                home_path if !home_path.is_empty() => home_path,
                _ => calls.path_of_fd(tid, fd).await?.unwrap_or_default(),
            };
            let noted = self
                .cache
                .origin(&local)
                .is_some_and(|o| o.path == home_path);
            if !home_path.is_empty() && !noted {
                if let Err(error) = self.cache.note_home_path(&local, &home_path) {
                    debug!("noting where a cached program came from: {error}");
                }
            }
            Ok((local, home_path))
        }
        .await;
        calls.close_read_only(tid, fd)?;
        result
    }

    async fn cache_file(
        &self,
        home_node: &str,
        file: &HomeFile,
        fd: i32,
        calls: &HomeCalls,
    ) -> Result<PathBuf, StartError> {
        self.cache
            .ensure(home_node, file, |offset, len| async move {
                match calls.pread(0, fd, offset, len).await {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(errno)) => {
                        Err(std::io::Error::from_raw_os_error(-errno as i32).to_string())
                    }
                    Err(gone) => Err(gone.to_string()),
                }
            })
            .await
            .map_err(|e| StartError::Program {
                path: format!("{home_node} file {:x}:{:x}", file.dev, file.ino),
                message: e.to_string(),
                errno: libc::EIO,
            })
    }
}

/// Carries the deputy's messages to the member; when home is gone, the
/// member's process is killed: it cannot go on without its identity.
pub(crate) async fn pump_from_home(
    member: Arc<Member>,
    mut from_home: mpsc::UnboundedReceiver<ToHost>,
) {
    while let Some(msg) = from_home.recv().await {
        match msg {
            ToHost::Result { id, result } => member.calls.complete(id, result),
            ToHost::Signal { signal, sender } => member.signal_from_home(signal, sender).await,
            ToHost::Nice { nice } => member.renice(nice),
            // Only meaningful before a moved-in process runs.
            ToHost::Go => {}
            ToHost::Held => {
                member.home_holds.send_replace(true);
            }
        }
    }
    member.calls.fail_all();
    let pid = member.host_pid.load(Ordering::Relaxed);
    if pid != 0 && !member.moved.load(Ordering::Relaxed) {
        warn!(
            home_pid = member.home_pid,
            "lost the home node; killing the guest"
        );
        signal_guest(pid, libc::SIGKILL);
    }
}

/// Everything a notification handler needs.
struct Context {
    /// The call's number (see [`Member::begin_call`]).
    call: u64,
    home_node: String,
    home_pid: i32,
    guest_pid: i32,
    listener: Arc<Listener>,
    calls: Arc<HomeCalls>,
    role: Arc<HostRole>,
    member: Arc<Member>,
}

/// The seccomp mode of thread `tid` of a guest, as the program knows it
/// (see [`crate::proc_view::own_seccomp`]).
fn own_seccomp_mode(tid: i32) -> i64 {
    let filters = homing_shim::process::status_field(tid, "Seccomp_filters:")
        .and_then(|count| count.parse::<u32>().ok())
        .unwrap_or(0);
    crate::proc_view::own_seccomp(filters).1
}

/// Whether call `nr` only looks at home: made with memory read from a
/// thread that has gone since (its tid even taken by another process), it
/// changes nothing there, and its answer reaches no one, since the
/// notification went with the thread. So the look whether the thread
/// still waits, an ioctl, is saved on the commonest calls there are.
fn only_looks(nr: u64) -> bool {
    [
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_access,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
    ]
    .contains(&(nr as i64))
}

/// Whether a call on a path follows it if it ends in a symbolic link
/// (`readlink` reads the link, but its answer is the target's path).
fn follows_last_link(nr: u64, args: &[u64; 6]) -> bool {
    let nofollow = libc::AT_SYMLINK_NOFOLLOW as u64;
    match nr as i64 {
        libc::SYS_lstat | libc::SYS_lchown | libc::SYS_lgetxattr | libc::SYS_llistxattr => false,
        libc::SYS_newfstatat | libc::SYS_fchownat => args[3] & nofollow == 0,
        libc::SYS_statx | libc::SYS_utimensat => {
            args[if nr as i64 == libc::SYS_statx { 2 } else { 3 }] & nofollow == 0
        }
        libc::SYS_open => args[1] & (libc::O_NOFOLLOW as u64) == 0,
        libc::SYS_openat => args[2] & (libc::O_NOFOLLOW as u64) == 0,
        _ => true,
    }
}

/// The buffer a `readlink` or `readlinkat` writes the target into:
/// `(address, size)`.
fn readlink_buffer(nr: u64, args: &[u64; 6]) -> Option<(u64, usize)> {
    match nr as i64 {
        libc::SYS_readlink => Some((args[1], args[2] as usize)),
        libc::SYS_readlinkat => Some((args[2], args[3] as usize)),
        _ => None,
    }
}

/// `args` of a `semctl` `GETALL` or `SETALL` with the set's size where
/// the table looks for it.
fn with_semaphore_count(mut args: [u64; 6], count: u64) -> [u64; 6] {
    args[usize::from(syscall::SEM_COUNT_ARG)] = count;
    args
}

/// `sem_nsems` of a `struct semid64_ds`, as `IPC_STAT` wrote it.
fn semaphores_in_set(set: &[u8]) -> Option<u64> {
    let at = std::mem::offset_of!(libc::semid_ds, sem_nsems);
    Some(u64::from_ne_bytes(set.get(at..at + 8)?.try_into().ok()?))
}

fn errno_of(ret: i64) -> Answer {
    if ret < 0 {
        Answer::Errno(-ret as i32)
    } else {
        Answer::Value(ret)
    }
}

impl Context {
    async fn handle(&self, n: Notification, route: Route) -> Held {
        // An exec is learned as a lookup of its path once it is read.
        if !crate::lookup_ahead::is_lookup(n.nr, &n.args) && route != Route::Special(Special::Exec)
        {
            self.member.learn_lookup(None);
        }
        if let Route::Forward(ptrs) = &route {
            let here = self.serve_prefetched(&n);
            let here = here.or_else(|| self.seek_here(&n));
            let here = here.or_else(|| self.serve_task_dir(&n));
            let here = here.or_else(|| self.legacy_capabilities(&n));
            if let Some(answer) = here.or_else(|| self.serve_directory_end(&n)) {
                self.give(&n, answer, "answered here");
                return Held::Answered;
            }
            if let Some(answer) = self.serve_read_ahead(&n).await {
                self.give(&n, answer, "answered from a read ahead");
                return Held::Answered;
            }
            if let Some(answer) = self.serve_lookup_ahead(&n, ptrs).await {
                self.give(&n, answer, "answered from lookups ahead");
                return Held::Answered;
            }
        }
        if route == Route::Special(Special::MmapFile) {
            if let Some(answer) = self.map_prefetched(&n) {
                self.give(&n, answer, "mapped as the open said");
                return Held::Answered;
            }
        }
        if route == Route::Special(Special::Exec) {
            if let Some(answer) = self.serve_exec_ahead(&n).await {
                self.give(&n, answer, "refused from lookups ahead");
                return Held::Answered;
            }
        }
        if !matches!(route, Route::Refuse { .. }) {
            self.role.write_back_mapped(&self.member).await;
        }
        self.member.drop_read_ahead();
        if let Ok(mut ahead) = self.member.lookups_ahead.lock() {
            *ahead = None;
        }
        self.member.note_sharing(n.nr);
        self.member.note_traffic();
        self.member.send_pending_seek(Some(&n));
        let answer = match route {
            Route::Forward(ptrs) => self.forward(&n, &ptrs).await,
            Route::Special(special) => self.special(&n, special).await,
            Route::Refuse { errno } => {
                let (home_pid, syscall, nr) = (self.home_pid, syscall::name(n.nr), n.nr);
                if self.member.refused.insert(n.nr, ()).is_none() {
                    warn!(
                        home_pid,
                        syscall,
                        nr,
                        "unsupported syscall refused with errno {errno} (said once per process)"
                    );
                } else {
                    debug!(
                        home_pid,
                        syscall, nr, "unsupported syscall refused with errno {errno}"
                    );
                }
                Ok(Answer::Errno(errno))
            }
        };
        let answer = answer.unwrap_or(Answer::Errno(libc::EIO));
        let counted = self.member.answer_counted.compare_exchange(
            n.id,
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let traffic = match counted {
            Ok(_) => self.member.traffic(),
            Err(_) => self.member.note_traffic(),
        };
        self.member.arm_prefetched(n.id, traffic);
        if self.member.parked.load(Ordering::SeqCst) == n.tid {
            return Held::Unanswered;
        }
        // Interrupted at home for a move: unanswered, the call runs again
        // from its start on the next host.
        if answer == Answer::Errno(libc::EINTR) && !*self.member.gate.borrow() {
            return Held::Unanswered;
        }
        self.give(&n, answer, "answered");
        Held::Answered
    }

    /// Gives the guest thread its answer; `how` names it in the trace.
    fn give(&self, n: &Notification, answer: Answer, how: &str) {
        trace!(
            home_pid = self.home_pid,
            tid = n.tid,
            syscall = syscall::name(n.nr),
            ?answer,
            "{how}"
        );
        if let Err(error) = self.listener.answer(n.id, answer) {
            debug!("answering {}: {error}", syscall::name(n.nr));
        }
    }

    async fn special(&self, n: &Notification, special: Special) -> Result<Answer, HomeGone> {
        match special {
            Special::Getpid => Ok(Answer::Value(self.home_pid as i64)),
            Special::Gettid => Ok(Answer::Value(if n.tid == self.guest_pid {
                self.home_pid as i64
            } else {
                innermost_pid(n.tid).unwrap_or(n.tid) as i64
            })),
            Special::MmapFile => self.mmap_file(n).await,
            Special::ReadVector | Special::WriteVector => self.vector_io(n, special).await,
            Special::Fork => self.fork(n).await,
            Special::Exec => self.exec(n).await,
            Special::Message => self.message(n).await,
            // Taken before any member is looked for (see `HostRole::handle`).
            Special::Exit => Ok(Answer::Continue),
            Special::ChildSignal => self.child_signal(n).await,
            Special::Affinity => Ok(self.other_process(n)),
            Special::Sandbox => Ok(self.sandbox(n)),
        }
    }

    /// `seccomp`, or `prctl` of the seccomp mode, `no_new_privs` or the
    /// name (see [`Special::Sandbox`]): answered with the program's own,
    /// checked as the kernel checks them; a name is taken here and shown
    /// at home ([`Self::name_at_home`]). A filter of the program's is installed
    /// here, over homing's: the kernel takes the strictest of all filters'
    /// answers, so a call it refuses is refused, and one it lets through
    /// goes home as before.
    fn sandbox(&self, n: &Notification) -> Answer {
        // prctl's arguments past the option, from `from` on, are all 0.
        let zero_from = |from: usize| n.args[from..5].iter().all(|&arg| arg == 0);
        if n.nr as i64 == libc::SYS_seccomp {
            return self.install_filter(n, n.args[0] == libc::SECCOMP_SET_MODE_FILTER as u64);
        }
        match n.args[0] as i32 {
            libc::PR_GET_NO_NEW_PRIVS if zero_from(1) => {
                Answer::Value(i64::from(self.member.no_new_privs()))
            }
            libc::PR_SET_NO_NEW_PRIVS if n.args[1] == 1 && zero_from(2) => {
                self.member.set_no_new_privs(true);
                Answer::Value(0)
            }
            libc::PR_GET_SECCOMP => Answer::Value(own_seccomp_mode(n.tid)),
            libc::PR_SET_SECCOMP => {
                self.install_filter(n, n.args[1] == libc::SECCOMP_MODE_FILTER as u64)
            }
            libc::PR_SET_NAME => {
                self.name_at_home(n);
                Answer::Continue
            }
            _ => Answer::Errno(libc::EINVAL),
        }
    }

    /// The main thread's new name (`prctl(PR_SET_NAME)`, which then runs
    /// here) goes home for the deputy to take ([`syscall::SET_NAME`]),
    /// unanswered, ahead of the program's next call there.
    fn name_at_home(&self, n: &Notification) {
        if n.tid != self.guest_pid {
            return;
        }
        // The kernel takes what comes before a NUL, 15 bytes at most.
        let memory = self.memory(n);
        let read = memory.read_cstr(n.args[1], 16);
        let Ok(name) = read.or_else(|_| memory.read(n.args[1], 15)) else {
            return;
        };
        let call = SyscallCall {
            nr: syscall::SET_NAME,
            args: [0; 6],
            inputs: vec![ArgData {
                index: 0,
                bytes: name.into_iter().take_while(|&b| b != 0).take(15).collect(),
            }],
        };
        self.member.calls.hold(n.tid, call);
    }

    /// A filter goes in only where the kernel would let the program at
    /// home: with `no_new_privs` of its own, or `CAP_SYS_ADMIN`. The
    /// guest has `no_new_privs` anyway, which the kernel looks at here.
    /// Strict mode the kernel refuses (the guest is in filter mode).
    fn install_filter(&self, n: &Notification, filter: bool) -> Answer {
        const CAP_SYS_ADMIN: u32 = 21;
        let admin = || {
            homing_shim::process::status_field(n.tid, "CapEff:")
                .and_then(|caps| u64::from_str_radix(&caps, 16).ok())
                .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
        };
        if filter && !self.member.no_new_privs() && !admin() {
            return Answer::Errno(libc::EACCES);
        }
        Answer::Continue
    }

    /// A `capget` or `capset` of the calling thread itself by its id (libcap
    /// names it so) asks home for the calling thread's own, which there is
    /// the deputy's thread that runs its calls, whose id is another (the
    /// kernel refuses a `capset` of any thread but the caller's): its id
    /// becomes 0, which names the caller. Returns the id, to be put back
    /// in the header the call writes back.
    fn own_capabilities(&self, n: &Notification, inputs: &mut [ArgData]) -> Option<i32> {
        if ![libc::SYS_capget, libc::SYS_capset].contains(&(n.nr as i64)) {
            return None;
        }
        let own = if n.tid == self.guest_pid {
            self.home_pid
        } else {
            innermost_pid(n.tid).unwrap_or(n.tid)
        };
        let header = inputs.iter_mut().find(|input| input.index == 0)?;
        let id = header.bytes.get_mut(4..8)?;
        if id != own.to_ne_bytes() {
            return None;
        }
        id.fill(0);
        Some(own)
    }

    /// `capget` or `capset` of the legacy version 1, whose data is half
    /// the size the table sends home: it runs here, where the guest has
    /// the capabilities of home's user.
    fn legacy_capabilities(&self, n: &Notification) -> Option<Answer> {
        if ![libc::SYS_capget, libc::SYS_capset].contains(&(n.nr as i64)) || n.args[0] == 0 {
            return None;
        }
        let version = self.memory(n).read(n.args[0], 4).ok()?;
        let version = u32::from_ne_bytes(version.try_into().ok()?);
        (version == syscall::CAPABILITY_VERSION_1).then_some(Answer::Continue)
    }

    /// `sched_getaffinity` or `sched_setaffinity` of another process: it
    /// runs here. Reading another's is a call that may tell the program
    /// something, counted as every call that reaches here is; setting
    /// another's may tell that process something, which counts for every
    /// family (see [`Member::traffic`]), before it is set.
    fn other_process(&self, n: &Notification) -> Answer {
        if n.nr as i64 == libc::SYS_sched_setaffinity {
            CROSSED_FAMILIES.fetch_add(1, Ordering::SeqCst);
        }
        Answer::Continue
    }

    /// Executes the guest's call at home for as long as the guest thread
    /// waits for it. A signal can take the thread away (its handler runs,
    /// the syscall restarts as a new notification): the call at home is then
    /// interrupted, so that it neither blocks the thread's later calls nor
    /// consumes data (a tty line, pipe bytes) meant for them.
    async fn call_while_waited_for(
        &self,
        n: &Notification,
        mut call: SyscallCall,
        keep_late: bool,
        lookups_ahead: Vec<LookupKey>,
    ) -> Result<Waited, HomeGone> {
        // ppoll/pselect/epoll_pwait wait with a temporary signal mask that
        // belongs on the host, where signals are delivered: a signal pending
        // here that the mask lets through ends the wait, as the kernel
        // would end it.
        let wait_mask = self.temporary_mask(n);
        let let_through = |mask: u64| {
            homing_shim::process::signals(n.tid)
                .is_some_and(|s| (s.own_pending | s.shared_pending) & !mask != 0)
        };
        if let Some(mask) = wait_mask.filter(|mask| let_through(*mask)) {
            return Ok(Waited::SignalLetThrough(mask));
        }
        // A read of a signalfd: a signal it asks for that was raised here
        // (a timer's) is pending here, not at home.
        let signals_read = self.signalfd_read(n);
        let pending_here = |signals: u64| pending_for_thread(n.tid, signals);
        if let Some(signals) = signals_read.filter(|&signals| pending_here(signals)) {
            return Ok(Waited::SignalsHere(signals));
        }
        // A wait on fds among which is such a signalfd: ready already, it
        // only looks at home's fds (see `crate::signalfd_wait`).
        let memory = self.memory(n);
        let read = |addr, len| memory.read(addr, len).ok();
        let signalfds_waited = self.member.signalfds_waited(n, read);
        let signalfds_ready = || {
            if signalfds_waited.is_empty() {
                return Vec::new();
            }
            // One look at the thread's signals for all of them.
            let pending = signals_pending_for_thread(n.tid);
            let watches = signalfds_waited.iter();
            let ready = watches.filter(|watch| watch.signals & pending != 0);
            ready.copied().collect::<Vec<_>>()
        };
        let hidden_timeout = match signalfds_ready().is_empty() {
            true => None,
            false => crate::signalfd_wait::without_waiting(&mut call),
        };
        let with_signalfds = |mut result: syscall::SyscallResult| {
            if signalfds_waited.is_empty() {
                return result;
            }
            if let Some(index) = hidden_timeout {
                result.outputs.retain(|output| output.index != index);
            }
            let ready = signalfds_ready();
            crate::signalfd_wait::with_ready(n.nr, &n.args, result, &ready, read)
        };
        let (id, answer) = self.calls.start(n.tid, call)?;
        self.ask_lookups_ahead(n, lookups_ahead);
        tokio::pin!(answer);
        let interruptible = wait_mask.is_none() && may_block(n.nr);
        let waits = is_wait(n.nr);
        let started = std::time::Instant::now();
        let _out = self.role.still_waiting.call_out();
        let abandoned = async {
            let mut shared_seen = false;
            loop {
                let woken = SIGNALLED.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                tokio::select! {
                    biased;
                    _ = self.role.still_waiting.next_tick() => {}
                    _ = &mut woken => {}
                }
                // Its thread waits for this call: a signal can end no other.
                self.member.give_signals_for_a_call();
                if !self.listener.is_pending(n.id) {
                    return Watched::Ended(Waited::Left(None));
                }
                if let Some(mask) = wait_mask.filter(|mask| let_through(*mask)) {
                    return Watched::Ended(Waited::SignalLetThrough(mask));
                }
                if let Some(signals) = signals_read.filter(|&signals| pending_here(signals)) {
                    return Watched::SignalsHere(signals);
                }
                if !signalfds_waited.is_empty() && !signalfds_ready().is_empty() {
                    return Watched::SignalfdReady;
                }
                if !interruptible {
                    continue;
                }
                // A child's end reaches its parent here (SIGCHLD) before
                // home has seen it: a wait for it is about to be answered,
                // as at home, where the signal comes with the child ready.
                let disregarded = match waits && started.elapsed() < CHILD_END_REACHES_HOME {
                    true => homing_shim::process::signal_bit(libc::SIGCHLD),
                    false => 0,
                };
                match signal_waiting(n.tid, disregarded) {
                    Some(SignalWaiting::ForThisThread) => {
                        return Watched::SignalHeldBack { own_signal: true }
                    }
                    // Another thread may take it: only one still there a
                    // poll later is surely held up by this wait or another.
                    Some(SignalWaiting::ForTheProcess) if shared_seen => {
                        return Watched::SignalHeldBack { own_signal: false }
                    }
                    Some(SignalWaiting::ForTheProcess) => shared_seen = true,
                    None => shared_seen = false,
                }
            }
        };
        // In order: a random start costs a random number on every call.
        let outcome = tokio::select! {
            biased;
            result = &mut answer => {
                return result.map(|r| Waited::Done(with_signalfds(r))).map_err(|_| HomeGone)
            }
            outcome = abandoned => outcome,
        };
        let outcome = match outcome {
            Watched::Ended(outcome) => outcome,
            Watched::SignalHeldBack { own_signal } => {
                // Home's kernel ends the call as it would end it for a
                // signal there, or lets it finish if it cannot be.
                self.calls.interrupt(id);
                let result = answer.await.map_err(|_| HomeGone)?;
                return Ok(Waited::Done(interrupted(n.nr, result, own_signal)));
            }
            Watched::SignalsHere(signals) => {
                // What home's read took before it was ended is the answer;
                // if nothing, the signals here are.
                self.calls.interrupt(id);
                let result = answer.await.map_err(|_| HomeGone)?;
                return Ok(match result.ret {
                    ret if ret == -i64::from(libc::EINTR) => Waited::SignalsHere(signals),
                    _ => Waited::Done(result),
                });
            }
            Watched::SignalfdReady => {
                // Home's kernel looks at every fd once more before it
                // returns EINTR: what was ready there comes too.
                self.calls.interrupt(id);
                let result = answer.await.map_err(|_| HomeGone)?;
                return Ok(Waited::Done(with_signalfds(result)));
            }
        };
        if keep_late && matches!(outcome, Waited::Left(_)) {
            self.calls.interrupt(id);
            if let Ok(Ok(late)) = tokio::time::timeout(LATE_ANSWER_WAIT, &mut answer).await {
                return Ok(Waited::Left(Some(late)));
            }
        }
        self.calls.cancel(id);
        Ok(outcome)
    }

    /// The signals a signalfd asks for that may be raised here (see
    /// [`raised_here`]), if `n` is a `read` of one of the program's (see
    /// [`Member::signalfds`]).
    fn signalfd_read(&self, n: &Notification) -> Option<u64> {
        if n.nr as i64 != libc::SYS_read {
            return None;
        }
        let signalfds = self.member.signalfds.lock().ok()?;
        let signals = raised_here(*signalfds.get(&(n.args[0] as i32))?);
        (signals != 0).then_some(signals)
    }

    /// Reads a signalfd of `signals`, one of which is pending here (a
    /// signal raised here: a timer's, say), the way the kernel reads it:
    /// a signalfd of the agent's for the same signals, put at the fd's
    /// number in the guest, is read by the guest itself, and so takes the
    /// guest's own pending signals. Signals pending at home come with the
    /// next read. The stand-in stays, unseen: every call on that number
    /// still goes home.
    fn read_signals_here(&self, n: &Notification, signals: u64) -> Answer {
        let placed = homing_shim::process::signalfd(signals).and_then(|local| {
            (self.listener).install_fd(n.id, local.as_fd(), n.args[0] as i32, true)
        });
        match placed {
            Ok(()) => Answer::Continue,
            Err(error) => {
                warn!(
                    home_pid = self.home_pid,
                    "a signal raised here cannot be read from its signalfd: {error}"
                );
                Answer::Errno(libc::EINTR)
            }
        }
    }

    /// Ends a wait whose temporary mask lets a pending signal through the
    /// way the kernel would: the wait itself runs here, on placeholders
    /// that are never ready standing in for its home fds, so the kernel
    /// sets the mask, finds the signal, runs the handler, returns EINTR and
    /// puts the thread's own mask back. EINTR alone would leave the signal
    /// blocked and pending: the handler would never run, and every later
    /// wait would end at once.
    fn let_signal_through(&self, n: &Notification, mask: u64) -> Answer {
        // Only a signal pending for this very thread is sure to be there
        // when the wait runs; a process-wide one may go to another thread,
        // and the wait on placeholders would then never end.
        let placed = pending_for_thread(n.tid, !mask)
            && waited_fds(&self.memory(n), n).is_some_and(|fds| {
                fds.into_iter().all(|fd| {
                    self.listener
                        .install_fd(n.id, self.role.never_ready.as_fd(), fd, true)
                        .is_ok()
                })
            });
        if placed {
            Answer::Continue
        } else {
            Answer::Errno(libc::EINTR)
        }
    }

    /// The temporary signal mask a waiting syscall carries, if any.
    fn temporary_mask(&self, n: &Notification) -> Option<u64> {
        let memory = ProcessMemory::new(n.tid);
        let read_u64 = |addr: u64| -> Option<u64> {
            let bytes = memory.read(addr, 8).ok()?;
            Some(u64::from_ne_bytes(bytes.try_into().ok()?))
        };
        let mask_at = match n.nr as i64 {
            libc::SYS_ppoll => n.args[3],
            libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => n.args[4],
            // pselect6's sixth argument points at {sigset pointer, size}.
            libc::SYS_pselect6 if n.args[5] != 0 => read_u64(n.args[5])?,
            _ => 0,
        };
        if mask_at == 0 {
            return None;
        }
        read_u64(mask_at)
    }

    /// Answers a `read`, `pread64` or `fstat` of the file the program has
    /// just opened for reading, the look whether it is a terminal and
    /// where its offset is (as Python's `open` asks of every file and
    /// module), from what home sent with the open, when
    /// nothing has gone home or come from there since (the program can
    /// have learned nothing that the file changed) and that was moments
    /// ago. A read moves the fd's offset at home by an `lseek` sent,
    /// unanswered, before the program's next call home (see
    /// [`Member::send_pending_seek`]).
    fn serve_prefetched(&self, n: &Notification) -> Option<Answer> {
        let mut slot = self.member.prefetched.lock().ok()?;
        let prefetched = slot.as_mut()?;
        let fresh = nothing_learned_since(&self.member, prefetched.armed, prefetched.at);
        if !fresh || n.args[0] as i32 != prefetched.fd {
            return None;
        }
        let memory = ProcessMemory::new(n.tid);
        // The file ends within the data: a read past it gets what is left.
        let whole = prefetched.data.len() < syscall::PREFETCH_LEN;
        let within = |at: usize, count: usize| -> Option<usize> {
            let left = prefetched.data.len().checked_sub(at)?;
            if count <= left {
                Some(count)
            } else {
                whole.then_some(left)
            }
        };
        match n.nr as i64 {
            libc::SYS_read => {
                let at = prefetched.offset;
                let given = within(at, n.args[2] as usize)?;
                if memory
                    .write(n.args[1], &prefetched.data[at..at + given])
                    .is_err()
                {
                    return Some(Answer::Errno(libc::EFAULT));
                }
                prefetched.offset += given;
                if given > 0 {
                    let offset = prefetched.offset as u64;
                    self.member.set_pending_seek(prefetched.fd, offset, n.tid);
                }
                Some(Answer::Value(given as i64))
            }
            libc::SYS_pread64 => {
                // Past the end of a whole file, a pread reads nothing.
                let from = usize::try_from(n.args[3] as i64)
                    .ok()?
                    .min(prefetched.data.len());
                let given = within(from, n.args[2] as usize)?;
                if memory
                    .write(n.args[1], &prefetched.data[from..from + given])
                    .is_err()
                {
                    return Some(Answer::Errno(libc::EFAULT));
                }
                Some(Answer::Value(given as i64))
            }
            libc::SYS_fstat | libc::SYS_newfstatat => {
                let path_start = || memory.read(n.args[1], 1).ok()?.first().copied();
                let buffer = n.args[usize::from(fd_stat_output(n, path_start)?)];
                if memory.write(buffer, &prefetched.stat).is_err() {
                    return Some(Answer::Errno(libc::EFAULT));
                }
                let file = HomeFile::from_stat(&prefetched.stat)?;
                if let Ok(mut last) = self.member.last_fstat.lock() {
                    *last = Some((
                        prefetched.fd,
                        file,
                        self.member.calls_begun.load(Ordering::SeqCst),
                    ));
                }
                Some(Answer::Value(0))
            }
            // Whether it is a terminal (glibc's `isatty`, Python's `open`
            // of every file and module): a regular file is none.
            libc::SYS_ioctl if [libc::TCGETS, libc::TIOCGWINSZ].contains(&n.args[1]) => {
                Some(Answer::Errno(libc::ENOTTY))
            }
            // Where the fd is: where the reads answered here left it.
            libc::SYS_lseek if n.args[1] == 0 && n.args[2] == libc::SEEK_CUR as u64 => {
                Some(Answer::Value(prefetched.offset as i64))
            }
            _ => None,
        }
    }

    /// Answers a `getdents64` of the program's own task directory with
    /// its threads here (see [`crate::task_dir`]).
    fn serve_task_dir(&self, n: &Notification) -> Option<Answer> {
        if n.nr as i64 != libc::SYS_getdents64 {
            return None;
        }
        let [fd, buffer, room, ..] = n.args;
        let listed = self.member.task_dirs.lock().ok()?.list(
            fd as i32,
            room as usize,
            self.guest_pid,
            self.home_pid,
        )?;
        Some(match listed {
            Err(errno) => Answer::Errno(errno),
            Ok(entries) => match ProcessMemory::new(n.tid).write(buffer, &entries) {
                Ok(()) => Answer::Value(entries.len() as i64),
                Err(_) => Answer::Errno(libc::EFAULT),
            },
        })
    }

    /// Answers a `getdents64` of the directory the program's last one
    /// listed to its end with that end (0), when nothing has gone home or
    /// come from there since that was answered, moments ago: a call at
    /// home would find the same (under the rule of [`Self::serve_prefetched`]).
    /// Nothing moves: home's listing is at its end already.
    fn serve_directory_end(&self, n: &Notification) -> Option<Answer> {
        if n.nr as i64 != libc::SYS_getdents64 {
            return None;
        }
        let end = self.member.directory_end.lock().ok()?;
        let end = end.as_ref()?;
        let fresh = nothing_learned_since(&self.member, end.armed, end.at);
        (fresh && end.fd == n.args[0] as i32).then_some(Answer::Value(0))
    }

    /// Answers an `lseek` from the start of a regular file the program
    /// opened, to an offset within the size the file had: it can only
    /// return that offset. The offset goes home unanswered before the
    /// program's next call home, as a read's answered here does (see
    /// [`Member::send_pending_seek`]). Only for a program of one thread,
    /// whose next call cannot overtake the seek.
    fn seek_here(&self, n: &Notification) -> Option<Answer> {
        let [fd, offset, whence, ..] = n.args;
        if n.nr as i64 != libc::SYS_lseek || whence != libc::SEEK_SET as u64 {
            return None;
        }
        let fd = fd as i32;
        let size = self.member.seekable.lock().ok()?.get(&fd)?.size;
        if offset > size || !homing_shim::process::single_threaded(n.tid) {
            return None;
        }
        // What was read ahead was read from elsewhere.
        self.member.drop_read_ahead();
        // A read answered from what the open brought goes on from here.
        if let Ok(mut prefetched) = self.member.prefetched.lock() {
            if let Some(prefetched) = prefetched.as_mut().filter(|p| p.fd == fd) {
                prefetched.offset = usize::try_from(offset).ok()?;
            }
        }
        self.member.set_pending_seek(fd, offset, n.tid);
        Some(Answer::Value(offset as i64))
    }

    /// `rt_sigaction` of SIGCHLD runs here, where the program's signals
    /// are; its deputy at home takes the same stand on the zombies of its
    /// children, the deputies of the program's: ignored, or
    /// `SA_NOCLDWAIT`, they leave none, and a wait there finds no child
    /// once all have ended, as the program's would at home.
    async fn child_signal(&self, n: &Notification) -> Result<Answer, HomeGone> {
        if n.args[0] != libc::SIGCHLD as u64 || n.args[1] == 0 {
            return Ok(Answer::Continue);
        }
        // The kernel's struct sigaction: handler, then flags. One that
        // cannot be read gets EFAULT from the kernel here.
        let Ok(action) = ProcessMemory::new(n.tid).read(n.args[1], 16) else {
            return Ok(Answer::Continue);
        };
        let word =
            |at: usize| u64::from_ne_bytes(action[at..at + 8].try_into().expect("8 bytes of 16"));
        let ignore = word(0) == libc::SIG_IGN as u64;
        let no_wait = word(8) & libc::SA_NOCLDWAIT as u64 != 0;
        let stand = SyscallCall {
            nr: libc::SYS_rt_sigaction as u64,
            args: [libc::SIGCHLD as u64, ignore as u64, no_wait as u64, 0, 0, 0],
            inputs: vec![],
        };
        let told = self.calls.call(n.tid, stand).await?;
        if told.ret < 0 {
            warn!(
                home_pid = self.home_pid,
                errno = -told.ret,
                "the deputy did not take the program's SIGCHLD stand"
            );
        }
        Ok(Answer::Continue)
    }

    /// The deputy forks at home first; its child's pid is the new process's
    /// identity. Then the guest's own fork runs here.
    ///
    /// A signal that comes in while the kernel forks makes it give up and
    /// run the fork again once the handler has run (`ERESTARTNOINTR`): the
    /// same thread then forks again with no child made. Its child at home
    /// is still waiting for one: it is the one the fork gets, not another.
    async fn fork(&self, n: &Notification) -> Result<Answer, HomeGone> {
        let (child_home, attempt) = match self.role.fork_again(self.guest_pid, n.tid) {
            Some(again) => again,
            None => {
                let request = SyscallCall {
                    nr: libc::SYS_fork as u64,
                    args: [0; 6],
                    inputs: vec![],
                };
                let result = self.calls.call(n.tid, request).await?;
                if result.ret < 0 {
                    return Ok(errno_of(result.ret));
                }
                let child_home = result.ret as i32;
                self.role.note_fork_parent(&self.member, child_home);
                if let Ok(mut pending) = self.role.pending_forks.lock() {
                    pending.push_back(PendingFork {
                        parent_host: self.guest_pid,
                        tid: n.tid,
                        home_node: self.home_node.clone(),
                        child_home,
                        attempt: 0,
                    });
                }
                (child_home, 0)
            }
        };
        let Some(pids) = self.role.home_pids(&self.home_node) else {
            return Ok(Answer::Continue);
        };
        // The child's pid here is its home pid: the fork returns the same
        // pid to the program as it would at home.
        let _turn = pids.forks.lock().await;
        if let Err(error) = pids.namespace.expect_next(child_home) {
            debug!(home_pid = self.home_pid, child_home, "{error}");
        }
        let before = thread_children(self.guest_pid, n.tid);
        if let Err(error) = self.listener.answer(n.id, Answer::Continue) {
            debug!(home_pid = self.home_pid, "answering a fork: {error}");
            return Ok(Answer::Given);
        }
        // The next fork may set the next pid once this one has its child
        // (or has failed, which the wait's end stands for). The child
        // comes within tens of microseconds: the runtime's timers, which
        // round a sleep up to a millisecond, would hold the next fork (a
        // `make -j` starts them in bursts) for much longer than that.
        // A child that ends at once may have been reaped before a look
        // finds it among the children: it was claimed as it came (its
        // end, if nothing earlier, is a call), which ends the wait too.
        let began = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(1);
        let unclaimed = || {
            self.role
                .fork_unclaimed(self.guest_pid, child_home, attempt)
        };
        while thread_children(self.guest_pid, n.tid) == before
            && unclaimed()
            && began.elapsed() < FORK_TURN
        {
            if began.elapsed() < FORK_LOOKS_AT_ONCE {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
        if began.elapsed() >= FORK_TURN {
            warn!(
                home_pid = self.home_pid,
                child_home,
                "a fork's child was not seen within its turn; the next fork waited for it"
            );
        }
        Ok(Answer::Given)
    }

    /// execve: the new program comes from home, and runs in the guest's
    /// own process ([`Self::exec_in_place`]) or, where that cannot be, in
    /// a fresh guest process as the same member, the old one going away
    /// unseen.
    async fn exec(&self, n: &Notification) -> Result<Answer, HomeGone> {
        let exec = ExecCall::of(n);
        if let Some((_, expected)) = self.role.injected_execs.remove(&n.tid) {
            let path = ProcessMemory::new(n.tid).read_cstr(exec.path_at, syscall::MAX_CSTR);
            if path.is_ok_and(|path| path.strip_suffix(&[0]) == Some(&expected[..])) {
                return Ok(Answer::Continue);
            }
        }
        // Its close-on-exec fds close at home: which ones is not known here.
        self.member.forget_read_only(n.nr, &n.args);
        let memory = ProcessMemory::new(n.tid);
        let Ok(mut path) = memory.read_cstr(exec.path_at, syscall::MAX_CSTR) else {
            self.member.learn_lookup(None);
            return Ok(Answer::Errno(libc::EFAULT));
        };
        // A program that execs itself again through /proc gets itself.
        if self.names_own_exe(&path) {
            if let Ok(exe) = self.member.exe.lock() {
                if !exe.is_empty() {
                    path = exe.iter().copied().chain([0]).collect();
                }
            }
        }
        path.pop();
        let (argv, envp) = match (
            read_strings(&memory, exec.argv_at),
            read_strings(&memory, exec.envp_at),
        ) {
            (Ok(argv), Ok(envp)) => (argv, envp),
            (Err(errno), _) | (_, Err(errno)) => return Ok(Answer::Errno(errno)),
        };
        let by_fd = path.is_empty() && exec.flags & libc::AT_EMPTY_PATH != 0;
        let (path, named, through_fd) = match self.exec_target(n.tid, &exec, path).await? {
            Ok(target) => target,
            Err(errno) => return Ok(Answer::Errno(errno)),
        };
        let key = LookupKey::exec(&path);
        self.member.learn_lookup(Some(key.clone()));
        debug!(home_pid = self.home_pid, path = %String::from_utf8_lossy(&path), "execve");
        // Permission to execute is home's to decide: the program is
        // opened there for it only where it may run (see `fetch_program`).
        if exec.flags & AT_EXECVE_CHECK != 0 {
            return self.may_exec(n.tid, &path).await;
        }
        let command_line: Vec<u8> = argv
            .iter()
            .flat_map(|a| a.iter().copied().chain([0]))
            .collect();
        // The places a program is looked for in turn (a `PATH`) go
        // behind the first, each a `stat` standing for the exec; predicted
        // only then, so that the pace counts only lookups that went.
        let behind = || self.ask_lookups_ahead(n, self.predicted_after(n, &key));
        let mut program = match self
            .role
            .prepare(
                &self.member,
                n.tid,
                &path,
                (&named, through_fd),
                argv,
                behind,
            )
            .await
        {
            Ok(program) => program,
            Err(error) => return Ok(Answer::Errno(error.errno())),
        };
        // An exec of an fd itself is named after the file it opens, as the
        // kernel names it (since Linux 6.12), not after the fd's number.
        if by_fd && !program.home_path.is_empty() {
            program.name = last_component(&program.home_path).to_vec();
        }
        debug!(home_pid = self.home_pid, local = %program.local.display(), "execve: program ready");
        // What the deputy shows at home from now on, as the exec would.
        let shown = vec![
            ArgData {
                index: 1,
                bytes: command_line,
            },
            ArgData {
                index: 2,
                bytes: program.name.clone(),
            },
        ];
        if !self.listener.is_pending(n.id) {
            return Ok(Answer::Errno(libc::EINTR));
        }
        // From here the old program is gone: its close-on-exec fds close at
        // home. Nothing waits for that: the deputy does it as the call
        // comes, before it reads the new program's first call, which
        // travels behind it.
        let exec_done = SyscallCall {
            nr: libc::SYS_execve as u64,
            args: [0; 6],
            inputs: shown,
        };
        self.calls.start_unanswered(n.tid, exec_done)?;
        if let Some(answer) = self.exec_in_place(n, &program, &envp).await {
            return Ok(answer);
        }
        let old = self.guest_pid;
        let inherited = CarriedOver {
            signals: homing_shim::process::signals(n.tid)
                .map_or((0, 0), |signals| (signals.ignored, signals.blocked)),
            limits: homing_shim::process::limits(old).unwrap_or_default(),
            nice: homing_shim::process::nice(n.tid).unwrap_or(0),
            scheduling: homing_shim::process::scheduling_to_carry(n.tid),
        };
        let parked = self.park(old);
        if !parked {
            // The agent's own child goes before the new process starts, so
            // that the new one can have its pid here (the home pid). Its
            // end is not the member's.
            self.member.host_pid.store(0, Ordering::Relaxed);
            self.role.by_host.remove(&old);
            signal_guest(old, libc::SIGKILL);
            wait_until_reaped(old).await;
        }
        match self
            .role
            .start_process(&self.member, program, &envp, inherited)
        {
            Ok(new) => {
                self.role.by_host.remove(&old);
                self.member.leave_family();
                debug!(home_pid = self.home_pid, old, new, "exec: guest replaced");
                Ok(Answer::Value(0))
            }
            Err(error) => {
                warn!(
                    home_pid = self.home_pid,
                    "exec failed after the point of no return: {error}"
                );
                if parked {
                    self.member.parked.store(0, Ordering::SeqCst);
                    signal_guest(old, libc::SIGKILL);
                } else {
                    // Its end, unseen a moment ago, is the member's now.
                    self.member.host_pid.store(old, Ordering::Relaxed);
                    let _ = self
                        .member
                        .exits
                        .send((old, GuestExit::Signal(libc::SIGKILL)));
                }
                Ok(Answer::Errno(libc::ENOEXEC))
            }
        }
    }

    /// Execs `program` in the guest's own process, by an `execve` injected
    /// into it: the program keeps the process's pid (its home pid) and its
    /// place as its parent's child, as an exec does. `None` where it
    /// cannot be done (the process has other threads, or it failed once
    /// for this thread): the process is then replaced instead.
    async fn exec_in_place(
        &self,
        n: &Notification,
        program: &Program,
        envp: &[Vec<u8>],
    ) -> Option<Answer> {
        if self.role.not_in_place.remove(&n.tid).is_some()
            || n.tid != self.guest_pid
            || !homing_shim::process::single_threaded(n.tid)
        {
            return None;
        }
        let local = self.role.cache.named(&program.local, &program.name);
        let path = local.into_os_string().into_encoded_bytes();
        let Ok(exe) = CString::new(path.clone()) else {
            return None;
        };
        let (argv, envp) = (c_strings(&program.argv), c_strings(envp));
        self.role.injected_execs.insert(n.tid, path);
        self.member.expect_header_fix(program.header_fix);
        let tid = n.tid;
        let member = self.member.clone();
        let done = tokio::task::spawn_blocking(move || {
            let argv: Vec<&std::ffi::CStr> = argv.iter().map(|a| a.as_c_str()).collect();
            let release = || member.release_calls(tid);
            homing_shim::ptrace::exec_from_syscall(tid, &exe, &argv, &envp, &release)
        })
        .await;
        self.role.injected_execs.remove(&n.tid);
        match done {
            Ok(Ok(())) => {
                if let Ok(mut command) = self.member.command.lock() {
                    *command = AwayProcess::command_line(&program.argv);
                }
                if let Ok(mut exe) = self.member.exe.lock() {
                    *exe = program.home_path.clone();
                }
                self.member.leave_family();
                debug!(
                    home_pid = self.home_pid,
                    pid = self.guest_pid,
                    "exec: in place"
                );
                // Its own execve, interrupted, is gone with the old program.
                Some(Answer::Given)
            }
            outcome if self.listener.is_pending(n.id) => {
                // Never interrupted: it is replaced right away.
                debug!(
                    home_pid = self.home_pid,
                    "exec in place not begun ({outcome:?})"
                );
                None
            }
            outcome => {
                warn!(
                    home_pid = self.home_pid,
                    "exec in place failed ({outcome:?}); its execve, made again, replaces the process"
                );
                self.role.not_in_place.insert(n.tid, ());
                Some(Answer::Given)
            }
        }
    }

    /// Keeps `old`, a forked child just replaced by its exec, blocked in
    /// that execve (unanswered) until the program ends, if it is its
    /// parent's (a guest's) child: killed now, it would be a zombie whose
    /// status is not the program's.
    fn park(&self, old: i32) -> bool {
        let agent = std::process::id() as i32;
        let forked = homing_shim::process::status_number(old, "PPid:").is_some_and(|p| p != agent);
        let alone = homing_shim::process::single_threaded(old);
        forked
            && alone
            && self
                .member
                .parked
                .compare_exchange(0, old, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// What an exec runs: the path to fetch it by at home, the file name
    /// the kernel would name it by, and the fd it goes through, if any.
    /// An `execveat` relative to an fd, or of the fd itself, goes through
    /// the deputy's `/proc/self/fd` link of that fd, where the kernel
    /// names it `/dev/fd/N/...`. `Err(errno)`: the exec fails before any
    /// program is looked at.
    async fn exec_target(
        &self,
        tid: i32,
        exec: &ExecCall,
        path: Vec<u8>,
    ) -> Result<Result<(Vec<u8>, Vec<u8>, Option<i32>), i32>, HomeGone> {
        if exec.flags & !(libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW | AT_EXECVE_CHECK) != 0 {
            return Ok(Err(libc::EINVAL));
        }
        let empty = path.is_empty();
        if empty && exec.flags & libc::AT_EMPTY_PATH == 0 {
            return Ok(Err(libc::ENOENT));
        }
        let relative = empty || path[0] != b'/';
        if exec.dirfd == libc::AT_FDCWD && !empty || !relative {
            if exec.flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
                if let Err(errno) = self.not_a_link(tid, exec, &path).await? {
                    return Ok(Err(errno));
                }
            }
            return Ok(Ok((path.clone(), path, None)));
        }
        if exec.dirfd < 0 && exec.dirfd != libc::AT_FDCWD {
            return Ok(Err(libc::EBADF));
        }
        // The fd (or what is named relative to it) is looked at first: a
        // bad fd says EBADF, a link not to be followed ELOOP, as the
        // kernel says before it opens anything.
        if let Err(errno) = self.not_a_link(tid, exec, &path).await? {
            return Ok(Err(errno));
        }
        let (at, named, through_fd) = match exec.dirfd {
            libc::AT_FDCWD => (b"/proc/self/cwd".to_vec(), b"/proc/self/cwd".to_vec(), None),
            fd => (
                format!("/proc/self/fd/{fd}").into_bytes(),
                format!("/dev/fd/{fd}").into_bytes(),
                Some(fd),
            ),
        };
        let below = |base: Vec<u8>| match empty {
            true => base,
            false => [&base[..], b"/", &path[..]].concat(),
        };
        Ok(Ok((below(at), below(named), through_fd)))
    }

    /// An `execveat` with `AT_EXECVE_CHECK`: whether the program at `path`
    /// may be run, as home opens it for an exec (a regular file the
    /// caller may execute), running nothing.
    async fn may_exec(&self, tid: i32, path: &[u8]) -> Result<Answer, HomeGone> {
        let opened = match open_program_at_home(&self.calls, tid, path, || {}).await? {
            Ok(opened) => opened,
            Err(errno) => return Ok(Answer::Errno(-errno as i32)),
        };
        match opened {
            Ok(program) => {
                for fd in [Some(program.fd), program.loader.map(|loader| loader.fd)]
                    .into_iter()
                    .flatten()
                {
                    self.calls.close_read_only(tid, fd)?;
                }
                Ok(Answer::Value(0))
            }
            // Home's agent could not take on the caller's credentials.
            Err(errno) if errno == -(libc::ENOSYS as i64) => {
                let allowed = self.calls.may_execute(tid, path).await?;
                Ok(
                    allowed
                        .map_or_else(|errno| Answer::Errno(-errno as i32), |()| Answer::Value(0)),
                )
            }
            Err(errno) => Ok(Answer::Errno(-errno as i32)),
        }
    }

    /// Whether what an `execveat` names is there and, if asked not to
    /// follow it, no symbolic link (ELOOP), looked at home.
    async fn not_a_link(
        &self,
        tid: i32,
        exec: &ExecCall,
        path: &[u8],
    ) -> Result<Result<(), i32>, HomeGone> {
        let flags = exec.flags & (libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW);
        let found = self.calls.stat_at(tid, exec.dirfd, path, flags).await?;
        Ok(match found {
            Err(errno) => Err(-errno as i32),
            Ok(file) if file.mode & libc::S_IFMT == libc::S_IFLNK => Err(libc::ELOOP),
            Ok(_) => Ok(()),
        })
    }

    /// Whether `path` (a C string, its NUL included) names the process's
    /// own executable through `/proc`.
    fn names_own_exe(&self, path: &[u8]) -> bool {
        let path = path.strip_suffix(&[0]).unwrap_or(path);
        let Some(entry) = path
            .strip_prefix(b"/proc/")
            .and_then(|p| p.strip_suffix(b"/exe"))
        else {
            return false;
        };
        entry == b"self" || entry == b"thread-self" || entry == self.home_pid.to_string().as_bytes()
    }

    /// Pids the member learned from fork become home pids on the way home
    /// (they are the same unless the home pid was taken here).
    /// `Err(errno)` for a child already reaped: it is gone.
    async fn translate_in(&self, tid: i32, nr: u64, args: &mut [u64; 6]) -> Result<(), i32> {
        self.wait_for_ended_child(tid, nr, args);
        let positions: &[usize] = match nr as i64 {
            libc::SYS_kill | libc::SYS_wait4 | libc::SYS_getpgid | libc::SYS_getsid => &[0],
            libc::SYS_setpgid => &[0, 1],
            libc::SYS_waitid if args[0] == libc::P_PID as u64 => &[1],
            _ => &[],
        };
        for &at in positions {
            let pid = args[at] as i32;
            if pid <= 0 {
                continue;
            }
            if self.member.reaped.contains_key(&pid) {
                let waits = is_wait(nr);
                return Err(if waits { libc::ECHILD } else { libc::ESRCH });
            }
            if !self.member.children.contains_key(&pid) {
                if let Some(host) = self.unbound_child(pid) {
                    // A child not bound yet (its first syscall has not
                    // reached us, or is being bound now): bind it, or wait
                    // for that.
                    let _ = self.role.member_of(host).await;
                }
            }
            if let Some(child) = self.member.children.get(&pid) {
                args[at] = child.home as u64;
            }
        }
        Ok(())
    }

    /// The program's SIGCHLD comes from here, where its child ended; home
    /// hears of that end a moment later. A wait that must not block
    /// (WNOHANG), made right after the signal, could find the child still
    /// running at home: the program would then wait for a SIGCHLD that
    /// already came. So a wait is made to block, at home, for a child that
    /// has ended here (its end is on its way home): the one the kernel
    /// would reap here, so that [`Self::reaped_here`] can let it.
    fn wait_for_ended_child(&self, tid: i32, nr: u64, args: &mut [u64; 6]) {
        let nohang = libc::WNOHANG as u64;
        let (wanted, options) = match nr as i64 {
            libc::SYS_wait4 => (args[0] as i32, 2),
            libc::SYS_waitid if args[3] & libc::WEXITED as u64 != 0 => match args[0] as u32 {
                libc::P_ALL => (-1, 3),
                libc::P_PID => (args[1] as i32, 3),
                _ => return,
            },
            _ => return,
        };
        if wanted <= 0 && wanted != -1 {
            return;
        }
        let child = if wanted == -1 {
            self.ended_children(tid)
                .into_iter()
                .find_map(|host| self.child_with(|child| child.host == host))
                .map(|(seen, _)| seen)
        } else {
            self.member
                .children
                .get(&wanted)
                .filter(|child| has_ended(child.host))
                .map(|_| wanted)
        };
        let Some(child) = child else {
            return;
        };
        args[options] &= !nohang;
        if nr as i64 == libc::SYS_wait4 {
            args[0] = child as u64;
        } else {
            args[0] = libc::P_PID as u64;
            args[1] = child as u64;
        }
    }

    /// The children that have ended, in the order a wait for any child
    /// looks at them here: the calling thread's, oldest first, then the
    /// other threads'.
    fn ended_children(&self, tid: i32) -> Vec<i32> {
        self.children_here(tid)
            .into_iter()
            .filter(|pid| has_ended(*pid))
            .collect()
    }

    /// The process's children here, by host pid: thread `tid`'s oldest
    /// first, then the other threads'.
    fn children_here(&self, tid: i32) -> Vec<i32> {
        children_of(self.guest_pid, tid)
    }

    /// Whether the child that home reaped (`result` of a `wait4` or
    /// `waitid`) is the one the guest's own wait would reap here, with the
    /// same status where the program sees it: the wait then runs here too,
    /// and the child's process here goes with it instead of staying a
    /// zombie until its parent ends. (A child replaced by its exec ends
    /// with its program's code: see [`Self::park`].)
    fn reaped_here(&self, n: &Notification, result: &homing_proto::syscall::SyscallResult) -> bool {
        let Some((reaped, home_end)) = reaped_at_home(n, result) else {
            return false;
        };
        let Some((seen, child)) = self.child_with(|child| child.home == reaped) else {
            return false;
        };
        let wanted = match n.nr as i64 {
            libc::SYS_wait4 => n.args[0] as i32,
            _ if n.args[0] == libc::P_PID as u64 => n.args[1] as i32,
            _ => -1,
        };
        let first = if wanted == -1 {
            // Held ends are the agent's to take: the wait here passes them by.
            self.ended_children(n.tid)
                .into_iter()
                .find(|ended| !self.member.held_children.contains_key(ended))
                == Some(child.host)
        } else {
            wanted == seen && has_ended(child.host)
        };
        let host_end = || raw_zombie_status(child.host).map(ChildEnd::of_status);
        first && home_end.is_none_or(|home| host_end() == Some(home))
    }

    /// The child that `matches`, and the pid the member knows it by.
    fn child_with(&self, matches: impl Fn(&Child) -> bool) -> Option<(i32, Child)> {
        self.member
            .children
            .iter()
            .find(|entry| matches(entry.value()))
            .map(|entry| (*entry.key(), *entry.value()))
    }

    /// The host pid of the member's child known to it as `seen` that is
    /// not bound to its deputy yet.
    fn unbound_child(&self, seen: i32) -> Option<i32> {
        self.children_here(self.guest_pid)
            .into_iter()
            .find(|&host| innermost_pid(host) == Some(seen))
    }

    /// Child `seen` has been reaped: for the program it is gone.
    fn forget_reaped_child(&self, seen: i32) {
        self.member.children.remove(&seen);
        self.member.reaped.insert(seen, ());
    }

    /// ... and home pids come back as the pids it knows.
    fn translate_out(&self, nr: u64, ret: i64) -> i64 {
        if nr as i64 != libc::SYS_wait4 || ret <= 0 {
            return ret;
        }
        match self.child_with(|child| child.home as i64 == ret) {
            Some((seen, _)) => seen as i64,
            None => ret,
        }
    }

    /// Gives a wait home's answer (`result`), here or by letting the
    /// guest's own wait reap the child here too (see [`Self::reaped_here`]).
    /// The child is gone for the program only once its thread has taken
    /// the answer: a thread that a signal took away first (the SIGCHLD of
    /// that very child, often) gets the answer with its next wait.
    fn deliver_wait(
        &self,
        n: &Notification,
        result: homing_proto::syscall::SyscallResult,
    ) -> Answer {
        // The child home reaped: if its end was held back, the guest
        // hears of it now, in a wait that cannot be cut short, and its
        // own wait here can reap it. Its end queued for a call goes too:
        // given later, it would name whatever process took the pid since.
        if let Some((reaped, _)) = reaped_at_home(n, &result) {
            if let Some((_, child)) = self.child_with(|child| child.home == reaped) {
                if let Ok(mut waiting) = self.member.signals_for_a_call.lock() {
                    waiting.retain(|what| *what != ForACall::ChildEnd(child.host));
                }
                self.member.release_child(child.host);
            }
        }
        let answer = match self.reaped_here(n, &result) {
            true => Answer::Continue,
            false => errno_of(self.translate_out(n.nr, result.ret)),
        };
        if let Ok(false) = self.listener.deliver(n.id, answer) {
            trace!(tid = n.tid, ret = result.ret, "wait undelivered");
            self.member.keep_late_reap(n, result);
            return Answer::Given;
        }
        if let Some((reaped, _)) = reaped_at_home(n, &result) {
            if let Some((seen, _)) = self.child_with(|child| child.home == reaped) {
                self.forget_reaped_child(seen);
            }
        }
        Answer::Given
    }

    /// A signal the program sends itself (`kill` of its own pid, `raise`,
    /// `pthread_kill` of one of its threads) is given here, before the call
    /// returns, as the kernel gives it at home: sent home, it would come
    /// back after the call had returned, and the program might have gone
    /// on (or ended) without it. Its threads other than the first are here
    /// only, named by their tids in the home node's pid namespace. The call
    /// runs as it is when the process's pid here is its home pid; otherwise
    /// the agent sends the signal. Job control signals still go home: the
    /// deputy stops there, for the shell to see.
    fn signal_self(&self, n: &Notification) -> Option<Answer> {
        let (target, thread, signal) = match n.nr as i64 {
            libc::SYS_kill => (n.args[0] as i32, None, n.args[1] as i32),
            libc::SYS_tgkill => (n.args[0] as i32, Some(n.args[1] as i32), n.args[2] as i32),
            libc::SYS_tkill => (self.home_pid, Some(n.args[0] as i32), n.args[1] as i32),
            _ => return None,
        };
        let job_control = [
            libc::SIGSTOP,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGCONT,
        ];
        if target != self.home_pid || job_control.contains(&signal) {
            return None;
        }
        // Asked for by a signalfd of the program's, which is at home: the
        // deputy raises it there, on the process (`tgkill` of the program's
        // first thread included), before the call returns.
        let to_signalfd = self.member.signalfd_signals.load(Ordering::SeqCst)
            & homing_shim::process::signal_bit(signal)
            != 0;
        if to_signalfd && thread.is_none_or(|first| first == self.home_pid) {
            return None;
        }
        let inside = innermost_pid(self.guest_pid);
        // The task here that `thread` names: the first thread by the home pid.
        let task = match thread {
            None => self.guest_pid,
            Some(first) if first == self.home_pid => self.guest_pid,
            Some(other) => homing_shim::process::threads(self.guest_pid)
                .ok()?
                .into_iter()
                .find(|task| *task != self.guest_pid && innermost_pid(*task) == Some(other))?,
        };
        if inside == Some(self.home_pid) {
            return Some(Answer::Continue);
        }
        let sent = match thread {
            None => homing_shim::process::send_signal(self.guest_pid, signal),
            Some(_) => homing_shim::process::send_thread_signal(self.guest_pid, task, signal),
        };
        Some(match sent {
            Ok(()) => Answer::Value(0),
            Err(error) => Answer::Errno(error.raw_os_error().unwrap_or(libc::ESRCH)),
        })
    }

    /// How many semaphores the set a `semctl` names holds, asked of home
    /// (`IPC_STAT`): a `GETALL` or `SETALL` moves one value for each, and
    /// no argument says how many. `Err`: why the set could not be looked at.
    async fn semaphore_count(&self, n: &Notification) -> Result<Result<u64, i32>, HomeGone> {
        // Any address will do: the answer comes back to the host, not
        // into the program.
        const HERE: u64 = 1;
        let stat = SyscallCall {
            nr: libc::SYS_semctl as u64,
            args: [n.args[0], 0, libc::IPC_STAT as u64, HERE, 0, 0],
            inputs: vec![],
        };
        let answer = self.calls.call(n.tid, stat).await?;
        if answer.ret < 0 {
            return Ok(Err(-answer.ret as i32));
        }
        Ok(answer
            .output(3)
            .and_then(semaphores_in_set)
            .ok_or(libc::EIO))
    }

    fn memory(&self, n: &Notification) -> ProcessMemory {
        ProcessMemory::new(n.tid)
    }

    async fn forward(
        &self,
        n: &Notification,
        ptrs: &[syscall::PtrArg],
    ) -> Result<Answer, HomeGone> {
        if let Some(answer) = self.signal_self(n) {
            return Ok(answer);
        }
        let sized;
        let n = if syscall::moves_whole_semaphore_set(n.nr, &n.args) {
            match self.semaphore_count(n).await? {
                Ok(count) => {
                    sized = Notification {
                        args: with_semaphore_count(n.args, count),
                        ..*n
                    };
                    &sized
                }
                Err(errno) => return Ok(Answer::Errno(errno)),
            }
        } else {
            n
        };
        // A thread's own nice value is the one the host schedules it by,
        // set from home's at its start and at each change.
        if n.nr as i64 == libc::SYS_getpriority && self.own_priority(n) {
            return Ok(Answer::Continue);
        }
        // No fd of the program's is that high: it would be one home opened
        // for this host to fetch a program through.
        if syscall::uses_held_file(n.nr, &n.args) {
            return Ok(Answer::Errno(libc::EBADF));
        }
        let memory = self.memory(n);
        let mut inputs = match read_inputs(&memory, n, ptrs) {
            Ok(inputs) => inputs,
            Err(answer) => return Ok(answer),
        };
        if inputs
            .iter()
            .any(|i| syscall::notifies_by_thread(n.nr, &i.bytes))
        {
            warn!(
                home_pid = self.home_pid,
                "unsupported: mq_notify starting a thread (SIGEV_THREAD), refused with ENOSYS"
            );
            return Ok(Answer::Errno(libc::ENOSYS));
        }
        // `/proc/self/exe` at home is the deputy's (the homing binary):
        // the program's own path stands for it. The link itself (lstat,
        // O_NOFOLLOW) is the same at home.
        for input in inputs.iter_mut().filter(|i| {
            ptrs.iter()
                .any(|p| p.index == i.index && p.len == Len::CStr)
        }) {
            if !self.names_own_exe(&input.bytes) || !follows_last_link(n.nr, &n.args) {
                continue;
            }
            let exe = self
                .member
                .exe
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            if exe.is_empty() {
                continue;
            }
            if let Some((at, size)) = readlink_buffer(n.nr, &n.args) {
                // The link itself is read: its target is the answer.
                let shown = &exe[..exe.len().min(size)];
                if memory.write(at, shown).is_err() {
                    return Ok(Answer::Errno(libc::EFAULT));
                }
                return Ok(Answer::Value(shown.len() as i64));
            }
            input.bytes = exe.into_iter().chain([0]).collect();
        }
        // What we read is the guest's only if its thread still waits; a
        // call that only looks may go without knowing (see `only_looks`).
        if !inputs.is_empty() && !only_looks(n.nr) && !self.listener.is_pending(n.id) {
            return Ok(Answer::Errno(libc::EINTR));
        }
        let mut args = n.args;
        if let Err(errno) = self.translate_in(n.tid, n.nr, &mut args).await {
            return Ok(Answer::Errno(errno));
        }
        // Large reads are shortened rather than refused.
        clamp_transfer(n.nr, &mut args);
        let own_id = self.own_capabilities(n, &mut inputs);
        let stat_output = fd_stat_output(n, || {
            inputs.iter().find(|i| i.index == 1)?.bytes.first().copied()
        });
        let call = SyscallCall {
            nr: n.nr,
            args,
            inputs,
        };
        let ahead = self.lookups_to_ask_ahead(n, &call, ptrs);
        let opens_task_dir = crate::task_dir::opens_own_task_dir(&call, self.home_pid);
        let signalfd_made = signalfd_mask(&call);
        // Its own memory, threads and signals are here, not the deputy's.
        let call = crate::proc_view::as_view(
            call,
            self.home_pid,
            self.guest_pid,
            n.tid == self.guest_pid,
            self.member.no_new_privs(),
            &self.role.cache,
        );
        let set_here = self.sets_enforced_limit(n);
        // Closing an fd opened read-only cannot fail (nothing is left to
        // write back): it goes home unanswered, and the program goes on
        // without waiting a round trip. Its later calls travel behind it
        // on the same stream, and home runs a close as it comes, so
        // nothing it does afterwards can see the fd still open.
        if self.member.forget_read_only(n.nr, &args) {
            self.member.calls.hold(n.tid, call);
            return Ok(Answer::Value(0));
        }
        // A read holds its fd's unread bytes (see `Member::unread`) while
        // out; so does a `recv` (a `recvfrom` that asks for no address and
        // takes its bytes as a read does), on a stream socket the same.
        let plain_recv = n.nr as i64 == libc::SYS_recvfrom
            && n.args[4] == 0
            && n.args[3] & !(libc::MSG_DONTWAIT as u64) == 0;
        let mut unread = if n.nr as i64 == libc::SYS_read || plain_recv {
            Some(self.member.hold_unread(n.args[0] as i32).await)
        } else {
            None
        };
        if let Some(bytes) = unread.as_deref_mut() {
            let wanted = n.args[2] as usize;
            let put = |data: &[u8]| memory.write(n.args[1], data).is_ok();
            if let Some(answer) = self.give_unread(n, bytes, wanted, put) {
                return Ok(answer);
            }
        }
        let waits = is_wait(n.nr);
        let _wait_turn = match waits {
            true => Some(self.member.wait_turn(n.tid).await),
            false => None,
        };
        let kept = waits
            .then(|| self.member.take_late_reap(n.nr, &args))
            .flatten();
        let result = match kept {
            Some(result) => result,
            None => match self
                .call_while_waited_for(n, call, unread.is_some() || waits, ahead)
                .await?
            {
                Waited::Done(result) => result,
                Waited::Left(late) => {
                    trace!(tid = n.tid, late = ?late.as_ref().map(|l| l.ret), "call left");
                    keep_late(unread.as_deref_mut(), late.as_ref());
                    if let Some(late) = late.filter(|_| waits) {
                        self.member.keep_late_reap(n, late);
                    }
                    return Ok(Answer::Errno(libc::EINTR));
                }
                Waited::SignalLetThrough(mask) => return Ok(self.let_signal_through(n, mask)),
                Waited::SignalsHere(signals) => return Ok(self.read_signals_here(n, signals)),
            },
        };
        self.member.note_read_only(n.nr, &args, result.ret);
        if n.nr as i64 == libc::SYS_epoll_ctl && result.ret == 0 {
            self.member.note_epoll_ctl(&n.args, &memory);
        }
        if let Some(signals) = signalfd_made.filter(|_| result.ret >= 0) {
            if let Ok(mut signalfds) = self.member.signalfds.lock() {
                signalfds.insert(result.ret as i32, signals);
            }
        }
        if opens_task_dir && result.ret >= 0 {
            if let Ok(mut dirs) = self.member.task_dirs.lock() {
                dirs.opened(result.ret as i32);
            }
        }
        self.member.note_fstat(n, self.call, stat_output, &result);
        self.member.note_prefetched(n, &result);
        self.member.note_directory_end(n, &result);
        if let Some(signals) = result.output(syscall::SIGNALFD_SIGNALS) {
            let signals = u64::from_ne_bytes(signals.try_into().unwrap_or_default());
            self.member.ask_signalfds_for(signals);
        }
        let mut result = result;
        if let Some(own) = own_id {
            // The header goes back with the id it came with.
            if let Some(header) = result.outputs.iter_mut().find(|o| o.index == 0) {
                if let Some(id) = header.bytes.get_mut(4..8) {
                    id.copy_from_slice(&own.to_ne_bytes());
                }
            }
        }
        if let Err(answer) = write_outputs(&memory, n, &args, ptrs, &result.outputs, waits) {
            return Ok(answer);
        }
        if waits {
            return Ok(self.deliver_wait(n, result));
        }
        if n.nr as i64 == libc::SYS_setpriority && result.ret == 0 {
            if let Some(answer) = self.renice_here(n) {
                return Ok(answer);
            }
        }
        if set_here && result.ret == 0 {
            // Set at home, where it is read back; and here by the
            // program's own call, since the host enforces it (an agent
            // may not set another user's limits or nice value).
            return Ok(Answer::Continue);
        }
        match unread.as_deref_mut() {
            Some(bytes) => Ok(self.deliver_read(n, bytes, &result)),
            None => Ok(errno_of(result.ret)),
        }
    }

    /// A `setpriority` home has made: the thread it named runs here too
    /// (this program's own, or another guest of the same home here), and
    /// the host schedules it by its nice value. Set by the agent (which
    /// may, with `CAP_SYS_NICE`), or else by the guest's own call where
    /// it named its own process (see [`Self::own_priority`]); `None`
    /// where it named no thread here (a
    /// process group, a user, a process elsewhere: home's alone).
    fn renice_here(&self, n: &Notification) -> Option<Answer> {
        let [which, who, nice, ..] = n.args;
        if which != libc::PRIO_PROCESS as u64 {
            return None;
        }
        let target = match who {
            0 => n.tid,
            _ => self.host_thread(who as i32)?,
        };
        match homing_shim::process::set_nice(target, nice as i32) {
            Ok(()) => Some(Answer::Value(0)),
            Err(_) if self.own_priority(n) => Some(Answer::Continue),
            Err(error) => {
                warn!(
                    home_pid = self.home_pid,
                    target, "a nice value set at home is not taken on here: {error}"
                );
                None
            }
        }
    }

    /// The thread here that home knows as `home_tid`: a process's main
    /// thread (a guest from the same home), or a thread of this process.
    fn host_thread(&self, home_tid: i32) -> Option<i32> {
        if let Some(member) = self.role.members.get(&(self.home_node.clone(), home_tid)) {
            let host = member.host_pid.load(Ordering::Relaxed);
            return (host > 0).then_some(host);
        }
        homing_shim::process::threads(self.guest_pid)
            .ok()?
            .into_iter()
            .find(|&tid| innermost_pid(tid) == Some(home_tid))
    }

    /// Whether `pid` in a call names the calling process (0, or its home
    /// pid) in a way its own call here would read alike: a home pid only
    /// where the guest's pid here is that one.
    fn names_itself(&self, pid: u64) -> bool {
        pid == 0
            || (pid == self.home_pid as u64 && innermost_pid(self.guest_pid) == Some(self.home_pid))
    }

    /// Whether call `n`, once home has made it, is made here too, by the
    /// guest's own call: it sets a limit the host enforces (see
    /// [`homing_shim::process::ENFORCED_ON_HOST`]) of the process itself
    /// (see [`Self::names_itself`]): a `setrlimit`, or a `prlimit64` that
    /// sets one.
    fn sets_enforced_limit(&self, n: &Notification) -> bool {
        let resource = match n.nr as i64 {
            libc::SYS_setrlimit => n.args[0],
            libc::SYS_prlimit64 if self.names_itself(n.args[0]) && n.args[2] != 0 => n.args[1],
            _ => return false,
        };
        u32::try_from(resource).is_ok_and(|r| homing_shim::process::ENFORCED_ON_HOST.contains(&r))
    }

    /// Whether call `n`, a `getpriority` or `setpriority`, is of a nice
    /// value of the calling process (`PRIO_PROCESS`, a thread it names
    /// as its own call here would): one the guest's own call can read or
    /// set here, where the host schedules by it.
    fn own_priority(&self, n: &Notification) -> bool {
        n.args[0] == libc::PRIO_PROCESS as u64 && self.names_itself(n.args[1])
    }

    /// Gives a read bytes its fd's earlier reads took at home for threads
    /// that left (at most `wanted`, written with `put`); `None` when there
    /// are none. They are taken only if the thread takes the answer.
    fn give_unread(
        &self,
        n: &Notification,
        bytes: &mut Vec<u8>,
        wanted: usize,
        put: impl Fn(&[u8]) -> bool,
    ) -> Option<Answer> {
        if bytes.is_empty() {
            return None;
        }
        let count = wanted.min(bytes.len());
        if !put(&bytes[..count]) {
            return Some(Answer::Errno(libc::EFAULT));
        }
        if !matches!(
            self.listener.deliver(n.id, Answer::Value(count as i64)),
            Ok(false)
        ) {
            bytes.drain(..count);
        }
        Some(Answer::Given)
    }

    /// Answers a read whose bytes are in the thread's memory already; if
    /// its thread does not take the answer, the bytes go to the fd's next
    /// read.
    fn deliver_read(
        &self,
        n: &Notification,
        bytes: &mut Vec<u8>,
        result: &homing_proto::syscall::SyscallResult,
    ) -> Answer {
        if result.ret <= 0 {
            return errno_of(result.ret);
        }
        // The program may learn something from here on: counted now, so
        // that a read asked ahead of it counts from here.
        let traffic = self.member.note_traffic();
        self.member.answer_counted.store(n.id, Ordering::SeqCst);
        self.read_ahead_after(n, result, traffic);
        if let Ok(false) = self.listener.deliver(n.id, Answer::Value(result.ret)) {
            trace!(tid = n.tid, ret = result.ret, "read undelivered");
            bytes.extend_from_slice(result.output(1).unwrap_or_default());
            self.member.drop_read_ahead();
        }
        Answer::Given
    }

    /// After home answered read `n` with `result` (all it asked for, at
    /// traffic count `traffic`): asks home for what would follow it,
    /// before the program asks, if the program reads a file it opened
    /// itself and shares with no one, has one thread, and has not left
    /// reads ahead of that file unread so far that they stopped (see
    /// [`crate::read_ahead`]).
    fn read_ahead_after(
        &self,
        n: &Notification,
        result: &homing_proto::syscall::SyscallResult,
        traffic: u64,
    ) {
        let fd = n.args[0] as i32;
        let len = result.ret as usize;
        let full = n.nr as i64 == libc::SYS_read && len == (n.args[2] as usize).min(MAX_TRANSFER);
        let Some(offset) = result
            .output(syscall::OFFSET_AFTER)
            .and_then(|bytes| Some(u64::from_ne_bytes(bytes.try_into().ok()?)))
            .filter(|_| full)
        else {
            return;
        };
        let Some(len) = self.member.pace(fd).len(len) else {
            return;
        };
        if !homing_shim::process::single_threaded(n.tid) {
            return;
        }
        self.member.drop_read_ahead();
        let Ok(answer) = self.member.calls.start_pread(n.tid, fd, offset, len) else {
            return;
        };
        if let Ok(mut slot) = self.member.read_ahead.lock() {
            let now = ReadAhead::new(fd, offset, len, traffic, answer);
            *slot = Some(Ahead { now, after: None });
        }
    }

    /// Answers a `read` from what was read ahead of it, when that may
    /// serve (see [`crate::read_ahead`]), and asks for what follows in
    /// time. `None` sends the read home, and what was read ahead of that
    /// fd counts as left.
    async fn serve_read_ahead(&self, n: &Notification) -> Option<Answer> {
        if n.nr as i64 != libc::SYS_read {
            return None;
        }
        let fd = n.args[0] as i32;
        let Ahead {
            now: mut ahead,
            mut after,
        } = {
            let mut slot = self.member.read_ahead.lock().ok()?;
            slot.take_if(|ahead| ahead.now.fd == fd)?
        };
        let unread_none = self
            .member
            .unread
            .get(&fd)
            .is_none_or(|bytes| bytes.try_lock().is_ok_and(|bytes| bytes.is_empty()));
        let may_serve = ahead.fresh(self.member.traffic())
            && unread_none
            && homing_shim::process::single_threaded(n.tid);
        let want = (n.args[2] as usize).min(MAX_TRANSFER);
        let bytes = match may_serve && ahead.arrive().await {
            true => ahead.serve(want),
            false => None,
        };
        let Some(bytes) = bytes else {
            self.member.left_ahead(&ahead);
            return None;
        };
        let count = bytes.len();
        if self.memory(n).write(n.args[1], bytes).is_err() {
            self.member.left_ahead(&ahead);
            return None;
        }
        let offset = ahead.take(count);
        self.member.set_pending_seek(fd, offset, n.tid);
        // What comes next is asked for before this answer is given: the
        // program's next read may come at once.
        let ask = |at: u64, pace: Pace| {
            let len = pace.len(want).unwrap_or(want);
            let traffic = self.member.traffic();
            let answer = self.member.calls.start_pread(n.tid, fd, at, len).ok()?;
            Some(ReadAhead::new(fd, at, len, traffic, answer))
        };
        if let Some(at) = ahead.half_read(want).filter(|_| after.is_none()) {
            after = ask(at, self.member.pace(fd));
        }
        let mut now = Some(ahead);
        if let Some(at) = now.as_ref().and_then(ReadAhead::next) {
            let pace = now.as_ref().map_or(Pace::Off, Pace::used_up);
            self.member.set_pace(fd, pace);
            now = after.take().or_else(|| ask(at, pace));
        }
        if let (Some(now), Ok(mut slot)) = (now, self.member.read_ahead.lock()) {
            *slot = Some(Ahead { now, after });
        }
        if let Ok(false) = self.listener.deliver(n.id, Answer::Value(count as i64)) {
            // Its thread left: the bytes stay unread, at home too.
            self.member.drop_read_ahead();
            self.member
                .set_pending_seek(fd, offset - count as u64, n.tid);
        }
        Some(Answer::Given)
    }

    /// For the program's call `call` (pointer arguments `ptrs`) about to
    /// go home: if it is a path lookup of a program of one thread, notes
    /// it, and returns the lookups that followed it last time, to ask
    /// behind it (see [`crate::lookup_ahead`]).
    fn lookups_to_ask_ahead(
        &self,
        n: &Notification,
        call: &SyscallCall,
        ptrs: &[syscall::PtrArg],
    ) -> Vec<LookupKey> {
        if !crate::lookup_ahead::is_lookup(n.nr, &n.args) || !crate::lookup_ahead::only_paths(ptrs)
        {
            return vec![];
        }
        let key = LookupKey::of(call, ptrs);
        self.member.learn_lookup(Some(key.clone()));
        self.predicted_after(n, &key)
    }

    /// The lookups that followed `key` last time, to ask behind it: none
    /// for a program of several threads.
    fn predicted_after(&self, n: &Notification, key: &LookupKey) -> Vec<LookupKey> {
        let Ok(mut pace) = self.member.lookups_pace.lock() else {
            return vec![];
        };
        let most = pace.count();
        let ahead = self
            .member
            .lookup_successors
            .lock()
            .map(|successors| successors.predict(key, most))
            .unwrap_or_default();
        // Asked last: counting the threads (a stat in /proc) cost more
        // than the rest, on every lookup, most of which predict nothing.
        if ahead.is_empty() || !homing_shim::process::single_threaded(n.tid) {
            return vec![];
        }
        pace.asked();
        ahead
    }

    /// Sends `keys` home right behind the program's call `n`, to answer
    /// its next calls if they are those.
    fn ask_lookups_ahead(&self, n: &Notification, keys: Vec<LookupKey>) {
        if keys.is_empty() {
            return;
        }
        let mut queue = std::collections::VecDeque::with_capacity(keys.len());
        for (key, call) in keys.iter().zip(crate::lookup_ahead::calls(&keys)) {
            let Ok(answer) = self.calls.start_ahead(n.tid, call) else {
                return;
            };
            queue.push_back((key.clone(), answer));
        }
        if let Ok(mut ahead) = self.member.lookups_ahead.lock() {
            *ahead = Some(LookupsAhead::new(n.id, queue));
        }
    }

    /// Answers a path lookup from those asked ahead of the program, when
    /// it is the next one expected and they may serve (see
    /// [`crate::lookup_ahead`]); `None` sends it home, and the rest are
    /// dropped.
    async fn serve_lookup_ahead(
        &self,
        n: &Notification,
        ptrs: &[syscall::PtrArg],
    ) -> Option<Answer> {
        if !crate::lookup_ahead::is_lookup(n.nr, &n.args) || !crate::lookup_ahead::only_paths(ptrs)
        {
            return None;
        }
        let mut ahead = self.lookups_that_may_serve(n)?;
        let memory = self.memory(n);
        let inputs = read_inputs(&memory, n, ptrs).ok()?;
        // `/proc/self/exe` stands for the program's own path: home is
        // asked that instead (see `forward`).
        if inputs.iter().any(|input| self.names_own_exe(&input.bytes)) {
            return None;
        }
        let call = SyscallCall {
            nr: n.nr,
            args: n.args,
            inputs,
        };
        let key = LookupKey::of(&call, ptrs);
        let result = answered_ahead(ahead.next_for(&key)?)
            .await
            // An fd opened ahead would be no fd of the deputy's.
            .filter(|result| !crate::lookup_ahead::is_open(n.nr) || result.ret < 0)?;
        if let Err(answer) = write_outputs(&memory, n, &n.args, ptrs, &result.outputs, false) {
            return Some(answer);
        }
        self.served_ahead(key, ahead);
        Some(errno_of(result.ret))
    }

    /// The lookups asked ahead of the program, taken, if they may serve
    /// its call `n` (see [`crate::lookup_ahead`]).
    fn lookups_that_may_serve(&self, n: &Notification) -> Option<LookupsAhead> {
        let ahead = self.member.lookups_ahead.lock().ok()?.take()?;
        let may =
            ahead.fresh(self.member.traffic()) && homing_shim::process::single_threaded(n.tid);
        may.then_some(ahead)
    }

    /// One of the lookups asked ahead, `key`, answered the program: the
    /// rest wait for its next calls.
    fn served_ahead(&self, key: LookupKey, ahead: LookupsAhead) {
        self.member.learn_lookup(Some(key));
        self.member
            .lookups_answered_ahead
            .fetch_add(1, Ordering::Relaxed);
        if let Ok(mut pace) = self.member.lookups_pace.lock() {
            pace.served();
        }
        if !ahead.is_empty() {
            if let Ok(mut slot) = self.member.lookups_ahead.lock() {
                *slot = Some(ahead);
            }
        }
    }

    /// Refuses an `execve` of a path that the `stat` asked ahead for it
    /// found leads nowhere, when it is the next lookup expected and the
    /// lookups asked ahead may serve; `None` leaves it to [`Self::exec`].
    async fn serve_exec_ahead(&self, n: &Notification) -> Option<Answer> {
        if self.role.injected_execs.contains_key(&n.tid) {
            return None;
        }
        let mut ahead = self.lookups_that_may_serve(n)?;
        let mut path = self
            .memory(n)
            .read_cstr(n.args[0], syscall::MAX_CSTR)
            .ok()?;
        if self.names_own_exe(&path) {
            return None;
        }
        path.pop();
        let key = LookupKey::exec(&path);
        let result = answered_ahead(ahead.next_for(&key)?).await?;
        let errno = crate::lookup_ahead::exec_refused(&result)?;
        self.served_ahead(key, ahead);
        Some(Answer::Errno(errno))
    }

    /// An mmap of the file the program's last open brought (a library the
    /// loader maps in four pieces, say), answered from what that open
    /// said the file is, under the never-stale rule of what it brought
    /// (see [`Prefetched`]), when the cache holds its copy: nothing to
    /// ask home. `None` for any other: [`Self::mmap_file`] judges it.
    fn map_prefetched(&self, n: &Notification) -> Option<Answer> {
        let (flags, fd) = (n.args[3] as i32, n.args[4] as i32);
        let file = self.prefetched_stat(fd)?;
        // A shared mapping may be of shared memory, whose copy here is
        // not the cache's: `mmap_file` tells.
        let shared = flags & 0x3 != libc::MAP_PRIVATE;
        if shared || !file.is_regular() {
            return None;
        }
        let path = self.role.cache.cached(&self.home_node, &file).ok()??;
        let local = std::fs::File::open(path).ok()?;
        match self.listener.install_fd(n.id, local.as_fd(), fd, false) {
            Ok(()) => Some(Answer::Continue),
            Err(error) => {
                debug!("installing the mapped file's fd: {error}");
                None
            }
        }
    }

    /// The stat fd `fd`'s open brought, while it may still serve (see
    /// [`Prefetched`]).
    fn prefetched_stat(&self, fd: i32) -> Option<HomeFile> {
        let slot = self.member.prefetched.lock().ok()?;
        let prefetched = slot.as_ref()?;
        let fresh = nothing_learned_since(&self.member, prefetched.armed, prefetched.at);
        if !fresh || prefetched.fd != fd {
            return None;
        }
        HomeFile::from_stat(&prefetched.stat)
    }

    /// A shared mapping of a file in home's `/dev/shm` (shared memory, a
    /// semaphore) or of a memfd: the guest maps this host's copy of it,
    /// the one every guest here mapping that file shares (see
    /// [`crate::shared_here`]). Any other file goes to the cache, with
    /// its path at home where that was read to tell: telling costs a
    /// round trip (a `readlink` of the fd), but for a file whose device is
    /// known here (its stat just came) to hold other files.
    async fn map_shared_here(&self, n: &Notification, fd: i32) -> Result<SharedMapping, HomeGone> {
        let device = self
            .member
            .fstat_of(fd)
            .or_else(|| self.prefetched_stat(fd))
            .map(|file| file.dev);
        let shared_here = &self.role.shared_here;
        if device.is_some_and(|dev| shared_here.holds_other_files(&self.home_node, dev)) {
            return Ok(SharedMapping::Cached(None));
        }
        let Some(home_path) = self.calls.path_of_fd(n.tid, fd).await? else {
            return Ok(SharedMapping::Cached(None));
        };
        if !crate::shared_here::holds_shared_memory(&home_path) {
            if let Some(dev) = device {
                shared_here.note_other_file(&self.home_node, dev);
            }
            return Ok(SharedMapping::Cached(Some(home_path)));
        }
        // Sized as it is now, and opened as the program's own fd is.
        let (file, open_flags) = match self.regular_file_at(n.tid, fd).await? {
            Ok(found) => found,
            Err(answer) => return Ok(SharedMapping::Here(answer)),
        };
        let here = |answer| Ok(SharedMapping::Here(answer));
        let calls = &self.calls;
        let read = |offset: u64, len: usize| calls.pread_file(n.tid, fd, offset, len);
        let copy = self
            .role
            .shared_here
            .open(&self.home_node, &file, &home_path, open_flags, read)
            .await;
        let copy = match copy {
            Ok(copy) => copy,
            Err(error) => {
                warn!(
                    home_pid = self.home_pid,
                    fd, "cannot share a home shared memory file here: {error}"
                );
                return here(Answer::Errno(libc::EIO));
            }
        };
        debug!(home_pid = self.home_pid, fd, path = %String::from_utf8_lossy(&home_path), "maps the shared copy here");
        here(self.map_instead(n, copy.as_fd(), fd))
    }

    /// Has the guest's mmap of fd `fd` map `local` instead: an fd to it is
    /// put at that number, and the call runs.
    fn map_instead(&self, n: &Notification, local: std::os::fd::BorrowedFd<'_>, fd: i32) -> Answer {
        match self.listener.install_fd(n.id, local, fd, false) {
            Ok(()) => Answer::Continue,
            Err(error) => {
                debug!("installing the fd of what is mapped instead: {error}");
                Answer::Errno(libc::EIO)
            }
        }
    }

    /// The home file at fd `fd` and how it is open (its `F_GETFL`), for a
    /// shared mapping of it; `Err`: the mapping's answer, where it is no
    /// regular file (ENODEV, as for any device that cannot be mapped so)
    /// or cannot be looked at.
    async fn regular_file_at(
        &self,
        tid: i32,
        fd: i32,
    ) -> Result<Result<(HomeFile, i32), Answer>, HomeGone> {
        let file = match self.calls.fstat(tid, fd).await? {
            Ok(file) if file.is_regular() => file,
            Ok(_) => return Ok(Err(Answer::Errno(libc::ENODEV))),
            Err(errno) => return Ok(Err(errno_of(errno))),
        };
        let open_flags = self.calls.open_flags(tid, fd).await?;
        if open_flags < 0 {
            return Ok(Err(errno_of(open_flags)));
        }
        Ok(Ok((file, open_flags as i32)))
    }

    /// A shared, writable mapping of the home file at fd `fd` (its path at
    /// home `home_path`, where known): the guest maps this host's copy of
    /// it, whose changes go home (see [`crate::written_back`]).
    async fn map_written_back(
        &self,
        n: &Notification,
        fd: i32,
        home_path: Option<Vec<u8>>,
    ) -> Result<Answer, HomeGone> {
        let (file, open_flags) = match self.regular_file_at(n.tid, fd).await? {
            Ok(found) => found,
            Err(answer) => return Ok(answer),
        };
        if open_flags & libc::O_ACCMODE != libc::O_RDWR {
            // As the kernel refuses it at home.
            return Ok(Answer::Errno(libc::EACCES));
        }
        let existing = self.role.written_back.existing(&self.home_node, &file);
        let (held, newly_held) = match existing.and_then(|copy| self.member.held_for(&copy)) {
            Some(held) => (held, false),
            None => {
                let hold = SyscallCall {
                    nr: syscall::HOLD_MAPPED,
                    args: [fd as u64, 0, 0, 0, 0, 0],
                    inputs: vec![],
                };
                let held = self.calls.call(n.tid, hold).await?.ret;
                if held < 0 {
                    let why = match -held as i32 {
                        libc::EBUSY => "another process at home has it open",
                        _ => "home cannot keep it for this host",
                    };
                    warn!(home_pid = self.home_pid, fd, "refused a writable shared mapping of a home file: {why}, so the program's writes would silently diverge from what it sees");
                    return Ok(Answer::Errno(libc::ENODEV));
                }
                (held as i32, true)
            }
        };
        let calls = &self.calls;
        let read = |offset: u64, len: usize| calls.pread_file(n.tid, held, offset, len);
        let name = home_path.unwrap_or_else(|| b"mapped".to_vec());
        let copy = self
            .role
            .written_back
            .open(&self.home_node, &file, &name, read)
            .await;
        let local = copy.and_then(|copy| {
            let local = copy.reopen(open_flags)?;
            self.member.note_mapped(copy, held);
            Ok(local)
        });
        let local = match local {
            Ok(local) => local,
            Err(error) => {
                warn!(
                    home_pid = self.home_pid,
                    fd, "cannot map a copy of a home file here: {error}"
                );
                if newly_held {
                    self.calls.close_read_only(n.tid, held)?;
                }
                return Ok(Answer::Errno(libc::EIO));
            }
        };
        debug!(
            home_pid = self.home_pid,
            fd, held, "maps a written-back copy here"
        );
        Ok(self.map_instead(n, local.as_fd(), fd))
    }

    /// mmap of a home fd: map the cached copy instead, by putting a local
    /// fd to it at the same number and letting the guest's mmap run.
    async fn mmap_file(&self, n: &Notification) -> Result<Answer, HomeGone> {
        let (prot, flags, fd) = (n.args[2] as i32, n.args[3] as i32, n.args[4] as i32);
        let shared = flags & 0x3 != libc::MAP_PRIVATE;
        let mut home_path = None;
        if shared {
            match self.map_shared_here(n, fd).await? {
                SharedMapping::Here(answer) => return Ok(answer),
                SharedMapping::Cached(path) => home_path = path,
            }
        }
        if shared && prot & libc::PROT_WRITE != 0 {
            return self.map_written_back(n, fd, home_path).await;
        }
        let known = self
            .member
            .fstat_of(fd)
            .or_else(|| self.prefetched_stat(fd));
        let file = match known {
            Some(file) => file,
            None => match self.calls.fstat(n.tid, fd).await? {
                Ok(file) => file,
                Err(errno) => return Ok(errno_of(errno)),
            },
        };
        if !file.is_regular() {
            warn!(
                home_pid = self.home_pid,
                fd,
                mode = format!("{:o}", file.mode),
                "refused mmap of a home file that is not a regular file"
            );
            return Ok(Answer::Errno(libc::ENODEV));
        }
        // Mapped shared and writable here already: the same pages, as at home.
        let written_back = shared
            .then(|| self.role.written_back.existing(&self.home_node, &file))
            .flatten();
        if let Some(copy) = written_back {
            return Ok(match copy.reopen(libc::O_RDONLY) {
                Ok(local) => self.map_instead(n, local.as_fd(), fd),
                Err(_) => Answer::Errno(libc::EIO),
            });
        }
        let path = match self
            .role
            .cache_file(&self.home_node, &file, fd, &self.calls)
            .await
        {
            Ok(path) => path,
            Err(error) => {
                warn!(
                    home_pid = self.home_pid,
                    fd, "cannot cache a mapped home file: {error}"
                );
                return Ok(Answer::Errno(libc::EIO));
            }
        };
        if self.role.cache.origin(&path).is_none() {
            // Once per copy: its path at home, which the program's own
            // `/proc/self/maps` shows (see `proc_view`).
            let home_path = match home_path {
                Some(path) => Some(path),
                None => self.calls.path_of_fd(n.tid, fd).await?,
            };
            if let Some(home_path) = home_path {
                if let Err(error) = self.role.cache.note_home_path(&path, &home_path) {
                    debug!("noting where a mapped file came from: {error}");
                }
            }
        }
        let Ok(local) = std::fs::File::open(&path) else {
            return Ok(Answer::Errno(libc::EIO));
        };
        match self.listener.install_fd(n.id, local.as_fd(), fd, false) {
            Ok(()) => Ok(Answer::Continue),
            Err(error) => {
                debug!("installing the mapped file's fd: {error}");
                Ok(Answer::Errno(libc::EIO))
            }
        }
    }

    /// sendmsg/recvmsg: the guest's `msghdr` flattened into one call home
    /// (see [`homing_proto::syscall::message`]), and the answer put back
    /// into the buffers and fields it names.
    async fn message(&self, n: &Notification) -> Result<Answer, HomeGone> {
        match n.nr as i64 {
            libc::SYS_sendmsg => self.one_message(n, n.args[1], true, n.args[2]).await,
            libc::SYS_recvmsg => self.one_message(n, n.args[1], false, n.args[2]).await,
            _ => self.messages(n).await,
        }
    }

    /// sendmmsg and recvmmsg: one sendmsg or recvmsg home per message
    /// (glibc's resolver sends its A and AAAA queries with sendmmsg), each
    /// message's length set in turn, until one fails. recvmmsg waits as
    /// its flags say for the first message only when given
    /// `MSG_WAITFORONE` or a timeout (which is otherwise not kept to).
    async fn messages(&self, n: &Notification) -> Result<Answer, HomeGone> {
        /// `struct mmsghdr`: a `msghdr`, then the length sent.
        const ENTRY_LEN: u64 = 64;
        let sending = n.nr == libc::SYS_sendmmsg as u64;
        let flags = n.args[3];
        let wait_for_one = !sending && (flags & libc::MSG_WAITFORONE as u64 != 0 || n.args[4] != 0);
        let memory = self.memory(n);
        let mut done = 0;
        for entry in 0..(n.args[2] as u32).min(IOV_MAX as u32) {
            let at = n.args[1] + u64::from(entry) * ENTRY_LEN;
            let mut flags = flags & !(libc::MSG_WAITFORONE as u64);
            if wait_for_one && done > 0 {
                flags |= libc::MSG_DONTWAIT as u64;
            }
            match self.one_message(n, at, sending, flags).await? {
                Answer::Value(len) => {
                    if memory.write(at + 56, &(len as u32).to_ne_bytes()).is_err() {
                        return Ok(Answer::Errno(libc::EFAULT));
                    }
                    done += 1;
                }
                failed if done == 0 => return Ok(failed),
                _ => break,
            }
        }
        Ok(Answer::Value(done))
    }

    /// One sendmsg or recvmsg of the `msghdr` at `at`, with `flags`.
    async fn one_message(
        &self,
        n: &Notification,
        at: u64,
        sending: bool,
        flags: u64,
    ) -> Result<Answer, HomeGone> {
        use homing_proto::syscall::message::{
            CONTROL, DATA, HEADER_LEN, MAX_CONTROL, MAX_DATA, MAX_NAME, NAME, RETURNED,
        };
        let memory = self.memory(n);
        let Ok(header) = memory.read(at, HEADER_LEN) else {
            return Ok(Answer::Errno(libc::EFAULT));
        };
        let word = |offset: usize| {
            u64::from_ne_bytes(header[offset..offset + 8].try_into().expect("8 bytes"))
        };
        let name_at = word(0);
        let name_len = u32::from_ne_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
        let (iov_at, iov_count) = (word(16), word(24) as usize);
        let (control_at, control_len) = (word(32), word(40) as usize);
        let nr = if sending {
            libc::SYS_sendmsg
        } else {
            libc::SYS_recvmsg
        };
        if iov_count > IOV_MAX {
            return Ok(Answer::Errno(libc::EMSGSIZE));
        }
        let name_len = if name_at == 0 { 0 } else { name_len };
        let control_len = if control_at == 0 { 0 } else { control_len };
        if sending && name_len > MAX_NAME {
            return Ok(Answer::Errno(libc::EINVAL));
        }
        if sending && control_len > MAX_CONTROL {
            return Ok(Answer::Errno(libc::ENOBUFS));
        }
        let (name_len, control_len) = (name_len.min(MAX_NAME), control_len.min(MAX_CONTROL));
        let Some(iovecs) = read_iovecs(&memory, iov_at, iov_count) else {
            return Ok(Answer::Errno(libc::EFAULT));
        };
        let total = iovecs_total(&iovecs, MAX_DATA);
        let mut inputs = Vec::new();
        if sending {
            let Some(data) = gather(&memory, &iovecs, total) else {
                return Ok(Answer::Errno(libc::EFAULT));
            };
            for (index, from, len) in [
                (NAME, name_at, name_len),
                (CONTROL, control_at, control_len),
            ] {
                if len > 0 {
                    let Ok(bytes) = memory.read(from, len) else {
                        return Ok(Answer::Errno(libc::EFAULT));
                    };
                    inputs.push(ArgData { index, bytes });
                }
            }
            inputs.push(ArgData {
                index: DATA,
                bytes: data,
            });
        }
        if !self.listener.is_pending(n.id) {
            return Ok(Answer::Errno(libc::EINTR));
        }
        let call = SyscallCall {
            nr: nr as u64,
            args: [
                n.args[0],
                0,
                flags,
                name_len as u64,
                control_len as u64,
                total as u64,
            ],
            inputs,
        };
        let Waited::Done(result) = self.call_while_waited_for(n, call, false, vec![]).await? else {
            return Ok(Answer::Errno(libc::EINTR));
        };
        if sending || result.ret < 0 {
            return Ok(errno_of(result.ret));
        }
        let output = |index: u8| result.output(index).unwrap_or(&[]);
        if !scatter(&memory, &iovecs, output(DATA)) {
            return Ok(Answer::Errno(libc::EFAULT));
        }
        let returned = output(RETURNED);
        let (Some(namelen), Some(flags)) = (returned.get(..4), returned.get(4..8)) else {
            return Ok(Answer::Errno(libc::EIO));
        };
        let name = output(NAME);
        let control = output(CONTROL);
        let control_len_field = (control.len() as u64).to_ne_bytes();
        if name.len() > name_len || control.len() > control_len {
            return Ok(Answer::Errno(libc::EIO));
        }
        let mut fields = vec![
            (name_at, name),
            (control_at, control),
            (at + 48, flags),
            (at + 40, &control_len_field[..]),
        ];
        if name_at != 0 {
            fields.push((at + 8, namelen));
        }
        let written = fields
            .into_iter()
            .filter(|(_, bytes)| !bytes.is_empty())
            .all(|(to, bytes)| memory.write(to, bytes).is_ok());
        if !written {
            return Ok(Answer::Errno(libc::EFAULT));
        }
        Ok(errno_of(result.ret))
    }

    /// readv/writev and friends: one contiguous transfer at home, scattered
    /// or gathered here.
    async fn vector_io(&self, n: &Notification, special: Special) -> Result<Answer, HomeGone> {
        let memory = self.memory(n);
        let count = n.args[2] as usize;
        if count > IOV_MAX {
            return Ok(Answer::Errno(libc::EINVAL));
        }
        let Some(iovecs) = read_iovecs(&memory, n.args[1], count) else {
            return Ok(Answer::Errno(libc::EFAULT));
        };
        let total = iovecs_total(&iovecs, MAX_TRANSFER);
        let positioned = n.nr != libc::SYS_readv as u64 && n.nr != libc::SYS_writev as u64;
        let offset = n.args[3];
        let fd = n.args[0];
        let (nr, args, inputs) = match (special, positioned) {
            (Special::ReadVector, false) => {
                (libc::SYS_read, [fd, 1, total as u64, 0, 0, 0], vec![])
            }
            (Special::ReadVector, true) => (
                libc::SYS_pread64,
                [fd, 1, total as u64, offset, 0, 0],
                vec![],
            ),
            (_, positioned) => {
                let Some(data) = gather(&memory, &iovecs, total) else {
                    return Ok(Answer::Errno(libc::EFAULT));
                };
                let nr = if positioned {
                    libc::SYS_pwrite64
                } else {
                    libc::SYS_write
                };
                (
                    nr,
                    [fd, 1, data.len() as u64, offset, 0, 0],
                    vec![ArgData {
                        index: 1,
                        bytes: data,
                    }],
                )
            }
        };
        if !self.listener.is_pending(n.id) {
            return Ok(Answer::Errno(libc::EINTR));
        }
        // A readv, like a read, holds its fd's unread bytes while out.
        let mut unread = if n.nr as i64 == libc::SYS_readv {
            Some(self.member.hold_unread(fd as i32).await)
        } else {
            None
        };
        if let Some(bytes) = unread.as_deref_mut() {
            let put = |data: &[u8]| scatter(&memory, &iovecs, data);
            if let Some(answer) = self.give_unread(n, bytes, total, put) {
                return Ok(answer);
            }
        }
        let call = SyscallCall {
            nr: nr as u64,
            args,
            inputs,
        };
        let result = match self
            .call_while_waited_for(n, call, unread.is_some(), vec![])
            .await?
        {
            Waited::Done(result) => result,
            Waited::Left(late) => {
                keep_late(unread.as_deref_mut(), late.as_ref());
                return Ok(Answer::Errno(libc::EINTR));
            }
            Waited::SignalLetThrough(_) | Waited::SignalsHere(_) => {
                return Ok(Answer::Errno(libc::EINTR))
            }
        };
        let read = special == Special::ReadVector && result.ret > 0;
        if read && !scatter(&memory, &iovecs, result.output(1).unwrap_or(&[])) {
            return Ok(Answer::Errno(libc::EFAULT));
        }
        match unread.as_deref_mut() {
            Some(bytes) => Ok(self.deliver_read(n, bytes, &result)),
            None => Ok(errno_of(result.ret)),
        }
    }
}

/// A guest's array of `count` iovecs at `at`, as `(base, len)` pairs.
fn read_iovecs(memory: &ProcessMemory, at: u64, count: usize) -> Option<Vec<(u64, usize)>> {
    let raw = memory.read(at, count * 16).ok()?;
    Some(
        raw.chunks_exact(16)
            .map(|c| {
                let base = u64::from_ne_bytes(c[..8].try_into().expect("8 bytes"));
                let len = u64::from_ne_bytes(c[8..].try_into().expect("8 bytes"));
                (base, len as usize)
            })
            .collect(),
    )
}

/// The bytes `iovecs` describe, at most `max`.
fn iovecs_total(iovecs: &[(u64, usize)], max: usize) -> usize {
    iovecs.iter().map(|(_, len)| *len).sum::<usize>().min(max)
}

/// The first `total` bytes `iovecs` point at, in order; `None` on a fault.
fn gather(memory: &ProcessMemory, iovecs: &[(u64, usize)], total: usize) -> Option<Vec<u8>> {
    let mut data = Vec::with_capacity(total);
    for &(base, len) in iovecs {
        let take = len.min(total - data.len());
        data.extend_from_slice(&memory.read(base, take).ok()?);
    }
    Some(data)
}

/// Spreads `data` over `iovecs` in order; false on a fault.
fn scatter(memory: &ProcessMemory, iovecs: &[(u64, usize)], data: &[u8]) -> bool {
    let mut at = 0;
    for &(base, len) in iovecs {
        if at >= data.len() {
            break;
        }
        let take = len.min(data.len() - at);
        if memory.write(base, &data[at..at + take]).is_err() {
            return false;
        }
        at += take;
    }
    true
}

/// Shortens the length argument of plain reads and writes to [`MAX_TRANSFER`].
fn clamp_transfer(nr: u64, args: &mut [u64; 6]) {
    let nr = nr as i64;
    if [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_getdents64,
    ]
    .contains(&nr)
    {
        args[2] = args[2].min(MAX_TRANSFER as u64);
    }
}

/// Ends `parked` (see `Member::parked`) as its program ended, where it
/// can: with the same exit code. A program killed by a signal, or gone on
/// to another node, ends it by SIGKILL.
async fn end_parked(member: &Member, parked: i32, status: GuestExit) {
    let release = || member.release_calls(parked);
    let ended = match status {
        _ if member.moved.load(Ordering::Relaxed) => {
            Err(std::io::Error::other("its program moved on"))
        }
        GuestExit::Code(code) => homing_shim::ptrace::exit_from_syscall(parked, code, &release),
        GuestExit::Signal(libc::SIGKILL) => Err(std::io::Error::other("killed")),
        GuestExit::Signal(signal) => {
            homing_shim::ptrace::kill_from_syscall(parked, signal, &release)
        }
    };
    if let Err(error) = ended {
        debug!(parked, "ending a replaced process by SIGKILL: {error}");
        let _ = homing_shim::process::send_signal(parked, libc::SIGKILL);
    }
    // It ends as soon as it runs (its exit_group taken meanwhile): give
    // it a moment to, so that its parent's wait finds it ended.
    for _ in 0..20 {
        if has_ended(parked) || homing_shim::process::status_field(parked, "State:").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

/// Where a call that is an `fstat` of its fd argument (`fstat`, or
/// `newfstatat` with an empty path and `AT_EMPTY_PATH`) puts the stat: the
/// index of that pointer argument. `path_start` gives the first byte of
/// the path, wherever the caller has it.
fn fd_stat_output(n: &Notification, path_start: impl FnOnce() -> Option<u8>) -> Option<u8> {
    match n.nr as i64 {
        libc::SYS_fstat => Some(1),
        libc::SYS_newfstatat if n.args[3] & libc::AT_EMPTY_PATH as u64 != 0 => {
            (path_start()? == 0).then_some(2)
        }
        _ => None,
    }
}

/// Keeps for the fd's next read the bytes a read (`late`, its answer)
/// took at home for a thread that left.
fn keep_late(unread: Option<&mut Vec<u8>>, late: Option<&homing_proto::syscall::SyscallResult>) {
    if let (Some(unread), Some(late)) = (unread, late.filter(|late| late.ret > 0)) {
        unread.extend_from_slice(late.output(1).unwrap_or_default());
    }
}

/// Byte strings as C strings (one with a NUL inside is left out).
fn c_strings(list: &[Vec<u8>]) -> Vec<CString> {
    list.iter()
        .filter_map(|bytes| CString::new(bytes.clone()).ok())
        .collect()
}

/// Waits (up to a second) until process `pid`, the agent's child, killed,
/// has been reaped by the thread that waits for it: its pid is free then.
async fn wait_until_reaped(pid: i32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// The children of process `group` here, by host pid: thread `tid`'s
/// oldest first, then the other threads'.
fn children_of(group: i32, tid: i32) -> Vec<i32> {
    let mut threads = vec![tid];
    let others = homing_shim::process::threads(group).unwrap_or_default();
    threads.extend(others.into_iter().filter(|thread| *thread != tid));
    threads
        .into_iter()
        .flat_map(|thread| {
            thread_children(group, thread)
                .split_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The children of thread `tid` of process `group`, by host pid.
fn thread_children(group: i32, tid: i32) -> String {
    homing_shim::process::read_proc(format!("/proc/{group}/task/{tid}/children"))
        .unwrap_or_default()
}

/// Whether process `pid` (a guest's child) has ended: a zombie.
fn has_ended(pid: i32) -> bool {
    homing_shim::process::status_field(pid, "State:").is_some_and(|state| state.starts_with('Z'))
}

/// The signals `call` makes a signalfd for, if it is a `signalfd` or
/// `signalfd4` (its mask travels as input 1).
fn signalfd_mask(call: &SyscallCall) -> Option<u64> {
    if ![libc::SYS_signalfd, libc::SYS_signalfd4].contains(&(call.nr as i64)) {
        return None;
    }
    let mask = call.inputs.iter().find(|input| input.index == 1)?;
    Some(u64::from_ne_bytes(mask.bytes.get(..8)?.try_into().ok()?))
}

/// How a call that went home ended for the guest thread that made it.
enum Waited {
    /// Home answered.
    Done(homing_proto::syscall::SyscallResult),
    /// The thread no longer waits (a signal took it away, or it died);
    /// with what the call did at home, if it was asked to wait for that.
    Left(Option<homing_proto::syscall::SyscallResult>),
    /// A signal pending here ends the wait: its temporary mask, this one,
    /// lets it through.
    SignalLetThrough(u64),
    /// A read of a signalfd of these signals, one of which is pending
    /// here (see [`Context::read_signals_here`]).
    SignalsHere(u64),
}

/// Whether the agent answered a call it took, or holds it unanswered
/// (see [`Member::taken_calls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Answered,
    Unanswered,
}

/// What watching a thread whose call is out at home found.
enum Watched {
    Ended(Waited),
    /// A signal the signalfd read asks for is pending here.
    SignalsHere(u64),
    /// A signal is pending here that makes a signalfd among the waited
    /// fds ready.
    SignalfdReady,
    /// A signal waits for the thread, held back by its call (see
    /// [`SignalWaiting`]): home is to end the call.
    SignalHeldBack {
        own_signal: bool,
    },
}

/// A signal the kernel will give a thread once it leaves the call it is in.
enum SignalWaiting {
    /// Pending for the thread, or for its process of one thread.
    ForThisThread,
    /// Pending for its process of several threads, which may give it to
    /// another thread.
    ForTheProcess,
}

/// Whether one of `signals` is pending for thread `tid`, or for its
/// process of one thread: sure to be taken by that thread.
fn pending_for_thread(tid: i32, signals: u64) -> bool {
    signals_pending_for_thread(tid) & signals != 0
}

/// The signals pending for thread `tid`, or for its process of one
/// thread (see [`pending_for_thread`]).
fn signals_pending_for_thread(tid: i32) -> u64 {
    homing_shim::process::signals(tid).map_or(0, |s| match s.threads {
        1 => s.own_pending | s.shared_pending,
        _ => s.own_pending,
    })
}

/// Of the signals a signalfd asks for, those that may be raised here. Not
/// SIGCHLD: a child's end here is its end at home too, where its deputy's
/// end raises the SIGCHLD the signalfd reads.
fn raised_here(signals: u64) -> u64 {
    signals & !homing_shim::process::signal_bit(libc::SIGCHLD)
}

/// Whether a signal waits for thread `tid`: pending and not blocked. An
/// ignored signal is never pending, so a waiting one has a handler, or an
/// action (stop, end) that the thread takes once out of its call.
fn signal_waiting(tid: i32, disregarded: u64) -> Option<SignalWaiting> {
    let signals = homing_shim::process::signals(tid)?;
    let deliverable = |pending: u64| pending & !(signals.blocked | disregarded) != 0;
    if deliverable(signals.own_pending)
        || (signals.threads == 1 && deliverable(signals.shared_pending))
    {
        Some(SignalWaiting::ForThisThread)
    } else if deliverable(signals.shared_pending) {
        Some(SignalWaiting::ForTheProcess)
    } else {
        None
    }
}

/// Whether call `nr` waits for a child (`wait4`, `waitid`).
fn is_wait(nr: u64) -> bool {
    [libc::SYS_wait4, libc::SYS_waitid].contains(&(nr as i64))
}

/// Whether a call can block where it runs, for as long as it waits on
/// something else (data, a peer, a child, a lock), and so be ended by a
/// signal. Others (a `close`, a `stat`) run to their end whatever comes.
fn may_block(nr: u64) -> bool {
    [
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_recvmmsg,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_sendmmsg,
        libc::SYS_connect,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_open,
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_wait4,
        libc::SYS_waitid,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
        libc::SYS_fcntl,
        libc::SYS_flock,
        libc::SYS_ioctl,
        libc::SYS_splice,
        libc::SYS_tee,
        libc::SYS_sendfile,
        libc::SYS_semop,
        libc::SYS_semtimedop,
        libc::SYS_msgsnd,
        libc::SYS_msgrcv,
        libc::SYS_mq_timedsend,
        libc::SYS_mq_timedreceive,
    ]
    .contains(&(nr as i64))
}

/// What a call that home ended for a signal (`result`) returns to its
/// thread (see [`ERESTARTSYS`]). Interrupted (`EINTR` at home), it
/// returns what the kernel would have: a read or a wait is restarted
/// after a handler that asks for it, a poll or a System V message's send
/// or receive only when no handler ran, an `epoll_wait` or a `semop`
/// never (signal(7)). A signal that may go to another thread
/// (`own_signal` false) could leave this one with nothing to take on its
/// way out: it gets plain `EINTR`.
fn interrupted(
    nr: u64,
    mut result: homing_proto::syscall::SyscallResult,
    own_signal: bool,
) -> homing_proto::syscall::SyscallResult {
    if result.ret != -(libc::EINTR as i64) || !own_signal {
        return result;
    }
    let errno = match nr as i64 {
        libc::SYS_epoll_wait
        | libc::SYS_epoll_pwait
        | libc::SYS_epoll_pwait2
        | libc::SYS_semop
        | libc::SYS_semtimedop => libc::EINTR as i64,
        libc::SYS_poll
        | libc::SYS_ppoll
        | libc::SYS_select
        | libc::SYS_pselect6
        | libc::SYS_msgsnd
        | libc::SYS_msgrcv => ERESTARTNOHAND,
        _ => ERESTARTSYS,
    };
    result.ret = -errno;
    result
}

/// The fd numbers a waiting call names: a ppoll's pollfds, a pselect's
/// sets, an epoll_pwait's epoll fd. `None` if they cannot be read.
fn waited_fds(memory: &ProcessMemory, n: &Notification) -> Option<Vec<i32>> {
    const POLLFD: usize = 8;
    const MAX_WAITED: usize = 4096;
    match n.nr as i64 {
        libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => Some(vec![n.args[0] as i32]),
        libc::SYS_ppoll => {
            let count = n.args[1] as usize;
            if count > MAX_WAITED {
                return None;
            }
            let bytes = memory.read(n.args[0], count * POLLFD).ok()?;
            Some(
                bytes
                    .chunks_exact(POLLFD)
                    .map(|pollfd| i32::from_ne_bytes(pollfd[..4].try_into().unwrap_or_default()))
                    .filter(|fd| *fd >= 0)
                    .collect(),
            )
        }
        libc::SYS_pselect6 => {
            let count = n.args[0] as usize;
            if count > MAX_WAITED {
                return None;
            }
            let set_bytes = count.div_ceil(64) * 8;
            let mut fds = std::collections::BTreeSet::new();
            for &set in &n.args[1..4] {
                if set == 0 {
                    continue;
                }
                let bits = memory.read(set, set_bytes).ok()?;
                fds.extend((0..count).filter(|fd| bits[fd / 8] & (1 << (fd % 8)) != 0));
            }
            Some(fds.into_iter().map(|fd| fd as i32).collect())
        }
        _ => None,
    }
}

/// Lets the parent of process `pid`, whose end was held back from it,
/// hear of that end (see [`HostRole::hold_end`]).
fn release_end(pid: i32) {
    match homing_shim::held_ends::release(pid) {
        Ok(true) => trace!(pid, "end handed to its parent"),
        Ok(false) => warn!(pid, "a held process has not ended in time; still held"),
        Err(error) => warn!(pid, "cannot hand a held end to its parent: {error}"),
    }
}

/// Home's answer to a lookup asked ahead, if it has one: sent right
/// behind the lookup already answered, it comes right behind its answer;
/// one that does not (home held it for a move) is asked again.
async fn answered_ahead(
    answer: tokio::sync::oneshot::Receiver<syscall::SyscallResult>,
) -> Option<syscall::SyscallResult> {
    tokio::time::timeout(crate::read_ahead::FRESH_FOR, answer)
        .await
        .ok()?
        .ok()
        .filter(|result| result.output(syscall::NOT_ANSWERED_AHEAD).is_none())
}

/// Sends a guest a signal; one it may learn from is counted in its
/// family's traffic first (see [`Member::give`]).
fn signal_guest(pid: i32, signal: i32) {
    // Realtime signals included, which nix's `Signal` lacks.
    let _ = homing_shim::process::send_signal(pid, signal);
    SIGNALLED.notify_waiters();
}

/// Moments that may have told something to a program of any family (see
/// [`Member::traffic`]).
static CROSSED_FAMILIES: AtomicU64 = AtomicU64::new(0);

/// The buffers call `n` hands the kernel to read, from the guest's memory
/// (pointer arguments `ptrs`): each live one the call reads, a path up to
/// its NUL. `Err`: the answer the call gets instead.
fn read_inputs(
    memory: &ProcessMemory,
    n: &Notification,
    ptrs: &[syscall::PtrArg],
) -> Result<Vec<ArgData>, Answer> {
    let mut inputs = Vec::new();
    for ptr in ptrs {
        let addr = n.args[ptr.index as usize];
        if addr == 0 || ptr.dir == Dir::Out {
            continue;
        }
        let bytes = match ptr.len {
            Len::CStr => memory.read_cstr(addr, syscall::MAX_CSTR),
            _ => match syscall::buffer_len(ptr, &n.args) {
                Some(len) if len <= MAX_TRANSFER => memory.read(addr, len),
                _ => return Err(Answer::Errno(libc::EINVAL)),
            },
        };
        match bytes {
            Ok(bytes) => inputs.push(ArgData {
                index: ptr.index,
                bytes,
            }),
            Err(homing_shim::memory::MemoryError::StringTooLong { .. }) => {
                return Err(Answer::Errno(libc::ENAMETOOLONG))
            }
            Err(_) => return Err(Answer::Errno(libc::EFAULT)),
        }
    }
    Ok(inputs)
}

/// Writes what a call home wrote (`outputs`) into the guest's buffers of
/// call `n` (pointer arguments `ptrs`, lengths as `args` give them), each
/// where the table says; an output the table names no buffer for is not
/// the guest's. `waits`: the call is a wait, whose reap kept from another
/// wait may bring what this one did not ask for. `Err`: the answer the
/// call gets instead (EFAULT).
fn write_outputs(
    memory: &ProcessMemory,
    n: &Notification,
    args: &[u64; 6],
    ptrs: &[syscall::PtrArg],
    outputs: &[ArgData],
    waits: bool,
) -> Result<(), Answer> {
    for output in outputs {
        let Some(ptr) = ptrs
            .iter()
            .find(|p| p.index == output.index && p.dir != Dir::In)
        else {
            continue;
        };
        let addr = n.args[ptr.index as usize];
        if addr == 0 && waits {
            // A reap kept from another wait: this one asked for less.
            continue;
        }
        let limit = syscall::buffer_len(ptr, args).unwrap_or(0);
        if addr == 0 || output.bytes.len() > limit {
            return Err(Answer::Errno(libc::EFAULT));
        }
        if memory.write(addr, &output.bytes).is_err() {
            return Err(Answer::Errno(libc::EFAULT));
        }
    }
    Ok(())
}

/// What a member's new process takes over from the one it replaces by
/// an exec, or from its deputy at its start: what execve keeps.
struct CarriedOver {
    /// Ignored signals and the signal mask (bit N-1 for signal N).
    signals: (u64, u64),
    /// Resource limits, as (resource, soft, hard).
    limits: Vec<(u32, u64, u64)>,
    /// The nice value.
    nice: i32,
    /// The scheduling policy, where not the default.
    scheduling: Option<homing_proto::image::Scheduling>,
}

/// Whether what home said at traffic count `armed` (`None`: not answered
/// yet), `at` then, may still answer the program now (see
/// [`crate::read_ahead::fresh`]).
fn nothing_learned_since(member: &Member, armed: Option<u64>, at: std::time::Instant) -> bool {
    crate::read_ahead::fresh(armed, at, member.traffic())
}

/// Woken whenever a guest may have a new signal: the agent sent one, or a
/// guest ended (its parent's SIGCHLD). Calls out at home look again then
/// whether their thread still waits, instead of at the next poll.
static SIGNALLED: Notify = Notify::const_new();

/// How long a read whose thread left waits for what it did at home.
const LATE_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// How long a wait out at home is not ended for a SIGCHLD here: the
/// child's end takes a round trip to reach home.
const CHILD_END_REACHES_HOME: Duration = Duration::from_millis(500);

/// How long a signal for a guest of several threads waits at most for
/// the agent to take the calls they have made (see [`Member::calls_taken`]).
const UNTAKEN_CALL_WAIT: Duration = Duration::from_millis(5);

/// How often a signal for a guest of one thread looks whether it can be
/// given before the agent takes a call of its (see
/// [`Member::signal_from_home`]); it waits 50 times that at most.
const SIGNAL_WAITS_FOR_A_CALL: Duration = Duration::from_millis(1);

/// How often a call out at home looks whether a signal waits for its
/// thread, or the thread is gone, when nothing woke it sooner (a signal
/// from elsewhere on the host): at each tick of [`HostRole::still_waiting`].
const STILL_WAITING_POLL: Duration = Duration::from_millis(20);

/// Waits for a guest the agent started (its child) to end. The pidfd says
/// when: a wait alone would also take the stops of a guest being dumped
/// by ptrace, which belong to the dumping thread.
fn wait_for_exit(pid: i32, pidfd: &std::os::fd::OwnedFd) -> GuestExit {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use rustix::process::{waitpid, Pid, WaitOptions};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    while let Err(nix::Error::EINTR) = poll(&mut fds, PollTimeout::NONE) {}
    let Some(guest) = Pid::from_raw(pid) else {
        return end_a_tracer_took(pid);
    };
    // rustix's status, not nix's: nix names no realtime signal, so a
    // guest one killed was reaped, and then said to be killed by SIGKILL.
    loop {
        match waitpid(Some(guest), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return GuestExit::Code(code);
                }
                if let Some(signal) = status.terminating_signal() {
                    return GuestExit::Signal(signal);
                }
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return end_a_tracer_took(pid),
        }
    }
}

/// How guest `pid` ended where our own wait found nothing: a move's
/// tracer (ours, its parent's process) took its end as it stopped it, and
/// reaped it. Before, such a guest, ending as a move began, was said to
/// be killed (SIGKILL) whatever its status. The tracer tells the end just
/// after it takes it: it is looked for a moment.
fn end_a_tracer_took(pid: i32) -> GuestExit {
    use homing_shim::ptrace::Stop;
    let looked_from = std::time::Instant::now();
    loop {
        match homing_shim::ptrace::end_taken(pid) {
            Some(Stop::Exited(code)) => return GuestExit::Code(code),
            Some(Stop::Killed(signal)) => return GuestExit::Signal(signal),
            _ if looked_from.elapsed() < Duration::from_millis(100) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            _ => return GuestExit::Signal(libc::SIGKILL),
        }
    }
}

/// Reports the end of a forked guest, which is its guest parent's child,
/// not the agent's: its pidfd says when, its zombie's /proc entry says how
/// (the parent reaps nothing here: its waits are forwarded home). The
/// pidfd is watched by the runtime's reactor: a thread for each forked
/// guest cost every fork a thread's start and end.
fn watch_child_exit(pid: i32, exits: mpsc::UnboundedSender<(i32, GuestExit)>) {
    let watch = match homing_shim::process::EndWatch::new(pid) {
        Ok(watch) => watch,
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {
            let _ = exits.send((pid, GuestExit::Signal(libc::SIGKILL)));
            return;
        }
        Err(error) => {
            warn!(pid, "cannot watch a forked guest's exit: {error}");
            return;
        }
    };
    tokio::spawn(async move {
        watch.ended().await;
        // Its parent has a SIGCHLD now.
        SIGNALLED.notify_waiters();
        let _ = exits.send((pid, zombie_status(pid)));
    });
}

/// The wait status of an exited, unreaped process (field 52 of /proc/PID/stat).
fn zombie_status(pid: i32) -> GuestExit {
    match raw_zombie_status(pid) {
        Some(status) if status & 0x7f == 0 => GuestExit::Code((status >> 8) & 0xff),
        Some(status) => GuestExit::Signal(status & 0x7f),
        None => GuestExit::Signal(libc::SIGKILL),
    }
}

/// The child a wait reaped at home (its home pid) and, where the program
/// asked for it, how it ended.
fn reaped_at_home(
    n: &Notification,
    result: &homing_proto::syscall::SyscallResult,
) -> Option<(i32, Option<ChildEnd>)> {
    let word = |bytes: &[u8], at: usize| -> Option<i32> {
        Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    match n.nr as i64 {
        libc::SYS_wait4 if result.ret > 0 => {
            if n.args[1] == 0 {
                // No status asked for: none to differ.
                return Some((result.ret as i32, None));
            }
            let raw = word(result.output(1)?, 0)?;
            Some((result.ret as i32, Some(ChildEnd::of_status(raw))))
        }
        libc::SYS_waitid
            if result.ret == 0
                && n.args[3] & libc::WNOWAIT as u64 == 0
                && [libc::P_ALL, libc::P_PID].contains(&(n.args[0] as u32)) =>
        {
            // x86_64 siginfo_t: si_code at 8, si_pid at 16, si_status at 24.
            let siginfo = result.output(2)?;
            let pid = word(siginfo, 16).filter(|&pid| pid > 0)?;
            let end = ChildEnd {
                code: word(siginfo, 8)?,
                status: word(siginfo, 24)?,
            };
            Some((pid, Some(end)))
        }
        _ => None,
    }
}

/// Whether wait `nr` with `args` (home pids) may reap child `child`.
fn may_reap(nr: u64, args: &[u64; 6], child: i32) -> bool {
    match nr as i64 {
        // -1: any child; other values <= 0 name process groups, which are
        // not known here: the kept answer is the one home gave such a wait.
        libc::SYS_wait4 => args[0] as i32 <= 0 || args[0] as i32 == child,
        libc::SYS_waitid => match args[0] as u32 {
            libc::P_ALL | libc::P_PGID => args[3] & libc::WEXITED as u64 != 0,
            libc::P_PID => args[3] & libc::WEXITED as u64 != 0 && args[1] as i32 == child,
            _ => false,
        },
        _ => false,
    }
}

/// A child's end as `waitid` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChildEnd {
    /// `si_code`: CLD_EXITED, CLD_KILLED or CLD_DUMPED.
    code: i32,
    /// `si_status`: the exit code or the signal.
    status: i32,
}

impl ChildEnd {
    /// A raw wait status's end.
    fn of_status(raw: i32) -> Self {
        let (code, status) = match raw & 0x7f {
            0 => (libc::CLD_EXITED, (raw >> 8) & 0xff),
            signal if raw & 0x80 != 0 => (libc::CLD_DUMPED, signal),
            signal => (libc::CLD_KILLED, signal),
        };
        Self { code, status }
    }
}

/// The raw wait status of an exited, unreaped process.
fn raw_zombie_status(pid: i32) -> Option<i32> {
    homing_shim::process::stat_field(pid, 49)
}

/// Has home open the program at `path` for an exec (see
/// [`HomeCalls::open_program`]); where home's agent cannot look the path
/// up, through an fd the deputy opens for it (`O_PATH`). `Err`: that open
/// failed, with its `-errno`.
async fn open_program_at_home(
    calls: &HomeCalls,
    tid: i32,
    path: &[u8],
    behind: impl FnOnce(),
) -> Result<Result<crate::home_calls::OpenedProgram, i64>, HomeGone> {
    let opened = calls.open_program(tid, path, behind).await?;
    if !matches!(opened, Err(errno) if errno == -(libc::ENOSYS as i64)) {
        return Ok(Ok(opened));
    }
    let at = libc::O_PATH | libc::O_CLOEXEC;
    let found = match calls.open_to_read(tid, path, at).await? {
        Ok((found, _)) => found,
        Err(errno) => return Ok(Err(errno)),
    };
    let opened = calls.open_program_at(tid, found).await?;
    calls.close_read_only(tid, found)?;
    Ok(Ok(opened))
}

/// `execveat`'s flag asking only whether the exec would be allowed
/// (Linux 6.14), which libc does not name yet.
const AT_EXECVE_CHECK: i32 = 0x10000;

/// An `execve`'s or `execveat`'s arguments, as the kernel reads them.
struct ExecCall {
    dirfd: i32,
    path_at: u64,
    argv_at: u64,
    envp_at: u64,
    flags: i32,
}

impl ExecCall {
    fn of(n: &Notification) -> Self {
        let a = &n.args;
        match n.nr as i64 {
            libc::SYS_execveat => Self {
                dirfd: a[0] as i32,
                path_at: a[1],
                argv_at: a[2],
                envp_at: a[3],
                flags: a[4] as i32,
            },
            _ => Self {
                dirfd: libc::AT_FDCWD,
                path_at: a[0],
                argv_at: a[1],
                envp_at: a[2],
                flags: 0,
            },
        }
    }
}

/// The last component of `path` (all of it if it has no slash).
fn last_component(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// A NULL-terminated array of C strings in guest memory (argv, envp).
fn read_strings(memory: &ProcessMemory, at: u64) -> Result<Vec<Vec<u8>>, i32> {
    if at == 0 {
        return Ok(Vec::new());
    }
    memory
        .read_cstr_array(at, MAX_EXEC_STRINGS, MAX_EXEC_STRING)
        .map_err(|error| match error {
            // As the kernel's own exec says of them.
            MemoryError::ArrayTooLong { .. } | MemoryError::StringTooLong { .. } => libc::E2BIG,
            MemoryError::Fault { .. } => libc::EFAULT,
        })
}

/// Why an exec of the program at `path` failed: `-errno`.
fn program_error(path: &[u8], errno: i64) -> StartError {
    StartError::Program {
        path: String::from_utf8_lossy(path).into_owned(),
        message: std::io::Error::from_raw_os_error(-errno as i32).to_string(),
        errno: -errno as i32,
    }
}

/// The interpreter (and its one optional argument) a `#!` script names.
fn shebang(program: &Path) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n')?];
    let mut parts = line.trim_ascii().splitn(2, |b| *b == b' ' || *b == b'\t');
    let interpreter = parts.next()?.to_vec();
    let arg = parts
        .next()
        .map(|a| a.trim_ascii().to_vec())
        .filter(|a| !a.is_empty());
    Some((interpreter, arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_semaphore_sets_size_is_read_where_the_kernel_puts_it() {
        let at = std::mem::offset_of!(libc::semid_ds, sem_nsems);
        let mut set = vec![0xffu8; std::mem::size_of::<libc::semid_ds>()];
        set[at..at + 8].copy_from_slice(&7u64.to_ne_bytes());
        assert_eq!(semaphores_in_set(&set), Some(7));
        assert_eq!(semaphores_in_set(&set[..at + 4]), None);
        assert_eq!(
            with_semaphore_count([1, 2, 3, 4, 5, 6], 7),
            [1, 7, 3, 4, 5, 6]
        );
    }

    #[test]
    fn shebang_lines_are_split_like_the_kernel_does() {
        let dir = std::env::temp_dir().join(format!("homing-shebang-{}", std::process::id()));
        std::fs::write(&dir, b"#!/usr/bin/env  python3 \nprint(1)\n").unwrap();
        assert_eq!(
            shebang(&dir),
            Some((b"/usr/bin/env".to_vec(), Some(b"python3".to_vec())))
        );
        std::fs::write(&dir, b"\x7fELF...").unwrap();
        assert_eq!(shebang(&dir), None);
        std::fs::remove_file(&dir).unwrap();
    }
}
