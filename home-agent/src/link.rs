//! QUIC links between nodes: the endpoint, dialing and accepting with the
//! handshake, and the classification of what went wrong.
//!
//! One endpoint per node serves both directions. A connection is usable only
//! after TLS (both certificates verified against the cluster CA) and the
//! homing handshake (same protocol version, claimed name = certified name)
//! have both succeeded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use homing_proto::handshake::{check_reply, Acceptor};
use homing_proto::{HandshakeError, Hello, HelloReply};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    Connection, ConnectionError, Endpoint, EndpointConfig, MtuDiscoveryConfig, TransportConfig,
};
use quinn_proto::HashedConnectionIdGenerator;

use crate::tls::{certificate_names, Identity, TlsError};
use crate::wire::{read_message, write_message, WireError};

/// How often an idle connection proves it is alive.
pub const KEEP_ALIVE: Duration = Duration::from_millis(500);
/// Silence after which a connection is torn down. Long, so that programs
/// running across a link survive a short cut; a peer is *shown* unreachable
/// much sooner, by the node's heartbeat. A peer that restarted is noticed at
/// once: it answers the old connection with a stateless reset.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a dial attempt (QUIC, TLS and handshake) may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest an accepted connection may take to send its Hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest UDP payload MTU discovery may try. quinn batches ten packets per
/// GSO send and the kernel caps a send at 64 KiB, so bigger packets would
/// disable batching (design notes: 6000-byte packets double the bulk rate).
const MTU_UPPER_BOUND: u16 = 6000;
/// Largest UDP payload this node accepts: a 9000-byte jumbo frame minus the IP and UDP headers.
const MAX_UDP_PAYLOAD: u16 = 9000 - 28;

/// Application close codes on node links.
pub mod close_code {
    use quinn::VarInt;
    /// The handshake was refused.
    pub const REFUSED: VarInt = VarInt::from_u32(1);
    /// The peer sent a malformed, oversized or truncated frame.
    pub const PROTOCOL_ERROR: VarInt = VarInt::from_u32(2);
    /// A newer connection to the same peer replaced this one.
    pub const REPLACED: VarInt = VarInt::from_u32(3);
    /// The node is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(4);
    /// The peer's agent is not running any more (its host refuses connections).
    pub const PEER_DOWN: VarInt = VarInt::from_u32(5);
}

/// Why a link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The dial could not even start (bad address, endpoint closed).
    #[error("cannot dial: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// QUIC or TLS failed, or the peer closed the connection.
    #[error("{0}")]
    Connection(#[from] ConnectionError),
    /// The peer sent something that is not a valid handshake frame.
    #[error("handshake: {0}")]
    Wire(#[from] WireError),
    /// The handshake completed with a refusal.
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    /// The attempt took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The endpoint could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The endpoint's socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl LinkError {
    /// Whether the peer was reached and authentication or the handshake
    /// failed, as opposed to the peer not answering at all.
    pub fn is_refusal(&self) -> bool {
        match self {
            LinkError::Handshake(_) => true,
            LinkError::Connection(error) => is_crypto_or_refusal(error),
            _ => false,
        }
    }
}

fn is_crypto_or_refusal(error: &ConnectionError) -> bool {
    let is_crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
    match error {
        ConnectionError::TransportError(e) => is_crypto(e.code),
        ConnectionError::ConnectionClosed(close) => is_crypto(close.error_code),
        ConnectionError::ApplicationClosed(close) => close.error_code == close_code::REFUSED,
        _ => false,
    }
}

/// What the endpoint's socket may hold, each way.
const SOCKET_BUFFER: usize = 32 << 20;

/// Lets the socket hold a burst. The kernel's default (208 KiB, some two
/// dozen jumbo datagrams) overflows whenever the agent is off its CPU for
/// a moment during a migration, and each datagram dropped there makes
/// quinn's congestion control cut its rate. Root may go past the
/// system's limit; anyone else gets up to it.
fn widen_buffers(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    let receive = setsockopt(socket, sockopt::RcvBufForce, &SOCKET_BUFFER)
        .or_else(|_| setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER));
    let send = setsockopt(socket, sockopt::SndBufForce, &SOCKET_BUFFER)
        .or_else(|_| setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER));
    if let Err(error) = receive.and(send) {
        tracing::warn!("cannot widen the endpoint's socket buffers: {error}");
    }
}

/// Bytes one stream may have in flight.
const STREAM_WINDOW: u32 = 16 << 20;

fn transport_config() -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(Some(
        IDLE_TIMEOUT.try_into().expect("idle timeout fits a VarInt"),
    ));
    let mut mtu = MtuDiscoveryConfig::default();
    mtu.upper_bound(MTU_UPPER_BOUND);
    transport.mtu_discovery_config(Some(mtu));
    // A migration streams a whole process image on one stream: quinn's
    // default stream window (1.25 MB, sized for 100 Mbit/s at 100 ms)
    // would stall it whenever the receiver is busy for a moment. Not much
    // more than that moment, though: a process is frozen for good only
    // once the destination has caught up with what is in flight, and a
    // paced one (see remote-agent's migration) keeps the window full. At
    // 32 MiB the catch-up froze a rewriter coming home for up to 57 ms;
    // at 16 MiB 20-39 ms, and 1 GiB moves took as long.
    transport.stream_receive_window(STREAM_WINDOW.into());
    transport.send_window(u64::from(STREAM_WINDOW) * 4);
    Arc::new(transport)
}

