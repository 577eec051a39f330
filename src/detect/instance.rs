//! The pure detection core for renter instances: previous [`InstanceState`] + one instance row +
//! `now` -> new state + [`Event`]s (SPEC §5, `vast-api.md` §3.2-§3.4, §6 items 9-12).
//!
//! Owns the instance rules and the per-instance state they need across polls and restarts. It does
//! no I/O, reads no clock (time is the `now` argument) and knows nothing about actors, storage,
//! delivery or host machines. Re-running the same observation from the same stored state gives the
//! same state and the same event ids.
//!
//! # Rules
//!
//! **Input hygiene.** Status strings are trimmed and compared case-insensitively. `intended_status`
//! falls back to `next_state`, then to the last known intention; when none was ever seen the
//! instance is assumed to be meant to run. A null or missing `actual_status` is provisioning: not
//! running, never an error. A null `status_msg` or `is_bid` keeps the last known value. A row
//! without `id` keeps the stored id (0 if there is none; callers key instances by id).
//!
//! **Phases.** Each observation puts the instance in one [`InstancePhase`]: `running`
//! (`actual_status` running); `halted` (`stopped`, `exited`, `frozen`, `offline`, `unknown`, or any
//! not-running status while the intention is not to run); `starting` (not running, not halted: null,
//! `loading`, `created`, ... while meant to run). `rebooting` is transient and keeps the previous
//! phase. Events come from phase changes:
//! - to `running` from anything else: `instance_running`;
//! - `running` -> `halted`/`starting`, or `starting` -> `halted`: if the intention is not to run,
//!   `instance_stopped` (this includes `exited` + intended `stopped`, the normal look of a stopped
//!   instance); if it is meant to run, `instance_preempted` for a bid (interruptible) instance and
//!   `instance_exited` otherwise.
//! - An **abandoned start** (`created` + intended `stopped` + an error `status_msg`) reports only
//!   `instance_error`, never `instance_stopped`.
//!
//! **Stuck.** While meant to run and not running, a not-running episode runs from the first such
//! observation; `instance_stuck` is sent once per episode when it lasts at least
//! [`InstanceRules::stuck_after`] (zero disables it). The episode ends when the instance runs or is
//! no longer meant to run.
//!
//! **Errors.** A `status_msg` containing one of [`InstanceRules::error_patterns`] (case-insensitive;
//! by default the vast-cli list: error, failed, failure, exception, traceback, oci runtime,
//! permission denied) sends `instance_error` once per distinct message (whitespace-normalised). A
//! present `status_msg` without an error clears it, so the same error coming back later is a new
//! alert.
//!
//! **First sight and removal.** With [`InstanceAdoption::FirstStart`] an instance is adopted silently
//! (only an error already present is reported). With [`InstanceAdoption::Running`] it gets
//! `instance_created`, plus `instance_running` when it is already running. [`instance_missing`]
//! with a lookup row is list churn and observes the row normally; with `None` (the lookup returned
//! `{"instances": null}`) it sends `instance_destroyed` once. A destroyed instance that shows up
//! again (a glitch of the lookup) is taken back silently.
//!
//! **Events.** Ids are `"{account}:i{instance_id}:{seq}"`, `seq` counting every event of the
//! instance; `time` is `now`, `since` the previous observation (for `instance_stuck`, the observation
//! before the episode was first seen, so the stop lies in `(since, time]`). Order within one observation:
//! created, phase change, error, stuck. `data` always holds `actual_status, intended_status,
//! cur_state, is_bid, status_msg, gpu_name, num_gpus, dph_total, machine_id`; phase changes add
//! `previous_status` (+ `running_seconds` when leaving running; + `min_bid, dph_base` for a
//! preemption), `instance_stuck` adds `not_running_seconds`, `instance_error` adds `error`,
//! `instance_destroyed` adds `last_seen`.

