//! Home files that guests map shared and writable: one copy on this host,
//! whose changes are written back home.
//!
//! A shared, writable mapping of a file is how a program changes it
//! without `write`: SQLite keeps the index of its write-ahead log so (the
//! `-shm` file beside a database in WAL mode), and so do programs that
//! edit a file in place through `mmap`. The mapping cannot be of the home
//! file itself, which is on another machine; it is of a copy here, filled
//! from home, that every guest from that home node mapping the same file
//! shares, as processes at home share the file's pages. What the program
//! writes into it goes home as `pwrite`s of the pages that changed (found
//! by comparing the copy with what home was last known to hold): before
//! each call that any guest from that home node makes home, so that
//! nothing one then asks of home (a `read` of the file, a lock, its end)
//! finds the file older than what the guests here wrote; and once more
//! when the program ends, however it ends.
//!
//! A copy is made only while no process at home but the deputies of
//! programs on this host has the file open (home's agent tells: see
//! [`homing_proto::syscall::HOLD_MAPPED`]), since such a process would not
//! see the program's writes when it made them, nor the program its. One
//! that opens the file later sees what the program wrote up to its last
//! call home. Writes made at home through `write` while the copy is mapped
//! are not seen in it; the copy takes the file's length again at each new
//! mapping, as a file grown at home (SQLite writes a byte at the end of
//! each page before it maps more of its index) must be mapped whole.

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::cache::HomeFile;

/// The largest piece of a copy read or written back in one call.
const STEP: usize = 1 << 20;
/// What is compared and written back at a time: a page.
const PAGE: usize = 4096;

/// The copies made here, by home node and the home file's device and inode.
#[derive(Default)]
pub struct WrittenBack {
    copies: DashMap<(String, u64, u64), Arc<MappedCopy>>,
    /// How many there are, as last counted: every guest's call looks, and
    /// most hosts have none.
    count: AtomicUsize,
}

/// One home file's copy here.
pub struct MappedCopy {
    /// The copy (a memfd), which the guests map.
    copy: OwnedFd,
    /// Its inode, by which a guest's `/proc/PID/maps` names it.
    inode: u64,
    /// What home holds, locked while a write-back is under way, so that
    /// two are never interleaved.
    home: tokio::sync::Mutex<Known>,
}

/// What home holds of a copy's file, as far as this host knows.
#[derive(Default)]
struct Known {
    /// The file as filled, or as last written back.
    home: Vec<u8>,
    /// Where a window of the copy is read to be compared with it.
    window: Vec<u8>,
}

impl WrittenBack {
    /// The copy of `file` from `home_node`: made and filled by `read`
    /// (offset, length) the first time; sized again as `file` is now, what
    /// it grew by filled the same way, every later time.
    pub async fn open<F, Fut>(
        &self,
        home_node: &str,
        file: &HomeFile,
        name: &[u8],
        read: F,
    ) -> std::io::Result<Arc<MappedCopy>>
    where
        F: Fn(u64, usize) -> Fut,
        Fut: Future<Output = std::io::Result<Vec<u8>>>,
    {
        let key = (home_node.to_owned(), file.dev, file.ino);
        let copy = match self.copies.get(&key) {
            Some(copy) => copy.clone(),
            None => {
                let copy = crate::shared_here::make_copy(name)?;
                let made = Arc::new(MappedCopy {
                    inode: rustix::fs::fstat(&copy)?.st_ino,
                    copy,
                    home: Default::default(),
                });
                let copy = self.copies.entry(key).or_insert(made).clone();
                self.recount();
                copy
            }
        };
        copy.size_as(file.size, read).await?;
        Ok(copy)
    }

    /// The copy of `file` from `home_node`, if one is mapped here.
    pub fn existing(&self, home_node: &str, file: &HomeFile) -> Option<Arc<MappedCopy>> {
        let key = (home_node.to_owned(), file.dev, file.ino);
        self.copies.get(&key).map(|copy| copy.clone())
    }

