//! Moving a running process: the source side sends its memory while it
//! runs, then freezes it and sends what it wrote since and the rest of
//! its image; the destination side restores it into a blank guest, which
//! runs only once the source says its old copy is gone.
//!
//! ptrace belongs to the thread that seized, so each side's process
//! mechanics run on a thread of their own, driven over channels; the
//! bytes move on the caller's async streams.
//!
//! An image stream is: the layout (in the request that starts the move),
//! page runs sent while the process runs, the sync mark (the source waits
//! for the destination to catch up before it freezes the process), the
//! [`FinalImage`] mark and frame, the last page runs and discards, and the
//! end mark.

use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use homing_proto::guest::{GuestExit, HeldSignal, ToHome, ToHost};
use homing_proto::image::{FinalImage, MappedFile, PageRunHeader, ProcessImage, Region};
use homing_proto::peer::Immigrant;
use homing_shim::dump::{self, Frozen, Pick, Run};
use homing_shim::filling::{write_pages, write_zeros};
use homing_shim::restore::{
    covered, spawn_blank, uncovered, without, Blank, LocalFiles, Restorer, TidTurn,
};
use homing_shim::spawn::Guest;
use homing_shim::tracking::{FinalPlan, WriteTracker};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::guest::{pump_from_home, HomePids, HostRole};
use crate::move_priority::MovePriority;

/// Largest run of pages sent at once: a huge page, so that a run of a
/// whole one goes in as one at the destination (see `homing_shim::filling`).
const RUN_BYTES: usize = homing_shim::filling::HUGE_PAGE as usize;
/// Items in flight between the thread reading memory and the stream.
const ITEMS_IN_FLIGHT: usize = 8;
/// The least time the writes of a process are sampled for before its
/// memory is sent while it runs. They are counted from when tracking
/// began: setting up the move has most often taken longer than this.
const MIN_SAMPLE: Duration = Duration::from_millis(10);
/// Looks, [`LEAST_RUN`] apart, that must all find a process runnable for
/// it to be taken as waiting for a CPU.
const STARVED_LOOKS: usize = 5;
/// The least CPU time the sample wants of a process left waiting for a
/// CPU, and the longest it waits for the process to have it.
const MIN_SAMPLE_CPU: Duration = Duration::from_millis(2);
const SAMPLE_PATIENCE: Duration = Duration::from_millis(100);
/// The rate memory is assumed to move at, to judge from the sample.
const ASSUMED_RATE: f64 = 1e9;
/// Sending while the process runs stops once a round has this little to
/// send: what it writes meanwhile is sent frozen.
const CONVERGED_BYTES: u64 = 4 << 20;
/// Or after this many rounds, for a process that writes faster than the
/// link carries.
const MAX_ROUNDS: usize = 8;
/// A process that writes faster than the link carries is paused while
/// each share of its pages this large is read, and runs between pauses.
const PAUSED_SHARE: u64 = 8 << 20;
/// Paced sending ends, the process frozen for good, once this little is
/// left to send.
const PACED_LEFT: u64 = 4 << 20;
/// The shortest and longest run between two pauses.
const LEAST_RUN: Duration = Duration::from_micros(100);
const MOST_RUN: Duration = Duration::from_millis(40);
/// How often a run's CPU time is looked at.
const LOOK_AT_RUN: Duration = Duration::from_millis(1);
/// The longest a pause spends reading and handing over pages.
const PAUSE_READING: Duration = Duration::from_millis(8);
/// Pauses after which what is left goes frozen, however much it is.
const MOST_PAUSES: u32 = 500;

/// One item of an image stream.
#[derive(Debug)]
pub enum ImageItem {
    /// A run of pages: `(address, bytes)`.
    Pages(u64, Bytes),
    /// Pages to empty: `(address, bytes)`.
    Discard(u64, u64),
    /// The pages sent while the process runs end here: the destination
    /// answers once it has written them.
    Sync,
    /// The final state; the last pages follow it.
    Final(Box<FinalImage>),
    /// The end of the image.
    End,
}

impl ImageItem {
    /// The item that carries a run of pages read from a process.
    fn from_run(address: u64, run: Run) -> Self {
        match run {
            Run::Bytes(bytes) => Self::Pages(address, bytes),
            Run::Zeros(len) => Self::Discard(address, len),
        }
    }

    /// Bytes of memory it carries.
    pub fn memory_bytes(&self) -> u64 {
        match self {
            Self::Pages(_, bytes) => bytes.len() as u64,
            _ => 0,
        }
    }
}

/// Reads `len` bytes, fewer only if the stream ends first. They go into
/// spare capacity: zeroing a megabyte of pages first would only be
/// overwritten.
async fn read_up_to<R: AsyncRead + Unpin>(input: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len);
    let mut rest = input.take(len as u64);
    while bytes.len() < len && rest.read_buf(&mut bytes).await? > 0 {}
    Ok(bytes)
}

/// Reads exactly `len` bytes.
async fn read_bytes<R: AsyncRead + Unpin>(input: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    let bytes = read_up_to(input, len).await?;
    if bytes.len() < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(bytes)
}

/// Reads one item of an image stream.
pub async fn read_image_item<R: AsyncRead + Unpin>(input: &mut R) -> Result<ImageItem, String> {
    let receiving = |e: std::io::Error| format!("receiving memory: {e}");
    let mut header = [0u8; PageRunHeader::LEN];
    input.read_exact(&mut header).await.map_err(receiving)?;
    let header = PageRunHeader::decode(&header).map_err(|e| e.to_string())?;
    if header.is_end() {
        return Ok(ImageItem::End);
    }
    if let Some(bytes) = header.discarded_bytes() {
        return Ok(ImageItem::Discard(header.address, bytes));
    }
    if header.is_sync() {
        return Ok(ImageItem::Sync);
    }
    if header.is_final() {
        let mut length = [0u8; homing_proto::frame::HEADER_LEN];
        input.read_exact(&mut length).await.map_err(receiving)?;
        let length = homing_proto::frame::body_len(length).map_err(|e| e.to_string())?;
        let body = read_bytes(input, length).await.map_err(receiving)?;
        let last: FinalImage = homing_proto::decode(&body).map_err(|e| e.to_string())?;
        return Ok(ImageItem::Final(Box::new(last)));
    }
    let bytes = read_bytes(input, header.length as usize)
        .await
        .map_err(receiving)?;
    Ok(ImageItem::Pages(header.address, Bytes::from(bytes)))
}

/// Where an image stream is written: a byte stream that also takes a run
/// of pages as it is. A transport that keeps what it is given until the
/// peer has it (a QUIC stream) then sends the pages without a copy of
/// its own, which at a gigabyte a second is worth a tenth of a second.
pub trait ImageOut: AsyncWrite + Unpin {
    /// Writes all of `bytes`.
    fn write_shared(
        &mut self,
        bytes: Bytes,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// Writes one item of an image stream.
pub async fn write_image_item<W: ImageOut>(out: &mut W, item: &ImageItem) -> Result<(), String> {
    let sending = |e: std::io::Error| format!("sending memory: {e}");
    match item {
        ImageItem::Pages(address, bytes) => {
            let header = PageRunHeader {
                address: *address,
                length: bytes.len() as u32,
            };
            out.write_all(&header.encode()).await.map_err(sending)?;
            out.write_shared(bytes.clone()).await.map_err(sending)
        }
        ImageItem::Discard(address, bytes) => {
            let pages = u32::try_from(bytes / 4096).unwrap_or(u32::MAX);
            let header = PageRunHeader::discard(*address, pages);
            out.write_all(&header.encode()).await.map_err(sending)
        }
        ImageItem::Final(last) => {
            out.write_all(&PageRunHeader::FINAL.encode())
                .await
                .map_err(sending)?;
            let frame = homing_proto::encode(last.as_ref()).map_err(|e| e.to_string())?;
            out.write_all(&frame).await.map_err(sending)
        }
        ImageItem::Sync => out
            .write_all(&PageRunHeader::SYNC.encode())
            .await
            .map_err(sending),
        ImageItem::End => out
            .write_all(&PageRunHeader::END.encode())
            .await
            .map_err(sending),
    }
}

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
    /// Send the memory while the process runs; of the file mappings
    /// within the ranges given, only the pages the process changed.
    Precopy(mpsc::Sender<ImageItem>, Vec<(u64, u64)>),
    Freeze(oneshot::Sender<Result<(Instant, Pacing), String>>),
    Final(mpsc::Sender<ImageItem>),
    Finish(Afterwards, oneshot::Sender<Result<Vec<i32>, String>>),
}

/// The pauses of a process paced while its memory was sent (see
/// `Held::send_paced`): it wrote faster than the link carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pacing {
    /// How many times it was paused.
    pub pauses: u32,
    /// The longest pause.
    pub longest: Duration,
}

/// A process that is a guest here, for the dump thread to hold its calls
/// (see `Member::release_calls`, `quiesce`).
#[derive(Clone)]
pub struct GuestCalls(Arc<crate::guest::Member>);

