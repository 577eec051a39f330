//! The fleet as the published status snapshot describes it, read back into types: the one seam
//! through which the dashboard and the fleet metrics see accounts, machines, instances and
//! targets. It reads the status JSON (the same document `status --json` and `/api/v1/status`
//! serve), parsed once per published snapshot and shared, so nothing here reaches into actors or
//! waits for them. Fields the reader does not know are ignored and missing ones default, so the
//! snapshot can grow without breaking this side.
//!
//! Owns the derived views the pages and gauges share (a machine's condition, its GPUs by rental
//! type, its $/h, an account's runway); decides nothing about events.

use crate::control::PublishedStatus;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The whole snapshot.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FleetStatus {
    pub version: String,
    pub started_at: String,
    pub uptime_seconds: u64,
    pub accounts: Vec<AccountView>,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccountView {
    pub name: String,
    /// ok, stale, auth_failed or degraded.
    pub state: String,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// The last successful poll.
    pub last_poll: Option<DateTime<Utc>>,
    pub credit: Option<f64>,
    pub machines: Vec<MachineView>,
    pub instances: Vec<InstanceView>,
    pub degraded_machines: Vec<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MachineView {
    pub machine_id: u64,
    pub hostname: Option<String>,
    pub gpu_name: Option<String>,
    pub gpus_total: u32,
    pub gpus_occupied: u32,
    pub rentals: Vec<RentalView>,
    pub offline: bool,
    pub offline_pending: bool,
    pub error: Option<String>,
    pub listed: Option<bool>,
    pub verification: Option<String>,
    pub removed: bool,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RentalView {
    pub id: String,
    pub gpus: Vec<u32>,
    /// D (on demand), I (interruptible) or R (reserved).
    pub gpu_type: String,
    /// running, paused or preempted.
    pub status: String,
    pub storage_gb: f64,
    pub rate_per_gpu_hour: f64,
    pub started: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InstanceView {
    pub id: u64,
    pub label: Option<String>,
    /// running, starting or halted.
    pub phase: String,
    pub actual_status: Option<String>,
    pub intended_status: Option<String>,
    pub is_bid: bool,
    pub status_msg: Option<String>,
    pub error: Option<String>,
    pub stuck: bool,
    pub running_since: Option<DateTime<Utc>>,
    pub destroyed: bool,
    pub machine_id: Option<u64>,
    pub gpu_name: Option<String>,
    pub num_gpus: Option<f64>,
    pub dph_total: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TargetView {
    pub name: String,
    pub service: String,
    /// ok, retrying, disabled or degraded.
    pub state: String,
    pub queue_depth: i64,
    pub sent: u64,
    pub failed: u64,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// What a machine is doing, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MachineCondition {
    Offline,
    Error,
    Rented,
    Idle,
    Removed,
}

impl MachineCondition {
    pub const ALL: [MachineCondition; 5] = [
        MachineCondition::Offline,
        MachineCondition::Error,
        MachineCondition::Rented,
        MachineCondition::Idle,
        MachineCondition::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MachineCondition::Offline => "offline",
            MachineCondition::Error => "error",
            MachineCondition::Rented => "rented",
            MachineCondition::Idle => "idle",
            MachineCondition::Removed => "removed",
        }
    }

    pub fn from_name(s: &str) -> Option<MachineCondition> {
        MachineCondition::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Who holds a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GpuState {
    OnDemand,
    Interruptible,
    Reserved,
    Idle,
}

impl GpuState {
    pub const ALL: [GpuState; 4] = [
        GpuState::OnDemand,
        GpuState::Interruptible,
        GpuState::Reserved,
        GpuState::Idle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GpuState::OnDemand => "on_demand",
            GpuState::Interruptible => "interruptible",
            GpuState::Reserved => "reserved",
            GpuState::Idle => "idle",
        }
    }

    /// The state of GPUs held by a rental of this `gpu_type` letter.
    pub fn of_rental(gpu_type: &str) -> GpuState {
        match gpu_type {
            "I" => GpuState::Interruptible,
            "R" => GpuState::Reserved,
            _ => GpuState::OnDemand,
        }
    }
}

impl RentalView {
    pub fn running(&self) -> bool {
        self.status == "running"
    }

    /// $/h while running (GPU time; storage is billed per month and left out).
    pub fn dollars_per_hour(&self) -> f64 {
        if self.running() {
            self.gpus.len() as f64 * self.rate_per_gpu_hour
        } else {
            0.0
        }
    }

    /// GPU earnings accrued from `from` (or the start, if later) until `now`.
    pub fn accrued_since(&self, from: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
        let start = self.started.map_or(from, |s| s.max(from));
        let hours = (now - start).num_seconds().max(0) as f64 / 3600.0;
        self.dollars_per_hour() * hours
    }
}

impl MachineView {
    pub fn condition(&self) -> MachineCondition {
        if self.removed {
            MachineCondition::Removed
        } else if self.offline {
            MachineCondition::Offline
        } else if self.error.is_some() {
            MachineCondition::Error
        } else if self.gpus_occupied > 0 || self.rentals.iter().any(RentalView::running) {
            MachineCondition::Rented
        } else {
            MachineCondition::Idle
        }
    }

    pub fn up(&self) -> bool {
        !self.offline && !self.removed
    }

    /// GPUs per state, in [`GpuState::ALL`] order; idle is what no running rental holds.
    pub fn gpus_by_state(&self) -> [(GpuState, u32); 4] {
        let mut held = [0u32; 3];
        for r in self.rentals.iter().filter(|r| r.running()) {
            let i = GpuState::of_rental(&r.gpu_type) as usize;
            held[i] += r.gpus.len() as u32;
        }
        let busy = held.iter().sum::<u32>().max(self.gpus_occupied);
        [
            (GpuState::OnDemand, held[0]),
            (GpuState::Interruptible, held[1]),
            (GpuState::Reserved, held[2]),
            (GpuState::Idle, self.gpus_total.saturating_sub(busy)),
        ]
    }

    pub fn running_rentals(&self) -> usize {
        self.rentals.iter().filter(|r| r.running()).count()
    }

    pub fn dollars_per_hour(&self) -> f64 {
        self.rentals.iter().map(RentalView::dollars_per_hour).sum()
    }

    /// A name for people: the hostname, else "machine ID".
    pub fn label(&self) -> String {
        match &self.hostname {
            Some(h) if !h.trim().is_empty() => h.clone(),
            _ => format!("machine {}", self.machine_id),
        }
    }
}

impl InstanceView {
    /// $/h while it runs.
    pub fn dollars_per_hour(&self) -> f64 {
        match self.phase.as_str() {
            "running" => self.dph_total.filter(|v| v.is_finite()).unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

impl AccountView {
    /// What the account's running instances cost per hour.
    pub fn spend_per_hour(&self) -> f64 {
        self.instances
            .iter()
            .filter(|i| !i.destroyed)
            .map(InstanceView::dollars_per_hour)
            .sum()
    }

    /// Hours until the credit runs out at the current spend; `None` without credit or spend.
    pub fn runway_hours(&self) -> Option<f64> {
        let spend = self.spend_per_hour();
        match self.credit {
            Some(credit) if spend > 0.0 => Some((credit / spend).max(0.0)),
            _ => None,
        }
    }

    pub fn stale(&self) -> bool {
        self.state == "stale" || self.state == "auth_failed"
    }
}

impl FleetStatus {
    /// Every machine with its account.
    pub fn machines(&self) -> impl Iterator<Item = (&AccountView, &MachineView)> {
        self.accounts
            .iter()
            .flat_map(|a| a.machines.iter().map(move |m| (a, m)))
    }

    pub fn machine(&self, id: u64) -> Option<(&AccountView, &MachineView)> {
        self.machines().find(|(_, m)| m.machine_id == id)
    }

    pub fn instances(&self) -> impl Iterator<Item = (&AccountView, &InstanceView)> {
        self.accounts
            .iter()
            .flat_map(|a| a.instances.iter().map(move |i| (a, i)))
    }
}

/// The latest published snapshot, parsed at most once per snapshot and shared.
pub struct FleetCache {
    status: watch::Receiver<PublishedStatus>,
    parsed: Mutex<Option<(Bytes, Arc<FleetStatus>)>>,
}

impl FleetCache {
    pub fn new(status: watch::Receiver<PublishedStatus>) -> FleetCache {
        FleetCache {
            status,
            parsed: Mutex::new(None),
        }
    }

    /// The snapshot's JSON text as published.
    pub fn json(&self) -> Bytes {
        self.status.borrow().json.clone()
    }

    /// The snapshot read into types (an empty fleet if it cannot be read, which is logged).
    pub fn current(&self) -> Arc<FleetStatus> {
        let json = self.json();
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, fleet)) = parsed.as_ref() {
            if seen.as_ptr() == json.as_ptr() && seen.len() == json.len() {
                return fleet.clone();
            }
        }
        let fleet = match serde_json::from_slice::<FleetStatus>(&json) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                tracing::warn!(error = %e, "the status snapshot cannot be read for the dashboard");
                Arc::new(FleetStatus::default())
            }
        };
        *parsed = Some((json, fleet.clone()));
        fleet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rental(gpus: &[u32], kind: &str, status: &str, rate: f64) -> serde_json::Value {
        json!({"id": "r", "gpus": gpus, "gpu_type": kind, "status": status,
               "rate_per_gpu_hour": rate, "storage_gb": 10.0, "started": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn a_snapshot_reads_back_with_derived_views_and_unknown_fields_ignored() {
        let snapshot = json!({
            "version": "0.1.0", "new_top_level_field": 1,
            "accounts": [{
                "name": "alice", "state": "stale", "credit": 12.0,
                "last_poll": "2026-01-01T10:00:00Z",
                "machines": [{
                    "machine_id": 7, "hostname": "rig-7", "gpus_total": 8, "gpus_occupied": 3,
                    "rentals": [rental(&[0, 1], "D", "running", 0.5), rental(&[2], "I", "running", 0.2),
                                rental(&[], "D", "paused", 0.5)],
                    "offline": false, "error": null, "removed": false, "something_new": true
                }, {"machine_id": 8, "gpus_total": 2, "offline": true}],
                "instances": [{"id": 5, "phase": "running", "dph_total": 3.0},
                              {"id": 6, "phase": "halted", "dph_total": 9.0}]
            }],
            "targets": [{"name": "t", "state": "ok", "queue_depth": 2}]
        });
        let fleet: FleetStatus = serde_json::from_value(snapshot).unwrap();
        let (account, m) = fleet.machine(7).unwrap();
        assert!(account.stale());
        assert_eq!(m.condition(), MachineCondition::Rented);
        assert_eq!(
            m.gpus_by_state(),
            [
                (GpuState::OnDemand, 2),
                (GpuState::Interruptible, 1),
                (GpuState::Reserved, 0),
                (GpuState::Idle, 5)
            ]
        );
        assert!((m.dollars_per_hour() - 1.2).abs() < 1e-9);
        assert_eq!(m.running_rentals(), 2);
        let (_, offline) = fleet.machine(8).unwrap();
        assert_eq!(offline.condition(), MachineCondition::Offline);
        assert!(!offline.up());
        assert_eq!(offline.label(), "machine 8");
        assert_eq!(account.spend_per_hour(), 3.0);
        assert_eq!(account.runway_hours(), Some(4.0));
        assert_eq!(fleet.targets[0].queue_depth, 2);
    }

    #[test]
    fn the_cache_parses_each_snapshot_once() {
        let (tx, rx) = watch::channel(PublishedStatus::default());
        let cache = FleetCache::new(rx);
        assert!(cache.current().accounts.is_empty());
        let first = cache.current();
        assert!(
            Arc::ptr_eq(&first, &cache.current()),
            "same snapshot, same parse"
        );
        tx.send_replace(PublishedStatus {
            json: Bytes::from_static(br#"{"accounts":[{"name":"bob"}]}"#),
            counts: Default::default(),
        });
        assert_eq!(cache.current().accounts[0].name, "bob");
        tx.send_replace(PublishedStatus {
            json: Bytes::from_static(b"not json"),
            counts: Default::default(),
        });
        assert!(
            cache.current().accounts.is_empty(),
            "unreadable: empty, no panic"
        );
    }
}
