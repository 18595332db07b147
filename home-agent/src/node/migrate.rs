//! `homing migrate`: moving a running home process to another node, where
//! it goes on while the process at home becomes its deputy.
//!
//! The order makes the move atomic. The process's memory is sent while it
//! runs, then it is frozen and the rest of its image follows; the
//! destination restores it into a blank guest and says it is ready. Only
//! then is the copy there let go, and the process here execs itself into
//! its deputy (its pid, parent, fds, cwd and credentials untouched). Until
//! the deputy calls in, the copy's calls home wait, so nothing it does
//! shows: should the exec fail, the copy is dropped with its stream and
//! the process goes on here. Anything that fails before the go lets the
//! process go on here too; the destination drops its copy when the
//! stream ends without a go.

use std::ffi::CString;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use homing_proto::control::{AwayProcess, ControlResponse};
use homing_proto::guest::{GuestExit, HeldSignal, ToHome, ToHost};
use homing_proto::image::{FinalImage, MappedFile};
use homing_proto::peer::{
    Eviction, Handing, Handoff, Immigrant, PeerRequest, PeerResponse, Verdict,
};
use homing_remote_agent::migration::{
    read_image_item, write_image_item, Afterwards, Departure, ImageItem, ImageOut, Pacing,
    Restoration, Source,
};
use homing_remote_agent::move_priority::MovePriority;
use homing_shim::restore::LocalFiles;
use quinn::{Connection, RecvStream, SendStream};
use serde::Serialize;
use tokio::io::AsyncWrite;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::{relay_guest, supplementary_groups, Node, RelayCommand, HELD_MARK_WAIT};
use crate::wire::{read_message, write_message, WireError};

/// How long the destination may take to restore a received image.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process that became its own deputy may take to call in.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest answer to a commit: the freeze's length, the pacing and the
/// signals held (a frame of up to 4096, each with its sender).
const COMMIT_ANSWER_MAX: usize = 8 + 12 + 4 + 48 * 4096;
/// How often a client hears how far its migration is.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A moved process whose deputy has not called in yet.
pub(super) struct PendingResume {
    node: String,
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    command: String,
}

impl Node {
    /// Moves `pid` to `node` for the client on `client`.
    pub(super) async fn migrate(
        &self,
        mut client: UnixStream,
        cred: tokio::net::unix::UCred,
        pid: i32,
        node: String,
    ) -> Result<(), WireError> {
        let started = Instant::now();
        let outcome = self
            .migrate_from_home(&mut client, cred.uid(), pid, &node, started)
            .await;
        let response = match outcome {
            Ok(done) => done,
            Err(message) => {
                warn!(pid, node, "migration failed: {message}");
                ControlResponse::Error { message }
            }
        };
        write_message(&mut client, &response).await
    }

