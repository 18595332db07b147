//! A program's listing of its own `/proc/self/task`: its threads here.
//!
//! The directory opens at home, where `/proc/self` is the deputy, whose
//! threads are its own workers: a program of one thread would count
//! three. So the agent remembers the fds that opened the program's own
//! task directory, and answers their `getdents64` itself with the
//! program's threads, by the tids it knows them by (its first thread by
//! its home pid), each entry as the kernel lays it out. The fd stays
//! home's: `fstat`, `fchdir` and the rest of it are the deputy's
//! directory's. Opening a thread's entry in it goes home, where only the
//! first is found.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::{DirEntryExt, MetadataExt};

use homing_proto::syscall::SyscallCall;

/// The flags an open of the directory to list may have besides
/// `O_DIRECTORY` (what `opendir`, `ls` and `find` use).
const LIST_FLAGS: i32 =
    libc::O_CLOEXEC | libc::O_LARGEFILE | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW;

/// Whether `call` opens the program's own task directory (by
/// `/proc/self/task` or `/proc/HOME_PID/task`) to list it.
pub fn opens_own_task_dir(call: &SyscallCall, home_pid: i32) -> bool {
    let (path_index, flags) = match call.nr as i64 {
        libc::SYS_open => (0, call.args[1] as i32),
        libc::SYS_openat => (1, call.args[2] as i32),
        _ => return false,
    };
    if flags & libc::O_DIRECTORY == 0 || flags & !(LIST_FLAGS | libc::O_DIRECTORY) != 0 {
        return false;
    }
    call.inputs
        .iter()
        .find(|input| input.index == path_index)
        .is_some_and(|input| names_own_task_dir(&input.bytes, home_pid))
}

fn names_own_task_dir(path: &[u8], home_pid: i32) -> bool {
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let Some(entry) = path
        .strip_prefix(b"/proc/")
        .and_then(|rest| rest.strip_suffix(b"/task"))
    else {
        return false;
    };
    entry == b"self" || entry == home_pid.to_string().as_bytes()
}

/// The fds of a process that opened its own task directory, and what is
/// left to list of each.
#[derive(Debug, Default)]
pub struct TaskDirs(HashMap<i32, Option<VecDeque<Vec<u8>>>>);

impl TaskDirs {
    /// `fd` opened the process's own task directory.
    pub fn opened(&mut self, fd: i32) {
        self.0.insert(fd, None);
    }

    /// `fd` is closed or replaced.
    pub fn forget(&mut self, fd: i32) {
        self.0.remove(&fd);
    }

    /// Every fd may be closed (an exec, a `close_range`).
    pub fn forget_all(&mut self) {
        self.0.clear();
    }

    /// `fd` is read again from its start (an `lseek` to 0).
    pub fn rewind(&mut self, fd: i32) {
        if let Some(listing) = self.0.get_mut(&fd) {
            *listing = None;
        }
    }

    /// The answer to a `getdents64` of `fd` into `room` bytes, if `fd`
    /// is a task directory of `host_pid`, the process here: entries as
    /// many as fit (a listing taken at the first call, the threads of
    /// then), `Err(EINVAL)` where the next does not fit at all.
    pub fn list(
        &mut self,
        fd: i32,
        room: usize,
        host_pid: i32,
        home_pid: i32,
    ) -> Option<Result<Vec<u8>, i32>> {
        let listing = self.0.get_mut(&fd)?;
        let left = listing.get_or_insert_with(|| listing_of(host_pid, home_pid).into());
        let mut given = Vec::new();
        while let Some(entry) = left.front() {
            if given.len() + entry.len() > room {
                break;
            }
            given.extend(left.pop_front()?);
        }
        if given.is_empty() && !left.is_empty() {
            return Some(Err(libc::EINVAL));
        }
        Some(Ok(given))
    }
}

