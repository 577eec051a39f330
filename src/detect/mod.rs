//! The pure detection core for host machines: previous [`MachineState`] + one machine row + `now`
//! -> new state + [`Event`]s (SPEC §2, §5).
//!
//! Owns the rules that turn Vast machine rows into rental and machine events, and the per-machine
//! state those rules need across polls and restarts. It does no I/O, reads no clock (time is the
//! `now` of the [`Observation`]), spawns nothing and knows nothing about actors, storage or
//! delivery; callers persist the returned state together with the events, atomically. Re-running
//! the same observation from the same stored state yields the same state and the same event ids.
//!
//! # Rules
//!
//! **Input hygiene.** `gpu_occupancy` is split on whitespace and padded with `x` to `num_gpus`
//! (extra tokens beyond `num_gpus` are kept, at most [`MAX_GPUS`] slots). `x`/`X` is idle; `D`, `I`,
//! `R` (any case) are on-demand, interruptible and reserved; any other token is occupied with the
//! unknown type `?` (`vast-api.md` §6.6). Counters that are null count as 0, and every derived count
//! is clamped at 0 (§6.7). Non-finite or negative money and disk values count as absent. A row
//! without `gpu_occupancy` carries no rental information: the rental book and its reference
//! counters stay as they were, so a field missing for one poll cannot end every rental.
//!
//! **Rentals** (see [`rental`] for the details): a rental is a set of GPU indices with one type
//! (`D`, `I`, `R` or `?`), status running, paused or preempted, storage, rates and earnings
//! segments. Per poll:
//! 1. A running rental whose GPUs all leave its token is *released*; if only some of them do, it
//!    shrinks silently (partial release, as vast-monitor).
//! 2. A released interruptible (`I`) rental whose GPUs were taken directly by another occupied token
//!    (no idle in between) is **preempted**: `rental_preempt`, status preempted, storage kept.
//! 3. Other released rentals pause or end. The counters give the pause budget per class (on-demand:
//!    `on_demand - running_on_demand`; others: `(resident - on_demand) - (running -
//!    running_on_demand)`; budget = rise since the last poll, preemptions use the non-D budget
//!    first). Among the assignments the budget allows, the one whose ended storage best explains the
//!    disk drop (within 1 GB) wins; ties pause more. So "GPUs freed, disk unchanged, one more stored
//!    rental of that class" is a pause, exactly as vast-monitor, and if `alloc_disk_space` is null on
//!    both sides the disk counts as unchanged.
//! 4. Occupied GPUs not held by a running rental of the same type *start*. A paused or preempted
//!    rental of that type whose GPU set is exactly the started GPUs of that type is **resumed**
//!    (`rental_resume`), as in vast-monitor; one whose GPUs are only part of them, or an adopted
//!    stored rental whose GPUs are unknown, resumes only when the counters confirm it (the class's
//!    stored count fell by at least the number of such resumes, and for unknown GPUs
//!    `current_rentals_resident` did not rise, i.e. no new contract appeared).
//! 5. The remaining started GPUs of one class become `k` new rentals, where `k` is how many more
//!    rentals of that class run now (`running_on_demand`, or `running - running_on_demand`, minus the
//!    ones already running or resumed). GPU sets named by `clients` are carved out first. The rest
//!    of a type is cut into contiguous runs: GPUs separated by a gap (an idle GPU, a GPU of another
//!    type or one held by another rental) never belong to the same new rental, so there is at least
//!    one rental per run and at most one per GPU. Only when the counters say more rentals than
//!    there are runs are runs split further, each extra rental splitting the run whose pieces are
//!    largest, into contiguous chunks as even as possible, larger chunks first. The disk growth (plus storage
//!    released this poll) is shared among the new rentals in proportion to their GPU count, so it is
//!    never counted twice; a `clients` storage figure for the exact GPU set wins over the share.
//! 6. A disk drop not explained by the rentals that ended this poll ends the stored rental whose
//!    storage matches it best (within 1 GB), else a set of stored rentals whose storage sums to it;
//!    else, when `current_rentals_resident` fell by `m` more than this poll's ends and starts explain
//!    and exactly `m` stored rentals exist, those end.
//! 7. `rental_end` carries duration and estimated earnings (vast-monitor §b.6: GPU $ = rate x GPUs x
//!    hours; storage $ = rate x GB x seconds / (730 x 3600)), computed up to `now`. A rental that
//!    ends from paused carries the GPUs it last held.
//!
//! **Offline.** `timeout > 0` first seen at `T`: `machine_offline` once `now - T >= offline_grace`,
//! or at once if the reported `timeout` itself is `>= offline_grace` seconds. Before the alert, the
//! first observation with `timeout == 0` (the machine checked in) clears the condition, so blips
//! separated by a check-in never add up to an outage. After the alert, recovery has hysteresis:
//! `recover_after_polls` consecutive observations with `timeout == 0` end it with
//! `machine_recovered` (`recovered_from: offline`); a positive timeout in between restarts the
//! count. A null `timeout` changes nothing.
//!
//! **Errors.** A non-empty `error_description` not matching `ignore_errors` sends `machine_error` on
//! the first observation that shows it and opens an episode. The episode ends only after
//! `recover_after_polls` consecutive observations without a (non-ignored) error, with
//! `machine_recovered` (`recovered_from: error`); so a flapping error is one episode with one
//! alert. While the same text persists, `machine_error` is re-sent every `error_repeat` after the
//! last one, counting from the first alert (`data.repeat = true`; zero disables reminders). A
//! different text within the episode is a new `machine_error` at once (`data.previous` names the
//! old text). `""` and null are the same value.
//!
//! **Listing and reputation.** `listed` true->false `machine_unlisted`, false->true
//! `machine_listed`; a `verification` change `machine_verification`; a rise of `num_reports` or of
//! `num_recent_reports` `machine_report`; any change of `machine_maintenance` (null and `[]` are the
//! same) `machine_maintenance`. A null `listed`, `verification` or report count keeps the last
//! known value (null maintenance means none scheduled). None fire on first sight.
//!
//! **First sight and removal.** A machine seen for the first time is adopted: its occupied GPUs
//! become adopted rentals grouped like vast-monitor §b.4 (counts from the running counters, split
//! as in rule 5, start time "before `now`"), and the stored rentals the counters show become
//! adopted paused rentals with unknown GPUs. No rental events. With [`Adoption::FirstStart`] no
//! `machine_added` either; with [`Adoption::Running`] (a machine that appeared after start-up)
//! `machine_added`. Offline and error conditions present at first sight are evaluated like any
//! other observation: a reported `timeout` already beyond the grace sends `machine_offline` at once
//! (a machine that is down when the daemon starts matters), a shorter one starts the grace clock,
//! and an error sends `machine_error`. [`machine_missing`] with an empty lookup sends
//! `machine_removed` once and ends the machine's tracked rentals (`data.reason:
//! "machine_removed"`); with a row, it is a list hiccup and the row is observed normally. A removed
//! machine that comes back is adopted again, keeping its counters so event and rental ids stay
//! unique. A machine another monitor tracked (`vast-supervisor import`) starts instead from the
//! state [`recorded::machine_from_record`] builds: its rentals keep their ids and start times
//! (`adopted: false`), and only what they leave unexplained is adopted as above.
//!
//! **Events.** Ids are `"{account}:m{machine_id}:{seq}"`, `seq` counting every event of the
//! machine; rental ids are `"m{machine_id}-{n:04}"`. Events carry `time = now` and `since` = the
//! previous observation (none on first sight), so the change lies in `(since, time]`. Events that
//! confirm a change first seen earlier (`machine_offline` after the grace, `machine_recovered` after
//! the hysteresis, `machine_error` reminders) carry as `since` the observation before that first
//! sighting instead. Within one observation the order is: offline and
//! error conditions, then rentals (preempt/pause/end, resume, start, storage-only end, each in
//! rental order), then listing, verification, reports, maintenance. `data`: rental events
//! `rental_id, gpus, gpu_type, rate_per_gpu_hour, storage_gb, storage_rate_per_gb_month, status,
//! adopted` (+ `by` for `rental_preempt`; + `duration_seconds, estimated_earnings {gpu, storage,
//! total}, ended_from, reason, started` for `rental_end`); `machine_offline` `timeout_seconds,
//! offline_since`; `machine_error` `error, repeat, previous, error_since`; `machine_recovered`
//! `recovered_from, down_seconds`; `machine_listed`/`unlisted` `listed, previous`;
//! `machine_verification` `from, to`; `machine_report` `num_reports, previous, num_recent_reports,
//! previous_recent`; `machine_maintenance` `machine_maintenance, previous`; `machine_added` the
//! [`machine_summary`]; `machine_removed` `rentals_ended, last_seen`.

