//! `homing`: the command users run, and the node agent (`homing node`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use homing_home_agent::client::ControlClient;
use homing_home_agent::config::{NodeConfig, DEFAULT_CONTROL_SOCKET};
use homing_home_agent::node::Node;
use homing_home_agent::tls;
use homing_proto::control::{AwayProcess, ControlRequest, ControlResponse, PeerInfo, PeerState};

#[derive(Parser)]
#[command(
    name = "homing",
    version,
    about = "Move running processes between machines; they keep their home."
)]
struct Cli {
    /// The local agent's control socket.
    #[arg(long, global = true, env = "HOMING_SOCKET", default_value = DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run this machine's node agent (both roles: home and host).
    Node {
        /// The node's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Show this node's peers: state and round-trip time.
    Nodes {
        /// Wait up to SECS seconds for every peer to be connected; fail if they are not.
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
    },
    /// Show who the local agent believes you are (from the socket's credentials).
    Whoami,
    /// Run a program on another node; this process stays at home as its deputy.
    Run {
        /// The node to run on.
        #[arg(long, value_name = "NODE")]
        on: String,
        /// The program and its arguments.
        #[arg(trailing_var_arg = true, required = true, value_name = "PROGRAM")]
        argv: Vec<std::ffi::OsString>,
    },
    /// Move a running process to another node (or `home`); it keeps its
    /// pid, files and parent at home.
    Migrate {
        /// The process (its pid at home).
        pid: i32,
        /// Where to: a node's name, or `home`.
        node: String,
    },
    /// Serve this process's moved program (what a moved process execs).
    #[command(hide = true)]
    Resume {
        /// The program's name, for `ps` and `pgrep` at home.
        #[arg(long)]
        comm: Option<std::ffi::OsString>,
        /// The program's command line, for `ps -f` and `pgrep -f` at home.
        #[arg(last = true)]
        command_line: Vec<std::ffi::OsString>,
    },
    /// Move every guest this node hosts off it (root only): before it is
    /// taken down, say. Each goes home, or to NODE. Prints how each went;
    /// fails if any is still here. The node takes no new guests until
    /// `homing undrain` (or its agent restarts).
    Drain {
        /// Send them to this node instead of to their homes.
        #[arg(long, value_name = "NODE")]
        to: Option<String>,
    },
    /// Let a drained node take new guests again (root only).
    Undrain,
    /// List your processes running away from home.
    Ps {
        /// List the guests this node hosts instead.
        #[arg(long)]
        guests: bool,
    },
    /// Manage the cluster's certificate authority.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a new cluster CA in DIR.
    Init {
        /// Directory for ca.pem and ca.key.
        dir: PathBuf,
        /// Days the CA stays valid.
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// Issue a certificate for node NODE.
    Issue {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The node name the certificate carries.
        node: String,
        /// Where to write NODE.pem and NODE.key (default: the CA directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days the certificate stays valid.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Start the validity this many days in the past (to test expiry).
        #[arg(long, default_value_t = 0, hide = true)]
        backdate_days: i64,
    },
}

/// Prints a line on stdout. A reader that went away (`homing ps | head -1`)
/// ends the command quietly, as it does any Unix tool.
macro_rules! say {
    ($($arg:tt)*) => {
        print_line(format_args!($($arg)*))
    };
}

fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("homing: cannot write the output: {error}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Node { .. } => "info",
        _ => "warn",
    };
    // A deputy's stderr is its program's, and so is its environment (a
    // deputy made in place of a process that moved away has that
    // program's): a RUST_LOG there is the program's, or the user's for
    // every Rust program, and homing's log lines would show in the
    // program's output. A deputy follows HOMING_LOG instead.
    let filter_from = match cli.command {
        Command::Run { .. } | Command::Resume { .. } => "HOMING_LOG",
        _ => tracing_subscriber::EnvFilter::DEFAULT_ENV,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(filter_from)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("homing: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Resume { comm, command_line } = &cli.command {
        let code = homing_home_agent::deputy::resume(&cli.socket, comm.as_deref(), command_line);
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    if let Command::Run { on, argv } = cli.command {
        // The deputy runs without an async runtime: a runtime would take
        // fds that belong to the program.
        let code = homing_home_agent::deputy::run(&cli.socket, &on, argv);
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Node { config } => {
            homing_shim::process::keep_freed_heap_memory();
            homing_home_agent::fastpath::drop_own_groups()
                .context("dropping the agent's supplementary groups")?;
            let config = NodeConfig::load(&config)?;
            runtime.block_on(async { Node::new(config)?.run().await })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Nodes { wait } => runtime.block_on(nodes(&cli.socket, wait)),
        Command::Whoami => runtime.block_on(async {
            let mut client = ControlClient::connect(&cli.socket).await?;
            match client.ask(&ControlRequest::WhoAmI).await? {
                ControlResponse::WhoAmI {
                    node,
                    uid,
                    gid,
                    pid,
                } => say!("node={node} uid={uid} gid={gid} pid={pid}"),
                other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Ca { command } => {
            ca(command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ps { guests } => runtime.block_on(async {
            let mut client = ControlClient::connect(&cli.socket).await?;
            let request = if guests {
                ControlRequest::Guests
            } else {
                ControlRequest::Ps
            };
            match client.ask(&request).await? {
                ControlResponse::Processes { node, processes } => {
                    print_processes(&node, guests, &processes)
                }
                other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Migrate { pid, node } => runtime.block_on(migrate(&cli.socket, pid, node)),
        Command::Drain { to } => runtime.block_on(drain(&cli.socket, to)),
        Command::Undrain => runtime.block_on(undrain(&cli.socket)),
        Command::Run { .. } | Command::Resume { .. } => {
            unreachable!("handled above")
        }
    }
}

async fn migrate(socket: &std::path::Path, pid: i32, node: String) -> anyhow::Result<ExitCode> {
    let mut client = ControlClient::connect(socket).await?;
    let mut response = client.ask(&ControlRequest::Migrate { pid, node }).await?;
    let progress_shown = std::io::stderr().is_terminal();
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    loop {
        match response {
            ControlResponse::Progress { sent, total } => {
                if progress_shown {
                    eprint!("\rmoving {pid}: {:.0} of {:.0} MiB", mib(sent), mib(total));
                }
            }
            ControlResponse::Migrated {
                node,
                bytes,
                total_micros,
                frozen_micros,
                pauses,
                longest_pause_micros,
            } => {
                if progress_shown {
                    eprint!("\r\x1b[K");
                }
                let paced = match pauses {
                    0 => String::new(),
                    _ => format!(
                        "; it wrote faster than its pages went, so it was paused {pauses} times before, at most {:.1} ms",
                        longest_pause_micros as f64 / 1000.0
                    ),
                };
                say!(
                    "moved {pid} to {node}: {:.1} MiB in {:.1} ms, frozen {:.1} ms{paced}",
                    mib(bytes),
                    total_micros as f64 / 1000.0,
                    frozen_micros as f64 / 1000.0
                );
                return Ok(ExitCode::SUCCESS);
            }
            other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
        }
        response = client.next().await?;
    }
}

async fn drain(socket: &std::path::Path, to: Option<String>) -> anyhow::Result<ExitCode> {
    let mut client = ControlClient::connect(socket).await?;
    let mut response = client.ask(&ControlRequest::Drain { to }).await?;
    loop {
        match response {
            ControlResponse::GuestMoved {
                home_node,
                pid,
                command,
                outcome,
            } => match outcome {
                Ok(how) => say!("{pid} of {home_node} ({command}): {how}"),
                Err(why) => say!("{pid} of {home_node} ({command}) stays here: {why}"),
            },
            ControlResponse::Drained { moved, left } => {
                say!("{moved} moved off, {left} still here; no new guests until `homing undrain`");
                return Ok(match left {
                    0 => ExitCode::SUCCESS,
                    _ => ExitCode::FAILURE,
                });
            }
            other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
        }
        response = client.next().await?;
    }
}

async fn undrain(socket: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut client = ControlClient::connect(socket).await?;
    match client.ask(&ControlRequest::Undrain).await? {
        ControlResponse::Undrained { was_drained: true } => {
            say!("this node takes new guests again")
        }
        ControlResponse::Undrained { was_drained: false } => {
            say!("this node was not drained: it takes new guests")
        }
        other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_processes(node: &str, guests: bool, processes: &[AwayProcess]) {
    let header = if guests {
        [
            "HOME PID",
            "HOME NODE",
            "HOST PID",
            "STATE",
            "SYSCALLS",
            "COMMAND",
        ]
    } else {
        ["PID", "NODE", "HOST PID", "STATE", "SYSCALLS", "COMMAND"]
    }
    .map(String::from);
    let rows: Vec<[String; 6]> = processes
        .iter()
        .map(|p| {
            [
                p.pid.to_string(),
                p.node.clone(),
                p.host_pid.to_string(),
                p.state.clone(),
                p.syscalls.to_string(),
                p.command.clone(),
            ]
        })
        .collect();
    say!(
        "{node}: {} {}",
        processes.len(),
        if guests { "guests" } else { "processes away" }
    );
    print_table(&header, &rows);
}

async fn nodes(socket: &std::path::Path, wait: Option<u64>) -> anyhow::Result<ExitCode> {
    let deadline = wait.map(|secs| Instant::now() + Duration::from_secs(secs));
    let mut client = ControlClient::connect(socket).await?;
    loop {
        let (node, peers, drained) = match client.ask(&ControlRequest::Nodes).await? {
            ControlResponse::Nodes {
                node,
                peers,
                drained,
            } => (node, peers, drained),
            other => anyhow::bail!("unexpected answer from the agent: {other:?}"),
        };
        let all_connected = peers.iter().all(|p| p.state == PeerState::Connected);
        match deadline {
            Some(deadline) if !all_connected && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => {
                print_peers(&node, drained, &peers);
                let failed = deadline.is_some() && !all_connected;
                if failed {
                    eprintln!(
                        "homing: not every peer of {node} connected within {}s",
                        wait.unwrap_or_default()
                    );
                }
                return Ok(if failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                });
            }
        }
    }
}

fn print_peers(node: &str, drained: bool, peers: &[PeerInfo]) {
    match drained {
        true => say!("{node} (this node; drained: it takes no new guests)"),
        false => say!("{node} (this node)"),
    }
    let rows: Vec<[String; 6]> = peers
        .iter()
        .map(|peer| {
            let guests = match (peer.state, peer.drained) {
                (PeerState::Connected, true) => "drained",
                (PeerState::Connected, false) => "taken",
                _ => "-",
            };
            [
                peer.name.clone(),
                peer.address.clone(),
                peer.state.to_string(),
                peer.rtt_micros
                    .map(|us| format!("{:.2} ms", us as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                guests.into(),
                peer.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "PEER",
        "ADDRESS",
        "STATE",
        "RTT",
        "NEW GUESTS",
        "LAST ERROR",
    ]
    .map(String::from);
    print_table(&header, &rows);
}

fn print_table<const N: usize>(header: &[String; N], rows: &[[String; N]]) {
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        say!("{}", line.join("  ").trim_end());
    }
}

fn ca(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init { dir, days } => {
            tls::init_ca(&dir, days)?;
            say!("created cluster CA in {}", dir.display());
        }
        CaCommand::Issue {
            ca,
            node,
            out,
            days,
            backdate_days,
        } => {
            let out = out.unwrap_or_else(|| ca.clone());
            let validity = tls::Validity {
                days,
                backdate_days,
            };
            let cert = tls::issue(&ca, &node, &out, validity)?;
            say!("issued {}", cert.display());
        }
    }
    Ok(())
}
