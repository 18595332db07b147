//! A running node: its peer table, the loops that keep every peer connected,
//! the handling of requests from peers, and the local control socket.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dashmap::DashMap;
use homing_proto::control::{
    AwayProcess, ControlRequest, ControlResponse, PeerInfo, PeerState, RunSpec,
};
use homing_proto::frame::decode_bulk;
use homing_proto::guest::{Clocks, GuestExit, GuestStart, HeldSignal, ToHome, ToHost};
use homing_proto::peer::{PeerRequest, PeerResponse};
use homing_proto::syscall::{ArgData, SyscallResult};
use homing_remote_agent::guest::HostRole;
use homing_shim::time_namespace;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use serde_bytes::ByteBuf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{NodeConfig, PeerConfig};
use crate::fastpath::{Changes, FastPath, FilesForDeputy};
use crate::link::{self, close_code, LinkError};
use crate::tls::Identity;
use crate::wire::{
    read_bulk_frame, read_frame, read_message, read_whole_frame, send_bulk_message, send_message,
    write_message, ForDeputy, FrameReader, WireError,
};
use homing_remote_agent::spin;
use to_host::{hold, signal_in, Outgoing};

mod drain;
mod mapped_files;
mod migrate;
mod to_host;

/// Pause between dial attempts to an absent peer.
const REDIAL_DELAY: Duration = Duration::from_millis(250);
/// How long a program whose start met a restarted agent waits for a new
/// connection to its node.
const START_AGAIN_WITHIN: Duration = Duration::from_secs(3);
/// How often a connected peer is pinged.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long one ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Without an answered ping for this long, a peer is shown unreachable
/// (its connection stays up, so a short cut kills nothing).
const UNREACHABLE_AFTER: Duration = Duration::from_millis(2500);
/// Without an answered ping for this long, the dialing side also tries a
/// fresh connection: the peer may have been replaced by a process that does
/// not know the old connection (and cannot reset it).
const REDIAL_WHEN_SILENT: Duration = Duration::from_secs(8);

/// What the node knows of one peer.
#[derive(Debug)]
struct PeerEntry {
    state: PeerState,
    connection: Option<Connection>,
    last_error: Option<String>,
    /// Round trip of the last answered ping.
    rtt: Option<Duration>,
    /// Since when pings go unanswered.
    silent_since: Option<tokio::time::Instant>,
    /// When its last connection ended, while it has no other.
    lost_at: Option<tokio::time::Instant>,
    /// Whether it said at its last answered ping that it is drained.
    drained: bool,
}

impl PeerEntry {
    /// Whether `conn` is this peer's current connection (not one it replaced).
    fn holds(&self, conn: &Connection) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|current| current.stable_id() == conn.stable_id())
    }
}

/// A node: both roles, one endpoint, one connection per peer.
pub struct Node {
    config: NodeConfig,
    endpoint: Endpoint,
    peers: DashMap<String, PeerEntry>,
    /// The host role: guests whose home is elsewhere.
    host: Arc<HostRole>,
    /// The home role: this node's processes running elsewhere, by deputy pid.
    away: Arc<DashMap<i32, AwayProcess>>,
    /// Deputies forked for away processes, by pid, until they call in to
    /// be adopted: the process that forked (as it was listed when it
    /// did), and when. Its parent may have ended by then (a `( … ) &` as
    /// a shell's last command): the child is still its to adopt.
    forked: Arc<DashMap<i32, (AwayProcess, std::time::Instant)>>,
    /// Guests carried by each connection (by stable id): a connection that
    /// carries guests is not closed when a newer one replaces it.
    guests_on: Arc<DashMap<usize, usize>>,
    /// Processes moved away whose deputy (the process itself, exec'd) has
    /// not called in yet, by pid.
    resuming: DashMap<i32, migrate::PendingResume>,
    /// Wakes deputies waiting to be resumed.
    resumed: tokio::sync::Notify,
    /// The relay of each away process, for migrations to steer.
    relays: DashMap<i32, mpsc::UnboundedSender<RelayCommand>>,
    /// The fds each process moved from home had marked close-on-exec
    /// (unmarked while it is its own deputy), by pid.
    close_on_exec: DashMap<i32, Vec<i32>>,
    /// The program paths of processes that came home: their own
    /// `/proc/PID/exe` names the homing binary, which they cannot change.
    came_home_exe: DashMap<i32, Vec<u8>>,
    /// As a new host: the halves of moves from one host straight to
    /// another that have not met yet, by home node and token.
    handovers: DashMap<(String, u64), migrate::Meeting>,
    /// As home: the token of the next move from one host straight to
    /// another.
    next_handoff: std::sync::atomic::AtomicU64,
    /// As home: the processes being moved to a host, by pid, with that
    /// host, which may fetch the files they map (see
    /// [`PeerRequest::FetchMapped`]).
    moving_to: DashMap<i32, String>,
    /// As host: whether it takes new guests (not once drained), and the
    /// guests it let in.
    cordon: Arc<drain::Cordon>,
}

/// How long an old host waits, at a commit, for home's word that it
/// sends nothing more on the guest's stream.
const HELD_MARK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often a relay looks at its deputy's nice value for a `renice`
/// made at home, which nothing announces.
const NICE_LOOK: Duration = Duration::from_secs(1);

/// How long a deputy may take to make way for its program coming home.
const DEPUTY_MAKES_WAY: std::time::Duration = std::time::Duration::from_secs(5);

/// What the relay of an away process's frames hears from a migration.
enum RelayCommand {
    /// Stop reading the old host's stream and send it nothing: the
    /// process is frozen there to move.
    Hold,
    /// The process runs on `node` now (once told to go, which the relay
    /// does first on the new stream).
    Switch {
        node: String,
        conn: Connection,
        send: SendStream,
        recv: RecvStream,
        /// Signals the old host held while the process was frozen there.
        signals: Vec<HeldSignal>,
    },
    /// The process comes home: tell the deputy to make way, and hand the
    /// old host's streams back, once the deputy has closed its connection
    /// (or was given [`DEPUTY_MAKES_WAY`] to, which says `false`), with the
    /// signals held meanwhile.
    Return(tokio::sync::oneshot::Sender<ReturnedStreams>),
}

/// What a relay hands back for a process coming home: the old host's
/// streams, whether the deputy made way, and the signals for the process
/// held since the move held the relay (newer than those the old host
/// held: they follow them).
type ReturnedStreams = (SendStream, RecvStream, bool, Vec<HeldSignal>);

