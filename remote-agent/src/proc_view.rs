//! A program's opens of its own `/proc` files that tell of its memory,
//! threads and signals (`status`, `stat`, `maps`, …).
//!
//! Every open goes home, where `/proc/self` is the deputy: its memory is a
//! few megabytes of the homing binary, its threads are its workers, its
//! signals all blocked. So such an open becomes
//! [`homing_proto::syscall::OPEN_PROC_VIEW`], which carries the file as it
//! reads here, for the program's process; the deputy keeps what is home's
//! (ids, parent, nice value, limits) and takes the rest from it.

use homing_proto::syscall::{ArgData, SyscallCall, OPEN_PROC_VIEW, PROC_VIEWS};

use crate::cache::Cache;

/// The flags an open may have for its file to be served as a view: a
/// plain read-only open. Any other (`O_PATH`, `O_DIRECTORY`, `O_NOATIME`,
/// a write) goes home as it is.
const VIEW_FLAGS: i32 = libc::O_CLOEXEC | libc::O_LARGEFILE | libc::O_NOCTTY | libc::O_NONBLOCK;

/// The longest file sent home as a view, well within a frame.
const MOST_SENT: usize = homing_proto::frame::MAX_FRAME_LEN / 2;

/// `call` as an open of a view of the program's own `/proc` file, if it
/// opens one (by `/proc/self/NAME` or `/proc/HOME_PID/NAME`) for reading
/// and that file of `host_pid`, the program's process here, can be read;
/// otherwise `call` as it was. `by_main_thread`: the caller is the
/// process's main thread, whose state the file tells.
pub fn as_view(
    call: SyscallCall,
    home_pid: i32,
    host_pid: i32,
    by_main_thread: bool,
    no_new_privs: bool,
    cache: &Cache,
) -> SyscallCall {
    let (path_index, flags) = match call.nr as i64 {
        libc::SYS_open => (0, call.args[1]),
        libc::SYS_openat => (1, call.args[2]),
        _ => return call,
    };
    let flags = flags as i32;
    if flags & !VIEW_FLAGS != 0 {
        return call;
    }
    let Some(name) = call
        .inputs
        .iter()
        .find(|input| input.index == path_index)
        .and_then(|input| own_file(&input.bytes, home_pid))
    else {
        return call;
    };
    let Ok(mut here) = std::fs::read(format!("/proc/{host_pid}/{name}")) else {
        return call;
    };
    // The `smaps` of tens of thousands of mappings would not fit a frame.
    if here.len() > MOST_SENT {
        return call;
    }
    if by_main_thread {
        running(name, &mut here);
    }
    if name == "status" {
        own_sandbox(&mut here, no_new_privs);
    }
    if name == "maps" || name == "smaps" {
        here = shown_as_home(&here, cache);
    }
    SyscallCall {
        nr: OPEN_PROC_VIEW,
        args: [flags as u64, 0, 0, 0, 0, 0],
        inputs: vec![
            ArgData {
                index: 0,
                bytes: name.as_bytes().to_vec(),
            },
            ArgData {
                index: 1,
                bytes: here,
            },
        ],
    }
}

/// Says in `text`, the main thread's file `name`, that it runs: it does,
/// reading it. Here it waits for this open to be answered.
fn running(name: &str, text: &mut Vec<u8>) {
    match name {
        "status" => set_field(text, "State", "R (running)"),
        "stat" => {
            // The state is the word after the comm.
            if let Some(end) = homing_shim::process::stat_comm_end(text) {
                if let Some(state) = text.get_mut(end + 1) {
                    *state = b'R';
                }
            }
        }
        _ => {}
    }
}

/// Says in `text`, a `status` of the guest here, what the program's own
/// seccomp mode, filters and `no_new_privs` are: the guest runs under
/// homing's filter, with the `no_new_privs` it took.
fn own_sandbox(text: &mut Vec<u8>, no_new_privs: bool) {
    let field = |text: &[u8], name: &str| -> Option<u32> {
        let start = find(text, format!("\n{name}:\t").as_bytes())? + name.len() + 3;
        let end = find(&text[start..], b"\n").map_or(text.len(), |at| start + at);
        std::str::from_utf8(&text[start..end]).ok()?.parse().ok()
    };
    let (own_filters, mode) = own_seccomp(field(text, "Seccomp_filters").unwrap_or(1));
    set_field(text, "NoNewPrivs", if no_new_privs { "1" } else { "0" });
    set_field(text, "Seccomp", &mode.to_string());
    set_field(text, "Seccomp_filters", &own_filters.to_string());
}

