//! `/`: the fleet overview. Accounts and their state (a STALE badge with the last good poll
//! when polling fails), fleet totals, the 30-day earnings chart, and the machines a page at a
//! time (filters: account, condition, text) with GPU occupancy by rental type, badges, rentals,
//! $/h and today's estimated earnings.

use super::{failure, midnight, EarningsWindow};
use crate::fleet::{AccountView, FleetStatus, MachineCondition, MachineView};
use crate::web::chart::earnings_bars;
use crate::web::html::{self, ago, badge, esc, link, money, state_badge, Nav};
use crate::web::Dashboard;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::fmt::Write as _;

/// Machines per page: the page stays small however large the fleet.
pub const PAGE_SIZE: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    account: Option<String>,
    /// A [`MachineCondition`] name.
    state: Option<String>,
    /// Matches machine ids, hostnames and GPU models.
    q: Option<String>,
    page: Option<usize>,
}

impl FleetQuery {
    fn href(&self, page: usize) -> String {
        link(
            "/",
            &[
                ("account", self.account.clone()),
                ("state", self.state.clone()),
                ("q", self.q.clone()),
                ("page", (page > 1).then(|| page.to_string())),
            ],
        )
    }

    fn accepts(&self, account: &AccountView, m: &MachineView) -> bool {
        let account_ok = self
            .account
            .as_deref()
            .is_none_or(|a| a.is_empty() || a == account.name);
        let state_ok = match self.state.as_deref().and_then(MachineCondition::from_name) {
            Some(c) => m.condition() == c,
            None => true,
        };
        let text_ok = match self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            None => true,
            Some(q) => {
                let q = q.to_lowercase();
                m.machine_id.to_string().contains(&q)
                    || m.hostname
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(&q)
                    || m.gpu_name
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(&q)
            }
        };
        account_ok && state_ok && text_ok
    }
}

pub async fn page(State(d): State<Dashboard>, Query(q): Query<FleetQuery>) -> Response {
    let fleet = d.status().await;
    let now = Utc::now();
    let today = now.date_naive();
    let earnings = match EarningsWindow::read(&d.reader, None, today).await {
        Ok(e) => e,
        Err(page) => return page,
    };
    if q.state
        .as_deref()
        .is_some_and(|s| !s.is_empty() && MachineCondition::from_name(s).is_none())
    {
        return failure(StatusCode::BAD_REQUEST, "unknown state filter");
    }
    let today_of = |m: &MachineView| {
        earnings.ended_today(m.machine_id, today)
            + m.rentals
                .iter()
                .map(|r| r.accrued_since(midnight(now), now))
                .sum::<f64>()
    };
    let mut body = String::new();
    summary(&mut body, &fleet, &today_of);
    accounts(&mut body, &fleet, &today_of, now);
    body.push_str("<section data-refresh><h2>Earnings, last 30 days</h2>");
    body.push_str(&earnings_bars(
        "earnings of the fleet per day",
        &earnings.series(|_| true),
    ));
    body.push_str("</section>");
    machines(&mut body, &fleet, &q, &today_of, now);
    Html(html::page("Fleet", Some(Nav::Fleet), &body)).into_response()
}

fn summary(body: &mut String, fleet: &FleetStatus, today_of: &dyn Fn(&MachineView) -> f64) {
    let machines: Vec<&MachineView> = fleet
        .machines()
        .map(|(_, m)| m)
        .filter(|m| !m.removed)
        .collect();
    let count = |c: MachineCondition| machines.iter().filter(|m| m.condition() == c).count();
    let gpus_total: u32 = machines.iter().map(|m| m.gpus_total).sum();
    let gpus_idle: u32 = machines.iter().map(|m| m.gpus_by_state()[3].1).sum();
    let stale = fleet.accounts.iter().filter(|a| a.stale()).count();
    let tiles = [
        (
            "Accounts",
            fleet.accounts.len().to_string(),
            (stale > 0).then(|| format!("{stale} stale")),
        ),
        (
            "Machines",
            machines.len().to_string(),
            Some(format!(
                "{} offline, {} error",
                count(MachineCondition::Offline),
                count(MachineCondition::Error)
            )),
        ),
        (
            "GPUs rented",
            format!("{} / {gpus_total}", gpus_total - gpus_idle),
            None,
        ),
        (
            "Rentals running",
            machines
                .iter()
                .map(|m| m.running_rentals())
                .sum::<usize>()
                .to_string(),
            None,
        ),
        (
            "Earning now",
            format!(
                "{}/h",
                money(machines.iter().map(|m| m.dollars_per_hour()).sum())
            ),
            None,
        ),
        (
            "Today (estimate)",
            money(machines.iter().map(|m| today_of(m)).sum()),
            Some("UTC day".into()),
        ),
    ];
    body.push_str("<section class=\"tiles\" data-refresh>");
    for (label, value, note) in tiles {
        let _ = write!(
            body,
            "<div class=\"tile\"><span class=\"label\">{label}</span><span class=\"value\">{value}</span>{}</div>",
            note.map(|n| format!("<span class=\"note\">{}</span>", esc(&n)))
                .unwrap_or_default()
        );
    }
    body.push_str("</section>");
}

