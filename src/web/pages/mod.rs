//! The server-rendered pages: fleet overview (`/`, [`fleet`]), one machine
//! (`/machines/{id}`, [`machine`]), renter instances and the event log (`/instances`,
//! `/events`, [`lists`]). Each page reads the status snapshot and the store's history once,
//! renders HTML with no inline script or style, and works without the script; the script
//! (`assets/app.js`) only adds live updates.

mod fleet;
mod lists;
mod machine;

pub use lists::EventFilter;

use super::html::{self, esc};
use super::Dashboard;
use crate::history::{daily_totals, window_start, DayTotal};
use crate::store::{EarningsQuery, StoreReader};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

/// Days the earnings charts cover.
pub const CHART_DAYS: u64 = 30;

pub fn routes(d: Dashboard) -> Router {
    Router::new()
        .route("/", get(fleet::page))
        .route("/machines/{id}", get(machine::page))
        .route("/instances", get(lists::instances))
        .route("/events", get(lists::events))
        .with_state(d)
}

/// A page that could not be built: the reason, on a page of its own.
fn failure(code: StatusCode, message: &str) -> Response {
    let body = format!("<h1>{}</h1><p>{}</p>", code.as_u16(), esc(message));
    (code, Html(html::page("Error", None, &body))).into_response()
}

/// Earnings per machine per day over the chart window (Vast's digest where it reported a day,
/// else the daemon's estimates from ended rentals).
struct EarningsWindow {
    days: Vec<NaiveDate>,
    by_machine_day: BTreeMap<(u64, NaiveDate), DayTotal>,
}

impl EarningsWindow {
    async fn read(
        reader: &StoreReader,
        machine: Option<u64>,
        today: NaiveDate,
    ) -> Result<EarningsWindow, Response> {
        let since = window_start(today, CHART_DAYS);
        let rows = reader
            .earnings(EarningsQuery {
                since,
                account: None,
                machine,
            })
            .await
            .map_err(|e| {
                failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("earnings history unavailable: {e}"),
                )
            })?;
        let days = since.iter_days().take_while(|d| *d <= today).collect();
        Ok(EarningsWindow {
            days,
            by_machine_day: daily_totals(&rows),
        })
    }

    /// Every day of the window with the earnings of the machines `include` accepts.
    fn series(&self, include: impl Fn(u64) -> bool) -> Vec<(NaiveDate, f64)> {
        let mut per_day: BTreeMap<NaiveDate, f64> = self.days.iter().map(|d| (*d, 0.0)).collect();
        for ((machine, day), total) in &self.by_machine_day {
            if include(*machine) {
                if let Some(slot) = per_day.get_mut(day) {
                    *slot += total.amount;
                }
            }
        }
        per_day.into_iter().collect()
    }

    /// What the machine's ended rentals earned today.
    fn ended_today(&self, machine: u64, today: NaiveDate) -> f64 {
        self.by_machine_day
            .get(&(machine, today))
            .map_or(0.0, |t| t.amount)
    }
}

/// The start of the current UTC day.
fn midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}
