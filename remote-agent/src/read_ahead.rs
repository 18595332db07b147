//! A program's next read of a file, asked of home before the program
//! makes it.
//!
//! A program that reads a file from start to end waits a whole round trip
//! home for each read, and home and the host take turns: home reads and
//! sends while the host waits, then the host writes the bytes into the
//! program while home waits. Asking for the next read as soon as one is
//! answered lets the two overlap.
//!
//! The answer must still be one the program could have had at home. Bytes
//! read at home before the program asked are what it would have read then
//! if nothing could have told it that the file changed since: they serve
//! only while nothing has gone home or come from there since the read was
//! asked for (the traffic count of the caller's family, see
//! `Member::traffic`), and only for a few milliseconds
//! (so that not even the clock can tell), to a program of one thread
//! reading an fd it opened itself and shares with no one (no one else
//! can see the offset that the reads answered here leave unmoved at home
//! until the program's next call there).
//!
//! A read ahead may be longer than the program's reads: one round trip
//! then answers several of them, and the next is asked for once the
//! program has had half of it, so that it is there when the program gets
//! to it. Each one used up makes the next twice as long, up to
//! [`LONGEST`]; one left partly unused (the program slowed down, or did
//! something else) halves it; one left wholly unused sends the pace back
//! to its start, and two in a row stop reads ahead on that fd: such a
//! program would only pay for reads it never gets.

use std::time::{Duration, Instant};

use homing_proto::syscall::SyscallResult;
use tokio::sync::oneshot;

/// How long bytes read ahead may serve at most after they were asked for:
/// about a round trip, so that a program cannot see, even by the clock,
/// that they were read before it asked.
pub const FRESH_FOR: Duration = Duration::from_millis(2);

/// The longest a read ahead grows: one round trip then answers sixteen
/// to thirty-two of the 32 or 64 KiB reads that checksum and compression
/// tools make. It grows only while the program used up the last one well
/// within [`FRESH_FOR`] (see [`Pace::used_up`]): where the link, or the
/// CPU the agents share with the program, is slower, it stays shorter.
pub const LONGEST: usize = 1 << 20;

/// The never-stale rule for anything home said before the program
/// asked: what home answered at traffic count `armed` (`None`: not
/// answered yet), asked for at `asked`, may still answer the program, the
/// count being `traffic` now, if nothing has gone home or come from there
/// since, and within [`FRESH_FOR`].
pub fn fresh(armed: Option<u64>, asked: Instant, traffic: u64) -> bool {
    armed == Some(traffic) && asked.elapsed() < FRESH_FOR
}

/// How much of a file the next read ahead asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// None asked yet: as much as the program's read.
    Untried,
    /// This much, or the program's read if that is longer.
    Ask(usize),
    /// Two in a row went wholly unread: no more.
    Off,
}

impl Pace {
    /// How much to ask for after a read of `read` bytes (a whole number
    /// of such reads, so that the last one ends where the bytes do);
    /// `None`: nothing.
    pub fn len(self, read: usize) -> Option<usize> {
        match self {
            Self::Untried => Some(read),
            Self::Ask(len) => Some((len / read.max(1)).max(1) * read),
            Self::Off => None,
        }
    }

    /// After `ahead` was used up: twice as much if the program had all of
    /// it within half of [`FRESH_FOR`] from when it was asked, half as
    /// much if it took more than three quarters (the next might go stale
    /// before the program gets to its end), as much otherwise.
    pub fn used_up(ahead: &ReadAhead) -> Self {
        Self::after_use(ahead.len, ahead.asked.elapsed())
    }

    /// After a read ahead of `len` bytes was used up `took` after it was
    /// asked for (see [`Pace::used_up`]).
    fn after_use(len: usize, took: Duration) -> Self {
        let next = if took < FRESH_FOR / 2 {
            (len * 2).min(LONGEST.max(len))
        } else if took > FRESH_FOR * 3 / 4 {
            len / 2
        } else {
            len
        };
        Self::Ask(next.max(1))
    }

