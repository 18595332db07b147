//! Moving a running process: the source side freezes it and streams its
//! image out; the destination side restores it into a blank guest, which
//! runs only once the source says its old copy is gone.
//!
//! ptrace belongs to the thread that seized, so each side's process
//! mechanics run on a thread of their own, driven over channels; the
//! bytes move on the caller's async streams.

use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use homing_proto::guest::{GuestExit, ToHome, ToHost};
use homing_proto::image::{PageRunHeader, ProcessImage};
use homing_proto::peer::Immigrant;
use homing_shim::dump::{self, Frozen};
use homing_shim::restore::{spawn_blank, Blank, Restorer};
use homing_shim::spawn::Guest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::guest::{pump_from_home, HostRole};

/// Largest run of pages sent at once.
const RUN_BYTES: usize = 1 << 20;
/// Runs in flight between the thread reading memory and the stream.
const RUNS_IN_FLIGHT: usize = 16;

/// What becomes of a frozen process once its image has gone.
#[derive(Debug)]
pub enum Afterwards {
    /// It moved: at home it becomes its own deputy by exec'ing `program`
    /// with `argv` (the close-on-exec fds it had are returned).
    BecomeDeputy {
        /// The homing binary.
        program: CString,
        /// Its arguments, `argv[0]` included.
        argv: Vec<CString>,
    },
    /// It moved: a guest's old copy is killed.
    Kill,
    /// It did not move: it goes on where it was.
    Thaw,
}

enum SourceCommand {
    SendPages(mpsc::Sender<(u64, Vec<u8>)>),
    Finish(Afterwards, oneshot::Sender<Result<Vec<i32>, String>>),
}

/// A process frozen for moving, held by a thread of its own.
pub struct Source {
    commands: std::sync::mpsc::Sender<SourceCommand>,
    /// Its image, less the memory.
    pub image: ProcessImage,
    /// Bytes of memory its present pages hold (what will be sent, zero pages aside).
    pub estimate: u64,
    /// When it was frozen.
    pub frozen_at: Instant,
    finished: bool,
}

impl Source {
    /// Freezes `pid` and takes its image. `guest`: it is a guest here (its
    /// pending signals move with it; its filter is passed by).
    pub async fn freeze(pid: i32, guest: bool) -> Result<Self, String> {
        let (commands, inbox) = std::sync::mpsc::channel();
        let (ready, image) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("dump-{pid}"))
            .spawn(move || source_thread(pid, guest, inbox, ready))
            .map_err(|e| format!("cannot start a dump thread: {e}"))?;
        let frozen_at = Instant::now();
        let image = image
            .await
            .map_err(|_| "the dump thread died".to_owned())??;
        let estimate = estimate(pid, &image);
        Ok(Self {
            commands,
            image,
            estimate,
            frozen_at,
            finished: false,
        })
    }

    /// Streams the memory as page runs, then the end mark; `progress`
    /// hears the bytes sent so far. Returns the bytes sent.
    pub async fn send_pages<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, String> {
        let (runs_tx, mut runs) = mpsc::channel(RUNS_IN_FLIGHT);
        self.commands
            .send(SourceCommand::SendPages(runs_tx))
            .map_err(|_| "the dump thread died".to_owned())?;
        let mut sent = 0u64;
        while let Some((address, bytes)) = runs.recv().await {
            let header = PageRunHeader {
                address,
                length: bytes.len() as u32,
            };
            out.write_all(&header.encode())
                .await
                .map_err(|e| format!("sending memory: {e}"))?;
            out.write_all(&bytes)
                .await
                .map_err(|e| format!("sending memory: {e}"))?;
            sent += bytes.len() as u64;
            progress(sent);
        }
        out.write_all(&PageRunHeader::END.encode())
            .await
            .map_err(|e| format!("sending memory: {e}"))?;
        Ok(sent)
    }

    /// Ends the freeze as `afterwards` says.
    pub async fn finish(mut self, afterwards: Afterwards) -> Result<Vec<i32>, String> {
        self.finished = true;
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(SourceCommand::Finish(afterwards, reply))
            .map_err(|_| "the dump thread died".to_owned())?;
        outcome
            .await
            .map_err(|_| "the dump thread died".to_owned())?
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        // Dropped mid-way (a task cancelled): the process must not stay frozen.
        if !self.finished {
            let (reply, _) = oneshot::channel();
            let _ = self
                .commands
                .send(SourceCommand::Finish(Afterwards::Thaw, reply));
        }
    }
}