    async fn migrate_from_home(
        &self,
        client: &mut UnixStream,
        caller: u32,
        pid: i32,
        node: &str,
        started: Instant,
    ) -> Result<ControlResponse, String> {
        let away = self.away.get(&pid).map(|entry| entry.clone());
        if let Some(away) = away {
            return self.migrate_away(client, caller, away, node, started).await;
        }
        let owner = homing_shim::process::status_field(pid, "Uid:")
            .and_then(|uids| uids.split_whitespace().next()?.parse::<u32>().ok())
            .ok_or_else(|| format!("no process {pid} on {}", self.config.name))?;
        if caller != 0 && caller != owner {
            return Err(format!(
                "process {pid} is not yours (it belongs to uid {owner})"
            ));
        }
        if node == self.config.name || node == "home" {
            return Err(format!(
                "process {pid} is already at home on {}",
                self.config.name
            ));
        }
        if pid == std::process::id() as i32 {
            return Err("the homing agent cannot move itself".into());
        }
        if is_homing_process(pid) {
            return Err(format!(
                "process {pid} is a homing process (a deputy, or the agent), not a program to move"
            ));
        }
        let conn = self.connection_to(node)?;
        let _moving = self.note_moving(pid, node);
        let gid = homing_shim::process::status_field(pid, "Gid:")
            .and_then(|gids| gids.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap_or(owner);
        let command = command_line(pid);

        let mut source = Source::track(pid, None)
            .await
            .map_err(|error| not_moved(&format!("move process {pid} to {node}"), &error, "here"))?;
        info!(pid, node, "moving a process");
        let signalfds = homing_shim::process::signalfds_of(pid);
        let immigrant = Immigrant {
            home_node: self.config.name.clone(),
            home_pid: pid,
            uid: owner,
            gid,
            groups: supplementary_groups(pid),
            command: command.clone(),
            exe: serde_bytes::ByteBuf::from(self.program_path(pid)),
            image: source.layout.clone(),
            next_call_id: 0,
            home_clocks: Some(super::clocks_now()),
            signalfd_signals: homing_shim::process::signals_asked_by(&signalfds),
            epoll_signalfds: homing_shim::process::epoll_registrations_of(pid, &signalfds),
            signalfds,
            no_new_privs: homing_shim::process::no_new_privs(pid),
        };
        let transfer = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            write_message(&mut send, &PeerRequest::Immigrate(Box::new(immigrant)))
                .await
                .map_err(|e| e.to_string())?;
            let total = source.estimate;
            let progress = |sent| ControlResponse::Progress { sent, total };
            let streams = (&mut send, &mut recv);
            let bytes = self
                .send_image(client, node, &mut source, streams, progress)
                .await?;
            debug!(pid, frozen = ?source.frozen_for(), "image sent");
            self.until_ready(node, &mut recv).await?;
            debug!(pid, frozen = ?source.frozen_for(), "restored there");
            Ok::<_, String>((send, recv, bytes))
        }
        .await;
        let (mut send, recv, bytes) = match transfer {
            Ok(streams) => streams,
            Err(error) => {
                let _ = source.finish(Afterwards::Thaw).await;
                return Err(not_moved(
                    &format!("move process {pid} to {node}"),
                    &error,
                    "here",
                ));
            }
        };
        let frozen_since = source.frozen_at.unwrap_or_else(Instant::now);
        let (program, argv) = self.deputy_command(pid)?;
        // The copy there may run before the process here has become its
        // deputy: until the deputy calls in, the copy's calls home wait,
        // so nothing it does shows, and the old memory is freed (by the
        // exec) while it runs. Should the exec fail, the copy is dropped
        // with its stream, and the process goes on here.
        if let Err(error) = write_message(&mut send, &ToHost::Go).await {
            let _ = source.finish(Afterwards::Thaw).await;
            return Err(format!(
                "cannot move process {pid} to {node}: the go was not sent ({error}); it goes on here"
            ));
        }
        let frozen = frozen_since.elapsed();
        let pacing = source.pacing;
        self.resuming.insert(
            pid,
            PendingResume {
                node: node.to_owned(),
                conn,
                send,
                recv,
                command,
            },
        );
        self.resumed.notify_waiters();
        let become_deputy = Afterwards::BecomeDeputy { program, argv };
        match source.finish(become_deputy).await {
            Ok(unmarked) => {
                self.close_on_exec.insert(pid, unmarked);
            }
            Err(error) => {
                self.resuming.remove(&pid);
                return Err(format!(
                    "cannot move process {pid}: it could not become its own deputy ({error}); it goes on here"
                ));
            }
        }
        // Done once its deputy serves it: a move right after this one must
        // find it away, not take the deputy for the program.
        let deadline = Instant::now() + RESUME_TIMEOUT;
        while !self.relays.contains_key(&pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        info!(pid, node, bytes, ?frozen, "process moved");
        Ok(ControlResponse::Migrated {
            node: node.to_owned(),
            bytes,
            total_micros: started.elapsed().as_micros() as u64,
            frozen_micros: frozen.as_micros() as u64,
            pauses: pacing.pauses,
            longest_pause_micros: pacing.longest.as_micros() as u64,
        })
    }

    /// Sends a process's image to `node` on `send`: its memory while it
    /// runs, then, once `node` has caught up (on `recv`), the rest, frozen;
    /// tells `out` how far it got (the `progress` made of the bytes sent).
    /// Returns the bytes of memory sent.
    async fn send_image<M: Serialize, W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
        node: &str,
        moving: &mut impl Freezes,
        (send, recv): (&mut SendStream, &mut RecvStream),
        progress: impl Fn(u64) -> M,
    ) -> Result<u64, String> {
        // Its first word: where it maps the files the process mapped.
        let first = self.while_connected(node, READY_TIMEOUT, read_message::<ToHome, _>(recv));
        match first.await? {
            Ok(ToHome::FilesMapped { ranges }) => moving.source().mapped_there(ranges),
            Ok(ToHome::Exited { reason, .. }) => {
                return Err(reason.unwrap_or_else(|| format!("{node} refused the process")))
            }
            Ok(other) => return Err(format!("{node} answered {other:?} first")),
            Err(error) => return Err(format!("{node} did not prepare it: {error}")),
        }
        let send = &mut ImageStream(send);
        let sent = AtomicU64::new(0);
        let note = |n| sent.store(n, Ordering::Relaxed);
        let sending = moving.source().send_running(send, note);
        let running = self.reporting(out, node, &sent, &progress, sending).await?;
        if running > 0 {
            // Frozen once the destination has caught up, so that little
            // is in flight while it is.
            write_image_item(send, &ImageItem::Sync).await?;
            self.until_answered(node, recv, ToHome::CaughtUp).await?;
        }
        moving.freeze().await?;
        let sending = moving.source().send_frozen(send, running, note);
        self.reporting(out, node, &sent, &progress, sending).await
    }

