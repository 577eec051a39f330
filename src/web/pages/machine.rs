//! `/machines/{id}`: one machine. What it is and how it is doing, its current rentals, its
//! 30-day earnings chart, its ended rentals with durations and earnings, and its latest events.

use super::lists::event_rows;
use super::{failure, EarningsWindow};
use crate::fleet::{GpuState, MachineCondition};
use crate::store::EventQuery;
use crate::web::chart::earnings_bars;
use crate::web::html::{self, ago, badge, esc, money, span, state_badge, time, Nav};
use crate::web::Dashboard;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use std::fmt::Write as _;

/// Ended rentals and events shown on the page.
const HISTORY_ROWS: usize = 50;

fn rental_kind(letter: &str) -> &'static str {
    match GpuState::of_rental(letter) {
        GpuState::Interruptible => "interruptible",
        GpuState::Reserved => "reserved",
        _ => "on-demand",
    }
}

pub async fn page(State(d): State<Dashboard>, Path(id): Path<u64>) -> Response {
    let fleet = d.status().await;
    let Some((account, m)) = fleet.machine(id) else {
        return failure(
            StatusCode::NOT_FOUND,
            &format!("machine {id} is not watched"),
        );
    };
    let now = Utc::now();
    let events_query = EventQuery {
        machine: Some(id),
        limit: HISTORY_ROWS,
        ..EventQuery::default()
    };
    let (rentals, events) = match tokio::try_join!(
        d.reader.rentals(id, HISTORY_ROWS),
        d.reader.events(events_query)
    ) {
        Ok(found) => found,
        Err(e) => {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("history unavailable: {e}"),
            )
        }
    };
    let earnings = match EarningsWindow::read(&d.reader, Some(id), now.date_naive()).await {
        Ok(e) => e,
        Err(page) => return page,
    };
    let condition = m.condition();
    let mut body = format!(
        "<h1>{name} <span class=\"id\">{id}</span> {cond}</h1>",
        name = esc(&m.label()),
        cond = badge(
            match condition {
                MachineCondition::Offline | MachineCondition::Error => "bad",
                MachineCondition::Rented => "ok",
                _ => "muted",
            },
            condition.as_str()
        ),
    );
    let facts = [
        (
            "Account",
            format!("{} {}", esc(&account.name), state_badge(&account.state)),
        ),
        (
            "GPUs",
            format!(
                "{} x {}",
                m.gpus_total,
                esc(m.gpu_name.as_deref().unwrap_or("?"))
            ),
        ),
        ("Earning now", format!("{}/h", money(m.dollars_per_hour()))),
        (
            "Listed",
            match m.listed {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "?".into(),
            },
        ),
        (
            "Verification",
            esc(m.verification.as_deref().unwrap_or("?")),
        ),
        (
            "Error",
            m.error.as_deref().map(esc).unwrap_or_else(|| "none".into()),
        ),
        (
            "Last seen",
            m.last_seen.map(|t| ago(t, now)).unwrap_or_default(),
        ),
    ];
    body.push_str("<dl class=\"facts\" data-refresh>");
    for (k, v) in facts {
        let _ = write!(body, "<dt>{k}</dt><dd>{v}</dd>");
    }
    body.push_str("</dl>");

    body.push_str(
        "<section data-refresh><h2>Current rentals</h2><table class=\"rentals\"><thead><tr><th>Rental</th><th>Type</th>\
<th>GPUs</th><th>Status</th><th>Started</th><th class=\"num\">$/h</th><th class=\"num\">Earned so far</th></tr></thead><tbody>",
    );
    if m.rentals.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"7\">No rentals.</td></tr>");
    }
    for r in &m.rentals {
        let started = r.started.map(|t| time(t, now)).unwrap_or_default();
        let so_far = r
            .started
            .map(|s| r.accrued_since(s, now))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td>{id}</td><td>{kind}</td><td>{gpus:?}</td><td>{status}</td><td>{started}</td>\
<td class=\"num\">{rate}</td><td class=\"num\">{so_far}</td></tr>",
            id = esc(&r.id),
            kind = rental_kind(&r.gpu_type),
            gpus = r.gpus,
            status = esc(&r.status),
            rate = money(r.dollars_per_hour()),
            so_far = money(so_far),
        );
    }
    body.push_str("</tbody></table></section>");

    body.push_str("<section data-refresh><h2>Earnings, last 30 days</h2>");
    body.push_str(&earnings_bars(
        &format!("earnings of machine {id} per day"),
        &earnings.series(|machine| machine == id),
    ));
    body.push_str("</section>");

    body.push_str(
        "<section data-refresh><h2>Ended rentals</h2><table class=\"history\"><thead><tr><th>Rental</th><th>Type</th>\
<th class=\"num\">GPUs</th><th>Started</th><th>Ended</th><th class=\"num\">Duration</th><th class=\"num\">Earnings (est.)</th></tr></thead><tbody>",
    );
    if rentals.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"7\">None recorded yet.</td></tr>");
    }
    for r in &rentals {
        let _ = write!(
            body,
            "<tr><td>{id}</td><td>{kind}</td><td class=\"num\">{gpus}</td><td>{started}</td><td>{ended}</td>\
<td class=\"num\">{duration}</td><td class=\"num\">{earned}</td></tr>",
            id = esc(&r.rental_id),
            kind = rental_kind(&r.gpu_type),
            gpus = r.gpus,
            started = time(r.started, now),
            ended = time(r.ended, now),
            duration = span((r.ended - r.started).num_seconds()),
            earned = money(r.earnings),
        );
    }
    body.push_str("</tbody></table></section>");

    let _ = write!(
        body,
        "<section data-refresh><h2>Events</h2><table class=\"events\">{}</table><p><a href=\"/events?machine={id}\">All events of this machine</a></p></section>",
        event_rows(&events, now)
    );
    Html(html::page(&m.label(), Some(Nav::Fleet), &body)).into_response()
}
