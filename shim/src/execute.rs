//! Executes a forwarded syscall in this process: the deputy's half of
//! [`homing_proto::syscall`].
//!
//! The host copied the guest's input buffers; here each pointer argument of
//! the call gets a local buffer (a copy of the input, or zeroes for an
//! output), the syscall runs with those buffers' addresses in place of the
//! guest's pointers, and the output buffers go back in the result.
//!
//! The calls come from another node and are not trusted. Whatever a call
//! says, the kernel only ever sees buffers that are as long as the table in
//! [`homing_proto::syscall::route`] says it will use, no buffer is larger
//! than [`MAX_BUFFER`], and a malformed call gets `-EINVAL` or `-EFAULT` as
//! its return value rather than a panic. What the syscall itself does to
//! this process (closing an fd, changing credentials, the cwd) is the
//! point of forwarding it: a caller with fds of its own must keep the
//! guest's calls away from them.

use homing_proto::syscall::{
    self, ArgData, Dir, Len, PtrArg, Route, SyscallCall, SyscallResult, MAX_CSTR,
};

/// Largest single buffer of a call, in bytes. Longer reads and writes
/// should be shortened by the host: a short transfer is a correct answer.
pub const MAX_BUFFER: usize = 8 << 20;

/// Largest sum of a call's buffers, in bytes: the outputs, which are no
/// larger, then fit in one frame with room to spare.
pub const MAX_TOTAL: usize = homing_proto::MAX_FRAME_LEN - (1 << 20);

/// Why a call was not executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The table refuses this syscall (or these arguments) with `errno`.
    #[error("{name} is refused by the table (errno {errno})")]
    Refused {
        /// The syscall's name.
        name: &'static str,
        /// The errno the table gives.
        errno: i32,
    },
    /// The syscall needs host-side logic; it never comes home as such.
    #[error("{0} needs host-side handling and cannot be executed at home")]
    Special(&'static str),
    /// The pointer table given is not the one [`syscall::route`] gives for this call.
    #[error("the pointer table given for {0} is not the table's")]
    WrongTable(&'static str),
    /// An input for an argument that takes none (an output, a null pointer,
    /// an integer argument).
    #[error("input for argument {0}, which takes none")]
    UnexpectedInput(u8),
    /// Two inputs for one argument.
    #[error("two inputs for argument {0}")]
    DuplicateInput(u8),
    /// No input for an input argument that is not null.
    #[error("no input for argument {0}")]
    MissingInput(u8),
    /// An input shorter than the argument's length (the host could not
    /// read it all).
    #[error("input for argument {index} has {got} bytes, {want} expected")]
    ShortInput {
        /// The argument.
        index: u8,
        /// Bytes received.
        got: usize,
        /// Bytes the table says.
        want: usize,
    },
    /// An input longer than the argument's length.
    #[error("input for argument {index} has {got} bytes, {want} expected")]
    LongInput {
        /// The argument.
        index: u8,
        /// Bytes received.
        got: usize,
        /// Bytes the table says.
        want: usize,
    },
    /// A string input that is empty, longer than [`MAX_CSTR`] or not NUL-terminated.
    #[error("string for argument {0} is not a NUL-terminated string of at most MAX_CSTR bytes")]
    BadString(u8),
    /// A buffer (or all of them together) larger than this end allows.
    #[error("buffer for argument {0} is larger than allowed")]
    TooLarge(u8),
    /// A value-result length that is negative.
    #[error("length at argument {0} is negative")]
    NegativeLength(u8),
    /// A value-result buffer whose length pointer is null.
    #[error("value-result argument {0} has no length")]
    MissingLength(u8),
    /// A `semctl` `GETALL` or `SETALL` whose count of semaphores (see
    /// [`syscall::SEM_COUNT_ARG`]) is not the set's.
    #[error("semctl names {said} semaphores, the set has {set}")]
    SemaphoreCount {
        /// The count the call gives.
        said: u64,
        /// The set's.
        set: u64,
    },
}

impl CallError {
    /// The errno the guest gets for this error.
    pub fn errno(&self) -> i32 {
        match self {
            CallError::Refused { errno, .. } => *errno,
            CallError::Special(_) => libc::ENOSYS,
            CallError::MissingInput(_)
            | CallError::ShortInput { .. }
            | CallError::MissingLength(_) => libc::EFAULT,
            CallError::WrongTable(_)
            | CallError::UnexpectedInput(_)
            | CallError::DuplicateInput(_)
            | CallError::LongInput { .. }
            | CallError::BadString(_)
            | CallError::TooLarge(_)
            | CallError::NegativeLength(_)
            | CallError::SemaphoreCount { .. } => libc::EINVAL,
        }
    }
}

/// Executes `call`, whose pointer arguments are `ptrs` (the table
/// [`syscall::route`] gives for it; anything else is refused), and returns
/// what the guest gets: the raw return value (`-errno` on failure) and the
/// output buffers.
///
/// A call that cannot be executed as given returns `-errno` (see
/// [`CallError::errno`]) and no outputs; it is logged.
pub fn execute(call: &SyscallCall, ptrs: &[PtrArg]) -> SyscallResult {
    execute_owned(call.clone(), ptrs)
}

/// [`execute`], on a call of the caller's to give: its input buffers
/// become the call's own, uncopied (a write's megabyte, say).
pub fn execute_owned(call: SyscallCall, ptrs: &[PtrArg]) -> SyscallResult {
    let nr = call.nr;
    try_execute_owned(call, ptrs).unwrap_or_else(|error| {
        match error {
            CallError::Refused { .. } => {
                tracing::debug!(nr, "not executing {}: {error}", syscall::name(nr))
            }
            _ => tracing::warn!(
                nr,
                "malformed forwarded call to {}: {error}",
                syscall::name(nr)
            ),
        }
        SyscallResult {
            ret: -i64::from(error.errno()),
            outputs: Vec::new(),
        }
    })
}

/// Adds to `result`, the answer to an open for reading (see
/// [`homing_proto::syscall::opens_for_reading`]), the opened file's stat
/// and first bytes, when it opened a regular file. The fd's offset does
/// not move.
pub fn add_prefetch(result: &mut SyscallResult) {
    let Ok(fd) = i32::try_from(result.ret) else {
        return;
    };
    // SAFETY: the open just returned `fd`, and it stays open while this
    // thread, which answers for it, reads it.
    let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    result.outputs.extend(prefetch(file).into_iter().flatten());
}

/// What an open for reading of `file` answers besides its number, when
/// it is a regular file: its stat ([`syscall::PREFETCHED_STAT`]) and its
/// first bytes ([`syscall::PREFETCHED_DATA`]), read without moving its
/// offset. `None`: not a regular file, or not readable so.
pub fn prefetch(file: std::os::fd::BorrowedFd<'_>) -> Option<[ArgData; 2]> {
    let stat = rustix::fs::fstat(file).ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    // Into the vector's room, not zeroed first: most files are smaller.
    let mut data = Vec::with_capacity(syscall::PREFETCH_LEN);
    rustix::io::pread(file, rustix::buffer::spare_capacity(&mut data), 0).ok()?;
    // The stat after the read: a read first, at home, would show its atime.
    let stat = rustix::fs::fstat(file).ok()?;
    // SAFETY: `stat` is a plain C struct; its bytes are read as they are.
    let stat_bytes = unsafe {
        std::slice::from_raw_parts(
            (&stat as *const rustix::fs::Stat).cast::<u8>(),
            std::mem::size_of::<rustix::fs::Stat>(),
        )
    }
    .to_vec();
    Some([
        ArgData {
            index: syscall::PREFETCHED_STAT,
            bytes: stat_bytes,
        },
        ArgData {
            index: syscall::PREFETCHED_DATA,
            bytes: data,
        },
    ])
}

/// What a path names, for an open that may be made without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// A regular file.
    RegularFile,
    /// A device no call ever waits on (see [`never_waits`]).
    DeviceThatNeverWaits,
    /// Anything else, or nothing.
    Other,
}

