//! Soak (SPEC §10 "crash", "upstream faults", "target faults"): the real binary watches a
//! simulated cloud while a random scenario runs, with faults injected on the Vast API (429 in
//! text and JSON, 502 HTML, hangs, resets, truncated JSON, null, missing and stringified fields,
//! a persistent outage, a 401) and on the webhook (429 with Retry-After, 5xx, hangs, dropped
//! connections, short outages; a second target answers a permanent 404), and is killed with
//! SIGKILL at random moments and restarted. Afterwards:
//! - no event lost: every machine shows exactly the events its changes imply, in order;
//! - duplicates only with the same id: a re-delivered id carries the same event;
//! - no false events: nothing else about machines or accounts reached the webhook;
//! - order kept: each machine's events arrive in their sequence order.
//!
//! `cargo test --test soak` runs a 20 s version; `SOAK_SECS=300 cargo test --release --test soak
//! -- --ignored --nocapture` the long one (docs/BENCHMARKS.md). `SOAK_SEED` picks the scenario.
//!
//! Kills land anywhere, also while an account's health changes (stale, auth failed, restored):
//! the health is stored with its event, so a restart neither repeats nor loses an account event.
//!
//! Every 7th round the disk is full (the daemon's file size limit drops to 0, so every write
//! fails) while machines change, some twice within the window; every 11th round the daemon is
//! stopped, an index page of its state database is overwritten with garbage and it is started
//! again. Still nothing is lost.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/state_db.rs"]
mod state_db;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vast_supervisor::sim::targets::{Behaviour, FakeServices};
use vast_supervisor::sim::{Fault, FaultDuration, MachineSpec, RentalKind, SimCloud, SimHandle};

const ACCOUNTS: usize = 4;
const MACHINES: usize = 6;
/// Longest wait for the events of one round (outages and backoff included).
const ROUND_DEADLINE: Duration = Duration::from_secs(60);

