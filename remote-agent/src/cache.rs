//! The content cache: local copies of home files a guest executes or maps.
//!
//! An entry is named by the home file's identity (home node, device, inode,
//! size, modification time), so a file changed at home is fetched again and
//! a file already here is never sent twice. An entry keeps the home file's
//! owner, group and permission bits (never its set-id bits): a user of this
//! node can read or run a copy only where the same user could read or run
//! the file at home.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use homing_proto::image::MappedFile;

use crate::home_loader::Interpreter;

/// The identity of a file at home, from its `struct stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeFile {
    /// st_dev.
    pub dev: u64,
    /// st_ino.
    pub ino: u64,
    /// st_mode.
    pub mode: u32,
    /// st_uid.
    pub uid: u32,
    /// st_gid.
    pub gid: u32,
    /// st_size.
    pub size: u64,
    /// st_mtime (seconds).
    pub mtime: i64,
    /// st_mtime (nanoseconds).
    pub mtime_nsec: i64,
}

/// Size of the x86_64 `struct stat`.
pub const STAT_SIZE: usize = 144;

impl HomeFile {
    /// A regular file's identity, for tests.
    #[cfg(test)]
    pub(crate) fn regular(ino: u64, size: u64) -> Self {
        Self {
            dev: 7,
            ino,
            mode: libc::S_IFREG | 0o600,
            uid: 0,
            gid: 0,
            size,
            mtime: 0,
            mtime_nsec: 0,
        }
    }

    /// Reads the identity out of a raw x86_64 `struct stat`.
    pub fn from_stat(stat: &[u8]) -> Option<Self> {
        let u64_at = |at: usize| Some(u64::from_ne_bytes(stat.get(at..at + 8)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_ne_bytes(stat.get(at..at + 4)?.try_into().ok()?));
        Some(Self {
            dev: u64_at(0)?,
            ino: u64_at(8)?,
            mode: u32_at(24)?,
            uid: u32_at(28)?,
            gid: u32_at(32)?,
            size: u64_at(48)?,
            mtime: u64_at(88)? as i64,
            mtime_nsec: u64_at(96)? as i64,
        })
    }

    /// Whether it is a regular file.
    pub fn is_regular(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// Where a cached copy came from at home (see [`Cache::origin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The home file's st_dev.
    pub dev: u64,
    /// The home file's st_ino.
    pub ino: u64,
    /// The home file's path.
    pub path: Vec<u8>,
    /// The home file's st_size.
    pub size: u64,
    /// The home file's st_mtime: seconds and nanoseconds.
    pub mtime: (i64, i64),
}

/// The cache's directories: anyone may pass through, only root may list.
const SEARCH_ONLY: u32 = 0o711;

/// The cache directory.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    counter: AtomicU64,
}

impl Cache {
    /// A cache in `dir` (created if missing). The guests' users may reach
    /// an entry by its name but not list them: a name tells a file's size
    /// and modification time.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(SEARCH_ONLY))?;
        Ok(Self {
            dir: dir.to_owned(),
            counter: AtomicU64::new(0),
        })
    }

    /// Where `file` from `home_node` lives in the cache.
    pub fn path(&self, home_node: &str, file: &HomeFile) -> PathBuf {
        self.dir.join(Self::entry_name(
            home_node,
            (file.dev, file.ino, file.size),
            (file.mtime, file.mtime_nsec),
        ))
    }

