//! Operational metrics (SPEC §8): a registry of atomic counters that the actors bump as they work,
//! rendered as Prometheus text, and the optional HTTP listener serving `/metrics` and `/health`
//! ([`serve`]). The supervisor creates one [`Metrics`] per process from the configuration and hands
//! each account actor its [`AccountMetrics`] and each notifier its [`TargetMetrics`]; events are
//! counted by kind from the outbox itself ([`count_events`]), so every committed event is counted
//! exactly once whichever actor produced it.
//!
//! Every labelled series exists at zero from the moment its account or target is registered
//! (all accounts x poll error reasons, all event kinds, all targets x send failure reasons), so
//! "rate > 0" alerts work from the first scrape. Owns no decisions: it only counts and renders.

mod health;
mod http;

pub use health::{AccountHealthLine, Health, STALLED_AFTER_INTERVALS};
pub use http::{serve, MetricsServer};

use crate::event::EventKind;
use crate::store::{StoreError, StoreHandle};
use crate::vast::{Endpoint, VastClient};
use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn unix_seconds_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Counters of one account, bumped by its account actor.
pub struct AccountMetrics {
    polls: AtomicU64,
    poll_errors: Box<[AtomicU64]>,
    state: AtomicU8,
    machine_restarts: AtomicU64,
    degraded_machines: AtomicU64,
    instance_restarts: AtomicU64,
    degraded_instances: AtomicU64,
    /// The account's API client: request counts are read from it when rendering.
    client: Mutex<Option<VastClient>>,
    /// Requests counted by clients that were replaced (a reload), so the counter never drops.
    api_base: Box<[AtomicU64]>,
    /// When the account last finished a poll (failed ones too), or was registered; with its
    /// poll interval, tells `/health` whether the account still polls at all.
    last_poll: Mutex<Instant>,
    poll_interval_ms: AtomicU64,
}

impl Default for AccountMetrics {
    fn default() -> Self {
        AccountMetrics {
            polls: AtomicU64::new(0),
            poll_errors: counters(POLL_ERROR_REASONS.len()),
            state: AtomicU8::new(0),
            machine_restarts: AtomicU64::new(0),
            degraded_machines: AtomicU64::new(0),
            instance_restarts: AtomicU64::new(0),
            degraded_instances: AtomicU64::new(0),
            client: Mutex::new(None),
            api_base: counters(Endpoint::ALL.len()),
            last_poll: Mutex::new(Instant::now()),
            poll_interval_ms: AtomicU64::new(0),
        }
    }
}

