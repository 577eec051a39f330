//! Machines whose rentals another monitor recorded (SPEC §14, `vast-supervisor import`): the pure
//! constructor that turns what that monitor knew (its last machine row and its rental sessions,
//! start times included) into a [`MachineState`], so the daemon's first poll continues from it
//! instead of adopting the machine afresh: rentals in progress keep their start and earnings, and
//! no `rental_start` is sent for them.
//!
//! Owns only that conversion. The caller reads and parses the other tool's files; nothing here
//! reads a file or a clock (the import time is an argument), and no event is emitted.

use super::machine::{baseline, non_empty, poll_input, ErrorState, MachineState, OfflineState};
use super::rental::{GpuSegment, Rental, RentalStatus, StorageSegment};
use super::{
    finite_non_negative, gpu_earnings, parse_occupancy, quantize, seconds_between,
    storage_earnings, GpuType,
};
use crate::vast::Machine;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::fmt;

/// A GPU earnings segment as recorded: `end` is `None` for the one still open.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedGpuSegment {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub rate_per_gpu_hour: f64,
    pub gpu_count: u32,
}

/// A storage earnings segment as recorded: `end` is `None` for the one still open.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedStorageSegment {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub rate_per_gb_month: f64,
}

/// One rental session another monitor tracked.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRental {
    /// Its id there; kept when it has our shape (`m{machine}-{n}`), else a new one is given.
    pub id: String,
    pub gpus: Vec<u32>,
    pub gpu_type: GpuType,
    /// [`RentalStatus::Running`] or [`RentalStatus::Paused`] (storage kept, GPUs released).
    pub status: RentalStatus,
    pub started: DateTime<Utc>,
    pub last_change: Option<DateTime<Utc>>,
    pub storage_gb: f64,
    pub rate_per_gpu_hour: f64,
    pub storage_rate_per_gb_month: f64,
    pub gpu_segments: Vec<RecordedGpuSegment>,
    pub storage_segments: Vec<RecordedStorageSegment>,
}

/// What another monitor knew about one machine.
#[derive(Debug, Clone)]
pub struct RecordedMachine<'a> {
    /// The last machine row it saved (the rentals below were diffed against it).
    pub row: &'a Machine,
    pub rentals: Vec<RecordedRental>,
    /// Its counter for new rental ids; ours continue above it and above every kept id.
    pub next_rental_seq: u64,
    /// When it last alerted the error `row.error_description` still shows, if it did.
    pub error_alerted_at: Option<DateTime<Utc>>,
    /// When it last alerted the positive `row.timeout`, if it did.
    pub offline_alerted_at: Option<DateTime<Utc>>,
}

/// Why a recorded rental was left out (the machine's first poll then adopts its GPUs, if they
/// are still occupied, as rentals of unknown start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordProblem {
    /// A running session that holds no GPU.
    NoGpus { rental: String },
    /// A GPU index beyond the machine's GPUs.
    GpuOutOfRange {
        rental: String,
        gpu: u32,
        gpus: usize,
    },
    /// A GPU another running session (kept before it) already holds.
    GpuTaken { rental: String, gpu: u32 },
    /// A status other than running or paused.
    Status { rental: String },
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordProblem::NoGpus { rental } => write!(f, "rental {rental} runs on no GPU"),
            RecordProblem::GpuOutOfRange { rental, gpu, gpus } => write!(
                f,
                "rental {rental} names GPU {gpu}, but the machine has {gpus} GPUs"
            ),
            RecordProblem::GpuTaken { rental, gpu } => {
                write!(f, "rental {rental} names GPU {gpu}, held by another rental")
            }
            RecordProblem::Status { rental } => {
                write!(f, "rental {rental} is neither running nor paused")
            }
        }
    }
}

