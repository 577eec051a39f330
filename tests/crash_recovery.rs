//! `kill -9` at random moments: the real binary is killed with SIGKILL while a scenario runs
//! against the simulated cloud, restarted, and in the end the file target holds every expected
//! event exactly once per id (a re-delivery repeats the same id; nothing is lost or invented).

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/events.rs"]
mod events;

use daemon::{write_main_config, Daemon};
use events::{read_events, unique};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vast_supervisor::sim::{MachineSpec, RentalKind, SimCloud, SimHandle};

async fn wait_for_count(path: &Path, kind: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = unique(read_events(path))
            .iter()
            .filter(|e| e.kind.as_str() == kind)
            .count();
        if n >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} x {kind}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn write_config(dir: &Path, sim: &SimHandle, out: &Path) -> PathBuf {
    let config = write_main_config(dir, "");
    std::fs::write(
        config.join("conf.d/10-acme.toml"),
        format!(
            "[[account]]\nname = \"acme\"\napi_key = \"KEY-ACME-123\"\napi_url = \"{}\"\n\n[[target]]\nname = \"log\"\nurl = \"file://{}\"\n",
            sim.base_url().as_str().trim_end_matches('/'),
            out.display()
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-ACME-123", "acme");
    sim.add_machine("acme", MachineSpec::new(101, "rig-1", 4, "RTX 4090"))
        .unwrap();
    sim.add_machine("acme", MachineSpec::new(102, "rig-2", 4, "RTX 4090"))
        .unwrap();
    let config = write_config(dir.path(), &sim, &out);
    let mut daemon = Daemon::new(
        config,
        &[
            "--test-poll-interval",
            "100ms",
            "--test-offline-grace",
            "300ms",
        ],
    );
    daemon.start();
    wait_for_count(&out, "startup_summary", 1).await;

    // Each step changes something that stays changed, so a restarted daemon must detect it
    // against its stored state; (kind, cumulative count) is what the file must show after it.
    type Step = (&'static str, usize, Box<dyn Fn(&SimHandle)>);
    let steps: Vec<Step> = vec![
        (
            "rental_start",
            1,
            Box::new(|s| {
                s.start_rental("acme", 101, "r1", vec![0u32, 1], RentalKind::OnDemand, 50.0)
                    .unwrap()
            }),
        ),
        (
            "rental_start",
            2,
            Box::new(|s| {
                s.start_rental(
                    "acme",
                    102,
                    "r2",
                    vec![0u32],
                    RentalKind::Interruptible,
                    10.0,
                )
                .unwrap()
            }),
        ),
        (
            "rental_pause",
            1,
            Box::new(|s| s.pause_rental("acme", 101, "r1").unwrap()),
        ),
        (
            "rental_resume",
            1,
            Box::new(|s| s.resume_rental("acme", 101, "r1").unwrap()),
        ),
        (
            "rental_preempt",
            1,
            Box::new(|s| {
                s.preempt("acme", 102, "r2", "r3", RentalKind::OnDemand, 20.0)
                    .unwrap()
            }),
        ),
        (
            "rental_end",
            1,
            Box::new(|s| s.end_rental("acme", 101, "r1").unwrap()),
        ),
        (
            "rental_end",
            2,
            Box::new(|s| s.end_rental("acme", 102, "r3").unwrap()),
        ),
        (
            "machine_unlisted",
            1,
            Box::new(|s| s.set_listed(101, false).unwrap()),
        ),
        (
            "machine_verification",
            1,
            Box::new(|s| s.set_verification(102, "deverified").unwrap()),
        ),
        (
            "rental_end",
            3,
            Box::new(|s| s.end_rental("acme", 102, "r2").unwrap()),
        ),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut kills = 0;
    for (kind, count, apply) in &steps {
        apply(&sim);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..250))).await;
        if rng.gen_bool(0.6) {
            daemon.kill9();
            kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
            daemon.start();
        }
        wait_for_count(&out, kind, *count).await;
    }
    daemon.terminate();
    assert!(
        kills >= 3,
        "the seed kills the daemon several times ({kills})"
    );

    let all = read_events(&out);
    let events = unique(all.clone());
    let lifecycle: Vec<&str> = events
        .iter()
        .filter(|e| e.account.is_some())
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        lifecycle,
        [
            "rental_start",
            "rental_start",
            "rental_pause",
            "rental_resume",
            "rental_preempt",
            "rental_start",
            "rental_end",
            "rental_end",
            "machine_unlisted",
            "machine_verification",
            "rental_end"
        ],
        "every change exactly once, in order"
    );
    // Re-deliveries after a kill repeat the same id with the same content.
    for e in &all {
        let first = events.iter().find(|u| u.id == e.id).unwrap();
        assert_eq!(first, e, "a re-delivered event is identical");
    }
    sim.shutdown();
}
