//! The home side's fast path: data syscalls on regular files run in the
//! agent itself, on a duplicate of the deputy's fd, skipping the round trip
//! through the deputy.
//!
//! `pidfd_getfd` duplicates the deputy's fd, sharing its open file
//! description: the offset, flags and access mode are the deputy's, so a
//! read here moves the same offset a read in the deputy would. Only calls
//! on regular files and directories take this path (they never block);
//! everything that changes the deputy's fd table is seen on its way there
//! and forgets the duplicates it may invalidate.
//!
//! Calls that ask who the deputy is (`getppid`, `getuid`, `getpgrp`, …)
//! are answered from its `/proc` entry, read at the call: the answer is
//! the one the deputy would get, and never stale.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use homing_proto::syscall::{self, Route, SyscallCall, SyscallResult};
use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};

/// Calls worth taking off the deputy: they act on one fd, arg 0.
const DATA_CALLS: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_getdents64,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
];

/// One deputy's duplicated fds.
pub struct FastPath {
    pid: i32,
    pidfd: OwnedFd,
    /// The deputy's `/proc/PID/stat` and `/proc/PID/status`, opened once
    /// and read again from the start for each call they answer.
    proc_stat: Option<File>,
    proc_status: Option<File>,
    /// Deputy fd number -> our duplicate, or `None` when it is not a
    /// regular file or directory (a pipe or tty must stay with the deputy:
    /// a read there may block).
    fds: HashMap<i32, Option<Arc<OwnedFd>>>,
}

impl FastPath {
    /// The fast path for deputy `pid`, if its fds can be duplicated.
    pub fn new(pid: i32) -> Option<Self> {
        let pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
        Some(Self {
            pid,
            pidfd,
            proc_stat: File::open(format!("/proc/{pid}/stat")).ok(),
            proc_status: File::open(format!("/proc/{pid}/status")).ok(),
            fds: HashMap::new(),
        })
    }

    /// Sees a call on its way to the deputy: forgets every fd it may close
    /// or replace.
    pub fn observe(&mut self, call: &SyscallCall) {
        match call.nr as i64 {
            libc::SYS_close => {
                self.fds.remove(&(call.args[0] as i32));
            }
            libc::SYS_dup2 | libc::SYS_dup3 => {
                self.fds.remove(&(call.args[1] as i32));
            }
            // close_range, and exec (close-on-exec fds): forget everything.
            libc::SYS_close_range | libc::SYS_execve => self.fds.clear(),
            _ => {}
        }
    }

    /// Runs `call` here if it qualifies; `None` sends it to the deputy.
    pub fn try_execute(&mut self, call: &SyscallCall) -> Option<SyscallResult> {
        if let Some(ret) = self.identity(call) {
            return Some(SyscallResult {
                ret,
                outputs: vec![],
            });
        }
        let nr = call.nr as i64;
        if !DATA_CALLS.contains(&nr) && !stats_the_fd(call) {
            return None;
        }
        let fd = call.args[0] as i32;
        if fd < 0 {
            return None;
        }
        let local = self.duplicate(fd)?;
        let Route::Forward(ptrs) = syscall::route(call.nr, &call.args) else {
            return None;
        };
        let mut here = call.clone();
        here.args[0] = local.as_raw_fd() as u64;
        Some(homing_shim::execute::execute(&here, &ptrs))
    }

    /// The answer to a call about the deputy's identity that returns it
    /// whole, read from `/proc` now; `None` for any other call.
    fn identity(&self, call: &SyscallCall) -> Option<i64> {
        let itself = |arg: u64| arg == 0 || arg as i32 == self.pid;
        // /proc/PID/stat: pid (comm) state ppid pgrp session ...
        let stat_field = |at: usize| -> Option<i64> {
            let text = read_again(self.proc_stat.as_ref()?)?;
            let after_comm = text.get(text.rfind(')')? + 2..)?;
            after_comm.split_whitespace().nth(at)?.parse().ok()
        };
        // /proc/PID/status: "Uid:\treal\teffective\tsaved\tfs".
        let status_field = |key: &str, at: usize| -> Option<i64> {
            let text = read_again(self.proc_status.as_ref()?)?;
            let line = text.lines().find_map(|line| line.strip_prefix(key))?;
            line.split_whitespace().nth(at)?.parse().ok()
        };
        match call.nr as i64 {
            libc::SYS_getppid => stat_field(1),
            libc::SYS_getpgrp => stat_field(2),
            libc::SYS_getpgid if itself(call.args[0]) => stat_field(2),
            libc::SYS_getsid if itself(call.args[0]) => stat_field(3),
            libc::SYS_getuid => status_field("Uid:", 0),
            libc::SYS_geteuid => status_field("Uid:", 1),
            libc::SYS_getgid => status_field("Gid:", 0),
            libc::SYS_getegid => status_field("Gid:", 1),
            _ => None,
        }
    }

    fn duplicate(&mut self, fd: i32) -> Option<Arc<OwnedFd>> {
        if let Some(known) = self.fds.get(&fd) {
            return known.clone();
        }
        let dup = pidfd_getfd(self.pidfd.as_fd(), fd, PidfdGetfdFlags::empty()).ok()?;
        let eligible = rustix::fs::fstat(&dup).is_ok_and(|st| {
            let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
            kind == rustix::fs::FileType::RegularFile || kind == rustix::fs::FileType::Directory
        });
        let entry = eligible.then(|| Arc::new(dup));
        self.fds.insert(fd, entry.clone());
        entry
    }
}

/// Whether `call` is a `newfstatat` or `statx` of its fd itself (an empty
/// path with AT_EMPTY_PATH): glibc's `fstat` is one of those.
fn stats_the_fd(call: &SyscallCall) -> bool {
    let flags_at = match call.nr as i64 {
        libc::SYS_newfstatat => 3,
        libc::SYS_statx => 2,
        _ => return false,
    };
    let empty_path = call
        .inputs
        .iter()
        .find(|input| input.index == 1)
        .is_some_and(|path| path.bytes.first().is_none_or(|&byte| byte == 0));
    call.args[flags_at] & libc::AT_EMPTY_PATH as u64 != 0 && empty_path
}

/// The whole of a `/proc` file, made anew by reading it from the start.
fn read_again(file: &File) -> Option<String> {
    let mut buffer = vec![0u8; 4096];
    let mut length = 0;
    loop {
        let room = buffer.len() - length;
        let read = file.read_at(&mut buffer[length..], length as u64).ok()?;
        length += read;
        // A /proc file gives all it has to a read with room for it.
        if read < room {
            break;
        }
        buffer.resize(2 * length, 0);
    }
    buffer.truncate(length);
    String::from_utf8(buffer).ok()
}