mod assign;
pub mod machine;
pub mod recorded;
pub mod rental;
// The account itself: its polling health.
pub mod health;
// The renter side: instances, credit and earnings digests, instance log rules.
pub mod instance;
pub mod logs;
pub mod money;

pub use machine::{
    machine_missing, machine_summary, observe_machine, ErrorState, MachineState, MachineSummary,
    OfflineState,
};
pub use recorded::{
    machine_from_record, RecordProblem, RecordedGpuSegment, RecordedMachine, RecordedRental,
    RecordedStorageSegment,
};
pub use rental::{GpuSegment, Rental, RentalBook, RentalStatus, RentalSummary, StorageSegment};

use crate::config::AccountConfig;
use crate::event::{Event, EventKind, Subject};
use crate::vast::Machine;
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Upper bound on GPU slots per machine; garbage `num_gpus` values cannot allocate more.
pub const MAX_GPUS: usize = 256;

/// Disk changes smaller than this (GB) are noise (vast-monitor's tolerance).
pub const DISK_TOLERANCE_GB: f64 = 1.0;

/// Hours per month in the storage price (vast-monitor §b.6).
const HOURS_PER_MONTH: f64 = 730.0;

/// Counter values above this are treated as this, so arithmetic on garbage cannot overflow.
const MAX_COUNTER: i64 = 1_000_000;

