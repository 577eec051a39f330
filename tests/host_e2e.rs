//! Host monitoring end to end: the real actor tree against the simulated Vast cloud over loopback
//! HTTP, with two accounts, delivering to a `file://` target. Checks the exact event sequence per
//! account, that every event names the right account, that no event id repeats, and that injected
//! API faults cause no false events.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use vast_supervisor::actors::supervisor::Shutdown;
use vast_supervisor::config::AccountConfig;
use vast_supervisor::event::Event;
use vast_supervisor::sim::{Fault, FaultDuration, MachineSpec, RentalKind, SimCloud, SimHandle};
use vast_supervisor::vast::ClientOptions;

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
        ..ClientOptions::default()
    }
}

fn account(name: &str, key: &str, sim: &SimHandle) -> AccountConfig {
    let mut a = AccountConfig::with_defaults(name, key, sim.base_url());
    a.poll_interval = POLL;
    a.offline_grace = Duration::from_millis(600);
    a.stale_after_polls = 3;
    a
}

/// Lets a few polls pass so that a change that should produce nothing gets its chance to.
async fn settle() {
    tokio::time::sleep(POLL * 5).await;
}

fn kinds_for(events: &[Event], account: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.account.as_deref() == Some(account))
        .map(|e| e.kind.to_string())
        .collect()
}

#[test]
fn two_accounts_full_host_lifecycle_with_faults() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-ACME-123", "acme");
        sim.add_account("KEY-BETA-456", "beta");
        sim.add_machine("acme", MachineSpec::new(101, "acme-rig-1", 4, "RTX 4090"))
            .unwrap();
        sim.add_machine("acme", MachineSpec::new(102, "acme-rig-2", 2, "RTX 3090"))
            .unwrap();
        sim.add_machine("beta", MachineSpec::new(201, "beta-rig-1", 8, "H100"))
            .unwrap();
        // Already rented when the daemon starts: adopted silently.
        sim.start_rental(
            "acme",
            102,
            "pre",
            vec![0u32, 1],
            RentalKind::OnDemand,
            30.0,
        )
        .unwrap();

        let accounts = vec![
            account("acme", "KEY-ACME-123", &sim),
            account("beta", "KEY-BETA-456", &sim),
        ];
        let sup = start_file_supervisor(accounts, dir.path(), &out, fast_client());

        wait_for(&out, "startup_summary", |e| {
            e.kind.as_str() == "startup_summary"
        })
        .await;

        // Two renters start in the same poll on different accounts.
        sim.start_rental("acme", 101, "r1", vec![0u32, 1], RentalKind::OnDemand, 50.0)
            .unwrap();
        sim.start_rental(
            "beta",
            201,
            "b1",
            vec![0u32, 1],
            RentalKind::Interruptible,
            20.0,
        )
        .unwrap();
        wait_for(&out, "acme rental_start", |e| {
            e.kind.as_str() == "rental_start" && e.account.as_deref() == Some("acme")
        })
        .await;
        wait_for(&out, "beta rental_start", |e| {
            e.kind.as_str() == "rental_start" && e.account.as_deref() == Some("beta")
        })
        .await;

        // Transient faults absorbed by the client's retries: nothing happens.
        sim.inject_fault("acme", Fault::BadGateway502Html, FaultDuration::Requests(2))
            .unwrap();
        sim.inject_fault("beta", Fault::RateLimitText, FaultDuration::Requests(1))
            .unwrap();
        sim.inject_fault("beta", Fault::TruncatedJson, FaultDuration::Requests(1))
            .unwrap();
        settle().await;

        sim.pause_rental("acme", 101, "r1").unwrap();
        wait_for(&out, "rental_pause", |e| e.kind.as_str() == "rental_pause").await;
        sim.resume_rental("acme", 101, "r1").unwrap();
        wait_for(&out, "rental_resume", |e| {
            e.kind.as_str() == "rental_resume"
        })
        .await;

        // An interruptible pushed off by an on-demand rental in one step.
        sim.preempt("beta", 201, "b1", "b2", RentalKind::OnDemand, 40.0)
            .unwrap();
        wait_for(&out, "rental_preempt", |e| {
            e.kind.as_str() == "rental_preempt"
        })
        .await;

        sim.end_rental("acme", 101, "r1").unwrap();
        wait_for(&out, "rental_end", |e| {
            e.kind.as_str() == "rental_end" && e.account.as_deref() == Some("acme")
        })
        .await;

        // beta's API fails persistently: one account_stale, no machine events, then restored.
        sim.inject_fault(
            "beta",
            Fault::BadGateway502Html,
            FaultDuration::UntilCleared,
        )
        .unwrap();
        wait_for(&out, "account_stale", |e| {
            e.kind.as_str() == "account_stale"
        })
        .await;
        settle().await;
        sim.clear_faults("beta").unwrap();
        wait_for(&out, "account_restored", |e| {
            e.kind.as_str() == "account_restored"
        })
        .await;

        // A machine going offline beyond the grace, then back.
        sim.set_timeout(102, 45.0).unwrap();
        wait_for(&out, "machine_offline", |e| {
            e.kind.as_str() == "machine_offline"
        })
        .await;
        sim.set_timeout(102, 0.0).unwrap();
        wait_for(&out, "machine_recovered", |e| {
            e.kind.as_str() == "machine_recovered"
        })
        .await;
        settle().await;

        sup.send(Shutdown).await.unwrap();
        sim.shutdown();
    });

    let events = read_events(&out);
    let mut ids = HashSet::new();
    for e in &events {
        assert!(ids.insert(e.id.clone()), "duplicate event id {}", e.id);
        if let Some(a) = &e.account {
            assert!(a == "acme" || a == "beta");
            // Machine ids tell which account a machine event belongs to.
            if let vast_supervisor::event::Subject::Machine { id, .. } = e.subject {
                assert_eq!(
                    a,
                    if id < 200 { "acme" } else { "beta" },
                    "event {} on the wrong account",
                    e.id
                );
            }
        }
    }
    assert_eq!(
        kinds_for(&events, "acme"),
        [
            "rental_start",
            "rental_pause",
            "rental_resume",
            "rental_end",
            "machine_offline",
            "machine_recovered"
        ],
        "acme's events"
    );
    assert_eq!(
        kinds_for(&events, "beta"),
        [
            "rental_start",
            "rental_preempt",
            "rental_start",
            "account_stale",
            "account_restored"
        ],
        "beta's events"
    );
    let supervisor: Vec<&str> = events
        .iter()
        .filter(|e| e.account.is_none())
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        supervisor,
        ["supervisor_start", "startup_summary", "supervisor_stop"]
    );
    let summary = events
        .iter()
        .find(|e| e.kind.as_str() == "startup_summary")
        .unwrap();
    assert_eq!(
        summary.data["machines"], 3,
        "three machines adopted: {}",
        summary.data
    );
    assert_eq!(
        summary.data["rentals"], 1,
        "the pre-existing rental is adopted: {}",
        summary.data
    );
    let start = events
        .iter()
        .find(|e| e.kind.as_str() == "rental_start" && e.account.as_deref() == Some("acme"))
        .unwrap();
    assert_eq!(start.data["gpus"], serde_json::json!([0, 1]));
    assert_eq!(start.data["gpu_type"], "D");
    assert!(start.since.is_some() && start.since.unwrap() < start.time);
}

