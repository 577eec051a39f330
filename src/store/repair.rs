//! Integrity of the state database (SPEC §7): `PRAGMA quick_check` when it opens (and whenever
//! SQLite reports corruption while it runs), and the repair of what it finds. A damaged index is
//! rebuilt in place (`REINDEX`). Anything worse is rebuilt: every row that can still be read is
//! copied into a fresh database, row by row, skipping past unreadable pages; the damaged file is
//! kept beside it (`state.db.corrupt-<time>`) and the fresh one takes its place. What was lost
//! is reported in a [`Repair`] (the caller logs it and raises an event); what survived goes on.
//!
//! Knows the tables only as tables of rows: it never interprets a state or an event.

use super::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tables copied by a rebuild, in this order: every table of the schema, the history the
/// dashboard reads (earnings per day, ended rentals, the projection's position) included.
pub(super) const TABLES: &[&str] = &[
    "meta",
    "subjects",
    "outbox",
    "cursors",
    "quarantine",
    "earnings_days",
    "rental_history",
    "projections",
];

/// How many problems of `quick_check` are kept for the report.
const PROBLEMS_KEPT: usize = 10;

/// What was done about a damaged database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairAction {
    /// Only indexes were damaged: rebuilt from their tables, nothing lost.
    IndexesRebuilt,
    /// Pages of tables were damaged: the readable rows were copied into a fresh database.
    Rebuilt,
}

impl RepairAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairAction::IndexesRebuilt => "indexes_rebuilt",
            RepairAction::Rebuilt => "rebuilt",
        }
    }
}

/// Rows of one table that a rebuild could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRows {
    /// Rows copied.
    pub copied: u64,
    /// Row ids that could not be read, as inclusive ranges (`None`: the table itself was
    /// unreadable).
    pub unreadable: Option<Vec<(i64, i64)>>,
}

impl LostRows {
    pub fn lost_any(&self) -> bool {
        self.unreadable.as_ref().is_none_or(|r| !r.is_empty())
    }
}

/// The subject kind a repair is remembered under in the repaired database, until its
/// `state_failing` event is queued: a crash between the repair and that event cannot lose it.
pub const REPAIR_KIND: &str = "repair";

/// A repair as remembered in the database (see [`REPAIR_KIND`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairRecord {
    pub repair: Repair,
    /// Its `state_failing` event is in the outbox.
    pub announced: bool,
}

/// One repair of the state database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    pub at: DateTime<Utc>,
    /// The first problems `PRAGMA quick_check` reported.
    pub problems: Vec<String>,
    pub action: RepairAction,
    /// Per table, when rebuilt: what could not be read.
    pub tables: BTreeMap<String, LostRows>,
    /// Where the damaged file was kept, when rebuilt.
    pub set_aside: Option<PathBuf>,
}

impl Repair {
    /// Names this repair among others (its time, to the nanosecond).
    pub fn key(&self) -> String {
        self.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    }

    /// Whether the delivery positions of some targets were lost.
    pub fn cursors_lost(&self) -> bool {
        self.tables.get("cursors").is_some_and(LostRows::lost_any)
    }

    /// One line for logs and event texts.
    pub fn summary(&self) -> String {
        match self.action {
            RepairAction::IndexesRebuilt => {
                "damaged indexes were rebuilt from their tables; nothing was lost".into()
            }
            RepairAction::Rebuilt => {
                let lost: Vec<String> = self
                    .tables
                    .iter()
                    .filter(|(_, l)| l.lost_any())
                    .map(|(t, l)| match &l.unreadable {
                        None => format!("{t}: unreadable"),
                        Some(ranges) if ranges.iter().any(|(_, end)| *end == i64::MAX) => {
                            match l.copied {
                                0 => format!("{t}: every row"),
                                n => format!("{t}: the rows after the first {n}"),
                            }
                        }
                        Some(ranges) => {
                            let rows: i128 = ranges
                                .iter()
                                .map(|(a, b)| i128::from(*b) - i128::from(*a) + 1)
                                .sum();
                            format!("{t}: {rows} rows")
                        }
                    })
                    .collect();
                let kept = self
                    .set_aside
                    .as_ref()
                    .map(|p| format!("; the damaged file is kept as {}", p.display()))
                    .unwrap_or_default();
                if lost.is_empty() {
                    format!("rebuilt from its readable rows, nothing was lost{kept}")
                } else {
                    format!(
                        "rebuilt from its readable rows; unreadable and set aside: {}{kept}",
                        lost.join(", ")
                    )
                }
            }
        }
    }
}

