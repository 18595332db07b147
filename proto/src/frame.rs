//! Length-prefixed MessagePack frames.
//!
//! A frame is a 4-byte big-endian body length followed by the body, a
//! MessagePack value. A length above [`MAX_FRAME_LEN`] is refused before any
//! of the body is buffered, so a hostile peer cannot make us allocate it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest frame body accepted or produced, in bytes.
///
/// Large enough for a batch of memory pages or a big `read`, small enough
/// that a malicious length cannot exhaust memory.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be produced or understood.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces a body over the limit.
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLarge {
        /// The announced or attempted body length.
        len: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({have} of {want} bytes received)")]
    Truncated {
        /// Bytes of the frame (header included) that did arrive.
        have: usize,
        /// Bytes the frame needed.
        want: usize,
    },
    /// The body is not a valid encoding of the expected message.
    #[error("malformed frame body: {0}")]
    Malformed(#[from] rmp_serde::decode::Error),
    /// A message could not be encoded (a bug in the message type, not in the peer).
    #[error("cannot encode message: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// Encodes `msg` as one complete frame, header included.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    rmp_serde::encode::write(&mut out, msg)?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    let len = u32::try_from(len).map_err(|_| FrameError::TooLarge { len })?;
    out[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Decodes one frame body (without its header) as a `T`.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    Ok(rmp_serde::from_slice(body)?)
}

/// Reads the body length from a frame header, refusing lengths over the limit.
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    Ok(len)
}

/// Splits a byte stream into frame bodies, whatever sizes its pieces arrive in.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next complete frame body, if one is buffered.
    ///
    /// An oversized length prefix is an error as soon as the header is here.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = body_len(*header)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(body))
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let want = match self.buf.first_chunk::<HEADER_LEN>() {
            Some(header) => HEADER_LEN + body_len(*header)?,
            None => HEADER_LEN,
        };
        Err(FrameError::Truncated {
            have: self.buf.len(),
            want,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_arbitrary_splits() {
        let mut stream = encode(&"first").unwrap();
        stream.extend(encode(&vec![1u32, 2, 3]).unwrap());
        let mut decoder = FrameDecoder::new();
        let mut bodies = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            while let Some(body) = decoder.next_frame().unwrap() {
                bodies.push(body);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(decode::<String>(&bodies[0]).unwrap(), "first");
        assert_eq!(decode::<Vec<u32>>(&bodies[1]).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn oversized_header_is_refused_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len }) if len == u32::MAX as usize
        ));
    }

    #[test]
    fn truncated_stream_is_reported() {
        let frame = encode(&"hello").unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame[..frame.len() - 2]);
        assert!(decoder.next_frame().unwrap().is_none());
        match decoder.finish() {
            Err(FrameError::Truncated { have, want }) => {
                assert_eq!((have, want), (frame.len() - 2, frame.len()))
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }
}
