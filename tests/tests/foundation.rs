//! The foundation: a namespaced cluster whose nodes trust only each other.
//!
//! Every test here starts real agents in the local cluster and checks what a
//! user or an operator would see: `homing nodes` output, exit statuses and
//! the refusing node's log.

use std::path::Path;
use std::time::Duration;

use homing_tests::{ok, peer_state, wait_for, Cluster, Run};

fn nodes(cluster: &Cluster, node: &str) -> Run {
    cluster.exec(node, &["homing", "nodes"])
}

fn state_of(cluster: &Cluster, node: &str, peer: &str) -> Option<String> {
    peer_state(&nodes(cluster, node).stdout, peer)
}

/// Runs rogue-peer inside `from` against node1 with the given certificate and extra arguments.
fn rogue(cluster: &Cluster, from: &str, cert_dir: &str, cert_name: &str, extra: &[&str]) -> Run {
    let state = cluster.state_dir();
    let ca = state.join("ca/ca.pem");
    let cert = format!("{cert_dir}/{cert_name}.pem");
    let key = format!("{cert_dir}/{cert_name}.key");
    let address = cluster.address(1);
    let bin = cluster.stage(Path::new(env!("CARGO_BIN_EXE_rogue-peer")));
    let bin = bin.to_str().unwrap();
    let mut cmd = vec![
        bin,
        "--ca",
        ca.to_str().unwrap(),
        "--cert",
        &cert,
        "--key",
        &key,
        "--connect",
        &address,
        "--node",
        "node1",
    ];
    cmd.extend_from_slice(extra);
    cluster.exec(from, &cmd)
}

/// Issues a certificate for `node` from the CA in `ca_dir` into `out`.
fn issue(cluster: &Cluster, ca_dir: &str, node: &str, out: &str, extra: &[&str]) {
    let mut cmd = vec!["homing", "ca", "issue", "--ca", ca_dir, node, "--out", out];
    cmd.extend_from_slice(extra);
    let run = cluster.exec("node1", &cmd);
    assert_eq!(run.code, 0, "issuing {node}: {}", run.stderr);
}

#[test]
fn every_node_sees_the_others_connected_over_mutual_tls() {
    let cluster = Cluster::up(3);
    for (node, others) in [
        ("node1", ["node2", "node3"]),
        ("node2", ["node1", "node3"]),
        ("node3", ["node1", "node2"]),
    ] {
        let run = nodes(&cluster, node);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout.starts_with(&format!("{node} (this node)")),
            "{}",
            run.stdout
        );
        for other in others {
            assert_eq!(
                peer_state(&run.stdout, other).as_deref(),
                Some("connected"),
                "{node} sees {other}:\n{}",
                run.stdout
            );
        }
        assert_eq!(peer_state(&run.stdout, node), None, "{node} lists itself");
    }
    // The link really is QUIC over TLS 1.3 between the namespaces: the agent
    // logged each peer's verified connection.
    assert!(cluster.log("node1").contains("peer connected"));
}

