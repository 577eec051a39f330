//! Messages always fit each service: a ~10,000-character event and a 30-event burst pass every
//! fake's validation (which rejects exactly like the real service), split services lose no
//! text, and a burst becomes one digest message.

mod support;

use support::*;
use vast_supervisor::event::Event;
use vast_supervisor::notify::render::TRUNCATED;
use vast_supervisor::sim::targets::{FakeService, FakeServices};

fn original_lines(event: &Event) -> Vec<String> {
    event.text.lines().map(str::to_string).collect()
}

fn unescape_html(text: &str) -> String {
    text.replace("<b>", "")
        .replace("</b>", "")
        .replace("<i>", "")
        .replace("</i>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn unescape_markdown(text: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

#[tokio::test]
async fn discord_splits_a_huge_event_without_losing_text() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(discord_url(&fake.base_url()));
        let event = huge_event();
        let delivered = n
            .send(std::slice::from_ref(&event))
            .await
            .expect("delivered");
        assert!(delivered.messages >= 2, "10k characters need two messages");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
        let got = fake.received_by(FakeService::Discord);
        assert_eq!(got.len(), delivered.messages);
        let mut text = String::new();
        for (i, r) in got.iter().enumerate() {
            let body = r.json().unwrap();
            // The mention pings once, not once per part.
            assert_eq!(body.get("content").is_some(), i == 0);
            for embed in body["embeds"].as_array().unwrap() {
                text.push_str(&unescape_markdown(
                    embed["description"].as_str().unwrap_or(""),
                ));
                text.push('\n');
            }
        }
        for line in original_lines(&event) {
            assert!(text.contains(&line), "lost line {line:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn telegram_splits_a_huge_event_without_losing_text() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(telegram_url(&fake.base_url()));
        let event = huge_event();
        let delivered = n
            .send(std::slice::from_ref(&event))
            .await
            .expect("delivered");
        assert!(delivered.messages >= 3, "{}", delivered.messages);
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
        let text: String = fake
            .received_by(FakeService::Telegram)
            .iter()
            .map(|r| unescape_html(r.json().unwrap()["text"].as_str().unwrap()) + "\n")
            .collect();
        for line in original_lines(&event) {
            assert!(text.contains(&line), "lost line {line:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn slack_fits_sections_and_truncates_text_past_40k() {
    bounded(async {
        let fake = FakeServices::start().await;
        let mut n = notifier(slack_url(&fake.base_url()));
        let mut event = huge_event();
        n.send(std::slice::from_ref(&event))
            .await
            .expect("10k delivered");
        let body = fake.received_by(FakeService::Slack)[0].json().unwrap();
        let sections: String = body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| unescape_html(b["text"]["text"].as_str().unwrap()) + "\n")
            .collect();
        for line in original_lines(&event) {
            assert!(sections.contains(&line), "lost line {line:?}");
        }

        event.text = event.text.repeat(5);
        n.send(std::slice::from_ref(&event))
            .await
            .expect("50k delivered");
        let body = fake.received_by(FakeService::Slack)[1].json().unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(text.chars().count() <= 40_000);
        assert!(text.ends_with(TRUNCATED));
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    })
    .await;
}

#[tokio::test]
async fn ntfy_pushover_and_gotify_accept_a_huge_event() {
    bounded(async {
        let fake = FakeServices::start().await;
        let base = fake.base_url();
        let event = huge_event();
        for url in [
            ntfy_url(&base, None),
            pushover_url(&base),
            gotify_url(&base),
        ] {
            let mut n = notifier(url);
            n.send(std::slice::from_ref(&event))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", n.service()));
        }
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
        let ntfy = &fake.received_by(FakeService::Ntfy)[0];
        assert!(ntfy.body.len() <= 4096 && ntfy.body.ends_with(TRUNCATED));
        let pushover = fake.received_by(FakeService::Pushover)[0].form();
        assert!(pushover["message"].chars().count() <= 1024);
        assert!(pushover["message"].contains("more lines\n\nalice · rig_02 (23456)"));
        assert!(pushover["message"].ends_with("(changed after 19:09:56)"));
        let gotify = fake.received_by(FakeService::Gotify)[0].json().unwrap();
        assert!(gotify["message"]
            .as_str()
            .unwrap()
            .contains(event.text.trim_end()));
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_30_becomes_one_digest_message_everywhere() {
    bounded(async {
        let fake = FakeServices::start().await;
        let base = fake.base_url();
        let burst = offline_burst(30);
        let urls = [
            discord_url(&base),
            slack_url(&base),
            telegram_url(&base),
            ntfy_url(&base, None),
            pushover_url(&base),
            gotify_url(&base),
        ];
        for url in urls {
            let mut n = notifier(url);
            let delivered = n
                .send(&burst)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", n.service()));
            assert_eq!(delivered.messages, 1, "{}", n.service());
        }
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
        assert_eq!(fake.received().len(), 6);

        let discord = fake.received_by(FakeService::Discord)[0].json().unwrap();
        let title = discord["embeds"][0]["title"].as_str().unwrap();
        assert_eq!(title, "30 events: 30 machine_offline");
        let telegram = fake.received_by(FakeService::Telegram)[0].json().unwrap();
        let text = telegram["text"].as_str().unwrap();
        for i in 0..30 {
            assert!(text.contains(&format!("rack-a-node-{i:02}")), "node {i}");
        }
        let pushover = fake.received_by(FakeService::Pushover)[0].form();
        assert_eq!(pushover["title"], "30 events: 30 machine_offline");
        assert!(pushover["message"].chars().count() <= 1024);
    })
    .await;
}

#[tokio::test]
async fn a_digest_of_hundreds_splits_across_discord_and_telegram_messages() {
    bounded(async {
        let fake = FakeServices::start().await;
        let base = fake.base_url();
        let burst = offline_burst(400);
        let mut discord = notifier(discord_url(&base));
        let d = discord.send(&burst).await.expect("discord digest");
        let mut telegram = notifier(telegram_url(&base));
        let t = telegram.send(&burst).await.expect("telegram digest");
        assert!(d.messages >= 2 && t.messages >= 2, "{d:?} {t:?}");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
        let telegram_text: String = fake
            .received_by(FakeService::Telegram)
            .iter()
            .map(|r| r.json().unwrap()["text"].as_str().unwrap().to_string())
            .collect();
        for i in [0, 199, 399] {
            assert!(telegram_text.contains(&format!("rack-a-node-{i:02} is offline")));
        }
    })
    .await;
}
