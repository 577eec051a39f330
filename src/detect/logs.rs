//! The pure part of instance log rules (`[[account.log_rule]]`, SPEC §4-§5): compiled rules and
//! their instance selectors, which lines of a fetched log are new, the `instance_log_match` events,
//! and the report of a requested stop/destroy action.
//!
//! No I/O: the instance actor fetches the log through the two-step API (`vast-api.md` §3.5), runs
//! the action, and persists the returned [`LogCursor`] with the events.
//!
//! **New lines.** The log endpoint returns the last N lines on every fetch, so consecutive fetches
//! overlap. The cursor keeps hashes of the last [`CURSOR_TAIL`] lines seen. A fetch is aligned with
//! it at the latest position where the fetched lines up to that point end exactly like the
//! remembered tail (the whole tail, or all of those lines when the fetch starts inside the tail);
//! lines after that position are new. Preferring the latest alignment means a line is never
//! reported twice (a log that repeats itself may have a new repeat taken for old, never the reverse:
//! actions must not fire twice). No alignment means the log rotated or more than a window was
//! written since the last fetch: every line is new. An empty fetch changes nothing. Lines are
//! compared with trailing whitespace removed; blank lines are dropped, as the vast CLI does.
//!
//! **Matches.** One `instance_log_match` per (rule, new line), in line order, for rules whose
//! selectors pick the instance (an instance id, or a `label:` glob against its label; an unlabeled
//! instance matches no glob). At most [`MAX_MATCHES_PER_RULE`] per rule and fetch: the last one
//! sent carries the number left out. Only a rule's first match in a fetch requests its action, so
//! one fetch stops or destroys an instance at most once per rule. Ids are
//! `"{account}:i{instance_id}:log:{seq}"`, counting with the caller's `seq`.

use crate::config::{InstanceSelector, LogAction, LogRule};
use crate::event::{Event, EventKind, Severity, Subject};
use crate::util::glob_match;
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How many recent lines (as hashes) a cursor remembers.
pub const CURSOR_TAIL: usize = 200;

/// At most this many events per rule and fetch.
pub const MAX_MATCHES_PER_RULE: usize = 20;

/// Longest log line quoted in an event text; `data.line` keeps up to [`MAX_DATA_LINE`] characters.
const MAX_TEXT_LINE: usize = 500;
const MAX_DATA_LINE: usize = 4000;

/// A log rule ready to run.
#[derive(Debug, Clone)]
pub struct CompiledLogRule {
    pub name: String,
    pub selectors: Vec<InstanceSelector>,
    pub regex: Regex,
    pub action: Option<LogAction>,
}

/// Compiles the rules of an account; fails on the first regex that does not compile (the
/// configuration validated them already, so this is a safety net).
pub fn compile_rules(rules: &[LogRule]) -> Result<Vec<CompiledLogRule>, regex::Error> {
    rules
        .iter()
        .map(|r| {
            Ok(CompiledLogRule {
                name: r.name.clone(),
                selectors: r.instances.clone(),
                regex: Regex::new(&r.regex)?,
                action: r.action,
            })
        })
        .collect()
}

/// Whether the rule watches this instance.
pub fn rule_applies(rule: &CompiledLogRule, instance_id: u64, label: Option<&str>) -> bool {
    rule.selectors.iter().any(|sel| match sel {
        InstanceSelector::Id(id) => *id == instance_id,
        InstanceSelector::LabelGlob(glob) => label.is_some_and(|l| glob_match(glob, l)),
    })
}

/// What was already seen of one instance's log (module docs).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct LogCursor {
    /// Hashes of the last lines seen, oldest first, at most [`CURSOR_TAIL`].
    pub tail: Vec<u64>,
    /// Lines reported as new so far (for status).
    pub lines_seen: u64,
}

impl LogCursor {
    /// A cursor that takes everything in `fetched` as already seen: for an instance adopted at
    /// first start, whose old lines must not fire rules (or actions).
    pub fn primed(fetched: &str) -> LogCursor {
        let hashes: Vec<u64> = log_lines(fetched).iter().map(|l| line_hash(l)).collect();
        LogCursor {
            tail: last_n(&hashes, CURSOR_TAIL),
            lines_seen: 0,
        }
    }
}

/// The lines of `fetched` not seen before, and the updated cursor (module docs).
pub fn new_lines(cursor: &LogCursor, fetched: &str) -> (LogCursor, Vec<String>) {
    let lines = log_lines(fetched);
    if lines.is_empty() {
        return (cursor.clone(), Vec::new());
    }
    let hashes: Vec<u64> = lines.iter().map(|l| line_hash(l)).collect();
    let tail = &cursor.tail;
    let aligned_at = (1..=hashes.len()).rev().find(|&j| {
        let k = j.min(tail.len());
        k > 0 && hashes[j - k..j] == tail[tail.len() - k..]
    });
    let (start, merged) = match aligned_at {
        Some(j) => {
            // Lines of the old tail from before the start of this fetch keep their context.
            let before = tail.len().saturating_sub(j);
            let mut merged = tail[..before].to_vec();
            merged.extend_from_slice(&hashes);
            (j, merged)
        }
        None => (0, hashes),
    };
    let fresh: Vec<String> = lines[start..].iter().map(|l| l.to_string()).collect();
    let next = LogCursor {
        tail: last_n(&merged, CURSOR_TAIL),
        lines_seen: cursor.lines_seen.saturating_add(fresh.len() as u64),
    };
    (next, fresh)
}

