//! The notifier actor against fake services over loopback: order, 429 `retry_after` honoured,
//! 5xx retried, an outage of several retry rounds with nothing lost, permanent failure disabling
//! the target with `target_failing` on the others, `max_age` dropping only what is too old, and
//! a message the service refuses as too large skipped alone (target enabled, no alert, counted).

#[path = "support/events.rs"]
mod events;
mod support;

use actix::prelude::*;
use chrono::Utc;
use std::path::Path;
use std::time::Duration;
use support::logs::LogCapture;
use vast_supervisor::actors::notifier::{
    DeliveryTuning, GetTargetStatus, NotifierActor, StopNotifier, TargetStatus,
};
use vast_supervisor::actors::supervision::RestartPolicy;
use vast_supervisor::config::{TargetConfig, TargetUrl};
use vast_supervisor::event::{Event, EventKind, Subject};
use vast_supervisor::metrics::Metrics;
use vast_supervisor::sim::targets::{Behaviour, FakeService, FakeServices};
use vast_supervisor::store::{Commit, StoreHandle};
use vast_supervisor::util::Secret;

const HOOK: &str = "/api/webhooks/123/tok-SECRET";

fn tuning() -> DeliveryTuning {
    DeliveryTuning {
        backoff_base: Duration::from_millis(40),
        backoff_cap: Duration::from_millis(200),
        failing_after: Duration::from_millis(400),
    }
}

fn discord(fake: &FakeServices, name: &str) -> TargetConfig {
    TargetConfig::with_defaults(
        name,
        TargetUrl::Discord {
            webhook_id: "123".into(),
            token: Secret::new("tok-SECRET"),
            endpoint: Some(fake.base_url().parse().unwrap()),
        },
    )
}

fn event(i: usize) -> Event {
    Event::new(
        format!("acme:m1:{i}"),
        EventKind::RentalStart,
        Some("acme".into()),
        Subject::Machine {
            id: 1,
            name: Some("rig".into()),
        },
        Utc::now(),
        format!("event number {i}"),
        "text",
    )
}

async fn queue(store: &StoreHandle, events: Vec<Event>) {
    store
        .apply(vec![Commit {
            account: "acme".into(),
            kind: "machine",
            id: "1".into(),
            state: None,
            events,
        }])
        .await
        .unwrap();
}

