//! Table tests, one (or a few) per rule of the module docs.

use super::*;
use crate::event::Event;
use serde_json::{json, Value};

pub(super) fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T19:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(seconds)
}

/// An idle 4-GPU machine; `patch` overrides fields.
pub(super) fn row(patch: Value) -> Machine {
    let mut base = json!({
        "id": 12345, "machine_id": 12345, "hostname": "rig-01", "gpu_name": "RTX 4090",
        "num_gpus": 4, "listed": true, "gpu_occupancy": "x x x x ",
        "current_rentals_running": 0, "current_rentals_running_on_demand": 0,
        "current_rentals_resident": 0, "current_rentals_on_demand": 0,
        "alloc_disk_space": null, "timeout": 0, "error_description": null,
        "verification": "verified", "num_reports": null, "num_recent_reports": null,
        "machine_maintenance": null, "clients": [],
        "listed_gpu_cost": 0.43, "min_bid_price": 0.3, "bid_gpu_cost": 0.35,
        "listed_storage_cost": 0.3
    });
    if let (Value::Object(b), Value::Object(p)) = (&mut base, patch) {
        for (k, v) in p {
            b.insert(k, v);
        }
    }
    serde_json::from_value(base).unwrap()
}

/// The rental fields of a row: occupancy, running, running_on_demand, resident, on_demand, disk.
pub(super) fn rent(
    occ: &str,
    running: i64,
    rod: i64,
    resident: i64,
    od: i64,
    disk: Option<f64>,
) -> Value {
    json!({
        "gpu_occupancy": occ, "current_rentals_running": running,
        "current_rentals_running_on_demand": rod, "current_rentals_resident": resident,
        "current_rentals_on_demand": od, "alloc_disk_space": disk,
    })
}

pub(super) fn merge(a: Value, b: Value) -> Value {
    let mut a = a;
    if let (Value::Object(x), Value::Object(y)) = (&mut a, b) {
        for (k, v) in y {
            x.insert(k, v);
        }
    }
    a
}

/// Drives one machine through polls 30 s apart.
struct Sim {
    state: Option<MachineState>,
    rules: MachineRules,
    clock: i64,
    log: Vec<Event>,
}

impl Sim {
    fn new(rules: MachineRules) -> Sim {
        Sim {
            state: None,
            rules,
            clock: 0,
            log: Vec::new(),
        }
    }

    fn start(first: Value) -> Sim {
        let mut sim = Sim::new(MachineRules::default());
        let events = sim.poll_with(first, Adoption::FirstStart);
        assert!(events.is_empty(), "first start is silent: {events:?}");
        sim
    }

    fn poll_with(&mut self, patch: Value, adoption: Adoption) -> Vec<Event> {
        let obs = Observation {
            account: "alice",
            now: t(self.clock),
            rules: &self.rules,
        };
        let (state, events) = observe_machine(self.state.as_ref(), &row(patch), &obs, adoption);
        self.state = Some(state);
        self.clock += 30;
        self.log.extend(events.clone());
        events
    }

    fn poll(&mut self, patch: Value) -> Vec<Event> {
        self.poll_with(patch, Adoption::Running)
    }

    fn missing(&mut self, lookup: Option<Value>) -> Vec<Event> {
        let obs = Observation {
            account: "alice",
            now: t(self.clock),
            rules: &self.rules,
        };
        let lookup = lookup.map(row);
        let (state, events) = machine_missing(self.state.as_ref().unwrap(), lookup.as_ref(), &obs);
        self.state = Some(state);
        self.clock += 30;
        self.log.extend(events.clone());
        events
    }

    fn state(&self) -> &MachineState {
        self.state.as_ref().unwrap()
    }

    fn rental(&self, id: &str) -> &Rental {
        self.state().rentals.get(id).unwrap()
    }
}

