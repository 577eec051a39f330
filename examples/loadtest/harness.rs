//! The load harness behind `cargo run --release --example loadtest` (docs/BENCHMARKS.md) and
//! `tests/loadtest_smoke.rs` (CI runs it small).
//!
//! It starts the simulated Vast cloud and a fake webhook in this process, writes a configuration
//! directory the way a real install looks (one file per account), starts the supervisor as a
//! child process through the real `run` code path, changes rentals at a fixed rate, and measures:
//! - the child's RSS (VmRSS, VmHWM) and CPU time per second of wall time, from /proc;
//! - machine observations per second: machine rows the simulator served to the child;
//! - change -> webhook latency, both from the change and from the poll that first saw it;
//! - API requests per account per minute, by route (politeness);
//! - READY (spawn -> the control socket answers `status`), the first poll, the startup summary,
//!   `status` round trips while every machine is watched, and `reload` of every file.
//!
//! It judges nothing: callers print the figures or check that they are sane. It owns nothing
//! in the daemon and touches it only through its configuration files, its control socket and
//! signals, like an operator would.

#![allow(dead_code)] // the example and the smoke test use different parts

#[path = "dashboard.rs"]
pub mod dashboard;

use anyhow::{bail, Context as _};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vast_supervisor::control::{request, ControlRequest};
use vast_supervisor::event::EventKind;
use vast_supervisor::sim::targets::FakeServices;
use vast_supervisor::sim::{InstanceSpec, MachineSpec, RentalKind, SimCloud, SimHandle};

/// Below this the poll interval cannot be written in a configuration file; the hidden
/// `--test-poll-interval` flag of `run` sets it (benchmarks and tests only).
const MIN_CONFIG_POLL: Duration = Duration::from_secs(10);

/// How the supervisor is started: `program leading_args.. run --config DIR [...]`.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub leading_args: Vec<String>,
}

impl Launcher {
    /// `LOADTEST_WRAP="valgrind --tool=massif"` (or any other wrapper) runs the supervisor under it.
    fn command(&self, config: &Path, poll_override: Option<Duration>) -> Command {
        let wrap = std::env::var("LOADTEST_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut cmd = match wrap.next() {
            Some(wrapper) => {
                let mut cmd = Command::new(wrapper);
                cmd.args(wrap).arg(&self.program);
                cmd
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.leading_args)
            .arg("run")
            .arg("--config")
            .arg(config);
        if let Some(poll) = poll_override {
            cmd.arg("--test-poll-interval")
                .arg(format!("{}ms", poll.as_millis()));
        }
        cmd
    }
}

/// What to simulate and for how long.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSpec {
    pub accounts: usize,
    /// Machines per account.
    pub machines: usize,
    /// Renter instances per account (0: the accounts watch machines only).
    pub instances: usize,
    pub gpus_per_machine: u32,
    #[serde(serialize_with = "ser_ms")]
    pub poll: Duration,
    /// Rental changes (start or end) per second, spread over every machine.
    pub rate: f64,
    /// The measured window, after start-up.
    #[serde(serialize_with = "ser_ms")]
    pub duration: Duration,
    /// Ask the control socket for `status` this often during the window.
    #[serde(skip)]
    pub status_every: Option<Duration>,
    /// Time `reload` after the window: unchanged files, then every file changed.
    pub reload: bool,
    /// Serve the dashboard (`http_listen`) and time its pages and API after the window ...
    pub dashboard: bool,
    /// ... and its first render in Chromium, when installed.
    pub browser: bool,
    pub seed: u64,
    /// Keep this many idle connections and `events --follow` clients on the control socket
    /// during the window (the `status` figures are then taken among them).
    #[serde(skip)]
    pub crowd: Option<(usize, usize)>,
}

impl LoadSpec {
    /// SPEC §10 density: 100 accounts x 50 machines x 10 instances at a 30 s poll.
    pub fn density() -> LoadSpec {
        LoadSpec {
            accounts: 100,
            machines: 50,
            instances: 10,
            gpus_per_machine: 4,
            poll: Duration::from_secs(30),
            rate: 2.0,
            duration: Duration::from_secs(120),
            // Rare enough not to weigh on the CPU figure (a 2.3 MB answer costs the daemon
            // about 20 ms), often enough for a distribution.
            status_every: Some(Duration::from_secs(5)),
            reload: true,
            dashboard: false,
            browser: false,
            seed: 0x10ad,
            crowd: None,
        }
    }

