//! Golden files: the exact rendered request of every service for a rental_end, a
//! machine_offline and a three-event digest. Regenerate with `UPDATE_GOLDEN=1 cargo test --test
//! notify_golden` and review the diff.

mod support;

use std::path::PathBuf;
use support::*;
use vast_supervisor::event::Event;
use vast_supervisor::notify::render::golden_text;
use vast_supervisor::notify::{
    console, discord, email, file, gotify, ntfy, pushover, slack, telegram, webhook,
};

const MENTION: Option<&str> = Some("<@123456>");

fn render(service: &str, events: &[Event]) -> String {
    match service {
        "discord" => golden_text(&discord::render(events, MENTION)),
        "slack" => golden_text(&slack::render(events, MENTION)),
        "telegram" => golden_text(&telegram::render(events, "-4001234", MENTION)),
        "ntfy" => golden_text(&ntfy::render(events)),
        "pushover" => golden_text(&pushover::render(events)),
        "gotify" => golden_text(&gotify::render(events)),
        "webhook" => golden_text(&webhook::render(events, 1)),
        "email" => email::render(events).to_golden(),
        "file" => file::render(events),
        "console" => console::render(events),
        other => panic!("no renderer for {other}"),
    }
}

const SERVICES: &[&str] = &[
    "discord", "slack", "telegram", "ntfy", "pushover", "gotify", "webhook", "email", "file",
    "console",
];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(name: &str, actual: &str) -> Option<String> {
    let path = golden_dir().join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing {}; run UPDATE_GOLDEN=1 cargo test --test notify_golden",
            path.display()
        )
    });
    (expected != actual).then(|| {
        format!(
            "{name}: rendering differs from {}\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

#[test]
fn every_service_matches_its_golden_files() {
    let cases: [(&str, Vec<Event>); 3] = [
        ("rental_end", vec![rental_end()]),
        ("machine_offline", vec![machine_offline()]),
        (
            "digest",
            vec![machine_offline(), rental_end(), offline_burst(1).remove(0)],
        ),
    ];
    let mut failures = Vec::new();
    for service in SERVICES {
        for (case, events) in &cases {
            if let Some(failure) = check(&format!("{service}_{case}"), &render(service, events)) {
                failures.push(failure);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn rendering_is_deterministic() {
    for service in SERVICES {
        assert_eq!(
            render(service, &[machine_offline()]),
            render(service, &[machine_offline()])
        );
    }
}
