//! A time namespace whose clocks read as another node's: the guests of a
//! home node see its `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME`, not their
//! host's.
//!
//! Those clocks count from each machine's boot, so they differ from one
//! machine to the next by hours or days. A program that reads one at home
//! and again after a move, or that sleeps until an absolute monotonic
//! time (Python's `time.sleep`, a `pthread_cond_timedwait` on the
//! monotonic clock, Go's timers), would see it jump; nothing but a
//! namespace can shift what the vDSO answers. `CLOCK_REALTIME` is the
//! same everywhere (NTP) and no namespace shifts it.
//!
//! A namespace's offsets can be set only before any process is in it, by
//! a process that made it for its children: a single-threaded one, so a
//! fork of ours makes it and is gone once we hold the namespace's fd.
//! Processes enter it with `setns`, which the kernel allows only to a
//! process of one thread: a child just forked.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// How far a node's clocks are ahead of ours, in nanoseconds (negative:
/// behind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClockOffsets {
    /// Of `CLOCK_MONOTONIC`.
    pub monotonic_ns: i64,
    /// Of `CLOCK_BOOTTIME`.
    pub boottime_ns: i64,
}

/// Why a time namespace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TimeNamespaceError {
    /// Making it, setting its offsets or opening it failed (no
    /// `CAP_SYS_ADMIN`, or a kernel without time namespaces).
    #[error("cannot make a time namespace: {0}")]
    Make(std::io::Error),
}

/// The namespace's clocks read as ours shifted by `offsets`.
#[derive(Debug)]
pub struct TimeNamespace {
    fd: OwnedFd,
}

/// Reads clock `clock` (a `CLOCK_*`) in nanoseconds.
pub fn now_ns(clock: libc::clockid_t) -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, ours, on the stack.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}

impl TimeNamespace {
    /// A namespace whose monotonic and boot clocks are this process's own
    /// shifted by `offsets`.
    pub fn create(offsets: ClockOffsets) -> Result<Self, TimeNamespaceError> {
        let make = TimeNamespaceError::Make;
        // Offsets are written relative to the machine's clocks: ours may be
        // shifted already (an agent in a namespace of its own).
        let ours = own_offsets().map_err(make)?;
        let (ready_read, ready_write) = cloexec_pipe().map_err(make)?;
        let (hold_read, hold_write) = cloexec_pipe().map_err(make)?;
        let child = fork_maker(
            ready_write.as_raw_fd(),
            (hold_read.as_raw_fd(), hold_write.as_raw_fd()),
        )
        .map_err(make)?;
        drop(ready_write);
        drop(hold_read);
        let made = (|| {
            let mut answer = [0u8; 4];
            let got = nix::unistd::read(ready_read.as_raw_fd(), &mut answer)
                .map_err(std::io::Error::from)?;
            if got != 4 {
                return Err(std::io::Error::other("the maker ended before answering"));
            }
            match i32::from_ne_bytes(answer) {
                0 => {}
                errno => return Err(std::io::Error::from_raw_os_error(errno)),
            }
            let shifted = |clock: &str, ours: i64, by: i64| {
                let total = ours + by;
                format!(
                    "{clock} {} {}\n",
                    total.div_euclid(1_000_000_000),
                    total.rem_euclid(1_000_000_000)
                )
            };
            let text = shifted("monotonic", ours.monotonic_ns, offsets.monotonic_ns)
                + &shifted("boottime", ours.boottime_ns, offsets.boottime_ns);
            std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/{child}/timens_offsets"))?
                .write_all(text.as_bytes())?;
            let fd: OwnedFd =
                std::fs::File::open(format!("/proc/{child}/ns/time_for_children"))?.into();
            Ok(fd)
        })();
        // Its end closed, the maker exits; its namespace lives on in our fd.
        drop(hold_write);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
        Ok(Self {
            fd: made.map_err(make)?,
        })
    }