/// The state of a machine recorded by another monitor, as if its last row had been observed at
/// `at` with these rentals instead of adopted ones. Occupied GPUs and stored contracts that no
/// recorded rental explains are adopted as on first sight; an error or offline condition the
/// other monitor had alerted counts as alerted, so it is not announced twice. Rentals that do not
/// fit the row are left out and reported.
pub fn machine_from_record(
    record: &RecordedMachine,
    at: DateTime<Utc>,
) -> (MachineState, Vec<RecordProblem>) {
    let row = record.row;
    let slots = parse_occupancy(row.gpu_occupancy.as_deref().unwrap_or(""), row.num_gpus);
    let mut s = baseline(None, row, &slots, at);
    let machine_id = s.machine_id;
    let mut problems = Vec::new();
    let mut held: BTreeSet<u32> = BTreeSet::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut next_seq = record.next_rental_seq.max(1);
    let mut kept: Vec<(Option<String>, Rental)> = Vec::new();
    for recorded in &record.rentals {
        if let Err(problem) = fits(recorded, slots.len(), &held) {
            problems.push(problem);
            continue;
        }
        if recorded.status == RentalStatus::Running {
            held.extend(recorded.gpus.iter().copied());
        }
        let id = own_rental_number(&recorded.id, machine_id)
            .filter(|_| ids.insert(recorded.id.clone()))
            .map(|n| {
                next_seq = next_seq.max(n + 1);
                recorded.id.clone()
            });
        kept.push((id, rental_from_record(recorded, at)));
    }
    s.rentals.next_seq = next_seq;
    for (id, mut rental) in kept {
        rental.id = id.unwrap_or_else(|| s.rentals.next_id(machine_id));
        s.rentals.rentals.push(rental);
    }
    if row.gpu_occupancy.is_some() {
        let input = poll_input(&s, row, &slots);
        s.rentals.adopt(machine_id, &input, at);
        s.rental_baseline = true;
    }
    if let (Some(when), Some(error)) = (
        record.error_alerted_at,
        non_empty(row.error_description.as_deref()),
    ) {
        s.error = ErrorState {
            alerted: Some(error),
            alerted_since: Some(when),
            last_sent: Some(when),
            ..ErrorState::default()
        };
    }
    let timeout = row.timeout.filter(|t| t.is_finite() && *t > 0.0);
    if let (Some(when), Some(timeout)) = (record.offline_alerted_at, timeout) {
        s.offline = OfflineState {
            pending_since: Some(when),
            alerted_at: Some(when),
            last_timeout: Some(quantize(timeout)),
            ..OfflineState::default()
        };
    }
    (s, problems)
}

fn fits(r: &RecordedRental, gpus: usize, held: &BTreeSet<u32>) -> Result<(), RecordProblem> {
    let rental = || r.id.clone();
    match r.status {
        RentalStatus::Running | RentalStatus::Paused => {}
        RentalStatus::Preempted => return Err(RecordProblem::Status { rental: rental() }),
    }
    if r.status == RentalStatus::Running && r.gpus.is_empty() {
        return Err(RecordProblem::NoGpus { rental: rental() });
    }
    if let Some(&gpu) = r.gpus.iter().find(|g| **g as usize >= gpus) {
        return Err(RecordProblem::GpuOutOfRange {
            rental: rental(),
            gpu,
            gpus,
        });
    }
    if r.status == RentalStatus::Running {
        if let Some(&gpu) = r.gpus.iter().find(|g| held.contains(g)) {
            return Err(RecordProblem::GpuTaken {
                rental: rental(),
                gpu,
            });
        }
    }
    Ok(())
}