/// The problems `PRAGMA quick_check` finds (empty: the database is sound). A database SQLite
/// cannot even check is one problem.
pub(super) fn quick_check(conn: &Connection) -> Vec<String> {
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&format!("PRAGMA quick_check({PROBLEMS_KEPT})"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    match run() {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Vec::new(),
        Ok(lines) => lines,
        Err(e) => vec![e.to_string()],
    }
}

/// `REINDEX`, then a fresh check; true when the database is sound afterwards.
pub(super) fn reindex(conn: &Connection) -> bool {
    conn.execute_batch("REINDEX;").is_ok() && quick_check(conn).is_empty()
}

/// Copies every readable row of `src` into the fresh database at `dst` (whose schema exists).
pub(super) fn copy_readable(
    src: &Connection,
    dst: &mut Connection,
) -> Result<BTreeMap<String, LostRows>, StoreError> {
    let mut report = BTreeMap::new();
    let tx = dst.transaction()?;
    for table in TABLES {
        report.insert(table.to_string(), copy_table(src, &tx, table)?);
    }
    tx.commit()?;
    Ok(report)
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    names.collect()
}

/// The first readable row with a rowid above `after`: `Ok(None)` past the end, `Err` when the
/// page it lives on (or the path to it) cannot be read.
fn row_after(
    src: &Connection,
    table: &str,
    width: usize,
    after: i64,
) -> rusqlite::Result<Option<(i64, Vec<Value>)>> {
    src.query_row(
        &format!("SELECT rowid, * FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT 1"),
        [after],
        |r| {
            let values = (1..=width)
                .map(|i| r.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<Value>>>()?;
            Ok((r.get(0)?, values))
        },
    )
    .optional()
}

/// Where reading can go on after an unreadable row id `broken`: the smallest `after` from which
/// a row (or the end) can be read. Probes at growing distances, then narrows down, so rows right
/// behind a damaged page are not skipped with it.
fn resume_point(src: &Connection, table: &str, width: usize, broken: i64) -> Option<i64> {
    let readable = |after: i64| row_after(src, table, width, after).is_ok();
    let mut bad = broken;
    let mut step: i64 = 1;
    let good = loop {
        let probe = bad.checked_add(step)?;
        if readable(probe) {
            break probe;
        }
        bad = probe;
        step = step.saturating_mul(2);
    };
    let (mut lo, mut hi) = (bad, good);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if readable(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

fn copy_table(
    src: &Connection,
    dst: &rusqlite::Transaction<'_>,
    table: &str,
) -> Result<LostRows, StoreError> {
    let Ok(names) = columns(src, table) else {
        return Ok(LostRows {
            copied: 0,
            unreadable: None,
        });
    };
    let width = names.len();
    let placeholders = vec!["?"; width + 1].join(", ");
    let mut insert = dst.prepare(&format!(
        "INSERT OR IGNORE INTO {table} (rowid, {}) VALUES ({placeholders})",
        names.join(", ")
    ))?;
    let mut copied = 0;
    let mut unreadable = Vec::new();
    let mut after = i64::MIN;
    loop {
        match row_after(src, table, width, after) {
            Ok(None) => break,
            Ok(Some((rowid, values))) => {
                insert.execute(params_from_iter(
                    std::iter::once(Value::Integer(rowid)).chain(values),
                ))?;
                copied += 1;
                after = rowid;
            }
            Err(_) => {
                let first = after.saturating_add(1);
                match resume_point(src, table, width, after) {
                    Some(resume) => {
                        unreadable.push((first, resume));
                        after = resume;
                    }
                    None => {
                        unreadable.push((first, i64::MAX));
                        break;
                    }
                }
            }
        }
    }
    Ok(LostRows {
        copied,
        unreadable: Some(unreadable),
    })
}

/// `state.db` -> `state.db.corrupt-20260101T120000Z` (plus its `-wal` and `-shm`).
pub(super) fn set_aside(path: &Path, at: DateTime<Utc>) -> std::io::Result<PathBuf> {
    let mut target = path.as_os_str().to_owned();
    target.push(format!(".corrupt-{}", at.format("%Y%m%dT%H%M%SZ")));
    let target = PathBuf::from(target);
    std::fs::rename(path, &target)?;
    for suffix in ["-wal", "-shm"] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let mut to = target.as_os_str().to_owned();
        to.push(suffix);
        // Absent when the last connection checkpointed and closed cleanly.
        let _ = std::fs::rename(&from, &to);
    }
    Ok(target)
}

/// `state.db` -> `state.db.rebuild` (the fresh database is written there first).
pub(super) fn rebuild_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".rebuild");
    PathBuf::from(p)
}

#[cfg(test)]
pub(super) mod tests {
    use super::{RepairRecord, REPAIR_KIND};
    use crate::store::db::tests::ev;
    use crate::store::{Commit, RepairAction, Store};
    use chrono::Utc;
    use rusqlite::Connection;
    use std::io::{Seek, SeekFrom, Write};
    use std::path::Path;

    /// A database with 300 subjects and 300 events (several pages each) and two cursors.
    pub(in crate::store) fn populated(path: &Path) {
        let mut s = Store::open(path).unwrap();
        let commits: Vec<Commit> = (0..300)
            .map(|i| Commit {
                account: "a".into(),
                kind: "machine",
                id: i.to_string(),
                state: Some(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "p".repeat(200))),
                events: vec![ev(&format!("e{i}"))],
            })
            .collect();
        s.apply(&commits, Utc::now()).unwrap();
        s.set_cursor("one", 120).unwrap();
        s.set_cursor("two", 300).unwrap();
        s.checkpoint().unwrap();
    }

    /// The pages of `name` (a table or an index), root first.
    pub(in crate::store) fn pages_of(path: &Path, name: &str) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        let mut stmt = conn
            .prepare("SELECT pageno FROM dbstat WHERE name = ?1 ORDER BY pageno")
            .unwrap();
        let mut pages: Vec<i64> = stmt
            .query_map([name], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        pages.retain(|p| *p != root);
        pages.insert(0, root);
        pages
    }

    /// Overwrites page `page` of the database file with garbage.
    pub(in crate::store) fn corrupt(path: &Path, page: i64) {
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start((page as u64 - 1) * 4096)).unwrap();
        f.write_all(&[0xA5; 4096]).unwrap();
    }

    #[test]
    fn a_damaged_subjects_index_is_rebuilt_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        populated(&path);
        corrupt(&path, pages_of(&path, "sqlite_autoindex_subjects_1")[0]);
        let mut s = Store::open(&path).unwrap();
        let repairs = s.take_repairs();
        assert_eq!(repairs.len(), 1, "{repairs:?}");
        assert!(
            repairs[0].tables.values().all(|t| !t.lost_any()),
            "{repairs:?}"
        );
        let (states, _) = s
            .load_states("a", "machine", |j| Ok::<_, String>(j.to_string()))
            .unwrap();
        assert_eq!(states.len(), 300);
    }

    /// A daemon stopped between a repair and its event announces the repair at the next start
    /// (same key, so the same event id), and never again once the event is queued.
    #[test]
    fn a_repair_is_announced_after_a_crash_and_only_until_its_event_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        populated(&path);
        corrupt(&path, pages_of(&path, "sqlite_autoindex_subjects_1")[0]);
        let repair = {
            let mut s = Store::open(&path).unwrap();
            let mut repairs = s.take_repairs();
            assert_eq!(repairs.len(), 1, "{repairs:?}");
            repairs.pop().unwrap()
            // Dropped here without announcing it, as a kill would.
        };
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.take_repairs(), vec![repair.clone()], "announced again");
        let record = RepairRecord {
            repair: repair.clone(),
            announced: true,
        };
        let announced = Commit {
            account: String::new(),
            kind: REPAIR_KIND,
            id: repair.key(),
            state: Some(serde_json::to_string(&record).unwrap()),
            events: vec![ev("repair-announced")],
        };
        s.apply(&[announced], Utc::now()).unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.take_repairs(), vec![], "announced once");
    }

    #[test]
    fn a_damaged_index_is_rebuilt_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        populated(&path);
        corrupt(&path, pages_of(&path, "sqlite_autoindex_outbox_1")[0]);
        let mut s = Store::open(&path).unwrap();
        let repairs = s.take_repairs();
        assert_eq!(repairs.len(), 1, "{repairs:?}");
        assert!(!repairs[0].problems.is_empty());
        assert!(
            repairs[0].tables.values().all(|t| !t.lost_any()),
            "{repairs:?}"
        );
        assert_eq!(s.events_after(0, 1000).unwrap().len(), 300);
        assert_eq!(s.cursor_or_init("one", Utc::now()).unwrap(), 120);
        assert_eq!(
            s.apply(
                &[Commit {
                    account: "a".into(),
                    kind: "machine",
                    id: "1".into(),
                    state: None,
                    events: vec![ev("e7")]
                }],
                Utc::now()
            )
            .unwrap(),
            300,
            "the rebuilt unique index still refuses a duplicate id"
        );
    }

    #[test]
    fn a_damaged_table_page_loses_only_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        populated(&path);
        let pages = pages_of(&path, "subjects");
        assert!(pages.len() > 4, "subjects spans pages: {pages:?}");
        corrupt(&path, pages[2]);
        let mut s = Store::open(&path).unwrap();
        let repair = s.take_repairs().pop().expect("a repair");
        assert_eq!(repair.action, RepairAction::Rebuilt);
        let subjects = &repair.tables["subjects"];
        assert!(subjects.lost_any() && subjects.copied > 200, "{repair:?}");
        assert!(!repair.tables["outbox"].lost_any(), "{repair:?}");
        let aside = repair.set_aside.clone().unwrap();
        assert!(aside.exists(), "the damaged file is kept");
        let (states, _) = s
            .load_states("a", "machine", |j| Ok::<_, String>(j.to_string()))
            .unwrap();
        assert_eq!(states.len() as u64, subjects.copied);
        assert_eq!(s.events_after(0, 1000).unwrap().len(), 300);
        assert!(
            super::quick_check(&Connection::open(&path).unwrap()).is_empty(),
            "the new file is sound"
        );
        assert!(
            repair.summary().contains("subjects"),
            "{}",
            repair.summary()
        );
    }

    #[test]
    fn lost_delivery_positions_replay_from_max_age_ago() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        populated(&path);
        corrupt(&path, pages_of(&path, "cursors")[0]);
        let mut s = Store::open(&path).unwrap();
        let repair = s.take_repairs().pop().expect("a repair");
        assert!(repair.cursors_lost(), "{repair:?}");
        // Every event is younger than an hour: the target starts before all of them.
        let hour_ago = Utc::now() - chrono::TimeDelta::hours(1);
        assert_eq!(s.cursor_or_init("one", hour_ago).unwrap(), 0);
        assert_eq!(
            s.cursor_or_init("one", hour_ago).unwrap(),
            0,
            "then it is stored"
        );
        assert_eq!(
            s.cursor_or_init("fresh", Utc::now() + chrono::TimeDelta::hours(1))
                .unwrap(),
            300
        );
    }

    #[test]
    fn a_file_that_is_no_database_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        std::fs::write(&path, vec![0x42; 10_000]).unwrap();
        let mut s = Store::open(&path).unwrap();
        let repair = s.take_repairs().pop().expect("a repair");
        assert!(repair.set_aside.as_ref().unwrap().exists());
        assert!(repair.tables.values().all(|t| t.unreadable.is_none()));
        assert_eq!(s.max_seq().unwrap(), 0);
    }

    #[test]
    fn a_rebuild_copies_every_table_of_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_master
                 WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .unwrap();
        let tables: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut listed: Vec<String> = super::TABLES.iter().map(|t| t.to_string()).collect();
        listed.sort();
        assert_eq!(tables, listed);
    }

    #[test]
    fn the_earnings_history_survives_a_rebuild() {
        use crate::store::{EarningsDay, EarningsSource, HistoryRows};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        populated(&path);
        let day = EarningsDay {
            source: EarningsSource::Digest,
            reference: "d1".into(),
            account: "a".into(),
            machine_id: 7,
            day: "2026-01-02".parse().unwrap(),
            gpu: 3.0,
            storage: 0.5,
            other: 0.25,
        };
        let rows = HistoryRows {
            earnings: vec![day],
            rentals: Vec::new(),
        };
        let mut s = Store::open(&path).unwrap();
        s.record_history("earnings", 250, &rows).unwrap();
        s.checkpoint().unwrap();
        drop(s);
        corrupt(&path, pages_of(&path, "subjects")[2]);
        let mut s = Store::open(&path).unwrap();
        let repair = s.take_repairs().pop().expect("a repair");
        assert_eq!(repair.action, RepairAction::Rebuilt);
        assert_eq!(repair.tables["earnings_days"].copied, 1, "{repair:?}");
        assert_eq!(s.projection_position("earnings").unwrap(), 250);
        let kept: f64 = s
            .conn
            .query_row("SELECT gpu + storage + other FROM earnings_days", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, 3.75);
    }
}
