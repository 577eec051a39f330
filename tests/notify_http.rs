//! Every HTTP service against the fake services over real loopback connections: success, 429
//! (with the service's own retry_after), 5xx (transient), permanent failures, answers that
//! reject one message only (413 and each service's own "too large"/"invalid"), Telegram chat
//! migration, resuming split messages, webhook batches and headers, transport failures.

mod support;

use std::time::Duration;
use support::*;
use vast_supervisor::notify::{Notifier, SendError};
use vast_supervisor::sim::targets::{Behaviour, FakeService, FakeServices};

fn assert_permanent(result: Result<vast_supervisor::notify::Delivered, SendError>, reason: &str) {
    match result {
        Err(SendError::Permanent { reason: r, detail }) => {
            assert_eq!(r, reason, "detail: {detail}");
        }
        other => panic!("expected permanent {reason}, got {other:?}"),
    }
}

fn assert_transient(result: Result<vast_supervisor::notify::Delivered, SendError>, reason: &str) {
    match result {
        Err(SendError::Transient { reason: r, detail }) => {
            assert_eq!(r, reason, "detail: {detail}");
        }
        other => panic!("expected transient {reason}, got {other:?}"),
    }
}

fn assert_rejected(result: Result<vast_supervisor::notify::Delivered, SendError>, reason: &str) {
    match result {
        Err(SendError::Rejected { reason: r, detail }) => {
            assert_eq!(r, reason, "detail: {detail}");
        }
        other => panic!("expected this message rejected ({reason}), got {other:?}"),
    }
}

fn assert_rate_limited(
    result: Result<vast_supervisor::notify::Delivered, SendError>,
    expected: Duration,
) {
    match result {
        Err(SendError::RateLimited { retry_after }) => assert_eq!(retry_after, expected),
        other => panic!("expected rate limited {expected:?}, got {other:?}"),
    }
}

/// For a service: 5xx is transient "server" and a later send succeeds.
async fn server_error_is_transient(fake: &FakeServices, n: &mut Notifier, prefix: &str) {
    fake.respond_next(prefix, 1, Behaviour::ServerError(502));
    assert_transient(n.send(&[rental_end()]).await, "server");
    fake.set_down(prefix, true);
    assert_transient(n.send(&[rental_end()]).await, "server");
    fake.set_down(prefix, false);
    n.send(&[rental_end()])
        .await
        .expect("recovers after the outage");
}

#[tokio::test]
async fn discord_success_429_5xx_and_permanent() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(discord_url(&fake.base_url()));
        let delivered = n.send(&[machine_offline()]).await.expect("delivered");
        assert_eq!(delivered.messages, 1);
        assert_eq!(delivered.info, "HTTP 200");
        let hint = delivered.rate.expect("Discord reports X-RateLimit-*");
        assert_eq!(hint.remaining, Some(4));

        let got = fake.received_by(FakeService::Discord);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].path,
            format!("/api/webhooks/112233445566/{DISCORD_TOKEN}")
        );
        assert_eq!(got[0].query.as_deref(), Some("wait=true"));
        let body = got[0].json().unwrap();
        assert_eq!(body["content"], "<@123456>");
        assert_eq!(body["embeds"][0]["color"], 0xE74C3C);
        assert!(body["embeds"][0]["fields"][2]["value"]
            .as_str()
            .unwrap()
            .starts_with("<t:1795374626:f>"));

        // Info events carry no mention.
        n.send(&[rental_end()]).await.unwrap();
        let body = fake.received_by(FakeService::Discord)[1].json().unwrap();
        assert!(body.get("content").is_none());
        assert_eq!(body["embeds"][0]["color"], 0x3498DB);

        let prefix = "/api/webhooks/";
        fake.respond_next(
            prefix,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_millis(376),
            },
        );
        assert_rate_limited(n.send(&[rental_end()]).await, Duration::from_millis(376));

        server_error_is_transient(&fake, &mut n, prefix).await;
        fake.respond_next(prefix, 1, Behaviour::NotFound);
        assert_permanent(n.send(&[rental_end()]).await, "not_found");
        fake.respond_next(prefix, 1, Behaviour::Forbidden);
        assert_permanent(n.send(&[rental_end()]).await, "auth");
        fake.respond_next(
            prefix,
            1,
            Behaviour::Respond {
                status: 400,
                body: r#"{"message":"The request body contains invalid JSON.","code":50109}"#
                    .into(),
            },
        );
        assert_permanent(n.send(&[rental_end()]).await, "client");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    })
    .await;
}

