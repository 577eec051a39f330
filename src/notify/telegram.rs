//! Telegram bot: `sendMessage` with HTML (`&`, `<`, `>` escaped), split into messages of at
//! most 4096 characters without ever cutting a tag or an escape; 429 waits
//! `parameters.retry_after`; a group upgraded to a supergroup (`migrate_to_chat_id`) is followed
//! at once and remembered.

use super::http::{self, Answer};
use super::render::{self, Rendered};
use super::{Delivered, SendContext, SendError};
use crate::event::Event;
use crate::util::Secret;
use serde_json::{json, Value};
use std::time::Duration;
use url::Url;

/// Telegram's limit, in UTF-16 code units of the text after entity parsing. We measure the
/// HTML source, which is never shorter, so every message fits.
pub const MESSAGE_MAX: usize = 4096;

/// Room kept for the "(2/3)" part label.
const PART_LABEL_RESERVE: usize = 24;

/// Escapes text for Telegram's HTML parse mode.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn escaped_cost(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        c => c.len_utf16(),
    }
}

/// `chat_id` as Telegram wants it: a number for numeric ids, else the `@channel` string.
fn chat_id_value(chat_id: &str) -> Value {
    match chat_id.parse::<i64>() {
        Ok(id) => json!(id),
        Err(_) => json!(chat_id),
    }
}

/// Plain text lines escaped, each piece short enough to fit a message on its own.
fn escaped_lines(
    lines: &[String],
    wrap: impl Fn(String) -> String,
    overhead: usize,
) -> Vec<String> {
    let limit = MESSAGE_MAX - PART_LABEL_RESERVE - overhead;
    let mut out = Vec::new();
    for line in lines {
        if line.is_empty() {
            out.push(String::new());
            continue;
        }
        for piece in render::chunk_text(line, limit, escaped_cost) {
            out.push(wrap(escape(piece)));
        }
    }
    out
}

/// The HTML text of each message for `events` (one event, or a digest of several).
pub fn render_texts(events: &[Event], mention: Option<&str>) -> Vec<String> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<String> = Vec::new();
    if let Some(mention) = render::mention_for(events, mention) {
        lines.extend(escaped_lines(&[mention.to_string()], |s| s, 0));
    }
    let severity = render::max_severity(events);
    match events {
        [event] => {
            lines.push(format!(
                "{} <b>{}</b>",
                render::severity_emoji(severity),
                escape(&render::truncate_chars(&render::headline(event), 512))
            ));
            let text: Vec<String> = event.text.trim_end().lines().map(str::to_string).collect();
            lines.extend(escaped_lines(&text, |s| s, 0));
            lines.push(String::new());
            let footer = [render::context_line(event), render::when_line(event)];
            lines.extend(escaped_lines(&footer, |s| format!("<i>{s}</i>"), 7));
        }
        _ => {
            lines.push(format!(
                "{} <b>{}</b>",
                render::severity_emoji(severity),
                escape(&render::digest_summary(events))
            ));
            let digest: Vec<String> = events.iter().map(render::digest_line).collect();
            lines.extend(escaped_lines(&digest, |s| s, 0));
        }
    }
    // Telegram refuses blank messages; a part of only blank lines carries nothing anyway.
    let parts: Vec<String> =
        render::pack_lines(&lines, MESSAGE_MAX - PART_LABEL_RESERVE, render::utf16_len)
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .collect();
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                format!("<i>({}/{n})</i>\n{part}", i + 1)
            }
        })
        .collect()
}

/// The `sendMessage` payloads for `events` to `chat_id`.
pub fn render(events: &[Event], chat_id: &str, mention: Option<&str>) -> Vec<Rendered> {
    render_texts(events, mention)
        .into_iter()
        .map(|text| {
            Rendered::json(json!({
                "chat_id": chat_id_value(chat_id),
                "text": text,
                "parse_mode": "HTML",
                "disable_web_page_preview": true,
            }))
        })
        .collect()
}

/// A Telegram bot target.
pub struct Telegram {
    http: reqwest::Client,
    url: Url,
    display: String,
    chat_id: String,
    mention: Option<String>,
}

/// A group migrates at most once; more hops mean something is wrong.
const MAX_MIGRATIONS: usize = 2;

impl Telegram {
    pub(crate) fn new(
        bot_token: &Secret,
        chat_id: &str,
        endpoint: Option<&Url>,
        mention: Option<String>,
        http: reqwest::Client,
    ) -> Result<Telegram, String> {
        let base =
            http::endpoint_base(endpoint).unwrap_or_else(|| "https://api.telegram.org".into());
        let token = http::segment(bot_token.expose());
        let url = http::join(&base, &format!("/bot{token}/sendMessage"))?;
        Ok(Telegram {
            http,
            url,
            display: format!(
                "{}/bot***/sendMessage",
                http::shown_base(endpoint, base.clone())
            ),
            chat_id: chat_id.to_string(),
            mention,
        })
    }

    pub(crate) fn display(&self) -> String {
        format!("{} (chat {})", self.display, self.chat_id)
    }

