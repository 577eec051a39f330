//! Makes the state database's trouble seen (issue: store failures must not go unnoticed). Follows
//! the health the store's writer publishes and turns it into metrics (`state_commit_failures_total`,
//! `state_failing`), log lines and one `state_failing` event per failing period, plus one per
//! repair of a damaged database (`data.reason` "commit_failed" or "corrupt").
//!
//! While commits fail, the outbox cannot take the `state_failing` event either. It is therefore
//! delivered twice over: straight from memory to every notifier through the [`UrgentFeed`] (the
//! targets that can still send get it at once; each sends it once, by id), and queued like any
//! event: the store keeps it in memory until the database takes writes again, so it lands in the
//! outbox (and in `events`) afterwards. A notifier skips the outbox copy of an event
//! it already sent from memory; after a restart it may deliver it once more, with the same id.
//!
//! Decides nothing about subjects: the accounts read the store's health themselves to show
//! "degraded" while it fails.

use super::{queue_events, supervisor_event};
use crate::event::{Event, EventKind};
use crate::metrics::Metrics;
use crate::store::{Commit, Repair, RepairRecord, StoreHandle, StoreHealth, REPAIR_KIND};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;

/// The latest event that must reach the notifiers without going through the outbox.
pub type UrgentFeed = watch::Receiver<Option<Arc<Event>>>;

/// Follows the store's health until the store closes.
pub(crate) async fn watch_state(
    store: StoreHandle,
    metrics: Arc<Metrics>,
    urgent: watch::Sender<Option<Arc<Event>>>,
) {
    let mut health = store.health();
    let mut repairs_reported = 0;
    let mut failing_reported = false;
    loop {
        let now: StoreHealth = health.borrow_and_update().clone();
        metrics.set_state_store(now.failed_commits, now.failing());
        for repair in now.repairs.iter().skip(repairs_reported) {
            announce_repair(&store, repair).await;
        }
        repairs_reported = now.repairs.len();
        match (now.failing_since, failing_reported) {
            (Some(since), false) => {
                failing_reported = true;
                let error = now.last_error.clone().unwrap_or_default();
                tracing::error!(error = %error, failed_commits = now.failed_commits,
                    "the state database refuses writes: changes are detected again and reported once it takes them; accounts show degraded meanwhile");
                let event = failing_event(since, &error, now.failed_commits);
                urgent.send_replace(Some(Arc::new(event.clone())));
                queue_events(&store, "", vec![event]).await;
            }
            (None, true) => {
                failing_reported = false;
                tracing::info!(
                    failed_commits = now.failed_commits,
                    "the state database takes writes again"
                );
            }
            _ => {}
        }
        if health.changed().await.is_err() {
            return;
        }
    }
}

fn failing_event(since: DateTime<Utc>, error: &str, failed_commits: u64) -> Event {
    supervisor_event(
        EventKind::StateFailing,
        since,
        "State database refuses writes",
        format!(
            "Commits to the state database fail ({error}). Nothing detected meanwhile is lost: each change is detected again and reported once the database takes writes (free disk space). Accounts show degraded and /health answers 503 until then."
        ),
        json!({ "reason": "commit_failed", "error": error, "since": since, "failed_commits": failed_commits }),
    )
}

/// Queues the repair's event and marks the repair announced in one commit, so it is announced
/// exactly once (a crash before the commit announces it again, by the same id).
async fn announce_repair(store: &StoreHandle, repair: &Repair) {
    let record = RepairRecord {
        repair: repair.clone(),
        announced: true,
    };
    let commit = Commit {
        account: String::new(),
        kind: REPAIR_KIND,
        id: repair.key(),
        state: serde_json::to_string(&record).ok(),
        events: vec![repaired_event(repair)],
    };
    if let Err(e) = store.apply(vec![commit]).await {
        tracing::error!(error = %e, "could not queue the repair's state_failing event");
    }
}

fn repaired_event(repair: &Repair) -> Event {
    let mut event = supervisor_event(
        EventKind::StateFailing,
        repair.at,
        "State database was damaged and repaired",
        format!(
            "The integrity check found: {}. The database was {}.",
            repair.problems.join("; "),
            repair.summary()
        ),
        json!({
            "reason": "corrupt",
            "action": repair.action.as_str(),
            "problems": repair.problems,
            "tables": repair.tables,
            "set_aside": repair.set_aside,
        }),
    );
    event.id = format!("supervisor:state_failing:repair:{}", repair.key());
    event
}
