//! systemd notifications of the real binary: with `NOTIFY_SOCKET` pointing at a datagram socket
//! bound here and a small `WATCHDOG_USEC`, the daemon sends READY=1, a STATUS= summary that
//! follows what it watches, repeated WATCHDOG=1 pings, and on SIGTERM STOPPING=1, then exits 0.

#[path = "support/daemon.rs"]
mod daemon;

use daemon::{write_main_config, Daemon};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixDatagram;
use vast_supervisor::sim::{MachineSpec, SimCloud, SimHandle};

fn write_config(dir: &Path, sim: &SimHandle) -> PathBuf {
    let config = write_main_config(dir, "http_listen = \"127.0.0.1:0\"\n");
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

    let mut daemon = Daemon::new(config, &["--test-poll-interval", "100ms"])
        .with_env("NOTIFY_SOCKET", Some(socket_path.as_os_str()))
        .with_env("WATCHDOG_USEC", Some("200000".as_ref()))
        .with_env("WATCHDOG_PID", None);
    daemon.start();

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

    // SIGTERM, and a clean exit (status 0) within 10 s.
    daemon.terminate();
    received
        .until("STOPPING=1", |l| l.iter().any(|x| x == "STOPPING=1"))
        .await;
    sim.shutdown();
}
