//! The versioned handshake that opens every connection between two nodes.
//!
//! TLS has already proved which certificate the peer holds; the handshake
//! adds the protocol version and the node name the peer claims, and checks
//! that the claim is what the certificate says. The dialing node sends a
//! [`Hello`] on the first stream it opens; the accepting node answers with a
//! [`HelloReply`]. Either side that refuses says why, naming both versions
//! or both names, and closes the connection.

use serde::{Deserialize, Serialize};

/// The version of the node-to-node protocol this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The first message of a connection, from the dialing node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Hello {
    /// Protocol version the dialer speaks.
    pub version: u32,
    /// Node name the dialer claims to be.
    pub node: String,
}

/// The accepting node's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum HelloReply {
    /// The connection is accepted.
    Welcome {
        /// Protocol version the acceptor speaks (equal to the dialer's).
        version: u32,
        /// The acceptor's node name.
        node: String,
    },
    /// The connection is refused; the acceptor closes it after this.
    Refused {
        /// Why, in words for a log line.
        reason: String,
    },
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The two sides speak different protocol versions.
    #[error(
        "protocol version mismatch: peer speaks version {theirs}, this node speaks version {ours}"
    )]
    VersionMismatch {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The peer claims a name its certificate does not carry.
    #[error("peer claims to be {claimed:?} but its certificate names {certified:?}")]
    NameMismatch {
        /// The name in the Hello or Welcome.
        claimed: String,
        /// The names in the peer's certificate.
        certified: Vec<String>,
    },
    /// The peer is a valid cluster member that this node is not configured to talk to.
    #[error("node {name:?} is not a configured peer of this node")]
    UnknownPeer {
        /// The peer's (certified) name.
        name: String,
    },
    /// The peer claims our own name.
    #[error("peer claims this node's own name {name:?}")]
    OwnName {
        /// Our name.
        name: String,
    },
    /// The dialed node answered, but it is not the node we meant to reach.
    #[error("dialed {expected:?} but reached {reached:?}")]
    WrongNode {
        /// The peer we dialed.
        expected: String,
        /// The name it answered with.
        reached: String,
    },
    /// The other side refused us.
    #[error("refused by peer: {reason}")]
    RefusedByPeer {
        /// The reason it gave.
        reason: String,
    },
}

impl Hello {
    /// The Hello this build sends as node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            node: node.into(),
        }
    }
}

/// What the accepting node knows when a Hello arrives.
pub struct Acceptor<'a> {
    /// This node's name.
    pub local_node: &'a str,
    /// The DNS names in the peer's verified certificate.
    pub certified_names: &'a [String],
    /// Whether a name is one of this node's configured peers.
    pub is_peer: &'a (dyn Fn(&str) -> bool + Sync),
}

impl Acceptor<'_> {
    /// Decides whether to accept `hello`; on success returns the peer's name.
    pub fn check(&self, hello: &Hello) -> Result<String, HandshakeError> {
        if hello.version != PROTOCOL_VERSION {
            return Err(HandshakeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: hello.version,
            });
        }
        check_certified(&hello.node, self.certified_names)?;
        if hello.node == self.local_node {
            return Err(HandshakeError::OwnName {
                name: hello.node.clone(),
            });
        }
        if !(self.is_peer)(&hello.node) {
            return Err(HandshakeError::UnknownPeer {
                name: hello.node.clone(),
            });
        }
        Ok(hello.node.clone())
    }

    /// The reply to send for a decision made by [`Acceptor::check`].
    pub fn reply(&self, decision: &Result<String, HandshakeError>) -> HelloReply {
        match decision {
            Ok(_) => HelloReply::Welcome {
                version: PROTOCOL_VERSION,
                node: self.local_node.to_owned(),
            },
            Err(error) => HelloReply::Refused {
                reason: error.to_string(),
            },
        }
    }
}