    /// After `ahead` was left: half as much if the program had some of
    /// it; if it had nothing, back to the start, or none if that is where
    /// this one was asked.
    pub fn left(self, ahead: &ReadAhead) -> Self {
        match (ahead.given, self) {
            (0, Self::Untried | Self::Off) => Self::Off,
            (0, Self::Ask(_)) => Self::Untried,
            _ => Self::Ask(ahead.len / 2),
        }
    }
}

/// What was asked of home ahead of a program reading one fd: the read
/// it reads from now, and the one after it once that one is half read.
pub struct Ahead {
    pub now: ReadAhead,
    pub after: Option<ReadAhead>,
}

/// One read asked of home ahead of the program.
pub struct ReadAhead {
    pub fd: i32,
    /// Where its bytes begin in the file.
    offset: u64,
    /// How many it asked for (fewer came back only at the file's end).
    len: usize,
    /// The caller's traffic count when it was asked for.
    traffic: u64,
    asked: Instant,
    bytes: Bytes,
    /// Of its bytes, how many the program has had.
    given: usize,
}

enum Bytes {
    Coming(oneshot::Receiver<SyscallResult>),
    Came(Vec<u8>),
}

impl ReadAhead {
    /// `len` bytes of `fd` from `offset`, asked for at traffic count
    /// `traffic`; `answer` brings home's answer to the `pread64`.
    pub fn new(
        fd: i32,
        offset: u64,
        len: usize,
        traffic: u64,
        answer: oneshot::Receiver<SyscallResult>,
    ) -> Self {
        Self {
            fd,
            offset,
            len,
            traffic,
            asked: Instant::now(),
            bytes: Bytes::Coming(answer),
            given: 0,
        }
    }

    /// Whether it may still answer the program, the traffic count being
    /// `traffic` now.
    pub fn fresh(&self, traffic: u64) -> bool {
        fresh(Some(self.traffic), self.asked, traffic)
    }

    /// Waits for its bytes, if they have not come yet; `false` if home
    /// failed the read (or is gone).
    pub async fn arrive(&mut self) -> bool {
        if let Bytes::Coming(answer) = &mut self.bytes {
            match answer.await {
                Ok(result) if result.ret >= 0 => {
                    let mut result = result;
                    let at = result.outputs.iter().position(|o| o.index == 1);
                    let bytes = at.map(|at| result.outputs.swap_remove(at).bytes);
                    self.bytes = Bytes::Came(bytes.unwrap_or_default());
                }
                _ => return false,
            }
        }
        true
    }

    /// The bytes a read of `want` gets from it, once they have come: as
    /// many as it asks while they last; what is left when the file ended
    /// within them; `None` when they cannot answer it (more is asked for
    /// than is left before the end of what was read ahead, which is not
    /// the file's).
    pub fn serve(&self, want: usize) -> Option<&[u8]> {
        let Bytes::Came(bytes) = &self.bytes else {
            return None;
        };
        let left = &bytes[self.given..];
        if want <= left.len() {
            Some(&left[..want])
        } else if bytes.len() < self.len {
            Some(left)
        } else {
            None
        }
    }

    /// The program has had `count` more of its bytes; returns the fd's
    /// offset now.
    pub fn take(&mut self, count: usize) -> u64 {
        self.given += count;
        self.offset + self.given as u64
    }

    /// Whether the program has had at least half its bytes, and it answers
    /// more than one read of `read` bytes, and the file goes on past them:
    /// the read that follows may be asked for now.
    pub fn half_read(&self, read: usize) -> Option<u64> {
        let Bytes::Came(bytes) = &self.bytes else {
            return None;
        };
        (self.len > read && self.given * 2 >= self.len && bytes.len() == self.len)
            .then(|| self.offset + self.len as u64)
    }

