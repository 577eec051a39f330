//! The simulated cloud itself: scenarios from TOML applied step by step and on the clock, rows
//! derived coherently from rental contracts, the demo script, the HTTP surface (trailing
//! slashes, both auth styles, unknown keys, a real TCP reset) and running inside actix.

use std::future::Future;
use std::io::{Read, Write};
use std::time::Duration;

use vast_supervisor::sim::{
    demo_scenario, Fault, FaultDuration, Scenario, SimCloud, SimHandle, DEMO_HOST_KEY,
    DEMO_RENTER_KEY,
};
use vast_supervisor::util::Secret;
use vast_supervisor::vast::{shared_http_client, ClientOptions, Machine, VastClient};

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step took too long")
}

fn client(sim: &SimHandle, key: &str) -> VastClient {
    let opts = ClientOptions {
        request_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        min_spacing: Duration::ZERO,
        log_poll_interval: Duration::from_millis(5),
        ..ClientOptions::default()
    };
    VastClient::new(
        shared_http_client(&opts),
        sim.base_url(),
        Secret::new(key),
        opts,
    )
}

async fn start() -> SimHandle {
    SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

const SMALL: &str = r#"
[[step]]
label = "setup"
[[step.action]]
type = "add_account"
key = "small-key-0042"
name = "host"
[[step.action]]
type = "add_machine"
account = "host"
machine = { id = 1, hostname = "box", num_gpus = 4, gpu_name = "RTX 4090" }

[[step]]
label = "an on-demand and an interruptible start in the same step"
[[step.action]]
type = "start_rental"
account = "host"
machine = 1
rental = "od"
gpus = [0, 1]
kind = "D"
disk_gb = 50
[[step.action]]
type = "start_rental"
account = "host"
machine = 1
rental = "spot"
gpus = 1
kind = "I"
disk_gb = 20

[[step]]
label = "pause"
[[step.action]]
type = "pause_rental"
account = "host"
machine = 1
rental = "od"

[[step]]
label = "interruptible preempted by a reserved rental"
[[step.action]]
type = "preempt"
account = "host"
machine = 1
rental = "spot"
by = "res"
kind = "R"
disk_gb = 5

[[step]]
label = "everything ends"
[[step.action]]
type = "end_rental"
account = "host"
machine = 1
rental = "od"
[[step.action]]
type = "end_rental"
account = "host"
machine = 1
rental = "spot"
[[step.action]]
type = "end_rental"
account = "host"
machine = 1
rental = "res"
"#;

/// (occupancy, running, running_on_demand, running_reserved, resident, on_demand, reserved, alloc)
type Derived = (String, i64, i64, i64, i64, i64, i64, Option<f64>);

fn derived(m: &Machine) -> Derived {
    (
        m.gpu_occupancy.clone().unwrap_or_default(),
        m.current_rentals_running.unwrap_or(-1),
        m.current_rentals_running_on_demand.unwrap_or(-1),
        m.current_rentals_running_reserved.unwrap_or(-1),
        m.current_rentals_resident.unwrap_or(-1),
        m.current_rentals_on_demand.unwrap_or(-1),
        m.current_rentals_reserved.unwrap_or(-1),
        m.alloc_disk_space,
    )
}

#[tokio::test]
async fn a_toml_scenario_drives_coherent_rows_step_by_step() {
    let scenario = Scenario::from_toml_str(SMALL).unwrap();
    assert_eq!(scenario.len(), 5);
    let sim = start().await;
    sim.apply_step(&scenario, 0).unwrap();
    let c = client(&sim, "small-key-0042");

    let expected: Vec<Derived> = vec![
        ("D D I x ".into(), 2, 1, 0, 2, 1, 0, Some(70.0)),
        // GPUs released, storage kept: running drops, resident and alloc stay.
        ("x x I x ".into(), 1, 0, 0, 2, 1, 0, Some(70.0)),
        // I -> R on the same GPU in one step; the interruptible keeps its storage.
        ("x x R x ".into(), 1, 0, 1, 3, 1, 1, Some(75.0)),
        ("x x x x ".into(), 0, 0, 0, 0, 0, 0, None),
    ];
    let machines = bounded(c.machines()).await.unwrap();
    assert_eq!(
        derived(&machines[0]),
        ("x x x x ".into(), 0, 0, 0, 0, 0, 0, None)
    );
    assert_eq!(machines[0].client_end_date, None);
    for (i, want) in expected.into_iter().enumerate() {
        sim.apply_step(&scenario, i + 1).unwrap();
        let machines = bounded(c.machines()).await.unwrap();
        assert_eq!(derived(&machines[0]), want, "after step {}", i + 2);
        assert_eq!(
            machines[0].client_end_date.is_some(),
            want.4 > 0,
            "client_end_date is set exactly while contracts exist"
        );
    }
    let err = sim.apply_step(&scenario, 5).unwrap_err().to_string();
    assert!(err.contains("no step 6"), "{err}");

    // A step that cannot apply names itself and the action.
    let bad = Scenario::from_toml_str(
        "[[step]]\nlabel = \"oops\"\n[[step.action]]\ntype = \"pause_rental\"\naccount = \"host\"\nmachine = 1\nrental = \"ghost\"\n",
    )
    .unwrap();
    let err = sim.apply_step(&bad, 0).unwrap_err().to_string();
    assert!(
        err.contains("step 1 \"oops\"") && err.contains("ghost"),
        "{err}"
    );
}

#[tokio::test]
async fn scenarios_run_on_the_clock() {
    let scenario = Scenario::from_toml_str(
        r#"
        [[step]]
        at = "0ms"
        [[step.action]]
        type = "add_account"
        key = "clock-key-77"
        name = "host"
        [[step.action]]
        type = "add_machine"
        account = "host"
        machine = { id = 9, hostname = "t", num_gpus = 2, gpu_name = "A100" }
        [[step]]
        at = "40ms"
        [[step.action]]
        type = "set_timeout"
        machine = 9
        secs = 300
        [[step]]
        at = "80ms"
        [[step.action]]
        type = "set_error"
        machine = 9
        error = "failed to inject CDI devices"
        "#,
    )
    .unwrap();
    let sim = start().await;
    let started = tokio::time::Instant::now();
    bounded(sim.run_scenario(scenario)).await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(80));
    let m = bounded(client(&sim, "clock-key-77").machine(9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.timeout, Some(300.0));
    assert_eq!(
        m.error_description.as_deref(),
        Some("failed to inject CDI devices")
    );
}

#[tokio::test]
async fn the_demo_script_plays_through_the_api() {
    let demo = demo_scenario();
    let sim = start().await;
    let host = client(&sim, DEMO_HOST_KEY);
    let renter = client(&sim, DEMO_RENTER_KEY);
    let step_at = |secs: u64| {
        demo.steps
            .iter()
            .position(|s| s.at == Some(Duration::from_secs(secs)))
            .unwrap()
    };
    let mut next = 0;
    let mut run_until = |i: usize| {
        while next <= i {
            sim.apply_step(&demo, next).unwrap();
            next += 1;
        }
    };

    run_until(0);
    let machines = bounded(host.machines()).await.unwrap();
    assert_eq!(machines.len(), 3);
    assert_eq!(bounded(renter.instances()).await.unwrap().len(), 5);

    // 14 s: two renters in the same step on rig-01.
    run_until(step_at(14));
    let rig = bounded(host.machine(1001)).await.unwrap().unwrap();
    assert_eq!(rig.gpu_occupancy.as_deref(), Some("D D D I "));
    assert_eq!(rig.current_rentals_running, Some(3));
    assert_eq!(rig.current_rentals_resident, Some(3));
    let created = bounded(renter.instance(5006)).await.unwrap().unwrap();
    assert_eq!(created.actual_status.as_deref(), Some("loading"));

    // 26 s: the 429s are absorbed by the client's retries.
    run_until(step_at(26));
    let rig = bounded(host.machine(1001)).await.unwrap().unwrap();
    assert_eq!(rig.gpu_occupancy.as_deref(), Some("D D D I "));
    let faults = sim.requests().iter().filter(|r| r.fault.is_some()).count();
    assert_eq!(faults, 2);

    // 32 s: I -> D on GPU 3 without passing through x.
    run_until(step_at(32));
    let rig = bounded(host.machine(1001)).await.unwrap().unwrap();
    assert_eq!(rig.gpu_occupancy.as_deref(), Some("D D D D "));
    assert_eq!(rig.current_rentals_resident, Some(4));
    let preempted = bounded(renter.instance(5002)).await.unwrap().unwrap();
    assert_eq!(preempted.is_bid, Some(true));
    assert_eq!(preempted.intended_status.as_deref(), Some("running"));
    assert_eq!(preempted.actual_status.as_deref(), Some("stopped"));

    // 50 s: the training log says DONE.
    run_until(step_at(50));
    let log = bounded(renter.request_logs(5001, 100)).await.unwrap();
    assert!(log.lines().any(|l| l.starts_with("DONE")), "{log}");
    assert_eq!(
        bounded(renter.instance(5005)).await.unwrap(),
        None,
        "destroyed at 44 s"
    );

    // 88 s: rig-02 missing from one list only, rig-03 gone for good.
    run_until(step_at(88));
    let listed: Vec<u64> = bounded(host.machines())
        .await
        .unwrap()
        .iter()
        .filter_map(Machine::key)
        .collect();
    assert_eq!(
        listed,
        vec![1001, 1004],
        "hiccup hides rig-02, rig-03 removed"
    );
    assert!(
        bounded(host.machine(1002)).await.unwrap().is_some(),
        "a hiccup"
    );
    assert!(
        bounded(host.machine(1003)).await.unwrap().is_none(),
        "really gone"
    );
    assert_eq!(
        bounded(host.machines()).await.unwrap().len(),
        3,
        "rig-02 is back"
    );
    assert_eq!(
        bounded(renter.current_user()).await.unwrap().credit,
        Some(3.5)
    );

    run_until(demo.len() - 1);
    let rig = bounded(host.machine(1001)).await.unwrap().unwrap();
    assert_eq!(rig.gpu_occupancy.as_deref(), Some("x x x x "));
    assert_eq!(rig.alloc_disk_space, None);
    assert_eq!(rig.num_reports, Some(1.0));
}

fn raw_http(sim: &SimHandle, request: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(sim.local_addr())?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test]
async fn http_surface_accepts_both_auth_styles_and_optional_slashes() {
    let sim = start().await;
    sim.add_account("surface-key-1", "acct");
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let get = |path: &str, bearer: Option<&str>| {
        let mut req = http.get(base.join(path).unwrap());
        if let Some(k) = bearer {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    for path in [
        "api/v0/machines/",
        "api/v0/machines",
        "api/v0/users/current",
        "api/v0/users/me/",
    ] {
        let resp = bounded(get(path, Some("surface-key-1"))).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = bounded(get("api/v0/machines/?owner=me&api_key=surface-key-1", None))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the legacy query parameter works too");
    let legacy = sim.requests().pop().unwrap();
    assert!(legacy.api_key_in_query && !legacy.authorization_header);
    assert_eq!(legacy.query.as_deref(), Some("owner=me&api_key=***"));
    assert_eq!(legacy.account.as_deref(), Some("acct"));

    let resp = bounded(get("api/v0/machines/", Some("wrong")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = bounded(resp.json()).await.unwrap();
    assert_eq!(body["error"], "auth_error");
    assert_eq!(body["msg"], "Invalid user key");
    let resp = bounded(get("api/v1/instances/", Some("wrong")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = bounded(get("api/v0/machines/", None)).await.unwrap();
    assert_eq!(resp.status(), 401);

    // The 502 fault is nginx's HTML page.
    sim.inject_fault("acct", Fault::BadGateway502Html, FaultDuration::Requests(1))
        .unwrap();
    let resp = bounded(get("api/v0/machines/", Some("surface-key-1")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(bounded(resp.text())
        .await
        .unwrap()
        .contains("<h1>502 Bad Gateway</h1>"));
}

#[tokio::test]
async fn reset_fault_is_a_real_tcp_reset() {
    let sim = start().await;
    sim.add_account("reset-key-9", "acct");
    sim.inject_fault("acct", Fault::Reset, FaultDuration::Requests(1))
        .unwrap();
    let sim2 = sim.clone();
    let result = bounded(tokio::task::spawn_blocking(move || {
        raw_http(
            &sim2,
            "GET /api/v0/machines/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer reset-key-9\r\n\r\n",
        )
    }))
    .await
    .unwrap();
    match result {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(text) => panic!("expected a reset, got {text:?}"),
    }
    // The fault is consumed: the next request is answered.
    let sim3 = sim.clone();
    let text = bounded(tokio::task::spawn_blocking(move || {
        raw_http(
            &sim3,
            "GET /api/v0/machines/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer reset-key-9\r\nConnection: close\r\n\r\n",
        )
    }))
    .await
    .unwrap()
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn the_simulator_runs_inside_an_actix_system() {
    let system = actix_rt::System::new();
    let machines = system.block_on(async {
        let sim = start().await;
        sim.add_account("actix-key-3", "acct");
        sim.add_machine(
            "acct",
            vast_supervisor::sim::MachineSpec::new(5, "r", 1, "RTX 4090"),
        )
        .unwrap();
        let machines = bounded(client(&sim, "actix-key-3").machines())
            .await
            .unwrap();
        sim.shutdown();
        machines
    });
    assert_eq!(machines.len(), 1);
}

#[tokio::test]
async fn simulate_prints_where_to_connect_and_stops_on_signal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, SMALL).unwrap();
    let mut out = Vec::new();
    let stop = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    };
    bounded(vast_supervisor::sim::simulate_until(
        "127.0.0.1:0".parse().unwrap(),
        Some(&path),
        &mut out,
        stop,
    ))
    .await
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("simulated Vast API at http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("api_key = \"small-key-0042\""), "{text}");
    assert!(text.contains("5 steps"), "{text}");

    let missing = dir.path().join("nope.toml");
    let err = bounded(vast_supervisor::sim::simulate_until(
        "127.0.0.1:0".parse().unwrap(),
        Some(&missing),
        &mut Vec::new(),
        async { Ok(()) },
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope.toml"), "{err}");
}
