//! Properties every message and the decoder must have, whatever the input.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::control::{ControlRequest, ControlResponse};
use crate::guest::{ToHome, ToHost};
use crate::peer::{Eviction, Handing, PeerRequest, PeerResponse, Verdict};
use crate::{decode, encode, FrameDecoder, Hello, HelloReply};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(msg: T) {
    let frame = encode(&msg).expect("encodes");
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame);
    let body = decoder.next_frame().expect("valid").expect("complete");
    decoder.finish().expect("nothing left over");
    assert_eq!(decode::<T>(&body).expect("decodes"), msg);
}

/// Feeds `bytes` through the frame decoder and every message decoder; any
/// result is fine as long as nothing panics.
fn decode_everything(bytes: &[u8]) {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    while let Ok(Some(body)) = decoder.next_frame() {
        let _ = decode::<Hello>(&body);
        let _ = decode::<HelloReply>(&body);
        let _ = decode::<PeerRequest>(&body);
        let _ = decode::<PeerResponse>(&body);
        let _ = decode::<ControlRequest>(&body);
        let _ = decode::<ControlResponse>(&body);
        let _ = decode::<ToHome>(&body);
        let _ = decode::<ToHost>(&body);
        let _ = ToHost::answered_id(&body);
        let _ = decode::<Eviction>(&body);
        let _ = decode::<Verdict>(&body);
        let _ = decode::<Handing>(&body);
    }
    let _ = decoder.finish();
    let _ = decode::<PeerRequest>(bytes);
    let _ = decode::<ControlResponse>(bytes);
}

proptest! {
    #[test]
    fn hello_round_trips(msg: Hello) { round_trip(msg) }

    #[test]
    fn hello_reply_round_trips(msg: HelloReply) { round_trip(msg) }

    #[test]
    fn peer_request_round_trips(msg: PeerRequest) { round_trip(msg) }

    #[test]
    fn peer_response_round_trips(msg: PeerResponse) { round_trip(msg) }

    #[test]
    fn control_request_round_trips(msg: ControlRequest) { round_trip(msg) }

    #[test]
    fn control_response_round_trips(msg: ControlResponse) { round_trip(msg) }

    #[test]
    fn to_home_round_trips(msg: ToHome) { round_trip(msg) }

    #[test]
    fn to_host_round_trips(msg: ToHost) { round_trip(msg) }

    #[test]
    fn to_host_outlines_agree_with_the_whole(msg: ToHost) {
        let frame = encode(&msg).expect("encodes");
        let answered = match msg {
            ToHost::Result { id, .. } => Some(id),
            _ => None,
        };
        prop_assert_eq!(ToHost::answered_id(&frame[4..]).expect("outlines"), answered);
        // What is no ToHost is no outline of one either.
        prop_assert!(ToHost::answered_id(&encode(&"Result").expect("encodes")[4..]).is_err());
    }

    #[test]
    fn eviction_round_trips(msg: Eviction) { round_trip(msg) }

    #[test]
    fn handing_round_trips(msg: Handing) { round_trip(msg) }

    #[test]
    fn verdict_round_trips(msg: Verdict) { round_trip(msg) }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes)
    }

    #[test]
    fn framed_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        decode_everything(&framed)
    }

    #[test]
    fn mutated_valid_frames_never_panic(msg: ControlResponse, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut frame = encode(&msg).expect("encodes");
        for (index, value) in flips {
            let at = index.index(frame.len());
            frame[at] ^= value;
        }
        decode_everything(&frame)
    }
}
