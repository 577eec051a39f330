//! One request to the fake services, from arrival to answer: which service it is for, the method
//! and body cap, a scripted behaviour, an outage, the published rate limits, then the service's
//! own validation. Must not word a service's answers (that is `services` and `answers`).

use super::answers::{rate_limited, scripted_answer, server_error, text, too_large};
use super::limits::{limit_key, published_limits, Limiter};
use super::services::{discord, gotify, ntfy, pushover, slack, telegram};
use super::{
    accept, record_attempt, Behaviour, FakeService, Handled, Incoming, Shared, MAX_REQUEST_BYTES,
};
use axum::body::Body;
use hyper::{Request, Response};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

fn route(path: &str, content_type: &str) -> FakeService {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if path.starts_with("/api/webhooks/") {
        FakeService::Discord
    } else if path.starts_with("/services/") {
        FakeService::Slack
    } else if segments.len() == 2 && segments[0].starts_with("bot") && segments[0].len() > 3 {
        FakeService::Telegram
    } else if path == "/1/messages.json" {
        FakeService::Pushover
    } else if path == "/message" {
        FakeService::Gotify
    } else if segments.len() == 1 && !segments[0].is_empty() && !content_type.contains("json") {
        FakeService::Ntfy
    } else {
        FakeService::Webhook
    }
}

pub(super) async fn handle(
    shared: Arc<Shared>,
    request: Request<hyper::body::Incoming>,
) -> Handled {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    let service = route(&path, &content_type);
    let body = match axum::body::to_bytes(Body::new(body), MAX_REQUEST_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => {
            record_attempt(&shared, service, &path, 413, at);
            return Handled::Answer(too_large(service));
        }
    };
    let incoming = Incoming {
        service,
        path,
        query,
        headers,
        body,
        at,
    };
    if parts.method != hyper::Method::POST {
        record_attempt(&shared, service, &incoming.path, 405, at);
        return Handled::Answer(text(405, "method not allowed"));
    }
    let over_limit = shared
        .lock()
        .body_limits
        .iter()
        .any(|(prefix, max)| incoming.path.starts_with(prefix) && incoming.body.len() > *max);
    if over_limit {
        record_attempt(&shared, service, &incoming.path, 413, at);
        return Handled::Answer(too_large(service));
    }

    let scripted = {
        let mut state = shared.lock();
        let script = state
            .scripts
            .iter_mut()
            .find(|s| s.remaining > 0 && incoming.path.starts_with(&s.prefix));
        let behaviour = match script {
            Some(s) if s.skip > 0 => {
                s.skip -= 1;
                None
            }
            Some(s) => {
                s.remaining -= 1;
                Some(s.behaviour.clone())
            }
            None => None,
        };
        state.scripts.retain(|s| s.remaining > 0);
        behaviour
    };
    let answer = match scripted {
        Some(Behaviour::Close) => {
            record_attempt(&shared, service, &incoming.path, 0, at);
            return Handled::Close;
        }
        Some(Behaviour::Hang(wait)) => {
            tokio::time::sleep(wait).await;
            normal(&shared, &incoming)
        }
        Some(behaviour) => scripted_answer(&shared, &incoming, &behaviour)
            .unwrap_or_else(|| normal(&shared, &incoming)),
        None => normal(&shared, &incoming),
    };
    record_attempt(
        &shared,
        service,
        &incoming.path,
        answer.status().as_u16(),
        at,
    );
    Handled::Answer(answer)
}

/// Outage, rate limits, then the service's own validation.
fn normal(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    {
        let mut state = shared.lock();
        if state
            .down
            .iter()
            .any(|p| incoming.path.starts_with(p.as_str()))
        {
            drop(state);
            return server_error(incoming.service, 503);
        }
        if state.enforce_limits {
            if let Some(key) = limit_key(incoming) {
                let limits = published_limits(incoming.service);
                let limiter = state
                    .limiters
                    .entry(key)
                    .or_insert_with(|| Limiter::new(limits, incoming.at));
                if let Err(wait) = limiter.take(incoming.at) {
                    drop(state);
                    return rate_limited(shared, incoming, wait);
                }
            }
        }
    }
    match incoming.service {
        FakeService::Discord => discord(shared, incoming),
        FakeService::Slack => slack(shared, incoming),
        FakeService::Telegram => telegram(shared, incoming),
        FakeService::Ntfy => ntfy(shared, incoming),
        FakeService::Pushover => pushover(shared, incoming),
        FakeService::Gotify => gotify(shared, incoming),
        FakeService::Webhook => {
            accept(shared, incoming);
            text(200, "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_the_real_paths() {
        assert_eq!(
            route("/api/webhooks/1/t", "application/json"),
            FakeService::Discord
        );
        assert_eq!(
            route("/services/A/B/C", "application/json"),
            FakeService::Slack
        );
        assert_eq!(
            route("/bot123:abc/sendMessage", "application/json"),
            FakeService::Telegram
        );
        assert_eq!(
            route("/1/messages.json", "application/x-www-form-urlencoded"),
            FakeService::Pushover
        );
        assert_eq!(route("/message", "application/json"), FakeService::Gotify);
        assert_eq!(route("/alerts", "text/plain"), FakeService::Ntfy);
        assert_eq!(route("/alerts", "application/json"), FakeService::Webhook);
        assert_eq!(
            route("/hooks/x/y", "application/json"),
            FakeService::Webhook
        );
    }
}
