//! Draining a host: moving every guest off it, and keeping new ones out
//! until root takes them again (`homing drain`, `homing undrain`).
//!
//! A drain closes the host to new guests before it lists the ones it
//! has, so nothing it has not asked to leave can arrive behind it: a
//! start, a move here or a move on from another host is refused with
//! one line saying why. A forked child of a guest is still let in (its
//! parent runs here) and is moved off with the rest. Guests whose arrival
//! was let in just before the close are waited for, then moved too.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use homing_proto::control::ControlResponse;
use homing_proto::peer::{PeerRequest, PeerResponse};
use tokio::net::UnixStream;
use tracing::{info, warn};

use super::Node;
use crate::wire::{write_message, WireError};

/// How long a drain waits for a guest let in before the close to arrive
/// (its memory on the way, say) before it gives up on it.
const ARRIVAL_WAIT: Duration = Duration::from_secs(60);

/// How often a drain looks again for such a guest.
const ARRIVAL_LOOK: Duration = Duration::from_millis(20);

/// A guest, by its home node and its pid there.
type GuestKey = (String, i32);

/// Whether this node takes new guests, and the guests it let in that may
/// not have shown among its guests yet.
#[derive(Default)]
pub(super) struct Cordon {
    closed: AtomicBool,
    /// Arrivals let in and not ended, counted: a guest that moves off and
    /// straight back has two for a moment.
    arriving: DashMap<GuestKey, usize>,
}

/// One arrival let in; it counts until dropped (the guest ended here, or
/// left, or could not arrive).
pub(super) struct Arrival {
    cordon: Arc<Cordon>,
    key: GuestKey,
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.cordon.arriving.remove_if_mut(&self.key, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

impl Cordon {
    /// Lets in the guest `home_pid` of `home`, or says why not: this node
    /// is drained. A forked child (`child_of_guest`) is always let in.
    pub(super) fn admit(
        self: &Arc<Self>,
        node: &str,
        home: &str,
        home_pid: i32,
        child_of_guest: bool,
    ) -> Result<Arrival, String> {
        let key = (home.to_owned(), home_pid);
        // Counted before the look, so that a drain closing meanwhile
        // either sees it counted or is seen closed here.
        *self.arriving.entry(key.clone()).or_default() += 1;
        let arrival = Arrival {
            cordon: self.clone(),
            key,
        };
        if self.closed.load(Ordering::SeqCst) && !child_of_guest {
            return Err(format!(
                "{node} takes no new guests: it is drained (root runs `homing undrain` there to open it again)"
            ));
        }
        Ok(arrival)
    }

    /// Closes the node to new guests; whether it was open.
    fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::SeqCst)
    }

    /// Whether the node is drained.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Opens the node to new guests again; whether it was closed.
    fn reopen(&self) -> bool {
        self.closed.swap(false, Ordering::SeqCst)
    }

    /// The guests let in and not ended.
    fn arrivals(&self) -> Vec<GuestKey> {
        self.arriving
            .iter()
            .map(|entry| entry.key().clone())
            .collect()
    }
}

