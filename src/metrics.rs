//! Operational metrics (SPEC §8, §13): a `prometheus-client` registry that the actors bump as
//! they work, rendered as Prometheus text (format 0.0.4), and the routes `/metrics` and `/health`
//! of the HTTP listener ([`routes`]). The supervisor creates one [`Metrics`] per process from the
//! configuration and hands each account actor its [`AccountMetrics`] and each notifier its
//! [`TargetMetrics`]; events are counted by kind from the outbox itself ([`count_events`]), so
//! every committed event is counted exactly once whichever actor produced it. Fleet gauges come
//! from the published status once the daemon attaches it ([`Metrics::attach_fleet`]).
//!
//! Every labelled series exists at zero from the moment its account or target is registered
//! (all accounts x poll error reasons, all event kinds, all targets x send failure reasons), so
//! "rate > 0" alerts work from the first scrape. Owns no decisions: it only counts and renders.
//! The series of accounts and targets live in `subjects`, those computed at scrape time in
//! `collect` and `process`.

mod collect;
mod health;
mod http;
mod process;
mod subjects;
#[cfg(test)]
mod tests;

pub use health::{AccountHealthLine, Health, STALLED_AFTER_INTERVALS};
pub use http::routes;
pub use subjects::{AccountMetrics, TargetMetrics};

use crate::event::EventKind;
use crate::fleet::FleetCache;
use crate::store::{StoreError, StoreHandle};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// The `reason` label values of poll errors: every value of `VastError::reason()`.
pub const POLL_ERROR_REASONS: &[&str] = &[
    "unauthorized",
    "not_found",
    "rate_limited",
    "upstream",
    "decode",
    "timeout",
    "network",
    "api",
];

/// The `reason` label values of failed sends: every `SendError::reason()` of the notify module,
/// `config` (the target could not be set up) and `other` (a reason this list does not know).
pub const SEND_FAILURE_REASONS: &[&str] = &[
    "rate_limited",
    "network",
    "timeout",
    "server",
    "io",
    "smtp_transient",
    "auth",
    "client",
    "not_found",
    "smtp_permanent",
    "too_large",
    "invalid",
    "config",
    "other",
];

/// The `reason` label values of dropped events: `max_age` (not delivered in time), and the
/// `SendError::Rejected` reasons (the service refused that message; the target stays enabled).
pub const DROP_REASONS: &[&str] = &["max_age", "too_large", "invalid"];

/// The `state` label values of an account (as in `status`).
pub const ACCOUNT_STATES: &[&str] = &["ok", "stale", "auth_failed", "degraded"];

const PREFIX: &str = "vast_supervisor";

fn unix_seconds_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What the registry and the scrape-time collectors share.
struct Shared {
    started: Instant,
    accounts: RwLock<BTreeMap<String, Arc<AccountMetrics>>>,
    targets: RwLock<BTreeMap<String, Arc<TargetMetrics>>>,
    outbox_seq: AtomicI64,
    fleet: OnceLock<Arc<FleetCache>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metrics::Shared")
    }
}

impl Shared {
    fn accounts(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<AccountMetrics>>> {
        read(&self.accounts)
    }

    fn targets(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<TargetMetrics>>> {
        read(&self.targets)
    }

    fn outbox_seq(&self) -> i64 {
        self.outbox_seq.load(Ordering::Relaxed)
    }
}

/// The process-wide registry.
pub struct Metrics {
    registry: Registry,
    /// The unprefixed `process_*` series.
    process: Registry,
    families: subjects::Families,
    shared: Arc<Shared>,
    events: Vec<Counter>,
    reload_successful: Gauge,
    last_reload_success: Gauge<f64, AtomicU64>,
    reloads_ok: Counter,
    reloads_failed: Counter,
    /// Commits the state database refused (full disk, I/O errors, corruption).
    state_commit_failures: Counter,
    /// 1 while the last commits failed (the state database does not take writes).
    state_failing: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let started_unix = unix_seconds_now();
        let shared = Arc::new(Shared {
            started: Instant::now(),
            accounts: RwLock::new(BTreeMap::new()),
            targets: RwLock::new(BTreeMap::new()),
            outbox_seq: AtomicI64::new(0),
            fleet: OnceLock::new(),
        });
        let mut r = Registry::with_prefix(PREFIX);
        let up: Gauge = Gauge::default();
        up.set(1);
        r.register("up", "1 while the daemon runs", up);
        let build: Family<Vec<(&'static str, &'static str)>, Gauge> = Family::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        r.register("build_info", "Always 1; the version is in the label", build);
        let start: Gauge<f64, AtomicU64> = Gauge::default();
        start.set(started_unix);
        r.register("start_time_seconds", "Unix time the daemon started", start);
        let families = subjects::Families::register(&mut r);
        let events: Family<Vec<(&'static str, &'static str)>, Counter> = Family::default();
        let per_kind = EventKind::ALL
            .iter()
            .map(|k| events.get_or_create_owned(&vec![("kind", k.as_str())]))
            .collect();
        r.register("events", "Events committed to the outbox, per kind", events);
        // Starting means the configuration loaded: like a successful reload.
        let reload_successful: Gauge = Gauge::default();
        reload_successful.set(1);
        r.register(
            "config_last_reload_successful",
            "1 when the last configuration (re)load applied every file, else 0",
            reload_successful.clone(),
        );
        let last_reload_success: Gauge<f64, AtomicU64> = Gauge::default();
        last_reload_success.set(started_unix);
        r.register(
            "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load",
            last_reload_success.clone(),
        );
        let reloads: Family<Vec<(&'static str, &'static str)>, Counter> = Family::default();
        let reloads_ok = reloads.get_or_create_owned(&vec![("result", "success")]);
        let reloads_failed = reloads.get_or_create_owned(&vec![("result", "failure")]);
        r.register("config_reloads", "Configuration reloads by result", reloads);
        let state_commit_failures: Counter = Counter::default();
        r.register(
            "state_commit_failures",
            "Commits the state database refused (full disk, I/O error, corruption); the change is detected again once it takes writes",
            state_commit_failures.clone(),
        );
        let state_failing: Gauge = Gauge::default();
        r.register(
            "state_failing",
            "1 while the state database refuses writes, else 0",
            state_failing.clone(),
        );
        r.register_collector(Box::new(collect::RuntimeCollector(shared.clone())));
        r.register_collector(Box::new(collect::FleetCollector(shared.clone())));
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector {
            start_time: started_unix,
        }));
        Metrics {
            registry: r,
            process,
            families,
            shared,
            events: per_kind,
            reload_successful,
            last_reload_success,
            reloads_ok,
            reloads_failed,
            state_commit_failures,
            state_failing,
        }
    }
}

