//! `console://`: a compact, readable block per event on stdout (the demo's output).

use super::render;
use super::{Delivered, SendContext, SendError};
use crate::event::Event;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// One block per event: a header line, then the text indented.
/// `[2026-11-22 19:10:26 UTC] CRITICAL machine_offline alice rig-02 (23456): rig-02 is offline`
pub fn render(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        let mut header = format!(
            "[{}] {} {}",
            render::format_time(event.time),
            render::severity_label(event.severity),
            event.kind
        );
        if let Some(account) = &event.account {
            header.push(' ');
            header.push_str(account);
        }
        if !matches!(
            event.subject,
            crate::event::Subject::Supervisor | crate::event::Subject::Account { .. }
        ) {
            header.push(' ');
            header.push_str(&event.subject.label());
        }
        out.push_str(&header);
        out.push_str(": ");
        out.push_str(&render::headline(event));
        out.push('\n');
        for line in event.text.trim_end().lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

enum Sink {
    Stdout,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// The console target.
pub struct Console {
    sink: Sink,
}

impl Console {
    pub(crate) fn stdout() -> Console {
        Console { sink: Sink::Stdout }
    }

    pub(crate) fn buffer(buffer: Arc<Mutex<Vec<u8>>>) -> Console {
        Console {
            sink: Sink::Buffer(buffer),
        }
    }

    pub(crate) async fn send(
        &mut self,
        ctx: &mut SendContext<'_>,
        events: &[Event],
    ) -> Result<Delivered, SendError> {
        let block = render(events);
        match &self.sink {
            Sink::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(block.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|e| ctx.transient("io", format!("cannot write to stdout: {e}")))?;
            }
            Sink::Buffer(buffer) => match buffer.lock() {
                Ok(mut buffer) => buffer.extend_from_slice(block.as_bytes()),
                Err(poisoned) => poisoned.into_inner().extend_from_slice(block.as_bytes()),
            },
        }
        *ctx.sent += 1;
        Ok(Delivered {
            messages: events.len(),
            info: "printed".to_string(),
            rate: None,
        })
    }
}
