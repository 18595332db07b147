//! Filling the memory of a process being restored through a userfaultfd.
//!
//! A page written with `process_vm_writev` is first faulted in, zeroed,
//! and then copied over; `UFFDIO_COPY` puts the received bytes in place as
//! the page is made. Measured here for 1 GiB: 0.19–0.35 s against
//! 0.34–0.90 s, on the vCPU the move's other work shares.
//!
//! The userfaultfd is made inside the stopped process (it belongs to the
//! memory of the process that makes it) and taken from it; its ranges are
//! registered for missing pages. While they are, a page of them can be
//! filled only this way: a write from the kernel's side (as
//! `process_vm_writev` is) into a missing page fails, since the
//! userfaultfd serves user-mode faults only (all an unprivileged process
//! may ask for). Dropping the filler closes it, which lets the ranges go:
//! it must go before the process runs, or its first touch of a page never
//! sent would wait for a page that never comes.
//!
//! Into a process stopped for its restore, a whole aligned 2 MiB block of
//! pages goes in as one huge page where the kernel allows
//! ([`PageFiller::fill_huge`]): it is written into a block of the
//! process's own memory set aside for it (`MADV_HUGEPAGE`, so the write's
//! first fault makes one huge page), and an injected `UFFDIO_MOVE` (the
//! kernel moves pages only within the caller's own memory) hands the page
//! table entry over without a copy. A fault per 4 KiB page costs about 1.3
//! µs on these machines (the hypervisor's part of each page table update):
//! 1 GiB filled 4 KiB at a time took 270 ms, by huge pages 70 ms. The
//! set-aside block and the userfaultfd's fd are what a restore adds to the
//! process, and both go (see [`PageFiller::take_staging`]) before its own
//! mappings are remade or it runs.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use linux_raw_sys::general::{
    uffdio_api, uffdio_copy, uffdio_move, uffdio_range, uffdio_register,
    UFFDIO_REGISTER_MODE_MISSING, UFFD_FEATURE_MOVE, UFFD_USER_MODE_ONLY,
};
use linux_raw_sys::ioctl::{UFFDIO_API, UFFDIO_COPY, UFFDIO_REGISTER};
use nix::time::{clock_gettime, ClockId};

use crate::memory::ProcessMemory;
use crate::tracking::{ioctl, take_fd, UFFD_API};

/// `UFFDIO_COPY_MODE_DONTWAKE`: nothing waits on the pages (the process
/// is stopped), so none is woken.
const COPY_MODE_DONTWAKE: u64 = 1;
/// `UFFDIO_MOVE_MODE_DONTWAKE`, for the same reason.
const MOVE_MODE_DONTWAKE: u64 = 1;
/// `UFFDIO_MOVE`: `_IOWR(0xAA, 5, struct uffdio_move)` (linux-raw-sys
/// has the struct, not the request).
const UFFDIO_MOVE: u64 = 0xc028_aa05;
/// Where in a `struct uffdio_move` the kernel says how much it moved.
const MOVED_AT: u64 = std::mem::offset_of!(uffdio_move, move_) as u64;
const PAGE: usize = 4096;
/// A huge page.
pub const HUGE_PAGE: u64 = 2 << 20;
/// CPU time past which writing a huge page into the staging block shows
/// memory the hypervisor must first back again: a virtual machine that
/// reports free memory to its host (free page reporting) gives back only
/// free blocks of a huge page or more, so a huge page is what comes back
/// cold, at about 4.6 ms, while 4 KiB pages are still found warm. Warm,
/// the write takes about 0.2 ms, and the 4 KiB way 0.5 ms.
const COLD_HUGE_PAGE: Duration = Duration::from_millis(1);

/// A syscall run in the process: its name (for errors), number and arguments.
pub type Inject<'a, E> = dyn FnMut(&'static str, i64, [u64; 6]) -> Result<u64, E> + 'a;

