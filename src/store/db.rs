//! The synchronous SQLite layer: schema, one-transaction commits, the outbox and target cursors.
//!
//! Only [`super::StoreHandle`]'s writer thread uses this directly in the daemon; tests and tools may
//! open it themselves. Every write that belongs together happens in one transaction.

use super::repair::{self, LostRows, Repair, RepairAction, RepairRecord, REPAIR_KIND};
use super::schema::{self, SCHEMA_VERSION};
use super::StoreError;
use crate::event::Event;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One subject's state change plus the events it implies: committed together or not at all.
#[derive(Debug, Clone)]
pub struct Commit {
    pub account: String,
    /// "machine", "instance", "account" (money watch) or "health" (polling health).
    pub kind: &'static str,
    pub id: String,
    /// `None`: events only (supervisor or account events without stored state).
    pub state: Option<String>,
    pub events: Vec<Event>,
}

/// A stored state that could not be read back: moved aside so the rest goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub account: String,
    pub kind: String,
    pub id: String,
    pub error: String,
}

/// States that loaded, keyed by subject id, and those moved to quarantine.
pub type LoadedStates<T> = (Vec<(String, T)>, Vec<Quarantined>);

/// An event read back from the outbox with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    pub seq: i64,
    pub event: Event,
}

pub struct Store {
    pub(super) conn: Connection,
    path: PathBuf,
    /// A repair lost the delivery positions of some targets: a target without one re-delivers
    /// the events younger than its `max_age` instead of starting at the end of the outbox.
    cursors_lost: bool,
    /// Repairs made while opening or running, not yet taken by [`Store::take_repairs`].
    repairs: Vec<Repair>,
    /// An operation met corruption since the last [`Store::take_corruption_seen`].
    corruption_seen: bool,
}

