//! Hot reload with the real binary: a changed file, a new file, a removed file and a broken file
//! in one reload (SIGHUP and `vast-supervisor reload`). The others keep working, events show
//! config_reloaded / config_rejected, no event repeats, and untouched accounts keep polling with
//! no gap. Also `status --json` against the running daemon and exit code 3 when it is gone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vast_supervisor::event::Event;
use vast_supervisor::sim::{MachineSpec, RentalKind, SimCloud, SimHandle};

const POLL_MS: u64 = 100;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vast-supervisor")
}

fn account_file(name: &str, sim: &SimHandle, extra: &str) -> String {
    format!(
        "[[account]]\nname = \"{name}\"\napi_key = \"KEY-{name}\"\napi_url = \"{}\"\n{extra}",
        sim.base_url().as_str().trim_end_matches('/')
    )
}

fn read_events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

async fn wait_for(path: &Path, what: &str, pred: impl Fn(&Event) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !read_events(path).iter().any(&pred) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_per_file_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("events.jsonl");
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for (i, name) in ["steady", "changed", "removed", "broken", "added"]
        .iter()
        .enumerate()
    {
        sim.add_account(&format!("KEY-{name}"), name);
        sim.add_machine(
            name,
            MachineSpec::new(100 + i as u64, &format!("{name}-rig"), 2, "RTX 4090"),
        )
        .unwrap();
    }
    let config = dir.path().join("etc");
    let confd = config.join("conf.d");
    std::fs::create_dir_all(&confd).unwrap();
    std::fs::write(
        config.join("vast-supervisor.toml"),
        format!(
            "state_dir = \"{}\"\ncontrol_socket = \"{}\"\n",
            dir.path().join("state").display(),
            dir.path().join("ctl.sock").display()
        ),
    )
    .unwrap();
    std::fs::write(
        confd.join("10-steady.toml"),
        account_file("steady", &sim, ""),
    )
    .unwrap();
    std::fs::write(
        confd.join("20-changed.toml"),
        account_file("changed", &sim, ""),
    )
    .unwrap();
    std::fs::write(
        confd.join("30-removed.toml"),
        account_file("removed", &sim, ""),
    )
    .unwrap();
    std::fs::write(
        confd.join("40-broken.toml"),
        account_file("broken", &sim, ""),
    )
    .unwrap();
    std::fs::write(
        confd.join("90-targets.toml"),
        format!(
            "[[target]]\nname = \"log\"\nurl = \"file://{}\"\n",
            out.display()
        ),
    )
    .unwrap();

    let log_path = dir.path().join("daemon.log");
    let child = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .args(["run", "--test-poll-interval", &format!("{POLL_MS}ms")])
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    wait_for(&out, "startup_summary", |e| {
        e.kind.as_str() == "startup_summary"
    })
    .await;

    // status --json while running.
    let status = cli(&config, &["status", "--json"]);
    assert!(
        status.status.success(),
        "status: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for key in [
        "version",
        "uptime_seconds",
        "config_files",
        "accounts",
        "targets",
    ] {
        assert!(st.get(key).is_some(), "status has {key}: {st}");
    }
    assert_eq!(st["accounts"].as_array().unwrap().len(), 4);
    assert_eq!(st["targets"][0]["name"], "log");
    assert!(st["targets"][0].get("queue_depth").is_some());
    assert!(
        st["accounts"][0].get("state").is_some() && st["accounts"][0].get("machines").is_some()
    );
    let human = cli(&config, &["status"]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("ACCOUNTS"));
    assert!(
        !String::from_utf8_lossy(&human.stdout).contains("KEY-"),
        "no key in status"
    );

    // One reload: changed, new, removed and broken files.
    std::fs::write(
        confd.join("20-changed.toml"),
        account_file("changed", &sim, "offline_grace = \"30s\"\n"),
    )
    .unwrap();
    std::fs::remove_file(confd.join("30-removed.toml")).unwrap();
    std::fs::write(
        confd.join("40-broken.toml"),
        account_file("broken", &sim, "pol_interval = \"30s\"\n"),
    )
    .unwrap();
    std::fs::write(confd.join("50-added.toml"), account_file("added", &sim, "")).unwrap();
    let reload_at = Instant::now();
    let reload = cli(&config, &["reload"]);
    let text = String::from_utf8_lossy(&reload.stdout).to_string();
    assert_eq!(
        reload.status.code(),
        Some(2),
        "a rejected file gives exit 2; output: {text}"
    );
    assert!(text.contains("account added: added"), "{text}");
    assert!(
        text.contains("account changed: changed, restarted"),
        "{text}"
    );
    assert!(text.contains("account removed: removed"), "{text}");
    assert!(
        text.contains("40-broken.toml: rejected (previous version stays in force)"),
        "{text}"
    );
    assert!(text.contains("unknown key \"pol_interval\""), "{text}");
    wait_for(&out, "config_reloaded", |e| {
        e.kind.as_str() == "config_reloaded"
    })
    .await;
    wait_for(&out, "config_rejected", |e| {
        e.kind.as_str() == "config_rejected" && e.text.contains("40-broken.toml")
    })
    .await;

    // Every remaining account still detects changes; the removed one is not watched.
    for (i, name) in ["steady", "changed", "removed", "broken", "added"]
        .iter()
        .enumerate()
    {
        sim.start_rental(
            name,
            100 + i as u64,
            "r",
            vec![0u32],
            RentalKind::OnDemand,
            10.0,
        )
        .unwrap();
    }
    for name in ["steady", "changed", "broken", "added"] {
        wait_for(&out, name, |e| {
            e.kind.as_str() == "rental_start" && e.account.as_deref() == Some(name)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(POLL_MS * 5)).await;

    // SIGHUP with nothing changed: no restart and no config_reloaded; the still broken file
    // is rejected again. (This used to send a second config_reloaded.)
    let pid = daemon.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let count = |kind: &str| {
        read_events(&out)
            .iter()
            .filter(|e| e.kind.as_str() == kind)
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count("config_rejected") < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "second config_rejected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(POLL_MS * 3)).await;
    assert_eq!(count("config_reloaded"), 1, "a reload that changes nothing");

    // A rejected file is a warning in the log, never "configuration reloaded".
    let logs: Vec<serde_json::Value> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let message = |l: &serde_json::Value| l["fields"]["message"].as_str().unwrap_or("").to_string();
    let rejected: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|l| message(l).starts_with("configuration file rejected"))
        .collect();
    assert_eq!(rejected.len(), 2, "one per reload: {logs:?}");
    for l in &rejected {
        assert_eq!(l["level"], "WARN", "{l}");
        assert!(
            l["fields"]["path"]
                .as_str()
                .unwrap()
                .ends_with("40-broken.toml"),
            "{l}"
        );
    }
    let reloaded: Vec<&serde_json::Value> = logs
        .iter()
        .filter(|l| message(l).contains("configuration reloaded"))
        .collect();
    assert_eq!(
        reloaded.len(),
        1,
        "only the reload that changed something: {reloaded:?}"
    );

    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0");
    let gone = cli(&config, &["status"]);
    assert_eq!(gone.status.code(), Some(3), "no daemon: exit 3");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not running"));

    let events = read_events(&out);
    let mut ids = HashSet::new();
    for e in &events {
        assert!(ids.insert(e.id.clone()), "duplicate event {}", e.id);
    }
    let per_account = |name: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.account.as_deref() == Some(name))
            .map(|e| e.kind.to_string())
            .collect()
    };
    for name in ["steady", "changed", "broken", "added"] {
        assert_eq!(
            per_account(name),
            ["rental_start"],
            "{name}: exactly one event"
        );
    }
    assert!(
        per_account("removed").is_empty(),
        "the removed account is no longer watched"
    );
    let reloaded = events
        .iter()
        .find(|e| e.kind.as_str() == "config_reloaded")
        .unwrap();
    assert_eq!(
        reloaded.data["accounts"]["unchanged"],
        serde_json::json!(["broken", "steady"])
    );

    // The untouched account kept polling across the reload: no gap beyond a few intervals.
    let polls: Vec<Instant> = sim
        .requests()
        .iter()
        .filter(|r| r.account.as_deref() == Some("steady") && r.route == "machines")
        .map(|r| r.at)
        .collect();
    let around: Vec<&Instant> = polls
        .iter()
        .filter(|t| {
            **t > reload_at - Duration::from_secs(1) && **t < reload_at + Duration::from_secs(2)
        })
        .collect();
    assert!(
        around.len() >= 4,
        "steady polled around the reload ({} polls)",
        around.len()
    );
    let max_gap = around.windows(2).map(|w| *w[1] - *w[0]).max().unwrap();
    assert!(
        max_gap < Duration::from_millis(POLL_MS * 4),
        "poll gap {max_gap:?} across the reload"
    );
    sim.shutdown();
}
