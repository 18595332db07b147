//! The deputy's side of [`homing_proto::syscall::OPEN_PROC_VIEW`]: an
//! away program's own `/proc` files that tell of its memory, threads and
//! signals, made of the deputy's (what is home's) and the host's (what is
//! where the program runs).
//!
//! The program gets a copy, not a `/proc` file: its bytes are those of
//! the moment of the open, and `fstat` and `/proc/self/fd` show a memfd.
//! What it reads is right, which the deputy's own file would not be.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{IntoRawFd, OwnedFd};

use homing_proto::syscall::{SyscallCall, SyscallResult, PROC_VIEWS};
use rustix::fs::{Mode, OFlags};

/// Lines of `status` that tell of the process where it runs; the others
/// (name, ids, parent, groups, namespaces' pids, capabilities, seccomp)
/// are home's.
const STATUS_FROM_HOST: [&str; 40] = [
    "State",
    // The program's own, which the host tells apart from homing's filter.
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
    "Threads",
    "VmPeak",
    "VmSize",
    "VmLck",
    "VmPin",
    "VmHWM",
    "VmRSS",
    "RssAnon",
    "RssFile",
    "RssShmem",
    "VmData",
    "VmStk",
    "VmExe",
    "VmLib",
    "VmPTE",
    "VmSwap",
    "HugetlbPages",
    "CoreDumping",
    "THP_enabled",
    "untag_mask",
    "SigQ",
    "SigPnd",
    "ShdPnd",
    "SigBlk",
    "SigIgn",
    "SigCgt",
    "Cpus_allowed",
    "Cpus_allowed_list",
    "Mems_allowed",
    "Mems_allowed_list",
    "voluntary_ctxt_switches",
    "nonvoluntary_ctxt_switches",
    "x86_Thread_features",
    "x86_Thread_features_locked",
    "Speculation_Store_Bypass",
    "SpeculationIndirectBranch",
];

/// Fields of `stat` (numbered from 1, as proc(5) numbers them) that are
/// home's: pid, comm, parent, process group, session, terminal and its
/// foreground group, flags, priority and nice value, the unused
/// itrealvalue, start time, the RSS limit, exit signal and exit code.
/// The others (state, faults, CPU times, threads, memory, signals,
/// scheduling, layout) are the host's.
const STAT_FROM_HOME: [usize; 15] = [1, 2, 4, 5, 6, 7, 8, 9, 18, 19, 21, 22, 25, 38, 52];

/// Opens the view `call` asks for (see the module's doc): the answer is
/// the fd, at the number the deputy's own open took, or `-errno`.
pub fn open(call: &SyscallCall) -> SyscallResult {
    let answer = |ret: i64| SyscallResult {
        ret,
        outputs: vec![],
    };
    let input = |index: u8| {
        call.inputs
            .iter()
            .find(|input| input.index == index)
            .map(|input| &input.bytes[..])
    };
    let (Some(name), Some(on_host)) = (input(0), input(1)) else {
        return answer(-i64::from(libc::EINVAL));
    };
    let Some(name) = PROC_VIEWS.into_iter().find(|view| view.as_bytes() == name) else {
        return answer(-i64::from(libc::EINVAL));
    };
    match open_view(name, call.args[0] as i32, on_host) {
        Ok(fd) => answer(i64::from(fd)),
        Err(errno) => answer(-i64::from(errno.raw_os_error())),
    }
}

fn open_view(name: &str, flags: i32, on_host: &[u8]) -> rustix::io::Result<i32> {
    let flags = OFlags::from_bits_retain(flags as u32);
    // The deputy's own file, opened as the program would open it: its
    // errors are the program's, and its fd number is the one the
    // program's open would take.
    let mut own = File::from(rustix::fs::open(
        format!("/proc/self/{name}"),
        flags,
        Mode::empty(),
    )?);
    // The deputy's memory files are of no use: a view of them is the host's.
    let mut at_home = Vec::new();
    if name == "status" || name == "stat" {
        own.read_to_end(&mut at_home).map_err(errno)?;
    }
    let view = merge(name, &at_home, on_host);
    let mut copy = File::from(rustix::fs::memfd_create(
        name,
        rustix::fs::MemfdFlags::CLOEXEC,
    )?);
    copy.write_all(&view).map_err(errno)?;
    // Read-only, as the program asked, with its status flags; a file
    // description of its own, at offset 0.
    let reading = flags & (OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::LARGEFILE);
    let reopened = rustix::fs::open(
        format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(&copy)),
        OFlags::RDONLY | OFlags::CLOEXEC | reading,
        Mode::empty(),
    )?;
    let on_exec = if flags.contains(OFlags::CLOEXEC) {
        rustix::io::DupFlags::CLOEXEC
    } else {
        rustix::io::DupFlags::empty()
    };
    let mut own = OwnedFd::from(own);
    rustix::io::dup3(&reopened, &mut own, on_exec)?;
    Ok(own.into_raw_fd())
}

/// The errno of an error from `std::io`.
fn errno(error: std::io::Error) -> rustix::io::Errno {
    rustix::io::Errno::from_io_error(&error).unwrap_or(rustix::io::Errno::IO)
}

/// `name`'s view: the deputy's file `at_home` with what belongs to where
/// the program runs taken from its file `on_host`.
fn merge(name: &str, at_home: &[u8], on_host: &[u8]) -> Vec<u8> {
    match name {
        "status" => merge_status(at_home, on_host),
        "stat" => merge_stat(at_home, on_host).unwrap_or_else(|| on_host.to_vec()),
        // Memory alone: all the host's.
        _ => on_host.to_vec(),
    }
}