fn accounts(
    body: &mut String,
    fleet: &FleetStatus,
    today_of: &dyn Fn(&MachineView) -> f64,
    now: DateTime<Utc>,
) {
    body.push_str(
        "<section data-refresh><h2>Accounts</h2><table class=\"accounts\"><thead><tr><th>Account</th><th>State</th>\
<th>Last good poll</th><th class=\"num\">Machines</th><th class=\"num\">GPUs rented</th>\
<th class=\"num\">$/h</th><th class=\"num\">Today</th><th class=\"num\">Instances</th><th class=\"num\">Credit</th></tr></thead><tbody>",
    );
    for a in &fleet.accounts {
        let machines: Vec<&MachineView> = a.machines.iter().filter(|m| !m.removed).collect();
        let total: u32 = machines.iter().map(|m| m.gpus_total).sum();
        let idle: u32 = machines.iter().map(|m| m.gpus_by_state()[3].1).sum();
        let mut state = state_badge(&a.state);
        if a.stale() {
            state.push(' ');
            state.push_str(&badge("bad stale", "STALE"));
        }
        let last_poll = a
            .last_poll
            .map(|t| ago(t, now))
            .unwrap_or_else(|| "never".into());
        let error = match (&a.last_error, a.consecutive_failures) {
            (Some(e), n) if n > 0 => format!(
                "<div class=\"error\">{} failed poll{}: {}</div>",
                n,
                if n == 1 { "" } else { "s" },
                esc(e)
            ),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<tr class=\"account {cls}\"><td><a href=\"{href}\">{name}</a></td><td>{state}{error}</td>\
<td>{last_poll}</td><td class=\"num\">{machines}</td><td class=\"num\">{busy} / {total}</td>\
<td class=\"num\">{rate}</td><td class=\"num\">{today}</td><td class=\"num\">{instances}</td><td class=\"num\">{credit}</td></tr>",
            cls = if a.stale() { "stale" } else { "" },
            href = esc(&link("/", &[("account", Some(a.name.clone()))])),
            name = esc(&a.name),
            machines = machines.len(),
            busy = total - idle,
            rate = money(machines.iter().map(|m| m.dollars_per_hour()).sum()),
            today = money(machines.iter().map(|m| today_of(m)).sum()),
            instances = a.instances.iter().filter(|i| !i.destroyed).count(),
            credit = a.credit.map(money).unwrap_or_else(|| "–".into()),
        );
    }
    body.push_str("</tbody></table></section>");
}

