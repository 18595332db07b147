//! A pid namespace of ours: processes made in it get the pid asked for
//! when it is free and another when it is not, and they all end with it.

use homing_shim::pid_namespace::{innermost_pid, PidNamespace};
use homing_shim::restore::spawn_blank;

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z ") && !stat.contains(") X "))
}

#[test]
fn processes_get_the_pid_asked_for_while_it_is_free_and_end_with_the_namespace() {
    let namespace = PidNamespace::create(None).expect("a pid namespace (needs root)");
    let first = spawn_blank((0, 0, &[]), None, Some((&namespace, 4242))).expect("first blank");
    assert_ne!(first.pid, 4242, "its pid out here is another");
    assert_eq!(innermost_pid(first.pid), Some(4242));
    let second = spawn_blank((0, 0, &[]), None, Some((&namespace, 4242))).expect("second blank");
    let inner = innermost_pid(second.pid).expect("its pid in the namespace");
    assert_ne!(inner, 4242, "4242 is taken");
    // The thread that made them makes its own children here again.
    let mut outside = std::process::Command::new("sleep")
        .arg("1")
        .spawn()
        .expect("sleep");
    let pid = outside.id() as i32;
    assert_eq!(innermost_pid(pid), Some(pid));
    outside
        .kill()
        .and_then(|_| outside.wait())
        .expect("sleep ends");
    namespace.expect_next(5000).expect("the next pid is set");
    let init = namespace.init_pid();
    assert!(namespace.is_alive());
    // Between requests its pid 1 sleeps (it wakes once a second to reap):
    // over two of its reaping rounds it uses almost no CPU time.
    let cpu_ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{init}/stat")).expect("its stat");
        let after_name = &stat[stat.rfind(')').expect("a name") + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu_ticks();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let used = cpu_ticks() - before;
    assert!(used < 25, "pid 1 used {used} ticks of CPU doing nothing");
    assert!(alive(init) && alive(first.pid) && alive(second.pid));
    drop(namespace);
    let gone = |pid: i32| {
        (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !alive(pid)
        })
    };
    assert!(
        gone(first.pid) && gone(second.pid),
        "its processes end with it"
    );
    for pid in [first.pid, second.pid] {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }
    assert!(gone(init), "its pid 1 is reaped once its processes are");
}