    /// Whether any file of `home_node` is mapped here.
    pub fn maps_any_of(&self, home_node: &str) -> bool {
        self.count.load(Ordering::SeqCst) > 0
            && self.copies.iter().any(|copy| copy.key().0 == home_node)
    }

    fn recount(&self) {
        self.count.store(self.copies.len(), Ordering::SeqCst);
    }

    /// Drops `copy` if no guest maps it any more: none holds it but this
    /// registry and the caller.
    pub fn let_go(&self, copy: &Arc<MappedCopy>) {
        self.copies
            .retain(|_, kept| !Arc::ptr_eq(kept, copy) || Arc::strong_count(copy) > 2);
        self.recount();
    }

    /// Drops the copies of `home_node`'s files (it has no guest here left).
    pub fn forget(&self, home_node: &str) {
        self.copies.retain(|(node, _, _), _| node != home_node);
        self.recount();
    }
}

impl MappedCopy {
    /// Whether a process whose `/proc/PID/maps` reads `maps` maps this copy.
    pub fn mapped_in(&self, maps: &str) -> bool {
        let copy = format!("/memfd:{}", homing_proto::image::HOME_FILE_COPY);
        maps.lines().any(|line| {
            line.contains(&copy)
                && line.split_whitespace().nth(4) == Some(self.inode.to_string().as_str())
        })
    }

    /// The copy opened again with the access mode of `flags` (an open
    /// file's `F_GETFL`), for a guest to map.
    pub fn reopen(&self, flags: i32) -> std::io::Result<OwnedFd> {
        crate::shared_here::reopen(self.copy.as_fd(), flags)
    }

    /// Makes the copy `size` long, filling what it grew by from home.
    async fn size_as<F, Fut>(&self, size: u64, read: F) -> std::io::Result<()>
    where
        F: Fn(u64, usize) -> Fut,
        Fut: Future<Output = std::io::Result<Vec<u8>>>,
    {
        let home = &mut self.home.lock().await.home;
        let size = usize::try_from(size).map_err(std::io::Error::other)?;
        if size <= home.len() {
            home.truncate(size);
            rustix::fs::ftruncate(&self.copy, size as u64)?;
            return Ok(());
        }
        while home.len() < size {
            let at = home.len();
            let bytes = read(at as u64, STEP.min(size - at)).await?;
            if bytes.is_empty() {
                break;
            }
            rustix::io::pwrite(&self.copy, &bytes, at as u64)?;
            home.extend_from_slice(&bytes);
        }
        // Past what home had to read, as a file grown by `ftruncate`: zeros.
        home.resize(size, 0);
        rustix::fs::ftruncate(&self.copy, size as u64)?;
        Ok(())
    }

    /// Writes home, through `write` (offset, bytes), every page of the copy
    /// that differs from what home was last known to hold; a page whose
    /// write fails is tried again next time. Returns how many bytes went.
    /// The copy is read a window at a time into one buffer, which stays in
    /// the cache: reading it whole into new memory cost a page fault per
    /// page it read, at each call.
    pub async fn write_back<F, Fut>(&self, write: F) -> std::io::Result<usize>
    where
        F: Fn(u64, Vec<u8>) -> Fut,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let mut known = self.home.lock().await;
        let Known { home, window } = &mut *known;
        window.resize(STEP, 0);
        let mut sent = 0;
        let mut start = 0;
        while start < home.len() {
            let len = STEP.min(home.len() - start);
            let read = rustix::io::pread(&self.copy, &mut window[..len], start as u64)?;
            for (from, to) in changed_runs(&home[start..start + read], &window[..read]) {
                let bytes = window[from..to].to_vec();
                write((start + from) as u64, bytes).await?;
                home[start + from..start + to].copy_from_slice(&window[from..to]);
                sent += to - from;
            }
            if read < len {
                break;
            }
            start += len;
        }
        Ok(sent)
    }
}

