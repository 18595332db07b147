//! Length-prefixed MessagePack frames.
//!
//! A frame is a 4-byte big-endian body length followed by the body, a
//! MessagePack value. A length above [`MAX_FRAME_LEN`] is refused before any
//! of the body is buffered, so a hostile peer cannot make us allocate it.
//!
//! A message that carries a long run of bytes (a read's data, a write's)
//! may travel as a *bulk frame* instead (see [`Bulk`]): the length word has
//! [`BULK_FLAG`] set, and 8 more header bytes follow it, the bytes' length
//! and where in the message they belong (both big-endian `u32`); then the
//! message without them, then the bytes. Neither end copies the bytes to
//! build or take apart a MessagePack value around them: the sender hands
//! its buffer to the stream as it is, the receiver reads them straight
//! into the buffer the message keeps.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest frame body accepted or produced, in bytes.
///
/// Large enough for a batch of memory pages or a big `read`, small enough
/// that a malicious length cannot exhaust memory.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Set in a length word: a bulk frame follows (see the module's doc).
pub const BULK_FLAG: u32 = 1 << 31;

/// Bytes a bulk frame's header has after its length word.
pub const BULK_HEADER_LEN: usize = 8;

/// The shortest run of bytes worth sending apart from its message.
pub const BULK_FROM: usize = 16 << 10;

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
    /// A bulk frame's bytes name no place in its message that could take them.
    #[error("bulk bytes for place {at}, which the message does not have")]
    MisplacedBulk {
        /// The place the frame named.
        at: u32,
    },
    /// A bulk frame came where only plain frames may.
    #[error("a bulk frame where none may come")]
    UnexpectedBulk,
}

/// A message that may carry one long run of bytes, sent apart from the
/// rest of it in a bulk frame.
pub trait Bulk {
    /// Takes its longest run of bytes out, if that is at least
    /// [`BULK_FROM`] long: where it was, and the bytes.
    fn take_bulk(&mut self) -> Option<(u32, Vec<u8>)>;

    /// Puts bytes that [`Bulk::take_bulk`] took back at `at`: a place that
    /// exists and is empty, else [`FrameError::MisplacedBulk`].
    fn put_bulk(&mut self, at: u32, bytes: Vec<u8>) -> Result<(), FrameError>;
}

/// What [`read_header`] found at a frame's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A plain frame of this body length.
    Plain(usize),
    /// A bulk frame: its message's length, then its bytes' (whose header
    /// rest, [`BULK_HEADER_LEN`] bytes, is still to read: see
    /// [`bulk_header`]).
    Bulk(usize),
}

/// Reads a length word, refusing lengths over the limit.
pub fn read_header(header: [u8; HEADER_LEN]) -> Result<Header, FrameError> {
    let word = u32::from_be_bytes(header);
    if word & BULK_FLAG != 0 {
        let len = (word & !BULK_FLAG) as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge { len });
        }
        return Ok(Header::Bulk(len));
    }
    body_len(header).map(Header::Plain)
}

/// Reads the rest of a bulk frame's header: its bytes' length and their
/// place in the message, refusing lengths over the limit.
pub fn bulk_header(rest: [u8; BULK_HEADER_LEN]) -> Result<(usize, u32), FrameError> {
    let [a, b, c, d, e, f, g, h] = rest;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    Ok((len, u32::from_be_bytes([e, f, g, h])))
}

/// Encodes `msg` as a bulk frame if it carries a long run of bytes: the
/// frame up to its bytes, and the bytes to send after it as they are.
/// Otherwise as a plain frame, and no bytes.
pub fn encode_bulk<T: Serialize + Bulk>(
    mut msg: T,
) -> Result<(Vec<u8>, Option<Vec<u8>>), FrameError> {
    let Some((at, bytes)) = msg.take_bulk() else {
        return Ok((encode(&msg)?, None));
    };
    if bytes.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: bytes.len() });
    }
    let mut out = vec![0u8; HEADER_LEN + BULK_HEADER_LEN];
    rmp_serde::encode::write(&mut out, &msg)?;
    let len = out.len() - HEADER_LEN - BULK_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    out[..HEADER_LEN].copy_from_slice(&(len as u32 | BULK_FLAG).to_be_bytes());
    out[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(bytes.len() as u32).to_be_bytes());
    out[HEADER_LEN + 4..HEADER_LEN + BULK_HEADER_LEN].copy_from_slice(&at.to_be_bytes());
    Ok((out, Some(bytes)))
}

/// Decodes a message from a frame body and, for a bulk frame, its bytes
/// and their place.
pub fn decode_bulk<T: DeserializeOwned + Bulk>(
    body: &[u8],
    bulk: Option<(u32, Vec<u8>)>,
) -> Result<T, FrameError> {
    let mut msg: T = decode(body)?;
    if let Some((at, bytes)) = bulk {
        msg.put_bulk(at, bytes)?;
    }
    Ok(msg)
}

/// Of `runs`, the place and bytes of the longest if it is worth sending
/// apart, taken out: what [`Bulk::take_bulk`] does for a list of buffers.
pub fn take_longest(runs: &mut [crate::syscall::ArgData]) -> Option<(u32, Vec<u8>)> {
    let (at, longest) = runs
        .iter_mut()
        .enumerate()
        .max_by_key(|(_, run)| run.bytes.len())?;
    if longest.bytes.len() < BULK_FROM {
        return None;
    }
    Some((at as u32, std::mem::take(&mut longest.bytes)))
}

/// Puts `bytes` back into `runs` at `at`, which must be there and empty:
/// what [`Bulk::put_bulk`] does for a list of buffers.
pub fn put_back(
    runs: &mut [crate::syscall::ArgData],
    at: u32,
    bytes: Vec<u8>,
) -> Result<(), FrameError> {
    match runs.get_mut(at as usize) {
        Some(run) if run.bytes.is_empty() => {
            run.bytes = bytes;
            Ok(())
        }
        _ => Err(FrameError::MisplacedBulk { at }),
    }
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
