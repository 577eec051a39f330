//! systemd notifications of the real binary: with `NOTIFY_SOCKET` pointing at a datagram socket
//! bound here and a small `WATCHDOG_USEC`, the daemon sends READY=1, a STATUS= summary that
//! follows what it watches, repeated WATCHDOG=1 pings, and on SIGTERM STOPPING=1, then exits 0.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::UnixDatagram;
use vast_supervisor::sim::{MachineSpec, SimCloud, SimHandle};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    let config = dir.join("etc");
    std::fs::create_dir_all(config.join("conf.d")).unwrap();
    std::fs::write(
        config.join("vast-supervisor.toml"),
        format!(
            "state_dir = \"{}\"\ncontrol_socket = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\n",
            dir.join("state").display(),
            dir.join("control.sock").display()
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("conf.d/10-acme.toml"),
        format!(
            "[[account]]\nname = \"acme\"\napi_key = \"KEY-ACME-123\"\napi_url = \"{}\"\n\n[[target]]\nname = \"log\"\nurl = \"file://{}\"\n",
            sim.base_url().as_str().trim_end_matches('/'),
            dir.join("events.jsonl").display()
        ),
    )
    .unwrap();
    config
}

/// Everything received so far, one entry per `KEY=value` line.
struct Received {
    socket: UnixDatagram,
    lines: Vec<String>,
}

impl Received {
    /// Receives until some line satisfies `pred`, or panics after 15 s.
    async fn until(&mut self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut buf = vec![0u8; 4096];
        while !pred(&self.lines) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    self.lines
                        .extend(text.lines().filter(|l| !l.is_empty()).map(String::from));
                }
                Ok(Err(e)) => panic!("receiving notifications: {e}"),
                Err(_) => panic!("timed out waiting for {what}; received {:?}", self.lines),
            }
        }
    }
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-ACME-123", "acme");
    sim.add_machine("acme", MachineSpec::new(101, "rig-1", 4, "RTX 4090"))
        .unwrap();
    sim.add_machine("acme", MachineSpec::new(102, "rig-2", 4, "RTX 4090"))
        .unwrap();
    let config = write_config(dir.path(), &sim);
    let socket_path = dir.path().join("notify.sock");
    let mut received = Received {
        socket: UnixDatagram::bind(&socket_path).unwrap(),
        lines: Vec::new(),
    };

    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_vast-supervisor"))
            .args(["run", "--config"])
            .arg(&config)
            .args(["--test-poll-interval", "100ms", "-q"])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the daemon"),
    );

    received
        .until("READY=1", |l| l.iter().any(|x| x == "READY=1"))
        .await;
    received
        .until("a STATUS with both machines", |l| {
            l.iter()
                .any(|x| x == "STATUS=1 account, 2 machines, 0 targets failing")
        })
        .await;
    let watchdogs = count(&received.lines, "WATCHDOG=1");
    received
        .until("more watchdog pings", |l| {
            count(l, "WATCHDOG=1") >= watchdogs + 3
        })
        .await;
    assert_eq!(count(&received.lines, "READY=1"), 1, "READY once");
    assert_eq!(count(&received.lines, "STOPPING=1"), 0);

    let status = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    received
        .until("STOPPING=1", |l| l.iter().any(|x| x == "STOPPING=1"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "daemon did not stop within 10s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "SIGTERM exits 0, got {exit}");
    sim.shutdown();
}
