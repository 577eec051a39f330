//! The daemon side of the control socket. Nobody can lock it out: every connection is accepted
//! and served on its own task (at most [`MAX_CONNECTIONS`]; one more is told so and closed), a
//! request must arrive within [`REQUEST_TIMEOUT`] and fit in [`MAX_REQUEST_LINE`], a client that
//! stops reading is dropped after [`WRITE_TIMEOUT`], and `events --follow` streams are capped at
//! [`MAX_FOLLOWERS`], each slot freed as soon as its client goes away. `status` is answered from
//! the published snapshot, so neither idle nor following clients delay it.

use super::protocol::{ControlRequest, PublishedStatus};
use crate::actors::supervisor::{NotifyTest, NotifyTestError, Reload, StatusDemand, Supervisor};
use crate::store::StoreHandle;
use actix::Addr;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

/// Connections served at once; one more is answered with an error and closed.
pub const MAX_CONNECTIONS: usize = 512;
/// `events --follow` streams at once.
pub const MAX_FOLLOWERS: usize = 8;
/// A client must send its request within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request line accepted.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// A client that does not take a reply within this time is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Creates the socket at `path` with its final mode 0660 (replacing a stale socket). It is bound
/// inside a private directory (mode 0700), given its mode there and only then moved to `path`,
/// so it never exists at `path` with the wider mode a permissive umask would give it.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    if std::fs::symlink_metadata(path).is_ok() {
        // Only a socket left behind by a previous run may be replaced.
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let private = tempfile::Builder::new()
        .prefix(".")
        .rand_bytes(4)
        .tempdir_in(dir)?;
    let staged = private.path().join("s");
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o660))?;
    std::fs::rename(&staged, path)?;
    Ok(listener)
}

/// Serves `listener` until the task is dropped.
pub fn serve(listener: UnixListener, ctx: ControlContext) -> tokio::task::JoinHandle<()> {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let followers = Arc::new(Semaphore::new(MAX_FOLLOWERS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: let some connections end first.
                    tracing::warn!(error = %e, "control socket: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(place) = connections.clone().try_acquire_owned() else {
                tokio::spawn(async move {
                    let (_, mut write) = stream.into_split();
                    let reply = json!({"ok": false, "error": format!("too many control connections ({MAX_CONNECTIONS}); try again later")});
                    let _ = write_line(&mut write, &reply).await;
                });
                continue;
            };
            let ctx = ctx.clone();
            let followers = followers.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, ctx, &followers).await {
                    tracing::debug!(error = %e, "control connection ended with an error");
                }
                drop(place);
            });
        }
    })
}

/// Reads one request line: at most [`MAX_REQUEST_LINE`] bytes, within [`REQUEST_TIMEOUT`].
async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let read = async {
        let mut limited = (&mut *reader).take(MAX_REQUEST_LINE as u64 + 1);
        limited.read_until(b'\n', &mut line).await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Err(_) => Err(format!("no request within {}s", REQUEST_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(format!("cannot read the request: {e}")),
        Ok(Ok(0)) => Ok(None),
        Ok(Ok(_)) if !line.ends_with(b"\n") && line.len() > MAX_REQUEST_LINE => Err(format!(
            "request longer than {} KiB",
            MAX_REQUEST_LINE / 1024
        )),
        Ok(Ok(_)) => Ok(Some(String::from_utf8_lossy(&line).into_owned())),
    }
}

async fn handle(
    stream: UnixStream,
    ctx: ControlContext,
    followers: &Arc<Semaphore>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let line = match read_request(&mut reader).await {
        Ok(Some(line)) => line,
        Ok(None) => return Ok(()),
        Err(error) => return write_line(&mut write, &json!({"ok": false, "error": error})).await,
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
            ctx.demand.asked_fresh(ctx.supervisor.as_ref()).await;
            // The snapshot is already JSON: wrap it without parsing it again.
            let snapshot = ctx.status.borrow().json.clone();
            bounded(async {
                write.write_all(br#"{"ok":true,"status":"#).await?;
                write.write_all(&snapshot).await?;
                write.write_all(b"}\n").await?;
                write.flush().await
            })
            .await
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
            // Taken before anything is sent, so a refused follower gets only the error.
            let slot = match follow {
                true => match followers.clone().try_acquire_owned() {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        let error = format!(
                            "too many clients follow events ({MAX_FOLLOWERS}); try again later"
                        );
                        return write_line(&mut write, &json!({"ok": false, "error": error})).await;
                    }
                },
                false => None,
            };
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
            if slot.is_none() {
                return Ok(());
            }
            let mut latest = ctx.store.subscribe();
            let mut scratch = [0u8; 512];
            loop {
                tokio::select! {
                    changed = latest.changed() => if changed.is_err() { return Ok(()) },
                    // The client sends nothing more: a read that ends means it went away, and
                    // its slot is freed now rather than at the next event.
                    gone = reader.read(&mut scratch) => match gone {
                        Ok(0) | Err(_) => return Ok(()),
                        Ok(_) => continue,
                    },
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

/// Runs a write, giving up on a client that does not read within [`WRITE_TIMEOUT`].
async fn bounded(
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client does not read its reply",
            ))
        })
}

async fn write_line(w: &mut OwnedWriteHalf, v: &serde_json::Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    line.push(b'\n');
    bounded(w.write_all(&line)).await
}