use super::EventSeq;
use crate::config::AccountConfig;
use crate::event::{Event, EventKind, Subject};
use crate::vast::Instance;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// Substrings of `status_msg` that mark an error (vast-cli's self-test list, `vast-api.md` §3.3).
pub const DEFAULT_ERROR_PATTERNS: &[&str] = &[
    "error",
    "failed",
    "failure",
    "exception",
    "traceback",
    "oci runtime",
    "permission denied",
];

/// Longest `status_msg` quoted in an event text; `data` keeps the whole message.
const MAX_TEXT_MESSAGE: usize = 500;

/// The per-account knobs of instance detection.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRules {
    /// `instance_stuck` after the instance has been meant to run but not running this long.
    pub stuck_after: Duration,
    /// Lower-case substrings of `status_msg` that mark an error.
    pub error_patterns: Vec<String>,
}

impl Default for InstanceRules {
    fn default() -> Self {
        InstanceRules {
            stuck_after: Duration::from_secs(15 * 60),
            error_patterns: DEFAULT_ERROR_PATTERNS
                .iter()
                .map(|p| p.to_string())
                .collect(),
        }
    }
}

impl InstanceRules {
    pub fn from_account(cfg: &AccountConfig) -> InstanceRules {
        InstanceRules {
            stuck_after: cfg.stuck_after,
            ..InstanceRules::default()
        }
    }

    /// Whether a (trimmed) `status_msg` reports an error.
    pub fn is_error(&self, status_msg: &str) -> bool {
        let lower = status_msg.to_lowercase();
        self.error_patterns
            .iter()
            .any(|p| !p.is_empty() && lower.contains(p.as_str()))
    }
}

/// How an instance without state is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAdoption {
    /// The daemon is starting and has never seen this instance: adopt silently.
    FirstStart,
    /// The instance appeared after start-up: `instance_created`.
    Running,
}

/// Where an instance is in its life, as far as events are concerned (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstancePhase {
    Running,
    Starting,
    #[default]
    Halted,
}

impl InstancePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            InstancePhase::Running => "running",
            InstancePhase::Starting => "starting",
            InstancePhase::Halted => "halted",
        }
    }
}

/// Everything detection needs to know about one instance across polls and restarts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceState {
    pub id: u64,
    pub label: Option<String>,
    /// Last `actual_status` (trimmed, lower case); `None` while provisioning.
    pub actual_status: Option<String>,
    /// Last known intention (`intended_status`, else `next_state`), trimmed, lower case.
    pub intended_status: Option<String>,
    pub cur_state: Option<String>,
    /// Interruptible (spot) instance.
    pub is_bid: bool,
    /// Last non-null `status_msg`, trimmed.
    pub status_msg: Option<String>,
    pub phase: InstancePhase,
    /// First observation of the current running stretch.
    pub running_since: Option<DateTime<Utc>>,
    /// First observation of the current "meant to run but not running" episode.
    pub not_running_since: Option<DateTime<Utc>>,
    /// The observation before `not_running_since`, the `since` of `instance_stuck` (`None` when
    /// the episode began at first sight, and in states stored before it was kept).
    pub not_running_after: Option<DateTime<Utc>>,
    /// `instance_stuck` was sent for the current episode.
    pub stuck_alerted: bool,
    /// The message `instance_error` was last sent for, while it persists.
    pub error_alerted: Option<String>,
    /// `instance_destroyed` was sent.
    pub destroyed: bool,
    /// Events emitted so far for this instance; the last part of event ids.
    pub seq: u64,
    pub first_seen: DateTime<Utc>,
    /// The last observation; the `since` of the next events.
    pub last_seen: DateTime<Utc>,
    pub machine_id: Option<u64>,
    pub gpu_name: Option<String>,
    pub num_gpus: Option<f64>,
    /// $/h for the whole instance, storage included.
    pub dph_total: Option<f64>,
}