#[tokio::test]
async fn slack_success_429_5xx_and_permanent() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(slack_url(&fake.base_url()));
        let delivered = n.send(&[machine_offline()]).await.expect("delivered");
        assert_eq!(delivered.info, "HTTP 200");
        let got = fake.received_by(FakeService::Slack);
        assert_eq!(got[0].path, format!("/services/{SLACK_TOKENS}"));
        let body = got[0].json().unwrap();
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with("<@123456> rig_02 is offline"));
        assert!(body["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("&lt;unreachable&gt; &amp;"));

        let prefix = "/services/";
        fake.respond_next(
            prefix,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_secs(7),
            },
        );
        assert_rate_limited(n.send(&[rental_end()]).await, Duration::from_secs(7));
        server_error_is_transient(&fake, &mut n, prefix).await;
        fake.respond_next(prefix, 1, Behaviour::NotFound);
        assert_permanent(n.send(&[rental_end()]).await, "not_found");
        fake.respond_next(prefix, 1, Behaviour::Forbidden);
        assert_permanent(n.send(&[rental_end()]).await, "auth");
        fake.respond_next(
            prefix,
            1,
            Behaviour::Respond {
                status: 410,
                body: "channel_is_archived".into(),
            },
        );
        assert_permanent(n.send(&[rental_end()]).await, "not_found");
        fake.respond_next(
            prefix,
            1,
            Behaviour::Respond {
                status: 400,
                body: "invalid_token".into(),
            },
        );
        assert_permanent(n.send(&[rental_end()]).await, "client");
    })
    .await;
}

#[tokio::test]
async fn telegram_success_429_5xx_and_permanent() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(telegram_url(&fake.base_url()));
        let delivered = n.send(&[machine_offline()]).await.expect("delivered");
        assert_eq!(delivered.info, "HTTP 200");
        let got = fake.received_by(FakeService::Telegram);
        assert_eq!(got[0].path, format!("/bot{TELEGRAM_TOKEN}/sendMessage"));
        let body = got[0].json().unwrap();
        assert_eq!(body["chat_id"], -4001234);
        assert_eq!(body["parse_mode"], "HTML");
        assert!(body["text"]
            .as_str()
            .unwrap()
            .contains("gpu_0 &lt;unreachable&gt; &amp; fan_1"));

        let prefix = "/bot";
        fake.respond_next(
            prefix,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_secs(3),
            },
        );
        assert_rate_limited(n.send(&[rental_end()]).await, Duration::from_secs(3));
        server_error_is_transient(&fake, &mut n, prefix).await;
        fake.respond_next(prefix, 1, Behaviour::Forbidden);
        assert_permanent(n.send(&[rental_end()]).await, "auth");
        fake.respond_next(prefix, 1, Behaviour::NotFound);
        assert_permanent(n.send(&[rental_end()]).await, "not_found");
        fake.respond_next(
            prefix,
            1,
            Behaviour::Respond {
                status: 401,
                body: r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#.into(),
            },
        );
        assert_permanent(n.send(&[rental_end()]).await, "auth");
        fake.respond_next(
            prefix,
            1,
            Behaviour::Respond {
                status: 400,
                body:
                    r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#
                        .into(),
            },
        );
        assert_permanent(n.send(&[rental_end()]).await, "client");
    })
    .await;
}