/// The per-account knobs of machine detection.
#[derive(Debug, Clone)]
pub struct MachineRules {
    /// `machine_offline` after `timeout > 0` persisted this long (or reported this long).
    pub offline_grace: Duration,
    /// Re-send `machine_error` this often while the error persists; zero: never re-send.
    pub error_repeat: Duration,
    /// `error_description` values matching any of these are noise.
    pub ignore_errors: Vec<Regex>,
    /// Consecutive clean observations (`timeout == 0`; no error) before an alerted offline or
    /// error condition ends with `machine_recovered`.
    pub recover_after_polls: u32,
}

impl Default for MachineRules {
    fn default() -> Self {
        MachineRules {
            offline_grace: Duration::from_secs(120),
            error_repeat: Duration::from_secs(6 * 3600),
            ignore_errors: Vec::new(),
            recover_after_polls: 2,
        }
    }
}

impl MachineRules {
    /// The rules of one account; fails only if an `ignore_errors` pattern does not compile.
    pub fn from_account(cfg: &AccountConfig) -> Result<MachineRules, regex::Error> {
        let ignore_errors = cfg
            .ignore_errors
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MachineRules {
            offline_grace: cfg.offline_grace,
            error_repeat: cfg.error_repeat,
            ignore_errors,
            ..MachineRules::default()
        })
    }

    fn is_ignored(&self, error: &str) -> bool {
        self.ignore_errors.iter().any(|re| re.is_match(error))
    }
}

/// One observation: whose machine, when, and under which rules.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub account: &'a str,
    pub now: DateTime<Utc>,
    pub rules: &'a MachineRules,
}

/// How a machine without state is taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// The daemon is starting and has never seen this machine: adopt silently.
    FirstStart,
    /// The machine appeared after start-up: `machine_added`.
    Running,
}

/// The type of a rental, from its `gpu_occupancy` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GpuType {
    #[serde(rename = "D")]
    OnDemand,
    #[serde(rename = "I")]
    Interruptible,
    #[serde(rename = "R")]
    Reserved,
    #[serde(rename = "?")]
    Unknown,
}

impl GpuType {
    /// `None` for an idle slot.
    pub fn from_token(token: &str) -> Option<GpuType> {
        Some(match token {
            "x" | "X" => return None,
            "D" | "d" => GpuType::OnDemand,
            "I" | "i" => GpuType::Interruptible,
            "R" | "r" => GpuType::Reserved,
            _ => GpuType::Unknown,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GpuType::OnDemand => "D",
            GpuType::Interruptible => "I",
            GpuType::Reserved => "R",
            GpuType::Unknown => "?",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            GpuType::OnDemand => "on-demand",
            GpuType::Interruptible => "interruptible",
            GpuType::Reserved => "reserved",
            GpuType::Unknown => "unknown type",
        }
    }

    /// The label with its article: "an on-demand", "a reserved".
    pub fn with_article(self) -> String {
        let label = self.label();
        let article = if label.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {label}")
    }

    /// The counters split rentals into on-demand and everything else.
    pub(crate) fn class(self) -> Class {
        match self {
            GpuType::OnDemand => Class::OnDemand,
            _ => Class::Other,
        }
    }
}

impl fmt::Display for GpuType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two rental classes the Vast counters distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    OnDemand,
    Other,
}