/// Present pages of the regions that travel, from /proc/PID/smaps_rollup's
/// view of the process: `Rss`.
fn estimate(pid: i32, image: &ProcessImage) -> u64 {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Rss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
    rss.map(|kb| kb * 1024)
        .unwrap_or_else(|| dump::travelling_bytes(image))
}

fn source_thread(
    pid: i32,
    guest: bool,
    commands: std::sync::mpsc::Receiver<SourceCommand>,
    ready: oneshot::Sender<Result<ProcessImage, String>>,
) {
    let frozen = match dump::freeze(pid, guest) {
        Ok(frozen) => frozen,
        Err(error) => {
            let _ = ready.send(Err(error.to_string()));
            return;
        }
    };
    let image = match frozen.image(guest) {
        Ok(image) => image,
        Err(error) => {
            frozen.thaw();
            let _ = ready.send(Err(error.to_string()));
            return;
        }
    };
    if ready.send(Ok(image.clone())).is_err() {
        frozen.thaw();
        return;
    }
    // Until told otherwise, the process stays frozen; a lost command
    // channel (the migration abandoned) thaws it.
    while let Ok(command) = commands.recv() {
        match command {
            SourceCommand::SendPages(runs) => {
                let outcome = frozen.read_memory(&image, RUN_BYTES, |address, bytes| {
                    runs.blocking_send((address, bytes.to_vec()))
                });
                if let Err(error) = outcome {
                    warn!(pid, "reading the memory of a frozen process: {error}");
                }
            }
            SourceCommand::Finish(afterwards, reply) => {
                let _ = reply.send(finish_source(frozen, afterwards));
                return;
            }
        }
    }
    frozen.thaw();
}

fn finish_source(frozen: Frozen, afterwards: Afterwards) -> Result<Vec<i32>, String> {
    match afterwards {
        Afterwards::Thaw => {
            frozen.thaw();
            Ok(Vec::new())
        }
        Afterwards::Kill => {
            frozen.kill();
            Ok(Vec::new())
        }
        Afterwards::BecomeDeputy { program, argv } => {
            let argv: Vec<&std::ffi::CStr> = argv.iter().map(|a| a.as_c_str()).collect();
            match frozen.exec_in_place(&program, &argv) {
                Ok(unmarked) => {
                    let mask = frozen.leader_sigmask();
                    frozen.release_exec(Some(mask));
                    Ok(unmarked)
                }
                Err(error) => {
                    frozen.thaw();
                    Err(error.to_string())
                }
            }
        }
    }
}

/// An image being restored into a blank guest.
pub struct Arrival {
    pid: i32,
    blank: Option<Blank>,
    restoration: Option<Restoration>,
    /// Bytes of memory received.
    bytes: u64,
}

impl HostRole {
    /// Makes a blank guest for `immigrant` and restores its image, with
    /// the pages read from `pages`, up to the point where it could run.
    pub async fn receive<R: AsyncRead + Unpin>(
        self: &Arc<Self>,
        immigrant: &Immigrant,
        pages: &mut R,
    ) -> Result<Arrival, String> {
        let blank = spawn_blank(
            (immigrant.uid, immigrant.gid, &immigrant.groups),
            Some(self.filter()),
        )
        .map_err(|e| e.to_string())?;
        let pid = blank.pid;
        let mut arrival = Arrival {
            pid,
            blank: Some(blank),
            restoration: None,
            bytes: 0,
        };
        let outcome = async {
            let restoration = Restoration::start(pid, immigrant.image.clone(), true)
                .await
                .map_err(|(_, error)| error)?;
            while let Some((address, bytes)) = read_page_run(pages).await? {
                arrival.bytes += bytes.len() as u64;
                restoration.write(address, bytes)?;
            }
            arrival.restoration = Some(restoration);
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => Ok(arrival),
            Err(error) => {
                arrival.abandon();
                Err(error)
            }
        }
    }