    /// A few seconds with 3 accounts x 5 machines (CI).
    pub fn smoke() -> LoadSpec {
        LoadSpec {
            accounts: 3,
            machines: 5,
            instances: 2,
            gpus_per_machine: 4,
            poll: Duration::from_millis(200),
            rate: 4.0,
            duration: Duration::from_secs(3),
            status_every: Some(Duration::from_millis(500)),
            reload: true,
            dashboard: true,
            browser: false,
            seed: 0x5e0e,
            crowd: None,
        }
    }
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Order statistics of a sample, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    pub fn of(mut ms: Vec<f64>) -> Stats {
        if ms.is_empty() {
            return Stats::default();
        }
        ms.sort_by(|a, b| a.total_cmp(b));
        // Nearest rank: the smallest value with at least q of the sample at or below it.
        let rank = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Stats {
            n: ms.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: ms[ms.len() - 1],
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub accounts: usize,
    pub machines_total: usize,
    pub instances_total: usize,
    pub poll_ms: f64,
    /// Spawn -> the control socket answers `status`.
    pub ready_ms: f64,
    /// Spawn -> the first API request.
    pub first_request_ms: f64,
    /// Spawn -> every account has asked for its machine list.
    pub all_first_polls_ms: f64,
    /// Spawn -> the webhook received `startup_summary`.
    pub startup_summary_ms: Option<f64>,
    /// CPU seconds the child spent from spawn until the window started.
    pub startup_cpu_s: f64,
    pub window_s: f64,
    /// The child's resident set at the end of the window, and its peak.
    pub rss_mib: f64,
    pub hwm_mib: f64,
    /// The child's CPU seconds per wall second in the window (1.0 = one core busy).
    pub cpu_fraction: f64,
    /// The same for this process (simulator, webhook, driver).
    pub harness_cpu_fraction: f64,
    pub observations: u64,
    pub observations_per_s: f64,
    /// Observations per CPU second of the child: the per-core rate.
    pub observations_per_cpu_s: f64,
    /// API requests per account per minute: requests per poll times polls per minute (the
    /// window's edges would skew a plain count at a 30 s poll).
    pub requests_per_account_per_min: f64,
    /// Mean time between two machine-list requests of one account.
    pub mean_poll_interval_ms: f64,
    pub requests_per_poll: f64,
    pub requests_by_route: BTreeMap<String, f64>,
    pub changes: usize,
    pub delivered: usize,
    /// Webhook messages about machines that no change explains (false events).
    pub unexpected: Vec<String>,
    /// Poll that first served the change -> webhook receipt.
    pub pipeline_latency_ms: Stats,
    /// The change itself -> webhook receipt (includes waiting for the next poll).
    pub change_latency_ms: Stats,
    pub status_ms: Stats,
    pub status_bytes: usize,
    pub dashboard: Option<dashboard::DashboardReport>,
    pub reload_unchanged_ms: Option<f64>,
    pub reload_all_changed_ms: Option<f64>,
    pub reload_lines: Vec<String>,
}

/// A rental change the driver made, and what the webhook should receive for it.
#[derive(Debug, Clone)]
struct Change {
    account: String,
    machine: u64,
    kind: &'static str,
    /// Taken right before the simulator applied the change.
    at: Instant,
}

/// What the harness keeps of each API request.
#[derive(Debug, Clone)]
struct Req {
    account: Option<String>,
    route: &'static str,
    at: Instant,
    /// When the simulator had the answer ready (its body built).
    answered: Instant,
}

/// A machine the driver may change.
struct Slot {
    account: String,
    id: u64,
    rental: Option<String>,
    last_change: Option<Instant>,
}

fn account_name(i: usize) -> String {
    format!("acct-{i:03}")
}

fn account_key(i: usize) -> String {
    format!("KEY-LOAD-{i:03}-0123456789abcdef")
}

fn machine_id(account: usize, m: usize) -> u64 {
    100_000 + account as u64 * 1000 + m as u64
}

/// Runs one load test. `launcher` starts the supervisor.
pub fn run(spec: &LoadSpec, launcher: &Launcher) -> anyhow::Result<LoadReport> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(spec, launcher))
}