struct Daemon {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl Daemon {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the daemon log opens");
        let child = Command::new(env!("CARGO_BIN_EXE_vast-supervisor"))
            .args(["run", "--config"])
            .arg(&self.config)
            .args([
                "--test-poll-interval",
                "100ms",
                "--test-offline-grace",
                "300ms",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        self.child = Some(child);
        self.starts += 1;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn socket(&self) -> PathBuf {
        self.config.parent().unwrap().join("control.sock")
    }

    /// Waits until the daemon answers on its control socket (its database is open by then).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(Instant::now() < deadline, "daemon not ready within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn terminate(&mut self) {
        self.wait_ready().await;
        let Some(mut c) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill -TERM runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "SIGTERM exits 0, got {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("daemon did not stop within 15 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn state_db(&self) -> PathBuf {
        self.config.parent().unwrap().join("state/state.db")
    }

    /// See `support/daemon.rs`: writes past `bytes` fail with EFBIG, as on a full disk.
    fn limit_file_size(&self, bytes: Option<u64>) {
        if let Some(c) = &self.child {
            daemon::limit_file_size(c.id(), bytes);
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What the test believes about a machine, and the events its changes imply so far.
#[derive(Debug, Clone, PartialEq)]
enum MachineSim {
    Idle,
    Running {
        rental: String,
        kind: RentalKind,
    },
    Paused {
        rental: String,
    },
    /// An interruptible pushed off its GPUs (storage kept) by the on-demand rental `by`.
    Preempted {
        stored: String,
        by: String,
    },
    /// Only the storage of a preempted rental is left.
    Stored {
        rental: String,
    },
    Unlisted,
    Offline,
    Errored,
}

struct SoakMachine {
    account: usize,
    id: u64,
    state: MachineSim,
    expected: Vec<&'static str>,
}

fn account_name(a: usize) -> String {
    format!("soak-{a}")
}

fn account_key(a: usize) -> String {
    format!("KEY-SOAK-{a}-abcdef")
}

/// Applies one random change to `m` in the simulator and records the events it implies.
fn change(sim: &SimHandle, m: &mut SoakMachine, rng: &mut StdRng, counter: &mut u32) {
    let acct = account_name(m.account);
    let mut fresh = || {
        *counter += 1;
        format!("r{counter}")
    };
    let id = m.id;
    let (next, events): (MachineSim, &[&'static str]) = match m.state.clone() {
        MachineSim::Idle => match rng.gen_range(0..10) {
            0..=5 => {
                let rental = fresh();
                let kind = if rng.gen_bool(0.5) {
                    RentalKind::OnDemand
                } else {
                    RentalKind::Interruptible
                };
                sim.start_rental(&acct, id, &rental, 2u32, kind, 30.0)
                    .unwrap();
                (MachineSim::Running { rental, kind }, &["rental_start"])
            }
            6 => {
                sim.set_listed(id, false).unwrap();
                (MachineSim::Unlisted, &["machine_unlisted"])
            }
            7 | 8 => {
                sim.set_timeout(id, 45.0).unwrap();
                (MachineSim::Offline, &["machine_offline"])
            }
            _ => {
                sim.set_error(id, Some("GPU 1 fell off the bus")).unwrap();
                (MachineSim::Errored, &["machine_error"])
            }
        },
        MachineSim::Running { rental, kind } => match (kind, rng.gen_range(0..3)) {
            (RentalKind::Interruptible, 0) => {
                let by = fresh();
                sim.preempt(&acct, id, &rental, &by, RentalKind::OnDemand, 20.0)
                    .unwrap();
                (
                    MachineSim::Preempted { stored: rental, by },
                    &["rental_preempt", "rental_start"],
                )
            }
            (RentalKind::OnDemand, 0) => {
                sim.pause_rental(&acct, id, &rental).unwrap();
                (MachineSim::Paused { rental }, &["rental_pause"])
            }
            _ => {
                sim.end_rental(&acct, id, &rental).unwrap();
                (MachineSim::Idle, &["rental_end"])
            }
        },
        MachineSim::Paused { rental } => {
            if rng.gen_bool(0.6) {
                sim.resume_rental(&acct, id, &rental).unwrap();
                (
                    MachineSim::Running {
                        rental,
                        kind: RentalKind::OnDemand,
                    },
                    &["rental_resume"],
                )
            } else {
                sim.end_rental(&acct, id, &rental).unwrap();
                (MachineSim::Idle, &["rental_end"])
            }
        }
        MachineSim::Preempted { stored, by } => {
            sim.end_rental(&acct, id, &by).unwrap();
            (MachineSim::Stored { rental: stored }, &["rental_end"])
        }
        MachineSim::Stored { rental } => {
            sim.end_rental(&acct, id, &rental).unwrap();
            (MachineSim::Idle, &["rental_end"])
        }
        MachineSim::Unlisted => {
            sim.set_listed(id, true).unwrap();
            (MachineSim::Idle, &["machine_listed"])
        }
        MachineSim::Offline => {
            sim.set_timeout(id, 0.0).unwrap();
            (MachineSim::Idle, &["machine_recovered"])
        }
        MachineSim::Errored => {
            sim.set_error(id, None).unwrap();
            (MachineSim::Idle, &["machine_recovered"])
        }
    };
    m.state = next;
    m.expected.extend_from_slice(events);
}

/// A transient API fault the client's retries or the next poll absorb: no event may follow.
fn transient_fault(rng: &mut StdRng) -> Fault {
    match rng.gen_range(0..11) {
        0 => Fault::RateLimitText,
        1 => Fault::RateLimitJsonDetail,
        2 => Fault::RateLimitJsonError,
        3 => Fault::BadGateway502Html,
        4 => Fault::Hang(Duration::from_millis(rng.gen_range(100..600))),
        5 => Fault::Reset,
        6 => Fault::TruncatedJson,
        7 => Fault::NullField("timeout".into()),
        8 => Fault::RemoveField("gpu_occupancy".into()),
        9 => Fault::StringifyField("num_gpus".into()),
        _ => Fault::NullField("listed".into()),
    }
}

/// A webhook fault the notifier must ride out without losing or reordering anything.
fn target_fault(rng: &mut StdRng) -> Behaviour {
    match rng.gen_range(0..5) {
        0 => Behaviour::RateLimit {
            retry_after: Duration::from_millis(rng.gen_range(100..800)),
        },
        1 => Behaviour::ServerError([500, 502, 503][rng.gen_range(0..3)]),
        2 => Behaviour::Hang(Duration::from_millis(rng.gen_range(200..1500))),
        3 => Behaviour::Close,
        _ => Behaviour::Respond {
            status: 503,
            body: "<html>maintenance</html>".into(),
        },
    }
}

/// One accepted webhook message.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    kind: String,
    account: Option<String>,
    machine: Option<u64>,
    target: Option<String>,
    event: serde_json::Value,
}

fn deliveries(fake: &FakeServices) -> Vec<Delivery> {
    fake.received()
        .into_iter()
        .filter(|r| r.path == "/hook")
        .map(|r| {
            let event = r.json().expect("the webhook receives event JSON");
            Delivery {
                id: event["id"].as_str().unwrap_or_default().to_string(),
                kind: event["kind"].as_str().unwrap_or_default().to_string(),
                account: event["account"].as_str().map(str::to_string),
                machine: (event["subject"]["type"] == "machine")
                    .then(|| event["subject"]["id"].as_u64())
                    .flatten(),
                target: event["data"]["target"].as_str().map(str::to_string),
                event,
            }
        })
        .collect()
}

/// The first delivery of every id, in arrival order.
fn unique(all: &[Delivery]) -> Vec<Delivery> {
    let mut seen = std::collections::HashSet::new();
    all.iter()
        .filter(|d| seen.insert(d.id.clone()))
        .cloned()
        .collect()
}

/// Compares what arrived with what is expected. `Ok(true)`: everything expected is there;
/// `Ok(false)`: not yet; `Err`: something arrived that must not have.
fn check_progress(
    machines: &[SoakMachine],
    account_expected: &[Vec<&'static str>],
    got: &[Delivery],
) -> Result<bool, String> {
    let mut complete = true;
    let mut by_machine: HashMap<u64, Vec<&str>> = HashMap::new();
    let mut by_account: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for d in got {
        if let Some(m) = d.machine {
            by_machine.entry(m).or_default().push(&d.kind);
        } else if d.kind.starts_with("account_") {
            if let Some(a) = &d.account {
                by_account.entry(a.clone()).or_default().push(&d.kind);
            }
        }
    }
    for m in machines {
        let kinds = by_machine.get(&m.id).cloned().unwrap_or_default();
        if kinds.len() > m.expected.len() || kinds[..] != m.expected[..kinds.len()] {
            return Err(format!(
                "machine {}: expected {:?}, got {:?}",
                m.id, m.expected, kinds
            ));
        }
        complete &= kinds.len() == m.expected.len();
    }
    for d in got.iter().filter(|d| d.machine.is_some()) {
        if !machines.iter().any(|m| Some(m.id) == d.machine) {
            return Err(format!("event about an unknown machine: {:?}", d.event));
        }
    }
    for (a, expected) in account_expected.iter().enumerate() {
        let kinds = by_account.remove(&account_name(a)).unwrap_or_default();
        if kinds.len() > expected.len() || kinds[..] != expected[..kinds.len()] {
            return Err(format!(
                "account {}: expected {expected:?}, got {kinds:?}",
                account_name(a)
            ));
        }
        complete &= kinds.len() == expected.len();
    }
    if let Some((a, kinds)) = by_account.into_iter().next() {
        return Err(format!(
            "account events for {a} that nothing caused: {kinds:?}"
        ));
    }
    Ok(complete)
}

fn write_config(dir: &Path, sim: &SimHandle, fake: &FakeServices) -> PathBuf {
    let config = dir.join("etc");
    std::fs::create_dir_all(config.join("conf.d")).unwrap();
    std::fs::write(
        config.join("vast-supervisor.toml"),
        format!(
            "state_dir = \"{}\"\ncontrol_socket = \"{}\"\n",
            dir.join("state").display(),
            dir.join("control.sock").display()
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("conf.d/00-targets.toml"),
        format!(
            "[[target]]\nname = \"soak-webhook\"\nurl = \"json://{0}/hook\"\n\n\
             [[target]]\nname = \"doomed\"\nurl = \"json://{0}/gone\"\n",
            fake.addr()
        ),
    )
    .unwrap();
    for a in 0..ACCOUNTS {
        std::fs::write(
            config.join(format!("conf.d/10-{}.toml", account_name(a))),
            format!(
                "[[account]]\nname = \"{}\"\napi_key = \"{}\"\napi_url = \"{}\"\n",
                account_name(a),
                account_key(a),
                sim.base_url().as_str().trim_end_matches('/'),
            ),
        )
        .unwrap();
    }
    config
}

/// What the soak did, for the report.
#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    changes: usize,
    kills: usize,
    api_faults: usize,
    target_faults: usize,
    outages: usize,
    account_phases: usize,
    deliveries: usize,
    redeliveries: usize,
    full_disk_windows: usize,
    corrupted_restarts: usize,
}

async fn soak(duration: Duration, seed: u64) -> Tally {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimCloud::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let fake = FakeServices::start().await;
    // The second target is gone for good: it is disabled on every start, nothing else.
    fake.respond_next("/gone", usize::MAX, Behaviour::NotFound);
    let mut machines = Vec::new();
    for a in 0..ACCOUNTS {
        sim.add_account(&account_key(a), &account_name(a));
        for m in 0..MACHINES {
            let id = 50_000 + (a * 100 + m) as u64;
            sim.add_machine(
                &account_name(a),
                MachineSpec::new(id, &format!("soak-{a}-rig-{m}"), 4, "RTX 4090"),
            )
            .unwrap();
            machines.push(SoakMachine {
                account: a,
                id,
                state: MachineSim::Idle,
                expected: Vec::new(),
            });
        }
    }
    let config = write_config(dir.path(), &sim, &fake);
    let mut daemon = Daemon {
        config,
        log: dir.path().join("daemon.log"),
        child: None,
        starts: 0,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut account_expected: Vec<Vec<&'static str>> = vec![Vec::new(); ACCOUNTS];
    // An account whose API is down until the next round (its machines are left alone).
    let mut stale: Option<usize> = None;
    let mut counter = 0;
    daemon.start();
    let started = Instant::now();
    // Wait for the first start-up so the machines are adopted before anything changes.
    let deadline = Instant::now() + ROUND_DEADLINE;
    while !deliveries(&fake)
        .iter()
        .any(|d| d.kind == "startup_summary")
    {
        assert!(
            Instant::now() < deadline,
            "no startup_summary; daemon log:\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    while started.elapsed() < duration {
        tally.rounds += 1;
        // A full disk every 7th round (see below); its rounds poll undisturbed, so a change
        // that comes and goes within the window is seen by the polls in between.
        let full_disk = tally.rounds % 7 == 3 && tally.rounds % 11 != 6;
        if let Some(a) = stale.take() {
            sim.clear_faults(&account_name(a)).unwrap();
            account_expected[a].push("account_restored");
        } else if !full_disk && rng.gen_bool(0.08) {
            let a = rng.gen_range(0..ACCOUNTS);
            tally.account_phases += 1;
            if rng.gen_bool(0.6) {
                sim.inject_fault(
                    &account_name(a),
                    Fault::BadGateway502Html,
                    FaultDuration::UntilCleared,
                )
                .unwrap();
                account_expected[a].push("account_stale");
                stale = Some(a);
            } else {
                sim.inject_fault(
                    &account_name(a),
                    Fault::Unauthorized401,
                    FaultDuration::Requests(1),
                )
                .unwrap();
                account_expected[a].extend(["account_auth_failed", "account_restored"]);
            }
        }
        if !full_disk && rng.gen_bool(0.4) {
            let a = rng.gen_range(0..ACCOUNTS);
            if Some(a) != stale {
                sim.inject_fault(
                    &account_name(a),
                    transient_fault(&mut rng),
                    FaultDuration::Requests(rng.gen_range(1..=2)),
                )
                .unwrap();
                tally.api_faults += 1;
            }
        }
        if rng.gen_bool(0.3) {
            fake.respond_next("/hook", rng.gen_range(1..=3), target_fault(&mut rng));
            tally.target_faults += 1;
        }
        let outage = rng
            .gen_bool(0.05)
            .then(|| Duration::from_millis(rng.gen_range(500..2500)));
        if outage.is_some() {
            fake.set_down("/hook", true);
            tally.outages += 1;
        }
        // A clean stop, a damaged index page in the state database, a restart: the integrity
        // check repairs it (one state_failing, reason "corrupt") and nothing is lost.
        if tally.rounds % 11 == 6 {
            daemon.terminate().await;
            let index = ["sqlite_autoindex_outbox_1", "sqlite_autoindex_subjects_1"]
                [tally.corrupted_restarts % 2];
            state_db::corrupt_root_page(&daemon.state_db(), index);
            tally.corrupted_restarts += 1;
            daemon.start();
        }
        // The full disk: every write of the daemon fails (its file size limit drops to 0) while
        // machines change, each of them twice (a change that comes and goes within the window).
        if full_disk {
            // Once the daemon runs: one started on a full disk cannot open its database and
            // stops with that error (its service manager starts it again).
            daemon.wait_ready().await;
            daemon.limit_file_size(Some(0));
            tally.full_disk_windows += 1;
        }
        // Distinct machines: two changes to one machine within a poll would merge.
        let candidates: Vec<usize> = (0..machines.len())
            .filter(|i| Some(machines[*i].account) != stale)
            .collect();
        let n = rng.gen_range(1..=3);
        let chosen: Vec<usize> = rand::seq::index::sample(&mut rng, candidates.len(), n)
            .into_iter()
            .map(|i| candidates[i])
            .collect();
        for &m in &chosen {
            change(&sim, &mut machines[m], &mut rng, &mut counter);
            tally.changes += 1;
        }
        if full_disk {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for &m in &chosen {
                change(&sim, &mut machines[m], &mut rng, &mut counter);
                tally.changes += 1;
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(500..1500))).await;
            daemon.limit_file_size(None);
        }
        // SIGKILL at a random moment of detection, commit or delivery, or of an account's
        // outage and recovery (not while the disk is full: what is detected then waits in
        // memory, and a crash loses a change that came and went, as while the daemon is down).
        if !full_disk && rng.gen_bool(0.5) {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
            daemon.kill9();
            tally.kills += 1;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
            daemon.start();
        }
        if let Some(d) = outage {
            tokio::time::sleep(d).await;
            fake.set_down("/hook", false);
        }
        let deadline = Instant::now() + ROUND_DEADLINE;
        loop {
            let got = unique(&deliveries(&fake));
            match check_progress(&machines, &account_expected, &got) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => panic!(
                    "round {} (seed {seed:#x}): {e}\ndaemon log:\n{}",
                    tally.rounds,
                    daemon.log_tail()
                ),
            }
            assert!(
                Instant::now() < deadline,
                "round {} (seed {seed:#x}): events missing after {ROUND_DEADLINE:?}; {:?}\ndaemon log:\n{}",
                tally.rounds,
                check_progress(&machines, &account_expected, &got),
                daemon.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(a) = stale.take() {
        sim.clear_faults(&account_name(a)).unwrap();
        account_expected[a].push("account_restored");
    }
    // Settle: a few polls in which nothing may happen, then a clean stop.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.terminate().await;
    let all = deliveries(&fake);
    let events = unique(&all);
    assert_eq!(
        check_progress(&machines, &account_expected, &events),
        Ok(true),
        "the final state"
    );

    // Duplicates only with the same id, and then the same event.
    for d in &all {
        let first = events.iter().find(|u| u.id == d.id).unwrap();
        assert_eq!(
            first.event, d.event,
            "a re-delivered id carries the same event"
        );
    }
    // Each machine's events arrive in sequence order (ids end in the machine's counter).
    let mut last_seq: HashMap<u64, u64> = HashMap::new();
    for d in events.iter().filter(|d| d.machine.is_some()) {
        let seq: u64 = d.id.rsplit(':').next().unwrap().parse().unwrap();
        let m = d.machine.unwrap();
        if let Some(prev) = last_seq.insert(m, seq) {
            assert!(seq > prev, "machine {m}: event {} after seq {prev}", d.id);
        }
    }
    // Supervisor and target events: one start per process at most, one clean stop, and the
    // gone target disabled (at most once per start), never the working one.
    let count = |kind: &str| events.iter().filter(|d| d.kind == kind).count();
    assert!(count("supervisor_start") >= 1 && count("supervisor_start") <= daemon.starts);
    assert_eq!(
        count("supervisor_stop"),
        1 + tally.corrupted_restarts,
        "one per clean stop"
    );
    // One state_failing per full-disk window at most (the window's first failed commit), at
    // least one in all; one per repaired database at most (a kill right after the repair may
    // take its event with it).
    let state_failing = |reason: &str| {
        events
            .iter()
            .filter(|d| d.kind == "state_failing" && d.event["data"]["reason"] == reason)
            .count()
    };
    assert!(state_failing("commit_failed") <= tally.full_disk_windows);
    assert!(tally.full_disk_windows == 0 || state_failing("commit_failed") >= 1);
    assert!(
        state_failing("corrupt") <= tally.corrupted_restarts,
        "{} corrupted restarts, corrupt state_failing: {:#?}",
        tally.corrupted_restarts,
        events
            .iter()
            .filter(|d| d.kind == "state_failing")
            .map(|d| (&d.target, &d.event))
            .collect::<Vec<_>>()
    );
    assert!(
        tally.corrupted_restarts == 0 || state_failing("corrupt") >= 1,
        "{} corrupted restarts and no corrupt state_failing delivered (seed {seed:#x})\ndaemon log:\n{}",
        tally.corrupted_restarts,
        daemon.log_tail()
    );
    let failing: Vec<&Delivery> = events
        .iter()
        .filter(|d| d.kind == "target_failing")
        .collect();
    assert!(
        failing
            .iter()
            .all(|d| d.target.as_deref() == Some("doomed")),
        "only the gone target fails: {failing:?}"
    );
    assert!(!failing.is_empty() && failing.len() <= daemon.starts);
    let known = [
        "supervisor_start",
        "startup_summary",
        "supervisor_stop",
        "target_failing",
        "state_failing",
    ];
    for d in events
        .iter()
        .filter(|d| d.machine.is_none() && !d.kind.starts_with("account_"))
    {
        assert!(
            known.contains(&d.kind.as_str()),
            "unexpected event {:?}",
            d.event
        );
    }
    tally.deliveries = all.len();
    tally.redeliveries = all.len() - events.len();
    sim.shutdown();
    tally
}

fn seed() -> u64 {
    std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x50a6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_short_with_kills_and_faults() {
    let tally = soak(Duration::from_secs(20), seed()).await;
    eprintln!("soak (20 s): {tally:?}");
    assert!(tally.kills >= 2, "the seed kills the daemon ({tally:?})");
    assert!(
        tally.full_disk_windows >= 1 && tally.corrupted_restarts >= 1,
        "the disk fills and the database is damaged ({tally:?})"
    );
    assert!(
        tally.changes >= 10,
        "the scenario changes things ({tally:?})"
    );
}

/// The long soak of docs/BENCHMARKS.md: `SOAK_SECS` (default 300) seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for minutes; see docs/BENCHMARKS.md"]
async fn soak_long_with_kills_and_faults() {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let tally = soak(Duration::from_secs(secs), seed()).await;
    eprintln!("soak ({secs} s): {tally:?}");
    assert!(
        tally.kills >= 10,
        "the soak kills the daemon often ({tally:?})"
    );
}