/// What `path` (NUL-terminated, as a call's input carries it), looked up
/// from directory fd `dir` (or `AT_FDCWD`) and through any links, names
/// now.
pub fn what_is_named(dir: i32, path: &[u8]) -> Named {
    if path.last() != Some(&0) {
        return Named::Other;
    }
    // SAFETY: stat is plain data the kernel fills in.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is ours; a `dir` that is
    // not open only fails the call.
    let rc = unsafe { libc::fstatat(dir, path.as_ptr().cast(), &mut stat, 0) };
    match stat.st_mode & libc::S_IFMT {
        _ if rc != 0 => Named::Other,
        libc::S_IFREG => Named::RegularFile,
        libc::S_IFCHR if never_waits(stat.st_rdev) => Named::DeviceThatNeverWaits,
        _ => Named::Other,
    }
}

/// Whether fd `fd` of this process is open on a device no call ever
/// waits on.
pub fn is_a_device_that_never_waits(fd: i32) -> bool {
    // SAFETY: stat is plain data the kernel fills in.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is ours; an fd that is not open only fails the call.
    let rc = unsafe { libc::fstat(fd, &mut stat) };
    rc == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFCHR && never_waits(stat.st_rdev)
}

/// Whether the character device `rdev` is one of the memory devices no
/// call ever waits on: `/dev/null`, `/dev/zero`, `/dev/full`,
/// `/dev/random` and `/dev/urandom` (major 1; `random` has not waited
/// since Linux 5.6 once the pool is ready at boot). Output sent to
/// `/dev/null` then costs the deputy no wakeup, and opening it no thread.
pub fn never_waits(rdev: u64) -> bool {
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    major == 1 && [3, 5, 7, 8, 9].contains(&minor)
}

/// Whether `file` is open only through its own open file description (the
/// one `file` and its duplicates share) on this machine: the kernel grants
/// a write lease on a file only then. The lease is given back at once, and
/// the file's `SIGIO` owner, which taking a lease sets, put back as it was.
pub fn open_only_here(file: std::os::fd::BorrowedFd<'_>) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // <linux/fcntl.h>, which the libc crate leaves out on this target.
    const F_SETOWN_EX: i32 = 15;
    const F_GETOWN_EX: i32 = 16;
    #[repr(C)]
    struct OwnerEx {
        kind: i32,
        pid: i32,
    }
    let fd = file.as_raw_fd();
    let mut owner = OwnerEx { kind: 0, pid: 0 };
    // SAFETY: F_GETOWN_EX fills in one struct f_owner_ex, laid out as `owner`.
    if unsafe { libc::fcntl(fd, F_GETOWN_EX, &mut owner) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: F_SETLEASE takes an integer argument.
    let leased = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) };
    let refusal = std::io::Error::last_os_error();
    if leased == 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
    }
    // SAFETY: F_SETOWN_EX reads one struct f_owner_ex, laid out as `owner`.
    unsafe { libc::fcntl(fd, F_SETOWN_EX, &owner) };
    match leased {
        0 => Ok(true),
        _ if refusal.raw_os_error() == Some(libc::EAGAIN) => Ok(false),
        _ => Err(refusal),
    }
}

/// [`execute`], with the reason a call was not executed.
///
/// `Ok` means the syscall ran (its `ret` may still be `-errno`).
pub fn try_execute(call: &SyscallCall, ptrs: &[PtrArg]) -> Result<SyscallResult, CallError> {
    try_execute_owned(call.clone(), ptrs)
}

