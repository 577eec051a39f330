//! The store's writer thread and the async handle actors use to reach it.
//!
//! Besides running requests, the writer watches the database's health and publishes it
//! ([`StoreHealth`]): a commit that fails (full disk, I/O error) is counted and the store is
//! "failing" until commits succeed again; the caller keeps its previous state, so the change is
//! detected and committed again later. Commits of events without subject state (supervisor and
//! account events, which nothing would detect again) are kept in memory when they fail and
//! retried every second until they land. SQLite reporting corruption triggers an integrity check
//! and a repair (at most once a minute). The write-ahead log is checkpointed into the database
//! file periodically and when the handle is dropped, so a copy of `state.db` alone is a backup.

use super::db::{Commit, Store};
use super::repair::Repair;
use super::StoreError;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Commits waiting at once are applied in one transaction, up to this many.
const MAX_GROUP: usize = 512;
/// Event-only commits kept in memory while the database refuses writes, at most.
const MAX_KEPT_EVENTS: usize = 10_000;
/// How often kept events are retried (and the checkpoint schedule looked at) while idle.
const TICK: Duration = Duration::from_secs(1);
/// Corruption met at run time triggers a check at most this often.
const REPAIR_AT_MOST_EVERY: Duration = Duration::from_secs(60);

type Job = Box<dyn FnOnce(&mut Store) + Send>;
type Reply = oneshot::Sender<Result<i64, StoreError>>;

enum Request {
    Apply {
        commits: Vec<Commit>,
        reply: Reply,
        /// Event-only commits: kept and retried when they fail.
        keep: bool,
    },
    Run(Job),
    /// Checkpoints the write-ahead log now.
    Checkpoint(oneshot::Sender<()>),
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// The write-ahead log is checkpointed into the database file this often (when written to).
    pub checkpoint_every: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            checkpoint_every: Duration::from_secs(60),
        }
    }
}

/// How the state database is doing, as the writer sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreHealth {
    /// Since when commits fail (`None`: they work).
    pub failing_since: Option<DateTime<Utc>>,
    /// The last commit error.
    pub last_error: Option<String>,
    /// Commits refused since start-up (retries of kept events not counted).
    pub failed_commits: u64,
    /// Event-only commits kept in memory until the database takes writes again.
    pub kept_events: usize,
    /// Every repair since start-up (at opening included), oldest first.
    pub repairs: Vec<Repair>,
}

impl StoreHealth {
    pub fn failing(&self) -> bool {
        self.failing_since.is_some()
    }
}

/// A cheap, cloneable handle to the writer thread. Dropping the last handle stops the thread
/// (after a final checkpoint).
#[derive(Clone)]
pub struct StoreHandle {
    requests: mpsc::Sender<Request>,
    latest: watch::Receiver<i64>,
    health: watch::Receiver<StoreHealth>,
}

impl StoreHandle {
    /// Opens the database (checking and repairing it) and starts its writer thread.
    pub fn open(path: &Path) -> Result<StoreHandle, StoreError> {
        StoreHandle::open_with(path, StoreOptions::default())
    }

    pub fn open_with(path: &Path, opts: StoreOptions) -> Result<StoreHandle, StoreError> {
        let mut store = Store::open(path)?;
        let (latest_tx, latest) = watch::channel(store.max_seq()?);
        let (health_tx, health) = watch::channel(StoreHealth {
            repairs: store.take_repairs(),
            ..StoreHealth::default()
        });
        let (requests, rx) = mpsc::channel::<Request>();
        let mut writer = Writer {
            store,
            latest: latest_tx,
            health: health_tx,
            kept: VecDeque::new(),
            opts,
            last_checkpoint: Instant::now(),
            written: false,
            last_repair: None,
        };
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(StoreHandle {
            requests,
            latest,
            health,
        })
    }

    /// Commits state changes with their events atomically; returns the outbox's highest sequence.
    pub async fn apply(&self, commits: Vec<Commit>) -> Result<i64, StoreError> {
        self.send_apply(commits, false).await
    }

    /// Commits events that no subject state stands for (supervisor and account events). When
    /// the database refuses them they are kept in memory and committed once it takes writes
    /// again; the error then says so.
    pub async fn queue(&self, commits: Vec<Commit>) -> Result<i64, StoreError> {
        self.send_apply(commits, true).await
    }