async fn run_async(spec: &LoadSpec, launcher: &Launcher) -> anyhow::Result<LoadReport> {
    let tmp = tempfile::Builder::new().prefix("vs-load").tempdir()?;
    // LOADTEST_KEEP=1 keeps the configuration, state and daemon log for a look afterwards.
    let (_guard, dir) = if std::env::var_os("LOADTEST_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("keeping {}", kept.display());
        (None, kept)
    } else {
        let path = tmp.path().to_path_buf();
        (Some(tmp), path)
    };
    let dir = dir.as_path();
    let sim = SimCloud::start("127.0.0.1:0".parse()?).await?;
    let fake = FakeServices::try_start().await?;
    let mut slots = populate(&sim, spec)?;
    let http_port = spec
        .dashboard
        .then(|| std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()))
        .transpose()?
        .map(|a| a.port());
    let config = write_config(dir, spec, &sim, &fake, http_port)?;
    let poll_override = (spec.poll < MIN_CONFIG_POLL).then_some(spec.poll);
    let log_path = dir.join("daemon.log");
    let log = std::fs::File::create(&log_path)?;
    let spawned = Instant::now();
    let child = launcher
        .command(&config, poll_override)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", launcher.program.display()))?;
    let mut daemon = Daemon { child: Some(child) };
    let pid = daemon.pid();
    let socket = dir.join("control.sock");
    let result = measure(
        spec, &sim, &fake, &mut slots, &config, &socket, pid, spawned,
    )
    .await;
    let result = match (result, http_port) {
        (Ok(mut report), Some(port)) => {
            let base = format!("http://127.0.0.1:{port}");
            dashboard::measure(&base, machine_id(0, 0), spec.browser)
                .await
                .map(|d| {
                    report.dashboard = Some(d);
                    report
                })
        }
        (other, _) => other,
    };
    let stopped = daemon.terminate().await;
    sim.shutdown();
    match (result, stopped) {
        (Ok(report), Ok(())) => Ok(report),
        (Err(e), _) | (Ok(_), Err(e)) => {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(e.context(format!("daemon log (last lines):\n{}", tail.join("\n"))))
        }
    }
}

/// Accounts, machines (a third of them already rented) and instances in the simulator.
fn populate(sim: &SimHandle, spec: &LoadSpec) -> anyhow::Result<Vec<Slot>> {
    let mut slots = Vec::new();
    for a in 0..spec.accounts {
        let name = account_name(a);
        sim.add_account(&account_key(a), &name);
        for m in 0..spec.machines {
            let id = machine_id(a, m);
            let spec_m = MachineSpec::new(
                id,
                &format!("{name}-rig-{m:02}"),
                spec.gpus_per_machine,
                "RTX 4090",
            );
            sim.add_machine(&name, spec_m)?;
            let rental = if m % 3 == 0 {
                let r = format!("pre-{id}");
                sim.start_rental(&name, id, &r, 2u32, RentalKind::OnDemand, 40.0)?;
                Some(r)
            } else {
                None
            };
            slots.push(Slot {
                account: name.clone(),
                id,
                rental,
                last_change: None,
            });
        }
        for i in 0..spec.instances {
            sim.add_instance(
                &name,
                InstanceSpec {
                    label: Some(format!("{name}-job-{i}")),
                    num_gpus: Some(1),
                    gpu_name: Some("RTX 4090".into()),
                    dph_base: Some(0.4),
                    actual_status: Some("running".into()),
                    ..InstanceSpec::default()
                },
            )?;
        }
    }
    Ok(slots)
}

fn account_file(spec: &LoadSpec, sim: &SimHandle, a: usize, extra: &str) -> String {
    let mut text = format!(
        "[[account]]\nname = \"{}\"\napi_key = \"{}\"\napi_url = \"{}\"\n",
        account_name(a),
        account_key(a),
        sim.base_url().as_str().trim_end_matches('/'),
    );
    if spec.instances > 0 {
        text.push_str("watch = [\"machines\", \"instances\"]\n");
    }
    if spec.poll >= MIN_CONFIG_POLL {
        text.push_str(&format!("poll_interval = \"{}s\"\n", spec.poll.as_secs()));
    }
    text.push_str(extra);
    text
}

