//! HTTP plumbing shared by the web services: building a request from a [`Rendered`], running
//! it with a deadline, turning transport failures into [`SendError`]s without leaking the URL,
//! and the common parts of reading an answer (Retry-After, status classes, body snippets).

use super::render::Rendered;
use super::{Delivered, RateHint, SendContext, SendError, MAX_RETRY_AFTER};
use reqwest::header::{HeaderMap, CONTENT_TYPE, USER_AGENT};
use std::time::Duration;
use url::Url;

/// Sent with every request so service operators can tell who is calling.
pub const USER_AGENT_VALUE: &str = concat!("vast-supervisor/", env!("CARGO_PKG_VERSION"));

/// At most this much of an answer body is read; services answer errors in a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Characters escaped in one URL path segment (tokens, topics); unreserved ones like `-`
/// stay readable.
pub const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `segment` escaped for use as one path segment.
pub fn segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

/// A service's answer, read whole (bounded).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// "HTTP 404: {\"message\": \"Unknown Webhook\"...}" (body shortened).
    pub fn describe(&self) -> String {
        let snippet = snippet(&self.body);
        if snippet.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {snippet}", self.status)
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_f64(&self, name: &str) -> Option<f64> {
        self.header(name)?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    }

    /// `Retry-After` as seconds (fractions allowed) or an HTTP date, at most
    /// [`MAX_RETRY_AFTER`].
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.header("retry-after")?.trim();
        if let Ok(seconds) = value.parse::<f64>() {
            return seconds_to_duration(seconds);
        }
        let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
        Some(wait.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
    }

    /// Discord-style `X-RateLimit-Remaining` / `X-RateLimit-Reset-After`.
    pub fn ratelimit_hint(&self) -> Option<RateHint> {
        let remaining = self
            .header("x-ratelimit-remaining")
            .and_then(|v| v.trim().parse::<u32>().ok());
        let reset_after = self
            .header_f64("x-ratelimit-reset-after")
            .and_then(seconds_to_duration);
        (remaining.is_some() || reset_after.is_some()).then_some(RateHint {
            remaining,
            reset_after,
        })
    }
}

/// A non-negative, finite number of seconds as a duration, at most [`MAX_RETRY_AFTER`].
pub fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// The start of an answer body on one line, for error details.
pub fn snippet(body: &str) -> String {
    let collapsed: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    super::render::truncate_chars(&collapsed, 300)
}

/// `scheme://host[:port]` with IPv6 hosts bracketed.
pub fn origin(tls: bool, host: &str, port: Option<u16>) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// `base` (an origin or the `?endpoint=` override, possibly with a path) joined with `path`.
/// The error never quotes the URL, which may hold secrets.
pub fn join(base: &str, path: &str) -> Result<Url, String> {
    let base = base.trim_end_matches('/');
    let path = if path.starts_with('/') || path.is_empty() {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let url = Url::parse(&format!("{base}{path}"))
        .map_err(|e| format!("cannot build the request URL ({e})"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "the endpoint scheme \"{other}\" is not http or https"
        )),
    }
}

/// The `?endpoint=` override as a base string, if given.
pub fn endpoint_base(endpoint: Option<&Url>) -> Option<String> {
    endpoint.map(|u| {
        let mut base = u.clone();
        base.set_query(None);
        base.set_fragment(None);
        base.as_str().trim_end_matches('/').to_string()
    })
}

/// How the `?endpoint=` override appears in logs and `notify-test` answers: its origin only,
/// with `/***` for a path (a relay's path may hold a token). Without an override, `default`.
pub fn shown_base(endpoint: Option<&Url>, default: String) -> String {
    match endpoint {
        Some(u) if u.path().trim_matches('/').is_empty() => u.origin().ascii_serialization(),
        Some(u) => format!("{}/***", u.origin().ascii_serialization()),
        None => default,
    }
}

/// A POST of `rendered` to `url`, with the body, content type and per-message headers set.
pub fn post(http: &reqwest::Client, url: &Url, rendered: &Rendered) -> reqwest::RequestBuilder {
    let mut request = http
        .post(url.clone())
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONTENT_TYPE, rendered.content_type())
        .body(rendered.body_bytes());
    for (name, value) in &rendered.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request
}

