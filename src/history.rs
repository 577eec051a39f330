//! Earnings and rental history for the dashboard (SPEC §13), projected from the outbox: a task
//! follows the committed events (like the metrics' event counter) and turns every `rental_end`
//! into an ended-rental row plus its estimated earnings spread over the UTC days it ran, and every
//! `earnings_digest` into Vast's reported earnings per machine for its day. The rows outlive the
//! outbox (which is pruned) for [`KEEP_DAYS`].
//!
//! Owns the projection (which event fields become which rows, [`rows_for`]) and how the two
//! sources combine into one amount per machine per day ([`daily_totals`]: a day Vast reported
//! replaces the daemon's estimate). Must not decide anything about events or touch actors; the
//! store only keeps the rows.

use crate::event::{Event, EventKind, Subject};
use crate::store::{
    EarningsDay, EarningsSource, HistoryRows, QueuedEvent, RentalRecord, StoreError, StoreHandle,
};
use chrono::{DateTime, Days, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// History older than this many days is deleted.
pub const KEEP_DAYS: u64 = 90;
/// The projection's name in the store (its read position).
const PROJECTION: &str = "earnings";
/// Events read per batch.
const BATCH: usize = 512;

/// The history rows a batch of committed events yields; other kinds yield nothing.
pub fn rows_for(events: &[QueuedEvent]) -> HistoryRows {
    let mut rows = HistoryRows::default();
    for q in events {
        match q.event.kind {
            EventKind::RentalEnd => rental_end(&q.event, &mut rows),
            EventKind::EarningsDigest => digest(&q.event, &mut rows),
            _ => {}
        }
    }
    rows
}

fn rental_end(e: &Event, rows: &mut HistoryRows) {
    let (Subject::Machine { id, .. }, Some(account)) = (&e.subject, &e.account) else {
        return;
    };
    let data = &e.data;
    let amount = |k: &str| {
        data["estimated_earnings"][k]
            .as_f64()
            .filter(|v| v.is_finite())
            .unwrap_or(0.0)
    };
    let (gpu, storage) = (amount("gpu"), amount("storage"));
    let ended = e.time;
    let started = data["started"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|s| *s <= ended)
        .unwrap_or(ended);
    rows.rentals.push(RentalRecord {
        reference: e.id.clone(),
        account: account.clone(),
        machine_id: *id,
        rental_id: data["rental_id"].as_str().unwrap_or_default().to_string(),
        gpu_type: data["gpu_type"].as_str().unwrap_or_default().to_string(),
        gpus: data["gpus"].as_array().map_or(0, |g| g.len() as u32),
        started,
        ended,
        earnings: gpu + storage,
    });
    for (day, share) in day_shares(started, ended) {
        rows.earnings.push(EarningsDay {
            source: EarningsSource::Rental,
            reference: e.id.clone(),
            account: account.clone(),
            machine_id: *id,
            day,
            gpu: gpu * share,
            storage: storage * share,
            other: 0.0,
        });
    }
}

fn digest(e: &Event, rows: &mut HistoryRows) {
    let Some(account) = &e.account else {
        return;
    };
    let Some(day) = e.data["day"]
        .as_str()
        .and_then(|d| d.parse::<NaiveDate>().ok())
    else {
        return;
    };
    let machines = e.data["machines"].as_array().cloned().unwrap_or_default();
    for m in machines {
        // Earnings Vast could not attribute to a machine have no place in a per-machine chart.
        let Some(machine_id) = m["machine_id"].as_u64() else {
            continue;
        };
        let amount = |k: &str| m[k].as_f64().filter(|v| v.is_finite()).unwrap_or(0.0);
        rows.earnings.push(EarningsDay {
            source: EarningsSource::Digest,
            reference: e.id.clone(),
            account: account.clone(),
            machine_id,
            day,
            gpu: amount("gpu"),
            storage: amount("storage"),
            other: amount("bandwidth_up") + amount("bandwidth_down"),
        });
    }
}

/// The UTC days `[start, end]` touches, each with its share of the time (the shares add up to 1;
/// an instant belongs wholly to its day).
pub fn day_shares(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(NaiveDate, f64)> {
    let total = (end - start).num_milliseconds() as f64;
    if total <= 0.0 {
        return vec![(end.date_naive(), 1.0)];
    }
    let mut shares = Vec::new();
    let mut day = start.date_naive();
    while day <= end.date_naive() {
        let day_start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let next = day_start + chrono::Duration::days(1);
        let overlap = (end.min(next) - start.max(day_start)).num_milliseconds() as f64;
        if overlap > 0.0 {
            shares.push((day, overlap / total));
        }
        day = match day.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    shares
}

/// One machine's earnings on one day, and where the figure comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct DayTotal {
    pub account: String,
    pub amount: f64,
    pub source: EarningsSource,
}

/// Earnings of each machine on each day: what Vast reported for that day when a digest covers
/// it, else the sum of the daemon's estimates from ended rentals.
pub fn daily_totals(rows: &[EarningsDay]) -> BTreeMap<(u64, NaiveDate), DayTotal> {
    let mut totals: BTreeMap<(u64, NaiveDate), DayTotal> = BTreeMap::new();
    for r in rows {
        let entry = totals
            .entry((r.machine_id, r.day))
            .or_insert_with(|| DayTotal {
                account: r.account.clone(),
                amount: 0.0,
                source: r.source,
            });
        match (entry.source, r.source) {
            (EarningsSource::Rental, EarningsSource::Digest) => {
                *entry = DayTotal {
                    account: r.account.clone(),
                    amount: r.total(),
                    source: EarningsSource::Digest,
                };
            }
            (a, b) if a == b => entry.amount += r.total(),
            // An estimate for a day Vast already reported adds nothing.
            _ => {}
        }
    }
    totals
}

/// The first day of a window of `days` days ending with `today`.
pub fn window_start(today: NaiveDate, days: u64) -> NaiveDate {
    today
        .checked_sub_days(Days::new(days.saturating_sub(1)))
        .unwrap_or(today)
}

/// Follows the outbox from the projection's stored position until the store closes, writing the
/// rows of each batch together with the new position, and deletes history older than
/// [`KEEP_DAYS`] once an hour.
pub async fn follow(store: StoreHandle) {
    let mut latest = store.subscribe();
    let mut pruned_at: Option<tokio::time::Instant> = None;
    let mut after = match store.run(|s| s.projection_position(PROJECTION)).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "earnings history cannot read its position; not recorded");
            return;
        }
    };
    loop {
        if pruned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            pruned_at = Some(tokio::time::Instant::now());
            let oldest = window_start(Utc::now().date_naive(), KEEP_DAYS);
            if let Err(e) = store.run(move |s| s.prune_history(oldest)).await {
                tracing::warn!(error = %e, "earnings history: old rows not deleted");
            }
        }
        match store.run(move |s| s.events_after(after, BATCH)).await {
            Ok(batch) => match batch.last().map(|q| q.seq) {
                Some(last) => {
                    let mut rows = rows_for(&batch);
                    let oldest = window_start(Utc::now().date_naive(), KEEP_DAYS);
                    rows.earnings.retain(|r| r.day >= oldest);
                    rows.rentals.retain(|r| r.ended.date_naive() >= oldest);
                    match store
                        .run(move |s| s.record_history(PROJECTION, last, &rows))
                        .await
                    {
                        Ok(()) => after = last,
                        Err(StoreError::Closed) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "earnings history not recorded; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                None => {
                    // Wake for new events, and at least hourly for the retention.
                    let woken = tokio::time::timeout(Duration::from_secs(3600), latest.changed());
                    if let Ok(Err(_)) = woken.await {
                        return;
                    }
                }
            },
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "earnings history cannot read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn queued(seq: i64, event: Event) -> QueuedEvent {
        QueuedEvent { seq, event }
    }

    fn ended(id: &str, machine: u64, started: &str, ended: &str, gpu: f64, storage: f64) -> Event {
        Event::new(
            id,
            EventKind::RentalEnd,
            Some("alice".into()),
            Subject::Machine {
                id: machine,
                name: None,
            },
            at(ended),
            "t",
            "x",
        )
        .with_data(json!({
            "rental_id": "m1-0001", "gpus": [0, 1], "gpu_type": "D", "started": started,
            "estimated_earnings": {"gpu": gpu, "storage": storage, "total": gpu + storage}
        }))
    }

    /// 18 h on machine 7 across midnight: 6 h on the first day, 12 h on the second.
    fn two_day_rental() -> Event {
        ended(
            "alice:m7:3",
            7,
            "2026-03-01T18:00:00Z",
            "2026-03-02T12:00:00Z",
            18.0,
            0.0,
        )
    }

    #[test]
    fn a_rental_spreads_its_earnings_over_the_days_it_ran() {
        let e = two_day_rental();
        let rows = rows_for(&[queued(1, e)]);
        assert_eq!(rows.rentals.len(), 1);
        let r = &rows.rentals[0];
        assert_eq!((r.machine_id, r.gpus, r.earnings), (7, 2, 18.0));
        assert_eq!(r.rental_id, "m1-0001");
        let days: Vec<(NaiveDate, f64)> = rows.earnings.iter().map(|e| (e.day, e.gpu)).collect();
        assert_eq!(
            days,
            [(day("2026-03-01"), 6.0), (day("2026-03-02"), 12.0)],
            "6 h on the first day, 12 h on the second"
        );
    }

    #[test]
    fn a_digest_replaces_the_estimate_of_its_day_and_keeps_other_days() {
        let e = two_day_rental();
        let digest = Event::new(
            "alice:digest:2026-03-02:1",
            EventKind::EarningsDigest,
            Some("alice".into()),
            Subject::Account { id: "alice".into() },
            at("2026-03-03T08:00:00Z"),
            "t",
            "x",
        )
        .with_data(json!({"day": "2026-03-02", "machines": [
            {"machine_id": 7, "gpu": 20.0, "storage": 1.0, "bandwidth_up": 0.5, "bandwidth_down": 0.5, "total": 22.0},
            {"machine_id": null, "gpu": 3.0, "storage": 0.0, "bandwidth_up": 0.0, "bandwidth_down": 0.0, "total": 3.0}
        ]}));
        let rows = rows_for(&[queued(1, e), queued(2, digest)]);
        let totals = daily_totals(&rows.earnings);
        assert_eq!(totals[&(7, day("2026-03-01"))].amount, 6.0);
        let reported = &totals[&(7, day("2026-03-02"))];
        assert_eq!(reported.amount, 22.0, "Vast's figure wins");
        assert_eq!(reported.source, EarningsSource::Digest);
        assert_eq!(totals.len(), 2, "unattributed earnings are left out");
    }

    #[test]
    fn day_shares_add_up_and_an_instant_is_one_day() {
        let shares = day_shares(at("2026-01-01T12:00:00Z"), at("2026-01-04T12:00:00Z"));
        assert_eq!(shares.len(), 4);
        let sum: f64 = shares.iter().map(|s| s.1).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert_eq!(
            day_shares(at("2026-01-01T12:00:00Z"), at("2026-01-01T12:00:00Z")),
            [(day("2026-01-01"), 1.0)]
        );
        assert_eq!(window_start(day("2026-03-30"), 30), day("2026-03-01"));
    }

    #[tokio::test]
    async fn the_projection_follows_the_outbox_once_and_prunes_old_days() {
        use crate::store::{Commit, EarningsQuery, StoreReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = StoreHandle::open(&path).unwrap();
        let reader = StoreReader::open(&path).unwrap();
        let commit = |events: Vec<Event>| Commit {
            account: "alice".into(),
            kind: "machine",
            id: "7".into(),
            state: None,
            events,
        };
        let today = Utc::now().date_naive();
        let recent = format!("{today}T00:00:00Z");
        let old = ended(
            "alice:m7:1",
            7,
            "2020-01-01T00:00:00Z",
            "2020-01-01T01:00:00Z",
            1.0,
            0.0,
        );
        let new = ended("alice:m7:2", 7, &recent, &recent, 2.0, 0.5);
        store.apply(vec![commit(vec![old, new])]).await.unwrap();
        let task = tokio::spawn(follow(store.clone()));
        let query = EarningsQuery {
            since: day("2000-01-01"),
            account: None,
            machine: Some(7),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let rows = reader.earnings(query.clone()).await.unwrap();
            if rows.len() == 1 {
                assert_eq!(rows[0].total(), 2.5);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "rows: {rows:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            reader.rentals(7, 10).await.unwrap().len(),
            1,
            "old rental pruned"
        );
        task.abort();
        assert_eq!(
            store
                .run(|s| s.projection_position(PROJECTION))
                .await
                .unwrap(),
            2
        );
    }
}
