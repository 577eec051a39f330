//! Which GPUs and storage make up each rental, as the rental diff of [`super::rental`] needs it:
//! the parsed poll ([`PollInput`], `clients`), how started GPUs split into new rentals (by
//! contiguous blocks, then by the counters), which released rentals pause or end, and which
//! stored rentals a disk drop freed.
//!
//! Pure searches over the values handed in; it keeps no state and emits no events.

use super::{finite_non_negative, Class, Counters, GpuType, Rates, DISK_TOLERANCE_GB};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Above this many candidates the pause/end and disk matching searches fall back to greedy rules.
const MAX_EXHAUSTIVE: usize = 12;

/// GPU indices and storage that `clients` names for one contract (its shape is undocumented).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClientGpus {
    pub gpus: Vec<u32>,
    pub storage_gb: Option<f64>,
}

/// Reads `clients` leniently, like vast-monitor: GPU indices from the longest integer list under
/// a key naming gpu/device/idx/index/slot (not util/usage/percent), storage from the largest
/// positive number under a key naming stor/disk/volume (not price/cost/rate/bandwidth/util/usage).
pub(crate) fn parse_clients(clients: Option<&Value>) -> Vec<ClientGpus> {
    let Some(Value::Array(items)) = clients else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(obj) = item else { continue };
        let mut gpus: Vec<u32> = Vec::new();
        let mut storage: Option<f64> = None;
        for (key, value) in obj {
            let k = key.to_ascii_lowercase();
            let names_gpus = ["gpu", "device", "idx", "index", "slot"]
                .iter()
                .any(|w| k.contains(w))
                && !["util", "usage", "percent"].iter().any(|w| k.contains(w));
            let names_storage = ["stor", "disk", "volume"].iter().any(|w| k.contains(w))
                && !["price", "cost", "rate", "bandwidth", "util", "usage"]
                    .iter()
                    .any(|w| k.contains(w));
            if names_gpus {
                if let Value::Array(list) = value {
                    let ints: Option<Vec<u32>> = list
                        .iter()
                        .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                        .collect();
                    if let Some(ints) = ints {
                        if ints.len() > gpus.len() {
                            gpus = ints;
                        }
                    }
                }
            } else if names_storage {
                if let Some(gb) = finite_non_negative(value.as_f64()).filter(|g| *g > 0.0) {
                    storage = Some(storage.map_or(gb, |s: f64| s.max(gb)));
                }
            }
        }
        gpus.sort_unstable();
        gpus.dedup();
        if !gpus.is_empty() {
            out.push(ClientGpus {
                gpus,
                storage_gb: storage,
            });
        }
    }
    out
}

/// One parsed poll, as the rental diff needs it.
pub(crate) struct PollInput<'r> {
    pub slots: &'r [Option<GpuType>],
    pub old: Counters,
    pub new: Counters,
    /// `alloc_disk_space` before and now (absent = nothing allocated).
    pub old_disk: Option<f64>,
    pub new_disk: Option<f64>,
    pub rates: Rates,
    pub clients: Vec<ClientGpus>,
}

impl PollInput<'_> {
    pub(crate) fn slot(&self, gpu: u32) -> Option<GpuType> {
        self.slots.get(gpu as usize).copied().flatten()
    }

    pub(crate) fn client_storage(&self, gpus: &[u32]) -> Option<f64> {
        self.clients
            .iter()
            .find(|c| c.gpus == gpus)
            .and_then(|c| c.storage_gb)
    }
}

/// A rental the poll creates: its type, GPUs and storage named by `clients`, if any.
pub(crate) struct Planned {
    pub gpu_type: GpuType,
    pub gpus: Vec<u32>,
    pub client_storage: Option<f64>,
}

/// Occupied GPUs not held by a running rental, grouped by token type, indices ascending.
pub(crate) fn started_groups(
    input: &PollInput,
    held: &BTreeSet<u32>,
) -> BTreeMap<GpuType, Vec<u32>> {
    let mut groups: BTreeMap<GpuType, Vec<u32>> = BTreeMap::new();
    for (i, slot) in input.slots.iter().enumerate() {
        let gpu = i as u32;
        if let Some(t) = slot {
            if !held.contains(&gpu) {
                groups.entry(*t).or_default().push(gpu);
            }
        }
    }
    groups
}