#[tokio::test]
async fn telegram_follows_chat_migration_and_keeps_the_new_id() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(telegram_url(&fake.base_url()));
        fake.respond_next("/bot", 1, Behaviour::Migrate(-1001234567890));
        let delivered = n
            .send(&[rental_end()])
            .await
            .expect("resent to the new chat");
        assert!(
            delivered.info.contains("chat migrated to -1001234567890"),
            "{}",
            delivered.info
        );
        let got = fake.received_by(FakeService::Telegram);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].json().unwrap()["chat_id"], -1001234567890i64);

        // The fake keeps answering "migrated" for the old id; the notifier no longer uses it.
        let attempts_before = fake.attempts().len();
        n.send(&[machine_offline()]).await.expect("sent");
        assert_eq!(fake.attempts().len(), attempts_before + 1);
        assert_eq!(
            fake.received_by(FakeService::Telegram)[1].json().unwrap()["chat_id"],
            -1001234567890i64
        );
    })
    .await;
}

#[tokio::test]
async fn ntfy_success_429_quota_5xx_and_permanent() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(ntfy_url(&fake.base_url(), Some(NTFY_TOKEN)));
        n.send(&[machine_offline()]).await.expect("delivered");
        let got = fake.received_by(FakeService::Ntfy);
        assert_eq!(got[0].path, "/vast-alerts");
        assert_eq!(got[0].header("priority"), Some("5"));
        assert_eq!(
            got[0].header("tags"),
            Some("rotating_light,machine_offline")
        );
        assert_eq!(got[0].header("title"), Some("rig_02 is offline"));
        assert_eq!(
            got[0].header("authorization"),
            Some(format!("Bearer {NTFY_TOKEN}").as_str())
        );
        assert!(got[0].body.starts_with("No heartbeat"));

        let prefix = "/vast-alerts";
        // ntfy sends no Retry-After: back off a minute.
        fake.respond_next(
            prefix,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_secs(2),
            },
        );
        assert_rate_limited(n.send(&[rental_end()]).await, Duration::from_secs(60));
        fake.respond_next(prefix, 1, Behaviour::QuotaExceeded);
        match n.send(&[rental_end()]).await {
            Err(SendError::RateLimited { retry_after }) => {
                let expected =
                    vast_supervisor::notify::ntfy::until_next_utc_day(chrono::Utc::now());
                let diff = (expected.as_secs_f64() - retry_after.as_secs_f64()).abs();
                assert!(diff < 5.0, "{retry_after:?} vs {expected:?}");
            }
            other => panic!("expected quota wait, got {other:?}"),
        }
        server_error_is_transient(&fake, &mut n, prefix).await;
        fake.respond_next(prefix, 1, Behaviour::Forbidden);
        assert_permanent(n.send(&[rental_end()]).await, "auth");
        fake.respond_next(prefix, 1, Behaviour::NotFound);
        assert_permanent(n.send(&[rental_end()]).await, "not_found");

        // user:pass becomes Basic auth.
        let mut basic = notifier(ntfy_url(&fake.base_url(), Some("bob:hunter22")));
        basic.send(&[rental_end()]).await.unwrap();
        let last = fake.received_by(FakeService::Ntfy).pop().unwrap();
        assert_eq!(last.header("authorization"), Some("Basic Ym9iOmh1bnRlcjIy"));
        assert_eq!(last.header("priority"), Some("3"));
    })
    .await;
}

