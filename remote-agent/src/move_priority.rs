//! The agent runs ahead of the node's programs while it moves a process.
//!
//! A move's own work (reading the pages, encrypting and sending them,
//! receiving, decrypting and putting them in place) costs some 1.2 s of CPU
//! per GiB, on the CPUs the node's programs use too: the process being
//! moved among them, since it keeps running while its memory is sent. At
//! equal priority a busy node stretched the move itself (docs/design.md).
//! While a move is under way, every thread of the agent runs on the
//! round-robin real-time scheduler at its lowest priority
//! ([`homing_shim::process::LOWEST_REAL_TIME`]): a thread of the move that
//! wakes (a packet came, a run of pages was read) runs at once instead of
//! waiting out a program's time slice, which a nice value alone did not
//! give it. Reset-on-fork keeps it to the agent's threads: a guest the
//! agent starts or restores meanwhile, and a thread it starts, begins on
//! the fair scheduler (a thread of the move then joins with
//! [`join_this_thread`]). The kernel keeps a share of each CPU for the
//! fair scheduler (its fair server, or real-time throttling on older
//! kernels), and a move's threads wait for the link and for each other
//! often, so the programs go on with what the move leaves them; the
//! process being moved is frozen only for its last pages either way.
//!
//! Where real time is refused (an agent that is not root), every thread
//! runs at [`MOVING_NICE`] instead. Either way the agent's scheduling
//! group, where the kernel groups by session, runs at [`MOVING_NICE`]
//! too: the guests of a host share its agent's group, so they run ahead
//! of the host's other sessions for as long, each at its own nice value
//! within the group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use homing_shim::process::{set_fair, set_real_time, LOWEST_REAL_TIME};
use rustix::process::getpriority_process;

/// The agent's nice value while it moves a process, where real time is
/// refused; its scheduling group's in any case.
pub const MOVING_NICE: i32 = -10;

/// How the agent's threads run while moves are under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ahead {
    /// No move is under way.
    Not,
    /// On the real-time scheduler.
    RealTime,
    /// At [`MOVING_NICE`].
    Nice,
}

/// Whether the agent's threads are on the real-time scheduler; read
/// without the lock, on every call's way.
static REAL_TIME: AtomicBool = AtomicBool::new(false);

/// Moves under way, how the agent runs ahead meanwhile, and its
/// priority before the first.
static MOVES: Mutex<Moves> = Mutex::new(Moves {
    under_way: 0,
    ahead: Ahead::Not,
    before: Priority {
        threads: 0,
        group: None,
    },
});

#[derive(Debug)]
struct Moves {
    under_way: usize,
    ahead: Ahead,
    before: Priority,
}

/// The agent's priority on the fair scheduler: its threads' nice value
/// and, where the kernel groups processes by session
/// (`CONFIG_SCHED_AUTOGROUP`), its group's. Within a group threads share
/// by nice value; between groups, the groups share by theirs. The agent's
/// guests are in its group (it starts them); the programs at home are in
/// their users' sessions.
#[derive(Debug, Clone, Copy)]
struct Priority {
    threads: i32,
    group: Option<i32>,
}

/// The agent's scheduling group, where there is one.
const AUTOGROUP: &str = "/proc/self/autogroup";

impl Priority {
    fn now() -> Self {
        // "/autogroup-42 nice 0"
        let group = std::fs::read_to_string(AUTOGROUP)
            .ok()
            .and_then(|line| line.split_whitespace().nth(2)?.parse().ok());
        Priority {
            threads: getpriority_process(None).unwrap_or(0),
            group,
        }
    }

    fn set_group(self) {
        if let Some(nice) = self.group {
            set_group(nice);
        }
    }
}

/// While one lives, the agent runs ahead of the node's programs.
#[derive(Debug)]
pub struct MovePriority(());

impl MovePriority {
    /// Raises the agent's priority, unless another move has already.
    pub fn raise() -> Self {
        let mut moves = MOVES.lock().unwrap_or_else(|e| e.into_inner());
        if moves.under_way == 0 {
            let mut before = Priority::now();
            // A group already this far ahead is left alone, and so is not
            // set back: another process of the session (a second agent
            // started from one shell) may have raised it for a move of
            // its own, and must not find it kept raised after both.
            before.group = before.group.filter(|&nice| nice > MOVING_NICE);
            moves.ahead = if every_thread(|tid| set_real_time(tid, LOWEST_REAL_TIME)) {
                Ahead::RealTime
            } else {
                // Those that took real time leave it again.
                let nice = MOVING_NICE.min(before.threads);
                every_thread(|tid| set_fair(tid, nice));
                Ahead::Nice
            };
            if before.group.is_some() {
                set_group(MOVING_NICE);
            }
            moves.before = before;
            REAL_TIME.store(moves.ahead == Ahead::RealTime, Ordering::Relaxed);
        }
        moves.under_way += 1;
        MovePriority(())
    }
}

impl Drop for MovePriority {
    fn drop(&mut self) {
        let mut moves = MOVES.lock().unwrap_or_else(|e| e.into_inner());
        moves.under_way -= 1;
        if moves.under_way == 0 {
            REAL_TIME.store(false, Ordering::Relaxed);
            let before = moves.before;
            every_thread(|tid| set_fair(tid, before.threads));
            before.set_group();
            moves.ahead = Ahead::Not;
        }
    }
}

