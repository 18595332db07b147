//! Running one guest: fetch its program from home, start it under the
//! filter, answer its intercepted syscalls, report its end.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use homing_proto::control::AwayProcess;
use homing_proto::guest::{GuestExit, GuestStart, ToHome, ToHost};
use homing_proto::syscall::{self, ArgData, Dir, Len, Route, Special, SyscallCall};
use homing_shim::memory::ProcessMemory;
use homing_shim::seccomp::{Answer, Filter, Listener, Notification};
use homing_shim::spawn::{spawn, GuestSpec};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::cache::{Cache, HomeFile};
use crate::home_calls::{HomeCalls, HomeGone};

/// Longest iovec array accepted (the kernel's IOV_MAX).
const IOV_MAX: usize = 1024;
/// Largest single read or write forwarded at once; bigger ones are shortened,
/// which POSIX allows for both.
const MAX_TRANSFER: usize = 8 << 20;

/// The host role of a node: its guests and its cache.
pub struct HostRole {
    node: String,
    cache: Cache,
    filter: Filter,
    guests: DashMap<i32, GuestEntry>,
}

struct GuestEntry {
    home_node: String,
    home_pid: i32,
    uid: u32,
    command: String,
    calls: Arc<HomeCalls>,
}

/// Why a guest could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Home(#[from] HomeGone),
    #[error("{path}: {message}")]
    Program { path: String, message: String },
    #[error("{0}")]
    Spawn(#[from] homing_shim::spawn::SpawnError),
}

