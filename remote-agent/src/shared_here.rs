//! Files in home's `/dev/shm`, and memfds, that guests map shared: one
//! copy on this host, shared by every guest that maps the same file.
//!
//! `/dev/shm` holds a machine's POSIX shared memory and named semaphores
//! (`shm_open`, `sem_open`; Python's `multiprocessing` keeps its locks and
//! its shared heap there). Processes share such a file to share memory,
//! which only processes on one machine can do. A program away shares it
//! with its own processes, which are all here: its forks run where it
//! runs. So the first guest to map such a file gets a copy of it made
//! here, filled from home; every later mapping of the same file, by any
//! guest from that home node, maps the same copy, and a futex in it works
//! as at home. A memfd the program made is reached only by it, its
//! children and whoever it hands the fd to, and is shared the same way.
//! Writable shared mappings of any other home file are still refused: a
//! write made here would never reach home.
//!
//! What a copy cannot give is sharing with a process at home: it and the
//! program would each see their own writes only. Nor do `write` and
//! `read` calls on the fd, which go home, see the copy (glibc and Python
//! write a semaphore's first value before they map it, and use only the
//! mapping after). A home node's copies are dropped once it has no guest
//! here; mappings keep their memory as long as they last.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::OnceCell;

use crate::cache::HomeFile;

/// Where a home file must be for its shared mappings to be shared here.
const SHARED_MEMORY_DIR: &[u8] = b"/dev/shm/";

/// How home's kernel names a memfd: memory only the program, its
/// children and whoever it hands the fd to can reach.
const MEMFD: &[u8] = b"/memfd:";

/// How much of a file each call home fills a copy with.
const FILL_STEP: usize = 1 << 20;

/// Whether the home file at `path` (as home's kernel names an open file,
/// `/proc/PID/fd/N`) holds shared memory or a semaphore: a file in
/// `/dev/shm`, or a memfd.
pub fn holds_shared_memory(path: &[u8]) -> bool {
    path.starts_with(SHARED_MEMORY_DIR) || path.starts_with(MEMFD)
}

/// The copies made here, by home node and the home file's device and inode.
#[derive(Default)]
pub struct SharedHere {
    copies: DashMap<(String, u64, u64), Arc<OnceCell<OwnedFd>>>,
    /// The home devices (by home node) known to hold a file that is no
    /// shared memory: a shared mapping of another file there needs no
    /// asking where it is. Only that is remembered: a device that holds
    /// `/dev/shm` may hold other files too (where `/dev/shm` is no mount
    /// of its own), and those must not be taken for shared memory, while
    /// a file of `/dev/shm` taken for another is only refused, as before.
    other_devices: DashMap<(String, u64), ()>,
}

impl SharedHere {
    /// An fd to the copy of `file` from `home_node`, open for reading,
    /// writing or both as the program's own fd at home is (`flags`, its
    /// `F_GETFL`), so that mapping it is refused or allowed as at home.
    /// The first time, the copy is made and filled with what `read`
    /// returns for each (offset, length); it is then sized as `file` is
    /// now, as a `ftruncate` at home would have sized it.
    pub async fn open<F, Fut>(
        &self,
        home_node: &str,
        file: &HomeFile,
        name: &[u8],
        flags: i32,
        read: F,
    ) -> std::io::Result<OwnedFd>
    where
        F: Fn(u64, usize) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<Vec<u8>>>,
    {
        let cell = self
            .copies
            .entry((home_node.to_owned(), file.dev, file.ino))
            .or_default()
            .clone();
        let copy = cell
            .get_or_try_init(|| async {
                let copy = make_copy(name)?;
                let mut at = 0;
                while at < file.size {
                    let want = FILL_STEP.min((file.size - at) as usize);
                    let bytes = read(at, want).await?;
                    if bytes.is_empty() {
                        break;
                    }
                    rustix::io::pwrite(&copy, &bytes, at)?;
                    at += bytes.len() as u64;
                }
                Ok::<_, std::io::Error>(copy)
            })
            .await?;
        rustix::fs::ftruncate(copy, file.size)?;
        reopen(copy.as_fd(), flags)
    }

