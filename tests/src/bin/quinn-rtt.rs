//! The bare quinn round trip between two nodes, for the benchmarks: the
//! same endpoint, TLS identities, transport settings and single-threaded
//! runtime as homing's own links, one long-lived stream, a small message
//! echoed back and forth, as a forwarded syscall's request and answer
//! travel. What a forwarded syscall costs beyond this is homing's own.
//! Both ends poll after each message for the window the agents use
//! (`--spin-us`, default the agents' default), as the agents do.
//!
//!   quinn-rtt --ca CA --cert CERT --key KEY [--spin-us US] serve ADDR
//!   quinn-rtt --ca CA --cert CERT --key KEY [--spin-us US] ping ADDR NODE [COUNT]
//!
//! `ping` prints `quinn_rtt MICROSECONDS us`, the mean over COUNT trips
//! after a warm-up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use homing_home_agent::{config::DEFAULT_SPIN_US, link};
use homing_remote_agent::spin;

/// About the size of a forwarded `stat`'s request.
const MESSAGE_LEN: usize = 96;
const WARM_UP: usize = 200;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    identity: homing_tests::IdentityArgs,
    /// Keep polling this long after each message (0: sleep at once).
    #[arg(long, default_value_t = DEFAULT_SPIN_US)]
    spin_us: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Echo every stream's messages back, until killed.
    Serve { listen: SocketAddr },
    /// Time COUNT round trips to a `serve` at ADDR, a node named NODE.
    Ping {
        address: SocketAddr,
        node: String,
        #[arg(default_value_t = 20000)]
        count: usize,
    },
    /// Send MIB mebibytes on one stream to a `serve` at ADDR, a node named
    /// NODE, in 1 MiB writes, and time them until the server has had all.
    Bulk {
        address: SocketAddr,
        node: String,
        #[arg(default_value_t = 1024)]
        mib: usize,
    },
}

// One thread, as the agents run: with tokio's default of a thread per
// vCPU, each trip also crossed threads, which measured 79-85 us against
// 64-70 us here, and made homing's own share look smaller than it is.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let identity = args.identity.load()?;
    spin::start(Duration::from_micros(args.spin_us));
    match args.command {
        Command::Serve { listen } => {
            let endpoint = link::endpoint(&identity, listen).context("binding the endpoint")?;
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    tokio::spawn(swallow_bulk(conn.clone()));
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        tokio::spawn(async move {
                            let mut message = [0u8; MESSAGE_LEN];
                            while recv.read_exact(&mut message).await.is_ok() {
                                spin::keep_hot();
                                if send.write_all(&message).await.is_err() {
                                    return;
                                }
                            }
                        });
                    }
                });
            }
            Ok(())
        }
        Command::Ping {
            address,
            node,
            count,
        } => {
            let (endpoint, conn) = connect(&identity, address, &node).await?;
            let (mut send, mut recv) = conn.open_bi().await?;
            let mut message = [7u8; MESSAGE_LEN];
            let mut started = Instant::now();
            for trip in 0..WARM_UP + count {
                if trip == WARM_UP {
                    started = Instant::now();
                }
                spin::keep_hot();
                send.write_all(&message).await?;
                recv.read_exact(&mut message).await?;
            }
            let mean = started.elapsed().as_secs_f64() * 1e6 / count as f64;
            println!("quinn_rtt {mean:.2} us");
            conn.close(0u32.into(), b"done");
            endpoint.wait_idle().await;
            Ok(())
        }
        Command::Bulk { address, node, mib } => {
            let (endpoint, conn) = connect(&identity, address, &node).await?;
            let block = bytes::Bytes::from(vec![7u8; 1 << 20]);
            let started = Instant::now();
            let mut send = conn.open_uni().await?;
            for _ in 0..mib {
                send.write_chunk(block.clone()).await?;
            }
            send.finish()?;
            let mut done = conn.accept_uni().await?;
            done.read_to_end(1).await?;
            let rate = (mib << 20) as f64 / started.elapsed().as_secs_f64() / 1e6;
            println!("quinn_bulk {rate:.0} MB/s");
            conn.close(0u32.into(), b"done");
            endpoint.wait_idle().await;
            Ok(())
        }
    }
}

/// A connection to node `node` at `address`, from an endpoint of its own.
async fn connect(
    identity: &homing_home_agent::tls::Identity,
    address: SocketAddr,
    node: &str,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection)> {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let endpoint = link::endpoint(identity, unspecified).context("binding the endpoint")?;
    let conn = endpoint
        .connect(address, node)?
        .await
        .with_context(|| format!("connecting to {node} at {address}"))?;
    Ok((endpoint, conn))
}

/// Reads each one-way stream of `conn` to its end, then says so on a
/// one-way stream back.
async fn swallow_bulk(conn: quinn::Connection) {
    while let Ok(mut recv) = conn.accept_uni().await {
        while let Ok(Some(_)) = recv.read_chunk(usize::MAX, true).await {}
        if let Ok(mut done) = conn.open_uni().await {
            let _ = done.write_all(b"!").await;
            let _ = done.finish();
        }
    }
}
