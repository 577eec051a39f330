//! `/metrics` and `/health` of the real actor tree against the simulated Vast cloud: the text is
//! valid Prometheus exposition (checked by a strict parser below), every labelled series exists
//! at zero before the first poll, counters move with polls, events, sends and failures, and
//! `/health` turns 503 exactly while every account's API fails.

use actix::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use vast_supervisor::actors::notifier::DeliveryTuning;
use vast_supervisor::actors::supervisor::Shutdown;
use vast_supervisor::actors::{Supervisor, SupervisorOptions};
use vast_supervisor::config::{parse_target_url, AccountConfig, TargetConfig, TargetUrl};
use vast_supervisor::event::EventKind;
use vast_supervisor::metrics::{POLL_ERROR_REASONS, SEND_FAILURE_REASONS};
use vast_supervisor::sim::{Fault, FaultDuration, MachineSpec, RentalKind, SimCloud, SimHandle};
use vast_supervisor::store::StoreHandle;
use vast_supervisor::vast::ClientOptions;
use vast_supervisor::web;

const POLL: Duration = Duration::from_millis(100);

/// One sample: metric name and its labels.
type SeriesKey = (String, BTreeMap<String, String>);

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `{a="x",b="y"}` (starting after the name); returns the labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((labels, s));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// A strict parser of the text exposition format: every line is `# HELP`, `# TYPE` or a sample;
/// every sample's family has HELP then TYPE before it and its samples are contiguous (a
/// histogram's are `_bucket`, `_sum` and `_count`); counters end in `_total`; no series appears
/// twice.
fn parse_exposition(text: &str) -> Result<BTreeMap<SeriesKey, f64>, String> {
    if !text.ends_with('\n') {
        return Err("the text must end with a newline".into());
    }
    let mut helped = BTreeSet::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut finished = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| err("HELP without text".into()))?;
            if !valid_metric_name(name) || help.trim().is_empty() {
                return Err(err("bad HELP".into()));
            }
            if !helped.insert(name.to_string()) {
                return Err(err("HELP repeated".into()));
            }
            if let Some(prev) = current.replace(name.to_string()) {
                finished.insert(prev);
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without kind".into()))?;
            if current.as_deref() != Some(name) || typed.contains_key(name) {
                return Err(err("TYPE must follow its HELP, once".into()));
            }
            if !["counter", "gauge", "histogram"].contains(&kind) {
                return Err(err(format!("unexpected type {kind}")));
            }
            if kind == "counter" && !name.ends_with("_total") {
                return Err(err("counter names end in _total".into()));
            }
            typed.insert(name.to_string(), kind.to_string());
        } else if line.starts_with('#') || line.trim().is_empty() {
            return Err(err("unexpected comment or blank line".into()));
        } else {
            let name_end = line
                .find(['{', ' '])
                .ok_or_else(|| err("sample without value".into()))?;
            let sample_name = &line[..name_end];
            if !valid_metric_name(sample_name) {
                return Err(err("invalid metric name".into()));
            }
            // A histogram's samples are its _bucket, _sum and _count series.
            let name = match current.as_deref() {
                Some(family)
                    if typed.get(family).map(String::as_str) == Some("histogram")
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|suffix| sample_name == format!("{family}{suffix}")) =>
                {
                    family
                }
                _ => sample_name,
            };
            if current.as_deref() != Some(name) || !typed.contains_key(name) {
                return Err(err("sample outside its family (missing HELP/TYPE)".into()));
            }
            if finished.contains(name) {
                return Err(err("family samples not contiguous".into()));
            }
            let (labels, rest) = parse_labels(&line[name_end..]).map_err(err)?;
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before the value".into()))?;
            let value: f64 = value
                .parse()
                .map_err(|_| err(format!("value {value:?} is not a number")))?;
            if typed[name] == "counter" && value < 0.0 {
                return Err(err("negative counter".into()));
            }
            if series
                .insert((sample_name.to_string(), labels), value)
                .is_some()
            {
                return Err(err("series repeated".into()));
            }
        }
    }
    if helped.len() != typed.len() {
        return Err("a family has HELP but no TYPE".into());
    }
    Ok(series)
}

