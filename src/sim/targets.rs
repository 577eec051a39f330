//! Fake notification services on 127.0.0.1 that answer like the real ones: Discord, Slack,
//! Telegram, ntfy, Pushover, Gotify and a generic JSON webhook, on their real paths.
//!
//! Owns payload validation with each service's real limits and error bodies, the record of
//! what was accepted (with receive times), scripted faults per path prefix (429 with the real
//! body and headers, 5xx, 404, 403, 413, Telegram migration, hangs, dropped connections),
//! request body caps per path prefix, outages,
//! and optional enforcement of each service's published rate limits. Used by tests, the
//! notifier actor's tests and benchmarks; it never talks to the outside world.
//!
//! Routing: `/api/webhooks/ID/TOKEN` Discord, `/services/A/B/C` Slack, `/botTOKEN/METHOD`
//! Telegram, `/1/messages.json` Pushover, `/message` Gotify, a one-segment path whose request
//! is not JSON ntfy (`/TOPIC`), anything else the generic webhook.

use axum::body::{Body, Bytes};
use base64::Engine;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Request bodies above this are refused with 413 (every real service has a cap).
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Which service a request was routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeService {
    Discord,
    Slack,
    Telegram,
    Ntfy,
    Pushover,
    Gotify,
    Webhook,
}

/// A scripted answer for the next requests on a path prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// HTTP 429 with the service's real body and headers.
    RateLimit { retry_after: Duration },
    /// A quota answer: ntfy 429 code 42908, Pushover 429 with `X-Limit-App-Remaining: 0`;
    /// other services answer as for `RateLimit` of one hour.
    QuotaExceeded,
    /// This status with the service's usual error body.
    ServerError(u16),
    /// The service's "does not exist" answer (Discord 10015 Unknown Webhook, Slack
    /// `no_service`, ...).
    NotFound,
    /// The service's "not allowed" answer (bad token, bot blocked, ...).
    Forbidden,
    /// Telegram: the group was upgraded to a supergroup with this id. Later messages to the
    /// old id get the same answer, as on the real service.
    Migrate(i64),
    /// Wait this long, then answer normally.
    Hang(Duration),
    /// Read the request, then drop the connection without an answer.
    Close,
    /// HTTP 413 with the service's "request too large" answer (Discord code 40005, ...).
    TooLarge,
    /// Any status and body.
    Respond { status: u16, body: String },
    /// HTTP 429 with exactly this `Retry-After` header (seconds or an HTTP date) and a plain
    /// text body.
    RetryAfterHeader(String),
}

/// An accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: FakeService,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case header names; the last value of repeated headers.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// Form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Every request, accepted or not: what was answered (status 0: connection dropped).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub service: FakeService,
    pub path: String,
    pub status: u16,
    pub at: Instant,
}

struct Script {
    prefix: String,
    /// Matching requests to let through before the behaviour starts.
    skip: usize,
    remaining: usize,
    behaviour: Behaviour,
}

/// A token bucket for `enforce_rate_limits`, kept apart from the client's own implementation
/// so the fake is an independent check of it.
struct Limiter {
    buckets: Vec<(f64, f64, f64, Instant)>, // capacity, refill per second, tokens, updated
}

impl Limiter {
    fn new(limits: &[(f64, f64)], now: Instant) -> Limiter {
        Limiter {
            buckets: limits.iter().map(|&(c, r)| (c, r, c, now)).collect(),
        }
    }

