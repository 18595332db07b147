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

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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
    pidfd: OwnedFd,
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
            pidfd,
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
        let nr = call.nr as i64;
        if !DATA_CALLS.contains(&nr) {
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
