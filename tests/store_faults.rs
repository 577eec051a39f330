//! State database faults with the real binary (issue 11 item 2): a full disk (the daemon's file
//! size limit set to 0 from outside, so every write fails with EFBIG) and a damaged page found at
//! start-up. Both are seen (a `state_failing` event, `/health` 503, the account degraded, a
//! metric), survived (the daemon goes on) and lose nothing: every change made while the disk was
//! full, also one that came and went, is reported once it clears; a target whose delivery
//! position was damaged delivers again. A clean stop leaves `state.db` complete on its own.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/state_db.rs"]
mod state_db;

use daemon::{write_main_config, Daemon};
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vast_supervisor::sim::targets::FakeServices;
use vast_supervisor::sim::{MachineSpec, RentalKind, SimCloud, SimHandle};

const POLL: Duration = Duration::from_millis(100);

/// One event the webhook received.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    kind: String,
    machine: Option<u64>,
    json: serde_json::Value,
}

fn got(fake: &FakeServices) -> Vec<Got> {
    fake.received()
        .into_iter()
        .filter(|r| r.path == "/hook")
        .filter_map(|r| r.json())
        .map(|json| Got {
            id: json["id"].as_str().unwrap_or_default().to_string(),
            kind: json["kind"].as_str().unwrap_or_default().to_string(),
            machine: (json["subject"]["type"] == "machine")
                .then(|| json["subject"]["id"].as_u64())
                .flatten(),
            json,
        })
        .collect()
}

fn unique(all: Vec<Got>) -> Vec<Got> {
    let mut seen = HashSet::new();
    all.into_iter()
        .filter(|g| seen.insert(g.id.clone()))
        .collect()
}

/// The kinds of the events about `machine`, once each, in arrival order.
fn machine_kinds(fake: &FakeServices, machine: u64) -> Vec<String> {
    unique(got(fake))
        .into_iter()
        .filter(|g| g.machine == Some(machine))
        .map(|g| g.kind)
        .collect()
}

async fn wait_until(what: &str, secs: u64, mut pred: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !pred() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn status_json(config: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vast-supervisor"))
        .arg("--config")
        .arg(config)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "status: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn setup(dir: &Path, port: u16) -> (SimHandle, FakeServices, std::path::PathBuf) {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-ACME-77", "acme");
    for id in [301, 302, 303] {
        sim.add_machine(
            "acme",
            MachineSpec::new(id, &format!("rig-{id}"), 2, "RTX 4090"),
        )
        .unwrap();
    }
    let fake = FakeServices::start().await;
    let config = write_main_config(dir, &format!("http_listen = \"127.0.0.1:{port}\"\n"));
    std::fs::write(
        config.join("conf.d/10-acme.toml"),
        format!(
            "[[account]]\nname = \"acme\"\napi_key = \"KEY-ACME-77\"\napi_url = \"{}\"\n\n\
             [[target]]\nname = \"hook\"\nurl = \"json://{}/hook\"\n",
            sim.base_url().as_str().trim_end_matches('/'),
            fake.addr()
        ),
    )
    .unwrap();
    (sim, fake, config)
}

/// The daemon of `config`, once its startup summary reached the webhook.
async fn start(config: &Path, fake: &FakeServices) -> Daemon {
    let mut daemon = Daemon::new(config.to_path_buf(), &["--test-poll-interval", "100ms"]);
    daemon.start();
    wait_until("startup_summary", 20, || {
        got(fake).iter().any(|g| g.kind == "startup_summary")
    })
    .await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_survived_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = daemon::free_port();
    let (sim, fake, config) = setup(dir.path(), port).await;
    let mut daemon = start(&config, &fake).await;

    daemon.limit_file_size(Some(0));
    sim.start_rental("acme", 301, "r1", vec![0u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    sim.set_error(303, Some("GPU 0 fell off the bus")).unwrap();
    wait_until("state_failing, straight from memory", 20, || {
        got(&fake)
            .iter()
            .any(|g| g.kind == "state_failing" && g.json["data"]["reason"] == "commit_failed")
    })
    .await;
    // A rental that comes and goes while the disk is full.
    sim.start_rental("acme", 302, "r2", vec![1u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    tokio::time::sleep(POLL * 6).await;
    sim.end_rental("acme", 302, "r2").unwrap();
    tokio::time::sleep(POLL * 6).await;

    let (code, body) = get(port, "/health").await;
    assert_eq!(code, 503, "/health while commits fail: {body}");
    assert!(body.contains("\"state_store\":\"failing\""), "{body}");
    let (_, metrics) = get(port, "/metrics").await;
    let failures: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vast_supervisor_state_commit_failures_total "))
        .expect("the failed-commit counter")
        .parse()
        .unwrap();
    assert!(failures >= 1.0, "{metrics}");
    assert!(metrics.contains("vast_supervisor_state_failing 1\n"));
    let status = status_json(&config);
    assert_eq!(status["accounts"][0]["state"], "degraded", "{status}");
    assert_eq!(status["state_store"]["state"], "failing", "{status}");
    assert!(
        machine_kinds(&fake, 302).is_empty(),
        "nothing of the window is delivered before it is stored"
    );

    daemon.limit_file_size(None);
    wait_until("every change of the window", 30, || {
        machine_kinds(&fake, 301) == ["rental_start"]
            && machine_kinds(&fake, 302) == ["rental_start", "rental_end"]
            && machine_kinds(&fake, 303) == ["machine_error"]
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while get(port, "/health").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "/health 200 again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("status ok again", 10, || {
        status_json(&config)["accounts"][0]["state"] == "ok"
    })
    .await;
    let failing: Vec<Got> = unique(got(&fake))
        .into_iter()
        .filter(|g| g.kind == "state_failing")
        .collect();
    assert_eq!(failing.len(), 1, "one warning for the window: {failing:?}");
    daemon.terminate();
    sim.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_cursor_page_is_repaired_and_delivery_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = daemon::free_port();
    let (sim, fake, config) = setup(dir.path(), port).await;
    let mut daemon = start(&config, &fake).await;
    sim.start_rental("acme", 301, "r1", vec![0u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    wait_until("rental_start", 20, || {
        machine_kinds(&fake, 301) == ["rental_start"]
    })
    .await;
    daemon.terminate();
    let db = dir.path().join("state/state.db");
    // A clean stop checkpoints: the database file alone holds everything.
    let wal = dir.path().join("state/state.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the write-ahead log is empty after a clean stop"
    );
    state_db::corrupt_root_page(&db, "cursors");
    let before = got(&fake).len();

    daemon.start();
    wait_until("the repair is reported", 20, || {
        got(&fake)
            .iter()
            .any(|g| g.kind == "state_failing" && g.json["data"]["reason"] == "corrupt")
    })
    .await;
    sim.end_rental("acme", 301, "r1").unwrap();
    wait_until("delivery goes on after the repair", 20, || {
        machine_kinds(&fake, 301) == ["rental_start", "rental_end"]
    })
    .await;
    assert!(got(&fake).len() > before);
    // Re-delivered events (the position was lost) carry the same id and the same event.
    let all = got(&fake);
    for g in &all {
        let first = all.iter().find(|f| f.id == g.id).unwrap();
        assert_eq!(first.json, g.json, "a re-delivered id is the same event");
    }
    let status = status_json(&config);
    assert_eq!(status["targets"][0]["state"], "ok", "{status}");
    assert_eq!(status["state_store"]["repairs"], 1, "{status}");
    let aside: Vec<String> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.db.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged file is kept: {aside:?}");
    daemon.terminate();
    sim.shutdown();
}