/// The answer to a call asked ahead of the program that this agent could
/// not answer itself (see [`ToHome::Syscall`]).
fn not_answered_ahead() -> SyscallResult {
    SyscallResult {
        ret: -i64::from(libc::ENOSYS),
        outputs: vec![ArgData {
            index: homing_proto::syscall::NOT_ANSWERED_AHEAD,
            bytes: vec![],
        }],
    }
}

/// Counts a guest on a connection for as long as it lives.
struct GuestOnConnection {
    counts: Arc<DashMap<usize, usize>>,
    connection: usize,
}

impl GuestOnConnection {
    fn new(counts: &Arc<DashMap<usize, usize>>, conn: &Connection) -> Self {
        *counts.entry(conn.stable_id()).or_default() += 1;
        Self {
            counts: counts.clone(),
            connection: conn.stable_id(),
        }
    }
}

impl Drop for GuestOnConnection {
    fn drop(&mut self) {
        self.counts.remove_if_mut(&self.connection, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

impl Node {
    /// Loads the node's identity and binds its endpoint.
    pub fn new(config: NodeConfig) -> anyhow::Result<Arc<Self>> {
        let identity = Identity::load(&config.tls.ca, &config.tls.cert, &config.tls.key)
            .context("loading TLS identity")?;
        let endpoint = link::endpoint(&identity, config.listen)
            .with_context(|| format!("listening on {}", config.listen))?;
        let peers = config
            .peers
            .iter()
            .map(|peer| {
                let entry = PeerEntry {
                    state: PeerState::Connecting,
                    connection: None,
                    last_error: None,
                    rtt: None,
                    silent_since: None,
                    lost_at: None,
                    drained: false,
                };
                (peer.name.clone(), entry)
            })
            .collect();
        let host = HostRole::new(&config.name, &config.state_dir).with_context(|| {
            format!(
                "setting up the guest cache in {}",
                config.state_dir.display()
            )
        })?;
        Ok(Arc::new(Self {
            config,
            endpoint,
            peers,
            host: Arc::new(host),
            away: Arc::new(DashMap::new()),
            forked: Arc::new(DashMap::new()),
            guests_on: Arc::new(DashMap::new()),
            resuming: DashMap::new(),
            resumed: tokio::sync::Notify::new(),
            relays: DashMap::new(),
            close_on_exec: DashMap::new(),
            came_home_exe: DashMap::new(),
            handovers: DashMap::new(),
            next_handoff: std::sync::atomic::AtomicU64::new(1),
            moving_to: DashMap::new(),
            cordon: Arc::default(),
        }))
    }

    /// Runs the node until it is told to stop (SIGINT or SIGTERM).
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.config.state_dir)
            .with_context(|| format!("creating state dir {}", self.config.state_dir.display()))?;
        let control = bind_control_socket(&self.config.control_socket)?;
        // The fast path holds duplicates of deputies' fds: allow as many as we may.
        if let Ok((_, hard)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            let _ = nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_NOFILE,
                hard,
                hard,
            );
        }
        info!(
            node = %self.config.name,
            listen = %self.config.listen,
            control = %self.config.control_socket.display(),
            peers = self.config.peers.len(),
            "node started"
        );
        link::serve_liveness(self.config.listen)
            .await
            .with_context(|| {
                format!(
                    "listening for liveness probes on tcp {}",
                    self.config.listen
                )
            })?;
        spin::start(Duration::from_micros(self.config.spin_us));
        tokio::spawn(self.clone().accept_peers());
        for peer in &self.config.peers {
            // One side dials so that a pair never holds two connections:
            // the node whose name sorts first.
            if self.config.name < peer.name {
                tokio::spawn(self.clone().keep_connected(peer.clone()));
            }
        }
        tokio::spawn(self.clone().serve_control(control));

        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing SIGTERM handler")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        info!("shutting down");
        self.endpoint
            .close(close_code::SHUTDOWN, b"node shutting down");
        let _ = std::fs::remove_file(&self.config.control_socket);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        Ok(())
    }

    fn is_peer(&self, name: &str) -> bool {
        self.peers.contains_key(name)
    }

    /// Makes `conn` the peer's connection, closing any older one, and
    /// starts its heartbeat.
    fn register(self: &Arc<Self>, peer: &str, conn: &Connection) {
        let Some(mut entry) = self.peers.get_mut(peer) else {
            return;
        };
        if let Some(old) = entry.connection.replace(conn.clone()) {
            // Guests on the old connection keep it until they end (or it times out).
            if !self.guests_on.contains_key(&old.stable_id()) {
                old.close(close_code::REPLACED, b"replaced by a newer connection");
            }
        }
        entry.state = PeerState::Connected;
        entry.last_error = None;
        entry.rtt = None;
        entry.silent_since = None;
        entry.lost_at = None;
        drop(entry);
        info!(peer, address = %conn.remote_address(), rtt = ?conn.rtt(), "peer connected");
        tokio::spawn(self.clone().heartbeat(peer.to_owned(), conn.clone()));
    }

    /// Pings `peer` over `conn` until the connection ends, and shows the
    /// peer unreachable while pings go unanswered.
    async fn heartbeat(self: Arc<Self>, peer: String, conn: Connection) {
        let mut last_answer = tokio::time::Instant::now();
        loop {
            let sent = tokio::time::Instant::now();
            let ping = async {
                let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
                let request = PeerRequest::Ping { payload: vec![] };
                write_message(&mut send, &request)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = send.finish();
                read_message::<PeerResponse, _>(&mut recv)
                    .await
                    .map_err(|e| e.to_string())
            };
            let answer = tokio::select! {
                _ = conn.closed() => return,
                result = tokio::time::timeout(PING_TIMEOUT, ping) => match result {
                    Ok(Ok(PeerResponse::Pong { drained, .. })) => Some(drained),
                    _ => None,
                }
            };
            let answered = answer.is_some();
            if answered {
                last_answer = tokio::time::Instant::now();
            } else if link::agent_is_down(conn.remote_address()).await {
                // Nobody listens there any more: the peer's agent died, and
                // with it every guest it ran for us. Say so now rather than
                // at the idle timeout.
                warn!(
                    peer,
                    "peer agent is not running: its host refuses connections"
                );
                conn.close(close_code::PEER_DOWN, b"peer agent not running");
                if let Some(mut entry) = self.peers.get_mut(&peer) {
                    entry.last_error = Some("agent not running".into());
                }
                return;
            }
            let answer = answer.map(|drained| (sent.elapsed(), drained));
            self.record_heartbeat(&peer, &conn, answer, last_answer.elapsed());
            tokio::time::sleep(HEARTBEAT.saturating_sub(sent.elapsed())).await;
        }
    }