    /// Takes a token from each bucket, or returns how long until one is available.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        // 5% tolerance, like real services, so a client pacing exactly is not refused over
        // a millisecond of network jitter.
        let mut wait = Duration::ZERO;
        for bucket in &mut self.buckets {
            let elapsed = now.saturating_duration_since(bucket.3).as_secs_f64();
            bucket.2 = (bucket.2 + elapsed * bucket.1 * 1.05).min(bucket.0);
            bucket.3 = now;
            if bucket.2 < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - bucket.2) / bucket.1));
            }
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        for bucket in &mut self.buckets {
            bucket.2 -= 1.0;
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    attempts: Vec<Attempt>,
    violations: Vec<String>,
    scripts: Vec<Script>,
    down: Vec<String>,
    migrated: HashMap<String, i64>,
    enforce_limits: bool,
    limiters: HashMap<String, Limiter>,
    /// Per path prefix: bodies longer than this many bytes get the service's 413.
    body_limits: Vec<(String, usize)>,
    /// Recent accepted Discord requests per webhook, for the X-RateLimit-* headers.
    discord_recent: HashMap<String, Vec<Instant>>,
    pushover_sent: u32,
    next_id: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide what the fake recorded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake services. Dropping it stops the server and every open connection.
pub struct FakeServices {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeServices {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Outcome of handling one request.
enum Handled {
    Answer(Response<Body>),
    Close,
}

#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for CloseConnection {}

impl FakeServices {
    /// Starts the fake on 127.0.0.1 on a free port.
    pub async fn try_start() -> std::io::Result<FakeServices> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        });
        let server_shared = shared.clone();
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = server_shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move {
                            match handle(shared, request).await {
                                Handled::Answer(response) => Ok(response),
                                Handled::Close => Err(CloseConnection),
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FakeServices {
            addr,
            shared,
            server,
        })
    }

    /// Starts the fake; panics only if no loopback port can be bound (a broken test host).
    pub async fn start() -> FakeServices {
        Self::try_start()
            .await
            .expect("the fake notification services need a free port on 127.0.0.1")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the `?endpoint=` for every HTTP target.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every accepted message, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Accepted messages of one service.
    pub fn received_by(&self, service: FakeService) -> Vec<Received> {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.service == service)
            .cloned()
            .collect()
    }

    /// Every request with the status it got.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.lock().attempts.clone()
    }

    /// Size-limit and format violations a real service would reject or degrade (e.g. an ntfy
    /// body over 4096 bytes that becomes an attachment). Tests assert this stays empty.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// The next `n` requests whose path starts with `path_prefix` get `behaviour`.
    pub fn respond_next(&self, path_prefix: &str, n: usize, behaviour: Behaviour) {
        self.respond_after(path_prefix, 0, n, behaviour);
    }

    /// Lets `skip` requests on `path_prefix` through normally, then gives the next `n`
    /// `behaviour` (e.g. fail the second part of a split message).
    pub fn respond_after(&self, path_prefix: &str, skip: usize, n: usize, behaviour: Behaviour) {
        self.shared.lock().scripts.push(Script {
            prefix: path_prefix.to_string(),
            skip,
            remaining: n,
            behaviour,
        });
    }

    /// Requests on `path_prefix` whose body is longer than `max_bytes` get the service's 413
    /// answer ([`Behaviour::TooLarge`]); `None` lifts the limit. Every service caps request
    /// bodies somewhere; this puts the cap where a test needs it.
    pub fn set_body_limit(&self, path_prefix: &str, max_bytes: Option<usize>) {
        let mut state = self.shared.lock();
        state.body_limits.retain(|(p, _)| p != path_prefix);
        if let Some(max_bytes) = max_bytes {
            state.body_limits.push((path_prefix.to_string(), max_bytes));
        }
    }

    /// While down, requests on `path_prefix` get 503.
    pub fn set_down(&self, path_prefix: &str, down: bool) {
        let mut state = self.shared.lock();
        state.down.retain(|p| p != path_prefix);
        if down {
            state.down.push(path_prefix.to_string());
        }
    }

    /// Enforce each service's published rate limits (Discord 5 per 2 s and 30 per minute per
    /// webhook, Slack 1/s, Telegram 1/s and 20/min per chat, ntfy 60 then 1 per 5 s) with real
    /// 429 answers.
    pub fn enforce_rate_limits(&self, on: bool) {
        let mut state = self.shared.lock();
        state.enforce_limits = on;
        state.limiters.clear();
    }

    /// Forgets what was received, attempted and violated (scripts and outages stay).
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        state.received.clear();
        state.attempts.clear();
        state.violations.clear();
    }

    /// Waits until at least `count` messages were accepted; the error says how many came.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Result<Vec<Received>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            {
                let state = self.shared.lock();
                if state.received.len() >= count {
                    return Ok(state.received.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.shared.lock().received.len();
                return Err(format!(
                    "timed out after {timeout:?} waiting for {count} messages; {got} arrived"
                ));
            }
        }
    }
}

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

struct Incoming {
    service: FakeService,
    path: String,
    query: Option<String>,
    headers: BTreeMap<String, String>,
    body: String,
    at: Instant,
}

