//! The Vast client against the simulated cloud over real loopback HTTP: every error class, every
//! injected fault (recovery within the retry budget, and the typed error when it persists),
//! pacing, v1 pagination, the two-step log fetch, and that the key never reaches a URL, an error
//! or a log line.

#[path = "support/logs.rs"]
#[allow(dead_code)]
mod logs;

use logs::LogCapture;
use std::future::Future;
use std::time::Duration;

use vast_supervisor::sim::{
    Fault, FaultDuration, InstanceSpec, MachineSpec, RentalKind, SimCloud, SimHandle, WriteAction,
};
use vast_supervisor::util::Secret;
use vast_supervisor::vast::{
    shared_http_client, ClientOptions, Endpoint, VastClient, VastError, LOGS_NOT_READY,
};

const KEY: &str = "host-key-7c1d9e2b4a6f8035";
const RENTER_KEY: &str = "renter-key-2f8e4d6c0a1b3957";

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step took too long")
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(700),
        max_attempts: 4,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        min_spacing: Duration::ZERO,
        log_poll_interval: Duration::from_millis(5),
        log_wait: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

async fn start_sim() -> SimHandle {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts");
    sim.add_account(KEY, "host");
    sim.add_account(RENTER_KEY, "renter");
    sim.add_machine("host", MachineSpec::new(1001, "rig-01", 4, "RTX 4090"))
        .unwrap();
    sim.add_machine("host", MachineSpec::new(1002, "rig-02", 8, "RTX 3090"))
        .unwrap();
    sim
}

fn client_with(sim: &SimHandle, key: &str, opts: ClientOptions) -> VastClient {
    VastClient::new(
        shared_http_client(&opts),
        sim.base_url(),
        Secret::new(key),
        opts,
    )
}

fn client(sim: &SimHandle, key: &str) -> VastClient {
    client_with(sim, key, fast_options())
}

fn count_route(sim: &SimHandle, route: &str) -> usize {
    sim.requests().iter().filter(|r| r.route == route).count()
}

/// Asserts the invariants every request of the supervisor must keep.
fn assert_no_key_leak(sim: &SimHandle) {
    let requests = sim.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(!r.api_key_in_query, "api_key in a URL: {r:?}");
        let query = r.query.clone().unwrap_or_default();
        assert!(!query.contains("api_key"), "{r:?}");
        assert!(!query.contains(KEY) && !query.contains(RENTER_KEY), "{r:?}");
        assert!(
            !r.path.contains(KEY) && !r.path.contains(RENTER_KEY),
            "{r:?}"
        );
        if r.route == "log_result" {
            assert!(
                !r.authorization_header,
                "auth header sent to log storage: {r:?}"
            );
        } else {
            assert!(r.authorization_header, "API request without bearer: {r:?}");
        }
    }
}

#[tokio::test]
async fn machines_and_machine_detail() {
    let sim = start_sim().await;
    sim.start_rental(KEY, 1001, "a", vec![0, 1], RentalKind::OnDemand, 50.0)
        .unwrap();
    let c = client(&sim, KEY);

    let machines = bounded(c.machines()).await.unwrap();
    assert_eq!(machines.len(), 2);
    let rig = machines.iter().find(|m| m.key() == Some(1001)).unwrap();
    assert_eq!(rig.hostname.as_deref(), Some("rig-01"));
    assert_eq!(rig.gpu_occupancy.as_deref(), Some("D D x x "));
    assert_eq!(rig.current_rentals_running, Some(1));
    assert_eq!(rig.alloc_disk_space, Some(50.0));
    assert_eq!(rig.timeout, Some(0.0));
    assert!(
        rig.extra.contains_key("cpu_name"),
        "unknown fields are kept"
    );

    // The detail is a bare one-element list on the wire.
    let one = bounded(c.machine(1002)).await.unwrap().unwrap();
    assert_eq!(one.num_gpus, Some(8));
    // Unknown ids and other accounts' machines come back as [] -> None.
    assert_eq!(bounded(c.machine(4242)).await.unwrap(), None);
    let renter = client(&sim, RENTER_KEY);
    assert_eq!(bounded(renter.machine(1001)).await.unwrap(), None);
    assert!(bounded(renter.machines()).await.unwrap().is_empty());

    assert_eq!(c.request_count(Endpoint::Machines), 1);
    assert_eq!(c.request_count(Endpoint::Machine), 2);
    assert_no_key_leak(&sim);
}

