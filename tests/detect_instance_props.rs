//! Property tests of the renter detection core: random instance row sequences (nulls, missing keys,
//! odd statuses, clock steps back, list churn and lookups) never panic, give unique and
//! deterministic ids, and keep the state serialisable; overlapping log windows yield each line
//! exactly once; credit alerts never repeat without a re-arm.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::time::Duration;
use vast_supervisor::detect::instance::{
    instance_missing, observe_instance, InstanceAdoption, InstanceRules, InstanceState,
};
use vast_supervisor::detect::logs::new_lines;
use vast_supervisor::detect::money::{observe_credit, rearm_level, CreditState};
use vast_supervisor::event::{Event, EventKind};
use vast_supervisor::vast::Instance;

const ACTUAL: &[Option<&str>] = &[
    None,
    Some("running"),
    Some("loading"),
    Some("created"),
    Some("stopped"),
    Some("exited"),
    Some("frozen"),
    Some("rebooting"),
    Some("offline"),
    Some("unknown"),
    Some("Running "),
    Some(""),
];
const INTENDED: &[Option<&str>] = &[None, Some("running"), Some("stopped"), Some("frozen")];
const MESSAGES: &[Option<&str>] = &[
    None,
    Some(""),
    Some("success, running img/ssh\n"),
    Some("abc: Pull complete\n"),
    Some("Error response from daemon: OCI runtime create failed\n"),
    Some("Traceback (most recent call last)"),
    Some("permission denied"),
];

/// One step: a row (each field present, null or missing), or the instance missing from the list
/// with a lookup row or `None`.
#[derive(Debug, Clone)]
enum Step {
    Row(Value),
    Missing(Option<Value>),
}

fn field<T: Strategy>(values: T) -> impl Strategy<Value = Option<Option<T::Value>>>
where
    T::Value: Clone,
{
    // None: key missing; Some(None): null; Some(Some(v)): value.
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(None)),
        6 => values.prop_map(|v| Some(Some(v))),
    ]
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<Option<Value>>) {
    match v {
        None => {}
        Some(None) => {
            m.insert(key.into(), Value::Null);
        }
        Some(Some(v)) => {
            m.insert(key.into(), v);
        }
    }
}

fn row_strategy() -> impl Strategy<Value = Value> {
    let text = |options: &'static [Option<&'static str>]| {
        prop::sample::select(options).prop_map(|o| o.map_or(Value::Null, Value::from))
    };
    (
        field(text(ACTUAL)),
        field(text(INTENDED)),
        field(text(INTENDED)),
        field(text(MESSAGES)),
        field(any::<bool>().prop_map(Value::from)),
        field(prop::sample::select(vec!["train-1", "eval", " "]).prop_map(Value::from)),
        field(prop_oneof![
            (0u32..9).prop_map(Value::from),
            Just(Value::from("2")),
            Just(Value::from(-1.5))
        ]),
        field(prop_oneof![
            (0.0f64..5.0).prop_map(Value::from),
            Just(Value::from("x"))
        ]),
        prop::bool::weighted(0.95),
    )
        .prop_map(
            |(actual, intended, next, msg, bid, label, gpus, price, has_id)| {
                let mut m = Map::new();
                if has_id {
                    m.insert("id".into(), Value::from(77));
                }
                put(&mut m, "actual_status", actual);
                put(&mut m, "intended_status", intended);
                put(&mut m, "next_state", next);
                put(&mut m, "status_msg", msg);
                put(&mut m, "is_bid", bid);
                put(&mut m, "label", label);
                put(&mut m, "num_gpus", gpus);
                put(&mut m, "dph_total", price);
                Value::Object(m)
            },
        )
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => row_strategy().prop_map(Step::Row),
        1 => row_strategy().prop_map(|r| Step::Missing(Some(r))),
        1 => Just(Step::Missing(None)),
    ]
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap() + ChronoDuration::seconds(secs)
}

