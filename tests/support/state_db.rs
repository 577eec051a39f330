//! Damaging the daemon's state database on purpose, for the store-fault tests and the soak:
//! overwrite the first page of a table or an index with garbage, as a failing disk would.
//! Included with `#[path = "support/state_db.rs"] mod state_db;`.
#![allow(dead_code)] // each test uses some of these

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// Overwrites the root page of the table or index `name` in the database at `path` (the daemon
/// must be stopped: its write-ahead log is checkpointed into the file first).
pub fn corrupt_root_page(path: &Path, name: &str) {
    let (root, page_size) = {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("no {name} in the database: {e}"));
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, page_size)
    };
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start((root - 1) as u64 * page_size as u64))
        .unwrap();
    f.write_all(&vec![0xA5; page_size as usize]).unwrap();
    f.sync_all().unwrap();
}
