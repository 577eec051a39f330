//! Property tests of the detection core: random sequences of plausible and garbage machine rows
//! (random tokens, counters, disk, timeouts, errors, nulls, wrong types, list omissions, clocks that
//! step back) never panic, and the events they produce are coherent:
//! - event ids are unique and `"{account}:m{id}:{seq}"`, `time` is `now`, `since` the previous
//!   observation, and the state's sequence counter advances by the number of events;
//! - every rental event carries `rental_id`, `gpus` and `gpu_type`; `rental_start` names a new id;
//!   every other rental event names a rental that was started or adopted before and not ended;
//! - a tracked rental never disappears without `rental_end`, and rentals appear only through
//!   `rental_start` or silent adoption (marked `adopted`);
//! - running rentals hold disjoint, non-empty GPU sets;
//! - the same observation from the same state (also after a JSON round trip of the state) gives
//!   the same state and the same events;
//! - `since` is the previous observation, or for events that confirm an earlier change (offline
//!   after the grace, recovery after the hysteresis, error reminders) an earlier observation;
//! - renters who start together in disjoint blocks separated by gaps (or of different types) are
//!   detected as exactly those blocks, and each end releases the rental of exactly its block.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use vast_supervisor::detect::{
    machine_missing, observe_machine, Adoption, MachineRules, MachineState, Observation,
    RentalStatus,
};
use vast_supervisor::event::{Event, EventKind};
use vast_supervisor::vast::Machine;

#[derive(Debug, Clone)]
enum Step {
    Observe {
        row: Value,
        advance: i64,
    },
    /// The list omitted the machine; `lookup` says whether the single lookup still finds it.
    Missing {
        lookup: bool,
        advance: i64,
    },
}

fn token() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just("x"),
        4 => Just("D"),
        3 => Just("I"),
        1 => Just("R"),
        1 => Just("Z"),
        1 => Just("X"),
    ]
}

fn occupancy() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (prop::collection::vec(token(), 0..7), prop::bool::ANY).prop_map(|(t, trailing)| {
            let mut s = t.join(" ");
            if trailing {
                s.push(' ');
            }
            json!(s)
        }),
        1 => Just(Value::Null),
        1 => Just(json!("  D\tI  x ")),
    ]
}

fn counter() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0i64..4).prop_map(|n| json!(n)),
        1 => Just(Value::Null),
        1 => prop_oneof![Just(json!(-1)), Just(json!("2")), Just(json!(2.7)), Just(json!("many"))],
    ]
}

fn disk() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(Value::Null),
        6 => prop_oneof![Just(0.0), Just(10.0), Just(20.0), Just(50.0), Just(70.0), Just(80.0)]
            .prop_map(|d| json!(d)),
        2 => (0.0f64..200.0).prop_map(|d| json!(d)),
        1 => prop_oneof![Just(json!("NaN")), Just(json!(-5)), Just(json!("12.5"))],
    ]
}

fn timeout() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => Just(json!(0)),
        2 => prop_oneof![Just(json!(30)), Just(json!(300)), Just(json!(90.5))],
        1 => prop_oneof![Just(Value::Null), Just(json!(-3)), Just(json!("soon"))],
    ]
}

fn error() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => Just(Value::Null),
        2 => prop_oneof![Just(json!("A")), Just(json!("B"))],
        1 => prop_oneof![Just(json!("")), Just(json!("Error: machine does not support VMs.")), Just(json!(3))],
    ]
}

fn maybe<T: Strategy<Value = Value>>(s: T) -> impl Strategy<Value = Value> {
    prop_oneof![6 => s, 1 => Just(Value::Null)]
}

fn clients() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => Just(json!([])),
        1 => (prop::collection::vec(0u32..6, 1..3), 0.0f64..80.0)
            .prop_map(|(g, d)| json!([{"gpu_ids": g, "disk_space": d}])),
        1 => Just(json!({"weird": true})),
    ]
}

