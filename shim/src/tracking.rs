//! Which pages a running process writes, so a migration can send its
//! memory while it runs and then, frozen, only what it wrote since.
//!
//! This kernel has no soft-dirty bits; userfaultfd write-protection in
//! asynchronous mode takes their place. A userfaultfd is made inside the
//! process (by an injected syscall) and taken out with `pidfd_getfd`; its
//! regions are registered and write-protected. A write then just clears
//! the page's protection, with no fault handler involved, and
//! `PAGEMAP_SCAN` on `/proc/PID/pagemap` lists the pages written and
//! protects them again in the same walk.
//!
//! A mapping made after tracking started is not registered, so it reports
//! no writes: [`WriteTracker::survey`] tells such memory apart, and it is
//! sent whole.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use homing_proto::image::Region;
use linux_raw_sys::general::{
    page_region, pm_scan_arg, uffdio_api, uffdio_range, uffdio_register, uffdio_writeprotect,
    PAGE_IS_WPALLOWED, PAGE_IS_WRITTEN, PM_SCAN_WP_MATCHING, UFFDIO_REGISTER_MODE_WP,
    UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_UNPOPULATED, UFFD_USER_MODE_ONLY,
};
use linux_raw_sys::ioctl::{UFFDIO_API, UFFDIO_REGISTER, UFFDIO_WRITEPROTECT};

use crate::dump::{step, travels, DumpError, Frozen};

/// `_IOWR('f', 16, struct pm_scan_arg)`, which linux-raw-sys lacks.
const PAGEMAP_SCAN: u32 =
    0xc000_0000 | ((std::mem::size_of::<pm_scan_arg>() as u32) << 16) | ((b'f' as u32) << 8) | 16;
/// The userfaultfd API version.
pub(crate) const UFFD_API: u64 = 0xaa;
/// `UFFDIO_WRITEPROTECT_MODE_WP`.
const WRITEPROTECT_MODE_WP: u64 = 1;
/// Page ranges one `PAGEMAP_SCAN` call returns at most.
const SCAN_BATCH: usize = 4096;

/// Pages of one category, as `PAGEMAP_SCAN` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// First address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// `PAGE_IS_*` bits.
    pub categories: u64,
}

impl PageRange {
    /// The pages are tracked: a write to them since the last scan shows.
    pub fn tracked(&self) -> bool {
        self.categories & u64::from(PAGE_IS_WPALLOWED) != 0
    }

    /// Written since they were last protected.
    pub fn written(&self) -> bool {
        self.categories & u64::from(PAGE_IS_WRITTEN) != 0
    }
}

/// Tracks the writes of one process until dropped.
#[derive(Debug)]
pub struct WriteTracker {
    /// Kept open: closing it would end the tracking.
    uffd: OwnedFd,
    pagemap: File,
    /// The lowest and highest address tracked.
    span: (u64, u64),
}

impl WriteTracker {
    /// Makes a userfaultfd inside a frozen process (the only step that
    /// needs it frozen) and takes it; nothing is tracked yet. A kernel
    /// without asynchronous write-protection fails here.
    pub fn create(frozen: &Frozen) -> Result<Self, DumpError> {
        let pid = frozen.pid();
        let io_error = |error| DumpError::Io { pid, error };
        let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 | u64::from(UFFD_USER_MODE_ONLY);
        let fd = frozen.inject("userfaultfd", libc::SYS_userfaultfd, [flags, 0, 0, 0, 0, 0])?;
        let taken = take_fd(pid, fd as i32);
        frozen.inject("close", libc::SYS_close, [fd, 0, 0, 0, 0, 0])?;
        let uffd = taken.map_err(|e| io_error(step("taking its userfaultfd", e)))?;
        let mut api = uffdio_api {
            api: UFFD_API,
            features: u64::from(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED),
            ioctls: 0,
        };
        ioctl(uffd.as_fd(), UFFDIO_API, &mut api)
            .map_err(|e| io_error(step("UFFDIO_API with asynchronous write-protection", e)))?;
        let pagemap = File::open(format!("/proc/{pid}/pagemap")).map_err(io_error)?;
        Ok(Self {
            uffd,
            pagemap,
            span: (u64::MAX, 0),
        })
    }