    /// The chat messages go to (changes when Telegram migrates a group).
    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }

    pub(crate) async fn send(
        &mut self,
        ctx: &mut SendContext<'_>,
        events: &[Event],
    ) -> Result<Delivered, SendError> {
        let texts = render_texts(events, self.mention.as_deref());
        let mut status = 0;
        let mut delivered = 0;
        let mut migrated: Option<String> = None;
        for text in texts.iter().skip(*ctx.sent) {
            let mut migrations = 0;
            loop {
                let body = Rendered::json(json!({
                    "chat_id": chat_id_value(&self.chat_id),
                    "text": text,
                    "parse_mode": "HTML",
                    "disable_web_page_preview": true,
                }));
                let answer = http::execute(ctx, http::post(&self.http, &self.url, &body)).await?;
                match classify(ctx, &answer)? {
                    Outcome::Sent => {
                        status = answer.status;
                        break;
                    }
                    Outcome::Migrated(new_id) if migrations < MAX_MIGRATIONS => {
                        migrations += 1;
                        tracing::info!(
                            old_chat = %self.chat_id,
                            new_chat = new_id,
                            "Telegram group was upgraded to a supergroup; following it"
                        );
                        self.chat_id = new_id.to_string();
                        migrated = Some(self.chat_id.clone());
                    }
                    Outcome::Migrated(_) => {
                        return Err(ctx.permanent(
                            "client",
                            "Telegram keeps migrating the chat; giving up on this message",
                        ))
                    }
                }
            }
            *ctx.sent += 1;
            delivered += 1;
        }
        let mut info = http::info(delivered, status);
        if let Some(chat) = migrated {
            info = format!("{info}; chat migrated to {chat}");
        }
        Ok(Delivered {
            messages: delivered,
            info,
            rate: None,
        })
    }
}

/// What a Telegram answer means for the message.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Sent,
    /// The group became a supergroup with this id: resend there.
    Migrated(i64),
}

/// Whether a 400 description is about the message itself ("too_large" or "invalid") rather
/// than the chat or the bot ("chat not found" stays a permanent failure of the target).
fn rejects_the_message(description: &str) -> Option<&'static str> {
    let d = description.to_ascii_lowercase();
    if d.contains("message is too long") || d.contains("text is too long") {
        Some("too_large")
    } else if d.contains("can't parse entities")
        || d.contains("message text is empty")
        || d.contains("text must be non-empty")
    {
        Some("invalid")
    } else {
        None
    }
}

/// Telegram's answers: `{"ok":false,"error_code":N,"description":…,"parameters":{…}}`; 400
/// "message is too long" / "can't parse entities" and 413 reject this message only.
pub(crate) fn classify(ctx: &SendContext<'_>, answer: &Answer) -> Result<Outcome, SendError> {
    let json = answer.json().unwrap_or(Value::Null);
    let parameters = &json["parameters"];
    if let Some(new_id) = parameters["migrate_to_chat_id"].as_i64() {
        return Ok(Outcome::Migrated(new_id));
    }
    if answer.is_success() && json["ok"].as_bool() != Some(false) {
        return Ok(Outcome::Sent);
    }
    let description = json["description"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| http::snippet(&answer.body));
    let detail = format!("Telegram answered HTTP {}: {description}", answer.status);
    match answer.status {
        429 => Err(SendError::RateLimited {
            retry_after: parameters["retry_after"]
                .as_f64()
                .and_then(http::seconds_to_duration)
                .or_else(|| answer.retry_after())
                .unwrap_or(Duration::from_secs(1)),
        }),
        413 => Err(ctx.rejected("too_large", detail)),
        401 | 403 => Err(ctx.permanent("auth", detail)),
        404 => Err(ctx.permanent("not_found", detail)),
        500..=599 => Err(ctx.transient("server", detail)),
        400..=499 => match rejects_the_message(&description).filter(|_| answer.status == 400) {
            Some(reason) => Err(ctx.rejected(reason, detail)),
            None => Err(ctx.permanent("client", detail)),
        },
        _ => Err(ctx.transient("server", detail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Subject};
    use proptest::prelude::*;

    fn event(text: String) -> Event {
        Event::new(
            "id",
            EventKind::InstanceLogMatch,
            Some("bob".into()),
            Subject::Instance {
                id: 5003,
                name: Some("train-<1>".into()),
            },
            chrono::Utc::now(),
            "log <match> & more",
            text,
        )
    }

    /// Strips the tags the renderer writes; what remains must be fully escaped text.
    fn assert_well_formed(part: &str) {
        let mut rest = part.to_string();
        for tag in ["<b>", "</b>", "<i>", "</i>"] {
            rest = rest.replace(tag, "");
        }
        assert!(!rest.contains('<') && !rest.contains('>'), "{part:?}");
        let mut tail = rest.as_str();
        while let Some(i) = tail.find('&') {
            tail = &tail[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| tail.starts_with(e)),
                "cut escape in {part:?}"
            );
            tail = &tail[1..];
        }
        for tag in ["b", "i"] {
            assert_eq!(
                part.matches(&format!("<{tag}>")).count(),
                part.matches(&format!("</{tag}>")).count(),
                "unbalanced <{tag}> in {part:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn every_part_fits_and_is_well_formed(
            text in proptest::collection::vec(
                prop_oneof!["[a-z ]{0,40}", "[<>&]{1,20}", "[🚀é]{1,10}", Just("\n".to_string())],
                0..400,
            ).prop_map(|parts| parts.concat())
        ) {
            let parts = render_texts(&[event(text.clone())], Some("@oncall"));
            prop_assert!(!parts.is_empty());
            for part in &parts {
                prop_assert!(render::utf16_len(part) <= MESSAGE_MAX);
                assert_well_formed(part);
            }
        }
    }

    #[test]
    fn the_title_is_bold_and_escaped() {
        let parts = render_texts(&[event("a & b".into())], None);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].contains("<b>log &lt;match&gt; &amp; more</b>"));
        assert!(parts[0].contains("\na &amp; b\n"));
    }
}
