//! Human-readable rendering of `status` and `events` replies: aligned columns, times as ages
//! ("12s ago") or whole seconds, counts with their singular or plural noun.

use super::protocol::StatusSnapshot;
use crate::event::Event;
use crate::util::{counted, format_duration};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt::Write as _;

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The time under `key` as an age relative to `now` ("12s ago", "3m 5s ago"), `-` when absent.
fn age(v: &Value, key: &str, now: DateTime<Utc>) -> String {
    let Some(t) = v
        .get(key)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    else {
        return "-".into();
    };
    let elapsed = (now - t.with_timezone(&Utc)).to_std().unwrap_or_default();
    // Whole seconds: "0s ago" rather than milliseconds.
    let whole = std::time::Duration::from_secs(elapsed.as_secs());
    format!("{} ago", format_duration(whole))
}

/// A table whose columns are as wide as their widest cell; the last column is not padded.
struct Table {
    header: Vec<&'static str>,
    /// Columns aligned to the right (numbers).
    right: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: Vec<&'static str>, right: Vec<usize>) -> Table {
        Table {
            header,
            right,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l.get(c).map_or(0, |cell| cell.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in lines {
            let last = line.len().saturating_sub(1);
            let cells: Vec<String> = line
                .iter()
                .enumerate()
                .map(|(c, cell)| match (self.right.contains(&c), c == last) {
                    (true, _) => format!("{cell:>w$}", w = widths[c]),
                    (false, true) => cell.clone(),
                    (false, false) => format!("{cell:<w$}", w = widths[c]),
                })
                .collect();
            let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        }
    }
}

/// The `status` table at `now`: accounts, machines with GPU occupancy and rentals, instances,
/// targets, config files.
pub fn status_table(st: &StatusSnapshot, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let since = DateTime::parse_from_rfc3339(&st.started_at)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| st.started_at.clone());
    let _ = writeln!(
        out,
        "vast-supervisor {}, up {} (since {since})",
        st.version,
        format_duration(std::time::Duration::from_secs(st.uptime_seconds))
    );
    let machines = |a: &Value| -> Vec<Value> {
        a.get("machines")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let machine_count: usize = st.accounts.iter().map(|a| machines(a).len()).sum();
    let rental_count: usize = st
        .accounts
        .iter()
        .flat_map(machines)
        .map(|m| {
            m.get("rentals")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .sum();
    let instance_count: usize = st
        .accounts
        .iter()
        .map(|a| {
            a.get("instances")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .sum();
    let _ = writeln!(
        out,
        "watching {}: {}, {}, {}; {}",
        counted(st.accounts.len(), "account"),
        counted(machine_count, "machine"),
        counted(rental_count, "rental"),
        counted(instance_count, "instance"),
        counted(st.targets.len(), "target")
    );

    let _ = writeln!(out, "\nACCOUNTS");
    let mut table = Table::new(
        vec![
            "NAME",
            "STATE",
            "MACHINES",
            "RESTARTS",
            "LAST POLL",
            "LAST ERROR",
        ],
        vec![2, 3],
    );
    for a in &st.accounts {
        table.row(vec![
            s(a, "name"),
            s(a, "state"),
            machines(a).len().to_string(),
            s(a, "restarts"),
            age(a, "last_poll", now),
            s(a, "last_error"),
        ]);
    }
    table.render(&mut out);

    let _ = writeln!(out, "\nMACHINES");
    let mut table = Table::new(
        vec!["ACCOUNT", "ID", "NAME", "STATE", "GPUS", "RENTALS"],
        vec![1],
    );
    for a in &st.accounts {
        for m in machines(a) {
            let gpus = format!("{}/{}", s(&m, "gpus_occupied"), s(&m, "gpus_total"));
            let flag = |k: &str| m.get(k).and_then(Value::as_bool) == Some(true);
            let degraded = listed_in(a, "degraded_machines", m.get("machine_id"));
            let state = if flag("removed") {
                "removed"
            } else if degraded {
                // Its monitor keeps failing: what it shows may be out of date.
                "degraded"
            } else if flag("offline") {
                "offline"
            } else if m.get("error").is_some_and(|e| !e.is_null() && e != false) {
                "error"
            } else {
                "ok"
            };
            let rentals = m
                .get("rentals")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .map(|x| format!("{}[{}]{}", s(x, "id"), s(x, "gpu_type"), s(x, "status")))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            table.row(vec![
                s(a, "name"),
                s(&m, "machine_id"),
                s(&m, "hostname"),
                state.to_string(),
                gpus,
                rentals,
            ]);
        }
    }
    table.render(&mut out);

    let instances: Vec<(&Value, &Value)> = st
        .accounts
        .iter()
        .flat_map(|a| {
            a.get("instances")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |i| (a, i))
        })
        .collect();
    if !instances.is_empty() {
        let _ = writeln!(out, "\nINSTANCES");
        let mut table = Table::new(
            vec![
                "ACCOUNT",
                "ID",
                "LABEL",
                "STATE",
                "ACTUAL",
                "INTENDED",
                "BID",
                "STATUS MESSAGE",
            ],
            vec![1],
        );
        for (a, i) in instances {
            // Its monitor keeps failing: what it shows may be out of date.
            let state = match listed_in(a, "degraded_instances", i.get("id")) {
                true => "degraded".to_string(),
                false => s(i, "phase"),
            };
            table.row(vec![
                s(a, "name"),
                s(i, "id"),
                s(i, "label"),
                state,
                s(i, "actual_status"),
                s(i, "intended_status"),
                s(i, "is_bid"),
                s(i, "status_msg"),
            ]);
        }
        table.render(&mut out);
    }

    let _ = writeln!(out, "\nTARGETS");
    let mut table = Table::new(
        vec![
            "NAME",
            "SERVICE",
            "STATE",
            "QUEUE",
            "SENT",
            "FAILED",
            "RESTARTS",
            "LAST SUCCESS",
            "LAST ERROR",
        ],
        vec![3, 4, 5, 6],
    );
    for t in &st.targets {
        table.row(vec![
            s(t, "name"),
            s(t, "service"),
            s(t, "state"),
            s(t, "queue_depth"),
            s(t, "sent"),
            s(t, "failed"),
            s(t, "restarts"),
            age(t, "last_success", now),
            s(t, "last_error"),
        ]);
    }
    table.render(&mut out);

    let _ = writeln!(out, "\nCONFIG FILES");
    let mut table = Table::new(vec!["PATH", "STATE"], vec![]);
    for f in &st.config_files {
        let state = if f.get("ok").and_then(Value::as_bool) == Some(true) {
            "ok".to_string()
        } else {
            s(f, "error")
        };
        table.row(vec![s(f, "path"), state]);
    }
    table.render(&mut out);
    out
}

/// One event as a readable line (`events` without --json).
pub fn event_line(e: &Event) -> String {
    let account = e
        .account
        .as_deref()
        .map(|a| format!(" [{a}]"))
        .unwrap_or_default();
    format!(
        "{} {:<8} {:<20}{} {}: {}",
        e.time.format("%Y-%m-%d %H:%M:%S"),
        e.severity,
        e.kind,
        account,
        e.subject.label(),
        e.title
    )
}

/// Whether the account's list `key` (e.g. `degraded_machines`) holds `id`.
fn listed_in(account: &Value, key: &str, id: Option<&Value>) -> bool {
    let list = account.get(key).and_then(|d| d.as_array());
    matches!((list, id), (Some(list), Some(id)) if list.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_table_aligns_columns_shows_ages_and_counts_in_words() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T19:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let st = StatusSnapshot {
            version: "1.2.3".into(),
            started_at: "2026-11-22T17:05:00.123456789Z".into(),
            uptime_seconds: 7500,
            accounts: vec![
                json!({"name": "a", "state": "ok", "restarts": 0,
                       "last_poll": "2026-11-22T19:09:47.999999Z",
                       "machines": [{"machine_id": 1, "hostname": "rig", "gpus_occupied": 1,
                                     "gpus_total": 2, "rentals": [{"id": "m1-0001",
                                     "gpu_type": "D", "status": "running"}]}]}),
                json!({"name": "a-much-longer-account-name", "state": "stale", "restarts": 12,
                       "machines": [], "last_error": "upstream 502"}),
            ],
            targets: vec![
                json!({"name": "ops-discord-with-a-long-name", "service": "discord",
                                 "state": "ok", "queue_depth": 0, "sent": 1234, "failed": 3,
                                 "restarts": 0, "last_success": "2026-11-22T18:59:30Z"}),
            ],
            ..StatusSnapshot::default()
        };
        let table = status_table(&st, now);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "vast-supervisor 1.2.3, up 2h 5m (since 2026-11-22 17:05:00 UTC)"
        );
        assert_eq!(
            lines[1],
            "watching 2 accounts: 1 machine, 1 rental, 0 instances; 1 target"
        );
        // Every row of a section starts each column where its header does.
        let section = |title: &str| -> Vec<&str> {
            let at = lines.iter().position(|l| *l == title).unwrap();
            lines[at + 1..]
                .iter()
                .take_while(|l| !l.is_empty())
                .copied()
                .collect()
        };
        let accounts = section("ACCOUNTS");
        let column = accounts[0].find("STATE").unwrap();
        for row in &accounts[1..] {
            let before = &row[..column];
            assert!(before.ends_with("  "), "{row:?}");
            assert_ne!(&row[column..column + 1], " ", "{row:?}");
        }
        assert!(accounts[1].contains("12s ago"), "{}", accounts[1]);
        assert!(!table.contains("19:09:47.9"), "no raw timestamps:\n{table}");
        let targets = section("TARGETS");
        // Right-aligned numbers end under their header.
        let sent_end = targets[0].find("SENT").unwrap() + "SENT".len();
        assert_eq!(&targets[1][sent_end - 4..sent_end], "1234");
        assert!(targets[1].contains("10m 30s ago"), "{}", targets[1]);
        assert_eq!(
            targets[1].split_whitespace().nth(5),
            Some("3"),
            "FAILED: {}",
            targets[1]
        );
    }

    #[test]
    fn status_table_shows_restarts_and_degraded_machines() {
        let st = StatusSnapshot {
            accounts: vec![json!({
                "name": "acme",
                "state": "degraded",
                "restarts": 7,
                "degraded_machines": [101],
                "machines": [
                    {"machine_id": 101, "hostname": "rig-1", "offline": false},
                    {"machine_id": 102, "hostname": "rig-2", "offline": false},
                ],
            })],
            targets: vec![json!({"name": "log", "state": "ok", "restarts": 2})],
            ..StatusSnapshot::default()
        };
        let table = status_table(&st, Utc::now());
        let line = |needle: &str| {
            table
                .lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no line with {needle} in\n{table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(line("degraded  ")[..4], ["acme", "degraded", "2", "7"]);
        assert_eq!(line("rig-1")[3], "degraded");
        assert_eq!(line("rig-2")[3], "ok");
        assert_eq!(line("log ")[6], "2");
    }

    #[test]
    fn status_table_lists_instances_with_their_states() {
        let st = StatusSnapshot {
            accounts: vec![json!({
                "name": "lab",
                "state": "ok",
                "machines": [],
                "degraded_instances": [5004],
                "instances": [{"id": 5003, "label": "train-7", "phase": "running",
                               "actual_status": "running", "intended_status": "running",
                               "is_bid": true, "status_msg": "success"},
                              {"id": 5004, "label": "eval-2", "phase": "running",
                               "actual_status": "running", "intended_status": "running",
                               "is_bid": false, "status_msg": "success"}],
            })],
            ..StatusSnapshot::default()
        };
        let table = status_table(&st, Utc::now());
        let row = table
            .lines()
            .find(|l| l.contains("train-7"))
            .expect("an instance row");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["lab", "5003", "train-7", "running", "running", "running", "true", "success"]
        );
        let degraded = table.lines().find(|l| l.contains("eval-2")).unwrap();
        assert_eq!(degraded.split_whitespace().nth(3), Some("degraded"));
        assert!(table.contains("INSTANCES"));
    }
}
