//! Renter monitoring end to end: the real actor tree against the simulated Vast cloud over
//! loopback HTTP. Instances go through their whole life (created, running, preempted, exited,
//! stopped, destroyed, stuck, error) and the file target must hold exactly the expected events per
//! instance, on the right account, with no id twice. Log rules fetch logs through the two-step
//! API and act on a match (the simulator records the destroy) only where `actions_enabled`. The
//! money watch sends `credit_low` with hysteresis, and the daily `earnings_digest` at its local time
//! under an injected clock.

use actix::prelude::*;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vast_supervisor::actors::account::{AccountActor, LocalClock};
use vast_supervisor::actors::supervisor::Shutdown;
use vast_supervisor::config::{AccountConfig, InstanceSelector, LogAction, LogRule};
use vast_supervisor::event::{Event, Subject};
use vast_supervisor::sim::{
    EarningsRow, InstanceSpec, MachineSpec, SimCloud, SimHandle, WriteAction,
};
use vast_supervisor::store::StoreHandle;
use vast_supervisor::vast::{shared_http_client, ClientOptions, VastClient};

#[path = "support/events.rs"]
mod events;
use events::{read_events, start_file_supervisor, wait_for};

const POLL: Duration = Duration::from_millis(150);

fn fast_client() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
        min_spacing: Duration::from_millis(10),
        log_poll_interval: Duration::from_millis(20),
        log_wait: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

/// A renter account: instances watched, machines not.
fn renter(name: &str, key: &str, sim: &SimHandle) -> AccountConfig {
    let mut a = AccountConfig::with_defaults(name, key, sim.base_url());
    a.poll_interval = POLL;
    a.watch.machines = false;
    a.watch.instances = true;
    a
}

/// Waits until `events()` holds one matching `pred`, or panics with what it holds.
async fn wait_until<F, Fut>(what: &str, events: F, pred: impl Fn(&Event) -> bool) -> Vec<Event>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<Event>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let all = events().await;
        if all.iter().any(&pred) {
            return all;
        }
        if tokio::time::Instant::now() > deadline {
            let kinds: Vec<String> = all
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}",
                        e.account.clone().unwrap_or_default(),
                        e.subject.label(),
                        e.kind
                    )
                })
                .collect();
            panic!("timed out waiting for {what}; events so far: {kinds:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn is(e: &Event, kind: &str, instance: u64) -> bool {
    e.kind.as_str() == kind && instance_of(e) == Some(instance)
}

fn instance_of(e: &Event) -> Option<u64> {
    match e.subject {
        Subject::Instance { id, .. } => Some(id),
        _ => None,
    }
}

/// Lets a few polls pass so that a change that should produce nothing gets its chance to.
async fn settle() {
    tokio::time::sleep(POLL * 6).await;
}

/// Kinds per instance, in file order, each with the account it was reported on.
fn per_instance(events: &[Event]) -> BTreeMap<u64, Vec<(String, String)>> {
    let mut map: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
    for e in events {
        if let Some(id) = instance_of(e) {
            map.entry(id)
                .or_default()
                .push((e.account.clone().unwrap_or_default(), e.kind.to_string()));
        }
    }
    map
}

fn expect(account: &str, kinds: &[&str]) -> Vec<(String, String)> {
    kinds
        .iter()
        .map(|k| (account.to_string(), k.to_string()))
        .collect()
}

fn assert_unique_ids(events: &[Event]) {
    let mut ids = HashSet::new();
    for e in events {
        assert!(ids.insert(e.id.clone()), "duplicate event id {}", e.id);
    }
}

fn spec(id: u64, label: &str, actual: Option<&str>) -> InstanceSpec {
    InstanceSpec {
        id: Some(id),
        label: Some(label.to_string()),
        machine_id: Some(24126),
        num_gpus: Some(2),
        gpu_name: Some("RTX 4090".into()),
        actual_status: actual.map(str::to_string),
        ..InstanceSpec::default()
    }
}