impl Metrics {
    /// A registry with every series of these accounts and targets present at zero.
    pub fn new<'a>(
        accounts: impl IntoIterator<Item = &'a str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) -> Metrics {
        let m = Metrics::default();
        for a in accounts {
            m.account(a);
        }
        for t in targets {
            m.target(t);
        }
        m
    }

    /// The account's counters, registering it (all series at zero) on first use.
    pub fn account(&self, name: &str) -> Arc<AccountMetrics> {
        if let Some(a) = read(&self.shared.accounts).get(name) {
            return a.clone();
        }
        write(&self.shared.accounts)
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(self.families.account(name)))
            .clone()
    }

    /// The target's counters, registering it (all series at zero) on first use.
    pub fn target(&self, name: &str) -> Arc<TargetMetrics> {
        if let Some(t) = read(&self.shared.targets).get(name) {
            return t.clone();
        }
        write(&self.shared.targets)
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(self.families.target(name)))
            .clone()
    }

    /// Drops a removed account's series (a reload removed it).
    pub fn forget_account(&self, name: &str) {
        write(&self.shared.accounts).remove(name);
        self.families.forget_account(name);
    }

    /// Drops a removed target's series (a reload removed it).
    pub fn forget_target(&self, name: &str) {
        write(&self.shared.targets).remove(name);
        self.families.forget_target(name);
    }

    /// Serves the fleet gauges from this status from now on (the daemon attaches it once).
    pub fn attach_fleet(&self, fleet: Arc<FleetCache>) {
        let _ = self.shared.fleet.set(fleet);
    }

    /// One event of `kind` was committed to the outbox.
    pub fn record_event(&self, kind: EventKind) {
        if let Some(i) = EventKind::ALL.iter().position(|k| *k == kind) {
            self.events[i].inc();
        }
    }

    /// The outbox's highest sequence number (for targets' queue depth).
    pub fn set_outbox_seq(&self, seq: i64) {
        self.shared.outbox_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Called by a configuration reload: `ok` when every file applied (a rejected file is a
    /// failed reload, even though the other files applied).
    pub fn record_reload(&self, ok: bool) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reloads_ok.inc();
            self.last_reload_success.set(unix_seconds_now());
        } else {
            self.reloads_failed.inc();
        }
    }

    /// What the state database's writer reports: failed commits so far (a count that only
    /// grows) and whether it refuses writes now.
    pub fn set_state_store(&self, failed_commits: u64, failing: bool) {
        let counted = self.state_commit_failures.get();
        if failed_commits > counted {
            self.state_commit_failures.inc_by(failed_commits - counted);
        }
        self.state_failing.set(i64::from(failing));
    }

    /// Whether the state database refuses writes now.
    fn state_store_failing(&self) -> bool {
        self.state_failing.get() != 0
    }

    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a collector's error would only cut the text short.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.process);
        out
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the map itself is intact.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// Counts every event committed to the outbox after `after`, by kind, until the store closes.
/// Reading the outbox (rather than counting at each producer) counts each event once even when
/// a re-detected change is ignored as a duplicate.
pub async fn count_events(metrics: Arc<Metrics>, store: StoreHandle, mut after: i64) {
    let mut latest = store.subscribe();
    metrics.set_outbox_seq(after);
    loop {
        match store.run(move |s| s.events_after(after, 256)).await {
            Ok(batch) => match batch.last().map(|q| q.seq) {
                Some(last) => {
                    for q in &batch {
                        metrics.record_event(q.event.kind);
                    }
                    after = last;
                    metrics.set_outbox_seq(last);
                }
                None => {
                    if latest.changed().await.is_err() {
                        return;
                    }
                }
            },
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "metrics cannot read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
