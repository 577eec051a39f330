//! The answers every fake service shares: the plain responses, the service's real 429 (with its
//! headers), 5xx and 413 bodies, and the scripted behaviours. Must not validate payloads.

use super::{Behaviour, FakeService, Incoming, Shared};
use axum::body::{Body, Bytes};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

pub(super) fn response(status: u16, content_type: &str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

pub(super) fn text(status: u16, body: &str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body.to_string())
}

pub(super) fn json_response(status: u16, body: Value) -> Response<Body> {
    response(status, "application/json", body.to_string())
}

pub(super) fn with_header(
    mut response: Response<Body>,
    name: &'static str,
    value: String,
) -> Response<Body> {
    if let Ok(value) = value.parse() {
        response.headers_mut().insert(name, value);
    }
    response
}

pub(super) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The service's real 429.
pub(super) fn rate_limited(shared: &Shared, incoming: &Incoming, wait: Duration) -> Response<Body> {
    let seconds = (wait.as_secs_f64() * 1000.0).ceil() / 1000.0;
    match incoming.service {
        FakeService::Discord => {
            let mut r = json_response(
                429,
                json!({"message": "You are being rate limited.", "retry_after": seconds, "global": false}),
            );
            r = with_header(r, "retry-after", ceil_secs(wait).to_string());
            r = with_header(r, "x-ratelimit-limit", "5".into());
            r = with_header(r, "x-ratelimit-remaining", "0".into());
            r = with_header(r, "x-ratelimit-reset-after", format!("{seconds:.3}"));
            r = with_header(r, "x-ratelimit-bucket", "fake0bucket".into());
            with_header(r, "x-ratelimit-scope", "user".into())
        }
        FakeService::Slack => with_header(
            text(429, "rate_limited"),
            "retry-after",
            ceil_secs(wait).to_string(),
        ),
        FakeService::Telegram => {
            let n = ceil_secs(wait).max(1);
            json_response(
                429,
                json!({"ok": false, "error_code": 429,
                       "description": format!("Too Many Requests: retry after {n}"),
                       "parameters": {"retry_after": n}}),
            )
        }
        // ntfy sends no Retry-After.
        FakeService::Ntfy => json_response(
            429,
            json!({"code": 42901, "http": 429,
                   "error": "limit reached: too many requests, please be nice",
                   "link": "https://ntfy.sh/docs/publish/#limitations"}),
        ),
        FakeService::Pushover => {
            let reset = chrono::Utc::now().timestamp() + ceil_secs(wait) as i64;
            let mut r = json_response(
                429,
                json!({"status": 0, "errors": ["application is over its monthly message quota"],
                       "request": request_id(shared)}),
            );
            r = with_header(r, "x-limit-app-limit", "10000".into());
            r = with_header(r, "x-limit-app-remaining", "0".into());
            with_header(r, "x-limit-app-reset", reset.to_string())
        }
        FakeService::Gotify | FakeService::Webhook => with_header(
            text(429, "Too Many Requests"),
            "retry-after",
            ceil_secs(wait).to_string(),
        ),
    }
}

pub(super) fn request_id(shared: &Shared) -> String {
    let mut state = shared.lock();
    state.next_id += 1;
    format!("fake-{:08x}", state.next_id)
}

pub(super) fn server_error(service: FakeService, status: u16) -> Response<Body> {
    match service {
        FakeService::Telegram => json_response(
            status,
            json!({"ok": false, "error_code": status, "description": "Bad Gateway"}),
        ),
        FakeService::Ntfy => json_response(
            status,
            json!({"code": status as u64 * 100 + 1, "http": status, "error": "internal server error"}),
        ),
        FakeService::Gotify => json_response(
            status,
            json!({"error": "Internal Server Error", "errorCode": status, "errorDescription": "upstream failure"}),
        ),
        // Discord, Slack and Pushover sit behind proxies that answer HTML pages.
        _ => response(
            status,
            "text/html",
            format!("<html><head><title>{status}</title></head><body><h1>{status} Service Unavailable</h1></body></html>"),
        ),
    }
}