    async fn send_apply(&self, commits: Vec<Commit>, keep: bool) -> Result<i64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Apply {
                commits,
                reply,
                keep,
            })
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
            let result = f(store);
            if result.as_ref().is_err_and(StoreError::is_corruption) {
                store.note_corruption();
            }
            let _ = reply.send(result);
        });
        self.requests
            .send(Request::Run(job))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Checkpoints the write-ahead log into the database file (a clean stop does this).
    pub async fn checkpoint(&self) {
        let (done, rx) = oneshot::channel();
        if self.requests.send(Request::Checkpoint(done)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Changes whenever new events are queued (the value is the highest sequence number).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.clone()
    }

    /// The database's health, updated by the writer.
    pub fn health(&self) -> watch::Receiver<StoreHealth> {
        self.health.clone()
    }
}

/// One caller's commits in a group, or kept events (no caller waits for them).
struct Pending {
    commits: Vec<Commit>,
    reply: Option<Reply>,
    keep: bool,
}

struct Writer {
    store: Store,
    latest: watch::Sender<i64>,
    health: watch::Sender<StoreHealth>,
    /// Event-only commits that failed, oldest first.
    kept: VecDeque<Vec<Commit>>,
    opts: StoreOptions,
    last_checkpoint: Instant,
    /// Something was committed since the last checkpoint.
    written: bool,
    last_repair: Option<Instant>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Request>) {
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.flush(Vec::new());
                    self.maintain();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group: Vec<Pending> = Vec::new();
            let mut pending = Some(first);
            // Take every commit already waiting so they share one transaction (group commit).
            while let Some(req) = pending.take() {
                match req {
                    Request::Apply {
                        commits,
                        reply,
                        keep,
                    } => group.push(Pending {
                        commits,
                        reply: Some(reply),
                        keep,
                    }),
                    Request::Run(job) => {
                        self.flush(std::mem::take(&mut group));
                        job(&mut self.store);
                    }
                    Request::Checkpoint(done) => {
                        self.flush(std::mem::take(&mut group));
                        self.checkpoint();
                        let _ = done.send(());
                    }
                }
                if group.len() < MAX_GROUP {
                    pending = rx.try_recv().ok();
                }
            }
            self.flush(group);
            self.maintain();
        }
        self.flush(Vec::new());
        self.checkpoint();
    }

    /// Commits `group` after the kept events, in one transaction when possible.
    fn flush(&mut self, group: Vec<Pending>) {
        let kept = self.kept.drain(..).map(|commits| Pending {
            commits,
            reply: None,
            keep: true,
        });
        let group: Vec<Pending> = kept.chain(group).collect();
        if group.is_empty() {
            return;
        }
        // Move every waiting commit into one transaction (no copy of the state JSON), remembering
        // which slice belongs to which caller for the fallback below.
        let mut all: Vec<Commit> = Vec::with_capacity(group.iter().map(|p| p.commits.len()).sum());
        let mut parts = Vec::with_capacity(group.len());
        for p in group {
            let start = all.len();
            all.extend(p.commits);
            parts.push((start..all.len(), p.reply, p.keep));
        }
        let (mut ok, mut failed) = (0, 0);
        let mut last_error = None;
        let mut replies: Vec<(Reply, Result<i64, StoreError>)> = Vec::new();
        match self.store.apply(&all, Utc::now()) {
            Ok(seq) => {
                self.published(seq);
                ok = parts.len();
                replies.extend(
                    parts
                        .into_iter()
                        .filter_map(|(_, r, _)| Some((r?, Ok(seq)))),
                );
            }
            Err(_) => {
                // Apply one by one so a single bad commit fails alone, with its own error.
                for (range, reply, keep) in parts {
                    let result = self.store.apply(&all[range.clone()], Utc::now());
                    match &result {
                        Ok(seq) => {
                            ok += 1;
                            self.published(*seq);
                        }
                        Err(e) => {
                            if e.is_corruption() {
                                self.store.note_corruption();
                            }
                            // Retries of kept events are not new failures.
                            failed += u64::from(reply.is_some());
                            last_error = Some(e.to_string());
                            if keep {
                                self.keep(all[range].to_vec());
                            }
                        }
                    }
                    replies.extend(reply.map(|r| (r, result)));
                }
            }
        }
        self.written |= ok > 0;
        let kept_events = self.kept.iter().flatten().map(|c| c.events.len()).sum();
        // The health first: a caller told of its failure finds the store failing already.
        self.health.send_if_modified(|h| {
            let before = h.clone();
            h.failed_commits += failed;
            h.kept_events = kept_events;
            if let Some(e) = last_error {
                h.failing_since.get_or_insert_with(Utc::now);
                h.last_error = Some(e);
            } else if ok > 0 {
                h.failing_since = None;
            }
            *h != before
        });
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
    }

    fn keep(&mut self, commits: Vec<Commit>) {
        self.kept.push_back(commits);
        let mut events: usize = self.kept.iter().flatten().map(|c| c.events.len()).sum();
        while events > MAX_KEPT_EVENTS {
            let Some(dropped) = self.kept.pop_front() else {
                break;
            };
            let n: usize = dropped.iter().map(|c| c.events.len()).sum();
            events -= n;
            tracing::error!(events = n, "the state database refuses writes for too long; dropping the oldest events kept in memory");
        }
    }

    fn published(&self, seq: i64) {
        self.latest.send_if_modified(|cur| {
            let changed = *cur != seq;
            *cur = seq;
            changed
        });
    }

    /// Repairs after corruption was met, and checkpoints when due.
    fn maintain(&mut self) {
        let repair_allowed = self
            .last_repair
            .is_none_or(|t| t.elapsed() >= REPAIR_AT_MOST_EVERY);
        if repair_allowed && self.store.take_corruption_seen() {
            self.last_repair = Some(Instant::now());
            if let Err(e) = self.store.check_and_repair() {
                tracing::error!(error = %e, "the state database could not be repaired");
            }
            let repairs = self.store.take_repairs();
            if !repairs.is_empty() {
                if let Ok(seq) = self.store.max_seq() {
                    self.published(seq);
                }
                self.health.send_modify(|h| h.repairs.extend(repairs));
            }
        }
        if self.written && self.last_checkpoint.elapsed() >= self.opts.checkpoint_every {
            self.checkpoint();
        }
    }

    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        match self.store.checkpoint() {
            Ok(()) => self.written = false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot checkpoint the state database's write-ahead log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Subject};
    use crate::store::Store;

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

    fn big_commit(id: &str, state: Option<&str>) -> Commit {
        let mut e = Event::new(
            id,
            EventKind::SupervisorStart,
            None,
            Subject::Supervisor,
            Utc::now(),
            "t",
            "x".repeat(20_000),
        );
        e.data = serde_json::json!({});
        Commit {
            account: "a".into(),
            kind: "machine",
            id: "1".into(),
            state: state.map(str::to_string),
            events: vec![e],
        }
    }

    #[tokio::test]
    async fn refused_commits_are_reported_and_kept_events_land_once_writes_work() {
        let dir = tempfile::tempdir().unwrap();
        let h = StoreHandle::open(&dir.path().join("s.db")).unwrap();
        h.apply(vec![big_commit("before", Some("{}"))])
            .await
            .unwrap();
        h.run(|s| {
            s.fill_disk(true);
            Ok(())
        })
        .await
        .unwrap();
        assert!(h
            .apply(vec![big_commit("state", Some("{}"))])
            .await
            .is_err());
        assert!(h.queue(vec![big_commit("kept", None)]).await.is_err());
        let health = h.health().borrow().clone();
        assert!(health.failing(), "{health:?}");
        assert_eq!(health.failed_commits, 2);
        assert_eq!(health.kept_events, 1);
        h.run(|s| {
            s.fill_disk(false);
            Ok(())
        })
        .await
        .unwrap();
        let mut health = h.health();
        tokio::time::timeout(Duration::from_secs(5), health.wait_for(|h| !h.failing()))
            .await
            .expect("the kept event is retried within seconds")
            .unwrap();
        let ids: Vec<String> = h
            .run(|s| s.events_after(0, 10))
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.event.id)
            .collect();
        assert_eq!(
            ids,
            ["before", "kept"],
            "the refused state commit is its caller's to redo"
        );
        assert_eq!(h.health().borrow().kept_events, 0);
    }

    #[tokio::test]
    async fn the_log_is_checkpointed_periodically_so_the_file_alone_is_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let opts = StoreOptions {
            checkpoint_every: Duration::from_millis(100),
        };
        let h = StoreHandle::open_with(&path, opts).unwrap();
        h.apply(vec![big_commit("e1", Some("{}"))]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let s = Store::open(&copy).unwrap();
        assert_eq!(
            s.max_seq().unwrap(),
            1,
            "the copy of state.db alone holds the event"
        );
    }
}