async fn handle(shared: Arc<Shared>, request: Request<hyper::body::Incoming>) -> Handled {
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
        Some(behaviour) => scripted_answer(&shared, &incoming, &behaviour),
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

fn record_attempt(shared: &Shared, service: FakeService, path: &str, status: u16, at: Instant) {
    shared.lock().attempts.push(Attempt {
        service,
        path: path.to_string(),
        status,
        at,
    });
    shared.changed.notify_waiters();
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

fn published_limits(service: FakeService) -> &'static [(f64, f64)] {
    match service {
        FakeService::Discord => &[(5.0, 2.5), (30.0, 0.5)],
        FakeService::Slack => &[(1.0, 1.0)],
        FakeService::Telegram => &[(1.0, 1.0), (20.0, 20.0 / 60.0)],
        FakeService::Ntfy => &[(60.0, 0.2)],
        FakeService::Pushover | FakeService::Gotify | FakeService::Webhook => &[],
    }
}

/// Which requests share a limit: the webhook for Discord and Slack, the chat for Telegram,
/// the topic for ntfy.
fn limit_key(incoming: &Incoming) -> Option<String> {
    match incoming.service {
        FakeService::Telegram => {
            let chat = serde_json::from_str::<Value>(&incoming.body)
                .ok()
                .map(|v| v["chat_id"].to_string())
                .unwrap_or_default();
            Some(format!("telegram:{chat}"))
        }
        FakeService::Discord | FakeService::Slack | FakeService::Ntfy => {
            Some(incoming.path.clone())
        }
        _ => None,
    }
}

fn accept(shared: &Shared, incoming: &Incoming) -> u64 {
    let mut state = shared.lock();
    state.next_id += 1;
    let id = state.next_id;
    state.received.push(Received {
        service: incoming.service,
        path: incoming.path.clone(),
        query: incoming.query.clone(),
        headers: incoming.headers.clone(),
        body: incoming.body.clone(),
        at: incoming.at,
    });
    drop(state);
    shared.changed.notify_waiters();
    id
}

fn violation(shared: &Shared, text: String) {
    shared.lock().violations.push(text);
}

fn response(status: u16, content_type: &str, body: String) -> Response<Body> {
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

fn text(status: u16, body: &str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body.to_string())
}

fn json_response(status: u16, body: Value) -> Response<Body> {
    response(status, "application/json", body.to_string())
}

fn with_header(mut response: Response<Body>, name: &'static str, value: String) -> Response<Body> {
    if let Ok(value) = value.parse() {
        response.headers_mut().insert(name, value);
    }
    response
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The service's real 429.
fn rate_limited(shared: &Shared, incoming: &Incoming, wait: Duration) -> Response<Body> {
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

fn request_id(shared: &Shared) -> String {
    let mut state = shared.lock();
    state.next_id += 1;
    format!("fake-{:08x}", state.next_id)
}

fn server_error(service: FakeService, status: u16) -> Response<Body> {
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
fn too_large(service: FakeService) -> Response<Body> {
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

fn scripted_answer(shared: &Shared, incoming: &Incoming, behaviour: &Behaviour) -> Response<Body> {
    let service = incoming.service;
    match behaviour {
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
        Behaviour::Hang(_) | Behaviour::Close => normal(shared, incoming),
    }
}

fn migrate_answer(new_id: i64) -> Response<Body> {
    json_response(
        400,
        json!({"ok": false, "error_code": 400,
               "description": "Bad Request: group chat was upgraded to a supergroup chat",
               "parameters": {"migrate_to_chat_id": new_id}}),
    )
}

fn chat_key(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---- Discord ---------------------------------------------------------------------------------

fn discord_error(shared: &Shared, field: &str, message: String) -> Response<Body> {
    violation(shared, format!("discord: {field}: {message}"));
    json_response(
        400,
        json!({"message": "Invalid Form Body", "code": 50035,
               "errors": {field: {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": message}]}}}),
    )
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn discord(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return json_response(
            400,
            json!({"message": "The request body contains invalid JSON.", "code": 50109}),
        );
    };
    let content = chars(&body["content"]);
    if content > 2000 {
        return discord_error(
            shared,
            "content",
            format!("Must be 2000 or fewer in length (got {content})."),
        );
    }
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    if content == 0 && embeds.is_empty() {
        return json_response(
            400,
            json!({"message": "Cannot send an empty message", "code": 50006}),
        );
    }
    if embeds.len() > 10 {
        return discord_error(shared, "embeds", "Must be 10 or fewer in length.".into());
    }
    let mut total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        let limits = [
            ("title", chars(&embed["title"]), 256),
            ("description", chars(&embed["description"]), 4096),
            ("footer.text", chars(&embed["footer"]["text"]), 2048),
            ("author.name", chars(&embed["author"]["name"]), 256),
        ];
        for (name, len, max) in limits {
            if len > max {
                return discord_error(
                    shared,
                    &format!("embeds.{i}.{name}"),
                    format!("Must be {max} or fewer in length (got {len})."),
                );
            }
            total += len;
        }
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        if fields.len() > 25 {
            return discord_error(
                shared,
                &format!("embeds.{i}.fields"),
                "Must be 25 or fewer in length.".into(),
            );
        }
        for (j, field) in fields.iter().enumerate() {
            let (name, value) = (chars(&field["name"]), chars(&field["value"]));
            if name == 0 || name > 256 || value == 0 || value > 1024 {
                return discord_error(
                    shared,
                    &format!("embeds.{i}.fields.{j}"),
                    "Field name must be 1-256 and value 1-1024 characters.".into(),
                );
            }
            total += name + value;
        }
    }
    if total > 6000 {
        return discord_error(
            shared,
            "embeds",
            format!("Embed size exceeds maximum size of 6000 (got {total})."),
        );
    }
    let id = accept(shared, incoming);
    let (remaining, reset_after) = {
        let mut state = shared.lock();
        let recent = state
            .discord_recent
            .entry(incoming.path.clone())
            .or_default();
        recent.retain(|t| incoming.at.saturating_duration_since(*t) < Duration::from_secs(2));
        recent.push(incoming.at);
        let oldest = recent.first().copied().unwrap_or(incoming.at);
        let reset =
            Duration::from_secs(2).saturating_sub(incoming.at.saturating_duration_since(oldest));
        (5usize.saturating_sub(recent.len()), reset)
    };
    let wait = incoming
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "wait=true"));
    let mut r = if wait {
        json_response(
            200,
            json!({"id": format!("{}", 1_300_000_000_000_000_000u64 + id), "type": 0,
                   "channel_id": "1100000000000000000", "content": body["content"].as_str().unwrap_or(""),
                   "embeds": embeds}),
        )
    } else {
        response(204, "text/plain", String::new())
    };
    r = with_header(r, "x-ratelimit-limit", "5".into());
    r = with_header(r, "x-ratelimit-remaining", remaining.to_string());
    r = with_header(
        r,
        "x-ratelimit-reset-after",
        format!("{:.3}", reset_after.as_secs_f64()),
    );
    with_header(r, "x-ratelimit-bucket", "fake0bucket".into())
}

// ---- Slack -----------------------------------------------------------------------------------

fn slack(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return text(400, "invalid_payload");
    };
    let text_len = chars(&body["text"]);
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    if text_len == 0 && blocks.is_empty() {
        return text(400, "no_text");
    }
    if blocks.len() > 50 {
        violation(shared, format!("slack: {} blocks (max 50)", blocks.len()));
        return text(400, "invalid_blocks");
    }
    for block in &blocks {
        let kind = block["type"].as_str().unwrap_or("");
        let len = chars(&block["text"]["text"]);
        let max = match kind {
            "header" => 150,
            "section" => 3000,
            "context" => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.len() > 10 || elements.iter().any(|e| chars(&e["text"]) > 3000) {
                    violation(shared, "slack: context block too large".into());
                    return text(400, "invalid_blocks");
                }
                continue;
            }
            _ => 3000,
        };
        if len > max {
            violation(
                shared,
                format!("slack: {kind} text of {len} characters (max {max})"),
            );
            return text(400, "invalid_blocks");
        }
    }
    if text_len > 40_000 {
        // Slack accepts and truncates; a client that relies on that loses text silently.
        violation(
            shared,
            format!("slack: text of {text_len} characters truncated by Slack"),
        );
    }
    accept(shared, incoming);
    text(200, "ok")
}

// ---- Telegram --------------------------------------------------------------------------------

fn telegram_bad(description: String) -> Response<Body> {
    json_response(
        400,
        json!({"ok": false, "error_code": 400, "description": description}),
    )
}

/// Parses Telegram's HTML subset; returns the visible text or Telegram's error description.
fn telegram_html(html: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "blockquote",
    ];
    let mut visible = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        let offset = html.len() - rest.len();
        match c {
            '<' => {
                let end = rest.find('>').ok_or_else(|| {
                    format!("Bad Request: can't parse entities: Unclosed start tag at byte offset {offset}")
                })?;
                let inner = &rest[1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match open.pop() {
                        Some(top) if top == name => {}
                        _ => {
                            return Err(format!(
                                "Bad Request: can't parse entities: Unmatched end tag at byte offset {offset}, expected \"</{}>\", found \"</{name}>\"",
                                open.last().cloned().unwrap_or_default()
                            ))
                        }
                    }
                } else {
                    let name = inner
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Bad Request: can't parse entities: Unsupported start tag \"{name}\" at byte offset {offset}"
                        ));
                    }
                    open.push(name);
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').filter(|&e| e <= 10).ok_or_else(|| {
                    format!("Bad Request: can't parse entities: Character entity expected at byte offset {offset}")
                })?;
                let entity = &rest[1..end];
                let decoded = match entity {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                        .ok()
                        .and_then(char::from_u32),
                    e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                    _ => None,
                };
                let decoded = decoded.ok_or_else(|| {
                    format!("Bad Request: can't parse entities: Unsupported HTML entity at byte offset {offset}")
                })?;
                visible.push(decoded);
                rest = &rest[end + 1..];
            }
            c => {
                visible.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(tag) = open.pop() {
        return Err(format!(
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
        ));
    }
    Ok(visible)
}

fn telegram(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let method = incoming.path.rsplit('/').next().unwrap_or("");
    if method != "sendMessage" {
        return json_response(
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return telegram_bad("Bad Request: invalid JSON".into());
    };
    let chat = chat_key(&body["chat_id"]);
    if chat.is_empty() || chat == "null" {
        return telegram_bad("Bad Request: chat_id is empty".into());
    }
    if let Some(&new_id) = shared.lock().migrated.get(&chat) {
        return migrate_answer(new_id);
    }
    let Some(text) = body["text"].as_str().filter(|t| !t.trim().is_empty()) else {
        return telegram_bad("Bad Request: message text is empty".into());
    };
    let visible = if body["parse_mode"].as_str() == Some("HTML") {
        match telegram_html(text) {
            Ok(visible) => visible,
            Err(description) => {
                violation(shared, format!("telegram: {description}"));
                return telegram_bad(description);
            }
        }
    } else {
        text.to_string()
    };
    let length = visible.encode_utf16().count();
    if length > 4096 {
        violation(
            shared,
            format!("telegram: message of {length} characters (max 4096)"),
        );
        return telegram_bad("Bad Request: message is too long".into());
    }
    let id = accept(shared, incoming);
    json_response(
        200,
        json!({"ok": true, "result": {"message_id": id, "date": chrono::Utc::now().timestamp(),
               "chat": {"id": body["chat_id"].clone(), "type": "supergroup"}, "text": visible}}),
    )
}

// ---- ntfy ------------------------------------------------------------------------------------

/// Decodes an RFC 2047 `=?UTF-8?B?…?=` header the way ntfy does; other values as they are.
fn decode_header(value: &str) -> String {
    let v = value.trim();
    if let Some(inner) = v
        .strip_prefix("=?UTF-8?B?")
        .or_else(|| v.strip_prefix("=?utf-8?b?"))
        .and_then(|s| s.strip_suffix("?="))
    {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(inner) {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    v.to_string()
}

fn ntfy(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let header = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| incoming.headers.get(*n))
            .map(|v| decode_header(v))
    };
    let priority = match header(&["x-priority", "priority", "prio", "p"]).as_deref() {
        None | Some("") => 3,
        Some("1" | "min") => 1,
        Some("2" | "low") => 2,
        Some("3" | "default") => 3,
        Some("4" | "high") => 4,
        Some("5" | "max" | "urgent") => 5,
        Some(_) => {
            violation(shared, "ntfy: invalid priority".into());
            return json_response(
                400,
                json!({"code": 40007, "http": 400, "error": "invalid priority",
                       "link": "https://ntfy.sh/docs/publish/#message-priority"}),
            );
        }
    };
    let title = header(&["x-title", "title", "ti", "t"]).unwrap_or_default();
    let tags: Vec<String> = header(&["x-tags", "tags", "tag", "ta"])
        .unwrap_or_default()
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let topic = incoming.path.trim_start_matches('/').to_string();
    let bytes = incoming.body.len();
    let id = accept(shared, incoming);
    let mut answer = json!({"id": format!("fake{id:08}"), "time": chrono::Utc::now().timestamp(),
                            "event": "message", "topic": topic, "title": title, "priority": priority,
                            "tags": tags, "message": incoming.body});
    if bytes > 4096 {
        violation(
            shared,
            format!("ntfy: body of {bytes} bytes became an attachment (max 4096)"),
        );
        answer["message"] = json!("You received a file: attachment.txt");
        answer["attachment"] = json!({"name": "attachment.txt", "size": bytes});
    }
    json_response(200, answer)
}

// ---- Pushover --------------------------------------------------------------------------------

fn pushover(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(incoming.body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let request = request_id(shared);
    let bad = |key: &str, value: &str, error: &str| {
        let mut body = json!({"errors": [error], "status": 0, "request": request});
        body[key] = json!(value);
        json_response(400, body)
    };
    let answer = if field("token").is_empty() {
        bad("token", "invalid", "application token is invalid")
    } else if field("user").is_empty() {
        bad(
            "user",
            "invalid",
            "user identifier is not a valid user, group, or subscribed user key",
        )
    } else if field("message").trim().is_empty() {
        bad("message", "cannot be blank", "message cannot be blank")
    } else if field("message").chars().count() > 1024 {
        violation(
            shared,
            format!(
                "pushover: message of {} characters (max 1024)",
                field("message").chars().count()
            ),
        );
        bad(
            "message",
            "is too long",
            "message cannot be longer than 1024 characters",
        )
    } else if field("title").chars().count() > 250 {
        violation(shared, "pushover: title over 250 characters".into());
        bad(
            "title",
            "is too long",
            "title cannot be longer than 250 characters",
        )
    } else if !matches!(field("priority"), "" | "-2" | "-1" | "0" | "1" | "2") {
        bad("priority", "is invalid", "priority is invalid")
    } else {
        accept(shared, incoming);
        shared.lock().pushover_sent += 1;
        json_response(200, json!({"status": 1, "request": request}))
    };
    let remaining = 10_000u32.saturating_sub(shared.lock().pushover_sent);
    let reset = chrono::Utc::now().timestamp() + 30 * 86_400;
    let answer = with_header(answer, "x-limit-app-limit", "10000".into());
    let answer = with_header(answer, "x-limit-app-remaining", remaining.to_string());
    with_header(answer, "x-limit-app-reset", reset.to_string())
}

// ---- Gotify ----------------------------------------------------------------------------------

fn gotify(shared: &Shared, incoming: &Incoming) -> Response<Body> {
    let token_in_query = incoming
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("token=") && p.len() > 6));
    let has_key = incoming
        .headers
        .get("x-gotify-key")
        .is_some_and(|k| !k.is_empty());
    if !has_key && !token_in_query {
        return json_response(
            401,
            json!({"error": "Unauthorized", "errorCode": 401,
                   "errorDescription": "you need to provide a valid access token or user credentials to access this api"}),
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&incoming.body) else {
        return json_response(
            400,
            json!({"error": "Bad Request", "errorCode": 400, "errorDescription": "invalid JSON"}),
        );
    };
    if body["message"].as_str().is_none_or(str::is_empty) {
        return json_response(
            400,
            json!({"error": "Bad Request", "errorCode": 400,
                   "errorDescription": "Field 'message' is required"}),
        );
    }
    let id = accept(shared, incoming);
    json_response(
        200,
        json!({"id": id, "appid": 1, "message": body["message"], "title": body["title"],
               "priority": body["priority"], "date": chrono::Utc::now().to_rfc3339()}),
    )
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

    #[test]
    fn telegram_html_is_parsed_like_telegram() {
        assert_eq!(
            telegram_html("<b>a &amp; b</b> &lt;x&gt;").unwrap(),
            "a & b <x>"
        );
        assert!(telegram_html("a < b").is_err());
        assert!(telegram_html("<x>y</x>")
            .unwrap_err()
            .contains("Unsupported start tag"));
        assert!(telegram_html("a & b").unwrap_err().contains("entity"));
        assert!(telegram_html("<b>open").unwrap_err().contains("end tag"));
        assert!(telegram_html("<b><i>x</b></i>").is_err());
    }

    #[test]
    fn limiter_refuses_then_recovers() {
        let now = Instant::now();
        let mut limiter = Limiter::new(&[(2.0, 1.0)], now);
        assert!(limiter.take(now).is_ok());
        assert!(limiter.take(now).is_ok());
        let wait = limiter.take(now).unwrap_err();
        assert!(limiter.take(now + wait).is_ok());
    }
}
