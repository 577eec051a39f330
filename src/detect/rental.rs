//! Rental sessions of one machine and the per-poll rental diff (rules 1-7 of the [`super`] docs).
//!
//! Owns [`Rental`] and [`RentalBook`]: which GPUs each rental holds, its status, storage, rates and
//! earnings segments. It reads only the parsed poll it is handed and emits only rental events;
//! machine conditions (offline, errors, listing) live in [`super::machine`], the searches that
//! decide who holds which GPUs in [`super::assign`].

use super::assign::{
    choose_pauses, match_storage, plan_new_rentals, started_groups, Planned, PollInput,
};
use super::{
    fmt_gb, fmt_money, fmt_seconds, gpu_earnings, quantize, round6, seconds_between,
    storage_earnings, Class, Emitter, GpuType, Rates, DISK_TOLERANCE_GB,
};
use crate::event::EventKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// At most this many stored rentals of unknown GPUs are adopted per class (garbage counters).
const MAX_ADOPTED_STORED: i64 = 64;

/// Disk drops below this (GB) are not looked at for disk-only ends (vast-monitor's threshold).
const DISK_NOISE_GB: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RentalStatus {
    /// Holds GPUs.
    Running,
    /// GPUs released, storage kept.
    Paused,
    /// An interruptible rental whose GPUs were taken by a higher-priority rental; storage kept.
    Preempted,
}

impl RentalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RentalStatus::Running => "running",
            RentalStatus::Paused => "paused",
            RentalStatus::Preempted => "preempted",
        }
    }
}

/// An open GPU earnings segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSegment {
    pub start: DateTime<Utc>,
    pub rate_per_gpu_hour: f64,
    pub gpu_count: u32,
}

/// An open storage earnings segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageSegment {
    pub start: DateTime<Utc>,
    pub rate_per_gb_month: f64,
    pub gb: f64,
}

/// One rental (a renter's contract as the host can infer it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rental {
    /// `"m{machine_id}-{n:04}"`, stable for the rental's life.
    pub id: String,
    /// GPU indices held, or last held while paused or preempted; empty when adopted while stored.
    pub gpus: Vec<u32>,
    pub gpu_type: GpuType,
    pub status: RentalStatus,
    /// When it was first seen; for adopted rentals the real start is earlier.
    pub started: DateTime<Utc>,
    /// Found running or stored when the machine was first seen (start time unknown).
    pub adopted: bool,
    pub storage_gb: f64,
    /// Listing rate when the GPUs were taken (the host cannot see the contract price).
    pub rate_per_gpu_hour: f64,
    pub storage_rate_per_gb_month: f64,
    /// Earnings of closed segments.
    pub earned_gpu: f64,
    pub earned_storage: f64,
    pub gpu_segment: Option<GpuSegment>,
    pub storage_segment: Option<StorageSegment>,
    pub last_change: DateTime<Utc>,
}

impl Rental {
    /// Estimated earnings (GPU, storage) up to `now`.
    pub fn earnings(&self, now: DateTime<Utc>) -> (f64, f64) {
        let gpu = self.earned_gpu
            + self.gpu_segment.as_ref().map_or(0.0, |s| {
                gpu_earnings(
                    s.rate_per_gpu_hour,
                    s.gpu_count,
                    seconds_between(s.start, now),
                )
            });
        let storage = self.earned_storage
            + self.storage_segment.as_ref().map_or(0.0, |s| {
                storage_earnings(s.rate_per_gb_month, s.gb, seconds_between(s.start, now))
            });
        (gpu, storage)
    }

    pub fn is_stored(&self) -> bool {
        self.status != RentalStatus::Running
    }

    fn class(&self) -> Class {
        self.gpu_type.class()
    }

    fn open_gpu(&mut self, now: DateTime<Utc>) {
        self.close_gpu(now);
        if !self.gpus.is_empty() {
            self.gpu_segment = Some(GpuSegment {
                start: now,
                rate_per_gpu_hour: self.rate_per_gpu_hour,
                gpu_count: self.gpus.len() as u32,
            });
        }
    }

