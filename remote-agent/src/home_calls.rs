//! Syscalls sent home and their answers, matched by request id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use homing_proto::guest::ToHome;
use homing_proto::syscall::{ArgData, SyscallCall, SyscallResult};
use tokio::sync::{mpsc, oneshot};

use crate::cache::{HomeFile, STAT_SIZE};

/// The home node can no longer be reached for this guest.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the home node is gone")]
pub struct HomeGone;

/// The guest's channel home, with its calls in flight.
#[derive(Debug)]
pub struct HomeCalls {
    to_home: mpsc::UnboundedSender<ToHome>,
    pending: DashMap<u64, oneshot::Sender<SyscallResult>>,
    next_id: AtomicU64,
    forwarded: AtomicU64,
    /// Calls that need no answer and may wait (see [`HomeCalls::hold`]),
    /// in the order made; they go before anything else is sent.
    held: Mutex<Vec<ToHome>>,
}

/// How long a call that needs no answer waits on the host, at most, for
/// something to go home with it (see [`HomeCalls::hold`]).
pub const HELD_AT_MOST: Duration = Duration::from_millis(1);

/// A program home opened for an exec (see `OPEN_PROGRAM`), or `-errno`.
pub type OpenedProgram = Result<ProgramAtHome, i64>;

/// A program home opened for an exec.
#[derive(Debug)]
pub struct ProgramAtHome {
    /// The fd to fetch it through.
    pub fd: i32,
    /// Its identity, where home told it.
    pub file: Option<HomeFile>,
    /// Its path at home (empty where home could not tell it).
    pub home_path: Vec<u8>,
    /// The dynamic loader it names, where home opened that too.
    pub loader: Option<Box<ProgramAtHome>>,
}

/// A non-null placeholder for a pointer argument whose buffer travels as data.
const BUFFER: u64 = 1;

impl HomeCalls {
    /// Calls home over `to_home`.
    pub fn new(to_home: mpsc::UnboundedSender<ToHome>) -> Self {
        Self {
            to_home,
            pending: DashMap::new(),
            next_id: AtomicU64::new(1),
            forwarded: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
        }
    }

