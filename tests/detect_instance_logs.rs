//! Tests of `detect::logs`: rule selectors, de-duplication of overlapping log fetches (repeated
//! lines, rotation, empty fetches, windows), log-match events and action reports.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use vast_supervisor::config::{InstanceSelector, LogAction, LogRule};
use vast_supervisor::detect::logs::{
    action_report, compile_rules, match_lines, new_lines, rule_applies, CompiledLogRule, LogCursor,
    CURSOR_TAIL, MAX_MATCHES_PER_RULE,
};
use vast_supervisor::event::{EventKind, Severity, Subject};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn rule(
    name: &str,
    instances: Vec<InstanceSelector>,
    regex: &str,
    action: Option<LogAction>,
) -> LogRule {
    LogRule {
        name: name.into(),
        instances,
        regex: regex.into(),
        action,
    }
}

fn compiled(rules: &[LogRule]) -> Vec<CompiledLogRule> {
    compile_rules(rules).expect("rules compile")
}

fn numbered(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

/// Feeds fetches in order from an empty cursor; returns the new lines of each.
fn feed(fetches: &[&str]) -> (LogCursor, Vec<Vec<String>>) {
    let mut cursor = LogCursor::default();
    let mut out = Vec::new();
    for f in fetches {
        let (next, lines) = new_lines(&cursor, f);
        cursor = next;
        out.push(lines);
    }
    (cursor, out)
}

#[test]
fn selectors_pick_ids_and_label_globs() {
    let rules = compiled(&[
        rule("by-id", vec![InstanceSelector::Id(5003)], "x", None),
        rule(
            "by-label",
            vec![InstanceSelector::LabelGlob("train-*".into())],
            "x",
            None,
        ),
        rule(
            "both",
            vec![
                InstanceSelector::Id(1),
                InstanceSelector::LabelGlob("eval-?".into()),
            ],
            "x",
            None,
        ),
        rule("none", vec![], "x", None),
    ]);
    assert!(rule_applies(&rules[0], 5003, None));
    assert!(!rule_applies(&rules[0], 5004, Some("train-1")));
    assert!(rule_applies(&rules[1], 7, Some("train-7")));
    assert!(!rule_applies(&rules[1], 7, Some("eval-7")));
    assert!(
        !rule_applies(&rules[1], 7, None),
        "unlabeled matches no glob"
    );
    assert!(rule_applies(&rules[2], 1, None));
    assert!(rule_applies(&rules[2], 2, Some("eval-2")));
    assert!(!rule_applies(&rules[2], 2, Some("eval-22")));
    assert!(
        !rule_applies(&rules[3], 5003, Some("train-1")),
        "an empty list selects nothing"
    );
}

#[test]
fn a_bad_regex_is_an_error_not_a_panic() {
    assert!(compile_rules(&[rule("bad", vec![], "(unclosed", None)]).is_err());
}

#[test]
fn first_fetch_is_all_new_and_overlapping_fetches_only_add_the_tail() {
    let (cursor, out) = feed(&[
        &numbered(0..10),
        &numbered(0..10),
        &numbered(5..15),
        &numbered(12..20),
    ]);
    assert_eq!(out[0].len(), 10);
    assert!(out[1].is_empty(), "same window: nothing new");
    assert_eq!(
        out[2],
        (10..15).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        out[3],
        (15..20).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert_eq!(cursor.lines_seen, 20);
}

#[test]
fn a_window_starting_inside_the_remembered_tail_aligns() {
    // The fetch window (last 3 lines) is shorter than what the cursor remembers.
    let (_, out) = feed(&[&numbered(0..50), &numbered(48..51), &numbered(49..52)]);
    assert_eq!(out[1], ["line 50"]);
    assert_eq!(out[2], ["line 51"]);
}

#[test]
fn repeated_identical_lines_are_never_reported_twice() {
    let same = "tick\ntick\ntick\n";
    let (_, out) = feed(&[same, same, "tick\ntick\ntick\nDONE\n", "tick\ntick\nDONE\n"]);
    assert_eq!(out[0], ["tick", "tick", "tick"]);
    assert!(out[1].is_empty());
    assert_eq!(out[2], ["DONE"]);
    assert!(out[3].is_empty(), "DONE must not fire again");
    // A block that repeats: the latest alignment wins, so nothing old comes back.
    let (_, out) = feed(&["a\nb\nc\n", "a\nb\nc\nx\na\nb\nc\n"]);
    assert!(
        out[1].is_empty(),
        "ambiguous repeat is taken as already seen"
    );
    let (_, out) = feed(&["a\nb\nc\n", "a\nb\nc\nx\na\nb\n"]);
    assert_eq!(out[1], ["x", "a", "b"]);
}

#[test]
fn rotation_or_a_gap_makes_every_line_new() {
    let (_, out) = feed(&[&numbered(0..10), "fresh start\nline A\n"]);
    assert_eq!(out[1], ["fresh start", "line A"]);
    // More than a window written since the last fetch.
    let (_, out) = feed(&[&numbered(0..10), &numbered(100..110)]);
    assert_eq!(out[1].len(), 10);
}

#[test]
fn empty_fetches_change_nothing_and_blank_lines_are_dropped() {
    let (cursor, out) = feed(&[&numbered(0..5), "", "\n\n  \n", &numbered(0..6)]);
    assert!(out[1].is_empty() && out[2].is_empty());
    assert_eq!(out[3], ["line 5"]);
    assert_eq!(cursor.lines_seen, 6);
    let (_, out) = feed(&["a\r\n\r\nb  \n", "a\nb\nc"]);
    assert_eq!(out[0], ["a", "b"]);
    assert_eq!(
        out[1],
        ["c"],
        "CRLF and trailing spaces do not make lines new"
    );
}

#[test]
fn the_cursor_stays_bounded_and_round_trips() {
    let (cursor, _) = feed(&[&numbered(0..1000), &numbered(500..1500)]);
    assert_eq!(cursor.tail.len(), CURSOR_TAIL);
    let back: LogCursor = serde_json::from_str(&serde_json::to_string(&cursor).unwrap()).unwrap();
    assert_eq!(back, cursor);
    let (_, fresh) = new_lines(&back, &numbered(1000..1501));
    assert_eq!(fresh, ["line 1500"]);
}

#[test]
fn a_primed_cursor_treats_the_existing_log_as_seen() {
    let cursor = LogCursor::primed("old DONE\nmore\n");
    let (_, fresh) = new_lines(&cursor, "old DONE\nmore\nnew\n");
    assert_eq!(fresh, ["new"]);
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn matches_make_one_event_per_rule_and_line() {
    let rules = compiled(&[
        rule(
            "job-done",
            vec![InstanceSelector::LabelGlob("train-*".into())],
            "^DONE",
            Some(LogAction::Destroy),
        ),
        rule(
            "errors",
            vec![InstanceSelector::Id(5003)],
            "(?i)error",
            None,
        ),
        rule("elsewhere", vec![InstanceSelector::Id(1)], ".", None),
    ]);
    let mut seq = 10;
    let out = match_lines(
        &rules,
        5003,
        Some("train-7"),
        &lines(&["epoch 1", "DONE with error", "ERROR again", "DONE"]),
        "bob",
        now(),
        &mut seq,
    );
    let summary: Vec<(String, String, Option<LogAction>)> = out
        .iter()
        .map(|(e, a)| {
            (
                e.data["rule"].as_str().unwrap().to_string(),
                e.text.clone(),
                *a,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "job-done".into(),
                "DONE with error".into(),
                Some(LogAction::Destroy)
            ),
            ("errors".into(), "DONE with error".into(), None),
            ("errors".into(), "ERROR again".into(), None),
            ("job-done".into(), "DONE".into(), None),
        ],
        "only a rule's first match in a fetch requests its action"
    );
    assert_eq!(seq, 14);
    let e = &out[0].0;
    assert_eq!(e.id, "bob:i5003:log:11");
    assert_eq!(out[3].0.id, "bob:i5003:log:14");
    assert_eq!(e.kind, EventKind::InstanceLogMatch);
    assert_eq!(e.severity, Severity::Info);
    assert_eq!(e.account.as_deref(), Some("bob"));
    assert_eq!(
        e.subject,
        Subject::Instance {
            id: 5003,
            name: Some("train-7".into())
        }
    );
    assert_eq!(e.time, now());
    assert_eq!(
        e.title,
        "Log rule job-done matched on instance train-7 (5003)"
    );
    assert_eq!(
        e.data,
        json!({"rule": "job-done", "line": "DONE with error", "action_requested": "destroy"})
    );
    assert_eq!(out[1].0.data["action_requested"], serde_json::Value::Null);
}

#[test]
fn no_rule_or_no_line_means_no_event() {
    let rules = compiled(&[rule("r", vec![InstanceSelector::Id(1)], ".", None)]);
    let mut seq = 0;
    assert!(match_lines(&rules, 2, None, &lines(&["x"]), "bob", now(), &mut seq).is_empty());
    assert!(match_lines(&rules, 1, None, &[], "bob", now(), &mut seq).is_empty());
    assert_eq!(seq, 0);
}

#[test]
fn a_flood_of_matches_is_capped_per_rule() {
    let rules = compiled(&[rule("loss", vec![InstanceSelector::Id(1)], "loss", None)]);
    let flood: Vec<String> = (0..100).map(|i| format!("step {i} loss 0.1")).collect();
    let mut seq = 0;
    let out = match_lines(&rules, 1, None, &flood, "bob", now(), &mut seq);
    assert_eq!(out.len(), MAX_MATCHES_PER_RULE);
    let last = &out.last().unwrap().0;
    assert_eq!(last.data["more_matches"], 100 - MAX_MATCHES_PER_RULE);
    assert!(
        last.text.ends_with("(and 80 more matching lines)"),
        "{}",
        last.text
    );
    assert!(out[0].0.data.get("more_matches").is_none());
}

#[test]
fn long_lines_are_truncated_in_text() {
    let rules = compiled(&[rule("r", vec![InstanceSelector::Id(1)], "x", None)]);
    let long = "x".repeat(10_000);
    let mut seq = 0;
    let out = match_lines(&rules, 1, None, &[long], "bob", now(), &mut seq);
    assert!(out[0].0.text.chars().count() <= 501);
    assert!(out[0].0.data["line"].as_str().unwrap().chars().count() <= 4001);
}

fn one_match(action: LogAction) -> vast_supervisor::event::Event {
    let rules = compiled(&[rule(
        "done",
        vec![InstanceSelector::Id(5003)],
        "DONE",
        Some(action),
    )]);
    let mut seq = 0;
    match_lines(
        &rules,
        5003,
        None,
        &lines(&["DONE"]),
        "bob",
        now(),
        &mut seq,
    )
    .remove(0)
    .0
}

#[test]
fn action_reports_say_what_was_done() {
    let done = action_report(
        one_match(LogAction::Destroy),
        LogAction::Destroy,
        Ok(()),
        true,
    );
    assert!(
        done.text.ends_with("\ndestroyed instance 5003"),
        "{}",
        done.text
    );
    assert_eq!(
        done.data["action"],
        json!({"requested": "destroy", "outcome": "done", "error": null})
    );
    assert_eq!(done.severity, Severity::Info);
    assert_eq!(done.data["rule"], "done", "the match data stays");

    let stopped = action_report(one_match(LogAction::Stop), LogAction::Stop, Ok(()), true);
    assert!(stopped.text.ends_with("\nstopped instance 5003"));

    let failed = action_report(
        one_match(LogAction::Stop),
        LogAction::Stop,
        Err("HTTP 404 no_such_instance".into()),
        true,
    );
    assert!(
        failed
            .text
            .ends_with("\nstop failed: HTTP 404 no_such_instance"),
        "{}",
        failed.text
    );
    assert_eq!(failed.data["action"]["outcome"], "failed");
    assert_eq!(failed.severity, Severity::Warning);

    let skipped = action_report(
        one_match(LogAction::Destroy),
        LogAction::Destroy,
        Ok(()),
        false,
    );
    assert!(skipped
        .text
        .ends_with("\naction skipped: actions_enabled = false"));
    assert_eq!(skipped.data["action"]["outcome"], "skipped");
    assert_eq!(
        skipped.id,
        one_match(LogAction::Destroy).id,
        "same event id"
    );
}
