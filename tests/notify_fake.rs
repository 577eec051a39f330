//! The fake services themselves: they reject oversized payloads with the real services'
//! errors, enforce the published rate limits on request, and `wait_for` reports arrivals.
//! These are what make the other notify tests meaningful.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use vast_supervisor::notify::{default_bucket, SendError};
use vast_supervisor::sim::targets::{FakeService, FakeServices};

async fn post_json(url: String, body: serde_json::Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("fake reachable");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn oversized_payloads_get_the_real_rejections() {
    bounded(async {
        let fake = FakeServices::start().await;
        let base = fake.base_url();

        let (status, body) = post_json(
            format!("{base}/api/webhooks/1/t"),
            json!({"content": "x".repeat(2001)}),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["code"],
            50035
        );
        let embeds: Vec<_> = (0..2)
            .map(|_| json!({"description": "y".repeat(3500)}))
            .collect();
        let (status, _) = post_json(
            format!("{base}/api/webhooks/1/t"),
            json!({"embeds": embeds}),
        )
        .await;
        assert_eq!(status, 400, "two 3500-character embeds exceed 6000");

        let (status, body) = post_json(
            format!("{base}/bot1:x/sendMessage"),
            json!({"chat_id": 1, "text": "z".repeat(4097)}),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body.contains("Bad Request: message is too long"));
        let (status, body) = post_json(
            format!("{base}/bot1:x/sendMessage"),
            json!({"chat_id": 1, "text": "a < b", "parse_mode": "HTML"}),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body.contains("can't parse entities"));

        let response = reqwest::Client::new()
            .post(format!("{base}/1/messages.json"))
            .form(&[
                ("token", "t"),
                ("user", "u"),
                ("message", &"m".repeat(1025)),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);

        let response = reqwest::Client::new()
            .post(format!("{base}/topic"))
            .body("n".repeat(5000))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            200,
            "ntfy accepts, as an attachment"
        );

        let violations = fake.violations();
        assert_eq!(violations.len(), 6, "{violations:#?}");
        assert!(violations.iter().any(|v| v.contains("attachment")));
        assert_eq!(fake.received_by(FakeService::Ntfy).len(), 1);
        assert!(fake.received_by(FakeService::Discord).is_empty());
    })
    .await;
}

#[tokio::test]
async fn enforced_limits_answer_real_429s() {
    bounded(async {
        let fake = FakeServices::start().await;
        fake.enforce_rate_limits(true);
        let mut n = notifier(discord_url(&fake.base_url()));
        for i in 0..5 {
            n.send(&[rental_end()])
                .await
                .unwrap_or_else(|e| panic!("send {i}: {e}"));
        }
        match n.send(&[rental_end()]).await {
            Err(SendError::RateLimited { retry_after }) => {
                assert!(retry_after <= Duration::from_secs(2), "{retry_after:?}")
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        let rejected = fake.attempts().iter().filter(|a| a.status == 429).count();
        assert_eq!(rejected, 1);
    })
    .await;
}

#[tokio::test]
async fn pacing_with_the_default_bucket_never_trips_the_limit() {
    bounded(async {
        let fake = FakeServices::start().await;
        fake.enforce_rate_limits(true);
        let mut n = notifier(discord_url(&fake.base_url()));
        let mut bucket = default_bucket("discord");
        for _ in 0..8 {
            while let Err(wait) = bucket.try_take(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let delivered = n.send(&[rental_end()]).await.expect("never rate limited");
            if let Some(hint) = delivered.rate {
                bucket.apply_hint(&hint, Instant::now());
            }
        }
        assert!(fake.attempts().iter().all(|a| a.status == 200));
        assert_eq!(fake.received().len(), 8);
    })
    .await;
}

#[tokio::test]
async fn wait_for_reports_arrivals_and_timeouts() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(gotify_url(&fake.base_url()));
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            n.send(&[rental_end()]).await.map(|_| ())
        });
        let got = fake
            .wait_for(1, Duration::from_secs(5))
            .await
            .expect("arrives");
        assert_eq!(got[0].service, FakeService::Gotify);
        sender.await.unwrap().unwrap();
        let err = fake
            .wait_for(2, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(err.contains("1 arrived"), "{err}");
    })
    .await;
}