/// [`try_execute`], on a call of the caller's to give (see [`execute_owned`]).
pub fn try_execute_owned(call: SyscallCall, ptrs: &[PtrArg]) -> Result<SyscallResult, CallError> {
    check_table(&call, ptrs)?;
    let sigevent = call.inputs.iter().find(|i| i.index == 1);
    if sigevent.is_some_and(|event| syscall::notifies_by_thread(call.nr, &event.bytes)) {
        return Err(CallError::Refused {
            name: "mq_notify of a thread",
            errno: libc::ENOSYS,
        });
    }
    if syscall::moves_whole_semaphore_set(call.nr, &call.args) {
        if let Err(errno) = check_semaphore_count(&call.args)? {
            return Ok(SyscallResult {
                ret: -i64::from(errno),
                outputs: Vec::new(),
            });
        }
    }
    let nr = call.nr;
    let mut args = call.args;
    let mut buffers = Buffers::prepare(call, ptrs)?;
    for (index, arg) in args.iter_mut().enumerate() {
        if let Some(slot) = &mut buffers.slots[index] {
            *arg = match &mut slot.data {
                // Host-side data: the call runs without it.
                None => 0,
                Some(data) => data.as_mut_ptr() as u64,
            };
        }
    }
    // SAFETY: `check_table` made `ptrs` the table's layout for exactly this
    // call, and `Buffers::prepare` put in `args`, for every pointer the
    // table names that is not null, a live buffer at least as long as the
    // kernel uses given the other arguments (value-result lengths included:
    // the kernel is told the clamped length; for a `semctl` that moves a
    // whole set, the count the buffer was made for is the set's, checked
    // above). Every other argument is an integer to the kernel. The table
    // forwards no syscall that changes this process's memory map or
    // creates a thread or process, so the kernel touches no memory of ours
    // but those buffers, which live until after the call.
    let ret = unsafe { raw_syscall(nr, &args) };
    Ok(SyscallResult {
        ret,
        outputs: buffers.outputs(ret),
    })
}

/// Executes a flattened `sendmsg` or `recvmsg` (see
/// [`homing_proto::syscall::message`]) around a `msghdr` of this process.
/// `hidden_fd` is an fd of the caller's own: it cannot be sent.
pub fn message(call: &SyscallCall, hidden_fd: i32) -> SyscallResult {
    try_message(call, hidden_fd).unwrap_or_else(|errno| {
        tracing::warn!(
            nr = call.nr,
            "malformed forwarded call to {}",
            syscall::name(call.nr)
        );
        SyscallResult {
            ret: -i64::from(errno),
            outputs: Vec::new(),
        }
    })
}

fn try_message(call: &SyscallCall, hidden_fd: i32) -> Result<SyscallResult, i32> {
    use homing_proto::syscall::message::{
        CONTROL, DATA, MAX_CONTROL, MAX_DATA, MAX_NAME, NAME, RETURNED,
    };
    let sending = match call.nr as i64 {
        libc::SYS_sendmsg => true,
        libc::SYS_recvmsg => false,
        _ => return Err(libc::EINVAL),
    };
    let [fd, _, flags, name_len, control_len, data_len] = call.args;
    let lengths = [
        (NAME, name_len, MAX_NAME),
        (CONTROL, control_len, MAX_CONTROL),
        (DATA, data_len, MAX_DATA),
    ];
    let mut buffers: Vec<Vec<u8>> = Vec::with_capacity(3);
    for (slot, len, max) in lengths {
        if len as usize > max {
            return Err(libc::EINVAL);
        }
        let input = call.inputs.iter().find(|i| i.index == slot);
        buffers.push(match (sending, input) {
            (true, Some(input)) if input.bytes.len() == len as usize => input.bytes.clone(),
            (true, None) if len == 0 => Vec::new(),
            (false, None) => vec![0; len as usize],
            _ => return Err(libc::EINVAL),
        });
    }
    if call
        .inputs
        .iter()
        .any(|i| ![NAME, CONTROL, DATA].contains(&i.index))
    {
        return Err(libc::EINVAL);
    }
    let [mut name, mut control, mut data] =
        <[Vec<u8>; 3]>::try_from(buffers).map_err(|_| libc::EINVAL)?;
    if sending && passes_fd(&control, hidden_fd) {
        return Err(libc::EBADF);
    }
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    if !name.is_empty() {
        header.msg_name = name.as_mut_ptr().cast();
        header.msg_namelen = name.len() as u32;
    }
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    if !control.is_empty() {
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = control.len();
    }
    let nr = call.nr;
    let args = [fd, &mut header as *mut libc::msghdr as u64, flags, 0, 0, 0];
    // SAFETY: `header` and everything it points at (`name`, `iov` and
    // `data`, `control`) are live buffers of the lengths it gives, and
    // outlive the call; sendmsg and recvmsg touch no other memory of ours.
    let ret = unsafe { raw_syscall(nr, &args) };
    if sending || ret < 0 {
        return Ok(SyscallResult {
            ret,
            outputs: Vec::new(),
        });
    }
    data.truncate((ret as usize).min(data.len()));
    name.truncate((header.msg_namelen as usize).min(name.len()));
    control.truncate(header.msg_controllen.min(control.len()));
    let mut returned = header.msg_namelen.to_ne_bytes().to_vec();
    returned.extend_from_slice(&header.msg_flags.to_ne_bytes());
    let outputs = [
        (DATA, data),
        (NAME, name),
        (CONTROL, control),
        (RETURNED, returned),
    ]
    .into_iter()
    .map(|(index, bytes)| ArgData { index, bytes })
    .collect();
    Ok(SyscallResult { ret, outputs })
}

/// Whether control data passes `fd` with `SCM_RIGHTS`.
fn passes_fd(control: &[u8], fd: i32) -> bool {
    const HEADER: usize = 16;
    let mut at = 0;
    while at + HEADER <= control.len() {
        let len = u64::from_ne_bytes(control[at..at + 8].try_into().expect("8 bytes")) as usize;
        let level = i32::from_ne_bytes(control[at + 8..at + 12].try_into().expect("4 bytes"));
        let kind = i32::from_ne_bytes(control[at + 12..at + 16].try_into().expect("4 bytes"));
        if len < HEADER || at + len > control.len() {
            break;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            let passed = control[at + HEADER..at + len]
                .chunks_exact(4)
                .map(|c| i32::from_ne_bytes(c.try_into().expect("4 bytes")));
            if passed.into_iter().any(|passed| passed == fd) {
                return true;
            }
        }
        at += len.next_multiple_of(8);
    }
    false
}

/// Issues syscall `nr` and returns its raw result: `-errno` on failure.
///
/// # Safety
///
/// Every pointer among `args` must be valid for everything the kernel does
/// with it in this syscall, and the syscall must not invalidate memory Rust
/// code of this process still uses.
unsafe fn raw_syscall(nr: u64, args: &[u64; 6]) -> i64 {
    // SAFETY: the caller guarantees the arguments; `syscall` takes six
    // long-sized variadic arguments, and `nr` came through the table, so it
    // fits a `c_long`.
    let ret = unsafe {
        libc::syscall(
            nr as libc::c_long,
            args[0],
            args[1],
            args[2],
            args[3],
            args[4],
            args[5],
        )
    };
    if ret == -1 {
        // glibc turned a raw -4095..=-1 into -1 and errno: undo it.
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        -i64::from(errno)
    } else {
        ret
    }
}