/// Opens the connection, sets it up and creates (or checks) the schema.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // WAL + NORMAL survives a process crash (kill -9) without losing committed transactions;
    // only a power loss can drop the last ones, which the outbox then re-detects.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    for tables in schema::ALL {
        conn.execute_batch(tables)?;
    }
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match version {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )?;
        }
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        Some(v) => return Err(StoreError::SchemaVersion(v)),
    }
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path` in WAL mode, checks its integrity and
    /// repairs what is damaged (see [`Store::take_repairs`]). A file that is not a database at
    /// all is set aside and replaced by an empty one.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let (conn, unreadable) = match connect(path) {
            Ok(conn) => (conn, None),
            Err(e) if e.is_corruption() => {
                tracing::error!(path = %path.display(), error = %e,
                    "the state database is unreadable; it is set aside and a new one is started");
                let at = Utc::now();
                let set_aside = repair::set_aside(path, at)?;
                let repair = Repair {
                    at,
                    problems: vec![e.to_string()],
                    action: RepairAction::Rebuilt,
                    tables: repair::TABLES
                        .iter()
                        .map(|t| {
                            let lost = LostRows {
                                copied: 0,
                                unreadable: None,
                            };
                            (t.to_string(), lost)
                        })
                        .collect(),
                    set_aside: Some(set_aside),
                };
                (connect(path)?, Some(repair))
            }
            Err(e) => return Err(e),
        };
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            cursors_lost: false,
            repairs: Vec::new(),
            corruption_seen: false,
        };
        match unreadable {
            Some(repair) => store.record(repair),
            None => {
                store.check_and_repair()?;
            }
        }
        for earlier in store.unannounced_repairs()? {
            if store.repairs.iter().all(|r| r.key() != earlier.key()) {
                store.repairs.insert(0, earlier);
            }
        }
        Ok(store)
    }

    /// Runs `PRAGMA quick_check` and repairs what it finds: damaged indexes are rebuilt in place,
    /// anything else by copying every readable row into a fresh file (the damaged one is kept
    /// beside it). Returns what was done, `None` when the database is sound.
    pub fn check_and_repair(&mut self) -> Result<Option<Repair>, StoreError> {
        let problems = repair::quick_check(&self.conn);
        if problems.is_empty() {
            return Ok(None);
        }
        tracing::error!(path = %self.path.display(), problems = %problems.join("; "),
            "the state database is damaged; repairing it");
        let repair = if repair::reindex(&self.conn) {
            Repair {
                at: Utc::now(),
                problems,
                action: RepairAction::IndexesRebuilt,
                tables: BTreeMap::new(),
                set_aside: None,
            }
        } else {
            self.rebuild(problems)?
        };
        self.record(repair.clone());
        Ok(Some(repair))
    }

    fn record(&mut self, repair: Repair) {
        tracing::error!(path = %self.path.display(), action = repair.action.as_str(),
            "state database repaired: {}", repair.summary());
        self.cursors_lost |= repair.cursors_lost();
        let record = RepairRecord {
            repair: repair.clone(),
            announced: false,
        };
        let written = serde_json::to_string(&record)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                self.conn
                    .execute(
                        "INSERT OR IGNORE INTO subjects (account, kind, id, state, updated_at) VALUES ('', ?1, ?2, ?3, ?4)",
                        params![REPAIR_KIND, repair.key(), json, Utc::now().to_rfc3339()],
                    )
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            tracing::warn!(error = %e, "the repair could not be remembered in the database; it is announced from memory only");
        }
        self.repairs.push(repair);
    }

    /// Repairs remembered in the database whose event was never queued (the daemon stopped in
    /// between): announced again, by the same event id.
    fn unannounced_repairs(&mut self) -> Result<Vec<Repair>, StoreError> {
        let (records, _unreadable) = self.load_states("", REPAIR_KIND, |j| {
            serde_json::from_str::<RepairRecord>(j).map_err(|e| e.to_string())
        })?;
        Ok(records
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| !r.announced)
            .map(|r| r.repair)
            .collect())
    }

    /// Copies every readable row into `state.db.rebuild`, sets the damaged file aside and puts
    /// the fresh one in its place.
    fn rebuild(&mut self, problems: Vec<String>) -> Result<Repair, StoreError> {
        let fresh_path = repair::rebuild_path(&self.path);
        let _ = std::fs::remove_file(&fresh_path);
        let mut fresh = connect(&fresh_path)?;
        let tables = repair::copy_readable(&self.conn, &mut fresh)?;
        fresh.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
        drop(fresh);
        // Closes the damaged database before its files move.
        drop(std::mem::replace(
            &mut self.conn,
            Connection::open_in_memory()?,
        ));
        let at = Utc::now();
        let set_aside = repair::set_aside(&self.path, at)?;
        std::fs::rename(&fresh_path, &self.path)?;
        self.conn = connect(&self.path)?;
        Ok(Repair {
            at,
            problems,
            action: RepairAction::Rebuilt,
            tables,
            set_aside: Some(set_aside),
        })
    }

    /// The repairs made since the last call (at opening, or after corruption met at run time).
    pub fn take_repairs(&mut self) -> Vec<Repair> {
        std::mem::take(&mut self.repairs)
    }

    /// Notes that an operation met corruption (the writer then checks and repairs).
    pub fn note_corruption(&mut self) {
        self.corruption_seen = true;
    }

    pub fn take_corruption_seen(&mut self) -> bool {
        std::mem::take(&mut self.corruption_seen)
    }

    /// Moves everything in the write-ahead log into the database file and empties the log, so
    /// a copy of the database file alone holds every committed change.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Applies several commits in one transaction. Events whose id is already queued are ignored,
    /// so a change re-detected after a crash is never queued twice. Returns the highest sequence
    /// number in the outbox afterwards.
    pub fn apply(&mut self, commits: &[Commit], now: DateTime<Utc>) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        {
            let now_s = now.to_rfc3339();
            let mut put_state = tx.prepare_cached(
                "INSERT INTO subjects (account, kind, id, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account, kind, id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )?;
            let mut put_event = tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox (id, created_at, event) VALUES (?1, ?2, ?3)",
            )?;
            for c in commits {
                if let Some(state) = &c.state {
                    put_state.execute(params![c.account, c.kind, c.id, state, now_s])?;
                }
                for e in &c.events {
                    put_event.execute(params![e.id, e.time.to_rfc3339(), e.to_json()])?;
                }
            }
        }
        tx.commit()?;
        self.max_seq()
    }

    /// Every stored state of one kind for one account. Rows whose JSON does not parse with `parse`
    /// are moved to the quarantine table and returned separately.
    pub fn load_states<T>(
        &mut self,
        account: &str,
        kind: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<LoadedStates<T>, StoreError> {
        let rows: Vec<(String, String)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, state FROM subjects WHERE account = ?1 AND kind = ?2",
            )?;
            let mapped = stmt.query_map(params![account, kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            mapped.collect::<Result<_, _>>()?
        };
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (id, state) in rows {
            match parse(&state) {
                Ok(v) => good.push((id, v)),
                Err(error) => bad.push((id, state, error)),
            }
        }
        let mut quarantined = Vec::new();
        if !bad.is_empty() {
            let tx = self.conn.transaction()?;
            let now = Utc::now().to_rfc3339();
            for (id, state, error) in bad {
                tx.execute(
                    "INSERT INTO quarantine (account, kind, id, state, error, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![account, kind, id, state, error, now],
                )?;
                tx.execute(
                    "DELETE FROM subjects WHERE account = ?1 AND kind = ?2 AND id = ?3",
                    params![account, kind, id],
                )?;
                quarantined.push(Quarantined {
                    account: account.to_string(),
                    kind: kind.to_string(),
                    id,
                    error,
                });
            }
            tx.commit()?;
        }
        Ok((good, quarantined))
    }

    /// The accounts that have stored state (to find accounts removed from the configuration).
    pub fn accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT account FROM subjects ORDER BY account")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the stored states of `kind` of every account not in `keep` (accounts that left the
    /// configuration), in one transaction. Returns the accounts whose states were deleted.
    pub fn forget_other_accounts(
        &mut self,
        kind: &str,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<String>, StoreError> {
        let tx = self.conn.transaction()?;
        let holding: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT DISTINCT account FROM subjects WHERE kind = ?1 ORDER BY account",
            )?;
            let rows = stmt.query_map(params![kind], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let gone: Vec<String> = holding.into_iter().filter(|a| !keep.contains(a)).collect();
        for account in &gone {
            tx.execute(
                "DELETE FROM subjects WHERE account = ?1 AND kind = ?2",
                params![account, kind],
            )?;
        }
        tx.commit()?;
        Ok(gone)
    }

    pub fn max_seq(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM outbox", [], |r| r.get(0))?)
    }

    /// Up to `limit` events after `seq`, in order.
    pub fn events_after(&self, seq: i64, limit: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, event FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![seq, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, json) = row?;
            let event = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("outbox event {seq}: {e}")))?;
            out.push(QueuedEvent { seq, event });
        }
        Ok(out)
    }

    /// The last `n` events, oldest first (for `events` and status).
    pub fn recent_events(&self, n: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        let max = self.max_seq()?;
        self.events_after((max - n as i64).max(0), n)
    }

    /// The delivery position of a target; a target seen for the first time starts at the current
    /// end of the outbox (it does not replay history). After a repair that lost delivery
    /// positions, a target without one starts before the first event created at or after
    /// `replay_since` (its `max_age` ago): it may deliver some events again, never skip one.
    pub fn cursor_or_init(
        &mut self,
        target: &str,
        replay_since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let existing: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM cursors WHERE target = ?1",
                params![target],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(seq) = existing {
            return Ok(seq);
        }
        let seq = if self.cursors_lost {
            let seq = self.last_seq_before(replay_since)?;
            tracing::warn!(target, seq, "the target's delivery position was lost in a repair of the state database; it delivers again from its max_age ago");
            seq
        } else {
            self.max_seq()?
        };
        self.set_cursor(target, seq)?;
        Ok(seq)
    }

    /// The sequence number just before the first event created at or after `since`.
    fn last_seq_before(&self, since: DateTime<Utc>) -> Result<i64, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, created_at FROM outbox ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut before = 0;
        while let Some(row) = rows.next()? {
            let created: String = row.get(1)?;
            let created = DateTime::parse_from_rfc3339(&created)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(since);
            if created >= since {
                break;
            }
            before = row.get(0)?;
        }
        Ok(before)
    }

    pub fn set_cursor(&mut self, target: &str, seq: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO cursors (target, seq, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (target) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
            params![target, seq, Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    pub fn remove_cursor(&mut self, target: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM cursors WHERE target = ?1", params![target])?;
        Ok(())
    }

    /// Deletes events every target and every history projection has passed, keeping the newest
    /// `keep` for `events`/status.
    pub fn prune(&mut self, keep: usize) -> Result<usize, StoreError> {
        let min_cursor: Option<i64> = self.conn.query_row(
            "SELECT MIN(seq) FROM (SELECT seq FROM cursors UNION ALL SELECT seq FROM projections)",
            [],
            |r| r.get(0),
        )?;
        let max = self.max_seq()?;
        let limit = min_cursor.unwrap_or(max).min(max - keep as i64);
        Ok(self
            .conn
            .execute("DELETE FROM outbox WHERE seq <= ?1", params![limit])?)
    }

    pub fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT account, kind, id, error FROM quarantine ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| {
            Ok(Quarantined {
                account: r.get(0)?,
                kind: r.get(1)?,
                id: r.get(2)?,
                error: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Caps the database at its current size, as a full disk would (tests of the writer).
    #[cfg(test)]
    pub(crate) fn fill_disk(&self, full: bool) {
        let pages: i64 = if full {
            self.conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap()
        } else {
            i64::from(u32::MAX)
        };
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .unwrap();
    }

    /// Writes a raw state row (tests use it to plant corrupt state).
    pub fn put_raw_state(
        &mut self,
        account: &str,
        kind: &str,
        id: &str,
        state: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO subjects (account, kind, id, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![account, kind, id, state, Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::event::{EventKind, Subject};

    pub(in crate::store) fn ev(id: &str) -> Event {
        Event::new(
            id,
            EventKind::RentalStart,
            Some("a".into()),
            Subject::Machine { id: 1, name: None },
            Utc::now(),
            "t",
            "x",
        )
    }

    #[test]
    fn commit_is_idempotent_by_event_id_and_cursors_start_at_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        let c = Commit {
            account: "a".into(),
            kind: "machine",
            id: "1".into(),
            state: Some("{\"v\":1}".into()),
            events: vec![ev("e1"), ev("e2")],
        };
        assert_eq!(s.apply(std::slice::from_ref(&c), Utc::now()).unwrap(), 2);
        assert_eq!(
            s.apply(&[c], Utc::now()).unwrap(),
            2,
            "same ids are not queued twice"
        );
        assert_eq!(s.cursor_or_init("t1", Utc::now()).unwrap(), 2);
        let c2 = Commit {
            account: "a".into(),
            kind: "machine",
            id: "1".into(),
            state: None,
            events: vec![ev("e3")],
        };
        s.apply(&[c2], Utc::now()).unwrap();
        let after = s.events_after(2, 10).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].event.id, "e3");
        let (states, bad) = s
            .load_states("a", "machine", |j| {
                serde_json::from_str::<serde_json::Value>(j).map_err(|e| e.to_string())
            })
            .unwrap();
        assert_eq!(states.len(), 1);
        assert!(bad.is_empty());
    }

    #[test]
    fn corrupt_state_is_quarantined_and_others_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        s.put_raw_state("a", "machine", "1", "{\"ok\":true}")
            .unwrap();
        s.put_raw_state("a", "machine", "2", "{not json").unwrap();
        let parse =
            |j: &str| serde_json::from_str::<serde_json::Value>(j).map_err(|e| e.to_string());
        let (good, bad) = s.load_states("a", "machine", parse).unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].id, "2");
        let (good, bad) = s.load_states("a", "machine", parse).unwrap();
        assert_eq!(
            (good.len(), bad.len()),
            (1, 0),
            "quarantined rows are moved aside"
        );
        assert_eq!(s.quarantined().unwrap().len(), 1);
    }

    fn health_commit(account: &str, state: &str, events: Vec<Event>) -> Commit {
        Commit {
            account: account.into(),
            kind: "health",
            id: account.into(),
            state: Some(state.into()),
            events,
        }
    }

    fn stored(s: &mut Store, account: &str, kind: &str) -> Vec<(String, String)> {
        s.load_states(account, kind, |j| Ok::<_, String>(j.to_string()))
            .unwrap()
            .0
    }

    #[test]
    fn a_health_change_and_its_event_commit_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        s.apply(
            &[health_commit(
                "a",
                r#"{"state":"stale"}"#,
                vec![ev("a:stale")],
            )],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            stored(&mut s, "a", "health"),
            [("a".to_string(), r#"{"state":"stale"}"#.to_string())]
        );
        assert_eq!(s.events_after(0, 10).unwrap().len(), 1);

        // The outbox refuses the next event: the state change must not land without it.
        s.conn
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'full'); END;",
            )
            .unwrap();
        let restored = health_commit("a", r#"{"state":"ok"}"#, vec![ev("a:restored")]);
        assert!(s
            .apply(std::slice::from_ref(&restored), Utc::now())
            .is_err());
        assert_eq!(
            stored(&mut s, "a", "health")[0].1,
            r#"{"state":"stale"}"#,
            "the health stays as it was"
        );
        s.conn.execute_batch("DROP TRIGGER refuse;").unwrap();
        s.apply(&[restored], Utc::now()).unwrap();
        assert_eq!(stored(&mut s, "a", "health")[0].1, r#"{"state":"ok"}"#);
        let ids: Vec<String> = s
            .events_after(0, 10)
            .unwrap()
            .into_iter()
            .map(|q| q.event.id)
            .collect();
        assert_eq!(ids, ["a:stale", "a:restored"]);
    }

    #[test]
    fn forgetting_removed_accounts_touches_only_their_rows_of_that_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        for account in ["kept", "gone", "also-gone"] {
            s.apply(
                &[health_commit(account, r#"{"state":"stale"}"#, vec![])],
                Utc::now(),
            )
            .unwrap();
        }
        s.put_raw_state("gone", "machine", "1", "{}").unwrap();
        let keep: BTreeSet<String> = ["kept".to_string(), "never-stored".to_string()].into();
        assert_eq!(
            s.forget_other_accounts("health", &keep).unwrap(),
            ["also-gone", "gone"]
        );
        assert_eq!(stored(&mut s, "kept", "health").len(), 1);
        assert!(stored(&mut s, "gone", "health").is_empty());
        assert!(stored(&mut s, "also-gone", "health").is_empty());
        assert_eq!(
            stored(&mut s, "gone", "machine").len(),
            1,
            "other kinds of state stay"
        );
        assert!(
            s.forget_other_accounts("health", &keep).unwrap().is_empty(),
            "nothing left to forget"
        );
        // The health survives reopening the database (a restart).
        drop(s);
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(stored(&mut s, "kept", "health").len(), 1);
    }

    #[test]
    fn prune_keeps_undelivered_and_recent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.db")).unwrap();
        s.set_cursor("slow", 0).unwrap();
        let events: Vec<Event> = (0..10).map(|i| ev(&format!("e{i}"))).collect();
        s.apply(
            &[Commit {
                account: "a".into(),
                kind: "machine",
                id: "1".into(),
                state: None,
                events,
            }],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            s.prune(2).unwrap(),
            0,
            "the slow target has delivered nothing"
        );
        s.set_cursor("slow", 10).unwrap();
        assert_eq!(s.prune(2).unwrap(), 8);
        assert_eq!(s.recent_events(5).unwrap().len(), 2);
    }
}