impl InstanceState {
    /// Whether the last known intention is to run (unknown counts as running).
    pub fn meant_to_run(&self) -> bool {
        intends_running(self.intended_status.as_deref())
    }
}

/// Observes one row of an instance (module docs). `prev` is the stored state, `None` for an instance
/// never seen; `adoption` matters only then.
pub fn observe_instance(
    prev: Option<&InstanceState>,
    row: &Instance,
    account: &str,
    now: DateTime<Utc>,
    rules: &InstanceRules,
    adoption: InstanceAdoption,
) -> (InstanceState, Vec<Event>) {
    let mut s = match prev {
        Some(p) => {
            let mut s = p.clone();
            s.destroyed = false;
            s
        }
        None => InstanceState {
            id: row.id.unwrap_or(0),
            first_seen: now,
            last_seen: now,
            ..InstanceState::default()
        },
    };
    let since = prev.map(|p| p.last_seen);
    let previous_status = prev.and_then(|p| p.actual_status.clone());
    let previous_phase = prev.map(|p| p.phase);
    absorb_row(&mut s, row);

    let error_msg = row
        .status_msg
        .as_deref()
        .map(normalize_message)
        .filter(|m| rules.is_error(m));
    // Judged on the last known message, so a null `status_msg` does not turn it into a stop.
    let abandoned_start = s.actual_status.as_deref() == Some("created")
        && !s.meant_to_run()
        && s.status_msg
            .as_deref()
            .is_some_and(|m| rules.is_error(&normalize_message(m)));
    s.phase = phase_of(s.actual_status.as_deref(), s.meant_to_run(), previous_phase);

    let mut em = Emitter::new(account, &s, now, since);
    match previous_phase {
        None => {
            if adoption == InstanceAdoption::Running {
                let text = format!("{} ({})", describe(&s), status_line(&s));
                em.emit(
                    EventKind::InstanceCreated,
                    format!("New instance {}", em.name),
                    text,
                    base_data(&s),
                );
                if s.phase == InstancePhase::Running {
                    emit_running(&mut em, &s, None);
                }
            }
        }
        Some(before) => phase_change(
            &mut em,
            &s,
            row,
            before,
            previous_status.as_deref(),
            abandoned_start,
        ),
    }

    if s.phase == InstancePhase::Running {
        if previous_phase != Some(InstancePhase::Running) || s.running_since.is_none() {
            s.running_since = Some(now);
        }
    } else {
        s.running_since = None;
    }

    match error_msg {
        Some(msg) if s.error_alerted.as_deref() != Some(msg.as_str()) => {
            let mut data = base_data(&s);
            data["error"] = json!(msg);
            em.emit(
                EventKind::InstanceError,
                format!("Instance {} reports an error", em.name),
                truncate(&msg, MAX_TEXT_MESSAGE),
                data,
            );
            s.error_alerted = Some(msg);
        }
        Some(_) => {}
        // A present message without an error clears it; a null one tells nothing.
        None if row.status_msg.is_some() => s.error_alerted = None,
        None => {}
    }

    if s.phase != InstancePhase::Running && s.meant_to_run() {
        if s.not_running_since.is_none() {
            s.not_running_since = Some(now);
            s.not_running_after = since;
        }
        let episode_start = s.not_running_since.unwrap_or(now);
        let waited = seconds_between(episode_start, now);
        if !s.stuck_alerted
            && !rules.stuck_after.is_zero()
            && waited >= rules.stuck_after.as_secs_f64()
        {
            let mut data = base_data(&s);
            data["not_running_seconds"] = json!(waited.floor());
            let text = format!(
                "meant to run but not running for {} ({})",
                fmt_seconds(waited),
                status_line(&s)
            );
            // The episode began after the observation before its first sighting.
            let window_start = s.not_running_after;
            em.emit_since(
                EventKind::InstanceStuck,
                format!("Instance {} is stuck", em.name),
                text,
                data,
                window_start,
            );
            s.stuck_alerted = true;
        }
    } else {
        s.not_running_since = None;
        s.not_running_after = None;
        s.stuck_alerted = false;
    }

    s.last_seen = now;
    let (seq, events) = em.finish();
    s.seq = seq;
    (s, events)
}