#[test]
fn renter_lifecycle_on_two_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-RENT-1", "rent");
        sim.add_account("KEY-SLOW-2", "slow");
        // Running before the daemon starts: adopted silently, never reported.
        sim.add_instance("rent", spec(1000, "old", Some("running")))
            .unwrap();
        sim.add_instance("slow", spec(2000, "old-slow", Some("running")))
            .unwrap();

        let rent = renter("rent", "KEY-RENT-1", &sim);
        let mut slow = renter("slow", "KEY-SLOW-2", &sim);
        slow.stuck_after = Duration::from_millis(700);
        let sup = start_file_supervisor(vec![rent, slow], dir.path(), &out, fast_client());
        wait_for(&out, "startup_summary", |e| {
            e.kind.as_str() == "startup_summary"
        })
        .await;

        // 1001: provisioning -> loading -> running -> exits while meant to run (on-demand).
        sim.add_instance("rent", spec(1001, "web", None)).unwrap();
        wait_for(&out, "1001 created", |e| is(e, "instance_created", 1001)).await;
        sim.set_instance_status(1001, Some("loading"), "running", None)
            .unwrap();
        settle().await;
        sim.set_instance_status(1001, Some("running"), "running", None)
            .unwrap();
        wait_for(&out, "1001 running", |e| is(e, "instance_running", 1001)).await;

        // 1002: a bid instance, running, then outbid.
        let mut bid = spec(1002, "spot", Some("running"));
        bid.is_bid = true;
        bid.dph_base = Some(0.3);
        sim.add_instance("rent", bid).unwrap();
        wait_for(&out, "1002 running", |e| is(e, "instance_running", 1002)).await;
        sim.preempt_instance(1002).unwrap();
        wait_for(&out, "1002 preempted", |e| {
            is(e, "instance_preempted", 1002)
        })
        .await;

        sim.set_instance_status(1001, Some("exited"), "running", None)
            .unwrap();
        wait_for(&out, "1001 exited", |e| is(e, "instance_exited", 1001)).await;

        // 1003: stopped by its user (intended stopped).
        sim.add_instance("rent", spec(1003, "user-stop", Some("running")))
            .unwrap();
        wait_for(&out, "1003 running", |e| is(e, "instance_running", 1003)).await;
        sim.set_instance_status(1003, Some("exited"), "stopped", None)
            .unwrap();
        wait_for(&out, "1003 stopped", |e| is(e, "instance_stopped", 1003)).await;

        // 1004: destroyed (the list omits it and the lookup answers {"instances": null}).
        sim.add_instance("rent", spec(1004, "doomed", Some("running")))
            .unwrap();
        wait_for(&out, "1004 running", |e| is(e, "instance_running", 1004)).await;
        sim.destroy_instance(1004).unwrap();
        wait_for(&out, "1004 destroyed", |e| {
            is(e, "instance_destroyed", 1004)
        })
        .await;

        // 2001: meant to run but stuck loading past stuck_after, then finally running.
        sim.add_instance("slow", spec(2001, "stuck", Some("loading")))
            .unwrap();
        wait_for(&out, "2001 stuck", |e| is(e, "instance_stuck", 2001)).await;
        settle().await;
        sim.set_instance_status(2001, Some("running"), "running", None)
            .unwrap();
        wait_for(&out, "2001 running", |e| is(e, "instance_running", 2001)).await;

        // 2002: running, then its status_msg reports an error (reported once).
        sim.add_instance("slow", spec(2002, "broken", Some("running")))
            .unwrap();
        wait_for(&out, "2002 running", |e| is(e, "instance_running", 2002)).await;
        sim.set_instance_status(
            2002,
            Some("running"),
            "running",
            Some("Error response from daemon: OCI runtime create failed"),
        )
        .unwrap();
        wait_for(&out, "2002 error", |e| is(e, "instance_error", 2002)).await;
        settle().await;

        sup.send(Shutdown).await.unwrap();
        sim.shutdown();
    });

    let events = read_events(&out);
    assert_unique_ids(&events);
    let got = per_instance(&events);
    let mut want = BTreeMap::new();
    want.insert(
        1001,
        expect(
            "rent",
            &["instance_created", "instance_running", "instance_exited"],
        ),
    );
    want.insert(
        1002,
        expect(
            "rent",
            &["instance_created", "instance_running", "instance_preempted"],
        ),
    );
    want.insert(
        1003,
        expect(
            "rent",
            &["instance_created", "instance_running", "instance_stopped"],
        ),
    );
    want.insert(
        1004,
        expect(
            "rent",
            &["instance_created", "instance_running", "instance_destroyed"],
        ),
    );
    want.insert(
        2001,
        expect(
            "slow",
            &["instance_created", "instance_stuck", "instance_running"],
        ),
    );
    want.insert(
        2002,
        expect(
            "slow",
            &["instance_created", "instance_running", "instance_error"],
        ),
    );
    assert_eq!(
        got, want,
        "per-instance events (adopted 1000 and 2000 must have none)"
    );

    let preempted = events
        .iter()
        .find(|e| is(e, "instance_preempted", 1002))
        .unwrap();
    assert_eq!(preempted.data["is_bid"], true);
    assert_eq!(preempted.data["dph_base"], 0.3);
    assert_eq!(preempted.data["previous_status"], "running");
    let error = events
        .iter()
        .find(|e| is(e, "instance_error", 2002))
        .unwrap();
    assert_eq!(
        error.data["error"],
        "Error response from daemon: OCI runtime create failed"
    );
    let stuck = events
        .iter()
        .find(|e| is(e, "instance_stuck", 2001))
        .unwrap();
    assert!(stuck.data["not_running_seconds"].as_f64().is_some());
    let destroyed = events
        .iter()
        .find(|e| is(e, "instance_destroyed", 1004))
        .unwrap();
    assert_eq!(destroyed.subject.label(), "doomed (1004)");

    let others: Vec<&str> = events
        .iter()
        .filter(|e| instance_of(e).is_none())
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        others,
        ["supervisor_start", "startup_summary", "supervisor_stop"],
        "no account-level events"
    );
}