    /// The namespace's fd, for [`enter`] in a child.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A pipe that a program the agent starts meanwhile does not keep open
/// (which would keep the maker waiting for its end).
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into our array of two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just made, and are no one else's.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// This process's own time namespace's offsets from the machine's clocks
/// (0 outside any).
fn own_offsets() -> std::io::Result<ClockOffsets> {
    let text = std::fs::read_to_string("/proc/self/timens_offsets")?;
    let mut offsets = ClockOffsets::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(clock), Some(secs), Some(nanos)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let (Ok(secs), Ok(nanos)) = (secs.parse::<i64>(), nanos.parse::<i64>()) else {
            continue;
        };
        let ns = secs * 1_000_000_000 + nanos;
        match clock {
            "monotonic" => offsets.monotonic_ns = ns,
            "boottime" => offsets.boottime_ns = ns,
            _ => {}
        }
    }
    Ok(offsets)
}

/// Forks the namespace's maker: it makes a time namespace for its children
/// (`unshare`), says how that went on `ready` (an errno, 0 for done), and
/// waits for the end of the pipe it reads on `hold` (`held` writes it)
/// before it exits, so that we can set the namespace's offsets and open
/// it meanwhile. Raw syscalls only in it: it is a fork of a multithreaded
/// process.
fn fork_maker(ready: RawFd, (hold, held): (RawFd, RawFd)) -> std::io::Result<i32> {
    let child = crate::spawn::fork()?;
    if child != 0 {
        return Ok(child);
    }
    // Our copy of the pipe's writing end would keep it open for good.
    // SAFETY: close takes an fd of ours.
    unsafe { libc::syscall(libc::SYS_close, held) };
    // SAFETY: unshare takes a flag word.
    let unshared = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWTIME as u64) };
    let answer = if unshared < 0 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    } else {
        0
    }
    .to_ne_bytes();
    // SAFETY: writes 4 bytes from a buffer on our stack.
    unsafe { libc::syscall(libc::SYS_write, ready, answer.as_ptr(), 4usize) };
    let mut byte = [0u8; 1];
    // SAFETY: reads at most one byte into a buffer on our stack; returns
    // at the end of the pipe, once its writer has closed it.
    unsafe { libc::syscall(libc::SYS_read, hold, byte.as_mut_ptr(), 1usize) };
    crate::spawn::exit(0)
}

/// In a child just forked (one thread): enters the namespace of `fd`, so
/// that its clocks and its children's read as the namespace's. Raw
/// syscall only. Whether it did.
pub(crate) fn enter(fd: RawFd) -> bool {
    // SAFETY: setns takes an fd and a flag word.
    unsafe { libc::syscall(libc::SYS_setns, fd, libc::CLONE_NEWTIME as u64) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that enters the namespace reads its monotonic clock shifted
    /// by the offset asked for (an hour ahead here), and so would its
    /// children: what a guest of a node whose machine booted an hour
    /// earlier sees.
    #[test]
    fn a_child_in_the_namespace_reads_the_clock_shifted() {
        const HOUR_NS: i64 = 3_600_000_000_000;
        let namespace = match TimeNamespace::create(ClockOffsets {
            monotonic_ns: HOUR_NS,
            boottime_ns: HOUR_NS,
        }) {
            Ok(namespace) => namespace,
            Err(error) => {
                eprintln!("skipped: {error}");
                return;
            }
        };
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        let before = now_ns(libc::CLOCK_MONOTONIC);
        let child = crate::spawn::fork().unwrap();
        if child == 0 {
            let entered = enter(namespace.raw_fd());
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes one timespec on our stack.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let ns = if entered {
                now.tv_sec * 1_000_000_000 + now.tv_nsec
            } else {
                -1
            };
            let bytes = ns.to_ne_bytes();
            // SAFETY: writes 8 bytes from a buffer on our stack.
            unsafe {
                libc::syscall(
                    libc::SYS_write,
                    write_end.as_raw_fd(),
                    bytes.as_ptr(),
                    8usize,
                )
            };
            crate::spawn::exit(0);
        }
        drop(write_end);
        let mut bytes = [0u8; 8];
        assert_eq!(
            nix::unistd::read(read_end.as_raw_fd(), &mut bytes).unwrap(),
            8
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
        let after = now_ns(libc::CLOCK_MONOTONIC);
        let seen = i64::from_ne_bytes(bytes);
        assert!(seen >= 0, "the child could not enter the namespace");
        assert!(
            seen >= before + HOUR_NS && seen <= after + HOUR_NS,
            "child saw {seen}, expected between {} and {}",
            before + HOUR_NS,
            after + HOUR_NS
        );
    }
}
