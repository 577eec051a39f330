//! `vast-supervisor logs`: the real binary against the simulated Vast cloud, with a configuration
//! directory in a temporary dir. A plain fetch prints the tail; `--follow` prints only lines that
//! are new, survives transient API faults (saying so on stderr) and exits 1 on a rejected key or
//! a destroyed instance; an unknown account is a configuration error (exit 2).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vast_supervisor::sim::{Fault, FaultDuration, InstanceSpec, SimCloud, SimHandle};

const KEY: &str = "KEY-RENT-777";

fn write_config(dir: &Path, sim: &SimHandle, key: &str) -> PathBuf {
    let config = dir.join("etc");
    std::fs::create_dir_all(config.join("conf.d")).unwrap();
    std::fs::write(
        config.join("conf.d/10-rent.toml"),
        format!(
            "[[account]]\nname = \"rent\"\napi_key = \"{key}\"\nwatch = [\"instances\"]\napi_url = \"{}\"\n",
            sim.base_url().as_str().trim_end_matches('/'),
        ),
    )
    .unwrap();
    config
}

async fn start_sim() -> SimHandle {
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account(KEY, "rent");
    sim
}

fn add_instance(sim: &SimHandle, id: u64, log: &str) {
    sim.add_instance(
        "rent",
        InstanceSpec {
            id: Some(id),
            label: Some(format!("job-{id}")),
            actual_status: Some("running".into()),
            ..InstanceSpec::default()
        },
    )
    .unwrap();
    sim.append_instance_log(id, log).unwrap();
}

/// A running `vast-supervisor logs`, its output collected line by line by reader threads.
struct LogsProcess {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl LogsProcess {
    fn spawn(config: &Path, args: &[&str]) -> LogsProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vast-supervisor"))
            .arg("logs")
            .args(args)
            .arg("--config")
            .arg(config)
            .args(["--test-interval", "100ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vast-supervisor logs");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out_pipe = child.stdout.take().unwrap();
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut err_pipe = child.stderr.take().unwrap();
        let text = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        LogsProcess {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (without blocking the runtime's other tasks for long) until `pred` holds.
    async fn wait_until(&self, what: &str, pred: impl Fn(&LogsProcess) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stdout {:?}, stderr {:?}",
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit by itself.
    async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "logs did not exit; stdout {:?}, stderr {:?}",
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for LogsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), future)
                .await
                .expect("test exceeded its 60 s bound")
        })
}

#[test]
fn plain_fetch_prints_the_tail_and_exits_0() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let sim = start_sim().await;
        add_instance(&sim, 5001, "boot\nepoch 1\nepoch 2\nepoch 3");
        let config = write_config(dir.path(), &sim, KEY);

        let mut all = LogsProcess::spawn(&config, &["rent", "5001"]);
        assert!(all.exit_status().await.success(), "{}", all.stderr());
        assert_eq!(all.stdout(), ["boot", "epoch 1", "epoch 2", "epoch 3"]);

        let mut tail = LogsProcess::spawn(&config, &["rent", "5001", "--tail", "2"]);
        assert!(tail.exit_status().await.success(), "{}", tail.stderr());
        assert_eq!(tail.stdout(), ["epoch 2", "epoch 3"]);

        // The key went in the Authorization header of the two-step request, never in a URL.
        let requests = sim.requests();
        let asked: Vec<_> = requests
            .iter()
            .filter(|r| r.route == "request_logs")
            .collect();
        assert_eq!(asked.len(), 2);
        assert!(asked
            .iter()
            .all(|r| r.authorization_header && !r.api_key_in_query));
        assert!(asked.iter().all(|r| r.account.as_deref() == Some("rent")));
        sim.shutdown();
    });
}