/// Parses `gpu_occupancy` into one slot per GPU (`None` = idle).
pub fn parse_occupancy(occupancy: &str, num_gpus: Option<u64>) -> Vec<Option<GpuType>> {
    let mut slots: Vec<Option<GpuType>> = occupancy
        .split_whitespace()
        .take(MAX_GPUS)
        .map(GpuType::from_token)
        .collect();
    let wanted = num_gpus.map_or(0, |n| n.min(MAX_GPUS as u64) as usize);
    if slots.len() < wanted {
        slots.resize(wanted, None);
    }
    slots
}

/// The canonical text of parsed slots, e.g. `"D D x x"`.
pub fn format_occupancy(slots: &[Option<GpuType>]) -> String {
    slots
        .iter()
        .map(|s| s.map_or("x", GpuType::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rental counters of a machine row, nulls as 0 and clamped to `0..=MAX_COUNTER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub running: i64,
    pub running_on_demand: i64,
    pub resident: i64,
    pub on_demand: i64,
}

impl Counters {
    pub fn from_row(row: &Machine) -> Counters {
        let c = |v: Option<i64>| v.unwrap_or(0).clamp(0, MAX_COUNTER);
        Counters {
            running: c(row.current_rentals_running),
            running_on_demand: c(row.current_rentals_running_on_demand),
            resident: c(row.current_rentals_resident),
            on_demand: c(row.current_rentals_on_demand),
        }
    }

    /// Rentals of the class whose GPUs run.
    pub(crate) fn running_of(&self, class: Class) -> i64 {
        match class {
            Class::OnDemand => self.running_on_demand,
            Class::Other => (self.running - self.running_on_demand).max(0),
        }
    }

    /// Rentals of the class that hold storage but no GPUs.
    pub(crate) fn stored_of(&self, class: Class) -> i64 {
        match class {
            Class::OnDemand => (self.on_demand - self.running_on_demand).max(0),
            Class::Other => {
                ((self.resident - self.on_demand) - (self.running - self.running_on_demand)).max(0)
            }
        }
    }
}

/// Listing prices of a row, per GPU type (vast-monitor §b.1); absent or invalid prices are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rates {
    pub on_demand: f64,
    pub interruptible: f64,
    pub reserved: f64,
    pub storage_per_gb_month: f64,
}

impl Rates {
    pub fn from_row(row: &Machine) -> Rates {
        Rates {
            on_demand: money(row.listed_gpu_cost),
            interruptible: money(row.min_bid_price),
            reserved: money(row.bid_gpu_cost),
            storage_per_gb_month: money(row.listed_storage_cost),
        }
    }

    pub fn gpu(&self, t: GpuType) -> f64 {
        match t {
            GpuType::OnDemand => self.on_demand,
            GpuType::Interruptible => self.interruptible,
            GpuType::Reserved => self.reserved,
            GpuType::Unknown => 0.0,
        }
    }
}

/// A finite, non-negative amount, else 0.
fn money(v: Option<f64>) -> f64 {
    finite_non_negative(v).unwrap_or(0.0)
}

/// A finite, non-negative value (quantized, see [`quantize`]), else `None`.
pub(crate) fn finite_non_negative(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite() && *x >= 0.0).map(quantize)
}

/// Rounds to 1e-9 the amounts kept in state (dollars, GB, seconds), so that state written as JSON
/// and read back is bit-for-bit the same with any float parser: re-running an observation from
/// reloaded state must give the same result (crash safety). Huge values are left alone.
pub(crate) fn quantize(v: f64) -> f64 {
    if v.is_finite() && v.abs() < 1e6 {
        (v * 1e9).round() / 1e9
    } else {
        v
    }
}

/// Seconds from `from` to `to`, never negative (clocks can step back).
pub(crate) fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// GPU earnings of `gpus` GPUs at `rate` $/GPU/h for `seconds`.
pub(crate) fn gpu_earnings(rate: f64, gpus: u32, seconds: f64) -> f64 {
    rate * f64::from(gpus) * seconds / 3600.0
}

/// Storage earnings of `gb` GB at `rate` $/GB/month for `seconds`.
pub(crate) fn storage_earnings(rate: f64, gb: f64, seconds: f64) -> f64 {
    rate * gb * seconds / (HOURS_PER_MONTH * 3600.0)
}

/// Money and rates in event data: rounded to 6 decimals so float noise does not leak out.
pub(crate) fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

pub(crate) fn fmt_money(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.1 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

pub(crate) fn fmt_gb(gb: f64) -> String {
    if (gb - gb.round()).abs() < 0.05 {
        format!("{gb:.0} GB")
    } else {
        format!("{gb:.1} GB")
    }
}

pub(crate) fn fmt_seconds(seconds: f64) -> String {
    crate::util::format_duration(Duration::from_secs(seconds.max(0.0) as u64))
}

/// The events of one observation of one subject, numbered from the counter kept in the
/// subject's state, so re-running the observation from the same state yields the same ids:
/// `"{account}:{key}:{seq}"` with `key` `m<machine>` or `i<instance>`.
pub(crate) struct EventSeq<'a> {
    account: &'a str,
    key: String,
    subject: Subject,
    now: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    seq: u64,
    events: Vec<Event>,
}

impl<'a> EventSeq<'a> {
    pub fn new(
        account: &'a str,
        key: String,
        subject: Subject,
        now: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
        seq: u64,
    ) -> EventSeq<'a> {
        EventSeq {
            account,
            key,
            subject,
            now,
            since,
            seq,
            events: Vec::new(),
        }
    }

    pub fn emit(&mut self, kind: EventKind, title: String, text: String, data: serde_json::Value) {
        let since = self.since;
        self.emit_since(kind, title, text, data, since);
    }

    /// An event whose change was first seen before this observation (a condition confirmed
    /// after a grace or a hysteresis): `since` is the observation before the change was first
    /// seen, so `(since, time]` still contains the change.
    pub fn emit_since(
        &mut self,
        kind: EventKind,
        title: String,
        text: String,
        data: serde_json::Value,
        since: Option<DateTime<Utc>>,
    ) {
        self.seq += 1;
        let id = format!("{}:{}:{}", self.account, self.key, self.seq);
        let event = Event::new(
            id,
            kind,
            Some(self.account.to_string()),
            self.subject.clone(),
            self.now,
            title,
            text,
        )
        .with_since(since)
        .with_data(data);
        self.events.push(event);
    }

    /// The sequence counter after the emitted events, and the events.
    pub fn finish(self) -> (u64, Vec<Event>) {
        (self.seq, self.events)
    }
}

/// Builds the events of one machine observation.
pub(crate) struct Emitter<'a> {
    events: EventSeq<'a>,
    /// Hostname, or "machine N" when the machine has none.
    pub host: String,
    /// GPU model for texts ("RTX 4090"), "GPU" when unknown.
    pub gpu_name: String,
    pub now: DateTime<Utc>,
}

impl<'a> Emitter<'a> {
    pub fn new(
        obs: &Observation<'a>,
        machine_id: u64,
        hostname: Option<&str>,
        gpu_name: Option<&str>,
        since: Option<DateTime<Utc>>,
        seq: u64,
    ) -> Emitter<'a> {
        let hostname = hostname
            .filter(|h| !h.trim().is_empty())
            .map(str::to_string);
        let host = hostname
            .clone()
            .unwrap_or_else(|| format!("machine {machine_id}"));
        let subject = Subject::Machine {
            id: machine_id,
            name: hostname,
        };
        Emitter {
            events: EventSeq::new(
                obs.account,
                format!("m{machine_id}"),
                subject,
                obs.now,
                since,
                seq,
            ),
            host,
            gpu_name: gpu_name
                .filter(|g| !g.trim().is_empty())
                .unwrap_or("GPU")
                .to_string(),
            now: obs.now,
        }
    }

    pub fn emit(&mut self, kind: EventKind, title: String, text: String, data: serde_json::Value) {
        self.events.emit(kind, title, text, data);
    }

    /// See [`EventSeq::emit_since`].
    pub fn emit_since(
        &mut self,
        kind: EventKind,
        title: String,
        text: String,
        data: serde_json::Value,
        since: Option<DateTime<Utc>>,
    ) {
        self.events.emit_since(kind, title, text, data, since);
    }

    /// "2x RTX 4090".
    pub fn gpus_text(&self, count: usize) -> String {
        format!("{count}x {}", self.gpu_name)
    }

    /// The sequence counter after the emitted events, and the events.
    pub fn finish(self) -> (u64, Vec<Event>) {
        self.events.finish()
    }
}

#[cfg(test)]
mod tests;
