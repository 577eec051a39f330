//! The `status` and `events` commands: resolve the socket, ask the daemon, print the reply.

use super::protocol::{ControlRequest, StatusSnapshot};
use super::render;
use super::{request, ClientError};
use crate::config::{self, DEFAULT_CONTROL_SOCKET};
use crate::event::Event;
use std::path::{Path, PathBuf};

/// `--socket`, else the `control_socket` of the configuration in `config_dir`, else the default.
pub fn resolve_socket(explicit: Option<PathBuf>, config_dir: &Path) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    let main = config_dir.join(config::MAIN_FILE_NAME);
    if main.exists() {
        return config::load_dir(config_dir).globals.control_socket;
    }
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}

/// Exit code for a client error (SPEC §3): 3 only when nothing listens on the socket, 2 for a
/// usage error the daemon found (an unknown target), else 1.
pub fn exit_code(e: &ClientError) -> u8 {
    match e {
        ClientError::NotRunning { .. } => 3,
        ClientError::Usage(_) => 2,
        _ => 1,
    }
}

pub async fn status(socket: &Path, json: bool) -> Result<(), ClientError> {
    let mut snapshot: Option<serde_json::Value> = None;
    request(socket, &ControlRequest::Status, |reply| {
        snapshot = reply.get("status").cloned();
        false
    })
    .await?;
    let snapshot = snapshot.ok_or_else(|| ClientError::Reply("no status in the reply".into()))?;
    if json {
        let text = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
        print_out(&format!("{text}\n"))?;
    } else {
        let st: StatusSnapshot =
            serde_json::from_value(snapshot).map_err(|e| ClientError::Reply(e.to_string()))?;
        print_out(&render::status_table(&st, chrono::Utc::now()))?;
    }
    Ok(())
}

/// Writes `text` to stdout. `Ok(false)` when the reader went away (`status | head`): the
/// output ends there, quietly, as it does for any Unix tool.
fn print_out(text: &str) -> Result<bool, ClientError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(ClientError::Io(e)),
    }
}

pub async fn events(
    socket: &Path,
    follow: bool,
    json: bool,
    limit: usize,
) -> Result<(), ClientError> {
    let req = ControlRequest::Events { limit, follow };
    let mut failed = None;
    let printing = request(socket, &req, |reply| {
        let line = match reply.get("event") {
            Some(ev) if json => format!("{ev}\n"),
            Some(ev) => match serde_json::from_value::<Event>(ev.clone()) {
                Ok(e) => format!("{}\n", render::event_line(&e)),
                Err(_) => return true,
            },
            None => return true,
        };
        match print_out(&line) {
            Ok(more) => more,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    });
    let result = tokio::select! {
        r = printing => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    match failed {
        Some(e) => Err(e),
        None => result,
    }
}

/// Outcome of `reload`: whether any file was rejected (exit code 2).
pub async fn reload(socket: &Path) -> Result<bool, ClientError> {
    let mut reply: Option<serde_json::Value> = None;
    request(socket, &ControlRequest::Reload, |r| {
        reply = Some(r);
        false
    })
    .await?;
    let reply = reply.ok_or_else(|| ClientError::Reply("no reply to reload".into()))?;
    for line in reply
        .get("lines")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
    {
        if !print_out(&format!("{}\n", line.as_str().unwrap_or_default()))? {
            break;
        }
    }
    let rejected = reply["report"]["rejected"]
        .as_array()
        .is_some_and(|r| !r.is_empty());
    Ok(rejected)
}

pub async fn notify_test(socket: &Path, target: &str) -> Result<(), ClientError> {
    let req = ControlRequest::NotifyTest {
        target: target.to_string(),
    };
    let mut answer = String::new();
    request(socket, &req, |r| {
        answer = r
            .get("answer")
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_string();
        false
    })
    .await?;
    print_out(&format!("{answer}\n")).map(|_| ())
}