/// Splits started GPU groups into new rentals (module docs, rule 5). `need(class)` is how many
/// rentals of the class the counters say must start; the result is ordered by first GPU index.
pub(crate) fn plan_new_rentals(
    groups: BTreeMap<GpuType, Vec<u32>>,
    input: &PollInput,
    need: impl Fn(Class) -> i64,
) -> Vec<Planned> {
    let mut planned: Vec<Planned> = Vec::new();
    for class in [Class::OnDemand, Class::Other] {
        let mut rest: Vec<(GpuType, Vec<u32>)> = Vec::new();
        let mut carved = 0i64;
        for (&gpu_type, gpus) in groups.iter().filter(|(t, _)| t.class() == class) {
            let mut remaining = gpus.clone();
            for client in &input.clients {
                if client.gpus.iter().all(|g| remaining.contains(g)) {
                    remaining.retain(|g| !client.gpus.contains(g));
                    carved += 1;
                    planned.push(Planned {
                        gpu_type,
                        gpus: client.gpus.clone(),
                        client_storage: client.storage_gb,
                    });
                }
            }
            if !remaining.is_empty() {
                rest.push((gpu_type, remaining));
            }
        }
        // GPUs separated by a gap (idle, another type, held or carved) are never one rental.
        let runs: Vec<(GpuType, Vec<u32>)> = rest
            .into_iter()
            .flat_map(|(gpu_type, gpus)| {
                contiguous_runs(&gpus)
                    .into_iter()
                    .map(move |run| (gpu_type, run))
            })
            .collect();
        if runs.is_empty() {
            continue;
        }
        let total_gpus: i64 = runs.iter().map(|(_, g)| g.len() as i64).sum();
        let k_total = (need(class) - carved).clamp(runs.len() as i64, total_gpus);
        let lengths: Vec<usize> = runs.iter().map(|(_, g)| g.len()).collect();
        let pieces = share_extra_rentals(&lengths, (k_total - runs.len() as i64) as usize);
        for ((gpu_type, gpus), k) in runs.into_iter().zip(pieces) {
            for chunk in split_even(&gpus, k) {
                planned.push(Planned {
                    gpu_type,
                    gpus: chunk,
                    client_storage: None,
                });
            }
        }
    }
    planned.sort_by_key(|p| p.gpus.first().copied());
    planned
}

/// Sorted indices cut where they are not consecutive: `[0, 1, 3, 4, 5]` -> `[[0, 1], [3, 4, 5]]`.
pub(crate) fn contiguous_runs(gpus: &[u32]) -> Vec<Vec<u32>> {
    let mut runs: Vec<Vec<u32>> = Vec::new();
    for &gpu in gpus {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|&last| last + 1 == gpu) => run.push(gpu),
            _ => runs.push(vec![gpu]),
        }
    }
    runs
}

/// How many rentals each run of `lengths` GPUs becomes when the counters say `extra` more
/// rentals started than there are runs: each extra one splits the run whose pieces are largest
/// (the first such run on a tie), never below one GPU per rental.
pub(crate) fn share_extra_rentals(lengths: &[usize], extra: usize) -> Vec<usize> {
    let mut pieces = vec![1usize; lengths.len()];
    for _ in 0..extra {
        let largest = (0..lengths.len())
            .filter(|&i| pieces[i] < lengths[i])
            .max_by_key(|&i| (lengths[i].div_ceil(pieces[i]), std::cmp::Reverse(i)));
        match largest {
            Some(i) => pieces[i] += 1,
            None => break,
        }
    }
    pieces
}