/// Sends `request` with the context's deadline and reads the answer.
pub async fn execute(
    ctx: &SendContext<'_>,
    request: reqwest::RequestBuilder,
) -> Result<Answer, SendError> {
    let response = request
        .timeout(ctx.timeout)
        .send()
        .await
        .map_err(|e| transport_error(ctx, e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            // The status is what matters; a body cut short only shortens the detail.
            Err(_) if (200..300).contains(&status) => break,
            Err(e) => return Err(transport_error(ctx, e)),
        }
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A transport failure, described from its cause chain without the request URL.
pub fn transport_error(ctx: &SendContext<'_>, error: reqwest::Error) -> SendError {
    if error.is_builder() {
        return ctx.permanent("client", format!("invalid request: {}", chain(error)));
    }
    if error.is_timeout() {
        return ctx.transient(
            "timeout",
            format!(
                "no answer within {}",
                crate::util::format_duration(ctx.timeout)
            ),
        );
    }
    ctx.transient("network", chain(error))
}

fn chain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// The classification most services share: 2xx ok; 429 wait (Retry-After, else `default_wait`);
/// 408 and 5xx transient; 413 rejects this message only (too large; the target stays enabled);
/// 401/403 auth, 404/410 not found, other 4xx client errors permanent.
pub fn classify_common(
    ctx: &SendContext<'_>,
    service: &str,
    answer: &Answer,
    default_wait: Duration,
) -> Result<(), SendError> {
    match answer.status {
        200..=299 => Ok(()),
        429 => Err(SendError::RateLimited {
            retry_after: answer.retry_after().unwrap_or(default_wait),
        }),
        408 => Err(ctx.transient(
            "timeout",
            format!("{service} answered {}", answer.describe()),
        )),
        500..=599 => Err(ctx.transient(
            "server",
            format!("{service} answered {}", answer.describe()),
        )),
        413 => Err(too_large(ctx, service, answer)),
        401 | 403 => Err(ctx.permanent(
            "auth",
            format!("{service} refused the credentials: {}", answer.describe()),
        )),
        404 | 410 => Err(ctx.permanent(
            "not_found",
            format!("{service} does not know this target: {}", answer.describe()),
        )),
        _ => Err(ctx.permanent(
            "client",
            format!("{service} rejected the request: {}", answer.describe()),
        )),
    }
}

/// The service refused this message as too large (HTTP 413 or its own equivalent).
pub fn too_large(ctx: &SendContext<'_>, service: &str, answer: &Answer) -> SendError {
    ctx.rejected(
        "too_large",
        format!(
            "{service} refused the message as too large: {}",
            answer.describe()
        ),
    )
}

/// The service refused this message's content as invalid (not the target or credentials).
pub fn invalid(ctx: &SendContext<'_>, service: &str, answer: &Answer) -> SendError {
    ctx.rejected(
        "invalid",
        format!(
            "{service} refused the message as invalid: {}",
            answer.describe()
        ),
    )
}

/// "HTTP 204", or "3 messages, last HTTP 200".
pub fn info(messages: usize, status: u16) -> String {
    if messages == 1 {
        format!("HTTP {status}")
    } else {
        format!("{messages} messages, last HTTP {status}")
    }
}

/// Posts the parts of one notification the service has not accepted yet, in order: `request`
/// builds a part's request, `check` classifies the answer (and may read a rate hint from it).
/// Stops at the first failure; `ctx.sent` counts accepted parts, so a retry resumes after them
/// instead of repeating them. Between parts it honours a "nothing remains" hint ([`pace`]).
pub async fn send_parts(
    ctx: &mut SendContext<'_>,
    parts: &[Rendered],
    mut request: impl FnMut(&Rendered) -> reqwest::RequestBuilder,
    mut check: impl FnMut(&SendContext<'_>, &Answer) -> Result<Option<RateHint>, SendError>,
) -> Result<Delivered, SendError> {
    let mut delivered = 0;
    let mut last: (u16, Option<RateHint>) = (0, None);
    for part in parts.iter().skip(*ctx.sent) {
        if delivered > 0 {
            pace(last.1).await;
        }
        let answer = execute(ctx, request(part)).await?;
        let hint = check(ctx, &answer)?;
        last = (answer.status, hint);
        *ctx.sent += 1;
        delivered += 1;
    }
    Ok(Delivered {
        messages: delivered,
        info: info(delivered, last.0),
        rate: last.1,
    })
}

/// Between the parts of a split message: when the service says nothing remains, wait for its
/// reset (briefly) instead of provoking a 429.
pub async fn pace(hint: Option<RateHint>) {
    if let Some(RateHint {
        remaining: Some(0),
        reset_after: Some(wait),
    }) = hint
    {
        if wait <= Duration::from_secs(10) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn answer(headers: &[(&'static str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Answer {
            status: 429,
            headers: map,
            body: String::new(),
        }
    }

    #[test]
    fn retry_after_seconds_fractions_and_dates() {
        assert_eq!(
            answer(&[("retry-after", "3")]).retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            answer(&[("retry-after", "0.376")]).retry_after(),
            Some(Duration::from_millis(376))
        );
        assert_eq!(
            answer(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]).retry_after(),
            Some(Duration::ZERO)
        );
        assert_eq!(answer(&[("retry-after", "soon")]).retry_after(), None);
        assert_eq!(answer(&[("retry-after", "-1")]).retry_after(), None);
        // Both forms are capped: a day ahead, or a date years away, waits an hour at most.
        for far in ["86400", "1e300", "Wed, 21 Oct 2099 07:28:00 GMT"] {
            assert_eq!(
                answer(&[("retry-after", far)]).retry_after(),
                Some(MAX_RETRY_AFTER),
                "{far}"
            );
        }
    }

    #[test]
    fn ratelimit_headers_become_hints() {
        let a = answer(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1.5"),
        ]);
        assert_eq!(
            a.ratelimit_hint(),
            Some(RateHint {
                remaining: Some(0),
                reset_after: Some(Duration::from_millis(1500))
            })
        );
        assert_eq!(answer(&[]).ratelimit_hint(), None);
    }

    #[test]
    fn urls_join_and_bracket_ipv6() {
        assert_eq!(origin(true, "::1", Some(8080)), "https://[::1]:8080");
        assert_eq!(
            join("http://127.0.0.1:9/prefix/", "/message")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/prefix/message"
        );
        assert!(join("ftp://x", "/a").unwrap_err().contains("not http"));
    }
}
