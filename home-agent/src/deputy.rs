//! The deputy: the `homing run` process, which stays at home as the
//! identity of a program running on another node.
//!
//! Its pid is the program's pid, its parent is the shell, its fds (the
//! terminal included), cwd, credentials, umask and rlimits are the
//! program's. The program's residual syscalls arrive here through the node
//! agent and run in this process, so they see exactly what the program
//! would have seen at home. Signals sent to this process are forwarded to
//! the program; when the program ends, this process ends the same way.
//!
//! The deputy keeps no fds of its own but one, the agent socket, moved high
//! so that the program's fd numbers are the ones it would get at home. It is
//! plain threads and blocking I/O: an async runtime would take fds.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use homing_proto::control::{ControlRequest, ControlResponse, RunSpec};
use homing_proto::guest::{GuestExit, SignalSender, ToHome, ToHost};
use homing_proto::syscall::{self, Route, SyscallCall, SyscallResult};
use nix::sys::signal::{self, Signal};

/// The one connection to the agent, read by the main thread and written by
/// every thread (one whole frame at a time). A single fd, so that nothing
/// the program does to its fds at home (close-on-exec, close_range) can
/// touch a second one.
struct Agent {
    stream: UnixStream,
    write_lock: Mutex<()>,
}

impl Agent {
    fn send<T: serde::Serialize>(&self, msg: &T) -> Result<(), String> {
        let _whole_frame = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        write_frame(&mut &self.stream, msg)
    }
}

type Writer = Arc<Agent>;

/// The agent's socket, for deputies forked later to reach it.
static AGENT_SOCKET: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Runs `argv` on `node` with this process as its deputy. Returns only on
/// failure to start; otherwise the process ends as the program does.
pub fn run(socket: &Path, node: &str, argv: Vec<OsString>) -> i32 {
    homing_shim::process::one_heap_for_all_threads();
    let program = &argv[0];
    let exe = match resolve(program) {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    if let Some(name) = exe.file_name() {
        name_after(name);
    }
    let stream = match connect_agent(socket) {
        Ok(stream) => stream,
        Err(message) => {
            eprintln!("homing: {message}");
            return 1;
        }
    };
    let spec = RunSpec {
        exe: exe.into_os_string().into_vec(),
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        envp: std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                kv
            })
            .collect(),
    };
    let command_line = spec.argv.clone();
    let request = ControlRequest::Run {
        node: node.to_owned(),
        start: spec,
    };
    start_serving(stream, &request, &command_line)
}

/// The program exec'd another: this process takes the new one's name
/// and command line (the host sends them with the exec), as the kernel
/// would have set them.
fn take_program_identity(call: &SyscallCall) {
    let input = |index: u8| {
        call.inputs
            .iter()
            .find(|i| i.index == index)
            .map(|i| &i.bytes)
    };
    if let Some(path) = input(2) {
        let path = Path::new(OsStr::from_bytes(path));
        if let Some(name) = path.file_name() {
            name_after(name);
        }
    }
    if let Some(command_line) = input(1) {
        let args: Vec<Vec<u8>> = command_line
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        show_command_line(&args);
    }
}

/// Shows `args` as this process's command line (`ps -f`, `pgrep -f`).
fn show_command_line(args: &[Vec<u8>]) {
    if let Err(error) = homing_shim::process::set_command_line(args) {
        tracing::debug!("cannot show the program's command line: {error}");
    }
}

/// Takes the program's name (what the kernel would have set at its exec:
/// 15 bytes of its file name), so that `ps`, `top` and `pgrep` at home
/// find the program under its own name.
/// The main thread's is the process's name, whichever thread sets it.
fn name_after(program: &OsStr) {
    let name: Vec<u8> = program.as_bytes().iter().copied().take(15).collect();
    if std::fs::write("/proc/self/comm", &name).is_err() {
        if let Ok(name) = std::ffi::CString::new(name) {
            let _ = rustix::thread::set_name(&name);
        }
    }
}

/// The program comes back into this process: the deputy closes its
/// connection, which tells the agent it has made way, and waits. The
/// agent then ends its other threads and restores the program into it,
/// in the room it made for the program's memory while it still ran away.
/// Nothing else changes: the program's fds, marked close-on-exec or not,
/// stay as they are.
fn make_way(agent_fd: i32) -> ! {
    // Signals are taken only while this thread waits for the agent, which
    // it does no more: from now on they wait in the process for the
    // program coming home.
    // A SIGCHLD pending here no signalfd asked for would be news to the
    // program, which had it on its host.
    let child = homing_shim::process::signal_bit(libc::SIGCHLD);
    if SIGNALFD_SIGNALS.load(Ordering::SeqCst) & child == 0 {
        homing_shim::process::take_pending_signal(child);
    }
    if let Err(error) = nix::unistd::close(agent_fd) {
        eprintln!("homing: cannot make way for the program coming home: {error}");
        die_by(libc::SIGKILL);
    }
    loop {
        nix::unistd::pause();
    }
}

/// Serves this process's own program, moved away: the process exec'd
/// itself into this deputy (`homing resume`) and keeps its fds, cwd,
/// credentials, pid and parent. Returns only on failure.
/// `command_line`: the program's, shown as this process's.
pub fn resume(socket: &Path, comm: Option<&OsStr>, command_line: &[OsString]) -> i32 {
    homing_shim::process::one_heap_for_all_threads();
    reap_address_space_holders();
    if let Some(comm) = comm {
        name_after(comm);
    }
    let command_line: Vec<Vec<u8>> = command_line.iter().map(|a| a.as_bytes().to_vec()).collect();
    match connect_agent(socket) {
        Ok(stream) => start_serving(stream, &ControlRequest::Resume, &command_line),
        Err(message) => {
            eprintln!("homing: {message}");
            1
        }
    }
}

/// The agent made this process's exec keep its program's memory alive in
/// a clone (`CLONE_VM`, no exit signal) that it kills once this deputy
/// runs, so that the memory is freed after the exec rather than in it: a
/// child of this process's, to be reaped here. Only a wait for clones
/// (`__WCLONE`, `__WALL`) sees such a child, and every child the program
/// has at home is an ordinary one (this deputy forks them), so a thread
/// reaps clones until none is left (at once if there was none); a wait
/// of the program's that could see one waits for that thread first. The
/// pid is the process the thread runs in: a deputy forked from this one
/// has neither the thread nor the holders.
static HOLDERS_REAPED: Mutex<Option<(u32, std::thread::JoinHandle<()>)>> = Mutex::new(None);