    /// A name for the cached copy `local` (an entry or a launch copy) that
    /// ends in `name` (the file name a program exec'd it by), so the
    /// kernel names the process as it would have at home: a hard link in
    /// a directory of its own, beside the copy. Falls back to `local`
    /// itself.
    pub fn named(&self, local: &Path, name: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(name);
        let usable =
            !name.is_empty() && name != "." && name != ".." && !name.as_bytes().contains(&b'/');
        let (Some(content), Some(beside)) = (local.file_name().filter(|_| usable), local.parent())
        else {
            return local.to_owned();
        };
        let names = beside.join("names");
        let dir = names.join(content);
        let linked = dir.join(name);
        let made = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(SEARCH_ONLY))?;
                std::fs::set_permissions(&names, std::fs::Permissions::from_mode(SEARCH_ONLY))
            })
            .and_then(|()| match std::fs::hard_link(local, &linked) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            });
        match made {
            Ok(()) => linked,
            Err(_) => local.to_owned(),
        }
    }

    /// The launch copy of the cached program `program`, whose loader
    /// `interpreter` is the cached `loader` (see [`crate::home_loader`]),
    /// made if it is not here yet. It keeps the program's owner, group and
    /// permission bits, and tells the program's origin.
    pub fn launch_copy(
        &self,
        program: &Path,
        interpreter: &Interpreter,
        loader: &Path,
    ) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        fn entry_in<'a>(dir: &Path, path: &'a Path) -> std::io::Result<&'a std::ffi::OsStr> {
            path.parent()
                .filter(|parent| *parent == dir)
                .and(path.file_name())
                .ok_or_else(|| std::io::Error::other("not a cache entry"))
        }
        let entry = |path| entry_in(&self.dir, path);
        let launches = self.dir.join("launch");
        let dir = launches.join(entry(loader)?);
        let launch = dir.join(entry(program)?);
        if launch.exists() {
            return Ok(launch);
        }
        std::fs::create_dir_all(&dir)?;
        for made in [&launches, &dir] {
            std::fs::set_permissions(made, std::fs::Permissions::from_mode(SEARCH_ONLY))?;
        }
        let tmp = dir.join(format!(
            ".launch-{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let written = crate::home_loader::write_launch_copy(program, interpreter, loader, &tmp)
            .and_then(|()| {
                let of_program = std::fs::metadata(program)?;
                std::os::unix::fs::chown(&tmp, Some(of_program.uid()), Some(of_program.gid()))?;
                std::fs::set_permissions(&tmp, of_program.permissions())?;
                std::fs::rename(&tmp, &launch)
            });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map(|()| launch)
    }

    /// Remembers where the copy `local` came from at home: its path
    /// there, as the home kernel names it (`/proc/self/fd`), which a
    /// program's own `/proc/self/maps` shows for a mapping of it.
    pub fn note_home_path(&self, local: &Path, home_path: &[u8]) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let Some(entry) = self.entry_of(local) else {
            return Ok(());
        };
        let dir = self.dir.join("paths");
        std::fs::create_dir_all(&dir)?;
        // Root's alone: a path at home is the home user's to know.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let tmp = dir.join(format!(
            ".{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&tmp, home_path)?;
        std::fs::rename(&tmp, dir.join(std::ffi::OsStr::from_bytes(entry)))
    }

    /// Where the copy `local` (an entry, or a name of one: see
    /// [`Cache::named`]) came from at home, if noted: the home file's
    /// device and inode, and its path.
    pub fn origin(&self, local: &Path) -> Option<Origin> {
        use std::os::unix::ffi::OsStrExt;
        let entry = self.entry_of(local)?;
        let path = std::fs::read(
            self.dir
                .join("paths")
                .join(std::ffi::OsStr::from_bytes(entry)),
        )
        .ok()?;
        // `{home_node}-{dev}-{ino}-{size}-{mtime}.{nsec}`, the node's name
        // perhaps holding dashes itself.
        let mut fields = entry.rsplit(|&b| b == b'-');
        let (mtime, size) = (fields.next()?, fields.next()?);
        let number =
            |field: &[u8], radix| u64::from_str_radix(std::str::from_utf8(field).ok()?, radix).ok();
        let hex = |field: &[u8]| number(field, 16);
        let (seconds, nanoseconds) = mtime.split_at(mtime.iter().position(|&b| b == b'.')?);
        let mtime = (hex(seconds)? as i64, number(&nanoseconds[1..], 10)? as i64);
        let size = hex(size)?;
        let ino = hex(fields.next()?)?;
        let dev = hex(fields.next()?)?;
        Some(Origin {
            dev,
            ino,
            path,
            size,
            mtime,
        })
    }

    /// The home file that a mapping of a copy, `here` (as this node
    /// names it), maps, if the copy's origin was noted (see
    /// [`Cache::origin`]).
    pub fn mapped_origin(&self, here: &MappedFile) -> Option<MappedFile> {
        use std::os::unix::ffi::OsStrExt;
        let local = Path::new(std::ffi::OsStr::from_bytes(&here.path));
        let origin = self.origin(local)?;
        Some(MappedFile {
            path: serde_bytes::ByteBuf::from(origin.path),
            dev: origin.dev,
            ino: origin.ino,
            size: origin.size,
            mtime: origin.mtime,
            ..here.clone()
        })
    }

    /// The copy of the home file of `home_node` that `file` maps, if it
    /// is here; its home path is noted (for a program's own `maps`).
    pub fn copy_of_mapped(&self, home_node: &str, file: &MappedFile) -> Option<PathBuf> {
        let path = self.dir.join(Self::entry_name(
            home_node,
            (file.dev, file.ino, file.size),
            file.mtime,
        ));
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == file.size) {
            return None;
        }
        if self.origin(&path).is_none() {
            if let Err(error) = self.note_home_path(&path, &file.path) {
                tracing::debug!("noting where a mapped file came from: {error}");
            }
        }
        Some(path)
    }

    /// The name of the entry of a file of `home_node` by its identity.
    fn entry_name(home_node: &str, (dev, ino, size): (u64, u64, u64), mtime: (i64, i64)) -> String {
        format!(
            "{home_node}-{dev:x}-{ino:x}-{size:x}-{:x}.{:09}",
            mtime.0, mtime.1
        )
    }

    /// The entry's file name of `local`: an entry, a launch copy of one,
    /// or a name of either.
    fn entry_of<'a>(&self, local: &'a Path) -> Option<&'a [u8]> {
        use std::os::unix::ffi::OsStrExt;
        let within: Vec<&[u8]> = local
            .strip_prefix(&self.dir)
            .ok()?
            .iter()
            .map(|part| part.as_bytes())
            .collect();
        match within[..] {
            [entry]
            | [b"names", entry, _]
            | [b"launch", _, entry]
            | [b"launch", _, b"names", entry, _] => Some(entry),
            _ => None,
        }
    }

    /// The cached copy of `file`, if it is here.
    pub fn cached(&self, home_node: &str, file: &HomeFile) -> std::io::Result<Option<PathBuf>> {
        let path = self.path(home_node, file);
        if !std::fs::metadata(&path).is_ok_and(|m| m.len() == file.size) {
            return Ok(None);
        }
        // A chmod or chown at home leaves the name as it was.
        set_access(&path, file)?;
        Ok(Some(path))
    }

    /// The cached copy of `file`, filling it first with `fetch(offset, len)`
    /// chunks if it is not here yet.
    pub async fn ensure<F, Fut, E>(
        &self,
        home_node: &str,
        file: &HomeFile,
        mut fetch: F,
    ) -> Result<PathBuf, CacheError<E>>
    where
        F: FnMut(u64, usize) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, E>>,
    {
        const CHUNK: usize = 4 << 20;
        if let Some(path) = self.cached(home_node, file).map_err(CacheError::Io)? {
            return Ok(path);
        }
        let path = self.path(home_node, file);
        let tmp = self.dir.join(format!(
            ".fetch-{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let mut out = std::fs::File::create(&tmp).map_err(CacheError::Io)?;
        let mut offset = 0u64;
        while offset < file.size {
            let want = CHUNK.min((file.size - offset) as usize);
            let bytes = fetch(offset, want).await.map_err(CacheError::Fetch)?;
            if bytes.is_empty() {
                let _ = std::fs::remove_file(&tmp);
                return Err(CacheError::Changed);
            }
            out.write_all(&bytes).map_err(CacheError::Io)?;
            offset += bytes.len() as u64;
        }
        drop(out);
        set_access(&tmp, file).map_err(CacheError::Io)?;
        std::fs::rename(&tmp, &path).map_err(CacheError::Io)?;
        Ok(path)
    }
}

/// Gives the copy at `path` the owner, group and permission bits `file`
/// has at home, where it has others.
fn set_access(path: &Path, file: &HomeFile) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let bits = file.mode & 0o777;
    let now = std::fs::metadata(path)?;
    if (now.uid(), now.gid()) != (file.uid, file.gid) {
        std::os::unix::fs::chown(path, Some(file.uid), Some(file.gid))?;
    }
    if now.mode() & 0o7777 != bits {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits))?;
    }
    Ok(())
}