/// Fills the missing pages of registered ranges of one process.
#[derive(Debug)]
pub struct PageFiller {
    uffd: OwnedFd,
    memory: ProcessMemory,
    /// Where whole huge pages are made before they are moved in.
    staging: Option<Staging>,
    /// Huge-page blocks something was written into: a block moved in
    /// whole must find nothing there, not even an empty page table (a
    /// move into one goes page by page and breaks the staged huge page up).
    touched: Mutex<HashSet<u64>>,
}

/// What a process holds for huge pages to be moved into its memory.
#[derive(Debug)]
struct Staging {
    /// The mapping set aside (a huge page more than the block, for
    /// alignment).
    mapping: (u64, u64),
    /// The aligned block within it.
    block: u64,
    /// Where in it, outside the block, the `uffdio_move` is put.
    argument: u64,
    /// The userfaultfd's fd in the process.
    fd: u64,
    /// No more huge pages: a move failed part way (the block may no
    /// longer make one), or they come cold.
    spoiled: bool,
}

/// What [`PageFiller::take_staging`] leaves the caller to remove from the
/// process: a mapping to unmap and an fd to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagingLeft {
    /// The mapping.
    pub mapping: (u64, u64),
    /// The fd.
    pub fd: u64,
}

impl PageFiller {
    /// Makes a userfaultfd inside process `pid`, stopped, by syscalls run
    /// in it with `inject`, and registers `ranges` (mapped, anonymous, none
    /// of their pages present yet) with it. A range the kernel will not
    /// register is left out: its pages are written the other way.
    /// `huge_pages`: the process stays stopped while it is filled, so
    /// huge pages can be moved in ([`Self::fill_huge`]).
    pub(crate) fn register<E: std::fmt::Display>(
        pid: i32,
        ranges: &[(u64, u64)],
        huge_pages: bool,
        inject: &mut Inject<'_, E>,
    ) -> io::Result<Self> {
        let injected = |e: E| io::Error::other(e.to_string());
        let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 | u64::from(UFFD_USER_MODE_ONLY);
        let fd = inject("userfaultfd", libc::SYS_userfaultfd, [flags, 0, 0, 0, 0, 0])
            .map_err(injected)?;
        let taken = take_fd(pid, fd as i32);
        let uffd = match taken {
            Ok(uffd) => uffd,
            Err(error) => {
                inject("close", libc::SYS_close, [fd, 0, 0, 0, 0, 0]).map_err(injected)?;
                return Err(error);
            }
        };
        let can_move = huge_pages
            && makes_huge_pages(pid)
            && open(&uffd, u64::from(UFFD_FEATURE_MOVE)).is_ok();
        if !can_move {
            open(&uffd, 0)?;
        }
        for &(start, end) in ranges {
            let mut register = uffdio_register {
                range: uffdio_range {
                    start,
                    len: end - start,
                },
                mode: u64::from(UFFDIO_REGISTER_MODE_MISSING),
                ioctls: 0,
            };
            if let Err(error) = ioctl(uffd.as_fd(), UFFDIO_REGISTER, &mut register) {
                tracing::debug!(start, end, "not filled through the userfaultfd: {error}");
            }
        }
        let staging = if can_move {
            Staging::map(fd, inject)
                .inspect_err(|error| tracing::debug!(pid, "no huge pages staged: {error}"))
                .ok()
        } else {
            None
        };
        // The kernel moves pages only for a caller in the process itself:
        // its fd stays while huge pages may come.
        if staging.is_none() {
            inject("close", libc::SYS_close, [fd, 0, 0, 0, 0, 0]).map_err(injected)?;
        }
        Ok(Self {
            uffd,
            memory: ProcessMemory::new(pid),
            staging,
            touched: Mutex::new(HashSet::new()),
        })
    }

    /// Ends moving huge pages in: what the process holds for it is left
    /// for the caller to remove, by injected calls (or already gone with
    /// the rest of its memory). Pages go in 4 KiB at a time from then on.
    pub fn take_staging(&mut self) -> Option<StagingLeft> {
        (self.staging.take()).map(|staging| StagingLeft {
            mapping: staging.mapping,
            fd: staging.fd,
        })
    }