    /// Runs a received process once home says its old copy is gone, and
    /// serves it like any guest until it ends.
    pub async fn run_immigrant(
        self: Arc<Self>,
        immigrant: Immigrant,
        mut arrival: Arrival,
        to_home: mpsc::UnboundedSender<ToHome>,
        mut from_home: mpsc::UnboundedReceiver<ToHost>,
    ) {
        let creds = (immigrant.uid, immigrant.gid, immigrant.groups.clone());
        let (member, mut exits) =
            self.new_member(&immigrant.home_node, immigrant.home_pid, creds, to_home);
        member.set_command(&immigrant.command);
        member.calls.start_ids_at(immigrant.next_call_id);
        let _ = member.calls.send(ToHome::Ready);
        // Signals sent at home before the go wait for the process to run.
        let mut early_signals = Vec::new();
        loop {
            match from_home.recv().await {
                Some(ToHost::Go) => break,
                Some(ToHost::Signal { signal }) => early_signals.push(signal),
                _ => {
                    info!(home_pid = immigrant.home_pid, "a move here was called off");
                    arrival.abandon();
                    self.forget(&member);
                    return;
                }
            }
        }
        let pid = arrival.pid;
        if let Err(error) = arrival.finish().await {
            warn!(
                home_pid = immigrant.home_pid,
                "restore failed at the last step: {error}"
            );
            self.finish(
                &member,
                GuestExit::Signal(libc::SIGKILL),
                Some(format!("the move failed at the last step: {error}")),
            );
            return;
        }
        let blank = arrival.blank.take().expect("a blank until finished");
        let guest = Guest {
            pid,
            pidfd: blank.pidfd,
            listener: blank.listener.expect("a guest blank has a listener"),
        };
        member.host_pid.store(pid, Ordering::Relaxed);
        self.adopt_process(&member, guest);
        info!(home_node = %immigrant.home_node, home_pid = immigrant.home_pid, host_pid = pid,
              bytes = arrival.bytes, "moved-in process runs");
        let _ = member.calls.send(ToHome::Started { host_pid: pid });
        for signal in early_signals {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::try_from(signal).ok(),
            );
        }
        let pump = tokio::spawn(pump_from_home(member.clone(), from_home));
        let status = self.follow(&member, &mut exits).await;
        self.finish(&member, status, None);
        pump.abort();
    }
}

/// A guest frozen to move on, whose image is on its way.
pub struct Departure {
    member: Arc<crate::guest::Member>,
    /// The frozen process.
    pub source: Source,
    /// What the next host needs, less the memory.
    pub immigrant: Immigrant,
}

/// How long a member's calls under way at home may take to finish before
/// they are interrupted for a move.
const DRAIN_GRACE: Duration = Duration::from_millis(100);
/// How long a process may take to start before it can move on.
const START_WAIT: Duration = Duration::from_secs(5);
/// How long interrupted calls may take to come back.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