/// (kind, rental id or "", gpus) of each event, for compact assertions.
fn brief(events: &[Event]) -> Vec<(String, String, Vec<u64>)> {
    events
        .iter()
        .map(|e| {
            let id = e.data["rental_id"].as_str().unwrap_or("").to_string();
            let gpus = e.data["gpus"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            (e.kind.as_str().to_string(), id, gpus)
        })
        .collect()
}

fn b(kind: &str, id: &str, gpus: &[u64]) -> (String, String, Vec<u64>) {
    (kind.to_string(), id.to_string(), gpus.to_vec())
}

fn idle() -> Value {
    rent("x x x x", 0, 0, 0, 0, None)
}

// ---- input hygiene ----

#[test]
fn occupancy_parsing_pads_keeps_extras_and_types_unknown_tokens() {
    use GpuType::*;
    assert_eq!(
        parse_occupancy("D D x x ", Some(4)),
        vec![Some(OnDemand), Some(OnDemand), None, None]
    );
    assert_eq!(parse_occupancy("", Some(2)), vec![None, None]);
    assert_eq!(
        parse_occupancy(" I\t?  R\n", Some(5)),
        vec![
            Some(Interruptible),
            Some(Unknown),
            Some(Reserved),
            None,
            None
        ]
    );
    assert_eq!(
        parse_occupancy("d X Z", None),
        vec![Some(OnDemand), None, Some(Unknown)]
    );
    assert_eq!(parse_occupancy("D D D", Some(2)).len(), 3);
    assert_eq!(parse_occupancy("", Some(u64::MAX)).len(), MAX_GPUS);
    assert_eq!(
        format_occupancy(&parse_occupancy("D  I x", Some(4))),
        "D I x x"
    );
}

#[test]
fn counters_treat_null_as_zero_and_clamp_derived_counts() {
    let r = row(
        json!({"current_rentals_running": null, "current_rentals_running_on_demand": 3,
        "current_rentals_resident": -4, "current_rentals_on_demand": "2"}),
    );
    let c = Counters::from_row(&r);
    assert_eq!(
        c,
        Counters {
            running: 0,
            running_on_demand: 3,
            resident: 0,
            on_demand: 2
        }
    );
    assert_eq!(c.running_of(Class::Other), 0);
    assert_eq!(c.stored_of(Class::OnDemand), 0);
    assert_eq!(c.stored_of(Class::Other), 1);
}

#[test]
fn rules_from_account_compile_patterns_and_reject_bad_ones() {
    let url = url::Url::parse("http://127.0.0.1:1").unwrap();
    let mut cfg = AccountConfig::with_defaults("alice", "k", url);
    cfg.ignore_errors = vec!["does not support VMs".into()];
    let rules = MachineRules::from_account(&cfg).unwrap();
    assert_eq!(rules.offline_grace, Duration::from_secs(120));
    assert_eq!(rules.error_repeat, Duration::from_secs(6 * 3600));
    assert_eq!(rules.recover_after_polls, 2);
    assert!(rules.is_ignored("Error: machine does not support VMs."));
    cfg.ignore_errors = vec!["(unclosed".into()];
    assert!(MachineRules::from_account(&cfg).is_err());
}

// ---- rental start, split, storage ----

#[test]
fn rental_start_carries_gpus_type_rates_storage_and_deterministic_ids() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(rent("D D x x", 1, 1, 1, 1, Some(50.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_start", "m12345-0001", &[0, 1])]
    );
    let e = &events[0];
    assert_eq!(e.id, "alice:m12345:1");
    assert_eq!(e.account.as_deref(), Some("alice"));
    assert_eq!(
        e.subject,
        Subject::Machine {
            id: 12345,
            name: Some("rig-01".into())
        }
    );
    assert_eq!(e.time, t(30));
    assert_eq!(e.since, Some(t(0)));
    assert_eq!(e.title, "New rental on rig-01");
    assert_eq!(e.text, "2x RTX 4090 on-demand @ $0.43/GPU/h, 50 GB");
    assert_eq!(e.data["gpu_type"], "D");
    assert_eq!(e.data["rate_per_gpu_hour"], 0.43);
    assert_eq!(e.data["storage_gb"], 50.0);
    assert_eq!(e.data["storage_rate_per_gb_month"], 0.3);
    assert_eq!(sim.state().event_seq, 1);
}

#[test]
fn two_renters_in_one_poll_become_two_rentals_sharing_the_disk() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(rent("D D D D", 2, 2, 2, 2, Some(80.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_start", "m12345-0001", &[0, 1]),
            b("rental_start", "m12345-0002", &[2, 3])
        ]
    );
    assert_eq!(events[0].data["storage_gb"], 40.0);
    assert_eq!(events[1].data["storage_gb"], 40.0);
    assert_eq!(events[0].id, "alice:m12345:1");
    assert_eq!(events[1].id, "alice:m12345:2");
}

#[test]
fn uneven_split_gives_larger_chunks_first_and_disk_by_gpu_count() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(rent("I I I x", 2, 0, 2, 0, Some(30.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_start", "m12345-0001", &[0, 1]),
            b("rental_start", "m12345-0002", &[2])
        ]
    );
    assert_eq!(events[0].data["storage_gb"], 20.0);
    assert_eq!(events[1].data["storage_gb"], 10.0);
}

/// A machine of `n` idle GPUs.
fn idle_n(n: usize) -> Value {
    merge(
        rent(&vec!["x"; n].join(" "), 0, 0, 0, 0, None),
        json!({"num_gpus": n}),
    )
}

/// Rentals started by one poll from an idle `n`-GPU machine: (type, GPUs) in GPU order.
fn started_blocks(n: usize, occ: &str, running: i64, on_demand: i64) -> Vec<(String, Vec<u64>)> {
    let mut sim = Sim::start(idle_n(n));
    let patch = merge(
        rent(occ, running, on_demand, running, on_demand, None),
        json!({"num_gpus": n}),
    );
    sim.poll(patch)
        .iter()
        .map(|e| {
            assert_eq!(e.kind, EventKind::RentalStart, "{e:?}");
            let gpus = e.data["gpus"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_u64)
                .collect();
            (e.data["gpu_type"].as_str().unwrap().to_string(), gpus)
        })
        .collect()
}

#[test]
fn renters_starting_together_are_told_apart_by_their_blocks() {
    // (what, GPUs, occupancy, running, running_on_demand, expected blocks)
    type Case = (
        &'static str,
        usize,
        &'static str,
        i64,
        i64,
        Vec<(&'static str, Vec<u64>)>,
    );
    let cases: Vec<Case> = vec![
        (
            "2 + 3 with an idle GPU between",
            6,
            "D D x D D D",
            2,
            2,
            vec![("D", vec![0, 1]), ("D", vec![3, 4, 5])],
        ),
        (
            "3 + 2 with an idle GPU between",
            6,
            "D D D x D D",
            2,
            2,
            vec![("D", vec![0, 1, 2]), ("D", vec![4, 5])],
        ),
        (
            "1 + 4 with two idle GPUs between",
            8,
            "I x x I I I I x",
            2,
            0,
            vec![("I", vec![0]), ("I", vec![3, 4, 5, 6])],
        ),
        (
            "2 + 3 side by side, told apart by their types",
            5,
            "D D I I I",
            2,
            1,
            vec![("D", vec![0, 1]), ("I", vec![2, 3, 4])],
        ),
        (
            "3 + 1 side by side, interruptible and reserved",
            4,
            "I I I R",
            2,
            0,
            vec![("I", vec![0, 1, 2]), ("R", vec![3])],
        ),
        (
            "1 + 3 + 2 with gaps",
            8,
            "D x D D D x D D",
            3,
            3,
            vec![("D", vec![0]), ("D", vec![2, 3, 4]), ("D", vec![6, 7])],
        ),
        (
            "4 + 1 + 2 with gaps",
            10,
            "I I I I x I x x I I",
            3,
            0,
            vec![("I", vec![0, 1, 2, 3]), ("I", vec![5]), ("I", vec![8, 9])],
        ),
        (
            "2 + 1 + 3 side by side, three types",
            6,
            "D D R I I I",
            3,
            1,
            vec![("D", vec![0, 1]), ("R", vec![2]), ("I", vec![3, 4, 5])],
        ),
        (
            "a gap of another type between two blocks of one type",
            6,
            "D D I D D D",
            3,
            2,
            vec![("D", vec![0, 1]), ("I", vec![2]), ("D", vec![3, 4, 5])],
        ),
        (
            "more rentals than runs: the largest run is split",
            7,
            "D D D D x D D",
            3,
            3,
            vec![("D", vec![0, 1]), ("D", vec![2, 3]), ("D", vec![5, 6])],
        ),
        (
            "counters say fewer rentals than runs: still one per run",
            6,
            "D D x D D D",
            1,
            1,
            vec![("D", vec![0, 1]), ("D", vec![3, 4, 5])],
        ),
    ];
    for (what, n, occ, running, rod, expected) in cases {
        let expected: Vec<(String, Vec<u64>)> = expected
            .into_iter()
            .map(|(t, g)| (t.to_string(), g))
            .collect();
        assert_eq!(started_blocks(n, occ, running, rod), expected, "{what}");
    }
}

#[test]
fn an_end_releases_the_rental_that_held_exactly_those_gpus() {
    // 2 + 3 with a gap start together; the 3-GPU renter leaves, then the 2-GPU one.
    let mut sim = Sim::start(idle_n(6));
    let six = |occ: &str, running: i64| {
        merge(
            rent(occ, running, running, running, running, None),
            json!({"num_gpus": 6}),
        )
    };
    assert_eq!(
        brief(&sim.poll(six("D D x D D D", 2))),
        vec![
            b("rental_start", "m12345-0001", &[0, 1]),
            b("rental_start", "m12345-0002", &[3, 4, 5])
        ]
    );
    assert_eq!(
        brief(&sim.poll(six("D D x x x x", 1))),
        vec![b("rental_end", "m12345-0002", &[3, 4, 5])]
    );
    assert_eq!(sim.rental("m12345-0001").gpus, vec![0, 1]);
    assert_eq!(
        brief(&sim.poll(six("x x x x x x", 0))),
        vec![b("rental_end", "m12345-0001", &[0, 1])]
    );
}

#[test]
fn contiguous_runs_and_extra_rentals_split_the_largest_run() {
    assert_eq!(
        assign::contiguous_runs(&[0, 1, 3, 4, 5, 9]),
        vec![vec![0, 1], vec![3, 4, 5], vec![9]]
    );
    assert!(assign::contiguous_runs(&[]).is_empty());
    assert_eq!(assign::share_extra_rentals(&[2, 3], 0), vec![1, 1]);
    assert_eq!(assign::share_extra_rentals(&[4, 2], 1), vec![2, 1]);
    assert_eq!(assign::share_extra_rentals(&[6, 2], 2), vec![3, 1]);
    assert_eq!(assign::share_extra_rentals(&[4, 4], 1), vec![2, 1]);
    assert_eq!(assign::share_extra_rentals(&[1, 2], 5), vec![1, 2]);
}

#[test]
fn counters_not_rising_keep_one_rental_per_token_group() {
    // vast-monitor's merge is kept when the counters give no evidence of two renters.
    let mut sim = Sim::start(idle());
    let events = sim.poll(rent("D D I I", 0, 0, 0, 0, Some(10.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_start", "m12345-0001", &[0, 1]),
            b("rental_start", "m12345-0002", &[2, 3])
        ]
    );
    assert_eq!(events[1].data["gpu_type"], "I");
}

#[test]
fn clients_storage_for_the_exact_gpu_set_wins_over_the_disk_share() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(merge(
        rent("D D D x", 2, 2, 2, 2, Some(100.0)),
        json!({"clients": [{"gpu_ids": [2], "disk_space": 70}]}),
    ));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_start", "m12345-0001", &[0, 1]),
            b("rental_start", "m12345-0002", &[2])
        ]
    );
    assert_eq!(events[0].data["storage_gb"], 30.0);
    assert_eq!(events[1].data["storage_gb"], 70.0);
}

#[test]
fn unknown_tokens_start_rentals_of_unknown_type_at_zero_rate() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(rent("Z x x x", 1, 0, 1, 0, None));
    assert_eq!(brief(&events), vec![b("rental_start", "m12345-0001", &[0])]);
    assert_eq!(events[0].data["gpu_type"], "?");
    assert_eq!(events[0].data["rate_per_gpu_hour"], 0.0);
}

