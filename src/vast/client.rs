//! The HTTP client of one Vast account: builds requests (bearer auth only), paces them per
//! endpoint, retries transient failures with jittered exponential backoff and turns every answer
//! into a typed row or a typed [`VastError`].
//!
//! The key travels only in the `Authorization` header (marked sensitive), never in a URL; log
//! lines carry the endpoint and the URL path only; error texts are redacted (see `errors`).

use super::errors::{body_snippet, redact_text, VastError, LOGS_NOT_READY};
use super::model::{Earnings, Instance, Machine, User};
use super::pacing::{backoff_delay, Endpoint, Pacer};
use crate::util::{format_duration, Secret};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;
use url::Url;

/// Result of every client call.
pub type VastResult<T> = Result<T, VastError>;

/// Page size of `GET /api/v1/instances/` (Vast caps it at 25).
pub const INSTANCES_PAGE_LIMIT: u32 = 25;
const ORDER_BY_ID_ASC: &str = r#"[{"col":"id","dir":"asc"}]"#;
/// Bound on v1 pages per listing, so a server that keeps returning tokens cannot loop us forever.
const MAX_PAGES: usize = 10_000;
/// The largest response body read (a machine list of thousands of machines is a few MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Timeouts, retries and pacing of a client. `Default` gives production values; tests use
/// milliseconds.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP (and TLS) connect timeout of the shared HTTP client.
    pub connect_timeout: Duration,
    /// Whole-request timeout (headers and body) of one attempt.
    pub request_timeout: Duration,
    /// Attempts per call, including the first (at least 1).
    pub max_attempts: u32,
    /// First retry waits about this long; each further retry doubles it.
    pub backoff_base: Duration,
    /// No retry waits longer than this.
    pub backoff_cap: Duration,
    /// Minimum time between two requests of this client to the same endpoint.
    pub min_spacing: Duration,
    /// Per-endpoint exceptions to `min_spacing`.
    pub endpoint_spacing: HashMap<Endpoint, Duration>,
    /// Interval between polls of a log `result_url`.
    pub log_poll_interval: Duration,
    /// How long a requested log may take to appear before the call gives up.
    pub log_wait: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(60),
            min_spacing: Duration::from_secs(2),
            // The log download is storage, not the Vast API; its own poll interval spaces it.
            endpoint_spacing: HashMap::from([(Endpoint::LogResult, Duration::ZERO)]),
            log_poll_interval: Duration::from_millis(300),
            log_wait: Duration::from_secs(10),
        }
    }
}

impl ClientOptions {
    /// The same behaviour with every delay scaled to a short poll interval (the demo, tests and
    /// benchmarks against the simulator): spacing and first backoff a quarter of the poll, the
    /// backoff cap two polls, the request timeout ten polls (within the default limits).
    pub fn for_short_polls(poll: Duration) -> ClientOptions {
        let d = ClientOptions::default();
        ClientOptions {
            request_timeout: (poll * 10).clamp(Duration::from_secs(2), d.request_timeout),
            backoff_base: (poll / 4).min(d.backoff_base),
            backoff_cap: (poll * 2).min(d.backoff_cap),
            min_spacing: (poll / 4).min(d.min_spacing),
            ..d
        }
    }

    /// The spacing that applies to `endpoint`.
    pub fn spacing(&self, endpoint: Endpoint) -> Duration {
        self.endpoint_spacing
            .get(&endpoint)
            .copied()
            .unwrap_or(self.min_spacing)
    }
}

/// The one pooled HTTP client every account's [`VastClient`] shares.
///
/// # Panics
/// Only if the TLS backend cannot initialise, exactly like `reqwest::Client::new`.
pub fn shared_http_client(opts: &ClientOptions) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .user_agent(concat!("vast-supervisor/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .build()
        .expect("initialising the HTTP client's TLS backend")
}

/// The client of one Vast account. Cheap to clone: clones share the pacing table and counters,
/// so all users of one account stay within its per-endpoint budget.
#[derive(Clone)]
pub struct VastClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_url: Url,
    key: Secret,
    /// `None` when the key cannot be sent in a header (control characters).
    auth: Option<HeaderValue>,
    opts: ClientOptions,
    pacer: Pacer,
}

impl fmt::Debug for VastClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VastClient")
            .field("api_url", &self.inner.api_url.as_str())
            .field("key", &self.inner.key)
            .finish()
    }
}