fn reap_address_space_holders() {
    let reaping = std::thread::Builder::new().name("reap-holders".into());
    let reaper = reaping.spawn(|| {
        use nix::sys::wait::{waitpid, WaitPidFlag};
        while let Ok(_) | Err(nix::errno::Errno::EINTR) = waitpid(None, Some(WaitPidFlag::__WCLONE))
        {
        }
    });
    *lock(&HOLDERS_REAPED) = reaper.ok().map(|reaper| (std::process::id(), reaper));
}

/// Before a wait of the program's that clones would answer: the holders
/// are gone, so that it never hears of one.
fn after_holders_reaped(call: &SyscallCall) {
    let options = match call.nr as i64 {
        libc::SYS_wait4 => call.args[2],
        libc::SYS_waitid => call.args[3],
        _ => return,
    };
    if options & (libc::__WALL | libc::__WCLONE) as u32 as u64 == 0 {
        return;
    }
    let reaper = lock(&HOLDERS_REAPED).take();
    match reaper {
        Some((pid, reaper)) if pid == std::process::id() => {
            let _ = reaper.join();
        }
        // Copied by a fork: no thread answers to it here, and a join
        // would wait for good.
        Some((_, copied)) => std::mem::forget(copied),
        None => {}
    }
}

/// The agent connection, on a high fd out of the program's way; the
/// socket is remembered for deputies forked later.
fn connect_agent(socket: &Path) -> Result<UnixStream, String> {
    let _ = AGENT_SOCKET.set(socket.to_owned());
    let stream = UnixStream::connect(socket).map_err(|error| {
        format!(
            "cannot reach the homing agent at {}: {error} (is `homing node` running on this machine?)",
            socket.display()
        )
    })?;
    move_out_of_the_way(stream).map_err(|error| format!("cannot set up the deputy: {error}"))
}

/// Sends `request` (Run or Adopt) and, once the agent says the program
/// runs, serves it until it ends. From then on this process shows the
/// program's `command_line` (not before: until the agent knows it as a
/// deputy, it must look like one).
fn start_serving(
    mut stream: UnixStream,
    request: &ControlRequest,
    command_line: &[Vec<u8>],
) -> i32 {
    match exchange(&mut stream, request) {
        Ok(ControlResponse::Running) => {}
        Ok(ControlResponse::Error { message }) => {
            eprintln!("homing: {message}");
            return 1;
        }
        Ok(other) => {
            eprintln!("homing: unexpected answer from the agent: {other:?}");
            return 1;
        }
        Err(error) => {
            eprintln!("homing: the agent failed to answer: {error}");
            return 1;
        }
    }
    if !command_line.is_empty() {
        show_command_line(command_line);
    }
    serve(stream)
}

/// Finds `program` the way a shell would; on failure prints the shell's
/// message and returns its status (127 not found, 126 not executable).
fn resolve(program: &OsStr) -> Result<PathBuf, i32> {
    let shown = program.to_string_lossy();
    let executable = |path: &Path| {
        nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file()
    };
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        if !path.exists() {
            eprintln!("homing: {shown}: No such file or directory");
            return Err(127);
        }
        if path.is_dir() {
            eprintln!("homing: {shown}: Is a directory");
            return Err(126);
        }
        if !executable(&path) {
            eprintln!("homing: {shown}: Permission denied");
            return Err(126);
        }
        return Ok(path);
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&search) {
        let candidate = dir.join(program);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    eprintln!("homing: {shown}: command not found");
    Err(127)
}

/// Moves the agent socket to a high fd number, out of the program's way:
/// past the numbers the program's soft limit lets it open, where its
/// hard limit leaves room (the soft one is raised for the move; a deputy
/// starts with one thread, so nothing of the program's opens a file
/// meanwhile), or else at the last of them. With `ulimit -S -n 10` a
/// program at home opens fds up to 9, and so it does away.
fn move_out_of_the_way(stream: UnixStream) -> std::io::Result<UnixStream> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    use rustix::io::fcntl_dupfd_cloexec;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard && soft < 1 << 20 {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard)?;
        let past = fcntl_dupfd_cloexec(&stream, soft as i32);
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
        if let Ok(past) = past {
            return Ok(UnixStream::from(past));
        }
    }
    let floor = soft.saturating_sub(1).clamp(3, 1 << 20) as i32;
    let high =
        fcntl_dupfd_cloexec(&stream, floor).or_else(|_| fcntl_dupfd_cloexec(&stream, 255))?;
    Ok(UnixStream::from(high))
}

/// The agent's socket as the deputy reads it: asleep in `poll` for data,
/// not in `recv`. A thread asleep in `recv` on a Unix socket is woken
/// whenever its peer reads what it sent (the room freed wakes everyone
/// waiting on the socket, readers too), so each answer the agent took
/// woke the deputy for nothing: two context switches per call. A `poll`
/// for input is woken only by input.
///
/// It takes the files the agent sends with its messages too (see
/// `ToHome::TakeFiles`), in the order they came, until a message places
/// them.
struct WakesOnlyForData<'a> {
    stream: &'a UnixStream,
    files: std::collections::VecDeque<std::os::fd::OwnedFd>,
    /// Where the signals it takes while it waits go (see [`serve`]).
    signals_to: &'a Writer,
    /// The signals it forwards to the program.
    forwarded: u64,
    /// The signals the reading thread blocks, but while it waits.
    blocked: u64,
}

/// Most files one receive may bring: the agent sends at most 16 at once,
/// and the kernel ends a receive with the files of one send.
const MOST_FILES_RECEIVED: usize = 32;