impl GuestCalls {
    /// Ends the calls the agent holds of thread `tid`, which ptrace has
    /// interrupted, so that it can stop. Only that thread's: another, not
    /// interrupted (asleep through a pause, or born since the threads were
    /// seized), would take the restart code as its call's result.
    fn release(&self, tid: i32) {
        self.0.release_calls(tid);
    }

    /// Holds its new calls; returns the threads with a call past its
    /// gate, which home may be running: a pause must leave those alone,
    /// or they would make it again.
    fn hold(&self) -> Vec<i32> {
        self.0.gate.send_replace(false);
        self.0.in_hand.iter().map(|call| *call.value()).collect()
    }

    /// Lets its held calls go.
    fn let_go(&self) {
        self.0.gate.send_replace(true);
    }
}

/// A guest's gate shut for a pause (see [`GuestCalls::hold`]): its held
/// calls go when this is dropped, after the pause that follows it.
struct GateShut<'a>(Option<&'a GuestCalls>);

impl Drop for GateShut<'_> {
    fn drop(&mut self) {
        if let Some(calls) = self.0 {
            calls.let_go();
        }
    }
}

/// [`dump::freeze`] of `pid`, a guest here if `guest` says so.
fn freeze(pid: i32, guest: &Option<GuestCalls>) -> Result<Frozen, dump::DumpError> {
    let release = guest.as_ref().map(|calls| move |tid| calls.release(tid));
    dump::freeze(pid, release.as_ref().map(|r| r as &dyn Fn(i32)))
}

/// What a region's mapped file is at home, where the name this node's
/// kernel gives it (a cached copy's) is not home's.
pub type HomeNames = Arc<dyn Fn(&MappedFile) -> Option<MappedFile> + Send + Sync>;

/// Gives the mapped files of `regions` their home names (see [`HomeNames`]);
/// one with none is anonymous memory as far as the image goes.
fn name_at_home(regions: &mut [Region], names: &HomeNames) {
    for region in regions {
        region.file = region.file.take().and_then(|file| names(&file));
    }
}

/// A process being moved, held by a thread of its own: it runs, its
/// writes tracked, while its memory is sent, then it is frozen.
pub struct Source {
    /// How its mapped files are named at home, if not as here.
    home_names: Option<HomeNames>,
    /// Where the destination maps the file a region mapped, privately.
    mapped_there: Vec<(u64, u64)>,
    commands: std::sync::mpsc::Sender<SourceCommand>,
    /// Its memory map when tracking started (an image with no threads):
    /// the destination prepares it for the pages.
    pub layout: ProcessImage,
    /// Bytes of memory its present pages hold (what will be sent, zero pages aside).
    pub estimate: u64,
    /// When it was frozen for good.
    pub frozen_at: Option<Instant>,
    /// How it was paused before, if it was.
    pub pacing: Pacing,
    finished: bool,
    /// The agent runs ahead of the node's programs until it is sent.
    _priority: MovePriority,
}

impl Source {
    /// Starts moving `pid`: a short freeze takes its memory map and
    /// starts tracking its writes. `guest`, for a guest here: how to end
    /// the calls the agent holds for it (its pending signals move with it;
    /// its filter is passed by). Where the kernel cannot track writes, the
    /// process stays frozen from here on.
    pub async fn track(pid: i32, guest: Option<GuestCalls>) -> Result<Self, String> {
        Self::start(pid, guest, true).await
    }

    /// Freezes `pid` at once, to be sent frozen, or simply turned into
    /// another program by [`Self::finish`].
    pub async fn frozen(pid: i32, guest: Option<GuestCalls>) -> Result<Self, String> {
        Self::start(pid, guest, false).await
    }