impl HostRole {
    /// Freezes the guest of `home_node` with home pid `home_pid` to move it
    /// on. Its calls under way at home finish first, or are interrupted
    /// (they then run again on the next host); new ones wait.
    pub async fn depart(
        self: &Arc<Self>,
        home_node: &str,
        home_pid: i32,
    ) -> Result<Departure, String> {
        let member = self
            .member(home_node, home_pid)
            .ok_or_else(|| format!("{} hosts no process {home_pid} of {home_node}", self.node()))?;
        // One that just moved here may still be finishing its restore.
        let started = Instant::now();
        let pid = loop {
            match member.host_pid.load(Ordering::Relaxed) {
                0 if started.elapsed() < START_WAIT => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                0 => return Err(format!("process {home_pid} has not started yet")),
                pid => break pid,
            }
        };
        member.gate.send_replace(false);
        let drained = async {
            let started = Instant::now();
            let mut interrupted = false;
            while member.handling.load(Ordering::SeqCst) > 0 {
                if !interrupted && started.elapsed() > DRAIN_GRACE {
                    member.calls.interrupt_all();
                    interrupted = true;
                }
                if started.elapsed() > DRAIN_LIMIT {
                    return Err(format!("process {home_pid}'s calls at home did not finish"));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(())
        };
        let frozen = match drained.await {
            Ok(()) => Source::freeze(pid, true).await,
            Err(error) => Err(error),
        };
        let source = match frozen {
            Ok(source) => source,
            Err(error) => {
                member.gate.send_replace(true);
                return Err(error);
            }
        };
        let immigrant = Immigrant {
            home_node: member.home_node.clone(),
            home_pid,
            uid: member.uid,
            gid: member.gid,
            groups: member.groups.clone(),
            command: member.command(),
            image: source.image.clone(),
            next_call_id: member.calls.next_id(),
        };
        Ok(Departure {
            member,
            source,
            immigrant,
        })
    }
}

impl Departure {
    /// Ends the departure: on `commit` the frozen process is killed
    /// (silently: it runs elsewhere), otherwise it goes on here.
    pub async fn end(self, commit: bool) -> Result<(), String> {
        let member = self.member;
        if commit {
            member.moved.store(true, Ordering::Relaxed);
            let outcome = self.source.finish(Afterwards::Kill).await;
            // Calls that waited at the gate find the process gone.
            member.gate.send_replace(true);
            outcome.map(drop)
        } else {
            let outcome = self.source.finish(Afterwards::Thaw).await;
            member.gate.send_replace(true);
            outcome.map(drop)
        }
    }
}

impl Arrival {
    async fn finish(&mut self) -> Result<(), String> {
        let restoration = self
            .restoration
            .take()
            .ok_or_else(|| "the restore did not get this far".to_owned())?;
        restoration.ready(Vec::new()).await?;
        restoration.go().await
    }

    /// Gives up on the arrival: the blank is killed (and reaped by the thread).
    fn abandon(&mut self) {
        if let Some(blank) = self.blank.take() {
            let _ = rustix::process::pidfd_send_signal(&blank.pidfd, rustix::process::Signal::KILL);
            let pid = blank.pid;
            std::thread::spawn(move || {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            });
        }
    }
}

/// Reads one page run of an image from `pages`; `None` at the end of
/// the memory.
pub async fn read_page_run<R: AsyncRead + Unpin>(
    pages: &mut R,
) -> Result<Option<(u64, Vec<u8>)>, String> {
    let mut header = [0u8; PageRunHeader::LEN];
    pages
        .read_exact(&mut header)
        .await
        .map_err(|e| format!("receiving memory: {e}"))?;
    let header = PageRunHeader::decode(&header).map_err(|e| e.to_string())?;
    if header.is_end() {
        return Ok(None);
    }
    let mut bytes = vec![0u8; header.length as usize];
    pages
        .read_exact(&mut bytes)
        .await
        .map_err(|e| format!("receiving memory: {e}"))?;
    Ok(Some((header.address, bytes)))
}

enum RestoreCommand {
    Write(u64, Vec<u8>),
    Ready(Vec<i32>, oneshot::Sender<Result<(), String>>),
    Go(oneshot::Sender<Result<(), String>>),
    ExecInstead(CString, Vec<CString>, oneshot::Sender<Result<(), String>>),
}

/// An image being restored into a stopped process by a thread of its own
/// (ptrace belongs to the thread that seized): a blank guest on a host,
/// or, at home, a deputy that exec'd itself into `homing hold`.
pub struct Restoration {
    commands: std::sync::mpsc::Sender<RestoreCommand>,
}

impl Restoration {
    /// Starts restoring `image` into `pid`: its memory is emptied and the
    /// image's regions mapped, ready for [`Self::write`]. `guest`: a blank
    /// guest, with the guest filter, killed if the restore is given up.
    /// On failure, the error comes with the restoration when the process
    /// was already changed (a deputy must then be given another program,
    /// [`Self::exec_instead`]); without, the process is untouched.
    pub async fn start(
        pid: i32,
        image: ProcessImage,
        guest: bool,
    ) -> Result<Self, (Option<Self>, String)> {
        let (commands, inbox) = std::sync::mpsc::channel();
        let (prepared_tx, prepared) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("restore-{pid}"))
            .spawn(move || restore_thread(pid, image, guest, inbox, prepared_tx))
            .map_err(|e| (None, format!("cannot start a restore thread: {e}")))?;
        let restoration = Self { commands };
        match prepared.await {
            Ok(Ok(())) => Ok(restoration),
            // Attached, then failed: the process must be given a program.
            Ok(Err((true, error))) => Err((Some(restoration), error)),
            Ok(Err((false, error))) => Err((None, error)),
            Err(_) => Err((None, "the restore thread died".into())),
        }
    }

    /// Writes a run of the image's pages (a failure is reported by [`Self::ready`]).
    pub fn write(&self, address: u64, bytes: Vec<u8>) -> Result<(), String> {
        self.commands
            .send(RestoreCommand::Write(address, bytes))
            .map_err(|_| "the restore thread died".to_owned())
    }

    /// Once every page is written: marks the fds in `close_on_exec`
    /// close-on-exec again; the program is then ready to run.
    pub async fn ready(&self, close_on_exec: Vec<i32>) -> Result<(), String> {
        self.ask(|reply| RestoreCommand::Ready(close_on_exec, reply))
            .await
    }

    /// Lets the program run.
    pub async fn go(self) -> Result<(), String> {
        self.ask(RestoreCommand::Go).await
    }

    /// Gives up: the process execs `program` (its deputy again).
    pub async fn exec_instead(self, program: CString, argv: Vec<CString>) -> Result<(), String> {
        self.ask(|reply| RestoreCommand::ExecInstead(program, argv, reply))
            .await
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<(), String>>) -> RestoreCommand,
    ) -> Result<(), String> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| "the restore thread died".to_owned())?;
        outcome
            .await
            .map_err(|_| "the restore thread died".to_owned())?
    }
}

