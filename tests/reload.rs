//! Hot reload with the real binary: a changed file, a new file, a removed file and a broken file
//! in one reload (SIGHUP and `vast-supervisor reload`). The others keep working, events show
//! config_reloaded / config_rejected, no event repeats, and untouched accounts keep polling with
//! no gap. Also `status --json` against the running daemon and exit code 3 when it is gone.

#[path = "support/daemon.rs"]
mod daemon;

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

async fn health(port: u16) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("/health answers");
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// A configuration in `dir`: one account `name` (added to `sim` with machine `machine`), a file
/// target writing `dir/events.jsonl`, `main_extra` in the main file. Returns the configuration
/// directory and the account's file.
fn one_account(
    dir: &Path,
    sim: &SimHandle,
    name: &str,
    machine: u64,
    main_extra: &str,
) -> (PathBuf, PathBuf) {
    sim.add_account(&format!("KEY-{name}"), name);
    sim.add_machine(
        name,
        MachineSpec::new(machine, &format!("{name}-rig"), 2, "RTX 4090"),
    )
    .unwrap();
    let config = daemon::write_main_config(dir, main_extra);
    let account = write_account_and_target(&config, sim, name);
    (config, account)
}

/// Writes `conf.d/10-{name}.toml` (the account) and a file target writing `events.jsonl` beside
/// the configuration directory; returns the account's file.
fn write_account_and_target(config: &Path, sim: &SimHandle, name: &str) -> PathBuf {
    let account = config.join(format!("conf.d/10-{name}.toml"));
    std::fs::write(&account, account_file(name, sim, "")).unwrap();
    std::fs::write(
        config.join("conf.d/90-targets.toml"),
        format!(
            "[[target]]\nname = \"log\"\nurl = \"file://{}\"\n",
            config.parent().unwrap().join("events.jsonl").display()
        ),
    )
    .unwrap();
    account
}

/// Starts the daemon of `config` polling every 100 ms; returns once its startup summary is in
/// `out`.
async fn start_polling(config: &Path, out: &Path) -> daemon::Daemon {
    let mut d = daemon::Daemon::new(config.to_path_buf(), &["--test-poll-interval", "100ms"]);
    d.start();
    wait_for(out, "startup_summary", |e| {
        e.kind.as_str() == "startup_summary"
    })
    .await;
    d
}

fn polls_of(sim: &SimHandle, account: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.account.as_deref() == Some(account) && r.route == "machines")
        .count()
}

