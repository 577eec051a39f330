//! `file:///PATH.jsonl`: appends one SPEC §5 event JSON per line. The directory must exist (a
//! missing directory is a configuration error, not something to create silently).

use super::{Delivered, SendContext, SendError};
use crate::event::Event;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The lines appended for `events`, each ending in '\n'.
pub fn render(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&event.to_json());
        out.push('\n');
    }
    out
}

/// A JSONL file target.
pub struct File {
    path: PathBuf,
}

impl File {
    pub(crate) fn new(path: &Path) -> File {
        File {
            path: path.to_path_buf(),
        }
    }

    pub(crate) fn display(&self) -> String {
        format!("file://{}", self.path.display())
    }

    pub(crate) async fn send(
        &mut self,
        ctx: &mut SendContext<'_>,
        events: &[Event],
    ) -> Result<Delivered, SendError> {
        // One write for the whole batch, so a batch is appended whole or (on error) retried whole.
        let lines = render(events);
        let shown = self.path.display();
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => ctx.permanent(
                    "not_found",
                    format!("cannot open {shown}: its directory does not exist"),
                ),
                ErrorKind::PermissionDenied => {
                    ctx.permanent("auth", format!("cannot open {shown}: permission denied"))
                }
                _ => ctx.transient("io", format!("cannot open {shown}: {e}")),
            })?;
        file.write_all(lines.as_bytes())
            .await
            .map_err(|e| ctx.transient("io", format!("cannot write {shown}: {e}")))?;
        file.flush()
            .await
            .map_err(|e| ctx.transient("io", format!("cannot flush {shown}: {e}")))?;
        *ctx.sent += 1;
        Ok(Delivered {
            messages: events.len(),
            info: format!("appended {} line(s)", events.len()),
            rate: None,
        })
    }
}
