//! Slack incoming webhook: a `text` fallback (at most 40,000 characters, cut with a marker) and
//! Block Kit blocks (header, sections of at most 3,000 characters, a context line with Slack's
//! `<!date^…>` timestamp), at most 50 blocks.

use super::http::{self, Answer};
use super::render::{self, Rendered};
use super::{Delivered, SendContext, SendError};
use crate::event::Event;
use crate::util::Secret;
use serde_json::{json, Value};
use std::time::Duration;
use url::Url;

pub const TEXT_MAX: usize = 40_000;
pub const SECTION_MAX: usize = 3_000;
pub const HEADER_MAX: usize = 150;
pub const BLOCKS_MAX: usize = 50;

/// Escapes the three characters Slack's mrkdwn reserves.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn escaped_cost(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Slack renders `<!date^EPOCH^…|fallback>` in the reader's time zone.
fn slack_date(event: &Event) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
        event.time.timestamp(),
        render::format_time(event.time)
    )
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// Escaped mrkdwn lines packed into sections of at most [`SECTION_MAX`].
fn sections(lines: &[String]) -> Vec<String> {
    let mut escaped: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            escaped.push(String::new());
            continue;
        }
        for piece in render::chunk_text(line, SECTION_MAX, escaped_cost) {
            escaped.push(escape(piece));
        }
    }
    render::pack_lines(&escaped, SECTION_MAX, chars)
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// The webhook payload for `events` (one event, or a digest of several).
pub fn render(events: &[Event], mention: Option<&str>) -> Vec<Rendered> {
    if events.is_empty() {
        return Vec::new();
    }
    let severity = render::max_severity(events);
    let (title, body_lines, context) = match events {
        [event] => {
            let lines: Vec<String> = event.text.trim_end().lines().map(str::to_string).collect();
            let context = format!(
                "{} · {}",
                escape(&render::context_line(event)),
                slack_date(event)
            );
            (render::headline(event), lines, context)
        }
        _ => {
            let lines: Vec<String> = events.iter().map(render::digest_line).collect();
            let last = events.last().map(slack_date).unwrap_or_default();
            (
                render::digest_summary(events),
                lines,
                format!("digest · {last}"),
            )
        }
    };
    let mention = render::mention_for(events, mention);
    let header_text = format!("{} {}", render::severity_emoji(severity), title);

    let mut blocks: Vec<Value> = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": render::truncate_chars(&header_text, HEADER_MAX), "emoji": true}
    })];
    let mut section_texts = sections(&body_lines);
    if let Some(mention) = mention {
        // Mentions only notify from mrkdwn text, so they lead the first section.
        match section_texts.first_mut() {
            Some(first) if chars(first) + chars(mention) < SECTION_MAX => {
                *first = format!("{mention} {first}");
            }
            _ => section_texts.insert(0, render::truncate_chars(mention, SECTION_MAX)),
        }
    }
    // Header and context take two of the 50 blocks.
    let room = BLOCKS_MAX - 2;
    if section_texts.len() > room {
        let dropped = section_texts.len() - room + 1;
        section_texts.truncate(room - 1);
        section_texts.push(format!("… {dropped} more part(s) not shown"));
    }
    blocks.extend(section_texts.into_iter().map(section));
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": render::truncate_chars(&context, SECTION_MAX)}]}));

    let mut fallback = String::new();
    if let Some(mention) = mention {
        fallback.push_str(mention);
        fallback.push(' ');
    }
    fallback.push_str(&escape(&title));
    for line in &body_lines {
        fallback.push('\n');
        fallback.push_str(&escape(line));
    }
    let fallback = render::truncate_chars(&fallback, TEXT_MAX);
    vec![Rendered::json(json!({"text": fallback, "blocks": blocks}))]
}

/// A Slack incoming-webhook target.
pub struct Slack {
    http: reqwest::Client,
    url: Url,
    display: String,
    mention: Option<String>,
}

impl Slack {
    pub(crate) fn new(
        tokens: &Secret,
        endpoint: Option<&Url>,
        mention: Option<String>,
        http: reqwest::Client,
    ) -> Result<Slack, String> {
        let base =
            http::endpoint_base(endpoint).unwrap_or_else(|| "https://hooks.slack.com".into());
        let path: Vec<String> = tokens.expose().split('/').map(http::segment).collect();
        let url = http::join(&base, &format!("/services/{}", path.join("/")))?;
        Ok(Slack {
            http,
            url,
            display: format!("{}/services/***", http::shown_base(endpoint, base.clone())),
            mention,
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
        let messages = render(events, self.mention.as_deref());
        http::send_parts(
            ctx,
            &messages,
            |m| http::post(&self.http, &self.url, m),
            |ctx, answer| classify(ctx, answer).map(|()| None),
        )
        .await
    }
}

/// Slack's 400 answers that concern the message, not the webhook or channel.
const MESSAGE_INVALID: &[&str] = &[
    "invalid_payload",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_attachments",
    "too_many_attachments",
    "no_text",
];
const MESSAGE_TOO_LONG: &[&str] = &["msg_too_long", "msg_blocks_too_long"];

/// Slack's answers are plain text: 400 `invalid_payload`, `invalid_blocks`, `no_text`, ...
/// reject this message only; `action_prohibited` 403; `no_service`/`channel_not_found` 404;
/// `channel_is_archived` 410; 429 with Retry-After.
pub(crate) fn classify(ctx: &SendContext<'_>, answer: &Answer) -> Result<(), SendError> {
    if answer.status == 400 {
        let code = answer.body.trim();
        if MESSAGE_TOO_LONG.contains(&code) {
            return Err(http::too_large(ctx, "Slack", answer));
        }
        if MESSAGE_INVALID.contains(&code) {
            return Err(http::invalid(ctx, "Slack", answer));
        }
    }
    if answer.status == 410 {
        return Err(ctx.permanent(
            "not_found",
            format!("Slack channel is archived: {}", answer.describe()),
        ));
    }
    http::classify_common(ctx, "Slack", answer, Duration::from_secs(1))
}
