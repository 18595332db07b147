//! Holding a process's end back from its parent.
//!
//! The kernel tells a traced process's end to its tracer first: until the
//! tracer has taken it, the zombie is the tracer's alone, and its parent
//! neither gets its SIGCHLD nor finds it with a wait. Once the tracer
//! takes it, the kernel sends the parent that SIGCHLD and leaves the
//! zombie to its wait, as if it had just ended.
//!
//! A guest whose child ends must hear of it when home's kernel would let
//! it: a SIGCHLD that comes while one of its calls waits for the
//! supervisor, not yet taken, ends that call with `EINTR` under a handler
//! that asks for no restart, where at home its `wait4` would have returned
//! the child. And its own wait must reap here the child home reaped, not
//! another that ended first here. So the supervisor traces each child
//! about to end and lets its parent hear of the end when that is safe.
//!
//! A tracer is a thread, and its tracees go free when it ends: the
//! tracing is done by one thread of its own that lives as long as the
//! [`EndHolder`]. Any thread of the process may take an end.

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ptrace::{self, Options};

/// How long a release waits for a held process to finish ending (its
/// other threads die first).
const ENDING_WAIT: Duration = Duration::from_secs(1);

type Request = (i32, mpsc::SyncSender<io::Result<()>>);

/// The thread that traces processes about to end.
#[derive(Debug)]
pub struct EndHolder {
    requests: mpsc::Sender<Request>,
}

impl EndHolder {
    /// Starts the tracing thread.
    pub fn start() -> io::Result<Self> {
        let (requests, inbox) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("held-ends".to_owned())
            .spawn(move || {
                for (pid, reply) in inbox {
                    let _ = reply.send(ptrace::seize(pid, Options::default()));
                }
            })?;
        Ok(Self { requests })
    }

    /// Traces process `pid` (its first thread, which the kernel reports
    /// the process's end by), about to end: its parent hears of its end
    /// only through [`release`]. Fails for a process traced already.
    pub fn hold(&self, pid: i32) -> io::Result<()> {
        let gone = || io::Error::other("the held-ends thread is gone");
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests.send((pid, reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

/// Lets the parent of held process `pid` hear of its end: its SIGCHLD
/// comes now, and its wait finds it. Waits a moment for a process still
/// ending. `Ok(false)` if it has not ended by then: it stays held.
pub fn release(pid: i32) -> io::Result<bool> {
    let deadline = Instant::now() + ENDING_WAIT;
    let mut pause = Duration::from_micros(20);
    loop {
        match ptrace::take_end(pid)? {
            true => return Ok(true),
            false if Instant::now() > deadline => return Ok(false),
            false => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
    }
}