/// The service's answer to a request body over its cap.
pub(super) fn too_large(service: FakeService) -> Response<Body> {
    match service {
        FakeService::Discord => json_response(
            413,
            json!({"message": "Request entity too large", "code": 40005}),
        ),
        FakeService::Telegram => json_response(
            413,
            json!({"ok": false, "error_code": 413, "description": "Request Entity Too Large"}),
        ),
        FakeService::Ntfy => json_response(
            413,
            json!({"code": 41303, "http": 413, "error": "JSON body too large"}),
        ),
        FakeService::Gotify => json_response(
            413,
            json!({"error": "Request Entity Too Large", "errorCode": 413,
                   "errorDescription": "http: request body too large"}),
        ),
        // Slack, Pushover and self-hosted webhooks sit behind proxies that answer HTML pages.
        _ => response(
            413,
            "text/html",
            "<html><head><title>413 Request Entity Too Large</title></head><body><h1>413 Request Entity Too Large</h1></body></html>".to_string(),
        ),
    }
}

/// The answer of a scripted behaviour; `None` for those the request flow carries out itself.
pub(super) fn scripted_answer(
    shared: &Shared,
    incoming: &Incoming,
    behaviour: &Behaviour,
) -> Option<Response<Body>> {
    let service = incoming.service;
    let answer = match behaviour {
        Behaviour::RateLimit { retry_after } => rate_limited(shared, incoming, *retry_after),
        Behaviour::RetryAfterHeader(value) => {
            with_header(text(429, "Too Many Requests"), "retry-after", value.clone())
        }
        Behaviour::QuotaExceeded => match service {
            FakeService::Ntfy => json_response(
                429,
                json!({"code": 42908, "http": 429, "error": "limit reached: daily message quota reached",
                       "link": "https://ntfy.sh/docs/publish/#limitations"}),
            ),
            _ => rate_limited(shared, incoming, Duration::from_secs(3600)),
        },
        Behaviour::ServerError(status) => server_error(service, *status),
        Behaviour::TooLarge => too_large(service),
        Behaviour::NotFound => match service {
            FakeService::Discord => {
                json_response(404, json!({"message": "Unknown Webhook", "code": 10015}))
            }
            FakeService::Slack => text(404, "no_service"),
            FakeService::Telegram => json_response(
                404,
                json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            ),
            FakeService::Ntfy => json_response(
                404,
                json!({"code": 40401, "http": 404, "error": "page not found"}),
            ),
            FakeService::Gotify => json_response(
                404,
                json!({"error": "Not Found", "errorCode": 404, "errorDescription": "page not found"}),
            ),
            FakeService::Pushover | FakeService::Webhook => text(404, "Not Found"),
        },
        Behaviour::Forbidden => match service {
            FakeService::Discord => json_response(
                401,
                json!({"message": "Invalid Webhook Token", "code": 50027}),
            ),
            FakeService::Slack => text(403, "action_prohibited"),
            FakeService::Telegram => json_response(
                403,
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            ),
            FakeService::Ntfy => json_response(
                403,
                json!({"code": 40301, "http": 403, "error": "forbidden"}),
            ),
            FakeService::Pushover => json_response(
                400,
                json!({"token": "invalid", "errors": ["application token is invalid"], "status": 0,
                       "request": request_id(shared)}),
            ),
            FakeService::Gotify => json_response(
                401,
                json!({"error": "Unauthorized", "errorCode": 401,
                       "errorDescription": "you need to provide a valid access token or user credentials to access this api"}),
            ),
            FakeService::Webhook => text(403, "Forbidden"),
        },
        Behaviour::Migrate(new_id) => {
            if service == FakeService::Telegram {
                if let Some(chat) = serde_json::from_str::<Value>(&incoming.body)
                    .ok()
                    .map(|v| chat_key(&v["chat_id"]))
                {
                    shared.lock().migrated.insert(chat, *new_id);
                }
                migrate_answer(*new_id)
            } else {
                text(400, "Bad Request")
            }
        }
        Behaviour::Respond { status, body } => {
            let content_type = if body.trim_start().starts_with('{') {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            response(*status, content_type, body.clone())
        }
        // The request flow carries these out itself (a wait, a dropped connection).
        Behaviour::Hang(_) | Behaviour::Close => return None,
    };
    Some(answer)
}

pub(super) fn migrate_answer(new_id: i64) -> Response<Body> {
    json_response(
        400,
        json!({"ok": false, "error_code": 400,
               "description": "Bad Request: group chat was upgraded to a supergroup chat",
               "parameters": {"migrate_to_chat_id": new_id}}),
    )
}

pub(super) fn chat_key(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
