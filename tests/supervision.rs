//! Supervision of machine and instance actors (SPEC §8) in the real actor tree against the
//! simulated cloud: a machine whose detection keeps panicking is restarted, then marked degraded
//! (one `machine_error` with reason "supervision", account state "degraded", counted in status and
//! metrics) and backed off, while another account's events keep flowing; once the fault is gone
//! its events resume. A machine actor that dies outright is replaced from its stored state.
//! Instance actors get the same: one `instance_error` with reason "supervision", back-off while
//! their siblings keep reporting, events again once the fault is gone, replacement from the stored
//! record after a death.

use actix::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use vast_supervisor::actors::supervision::{Child, FaultInjection, InjectedFault, RestartPolicy};
use vast_supervisor::actors::supervisor::Shutdown;
use vast_supervisor::actors::{Supervisor, SupervisorOptions};
use vast_supervisor::config::{AccountConfig, TargetConfig, TargetUrl};
use vast_supervisor::control::{PublishedStatus, StatusSnapshot};
use vast_supervisor::event::{Event, Subject};
use vast_supervisor::metrics::Metrics;
use vast_supervisor::sim::{InstanceSpec, MachineSpec, RentalKind, SimCloud, SimHandle};
use vast_supervisor::store::StoreHandle;
use vast_supervisor::vast::ClientOptions;

const POLL: Duration = Duration::from_millis(100);

#[path = "support/events.rs"]
mod events;
use events::{read_events, wait_for};

fn account(name: &str, key: &str, sim: &SimHandle) -> AccountConfig {
    let mut a = AccountConfig::with_defaults(name, key, sim.base_url());
    a.poll_interval = POLL;
    a
}

fn machine_of(e: &Event) -> Option<u64> {
    match e.subject {
        Subject::Machine { id, .. } => Some(id),
        _ => None,
    }
}

fn instance_of(e: &Event) -> Option<u64> {
    match e.subject {
        Subject::Instance { id, .. } => Some(id),
        _ => None,
    }
}

fn is_supervision(e: &Event) -> bool {
    e.data.get("reason").and_then(|r| r.as_str()) == Some("supervision")
}

async fn wait_until(what: &str, pred: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !pred() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn account_status(status: &watch::Receiver<PublishedStatus>, name: &str) -> serde_json::Value {
    let json = status.borrow().json.clone();
    let snapshot: StatusSnapshot =
        serde_json::from_slice(&json).expect("the published status is JSON");
    snapshot
        .accounts
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap_or_default()
}

/// The value of one series in the rendered metrics.
fn metric(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series}"))
        .parse()
        .unwrap()
}

/// The injected panics are expected: keep them out of the test output.
fn silence_injected_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("injected fault") {
            default_hook(info);
        }
    }));
}

fn supervisor_options(faults: &FaultInjection) -> SupervisorOptions {
    SupervisorOptions {
        client: ClientOptions::for_short_polls(POLL),
        flush_timeout: Duration::from_secs(2),
        restart_policy: RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(60),
            backoff_base: Duration::from_millis(300),
            backoff_cap: Duration::from_secs(1),
        },
        fault_injection: Some(faults.clone()),
        ..SupervisorOptions::default()
    }
}

