//! The notifier actor against fake services over loopback: order, 429 `retry_after` honoured,
//! 5xx retried, an outage of several retry rounds with nothing lost, permanent failure disabling
//! the target with `target_failing` on the others, and `max_age` dropping only what is too old.

use actix::prelude::*;
use chrono::Utc;
use std::path::Path;
use std::time::Duration;
use vast_supervisor::actors::notifier::{
    DeliveryTuning, GetTargetStatus, NotifierActor, TargetStatus,
};
use vast_supervisor::config::{TargetConfig, TargetUrl};
use vast_supervisor::event::{Event, EventKind, Subject};
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
    assert_eq!((st.sent, st.failed, st.state.as_str()), (4, 0, "ok"));
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
    let addr = start(target, &store);
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
}
