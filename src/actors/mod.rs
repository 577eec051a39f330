//! The actor tree (SPEC §2): supervisor -> one account actor per API key -> one machine actor per
//! machine and one instance actor per rented instance; one notifier actor per target. Actors do
//! scheduling, I/O and supervision only: every decision about what changed is made by the pure
//! core in `crate::detect`, every byte written to disk goes through `crate::store`, every HTTP
//! request to Vast through `crate::vast`.
//!
//! ```text
//! Supervisor ─┬─ AccountActor "alice" ─┬─ MachineActor 12345
//!             │                        ├─ MachineActor 67890
//!             │                        └─ InstanceActor 5003
//!             ├─ AccountActor "bob" ── ...
//!             ├─ NotifierActor "ops-discord"
//!             └─ NotifierActor "log-file"
//! ```
//!
//! Events never travel through actix mailboxes: detection commits them to the store's outbox and
//! each notifier reads the outbox from its own cursor, so a slow target cannot grow memory and a
//! crash cannot lose what was committed.

pub mod account;
pub mod instance;
pub mod machine;
pub mod notifier;
pub mod reload;
pub mod state_watch;
pub mod supervision;
pub mod supervisor;

pub use supervisor::{Supervisor, SupervisorOptions};

use crate::event::{Event, EventKind, Subject};
use crate::store::{Commit, StoreHandle};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};

/// A unique id for events that are not tied to a subject's persisted counter (supervisor events,
/// supervision alerts): the time plus a process-wide counter.
pub(crate) fn fresh_event_id(scope: &str, kind: EventKind, now: DateTime<Utc>) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{scope}:{kind}:{}:{n}", now.timestamp_millis())
}

/// Builds a supervisor-level event (no account).
pub(crate) fn supervisor_event(
    kind: EventKind,
    now: DateTime<Utc>,
    title: impl Into<String>,
    text: impl Into<String>,
    data: serde_json::Value,
) -> Event {
    Event::new(
        fresh_event_id("supervisor", kind, now),
        kind,
        None,
        Subject::Supervisor,
        now,
        title,
        text,
    )
    .with_data(data)
}

/// Queues events that carry no subject state (account and supervisor events). While the
/// database refuses writes the store keeps them in memory and commits them once it takes writes.
pub(crate) async fn queue_events(store: &StoreHandle, account: &str, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let kinds: Vec<&'static str> = events.iter().map(|e| e.kind.as_str()).collect();
    let commit = Commit {
        account: account.to_string(),
        kind: "account",
        id: account.to_string(),
        state: None,
        events,
    };
    if let Err(e) = store.apply(vec![commit]).await {
        tracing::error!(account, ?kinds, error = %e, "could not queue events");
    }
}
