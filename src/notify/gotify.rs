//! Gotify: JSON POST to `/message` with the app token in `X-Gotify-Key`; priority from the
//! severity (8 critical, 5 warning, 2 info). Self-hosted, so no size or rate limits to fit.

use super::http::{self, Answer};
use super::render::{self, Rendered};
use super::{Delivered, SendContext, SendError};
use crate::event::{Event, Severity};
use crate::util::Secret;
use serde_json::json;
use std::time::Duration;
use url::Url;

/// Gotify priority: 8 and up pops up on Android, 4-7 makes a sound, 1-3 is quiet.
pub fn priority(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 8,
        Severity::Warning => 5,
        Severity::Info => 2,
    }
}

/// The message for `events` (one event, or a digest of several).
pub fn render(events: &[Event]) -> Vec<Rendered> {
    if events.is_empty() {
        return Vec::new();
    }
    let (title, message) = match events {
        [event] => (
            render::headline(event),
            render::plain_lines(event).join("\n"),
        ),
        _ => (
            render::digest_summary(events),
            events
                .iter()
                .map(render::digest_line)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    };
    vec![Rendered::json(json!({
        "title": title,
        "message": message,
        "priority": priority(render::max_severity(events)),
    }))]
}

/// A Gotify application target.
pub struct Gotify {
    http: reqwest::Client,
    url: Url,
    display: String,
    token: Secret,
}

impl Gotify {
    pub(crate) fn new(
        tls: bool,
        host: &str,
        port: Option<u16>,
        path: &str,
        token: &Secret,
        endpoint: Option<&Url>,
        http: reqwest::Client,
    ) -> Result<Gotify, String> {
        let base = http::endpoint_base(endpoint).unwrap_or_else(|| {
            format!(
                "{}{}",
                http::origin(tls, host, port),
                path.trim_end_matches('/')
            )
        });
        let url = http::join(&base, "/message")?;
        Ok(Gotify {
            http,
            url,
            display: format!("{}/message", http::shown_base(endpoint, base.clone())),
            token: token.clone(),
        })
    }

    pub(crate) fn display(&self) -> String {
        self.display.clone()
    }

    pub(crate) async fn send(
        &mut self,
        ctx: &mut SendContext<'_>,
        events: &[Event],
    ) -> Result<Delivered, SendError> {
        let messages = render(events);
        http::send_parts(
            ctx,
            &messages,
            |m| http::post(&self.http, &self.url, m).header("X-Gotify-Key", self.token.expose()),
            |ctx, answer| classify(ctx, answer).map(|()| None),
        )
        .await
    }
}

/// Gotify's answers: `{"error":…,"errorCode":…,"errorDescription":…}` on errors; 401/403 is
/// a bad app token.
pub(crate) fn classify(ctx: &SendContext<'_>, answer: &Answer) -> Result<(), SendError> {
    http::classify_common(ctx, "Gotify", answer, Duration::from_secs(5))
}
