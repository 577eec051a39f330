//! Table tests of `detect::money`: credit_low arming and re-arming, when the daily earnings digest
//! is due (across days, restarts and local times), the earnings day window, and the digest event.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use vast_supervisor::detect::money::{
    digest_due, earnings_digest, earnings_window, observe_credit, rearm_level, CreditState,
    DigestState,
};
use vast_supervisor::event::{EventKind, Severity, Subject};
use vast_supervisor::vast::Earnings;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    day(y, m, d).and_hms_opt(h, min, 0).unwrap()
}

fn eight() -> NaiveTime {
    NaiveTime::from_hms_opt(8, 0, 0).unwrap()
}

/// Feeds credits in order; returns how many credit_low events each produced.
fn credit_run(credits: &[f64], threshold: f64) -> (CreditState, Vec<usize>) {
    let mut s = CreditState::default();
    let mut counts = Vec::new();
    for c in credits {
        let (next, events) = observe_credit(&s, *c, threshold, "alice", now());
        counts.push(events.len());
        s = next;
    }
    (s, counts)
}

#[test]
fn credit_low_fires_once_when_dropping_below() {
    let (s, counts) = credit_run(&[10.0, 6.0, 4.9, 4.0, 3.0, 0.0], 5.0);
    assert_eq!(counts, [0, 0, 1, 0, 0, 0]);
    assert!(!s.armed);
    assert_eq!(s.last_credit, Some(0.0));
    assert_eq!(s.seq, 1);
}

#[test]
fn credit_rearms_only_above_the_hysteresis_level() {
    assert_eq!(rearm_level(5.0), 5.5, "at least $0.50 above");
    assert_eq!(rearm_level(100.0), 105.0, "5 % above");
    // Hovering around the threshold does not re-alert.
    let (_, counts) = credit_run(&[10.0, 4.9, 5.1, 4.9, 5.4, 4.8], 5.0);
    assert_eq!(counts, [0, 1, 0, 0, 0, 0]);
    // Climbing back to the re-arm level does.
    let (s, counts) = credit_run(&[10.0, 4.9, 5.5, 4.9, 20.0, 1.0], 5.0);
    assert_eq!(counts, [0, 1, 0, 1, 0, 1]);
    assert_eq!(s.seq, 3);
}

#[test]
fn low_credit_at_the_first_observation_is_reported() {
    let (_, counts) = credit_run(&[2.0, 2.0], 5.0);
    assert_eq!(counts, [1, 0]);
    // Starting between threshold and re-arm level is armed.
    let (s, counts) = credit_run(&[5.2, 4.0], 5.0);
    assert_eq!(counts, [0, 1]);
    assert!(!s.armed);
}

#[test]
fn credit_event_shape_and_ids() {
    let (s, _) = credit_run(&[10.0], 5.0);
    let (s, events) = observe_credit(&s, 3.214, 5.0, "alice", now());
    let e = &events[0];
    assert_eq!(e.kind, EventKind::CreditLow);
    assert_eq!(e.severity, Severity::Warning);
    assert_eq!(e.id, "alice:credit:1");
    assert_eq!(e.account.as_deref(), Some("alice"));
    assert_eq!(e.subject, Subject::Account { id: "alice".into() });
    assert_eq!(e.time, now());
    assert_eq!(e.data, json!({"credit": 3.214, "threshold": 5.0}));
    assert_eq!(e.title, "Credit low on alice: $3.21");
    let (s, _) = observe_credit(&s, 50.0, 5.0, "alice", now());
    let (_, events) = observe_credit(&s, 1.0, 5.0, "alice", now());
    assert_eq!(events[0].id, "alice:credit:2");
}

#[test]
fn non_finite_numbers_change_nothing() {
    let (s, _) = credit_run(&[10.0], 5.0);
    for (credit, threshold) in [(f64::NAN, 5.0), (1.0, f64::NAN), (f64::NEG_INFINITY, 5.0)] {
        let (next, events) = observe_credit(&s, credit, threshold, "alice", now());
        assert!(events.is_empty());
        assert_eq!(next, s);
    }
}

