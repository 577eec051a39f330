//! One machine across polls: [`MachineState`], [`observe_machine`], [`machine_missing`] and
//! [`machine_summary`].
//!
//! Owns the machine-level rules (offline, errors, listing, verification, reports, maintenance,
//! added/removed, adoption) and drives the rental diff of [`super::rental`]. Pure: time comes from
//! the [`Observation`], nothing is read or written outside the values passed in.

use super::assign::{parse_clients, PollInput};
use super::rental::{RentalBook, RentalStatus, RentalSummary};
use super::{
    finite_non_negative, fmt_seconds, format_occupancy, parse_occupancy, quantize, round6,
    seconds_between, Adoption, Counters, Emitter, Observation, Rates,
};
use crate::event::{Event, EventKind};
use crate::util::counted;
use crate::vast::Machine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The offline condition (`timeout > 0`) and its hysteresis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OfflineState {
    /// First observation of the current `timeout > 0` condition.
    pub pending_since: Option<DateTime<Utc>>,
    /// The observation before `pending_since`, the `since` of `machine_offline` (`None` on first
    /// sight, and in states stored before it was kept).
    #[serde(default)]
    pub pending_after: Option<DateTime<Utc>>,
    /// When `machine_offline` was sent for it.
    pub alerted_at: Option<DateTime<Utc>>,
    /// `timeout == 0` observations in a row since the alerted condition began to clear.
    #[serde(flatten)]
    pub clearing: ClearStreak,
    /// Last positive timeout reported, seconds.
    pub last_timeout: Option<f64>,
}

/// The error episode (`error_description`): alerted on first sight, ended by clean polls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorState {
    /// The error text `machine_error` was last sent for; `Some` for the whole episode.
    pub alerted: Option<String>,
    /// When the episode began (the first observation of the error).
    pub alerted_since: Option<DateTime<Utc>>,
    /// The observation before `alerted_since`, the `since` of the episode's reminders.
    #[serde(default)]
    pub alerted_after: Option<DateTime<Utc>>,
    /// When `machine_error` was last sent (first alert, new text or reminder).
    pub last_sent: Option<DateTime<Utc>>,
    /// Observations without the error in a row since it was last seen.
    #[serde(flatten)]
    pub clearing: ClearStreak,
}

/// The recovery hysteresis of an alerted condition: clean observations in a row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClearStreak {
    #[serde(default)]
    pub clear_polls: u32,
    /// The first of them.
    #[serde(default)]
    pub clear_since: Option<DateTime<Utc>>,
    /// The observation before `clear_since`, the `since` of `machine_recovered`.
    #[serde(default)]
    pub clear_after: Option<DateTime<Utc>>,
}

impl ClearStreak {
    /// Counts one clean observation at `now` (`prev_seen`: the one before); whether `needed`
    /// came in a row.
    fn clean(&mut self, now: DateTime<Utc>, prev_seen: Option<DateTime<Utc>>, needed: u32) -> bool {
        self.clear_polls += 1;
        if self.clear_since.is_none() {
            self.clear_since = Some(now);
            self.clear_after = prev_seen;
        }
        self.clear_polls >= needed.max(1)
    }
}

/// Everything detection needs to know about one machine across polls and restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineState {
    pub machine_id: u64,
    pub hostname: Option<String>,
    pub gpu_name: Option<String>,
    /// GPU slots in the last occupancy seen.
    pub num_gpus: u32,
    pub first_seen: DateTime<Utc>,
    /// The last observation; the `since` of the next events.
    pub last_seen: DateTime<Utc>,
    /// Events emitted so far for this machine; the last part of event ids.
    pub event_seq: u64,
    /// Confirmed gone (`machine_removed` sent).
    #[serde(default)]
    pub removed: bool,
    /// Whether a row with `gpu_occupancy` has been seen (rentals adopted); until then the first
    /// such row adopts rather than diffs.
    pub rental_baseline: bool,
    /// Last occupancy seen, canonical (`"D D x x"`).
    pub occupancy: String,
    /// Rental counters of the row the rental book was last diffed against.
    pub counters: Counters,
    /// `alloc_disk_space` of that row.
    pub alloc_disk_gb: Option<f64>,
    pub rentals: RentalBook,
    #[serde(default)]
    pub offline: OfflineState,
    #[serde(default)]
    pub error: ErrorState,
    #[serde(default)]
    pub listed: Option<bool>,
    #[serde(default)]
    pub verification: Option<String>,
    #[serde(default)]
    pub num_reports: Option<f64>,
    #[serde(default)]
    pub num_recent_reports: Option<f64>,
    /// Current maintenance windows (`None` when there are none).
    #[serde(default)]
    pub maintenance: Option<Value>,
}