    /// Runs `sending`, telling `out` every so often how far it got (the
    /// `progress` made of the bytes `sent`); gives up if `node` becomes
    /// unreachable.
    async fn reporting<T, M: Serialize, W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
        node: &str,
        sent: &AtomicU64,
        progress: impl Fn(u64) -> M,
        sending: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::pin!(sending);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        loop {
            tokio::select! {
                outcome = &mut sending => return outcome,
                _ = tick.tick() => {
                    if !self.is_connected(node) {
                        return Err(format!("lost {node} (unreachable)"));
                    }
                    let _ = write_message(out, &progress(sent.load(Ordering::Relaxed))).await;
                }
            }
        }
    }

    /// What a process execs to become its own deputy.
    /// The canonical path of the program process `pid` at home runs:
    /// its `/proc/PID/exe`, unless that names the homing binary (it came
    /// home), for which the path it had away is remembered.
    fn program_path(&self, pid: i32) -> Vec<u8> {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let homing = std::env::current_exe().unwrap_or_default();
        if exe == homing {
            return self
                .came_home_exe
                .get(&pid)
                .map(|e| e.clone())
                .unwrap_or_default();
        }
        exe.into_os_string().into_encoded_bytes()
    }

    /// What process `pid` execs to become its program's deputy: `homing
    /// resume`, told the program's name and command line (read now, while
    /// the process still shows its program's) to show them at home.
    fn deputy_command(&self, pid: i32) -> Result<(CString, Vec<CString>), String> {
        let socket = CString::new(self.config.control_socket.as_os_str().as_encoded_bytes())
            .map_err(|_| "the control socket path has a NUL".to_owned())?;
        let mut argv = vec![
            c"homing".to_owned(),
            c"--socket".to_owned(),
            socket,
            c"resume".to_owned(),
        ];
        if let Some(comm) = process_name(pid) {
            argv.push(c"--comm".to_owned());
            argv.push(comm);
        }
        let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<CString> = command_line
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .filter_map(|a| CString::new(a).ok())
            .collect();
        if !args.is_empty() {
            argv.push(c"--".to_owned());
            argv.extend(args);
        }
        Ok((deputy_program()?, argv))
    }

    /// As home: moves away process `home_pid` off `host`, where it runs,
    /// home or on to node `to`, because the host is being drained and
    /// asks (see [`PeerRequest::MoveOff`]). The move is the one `homing
    /// migrate PID home` (or `TO`) makes.
    pub(super) async fn move_off_for(
        &self,
        host: &str,
        home_pid: i32,
        to: Option<String>,
    ) -> PeerResponse {
        let here = &self.config.name;
        let refuse = |message: String| PeerResponse::Error { message };
        let Some(away) = self.away.get(&home_pid).map(|entry| entry.clone()) else {
            return refuse(format!("process {home_pid} of {here} does not run away"));
        };
        if away.node != host {
            let runs_on = &away.node;
            return refuse(format!(
                "process {home_pid} of {here} runs on {runs_on}, not on {host}"
            ));
        }
        let to = to.unwrap_or_else(|| "home".into());
        info!(
            pid = home_pid,
            host, to, "moving a process off its draining host"
        );
        // No one follows this move's progress: it goes into a socket whose
        // other end is gone.
        let mut progress = match UnixStream::pair() {
            Ok((progress, _)) => progress,
            Err(error) => return refuse(format!("cannot start the move: {error}")),
        };
        let moved = self
            .migrate_away(&mut progress, 0, away, &to, Instant::now())
            .await;
        match moved {
            Ok(ControlResponse::Migrated {
                node,
                bytes,
                total_micros,
                frozen_micros,
                ..
            }) => PeerResponse::MovedOff {
                summary: format!(
                    "moved to {node}: {:.1} MiB in {:.1} ms, frozen {:.1} ms",
                    bytes as f64 / (1 << 20) as f64,
                    total_micros as f64 / 1000.0,
                    frozen_micros as f64 / 1000.0
                ),
            },
            Ok(other) => refuse(format!("the move ended with {other:?}")),
            Err(message) => {
                warn!(
                    pid = home_pid,
                    host, to, "not moved off its host: {message}"
                );
                refuse(message)
            }
        }
    }

    /// Moves an away process on to `node`, or home.
    async fn migrate_away(
        &self,
        client: &mut UnixStream,
        caller: u32,
        away: AwayProcess,
        node: &str,
        started: Instant,
    ) -> Result<ControlResponse, String> {
        let pid = away.pid;
        if caller != 0 && caller != away.uid {
            return Err(format!(
                "process {pid} is not yours (it belongs to uid {})",
                away.uid
            ));
        }
        let home = node == self.config.name || node == "home";
        if !home && node == away.node {
            return Err(format!("process {pid} already runs on {node}"));
        }
        let relay = self
            .relays
            .get(&pid)
            .map(|r| r.clone())
            .ok_or_else(|| format!("process {pid} is not running yet"))?;
        let from = away.node.clone();
        let from_conn = self.connection_to(&from)?;
        let to_conn = if home {
            None
        } else {
            Some(self.connection_to(node)?)
        };
        let (mut from_send, mut from_recv) = from_conn
            .open_bi()
            .await
            .map_err(|e| format!("cannot reach {from}: {e}"))?;
        // A move on goes from host to host: home hears how far it got.
        let hand_to = to_conn.as_ref().map(|_| Handoff {
            node: node.to_owned(),
            token: self.next_handoff.fetch_add(1, Ordering::Relaxed),
        });
        let _moving = hand_to.as_ref().map(|_| self.note_moving(pid, node));
        let evict = PeerRequest::Evict {
            home_pid: pid,
            while_running: true,
            hand_to: hand_to.clone(),
        };
        write_message(&mut from_send, &evict)
            .await
            .map_err(|e| format!("cannot reach {from}: {e}"))?;
        let eviction = self
            .while_connected(
                &from,
                READY_TIMEOUT,
                read_message::<Eviction, _>(&mut from_recv),
            )
            .await?
            .map_err(|e| format!("{from} did not answer: {e}"))?;
        let immigrant = match eviction {
            Eviction::Image(immigrant) => *immigrant,
            Eviction::Refused { message } => {
                let what = format!("move process {pid} to {node}");
                return Err(not_moved(&what, &message, &format!("on {from}")));
            }
        };
        let estimate = homing_shim::dump::travelling_bytes(&immigrant.image);
        let moved = Moving {
            pid,
            from,
            from_conn,
            from_send,
            from_recv,
            relay,
            immigrant,
            command: away.command,
            estimate,
            frozen_since: None,
            pacing: Pacing::default(),
            started,
        };
        match to_conn.zip(hand_to) {
            Some((to_conn, handoff)) => {
                self.move_on(client, moved, node, to_conn, handoff.token)
                    .await
            }
            None => self.come_home(client, moved).await,
        }
    }

    /// Follows a departing process's image on its way from its old host
    /// straight to its new one, `node`; returns the bytes of memory moved.
    async fn follow_handover(
        &self,
        client: &mut UnixStream,
        moving: &mut Moving,
        node: &str,
    ) -> Result<u64, String> {
        let total = moving.estimate;
        loop {
            let news = read_message::<Handing, _>(&mut moving.from_recv);
            let news = self.while_connected(node, READY_TIMEOUT, news);
            let news = self
                .while_connected(&moving.from, READY_TIMEOUT, news)
                .await??;
            match news.map_err(|e| format!("{} did not say how the move went: {e}", moving.from))? {
                Handing::Progress { sent } => {
                    let _ = write_message(client, &ControlResponse::Progress { sent, total }).await;
                }
                Handing::Delivered { bytes } => return Ok(bytes),
                Handing::Failed { message } => return Err(message),
            }
        }
    }

    /// The next item of the image coming from a departing process's host.
    async fn next_item(&self, moving: &mut Moving) -> Result<ImageItem, String> {
        self.while_connected(
            &moving.from,
            READY_TIMEOUT,
            read_image_item(&mut moving.from_recv),
        )
        .await?
    }

    /// Moves an away process on to `node`: its old host sends the image
    /// there itself (the move's `token` pairs the two), while home tells
    /// the new host what comes and keeps the stream to it for the
    /// process's calls.
    async fn move_on(
        &self,
        client: &mut UnixStream,
        mut moving: Moving,
        node: &str,
        to_conn: Connection,
        token: u64,
    ) -> Result<ControlResponse, String> {
        let pid = moving.pid;
        let transfer = async {
            let (mut to_send, mut to_recv) = to_conn.open_bi().await.map_err(|e| e.to_string())?;
            let mut immigrant = moving.immigrant.clone();
            immigrant.home_clocks = Some(super::clocks_now());
            immigrant.signalfds = homing_shim::process::signalfds_of(pid);
            immigrant.signalfd_signals =
                homing_shim::process::signals_asked_by(&immigrant.signalfds);
            immigrant.epoll_signalfds =
                homing_shim::process::epoll_registrations_of(pid, &immigrant.signalfds);
            let request = PeerRequest::ImmigrateFrom {
                immigrant: Box::new(immigrant),
                handoff: Handoff {
                    node: moving.from.clone(),
                    token,
                },
            };
            write_message(&mut to_send, &request)
                .await
                .map_err(|e| e.to_string())?;
            let bytes = self.follow_handover(client, &mut moving, node).await?;
            self.until_ready(node, &mut to_recv).await?;
            Ok::<_, String>((to_send, to_recv, bytes))
        }
        .await;
        let (to_send, to_recv, bytes) = match transfer {
            Ok(streams) => streams,
            Err(error) => {
                let _ = write_message(&mut moving.from_send, &Verdict::Abort).await;
                return Err(not_moved(
                    &format!("move process {pid} to {node}"),
                    &error,
                    &format!("on {}", moving.from),
                ));
            }
        };
        // From here the old host hears nothing more, then ends its copy.
        let _ = moving.relay.send(RelayCommand::Hold);
        let signals = moving.commit().await;
        let _ = moving.relay.send(RelayCommand::Switch {
            node: node.to_owned(),
            conn: to_conn,
            send: to_send,
            recv: to_recv,
            signals,
        });
        let frozen = moving.frozen();
        info!(
            pid,
            from = moving.from,
            node,
            bytes,
            ?frozen,
            "away process moved on"
        );
        Ok(ControlResponse::Migrated {
            node: node.to_owned(),
            bytes,
            total_micros: moving.started.elapsed().as_micros() as u64,
            frozen_micros: frozen.as_micros() as u64,
            pauses: moving.pacing.pauses,
            longest_pause_micros: moving.pacing.longest.as_micros() as u64,
        })
    }

    /// Brings an away process home, into its own deputy. Room for its
    /// memory is made in the deputy, which serves it meanwhile, and filled
    /// while it runs; once it is frozen there, the deputy makes way and
    /// the program takes the deputy over with the rest of its image.
    async fn come_home(
        &self,
        client: &mut UnixStream,
        mut moving: Moving,
    ) -> Result<ControlResponse, String> {
        let _priority = MovePriority::raise();
        let pid = moving.pid;
        let from = moving.from.clone();
        let layout = moving.immigrant.image.clone();
        // Off the runtime: a file on a network mount may take its time.
        let regions = layout.regions.clone();
        let files = tokio::task::spawn_blocking(move || LocalFiles::find(&regions, home_file))
            .await
            .unwrap_or_default();
        let running = match Restoration::stage(pid, layout, files).await {
            Ok(homecoming) => match self.receive_running(client, &mut moving, &homecoming).await {
                Ok((last, bytes)) => Ok((homecoming, last, bytes)),
                Err(error) => {
                    if let Err(left) = homecoming.unstage().await {
                        warn!(pid, "the room made in the deputy stays: {left}");
                    }
                    Err(error)
                }
            },
            Err(error) => Err(error),
        };
        let (homecoming, last, bytes) = match running {
            Ok(running) => running,
            Err(error) => {
                let _ = write_message(&mut moving.from_send, &Verdict::Abort).await;
                return Err(not_moved(
                    &format!("bring process {pid} home"),
                    &error,
                    &format!("on {from}"),
                ));
            }
        };
        // Which fds the program had marked close-on-exec: those it had when
        // it left, and those it opened (through the deputy) while away.
        let mut close_on_exec = self
            .close_on_exec
            .get(&pid)
            .map(|f| f.clone())
            .unwrap_or_default();
        close_on_exec.extend(marked_close_on_exec(pid));
        // The deputy makes way: it closes its connection, and its relay
        // hands back the old host's stream (closing it would end the
        // program there).
        let (reply, streams) = tokio::sync::oneshot::channel();
        let _ = moving.relay.send(RelayCommand::Return(reply));
        let old_streams = tokio::time::timeout(RESUME_TIMEOUT, streams)
            .await
            .map_err(|_| "the deputy's relay did not answer".to_owned())
            .and_then(|r| r.map_err(|_| "the deputy's relay ended".to_owned()));
        let (send, recv, made_way, relay_held) = match old_streams {
            Ok(streams) => streams,
            Err(error) => {
                let _ = write_message(&mut moving.from_send, &Verdict::Abort).await;
                return Err(format!("cannot bring process {pid} home: {error}"));
            }
        };
        let adopted = if made_way {
            homecoming.adopt().await
        } else {
            Err((
                false,
                format!("process {pid} did not make way for its program"),
            ))
        };
        let restored = match adopted {
            Ok(()) => {
                let received = self
                    .receive_home(client, &mut moving, last, &homecoming, bytes)
                    .await;
                match received {
                    Ok(bytes) => match homecoming.ready(close_on_exec.clone()).await {
                        Ok(()) => Ok((homecoming, bytes)),
                        Err(error) => Err((Some(homecoming), error)),
                    },
                    Err(error) => Err((Some(homecoming), error)),
                }
            }
            Err((true, error)) => Err((Some(homecoming), error)),
            Err((false, error)) => Err((None, error)),
        };
        match restored {
            Ok((homecoming, bytes)) => {
                // The old host's, sent before the relay held, go first;
                // the process queues them itself, after its image's.
                let mut signals = moving.commit().await;
                signals.extend(relay_held);
                let sent_since = signals.iter().map(siginfo_of).collect();
                if let Err(error) = homecoming.go(sent_since).await {
                    signals_come_home(pid, signals);
                    return Err(format!("process {pid} could not run at home: {error}"));
                }
                self.away.remove(&pid);
                self.close_on_exec.remove(&pid);
                if !moving.immigrant.exe.is_empty() {
                    self.came_home_exe
                        .insert(pid, moving.immigrant.exe.to_vec());
                }
                let frozen = moving.frozen();
                info!(pid, from, bytes, ?frozen, "away process came home");
                Ok(ControlResponse::Migrated {
                    node: self.config.name.clone(),
                    bytes,
                    total_micros: moving.started.elapsed().as_micros() as u64,
                    frozen_micros: frozen.as_micros() as u64,
                    pauses: moving.pacing.pauses,
                    longest_pause_micros: moving.pacing.longest.as_micros() as u64,
                })
            }
            Err((homecoming, error)) => {
                // The program goes on where it was; the process at home
                // becomes its deputy again and calls in. The signals held
                // here wait in it for the deputy, which passes them on.
                signals_come_home(pid, relay_held);
                let _ = write_message(&mut moving.from_send, &Verdict::Abort).await;
                let (program, argv) = self.deputy_command(pid)?;
                let again = match homecoming {
                    Some(homecoming) => homecoming.exec_instead(program, argv).await,
                    None => match Source::frozen(pid, None).await {
                        Ok(source) => source
                            .finish(Afterwards::BecomeDeputy { program, argv })
                            .await
                            .map(drop),
                        Err(error) => Err(error),
                    },
                };
                if let Err(again) = again {
                    warn!(
                        pid,
                        "a deputy that made way cannot be a deputy again: {again}"
                    );
                }
                self.resuming.insert(
                    pid,
                    PendingResume {
                        node: from.clone(),
                        conn: moving.from_conn.clone(),
                        send,
                        recv,
                        command: moving.command.clone(),
                    },
                );
                self.resumed.notify_waiters();
                Err(not_moved(
                    &format!("bring process {pid} home"),
                    &error,
                    &format!("on {from}"),
                ))
            }
        }
    }

    /// Writes the pages of a process coming home sent while it runs into
    /// the room made for them, answering the sync mark, until its final
    /// state comes (it is frozen then); returns that and the bytes of
    /// memory received.
    async fn receive_running(
        &self,
        client: &mut UnixStream,
        moving: &mut Moving,
        homecoming: &Restoration,
    ) -> Result<(Box<FinalImage>, u64), String> {
        // The host sends only what the program changed of the files
        // mapped here again.
        let ranges = homecoming.file_mapped().await?;
        write_message(&mut moving.from_send, &Verdict::FilesMapped { ranges })
            .await
            .map_err(|e| format!("cannot reach {}: {e}", moving.from))?;
        let mut bytes = 0u64;
        let mut report = Report::new(moving.estimate);
        loop {
            match self.next_item(moving).await? {
                ImageItem::Final(last) => return Ok((last, bytes)),
                ImageItem::End => {
                    return Err(format!(
                        "{} ended the image before its final state",
                        moving.from
                    ))
                }
                ImageItem::Sync => {
                    homecoming.caught_up().await?;
                    write_message(&mut moving.from_send, &Verdict::CaughtUp)
                        .await
                        .map_err(|e| format!("cannot reach {}: {e}", moving.from))?;
                }
                item => {
                    bytes += item.memory_bytes();
                    homecoming.apply(item).await?;
                }
            }
            report.now_and_then(client, bytes).await;
        }
    }

    /// Restores the final state into the process at home, then its pages
    /// as they arrive; returns the bytes of memory received, counting
    /// `bytes` received before.
    async fn receive_home(
        &self,
        client: &mut UnixStream,
        moving: &mut Moving,
        last: Box<FinalImage>,
        homecoming: &Restoration,
        mut bytes: u64,
    ) -> Result<u64, String> {
        homecoming.apply(ImageItem::Final(last)).await?;
        let mut report = Report::new(moving.estimate);
        loop {
            let item = self.next_item(moving).await?;
            if matches!(item, ImageItem::End) {
                return Ok(bytes);
            }
            bytes += item.memory_bytes();
            homecoming.apply(item).await?;
            report.now_and_then(client, bytes).await;
        }
    }

    /// Waits for `node` to say it has restored the process it was sent.
    async fn until_ready(&self, node: &str, recv: &mut RecvStream) -> Result<(), String> {
        self.until_answered(node, recv, ToHome::Ready).await
    }

    /// Waits for `node` to answer `expected` about the process it is sent.
    async fn until_answered(
        &self,
        node: &str,
        recv: &mut RecvStream,
        expected: ToHome,
    ) -> Result<(), String> {
        let answer = self.while_connected(node, READY_TIMEOUT, read_message::<ToHome, _>(recv));
        match answer.await? {
            Ok(answer) if answer == expected => Ok(()),
            Ok(ToHome::Exited { reason, .. }) => {
                Err(reason.unwrap_or_else(|| format!("{node} refused the process")))
            }
            Ok(other) => Err(format!("{node} answered {other:?} instead of {expected:?}")),
            Err(error) => Err(format!("{node} did not restore it: {error}")),
        }
    }

    fn is_connected(&self, node: &str) -> bool {
        self.peers
            .get(node)
            .is_some_and(|peer| peer.state == homing_proto::control::PeerState::Connected)
    }

    /// Runs `work` for at most `limit`, giving up if `node` becomes unreachable.
    async fn while_connected<T>(
        &self,
        node: &str,
        limit: Duration,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        let watch = async {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                if !self.is_connected(node) {
                    return format!("lost {node} (unreachable)");
                }
            }
        };
        tokio::select! {
            done = work => Ok(done),
            lost = watch => Err(lost),
            _ = tokio::time::sleep(limit) => Err(format!("{node} took over {limit:?}")),
        }
    }

    /// A process that became its own deputy calls in: serve its program.
    pub(super) async fn resume(
        &self,
        mut deputy: UnixStream,
        cred: tokio::net::unix::UCred,
    ) -> Result<(), WireError> {
        let pid = cred.pid().unwrap_or(0);
        let deadline = tokio::time::Instant::now() + RESUME_TIMEOUT;
        let pending = loop {
            let notified = self.resumed.notified();
            if let Some((_, pending)) = self.resuming.remove(&pid) {
                break pending;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let message = format!("process {pid} has no program moved away");
                return write_message(&mut deputy, &ControlResponse::Error { message }).await;
            }
        };
        let PendingResume {
            node,
            conn,
            send,
            recv,
            command,
        } = pending;
        self.relay(deputy, cred, &node, conn, (send, recv), command, None)
            .await
    }
}

