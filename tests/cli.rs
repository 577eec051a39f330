//! The command line as a user runs it: `check` exit codes and output, `simulate` serving the
//! simulated cloud and stopping on Ctrl+C, usage errors, `VAST_SUPERVISOR_CONFIG`,
//! `completions SHELL`, and the log format on stderr (no colours into a file, syslog priorities
//! into the journal).

#[path = "support/daemon.rs"]
mod daemon;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vast-supervisor")
}

#[test]
fn check_exits_0_on_valid_and_2_on_invalid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/10-a.toml"),
        "[[account]]\nname = \"a\"\napi_key = \"SECRET-KEY-1\"\n",
    )
    .unwrap();
    let ok = Command::new(bin())
        .args(["check", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("configuration OK: "));

    std::fs::write(
        dir.path().join("conf.d/20-b.toml"),
        "[[account]]\nname = \"b\"\napi_key = \"SECRET-KEY-2\"\npoll_interval = \"5s\"\n",
    )
    .unwrap();
    let bad = Command::new(bin())
        .args(["check", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    let expected = format!("{}:4:17: ", dir.path().join("conf.d/20-b.toml").display());
    assert!(err.starts_with(&expected), "path:line:col first: {err}");
    assert!(err.contains("10s"), "{err}");
    assert!(!err.contains("SECRET-KEY"), "no secret in check output");
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(bin()).arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_serves_the_demo_cloud() {
    let (mut child, rx) = spawn_simulate();
    let mut url = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        if let Some(start) = line.find("http://127.0.0.1:") {
            url = Some(
                line[start..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string(),
            );
            break;
        }
    }
    let url = url.expect("simulate prints its base URL");
    // The accounts are printed once the scenario's first step has created them.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        if line.starts_with("api_key") {
            break;
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let machines = rt.block_on(async {
        let client = reqwest::Client::new();
        let resp = client
            .get(format!("{url}/api/v0/machines/?owner=me"))
            .bearer_auth(vast_supervisor::sim::DEMO_HOST_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.headers());
        resp.json::<serde_json::Value>().await.unwrap()
    });
    assert!(!machines["machines"].as_array().unwrap().is_empty());
    let _ = child.kill();
    let _ = child.wait();
}

/// Ctrl+C (SIGINT, through signal-hook like the daemon's signals) stops `simulate` cleanly.
#[test]
fn simulate_stops_on_ctrl_c() {
    let (mut child, rx) = spawn_simulate();
    // Its handler is in place once it serves (the scenario's first step printed the keys).
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        if line.starts_with("api_key") {
            break;
        }
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_bounded(&mut child, "simulate after Ctrl+C");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Runs the binary with `args`, failing the test (not hanging) when it runs longer than 10 s.
fn run_bounded(args: &[&str], config: &std::path::Path) -> std::process::Output {
    let mut child = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(&mut child, &format!("{args:?}"));
    child.wait_with_output().unwrap()
}

/// Waits until `child` has exited, failing the test (not hanging) when it runs longer than 10 s.
fn wait_bounded(child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} still runs after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `vast-supervisor simulate` on a free port, its stdout lines sent to the receiver.
fn spawn_simulate() -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Issue 11 item 6: a main file that cannot be used stops `run` (exit 2, naming the file) as it
/// fails `check`; the daemon never falls back to the default paths, and never panics.
#[test]
fn an_unusable_main_file_stops_run_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("etc");
    std::fs::create_dir_all(config.join("conf.d")).unwrap();
    let main = config.join("vast-supervisor.toml");
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("c.sock");
    let long_socket = format!("{}/{}.sock", dir.path().display(), "s".repeat(120));
    let cases: Vec<(&str, String)> = vec![
        ("bad type", "http_listen = 9477\n".into()),
        ("bad http_listen", "http_listen = \"localhost\"\n".into()),
        ("garbage", "\u{1}\u{2}[[[ not toml".into()),
        (
            "state_dir is a file",
            format!(
                "state_dir = \"{}\"\ncontrol_socket = \"{}\"\n",
                a_file.display(),
                socket.display()
            ),
        ),
        (
            "socket parent is a file",
            format!(
                "state_dir = \"{}\"\ncontrol_socket = \"{}/c.sock\"\n",
                state.display(),
                a_file.display()
            ),
        ),
        (
            "socket path too long",
            format!(
                "state_dir = \"{}\"\ncontrol_socket = \"{long_socket}\"\n",
                state.display()
            ),
        ),
        ("symlink loop", String::new()),
    ];
    for (what, text) in cases {
        let _ = std::fs::remove_file(&main);
        if what == "symlink loop" {
            std::os::unix::fs::symlink(&main, &main).unwrap();
        } else {
            std::fs::write(&main, text).unwrap();
        }
        let check = run_bounded(&["check"], &config);
        assert_eq!(check.status.code(), Some(2), "{what}: check {check:?}");
        let run = run_bounded(&["run"], &config);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{what}: run {err}");
        assert!(
            err.contains("vast-supervisor.toml"),
            "{what}: names the file: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    assert!(!state.exists(), "nothing was started");
}

#[test]
fn the_config_directory_comes_from_vast_supervisor_config_unless_given() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/10-a.toml"),
        "[[account]]\nname = 1\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("check")
        .env("VAST_SUPERVISOR_CONFIG", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&dir.path().join("conf.d/10-a.toml").display().to_string()),
        "{err}"
    );

    let good = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(good.path())
        .env("VAST_SUPERVISOR_CONFIG", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "--config wins over the environment"
    );
}

#[test]
fn completions_are_the_packaged_scripts() {
    for (shell, file) in [
        ("bash", "vast-supervisor.bash"),
        ("zsh", "_vast-supervisor"),
        ("fish", "vast-supervisor.fish"),
    ] {
        let out = Command::new(bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let packaged = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("packaging/completions")
                .join(file),
        )
        .unwrap();
        assert!(
            out.stdout == packaged,
            "completions {shell} differs from packaging/completions/{file}"
        );
    }
    let out = Command::new(bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Runs the daemon on a configuration with one rejected file and no account, stderr into a file
/// (with `JOURNAL_STREAM` naming that file when `journal`), until it logged that it has nothing
/// to watch; returns what it wrote.
fn daemon_stderr(journal: bool) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let config = daemon::write_main_config(dir.path(), "");
    std::fs::write(config.join("conf.d/10-bad.toml"), "[[account]]\nname = 1\n").unwrap();
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let mut command = Command::new(bin());
    command
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(file)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM");
    if journal {
        command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while !text.contains("ready") {
        assert!(
            Instant::now() < deadline,
            "the daemon did not get ready:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
        text = std::fs::read_to_string(&log).unwrap();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn logs_into_a_file_carry_no_colour_codes() {
    let text = daemon_stderr(false);
    assert!(
        text.contains("ERROR") && text.contains("WARN") && text.contains("INFO"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "escape sequences in a log file:\n{text:?}"
    );
}

#[test]
fn logs_into_the_journal_carry_syslog_priorities_and_no_timestamps() {
    let text = daemon_stderr(true);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let priority_of = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
            .get(..3)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(priority_of("10-bad.toml"), "<3>");
    assert_eq!(priority_of("nothing to watch"), "<4>");
    assert_eq!(priority_of("ready"), "<6>");
    for line in &lines {
        let rest = line.get(3..).unwrap_or_default().trim_start();
        assert!(
            ["ERROR", "WARN", "INFO"]
                .iter()
                .any(|l| rest.starts_with(l)),
            "a line starts with its priority and its level, no timestamp: {line:?}"
        );
    }
}
