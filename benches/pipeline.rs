//! Criterion benchmarks of the per-observation work (SPEC §10 throughput: JSON decode +
//! detection + commit) on one account's machine list of 50 real-shaped rows, as the simulator
//! serves them. `cargo bench --bench pipeline`; docs/BENCHMARKS.md has the figures.
//!
//! The bodies and the steps come from `examples/loadtest/pipeline.rs`, so these numbers and
//! `loadtest pipeline` measure the same thing.

#[path = "../examples/loadtest/pipeline.rs"]
mod pipeline;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use vast_supervisor::store::{Commit, Store};

const MACHINES: usize = 50;

fn benches(c: &mut Criterion) {
    let bodies = pipeline::bodies(MACHINES).expect("the simulator builds the bodies");
    let quiet_rows = pipeline::decode(&bodies.quiet);
    let busy_rows = pipeline::decode(&bodies.busy);
    let now = Utc::now();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(MACHINES as u64));
    g.bench_function("machine_list_50", |b| {
        b.iter(|| pipeline::decode(black_box(&bodies.quiet)))
    });
    // The floor: parsing the same bytes while keeping nothing.
    g.bench_function("machine_list_50_parse_only", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&bodies.quiet)).unwrap()
        })
    });
    g.bench_function("machine_list_50_as_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&bodies.quiet)).unwrap())
    });
    g.finish();

    // A fleet that has seen the quiet list once: observing it again changes nothing but
    // `last_seen`; observing the busy list starts a rental on every tenth machine.
    let mut fleet = pipeline::Fleet::new(MACHINES);
    let (first, _) = fleet.observe(&quiet_rows, now);
    fleet.states = first.into_iter().map(|(s, _)| Some(s)).collect();
    let later = now + chrono::Duration::seconds(30);

    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(MACHINES as u64));
    g.bench_function("observe_50_unchanged", |b| {
        b.iter(|| fleet.observe(black_box(&quiet_rows), later))
    });
    g.bench_function("observe_50_with_5_rental_starts", |b| {
        b.iter(|| fleet.observe(black_box(&busy_rows), later))
    });
    g.finish();

    let (observed, _) = fleet.observe(&busy_rows, later);
    let states: Vec<_> = observed.iter().map(|(s, _)| s.clone()).collect();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(MACHINES as u64));
    g.bench_function("machine_state_json_50", |b| {
        b.iter(|| {
            black_box(&states)
                .iter()
                .map(|s| serde_json::to_string(s).unwrap())
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("machine_summary_50", |b| {
        b.iter(|| {
            black_box(&states)
                .iter()
                .map(vast_supervisor::detect::machine_summary)
                .collect::<Vec<_>>()
        })
    });
    g.finish();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = Store::open(&dir.path().join("state.db")).expect("the store opens");
    let commits: Vec<Commit> = observed
        .iter()
        .map(|(s, events)| Commit {
            account: pipeline::ACCOUNT.into(),
            kind: "machine",
            id: s.machine_id.to_string(),
            state: Some(serde_json::to_string(s).unwrap()),
            events: events.clone(),
        })
        .collect();
    let mut g = c.benchmark_group("commit");
    g.throughput(Throughput::Elements(MACHINES as u64));
    // States only (the steady state: every observation moves `last_seen`).
    let states_only: Vec<Commit> = commits
        .iter()
        .map(|c| Commit {
            events: Vec::new(),
            ..c.clone()
        })
        .collect();
    g.bench_function("store_apply_50_states", |b| {
        b.iter(|| store.apply(black_box(&states_only), now).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(MACHINES as u64));
    g.bench_function("poll_50_decode_detect_encode_commit", |b| {
        let mut fleet = pipeline::Fleet::new(MACHINES);
        let mut at = now;
        let mut flip = false;
        b.iter_batched(
            || {
                flip = !flip;
                at += chrono::Duration::seconds(30);
                (if flip { &bodies.busy } else { &bodies.quiet }, at)
            },
            |(body, at)| {
                let rows = pipeline::decode(body);
                let (observed, _) = fleet.observe(&rows, at);
                let mut commits = Vec::with_capacity(observed.len());
                let mut states = Vec::with_capacity(observed.len());
                for (state, events) in observed {
                    commits.push(Commit {
                        account: pipeline::ACCOUNT.into(),
                        kind: "machine",
                        id: state.machine_id.to_string(),
                        state: Some(serde_json::to_string(&state).unwrap()),
                        events,
                    });
                    states.push(Some(state));
                }
                store.apply(&commits, at).unwrap();
                fleet.states = states;
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = pipeline_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(pipeline_benches);