/// `instance_log_match` events for the new `lines` of one instance, each with the action it
/// requests (module docs). `seq` is the caller's event counter for the instance.
pub fn match_lines(
    rules: &[CompiledLogRule],
    instance_id: u64,
    label: Option<&str>,
    lines: &[String],
    account: &str,
    now: DateTime<Utc>,
    seq: &mut u64,
) -> Vec<(Event, Option<LogAction>)> {
    let applicable: Vec<&CompiledLogRule> = rules
        .iter()
        .filter(|r| rule_applies(r, instance_id, label))
        .collect();
    let mut out: Vec<(Event, Option<LogAction>)> = Vec::new();
    let mut sent = vec![0usize; applicable.len()];
    let mut left_out = vec![0usize; applicable.len()];
    let mut last_sent: Vec<Option<usize>> = vec![None; applicable.len()];
    let name = match label.map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => format!("{l} ({instance_id})"),
        None => instance_id.to_string(),
    };
    for line in lines {
        for (i, rule) in applicable.iter().enumerate() {
            if !rule.regex.is_match(line) {
                continue;
            }
            if sent[i] == MAX_MATCHES_PER_RULE {
                left_out[i] += 1;
                continue;
            }
            let action = if sent[i] == 0 { rule.action } else { None };
            sent[i] += 1;
            *seq += 1;
            let data = json!({
                "rule": rule.name,
                "line": truncate(line, MAX_DATA_LINE),
                "action_requested": action.map(action_name),
            });
            let event = Event::new(
                format!("{account}:i{instance_id}:log:{seq}"),
                EventKind::InstanceLogMatch,
                Some(account.to_string()),
                Subject::Instance {
                    id: instance_id,
                    name: label.map(str::to_string),
                },
                now,
                format!("Log rule {} matched on instance {name}", rule.name),
                truncate(line, MAX_TEXT_LINE),
            )
            .with_data(data);
            last_sent[i] = Some(out.len());
            out.push((event, action));
        }
    }
    for (i, left) in left_out.iter().enumerate() {
        if let (true, Some(at)) = (*left > 0, last_sent[i]) {
            let event = &mut out[at].0;
            event.data["more_matches"] = json!(left);
            event
                .text
                .push_str(&format!("\n(and {left} more matching lines)"));
        }
    }
    out
}

/// Records in a log-match event what was done about its requested action: `data.action` holds
/// `requested`, `outcome` (`done`, `failed`, `skipped`) and `error`; the text gets one line such as
/// "destroyed instance 5003", "stop failed: ..." or "action skipped: actions_enabled = false". A
/// failed action raises the event to warning: the instance is still there (and billing).
pub fn action_report(
    mut event: Event,
    action: LogAction,
    outcome: Result<(), String>,
    actions_enabled: bool,
) -> Event {
    let instance = match &event.subject {
        Subject::Instance { id, .. } => format!("instance {id}"),
        other => other.label(),
    };
    let verb = action_name(action);
    let (line, record) = if !actions_enabled {
        (
            "action skipped: actions_enabled = false".to_string(),
            json!({"requested": verb, "outcome": "skipped", "error": null}),
        )
    } else {
        match outcome {
            Ok(()) => {
                let done = match action {
                    LogAction::Stop => "stopped",
                    LogAction::Destroy => "destroyed",
                };
                (
                    format!("{done} {instance}"),
                    json!({"requested": verb, "outcome": "done", "error": null}),
                )
            }
            Err(error) => {
                event.severity = event.severity.max(Severity::Warning);
                (
                    format!("{verb} failed: {error}"),
                    json!({"requested": verb, "outcome": "failed", "error": error}),
                )
            }
        }
    };
    if !event.data.is_object() {
        event.data = json!({});
    }
    event.data["action"] = record;
    event.text.push('\n');
    event.text.push_str(&line);
    event
}

fn action_name(action: LogAction) -> &'static str {
    match action {
        LogAction::Stop => "stop",
        LogAction::Destroy => "destroy",
    }
}

/// The non-blank lines of a log body, trailing whitespace (and `\r`) removed.
fn log_lines(body: &str) -> Vec<&str> {
    body.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect()
}

/// FNV-1a, 64 bit: stable across builds and Rust versions, so stored cursors stay valid.
fn line_hash(line: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    line.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

fn last_n(v: &[u64], n: usize) -> Vec<u64> {
    v[v.len().saturating_sub(n)..].to_vec()
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