#[tokio::test]
async fn pushover_success_quota_5xx_and_permanent() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(pushover_url(&fake.base_url()));
        let delivered = n.send(&[machine_offline()]).await.expect("delivered");
        let hint = delivered.rate.expect("X-Limit-App-* read");
        assert_eq!(hint.remaining, Some(9_999));
        assert!(hint.reset_after.unwrap() > Duration::from_secs(86_400));
        let form = fake.received_by(FakeService::Pushover)[0].form();
        assert_eq!(form["token"], PUSHOVER_APP);
        assert_eq!(form["user"], PUSHOVER_USER);
        assert_eq!(form["priority"], "1");
        assert_eq!(form["title"], "rig_02 is offline");
        assert_eq!(form["timestamp"], "1795374626");

        let prefix = "/1/";
        fake.respond_next(
            prefix,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_secs(120),
            },
        );
        match n.send(&[rental_end()]).await {
            Err(SendError::RateLimited { retry_after }) => {
                assert!(
                    (Duration::from_secs(118)..=Duration::from_secs(121)).contains(&retry_after),
                    "{retry_after:?}"
                )
            }
            other => panic!("expected rate limited, got {other:?}"),
        }
        server_error_is_transient(&fake, &mut n, prefix).await;
        fake.respond_next(prefix, 1, Behaviour::Forbidden);
        assert_permanent(n.send(&[rental_end()]).await, "auth");
        fake.respond_next(
            prefix,
            1,
            Behaviour::Respond {
                status: 400,
                body: r#"{"sound":"invalid","errors":["sound is invalid"],"status":0}"#.into(),
            },
        );
        assert_permanent(n.send(&[rental_end()]).await, "client");
    })
    .await;
}

#[tokio::test]
async fn gotify_success_5xx_and_permanent() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(gotify_url(&fake.base_url()));
        n.send(&[machine_offline()]).await.expect("delivered");
        let got = fake.received_by(FakeService::Gotify);
        assert_eq!(got[0].header("x-gotify-key"), Some(GOTIFY_TOKEN));
        let body = got[0].json().unwrap();
        assert_eq!(body["priority"], 8);
        assert_eq!(body["title"], "rig_02 is offline");

        let prefix = "/message";
        fake.respond_next(
            prefix,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_secs(4),
            },
        );
        assert_rate_limited(n.send(&[rental_end()]).await, Duration::from_secs(4));
        server_error_is_transient(&fake, &mut n, prefix).await;
        fake.respond_next(prefix, 1, Behaviour::Forbidden);
        assert_permanent(n.send(&[rental_end()]).await, "auth");
        fake.respond_next(prefix, 1, Behaviour::NotFound);
        assert_permanent(n.send(&[rental_end()]).await, "not_found");
    })
    .await;
}

#[tokio::test]
async fn webhook_success_429_5xx_and_permanent() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(webhook_url(&fake.base_url(), "/hooks/vast", true));
        n.send(&[rental_end()]).await.expect("delivered");
        let got = fake.received_by(FakeService::Webhook);
        assert_eq!(got[0].path, "/hooks/vast");
        let body: vast_supervisor::event::Event = serde_json::from_str(&got[0].body).unwrap();
        assert_eq!(body, rental_end());
        let basic = format!(
            "Basic {}",
            base64_encode(&format!("hookuser:{WEBHOOK_PASSWORD}"))
        );
        assert_eq!(got[0].header("authorization"), Some(basic.as_str()));

        let prefix = "/hooks/";
        fake.respond_next(
            prefix,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_secs(9),
            },
        );
        assert_rate_limited(n.send(&[rental_end()]).await, Duration::from_secs(9));
        server_error_is_transient(&fake, &mut n, prefix).await;
        for (status, reason) in [
            (401, "auth"),
            (403, "auth"),
            (404, "not_found"),
            (410, "not_found"),
            (422, "client"),
        ] {
            fake.respond_next(
                prefix,
                1,
                Behaviour::Respond {
                    status,
                    body: "nope".into(),
                },
            );
            assert_permanent(n.send(&[rental_end()]).await, reason);
        }
    })
    .await;
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn webhook_batches_bearer_and_custom_headers() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut target = target(webhook_url(&fake.base_url(), "/hooks/batch", false));
        target.batch_size = 3;
        target.bearer_token = Some(vast_supervisor::util::Secret::new(WEBHOOK_BEARER));
        target
            .headers
            .insert("X-Api-Key".into(), "custom-header-value".into());
        let mut n = notifier_for(&target);
        let events = offline_burst(7);
        let delivered = n.send(&events).await.expect("delivered");
        assert_eq!(delivered.messages, 3);
        let got = fake.received_by(FakeService::Webhook);
        let sizes: Vec<usize> = got
            .iter()
            .map(|r| r.json().unwrap().as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        let ids: Vec<String> = got
            .iter()
            .flat_map(|r| r.json().unwrap().as_array().unwrap().clone())
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        let expected: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, expected, "order is kept");
        for r in &got {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {WEBHOOK_BEARER}").as_str())
            );
            assert_eq!(r.header("x-api-key"), Some("custom-header-value"));
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    })
    .await;
}