    /// Starts tracking the writes to the regions of `layout` whose pages
    /// travel; the process may be running. A region the kernel will not
    /// register (gone or changed since the layout was taken) is left
    /// untracked: it is sent whole when the process is frozen for good.
    pub fn track(&mut self, layout: &[Region]) -> io::Result<()> {
        // Memory that cannot be read is not sent, so it needs no tracking
        // (and a large PROT_NONE reservation would cost page tables).
        for region in layout.iter().filter(|r| travels(r)) {
            let range = uffdio_range {
                start: region.start,
                len: region.end - region.start,
            };
            let mut register = uffdio_register {
                range,
                mode: u64::from(UFFDIO_REGISTER_MODE_WP),
                ioctls: 0,
            };
            if let Err(error) = ioctl(self.uffd.as_fd(), UFFDIO_REGISTER, &mut register) {
                tracing::debug!(region = %region.name, "not tracked: {error}");
                continue;
            }
            let mut protect = uffdio_writeprotect {
                range,
                mode: WRITEPROTECT_MODE_WP,
            };
            ioctl(self.uffd.as_fd(), UFFDIO_WRITEPROTECT, &mut protect)
                .map_err(|e| step("UFFDIO_WRITEPROTECT", e))?;
            self.span = (self.span.0.min(region.start), self.span.1.max(region.end));
        }
        Ok(())
    }

    /// The ranges written since tracking started or since the last call,
    /// protected again as they are listed.
    pub fn written(&mut self) -> io::Result<Vec<(u64, u64)>> {
        let written = u64::from(PAGE_IS_WRITTEN);
        let ranges = self.scan(self.span, u64::from(PM_SCAN_WP_MATCHING), written, written)?;
        Ok(ranges.iter().map(|r| (r.start, r.end)).collect())
    }

    /// The state of every page from `start` to `end` (tracked, written),
    /// without changing it.
    pub fn survey(&mut self, start: u64, end: u64) -> io::Result<Vec<PageRange>> {
        self.scan(
            (start, end),
            0,
            0,
            u64::from(PAGE_IS_WPALLOWED | PAGE_IS_WRITTEN),
        )
    }

    fn scan(
        &mut self,
        (start, end): (u64, u64),
        flags: u64,
        category_mask: u64,
        return_mask: u64,
    ) -> io::Result<Vec<PageRange>> {
        let mut found: Vec<PageRange> = Vec::new();
        let mut batch = vec![
            page_region {
                start: 0,
                end: 0,
                categories: 0,
            };
            SCAN_BATCH
        ];
        let mut from = start;
        while from < end {
            let mut arg = pm_scan_arg {
                size: std::mem::size_of::<pm_scan_arg>() as u64,
                flags,
                start: from,
                end,
                walk_end: 0,
                vec: batch.as_mut_ptr() as u64,
                vec_len: batch.len() as u64,
                max_pages: 0,
                category_inverted: 0,
                category_mask,
                category_anyof_mask: 0,
                return_mask,
            };
            let filled = ioctl(self.pagemap.as_fd(), PAGEMAP_SCAN, &mut arg)? as usize;
            for region in &batch[..filled.min(batch.len())] {
                match found.last_mut() {
                    Some(last)
                        if last.end == region.start && last.categories == region.categories =>
                    {
                        last.end = region.end
                    }
                    _ => found.push(PageRange {
                        start: region.start,
                        end: region.end,
                        categories: region.categories,
                    }),
                }
            }
            if arg.walk_end <= from {
                break;
            }
            from = arg.walk_end;
        }
        Ok(found)
    }
}

/// A copy of fd `fd` of process `pid`.
pub(crate) fn take_fd(pid: i32, fd: i32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    Ok(rustix::process::pidfd_getfd(
        &pidfd,
        fd,
        rustix::process::PidfdGetfdFlags::empty(),
    )?)
}

