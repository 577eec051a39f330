//! One actor per notification target. Its delivery loop reads the durable outbox from the target's
//! own cursor (never an actix mailbox, so a stuck target cannot grow memory), keeps the target's
//! order, waits on its token bucket, honours 429 `retry_after` exactly, retries transient failures
//! with jittered exponential backoff until an event is older than `max_age`, and disables the
//! target on a permanent failure. A message the service refuses by itself (too large, invalid:
//! `SendError::Rejected`) is skipped with a warning and counted as dropped; the target stays
//! enabled (a refused batch is retried one event at a time first). The cursor advances only
//! after the service accepted (or refused) the message, so a crash re-sends (with the same event
//! id) instead of losing. A panic in the loop is caught
//! and the loop restarts from the stored cursor; more than the restart policy allows within its
//! window marks the target degraded (one `target_failing`) and the loop backs off with growing
//! pauses. Every send, failed attempt (by reason), drop and restart is counted in the metrics.

use super::state_watch::UrgentFeed;
use super::supervision::{RestartLog, RestartPolicy, Verdict};
use super::{queue_events, supervisor_event};
use crate::backoff::{Backoff, Jitter};
use crate::config::TargetConfig;
use crate::event::{Event, EventKind};
use crate::metrics::TargetMetrics;
use crate::notify::{default_bucket, Notifier, SendError, TokenBucket, MAX_RETRY_AFTER};
use crate::store::{QueuedEvent, StoreError, StoreHandle};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde_json::json;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// How many outbox rows one read takes.
const READ_BATCH: usize = 256;
/// A failed read of the outbox or of the cursor is tried again after this long.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Retry timing of a notifier. The defaults suit real services; tests and benchmarks shrink them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryTuning {
    /// First retry after a transient failure waits about this long; each further one doubles.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Transient failures lasting this long raise `target_failing` on the other targets.
    pub failing_after: Duration,
}

impl Default for DeliveryTuning {
    fn default() -> Self {
        DeliveryTuning {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            failing_after: Duration::from_secs(300),
        }
    }
}

/// What status shows about a target.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub service: String,
    /// "ok", "retrying", "disabled" or "degraded" (the delivery loop keeps panicking).
    pub state: String,
    pub cursor: i64,
    pub sent: u64,
    /// Failed attempts (every reason), as `send_failures_total` counts them.
    pub failed: u64,
    pub dropped: u64,
    pub restarts: u32,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

pub type SharedTargetStatus = Arc<Mutex<TargetStatus>>;

pub struct NotifierActor {
    target: TargetConfig,
    store: StoreHandle,
    http: reqwest::Client,
    status: SharedTargetStatus,
    tuning: DeliveryTuning,
    metrics: Arc<TargetMetrics>,
    restart_policy: RestartPolicy,
    /// Events that reach the target straight from memory (see `state_watch`).
    urgent: UrgentFeed,
}

impl NotifierActor {
    pub fn new(
        target: TargetConfig,
        store: StoreHandle,
        http: reqwest::Client,
        tuning: DeliveryTuning,
    ) -> NotifierActor {
        let status = Arc::new(Mutex::new(TargetStatus {
            name: target.name.clone(),
            service: target.url.service().to_string(),
            state: "ok".into(),
            ..Default::default()
        }));
        NotifierActor {
            target,
            store,
            http,
            status,
            tuning,
            metrics: Arc::default(),
            restart_policy: RestartPolicy::default(),
            urgent: tokio::sync::watch::channel(None).1,
        }
    }

    /// The feed of events to send straight from memory (the supervisor's `state_watch`).
    pub fn with_urgent(mut self, urgent: UrgentFeed) -> NotifierActor {
        self.urgent = urgent;
        self
    }

    /// The target's metrics and the restart policy of its delivery loop, from the supervisor.
    pub fn with_ops(mut self, metrics: Arc<TargetMetrics>, policy: RestartPolicy) -> NotifierActor {
        self.metrics = metrics;
        self.restart_policy = policy;
        self
    }

    pub fn status(&self) -> SharedTargetStatus {
        self.status.clone()
    }
}

