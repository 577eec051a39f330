//! Human-readable rendering of `status` and `events` replies.

use super::protocol::StatusSnapshot;
use crate::event::Event;
use std::fmt::Write as _;

fn s(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The `status` table: accounts, machines with GPU occupancy and rentals, targets, config files.
pub fn status_table(st: &StatusSnapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "vast-supervisor {} up {}s (since {})",
        st.version, st.uptime_seconds, st.started_at
    );
    let _ = writeln!(out, "\nACCOUNTS");
    let _ = writeln!(
        out,
        "  {:<20} {:<12} {:>8} {:>8} {:<26} LAST ERROR",
        "NAME", "STATE", "MACHINES", "RESTARTS", "LAST POLL"
    );
    for a in &st.accounts {
        let machines = a
            .get("machines")
            .and_then(|m| m.as_array())
            .map_or(0, |m| m.len());
        let _ = writeln!(
            out,
            "  {:<20} {:<12} {:>8} {:>8} {:<26} {}",
            s(a, "name"),
            s(a, "state"),
            machines,
            s(a, "restarts"),
            s(a, "last_poll"),
            s(a, "last_error")
        );
    }
    let _ = writeln!(out, "\nMACHINES");
    let _ = writeln!(
        out,
        "  {:<12} {:<10} {:<20} {:<10} {:<9} RENTALS",
        "ACCOUNT", "ID", "NAME", "STATE", "GPUS"
    );
    for a in &st.accounts {
        for m in a
            .get("machines")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
        {
            let gpus = format!("{}/{}", s(m, "gpus_occupied"), s(m, "gpus_total"));
            let flag = |k: &str| m.get(k).and_then(|v| v.as_bool()) == Some(true);
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
                .and_then(|r| r.as_array())
                .map(|r| {
                    r.iter()
                        .map(|x| format!("{}[{}]{}", s(x, "id"), s(x, "gpu_type"), s(x, "status")))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<12} {:<10} {:<20} {:<10} {:<9} {}",
                s(a, "name"),
                s(m, "machine_id"),
                s(m, "hostname"),
                state,
                gpus,
                rentals
            );
        }
    }
    let instances: Vec<(&serde_json::Value, &serde_json::Value)> = st
        .accounts
        .iter()
        .flat_map(|a| {
            a.get("instances")
                .and_then(|i| i.as_array())
                .into_iter()
                .flatten()
                .map(move |i| (a, i))
        })
        .collect();
    if !instances.is_empty() {
        let _ = writeln!(out, "\nINSTANCES");
        let _ = writeln!(
            out,
            "  {:<12} {:<10} {:<20} {:<10} {:<10} {:<10} {:<8} STATUS MESSAGE",
            "ACCOUNT", "ID", "LABEL", "STATE", "ACTUAL", "INTENDED", "BID"
        );
        for (a, i) in instances {
            // Its monitor keeps failing: what it shows may be out of date.
            let state = match listed_in(a, "degraded_instances", i.get("id")) {
                true => "degraded".to_string(),
                false => s(i, "phase"),
            };
            let _ = writeln!(
                out,
                "  {:<12} {:<10} {:<20} {:<10} {:<10} {:<10} {:<8} {}",
                s(a, "name"),
                s(i, "id"),
                s(i, "label"),
                state,
                s(i, "actual_status"),
                s(i, "intended_status"),
                s(i, "is_bid"),
                s(i, "status_msg")
            );
        }
    }
    let _ = writeln!(out, "\nTARGETS");
    let _ = writeln!(
        out,
        "  {:<20} {:<9} {:<9} {:>6} {:>6} {:>6} {:>8} {:<26} LAST ERROR",
        "NAME", "SERVICE", "STATE", "QUEUE", "SENT", "FAILED", "RESTARTS", "LAST SUCCESS"
    );
    for t in &st.targets {
        let _ = writeln!(
            out,
            "  {:<20} {:<9} {:<9} {:>6} {:>6} {:>6} {:>8} {:<26} {}",
            s(t, "name"),
            s(t, "service"),
            s(t, "state"),
            s(t, "queue_depth"),
            s(t, "sent"),
            s(t, "failed"),
            s(t, "restarts"),
            s(t, "last_success"),
            s(t, "last_error")
        );
    }
    let _ = writeln!(out, "\nCONFIG FILES");
    for f in &st.config_files {
        let _ = writeln!(
            out,
            "  {:<50} {}",
            s(f, "path"),
            if f.get("ok").and_then(|o| o.as_bool()) == Some(true) {
                "ok".to_string()
            } else {
                s(f, "error")
            }
        );
    }
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
fn listed_in(account: &serde_json::Value, key: &str, id: Option<&serde_json::Value>) -> bool {
    let list = account.get(key).and_then(|d| d.as_array());
    matches!((list, id), (Some(list), Some(id)) if list.contains(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let table = status_table(&st);
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
        let table = status_table(&st);
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