fn done_rule() -> LogRule {
    LogRule {
        name: "finished".into(),
        instances: vec![InstanceSelector::LabelGlob("job-*".into())],
        regex: "^DONE".into(),
        action: Some(LogAction::Destroy),
    }
}

#[test]
fn log_rule_destroys_only_where_actions_are_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    let writes = System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-ACT-1", "act");
        sim.add_account("KEY-DRY-2", "dry");
        // Adopted at start with a matching line already in its log: that old line never fires.
        sim.add_instance("act", spec(3000, "job-old", Some("running")))
            .unwrap();
        sim.append_instance_log(3000, "DONE long ago").unwrap();

        let mut act = renter("act", "KEY-ACT-1", &sim);
        act.actions_enabled = true;
        act.log_rules = vec![done_rule()];
        let mut dry = renter("dry", "KEY-DRY-2", &sim);
        dry.log_rules = vec![done_rule()];
        let sup = start_file_supervisor(vec![act, dry], dir.path(), &out, fast_client());
        wait_for(&out, "startup_summary", |e| {
            e.kind.as_str() == "startup_summary"
        })
        .await;

        sim.add_instance("act", spec(3001, "job-a", Some("running")))
            .unwrap();
        sim.add_instance("dry", spec(4001, "job-b", Some("running")))
            .unwrap();
        // Not selected by the rule: its DONE line is ignored.
        sim.add_instance("dry", spec(4002, "notebook", Some("running")))
            .unwrap();
        for id in [3001, 4001, 4002] {
            sim.append_instance_log(id, "epoch 1 loss 0.9\nepoch 2 loss 0.5")
                .unwrap();
        }
        wait_for(&out, "4002 running", |e| is(e, "instance_running", 4002)).await;
        // Several log fetches see the old lines; none matches.
        settle().await;
        for id in [3000, 3001, 4001, 4002] {
            sim.append_instance_log(id, "DONE step 100, saving")
                .unwrap();
        }
        wait_for(&out, "act match", |e| is(e, "instance_log_match", 3001)).await;
        wait_for(&out, "dry match", |e| is(e, "instance_log_match", 4001)).await;
        for id in [3000, 3001] {
            wait_for(&out, "destroyed", |e| is(e, "instance_destroyed", id)).await;
        }
        // More fetches of the same log (4001 still exists): the line is not reported again.
        settle().await;
        settle().await;
        sup.send(Shutdown).await.unwrap();
        // Instance actors stop with their account: no log fetches after the next tick.
        tokio::time::sleep(POLL * 2).await;
        sim.clear_requests();
        settle().await;
        let late: Vec<String> = sim
            .requests()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        assert!(late.is_empty(), "requests after shutdown: {late:?}");
        let writes = sim.writes();
        sim.shutdown();
        writes
    });

    let events = read_events(&out);
    assert_unique_ids(&events);
    let matches: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind.as_str() == "instance_log_match")
        .collect();
    let matched: Vec<(Option<u64>, &str)> = matches
        .iter()
        .map(|e| (instance_of(e), e.data["line"].as_str().unwrap_or_default()))
        .collect();
    let mut sorted = matched.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            (Some(3000), "DONE step 100, saving"),
            (Some(3001), "DONE step 100, saving"),
            (Some(4001), "DONE step 100, saving"),
        ],
        "one match per selected instance and new line; never the adopted instance's old line, \
         never the unselected instance"
    );

    for id in [3000, 3001] {
        let acted = matches.iter().find(|e| instance_of(e) == Some(id)).unwrap();
        assert_eq!(acted.account.as_deref(), Some("act"));
        assert_eq!(acted.data["rule"], "finished");
        assert_eq!(acted.data["action"]["requested"], "destroy");
        assert_eq!(acted.data["action"]["outcome"], "done");
        assert!(
            acted.text.contains(&format!("destroyed instance {id}")),
            "{}",
            acted.text
        );
    }

    let skipped = matches
        .iter()
        .find(|e| instance_of(e) == Some(4001))
        .unwrap();
    assert_eq!(skipped.account.as_deref(), Some("dry"));
    assert_eq!(skipped.data["action"]["requested"], "destroy");
    assert_eq!(skipped.data["action"]["outcome"], "skipped");
    assert!(
        skipped.text.contains("actions_enabled = false"),
        "{}",
        skipped.text
    );

    let mut recorded: Vec<(String, u64, WriteAction)> = writes
        .into_iter()
        .map(|w| (w.account, w.instance, w.action))
        .collect();
    recorded.sort_by_key(|w| w.1);
    assert_eq!(
        recorded,
        [
            ("act".to_string(), 3000, WriteAction::Destroy),
            ("act".to_string(), 3001, WriteAction::Destroy),
        ],
        "one destroy per matched instance of the acting account, none for dry"
    );

    let got = per_instance(&events);
    assert_eq!(
        got.get(&3000),
        Some(&expect(
            "act",
            &["instance_log_match", "instance_destroyed"]
        )),
        "adopted silently; only the new line fires"
    );
    assert_eq!(
        got.get(&3001),
        Some(&expect(
            "act",
            &[
                "instance_created",
                "instance_running",
                "instance_log_match",
                "instance_destroyed"
            ]
        ))
    );
    assert_eq!(
        got.get(&4001),
        Some(&expect(
            "dry",
            &["instance_created", "instance_running", "instance_log_match"]
        ))
    );
    assert_eq!(
        got.get(&4002),
        Some(&expect("dry", &["instance_created", "instance_running"]))
    );
}

