//! No secret from a target URL reaches a log line, an error (Display or Debug), a delivery
//! summary or a notifier's Debug output, even when a service echoes the secret back.

mod support;

use std::time::Duration;
use support::logs::LogCapture;
use support::smtp::{SmtpConfig, SmtpServer};
use support::*;
use vast_supervisor::config::model::{EmailSecurity, TargetConfig, TargetUrl};
use vast_supervisor::notify::Notifier;
use vast_supervisor::sim::targets::{Behaviour, FakeServices};
use vast_supervisor::util::Secret;

const NTFY_PASSWORD: &str = "NtfySecretPass31";
const HEADER_VALUE: &str = "HeaderSecretValue33";
const PATH_SEGMENT: &str = "PathSecretSegment44";

/// Every secret used here contains "Secret"; the only allowed occurrence is `Secret(***)`.
fn assert_clean(what: &str, text: &str) {
    let cleaned = text.replace("Secret(***)", "");
    assert!(
        !cleaned.contains("Secret"),
        "{what} leaks a secret:\n{text}"
    );
}

#[tokio::test]
async fn no_secret_in_logs_errors_or_debug_output() {
    // Everything at TRACE, including reqwest/hyper through the `log` bridge; the test's own
    // SMTP server (mailin) is not our code.
    let log = LogCapture::new();
    log.install_global();

    bounded(async {
        let fake = FakeServices::start().await;
        let base = fake.base_url();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let smtp = SmtpServer::start(SmtpConfig {
            auth: Some(("alerts@example.org".into(), "the-right-one".into())),
            ..SmtpConfig::default()
        })
        .await;

        let mut webhook = target(webhook_url(&base, &format!("/hooks/{PATH_SEGMENT}"), true));
        webhook.bearer_token = Some(Secret::new(WEBHOOK_BEARER));
        webhook.headers.insert("X-Api-Key".into(), HEADER_VALUE.into());
        let mut webhook_refused = webhook.clone();
        webhook_refused.url = webhook_url(&closed, &format!("/hooks/{PATH_SEGMENT}"), true);

        let email = |port: u16| TargetUrl::Email {
            security: EmailSecurity::Opportunistic,
            host: "127.0.0.1".into(),
            port,
            user: Some("alerts@example.org".into()),
            password: Some(Secret::new(SMTP_PASSWORD)),
            from: "alerts@example.org".into(),
            to: vec!["ops@example.org".into()],
        };
        let closed_port: u16 = closed.rsplit(':').next().unwrap().parse().unwrap();

        // (target, scripted answer for its first send, path prefix)
        let cases: Vec<(TargetConfig, Option<(Behaviour, &str)>)> = vec![
            (target(discord_url(&base)), Some((Behaviour::NotFound, "/api/"))),
            (target(discord_url(&closed)), None),
            (target(slack_url(&base)), Some((Behaviour::Forbidden, "/services/"))),
            (target(telegram_url(&base)), Some((Behaviour::ServerError(500), "/bot"))),
            (target(telegram_url(&base)), Some((Behaviour::Close, "/bot"))),
            (
                target(ntfy_url(&base, Some(NTFY_TOKEN))),
                Some((Behaviour::Forbidden, "/vast")),
            ),
            (
                target(ntfy_url(&closed, Some(&format!("bob:{NTFY_PASSWORD}")))),
                None,
            ),
            (target(pushover_url(&base)), Some((Behaviour::Forbidden, "/1/"))),
            (target(gotify_url(&base)), Some((Behaviour::NotFound, "/message"))),
            (
                webhook,
                Some((
                    // A service that echoes the credentials it refused.
                    Behaviour::Respond {
                        status: 401,
                        body: format!(
                            "bad token {WEBHOOK_BEARER} for /hooks/{PATH_SEGMENT} key {HEADER_VALUE}"
                        ),
                    },
                    "/hooks/",
                )),
            ),
            (webhook_refused, None),
            (target(email(smtp.addr.port())), None),
            (target(email(closed_port)), None),
        ];

        let mut seen = String::new();
        let mut failures = 0;
        for (config, script) in cases {
            let mut n = Notifier::new(&config, reqwest::Client::new())
                .expect("builds")
                .with_timeout(Duration::from_secs(5));
            if let Some((behaviour, prefix)) = script {
                fake.respond_next(prefix, 1, behaviour);
            }
            seen.push_str(&format!("{n:?}\n{}\n", n.destination()));
            match n.send(&[machine_offline()]).await {
                Ok(delivered) => seen.push_str(&format!("{delivered:?}\n")),
                Err(error) => {
                    failures += 1;
                    seen.push_str(&format!("{error}\n{error:?}\n"));
                }
            }
            // And a success where the service is reachable.
            if let Ok(delivered) = n.send(&[rental_end()]).await {
                seen.push_str(&format!("{delivered:?}\n"));
            }
        }
        assert_eq!(failures, 13, "every case failed once:\n{seen}");
        assert!(seen.contains("***"), "destinations are shown redacted:\n{seen}");
        assert_clean("errors and Debug output", &seen);
    })
    .await;

    let log = log.text();
    assert!(
        log.contains("notification failed") && log.contains("notification delivered"),
        "the capture works:\n{log}"
    );
    assert_clean("the log", &log);
}

#[test]
fn a_bad_webhook_header_is_refused_without_quoting_its_value() {
    let mut config = target(webhook_url("http://127.0.0.1:9", "/h", false));
    config
        .headers
        .insert("X-Api-Key".into(), "Bad\nSecretValue".into());
    let error = Notifier::new(&config, reqwest::Client::new()).unwrap_err();
    assert!(error.contains("X-Api-Key"), "{error}");
    assert_clean("the error", &error);
}