/// Where the two halves of a move from one host straight to another meet,
/// on the new host: home's request, which says what comes, and the old
/// host's stream, which brings it. Either may come first.
pub(super) enum Meeting {
    /// The old host's stream came first.
    Image {
        from: String,
        streams: (SendStream, RecvStream),
    },
    /// Home's request came first, and waits for the stream.
    Awaited {
        from: String,
        waiter: oneshot::Sender<(SendStream, RecvStream)>,
    },
}

impl Node {
    /// As a guest's host: gives up the guest `home_pid` of `home`. Its
    /// image goes back on the stream, or, when home names the next host
    /// in `hand_to`, straight there, home hearing how far it got. Unless
    /// home then commits, the guest goes on here.
    pub(super) async fn evict(
        &self,
        home: &str,
        home_pid: i32,
        while_running: bool,
        hand_to: Option<Handoff>,
        mut send: SendStream,
        mut recv: RecvStream,
    ) {
        let mut departure = match self.host.depart(home, home_pid, while_running).await {
            Ok(departure) => departure,
            Err(message) => {
                let _ = write_message(&mut send, &Eviction::Refused { message }).await;
                let _ = send.finish();
                return;
            }
        };
        let image = Eviction::Image(Box::new(departure.immigrant.clone()));
        let sent = match write_message(&mut send, &image).await {
            Err(error) => Err(error.to_string()),
            Ok(()) => match &hand_to {
                None => send_image_home(&mut departure, &mut send, &mut recv).await,
                Some(handoff) => {
                    let handed = self
                        .hand_over(home, &mut departure, handoff, &mut send)
                        .await;
                    let news = match &handed {
                        Ok(bytes) => Handing::Delivered { bytes: *bytes },
                        Err(message) => Handing::Failed {
                            message: message.clone(),
                        },
                    };
                    let _ = write_message(&mut send, &news).await;
                    handed
                }
            },
        };
        let commit = match sent {
            Ok(_) => {
                let verdict = read_message::<Verdict, _>(&mut recv).await;
                // How long it has been frozen, for home to report.
                let frozen_for = departure.source.frozen_for().as_micros() as u64;
                let pacing = departure.source.pacing;
                let commit = matches!(verdict, Ok(Verdict::Commit));
                if commit {
                    // Once this is said the copy here never runs
                    // again: home need not wait for it to be gone.
                    // The signals home sent it while frozen go back.
                    let mut answer = frozen_for.to_be_bytes().to_vec();
                    answer.extend_from_slice(&pacing.pauses.to_be_bytes());
                    let longest = pacing.longest.as_micros() as u64;
                    answer.extend_from_slice(&longest.to_be_bytes());
                    let held = departure.held_signals(HELD_MARK_WAIT).await;
                    match homing_proto::encode(&held) {
                        Ok(held) => answer.extend_from_slice(&held),
                        Err(error) => warn!(home, home_pid, "signals held are lost: {error}"),
                    }
                    let _ = send.write_all(&answer).await;
                }
                commit
            }
            Err(error) => {
                // Home sees the image cut short (or hears why), and calls
                // the move off.
                warn!(home, home_pid, "moving a process on: {error}");
                false
            }
        };
        let _ = send.finish();
        if let Err(error) = departure.end(commit).await {
            warn!(home, home_pid, "ending a departure: {error}");
        }
    }

