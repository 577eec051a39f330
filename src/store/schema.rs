//! The tables of the state database, in one place: every group is created (if missing) when the
//! database opens, so a new group of tables is one more entry of [`ALL`]. Owns the SQL text of
//! the schema only; reading and writing the tables is the other store modules' business.

pub(super) const SCHEMA_VERSION: i64 = 1;

/// Subjects, the outbox, target cursors and quarantine.
const CORE: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (account, kind, id)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    target TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT NOT NULL,
    at TEXT NOT NULL
);
";

/// The dashboard's earnings and rental history (`store::history`); additive, so version 1
/// databases gain them on open.
const HISTORY: &str = "
CREATE TABLE IF NOT EXISTS earnings_days (
    source TEXT NOT NULL,
    ref TEXT NOT NULL,
    account TEXT NOT NULL,
    machine_id INTEGER NOT NULL,
    day TEXT NOT NULL,
    gpu REAL NOT NULL,
    storage REAL NOT NULL,
    other REAL NOT NULL,
    PRIMARY KEY (source, ref, machine_id, day)
);
CREATE INDEX IF NOT EXISTS earnings_days_by_day ON earnings_days (day, account, machine_id);
CREATE TABLE IF NOT EXISTS rental_history (
    ref TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    machine_id INTEGER NOT NULL,
    rental_id TEXT NOT NULL,
    gpu_type TEXT NOT NULL,
    gpus INTEGER NOT NULL,
    started TEXT NOT NULL,
    ended TEXT NOT NULL,
    earnings REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rental_history_by_machine ON rental_history (machine_id, ended);
CREATE TABLE IF NOT EXISTS projections (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
";

/// Every group of tables, in creation order.
pub(super) const ALL: &[&str] = &[CORE, HISTORY];
