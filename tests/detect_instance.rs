//! Table tests of the pure instance detection core (`detect::instance`): one test per transition of
//! SPEC §5's instance rows, plus adoption, ids, state round trips and odd rows.

use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use serde_json::{json, Value};
use std::time::Duration;
use url::Url;
use vast_supervisor::config::AccountConfig;
use vast_supervisor::detect::instance::{
    instance_missing, instance_summary, observe_instance, InstanceAdoption, InstancePhase,
    InstanceRules, InstanceState,
};
use vast_supervisor::event::{Event, EventKind, Severity, Subject};
use vast_supervisor::vast::Instance;

const ACCOUNT: &str = "bob";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap() + ChronoDuration::seconds(secs)
}

fn row(v: Value) -> Instance {
    serde_json::from_value(v).expect("test row decodes")
}

/// A running on-demand instance row; `patch` overrides fields (null included).
fn base(patch: Value) -> Value {
    let mut v = json!({
        "id": 5003, "machine_id": 29523, "label": "train-7", "actual_status": "running",
        "intended_status": "running", "cur_state": "running", "next_state": "running",
        "status_msg": "success, running pytorch/pytorch_latest/ssh\n", "is_bid": false,
        "gpu_name": "RTX 4090", "num_gpus": 2, "dph_base": 0.8, "dph_total": 0.8123,
        "min_bid": 0.5,
    });
    for (k, val) in patch.as_object().expect("patch is an object") {
        v[k] = val.clone();
    }
    v
}

/// Drives one instance through a sequence of observations.
struct Run {
    state: Option<InstanceState>,
    rules: InstanceRules,
}

impl Run {
    fn new() -> Run {
        Run {
            state: None,
            rules: InstanceRules::default(),
        }
    }

    /// Adopts the row at first start and asserts that was silent.
    fn adopted(v: Value, at: i64) -> Run {
        let mut r = Run::new();
        let events = r.observe_as(v, at, InstanceAdoption::FirstStart);
        assert_eq!(kinds(&events), Vec::<&str>::new(), "adoption is silent");
        r
    }

    fn observe_as(&mut self, v: Value, at: i64, adoption: InstanceAdoption) -> Vec<Event> {
        let (s, events) = observe_instance(
            self.state.as_ref(),
            &row(v),
            ACCOUNT,
            t(at),
            &self.rules,
            adoption,
        );
        self.state = Some(s);
        events
    }

    fn observe(&mut self, v: Value, at: i64) -> Vec<Event> {
        self.observe_as(v, at, InstanceAdoption::Running)
    }

    fn missing(&mut self, lookup: Option<Value>, at: i64) -> Vec<Event> {
        let prev = self.state.as_ref().expect("instance observed before");
        let lookup = lookup.map(row);
        let (s, events) = instance_missing(prev, lookup.as_ref(), ACCOUNT, t(at), &self.rules);
        self.state = Some(s);
        events
    }