    /// As a departing guest's old host: sends its image to its new host,
    /// `handoff.node`, telling `home` on `to_home` how far it got; returns
    /// the bytes of memory sent.
    async fn hand_over(
        &self,
        home: &str,
        departure: &mut Departure,
        handoff: &Handoff,
        to_home: &mut SendStream,
    ) -> Result<u64, String> {
        let node = handoff.node.as_str();
        let unreachable = |e: &dyn std::fmt::Display| format!("cannot reach {node}: {e}");
        let conn = self.connection_to(node)?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| unreachable(&e))?;
        let request = PeerRequest::HandOver {
            home_node: home.to_owned(),
            token: handoff.token,
        };
        write_message(&mut send, &request)
            .await
            .map_err(|e| unreachable(&e))?;
        let progress = |sent| Handing::Progress { sent };
        let streams = (&mut send, &mut recv);
        let bytes = self
            .send_image(to_home, node, departure, streams, progress)
            .await?;
        let _ = send.finish();
        Ok(bytes)
    }

    /// As a new host: the stream on which `handoff.node`, the old host,
    /// sends the image of the process of `home` moving here.
    pub(super) async fn image_handed_over(
        &self,
        home: &str,
        handoff: &Handoff,
    ) -> Result<(SendStream, RecvStream), String> {
        let key = (home.to_owned(), handoff.token);
        let (waiter, handed) = oneshot::channel();
        match self.handovers.entry(key.clone()) {
            Entry::Occupied(entry) => {
                return match entry.remove() {
                    Meeting::Image { from, streams } if from == handoff.node => Ok(streams),
                    _ => Err(format!(
                        "the image of move {} came from another node than {}",
                        handoff.token, handoff.node
                    )),
                };
            }
            Entry::Vacant(entry) => {
                entry.insert(Meeting::Awaited {
                    from: handoff.node.clone(),
                    waiter,
                });
            }
        }
        let handed = self
            .while_connected(&handoff.node, READY_TIMEOUT, handed)
            .await;
        self.handovers.remove_if(&key, |_, meeting| {
            matches!(meeting, Meeting::Awaited { .. })
        });
        match handed {
            Ok(Ok(streams)) => Ok(streams),
            Ok(Err(_)) => Err(format!("{} sent no image", handoff.node)),
            Err(error) => Err(error),
        }
    }

    /// As a new host: `from` opened `streams` to send the image of a
    /// process of `home` moving here, for the move `token`.
    pub(super) async fn hand_over_arrived(
        &self,
        from: &str,
        home: String,
        token: u64,
        streams: (SendStream, RecvStream),
    ) {
        let key = (home, token);
        match self.handovers.entry(key.clone()) {
            Entry::Occupied(entry) => {
                let expected = matches!(entry.get(), Meeting::Awaited { from: f, .. } if f == from);
                if !expected {
                    // Dropping the streams tells the sender.
                    warn!(from, home = key.0, token, "an image nobody asked of it");
                    return;
                }
                if let Meeting::Awaited { waiter, .. } = entry.remove() {
                    let _ = waiter.send(streams);
                }
                return;
            }
            Entry::Vacant(entry) => {
                entry.insert(Meeting::Image {
                    from: from.to_owned(),
                    streams,
                });
            }
        }
        // Home's request follows at once; an image it never asks for goes.
        tokio::time::sleep(READY_TIMEOUT).await;
        self.handovers
            .remove_if(&key, |_, meeting| matches!(meeting, Meeting::Image { .. }));
    }

    /// As a new host: restores `immigrant`, whose image comes on home's
    /// stream or, moving on from another host, on that host's `handed`
    /// stream; then serves it on home's stream.
    pub(super) async fn immigrate(
        &self,
        home: &str,
        immigrant: Immigrant,
        mut send: SendStream,
        mut recv: RecvStream,
        handed: Option<Result<(SendStream, RecvStream), String>>,
    ) -> Result<(), WireError> {
        self.fetch_mapped_files(home, &immigrant).await;
        let arrival = match handed {
            None => self.host.receive(&immigrant, &mut recv, &mut send).await,
            Some(Ok((mut image_send, mut image_recv))) => {
                // Home sends nothing before the process is ready: a word
                // from it now can only be its stream ending (the move
                // called off), which must not wait for the old host.
                let mut probe = [0u8; 1];
                tokio::select! {
                    arrival = self.host.receive(&immigrant, &mut image_recv, &mut image_send) => arrival,
                    _ = recv.read(&mut probe) => Err(format!("{home} called the move off")),
                }
            }
            Some(Err(error)) => Err(error),
        };
        let arrival = match arrival {
            Ok(arrival) => arrival,
            Err(error) => {
                warn!(
                    home,
                    home_pid = immigrant.home_pid,
                    "cannot restore a moved process: {error}"
                );
                let refused = ToHome::Exited {
                    status: GuestExit::Signal(libc::SIGKILL),
                    reason: Some(format!("{} cannot restore it: {error}", self.config.name)),
                };
                write_message(&mut send, &refused).await?;
                let _ = send.finish();
                return Ok(());
            }
        };
        let host = self.host.clone();
        relay_guest(send, recv, move |to_home, from_home| {
            host.run_immigrant(immigrant, arrival, to_home, from_home)
        })
        .await
    }
}

