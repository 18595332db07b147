//! Frames over async byte streams (QUIC streams and the control socket).

use homing_proto::frame::{
    bulk_header, encode_bulk, read_header, Bulk, Header, BULK_FLAG, BULK_HEADER_LEN, HEADER_LEN,
};
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
    fill(reader, &mut frame, kept + len, HEADER_LEN - kept).await?;
    Ok(Some(frame))
}

/// A frame's message body and, for a bulk frame, its bytes and their place.
pub type BulkFrame = (Vec<u8>, Option<(u32, Vec<u8>)>);

/// Reads one frame, plain or bulk (see [`homing_proto::frame::Bulk`]);
/// `Ok(None)` if the stream ended cleanly before it.
pub async fn read_bulk_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<BulkFrame>, WireError> {
    FrameReader::default().next(reader).await
}

/// Reads frames, plain or bulk, from one stream, keeping what it has read
/// of a frame from one call to the next. [`FrameReader::next`] may be
/// dropped at any await, as a `select!` does when another branch is ready
/// first, and the next call goes on where it stopped: a frame read by a
/// future that is dropped half way loses the bytes it had, and every frame
/// after it is read from the middle of one.
#[derive(Debug, Default)]
pub struct FrameReader {
    header: [u8; HEADER_LEN + BULK_HEADER_LEN],
    header_have: usize,
    /// Once the header is whole: the body's length, and for a bulk frame
    /// its bytes' length and place.
    shape: Option<(usize, Option<(usize, u32)>)>,
    body: Vec<u8>,
    bytes: Vec<u8>,
}

impl FrameReader {
    /// Whether part of a frame has been read and the rest has not.
    pub fn inside_a_frame(&self) -> bool {
        self.header_have > 0
    }

    /// Reads the next frame, or the rest of the one a dropped call began;
    /// `Ok(None)` if the stream ended cleanly before it. Cancel safe.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<BulkFrame>, WireError> {
        let (body_len, bulk) = match self.shape {
            Some(shape) => shape,
            None => match self.read_header(reader).await? {
                Some(shape) => shape,
                None => return Ok(None),
            },
        };
        let header_len = self.header_have;
        fill(reader, &mut self.body, body_len, header_len).await?;
        if let Some((bytes_len, _)) = bulk {
            fill(reader, &mut self.bytes, bytes_len, header_len + body_len).await?;
        }
        let body = std::mem::take(&mut self.body);
        let bytes = std::mem::take(&mut self.bytes);
        self.header_have = 0;
        self.shape = None;
        Ok(Some((body, bulk.map(|(_, at)| (at, bytes)))))
    }

    /// Reads the length word, and a bulk frame's header rest after it, and
    /// makes room for what they announce.
    async fn read_header<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<(usize, Option<(usize, u32)>)>, WireError> {
        loop {
            let [a, b, c, d, ..] = self.header;
            let want = if self.header_have >= HEADER_LEN
                && u32::from_be_bytes([a, b, c, d]) & BULK_FLAG != 0
            {
                HEADER_LEN + BULK_HEADER_LEN
            } else {
                HEADER_LEN
            };
            if self.header_have == want {
                break;
            }
            let n = reader
                .read(&mut self.header[self.header_have..want])
                .await?;
            if n == 0 {
                if self.header_have == 0 {
                    return Ok(None);
                }
                return Err(FrameError::Truncated {
                    have: self.header_have,
                    want,
                }
                .into());
            }
            self.header_have += n;
        }
        let [a, b, c, d, rest @ ..] = self.header;
        let shape = match read_header([a, b, c, d])? {
            Header::Plain(len) => (len, None),
            Header::Bulk(len) => (len, Some(bulk_header(rest)?)),
        };
        self.body = Vec::with_capacity(shape.0);
        self.bytes = Vec::with_capacity(shape.1.map_or(0, |(len, _)| len));
        self.shape = Some(shape);
        Ok(Some(shape))
    }
}

