//! The relay's writer: everything for a host on an away process's stream
//! (the deputy's answers and signals, the fast path's answers) goes
//! through it, in the order it was queued.
//!
//! While a move holds the relay, nothing reaches the frozen old host but
//! the hold's own frame, its last; the signals queued meanwhile wait for
//! wherever the program goes. The writer holds and lets go in the order
//! of its queue, never by a flag set beside it: when the relay cleared
//! such a flag before it queued the switch to the new host, a signal
//! already queued was written to the old host, and was lost with it.

use homing_proto::guest::{HeldSignal, ToHost};
use tokio::sync::mpsc;

use crate::wire::WireError;

/// What the relay's writer is asked to do, in order.
pub(super) enum Outgoing<S> {
    Frame(Vec<u8>),
    /// A bulk frame and its bytes (an answer: never held).
    Bulk(Vec<u8>, Vec<u8>),
    /// The new host's stream: what follows goes there, and nothing is
    /// held any more.
    Switch(S),
    /// Sends the signals held while the relay held (after the go).
    Release,
    /// From here on nothing reaches the old host but this frame, its last
    /// (a signal is held for wherever the program goes).
    Hold(Vec<u8>),
    /// Ends the writer, handing back the stream and the signals held.
    GiveBack,
}

/// A stream to a host, as the writer uses it.
pub(super) trait HostStream {
    async fn send_frame(&mut self, frame: Vec<u8>) -> Result<(), WireError>;
    /// Ends the stream (the host reads to its end).
    fn finish(&mut self);
}

impl HostStream for quinn::SendStream {
    async fn send_frame(&mut self, frame: Vec<u8>) -> Result<(), WireError> {
        crate::wire::send_frame(self, frame).await
    }

    fn finish(&mut self) {
        let _ = quinn::SendStream::finish(self);
    }
}

/// Holds what goes to the host, and tells the old host, after everything
/// queued for it so far, that nothing more comes: the signals it got
/// since its copy froze are then all it must hand back.
pub(super) fn hold<S>(to_host: &mpsc::UnboundedSender<Outgoing<S>>) {
    if let Ok(frame) = homing_proto::encode(&ToHost::Held) {
        let _ = to_host.send(Outgoing::Hold(frame));
    }
}

/// The signal a framed [`ToHost`] carries, with its sender, if it is one.
pub(super) fn signal_in(frame: &[u8]) -> Option<HeldSignal> {
    match homing_proto::decode::<ToHost>(frame.get(4..)?) {
        Ok(ToHost::Signal { signal, sender }) => Some(HeldSignal { signal, sender }),
        _ => None,
    }
}

/// Writes what `outbox` brings to `send`, until the relay asks for the
/// stream back (or it breaks): then the stream and the signal frames
/// held. `None` once the queue has ended, the stream finished.
pub(super) async fn write<S: HostStream>(
    mut send: S,
    mut outbox: mpsc::UnboundedReceiver<Outgoing<S>>,
) -> Option<(S, Vec<Vec<u8>>)> {
    let mut holds = false;
    let mut held: Vec<Vec<u8>> = Vec::new();
    while let Some(out) = outbox.recv().await {
        match out {
            Outgoing::Frame(frame) => {
                if holds {
                    if signal_in(&frame).is_some() {
                        held.push(frame);
                    }
                    continue;
                }
                if send.send_frame(frame).await.is_err() {
                    return Some((send, held));
                }
            }
            Outgoing::Bulk(frame, bytes) => {
                if holds {
                    continue;
                }
                let sent = match send.send_frame(frame).await {
                    Ok(()) => send.send_frame(bytes).await,
                    Err(error) => Err(error),
                };
                if sent.is_err() {
                    return Some((send, held));
                }
            }
            Outgoing::Switch(new_send) => {
                send.finish();
                send = new_send;
                holds = false;
            }
            Outgoing::Hold(frame) => {
                holds = true;
                if send.send_frame(frame).await.is_err() {
                    return Some((send, held));
                }
            }
            Outgoing::Release => {
                for frame in std::mem::take(&mut held) {
                    if send.send_frame(frame).await.is_err() {
                        break;
                    }
                }
            }
            Outgoing::GiveBack => return Some((send, held)),
        }
    }
    send.finish();
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A host's stream that keeps what it was sent, decoded.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<ToHost>>>);

    impl HostStream for Kept {
        async fn send_frame(&mut self, frame: Vec<u8>) -> Result<(), WireError> {
            let message = homing_proto::decode(&frame[4..]).expect("a whole frame");
            self.0.lock().unwrap().push(message);
            Ok(())
        }

        fn finish(&mut self) {}
    }

    impl Kept {
        fn signals_and_marks(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|message| match message {
                    ToHost::Signal { signal, .. } => format!("signal {signal}"),
                    other => format!("{other:?}"),
                })
                .collect()
        }
    }

    fn frame(message: &ToHost) -> Vec<u8> {
        homing_proto::encode(message).unwrap()
    }

    fn signal(signal: i32) -> Vec<u8> {
        frame(&ToHost::Signal {
            signal,
            sender: None,
        })
    }

    /// Everything is queued before the writer runs, as when its task is
    /// slow to be scheduled: only the queue's order decides.
    #[tokio::test]
    async fn a_move_holds_and_lets_go_in_the_order_things_were_queued() {
        let (old, new) = (Kept::default(), Kept::default());
        let (to_host, outbox) = mpsc::unbounded_channel();
        to_host.send(Outgoing::Frame(signal(10))).unwrap();
        hold(&to_host);
        // Held: a signal waits for the new host, an answer is dropped.
        to_host.send(Outgoing::Frame(signal(12))).unwrap();
        let answer = frame(&ToHost::Nice { nice: 3 });
        to_host.send(Outgoing::Frame(answer)).unwrap();
        to_host.send(Outgoing::Switch(new.clone())).unwrap();
        to_host.send(Outgoing::Frame(frame(&ToHost::Go))).unwrap();
        to_host.send(Outgoing::Frame(signal(14))).unwrap();
        to_host.send(Outgoing::Release).unwrap();
        to_host.send(Outgoing::Frame(signal(15))).unwrap();
        drop(to_host);
        assert!(write(old.clone(), outbox).await.is_none());
        assert_eq!(old.signals_and_marks(), ["signal 10", "Held"]);
        assert_eq!(
            new.signals_and_marks(),
            ["Go", "signal 14", "signal 12", "signal 15"]
        );
    }

    #[tokio::test]
    async fn coming_home_hands_back_the_stream_and_the_signals_held() {
        let old = Kept::default();
        let (to_host, outbox) = mpsc::unbounded_channel();
        hold(&to_host);
        to_host.send(Outgoing::Frame(signal(10))).unwrap();
        to_host.send(Outgoing::GiveBack).unwrap();
        let (_, held) = write(old.clone(), outbox).await.expect("given back");
        assert_eq!(old.signals_and_marks(), ["Held"]);
        let held: Vec<i32> = held
            .iter()
            .filter_map(|f| signal_in(f))
            .map(|h| h.signal)
            .collect();
        assert_eq!(held, [10]);
    }
}