    async fn start(pid: i32, guest: Option<GuestCalls>, track: bool) -> Result<Self, String> {
        let (commands, inbox) = std::sync::mpsc::channel();
        let (ready, layout) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("dump-{pid}"))
            .spawn(move || {
                crate::move_priority::join_this_thread();
                source_thread(pid, guest, track, inbox, ready)
            })
            .map_err(|e| format!("cannot start a dump thread: {e}"))?;
        let started = Instant::now();
        let Tracking {
            layout,
            huge_pages_disabled,
            tracked,
            estimate,
        } = layout
            .await
            .map_err(|_| "the dump thread died".to_owned())??;
        let layout = layout_image(&layout, huge_pages_disabled);
        Ok(Self {
            home_names: None,
            mapped_there: Vec::new(),
            commands,
            layout,
            estimate,
            frozen_at: (!tracked).then_some(started),
            pacing: Pacing::default(),
            finished: false,
            _priority: MovePriority::raise(),
        })
    }

    /// Names its mapped files in the image as `names` says (a guest's
    /// files are copies in this node's cache).
    pub fn name_files_at_home(&mut self, names: HomeNames) {
        name_at_home(&mut self.layout.regions, &names);
        self.home_names = Some(names);
    }

    /// The destination maps, in `ranges`, the file their region mapped
    /// here: of those pages, only the ones the process changed are sent
    /// while it runs (see [`Pick::KeptOwn`]).
    pub fn mapped_there(&mut self, ranges: Vec<(u64, u64)>) {
        self.mapped_there = ranges;
    }

    /// Sends the memory while the process runs: all of it, then what it
    /// wrote meanwhile, round after round until little is left.
    /// `progress` hears the bytes sent so far. Returns the bytes sent.
    pub async fn send_running<W: ImageOut>(
        &mut self,
        out: &mut W,
        progress: impl FnMut(u64),
    ) -> Result<u64, String> {
        let (items, inbox) = mpsc::channel(ITEMS_IN_FLIGHT);
        let mapped_there = self.mapped_there.clone();
        self.tell(SourceCommand::Precopy(items, mapped_there))?;
        pump(inbox, out, progress, 0, &None).await
    }

    /// Freezes the process for good.
    pub async fn freeze(&mut self) -> Result<(), String> {
        let (reply, outcome) = oneshot::channel();
        self.tell(SourceCommand::Freeze(reply))?;
        let (frozen_at, pacing) = outcome
            .await
            .map_err(|_| "the dump thread died".to_owned())??;
        self.frozen_at = Some(frozen_at);
        self.pacing = pacing;
        Ok(())
    }

    /// Sends the frozen process's final image, what it wrote since it was
    /// last looked at, and the end mark. `progress` hears the bytes sent,
    /// counted on from `sent_before`. Returns the bytes sent in all.
    pub async fn send_frozen<W: ImageOut>(
        &mut self,
        out: &mut W,
        sent_before: u64,
        progress: impl FnMut(u64),
    ) -> Result<u64, String> {
        let (items, inbox) = mpsc::channel(ITEMS_IN_FLIGHT);
        self.tell(SourceCommand::Final(items))?;
        let sent = pump(inbox, out, progress, sent_before, &self.home_names).await?;
        write_image_item(out, &ImageItem::End).await?;
        Ok(sent)
    }

    /// How long it has been frozen.
    pub fn frozen_for(&self) -> Duration {
        self.frozen_at.map_or(Duration::ZERO, |at| at.elapsed())
    }

    /// Ends the move as `afterwards` says.
    pub async fn finish(mut self, afterwards: Afterwards) -> Result<Vec<i32>, String> {
        self.finished = true;
        let (reply, outcome) = oneshot::channel();
        self.tell(SourceCommand::Finish(afterwards, reply))?;
        outcome
            .await
            .map_err(|_| "the dump thread died".to_owned())?
    }

    fn tell(&self, command: SourceCommand) -> Result<(), String> {
        self.commands
            .send(command)
            .map_err(|_| "the dump thread died".to_owned())
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

/// Writes the items the dump thread hands over until it is done with
/// them, the final image's files named as `home_names` says; returns the
/// memory bytes sent, counted from `sent`.
async fn pump<W: ImageOut>(
    mut inbox: mpsc::Receiver<ImageItem>,
    out: &mut W,
    mut progress: impl FnMut(u64),
    mut sent: u64,
    home_names: &Option<HomeNames>,
) -> Result<u64, String> {
    while let Some(mut item) = inbox.recv().await {
        if let (ImageItem::Final(last), Some(names)) = (&mut item, home_names) {
            name_at_home(&mut last.image.regions, names);
        }
        write_image_item(out, &item).await?;
        sent += item.memory_bytes();
        progress(sent);
    }
    Ok(sent)
}

/// An image of nothing but a memory map (and whether the process
/// wants huge pages in it).
fn layout_image(regions: &[Region], huge_pages_disabled: bool) -> ProcessImage {
    ProcessImage {
        regions: regions.to_vec(),
        huge_pages_disabled,
        ..ProcessImage::default()
    }
}

/// Present pages of the regions that travel, as `read` counted them
/// (`Rss`), or all they span where it could not.
fn estimate(read: Option<&dump::MappingsRead>, layout: &[Region]) -> u64 {
    read.map(|read| read.resident)
        .filter(|&resident| resident > 0)
        .unwrap_or_else(|| dump::travelling_bytes(&layout_image(layout, false)))
}

/// What the dump thread says once it holds the process.
struct Tracking {
    /// Its memory map.
    layout: Vec<Region>,
    /// It has transparent huge pages turned off.
    huge_pages_disabled: bool,
    /// Its writes are tracked (it runs on); otherwise it stays frozen.
    tracked: bool,
    /// Bytes of memory it holds.
    estimate: u64,
}

/// The dump thread's hold on the process.
struct Held {
    pid: i32,
    guest: Option<GuestCalls>,
    layout: Vec<Region>,
    tracker: Option<WriteTracker>,
    /// When its writes began to be tracked (protecting its pages began).
    tracked_at: Option<CpuClock>,
    frozen: Option<Frozen>,
    image: Option<ProcessImage>,
    /// Written pages not sent while it ran: left for when it is frozen.
    unsent: Vec<(u64, u64)>,
    /// Ranges never sent (what [`Pick::KeptOwn`] keeps is to go), left
    /// for when it is frozen.
    unsent_first: Vec<(u64, u64)>,
    /// Ranges the destination maps from the same file (see
    /// [`Pick::KeptOwn`]).
    mapped_there: Vec<(u64, u64)>,
    /// Its memory was sent while it ran (else it is all sent frozen).
    sent_running: bool,
    /// Bytes of memory it holds.
    estimate: u64,
    /// What its `smaps` said of its mappings as its move began.
    mappings_read: dump::MappingsRead,
    /// When it was frozen for good.
    frozen_at: Option<Instant>,
    /// How it was paused while its memory was sent.
    pacing: Pacing,
}

/// What home is told when a process cannot move: for a mapping that
/// cannot, the reason alone (home names the process by its own pid, not
/// by its pid here); for anything else, the error.
fn refusal(error: dump::DumpError) -> String {
    match error {
        dump::DumpError::Unmovable { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn source_thread(
    pid: i32,
    guest: Option<GuestCalls>,
    track: bool,
    commands: std::sync::mpsc::Receiver<SourceCommand>,
    ready: oneshot::Sender<Result<Tracking, String>>,
) {
    let setup = Instant::now();
    let frozen = match freeze(pid, &guest) {
        Ok(frozen) => frozen,
        Err(error) => {
            let _ = ready.send(Err(refusal(error)));
            return;
        }
    };
    let mut layout = match frozen.layout() {
        Ok(layout) => layout,
        Err(error) => {
            frozen.thaw();
            let _ = ready.send(Err(refusal(error)));
            return;
        }
    };
    let mut held = Held {
        pid,
        guest,
        layout: layout.clone(),
        tracker: None,
        tracked_at: None,
        frozen: None,
        image: None,
        unsent: Vec::new(),
        unsent_first: Vec::new(),
        mapped_there: Vec::new(),
        sent_running: false,
        estimate: 0,
        mappings_read: dump::MappingsRead::default(),
        frozen_at: None,
        pacing: Pacing::default(),
    };
    let tracker = if track {
        WriteTracker::create(&frozen)
            .inspect_err(|error| {
                info!(
                    pid,
                    "cannot track its writes ({error}): it stays frozen while it moves"
                )
            })
            .ok()
    } else {
        None
    };
    match tracker {
        Some(mut tracker) => {
            // Registering and protecting takes a while for a large
            // process; it need not be frozen for it, since its pages are
            // read only once they are protected.
            frozen.thaw();
            let frozen_for = setup.elapsed();
            // Pages are tracked as they are protected: the sample of its
            // writes spans the protecting too.
            let tracking_from = CpuClock::start(pid);
            if let Err(error) = tracker.track(&layout) {
                let _ = ready.send(Err(format!(
                    "cannot track the writes of process {pid}: {error}"
                )));
                return;
            }
            debug!(pid, ?frozen_for, took = ?setup.elapsed(), "tracking its writes");
            held.tracker = Some(tracker);
            held.tracked_at = Some(tracking_from);
        }
        None => {
            held.frozen = Some(frozen);
            held.frozen_at = Some(Instant::now());
        }
    }
    // Read once the process runs again (they walk every page table).
    let read = dump::read_mappings(pid).ok();
    held.estimate = estimate(read.as_ref(), &layout);
    if let Some(read) = read {
        dump::advise(&mut layout, &read);
        held.mappings_read = read;
    }
    let tracking = Tracking {
        layout,
        huge_pages_disabled: dump::huge_pages_disabled(pid).unwrap_or(false),
        tracked: held.tracker.is_some(),
        estimate: held.estimate,
    };
    if ready.send(Ok(tracking)).is_err() {
        held.let_go();
        return;
    }
    // A lost command channel (the move abandoned) lets the process go on.
    while let Ok(command) = commands.recv() {
        match command {
            SourceCommand::Precopy(items, mapped_there) => {
                if let Err(error) = held.send_running(&items, &mapped_there) {
                    warn!(pid, "sending the memory of a running process: {error}");
                }
            }
            SourceCommand::Freeze(reply) => {
                let _ = reply.send(held.freeze());
            }
            SourceCommand::Final(items) => {
                if let Err(error) = held.send_frozen(&items) {
                    warn!(pid, "sending the memory of a frozen process: {error}");
                }
            }
            SourceCommand::Finish(afterwards, reply) => {
                let _ = reply.send(held.finish(afterwards));
                return;
            }
        }
    }
    held.let_go();
}

impl Held {
    fn send_running(
        &mut self,
        items: &mpsc::Sender<ImageItem>,
        mapped_there: &[(u64, u64)],
    ) -> Result<(), String> {
        self.mapped_there = mapped_there.to_vec();
        let Some(tracker) = self.tracker.as_mut().filter(|_| self.frozen.is_none()) else {
            return Ok(());
        };
        let send = |address: u64, run: Run| items.blocking_send(ImageItem::from_run(address, run));
        let closed = |_| "the stream went away".to_owned();
        // A process that would rewrite most of its memory while it is
        // sent is sent frozen, once.
        let tracked_at = (self.tracked_at).unwrap_or_else(|| CpuClock::start(self.pid));
        std::thread::sleep(MIN_SAMPLE.saturating_sub(tracked_at.at.elapsed()));
        // One the agents, running ahead of it, have left waiting for a
        // CPU is judged by the CPU time it had: it writes as fast as that
        // once it has a CPU again.
        let starved = tracked_at.starved();
        if starved {
            let patience = tracked_at.at + SAMPLE_PATIENCE;
            while tracked_at.ran() < MIN_SAMPLE_CPU && Instant::now() < patience {
                std::thread::sleep(LOOK_AT_RUN);
            }
        }
        let sample = bytes_in(&tracker.written().map_err(|e| e.to_string())?);
        let sampled_for = if starved {
            tracked_at.ran().max(LEAST_RUN)
        } else {
            tracked_at.at.elapsed().max(MIN_SAMPLE)
        };
        let sending = Duration::from_secs_f64(self.estimate as f64 / ASSUMED_RATE);
        let rewritten = sample as f64 * sending.as_secs_f64() / sampled_for.as_secs_f64();
        if rewritten > self.estimate as f64 / 2.0 {
            debug!(
                pid = self.pid,
                sample, "it writes too fast to be sent running"
            );
            self.sent_running = true;
            let write_rate = sample as f64 / sampled_for.as_secs_f64();
            let first = travelling(&self.layout);
            return self.send_paced(first, Vec::new(), write_rate, items);
        }
        let ranges = travelling(&self.layout);
        let started = Instant::now();
        let pick = Pick::KeptOwn(mapped_there);
        let first = dump::read_pages(self.pid, &ranges, pick, RUN_BYTES, send)
            .map_err(|e| e.to_string())?
            .map_err(closed)?;
        self.sent_running = true;
        debug!(
            pid = self.pid,
            bytes = first.bytes,
            took = ?started.elapsed(),
            "memory sent while it runs"
        );
        let mut last_round = first.bytes;
        let mut looked_at = started;
        for round in 1..=MAX_ROUNDS {
            let written = tracker.written().map_err(|e| e.to_string())?;
            let bytes = bytes_in(&written);
            // A process that writes as fast as its pages go would only
            // be sent again and again: it is paced instead.
            if bytes > CONVERGED_BYTES && (bytes > last_round / 2 || round == MAX_ROUNDS) {
                debug!(
                    pid = self.pid,
                    round, bytes, "written too fast to go round again"
                );
                let write_rate = bytes as f64 / looked_at.elapsed().as_secs_f64();
                return self.send_paced(Vec::new(), written, write_rate, items);
            }
            looked_at = Instant::now();
            let read = dump::read_pages(self.pid, &written, Pick::All, RUN_BYTES, send)
                .map_err(|e| e.to_string())?
                .map_err(closed)?;
            self.unsent.extend(read.unreadable);
            debug!(
                pid = self.pid,
                round, bytes, "written meanwhile, sent again"
            );
            if bytes <= CONVERGED_BYTES {
                break;
            }
            last_round = bytes;
        }
        Ok(())
    }

    /// Sends the memory of a process that writes faster than the link
    /// carries: it is paused while each share of its pages is read, and
    /// runs between pauses only as long as it takes to write a quarter of a
    /// share, so that what is left shrinks. Runs and rates count the CPU
    /// time it had, not the time that passed: the agents run ahead of it
    /// while they move it, so a run may pass with the process waiting for
    /// a CPU, which then writes at full speed in the next. Once little is
    /// left it stays frozen, and that goes with its final state. `first`:
    /// ranges never sent (what [`Pick::KeptOwn`] keeps goes); `again`:
    /// pages written since they were sent; `write_rate`: the bytes a
    /// second of CPU time it was last seen to write.
    ///
    /// A guest's threads with a call under way at home are left to run
    /// (see [`GuestCalls`]): they write nothing until it is answered, and
    /// what they write then is tracked as any write. Before it is frozen
    /// for good, those calls end.
    fn send_paced(
        &mut self,
        mut first: Vec<(u64, u64)>,
        mut again: Vec<(u64, u64)>,
        write_rate: f64,
        items: &mpsc::Sender<ImageItem>,
    ) -> Result<(), String> {
        let paced = self.pace(&mut first, &mut again, write_rate, items);
        // What it did not send goes once it is frozen for good, should
        // the move go on.
        self.unsent_first = first;
        self.unsent.extend(again);
        paced
    }

    /// The pauses and runs of [`Held::send_paced`], until it is frozen
    /// for good (or can only be once its calls at home end); leaves in
    /// `first` and `again` what is still to send.
    fn pace(
        &mut self,
        first: &mut Vec<(u64, u64)>,
        again: &mut Vec<(u64, u64)>,
        mut write_rate: f64,
        items: &mpsc::Sender<ImageItem>,
    ) -> Result<(), String> {
        let pid = self.pid;
        let tracker = (self.tracker.as_mut()).ok_or("its writes are not tracked")?;
        let started = Instant::now();
        // The CPU time it had in its last run: the first run's length is
        // judged from the rate alone.
        let mut ran: Option<Duration> = None;
        loop {
            let paused_at = Instant::now();
            let gate = GateShut(self.guest.as_ref());
            let busy = gate.0.map_or_else(Vec::new, GuestCalls::hold);
            let release = gate.0.map(|calls| |tid| calls.release(tid));
            let paused = dump::pause(pid, &busy, release.as_ref().map(|r| r as &dyn Fn(i32)))
                .map_err(|e| e.to_string())?;
            let written = tracker.written().map_err(|e| e.to_string())?;
            // A run it spent waiting for a CPU tells nothing of its rate.
            if let Some(running) = ran.filter(|&running| running >= LEAST_RUN) {
                write_rate = bytes_in(&written) as f64 / running.as_secs_f64();
            }
            again.extend(without(&written, first));
            *again = merged(std::mem::take(again));
            let pacing = &mut self.pacing;
            // The final freeze begins with the destination catching up
            // with what the stream holds: it comes only once the pages
            // handed over have gone into the stream.
            let handed_over = items.capacity() == items.max_capacity();
            let little_left = first.is_empty() && bytes_in(again) <= PACED_LEFT;
            if little_left && handed_over || first.is_empty() && pacing.pauses >= MOST_PAUSES {
                info!(
                    pid,
                    pauses = pacing.pauses,
                    longest = ?pacing.longest,
                    took = ?started.elapsed(),
                    left = bytes_in(again),
                    "paced: the rest goes frozen"
                );
                // It is frozen for good now, before it writes more; calls
                // of its at home end first, while it is paused (those that
                // take long are interrupted, to run again where it goes
                // on). Should they not end, its final freeze tries again.
                let drained = busy.is_empty() || gate.0.is_some_and(|calls| drain_calls(&calls.0));
                drop(paused);
                if drained {
                    let frozen_at = Instant::now();
                    self.frozen = Some(freeze(pid, &self.guest).map_err(|e| e.to_string())?);
                    self.frozen_at = Some(frozen_at);
                }
                return Ok(());
            }
            let deadline = Instant::now() + PAUSE_READING;
            let pick = Pick::KeptOwn(&self.mapped_there);
            let sent = read_share(pid, first, pick, (PAUSED_SHARE, deadline), items)?;
            let budget = PAUSED_SHARE.saturating_sub(sent);
            read_share(pid, again, Pick::All, (budget, deadline), items)?;
            drop(paused);
            drop(gate);
            let thawed = CpuClock::start(pid);
            pacing.pauses += 1;
            pacing.longest = pacing.longest.max(paused_at.elapsed());
            // A quarter share written per run: what is left shrinks by
            // three quarters of a share a pause. A run that saw few
            // writes (it may not have had the CPU) is no measure of a
            // long one: runs at most double.
            let run = Duration::from_secs_f64((PAUSED_SHARE as f64 / 4.0 / write_rate).min(1.0));
            let run = run
                .min(ran.unwrap_or(MOST_RUN) * 2)
                .clamp(LEAST_RUN, MOST_RUN);
            debug!(
                pid,
                paused = ?paused_at.elapsed(),
                written = bytes_in(&written),
                first = bytes_in(first),
                again = bytes_in(again),
                ?run,
                "paced"
            );
            if little_left {
                // It runs until what was handed over has gone.
                let until = Instant::now() + MOST_RUN;
                while items.capacity() < items.max_capacity() && Instant::now() < until {
                    std::thread::sleep(LEAST_RUN);
                }
            } else {
                thawed.run_for(run);
            }
            ran = Some(thawed.ran());
        }
    }

    fn freeze(&mut self) -> Result<(Instant, Pacing), String> {
        // What was read of its mappings as its move began serves, unless
        // it has made or changed one since: reading again walks every
        // page (25-40 ms a GiB), so that is done while it still runs.
        let mapped = dump::maps(self.pid).unwrap_or_default();
        if !self.mappings_read.covers(&mapped) {
            self.mappings_read = dump::read_mappings(self.pid).unwrap_or_default();
        }
        if self.frozen.is_none() {
            let started = Instant::now();
            let frozen = freeze(self.pid, &self.guest);
            self.frozen = Some(frozen.map_err(|e| e.to_string())?);
            self.frozen_at = Some(started);
        }
        let frozen = self.frozen.as_ref().expect("frozen just now");
        match frozen.image(self.guest.is_some()) {
            Ok(mut image) => {
                dump::advise(&mut image.regions, &self.mappings_read);
                if let Some(guest) = &self.guest {
                    image.no_new_privs = guest.0.no_new_privs();
                }
                self.image = Some(image);
                Ok((self.frozen_at.unwrap_or_else(Instant::now), self.pacing))
            }
            Err(error) => {
                // It goes on until told what to do: a thaw, most likely.
                Err(error.to_string())
            }
        }
    }

    fn send_frozen(&mut self, items: &mpsc::Sender<ImageItem>) -> Result<(), String> {
        let image = self
            .image
            .clone()
            .ok_or_else(|| "the process was not frozen".to_owned())?;
        let plan = match self.tracker.as_mut().filter(|_| self.sent_running) {
            Some(tracker) => {
                let mut survey = Vec::new();
                for (start, end) in travelling(&image.regions) {
                    survey.extend(tracker.survey(start, end).map_err(|e| e.to_string())?);
                }
                FinalPlan::new(&image.regions, &survey)
            }
            None => FinalPlan::untracked(&image.regions),
        };
        debug!(
            pid = self.pid,
            fresh = plan.fresh.len(),
            written = plan.written.len(),
            unsent = self.unsent.len(),
            "what is left to send"
        );
        let closed = |_| "the stream went away".to_owned();
        let last = FinalImage {
            image: image.clone(),
            fresh: plan.fresh.clone(),
        };
        items
            .blocking_send(ImageItem::Final(Box::new(last)))
            .map_err(closed)?;
        let send = |address: u64, run: Run| items.blocking_send(ImageItem::from_run(address, run));
        // Untracked memory includes every file mapping (their writes cannot
        // be tracked): where the destination maps the file again, only the
        // pages the process holds of its own go, not the file's.
        let pick = Pick::KeptOwn(&self.mapped_there);
        dump::read_pages(self.pid, &plan.fresh, pick, RUN_BYTES, send)
            .map_err(|e| e.to_string())?
            .map_err(closed)?;
        let travelling = travelling(&image.regions);
        // What pacing had not sent when it ended early.
        let never_sent = clipped(&self.unsent_first, &travelling);
        let pick = Pick::KeptOwn(&self.mapped_there);
        dump::read_pages(self.pid, &never_sent, pick, RUN_BYTES, send)
            .map_err(|e| e.to_string())?
            .map_err(closed)?;
        // Pages written but not sent while it ran, where they still travel.
        let mut again = plan.written;
        again.extend(clipped(&self.unsent, &travelling));
        let again = merged(again);
        dump::read_pages(self.pid, &again, Pick::All, RUN_BYTES, send)
            .map_err(|e| e.to_string())?
            .map_err(closed)?;
        debug!(pid = self.pid, frozen = ?self.frozen_at.map(|at| at.elapsed()), "last pages sent");
        Ok(())
    }

    fn finish(mut self, afterwards: Afterwards) -> Result<Vec<i32>, String> {
        // Tracking ends before the process goes on, or becomes a deputy.
        self.tracker = None;
        match self.frozen.take() {
            Some(frozen) => finish_source(frozen, afterwards),
            None if matches!(afterwards, Afterwards::Thaw) => Ok(Vec::new()),
            None => Err("the process was never frozen".into()),
        }
    }

    fn let_go(mut self) {
        self.tracker = None;
        if let Some(frozen) = self.frozen.take() {
            frozen.thaw();
        }
    }
}

/// The parts of `ranges` within some range of `within`.
fn clipped(ranges: &[(u64, u64)], within: &[(u64, u64)]) -> Vec<(u64, u64)> {
    (ranges.iter())
        .flat_map(|&range| covered(range, within))
        .collect()
}

/// A start from which to count the CPU time a process has.
#[derive(Debug, Clone, Copy)]
struct CpuClock {
    pid: i32,
    at: Instant,
    /// The process's CPU clock (its threads together) and what it read
    /// then, where the kernel tells it.
    clock: Option<(nix::time::ClockId, Duration)>,
}

impl CpuClock {
    fn start(pid: i32) -> Self {
        let clock = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid)).ok();
        CpuClock {
            pid,
            at: Instant::now(),
            clock: clock.and_then(|clock| Some((clock, cpu_time(clock)?))),
        }
    }

    /// The CPU time the process has had since the start, or where that
    /// is not known the time that passed.
    fn ran(&self) -> Duration {
        match self
            .clock
            .and_then(|(clock, then)| Some(cpu_time(clock)?.saturating_sub(then)))
        {
            Some(ran) => ran,
            None => self.at.elapsed(),
        }
    }

    /// Whether the process has had less than a quarter of the time that
    /// passed since the start, and waits for a CPU: the agents run ahead
    /// of it while it moves. A process that sleeps has had little CPU
    /// too, but is not seen runnable look after look.
    fn starved(&self) -> bool {
        self.ran() < self.at.elapsed() / 4
            && (0..STARVED_LOOKS).all(|look| {
                if look > 0 {
                    std::thread::sleep(LEAST_RUN);
                }
                any_thread_runnable(self.pid)
            })
    }

    /// Lets the process, thawed at the start, run until it has had `run`
    /// of CPU time, or for [`MOST_RUN`] at most.
    fn run_for(&self, run: Duration) {
        let until = self.at + MOST_RUN;
        loop {
            let left = run.saturating_sub(self.ran());
            let now = Instant::now();
            if left.is_zero() || now >= until {
                return;
            }
            // Looked at often: its threads together may have more CPU
            // time than the time that passes.
            std::thread::sleep(left.min(LOOK_AT_RUN).min(until - now));
        }
    }
}

/// What a process's CPU clock reads now.
fn cpu_time(clock: nix::time::ClockId) -> Option<Duration> {
    nix::time::clock_gettime(clock).ok().map(Duration::from)
}

/// Whether a thread of process `pid` runs or waits for a CPU.
fn any_thread_runnable(pid: i32) -> bool {
    let state = |tid| homing_shim::process::stat_field::<char>(tid, 0);
    homing_shim::process::threads(pid)
        .is_ok_and(|threads| threads.into_iter().any(|tid| state(tid) == Some('R')))
}

/// Bytes of address space in `ranges`.
fn bytes_in(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(start, end)| end - start).sum()
}

/// Reads the pages `pick` keeps from the front of `ranges` (in address
/// order) and hands them to `items` until `budget` bytes have gone, or
/// until `deadline` (the link may stall: a pause must not wait on it);
/// leaves in `ranges` what is still to read, or, all read, what could
/// not be. Returns the bytes handed over.
fn read_share(
    pid: i32,
    ranges: &mut Vec<(u64, u64)>,
    pick: Pick,
    (budget, deadline): (u64, Instant),
    items: &mpsc::Sender<ImageItem>,
) -> Result<u64, String> {
    enum Stop {
        Done,
        Closed,
    }
    if budget == 0 {
        return Ok(0);
    }
    let mut handed = 0;
    let mut reached = 0;
    let read = dump::read_pages(pid, ranges, pick, RUN_BYTES, |address, run| {
        if handed >= budget || Instant::now() >= deadline {
            return Err(Stop::Done);
        }
        let (len, bytes) = match &run {
            Run::Bytes(bytes) => (bytes.len() as u64, bytes.len() as u64),
            Run::Zeros(len) => (*len, 0),
        };
        let mut item = ImageItem::from_run(address, run);
        loop {
            match items.try_send(item) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stop::Closed),
                Err(mpsc::error::TrySendError::Full(back)) if Instant::now() < deadline => {
                    item = back;
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(mpsc::error::TrySendError::Full(_)) => return Err(Stop::Done),
            }
        }
        handed += bytes;
        reached = address + len;
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    match read {
        Ok(read) => *ranges = read.unreadable,
        Err(Stop::Done) => ranges.retain_mut(|range| {
            range.0 = range.0.max(reached);
            range.0 < range.1
        }),
        Err(Stop::Closed) => return Err("the stream went away".into()),
    }
    Ok(handed)
}

/// `ranges` sorted, with overlapping and touching ones joined.
fn merged(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut joined: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match joined.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => joined.push((start, end)),
        }
    }
    joined
}

