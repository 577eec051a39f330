//! A simulated Vast cloud on 127.0.0.1 for the test suite, the `demo` command and users' own
//! tooling (`vast-supervisor simulate`). Owns the fake API server, its state, fault injection and
//! the scenario engine. Must not depend on the supervisor's actors or detection: it only speaks
//! the Vast API (reference/vast-api.md §7).
//!
//! - Several accounts, keyed by API key (Bearer header or legacy `?api_key=`; unknown key: 401
//!   `auth_error`, or 404 on v1 as Vast does). Every route has an optional trailing slash.
//! - Routes: `GET /api/v0/machines/`, `GET /api/v0/machines/{id}/` (bare list, `[]` when not
//!   yours), `GET /api/v0/machines/{id}/reports/`, `GET /api/v0/users/{me|current}/`,
//!   `GET /api/v0/users/{me|current}/machine-earnings/`, `GET /api/v1/instances/` (keyset pages
//!   of at most 25, `next_token` = base64 of the last id), `GET /api/v0/instances/`,
//!   `GET|PUT|DELETE /api/v0/instances/{id}/`, `PUT /api/v0/instances/request_logs/{id}/` and
//!   its `result_url` on this server (404 for the first polls, like S3).
//! - Rows are real rows (`data/*.json`, from public fixtures) with the simulated fields
//!   overridden; machine rows are derived from rental contracts (see [`world`]).
//! - Faults per account ([`Fault`]), an optional Vast-like per-endpoint rate limiter, and a
//!   record of every request (never the key itself) and of instance writes.
//!
//! # The demo script ([`demo_scenario`], `data/demo.toml`)
//!
//! | at | hostco (host: rig-01 4 GPUs, rig-02 8, rig-03 2) | labco (renter) |
//! |----|----|----|
//! | 0 s | three machines; rig-02 already rented (4 GPUs, adopted at start) | instances 5001-5005 running, credit $25 |
//! | 8 s | rental start "alice" (D, GPUs 0-1, 50 GB) on rig-01 | 5006 created (status null) |
//! | 14 s | two renters start in one step: "bob" D GPU 2, "carol" I GPU 3 | 5006 loading |
//! | 20 s | alice paused (GPUs freed, storage kept) | 5006 running |
//! | 26 s | alice resumed; two 429 (text) answers | bid instance 5002 preempted |
//! | 32 s | carol (I) preempted by "dave" (D) on GPU 3; rig-03 timeout > 0 | 5003 exits while intended running |
//! | 38 s | rig-02 error set | 5004 stopped by its user |
//! | 44 s | two 502 HTML answers | 5005 destroyed |
//! | 50 s | rig-02 error cleared | 5001 logs "DONE" |
//! | 58 s | rig-03 back (26 s offline, beyond a 20 s grace); rig-02 unlisted | |
//! | 64 s | rig-02 listed; rig-03 deverified | |
//! | 70 s | renter report on rig-01; bob ends | |
//! | 76 s | maintenance scheduled on rig-02 | |
//! | 82 s | rig-04 added; alice ends | |
//! | 88 s | rig-02 missing from one list only (a hiccup: no event); rig-03 removed | credit $3.50 |
//! | 94 s | carol's stored contract ends | |
//! | 100 s | dave ends | 5001 stopped by its user |
//!
//! The faults at 26 s and 44 s are absorbed by the client's retries and must not cause events.

pub mod faults;
pub mod scenario;
mod server;
pub mod spec;
pub mod targets;
pub mod world;

pub use faults::{Fault, FaultDuration};
pub use scenario::{
    demo_scenario, demo_scenario_toml, Action, Scenario, Step, DEMO_HOST_ACCOUNT, DEMO_HOST_KEY,
    DEMO_RENTER_ACCOUNT, DEMO_RENTER_KEY,
};
pub use spec::{
    EarningsRow, GpuSelect, InstanceSpec, MachineSpec, MaintenanceWindow, RecordedRequest,
    RentalKind, SimError, WriteAction, WriteRecord,
};

use serde_json::Value;
use server::Shared;
use std::future::Future;
use std::io;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;
use world::World;

/// Starts simulated clouds.
pub struct SimCloud;

impl SimCloud {
    /// Binds `addr` (port 0 picks a free port) and serves until [`SimHandle::shutdown`] or the
    /// end of the runtime. Must be called inside a tokio runtime (an actix `System` is one).
    pub async fn start(addr: SocketAddr) -> io::Result<SimHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let base_url = Url::parse(&format!("http://{local_addr}/")).map_err(io::Error::other)?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(base_url.clone())),
            shutdown,
        });
        tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(SimHandle {
            shared,
            base_url,
            local_addr,
        })
    }
}