impl std::io::Read for WakesOnlyForData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use homing_shim::process::{wait_readable_or_signal, Woken};
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        use std::os::fd::AsFd;
        loop {
            let to_forward = match FORWARDING_LOST.load(Ordering::SeqCst) {
                false => self.forwarded & !SIGNALFD_SIGNALS.load(Ordering::SeqCst),
                true => 0,
            };
            // The interrupt too, held off in this thread but here: one sent
            // just before the wait then ends it.
            let taking = to_forward | interrupt_bit();
            match wait_readable_or_signal(self.stream.as_fd(), taking, self.blocked)? {
                Woken::Readable => break,
                Woken::Signal(signal, sender) => forward_signal(signal, sender, self.signals_to),
                // The signals a signalfd asks for changed: they are waited
                // for anew.
                Woken::Interrupted => {}
            }
        }
        let mut space =
            [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MOST_FILES_RECEIVED))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        // Closed on exec until placed: each is the program's only once it
        // is where the program knows it.
        let received = rustix::net::recvmsg(
            self.stream,
            &mut [std::io::IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(files) = message {
                self.files.extend(files);
            }
        }
        if received.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
            tracing::error!("files sent by the agent were lost: more came than room for them");
        }
        Ok(received.bytes)
    }
}

fn exchange(stream: &mut UnixStream, request: &ControlRequest) -> Result<ControlResponse, String> {
    write_frame(stream, request)?;
    read_frame(stream)?.ok_or_else(|| "connection closed".to_owned())
}

fn write_frame<T: serde::Serialize>(stream: &mut impl Write, msg: &T) -> Result<(), String> {
    let frame = homing_proto::encode(msg).map_err(|e| e.to_string())?;
    stream.write_all(&frame).map_err(|e| e.to_string())
}

fn read_frame<T: serde::de::DeserializeOwned>(
    stream: &mut impl std::io::Read,
) -> Result<Option<T>, String> {
    let mut header = [0u8; homing_proto::frame::HEADER_LEN];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = homing_proto::frame::body_len(header).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).map_err(|e| e.to_string())?;
    homing_proto::decode(&body)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn serve(stream: UnixStream) -> i32 {
    let reserved_fd = stream.as_raw_fd();
    // The signals forwarded to the program are blocked in every thread
    // (threads inherit the mask) and taken while this thread waits for
    // the agent; the rest are
    // unblocked (a deputy may start with all blocked). SIGCHLD is blocked
    // too, never forwarded: it stays pending for a signalfd of the
    // program's that asks for it (the children's ends are home's).
    let signals = homing_shim::process::forwarded_signal_mask();
    let child = homing_shim::process::signal_bit(libc::SIGCHLD);
    note_signalfds(false);
    if let Err(error) = homing_shim::process::set_thread_signal_mask(signals | child) {
        eprintln!("homing: cannot block signals: {error}");
        return 1;
    }
    // Ignored (as the Rust runtime leaves it), a SIGPIPE sent to the
    // program's pid, or raised by its write to a pipe no one reads, would
    // be lost; blocked, it waits to be forwarded.
    if let Err(error) = homing_shim::process::default_action(libc::SIGPIPE) {
        eprintln!("homing: cannot take SIGPIPE: {error}");
        return 1;
    }
    // No thread of its own takes them: this one does while it waits for
    // the agent, so that a deputy has a thread for each of its program's
    // and no other (the threads of a user count against its
    // `RLIMIT_NPROC` as processes do: one more in every deputy made the
    // program's forks fail where at home they would not).
    MAIN_THREAD.store(homing_shim::process::this_thread() as u64, Ordering::SeqCst);
    if let Err(error) = homing_shim::process::take_signals_while_waiting(signals) {
        eprintln!("homing: cannot take the program's signals: {error}");
        return 1;
    }
    let writer: Writer = Arc::new(Agent {
        stream,
        write_lock: Mutex::new(()),
    });
    // Buffered: a call's length and body then come in one receive.
    let mut reader = std::io::BufReader::with_capacity(
        64 << 10,
        WakesOnlyForData {
            stream: &writer.stream,
            files: Default::default(),
            signals_to: &writer,
            forwarded: signals,
            blocked: signals | child | interrupt_bit(),
        },
    );
    if let Err(error) = homing_shim::process::install_interrupt_handler() {
        eprintln!("homing: cannot set up the deputy: {error}");
        return 1;
    }
    // The interrupt held off too but while this thread waits for the agent
    // (see `note_signalfds`); its workers let it in again.
    if let Err(error) = homing_shim::process::set_thread_signal_mask(reader.get_ref().blocked) {
        eprintln!("homing: cannot block signals: {error}");
        return 1;
    }
    let mut workers: HashMap<i32, Worker> = HashMap::new();
    loop {
        let msg: ToHome = match read_frame(&mut reader) {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(_) => {
                eprintln!("homing: lost the homing agent; the program's fate is unknown");
                die_by(libc::SIGKILL);
            }
        };
        match msg {
            ToHome::Started { host_pid } => tracing::debug!(host_pid, "program started"),
            // Only the agent sees a moving process's answers.
            ToHome::CaughtUp | ToHome::FilesMapped { .. } | ToHome::Ready => {}
            ToHome::Return => make_way(reserved_fd),
            ToHome::TakeFiles { files } => take_files(&files, &mut reader.get_mut().files),
            // A call that cannot block runs right here: handing it to a
            // worker thread would cost a wakeup, 45-110 us across vCPUs.
            ToHome::Syscall { id, call, .. } if never_blocks(&call) => {
                let result = execute_for_program(&call, reserved_fd, &writer);
                // An answer nobody waits for (a close sent unanswered just
                // before the program ended) may find the agent's end
                // closed: the program's end, read next, still comes.
                let _ = writer.send(&ToHost::Result { id, result });
            }
            ToHome::Syscall { id, tid, call, .. } => {
                if let Some(result) = open_without_blocking(&call, reserved_fd) {
                    let _ = writer.send(&ToHost::Result { id, result });
                    continue;
                }
                use std::collections::hash_map::Entry;
                let worker = match workers.entry(tid) {
                    Entry::Occupied(worker) => worker.into_mut(),
                    Entry::Vacant(vacant) => match spawn_worker(writer.clone(), reserved_fd) {
                        Ok(worker) => vacant.insert(worker),
                        // No thread to be had (the user's `RLIMIT_NPROC`):
                        // the call runs here, where nothing can end it
                        // early but its own end.
                        Err(error) => {
                            tracing::debug!(
                                tid,
                                "no worker thread for a call that may wait: {error}"
                            );
                            let result = execute_for_program(&call, reserved_fd, &writer);
                            let _ = writer.send(&ToHost::Result { id, result });
                            continue;
                        }
                    },
                };
                worker.hand(id, call);
            }
            ToHome::Cancel { id } => {
                for worker in workers.values() {
                    worker.interrupt(id);
                }
            }
            ToHome::Exited { status, reason } => {
                if let Some(reason) = reason {
                    eprintln!("homing: {reason}");
                }
                match status {
                    GuestExit::Code(code) => std::process::exit(code),
                    GuestExit::Signal(signal) => die_by(signal),
                }
            }
        }
    }
}