    fn close_gpu(&mut self, now: DateTime<Utc>) {
        if let Some(s) = self.gpu_segment.take() {
            self.earned_gpu = quantize(
                self.earned_gpu
                    + gpu_earnings(
                        s.rate_per_gpu_hour,
                        s.gpu_count,
                        seconds_between(s.start, now),
                    ),
            );
        }
    }

    fn open_storage(&mut self, now: DateTime<Utc>) {
        self.close_storage(now);
        if self.storage_gb > 0.0 {
            self.storage_segment = Some(StorageSegment {
                start: now,
                rate_per_gb_month: self.storage_rate_per_gb_month,
                gb: self.storage_gb,
            });
        }
    }

    fn close_storage(&mut self, now: DateTime<Utc>) {
        if let Some(s) = self.storage_segment.take() {
            self.earned_storage = quantize(
                self.earned_storage
                    + storage_earnings(s.rate_per_gb_month, s.gb, seconds_between(s.start, now)),
            );
        }
    }

    /// The `data` every rental event carries.
    fn data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("rental_id".into(), json!(self.id));
        m.insert("gpus".into(), json!(self.gpus));
        m.insert("gpu_type".into(), json!(self.gpu_type.as_str()));
        m.insert(
            "rate_per_gpu_hour".into(),
            json!(round6(self.rate_per_gpu_hour)),
        );
        m.insert("storage_gb".into(), json!(round6(self.storage_gb)));
        m.insert(
            "storage_rate_per_gb_month".into(),
            json!(round6(self.storage_rate_per_gb_month)),
        );
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("adopted".into(), json!(self.adopted));
        m
    }

    /// The short view `status` shows.
    pub fn summary(&self) -> RentalSummary {
        RentalSummary {
            id: self.id.clone(),
            gpus: self.gpus.clone(),
            gpu_type: self.gpu_type.as_str(),
            status: self.status.as_str(),
            adopted: self.adopted,
            storage_gb: round6(self.storage_gb),
            rate_per_gpu_hour: round6(self.rate_per_gpu_hour),
            started: self.started,
        }
    }
}

/// A rental as `status` and `machine_added` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RentalSummary {
    pub id: String,
    pub gpus: Vec<u32>,
    pub gpu_type: &'static str,
    pub status: &'static str,
    pub adopted: bool,
    pub storage_gb: f64,
    pub rate_per_gpu_hour: f64,
    pub started: DateTime<Utc>,
}

/// The rentals of one machine and the counter for new rental ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RentalBook {
    pub rentals: Vec<Rental>,
    /// Number of the next rental id (`m{machine}-{next_seq:04}`).
    pub next_seq: u64,
}

impl Default for RentalBook {
    fn default() -> Self {
        RentalBook {
            rentals: Vec::new(),
            next_seq: 1,
        }
    }
}

impl RentalBook {
    pub fn get(&self, id: &str) -> Option<&Rental> {
        self.rentals.iter().find(|r| r.id == id)
    }

    /// GPUs held by running rentals.
    pub fn occupied_gpus(&self) -> usize {
        self.rentals
            .iter()
            .filter(|r| r.status == RentalStatus::Running)
            .map(|r| r.gpus.len())
            .sum()
    }

    pub(crate) fn next_id(&mut self, machine_id: u64) -> String {
        let id = format!("m{machine_id}-{:04}", self.next_seq);
        self.next_seq += 1;
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        machine_id: u64,
        planned: Planned,
        storage_gb: f64,
        rates: &Rates,
        status: RentalStatus,
        adopted: bool,
        now: DateTime<Utc>,
    ) -> usize {
        let id = self.next_id(machine_id);
        let mut rental = Rental {
            id,
            gpus: planned.gpus,
            gpu_type: planned.gpu_type,
            status,
            started: now,
            adopted,
            storage_gb: quantize(storage_gb),
            rate_per_gpu_hour: rates.gpu(planned.gpu_type),
            storage_rate_per_gb_month: rates.storage_per_gb_month,
            earned_gpu: 0.0,
            earned_storage: 0.0,
            gpu_segment: None,
            storage_segment: None,
            last_change: now,
        };
        if status == RentalStatus::Running {
            rental.open_gpu(now);
        }
        rental.open_storage(now);
        self.rentals.push(rental);
        self.rentals.len() - 1
    }

