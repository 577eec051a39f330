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
//!
//! - `request`: one request from arrival to answer: routing to a service, method and body cap,
//!   scripted behaviours, outages, rate limits, then the service's validation.
//! - `limits`: each service's published rate limits, enforced when asked.
//! - `services`: what each service accepts, and its answer when it refuses.
//! - `answers`: the answers shared by every service (429, 5xx, 413, scripted ones).

mod answers;
mod limits;
mod request;
mod services;

use axum::body::Body;
use hyper::Response;
use hyper_util::rt::TokioIo;
use limits::Limiter;
use request::handle;
use serde_json::Value;
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

pub(super) struct Script {
    prefix: String,
    /// Matching requests to let through before the behaviour starts.
    skip: usize,
    remaining: usize,
    behaviour: Behaviour,
}

#[derive(Default)]
pub(super) struct State {
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

pub(super) struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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
pub(super) enum Handled {
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

pub(super) struct Incoming {
    service: FakeService,
    path: String,
    query: Option<String>,
    headers: BTreeMap<String, String>,
    body: String,
    at: Instant,
}

pub(super) fn record_attempt(
    shared: &Shared,
    service: FakeService,
    path: &str,
    status: u16,
    at: Instant,
) {
    shared.lock().attempts.push(Attempt {
        service,
        path: path.to_string(),
        status,
        at,
    });
    shared.changed.notify_waiters();
}

pub(super) fn accept(shared: &Shared, incoming: &Incoming) -> u64 {
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

pub(super) fn violation(shared: &Shared, text: String) {
    shared.lock().violations.push(text);
}
