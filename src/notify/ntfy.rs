//! ntfy: POST the message text to `/TOPIC` with `Title`, `Priority` and `Tags` headers from the
//! severity. The body stays within 4096 bytes (larger bodies become attachments on ntfy), cut
//! on a character boundary. 429 with code 42908 (daily quota) waits until the next UTC day.

use super::http::{self, Answer};
use super::render::{self, Body, Rendered};
use super::{Delivered, SendContext, SendError};
use crate::event::{Event, Severity};
use crate::util::Secret;
use base64::Engine;
use std::time::Duration;
use url::Url;

/// ntfy turns larger message bodies into attachments.
pub const BODY_MAX_BYTES: usize = 4096;
/// Titles travel in a header; keep them short.
pub const TITLE_MAX: usize = 250;
/// ntfy's 429 code for "daily message quota reached".
pub const QUOTA_CODE: i64 = 42908;

/// ntfy priority: 5 urgent, 4 high, 3 default.
pub fn priority(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 5,
        Severity::Warning => 4,
        Severity::Info => 3,
    }
}

/// The emoji tag ntfy shows for a severity.
pub fn severity_tag(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "rotating_light",
        Severity::Warning => "warning",
        Severity::Info => "information_source",
    }
}

/// A header value: as is when printable ASCII, else an RFC 2047 encoded word, which ntfy
/// decodes (HTTP headers cannot carry raw UTF-8 reliably).
pub fn header_value(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        clean
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(clean.as_bytes())
        )
    }
}

/// The publish request for `events` (one event, or a digest of several).
pub fn render(events: &[Event]) -> Vec<Rendered> {
    if events.is_empty() {
        return Vec::new();
    }
    let severity = render::max_severity(events);
    let (title, body, kind_tag) = match events {
        [event] => (
            render::headline(event),
            render::truncate_bytes(&render::plain_lines(event).join("\n"), BODY_MAX_BYTES),
            event.kind.as_str().to_string(),
        ),
        _ => {
            let lines: Vec<String> = events.iter().map(render::digest_line).collect();
            (
                render::digest_summary(events),
                render::fit_lines(&lines, BODY_MAX_BYTES, "events", str::len),
                "digest".to_string(),
            )
        }
    };
    vec![Rendered {
        headers: vec![
            (
                "Title".to_string(),
                header_value(&render::truncate_chars(&title, TITLE_MAX)),
            ),
            ("Priority".to_string(), priority(severity).to_string()),
            (
                "Tags".to_string(),
                format!("{},{kind_tag}", severity_tag(severity)),
            ),
        ],
        body: Body::Text(body),
    }]
}

/// An ntfy topic target.
pub struct Ntfy {
    http: reqwest::Client,
    url: Url,
    display: String,
    authorization: Option<String>,
}

impl Ntfy {
    pub(crate) fn new(
        tls: bool,
        host: &str,
        port: Option<u16>,
        topic: &str,
        auth: Option<&Secret>,
        endpoint: Option<&Url>,
        http: reqwest::Client,
    ) -> Result<Ntfy, String> {
        let base = http::endpoint_base(endpoint).unwrap_or_else(|| http::origin(tls, host, port));
        let url = http::join(&base, &format!("/{}", http::segment(topic)))?;
        // "user:pass" is Basic auth; a bare value is an access token.
        let authorization = auth.map(|secret| match secret.expose().split_once(':') {
            Some(_) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(secret.expose())
            ),
            None => format!("Bearer {}", secret.expose()),
        });
        Ok(Ntfy {
            http,
            url,
            display: format!("{}/{topic}", http::shown_base(endpoint, base.clone())),
            authorization,
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
        let authorization = self.authorization.as_ref();
        http::send_parts(
            ctx,
            &messages,
            |m| {
                let request = http::post(&self.http, &self.url, m);
                match authorization {
                    Some(a) => request.header(reqwest::header::AUTHORIZATION, a),
                    None => request,
                }
            },
            |ctx, answer| classify(ctx, answer, chrono::Utc::now()).map(|()| None),
        )
        .await
    }
}

/// Time from `now` to the next UTC midnight, when ntfy resets daily quotas.
pub fn until_next_utc_day(now: chrono::DateTime<chrono::Utc>) -> Duration {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    let midnight = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    (midnight - now)
        .to_std()
        .unwrap_or(Duration::from_secs(3600))
}

/// ntfy's answers: JSON `{"code":…,"http":…,"error":…}` on errors.
pub(crate) fn classify(
    ctx: &SendContext<'_>,
    answer: &Answer,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), SendError> {
    if answer.status == 429 {
        let quota = answer.json().and_then(|v| v["code"].as_i64()) == Some(QUOTA_CODE);
        let retry_after = if quota {
            until_next_utc_day(now)
        } else {
            answer.retry_after().unwrap_or(Duration::from_secs(60))
        };
        return Err(SendError::RateLimited { retry_after });
    }
    http::classify_common(ctx, "ntfy", answer, Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_waits_until_utc_midnight() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T23:59:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(until_next_utc_day(now), Duration::from_secs(60));
    }

    #[test]
    fn non_ascii_titles_are_encoded_words() {
        assert_eq!(header_value("rig-01 offline"), "rig-01 offline");
        assert_eq!(header_value("a\nb"), "a b");
        assert_eq!(header_value("rig-é"), "=?UTF-8?B?cmlnLcOp?=");
    }
}