/// `n` of an id `m{machine_id}-{n}`.
fn own_rental_number(id: &str, machine_id: u64) -> Option<u64> {
    let n = id.strip_prefix(&format!("m{machine_id}-"))?;
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The rental with the earnings of its closed segments summed and its open segments kept open.
/// A running rental without an open GPU segment gets one from its last change (or start), and
/// one with storage but no open storage segment likewise, so earnings keep accruing.
fn rental_from_record(r: &RecordedRental, at: DateTime<Utc>) -> Rental {
    let money = |v: f64| finite_non_negative(Some(v)).unwrap_or(0.0);
    let mut gpus = r.gpus.clone();
    gpus.sort_unstable();
    gpus.dedup();
    let since = r.last_change.unwrap_or(r.started).min(at);
    let mut earned_gpu = 0.0;
    let mut gpu_segment = None;
    for seg in &r.gpu_segments {
        match seg.end {
            Some(end) => {
                let seconds = seconds_between(seg.start, end);
                earned_gpu += gpu_earnings(money(seg.rate_per_gpu_hour), seg.gpu_count, seconds);
            }
            None => {
                gpu_segment = Some(GpuSegment {
                    start: seg.start.min(at),
                    rate_per_gpu_hour: money(seg.rate_per_gpu_hour),
                    gpu_count: gpus.len() as u32,
                })
            }
        }
    }
    if r.status != RentalStatus::Running {
        gpu_segment = None;
    } else if gpu_segment.is_none() {
        gpu_segment = Some(GpuSegment {
            start: since,
            rate_per_gpu_hour: money(r.rate_per_gpu_hour),
            gpu_count: gpus.len() as u32,
        });
    }
    let storage_gb = money(r.storage_gb);
    let mut earned_storage = 0.0;
    let mut storage_segment = None;
    for seg in &r.storage_segments {
        match seg.end {
            Some(end) => {
                let seconds = seconds_between(seg.start, end);
                earned_storage +=
                    storage_earnings(money(seg.rate_per_gb_month), storage_gb, seconds);
            }
            None => {
                storage_segment = Some(StorageSegment {
                    start: seg.start.min(at),
                    rate_per_gb_month: money(seg.rate_per_gb_month),
                    gb: storage_gb,
                })
            }
        }
    }
    if storage_gb <= 0.0 {
        storage_segment = None;
    } else if storage_segment.is_none() {
        storage_segment = Some(StorageSegment {
            start: since,
            rate_per_gb_month: money(r.storage_rate_per_gb_month),
            gb: storage_gb,
        });
    }
    Rental {
        id: r.id.clone(),
        gpus,
        gpu_type: r.gpu_type,
        status: r.status,
        started: r.started.min(at),
        // The start is known: this rental was not found already running.
        adopted: false,
        storage_gb,
        rate_per_gpu_hour: money(r.rate_per_gpu_hour),
        storage_rate_per_gb_month: money(r.storage_rate_per_gb_month),
        earned_gpu: quantize(earned_gpu),
        earned_storage: quantize(earned_storage),
        gpu_segment,
        storage_segment,
        last_change: since,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{merge, rent, row, t};
    use super::super::{observe_machine, Adoption, MachineRules, Observation};
    use super::*;
    use crate::event::{Event, EventKind};
    use serde_json::json;

    fn poll(
        state: &MachineState,
        patch: serde_json::Value,
        now: i64,
    ) -> (MachineState, Vec<Event>) {
        let rules = MachineRules::default();
        let obs = Observation {
            account: "alice",
            now: t(now),
            rules: &rules,
        };
        observe_machine(Some(state), &row(patch), &obs, Adoption::FirstStart)
    }

    /// vast-monitor's example: one on-demand session on GPUs 0-3 since `t(-86400)`, 32 GB, a
    /// closed GPU segment at 0.425 and an open one at 0.451.
    fn session(id: &str, gpus: Vec<u32>, status: RentalStatus) -> RecordedRental {
        RecordedRental {
            id: id.into(),
            gpus,
            gpu_type: GpuType::OnDemand,
            status,
            started: t(-86400),
            last_change: Some(t(-86400)),
            storage_gb: 32.0,
            rate_per_gpu_hour: 0.451,
            storage_rate_per_gb_month: 0.3,
            gpu_segments: vec![
                RecordedGpuSegment {
                    start: t(-86400),
                    end: Some(t(-82800)),
                    rate_per_gpu_hour: 0.425,
                    gpu_count: 4,
                },
                RecordedGpuSegment {
                    start: t(-82800),
                    end: None,
                    rate_per_gpu_hour: 0.451,
                    gpu_count: 4,
                },
            ],
            storage_segments: vec![RecordedStorageSegment {
                start: t(-86400),
                end: None,
                rate_per_gb_month: 0.3,
            }],
        }
    }

    fn rented() -> serde_json::Value {
        rent("D D D D", 1, 1, 1, 1, Some(32.0))
    }

    /// The example session on `machine`, as vast-monitor recorded it.
    fn recorded(machine: &Machine, error_alerted_at: Option<DateTime<Utc>>) -> RecordedMachine<'_> {
        RecordedMachine {
            row: machine,
            rentals: vec![session(
                "m12345-0001",
                vec![0, 1, 2, 3],
                RentalStatus::Running,
            )],
            next_rental_seq: 2,
            error_alerted_at,
            offline_alerted_at: None,
        }
    }

    #[test]
    fn a_recorded_rental_continues_without_a_start_and_ends_with_its_history() {
        let machine = row(rented());
        let record = recorded(&machine, None);
        let (state, problems) = machine_from_record(&record, t(0));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(state.rentals.rentals.len(), 1);
        let r = &state.rentals.rentals[0];
        assert_eq!(
            (r.id.as_str(), r.started, r.adopted),
            ("m12345-0001", t(-86400), false)
        );
        // 1 h of 4 GPUs at 0.425 is already earned; the 0.451 segment stays open.
        assert!((r.earned_gpu - 1.7).abs() < 1e-9, "{}", r.earned_gpu);

        let (state, events) = poll(&state, rented(), 30);
        assert!(
            events.is_empty(),
            "the first poll re-announces nothing: {events:?}"
        );
        let (_, events) = poll(&state, rent("x x x x", 0, 0, 0, 0, None), 60);
        assert_eq!(events.len(), 1, "{events:?}");
        let end = &events[0];
        assert_eq!(end.kind, EventKind::RentalEnd);
        assert_eq!(end.data["rental_id"], "m12345-0001");
        assert_eq!(end.data["adopted"], false);
        assert_eq!(end.data["started"], json!(t(-86400)));
        assert_eq!(end.data["duration_seconds"], 86460);
        let gpu = end.data["estimated_earnings"]["gpu"].as_f64().unwrap();
        let expected = 1.7 + 0.451 * 4.0 * (82800.0 + 60.0) / 3600.0;
        assert!((gpu - expected).abs() < 1e-5, "{gpu} vs {expected}");
    }

    #[test]
    fn new_rentals_continue_the_recorded_numbering() {
        let machine = row(json!({}));
        let record = RecordedMachine {
            row: &machine,
            rentals: Vec::new(),
            next_rental_seq: 33,
            error_alerted_at: None,
            offline_alerted_at: None,
        };
        let (state, _) = machine_from_record(&record, t(0));
        let (_, events) = poll(&state, rent("D D x x", 1, 1, 1, 1, Some(10.0)), 30);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, EventKind::RentalStart);
        assert_eq!(events[0].data["rental_id"], "m12345-0033");
    }

    #[test]
    fn what_the_record_does_not_explain_is_adopted_and_misfits_are_reported() {
        let machine = row(rent("D D I x", 2, 1, 2, 1, None));
        let mut out_of_range = session("m12345-0007", vec![9], RentalStatus::Running);
        out_of_range.gpu_type = GpuType::Interruptible;
        let record = RecordedMachine {
            row: &machine,
            rentals: vec![
                session("m12345-0005", vec![0, 1], RentalStatus::Running),
                session("m12345-0006", vec![1], RentalStatus::Running),
                out_of_range,
                session("other-id", vec![], RentalStatus::Paused),
            ],
            next_rental_seq: 3,
            error_alerted_at: None,
            offline_alerted_at: None,
        };
        let (state, problems) = machine_from_record(&record, t(0));
        assert_eq!(
            problems,
            [
                RecordProblem::GpuTaken {
                    rental: "m12345-0006".into(),
                    gpu: 1
                },
                RecordProblem::GpuOutOfRange {
                    rental: "m12345-0007".into(),
                    gpu: 9,
                    gpus: 4
                },
            ]
        );
        let summary: Vec<(String, Vec<u32>, bool, &str)> = state
            .rentals
            .rentals
            .iter()
            .map(|r| (r.id.clone(), r.gpus.clone(), r.adopted, r.status.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("m12345-0005".to_string(), vec![0, 1], false, "running"),
                // A foreign id gets the next of ours; the interruptible GPU 2 nobody recorded is
                // adopted with an unknown start.
                ("m12345-0006".to_string(), vec![], false, "paused"),
                ("m12345-0007".to_string(), vec![2], true, "running"),
            ]
        );
        let (_, events) = poll(&state, rent("D D I x", 2, 1, 2, 1, None), 30);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn conditions_the_other_monitor_alerted_are_not_alerted_again() {
        let failing = merge(
            rented(),
            json!({"error_description": "GPU 2 fell off the bus"}),
        );
        let machine = row(failing.clone());
        let record = recorded(&machine, Some(t(-600)));
        let (state, _) = machine_from_record(&record, t(0));
        let (state, events) = poll(&state, failing.clone(), 30);
        assert!(events.is_empty(), "{events:?}");
        // It clears as any alerted error does: one machine_recovered once the recovery rule is
        // satisfied (two clean polls at most).
        let (state, mut events) = poll(&state, rented(), 60);
        events.extend(poll(&state, rented(), 90).1);
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::MachineRecovered]);

        // Not alerted there: our own rules decide, as for any machine.
        let (state, _) = machine_from_record(&recorded(&machine, None), t(0));
        assert_eq!(state.error, ErrorState::default());
    }
}