/// vast-supervisor.toml (with `http_listen` on `http_port`, if given) plus conf.d/ with the
/// webhook target and one file per account.
fn write_config(
    dir: &Path,
    spec: &LoadSpec,
    sim: &SimHandle,
    fake: &FakeServices,
    http_port: Option<u16>,
) -> anyhow::Result<PathBuf> {
    let config = dir.join("etc");
    std::fs::create_dir_all(config.join("conf.d"))?;
    std::fs::write(
        config.join("vast-supervisor.toml"),
        format!(
            "state_dir = \"{}\"\ncontrol_socket = \"{}\"\n{}",
            dir.join("state").display(),
            dir.join("control.sock").display(),
            http_port.map_or(String::new(), |p| format!(
                "http_listen = \"127.0.0.1:{p}\"\n"
            )),
        ),
    )?;
    // startup_summary carries every machine's summary (megabytes with 5,000 machines), which a
    // webhook refuses with 413; the daemon then disables the target for good. It goes to a file
    // instead, and the webhook gets every other event (docs/BENCHMARKS.md, "findings").
    let webhook_events: Vec<String> = EventKind::ALL
        .iter()
        .filter(|k| **k != EventKind::StartupSummary)
        .map(|k| format!("\"{}\"", k.as_str()))
        .collect();
    std::fs::write(
        config.join("conf.d/000-targets.toml"),
        format!(
            "[[target]]\nname = \"bench-webhook\"\nurl = \"json://{}/hook\"\nevents = [{}]\n\n\
             [[target]]\nname = \"bench-startup\"\nurl = \"file://{}\"\nevents = [\"startup_summary\"]\n",
            fake.addr(),
            webhook_events.join(", "),
            dir.join("startup.jsonl").display(),
        ),
    )?;
    for a in 0..spec.accounts {
        std::fs::write(
            config.join(format!("conf.d/{:03}-{}.toml", a + 1, account_name(a))),
            account_file(spec, sim, a, ""),
        )?;
    }
    Ok(config)
}

