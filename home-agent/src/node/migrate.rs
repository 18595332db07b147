//! `homing migrate`: moving a running home process to another node, where
//! it goes on while the process at home becomes its deputy.
//!
//! The order makes the move atomic. The process is frozen and its image
//! streamed to the destination, which restores it into a blank guest and
//! says it is ready. Only then does the process at home exec itself into a
//! deputy (its pid, parent, fds, cwd and credentials untouched), and only
//! after that does the destination let the guest run. Anything that fails
//! before the exec thaws the process where it was; the destination drops
//! its copy when the stream ends without a go.

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use homing_proto::control::ControlResponse;
use homing_proto::guest::{ToHome, ToHost};
use homing_proto::peer::{Immigrant, PeerRequest};
use homing_remote_agent::migration::{Afterwards, Source};
use quinn::{Connection, RecvStream, SendStream};
use tokio::net::UnixStream;
use tracing::{info, warn};

use super::{supplementary_groups, Node};
use crate::wire::{read_message, write_message, WireError};

/// How long the destination may take to restore a received image.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process that became its own deputy may take to call in.
const RESUME_TIMEOUT: Duration = Duration::from_secs(10);
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
        if let Some(away) = self.away.get(&pid) {
            return Err(format!(
                "process {pid} runs on {}; moving it on is not supported yet",
                away.node
            ));
        }
        if node == self.config.name || node == "home" {
            return Err(format!("process {pid} is already at home on {node}"));
        }
        let owner = homing_shim::process::status_field(pid, "Uid:")
            .and_then(|uids| uids.split_whitespace().next()?.parse::<u32>().ok())
            .ok_or_else(|| format!("no process {pid} on {}", self.config.name))?;
        if caller != 0 && caller != owner {
            return Err(format!(
                "process {pid} is not yours (it belongs to uid {owner})"
            ));
        }
        if pid == std::process::id() as i32 {
            return Err("the homing agent cannot move itself".into());
        }
        let conn = self.connection_to(node)?;
        let gid = homing_shim::process::status_field(pid, "Gid:")
            .and_then(|gids| gids.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap_or(owner);
        let command = command_line(pid);

        let mut source = Source::freeze(pid, false).await?;
        info!(
            pid,
            node,
            threads = source.image.threads.len(),
            "process frozen for moving"
        );
        let immigrant = Immigrant {
            home_node: self.config.name.clone(),
            home_pid: pid,
            uid: owner,
            gid,
            groups: supplementary_groups(pid),
            command: command.clone(),
            image: source.image.clone(),
        };
        let transfer = async {
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            write_message(&mut send, &PeerRequest::Immigrate(Box::new(immigrant)))
                .await
                .map_err(|e| e.to_string())?;
            let sent = Arc::new(AtomicU64::new(0));
            let total = source.estimate;
            let bytes = {
                let sending = source.send_pages(&mut send, |n| sent.store(n, Ordering::Relaxed));
                tokio::pin!(sending);
                let mut tick = tokio::time::interval(PROGRESS_EVERY);
                loop {
                    tokio::select! {
                        outcome = &mut sending => break outcome,
                        _ = tick.tick() => {
                            if !self.is_connected(node) {
                                break Err(format!("lost {node} (unreachable)"));
                            }
                            let progress = ControlResponse::Progress {
                                sent: sent.load(Ordering::Relaxed),
                                total,
                            };
                            let _ = write_message(client, &progress).await;
                        }
                    }
                }
            }?;
            let ready =
                self.while_connected(node, READY_TIMEOUT, read_message::<ToHome, _>(&mut recv));
            match ready.await? {
                Ok(ToHome::Ready) => Ok((send, recv, bytes)),
                Ok(ToHome::Exited { reason, .. }) => {
                    Err(reason.unwrap_or_else(|| format!("{node} refused the process")))
                }
                Ok(other) => Err(format!("{node} answered {other:?} instead of ready")),
                Err(error) => Err(format!("{node} did not restore it: {error}")),
            }
        }
        .await;
        let (mut send, recv, bytes) = match transfer {
            Ok(streams) => streams,
            Err(error) => {
                let _ = source.finish(Afterwards::Thaw).await;
                return Err(format!(
                    "cannot move process {pid} to {node}: {error}; it goes on here"
                ));
            }
        };
        let frozen_at = source.frozen_at;
        let become_deputy = Afterwards::BecomeDeputy {
            program: deputy_program()?,
            argv: vec![
                c"homing".to_owned(),
                c"--socket".to_owned(),
                CString::new(self.config.control_socket.as_os_str().as_encoded_bytes())
                    .map_err(|_| "the control socket path has a NUL".to_owned())?,
                c"resume".to_owned(),
            ],
        };
        if let Err(error) = source.finish(become_deputy).await {
            // Dropping the streams calls the destination's copy off.
            return Err(format!(
                "cannot move process {pid}: it could not become its own deputy ({error}); it goes on here"
            ));
        }
        if let Err(error) = write_message(&mut send, &ToHost::Go).await {
            warn!(
                pid,
                node, "the go for a moved process was not sent: {error}"
            );
        }
        let frozen = frozen_at.elapsed();
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
        info!(pid, node, bytes, ?frozen, "process moved");
        Ok(ControlResponse::Migrated {
            node: node.to_owned(),
            bytes,
            total_micros: started.elapsed().as_micros() as u64,
            frozen_micros: frozen.as_micros() as u64,
        })
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
        self.relay(deputy, cred, &node, conn, (send, recv), command)
            .await
    }
}

/// The homing binary, for a moved process to become its deputy.
fn deputy_program() -> Result<CString, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the homing binary: {e}"))?;
    CString::new(exe.into_os_string().into_encoded_bytes())
        .map_err(|_| "the homing binary's path has a NUL".to_owned())
}

/// `/proc/PID/cmdline` as one line.
fn command_line(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
