//! The supervisor's status snapshot (see ARCHITECTURE "Status"): built from what the actors last
//! published, serialized once off the actor thread, rebuilt every second only while someone asks
//! for it. Decides nothing; it only gathers and publishes.

use super::{Supervisor, STATUS_DEMAND_WINDOW, STATUS_IDLE_EVERY};
use crate::actors::notifier::SharedTargetStatus;
use crate::control::{PublishedStatus, StatusCounts, StatusSnapshot};
use actix::prelude::*;
use bytes::Bytes;
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A snapshot older than this is refreshed before it is served, if that is quick.
const STALE_SNAPSHOT: Duration = Duration::from_secs(2);
/// How long a reader waits for that refresh before it is served the older snapshot.
const REFRESH_WAIT: Duration = Duration::from_millis(80);

impl Supervisor {
    /// Builds a status snapshot from what the actors last published and publishes it; resolves
    /// once it is published. Nothing here waits for an actor, so a busy account never delays
    /// `status`.
    pub(super) fn publish_status(&mut self) -> Option<impl ActorFuture<Self, Output = ()>> {
        if !self.status_ready {
            return None;
        }
        let tx = self.status_tx.clone()?;
        let demand = self.status_demand.clone();
        let account_status: Vec<_> = self
            .accounts
            .values()
            .filter_map(|(_, feed)| feed.borrow().clone())
            .collect();
        let targets: Vec<SharedTargetStatus> =
            self.notifiers.values().map(|(_, s)| s.clone()).collect();
        let max_seq = *self.store.subscribe().borrow();
        let started_at = self.started_at;
        let config_files = self.config_files.clone();
        let state_store = state_store_status(&self.store.health().borrow());
        Some(
            async move {
                let target_json: Vec<serde_json::Value> = targets
                    .iter()
                    .map(|t| {
                        let t = t.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        let mut v = serde_json::to_value(&t).unwrap_or_default();
                        v["queue_depth"] = json!((max_seq - t.cursor).max(0));
                        v
                    })
                    .collect();
                let not_ok = |state: Option<&str>| state.is_some_and(|s| s != "ok");
                let counts = StatusCounts {
                    accounts: account_status.len(),
                    accounts_not_ok: account_status
                        .iter()
                        .filter(|a| not_ok(Some(a.state)))
                        .count(),
                    machines: account_status.iter().map(|a| a.machines.len()).sum(),
                    instances: account_status.iter().map(|a| a.instances.len()).sum(),
                    targets_failing: target_json
                        .iter()
                        .filter(|t| not_ok(t.get("state").and_then(|s| s.as_str())))
                        .count(),
                };
                let now = Utc::now();
                let snapshot = StatusSnapshot {
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    started_at: started_at.to_rfc3339(),
                    uptime_seconds: (now - started_at).num_seconds().max(0) as u64,
                    config_files,
                    accounts: account_status,
                    targets: target_json,
                    outbox: json!({ "max_seq": max_seq }),
                    state_store,
                };
                // Serialized once here (off the actor thread: it is megabytes at the density
                // target) into one buffer of about the last snapshot's size, not a chain of
                // doubling ones; every `status` request then writes these bytes.
                let capacity = tx.borrow().json.len() * 9 / 8;
                let json = tokio::task::spawn_blocking(move || {
                    let mut buf = Vec::with_capacity(capacity);
                    serde_json::to_writer(&mut buf, &snapshot).map(|_| Bytes::from(buf))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
                match json {
                    Ok(json) => {
                        tx.send_replace(PublishedStatus { json, counts });
                    }
                    Err(e) => tracing::error!(error = %e, "cannot serialize the status snapshot"),
                }
                demand.published();
            }
            .into_actor(self),
        )
    }

    /// Snapshots cost a walk over every machine, so they are rebuilt every second only while
    /// someone asks for status, and every [`STATUS_IDLE_EVERY`] otherwise (for systemd's STATUS).
    pub(super) fn status_tick(&mut self, ctx: &mut Context<Self>) {
        let asked_recently = self
            .status_demand
            .last_request()
            .is_some_and(|t| t.elapsed() < STATUS_DEMAND_WINDOW);
        let due = self
            .status_demand
            .last_publish()
            .is_none_or(|t| t.elapsed() >= STATUS_IDLE_EVERY);
        if asked_recently || due {
            if let Some(fut) = self.publish_status() {
                ctx.spawn(fut);
            }
        }
    }
}

/// The state database in status.
fn state_store_status(health: &crate::store::StoreHealth) -> serde_json::Value {
    json!({
        "state": if health.failing() { "failing" } else { "ok" },
        "failed_commits": health.failed_commits,
        "failing_since": health.failing_since,
        "last_error": health.last_error,
        "kept_events": health.kept_events,
        "repairs": health.repairs.len(),
    })
}

/// Shared note of when `status` was last asked for and when a snapshot was last published, so
/// snapshots are rebuilt every second only while someone is looking.
#[derive(Clone, Default)]
pub struct StatusDemand(Arc<std::sync::Mutex<DemandTimes>>);

#[derive(Clone, Copy, Default)]
struct DemandTimes {
    requested: Option<tokio::time::Instant>,
    published: Option<tokio::time::Instant>,
}

impl StatusDemand {
    fn times(&self) -> std::sync::MutexGuard<'_, DemandTimes> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn asked(&self) {
        self.times().requested = Some(tokio::time::Instant::now());
    }

    pub fn last_request(&self) -> Option<tokio::time::Instant> {
        self.times().requested
    }

    /// Notes a read of the snapshot (`status`, a dashboard page or API answer). When nobody read
    /// it lately, so it is no longer rebuilt every second, first asks `supervisor` for a fresh
    /// one, waiting at most [`REFRESH_WAIT`] before the reader is served the older snapshot.
    pub async fn asked_fresh(&self, supervisor: Option<&Addr<Supervisor>>) {
        let stale = self
            .last_request()
            .is_none_or(|t| t.elapsed() > STALE_SNAPSHOT);
        self.asked();
        if let (true, Some(sup)) = (stale, supervisor) {
            let _ = tokio::time::timeout(REFRESH_WAIT, sup.send(RefreshStatus)).await;
        }
    }

    fn published(&self) {
        self.times().published = Some(tokio::time::Instant::now());
    }

    /// When the snapshot now served was built.
    pub fn last_publish(&self) -> Option<tokio::time::Instant> {
        self.times().published
    }
}

/// Rebuilds and publishes the status snapshot now; answers once it is published.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RefreshStatus;

impl Handler<RefreshStatus> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: RefreshStatus, _ctx: &mut Context<Self>) -> Self::Result {
        match self.publish_status() {
            Some(fut) => Box::pin(fut),
            None => Box::pin(actix::fut::ready(())),
        }
    }
}
