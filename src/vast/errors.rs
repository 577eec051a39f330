//! Typed errors of the Vast client and the redaction helpers that keep API keys out of them.
//!
//! Every error text is built from redacted material only: URLs lose their `api_key=` values and
//! response snippets are short, whitespace-collapsed and scrubbed of the account's key and of any
//! `"api_key": "..."` pair, so an error can be logged or shown in `status` as it is.

use regex::Regex;
use std::sync::OnceLock;

/// What went wrong talking to Vast. `reason()` gives the metrics label, `is_transient()` says
/// whether the data is merely stale (retry later) or the request itself is wrong (key, id, args).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VastError {
    /// 401/403 (or a 404 whose body says `auth_error`, as some v1 endpoints answer): the key is
    /// wrong, revoked or lacks a permission. Not retried.
    #[error("Vast rejected the API key (HTTP {status}): the key is wrong, revoked or lacks a permission")]
    Unauthorized { status: u16 },
    /// 404 without an auth error: the id does not exist (or is not this account's).
    #[error("not found at Vast (HTTP 404)")]
    NotFound,
    /// 429 after every retry. Vast sends no `Retry-After`; the body is one of several styles.
    #[error("rate limited by Vast (HTTP 429): {body_snippet}")]
    RateLimited { body_snippet: String },
    /// Any other unexpected status: 5xx gateways (HTML bodies) and 4xx without a JSON error.
    #[error("Vast answered HTTP {status}")]
    Upstream { status: u16 },
    /// The body could not be decoded (truncated, HTML where JSON was expected, wrong shape).
    #[error("could not decode the Vast response: {detail}")]
    Decode { detail: String },
    /// The body is larger than the client reads (`MAX_BODY_BYTES`); not read further.
    #[error("the Vast response is larger than {limit_mib} MiB; not read")]
    TooLarge { limit_mib: usize },
    /// No complete answer within the request timeout.
    #[error("timed out waiting for Vast")]
    Timeout,
    /// Connection refused, reset, closed early, DNS, TLS.
    #[error("network error talking to Vast: {detail}")]
    Network { detail: String },
    /// Vast answered with an error object: a 4xx with `{"error", "msg"}` or an HTTP 200 with
    /// `"success": false`. `error` is Vast's code (e.g. `invalid_token`), `msg` its text.
    /// The client also uses `error: "logs_not_ready"` when a log upload never appeared.
    #[error("Vast API error {error}: {msg}")]
    Api { error: String, msg: String },
}

/// The `error` code of [`VastError::Api`] when a requested log never became downloadable.
pub const LOGS_NOT_READY: &str = "logs_not_ready";

impl VastError {
    /// True when the request may succeed if simply repeated later: rate limits, 5xx, timeouts,
    /// network failures and undecodable (typically truncated) bodies. Such a failure means
    /// "data stale", never "machine down".
    pub fn is_transient(&self) -> bool {
        match self {
            VastError::RateLimited { .. }
            | VastError::Timeout
            | VastError::Network { .. }
            | VastError::Decode { .. }
            | VastError::TooLarge { .. } => true,
            VastError::Upstream { status } => *status >= 500,
            VastError::Api { error, .. } => error == LOGS_NOT_READY,
            VastError::Unauthorized { .. } | VastError::NotFound => false,
        }
    }

    /// A stable label for metrics (`reason="..."`).
    pub fn reason(&self) -> &'static str {
        match self {
            VastError::Unauthorized { .. } => "unauthorized",
            VastError::NotFound => "not_found",
            VastError::RateLimited { .. } => "rate_limited",
            VastError::Upstream { .. } => "upstream",
            VastError::Decode { .. } | VastError::TooLarge { .. } => "decode",
            VastError::Timeout => "timeout",
            VastError::Network { .. } => "network",
            VastError::Api { .. } => "api",
        }
    }

    /// Whether the client's retry loop repeats the request after this error.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            VastError::RateLimited { .. }
            | VastError::Timeout
            | VastError::Network { .. }
            | VastError::Decode { .. } => true,
            VastError::Upstream { status } => matches!(status, 502..=504),
            _ => false,
        }
    }
}

/// How many characters of a body an error may quote.
pub const SNIPPET_CHARS: usize = 80;

fn api_key_param() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)(api_key=)[^&#\s]*").expect("static regex"))
}

fn api_key_json() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?i)("(?:api_key|jupyter_token|instance_api_key)"\s*:\s*)"[^"]*"?"#)
            .expect("static regex")
    })
}

/// Replaces every `api_key=...` query value in a URL (or any text) with `***`.
pub fn redact_url(url: &str) -> String {
    api_key_param().replace_all(url, "${1}***").into_owned()
}

/// Removes `secret` (when non-empty) and every key-like pattern from `text`.
pub fn redact_text(text: &str, secret: &str) -> String {
    let mut out = redact_url(text);
    out = api_key_json().replace_all(&out, "${1}\"***\"").into_owned();
    if !secret.is_empty() {
        out = out.replace(secret, "***");
    }
    out
}

/// A short, single-line, redacted description of a response body for error texts.
pub fn body_snippet(body: &[u8], secret: &str) -> String {
    if body.is_empty() {
        return "(empty body)".into();
    }
    // Redact on a window large enough to hold any key starting inside the quoted part, so a
    // key can never be cut in half by the final truncation.
    let window = SNIPPET_CHARS + secret.len() + 64;
    let text = String::from_utf8_lossy(&body[..body.len().min(window * 4)]);
    let collapsed: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(window)
        .collect();
    let redacted = redact_text(&collapsed, secret);
    let mut out: String = redacted.chars().take(SNIPPET_CHARS).collect();
    if redacted.chars().count() > SNIPPET_CHARS || body.len() > window * 4 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bodies_are_redacted() {
        assert_eq!(
            redact_url("https://x/api/v0/machines?owner=me&api_key=abc123&x=1"),
            "https://x/api/v0/machines?owner=me&api_key=***&x=1"
        );
        let s = body_snippet(br#"{"id": 1, "api_key": "s3cr3t-key", "x": 2}"#, "");
        assert!(!s.contains("s3cr3t"), "{s}");
        let s = body_snippet(b"<html>\n  <b>oops s3cr3t</b></html>", "s3cr3t");
        assert_eq!(s, "<html> <b>oops ***</b></html>");
        let long = format!("{}s3cr3t{}", "a".repeat(75), "b".repeat(300));
        let s = body_snippet(long.as_bytes(), "s3cr3t");
        assert!(!s.contains("s3c"), "{s}");
        assert!(s.ends_with('…'));
        assert_eq!(body_snippet(b"", "k"), "(empty body)");
    }

    #[test]
    fn classes() {
        assert!(VastError::Upstream { status: 502 }.is_transient());
        assert!(!VastError::Upstream { status: 400 }.is_transient());
        assert!(!VastError::Unauthorized { status: 401 }.is_transient());
        assert!(VastError::Timeout.is_retryable());
        assert!(!VastError::Upstream { status: 500 }.is_retryable());
        assert_eq!(VastError::NotFound.reason(), "not_found");
        let e = VastError::Api {
            error: "invalid_token".into(),
            msg: "bad".into(),
        };
        assert_eq!(e.to_string(), "Vast API error invalid_token: bad");
        assert!(!e.is_transient());
    }
}