fn apply(
    prev: Option<&InstanceState>,
    step: &Step,
    now: DateTime<Utc>,
    rules: &InstanceRules,
    adoption: InstanceAdoption,
) -> Option<(InstanceState, Vec<Event>)> {
    match step {
        Step::Row(v) => {
            let row: Instance = serde_json::from_value(v.clone()).expect("rows always decode");
            Some(observe_instance(prev, &row, "acct", now, rules, adoption))
        }
        Step::Missing(lookup) => {
            let prev = prev?;
            let row: Option<Instance> = lookup
                .as_ref()
                .map(|v| serde_json::from_value(v.clone()).expect("rows always decode"));
            Some(instance_missing(prev, row.as_ref(), "acct", now, rules))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_instance_histories_never_panic_and_ids_are_unique(
        steps in prop::collection::vec((step_strategy(), -60i64..1200), 1..40),
        first_start in any::<bool>(),
        stuck_minutes in 0u64..20,
    ) {
        let rules = InstanceRules { stuck_after: Duration::from_secs(stuck_minutes * 60), ..InstanceRules::default() };
        let mut state: Option<InstanceState> = None;
        let mut clock = 0i64;
        let mut ids = HashSet::new();
        let mut total = 0u64;
        let mut observed = HashSet::new();
        for (i, (step, dt)) in steps.iter().enumerate() {
            clock += dt;
            let adoption = if first_start && i == 0 { InstanceAdoption::FirstStart } else { InstanceAdoption::Running };
            let Some((next, events)) = apply(state.as_ref(), step, t(clock), &rules, adoption) else {
                continue;
            };
            // Deterministic: the same observation from the same state gives the same result.
            let again = apply(state.as_ref(), step, t(clock), &rules, adoption).expect("same step");
            prop_assert_eq!(&again.0, &next);
            prop_assert_eq!(&again.1, &events);
            for e in &events {
                prop_assert!(ids.insert(e.id.clone()), "duplicate id {}", e.id);
                prop_assert!(e.id.starts_with(&format!("acct:i{}:", next.id)), "{}", e.id);
                prop_assert_eq!(e.severity, e.kind.severity());
                prop_assert_eq!(e.time, t(clock));
                if e.kind == EventKind::InstanceStuck {
                    // Its window starts at the observation before the episode was first seen.
                    prop_assert!(e.since.is_none_or(|s| observed.contains(&s)), "{:?}", e);
                } else {
                    prop_assert_eq!(e.since, state.as_ref().map(|s| s.last_seen));
                }
            }
            observed.insert(t(clock));
            total += events.len() as u64;
            prop_assert_eq!(next.seq, total);
            let back: InstanceState = serde_json::from_str(&serde_json::to_string(&next).unwrap()).unwrap();
            prop_assert_eq!(&back, &next);
            state = Some(next);
        }
    }

    #[test]
    fn overlapping_log_windows_yield_each_line_once(
        window in 1usize..300,
        growth in prop::collection::vec(0usize..350, 1..12),
    ) {
        let mut written = 0usize;
        let mut cursor = Default::default();
        let mut seen: Vec<String> = Vec::new();
        for g in growth {
            let before = written;
            written += g;
            let start = written.saturating_sub(window);
            let body: String = (start..written).map(|i| format!("line {i}\n")).collect();
            let (next, fresh) = new_lines(&cursor, &body);
            cursor = next;
            if g <= window && before > 0 {
                // The window still overlaps what was seen: exactly the appended lines.
                let expected: Vec<String> = (before..written).map(|i| format!("line {i}")).collect();
                prop_assert_eq!(&fresh, &expected);
            }
            seen.extend(fresh);
        }
        let unique: HashSet<&String> = seen.iter().collect();
        prop_assert_eq!(unique.len(), seen.len(), "a line was reported twice");
    }

    #[test]
    fn credit_low_never_repeats_without_a_rearm(credits in prop::collection::vec(-5.0f64..20.0, 1..60)) {
        let threshold = 5.0;
        let mut s = CreditState::default();
        let mut alerted = false;
        for c in credits {
            let (next, events) = observe_credit(&s, c, threshold, "acct", t(0));
            if !events.is_empty() {
                prop_assert!(!alerted, "second alert without rising to the re-arm level");
                prop_assert!(c < threshold);
                alerted = true;
            }
            if c >= rearm_level(threshold) {
                alerted = false;
            }
            s = next;
        }
    }
}
