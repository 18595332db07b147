//! The files a moving process maps, for its new host.
//!
//! A process keeps its file mappings when it moves only where its new
//! host has the files: home has them, a host has copies in its cache of
//! the programs and libraries it ran. A host lacking one fetches it from
//! home before it restores the process (`PeerRequest::FetchMapped`), so
//! the process maps it there again and its `/proc/self/maps` names it as
//! at home. Home serves a file only to the host the process is moving to,
//! opened with the rights of the process's user, and only while the path
//! still names the very file the process mapped.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use homing_proto::image::{mapped_files, MappedFile};
use homing_proto::peer::{Immigrant, PeerRequest, PeerResponse};
use homing_remote_agent::cache::HomeFile;
use quinn::SendStream;
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use super::Node;
use crate::wire::{write_message, WireError};

/// The largest file a host fetches for a mapping: a bigger one (a data
/// file mapped whole) comes as the process's pages alone, as anonymous
/// memory.
const MOST_FETCHED: u64 = 256 << 20;

/// How long fetching one file may take: the move waits for it.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A process noted as moving to a host, until dropped.
pub(super) struct MovingTo<'a> {
    node: &'a Node,
    pid: i32,
}

impl Drop for MovingTo<'_> {
    fn drop(&mut self) {
        self.node.moving_to.remove(&self.pid);
    }
}

impl Node {
    /// Notes, while the guard lives, that process `pid` moves to `host`,
    /// which may then fetch the files it maps.
    pub(super) fn note_moving(&self, pid: i32, host: &str) -> MovingTo<'_> {
        self.moving_to.insert(pid, host.to_owned());
        MovingTo { node: self, pid }
    }

    /// As home: answers `peer`'s [`PeerRequest::FetchMapped`] of `file`
    /// for process `home_pid` on `send`.
    pub(super) async fn serve_mapped_file(
        &self,
        peer: &str,
        home_pid: i32,
        file: MappedFile,
        mut send: SendStream,
    ) -> Result<(), WireError> {
        let moving_there = self.moving_to.get(&home_pid).is_some_and(|to| *to == peer);
        let opened = match moving_there {
            true => tokio::task::spawn_blocking(move || open_as_owner(home_pid, &file))
                .await
                .unwrap_or_else(|e| Err(format!("opening it failed: {e}"))),
            false => {
                warn!(
                    peer,
                    home_pid, "refused a mapped file to a host the process is not moving to"
                );
                Err(format!("process {home_pid} is not moving to {peer}"))
            }
        };
        let (opened, metadata) = match opened {
            Ok(opened) => opened,
            Err(message) => {
                debug!(peer, home_pid, "a mapped file not served: {message}");
                write_message(&mut send, &PeerResponse::Error { message }).await?;
                let _ = send.finish();
                return Ok(());
            }
        };
        let follows = PeerResponse::FileFollows {
            mode: metadata.mode(),
            uid: metadata.uid(),
            gid: metadata.gid(),
        };
        write_message(&mut send, &follows).await?;
        let mut opened = tokio::fs::File::from_std(opened).take(metadata.size());
        tokio::io::copy(&mut opened, &mut send).await?;
        let _ = send.finish();
        Ok(())
    }

    /// As a new host: fetches from `home` the files that `immigrant`'s
    /// regions map and this node's cache lacks. One that cannot be had
    /// is left out: its memory comes as anonymous memory.
    pub(super) async fn fetch_mapped_files(&self, home: &str, immigrant: &Immigrant) {
        let cache = self.host.cache();
        let wanted = mapped_files(&immigrant.image.regions)
            .into_iter()
            .filter(|file| cache.copy_of_mapped(home, file).is_none());
        for file in wanted {
            let path = String::from_utf8_lossy(&file.path).into_owned();
            let fetching = self.fetch_mapped_file(home, immigrant.home_pid, file);
            let fetched = tokio::time::timeout(FETCH_TIMEOUT, fetching).await;
            match fetched.unwrap_or_else(|_| Err("home took too long".into())) {
                Ok(bytes) => {
                    info!(
                        home,
                        home_pid = immigrant.home_pid,
                        path,
                        bytes,
                        "fetched a mapped file"
                    )
                }
                Err(error) => info!(
                    home,
                    path,
                    "a mapped file not fetched (its memory comes as anonymous memory): {error}"
                ),
            }
        }
    }

    /// Fetches `file`, mapped by process `home_pid` of `home`, into the
    /// cache; returns its size.
    async fn fetch_mapped_file(
        &self,
        home: &str,
        home_pid: i32,
        file: &MappedFile,
    ) -> Result<u64, String> {
        if file.size > MOST_FETCHED {
            return Err(format!("{} bytes is too big to fetch", file.size));
        }
        let request = PeerRequest::FetchMapped {
            home_pid,
            file: file.clone(),
        };
        let (mode, uid, gid, recv) = match self.ask_peer(home, &request).await? {
            (PeerResponse::FileFollows { mode, uid, gid }, recv) => (mode, uid, gid, recv),
            (other, _) => return Err(format!("{home} answered {other:?}")),
        };
        let recv = Arc::new(tokio::sync::Mutex::new(recv));
        let home_file = HomeFile {
            dev: file.dev,
            ino: file.ino,
            mode,
            uid,
            gid,
            size: file.size,
            mtime: file.mtime.0,
            mtime_nsec: file.mtime.1,
        };
        let cache = self.host.cache();
        let fetch = |_offset, len| {
            let recv = recv.clone();
            async move {
                let mut bytes = vec![0u8; len];
                let read = recv.lock().await.read_exact(&mut bytes).await;
                read.map(|()| bytes).map_err(|e| e.to_string())
            }
        };
        // Its home path is noted as the restore finds it (`copy_of_mapped`).
        cache
            .ensure(home, &home_file, fetch)
            .await
            .map_err(|e| e.to_string())?;
        Ok(file.size)
    }
}

/// Opens `file`, mapped by process `pid`, with the filesystem rights of
/// its user (on a thread of its own, which takes them on and ends), if
/// its path still names that very file.
fn open_as_owner(
    pid: i32,
    file: &MappedFile,
) -> Result<(std::fs::File, std::fs::Metadata), String> {
    let id = |field: &str| {
        let ids = homing_shim::process::status_field(pid, field)?;
        // Real, effective, saved and filesystem ids: the last decides.
        ids.split_whitespace().nth(3)?.parse::<u32>().ok()
    };
    let (Some(fsuid), Some(fsgid)) = (id("Uid:"), id("Gid:")) else {
        return Err(format!("no process {pid}"));
    };
    let groups: Vec<rustix::process::Gid> = super::supplementary_groups(pid)
        .into_iter()
        .map(rustix::process::Gid::from_raw)
        .collect();
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&file.path));
    let opened = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                rustix::thread::set_thread_groups(&groups)
                    .map_err(|e| format!("taking on the user's groups: {e}"))?;
                nix::unistd::setfsgid(nix::unistd::Gid::from_raw(fsgid));
                nix::unistd::setfsuid(nix::unistd::Uid::from_raw(fsuid));
                std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))
            })
            .join()
            .unwrap_or_else(|_| Err("the opening thread panicked".into()))
    })?;
    let metadata = opened.metadata().map_err(|e| e.to_string())?;
    if !file.is(&metadata) {
        return Err(format!("{} is no longer the file mapped", path.display()));
    }
    Ok((opened, metadata))
}