#[tokio::test]
async fn v1_instances_are_paged_by_keyset() {
    let sim = start_sim().await;
    for i in 0..60u64 {
        sim.add_instance(
            RENTER_KEY,
            InstanceSpec {
                id: Some(7000 + (i * 37) % 60),
                label: Some(format!("job-{i}")),
                actual_status: Some("running".into()),
                ..InstanceSpec::default()
            },
        )
        .unwrap();
    }
    let c = client(&sim, RENTER_KEY);
    let rows = bounded(c.instances()).await.unwrap();
    let ids: Vec<u64> = rows.iter().map(|r| r.id.unwrap()).collect();
    assert_eq!(ids, (7000..7060).collect::<Vec<_>>());
    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.route == "instances_v1")
        .collect();
    assert_eq!(pages.len(), 3);
    assert!(pages
        .iter()
        .all(|r| r.query.as_deref().unwrap().contains("limit=25")));
    assert!(!pages[0].query.as_deref().unwrap().contains("after_token"));
    assert!(pages[1].query.as_deref().unwrap().contains("after_token"));

    // The deprecated v0 list returns the same rows in one response.
    let v0 = bounded(c.instances_v0()).await.unwrap();
    assert_eq!(v0.len(), 60);
    assert_no_key_leak(&sim);
}

