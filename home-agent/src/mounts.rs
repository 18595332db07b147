//! The mount points of the agent's mount namespace, as places where home's
//! fast path may begin a walk of an absolute path (see
//! `fastpath::FastPath::look_up_path`).
//!
//! A walk on the fast path crosses no mount: one could lead onto a network
//! filesystem, where a lookup may hang, or into `/proc`, where "self" is
//! the agent. But `/home` and `/tmp` are mounts of their own on most
//! machines, so every absolute path under them went to the deputy. A path
//! that begins with a mount point is walked in two parts instead: the
//! mount point, from the root, from the kernel's caches alone and through
//! no symbolic link (so no lookup can wait, and the walk is the path's own
//! text), and the rest from there, crossing no further mount. The list of
//! mount points only says where to split: what the first part reaches is
//! taken only if it is the root of a mount on a local filesystem, as the
//! deputy's own walk would reach it now, whatever the list says.
//!
//! It owns no walk and must not decide anything about a path on its own.

use std::io::{Read, Seek};
use std::sync::Mutex;

/// The mount points, read again whenever the namespace's mount table has
/// changed since (`/proc/self/mountinfo` says so by `POLLPRI`).
struct Table {
    mountinfo: std::fs::File,
    points: Vec<Vec<u8>>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// The longest mount point other than the root that `path` (absolute)
/// begins with, as whole components; `None` if there is none, or the
/// table cannot be read.
pub fn longest_within(path: &[u8]) -> Option<Vec<u8>> {
    let mut slot = TABLE.lock().ok()?;
    if slot.is_none() {
        let mountinfo = std::fs::File::open("/proc/self/mountinfo").ok()?;
        *slot = Some(Table {
            mountinfo,
            points: Vec::new(),
        });
        slot.as_mut()?.read_again()?;
    }
    let table = slot.as_mut()?;
    if table.changed() {
        table.read_again()?;
    }
    table
        .points
        .iter()
        .filter(|point| begins_with(path, point))
        .max_by_key(|point| point.len())
        .cloned()
}

impl Table {
    /// Whether mounts came or went since the last look (the look itself
    /// takes the news).
    fn changed(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&self.mountinfo, PollFlags::PRI)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&zero)) {
            Ok(0) => false,
            Ok(_) => !(fds[0].revents() & (PollFlags::PRI | PollFlags::ERR)).is_empty(),
            Err(_) => true,
        }
    }

    fn read_again(&mut self) -> Option<()> {
        let mut text = String::new();
        self.mountinfo.rewind().ok()?;
        self.mountinfo.read_to_string(&mut text).ok()?;
        self.points = points_in(&text);
        Some(())
    }
}

/// The mount points a `mountinfo` text lists (its fifth field, unescaped),
/// the root left out.
fn points_in(mountinfo: &str) -> Vec<Vec<u8>> {
    let mut points: Vec<Vec<u8>> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|point| point.as_slice() != b"/")
        .collect();
    points.sort();
    points.dedup();
    points
}

/// A mount point as the kernel writes it: space, tab, newline and
/// backslash as three octal digits after a backslash.
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let octal = bytes.get(at + 1..at + 4).filter(|digits| {
            bytes[at] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        });
        match octal.and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok())
        {
            Some(byte) => {
                out.push(byte);
                at += 4;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    out
}

/// Whether `path` is `point` or goes on below it.
fn begins_with(path: &[u8], point: &[u8]) -> bool {
    path.strip_prefix(point)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_unescaped_and_matched_by_whole_components() {
        let mountinfo = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw
24 22 0:22 / /home rw shared:3 - tmpfs node1-home rw
25 24 0:23 / /home/alice/my\\040data rw shared:4 - ext4 /dev/sdb1 rw
26 22 0:24 / /home rw shared:5 - tmpfs other rw
";
        let points = points_in(mountinfo);
        assert_eq!(
            points,
            [&b"/home"[..], b"/home/alice/my data", b"/proc"].map(|p| p.to_vec())
        );
        assert!(begins_with(b"/home/alice/x", b"/home"));
        assert!(begins_with(b"/home", b"/home"));
        assert!(!begins_with(b"/homework/x", b"/home"));
        assert_eq!(unescape("a\\134b\\011c\\9"), b"a\\b\tc\\9");
    }

    #[test]
    fn the_table_follows_the_namespace() {
        // This process's own: /proc is a mount point everywhere here.
        assert_eq!(longest_within(b"/proc/self/fd"), Some(b"/proc".to_vec()));
        assert_eq!(longest_within(b"/"), None);
    }
}