#[test]
fn nodes_are_separate_machines() {
    let cluster = Cluster::up(2);
    let run = cluster.exec_as(
        "node1",
        "alice",
        &[
            "sh",
            "-c",
            "echo secret > /home/alice/only-on-node1; echo x > /tmp/t1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seen = cluster.exec_as("node2", "alice", &["ls", "-A", "/home/alice", "/tmp"]);
    assert_eq!(seen.code, 0, "{}", seen.stderr);
    assert!(!seen.stdout.contains("only-on-node1"), "{}", seen.stdout);
    assert!(!seen.stdout.contains("t1"), "{}", seen.stdout);
    assert!(!std::path::Path::new("/home/alice/only-on-node1").exists());
    assert_eq!(cluster.exec("node2", &["hostname"]).stdout.trim(), "node2");
    assert_eq!(cluster.exec("node1", &["hostname"]).stdout.trim(), "node1");
    // Each node has its own pid namespace: its init is pid 1 there.
    let init = cluster.exec("node2", &["cat", "/proc/1/comm"]);
    assert_ne!(init.stdout.trim(), "systemd");
    let who = cluster.exec_as("node2", "bob", &["id", "-un"]);
    assert_eq!(who.stdout.trim(), "bob");
}

#[test]
fn the_agent_knows_callers_from_the_kernel_not_from_them() {
    let cluster = Cluster::up(2);
    let uid = cluster
        .exec("node1", &["id", "-u", "alice"])
        .stdout
        .trim()
        .to_owned();
    let run = cluster.exec_as(
        "node1",
        "alice",
        &["sh", "-c", "homing whoami; echo shell=$$"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("uid={uid} ")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("node=node1"), "{}", run.stdout);
    // The pid is the caller's as the kernel sees it inside node1: the
    // `homing` process is a child of the shell.
    let shell: i32 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("shell="))
        .unwrap()
        .parse()
        .unwrap();
    let pid: i32 = run
        .stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid > shell, "whoami pid {pid} vs shell {shell}");
}

#[test]
fn a_node_with_a_foreign_ca_certificate_cannot_join() {
    let cluster = Cluster::up(3);
    let test_dir = cluster.state_dir().join("test");
    let foreign = test_dir.join("foreign-ca");
    let foreign = foreign.to_str().unwrap();
    assert_eq!(
        cluster
            .exec("node1", &["homing", "ca", "init", foreign])
            .code,
        0
    );
    issue(&cluster, foreign, "node3", foreign, &[]);

    // node3 restarts with a certificate from another CA: node1 and node2
    // dial it and refuse it, and say why in their logs.
    assert_eq!(cluster.script(&["stop-agent", "node3"]).code, 0);
    let config = std::fs::read_to_string(cluster.state_dir().join("node3/node.toml")).unwrap();
    let node3_dir = cluster.state_dir().join("node3");
    let bad = config.replace(
        &format!("{}/node3.pem", node3_dir.display()),
        &format!("{foreign}/node3.pem"),
    );
    let bad = bad.replace(
        &format!("{}/node3.key", node3_dir.display()),
        &format!("{foreign}/node3.key"),
    );
    assert_ne!(bad, config, "the config names node3's certificate");
    let bad_config = test_dir.join("node3-foreign.toml");
    std::fs::write(&bad_config, bad).unwrap();
    let mut impostor = cluster
        .script_command(&[
            "exec",
            "node3",
            "--",
            "homing",
            "node",
            "--config",
            bad_config.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // node1 notices node3's silence, dials anew and meets the impostor.
    let refused = wait_for(Duration::from_secs(20), || {
        state_of(&cluster, "node1", "node3").as_deref() == Some("refused")
    });
    let node1_log = cluster.log("node1");
    impostor.kill().ok();
    impostor.wait().ok();
    assert!(refused.is_some(), "node1 never refused node3:\n{node1_log}");
    assert!(
        node1_log.contains("refused an answering peer's certificate")
            && node1_log.contains("UnknownIssuer")
            && node1_log.contains("[\"node3\"]"),
        "node1's log does not say who and why:\n{node1_log}"
    );
    assert_eq!(
        state_of(&cluster, "node1", "node2").as_deref(),
        Some("connected")
    );

    // The other direction: a dialer holding a foreign certificate is refused
    // by node1, which logs the names the certificate carries.
    let run = rogue(&cluster, "node3", foreign, "node3", &["--claim", "node3"]);
    assert!(
        run.stdout.contains("closed") || run.stdout.contains("failed"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("welcomed"), "{run:?}");
    let node1_log = cluster.log("node1");
    assert!(
        node1_log.contains("refused a dialing peer's certificate")
            && node1_log.contains("UnknownIssuer"),
        "{node1_log}"
    );
}

#[test]
fn a_node_presenting_another_nodes_name_cannot_join() {
    let cluster = Cluster::up(3);
    let ca = cluster.state_dir().join("ca");
    let out = cluster.state_dir().join("test");
    let (ca, out) = (ca.to_str().unwrap(), out.to_str().unwrap());
    issue(&cluster, ca, "node4", out, &[]);

    // A genuine cluster member (node4) claims to be node3.
    let run = rogue(&cluster, "node3", out, "node4", &["--claim", "node3"]);
    assert!(run.stdout.contains("refused"), "{run:?}");
    assert!(!run.stdout.contains("welcomed"), "{run:?}");
    let log = cluster.log("node1");
    assert!(
        log.contains("refused connection")
            && log.contains("peer claims to be \"node3\" but its certificate names [\"node4\"]"),
        "{log}"
    );
    // node3 itself is unaffected.
    assert_eq!(
        state_of(&cluster, "node1", "node3").as_deref(),
        Some("connected")
    );

    // A certificate that has expired is refused too.
    issue(
        &cluster,
        ca,
        "node3",
        out,
        &["--days", "1", "--backdate-days", "10"],
    );
    let run = rogue(&cluster, "node3", out, "node3", &["--claim", "node3"]);
    assert!(!run.stdout.contains("welcomed"), "{run:?}");
    let log = cluster.log("node1");
    assert!(log.contains("certificate expired"), "{log}");
}

#[test]
fn a_peer_speaking_another_version_is_refused_naming_both() {
    let cluster = Cluster::up(2);
    let dir = cluster.state_dir().join("node2");
    let run = rogue(
        &cluster,
        "node2",
        dir.to_str().unwrap(),
        "node2",
        &["--claim", "node2", "--hello-version", "99"],
    );
    let expected = format!(
        "peer speaks version 99, this node speaks version {}",
        homing_proto::PROTOCOL_VERSION
    );
    assert!(run.stdout.contains(&expected), "{run:?}");
    assert!(cluster.log("node1").contains(&expected));
}

#[test]
fn malformed_frames_close_that_connection_and_nothing_else() {
    let cluster = Cluster::up(3);
    let dir = cluster.state_dir().join("node3");
    let dir = dir.to_str().unwrap();
    for (when, kind, expected) in [
        ("--instead-of-hello", "garbage", "malformed frame body"),
        ("--instead-of-hello", "oversized", "exceeds the limit"),
        (
            "--instead-of-hello",
            "truncated",
            "stream ended inside a frame",
        ),
        ("--after-hello", "garbage", "malformed frame body"),
        ("--after-hello", "oversized", "exceeds the limit"),
        ("--after-hello", "truncated", "stream ended inside a frame"),
    ] {
        let said_before = cluster.log("node1").matches(expected).count();
        let run = rogue(
            &cluster,
            "node3",
            dir,
            "node3",
            &["--claim", "node3", when, kind],
        );
        // The node closes the connection saying why. Once in a while the
        // impostor hears a stateless reset before that close (the node
        // had already forgotten the connection): it then learns nothing
        // more, but the node's log must still say why.
        let told = run.stdout.contains("closed: closed by peer") && run.stdout.contains(expected);
        let reset_but_logged = run.stdout.contains("closed: reset by peer")
            && cluster.log("node1").matches(expected).count() > said_before;
        assert!(told || reset_but_logged, "{when} {kind}: {run:?}");
        let status = nodes(&cluster, "node1");
        assert_eq!(
            status.code, 0,
            "node1 stopped answering after {when} {kind}"
        );
        assert_eq!(
            peer_state(&status.stdout, "node2").as_deref(),
            Some("connected"),
            "after {when} {kind}:\n{}",
            status.stdout
        );
    }
    let log = cluster.log("node1");
    assert!(log.contains("peer broke the protocol"), "{log}");
    // The real node3 comes back after the impostor's connection is closed.
    assert!(wait_for(Duration::from_secs(5), || {
        state_of(&cluster, "node1", "node3").as_deref() == Some("connected")
    })
    .is_some());
}

#[test]
fn nodes_without_an_agent_fails_with_one_clear_line() {
    let cluster = Cluster::up(2);
    assert_eq!(cluster.script(&["stop-agent", "node2"]).code, 0);
    let run = nodes(&cluster, "node2");
    assert_ne!(run.code, 0);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("homing: cannot reach the homing agent at /run/homing/agent.sock"),
        "{}",
        run.stderr
    );
    // The other node notices that node2 is gone but keeps answering.
    assert!(wait_for(Duration::from_secs(5), || {
        state_of(&cluster, "node1", "node2").as_deref() == Some("unreachable")
    })
    .is_some());
    assert_eq!(cluster.script(&["start-agent", "node2"]).code, 0);
    assert!(wait_for(Duration::from_secs(5), || {
        state_of(&cluster, "node1", "node2").as_deref() == Some("connected")
    })
    .is_some());
}

#[test]
fn a_cut_link_shows_unreachable_and_heals() {
    let cluster = Cluster::up(3);
    assert_eq!(cluster.script(&["cut", "node1", "node2"]).code, 0);
    let both_unreachable = wait_for(Duration::from_secs(5), || {
        state_of(&cluster, "node1", "node2").as_deref() == Some("unreachable")
            && state_of(&cluster, "node2", "node1").as_deref() == Some("unreachable")
    });
    assert!(
        both_unreachable.is_some(),
        "{}\n{}",
        nodes(&cluster, "node1").stdout,
        nodes(&cluster, "node2").stdout
    );
    assert_eq!(
        state_of(&cluster, "node1", "node3").as_deref(),
        Some("connected")
    );
    assert_eq!(
        state_of(&cluster, "node2", "node3").as_deref(),
        Some("connected")
    );

    assert_eq!(cluster.script(&["heal", "node1", "node2"]).code, 0);
    let both_connected = wait_for(Duration::from_secs(5), || {
        state_of(&cluster, "node1", "node2").as_deref() == Some("connected")
            && state_of(&cluster, "node2", "node1").as_deref() == Some("connected")
    });
    assert!(
        both_connected.is_some(),
        "{}\n{}",
        nodes(&cluster, "node1").stdout,
        nodes(&cluster, "node2").stdout
    );
}

#[test]
fn down_leaves_nothing_behind() {
    let cluster = Cluster::up(2);
    let state = cluster.state_dir();
    let prefix = format!("{}-", cluster.name());
    let run = cluster.down();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(cluster.down().code, 0, "down twice");

    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.lines().any(|l| l.starts_with(&prefix)), "{netns}");
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains(&prefix), "{links}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&prefix), "{mounts}");
    assert!(!mounts.contains(state.to_str().unwrap()), "{mounts}");
    assert!(!state.exists());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(state.to_str().unwrap()),
                "left running: {cmdline}"
            );
        }
    }
}