#[test]
fn follow_prints_only_new_lines_and_survives_transient_faults() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let sim = start_sim().await;
        add_instance(&sim, 5002, "old 1\nold 2\nold 3");
        let config = write_config(dir.path(), &sim, KEY);

        let mut logs = LogsProcess::spawn(&config, &["rent", "5002", "--follow", "--tail", "1"]);
        logs.wait_until("the existing tail", |p| !p.stdout().is_empty())
            .await;
        // A few more fetches of the unchanged log print nothing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(logs.stdout(), ["old 3"]);

        sim.append_instance_log(5002, "new 1\nnew 2").unwrap();
        logs.wait_until("the new lines", |p| p.stdout().len() >= 3)
            .await;

        // More 502s than the client retries within one fetch: that fetch fails, --follow goes on.
        sim.inject_fault("rent", Fault::BadGateway502Html, FaultDuration::Requests(6))
            .unwrap();
        logs.wait_until("the retry notice", |p| p.stderr().contains("retrying in"))
            .await;
        assert!(logs.stderr().contains("HTTP 502"), "{}", logs.stderr());
        sim.append_instance_log(5002, "after the fault").unwrap();
        logs.wait_until("the line after the fault", |p| {
            p.stdout().last().map(String::as_str) == Some("after the fault")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            logs.still_running(),
            "a transient fault must not end --follow"
        );
        assert_eq!(
            logs.stdout(),
            ["old 3", "new 1", "new 2", "after the fault"],
            "every line once, in order"
        );
        assert!(
            !logs.stderr().contains(KEY),
            "the key never appears on stderr"
        );
        sim.shutdown();
    });
}

#[test]
fn follow_exits_1_when_the_instance_is_destroyed() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let sim = start_sim().await;
        add_instance(&sim, 5003, "training");
        let config = write_config(dir.path(), &sim, KEY);

        let mut logs = LogsProcess::spawn(&config, &["rent", "5003", "--follow"]);
        logs.wait_until("the existing log", |p| !p.stdout().is_empty())
            .await;
        sim.destroy_instance(5003).unwrap();
        let status = logs.exit_status().await;
        assert_eq!(status.code(), Some(1), "stderr: {}", logs.stderr());
        assert!(
            logs.stderr()
                .contains("instance 5003 does not exist on account rent"),
            "{}",
            logs.stderr()
        );
        assert_eq!(logs.stdout(), ["training"]);

        // Without --follow, an unknown instance is the same clear error.
        let mut once = LogsProcess::spawn(&config, &["rent", "5999"]);
        assert_eq!(once.exit_status().await.code(), Some(1));
        assert!(
            once.stderr().contains("instance 5999 does not exist"),
            "{}",
            once.stderr()
        );
        sim.shutdown();
    });
}

#[test]
fn rejected_key_exits_1_and_unknown_account_exits_2() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let sim = start_sim().await;
        add_instance(&sim, 5004, "hello");
        let wrong = "KEY-REVOKED-0000";
        let config = write_config(dir.path(), &sim, wrong);

        let mut logs = LogsProcess::spawn(&config, &["rent", "5004", "--follow"]);
        assert_eq!(logs.exit_status().await.code(), Some(1));
        let stderr = logs.stderr();
        assert!(
            stderr.contains("Vast rejected the API key of account rent"),
            "{stderr}"
        );
        assert!(!stderr.contains(wrong), "the key never appears: {stderr}");
        assert!(logs.stdout().is_empty());

        let mut unknown = LogsProcess::spawn(&config, &["rnet", "5004"]);
        assert_eq!(unknown.exit_status().await.code(), Some(2));
        assert!(
            unknown.stderr().contains("no account named \"rnet\"")
                && unknown.stderr().contains("did you mean \"rent\"?"),
            "{}",
            unknown.stderr()
        );

        // An account whose file was rejected is not used; the rejection is named.
        std::fs::write(
            config.join("conf.d/10-rent.toml"),
            "[[account]]\nname = \"rent\"\napi_key = \"x\"\npoll_interval = \"1s\"\n",
        )
        .unwrap();
        let mut rejected = LogsProcess::spawn(&config, &["rent", "5004"]);
        assert_eq!(rejected.exit_status().await.code(), Some(2));
        assert!(
            rejected.stderr().contains("10-rent.toml:"),
            "{}",
            rejected.stderr()
        );
        sim.shutdown();
    });
}