impl HostRole {
    /// The host role of node `node`, caching under `state_dir`.
    pub fn new(node: &str, state_dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            node: node.to_owned(),
            cache: Cache::new(&state_dir.join("cache"))?,
            filter: Filter::guest(),
            guests: DashMap::new(),
        })
    }

    /// The guests running here now.
    pub fn guests(&self) -> Vec<AwayProcess> {
        self.guests
            .iter()
            .map(|g| AwayProcess {
                pid: g.home_pid,
                command: g.command.clone(),
                node: g.home_node.clone(),
                state: "running".into(),
                syscalls: g.calls.forwarded(),
                uid: g.uid,
                host_pid: *g.key(),
            })
            .collect()
    }

    /// Runs the guest `start` until it ends, talking to its home over the two channels.
    pub async fn run_guest(
        self: Arc<Self>,
        start: GuestStart,
        to_home: mpsc::UnboundedSender<ToHome>,
        mut from_home: mpsc::UnboundedReceiver<ToHost>,
    ) {
        let calls = Arc::new(HomeCalls::new(to_home));
        let guest_pid = Arc::new(OnceLock::<i32>::new());
        let pump = {
            let calls = calls.clone();
            let guest_pid = guest_pid.clone();
            let home = format!("{}:{}", start.home_node, start.home_pid);
            tokio::spawn(async move {
                while let Some(msg) = from_home.recv().await {
                    match msg {
                        ToHost::Result { id, result } => calls.complete(id, result),
                        ToHost::Signal { signal } => {
                            if let Some(pid) = guest_pid.get() {
                                debug!(home, signal, "forwarding signal to guest");
                                signal_guest(*pid, signal);
                            }
                        }
                    }
                }
                // Home is gone: the guest cannot go on without its identity.
                calls.fail_all();
                if let Some(pid) = guest_pid.get() {
                    warn!(home, "lost the home node; killing the guest");
                    signal_guest(*pid, libc::SIGKILL);
                }
            })
        };

        let (status, reason) = match self.start(&start, &calls).await {
            Ok(guest) => {
                let pid = guest.pid;
                let _ = guest_pid.set(pid);
                let command = start
                    .argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ");
                info!(home_node = %start.home_node, home_pid = start.home_pid, host_pid = pid, %command, "guest started");
                self.guests.insert(
                    pid,
                    GuestEntry {
                        home_node: start.home_node.clone(),
                        home_pid: start.home_pid,
                        uid: start.uid,
                        command,
                        calls: calls.clone(),
                    },
                );
                let _ = calls.send(ToHome::Started { host_pid: pid });
                let status = self
                    .clone()
                    .supervise(guest, start.home_pid, &start.home_node, calls.clone())
                    .await;
                self.guests.remove(&pid);
                info!(
                    host_pid = pid,
                    ?status,
                    forwarded = calls.forwarded(),
                    "guest ended"
                );
                (status, None)
            }
            Err(error) => {
                warn!(home_node = %start.home_node, home_pid = start.home_pid, "guest could not start: {error}");
                let code = match &error {
                    StartError::Program { .. } => 126,
                    _ => 1,
                };
                (
                    GuestExit::Code(code),
                    Some(format!("{} could not start it: {error}", self.node)),
                )
            }
        };
        let _ = calls.send(ToHome::Exited { status, reason });
        pump.abort();
    }

    async fn start(
        &self,
        start: &GuestStart,
        calls: &HomeCalls,
    ) -> Result<homing_shim::spawn::Guest, StartError> {
        let mut exe_path = start.exe.to_vec();
        let mut argv: Vec<Vec<u8>> = start.argv.iter().map(|a| a.to_vec()).collect();
        let mut local = self
            .fetch_program(&start.home_node, &exe_path, calls)
            .await?;
        // A script names its interpreter: that comes from home too, and gets
        // the script's home path, as the kernel would give it.
        if let Some((interpreter, arg)) = shebang(&local) {
            let mut new_argv = vec![interpreter.clone()];
            new_argv.extend(arg);
            new_argv.push(exe_path.clone());
            new_argv.extend(argv.into_iter().skip(1));
            argv = new_argv;
            exe_path = interpreter;
            local = self
                .fetch_program(&start.home_node, &exe_path, calls)
                .await?;
        }
        let cstrings = |list: Vec<Vec<u8>>| -> Vec<CString> {
            list.into_iter()
                .filter_map(|bytes| CString::new(bytes).ok())
                .collect()
        };
        let spec = GuestSpec {
            exe: CString::new(local.into_os_string().into_encoded_bytes())
                .expect("cache paths have no NUL"),
            argv: cstrings(argv),
            envp: cstrings(start.envp.iter().map(|e| e.to_vec()).collect()),
            uid: start.uid,
            gid: start.gid,
            groups: start.groups.clone(),
        };
        Ok(spawn(&spec, &self.filter)?)
    }

    /// Brings the program at `path` (home) into the cache; returns the local copy.
    async fn fetch_program(
        &self,
        home_node: &str,
        path: &[u8],
        calls: &HomeCalls,
    ) -> Result<PathBuf, StartError> {
        let shown = String::from_utf8_lossy(path).into_owned();
        let fail = |errno: i64| StartError::Program {
            path: shown.clone(),
            message: std::io::Error::from_raw_os_error(-errno as i32).to_string(),
        };
        let fd = calls
            .open(0, path, libc::O_RDONLY | libc::O_CLOEXEC)
            .await?;
        if fd < 0 {
            return Err(fail(fd));
        }
        let fd = fd as i32;
        let result = async {
            let file = calls.fstat(0, fd).await?.map_err(fail)?;
            if !file.is_regular() {
                return Err(StartError::Program {
                    path: shown.clone(),
                    message: "not a regular file".into(),
                });
            }
            self.cache_file(home_node, &file, fd, calls).await
        }
        .await;
        calls.close(0, fd).await?;
        result
    }

    async fn cache_file(
        &self,
        home_node: &str,
        file: &HomeFile,
        fd: i32,
        calls: &HomeCalls,
    ) -> Result<PathBuf, StartError> {
        self.cache
            .ensure(home_node, file, |offset, len| async move {
                match calls.pread(0, fd, offset, len).await {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(errno)) => {
                        Err(std::io::Error::from_raw_os_error(-errno as i32).to_string())
                    }
                    Err(gone) => Err(gone.to_string()),
                }
            })
            .await
            .map_err(|e| StartError::Program {
                path: format!("{home_node} file {:x}:{:x}", file.dev, file.ino),
                message: e.to_string(),
            })
    }

    async fn supervise(
        self: Arc<Self>,
        guest: homing_shim::spawn::Guest,
        home_pid: i32,
        home_node: &str,
        calls: Arc<HomeCalls>,
    ) -> GuestExit {
        let pid = guest.pid;
        let listener = Arc::new(guest.listener);
        let (notify_tx, mut notify_rx) = mpsc::unbounded_channel();
        {
            let listener = listener.clone();
            std::thread::Builder::new()
                .name(format!("notify-{pid}"))
                .spawn(move || loop {
                    match listener.recv(Duration::from_millis(250)) {
                        Ok(Some(n)) => {
                            if notify_tx.send(n).is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                })
                .expect("spawning the notification thread");
        }
        let (exit_tx, mut exit_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("wait-{pid}"))
            .spawn(move || {
                let _ = exit_tx.send(wait_for_exit(pid));
            })
            .expect("spawning the wait thread");
        let ctx = Arc::new(Context {
            home_node: home_node.to_owned(),
            home_pid,
            guest_pid: pid,
            listener,
            calls,
            role: self.clone(),
        });
        loop {
            tokio::select! {
                Some(n) = notify_rx.recv() => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { ctx.handle(n).await });
                }
                status = &mut exit_rx => {
                    drop(guest.pidfd);
                    return status.unwrap_or(GuestExit::Signal(libc::SIGKILL));
                }
            }
        }
    }
}

