//! A program's next path lookups, asked of home before it makes them.
//!
//! Programs look paths up in long runs, the same run each time they run:
//! a compiler driver tries some forty places for each of its programs, a
//! compiler's `realpath` reads every prefix of each header it tries. Each
//! lookup costs a round trip home. The host learns which lookup followed
//! which ([`Successors`]), and when a program's lookup goes home, the
//! lookups that followed it last time go right behind it. While the
//! program then makes exactly those, they are answered on the host.
//!
//! Only lookups that change nothing go ahead ([`is_lookup`]: `stat`,
//! `access`, `readlink` and their `at` forms, of a path), so one asked
//! for and never made leaves no trace at home but a symbolic link's
//! atime. An open that cannot create goes ahead too, for the answer that
//! a path leads nowhere (a compiler tries each directory of its include
//! path in turn): home's agent only looks its path up and answers why it
//! found nothing, never opens what it finds, and only such an answer
//! serves. So does an exec, as a `stat` of its path, for the error its
//! walk meets (`execvp` tries each directory of `PATH`; see
//! [`exec_refused`]). Their answers serve under the rule that keeps every answer the
//! host gives from home's past never stale: nothing has gone home or come
//! from there since the lookup that brought them was answered, for the
//! program's family (see `Member::traffic`), at most
//! [`crate::read_ahead::FRESH_FOR`] has passed since they were asked
//! for, and the program has one thread. Any call the program makes that
//! is not the next one expected drops the rest.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use homing_proto::syscall::{opens_only_what_is_there, Dir, PtrArg, SyscallCall, SyscallResult};
use tokio::sync::oneshot;

/// How many lookups go ahead of one at most.
pub const MOST_AHEAD: usize = 48;

/// How many go ahead of a program's first lookup to go home.
const FIRST_AHEAD: usize = 8;

/// How many lookups the host remembers the successor of; past that it
/// forgets them all and learns again.
const MOST_REMEMBERED: usize = 16384;

/// A successor is followed once it came after its lookup this many times
/// in a row: a lookup that different ones follow (the first prefix of
/// every path, `/usr`) sends none ahead.
const CONFIRMED: u8 = 2;

/// Whether `nr(args)` only looks a path up: a `stat`, `access` or
/// `readlink` of a path (not of an fd, `AT_EMPTY_PATH`), or an open that
/// cannot create (see [`is_open`]).
pub fn is_lookup(nr: u64, args: &[u64; 6]) -> bool {
    let empty_path = |flags: u64| flags & libc::AT_EMPTY_PATH as u64 != 0;
    match nr as i64 {
        libc::SYS_newfstatat | libc::SYS_faccessat2 => !empty_path(args[3]),
        libc::SYS_statx => !empty_path(args[2]),
        libc::SYS_open => opens_only_what_is_there(args[1]),
        libc::SYS_openat => opens_only_what_is_there(args[2]),
        _ => arguments(nr).is_some(),
    }
}

/// Whether lookup `nr` is an open: asked ahead, only an answer that its
/// path leads nowhere may serve (home's agent gives no other).
pub fn is_open(nr: u64) -> bool {
    [libc::SYS_open, libc::SYS_openat].contains(&(nr as i64))
}

/// How many arguments lookup `nr` takes; the registers past them hold
/// whatever the program left there (an open that cannot create takes no
/// mode).
fn arguments(nr: u64) -> Option<usize> {
    Some(match nr as i64 {
        libc::SYS_stat | libc::SYS_lstat | libc::SYS_access | libc::SYS_open => 2,
        libc::SYS_readlink | libc::SYS_faccessat | libc::SYS_openat => 3,
        libc::SYS_readlinkat | libc::SYS_newfstatat | libc::SYS_faccessat2 => 4,
        libc::SYS_statx => 5,
        _ => return None,
    })
}

