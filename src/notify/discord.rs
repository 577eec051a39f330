//! Discord webhook: embeds coloured by severity with Discord timestamps, the configured
//! `mention` in `content` for warning and critical messages, split to Discord's limits
//! (content 2000, title 256, description 4096, 6000 characters and 10 embeds per message).

use super::http::{self, Answer};
use super::render::{self, Rendered};
use super::{Delivered, SendContext, SendError};
use crate::event::{Event, Severity};
use crate::util::Secret;
use serde_json::{json, Value};
use std::time::Duration;
use url::Url;

pub const CONTENT_MAX: usize = 2000;
pub const TITLE_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4096;
pub const FIELD_VALUE_MAX: usize = 1024;
pub const EMBED_TOTAL_MAX: usize = 6000;
pub const EMBEDS_MAX: usize = 10;

/// Embed colour bar: blue for info, orange for warning, red for critical.
pub fn colour(severity: Severity) -> u32 {
    match severity {
        Severity::Info => 0x3498DB,
        Severity::Warning => 0xE67E22,
        Severity::Critical => 0xE74C3C,
    }
}

/// Escapes Discord markdown so names like `rig_01_a` render as written.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn escaped_cost(c: char) -> usize {
    if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|') {
        2
    } else {
        1
    }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// `<t:EPOCH:f> (<t:EPOCH:R>)`: shown in each reader's own time zone, plus "3 minutes ago".
pub fn timestamp(event: &Event) -> String {
    let epoch = event.time.timestamp();
    format!("<t:{epoch}:f> (<t:{epoch}:R>)")
}

/// Characters an embed counts toward the 6000 limit.
fn embed_size(embed: &Value) -> usize {
    let text = |v: &Value| v.as_str().map_or(0, chars);
    let mut size = text(&embed["title"]) + text(&embed["description"]);
    size += text(&embed["footer"]["text"]) + text(&embed["author"]["name"]);
    if let Some(fields) = embed["fields"].as_array() {
        size += fields
            .iter()
            .map(|f| text(&f["name"]) + text(&f["value"]))
            .sum::<usize>();
    }
    size
}

/// Description chunks of at most [`DESCRIPTION_MAX`] from plain lines (escaped here).
fn descriptions(lines: &[String]) -> Vec<String> {
    let mut escaped: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            escaped.push(String::new());
            continue;
        }
        for piece in render::chunk_text(line, DESCRIPTION_MAX, escaped_cost) {
            escaped.push(escape_markdown(piece));
        }
    }
    render::pack_lines(&escaped, DESCRIPTION_MAX, chars)
        .into_iter()
        .filter(|d| !d.trim().is_empty())
        .collect()
}

fn field(name: &str, value: &str) -> Value {
    json!({"name": name, "value": render::truncate_chars(value, 256), "inline": true})
}

