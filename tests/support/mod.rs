//! Shared fixtures for the notification tests: the two reference events (rental_end,
//! machine_offline), bursts, oversized events, target builders pointed at the fake services,
//! and a bound on every async test.
#![allow(dead_code)]

pub mod logs;
pub mod pki;
pub mod smtp;

use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;
use url::Url;
use vast_supervisor::config::model::{TargetConfig, TargetUrl};
use vast_supervisor::event::{Event, EventKind, Subject};
use vast_supervisor::notify::Notifier;
use vast_supervisor::util::Secret;

pub const DISCORD_TOKEN: &str = "DiscordSecretToken-7f3a9c";
pub const SLACK_TOKENS: &str = "T00SLACKA/B00SLACKB/SlackSecretC9x2";
pub const TELEGRAM_TOKEN: &str = "123456:TelegramSecretToken-AAbb";
pub const NTFY_TOKEN: &str = "tk_NtfySecretToken42";
pub const PUSHOVER_USER: &str = "PushoverUserSecret77";
pub const PUSHOVER_APP: &str = "PushoverAppSecret88";
pub const GOTIFY_TOKEN: &str = "GotifySecretToken55";
pub const WEBHOOK_PASSWORD: &str = "WebhookSecretPassword66";
pub const WEBHOOK_BEARER: &str = "WebhookSecretBearer99";
pub const SMTP_PASSWORD: &str = "SmtpSecretPassword11";

/// Fails the test instead of hanging it.
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("test exceeded its 30 s bound")
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid fixture time")
        .with_timezone(&Utc)
}

pub fn rental_end() -> Event {
    Event::new(
        "alice:m12345:rental_end:1795374626",
        EventKind::RentalEnd,
        Some("alice".into()),
        Subject::Machine {
            id: 12345,
            name: Some("rig-01".into()),
        },
        at("2026-11-22T19:10:26Z"),
        "Rental ended on rig-01",
        "2x RTX 4090 on-demand rental ended after 3h 12m\nEstimated earnings: $2.56 (storage 50 GB released)",
    )
    .with_since(Some(at("2026-11-22T19:09:56Z")))
    .with_data(serde_json::json!({
        "gpus": [0, 1], "gpu_type": "D", "duration_s": 11520,
        "rate_per_gpu_hour": 0.40, "earnings_usd": 2.56, "storage_gb": 50
    }))
}

pub fn machine_offline() -> Event {
    Event::new(
        "alice:m23456:machine_offline:1795374626",
        EventKind::MachineOffline,
        Some("alice".into()),
        Subject::Machine {
            id: 23456,
            name: Some("rig_02".into()),
        },
        at("2026-11-22T19:10:26Z"),
        "rig_02 is offline",
        "No heartbeat for 3m 20s (reported timeout 200 s > offline_grace 120 s)\nLast error: gpu_0 <unreachable> & fan_1 *stalled*",
    )
    .with_since(Some(at("2026-11-22T19:09:56Z")))
    .with_data(serde_json::json!({"timeout_s": 200, "gpus": [0, 1, 2, 3]}))
}

/// `n` machines going offline in one burst.
pub fn offline_burst(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let id = 30000 + i as u64;
            Event::new(
                format!("alice:m{id}:machine_offline:1795374626"),
                EventKind::MachineOffline,
                Some("alice".into()),
                Subject::Machine {
                    id,
                    name: Some(format!("rack-a-node-{i:02}")),
                },
                at("2026-11-22T19:10:26Z") + chrono::Duration::seconds(i as i64),
                format!("rack-a-node-{i:02} is offline"),
                "No heartbeat for 2m 10s",
            )
        })
        .collect()
}

/// An event whose text is about 10,000 characters of everything that needs escaping.
pub fn huge_event() -> Event {
    let mut text = String::new();
    let mut i = 0;
    while text.chars().count() < 10_000 {
        text.push_str(&format!(
            "line {i}: <tag> & \"quote\" *bold* _under_ ünïcödé 🚀 `code` | pipe\n"
        ));
        i += 1;
    }
    let mut e = machine_offline();
    e.id = "alice:m23456:huge".into();
    e.text = text;
    e
}

fn endpoint(base: &str) -> Option<Url> {
    Some(Url::parse(base).expect("fake base URL"))
}

pub fn discord_url(base: &str) -> TargetUrl {
    TargetUrl::Discord {
        webhook_id: "112233445566".into(),
        token: Secret::new(DISCORD_TOKEN),
        endpoint: endpoint(base),
    }
}

pub fn slack_url(base: &str) -> TargetUrl {
    TargetUrl::Slack {
        tokens: Secret::new(SLACK_TOKENS),
        endpoint: endpoint(base),
    }
}

pub fn telegram_url(base: &str) -> TargetUrl {
    TargetUrl::Telegram {
        bot_token: Secret::new(TELEGRAM_TOKEN),
        chat_id: "-4001234".into(),
        endpoint: endpoint(base),
    }
}

pub fn ntfy_url(base: &str, auth: Option<&str>) -> TargetUrl {
    TargetUrl::Ntfy {
        tls: true,
        host: "ntfy.example.org".into(),
        port: None,
        topic: "vast-alerts".into(),
        auth: auth.map(Secret::new),
        endpoint: endpoint(base),
    }
}

pub fn pushover_url(base: &str) -> TargetUrl {
    TargetUrl::Pushover {
        user_key: Secret::new(PUSHOVER_USER),
        app_token: Secret::new(PUSHOVER_APP),
        endpoint: endpoint(base),
    }
}

pub fn gotify_url(base: &str) -> TargetUrl {
    TargetUrl::Gotify {
        tls: false,
        host: "gotify.local".into(),
        port: Some(8080),
        path: String::new(),
        token: Secret::new(GOTIFY_TOKEN),
        endpoint: endpoint(base),
    }
}

pub fn webhook_url(base: &str, path: &str, basic_auth: bool) -> TargetUrl {
    TargetUrl::Webhook {
        tls: false,
        host: "hooks.local".into(),
        port: None,
        path: path.into(),
        basic_auth: basic_auth.then(|| ("hookuser".to_string(), Secret::new(WEBHOOK_PASSWORD))),
        endpoint: endpoint(base),
    }
}

pub fn target(url: TargetUrl) -> TargetConfig {
    let mut target = TargetConfig::with_defaults("test-target", url);
    target.mention = Some("<@123456>".into());
    target
}

/// A notifier for `url` with a short deadline, so timeout tests stay quick.
pub fn notifier(url: TargetUrl) -> Notifier {
    notifier_for(&target(url))
}

pub fn notifier_for(target: &TargetConfig) -> Notifier {
    Notifier::new(target, reqwest::Client::new())
        .expect("test target builds")
        .with_timeout(Duration::from_secs(5))
}