impl MachineState {
    /// `machine_offline` was sent and the machine has not recovered yet.
    pub fn is_offline(&self) -> bool {
        self.offline.alerted_at.is_some()
    }

    /// The error text `machine_error` was sent for, while it persists.
    pub fn alerted_error(&self) -> Option<&str> {
        self.error.alerted.as_deref()
    }
}

/// Observes one row of a machine (module docs of [`super`]). `prev` is the stored state, `None`
/// for a machine never seen; `adoption` matters only then (or for a machine that was removed).
pub fn observe_machine(
    prev: Option<&MachineState>,
    row: &Machine,
    obs: &Observation,
    adoption: Adoption,
) -> (MachineState, Vec<Event>) {
    match prev {
        Some(p) if !p.removed => observe_known(p, row, obs),
        other => first_sight(other, row, obs, adoption),
    }
}

/// The machine list omitted this machine. `lookup` is the single-machine lookup: a row means a list
/// hiccup (observed normally, no event for the omission); `None` means gone: `machine_removed` once,
/// and its tracked rentals end.
pub fn machine_missing(
    prev: &MachineState,
    lookup: Option<&Machine>,
    obs: &Observation,
) -> (MachineState, Vec<Event>) {
    if let Some(row) = lookup {
        return observe_machine(Some(prev), row, obs, Adoption::Running);
    }
    if prev.removed {
        return (prev.clone(), Vec::new());
    }
    let mut s = prev.clone();
    let mut em = emitter_for(&s, obs, Some(prev.last_seen));
    let ended: Vec<&str> = s.rentals.rentals.iter().map(|r| r.id.as_str()).collect();
    let text = match ended.len() {
        0 => format!("{} ({}) is no longer in the account", em.host, s.machine_id),
        n => format!(
            "{} ({}) is no longer in the account; {} ended",
            em.host,
            s.machine_id,
            counted(n, "tracked rental")
        ),
    };
    let data = json!({"rentals_ended": ended, "last_seen": prev.last_seen});
    let title = format!("Machine {} removed", em.host);
    em.emit(EventKind::MachineRemoved, title, text, data);
    s.rentals.end_all("machine_removed", &mut em);
    s.removed = true;
    s.rental_baseline = false;
    s.offline = OfflineState::default();
    s.error = ErrorState::default();
    s.last_seen = obs.now;
    let (seq, events) = em.finish();
    s.event_seq = seq;
    (s, events)
}

/// A JSON view of the machine for `startup_summary` and `status`.
impl MachineState {
    /// Whether `other` differs from this state only in `last_seen` (an observation that changed
    /// nothing), so the caller may skip persisting it.
    pub fn same_except_last_seen(&self, other: &MachineState) -> bool {
        self.last_seen == other.last_seen
            || MachineState {
                last_seen: other.last_seen,
                ..self.clone()
            } == *other
    }
}

/// A machine as `status` shows it: small and typed, because the account actors keep one per
/// machine (5,000 at the density target) and every status snapshot serializes all of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineSummary {
    pub machine_id: u64,
    pub hostname: Option<String>,
    pub gpu_name: Option<String>,
    pub gpus_total: u32,
    pub gpus_occupied: usize,
    pub rentals_running: usize,
    pub rentals_stored: usize,
    pub rentals: Vec<RentalSummary>,
    pub offline: bool,
    pub offline_pending: bool,
    pub error: Option<String>,
    pub listed: Option<bool>,
    pub verification: Option<String>,
    pub removed: bool,
    pub last_seen: DateTime<Utc>,
}