/// For a `semctl` `GETALL` or `SETALL`, whose buffer the kernel sizes by
/// the set, not by any argument: checks that the count the buffer is made
/// for is the set's. `Ok(Err(errno))`: the set cannot be looked at, which
/// the call would have met too (it is gone, or not the caller's to read).
/// A set removed and another made under the same id between this look and
/// the call could differ; ids are reused only after their index's
/// sequence number wraps, thousands of sets later.
fn check_semaphore_count(args: &[u64; 6]) -> Result<Result<(), i32>, CallError> {
    let said = args[usize::from(syscall::SEM_COUNT_ARG)];
    let set = match semaphore_count(args[0] as i32) {
        Ok(set) => set,
        Err(errno) => return Ok(Err(errno)),
    };
    if said != set {
        return Err(CallError::SemaphoreCount { said, set });
    }
    Ok(Ok(()))
}

/// How many semaphores set `id` holds (`IPC_STAT`).
fn semaphore_count(id: i32) -> Result<u64, i32> {
    // SAFETY: a zeroed `semid_ds` is a valid value of that plain struct.
    let mut set: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `IPC_STAT` writes one `semid_ds` through the pointer, which
    // points at one that lives until after the call.
    let ret = unsafe { libc::semctl(id, 0, libc::IPC_STAT, &mut set as *mut libc::semid_ds) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    Ok(set.sem_nsems as u64)
}

/// Checks that `ptrs` is the table's layout for `call`.
fn check_table(call: &SyscallCall, ptrs: &[PtrArg]) -> Result<(), CallError> {
    let name = syscall::name(call.nr);
    match syscall::route(call.nr, &call.args) {
        Route::Forward(table) if table == ptrs => Ok(()),
        Route::Forward(_) => Err(CallError::WrongTable(name)),
        Route::Special(_) => Err(CallError::Special(name)),
        Route::Refuse { errno } => Err(CallError::Refused { name, errno }),
    }
}

/// The local buffer for one non-null pointer argument.
struct Slot {
    ptr: PtrArg,
    /// The buffer the kernel sees; `None` for host-side data (passed as null).
    /// Never empty, so that its address is a real one.
    data: Option<Vec<u8>>,
    /// How many bytes of `data` the argument covers.
    len: usize,
    /// For a value-result length this end shortened: the guest's value.
    original: Option<[u8; 4]>,
}

/// The local buffers of one call, by argument index.
struct Buffers {
    slots: [Option<Slot>; 6],
    /// Table order, for the outputs.
    order: Vec<u8>,
}

impl Buffers {
    /// Builds the buffers of `call` from its inputs, checking every input
    /// against the table.
    fn prepare(call: SyscallCall, ptrs: &[PtrArg]) -> Result<Self, CallError> {
        let args = &call.args;
        let is_live = |p: &PtrArg| args[usize::from(p.index)] != 0;

        // Inputs, by argument; each must be for a live In/InOut/Host argument.
        let mut inputs: [Option<Vec<u8>>; 6] = Default::default();
        for ArgData { index, bytes } in call.inputs {
            let takes_input = ptrs
                .iter()
                .any(|p| p.index == index && p.dir != Dir::Out && is_live(p));
            if !takes_input {
                return Err(CallError::UnexpectedInput(index));
            }
            let slot = &mut inputs[usize::from(index)];
            if slot.is_some() {
                return Err(CallError::DuplicateInput(index));
            }
            *slot = Some(bytes);
        }

        let mut slots: [Option<Slot>; 6] = Default::default();
        let mut total = 0usize;
        // Value-result buffers need their length argument's buffer: second pass.
        let (value_results, plain): (Vec<&PtrArg>, Vec<&PtrArg>) = ptrs
            .iter()
            .filter(|p| is_live(p))
            .partition(|p| matches!(p.len, Len::ValueResult { .. }));
        for ptr in plain {
            let input = inputs[usize::from(ptr.index)].take();
            let slot = Self::plain_slot(ptr, input, args)?;
            total = add_total(total, slot.data.as_ref().map_or(0, Vec::len), ptr.index)?;
            slots[usize::from(ptr.index)] = Some(slot);
        }
        for ptr in value_results {
            let Len::ValueResult { arg, max } = ptr.len else {
                unreachable!("partitioned on ValueResult")
            };
            let length = slots
                .get_mut(usize::from(arg))
                .and_then(Option::as_mut)
                .filter(|s| s.ptr.dir == Dir::InOut && s.len == 4)
                .ok_or(CallError::MissingLength(ptr.index))?;
            let data = length
                .data
                .as_mut()
                .ok_or(CallError::MissingLength(ptr.index))?;
            let before: [u8; 4] = data[..4].try_into().expect("four bytes");
            let asked = i32::from_ne_bytes(before);
            let asked = usize::try_from(asked).map_err(|_| CallError::NegativeLength(arg))?;
            let given = asked.min(max);
            if given != asked {
                // `given` <= `max`, which the table keeps small.
                data[..4].copy_from_slice(&(given as i32).to_ne_bytes());
                length.original = Some(before);
            }
            if max > MAX_BUFFER {
                return Err(CallError::TooLarge(ptr.index));
            }
            total = add_total(total, max, ptr.index)?;
            // The whole `max`, not just `given`: zeroes cost little, and a
            // kernel that writes past the length it was told stays in bounds.
            slots[usize::from(ptr.index)] = Some(Slot {
                ptr: *ptr,
                data: Some(vec![0; max.max(1)]),
                len: given,
                original: None,
            });
        }
        Ok(Buffers {
            slots,
            order: ptrs.iter().map(|p| p.index).collect(),
        })
    }

    /// The buffer of a live pointer argument that is not value-result.
    fn plain_slot(
        ptr: &PtrArg,
        input: Option<Vec<u8>>,
        args: &[u64; 6],
    ) -> Result<Slot, CallError> {
        let index = ptr.index;
        let slot = |data: Option<Vec<u8>>, len| Slot {
            ptr: *ptr,
            data,
            len,
            original: None,
        };
        if ptr.len == Len::CStr {
            let bytes = input.ok_or(CallError::MissingInput(index))?;
            if bytes.is_empty() || bytes.len() > MAX_CSTR || bytes.last() != Some(&0) {
                return Err(CallError::BadString(index));
            }
            let len = bytes.len();
            return Ok(slot(Some(bytes), len));
        }
        let len = syscall::buffer_len(ptr, args)
            .filter(|&len| len <= MAX_BUFFER)
            .ok_or(CallError::TooLarge(index))?;
        let check = |bytes: &[u8]| match bytes.len() {
            got if got < len => Err(CallError::ShortInput {
                index,
                got,
                want: len,
            }),
            got if got > len => Err(CallError::LongInput {
                index,
                got,
                want: len,
            }),
            _ => Ok(()),
        };
        match ptr.dir {
            Dir::Host => {
                // The host may send what it read; it is not used here.
                if let Some(bytes) = input {
                    check(&bytes)?;
                }
                Ok(slot(None, 0))
            }
            Dir::Out => Ok(slot(Some(vec![0; len.max(1)]), len)),
            Dir::In | Dir::InOut => {
                let mut data = input.ok_or(CallError::MissingInput(index))?;
                check(&data)?;
                if data.is_empty() {
                    data.push(0);
                }
                Ok(slot(Some(data), len))
            }
        }
    }

    /// The outputs after the syscall returned `ret`: every live `Out` and
    /// `InOut` argument on success, trimmed to what the kernel filled; on
    /// failure only the `InOut` ones (the kernel may have updated them, as
    /// `select` does its timeout), value-result lengths as the guest had them.
    fn outputs(mut self, ret: i64) -> Vec<ArgData> {
        let ok = ret >= 0;
        let filled: Vec<Option<usize>> = (0..6).map(|i| self.value_result_filled(i)).collect();
        let mut outputs = Vec::new();
        for index in std::mem::take(&mut self.order) {
            let Some(slot) = self.slots[usize::from(index)].take() else {
                continue;
            };
            let Some(mut data) = slot.data else { continue };
            let n = match (slot.ptr.dir, ok) {
                (Dir::In | Dir::Host, _) | (Dir::Out, false) => continue,
                (Dir::InOut, false) => {
                    if let Some(original) = slot.original {
                        data[..4].copy_from_slice(&original);
                    }
                    slot.len
                }
                (Dir::Out | Dir::InOut, true) => match (slot.ptr.len, slot.ptr.ret_elems) {
                    (Len::ValueResult { .. }, _) => filled[usize::from(index)].unwrap_or(0),
                    (_, Some(elem)) => (ret as u64)
                        .saturating_mul(elem as u64)
                        .min(slot.len as u64) as usize,
                    (_, None) => slot.len,
                },
            };
            data.truncate(n);
            outputs.push(ArgData { index, bytes: data });
        }
        outputs
    }

    /// For a value-result argument: how many bytes the kernel says it
    /// filled, capped by the length it was given.
    fn value_result_filled(&self, index: usize) -> Option<usize> {
        let slot = self.slots[index].as_ref()?;
        let Len::ValueResult { arg, .. } = slot.ptr.len else {
            return None;
        };
        let length = self.slots[usize::from(arg)].as_ref()?.data.as_ref()?;
        let after = u32::from_ne_bytes(length.get(..4)?.try_into().ok()?);
        Some((after as usize).min(slot.len))
    }
}

fn add_total(total: usize, len: usize, index: u8) -> Result<usize, CallError> {
    total
        .checked_add(len)
        .filter(|&t| t <= MAX_TOTAL)
        .ok_or(CallError::TooLarge(index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    /// A placeholder guest address: any nonzero value.
    const GUEST: u64 = 0x7000_1000;

    fn run(nr: i64, args: [u64; 6], inputs: Vec<ArgData>) -> SyscallResult {
        let call = SyscallCall {
            nr: nr as u64,
            args,
            inputs,
        };
        let ptrs = match syscall::route(call.nr, &call.args) {
            Route::Forward(ptrs) => ptrs,
            _ => Vec::new(),
        };
        execute(&call, &ptrs)
    }

    fn input(index: u8, bytes: &[u8]) -> ArgData {
        ArgData {
            index,
            bytes: bytes.to_vec(),
        }
    }

    fn cstr(index: u8, s: &[u8]) -> ArgData {
        input(index, CString::new(s).unwrap().as_bytes_with_nul())
    }

    fn output(result: &SyscallResult, index: u8) -> &[u8] {
        &result
            .outputs
            .iter()
            .find(|o| o.index == index)
            .unwrap_or_else(|| panic!("no output for argument {index}: {result:?}"))
            .bytes
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("homing-execute-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn owned(ret: i64) -> OwnedFd {
        assert!(ret >= 0, "expected an fd, got {ret}");
        // SAFETY: the syscall just returned this fd to this test, which owns it.
        unsafe { OwnedFd::from_raw_fd(ret as i32) }
    }

    #[test]
    fn openat_then_read() {
        let dir = TempDir::new("openat");
        let path = dir.0.join("data");
        let content = b"hello from home\n".repeat(100);
        std::fs::write(&path, &content).unwrap();

        let at_fdcwd = libc::AT_FDCWD as i64 as u64;
        let open = run(
            libc::SYS_openat,
            [at_fdcwd, GUEST, libc::O_RDONLY as u64, 0, 0, 0],
            vec![cstr(1, path.as_os_str().as_bytes())],
        );
        assert!(open.outputs.is_empty());
        let fd = owned(open.ret);

        let raw = fd.as_raw_fd() as u64;
        let read = run(libc::SYS_read, [raw, GUEST, 4096, 0, 0, 0], vec![]);
        assert_eq!(read.ret, content.len() as i64);
        assert_eq!(output(&read, 1), &content[..]);
        // At the end: 0 bytes, an empty output.
        let eof = run(libc::SYS_read, [raw, GUEST, 4096, 0, 0, 0], vec![]);
        assert_eq!(eof.ret, 0);
        assert_eq!(output(&eof, 1), b"");
        // pread at an offset.
        let pread = run(libc::SYS_pread64, [raw, GUEST, 5, 6, 0, 0], vec![]);
        assert_eq!(pread.ret, 5);
        assert_eq!(output(&pread, 1), b"from ");

        let missing = run(
            libc::SYS_openat,
            [at_fdcwd, GUEST, libc::O_RDONLY as u64, 0, 0, 0],
            vec![cstr(1, dir.0.join("nothing").as_os_str().as_bytes())],
        );
        assert_eq!(missing.ret, -i64::from(libc::ENOENT));
    }

    #[test]
    fn fstat_matches_std() {
        let dir = TempDir::new("fstat");
        let path = dir.0.join("file");
        std::fs::write(&path, b"twelve bytes").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let meta = file.metadata().unwrap();

        let result = run(
            libc::SYS_fstat,
            [file.as_raw_fd() as u64, GUEST, 0, 0, 0, 0],
            vec![],
        );
        assert_eq!(result.ret, 0);
        let stat = output(&result, 1);
        assert_eq!(stat.len(), std::mem::size_of::<libc::stat>());
        let field = |at: usize| u64::from_ne_bytes(stat[at..at + 8].try_into().unwrap());
        assert_eq!(field(std::mem::offset_of!(libc::stat, st_ino)), meta.ino());
        assert_eq!(
            field(std::mem::offset_of!(libc::stat, st_size)),
            meta.size()
        );
        assert_eq!(field(std::mem::offset_of!(libc::stat, st_dev)), meta.dev());

        // A failure sends no output buffer.
        let bad = run(
            libc::SYS_fstat,
            [u32::MAX as u64, GUEST, 0, 0, 0, 0],
            vec![],
        );
        assert_eq!(bad.ret, -i64::from(libc::EBADF));
        assert!(bad.outputs.is_empty());
    }

    #[test]
    fn getcwd_returns_the_path_and_its_nul() {
        let cwd = std::env::current_dir().unwrap();
        let result = run(libc::SYS_getcwd, [GUEST, 4096, 0, 0, 0, 0], vec![]);
        let mut want = cwd.as_os_str().as_bytes().to_vec();
        want.push(0);
        assert_eq!(result.ret, want.len() as i64);
        assert_eq!(output(&result, 0), &want[..]);
        let small = run(libc::SYS_getcwd, [GUEST, 1, 0, 0, 0, 0], vec![]);
        assert_eq!(small.ret, -i64::from(libc::ERANGE));
        assert!(small.outputs.is_empty());
    }

    #[test]
    fn write_lands_in_the_file() {
        let dir = TempDir::new("write");
        let path = dir.0.join("out");
        let file = std::fs::File::create(&path).unwrap();
        let data = b"written at home";
        let result = run(
            libc::SYS_write,
            [file.as_raw_fd() as u64, GUEST, data.len() as u64, 0, 0, 0],
            vec![input(1, data)],
        );
        assert_eq!(result.ret, data.len() as i64);
        assert!(result.outputs.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn malformed_calls_are_refused_not_panicked_on() {
        let dir = TempDir::new("malformed");
        let mut file = std::fs::File::create(dir.0.join("f")).unwrap();
        let fd = file.as_raw_fd() as u64;
        let efault = -i64::from(libc::EFAULT);
        let einval = -i64::from(libc::EINVAL);

        // A write whose input is missing, short or long.
        assert_eq!(
            run(libc::SYS_write, [fd, GUEST, 4, 0, 0, 0], vec![]).ret,
            efault
        );
        let short = vec![input(1, b"ab")];
        assert_eq!(
            run(libc::SYS_write, [fd, GUEST, 4, 0, 0, 0], short).ret,
            efault
        );
        let long = vec![input(1, b"abcdef")];
        assert_eq!(
            run(libc::SYS_write, [fd, GUEST, 4, 0, 0, 0], long).ret,
            einval
        );
        // Two inputs for one argument, an input for an output, for an integer
        // argument, for a null pointer, for an index out of range.
        let twice = vec![input(1, b"ab"), input(1, b"ab")];
        assert_eq!(
            run(libc::SYS_write, [fd, GUEST, 2, 0, 0, 0], twice).ret,
            einval
        );
        let to_output = vec![input(1, b"ab")];
        assert_eq!(
            run(libc::SYS_read, [fd, GUEST, 2, 0, 0, 0], to_output).ret,
            einval
        );
        let to_integer = vec![input(1, b"ab"), input(2, b"x")];
        assert_eq!(
            run(libc::SYS_write, [fd, GUEST, 2, 0, 0, 0], to_integer).ret,
            einval
        );
        let to_null = vec![input(1, b"ab")];
        assert_eq!(
            run(libc::SYS_write, [fd, 0, 2, 0, 0, 0], to_null).ret,
            einval
        );
        let out_of_range = vec![input(200, b"ab")];
        assert_eq!(run(libc::SYS_getppid, [0; 6], out_of_range).ret, einval);

        // Lengths too large to allocate, or overflowing.
        for count in [u64::MAX, 1 << 40, (MAX_BUFFER + 1) as u64] {
            assert_eq!(
                run(libc::SYS_read, [fd, GUEST, count, 0, 0, 0], vec![]).ret,
                einval
            );
        }
        // Each buffer allowed, but not both together.
        let big = vec![0u8; MAX_BUFFER];
        let n = MAX_BUFFER as u64;
        let sendto = run(
            libc::SYS_sendto,
            [fd, GUEST, n, 0, GUEST, n],
            vec![input(1, &big), input(4, &big)],
        );
        assert_eq!(sendto.ret, einval);
        let poll = run(libc::SYS_poll, [GUEST, u64::MAX / 4, 0, 0, 0, 0], vec![]);
        assert_eq!(poll.ret, einval);

        // Strings: no terminator, empty, too long.
        let at_fdcwd = libc::AT_FDCWD as i64 as u64;
        for bad in [&b"/tmp"[..], b"", &vec![b'a'; MAX_CSTR + 1]] {
            let open = run(
                libc::SYS_openat,
                [at_fdcwd, GUEST, 0, 0, 0, 0],
                vec![input(1, bad)],
            );
            assert_eq!(open.ret, einval);
        }
        let no_path = run(libc::SYS_openat, [at_fdcwd, GUEST, 0, 0, 0, 0], vec![]);
        assert_eq!(no_path.ret, efault);
        // A null path reaches the kernel as null.
        let null_path = run(libc::SYS_openat, [at_fdcwd, 0, 0, 0, 0, 0], vec![]);
        assert_eq!(null_path.ret, efault);

        // A pointer table that is not the route's is refused.
        let call = SyscallCall {
            nr: libc::SYS_read as u64,
            args: [fd, GUEST, 1 << 20, 0, 0, 0],
            inputs: vec![],
        };
        let too_small = PtrArg {
            index: 1,
            dir: Dir::Out,
            len: Len::Fixed(1),
            ret_elems: None,
        };
        assert_eq!(execute(&call, &[too_small]).ret, einval);
        assert_eq!(execute(&call, &[]).ret, einval);

        // Refused and special syscalls.
        let mmap = run(libc::SYS_mmap, [0, 4096, 3, 1, fd, 0], vec![]);
        assert_eq!(mmap.ret, -i64::from(libc::ENOSYS));
        let ioctl = run(libc::SYS_ioctl, [fd, 0x8912, GUEST, 0, 0, 0], vec![]);
        assert_eq!(ioctl.ret, -i64::from(libc::ENOTTY));
        let local = run(libc::SYS_munmap, [GUEST, 4096, 0, 0, 0, 0], vec![]);
        assert_eq!(local.ret, -i64::from(libc::ENOSYS));

        // Nothing was written through any of this.
        file.flush().unwrap();
        let mut content = Vec::new();
        std::fs::File::open(dir.0.join("f"))
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert!(content.is_empty());
    }

    #[test]
    fn pipe_and_poll() {
        let pipe = run(
            libc::SYS_pipe2,
            [GUEST, libc::O_CLOEXEC as u64, 0, 0, 0, 0],
            vec![],
        );
        assert_eq!(pipe.ret, 0);
        let fds = output(&pipe, 0);
        let reader = owned(i32::from_ne_bytes(fds[..4].try_into().unwrap()).into());
        let writer = owned(i32::from_ne_bytes(fds[4..].try_into().unwrap()).into());

        let mut pollfd = Vec::new();
        pollfd.extend_from_slice(&reader.as_raw_fd().to_ne_bytes());
        pollfd.extend_from_slice(&libc::POLLIN.to_ne_bytes());
        pollfd.extend_from_slice(&0i16.to_ne_bytes());
        let poll = |pollfd: &[u8]| {
            run(
                libc::SYS_poll,
                [GUEST, 1, 0, 0, 0, 0],
                vec![input(0, pollfd)],
            )
        };
        let idle = poll(&pollfd);
        assert_eq!(idle.ret, 0);
        assert_eq!(output(&idle, 0), &pollfd[..]);

        let w = writer.as_raw_fd() as u64;
        assert_eq!(
            run(
                libc::SYS_write,
                [w, GUEST, 3, 0, 0, 0],
                vec![input(1, b"abc")]
            )
            .ret,
            3
        );
        let ready = poll(&pollfd);
        assert_eq!(ready.ret, 1);
        let revents = i16::from_ne_bytes(output(&ready, 0)[6..8].try_into().unwrap());
        assert_eq!(revents, libc::POLLIN);

        // ppoll: the mask is the host's, so the call runs without it.
        let timeout = [0u8; 16];
        let mask = u64::MAX.to_ne_bytes();
        let ppoll = run(
            libc::SYS_ppoll,
            [GUEST, 1, GUEST, GUEST, 8, 0],
            vec![input(0, &pollfd), input(2, &timeout), input(3, &mask)],
        );
        assert_eq!(ppoll.ret, 1);
        assert_eq!(
            ppoll.outputs.iter().map(|o| o.index).collect::<Vec<_>>(),
            [0, 2]
        );
        let bad_mask = run(
            libc::SYS_ppoll,
            [GUEST, 1, GUEST, GUEST, 8, 0],
            vec![input(0, &pollfd), input(2, &timeout), input(3, &mask[..4])],
        );
        assert_eq!(bad_mask.ret, -i64::from(libc::EFAULT));

        let r = reader.as_raw_fd() as u64;
        let read = run(libc::SYS_read, [r, GUEST, 100, 0, 0, 0], vec![]);
        assert_eq!(output(&read, 1), b"abc");
    }

    #[test]
    fn sockaddr_outputs_fit_the_guest_buffer() {
        let dir = TempDir::new("sockaddr");
        let path = dir.0.join("sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let fd = listener.as_raw_fd() as u64;
        let full = 2 + path.as_os_str().len() + 1;

        // Room for 4 bytes: 4 bytes come back, and the length says how much
        // there was.
        let small = run(
            libc::SYS_getsockname,
            [fd, GUEST, GUEST, 0, 0, 0],
            vec![input(2, &4u32.to_ne_bytes())],
        );
        assert_eq!(small.ret, 0);
        assert_eq!(output(&small, 1).len(), 4);
        assert_eq!(output(&small, 1)[..2], (libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(output(&small, 2), (full as u32).to_ne_bytes());

        // A guest buffer larger than any address: the address, whole.
        let large = run(
            libc::SYS_getsockname,
            [fd, GUEST, GUEST, 0, 0, 0],
            vec![input(2, &1000u32.to_ne_bytes())],
        );
        assert_eq!(large.ret, 0);
        assert_eq!(output(&large, 1).len(), full);
        assert_eq!(&output(&large, 1)[2..full - 1], path.as_os_str().as_bytes());

        // Negative and missing lengths.
        let negative = run(
            libc::SYS_getsockname,
            [fd, GUEST, GUEST, 0, 0, 0],
            vec![input(2, &(-1i32).to_ne_bytes())],
        );
        assert_eq!(negative.ret, -i64::from(libc::EINVAL));
        let no_length = run(libc::SYS_getsockname, [fd, GUEST, 0, 0, 0, 0], vec![]);
        assert_eq!(no_length.ret, -i64::from(libc::EFAULT));

        // A failure leaves the guest's length as it was.
        let failed = run(
            libc::SYS_getsockname,
            [u32::MAX as u64, GUEST, GUEST, 0, 0, 0],
            vec![input(2, &1000u32.to_ne_bytes())],
        );
        assert_eq!(failed.ret, -i64::from(libc::EBADF));
        assert_eq!(failed.outputs.len(), 1);
        assert_eq!(output(&failed, 2), 1000u32.to_ne_bytes());
    }

    #[test]
    fn identity_calls() {
        assert_eq!(
            run(libc::SYS_getppid, [0; 6], vec![]).ret,
            i64::from(std::os::unix::process::parent_id())
        );
        let ids = run(libc::SYS_getresuid, [GUEST, GUEST, GUEST, 0, 0, 0], vec![]);
        assert_eq!(ids.ret, 0);
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        assert_eq!(output(&ids, 0), uid.to_ne_bytes());
        let uname = run(libc::SYS_uname, [GUEST, 0, 0, 0, 0, 0], vec![]);
        assert_eq!(uname.ret, 0);
        assert_eq!(output(&uname, 0).len(), 390);
        assert_eq!(&output(&uname, 0)[..6], b"Linux\0");
    }

    #[test]
    fn semaphore_sets_move_whole_only_at_their_own_size() {
        // SAFETY: semget takes a key, a count and flags.
        let set = unsafe { libc::semget(libc::IPC_PRIVATE, 3, 0o600) };
        assert!(set >= 0, "{}", std::io::Error::last_os_error());
        let setall = |count: u64, values: &[u16]| {
            let bytes = values
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect::<Vec<_>>();
            run(
                libc::SYS_semctl,
                [set as u64, count, libc::SETALL as u64, GUEST, 0, 0],
                vec![input(3, &bytes)],
            )
        };
        assert_eq!(setall(3, &[4, 5, 6]).ret, 0);
        // A count that is not the set's, whatever the host says.
        assert_eq!(setall(2, &[1, 2]).ret, -i64::from(libc::EINVAL));
        let all = run(
            libc::SYS_semctl,
            [set as u64, 3, libc::GETALL as u64, GUEST, 0, 0],
            vec![],
        );
        assert_eq!(all.ret, 0);
        assert_eq!(output(&all, 3), [4u16, 5, 6].map(u16::to_ne_bytes).concat());
        assert_eq!(
            run(
                libc::SYS_semctl,
                [set as u64, 0, libc::IPC_RMID as u64, 0, 0, 0],
                vec![]
            )
            .ret,
            0
        );
        // A set that is gone: the kernel's own answer.
        assert_eq!(setall(3, &[1, 2, 3]).ret, -i64::from(libc::EINVAL));
    }

    #[test]
    fn messages_keep_their_type_and_leave_the_rest_of_the_buffer() {
        // SAFETY: msgget takes a key and flags.
        let queue = unsafe { libc::msgget(libc::IPC_PRIVATE, 0o600) } as u64;
        let mut message = 5i64.to_ne_bytes().to_vec();
        message.extend_from_slice(b"hello");
        let sent = run(
            libc::SYS_msgsnd,
            [queue, GUEST, 5, 0, 0, 0],
            vec![input(1, &message)],
        );
        assert_eq!(sent.ret, 0);
        let room = [0xaau8; 8 + 16];
        let got = run(
            libc::SYS_msgrcv,
            [queue, GUEST, 16, 0, 0, 0],
            vec![input(1, &room)],
        );
        assert_eq!(got.ret, 5);
        let mut expected = message.clone();
        expected.extend_from_slice(&[0xaa; 11]);
        assert_eq!(output(&got, 1), expected);
        let removed = run(
            libc::SYS_msgctl,
            [queue, libc::IPC_RMID as u64, 0, 0, 0, 0],
            vec![],
        );
        assert_eq!(removed.ret, 0);
    }

    /// `cmsghdr` with `SCM_RIGHTS` for `fds`.
    fn rights(fds: &[i32]) -> Vec<u8> {
        let mut control = ((16 + 4 * fds.len()) as u64).to_ne_bytes().to_vec();
        control.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        control.extend_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
        for fd in fds {
            control.extend_from_slice(&fd.to_ne_bytes());
        }
        control.resize(control.len().next_multiple_of(8), 0);
        control
    }

    #[test]
    fn messages_carry_fds_but_never_the_hidden_one() {
        let mut pair = [0; 2];
        // SAFETY: socketpair writes two ints into `pair`.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, pair.as_mut_ptr()) };
        assert_eq!(rc, 0);
        let [sender, receiver] = pair.map(|fd| fd as u64);
        let send = |control: Vec<u8>| {
            let inputs = vec![
                ArgData {
                    index: 1,
                    bytes: b"hello".to_vec(),
                },
                ArgData {
                    index: 4,
                    bytes: control.clone(),
                },
            ];
            // Fd 2 stands for the deputy's own connection.
            message(
                &SyscallCall {
                    nr: libc::SYS_sendmsg as u64,
                    args: [sender, 0, 0, 0, control.len() as u64, 5],
                    inputs,
                },
                2,
            )
        };
        let hidden = send(rights(&[0, 2]));
        assert_eq!(hidden.ret, -i64::from(libc::EBADF));
        let sent = send(rights(&[0]));
        assert_eq!(sent.ret, 5);
        let received = message(
            &SyscallCall {
                nr: libc::SYS_recvmsg as u64,
                args: [receiver, 0, 0, 0, 64, 3],
                inputs: vec![],
            },
            2,
        );
        assert_eq!(received.ret, 3);
        assert_eq!(output(&received, 1), b"hel");
        assert_eq!(output(&received, 4).len(), 24);
        let flags = i32::from_ne_bytes(output(&received, 5)[4..8].try_into().unwrap());
        assert_ne!(flags & libc::MSG_TRUNC, 0);
        let passed = i32::from_ne_bytes(output(&received, 4)[16..20].try_into().unwrap());
        assert!(passed > 2);
        for fd in [sender, receiver, passed as u64] {
            // SAFETY: closing fds this test opened.
            unsafe { libc::close(fd as i32) };
        }
    }
}