#[test]
fn credit_low_fires_once_per_drop() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-CASH-1", "cash");
        sim.set_credit("cash", 20.0).unwrap();
        let mut cash = renter("cash", "KEY-CASH-1", &sim);
        cash.credit_low_below = Some(5.0);
        let sup = start_file_supervisor(vec![cash], dir.path(), &out, fast_client());
        wait_for(&out, "startup_summary", |e| {
            e.kind.as_str() == "startup_summary"
        })
        .await;
        settle().await;

        sim.set_credit("cash", 3.5).unwrap();
        wait_for(&out, "first credit_low", |e| {
            e.kind.as_str() == "credit_low"
        })
        .await;
        // Staying low, and hovering just above the threshold, alerts nothing more.
        settle().await;
        sim.set_credit("cash", 5.2).unwrap();
        settle().await;
        sim.set_credit("cash", 4.9).unwrap();
        settle().await;
        assert_eq!(
            read_events(&out)
                .iter()
                .filter(|e| e.kind.as_str() == "credit_low")
                .count(),
            1,
            "no second alert without re-arming"
        );
        // Back above (re-armed), then below again: a second alert.
        sim.set_credit("cash", 20.0).unwrap();
        settle().await;
        sim.set_credit("cash", 1.25).unwrap();
        wait_for(&out, "second credit_low", |e| {
            e.kind.as_str() == "credit_low" && e.data["credit"] == 1.25
        })
        .await;
        settle().await;
        sup.send(Shutdown).await.unwrap();
        sim.shutdown();
    });

    let events = read_events(&out);
    assert_unique_ids(&events);
    let credit: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind.as_str() == "credit_low")
        .collect();
    assert_eq!(credit.len(), 2);
    assert_eq!(credit[0].data["credit"], 3.5);
    assert_eq!(credit[1].data["credit"], 1.25);
    for e in &credit {
        assert_eq!(e.account.as_deref(), Some("cash"));
        assert_eq!(e.data["threshold"], 5.0);
        assert_eq!(e.subject, Subject::Account { id: "cash".into() });
    }
}

