//! The control socket with the real binary: mode 0660, `events` (recent and --follow),
//! `notify-test` through a fake Discord, and no target secret in `status` output.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use vast_supervisor::sim::targets::{FakeService, FakeServices};
use vast_supervisor::sim::{MachineSpec, RentalKind, SimCloud};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vast-supervisor")
}

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_events_notify_test_and_status_hygiene() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sim.add_account("KEY-ctl", "ctl");
    sim.add_machine("ctl", MachineSpec::new(7, "rig-7", 2, "RTX 4090"))
        .unwrap();
    let fake = FakeServices::start().await;
    let config = dir.path().join("etc");
    std::fs::create_dir_all(config.join("conf.d")).unwrap();
    let socket = dir.path().join("run/ctl.sock");
    std::fs::write(
        config.join("vast-supervisor.toml"),
        format!(
            "state_dir = \"{}\"\ncontrol_socket = \"{}\"\n",
            dir.path().join("state").display(),
            socket.display()
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("conf.d/10.toml"),
        format!(
            "[[account]]\nname = \"ctl\"\napi_key = \"KEY-ctl\"\napi_url = \"{}\"\n\n\
             [[target]]\nname = \"chat\"\nurl = \"discord://42/WEBHOOK-TOKEN-XYZ?endpoint={}\"\n",
            sim.base_url().as_str().trim_end_matches('/'),
            fake.base_url().trim_end_matches('/'),
        ),
    )
    .unwrap();
    let _daemon = Daemon(
        Command::new(bin())
            .arg("--config")
            .arg(&config)
            .args(["run", "--test-poll-interval", "100ms", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "socket never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "control socket mode");

    // Recent events, then a followed stream that shows a new one.
    fake.wait_for(2, Duration::from_secs(10)).await.unwrap(); // supervisor_start + startup_summary
    let recent = cli(&config, &["events", "--json"]);
    assert!(recent.status.success());
    let kinds: Vec<String> = String::from_utf8_lossy(&recent.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["supervisor_start", "startup_summary"]);
    let mut follow = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .args(["events", "--follow", "--limit", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.start_rental("ctl", 7, "r", vec![0u32], RentalKind::OnDemand, 10.0)
        .unwrap();
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a followed event");
    assert!(
        line.contains("rental_start") && line.contains("[ctl]"),
        "{line}"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // notify-test goes through the target and reports the service's answer.
    let before = fake.received_by(FakeService::Discord).len();
    let test = cli(&config, &["notify-test", "chat"]);
    let answer = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "{answer} {}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(answer.contains("accepted"), "{answer}");
    assert!(
        !answer.contains("WEBHOOK-TOKEN-XYZ"),
        "no token in the answer: {answer}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while fake.received_by(FakeService::Discord).len() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the test message arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An unknown target is a usage error (this used to exit 1).
    let unknown = cli(&config, &["notify-test", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no target named \"nope\""));

    let status = cli(&config, &["status", "--json"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("\"chat\""));
    assert!(
        !text.contains("WEBHOOK-TOKEN-XYZ") && !text.contains("KEY-ctl"),
        "no secret in status"
    );
    sim.shutdown();
}

/// `status` as an unprivileged user: through `setpriv` as nobody when the tests run as root.
fn status_as_other_user(socket: &Path, root: bool) -> Output {
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        c
    } else {
        Command::new(bin())
    };
    cmd.arg("status")
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap()
}

fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_socket_we_may_not_use_names_its_group_and_only_a_dead_socket_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let socket = run.join("ctl.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let root = id("-u") == "0";
    // As packaged: the daemon's directory and socket belong to its group, closed to others.
    let group = if root {
        std::os::unix::fs::chown(&run, None, Some(1)).unwrap();
        std::os::unix::fs::chown(&socket, None, Some(1)).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o750)).unwrap();
        "daemon".to_string() // gid 1 on Debian
    } else {
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o000)).unwrap();
        id("-gn")
    };
    let denied = status_as_other_user(&socket, root);
    let err = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(1), "{err}");
    assert!(
        err.contains("permission denied on the control socket"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "join the group {group} (sudo usermod -aG {group} $USER"
        )),
        "{err}"
    );
    assert!(!err.contains("not running"), "{err}");

    // Nothing listens any more: that alone is exit 3.
    drop(listener);
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    let gone = Command::new(bin())
        .arg("status")
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not running"));
}