#[test]
fn unreadable_state_is_quarantined_and_a_revoked_key_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    let db = dir.path().join("state.db");
    {
        // State left by an earlier run: one machine's row is corrupt.
        let mut store = vast_supervisor::store::Store::open(&db).unwrap();
        store
            .put_raw_state("gamma", "machine", "301", "{not json")
            .unwrap();
    }
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-GAMMA-789", "gamma");
        sim.add_machine("gamma", MachineSpec::new(301, "gamma-rig-1", 2, "A100"))
            .unwrap();
        sim.add_machine("gamma", MachineSpec::new(302, "gamma-rig-2", 2, "A100"))
            .unwrap();
        let accounts = vec![account("gamma", "KEY-GAMMA-789", &sim)];
        let sup = start_file_supervisor(accounts, dir.path(), &out, fast_client());

        let events = wait_for(&out, "startup_summary", |e| {
            e.kind.as_str() == "startup_summary"
        })
        .await;
        let summary = events
            .iter()
            .find(|e| e.kind.as_str() == "startup_summary")
            .unwrap();
        assert!(
            summary.text.contains("machine 301"),
            "the summary reports the quarantine: {}",
            summary.text
        );
        assert_eq!(
            summary.data["machines"], 2,
            "the quarantined machine is adopted afresh"
        );

        // The machine with the bad state is watched again.
        sim.start_rental("gamma", 301, "r", vec![0u32], RentalKind::OnDemand, 10.0)
            .unwrap();
        wait_for(&out, "rental_start on 301", |e| {
            e.kind.as_str() == "rental_start"
        })
        .await;

        // A revoked key: one account_auth_failed however many probes fail, then restored.
        sim.inject_fault("gamma", Fault::Unauthorized401, FaultDuration::UntilCleared)
            .unwrap();
        wait_for(&out, "account_auth_failed", |e| {
            e.kind.as_str() == "account_auth_failed"
        })
        .await;
        tokio::time::sleep(POLL * 25).await;
        sim.clear_faults("gamma").unwrap();
        wait_for(&out, "account_restored", |e| {
            e.kind.as_str() == "account_restored"
        })
        .await;
        sup.send(Shutdown).await.unwrap();
        sim.shutdown();
    });
    let events = read_events(&out);
    assert_eq!(
        kinds_for(&events, "gamma"),
        ["rental_start", "account_auth_failed", "account_restored"],
        "one auth failure, no machine events from the failed polls"
    );
    let failed = events
        .iter()
        .find(|e| e.kind.as_str() == "account_auth_failed")
        .unwrap();
    assert!(
        !failed.text.contains("KEY-GAMMA") && !failed.data.to_string().contains("KEY-GAMMA"),
        "no key in the event"
    );
}