/// Everything a notification handler needs.
struct Context {
    home_node: String,
    home_pid: i32,
    guest_pid: i32,
    listener: Arc<Listener>,
    calls: Arc<HomeCalls>,
    role: Arc<HostRole>,
}

fn errno_of(ret: i64) -> Answer {
    if ret < 0 {
        Answer::Errno(-ret as i32)
    } else {
        Answer::Value(ret)
    }
}

impl Context {
    async fn handle(&self, n: Notification) {
        let answer = match syscall::route(n.nr, &n.args) {
            Route::Forward(ptrs) => self.forward(&n, &ptrs).await,
            Route::Special(special) => self.special(&n, special).await,
            Route::Refuse { errno } => {
                warn!(
                    home_pid = self.home_pid,
                    syscall = syscall::name(n.nr),
                    nr = n.nr,
                    "unsupported syscall refused with errno {errno}"
                );
                Ok(Answer::Errno(errno))
            }
        };
        let answer = answer.unwrap_or(Answer::Errno(libc::EIO));
        if let Err(error) = self.listener.answer(n.id, answer) {
            debug!("answering {}: {error}", syscall::name(n.nr));
        }
    }

    fn memory(&self, n: &Notification) -> ProcessMemory {
        ProcessMemory::new(n.tid)
    }

    async fn forward(
        &self,
        n: &Notification,
        ptrs: &[syscall::PtrArg],
    ) -> Result<Answer, HomeGone> {
        let memory = self.memory(n);
        let mut inputs = Vec::new();
        for ptr in ptrs {
            let addr = n.args[ptr.index as usize];
            if addr == 0 || ptr.dir == Dir::Out {
                continue;
            }
            let bytes = match ptr.len {
                Len::CStr => memory.read_cstr(addr, syscall::MAX_CSTR),
                _ => match syscall::buffer_len(ptr, &n.args) {
                    Some(len) if len <= MAX_TRANSFER => memory.read(addr, len),
                    _ => return Ok(Answer::Errno(libc::EINVAL)),
                },
            };
            match bytes {
                Ok(bytes) => inputs.push(ArgData {
                    index: ptr.index,
                    bytes,
                }),
                Err(homing_shim::memory::MemoryError::StringTooLong { .. }) => {
                    return Ok(Answer::Errno(libc::ENAMETOOLONG))
                }
                Err(_) => return Ok(Answer::Errno(libc::EFAULT)),
            }
        }
        // What we read is the guest's only if its thread still waits.
        if !self.listener.is_pending(n.id) {
            return Ok(Answer::Errno(libc::EINTR));
        }
        let mut args = n.args;
        // Large reads are shortened rather than refused.
        clamp_transfer(n.nr, &mut args);
        let result = self
            .calls
            .call(
                n.tid,
                SyscallCall {
                    nr: n.nr,
                    args,
                    inputs,
                },
            )
            .await?;
        for output in &result.outputs {
            let Some(ptr) = ptrs
                .iter()
                .find(|p| p.index == output.index && p.dir != Dir::In)
            else {
                continue;
            };
            let addr = n.args[ptr.index as usize];
            let limit = syscall::buffer_len(ptr, &args).unwrap_or(0);
            if addr == 0 || output.bytes.len() > limit {
                return Ok(Answer::Errno(libc::EFAULT));
            }
            if memory.write(addr, &output.bytes).is_err() {
                return Ok(Answer::Errno(libc::EFAULT));
            }
        }
        Ok(errno_of(result.ret))
    }