/// A process whose image is being sent: its source, and how it is frozen
/// for good once its memory has gone while it ran.
trait Freezes {
    fn source(&mut self) -> &mut Source;
    async fn freeze(&mut self) -> Result<(), String>;
}

impl Freezes for Source {
    fn source(&mut self) -> &mut Source {
        self
    }

    async fn freeze(&mut self) -> Result<(), String> {
        Source::freeze(self).await
    }
}

/// A guest moving on: its calls under way at home finish first.
impl Freezes for Departure {
    fn source(&mut self) -> &mut Source {
        &mut self.source
    }

    async fn freeze(&mut self) -> Result<(), String> {
        Departure::freeze(self).await
    }
}

/// Sends a departing guest's image home on `send`, answering home's sync
/// on `recv`; returns the bytes of memory sent.
async fn send_image_home(
    departure: &mut Departure,
    send: &mut SendStream,
    recv: &mut RecvStream,
) -> Result<u64, String> {
    match read_message::<Verdict, _>(recv).await {
        Ok(Verdict::FilesMapped { ranges }) => departure.source.mapped_there(ranges),
        Ok(other) => return Err(format!("home answered {other:?} first")),
        Err(error) => return Err(format!("home did not prepare it: {error}")),
    }
    let send = &mut ImageStream(send);
    let sent = departure.source.send_running(send, |_| {}).await?;
    if sent > 0 {
        // Frozen once home has caught up, so little is in flight while
        // it is.
        write_image_item(send, &ImageItem::Sync).await?;
        match read_message::<Verdict, _>(recv).await {
            Ok(Verdict::CaughtUp) => {}
            Ok(other) => return Err(format!("home answered {other:?} to the sync")),
            Err(error) => return Err(format!("home did not answer the sync: {error}")),
        }
    }
    departure.freeze().await?;
    departure.source.send_frozen(send, sent, |_| {}).await
}