/// Places the files the agent opened for the program (`received`, in the
/// order they came) at the numbers the program was given (`numbers`, in
/// the same order, with whether each closes on exec).
fn take_files(
    numbers: &[(i32, bool)],
    received: &mut std::collections::VecDeque<std::os::fd::OwnedFd>,
) {
    use std::os::fd::{AsRawFd, IntoRawFd};
    if received.len() < numbers.len() {
        tracing::error!(
            wanted = numbers.len(),
            came = received.len(),
            "files the agent opened for the program did not come"
        );
    }
    let count = numbers.len().min(received.len());
    let mut files: Vec<((i32, bool), std::os::fd::OwnedFd)> = numbers
        .iter()
        .copied()
        .zip(received.drain(..count))
        .collect();
    // Highest number first: each file came at the lowest number free then,
    // never above its own, so none still to place sits where a higher one
    // goes. Checked all the same: one that does is moved out of the way.
    files.sort_by_key(|((number, _), _)| *number);
    while let Some(((number, close_on_exec), file)) = files.pop() {
        let flag = if close_on_exec {
            nix::fcntl::FdFlag::FD_CLOEXEC
        } else {
            nix::fcntl::FdFlag::empty()
        };
        if file.as_raw_fd() == number {
            // It came closed on exec.
            if !close_on_exec {
                let _ = nix::fcntl::fcntl(number, nix::fcntl::FcntlArg::F_SETFD(flag));
            }
            // The program's from now on.
            let _ = file.into_raw_fd();
            continue;
        }
        if let Some((_, in_the_way)) = files.iter_mut().find(|(_, f)| f.as_raw_fd() == number) {
            match rustix::io::fcntl_dupfd_cloexec(&*in_the_way, 0) {
                Ok(moved) => *in_the_way = moved,
                Err(error) => {
                    tracing::error!(
                        number,
                        "a file for the program could not be placed: {error}"
                    );
                    continue;
                }
            }
        } else if nix::fcntl::fcntl(number, nix::fcntl::FcntlArg::F_GETFD).is_ok() {
            // The agent's idea of the table was wrong: the program's own
            // fd stays, and this file is not given.
            let in_the_way = std::fs::read_link(format!("/proc/self/fd/{number}"));
            let given = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
            tracing::error!(
                number,
                ?in_the_way,
                ?given,
                "a file opened for the program was given a number in use"
            );
            continue;
        }
        let flags = if close_on_exec {
            nix::fcntl::OFlag::O_CLOEXEC
        } else {
            nix::fcntl::OFlag::empty()
        };
        if let Err(error) = nix::unistd::dup3(file.as_raw_fd(), number, flags) {
            tracing::error!(
                number,
                "a file for the program could not be placed: {error}"
            );
        }
    }
}

/// Whether `call` returns promptly whatever the state of its files: no
/// waiting for data, peers, locks or children. Bulk reads and writes stay
/// on workers even on regular files: measured, inline they halved the
/// sequential rate (bench/RESULTS.md).
fn never_blocks(call: &SyscallCall) -> bool {
    // The program's new name, sent ahead of its next call: on a worker,
    // that call (an open of /proc/self/comm) could run first.
    if call.nr == syscall::SET_NAME {
        return true;
    }
    let nr = call.nr as i64;
    match nr {
        libc::SYS_getpid
        | libc::SYS_getppid
        | libc::SYS_getuid
        | libc::SYS_geteuid
        | libc::SYS_getgid
        | libc::SYS_getegid
        | libc::SYS_getgroups
        | libc::SYS_getresuid
        | libc::SYS_getresgid
        | libc::SYS_getpgrp
        | libc::SYS_getpgid
        | libc::SYS_getsid
        | libc::SYS_uname
        | libc::SYS_umask
        | libc::SYS_getcwd
        | libc::SYS_fstat
        | libc::SYS_newfstatat
        | libc::SYS_stat
        | libc::SYS_lstat
        | libc::SYS_statx
        | libc::SYS_statfs
        | libc::SYS_fstatfs
        | libc::SYS_access
        | libc::SYS_faccessat
        | libc::SYS_faccessat2
        | libc::SYS_readlink
        | libc::SYS_readlinkat
        | libc::SYS_getdents64
        | libc::SYS_close
        | libc::SYS_dup
        | libc::SYS_mkdir
        | libc::SYS_mkdirat
        | libc::SYS_unlink
        | libc::SYS_unlinkat
        | libc::SYS_rename
        | libc::SYS_renameat
        | libc::SYS_renameat2
        | libc::SYS_chmod
        | libc::SYS_fchmod
        | libc::SYS_fchmodat
        | libc::SYS_getrlimit
        | libc::SYS_prlimit64
        | libc::SYS_getpriority
        | libc::SYS_setpriority
        | libc::SYS_ioprio_get
        | libc::SYS_ioprio_set
        | libc::SYS_sysinfo => true,
        // The host telling what the program did (see `execute`): this
        // deputy forks, or closes its close-on-exec fds, or takes a stand
        // on its children's ends. None waits; on a worker, each would
        // cost a fresh deputy (a forked child's first exec) a thread.
        libc::SYS_fork | libc::SYS_execve | libc::SYS_rt_sigaction => true,
        libc::SYS_lseek => fd_is_a_file(call.args[0] as i32),
        // A shell's plumbing around each command it starts: a pipe, fds
        // moved into place, and the look for more ended children.
        libc::SYS_pipe | libc::SYS_pipe2 | libc::SYS_dup2 | libc::SYS_dup3 => true,
        libc::SYS_fcntl => !matches!(call.args[1] as i32, libc::F_SETLKW | libc::F_OFD_SETLKW),
        libc::SYS_wait4 => call.args[2] & libc::WNOHANG as u64 != 0,
        libc::SYS_waitid => call.args[3] & libc::WNOHANG as u64 != 0,
        _ => false,
    }
}