fn local(date: (i32, u32, u32), time: (u32, u32, u32)) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(date.0, date.1, date.2)
        .unwrap()
        .and_hms_opt(time.0, time.1, time.2)
        .unwrap()
}

async fn outbox(store: &StoreHandle) -> Vec<Event> {
    store
        .run(|s| s.events_after(0, 10_000))
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.event)
        .collect()
}

#[test]
fn earnings_digest_once_a_day_at_the_configured_local_time() {
    let dir = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-HOST-1", "host");
        sim.add_machine("host", MachineSpec::new(501, "rig-a", 4, "RTX 4090"))
            .unwrap();
        sim.add_machine("host", MachineSpec::new(502, "rig-b", 2, "RTX 3090"))
            .unwrap();
        sim.set_earnings(
            "host",
            vec![
                EarningsRow {
                    machine_id: 501,
                    gpu_earn: 12.5,
                    sto_earn: 1.25,
                    bwu_earn: 0.5,
                    bwd_earn: 0.25,
                },
                EarningsRow {
                    machine_id: 502,
                    gpu_earn: 3.0,
                    sto_earn: 0.0,
                    bwu_earn: 0.0,
                    bwd_earn: 0.0,
                },
            ],
        )
        .unwrap();

        let now = Arc::new(Mutex::new(local((2026, 3, 10), (7, 59, 0))));
        let clock: LocalClock = {
            let now = now.clone();
            Arc::new(move || *now.lock().unwrap())
        };
        let mut cfg = AccountConfig::with_defaults("host", "KEY-HOST-1", sim.base_url());
        cfg.poll_interval = POLL;
        cfg.earnings_digest_at = Some(NaiveTime::from_hms_opt(8, 0, 0).unwrap());
        let store = StoreHandle::open(&dir.path().join("state.db")).unwrap();
        let client = VastClient::new(
            shared_http_client(&fast_client()),
            cfg.api_url.clone(),
            cfg.api_key.clone(),
            fast_client(),
        );
        let account = AccountActor::new(cfg, client, store.clone(), None)
            .unwrap()
            .with_local_clock(clock)
            .start();

        let digests = |events: Vec<Event>| -> Vec<Event> {
            events
                .into_iter()
                .filter(|e| e.kind.as_str() == "earnings_digest")
                .collect()
        };
        let earnings_requests = || {
            sim.requests()
                .iter()
                .filter(|r| r.route == "earnings")
                .count()
        };

        // Before the configured time: nothing, however many polls.
        settle().await;
        assert!(digests(outbox(&store).await).is_empty());
        assert_eq!(earnings_requests(), 0);

        *now.lock().unwrap() = local((2026, 3, 10), (8, 0, 5));
        let store2 = store.clone();
        wait_until(
            "first digest",
            || outbox(&store2),
            |e| e.kind.as_str() == "earnings_digest",
        )
        .await;
        // Later the same day: not again.
        settle().await;
        *now.lock().unwrap() = local((2026, 3, 10), (23, 59, 0));
        settle().await;
        let first = digests(outbox(&store).await);
        assert_eq!(first.len(), 1, "one digest per day");
        assert_eq!(earnings_requests(), 1, "earnings fetched once");

        // The next day's digest reports the day before.
        *now.lock().unwrap() = local((2026, 3, 11), (8, 30, 0));
        wait_until(
            "second digest",
            || outbox(&store2),
            |e| e.kind.as_str() == "earnings_digest" && e.data["day"] == "2026-03-10",
        )
        .await;
        settle().await;
        let all = digests(outbox(&store).await);
        assert_eq!(all.len(), 2);

        let d = &all[0];
        assert_eq!(d.account.as_deref(), Some("host"));
        assert_eq!(d.data["day"], "2026-03-09");
        let machines = d.data["machines"].as_array().unwrap();
        assert_eq!(machines.len(), 2);
        assert_eq!(machines[0]["machine_id"], 501);
        assert_eq!(machines[0]["name"], "rig-a");
        assert_eq!(machines[0]["gpu"], 12.5);
        assert_eq!(machines[0]["storage"], 1.25);
        assert_eq!(machines[0]["total"], 14.5);
        assert_eq!(machines[1]["machine_id"], 502);
        assert_eq!(machines[1]["name"], "rig-b");
        assert_eq!(machines[1]["total"], 3.0);
        assert_eq!(d.data["total"]["total"], 17.5);
        assert!(d.text.contains("rig-a (501)"), "{}", d.text);
        assert_ne!(all[0].id, all[1].id);

        // The window asked for is the reported day (days since the epoch).
        let day_number = NaiveDate::from_ymd_opt(2026, 3, 9)
            .unwrap()
            .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days();
        let asked = sim
            .requests()
            .into_iter()
            .find(|r| r.route == "earnings")
            .and_then(|r| r.query)
            .unwrap_or_default();
        assert!(
            asked.contains(&format!("sday={day_number}")),
            "earnings query {asked}"
        );

        account
            .send(vast_supervisor::actors::account::StopAccount)
            .await
            .unwrap();
        sim.shutdown();
    });
}