pub fn machine_summary(state: &MachineState) -> MachineSummary {
    let occupied = parse_occupancy(&state.occupancy, None)
        .iter()
        .filter(|s| s.is_some())
        .count();
    let rentals: Vec<RentalSummary> = state.rentals.rentals.iter().map(|r| r.summary()).collect();
    let running = state
        .rentals
        .rentals
        .iter()
        .filter(|r| r.status == RentalStatus::Running)
        .count();
    MachineSummary {
        machine_id: state.machine_id,
        hostname: state.hostname.clone(),
        gpu_name: state.gpu_name.clone(),
        gpus_total: state.num_gpus,
        gpus_occupied: occupied,
        rentals_running: running,
        rentals_stored: rentals.len() - running,
        rentals,
        offline: state.is_offline(),
        offline_pending: state.offline.pending_since.is_some() && !state.is_offline(),
        error: state.error.alerted.clone(),
        listed: state.listed,
        verification: state.verification.clone(),
        removed: state.removed,
        last_seen: state.last_seen,
    }
}

fn emitter_for<'a>(
    s: &MachineState,
    obs: &Observation<'a>,
    since: Option<DateTime<Utc>>,
) -> Emitter<'a> {
    Emitter::new(
        obs,
        s.machine_id,
        s.hostname.as_deref(),
        s.gpu_name.as_deref(),
        since,
        s.event_seq,
    )
}

pub(super) fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A machine seen for the first time, or again after it was removed.
fn first_sight(
    previous: Option<&MachineState>,
    row: &Machine,
    obs: &Observation,
    adoption: Adoption,
) -> (MachineState, Vec<Event>) {
    let now = obs.now;
    let slots = parse_occupancy(row.gpu_occupancy.as_deref().unwrap_or(""), row.num_gpus);
    let mut s = baseline(previous, row, &slots, now);
    let machine_id = s.machine_id;
    let mut em = emitter_for(&s, obs, previous.map(|p| p.last_seen));
    if row.gpu_occupancy.is_some() {
        let input = poll_input(&s, row, &slots);
        s.rentals.adopt(machine_id, &input, now);
        s.rental_baseline = true;
    }
    if adoption == Adoption::Running {
        let summary = serde_json::to_value(machine_summary(&s)).unwrap_or_default();
        let text = format!(
            "{} ({}): {}, {} in progress",
            em.host,
            machine_id,
            em.gpus_text(s.num_gpus as usize),
            counted(s.rentals.rentals.len(), "rental")
        );
        let title = format!("New machine {}", em.host);
        em.emit(EventKind::MachineAdded, title, text, summary);
    }
    let prev_seen = previous.map(|p| p.last_seen);
    observe_offline(&mut s, row, obs, prev_seen, &mut em);
    observe_error(&mut s, row, obs, prev_seen, &mut em);
    let (seq, events) = em.finish();
    s.event_seq = seq;
    (s, events)
}

/// The state of a machine taken in from `row` at `now` (or taken in again after it was removed),
/// before any rule ran: no rentals yet, no offline or error condition, nothing alerted.
pub(super) fn baseline(
    previous: Option<&MachineState>,
    row: &Machine,
    slots: &[Option<super::GpuType>],
    now: DateTime<Utc>,
) -> MachineState {
    let machine_id = previous
        .map(|p| p.machine_id)
        .or_else(|| row.key())
        .unwrap_or(0);
    MachineState {
        machine_id,
        hostname: non_empty(row.hostname.as_deref())
            .or_else(|| previous.and_then(|p| p.hostname.clone())),
        gpu_name: non_empty(row.gpu_name.as_deref())
            .or_else(|| previous.and_then(|p| p.gpu_name.clone())),
        num_gpus: slots.len() as u32,
        first_seen: now,
        last_seen: now,
        event_seq: previous.map_or(0, |p| p.event_seq),
        removed: false,
        rental_baseline: false,
        occupancy: format_occupancy(slots),
        counters: Counters::from_row(row),
        alloc_disk_gb: finite_non_negative(row.alloc_disk_space),
        rentals: RentalBook {
            rentals: Vec::new(),
            next_seq: previous.map_or(1, |p| p.rentals.next_seq),
        },
        offline: OfflineState::default(),
        error: ErrorState::default(),
        listed: row.listed,
        verification: non_empty(row.verification.as_deref()),
        num_reports: finite_non_negative(row.num_reports),
        num_recent_reports: finite_non_negative(row.num_recent_reports),
        maintenance: normalize_maintenance(row.machine_maintenance.as_ref()),
    }
}

