//! Frames over async byte streams (QUIC streams and the control socket).

use homing_proto::frame::{body_len, HEADER_LEN};
use homing_proto::FrameError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Errors moving frames over a stream.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The bytes were not a valid frame or message.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended before the expected message.
    #[error("stream closed before a message arrived")]
    Closed,
}

/// Reads one frame body; `Ok(None)` if the stream ended cleanly before it.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Vec<u8>>, WireError> {
    read_frame_keeping(reader, false).await
}

/// Reads one frame whole, its length prefix included, for a relay that
/// passes it on as it came; `Ok(None)` if the stream ended cleanly
/// before it.
pub async fn read_whole_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Vec<u8>>, WireError> {
    read_frame_keeping(reader, true).await
}

/// Reads one frame: its body, after its length prefix if `prefix`. The
/// body goes into spare capacity: zeroing a megabyte first would only be
/// overwritten.
async fn read_frame_keeping<R: AsyncRead + Unpin>(
    reader: &mut R,
    prefix: bool,
) -> Result<Option<Vec<u8>>, WireError> {
    let Some(header) = read_header(reader).await? else {
        return Ok(None);
    };
    let len = body_len(header)?;
    let kept = if prefix { HEADER_LEN } else { 0 };
    let mut frame = Vec::with_capacity(kept + len);
    frame.extend_from_slice(&header[..kept]);
    let mut rest = reader.take(len as u64);
    while frame.len() < kept + len && rest.read_buf(&mut frame).await? > 0 {}
    let have = frame.len() - kept;
    if have < len {
        return Err(FrameError::Truncated {
            have: HEADER_LEN + have,
            want: HEADER_LEN + len,
        }
        .into());
    }
    Ok(Some(frame))
}

/// Reads a frame's length prefix; `Ok(None)` if the stream ended cleanly
/// before it.
async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<[u8; HEADER_LEN]>, WireError> {
    let mut header = [0u8; HEADER_LEN];
    let mut have = 0;
    while have < HEADER_LEN {
        let n = reader.read(&mut header[have..]).await?;
        if n == 0 {
            if have == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                have,
                want: HEADER_LEN,
            }
            .into());
        }
        have += n;
    }
    Ok(Some(header))
}

/// Reads and decodes one message; a clean end of stream is [`WireError::Closed`].
pub async fn read_message<T: DeserializeOwned, R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<T, WireError> {
    let body = read_frame(reader).await?.ok_or(WireError::Closed)?;
    Ok(homing_proto::decode(&body)?)
}

/// Encodes and writes one message.
pub async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    msg: &T,
) -> Result<(), WireError> {
    let frame = homing_proto::encode(msg)?;
    writer.write_all(&frame).await?;
    Ok(())
}

/// Encodes and sends one message on a QUIC stream (see [`send_frame`]).
pub async fn send_message<T: Serialize>(
    send: &mut quinn::SendStream,
    msg: &T,
) -> Result<(), WireError> {
    send_frame(send, homing_proto::encode(msg)?).await
}

/// Sends one encoded frame on a QUIC stream. quinn takes the frame as it
/// is: `write_all` would copy it into a buffer of its own first, once
/// more for each megabyte a bulk read or write moves.
pub async fn send_frame(send: &mut quinn::SendStream, frame: Vec<u8>) -> Result<(), WireError> {
    send.write_chunk(bytes::Bytes::from(frame))
        .await
        .map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_crosses_a_stream_and_truncation_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            write_message(&mut a, &"over the wire".to_string())
                .await
                .unwrap();
            write_message(&mut a, &"as it came").await.unwrap();
            a.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
        });
        let first: String = read_message(&mut b).await.unwrap();
        assert_eq!(first, "over the wire");
        let passed_on = read_whole_frame(&mut b).await.unwrap().unwrap();
        assert_eq!(passed_on, homing_proto::encode(&"as it came").unwrap());
        writer.await.unwrap();
        assert!(matches!(
            read_frame(&mut b).await,
            Err(WireError::Frame(FrameError::Truncated {
                have: 6,
                want: 13
            }))
        ));
    }
}