/// The program's own seccomp filters and mode, of a guest thread with
/// `filters` in all: one of them is homing's. Mode 2 once it has one of
/// its own, else 0 (strict mode cannot be had over homing's filter).
pub(crate) fn own_seccomp(filters: u32) -> (u32, i64) {
    let own = filters.saturating_sub(1);
    (own, if own > 0 { 2 } else { 0 })
}

/// Sets the value of field `name` of `text`, a `status`, where it has one.
fn set_field(text: &mut Vec<u8>, name: &str, value: &str) {
    let label = format!("\n{name}:\t");
    let Some(start) = find(text, label.as_bytes()).map(|at| at + label.len()) else {
        return;
    };
    let end = find(&text[start..], b"\n").map_or(text.len(), |at| start + at);
    text.splice(start..end, value.bytes());
}

fn find(text: &[u8], what: &[u8]) -> Option<usize> {
    text.windows(what.len()).position(|window| window == what)
}

/// `maps` or `smaps` with each mapping of a cached copy of a home file
/// shown as that file: its device, inode and path at home, where the
/// cache knows them.
fn shown_as_home(text: &[u8], cache: &Cache) -> Vec<u8> {
    let mut shown = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        match mapping_as_home(line, cache) {
            Some(home) => shown.extend_from_slice(&home),
            None => shown.extend_from_slice(line),
        }
    }
    shown
}

/// The kernel pads a mapping's line to this column before the path (and
/// one space more).
const PATH_COLUMN: usize = 25 + 6 * std::mem::size_of::<usize>() - 1;

/// One line of `maps` (`start-end perms offset dev inode   path`) naming
/// a cached copy, as it reads at home.
fn mapping_as_home(line: &[u8], cache: &Cache) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let body = line.strip_suffix(b"\n")?;
    let mut fields = body.splitn(6, |&b| b == b' ');
    let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
    let (_dev, _inode, rest) = (fields.next()?, fields.next()?, fields.next()?);
    if !range.contains(&b'-') {
        return None;
    }
    let path = rest.trim_ascii_start();
    let origin = cache.origin(std::path::Path::new(std::ffi::OsStr::from_bytes(path)))?;
    Some(mapping_line(
        range,
        perms,
        offset,
        origin.dev,
        origin.ino,
        &origin.path,
    ))
}

/// A line of `maps`, laid out as the kernel lays it out.
fn mapping_line(
    range: &[u8],
    perms: &[u8],
    offset: &[u8],
    dev: u64,
    ino: u64,
    path: &[u8],
) -> Vec<u8> {
    let mut line = [range, b" ", perms, b" ", offset, b" "].concat();
    line.extend_from_slice(
        format!("{:02x}:{:02x} {ino} ", libc::major(dev), libc::minor(dev)).as_bytes(),
    );
    if line.len() < PATH_COLUMN {
        line.resize(PATH_COLUMN, b' ');
    }
    line.push(b' ');
    line.extend_from_slice(path);
    line.push(b'\n');
    line
}

/// Which of [`PROC_VIEWS`] `path` (a C string, its NUL included) names
/// as the process's own: through `/proc/self` or its home pid.
fn own_file(path: &[u8], home_pid: i32) -> Option<&'static str> {
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    let rest = path.strip_prefix(b"/proc/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (entry, name) = (&rest[..slash], &rest[slash + 1..]);
    if entry != b"self" && entry != home_pid.to_string().as_bytes() {
        return None;
    }
    PROC_VIEWS.into_iter().find(|view| view.as_bytes() == name)
}