pub(super) fn poll_input<'r>(
    s: &MachineState,
    row: &Machine,
    slots: &'r [Option<super::GpuType>],
) -> PollInput<'r> {
    PollInput {
        slots,
        old: s.counters,
        new: Counters::from_row(row),
        old_disk: s.alloc_disk_gb,
        new_disk: finite_non_negative(row.alloc_disk_space),
        rates: Rates::from_row(row),
        clients: parse_clients(row.clients.as_ref()),
    }
}

fn observe_known(p: &MachineState, row: &Machine, obs: &Observation) -> (MachineState, Vec<Event>) {
    let now = obs.now;
    let mut s = p.clone();
    if let Some(h) = non_empty(row.hostname.as_deref()) {
        s.hostname = Some(h);
    }
    if let Some(g) = non_empty(row.gpu_name.as_deref()) {
        s.gpu_name = Some(g);
    }
    let mut em = emitter_for(&s, obs, Some(p.last_seen));
    observe_offline(&mut s, row, obs, Some(p.last_seen), &mut em);
    observe_error(&mut s, row, obs, Some(p.last_seen), &mut em);
    if let Some(occupancy) = row.gpu_occupancy.as_deref() {
        let slots = parse_occupancy(occupancy, row.num_gpus);
        let input = poll_input(&s, row, &slots);
        if s.rental_baseline {
            s.rentals.apply_poll(s.machine_id, &input, &mut em);
        } else {
            s.rentals.adopt(s.machine_id, &input, now);
            s.rental_baseline = true;
        }
        s.counters = input.new;
        s.alloc_disk_gb = input.new_disk;
        s.occupancy = format_occupancy(&slots);
        s.num_gpus = slots.len() as u32;
    }
    observe_listing(&mut s, row, &mut em);
    s.last_seen = now;
    let (seq, events) = em.finish();
    s.event_seq = seq;
    (s, events)
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Offline rule of the module docs. `prev_seen` is the previous observation (`None` on first
/// sight).
fn observe_offline(
    s: &mut MachineState,
    row: &Machine,
    obs: &Observation,
    prev_seen: Option<DateTime<Utc>>,
    em: &mut Emitter,
) {
    let Some(timeout) = row.timeout.filter(|t| t.is_finite()) else {
        return;
    };
    let now = obs.now;
    let st = &mut s.offline;
    if timeout > 0.0 {
        st.clearing = ClearStreak::default();
        st.last_timeout = Some(quantize(timeout));
        if st.pending_since.is_none() {
            st.pending_since = Some(now);
            st.pending_after = prev_seen;
        }
        let since = st.pending_since.unwrap_or(now);
        let grace = obs.rules.offline_grace.as_secs_f64();
        if st.alerted_at.is_none() && (seconds_between(since, now) >= grace || timeout >= grace) {
            st.alerted_at = Some(now);
            let timeout_seconds = timeout.round() as u64;
            let text = format!(
                "The machine daemon stopped checking in (timeout {timeout_seconds} s), first seen {}",
                iso(since)
            );
            let title = format!("{} is offline", em.host);
            let data = json!({"timeout_seconds": timeout_seconds, "offline_since": since});
            em.emit_since(
                EventKind::MachineOffline,
                title,
                text,
                data,
                st.pending_after,
            );
        }
    } else if let Some(pending_since) = st.pending_since {
        if st.alerted_at.is_none() {
            // The machine checked in before the grace ran out: a blip, forgotten at once, so
            // blips separated by a check-in never add up to an outage.
            *st = OfflineState::default();
            return;
        }
        if st
            .clearing
            .clean(now, prev_seen, obs.rules.recover_after_polls)
        {
            let down = seconds_between(pending_since, st.clearing.clear_since.unwrap_or(now));
            let text = format!("Checking in again after {}", fmt_seconds(down));
            let detail = ("offline_since", json!(pending_since));
            emit_recovered(em, "offline", down, text, detail, st.clearing.clear_after);
            *st = OfflineState::default();
        }
    }
}

/// `machine_recovered` from `condition` after `down` seconds; `detail` names what ended, `since`
/// is the observation before the first clean one.
fn emit_recovered(
    em: &mut Emitter,
    condition: &str,
    down: f64,
    text: String,
    (key, value): (&str, Value),
    since: Option<DateTime<Utc>>,
) {
    let title = format!("{} recovered", em.host);
    let mut data = json!({"recovered_from": condition, "down_seconds": down.round() as u64});
    data[key] = value;
    em.emit_since(EventKind::MachineRecovered, title, text, data, since);
}

/// Error rule of the module docs. `prev_seen` is the previous observation (`None` on first
/// sight).
fn observe_error(
    s: &mut MachineState,
    row: &Machine,
    obs: &Observation,
    prev_seen: Option<DateTime<Utc>>,
    em: &mut Emitter,
) {
    let now = obs.now;
    let current = row
        .error_description
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty() && !obs.rules.is_ignored(e));
    let st = &mut s.error;
    let Some(alerted) = st.alerted.clone() else {
        // No episode: a new one begins, alerted at once.
        if let Some(text) = current {
            *st = ErrorState {
                alerted: Some(text.to_string()),
                alerted_since: Some(now),
                alerted_after: prev_seen,
                last_sent: Some(now),
                ..ErrorState::default()
            };
            let title = format!("Error on {}", em.host);
            let data =
                json!({"error": text, "repeat": false, "previous": null, "error_since": now});
            em.emit(EventKind::MachineError, title, text.to_string(), data);
        }
        return;
    };
    let since = st.alerted_since.unwrap_or(now);
    let Some(text) = current else {
        if st
            .clearing
            .clean(now, prev_seen, obs.rules.recover_after_polls)
        {
            let down = seconds_between(since, st.clearing.clear_since.unwrap_or(now));
            let text = format!("Error cleared after {}: {alerted}", fmt_seconds(down));
            let detail = ("error", json!(alerted));
            emit_recovered(em, "error", down, text, detail, st.clearing.clear_after);
            *st = ErrorState::default();
        }
        return;
    };
    // Seen again: a flap within the episode changes nothing.
    st.clearing = ClearStreak::default();
    let title = format!("Error on {}", em.host);
    if alerted != text {
        st.alerted = Some(text.to_string());
        st.last_sent = Some(now);
        let data =
            json!({"error": text, "repeat": false, "previous": alerted, "error_since": since});
        em.emit(EventKind::MachineError, title, text.to_string(), data);
        return;
    }
    let repeat = obs.rules.error_repeat.as_secs_f64();
    let due = st
        .last_sent
        .is_none_or(|sent| seconds_between(sent, now) >= repeat);
    if repeat > 0.0 && due {
        st.last_sent = Some(now);
        let message = format!("Still failing since {}: {text}", iso(since));
        let data = json!({"error": text, "repeat": true, "previous": null, "error_since": since});
        em.emit_since(
            EventKind::MachineError,
            title,
            message,
            data,
            st.alerted_after,
        );
    }
}

/// `machine_maintenance` with "nothing scheduled" (null, `[]`, `""`, `{}`) as `None`.
fn normalize_maintenance(v: Option<&Value>) -> Option<Value> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(Value::Object(o)) if o.is_empty() => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(other) => Some(other.clone()),
    }
}