// ---- pause, resume, end ----

fn running_d() -> Sim {
    let mut sim = Sim::start(idle());
    sim.poll(rent("D D x x", 1, 1, 1, 1, Some(50.0)));
    sim
}

#[test]
fn gpus_freed_with_storage_kept_and_counters_agreeing_is_a_pause() {
    let mut sim = running_d();
    let events = sim.poll(rent("x x x x", 0, 0, 1, 1, Some(50.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_pause", "m12345-0001", &[0, 1])]
    );
    assert_eq!(events[0].title, "Rental paused on rig-01");
    assert_eq!(events[0].data["status"], "paused");
    assert_eq!(sim.rental("m12345-0001").status, RentalStatus::Paused);
}

#[test]
fn gpus_freed_without_a_stored_rental_in_the_counters_is_an_end() {
    // vast-monitor [run]: disk unchanged but counters unchanged -> END.
    let mut sim = running_d();
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, Some(50.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_end", "m12345-0001", &[0, 1])]
    );
}

#[test]
fn disk_dropping_by_the_rentals_storage_is_an_end_even_with_pause_budget() {
    let mut sim = running_d();
    let events = sim.poll(rent("x x x x", 0, 0, 1, 1, Some(0.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_end", "m12345-0001", &[0, 1])]
    );
}

#[test]
fn null_disk_on_both_sides_counts_as_unchanged() {
    let mut sim = Sim::start(idle());
    sim.poll(rent("D x x x", 1, 1, 1, 1, None));
    let events = sim.poll(rent("x x x x", 0, 0, 1, 1, None));
    assert_eq!(brief(&events), vec![b("rental_pause", "m12345-0001", &[0])]);
}

#[test]
fn paused_rental_getting_its_gpus_back_resumes() {
    let mut sim = running_d();
    sim.poll(rent("x x x x", 0, 0, 1, 1, Some(50.0)));
    let events = sim.poll(rent("D D x x", 1, 1, 1, 1, Some(50.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_resume", "m12345-0001", &[0, 1])]
    );
    assert_eq!(events[0].title, "Rental resumed on rig-01");
    assert_eq!(sim.rental("m12345-0001").status, RentalStatus::Running);
}

#[test]
fn two_paused_rentals_resuming_together_both_resume() {
    let mut sim = Sim::start(idle());
    sim.poll(rent("D D D D", 2, 2, 2, 2, Some(80.0)));
    let events = sim.poll(rent("x x x x", 0, 0, 2, 2, Some(80.0)));
    assert_eq!(events.len(), 2);
    let events = sim.poll(rent("D D D D", 2, 2, 2, 2, Some(80.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_resume", "m12345-0001", &[0, 1]),
            b("rental_resume", "m12345-0002", &[2, 3])
        ]
    );
}

#[test]
fn paused_rental_and_new_renter_in_one_poll_resume_and_start() {
    let mut sim = running_d();
    sim.poll(rent("x x x x", 0, 0, 1, 1, Some(50.0)));
    let events = sim.poll(rent("D D D x", 2, 2, 2, 2, Some(60.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_resume", "m12345-0001", &[0, 1]),
            b("rental_start", "m12345-0002", &[2])
        ]
    );
    assert_eq!(events[1].data["storage_gb"], 10.0);
}

#[test]
fn rental_end_reports_duration_and_estimated_earnings() {
    let mut sim = running_d(); // started at t(30)
    sim.clock = 30 + 3600;
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, Some(0.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_end", "m12345-0001", &[0, 1])]
    );
    let d = &events[0].data;
    assert_eq!(d["duration_seconds"], 3600);
    assert_eq!(d["estimated_earnings"]["gpu"], 0.86);
    let storage = (0.3 * 50.0 / 730.0 * 1e6_f64).round() / 1e6;
    assert_eq!(d["estimated_earnings"]["storage"], storage);
    assert_eq!(
        d["estimated_earnings"]["total"],
        ((0.86 + 0.3 * 50.0 / 730.0) * 1e6_f64).round() / 1e6
    );
    assert_eq!(d["ended_from"], "running");
    assert_eq!(events[0].title, "Rental ended on rig-01");
    assert!(events[0].text.contains("ran 1h"), "{}", events[0].text);
    assert!(sim.state().rentals.rentals.is_empty());
}

#[test]
fn earnings_stop_for_gpus_while_paused_but_storage_keeps_accruing() {
    let mut sim = running_d(); // t(30)
    sim.clock = 30 + 3600;
    sim.poll(rent("x x x x", 0, 0, 1, 1, Some(50.0))); // paused at t(3630)
    sim.clock = 30 + 2 * 3600;
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, None));
    assert_eq!(
        brief(&events),
        vec![b("rental_end", "m12345-0001", &[0, 1])]
    );
    let d = &events[0].data;
    assert_eq!(d["ended_from"], "paused");
    assert_eq!(d["reason"], "storage_released");
    assert_eq!(d["estimated_earnings"]["gpu"], 0.86);
    assert_eq!(
        d["estimated_earnings"]["storage"],
        (2.0 * 0.3 * 50.0 / 730.0 * 1e6_f64).round() / 1e6
    );
}

#[test]
fn partial_release_shrinks_the_rental_silently_and_the_end_names_what_it_held() {
    let mut sim = Sim::start(idle());
    sim.poll(rent("D D D D", 1, 1, 1, 1, Some(40.0)));
    let events = sim.poll(rent("D D x x", 1, 1, 1, 1, Some(40.0)));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(sim.rental("m12345-0001").gpus, vec![0, 1]);
    assert_eq!(
        sim.rental("m12345-0001")
            .gpu_segment
            .as_ref()
            .unwrap()
            .gpu_count,
        2
    );
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, None));
    assert_eq!(
        brief(&events),
        vec![b("rental_end", "m12345-0001", &[0, 1])]
    );
}

#[test]
fn two_releases_in_one_poll_pause_the_one_whose_storage_stayed() {
    let mut sim = Sim::start(idle());
    sim.poll(rent("D D x x", 1, 1, 1, 1, Some(50.0)));
    sim.poll(rent("D D D x", 2, 2, 2, 2, Some(70.0))); // second: 20 GB on [2]
                                                       // Both freed; one more stored on-demand rental; disk fell by 50: the first ended, the second paused.
    let events = sim.poll(rent("x x x x", 0, 0, 1, 1, Some(20.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_end", "m12345-0001", &[0, 1]),
            b("rental_pause", "m12345-0002", &[2])
        ]
    );
}

// ---- disk-only ends ----

fn two_paused() -> Sim {
    let mut sim = Sim::start(idle());
    sim.poll(rent("D D x x", 1, 1, 1, 1, Some(50.0)));
    sim.poll(rent("D D I x", 2, 1, 2, 1, Some(70.0)));
    let events = sim.poll(rent("x x x x", 0, 0, 2, 1, Some(70.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_pause", "m12345-0001", &[0, 1]),
            b("rental_pause", "m12345-0002", &[2])
        ]
    );
    sim
}

#[test]
fn disk_only_drop_ends_the_stored_rental_whose_storage_matches() {
    let mut sim = two_paused();
    let events = sim.poll(rent("x x x x", 0, 0, 1, 1, Some(50.0)));
    assert_eq!(brief(&events), vec![b("rental_end", "m12345-0002", &[2])]);
    assert_eq!(events[0].data["ended_from"], "paused");
    assert!(sim.state().rentals.get("m12345-0001").is_some());
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, None));
    assert_eq!(
        brief(&events),
        vec![b("rental_end", "m12345-0001", &[0, 1])]
    );
}

#[test]
fn disk_only_drop_of_two_rentals_ends_both() {
    let mut sim = two_paused();
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, Some(0.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_end", "m12345-0001", &[0, 1]),
            b("rental_end", "m12345-0002", &[2])
        ]
    );
}

#[test]
fn without_disk_data_the_resident_counter_ends_the_only_stored_rental() {
    let mut sim = Sim::start(idle());
    sim.poll(rent("D x x x", 1, 1, 1, 1, None));
    sim.poll(rent("x x x x", 0, 0, 1, 1, None));
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, None));
    assert_eq!(brief(&events), vec![b("rental_end", "m12345-0001", &[0])]);
}

#[test]
fn unmatched_disk_drop_with_several_stored_rentals_ends_nothing() {
    let mut sim = two_paused();
    let events = sim.poll(rent("x x x x", 0, 0, 2, 1, Some(40.0)));
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(sim.state().rentals.rentals.len(), 2);
}

// ---- preemption ----

fn running_i() -> Sim {
    let mut sim = Sim::start(idle());
    sim.poll(rent("x x I x", 1, 0, 1, 0, Some(20.0)));
    sim
}

#[test]
fn i_to_d_flip_is_a_preempt_plus_a_start_not_an_end() {
    let mut sim = running_i();
    let events = sim.poll(rent("x x D x", 1, 1, 2, 1, Some(70.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_preempt", "m12345-0001", &[2]),
            b("rental_start", "m12345-0002", &[2])
        ]
    );
    assert_eq!(events[0].data["gpu_type"], "I");
    assert_eq!(events[0].data["by"], "D");
    assert_eq!(events[0].data["status"], "preempted");
    assert_eq!(events[0].severity, crate::event::Severity::Warning);
    assert_eq!(events[1].data["storage_gb"], 50.0);
    assert_eq!(sim.rental("m12345-0001").status, RentalStatus::Preempted);
    assert_eq!(sim.rental("m12345-0001").storage_gb, 20.0);
}

#[test]
fn preempted_rental_getting_its_gpus_back_resumes_without_a_pause_in_between() {
    let mut sim = running_i();
    sim.poll(rent("x x D x", 1, 1, 2, 1, Some(70.0)));
    // The on-demand renter leaves and the interruptible one takes its GPU back in the same poll.
    let events = sim.poll(rent("x x I x", 1, 0, 1, 0, Some(20.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_end", "m12345-0002", &[2]),
            b("rental_resume", "m12345-0001", &[2])
        ]
    );
    assert!(sim.log.iter().all(|e| e.kind != EventKind::RentalPause));
}

#[test]
fn preempted_rental_whose_storage_goes_ends_from_preempted() {
    let mut sim = running_i();
    sim.poll(rent("x x D x", 1, 1, 2, 1, Some(70.0)));
    let events = sim.poll(rent("x x D x", 1, 1, 1, 1, Some(50.0)));
    assert_eq!(brief(&events), vec![b("rental_end", "m12345-0001", &[2])]);
    assert_eq!(events[0].data["ended_from"], "preempted");
}

#[test]
fn d_to_i_flip_pauses_or_ends_the_on_demand_rental_by_the_counters() {
    let mut sim = running_d();
    // The on-demand rental stopped (storage kept) and an interruptible took the GPUs.
    let events = sim.poll(rent("I I x x", 1, 0, 2, 1, Some(60.0)));
    assert_eq!(
        brief(&events),
        vec![
            b("rental_pause", "m12345-0001", &[0, 1]),
            b("rental_start", "m12345-0002", &[0, 1])
        ]
    );
    assert_eq!(events[1].data["storage_gb"], 10.0);
}

// ---- first sight, adoption, added/removed ----

#[test]
fn first_start_adopts_running_and_stored_rentals_silently() {
    let sim = Sim::start(rent("D D I x", 2, 1, 3, 2, Some(80.0)));
    let s = sim.state();
    let summary: Vec<(String, Vec<u32>, GpuType, RentalStatus, bool)> = s
        .rentals
        .rentals
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                r.gpus.clone(),
                r.gpu_type,
                r.status,
                r.adopted,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "m12345-0001".into(),
                vec![0, 1],
                GpuType::OnDemand,
                RentalStatus::Running,
                true
            ),
            (
                "m12345-0002".into(),
                vec![2],
                GpuType::Interruptible,
                RentalStatus::Running,
                true
            ),
            (
                "m12345-0003".into(),
                vec![],
                GpuType::OnDemand,
                RentalStatus::Paused,
                true
            ),
        ]
    );
    assert_eq!(s.event_seq, 0);
    let v = serde_json::to_value(machine_summary(s)).unwrap();
    assert_eq!(v["gpus_total"], 4);
    assert_eq!(v["gpus_occupied"], 3);
    assert_eq!(v["rentals_running"], 2);
    assert_eq!(v["rentals_stored"], 1);
    assert_eq!(v["rentals"][0]["id"], "m12345-0001");
    assert_eq!(v["rentals"][0]["gpu_type"], "D");
    assert_eq!(v["offline"], false);
}