    async fn special(&self, n: &Notification, special: Special) -> Result<Answer, HomeGone> {
        match special {
            Special::Gettid => Ok(Answer::Value(if n.tid == self.guest_pid {
                self.home_pid as i64
            } else {
                n.tid as i64
            })),
            Special::MmapFile => self.mmap_file(n).await,
            Special::ReadVector | Special::WriteVector => self.vector_io(n, special).await,
        }
    }

    /// mmap of a home fd: map the cached copy instead, by putting a local
    /// fd to it at the same number and letting the guest's mmap run.
    async fn mmap_file(&self, n: &Notification) -> Result<Answer, HomeGone> {
        let (prot, flags, fd) = (n.args[2] as i32, n.args[3] as i32, n.args[4] as i32);
        let shared = flags & 0x3 != libc::MAP_PRIVATE;
        if shared && prot & libc::PROT_WRITE != 0 {
            warn!(home_pid = self.home_pid, fd, "refused a writable shared mapping of a home file (it would silently diverge from home)");
            return Ok(Answer::Errno(libc::ENODEV));
        }
        let file = match self.calls.fstat(n.tid, fd).await? {
            Ok(file) => file,
            Err(errno) => return Ok(errno_of(errno)),
        };
        if !file.is_regular() {
            warn!(
                home_pid = self.home_pid,
                fd,
                mode = format!("{:o}", file.mode),
                "refused mmap of a home file that is not a regular file"
            );
            return Ok(Answer::Errno(libc::ENODEV));
        }
        let path = match self
            .role
            .cache_file(&self.home_node, &file, fd, &self.calls)
            .await
        {
            Ok(path) => path,
            Err(error) => {
                warn!(
                    home_pid = self.home_pid,
                    fd, "cannot cache a mapped home file: {error}"
                );
                return Ok(Answer::Errno(libc::EIO));
            }
        };
        let Ok(local) = std::fs::File::open(&path) else {
            return Ok(Answer::Errno(libc::EIO));
        };
        match self.listener.install_fd(n.id, local.as_fd(), fd) {
            Ok(()) => Ok(Answer::Continue),
            Err(error) => {
                debug!("installing the mapped file's fd: {error}");
                Ok(Answer::Errno(libc::EIO))
            }
        }
    }

