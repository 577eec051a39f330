//! `/instances` (renter instances per account: state, $/h, credit and runway) and `/events`
//! (the event log with filters, paged back by sequence number; the script adds new events live
//! from `/api/v1/events/stream` with the same filters).

use super::failure;
use crate::event::{EventKind, Subject};
use crate::fleet::InstanceView;
use crate::store::{EventQuery, QueuedEvent};
use crate::web::html::{self, ago, badge, esc, link, money, span, state_badge, time, Nav};
use crate::web::Dashboard;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::fmt::Write as _;

/// Events per page of the log.
const EVENTS_PER_PAGE: usize = 100;

pub async fn instances(State(d): State<Dashboard>) -> Response {
    let fleet = d.status().await;
    let now = Utc::now();
    let mut body = String::from("<h1>Renter instances</h1>");
    let renters: Vec<_> = fleet
        .accounts
        .iter()
        .filter(|a| !a.instances.is_empty() || a.credit.is_some())
        .collect();
    if renters.is_empty() {
        body.push_str("<p class=\"muted\">No account watches instances.</p>");
    }
    for a in renters {
        let runway = match a.runway_hours() {
            Some(h) => span((h * 3600.0) as i64),
            None => "–".into(),
        };
        let _ = write!(
            body,
            "<section class=\"renter\" data-refresh><h2>{name} {state}</h2><div class=\"tiles\">\
<div class=\"tile\"><span class=\"label\">Credit</span><span class=\"value credit\">{credit}</span></div>\
<div class=\"tile\"><span class=\"label\">Spending</span><span class=\"value\">{spend}/h</span></div>\
<div class=\"tile\"><span class=\"label\">Runway</span><span class=\"value runway\">{runway}</span></div></div>",
            name = esc(&a.name),
            state = state_badge(&a.state),
            credit = a.credit.map(money).unwrap_or_else(|| "unknown".into()),
            spend = money(a.spend_per_hour()),
        );
        body.push_str(
            "<table class=\"instances\"><thead><tr><th>Instance</th><th>State</th><th>GPUs</th>\
<th>Machine</th><th class=\"num\">$/h</th><th>Running since</th></tr></thead><tbody>",
        );
        for i in a.instances.iter().filter(|i| !i.destroyed) {
            instance_row(&mut body, i, now);
        }
        body.push_str("</tbody></table></section>");
    }
    Html(html::page("Instances", Some(Nav::Instances), &body)).into_response()
}

fn instance_row(body: &mut String, i: &InstanceView, now: DateTime<Utc>) {
    let mut state = badge(
        match i.phase.as_str() {
            "running" => "ok",
            "starting" => "info",
            _ => "muted",
        },
        i.actual_status.as_deref().unwrap_or(&i.phase),
    );
    if i.stuck {
        state.push_str(&badge("warn", "stuck"));
    }
    if i.is_bid {
        state.push_str(&badge("info", "interruptible"));
    }
    if let Some(e) = i.error.as_ref().or(i.status_msg.as_ref()) {
        let _ = write!(state, " <span class=\"error\">{}</span>", esc(e));
    }
    let gpus = match (i.num_gpus, &i.gpu_name) {
        (Some(n), Some(g)) => format!("{n}x {g}"),
        (None, Some(g)) => g.clone(),
        _ => String::new(),
    };
    let _ = write!(
        body,
        "<tr data-instance=\"{id}\"><td>{id} <span class=\"muted\">{label}</span></td><td>{state}</td><td>{gpus}</td>\
<td>{machine}</td><td class=\"num\">{rate}</td><td>{since}</td></tr>",
        id = i.id,
        label = esc(i.label.as_deref().unwrap_or("")),
        gpus = esc(&gpus),
        machine = i.machine_id.map(|m| m.to_string()).unwrap_or_default(),
        rate = money(i.dollars_per_hour()),
        since = i.running_since.map(|t| ago(t, now)).unwrap_or_default(),
    );
}

/// The filters of the log and of its live stream.
#[derive(Debug, Default, Deserialize)]
pub struct EventFilter {
    /// Event kind names, comma-separated.
    pub kind: Option<String>,
    pub account: Option<String>,
    pub machine: Option<u64>,
    /// Show events before this sequence number (paging back).
    pub before: Option<i64>,
}