fn titles(fake: &FakeServices) -> Vec<String> {
    fake.received_by(FakeService::Discord)
        .iter()
        .filter_map(|r| r.json())
        .map(|j| {
            j["embeds"][0]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

async fn status(addr: &Addr<NotifierActor>) -> TargetStatus {
    addr.send(GetTargetStatus).await.unwrap()
}

fn start(target: TargetConfig, store: &StoreHandle) -> Addr<NotifierActor> {
    NotifierActor::new(target, store.clone(), reqwest::Client::new(), tuning()).start()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn open_store(dir: &Path) -> StoreHandle {
    StoreHandle::open(&dir.join("state.db")).unwrap()
}

#[actix_rt::test]
async fn delivers_in_order_and_honours_retry_after_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let addr = start(discord(&fake, "discord"), &store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    fake.respond_after(
        HOOK,
        1,
        1,
        Behaviour::RateLimit {
            retry_after: Duration::from_millis(376),
        },
    );
    queue(&store, (0..4).map(event).collect()).await;
    fake.wait_for(4, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        titles(&fake),
        [
            "event number 0",
            "event number 1",
            "event number 2",
            "event number 3"
        ]
    );
    let attempts = fake.attempts();
    let limited = attempts
        .iter()
        .position(|a| a.status == 429)
        .expect("one 429 answer");
    let waited = attempts[limited + 1].at - attempts[limited].at;
    assert!(
        waited >= Duration::from_millis(376),
        "retried after {waited:?}, before retry_after"
    );
    assert!(
        waited < Duration::from_millis(376 + 300),
        "waited {waited:?}, far beyond retry_after"
    );
    assert_eq!(attempts.iter().filter(|a| a.status == 429).count(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while status(&addr).await.sent < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = status(&addr).await;
    // The 429 is one failed attempt, as send_failures_total{reason="rate_limited"} counts it.
    assert_eq!((st.sent, st.failed, st.state.as_str()), (4, 1, "ok"));
}

#[actix_rt::test]
async fn server_errors_and_an_outage_lose_nothing_and_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let _addr = start(discord(&fake, "discord"), &store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    fake.respond_next(HOOK, 2, Behaviour::ServerError(502));
    queue(&store, vec![event(0)]).await;
    fake.wait_for(1, Duration::from_secs(10)).await.unwrap();

    // An outage spanning several retry rounds while more events arrive.
    fake.set_down(HOOK, true);
    queue(&store, (1..6).map(event).collect()).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let failed_rounds = fake.attempts().iter().filter(|a| a.status == 503).count();
    assert!(
        failed_rounds >= 3,
        "several retry rounds during the outage ({failed_rounds})"
    );
    fake.set_down(HOOK, false);
    fake.wait_for(6, Duration::from_secs(10)).await.unwrap();
    let expected: Vec<String> = (0..6).map(|i| format!("event number {i}")).collect();
    assert_eq!(titles(&fake), expected);
}

#[actix_rt::test]
async fn permanent_failure_disables_and_alerts_the_other_targets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let file = dir.path().join("other.jsonl");
    let broken = start(discord(&fake, "discord"), &store);
    let _other = start(
        TargetConfig::with_defaults("file", TargetUrl::File { path: file.clone() }),
        &store,
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    fake.respond_next(HOOK, 1, Behaviour::NotFound);
    queue(&store, vec![event(0)]).await;
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    wait_until("target_failing in the file target", || {
        read().contains("target_failing")
    })
    .await;
    let st = status(&broken).await;
    assert_eq!(st.state, "disabled");
    assert!(st
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("not_found"));
    assert!(
        !st.last_error.unwrap_or_default().contains("tok-SECRET"),
        "no token in status"
    );
    assert!(!read().contains("tok-SECRET"), "no token in events");
    // Disabled: later events are not attempted.
    let attempts = fake.attempts().len();
    queue(&store, vec![event(1)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.attempts().len(), attempts);
    assert!(
        read().contains("event number 1"),
        "the other target keeps working"
    );
}

#[actix_rt::test]
async fn events_older_than_max_age_are_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let file = dir.path().join("other.jsonl");
    let mut target = discord(&fake, "discord");
    target.max_age = Duration::from_millis(500);
    fake.set_down(HOOK, true);
    // One target_failing per failing period: the drop must be its first cause here.
    let addr = start_patient(target, &store);
    let _other = start(
        TargetConfig::with_defaults("file", TargetUrl::File { path: file.clone() }),
        &store,
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue(&store, vec![event(0)]).await;
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    wait_until("target_failing about dropped events", || {
        read().contains("older than max_age")
    })
    .await;
    fake.set_down(HOOK, false);
    queue(&store, vec![event(1)]).await;
    fake.wait_for(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        titles(&fake),
        ["event number 1"],
        "only the fresh event is delivered"
    );
    let st = status(&addr).await;
    assert_eq!(st.dropped, 1);
    let failing = failing_events(&file);
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0].data["dropped"], 1);
}

/// A notifier whose transient failures take long to count as failing (10 s).
fn start_patient(target: TargetConfig, store: &StoreHandle) -> Addr<NotifierActor> {
    let tuning = DeliveryTuning {
        failing_after: Duration::from_secs(10),
        ..tuning()
    };
    NotifierActor::new(target, store.clone(), reqwest::Client::new(), tuning).start()
}

/// The `target_failing` events a file target received.
fn failing_events(file: &Path) -> Vec<Event> {
    events::read_events(file)
        .into_iter()
        .filter(|e| e.kind == EventKind::TargetFailing)
        .collect()
}

/// An event that happened `ago` before now.
fn old_event(i: usize, ago: Duration) -> Event {
    let mut e = event(i);
    e.time = Utc::now() - chrono::Duration::from_std(ago).unwrap();
    e
}

#[actix_rt::test]
async fn a_dead_target_raises_one_target_failing_per_failing_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let file = dir.path().join("other.jsonl");
    let mut target = discord(&fake, "discord");
    target.max_age = Duration::from_millis(300);
    fake.set_down(HOOK, true);
    let addr = start(target, &store);
    let _other = start(
        TargetConfig::with_defaults("file", TargetUrl::File { path: file.clone() }),
        &store,
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A backlog older than max_age, then fresh events that fail until they expire too, past
    // failing_after: every source of target_failing fires within one failing period.
    queue(
        &store,
        (0..27)
            .map(|i| old_event(i, Duration::from_secs(1)))
            .collect(),
    )
    .await;
    for i in 27..35 {
        queue(&store, vec![event(i)]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&addr).await.dropped < 35 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "every event dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failing = failing_events(&file);
    assert_eq!(
        failing.len(),
        1,
        "one alert for the whole period: {failing:?}"
    );
    assert_eq!(failing[0].data["target"], "discord");
    assert_eq!(failing[0].data["dropped"], 27);
    assert_eq!(failing[0].data["disabled"], false);

    // The service answers again: the period ends. A new outage is a new period.
    fake.set_down(HOOK, false);
    queue(&store, vec![event(35)]).await;
    fake.wait_for(1, Duration::from_secs(10)).await.unwrap();
    fake.set_down(HOOK, true);
    queue(&store, vec![event(36)]).await;
    wait_until("a second target_failing", || {
        failing_events(&file).len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let failing = failing_events(&file);
    assert_eq!(failing.len(), 2, "{failing:?}");
    assert_eq!(failing[1].data["target"], "discord");
}

#[actix_rt::test]
async fn a_burst_within_the_batch_window_becomes_one_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let mut target = discord(&fake, "discord");
    target.batch_window = Duration::from_millis(300);
    let _addr = start(target, &store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let burst: Vec<Event> = (0..30)
        .map(|i| {
            Event::new(
                format!("acme:m{i}:1"),
                EventKind::MachineOffline,
                Some("acme".into()),
                Subject::Machine {
                    id: i as u64,
                    name: Some(format!("rig-{i}")),
                },
                Utc::now(),
                format!("rig-{i} is offline"),
                "timeout",
            )
        })
        .collect();
    for chunk in burst.chunks(10) {
        queue(&store, chunk.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    fake.wait_for(1, Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let received = fake.received_by(FakeService::Discord);
    assert_eq!(
        received.len(),
        1,
        "30 events in the window: one digest message"
    );
    let body = &received[0].body;
    for i in [0, 15, 29] {
        assert!(
            body.contains(&format!("rig-{i} is offline")),
            "digest names rig-{i}"
        );
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

/// Starts `target` with its counters in `metrics`, as the supervisor does.
fn start_counted(
    target: TargetConfig,
    store: &StoreHandle,
    metrics: &Metrics,
) -> Addr<NotifierActor> {
    let counters = metrics.target(&target.name);
    NotifierActor::new(target, store.clone(), reqwest::Client::new(), tuning())
        .with_ops(counters, RestartPolicy::default())
        .start()
}

/// The value of one sample of `metrics`' exposition, e.g. `events_dropped_total{target="x",...}`.
fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
    let prefix = format!("vast_supervisor_{series} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
}

#[actix_rt::test]
async fn a_message_refused_as_too_large_is_skipped_and_the_target_keeps_delivering() {
    let logs = LogCapture::new();
    let _guard = logs.install();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let metrics = Metrics::new([], ["discord", "file"]);
    let file = dir.path().join("other.jsonl");
    let addr = start_counted(discord(&fake, "discord"), &store, &metrics);
    let _other = start_counted(
        TargetConfig::with_defaults("file", TargetUrl::File { path: file.clone() }),
        &store,
        &metrics,
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The second message is refused with Discord's 413 (code 40005).
    fake.respond_after(HOOK, 1, 1, Behaviour::TooLarge);
    queue(&store, (0..4).map(event).collect()).await;
    fake.wait_for(3, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        titles(&fake),
        ["event number 0", "event number 2", "event number 3"],
        "only the refused event is missing, the rest in order"
    );
    let refused: Vec<u16> = fake.attempts().iter().map(|a| a.status).collect();
    assert_eq!(
        refused,
        [200, 413, 200, 200],
        "the refused message is not resent"
    );

    events::wait_for(&file, "the last event in the file target", |e| {
        e.title == "event number 3"
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while status(&addr).await.sent < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = status(&addr).await;
    assert_eq!(st.state, "ok", "the target stays enabled");
    // `failed` agrees with send_failures_total (the refused attempt); it used to stay 0.
    assert_eq!((st.sent, st.dropped, st.failed), (3, 1, 1));
    let last_error = st.last_error.unwrap_or_default();
    assert!(
        last_error.contains("acme:m1:1") && last_error.contains("too_large"),
        "{last_error}"
    );
    assert!(!last_error.contains("tok-SECRET"), "{last_error}");

    let dropped = r#"events_dropped_total{target="discord",reason="too_large"}"#;
    assert_eq!(sample(&metrics, dropped), Some(1.0));
    let failures = r#"send_failures_total{target="discord",reason="too_large"}"#;
    assert_eq!(sample(&metrics, failures), Some(1.0));
    let all_failures: f64 = metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(r#"vast_supervisor_send_failures_total{target="discord","#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        all_failures, st.failed as f64,
        "status FAILED = send_failures_total"
    );
    let max_age = r#"events_dropped_total{target="discord",reason="max_age"}"#;
    assert_eq!(sample(&metrics, max_age), Some(0.0));

    let warnings = logs.lines_with(&["WARN", "refused this message", "acme:m1:1"]);
    assert_eq!(warnings.len(), 1, "one warning:\n{}", logs.text());
    for part in ["discord", "rental_start", "too_large"] {
        assert!(warnings[0].contains(part), "{part} in {}", warnings[0]);
    }
    assert!(
        !logs.text().contains("tok-SECRET"),
        "no token in any log line"
    );

    // Durable: a restarted notifier starts after the skipped event and resends nothing.
    addr.send(StopNotifier).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _again = start_counted(discord(&fake, "discord"), &store, &metrics);
    queue(&store, vec![event(4)]).await;
    fake.wait_for(4, Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        titles(&fake),
        [
            "event number 0",
            "event number 2",
            "event number 3",
            "event number 4"
        ]
    );
    let all = events::read_events(&file);
    assert!(
        all.iter().all(|e| e.kind != EventKind::TargetFailing),
        "no target_failing for a refused message: {:?}",
        all.iter().map(|e| e.kind).collect::<Vec<_>>()
    );
}

#[actix_rt::test]
async fn a_refused_batch_is_sent_again_event_by_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let fake = FakeServices::start().await;
    let metrics = Metrics::new([], ["hook"]);
    let mut target = TargetConfig::with_defaults(
        "hook",
        TargetUrl::Webhook {
            tls: false,
            host: "hooks.local".into(),
            port: None,
            path: "/ingest".into(),
            basic_auth: None,
            endpoint: Some(fake.base_url().parse().unwrap()),
        },
    );
    target.batch_size = 10;
    // One event is far larger than the others; the proxy in front refuses bodies over 4 KiB.
    fake.set_body_limit("/ingest", Some(4096));
    let mut events: Vec<Event> = (0..5).map(event).collect();
    events[2].text = "x".repeat(6000);
    let addr = start_counted(target, &store, &metrics);
    tokio::time::sleep(Duration::from_millis(50)).await;
    queue(&store, events).await;
    fake.wait_for(4, Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received: Vec<String> = fake
        .received()
        .iter()
        .map(|r| {
            let json = r.json().expect("JSON body");
            // Still an array (the receiver expects batches), of one event after the refusal.
            let batch = json.as_array().expect("batch_size > 1 posts arrays");
            assert_eq!(batch.len(), 1, "one event per request after the refusal");
            batch[0]["title"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(
        received,
        [
            "event number 0",
            "event number 1",
            "event number 3",
            "event number 4"
        ]
    );
    let statuses: Vec<u16> = fake.attempts().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [413, 200, 200, 413, 200, 200]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while status(&addr).await.sent < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = status(&addr).await;
    assert_eq!((st.state.as_str(), st.sent, st.dropped), ("ok", 4, 1));
    let dropped = r#"events_dropped_total{target="hook",reason="too_large"}"#;
    assert_eq!(sample(&metrics, dropped), Some(1.0));
    let failures = r#"send_failures_total{target="hook",reason="too_large"}"#;
    assert_eq!(
        sample(&metrics, failures),
        Some(2.0),
        "the batch and the event"
    );
}

/// Issue 11 item 4: a `Retry-After` far in the future (in seconds or as an HTTP date) does not
/// park the target: the wait counts as failing (`target_failing` to the others after
/// `failing_after`) and ends when the event passes `max_age` (dropped, counted); the target
/// then delivers the next event once the service takes it again.
#[actix_rt::test]
async fn a_long_retry_after_counts_toward_failing_and_max_age() {
    for retry_after in ["86400", "Wed, 21 Oct 2099 07:28:00 GMT"] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let fake = FakeServices::start().await;
        let file = dir.path().join("others.jsonl");
        let _other = start(
            TargetConfig::with_defaults("file", TargetUrl::File { path: file.clone() }),
            &store,
        );
        let mut slow = discord(&fake, "slow");
        slow.max_age = Duration::from_millis(1500);
        let addr = start(slow, &store);
        tokio::time::sleep(Duration::from_millis(50)).await;
        fake.respond_next(HOOK, 1, Behaviour::RetryAfterHeader(retry_after.into()));
        queue(&store, vec![event(0)]).await;
        events::wait_for(&file, "target_failing about the waiting target", |e| {
            e.kind == EventKind::TargetFailing && e.data["target"] == "slow"
        })
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while status(&addr).await.dropped < 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{retry_after}: the event is dropped at max_age, not after the wait"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        queue(&store, vec![event(1)]).await;
        fake.wait_for(1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(titles(&fake), ["event number 1"], "{retry_after}");
        addr.send(StopNotifier).await.unwrap();
    }
}