/// A lookup as the program makes it, whoever makes it: its number, its
/// arguments with each pointer only null or not (where the answer goes
/// differs between processes, not the answer), and its path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LookupKey {
    nr: u64,
    args: [u64; 6],
    inputs: Vec<(u8, Vec<u8>)>,
}

impl LookupKey {
    /// The key of `call`, whose pointer arguments are `ptrs`.
    pub fn of(call: &SyscallCall, ptrs: &[PtrArg]) -> Self {
        let mut args = call.args;
        let used = arguments(call.nr).unwrap_or(args.len());
        args[used..].fill(0);
        for ptr in ptrs {
            let arg = &mut args[usize::from(ptr.index)];
            *arg = u64::from(*arg != 0);
        }
        Self {
            nr: call.nr,
            args,
            inputs: call
                .inputs
                .iter()
                .map(|input| (input.index, input.bytes.clone()))
                .collect(),
        }
    }

    /// The key of an `execve` of `path`: asked ahead, a `stat` of the
    /// path stands for it, whose answer serves only where it says the
    /// path leads nowhere (see [`exec_refused`]).
    pub fn exec(path: &[u8]) -> Self {
        Self {
            nr: libc::SYS_execve as u64,
            args: [1, 0, 0, 0, 0, 0],
            inputs: vec![(0, path.iter().copied().chain([0]).collect())],
        }
    }

    fn is_exec(&self) -> bool {
        self.nr == libc::SYS_execve as u64
    }

    /// The call to send home for it (pointers only need to be non-null
    /// there: the answer comes back as bytes).
    fn call(&self) -> SyscallCall {
        if self.is_exec() {
            return SyscallCall {
                nr: libc::SYS_newfstatat as u64,
                args: [libc::AT_FDCWD as u64, 1, 1, 0, 0, 0],
                inputs: self
                    .inputs
                    .iter()
                    .map(|(_, path)| homing_proto::syscall::ArgData {
                        index: 1,
                        bytes: path.clone(),
                    })
                    .collect(),
            };
        }
        SyscallCall {
            nr: self.nr,
            args: self.args,
            inputs: self
                .inputs
                .iter()
                .map(|(index, bytes)| homing_proto::syscall::ArgData {
                    index: *index,
                    bytes: bytes.clone(),
                })
                .collect(),
        }
    }
}

/// What came after each lookup the programs on this host made.
#[derive(Debug, Default)]
pub struct Successors {
    /// The call that came next (`None`: not a lookup) and how many times
    /// in a row it did.
    next: HashMap<LookupKey, (Option<LookupKey>, u8)>,
}

impl Successors {
    /// `after` came right after lookup `before` (`None`: a call that is no
    /// lookup).
    pub fn learn(&mut self, before: LookupKey, after: Option<LookupKey>) {
        if self.next.len() >= MOST_REMEMBERED && !self.next.contains_key(&before) {
            self.next.clear();
        }
        let entry = self.next.entry(before).or_insert((None, 0));
        if entry.0 == after {
            entry.1 = entry.1.saturating_add(1);
        } else {
            *entry = (after, 1);
        }
    }

    /// The lookups that followed `from` the last times, in order, as far
    /// as each was confirmed, at most `most` and none twice. Past
    /// an exec only another exec (the next place a `PATH` search tries):
    /// what followed an exec that worked was the new program's, which
    /// nothing asked before the exec may answer.
    pub fn predict(&self, from: &LookupKey, most: usize) -> Vec<LookupKey> {
        let mut ahead: Vec<LookupKey> = Vec::new();
        let mut at = from;
        while ahead.len() < most.min(MOST_AHEAD) {
            let Some((Some(next), times)) = self.next.get(at) else {
                break;
            };
            if *times < CONFIRMED || next == from || ahead.contains(next) {
                break;
            }
            if at.is_exec() && !next.is_exec() {
                break;
            }
            ahead.push(next.clone());
            at = next;
        }
        ahead
    }
}