#[tokio::test]
async fn expired_page_token_restarts_once_then_fails() {
    let sim = start_sim().await;
    for i in 0..30u64 {
        sim.add_instance(
            RENTER_KEY,
            InstanceSpec {
                id: Some(100 + i),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let c = client(&sim, RENTER_KEY);
    sim.inject_fault(
        RENTER_KEY,
        Fault::InvalidPageToken,
        FaultDuration::Requests(1),
    )
    .unwrap();
    let rows = bounded(c.instances()).await.unwrap();
    assert_eq!(rows.len(), 30);
    // page 1, page 2 (400 invalid_token), then page 1 and 2 again
    assert_eq!(count_route(&sim, "instances_v1"), 4);

    sim.inject_fault(
        RENTER_KEY,
        Fault::InvalidPageToken,
        FaultDuration::UntilCleared,
    )
    .unwrap();
    let err = bounded(c.instances()).await.unwrap_err();
    assert!(
        matches!(&err, VastError::Api { error, .. } if error == "invalid_token"),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn single_instance_null_is_none() {
    let sim = start_sim().await;
    let id = sim
        .add_instance(
            RENTER_KEY,
            InstanceSpec {
                label: Some("train-1".into()),
                actual_status: Some("running".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let c = client(&sim, RENTER_KEY);
    let row = bounded(c.instance(id)).await.unwrap().unwrap();
    assert_eq!(row.actual_status.as_deref(), Some("running"));
    assert_eq!(row.label.as_deref(), Some("train-1"));
    assert!(!row.extra.contains_key("jupyter_token"));

    sim.set_instance_status(id, None, "running", None).unwrap();
    let row = bounded(c.instance(id)).await.unwrap().unwrap();
    assert_eq!(
        row.actual_status, None,
        "null actual_status is provisioning, not an error"
    );

    sim.destroy_instance(id).unwrap();
    assert_eq!(bounded(c.instance(id)).await.unwrap(), None);
    // Another account's instance is not visible either.
    let other = sim.add_instance(KEY, InstanceSpec::default()).unwrap();
    assert_eq!(bounded(c.instance(other)).await.unwrap(), None);
}

#[tokio::test]
async fn current_user_never_keeps_the_key() {
    let sim = start_sim().await;
    sim.set_credit(RENTER_KEY, 12.5).unwrap();
    let c = client(&sim, RENTER_KEY);
    let user = bounded(c.current_user()).await.unwrap();
    assert_eq!(user.credit, Some(12.5));
    assert_eq!(user.username.as_deref(), Some("renter"));
    assert!(!user.extra.contains_key("api_key"));
    assert!(!format!("{user:?}").contains(RENTER_KEY));
    assert!(!serde_json::to_string(&user).unwrap().contains(RENTER_KEY));
    assert!(!format!("{c:?}").contains(RENTER_KEY));
}

#[tokio::test]
async fn machine_earnings() {
    let sim = start_sim().await;
    sim.set_earnings(
        KEY,
        vec![vast_supervisor::sim::EarningsRow {
            machine_id: 1001,
            gpu_earn: 7.5,
            sto_earn: 0.25,
            bwu_earn: 0.0,
            bwd_earn: 0.0,
        }],
    )
    .unwrap();
    let c = client(&sim, KEY);
    let earnings = bounded(c.machine_earnings(20400.0, 20400.5)).await.unwrap();
    assert_eq!(earnings.per_machine.len(), 1);
    assert_eq!(earnings.per_machine[0].machine_id, Some(1001));
    assert_eq!(earnings.per_machine[0].gpu_earn, Some(7.5));
    let query = sim.requests().last().unwrap().query.clone().unwrap();
    assert!(
        query.contains("sday=20400") && query.contains("eday=20400.5"),
        "{query}"
    );
}

#[tokio::test]
async fn request_logs_polls_the_result_url_without_auth() {
    let sim = start_sim().await;
    let id = sim
        .add_instance(RENTER_KEY, InstanceSpec::default())
        .unwrap();
    for line in ["epoch 1", "epoch 2", "DONE"] {
        sim.append_instance_log(id, line).unwrap();
    }
    sim.set_log_delay(3);
    let c = client(&sim, RENTER_KEY);
    let text = bounded(c.request_logs(id, 2)).await.unwrap();
    assert_eq!(text, "epoch 2\nDONE\n");
    assert_eq!(count_route(&sim, "request_logs"), 1);
    assert_eq!(count_route(&sim, "log_result"), 4, "3 x 404, then the text");
    assert_eq!(c.request_count(Endpoint::LogResult), 4);
    assert_no_key_leak(&sim);

    // A log that never lands: a clear error within the bounded wait.
    sim.set_log_delay(u32::MAX);
    let opts = ClientOptions {
        log_wait: Duration::from_millis(100),
        ..fast_options()
    };
    let err = bounded(client_with(&sim, RENTER_KEY, opts).request_logs(id, 10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VastError::Api { error, .. } if error == LOGS_NOT_READY),
        "{err:?}"
    );
    assert!(err.to_string().contains("did not become available"));

    // Unknown instance: 404 invalid_id.
    assert_eq!(
        bounded(c.request_logs(999_999, 10)).await.unwrap_err(),
        VastError::NotFound
    );
}

#[tokio::test]
async fn instance_writes_and_api_errors() {
    let sim = start_sim().await;
    let id = sim
        .add_instance(
            RENTER_KEY,
            InstanceSpec {
                actual_status: Some("running".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let bid = sim
        .add_instance(
            RENTER_KEY,
            InstanceSpec {
                is_bid: true,
                actual_status: Some("running".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let c = client(&sim, RENTER_KEY);
    bounded(c.stop_instance(id)).await.unwrap();
    let row = bounded(c.instance(id)).await.unwrap().unwrap();
    assert_eq!(row.intended_status.as_deref(), Some("stopped"));
    bounded(c.start_instance(id)).await.unwrap();
    bounded(c.destroy_instance(id)).await.unwrap();
    assert_eq!(bounded(c.instance(id)).await.unwrap(), None);
    let actions: Vec<_> = sim
        .writes()
        .into_iter()
        .map(|w| (w.instance, w.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            (id, WriteAction::Stop),
            (id, WriteAction::Start),
            (id, WriteAction::Destroy)
        ]
    );

    // 404 on a write: NotFound, not retried.
    sim.clear_requests();
    assert_eq!(
        bounded(c.destroy_instance(id)).await.unwrap_err(),
        VastError::NotFound
    );
    assert_eq!(sim.requests().len(), 1);

    // HTTP 200 with "success": false: Api, not retried.
    sim.preempt_instance(bid).unwrap();
    sim.clear_requests();
    let err = bounded(c.start_instance(bid)).await.unwrap_err();
    match &err {
        VastError::Api { msg, .. } => assert!(msg.contains("bid is below"), "{msg}"),
        other => panic!("expected Api, got {other:?}"),
    }
    assert_eq!(err.reason(), "api");
    assert_eq!(sim.requests().len(), 1);
    assert_no_key_leak(&sim);
}

#[tokio::test]
async fn wrong_key_is_unauthorized_without_retries() {
    let sim = start_sim().await;
    let c = client(&sim, "not-a-key-5555");
    assert_eq!(
        bounded(c.machines()).await.unwrap_err(),
        VastError::Unauthorized { status: 401 }
    );
    // v1 answers an unknown key with 404 auth_error: still Unauthorized.
    assert_eq!(
        bounded(c.instances()).await.unwrap_err(),
        VastError::Unauthorized { status: 404 }
    );
    assert_eq!(sim.requests().len(), 2, "auth failures are not retried");

    // A key revoked at runtime (injected 401).
    let c = client(&sim, KEY);
    sim.inject_fault(KEY, Fault::Unauthorized401, FaultDuration::UntilCleared)
        .unwrap();
    let err = bounded(c.machines()).await.unwrap_err();
    assert_eq!(err, VastError::Unauthorized { status: 401 });
    assert!(!err.is_transient());
    assert_eq!(err.reason(), "unauthorized");
    sim.clear_faults(KEY).unwrap();
    assert_eq!(bounded(c.machines()).await.unwrap().len(), 2);
}

/// Recognises the error a persistent fault must end in.
type ExpectedError = fn(&VastError) -> bool;

/// The faults that fail a request as a whole, and the error each gives when it persists.
fn request_faults() -> Vec<(Fault, ExpectedError)> {
    vec![
        (
            Fault::RateLimitText,
            |e| matches!(e, VastError::RateLimited { body_snippet } if body_snippet == "API requests too frequent"),
        ),
        (
            Fault::RateLimitTextThreshold,
            |e| matches!(e, VastError::RateLimited { body_snippet } if body_snippet.contains("threshold=2.0")),
        ),
        (
            Fault::RateLimitJsonDetail,
            |e| matches!(e, VastError::RateLimited { body_snippet } if body_snippet.contains("\"detail\"")),
        ),
        (
            Fault::RateLimitJsonError,
            |e| matches!(e, VastError::RateLimited { body_snippet } if body_snippet.contains("rate_limit_exceeded")),
        ),
        (Fault::BadGateway502Html, |e| {
            *e == VastError::Upstream { status: 502 }
        }),
        (Fault::ServiceUnavailable503, |e| {
            *e == VastError::Upstream { status: 503 }
        }),
        (Fault::GatewayTimeout504, |e| {
            *e == VastError::Upstream { status: 504 }
        }),
        (Fault::Reset, |e| matches!(e, VastError::Network { .. })),
        (
            Fault::TruncatedJson,
            |e| matches!(e, VastError::Decode { detail } if detail.starts_with("truncated body")),
        ),
        (Fault::Hang(Duration::from_secs(3)), |e| {
            *e == VastError::Timeout
        }),
    ]
}

#[tokio::test]
async fn every_fault_is_retried_and_recovers() {
    let sim = start_sim().await;
    let c = client(&sim, KEY);
    for (fault, _) in request_faults() {
        sim.clear_requests();
        sim.inject_fault(KEY, fault.clone(), FaultDuration::Requests(2))
            .unwrap();
        let machines = bounded(c.machines())
            .await
            .unwrap_or_else(|e| panic!("{fault:?} not recovered: {e:?}"));
        assert_eq!(machines.len(), 2, "{fault:?}");
        let seen: Vec<_> = sim.requests().into_iter().map(|r| r.fault).collect();
        assert_eq!(
            seen,
            vec![Some(fault.clone()), Some(fault.clone()), None],
            "two faulty attempts, then success"
        );
    }
    assert_no_key_leak(&sim);
}

#[tokio::test]
async fn persistent_faults_give_the_typed_error_after_max_attempts() {
    let sim = start_sim().await;
    let opts = ClientOptions {
        max_attempts: 3,
        request_timeout: Duration::from_millis(700),
        ..fast_options()
    };
    let c = client_with(&sim, KEY, opts);
    for (fault, expected) in request_faults() {
        sim.clear_requests();
        sim.inject_fault(KEY, fault.clone(), FaultDuration::UntilCleared)
            .unwrap();
        let err = bounded(c.machines()).await.unwrap_err();
        assert!(expected(&err), "{fault:?} gave {err:?}");
        assert!(err.is_transient(), "{fault:?}: {err:?} should be transient");
        assert_eq!(sim.requests().len(), 3, "{fault:?}: max_attempts requests");
        assert!(!err.to_string().contains(KEY));
        assert!(!format!("{err:?}").contains(KEY));
        sim.clear_faults(KEY).unwrap();
        // ... and the very next call works again.
        assert_eq!(bounded(c.machines()).await.unwrap().len(), 2, "{fault:?}");
    }
}

#[tokio::test]
async fn field_faults_never_fail_a_poll() {
    let sim = start_sim().await;
    let c = client(&sim, KEY);
    let once = FaultDuration::Requests(1);

    sim.inject_fault(KEY, Fault::RemoveField("timeout".into()), once)
        .unwrap();
    let m = bounded(c.machines()).await.unwrap();
    assert!(m.iter().all(|m| m.timeout.is_none()));

    sim.inject_fault(KEY, Fault::NullField("gpu_occupancy".into()), once)
        .unwrap();
    let m = bounded(c.machines()).await.unwrap();
    assert!(m.iter().all(|m| m.gpu_occupancy.is_none()));

    sim.inject_fault(KEY, Fault::StringifyField("num_gpus".into()), once)
        .unwrap();
    sim.inject_fault(KEY, Fault::StringifyField("timeout".into()), once)
        .unwrap();
    let m = bounded(c.machines()).await.unwrap();
    assert_eq!(m[0].num_gpus, Some(4), "\"4\" still reads as 4");
    let m = bounded(c.machines()).await.unwrap();
    assert_eq!(m[0].timeout, Some(0.0), "\"0\" still reads as 0");

    // Field faults apply to instance rows and plain objects as well.
    let id = sim.add_instance(KEY, InstanceSpec::default()).unwrap();
    sim.inject_fault(KEY, Fault::RemoveField("intended_status".into()), once)
        .unwrap();
    let row = bounded(c.instance(id)).await.unwrap().unwrap();
    assert_eq!(row.intended_status, None);
    sim.inject_fault(KEY, Fault::StringifyField("credit".into()), once)
        .unwrap();
    assert_eq!(bounded(c.current_user()).await.unwrap().credit, Some(100.0));

    // Everything is back to normal afterwards.
    let m = bounded(c.machines()).await.unwrap();
    assert_eq!(m[0].gpu_occupancy.as_deref(), Some("x x x x "));
}

#[tokio::test]
async fn a_short_hang_is_only_slow() {
    let sim = start_sim().await;
    let c = client_with(
        &sim,
        KEY,
        ClientOptions {
            request_timeout: Duration::from_secs(5),
            ..fast_options()
        },
    );
    sim.inject_fault(
        KEY,
        Fault::Hang(Duration::from_millis(50)),
        FaultDuration::Requests(1),
    )
    .unwrap();
    assert_eq!(bounded(c.machines()).await.unwrap().len(), 2);
    assert_eq!(sim.requests().len(), 1, "no retry needed");
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let opts = ClientOptions {
        max_attempts: 2,
        ..fast_options()
    };
    let c = VastClient::new(
        shared_http_client(&opts),
        url::Url::parse(&format!("http://{addr}/")).unwrap(),
        Secret::new(KEY),
        opts,
    );
    let err = bounded(c.machines()).await.unwrap_err();
    assert!(matches!(err, VastError::Network { .. }), "{err:?}");
    assert_eq!(err.reason(), "network");
    assert!(err.is_transient());
    assert!(!err.to_string().contains(KEY));
    assert_eq!(c.request_count(Endpoint::Machines), 2);
}

#[tokio::test]
async fn requests_to_one_endpoint_are_spaced() {
    let sim = start_sim().await;
    let spacing = Duration::from_millis(150);
    let c = client_with(
        &sim,
        KEY,
        ClientOptions {
            min_spacing: spacing,
            ..fast_options()
        },
    );
    let start = tokio::time::Instant::now();
    let twin = c.clone();
    let (a, b) = bounded(async { tokio::join!(c.machines(), twin.machines()) }).await;
    a.unwrap();
    b.unwrap();
    bounded(c.machines()).await.unwrap();
    assert!(
        start.elapsed() >= spacing * 2,
        "three calls to one endpoint need at least two spacings"
    );
    assert_eq!(c.request_count(Endpoint::Machines), 3);
}

#[tokio::test]
async fn a_polite_client_is_not_rate_limited_and_an_impolite_one_recovers() {
    let sim = start_sim().await;
    let interval = Duration::from_millis(100);
    sim.enable_rate_limit(interval, Fault::RateLimitJsonDetail);

    // Spacing well above Vast's interval: no 429 at all.
    let polite = client_with(
        &sim,
        KEY,
        ClientOptions {
            min_spacing: interval * 3,
            ..fast_options()
        },
    );
    for _ in 0..3 {
        bounded(polite.machines()).await.unwrap();
    }
    assert_eq!(sim.requests().len(), 3);
    assert!(sim.requests().iter().all(|r| r.fault.is_none()));

    // No spacing against a slow limit: the second call is limited, backs off, gets through.
    let interval = Duration::from_millis(500);
    sim.enable_rate_limit(interval, Fault::RateLimitText);
    sim.clear_requests();
    let eager = client_with(
        &sim,
        RENTER_KEY,
        ClientOptions {
            max_attempts: 8,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_millis(800),
            ..fast_options()
        },
    );
    bounded(eager.current_user()).await.unwrap();
    bounded(eager.current_user()).await.unwrap();
    let limited = sim.requests().iter().filter(|r| r.fault.is_some()).count();
    assert!(limited >= 1, "the immediate second call hit the limiter");
}

#[tokio::test]
async fn the_key_never_reaches_a_log_line_or_an_error() {
    let capture = LogCapture::new();
    let _guard = capture.install();

    let sim = start_sim().await;
    let id = sim.add_instance(KEY, InstanceSpec::default()).unwrap();
    sim.append_instance_log(id, "hello").unwrap();
    let c = client_with(
        &sim,
        KEY,
        ClientOptions {
            max_attempts: 2,
            request_timeout: Duration::from_millis(700),
            ..fast_options()
        },
    );
    let mut errors = Vec::new();
    bounded(c.machines()).await.unwrap();
    bounded(c.current_user()).await.unwrap();
    bounded(c.request_logs(id, 10)).await.unwrap();
    for (fault, _) in request_faults() {
        sim.inject_fault(KEY, fault, FaultDuration::UntilCleared)
            .unwrap();
        errors.push(bounded(c.current_user()).await.unwrap_err());
        sim.clear_faults(KEY).unwrap();
    }
    sim.inject_fault(KEY, Fault::Unauthorized401, FaultDuration::Requests(1))
        .unwrap();
    errors.push(bounded(c.machines()).await.unwrap_err());

    let logs = capture.text();
    assert!(logs.contains("vast request"), "debug logging is on");
    assert!(logs.contains("retrying"));
    assert!(!logs.contains(KEY), "the key leaked into the logs");
    for e in &errors {
        assert!(!e.to_string().contains(KEY) && !format!("{e:?}").contains(KEY));
    }
    assert_no_key_leak(&sim);
}

/// Issue 11 item 4: a body past the cap (64 MiB) is an error, read no further and not retried;
/// a large one under it is fine.
#[tokio::test]
async fn bodies_past_the_cap_are_refused() {
    let sim = start_sim().await;
    let c = client_with(
        &sim,
        KEY,
        ClientOptions {
            request_timeout: Duration::from_secs(15),
            ..fast_options()
        },
    );
    sim.inject_fault(
        KEY,
        Fault::Oversized(2 * 1024 * 1024),
        FaultDuration::Requests(1),
    )
    .unwrap();
    assert_eq!(
        bounded(c.machines()).await.unwrap().len(),
        2,
        "2 MiB is fine"
    );
    let cap = vast_supervisor::vast::MAX_BODY_BYTES as u64;
    sim.inject_fault(KEY, Fault::Oversized(cap + 1), FaultDuration::UntilCleared)
        .unwrap();
    let before = count_route(&sim, "machines");
    let err = bounded(c.machines()).await.unwrap_err();
    assert_eq!(err, VastError::TooLarge { limit_mib: 64 });
    assert_eq!(err.reason(), "decode");
    assert_eq!(count_route(&sim, "machines"), before + 1, "not retried");
}

/// Issue 11 item 5: the single lookup must answer for the subject asked for; another id is an
/// error, never that subject's state. Ids above i64::MAX stay distinct end to end.
#[tokio::test]
async fn lookups_must_carry_the_id_asked_for_and_huge_ids_stay_distinct() {
    let sim = start_sim().await;
    let c = client(&sim, KEY);
    sim.inject_fault(KEY, Fault::ForeignRow, FaultDuration::Requests(4))
        .unwrap();
    match bounded(c.machine(1001)).await {
        Err(VastError::Decode { detail }) => {
            assert!(
                detail.contains("the lookup of machine 1001 answered machine 1002"),
                "{detail}"
            )
        }
        other => panic!("a foreign row is an error, got {other:?}"),
    }
    let renter = client(&sim, RENTER_KEY);
    let id = sim
        .add_instance(RENTER_KEY, InstanceSpec::default())
        .unwrap();
    sim.inject_fault(RENTER_KEY, Fault::ForeignRow, FaultDuration::Requests(4))
        .unwrap();
    assert!(matches!(
        bounded(renter.instance(id)).await,
        Err(VastError::Decode { .. })
    ));

    let (a, b) = (1u64 << 63, (1u64 << 63) + 1);
    sim.add_machine("host", MachineSpec::new(a, "huge-a", 1, "RTX 4090"))
        .unwrap();
    sim.add_machine("host", MachineSpec::new(b, "huge-b", 1, "RTX 4090"))
        .unwrap();
    let mut keys: Vec<u64> = bounded(c.machines())
        .await
        .unwrap()
        .iter()
        .filter_map(|m| m.key())
        .collect();
    keys.sort();
    assert_eq!(keys, [1001, 1002, a, b]);
    let row = bounded(c.machine(b)).await.unwrap().unwrap();
    assert_eq!(
        (row.key(), row.hostname.as_deref()),
        (Some(b), Some("huge-b"))
    );
}