fn restore_thread(
    pid: i32,
    image: ProcessImage,
    guest: bool,
    commands: std::sync::mpsc::Receiver<RestoreCommand>,
    prepared: oneshot::Sender<Result<(), (bool, String)>>,
) {
    let mut restorer = match Restorer::attach(pid, image, guest) {
        Ok(restorer) => restorer,
        Err(error) => {
            let _ = prepared.send(Err((false, error.to_string())));
            return;
        }
    };
    let mut outcome = restorer.prepare_memory();
    if guest {
        // The listener the blank was born with is its fd 0; the agent has its own.
        outcome = outcome.and_then(|()| restorer.close(0));
    }
    let _ = prepared.send(outcome.map_err(|e| (true, e.to_string())));
    let mut failure: Option<String> = None;
    while let Ok(command) = commands.recv() {
        match command {
            RestoreCommand::Write(address, bytes) => {
                if failure.is_none() {
                    if let Err(error) = restorer.write(address, &bytes) {
                        failure = Some(error.to_string());
                    }
                }
            }
            RestoreCommand::Ready(close_on_exec, reply) => {
                let outcome = match failure.take() {
                    Some(error) => Err(error),
                    None => restorer
                        .mark_close_on_exec(&close_on_exec)
                        .map_err(|e| e.to_string()),
                };
                let _ = reply.send(outcome);
            }
            RestoreCommand::Go(reply) => {
                let _ = reply.send(restorer.finish().map_err(|e| e.to_string()));
                return;
            }
            RestoreCommand::ExecInstead(program, argv, reply) => {
                let argv: Vec<&std::ffi::CStr> = argv.iter().map(|a| a.as_c_str()).collect();
                let _ = reply.send(
                    restorer
                        .exec_instead(&program, &argv)
                        .map_err(|e| e.to_string()),
                );
                return;
            }
        }
    }
    // Given up on. A blank guest is killed; a deputy at home is left
    // stopped until this thread ends, which lets it go as it is.
    if guest {
        restorer.abandon();
    }
}