/// How many lookups go ahead of a program's next one to go home: twice
/// as many as the last time when one of those served the program, half
/// as many when none did (home answered too late for them to be fresh,
/// or the program did something else), from [`FIRST_AHEAD`] up to
/// [`MOST_AHEAD`] and never fewer than one. A program whose lookups
/// cannot be answered ahead (a loaded machine makes every round trip
/// longer than an answer stays fresh) then costs home one more lookup
/// per lookup, not [`MOST_AHEAD`] more.
#[derive(Debug)]
pub struct Pace {
    count: usize,
    /// Whether the last lookups asked ahead served the program so far
    /// (`None`: none are out).
    out: Option<bool>,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            count: FIRST_AHEAD,
            out: None,
        }
    }
}

impl Pace {
    /// How many may go ahead now, the last ones having done what they did.
    pub fn count(&mut self) -> usize {
        match self.out.take() {
            Some(true) => self.count = (self.count * 2).min(MOST_AHEAD),
            Some(false) => self.count = (self.count / 2).max(1),
            None => {}
        }
        self.count
    }

    /// Some went ahead.
    pub fn asked(&mut self) {
        self.out = Some(false);
    }

    /// One of those served the program.
    pub fn served(&mut self) {
        if self.out.is_some() {
            self.out = Some(true);
        }
    }
}

/// Lookups asked of home ahead of a program, behind one of its own.
pub struct LookupsAhead {
    /// The program's lookup they went behind (its notification's id).
    pub behind: u64,
    /// The traffic count once that lookup was answered (`None` until then).
    armed: Option<u64>,
    asked: Instant,
    queue: VecDeque<(LookupKey, oneshot::Receiver<SyscallResult>)>,
}

impl LookupsAhead {
    /// Lookups sent behind the program's call `behind`: each key with where
    /// its answer will come.
    pub fn new(
        behind: u64,
        queue: VecDeque<(LookupKey, oneshot::Receiver<SyscallResult>)>,
    ) -> Self {
        Self {
            behind,
            armed: None,
            asked: Instant::now(),
            queue,
        }
    }

    /// The lookup they went behind was answered at traffic count `traffic`.
    pub fn arm(&mut self, traffic: u64) {
        self.armed = Some(traffic);
    }

    /// Whether they may still answer the program, the traffic count being
    /// `traffic` now.
    pub fn fresh(&self, traffic: u64) -> bool {
        crate::read_ahead::fresh(self.armed, self.asked, traffic)
    }

    /// Where the answer to `key` comes, if it is the next one expected; any
    /// other leaves nothing to serve.
    pub fn next_for(&mut self, key: &LookupKey) -> Option<oneshot::Receiver<SyscallResult>> {
        match self.queue.pop_front() {
            Some((expected, answer)) if expected == *key => Some(answer),
            _ => {
                self.queue.clear();
                None
            }
        }
    }

    /// Whether any is left to serve.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The error an `execve` of a path gets where a `stat` of it got
/// `result`: one the walk to the path gives (it leads nowhere, or
/// somewhere its user may not search), which the exec's own walk, made
/// with the same rights and following links alike, would give too.
/// `None` where the path leads somewhere: only the exec can tell then.
pub fn exec_refused(result: &SyscallResult) -> Option<i32> {
    let walk_errors = [
        libc::ENOENT,
        libc::ENOTDIR,
        libc::EACCES,
        libc::ELOOP,
        libc::ENAMETOOLONG,
    ];
    let errno = i32::try_from(-result.ret).ok()?;
    walk_errors.contains(&errno).then_some(errno)
}

/// The calls to send for `keys`.
pub fn calls(keys: &[LookupKey]) -> impl Iterator<Item = SyscallCall> + '_ {
    keys.iter().map(LookupKey::call)
}