/// A QUIC stream an image goes out on. Runs of pages are handed to
/// quinn as they are: it keeps them until the peer has them, so they are
/// copied once, into packets, rather than twice.
struct ImageStream<'a>(&'a mut SendStream);

impl AsyncWrite for ImageStream<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut *self.0), context, bytes)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut *self.0), context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut *self.0), context)
    }
}

impl ImageOut for ImageStream<'_> {
    async fn write_shared(&mut self, bytes: Bytes) -> std::io::Result<()> {
        self.0
            .write_chunk(bytes)
            .await
            .map_err(std::io::Error::from)
    }
}

/// Tells a client every so often how far its migration got.
struct Report {
    total: u64,
    last: Instant,
}

impl Report {
    fn new(total: u64) -> Self {
        Self {
            total,
            last: Instant::now(),
        }
    }

    /// Sends `sent` bytes so far, if the last report is old enough.
    async fn now_and_then(&mut self, client: &mut UnixStream, sent: u64) {
        if self.last.elapsed() > PROGRESS_EVERY {
            self.last = Instant::now();
            let progress = ControlResponse::Progress {
                sent,
                total: self.total,
            };
            let _ = write_message(client, &progress).await;
        }
    }
}

/// A process on its way from an away node: frozen there, its image
/// arriving.
struct Moving {
    pid: i32,
    from: String,
    from_conn: Connection,
    from_send: SendStream,
    from_recv: RecvStream,
    relay: tokio::sync::mpsc::UnboundedSender<RelayCommand>,
    immigrant: Immigrant,
    command: String,
    /// The most bytes its memory can take.
    estimate: u64,
    /// When it was frozen, once its old host has said (at the commit).
    frozen_since: Option<Instant>,
    /// How its old host paused it before, as it said at the commit.
    pacing: Pacing,
    started: Instant,
}

