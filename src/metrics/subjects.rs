//! The labelled series of accounts and targets: one family per metric, and per account or
//! target the handles its actor bumps ([`AccountMetrics`], [`TargetMetrics`]). Registering an
//! account or target creates every one of its series at zero; forgetting it removes them.

use super::{ACCOUNT_STATES, DROP_REASONS, POLL_ERROR_REASONS, SEND_FAILURE_REASONS};
use crate::vast::{Endpoint, VastClient};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A series' labels, in the order they are written.
pub(super) type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Seconds: from a fast local answer to a slow upstream that hits the client's timeouts.
const DURATION_BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Every family of account and target series, registered once.
pub(super) struct Families {
    polls: Family<Labels, Counter>,
    poll_errors: Family<Labels, Counter>,
    account_state: Family<Labels, Gauge>,
    poll_duration: Histograms,
    machine_restarts: Family<Labels, Counter>,
    machines_degraded: Family<Labels, Gauge>,
    instance_restarts: Family<Labels, Counter>,
    instances_degraded: Family<Labels, Gauge>,
    sends: Family<Labels, Counter>,
    events_delivered: Family<Labels, Counter>,
    send_failures: Family<Labels, Counter>,
    events_dropped: Family<Labels, Counter>,
    target_restarts: Family<Labels, Counter>,
    delivery_duration: Histograms,
}

impl Families {
    /// The families, registered with `r`.
    pub(super) fn register(r: &mut Registry) -> Families {
        let f = Families::new();
        f.register_with(r);
        f
    }

    fn new() -> Families {
        Families {
            polls: Family::default(),
            poll_errors: Family::default(),
            account_state: Family::default(),
            poll_duration: Family::new_with_constructor(duration_histogram),
            machine_restarts: Family::default(),
            machines_degraded: Family::default(),
            instance_restarts: Family::default(),
            instances_degraded: Family::default(),
            sends: Family::default(),
            events_delivered: Family::default(),
            send_failures: Family::default(),
            events_dropped: Family::default(),
            target_restarts: Family::default(),
            delivery_duration: Family::new_with_constructor(duration_histogram),
        }
    }

    fn register_with(&self, r: &mut Registry) {
        let f = self;
        r.register(
            "polls",
            "Polls of the Vast API per account, failed ones included",
            f.polls.clone(),
        );
        r.register(
            "poll_errors",
            "Failed polls per account and reason",
            f.poll_errors.clone(),
        );
        r.register(
            "account_state",
            "1 for the account's current state (ok, stale, auth_failed, degraded), else 0",
            f.account_state.clone(),
        );
        r.register(
            "poll_duration_seconds",
            "Time to fetch an account's machine and instance lists in one poll, retries included",
            f.poll_duration.clone(),
        );
        r.register(
            "machine_restarts",
            "Machine actors restarted after a failure (panic or death), per account",
            f.machine_restarts.clone(),
        );
        r.register(
            "machines_degraded",
            "Machines whose actor failed too often and is backing off, per account",
            f.machines_degraded.clone(),
        );
        r.register(
            "instance_restarts",
            "Instance actors restarted after a failure (panic or death), per account",
            f.instance_restarts.clone(),
        );
        r.register(
            "instances_degraded",
            "Instances whose actor failed too often and is backing off, per account",
            f.instances_degraded.clone(),
        );
        r.register(
            "sends",
            "Messages a target's service accepted",
            f.sends.clone(),
        );
        r.register(
            "events_delivered",
            "Events delivered to a target (a digest message carries several)",
            f.events_delivered.clone(),
        );
        r.register(
            "send_failures",
            "Failed send attempts per target and reason",
            f.send_failures.clone(),
        );
        r.register(
            "events_dropped",
            "Events a target will never deliver, per reason: max_age (too old), too_large or invalid (the service refused that message; the target stays enabled)",
            f.events_dropped.clone(),
        );
        r.register(
            "target_restarts",
            "Restarts of a target's delivery loop after a panic",
            f.target_restarts.clone(),
        );
        r.register(
            "delivery_duration_seconds",
            "Time of one send attempt to a target's service, failed ones included",
            f.delivery_duration.clone(),
        );
    }