#[test]
fn credit_state_round_trips() {
    let (s, _) = credit_run(&[10.0, 0.1 + 0.2], 5.0);
    let back: CreditState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn digest_is_due_once_per_day_at_or_after_the_time() {
    let mut s = DigestState::default();
    assert_eq!(digest_due(&s, eight(), local(2026, 11, 22, 7, 59)), None);
    let due = digest_due(&s, eight(), local(2026, 11, 22, 8, 0));
    assert_eq!(due, Some(day(2026, 11, 21)), "reports yesterday");
    s.last_sent_day = due;
    assert_eq!(
        digest_due(&s, eight(), local(2026, 11, 22, 8, 1)),
        None,
        "never twice"
    );
    assert_eq!(digest_due(&s, eight(), local(2026, 11, 22, 23, 59)), None);
    assert_eq!(
        digest_due(&s, eight(), local(2026, 11, 23, 0, 30)),
        None,
        "before the time"
    );
    assert_eq!(
        digest_due(&s, eight(), local(2026, 11, 23, 8, 0)),
        Some(day(2026, 11, 22))
    );
}

#[test]
fn digest_catches_up_after_a_restart_the_same_day() {
    let s = DigestState {
        last_sent_day: Some(day(2026, 11, 20)),
    };
    // Down at 08:00 on the 22nd, back at 13:00: send for the 21st.
    assert_eq!(
        digest_due(&s, eight(), local(2026, 11, 22, 13, 0)),
        Some(day(2026, 11, 21))
    );
    // Down for days: only the latest complete day is reported, once the time has come.
    assert_eq!(digest_due(&s, eight(), local(2026, 11, 25, 7, 0)), None);
    assert_eq!(
        digest_due(&s, eight(), local(2026, 11, 25, 9, 0)),
        Some(day(2026, 11, 24))
    );
}

#[test]
fn digest_handles_month_and_year_ends_and_clock_steps_back() {
    let s = DigestState::default();
    assert_eq!(
        digest_due(&s, eight(), local(2027, 1, 1, 8, 0)),
        Some(day(2026, 12, 31))
    );
    assert_eq!(
        digest_due(&s, NaiveTime::MIN, local(2026, 3, 1, 0, 0)),
        Some(day(2026, 2, 28))
    );
    // A local clock that stepped back a day (timezone change) does not resend.
    let sent = DigestState {
        last_sent_day: Some(day(2026, 11, 22)),
    };
    assert_eq!(digest_due(&sent, eight(), local(2026, 11, 22, 9, 0)), None);
}

#[test]
fn earnings_window_is_the_day_in_fractional_epoch_days() {
    let (sday, eday) = earnings_window(day(2025, 11, 5));
    // 2025-11-05 is day 20397 since the epoch.
    assert_eq!(sday, 20397.0);
    assert_eq!(eday.floor(), 20397.0);
    assert!(eday > 20397.99);
    assert_eq!(earnings_window(day(1970, 1, 1)).0, 0.0);
}

fn earnings(v: serde_json::Value) -> Earnings {
    serde_json::from_value(v).unwrap()
}

#[test]
fn digest_lists_machines_and_the_total() {
    let e = earnings(json!({
        "sday": 20413, "eday": 20413,
        "summary": {"total_gpu": 2.15, "total_stor": 0.09, "total_bwu": 0.0, "total_bwd": 0.0},
        "per_machine": [
            {"machine_id": 67890, "gpu_earn": 1.0, "sto_earn": 0.01, "bwu_earn": 0.002, "bwd_earn": "0.004"},
            {"machine_id": 12345, "gpu_earn": 2.15, "sto_earn": 0.09, "bwu_earn": 0.0, "bwd_earn": 8.088995e-55}
        ]
    }));
    let mut names = BTreeMap::new();
    names.insert(12345, "rig-01".to_string());
    names.insert(11111, "rig-idle".to_string());
    let ev = earnings_digest(day(2026, 11, 21), &e, &names, "alice", now(), 7);
    assert_eq!(ev.kind, EventKind::EarningsDigest);
    assert_eq!(ev.id, "alice:digest:2026-11-21:7");
    assert_eq!(ev.subject, Subject::Account { id: "alice".into() });
    assert_eq!(ev.title, "Earnings of alice on 2026-11-21: $3.26");
    let lines: Vec<&str> = ev.text.lines().collect();
    assert_eq!(
        lines,
        [
            "rig-idle (11111): GPU $0.00, storage $0.00, bandwidth $0.00 = $0.00",
            "rig-01 (12345): GPU $2.15, storage $0.0900, bandwidth $0.00 = $2.24",
            "machine 67890: GPU $1.00, storage $0.0100, bandwidth $0.0060 = $1.02",
            "Total: $3.26 (GPU $3.15, storage $0.10, bandwidth $0.0060)",
        ]
    );
    assert_eq!(ev.data["day"], "2026-11-21");
    assert_eq!(ev.data["total"]["total"], 3.256);
    assert_eq!(ev.data["total"]["gpu"], 3.15);
    let machines = ev.data["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 3);
    assert_eq!(machines[1]["machine_id"], 12345);
    assert_eq!(machines[1]["name"], "rig-01");
    assert_eq!(machines[1]["storage"], 0.09);
    assert_eq!(machines[2]["bandwidth_down"], 0.004);
    assert_eq!(machines[2]["name"], serde_json::Value::Null);
}

#[test]
fn digest_of_nothing_and_of_odd_rows() {
    let ev = earnings_digest(
        day(2026, 11, 21),
        &earnings(json!({"per_machine": null})),
        &BTreeMap::new(),
        "alice",
        now(),
        1,
    );
    assert_eq!(
        ev.text,
        "No machine earnings recorded.\nTotal: $0.00 (GPU $0.00, storage $0.00, bandwidth $0.00)"
    );
    assert_eq!(ev.data["total"]["total"], 0.0);

    let odd = earnings(json!({"per_machine": [
        {"gpu_earn": "1.5"},
        {"machine_id": 1, "gpu_earn": "NaN", "sto_earn": null},
        {"machine_id": 1, "gpu_earn": 0.5}
    ]}));
    let ev = earnings_digest(day(2026, 11, 21), &odd, &BTreeMap::new(), "alice", now(), 2);
    let machines = ev.data["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 2, "rows of one machine are merged");
    assert_eq!(machines[0]["machine_id"], serde_json::Value::Null);
    assert_eq!(machines[0]["gpu"], 1.5);
    assert_eq!(machines[1]["gpu"], 0.5);
    assert!(
        ev.text.starts_with("unknown machine: GPU $1.50"),
        "{}",
        ev.text
    );
}