/// Reads into `buffer` until it holds `len` bytes, into its spare
/// capacity: zeroing a megabyte first would only be overwritten. Cancel
/// safe: what one read brings is in `buffer` before the next is awaited.
/// A truncation counts the `elsewhere` bytes of the frame read but not
/// kept in `buffer`.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
    len: usize,
    elsewhere: usize,
) -> Result<(), WireError> {
    while buffer.len() < len {
        let rest = (len - buffer.len()) as u64;
        if (&mut *reader).take(rest).read_buf(buffer).await? == 0 {
            return Err(FrameError::Truncated {
                have: elsewhere + buffer.len(),
                want: elsewhere + len,
            }
            .into());
        }
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

/// What waits to be written to a deputy: its messages, and the files
/// they give it (`ToHome::TakeFiles`), which go with their bytes.
#[derive(Default)]
pub struct ForDeputy {
    bytes: Vec<u8>,
    files: Vec<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl ForDeputy {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Adds a message's frame.
    pub fn push(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
    }

    /// Adds files for the deputy, whose message follows.
    pub fn give(&mut self, files: Vec<std::sync::Arc<std::os::fd::OwnedFd>>) {
        self.files.extend(files);
    }

    /// Writes everything to the deputy's socket, and forgets it.
    pub async fn write_to(
        &mut self,
        deputy: &mut tokio::net::unix::OwnedWriteHalf,
    ) -> std::io::Result<()> {
        let bytes = std::mem::take(&mut self.bytes);
        let files = std::mem::take(&mut self.files);
        let mut sent = 0;
        if !files.is_empty() {
            // The files ride on the first bytes sent: the deputy has them
            // before it reads the message that names them.
            sent = send_with_files(deputy.as_ref(), &bytes, &files).await?;
        }
        deputy.write_all(&bytes[sent..]).await
    }
}

/// Sends as much of `bytes` as the socket takes at once, with `files`
/// (`SCM_RIGHTS`); how much went.
async fn send_with_files(
    socket: &tokio::net::UnixStream,
    bytes: &[u8],
    files: &[std::sync::Arc<std::os::fd::OwnedFd>],
) -> std::io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = files.iter().map(|file| file.as_fd()).collect();
    let mut space =
        vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    loop {
        socket.writable().await?;
        let sent = socket.try_io(tokio::io::Interest::WRITABLE, || {
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(std::io::Error::other("no room for the files' message"));
            }
            rustix::net::sendmsg(
                socket,
                &[std::io::IoSlice::new(bytes)],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .map_err(std::io::Error::from)
        });
        match sent {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
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
    use homing_proto::guest::{ToHome, ToHost};
    use homing_proto::syscall::{ArgData, SyscallCall, SyscallResult};

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
    async fn a_frame_reader_dropped_half_way_goes_on_where_it_stopped() {
        let calls: Vec<ToHome> = (0..6u8)
            .map(|n| ToHome::Syscall {
                id: u64::from(n),
                tid: 7,
                call: SyscallCall {
                    nr: 1,
                    args: [3, 0, 0, 0, 0, 0],
                    inputs: vec![ArgData {
                        index: 1,
                        // Bulk and plain frames in turn.
                        bytes: vec![n; if n % 2 == 0 { 100_000 } else { 10 }],
                    }],
                },
                ahead: false,
            })
            .collect();
        let (mut a, mut b) = tokio::io::duplex(4096);
        let sent = calls.clone();
        let writer = tokio::spawn(async move {
            for call in sent {
                let (frame, bytes) = encode_bulk(call).unwrap();
                a.write_all(&frame).await.unwrap();
                a.write_all(&bytes.unwrap_or_default()).await.unwrap();
            }
        });
        let mut frames = FrameReader::default();
        let mut received = Vec::new();
        let mut dropped_inside = 0;
        while received.len() < calls.len() {
            // Another branch ready first drops the read, as a relay's
            // timer does.
            tokio::select! {
                biased;
                frame = frames.next(&mut b) => {
                    let (body, bulk) = frame.unwrap().unwrap();
                    received.push(homing_proto::frame::decode_bulk::<ToHome>(&body, bulk).unwrap());
                }
                () = tokio::task::yield_now() => {
                    dropped_inside += usize::from(frames.inside_a_frame());
                }
            }
        }
        writer.await.unwrap();
        assert_eq!(received, calls);
        assert!(
            dropped_inside > 10,
            "reads were dropped inside frames {dropped_inside} times"
        );
        assert!(frames.next(&mut b).await.unwrap().is_none());
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
