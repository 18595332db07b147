//! Busy-polling while calls flow: the agent's thread stays awake for a
//! short window after each call or answer instead of sleeping in
//! `epoll_wait`.
//!
//! A forwarded call wakes up to four sleepers: the host agent (the guest's
//! notification), the home agent (the call's packet), the host agent again
//! (the answer) and the guest. On a machine whose idle CPUs halt — every
//! virtual machine, and bare metal in deep C-states — each wakeup of a
//! sleeper on an idle CPU costs tens of microseconds, more than the rest
//! of the round trip. MPI libraries and kernel busy-polling sockets answer
//! this the same way: while traffic flows, keep polling.
//!
//! The spinner is a task on the agent's runtime that yields in a loop;
//! each yield makes tokio poll its reactor without sleeping
//! (`epoll_wait` with no timeout), so a packet or a notification that
//! arrives is taken at once. Each turn also offers the CPU to any other
//! runnable thread (`sched_yield`), so a spinning agent never holds back
//! the program, or the other agent, that shares its CPU. It spins only for
//! [`start`]'s window after the last [`keep_hot`], and sleeps on a
//! [`tokio::sync::Notify`] otherwise: an idle agent uses no CPU. An agent
//! that may run on one CPU only never spins: whatever it waits for needs
//! that CPU, and a spinner handing it over at each turn made a forwarded
//! call slower, not faster (measured with everything pinned to one vCPU).
//! Nor does one on the real-time scheduler, as the agent is while it
//! moves a process: its `sched_yield` would let no program run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long to keep polling after the last call, in nanoseconds; 0 until
/// [`start`] (and then [`keep_hot`] does nothing).
static WINDOW_NS: AtomicU64 = AtomicU64::new(0);
/// Until when (nanoseconds since [`epoch`]) the spinner polls.
static HOT_UNTIL_NS: AtomicU64 = AtomicU64::new(0);
static WAKE: Notify = Notify::const_new();

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Starts the spinner on the current runtime: from now on, each
/// [`keep_hot`] keeps the runtime polling for `window`. A zero window
/// never spins.
pub fn start(window: Duration) {
    let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    if window_ns == 0 {
        return;
    }
    epoch();
    WINDOW_NS.store(window_ns, Ordering::Relaxed);
    tokio::spawn(async {
        loop {
            WAKE.notified().await;
            while now_ns() < HOT_UNTIL_NS.load(Ordering::Relaxed)
                && !crate::move_priority::on_real_time()
            {
                std::thread::yield_now();
                tokio::task::yield_now().await;
            }
        }
    });
}

/// Whether this thread may run on more than one CPU. Asked again at a
/// spell's start once the last answer is [`AFFINITY_FRESH_NS`] old, as
/// affinity can change while the agent runs (`taskset -p`); asking at
/// every spell cost a syscall per call where spells are short.
fn may_use_two_cpus() -> bool {
    static ASKED_AT_NS: AtomicU64 = AtomicU64::new(0);
    static MAY: AtomicBool = AtomicBool::new(false);
    let now = now_ns();
    let asked_at = ASKED_AT_NS.load(Ordering::Relaxed);
    if asked_at != 0 && now.saturating_sub(asked_at) < AFFINITY_FRESH_NS {
        return MAY.load(Ordering::Relaxed);
    }
    let may = rustix::thread::sched_getaffinity(None).is_ok_and(|cpus| cpus.count() > 1);
    MAY.store(may, Ordering::Relaxed);
    ASKED_AT_NS.store(now.max(1), Ordering::Relaxed);
    may
}

/// How long an answer of [`may_use_two_cpus`] holds.
const AFFINITY_FRESH_NS: u64 = 100_000_000;

/// A call or an answer just passed: keep polling for the window from now.
pub fn keep_hot() {
    let window = WINDOW_NS.load(Ordering::Relaxed);
    if window == 0 {
        return;
    }
    let now = now_ns();
    let before = HOT_UNTIL_NS.fetch_max(now.saturating_add(window), Ordering::Relaxed);
    // A spinner still within its window sees the later end by itself; one
    // past it has stopped (or is about to) and waits to be woken. A wakeup
    // it does not need only costs it one more look at the clock.
    if before <= now && may_use_two_cpus() && !crate::move_priority::on_real_time() {
        WAKE.notify_one();
    }
}