    /// Records a ping of `peer` over `conn`: its round trip and whether
    /// the peer is drained, if it answered.
    fn record_heartbeat(
        &self,
        peer: &str,
        conn: &Connection,
        answer: Option<(Duration, bool)>,
        silent_for: Duration,
    ) {
        let Some(mut entry) = self.peers.get_mut(peer) else {
            return;
        };
        if !entry.holds(conn) {
            return;
        }
        if let Some((rtt, drained)) = answer {
            if entry.state != PeerState::Connected {
                info!(peer, "peer answers again");
            }
            entry.state = PeerState::Connected;
            entry.last_error = None;
            entry.rtt = Some(rtt);
            entry.drained = drained;
            entry.silent_since = None;
        } else if entry.silent_since.is_none() {
            entry.silent_since = Some(tokio::time::Instant::now() - silent_for);
        }
        if answer.is_none()
            && silent_for >= UNREACHABLE_AFTER
            && entry.state == PeerState::Connected
        {
            let message = format!("no answer for {:.1} s", silent_for.as_secs_f64());
            info!(peer, "peer unreachable: {message}");
            entry.state = PeerState::Unreachable;
            entry.last_error = Some(message);
            entry.rtt = None;
        }
    }

    /// Records a failure to reach `peer`, logging it when it is news.
    fn record_failure(&self, peer: &str, error: &LinkError) {
        let Some(mut entry) = self.peers.get_mut(peer) else {
            return;
        };
        let state = if error.is_refusal() {
            PeerState::Refused
        } else {
            PeerState::Unreachable
        };
        let message = error.to_string();
        if entry.state != state || entry.last_error.as_deref() != Some(&message) {
            if state == PeerState::Refused {
                warn!(peer, "refused peer: {message}");
            } else {
                info!(peer, "peer unreachable: {message}");
            }
        }
        entry.state = state;
        entry.last_error = Some(message);
    }

    /// Records that `conn`, once the peer's connection, has ended.
    fn record_closed(&self, peer: &str, conn: &Connection, reason: &quinn::ConnectionError) {
        let Some(mut entry) = self.peers.get_mut(peer) else {
            return;
        };
        if !entry.holds(conn) {
            return;
        }
        entry.connection = None;
        entry.state = PeerState::Unreachable;
        entry.lost_at = Some(tokio::time::Instant::now());
        let reason = match reason {
            quinn::ConnectionError::LocallyClosed => {
                entry.last_error.clone().unwrap_or_else(|| "closed".into())
            }
            other => other.to_string(),
        };
        info!(peer, "connection lost: {reason}");
        entry.last_error = Some(format!("connection lost: {reason}"));
    }

    /// Dials `peer` whenever it has no live connection.
    async fn keep_connected(self: Arc<Self>, peer: PeerConfig) {
        loop {
            let existing = self
                .peers
                .get(&peer.name)
                .and_then(|entry| entry.connection.clone());
            // A connection already closed (its serve loop has not recorded
            // that yet) is as good as none: waiting on it again would spin.
            if let Some(conn) = existing.filter(|c| c.close_reason().is_none()) {
                tokio::select! {
                    _ = conn.closed() => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    _ = self.silent(&peer.name, REDIAL_WHEN_SILENT) => {}
                }
            }
            match link::dial(&self.endpoint, &self.config.name, &peer.name, peer.address).await {
                Ok(conn) => {
                    self.register(&peer.name, &conn);
                    tokio::spawn(self.clone().serve_peer(peer.name.clone(), conn));
                }
                Err(error) => {
                    self.record_failure(&peer.name, &error);
                    tokio::time::sleep(REDIAL_DELAY).await;
                }
            }
        }
    }