    /// The program has had all its bytes and the file went on past them:
    /// where the read that follows begins.
    pub fn next(&self) -> Option<u64> {
        let Bytes::Came(bytes) = &self.bytes else {
            return None;
        };
        (self.given == bytes.len() && bytes.len() == self.len)
            .then(|| self.offset + bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homing_proto::syscall::ArgData;

    fn came(len: usize, bytes: &[u8]) -> ReadAhead {
        let (tx, rx) = oneshot::channel();
        tx.send(SyscallResult {
            ret: bytes.len() as i64,
            outputs: vec![ArgData {
                index: 1,
                bytes: bytes.to_vec(),
            }],
        })
        .unwrap();
        let mut ahead = ReadAhead::new(3, 100, len, 7, rx);
        assert!(block_on(ahead.arrive()));
        ahead
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn reads_are_served_while_the_bytes_last_and_no_further() {
        let mut ahead = came(8, b"abcdefgh");
        assert_eq!(ahead.serve(3), Some(&b"abc"[..]));
        assert_eq!(ahead.take(3), 103);
        assert_eq!(ahead.next(), None);
        assert_eq!(ahead.serve(5), Some(&b"defgh"[..]));
        // Past what was read ahead, the file may go on: home must say.
        assert_eq!(ahead.serve(6), None);
        assert_eq!(ahead.take(5), 108);
        assert_eq!(ahead.next(), Some(108));
    }

    #[test]
    fn the_next_is_asked_for_once_half_is_read_if_it_answers_several_reads() {
        let mut ahead = came(8, b"abcdefgh");
        ahead.take(2);
        assert_eq!(ahead.half_read(2), None);
        ahead.take(2);
        assert_eq!(ahead.half_read(2), Some(108));
        // One read takes it all: the next waits for it.
        assert_eq!(ahead.half_read(8), None);
        let mut short = came(8, b"abcd");
        short.take(4);
        assert_eq!(short.half_read(2), None);
    }

    #[test]
    fn at_the_files_end_a_read_gets_what_is_left_then_nothing() {
        let mut ahead = came(8, b"abc");
        assert_eq!(ahead.serve(8), Some(&b"abc"[..]));
        ahead.take(3);
        assert_eq!(ahead.serve(8), Some(&b""[..]));
        assert_eq!(ahead.next(), None);
    }

    #[test]
    fn any_traffic_or_time_makes_it_stale() {
        let ahead = came(8, b"abcdefgh");
        assert!(ahead.fresh(7));
        assert!(!ahead.fresh(8));
        std::thread::sleep(FRESH_FOR);
        assert!(!ahead.fresh(7));
    }

    #[test]
    fn the_pace_grows_while_reads_ahead_are_used_and_stops_when_one_is_not() {
        assert_eq!(Pace::Untried.len(4096), Some(4096));
        let mut ahead = came(8, b"abcdefgh");
        assert_eq!(Pace::used_up(&ahead), Pace::Ask(16));
        assert_eq!(Pace::Ask(16).len(4), Some(16));
        assert_eq!(Pace::Ask(16).len(5), Some(15));
        assert_eq!(Pace::Ask(16).len(64), Some(64));
        assert_eq!(Pace::Untried.left(&ahead), Pace::Off);
        assert_eq!(Pace::Ask(16).left(&ahead), Pace::Untried);
        assert_eq!(Pace::Off.len(8), None);
        ahead.take(2);
        assert_eq!(Pace::Ask(16).left(&ahead), Pace::Ask(4));
        let (_, rx) = oneshot::channel();
        let longest = ReadAhead::new(3, 0, LONGEST, 0, rx);
        assert_eq!(Pace::used_up(&longest), Pace::Ask(LONGEST));
    }

    #[test]
    fn one_used_up_late_makes_the_next_shorter_and_one_in_between_keeps_it() {
        assert_eq!(Pace::after_use(8, FRESH_FOR / 4), Pace::Ask(16));
        assert_eq!(Pace::after_use(8, FRESH_FOR * 5 / 8), Pace::Ask(8));
        assert_eq!(Pace::after_use(8, FRESH_FOR * 7 / 8), Pace::Ask(4));
        assert_eq!(Pace::after_use(LONGEST, Duration::ZERO), Pace::Ask(LONGEST));
    }

    #[test]
    fn a_failed_read_serves_nothing() {
        let (tx, rx) = oneshot::channel();
        tx.send(SyscallResult {
            ret: -(libc::EIO as i64),
            outputs: vec![],
        })
        .unwrap();
        let mut ahead = ReadAhead::new(3, 0, 8, 0, rx);
        assert!(!block_on(ahead.arrive()));
        assert_eq!(ahead.serve(1), None);
    }
}
