//! Feeds arbitrary bytes to the frame decoder and every message decoder.

#![no_main]

use homing_proto::control::{ControlRequest, ControlResponse};
use homing_proto::guest::{ToHome, ToHost};
use homing_proto::peer::{PeerRequest, PeerResponse};
use homing_proto::{decode, FrameDecoder, Hello, HelloReply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split the input in two pushes to exercise partial headers and bodies.
    let split = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let mut decoder = FrameDecoder::new();
    decoder.push(&data[..split]);
    decoder.push(&data[split..]);
    while let Ok(Some(body)) = decoder.next_frame() {
        let _ = decode::<Hello>(&body);
        let _ = decode::<HelloReply>(&body);
        let _ = decode::<PeerRequest>(&body);
        let _ = decode::<PeerResponse>(&body);
        let _ = decode::<ControlRequest>(&body);
        let _ = decode::<ControlResponse>(&body);
        let _ = decode::<ToHome>(&body);
        let _ = decode::<ToHost>(&body);
    }
    let _ = decoder.finish();
});