struct Worker {
    calls: mpsc::Sender<(u64, SyscallCall)>,
    progress: Arc<Mutex<Progress>>,
    thread: std::thread::JoinHandle<()>,
}

/// Where a worker stands with the calls handed to it. A cancel can arrive
/// right behind its call, before the worker took it: it must then not run
/// at all, or it could block for good (a wait for a signal that went to
/// the guest), holding up every later call of that thread.
#[derive(Default)]
struct Progress {
    executing: Option<u64>,
    handed: HashSet<u64>,
    cancelled: HashSet<u64>,
}

impl Worker {
    fn hand(&self, id: u64, call: SyscallCall) {
        lock(&self.progress).handed.insert(id);
        if self.calls.send((id, call)).is_err() {
            lock(&self.progress).handed.remove(&id);
        }
    }

    /// Interrupts call `id` if this worker has it: it is not run if not
    /// begun, and interrupted until it returns if under way. The signal is
    /// sent again while the call goes on, since it may have landed just
    /// before the syscall began.
    fn interrupt(&self, id: u64) {
        use std::os::unix::thread::JoinHandleExt;
        let mut progress = lock(&self.progress);
        if progress.handed.remove(&id) {
            progress.cancelled.insert(id);
            return;
        }
        if progress.executing != Some(id) {
            return;
        }
        drop(progress);
        let thread = self.thread.as_pthread_t() as usize;
        let progress = self.progress.clone();
        let _ = std::thread::Builder::new()
            .name("interrupt".into())
            .spawn(move || {
                let mut pause = std::time::Duration::from_millis(1);
                loop {
                    // Sent with the lock held: the worker marks the call
                    // done under it, so the signal is taken (by the call,
                    // or by that wait for the lock) before its next call
                    // begins, which it would end with a false EINTR.
                    let progress = lock(&progress);
                    if progress.executing != Some(id) {
                        break;
                    }
                    homing_shim::process::interrupt_thread(thread as libc::pthread_t);
                    drop(progress);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
            });
    }
}

/// The deputy's interrupt (see `homing_shim::process::interrupt_signal`)
/// as a signal mask.
fn interrupt_bit() -> u64 {
    homing_shim::process::signal_bit(homing_shim::process::interrupt_signal())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// One worker thread per guest thread: a call blocked at home holds up no other thread's.
fn spawn_worker(writer: Writer, reserved_fd: i32) -> std::io::Result<Worker> {
    let (tx, rx) = mpsc::channel::<(u64, SyscallCall)>();
    let progress = Arc::new(Mutex::new(Progress::default()));
    let shared = progress.clone();
    let thread = std::thread::Builder::new().spawn(move || {
        if let Err(error) = homing_shim::process::unblock_signals(interrupt_bit()) {
            tracing::error!("a deputy worker cannot be interrupted: {error}");
        }
        for (id, call) in rx {
            let cancelled = {
                let mut progress = lock(&shared);
                progress.handed.remove(&id);
                let cancelled = progress.cancelled.remove(&id) && !on_a_file_without_waiting(&call);
                if !cancelled {
                    progress.executing = Some(id);
                }
                cancelled
            };
            let result = if cancelled {
                SyscallResult {
                    ret: -(libc::EINTR as i64),
                    outputs: Vec::new(),
                }
            } else {
                let result = execute_for_program(&call, reserved_fd, &writer);
                lock(&shared).executing = None;
                result
            };
            if writer.send(&ToHost::Result { id, result }).is_err() {
                break;
            }
        }
    })?;
    Ok(Worker {
        calls: tx,
        progress,
        thread,
    })
}

/// Whether `call` reads or writes a regular file or directory: it waits
/// for no one, and no signal would have ended it, even cancelled before
/// it began.
fn on_a_file_without_waiting(call: &SyscallCall) -> bool {
    let reads_or_writes = [
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
    ]
    .contains(&(call.nr as i64));
    reads_or_writes && fd_is_a_file(call.args[0] as i32)
}

/// Whether `fd` is open on a regular file or a directory.
fn fd_is_a_file(fd: i32) -> bool {
    use nix::sys::stat::{fstat, SFlag};
    fstat(fd).is_ok_and(|st| {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        kind == SFlag::S_IFREG || kind == SFlag::S_IFDIR
    })
}

/// Runs an open for reading of what is a regular file here, on the main
/// thread: a compiler's header opens are the most common of the calls the
/// deputy runs, and handing one to a worker costs a wakeup. Only what may
/// not block: a FIFO's open waits for a writer, and a device's may do
/// anything. The open itself is made non-blocking (and without taking a
/// terminal), so that a file swapped for a FIFO since the look, or one
/// whose lease must first be broken, cannot block it either; such an open
/// is undone and left to a worker, as is anything not opened so (a
/// regular file whose first bytes could not be read ahead included).
fn open_without_blocking(call: &SyscallCall, reserved_fd: i32) -> Option<SyscallResult> {
    use homing_shim::execute::Named;
    let (dir, path_index, flags_index) = match call.nr as i64 {
        libc::SYS_open => (libc::AT_FDCWD, 0, 1),
        libc::SYS_openat => (call.args[0] as i32, 1, 2),
        _ => return None,
    };
    let path = call.inputs.iter().find(|input| input.index == path_index)?;
    let reading = syscall::opens_for_reading(call.nr, &call.args);
    // `/dev/null` and its kind, read or written: a background job's stdin,
    // output thrown away. On a worker, each would cost a fresh deputy a
    // thread, which counts against its user's process limit.
    if dir == reserved_fd || !(reading || path.bytes.starts_with(b"/dev/")) {
        return None;
    }
    let device = match homing_shim::execute::what_is_named(dir, &path.bytes) {
        Named::RegularFile if reading => false,
        Named::DeviceThatNeverWaits => true,
        _ => return None,
    };
    let flags = call.args[flags_index] as i32;
    let mut trial = call.clone();
    trial.args[flags_index] = (flags | libc::O_NONBLOCK | libc::O_NOCTTY) as u64;
    let result = execute(&trial, reserved_fd);
    if result.ret < 0 {
        // EAGAIN: a lease to break first, which the worker waits for. A
        // device's failure is the worker's to tell too: what the path
        // names may have changed since it was looked at.
        return (result.ret != -i64::from(libc::EAGAIN) && !device).then_some(result);
    }
    let fd = result.ret as i32;
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    // Still what the path named: the read ahead comes only with a regular
    // file (see `add_prefetch`).
    let as_named = result.output(syscall::PREFETCHED_STAT).is_some()
        || device && homing_shim::execute::is_a_device_that_never_waits(fd);
    let flags_restored = || -> nix::Result<()> {
        if flags & libc::O_NONBLOCK == 0 {
            let status = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
            fcntl(fd, FcntlArg::F_SETFL(status - OFlag::O_NONBLOCK))?;
        }
        Ok(())
    };
    if as_named && flags_restored().is_ok() {
        return Some(result);
    }
    let _ = nix::unistd::close(fd);
    None
}

/// Executes `call` as [`execute`] does; a signal the kernel raised for
/// it in this thread (SIGPIPE for a write to a pipe no one reads, SIGXFSZ
/// for one past the file size limit), which stays pending here since
/// every deputy thread blocks it, is the program's: it goes to the
/// program before the call's answer, as the kernel gives it before the
/// call returns.
fn execute_for_program(call: &SyscallCall, reserved_fd: i32, writer: &Writer) -> SyscallResult {
    let mut result = execute(call, reserved_fd);
    if may_change_signalfds(call, &result) && note_signalfds(true) {
        result.outputs.push(syscall::ArgData {
            index: syscall::SIGNALFD_SIGNALS,
            bytes: SIGNALFD_SIGNALS
                .load(Ordering::SeqCst)
                .to_ne_bytes()
                .to_vec(),
        });
    }
    let raised = [libc::EPIPE, libc::EFBIG].map(|errno| -(errno as i64));
    if raised.contains(&result.ret) {
        // One a signalfd of the program's reads stays here, for it to read.
        let mask = (homing_shim::process::signal_bit(libc::SIGPIPE)
            | homing_shim::process::signal_bit(libc::SIGXFSZ))
            & !SIGNALFD_SIGNALS.load(Ordering::SeqCst);
        if let Some(signal) = homing_shim::process::take_pending_signal(mask) {
            // The kernel's own: nothing of a sender to carry.
            let _ = writer.send(&ToHost::Signal {
                signal,
                sender: None,
            });
        }
    }
    result
}

fn execute(call: &SyscallCall, reserved_fd: i32) -> SyscallResult {
    let fail = |errno: i32| SyscallResult {
        ret: -(errno as i64),
        outputs: vec![],
    };
    // The agent socket is not the program's: it looks closed to it.
    let nr = call.nr as i64;
    let touches_reserved = call.args[0] as i32 == reserved_fd
        || ((nr == libc::SYS_dup2 || nr == libc::SYS_dup3) && call.args[1] as i32 == reserved_fd);
    if touches_reserved && nr != libc::SYS_close_range {
        return fail(libc::EBADF);
    }
    if nr == libc::SYS_close_range {
        return close_range_sparing(call, reserved_fd);
    }
    if let Some(result) = signal_to_self(call) {
        return result;
    }
    after_holders_reaped(call);
    let gids = call
        .inputs
        .first()
        .map(|input| &input.bytes[..])
        .unwrap_or(&[]);
    if let Some(ret) = homing_shim::process::change_credentials(nr, &call.args, gids) {
        return SyscallResult {
            ret,
            outputs: vec![],
        };
    }
    // Three requests that are not the program's syscalls but the host
    // telling the deputy what the program did: it forked, it exec'd, it
    // changed what its children's ends leave (`rt_sigaction` of SIGCHLD,
    // args: SIGCHLD, ignored, SA_NOCLDWAIT).
    if nr == libc::SYS_fork {
        return fork_deputy(reserved_fd);
    }
    if nr == libc::SYS_execve {
        take_program_identity(call);
        return close_on_exec(reserved_fd);
    }
    if nr == libc::SYS_rt_sigaction {
        let (ignore, no_wait) = (call.args[1] != 0, call.args[2] != 0);
        let ret = match homing_shim::process::set_child_signal_stand(ignore, no_wait) {
            Ok(()) => 0,
            Err(error) => -(error.raw_os_error().unwrap_or(libc::EINVAL) as i64),
        };
        return SyscallResult {
            ret,
            outputs: vec![],
        };
    }
    if call.nr == syscall::OPEN_PROC_VIEW {
        return crate::proc_view::open(call);
    }
    if call.nr == syscall::SET_NAME {
        if let Some(name) = call.inputs.iter().find(|input| input.index == 0) {
            name_after(OsStr::from_bytes(&name.bytes));
        }
        return SyscallResult {
            ret: 0,
            outputs: vec![],
        };
    }
    match syscall::route(call.nr, &call.args) {
        Route::Forward(ptrs) if nr == libc::SYS_getdents64 => {
            list_without_reserved(call, &ptrs, reserved_fd)
        }
        Route::Forward(ptrs) => {
            let mut result = homing_shim::execute::execute(call, &ptrs);
            if result.ret >= 0 && syscall::opens_for_reading(call.nr, &call.args) {
                homing_shim::execute::add_prefetch(&mut result);
            }
            result
        }
        Route::Special(syscall::Special::Message) => {
            homing_shim::execute::message(call, reserved_fd)
        }
        _ => fail(libc::ENOSYS),
    }
}

/// The program forked on its node: this deputy forks too, and the child
/// deputy, with a copy of every fd, the cwd and credentials, becomes the
/// home of the program's child. Returns the child's pid, the pid the
/// program's child has.
fn fork_deputy(reserved_fd: i32) -> SyscallResult {
    let parent = std::process::id() as i32;
    match homing_shim::process::fork() {
        Ok(homing_shim::process::Forked::Parent(child)) => SyscallResult {
            ret: child as i64,
            outputs: vec![],
        },
        Ok(homing_shim::process::Forked::Child) => {
            // Only this thread came along; the parent's agent connection is
            // the parent's.
            let _ = nix::unistd::close(reserved_fd);
            let Some(socket) = AGENT_SOCKET.get() else {
                std::process::exit(1)
            };
            let code = match connect_agent(socket) {
                Ok(stream) => {
                    start_serving(stream, &ControlRequest::Adopt { parent_pid: parent }, &[])
                }
                Err(message) => {
                    eprintln!("homing: {message}");
                    1
                }
            };
            std::process::exit(code)
        }
        Err(error) => SyscallResult {
            ret: -(error.raw_os_error().unwrap_or(libc::EAGAIN) as i64),
            outputs: vec![],
        },
    }
}

/// A `getdents64` as the program's: a listing of the deputy's own fds
/// (`/proc/self/fd`, `fdinfo`, and those of its threads) leaves out the
/// agent socket, which is not the program's. A batch that held nothing
/// else is read again, past it: an empty one would say the listing ended.
fn list_without_reserved(
    call: &SyscallCall,
    ptrs: &[syscall::PtrArg],
    reserved_fd: i32,
) -> SyscallResult {
    let own_fds = lists_own_fds(call.args[0] as i32);
    loop {
        let mut result = homing_shim::execute::execute(call, ptrs);
        if !own_fds || result.ret <= 0 {
            return result;
        }
        let Some(out) = result.outputs.iter_mut().find(|out| out.index == 1) else {
            return result;
        };
        out.bytes.truncate(result.ret as usize);
        drop_entry(&mut out.bytes, reserved_fd.to_string().as_bytes());
        result.ret = out.bytes.len() as i64;
        if result.ret > 0 {
            return result;
        }
    }
}

/// Takes the entry named `name` out of `listing`, `getdents64`'s
/// records (`struct linux_dirent64`: inode, offset, record length, type,
/// then the name, NUL-terminated and padded to the record's length).
fn drop_entry(listing: &mut Vec<u8>, name: &[u8]) {
    const NAME_AT: usize = 19;
    let mut at = 0;
    while let Some(header) = listing.get(at..at + NAME_AT) {
        let len = usize::from(u16::from_ne_bytes([header[16], header[17]]));
        let Some(record) = listing.get(at..at + len).filter(|_| len > NAME_AT) else {
            return;
        };
        let named = record[NAME_AT..].split(|&b| b == 0).next() == Some(name);
        if named {
            listing.drain(at..at + len);
            return;
        }
        at += len;
    }
}

/// Whether the directory at `fd` lists this process's fds (or fd
/// infos), its own or one of its threads'.
fn lists_own_fds(fd: i32) -> bool {
    let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
        return false;
    };
    let own = std::path::Path::new("/proc").join(std::process::id().to_string());
    let Ok(rest) = path.strip_prefix(&own) else {
        return false;
    };
    let mut parts: Vec<_> = rest.iter().collect();
    if parts.first().is_some_and(|first| *first == "task") && parts.len() == 3 {
        parts.drain(..2);
    }
    parts.len() == 1 && (parts[0] == "fd" || parts[0] == "fdinfo")
}

/// The program replaced itself with a new one: its close-on-exec fds close
/// here, where they live.
fn close_on_exec(reserved_fd: i32) -> SyscallResult {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        if fd == reserved_fd {
            continue;
        }
        if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFD) {
            if FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC) {
                let _ = nix::unistd::close(fd);
            }
        }
    }
    SyscallResult {
        ret: 0,
        outputs: vec![],
    }
}