/// An `openat` of `path` from the cwd, as it comes from a program, for
/// tests of what the agent makes of opens.
#[cfg(test)]
pub(crate) fn open(path: &str, flags: i32) -> SyscallCall {
    SyscallCall {
        nr: libc::SYS_openat as u64,
        args: [libc::AT_FDCWD as u64, 0x1000, flags as u64, 0, 0, 0],
        inputs: vec![ArgData {
            index: 1,
            bytes: [path.as_bytes(), &[0]].concat(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_line_is_laid_out_as_the_kernel_lays_it_out() {
        use std::os::unix::fs::MetadataExt;
        let maps = std::fs::read("/proc/self/maps").unwrap();
        let mut checked = 0;
        for line in maps.split_inclusive(|&b| b == b'\n') {
            let body = line.strip_suffix(b"\n").unwrap();
            let fields: Vec<&[u8]> = body.splitn(6, |&b| b == b' ').collect();
            let path = fields[5].trim_ascii_start();
            if !path.starts_with(b"/") {
                continue;
            }
            let file = std::str::from_utf8(path).unwrap();
            let Ok(meta) = std::fs::metadata(file) else {
                continue;
            };
            let built = mapping_line(
                fields[0],
                fields[1],
                fields[2],
                meta.dev(),
                meta.ino(),
                path,
            );
            assert_eq!(
                String::from_utf8_lossy(&built),
                String::from_utf8_lossy(line)
            );
            checked += 1;
        }
        assert!(checked > 0);
    }

    #[test]
    fn mappings_of_cached_copies_show_the_home_files() {
        let dir = std::env::temp_dir().join(format!("homing-view-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = Cache::new(&dir).unwrap();
        let noted = dir.join("node1-fe00-3c831-8b50-6329dbdf.000000000");
        cache
            .note_home_path(&noted, b"/usr/lib/x86_64-linux-gnu/libc.so.6")
            .unwrap();
        let unnoted = dir.join("node1-fe00-11-8b50-6329dbdf.000000000");
        let line = |dev: &str, ino: u64, path: &std::path::Path| {
            let mut line = format!("7f5de5685000-7f5de56ab000 r--p 00000000 {dev} {ino}");
            line.extend(std::iter::repeat_n(' ', PATH_COLUMN - line.len() + 1));
            format!("{line}{}\n", path.display())
        };
        let here = [
            line("00:32", 7, &noted),
            line("00:32", 8, &unnoted),
            "7ffe6cc9e000-7ffe6ccbf000 rw-p 00000000 00:00 0                          [stack]\n"
                .into(),
            "Rss:                 152 kB\n".into(),
        ]
        .concat();
        let shown = String::from_utf8(shown_as_home(here.as_bytes(), &cache)).unwrap();
        let home = line(
            "fe:00",
            0x3c831,
            std::path::Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        );
        let rest = here.split_inclusive('\n').skip(1).collect::<String>();
        assert_eq!(shown, home + &rest);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_status_tells_the_programs_own_seccomp_and_no_new_privs() {
        let mut status =
            b"Name:\tcat\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\nSpeculation:\tx\n"
                .to_vec();
        own_sandbox(&mut status, false);
        assert_eq!(
            status,
            b"Name:\tcat\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\nSpeculation:\tx\n"
        );
        let mut status = b"Name:\tcat\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\n".to_vec();
        own_sandbox(&mut status, true);
        assert_eq!(
            status,
            b"Name:\tcat\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t2\n"
        );
    }

    #[test]
    fn the_main_thread_reading_its_state_reads_that_it_runs() {
        let mut status = b"Name:\tcat\nState:\tS (sleeping)\nTgid:\t7\n".to_vec();
        running("status", &mut status);
        assert_eq!(status, b"Name:\tcat\nState:\tR (running)\nTgid:\t7\n");
        let mut stat = b"7 (a) b) S 1 7 7 0 -1\n".to_vec();
        running("stat", &mut stat);
        assert_eq!(stat, b"7 (a) b) R 1 7 7 0 -1\n");
    }

    #[test]
    fn own_files_read_plainly_become_views_of_what_they_say_here() {
        let me = std::process::id() as i32;
        let dir = std::env::temp_dir().join(format!("homing-views-{me}"));
        let cache = Cache::new(&dir).unwrap();
        for path in ["/proc/self/status", "/proc/77/maps"] {
            let view = as_view(
                open(path, libc::O_RDONLY | libc::O_CLOEXEC),
                77,
                me,
                false,
                false,
                &cache,
            );
            assert_eq!(view.nr, OPEN_PROC_VIEW, "{path}");
            assert_eq!(view.args[0], (libc::O_RDONLY | libc::O_CLOEXEC) as u64);
            let name = std::str::from_utf8(&view.inputs[0].bytes).unwrap();
            assert!(path.ends_with(name));
            // What this process's own file said (its first line names it).
            let first = view.inputs[1].bytes.split(|&b| b == b'\n').next().unwrap();
            assert!(!first.is_empty(), "{path}");
        }
        let kept = [
            open("/proc/self/status", libc::O_WRONLY),
            open("/proc/self/status", libc::O_RDONLY | libc::O_PATH),
            open("/proc/78/status", libc::O_RDONLY),
            open("/proc/self/limits", libc::O_RDONLY),
            open("/proc/self/task/77/status", libc::O_RDONLY),
            open("status", libc::O_RDONLY),
        ];
        for call in kept {
            assert_eq!(as_view(call.clone(), 77, me, true, false, &cache), call);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