/// The ranges of the regions whose pages travel.
fn travelling(regions: &[Region]) -> Vec<(u64, u64)> {
    regions
        .iter()
        .filter(|r| dump::travels(r))
        .map(|r| (r.start, r.end))
        .collect()
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
                    // The deputy starts with the signals it forwards
                    // blocked: until it takes them, they wait (by default
                    // most would end it).
                    frozen.release_exec(Some(homing_shim::process::forwarded_signal_mask()));
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
    pub async fn receive<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        self: &Arc<Self>,
        immigrant: &Immigrant,
        pages: &mut R,
        answers: &mut W,
    ) -> Result<Arrival, String> {
        let _priority = MovePriority::raise();
        let pids = self.home_pids(&immigrant.home_node);
        let blank = spawn_blank(
            (immigrant.uid, immigrant.gid, &immigrant.groups),
            Some(self.filter()),
            pids.as_ref()
                .map(|pids| (&pids.namespace, immigrant.home_pid)),
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
            let files = LocalFiles::find(&immigrant.image.regions, |file| {
                let copy = self.cache().copy_of_mapped(&immigrant.home_node, file)?;
                CString::new(copy.into_os_string().into_encoded_bytes()).ok()
            });
            let tids = pids.clone().map(HomePids::tid_turn);
            let restoration = Restoration::start(pid, immigrant.image.clone(), files, tids).await?;
            // The source sends only what the process changed of them.
            let ranges = restoration.file_mapped().await?;
            let mapped =
                homing_proto::encode(&ToHome::FilesMapped { ranges }).map_err(|e| e.to_string())?;
            answers
                .write_all(&mapped)
                .await
                .map_err(|e| format!("telling the files mapped: {e}"))?;
            let mut complete = false;
            loop {
                match read_image_item(pages).await? {
                    ImageItem::End => break,
                    ImageItem::Sync => {
                        restoration.caught_up().await?;
                        let answer =
                            homing_proto::encode(&ToHome::CaughtUp).map_err(|e| e.to_string())?;
                        answers
                            .write_all(&answer)
                            .await
                            .map_err(|e| format!("answering the sync: {e}"))?;
                    }
                    item => {
                        if matches!(item, ImageItem::Final(_)) {
                            debug!(home_pid = immigrant.home_pid, "final state received");
                            complete = true;
                        }
                        arrival.bytes += item.memory_bytes();
                        restoration.apply(item).await?;
                    }
                }
            }
            if !complete {
                return Err("the image ended before the process's final state".to_owned());
            }
            // Every page written before the source hears ready: after that
            // its copy may be gone.
            restoration.ready(Vec::new()).await?;
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
        if let Ok(mut exe) = member.exe.lock() {
            *exe = immigrant.exe.to_vec();
        }
        member.calls.start_ids_at(immigrant.next_call_id);
        member.ask_signalfds_for(immigrant.signalfd_signals);
        member.know_signalfds(&immigrant.signalfds, &immigrant.epoll_signalfds);
        member.set_no_new_privs(immigrant.no_new_privs);
        let _ = member.calls.send(ToHome::Ready);
        // Signals sent at home before the go wait for the process to run.
        let mut early_signals = Vec::new();
        loop {
            match from_home.recv().await {
                Some(ToHost::Go) => break,
                Some(ToHost::Signal { signal, sender }) => {
                    early_signals.push(HeldSignal { signal, sender })
                }
                _ => {
                    info!(home_pid = immigrant.home_pid, "a move here was called off");
                    arrival.abandon();
                    self.forget(&member);
                    return;
                }
            }
        }
        let pid = arrival.pid;
        let going = Instant::now();
        if let Err(error) = arrival.finish().await {
            warn!(
                home_pid = immigrant.home_pid,
                "restore failed at the last step: {error}"
            );
            self.finish(
                &member,
                GuestExit::Signal(libc::SIGKILL),
                Some(format!("the move failed at the last step: {error}")),
            )
            .await;
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
              bytes = arrival.bytes, last_step = ?going.elapsed(), "moved-in process runs");
        let _ = member.calls.send(ToHome::Started { host_pid: pid });
        for held in early_signals {
            member.give_held(held);
        }
        let pump = tokio::spawn(pump_from_home(member.clone(), from_home));
        let status = self.follow(&member, &mut exits).await;
        self.finish(&member, status, None).await;
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
/// they are interrupted for a move. A call home takes tens of
/// microseconds, a large read or write a few milliseconds; one that takes
/// longer waits (for input, a child, a timer) and is as well made again.
/// Meanwhile its new calls wait at the gate, and a paced process's other
/// threads are paused (see `Held::send_paced`): its last pause lasted as
/// long as this.
const DRAIN_GRACE: Duration = Duration::from_millis(10);
/// How long a process may take to start before it can move on.
const START_WAIT: Duration = Duration::from_secs(5);
/// How long interrupted calls may take to come back.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// How far above the next call id of the old host the next host's ids
/// start: the process makes calls from here while its memory is sent.
const CALL_IDS_AHEAD: u64 = 1 << 40;

impl HostRole {
    /// Starts moving on the guest of `home_node` with home pid
    /// `home_pid`. `while_running`: its writes are tracked while its
    /// memory is sent, and it goes on running (its calls served) until
    /// [`Departure::freeze`]; otherwise it is frozen at once.
    pub async fn depart(
        self: &Arc<Self>,
        home_node: &str,
        home_pid: i32,
        while_running: bool,
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
        // Even the short freeze that starts tracking must not catch a call
        // under way at home: the guest would make it again once thawed.
        let tracked = match quiesce(&member).await {
            Ok(()) if while_running => Source::track(pid, Some(GuestCalls(member.clone()))).await,
            Ok(()) => Source::frozen(pid, Some(GuestCalls(member.clone()))).await,
            Err(error) => Err(error),
        };
        member.gate.send_replace(true);
        let mut source = tracked?;
        let role = self.clone();
        source.name_files_at_home(Arc::new(move |file: &MappedFile| {
            role.cache().mapped_origin(file)
        }));
        let immigrant = Immigrant {
            home_node: member.home_node.clone(),
            home_pid,
            uid: member.uid,
            gid: member.gid,
            groups: member.groups.clone(),
            command: member.command(),
            exe: serde_bytes::ByteBuf::from(
                member.exe.lock().map(|e| e.clone()).unwrap_or_default(),
            ),
            image: source.layout.clone(),
            next_call_id: member.calls.next_id() + CALL_IDS_AHEAD,
            // Home stamps its own as it hands this on, and looks at the
            // deputy's signalfds again.
            home_clocks: None,
            signalfd_signals: member.signalfd_signals(),
            signalfds: Vec::new(),
            epoll_signalfds: Vec::new(),
            no_new_privs: member.no_new_privs(),
        };
        Ok(Departure {
            member,
            source,
            immigrant,
        })
    }
}

/// Closes a member's gate, so its new calls wait, and lets its calls
/// under way at home finish, or interrupts them (they then run again
/// once it goes on). The caller opens the gate again.
async fn quiesce(member: &Arc<crate::guest::Member>) -> Result<(), String> {
    let member = member.clone();
    let home_pid = member.home_pid;
    let drained = tokio::task::spawn_blocking(move || drain_calls(&member)).await;
    match drained {
        Ok(true) => Ok(()),
        _ => Err(format!("process {home_pid}'s calls at home did not finish")),
    }
}

/// What [`quiesce`] does, on the calling thread; false if the calls did
/// not finish.
fn drain_calls(member: &crate::guest::Member) -> bool {
    member.gate.send_replace(false);
    let started = Instant::now();
    let mut interrupted = false;
    // Calls sent home unanswered (a close, the lseek after reads answered
    // here) are waited for too: home must have run them before it stops
    // reading this host's stream.
    while {
        member.send_pending_seek(None);
        member.calls.release_held();
        member.handling.load(Ordering::SeqCst) > 0 || member.calls.in_flight() > 0
    } {
        if !interrupted && started.elapsed() > DRAIN_GRACE {
            member.calls.interrupt_all();
            interrupted = true;
        }
        if started.elapsed() > DRAIN_LIMIT {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

impl Departure {
    /// Freezes the process for good. Its calls under way at home finish
    /// first, or are interrupted (they then run again on the next host);
    /// new ones wait.
    pub async fn freeze(&mut self) -> Result<(), String> {
        // From here signals from home are held, not delivered: its image
        // may already be taken.
        if let Ok(mut held) = self.member.held_signals.lock() {
            held.get_or_insert_with(Vec::new);
        }
        self.member.give_signals_for_a_call();
        self.member.home_holds.send_replace(false);
        let frozen = match quiesce(&self.member).await {
            Ok(()) => self.source.freeze().await,
            Err(error) => Err(error),
        };
        if frozen.is_err() {
            self.member.gate.send_replace(true);
            deliver_held_signals(&self.member);
        }
        frozen
    }

    /// The signals home sent while it was frozen, for where it goes:
    /// once home has said it sends nothing more (or after `limit`).
    pub async fn held_signals(&self, limit: Duration) -> Vec<HeldSignal> {
        let mut holds = self.member.home_holds.subscribe();
        let _ = tokio::time::timeout(limit, holds.wait_for(|&held| held)).await;
        self.taken_signals()
    }

    fn taken_signals(&self) -> Vec<HeldSignal> {
        self.member
            .held_signals
            .lock()
            .map(|mut held| held.as_mut().map(std::mem::take).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Ends the departure: on `commit` the frozen process is killed
    /// (silently: it runs elsewhere), otherwise it goes on here.
    pub async fn end(self, commit: bool) -> Result<(), String> {
        if commit {
            self.member.moved.store(true, Ordering::Relaxed);
            let outcome = self.source.finish(Afterwards::Kill).await;
            // Calls that waited at the gate find the process gone.
            self.member.gate.send_replace(true);
            outcome.map(drop)
        } else {
            let outcome = self.source.finish(Afterwards::Thaw).await;
            self.member.gate.send_replace(true);
            deliver_held_signals(&self.member);
            outcome.map(drop)
        }
    }
}

/// Delivers the signals held while a process was frozen to move on: it
/// goes on here after all.
fn deliver_held_signals(member: &crate::guest::Member) {
    let held = member.held_signals.lock().ok().and_then(|mut h| h.take());
    for held in held.unwrap_or_default() {
        member.give_held(held);
    }
}

impl Drop for Arrival {
    /// An arrival dropped before it runs (its restore cancelled) leaves
    /// no blank behind.
    fn drop(&mut self) {
        self.abandon();
    }
}

impl Arrival {
    async fn finish(&mut self) -> Result<(), String> {
        let restoration = self
            .restoration
            .take()
            .ok_or_else(|| "the restore did not get this far".to_owned())?;
        restoration.go(Vec::new()).await
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

enum RestoreCommand {
    /// Pages to write; the budget they hold is given back once written.
    Write(u64, Bytes, Option<tokio::sync::OwnedSemaphorePermit>),
    Discard(u64, u64),
    Reconcile(Box<FinalImage>),
    Sync(oneshot::Sender<Result<(), String>>),
    FileMapped(oneshot::Sender<Vec<(u64, u64)>>),
    Adopt(oneshot::Sender<Result<(), (bool, String)>>),
    Unstage(oneshot::Sender<Result<(), String>>),
    Ready(Vec<i32>, oneshot::Sender<Result<(), String>>),
    Go(Vec<Vec<u8>>, oneshot::Sender<Result<(), String>>),
    ExecInstead(CString, Vec<CString>, oneshot::Sender<Result<(), String>>),
}

/// An image being restored into a process by a thread of its own (ptrace
/// belongs to the thread that seized): a blank guest on a host, or, at
/// home, the deputy of a program coming back.
pub struct Restoration {
    commands: std::sync::mpsc::Sender<RestoreCommand>,
    /// Pages (4 KiB each) handed to the thread and not yet written. The
    /// thread is what limits the pace (it is the first to touch the
    /// memory it writes): pages the stream brings faster wait in the
    /// stream, not in the agent's heap, whose fresh pages would cost that
    /// first touch a second time.
    budget: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Pages handed to a restore thread at most, not yet written: 16 MiB.
const PAGES_IN_HAND: usize = 4096;

impl Restoration {
    /// Starts restoring `image` into the blank guest `pid`: its memory is
    /// emptied and the image's regions mapped, ready for
    /// [`Self::apply`]. The blank is killed if the restore is given up.
    /// `files`: where the files its regions mapped are found here;
    /// `tids`: how its threads get back their tids.
    pub async fn start(
        pid: i32,
        image: ProcessImage,
        files: LocalFiles,
        tids: Option<TidTurn>,
    ) -> Result<Self, String> {
        Self::spawn(format!("restore-{pid}"), move |inbox, prepared| {
            restore_thread(pid, image, files, tids, inbox, prepared)
        })
        .await
    }

    /// Runs `work` on a thread of its own named `name`, with the commands
    /// to come; returns once it says it is ready (or why not).
    async fn spawn(
        name: String,
        work: impl FnOnce(std::sync::mpsc::Receiver<RestoreCommand>, oneshot::Sender<Result<(), String>>)
            + Send
            + 'static,
    ) -> Result<Self, String> {
        let (commands, inbox) = std::sync::mpsc::channel();
        let (ready_tx, ready) = oneshot::channel();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                crate::move_priority::join_this_thread();
                work(inbox, ready_tx)
            })
            .map_err(|e| format!("cannot start a restore thread: {e}"))?;
        let restoration = Self {
            commands,
            budget: std::sync::Arc::new(tokio::sync::Semaphore::new(PAGES_IN_HAND)),
        };
        match ready.await {
            Ok(Ok(())) => Ok(restoration),
            Ok(Err(error)) => Err(error),
            Err(_) => Err("the restore thread died".into()),
        }
    }

    /// Starts bringing a program of layout `layout` home into its deputy
    /// `pid`, which goes on serving it meanwhile: room is made in the
    /// deputy for the program's memory (the deputy's own stays), and the
    /// pages applied are written there, or kept until the deputy has made
    /// way where it has no room. Given up, [`Self::unstage`] removes the
    /// room; dropped, the deputy is left as it is.
    /// `files`: where the files its regions mapped are found at home.
    pub async fn stage(pid: i32, layout: ProcessImage, files: LocalFiles) -> Result<Self, String> {
        Self::spawn(format!("homecoming-{pid}"), move |inbox, staged| {
            homecoming_thread(pid, layout, files, inbox, staged)
        })
        .await
    }

    /// Gives up before the deputy has made way: the room made in it goes.
    pub async fn unstage(self) -> Result<(), String> {
        self.ask(RestoreCommand::Unstage).await
    }

    /// Once the deputy has made way (its connection closed): the program
    /// takes it over, the pages written so far kept. On failure, whether
    /// the deputy was changed (it must then be given a program with
    /// [`Self::exec_instead`]).
    pub async fn adopt(&self) -> Result<(), (bool, String)> {
        let (reply, outcome) = oneshot::channel();
        let died = || (false, "the restore thread died".to_owned());
        self.commands
            .send(RestoreCommand::Adopt(reply))
            .map_err(|_| died())?;
        outcome.await.map_err(|_| died())?
    }

    /// Applies one item of an image stream: pages are written, dropped
    /// pages emptied, and the final state makes the memory fit it (a
    /// failure is reported by [`Self::ready`]).
    pub async fn apply(&self, item: ImageItem) -> Result<(), String> {
        let command = match item {
            ImageItem::Pages(address, bytes) => {
                let pages = bytes.len().div_ceil(4096).clamp(1, PAGES_IN_HAND) as u32;
                let held = self.budget.clone().acquire_many_owned(pages).await.ok();
                RestoreCommand::Write(address, bytes, held)
            }
            ImageItem::Discard(address, bytes) => RestoreCommand::Discard(address, bytes),
            ImageItem::Final(last) => RestoreCommand::Reconcile(last),
            ImageItem::Sync | ImageItem::End => return Ok(()),
        };
        self.commands
            .send(command)
            .map_err(|_| "the restore thread died".to_owned())
    }

    /// The ranges the restore maps from the file their region mapped,
    /// privately (see `Restorer::file_mapped`).
    pub async fn file_mapped(&self) -> Result<Vec<(u64, u64)>, String> {
        let (reply, ranges) = oneshot::channel();
        self.commands
            .send(RestoreCommand::FileMapped(reply))
            .map_err(|_| "the restore thread died".to_owned())?;
        ranges
            .await
            .map_err(|_| "the restore thread died".to_owned())
    }

    /// Waits until every page handed over so far is written (or one
    /// failed to be).
    pub async fn caught_up(&self) -> Result<(), String> {
        self.ask(RestoreCommand::Sync).await
    }

    /// Once every page is written: marks the fds in `close_on_exec`
    /// close-on-exec again; the program is then ready to run.
    pub async fn ready(&self, close_on_exec: Vec<i32>) -> Result<(), String> {
        self.ask(|reply| RestoreCommand::Ready(close_on_exec, reply))
            .await
    }

    /// Lets the program run, `sent_since` (signals sent it while it
    /// moved, not in its image: `siginfo_t`s in the order sent) pending
    /// after its own (see [`Restorer::send_since`]).
    pub async fn go(self, sent_since: Vec<Vec<u8>>) -> Result<(), String> {
        self.ask(|reply| RestoreCommand::Go(sent_since, reply))
            .await
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
    files: LocalFiles,
    tids: Option<TidTurn>,
    commands: std::sync::mpsc::Receiver<RestoreCommand>,
    prepared: oneshot::Sender<Result<(), String>>,
) {
    let mut restorer = match Restorer::attach(pid, image, true) {
        Ok(restorer) => restorer,
        Err(error) => {
            let _ = prepared.send(Err(error.to_string()));
            return;
        }
    };
    if let Some(tids) = tids {
        restorer.keep_tids(tids);
    }
    // The listener the blank was born with is its fd 0; the agent has its own.
    let outcome = (restorer.prepare_memory(files)).and_then(|()| restorer.close(0));
    if let Err(error) = outcome {
        let _ = prepared.send(Err(error.to_string()));
        restorer.abandon();
        return;
    }
    let _ = prepared.send(Ok(()));
    if let Some(given_up) = restore(restorer, &commands, Vec::new()) {
        given_up.abandon();
    }
}

/// How the threads of a program coming home into its deputy `deputy` get
/// back their tids: set next in the deputy's pid namespace, where that is
/// the agent's own (as root, only there may it) and the tid is free.
fn tids_at_home(deputy: i32) -> TidTurn {
    // One homecoming's thread at a time sets the next tid.
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    Box::new(move |tid, clone| {
        let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = homing_shim::pid_namespace::expect_next_beside(deputy, tid) {
            debug!(
                deputy,
                tid, "a thread coming home may get another tid: {error}"
            );
        }
        clone()
    })
}

/// Pages of a program coming home that have no room in its deputy yet.
type Waiting = Vec<RestoreCommand>;

/// How the staging of a program coming home ended.
enum Adoption {
    /// The program took its deputy over.
    Adopted(Restorer),
    /// Taking the deputy over failed half way.
    Changed(Restorer),
    /// Nothing of the deputy changed but its room (which may be gone).
    Failed,
}

fn homecoming_thread(
    pid: i32,
    layout: ProcessImage,
    files: LocalFiles,
    commands: std::sync::mpsc::Receiver<RestoreCommand>,
    staged_tx: oneshot::Sender<Result<(), String>>,
) {
    let mut room = match homing_shim::staging::stage(pid, &layout.regions, files) {
        Ok(room) => Some(room),
        Err(error) => {
            let _ = staged_tx.send(Err(error.to_string()));
            return;
        }
    };
    let staged = room
        .as_ref()
        .map(|room| room.ranges.clone())
        .unwrap_or_default();
    // Where pages are written now: the room but for shared mappings of
    // files, whose pages are the file's (pages there are dropped).
    let shared = (room.as_ref()).map_or_else(Vec::new, |room| room.file_ranges.shared.clone());
    let written = without(&staged, &shared);
    let bytes: u64 = staged.iter().map(|(start, end)| end - start).sum();
    let file_backed = room
        .as_ref()
        .map_or(0, |room| room.file_ranges.backed.len());
    debug!(
        pid,
        room = bytes,
        ranges = staged.len(),
        file_backed,
        "room staged in the deputy"
    );
    let _ = staged_tx.send(Ok(()));
    let memory = homing_shim::memory::ProcessMemory::new(pid);
    let mut waiting: Waiting = Vec::new();
    let mut failure: Option<String> = None;
    let adopted = loop {
        let Ok(command) = commands.recv() else {
            break Adoption::Failed;
        };
        match command {
            RestoreCommand::Write(address, bytes, _held) => {
                let end = address + bytes.len() as u64;
                for (from, to) in covered((address, end), &written) {
                    let part = &bytes[(from - address) as usize..(to - address) as usize];
                    let filler = room.as_ref().and_then(|room| room.filler.as_ref());
                    if let Err(error) = write_pages(filler, &memory, from, part) {
                        failure.get_or_insert(format!("cannot write the deputy's memory: {error}"));
                    }
                }
                for (from, to) in uncovered((address, end), &staged) {
                    let part = bytes.slice((from - address) as usize..(to - address) as usize);
                    waiting.push(RestoreCommand::Write(from, part, None));
                }
            }
            RestoreCommand::Discard(address, len) => {
                // The deputy runs: no madvise can be injected, so zeros.
                for range in covered((address, address + len), &written) {
                    let filler = room.as_ref().and_then(|room| room.filler.as_ref());
                    if let Err(error) = write_zeros(filler, &memory, range) {
                        failure.get_or_insert(format!("cannot write the deputy's memory: {error}"));
                    }
                }
                for (from, to) in uncovered((address, address + len), &staged) {
                    waiting.push(RestoreCommand::Discard(from, to - from));
                }
            }
            RestoreCommand::Sync(reply) => {
                let _ = reply.send(failure.clone().map_or(Ok(()), Err));
            }
            RestoreCommand::FileMapped(reply) => {
                let ranges = room.as_ref().map(|room| room.file_ranges.from_files());
                let _ = reply.send(ranges.unwrap_or_default());
            }
            RestoreCommand::Unstage(reply) => {
                let removed = homing_shim::staging::unstage(pid, &staged);
                let _ = reply.send(removed.map_err(|e| e.to_string()));
                break Adoption::Failed;
            }
            RestoreCommand::Adopt(reply) => {
                if let Some(error) = failure.take() {
                    let _ = reply.send(Err((false, error)));
                    break Adoption::Failed;
                }
                match Restorer::attach(pid, layout.clone(), false) {
                    Err(error) => {
                        let _ = reply.send(Err((false, error.to_string())));
                        break Adoption::Failed;
                    }
                    Ok(mut restorer) => match room.take().map(|room| {
                        restorer.keep_tids(tids_at_home(pid));
                        restorer.make_room(room)
                    }) {
                        Some(Ok(())) => {
                            let _ = reply.send(Ok(()));
                            break Adoption::Adopted(restorer);
                        }
                        Some(Err(error)) => {
                            let _ = reply.send(Err((true, error.to_string())));
                            break Adoption::Changed(restorer);
                        }
                        // Adopted once already: the room is the program's.
                        None => {
                            let _ = reply.send(Err((true, "adopted twice".into())));
                            break Adoption::Changed(restorer);
                        }
                    },
                }
            }
            RestoreCommand::Reconcile(_)
            | RestoreCommand::Ready(..)
            | RestoreCommand::Go(..)
            | RestoreCommand::ExecInstead(..) => {
                failure.get_or_insert("the final state came before the deputy made way".into());
            }
        }
    };
    match adopted {
        // Given up after: the caller gives the deputy its program again.
        Adoption::Adopted(restorer) => {
            restore(restorer, &commands, waiting);
        }
        Adoption::Changed(restorer) => restore_failed(restorer, &commands),
        // Left as it is: the caller seizes the deputy itself.
        Adoption::Failed => {}
    }
}

/// Runs the commands of a restore into an attached process; `waiting`
/// pages are written once the final state is in place. Returns the
/// restorer when the restore was given up, not once the process is let
/// go (restored, or given another program).
fn restore(
    mut restorer: Restorer,
    commands: &std::sync::mpsc::Receiver<RestoreCommand>,
    mut waiting: Waiting,
) -> Option<Restorer> {
    let mut failure: Option<String> = None;
    while let Ok(command) = commands.recv() {
        let changes_memory = matches!(
            command,
            RestoreCommand::Write(..) | RestoreCommand::Discard(..) | RestoreCommand::Reconcile(_)
        );
        if changes_memory && failure.is_some() {
            continue;
        }
        let outcome = match command {
            RestoreCommand::Write(address, bytes, _held) => {
                restorer.write(address, &bytes).map_err(|e| e.to_string())
            }
            RestoreCommand::Discard(address, bytes) => {
                restorer.discard(address, bytes).map_err(|e| e.to_string())
            }
            RestoreCommand::Reconcile(last) => {
                let FinalImage { image, fresh, .. } = *last;
                let kept: Vec<(u64, u64)> = image
                    .regions
                    .iter()
                    .filter(|r| dump::travels(r))
                    .flat_map(|r| uncovered((r.start, r.end), &fresh))
                    .collect();
                let reconciled = restorer.reconcile(image, &fresh);
                // What waited for room, where it still stands: fresh
                // memory comes whole after this, gone memory never.
                reconciled.map_err(|e| e.to_string()).and_then(|()| {
                    write_waiting(&mut restorer, std::mem::take(&mut waiting), &kept)
                })
            }
            RestoreCommand::Sync(reply) => {
                let _ = reply.send(failure.clone().map_or(Ok(()), Err));
                Ok(())
            }
            RestoreCommand::FileMapped(reply) => {
                let _ = reply.send(restorer.file_mapped());
                Ok(())
            }
            RestoreCommand::Adopt(reply) => {
                let _ = reply.send(Err((true, "adopted twice".into())));
                Ok(())
            }
            RestoreCommand::Unstage(reply) => {
                let _ = reply.send(Err("the room is the program's now".into()));
                Ok(())
            }
            RestoreCommand::Ready(close_on_exec, reply) => {
                let released = restorer.all_pages_written().map_err(|e| e.to_string());
                let outcome = match failure.take() {
                    Some(error) => Err(error),
                    None => released.and_then(|()| {
                        restorer
                            .mark_close_on_exec(&close_on_exec)
                            .map_err(|e| e.to_string())
                    }),
                };
                let _ = reply.send(outcome);
                Ok(())
            }
            RestoreCommand::Go(sent_since, reply) => {
                restorer.send_since(sent_since);
                let _ = reply.send(restorer.finish().map_err(|e| e.to_string()));
                return None;
            }
            RestoreCommand::ExecInstead(program, argv, reply) => {
                let _ = reply.send(exec_instead(restorer, program, argv));
                return None;
            }
        };
        if let Err(error) = outcome {
            failure.get_or_insert(error);
        }
    }
    Some(restorer)
}

/// A restore that failed at once: only giving the process another
/// program is left.
fn restore_failed(restorer: Restorer, commands: &std::sync::mpsc::Receiver<RestoreCommand>) {
    while let Ok(command) = commands.recv() {
        if let RestoreCommand::ExecInstead(program, argv, reply) = command {
            let _ = reply.send(exec_instead(restorer, program, argv));
            return;
        }
    }
}

fn exec_instead(restorer: Restorer, program: CString, argv: Vec<CString>) -> Result<(), String> {
    let argv: Vec<&std::ffi::CStr> = argv.iter().map(|a| a.as_c_str()).collect();
    restorer
        .exec_instead(&program, &argv)
        .map_err(|e| e.to_string())
}

/// Writes the pages that waited for room, clipped to `kept`.
fn write_waiting(
    restorer: &mut Restorer,
    waiting: Waiting,
    kept: &[(u64, u64)],
) -> Result<(), String> {
    for command in waiting {
        match command {
            RestoreCommand::Write(address, bytes, _) => {
                for (from, to) in covered((address, address + bytes.len() as u64), kept) {
                    let part = &bytes[(from - address) as usize..(to - address) as usize];
                    restorer.write(from, part).map_err(|e| e.to_string())?;
                }
            }
            RestoreCommand::Discard(address, len) => {
                for (from, to) in covered((address, address + len), kept) {
                    restorer
                        .discard(from, to - from)
                        .map_err(|e| e.to_string())?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A share of this process's own memory: 4 MiB of pages that are not
    /// zero, page-aligned, with the range they lie in.
    fn own_pages() -> (Vec<u8>, (u64, u64)) {
        let memory = vec![7u8; (4 << 20) + 4096];
        let start = (memory.as_ptr() as u64).next_multiple_of(4096);
        (memory, (start, start + (4 << 20)))
    }

    #[test]
    fn a_share_hands_over_its_budget_and_leaves_the_rest_to_read() {
        let (_memory, (start, end)) = own_pages();
        let pid = std::process::id() as i32;
        let (items, mut inbox) = mpsc::channel(64);
        let later = Instant::now() + Duration::from_secs(60);
        let mut ranges = vec![(start, end)];
        // A run ends at the next huge page boundary at the latest: a
        // budget of one byte hands over that run and no more.
        let first_end = (start / RUN_BYTES as u64 + 1) * RUN_BYTES as u64;
        let handed = read_share(pid, &mut ranges, Pick::All, (1, later), &items).unwrap();
        assert_eq!(handed, first_end - start);
        assert_eq!(ranges, vec![(first_end, end)]);
        let rest = read_share(pid, &mut ranges, Pick::All, (u64::MAX, later), &items).unwrap();
        assert_eq!(handed + rest, end - start);
        assert!(ranges.is_empty());
        let mut next = start;
        while let Ok(item) = inbox.try_recv() {
            let ImageItem::Pages(address, bytes) = item else {
                panic!("{item:?}");
            };
            assert_eq!(address, next);
            assert!(bytes.iter().all(|&b| b == 7));
            next += bytes.len() as u64;
        }
        assert_eq!(next, end);
    }

    /// A share whose time is up, or that finds the stream full until
    /// then, stops where it got to.
    #[test]
    fn a_share_stops_at_its_deadline_and_at_a_full_stream() {
        let (_memory, (start, end)) = own_pages();
        let pid = std::process::id() as i32;
        let (items, _inbox) = mpsc::channel(1);
        let mut ranges = vec![(start, end)];
        let past = Instant::now();
        let handed = read_share(pid, &mut ranges, Pick::All, (u64::MAX, past), &items).unwrap();
        assert_eq!((handed, ranges.clone()), (0, vec![(start, end)]));
        let soon = Instant::now() + Duration::from_millis(20);
        let handed = read_share(pid, &mut ranges, Pick::All, (u64::MAX, soon), &items).unwrap();
        // One run went into the stream, which then stayed full.
        let first_end = (start / RUN_BYTES as u64 + 1) * RUN_BYTES as u64;
        assert_eq!(handed, first_end - start);
        assert_eq!(ranges, vec![(first_end, end)]);
    }

    #[test]
    fn merged_ranges_are_sorted_and_joined() {
        assert_eq!(
            merged(vec![
                (0x5000, 0x6000),
                (0x1000, 0x3000),
                (0x2000, 0x4000),
                (0x4000, 0x4800)
            ]),
            vec![(0x1000, 0x4800), (0x5000, 0x6000)]
        );
    }
}