/// A signal the program sends to its own main thread (`raise`, `abort`)
/// would land on one deputy thread, where nothing takes it; sent to the
/// process instead, the deputy's main thread forwards it to the program.
fn signal_to_self(call: &SyscallCall) -> Option<SyscallResult> {
    let nr = call.nr as i64;
    if nr != libc::SYS_tgkill && nr != libc::SYS_tkill {
        return None;
    }
    let me = std::process::id() as u64;
    let signal = match nr {
        libc::SYS_tgkill if call.args[0] == me && call.args[1] == me => call.args[2],
        libc::SYS_tkill if call.args[0] == me => call.args[1],
        _ => return None,
    };
    let kill = SyscallCall {
        nr: libc::SYS_kill as u64,
        args: [me, signal, 0, 0, 0, 0],
        inputs: vec![],
    };
    Some(homing_shim::execute::execute(&kill, &[]))
}

/// close_range over the program's fds, leaving the agent socket open.
fn close_range_sparing(call: &SyscallCall, reserved_fd: i32) -> SyscallResult {
    let (first, last) = (call.args[0] as u32, call.args[1] as u32);
    let reserved = reserved_fd as u32;
    let mut ret = 0;
    let mut part = |lo: u32, hi: u32| {
        if lo <= hi {
            let sub = SyscallCall {
                nr: call.nr,
                args: [lo as u64, hi as u64, call.args[2], 0, 0, 0],
                inputs: vec![],
            };
            let r = homing_shim::execute::execute(&sub, &[]).ret;
            if r < 0 {
                ret = r;
            }
        }
    };
    if (first..=last).contains(&reserved) {
        if reserved > 0 {
            part(first, reserved - 1);
        }
        part(reserved.saturating_add(1), last);
    } else {
        part(first, last);
    }
    SyscallResult {
        ret,
        outputs: vec![],
    }
}

