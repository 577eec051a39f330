//! The real `vast-supervisor` binary under test, for crash, restart and systemd tests: a
//! configuration directory from [`write_main_config`] (which puts the control socket next to it,
//! at `<config>/../control.sock`), the daemon started from it, killed with SIGKILL, signalled,
//! stopped with SIGTERM. Included with `#[path = "support/daemon.rs"] mod daemon;`.
#![allow(dead_code)] // each test uses some of these

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Creates `<dir>/etc` with `conf.d/` and a main file that keeps the state in `<dir>/state` and
/// the control socket at `<dir>/control.sock`, plus `extra` lines; returns the `etc` directory.
pub fn write_main_config(dir: &Path, extra: &str) -> PathBuf {
    let config = dir.join("etc");
    std::fs::create_dir_all(config.join("conf.d")).unwrap();
    std::fs::write(
        config.join("vast-supervisor.toml"),
        format!(
            "state_dir = \"{}\"\ncontrol_socket = \"{}\"\n{extra}",
            dir.join("state").display(),
            dir.join("control.sock").display()
        ),
    )
    .unwrap();
    config
}

pub struct Daemon {
    config: PathBuf,
    /// `run` options after `--config DIR` (the bench-only short intervals).
    args: Vec<String>,
    /// Environment changes: a value to set, or `None` to remove the variable.
    env: Vec<(String, Option<OsString>)>,
    child: Option<Child>,
}

impl Daemon {
    pub fn new(config: PathBuf, args: &[&str]) -> Daemon {
        Daemon {
            config,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            child: None,
        }
    }

    /// Sets (`Some`) or removes (`None`) an environment variable of the daemon's process.
    pub fn with_env(mut self, key: &str, value: Option<&std::ffi::OsStr>) -> Daemon {
        self.env.push((key.to_string(), value.map(OsString::from)));
        self
    }

    pub fn start(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vast-supervisor"));
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .args(&self.args)
            .arg("-q")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in &self.env {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        self.child = Some(command.spawn().expect("start the daemon"));
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().unwrap();
        }
    }

    /// Sends `SIG<name>` once the daemon handles signals (its control socket is open by then).
    pub fn signal(&self, name: &str) {
        self.wait_ready();
        let pid = self.child.as_ref().expect("the daemon runs").id();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Whether the daemon still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon runs").id()
    }

    /// Limits the size of the files the daemon writes (RLIMIT_FSIZE, set from outside with
    /// prlimit): with `Some(0)` every write to a file fails with EFBIG, as on a full disk (the
    /// daemon ignores SIGXFSZ). `None` lifts the limit. Works without privileges and as root.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        limit_file_size(self.pid(), bytes);
    }

    pub fn wait_ready(&self) {
        wait_for_socket(&self.config.parent().unwrap().join("control.sock"));
    }

    /// SIGTERM, then waits (10 s at most) for a clean exit.
    pub fn terminate(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal("TERM");
        let mut c = self.child.take().expect("the daemon runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "SIGTERM exits 0, got {status}");
                return;
            }
            if Instant::now() > deadline {
                c.kill().unwrap();
                panic!("daemon did not stop within 10s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits (10 s at most) until a daemon answers on `socket`.
pub fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "daemon not ready within 10s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP port free right now on 127.0.0.1 (for `http_listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// See [`Daemon::limit_file_size`].
pub fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let limit = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain values in, no old limit read back.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