impl EventFilter {
    /// The kinds asked for; an unknown name is an error naming it.
    pub fn kinds(&self) -> Result<Vec<String>, String> {
        let names = self.kind.as_deref().unwrap_or("");
        names
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| match EventKind::from_name(k) {
                Some(kind) => Ok(kind.as_str().to_string()),
                None => Err(format!("unknown event kind \"{k}\"")),
            })
            .collect()
    }

    pub fn account(&self) -> Option<String> {
        self.account.clone().filter(|a| !a.is_empty())
    }

    fn pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("kind", self.kind.clone()),
            ("account", self.account()),
            ("machine", self.machine.map(|m| m.to_string())),
        ]
    }
}

pub async fn events(State(d): State<Dashboard>, Query(f): Query<EventFilter>) -> Response {
    let kinds = match f.kinds() {
        Ok(k) => k,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &e),
    };
    let query = EventQuery {
        before: f.before,
        kinds,
        account: f.account(),
        machine: f.machine,
        limit: EVENTS_PER_PAGE,
        ..EventQuery::default()
    };
    let (events, newest) = match tokio::try_join!(d.reader.events(query), d.reader.max_seq()) {
        Ok(found) => found,
        Err(e) => {
            return failure(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("events unavailable: {e}"),
            )
        }
    };
    let fleet = d.status().await;
    let now = Utc::now();
    let mut body =
        String::from("<h1>Events <span id=\"live\" class=\"live\" hidden>live</span></h1>");
    let option = |value: &str, selected: bool| {
        format!(
            "<option value=\"{v}\"{s}>{v}</option>",
            v = esc(value),
            s = if selected { " selected" } else { "" }
        )
    };
    let mut kinds = String::from("<option value=\"\">all kinds</option>");
    for k in EventKind::ALL {
        kinds.push_str(&option(k.as_str(), f.kind.as_deref() == Some(k.as_str())));
    }
    let mut accounts = String::from("<option value=\"\">all accounts</option>");
    for a in &fleet.accounts {
        accounts.push_str(&option(&a.name, f.account.as_deref() == Some(&a.name)));
    }
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\" action=\"/events\"><select name=\"kind\" aria-label=\"kind\">{kinds}</select>\
<select name=\"account\" aria-label=\"account\">{accounts}</select>\
<input type=\"number\" name=\"machine\" min=\"0\" placeholder=\"machine id\" value=\"{machine}\" aria-label=\"machine\">\
<button type=\"submit\">Filter</button></form>",
        machine = f.machine.map(|m| m.to_string()).unwrap_or_default()
    );
    // Live updates only make sense on the newest page.
    let stream = match f.before {
        None => format!(
            " data-stream=\"{}\"",
            esc(&link("/api/v1/events/stream", &{
                let mut p = f.pairs();
                p.push(("after", Some(newest.to_string())));
                p
            }))
        ),
        Some(_) => String::new(),
    };
    let _ = write!(body, "<table class=\"events\" id=\"event-log\"{stream}>");
    body.push_str(&event_rows(&events, now));
    body.push_str("</table>");
    if let Some(oldest) = events.first().filter(|_| events.len() == EVENTS_PER_PAGE) {
        let mut pairs = f.pairs();
        pairs.push(("before", Some(oldest.seq.to_string())));
        let _ = write!(
            body,
            "<p><a class=\"older\" href=\"{}\">Older events</a></p>",
            esc(&link("/events", &pairs))
        );
    }
    Html(html::page("Events", Some(Nav::Events), &body)).into_response()
}

/// A table head and body of events, newest first (`events` come oldest first).
pub fn event_rows(events: &[QueuedEvent], now: DateTime<Utc>) -> String {
    let mut out = String::from(
        "<thead><tr><th>Time</th><th>Kind</th><th>Account</th><th>Subject</th><th>What</th></tr></thead><tbody>",
    );
    if events.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"5\">No events.</td></tr>");
    }
    for q in events.iter().rev() {
        let e = &q.event;
        let subject = match &e.subject {
            Subject::Machine { id, .. } => {
                format!("<a href=\"/machines/{id}\">{}</a>", esc(&e.subject.label()))
            }
            other => esc(&other.label()),
        };
        let _ = write!(
            out,
            "<tr class=\"event sev-{sev}\" data-seq=\"{seq}\" data-kind=\"{kind}\"><td>{time}</td>\
<td><span class=\"kind\">{kind}</span></td><td>{account}</td><td>{subject}</td>\
<td><strong>{title}</strong><div class=\"text\">{text}</div></td></tr>",
            sev = e.severity.as_str(),
            seq = q.seq,
            kind = e.kind.as_str(),
            time = time(e.time, now),
            account = esc(e.account.as_deref().unwrap_or("")),
            title = esc(&e.title),
            text = esc(&e.text),
        );
    }
    out.push_str("</tbody>");
    out
}
