//! Waits on fds (`poll`, `select`, `epoll`) that include a signalfd of the
//! program's, woken by a signal raised on the host.
//!
//! A program's signalfds live at home with its other fds, and the signals
//! home raises for it stay pending there for them (the deputy does not
//! forward what a signalfd asks for). A signal raised on the host (a
//! timer's SIGALRM, SIGXCPU) is pending in the guest instead, where home's
//! signalfd cannot see it. A `read` of the signalfd takes it from there
//! (see `Context::read_signals_here` in [`crate::guest`]); a wait on fds
//! must then see the signalfd ready too, as the kernel's `signalfd_poll`
//! would: readable while one of its signals is pending for the thread or
//! its process.
//!
//! So a wait whose fds include such a signalfd, made while one of its
//! signals is pending on the host, runs at home without waiting, and its
//! answer gets the signalfd's readiness added; one already waiting at
//! home when such a signal comes is ended there (the kernel re-polls
//! every fd before it returns `EINTR`, so what was ready at home still
//! comes) and gets the same. The program then reads the signalfd, and
//! that read takes the signal here.
//!
//! This module only reads and rewrites the calls and answers; the guest
//! code decides when.

use std::collections::HashMap;

use homing_proto::syscall::{ArgData, SyscallCall, SyscallResult};

const POLLFD: usize = 8;
const EPOLL_EVENT: usize = 12;
/// What `signalfd_poll` reports when a signal is there.
const READABLE: i16 = libc::POLLIN | libc::POLLRDNORM;
/// No wait looks at more fds than this (the kernel's own default limit).
const MAX_WAITED: usize = 1 << 20;

/// One signalfd a wait looks at, and what it reports when it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watch {
    /// The signalfd's number.
    pub fd: i32,
    /// The signals it asks for that may be raised on the host.
    pub signals: u64,
    /// For an epoll wait: the events it was registered for and its data.
    pub registered: Option<(u32, u64)>,
}

/// The signalfds registered in each of a program's epoll instances, by
/// epoll fd then signalfd: `(events, data)` as given to `epoll_ctl`.
pub(crate) type EpollWatches = HashMap<i32, HashMap<i32, (u32, u64)>>;

/// Notes a successful `epoll_ctl(epfd, op, fd, event)`: registrations
/// of signalfds (those in `signalfds`) are kept, and forgotten again.
pub(crate) fn note_epoll_ctl(
    watches: &mut EpollWatches,
    args: &[u64; 6],
    event: Option<&[u8]>,
    signalfds: &HashMap<i32, u64>,
) {
    let (epfd, op, fd) = (args[0] as i32, args[1] as i32, args[2] as i32);
    match op {
        libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD if signalfds.contains_key(&fd) => {
            let Some(event) = event.filter(|e| e.len() >= EPOLL_EVENT) else {
                return;
            };
            let events = u32::from_ne_bytes(event[..4].try_into().unwrap_or_default());
            let data = u64::from_ne_bytes(event[4..12].try_into().unwrap_or_default());
            watches.entry(epfd).or_default().insert(fd, (events, data));
        }
        libc::EPOLL_CTL_DEL => {
            if let Some(registered) = watches.get_mut(&epfd) {
                registered.remove(&fd);
            }
        }
        _ => {}
    }
}

/// Whether call `nr` waits on fds: a wait [`watches`] looks into.
pub(crate) fn waits_on_fds(nr: u64) -> bool {
    [
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
    ]
    .contains(&(nr as i64))
}