/// Runs `switch` on the simulator and returns when it happened: between the two instants.
fn switched(switch: impl FnOnce()) -> (DateTime<Utc>, DateTime<Utc>) {
    let before = Utc::now();
    switch();
    (before, Utc::now())
}

/// The event's `(since, time]` holds the switch, known to lie in `[before, after]`.
fn assert_window_holds(e: &Event, (before, after): (DateTime<Utc>, DateTime<Utc>)) {
    let since = e
        .since
        .unwrap_or_else(|| panic!("{} without since", e.kind));
    assert!(
        since <= after && e.time >= before,
        "{}: ({since}, {}] misses the switch in [{before}, {after}]",
        e.kind,
        e.time
    );
}

#[test]
fn debounced_events_carry_a_window_that_holds_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sim.add_account("KEY-WIN-1", "win");
        sim.add_machine("win", MachineSpec::new(501, "win-rig-1", 2, "RTX 4090"))
            .unwrap();
        let accounts = vec![account("win", "KEY-WIN-1", &sim)];
        let sup = start_file_supervisor(accounts, dir.path(), &out, fast_client());
        wait_for(&out, "startup_summary", |e| {
            e.kind.as_str() == "startup_summary"
        })
        .await;
        settle().await;
        let last = |kind: &str| {
            read_events(&out)
                .into_iter()
                .rev()
                .find(|e| e.kind.as_str() == kind)
                .unwrap()
        };

        // machine_offline after the grace (a reported timeout below it).
        let went_down = switched(|| sim.set_timeout(501, 0.1).unwrap());
        wait_for(&out, "machine_offline", |e| {
            e.kind.as_str() == "machine_offline"
        })
        .await;
        let offline = last("machine_offline");
        assert!(offline.time - went_down.1 >= chrono::Duration::milliseconds(600));
        assert_window_holds(&offline, went_down);

        // machine_recovered after two clean polls.
        let came_back = switched(|| sim.set_timeout(501, 0.0).unwrap());
        wait_for(&out, "machine_recovered", |e| {
            e.kind.as_str() == "machine_recovered"
        })
        .await;
        assert_window_holds(&last("machine_recovered"), came_back);

        // machine_error on first sight, and the end of its episode after two clean polls.
        let failed = switched(|| sim.set_error(501, Some("GPU fell off the bus")).unwrap());
        wait_for(&out, "machine_error", |e| {
            e.kind.as_str() == "machine_error"
        })
        .await;
        assert_window_holds(&last("machine_error"), failed);
        let fixed = switched(|| sim.set_error(501, None).unwrap());
        wait_for(&out, "error recovered", |e| {
            e.kind.as_str() == "machine_recovered" && e.data["recovered_from"] == "error"
        })
        .await;
        assert_window_holds(&last("machine_recovered"), fixed);

        // account_stale after three failed polls.
        let broke = switched(|| {
            sim.inject_fault("win", Fault::BadGateway502Html, FaultDuration::UntilCleared)
                .unwrap()
        });
        wait_for(&out, "account_stale", |e| {
            e.kind.as_str() == "account_stale"
        })
        .await;
        assert_window_holds(&last("account_stale"), broke);
        let works = switched(|| sim.clear_faults("win").unwrap());
        wait_for(&out, "account_restored", |e| {
            e.kind.as_str() == "account_restored"
        })
        .await;
        assert_window_holds(&last("account_restored"), works);

        sup.send(Shutdown).await.unwrap();
        sim.shutdown();
    });
    assert_eq!(
        kinds_for(&read_events(&out), "win"),
        [
            "machine_offline",
            "machine_recovered",
            "machine_error",
            "machine_recovered",
            "account_stale",
            "account_restored"
        ]
    );
}