/// "gpu: driver update, 2026-11-23T08:00:00Z for 2 h" per window.
fn describe_maintenance(v: &Value) -> String {
    let windows: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    windows
        .iter()
        .map(|w| match w {
            Value::Object(o) => {
                let category = o
                    .get("maintenance_category")
                    .and_then(Value::as_str)
                    .unwrap_or("maintenance");
                let mut out = category.to_string();
                if let Some(reason) = o.get("maintenance_reason").and_then(Value::as_str) {
                    out.push_str(&format!(": {reason}"));
                }
                let start = o
                    .get("start_time")
                    .and_then(Value::as_f64)
                    .filter(|t| t.is_finite())
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t as i64, 0));
                if let Some(start) = start {
                    out.push_str(&format!(", {}", iso(start)));
                }
                if let Some(h) = o.get("duration_hours").and_then(Value::as_f64) {
                    out.push_str(&format!(" for {} h", round6(h)));
                }
                out
            }
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Listing, verification, report and maintenance rules of the module docs.
fn observe_listing(s: &mut MachineState, row: &Machine, em: &mut Emitter) {
    if let Some(listed) = row.listed {
        if let Some(was) = s.listed.filter(|was| *was != listed) {
            let (kind, title, text) = if listed {
                (
                    EventKind::MachineListed,
                    format!("{} listed", em.host),
                    "The machine is listed on the market again".to_string(),
                )
            } else {
                (
                    EventKind::MachineUnlisted,
                    format!("{} unlisted", em.host),
                    "The machine is no longer listed (unlisted or listing expired)".to_string(),
                )
            };
            em.emit(
                kind,
                title,
                text,
                json!({"listed": listed, "previous": was}),
            );
        }
        s.listed = Some(listed);
    }
    if let Some(verification) = non_empty(row.verification.as_deref()) {
        if let Some(was) = s.verification.as_ref().filter(|was| **was != verification) {
            let title = format!("{} verification: {verification}", em.host);
            let text = format!("Verification changed from {was} to {verification}");
            let data = json!({"from": was, "to": verification});
            em.emit(EventKind::MachineVerification, title, text, data);
        }
        s.verification = Some(verification);
    }
    let reports = finite_non_negative(row.num_reports);
    let recent = finite_non_negative(row.num_recent_reports);
    let rose =
        |new: Option<f64>, old: Option<f64>| new.is_some_and(|n| n > old.unwrap_or(0.0) + 1e-9);
    if rose(reports, s.num_reports) || rose(recent, s.num_recent_reports) {
        let total = reports.or(s.num_reports);
        let title = format!("New renter report on {}", em.host);
        let text = format!(
            "Reports: {} (was {}), recent: {} (was {})",
            fmt_count(total),
            fmt_count(s.num_reports),
            fmt_count(recent.or(s.num_recent_reports)),
            fmt_count(s.num_recent_reports)
        );
        let data = json!({
            "num_reports": total,
            "previous": s.num_reports,
            "num_recent_reports": recent.or(s.num_recent_reports),
            "previous_recent": s.num_recent_reports,
        });
        em.emit(EventKind::MachineReport, title, text, data);
    }
    if reports.is_some() {
        s.num_reports = reports;
    }
    if recent.is_some() {
        s.num_recent_reports = recent;
    }
    let maintenance = normalize_maintenance(row.machine_maintenance.as_ref());
    if maintenance != s.maintenance {
        let (title, text) = match (&s.maintenance, &maintenance) {
            (None, Some(m)) => (
                format!("Maintenance scheduled on {}", em.host),
                describe_maintenance(m),
            ),
            (Some(_), None) => (
                format!("Maintenance cleared on {}", em.host),
                "No maintenance scheduled any more".to_string(),
            ),
            (_, m) => (
                format!("Maintenance changed on {}", em.host),
                m.as_ref().map(describe_maintenance).unwrap_or_default(),
            ),
        };
        let data = json!({
            "machine_maintenance": maintenance.clone().unwrap_or(Value::Null),
            "previous": s.maintenance.clone().unwrap_or(Value::Null),
        });
        em.emit(EventKind::MachineMaintenance, title, text, data);
        s.maintenance = maintenance;
    }
}

fn fmt_count(v: Option<f64>) -> String {
    match v {
        None => "none".into(),
        Some(n) if (n - n.round()).abs() < 1e-9 => format!("{n:.0}"),
        Some(n) => format!("{n:.2}"),
    }
}