/// Why a file could not be cached.
#[derive(Debug, thiserror::Error)]
pub enum CacheError<E> {
    /// Fetching from home failed.
    #[error("fetching from home: {0}")]
    Fetch(E),
    /// The file shrank at home while being fetched.
    #[error("the file changed at home while being fetched")]
    Changed,
    /// The local cache failed.
    #[error("cache: {0}")]
    Io(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_and_its_names_tell_where_they_came_from_once_noted() {
        let dir = std::env::temp_dir().join(format!("homing-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Cache::new(&dir).unwrap();
        // A node whose name holds dashes.
        let entry = dir.join("node-1-fe00-3c831-8b50-6329dbdf.000000000");
        std::fs::write(&entry, b"program").unwrap();
        let named = cache.named(&entry, b"true");
        assert_ne!(named, entry);
        assert_eq!(cache.origin(&named), None);
        cache.note_home_path(&named, b"/usr/bin/true").unwrap();
        let origin = Origin {
            dev: 0xfe00,
            ino: 0x3c831,
            path: b"/usr/bin/true".to_vec(),
            size: 0x8b50,
            mtime: (0x6329dbdf, 0),
        };
        assert_eq!(cache.origin(&entry), Some(origin.clone()));
        assert_eq!(cache.origin(&named), Some(origin.clone()));
        assert_eq!(cache.origin(Path::new("/usr/bin/true")), None);
        // A launch copy of it, and a name of that, tell the program's
        // origin too (not the loader's).
        let program = std::fs::canonicalize("/proc/self/exe").unwrap();
        std::fs::copy(&program, &entry).unwrap();
        let loader = dir.join("node-1-fe00-1aa-2bb-6329dbdf.000000000");
        std::fs::write(&loader, b"loader").unwrap();
        let interpreter = crate::home_loader::interpreter_of(std::fs::File::open(&entry).unwrap())
            .unwrap()
            .unwrap();
        let launch = cache.launch_copy(&entry, &interpreter, &loader).unwrap();
        assert!(launch.starts_with(dir.join("launch")), "{launch:?}");
        assert_eq!(
            cache.launch_copy(&entry, &interpreter, &loader).unwrap(),
            launch
        );
        let launch_named = cache.named(&launch, b"true");
        assert_ne!(launch_named, named);
        assert!(launch_named.ends_with("true"), "{launch_named:?}");
        assert_eq!(cache.origin(&launch), Some(origin.clone()));
        assert_eq!(cache.origin(&launch_named), Some(origin));
        // Only an entry has a launch copy.
        assert!(cache.launch_copy(&named, &interpreter, &loader).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_mapped_file_is_found_by_its_home_identity_and_named_as_at_home() {
        let dir = std::env::temp_dir().join(format!("homing-mapped-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Cache::new(&dir).unwrap();
        let file = MappedFile {
            path: serde_bytes::ByteBuf::from(&b"/usr/lib/libx.so"[..]),
            offset: 0x3000,
            dev: 0xfe00,
            ino: 0x1234,
            size: 5,
            mtime: (0x6329dbdf, 17),
            shared: false,
        };
        assert_eq!(cache.copy_of_mapped("node-1", &file), None);
        let entry = dir.join("node-1-fe00-1234-5-6329dbdf.000000017");
        std::fs::write(&entry, b"12345").unwrap();
        // Another size, or another node's, is not it.
        let other = MappedFile {
            size: 6,
            ..file.clone()
        };
        assert_eq!(cache.copy_of_mapped("node-1", &other), None);
        assert_eq!(cache.copy_of_mapped("node-2", &file), None);
        let copy = cache.copy_of_mapped("node-1", &file).unwrap();
        assert_eq!(copy, entry);
        // Found, its home path is noted: it is named as at home, and a
        // mapping of it from elsewhere in it tells the same file.
        let named = cache.named(&copy, b"libx.so");
        let here = |path: &Path, offset, shared| MappedFile {
            path: serde_bytes::ByteBuf::from(path.as_os_str().as_encoded_bytes()),
            offset,
            dev: 1,
            ino: 2,
            size: 5,
            mtime: (3, 4),
            shared,
        };
        let found = cache.mapped_origin(&here(&named, 0x3000, false));
        assert_eq!(found, Some(file.clone()));
        let shared_further = cache.mapped_origin(&here(&copy, 0x5000, true)).unwrap();
        assert_eq!(
            (shared_further.offset, shared_further.shared),
            (0x5000, true)
        );
        assert!(shared_further.same_file(&file));
        let not_a_copy = here(Path::new("/usr/lib/libx.so"), 0, false);
        assert_eq!(cache.mapped_origin(&not_a_copy), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