/// The signalfds of the program's (`signalfds`: fd to the signals it asks
/// for that may be raised on the host) that wait `nr` with `args` looks at
/// for reading. `read(addr, len)` reads the program's memory.
pub(crate) fn watches(
    nr: u64,
    args: &[u64; 6],
    signalfds: &HashMap<i32, u64>,
    epoll: &EpollWatches,
    read: impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> Vec<Watch> {
    let watch = |fd: i32, registered| {
        let signals = *signalfds.get(&fd)?;
        (signals != 0).then_some(Watch {
            fd,
            signals,
            registered,
        })
    };
    match nr as i64 {
        libc::SYS_poll | libc::SYS_ppoll => {
            let count = args[1] as usize;
            if count == 0 || count > MAX_WAITED {
                return vec![];
            }
            let Some(pollfds) = read(args[0], count * POLLFD) else {
                return vec![];
            };
            let mut found: Vec<Watch> = Vec::new();
            for pollfd in pollfds.chunks_exact(POLLFD) {
                let (fd, events) = pollfd_fields(pollfd);
                if events & READABLE != 0 && !found.iter().any(|w| w.fd == fd) {
                    found.extend(watch(fd, None));
                }
            }
            found
        }
        libc::SYS_select | libc::SYS_pselect6 => {
            let count = (args[0] as u32 as usize).min(MAX_WAITED);
            if args[1] == 0 || count == 0 {
                return vec![];
            }
            let Some(readable) = read(args[1], set_bytes(count)) else {
                return vec![];
            };
            signalfds
                .keys()
                .filter(|&&fd| (fd as usize) < count && bit(&readable, fd as usize))
                .filter_map(|&fd| watch(fd, None))
                .collect()
        }
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => epoll
            .get(&(args[0] as i32))
            .into_iter()
            .flatten()
            .filter(|(_, (events, _))| events & libc::EPOLLIN as u32 != 0)
            .filter_map(|(&fd, &registered)| watch(fd, Some(registered)))
            .collect(),
        _ => vec![],
    }
}

/// Makes wait `call` return at once: its timeout becomes zero. Returns
/// the index of a timeout argument whose written-back value must not reach
/// the program (the time it had left is the time it gave).
pub(crate) fn without_waiting(call: &mut SyscallCall) -> Option<u8> {
    let zero_timeout = |call: &mut SyscallCall, index: u8, len: usize| {
        // A null timeout (wait for ever) gets one: any non-null value
        // makes the deputy pass a buffer of its own.
        if call.args[usize::from(index)] == 0 {
            call.args[usize::from(index)] = 1;
        }
        call.inputs.retain(|input| input.index != index);
        call.inputs.push(ArgData {
            index,
            bytes: vec![0; len],
        });
        Some(index)
    };
    const TIMESPEC: usize = 16;
    match call.nr as i64 {
        libc::SYS_poll => {
            call.args[2] = 0;
            None
        }
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait => {
            call.args[3] = 0;
            None
        }
        libc::SYS_ppoll => zero_timeout(call, 2, TIMESPEC),
        // A timeval is as long as a timespec.
        libc::SYS_select | libc::SYS_pselect6 => zero_timeout(call, 4, TIMESPEC),
        // Read, never written back.
        libc::SYS_epoll_pwait2 => {
            zero_timeout(call, 3, TIMESPEC);
            None
        }
        _ => None,
    }
}

/// Adds to `result`, home's answer to wait `nr` with `args`, the readiness
/// of the signalfds in `ready` (watches whose signals are pending on the
/// host), as the kernel would have reported it with the rest. An `EINTR`
/// (the wait was ended for them, or for another signal) counts as nothing
/// ready at home. `read` reads the program's memory. Other errors stay.
pub(crate) fn with_ready(
    nr: u64,
    args: &[u64; 6],
    mut result: SyscallResult,
    ready: &[Watch],
    read: impl Fn(u64, usize) -> Option<Vec<u8>>,
) -> SyscallResult {
    let interrupted = result.ret == -i64::from(libc::EINTR);
    if ready.is_empty() || (result.ret < 0 && !interrupted) {
        return result;
    }
    if interrupted {
        result.ret = 0;
        result.outputs.clear();
    }
    let is_ready = |fd: i32| ready.iter().any(|w| w.fd == fd);
    match nr as i64 {
        libc::SYS_poll | libc::SYS_ppoll => {
            let count = args[1] as usize;
            let mut pollfds = match result.output(0) {
                Some(bytes) => bytes.to_vec(),
                None => match read(args[0], count * POLLFD) {
                    Some(mut bytes) => {
                        bytes.chunks_exact_mut(POLLFD).for_each(|p| p[6..8].fill(0));
                        bytes
                    }
                    None => return result,
                },
            };
            for pollfd in pollfds.chunks_exact_mut(POLLFD) {
                let (fd, events) = pollfd_fields(pollfd);
                let revents = i16::from_ne_bytes([pollfd[6], pollfd[7]]);
                if !is_ready(fd) || events & READABLE == 0 {
                    continue;
                }
                if revents == 0 {
                    result.ret += 1;
                }
                pollfd[6..8].copy_from_slice(&(revents | (events & READABLE)).to_ne_bytes());
            }
            set_output(&mut result, 0, pollfds);
        }
        libc::SYS_select | libc::SYS_pselect6 => {
            let count = args[0] as u32 as usize;
            let len = set_bytes(count);
            if interrupted {
                for index in 1..=3u8 {
                    if args[usize::from(index)] != 0 {
                        set_output(&mut result, index, vec![0; len]);
                    }
                }
            }
            let (Some(asked), Some(mut readable)) =
                (read(args[1], len), result.output(1).map(<[u8]>::to_vec))
            else {
                return result;
            };
            for watch in ready {
                let fd = watch.fd as usize;
                if fd < count && bit(&asked, fd) && !bit(&readable, fd) {
                    readable[fd / 8] |= 1 << (fd % 8);
                    result.ret += 1;
                }
            }
            set_output(&mut result, 1, readable);
        }
        libc::SYS_epoll_wait | libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => {
            let room = (args[2] as u32 as usize).saturating_sub(result.ret as usize);
            let mut events = result.output(1).map(<[u8]>::to_vec).unwrap_or_default();
            let reported = |events: &[u8], data: u64| {
                events
                    .chunks_exact(EPOLL_EVENT)
                    .any(|e| e[4..12] == data.to_ne_bytes())
            };
            let mut added = 0;
            for &(registered, data) in ready.iter().filter_map(|w| w.registered.as_ref()) {
                if added == room || reported(&events, data) {
                    continue;
                }
                let kinds = registered & (libc::EPOLLIN | libc::EPOLLRDNORM) as u32;
                events.extend_from_slice(&kinds.to_ne_bytes());
                events.extend_from_slice(&data.to_ne_bytes());
                added += 1;
            }
            result.ret += added as i64;
            set_output(&mut result, 1, events);
        }
        _ => {}
    }
    result
}

fn pollfd_fields(pollfd: &[u8]) -> (i32, i16) {
    let fd = i32::from_ne_bytes(pollfd[..4].try_into().unwrap_or_default());
    (fd, i16::from_ne_bytes([pollfd[4], pollfd[5]]))
}

fn set_bytes(count: usize) -> usize {
    count.div_ceil(64) * 8
}

fn bit(set: &[u8], fd: usize) -> bool {
    set.get(fd / 8)
        .is_some_and(|byte| byte & (1 << (fd % 8)) != 0)
}

fn set_output(result: &mut SyscallResult, index: u8, bytes: Vec<u8>) {
    result.outputs.retain(|output| output.index != index);
    result.outputs.push(ArgData { index, bytes });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pollfd(fd: i32, events: i16, revents: i16) -> Vec<u8> {
        [
            &fd.to_ne_bytes()[..],
            &events.to_ne_bytes(),
            &revents.to_ne_bytes(),
        ]
        .concat()
    }

    fn answer(ret: i64, outputs: Vec<ArgData>) -> SyscallResult {
        SyscallResult { ret, outputs }
    }

    const SIGALRM: u64 = 1 << (libc::SIGALRM - 1);

    #[test]
    fn a_polled_signalfd_is_added_to_what_home_found_ready_and_counted_once() {
        let signalfds = HashMap::from([(5, SIGALRM)]);
        let program = [
            pollfd(3, libc::POLLIN, 0),
            pollfd(5, libc::POLLIN, 0),
            pollfd(7, libc::POLLOUT, 0),
        ]
        .concat();
        let read = |_, len: usize| Some(program[..len].to_vec());
        let args = [0x1000, 3, 0, 0, 0, 0];
        let found = watches(
            libc::SYS_poll as u64,
            &args,
            &signalfds,
            &HashMap::new(),
            read,
        );
        assert_eq!(found.len(), 1);
        let home = [
            pollfd(3, libc::POLLIN, libc::POLLIN),
            pollfd(5, libc::POLLIN, 0),
            pollfd(7, libc::POLLOUT, libc::POLLOUT),
        ]
        .concat();
        let merged = with_ready(
            libc::SYS_poll as u64,
            &args,
            answer(
                2,
                vec![ArgData {
                    index: 0,
                    bytes: home,
                }],
            ),
            &found,
            read,
        );
        assert_eq!(merged.ret, 3);
        assert_eq!(
            &merged.output(0).unwrap()[8..16],
            &pollfd(5, libc::POLLIN, libc::POLLIN)[..]
        );
        // Ended at home with nothing ready there: only the signalfd.
        let merged = with_ready(
            libc::SYS_poll as u64,
            &args,
            answer(-i64::from(libc::EINTR), vec![]),
            &found,
            read,
        );
        assert_eq!(merged.ret, 1);
        let revents: Vec<i16> = merged
            .output(0)
            .unwrap()
            .chunks_exact(POLLFD)
            .map(|p| i16::from_ne_bytes([p[6], p[7]]))
            .collect();
        assert_eq!(revents, [0, libc::POLLIN, 0]);
    }

    #[test]
    fn a_selected_signalfd_is_set_in_the_readable_set_only_if_asked_for() {
        let signalfds = HashMap::from([(4, SIGALRM), (6, SIGALRM)]);
        let mut asked = [0u8; 8];
        asked[0] = 1 << 4 | 1 << 2;
        let read = |_, len: usize| Some(asked[..len].to_vec());
        let args = [8, 0x1000, 0, 0, 0, 0];
        let found = watches(
            libc::SYS_select as u64,
            &args,
            &signalfds,
            &HashMap::new(),
            read,
        );
        assert_eq!(found.iter().map(|w| w.fd).collect::<Vec<_>>(), [4]);
        let merged = with_ready(
            libc::SYS_select as u64,
            &args,
            answer(-i64::from(libc::EINTR), vec![]),
            &found,
            read,
        );
        assert_eq!(merged.ret, 1);
        assert_eq!(merged.output(1).unwrap()[0], 1 << 4);
    }

    #[test]
    fn an_epoll_wait_gets_the_signalfds_event_with_its_data_unless_home_gave_it() {
        let signalfds = HashMap::from([(5, SIGALRM)]);
        let mut epoll = EpollWatches::new();
        let event = [
            &(libc::EPOLLIN as u32).to_ne_bytes()[..],
            &77u64.to_ne_bytes(),
        ]
        .concat();
        note_epoll_ctl(
            &mut epoll,
            &[9, libc::EPOLL_CTL_ADD as u64, 5, 0, 0, 0],
            Some(&event),
            &signalfds,
        );
        let args = [9, 0x1000, 4, 0, 0, 0];
        let found = watches(
            libc::SYS_epoll_wait as u64,
            &args,
            &signalfds,
            &epoll,
            |_, _| None,
        );
        assert_eq!(found[0].registered, Some((libc::EPOLLIN as u32, 77)));
        let merged = with_ready(
            libc::SYS_epoll_wait as u64,
            &args,
            answer(0, vec![]),
            &found,
            |_, _| None,
        );
        assert_eq!(merged.ret, 1);
        assert_eq!(merged.output(1).unwrap(), &event[..]);
        let merged = with_ready(
            libc::SYS_epoll_wait as u64,
            &args,
            answer(
                1,
                vec![ArgData {
                    index: 1,
                    bytes: event.clone(),
                }],
            ),
            &found,
            |_, _| None,
        );
        assert_eq!(merged.ret, 1);
        note_epoll_ctl(
            &mut epoll,
            &[9, libc::EPOLL_CTL_DEL as u64, 5, 0, 0, 0],
            None,
            &signalfds,
        );
        let args = [9, 0x1000, 4, 0, 0, 0];
        assert!(watches(
            libc::SYS_epoll_wait as u64,
            &args,
            &signalfds,
            &epoll,
            |_, _| None
        )
        .is_empty());
    }

    #[test]
    fn a_wait_without_waiting_has_a_zero_timeout_and_hides_it() {
        let mut ppoll = SyscallCall {
            nr: libc::SYS_ppoll as u64,
            args: [0x1000, 1, 0, 0, 8, 0],
            inputs: vec![],
        };
        assert_eq!(without_waiting(&mut ppoll), Some(2));
        assert_ne!(ppoll.args[2], 0);
        assert_eq!(ppoll.inputs[0].bytes, vec![0; 16]);
        let mut poll = SyscallCall {
            nr: libc::SYS_poll as u64,
            args: [0x1000, 1, 5000, 0, 0, 0],
            inputs: vec![],
        };
        assert_eq!(without_waiting(&mut poll), None);
        assert_eq!(poll.args[2], 0);
    }
}