/// Keeps the status snapshot in demand (as a running `status` would), so it is rebuilt every
/// second and the test can read it.
fn keep_status_fresh(sup: &Supervisor) {
    let demand = sup.status_demand();
    actix::spawn(async move {
        loop {
            demand.asked();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn a_failing_machine_actor_is_restarted_degraded_and_recovered() {
    silence_injected_panics();
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        tokio::time::timeout(Duration::from_secs(90), scenario(dir.path(), &out))
            .await
            .expect("the scenario finishes in time");
    });

    let events = read_events(&out);
    let on_101: Vec<(String, bool)> = events
        .iter()
        .filter(|e| e.account.as_deref() == Some("acme") && machine_of(e) == Some(101))
        .map(|e| (e.kind.to_string(), is_supervision(e)))
        .collect();
    assert_eq!(
        on_101,
        [
            ("machine_error".to_string(), true),
            ("rental_start".to_string(), false),
            ("machine_recovered".to_string(), true),
        ],
        "one alert, the change detected once the fault is gone, one recovery"
    );
    let on_102: Vec<&str> = events
        .iter()
        .filter(|e| machine_of(e) == Some(102))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        on_102,
        ["rental_start"],
        "the replaced actor continued from the stored state (no machine_added)"
    );
    let beta: Vec<&str> = events
        .iter()
        .filter(|e| e.account.as_deref() == Some("beta"))
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(beta, ["rental_start", "rental_end"]);
}

/// The simulated cloud of the machine scenarios: acme with machines 101 and 102, beta with 201.
async fn acme_and_beta() -> SimHandle {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-ACME-123", "acme");
    sim.add_account("KEY-BETA-456", "beta");
    sim.add_machine("acme", MachineSpec::new(101, "acme-rig-1", 4, "RTX 4090"))
        .unwrap();
    sim.add_machine("acme", MachineSpec::new(102, "acme-rig-2", 4, "RTX 4090"))
        .unwrap();
    sim.add_machine("beta", MachineSpec::new(201, "beta-rig-1", 2, "H100"))
        .unwrap();
    sim
}

async fn scenario(dir: &Path, out: &Path) {
    let sim = acme_and_beta().await;
    let faults = FaultInjection::default();
    let store = StoreHandle::open(&dir.join("state.db")).unwrap();
    let target = TargetConfig::with_defaults(
        "file",
        TargetUrl::File {
            path: out.to_path_buf(),
        },
    );
    let opts = supervisor_options(&faults);
    let (status_tx, status) = watch::channel(PublishedStatus::default());
    let sup = Supervisor::new(
        vec![
            account("acme", "KEY-ACME-123", &sim),
            account("beta", "KEY-BETA-456", &sim),
        ],
        vec![target],
        store,
        opts,
    )
    .with_status(status_tx);
    let metrics = sup.metrics();
    keep_status_fresh(&sup);
    let sup = sup.start();
    wait_for(out, "startup_summary", |e| {
        e.kind.as_str() == "startup_summary"
    })
    .await;

    // Detection of acme's machine 101 panics on every observation.
    faults.set(
        "acme",
        Child::Machine(101),
        InjectedFault::PanicInDetection,
        None,
    );
    sim.start_rental("beta", 201, "b1", vec![0u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    wait_for(out, "beta's rental_start during the fault", |e| {
        e.kind.as_str() == "rental_start" && e.account.as_deref() == Some("beta")
    })
    .await;
    wait_for(out, "the supervision alert for 101", |e| {
        e.kind.as_str() == "machine_error" && machine_of(e) == Some(101) && is_supervision(e)
    })
    .await;
    wait_until("status shows acme degraded", || {
        let a = account_status(&status, "acme");
        a["state"] == "degraded"
            && a["degraded_machines"] == serde_json::json!([101])
            && a["restarts"].as_u64() >= Some(6)
    })
    .await;
    assert!(
        metric(
            &metrics,
            "vast_supervisor_machine_restarts_total{account=\"acme\"}"
        ) >= 6.0
    );
    assert_eq!(
        metric(
            &metrics,
            "vast_supervisor_machines_degraded{account=\"acme\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "vast_supervisor_account_state{account=\"acme\",state=\"degraded\"}"
        ),
        1.0
    );
    assert_eq!(account_status(&status, "beta")["state"], "ok");

    // A change on the faulty machine is not seen while it fails ...
    sim.start_rental("acme", 101, "r1", vec![0u32, 1], RentalKind::OnDemand, 20.0)
        .unwrap();
    tokio::time::sleep(POLL * 5).await;
    assert!(
        !read_events(out)
            .iter()
            .any(|e| e.kind.as_str() == "rental_start" && machine_of(e) == Some(101)),
        "no detection while the fault lasts"
    );
    // ... and is detected once the fault is gone.
    faults.clear("acme", Child::Machine(101));
    wait_for(out, "acme 101 rental_start after the fault", |e| {
        e.kind.as_str() == "rental_start" && machine_of(e) == Some(101)
    })
    .await;
    wait_for(out, "the supervision recovery for 101", |e| {
        e.kind.as_str() == "machine_recovered" && machine_of(e) == Some(101) && is_supervision(e)
    })
    .await;
    wait_until("acme ok again", || {
        account_status(&status, "acme")["state"] == "ok"
    })
    .await;

    // Machine 102's actor dies outright (a panic outside the core): it is replaced from the
    // stored state, so a later change is detected as a change, not as a new machine.
    let restarts_before = metric(
        &metrics,
        "vast_supervisor_machine_restarts_total{account=\"acme\"}",
    );
    faults.set(
        "acme",
        Child::Machine(102),
        InjectedFault::KillActor,
        Some(1),
    );
    wait_until("the kill fired", || {
        faults.fired("acme", Child::Machine(102)) == 1
    })
    .await;
    wait_until("the dead actor counted as a restart", || {
        metric(
            &metrics,
            "vast_supervisor_machine_restarts_total{account=\"acme\"}",
        ) == restarts_before + 1.0
    })
    .await;
    sim.start_rental("acme", 102, "r2", vec![0u32], RentalKind::OnDemand, 20.0)
        .unwrap();
    wait_for(out, "acme 102 rental_start after the replacement", |e| {
        e.kind.as_str() == "rental_start" && machine_of(e) == Some(102)
    })
    .await;
    wait_until("status counts 102's restart", || {
        let a = account_status(&status, "acme");
        a["restarts_by_machine"]["102"] == 1 && a["state"] == "ok"
    })
    .await;

    // The other account was never touched.
    sim.end_rental("beta", 201, "b1").unwrap();
    wait_for(out, "beta's rental_end", |e| {
        e.kind.as_str() == "rental_end" && e.account.as_deref() == Some("beta")
    })
    .await;

    sup.send(Shutdown).await.unwrap();
    sim.shutdown();
}

#[test]
fn a_failing_instance_actor_is_restarted_degraded_and_replaced() {
    silence_injected_panics();
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        tokio::time::timeout(Duration::from_secs(90), instance_scenario(dir.path(), &out))
            .await
            .expect("the scenario finishes in time");
    });

    let events = read_events(&out);
    let on = |id: u64| -> Vec<(String, bool)> {
        events
            .iter()
            .filter(|e| instance_of(e) == Some(id))
            .map(|e| (e.kind.to_string(), is_supervision(e)))
            .collect()
    };
    assert_eq!(
        on(5001),
        [
            ("instance_error".to_string(), true),
            ("instance_stopped".to_string(), false),
        ],
        "one alert, then the change detected once the fault is gone"
    );
    assert_eq!(
        on(5002),
        [
            ("instance_stopped".to_string(), false),
            ("instance_running".to_string(), false),
        ],
        "the sibling reported during the fault; its replaced actor continued from the stored \
         record (no instance_created)"
    );
    let alert = events
        .iter()
        .find(|e| instance_of(e) == Some(5001))
        .unwrap();
    assert_eq!(alert.subject.label(), "web (5001)");
    assert_eq!(alert.data["restarts"], 6);
}

fn instance(id: u64, label: &str) -> InstanceSpec {
    InstanceSpec {
        id: Some(id),
        label: Some(label.to_string()),
        machine_id: Some(24126),
        num_gpus: Some(1),
        gpu_name: Some("RTX 4090".into()),
        actual_status: Some("running".into()),
        ..InstanceSpec::default()
    }
}

async fn instance_scenario(dir: &Path, out: &Path) {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-RENT-789", "rent");
    sim.add_instance("rent", instance(5001, "web")).unwrap();
    sim.add_instance("rent", instance(5002, "batch")).unwrap();
    let mut renter = account("rent", "KEY-RENT-789", &sim);
    renter.watch.machines = false;
    renter.watch.instances = true;
    let faults = FaultInjection::default();
    let target = TargetConfig::with_defaults(
        "file",
        TargetUrl::File {
            path: out.to_path_buf(),
        },
    );
    let (status_tx, status) = watch::channel(PublishedStatus::default());
    let sup = Supervisor::new(
        vec![renter],
        vec![target],
        StoreHandle::open(&dir.join("state.db")).unwrap(),
        supervisor_options(&faults),
    )
    .with_status(status_tx);
    let metrics = sup.metrics();
    keep_status_fresh(&sup);
    let sup = sup.start();
    wait_for(out, "startup_summary", |e| {
        e.kind.as_str() == "startup_summary"
    })
    .await;
    let restarts = || {
        metric(
            &metrics,
            "vast_supervisor_instance_restarts_total{account=\"rent\"}",
        )
    };
    let degraded = || {
        metric(
            &metrics,
            "vast_supervisor_instances_degraded{account=\"rent\"}",
        )
    };

    // Detection of instance 5001 panics on every observation.
    faults.set(
        "rent",
        Child::Instance(5001),
        InjectedFault::PanicInDetection,
        None,
    );
    wait_for(out, "the supervision alert for 5001", |e| {
        e.kind.as_str() == "instance_error" && instance_of(e) == Some(5001) && is_supervision(e)
    })
    .await;
    wait_until("status shows rent degraded", || {
        account_status(&status, "rent")["state"] == "degraded"
    })
    .await;
    assert!(restarts() >= 6.0);
    assert_eq!(degraded(), 1.0);
    assert_eq!(
        metric(
            &metrics,
            "vast_supervisor_machine_restarts_total{account=\"rent\"}"
        ),
        0.0,
        "instance restarts are not counted as machine restarts"
    );

    // Both instances stop: the sibling is reported, the faulty one is not while it fails ...
    sim.set_instance_status(5001, Some("exited"), "stopped", None)
        .unwrap();
    sim.set_instance_status(5002, Some("exited"), "stopped", None)
        .unwrap();
    wait_for(out, "5002 stopped during the fault", |e| {
        e.kind.as_str() == "instance_stopped" && instance_of(e) == Some(5002)
    })
    .await;
    tokio::time::sleep(POLL * 5).await;
    assert!(
        !read_events(out)
            .iter()
            .any(|e| e.kind.as_str() == "instance_stopped" && instance_of(e) == Some(5001)),
        "no detection while the fault lasts"
    );
    // ... and is, once the fault is gone; the back-off ends with it.
    faults.clear("rent", Child::Instance(5001));
    wait_for(out, "5001 stopped after the fault", |e| {
        e.kind.as_str() == "instance_stopped" && instance_of(e) == Some(5001)
    })
    .await;
    wait_until("rent ok again", || {
        account_status(&status, "rent")["state"] == "ok" && degraded() == 0.0
    })
    .await;

    // Instance 5002's actor dies outright: it is replaced from the stored record, so a later
    // change is detected as a change, not as a new instance.
    let before = restarts();
    faults.set(
        "rent",
        Child::Instance(5002),
        InjectedFault::KillActor,
        Some(1),
    );
    wait_until("the kill fired", || {
        faults.fired("rent", Child::Instance(5002)) == 1
    })
    .await;
    wait_until("the dead actor counted as a restart", || {
        restarts() == before + 1.0
    })
    .await;
    sim.set_instance_status(5002, Some("running"), "running", None)
        .unwrap();
    wait_for(out, "5002 running after the replacement", |e| {
        e.kind.as_str() == "instance_running" && instance_of(e) == Some(5002)
    })
    .await;
    assert_eq!(account_status(&status, "rent")["state"], "ok");

    sup.send(Shutdown).await.unwrap();
    sim.shutdown();
}

/// Issue 11 item 1: a panic in a supervisor-level actor never leaves a zombie. An account actor
/// that panics is restarted from its stored state (its machines are not announced again, its
/// next change is detected, the other account never notices); a panic in the supervisor itself
/// ends its lifeline, on which the daemon exits.
#[test]
fn a_panicking_account_actor_is_restarted_and_a_dead_supervisor_is_seen() {
    silence_injected_panics();
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    System::new().block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let sim = acme_and_beta().await;
            let faults = FaultInjection::default();
            let store = StoreHandle::open(&dir.path().join("state.db")).unwrap();
            let target = TargetConfig::with_defaults("file", TargetUrl::File { path: out.clone() });
            let sup = Supervisor::new(
                vec![
                    account("acme", "KEY-ACME-123", &sim),
                    account("beta", "KEY-BETA-456", &sim),
                ],
                vec![target],
                store,
                supervisor_options(&faults),
            );
            let metrics = sup.metrics();
            let mut lifeline = sup.lifeline();
            let sup = sup.start();
            wait_for(&out, "startup_summary", |e| {
                e.kind.as_str() == "startup_summary"
            })
            .await;

            let polls = || metric(&metrics, "vast_supervisor_polls_total{account=\"acme\"}");
            faults.panic_account("acme", 1);
            let before = polls();
            // The next poll panics; the restarted actor polls again from its stored state.
            wait_until("acme polls again after its actor died", || {
                polls() > before + 3.0
            })
            .await;
            sim.start_rental("acme", 101, "r1", vec![0u32], RentalKind::OnDemand, 10.0)
                .unwrap();
            sim.start_rental("beta", 201, "b1", vec![0u32], RentalKind::OnDemand, 10.0)
                .unwrap();
            wait_for(&out, "acme's rental after the restart", |e| {
                e.kind.as_str() == "rental_start" && e.account.as_deref() == Some("acme")
            })
            .await;
            wait_for(&out, "beta's rental", |e| {
                e.kind.as_str() == "rental_start" && e.account.as_deref() == Some("beta")
            })
            .await;
            let mut kinds: Vec<String> = read_events(&out)
                .iter()
                .filter(|e| e.account.is_some())
                .map(|e| format!("{}:{}", e.account.as_deref().unwrap_or(""), e.kind))
                .collect();
            kinds.sort();
            assert_eq!(
                kinds,
                ["acme:rental_start", "beta:rental_start"],
                "no machine_added or other noise from the restart"
            );
            assert!(metrics.health().healthy());

            faults.panic_reload(1);
            let _ = sup.send(vast_supervisor::actors::supervisor::Reload).await;
            tokio::time::timeout(Duration::from_secs(5), lifeline.changed())
                .await
                .expect("the lifeline ends when the supervisor dies")
                .expect_err("no value is ever sent on the lifeline");
            sim.shutdown();
        })
        .await
        .expect("the scenario finishes in time");
    });
}
