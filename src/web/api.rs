//! The JSON API behind the dashboard (read-only, version 1):
//!
//! - `GET /api/v1/status`: the status snapshot, the same document as `status --json`.
//! - `GET /api/v1/events?limit=&since=&before=&kind=&account=&machine=`: events from the
//!   outbox, oldest first. With `since` (a sequence number) the first `limit` after it, else the
//!   newest `limit` (before `before`). `kind` takes names separated by commas.
//! - `GET /api/v1/earnings?days=&account=&machine=`: earnings per machine per UTC day over the
//!   last `days` (default 30, at most 90): Vast's figure where a daily digest reported the day
//!   (`"source": "digest"`), else the daemon's estimate from ended rentals (`"estimate"`).

use super::pages::EventFilter;
use super::Dashboard;
use crate::history::{daily_totals, window_start, KEEP_DAYS};
use crate::store::{EarningsQuery, EarningsSource, EventQuery};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

/// Events per answer unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn routes(d: Dashboard) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .route("/api/v1/earnings", get(earnings))
        .with_state(d)
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

async fn status(State(d): State<Dashboard>) -> Response {
    let json = d.status_json().await;
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// The log's filters plus paging (no `serde(flatten)`: query strings carry numbers as text).
#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
    since: Option<i64>,
    kind: Option<String>,
    account: Option<String>,
    machine: Option<u64>,
    before: Option<i64>,
}

async fn events(State(d): State<Dashboard>, Query(q): Query<EventsQuery>) -> Response {
    let filter = EventFilter {
        kind: q.kind,
        account: q.account,
        machine: q.machine,
        before: q.before,
    };
    let kinds = match filter.kinds() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {MAX_LIMIT}"),
        );
    }
    let query = EventQuery {
        after: q.since,
        before: filter.before,
        kinds,
        account: filter.account(),
        machine: filter.machine,
        limit,
    };
    match tokio::try_join!(d.reader.events(query), d.reader.max_seq()) {
        Ok((events, newest)) => {
            let events: Vec<_> = events
                .into_iter()
                .map(|q| json!({ "seq": q.seq, "event": q.event }))
                .collect();
            Json(json!({ "events": events, "newest_seq": newest })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct EarningsParams {
    days: Option<u64>,
    account: Option<String>,
    machine: Option<u64>,
}

async fn earnings(State(d): State<Dashboard>, Query(p): Query<EarningsParams>) -> Response {
    let days = p.days.unwrap_or(30);
    if days == 0 || days > KEEP_DAYS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("days must be 1 to {KEEP_DAYS}"),
        );
    }
    let today = Utc::now().date_naive();
    let from = window_start(today, days);
    let query = EarningsQuery {
        since: from,
        account: p.account.filter(|a| !a.is_empty()),
        machine: p.machine,
    };
    let rows = match d.reader.earnings(query).await {
        Ok(rows) => rows,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let rows: Vec<_> = daily_totals(&rows)
        .into_iter()
        .map(|((machine, day), t)| {
            json!({
                "account": t.account,
                "machine_id": machine,
                "day": day.to_string(),
                "amount": (t.amount * 1e6).round() / 1e6,
                "source": match t.source {
                    EarningsSource::Digest => "digest",
                    EarningsSource::Rental => "estimate",
                },
            })
        })
        .collect();
    Json(json!({ "from": from.to_string(), "to": today.to_string(), "rows": rows })).into_response()
}