impl AccountMetrics {
    /// One finished poll; `error_reason` is `VastError::reason()` of a failed one.
    pub fn record_poll(&self, error_reason: Option<&str>) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        *self.last_poll.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if let Some(reason) = error_reason {
            match POLL_ERROR_REASONS.iter().position(|r| *r == reason) {
                Some(i) => {
                    self.poll_errors[i].fetch_add(1, Ordering::Relaxed);
                }
                None => tracing::warn!(reason, "poll error reason unknown to metrics"),
            }
        }
    }

    /// The account's poll interval; `/health` expects a poll at least every few of them.
    pub fn set_poll_interval(&self, every: Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.poll_interval_ms.store(ms, Ordering::Relaxed);
    }

    /// The account's state as shown in status: one of [`ACCOUNT_STATES`].
    pub fn set_state(&self, state: &str) {
        if let Some(i) = ACCOUNT_STATES.iter().position(|s| *s == state) {
            self.state.store(i as u8, Ordering::Relaxed);
        }
    }

    pub fn state(&self) -> &'static str {
        ACCOUNT_STATES
            .get(self.state.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or("ok")
    }

    pub fn record_machine_restart(&self) {
        self.machine_restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_degraded_machines(&self, n: usize) {
        self.degraded_machines.store(n as u64, Ordering::Relaxed);
    }

    pub fn record_instance_restart(&self) {
        self.instance_restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_degraded_instances(&self, n: usize) {
        self.degraded_instances.store(n as u64, Ordering::Relaxed);
    }

    /// Reads API request counts from `client` from now on (a replaced client's counts are kept).
    pub fn attach_client(&self, client: &VastClient) {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            for (i, (_, n)) in old.request_counts().into_iter().enumerate() {
                if let Some(base) = self.api_base.get(i) {
                    base.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        *slot = Some(client.clone());
    }

    /// Requests sent per endpoint label, every endpoint present.
    pub fn api_requests(&self) -> Vec<(&'static str, u64)> {
        let slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        Endpoint::ALL
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let live = slot.as_ref().map_or(0, |c| c.request_count(*e));
                (e.label(), self.api_base[i].load(Ordering::Relaxed) + live)
            })
            .collect()
    }
}

/// Counters of one notification target, bumped by its notifier actor.
pub struct TargetMetrics {
    sends: AtomicU64,
    events_delivered: AtomicU64,
    failures: Box<[AtomicU64]>,
    dropped: Box<[AtomicU64]>,
    restarts: AtomicU64,
    /// The target's delivery position; negative until the notifier has read it.
    cursor: AtomicI64,
}

impl Default for TargetMetrics {
    fn default() -> Self {
        TargetMetrics {
            sends: AtomicU64::new(0),
            events_delivered: AtomicU64::new(0),
            failures: counters(SEND_FAILURE_REASONS.len()),
            dropped: counters(DROP_REASONS.len()),
            restarts: AtomicU64::new(0),
            cursor: AtomicI64::new(-1),
        }
    }
}

impl TargetMetrics {
    /// The service accepted one message carrying `events` events.
    pub fn record_sent(&self, events: usize) {
        self.sends.fetch_add(1, Ordering::Relaxed);
        self.events_delivered
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    /// One send attempt failed; `reason` is `SendError::reason()` (or `config`).
    pub fn record_failure(&self, reason: &str) {
        let i = SEND_FAILURE_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(SEND_FAILURE_REASONS.len() - 1);
        self.failures[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `events` events will never reach the target; `reason` is one of [`DROP_REASONS`]
    /// (an unknown one is counted as `invalid` and logged).
    pub fn record_dropped(&self, reason: &str, events: usize) {
        let i = match DROP_REASONS.iter().position(|r| *r == reason) {
            Some(i) => i,
            None => {
                tracing::warn!(reason, "drop reason unknown to metrics");
                DROP_REASONS.len() - 1
            }
        };
        self.dropped[i].fetch_add(events as u64, Ordering::Relaxed);
    }

    pub fn record_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_cursor(&self, seq: i64) {
        self.cursor.store(seq, Ordering::Relaxed);
    }
}

/// The process-wide registry.
pub struct Metrics {
    started: Instant,
    started_unix: f64,
    accounts: RwLock<BTreeMap<String, Arc<AccountMetrics>>>,
    targets: RwLock<BTreeMap<String, Arc<TargetMetrics>>>,
    events: Box<[AtomicU64]>,
    outbox_seq: AtomicI64,
    reload_successful: AtomicBool,
    /// Unix time of the last successful (re)load, in milliseconds.
    last_reload_success_ms: AtomicI64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Commits the state database refused (full disk, I/O errors, corruption).
    state_commit_failures: AtomicU64,
    /// Whether the last commits failed (the state database does not take writes).
    state_failing: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let started_unix = unix_seconds_now();
        Metrics {
            started: Instant::now(),
            started_unix,
            accounts: RwLock::new(BTreeMap::new()),
            targets: RwLock::new(BTreeMap::new()),
            events: counters(EventKind::ALL.len()),
            outbox_seq: AtomicI64::new(0),
            // Starting means the configuration loaded: like a successful reload.
            reload_successful: AtomicBool::new(true),
            last_reload_success_ms: AtomicI64::new((started_unix * 1000.0) as i64),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            state_commit_failures: AtomicU64::new(0),
            state_failing: AtomicBool::new(false),
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
        if let Some(a) = read(&self.accounts).get(name) {
            return a.clone();
        }
        write(&self.accounts)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The target's counters, registering it (all series at zero) on first use.
    pub fn target(&self, name: &str) -> Arc<TargetMetrics> {
        if let Some(t) = read(&self.targets).get(name) {
            return t.clone();
        }
        write(&self.targets)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Drops a removed account's series (a reload removed it).
    pub fn forget_account(&self, name: &str) {
        write(&self.accounts).remove(name);
    }

    /// Drops a removed target's series (a reload removed it).
    pub fn forget_target(&self, name: &str) {
        write(&self.targets).remove(name);
    }

    /// One event of `kind` was committed to the outbox.
    pub fn record_event(&self, kind: EventKind) {
        if let Some(i) = EventKind::ALL.iter().position(|k| *k == kind) {
            self.events[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The outbox's highest sequence number (for targets' queue depth).
    pub fn set_outbox_seq(&self, seq: i64) {
        self.outbox_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Called by a configuration reload: `ok` when every file applied (a rejected file is a
    /// failed reload, even though the other files applied).
    pub fn record_reload(&self, ok: bool) {
        self.reload_successful.store(ok, Ordering::Relaxed);
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            self.last_reload_success_ms
                .store((unix_seconds_now() * 1000.0) as i64, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What the state database's writer reports: failed commits so far (a counter that only
    /// grows) and whether it refuses writes now.
    pub fn set_state_store(&self, failed_commits: u64, failing: bool) {
        self.state_commit_failures
            .fetch_max(failed_commits, Ordering::Relaxed);
        self.state_failing.store(failing, Ordering::Relaxed);
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let accounts: Vec<(String, Arc<AccountMetrics>)> = read(&self.accounts)
            .iter()
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        let targets: Vec<(String, Arc<TargetMetrics>)> = read(&self.targets)
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut x = Exposition::default();

        x.family("up", "gauge", "1 while the daemon runs.");
        x.sample("up", &[], 1);
        x.family(
            "build_info",
            "gauge",
            "Always 1; the version is in the label.",
        );
        x.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
        x.family(
            "start_time_seconds",
            "gauge",
            "Unix time the daemon started.",
        );
        x.sample("start_time_seconds", &[], self.started_unix);
        x.family(
            "uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
        );
        x.sample("uptime_seconds", &[], self.uptime().as_secs_f64());

        x.family(
            "polls_total",
            "counter",
            "Polls of the Vast API per account, failed ones included.",
        );
        for (name, a) in &accounts {
            x.sample("polls_total", &[("account", name)], load(&a.polls));
        }
        x.family(
            "poll_errors_total",
            "counter",
            "Failed polls per account and reason.",
        );
        for (name, a) in &accounts {
            for (i, reason) in POLL_ERROR_REASONS.iter().enumerate() {
                x.sample(
                    "poll_errors_total",
                    &[("account", name), ("reason", reason)],
                    load(&a.poll_errors[i]),
                );
            }
        }
        x.family(
            "account_state",
            "gauge",
            "1 for the account's current state (ok, stale, auth_failed, degraded), else 0.",
        );
        for (name, a) in &accounts {
            let current = a.state();
            for state in ACCOUNT_STATES {
                x.sample(
                    "account_state",
                    &[("account", name), ("state", state)],
                    u8::from(current == *state),
                );
            }
        }
        x.family(
            "api_requests_total",
            "counter",
            "HTTP requests sent to Vast per account and endpoint, retries included.",
        );
        for (name, a) in &accounts {
            for (endpoint, n) in a.api_requests() {
                x.sample(
                    "api_requests_total",
                    &[("account", name), ("endpoint", endpoint)],
                    n,
                );
            }
        }
        x.family(
            "machine_restarts_total",
            "counter",
            "Machine actors restarted after a failure (panic or death), per account.",
        );
        for (name, a) in &accounts {
            x.sample(
                "machine_restarts_total",
                &[("account", name)],
                load(&a.machine_restarts),
            );
        }
        x.family(
            "machines_degraded",
            "gauge",
            "Machines whose actor failed too often and is backing off, per account.",
        );
        for (name, a) in &accounts {
            x.sample(
                "machines_degraded",
                &[("account", name)],
                load(&a.degraded_machines),
            );
        }
        x.family(
            "instance_restarts_total",
            "counter",
            "Instance actors restarted after a failure (panic or death), per account.",
        );
        for (name, a) in &accounts {
            x.sample(
                "instance_restarts_total",
                &[("account", name)],
                load(&a.instance_restarts),
            );
        }
        x.family(
            "instances_degraded",
            "gauge",
            "Instances whose actor failed too often and is backing off, per account.",
        );
        for (name, a) in &accounts {
            x.sample(
                "instances_degraded",
                &[("account", name)],
                load(&a.degraded_instances),
            );
        }

        x.family(
            "events_total",
            "counter",
            "Events committed to the outbox, per kind.",
        );
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            x.sample(
                "events_total",
                &[("kind", kind.as_str())],
                load(&self.events[i]),
            );
        }

        x.family(
            "sends_total",
            "counter",
            "Messages a target's service accepted.",
        );
        for (name, t) in &targets {
            x.sample("sends_total", &[("target", name)], load(&t.sends));
        }
        x.family(
            "events_delivered_total",
            "counter",
            "Events delivered to a target (a digest message carries several).",
        );
        for (name, t) in &targets {
            x.sample(
                "events_delivered_total",
                &[("target", name)],
                load(&t.events_delivered),
            );
        }
        x.family(
            "send_failures_total",
            "counter",
            "Failed send attempts per target and reason.",
        );
        for (name, t) in &targets {
            for (i, reason) in SEND_FAILURE_REASONS.iter().enumerate() {
                x.sample(
                    "send_failures_total",
                    &[("target", name), ("reason", reason)],
                    load(&t.failures[i]),
                );
            }
        }
        x.family(
            "events_dropped_total",
            "counter",
            "Events a target will never deliver, per reason: max_age (too old), too_large or invalid (the service refused that message; the target stays enabled).",
        );
        for (name, t) in &targets {
            for (i, reason) in DROP_REASONS.iter().enumerate() {
                x.sample(
                    "events_dropped_total",
                    &[("target", name), ("reason", reason)],
                    load(&t.dropped[i]),
                );
            }
        }
        x.family(
            "target_queue_depth",
            "gauge",
            "Outbox events after a target's delivery position.",
        );
        let outbox = self.outbox_seq.load(Ordering::Relaxed);
        for (name, t) in &targets {
            let cursor = t.cursor.load(Ordering::Relaxed);
            let depth = if cursor < 0 {
                0
            } else {
                (outbox - cursor).max(0)
            };
            x.sample("target_queue_depth", &[("target", name)], depth);
        }
        x.family(
            "target_restarts_total",
            "counter",
            "Restarts of a target's delivery loop after a panic.",
        );
        for (name, t) in &targets {
            x.sample(
                "target_restarts_total",
                &[("target", name)],
                load(&t.restarts),
            );
        }

        x.family(
            "state_commit_failures_total",
            "counter",
            "Commits the state database refused (full disk, I/O error, corruption); the change is detected again once it takes writes.",
        );
        x.sample(
            "state_commit_failures_total",
            &[],
            load(&self.state_commit_failures),
        );
        x.family(
            "state_failing",
            "gauge",
            "1 while the state database refuses writes, else 0.",
        );
        x.sample(
            "state_failing",
            &[],
            u8::from(self.state_failing.load(Ordering::Relaxed)),
        );

        x.family(
            "config_last_reload_successful",
            "gauge",
            "1 when the last configuration (re)load applied every file, else 0.",
        );
        x.sample(
            "config_last_reload_successful",
            &[],
            u8::from(self.reload_successful.load(Ordering::Relaxed)),
        );
        x.family(
            "config_last_reload_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful configuration (re)load.",
        );
        x.sample(
            "config_last_reload_success_timestamp_seconds",
            &[],
            self.last_reload_success_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        );
        x.family(
            "config_reloads_total",
            "counter",
            "Configuration reloads by result.",
        );
        x.sample(
            "config_reloads_total",
            &[("result", "success")],
            load(&self.reloads_ok),
        );
        x.sample(
            "config_reloads_total",
            &[("result", "failure")],
            load(&self.reloads_failed),
        );
        x.out
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the map itself is intact.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// Text exposition writer: `# HELP`, `# TYPE`, then samples, all names prefixed.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {PREFIX}_{name} {help}");
        let _ = writeln!(self.out, "# TYPE {PREFIX}_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        let _ = write!(self.out, "{PREFIX}_{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_exists_at_zero_once_registered() {
        let m = Metrics::new(["alice", "bob"], ["discord"]);
        let text = m.render();
        for reason in POLL_ERROR_REASONS {
            assert!(text.contains(&format!(
                "vast_supervisor_poll_errors_total{{account=\"bob\",reason=\"{reason}\"}} 0\n"
            )));
        }
        for kind in EventKind::ALL {
            assert!(text.contains(&format!(
                "vast_supervisor_events_total{{kind=\"{kind}\"}} 0\n"
            )));
        }
        for reason in SEND_FAILURE_REASONS {
            assert!(text.contains(&format!(
                "vast_supervisor_send_failures_total{{target=\"discord\",reason=\"{reason}\"}} 0\n"
            )));
        }
        for e in Endpoint::ALL {
            assert!(text.contains(&format!(
                "vast_supervisor_api_requests_total{{account=\"alice\",endpoint=\"{}\"}} 0\n",
                e.label()
            )));
        }
        for reason in DROP_REASONS {
            assert!(text.contains(&format!(
                "vast_supervisor_events_dropped_total{{target=\"discord\",reason=\"{reason}\"}} 0\n"
            )));
        }
        assert!(text.contains("vast_supervisor_target_queue_depth{target=\"discord\"} 0\n"));
        assert!(text.contains("vast_supervisor_config_last_reload_successful 1\n"));
    }

    #[test]
    fn counters_move_and_unknown_reasons_land_in_other() {
        let m = Metrics::new(["alice"], ["hook"]);
        let a = m.account("alice");
        a.record_poll(None);
        a.record_poll(Some("timeout"));
        a.set_state("stale");
        let t = m.target("hook");
        t.record_sent(3);
        t.record_failure("server");
        t.record_failure("brand_new_reason");
        t.record_dropped("too_large", 1);
        t.record_dropped("max_age", 2);
        t.set_cursor(4);
        m.set_outbox_seq(10);
        m.record_event(EventKind::RentalStart);
        m.record_reload(false);
        let text = m.render();
        for line in [
            "vast_supervisor_polls_total{account=\"alice\"} 2",
            "vast_supervisor_poll_errors_total{account=\"alice\",reason=\"timeout\"} 1",
            "vast_supervisor_account_state{account=\"alice\",state=\"stale\"} 1",
            "vast_supervisor_account_state{account=\"alice\",state=\"ok\"} 0",
            "vast_supervisor_sends_total{target=\"hook\"} 1",
            "vast_supervisor_events_delivered_total{target=\"hook\"} 3",
            "vast_supervisor_send_failures_total{target=\"hook\",reason=\"server\"} 1",
            "vast_supervisor_send_failures_total{target=\"hook\",reason=\"other\"} 1",
            "vast_supervisor_events_dropped_total{target=\"hook\",reason=\"too_large\"} 1",
            "vast_supervisor_events_dropped_total{target=\"hook\",reason=\"max_age\"} 2",
            "vast_supervisor_events_dropped_total{target=\"hook\",reason=\"invalid\"} 0",
            "vast_supervisor_target_queue_depth{target=\"hook\"} 6",
            "vast_supervisor_events_total{kind=\"rental_start\"} 1",
            "vast_supervisor_config_last_reload_successful 0",
            "vast_supervisor_config_reloads_total{result=\"failure\"} 1",
        ] {
            assert!(text.contains(&format!("{line}\n")), "missing {line}");
        }
    }

    #[test]
    fn health_is_bad_only_when_every_account_is_down() {
        let m = Metrics::new(["a", "b"], []);
        assert!(m.health().healthy());
        m.account("a").set_state("stale");
        assert!(m.health().healthy(), "one account still works");
        m.account("b").set_state("auth_failed");
        assert!(!m.health().healthy());
        m.account("b").set_state("degraded");
        assert!(m.health().healthy(), "degraded accounts still poll");
        assert!(Metrics::new([], []).health().healthy());
        m.forget_account("b");
        assert!(!m.health().healthy());
        assert_eq!(m.health().accounts.len(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_vast_error_reason_is_a_label() {
        use crate::vast::VastError;
        let all = [
            VastError::Unauthorized { status: 401 },
            VastError::NotFound,
            VastError::RateLimited {
                body_snippet: String::new(),
            },
            VastError::Upstream { status: 502 },
            VastError::Decode {
                detail: String::new(),
            },
            VastError::Timeout,
            VastError::Network {
                detail: String::new(),
            },
            VastError::Api {
                error: String::new(),
                msg: String::new(),
            },
        ];
        let reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(reasons, POLL_ERROR_REASONS);
    }

    #[test]
    fn every_send_error_reason_in_the_notify_sources_is_a_label() {
        // The reasons are string literals at each service's call sites; scan them so a new one
        // cannot silently fall into "other".
        let sources = [
            include_str!("notify/mod.rs"),
            include_str!("notify/http.rs"),
            include_str!("notify/email.rs"),
            include_str!("notify/file.rs"),
            include_str!("notify/console.rs"),
            include_str!("notify/discord.rs"),
            include_str!("notify/slack.rs"),
            include_str!("notify/telegram.rs"),
            include_str!("notify/ntfy.rs"),
            include_str!("notify/pushover.rs"),
            include_str!("notify/gotify.rs"),
            include_str!("notify/webhook.rs"),
        ];
        let re = regex::Regex::new(
            r#"(?:transient|permanent|rejected)\(\s*"([a-z_]+)"|reason: "([a-z_]+)""#,
        )
        .unwrap();
        let mut found = 0;
        for src in sources {
            for c in re.captures_iter(src) {
                let reason = c.get(1).or(c.get(2)).unwrap().as_str();
                found += 1;
                assert!(
                    SEND_FAILURE_REASONS.contains(&reason),
                    "send failure reason {reason} is missing from SEND_FAILURE_REASONS"
                );
                if c.get(0).is_some_and(|m| m.as_str().starts_with("rejected")) {
                    assert!(
                        DROP_REASONS.contains(&reason),
                        "rejection reason {reason} is missing from DROP_REASONS"
                    );
                }
            }
        }
        assert!(found >= 10, "the scan finds the call sites ({found})");
    }
}
