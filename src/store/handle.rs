//! The store's writer thread and the async handle actors use to reach it.
//!
//! Besides running requests, the writer watches the database's health and publishes it
//! ([`StoreHealth`]). A commit the database refuses (full disk, I/O error, corruption) is kept in
//! memory, merged per subject with the commits that follow for the same subject (the latest state,
//! every event in order), and committed in one transaction as soon as the database takes writes
//! again; the writer retries every second. The caller is told it was accepted, so a change that
//! comes and goes while the disk is full is reported too; the stored state stays what it was, so
//! after a crash in that window the change is detected again from it. While commits are kept the
//! store is "failing". Past [`MAX_KEPT_EVENTS`] a commit is refused instead (its caller keeps its
//! previous state and detects the change again later), so memory stays bounded. SQLite reporting
//! corruption triggers an integrity check and a repair (at most once a minute). The write-ahead
//! log is checkpointed into the database file periodically, on request and when the writer
//! stops, so a copy of `state.db` alone is a backup.

use super::db::{Commit, Store};
use super::repair::Repair;
use super::StoreError;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Commits waiting at once are applied in one transaction, up to this many.
const MAX_GROUP: usize = 512;
/// Events kept in memory (with their subjects' states) while the database refuses writes.
pub const MAX_KEPT_EVENTS: usize = 20_000;
/// How often kept commits are retried (and the checkpoint schedule looked at) while idle.
const TICK: Duration = Duration::from_secs(1);
/// Corruption met at run time triggers a check at most this often.
const REPAIR_AT_MOST_EVERY: Duration = Duration::from_secs(60);

type Job = Box<dyn FnOnce(&mut Store) + Send>;
type Reply = oneshot::Sender<Result<i64, StoreError>>;