impl Moving {
    /// How long it has been frozen (never longer than the move: the
    /// old host's count may run ahead by the verdict's trip).
    fn frozen(&self) -> Duration {
        self.frozen_since
            .map_or(Duration::ZERO, |at| at.elapsed())
            .min(self.started.elapsed())
    }

    /// Tells the old host to end its frozen copy, and waits until it has
    /// said it will (the copy then never runs again there).
    /// Its answer says how long the copy had been frozen when the verdict
    /// came, which dates the freeze here without a shared clock (off by
    /// the verdict's one-way trip).
    /// Then how it was paused before (the pauses, then the longest in
    /// microseconds), and the signals home sent the copy while it was
    /// frozen (its image does not hold them): they are returned, for the
    /// process where it goes.
    async fn commit(&mut self) -> Vec<HeldSignal> {
        let sent = Instant::now();
        let _ = write_message(&mut self.from_send, &Verdict::Commit).await;
        let answer = self.from_recv.read_to_end(COMMIT_ANSWER_MAX);
        let Ok(Ok(answer)) = tokio::time::timeout(RESUME_TIMEOUT, answer).await else {
            return Vec::new();
        };
        let Some((micros, rest)) = answer.split_first_chunk::<8>() else {
            return Vec::new();
        };
        let before = Duration::from_micros(u64::from_be_bytes(*micros));
        self.frozen_since = Some(sent.checked_sub(before).unwrap_or(sent));
        let Some((pauses, rest)) = rest.split_first_chunk::<4>() else {
            return Vec::new();
        };
        let Some((longest, held)) = rest.split_first_chunk::<8>() else {
            return Vec::new();
        };
        self.pacing = Pacing {
            pauses: u32::from_be_bytes(*pauses),
            longest: Duration::from_micros(u64::from_be_bytes(*longest)),
        };
        let held = held
            .get(homing_proto::frame::HEADER_LEN..)
            .unwrap_or_default();
        match homing_proto::decode::<Vec<HeldSignal>>(held) {
            Ok(held) => held
                .into_iter()
                .filter(|held| (1..=64).contains(&held.signal))
                .collect(),
            Err(error) => {
                warn!(
                    from = self.from,
                    "the signals the old host held are lost: {error}"
                );
                Vec::new()
            }
        }
    }
}

/// The homing binary, for a moved process to become its deputy.
fn deputy_program() -> Result<CString, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the homing binary: {e}"))?;
    CString::new(exe.into_os_string().into_encoded_bytes())
        .map_err(|_| "the homing binary's path has a NUL".to_owned())
}

/// Whether `pid` runs homing itself: an agent, or a deputy (which its
/// own /proc/PID/exe cannot tell, since a program that came home keeps
/// the deputy's; its command line is its own again).
fn is_homing_process(pid: i32) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = raw.split(|&b| b == 0).filter(|a| !a.is_empty());
    args.next()
        .is_some_and(|program| program.ends_with(b"homing"))
        && args.any(|a| matches!(a, b"run" | b"resume" | b"node"))
}

/// The fds of `pid` marked close-on-exec, from `/proc/PID/fdinfo`.
fn marked_close_on_exec(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd: i32 = entry.file_name().to_str()?.parse().ok()?;
            let info = std::fs::read_to_string(entry.path()).ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
            (flags & libc::O_CLOEXEC as u32 != 0).then_some(fd)
        })
        .collect()
}

/// `/proc/PID/comm`, the process's name.
fn process_name(pid: i32) -> Option<CString> {
    let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    CString::new(comm.strip_suffix(b"\n").unwrap_or(&comm)).ok()
}

/// `/proc/PID/cmdline` as one line.
fn command_line(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| AwayProcess::command_line(raw.split(|&b| b == 0).filter(|a| !a.is_empty())))
        .unwrap_or_default()
}

/// The file at home that a process away had mapped (as `file` names it),
/// where it is still there, the very file.
fn home_file(file: &MappedFile) -> Option<CString> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&file.path));
    let now = std::fs::metadata(path).ok()?;
    file.is(&now)
        .then(|| CString::new(file.path.to_vec()).ok())
        .flatten()
}

/// Why a move (`what`: "move process 7 to node2") did not happen, and that
/// the process goes on `still` ("here", "on node2") unless it ended.
fn not_moved(what: &str, error: &str, still: &str) -> String {
    if error == homing_proto::peer::ENDED_BEFORE_MOVING {
        format!("cannot {what}: {error}")
    } else {
        format!("cannot {what}: {error}; it goes on {still}")
    }
}

/// Gives process `pid` the signals sent it while it moved, in the order
/// sent, where it could not queue them itself (the move was called off).
fn signals_come_home(pid: i32, signals: Vec<HeldSignal>) {
    for held in signals {
        if let Err(error) = signal_come_home(pid, held) {
            warn!(
                pid,
                signal = held.signal,
                "a signal for a process come home is lost: {error}"
            );
        }
    }
}

/// The `siginfo_t` of a signal held while its process moved: its
/// sender's, or the kernel's where none was carried.
fn siginfo_of(held: &HeldSignal) -> Vec<u8> {
    let kernel = homing_proto::guest::SignalSender {
        code: libc::SI_USER,
        pid: 0,
        uid: 0,
        value: 0,
    };
    let sender = held.sender.unwrap_or(kernel);
    homing_shim::process::siginfo_of(held.signal, &sender).to_vec()
}

/// Gives process `pid`, come home, a signal sent while it moved: from its
/// sender where the kernel lets anyone but the sender say so (a
/// `sigqueue`'s, a message queue's notice: `si_code` below 0), from this
/// agent otherwise (a `kill`'s sender cannot be told the kernel again).
fn signal_come_home(pid: i32, held: HeldSignal) -> std::io::Result<()> {
    match held.sender {
        Some(sender) if homing_shim::process::queued_by_another(sender.code) => {
            homing_shim::process::queue_signal(pid, held.signal, &sender)
        }
        _ => homing_shim::process::send_signal(pid, held.signal),
    }
}
