//! Pushover: form POST to `/1/messages.json` with a title (at most 250 characters), a message
//! (at most 1024), a priority from the severity and the event time. The monthly quota headers
//! (`X-Limit-App-Remaining`, `X-Limit-App-Reset`) become a [`RateHint`].

use super::http::{self, Answer};
use super::render::{self, Body, Rendered};
use super::{Delivered, RateHint, SendContext, SendError};
use crate::event::{Event, Severity};
use crate::util::Secret;
use std::time::Duration;
use url::Url;

pub const TITLE_MAX: usize = 250;
pub const MESSAGE_MAX: usize = 1024;

/// Pushover priority: 1 high (bypasses quiet hours), 0 normal, -1 quiet.
pub fn priority(severity: Severity) -> i8 {
    match severity {
        Severity::Critical => 1,
        Severity::Warning => 0,
        Severity::Info => -1,
    }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// The form fields for `events`, without `token` and `user` (the sender adds those).
pub fn render(events: &[Event]) -> Vec<Rendered> {
    let Some(last) = events.last() else {
        return Vec::new();
    };
    let (title, message) = match events {
        [event] => {
            // The context and time stay; the event text gives way when space runs out.
            let footer = format!(
                "\n\n{}\n{}",
                render::context_line(event),
                render::when_line(event)
            );
            let text: Vec<String> = event.text.trim_end().lines().map(str::to_string).collect();
            let room = MESSAGE_MAX.saturating_sub(chars(&footer));
            let body = render::fit_lines(&text, room, "lines", chars);
            let message = if body.is_empty() {
                footer.trim_start().to_string()
            } else {
                format!("{body}{footer}")
            };
            (render::headline(event), message)
        }
        _ => {
            let lines: Vec<String> = events.iter().map(render::digest_line).collect();
            (
                render::digest_summary(events),
                render::fit_lines(&lines, MESSAGE_MAX, "events", chars),
            )
        }
    };
    let fields = vec![
        (
            "title".to_string(),
            render::truncate_chars(&title, TITLE_MAX),
        ),
        ("message".to_string(), message),
        (
            "priority".to_string(),
            priority(render::max_severity(events)).to_string(),
        ),
        ("timestamp".to_string(), last.time.timestamp().to_string()),
    ];
    vec![Rendered {
        headers: Vec::new(),
        body: Body::Form(fields),
    }]
}

/// A Pushover target.
pub struct Pushover {
    http: reqwest::Client,
    url: Url,
    display: String,
    user_key: Secret,
    app_token: Secret,
}

impl Pushover {
    pub(crate) fn new(
        user_key: &Secret,
        app_token: &Secret,
        endpoint: Option<&Url>,
        http: reqwest::Client,
    ) -> Result<Pushover, String> {
        let base =
            http::endpoint_base(endpoint).unwrap_or_else(|| "https://api.pushover.net".into());
        let url = http::join(&base, "/1/messages.json")?;
        Ok(Pushover {
            http,
            url,
            display: format!(
                "{}/1/messages.json",
                http::shown_base(endpoint, base.clone())
            ),
            user_key: user_key.clone(),
            app_token: app_token.clone(),
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
            |m| {
                let mut m = m.clone();
                if let Body::Form(fields) = &mut m.body {
                    fields.insert(0, ("user".into(), self.user_key.expose().to_string()));
                    fields.insert(0, ("token".into(), self.app_token.expose().to_string()));
                }
                http::post(&self.http, &self.url, &m)
            },
            |ctx, answer| {
                let hint = quota_hint(answer, chrono::Utc::now());
                classify(ctx, answer, hint).map(|()| hint)
            },
        )
        .await
    }
}

/// `X-Limit-App-Remaining` and `X-Limit-App-Reset` (a Unix time) as a hint.
pub fn quota_hint(answer: &Answer, now: chrono::DateTime<chrono::Utc>) -> Option<RateHint> {
    let remaining = answer
        .header("x-limit-app-remaining")
        .and_then(|v| v.trim().parse::<u32>().ok());
    let reset_after = answer
        .header("x-limit-app-reset")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|reset| Duration::from_secs(u64::try_from(reset - now.timestamp()).unwrap_or(0)));
    (remaining.is_some() || reset_after.is_some()).then_some(RateHint {
        remaining,
        reset_after,
    })
}

/// Parameters of one message; a 4xx naming one of them rejects that message only.
const MESSAGE_FIELDS: &[&str] = &[
    "message",
    "title",
    "url",
    "url_title",
    "priority",
    "timestamp",
    "html",
];

/// Pushover's answers: `{"status":1}` ok; `{"status":0,"errors":[…]}` with 4xx is our
/// credentials (permanent), this message (a message field named: rejected) or our request
/// (permanent); 429 is the monthly quota (wait for its reset).
pub(crate) fn classify(
    ctx: &SendContext<'_>,
    answer: &Answer,
    hint: Option<RateHint>,
) -> Result<(), SendError> {
    let json = answer.json();
    if answer.status == 429 {
        let retry_after = answer
            .retry_after()
            .or(hint.and_then(|h| h.reset_after))
            .unwrap_or(Duration::from_secs(3600));
        return Err(SendError::RateLimited { retry_after });
    }
    if (400..500).contains(&answer.status) {
        let errors = json
            .as_ref()
            .and_then(|v| v["errors"].as_array())
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| http::snippet(&answer.body));
        let bad_credentials = json.as_ref().is_some_and(|v| {
            v["token"].as_str() == Some("invalid") || v["user"].as_str() == Some("invalid")
        }) || matches!(answer.status, 401 | 403);
        let detail = format!("Pushover answered HTTP {}: {errors}", answer.status);
        if bad_credentials {
            return Err(ctx.permanent("auth", detail));
        }
        if answer.status == 413 {
            return Err(ctx.rejected("too_large", detail));
        }
        // Pushover names the offending parameter as a key of its answer: one of the message's
        // own fields means this message is at fault, not the target.
        let field = json.as_ref().and_then(|v| {
            MESSAGE_FIELDS
                .iter()
                .find_map(|f| v[*f].as_str().map(|problem| (*f, problem)))
        });
        return Err(match field {
            Some((_, problem)) if problem.contains("too long") => ctx.rejected("too_large", detail),
            Some(_) => ctx.rejected("invalid", detail),
            None => ctx.permanent("client", detail),
        });
    }
    if answer.is_success() && json.as_ref().and_then(|v| v["status"].as_i64()) == Some(0) {
        return Err(ctx.permanent(
            "client",
            format!("Pushover refused the message: {}", answer.describe()),
        ));
    }
    http::classify_common(ctx, "Pushover", answer, Duration::from_secs(60))
}
