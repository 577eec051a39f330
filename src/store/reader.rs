//! Read-only queries for the dashboard and its API: the outbox with filters, earnings history and
//! ended rentals. They run on a connection of their own (opened read-only, on a blocking thread),
//! so a query that scans never holds up the writer thread's commits: WAL lets one writer and
//! readers work at once. When a repair replaces the database file, the next query reopens it.
//! Must not write anything.

use super::db::QueuedEvent;
use super::history::{earnings_day, rental_record, EarningsDay, RentalRecord};
use super::StoreError;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OpenFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which events of the outbox to return. Without `after`, the newest `limit` matching events
/// (before `before`, when set); with it, the first `limit` matching events after it. Either way
/// they come oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    pub after: Option<i64>,
    pub before: Option<i64>,
    /// Event kind names; empty: every kind.
    pub kinds: Vec<String>,
    pub account: Option<String>,
    pub machine: Option<u64>,
    pub limit: usize,
}

/// Which earnings rows to return: from `since` (a UTC day) on, optionally of one account or one
/// machine.
#[derive(Debug, Clone, PartialEq)]
pub struct EarningsQuery {
    pub since: NaiveDate,
    pub account: Option<String>,
    pub machine: Option<u64>,
}

/// A cloneable handle to the read-only connection.
#[derive(Clone)]
pub struct StoreReader {
    opened: Arc<Mutex<Opened>>,
}

/// The connection and the file it reads.
struct Opened {
    path: PathBuf,
    conn: Connection,
    /// `None` when the file could not be looked at.
    file: Option<FileId>,
}

/// A file's identity (device and inode): a repair that rebuilds the database puts a new file at
/// the path, which the old connection would never see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileId(meta.dev(), meta.ino()))
    }
}

impl Opened {
    fn open(path: &Path) -> Result<Opened, StoreError> {
        let file = FileId::of(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Opened {
            path: path.to_path_buf(),
            conn,
            file,
        })
    }

    /// The connection, reopened first when the file at the path is no longer the one it reads
    /// (the writer rebuilt a damaged database and set the old file aside).
    fn current(&mut self) -> Result<&Connection, StoreError> {
        if FileId::of(&self.path) != self.file {
            *self = Opened::open(&self.path)?;
            tracing::info!(path = %self.path.display(), "the dashboard reads the rebuilt state database");
        }
        Ok(&self.conn)
    }
}

impl StoreReader {
    /// Opens the database at `path` read-only; it must exist (the writer creates it).
    pub fn open(path: &Path) -> Result<StoreReader, StoreError> {
        Ok(StoreReader {
            opened: Arc::new(Mutex::new(Opened::open(path)?)),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let opened = self.opened.clone();
        tokio::task::spawn_blocking(move || {
            let mut opened = opened.lock().unwrap_or_else(|p| p.into_inner());
            f(opened.current()?)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// The events `query` selects, oldest first.
    pub async fn events(&self, query: EventQuery) -> Result<Vec<QueuedEvent>, StoreError> {
        self.run(move |conn| select_events(conn, &query)).await
    }

    /// Earnings rows from `query.since` on, ordered by day.
    pub async fn earnings(&self, query: EarningsQuery) -> Result<Vec<EarningsDay>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT source, ref, account, machine_id, day, gpu, storage, other
                 FROM earnings_days
                 WHERE day >= ?1 AND (?2 IS NULL OR account = ?2) AND (?3 IS NULL OR machine_id = ?3)
                 ORDER BY day, account, machine_id",
            )?;
            let mut rows = stmt.query(params![
                query.since.to_string(),
                query.account,
                query.machine.map(|m| m as i64)
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(earnings_day(row)?);
            }
            Ok(out)
        })
        .await
    }

    /// The newest `limit` ended rentals of one machine, newest first.
    pub async fn rentals(
        &self,
        machine: u64,
        limit: usize,
    ) -> Result<Vec<RentalRecord>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT ref, account, machine_id, rental_id, gpu_type, gpus, started, ended, earnings
                 FROM rental_history WHERE machine_id = ?1 ORDER BY ended DESC LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![machine as i64, limit as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(rental_record(row)?);
            }
            Ok(out)
        })
        .await
    }

    /// The outbox's highest sequence number.
    pub async fn max_seq(&self) -> Result<i64, StoreError> {
        self.run(|conn| {
            Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM outbox", [], |r| r.get(0))?)
        })
        .await
    }
}