fn event_embeds(event: &Event) -> Vec<Value> {
    let colour = colour(event.severity);
    let text: Vec<String> = event.text.trim_end().lines().map(str::to_string).collect();
    let mut chunks = descriptions(&text).into_iter();
    let mut fields = Vec::new();
    if let Some(account) = &event.account {
        fields.push(field("Account", &escape_markdown(account)));
    }
    if !matches!(event.subject, crate::event::Subject::Supervisor) {
        fields.push(field(
            render::subject_kind(&event.subject),
            &escape_markdown(&event.subject.label()),
        ));
    }
    fields.push(field("Seen", &timestamp(event)));
    let mut first = json!({
        "title": render::truncate_chars(&render::headline(event), TITLE_MAX),
        "color": colour,
        "fields": fields,
        "footer": {"text": format!("{} · {}", event.kind, event.severity)},
        "timestamp": event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(description) = chunks.next().filter(|d| !d.is_empty()) {
        first["description"] = json!(description);
    }
    let mut embeds = vec![first];
    embeds.extend(chunks.map(|d| json!({"description": d, "color": colour})));
    embeds
}

fn digest_embeds(events: &[Event]) -> Vec<Value> {
    let severity = render::max_severity(events);
    let colour = colour(severity);
    let lines: Vec<String> = events
        .iter()
        .map(|e| {
            let mut who = Vec::new();
            if let Some(account) = &e.account {
                who.push(escape_markdown(account));
            }
            if !matches!(
                e.subject,
                crate::event::Subject::Supervisor | crate::event::Subject::Account { .. }
            ) {
                who.push(format!("**{}**", escape_markdown(&e.subject.label())));
            }
            let who = if who.is_empty() {
                String::new()
            } else {
                format!("{}: ", who.join(" · "))
            };
            format!(
                "{} <t:{}:T> {who}{}",
                render::severity_emoji(e.severity),
                e.time.timestamp(),
                escape_markdown(&render::truncate_chars(&render::headline(e), 200))
            )
        })
        .collect();
    let mut chunks = render::pack_lines(&lines, DESCRIPTION_MAX, chars).into_iter();
    let last = events.last().map(|e| e.time).unwrap_or_default();
    let mut first = json!({
        "title": render::truncate_chars(&render::digest_summary(events), TITLE_MAX),
        "color": colour,
        "footer": {"text": format!("digest · {}", severity)},
        "timestamp": last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(description) = chunks.next() {
        first["description"] = json!(description);
    }
    let mut embeds = vec![first];
    embeds.extend(chunks.map(|d| json!({"description": d, "color": colour})));
    embeds
}

/// The webhook payloads for `events` (one event, or a digest of several), split so each
/// message fits every Discord limit. `mention` goes into the first message's `content` when
/// the batch is warning or critical.
pub fn render(events: &[Event], mention: Option<&str>) -> Vec<Rendered> {
    let embeds = match events {
        [] => return Vec::new(),
        [event] => event_embeds(event),
        _ => digest_embeds(events),
    };
    let mut messages: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut current_size = 0usize;
    for embed in embeds {
        let size = embed_size(&embed);
        if !current.is_empty()
            && (current.len() == EMBEDS_MAX || current_size + size > EMBED_TOTAL_MAX)
        {
            messages.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current_size += size;
        current.push(embed);
    }
    if !current.is_empty() {
        messages.push(current);
    }
    let mention = render::mention_for(events, mention);
    messages
        .into_iter()
        .enumerate()
        .map(|(i, embeds)| {
            let mut body = json!({ "embeds": embeds });
            if let (0, Some(mention)) = (i, mention) {
                body["content"] = json!(render::truncate_chars(mention, CONTENT_MAX));
            }
            Rendered::json(body)
        })
        .collect()
}

/// A Discord webhook target.
pub struct Discord {
    http: reqwest::Client,
    url: Url,
    display: String,
    mention: Option<String>,
}

impl Discord {
    pub(crate) fn new(
        webhook_id: &str,
        token: &Secret,
        endpoint: Option<&Url>,
        mention: Option<String>,
        http: reqwest::Client,
    ) -> Result<Discord, String> {
        let base = http::endpoint_base(endpoint).unwrap_or_else(|| "https://discord.com".into());
        let mut url = http::join(
            &base,
            &format!(
                "/api/webhooks/{}/{}",
                http::segment(webhook_id),
                http::segment(token.expose())
            ),
        )?;
        url.set_query(Some("wait=true"));
        Ok(Discord {
            http,
            url,
            display: format!(
                "{}/api/webhooks/{webhook_id}/***",
                http::shown_base(endpoint, base.clone())
            ),
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
            |ctx, answer| classify(ctx, answer).map(|()| answer.ratelimit_hint()),
        )
        .await
    }
}

/// Discord JSON error codes that concern one message, not the webhook: 40005 "Request entity
/// too large"; 50035 "Invalid Form Body" (a field over its limit); 50006 "Cannot send an empty
/// message".
const CODE_TOO_LARGE: i64 = 40005;
const CODE_INVALID_FORM_BODY: i64 = 50035;
const CODE_EMPTY_MESSAGE: i64 = 50006;

/// Discord's answers: 429 with `retry_after` in the JSON body (fractional seconds) or
/// `Retry-After`; 413 / code 40005 and 400 with codes 50035 or 50006 reject this message only;
/// 404 = webhook deleted; 401/403 = bad token; other 4xx = our request.
pub(crate) fn classify(ctx: &SendContext<'_>, answer: &Answer) -> Result<(), SendError> {
    if answer.status == 429 {
        let from_body = answer
            .json()
            .and_then(|v| v["retry_after"].as_f64())
            .and_then(http::seconds_to_duration);
        let retry_after = from_body
            .or_else(|| answer.retry_after())
            .or_else(|| {
                answer
                    .header_f64("x-ratelimit-reset-after")
                    .and_then(http::seconds_to_duration)
            })
            .unwrap_or(Duration::from_secs(1));
        return Err(SendError::RateLimited { retry_after });
    }
    if !answer.is_success() {
        match answer.json().and_then(|v| v["code"].as_i64()) {
            Some(CODE_TOO_LARGE) => return Err(http::too_large(ctx, "Discord", answer)),
            Some(CODE_INVALID_FORM_BODY | CODE_EMPTY_MESSAGE) if answer.status == 400 => {
                return Err(http::invalid(ctx, "Discord", answer))
            }
            _ => {}
        }
    }
    http::classify_common(ctx, "Discord", answer, Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Subject};
    use proptest::prelude::*;

    fn event(text: String, title: String) -> Event {
        Event::new(
            "id",
            EventKind::MachineError,
            Some("alice".into()),
            Subject::Machine {
                id: 1,
                name: Some("rig_1".into()),
            },
            chrono::Utc::now(),
            title,
            text,
        )
    }

    fn assert_fits(message: &Rendered) {
        let super::render::Body::Json(body) = &message.body else {
            panic!("Discord bodies are JSON");
        };
        assert!(body["content"].as_str().map_or(0, chars) <= CONTENT_MAX);
        let embeds = body["embeds"].as_array().unwrap();
        assert!(!embeds.is_empty() && embeds.len() <= EMBEDS_MAX);
        assert!(embeds.iter().map(embed_size).sum::<usize>() <= EMBED_TOTAL_MAX);
        for embed in embeds {
            assert!(embed["title"].as_str().map_or(0, chars) <= TITLE_MAX);
            assert!(embed["description"].as_str().map_or(0, chars) <= DESCRIPTION_MAX);
        }
    }

    proptest! {
        #[test]
        fn every_message_fits_discord_limits(
            text in proptest::collection::vec(
                prop_oneof!["[a-z ]{0,80}", "[*_~`|]{1,30}", "[🚀é]{1,10}", Just("\n".to_string())],
                0..600,
            ).prop_map(|parts| parts.concat()),
            title in "[a-z_ ]{0,400}",
            mention in "[<@>0-9]{0,2500}",
        ) {
            let messages = render(&[event(text, title)], Some(&mention));
            prop_assert!(!messages.is_empty());
            for m in &messages {
                assert_fits(m);
            }
        }
    }

    #[test]
    fn digests_pack_embeds_across_messages() {
        let events: Vec<Event> = (0..500)
            .map(|i| event(String::new(), format!("machine {i} had an error")))
            .collect();
        let messages = render(&events, None);
        assert!(messages.len() >= 2);
        messages.iter().for_each(assert_fits);
    }

    #[test]
    fn markdown_is_escaped() {
        assert_eq!(escape_markdown("rig_01 *x*"), "rig\\_01 \\*x\\*");
    }
}