fn merge_status(at_home: &[u8], on_host: &[u8]) -> Vec<u8> {
    fn key(line: &[u8]) -> &[u8] {
        line.split(|&b| b == b':').next().unwrap_or_default()
    }
    let from_host = |wanted: &[u8]| {
        on_host
            .split_inclusive(|&b| b == b'\n')
            .find(|line| key(line) == wanted)
    };
    let mut view = Vec::with_capacity(at_home.len());
    for line in at_home.split_inclusive(|&b| b == b'\n') {
        let k = key(line);
        let host = STATUS_FROM_HOST
            .iter()
            .any(|wanted| wanted.as_bytes() == k)
            .then(|| from_host(k))
            .flatten();
        view.extend_from_slice(host.unwrap_or(line));
    }
    view
}

/// `stat` taken apart: the pid and comm (see
/// [`homing_shim::process::stat_comm_end`]), then the other fields' words.
struct StatFields<'a> {
    head: &'a [u8],
    words: Vec<&'a [u8]>,
}

impl<'a> StatFields<'a> {
    fn of(text: &'a [u8]) -> Option<Self> {
        let end = homing_shim::process::stat_comm_end(text)?;
        let rest = &text[end..];
        let words = rest
            .strip_suffix(b"\n")
            .unwrap_or(rest)
            .split(|&b| b == b' ')
            .filter(|word| !word.is_empty())
            .collect();
        Some(Self {
            head: &text[..end],
            words,
        })
    }
}

fn merge_stat(at_home: &[u8], on_host: &[u8]) -> Option<Vec<u8>> {
    let home = StatFields::of(at_home)?;
    let host = StatFields::of(on_host)?;
    if home.words.len() != host.words.len() {
        return None;
    }
    let mut view = home.head.to_vec();
    for (at, (home, host)) in home.words.iter().zip(&host.words).enumerate() {
        // Words begin at field 3.
        let field = at + 3;
        view.push(b' ');
        view.extend_from_slice(if STAT_FROM_HOME.contains(&field) {
            home
        } else {
            host
        });
    }
    view.push(b'\n');
    Some(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_homes_ids_and_takes_memory_threads_and_signals_from_the_host() {
        let at_home = b"Name:\tpython3\nPid:\t40\nPPid:\t12\nUid:\t1001\t1001\t1001\t1001\nThreads:\t3\nVmRSS:\t6000 kB\nSigBlk:\tfffffffffffbfeff\nSeccomp:\t0\n";
        let on_host = b"Name:\t3f2a9c\nPid:\t7\nPPid:\t2\nUid:\t1001\t1001\t1001\t1001\nThreads:\t4\nVmRSS:\t70000 kB\nSigBlk:\t0000000000000800\nSeccomp:\t2\n";
        let view = merge("status", at_home, on_host);
        assert_eq!(
            String::from_utf8(view).unwrap(),
            "Name:\tpython3\nPid:\t40\nPPid:\t12\nUid:\t1001\t1001\t1001\t1001\nThreads:\t4\nVmRSS:\t70000 kB\nSigBlk:\t0000000000000800\nSeccomp:\t2\n"
        );
    }

    #[test]
    fn stat_keeps_homes_ids_and_start_and_takes_the_rest_from_the_host() {
        // 52 fields; field N holds hN at home and cN on the host.
        let fields = |mark: &str, comm: &str| {
            let rest: Vec<String> = (3..=52).map(|n| format!("{mark}{n}")).collect();
            format!(
                "{} ({comm}) {}\n",
                if mark == "h" { 40 } else { 7 },
                rest.join(" ")
            )
        };
        let view = merge(
            "stat",
            fields("h", "a (b) c").as_bytes(),
            fields("c", "3f2a9c").as_bytes(),
        );
        let view = String::from_utf8(view).unwrap();
        let (head, rest) = view.rsplit_once(") ").unwrap();
        assert_eq!(head, "40 (a (b) c");
        let words: Vec<&str> = rest.trim_end().split(' ').collect();
        assert_eq!(words.len(), 50);
        for (at, word) in words.iter().enumerate() {
            let field = at + 3;
            let mark = if STAT_FROM_HOME.contains(&field) {
                "h"
            } else {
                "c"
            };
            assert_eq!(*word, format!("{mark}{field}"));
        }
    }

    #[test]
    fn a_view_is_read_only_at_the_number_the_open_takes_and_holds_the_merge() {
        let on_host = b"Threads:\t99\n".to_vec();
        let call = SyscallCall {
            nr: homing_proto::syscall::OPEN_PROC_VIEW,
            args: [libc::O_RDONLY as u64, 0, 0, 0, 0, 0],
            inputs: vec![
                homing_proto::syscall::ArgData {
                    index: 0,
                    bytes: b"status".to_vec(),
                },
                homing_proto::syscall::ArgData {
                    index: 1,
                    bytes: on_host,
                },
            ],
        };
        // The number the program's own open would take.
        let next = rustix::fs::open("/dev/null", OFlags::RDONLY, Mode::empty()).unwrap();
        let expected = rustix::fd::AsRawFd::as_raw_fd(&next);
        drop(next);
        let result = open(&call);
        assert_eq!(result.ret, i64::from(expected));
        let fd = result.ret;
        let text = std::fs::read_to_string(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(text.contains("\nThreads:\t99\n"), "{text}");
        assert!(
            text.contains(&format!("\nPid:\t{}\n", std::process::id())),
            "{text}"
        );
        // Read-only, and not closed on exec, as the program's open asked.
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let flags = info
            .lines()
            .find_map(|line| line.strip_prefix("flags:"))
            .map(|octal| i32::from_str_radix(octal.trim(), 8).unwrap())
            .unwrap();
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY, "{info}");
        assert_eq!(flags & libc::O_CLOEXEC, 0, "{info}");
        nix::unistd::close(fd as i32).unwrap();
    }
}
