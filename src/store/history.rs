//! Durable history for the dashboard: earnings per machine per day and ended rentals, kept for a
//! bounded time because the outbox itself is pruned. The rows are handed in ready-made by a
//! projection outside the store (`crate::history` decides which event fields become which rows);
//! this file only owns the tables, their writes and their retention, and never reads events.

use super::db::Store;
use super::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};

/// Where an amount of earnings comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EarningsSource {
    /// Estimated by the daemon from an ended rental (rate x time), spread over the days it ran.
    Rental,
    /// Reported by Vast in the daily earnings digest.
    Digest,
}

impl EarningsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EarningsSource::Rental => "rental",
            EarningsSource::Digest => "digest",
        }
    }

    fn from_str(s: &str) -> Result<EarningsSource, StoreError> {
        match s {
            "rental" => Ok(EarningsSource::Rental),
            "digest" => Ok(EarningsSource::Digest),
            other => Err(StoreError::Corrupt(format!("earnings source \"{other}\""))),
        }
    }
}

/// Earnings of one machine on one (UTC) day from one source document (`reference`, an event id).
#[derive(Debug, Clone, PartialEq)]
pub struct EarningsDay {
    pub source: EarningsSource,
    pub reference: String,
    pub account: String,
    pub machine_id: u64,
    pub day: NaiveDate,
    pub gpu: f64,
    pub storage: f64,
    /// Bandwidth and anything else a digest reports.
    pub other: f64,
}

impl EarningsDay {
    pub fn total(&self) -> f64 {
        self.gpu + self.storage + self.other
    }
}

/// One ended rental (`reference` is the id of the event that ended it).
#[derive(Debug, Clone, PartialEq)]
pub struct RentalRecord {
    pub reference: String,
    pub account: String,
    pub machine_id: u64,
    pub rental_id: String,
    pub gpu_type: String,
    pub gpus: u32,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub earnings: f64,
}

/// The rows one batch of events yields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryRows {
    pub earnings: Vec<EarningsDay>,
    pub rentals: Vec<RentalRecord>,
}

impl HistoryRows {
    pub fn is_empty(&self) -> bool {
        self.earnings.is_empty() && self.rentals.is_empty()
    }
}

impl Store {
    /// How far the projection `name` has read the outbox (0 before its first batch).
    pub fn projection_position(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM projections WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Writes `rows` and moves the projection `name` to `seq`, in one transaction. Rows already
    /// there (the same source document, machine and day) are replaced, so reading a batch again
    /// after a crash changes nothing.
    pub fn record_history(
        &mut self,
        name: &str,
        seq: i64,
        rows: &HistoryRows,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut day = tx.prepare_cached(
                "INSERT OR REPLACE INTO earnings_days
                 (source, ref, account, machine_id, day, gpu, storage, other)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for e in &rows.earnings {
                day.execute(params![
                    e.source.as_str(),
                    e.reference,
                    e.account,
                    e.machine_id as i64,
                    e.day.to_string(),
                    e.gpu,
                    e.storage,
                    e.other
                ])?;
            }
            let mut rental = tx.prepare_cached(
                "INSERT OR REPLACE INTO rental_history
                 (ref, account, machine_id, rental_id, gpu_type, gpus, started, ended, earnings)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for r in &rows.rentals {
                rental.execute(params![
                    r.reference,
                    r.account,
                    r.machine_id as i64,
                    r.rental_id,
                    r.gpu_type,
                    r.gpus,
                    r.started.to_rfc3339(),
                    r.ended.to_rfc3339(),
                    r.earnings
                ])?;
            }
            tx.execute(
                "INSERT INTO projections (name, seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                params![name, seq],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes history from before `oldest_day`; returns how many rows went.
    pub fn prune_history(&mut self, oldest_day: NaiveDate) -> Result<usize, StoreError> {
        let day = oldest_day.to_string();
        let earnings = self
            .conn
            .execute("DELETE FROM earnings_days WHERE day < ?1", params![day])?;
        // `ended` is RFC 3339, which sorts like the day it starts with.
        let rentals = self
            .conn
            .execute("DELETE FROM rental_history WHERE ended < ?1", params![day])?;
        Ok(earnings + rentals)
    }
}

pub(super) fn earnings_day(r: &rusqlite::Row) -> Result<EarningsDay, StoreError> {
    let day: String = r.get(4)?;
    Ok(EarningsDay {
        source: EarningsSource::from_str(&r.get::<_, String>(0)?)?,
        reference: r.get(1)?,
        account: r.get(2)?,
        machine_id: r.get::<_, i64>(3)? as u64,
        day: day
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("earnings day \"{day}\": {e}")))?,
        gpu: r.get(5)?,
        storage: r.get(6)?,
        other: r.get(7)?,
    })
}

pub(super) fn rental_record(r: &rusqlite::Row) -> Result<RentalRecord, StoreError> {
    let time = |i: usize| -> Result<DateTime<Utc>, StoreError> {
        let s: String = r.get(i)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Corrupt(format!("rental time \"{s}\": {e}")))
    };
    Ok(RentalRecord {
        reference: r.get(0)?,
        account: r.get(1)?,
        machine_id: r.get::<_, i64>(2)? as u64,
        rental_id: r.get(3)?,
        gpu_type: r.get(4)?,
        gpus: r.get(5)?,
        started: time(6)?,
        ended: time(7)?,
        earnings: r.get(8)?,
    })
}
