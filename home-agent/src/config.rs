//! The node configuration file (`homing node --config FILE`, TOML).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the `homing` command looks for its agent when not told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/homing/agent.sock";

/// A node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's name; its certificate must carry it.
    pub name: String,
    /// UDP address the node listens on for peers.
    pub listen: SocketAddr,
    /// Directory for the node's own state (created if missing).
    pub state_dir: PathBuf,
    /// Unix socket the `homing` command talks to.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Certificate paths.
    pub tls: TlsPaths,
    /// The other nodes of the cluster.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// How long the agent keeps polling after a forwarded call or answer
    /// passes, in microseconds, instead of sleeping (see
    /// [`homing_remote_agent::spin`]); 0 never polls.
    #[serde(default = "default_spin_us")]
    pub spin_us: u64,
    /// Whether home's agent opens a program's files for reading itself,
    /// handing them to the deputy later (see
    /// `fastpath::FastPath::open_here`). On by default; off, the deputy
    /// opens every file, as a way back should one of these opens ever
    /// turn out not to be as the deputy's.
    #[serde(default = "default_open_files_here")]
    pub open_files_here: bool,
}

fn default_open_files_here() -> bool {
    true
}

fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}

/// The default polling window: a few round trips, so that a program
/// making calls back to back keeps both agents awake, and one that
/// computes between calls lets them sleep.
pub const DEFAULT_SPIN_US: u64 = 200;

fn default_spin_us() -> u64 {
    DEFAULT_SPIN_US
}

/// Certificate and key files of a node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The cluster CA certificate.
    pub ca: PathBuf,
    /// This node's certificate, issued by the CA.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// One peer node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's node name.
    pub name: String,
    /// The peer's UDP address.
    pub address: SocketAddr,
}

/// Errors reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        error: Box<toml::de::Error>,
    },
    /// The configuration is well-formed but inconsistent.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

impl NodeConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            error: Box::new(error),
        })?;
        config.check().map_err(|what| ConfigError::Invalid {
            path: path.to_owned(),
            what,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        crate::tls::validate_node_name(&self.name).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        for peer in &self.peers {
            crate::tls::validate_node_name(&peer.name).map_err(|e| e.to_string())?;
            if peer.name == self.name {
                return Err(format!("peer {:?} is this node itself", peer.name));
            }
            if !seen.insert(&peer.name) {
                return Err(format!("peer {:?} is listed twice", peer.name));
            }
        }
        Ok(())
    }

    /// The configured peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&PeerConfig> {
        self.peers.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, String> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    const BASE: &str = r#"
        name = "node1"
        listen = "198.18.0.1:7070"
        state_dir = "/var/lib/homing"
        [tls]
        ca = "ca.pem"
        cert = "node1.pem"
        key = "node1.key"
    "#;

    #[test]
    fn a_full_configuration_parses() {
        let config = parse(&format!(
            "{BASE}\n[[peers]]\nname = \"node2\"\naddress = \"198.18.0.2:7070\"\n"
        ))
        .unwrap();
        assert_eq!(config.control_socket, Path::new(DEFAULT_CONTROL_SOCKET));
        assert_eq!(config.spin_us, DEFAULT_SPIN_US);
        assert_eq!(config.peer("node2").unwrap().address.port(), 7070);
    }

    #[test]
    fn the_example_configuration_parses() {
        let example = include_str!("../../deploy/node.example.toml");
        let config = parse(example).unwrap();
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.spin_us, DEFAULT_SPIN_US);
        let no_polling = example.replace("spin_us = 200", "spin_us = 0");
        assert_eq!(parse(&no_polling).unwrap().spin_us, 0);
    }

    #[test]
    fn inconsistent_configurations_are_refused() {
        let twice = "[[peers]]\nname = \"node2\"\naddress = \"198.18.0.2:7070\"\n";
        assert!(parse(&format!("{BASE}\n{twice}{twice}"))
            .unwrap_err()
            .contains("listed twice"));
        let itself = "[[peers]]\nname = \"node1\"\naddress = \"198.18.0.2:7070\"\n";
        assert!(parse(&format!("{BASE}\n{itself}"))
            .unwrap_err()
            .contains("this node itself"));
        assert!(parse(&format!("{BASE}\nbogus = 1\n"))
            .unwrap_err()
            .contains("unknown field"));
    }
}