    /// Creates every series of the account at zero and returns its handles.
    pub(super) fn account(&self, name: &str) -> AccountMetrics {
        let one = labels(&[("account", name)]);
        AccountMetrics {
            polls: self.polls.get_or_create_owned(&one),
            poll_errors: POLL_ERROR_REASONS
                .iter()
                .map(|r| {
                    self.poll_errors
                        .get_or_create_owned(&labels(&[("account", name), ("reason", r)]))
                })
                .collect(),
            states: ACCOUNT_STATES
                .iter()
                .map(|s| {
                    self.account_state
                        .get_or_create_owned(&labels(&[("account", name), ("state", s)]))
                })
                .collect(),
            state: AtomicU8::new(0),
            poll_duration: self.poll_duration.get_or_create_owned(&one),
            machine_restarts: self.machine_restarts.get_or_create_owned(&one),
            degraded_machines: self.machines_degraded.get_or_create_owned(&one),
            instance_restarts: self.instance_restarts.get_or_create_owned(&one),
            degraded_instances: self.instances_degraded.get_or_create_owned(&one),
            client: Mutex::new(None),
            api_base: (0..Endpoint::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            last_poll: Mutex::new(Instant::now()),
            poll_interval_ms: AtomicU64::new(0),
        }
        .with_state("ok")
    }

    pub(super) fn forget_account(&self, name: &str) {
        let one = labels(&[("account", name)]);
        for family in [&self.polls, &self.machine_restarts, &self.instance_restarts] {
            family.remove(&one);
        }
        self.machines_degraded.remove(&one);
        self.instances_degraded.remove(&one);
        self.poll_duration.remove(&one);
        for r in POLL_ERROR_REASONS {
            self.poll_errors
                .remove(&labels(&[("account", name), ("reason", r)]));
        }
        for s in ACCOUNT_STATES {
            self.account_state
                .remove(&labels(&[("account", name), ("state", s)]));
        }
    }

    /// Creates every series of the target at zero and returns its handles.
    pub(super) fn target(&self, name: &str) -> TargetMetrics {
        let one = labels(&[("target", name)]);
        let by_reason = |family: &Family<Labels, Counter>, reasons: &[&str]| -> Vec<Counter> {
            reasons
                .iter()
                .map(|r| family.get_or_create_owned(&labels(&[("target", name), ("reason", r)])))
                .collect()
        };
        TargetMetrics {
            sends: self.sends.get_or_create_owned(&one),
            events_delivered: self.events_delivered.get_or_create_owned(&one),
            failures: by_reason(&self.send_failures, SEND_FAILURE_REASONS),
            dropped: by_reason(&self.events_dropped, DROP_REASONS),
            restarts: self.target_restarts.get_or_create_owned(&one),
            delivery_duration: self.delivery_duration.get_or_create_owned(&one),
            cursor: AtomicI64::new(-1),
        }
    }

    pub(super) fn forget_target(&self, name: &str) {
        let one = labels(&[("target", name)]);
        for family in [&self.sends, &self.events_delivered, &self.target_restarts] {
            family.remove(&one);
        }
        self.delivery_duration.remove(&one);
        for r in SEND_FAILURE_REASONS {
            self.send_failures
                .remove(&labels(&[("target", name), ("reason", r)]));
        }
        for r in DROP_REASONS {
            self.events_dropped
                .remove(&labels(&[("target", name), ("reason", r)]));
        }
    }
}

/// Counters of one account, bumped by its account actor.
#[derive(Debug)]
pub struct AccountMetrics {
    polls: Counter,
    poll_errors: Vec<Counter>,
    /// One gauge per [`ACCOUNT_STATES`] entry; the current one is 1.
    states: Vec<Gauge>,
    state: AtomicU8,
    poll_duration: Histogram,
    machine_restarts: Counter,
    degraded_machines: Gauge,
    instance_restarts: Counter,
    degraded_instances: Gauge,
    /// The account's API client: request counts are read from it when rendering.
    client: Mutex<Option<VastClient>>,
    /// Requests counted by clients that were replaced (a reload), so the counter never drops.
    api_base: Box<[AtomicU64]>,
    /// When the account last finished a poll (failed ones too), or was registered; with its
    /// poll interval, tells `/health` whether the account still polls at all.
    last_poll: Mutex<Instant>,
    poll_interval_ms: AtomicU64,
}

/// Counters that no registry renders (actors started without one, in tests).
impl Default for AccountMetrics {
    fn default() -> Self {
        Families::new().account("")
    }
}

impl Default for TargetMetrics {
    fn default() -> Self {
        Families::new().target("")
    }
}

impl AccountMetrics {
    fn with_state(self, state: &str) -> AccountMetrics {
        self.set_state(state);
        self
    }

