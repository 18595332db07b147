//! Frames over async byte streams (QUIC streams and the control socket).

use homing_proto::frame::{bulk_header, encode_bulk, read_header, Bulk, Header, HEADER_LEN};
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
    let Some(header) = read_exact_or_end::<HEADER_LEN, _>(reader).await? else {
        return Ok(None);
    };
    let Header::Plain(len) = read_header(header)? else {
        return Err(FrameError::UnexpectedBulk.into());
    };
    let kept = if prefix { HEADER_LEN } else { 0 };
    let mut frame = Vec::with_capacity(kept + len);
    frame.extend_from_slice(&header[..kept]);
    read_into(reader, &mut frame, len, HEADER_LEN).await?;
    Ok(Some(frame))
}

/// A frame's message body and, for a bulk frame, its bytes and their place.
pub type BulkFrame = (Vec<u8>, Option<(u32, Vec<u8>)>);

/// Reads one frame, plain or bulk (see [`homing_proto::frame::Bulk`]);
/// `Ok(None)` if the stream ended cleanly before it.
pub async fn read_bulk_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<BulkFrame>, WireError> {
    let Some(header) = read_exact_or_end::<HEADER_LEN, _>(reader).await? else {
        return Ok(None);
    };
    let len = match read_header(header)? {
        Header::Plain(len) => {
            let mut body = Vec::with_capacity(len);
            read_into(reader, &mut body, len, HEADER_LEN).await?;
            return Ok(Some((body, None)));
        }
        Header::Bulk(len) => len,
    };
    let rest = read_exact_or_end(reader)
        .await?
        .ok_or(FrameError::Truncated {
            have: HEADER_LEN,
            want: HEADER_LEN + homing_proto::frame::BULK_HEADER_LEN,
        })?;
    let (bytes_len, at) = bulk_header(rest)?;
    let header_len = HEADER_LEN + homing_proto::frame::BULK_HEADER_LEN;
    let mut body = Vec::with_capacity(len);
    read_into(reader, &mut body, len, header_len).await?;
    let mut bytes = Vec::with_capacity(bytes_len);
    read_into(reader, &mut bytes, bytes_len, header_len + len).await?;
    Ok(Some((body, Some((at, bytes)))))
}

/// Appends the next `len` bytes of `reader` to `buffer`, into its spare
/// capacity: zeroing a megabyte first would only be overwritten. A
/// truncation counts the `before` bytes of the frame read before these.
async fn read_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
    len: usize,
    before: usize,
) -> Result<(), WireError> {
    let start = buffer.len();
    let mut rest = reader.take(len as u64);
    while buffer.len() < start + len && rest.read_buf(buffer).await? > 0 {}
    let have = buffer.len() - start;
    if have < len {
        return Err(FrameError::Truncated {
            have: before + have,
            want: before + len,
        }
        .into());
    }
    Ok(())
}

/// Reads `N` bytes; `Ok(None)` if the stream ended cleanly before them.
async fn read_exact_or_end<const N: usize, R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<[u8; N]>, WireError> {
    let mut header = [0u8; N];
    let mut have = 0;
    while have < N {
        let n = reader.read(&mut header[have..]).await?;
        if n == 0 {
            if have == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated { have, want: N }.into());
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

/// Encodes and sends one message on a QUIC stream, as a bulk frame if it
/// carries a long run of bytes (see [`homing_proto::frame::Bulk`]).
pub async fn send_bulk_message<T: Serialize + Bulk>(
    send: &mut quinn::SendStream,
    msg: T,
) -> Result<(), WireError> {
    let (frame, bytes) = encode_bulk(msg)?;
    send_frame(send, frame).await?;
    match bytes {
        Some(bytes) => send_frame(send, bytes).await,
        None => Ok(()),
    }
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
    use homing_proto::guest::ToHost;
    use homing_proto::syscall::{ArgData, SyscallResult};

    #[tokio::test]
    async fn a_bulk_frame_crosses_a_stream_and_a_plain_reader_refuses_it() {
        let answer = ToHost::Result {
            id: 9,
            result: SyscallResult {
                ret: 1 << 20,
                outputs: vec![
                    ArgData {
                        index: 1,
                        bytes: (0..1 << 20).map(|i| i as u8).collect(),
                    },
                    ArgData {
                        index: 252,
                        bytes: vec![1, 2, 3],
                    },
                ],
            },
        };
        let (frame, bytes) = encode_bulk(answer.clone()).unwrap();
        let bytes = bytes.expect("a megabyte goes apart");
        let frame_len = frame.len();
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            for _ in 0..2 {
                a.write_all(&frame).await.unwrap();
                a.write_all(&bytes).await.unwrap();
            }
            // One more, cut short inside its bytes.
            a.write_all(&frame).await.unwrap();
            a.write_all(&bytes[..100]).await.unwrap();
        });
        let (body, bulk) = read_bulk_frame(&mut b).await.unwrap().unwrap();
        let decoded: ToHost = homing_proto::frame::decode_bulk(&body, bulk).unwrap();
        assert_eq!(decoded, answer);
        assert!(matches!(
            read_frame(&mut b).await,
            Err(WireError::Frame(FrameError::UnexpectedBulk))
        ));
        // What the plain reader left of that frame is no frame at all.
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        writer.await.unwrap();
        let mut truncated = &rest[rest.len() - frame_len - 100..];
        match read_bulk_frame(&mut truncated).await {
            Err(WireError::Frame(FrameError::Truncated { have, want })) => {
                assert_eq!(want - have, (1 << 20) - 100)
            }
            other => panic!("expected a truncation, got {other:?}"),
        }
    }

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