/// `ioctl(fd, request, arg)` for a request that reads and writes one `T`.
pub(crate) fn ioctl<T>(fd: BorrowedFd<'_>, request: u32, arg: &mut T) -> io::Result<i32> {
    // SAFETY: every caller passes the struct its request is defined with,
    // as an exclusive reference that lives across the call.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(result)
}

/// What is left to send of a process frozen after its memory was sent
/// while it ran.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FinalPlan {
    /// Memory whose writes were not tracked (mapped since tracking
    /// started, or never registered): mapped anew at the destination and
    /// sent whole.
    pub fresh: Vec<(u64, u64)>,
    /// Tracked memory written since the last scan (a page dropped with
    /// `MADV_DONTNEED` counts as written): sent again.
    pub written: Vec<(u64, u64)>,
}

impl FinalPlan {
    /// Sorts out every travelling region of `regions` by `survey`, the
    /// state of their pages.
    pub fn new(regions: &[Region], survey: &[PageRange]) -> Self {
        let mut plan = Self::default();
        let push = |list: &mut Vec<(u64, u64)>, start: u64, end: u64| match list.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => list.push((start, end)),
        };
        for region in regions.iter().filter(|r| travels(r)) {
            let mut at = region.start;
            for range in survey
                .iter()
                .filter(|r| r.end > region.start && r.start < region.end)
            {
                let start = range.start.max(region.start);
                let end = range.end.min(region.end);
                if start > at {
                    push(&mut plan.fresh, at, start);
                }
                if !range.tracked() {
                    push(&mut plan.fresh, start, end);
                } else if range.written() {
                    push(&mut plan.written, start, end);
                }
                at = at.max(end);
            }
            if at < region.end {
                push(&mut plan.fresh, at, region.end);
            }
        }
        plan
    }

    /// Everything is sent whole: nothing was tracked.
    pub fn untracked(regions: &[Region]) -> Self {
        Self::new(regions, &[])
    }
}

#[cfg(test)]
mod tests {
    use homing_proto::image::RegionKind;
    use linux_raw_sys::general::{PAGE_IS_PRESENT, PAGE_IS_SWAPPED};

    use super::*;

    fn region(start: u64, end: u64, name: &str) -> Region {
        Region {
            start,
            end,
            prot: (libc::PROT_READ | libc::PROT_WRITE) as u32,
            kind: RegionKind::Private,
            name: name.into(),
            file: None,
            advice: 0,
        }
    }

    fn range(start: u64, end: u64, categories: u32) -> PageRange {
        PageRange {
            start,
            end,
            categories: u64::from(categories),
        }
    }

    #[test]
    fn a_final_plan_resends_writes_and_sends_the_untracked_whole() {
        const TRACKED: u32 = PAGE_IS_WPALLOWED;
        let regions = [
            region(0x10000, 0x20000, ""),
            region(0x30000, 0x34000, "/usr/lib/libc.so.6"),
            region(0x40000, 0x42000, "[heap]"),
        ];
        let survey = [
            range(0x10000, 0x12000, TRACKED | PAGE_IS_PRESENT),
            range(
                0x12000,
                0x13000,
                TRACKED | PAGE_IS_PRESENT | PAGE_IS_WRITTEN,
            ),
            range(0x13000, 0x18000, TRACKED | PAGE_IS_SWAPPED),
            range(0x18000, 0x20000, PAGE_IS_PRESENT),
            range(0x30000, 0x34000, TRACKED),
            // The heap grew past what the survey saw.
            range(0x40000, 0x41000, TRACKED | PAGE_IS_SWAPPED),
        ];
        let plan = FinalPlan::new(&regions, &survey);
        assert_eq!(plan.written, vec![(0x12000, 0x13000)]);
        assert_eq!(plan.fresh, vec![(0x18000, 0x20000), (0x41000, 0x42000)]);
        assert_eq!(
            FinalPlan::untracked(&regions).fresh,
            vec![(0x10000, 0x20000), (0x30000, 0x34000), (0x40000, 0x42000)]
        );
    }
}