fn machines(
    body: &mut String,
    fleet: &FleetStatus,
    q: &FleetQuery,
    today_of: &dyn Fn(&MachineView) -> f64,
    now: DateTime<Utc>,
) {
    let selected: Vec<(&AccountView, &MachineView)> =
        fleet.machines().filter(|(a, m)| q.accepts(a, m)).collect();
    let pages = selected.len().div_ceil(PAGE_SIZE).max(1);
    let current = q.page.unwrap_or(1).clamp(1, pages);
    body.push_str("<section><h2>Machines</h2>");
    filter_form(body, fleet, q);
    let _ = write!(
        body,
        "<div data-refresh><p class=\"count\">{} machine{} shown{}</p>",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" },
        if pages > 1 {
            format!(", page {current} of {pages}")
        } else {
            String::new()
        }
    );
    body.push_str(
        "<table class=\"machines\" id=\"machines\"><thead><tr><th>Machine</th><th>Account</th><th>GPUs</th>\
<th>State</th><th class=\"num\">Rentals</th><th class=\"num\">$/h</th><th class=\"num\">Today</th><th>Last seen</th></tr></thead><tbody>",
    );
    for (a, m) in selected
        .iter()
        .skip((current - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
    {
        machine_row(body, a, m, today_of(m), now);
    }
    body.push_str("</tbody></table>");
    body.push_str(&html::pager(current, pages, |p| q.href(p)));
    body.push_str("</div></section>");
}

fn filter_form(body: &mut String, fleet: &FleetStatus, q: &FleetQuery) {
    let option = |value: &str, label: &str, selected: bool| {
        format!(
            "<option value=\"{}\"{}>{}</option>",
            esc(value),
            if selected { " selected" } else { "" },
            esc(label)
        )
    };
    let mut accounts = option("", "all accounts", q.account.is_none());
    for a in &fleet.accounts {
        accounts.push_str(&option(
            &a.name,
            &a.name,
            q.account.as_deref() == Some(&a.name),
        ));
    }
    let mut states = option("", "any state", q.state.is_none());
    for c in MachineCondition::ALL {
        states.push_str(&option(
            c.as_str(),
            c.as_str(),
            q.state.as_deref() == Some(c.as_str()),
        ));
    }
    let _ = write!(
        body,
        "<form class=\"filters\" method=\"get\" action=\"/\"><select name=\"account\" aria-label=\"account\">{accounts}</select>\
<select name=\"state\" aria-label=\"state\">{states}</select>\
<input type=\"search\" name=\"q\" placeholder=\"id, hostname or GPU\" value=\"{}\" aria-label=\"search\">\
<button type=\"submit\">Filter</button></form>",
        esc(q.q.as_deref().unwrap_or(""))
    );
}

/// One machine: its GPUs as cells coloured by who holds them (D on demand, I interruptible,
/// R reserved, idle).
fn machine_row(
    body: &mut String,
    a: &AccountView,
    m: &MachineView,
    today: f64,
    now: DateTime<Utc>,
) {
    let by_state = m.gpus_by_state();
    let mut cells = String::new();
    for (state, n) in by_state {
        for _ in 0..n {
            let _ = write!(cells, "<i class=\"gpu {}\"></i>", state.as_str());
        }
    }
    let busy = m.gpus_total - by_state[3].1.min(m.gpus_total);
    let occupancy_title: Vec<String> = by_state
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str().replace('_', "-")))
        .collect();
    let condition = m.condition();
    let mut badges = badge(
        match condition {
            MachineCondition::Offline | MachineCondition::Error => "bad",
            MachineCondition::Rented => "ok",
            MachineCondition::Idle | MachineCondition::Removed => "muted",
        },
        condition.as_str(),
    );
    if m.offline_pending {
        badges.push_str(&badge("warn", "no heartbeat"));
    }
    if let Some(e) = &m.error {
        let _ = write!(
            badges,
            " <span class=\"error\" title=\"{}\">{}</span>",
            esc(e),
            esc(&truncate(e, 60))
        );
    }
    if m.listed == Some(false) {
        badges.push_str(&badge("warn", "unlisted"));
    }
    if a.degraded_machines.contains(&m.machine_id) {
        badges.push_str(&badge("warn", "degraded"));
    }
    let stored = m.rentals.len() - m.running_rentals();
    let _ = write!(
        body,
        "<tr class=\"machine cond-{cond}\" data-machine=\"{id}\" data-gpus-total=\"{total}\" data-gpus-rented=\"{busy}\">\
<td><a href=\"/machines/{id}\">{name}</a> <span class=\"id\">{id}</span></td><td>{account}</td>\
<td><span class=\"occupancy\" title=\"{title}\">{cells}</span> <span class=\"ratio\">{busy}/{total}</span> <span class=\"model\">{model}</span></td>\
<td>{badges}</td><td class=\"num\">{running}{stored}</td><td class=\"num\">{rate}</td><td class=\"num\">{today}</td><td>{seen}</td></tr>",
        cond = condition.as_str(),
        id = m.machine_id,
        name = esc(&m.label()),
        account = esc(&a.name),
        title = esc(&if occupancy_title.is_empty() { "no GPUs".to_string() } else { occupancy_title.join(", ") }),
        total = m.gpus_total,
        model = esc(m.gpu_name.as_deref().unwrap_or("")),
        running = m.running_rentals(),
        stored = if stored > 0 { format!(" <span class=\"muted\">+{stored} stored</span>") } else { String::new() },
        rate = money(m.dollars_per_hour()),
        today = money(today),
        seen = m.last_seen.map(|t| ago(t, now)).unwrap_or_default(),
    );
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