#[tokio::test]
async fn a_retry_resumes_after_the_parts_already_accepted() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut target = target(webhook_url(&fake.base_url(), "/hooks/resume", false));
        target.batch_size = 2;
        let mut n = notifier_for(&target);
        let events = offline_burst(6);
        fake.respond_after(
            "/hooks/",
            1,
            1,
            Behaviour::RateLimit {
                retry_after: Duration::from_secs(1),
            },
        );
        assert!(matches!(
            n.send(&events).await,
            Err(SendError::RateLimited { .. })
        ));
        assert_eq!(fake.received().len(), 1);
        let delivered = n.send(&events).await.expect("the retry completes");
        assert_eq!(
            delivered.messages, 2,
            "only the two missing chunks are sent"
        );
        let ids: Vec<String> = fake
            .received()
            .iter()
            .flat_map(|r| r.json().unwrap().as_array().unwrap().clone())
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        let expected: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, expected, "nothing repeated, nothing lost, order kept");

        // A different batch starts from its first part.
        n.send(&events[..1]).await.unwrap();
        assert_eq!(fake.received().len(), 4);
    })
    .await;
}

#[tokio::test]
async fn transport_failures_are_transient() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n =
            notifier(discord_url(&fake.base_url())).with_timeout(Duration::from_millis(300));
        fake.respond_next("/api/", 1, Behaviour::Hang(Duration::from_secs(3)));
        assert_transient(n.send(&[rental_end()]).await, "timeout");
        fake.respond_next("/api/", 1, Behaviour::Close);
        assert_transient(n.send(&[rental_end()]).await, "network");

        // Nothing listens on this port any more.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let mut refused = notifier(slack_url(&format!("http://{closed}")));
        assert_transient(refused.send(&[rental_end()]).await, "network");
    })
    .await;
}

#[tokio::test]
async fn send_test_reaches_the_service() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(gotify_url(&fake.base_url()));
        n.send_test().await.expect("test message delivered");
        let body = fake.received()[0].json().unwrap();
        assert!(body["title"]
            .as_str()
            .unwrap()
            .contains("Test notification for target \"test-target\""));
        assert_eq!(n.service(), "gotify");
        // Its own kind, not a supervisor_start a filter or a script could mistake for a start.
        let mut hook = notifier(webhook_url(&fake.base_url(), "/hooks/test", false));
        hook.send_test().await.expect("test message delivered");
        let body = fake.received().last().unwrap().json().unwrap();
        assert_eq!(body["kind"], "test", "{body}");
        assert_eq!(body["data"]["test"], true);
    })
    .await;
}

/// For one service: the answers that concern only the message are `Rejected` (not permanent),
/// and the next message goes through on the same notifier.
async fn rejections(
    fake: &FakeServices,
    n: &mut Notifier,
    prefix: &str,
    answers: &[(Behaviour, &str)],
) {
    for (behaviour, reason) in answers {
        fake.respond_next(prefix, 1, behaviour.clone());
        assert_rejected(n.send(&[rental_end()]).await, reason);
        n.send(&[machine_offline()])
            .await
            .unwrap_or_else(|e| panic!("after {behaviour:?} the target still delivers: {e}"));
    }
}

fn respond(status: u16, body: &str) -> Behaviour {
    Behaviour::Respond {
        status,
        body: body.into(),
    }
}