/// Whether `ptrs` take no input but paths: what [`LookupKey::of`] keys
/// and a lookup's inputs are.
pub fn only_paths(ptrs: &[PtrArg]) -> bool {
    ptrs.iter()
        .all(|p| p.dir == Dir::Out || p.len == homing_proto::syscall::Len::CStr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use homing_proto::syscall::{route, ArgData, Route};

    fn stat(path: &str, buffer: u64) -> (SyscallCall, LookupKey) {
        let call = SyscallCall {
            nr: libc::SYS_stat as u64,
            args: [0x1000, buffer, 0, 0, 0, 0],
            inputs: vec![ArgData {
                index: 0,
                bytes: format!("{path}\0").into_bytes(),
            }],
        };
        let Route::Forward(ptrs) = route(call.nr, &call.args) else {
            panic!("stat is forwarded");
        };
        let key = LookupKey::of(&call, &ptrs);
        (call, key)
    }

    #[test]
    fn lookups_are_those_of_paths_that_change_nothing() {
        let none = [0; 6];
        assert!(is_lookup(libc::SYS_stat as u64, &none));
        assert!(is_lookup(libc::SYS_readlink as u64, &none));
        let empty = libc::AT_EMPTY_PATH as u64;
        assert!(!is_lookup(
            libc::SYS_newfstatat as u64,
            &[3, 0, 0, empty, 0, 0]
        ));
        assert!(is_lookup(libc::SYS_newfstatat as u64, &[3, 0, 0, 0, 0, 0]));
        assert!(!is_lookup(libc::SYS_statx as u64, &[3, 0, empty, 0, 0, 0]));
        assert!(is_lookup(libc::SYS_openat as u64, &none));
        let create = libc::O_CREAT as u64;
        assert!(!is_lookup(
            libc::SYS_openat as u64,
            &[3, 0, create, 0, 0, 0]
        ));
        assert!(!is_lookup(libc::SYS_open as u64, &[0, create, 0, 0, 0, 0]));
        let tmpfile = libc::O_TMPFILE as u64;
        assert!(!is_lookup(libc::SYS_open as u64, &[0, tmpfile, 0, 0, 0, 0]));
        assert!(!is_lookup(libc::SYS_unlink as u64, &none));
    }

    #[test]
    fn a_key_does_not_depend_on_where_the_answer_goes_nor_on_unused_registers() {
        let (_, here) = stat("/usr", 0x7ffc_0000);
        let (mut call, there) = stat("/usr", 0x7ffd_1230);
        assert_eq!(here, there);
        call.args[2] = 0xdead;
        let Route::Forward(ptrs) = route(call.nr, &call.args) else {
            panic!("stat is forwarded");
        };
        assert_eq!(LookupKey::of(&call, &ptrs), here);
        assert_ne!(here, stat("/usr/lib", 0x7ffc_0000).1);
        assert_eq!(here.call().args[1], 1);
    }

    #[test]
    fn an_exec_is_asked_ahead_as_a_stat_that_serves_only_where_the_path_leads_nowhere() {
        let key = LookupKey::exec(b"/usr/local/bin/as");
        let call = key.call();
        assert_eq!(call.nr, libc::SYS_newfstatat as u64);
        assert_eq!(call.args[0], libc::AT_FDCWD as u64);
        assert_eq!(call.args[3], 0, "follows links, as an exec does");
        assert_eq!(call.inputs[0].index, 1);
        assert_eq!(call.inputs[0].bytes, b"/usr/local/bin/as\0");
        assert_ne!(key, stat("/usr/local/bin/as", 8).1);
        let answer = |ret: i64| SyscallResult {
            ret,
            outputs: vec![],
        };
        assert_eq!(exec_refused(&answer(-2)), Some(libc::ENOENT));
        assert_eq!(exec_refused(&answer(-13)), Some(libc::EACCES));
        assert_eq!(exec_refused(&answer(0)), None);
        assert_eq!(exec_refused(&answer(-(libc::EIO as i64))), None);
    }

    #[test]
    fn past_an_exec_only_the_next_exec_is_predicted() {
        let run = [
            stat("/usr/bin/as", 8).1,
            LookupKey::exec(b"/usr/local/bin/as"),
            LookupKey::exec(b"/usr/bin/as"),
            stat("/etc/ld.so.preload", 8).1,
        ];
        let mut successors = Successors::default();
        for _ in 0..2 {
            for pair in run.windows(2) {
                successors.learn(pair[0].clone(), Some(pair[1].clone()));
            }
        }
        assert_eq!(successors.predict(&run[0], MOST_AHEAD), run[1..3].to_vec());
        assert_eq!(successors.predict(&run[1], MOST_AHEAD), run[2..3].to_vec());
        assert!(successors.predict(&run[2], MOST_AHEAD).is_empty());
    }

    #[test]
    fn a_run_seen_twice_is_predicted_up_to_where_it_ended() {
        let run: Vec<LookupKey> = ["/a", "/a/b", "/a/b/c"]
            .iter()
            .map(|p| stat(p, 8).1)
            .collect();
        let mut successors = Successors::default();
        for _ in 0..2 {
            successors.learn(run[0].clone(), Some(run[1].clone()));
            successors.learn(run[1].clone(), Some(run[2].clone()));
            successors.learn(run[2].clone(), None);
        }
        assert_eq!(successors.predict(&run[0], MOST_AHEAD), run[1..].to_vec());
        // Followed once by something else: unconfirmed, nothing goes ahead.
        successors.learn(run[1].clone(), Some(stat("/x", 8).1));
        assert_eq!(successors.predict(&run[0], MOST_AHEAD), run[1..2].to_vec());
        assert!(successors.predict(&run[1], MOST_AHEAD).is_empty());
    }

    #[test]
    fn the_pace_doubles_while_lookups_ahead_serve_and_halves_while_they_do_not() {
        let mut pace = Pace::default();
        assert_eq!(pace.count(), FIRST_AHEAD);
        pace.asked();
        pace.served();
        assert_eq!(pace.count(), 2 * FIRST_AHEAD);
        pace.asked();
        pace.served();
        assert_eq!(pace.count(), 4 * FIRST_AHEAD);
        pace.asked();
        pace.served();
        assert_eq!(pace.count(), MOST_AHEAD, "at most");
        // Nothing asked: nothing learned.
        assert_eq!(pace.count(), MOST_AHEAD);
        for _ in 0..10 {
            pace.asked();
            pace.count();
        }
        assert_eq!(pace.count(), 1, "never fewer than one");
        let run: Vec<LookupKey> = ["/a", "/b", "/c"].iter().map(|p| stat(p, 8).1).collect();
        let mut successors = Successors::default();
        for _ in 0..2 {
            successors.learn(run[0].clone(), Some(run[1].clone()));
            successors.learn(run[1].clone(), Some(run[2].clone()));
        }
        assert_eq!(successors.predict(&run[0], 1), run[1..2].to_vec());
    }

    #[test]
    fn a_cycle_is_predicted_once() {
        let (a, b) = (stat("/a", 8).1, stat("/b", 8).1);
        let mut successors = Successors::default();
        for _ in 0..3 {
            successors.learn(a.clone(), Some(b.clone()));
            successors.learn(b.clone(), Some(a.clone()));
        }
        assert_eq!(successors.predict(&a, MOST_AHEAD), vec![b]);
    }

    #[test]
    fn only_the_next_expected_is_served_and_anything_else_drops_the_rest() {
        let keys: Vec<LookupKey> = ["/a", "/b", "/c"].iter().map(|p| stat(p, 8).1).collect();
        let queue = keys
            .iter()
            .map(|key| (key.clone(), oneshot::channel().1))
            .collect();
        let mut ahead = LookupsAhead::new(7, queue);
        assert!(!ahead.fresh(3));
        ahead.arm(3);
        assert!(ahead.fresh(3) && !ahead.fresh(4));
        assert!(ahead.next_for(&keys[0]).is_some());
        assert!(ahead.next_for(&keys[2]).is_none());
        assert!(ahead.is_empty());
    }
}