/// The instance list omitted this instance. `lookup` is the single-instance lookup: a row is list
/// churn (observed normally); `None` (`{"instances": null}`) means destroyed: `instance_destroyed`
/// once.
pub fn instance_missing(
    prev: &InstanceState,
    lookup: Option<&Instance>,
    account: &str,
    now: DateTime<Utc>,
    rules: &InstanceRules,
) -> (InstanceState, Vec<Event>) {
    if let Some(row) = lookup {
        return observe_instance(
            Some(prev),
            row,
            account,
            now,
            rules,
            InstanceAdoption::Running,
        );
    }
    if prev.destroyed {
        return (prev.clone(), Vec::new());
    }
    let mut s = prev.clone();
    let mut em = Emitter::new(account, &s, now, Some(prev.last_seen));
    let mut data = base_data(&s);
    data["last_seen"] = json!(prev.last_seen);
    let text = format!(
        "no longer listed and the lookup returns nothing; last seen {} ({})",
        prev.last_seen.format("%Y-%m-%d %H:%M:%S UTC"),
        status_line(&s)
    );
    em.emit(
        EventKind::InstanceDestroyed,
        format!("Instance {} destroyed", em.name),
        text,
        data,
    );
    s.destroyed = true;
    s.not_running_since = None;
    s.not_running_after = None;
    s.stuck_alerted = false;
    s.running_since = None;
    s.last_seen = now;
    let (seq, events) = em.finish();
    s.seq = seq;
    (s, events)
}

/// A JSON view of the instance for `startup_summary` and `status`.
/// An instance as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSummary {
    pub id: u64,
    pub label: Option<String>,
    pub phase: &'static str,
    pub actual_status: Option<String>,
    pub intended_status: Option<String>,
    pub cur_state: Option<String>,
    pub is_bid: bool,
    pub status_msg: Option<String>,
    pub error: Option<String>,
    pub stuck: bool,
    pub running_since: Option<DateTime<Utc>>,
    pub not_running_since: Option<DateTime<Utc>>,
    pub destroyed: bool,
    pub machine_id: Option<u64>,
    pub gpu_name: Option<String>,
    pub num_gpus: Option<f64>,
    pub dph_total: Option<f64>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

pub fn instance_summary(state: &InstanceState) -> InstanceSummary {
    InstanceSummary {
        id: state.id,
        label: state.label.clone(),
        phase: state.phase.as_str(),
        actual_status: state.actual_status.clone(),
        intended_status: state.intended_status.clone(),
        cur_state: state.cur_state.clone(),
        is_bid: state.is_bid,
        status_msg: state.status_msg.clone(),
        error: state.error_alerted.clone(),
        stuck: state.stuck_alerted,
        running_since: state.running_since,
        not_running_since: state.not_running_since,
        destroyed: state.destroyed,
        machine_id: state.machine_id,
        gpu_name: state.gpu_name.clone(),
        num_gpus: state.num_gpus,
        dph_total: state.dph_total,
        first_seen: state.first_seen,
        last_seen: state.last_seen,
    }
}

