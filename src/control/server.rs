//! The daemon side of the control socket.

use super::protocol::{ControlRequest, PublishedStatus};
use crate::actors::supervisor::{
    NotifyTest, NotifyTestError, RefreshStatus, Reload, StatusDemand, Supervisor,
};
use crate::store::StoreHandle;
use actix::Addr;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

/// At most this many clients are served at once; more wait for a free place.
const MAX_CLIENTS: usize = 8;
/// A client must send its request within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What the server answers from.
#[derive(Clone)]
pub struct ControlContext {
    pub status: watch::Receiver<PublishedStatus>,
    pub store: StoreHandle,
    /// For `reload` and `notify-test`; `None` answers them with an error.
    pub supervisor: Option<Addr<Supervisor>>,
    /// Told of every `status` request (snapshots are rebuilt often only while in demand).
    pub demand: StatusDemand,
}

/// A snapshot older than this is refreshed before answering, if that is quick.
const STALE_SNAPSHOT: Duration = Duration::from_secs(2);
/// How long a `status` request waits for that refresh before answering from the old snapshot.
const REFRESH_WAIT: Duration = Duration::from_millis(80);

/// Binds `path` (replacing a stale socket), sets mode 0660 and serves until the task is dropped.
pub async fn serve(
    path: &Path,
    ctx: ControlContext,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // Only a socket left behind by a previous run may be replaced.
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let places = Arc::new(Semaphore::new(MAX_CLIENTS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(place) = places.clone().acquire_owned().await else {
                return;
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, ctx).await {
                    tracing::debug!(error = %e, "control connection ended with an error");
                }
                drop(place);
            });
        }
    }))
}

async fn handle(stream: UnixStream, ctx: ControlContext) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let line = match tokio::time::timeout(REQUEST_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return write_line(
                &mut write,
                &json!({"ok": false, "error": "no request within 2s"}),
            )
            .await;
        }
    };
    let request: ControlRequest = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            return write_line(
                &mut write,
                &json!({"ok": false, "error": format!("bad request: {e}")}),
            )
            .await;
        }
    };
    match request {
        ControlRequest::Status => {
            let stale = ctx
                .demand
                .last_request()
                .is_none_or(|t| t.elapsed() > STALE_SNAPSHOT);
            ctx.demand.asked();
            if let (true, Some(sup)) = (stale, &ctx.supervisor) {
                let _ = tokio::time::timeout(REFRESH_WAIT, sup.send(RefreshStatus)).await;
            }
            // The snapshot is already JSON: wrap it without parsing it again.
            let snapshot = ctx.status.borrow().json.clone();
            write.write_all(br#"{"ok":true,"status":"#).await?;
            write.write_all(&snapshot).await?;
            write.write_all(b"}\n").await?;
            write.flush().await
        }
        ControlRequest::Reload => {
            let Some(sup) = ctx.supervisor else {
                return write_line(
                    &mut write,
                    &json!({"ok": false, "error": "reload is not available"}),
                )
                .await;
            };
            let reply = match sup.send(Reload).await {
                Ok(Ok(report)) => json!({"ok": true, "report": report, "lines": report.lines()}),
                Ok(Err(e)) => json!({"ok": false, "error": e}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
            write_line(&mut write, &reply).await
        }
        ControlRequest::NotifyTest { target } => {
            let Some(sup) = ctx.supervisor else {
                return write_line(
                    &mut write,
                    &json!({"ok": false, "error": "notify-test is not available"}),
                )
                .await;
            };
            let reply = match sup.send(NotifyTest { target }).await {
                Ok(Ok(answer)) => json!({"ok": true, "answer": answer}),
                Ok(Err(e @ NotifyTestError::UnknownTarget { .. })) => {
                    json!({"ok": false, "error": e.to_string(), "usage": true})
                }
                Ok(Err(e)) => json!({"ok": false, "error": e.to_string()}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
            write_line(&mut write, &reply).await
        }
        ControlRequest::Events { limit, follow } => {
            let recent = ctx.store.run(move |s| s.recent_events(limit)).await;
            let recent = match recent {
                Ok(r) => r,
                Err(e) => {
                    return write_line(&mut write, &json!({"ok": false, "error": e.to_string()}))
                        .await
                }
            };
            let mut cursor = recent.last().map(|q| q.seq).unwrap_or(0);
            if recent.is_empty() {
                cursor = ctx.store.run(|s| s.max_seq()).await.unwrap_or(0);
            }
            for q in recent {
                write_line(
                    &mut write,
                    &json!({"ok": true, "seq": q.seq, "event": q.event}),
                )
                .await?;
            }
            if !follow {
                return Ok(());
            }
            let mut latest = ctx.store.subscribe();
            loop {
                if latest.changed().await.is_err() {
                    return Ok(());
                }
                let c = cursor;
                let Ok(batch) = ctx.store.run(move |s| s.events_after(c, 256)).await else {
                    return Ok(());
                };
                for q in batch {
                    cursor = q.seq;
                    write_line(
                        &mut write,
                        &json!({"ok": true, "seq": q.seq, "event": q.event}),
                    )
                    .await?;
                }
            }
        }
    }
}

async fn write_line(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    v: &serde_json::Value,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}