/// The runs of whole pages (the last one maybe shorter) in which `now`
/// differs from `before`, as byte ranges.
fn changed_runs(before: &[u8], now: &[u8]) -> Vec<(usize, usize)> {
    let len = before.len().min(now.len());
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < len {
        let end = len.min(at + PAGE);
        if before[at..end] != now[at..end] {
            match runs.last_mut() {
                Some(run) if run.1 == at => run.1 = end,
                _ => runs.push((at, end)),
            }
        }
        at = end;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn file(size: u64) -> HomeFile {
        HomeFile::regular(9, size)
    }

    #[test]
    fn changed_pages_come_in_runs() {
        let before = vec![0u8; 5 * PAGE + 10];
        let mut now = before.clone();
        now[1] = 1;
        now[PAGE + 7] = 1;
        now[3 * PAGE] = 1;
        now[5 * PAGE + 9] = 1;
        assert_eq!(
            changed_runs(&before, &now),
            [
                (0, 2 * PAGE),
                (3 * PAGE, 4 * PAGE),
                (5 * PAGE, 5 * PAGE + 10)
            ]
        );
        assert!(changed_runs(&before, &before).is_empty());
    }

    #[tokio::test]
    async fn what_changes_in_a_copy_goes_home_once_and_growth_comes_from_home() {
        let here = WrittenBack::default();
        let home = Mutex::new(vec![b'h'; 3 * PAGE]);
        let read = |at: u64, len: usize| {
            let bytes = home.lock().unwrap();
            let at = (at as usize).min(bytes.len());
            let part = bytes[at..bytes.len().min(at + len)].to_vec();
            async move { Ok(part) }
        };
        let write = |at: u64, bytes: Vec<u8>| {
            let mut home = home.lock().unwrap();
            home[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
            async { Ok(()) }
        };
        let copy = here
            .open("node1", &file(3 * PAGE as u64), b"/x", read)
            .await
            .unwrap();
        let mapped = copy.reopen(libc::O_RDWR).unwrap();
        rustix::io::pwrite(&mapped, b"guest", PAGE as u64 + 2).unwrap();
        assert_eq!(copy.write_back(write).await.unwrap(), PAGE);
        assert_eq!(&home.lock().unwrap()[PAGE..PAGE + 8], b"hhguesth");
        assert_eq!(copy.write_back(write).await.unwrap(), 0, "sent once");
        // Home's file grew (by a write there): the copy grows as it did,
        // and what the guest wrote stays.
        home.lock().unwrap().extend_from_slice(&[b'g'; PAGE]);
        let again = here
            .open("node1", &file(4 * PAGE as u64), b"/x", read)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&copy, &again));
        let mut seen = vec![0; 4 * PAGE];
        assert_eq!(rustix::io::pread(&mapped, &mut seen, 0).unwrap(), 4 * PAGE);
        assert_eq!(&seen[PAGE..PAGE + 8], b"hhguesth");
        assert_eq!(seen[3 * PAGE], b'g');
        let inode = rustix::fs::fstat(&mapped).unwrap().st_ino;
        let line = |inode: u64| {
            format!("7f00-7f01 rw-s 00000000 00:01 {inode}   /memfd:homing:/x (deleted)\n")
        };
        assert!(copy.mapped_in(&line(inode)) && !copy.mapped_in(&line(inode + 1)));
        assert!(here.existing("node1", &file(0)).is_some());
        assert!(here.maps_any_of("node1") && !here.maps_any_of("node3"));
        here.let_go(&copy);
        assert!(
            here.existing("node1", &file(0)).is_some(),
            "`again` maps it"
        );
        drop(again);
        here.let_go(&copy);
        assert!(here.existing("node1", &file(0)).is_none());
        // Made again, it is filled with what home has now.
        let fresh = here
            .open("node1", &file(2 * PAGE as u64), b"/x", read)
            .await
            .unwrap();
        assert!(!Arc::ptr_eq(&copy, &fresh));
        let mut seen = vec![0; 8];
        rustix::io::pread(
            fresh.reopen(libc::O_RDONLY).unwrap(),
            &mut seen,
            PAGE as u64,
        )
        .unwrap();
        assert_eq!(seen, b"hhguesth");
        assert!(here.existing("node3", &file(0)).is_none());
        here.forget("node1");
        assert!(here.existing("node1", &file(0)).is_none());
    }
}