    /// The id the next call will have.
    pub fn next_id(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Makes the next call's id at least `id`.
    pub fn start_ids_at(&self, id: u64) {
        self.next_id.fetch_max(id, Ordering::Relaxed);
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Asks home to interrupt every call in flight; their answers (most
    /// often EINTR, or what they did before the interruption) still come.
    pub fn interrupt_all(&self) {
        for entry in self.pending.iter() {
            let _ = self.send(ToHome::Cancel { id: *entry.key() });
        }
    }

    /// How many syscalls have been forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Sends a message that expects no answer, behind whatever is held.
    pub fn send(&self, msg: ToHome) -> Result<(), HomeGone> {
        let mut held = self.held();
        self.send_held(&mut held)?;
        self.to_home.send(msg).map_err(|_| HomeGone)
    }

    /// The calls held, locked: whoever sends holds the lock from the
    /// held calls' going to its own message's, so that nothing passes them.
    fn held(&self) -> MutexGuard<'_, Vec<ToHome>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send_held(&self, held: &mut Vec<ToHome>) -> Result<(), HomeGone> {
        for earlier in held.drain(..) {
            self.to_home.send(earlier).map_err(|_| HomeGone)?;
        }
        Ok(())
    }

    /// Sends whatever is held now.
    pub fn release_held(&self) {
        let _ = self.send_held(&mut self.held());
    }

    /// Executes `call` at home on behalf of guest thread `tid`.
    pub async fn call(&self, tid: i32, call: SyscallCall) -> Result<SyscallResult, HomeGone> {
        let (_, answer) = self.start(tid, call)?;
        answer.await.map_err(|_| HomeGone)
    }

    /// Sends `call` home; returns its id and where its answer will arrive.
    pub fn start(
        &self,
        tid: i32,
        call: SyscallCall,
    ) -> Result<(u64, oneshot::Receiver<SyscallResult>), HomeGone> {
        self.start_as(tid, call, false)
    }

    /// Sends `call` home ahead of the program, which may never make it:
    /// home's agent answers it only if it can itself (see
    /// [`ToHome::Syscall`]). Returns where its answer will arrive.
    pub fn start_ahead(
        &self,
        tid: i32,
        call: SyscallCall,
    ) -> Result<oneshot::Receiver<SyscallResult>, HomeGone> {
        self.start_as(tid, call, true).map(|(_, answer)| answer)
    }

    /// A new call's id, in flight until its answer comes to the receiver
    /// returned; `counted`: among the calls forwarded.
    fn begin(&self, counted: bool) -> (u64, oneshot::Receiver<SyscallResult>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.insert(id, tx);
        if counted {
            self.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        (id, rx)
    }

    fn start_as(
        &self,
        tid: i32,
        call: SyscallCall,
        ahead: bool,
    ) -> Result<(u64, oneshot::Receiver<SyscallResult>), HomeGone> {
        let (id, rx) = self.begin(!ahead);
        if self
            .send(ToHome::Syscall {
                id,
                tid,
                call,
                ahead,
            })
            .is_err()
        {
            self.pending.remove(&id);
            return Err(HomeGone);
        }
        Ok((id, rx))
    }

    /// Sends `call` home for guest thread `tid` without waiting for its
    /// answer, which is dropped when it comes; until then it counts as in
    /// flight.
    pub fn start_unanswered(&self, tid: i32, call: SyscallCall) -> Result<(), HomeGone> {
        self.start(tid, call).map(drop)
    }

    /// Holds `call`, which needs no answer, for guest thread `tid`: it goes
    /// home with the next message, or after [`HELD_AT_MOST`] if none goes
    /// before. Until its answer comes it counts as in flight.
    ///
    /// Made back to back, as a program closes one file and opens the next,
    /// two calls go in one packet and home hands both to the deputy at
    /// once: one wakeup of each instead of two.
    pub fn hold(self: &Arc<Self>, tid: i32, call: SyscallCall) {
        let (id, _) = self.begin(true);
        let mut held = self.held();
        let first = held.is_empty();
        held.push(ToHome::Syscall {
            id,
            tid,
            call,
            ahead: false,
        });
        drop(held);
        if first {
            let calls = Arc::downgrade(self);
            tokio::spawn(async move {
                tokio::time::sleep(HELD_AT_MOST).await;
                if let Some(calls) = calls.upgrade() {
                    calls.release_held();
                }
            });
        }
    }

    /// Tells home that call `id` is no longer wanted; its answer, when it
    /// comes, is dropped.
    pub fn cancel(&self, id: u64) {
        self.pending.remove(&id);
        let _ = self.send(ToHome::Cancel { id });
    }

    /// Asks home to interrupt call `id`, whose answer is still wanted (it
    /// may carry what the call did before the interruption).
    pub fn interrupt(&self, id: u64) {
        let _ = self.send(ToHome::Cancel { id });
    }

    /// Delivers the answer to call `id`. Unknown ids (a confused or hostile peer) are ignored.
    pub fn complete(&self, id: u64, result: SyscallResult) {
        if let Some((_, tx)) = self.pending.remove(&id) {
            let _ = tx.send(result);
        }
    }

    /// Fails every call in flight and every later one: home is gone.
    pub fn fail_all(&self) {
        self.pending.clear();
    }

    async fn raw(
        &self,
        tid: i32,
        nr: i64,
        args: [u64; 6],
        inputs: Vec<ArgData>,
    ) -> Result<SyscallResult, HomeGone> {
        let call = SyscallCall {
            nr: nr as u64,
            args,
            inputs,
        };
        self.call(tid, call).await
    }

    /// `openat(AT_FDCWD, path, flags)` at home, for reading: the fd and,
    /// when it is a regular file, its identity, which home sends with the
    /// answer (see [`homing_proto::syscall::PREFETCHED_STAT`]); or
    /// `-errno`.
    pub async fn open_to_read(
        &self,
        tid: i32,
        path: &[u8],
        flags: i32,
    ) -> Result<Result<(i32, Option<HomeFile>), i64>, HomeGone> {
        let args = [libc::AT_FDCWD as u64, BUFFER, flags as u64, 0, 0, 0];
        let input = path_input(1, path);
        let result = self.raw(tid, libc::SYS_openat, args, vec![input]).await?;
        if result.ret < 0 {
            return Ok(Err(result.ret));
        }
        let file = result
            .output(homing_proto::syscall::PREFETCHED_STAT)
            .and_then(HomeFile::from_stat);
        Ok(Ok((result.ret as i32, file)))
    }

    /// Opens the program at `path` at home for an exec (see
    /// [`homing_proto::syscall::OPEN_PROGRAM`]): the fd to fetch it
    /// through, its identity and its path at home; or `-errno` (`-ENOSYS`:
    /// home's agent cannot look the path up). `behind` runs once the call
    /// is on its way, before its answer comes: what it sends goes right
    /// behind it.
    pub async fn open_program(
        &self,
        tid: i32,
        path: &[u8],
        behind: impl FnOnce(),
    ) -> Result<OpenedProgram, HomeGone> {
        let input = path_input(0, path);
        self.program_call(tid, [BUFFER, 0, 0, 0, 0, 0], vec![input], behind)
            .await
    }

    /// The same for what the deputy's fd `fd` (opened with `O_PATH`)
    /// names (`-ENOSYS`: home's agent cannot open programs).
    pub async fn open_program_at(&self, tid: i32, fd: i32) -> Result<OpenedProgram, HomeGone> {
        self.program_call(tid, [fd as u64, 0, 0, 0, 0, 0], vec![], || {})
            .await
    }

    async fn program_call(
        &self,
        tid: i32,
        args: [u64; 6],
        inputs: Vec<ArgData>,
        behind: impl FnOnce(),
    ) -> Result<OpenedProgram, HomeGone> {
        let call = SyscallCall {
            nr: homing_proto::syscall::OPEN_PROGRAM,
            args,
            inputs,
        };
        let (_, answer) = self.start(tid, call)?;
        behind();
        let result = answer.await.map_err(|_| HomeGone)?;
        if result.ret < 0 {
            return Ok(Err(result.ret));
        }
        use homing_proto::syscall::{LOADER_FD, LOADER_PATH, LOADER_STAT};
        use homing_proto::syscall::{PREFETCHED_STAT, PROGRAM_PATH};
        let home_path = |index| result.output(index).unwrap_or_default().to_vec();
        let loader = result
            .output(LOADER_FD)
            .and_then(|fd| Some(i32::from_ne_bytes(fd.try_into().ok()?)))
            .map(|fd| {
                Box::new(ProgramAtHome {
                    fd,
                    file: result.output(LOADER_STAT).and_then(HomeFile::from_stat),
                    home_path: home_path(LOADER_PATH),
                    loader: None,
                })
            });
        Ok(Ok(ProgramAtHome {
            fd: result.ret as i32,
            file: result.output(PREFETCHED_STAT).and_then(HomeFile::from_stat),
            home_path: home_path(PROGRAM_PATH),
            loader,
        }))
    }

    /// `access(path, X_OK)` at home: whether the program may execute
    /// what `path` names, or `-errno`.
    pub async fn may_execute(&self, tid: i32, path: &[u8]) -> Result<Result<(), i64>, HomeGone> {
        let input = path_input(0, path);
        let args = [BUFFER, libc::X_OK as u64, 0, 0, 0, 0];
        let result = self.raw(tid, libc::SYS_access, args, vec![input]).await?;
        Ok(if result.ret < 0 {
            Err(result.ret)
        } else {
            Ok(())
        })
    }

    /// `fstat(fd)` at home: the file's identity, or `-errno`.
    pub async fn fstat(&self, tid: i32, fd: i32) -> Result<Result<HomeFile, i64>, HomeGone> {
        let args = [fd as u64, BUFFER, 0, 0, 0, 0];
        let result = self.raw(tid, libc::SYS_fstat, args, vec![]).await?;
        Ok(stat_in(&result, 1))
    }

    /// `newfstatat(dirfd, path, flags)` at home: the identity of what
    /// `path` names, or `-errno`.
    pub async fn stat_at(
        &self,
        tid: i32,
        dirfd: i32,
        path: &[u8],
        flags: i32,
    ) -> Result<Result<HomeFile, i64>, HomeGone> {
        let args = [dirfd as u64, BUFFER, BUFFER, flags as u64, 0, 0];
        let input = path_input(1, path);
        let result = self
            .raw(tid, libc::SYS_newfstatat, args, vec![input])
            .await?;
        Ok(stat_in(&result, 2))
    }

    /// `pread64(fd, len, offset)` at home: the bytes read, or `-errno`.
    pub async fn pread(
        &self,
        tid: i32,
        fd: i32,
        offset: u64,
        len: usize,
    ) -> Result<Result<Vec<u8>, i64>, HomeGone> {
        let args = [fd as u64, BUFFER, len as u64, offset, 0, 0];
        let result = self.raw(tid, libc::SYS_pread64, args, vec![]).await?;
        Ok(second_output(result))
    }

    /// `fcntl(fd, F_GETFL)` at home: how the file is open, or `-errno`.
    pub async fn open_flags(&self, tid: i32, fd: i32) -> Result<i64, HomeGone> {
        self.fcntl_get(tid, fd, libc::F_GETFL).await
    }

    /// `fcntl(fd, F_GETFD)` at home: the fd's own flags, or `-errno`.
    pub async fn fd_flags(&self, tid: i32, fd: i32) -> Result<i64, HomeGone> {
        self.fcntl_get(tid, fd, libc::F_GETFD).await
    }

    async fn fcntl_get(&self, tid: i32, fd: i32, command: i32) -> Result<i64, HomeGone> {
        let args = [fd as u64, command as u64, 0, 0, 0, 0];
        Ok(self.raw(tid, libc::SYS_fcntl, args, vec![]).await?.ret)
    }

    /// `pwrite64(fd, bytes, offset)` at home: how many bytes it wrote, or `-errno`.
    pub async fn pwrite(
        &self,
        tid: i32,
        fd: i32,
        offset: u64,
        bytes: Vec<u8>,
    ) -> Result<Result<usize, i64>, HomeGone> {
        let args = [fd as u64, BUFFER, bytes.len() as u64, offset, 0, 0];
        let inputs = vec![ArgData { index: 1, bytes }];
        let result = self.raw(tid, libc::SYS_pwrite64, args, inputs).await?;
        Ok(match result.ret {
            ret if ret < 0 => Err(ret),
            ret => Ok(ret as usize),
        })
    }

    /// [`Self::pread`] as an `io::Result`, for a reader of a file's bytes.
    pub async fn pread_file(
        &self,
        tid: i32,
        fd: i32,
        offset: u64,
        len: usize,
    ) -> std::io::Result<Vec<u8>> {
        match self.pread(tid, fd, offset, len).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(errno)) => Err(std::io::Error::from_raw_os_error(-errno as i32)),
            Err(gone) => Err(std::io::Error::other(gone.to_string())),
        }
    }

    /// Sends `pread64(fd, len, offset)` home; returns where its answer
    /// will arrive (the bytes are its output 1).
    pub fn start_pread(
        &self,
        tid: i32,
        fd: i32,
        offset: u64,
        len: usize,
    ) -> Result<oneshot::Receiver<SyscallResult>, HomeGone> {
        let call = SyscallCall {
            nr: libc::SYS_pread64 as u64,
            args: [fd as u64, BUFFER, len as u64, offset, 0, 0],
            inputs: vec![],
        };
        self.start(tid, call).map(|(_, answer)| answer)
    }

    /// `readlink(path)` at home: the link's target, or `-errno`.
    pub async fn readlink(&self, tid: i32, path: &[u8]) -> Result<Result<Vec<u8>, i64>, HomeGone> {
        let args = [BUFFER, BUFFER, libc::PATH_MAX as u64, 0, 0, 0];
        let input = path_input(0, path);
        let result = self.raw(tid, libc::SYS_readlink, args, vec![input]).await?;
        Ok(second_output(result))
    }

    /// The path home's kernel gives the program's fd `fd` (its
    /// `/proc/self/fd` link there), if it gives one.
    pub async fn path_of_fd(&self, tid: i32, fd: i32) -> Result<Option<Vec<u8>>, HomeGone> {
        let fd_link = format!("/proc/self/fd/{fd}");
        Ok(self.readlink(tid, fd_link.as_bytes()).await?.ok())
    }

    /// `close(fd)` at home, of an fd opened read-only (or a file home keeps
    /// for this host, whose writes have all been answered): that cannot
    /// fail (nothing is left to write back), so nothing waits for its answer.
    /// Calls sent later travel behind it and see the fd closed.
    pub fn close_read_only(&self, tid: i32, fd: i32) -> Result<(), HomeGone> {
        let call = SyscallCall {
            nr: libc::SYS_close as u64,
            args: [fd as u64, 0, 0, 0, 0, 0],
            inputs: vec![],
        };
        self.start_unanswered(tid, call)
    }
}

/// A path as a call's input `index`: NUL-terminated, as the kernel reads it.
fn path_input(index: u8, path: &[u8]) -> ArgData {
    let mut bytes = Vec::with_capacity(path.len() + 1);
    bytes.extend_from_slice(path);
    bytes.push(0);
    ArgData { index, bytes }
}

/// The bytes a call wrote into its argument 1 (a read's buffer, a
/// readlink's target), or its `-errno`.
fn second_output(result: SyscallResult) -> Result<Vec<u8>, i64> {
    if result.ret < 0 {
        return Err(result.ret);
    }
    Ok(result.output(1).map(<[u8]>::to_vec).unwrap_or_default())
}

/// The file a stat call wrote into its argument `index` (a `struct
/// stat`), or its `-errno` (EIO where it wrote none that is whole).
fn stat_in(result: &SyscallResult, index: u8) -> Result<HomeFile, i64> {
    if result.ret < 0 {
        return Err(result.ret);
    }
    result
        .output(index)
        .filter(|stat| stat.len() == STAT_SIZE)
        .and_then(HomeFile::from_stat)
        .ok_or(-(libc::EIO as i64))
}
