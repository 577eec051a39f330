//! vast-monitor's state files (`rental_snapshot.json`, `machine_snapshots/<id>.json`; reference:
//! vast-monitor.md §c) -> machine states in our state database, so the rentals it tracked are
//! continued with their start time and the first poll announces none of them again (SPEC §14).
//!
//! Owns the reading of those files and the commit. The states themselves are built by the
//! detection core ([`crate::detect::machine_from_record`]); nothing here writes state JSON by hand.

use super::ImportError;
use crate::detect::{
    machine_from_record, GpuType, MachineState, RecordedGpuSegment, RecordedMachine,
    RecordedRental, RecordedStorageSegment, RentalStatus,
};
use crate::store::{Commit, Store};
use crate::vast::Machine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One machine of `rental_snapshot.json`.
#[derive(Debug, Deserialize)]
struct MachineEntry {
    #[serde(default)]
    gpu_occupancy: Option<String>,
    #[serde(default)]
    sessions: BTreeMap<String, Value>,
    #[serde(default)]
    next_session_seq: Option<u64>,
    #[serde(default)]
    num_gpus: Option<u64>,
    #[serde(default)]
    gpu_name: Option<String>,
    #[serde(default)]
    current_rentals_running: Option<i64>,
    #[serde(default)]
    current_rentals_running_on_demand: Option<i64>,
    #[serde(default)]
    current_rentals_resident: Option<i64>,
    #[serde(default)]
    current_rentals_on_demand: Option<i64>,
    #[serde(default)]
    last_error_notified_at: Option<String>,
    #[serde(default)]
    last_timeout_notified_at: Option<String>,
}

/// One `RentalSession` of vast-monitor.
#[derive(Debug, Deserialize)]
struct Session {
    #[serde(default)]
    client_id: Option<String>,
    status: String,
    #[serde(default)]
    gpus: Vec<u32>,
    start_time: String,
    #[serde(default)]
    last_state_change: Option<String>,
    #[serde(default)]
    storage_gb: Option<f64>,
    #[serde(default)]
    gpu_contracted_rate: Option<f64>,
    #[serde(default)]
    storage_contracted_rate: Option<f64>,
    #[serde(default)]
    gpu_type: Option<String>,
    #[serde(default)]
    gpu_segments: Vec<GpuSegmentRecord>,
    #[serde(default)]
    storage_segments: Vec<StorageSegmentRecord>,
}

#[derive(Debug, Deserialize)]
struct GpuSegmentRecord {
    start: String,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    gpu_count: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StorageSegmentRecord {
    start: String,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    rate_per_gb_month: Option<f64>,
}

/// A rental continued from vast-monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Continued {
    pub machine_id: u64,
    pub rental_id: String,
    pub status: RentalStatus,
    pub started: DateTime<Utc>,
}