/// The entries of the task directory of `host_pid` as its program sees
/// it: `.`, `..` and its threads, the first by `home_pid`, the others by
/// their tids in the home node's pid namespace here.
fn listing_of(host_pid: i32, home_pid: i32) -> Vec<Vec<u8>> {
    let dir = format!("/proc/{host_pid}/task");
    let ino = |path: &str| std::fs::metadata(path).map(|m| m.ino()).unwrap_or(1);
    let mut names = vec![
        (ino(&dir), b".".to_vec()),
        (ino(&format!("/proc/{host_pid}")), b"..".to_vec()),
    ];
    let mut threads: Vec<(u64, i32)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let tid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let seen = if tid == host_pid {
                home_pid
            } else {
                homing_shim::pid_namespace::innermost_pid(tid)?
            };
            Some((entry.ino(), seen))
        })
        .collect();
    // The kernel lists them by tid, the first thread first.
    threads.sort_by_key(|&(_, seen)| (seen != home_pid, seen));
    names.extend(
        threads
            .into_iter()
            .map(|(ino, seen)| (ino, seen.to_string().into_bytes())),
    );
    names
        .into_iter()
        .enumerate()
        .map(|(at, (ino, name))| dirent(ino, at as i64 + 1, &name))
        .collect()
}

/// One `linux_dirent64` of a directory, as `getdents64` lays it out.
fn dirent(ino: u64, next: i64, name: &[u8]) -> Vec<u8> {
    // ino, offset of the next, length, type, then the name and its NUL,
    // padded to 8 bytes.
    let length = (8 + 8 + 2 + 1 + name.len() + 1).next_multiple_of(8);
    let mut entry = Vec::with_capacity(length);
    entry.extend(ino.to_ne_bytes());
    entry.extend(next.to_ne_bytes());
    entry.extend((length as u16).to_ne_bytes());
    entry.push(libc::DT_DIR);
    entry.extend(name);
    entry.resize(length, 0);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc_view::open;

    #[test]
    fn only_an_open_of_its_own_task_directory_to_list_it_counts() {
        let listing = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NONBLOCK;
        for path in ["/proc/self/task", "/proc/77/task", "/proc/self/task/"] {
            assert!(opens_own_task_dir(&open(path, listing), 77), "{path}");
        }
        for (path, flags) in [
            ("/proc/78/task", listing),
            ("/proc/self/task/77", listing),
            ("/proc/self/tasks", listing),
            ("task", listing),
            ("/proc/self/task", libc::O_RDONLY),
            ("/proc/self/task", libc::O_PATH | libc::O_DIRECTORY),
        ] {
            assert!(!opens_own_task_dir(&open(path, flags), 77), "{path}");
        }
    }

    /// The names in `getdents64` output.
    fn names(mut listing: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        while listing.len() >= 19 {
            let length = u16::from_ne_bytes([listing[16], listing[17]]) as usize;
            let name = &listing[19..length];
            let end = name.iter().position(|&b| b == 0).unwrap();
            names.push(String::from_utf8(name[..end].to_vec()).unwrap());
            listing = &listing[length..];
        }
        names
    }

    #[test]
    fn a_listing_names_this_process_by_its_home_pid_and_goes_on_where_it_stopped() {
        let me = std::process::id() as i32;
        let mut dirs = TaskDirs::default();
        assert!(dirs.list(5, 4096, me, 77).is_none());
        dirs.opened(5);
        // Room for one entry at a time: each call goes on from the last.
        assert_eq!(dirs.list(5, 8, me, 77), Some(Err(libc::EINVAL)));
        let mut seen = Vec::new();
        loop {
            let given = dirs.list(5, 32, me, 77).unwrap().unwrap();
            if given.is_empty() {
                break;
            }
            seen.extend(names(&given));
        }
        assert_eq!(seen[..3], [".", "..", "77"]);
        // Its other threads (the test harness's) are named too.
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
        assert_eq!(seen.len(), 2 + threads);
        dirs.rewind(5);
        assert_eq!(names(&dirs.list(5, 4096, me, 77).unwrap().unwrap()), seen);
        dirs.forget(5);
        assert!(dirs.list(5, 4096, me, 77).is_none());
    }
}