/// Cuts sorted indices into `k` contiguous chunks as even as possible, larger chunks first.
pub(crate) fn split_even(gpus: &[u32], k: usize) -> Vec<Vec<u32>> {
    let k = k.clamp(1, gpus.len().max(1));
    let base = gpus.len() / k;
    let bigger = gpus.len() % k;
    let mut out = Vec::with_capacity(k);
    let mut at = 0;
    for c in 0..k {
        let size = base + usize::from(c < bigger);
        out.push(gpus[at..at + size].to_vec());
        at += size;
    }
    out
}

/// Decides pause (true) or end (false) for each released rental (module docs, rule 3). Budgets are
/// decremented by the pauses chosen.
pub(crate) fn choose_pauses(
    candidates: &[(Class, f64)],
    budget_d: &mut i64,
    budget_n: &mut i64,
    drop: f64,
) -> Vec<bool> {
    let m = candidates.len();
    let mut choice = vec![false; m];
    if m == 0 {
        return choice;
    }
    if m > MAX_EXHAUSTIVE {
        // vast-monitor's rule: pause while the class budget lasts and the disk did not move.
        for (k, (class, _)) in candidates.iter().enumerate() {
            let budget = if *class == Class::OnDemand {
                &mut *budget_d
            } else {
                &mut *budget_n
            };
            if *budget > 0 && drop < DISK_TOLERANCE_GB {
                *budget -= 1;
                choice[k] = true;
            }
        }
        return choice;
    }
    let mut best: Option<(f64, u32, u32)> = None;
    for mask in 0u32..(1 << m) {
        let (mut pd, mut pn, mut ended) = (0i64, 0i64, 0.0f64);
        for (k, (class, storage)) in candidates.iter().enumerate() {
            if mask & (1 << k) != 0 {
                match class {
                    Class::OnDemand => pd += 1,
                    Class::Other => pn += 1,
                }
            } else {
                ended += storage;
            }
        }
        if pd > *budget_d || pn > *budget_n {
            continue;
        }
        let mut cost = (ended - drop).abs();
        if cost < DISK_TOLERANCE_GB {
            cost = 0.0;
        }
        let pauses = mask.count_ones();
        let better = match best {
            None => true,
            Some((c, p, _)) => cost < c - 1e-9 || ((cost - c).abs() <= 1e-9 && pauses > p),
        };
        if better {
            best = Some((cost, pauses, mask));
        }
    }
    if let Some((_, _, mask)) = best {
        for (k, (class, _)) in candidates.iter().enumerate() {
            if mask & (1 << k) != 0 {
                choice[k] = true;
                match class {
                    Class::OnDemand => *budget_d -= 1,
                    Class::Other => *budget_n -= 1,
                }
            }
        }
    }
    choice
}

/// Which stored rentals a disk drop of `drop` GB released (module docs, rule 6): the single best
/// match within the tolerance, else the smallest set whose sizes sum to it; positions in `sizes`.
pub(crate) fn match_storage(sizes: &[f64], drop: f64) -> Vec<usize> {
    let best_single = sizes
        .iter()
        .enumerate()
        .filter(|(_, s)| **s > 0.0)
        .map(|(k, s)| (k, (s - drop).abs()))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((k, err)) = best_single {
        if err < DISK_TOLERANCE_GB {
            return vec![k];
        }
    }
    let positive: Vec<usize> = (0..sizes.len()).filter(|&k| sizes[k] > 0.0).collect();
    if positive.len() < 2 || positive.len() > MAX_EXHAUSTIVE {
        return Vec::new();
    }
    let mut best: Option<(u32, u32)> = None;
    for mask in 1u32..(1 << positive.len()) {
        let sum: f64 = (0..positive.len())
            .filter(|b| mask & (1 << b) != 0)
            .map(|b| sizes[positive[b]])
            .sum();
        if (sum - drop).abs() < DISK_TOLERANCE_GB {
            let members = mask.count_ones();
            if best.is_none_or(|(n, _)| members < n) {
                best = Some((members, mask));
            }
        }
    }
    best.map(|(_, mask)| {
        (0..positive.len())
            .filter(|b| mask & (1 << b) != 0)
            .map(|b| positive[b])
            .collect()
    })
    .unwrap_or_default()
}