    /// Takes in the rentals of a machine seen for the first time, silently (module docs, "First
    /// sight"). Returns nothing: adoption never emits rental events. Rentals already in the book
    /// (recorded by another monitor, see [`super::recorded`]) keep their GPUs and count against
    /// the counters; only what they leave unexplained is adopted.
    pub(crate) fn adopt(&mut self, machine_id: u64, input: &PollInput, now: DateTime<Utc>) {
        let held = self.held_gpus();
        let groups = started_groups(input, &held);
        let running_before = [Class::OnDemand, Class::Other].map(|c| self.running_count(c));
        let planned = plan_new_rentals(groups, input, |class| {
            input.new.running_of(class) - running_before[class_index(class)]
        });
        let unexplained_stored = |class: Class| {
            let known = self
                .rentals
                .iter()
                .filter(|r| r.is_stored() && r.class() == class)
                .count() as i64;
            (input.new.stored_of(class) - known).clamp(0, MAX_ADOPTED_STORED)
        };
        let stored: Vec<(GpuType, i64)> = vec![
            (GpuType::OnDemand, unexplained_stored(Class::OnDemand)),
            (GpuType::Unknown, unexplained_stored(Class::Other)),
        ];
        let stored_total: i64 = stored.iter().map(|(_, n)| n).sum();
        // Only a lone rental can be credited with the whole allocation; otherwise storage is unknown.
        let lone = planned.len() as i64 + stored_total == 1 && self.rentals.is_empty();
        let whole_disk = input.new_disk.unwrap_or(0.0);
        for p in planned {
            let storage = p
                .client_storage
                .unwrap_or(if lone { whole_disk } else { 0.0 });
            self.create(
                machine_id,
                p,
                storage,
                &input.rates,
                RentalStatus::Running,
                true,
                now,
            );
        }
        for (gpu_type, count) in stored {
            for _ in 0..count {
                let planned = Planned {
                    gpu_type,
                    gpus: Vec::new(),
                    client_storage: None,
                };
                let storage = if lone { whole_disk } else { 0.0 };
                self.create(
                    machine_id,
                    planned,
                    storage,
                    &input.rates,
                    RentalStatus::Paused,
                    true,
                    now,
                );
            }
        }
    }

    fn held_gpus(&self) -> BTreeSet<u32> {
        self.rentals
            .iter()
            .filter(|r| r.status == RentalStatus::Running)
            .flat_map(|r| r.gpus.iter().copied())
            .collect()
    }

    fn running_count(&self, class: Class) -> i64 {
        self.rentals
            .iter()
            .filter(|r| r.status == RentalStatus::Running && r.class() == class)
            .count() as i64
    }