/// Issue 11 item 1: durations too large for any clock used to panic inside the reload, which
/// killed the supervisor actor: polling stopped while `/health` kept answering 200. Such a file
/// is now rejected at its `line:col` and everything else goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_out_of_range_durations_is_rejected_and_polling_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = daemon::free_port();
    let main_extra = format!("http_listen = \"127.0.0.1:{port}\"\n");
    let (config, account) = one_account(dir.path(), &sim, "zed", 700, &main_extra);
    let mut daemon = start_polling(&config, &out).await;

    std::fs::write(
        &account,
        account_file(
            "zed",
            &sim,
            "poll_interval = \"99999999999999999999999s\"\noffline_grace = \"9999999999999999d\"\n",
        ),
    )
    .unwrap();
    let reload = cli(&config, &["reload"]);
    let text = String::from_utf8_lossy(&reload.stdout).to_string();
    assert_eq!(
        reload.status.code(),
        Some(2),
        "the file is rejected: {text} {reload:?}"
    );
    for key in ["5:17: poll_interval", "6:17: offline_grace"] {
        assert!(
            text.contains(key) && text.contains("out of range"),
            "{key} at its line:col: {text}"
        );
    }

    // The supervisor survived: the account keeps polling and detecting, /health stays 200,
    // and a later reload still works.
    let before = polls_of(&sim, "zed");
    sim.start_rental("zed", 700, "r", vec![0u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    wait_for(&out, "rental_start after the reload", |e| {
        e.kind.as_str() == "rental_start"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(POLL_MS * 6)).await;
    assert!(polls_of(&sim, "zed") > before + 3, "polling goes on");
    assert_eq!(health(port).await.0, 200);
    std::fs::write(&account, account_file("zed", &sim, "")).unwrap();
    let again = cli(&config, &["reload"]);
    assert!(again.status.success(), "{again:?}");
    daemon.terminate();
    sim.shutdown();
}

/// Issue 11 item 7: a SIGHUP that arrives while the daemon starts is not fatal: it waits until
/// the handler is in place and becomes a reload. (The signal is raised, blocked, before the
/// binary even starts, so it is pending at its first instruction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_during_start_up_becomes_a_reload() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let log = dir.path().join("daemon.log");
    let config = daemon::write_main_config(dir.path(), "");
    std::fs::write(
        config.join("conf.d/90-targets.toml"),
        format!(
            "[[target]]\nname = \"log\"\nurl = \"file://{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(bin());
    command
        .arg("--config")
        .arg(&config)
        .args(["run", "--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::raise(libc::SIGHUP);
            Ok(())
        });
    }
    let mut daemon = Daemon(command.spawn().unwrap());
    // The files did not change, so the reload announces nothing (no `config_reloaded`); the
    // supervisor logs that it ran.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("reload done: no account or target changed")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the early SIGHUP became no reload:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(daemon.0.try_wait().unwrap().is_none(), "still running");
    assert!(Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(daemon.0.wait().unwrap().success());
}

/// Issue 11 item 7: SIGTERM ends the daemon within the shutdown grace also while a reload waits
/// (here for an account whose API hangs, so its poll, and the reload stopping it, take long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_reload_ends_the_daemon_at_once() {
    use vast_supervisor::sim::{Fault, FaultDuration};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (config, account) = one_account(dir.path(), &sim, "slow", 900, "");
    let mut d = start_polling(&config, &out).await;
    sim.inject_fault(
        "slow",
        Fault::Hang(Duration::from_secs(60)),
        FaultDuration::UntilCleared,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(
        &account,
        account_file("slow", &sim, "offline_grace = \"30s\"\n"),
    )
    .unwrap();
    d.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    d.terminate();
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "SIGTERM during the reload took {took:?}"
    );
    sim.shutdown();
}

#[path = "support/bad_config.rs"]
mod bad_config;

/// Issue 11: reloads of generated bad configurations (with FIFOs, directories and devices as
/// secret files) never kill, hang or wedge the daemon: every reload answers (exit 0, or 2 when
/// a file is rejected) within its bound, and afterwards a good configuration applies and its
/// account is watched. Requests to anything but 127.0.0.1 go to a refusing proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_survives_generated_bad_configurations() {
    use proptest::strategy::{Strategy, ValueTree};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-fz", "fz");
    sim.add_machine("fz", MachineSpec::new(800, "fz-rig", 2, "RTX 4090"))
        .unwrap();
    let config = daemon::write_main_config(dir.path(), "");
    let globals = std::fs::read_to_string(config.join("vast-supervisor.toml")).unwrap();
    let proxy = std::ffi::OsStr::new("http://127.0.0.1:1");
    let mut d = daemon::Daemon::new(config.clone(), &["--test-poll-interval", "100ms"])
        .with_env("HTTP_PROXY", Some(proxy))
        .with_env("HTTPS_PROXY", Some(proxy))
        .with_env(
            "NO_PROXY",
            Some(std::ffi::OsStr::new("127.0.0.1,localhost")),
        );
    d.start();
    d.wait_ready();
    // The fuzzed main file may be rejected: the client is told where the socket is.
    let socket = dir.path().join("control.sock");
    let reload_cmd = move || {
        Command::new(bin())
            .arg("--socket")
            .arg(&socket)
            .arg("reload")
            .output()
            .unwrap()
    };
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = bad_config::bad_config();
    for case in 0..30 {
        let bad = strategy.new_tree(&mut runner).unwrap().current();
        bad_config::write_after(&config, &bad, &globals);
        let kept = config.with_extension(format!("case-{case}"));
        let reload = tokio::task::spawn_blocking(reload_cmd.clone());
        let reload = tokio::time::timeout(Duration::from_secs(20), reload)
            .await
            .unwrap_or_else(|_| panic!("case {case}: reload hangs"))
            .unwrap();
        let fine = matches!(reload.status.code(), Some(0 | 2)) && d.running();
        if !fine {
            // Keep the case for a look before failing.
            let _ = std::process::Command::new("cp")
                .arg("-r")
                .arg(&config)
                .arg(&kept)
                .status();
        }
        assert!(
            fine,
            "case {case} (kept in {}): {:?} {}",
            kept.display(),
            reload.status,
            String::from_utf8_lossy(&reload.stderr)
        );
    }
    bad_config::write_after(
        &config,
        &bad_config::BadConfig {
            main: None,
            conf_d: Vec::new(),
        },
        &globals,
    );
    write_account_and_target(&config, &sim, "fz");
    let good = reload_cmd();
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    // The account's first polls adopt what they find; the change comes after them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while polls_of(&sim, "fz") < 3 {
        assert!(Instant::now() < deadline, "fz polls after the good reload");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.start_rental("fz", 800, "r", vec![0u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    wait_for(&out, "a change after the fuzzed reloads", |e| {
        e.kind.as_str() == "rental_start"
    })
    .await;
    d.terminate();
    sim.shutdown();
}
