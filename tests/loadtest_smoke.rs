//! The load harness of `examples/loadtest`, small: 3 accounts x 5 machines for a few seconds
//! against the real binary. Checks that the harness runs end to end and measures something
//! sane (every change reached the webhook, nothing else did, every figure was taken); the
//! figures themselves are judged in docs/BENCHMARKS.md, never here.

#[path = "../examples/loadtest/harness.rs"]
mod harness;

use harness::{Launcher, LoadSpec};
use std::path::PathBuf;

#[test]
fn load_harness_measures_a_small_fleet() {
    let launcher = Launcher {
        program: PathBuf::from(env!("CARGO_BIN_EXE_vast-supervisor")),
        leading_args: Vec::new(),
    };
    let spec = LoadSpec::smoke();
    let r = harness::run(&spec, &launcher).expect("the load run completes");

    assert_eq!(r.machines_total, 15);
    assert!(r.ready_ms > 0.0);
    assert!(r.first_request_ms <= r.all_first_polls_ms);
    assert!(
        r.startup_summary_ms.is_some(),
        "the startup summary was written"
    );

    assert!(r.changes >= 3, "the driver made changes ({})", r.changes);
    assert_eq!(r.delivered, r.changes, "every change reached the webhook");
    assert!(r.unexpected.is_empty(), "false events: {:?}", r.unexpected);
    assert_eq!(r.pipeline_latency_ms.n, r.changes);
    assert!(r.pipeline_latency_ms.p50 <= r.pipeline_latency_ms.max);
    assert!(
        r.pipeline_latency_ms.p50 <= r.change_latency_ms.p50,
        "the pipeline is part of the whole latency"
    );

    assert!(r.observations > 0 && r.observations_per_s > 0.0);
    assert!(r.requests_by_route.contains_key("machines"));
    assert!(r.requests_by_route.contains_key("instances_v1"));
    assert!(r.rss_mib > 1.0 && r.hwm_mib >= r.rss_mib, "RSS {r:?}");
    assert!(r.cpu_fraction >= 0.0 && r.startup_cpu_s >= 0.0);
    assert!(r.status_ms.n > 0 && r.status_bytes > 0);
    let dashboard = r.dashboard.as_ref().expect("the dashboard was measured");
    assert_eq!(dashboard.paths.len(), 8);
    assert!(dashboard.paths.iter().all(|p| p.ms.n > 0 && p.bytes > 0));
    assert!(r.reload_unchanged_ms.is_some() && r.reload_all_changed_ms.is_some());
    assert!(
        r.reload_lines.iter().any(|l| l.contains("acct-000")),
        "the second reload restarted the changed accounts: {:?}",
        r.reload_lines
    );
}
