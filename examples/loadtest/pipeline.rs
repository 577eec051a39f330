//! The daemon's per-poll work on one thread, without HTTP or actors: JSON decoding of a machine
//! list, the pure detection core, the state encoding and the store commit (SPEC §10 throughput:
//! "JSON decode + detection + commit"). Shared by `loadtest pipeline` and the criterion benches
//! (`benches/pipeline.rs`), so both measure the same bodies and the same steps.

#![allow(dead_code)] // the example and the benches use different parts

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::{Duration, Instant};
use vast_supervisor::detect::{self, Adoption, MachineRules, MachineState, Observation};
use vast_supervisor::sim::{MachineSpec, RentalKind, SimCloud};
use vast_supervisor::store::{Commit, Store};
use vast_supervisor::vast::{Machine, MachineList};

pub const ACCOUNT: &str = "bench";

/// Two bodies of the same machine list as the simulator serves them: `quiet` (a third of the
/// machines rented) and `busy` (the same, plus a rental on every tenth machine). Alternating them
/// makes every tenth observation a rental start or end.
pub struct Bodies {
    pub machines: usize,
    pub quiet: Vec<u8>,
    pub busy: Vec<u8>,
}

/// Builds the bodies with the simulator (its rows are real Vast rows, 65 fields each).
pub fn bodies(machines: usize) -> anyhow::Result<Bodies> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sim = SimCloud::start("127.0.0.1:0".parse()?).await?;
        sim.add_account("KEY-BENCH", ACCOUNT);
        let ids: Vec<u64> = (0..machines as u64).map(|m| 700_000 + m).collect();
        for (m, id) in ids.iter().enumerate() {
            sim.add_machine(
                ACCOUNT,
                MachineSpec::new(*id, &format!("bench-rig-{m:03}"), 4, "RTX 4090"),
            )?;
            if m % 3 == 0 {
                sim.start_rental(ACCOUNT, *id, "pre", 2u32, RentalKind::OnDemand, 40.0)?;
            }
        }
        let list = |sim: &vast_supervisor::sim::SimHandle| -> anyhow::Result<Vec<u8>> {
            let rows: Vec<serde_json::Value> =
                ids.iter().filter_map(|id| sim.machine_row(*id)).collect();
            Ok(serde_json::to_vec(
                &serde_json::json!({ "machines": rows }),
            )?)
        };
        let quiet = list(&sim)?;
        for id in ids.iter().step_by(10) {
            sim.start_rental(ACCOUNT, *id, "busy", 1u32, RentalKind::OnDemand, 10.0)?;
        }
        let busy = list(&sim)?;
        sim.shutdown();
        Ok(Bodies {
            machines,
            quiet,
            busy,
        })
    })
}

pub fn decode(body: &[u8]) -> Vec<Machine> {
    vast_supervisor::vast::from_body::<MachineList>(body)
        .expect("the simulator serves valid machine lists")
        .machines
}

/// The state of every machine, as the machine actors hold it.
pub struct Fleet {
    pub rules: MachineRules,
    pub states: Vec<Option<MachineState>>,
}

impl Fleet {
    pub fn new(machines: usize) -> Fleet {
        Fleet {
            rules: MachineRules::default(),
            states: vec![None; machines],
        }
    }

    /// Runs the detection core on every row; returns the commits (state JSON + events), the
    /// machine summaries the account actor keeps for status, and the number of events.
    pub fn observe(
        &mut self,
        rows: &[Machine],
        now: DateTime<Utc>,
    ) -> (
        Vec<(MachineState, Vec<vast_supervisor::event::Event>)>,
        usize,
    ) {
        let obs = Observation {
            account: ACCOUNT,
            now,
            rules: &self.rules,
        };
        let mut events = 0;
        let out = rows
            .iter()
            .zip(&self.states)
            .map(|(row, prev)| {
                let adoption = if prev.is_none() {
                    Adoption::FirstStart
                } else {
                    Adoption::Running
                };
                let (state, evs) = detect::observe_machine(prev.as_ref(), row, &obs, adoption);
                events += evs.len();
                (state, evs)
            })
            .collect();
        (out, events)
    }
}

/// Time spent in each step, summed over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineReport {
    pub machines: usize,
    pub polls: usize,
    pub observations: u64,
    pub events: u64,
    pub seconds: f64,
    pub observations_per_s: f64,
    pub decode_s: f64,
    pub detect_s: f64,
    pub encode_s: f64,
    pub summary_s: f64,
    pub commit_s: f64,
    pub body_bytes: usize,
}

/// `polls` polls of one account on this thread, each committed in one transaction like the
/// store's group commit does. The clock advances 30 s per poll.
pub fn run(
    bodies: &Bodies,
    polls: usize,
    store_path: &std::path::Path,
) -> anyhow::Result<PipelineReport> {
    let mut store = Store::open(store_path)?;
    let mut fleet = Fleet::new(bodies.machines);
    let mut report = PipelineReport {
        machines: bodies.machines,
        polls,
        body_bytes: bodies.quiet.len(),
        ..PipelineReport::default()
    };
    let mut now = Utc::now();
    let started = Instant::now();
    let mut spent = [Duration::ZERO; 5];
    for poll in 0..polls {
        let body = if poll % 2 == 0 {
            &bodies.quiet
        } else {
            &bodies.busy
        };
        let t = Instant::now();
        let rows = decode(body);
        spent[0] += t.elapsed();

        let t = Instant::now();
        let (observed, events) = fleet.observe(&rows, now);
        spent[1] += t.elapsed();

        let t = Instant::now();
        let mut commits = Vec::with_capacity(observed.len());
        let mut states = Vec::with_capacity(observed.len());
        for (state, events) in observed {
            commits.push(Commit {
                account: ACCOUNT.to_string(),
                kind: "machine",
                id: state.machine_id.to_string(),
                state: Some(serde_json::to_string(&state)?),
                events,
            });
            states.push(state);
        }
        spent[2] += t.elapsed();

        let t = Instant::now();
        let summaries: Vec<detect::MachineSummary> =
            states.iter().map(detect::machine_summary).collect();
        std::hint::black_box(summaries);
        spent[3] += t.elapsed();

        let t = Instant::now();
        store.apply(&commits, now)?;
        spent[4] += t.elapsed();

        fleet.states = states.into_iter().map(Some).collect();
        report.events += events as u64;
        report.observations += rows.len() as u64;
        now += chrono::Duration::seconds(30);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.observations_per_s = report.observations as f64 / report.seconds;
    [
        report.decode_s,
        report.detect_s,
        report.encode_s,
        report.summary_s,
        report.commit_s,
    ] = spent.map(|d| d.as_secs_f64());
    Ok(report)
}
