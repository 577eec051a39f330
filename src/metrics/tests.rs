//! Unit tests of the registry and its text.
use super::*;
use crate::vast::Endpoint;

#[test]
fn every_series_exists_at_zero_once_registered() {
    let m = Metrics::new(["alice", "bob"], ["discord"]);
    let text = m.render();
    for reason in POLL_ERROR_REASONS {
        assert!(text.contains(&format!(
            "vast_supervisor_poll_errors_total{{account=\"bob\",reason=\"{reason}\"}} 0\n"
        )));
    }
    for kind in EventKind::ALL {
        assert!(text.contains(&format!(
            "vast_supervisor_events_total{{kind=\"{kind}\"}} 0\n"
        )));
    }
    for reason in SEND_FAILURE_REASONS {
        assert!(text.contains(&format!(
            "vast_supervisor_send_failures_total{{target=\"discord\",reason=\"{reason}\"}} 0\n"
        )));
    }
    for e in Endpoint::ALL {
        assert!(text.contains(&format!(
            "vast_supervisor_api_requests_total{{account=\"alice\",endpoint=\"{}\"}} 0\n",
            e.label()
        )));
    }
    for reason in DROP_REASONS {
        assert!(text.contains(&format!(
            "vast_supervisor_events_dropped_total{{target=\"discord\",reason=\"{reason}\"}} 0\n"
        )));
    }
    assert!(text.contains("vast_supervisor_target_queue_depth{target=\"discord\"} 0\n"));
    assert!(text.contains("vast_supervisor_config_last_reload_successful 1\n"));
}

#[test]
fn counters_move_and_unknown_reasons_land_in_other() {
    let m = Metrics::new(["alice"], ["hook"]);
    let a = m.account("alice");
    a.record_poll(None);
    a.record_poll(Some("timeout"));
    a.set_state("stale");
    let t = m.target("hook");
    t.record_sent(3);
    t.record_failure("server");
    t.record_failure("brand_new_reason");
    t.record_dropped("too_large", 1);
    t.record_dropped("max_age", 2);
    t.set_cursor(4);
    m.set_outbox_seq(10);
    m.record_event(EventKind::RentalStart);
    m.record_reload(false);
    let text = m.render();
    for line in [
        "vast_supervisor_polls_total{account=\"alice\"} 2",
        "vast_supervisor_poll_errors_total{account=\"alice\",reason=\"timeout\"} 1",
        "vast_supervisor_account_state{account=\"alice\",state=\"stale\"} 1",
        "vast_supervisor_account_state{account=\"alice\",state=\"ok\"} 0",
        "vast_supervisor_sends_total{target=\"hook\"} 1",
        "vast_supervisor_events_delivered_total{target=\"hook\"} 3",
        "vast_supervisor_send_failures_total{target=\"hook\",reason=\"server\"} 1",
        "vast_supervisor_send_failures_total{target=\"hook\",reason=\"other\"} 1",
        "vast_supervisor_events_dropped_total{target=\"hook\",reason=\"too_large\"} 1",
        "vast_supervisor_events_dropped_total{target=\"hook\",reason=\"max_age\"} 2",
        "vast_supervisor_events_dropped_total{target=\"hook\",reason=\"invalid\"} 0",
        "vast_supervisor_target_queue_depth{target=\"hook\"} 6",
        "vast_supervisor_events_total{kind=\"rental_start\"} 1",
        "vast_supervisor_config_last_reload_successful 0",
        "vast_supervisor_config_reloads_total{result=\"failure\"} 1",
    ] {
        assert!(text.contains(&format!("{line}\n")), "missing {line}");
    }
}

#[test]
fn health_is_bad_only_when_every_account_is_down() {
    let m = Metrics::new(["a", "b"], []);
    assert!(m.health().healthy());
    m.account("a").set_state("stale");
    assert!(m.health().healthy(), "one account still works");
    m.account("b").set_state("auth_failed");
    assert!(!m.health().healthy());
    m.account("b").set_state("degraded");
    assert!(m.health().healthy(), "degraded accounts still poll");
    assert!(Metrics::new([], []).health().healthy());
    m.forget_account("b");
    assert!(!m.health().healthy());
    assert_eq!(m.health().accounts.len(), 1);
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new(["a\"b\\c\nd"], []);
    assert!(m
        .render()
        .contains("vast_supervisor_polls_total{account=\"a\\\"b\\\\c\\nd\"} 0\n"));
}

#[test]
fn forgotten_accounts_and_targets_leave_no_series() {
    let m = Metrics::new(["gone"], ["hook"]);
    m.account("gone")
        .observe_poll_duration(std::time::Duration::from_millis(300));
    assert!(m
        .render()
        .contains("vast_supervisor_poll_duration_seconds_count{account=\"gone\"} 1\n"));
    m.forget_account("gone");
    m.forget_target("hook");
    let text = m.render();
    assert!(!text.contains("\"gone\""), "{text}");
    assert!(!text.contains("\"hook\""), "{text}");
    m.account("gone");
    assert!(m
        .render()
        .contains("vast_supervisor_polls_total{account=\"gone\"} 0\n"));
}

#[test]
fn every_vast_error_reason_is_a_label() {
    use crate::vast::VastError;
    let all = [
        VastError::Unauthorized { status: 401 },
        VastError::NotFound,
        VastError::RateLimited {
            body_snippet: String::new(),
        },
        VastError::Upstream { status: 502 },
        VastError::Decode {
            detail: String::new(),
        },
        VastError::Timeout,
        VastError::Network {
            detail: String::new(),
        },
        VastError::Api {
            error: String::new(),
            msg: String::new(),
        },
    ];
    let reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
    assert_eq!(reasons, POLL_ERROR_REASONS);
}

#[test]
fn every_send_error_reason_in_the_notify_sources_is_a_label() {
    // The reasons are string literals at each service's call sites; scan them so a new one
    // cannot silently fall into "other".
    let sources = [
        include_str!("../notify/mod.rs"),
        include_str!("../notify/http.rs"),
        include_str!("../notify/email.rs"),
        include_str!("../notify/file.rs"),
        include_str!("../notify/console.rs"),
        include_str!("../notify/discord.rs"),
        include_str!("../notify/slack.rs"),
        include_str!("../notify/telegram.rs"),
        include_str!("../notify/ntfy.rs"),
        include_str!("../notify/pushover.rs"),
        include_str!("../notify/gotify.rs"),
        include_str!("../notify/webhook.rs"),
    ];
    let re = regex::Regex::new(
        r#"(?:transient|permanent|rejected)\(\s*"([a-z_]+)"|reason: "([a-z_]+)""#,
    )
    .unwrap();
    let mut found = 0;
    for src in sources {
        for c in re.captures_iter(src) {
            let reason = c.get(1).or(c.get(2)).unwrap().as_str();
            found += 1;
            assert!(
                SEND_FAILURE_REASONS.contains(&reason),
                "send failure reason {reason} is missing from SEND_FAILURE_REASONS"
            );
            if c.get(0).is_some_and(|m| m.as_str().starts_with("rejected")) {
                assert!(
                    DROP_REASONS.contains(&reason),
                    "rejection reason {reason} is missing from DROP_REASONS"
                );
            }
        }
    }
    assert!(found >= 10, "the scan finds the call sites ({found})");
}