    /// Returns once `peer` has not answered a ping for `limit`.
    async fn silent(&self, peer: &str, limit: Duration) {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let silent = self
                .peers
                .get(peer)
                .and_then(|entry| entry.silent_since)
                .is_some_and(|since| since.elapsed() >= limit);
            if silent {
                return;
            }
        }
    }

    async fn accept_peers(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            let node = self.clone();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                let conn = match incoming.await {
                    Ok(conn) => conn,
                    Err(error) => {
                        warn!(%remote, "refused connection: {error}");
                        return;
                    }
                };
                let is_peer = |name: &str| node.is_peer(name);
                match link::answer_hello(&conn, &node.config.name, &is_peer).await {
                    Ok(peer) => {
                        node.register(&peer, &conn);
                        node.serve_peer(peer, conn).await;
                    }
                    Err(error) => {
                        let names = link::peer_certificate_names(&conn);
                        warn!(%remote, certificate = ?names, "refused connection: {error}");
                    }
                }
            });
        }
    }

    /// Serves requests a peer opens on `conn` until the connection ends.
    async fn serve_peer(self: Arc<Self>, peer: String, conn: Connection) {
        let reason = loop {
            match conn.accept_bi().await {
                Ok((send, recv)) => {
                    let node = self.clone();
                    let conn = conn.clone();
                    let peer = peer.clone();
                    tokio::spawn(async move {
                        match node.answer_request(&peer, &conn, send, recv).await {
                            Err(error @ WireError::Frame(_)) => {
                                warn!(peer, remote = %conn.remote_address(),
                                    "closing connection: peer broke the protocol: {error}");
                                link::close_for_protocol_error(&conn, &error.to_string());
                            }
                            // A stream the peer gave up on (a ping that timed
                            // out, a lost link) ends that request only.
                            Err(error) => debug!(peer, "request stream ended: {error}"),
                            Ok(()) => {}
                        }
                    });
                }
                Err(reason) => break reason,
            }
        };
        self.record_closed(&peer, &conn, &reason);
    }

    /// Tells the host role how far `home`'s clocks are ahead of ours, from
    /// the readings `clocks` it sent, taken half a round trip before they
    /// came.
    fn note_home_clocks(&self, home: &str, conn: &Connection, clocks: Option<Clocks>) {
        let Some(clocks) = clocks else {
            return;
        };
        let half_trip = i64::try_from(conn.rtt().as_nanos() / 2).unwrap_or(0);
        let ahead = |theirs: i64, clock| theirs + half_trip - time_namespace::now_ns(clock);
        self.host.note_home_clocks(
            home,
            time_namespace::ClockOffsets {
                monotonic_ns: ahead(clocks.monotonic_ns, libc::CLOCK_MONOTONIC),
                boottime_ns: ahead(clocks.boottime_ns, libc::CLOCK_BOOTTIME),
            },
        );
    }

    async fn answer_request(
        &self,
        peer: &str,
        conn: &Connection,
        mut send: SendStream,
        mut recv: RecvStream,
    ) -> Result<(), WireError> {
        let request: PeerRequest = read_message(&mut recv).await?;
        let response = match request {
            PeerRequest::Ping { payload } => PeerResponse::Pong {
                payload,
                drained: self.cordon.is_closed(),
            },
            PeerRequest::StartGuest(mut start) => {
                // The guest's home is the authenticated peer, whatever the request says.
                start.home_node = peer.to_owned();
                let _arrival = match self.admit(peer, start.home_pid, false) {
                    Ok(arrival) => arrival,
                    Err(reason) => return refuse(send, GuestExit::Code(1), reason).await,
                };
                self.note_home_clocks(peer, conn, start.home_clocks);
                let _counted = GuestOnConnection::new(&self.guests_on, conn);
                let host = self.host.clone();
                return relay_guest(send, recv, move |to_home, from_home| {
                    host.run_guest(start, to_home, from_home)
                })
                .await;
            }
            PeerRequest::Immigrate(mut immigrant) => {
                // Its home is the authenticated peer, whatever the request says.
                immigrant.home_node = peer.to_owned();
                let _arrival = match self.admit(peer, immigrant.home_pid, false) {
                    Ok(arrival) => arrival,
                    Err(reason) => {
                        return refuse(send, GuestExit::Signal(libc::SIGKILL), reason).await
                    }
                };
                self.note_home_clocks(peer, conn, immigrant.home_clocks);
                let _counted = GuestOnConnection::new(&self.guests_on, conn);
                return self.immigrate(peer, *immigrant, send, recv, None).await;
            }
            PeerRequest::ImmigrateFrom {
                mut immigrant,
                handoff,
            } => {
                immigrant.home_node = peer.to_owned();
                let admitted = self.admit(peer, immigrant.home_pid, false);
                let image = self.image_handed_over(peer, &handoff).await;
                let _arrival = match admitted {
                    Ok(arrival) => arrival,
                    Err(reason) => {
                        // The old host hears why where it would send the
                        // image, and tells home, which keeps the process
                        // on it.
                        if let Ok((image_send, _image_recv)) = image {
                            let killed = GuestExit::Signal(libc::SIGKILL);
                            let _ = refuse(image_send, killed, reason.clone()).await;
                        }
                        return refuse(send, GuestExit::Signal(libc::SIGKILL), reason).await;
                    }
                };
                self.note_home_clocks(peer, conn, immigrant.home_clocks);
                let _counted = GuestOnConnection::new(&self.guests_on, conn);
                return self
                    .immigrate(peer, *immigrant, send, recv, Some(image))
                    .await;
            }
            PeerRequest::HandOver { home_node, token } => {
                self.hand_over_arrived(peer, home_node, token, (send, recv))
                    .await;
                return Ok(());
            }
            PeerRequest::Evict {
                home_pid,
                while_running,
                hand_to,
            } => {
                self.evict(peer, home_pid, while_running, hand_to, send, recv)
                    .await;
                return Ok(());
            }
            PeerRequest::FetchMapped { home_pid, file } => {
                return self.serve_mapped_file(peer, home_pid, file, send).await;
            }
            PeerRequest::MoveOff { home_pid, to } => self.move_off_for(peer, home_pid, to).await,
            PeerRequest::AttachChild {
                home_pid,
                parent_home_pid,
            } => {
                // Its parent runs here: a drained node takes it too, to
                // move it off with the rest.
                let _arrival = self.admit(peer, home_pid, true);
                let _counted = GuestOnConnection::new(&self.guests_on, conn);
                let host = self.host.clone();
                let peer = peer.to_owned();
                return relay_guest(send, recv, move |to_home, from_home| async move {
                    host.attach_child(&peer, home_pid, parent_home_pid, to_home, from_home)
                        .await
                })
                .await;
            }
        };
        write_message(&mut send, &response).await?;
        let _ = send.finish();
        Ok(())
    }

    fn peer_table(&self) -> Vec<PeerInfo> {
        self.config
            .peers
            .iter()
            .map(|peer| {
                let entry = self.peers.get(&peer.name);
                let (state, rtt, last_error, drained) = match entry.as_deref() {
                    Some(entry) => {
                        let connected = entry.state == PeerState::Connected;
                        (
                            entry.state,
                            entry.rtt.filter(|_| connected),
                            entry.last_error.clone(),
                            entry.drained && connected,
                        )
                    }
                    None => (PeerState::Connecting, None, None, false),
                };
                PeerInfo {
                    name: peer.name.clone(),
                    address: peer.address.to_string(),
                    state,
                    rtt_micros: rtt.map(|rtt| rtt.as_micros() as u64),
                    last_error,
                    drained,
                }
            })
            .collect()
    }

    async fn serve_control(self: Arc<Self>, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let node = self.clone();
                    tokio::spawn(async move {
                        if let Err(error) = node.serve_control_client(stream).await {
                            debug!("control client: {error}");
                        }
                    });
                }
                Err(error) => {
                    warn!("control socket accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn serve_control_client(&self, mut stream: UnixStream) -> Result<(), WireError> {
        // Who is asking comes from the kernel, never from the request.
        let cred = stream.peer_cred()?;
        while let Some(body) = read_frame(&mut stream).await? {
            let response = match homing_proto::decode::<ControlRequest>(&body) {
                Ok(ControlRequest::Run { node, start }) => {
                    return self.run_away(stream, cred, &node, start).await;
                }
                Ok(ControlRequest::Adopt { parent_pid }) => {
                    return self.adopt(stream, cred, parent_pid).await;
                }
                Ok(ControlRequest::Migrate { pid, node }) => {
                    return self.migrate(stream, cred, pid, node).await;
                }
                Ok(ControlRequest::Resume) => return self.resume(stream, cred).await,
                Ok(ControlRequest::Drain { to }) => return self.drain(stream, cred, to).await,
                Ok(ControlRequest::Undrain) => return self.undrain(stream, cred).await,
                Ok(ControlRequest::Ps) => ControlResponse::Processes {
                    node: self.config.name.clone(),
                    processes: self
                        .away
                        .iter()
                        .filter(|p| cred.uid() == 0 || p.uid == cred.uid())
                        .map(|p| p.clone())
                        .collect(),
                },
                Ok(ControlRequest::Guests) => ControlResponse::Processes {
                    node: self.config.name.clone(),
                    processes: self
                        .host
                        .guests()
                        .into_iter()
                        .filter(|p| cred.uid() == 0 || p.uid == cred.uid())
                        .collect(),
                },
                Ok(ControlRequest::Nodes) => ControlResponse::Nodes {
                    node: self.config.name.clone(),
                    drained: self.cordon.is_closed(),
                    peers: self.peer_table(),
                },
                Ok(ControlRequest::WhoAmI) => ControlResponse::WhoAmI {
                    node: self.config.name.clone(),
                    uid: cred.uid(),
                    gid: cred.gid(),
                    pid: cred.pid().unwrap_or(-1),
                },
                Err(error) => ControlResponse::Error {
                    message: format!("malformed request: {error}"),
                },
            };
            write_message(&mut stream, &response).await?;
        }
        Ok(())
    }
}