    /// One finished poll; `error_reason` is `VastError::reason()` of a failed one.
    pub fn record_poll(&self, error_reason: Option<&str>) {
        self.polls.inc();
        *self.last_poll.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if let Some(reason) = error_reason {
            match POLL_ERROR_REASONS.iter().position(|r| *r == reason) {
                Some(i) => {
                    self.poll_errors[i].inc();
                }
                None => tracing::warn!(reason, "poll error reason unknown to metrics"),
            }
        }
    }

    /// How long a poll took to fetch the account's lists.
    pub fn observe_poll_duration(&self, took: Duration) {
        self.poll_duration.observe(took.as_secs_f64());
    }

    /// The account's poll interval; `/health` expects a poll at least every few of them.
    pub fn set_poll_interval(&self, every: Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.poll_interval_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether no poll has finished for `intervals` poll intervals as of `now` (never while
    /// the interval is unknown).
    pub(super) fn stalled_at(&self, now: Instant, intervals: u32) -> bool {
        let every = Duration::from_millis(self.poll_interval_ms.load(Ordering::Relaxed));
        let last = *self.last_poll.lock().unwrap_or_else(|p| p.into_inner());
        !every.is_zero() && now.saturating_duration_since(last) > every.saturating_mul(intervals)
    }

    /// The account's state as shown in status: one of [`ACCOUNT_STATES`].
    pub fn set_state(&self, state: &str) {
        if let Some(i) = ACCOUNT_STATES.iter().position(|s| *s == state) {
            self.state.store(i as u8, Ordering::Relaxed);
            for (j, gauge) in self.states.iter().enumerate() {
                gauge.set(i64::from(i == j));
            }
        }
    }

    pub fn state(&self) -> &'static str {
        ACCOUNT_STATES
            .get(self.state.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or("ok")
    }

    pub fn record_machine_restart(&self) {
        self.machine_restarts.inc();
    }

    pub fn set_degraded_machines(&self, n: usize) {
        self.degraded_machines.set(n as i64);
    }

    pub fn record_instance_restart(&self) {
        self.instance_restarts.inc();
    }

    pub fn set_degraded_instances(&self, n: usize) {
        self.degraded_instances.set(n as i64);
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
#[derive(Debug)]
pub struct TargetMetrics {
    sends: Counter,
    events_delivered: Counter,
    failures: Vec<Counter>,
    dropped: Vec<Counter>,
    restarts: Counter,
    delivery_duration: Histogram,
    /// The target's delivery position; negative until the notifier has read it.
    cursor: AtomicI64,
}

impl TargetMetrics {
    /// The service accepted one message carrying `events` events.
    pub fn record_sent(&self, events: usize) {
        self.sends.inc();
        self.events_delivered.inc_by(events as u64);
    }

    /// One send attempt failed; `reason` is `SendError::reason()` (or `config`).
    pub fn record_failure(&self, reason: &str) {
        let i = SEND_FAILURE_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(SEND_FAILURE_REASONS.len() - 1);
        self.failures[i].inc();
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
        self.dropped[i].inc_by(events as u64);
    }

    /// How long one send attempt took, whatever its outcome.
    pub fn observe_delivery(&self, took: Duration) {
        self.delivery_duration.observe(took.as_secs_f64());
    }

    pub fn record_restart(&self) {
        self.restarts.inc();
    }

    pub fn set_cursor(&self, seq: i64) {
        self.cursor.store(seq, Ordering::Relaxed);
    }

    /// Outbox events after the target's position (0 until the notifier has read it).
    pub fn queue_depth(&self, outbox_seq: i64) -> i64 {
        match self.cursor.load(Ordering::Relaxed) {
            c if c < 0 => 0,
            c => (outbox_seq - c).max(0),
        }
    }
}
