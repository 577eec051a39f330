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
    /// The socket (or its directory) is not ours to use: the daemon may well be running.
    #[error(
        "permission denied on the control socket {path}: join the group {group} \
         (sudo usermod -aG {group} $USER, then log in again) or run this as root"
    )]
    PermissionDenied { path: String, group: String },
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon answered: {0}")]
    Daemon(String),
    /// The daemon refused the request as a usage error (an unknown target name).
    #[error("{0}")]
    Usage(String),
    #[error("unreadable reply from the daemon: {0}")]
    Reply(String),
}

/// Why connecting to `socket` failed, as the user can act on it.
fn connect_error(socket: &Path, source: std::io::Error) -> ClientError {
    let path = socket.display().to_string();
    match source.kind() {
        std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
            group: owning_group(socket),
            path,
        },
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning { path, source }
        }
        _ => ClientError::Io(source),
    }
}

/// The group that owns the socket, or its directory when the socket itself cannot be looked
/// at (a directory we may not enter): its name from `/etc/group`, else its number.
fn owning_group(socket: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(socket).or_else(|e| socket.parent().map_or(Err(e), std::fs::metadata));
    let Ok(meta) = meta else {
        return "that owns it".to_string();
    };
    let gid = meta.gid();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    group_name(&groups, gid).unwrap_or_else(|| format!("with id {gid}"))
}

/// The name of group `gid` in the text of `/etc/group` (`name:password:gid:members`).
fn group_name(etc_group: &str, gid: u32) -> Option<String> {
    etc_group.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == gid && !name.is_empty()).then(|| name.to_string())
    })
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
        .map_err(|source| connect_error(socket, source))?;
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
                .unwrap_or("unknown error")
                .to_string();
            return Err(match v.get("usage").and_then(|u| u.as_bool()) {
                Some(true) => ClientError::Usage(msg),
                _ => ClientError::Daemon(msg),
            });
        }
        if !on_reply(v) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::group_name;

    #[test]
    fn group_names_come_from_etc_group_lines() {
        let etc = "root:x:0:\n# comment\nbroken\nvast-supervisor:x:998:alice,bob\n:x:5:\n";
        assert_eq!(group_name(etc, 0).as_deref(), Some("root"));
        assert_eq!(group_name(etc, 998).as_deref(), Some("vast-supervisor"));
        assert_eq!(group_name(etc, 5), None, "no name");
        assert_eq!(group_name(etc, 7), None);
    }
}