/// Builds the node's endpoint: it accepts peers on `listen` and dials with
/// the same identity.
pub fn endpoint(identity: &Identity, listen: SocketAddr) -> Result<Endpoint, LinkError> {
    let transport = transport_config();
    let server_crypto = QuicServerConfig::try_from(identity.server_config()?)
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());
    let client_crypto = QuicClientConfig::try_from(identity.client_config()?)
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
    client.transport_config(transport);
    let socket = std::net::UdpSocket::bind(listen)?;
    widen_buffers(&socket);
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for the endpoint"))?;
    // Resets and connection ids keyed by the node's identity: a restarted
    // node still recognises its old connections' ids and resets them, so
    // its peers redial at once instead of waiting out the idle timeout.
    let (reset_key, cid_key) = identity.stable_keys();
    let mut config = EndpointConfig::new(Arc::new(reset_key));
    config.cid_generator(move || Box::new(HashedConnectionIdGenerator::from_key(cid_key)));
    config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut endpoint = Endpoint::new(config, Some(server), socket, runtime)?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

/// The DNS names in the certificate the other end of `conn` presented.
pub fn peer_certificate_names(conn: &Connection) -> Vec<String> {
    conn.peer_identity()
        .and_then(|identity| {
            identity
                .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|chain| chain.first().map(certificate_names))
        .unwrap_or_default()
}

async fn within<T, E: Into<LinkError>>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(LinkError::Timeout(limit)),
    }
}

/// Dials `peer` at `address` as `local_node` and performs the handshake.
pub async fn dial(
    endpoint: &Endpoint,
    local_node: &str,
    peer: &str,
    address: SocketAddr,
) -> Result<Connection, LinkError> {
    within(DIAL_TIMEOUT, async {
        let conn = endpoint.connect(address, peer)?.await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        write_message(&mut send, &Hello::new(local_node)).await?;
        let _ = send.finish();
        let reply: HelloReply = read_message(&mut recv).await?;
        let certified = peer_certificate_names(&conn);
        if let Err(error) = check_reply(&reply, peer, &certified) {
            conn.close(close_code::REFUSED, error.to_string().as_bytes());
            return Err(error.into());
        }
        Ok::<_, LinkError>(conn)
    })
    .await
}

/// Answers the Hello on an accepted connection; on success returns the
/// peer's name. On refusal the connection is closed with the reason.
pub async fn answer_hello(
    conn: &Connection,
    local_node: &str,
    is_peer: &(dyn Fn(&str) -> bool + Sync),
) -> Result<String, LinkError> {
    let result = within(HELLO_TIMEOUT, async {
        let (mut send, mut recv) = conn.accept_bi().await?;
        let hello: Hello = read_message(&mut recv).await?;
        let certified = peer_certificate_names(conn);
        let acceptor = Acceptor {
            local_node,
            certified_names: &certified,
            is_peer,
        };
        let decision = acceptor.check(&hello);
        write_message(&mut send, &acceptor.reply(&decision)).await?;
        let _ = send.finish();
        if decision.is_err() {
            // Give the refusal a moment to arrive before the close discards it.
            let _ = tokio::time::timeout(Duration::from_secs(1), send.stopped()).await;
        }
        Ok::<_, LinkError>(decision?)
    })
    .await;
    if let Err(error) = &result {
        let code = match error {
            LinkError::Wire(_) => close_code::PROTOCOL_ERROR,
            _ => close_code::REFUSED,
        };
        conn.close(code, error.to_string().as_bytes());
    }
    result
}

/// Whether the agent at `address` is gone: every agent also listens on TCP
/// at its QUIC address, so a host that answers a TCP connect with a reset
/// has no agent any more. A live agent accepts; a cut link answers nothing
/// (the probe times out). Unlike ICMP port-unreachable, which hosts
/// rate-limit and which the QUIC packets still going there use up, a reset
/// comes back every time.
pub async fn agent_is_down(address: SocketAddr) -> bool {
    match tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(address),
    )
    .await
    {
        Ok(Err(error)) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// Answers liveness probes ([`agent_is_down`]) on `address` for as long as
/// the agent lives.
pub async fn serve_liveness(address: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tokio::spawn(async move {
        loop {
            // Accepting is the answer; the connection is dropped at once.
            let _ = listener.accept().await;
        }
    });
    Ok(())
}

/// Closes `conn` because the peer broke the protocol.
pub fn close_for_protocol_error(conn: &Connection, why: &str) {
    conn.close(close_code::PROTOCOL_ERROR, why.as_bytes());
}
