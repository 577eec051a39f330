//! The store's writer thread and the async handle actors use to reach it.

use super::db::{Commit, Store};
use super::StoreError;
use chrono::Utc;
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::{oneshot, watch};

/// Commits waiting at once are applied in one transaction, up to this many.
const MAX_GROUP: usize = 512;

type Job = Box<dyn FnOnce(&mut Store) + Send>;
/// Commits waiting for the next group transaction, each with the channel its result goes to.
type Pending = Vec<(Vec<Commit>, oneshot::Sender<Result<i64, StoreError>>)>;

enum Request {
    Apply {
        commits: Vec<Commit>,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
    Run(Job),
}

/// A cheap, cloneable handle to the writer thread. Dropping the last handle stops the thread.
#[derive(Clone)]
pub struct StoreHandle {
    requests: mpsc::Sender<Request>,
    latest: watch::Receiver<i64>,
}

impl StoreHandle {
    /// Opens the database and starts its writer thread.
    pub fn open(path: &Path) -> Result<StoreHandle, StoreError> {
        let mut store = Store::open(path)?;
        let (latest_tx, latest) = watch::channel(store.max_seq()?);
        let (requests, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer_loop(&mut store, rx, latest_tx))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(StoreHandle { requests, latest })
    }

    /// Commits state changes with their events atomically; returns the outbox's highest sequence.
    pub async fn apply(&self, commits: Vec<Commit>) -> Result<i64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Apply { commits, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the writer thread (reads, cursors, pruning) and returns its result.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = reply.send(f(store));
        });
        self.requests
            .send(Request::Run(job))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Changes whenever new events are queued (the value is the highest sequence number).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.clone()
    }
}

fn writer_loop(store: &mut Store, rx: mpsc::Receiver<Request>, latest: watch::Sender<i64>) {
    while let Ok(first) = rx.recv() {
        let mut group: Pending = Vec::new();
        let mut pending = Some(first);
        // Take every commit already waiting so they share one transaction (group commit).
        while let Some(req) = pending.take() {
            match req {
                Request::Apply { commits, reply } => group.push((commits, reply)),
                Request::Run(job) => {
                    flush(store, &mut group, &latest);
                    job(store);
                }
            }
            if group.len() < MAX_GROUP {
                pending = rx.try_recv().ok();
            }
        }
        flush(store, &mut group, &latest);
    }
}

fn flush(store: &mut Store, group: &mut Pending, latest: &watch::Sender<i64>) {
    if group.is_empty() {
        return;
    }
    // Move every waiting commit into one transaction (no copy of the state JSON), remembering
    // which slice belongs to which caller for the fallback below.
    let mut all: Vec<Commit> = Vec::with_capacity(group.iter().map(|(c, _)| c.len()).sum());
    let mut replies = Vec::with_capacity(group.len());
    for (commits, reply) in group.drain(..) {
        let start = all.len();
        all.extend(commits);
        replies.push((start..all.len(), reply));
    }
    match store.apply(&all, Utc::now()) {
        Ok(seq) => {
            latest.send_if_modified(|cur| {
                let changed = *cur != seq;
                *cur = seq;
                changed
            });
            for (_, reply) in replies {
                let _ = reply.send(Ok(seq));
            }
        }
        Err(_) => {
            // Apply one by one so a single bad commit fails alone, with its own error.
            for (range, reply) in replies {
                let result = store.apply(&all[range], Utc::now());
                if let Ok(seq) = result {
                    latest.send_replace(seq);
                }
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Subject};

    #[tokio::test]
    async fn concurrent_commits_all_land_and_wake_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let h = StoreHandle::open(&dir.path().join("s.db")).unwrap();
        let mut sub = h.subscribe();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                let e = Event::new(
                    format!("e{i}"),
                    EventKind::MachineAdded,
                    Some("a".into()),
                    Subject::Machine { id: i, name: None },
                    Utc::now(),
                    "t",
                    "",
                );
                h.apply(vec![Commit {
                    account: "a".into(),
                    kind: "machine",
                    id: i.to_string(),
                    state: Some("{}".into()),
                    events: vec![e],
                }])
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        sub.changed().await.unwrap();
        assert_eq!(h.run(|s| s.max_seq()).await.unwrap(), 50);
        assert_eq!(*h.subscribe().borrow(), 50);
    }
}
