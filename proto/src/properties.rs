//! Properties every message and the decoder must have, whatever the input.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::control::{ControlRequest, ControlResponse};
use crate::frame::{bulk_header, decode_bulk, encode_bulk, read_header, Bulk, Header, BULK_FROM};
use crate::guest::{ToHome, ToHost};
use crate::peer::{Eviction, Handing, PeerRequest, PeerResponse, Verdict};
use crate::syscall::ArgData;
use crate::{decode, encode, FrameDecoder, FrameError, Hello, HelloReply};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(msg: T) {
    let frame = encode(&msg).expect("encodes");
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame);
    let body = decoder.next_frame().expect("valid").expect("complete");
    decoder.finish().expect("nothing left over");
    assert_eq!(decode::<T>(&body).expect("decodes"), msg);
}

/// Sends `msg` as a bulk frame if it has bytes to send apart, takes the
/// frame apart as a receiver does, and checks that the same message
/// comes out; returns whether its bytes went apart.
fn bulk_round_trip<T>(msg: T) -> bool
where
    T: Serialize + DeserializeOwned + Bulk + Clone + PartialEq + std::fmt::Debug,
{
    let (frame, bytes) = encode_bulk(msg.clone()).expect("encodes");
    let word = frame[..4].try_into().expect("a length word");
    let decoded: T = match (read_header(word).expect("valid"), bytes) {
        (Header::Plain(len), None) => {
            assert_eq!(frame.len(), 4 + len);
            decode(&frame[4..]).expect("decodes")
        }
        (Header::Bulk(len), Some(bytes)) => {
            let rest = frame[4..12].try_into().expect("a bulk header");
            let (bytes_len, at) = bulk_header(rest).expect("valid");
            assert_eq!((frame.len(), bytes_len), (12 + len, bytes.len()));
            assert!(bytes.len() >= BULK_FROM);
            decode_bulk(&frame[12..], Some((at, bytes))).expect("decodes")
        }
        (header, bytes) => panic!("{header:?} with bytes apart: {}", bytes.is_some()),
    };
    assert_eq!(decoded, msg);
    matches!(read_header(word), Ok(Header::Bulk(_)))
}

/// A call or answer's buffers with a long one among them at `at`.
fn with_long_run(runs: &mut Vec<ArgData>, at: prop::sample::Index, len: usize, byte: u8) {
    let at = at.index(runs.len() + 1);
    runs.insert(
        at,
        ArgData {
            index: 1,
            bytes: vec![byte; len],
        },
    );
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
        // The same bodies as bulk frames', with bytes for any place.
        for at in [0, 1, 5, u32::MAX] {
            let _ = decode_bulk::<ToHome>(&body, Some((at, vec![7; 3])));
            let _ = decode_bulk::<ToHost>(&body, Some((at, vec![7; 3])));
        }
        let _ = ToHost::answered_id(&body);
        let _ = decode::<Eviction>(&body);
        let _ = decode::<Verdict>(&body);
        let _ = decode::<Handing>(&body);
    }
    let _ = decoder.finish();
    if let Some(word) = bytes.first_chunk::<4>() {
        let _ = read_header(*word);
    }
    if let Some(rest) = bytes.first_chunk::<8>() {
        let _ = bulk_header(*rest);
    }
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
    fn calls_and_answers_with_long_buffers_cross_as_bulk_frames(
        mut call: ToHome,
        mut answer: ToHost,
        at: prop::sample::Index,
        len in 0..3 * BULK_FROM,
        byte: u8,
    ) {
        let mut long = false;
        if let ToHome::Syscall { call, .. } = &mut call {
            with_long_run(&mut call.inputs, at, len, byte);
            long = true;
        }
        prop_assert_eq!(bulk_round_trip(call), long && len >= BULK_FROM);
        let mut long = false;
        if let ToHost::Result { result, .. } = &mut answer {
            with_long_run(&mut result.outputs, at, len, byte);
            long = true;
        }
        prop_assert_eq!(bulk_round_trip(answer), long && len >= BULK_FROM);
    }

    #[test]
    fn bulk_bytes_for_no_empty_place_are_refused(answer: ToHost, at: u32) {
        let places = match &answer {
            ToHost::Result { result, .. } => result.outputs.clone(),
            _ => vec![],
        };
        let fits = places.get(at as usize).is_some_and(|run| run.bytes.is_empty());
        let body = encode(&answer).expect("encodes");
        let decoded = decode_bulk::<ToHost>(&body[4..], Some((at, vec![1; 3])));
        prop_assert_eq!(decoded.is_ok(), fits);
        if !fits {
            let refused = matches!(decoded, Err(FrameError::MisplacedBulk { at: named }) if named == at);
            prop_assert!(refused);
        }
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