    /// Applies one poll to the book and emits the rental events it implies (module docs, rules 1-7).
    pub(crate) fn apply_poll(&mut self, machine_id: u64, input: &PollInput, em: &mut Emitter) {
        let now = em.now;
        // Rentals whose status changed this poll take no further part in it.
        let mut touched: BTreeSet<String> = BTreeSet::new();

        // Rule 1 and 2: find released and preempted rentals; shrink partial releases.
        let mut preempted: Vec<(usize, GpuType)> = Vec::new();
        let mut released: Vec<usize> = Vec::new();
        for (i, r) in self.rentals.iter_mut().enumerate() {
            if r.status != RentalStatus::Running {
                continue;
            }
            let (kept, lost): (Vec<u32>, Vec<u32>) = r
                .gpus
                .iter()
                .partition(|g| input.slot(**g) == Some(r.gpu_type));
            if lost.is_empty() {
                continue;
            }
            if !kept.is_empty() {
                r.gpus = kept;
                r.open_gpu(now);
                r.last_change = now;
                continue;
            }
            let taker = lost.iter().find_map(|g| input.slot(*g));
            match taker {
                Some(t) if r.gpu_type == GpuType::Interruptible => preempted.push((i, t)),
                _ => released.push(i),
            }
        }

        // Rule 3: pause budgets per class, then the pause/end assignment that best explains the disk.
        let mut budget_d =
            (input.new.stored_of(Class::OnDemand) - input.old.stored_of(Class::OnDemand)).max(0);
        let mut budget_n = (input.new.stored_of(Class::Other) - input.old.stored_of(Class::Other))
            .max(0)
            - preempted.len() as i64;
        budget_n = budget_n.max(0);
        let delta = input.new_disk.unwrap_or(0.0) - input.old_disk.unwrap_or(0.0);
        let drop = (-delta).max(0.0);
        let candidates: Vec<(Class, f64)> = released
            .iter()
            .map(|&i| (self.rentals[i].class(), self.rentals[i].storage_gb))
            .collect();
        let pauses = choose_pauses(&candidates, &mut budget_d, &mut budget_n, drop);

        let mut paused_now = [0i64; 2];
        let preempted_now = preempted.len() as i64;
        let mut ended_now: Vec<usize> = Vec::new();
        let mut actions: Vec<(usize, Action)> = preempted
            .iter()
            .map(|&(i, t)| (i, Action::Preempt(t)))
            .chain(
                released
                    .iter()
                    .zip(&pauses)
                    .map(|(&i, &pause)| (i, if pause { Action::Pause } else { Action::End })),
            )
            .collect();
        actions.sort_by_key(|(i, _)| *i);
        for (i, action) in actions {
            let r = &mut self.rentals[i];
            touched.insert(r.id.clone());
            match action {
                Action::Preempt(taker) => {
                    r.close_gpu(now);
                    r.status = RentalStatus::Preempted;
                    r.last_change = now;
                    let mut data = r.data();
                    data.insert("by".into(), json!(taker.as_str()));
                    let text = format!(
                        "{}: {} interruptible taken by {} rental; {} storage kept",
                        r.id,
                        em.gpus_text(r.gpus.len()),
                        taker.with_article(),
                        fmt_gb(r.storage_gb)
                    );
                    let title = format!("Interruptible rental preempted on {}", em.host);
                    em.emit(EventKind::RentalPreempt, title, text, Value::Object(data));
                }
                Action::Pause => {
                    r.close_gpu(now);
                    r.status = RentalStatus::Paused;
                    r.last_change = now;
                    paused_now[class_index(r.class())] += 1;
                    let text = format!(
                        "{}: {} {} released, {} storage kept",
                        r.id,
                        em.gpus_text(r.gpus.len()),
                        r.gpu_type.label(),
                        fmt_gb(r.storage_gb)
                    );
                    let title = format!("Rental paused on {}", em.host);
                    em.emit(EventKind::RentalPause, title, text, Value::Object(r.data()));
                }
                Action::End => {
                    emit_end(r, "gpus_released", em);
                    ended_now.push(i);
                }
            }
        }
        let released_storage: f64 = ended_now.iter().map(|&i| self.rentals[i].storage_gb).sum();
        let ended_count = ended_now.len() as i64;
        remove_indices(&mut self.rentals, ended_now);

        // Rule 4: resumes.
        let held = self.held_gpus();
        let mut groups = started_groups(input, &held);
        let mut resume_budget = [Class::OnDemand, Class::Other].map(|class| {
            let extra = if class == Class::Other {
                preempted_now
            } else {
                0
            };
            (input.old.stored_of(class) + paused_now[class_index(class)] + extra
                - input.new.stored_of(class))
            .max(0)
        });
        let no_new_contract = input.new.resident <= input.old.resident;
        for (&gpu_type, remaining) in groups.iter_mut() {
            let ci = class_index(gpu_type.class());
            let mut order: Vec<usize> = (0..self.rentals.len())
                .filter(|&i| {
                    let r = &self.rentals[i];
                    r.is_stored()
                        && r.gpu_type == gpu_type
                        && !r.gpus.is_empty()
                        && !touched.contains(&r.id)
                })
                .collect();
            // Exact matches of the whole group first, then by age.
            order.sort_by_key(|&i| (self.rentals[i].gpus != *remaining, i));
            for i in order {
                let gpus = &self.rentals[i].gpus;
                if !gpus.iter().all(|g| remaining.contains(g)) {
                    continue;
                }
                let whole = gpus == remaining;
                if !whole && resume_budget[ci] < 1 {
                    continue;
                }
                resume_budget[ci] = (resume_budget[ci] - 1).max(0);
                remaining.retain(|g| !self.rentals[i].gpus.contains(g));
                let r = &mut self.rentals[i];
                touched.insert(r.id.clone());
                resume(r, gpu_type, &input.rates, em);
            }
            if !remaining.is_empty() && resume_budget[ci] >= 1 && no_new_contract {
                let unknown_gpus = (0..self.rentals.len()).find(|&i| {
                    let r = &self.rentals[i];
                    r.is_stored()
                        && r.gpus.is_empty()
                        && r.class() == gpu_type.class()
                        && (r.gpu_type == gpu_type || r.gpu_type == GpuType::Unknown)
                        && !touched.contains(&r.id)
                });
                if let Some(i) = unknown_gpus {
                    resume_budget[ci] -= 1;
                    let r = &mut self.rentals[i];
                    r.gpus = std::mem::take(remaining);
                    touched.insert(r.id.clone());
                    resume(r, gpu_type, &input.rates, em);
                }
            }
        }
        groups.retain(|_, g| !g.is_empty());

        // Rule 5: new rentals, with the disk growth shared among them.
        let running_before: [i64; 2] = [
            self.running_count(Class::OnDemand),
            self.running_count(Class::Other),
        ];
        let planned = plan_new_rentals(groups, input, |class| {
            input.new.running_of(class) - running_before[class_index(class)]
        });
        let new_count = planned.len() as i64;
        let disk_growth = (delta + released_storage).max(0.0);
        let named: f64 = planned.iter().filter_map(|p| p.client_storage).sum();
        let pool = (disk_growth - named).max(0.0);
        let unnamed_gpus: usize = planned
            .iter()
            .filter(|p| p.client_storage.is_none())
            .map(|p| p.gpus.len())
            .sum();
        for p in planned {
            let storage = p.client_storage.unwrap_or_else(|| {
                if unnamed_gpus == 0 {
                    0.0
                } else {
                    pool * p.gpus.len() as f64 / unnamed_gpus as f64
                }
            });
            let i = self.create(
                machine_id,
                p,
                storage,
                &input.rates,
                RentalStatus::Running,
                false,
                now,
            );
            let r = &self.rentals[i];
            touched.insert(r.id.clone());
            let text = format!(
                "{} {} @ {}/GPU/h, {}",
                em.gpus_text(r.gpus.len()),
                r.gpu_type.label(),
                fmt_money(r.rate_per_gpu_hour),
                fmt_gb(r.storage_gb)
            );
            let title = format!("New rental on {}", em.host);
            em.emit(EventKind::RentalStart, title, text, Value::Object(r.data()));
        }

        // Rule 6: storage released without a GPU change.
        let stored: Vec<usize> = (0..self.rentals.len())
            .filter(|&i| self.rentals[i].is_stored() && !touched.contains(&self.rentals[i].id))
            .collect();
        let unexplained_drop = -(delta + released_storage);
        let mut disk_only: Vec<usize> = Vec::new();
        if unexplained_drop > DISK_NOISE_GB {
            let sizes: Vec<f64> = stored.iter().map(|&i| self.rentals[i].storage_gb).collect();
            disk_only = match_storage(&sizes, unexplained_drop)
                .into_iter()
                .map(|k| stored[k])
                .collect();
        }
        if disk_only.is_empty() {
            let expected_resident = input.old.resident - ended_count + new_count;
            let deficit = expected_resident - input.new.resident;
            if deficit >= 1 && stored.len() as i64 == deficit {
                disk_only = stored.clone();
            }
        }
        for &i in &disk_only {
            emit_end(&mut self.rentals[i], "storage_released", em);
        }
        remove_indices(&mut self.rentals, disk_only);

        // Storage named by `clients` for a running rental's exact GPU set refreshes its storage.
        for r in self
            .rentals
            .iter_mut()
            .filter(|r| r.status == RentalStatus::Running)
        {
            if let Some(gb) = input.client_storage(&r.gpus) {
                if (gb - r.storage_gb).abs() >= DISK_TOLERANCE_GB {
                    r.storage_gb = gb;
                    r.open_storage(now);
                }
            }
        }
    }