/// Checks the acceptor's reply on the dialing side.
///
/// `certified_names` are the names in the acceptor's verified certificate;
/// `expected` is the peer the dialer meant to reach.
pub fn check_reply(
    reply: &HelloReply,
    expected: &str,
    certified_names: &[String],
) -> Result<(), HandshakeError> {
    match reply {
        HelloReply::Refused { reason } => Err(HandshakeError::RefusedByPeer {
            reason: reason.clone(),
        }),
        HelloReply::Welcome { version, node } => {
            if *version != PROTOCOL_VERSION {
                return Err(HandshakeError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: *version,
                });
            }
            check_certified(node, certified_names)?;
            if node != expected {
                return Err(HandshakeError::WrongNode {
                    expected: expected.to_owned(),
                    reached: node.clone(),
                });
            }
            Ok(())
        }
    }
}

fn check_certified(claimed: &str, certified: &[String]) -> Result<(), HandshakeError> {
    if certified.iter().any(|name| name == claimed) {
        Ok(())
    } else {
        Err(HandshakeError::NameMismatch {
            claimed: claimed.to_owned(),
            certified: certified.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn acceptor<'a>(
        certified: &'a [String],
        is_peer: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> Acceptor<'a> {
        Acceptor {
            local_node: "node1",
            certified_names: certified,
            is_peer,
        }
    }

    #[test]
    fn a_configured_peer_with_a_matching_certificate_is_welcomed() {
        let certified = names(&["node2"]);
        let is_peer = |name: &str| name == "node2";
        let acc = acceptor(&certified, &is_peer);
        let decision = acc.check(&Hello::new("node2"));
        assert_eq!(decision, Ok("node2".to_string()));
        let reply = acc.reply(&decision);
        assert_eq!(check_reply(&reply, "node1", &names(&["node1"])), Ok(()));
    }

    #[test]
    fn another_version_is_refused_naming_both() {
        let certified = names(&["node2"]);
        let is_peer = |_: &str| true;
        let hello = Hello {
            version: PROTOCOL_VERSION + 6,
            node: "node2".into(),
        };
        let decision = acceptor(&certified, &is_peer).check(&hello);
        let message = decision.unwrap_err().to_string();
        assert!(message.contains(&format!("version {}", PROTOCOL_VERSION + 6)));
        assert!(message.contains(&format!("version {PROTOCOL_VERSION}")));
    }

    #[test]
    fn a_claim_the_certificate_does_not_carry_is_refused() {
        let certified = names(&["node3"]);
        let is_peer = |_: &str| true;
        let decision = acceptor(&certified, &is_peer).check(&Hello::new("node2"));
        assert_eq!(
            decision,
            Err(HandshakeError::NameMismatch {
                claimed: "node2".into(),
                certified: certified.clone()
            })
        );
    }

    #[test]
    fn unknown_peers_and_our_own_name_are_refused() {
        let certified = names(&["node9"]);
        let is_peer = |name: &str| name == "node2";
        let decision = acceptor(&certified, &is_peer).check(&Hello::new("node9"));
        assert!(matches!(decision, Err(HandshakeError::UnknownPeer { .. })));
        let certified = names(&["node1"]);
        let decision = acceptor(&certified, &is_peer).check(&Hello::new("node1"));
        assert!(matches!(decision, Err(HandshakeError::OwnName { .. })));
    }

    #[test]
    fn the_dialer_checks_who_answered() {
        let reply = HelloReply::Welcome {
            version: PROTOCOL_VERSION,
            node: "node3".into(),
        };
        assert!(matches!(
            check_reply(&reply, "node2", &names(&["node3"])),
            Err(HandshakeError::WrongNode { .. })
        ));
        assert!(matches!(
            check_reply(&reply, "node3", &names(&["node2"])),
            Err(HandshakeError::NameMismatch { .. })
        ));
        let refused = HelloReply::Refused {
            reason: "nope".into(),
        };
        assert_eq!(
            check_reply(&refused, "node2", &names(&["node2"])),
            Err(HandshakeError::RefusedByPeer {
                reason: "nope".into()
            })
        );
    }
}