#[test]
fn the_strict_parser_rejects_malformed_text() {
    let good = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 1\n";
    assert!(parse_exposition(good).is_ok());
    let histogram = "# HELP h x\n# TYPE h histogram\nh_sum 1.5\nh_count 2\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\n";
    assert!(parse_exposition(histogram).is_ok());
    for bad in [
        "a_total 1\n",
        "# HELP a_total x\na_total 1\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{k=v} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total one\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1",
        "# HELP g x\n# TYPE g gauge\n# HELP h x\n# TYPE h gauge\nh 1\ng 1\n",
        "# HELP h x\n# TYPE h histogram\nh_total 1\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

fn get(series: &BTreeMap<SeriesKey, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let key = (
        format!("vast_supervisor_{name}"),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    series.get(&key).copied()
}

async fn scrape(addr: SocketAddr) -> BTreeMap<SeriesKey, f64> {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = resp.text().await.unwrap();
    parse_exposition(&text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"))
}

async fn health(addr: SocketAddr) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap())
}

/// Scrapes until `pred` holds, or panics after 15 s.
async fn wait_metrics(
    addr: SocketAddr,
    what: &str,
    pred: impl Fn(&BTreeMap<SeriesKey, f64>) -> bool,
) -> BTreeMap<SeriesKey, f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let s = scrape(addr).await;
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_health(addr: SocketAddr, code: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (c, body) = health(addr).await;
        if c == code {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for /health {code}; last {c} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn account(name: &str, key: &str, sim: &SimHandle) -> AccountConfig {
    let mut a = AccountConfig::with_defaults(name, key, sim.base_url());
    a.poll_interval = POLL;
    a.stale_after_polls = 2;
    a
}

#[test]
fn metrics_and_health_follow_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        tokio::time::timeout(Duration::from_secs(90), scenario(dir.path()))
            .await
            .expect("the scenario finishes in time");
    });
}

async fn scenario(dir: &std::path::Path) {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-ACME-123", "acme");
    sim.add_account("KEY-BETA-456", "beta");
    sim.add_machine("acme", MachineSpec::new(101, "acme-rig-1", 4, "RTX 4090"))
        .unwrap();
    sim.add_machine("beta", MachineSpec::new(201, "beta-rig-1", 2, "H100"))
        .unwrap();

    // A webhook nobody listens on: every send fails with a network error.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broken = TargetConfig::with_defaults(
        "broken",
        parse_target_url(&format!("json://127.0.0.1:{closed_port}/hook")).unwrap(),
    );
    let file = TargetConfig::with_defaults(
        "file",
        TargetUrl::File {
            path: dir.join("events.jsonl"),
        },
    );
    let store = StoreHandle::open(&dir.join("state.db")).unwrap();
    let opts = SupervisorOptions {
        client: ClientOptions {
            request_timeout: Duration::from_secs(2),
            max_attempts: 2,
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(20),
            min_spacing: Duration::from_millis(5),
            ..ClientOptions::default()
        },
        flush_timeout: Duration::from_millis(500),
        delivery: DeliveryTuning {
            backoff_base: Duration::from_millis(20),
            backoff_cap: Duration::from_millis(100),
            failing_after: Duration::from_secs(600),
        },
        ..SupervisorOptions::default()
    };
    let sup = Supervisor::new(
        vec![
            account("acme", "KEY-ACME-123", &sim),
            account("beta", "KEY-BETA-456", &sim),
        ],
        vec![file, broken],
        store,
        opts,
    );
    let listener = web::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let server = web::serve(listener, web::router(sup.metrics(), None, None)).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "the bound port is discoverable");
    let no_dashboard = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(
        no_dashboard.status(),
        404,
        "dashboard = false serves no pages"
    );

    // Before any poll: every labelled series exists, at zero.
    let s = scrape(addr).await;
    for a in ["acme", "beta"] {
        assert_eq!(get(&s, "polls_total", &[("account", a)]), Some(0.0));
        for reason in POLL_ERROR_REASONS {
            assert_eq!(
                get(
                    &s,
                    "poll_errors_total",
                    &[("account", a), ("reason", reason)]
                ),
                Some(0.0),
                "{a} {reason}"
            );
        }
        assert_eq!(
            get(
                &s,
                "api_requests_total",
                &[("account", a), ("endpoint", "machines")]
            ),
            Some(0.0)
        );
        assert_eq!(
            get(&s, "account_state", &[("account", a), ("state", "ok")]),
            Some(1.0)
        );
        assert_eq!(
            get(&s, "machine_restarts_total", &[("account", a)]),
            Some(0.0)
        );
    }
    for kind in EventKind::ALL {
        assert_eq!(
            get(&s, "events_total", &[("kind", kind.as_str())]),
            Some(0.0),
            "{kind}"
        );
    }
    for t in ["file", "broken"] {
        assert_eq!(get(&s, "sends_total", &[("target", t)]), Some(0.0));
        for reason in SEND_FAILURE_REASONS {
            assert_eq!(
                get(
                    &s,
                    "send_failures_total",
                    &[("target", t), ("reason", reason)]
                ),
                Some(0.0),
                "{t} {reason}"
            );
        }
        assert_eq!(get(&s, "target_queue_depth", &[("target", t)]), Some(0.0));
    }
    assert_eq!(get(&s, "up", &[]), Some(1.0));
    assert_eq!(get(&s, "config_last_reload_successful", &[]), Some(1.0));
    let (code, body) = health(addr).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ok");

    let sup = sup.start();

    // Polls, events, sends and failed sends move.
    wait_metrics(addr, "polls, start-up events and sends", |s| {
        get(s, "polls_total", &[("account", "acme")]) >= Some(2.0)
            && get(s, "polls_total", &[("account", "beta")]) >= Some(2.0)
            && get(s, "events_total", &[("kind", "supervisor_start")]) == Some(1.0)
            && get(s, "events_total", &[("kind", "startup_summary")]) == Some(1.0)
            && get(s, "sends_total", &[("target", "file")]) >= Some(2.0)
            && get(
                s,
                "api_requests_total",
                &[("account", "acme"), ("endpoint", "machines")],
            ) >= Some(2.0)
            && get(
                s,
                "send_failures_total",
                &[("target", "broken"), ("reason", "network")],
            ) >= Some(1.0)
            && get(s, "target_queue_depth", &[("target", "broken")]) >= Some(1.0)
            && get(s, "poll_duration_seconds_count", &[("account", "acme")]) >= Some(2.0)
            && get(s, "delivery_duration_seconds_count", &[("target", "file")]) >= Some(2.0)
            && get(
                s,
                "delivery_duration_seconds_count",
                &[("target", "broken")],
            ) >= Some(1.0)
    })
    .await;
    let s = scrape(addr).await;
    let process = |name: &str| s.get(&(name.to_string(), BTreeMap::new())).copied();
    assert!(process("process_resident_memory_bytes") > Some(0.0));
    assert!(process("process_open_fds") > Some(0.0));
    assert!(process("process_cpu_seconds_total") >= Some(0.0));
    sim.start_rental("acme", 101, "r1", vec![0u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    wait_metrics(addr, "rental_start counted", |s| {
        get(s, "events_total", &[("kind", "rental_start")]) == Some(1.0)
            && get(s, "events_delivered_total", &[("target", "file")]) >= Some(3.0)
    })
    .await;

    // beta's API fails: its errors are counted by reason, it goes stale, /health stays 200.
    sim.inject_fault(
        "beta",
        Fault::BadGateway502Html,
        FaultDuration::UntilCleared,
    )
    .unwrap();
    wait_metrics(addr, "beta stale", |s| {
        get(
            s,
            "poll_errors_total",
            &[("account", "beta"), ("reason", "upstream")],
        ) >= Some(2.0)
            && get(
                s,
                "account_state",
                &[("account", "beta"), ("state", "stale")],
            ) == Some(1.0)
    })
    .await;
    let (code, body) = health(addr).await;
    assert_eq!(code, 200, "acme still works: {body}");

    // Every account fails: 503, naming each account's state.
    sim.inject_fault(
        "acme",
        Fault::BadGateway502Html,
        FaultDuration::UntilCleared,
    )
    .unwrap();
    let body = wait_health(addr, 503).await;
    assert_eq!(body["status"], "unhealthy");
    let states: BTreeMap<String, String> = body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            ("acme".to_string(), "stale".to_string()),
            ("beta".to_string(), "stale".to_string())
        ])
    );
    let s = scrape(addr).await;
    assert!(get(&s, "events_total", &[("kind", "account_stale")]) >= Some(1.0));

    // The API recovers: back to 200.
    sim.clear_faults("acme").unwrap();
    sim.clear_faults("beta").unwrap();
    let body = wait_health(addr, 200).await;
    assert_eq!(body["status"], "ok");
    wait_metrics(addr, "both accounts ok again", |s| {
        ["acme", "beta"]
            .iter()
            .all(|a| get(s, "account_state", &[("account", a), ("state", "ok")]) == Some(1.0))
            && get(s, "events_total", &[("kind", "account_restored")]) == Some(2.0)
    })
    .await;

    sup.send(Shutdown).await.unwrap();
    drop(server);
    sim.shutdown();
}