    /// readv/writev and friends: one contiguous transfer at home, scattered
    /// or gathered here.
    async fn vector_io(&self, n: &Notification, special: Special) -> Result<Answer, HomeGone> {
        let memory = self.memory(n);
        let count = n.args[2] as usize;
        if count > IOV_MAX {
            return Ok(Answer::Errno(libc::EINVAL));
        }
        let Ok(raw) = memory.read(n.args[1], count * 16) else {
            return Ok(Answer::Errno(libc::EFAULT));
        };
        let iovecs: Vec<(u64, usize)> = raw
            .chunks_exact(16)
            .map(|c| {
                let base = u64::from_ne_bytes(c[..8].try_into().expect("8 bytes"));
                let len = u64::from_ne_bytes(c[8..].try_into().expect("8 bytes"));
                (base, len as usize)
            })
            .collect();
        let total: usize = iovecs
            .iter()
            .map(|(_, len)| *len)
            .sum::<usize>()
            .min(MAX_TRANSFER);
        let positioned = n.nr != libc::SYS_readv as u64 && n.nr != libc::SYS_writev as u64;
        let offset = n.args[3];
        let fd = n.args[0];
        let (nr, args, inputs) = match (special, positioned) {
            (Special::ReadVector, false) => {
                (libc::SYS_read, [fd, 1, total as u64, 0, 0, 0], vec![])
            }
            (Special::ReadVector, true) => (
                libc::SYS_pread64,
                [fd, 1, total as u64, offset, 0, 0],
                vec![],
            ),
            (_, positioned) => {
                let mut data = Vec::with_capacity(total);
                for (base, len) in &iovecs {
                    let take = (*len).min(total - data.len());
                    match memory.read(*base, take) {
                        Ok(bytes) => data.extend_from_slice(&bytes),
                        Err(_) => return Ok(Answer::Errno(libc::EFAULT)),
                    }
                }
                let nr = if positioned {
                    libc::SYS_pwrite64
                } else {
                    libc::SYS_write
                };
                (
                    nr,
                    [fd, 1, data.len() as u64, offset, 0, 0],
                    vec![ArgData {
                        index: 1,
                        bytes: data,
                    }],
                )
            }
        };
        if !self.listener.is_pending(n.id) {
            return Ok(Answer::Errno(libc::EINTR));
        }
        let call = SyscallCall {
            nr: nr as u64,
            args,
            inputs,
        };
        let result = self.calls.call(n.tid, call).await?;
        if special == Special::ReadVector && result.ret > 0 {
            let data = result
                .outputs
                .iter()
                .find(|o| o.index == 1)
                .map(|o| &o.bytes[..])
                .unwrap_or(&[]);
            let mut at = 0;
            for (base, len) in iovecs {
                if at >= data.len() {
                    break;
                }
                let take = len.min(data.len() - at);
                if memory.write(base, &data[at..at + take]).is_err() {
                    return Ok(Answer::Errno(libc::EFAULT));
                }
                at += take;
            }
        }
        Ok(errno_of(result.ret))
    }
}

/// Shortens the length argument of plain reads and writes to [`MAX_TRANSFER`].
fn clamp_transfer(nr: u64, args: &mut [u64; 6]) {
    let nr = nr as i64;
    if [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_getdents64,
    ]
    .contains(&nr)
    {
        args[2] = args[2].min(MAX_TRANSFER as u64);
    }
}

fn signal_guest(pid: i32, signal: i32) {
    use nix::sys::signal::{kill, Signal};
    if let Ok(signal) = Signal::try_from(signal) {
        let _ = kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn wait_for_exit(pid: i32) -> GuestExit {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return GuestExit::Code(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return GuestExit::Signal(signal as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return GuestExit::Signal(libc::SIGKILL),
        }
    }
}

/// The interpreter (and its one optional argument) a `#!` script names.
fn shebang(program: &Path) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n')?];
    let mut parts = line.trim_ascii().splitn(2, |b| *b == b' ' || *b == b'\t');
    let interpreter = parts.next()?.to_vec();
    let arg = parts
        .next()
        .map(|a| a.trim_ascii().to_vec())
        .filter(|a| !a.is_empty());
    Some((interpreter, arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_are_split_like_the_kernel_does() {
        let dir = std::env::temp_dir().join(format!("homing-shebang-{}", std::process::id()));
        std::fs::write(&dir, b"#!/usr/bin/env  python3 \nprint(1)\n").unwrap();
        assert_eq!(
            shebang(&dir),
            Some((b"/usr/bin/env".to_vec(), Some(b"python3".to_vec())))
        );
        std::fs::write(&dir, b"\x7fELF...").unwrap();
        assert_eq!(shebang(&dir), None);
        std::fs::remove_file(&dir).unwrap();
    }
}
