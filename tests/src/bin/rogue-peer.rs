//! A misbehaving peer, for tests: it dials a node with whatever identity it
//! is given and then breaks the protocol in a chosen way, and reports what
//! the node did about it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use homing_home_agent::link;
use homing_home_agent::wire::{read_message, write_message};
use homing_proto::peer::{PeerRequest, PeerResponse};
use homing_proto::{Hello, HelloReply, MAX_FRAME_LEN};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    identity: homing_tests::IdentityArgs,
    /// The node's address.
    #[arg(long)]
    connect: SocketAddr,
    /// The node's name (checked against its certificate).
    #[arg(long)]
    node: String,
    /// The name to claim in the Hello.
    #[arg(long)]
    claim: String,
    /// The protocol version to claim in the Hello.
    #[arg(long, default_value_t = homing_proto::PROTOCOL_VERSION)]
    hello_version: u32,
    /// Send this instead of the Hello.
    #[arg(long)]
    instead_of_hello: Option<Bad>,
    /// After a successful handshake, send this on a new stream.
    #[arg(long)]
    after_hello: Option<Bad>,
    /// After a successful handshake, ask the node to move its process
    /// PID off this peer, as a draining host would, and print the answer.
    #[arg(long, value_name = "PID")]
    ask_move_off: Option<i32>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Bad {
    /// A frame whose body is not MessagePack.
    Garbage,
    /// A header announcing a body over the limit.
    Oversized,
    /// A header announcing more bytes than are sent before the stream ends.
    Truncated,
}

fn bad_bytes(kind: Bad) -> Vec<u8> {
    match kind {
        // 0xc1 is the one byte MessagePack never uses.
        Bad::Garbage => [&16u32.to_be_bytes()[..], &[0xc1; 16]].concat(),
        Bad::Oversized => [&(MAX_FRAME_LEN as u32 + 1).to_be_bytes()[..], b"xx"].concat(),
        Bad::Truncated => [&100u32.to_be_bytes()[..], &[0x90; 10]].concat(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let identity = args.identity.load()?;
    let endpoint = link::endpoint(&identity, "0.0.0.0:0".parse()?).context("endpoint")?;
    let conn = match endpoint.connect(args.connect, &args.node)?.await {
        Ok(conn) => conn,
        Err(error) => {
            println!("tls failed: {error}");
            return Ok(());
        }
    };
    // The node may abort the connection at any step; that is an answer too.
    if let Err(error) = misbehave(&args, &conn).await {
        println!("closed: {error}");
        return Ok(());
    }
    match tokio::time::timeout(Duration::from_secs(5), conn.closed()).await {
        Ok(reason) => println!("closed: {reason}"),
        Err(_) => println!("still open"),
    }
    Ok(())
}

async fn misbehave(args: &Args, conn: &quinn::Connection) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await?;
    if let Some(kind) = args.instead_of_hello {
        send.write_all(&bad_bytes(kind)).await?;
        let _ = send.finish();
    } else {
        let hello = Hello {
            version: args.hello_version,
            node: args.claim.clone(),
        };
        write_message(&mut send, &hello).await?;
        let _ = send.finish();
        match read_message::<HelloReply, _>(&mut recv).await {
            Ok(HelloReply::Welcome { node, .. }) => println!("welcomed by {node}"),
            Ok(HelloReply::Refused { reason }) => println!("refused: {reason}"),
            Err(error) => println!("no reply: {error}"),
        }
        if let Some(kind) = args.after_hello {
            let (mut send, _recv) = conn.open_bi().await?;
            send.write_all(&bad_bytes(kind)).await?;
            let _ = send.finish();
        }
        if let Some(home_pid) = args.ask_move_off {
            let (mut send, mut recv) = conn.open_bi().await?;
            let request = PeerRequest::MoveOff { home_pid, to: None };
            write_message(&mut send, &request).await?;
            let _ = send.finish();
            let answer = read_message::<PeerResponse, _>(&mut recv).await?;
            println!("answered: {answer:?}");
        }
    }
    Ok(())
}
