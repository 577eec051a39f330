//! How a Vast client behaves in time: timeouts, retries, backoff, per-endpoint spacing and the log
//! download's waits, and the one pooled HTTP client every account shares. Plain settings; must not
//! send anything.

use super::pacing::Endpoint;
use std::collections::HashMap;
use std::time::Duration;

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