    /// Puts `bytes` at `address` as [`Self::fill`] does, but for each
    /// whole aligned huge page of them that finds nothing written in its
    /// place yet: that one goes in as a huge page, moved in by a call
    /// run in the process (stopped) with `inject`.
    pub fn fill_huge<E: std::fmt::Display>(
        &mut self,
        address: u64,
        bytes: &[u8],
        inject: &mut Inject<'_, E>,
        mut otherwise: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let at = address + done as u64;
            let len = ((HUGE_PAGE - at % HUGE_PAGE) as usize).min(bytes.len() - done);
            let part = &bytes[done..done + len];
            let whole = len == HUGE_PAGE as usize;
            let moved = if whole && self.touch(at) {
                self.move_in(at, part, inject)
            } else {
                0
            };
            if moved < len {
                self.fill(at + moved as u64, &part[moved..], &mut otherwise)?;
            }
            done += len;
        }
        Ok(())
    }

    /// Notes that the huge-page block of `address` is written into;
    /// whether nothing was before.
    fn touch(&self, address: u64) -> bool {
        let mut touched = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        touched.insert(address / HUGE_PAGE)
    }

    /// Writes one huge page of `bytes` into the staging block and moves it
    /// to `address`; returns how many bytes went in (the rest is left to
    /// the 4 KiB way).
    fn move_in<E: std::fmt::Display>(
        &mut self,
        address: u64,
        bytes: &[u8],
        inject: &mut Inject<'_, E>,
    ) -> usize {
        let Some(staging) = self.staging.as_mut().filter(|staging| !staging.spoiled) else {
            return 0;
        };
        // A `struct uffdio_move`, field by field.
        let argument: Vec<u8> = [address, staging.block, HUGE_PAGE, MOVE_MODE_DONTWAKE, 0]
            .iter()
            .flat_map(|word| word.to_ne_bytes())
            .collect();
        let before = thread_cpu_time();
        let staged = (self.memory.write(staging.block, bytes))
            .and_then(|()| self.memory.write(staging.argument, &argument));
        if let Err(error) = staged {
            staging.spoiled = true;
            tracing::debug!(address, "huge pages no longer staged: {error}");
            return 0;
        }
        let took = thread_cpu_time().saturating_sub(before);
        if took > COLD_HUGE_PAGE {
            // This one is paid for; the next would most likely be cold too.
            staging.spoiled = true;
            tracing::debug!(
                address,
                ?took,
                "huge pages are cold here: 4 KiB pages from now on"
            );
        }
        let request = [staging.fd, UFFDIO_MOVE, staging.argument, 0, 0, 0];
        match inject("ioctl(UFFDIO_MOVE)", libc::SYS_ioctl, request) {
            Ok(_) => bytes.len(),
            Err(error) => {
                // Part of it may have gone, page by page, which broke the
                // staged huge page up.
                staging.spoiled = true;
                let moved = (self.memory.read(staging.argument + MOVED_AT, 8).ok())
                    .and_then(|word| Some(i64::from_ne_bytes(word.try_into().ok()?)))
                    .and_then(|moved| usize::try_from(moved).ok())
                    .unwrap_or(0);
                tracing::debug!(address, moved, "huge page not moved in whole: {error}");
                moved.min(bytes.len())
            }
        }
    }

    /// Puts `bytes` (whole pages) at `address`. Pages already present, and
    /// memory not registered, are handed to `otherwise` to be written
    /// plainly.
    pub fn fill(
        &self,
        address: u64,
        bytes: &[u8],
        mut otherwise: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = address + bytes.len() as u64;
        for block in (address / HUGE_PAGE)..end.div_ceil(HUGE_PAGE) {
            self.touch(block * HUGE_PAGE);
        }
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            let mut copy = uffdio_copy {
                dst: address + done as u64,
                src: rest.as_ptr() as u64,
                len: rest.len() as u64,
                mode: COPY_MODE_DONTWAKE,
                copy: 0,
            };
            let outcome = ioctl(self.uffd.as_fd(), UFFDIO_COPY, &mut copy);
            // Bytes copied, or (negative) why none were.
            if copy.copy > 0 {
                done += copy.copy as usize;
            }
            match outcome.map_err(|e| e.raw_os_error()) {
                Ok(_) | Err(Some(libc::EAGAIN)) => {}
                // A page written before (a page sent again) is there.
                Err(Some(libc::EEXIST)) => {
                    let page = &bytes[done..(done + PAGE).min(bytes.len())];
                    otherwise(address + done as u64, page)?;
                    done += page.len();
                }
                // Not registered (mapped since): the plain way.
                Err(Some(libc::ENOENT | libc::EINVAL)) => {
                    return otherwise(address + done as u64, &bytes[done..]);
                }
                Err(errno) => {
                    return Err(errno.map_or_else(
                        || io::Error::other("UFFDIO_COPY failed"),
                        io::Error::from_raw_os_error,
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// `UFFDIO_API` asking for `features`.
fn open(uffd: &OwnedFd, features: u64) -> io::Result<()> {
    let mut api = uffdio_api {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    ioctl(uffd.as_fd(), UFFDIO_API, &mut api).map(drop)
}

/// Whether memory of `pid` set to `MADV_HUGEPAGE` gets huge pages: the
/// machine allows them, and the process has not turned them off
/// (`PR_SET_THP_DISABLE`). Where it does not, moving 4 KiB pages in one
/// by one is slower than copying them.
fn makes_huge_pages(pid: i32) -> bool {
    let machine = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|setting| !setting.contains("[never]"));
    let process = crate::dump::huge_pages_disabled(pid).is_ok_and(|disabled| !disabled);
    machine && process
}

impl Staging {
    /// Sets a block aside in the process by injected calls, where the
    /// kernel finds room (so nothing of the process is there), for the
    /// userfaultfd the process holds as `fd`.
    fn map<E: std::fmt::Display>(fd: u64, inject: &mut Inject<'_, E>) -> io::Result<Self> {
        let injected = |e: E| io::Error::other(e.to_string());
        let len = 2 * HUGE_PAGE;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        let protection = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let start = inject(
            "mmap",
            libc::SYS_mmap,
            [0, len, protection, flags, u64::MAX, 0],
        )
        .map_err(injected)?;
        let block = start.next_multiple_of(HUGE_PAGE);
        let advice = libc::MADV_HUGEPAGE as u64;
        if let Err(error) = inject(
            "madvise",
            libc::SYS_madvise,
            [block, HUGE_PAGE, advice, 0, 0, 0],
        ) {
            let _ = inject("munmap", libc::SYS_munmap, [start, len, 0, 0, 0, 0]);
            return Err(injected(error));
        }
        Ok(Self {
            mapping: (start, start + len),
            block,
            argument: if block == start {
                block + HUGE_PAGE
            } else {
                start
            },
            fd,
            spoiled: false,
        })
    }
}

/// Writes `bytes` at `address` in the memory of `memory`'s process:
/// through `filler` where it holds the range, plainly otherwise.
pub fn write_pages(
    filler: Option<&PageFiller>,
    memory: &ProcessMemory,
    address: u64,
    bytes: &[u8],
) -> io::Result<()> {
    let plainly = |at: u64, bytes: &[u8]| {
        memory
            .write(at, bytes)
            .map_err(|e| io::Error::other(e.to_string()))
    };
    match filler {
        Some(filler) => filler.fill(address, bytes, plainly),
        None => plainly(address, bytes),
    }
}

/// Writes zeros over `start..end` (whole pages) in the memory of
/// `memory`'s process, as [`write_pages`] does: where its pages must read
/// as zeros and cannot be emptied by the process itself (it runs, or the
/// memory maps a file whose pages an emptied one would read).
pub fn write_zeros(
    filler: Option<&PageFiller>,
    memory: &ProcessMemory,
    (start, end): (u64, u64),
) -> io::Result<()> {
    let zeros = vec![0u8; (end - start).min(1 << 20) as usize];
    let mut at = start;
    while at < end {
        let n = (end - at).min(zeros.len() as u64) as usize;
        write_pages(filler, memory, at, &zeros[..n])?;
        at += n as u64;
    }
    Ok(())
}
