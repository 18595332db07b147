//! Restoring an image into a process: a blank one forked for the purpose
//! (a guest arriving on a host), or a deputy at home whose program comes
//! back.
//!
//! Everything is done by syscall injection into the stopped process, whose
//! `syscall` instruction is its own vDSO's: its old memory is unmapped,
//! the vDSO moved to where the image had it, each region mapped and
//! filled, then the kernel state is set and every thread let go.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::time::{SystemTime, UNIX_EPOCH};

use homing_proto::image::{
    timer_left_after, MappedFile, ProcessImage, RegionKind, ThreadImage, REGS_WORDS,
};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::dump::{maps, vdso_syscall_instruction, MapsEntry};
use crate::filling::PageFiller;
use crate::memory::ProcessMemory;
use crate::pid_namespace::innermost_pid;
use crate::ptrace::{self, InjectError, Injector, Regs, Stop};
use crate::seccomp::{Filter, Listener};

const PAGE: u64 = 4096;
const SCRATCH_LEN: u64 = 64 << 10;
/// The lowest address a mapping may have (`vm.mmap_min_addr`'s default).
const MMAP_MIN: u64 = 0x10000;
/// One past the highest user address on x86_64 with 4-level page tables.
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// Why an image could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The blank process could not be made.
    #[error("cannot make a process to restore into: {0}")]
    Blank(String),
    /// ptrace or /proc failed.
    #[error("restore: {0}")]
    Io(#[from] io::Error),
    /// An injected syscall failed.
    #[error("restore: {0}")]
    Inject(#[from] InjectError),
    /// The image does not fit this host.
    #[error("the image cannot be restored here: {0}")]
    Unfit(String),
}

impl From<crate::memory::MemoryError> for RestoreError {
    fn from(error: crate::memory::MemoryError) -> Self {
        RestoreError::Io(io::Error::other(error.to_string()))
    }
}

/// A process made to receive an image: it has nothing of its own but its
/// credentials and (for a guest) its filter, whose listener the caller holds.
#[derive(Debug)]
pub struct Blank {
    /// Its pid.
    pub pid: i32,
    /// A pidfd for it.
    pub pidfd: OwnedFd,
    /// The listener of its guest filter, if it has one.
    pub listener: Option<Listener>,
}

/// Forks a blank process with credentials `(uid, gid, groups)` (applied
/// when the caller is root) and, when `filter` is given, the guest filter.
/// It dies with the calling thread.
/// `within`: the pid namespace to fork it in, and the pid it should have
/// there (it gets another if that one is taken).
pub fn spawn_blank(
    credentials: (u32, u32, &[u32]),
    filter: Option<&Filter>,
    within: Option<(&crate::pid_namespace::PidNamespace, i32)>,
) -> Result<Blank, RestoreError> {
    let (uid, gid, groups) = credentials;
    let groups: Vec<libc::gid_t> = groups.to_vec();
    let as_root = rustix::process::geteuid().is_root();
    let pid = crate::spawn::fork_child(within).map_err(|e| RestoreError::Blank(e.to_string()))?;
    if pid == 0 {
        crate::spawn::blank_child(uid, gid, &groups, as_root, filter);
    }
    let made = (|| {
        let pidfd = pidfd_open(
            Pid::from_raw(pid).expect("fork returned a pid"),
            PidfdFlags::empty(),
        )
        .map_err(|e| RestoreError::Blank(e.to_string()))?;
        let listener = match filter {
            Some(_) => Some(
                crate::spawn::take_listener(pid, &pidfd)
                    .map_err(|e| RestoreError::Blank(e.to_string()))?,
            ),
            None => None,
        };
        // The child pauses once it is ready: wait until it sleeps there.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !sleeping_in_pause(pid) {
            if std::time::Instant::now() > deadline {
                return Err(RestoreError::Blank(
                    "the blank process did not settle".into(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        Ok(Blank {
            pid,
            pidfd,
            listener,
        })
    })();
    if made.is_err() {
        // A blank that is no use must not linger.
        // SAFETY: kill and waitpid take integers and a null status pointer.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    made
}

/// The tid here of the thread of `leader`'s process whose tid in its own
/// pid namespace is `inside`.
fn thread_here(leader: i32, inside: i32) -> Result<i32, RestoreError> {
    crate::process::threads(leader)?
        .into_iter()
        .find(|&tid| innermost_pid(tid) == Some(inside))
        .ok_or_else(|| RestoreError::Blank(format!("no thread {inside} in process {leader}")))
}

fn sleeping_in_pause(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .is_ok_and(|s| s.split(' ').next() == Some(&libc::SYS_pause.to_string()))
}

/// An image being restored into a stopped process.
#[derive(Debug)]
pub struct Restorer {
    pid: i32,
    injector: Injector,
    memory: ProcessMemory,
    /// Address ranges the image's pages may be written to.
    writable: Vec<(u64, u64)>,
    image: ProcessImage,
    /// Fills the pages of the regions mapped for the image, until every
    /// page is written (it must go before the process runs).
    filler: Option<PageFiller>,
    /// Address ranges that map a file again: emptying a page there
    /// would bring the file's back, so it is written with zeros instead;
    /// a shared one's pages are the file's, and none is written.
    file_ranges: FileRanges,
    /// Where the files its regions map are found here.
    files: LocalFiles,
    /// What the process asked of its mappings is asked again.
    advised: bool,
    /// How its threads get back the tids they had, where they can.
    tid_turn: Option<KeptTids>,
    /// Signals sent it after its image's pending ones (`siginfo_t`s, in
    /// the order sent): they follow those, and go before any already
    /// pending in the process it is restored into (sent later still).
    sent_since: Vec<Vec<u8>>,
}

/// A [`TidTurn`] kept by the restorer.
struct KeptTids(TidTurn);

impl std::fmt::Debug for KeptTids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptTids")
    }
}

/// Makes a restored thread that is to have tid `wanted` (as the program
/// knew it): arranges, around `clone` (which makes the thread and returns
/// its tid), for the kernel to give that tid where it is free, and keeps
/// others from taking the turn meanwhile. What `clone` returned.
pub type TidTurn = Box<
    dyn FnMut(i32, &mut dyn FnMut() -> Result<i32, RestoreError>) -> Result<i32, RestoreError>
        + Send,
>;

const RSEQ_FLAG_UNREGISTER: u64 = 1;

/// Bytes of a `siginfo_t`.
const SIGINFO_LEN: usize = 128;

/// The most signals taken out of a process restored into, to be queued
/// again after the image's: more than a process's queue holds by default.
const MOST_PENDING_TAKEN: usize = 1 << 16;

/// Sets resource limit `(resource, soft, hard)` of the stopped process by
/// a `prlimit64` it makes itself, its struct written at `scratch`: the
/// agent may lack CAP_SYS_RESOURCE. A hard limit above what this host
/// allows the user stays as it is.
fn set_limit(
    injector: &mut Injector,
    memory: &ProcessMemory,
    scratch: u64,
    (resource, soft, hard): (u32, u64, u64),
) -> Result<(), RestoreError> {
    let limit: Vec<u8> = [soft, hard].iter().flat_map(|w| w.to_ne_bytes()).collect();
    memory.write(scratch, &limit)?;
    let set = injector.raw(libc::SYS_prlimit64, [0, resource as u64, scratch, 0, 0, 0])?;
    if set < 0 {
        tracing::debug!(
            resource,
            soft,
            hard,
            errno = -set,
            "a resource limit was not restored"
        );
    }
    Ok(())
}

/// `clone` flags of a thread, as glibc's `pthread_create` uses.
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;

impl Restorer {
    /// Seizes and stops `pid` (single-threaded: a blank, or a deputy that
    /// exec'd itself blank) to restore `image` into it. `guest`: it has the
    /// guest filter. Nothing of the process is changed yet. The image may
    /// be a layout only (its regions, no threads yet), completed by
    /// [`Self::reconcile`] before [`Self::finish`].
    pub fn attach(pid: i32, image: ProcessImage, guest: bool) -> Result<Self, RestoreError> {
        ptrace::seize(pid, ptrace::Options::default())?;
        ptrace::interrupt(pid)?;
        match ptrace::wait(pid)? {
            Stop::Exited(_) | Stop::Killed(_) => {
                return Err(RestoreError::Blank("it ended before the restore".into()))
            }
            _ => {}
        }
        // Its filter is suspended only once it is stopped: a call it made
        // between the seize and the stop would pass the filter.
        ptrace::set_options(
            pid,
            ptrace::Options {
                suspend_seccomp: guest,
                trace_clone: true,
            },
        )?;
        // Signals wait until the image's own mask is in place.
        ptrace::set_sigmask(pid, u64::MAX)?;
        let injector = Injector::new(pid, vdso_syscall_instruction(pid)?);
        Ok(Self {
            pid,
            injector,
            memory: ProcessMemory::new(pid),
            writable: Vec::new(),
            image,
            filler: None,
            file_ranges: FileRanges::default(),
            files: LocalFiles::default(),
            advised: false,
            tid_turn: None,
            sent_since: Vec::new(),
        })
    }

    /// Has [`Self::finish`] make `signals` (`siginfo_t`s, in the order
    /// sent) pending in the process after its image's pending ones, and
    /// before those pending in the process already (a deputy's, come
    /// since): the process queues each itself, which the kernel lets it
    /// do with any sender. Signals of one number then come in the order
    /// sent, wherever each waited while the process moved.
    pub fn send_since(&mut self, signals: Vec<Vec<u8>>) {
        self.sent_since = signals;
    }

    /// Has each thread [`Self::finish`] makes take its turn by `turn`, to
    /// get back the tid it had: a program may keep its threads' tids
    /// (`gettid`) and name them to the kernel later. Without it, or where
    /// the tid is taken, a thread gets the tid the kernel gives it.
    pub fn keep_tids(&mut self, turn: TidTurn) {
        self.tid_turn = Some(KeptTids(turn));
    }

    /// Makes a deputy, attached with [`Self::attach`], the one place for
    /// its program coming home: its other threads end, and all of its
    /// memory goes but the room `staged` for the program's (see
    /// [`crate::staging`]), which keeps the pages written there. The
    /// deputy has closed its own connection; its fds are the program's.
    /// `filler` fills the room's pages still missing.
    pub fn make_room(&mut self, room: crate::staging::Room) -> Result<(), RestoreError> {
        self.filler = room.filler;
        self.end_other_threads()?;
        self.empty_address_space(&room.ranges)?;
        self.writable = room.ranges;
        self.file_ranges = room.file_ranges;
        self.files = room.files;
        self.place_vdso()
    }

    fn end_other_threads(&mut self) -> Result<(), RestoreError> {
        loop {
            let others: Vec<i32> = crate::process::threads(self.pid)?
                .into_iter()
                .filter(|&tid| tid != self.pid)
                .collect();
            if others.is_empty() {
                return Ok(());
            }
            for tid in others {
                match ptrace::seize(tid, ptrace::Options::default()) {
                    Ok(()) => {}
                    // It ended in between.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
                    Err(e) => return Err(e.into()),
                }
                // A thread may end of its own meanwhile (a deputy's
                // worker does, once its connection is gone).
                let ended = |error: &io::Error| error.raw_os_error() == Some(libc::ESRCH);
                match ptrace::interrupt(tid).and_then(|()| ptrace::wait(tid)) {
                    Ok(Stop::Exited(_) | Stop::Killed(_)) => continue,
                    Ok(_) => {}
                    Err(e) if ended(&e) => continue,
                    Err(e) => return Err(e.into()),
                }
                // Signals for the process stay pending for the program.
                match ptrace::set_sigmask(tid, u64::MAX) {
                    Ok(()) => {}
                    Err(e) if ended(&e) => continue,
                    Err(e) => return Err(e.into()),
                }
                match Injector::new(tid, self.injector.syscall_at()).exit_thread() {
                    Ok(()) | Err(InjectError::Gone(_)) => {}
                    Err(InjectError::Ptrace(e)) if ended(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// [`Self::attach`], then [`Self::prepare_memory`] with no file found.
    pub fn prepare(pid: i32, image: ProcessImage, guest: bool) -> Result<Self, RestoreError> {
        let mut restorer = Self::attach(pid, image, guest)?;
        restorer.prepare_memory(LocalFiles::default())?;
        Ok(restorer)
    }

    /// Empties the process's address space and maps the image's regions,
    /// ready for their pages: a region that mapped a file maps it again
    /// where `files` has it.
    pub fn prepare_memory(&mut self, files: LocalFiles) -> Result<(), RestoreError> {
        self.files = files;
        self.empty_address_space(&[])?;
        self.place_vdso()?;
        if self.image.huge_pages_disabled {
            // Before the filler looks whether it may make huge pages.
            self.set_huge_pages()?;
        }
        self.map_regions()
    }

    /// Turns transparent huge pages off for the process, or on, as the
    /// image has them.
    fn set_huge_pages(&mut self) -> Result<(), RestoreError> {
        let off = u64::from(self.image.huge_pages_disabled);
        let request = [libc::PR_SET_THP_DISABLE as u64, off, 0, 0, 0, 0];
        (self.injector).call("prctl(PR_SET_THP_DISABLE)", libc::SYS_prctl, request)?;
        Ok(())
    }

    /// Unmaps everything but the vDSO and the ranges in `keep`.
    fn empty_address_space(&mut self, keep: &[(u64, u64)]) -> Result<(), RestoreError> {
        let special = special_span(&maps(self.pid)?)?;
        let injector = &mut self.injector;
        // What the process inherited points into memory about to go: the
        // kernel would fault writing its rseq area, or its tid on exit.
        if let Some(rseq) = ptrace::rseq(self.pid)? {
            injector.call(
                "rseq",
                libc::SYS_rseq,
                [
                    rseq.address,
                    rseq.length as u64,
                    RSEQ_FLAG_UNREGISTER,
                    rseq.signature as u64,
                    0,
                    0,
                ],
            )?;
        }
        injector.call(
            "set_robust_list",
            libc::SYS_set_robust_list,
            [0, 24, 0, 0, 0, 0],
        )?;
        injector.call("set_tid_address", libc::SYS_set_tid_address, [0; 6])?;
        let below = uncovered((MMAP_MIN, special.0), keep);
        let above = uncovered((special.1, TASK_SIZE), keep);
        for (start, end) in below.into_iter().chain(above) {
            injector.call("munmap", libc::SYS_munmap, [start, end - start, 0, 0, 0, 0])?;
        }
        Ok(())
    }

    /// Moves this process's vDSO and its data pages to where the image
    /// had them (through a spot free in both, when the two overlap).
    fn place_vdso(&mut self) -> Result<(), RestoreError> {
        let current: Vec<MapsEntry> = maps(self.pid)?
            .into_iter()
            .filter(|m| m.name.starts_with("[vdso]") || m.name.starts_with("[vvar"))
            .collect();
        let wanted: Vec<(u64, u64, &str)> = self
            .image
            .regions
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Vdso | RegionKind::Vvar))
            .map(|r| (r.start, r.end, r.name.as_str()))
            .collect();
        let mut moves = Vec::new();
        for entry in &current {
            let Some(&(start, end, _)) = wanted.iter().find(|w| w.2 == entry.name) else {
                return Err(RestoreError::Unfit(format!(
                    "the image has no {} (another kernel?)",
                    entry.name
                )));
            };
            if end - start != entry.end - entry.start {
                return Err(RestoreError::Unfit(format!(
                    "its {} is {} bytes, this kernel's {} (another kernel?)",
                    entry.name,
                    end - start,
                    entry.end - entry.start
                )));
            }
            moves.push((entry.start, start, end - start));
        }
        if moves.iter().all(|&(from, to, _)| from == to) {
            return Ok(());
        }
        let span = |pairs: &mut dyn Iterator<Item = u64>| {
            pairs.fold((u64::MAX, 0), |(lo, hi), a| (lo.min(a), hi.max(a)))
        };
        let (from_lo, _) = span(&mut moves.iter().map(|m| m.0));
        let from_hi = moves.iter().map(|m| m.0 + m.2).max().unwrap_or(0);
        let (to_lo, _) = span(&mut moves.iter().map(|m| m.1));
        let to_hi = moves.iter().map(|m| m.1 + m.2).max().unwrap_or(0);
        let total = from_hi - from_lo;
        // A spot clear of the image and of both vDSO places.
        let mut taken: Vec<(u64, u64)> = self
            .image
            .regions
            .iter()
            .map(|r| (r.start, r.end))
            .collect();
        taken.extend_from_slice(&self.writable);
        taken.push((from_lo, from_hi));
        taken.push((to_lo, to_hi));
        let temporary = free_spot(&taken, total)
            .ok_or_else(|| RestoreError::Unfit("no room to move the vDSO".into()))?;
        for &(from, _, len) in &moves {
            self.mremap(from, len, temporary + (from - from_lo))?;
        }
        for &(from, to, len) in &moves {
            self.mremap(temporary + (from - from_lo), len, to)?;
        }
        Ok(())
    }

    /// Moves a mapping; when it holds the `syscall` instruction injection
    /// uses, the instruction moves with it.
    fn mremap(&mut self, from: u64, len: u64, to: u64) -> Result<(), RestoreError> {
        let syscall_at = self.injector.syscall_at();
        self.injector.call(
            "mremap",
            libc::SYS_mremap,
            [
                from,
                len,
                len,
                (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                to,
                0,
            ],
        )?;
        if (from..from + len).contains(&syscall_at) {
            self.injector.set_syscall_at(syscall_at - from + to);
        }
        Ok(())
    }

    fn map_regions(&mut self) -> Result<(), RestoreError> {
        let regions: Vec<_> = self
            .image
            .regions
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Private | RegionKind::Stack))
            .cloned()
            .collect();
        for region in regions {
            if region.start < MMAP_MIN || region.end > TASK_SIZE || region.start >= region.end {
                return Err(RestoreError::Unfit(format!(
                    "region {:#x}-{:#x} is outside user space",
                    region.start, region.end
                )));
            }
            let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
            if region.kind == RegionKind::Stack {
                flags |= libc::MAP_GROWSDOWN;
            }
            self.injector.call(
                "mmap",
                libc::SYS_mmap,
                [
                    region.start,
                    region.end - region.start,
                    (libc::PROT_READ | libc::PROT_WRITE) as u64,
                    flags as u64,
                    u64::MAX,
                    0,
                ],
            )?;
            self.writable.push((region.start, region.end));
            self.map_file_of(&region, (region.start, region.end))?;
        }
        // Only anonymous memory can be filled through a userfaultfd.
        let anonymous = without(&self.writable, &self.file_ranges.backed);
        let injector = &mut self.injector;
        let filler = PageFiller::register(self.pid, &anonymous, true, &mut |call, nr, args| {
            injector.call(call, nr, args)
        });
        self.filler = filler
            .inspect_err(|error| {
                tracing::debug!(pid = self.pid, "pages are written plainly: {error}")
            })
            .ok();
        Ok(())
    }

    /// The ranges that map the file their region mapped: only the pages
    /// the process changed there need to come (see
    /// [`FileRanges::from_files`]).
    pub fn file_mapped(&self) -> Vec<(u64, u64)> {
        self.file_ranges.from_files()
    }

    /// Maps the file `region` mapped, where it is found here, over
    /// `range` of it: anonymous memory just mapped for it.
    fn map_file_of(
        &mut self,
        region: &homing_proto::image::Region,
        range: (u64, u64),
    ) -> Result<(), RestoreError> {
        let injector = &mut self.injector;
        (self.file_ranges).map_file_of(&self.memory, &self.files, region, range, |nr, args| {
            injector.raw(nr, args)
        })?;
        Ok(())
    }

    /// Every page of the image is written: its regions are let go by the
    /// filler, and the process may touch them.
    pub fn all_pages_written(&mut self) -> Result<(), RestoreError> {
        self.unmap_staging()?;
        self.filler = None;
        if !self.advised {
            self.advise()?;
            self.advised = true;
        }
        Ok(())
    }

    /// Asks of each mapping what the process had asked of it (`madvise`,
    /// `mlock`), and sets whether it wants huge pages. Of the advice that
    /// only tunes (huge pages, read-ahead, merging), what this kernel
    /// refuses is let go; the rest decides what the program sees (a
    /// child's memory, a core dump, memory locked in), so a refusal ends
    /// the restore, the process going on where it was.
    fn advise(&mut self) -> Result<(), RestoreError> {
        use homing_proto::image::advice;
        if let Err(error) = self.set_huge_pages() {
            tracing::debug!(pid = self.pid, "huge pages left as they were: {error}");
        }
        // A program coming home set it while away (a guest has it anyway).
        if self.image.no_new_privs {
            let request = [libc::PR_SET_NO_NEW_PRIVS as u64, 1, 0, 0, 0, 0];
            (self.injector).call("prctl(PR_SET_NO_NEW_PRIVS)", libc::SYS_prctl, request)?;
        }
        let advised: Vec<(u64, u64, u32)> = (self.image.regions.iter())
            .filter(|r| matches!(r.kind, RegionKind::Private | RegionKind::Stack))
            .filter(|r| r.advice != 0)
            .map(|r| (r.start, r.end, r.advice))
            .collect();
        if advised.iter().any(|&(.., bits)| bits & advice::LOCKED != 0) {
            self.set_lock_limit()?;
        }
        let asks = [
            (advice::DONT_FORK, libc::MADV_DONTFORK, true),
            (advice::WIPE_ON_FORK, libc::MADV_WIPEONFORK, true),
            (advice::DONT_DUMP, libc::MADV_DONTDUMP, true),
            (advice::HUGE_PAGES, libc::MADV_HUGEPAGE, false),
            (advice::NO_HUGE_PAGES, libc::MADV_NOHUGEPAGE, false),
            (advice::SEQUENTIAL, libc::MADV_SEQUENTIAL, false),
            (advice::RANDOM, libc::MADV_RANDOM, false),
            (advice::MERGEABLE, libc::MADV_MERGEABLE, false),
        ];
        for (start, end, bits) in advised {
            let len = end - start;
            for &(_, ask, seen) in asks.iter().filter(|(bit, ..)| bits & bit != 0) {
                let call = [start, len, ask as u64, 0, 0, 0];
                match self.injector.call("madvise", libc::SYS_madvise, call) {
                    Ok(_) => {}
                    Err(error) if seen => {
                        return Err(RestoreError::Unfit(format!(
                            "its memory at {start:#x} cannot be advised here as it was: {error}"
                        )))
                    }
                    Err(error) => tracing::debug!(pid = self.pid, start, "advice let go: {error}"),
                }
            }
            if bits & advice::LOCKED != 0 {
                let on_fault = u64::from(bits & advice::LOCKED_ON_FAULT != 0);
                let call = [start, len, on_fault, 0, 0, 0];
                if let Err(error) = self.injector.call("mlock2", libc::SYS_mlock2, call) {
                    return Err(RestoreError::Unfit(format!(
                        "it locks {len} bytes of memory at {start:#x}, which this node does not let it: {error}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Gives the process its own limit on locked memory now, before it
    /// locks any (its other limits are set as it is let go).
    fn set_lock_limit(&mut self) -> Result<(), RestoreError> {
        let Some(&(_, soft, hard)) =
            (self.image.rlimits.iter()).find(|(resource, ..)| *resource == libc::RLIMIT_MEMLOCK)
        else {
            return Ok(());
        };
        let scratch = self.injector.map_scratch(SCRATCH_LEN)?;
        let limit = (libc::RLIMIT_MEMLOCK, soft, hard);
        let set = set_limit(&mut self.injector, &self.memory, scratch, limit);
        self.injector.call(
            "munmap",
            libc::SYS_munmap,
            [scratch, SCRATCH_LEN, 0, 0, 0, 0],
        )?;
        set
    }

    /// Unmaps the memory the filler set aside for huge pages, which the
    /// process must never see.
    fn unmap_staging(&mut self) -> Result<(), RestoreError> {
        if let Some(left) = self.filler.as_mut().and_then(PageFiller::take_staging) {
            let (start, end) = left.mapping;
            (self.injector).call("munmap", libc::SYS_munmap, [start, end - start, 0, 0, 0, 0])?;
            (self.injector).call("close", libc::SYS_close, [left.fd, 0, 0, 0, 0, 0])?;
        }
        Ok(())
    }

    /// Writes a run of the image's pages.
    pub fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), RestoreError> {
        let end = address + bytes.len() as u64;
        if !self
            .writable
            .iter()
            .any(|&(start, stop)| start <= address && end <= stop)
        {
            return Err(RestoreError::Unfit(format!(
                "pages at {address:#x}+{} fall outside the image's regions",
                bytes.len()
            )));
        }
        let no_huge_pages = (self.image.regions.iter())
            .filter(|r| r.advice & homing_proto::image::advice::NO_HUGE_PAGES != 0)
            .any(|r| r.start < end && address < r.end);
        for (from, to) in uncovered((address, end), &self.file_ranges.shared) {
            let part = &bytes[(from - address) as usize..(to - address) as usize];
            match self.filler.as_mut() {
                Some(filler) if !no_huge_pages => {
                    let memory = &self.memory;
                    let injector = &mut self.injector;
                    let plainly =
                        |at: u64, bytes: &[u8]| memory.write(at, bytes).map_err(io::Error::other);
                    let inject = &mut |call, nr, args| injector.call(call, nr, args);
                    filler.fill_huge(from, part, inject, plainly)?;
                }
                filler => crate::filling::write_pages(filler.as_deref(), &self.memory, from, part)?,
            }
        }
        Ok(())
    }

    /// Makes the memory prepared for a layout fit `image`, the process's
    /// final state (it kept running while its pages were sent): what it
    /// unmapped since goes, what it mapped since is mapped, and the
    /// ranges in `fresh` (memory whose writes were not tracked) are mapped
    /// anew, empty, for their pages to be sent whole. The rest keeps the
    /// pages already written.
    ///
    /// A file mapping the source was told is mapped from its file here
    /// ([`Self::file_mapped`]) gets only the process's own pages of it
    /// again, so it must map the file again: where it cannot, the restore
    /// fails (and the process goes on where it was) rather than leave the
    /// file's pages empty.
    pub fn reconcile(
        &mut self,
        image: ProcessImage,
        fresh: &[(u64, u64)],
    ) -> Result<(), RestoreError> {
        let told_mapped = self.file_mapped();
        let wanted: Vec<(u64, u64, bool)> = image
            .regions
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Private | RegionKind::Stack))
            .map(|r| (r.start, r.end, r.kind == RegionKind::Stack))
            .collect();
        for &(start, end, _) in &wanted {
            if start < MMAP_MIN || end > TASK_SIZE || start >= end {
                return Err(RestoreError::Unfit(format!(
                    "region {start:#x}-{end:#x} is outside user space"
                )));
            }
        }
        let special = |r: &&homing_proto::image::Region| {
            matches!(r.kind, RegionKind::Vdso | RegionKind::Vvar)
        };
        let was: Vec<_> = self.image.regions.iter().filter(special).collect();
        let is: Vec<_> = image.regions.iter().filter(special).collect();
        if was != is {
            return Err(RestoreError::Unfit(
                "its vDSO moved while it was sent".into(),
            ));
        }
        // The final layout may want its place.
        self.unmap_staging()?;
        let keep: Vec<(u64, u64)> = wanted.iter().map(|&(s, e, _)| (s, e)).collect();
        for &(start, end) in &self.writable.clone() {
            for (from, to) in uncovered((start, end), &keep) {
                self.injector
                    .call("munmap", libc::SYS_munmap, [from, to - from, 0, 0, 0, 0])?;
            }
        }
        // A shared mapping of a file holds the file's pages, whatever the
        // process did: one that still maps the same file at the same
        // place stays, written to or not (its writes cannot be tracked).
        let unchanged_shared: Vec<(u64, u64)> = (image.regions.iter())
            .filter(|r| r.file.as_ref().is_some_and(|file| file.shared))
            .filter(|r| self.image.regions.iter().any(|old| same_file_place(old, r)))
            .flat_map(|r| covered((r.start, r.end), &self.file_ranges.shared))
            .collect();
        let fresh = without(fresh, &unchanged_shared);
        let kept: Vec<(u64, u64)> = self
            .writable
            .iter()
            .flat_map(|&w| covered(w, &keep))
            .flat_map(|range| uncovered(range, &fresh))
            .collect();
        // What is mapped anew below is anonymous.
        let still = |ranges: &[(u64, u64)]| -> Vec<(u64, u64)> {
            (ranges.iter())
                .flat_map(|&range| covered(range, &kept))
                .collect()
        };
        self.file_ranges.backed = still(&self.file_ranges.backed);
        self.file_ranges.shared = still(&self.file_ranges.shared);
        let travelling = (image.regions.iter())
            .filter(|r| matches!(r.kind, RegionKind::Private | RegionKind::Stack));
        for region in travelling {
            for (from, to) in uncovered((region.start, region.end), &kept) {
                let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
                if region.kind == RegionKind::Stack {
                    flags |= libc::MAP_GROWSDOWN;
                }
                self.injector.call(
                    "mmap",
                    libc::SYS_mmap,
                    [
                        from,
                        to - from,
                        (libc::PROT_READ | libc::PROT_WRITE) as u64,
                        flags as u64,
                        u64::MAX,
                        0,
                    ],
                )?;
                // A file mapping mapped anew maps its file again; its own
                // pages then come whole.
                self.map_file_of(region, (from, to))?;
                let owed = covered((from, to), &told_mapped);
                if region.file.is_some() && !without(&owed, &self.file_ranges.backed).is_empty() {
                    return Err(RestoreError::Unfit(format!(
                        "{} could not be mapped again at {from:#x}",
                        region.name
                    )));
                }
            }
        }
        self.writable = keep;
        self.image = image;
        Ok(())
    }

    /// Empties the pages from `address` for `len` bytes: the process
    /// dropped them after they were sent.
    pub fn discard(&mut self, address: u64, len: u64) -> Result<(), RestoreError> {
        let emptied = covered((address, address + len), &self.writable);
        let private = without(&emptied, &self.file_ranges.shared);
        for range in private
            .iter()
            .flat_map(|&r| covered(r, &self.file_ranges.backed))
        {
            crate::filling::write_zeros(self.filler.as_ref(), &self.memory, range)?;
        }
        for (from, to) in without(&emptied, &self.file_ranges.backed) {
            self.injector.call(
                "madvise",
                libc::SYS_madvise,
                [from, to - from, libc::MADV_DONTNEED as u64, 0, 0, 0],
            )?;
        }
        Ok(())
    }

    /// Sets every piece of kernel state, creates the other threads and lets
    /// them all run.
    pub fn finish(mut self) -> Result<(), RestoreError> {
        self.all_pages_written()?;
        if self.image.threads.is_empty()
            || self
                .image
                .threads
                .iter()
                .any(|t| t.regs.len() != REGS_WORDS)
        {
            return Err(RestoreError::Unfit(
                "the image has no complete thread".into(),
            ));
        }
        let injector = &mut self.injector;
        for region in self.image.regions.iter().filter(|r| {
            matches!(r.kind, RegionKind::Private | RegionKind::Stack)
                && r.prot != (libc::PROT_READ | libc::PROT_WRITE) as u32
        }) {
            injector.call(
                "mprotect",
                libc::SYS_mprotect,
                [
                    region.start,
                    region.end - region.start,
                    region.prot as u64,
                    0,
                    0,
                    0,
                ],
            )?;
        }
        let scratch = injector.map_scratch(SCRATCH_LEN)?;
        let memory = self.memory;
        let put = |bytes: &[u8]| memory.write(scratch, bytes).map_err(RestoreError::from);
        let words = |values: &[u64]| {
            values
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect::<Vec<u8>>()
        };

        // The mm fields and the auxv.
        let image = &self.image;
        let mm = image.mm;
        let auxv_at = scratch + 4096;
        let auxv: Vec<u64> = image.auxv.iter().copied().take(512).collect();
        let mut map = words(&[
            mm.start_code,
            mm.end_code,
            mm.start_data,
            mm.end_data,
            mm.start_brk,
            mm.brk,
            mm.start_stack,
            mm.arg_start,
            mm.arg_end,
            mm.env_start,
            mm.env_end,
            auxv_at,
        ]);
        map.extend_from_slice(&((auxv.len() * 8) as u32).to_ne_bytes());
        map.extend_from_slice(&u32::MAX.to_ne_bytes()); // exe_fd: keep
        put(&map)?;
        memory.write(auxv_at, &words(&auxv))?;
        injector.call(
            "prctl(PR_SET_MM_MAP)",
            libc::SYS_prctl,
            [
                libc::PR_SET_MM as u64,
                libc::PR_SET_MM_MAP as u64,
                scratch,
                map.len() as u64,
                0,
                0,
            ],
        )?;

        // Actions the process had of its own (a deputy's handlers, the
        // SIGPIPE a Rust runtime ignores) go back to the default.
        let own = signal_set(self.pid, "SigCgt:") | signal_set(self.pid, "SigIgn:");
        for signal in 1..=64u64 {
            let theirs = image
                .signal_actions
                .iter()
                .any(|a| a.signal as u64 == signal);
            let settable = !matches!(signal as i32, libc::SIGKILL | libc::SIGSTOP);
            if own & (1 << (signal - 1)) != 0 && !theirs && settable {
                put(&words(&[libc::SIG_DFL as u64, 0, 0, 0]))?;
                injector.call(
                    "rt_sigaction",
                    libc::SYS_rt_sigaction,
                    [signal, scratch, 0, 8, 0, 0],
                )?;
            }
        }
        for action in &image.signal_actions {
            put(&words(&[
                action.handler,
                action.flags,
                action.restorer,
                action.mask,
            ]))?;
            injector.call(
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                [action.signal as u64, scratch, 0, 8, 0, 0],
            )?;
        }
        injector.call(
            "personality",
            libc::SYS_personality,
            [image.personality as u64, 0, 0, 0, 0, 0],
        )?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        for (which, timer) in image.itimers.iter().enumerate().take(3) {
            if timer.value_us == 0 {
                continue;
            }
            // Only the real-time timer runs while the process is frozen.
            let left = if which == 0 {
                timer_left_after(timer.value_us, image.frozen_at_unix_ns, now)
            } else {
                timer.value_us
            };
            let timeval = |us: u64| [us / 1_000_000, us % 1_000_000];
            let mut value = timeval(timer.interval_us).to_vec();
            value.extend(timeval(left));
            put(&words(&value))?;
            injector.call(
                "setitimer",
                libc::SYS_setitimer,
                [which as u64, scratch, 0, 0, 0, 0],
            )?;
        }
        for &limit in &image.rlimits {
            set_limit(injector, &memory, scratch, limit)?;
        }

        // The leader's own state, then each other thread's, in a thread of
        // its own cloned from the leader.
        // Each thread by its tid here (for ptrace) and by the one it has
        // in its own pid namespace (for the calls it makes itself).
        let leader = self.pid;
        let leader_inside = innermost_pid(leader).unwrap_or(leader);
        let mut threads = vec![leader];
        let mut inside = vec![leader_inside];
        thread_state(injector, &memory, scratch, &image.threads[0])?;
        keep_library_tid(&memory, &image.threads[0], leader_inside)?;
        for thread in &image.threads[1..] {
            let mut clone = || {
                let tid = injector.call("clone", libc::SYS_clone, [THREAD_FLAGS, 0, 0, 0, 0, 0])?;
                Ok(tid as i32)
            };
            let tid_inside = match &mut self.tid_turn {
                Some(KeptTids(turn)) if thread.tid > 0 => turn(thread.tid, &mut clone)?,
                _ => clone()?,
            };
            let tid = thread_here(leader, tid_inside)?;
            match ptrace::wait(tid)? {
                Stop::Exited(_) | Stop::Killed(_) => {
                    return Err(RestoreError::Blank("a restored thread ended".into()))
                }
                _ => {}
            }
            let mut own = Injector::new(tid, injector.syscall_at());
            thread_state(&mut own, &memory, scratch, thread)?;
            keep_library_tid(&memory, thread, tid_inside)?;
            threads.push(tid);
            inside.push(tid_inside);
        }
        let injector = &mut self.injector;
        // What is pending in the process already came last: it is taken
        // out, and queued again after the rest.
        let mut already = Vec::new();
        let all_but_kill_and_stop: u64 = !(crate::process::signal_bit(libc::SIGKILL)
            | crate::process::signal_bit(libc::SIGSTOP));
        let no_wait = scratch + 512;
        memory.write(no_wait, &[0u8; 16])?;
        memory.write(scratch + 256, &all_but_kill_and_stop.to_ne_bytes())?;
        for _ in 0..MOST_PENDING_TAKEN {
            let taken = injector.raw(
                libc::SYS_rt_sigtimedwait,
                [scratch + 256, scratch, no_wait, 8, 0, 0],
            )?;
            if taken <= 0 {
                break;
            }
            already.push(memory.read(scratch, SIGINFO_LEN)?);
        }
        for (tid, thread) in inside.iter().zip(&image.threads) {
            for pending in &thread.pending {
                put(&pending.siginfo)?;
                injector.call(
                    "rt_tgsigqueueinfo",
                    libc::SYS_rt_tgsigqueueinfo,
                    [
                        leader_inside as u64,
                        *tid as u64,
                        signal_of(&pending.siginfo),
                        scratch,
                        0,
                        0,
                    ],
                )?;
            }
        }
        let own_shared = image.shared_pending.iter().map(|p| &p.siginfo[..]);
        let sent_since = self.sent_since.iter().map(|s| &s[..]);
        let already = already.iter().map(|s| &s[..]);
        for siginfo in own_shared.chain(sent_since).chain(already) {
            put(siginfo)?;
            let (leader, signal) = (leader_inside as u64, signal_of(siginfo));
            // A `tgkill`'s goes to the thread, as it came.
            if code_of(siginfo) == libc::SI_TKILL {
                injector.call(
                    "rt_tgsigqueueinfo",
                    libc::SYS_rt_tgsigqueueinfo,
                    [leader, leader, signal, scratch, 0, 0],
                )?;
            } else {
                injector.call(
                    "rt_sigqueueinfo",
                    libc::SYS_rt_sigqueueinfo,
                    [leader, signal, scratch, 0, 0, 0],
                )?;
            }
        }
        injector.call(
            "munmap",
            libc::SYS_munmap,
            [scratch, SCRATCH_LEN, 0, 0, 0, 0],
        )?;

        for (&tid, thread) in threads.iter().zip(&image.threads) {
            let regs: Regs = thread.regs.as_slice().try_into().expect("checked length");
            ptrace::set_regs(tid, &regs)?;
            ptrace::set_xstate(tid, &thread.xstate)?;
            ptrace::set_sigmask(tid, thread.sigmask)?;
        }
        for &tid in &threads {
            ptrace::detach(tid, 0)?;
        }
        Ok(())
    }

    /// Gives up: the process is killed.
    pub fn abandon(self) {
        // SAFETY: kill takes integers.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = ptrace::detach(self.pid, 0);
    }

    /// Gives up on a restore into an existing process (a deputy whose
    /// program was coming home): it execs `program` instead, keeping its
    /// pid, fds, cwd and credentials, and is let go.
    pub fn exec_instead(
        mut self,
        program: &std::ffi::CStr,
        argv: &[&std::ffi::CStr],
    ) -> Result<(), RestoreError> {
        let scratch = self.injector.map_scratch(SCRATCH_LEN)?;
        let (program_at, envp) = crate::dump::write_exec_arguments(
            &self.memory,
            (scratch, SCRATCH_LEN),
            program,
            argv,
            &crate::dump::environment(self.pid),
        )?;
        self.injector.call(
            "execve",
            libc::SYS_execve,
            [program_at, scratch, envp, 0, 0, 0],
        )?;
        ptrace::detach(self.pid, 0)?;
        Ok(())
    }

    /// Closes fd `fd` in the process (the listener the blank was born with).
    pub fn close(&mut self, fd: i32) -> Result<(), RestoreError> {
        self.injector
            .call("close", libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
        Ok(())
    }

    /// Marks fds close-on-exec again (a deputy becoming its program again).
    /// An fd no longer open (the deputy's own connection, say) is skipped.
    pub fn mark_close_on_exec(&mut self, fds: &[i32]) -> Result<(), RestoreError> {
        for &fd in fds {
            let marked = self.injector.raw(
                libc::SYS_fcntl,
                [
                    fd as u64,
                    libc::F_SETFD as u64,
                    libc::FD_CLOEXEC as u64,
                    0,
                    0,
                    0,
                ],
            )?;
            if marked < 0 && marked != -(libc::EBADF as i64) {
                return Err(RestoreError::Inject(InjectError::Failed {
                    call: "fcntl(F_SETFD)",
                    error: io::Error::from_raw_os_error(-marked as i32),
                }));
            }
        }
        Ok(())
    }
}

/// A signal set of `/proc/PID/status` (`"SigCgt:"`), as a mask.
fn signal_set(pid: i32, field: &str) -> u64 {
    crate::process::status_field(pid, field)
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .unwrap_or(0)
}

/// A `siginfo_t`'s `si_code`.
fn code_of(siginfo: &[u8]) -> i32 {
    siginfo
        .get(8..12)
        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0)
}

fn signal_of(siginfo: &[u8]) -> u64 {
    siginfo
        .get(..4)
        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")) as u64)
        .unwrap_or(0)
}

/// A thread's tid where its threading library keeps it, made its new one:
/// glibc asks the kernel to clear its `struct pthread`'s tid field at the
/// thread's end (`clear_child_tid`), and signals the thread
/// (`pthread_kill`), reads its attributes and CPUs and its clock by the
/// tid found there. A restored thread has another tid (the kernel gives
/// it), and with the old one each of those failed with ESRCH after a move.
/// Only where the word there is the thread's old tid: another library may
/// point `clear_child_tid` at something else (musl, at a lock).
fn keep_library_tid(
    memory: &ProcessMemory,
    thread: &ThreadImage,
    tid_now: i32,
) -> Result<(), RestoreError> {
    if thread.clear_child_tid == 0 || thread.tid <= 0 || thread.tid == tid_now {
        return Ok(());
    }
    let Ok(word) = memory.read(thread.clear_child_tid, 4) else {
        return Ok(());
    };
    if word.as_slice() == thread.tid.to_ne_bytes() {
        memory.write(thread.clear_child_tid, &tid_now.to_ne_bytes())?;
    }
    Ok(())
}

/// A thread's own kernel state, injected in that thread.
fn thread_state(
    injector: &mut Injector,
    memory: &ProcessMemory,
    scratch: u64,
    thread: &ThreadImage,
) -> Result<(), RestoreError> {
    // Set even when the image has none: the thread may have one of its own.
    let (sp, flags, size) = thread.altstack;
    let stack: [u64; 3] = if flags & libc::SS_DISABLE == 0 {
        [sp, (flags & !libc::SS_ONSTACK) as u64, size]
    } else {
        [0, libc::SS_DISABLE as u64, 0]
    };
    let stack: Vec<u8> = stack.iter().flat_map(|w| w.to_ne_bytes()).collect();
    memory.write(scratch, &stack)?;
    injector.call(
        "sigaltstack",
        libc::SYS_sigaltstack,
        [scratch, 0, 0, 0, 0, 0],
    )?;
    let (head, len) = thread.robust_list;
    if head != 0 {
        injector.call(
            "set_robust_list",
            libc::SYS_set_robust_list,
            [head, len, 0, 0, 0, 0],
        )?;
    }
    if let Some(rseq) = thread.rseq {
        injector.call(
            "rseq",
            libc::SYS_rseq,
            [
                rseq.address,
                rseq.length as u64,
                0,
                rseq.signature as u64,
                0,
                0,
            ],
        )?;
    }
    injector.call(
        "set_tid_address",
        libc::SYS_set_tid_address,
        [thread.clear_child_tid, 0, 0, 0, 0, 0],
    )?;
    // Its nice value: one below the restoring agent's may take a
    // privilege the thread lacks, and then it stays at the agent's.
    let reniced = injector.raw(
        libc::SYS_setpriority,
        [libc::PRIO_PROCESS as u64, 0, thread.nice as u64, 0, 0, 0],
    )?;
    if reniced < 0 {
        tracing::debug!(
            nice = thread.nice,
            errno = -reniced,
            "a nice value was not restored"
        );
    }
    // Its scheduling policy, by its own call as for its nice value: a
    // real-time one takes the `RLIMIT_RTPRIO` it has.
    if let Some(scheduling) = &thread.scheduling {
        memory.write(scratch, &scheduling.priority.to_ne_bytes())?;
        let set = injector.raw(
            libc::SYS_sched_setscheduler,
            [0, scheduling.policy as u64, scratch, 0, 0, 0],
        )?;
        if set < 0 {
            tracing::warn!(
                policy = scheduling.policy,
                errno = -set,
                "a scheduling policy was not restored"
            );
        }
    }
    // Its name (the kernel keeps 15 bytes and a NUL).
    if !thread.comm.is_empty() {
        let mut name: Vec<u8> = thread.comm.iter().copied().take(15).collect();
        name.push(0);
        memory.write(scratch, &name)?;
        injector.call(
            "prctl(PR_SET_NAME)",
            libc::SYS_prctl,
            [libc::PR_SET_NAME as u64, scratch, 0, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// The parts of `range` inside some range of `ranges` (which do not overlap).
pub fn covered(range: (u64, u64), ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut parts: Vec<(u64, u64)> = ranges
        .iter()
        .map(|&(start, end)| (start.max(range.0), end.min(range.1)))
        .filter(|(start, end)| start < end)
        .collect();
    parts.sort_unstable();
    parts
}

/// The parts of `range` outside every range of `ranges`.
pub fn uncovered(range: (u64, u64), ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut parts = Vec::new();
    let mut from = range.0;
    for (start, end) in covered(range, ranges) {
        if start > from {
            parts.push((from, start));
        }
        from = from.max(end);
    }
    if from < range.1 {
        parts.push((from, range.1));
    }
    parts
}

/// The parts of `ranges` that none of `taken` covers.
pub fn without(ranges: &[(u64, u64)], taken: &[(u64, u64)]) -> Vec<(u64, u64)> {
    (ranges.iter())
        .flat_map(|&range| uncovered(range, taken))
        .collect()
}

/// Whether regions `a` and `b` map the same file, each address of both
/// at the same offset in it.
fn same_file_place(a: &homing_proto::image::Region, b: &homing_proto::image::Region) -> bool {
    match (&a.file, &b.file) {
        (Some(x), Some(y)) => {
            x.same_file(y) && x.offset.wrapping_sub(a.start) == y.offset.wrapping_sub(b.start)
        }
        _ => false,
    }
}

/// Where the files an image's regions mapped are found on this node
/// (the files themselves at home, cached copies elsewhere), each once;
/// see [`map_file_over`].
#[derive(Debug, Default, Clone)]
pub struct LocalFiles(Vec<(MappedFile, CString)>);

impl LocalFiles {
    /// The files `regions` mapped that `find` finds here.
    pub fn find(
        regions: &[homing_proto::image::Region],
        find: impl Fn(&MappedFile) -> Option<CString>,
    ) -> Self {
        let mut found: Vec<(MappedFile, CString)> = Vec::new();
        let mut missing: Vec<&MappedFile> = Vec::new();
        for file in homing_proto::image::mapped_files(regions) {
            match find(file) {
                Some(path) => found.push((file.clone(), path)),
                None => missing.push(file),
            }
        }
        if !missing.is_empty() {
            let missing: Vec<_> = (missing.iter())
                .map(|file| String::from_utf8_lossy(&file.path).into_owned())
                .collect();
            tracing::debug!(
                ?missing,
                "mapped files not here: their memory comes as anonymous memory"
            );
        }
        Self(found)
    }

    /// Where `file` is found here.
    pub fn path_of(&self, file: &MappedFile) -> Option<&CString> {
        (self.0.iter())
            .find(|(found, _)| found.same_file(file))
            .map(|(_, path)| path)
    }
}

/// The address ranges where a process being restored maps again the
/// files its image's regions mapped (see [`map_file_over`]).
#[derive(Debug, Default, Clone)]
pub struct FileRanges {
    /// Ranges that map the file their region mapped.
    pub backed: Vec<(u64, u64)>,
    /// Those of them that map it shared, read-only: their pages are the
    /// file's, and none may be written.
    pub shared: Vec<(u64, u64)>,
}

impl FileRanges {
    /// The ranges that map the file their region mapped: only the pages
    /// the process changed there need to come, and a shared mapping (of
    /// a file it may only read: one it may write cannot move) has none.
    /// A JVM maps its 120 MiB of class modules so, which went whole,
    /// while it was frozen, when only private mappings counted.
    pub fn from_files(&self) -> Vec<(u64, u64)> {
        self.backed.clone()
    }

    /// Maps the file `region` mapped, where `files` finds it here, over
    /// `range` of it (anonymous memory just mapped for it in the process
    /// of `memory`; `inject` runs a syscall there), and notes the range
    /// where that worked.
    pub(crate) fn map_file_of<E>(
        &mut self,
        memory: &ProcessMemory,
        files: &LocalFiles,
        region: &homing_proto::image::Region,
        range: (u64, u64),
        inject: impl FnMut(i64, [u64; 6]) -> Result<i64, E>,
    ) -> Result<(), E> {
        let Some(file) = &region.file else {
            return Ok(());
        };
        let Some(path) = files.path_of(file) else {
            return Ok(());
        };
        let offset = file.offset + (range.0 - region.start);
        if map_file_over(
            memory,
            range,
            (path.as_c_str(), offset, file.shared),
            inject,
        )? {
            self.backed.push(range);
            if file.shared {
                self.shared.push(range);
            }
        }
        Ok(())
    }
}

/// Maps the file `path` from `offset` over `start..end`: anonymous
/// memory of the process of `memory` just mapped read-write for an
/// image's region, none of its pages written yet. Private, it stays
/// writable for the pages to come; `shared`, it is read-only, and its
/// pages are the file's. `inject` runs a syscall in that process and
/// gives its raw result. The path is put at `start` for the process's own
/// open (with its own rights), and the file's mapping then takes that
/// memory's place. `Ok(false)`, the memory left empty as it was, where
/// the file cannot be opened or mapped.
fn map_file_over<E>(
    memory: &ProcessMemory,
    (start, end): (u64, u64),
    (path, offset, shared): (&std::ffi::CStr, u64, bool),
    mut inject: impl FnMut(i64, [u64; 6]) -> Result<i64, E>,
) -> Result<bool, E> {
    let path = path.to_bytes_with_nul();
    if path.len() as u64 > end - start || memory.write(start, path).is_err() {
        return Ok(false);
    }
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    let fd = inject(
        libc::SYS_openat,
        [libc::AT_FDCWD as u64, start, flags, 0, 0, 0],
    )?;
    let mapped = if fd >= 0 {
        let (flags, prot) = match shared {
            true => (libc::MAP_SHARED, libc::PROT_READ),
            false => (libc::MAP_PRIVATE, libc::PROT_READ | libc::PROT_WRITE),
        };
        let (flags, prot) = ((flags | libc::MAP_FIXED) as u64, prot as u64);
        let args = [start, end - start, prot, flags, fd as u64, offset];
        let mapped = inject(libc::SYS_mmap, args)?;
        inject(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
        mapped == start as i64
    } else {
        false
    };
    if !mapped {
        tracing::debug!(start, end, fd, "the mapped file stays anonymous memory");
        // The path written for the open goes: the memory is the image's.
        let _ = memory.write(start, &vec![0; path.len()]);
    }
    Ok(mapped)
}

/// The span of a process's vDSO and vvar pages.
fn special_span(entries: &[MapsEntry]) -> Result<(u64, u64), RestoreError> {
    let special: Vec<&MapsEntry> = entries
        .iter()
        .filter(|m| m.name.starts_with("[vdso]") || m.name.starts_with("[vvar"))
        .collect();
    let start = special.iter().map(|m| m.start).min();
    let end = special.iter().map(|m| m.end).max();
    match (start, end) {
        (Some(start), Some(end)) if end - start <= 64 * PAGE => Ok((start, end)),
        _ => Err(RestoreError::Unfit(
            "this process's vDSO is not in one place".into(),
        )),
    }
}

/// The lowest page-aligned address from 4 GiB up where `len` bytes touch
/// none of `taken`.
fn free_spot(taken: &[(u64, u64)], len: u64) -> Option<u64> {
    let mut candidate = 1u64 << 32;
    let mut sorted = taken.to_vec();
    sorted.sort();
    for &(start, end) in &sorted {
        if end <= candidate {
            continue;
        }
        if start >= candidate + len {
            break;
        }
        candidate = end.next_multiple_of(PAGE);
    }
    (candidate + len <= TASK_SIZE).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_and_uncovered_split_a_range() {
        let ranges = [(0x5000, 0x7000), (0x1000, 0x2000), (0x9000, 0xa000)];
        assert_eq!(
            covered((0x1800, 0x9800), &ranges),
            vec![(0x1800, 0x2000), (0x5000, 0x7000), (0x9000, 0x9800)]
        );
        assert_eq!(
            uncovered((0x1800, 0x9800), &ranges),
            vec![(0x2000, 0x5000), (0x7000, 0x9000)]
        );
        assert_eq!(uncovered((0x5000, 0x7000), &ranges), vec![]);
        assert_eq!(uncovered((0xb000, 0xc000), &ranges), vec![(0xb000, 0xc000)]);
    }

    #[test]
    fn a_free_spot_avoids_every_taken_range() {
        let taken = [
            (1 << 32, (1 << 32) + 8192),
            ((1 << 32) + 8192, (1 << 32) + 16384),
        ];
        assert_eq!(free_spot(&taken, 4096), Some((1 << 32) + 16384));
        assert_eq!(free_spot(&[], 4096), Some(1 << 32));
    }
}
