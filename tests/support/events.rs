//! End-to-end tests through a `file://` target: starting the in-process actor tree that writes
//! it, reading the events so far, and waiting for one. Included with
//! `#[path = "support/events.rs"] mod events;`.
#![allow(dead_code)] // each test uses some of these

use actix::prelude::*;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use vast_supervisor::actors::{Supervisor, SupervisorOptions};
use vast_supervisor::config::{AccountConfig, TargetConfig, TargetUrl};
use vast_supervisor::event::Event;
use vast_supervisor::store::StoreHandle;
use vast_supervisor::vast::ClientOptions;

/// The real actor tree with `accounts` (their state in `dir/state.db`), delivering to the file
/// target `out`.
pub fn start_file_supervisor(
    accounts: Vec<AccountConfig>,
    dir: &Path,
    out: &Path,
    client: ClientOptions,
) -> Addr<Supervisor> {
    let store = StoreHandle::open(&dir.join("state.db")).unwrap();
    let target = TargetConfig::with_defaults(
        "file",
        TargetUrl::File {
            path: out.to_path_buf(),
        },
    );
    let opts = SupervisorOptions {
        client,
        flush_timeout: Duration::from_secs(2),
        ..SupervisorOptions::default()
    };
    Supervisor::new(accounts, vec![target], store, opts).start()
}

/// Every event in the JSONL file (none if it does not exist yet). A last line without its
/// newline is left out: a daemon killed with SIGKILL may leave one half written.
pub fn read_events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("file target writes event JSON"))
        .collect()
}

/// Waits (15 s at most) until the file holds an event matching `pred`; returns every event then,
/// or panics naming what the file holds.
pub async fn wait_for(path: &Path, what: &str, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let events = read_events(path);
        if events.iter().any(&pred) {
            return events;
        }
        if tokio::time::Instant::now() > deadline {
            let seen: Vec<String> = events
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}",
                        e.account.clone().unwrap_or_default(),
                        e.subject.label(),
                        e.kind
                    )
                })
                .collect();
            panic!("timed out waiting for {what}; file holds {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every event once: after a SIGKILL a target may deliver an event again, with the same id.
pub fn unique(events: Vec<Event>) -> Vec<Event> {
    let mut seen = HashSet::new();
    events
        .into_iter()
        .filter(|e| seen.insert(e.id.clone()))
        .collect()
}