    /// Whether device `dev` of `home_node` is known to hold a file that
    /// is no shared memory.
    pub fn holds_other_files(&self, home_node: &str, dev: u64) -> bool {
        self.other_devices
            .contains_key(&(home_node.to_owned(), dev))
    }

    /// Device `dev` of `home_node` holds a file that is no shared memory.
    pub fn note_other_file(&self, home_node: &str, dev: u64) {
        self.other_devices.insert((home_node.to_owned(), dev), ());
    }

    /// Drops the copies of `home_node`'s files (it has no guest here left).
    pub fn forget(&self, home_node: &str) {
        self.copies.retain(|(node, _, _), _| node != home_node);
    }
}

/// A new, empty copy, named after the home file for the guest's
/// `/proc/self/maps`.
pub(crate) fn make_copy(name: &[u8]) -> std::io::Result<OwnedFd> {
    let mut shown = homing_proto::image::HOME_FILE_COPY.as_bytes().to_vec();
    shown.extend(name.iter().copied().filter(|&b| b != 0));
    let shown = std::ffi::CString::new(shown).map_err(std::io::Error::other)?;
    Ok(rustix::fs::memfd_create(
        &shown,
        rustix::fs::MemfdFlags::CLOEXEC,
    )?)
}

/// The copy opened again with the access mode of `flags` (an open file's
/// `F_GETFL`).
pub(crate) fn reopen(copy: std::os::fd::BorrowedFd<'_>, flags: i32) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let access = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => rustix::fs::OFlags::RDONLY,
        libc::O_WRONLY => rustix::fs::OFlags::WRONLY,
        _ => rustix::fs::OFlags::RDWR,
    };
    Ok(rustix::fs::open(
        format!("/proc/self/fd/{}", copy.as_raw_fd()),
        access | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ino: u64, size: u64) -> HomeFile {
        HomeFile::regular(ino, size)
    }

    #[tokio::test]
    async fn one_file_has_one_copy_filled_once_and_sized_as_it_is_now() {
        let here = SharedHere::default();
        let fills = std::sync::atomic::AtomicUsize::new(0);
        let read = |at: u64, len: usize| {
            fills.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { Ok(vec![b'a' + (at % 26) as u8; len]) }
        };
        let first = here
            .open("node1", &file(1, 10), b"/dev/shm/sem.x", libc::O_RDWR, read)
            .await
            .unwrap();
        rustix::io::pwrite(&first, b"z", 0).unwrap();
        let second = here
            .open(
                "node1",
                &file(1, 20),
                b"/dev/shm/sem.x",
                libc::O_RDONLY,
                read,
            )
            .await
            .unwrap();
        let mut seen = [0u8; 20];
        assert_eq!(rustix::io::pread(&second, &mut seen, 0).unwrap(), 20);
        assert_eq!(&seen[..], b"zaaaaaaaaa\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(fills.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(
            rustix::io::write(&second, b"no").is_err(),
            "opened read-only"
        );
        // Another file, or the same from another node, is another copy.
        let other = here
            .open("node3", &file(1, 10), b"/dev/shm/sem.x", libc::O_RDWR, read)
            .await
            .unwrap();
        assert_eq!(rustix::io::pread(&other, &mut seen[..1], 0).unwrap(), 1);
        assert_eq!(seen[0], b'a');
        here.forget("node1");
        assert_eq!(here.copies.len(), 1);
        here.note_other_file("node1", 7);
        assert!(here.holds_other_files("node1", 7));
        assert!(!here.holds_other_files("node1", 8) && !here.holds_other_files("node3", 7));
        assert!(holds_shared_memory(b"/dev/shm/sem.x") && !holds_shared_memory(b"/dev/shmem"));
        assert!(holds_shared_memory(b"/memfd:ring (deleted)") && !holds_shared_memory(b"/tmp/f"));
    }
}
