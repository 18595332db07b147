//! Room in a running deputy for its program's memory, so a program coming
//! home can be sent while it still runs away.
//!
//! The deputy keeps serving the program while the room is made and filled:
//! each range is mapped at the very address the program has it, wherever
//! the deputy has nothing there, so the deputy's own memory is never
//! touched and the pages need no move once it makes way. Ranges the deputy
//! occupies get no room; their pages wait until it has made way.
//!
//! This module only makes and removes the room, by syscalls injected in a
//! short freeze of the deputy; the pages are written from outside, through
//! a userfaultfd made in the same freeze (see [`crate::filling`]) where the
//! kernel gives one. The deputy never touches the room, so it never waits
//! on it.

use homing_proto::image::{Region, RegionKind};

use crate::dump::{self, maps, travels, DumpError};
use crate::filling::PageFiller;
use crate::memory::ProcessMemory;
use crate::ptrace::InjectError;
use crate::restore::{uncovered, without, FileRanges, LocalFiles};

/// How far below a stack nothing may be mapped, so it can still grow:
/// the kernel keeps `stack_guard_gap` (1 MiB) free, and a deputy's main
/// thread may need a few MiB more than it has used so far.
const STACK_ROOM: u64 = 16 << 20;

/// Room made in a deputy.
#[derive(Debug)]
pub struct Room {
    /// The ranges mapped.
    pub ranges: Vec<(u64, u64)>,
    /// Those of them that map the file their region mapped.
    pub file_ranges: FileRanges,
    /// What fills their pages, if the kernel gave a userfaultfd.
    pub filler: Option<PageFiller>,
    /// Where the files the program maps are found here, for the rest of
    /// its restore.
    pub files: LocalFiles,
}

/// Maps room in `pid` for the memory of `regions` (a program's layout)
/// that travels, where `pid` has nothing: the file a region mapped where
/// `files` has it, anonymous memory otherwise. The process runs
/// on as before.
pub fn stage(pid: i32, regions: &[Region], files: LocalFiles) -> Result<Room, DumpError> {
    let frozen = dump::freeze(pid, None)?;
    let mut room = Room {
        ranges: Vec::new(),
        file_ranges: FileRanges::default(),
        filler: None,
        files,
    };
    let outcome = make_room(&frozen, regions, &mut room);
    let outcome = match outcome {
        Ok(()) => {
            // Only anonymous memory can be filled through a userfaultfd.
            let anonymous = without(&room.ranges, &room.file_ranges.backed);
            // The deputy runs on while its room is filled: no huge pages.
            room.filler = PageFiller::register(pid, &anonymous, false, &mut |call, nr, args| {
                frozen.inject(call, nr, args)
            })
            .inspect_err(|error| tracing::debug!(pid, "room written plainly: {error}"))
            .ok();
            Ok(room)
        }
        Err(error) => {
            let _ = remove(&frozen, &room.ranges);
            Err(error)
        }
    };
    frozen.thaw();
    outcome
}

fn make_room(frozen: &dump::Frozen, regions: &[Region], room: &mut Room) -> Result<(), DumpError> {
    let memory = ProcessMemory::new(frozen.pid());
    let pid = frozen.pid();
    let taken: Vec<(u64, u64)> = maps(pid)
        .map_err(|error| DumpError::Io { pid, error })?
        .iter()
        .map(|m| {
            if m.name == "[stack]" {
                (m.start.saturating_sub(STACK_ROOM), m.end)
            } else {
                (m.start, m.end)
            }
        })
        .collect();
    for region in regions.iter().filter(|r| travels(r)) {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
        if region.kind == RegionKind::Stack {
            flags |= libc::MAP_GROWSDOWN;
        }
        for (start, end) in uncovered((region.start, region.end), &taken) {
            let mapped = frozen.inject(
                "mmap",
                libc::SYS_mmap,
                [
                    start,
                    end - start,
                    (libc::PROT_READ | libc::PROT_WRITE) as u64,
                    flags as u64,
                    u64::MAX,
                    0,
                ],
            );
            match mapped {
                Ok(at) if at == start => {
                    room.ranges.push((start, end));
                    let inject = |nr, args| frozen.inject_raw(nr, args);
                    (room.file_ranges).map_file_of(
                        &memory,
                        &room.files,
                        region,
                        (start, end),
                        inject,
                    )?;
                }
                // A kernel without MAP_FIXED_NOREPLACE takes it as a hint.
                Ok(elsewhere) => remove(frozen, &[(elsewhere, elsewhere + end - start)])?,
                // Taken meanwhile, or the address space is full: the
                // pages wait for the deputy to make way.
                Err(DumpError::Inject {
                    error: error @ InjectError::Failed { .. },
                    ..
                }) => {
                    tracing::debug!(start, end, %error, "no room staged")
                }
                Err(other) => return Err(other),
            }
        }
    }
    Ok(())
}

/// Removes the room [`stage`] made (the program stays away after all).
pub fn unstage(pid: i32, staged: &[(u64, u64)]) -> Result<(), DumpError> {
    let frozen = dump::freeze(pid, None)?;
    let outcome = remove(&frozen, staged);
    frozen.thaw();
    outcome
}

fn remove(frozen: &dump::Frozen, staged: &[(u64, u64)]) -> Result<(), DumpError> {
    for &(start, end) in staged {
        frozen.inject("munmap", libc::SYS_munmap, [start, end - start, 0, 0, 0, 0])?;
    }
    Ok(())
}