    /// Ends every rental (the machine is gone) and emits `rental_end` for each.
    pub(crate) fn end_all(&mut self, reason: &str, em: &mut Emitter) {
        for r in &mut self.rentals {
            emit_end(r, reason, em);
        }
        self.rentals.clear();
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Preempt(GpuType),
    Pause,
    End,
}

fn class_index(class: Class) -> usize {
    match class {
        Class::OnDemand => 0,
        Class::Other => 1,
    }
}

fn remove_indices(rentals: &mut Vec<Rental>, mut indices: Vec<usize>) {
    indices.sort_unstable();
    indices.dedup();
    for i in indices.into_iter().rev() {
        rentals.remove(i);
    }
}

fn resume(r: &mut Rental, gpu_type: GpuType, rates: &Rates, em: &mut Emitter) {
    let now = em.now;
    if r.rate_per_gpu_hour <= 0.0 {
        r.rate_per_gpu_hour = rates.gpu(gpu_type);
    }
    r.gpu_type = gpu_type;
    r.status = RentalStatus::Running;
    r.last_change = now;
    r.gpus.sort_unstable();
    r.open_gpu(now);
    let text = format!(
        "{}: {} {} @ {}/GPU/h",
        r.id,
        em.gpus_text(r.gpus.len()),
        r.gpu_type.label(),
        fmt_money(r.rate_per_gpu_hour)
    );
    let title = format!("Rental resumed on {}", em.host);
    em.emit(
        EventKind::RentalResume,
        title,
        text,
        Value::Object(r.data()),
    );
}

fn emit_end(r: &mut Rental, reason: &str, em: &mut Emitter) {
    let now = em.now;
    let ended_from = r.status;
    r.close_gpu(now);
    r.close_storage(now);
    r.last_change = now;
    let (gpu, storage) = r.earnings(now);
    let duration = seconds_between(r.started, now);
    let mut data = r.data();
    data.insert("status".into(), json!("ended"));
    data.insert("ended_from".into(), json!(ended_from.as_str()));
    data.insert("reason".into(), json!(reason));
    data.insert("started".into(), json!(r.started));
    data.insert("duration_seconds".into(), json!(duration.round() as u64));
    data.insert(
        "estimated_earnings".into(),
        json!({"gpu": round6(gpu), "storage": round6(storage), "total": round6(gpu + storage)}),
    );
    let ran = if r.adopted {
        format!("ran over {}", fmt_seconds(duration))
    } else {
        format!("ran {}", fmt_seconds(duration))
    };
    let text = format!(
        "{}: {} {}, {ran}, est. {} (GPU {} + storage {})",
        r.id,
        em.gpus_text(r.gpus.len()),
        r.gpu_type.label(),
        fmt_money(gpu + storage),
        fmt_money(gpu),
        fmt_money(storage)
    );
    let title = format!("Rental ended on {}", em.host);
    em.emit(EventKind::RentalEnd, title, text, Value::Object(data));
}