#[test]
fn instance_stuck_carries_a_window_that_holds_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-STUCK-1", "stuck");
        sim.add_instance("stuck", spec(3001, "worker", Some("running")))
            .unwrap();
        let mut stuck = renter("stuck", "KEY-STUCK-1", &sim);
        stuck.stuck_after = Duration::from_millis(700);
        let sup = start_file_supervisor(vec![stuck], dir.path(), &out, fast_client());
        wait_for(&out, "startup_summary", |e| {
            e.kind.as_str() == "startup_summary"
        })
        .await;
        settle().await;
        let before = chrono::Utc::now();
        sim.set_instance_status(3001, Some("exited"), "running", None)
            .unwrap();
        let after = chrono::Utc::now();
        let events = wait_for(&out, "3001 stuck", |e| is(e, "instance_stuck", 3001)).await;
        let e = events
            .iter()
            .find(|e| is(e, "instance_stuck", 3001))
            .unwrap();
        let since = e.since.expect("instance_stuck has a since");
        assert!(
            since <= after && e.time >= before,
            "({since}, {}] misses the stop in [{before}, {after}]",
            e.time
        );
        assert!(e.time - after >= chrono::Duration::milliseconds(700));
        sup.send(Shutdown).await.unwrap();
        sim.shutdown();
    });
    assert_eq!(
        per_instance(&read_events(&out)).get(&3001),
        Some(&expect("stuck", &["instance_exited", "instance_stuck"]))
    );
}

#[test]
fn credit_low_comes_within_one_poll_of_the_drop_at_a_real_poll_interval() {
    // 10 s: the interval at which the daemon used to read credit only every 5 minutes.
    const REAL_POLL: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-CASH-2", "cash");
        sim.set_credit("cash", 20.0).unwrap();
        let mut cash = renter("cash", "KEY-CASH-2", &sim);
        cash.poll_interval = REAL_POLL;
        cash.credit_low_below = Some(5.0);
        let sup = start_file_supervisor(vec![cash], dir.path(), &out, fast_client());
        // The first poll has read the credit (above the threshold).
        let read_credit = || {
            sim.requests()
                .iter()
                .filter(|r| r.path.starts_with("/api/v0/users/current"))
                .count()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while read_credit() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "credit never read");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let dropped = tokio::time::Instant::now();
        sim.set_credit("cash", 3.5).unwrap();
        wait_for(&out, "credit_low", |e| e.kind.as_str() == "credit_low").await;
        // One poll is at most 11 s with the jitter; a little slack for the file target.
        assert!(
            dropped.elapsed() <= REAL_POLL.mul_f64(1.1) + Duration::from_secs(1),
            "credit_low {:?} after the drop",
            dropped.elapsed()
        );
        sup.send(Shutdown).await.unwrap();
        sim.shutdown();
    });
}
