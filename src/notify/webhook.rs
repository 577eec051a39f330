//! Generic JSON webhook (`json://`, `jsons://`): POSTs the SPEC §5 event JSON, one object per
//! request, or arrays of up to `batch_size` events; optional bearer token, basic auth from the
//! URL and custom headers.

use super::http::{self, Answer};
use super::render::Rendered;
use super::{Delivered, SendContext, SendError};
use crate::event::Event;
use crate::util::Secret;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// The request bodies for `events`: one object each when `batch_size` is 1, else arrays of up
/// to `batch_size` events, in order.
pub fn render(events: &[Event], batch_size: usize) -> Vec<Rendered> {
    let to_value = |e: &Event| serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
    if batch_size <= 1 {
        return events.iter().map(|e| Rendered::json(to_value(e))).collect();
    }
    events
        .chunks(batch_size)
        .map(|chunk| {
            Rendered::json(serde_json::Value::Array(
                chunk.iter().map(to_value).collect(),
            ))
        })
        .collect()
}

/// What the configuration says about a webhook target.
pub(crate) struct WebhookOptions<'a> {
    pub tls: bool,
    pub host: &'a str,
    pub port: Option<u16>,
    pub path: &'a str,
    pub basic_auth: Option<&'a (String, Secret)>,
    pub endpoint: Option<&'a Url>,
    pub bearer_token: Option<&'a Secret>,
    pub headers: &'a BTreeMap<String, String>,
    pub batch_size: usize,
}

/// A generic JSON webhook target.
pub struct Webhook {
    http: reqwest::Client,
    url: Url,
    display: String,
    /// Authorization and custom headers, validated once; values may be secret. They replace
    /// defaults of the same name (a custom `Content-Type` wins).
    headers: HeaderMap,
    batch_size: usize,
}

impl Webhook {
    pub(crate) fn new(
        options: WebhookOptions<'_>,
        http: reqwest::Client,
    ) -> Result<Webhook, String> {
        let base = http::endpoint_base(options.endpoint)
            .unwrap_or_else(|| http::origin(options.tls, options.host, options.port));
        let url = http::join(&base, options.path)?;
        let mut headers = HeaderMap::new();
        for (name, value) in options.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("\"{name}\" is not a valid HTTP header name"))?;
            let mut header_value = HeaderValue::from_str(value).map_err(|_| {
                format!("the value of header \"{name}\" is not a valid HTTP header value")
            })?;
            header_value.set_sensitive(true);
            headers.append(header_name, header_value);
        }
        let authorization = match (options.bearer_token, options.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {}", token.expose())),
            (None, Some((user, password))) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose()))
            )),
            (None, None) => None,
        };
        if let Some(authorization) = authorization {
            let mut value = HeaderValue::from_str(&authorization)
                .map_err(|_| "the bearer token or password is not a valid HTTP header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let path_shown = if options.path.trim_matches('/').is_empty() {
            "/"
        } else {
            "/***"
        };
        Ok(Webhook {
            http,
            url,
            display: format!(
                "{}{path_shown}",
                http::shown_base(options.endpoint, base.clone())
            ),
            headers,
            batch_size: options.batch_size.max(1),
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
        let messages = render(events, self.batch_size);
        http::send_parts(
            ctx,
            &messages,
            |m| http::post(&self.http, &self.url, m).headers(self.headers.clone()),
            |ctx, answer| classify(ctx, answer).map(|()| None),
        )
        .await
    }
}

/// 2xx ok; 429 Retry-After; 5xx transient; 401/403/404/410 and other 4xx permanent.
pub(crate) fn classify(ctx: &SendContext<'_>, answer: &Answer) -> Result<(), SendError> {
    http::classify_common(ctx, "webhook", answer, Duration::from_secs(5))
}
