//! The client side of the control socket, used by `status` and `events`.

use super::protocol::ControlRequest;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket: the daemon is not running (exit code 3).
    #[error("the daemon is not running (cannot connect to {path}: {source})")]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon answered: {0}")]
    Daemon(String),
    #[error("unreadable reply from the daemon: {0}")]
    Reply(String),
}

/// Sends `req` and calls `on_reply` for every reply line until the daemon closes the connection
/// or `on_reply` returns false.
pub async fn request(
    socket: &Path,
    req: &ControlRequest,
    mut on_reply: impl FnMut(serde_json::Value) -> bool,
) -> Result<(), ClientError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::NotRunning {
            path: socket.display().to_string(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Reply(e.to_string()))?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| ClientError::Reply(e.to_string()))?;
        if v.get("ok").and_then(|o| o.as_bool()) == Some(false) {
            let msg = v
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown error");
            return Err(ClientError::Daemon(msg.to_string()));
        }
        if !on_reply(v) {
            break;
        }
    }
    Ok(())
}