/// Copies the facts of a row into the state; nulls keep what was known where a null carries no
/// information (module docs).
fn absorb_row(s: &mut InstanceState, row: &Instance) {
    if let Some(id) = row.id {
        s.id = id;
    }
    s.label = clean(row.label.as_deref());
    s.actual_status = clean_status(row.actual_status.as_deref());
    if let Some(intent) = clean_status(row.intended_status.as_deref())
        .or_else(|| clean_status(row.next_state.as_deref()))
    {
        s.intended_status = Some(intent);
    }
    if let Some(cur) = clean_status(row.cur_state.as_deref()) {
        s.cur_state = Some(cur);
    }
    if let Some(bid) = row.is_bid {
        s.is_bid = bid;
    }
    if let Some(msg) = row.status_msg.as_deref() {
        s.status_msg = Some(msg.trim().to_string()).filter(|m| !m.is_empty());
    }
    if row.machine_id.is_some() {
        s.machine_id = row.machine_id;
    }
    if let Some(gpu) = clean(row.gpu_name.as_deref()) {
        s.gpu_name = Some(gpu);
    }
    if let Some(n) = finite_non_negative(row.num_gpus) {
        s.num_gpus = Some(n);
    }
    if let Some(price) = finite_non_negative(row.dph_total) {
        s.dph_total = Some(price);
    }
}

fn phase_of(
    actual: Option<&str>,
    meant_to_run: bool,
    previous: Option<InstancePhase>,
) -> InstancePhase {
    match actual {
        Some("running") => InstancePhase::Running,
        Some("rebooting") => previous.unwrap_or(InstancePhase::Starting),
        Some("stopped" | "exited" | "frozen" | "offline" | "unknown") => InstancePhase::Halted,
        _ if meant_to_run => InstancePhase::Starting,
        _ => InstancePhase::Halted,
    }
}

fn phase_change(
    em: &mut Emitter,
    s: &InstanceState,
    row: &Instance,
    before: InstancePhase,
    previous_status: Option<&str>,
    abandoned_start: bool,
) {
    use InstancePhase::*;
    match (before, s.phase) {
        (Halted | Starting, Running) => emit_running(em, s, previous_status),
        (Running, Halted | Starting) | (Starting, Halted) => {
            let mut data = base_data(s);
            data["previous_status"] = json!(previous_status);
            let ran = if before == Running {
                s.running_since.map(|t| seconds_between(t, em.now))
            } else {
                None
            };
            if let Some(secs) = ran {
                data["running_seconds"] = json!(secs.floor());
            }
            let ran_text = ran
                .map(|secs| format!(" after running {}", fmt_seconds(secs)))
                .unwrap_or_default();
            if !s.meant_to_run() {
                if abandoned_start {
                    return;
                }
                let text = format!("stopped as requested{ran_text} ({})", status_line(s));
                em.emit(
                    EventKind::InstanceStopped,
                    format!("Instance {} stopped", em.name),
                    text,
                    data,
                );
            } else if s.is_bid {
                let (dph_base, min_bid) = (
                    finite_non_negative(row.dph_base),
                    finite_non_negative(row.min_bid),
                );
                data["dph_base"] = json!(dph_base.map(round6));
                data["min_bid"] = json!(min_bid.map(round6));
                let bid = match (dph_base, min_bid) {
                    (Some(bid), Some(min)) => {
                        format!(
                            "; bid {}/h, minimum bid now {}/h",
                            fmt_money(bid),
                            fmt_money(min)
                        )
                    }
                    _ => String::new(),
                };
                let text = format!(
                    "interruptible instance lost its GPUs while meant to run{ran_text} ({}){bid}",
                    status_line(s)
                );
                em.emit(
                    EventKind::InstancePreempted,
                    format!("Instance {} was preempted", em.name),
                    text,
                    data,
                );
            } else {
                let text = format!(
                    "not running although meant to run{ran_text} ({})",
                    status_line(s)
                );
                em.emit(
                    EventKind::InstanceExited,
                    format!("Instance {} exited unexpectedly", em.name),
                    text,
                    data,
                );
            }
        }
        _ => {}
    }
}

fn emit_running(em: &mut Emitter, s: &InstanceState, previous_status: Option<&str>) {
    let mut data = base_data(s);
    data["previous_status"] = json!(previous_status);
    em.emit(
        EventKind::InstanceRunning,
        format!("Instance {} is running", em.name),
        describe(s),
        data,
    );
}

