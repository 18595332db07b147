//! The agent runs ahead of the node's programs while it moves a process.
//!
//! A move's own work (reading the pages, encrypting and sending them,
//! receiving, decrypting and putting them in place) costs some 1.2 s of CPU
//! per GiB, on the CPUs the node's programs use too: the process being
//! moved among them, since it keeps running while its memory is sent. At
//! equal priority a busy node stretched the move itself (1 GiB with the
//! process computing, medians of ten moves: 1.02-1.21 s, against 0.82-0.94
//! s ahead; docs/design.md). While a move is under way, every thread of
//! the agent, and its scheduling group where the kernel groups by session,
//! run at [`MOVING_NICE`]; the programs go on with what the move leaves
//! them, and the process being moved is frozen only for its last pages
//! either way. The guests of a host share its agent's group, so they run
//! ahead of the host's other sessions for as long, each at its own nice
//! value within the group.

use std::sync::Mutex;

use rustix::process::{getpriority_process, setpriority_process, Pid};

/// The agent's nice value while it moves a process.
pub const MOVING_NICE: i32 = -10;

/// Moves under way, and the agent's priority before the first.
static MOVES: Mutex<(usize, Priority)> = Mutex::new((
    0,
    Priority {
        threads: 0,
        group: None,
    },
));

/// The agent's priority: its threads' nice value and, where the kernel
/// groups processes by session (`CONFIG_SCHED_AUTOGROUP`), its group's.
/// Within a group threads share by nice value; between groups, the groups
/// share by theirs. The agent's guests are in its group (it starts them);
/// the programs at home are in their users' sessions.
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

    fn set(self) {
        set_every_thread(self.threads);
        if let Some(nice) = self.group {
            if let Err(error) = std::fs::write(AUTOGROUP, nice.to_string()) {
                tracing::debug!(nice, "cannot set the agent's group priority: {error}");
            }
        }
    }
}

/// While one lives, the agent's threads and group run at [`MOVING_NICE`].
#[derive(Debug)]
pub struct MovePriority(());

impl MovePriority {
    /// Raises the agent's priority, unless another move has already.
    pub fn raise() -> Self {
        let mut moves = MOVES.lock().unwrap_or_else(|e| e.into_inner());
        if moves.0 == 0 {
            let mut before = Priority::now();
            // A group already this far ahead is left alone, and so is not
            // set back: another process of the session (a second agent
            // started from one shell) may have raised it for a move of
            // its own, and must not find it kept raised after both.
            before.group = before.group.filter(|&nice| nice > MOVING_NICE);
            Priority {
                threads: MOVING_NICE.min(before.threads),
                group: before.group.map(|_| MOVING_NICE),
            }
            .set();
            moves.1 = before;
        }
        moves.0 += 1;
        MovePriority(())
    }
}

impl Drop for MovePriority {
    fn drop(&mut self) {
        let mut moves = MOVES.lock().unwrap_or_else(|e| e.into_inner());
        moves.0 -= 1;
        if moves.0 == 0 {
            moves.1.set();
        }
    }
}

/// Gives each thread of this process the nice value `nice`: on Linux it
/// belongs to a thread, and a thread started later inherits its starter's.
fn set_every_thread(nice: i32) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for tid in tasks.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        if let Err(error) = setpriority_process(Pid::from_raw(tid), nice) {
            // Not root: the move runs at the priority it has.
            tracing::debug!(tid, nice, "cannot set a thread's priority: {error}");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct SetBackOnDrop(Priority);

    impl Drop for SetBackOnDrop {
        fn drop(&mut self) {
            self.0.set();
        }
    }

    fn nice_of(tid: i32) -> i32 {
        getpriority_process(Pid::from_raw(tid)).expect("getpriority")
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
        let before = nice_of(other_tid);
        let group_before = Priority::now().group;
        let first = MovePriority::raise();
        let second = MovePriority::raise();
        assert_eq!(nice_of(other_tid), MOVING_NICE, "raised for the first move");
        if let Some(group) = Priority::now().group {
            assert_eq!(group, MOVING_NICE, "its scheduling group too");
        }
        drop(first);
        assert_eq!(nice_of(other_tid), MOVING_NICE, "kept while a move is left");
        drop(second);
        assert_eq!(nice_of(other_tid), before, "set back after the last");
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
