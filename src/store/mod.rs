//! Durable state (SPEC §7): per-machine and per-instance snapshots, tracked rentals (inside those
//! snapshots), each account's money watch and polling health, the outbox of events and each
//! target's delivery cursor, in one SQLite database (WAL). Owns the schema and every transaction. Must not interpret states or events: it stores
//! the JSON the detection core and the actors hand it.
//!
//! Applying an observation (new state + its events) is one transaction, so after `kill -9` the
//! daemon either re-detects the change or finds its events already queued. Event ids are unique in
//! the outbox, so a change re-detected after a crash is not queued twice.
//!
//! [`Store`] is the synchronous layer; [`StoreHandle`] runs it on a dedicated writer thread so
//! SQLite never blocks the actor threads, and groups concurrent commits into one transaction.
//! [`StoreReader`] answers the dashboard's queries on a read-only connection of its own; the
//! history tables it reads (earnings per machine and day, ended rentals) are filled from rows a
//! projection outside the store hands in (`history`).

mod db;
mod handle;
mod history;
mod reader;
mod repair;
mod schema;

pub use db::{Commit, LoadedStates, Quarantined, QueuedEvent, Store};
pub use handle::{StoreHandle, StoreHealth, StoreOptions};
pub use history::{EarningsDay, EarningsSource, HistoryRows, RentalRecord};
pub use reader::{EarningsQuery, EventQuery, StoreReader};
pub use repair::{LostRows, Repair, RepairAction, RepairRecord, REPAIR_KIND};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state database has schema version {0}, this build understands version 1")]
    SchemaVersion(String),
    #[error("state database holds unreadable data: {0}")]
    Corrupt(String),
    #[error("state database writer has stopped")]
    Closed,
    #[error("state database refuses writes and {0} events already wait in memory")]
    Full(usize),
    #[error("state database: cannot move a damaged file aside: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Whether SQLite found the file damaged (as opposed to full, busy or gone).
    pub fn is_corruption(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, DatabaseCorrupt | NotADatabase)
        )
    }
}