fn select_events(conn: &Connection, q: &EventQuery) -> Result<Vec<QueuedEvent>, StoreError> {
    // The filters read the stored event JSON with SQLite's JSON functions; the store still does
    // not interpret events, it only selects them by the fields the caller names.
    let order = if q.after.is_some() { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT seq, event FROM outbox
         WHERE seq > ?1 AND seq < ?2
           AND (?3 IS NULL OR json_extract(event, '$.kind') IN (SELECT value FROM json_each(?3)))
           AND (?4 IS NULL OR json_extract(event, '$.account') = ?4)
           AND (?5 IS NULL OR (json_extract(event, '$.subject.type') = 'machine'
                               AND json_extract(event, '$.subject.id') = ?5))
         ORDER BY seq {order} LIMIT ?6"
    );
    let kinds = (!q.kinds.is_empty())
        .then(|| serde_json::to_string(&q.kinds))
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![
        q.after.unwrap_or(0),
        q.before.unwrap_or(i64::MAX),
        kinds,
        q.account,
        q.machine.map(|m| m as i64),
        q.limit as i64
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let json: String = row.get(1)?;
        let event = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("outbox event {seq}: {e}")))?;
        out.push(QueuedEvent { seq, event });
    }
    if q.after.is_none() {
        out.reverse();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Subject};
    use crate::store::{Commit, Store};
    use chrono::Utc;

    fn event(id: &str, kind: EventKind, account: &str, subject: Subject) -> Event {
        Event::new(
            id,
            kind,
            Some(account.into()),
            subject,
            Utc::now(),
            "t",
            "x",
        )
    }

    #[tokio::test]
    async fn events_filter_by_kind_account_and_machine_and_page_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        let machine = |id| Subject::Machine { id, name: None };
        let events = vec![
            event("a1", EventKind::RentalStart, "alice", machine(1)),
            event("a2", EventKind::MachineOffline, "alice", machine(2)),
            event("b1", EventKind::RentalStart, "bob", machine(3)),
            event(
                "b2",
                EventKind::CreditLow,
                "bob",
                Subject::Account { id: "bob".into() },
            ),
            event("a3", EventKind::RentalEnd, "alice", machine(1)),
        ];
        let commit = Commit {
            account: "x".into(),
            kind: "machine",
            id: "1".into(),
            state: None,
            events,
        };
        store.apply(&[commit], Utc::now()).unwrap();
        let reader = StoreReader::open(&path).unwrap();
        let ids = |q: EventQuery| {
            let reader = reader.clone();
            async move {
                let got = reader.events(q).await.unwrap();
                got.into_iter().map(|e| e.event.id).collect::<Vec<_>>()
            }
        };
        let all = EventQuery {
            limit: 10,
            ..EventQuery::default()
        };
        assert_eq!(ids(all.clone()).await, ["a1", "a2", "b1", "b2", "a3"]);
        let newest_two = EventQuery {
            limit: 2,
            ..all.clone()
        };
        assert_eq!(ids(newest_two).await, ["b2", "a3"], "newest, oldest first");
        let before = EventQuery {
            before: Some(4),
            limit: 2,
            ..all.clone()
        };
        assert_eq!(ids(before).await, ["a2", "b1"]);
        let after = EventQuery {
            after: Some(1),
            limit: 2,
            ..all.clone()
        };
        assert_eq!(ids(after).await, ["a2", "b1"]);
        let kinds = EventQuery {
            kinds: vec!["rental_start".into(), "credit_low".into()],
            ..all.clone()
        };
        assert_eq!(ids(kinds).await, ["a1", "b1", "b2"]);
        let bob = EventQuery {
            account: Some("bob".into()),
            ..all.clone()
        };
        assert_eq!(ids(bob).await, ["b1", "b2"]);
        let one = EventQuery {
            machine: Some(1),
            ..all
        };
        assert_eq!(ids(one).await, ["a1", "a3"]);
        assert_eq!(reader.max_seq().await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_rebuilt_database_is_read_from_the_new_file() {
        use crate::store::repair::tests::{corrupt, pages_of, populated};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        populated(&path);
        let reader = StoreReader::open(&path).unwrap();
        assert_eq!(reader.max_seq().await.unwrap(), 300);
        // The writer finds a damaged page, rebuilds the database into a new file and goes on
        // writing there; the old file is set aside.
        corrupt(&path, pages_of(&path, "subjects")[2]);
        let mut store = Store::open(&path).unwrap();
        assert!(store
            .take_repairs()
            .pop()
            .expect("a repair")
            .set_aside
            .is_some());
        let commit = Commit {
            account: "a".into(),
            kind: "machine",
            id: "new".into(),
            state: None,
            events: vec![event(
                "after",
                EventKind::RentalStart,
                "a",
                Subject::Account { id: "a".into() },
            )],
        };
        store.apply(&[commit], Utc::now()).unwrap();
        assert_eq!(
            reader.max_seq().await.unwrap(),
            301,
            "the reader follows the new file"
        );
        let newest = EventQuery {
            limit: 1,
            ..EventQuery::default()
        };
        assert_eq!(reader.events(newest).await.unwrap()[0].event.id, "after");
    }
}