impl Node {
    /// As host: closes this node to new guests, then asks the home of
    /// every guest here to move it off, home or to node `to`, one after
    /// another, and tells the client how each went (root only). A guest
    /// that cannot move (its home says why) goes on here. Guests that
    /// come while it runs (forked children, arrivals let in before the
    /// close) are asked in turn.
    pub(super) async fn drain(
        &self,
        mut client: UnixStream,
        cred: tokio::net::unix::UCred,
        to: Option<String>,
    ) -> Result<(), WireError> {
        if cred.uid() != 0 {
            let message = "only root may drain a node: it moves every user's processes".into();
            return write_message(&mut client, &ControlResponse::Error { message }).await;
        }
        if self.cordon.close() {
            info!("drained: this node takes no new guests");
        }
        let (mut moved, mut left) = (0, 0);
        let mut asked: HashSet<GuestKey> = HashSet::new();
        let mut waiting_since = tokio::time::Instant::now();
        loop {
            let guests = self.host.guests();
            let present: HashSet<GuestKey> =
                guests.iter().map(|g| (g.node.clone(), g.pid)).collect();
            let unasked: Vec<_> = guests
                .into_iter()
                .filter(|g| !asked.contains(&(g.node.clone(), g.pid)))
                .collect();
            if unasked.is_empty() {
                let coming: Vec<GuestKey> = self
                    .cordon
                    .arrivals()
                    .into_iter()
                    .filter(|key| !asked.contains(key) && !present.contains(key))
                    .collect();
                if coming.is_empty() {
                    break;
                }
                if waiting_since.elapsed() > ARRIVAL_WAIT {
                    warn!(?coming, "draining: guests still arriving are left to come");
                    break;
                }
                tokio::time::sleep(ARRIVAL_LOOK).await;
                continue;
            }
            info!(
                guests = unasked.len(),
                "draining: asking each guest's home to take it"
            );
            for guest in unasked {
                asked.insert((guest.node.clone(), guest.pid));
                let mut outcome = self.ask_to_move_off(&guest.node, guest.pid, &to).await;
                match &outcome {
                    Ok(how) => {
                        info!(home = guest.node, pid = guest.pid, "guest went home: {how}");
                        moved += 1;
                    }
                    // It ended meanwhile: nothing is left to send.
                    Err(_) if !self.hosts(&guest.node, guest.pid) => {
                        outcome = Ok("it ended before it could move".into());
                    }
                    Err(why) => {
                        warn!(home = guest.node, pid = guest.pid, "guest stays: {why}");
                        left += 1;
                    }
                }
                let report = ControlResponse::GuestMoved {
                    home_node: guest.node,
                    pid: guest.pid,
                    command: guest.command,
                    outcome,
                };
                write_message(&mut client, &report).await?;
            }
            waiting_since = tokio::time::Instant::now();
        }
        write_message(&mut client, &ControlResponse::Drained { moved, left }).await
    }

    /// As host: opens this node to new guests again after a drain (root
    /// only).
    pub(super) async fn undrain(
        &self,
        mut client: UnixStream,
        cred: tokio::net::unix::UCred,
    ) -> Result<(), WireError> {
        let response = if cred.uid() != 0 {
            let message = "only root may open a drained node again".into();
            ControlResponse::Error { message }
        } else {
            let was_drained = self.cordon.reopen();
            if was_drained {
                info!("undrained: this node takes new guests again");
            }
            ControlResponse::Undrained { was_drained }
        };
        write_message(&mut client, &response).await
    }

    /// Lets in the guest `home_pid` of `home` (a forked child of a guest
    /// here: `child_of_guest`), or says why not.
    pub(super) fn admit(
        &self,
        home: &str,
        home_pid: i32,
        child_of_guest: bool,
    ) -> Result<Arrival, String> {
        self.cordon
            .admit(&self.config.name, home, home_pid, child_of_guest)
    }

    /// Whether guest `pid` of `home` runs here.
    fn hosts(&self, home: &str, pid: i32) -> bool {
        self.host
            .guests()
            .iter()
            .any(|g| g.node == home && g.pid == pid)
    }

    /// Asks `home` to move its process `home_pid`, which runs here, off
    /// this node, home or to `to` ([`PeerRequest::MoveOff`]): how the move
    /// went, or why it did not.
    async fn ask_to_move_off(
        &self,
        home: &str,
        home_pid: i32,
        to: &Option<String>,
    ) -> Result<String, String> {
        let request = PeerRequest::MoveOff {
            home_pid,
            to: to.clone(),
        };
        match self.ask_peer(home, &request).await? {
            (PeerResponse::MovedOff { summary }, _) => Ok(summary),
            (other, _) => Err(format!("{home} answered {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_node_refuses_new_guests_but_lets_a_guests_child_in() {
        let cordon = Arc::new(Cordon::default());
        assert!(cordon.admit("node2", "node1", 10, false).is_ok());
        assert!(cordon.close());
        let refused = cordon.admit("node2", "node1", 11, false).err().unwrap();
        assert!(
            refused.starts_with("node2 takes no new guests"),
            "{refused}"
        );
        let child = cordon.admit("node2", "node1", 12, true);
        assert!(child.is_ok());
        assert_eq!(cordon.arrivals(), vec![("node1".to_owned(), 12)]);
        assert!(cordon.reopen());
        assert!(!cordon.reopen());
        assert!(cordon.admit("node2", "node1", 13, false).is_ok());
    }

    #[test]
    fn an_arrival_counts_until_each_of_its_admissions_is_dropped() {
        let cordon = Arc::new(Cordon::default());
        let first = cordon.admit("node2", "node1", 10, false).unwrap();
        let again = cordon.admit("node2", "node1", 10, false).unwrap();
        drop(first);
        assert_eq!(cordon.arrivals(), vec![("node1".to_owned(), 10)]);
        drop(again);
        assert!(cordon.arrivals().is_empty());
    }
}