/// The thread that waits for the agent, and takes those signals meanwhile.
static MAIN_THREAD: AtomicU64 = AtomicU64::new(0);
/// Set once a signal could not be sent (the agent is gone): the deputy
/// takes no more, and reads what the agent said last (the program's end).
static FORWARDING_LOST: AtomicBool = AtomicBool::new(false);

/// The signals the program's signalfds ask for: the deputy leaves
/// them pending here, where a read of such a signalfd (an fd at home like
/// any other) takes them, as the program's own read would at home.
static SIGNALFD_SIGNALS: AtomicU64 = AtomicU64::new(0);
/// Whether the program has had a signalfd: calls that may close one look
/// again then (a deputy that never had one pays nothing).
static HAD_SIGNALFD: AtomicBool = AtomicBool::new(false);

/// Whether `call`, which returned `result`, may have made or closed a
/// signalfd of the program's.
fn may_change_signalfds(call: &SyscallCall, result: &SyscallResult) -> bool {
    match call.nr as i64 {
        libc::SYS_signalfd | libc::SYS_signalfd4 => result.ret >= 0,
        libc::SYS_close
        | libc::SYS_close_range
        | libc::SYS_dup2
        | libc::SYS_dup3
        | libc::SYS_execve => HAD_SIGNALFD.load(Ordering::Relaxed),
        _ => false,
    }
}

