//! Helpers for homing's multi-node integration tests.
//!
//! The tests run real node agents, on real QUIC with real TLS, inside the
//! namespaced local cluster that `deploy/local-cluster` builds. This library
//! drives that script and reads what the nodes report; it must not fake a
//! node or short-cut the network.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

/// The `homing` binary under test (`HOMING_BIN`, or the workspace's debug build).
pub fn homing_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOMING_BIN") {
        return bin.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let bin = target.join("debug/homing");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` first",
        bin.display()
    );
    bin
}

/// A local cluster, torn down when dropped.
pub struct Cluster {
    name: String,
    nodes: usize,
}

/// What a command run inside a node did.
#[derive(Debug)]
pub struct Run {
    /// Exit status code (128+N when killed by signal N, as the shell reports).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let code = output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
        Run {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Cluster {
    /// Starts `nodes` nodes under a cluster name unique to this test process.
    pub fn up(nodes: usize) -> Cluster {
        let name = format!("t{}", std::process::id());
        let cluster = Cluster { name, nodes };
        let run = cluster.script(&["up", &nodes.to_string()]);
        assert_eq!(
            run.code, 0,
            "local-cluster up {nodes} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        cluster
    }

    /// The cluster's instance name (`HOMING_CLUSTER`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The host-side state directory, visible from every node.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from("/run/homing-clusters").join(&self.name)
    }

    /// Copies `file` (a path on this machine) where every node can see it,
    /// readable by every user, and returns the copy's path. The repository
    /// may live somewhere the nodes cannot see (their /home and /tmp are
    /// their own).
    pub fn stage(&self, file: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.state_dir().join("stage");
        std::fs::create_dir_all(&dir).expect("creating the stage directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("opening the stage directory to every user");
        let copy = dir.join(file.file_name().expect("a file name"));
        std::fs::copy(file, &copy).unwrap_or_else(|e| panic!("staging {}: {e}", file.display()));
        copy
    }

    /// Runs `deploy/local-cluster ARGS` for this cluster.
    pub fn script(&self, args: &[&str]) -> Run {
        self.script_command(args)
            .output()
            .expect("running deploy/local-cluster")
            .into()
    }

    /// A `deploy/local-cluster ARGS` command for this cluster, not yet started.
    pub fn script_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(workspace().join("deploy/local-cluster"));
        command
            .args(args)
            .env("HOMING_CLUSTER", &self.name)
            .env("HOMING_BIN", homing_bin())
            // Cargo's test runner points this at its own build
            // directories: passed on, every dynamic program in a node
            // would first look for its libraries in each of them (some
            // 150 lookups home for a `/bin/true`), as no user's would.
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null());
        command
    }

    /// Runs `cmd` as root inside `node`.
    pub fn exec(&self, node: &str, cmd: &[&str]) -> Run {
        let mut args = vec!["exec", node, "--"];
        args.extend_from_slice(cmd);
        self.script(&args)
    }

    /// Runs `cmd` as `user` inside `node`.
    pub fn exec_as(&self, node: &str, user: &str, cmd: &[&str]) -> Run {
        let mut args = vec!["exec", node, "--user", user, "--"];
        args.extend_from_slice(cmd);
        self.script(&args)
    }

    /// The agent log of `node` so far.
    pub fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.state_dir().join(node).join("agent.log")).unwrap_or_default()
    }

    /// The address node N listens on.
    pub fn address(&self, node: usize) -> String {
        format!("198.18.0.{node}:7070")
    }

    /// Runs `deploy/local-cluster down`.
    pub fn down(&self) -> Run {
        self.script(&["down"])
    }
}

/// How much of each agent's log a failed test shows.
const LOG_TAIL_LINES: usize = 40;

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the agents saw last: a failure that comes only under
            // load (in CI) may never be seen again. Whole logs stay in
            // target/failed-tests.
            let kept = workspace().join("target/failed-tests").join(&self.name);
            let _ = std::fs::create_dir_all(&kept);
            for node in 1..=self.nodes {
                let node = format!("node{node}");
                let log = self.log(&node);
                let _ = std::fs::write(kept.join(format!("{node}.log")), &log);
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                eprintln!("--- {node}'s agent, last lines ---\n{}", tail.join("\n"));
            }
            eprintln!("--- whole logs in {} ---", kept.display());
        }
        let run = self.down();
        if run.code != 0 && !std::thread::panicking() {
            panic!("local-cluster down failed: {}", run.stderr);
        }
    }
}

/// Fails the test unless `run` exited with status 0; returns it.
pub fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "failed: {run:?}");
    run
}

impl Cluster {
    /// Compiles tests/programs/NAME.c with `cc FLAGS` into USER's home
    /// directory on NODE.
    pub fn build_program(&self, node: &str, user: &str, name: &str, flags: &str) {
        let source = self.stage(&workspace().join(format!("tests/programs/{name}.c")));
        ok(self.exec_as(
            node,
            user,
            &[
                "sh",
                "-c",
                &format!("cc {flags} -o ~/{name} {}", source.display()),
            ],
        ));
    }

    /// Starts `SHELL -c SCRIPT` as USER on NODE without waiting for it,
    /// its output piped.
    pub fn spawn_script(
        &self,
        node: &str,
        user: &str,
        shell: &str,
        script: &str,
    ) -> std::process::Child {
        self.script_command(&["exec", node, "--user", user, "--", shell, "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting a shell in a node")
    }
}

/// The tenths of a second `tests/programs/timer_sigfd.c` (or `sigfd_wait.c`) says its alarm
/// took, from its line `second 14 after N tenths` (SIGALRM read).
pub fn alarm_tenths(line: &str) -> Option<u32> {
    line.strip_prefix("second 14 after ")?
        .strip_suffix(" tenths")?
        .parse()
        .ok()
}

/// Polls `check` every 100 ms until it returns true or `limit` passes;
/// returns how long it took, or `None` on timeout.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The state `homing nodes` shows for `peer` in its output, if listed.
pub fn peer_state(nodes_output: &str, peer: &str) -> Option<String> {
    // The first line names the node itself.
    nodes_output.lines().skip(1).find_map(|line| {
        let mut cells = line.split_whitespace();
        (cells.next() == Some(peer)).then(|| cells.nth(1).unwrap_or_default().to_owned())
    })
}

/// The TLS identity a test tool dials or listens with, as node agents do.
#[derive(clap::Args)]
pub struct IdentityArgs {
    /// The cluster's CA certificate (the peer's is checked against it).
    #[arg(long)]
    pub ca: PathBuf,
    /// The certificate to present.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its key.
    #[arg(long)]
    pub key: PathBuf,
}

impl IdentityArgs {
    /// Loads the identity.
    pub fn load(&self) -> anyhow::Result<homing_home_agent::tls::Identity> {
        use anyhow::Context;
        homing_home_agent::tls::Identity::load(&self.ca, &self.cert, &self.key)
            .context("loading identity")
    }
}
