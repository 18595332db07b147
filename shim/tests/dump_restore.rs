//! Dump a running process and restore it into a blank one on the same
//! machine: the moved process must end exactly as an unmoved run does.
//!
//! The workload is this test binary itself, run again with
//! `HOMING_DUMP_CHILD` set: a multithreaded computation over 64 MiB of
//! pseudo-random memory whose result is its exit status.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use homing_shim::dump;
use homing_shim::restore::{spawn_blank, Restorer};

const WORDS: usize = 8 << 20;
const ROUNDS: u64 = 600;

fn workload(threads: usize) -> i32 {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let data: Arc<Vec<u64>> = Arc::new(
        (0..WORDS)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            })
            .collect(),
    );
    let share = WORDS / threads;
    let workers: Vec<_> = (0..threads)
        .map(|index| {
            let data = Arc::clone(&data);
            std::thread::spawn(move || {
                let mut sum = index as u64;
                for round in 1..=ROUNDS {
                    for &word in &data[index * share..(index + 1) * share] {
                        sum = sum.rotate_left(5) ^ word.wrapping_mul(round);
                    }
                }
                sum
            })
        })
        .collect();
    let total = workers
        .into_iter()
        .map(|w| w.join().expect("worker"))
        .fold(0u64, |a, b| a.wrapping_add(b));
    (total % 200) as i32 + 1
}

#[test]
fn child_entry() {
    if let Ok(threads) = std::env::var("HOMING_DUMP_CHILD") {
        let code = workload(threads.parse().expect("thread count"));
        std::process::exit(code);
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn move_while_running(threads: usize) {
    if !is_root() {
        eprintln!("skipped: dump and restore need root");
        return;
    }
    let expected = workload(threads);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("HOMING_DUMP_CHILD", threads.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it get well into its work (filling memory, then computing).
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id() as i32;
    let frozen = dump::freeze(pid, None).expect("freeze");
    let image = frozen.image(true).expect("image");
    assert!(
        image.threads.len() > threads,
        "{} threads",
        image.threads.len()
    );
    let blank = spawn_blank((0, 0, &[]), None, None).expect("blank");
    let mut restorer = Restorer::prepare(blank.pid, image.clone(), false).expect("prepare");
    let sent = frozen
        .read_memory(&image, 4 << 20, |address, bytes| {
            restorer.write(address, bytes)
        })
        .expect("read memory")
        .expect("write memory");
    assert!(sent >= (WORDS * 8) as u64, "only {sent} bytes moved");
    restorer.finish().expect("finish");
    frozen.kill();
    let _ = child.wait();
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(blank.pid), None).unwrap();
    assert_eq!(
        status,
        nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(blank.pid), expected)
    );
}

#[test]
fn a_single_threaded_process_moved_mid_computation_ends_as_if_unmoved() {
    move_while_running(1);
}

#[test]
fn four_threads_moved_mid_computation_end_as_if_unmoved() {
    move_while_running(4);
}