impl Actor for NotifierActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let target = self.target.clone();
        let store = self.store.clone();
        let http = self.http.clone();
        let status = self.status.clone();
        let tuning = self.tuning;
        let metrics = self.metrics.clone();
        let policy = self.restart_policy;
        let urgent = self.urgent.clone();
        ctx.spawn(
            async move {
                // One guard for every source of `target_failing`, kept across loop restarts.
                let alarm = SharedAlarm::default();
                let mut restart_log = RestartLog::default();
                let mut sent_at_restart = 0;
                loop {
                    // Every line logged while delivering (the services' too) names the target.
                    let span = tracing::info_span!("notify", target = %target.name);
                    let run = AssertUnwindSafe(deliver(target.clone(), store.clone(), http.clone(), status.clone(), tuning, metrics.clone(), Alerting { alarm: alarm.clone(), urgent: urgent.clone() }).instrument(span));
                    match run.catch_unwind().await {
                        Ok(Exit::Disabled) | Ok(Exit::StoreClosed) => return,
                        Err(_) => {
                            metrics.record_restart();
                            let (restarts, sent) = {
                                let mut s = lock(&status);
                                s.restarts += 1;
                                (s.restarts, s.sent)
                            };
                            // Delivering something since the last restart ends a degraded period.
                            if sent > sent_at_restart {
                                restart_log.record_success();
                            }
                            sent_at_restart = sent;
                            match restart_log.record_failure(Instant::now(), &policy) {
                                Verdict::Restart => {
                                    tracing::error!(target = %target.name, restarts, "delivery loop panicked; restarting from the stored cursor");
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                                Verdict::Degraded { newly, pause } => {
                                    lock(&status).state = "degraded".into();
                                    tracing::error!(target = %target.name, restarts, pause_seconds = pause.as_secs_f64(),
                                        "delivery loop keeps panicking; degraded, backing off");
                                    if newly {
                                        let why = format!(
                                            "its delivery loop failed more than {} times within {}s; retrying with growing pauses",
                                            policy.max_restarts,
                                            policy.window.as_secs()
                                        );
                                        raise_failing(&target, &store, &alarm, &why, false).await;
                                    }
                                    tokio::time::sleep(pause).await;
                                }
                            }
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}

/// Asks for the target's status.
#[derive(Message)]
#[rtype(result = "TargetStatus")]
pub struct GetTargetStatus;

impl Handler<GetTargetStatus> for NotifierActor {
    type Result = MessageResult<GetTargetStatus>;

    fn handle(&mut self, _msg: GetTargetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(lock(&self.status).clone())
    }
}

/// Stops the target (shutdown or removed by a reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopNotifier;

impl Handler<StopNotifier> for NotifierActor {
    type Result = ();

    fn handle(&mut self, _msg: StopNotifier, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the counters are still usable.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

enum Exit {
    Disabled,
    StoreClosed,
}

/// Whether this target should get `event`. A target never receives its own `target_failing`.
fn wanted(target: &TargetConfig, event: &Event) -> bool {
    if event.kind == EventKind::TargetFailing
        && event.data.get("target").and_then(|t| t.as_str()) == Some(target.name.as_str())
    {
        return false;
    }
    target.wants(event.kind, event.severity, event.account.as_deref())
}

/// The delivery loop's side channels, kept across its restarts: the one-per-period guard of
/// `target_failing`, and the events handed over from memory while the outbox refuses writes.
struct Alerting {
    alarm: SharedAlarm,
    urgent: UrgentFeed,
}

async fn deliver(
    target: TargetConfig,
    store: StoreHandle,
    http: reqwest::Client,
    status: SharedTargetStatus,
    tuning: DeliveryTuning,
    metrics: Arc<TargetMetrics>,
    alerting: Alerting,
) -> Exit {
    let Alerting { alarm, urgent } = alerting;
    let name = target.name.clone();
    let notifier = match Notifier::new(&target, http) {
        Ok(n) => n,
        Err(e) => {
            failed_attempt(&metrics, &status, "config");
            disable(&target, &store, &status, &alarm, &e).await;
            return Exit::Disabled;
        }
    };
    let mut latest = store.subscribe();
    let mut cursor = loop {
        let (n, since) = (name.clone(), replay_since(&target));
        match store.run(move |s| s.cursor_or_init(&n, since)).await {
            Ok(c) => break c,
            Err(StoreError::Closed) => return Exit::StoreClosed,
            Err(e) => store_trouble(&status, "cannot read the delivery position", &e).await,
        }
    };
    lock(&status).cursor = cursor;
    metrics.set_cursor(cursor);
    let mut delivery = Delivery {
        bucket: default_bucket(target.url.service()),
        target: target.clone(),
        store: store.clone(),
        status: status.clone(),
        tuning,
        metrics: metrics.clone(),
        notifier,
        failing_since: None,
        alarm,
        urgent,
        sent_urgent: HashSet::new(),
    };
    loop {
        delivery.send_urgent().await;
        let batch = match store.run(move |s| s.events_after(cursor, READ_BATCH)).await {
            Ok(b) => b,
            Err(StoreError::Closed) => return Exit::StoreClosed,
            Err(e) => {
                store_trouble(&status, "cannot read the outbox", &e).await;
                continue;
            }
        };
        store_fine(&status);
        let Some(last_seq) = batch.last().map(|q| q.seq) else {
            // The outbox is drained: events dropped on the way are reported now, once.
            delivery.report_drops().await;
            tokio::select! {
                changed = latest.changed() => if changed.is_err() {
                    return Exit::StoreClosed;
                },
                _ = delivery.urgent_arrives() => {}
            }
            continue;
        };
        let Some(first) = batch.iter().position(|q| delivery.wants(&q.event)) else {
            cursor = advance(&store, &status, &metrics, &name, last_seq).await;
            continue;
        };
        let (unit, unit_end) = if !target.batch_window.is_zero() {
            // Wait for the window after the first wanted event, then send everything queued
            // by then as one digest.
            let since_event = (Utc::now() - batch[first].event.time)
                .to_std()
                .unwrap_or_default();
            if since_event < target.batch_window {
                tokio::time::sleep(target.batch_window - since_event).await;
            }
            let all = match store.run(move |s| s.events_after(cursor, READ_BATCH)).await {
                Ok(b) => b,
                Err(_) => continue,
            };
            let end = all.last().map(|q| q.seq).unwrap_or(last_seq);
            (
                all.into_iter()
                    .filter(|q| delivery.wants(&q.event))
                    .collect::<Vec<_>>(),
                end,
            )
        } else if target.batch_size > 1 {
            let unit: Vec<QueuedEvent> = batch[first..]
                .iter()
                .filter(|q| delivery.wants(&q.event))
                .take(target.batch_size)
                .cloned()
                .collect();
            let end = unit.last().map(|q| q.seq).unwrap_or(last_seq);
            (unit, end)
        } else {
            (vec![batch[first].clone()], batch[first].seq)
        };
        if delivery.deliver_unit(unit).await.is_err() {
            return Exit::Disabled;
        }
        cursor = advance(&store, &status, &metrics, &name, unit_end).await;
    }
}

/// What became of one message (one event, or a batch) after its retries.
enum Outcome {
    /// The service accepted it, or every event in it grew older than `max_age`.
    Done,
    /// The service refused this message itself (too large, invalid); the target is fine.
    Rejected {
        reason: &'static str,
        detail: String,
    },
    /// A permanent failure disabled the target.
    Disabled,
}

/// The target has been disabled; the delivery loop ends.
struct TargetDisabled;

/// The delivery loop's state that outlives one message: the sender, its rate limit, and how
/// long the target has been failing.
struct Delivery {
    target: TargetConfig,
    store: StoreHandle,
    status: SharedTargetStatus,
    tuning: DeliveryTuning,
    metrics: Arc<TargetMetrics>,
    notifier: Notifier,
    bucket: TokenBucket,
    failing_since: Option<Instant>,
    alarm: SharedAlarm,
    /// Events handed over from memory while the outbox cannot take them (`state_watch`).
    urgent: UrgentFeed,
    /// Ids of those already sent: their outbox copies are skipped.
    sent_urgent: HashSet<String>,
}

impl Delivery {
    /// Whether this target should get `event` from the outbox.
    fn wants(&self, event: &Event) -> bool {
        wanted(&self.target, event) && !self.sent_urgent.contains(&event.id)
    }

    /// Resolves when an event arrives on the urgent feed (never, once the feed is gone).
    async fn urgent_arrives(&mut self) {
        if self.urgent.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sends the latest urgent event once, if this target wants it and has not sent it. One
    /// attempt: if it fails, the event still arrives through the outbox later.
    async fn send_urgent(&mut self) {
        let Some(event) = self.urgent.borrow_and_update().clone() else {
            return;
        };
        if !self.wants(&event) {
            return;
        }
        self.sent_urgent.insert(event.id.clone());
        while let Err(wait) = self.bucket.try_take(std::time::Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        match self.notifier.send(std::slice::from_ref(&event)).await {
            Ok(_) => {
                self.metrics.record_sent(1);
                let mut s = lock(&self.status);
                s.sent += 1;
                s.last_success = Some(Utc::now());
            }
            Err(e) => {
                tracing::warn!(target = %self.target.name, event_id = %event.id, kind = %event.kind, error = %e,
                    "could not send an event straight from memory; it follows through the outbox");
                self.sent_urgent.remove(&event.id);
            }
        }
    }

    /// Delivers `unit` (in outbox order) or skips what the service refuses. A refused batch is
    /// sent again one event at a time, so only the events that cannot be delivered on their own
    /// are skipped (parts of a split digest the service had accepted may arrive twice). Within
    /// such a retry the cursor advances after each event; the caller advances past the unit.
    async fn deliver_unit(&mut self, unit: Vec<QueuedEvent>) -> Result<(), TargetDisabled> {
        let events: Vec<Event> = unit.iter().map(|q| q.event.clone()).collect();
        let (reason, detail) = match self.send_with_retries(events).await {
            Outcome::Done => return Ok(()),
            Outcome::Disabled => return Err(TargetDisabled),
            Outcome::Rejected { reason, detail } => (reason, detail),
        };
        if let [only] = unit.as_slice() {
            self.skip(&only.event, reason, &detail);
            return Ok(());
        }
        tracing::warn!(target = %self.target.name, events = unit.len(), reason, error = %detail,
            "the service refused the batch; sending its events one at a time");
        for queued in unit {
            match self.send_with_retries(vec![queued.event.clone()]).await {
                Outcome::Done => {}
                Outcome::Disabled => return Err(TargetDisabled),
                Outcome::Rejected { reason, detail } => self.skip(&queued.event, reason, &detail),
            }
            advance(
                &self.store,
                &self.status,
                &self.metrics,
                &self.target.name,
                queued.seq,
            )
            .await;
        }
        Ok(())
    }

    /// Sends `events` as one message until the service accepts it, refuses it, or the target
    /// is disabled; events older than `max_age` are dropped on the way.
    async fn send_with_retries(&mut self, mut events: Vec<Event>) -> Outcome {
        let name = self.target.name.clone();
        let mut attempt: u32 = 0;
        loop {
            let now = Utc::now();
            let before = events.len();
            events.retain(|e| (now - e.time).to_std().unwrap_or_default() <= self.target.max_age);
            let dropped = before - events.len();
            if dropped > 0 {
                lock(&self.status).dropped += dropped as u64;
                self.metrics.record_dropped("max_age", dropped);
                tracing::warn!(target = %name, dropped, "events older than max_age dropped");
                lock(&self.alarm).dropped(dropped as u64);
            }
            if events.is_empty() {
                // Consecutive drops (a backlog expiring) add up into one report.
                return Outcome::Done;
            }
            self.report_drops().await;
            loop {
                match self.bucket.try_take(std::time::Instant::now()) {
                    Ok(()) => break,
                    Err(wait) => tokio::time::sleep(wait).await,
                }
            }
            let sending = std::time::Instant::now();
            let sent = self.notifier.send(&events).await;
            self.metrics.observe_delivery(sending.elapsed());
            match sent {
                Ok(delivered) => {
                    self.metrics.record_sent(events.len());
                    if let Some(hint) = &delivered.rate {
                        self.bucket.apply_hint(hint, std::time::Instant::now());
                    }
                    let mut s = lock(&self.status);
                    s.sent += events.len() as u64;
                    s.last_success = Some(Utc::now());
                    s.state = "ok".into();
                    drop(s);
                    self.answered();
                    return Outcome::Done;
                }
                Err(SendError::RateLimited { retry_after }) => {
                    failed_attempt(&self.metrics, &self.status, "rate_limited");
                    let wait = retry_after.min(MAX_RETRY_AFTER);
                    tracing::info!(target = %name, retry_after_ms = wait.as_millis() as u64, "rate limited; waiting as told");
                    lock(&self.status).last_error =
                        Some(format!("rate limited, retry after {wait:?}"));
                    self.wait_rate_limited(wait, &events).await;
                }
                Err(SendError::Transient { reason, detail }) => {
                    failed_attempt(&self.metrics, &self.status, reason);
                    attempt += 1;
                    let since = *self.failing_since.get_or_insert_with(Instant::now);
                    {
                        let mut s = lock(&self.status);
                        s.state = "retrying".into();
                        s.last_error = Some(format!("{reason}: {detail}"));
                    }
                    if since.elapsed() >= self.tuning.failing_after {
                        raise_failing(
                            &self.target,
                            &self.store,
                            &self.alarm,
                            &format!(
                                "failing for {}s: {reason}: {detail}",
                                since.elapsed().as_secs()
                            ),
                            false,
                        )
                        .await;
                    }
                    let backoff = backoff_delay(&self.tuning, attempt);
                    tracing::warn!(target = %name, attempt, reason, error = %detail, backoff_ms = backoff.as_millis() as u64, "send failed; will retry");
                    tokio::time::sleep(backoff).await;
                }
                Err(SendError::Rejected { reason, detail }) => {
                    failed_attempt(&self.metrics, &self.status, reason);
                    self.answered();
                    return Outcome::Rejected { reason, detail };
                }
                Err(SendError::Permanent { reason, detail }) => {
                    failed_attempt(&self.metrics, &self.status, reason);
                    disable(
                        &self.target,
                        &self.store,
                        &self.status,
                        &self.alarm,
                        &format!("{reason}: {detail}"),
                    )
                    .await;
                    return Outcome::Disabled;
                }
            }
        }
    }

    /// Waits out a rate limit. The wait counts as failing time (`target_failing` once it reaches
    /// `failing_after`, when that comes, under the same one-per-period guard as every other
    /// source), and ends early when the oldest event would pass `max_age`, so the caller drops it
    /// as it would after any failure.
    async fn wait_rate_limited(&mut self, wait: Duration, events: &[Event]) {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        let mut until = Instant::now() + wait;
        if let Some(oldest) = events.iter().map(|e| e.time).min() {
            let age = (Utc::now() - oldest).to_std().unwrap_or_default();
            until = until.min(Instant::now() + self.target.max_age.saturating_sub(age));
        }
        let failing_at = since + self.tuning.failing_after;
        if failing_at < until {
            tokio::time::sleep_until(failing_at).await;
            let why = format!(
                "rate limited for {}s (the service asks to wait {}s)",
                since.elapsed().as_secs(),
                wait.as_secs()
            );
            raise_failing(&self.target, &self.store, &self.alarm, &why, false).await;
        }
        tokio::time::sleep_until(until).await;
    }

    /// The service answered (accepted or refused one message): it is reachable again, and the
    /// failing period (if any) ends.
    fn answered(&mut self) {
        if lock(&self.alarm).end_period() {
            tracing::info!(target = %self.target.name, "target delivers again");
        }
        self.failing_since = None;
    }

    /// Raises `target_failing` for events dropped by `max_age` and not yet reported.
    async fn report_drops(&self) {
        let Some(dropped) = lock(&self.alarm).unreported_drops() else {
            return;
        };
        let why = format!(
            "dropped {} older than max_age",
            crate::util::counted(dropped as usize, "event")
        );
        raise_failing(&self.target, &self.store, &self.alarm, &why, false).await;
    }

    /// Gives up on one event the service refused; the target stays enabled and goes on with
    /// the next event. The detail was redacted by the notify module.
    fn skip(&self, event: &Event, reason: &'static str, detail: &str) {
        tracing::warn!(target = %self.target.name, event_id = %event.id, kind = %event.kind, reason,
            error = %detail, "the service refused this message; skipped, the target stays enabled");
        self.metrics.record_dropped(reason, 1);
        let mut s = lock(&self.status);
        s.dropped += 1;
        s.state = "ok".into();
        s.last_error = Some(format!(
            "event {} ({}) rejected, {reason}: {detail}",
            event.id, event.kind
        ));
    }
}

/// Counts one failed attempt, in the metrics (`send_failures_total`, by reason) and in the
/// `failed` count of status, so the two always agree.
fn failed_attempt(metrics: &TargetMetrics, status: &SharedTargetStatus, reason: &str) {
    metrics.record_failure(reason);
    lock(status).failed += 1;
}

/// The wait before retry `attempt` of a send.
fn backoff_delay(tuning: &DeliveryTuning, attempt: u32) -> Duration {
    Backoff {
        base: tuning.backoff_base,
        cap: tuning.backoff_cap,
        jitter: Jitter::AROUND,
    }
    .delay(attempt)
}

/// The state database cannot be read: status says so (not "ok"), and the loop tries again.
async fn store_trouble(status: &SharedTargetStatus, what: &str, error: &StoreError) {
    tracing::error!(error = %error, "{what}; trying again");
    {
        let mut s = lock(status);
        s.state = "retrying".into();
        s.last_error = Some(format!("{what}: {error}"));
    }
    tokio::time::sleep(STORE_RETRY).await;
}

/// Reading works again after [`store_trouble`].
fn store_fine(status: &SharedTargetStatus) {
    let mut s = lock(status);
    let troubled = s.state == "retrying"
        && s.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("cannot read the"));
    if troubled {
        s.state = "ok".into();
    }
}

/// Where a target whose delivery position was lost starts again: its `max_age` ago (older
/// events would be dropped anyway).
pub(crate) fn replay_since(target: &TargetConfig) -> DateTime<Utc> {
    let max_age = chrono::TimeDelta::from_std(target.max_age).unwrap_or(chrono::TimeDelta::MAX);
    Utc::now()
        .checked_sub_signed(max_age)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

async fn advance(
    store: &StoreHandle,
    status: &SharedTargetStatus,
    metrics: &TargetMetrics,
    name: &str,
    seq: i64,
) -> i64 {
    let n = name.to_string();
    if let Err(e) = store.run(move |s| s.set_cursor(&n, seq)).await {
        tracing::error!(target = %name, error = %e, "cannot store the delivery cursor");
    }
    lock(status).cursor = seq;
    metrics.set_cursor(seq);
    seq
}

async fn disable(
    target: &TargetConfig,
    store: &StoreHandle,
    status: &SharedTargetStatus,
    alarm: &SharedAlarm,
    why: &str,
) {
    tracing::error!(target = %target.name, error = %why, "target disabled after a permanent failure; a reload re-enables it");
    {
        let mut s = lock(status);
        s.state = "disabled".into();
        s.last_error = Some(why.to_string());
    }
    raise_failing(target, store, alarm, why, true).await;
}

/// The `target_failing` guard of one target. A failing period lasts until the service answers
/// again; it raises at most one `target_failing`, whatever its sources (transient failures past
/// `failing_after`, events dropped by `max_age`, a delivery loop that keeps panicking). Disabling
/// the target is announced even after such an alert, since only a reload brings it back; it
/// happens once, as delivery then stops. Events dropped in the period are counted into the alert
/// (`data.dropped`).
#[derive(Debug, Default)]
struct FailingAlarm {
    /// `target_failing` went out in this period.
    reported: bool,
    /// Events dropped by `max_age` in this period.
    dropped: u64,
    /// Some of them are not covered by an alert yet.
    drops_unreported: bool,
}

type SharedAlarm = Arc<Mutex<FailingAlarm>>;

impl FailingAlarm {
    fn dropped(&mut self, n: u64) {
        self.dropped += n;
        self.drops_unreported = true;
    }

    /// The count to report when dropped events still need an alert.
    fn unreported_drops(&mut self) -> Option<u64> {
        match (self.drops_unreported, self.reported) {
            (false, _) => None,
            (true, true) => {
                self.drops_unreported = false;
                None
            }
            (true, false) => Some(self.dropped),
        }
    }

    /// Whether an alert may go out now; if so it counts as this period's alert. Returns the
    /// events dropped so far in the period.
    fn claim(&mut self, disabled: bool) -> Option<u64> {
        if self.reported && !disabled {
            return None;
        }
        self.reported = true;
        self.drops_unreported = false;
        Some(self.dropped)
    }

    /// The service answered: the period ends. Whether it had raised an alert.
    fn end_period(&mut self) -> bool {
        std::mem::take(self).reported
    }
}

async fn raise_failing(
    target: &TargetConfig,
    store: &StoreHandle,
    alarm: &SharedAlarm,
    why: &str,
    disabled: bool,
) {
    let Some(dropped) = lock(alarm).claim(disabled) else {
        tracing::debug!(target = %target.name, error = %why, "target_failing already sent for this failing period");
        return;
    };
    let now = Utc::now();
    let title = if disabled {
        format!("Target {} disabled", target.name)
    } else {
        format!("Target {} is failing", target.name)
    };
    let event = supervisor_event(
        EventKind::TargetFailing,
        now,
        title,
        format!("{} ({}): {why}", target.name, target.url.service()),
        json!({ "target": target.name, "service": target.url.service(), "disabled": disabled, "error": why, "dropped": dropped }),
    );
    queue_events(store, "", vec![event]).await;
}