#[tokio::test]
async fn answers_about_one_message_reject_only_that_message() {
    bounded(async {
        let fake = FakeServices::start().await;
        let base = fake.base_url();

        let mut n = notifier(discord_url(&base));
        rejections(
            &fake,
            &mut n,
            "/api/webhooks/",
            &[
                (Behaviour::TooLarge, "too_large"),
                (
                    respond(400, r#"{"message":"Invalid Form Body","code":50035}"#),
                    "invalid",
                ),
                (
                    respond(400, r#"{"message":"Cannot send an empty message","code":50006}"#),
                    "invalid",
                ),
            ],
        )
        .await;

        let mut n = notifier(slack_url(&base));
        rejections(
            &fake,
            &mut n,
            "/services/",
            &[
                (Behaviour::TooLarge, "too_large"),
                (respond(400, "invalid_payload"), "invalid"),
                (respond(400, "invalid_blocks"), "invalid"),
                (respond(400, "msg_too_long"), "too_large"),
            ],
        )
        .await;

        let mut n = notifier(telegram_url(&base));
        rejections(
            &fake,
            &mut n,
            "/bot",
            &[
                (Behaviour::TooLarge, "too_large"),
                (
                    respond(
                        400,
                        r#"{"ok":false,"error_code":400,"description":"Bad Request: message is too long"}"#,
                    ),
                    "too_large",
                ),
                (
                    respond(
                        400,
                        r#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0"}"#,
                    ),
                    "invalid",
                ),
            ],
        )
        .await;

        let mut n = notifier(ntfy_url(&base, None));
        rejections(&fake, &mut n, "/vast-alerts", &[(Behaviour::TooLarge, "too_large")]).await;

        let mut n = notifier(pushover_url(&base));
        rejections(
            &fake,
            &mut n,
            "/1/",
            &[
                (Behaviour::TooLarge, "too_large"),
                (
                    respond(
                        400,
                        r#"{"message":"is too long","errors":["message cannot be longer than 1024 characters"],"status":0}"#,
                    ),
                    "too_large",
                ),
                (
                    respond(
                        400,
                        r#"{"title":"cannot be blank","errors":["title cannot be blank"],"status":0}"#,
                    ),
                    "invalid",
                ),
            ],
        )
        .await;

        let mut n = notifier(gotify_url(&base));
        rejections(&fake, &mut n, "/message", &[(Behaviour::TooLarge, "too_large")]).await;

        // A body cap in front of a webhook: only the oversized event is refused.
        let mut n = notifier(webhook_url(&base, "/hooks/capped", false));
        fake.set_body_limit("/hooks/capped", Some(4096));
        assert_rejected(n.send(&[huge_event()]).await, "too_large");
        n.send(&[rental_end()]).await.expect("a small event still goes through");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    })
    .await;
}

#[tokio::test]
async fn a_rejected_split_message_is_not_resumed() {
    bounded(async {
        // Telegram splits a huge event in parts; the second part is refused. The notifier
        // does not keep that progress: a later send of the same event starts from its first
        // part (the actor never resends a rejected message; this only guards the bookkeeping).
        let fake = FakeServices::start().await;
        let whole = notifier(telegram_url(&fake.base_url()))
            .send(&[huge_event()])
            .await
            .expect("delivered")
            .messages;
        assert!(whole >= 3, "{whole} parts");
        fake.clear();
        let mut n = notifier(telegram_url(&fake.base_url()));
        fake.respond_after(
            "/bot",
            1,
            1,
            respond(
                400,
                r#"{"ok":false,"error_code":400,"description":"Bad Request: message is too long"}"#,
            ),
        );
        assert_rejected(n.send(&[huge_event()]).await, "too_large");
        assert_eq!(fake.received_by(FakeService::Telegram).len(), 1);
        fake.clear();
        let delivered = n.send(&[huge_event()]).await.expect("delivered");
        assert_eq!(delivered.messages, whole, "every part sent again");
        assert_eq!(fake.received_by(FakeService::Telegram).len(), whole);
    })
    .await;
}