fn row() -> impl Strategy<Value = Value> {
    (
        (
            occupancy(),
            prop_oneof![8 => Just(json!(4)), 1 => (0i64..9).prop_map(|n| json!(n)), 1 => Just(json!(-2)), 1 => Just(Value::Null)],
            counter(),
            counter(),
            counter(),
            counter(),
            disk(),
        ),
        (
            timeout(),
            error(),
            maybe(prop::bool::ANY.prop_map(|b| json!(b))),
            maybe(prop_oneof![Just(json!("verified")), Just(json!("deverified"))]),
            maybe((0u32..3).prop_map(|n| json!(n))),
            prop_oneof![Just(Value::Null), Just(json!([])), Just(json!([{"id": 1}])), Just(json!([{"id": 2}]))],
            clients(),
            maybe(prop_oneof![Just(json!(0.43)), Just(json!("0.3")), Just(json!(-1.0))]),
            prop_oneof![5 => Just(json!("rig-01")), 1 => Just(Value::Null), 1 => Just(json!(""))],
        ),
    )
        .prop_map(
            |(
                (occ, num_gpus, running, rod, resident, od, disk),
                (timeout, error, listed, verification, reports, maintenance, clients, price, host),
            )| {
                json!({
                    "id": 777, "machine_id": 777, "hostname": host, "gpu_name": "RTX 4090",
                    "num_gpus": num_gpus, "gpu_occupancy": occ,
                    "current_rentals_running": running, "current_rentals_running_on_demand": rod,
                    "current_rentals_resident": resident, "current_rentals_on_demand": od,
                    "alloc_disk_space": disk, "timeout": timeout, "error_description": error,
                    "listed": listed, "verification": verification, "num_reports": reports,
                    "num_recent_reports": reports, "machine_maintenance": maintenance,
                    "clients": clients, "listed_gpu_cost": price, "min_bid_price": 0.3,
                    "bid_gpu_cost": null, "listed_storage_cost": 0.3,
                })
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    let advance = prop_oneof![10 => 1i64..200, 1 => Just(0i64), 1 => Just(-20i64)];
    prop_oneof![
        12 => (row(), advance.clone()).prop_map(|(row, advance)| Step::Observe { row, advance }),
        1 => (prop::bool::ANY, advance).prop_map(|(lookup, advance)| Step::Missing { lookup, advance }),
    ]
}

fn rules() -> impl Strategy<Value = MachineRules> {
    (0u64..200, 0u64..400, 1u32..3).prop_map(|(grace, repeat, recover)| MachineRules {
        offline_grace: std::time::Duration::from_secs(grace),
        error_repeat: std::time::Duration::from_secs(repeat),
        ignore_errors: vec![regex::Regex::new("does not support VMs").unwrap()],
        recover_after_polls: recover,
    })
}

fn machine(v: &Value) -> Machine {
    serde_json::from_value(v.clone()).expect("rows always decode leniently")
}

/// Tracks rental ids across the run and checks each step's events.
#[derive(Default)]
struct Ledger {
    ids: HashSet<String>,
    live: BTreeSet<String>,
    ended: BTreeSet<String>,
    seen: BTreeSet<String>,
    /// The time of every observation so far.
    observed: BTreeSet<DateTime<Utc>>,
}

/// Events sent after a grace or hysteresis, or as reminders: their `since` is the observation
/// before the change was first seen, not the previous one.
fn confirms_an_earlier_change(e: &Event) -> bool {
    match e.kind {
        EventKind::MachineOffline | EventKind::MachineRecovered => true,
        EventKind::MachineError => e.data["repeat"] == true,
        _ => false,
    }
}

impl Ledger {
    fn check_step(
        &mut self,
        prev: Option<&MachineState>,
        state: &MachineState,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), TestCaseError> {
        let prev_seq = prev.map_or(0, |p| p.event_seq);
        prop_assert_eq!(state.event_seq, prev_seq + events.len() as u64);
        for (k, e) in events.iter().enumerate() {
            prop_assert!(self.ids.insert(e.id.clone()), "duplicate id {}", e.id);
            prop_assert_eq!(&e.id, &format!("acct:m777:{}", prev_seq + k as u64 + 1));
            prop_assert_eq!(e.time, now);
            if confirms_an_earlier_change(e) {
                // Its window starts before the change was first seen: at an earlier observation.
                prop_assert!(
                    e.since.is_none_or(|s| self.observed.contains(&s)),
                    "since of {:?} is no earlier observation",
                    e
                );
            } else {
                prop_assert_eq!(e.since, prev.map(|p| p.last_seen));
            }
            prop_assert_eq!(e.account.as_deref(), Some("acct"));
            if !e.kind.as_str().starts_with("rental_") {
                continue;
            }
            let id = e.data["rental_id"].as_str();
            prop_assert!(id.is_some(), "rental event without rental_id: {:?}", e);
            let id = id.unwrap_or_default().to_string();
            prop_assert!(e.data["gpus"].is_array(), "{:?}", e);
            let gpu_type = e.data["gpu_type"].as_str().unwrap_or("");
            prop_assert!(["D", "I", "R", "?"].contains(&gpu_type), "{:?}", e);
            prop_assert!(!self.ended.contains(&id), "event after rental_end: {:?}", e);
            match e.kind {
                EventKind::RentalStart => {
                    prop_assert!(self.seen.insert(id.clone()), "restarted id {}", id);
                    self.live.insert(id);
                }
                EventKind::RentalEnd => {
                    prop_assert!(self.live.remove(&id), "end of unknown rental {}", id);
                    self.ended.insert(id);
                    prop_assert!(e.data["duration_seconds"].is_u64(), "{:?}", e);
                    prop_assert!(e.data["estimated_earnings"]["total"].is_f64(), "{:?}", e);
                }
                _ => prop_assert!(self.live.contains(&id), "event for unknown rental {}", id),
            }
        }
        // Rentals in the state: the live ones, plus new ones that were adopted silently.
        let in_state: BTreeSet<String> =
            state.rentals.rentals.iter().map(|r| r.id.clone()).collect();
        for gone in self.live.difference(&in_state) {
            prop_assert!(false, "rental {} vanished without rental_end", gone);
        }
        for r in &state.rentals.rentals {
            if !self.live.contains(&r.id) {
                prop_assert!(r.adopted, "rental {} appeared without rental_start", r.id);
                prop_assert!(self.seen.insert(r.id.clone()), "adopted id reused {}", r.id);
                self.live.insert(r.id.clone());
            }
        }
        self.observed.insert(now);
        let mut held = BTreeSet::new();
        for r in state
            .rentals
            .rentals
            .iter()
            .filter(|r| r.status == RentalStatus::Running)
        {
            prop_assert!(!r.gpus.is_empty(), "running rental without GPUs {}", r.id);
            for g in &r.gpus {
                prop_assert!(held.insert(*g), "GPU {} held twice", g);
            }
        }
        Ok(())
    }
}

fn run(rules: &MachineRules, steps: &[Step], first: &Value) -> Result<(), TestCaseError> {
    let start = DateTime::parse_from_rfc3339("2026-11-22T19:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut now = start;
    let mut ledger = Ledger::default();
    let obs = Observation {
        account: "acct",
        now,
        rules,
    };
    let (mut state, events) = observe_machine(None, &machine(first), &obs, Adoption::FirstStart);
    ledger.check_step(None, &state, &events, now)?;
    let mut last_row = first.clone();
    for step in steps {
        let (advance, outcome) = match step {
            Step::Observe { row, advance } => (*advance, Some(row)),
            Step::Missing { lookup, advance } => (*advance, lookup.then_some(&last_row)),
        };
        now += chrono::Duration::seconds(advance);
        let obs = Observation {
            account: "acct",
            now,
            rules,
        };
        let run_once = |prev: &MachineState| match step {
            Step::Observe { row, .. } => {
                observe_machine(Some(prev), &machine(row), &obs, Adoption::Running)
            }
            Step::Missing { .. } => {
                let lookup = outcome.map(machine);
                machine_missing(prev, lookup.as_ref(), &obs)
            }
        };
        let (next, events) = run_once(&state);
        // Crash safety: the same observation from the same (reloaded) state gives the same result.
        prop_assert_eq!(run_once(&state), (next.clone(), events.clone()));
        let reloaded: MachineState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        let (again, again_events) = run_once(&reloaded);
        prop_assert_eq!(&again_events, &events);
        prop_assert_eq!(&again, &next);
        ledger.check_step(Some(&state), &next, &events, now)?;
        if let Step::Observe { row, .. } = step {
            last_row = row.clone();
        }
        state = next;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_rows_never_panic_and_events_stay_coherent(
        rules in rules(),
        first in row(),
        steps in prop::collection::vec(step(), 1..30),
    ) {
        run(&rules, &steps, &first)?;
    }
}

/// Rows whose counters agree with the tokens (one rental per token run, disk per rental), so the
/// pause/resume/preempt paths are exercised often, not only the garbage ones.
fn coherent_row() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(token(), 4),
        0i64..3,
        0i64..3,
        prop::bool::ANY,
    )
        .prop_map(|(tokens, stored_d, stored_other, disk_null)| {
            let mut runs: Vec<&str> = Vec::new();
            let mut prev = "x";
            for t in &tokens {
                if *t != "x" && *t != "X" && *t != prev {
                    runs.push(t);
                }
                prev = t;
            }
            let running = runs.len() as i64;
            let rod = runs.iter().filter(|t| **t == "D").count() as i64;
            let resident = running + stored_d + stored_other;
            let on_demand = rod + stored_d;
            let disk = if disk_null {
                Value::Null
            } else {
                json!(resident * 10)
            };
            json!({
                "id": 777, "hostname": "rig-01", "gpu_name": "RTX 4090", "num_gpus": 4,
                "gpu_occupancy": tokens.join(" "), "current_rentals_running": running,
                "current_rentals_running_on_demand": rod, "current_rentals_resident": resident,
                "current_rentals_on_demand": on_demand, "alloc_disk_space": disk, "timeout": 0,
                "listed_gpu_cost": 0.43, "min_bid_price": 0.3, "listed_storage_cost": 0.3,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn coherent_rows_keep_rental_events_coherent(
        first in coherent_row(),
        rows in prop::collection::vec(coherent_row(), 1..30),
    ) {
        let steps: Vec<Step> = rows.into_iter().map(|row| Step::Observe { row, advance: 30 }).collect();
        run(&MachineRules::default(), &steps, &first)?;
    }
}

/// One renter's block: its type token and its length; `gap` idle GPUs before it.
#[derive(Debug, Clone)]
struct Block {
    token: &'static str,
    gap: usize,
    len: usize,
}

/// Blocks laid out left to right; a block of the same type as the one before it gets at least
/// one idle GPU in between (without one, two renters of one type are indistinguishable).
fn blocks() -> impl Strategy<Value = (Vec<(&'static str, Vec<u32>)>, usize)> {
    let block = (
        prop_oneof![Just("D"), Just("I"), Just("R")],
        0usize..3,
        1usize..5,
    )
        .prop_map(|(token, gap, len)| Block { token, gap, len });
    (prop::collection::vec(block, 1..5), 0usize..3).prop_map(|(blocks, tail)| {
        let mut at = 0usize;
        let mut out: Vec<(&'static str, Vec<u32>)> = Vec::new();
        for b in blocks {
            let same_type = out.last().is_some_and(|(t, _)| *t == b.token);
            at += if same_type { b.gap.max(1) } else { b.gap };
            out.push((b.token, (at..at + b.len).map(|g| g as u32).collect()));
            at += b.len;
        }
        (out, at + tail)
    })
}

/// A row with `live` of `blocks` occupied and counters that agree (every block one rental).
fn block_row(blocks: &[(&'static str, Vec<u32>)], live: &[bool], num_gpus: usize) -> Machine {
    let mut tokens = vec!["x"; num_gpus];
    let (mut running, mut on_demand) = (0, 0);
    for ((token, gpus), _) in blocks.iter().zip(live).filter(|(_, l)| **l) {
        running += 1;
        on_demand += i64::from(*token == "D");
        for g in gpus {
            tokens[*g as usize] = token;
        }
    }
    machine(&json!({
        "id": 777, "hostname": "rig-01", "gpu_name": "RTX 4090", "num_gpus": num_gpus,
        "gpu_occupancy": tokens.join(" "), "current_rentals_running": running,
        "current_rentals_running_on_demand": on_demand, "current_rentals_resident": running,
        "current_rentals_on_demand": on_demand, "alloc_disk_space": null, "timeout": 0,
        "listed_gpu_cost": 0.43, "min_bid_price": 0.3, "bid_gpu_cost": 0.35,
        "listed_storage_cost": 0.3,
    }))
}

fn gpus_of(e: &Event) -> Vec<u32> {
    e.data["gpus"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64())
                .map(|g| g as u32)
                .collect()
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn renters_starting_together_are_their_blocks_and_ends_release_the_same_blocks(
        (blocks, num_gpus) in blocks(),
        end_order in any::<u64>(),
    ) {
        let rules = MachineRules::default();
        let start = DateTime::parse_from_rfc3339("2026-11-22T19:00:00Z").unwrap().with_timezone(&Utc);
        let observe = |state: Option<&MachineState>, live: &[bool], step: i64| {
            let obs = Observation {
                account: "acct",
                now: start + chrono::Duration::seconds(30 * step),
                rules: &rules,
            };
            let adoption = if state.is_none() { Adoption::FirstStart } else { Adoption::Running };
            observe_machine(state, &block_row(&blocks, live, num_gpus), &obs, adoption)
        };
        let k = blocks.len();
        let (state, events) = observe(None, &vec![false; k], 0);
        prop_assert!(events.is_empty());
        // All k renters start in one poll, the counters up by k.
        let (mut state, events) = observe(Some(&state), &vec![true; k], 1);
        prop_assert!(events.iter().all(|e| e.kind == EventKind::RentalStart), "{:?}", events);
        let started: Vec<(String, Vec<u32>)> = events
            .iter()
            .map(|e| (e.data["gpu_type"].as_str().unwrap_or("").to_string(), gpus_of(e)))
            .collect();
        let expected: Vec<(String, Vec<u32>)> =
            blocks.iter().map(|(t, g)| (t.to_string(), g.clone())).collect();
        prop_assert_eq!(&started, &expected);
        let rental_of: Vec<String> = events
            .iter()
            .map(|e| e.data["rental_id"].as_str().unwrap_or("").to_string())
            .collect();
        // The renters leave one by one in a random order; each end names its own block.
        let mut order: Vec<usize> = (0..k).collect();
        let mut seed = end_order;
        for i in (1..k).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let mut live = vec![true; k];
        for (step, gone) in order.into_iter().enumerate() {
            live[gone] = false;
            let (next, events) = observe(Some(&state), &live, 2 + step as i64);
            prop_assert_eq!(events.len(), 1, "{:?}", events);
            prop_assert_eq!(events[0].kind, EventKind::RentalEnd);
            prop_assert_eq!(events[0].data["rental_id"].as_str(), Some(rental_of[gone].as_str()));
            prop_assert_eq!(gpus_of(&events[0]), blocks[gone].1.clone());
            state = next;
        }
        prop_assert!(state.rentals.rentals.is_empty());
    }
}
