//! The `homing` command's side of the control socket.

use std::path::{Path, PathBuf};

use homing_proto::control::{ControlRequest, ControlResponse};
use tokio::net::UnixStream;

use crate::wire::{read_message, write_message, WireError};

/// Why the command could not get an answer from its agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing is listening on the socket.
    #[error("cannot reach the homing agent at {path}: {error} (is `homing node` running on this machine?)")]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// Why the connection failed.
        error: std::io::Error,
    },
    /// The agent went away or answered nonsense.
    #[error("the homing agent at {path} failed to answer: {error}")]
    Exchange {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        error: WireError,
    },
    /// The agent answered with an error.
    #[error("{0}")]
    Agent(String),
}

/// A connection to the local agent.
pub struct ControlClient {
    path: PathBuf,
    stream: UnixStream,
}

impl ControlClient {
    /// Connects to the agent's socket at `path`.
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|error| ClientError::Unreachable {
                path: path.to_owned(),
                error,
            })?;
        Ok(Self {
            path: path.to_owned(),
            stream,
        })
    }

    /// The next answer to a request that has several (a migration's progress).
    pub async fn next(&mut self) -> Result<ControlResponse, ClientError> {
        match read_message::<ControlResponse, _>(&mut self.stream).await {
            Ok(ControlResponse::Error { message }) => Err(ClientError::Agent(message)),
            Ok(response) => Ok(response),
            Err(error) => Err(ClientError::Exchange {
                path: self.path.clone(),
                error,
            }),
        }
    }

    /// Sends `request` and waits for the answer.
    pub async fn ask(&mut self, request: &ControlRequest) -> Result<ControlResponse, ClientError> {
        let exchange = async {
            write_message(&mut self.stream, request).await?;
            read_message::<ControlResponse, _>(&mut self.stream).await
        };
        match exchange.await {
            Ok(ControlResponse::Error { message }) => Err(ClientError::Agent(message)),
            Ok(response) => Ok(response),
            Err(error) => Err(ClientError::Exchange {
                path: self.path.clone(),
                error,
            }),
        }
    }
}