/// The child process; killed if dropped while running.
struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after 20 s).
    async fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            bail!("the daemon exited during the run");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("the daemon exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the daemon did not stop within 20 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU time (user + system) and memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_s: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Reads `/proc/{pid}/stat` and `/proc/{pid}/status` ("self" for this process).
pub fn proc_sample(pid: &str) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 2..])
        .context("unreadable /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("short /proc stat")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu_s: ticks / clock_ticks(),
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// Requests the simulator recorded, drained into a compact log.
#[derive(Default)]
struct RequestLog {
    reqs: Vec<Req>,
}

impl RequestLog {
    fn drain(&mut self, sim: &SimHandle) {
        self.reqs
            .extend(sim.take_requests().into_iter().map(|r| Req {
                account: r.account,
                route: r.route,
                at: r.at,
                answered: r.answered,
            }));
    }
}

/// One `status` round trip over the control socket: (milliseconds, reply bytes).
async fn status_once(socket: &Path) -> anyhow::Result<(f64, usize)> {
    let started = Instant::now();
    let mut reply = None;
    request(socket, &ControlRequest::Status, |v| {
        reply = Some(v);
        false
    })
    .await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let reply = reply.context("no reply to status")?;
    Ok((ms, serde_json::to_string(&reply)?.len()))
}

/// Keeps `idle` connections that send nothing (reopened before the daemon's 2 s request timeout
/// closes them) and `follow` clients streaming events on the control socket.
async fn crowd(socket: PathBuf, idle: usize, follow: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..follow {
        let socket = socket.clone();
        tokio::spawn(async move {
            let Ok(mut s) = tokio::net::UnixStream::connect(&socket).await else {
                return;
            };
            let request = b"{\"cmd\":\"events\",\"follow\":true,\"limit\":0}\n";
            if s.write_all(request).await.is_err() {
                return;
            }
            let mut sink = vec![0u8; 64 * 1024];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        });
    }
    loop {
        let mut open = Vec::with_capacity(idle);
        for _ in 0..idle {
            if let Ok(s) = tokio::net::UnixStream::connect(&socket).await {
                open.push(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(open);
    }
}

async fn reload_once(socket: &Path) -> anyhow::Result<(f64, Vec<String>)> {
    let started = Instant::now();
    let mut reply = None;
    request(socket, &ControlRequest::Reload, |v| {
        reply = Some(v);
        false
    })
    .await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let lines = reply
        .as_ref()
        .and_then(|r| r.get("lines"))
        .and_then(|l| l.as_array())
        .map(|l| {
            l.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((ms, lines))
}

/// A webhook message, reduced to what matching needs.
#[derive(Debug, Clone)]
struct Receipt {
    kind: String,
    account: Option<String>,
    machine: Option<u64>,
    at: Instant,
}

fn receipts(fake: &FakeServices) -> Vec<Receipt> {
    fake.received()
        .into_iter()
        .filter_map(|r| {
            let v = r.json()?;
            let machine = (v["subject"]["type"] == "machine")
                .then(|| v["subject"]["id"].as_u64())
                .flatten();
            Some(Receipt {
                kind: v["kind"].as_str()?.to_string(),
                account: v["account"].as_str().map(str::to_string),
                machine,
                at: r.at,
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    spec: &LoadSpec,
    sim: &SimHandle,
    fake: &FakeServices,
    slots: &mut [Slot],
    config: &Path,
    socket: &Path,
    pid: u32,
    spawned: Instant,
) -> anyhow::Result<LoadReport> {
    let pid_s = pid.to_string();
    let mut report = LoadReport {
        accounts: spec.accounts,
        machines_total: spec.accounts * spec.machines,
        instances_total: spec.accounts * spec.instances,
        poll_ms: spec.poll.as_secs_f64() * 1000.0,
        ..LoadReport::default()
    };
    let mut log = RequestLog::default();

    // READY: the control socket answers status.
    let deadline = spawned + Duration::from_secs(60);
    loop {
        if status_once(socket).await.is_ok() {
            report.ready_ms = spawned.elapsed().as_secs_f64() * 1000.0;
            break;
        }
        if Instant::now() > deadline {
            bail!("the control socket did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Every account's first poll, then the startup summary.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        log.drain(sim);
        let polled: std::collections::HashSet<&str> = log
            .reqs
            .iter()
            .filter(|r| r.route == "machines")
            .filter_map(|r| r.account.as_deref())
            .collect();
        if polled.len() >= spec.accounts {
            let first = log.reqs.iter().map(|r| r.at).min().unwrap_or(spawned);
            let last_first = (0..spec.accounts)
                .filter_map(|a| {
                    let name = account_name(a);
                    log.reqs
                        .iter()
                        .find(|r| r.route == "machines" && r.account.as_deref() == Some(&name))
                        .map(|r| r.at)
                })
                .max()
                .unwrap_or(spawned);
            report.first_request_ms = (first - spawned).as_secs_f64() * 1000.0;
            report.all_first_polls_ms = (last_first - spawned).as_secs_f64() * 1000.0;
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {} accounts polled within 120 s",
                polled.len(),
                spec.accounts
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let summary_file = config.parent().unwrap_or(config).join("startup.jsonl");
    let summary_deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < summary_deadline {
        if std::fs::read(&summary_file).is_ok_and(|b| b.ends_with(b"\n")) {
            report.startup_summary_ms = Some(spawned.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Let the adoption commits settle before the window opens.
    tokio::time::sleep(Duration::from_millis(500).min(spec.poll)).await;

    // The measured window.
    let crowd = spec
        .crowd
        .map(|(idle, follow)| tokio::spawn(crowd(socket.to_path_buf(), idle, follow)));
    let child0 = proc_sample(&pid_s)?;
    let self0 = proc_sample("self")?;
    let t0 = Instant::now();
    report.startup_cpu_s = child0.cpu_s;
    log.drain(sim);
    log.reqs.clear();
    let mut changes: Vec<Change> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let mut status_ms = Vec::new();
    let mut status_bytes = 0;
    let tick = if spec.rate > 0.0 {
        Duration::from_secs_f64(1.0 / spec.rate)
    } else {
        spec.duration
    };
    let mut next_change = t0;
    let mut next_status = t0;
    let mut next_drain = t0;
    let mut hwm = 0;
    let end = t0 + spec.duration;
    // Two changes to one machine within a poll would merge; leave each machine alone a while.
    let quiet = spec.poll * 3;
    let mut counter = 0u64;
    while Instant::now() < end {
        let now = Instant::now();
        if spec.rate > 0.0 && now >= next_change {
            next_change += tick;
            for _ in 0..50 {
                let slot = &mut slots[rng.gen_range(0..slots.len())];
                if slot.last_change.is_some_and(|t| now - t < quiet) {
                    continue;
                }
                let at = Instant::now();
                let kind = match slot.rental.take() {
                    Some(r) => {
                        sim.end_rental(&slot.account, slot.id, &r)?;
                        "rental_end"
                    }
                    None => {
                        counter += 1;
                        let r = format!("load-{counter}");
                        sim.start_rental(
                            &slot.account,
                            slot.id,
                            &r,
                            2u32,
                            RentalKind::OnDemand,
                            25.0,
                        )?;
                        slot.rental = Some(r);
                        "rental_start"
                    }
                };
                slot.last_change = Some(at);
                changes.push(Change {
                    account: slot.account.clone(),
                    machine: slot.id,
                    kind,
                    at,
                });
                break;
            }
        }
        if let Some(every) = spec.status_every {
            if now >= next_status {
                next_status += every;
                let (ms, bytes) = status_once(socket).await?;
                status_ms.push(ms);
                status_bytes = bytes;
            }
        }
        if now >= next_drain {
            next_drain += Duration::from_secs(1);
            log.drain(sim);
            hwm = hwm.max(proc_sample(&pid_s)?.rss_kib);
        }
        let mut wake = next_drain.min(end);
        if spec.rate > 0.0 {
            wake = wake.min(next_change);
        }
        if spec.status_every.is_some() {
            wake = wake.min(next_status);
        }
        tokio::time::sleep_until(wake.into()).await;
    }
    if let Some(crowd) = crowd {
        crowd.abort();
    }
    let child1 = proc_sample(&pid_s)?;
    let self1 = proc_sample("self")?;
    let window = t0.elapsed().as_secs_f64();
    log.drain(sim);
    report.window_s = window;
    report.cpu_fraction = (child1.cpu_s - child0.cpu_s) / window;
    report.harness_cpu_fraction = (self1.cpu_s - self0.cpu_s) / window;
    report.rss_mib = child1.rss_kib as f64 / 1024.0;
    report.hwm_mib = child1.hwm_kib.max(hwm) as f64 / 1024.0;
    report.status_ms = Stats::of(status_ms);
    report.status_bytes = status_bytes;

    // Politeness and observations, from the requests inside the window.
    let in_window: Vec<&Req> = log.reqs.iter().filter(|r| r.at >= t0).collect();
    let minutes = window / 60.0;
    let per_account_min = |n: usize| n as f64 / spec.accounts as f64 / minutes;
    let lists_in_window = in_window.iter().filter(|r| r.route == "machines").count();
    let mut gaps = Vec::new();
    for polls in polls_by_account(&log.reqs).values() {
        gaps.extend(polls.windows(2).map(|w| (w[1].0 - w[0].0).as_secs_f64()));
    }
    if !gaps.is_empty() && lists_in_window > 0 {
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        report.mean_poll_interval_ms = mean * 1000.0;
        report.requests_per_poll = in_window.len() as f64 / lists_in_window as f64;
        report.requests_per_account_per_min = report.requests_per_poll * 60.0 / mean;
    }
    let mut by_route: BTreeMap<String, usize> = BTreeMap::new();
    for r in &in_window {
        *by_route.entry(r.route.to_string()).or_default() += 1;
    }
    // Per route: the same per-poll scaling as the total.
    let per_poll = |n: usize| n as f64 / lists_in_window.max(1) as f64;
    report.requests_by_route = by_route
        .into_iter()
        .map(|(k, n)| {
            let v = if report.mean_poll_interval_ms > 0.0 {
                per_poll(n) * 60_000.0 / report.mean_poll_interval_ms
            } else {
                per_account_min(n)
            };
            (k, v)
        })
        .collect();
    let lists = in_window.iter().filter(|r| r.route == "machines").count() as u64;
    let lookups = in_window.iter().filter(|r| r.route == "machine").count() as u64;
    report.observations = lists * spec.machines as u64 + lookups;
    report.observations_per_s = report.observations as f64 / window;
    let cpu = child1.cpu_s - child0.cpu_s;
    if cpu > 0.0 {
        report.observations_per_cpu_s = report.observations as f64 / cpu;
    }

    // Wait for the events of the last changes (at most two polls and a margin).
    report.changes = changes.len();
    let drain_deadline = Instant::now() + spec.poll * 2 + Duration::from_secs(5);
    let (got, matched) = loop {
        let got = receipts(fake);
        let matched = match_changes(&changes, &got);
        if matched.iter().all(Option::is_some) || Instant::now() > drain_deadline {
            break (got, matched);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    report.unexpected = unexpected(&matched, &got);
    log.drain(sim);
    report.delivered = matched.iter().filter(|m| m.is_some()).count();
    let mut pipeline = Vec::new();
    let mut total = Vec::new();
    let mut trace = Vec::new();
    let keep_trace = std::env::var_os("LOADTEST_KEEP").is_some();
    let (now_i, now_s) = (Instant::now(), std::time::SystemTime::now());
    let unix_ms = |t: Instant| {
        let wall = now_s - (now_i - t);
        wall.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    let by_account = polls_by_account(&log.reqs);
    for (change, index) in changes.iter().zip(&matched) {
        let Some(received) = index.map(|i| &got[i].at) else {
            continue;
        };
        total.push((*received - change.at).as_secs_f64() * 1000.0);
        // The first machine list served to this account after the change saw it.
        // It is measured from the moment the answer was served (the simulator's time to build
        // the 50-row body is the API's, not the daemon's).
        if let Some((arrived, served)) = by_account.get(change.account.as_str()).and_then(|polls| {
            let i = polls.partition_point(|(t, _)| *t < change.at);
            polls.get(i).copied()
        }) {
            if served <= *received {
                pipeline.push((*received - served).as_secs_f64() * 1000.0);
                trace.push(format!(
                    "{{\"account\":\"{}\",\"machine\":{},\"kind\":\"{}\",\"poll_unix_ms\":{:.3},\"served_unix_ms\":{:.3},\"receipt_unix_ms\":{:.3}}}\n",
                    change.account,
                    change.machine,
                    change.kind,
                    unix_ms(arrived),
                    unix_ms(served),
                    unix_ms(*received)
                ));
            }
        }
    }
    if keep_trace {
        // With LOADTEST_KEEP: wall-clock times of each measured pipeline, to line up with the
        // timestamps of the daemon's log.
        std::fs::write(
            config.parent().unwrap_or(config).join("latency.jsonl"),
            trace.concat(),
        )?;
    }
    report.pipeline_latency_ms = Stats::of(pipeline);
    report.change_latency_ms = Stats::of(total);

    if spec.reload {
        let (ms, lines) = reload_once(socket).await?;
        report.reload_unchanged_ms = Some(ms);
        let conf_d = config.join("conf.d");
        for a in 0..spec.accounts {
            std::fs::write(
                conf_d.join(format!("{:03}-{}.toml", a + 1, account_name(a))),
                account_file(spec, sim, a, "error_repeat = \"7h\"\n"),
            )?;
        }
        let (ms, changed) = reload_once(socket).await?;
        report.reload_all_changed_ms = Some(ms);
        report.reload_lines = lines.into_iter().chain(changed).collect();
    }
    Ok(report)
}

/// Each account's machine-list requests, in time order: (arrived, answered).
fn polls_by_account(reqs: &[Req]) -> HashMap<&str, Vec<(Instant, Instant)>> {
    let mut map: HashMap<&str, Vec<(Instant, Instant)>> = HashMap::new();
    for r in reqs.iter().filter(|r| r.route == "machines") {
        if let Some(a) = r.account.as_deref() {
            map.entry(a).or_default().push((r.at, r.answered));
        }
    }
    for polls in map.values_mut() {
        polls.sort();
    }
    map
}

/// For each change, the index of the first unused webhook message of the same account, machine
/// and kind received after it.
fn match_changes(changes: &[Change], got: &[Receipt]) -> Vec<Option<usize>> {
    let mut used = vec![false; got.len()];
    changes
        .iter()
        .map(|c| {
            let i = got.iter().enumerate().position(|(i, r)| {
                !used[i]
                    && r.at >= c.at
                    && r.kind == c.kind
                    && r.machine == Some(c.machine)
                    && r.account.as_deref() == Some(c.account.as_str())
            })?;
            used[i] = true;
            Some(i)
        })
        .collect()
}

/// Machine events that no change explains.
fn unexpected(matched: &[Option<usize>], got: &[Receipt]) -> Vec<String> {
    got.iter()
        .enumerate()
        .filter(|(i, r)| r.machine.is_some() && !matched.contains(&Some(*i)))
        .map(|(_, r)| {
            format!(
                "{} {} m{}",
                r.kind,
                r.account.as_deref().unwrap_or("-"),
                r.machine.unwrap_or(0)
            )
        })
        .collect()
}