fn intends_running(intent: Option<&str>) -> bool {
    matches!(intent, None | Some("running"))
}

fn base_data(s: &InstanceState) -> Value {
    json!({
        "actual_status": s.actual_status,
        "intended_status": s.intended_status,
        "cur_state": s.cur_state,
        "is_bid": s.is_bid,
        "status_msg": s.status_msg,
        "gpu_name": s.gpu_name,
        "num_gpus": s.num_gpus,
        "dph_total": s.dph_total.map(round6),
        "machine_id": s.machine_id,
    })
}

/// "2x RTX 4090 on machine 29523 at $0.44/h, interruptible".
fn describe(s: &InstanceState) -> String {
    let gpus = match (s.num_gpus, s.gpu_name.as_deref()) {
        (Some(n), Some(name)) => format!("{}x {name}", fmt_count(n)),
        (Some(n), None) => format!("{}x GPU", fmt_count(n)),
        (None, Some(name)) => name.to_string(),
        (None, None) => "unknown GPUs".to_string(),
    };
    let mut text = gpus;
    if let Some(m) = s.machine_id {
        text.push_str(&format!(" on machine {m}"));
    }
    if let Some(price) = s.dph_total {
        text.push_str(&format!(" at {}/h", fmt_money(price)));
    }
    text.push_str(if s.is_bid {
        ", interruptible"
    } else {
        ", on-demand"
    });
    text
}

/// "status loading, intended running".
fn status_line(s: &InstanceState) -> String {
    format!(
        "status {}, intended {}",
        s.actual_status.as_deref().unwrap_or("pending"),
        s.intended_status.as_deref().unwrap_or("unknown")
    )
}

/// Builds the events of one instance observation.
struct Emitter<'a> {
    events: EventSeq<'a>,
    /// "train-7 (5003)" or "5003".
    name: String,
    now: DateTime<Utc>,
}

impl<'a> Emitter<'a> {
    fn new(
        account: &'a str,
        s: &InstanceState,
        now: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
    ) -> Emitter<'a> {
        let name = match &s.label {
            Some(label) => format!("{label} ({})", s.id),
            None => s.id.to_string(),
        };
        let subject = Subject::Instance {
            id: s.id,
            name: s.label.clone(),
        };
        Emitter {
            events: EventSeq::new(account, format!("i{}", s.id), subject, now, since, s.seq),
            name,
            now,
        }
    }

    fn emit(&mut self, kind: EventKind, title: String, text: String, data: Value) {
        self.events.emit(kind, title, text, data);
    }

    fn emit_since(
        &mut self,
        kind: EventKind,
        title: String,
        text: String,
        data: Value,
        since: Option<DateTime<Utc>>,
    ) {
        self.events.emit_since(kind, title, text, data, since);
    }

    fn finish(self) -> (u64, Vec<Event>) {
        self.events.finish()
    }
}

fn clean(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn clean_status(v: Option<&str>) -> Option<String> {
    clean(v).map(|t| t.to_lowercase())
}

/// Trimmed, with runs of whitespace collapsed, so a message that differs only in spacing or a
/// trailing newline is the same message.
fn normalize_message(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A finite, non-negative value rounded to 1e-9, so state read back from JSON is bit-for-bit the
/// same (re-running an observation from reloaded state must give the same result).
fn finite_non_negative(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite() && *x >= 0.0 && *x < 1e12)
        .map(|x| (x * 1e9).round() / 1e9)
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Seconds from `from` to `to`, never negative (clocks can step back).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

fn fmt_seconds(seconds: f64) -> String {
    crate::util::format_duration(Duration::from_secs(seconds.max(0.0) as u64))
}

/// Dollars: cents, or four decimals for amounts that would show as less than ten cents.
fn fmt_money(v: f64) -> String {
    let v = if v.abs() < 5e-5 { 0.0 } else { v };
    if v != 0.0 && (v * 100.0).round().abs() < 10.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

fn fmt_count(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}