/// The machine states built from a vast-monitor state directory.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub machines: Vec<MachineState>,
    pub continued: Vec<Continued>,
    /// What was left out or read differently, one sentence each.
    pub notes: Vec<String>,
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn read_json(path: &Path) -> Result<Value, ImportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ImportError::Input(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        ImportError::Input(format!(
            "{}:{}:{}: not valid JSON",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// When the state files last changed: the latest moment vast-monitor's state is known to hold,
/// and so the start of the window (`since`) of whatever the first poll finds changed.
fn observed_at(paths: &[PathBuf], now: DateTime<Utc>) -> DateTime<Utc> {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .map(DateTime::<Utc>::from)
        .max()
        .map_or(now, |t| t.min(now))
}

/// Reads vast-monitor's state directory `dir` (the directory of its config.json) for the
/// machines in `machine_ids` (every machine when empty).
pub fn read(dir: &Path, machine_ids: &[u64], now: DateTime<Utc>) -> Result<Imported, ImportError> {
    let rental_path = dir.join("rental_snapshot.json");
    if !rental_path.is_file() {
        return Err(ImportError::Input(format!(
            "{} does not exist: --snapshots names vast-monitor's state directory (the directory of \
             its config.json, holding rental_snapshot.json and machine_snapshots/)",
            rental_path.display()
        )));
    }
    let Value::Object(entries) = read_json(&rental_path)? else {
        return Err(ImportError::Input(format!(
            "{}: expected an object of machine ids",
            rental_path.display()
        )));
    };
    let mut out = Imported::default();
    for (key, entry) in entries {
        let Ok(machine_id) = key.trim().parse::<u64>() else {
            out.notes.push(format!(
                "{}: an entry whose key is not a machine id is skipped",
                rental_path.display()
            ));
            continue;
        };
        if !machine_ids.is_empty() && !machine_ids.contains(&machine_id) {
            out.notes.push(format!(
                "machine {machine_id}: not in machine_ids, its snapshot is skipped"
            ));
            continue;
        }
        let entry: MachineEntry = match serde_json::from_value(entry) {
            Ok(entry) => entry,
            Err(e) => {
                out.notes.push(format!(
                    "machine {machine_id}: skipped, its rental snapshot is not readable ({e}); \
                     the first poll adopts its rentals with an unknown start"
                ));
                continue;
            }
        };
        let snapshot_path = dir
            .join("machine_snapshots")
            .join(format!("{machine_id}.json"));
        match import_machine(machine_id, entry, &snapshot_path, &rental_path, now) {
            Ok((state, continued, notes)) => {
                out.machines.push(state);
                out.continued.extend(continued);
                out.notes.extend(notes);
            }
            Err(reason) => out
                .notes
                .push(format!("machine {machine_id}: skipped, {reason}")),
        }
    }
    Ok(out)
}

type MachineImport = (MachineState, Vec<Continued>, Vec<String>);

fn import_machine(
    machine_id: u64,
    entry: MachineEntry,
    snapshot_path: &Path,
    rental_path: &Path,
    now: DateTime<Utc>,
) -> Result<MachineImport, String> {
    let mut notes = Vec::new();
    // The row vast-monitor saved last; the rental snapshot's occupancy and counters win, since
    // its sessions were diffed against them.
    let mut row: Map<String, Value> = if snapshot_path.is_file() {
        match read_json(snapshot_path) {
            Ok(Value::Object(row)) => row,
            Ok(_) | Err(_) => {
                return Err(format!("{} is not a machine row", snapshot_path.display()))
            }
        }
    } else {
        Map::new()
    };
    row.insert("id".into(), machine_id.into());
    row.insert("machine_id".into(), machine_id.into());
    let overrides: [(&str, Option<Value>); 7] = [
        (
            "gpu_occupancy",
            entry.gpu_occupancy.clone().map(Value::from),
        ),
        ("num_gpus", entry.num_gpus.map(Value::from)),
        ("gpu_name", entry.gpu_name.clone().map(Value::from)),
        (
            "current_rentals_running",
            entry.current_rentals_running.map(Value::from),
        ),
        (
            "current_rentals_running_on_demand",
            entry.current_rentals_running_on_demand.map(Value::from),
        ),
        (
            "current_rentals_resident",
            entry.current_rentals_resident.map(Value::from),
        ),
        (
            "current_rentals_on_demand",
            entry.current_rentals_on_demand.map(Value::from),
        ),
    ];
    for (key, value) in overrides {
        if let Some(value) = value {
            row.insert(key.into(), value);
        }
    }
    if !row.contains_key("gpu_occupancy") {
        return Err("neither snapshot records its GPU occupancy".into());
    }
    let row: Machine = serde_json::from_value(Value::Object(row))
        .map_err(|e| format!("its snapshot is not a machine row ({e})"))?;

    let mut rentals = Vec::new();
    for (key, session) in entry.sessions {
        match serde_json::from_value::<Session>(session) {
            Ok(session) => match recorded_rental(&key, session) {
                Ok(rental) => rentals.push(rental),
                Err(reason) => notes.push(format!(
                    "machine {machine_id}: session {}: {reason}; the first poll adopts its GPUs \
                     with an unknown start",
                    plain(&key)
                )),
            },
            Err(e) => notes.push(format!(
                "machine {machine_id}: session {} is not readable ({e})",
                plain(&key)
            )),
        }
    }
    let record = RecordedMachine {
        row: &row,
        rentals,
        next_rental_seq: entry.next_session_seq.unwrap_or(1),
        error_alerted_at: entry.last_error_notified_at.as_deref().and_then(time),
        offline_alerted_at: entry.last_timeout_notified_at.as_deref().and_then(time),
    };
    let at = observed_at(
        &[rental_path.to_path_buf(), snapshot_path.to_path_buf()],
        now,
    );
    let (state, problems) = machine_from_record(&record, at);
    for problem in problems {
        notes.push(format!("machine {machine_id}: {problem}; left out"));
    }
    let continued = state
        .rentals
        .rentals
        .iter()
        .filter(|r| !r.adopted)
        .map(|r| Continued {
            machine_id,
            rental_id: r.id.clone(),
            status: r.status,
            started: r.started,
        })
        .collect();
    Ok((state, continued, notes))
}

/// A session key or id, when it is plain enough to repeat.
fn plain(s: &str) -> String {
    if !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        s.to_string()
    } else {
        "(unnamed)".into()
    }
}

fn recorded_rental(key: &str, s: Session) -> Result<RecordedRental, String> {
    let status = match s.status.as_str() {
        "running" => RentalStatus::Running,
        "stored" => RentalStatus::Paused,
        _ => return Err("its status is neither running nor stored".into()),
    };
    let started = time(&s.start_time).ok_or("its start_time is not an RFC 3339 time")?;
    let gpu_type = s
        .gpu_type
        .as_deref()
        .and_then(GpuType::from_token)
        .unwrap_or(GpuType::Unknown);
    let mut gpu_segments = Vec::new();
    for seg in s.gpu_segments {
        gpu_segments.push(RecordedGpuSegment {
            start: time(&seg.start).ok_or("a GPU segment's start is not an RFC 3339 time")?,
            end: seg.end.as_deref().and_then(time),
            rate_per_gpu_hour: seg.rate.unwrap_or(0.0),
            gpu_count: seg.gpu_count.unwrap_or(s.gpus.len() as u32),
        });
    }
    let mut storage_segments = Vec::new();
    for seg in s.storage_segments {
        storage_segments.push(RecordedStorageSegment {
            start: time(&seg.start).ok_or("a storage segment's start is not an RFC 3339 time")?,
            end: seg.end.as_deref().and_then(time),
            rate_per_gb_month: seg.rate_per_gb_month.unwrap_or(0.0),
        });
    }
    Ok(RecordedRental {
        id: s.client_id.unwrap_or_else(|| key.to_string()),
        gpus: s.gpus,
        gpu_type,
        status,
        started,
        last_change: s.last_state_change.as_deref().and_then(time),
        storage_gb: s.storage_gb.unwrap_or(0.0),
        rate_per_gpu_hour: s.gpu_contracted_rate.unwrap_or(0.0),
        storage_rate_per_gb_month: s.storage_contracted_rate.unwrap_or(0.0),
        gpu_segments,
        storage_segments,
    })
}

/// The state database of `state_dir`, opened for the import.
pub struct Destination {
    store: Store,
    path: PathBuf,
    created: bool,
}

impl Destination {
    pub fn open(state_dir: &Path) -> Result<Destination, ImportError> {
        std::fs::create_dir_all(state_dir).map_err(|source| ImportError::Write {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join("state.db");
        let created = !path.exists();
        let store = Store::open(&path).map_err(|e| ImportError::Store {
            path: path.clone(),
            error: e.to_string(),
        })?;
        Ok(Destination {
            store,
            path,
            created,
        })
    }

    /// Refuses machines the database already holds state for: the daemon watched them already,
    /// and its event numbering must not restart.
    pub fn check_free(
        &mut self,
        account: &str,
        machines: &[MachineState],
    ) -> Result<(), ImportError> {
        let (stored, _) = self
            .store
            .load_states(account, "machine", |_| Ok::<(), String>(()))
            .map_err(|e| ImportError::Store {
                path: self.path.clone(),
                error: e.to_string(),
            })?;
        let held: Vec<String> = machines
            .iter()
            .map(|m| m.machine_id.to_string())
            .filter(|id| stored.iter().any(|(s, _)| s == id))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        Err(ImportError::Input(format!(
            "{} already holds state for account \"{account}\" (machine {}): the daemon has watched it; \
             import under another --account name, or without --snapshots",
            self.path.display(),
            held.join(", ")
        )))
    }

    /// Commits the states in one transaction; returns a note when the database had to be given
    /// to the state directory's owner and could not be.
    pub fn commit(
        mut self,
        account: &str,
        machines: &[MachineState],
        now: DateTime<Utc>,
    ) -> Result<Option<String>, ImportError> {
        let mut commits = Vec::new();
        for state in machines {
            let json = serde_json::to_string(state).map_err(|e| ImportError::Store {
                path: self.path.clone(),
                error: e.to_string(),
            })?;
            commits.push(Commit {
                account: account.to_string(),
                kind: "machine",
                id: state.machine_id.to_string(),
                state: Some(json),
                events: Vec::new(),
            });
        }
        self.store
            .apply(&commits, now)
            .map_err(|e| ImportError::Store {
                path: self.path.clone(),
                error: e.to_string(),
            })?;
        let (path, created) = (self.path.clone(), self.created);
        drop(self.store);
        Ok(created.then(|| give_to_directory_owner(&path)).flatten())
    }
}

/// A database created by root in the daemon's state directory must belong to the daemon's user
/// (the directory's owner), or the daemon cannot write it.
fn give_to_directory_owner(db: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = db.parent()?;
    let (dir_meta, db_meta) = (std::fs::metadata(dir).ok()?, std::fs::metadata(db).ok()?);
    if (dir_meta.uid(), dir_meta.gid()) == (db_meta.uid(), db_meta.gid()) {
        return None;
    }
    let mut failed = None;
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if !path.exists() {
            continue;
        }
        if let Err(e) = std::os::unix::fs::chown(&path, Some(dir_meta.uid()), Some(dir_meta.gid()))
        {
            failed = Some(format!(
                "cannot give {} to the owner of {} ({e}): the daemon's user must own it",
                path.display(),
                dir.display()
            ));
        }
    }
    failed
}