impl Node {
    /// Sends `request` to `node` on a stream of its own and reads the
    /// answer: that and the stream, on which more may follow; or why
    /// there is none (a [`PeerResponse::Error`]'s message included).
    pub(super) async fn ask_peer(
        &self,
        node: &str,
        request: &PeerRequest,
    ) -> Result<(PeerResponse, RecvStream), String> {
        let unreachable = |error: &dyn std::fmt::Display| format!("cannot ask {node}: {error}");
        let conn = self.connection_to(node)?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| unreachable(&e))?;
        write_message(&mut send, request)
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = send.finish();
        match read_message::<PeerResponse, _>(&mut recv).await {
            Ok(PeerResponse::Error { message }) => Err(message),
            Ok(answer) => Ok((answer, recv)),
            Err(error) => Err(format!("{node} did not answer: {error}")),
        }
    }

    /// Sends the caller's program to `node` and relays between the caller
    /// (its deputy) and the host until the program ends.
    async fn run_away(
        &self,
        mut deputy: UnixStream,
        cred: tokio::net::unix::UCred,
        node: &str,
        spec: RunSpec,
    ) -> Result<(), WireError> {
        let pid = cred.pid().unwrap_or(0);
        let conn = match self.connection_to_start(node).await {
            Ok(conn) => conn,
            Err(message) => {
                return write_message(&mut deputy, &ControlResponse::Error { message }).await;
            }
        };
        let limits = match homing_shim::process::limits(pid) {
            Ok(limits) => limits,
            Err(error) => {
                let message = format!("cannot read the resource limits of process {pid}: {error}");
                return write_message(&mut deputy, &ControlResponse::Error { message }).await;
            }
        };
        let start = GuestStart {
            home_node: self.config.name.clone(),
            home_pid: pid,
            uid: cred.uid(),
            gid: cred.gid(),
            groups: supplementary_groups(pid),
            exe: ByteBuf::from(spec.exe),
            argv: spec.argv.iter().cloned().map(ByteBuf::from).collect(),
            envp: spec.envp.into_iter().map(ByteBuf::from).collect(),
            limits,
            // Not SIGPIPE: the Rust runtime ignores it in every deputy.
            ignored_signals: homing_shim::process::signals(pid).map_or(0, |signals| {
                signals.ignored & !homing_shim::process::signal_bit(libc::SIGPIPE)
            }),
            nice: homing_shim::process::nice(pid).unwrap_or(0),
            scheduling: homing_shim::process::scheduling_to_carry(pid),
            home_clocks: Some(clocks_now()),
            no_new_privs: homing_shim::process::no_new_privs(pid),
        };
        let command = AwayProcess::command_line(&spec.argv);
        self.send_away(
            deputy,
            cred,
            node,
            conn,
            PeerRequest::StartGuest(start),
            command,
        )
        .await
    }

    /// A deputy forked at home (its program forked on `node`): attaches it
    /// to the child there.
    async fn adopt(
        &self,
        mut deputy: UnixStream,
        cred: tokio::net::unix::UCred,
        parent_pid: i32,
    ) -> Result<(), WireError> {
        let pid = cred.pid().unwrap_or(0);
        // Only a real child of an away process of the same user may attach:
        // one that process's deputy forked, seen as its fork's answer went
        // by, or (the answer not seen yet) a child of it still.
        let forked = self
            .forked
            .remove(&pid)
            .map(|(_, (parent, _))| parent)
            .filter(|parent| parent.pid == parent_pid);
        let is_child = || homing_shim::process::status_number(pid, "PPid:") == Some(parent_pid);
        let parent = forked.or_else(|| {
            let parent = self.away.get(&parent_pid).map(|p| p.clone());
            parent.filter(|_| is_child())
        });
        let (node, command) = match parent {
            Some(parent) if parent.uid == cred.uid() => (parent.node, parent.command),
            _ => {
                let message =
                    format!("process {pid} is not a forked child of an away process {parent_pid}");
                warn!(pid, parent_pid, "refused a deputy's adoption: {message}");
                return write_message(&mut deputy, &ControlResponse::Error { message }).await;
            }
        };
        let conn = match self.connection_to(&node) {
            Ok(conn) => conn,
            Err(message) => {
                return write_message(&mut deputy, &ControlResponse::Error { message }).await;
            }
        };
        let request = PeerRequest::AttachChild {
            home_pid: pid,
            parent_home_pid: parent_pid,
        };
        self.send_away(deputy, cred, &node, conn, request, command)
            .await
    }

    /// Opens the program's stream to `node` with `request`, then relays
    /// between the deputy and the host until the program ends.
    async fn send_away(
        &self,
        mut deputy: UnixStream,
        cred: tokio::net::unix::UCred,
        node: &str,
        conn: Connection,
        request: PeerRequest,
        command: String,
    ) -> Result<(), WireError> {
        let opened = async {
            let (mut send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            write_message(&mut send, &request)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((send, recv))
        }
        .await;
        let streams = match opened {
            Ok(streams) => streams,
            Err(error) => {
                let message = format!("cannot reach {node}: {error}");
                return write_message(&mut deputy, &ControlResponse::Error { message }).await;
            }
        };
        // A program that starts may start again on a fresh connection if
        // its own turns out to have been to an agent that is no more (see
        // `Node::start_again`); a forked child's connection carries its
        // parent, which would have been lost with it.
        let start_again = matches!(request, PeerRequest::StartGuest(_)).then_some(request);
        self.relay(deputy, cred, node, conn, streams, command, start_again)
            .await
    }

    /// A fresh stream to `node`, on a connection other than `stale`, with
    /// `request` sent on it: for a program whose start went to an agent
    /// that had died (its node answered with a stateless reset, so nothing
    /// sent reached it). The node's agent, restarted, dials this one, or
    /// this one dials it again.
    async fn start_again(
        &self,
        node: &str,
        stale: &Connection,
        request: &PeerRequest,
    ) -> Option<(Connection, SendStream, RecvStream)> {
        let deadline = tokio::time::Instant::now() + START_AGAIN_WITHIN;
        let fresh = self
            .connection_by(node, deadline, |conn| conn.stable_id() != stale.stable_id())
            .await
            .ok()?;
        let (mut send, recv) = fresh.open_bi().await.ok()?;
        send_message(&mut send, request).await.ok()?;
        Some((fresh, send, recv))
    }

    /// Relays between a deputy and its program's stream to `node` until
    /// the program ends. A migration of the program steers the relay with
    /// [`RelayCommand`]s: hold the old host's stream, switch to a new host's,
    /// or hand the streams back.
    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &self,
        mut deputy: UnixStream,
        cred: tokio::net::unix::UCred,
        node: &str,
        conn: Connection,
        (send, mut recv): (SendStream, RecvStream),
        command: String,
        mut start_again: Option<PeerRequest>,
    ) -> Result<(), WireError> {
        let pid = cred.pid().unwrap_or(0);
        let mut node = node.to_owned();
        let mut conn = conn;
        let mut counted = GuestOnConnection::new(&self.guests_on, &conn);
        write_message(&mut deputy, &ControlResponse::Running).await?;
        info!(pid, uid = cred.uid(), node, %command, "process sent away");
        self.away.insert(
            pid,
            AwayProcess {
                pid,
                command,
                node: node.clone(),
                state: "starting".into(),
                syscalls: 0,
                uid: cred.uid(),
                host_pid: 0,
            },
        );
        let (commands_tx, mut commands) = mpsc::unbounded_channel();
        self.relays.insert(pid, commands_tx);
        let (from_deputy, mut to_deputy) = deputy.into_split();
        // Buffered: answers the deputy wrote together are taken in one
        // receive, not two for each (its length, then its body).
        let mut from_deputy = tokio::io::BufReader::with_capacity(64 << 10, from_deputy);
        // Everything for the host goes through one writer, which holds
        // and lets go in the order of its queue (see `to_host`). This is
        // the relay's own: it reads nothing from a held host.
        let mut host_held = false;
        let (to_host, outbox) = mpsc::unbounded_channel::<Outgoing<SendStream>>();
        let writer = tokio::spawn(to_host::write(send, outbox));
        // Deputy to host: signals and syscall results. The deputy's end
        // (it died at home, SIGKILL) ends the program too.
        // Set once the program comes home: the deputy's end is then its
        // making way, not its death.
        let returning = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let changes = Arc::new(Changes::default());
        // The host's requests that the deputy fork, under way, by id.
        let forks: Arc<DashMap<u64, ()>> = Arc::default();
        let mut upstream = {
            let to_host = to_host.clone();
            let returning = returning.clone();
            let changes = changes.clone();
            let (forks, away, forked) = (forks.clone(), self.away.clone(), self.forked.clone());
            tokio::spawn(async move {
                while let Ok(Some(frame)) = read_whole_frame(&mut from_deputy).await {
                    let body = &frame[homing_proto::frame::HEADER_LEN..];
                    match ToHost::answered_id(body) {
                        Ok(Some(id)) => {
                            changes.answered(id);
                            if forks.remove(&id).is_some() {
                                note_forked(body, away.get(&pid).as_deref(), &forked);
                            }
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                    if to_host.send(Outgoing::Frame(frame)).is_err() {
                        return;
                    }
                }
                if returning.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let kill = ToHost::Signal {
                    signal: libc::SIGKILL,
                    sender: None,
                };
                if let Ok(frame) = homing_proto::encode(&kill) {
                    let _ = to_host.send(Outgoing::Frame(frame));
                }
            })
        };
        let away = self.away.clone();
        let neighbour = Box::new(move |other: i32| {
            let host = |pid: i32| away.get(&pid).map(|process| process.node.clone());
            host(pid).is_some_and(|here| host(other) == Some(here))
        });
        let mut fast = FastPath::new(pid, changes, neighbour, self.config.open_files_here);
        let mut nice_look = tokio::time::interval(NICE_LOOK);
        nice_look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut give_back: Option<tokio::sync::oneshot::Sender<ReturnedStreams>> = None;
        // Kept across the select's turns: a frame half read when another
        // branch is taken is finished by the next turn.
        let mut frames = FrameReader::default();
        // Messages for the deputy that came together wait here until no
        // other has come: written one by one, each woke the deputy, which
        // on a busy CPU runs at once, before the next is written (a
        // program's close and its next open, sent together, woke it twice).
        let mut for_deputy = ForDeputy::default();
        // Host to deputy: syscalls and the program's end.
        let outcome: Result<(), String> = loop {
            // In this order: the move's commands, rare, before the
            // program's calls, and those before writing to the deputy.
            let frame = tokio::select! {
                biased;
                command = commands.recv() => {
                    match command {
                        Some(RelayCommand::Hold) => {
                            host_held = true;
                            hold(&to_host);
                        }
                        Some(RelayCommand::Switch { node: new_node, conn: new_conn, send: new_send, recv: new_recv, signals }) => {
                            info!(pid, from = node, to = new_node, "the away process moved on");
                            node = new_node;
                            conn = new_conn;
                            counted = GuestOnConnection::new(&self.guests_on, &conn);
                            recv = new_recv;
                            if frames.inside_a_frame() {
                                warn!(pid, "the old host's stream was left inside a frame, whose rest is dropped");
                            }
                            frames = FrameReader::default();
                            host_held = false;
                            let _ = to_host.send(Outgoing::Switch(new_send));
                            if let Ok(go) = homing_proto::encode(&ToHost::Go) {
                                let _ = to_host.send(Outgoing::Frame(go));
                            }
                            // Then the signals sent while it moved: those
                            // the old host held, then those held here.
                            for HeldSignal { signal, sender } in signals {
                                if let Ok(frame) = homing_proto::encode(&ToHost::Signal { signal, sender }) {
                                    let _ = to_host.send(Outgoing::Frame(frame));
                                }
                            }
                            let _ = to_host.send(Outgoing::Release);
                            if let Some(mut entry) = self.away.get_mut(&pid) {
                                entry.node = node.clone();
                                entry.state = "moving".into();
                            }
                        }
                        Some(RelayCommand::Return(reply)) => {
                            if frames.inside_a_frame() {
                                warn!(pid, "the stream goes back to the move inside a frame");
                            }
                            returning.store(true, std::sync::atomic::Ordering::SeqCst);
                            hold(&to_host);
                            // Files opened for the program go to it first.
                            if let Some(opened) = fast.as_mut().and_then(|fast| fast.take_opened_here()) {
                                give_files(&mut for_deputy, opened);
                            }
                            let _ = for_deputy.write_to(&mut to_deputy).await;
                            let _ = write_message(&mut to_deputy, &ToHome::Return).await;
                            give_back = Some(reply);
                            break Ok(());
                        }
                        None => {}
                    }
                    continue;
                }
                frame = frames.next(&mut recv), if !host_held => {
                    // The program's next call follows this one's answer closely.
                    spin::keep_hot();
                    frame
                }
                // Files opened for the program, held long enough that
                // the deputy's table should show them.
                // Written at once, so that what waits for the deputy never
                // holds more files than one batch.
                () = sleep_until_due(fast.as_ref().and_then(FastPath::opened_here_due)) => {
                    if let Some(opened) = fast.as_mut().and_then(|fast| fast.take_opened_here()) {
                        give_files(&mut for_deputy, opened);
                        if for_deputy.write_to(&mut to_deputy).await.is_err() {
                            break Ok(());
                        }
                    }
                    continue;
                }
                _ = nice_look.tick() => {
                    // Held while the program moves, sent once it is there.
                    let reniced = fast.as_mut().and_then(|fast| fast.reniced());
                    if let Some(frame) = reniced.and_then(|nice| homing_proto::encode(&ToHost::Nice { nice }).ok()) {
                        let _ = to_host.send(Outgoing::Frame(frame));
                    }
                    continue;
                }
                // Nothing else has come: what came goes to the deputy.
                () = std::future::ready(()), if !for_deputy.is_empty() => {
                    if for_deputy.write_to(&mut to_deputy).await.is_err() {
                        break Ok(());
                    }
                    continue;
                }
            };
            let mut msg = match frame {
                Ok(Some((body, bytes))) => match decode_bulk::<ToHome>(&body, bytes) {
                    Ok(msg) => {
                        // The host has the program: a start is not made twice.
                        start_again = None;
                        msg
                    }
                    Err(error) => break Err(format!("{node} sent a malformed frame: {error}")),
                },
                Ok(None) => break Err(format!("{node} ended the program's stream")),
                Err(_)
                    if start_again.is_some()
                        && matches!(conn.close_reason(), Some(quinn::ConnectionError::Reset)) =>
                {
                    let request = start_again.take().expect("looked at just now");
                    let Some((new_conn, new_send, new_recv)) =
                        self.start_again(&node, &conn, &request).await
                    else {
                        break Err(format!(
                            "lost {node} (its agent restarted; no new connection came)"
                        ));
                    };
                    info!(
                        pid,
                        node,
                        "the host's agent had restarted: the program starts on a new connection"
                    );
                    conn = new_conn;
                    counted = GuestOnConnection::new(&self.guests_on, &conn);
                    recv = new_recv;
                    frames = FrameReader::default();
                    let _ = to_host.send(Outgoing::Switch(new_send));
                    continue;
                }
                Err(_) => {
                    let why = match conn.close_reason() {
                        Some(quinn::ConnectionError::LocallyClosed) | None => self
                            .peers
                            .get(&node)
                            .and_then(|e| e.last_error.clone())
                            .unwrap_or_else(|| "connection closed".into()),
                        Some(other) => other.to_string(),
                    };
                    break Err(format!("lost {node} ({why})"));
                }
            };
            if matches!(msg, ToHome::Return | ToHome::TakeFiles { .. }) {
                // Home's own word to its deputy: a host has no say in it.
                warn!(
                    pid,
                    node, "a host sent what only home's agent may tell a deputy; dropped"
                );
                continue;
            }
            if let Some(mut entry) = self.away.get_mut(&pid) {
                match &msg {
                    ToHome::Syscall { ahead: false, .. } => entry.syscalls += 1,
                    ToHome::Syscall { .. } => {}
                    ToHome::Started { host_pid } => {
                        entry.state = "running".into();
                        entry.host_pid = *host_pid;
                    }
                    ToHome::Exited { .. }
                    | ToHome::Cancel { .. }
                    | ToHome::CaughtUp
                    | ToHome::FilesMapped { .. }
                    | ToHome::Ready
                    | ToHome::Return
                    | ToHome::TakeFiles { .. } => {}
                }
            }
            if let ToHome::Syscall {
                id, call, ahead, ..
            } = &mut msg
            {
                let answered = fast
                    .as_mut()
                    .and_then(|fast| fast.try_execute(call, *ahead));
                // Asked ahead of the program, a call this agent cannot
                // answer is not answered: the deputy's next call may be
                // the program's own, which must not wait behind it.
                let answered = answered.or_else(|| ahead.then(not_answered_ahead));
                if let Some(result) = answered {
                    let _ = match homing_proto::frame::encode_bulk(ToHost::Result {
                        id: *id,
                        result,
                    }) {
                        Ok((frame, Some(bytes))) => to_host.send(Outgoing::Bulk(frame, bytes)),
                        Ok((frame, None)) => to_host.send(Outgoing::Frame(frame)),
                        Err(_) => continue,
                    };
                    continue;
                }
                if let Some(fast) = fast.as_mut() {
                    // The files opened for the program since its last call
                    // here go first: its table must be whole for the call.
                    if let Some(opened) = fast.take_opened_here() {
                        give_files(&mut for_deputy, opened);
                    }
                    fast.observe(*id, call);
                }
                if call.nr == libc::SYS_fork as u64 {
                    forks.insert(*id, ());
                }
            }
            let Ok(frame) = homing_proto::encode(&msg) else {
                break Ok(());
            };
            for_deputy.push(&frame);
            if matches!(msg, ToHome::Exited { .. }) {
                break Ok(());
            }
        };
        // What the deputy was sent last still goes (a close, before the
        // program's end below).
        if !for_deputy.is_empty() {
            let _ = for_deputy.write_to(&mut to_deputy).await;
        }
        drop(counted);
        self.relays.remove(&pid);
        if let Some(reply) = give_back {
            // The program comes home: the deputy closes its connection to
            // make way, then the streams go to the migration.
            let made_way = tokio::time::timeout(DEPUTY_MAKES_WAY, &mut upstream)
                .await
                .is_ok();
            upstream.abort();
            let _ = to_host.send(Outgoing::GiveBack);
            drop(to_host);
            if let Ok(Some((send, held))) = writer.await {
                let held = held.iter().filter_map(|frame| signal_in(frame)).collect();
                let _ = reply.send((send, recv, made_way, held));
            }
            return Ok(());
        }
        upstream.abort();
        drop(to_host);
        let _ = writer.await;
        self.away.remove(&pid);
        self.close_on_exec.remove(&pid);
        if let Err(reason) = outcome {
            warn!(pid, node, "away process lost: {reason}");
            let exited = ToHome::Exited {
                status: GuestExit::Signal(libc::SIGKILL),
                reason: Some(format!("{reason}; the program is gone")),
            };
            let _ = write_message(&mut to_deputy, &exited).await;
        }
        Ok(())
    }

    /// The live connection to `node` for a program to start on, or why
    /// there is none. A connection that ended moments ago (its agent
    /// restarting, most often) is waited for, as a start sent on it would
    /// be started again (see [`Self::start_again`]).
    async fn connection_to_start(&self, node: &str) -> Result<Connection, String> {
        let lost_at = self.peers.get(node).and_then(|entry| entry.lost_at);
        let deadline = lost_at.map_or_else(tokio::time::Instant::now, |at| at + START_AGAIN_WITHIN);
        self.connection_by(node, deadline, |_| true).await
    }

    /// A live connection to `node` that `wanted` takes, looked for every
    /// 5 ms until `deadline`; else why there is none.
    async fn connection_by(
        &self,
        node: &str,
        deadline: tokio::time::Instant,
        wanted: impl Fn(&Connection) -> bool,
    ) -> Result<Connection, String> {
        loop {
            let error = match self.connection_to(node) {
                Ok(conn) if wanted(&conn) => return Ok(conn),
                Ok(_) => format!("node {node} has no connection but the one that failed"),
                Err(error) => error,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The live connection to `node`, or why there is none.
    fn connection_to(&self, node: &str) -> Result<Connection, String> {
        let Some(entry) = self.peers.get(node) else {
            return Err(format!("no node named {node:?} in this cluster"));
        };
        match &entry.connection {
            Some(conn) if entry.state == PeerState::Connected => Ok(conn.clone()),
            _ => Err(format!(
                "node {node} is {}{}",
                entry.state,
                entry
                    .last_error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
        }
    }
}

/// Sleeps until `due`, or for good if there is nothing due.
async fn sleep_until_due(due: Option<std::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await,
        None => std::future::pending().await,
    }
}

/// Adds to what goes to a deputy the files opened for its program, and
/// the message that tells it where each goes.
fn give_files(for_deputy: &mut ForDeputy, opened: FilesForDeputy) {
    let take = ToHome::TakeFiles {
        files: opened.numbers,
    };
    match homing_proto::encode(&take) {
        Ok(frame) => {
            for_deputy.give(opened.files);
            for_deputy.push(&frame);
        }
        // Cannot be: a list of numbers always encodes.
        Err(error) => warn!("files opened for a program could not be given it: {error}"),
    }
}

/// Notes the deputy a fork's answer (`body`, a `ToHost::Result`) names
/// as forked by `parent`, for its adoption (see `Node::forked`). Deputies
/// forked more than a minute ago that never called in are forgotten.
fn note_forked(
    body: &[u8],
    parent: Option<&AwayProcess>,
    forked: &DashMap<i32, (AwayProcess, std::time::Instant)>,
) {
    let (Some(parent), Ok(ToHost::Result { result, .. })) =
        (parent, homing_proto::decode::<ToHost>(body))
    else {
        return;
    };
    let Ok(child) = i32::try_from(result.ret) else {
        return;
    };
    if child <= 0 {
        return;
    }
    let now = std::time::Instant::now();
    if let Some(stale) = now.checked_sub(Duration::from_secs(60)) {
        forked.retain(|_, (_, at)| *at > stale);
    }
    forked.insert(child, (parent.clone(), now));
}

/// Hosts a guest, relaying its frames between the stream and the host role.
/// Refuses a guest on the stream home opened for it: its first word says
/// it is gone (with `status`) and why.
async fn refuse(mut send: SendStream, status: GuestExit, reason: String) -> Result<(), WireError> {
    let refused = ToHome::Exited {
        status,
        reason: Some(reason),
    };
    write_message(&mut send, &refused).await?;
    let _ = send.finish();
    Ok(())
}

async fn relay_guest<F, Fut>(
    mut send: SendStream,
    mut recv: RecvStream,
    run: F,
) -> Result<(), WireError>
where
    F: FnOnce(mpsc::UnboundedSender<ToHome>, mpsc::UnboundedReceiver<ToHost>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (to_home, mut outbox) = mpsc::unbounded_channel::<ToHome>();
    let (inbox, from_home) = mpsc::unbounded_channel::<ToHost>();
    let guest = tokio::spawn(run(to_home, from_home));
    let writer = tokio::spawn(async move {
        while let Some(msg) = outbox.recv().await {
            // Its answer comes one round trip later.
            spin::keep_hot();
            let last = matches!(msg, ToHome::Exited { .. });
            if send_bulk_message(&mut send, msg).await.is_err() {
                break;
            }
            if last {
                let _ = send.finish();
                break;
            }
        }
    });
    let result = loop {
        match read_bulk_frame(&mut recv).await {
            Ok(Some((body, bytes))) => match decode_bulk::<ToHost>(&body, bytes) {
                Ok(msg) => {
                    // The program's next call follows this answer closely.
                    spin::keep_hot();
                    if inbox.send(msg).is_err() {
                        break Ok(());
                    }
                }
                Err(error) => break Err(error.into()),
            },
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    // Closing the inbox tells the guest its home is gone (unless it already ended).
    drop(inbox);
    let _ = guest.await;
    let _ = writer.await;
    result
}

/// The supplementary groups of process `pid`, from /proc.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    homing_shim::process::status_field(pid, "Groups:")
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn bind_control_socket(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating control socket dir {}", dir.display()))?;
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => anyhow::bail!(
            "another agent is already serving {}; stop it first",
            path.display()
        ),
        Err(_) => {
            let _ = std::fs::remove_file(path);
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    // Every local user may ask; each request is judged by the caller's credentials.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("setting permissions on {}", path.display()))?;
    Ok(listener)
}

/// This node's monotonic and boot clocks now, for a host to show its
/// guests (see [`homing_shim::time_namespace`]).
pub(crate) fn clocks_now() -> Clocks {
    Clocks {
        monotonic_ns: time_namespace::now_ns(libc::CLOCK_MONOTONIC),
        boottime_ns: time_namespace::now_ns(libc::CLOCK_BOOTTIME),
    }
}
