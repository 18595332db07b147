//! Write tracking of a running process: after tracking starts, the pages
//! it writes, and only those, are listed, once each.
//!
//! The workload is this test binary run again with `HOMING_TRACK_CHILD`
//! set: it fills a buffer, prints its address, then writes (or, after
//! `drop`, drops) the page whose index it reads from stdin and answers
//! with a line.

#![allow(unsafe_code)] // the workload drops a page of its own

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use homing_shim::dump;
use homing_shim::tracking::WriteTracker;

const PAGES: usize = 4096;
const PAGE: usize = 4096;

#[test]
fn track_child_entry() {
    if std::env::var("HOMING_TRACK_CHILD").is_err() {
        return;
    }
    let mut buffer = vec![1u8; PAGES * PAGE];
    let stdout = std::io::stdout();
    writeln!(stdout.lock(), "at {}", buffer.as_ptr() as usize).unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if let Some(index) = line.trim().strip_prefix("drop ") {
            let index: usize = index.parse().unwrap();
            let page = (buffer.as_ptr() as usize).next_multiple_of(PAGE) + index * PAGE;
            // SAFETY: the page lies inside `buffer`, which reads as zeros after.
            unsafe { libc::madvise(page as *mut libc::c_void, PAGE, libc::MADV_DONTNEED) };
        } else {
            let index: usize = line.trim().parse().unwrap();
            buffer[index * PAGE + 17] = buffer[index * PAGE + 17].wrapping_add(1);
        }
        writeln!(stdout.lock(), "done").unwrap();
    }
    std::process::exit(0);
}

#[test]
fn a_tracker_lists_the_pages_written_since_the_last_look() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: tracking another process needs root");
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "track_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HOMING_TRACK_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let buffer = loop {
        line.clear();
        output.read_line(&mut line).unwrap();
        // libtest may have started the line with the test's name.
        if let Some((_, at)) = line.trim().split_once("at ") {
            break at.parse::<u64>().unwrap();
        }
    };
    let pid = child.id() as i32;
    let frozen = dump::freeze(pid, None).expect("freeze");
    let layout = frozen.layout().expect("layout");
    // Its program's mappings name the program, as the very file mapped.
    let program = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    let program_meta = std::fs::metadata(&program).unwrap();
    let of_program: Vec<_> = (layout.iter())
        .filter_map(|region| region.file.as_ref())
        .filter(|file| file.path.as_slice() == program.as_os_str().as_encoded_bytes())
        .collect();
    assert!(!of_program.is_empty(), "{layout:#?}");
    assert!(of_program.iter().any(|file| file.offset == 0));
    for file in of_program {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (file.dev, file.ino),
            (program_meta.dev(), program_meta.ino())
        );
        assert_eq!(file.size, program_meta.size());
    }
    // Anonymous memory names none.
    let heap = layout.iter().find(|r| r.start <= buffer && buffer < r.end);
    assert_eq!(heap.expect("the buffer's region").file, None);
    let mut tracker = WriteTracker::create(&frozen).expect("userfaultfd");
    frozen.thaw();
    tracker.track(&layout).expect("tracking");
    let mut write_page = |index: usize| {
        writeln!(input, "{index}").unwrap();
        let mut answer = String::new();
        output.read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "done");
    };
    let covers = |ranges: &[(u64, u64)], address: u64| {
        ranges
            .iter()
            .any(|&(start, end)| start <= address && address < end)
    };
    // Whatever the runtime wrote so far (its stack, stdio buffers).
    let _ = tracker.written().expect("scan");
    for index in [7usize, 1000, 4095] {
        write_page(index);
        let written = tracker.written().expect("scan");
        let page = buffer + (index * PAGE) as u64;
        assert!(covers(&written, page), "page {index} written: {written:x?}");
        // Other pages of the buffer were not written.
        for other in [0usize, 8, 2000] {
            assert!(!covers(&written, buffer + (other * PAGE) as u64));
        }
        let again = tracker.written().expect("scan");
        assert!(!covers(&again, page), "listed once: {again:x?}");
    }
    let first = buffer.next_multiple_of(PAGE as u64);
    // A page it drops reads as zeros now: it counts as written.
    let _ = tracker.written().expect("scan");
    writeln!(input, "drop 100").unwrap();
    let mut answer = String::new();
    output.read_line(&mut answer).unwrap();
    assert_eq!(answer.trim(), "done");
    let dropped = first + 100 * PAGE as u64;
    let written = tracker.written().expect("scan");
    assert!(covers(&written, dropped), "{written:x?}");
    assert!(!covers(&written, dropped + PAGE as u64), "{written:x?}");
    // The buffer is tracked whole, and nothing was written since.
    let survey = tracker
        .survey(first, first + ((PAGES - 1) * PAGE) as u64)
        .expect("survey");
    assert!(
        survey.iter().all(|r| r.tracked() && !r.written()),
        "{survey:x?}"
    );
    drop(input);
    assert!(child.wait().unwrap().success());
}