    fn state(&self) -> &InstanceState {
        self.state.as_ref().expect("state")
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn adoption_at_first_start_is_silent_and_then_quiet() {
    let mut r = Run::adopted(base(json!({})), 0);
    assert_eq!(r.state().phase, InstancePhase::Running);
    assert!(kinds(&r.observe(base(json!({})), 30)).is_empty());
    assert!(kinds(&r.observe(base(json!({})), 60)).is_empty());
}

#[test]
fn adoption_reports_an_error_that_is_already_there() {
    let mut r = Run::new();
    let events = r.observe_as(
        base(json!({"actual_status": "exited", "status_msg": "OCI runtime create failed: x"})),
        0,
        InstanceAdoption::FirstStart,
    );
    assert_eq!(kinds(&events), ["instance_error"]);
}

#[test]
fn new_instance_after_startup_is_created_then_running() {
    let mut r = Run::new();
    let loading = base(json!({"actual_status": "loading", "status_msg": "abc: Pull complete\n"}));
    assert_eq!(kinds(&r.observe(loading.clone(), 0)), ["instance_created"]);
    assert_eq!(kinds(&r.observe(loading, 30)), Vec::<&str>::new());
    let events = r.observe(base(json!({})), 60);
    assert_eq!(kinds(&events), ["instance_running"]);
    assert_eq!(events[0].data["previous_status"], "loading");
    assert_eq!(r.state().running_since, Some(t(60)));

    let mut fast = Run::new();
    assert_eq!(
        kinds(&fast.observe(base(json!({})), 0)),
        ["instance_created", "instance_running"]
    );
}

#[test]
fn null_actual_status_while_provisioning_is_not_an_error_nor_an_exit() {
    let mut r = Run::new();
    let provisioning = base(json!({"actual_status": null, "status_msg": null}));
    assert_eq!(
        kinds(&r.observe(provisioning.clone(), 0)),
        ["instance_created"]
    );
    assert_eq!(r.state().phase, InstancePhase::Starting);
    assert_eq!(r.state().not_running_since, Some(t(0)));
    assert!(kinds(&r.observe(provisioning.clone(), 300)).is_empty());
    let mut missing_key = base(json!({}));
    missing_key.as_object_mut().unwrap().remove("actual_status");
    assert!(kinds(&r.observe(missing_key, 600)).is_empty());
    assert_eq!(
        kinds(&r.observe(base(json!({})), 650)),
        ["instance_running"]
    );
}

#[test]
fn rows_with_missing_keys_and_garbage_never_panic() {
    let mut r = Run::new();
    assert_eq!(kinds(&r.observe(json!({"id": 9}), 0)), ["instance_created"]);
    assert_eq!(r.state().id, 9);
    assert!(kinds(&r.observe(json!({}), 30)).is_empty());
    assert_eq!(r.state().id, 9, "a row without id keeps the stored id");
    let garbage = json!({"id": "9", "actual_status": 7, "intended_status": [1], "is_bid": "maybe",
                         "num_gpus": "NaN", "dph_total": -3, "status_msg": {"x": 1}, "label": null});
    assert!(kinds(&r.observe(garbage, 60)).is_empty());
    assert_eq!(r.state().num_gpus, None);
    assert_eq!(r.state().dph_total, None);

    let mut fresh = Run::new();
    let events = fresh.observe(json!({}), 0);
    assert_eq!(kinds(&events), ["instance_created"]);
    assert_eq!(events[0].id, "bob:i0:1");
}

#[test]
fn exited_with_intended_stopped_is_a_normal_stop() {
    let mut r = Run::adopted(base(json!({})), 0);
    let stopping = base(json!({"intended_status": "stopped", "next_state": "stopped"}));
    assert!(kinds(&r.observe(stopping, 30)).is_empty(), "still running");
    let stopped = base(
        json!({"actual_status": "exited", "intended_status": "stopped",
                              "cur_state": "stopped", "status_msg": null}),
    );
    let events = r.observe(stopped.clone(), 60);
    assert_eq!(kinds(&events), ["instance_stopped"]);
    assert_eq!(events[0].severity, Severity::Info);
    assert_eq!(events[0].data["previous_status"], "running");
    assert_eq!(events[0].data["running_seconds"], 60.0);
    assert!(
        events[0].text.contains("after running 1m"),
        "{}",
        events[0].text
    );
    assert!(kinds(&r.observe(stopped, 90)).is_empty(), "no stopped spam");
    assert!(
        r.state().not_running_since.is_none(),
        "not meant to run: no stuck clock"
    );
}

#[test]
fn frozen_on_request_is_a_stop() {
    let mut r = Run::adopted(base(json!({})), 0);
    let frozen = base(json!({"actual_status": "frozen", "intended_status": "frozen"}));
    assert_eq!(kinds(&r.observe(frozen, 30)), ["instance_stopped"]);
}

#[test]
fn non_bid_exit_while_meant_to_run_is_instance_exited() {
    let mut r = Run::adopted(base(json!({})), 0);
    let crashed = base(json!({"actual_status": "exited", "status_msg": "container exited (137)"}));
    let events = r.observe(crashed.clone(), 30);
    assert_eq!(kinds(&events), ["instance_exited"]);
    assert_eq!(events[0].severity, Severity::Warning);
    assert!(kinds(&r.observe(crashed, 60)).is_empty());
    // A restart loop: running again, then back to loading.
    assert_eq!(kinds(&r.observe(base(json!({})), 90)), ["instance_running"]);
    let restarting = base(json!({"actual_status": "loading"}));
    assert_eq!(kinds(&r.observe(restarting, 120)), ["instance_exited"]);
}

#[test]
fn host_going_offline_is_an_exit_for_the_renter() {
    for status in ["offline", "unknown", "stopped"] {
        let mut r = Run::adopted(base(json!({})), 0);
        let events = r.observe(base(json!({"actual_status": status})), 30);
        assert_eq!(kinds(&events), ["instance_exited"], "{status}");
    }
}

#[test]
fn bid_instance_losing_its_gpus_is_preempted_not_exited() {
    for (actual, cur) in [("stopped", "stopped"), ("exited", "stopped")] {
        let mut r = Run::adopted(base(json!({"is_bid": true})), 0);
        let outbid = base(
            json!({"is_bid": true, "actual_status": actual, "cur_state": cur,
                                 "dph_base": 0.3, "min_bid": 0.45}),
        );
        let events = r.observe(outbid.clone(), 30);
        assert_eq!(kinds(&events), ["instance_preempted"], "{actual}");
        assert_eq!(events[0].data["min_bid"], 0.45);
        assert_eq!(events[0].data["dph_base"], 0.3);
        assert!(
            events[0].text.contains("minimum bid now $0.45/h"),
            "{}",
            events[0].text
        );
        assert!(kinds(&r.observe(outbid, 60)).is_empty());
        assert_eq!(
            kinds(&r.observe(base(json!({"is_bid": true})), 90)),
            ["instance_running"],
            "resumes on its own"
        );
    }
    // Waiting for its GPU with a null status is a preemption too (vast-api.md §3.4).
    let mut r = Run::adopted(base(json!({"is_bid": true})), 0);
    let waiting = base(json!({"is_bid": true, "actual_status": null}));
    assert_eq!(kinds(&r.observe(waiting, 30)), ["instance_preempted"]);
    // A bid instance stopped by its owner is a plain stop.
    let mut r = Run::adopted(base(json!({"is_bid": true})), 0);
    let stopped =
        base(json!({"is_bid": true, "actual_status": "exited", "intended_status": "stopped"}));
    assert_eq!(kinds(&r.observe(stopped, 30)), ["instance_stopped"]);
}

#[test]
fn reboot_is_transient() {
    let mut r = Run::adopted(base(json!({})), 0);
    assert!(kinds(&r.observe(base(json!({"actual_status": "rebooting"})), 30)).is_empty());
    assert!(kinds(&r.observe(base(json!({})), 60)).is_empty());
}

#[test]
fn stuck_fires_once_per_episode_after_the_threshold() {
    let mut r = Run::new();
    r.rules.stuck_after = Duration::from_secs(15 * 60);
    let loading = base(json!({"actual_status": "loading", "status_msg": "x: Downloading\n"}));
    assert_eq!(kinds(&r.observe(loading.clone(), 0)), ["instance_created"]);
    assert!(kinds(&r.observe(loading.clone(), 14 * 60 + 59)).is_empty());
    let events = r.observe(loading.clone(), 15 * 60);
    assert_eq!(kinds(&events), ["instance_stuck"]);
    assert_eq!(events[0].data["not_running_seconds"], 900.0);
    // The episode began at first sight: no earlier observation bounds it.
    assert_eq!(events[0].since, None);
    assert!(events[0].text.contains("15m"), "{}", events[0].text);
    assert!(
        kinds(&r.observe(loading.clone(), 20 * 60)).is_empty(),
        "once"
    );
    assert!(kinds(&r.observe(json!({"id": 5003, "actual_status": "loading"}), 40 * 60)).is_empty());
    assert_eq!(
        kinds(&r.observe(base(json!({})), 41 * 60)),
        ["instance_running"]
    );
    assert_eq!(r.state().not_running_since, None);
    // A new episode: crash, then stuck again after another 15 minutes.
    let crashed = base(json!({"actual_status": "exited"}));
    assert_eq!(
        kinds(&r.observe(crashed.clone(), 50 * 60)),
        ["instance_exited"]
    );
    assert!(kinds(&r.observe(crashed.clone(), 64 * 60)).is_empty());
    let events = r.observe(crashed, 65 * 60);
    assert_eq!(kinds(&events), ["instance_stuck"]);
    // It stopped after the last observation that saw it running (41 min), not after 64 min.
    assert_eq!(events[0].since, Some(t(41 * 60)));
    assert_eq!(events[0].time, t(65 * 60));
}

#[test]
fn stuck_needs_the_intention_to_run_and_zero_disables_it() {
    let mut r = Run::new();
    let stopped = base(json!({"actual_status": "stopped", "intended_status": "stopped"}));
    r.observe(stopped.clone(), 0);
    assert!(kinds(&r.observe(stopped, 3600)).is_empty());

    let mut r = Run::new();
    r.rules.stuck_after = Duration::ZERO;
    let loading = base(json!({"actual_status": "loading"}));
    r.observe(loading.clone(), 0);
    assert!(kinds(&r.observe(loading, 36_000)).is_empty());
}

#[test]
fn stuck_clock_does_not_go_negative_when_time_steps_back() {
    let mut r = Run::new();
    let loading = base(json!({"actual_status": "loading"}));
    r.observe(loading.clone(), 1000);
    assert!(kinds(&r.observe(loading, 0)).is_empty());
}

#[test]
fn error_is_sent_once_per_distinct_message_and_clears() {
    let mut r = Run::adopted(base(json!({"actual_status": "loading"})), 0);
    let a = "Error response from daemon: OCI runtime create failed: unable to start";
    let ev = r.observe(
        base(json!({"actual_status": "loading", "status_msg": format!("{a}\n")})),
        30,
    );
    assert_eq!(kinds(&ev), ["instance_error"]);
    assert_eq!(ev[0].data["error"], a);
    assert_eq!(ev[0].text, a);
    assert!(kinds(&r.observe(
        base(json!({"actual_status": "loading", "status_msg": a})),
        60
    ))
    .is_empty());
    let spaced = format!("  {}  \n", a.replace(": ", ":   "));
    assert!(
        kinds(&r.observe(
            base(json!({"actual_status": "loading", "status_msg": spaced})),
            70
        ))
        .is_empty(),
        "whitespace differences are the same message"
    );
    // null carries no information: still the same error.
    assert!(kinds(&r.observe(
        base(json!({"actual_status": "loading", "status_msg": null})),
        80
    ))
    .is_empty());
    let b = "Traceback (most recent call last): ...";
    assert_eq!(
        kinds(&r.observe(
            base(json!({"actual_status": "loading", "status_msg": b})),
            90
        )),
        ["instance_error"]
    );
    assert_eq!(r.state().error_alerted.as_deref(), Some(b));
    assert!(kinds(&r.observe(
        base(json!({"actual_status": "loading", "status_msg": "Pull complete"})),
        120
    ))
    .is_empty());
    assert_eq!(r.state().error_alerted, None);
    assert_eq!(
        kinds(&r.observe(
            base(json!({"actual_status": "loading", "status_msg": b})),
            150
        )),
        ["instance_error"],
        "cleared and back is a new alert"
    );
}

#[test]
fn error_patterns_follow_the_vast_cli_list_case_insensitively() {
    let rules = InstanceRules::default();
    for msg in [
        "ERROR: x",
        "pull FAILED",
        "Failure to launch",
        "Exception in thread",
        "Traceback (most recent call last)",
        "oci RUNTIME create",
        "Permission Denied",
    ] {
        assert!(rules.is_error(msg), "{msg}");
    }
    for msg in ["success, running ssh", "59729b65119e: Pull complete", ""] {
        assert!(!rules.is_error(msg), "{msg}");
    }
}

#[test]
fn abandoned_start_reports_the_error_and_not_a_stop() {
    let mut r = Run::new();
    let loading = base(json!({"actual_status": "loading", "status_msg": "Pulling fs layer"}));
    assert_eq!(kinds(&r.observe(loading, 0)), ["instance_created"]);
    let abandoned = base(json!({
        "actual_status": "created", "intended_status": "stopped", "cur_state": "stopped",
        "next_state": "stopped",
        "status_msg": "Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: could not apply required modification to OCI specification: error modifying OCI spec: failed to inject CDI devices: unresolvable CDI devices nvidia.com/gpu=3\n"
    }));
    let events = r.observe(abandoned.clone(), 30);
    assert_eq!(kinds(&events), ["instance_error"]);
    assert!(events[0].text.contains("CDI devices"));
    assert!(kinds(&r.observe(abandoned.clone(), 60)).is_empty());
    assert!(
        kinds(&r.observe(abandoned, 3600)).is_empty(),
        "no stuck: not meant to run"
    );

    // The error came first and the message is null by the time the start is abandoned.
    let mut r = Run::new();
    let failing =
        base(json!({"actual_status": "loading", "status_msg": "OCI runtime create failed"}));
    assert_eq!(
        kinds(&r.observe(failing, 0)),
        ["instance_created", "instance_error"]
    );
    let quiet = base(
        json!({"actual_status": "created", "intended_status": "stopped",
                            "status_msg": null}),
    );
    assert!(kinds(&r.observe(quiet, 30)).is_empty());

    // Adopted in that shape after startup: created + error, nothing else.
    let mut fresh = Run::new();
    let row = base(
        json!({"actual_status": "created", "intended_status": "stopped",
                          "status_msg": "OCI runtime create failed"}),
    );
    assert_eq!(
        kinds(&fresh.observe(row, 0)),
        ["instance_created", "instance_error"]
    );
}

#[test]
fn intended_status_falls_back_to_next_state_then_to_memory() {
    let mut r = Run::adopted(base(json!({})), 0);
    let mut row = base(json!({"actual_status": "exited", "next_state": "stopped"}));
    row.as_object_mut().unwrap().remove("intended_status");
    let events = r.observe(row, 30);
    assert_eq!(kinds(&events), ["instance_stopped"]);
    assert_eq!(events[0].data["intended_status"], "stopped");
    // Neither field: the last known intention holds.
    let bare = json!({"id": 5003, "actual_status": "running"});
    assert_eq!(kinds(&r.observe(bare, 60)), ["instance_running"]);
    assert_eq!(r.state().intended_status.as_deref(), Some("stopped"));
}

#[test]
fn statuses_are_trimmed_and_case_insensitive() {
    let mut r = Run::adopted(base(json!({})), 0);
    let row = base(json!({"actual_status": " Exited\n", "intended_status": "STOPPED "}));
    assert_eq!(kinds(&r.observe(row, 30)), ["instance_stopped"]);
    assert_eq!(r.state().actual_status.as_deref(), Some("exited"));
}

#[test]
fn destroyed_only_when_the_lookup_returns_nothing() {
    let mut r = Run::adopted(base(json!({})), 0);
    assert!(
        kinds(&r.missing(Some(base(json!({}))), 30)).is_empty(),
        "list churn"
    );
    let events = r.missing(None, 60);
    assert_eq!(kinds(&events), ["instance_destroyed"]);
    assert_eq!(events[0].since, Some(t(30)));
    assert_eq!(events[0].data["last_seen"], json!(t(30)));
    assert!(r.state().destroyed);
    assert!(kinds(&r.missing(None, 90)).is_empty(), "once");
    // A lookup glitch: the instance is back; taken back silently.
    assert!(kinds(&r.observe(base(json!({})), 120)).is_empty());
    assert!(!r.state().destroyed);
}

#[test]
fn list_churn_observes_the_lookup_row_normally() {
    let mut r = Run::adopted(base(json!({"actual_status": "loading"})), 0);
    let events = r.missing(Some(base(json!({}))), 30);
    assert_eq!(kinds(&events), ["instance_running"]);
    assert!(!r.state().destroyed);
}

#[test]
fn ids_are_deterministic_and_sequential() {
    let mut r = Run::new();
    let e1 = r.observe(base(json!({"actual_status": "loading"})), 0);
    let snapshot = r.state.clone();
    let e2 = r.observe(base(json!({})), 30);
    let e3 = r.observe(base(json!({"actual_status": "exited"})), 60);
    let ids: Vec<&str> = e1
        .iter()
        .chain(&e2)
        .chain(&e3)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids, ["bob:i5003:1", "bob:i5003:2", "bob:i5003:3"]);
    assert_eq!(r.state().seq, 3);
    // Re-running an observation from the same stored state gives the same ids and state.
    let (s_again, again) = observe_instance(
        snapshot.as_ref(),
        &row(base(json!({}))),
        ACCOUNT,
        t(30),
        &InstanceRules::default(),
        InstanceAdoption::Running,
    );
    assert_eq!(again, e2);
    let (s_first, _) = observe_instance(
        snapshot.as_ref(),
        &row(base(json!({}))),
        ACCOUNT,
        t(30),
        &InstanceRules::default(),
        InstanceAdoption::Running,
    );
    assert_eq!(s_again, s_first);
}

#[test]
fn events_carry_subject_times_and_data() {
    let mut r = Run::adopted(base(json!({})), 0);
    let events = r.observe(base(json!({"actual_status": "exited"})), 30);
    let e = &events[0];
    assert_eq!(e.account.as_deref(), Some(ACCOUNT));
    assert_eq!(
        e.subject,
        Subject::Instance {
            id: 5003,
            name: Some("train-7".into())
        }
    );
    assert_eq!(e.time, t(30));
    assert_eq!(e.since, Some(t(0)));
    assert_eq!(e.title, "Instance train-7 (5003) exited unexpectedly");
    for key in [
        "actual_status",
        "intended_status",
        "cur_state",
        "is_bid",
        "status_msg",
        "gpu_name",
        "num_gpus",
        "dph_total",
        "machine_id",
    ] {
        assert!(e.data.get(key).is_some(), "data.{key} missing");
    }
    assert_eq!(e.data["actual_status"], "exited");
    assert_eq!(e.data["machine_id"], 29523);
    assert_eq!(e.data["dph_total"], 0.8123);
    assert_eq!(
        e.data["status_msg"],
        "success, running pytorch/pytorch_latest/ssh"
    );

    let mut unlabeled = Run::new();
    let events = unlabeled.observe(base(json!({"label": "  "})), 0);
    assert_eq!(
        events[0].subject,
        Subject::Instance {
            id: 5003,
            name: None
        }
    );
    assert_eq!(events[0].since, None);
    assert!(
        events[1]
            .text
            .contains("2x RTX 4090 on machine 29523 at $0.81/h"),
        "{}",
        events[1].text
    );
}

#[test]
fn a_real_row_decodes_and_no_secret_reaches_events_or_state() {
    // Trimmed from a real `show instance` payload (vast-python test data), token included.
    let real = json!({
        "actual_status": "loading", "bundle_id": 379710229, "cur_state": "running",
        "dph_base": 0.43333333333333335, "dph_total": 0.4388888888888889, "gpu_name": "RTX 3070 Ti",
        "gpu_temp": null, "gpu_util": null, "host_id": 139807, "id": 13518557,
        "intended_status": "running", "is_bid": false,
        "jupyter_token": "ab7cb556a3df24e5f73026e5ff9189d64aa069f1a64acbf713dad9b0443799f1",
        "label": null, "local_ipaddrs": "192.168.2.134 172.16.16.214 \n", "machine_id": 29523,
        "min_bid": 0.4333333, "next_state": "running", "num_gpus": 5,
        "status_msg": "59729b65119e: Pull complete\n", "start_date": 1730826892.0502138
    });
    let mut r = Run::new();
    let events = r.observe(real, 0);
    assert_eq!(kinds(&events), ["instance_created"]);
    let state_json = serde_json::to_string(r.state()).unwrap();
    let events_json: Vec<String> = events.iter().map(Event::to_json).collect();
    for text in events_json.iter().chain([&state_json]) {
        assert!(!text.contains("ab7cb556"), "secret leaked: {text}");
    }
    assert_eq!(
        events[0].text,
        "5x RTX 3070 Ti on machine 29523 at $0.44/h, on-demand (status loading, intended running)"
    );
}

#[test]
fn state_round_trips_through_json_and_old_state_loads() {
    let mut r = Run::new();
    r.observe(
        base(json!({"actual_status": "loading", "dph_total": 0.1 + 0.2})),
        0,
    );
    r.observe(
        base(json!({"actual_status": "loading", "status_msg": "failed"})),
        30,
    );
    let s = r.state().clone();
    let back: InstanceState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let minimal: InstanceState =
        serde_json::from_value(json!({"id": 1, "last_seen": "2026-11-22T12:00:00Z"})).unwrap();
    assert_eq!(minimal.id, 1);
    assert_eq!(minimal.phase, InstancePhase::Halted);
}

#[test]
fn rules_come_from_the_account() {
    let mut cfg =
        AccountConfig::with_defaults("bob", "k", Url::parse("http://127.0.0.1:1").unwrap());
    cfg.stuck_after = Duration::from_secs(42);
    let rules = InstanceRules::from_account(&cfg);
    assert_eq!(rules.stuck_after, Duration::from_secs(42));
    assert!(rules.is_error("boom: error"));
}

#[test]
fn summary_shows_the_instance() {
    let mut r = Run::adopted(base(json!({})), 0);
    r.observe(
        base(json!({"actual_status": "exited", "status_msg": "Error: x"})),
        30,
    );
    let v = serde_json::to_value(instance_summary(r.state())).unwrap();
    assert_eq!(v["id"], 5003);
    assert_eq!(v["label"], "train-7");
    assert_eq!(v["phase"], "halted");
    assert_eq!(v["actual_status"], "exited");
    assert_eq!(v["error"], "Error: x");
    assert_eq!(v["destroyed"], false);
    assert_eq!(v["not_running_since"], json!(t(30)));
    assert_eq!(v["last_seen"], json!(t(30)));
}

#[test]
fn every_kind_has_the_catalogue_severity() {
    let mut r = Run::new();
    let mut all = r.observe(
        base(json!({"actual_status": "loading", "status_msg": "error x"})),
        0,
    );
    all.extend(r.observe(base(json!({"actual_status": "loading"})), 3600));
    all.extend(r.observe(base(json!({})), 3700));
    all.extend(r.missing(None, 3800));
    assert_eq!(
        kinds(&all),
        [
            "instance_created",
            "instance_error",
            "instance_stuck",
            "instance_running",
            "instance_destroyed"
        ]
    );
    for e in &all {
        assert_eq!(e.severity, e.kind.severity());
        assert_eq!(
            e.kind.subject_type(),
            EventKind::InstanceCreated.subject_type()
        );
    }
}