/// Control of a running simulated cloud. Cheap to clone; all clones drive the same cloud.
/// `account` parameters take an account's key or its name.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    base_url: Url,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.base_url.as_str())
            .finish()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT/`: the `api_url` to give the client.
    pub fn base_url(&self) -> Url {
        self.base_url.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.shared.world())
    }

    // ----- accounts -----

    /// Adds an account (or renames the one with this key).
    pub fn add_account(&self, key: &str, name: &str) {
        self.with(|w| w.add_account(key, name))
    }

    /// `(name, key)` of every account.
    pub fn accounts(&self) -> Vec<(String, String)> {
        self.with(|w| w.account_keys())
    }

    pub fn set_credit(&self, account: &str, credit: f64) -> Result<(), SimError> {
        self.with(|w| w.set_credit(account, credit))
    }

    pub fn set_earnings(
        &self,
        account: &str,
        per_machine: Vec<EarningsRow>,
    ) -> Result<(), SimError> {
        self.with(|w| w.set_earnings(account, per_machine))
    }

    // ----- machines and rentals -----

    pub fn add_machine(&self, account: &str, spec: MachineSpec) -> Result<(), SimError> {
        self.with(|w| w.add_machine(account, spec))
    }

    /// The machine disappears from the list and its single lookup answers `[]`.
    pub fn remove_machine(&self, machine: u64) -> Result<(), SimError> {
        self.with(|w| w.remove_machine(machine))
    }

    /// The next list response leaves the machine out; the single lookup still returns it.
    pub fn hide_from_list_once(&self, machine: u64) -> Result<(), SimError> {
        self.with(|w| w.hide_from_list_once(machine))
    }

    /// A new rental contract on `gpus` (indices, or a count of free GPUs), holding `disk_gb`.
    pub fn start_rental(
        &self,
        account: &str,
        machine: u64,
        rental: &str,
        gpus: impl Into<GpuSelect>,
        kind: RentalKind,
        disk_gb: f64,
    ) -> Result<(), SimError> {
        let gpus = gpus.into();
        self.with(|w| w.start_rental(account, machine, rental, gpus, kind, disk_gb, None))
    }

    /// GPUs released, storage kept.
    pub fn pause_rental(&self, account: &str, machine: u64, rental: &str) -> Result<(), SimError> {
        self.with(|w| w.pause_rental(account, machine, rental))
    }

    /// A paused rental takes its own GPUs again (fails if another rental runs on them).
    pub fn resume_rental(&self, account: &str, machine: u64, rental: &str) -> Result<(), SimError> {
        self.with(|w| w.resume_rental(account, machine, rental))
    }

    /// The contract ends: GPUs and storage released.
    pub fn end_rental(&self, account: &str, machine: u64, rental: &str) -> Result<(), SimError> {
        self.with(|w| w.end_rental(account, machine, rental))
    }

    /// The running interruptible `interruptible` loses its GPUs to the new rental `by` in one
    /// step (tokens go `I`->`D` without `x`); it keeps its storage.
    pub fn preempt(
        &self,
        account: &str,
        machine: u64,
        interruptible: &str,
        by: &str,
        kind: RentalKind,
        disk_gb: f64,
    ) -> Result<(), SimError> {
        self.with(|w| w.preempt(account, machine, interruptible, by, kind, disk_gb))
    }

    pub fn set_timeout(&self, machine: u64, secs: f64) -> Result<(), SimError> {
        self.with(|w| w.set_timeout(machine, secs))
    }

    pub fn set_error(&self, machine: u64, error: Option<&str>) -> Result<(), SimError> {
        self.with(|w| w.set_error(machine, error.map(str::to_string)))
    }

    pub fn set_listed(&self, machine: u64, listed: bool) -> Result<(), SimError> {
        self.with(|w| w.set_listed(machine, listed))
    }

    pub fn set_verification(&self, machine: u64, verification: &str) -> Result<(), SimError> {
        self.with(|w| w.set_verification(machine, verification))
    }

    pub fn add_report(&self, machine: u64, problem: &str, message: &str) -> Result<(), SimError> {
        self.with(|w| w.add_report(machine, problem, message))
    }

    /// Replaces the machine's maintenance windows (empty: `machine_maintenance` null).
    pub fn set_maintenance(
        &self,
        machine: u64,
        windows: Vec<MaintenanceWindow>,
    ) -> Result<(), SimError> {
        self.with(|w| w.set_maintenance(machine, windows))
    }

    /// The machine row as the API serves it now (no faults applied).
    pub fn machine_row(&self, machine: u64) -> Option<Value> {
        self.with(|w| w.machine_row_of(machine))
    }

    // ----- instances -----

    /// Adds an instance; returns its id.
    pub fn add_instance(&self, account: &str, spec: InstanceSpec) -> Result<u64, SimError> {
        self.with(|w| w.add_instance(account, spec))
    }

    /// Sets `actual_status` (`None`: null), `intended_status` and, if given, `status_msg`.
    pub fn set_instance_status(
        &self,
        instance: u64,
        actual: Option<&str>,
        intended: &str,
        status_msg: Option<&str>,
    ) -> Result<(), SimError> {
        self.with(|w| w.set_instance_status(instance, actual, intended, status_msg))
    }

    /// A bid instance outbid: stopped while intended running, contract stopped.
    pub fn preempt_instance(&self, instance: u64) -> Result<(), SimError> {
        self.with(|w| w.preempt_instance(instance))
    }

    /// Gone: lists omit it, the single lookup answers `{"instances": null}`.
    pub fn destroy_instance(&self, instance: u64) -> Result<(), SimError> {
        self.with(|w| w.destroy_instance(instance))
    }

    pub fn append_instance_log(&self, instance: u64, line: &str) -> Result<(), SimError> {
        self.with(|w| w.append_instance_log(instance, line))
    }

    /// How many polls of a log `result_url` answer 404 before the text (default 1).
    pub fn set_log_delay(&self, polls: u32) {
        self.with(|w| w.set_log_delay(polls))
    }

    /// The instance row as the API serves it now (no faults applied).
    pub fn instance_row(&self, instance: u64) -> Option<Value> {
        self.with(|w| w.instance_row_of(instance))
    }

    // ----- faults -----

    pub fn inject_fault(
        &self,
        account: &str,
        fault: Fault,
        duration: FaultDuration,
    ) -> Result<(), SimError> {
        self.with(|w| w.inject_fault(account, fault, duration))
    }

    pub fn clear_faults(&self, account: &str) -> Result<(), SimError> {
        self.with(|w| w.clear_faults(account))
    }

    /// Like Vast: a key calling one endpoint again within `min_interval` gets a 429 in `style`.
    pub fn enable_rate_limit(&self, min_interval: Duration, style: Fault) {
        self.with(|w| w.set_rate_limit(Some((min_interval, style))))
    }

    pub fn disable_rate_limit(&self) {
        self.with(|w| w.set_rate_limit(None))
    }

    // ----- records -----

    /// Every request received (oldest first; the last 100,000).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.with(|w| w.requests())
    }

    pub fn clear_requests(&self) {
        self.with(|w| w.clear_requests())
    }

    /// Every request received since the last call (or since the start), and forgets them, in
    /// one step: a long benchmark drains the record periodically so that the bounded ring
    /// never drops a request it has not seen.
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        self.with(|w| w.take_requests())
    }

    /// Instance writes received through the API (start, stop, label, destroy).
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.with(|w| w.writes())
    }

    // ----- scenarios -----

    /// Applies one action.
    pub fn apply(&self, action: &Action) -> Result<(), SimError> {
        self.with(|w| action.apply(w))
    }

    /// Applies step `index` of `scenario` atomically (no request sees it half done).
    pub fn apply_step(&self, scenario: &Scenario, index: usize) -> Result<(), SimError> {
        let step = scenario.steps.get(index).ok_or_else(|| {
            SimError::Scenario(format!(
                "no step {} (the scenario has {} steps)",
                index + 1,
                scenario.len()
            ))
        })?;
        self.with(|w| scenario::apply_step(w, step, index))
    }

    /// Plays the scenario on the clock from now: each step at its `at` offset. A failing step
    /// is logged and skipped; the task returns the first such error once all steps ran.
    pub fn run_scenario(&self, scenario: Scenario) -> JoinHandle<Result<(), SimError>> {
        let handle = self.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut first_error = None;
            for (index, step) in scenario.steps.iter().enumerate() {
                if let Some(at) = step.at {
                    tokio::time::sleep_until(start + at).await;
                }
                match handle.with(|w| scenario::apply_step(w, step, index)) {
                    Ok(()) => tracing::debug!(
                        step = index + 1,
                        label = step.label.as_deref().unwrap_or(""),
                        "simulator: step applied"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "simulator: step failed");
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// `vast-supervisor simulate`: serves the simulated cloud on `listen`, plays `scenario` (a TOML
/// file) or the built-in demo, prints the base URL and a configuration snippet per account to
/// stdout, and runs until Ctrl+C.
pub async fn run_simulate(listen: SocketAddr, scenario: Option<PathBuf>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    simulate_until(
        listen,
        scenario.as_deref(),
        &mut stdout,
        crate::signals::ctrl_c(),
    )
    .await
}

/// [`run_simulate`] with the output and the stop signal given by the caller.
pub async fn simulate_until(
    listen: SocketAddr,
    scenario: Option<&Path>,
    out: &mut (dyn Write + Send),
    stop: impl Future<Output = io::Result<()>>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let scenario = match scenario {
        Some(path) => Scenario::from_file(path)?,
        None => demo_scenario(),
    };
    let sim = SimCloud::start(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let base_url = sim.base_url();
    writeln!(out, "simulated Vast API at {base_url}")?;
    writeln!(
        out,
        "scenario: {} steps over {}; Ctrl+C to stop",
        scenario.len(),
        crate::util::format_duration(scenario.duration())
    )?;
    let accounts = scenario.accounts();
    let run = sim.run_scenario(scenario);
    // Print the accounts only once the first step has created them, so a client that starts
    // polling as soon as it reads its key is never refused.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while sim.accounts().len() < accounts.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for (name, key) in accounts {
        writeln!(
            out,
            "\n[[account]]\nname = \"{name}\"\napi_key = \"{key}\"\napi_url = \"{base_url}\"\nwatch = [\"machines\", \"instances\"]"
        )?;
    }
    out.flush()?;
    let stopped = stop.await.context("cannot wait for Ctrl+C");
    run.abort();
    sim.shutdown();
    stopped
}
