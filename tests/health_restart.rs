//! The account's health survives the daemon: the real binary watches an account of the simulated
//! cloud whose API fails (502, then 401), is killed with SIGKILL in the middle of each outage and
//! restarted, and is reloaded (SIGHUP) with the account's file changed, which restarts the account
//! actor. Across all runs the file target must hold exactly one `account_stale` and one
//! `account_auth_failed`, each followed by exactly one `account_restored` naming the state it
//! ends. An account removed from the configuration during an outage (by a reload, or while the
//! daemon was down) forgets it: added again, it announces no restore of an outage it no longer
//! watched, and a new outage is alerted afresh.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/events.rs"]
mod events;

use daemon::{write_main_config, Daemon};
use events::{read_events, unique, wait_for};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vast_supervisor::event::Event;
use vast_supervisor::sim::{Fault, FaultDuration, MachineSpec, SimCloud, SimHandle};

const POLL: Duration = Duration::from_millis(100);

fn count(out: &Path, kind: &str) -> usize {
    unique(read_events(out))
        .iter()
        .filter(|e| e.kind.as_str() == kind)
        .count()
}

/// Waits (20 s at most) until the file holds `n` distinct events of `kind`.
async fn wait_for_count(out: &Path, kind: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while count(out, kind) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {n} x {kind}; the file holds {:?}",
            account_kinds(out, "acme")
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Lets enough polls pass for a wrong event to show up.
async fn settle() {
    tokio::time::sleep(POLL * 15).await;
}

fn account_events(out: &Path, account: &str) -> Vec<Event> {
    unique(read_events(out))
        .into_iter()
        .filter(|e| e.account.as_deref() == Some(account))
        .collect()
}

fn account_kinds(out: &Path, account: &str) -> Vec<String> {
    account_events(out, account)
        .iter()
        .map(|e| e.kind.to_string())
        .collect()
}

/// A configuration directory: the main file, `conf.d/90-target.toml` with the file target, and
/// (see [`write_account`]) `conf.d/10-acme.toml`.
fn write_config(dir: &Path, out: &Path) -> PathBuf {
    let config = write_main_config(dir, "");
    std::fs::write(
        config.join("conf.d/90-target.toml"),
        format!(
            "[[target]]\nname = \"log\"\nurl = \"file://{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    config
}

fn account_file(config: &Path) -> PathBuf {
    config.join("conf.d/10-acme.toml")
}

/// Writes the account's file; `extra` lines make a changed version of it.
fn write_account(config: &Path, sim: &SimHandle, extra: &str) {
    std::fs::write(
        account_file(config),
        format!(
            "[[account]]\nname = \"acme\"\napi_key = \"KEY-ACME-123\"\napi_url = \"{}\"\n{extra}",
            sim.base_url().as_str().trim_end_matches('/')
        ),
    )
    .unwrap();
}

async fn start_sim() -> SimHandle {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-ACME-123", "acme");
    sim.add_machine("acme", MachineSpec::new(101, "rig-1", 4, "RTX 4090"))
        .unwrap();
    sim
}

/// The daemon watching `acme` of a fresh simulated cloud, its first startup summary delivered.
struct Watching {
    out: PathBuf,
    sim: SimHandle,
    config: PathBuf,
    daemon: Daemon,
}

async fn start_watching(dir: &Path) -> Watching {
    let out = dir.join("events.jsonl");
    let sim = start_sim().await;
    let config = write_config(dir, &out);
    write_account(&config, &sim, "");
    let mut daemon = Daemon::new(config.clone(), &["--test-poll-interval", "100ms"]);
    daemon.start();
    wait_for(&out, "the first startup_summary", |e| {
        e.kind.as_str() == "startup_summary"
    })
    .await;
    Watching {
        out,
        sim,
        config,
        daemon,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_survive_sigkill_and_reload_with_one_alert_and_one_restore_each() {
    tokio::time::timeout(Duration::from_secs(150), outages_across_restarts())
        .await
        .expect("the scenario finishes in time");
}

async fn outages_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let Watching {
        out,
        sim,
        config,
        mut daemon,
    } = start_watching(dir.path()).await;

    // The gateway fails: stale once, however often the daemon is killed or reloaded meanwhile.
    sim.inject_fault(
        "acme",
        Fault::BadGateway502Html,
        FaultDuration::UntilCleared,
    )
    .unwrap();
    wait_for_count(&out, "account_stale", 1).await;
    daemon.kill9();
    daemon.start();
    wait_for_count(&out, "startup_summary", 2).await;
    settle().await;
    // A changed file restarts the account actor.
    write_account(&config, &sim, "error_repeat = \"5h\"\n");
    daemon.signal("HUP");
    wait_for_count(&out, "config_reloaded", 1).await;
    settle().await;
    assert_eq!(count(&out, "account_stale"), 1, "no second alert");
    assert_eq!(count(&out, "account_restored"), 0);
    sim.clear_faults("acme").unwrap();
    wait_for_count(&out, "account_restored", 1).await;
    settle().await;

    // The key is rejected: the same across a SIGKILL.
    sim.inject_fault("acme", Fault::Unauthorized401, FaultDuration::UntilCleared)
        .unwrap();
    wait_for_count(&out, "account_auth_failed", 1).await;
    daemon.kill9();
    daemon.start();
    wait_for_count(&out, "startup_summary", 3).await;
    // The probe of a rejected key runs every 10 polls: let two of them fail.
    tokio::time::sleep(POLL * 25).await;
    assert_eq!(count(&out, "account_auth_failed"), 1, "no second alert");
    sim.clear_faults("acme").unwrap();
    wait_for_count(&out, "account_restored", 2).await;
    settle().await;
    daemon.terminate();
    sim.shutdown();

    let events = account_events(&out, "acme");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "account_stale",
            "account_restored",
            "account_auth_failed",
            "account_restored"
        ],
        "one alert and one restore per outage, across two kills and a reload"
    );
    assert_eq!(events[1].data["previous_state"], "stale");
    assert_eq!(events[3].data["previous_state"], "auth_failed");
    assert!(
        events[1].time > events[0].time && events[3].time > events[2].time,
        "each restore follows its alert"
    );
    assert_eq!(
        events[1].data["since"],
        serde_json::json!(events[0].time),
        "the restore knows when the outage began, although the daemon was killed since"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_account_forgets_its_outage() {
    tokio::time::timeout(Duration::from_secs(150), removed_account())
        .await
        .expect("the scenario finishes in time");
}

async fn removed_account() {
    let dir = tempfile::tempdir().unwrap();
    let Watching {
        out,
        sim,
        config,
        mut daemon,
    } = start_watching(dir.path()).await;

    // Removed by a reload during an outage; added again by a reload once the API works.
    sim.inject_fault(
        "acme",
        Fault::BadGateway502Html,
        FaultDuration::UntilCleared,
    )
    .unwrap();
    wait_for_count(&out, "account_stale", 1).await;
    std::fs::remove_file(account_file(&config)).unwrap();
    daemon.signal("HUP");
    wait_for_count(&out, "config_reloaded", 1).await;
    sim.clear_faults("acme").unwrap();
    write_account(&config, &sim, "");
    daemon.signal("HUP");
    wait_for_count(&out, "config_reloaded", 2).await;
    settle().await;
    assert_eq!(
        count(&out, "account_restored"),
        0,
        "the re-added account announces no restore"
    );

    // A new outage is alerted afresh; this time the account is removed while the daemon is down.
    sim.inject_fault(
        "acme",
        Fault::BadGateway502Html,
        FaultDuration::UntilCleared,
    )
    .unwrap();
    wait_for_count(&out, "account_stale", 2).await;
    daemon.kill9();
    std::fs::remove_file(account_file(&config)).unwrap();
    daemon.start();
    wait_for_count(&out, "startup_summary", 2).await;
    daemon.terminate();
    sim.clear_faults("acme").unwrap();
    write_account(&config, &sim, "");
    daemon.start();
    wait_for_count(&out, "startup_summary", 3).await;
    settle().await;
    daemon.terminate();
    sim.shutdown();

    assert_eq!(
        account_kinds(&out, "acme"),
        ["account_stale", "account_stale"],
        "each outage alerted once, no restore after the account came back"
    );
}