/// Brings the calling thread, started while a move is under way, to the
/// priority the agent's other threads have meanwhile: a thread started by
/// one on the real-time scheduler begins on the fair one. The thread is
/// put back with the others when the last move ends.
pub fn join_this_thread() {
    let moves = MOVES.lock().unwrap_or_else(|e| e.into_inner());
    let result = match moves.ahead {
        Ahead::Not => Ok(()),
        Ahead::RealTime => set_real_time(0, LOWEST_REAL_TIME),
        Ahead::Nice => set_fair(0, MOVING_NICE.min(moves.before.threads)),
    };
    if let Err(error) = result {
        tracing::debug!("a thread of a move cannot run ahead: {error}");
    }
}

/// Whether the agent's threads are on the real-time scheduler now. They
/// must not poll then: a real-time thread's `sched_yield` lets no program
/// run.
pub fn on_real_time() -> bool {
    REAL_TIME.load(Ordering::Relaxed)
}

/// Sets the agent's scheduling group's nice value.
fn set_group(nice: i32) {
    if let Err(error) = std::fs::write(AUTOGROUP, nice.to_string()) {
        tracing::debug!(nice, "cannot set the agent's group priority: {error}");
    }
}

/// Applies `set` to each thread of this process, stopping at the first
/// refusal (not root: the move runs at the priority it has); whether every
/// thread took it. A thread started later takes its starter's priority,
/// or the fair scheduler's after a real-time starter.
fn every_thread(set: impl Fn(i32) -> std::io::Result<()>) -> bool {
    let Ok(threads) = homing_shim::process::threads(std::process::id() as i32) else {
        return false;
    };
    for tid in threads {
        match set(tid) {
            Ok(()) => {}
            // It ended since the look.
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {}
            Err(error) => {
                tracing::debug!(tid, "cannot set a thread's priority: {error}");
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    struct SetBackOnDrop(Priority);

    impl Drop for SetBackOnDrop {
        fn drop(&mut self) {
            self.0.set_group();
        }
    }

    fn nice_of(tid: i32) -> i32 {
        getpriority_process(rustix::process::Pid::from_raw(tid)).expect("getpriority")
    }

    /// Real time at the lowest priority, or the fair scheduler at this nice value.
    fn runs(tid: i32) -> Result<i32, i32> {
        match homing_shim::process::scheduling(tid).expect("the thread's policy") {
            (libc::SCHED_RR, priority) => Ok(priority),
            (libc::SCHED_OTHER, _) => Err(nice_of(tid)),
            other => panic!("unexpected scheduling {other:?}"),
        }
    }

    #[test]
    fn every_thread_runs_ahead_while_a_move_is_under_way() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: only root may raise a priority");
            return;
        }
        // The group is the session's running the test: whatever fails,
        // it gets its priority back.
        let _session = SetBackOnDrop(Priority::now());
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            tid_tx
                .send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            let _ = stop_rx.recv();
        });
        let other_tid = tid_rx.recv().unwrap();
        let before = runs(other_tid);
        assert!(before.is_err(), "on the fair scheduler before");
        let group_before = Priority::now().group;
        let first = MovePriority::raise();
        let second = MovePriority::raise();
        assert_eq!(
            runs(other_tid),
            Ok(LOWEST_REAL_TIME),
            "raised for the first move"
        );
        assert!(on_real_time());
        if let Some(group) = Priority::now().group {
            assert_eq!(group, MOVING_NICE, "its scheduling group too");
        }
        // A thread started meanwhile starts on the fair scheduler, and a
        // process it starts stays there; the thread joins the move.
        let started = std::thread::spawn(|| {
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            let at_start = runs(tid);
            let child = std::process::Command::new("sleep")
                .arg("10")
                .spawn()
                .expect("sleep");
            let child_runs = runs(child.id() as i32);
            join_this_thread();
            let joined = runs(tid);
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            (at_start, child_runs, joined)
        });
        let (at_start, child_runs, joined) = started.join().unwrap();
        assert!(at_start.is_err(), "a new thread starts fair: {at_start:?}");
        assert!(child_runs.is_err(), "and so does a process: {child_runs:?}");
        assert_eq!(joined, Ok(LOWEST_REAL_TIME), "the thread joined");
        drop(first);
        assert_eq!(
            runs(other_tid),
            Ok(LOWEST_REAL_TIME),
            "kept while a move is left"
        );
        drop(second);
        assert_eq!(runs(other_tid), before, "set back after the last");
        assert!(!on_real_time());
        assert_eq!(Priority::now().group, group_before, "the group's too");
        // A group some other process of the session raised for its own
        // move is not ours to set back: not even to where we found it,
        // once that process has (it would stay raised for good).
        if let Some(group) = group_before {
            std::fs::write(AUTOGROUP, MOVING_NICE.to_string()).expect("raise the group");
            let ours = MovePriority::raise();
            std::fs::write(AUTOGROUP, group.to_string()).expect("the other move ends");
            drop(ours);
            assert_eq!(
                Priority::now().group,
                Some(group),
                "left as the other set it"
            );
        }
        stop_tx.send(()).unwrap();
        other.join().unwrap();
    }
}