#[test]
fn adopted_stored_rental_with_unknown_gpus_resumes_when_the_counters_confirm() {
    let mut sim = Sim::start(rent("D D x x", 1, 1, 2, 2, Some(80.0)));
    let events = sim.poll(rent("D D D D", 2, 2, 2, 2, Some(80.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_resume", "m12345-0002", &[2, 3])]
    );
    assert_eq!(sim.rental("m12345-0002").gpus, vec![2, 3]);
}

#[test]
fn adopted_stored_rental_is_not_resumed_when_a_new_contract_appears() {
    let mut sim = Sim::start(rent("D D x x", 1, 1, 2, 2, Some(80.0)));
    let events = sim.poll(rent("D D D D", 2, 2, 3, 3, Some(100.0)));
    assert_eq!(
        brief(&events),
        vec![b("rental_start", "m12345-0003", &[2, 3])]
    );
}

#[test]
fn adopted_rental_end_marks_duration_as_a_lower_bound() {
    let mut sim = Sim::start(rent("D x x x", 1, 1, 1, 1, Some(30.0)));
    assert_eq!(sim.rental("m12345-0001").storage_gb, 30.0);
    let events = sim.poll(rent("x x x x", 0, 0, 0, 0, None));
    assert_eq!(brief(&events), vec![b("rental_end", "m12345-0001", &[0])]);
    assert_eq!(events[0].data["adopted"], true);
    assert!(events[0].text.contains("ran over"), "{}", events[0].text);
}

#[test]
fn machine_appearing_while_running_is_added_with_its_rentals_adopted() {
    let mut sim = Sim::new(MachineRules::default());
    let events = sim.poll_with(rent("D D x x", 1, 1, 1, 1, Some(50.0)), Adoption::Running);
    assert_eq!(brief(&events), vec![b("machine_added", "", &[])]);
    assert_eq!(events[0].since, None);
    assert_eq!(events[0].title, "New machine rig-01");
    assert_eq!(events[0].data["rentals"][0]["id"], "m12345-0001");
    assert!(sim.rental("m12345-0001").adopted);
}

#[test]
fn removal_is_confirmed_by_the_lookup_and_reported_once() {
    let mut sim = running_d();
    let events = sim.missing(Some(rent("D D x x", 1, 1, 1, 1, Some(50.0))));
    assert!(events.is_empty(), "a list hiccup is silent: {events:?}");
    let events = sim.missing(None);
    assert_eq!(
        brief(&events),
        vec![
            b("machine_removed", "", &[]),
            b("rental_end", "m12345-0001", &[0, 1])
        ]
    );
    assert_eq!(events[1].data["reason"], "machine_removed");
    assert!(sim.state().removed);
    assert!(sim.missing(None).is_empty());
}

#[test]
fn removed_machine_that_returns_is_added_again_with_fresh_unique_ids() {
    let mut sim = running_d();
    sim.missing(None);
    let seq = sim.state().event_seq;
    let events = sim.poll(rent("D x x x", 1, 1, 1, 1, Some(10.0)));
    assert_eq!(brief(&events), vec![b("machine_added", "", &[])]);
    assert_eq!(events[0].id, format!("alice:m12345:{}", seq + 1));
    assert!(!sim.state().removed);
    assert_eq!(sim.state().rentals.rentals[0].id, "m12345-0002");
}

#[test]
fn a_row_without_occupancy_changes_no_rental() {
    let mut sim = running_d();
    let events = sim.poll(
        json!({"gpu_occupancy": null, "current_rentals_running": null,
        "current_rentals_resident": null, "alloc_disk_space": null}),
    );
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(sim.rental("m12345-0001").status, RentalStatus::Running);
    let events = sim.poll(rent("D D x x", 1, 1, 1, 1, Some(50.0)));
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn first_row_without_occupancy_defers_adoption_to_the_next_row_that_has_it() {
    let mut sim = Sim::start(json!({"gpu_occupancy": null}));
    let events = sim.poll(rent("D D x x", 1, 1, 1, 1, Some(50.0)));
    assert!(events.is_empty(), "{events:?}");
    assert!(sim.rental("m12345-0001").adopted);
}

// ---- offline ----

fn rules_with(f: impl FnOnce(&mut MachineRules)) -> MachineRules {
    let mut r = MachineRules::default();
    f(&mut r);
    r
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn offline_after_the_grace_period_by_the_daemon_clock() {
    let mut sim = Sim::start(idle());
    assert!(sim.poll(json!({"timeout": 20})).is_empty()); // t30: first seen
    assert!(sim.poll(json!({"timeout": 50})).is_empty()); // t60
    assert!(sim.poll(json!({"timeout": 80})).is_empty()); // t90
    let events = sim.poll(json!({"timeout": 110})); // t120: 90 s < 120 s
    assert!(events.is_empty());
    let events = sim.poll(json!({"timeout": 110})); // t150: 120 s
    assert_eq!(kinds(&events), vec!["machine_offline"]);
    assert_eq!(events[0].data["timeout_seconds"], 110);
    assert_eq!(events[0].data["offline_since"], json!(t(30)));
    assert_eq!(events[0].title, "rig-01 is offline");
    assert!(sim.state().is_offline());
    assert!(sim.poll(json!({"timeout": 140})).is_empty(), "no repeat");
}

#[test]
fn offline_at_once_when_the_reported_timeout_exceeds_the_grace() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(json!({"timeout": 300}));
    assert_eq!(kinds(&events), vec!["machine_offline"]);
}

#[test]
fn recovery_needs_consecutive_zero_timeouts_and_reports_the_down_time() {
    let mut sim = Sim::start(idle());
    sim.poll(json!({"timeout": 300})); // t30 offline
    assert!(sim.poll(json!({"timeout": 0})).is_empty()); // t60: 1 of 2
    assert!(sim.poll(json!({"timeout": 5})).is_empty()); // t90: back down, streak reset
    assert!(sim.poll(json!({"timeout": 0})).is_empty()); // t120: 1 of 2
    let events = sim.poll(json!({"timeout": 0})); // t150
    assert_eq!(kinds(&events), vec!["machine_recovered"]);
    assert_eq!(events[0].data["recovered_from"], "offline");
    assert_eq!(events[0].data["down_seconds"], 90);
    assert!(!sim.state().is_offline());
}

#[test]
fn a_timeout_flap_shorter_than_the_grace_sends_nothing() {
    let mut sim = Sim::start(idle());
    for timeout in [30, 0, 0, 30, 0, 0] {
        assert!(sim.poll(json!({ "timeout": timeout })).is_empty());
    }
    assert!(sim.state().offline.pending_since.is_none());
}

#[test]
fn a_single_check_in_clears_a_pending_offline_so_blips_do_not_add_up() {
    // The old rule kept the grace clock across a single clean poll and alerted here at t120.
    let mut sim = Sim::new(rules_with(|r| r.offline_grace = Duration::from_secs(90)));
    sim.poll_with(idle(), Adoption::FirstStart);
    assert!(sim.poll(json!({"timeout": 10})).is_empty()); // t30 first seen
    assert!(sim.poll(json!({"timeout": 0})).is_empty()); // t60 checked in: cleared
    assert!(sim.state().offline.pending_since.is_none());
    assert!(sim.poll(json!({"timeout": 10})).is_empty()); // t90: a new blip
    assert!(sim.poll(json!({"timeout": 10})).is_empty()); // t120: 30 s of it
    assert_eq!(sim.state().offline.pending_since, Some(t(90)));
    let events = sim.poll(json!({"timeout": 10})); // t150: still 60 s < 90 s
    assert!(events.is_empty());
    let events = sim.poll(json!({"timeout": 10})); // t180: 90 s since t90
    assert_eq!(kinds(&events), vec!["machine_offline"]);
    assert_eq!(events[0].data["offline_since"], json!(t(90)));
}

/// Polls `timeouts` at the given gaps (seconds before each poll) and returns every event.
fn run_timeouts(grace: u64, polls: &[(i64, i64)]) -> Vec<Event> {
    let rules = rules_with(|r| r.offline_grace = Duration::from_secs(grace));
    let mut state: Option<MachineState> = None;
    let mut now = 0;
    let mut events = Vec::new();
    for (k, &(gap, timeout)) in polls.iter().enumerate() {
        now += gap;
        let obs = Observation {
            account: "alice",
            now: t(now),
            rules: &rules,
        };
        let adoption = if k == 0 {
            Adoption::FirstStart
        } else {
            Adoption::Running
        };
        let patch = merge(idle(), json!({ "timeout": timeout }));
        let (next, evs) = observe_machine(state.as_ref(), &row(patch), &obs, adoption);
        state = Some(next);
        events.extend(evs);
    }
    events
}

#[test]
fn blips_with_one_clean_poll_between_them_never_alert_whatever_the_timing() {
    // (seconds since the previous poll, reported timeout). Each blip is shorter than the grace
    // (120 s) and followed by one poll where the machine checked in; together they span far more.
    let tables: Vec<(&str, Vec<(i64, i64)>)> = vec![
        (
            "three blips of 12-65 s within two minutes at a 10 s poll",
            vec![
                (0, 0),
                (10, 12),
                (10, 0),
                (10, 20),
                (10, 30),
                (10, 40),
                (10, 0),
                (10, 25),
                (10, 35),
                (10, 45),
                (10, 55),
                (10, 65),
                (10, 0),
                (10, 12),
                (10, 0),
            ],
        ),
        (
            "blips of one poll each at a 30 s poll for ten minutes",
            (0..20)
                .map(|k| (if k == 0 { 0 } else { 30 }, if k % 2 == 1 { 30 } else { 0 }))
                .collect(),
        ),
        (
            "long blips just under the grace, clean polls 5 s apart",
            vec![
                (0, 0),
                (60, 10),
                (59, 70),
                (5, 0),
                (1, 5),
                (118, 100),
                (5, 0),
                (1, 3),
                (60, 60),
                (59, 110),
                (5, 0),
            ],
        ),
        (
            "irregular polls",
            vec![
                (0, 0),
                (7, 3),
                (41, 45),
                (3, 0),
                (90, 80),
                (29, 0),
                (13, 13),
                (100, 119),
                (1, 0),
                (2, 1),
                (2, 0),
            ],
        ),
    ];
    for (what, polls) in tables {
        let events = run_timeouts(120, &polls);
        assert!(events.is_empty(), "{what}: {:?}", kinds(&events));
    }
    // The same pattern without the check-ins is a real outage.
    let events = run_timeouts(120, &[(0, 0), (10, 12), (60, 70), (60, 100)]);
    assert_eq!(kinds(&events), vec!["machine_offline"]);
}

#[test]
fn recover_after_polls_is_configurable_and_null_timeout_changes_nothing() {
    let mut sim = Sim::new(rules_with(|r| r.recover_after_polls = 1));
    sim.poll_with(idle(), Adoption::FirstStart);
    sim.poll(json!({"timeout": 300}));
    assert!(sim.poll(json!({"timeout": null})).is_empty());
    assert!(sim.state().is_offline());
    assert_eq!(
        kinds(&sim.poll(json!({"timeout": 0}))),
        vec!["machine_recovered"]
    );
}

#[test]
fn down_machine_at_first_start_is_reported() {
    let mut sim = Sim::new(MachineRules::default());
    let events = sim.poll_with(json!({"timeout": 600}), Adoption::FirstStart);
    assert_eq!(kinds(&events), vec!["machine_offline"]);
    assert_eq!(events[0].since, None);
    let mut sim = Sim::new(MachineRules::default());
    assert!(sim
        .poll_with(json!({"timeout": 30}), Adoption::FirstStart)
        .is_empty());
    assert!(sim.state().offline.pending_since.is_some());
}

// ---- errors ----

#[test]
fn error_is_reported_on_first_sight_even_when_seen_on_a_single_poll() {
    // The old rule needed the error on two polls in a row and sent nothing for a one-poll error.
    let mut sim = Sim::start(idle());
    let events = sim.poll(json!({"error_description": "CDI failure"})); // t30
    assert_eq!(kinds(&events), vec!["machine_error"]);
    assert_eq!(events[0].data["error"], "CDI failure");
    assert_eq!(events[0].data["repeat"], false);
    assert_eq!(events[0].data["previous"], Value::Null);
    assert_eq!(events[0].data["error_since"], json!(t(30)));
    assert_eq!(events[0].text, "CDI failure");
    assert_eq!(events[0].title, "Error on rig-01");
    assert_eq!(events[0].since, Some(t(0)));
    assert!(sim.poll(json!({"error_description": null})).is_empty()); // t60: 1 of 2
    let events = sim.poll(json!({"error_description": null})); // t90
    assert_eq!(kinds(&events), vec!["machine_recovered"]);
    assert_eq!(events[0].data["recovered_from"], "error");
    assert_eq!(events[0].data["down_seconds"], 30);
    // The error ended between the last poll that showed it and the first that did not.
    assert_eq!(events[0].since, Some(t(30)));
    assert_eq!(events[0].time, t(90));
}

#[test]
fn a_flapping_error_is_one_episode_with_one_alert() {
    let mut sim = Sim::start(idle());
    let err = json!({"error_description": "CDI failure"});
    let clean = json!({"error_description": null});
    let mut log = Vec::new();
    for patch in [
        &err, &clean, &err, &clean, &err, &err, &clean, &err, &clean, &err,
    ] {
        log.extend(sim.poll(patch.clone()));
    }
    assert_eq!(kinds(&log), vec!["machine_error"]);
    assert!(sim.poll(clean.clone()).is_empty());
    let events = sim.poll(clean.clone());
    assert_eq!(kinds(&events), vec!["machine_recovered"]);
    // Down from the first sight (t30) to the first poll of the two clean ones (t330).
    assert_eq!(events[0].data["down_seconds"], 300);
    assert_eq!(events[0].since, Some(t(300)));
}

#[test]
fn reminders_count_from_the_first_alert_across_flaps() {
    let mut sim = Sim::new(rules_with(|r| r.error_repeat = Duration::from_secs(90)));
    sim.poll_with(idle(), Adoption::FirstStart); // t0
    let err = json!({"error_description": "disk failing"});
    let clean = json!({"error_description": null});
    assert_eq!(kinds(&sim.poll(err.clone())), vec!["machine_error"]); // t30
    assert!(sim.poll(err.clone()).is_empty()); // t60
    assert!(sim.poll(clean.clone()).is_empty()); // t90: a flap
    let events = sim.poll(err.clone()); // t120: 90 s after the first alert
    assert_eq!(kinds(&events), vec!["machine_error"]);
    assert_eq!(events[0].data["repeat"], true);
    assert_eq!(events[0].data["error_since"], json!(t(30)));
    // A reminder's window is the episode's: it began after t0.
    assert_eq!(events[0].since, Some(t(0)));
    assert!(sim.poll(err.clone()).is_empty()); // t150
    assert!(sim.poll(err.clone()).is_empty()); // t180
    assert_eq!(kinds(&sim.poll(err.clone())), vec!["machine_error"]); // t210
}

#[test]
fn zero_error_repeat_never_repeats() {
    let mut sim = Sim::new(rules_with(|r| r.error_repeat = Duration::ZERO));
    sim.poll_with(idle(), Adoption::FirstStart);
    let err = json!({"error_description": "x"});
    assert_eq!(kinds(&sim.poll(err.clone())), vec!["machine_error"]);
    for _ in 0..5 {
        assert!(sim.poll(err.clone()).is_empty());
    }
}

#[test]
fn changed_error_text_within_an_episode_is_a_new_alert_naming_the_previous() {
    let mut sim = Sim::start(idle());
    assert_eq!(
        kinds(&sim.poll(json!({"error_description": "A"}))), // t30
        vec!["machine_error"]
    );
    assert!(sim.poll(json!({"error_description": "A"})).is_empty()); // t60
    assert!(sim.poll(json!({"error_description": null})).is_empty()); // t90: flap
    let events = sim.poll(json!({"error_description": "B"})); // t120
    assert_eq!(kinds(&events), vec!["machine_error"]);
    assert_eq!(events[0].data["previous"], "A");
    assert_eq!(events[0].data["repeat"], false);
    assert_eq!(events[0].data["error_since"], json!(t(30)));
    assert_eq!(events[0].since, Some(t(90)));
    assert_eq!(sim.state().alerted_error(), Some("B"));
    assert!(sim.poll(json!({"error_description": ""})).is_empty()); // t150
    let events = sim.poll(json!({"error_description": ""})); // t180
    assert_eq!(kinds(&events), vec!["machine_recovered"]);
    assert_eq!(events[0].data["error"], "B");
    assert_eq!(events[0].data["down_seconds"], 120);
}

#[test]
fn ignored_errors_and_empty_versus_null_send_nothing() {
    let rules = rules_with(|r| {
        r.ignore_errors = vec![Regex::new("does not support VMs").unwrap()];
    });
    let mut sim = Sim::new(rules);
    sim.poll_with(idle(), Adoption::FirstStart);
    for e in [
        json!("Error: machine does not support VMs."),
        json!(""),
        json!(null),
        json!("  "),
        json!(""),
    ] {
        assert!(sim.poll(json!({ "error_description": e })).is_empty());
    }
}

#[test]
fn an_error_turning_into_ignored_noise_ends_the_episode() {
    let rules = rules_with(|r| {
        r.ignore_errors = vec![Regex::new("^noise").unwrap()];
    });
    let mut sim = Sim::new(rules);
    sim.poll_with(idle(), Adoption::FirstStart);
    assert_eq!(
        kinds(&sim.poll(json!({"error_description": "real"}))),
        vec!["machine_error"]
    );
    assert!(sim
        .poll(json!({"error_description": "noise again"}))
        .is_empty());
    assert_eq!(
        kinds(&sim.poll(json!({"error_description": "noise again"}))),
        vec!["machine_recovered"]
    );
}

#[test]
fn recover_after_polls_one_ends_an_error_on_the_first_clean_poll() {
    let mut sim = Sim::new(rules_with(|r| r.recover_after_polls = 1));
    sim.poll_with(idle(), Adoption::FirstStart);
    sim.poll(json!({"error_description": "x"}));
    assert_eq!(
        kinds(&sim.poll(json!({"error_description": null}))),
        vec!["machine_recovered"]
    );
}

#[test]
fn error_present_at_first_start_is_reported_at_once() {
    // The old rule waited for a second poll to confirm it.
    let mut sim = Sim::new(MachineRules::default());
    let err = json!({"error_description": "broken"});
    let events = sim.poll_with(err.clone(), Adoption::FirstStart);
    assert_eq!(kinds(&events), vec!["machine_error"]);
    assert_eq!(events[0].since, None);
    assert!(sim.poll(err).is_empty());
}

// ---- listing, verification, reports, maintenance ----

#[test]
fn listing_changes_fire_both_ways_and_null_keeps_the_last_value() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(json!({"listed": false}));
    assert_eq!(kinds(&events), vec!["machine_unlisted"]);
    assert_eq!(events[0].data["listed"], false);
    assert!(sim.poll(json!({"listed": null})).is_empty());
    assert!(sim.poll(json!({"listed": false})).is_empty());
    assert_eq!(
        kinds(&sim.poll(json!({"listed": true}))),
        vec!["machine_listed"]
    );
}

#[test]
fn verification_change_reports_from_and_to() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(json!({"verification": "deverified"}));
    assert_eq!(kinds(&events), vec!["machine_verification"]);
    assert_eq!(
        events[0].data,
        json!({"from": "verified", "to": "deverified"})
    );
    assert!(sim.poll(json!({"verification": null})).is_empty());
}

#[test]
fn rising_report_counts_fire_and_falling_ones_do_not() {
    let mut sim = Sim::start(idle());
    let events = sim.poll(json!({"num_reports": 1, "num_recent_reports": 1.0}));
    assert_eq!(kinds(&events), vec!["machine_report"]);
    assert_eq!(events[0].data["num_reports"], 1.0);
    assert_eq!(events[0].data["previous"], Value::Null);
    assert!(sim
        .poll(json!({"num_reports": 1, "num_recent_reports": 0.5}))
        .is_empty());
    assert!(sim.poll(json!({"num_reports": null})).is_empty());
    let events = sim.poll(json!({"num_reports": 1, "num_recent_reports": 0.8}));
    assert_eq!(
        kinds(&events),
        vec!["machine_report"],
        "recent alone counts"
    );
    assert_eq!(
        kinds(&sim.poll(json!({"num_reports": 2}))),
        vec!["machine_report"]
    );
}

#[test]
fn maintenance_changes_fire_for_scheduled_changed_and_cleared() {
    let window = json!([{"id": 1, "machine_id": 12345, "start_time": 1795500000.0,
        "duration_hours": 2.0, "maintenance_category": "gpu", "maintenance_reason": "swap"}]);
    let mut sim = Sim::start(idle());
    assert!(sim.poll(json!({"machine_maintenance": []})).is_empty());
    let events = sim.poll(json!({ "machine_maintenance": window.clone() }));
    assert_eq!(kinds(&events), vec!["machine_maintenance"]);
    assert_eq!(events[0].title, "Maintenance scheduled on rig-01");
    assert!(
        events[0].text.starts_with("gpu: swap, "),
        "{}",
        events[0].text
    );
    assert_eq!(events[0].data["machine_maintenance"], window);
    assert!(sim
        .poll(json!({ "machine_maintenance": window.clone() }))
        .is_empty());
    let mut moved = window.clone();
    moved[0]["duration_hours"] = json!(4.0);
    let events = sim.poll(json!({ "machine_maintenance": moved }));
    assert_eq!(events[0].title, "Maintenance changed on rig-01");
    let events = sim.poll(json!({"machine_maintenance": null}));
    assert_eq!(kinds(&events), vec!["machine_maintenance"]);
    assert_eq!(events[0].data["machine_maintenance"], Value::Null);
}

#[test]
fn nothing_fires_on_first_sight_of_listing_and_reputation_fields() {
    let mut sim = Sim::new(MachineRules::default());
    let first = json!({"listed": false, "verification": "unverified", "num_reports": 5,
        "machine_maintenance": [{"id": 1}]});
    assert!(sim
        .poll_with(first.clone(), Adoption::FirstStart)
        .is_empty());
    assert!(sim.poll(first).is_empty());
}

// ---- determinism, persistence, odd input ----

#[test]
fn same_state_and_row_give_the_same_state_and_event_ids() {
    let sim = running_d();
    let rules = MachineRules::default();
    let obs = Observation {
        account: "alice",
        now: t(999),
        rules: &rules,
    };
    let r = row(rent("x x x x", 0, 0, 0, 0, None));
    let a = observe_machine(sim.state.as_ref(), &r, &obs, Adoption::Running);
    let b = observe_machine(sim.state.as_ref(), &r, &obs, Adoption::Running);
    assert_eq!(a, b);
    assert_eq!(a.1[0].id, "alice:m12345:2");
}

#[test]
fn state_survives_a_json_round_trip() {
    let mut sim = two_paused();
    sim.poll(merge(
        rent("D D I x", 2, 1, 2, 1, Some(70.0)),
        json!({"timeout": 30, "error_description": "x", "machine_maintenance": [{"id": 2}]}),
    ));
    let s = sim.state().clone();
    let text = serde_json::to_string(&s).unwrap();
    let back: MachineState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
}

#[test]
fn states_stored_before_the_event_windows_still_load_and_go_on() {
    // A machine offline and in an error episode, stored by the previous version: the error was
    // pending confirmation, and none of the window fields existed.
    let mut sim = Sim::start(idle());
    sim.poll(json!({"timeout": 300, "error_description": "A"}));
    let mut old = serde_json::to_value(sim.state()).unwrap();
    old["offline"] = json!({"pending_since": t(30), "alerted_at": t(30), "clear_polls": 0,
                            "clear_since": null, "last_timeout": 300.0});
    old["error"] = json!({"pending": "A", "pending_polls": 1, "pending_since": t(30),
                          "alerted": null, "alerted_since": null, "last_sent": null});
    let state: MachineState = serde_json::from_value(old).unwrap();
    assert_eq!(state.offline.pending_after, None);
    assert_eq!(state.offline.clearing, machine::ClearStreak::default());
    sim.state = Some(state);
    // The pending error is reported at once under the new rule; the offline episode ends
    // after two clean polls with a window from the first of them.
    let events = sim.poll(json!({"timeout": 0, "error_description": "A"})); // t60
    assert_eq!(kinds(&events), vec!["machine_error"]);
    let events = sim.poll(json!({"timeout": 0})); // t90
    assert_eq!(kinds(&events), vec!["machine_recovered"]);
    assert_eq!(events[0].since, Some(t(30)));
}

#[test]
fn garbage_numbers_and_missing_fields_do_not_panic_or_invent_events() {
    let mut sim = running_d();
    let events = sim.poll(json!({
        "num_gpus": -3, "alloc_disk_space": "NaN", "timeout": "soon", "listed": "maybe",
        "listed_gpu_cost": null, "hostname": "", "gpu_name": null, "clients": {"odd": true},
        "gpu_occupancy": "D D x x", "current_rentals_running": 1,
        "current_rentals_running_on_demand": 1, "current_rentals_resident": 1,
        "current_rentals_on_demand": 1,
    }));
    // The disk became unknown (NaN) with no GPU change and no counter change: nothing ends.
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(sim.state().hostname.as_deref(), Some("rig-01"));
}

#[test]
fn events_use_the_machine_id_when_there_is_no_hostname() {
    let mut sim = Sim::start(json!({"hostname": null}));
    let events = sim.poll(merge(
        rent("D x x x", 1, 1, 1, 1, None),
        json!({"hostname": null}),
    ));
    assert_eq!(events[0].title, "New rental on machine 12345");
    assert_eq!(
        events[0].subject,
        Subject::Machine {
            id: 12345,
            name: None
        }
    );
}

#[test]
fn split_even_is_contiguous_and_larger_first() {
    assert_eq!(
        assign::split_even(&[0, 1, 2, 3, 4], 2),
        vec![vec![0, 1, 2], vec![3, 4]]
    );
    assert_eq!(
        assign::split_even(&[1, 5, 6], 3),
        vec![vec![1], vec![5], vec![6]]
    );
    assert_eq!(assign::split_even(&[2, 3], 9), vec![vec![2], vec![3]]);
}

#[test]
fn an_observation_that_changes_nothing_differs_only_in_last_seen() {
    let mut sim = Sim::start(idle());
    let before = sim.state().clone();
    assert!(sim.poll(idle()).is_empty());
    assert_ne!(before.last_seen, sim.state().last_seen);
    assert!(
        before.same_except_last_seen(sim.state()),
        "a quiet poll needs no write"
    );
    let quiet = sim.state().clone();
    sim.poll(json!({"timeout": 30}));
    assert!(
        !quiet.same_except_last_seen(sim.state()),
        "a pending offline must be stored"
    );
}