impl VastClient {
    /// A client for one account. Any query string or fragment on `api_url` is dropped, so a
    /// legacy `?api_key=` there can never be sent or logged.
    pub fn new(
        http: reqwest::Client,
        api_url: Url,
        key: Secret,
        opts: ClientOptions,
    ) -> VastClient {
        let mut api_url = api_url;
        api_url.set_query(None);
        api_url.set_fragment(None);
        let key = Secret::new(key.expose().trim());
        let auth = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        let pacer = Pacer::new(opts.min_spacing, &opts.endpoint_spacing);
        VastClient {
            inner: Arc::new(Inner {
                http,
                api_url,
                key,
                auth,
                opts,
                pacer,
            }),
        }
    }

    pub fn api_url(&self) -> &Url {
        &self.inner.api_url
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Requests sent to `endpoint` so far (every attempt counts), for politeness metrics.
    pub fn request_count(&self, endpoint: Endpoint) -> u64 {
        self.inner.pacer.count(endpoint)
    }

    /// `request_count` of every endpoint.
    pub fn request_counts(&self) -> Vec<(Endpoint, u64)> {
        Endpoint::ALL
            .iter()
            .map(|e| (*e, self.request_count(*e)))
            .collect()
    }

    /// Every machine of the account (`GET /api/v0/machines/?owner=me`; not paginated).
    pub async fn machines(&self) -> VastResult<Vec<Machine>> {
        let secret = self.secret();
        self.call(
            Endpoint::Machines,
            Method::GET,
            "/api/v0/machines/",
            &[("owner", "me".into())],
            None,
            |body| {
                let list: MachinesBody = decode_json(body, secret)?;
                fail_if_unsuccessful(&ApiStatus::of(list.success, list.error, list.msg), secret)?;
                match list.machines {
                    Some(machines) => Ok(machines.unwrap_or_default()),
                    None => Err(missing_field("machines", body, secret)),
                }
            },
        )
        .await
    }

    /// One machine (`GET /api/v0/machines/{id}/?owner=me`). Vast answers a bare one-element list;
    /// an object is accepted too. `[]`, `null` or a 404 mean "not found or not yours": `None`.
    pub async fn machine(&self, id: u64) -> VastResult<Option<Machine>> {
        let secret = self.secret();
        let result = self
            .call(
                Endpoint::Machine,
                Method::GET,
                &format!("/api/v0/machines/{id}/"),
                &[("owner", "me".into())],
                None,
                |body| {
                    let row = machine_from_detail(decode_json(body, secret)?, body, secret)?;
                    if let Some(row) = &row {
                        check_lookup_id("machine", id, row.key(), body, secret)?;
                    }
                    Ok(row)
                },
            )
            .await;
        none_if_not_found(result)
    }

    /// Every instance of the account through the v1 keyset pages (limit 25, id ascending).
    /// Rows seen twice while pages shift are kept once. An expired `after_token` (400
    /// `invalid_token`) restarts the listing from the first page, once.
    pub async fn instances(&self) -> VastResult<Vec<Instance>> {
        let mut restarted = false;
        'listing: loop {
            let mut rows = Vec::new();
            let mut seen = HashSet::new();
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let mut query = vec![
                    ("limit", INSTANCES_PAGE_LIMIT.to_string()),
                    ("order_by", ORDER_BY_ID_ASC.to_string()),
                ];
                if let Some(t) = &token {
                    query.push(("after_token", t.clone()));
                }
                let page = match self.instances_page(&query).await {
                    Ok(page) => page,
                    Err(VastError::Api { error, .. })
                        if error == "invalid_token" && token.is_some() && !restarted =>
                    {
                        debug!(endpoint = "instances", "page token expired, restarting");
                        restarted = true;
                        continue 'listing;
                    }
                    Err(e) => return Err(e),
                };
                let page_len = page.rows.len();
                for row in page.rows {
                    if let Some(id) = row.id {
                        if !seen.insert(id) {
                            continue;
                        }
                    }
                    rows.push(row);
                }
                match page.next_token {
                    Some(next) if page_len > 0 && token.as_deref() != Some(next.as_str()) => {
                        token = Some(next)
                    }
                    _ => return Ok(rows),
                }
            }
            return Err(VastError::Decode {
                detail: format!("instance listing did not end after {MAX_PAGES} pages"),
            });
        }
    }

    async fn instances_page(&self, query: &[(&str, String)]) -> VastResult<InstancesPage> {
        let secret = self.secret();
        self.call(
            Endpoint::Instances,
            Method::GET,
            "/api/v1/instances/",
            query,
            None,
            |body| {
                let page: InstancesBody = decode_json(body, secret)?;
                fail_if_unsuccessful(&ApiStatus::of(page.success, page.error, page.msg), secret)?;
                let rows = match page.instances {
                    Some(rows) => rows.unwrap_or_default(),
                    None => return Err(missing_field("instances", body, secret)),
                };
                let next_token = match page.next_token {
                    Some(Value::String(s)) if !s.is_empty() => Some(s),
                    _ => None,
                };
                Ok(InstancesPage { rows, next_token })
            },
        )
        .await
    }

    /// Every instance through the deprecated v0 list (`GET /api/v0/instances/?owner=me`).
    pub async fn instances_v0(&self) -> VastResult<Vec<Instance>> {
        let secret = self.secret();
        self.call(
            Endpoint::Instances,
            Method::GET,
            "/api/v0/instances/",
            &[("owner", "me".into())],
            None,
            |body| {
                let list: InstancesBody = decode_json(body, secret)?;
                fail_if_unsuccessful(&ApiStatus::of(list.success, list.error, list.msg), secret)?;
                match list.instances {
                    Some(rows) => Ok(rows.unwrap_or_default()),
                    None => Err(missing_field("instances", body, secret)),
                }
            },
        )
        .await
    }

    /// One instance (`GET /api/v0/instances/{id}/?owner=me`). Vast answers HTTP 200
    /// `{"instances": null}` for a destroyed or unknown instance: `None` (a 404 too).
    pub async fn instance(&self, id: u64) -> VastResult<Option<Instance>> {
        let secret = self.secret();
        let result = self
            .call(
                Endpoint::Instance,
                Method::GET,
                &format!("/api/v0/instances/{id}/"),
                &[("owner", "me".into())],
                None,
                |body| {
                    let value: Value = decode_json(body, secret)?;
                    fail_if_unsuccessful_value(&value, secret)?;
                    let Value::Object(mut map) = value else {
                        return Err(unexpected_shape("an object", body, secret));
                    };
                    let row = match map.remove("instances") {
                        None => return Err(missing_field("instances", body, secret)),
                        Some(Value::Null) => return Ok(None),
                        Some(Value::Array(items)) => match items.into_iter().next() {
                            Some(row) => row,
                            None => return Ok(None),
                        },
                        Some(row) => row,
                    };
                    let row = Instance::deserialize(row)
                        .map_err(|e| decode_error(&e.to_string(), false, body, secret))?;
                    check_lookup_id("instance", id, row.id, body, secret)?;
                    Ok(Some(row))
                },
            )
            .await;
        none_if_not_found(result)
    }

    /// The account's user record (`GET /api/v0/users/current/`). Its `api_key` field is dropped
    /// while decoding and never logged.
    pub async fn current_user(&self) -> VastResult<User> {
        let secret = self.secret();
        self.call(
            Endpoint::User,
            Method::GET,
            "/api/v0/users/current/",
            &[],
            None,
            |body| {
                // No body snippet in these errors: this body carries the account's key.
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| decode_error(&e.to_string(), e.is_eof(), b"", ""))?;
                fail_if_unsuccessful_value(&value, secret)?;
                User::deserialize(value).map_err(|e| decode_error(&e.to_string(), false, b"", ""))
            },
        )
        .await
    }

    /// Earnings per machine between two days (`sday`/`eday` are fractional days since the Unix
    /// epoch, i.e. epoch seconds / 86400).
    pub async fn machine_earnings(&self, sday: f64, eday: f64) -> VastResult<Earnings> {
        let secret = self.secret();
        self.call(
            Endpoint::Earnings,
            Method::GET,
            "/api/v0/users/me/machine-earnings/",
            &[
                ("owner", "me".into()),
                ("sday", sday.to_string()),
                ("eday", eday.to_string()),
                ("machid", "null".into()),
            ],
            None,
            |body| {
                let value: Value = decode_json(body, secret)?;
                fail_if_unsuccessful_value(&value, secret)?;
                Earnings::deserialize(value)
                    .map_err(|e| decode_error(&e.to_string(), false, body, secret))
            },
        )
        .await
    }

    /// The last `tail` lines of an instance's log, through Vast's two steps: `PUT
    /// request_logs`, then polling the returned `result_url` (storage, so WITHOUT the Vast auth
    /// header) until it stops answering 403/404. Gives up after `log_wait` with
    /// `Api { error: "logs_not_ready" }` (the instance may be offline).
    pub async fn request_logs(&self, id: u64, tail: u32) -> VastResult<String> {
        let secret = self.secret();
        let body = json!({ "tail": tail.to_string() });
        let result_url = self
            .call(
                Endpoint::RequestLogs,
                Method::PUT,
                &format!("/api/v0/instances/request_logs/{id}/"),
                &[],
                Some(&body),
                |body| {
                    let value: Value = decode_json(body, secret)?;
                    fail_if_unsuccessful_value(&value, secret)?;
                    let url = value
                        .get("result_url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| missing_field("result_url", body, secret))?;
                    Url::parse(url).map_err(|e| VastError::Decode {
                        detail: format!("result_url is not a URL ({e})"),
                    })
                },
            )
            .await?;
        self.fetch_log_result(result_url).await
    }

    async fn fetch_log_result(&self, url: Url) -> VastResult<String> {
        let opts = &self.inner.opts;
        let deadline = Instant::now() + opts.log_wait;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.inner.pacer.wait_turn(Endpoint::LogResult).await;
            // The query of a storage URL may carry a signature: log host and path only.
            debug!(
                endpoint = "log_result",
                host = url.host_str().unwrap_or(""),
                path = url.path(),
                attempt,
                "polling log result"
            );
            let sent = self
                .inner
                .http
                .get(url.clone())
                .timeout(opts.request_timeout)
                .send()
                .await;
            let last = match sent {
                Ok(resp) if resp.status().is_success() => {
                    let bytes = read_capped(resp, self.secret()).await?;
                    return Ok(String::from_utf8_lossy(&bytes).into_owned());
                }
                Ok(resp) => match resp.status().as_u16() {
                    403 | 404 => VastError::NotFound,
                    429 => VastError::RateLimited {
                        body_snippet: "(log storage)".into(),
                    },
                    status @ 500..=599 => VastError::Upstream { status },
                    status => return Err(VastError::Upstream { status }),
                },
                Err(e) => transport_error(e, self.secret()),
            };
            if Instant::now() + opts.log_poll_interval >= deadline {
                debug!(endpoint = "log_result", error = %last, "giving up on log result");
                return Err(VastError::Api {
                    error: LOGS_NOT_READY.into(),
                    msg: format!(
                        "the requested log did not become available within {} (is the instance offline?)",
                        format_duration(opts.log_wait)
                    ),
                });
            }
            tokio::time::sleep(opts.log_poll_interval).await;
        }
    }

    /// Asks Vast to stop an instance (`PUT /api/v0/instances/{id}/ {"state": "stopped"}`).
    pub async fn stop_instance(&self, id: u64) -> VastResult<()> {
        self.write_instance(Method::PUT, id, json!({ "state": "stopped" }))
            .await
    }

    /// Asks Vast to start an instance (`PUT /api/v0/instances/{id}/ {"state": "running"}`).
    pub async fn start_instance(&self, id: u64) -> VastResult<()> {
        self.write_instance(Method::PUT, id, json!({ "state": "running" }))
            .await
    }

    /// Destroys an instance and its data (`DELETE /api/v0/instances/{id}/`).
    pub async fn destroy_instance(&self, id: u64) -> VastResult<()> {
        self.write_instance(Method::DELETE, id, json!({})).await
    }

    async fn write_instance(&self, method: Method, id: u64, body: Value) -> VastResult<()> {
        let secret = self.secret();
        self.call(
            Endpoint::InstanceWrite,
            method,
            &format!("/api/v0/instances/{id}/"),
            &[],
            Some(&body),
            |body| {
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(());
                }
                let value: Value = decode_json(body, secret)?;
                fail_if_unsuccessful_value(&value, secret)
            },
        )
        .await
    }

    fn secret(&self) -> &str {
        self.inner.key.expose()
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.inner.api_url.clone();
        let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// One logical call: pace, send, classify, decode; retried on transient failures.
    async fn call<T>(
        &self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        decode: impl Fn(&[u8]) -> VastResult<T>,
    ) -> VastResult<T> {
        let opts = &self.inner.opts;
        let url = self.url(path, query);
        let max_attempts = opts.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.inner.pacer.wait_turn(endpoint).await;
            debug!(
                endpoint = endpoint.label(),
                method = %method,
                path = url.path(),
                attempt,
                "vast request"
            );
            let result = match self.send_once(&method, &url, body).await {
                Ok(bytes) => decode(&bytes),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retryable() && attempt < max_attempts => {
                    let delay = backoff_delay(attempt, opts.backoff_base, opts.backoff_cap);
                    debug!(
                        endpoint = endpoint.label(),
                        attempt,
                        error = %e,
                        delay_ms = delay.as_millis() as u64,
                        "vast request failed, retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    debug!(endpoint = endpoint.label(), attempt, error = %e, "vast request failed");
                    return Err(e);
                }
                Ok(v) => return Ok(v),
            }
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> VastResult<bytes::Bytes> {
        let secret = self.secret();
        let Some(auth) = self.inner.auth.clone() else {
            return Err(VastError::Api {
                error: "invalid_key".into(),
                msg: "the API key contains characters that cannot be sent in an HTTP header".into(),
            });
        };
        let mut request = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json")
            .timeout(self.inner.opts.request_timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(e, secret))?;
        let status = response.status();
        let bytes = read_capped(response, secret).await?;
        check_status(status, &bytes, secret)?;
        Ok(bytes)
    }
}

/// Reads a body of at most [`MAX_BODY_BYTES`]; a longer one is an error (never buffered whole).
async fn read_capped(mut response: reqwest::Response, secret: &str) -> VastResult<bytes::Bytes> {
    let too_large = || VastError::TooLarge {
        limit_mib: MAX_BODY_BYTES / (1024 * 1024),
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, secret))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The lookup of one subject must answer for that subject: a row with another (or no) id is a
/// fault of the answer, never the asked subject's state.
fn check_lookup_id(
    what: &str,
    asked: u64,
    found: Option<u64>,
    body: &[u8],
    secret: &str,
) -> VastResult<()> {
    match found {
        Some(id) if id == asked => Ok(()),
        Some(id) => Err(decode_error(
            &format!("the lookup of {what} {asked} answered {what} {id}"),
            false,
            body,
            secret,
        )),
        None => Err(decode_error(
            &format!("the lookup of {what} {asked} answered a row without an id"),
            false,
            body,
            secret,
        )),
    }
}

struct InstancesPage {
    rows: Vec<Instance>,
    next_token: Option<String>,
}

/// The `success` / `error` / `msg` trio Vast puts on many bodies.
#[derive(Deserialize, Default)]
struct ApiStatus {
    #[serde(default)]
    success: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    msg: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    detail: Option<Value>,
}

/// `{"machines": [...]}`, decoded in one pass (the hot path of every poll; `#[serde(flatten)]`
/// would buffer the whole body, hence the repeated status fields).
#[derive(Deserialize)]
struct MachinesBody {
    #[serde(default)]
    success: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    msg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    machines: Option<Option<Vec<Machine>>>,
}

/// A v1 page or the v0 list of instances.
#[derive(Deserialize)]
struct InstancesBody {
    #[serde(default)]
    success: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    msg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    instances: Option<Option<Vec<Instance>>>,
    #[serde(default)]
    next_token: Option<Value>,
}

impl ApiStatus {
    fn of(success: Option<Value>, error: Option<Value>, msg: Option<Value>) -> ApiStatus {
        ApiStatus {
            success,
            error,
            msg,
            ..ApiStatus::default()
        }
    }
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, via `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn text_of(v: &Option<Value>) -> Option<String> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(other) => Some(other.to_string()),
    }
}

impl ApiStatus {
    /// The message of an error body: `msg`, else `message`, else `detail`.
    fn message(&self) -> Option<String> {
        text_of(&self.msg)
            .or_else(|| text_of(&self.message))
            .or_else(|| text_of(&self.detail))
    }

    fn failed(&self) -> bool {
        match &self.success {
            Some(Value::Bool(b)) => !b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("false"),
            _ => false,
        }
    }

    fn to_api_error(&self, secret: &str) -> VastError {
        let clip = |s: String| -> String { redact_text(&s, secret).chars().take(300).collect() };
        VastError::Api {
            error: text_of(&self.error)
                .map(clip)
                .unwrap_or_else(|| "unknown".into()),
            msg: self.message().map(clip).unwrap_or_default(),
        }
    }
}

fn fail_if_unsuccessful(status: &ApiStatus, secret: &str) -> VastResult<()> {
    if status.failed() {
        Err(status.to_api_error(secret))
    } else {
        Ok(())
    }
}

fn fail_if_unsuccessful_value(value: &Value, secret: &str) -> VastResult<()> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    let status = ApiStatus {
        success: map.get("success").cloned(),
        error: map.get("error").cloned(),
        msg: map.get("msg").cloned(),
        message: map.get("message").cloned(),
        detail: map.get("detail").cloned(),
    };
    fail_if_unsuccessful(&status, secret)
}

/// Maps a non-2xx status (and its body) to the error class.
fn check_status(status: StatusCode, body: &[u8], secret: &str) -> VastResult<()> {
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    let api = serde_json::from_slice::<ApiStatus>(body).ok();
    let api_code = api.as_ref().and_then(|a| text_of(&a.error));
    match code {
        401 | 403 => Err(VastError::Unauthorized { status: code }),
        404 if api_code.as_deref() == Some("auth_error") => {
            Err(VastError::Unauthorized { status: code })
        }
        404 => Err(VastError::NotFound),
        429 => Err(VastError::RateLimited {
            body_snippet: body_snippet(body, secret),
        }),
        500..=599 => {
            debug!(status = code, body = %body_snippet(body, secret), "vast upstream error");
            Err(VastError::Upstream { status: code })
        }
        _ => match api {
            Some(api) if api_code.is_some() || api.message().is_some() => {
                Err(api.to_api_error(secret))
            }
            _ => {
                debug!(status = code, body = %body_snippet(body, secret), "vast error without JSON");
                Err(VastError::Upstream { status: code })
            }
        },
    }
}

fn transport_error(e: reqwest::Error, secret: &str) -> VastError {
    if e.is_timeout() {
        return VastError::Timeout;
    }
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    VastError::Network {
        detail: redact_text(&detail, secret),
    }
}

fn decode_json<T: DeserializeOwned>(body: &[u8], secret: &str) -> VastResult<T> {
    super::model::from_body(body)
        .map_err(|e| decode_error(&e.to_string(), e.is_eof(), body, secret))
}

fn decode_error(what: &str, truncated: bool, body: &[u8], secret: &str) -> VastError {
    let kind = if truncated { "truncated body: " } else { "" };
    let detail = if body.is_empty() {
        format!("{kind}{what}")
    } else {
        format!(
            "{kind}{what} ({} bytes, starting {})",
            body.len(),
            body_snippet(body, secret)
        )
    };
    VastError::Decode { detail }
}

fn missing_field(field: &str, body: &[u8], secret: &str) -> VastError {
    decode_error(
        &format!("the response has no \"{field}\""),
        false,
        body,
        secret,
    )
}

fn unexpected_shape(expected: &str, body: &[u8], secret: &str) -> VastError {
    decode_error(&format!("expected {expected}"), false, body, secret)
}

/// The machine detail body: a bare list (what Vast sends), an object, or `{"machines": [...]}`.
fn machine_from_detail(value: Value, body: &[u8], secret: &str) -> VastResult<Option<Machine>> {
    let row = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => match items.into_iter().next() {
            Some(row) => row,
            None => return Ok(None),
        },
        Value::Object(mut map) => {
            fail_if_unsuccessful_value(&Value::Object(map.clone()), secret)?;
            if let Some(inner) = map.remove("machines") {
                return machine_from_detail(inner, body, secret);
            }
            if !map.contains_key("id") && !map.contains_key("machine_id") {
                return Ok(None);
            }
            Value::Object(map)
        }
        _ => return Err(unexpected_shape("a list or an object", body, secret)),
    };
    Machine::deserialize(row)
        .map(Some)
        .map_err(|e| decode_error(&e.to_string(), false, body, secret))
}

fn none_if_not_found<T>(result: VastResult<Option<T>>) -> VastResult<Option<T>> {
    match result {
        Err(VastError::NotFound) => Ok(None),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(body: &str) -> VastResult<()> {
        let value: Value = serde_json::from_str(body).unwrap();
        fail_if_unsuccessful_value(&value, "KEY")
    }

    #[test]
    fn success_false_is_an_api_error() {
        assert_eq!(
            api(r#"{"success": false, "error": "Invalid date range", "msg": "bad"}"#),
            Err(VastError::Api {
                error: "Invalid date range".into(),
                msg: "bad".into()
            })
        );
        assert_eq!(
            api(r#"{"success": false, "msg": "no GPU KEY"}"#),
            Err(VastError::Api {
                error: "unknown".into(),
                msg: "no GPU ***".into()
            })
        );
        assert_eq!(api(r#"{"success": true}"#), Ok(()));
        assert_eq!(api(r#"[1]"#), Ok(()));
    }

    #[test]
    fn statuses_map_to_classes() {
        let s = |code: u16, body: &str| {
            check_status(StatusCode::from_u16(code).unwrap(), body.as_bytes(), "KEY")
        };
        assert_eq!(s(200, ""), Ok(()));
        assert_eq!(s(401, "x"), Err(VastError::Unauthorized { status: 401 }));
        assert_eq!(s(403, "{}"), Err(VastError::Unauthorized { status: 403 }));
        assert_eq!(
            s(
                404,
                r#"{"success": false, "error": "auth_error", "msg": "Invalid user key"}"#
            ),
            Err(VastError::Unauthorized { status: 404 })
        );
        assert_eq!(
            s(404, r#"{"error": "invalid_id"}"#),
            Err(VastError::NotFound)
        );
        assert_eq!(
            s(429, "API requests too frequent KEY"),
            Err(VastError::RateLimited {
                body_snippet: "API requests too frequent ***".into()
            })
        );
        assert_eq!(s(502, "<html>"), Err(VastError::Upstream { status: 502 }));
        assert_eq!(
            s(400, r#"{"error": "invalid_token", "msg": "expired"}"#),
            Err(VastError::Api {
                error: "invalid_token".into(),
                msg: "expired".into()
            })
        );
        assert_eq!(s(418, "teapot"), Err(VastError::Upstream { status: 418 }));
    }

    #[test]
    fn machine_detail_shapes() {
        let one = |v: &str| machine_from_detail(serde_json::from_str(v).unwrap(), v.as_bytes(), "");
        assert_eq!(one(r#"[{"id": 7}]"#).unwrap().unwrap().key(), Some(7));
        assert_eq!(one(r#"{"id": 7}"#).unwrap().unwrap().key(), Some(7));
        assert_eq!(
            one(r#"{"machines": [{"machine_id": 7}]}"#)
                .unwrap()
                .unwrap()
                .key(),
            Some(7)
        );
        assert_eq!(one("[]").unwrap(), None);
        assert_eq!(one("null").unwrap(), None);
        assert!(matches!(one("3"), Err(VastError::Decode { .. })));
        assert!(matches!(one("[3]"), Err(VastError::Decode { .. })));
    }

    #[test]
    fn bodies_that_are_not_utf8_are_decode_errors() {
        let body = b"{\"machines\": [{\"id\": 1, \"hostname\": \"rig\xff\"}]}";
        let err = decode_json::<crate::vast::MachineList>(body, "").unwrap_err();
        assert!(matches!(err, VastError::Decode { .. }), "{err:?}");
        let ok: crate::vast::MachineList =
            decode_json(br#"{"machines": [{"id": 1, "hostname": "r\u00e9"}]}"#, "").unwrap();
        assert_eq!(ok.machines[0].hostname.as_deref(), Some("r\u{e9}"));
    }

    #[test]
    fn truncated_bodies_say_so() {
        let err = decode_json::<Value>(br#"{"machines": [{"id": 1"#, "").unwrap_err();
        match err {
            VastError::Decode { detail } => {
                assert!(detail.starts_with("truncated body"), "{detail}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn urls_keep_base_path_and_never_carry_the_key() {
        let client = VastClient::new(
            reqwest::Client::new(),
            Url::parse("http://127.0.0.1:9/prefix/?api_key=LEAK").unwrap(),
            Secret::new("LEAK\n"),
            ClientOptions::default(),
        );
        let url = client.url("/api/v0/machines/", &[("owner", "me".into())]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/api/v0/machines/?owner=me"
        );
        assert!(!format!("{client:?}").contains("LEAK"));
        assert_eq!(client.secret(), "LEAK");
    }
}