/// Looks at the deputy's fds for the signals its signalfds ask for; where
/// those changed and `running` (the deputy serves its program), wakes the
/// thread waiting for the agent to wait for the others alone: a signal a
/// signalfd no longer asks for, pending meanwhile, goes to the program
/// then. Whether they changed.
fn note_signalfds(running: bool) -> bool {
    let signals = homing_shim::process::signalfd_signals();
    if signals != 0 {
        HAD_SIGNALFD.store(true, Ordering::Relaxed);
    }
    let before = SIGNALFD_SIGNALS.swap(signals, Ordering::SeqCst);
    if before == signals || !running {
        return before != signals;
    }
    let waiting = MAIN_THREAD.load(Ordering::SeqCst) as libc::pthread_t;
    if waiting != homing_shim::process::this_thread() {
        homing_shim::process::interrupt_thread(waiting);
    }
    true
}

/// Makes a signal the deputy took pending in its process `own` again, as
/// it came: a process may queue itself any sender (`rt_sigqueueinfo`), so
/// the program coming home sees the `kill` or `sigqueue` that sent it,
/// not one of the deputy's own.
fn pend_again(own: i32, signal: i32, sender: &SignalSender) {
    if homing_shim::process::queue_signal(own, signal, sender).is_err() {
        let _ = homing_shim::process::send_signal(own, signal);
    }
}

/// Sends `signal`, which `sender` sent this process, to the program; one
/// that cannot go (the agent is gone) waits here as it came, and no other
/// is taken after it: taken again and again, it would keep the deputy
/// from reading the program's end.
fn forward_signal(signal: i32, sender: SignalSender, writer: &Writer) {
    let sent = writer.send(&ToHost::Signal {
        signal,
        sender: Some(sender),
    });
    if sent.is_err() {
        FORWARDING_LOST.store(true, Ordering::SeqCst);
        pend_again(std::process::id() as i32, signal, &sender);
        return;
    }
    // Job control: the program stops on its node, and the deputy stops
    // here so the shell sees the job stopped; SIGCONT resumes both.
    if matches!(signal, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
        let _ = signal::kill(nix::unistd::getpid(), Signal::SIGSTOP);
    }
}

use homing_shim::process::die_by_signal as die_by;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn record(name: &str) -> Vec<u8> {
        let len = (19 + name.len() + 1).div_ceil(8) * 8;
        let mut record = vec![0u8; len];
        record[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
        record[19..19 + name.len()].copy_from_slice(name.as_bytes());
        record
    }

    #[test]
    fn an_entry_is_taken_out_of_a_listing_and_the_others_stay_whole() {
        let mut listing = [record("0"), record("19999"), record("2")].concat();
        drop_entry(&mut listing, b"1999");
        assert_eq!(
            listing,
            [record("0"), record("19999"), record("2")].concat()
        );
        drop_entry(&mut listing, b"19999");
        assert_eq!(listing, [record("0"), record("2")].concat());
    }

    #[test]
    fn files_from_the_agent_take_their_numbers_whatever_sits_in_the_way() {
        use std::os::fd::OwnedFd;
        let dir = std::env::temp_dir().join(format!("homing-take-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str| -> OwnedFd {
            std::fs::write(dir.join(name), name).unwrap();
            std::fs::File::open(dir.join(name)).unwrap().into()
        };
        // Far above what the test harness's threads open meanwhile.
        let at = |file: OwnedFd, number: i32| -> OwnedFd {
            let moved = rustix::io::fcntl_dupfd_cloexec(&file, number).unwrap();
            assert_eq!(moved.as_raw_fd(), number, "{number} was taken");
            moved
        };
        let names = |number: i32| -> Option<String> {
            let target = std::fs::read_link(format!("/proc/self/fd/{number}")).ok()?;
            Some(target.file_name()?.to_str()?.to_owned())
        };
        let close_on_exec = |number: i32| {
            nix::fcntl::fcntl(number, nix::fcntl::FcntlArg::F_GETFD).unwrap() & libc::FD_CLOEXEC
        };
        // Received at 700 and 701, for 701 and 702: the one at 701 must
        // go first. Then one for 703, where the process has a file of its
        // own, which must stay.
        let own = at(file("own"), 703);
        let mut received: std::collections::VecDeque<OwnedFd> = [
            at(file("alpha"), 700),
            at(file("beta"), 701),
            at(file("gamma"), 704),
        ]
        .into();
        take_files(&[(701, false), (702, true), (703, false)], &mut received);
        assert!(received.is_empty());
        assert_eq!(names(700), None);
        assert_eq!(names(701).as_deref(), Some("alpha"));
        assert_eq!(close_on_exec(701), 0);
        assert_eq!(names(702).as_deref(), Some("beta"));
        assert_eq!(close_on_exec(702), libc::FD_CLOEXEC);
        assert_eq!(names(703).as_deref(), Some("own"));
        assert_eq!(names(704), None);
        drop(own);
        for number in [701, 702] {
            nix::unistd::close(number).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_processs_own_fd_listings_are_known_by_their_paths() {
        let tid = rustix::thread::gettid().as_raw_nonzero();
        let own = |path: String| {
            let dir = std::fs::File::open(&path).unwrap();
            lists_own_fds(dir.as_raw_fd())
        };
        assert!(own("/proc/self/fd".into()));
        assert!(own("/proc/self/fdinfo".into()));
        assert!(own(format!("/proc/self/task/{tid}/fd")));
        assert!(!own("/proc/self".into()));
        assert!(!own("/proc/self/task".into()));
        assert!(!own("/tmp".into()));
    }
}