/// A node moves a process of its own off a host only when that host asks:
/// a peer (here node3, with its real certificate) cannot have it moved
/// from another host, nor a process that does not run away; the process
/// runs on untouched.
#[test]
fn only_the_host_a_process_runs_on_may_have_it_moved_off() {
    let cluster = Cluster::up(3);
    let away = cluster.spawn_script(
        "node1",
        "alice",
        "bash",
        "cd; homing run --on node2 -- sh -c 'sleep 8; echo done' > away.txt; echo status=$?",
    );
    let mut pid = String::new();
    let started = wait_for(Duration::from_secs(20), || {
        let ps = cluster.exec_as("node1", "alice", &["homing", "ps"]).stdout;
        let line = ps
            .lines()
            .find(|l| l.contains(" node2 ") && l.contains("sleep 8"));
        pid = line
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        !pid.is_empty()
    });
    assert!(started.is_some(), "the program did not start on node2");
    let dir = cluster.state_dir().join("node3");
    let dir = dir.to_str().unwrap();
    for (asked, expected) in [
        (
            pid.as_str(),
            format!("process {pid} of node1 runs on node2, not on node3"),
        ),
        ("1", "process 1 of node1 does not run away".to_owned()),
    ] {
        let run = rogue(
            &cluster,
            "node3",
            dir,
            "node3",
            &["--claim", "node3", "--ask-move-off", asked],
        );
        assert!(
            run.stdout
                .contains(&format!("answered: Error {{ message: {expected:?} }}")),
            "{run:?}"
        );
    }
    let ps = ok(cluster.exec_as("node1", "alice", &["homing", "ps"])).stdout;
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&format!("{pid} ")) && l.contains(" node2 ")),
        "{ps}"
    );
    let away = away.wait_with_output().expect("the program's script");
    assert_eq!(String::from_utf8_lossy(&away.stdout), "status=0\n");
    let output = ok(cluster.exec_as("node1", "alice", &["cat", "/home/alice/away.txt"]));
    assert_eq!(output.stdout, "done\n");
}