enum Request {
    Apply {
        commits: Vec<Commit>,
        reply: Reply,
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
    /// Commits the database refused since start-up (each counted once, not its retries).
    pub failed_commits: u64,
    /// Events kept in memory (with their subjects' states) until the database takes writes.
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
            kept: Kept::default(),
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

    /// Commits state changes with their events atomically; returns the outbox's highest
    /// sequence. While the database refuses writes, the commit is kept in memory and committed as
    /// soon as it takes them (see the module doc): that is an `Ok` too. An error means it was
    /// refused (memory bound reached, writer gone): the caller keeps its previous state.
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

/// One caller's commits waiting for the next group transaction.
struct Pending {
    commits: Vec<Commit>,
    reply: Reply,
}

/// Commits the database refused, merged per subject, in the order their subjects first failed.
#[derive(Default)]
struct Kept {
    commits: Vec<Commit>,
    index: HashMap<(String, &'static str, String), usize>,
    events: usize,
}

impl Kept {
    fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// Adds `c`: a later state of a subject replaces the kept one, its events follow the kept
    /// ones (a commit without state adds its events only).
    fn merge(&mut self, c: Commit) {
        self.events += c.events.len();
        let key = (c.account.clone(), c.kind, c.id.clone());
        match self.index.get(&key) {
            Some(&i) => {
                let kept = &mut self.commits[i];
                if c.state.is_some() {
                    kept.state = c.state;
                }
                kept.events.extend(c.events);
            }
            None => {
                self.index.insert(key, self.commits.len());
                self.commits.push(c);
            }
        }
    }

    fn take(&mut self) -> Vec<Commit> {
        self.index.clear();
        self.events = 0;
        std::mem::take(&mut self.commits)
    }
}

struct Writer {
    store: Store,
    latest: watch::Sender<i64>,
    health: watch::Sender<StoreHealth>,
    kept: Kept,
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
                    Request::Apply { commits, reply } => group.push(Pending { commits, reply }),
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

    /// Commits the kept commits and `group` together, in one transaction when possible.
    fn flush(&mut self, group: Vec<Pending>) {
        if group.is_empty() && self.kept.is_empty() {
            return;
        }
        let retrying = !self.kept.is_empty();
        let mut refused = Vec::new();
        let mut accepted = Vec::new();
        for p in group {
            let events: usize = p.commits.iter().map(|c| c.events.len()).sum();
            if retrying && self.kept.events + events > MAX_KEPT_EVENTS {
                // Memory stays bounded: this caller keeps its previous state instead.
                refused.push(p.reply);
                continue;
            }
            for c in p.commits {
                self.kept.merge(c);
            }
            accepted.push(p.reply);
        }
        let all = self.kept.take();
        let outcome = match self.store.apply(&all, Utc::now()) {
            Ok(seq) => Ok(seq),
            // Every commit would meet this one: keep them all, try again in a second.
            Err(e) if is_disk_trouble(&e) => {
                for c in all {
                    self.kept.merge(c);
                }
                Err(e)
            }
            Err(e) => {
                // Not the disk: commit subject by subject, so one bad commit fails alone (and
                // stays kept) instead of holding back every other.
                let mut last = Ok(0);
                for c in all {
                    match self.store.apply(std::slice::from_ref(&c), Utc::now()) {
                        Ok(seq) => last = last.and(Ok(seq)),
                        Err(e) => {
                            self.kept.merge(c);
                            last = Err(e);
                        }
                    }
                }
                last.map_err(|_| e).and_then(|_| self.store.max_seq())
            }
        };
        let seq = match &outcome {
            Ok(seq) => {
                self.published(*seq);
                self.written = true;
                *seq
            }
            Err(e) => {
                if e.is_corruption() {
                    self.store.note_corruption();
                }
                *self.latest.borrow()
            }
        };
        let newly_failed = match &outcome {
            Ok(_) => 0,
            Err(_) => accepted.len() as u64,
        } + refused.len() as u64;
        let kept_events = self.kept.events;
        let failing = !self.kept.is_empty();
        // The health first: a caller told of its commit finds the store's state current.
        self.health.send_if_modified(|h| {
            let before = h.clone();
            h.failed_commits += newly_failed;
            h.kept_events = kept_events;
            match (&outcome, failing) {
                (Err(e), _) => {
                    h.failing_since.get_or_insert_with(Utc::now);
                    h.last_error = Some(e.to_string());
                }
                (Ok(_), false) => h.failing_since = None,
                (Ok(_), true) => {}
            }
            *h != before
        });
        for reply in accepted {
            let _ = reply.send(Ok(seq));
        }
        for reply in refused {
            let _ = reply.send(Err(StoreError::Full(MAX_KEPT_EVENTS)));
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

/// Errors every commit would meet until the disk (or the file system) recovers.
fn is_disk_trouble(e: &StoreError) -> bool {
    use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, DiskFull | SystemIoFailure | ReadOnly | CannotOpen)
    )
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
    async fn refused_commits_are_kept_merged_per_subject_and_land_once_writes_work() {
        let dir = tempfile::tempdir().unwrap();
        let h = StoreHandle::open(&dir.path().join("s.db")).unwrap();
        h.apply(vec![big_commit("before", Some("{\"v\":0}"))])
            .await
            .unwrap();
        h.run(|s| {
            s.fill_disk(true);
            Ok(())
        })
        .await
        .unwrap();
        // Accepted (kept in memory), not refused: the callers go on with their new state.
        h.apply(vec![big_commit("first", Some("{\"v\":1}"))])
            .await
            .unwrap();
        h.apply(vec![big_commit("second", Some("{\"v\":2}"))])
            .await
            .unwrap();
        h.apply(vec![big_commit("event-only", None)]).await.unwrap();
        let health = h.health().borrow().clone();
        assert!(health.failing(), "{health:?}");
        assert_eq!(health.failed_commits, 3);
        assert_eq!(health.kept_events, 3);
        assert_eq!(
            h.run(|s| s.max_seq()).await.unwrap(),
            1,
            "nothing landed yet"
        );
        h.run(|s| {
            s.fill_disk(false);
            Ok(())
        })
        .await
        .unwrap();
        let mut health = h.health();
        tokio::time::timeout(Duration::from_secs(5), health.wait_for(|h| !h.failing()))
            .await
            .expect("kept commits are retried within seconds")
            .unwrap();
        let ids: Vec<String> = h
            .run(|s| s.events_after(0, 10))
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.event.id)
            .collect();
        assert_eq!(ids, ["before", "first", "second", "event-only"]);
        let (states, _) = h
            .run(|s| s.load_states("a", "machine", |j| Ok::<_, String>(j.to_string())))
            .await
            .unwrap();
        assert_eq!(
            states,
            [("1".to_string(), "{\"v\":2}".to_string())],
            "the latest state"
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
