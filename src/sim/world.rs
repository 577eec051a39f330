//! The simulated cloud's state and its HTTP semantics, without any I/O: accounts, machines with
//! their rental contracts, instances, injected faults, and the answer to each request.
//!
//! Machine rows are derived from the rental contracts on every request (reference/vast-api.md
//! §2.6), so occupancy tokens, `current_rentals_*` counters, `alloc_disk_space` and
//! `client_end_date` always agree with each other the way the detection core expects.

use super::faults::{Canned, Fault, FaultDuration, INVALID_USER_KEY};
use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use url::Url;

const MACHINE_ROW: &str = include_str!("data/machine_row.json");
const INSTANCE_ROW: &str = include_str!("data/instance_row.json");

/// Requests kept for inspection; older ones are dropped so a long `simulate` run stays small.
const MAX_RECORDED_REQUESTS: usize = 100_000;
/// Pending log uploads kept; older ones are forgotten.
const MAX_LOG_REQUESTS: usize = 1_000;
/// Largest v1 instance page, as on Vast.
const MAX_PAGE: usize = 25;

/// Something a scenario or a test asked that the simulated cloud cannot do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// Accounts are named by key or by name; the key itself is never printed.
    #[error("no account with that key or name")]
    UnknownAccount,
    #[error("machine {0} does not exist")]
    UnknownMachine(u64),
    #[error("machine {0} already exists")]
    DuplicateMachine(u64),
    #[error("machine {0} belongs to another account")]
    NotOwner(u64),
    #[error("instance {0} does not exist")]
    UnknownInstance(u64),
    #[error("instance {0} already exists")]
    DuplicateInstance(u64),
    #[error("machine {machine} has no rental \"{rental}\"")]
    UnknownRental { machine: u64, rental: String },
    #[error("machine {machine} already has a rental \"{rental}\"")]
    DuplicateRental { machine: u64, rental: String },
    #[error("machine {machine} has no GPU {gpu} (it has {num_gpus})")]
    NoSuchGpu {
        machine: u64,
        gpu: u32,
        num_gpus: u32,
    },
    #[error("GPU {gpu} of machine {machine} is held by the running rental \"{holder}\"")]
    GpuBusy {
        machine: u64,
        gpu: u32,
        holder: String,
    },
    #[error("machine {machine} has {free} free GPUs, {wanted} requested")]
    NotEnoughGpus {
        machine: u64,
        free: u32,
        wanted: u32,
    },
    #[error("rental \"{rental}\" on machine {machine} cannot {action}: {why}")]
    InvalidTransition {
        machine: u64,
        rental: String,
        action: &'static str,
        why: &'static str,
    },
    #[error("scenario: {0}")]
    Scenario(String),
}

/// Kind of a rental contract; its letter is the `gpu_occupancy` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RentalKind {
    #[serde(rename = "D", alias = "on_demand")]
    OnDemand,
    #[serde(rename = "I", alias = "interruptible")]
    Interruptible,
    #[serde(rename = "R", alias = "reserved")]
    Reserved,
}

impl RentalKind {
    pub fn token(self) -> &'static str {
        match self {
            RentalKind::OnDemand => "D",
            RentalKind::Interruptible => "I",
            RentalKind::Reserved => "R",
        }
    }
}

/// Which GPUs a new rental takes: explicit indices, or the first `n` free ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GpuSelect {
    Indices(Vec<u32>),
    Count(u32),
}

impl From<Vec<u32>> for GpuSelect {
    fn from(v: Vec<u32>) -> GpuSelect {
        GpuSelect::Indices(v)
    }
}

impl From<u32> for GpuSelect {
    fn from(n: u32) -> GpuSelect {
        GpuSelect::Count(n)
    }
}

/// A host machine to add. Everything not given here comes from a real machine row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub id: u64,
    pub hostname: String,
    pub num_gpus: u32,
    pub gpu_name: String,
    /// $/GPU/h on demand.
    #[serde(default)]
    pub listed_gpu_cost: Option<f64>,
    /// $/GPU/h floor for interruptibles.
    #[serde(default)]
    pub min_bid_price: Option<f64>,
    /// GB of disk the machine offers.
    #[serde(default)]
    pub disk_space: Option<f64>,
    #[serde(default)]
    pub listed: Option<bool>,
    #[serde(default)]
    pub verification: Option<String>,
}

impl MachineSpec {
    pub fn new(id: u64, hostname: &str, num_gpus: u32, gpu_name: &str) -> MachineSpec {
        MachineSpec {
            id,
            hostname: hostname.into(),
            num_gpus,
            gpu_name: gpu_name.into(),
            listed_gpu_cost: None,
            min_bid_price: None,
            disk_space: None,
            listed: None,
            verification: None,
        }
    }
}

/// A renter instance to add.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// Chosen automatically (from 5000 up) when absent.
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub machine_id: Option<u64>,
    #[serde(default)]
    pub num_gpus: Option<u32>,
    #[serde(default)]
    pub gpu_name: Option<String>,
    /// Interruptible (spot) instance.
    #[serde(default)]
    pub is_bid: bool,
    /// $/h of the whole instance (the bid for interruptibles).
    #[serde(default)]
    pub dph_base: Option<f64>,
    /// `None` is Vast's `null` (provisioning).
    #[serde(default)]
    pub actual_status: Option<String>,
    /// Defaults to `running`.
    #[serde(default)]
    pub intended_status: Option<String>,
    #[serde(default)]
    pub status_msg: Option<String>,
}

/// A scheduled maintenance window of a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Start, from the moment the window is set.
    #[serde(with = "super::faults::duration_text")]
    pub start_in: Duration,
    pub duration_hours: f64,
    #[serde(default = "default_category")]
    pub category: String,
    #[serde(default)]
    pub reason: String,
}

fn default_category() -> String {
    "other".into()
}

/// One `per_machine` row of the earnings endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarningsRow {
    pub machine_id: u64,
    #[serde(default)]
    pub gpu_earn: f64,
    #[serde(default)]
    pub sto_earn: f64,
    #[serde(default)]
    pub bwu_earn: f64,
    #[serde(default)]
    pub bwd_earn: f64,
}

/// How a request authenticated itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The query string with any `api_key` value replaced by `***`.
    pub query: Option<String>,
    /// Whether an `Authorization` header was present (its value is never stored).
    pub authorization_header: bool,
    /// Whether the key came as `?api_key=` (legacy; the supervisor must never do this).
    pub api_key_in_query: bool,
    /// Name of the account the request authenticated as, if any.
    pub account: Option<String>,
    /// Route label (`machines`, `instance`, `log_result`, ...; `unknown` when none matched).
    pub route: &'static str,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
    /// When the request arrived.
    pub at: std::time::Instant,
    /// When its answer was ready to send (the body built).
    pub answered: std::time::Instant,
}

/// An instance write the API received (start, stop, label, destroy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    pub account: String,
    pub instance: u64,
    pub action: WriteAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAction {
    Start,
    Stop,
    Label(String),
    Destroy,
}

#[derive(Debug, Clone)]
struct Rental {
    name: String,
    kind: RentalKind,
    gpus: Vec<u32>,
    disk_gb: f64,
    running: bool,
    end_date: f64,
}

#[derive(Debug, Clone)]
struct SimMachine {
    owner: String,
    spec: MachineSpec,
    rentals: Vec<Rental>,
    timeout: f64,
    error: Option<String>,
    listed: bool,
    verification: String,
    reports: Vec<Value>,
    maintenance: Vec<Value>,
    next_maintenance_id: u64,
    hide_once: bool,
}

#[derive(Debug, Clone)]
struct SimInstance {
    owner: String,
    id: u64,
    machine_id: u64,
    label: Option<String>,
    num_gpus: u32,
    gpu_name: String,
    is_bid: bool,
    dph_base: f64,
    min_bid: f64,
    actual: Option<String>,
    intended: String,
    cur_state: String,
    status_msg: Option<String>,
    start_date: f64,
    log: Vec<String>,
}

#[derive(Debug)]
struct Account {
    name: String,
    user_id: u64,
    credit: f64,
    earnings: Option<Vec<EarningsRow>>,
    faults: Vec<(Fault, FaultDuration)>,
}

struct LogUpload {
    text: String,
    not_ready_polls: u32,
}

struct RateLimit {
    min_interval: Duration,
    style: Fault,
}

/// What to do after computing the answer.
pub(crate) enum After {
    Respond,
    Hang(Duration),
    Reset,
}

/// The answer to one request.
pub(crate) struct Outcome {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub after: After,
}

impl Outcome {
    fn json(status: u16, value: &Value) -> Outcome {
        Outcome {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
            after: After::Respond,
        }
    }

    fn raw(status: u16, content_type: &'static str, body: &str) -> Outcome {
        Outcome {
            status,
            content_type,
            body: body.as_bytes().to_vec(),
            after: After::Respond,
        }
    }

    fn canned(c: Canned) -> Outcome {
        Outcome::raw(c.status, c.content_type, c.body)
    }
}

/// One HTTP request as the world sees it.
pub(crate) struct SimRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub bearer: Option<&'a str>,
    pub authorization_header: bool,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Machines,
    Machine(u64),
    MachineReports(u64),
    User,
    Earnings,
    InstancesV1,
    InstancesV0,
    Instance(u64),
    RequestLogs(u64),
    LogResult(String),
    Unknown,
}

impl Route {
    fn parse(method: &str, path: &str) -> Route {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let id = |s: &str| s.parse::<u64>().ok();
        match (method, segments.as_slice()) {
            ("GET", ["api", "v0", "machines"]) => Route::Machines,
            ("GET", ["api", "v0", "machines", m]) => id(m).map_or(Route::Unknown, Route::Machine),
            ("GET", ["api", "v0", "machines", m, "reports"]) => {
                id(m).map_or(Route::Unknown, Route::MachineReports)
            }
            ("GET", ["api", "v0", "users", "me" | "current"]) => Route::User,
            ("GET", ["api", "v0", "users", "me" | "current", "machine-earnings"]) => {
                Route::Earnings
            }
            ("GET", ["api", "v1", "instances"]) => Route::InstancesV1,
            ("GET", ["api", "v0", "instances"]) => Route::InstancesV0,
            ("GET" | "PUT" | "DELETE", ["api", "v0", "instances", i]) => {
                id(i).map_or(Route::Unknown, Route::Instance)
            }
            ("PUT", ["api", "v0", "instances", "request_logs", i]) => {
                id(i).map_or(Route::Unknown, Route::RequestLogs)
            }
            ("GET", ["sim", "instance_logs", file]) => file
                .strip_suffix(".log")
                .map_or(Route::Unknown, |t| Route::LogResult(t.to_string())),
            _ => Route::Unknown,
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Route::Machines => "machines",
            Route::Machine(_) => "machine",
            Route::MachineReports(_) => "machine_reports",
            Route::User => "user",
            Route::Earnings => "earnings",
            Route::InstancesV1 => "instances_v1",
            Route::InstancesV0 => "instances_v0",
            Route::Instance(_) => "instance",
            Route::RequestLogs(_) => "request_logs",
            Route::LogResult(_) => "log_result",
            Route::Unknown => "unknown",
        }
    }
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Numbers as Vast writes them: whole values as integers.
fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Value::from(v as i64)
    } else {
        json!(v)
    }
}

fn template(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The whole simulated cloud.
pub(crate) struct World {
    base_url: Url,
    accounts: BTreeMap<String, Account>,
    machines: BTreeMap<u64, SimMachine>,
    instances: BTreeMap<u64, SimInstance>,
    next_instance_id: u64,
    next_user_id: u64,
    requests: VecDeque<RecordedRequest>,
    writes: Vec<WriteRecord>,
    logs: HashMap<String, LogUpload>,
    log_order: VecDeque<String>,
    log_not_ready_polls: u32,
    rate_limit: Option<RateLimit>,
    last_call: HashMap<(String, &'static str), Instant>,
    machine_template: Map<String, Value>,
    instance_template: Map<String, Value>,
}

impl World {
    pub(crate) fn new(base_url: Url) -> World {
        World {
            base_url,
            accounts: BTreeMap::new(),
            machines: BTreeMap::new(),
            instances: BTreeMap::new(),
            next_instance_id: 5000,
            next_user_id: 100_001,
            requests: VecDeque::new(),
            writes: Vec::new(),
            logs: HashMap::new(),
            log_order: VecDeque::new(),
            log_not_ready_polls: 1,
            rate_limit: None,
            last_call: HashMap::new(),
            machine_template: template(MACHINE_ROW),
            instance_template: template(INSTANCE_ROW),
        }
    }

    // ----- accounts -----

    pub(crate) fn add_account(&mut self, key: &str, name: &str) {
        if let Some(account) = self.accounts.get_mut(key) {
            account.name = name.to_string();
            return;
        }
        let user_id = self.next_user_id;
        self.next_user_id += 1;
        self.accounts.insert(
            key.to_string(),
            Account {
                name: name.to_string(),
                user_id,
                credit: 100.0,
                earnings: None,
                faults: Vec::new(),
            },
        );
    }

    /// The key of the account named by `key_or_name`.
    fn resolve(&self, key_or_name: &str) -> Result<String, SimError> {
        if self.accounts.contains_key(key_or_name) {
            return Ok(key_or_name.to_string());
        }
        self.accounts
            .iter()
            .find(|(_, a)| a.name == key_or_name)
            .map(|(k, _)| k.clone())
            .ok_or(SimError::UnknownAccount)
    }

    fn account_mut(&mut self, key_or_name: &str) -> Result<&mut Account, SimError> {
        let key = self.resolve(key_or_name)?;
        self.accounts.get_mut(&key).ok_or(SimError::UnknownAccount)
    }

    pub(crate) fn account_keys(&self) -> Vec<(String, String)> {
        self.accounts
            .iter()
            .map(|(k, a)| (a.name.clone(), k.clone()))
            .collect()
    }

    pub(crate) fn set_credit(&mut self, account: &str, credit: f64) -> Result<(), SimError> {
        self.account_mut(account)?.credit = credit;
        Ok(())
    }

    pub(crate) fn set_earnings(
        &mut self,
        account: &str,
        rows: Vec<EarningsRow>,
    ) -> Result<(), SimError> {
        self.account_mut(account)?.earnings = Some(rows);
        Ok(())
    }

    pub(crate) fn inject_fault(
        &mut self,
        account: &str,
        fault: Fault,
        duration: FaultDuration,
    ) -> Result<(), SimError> {
        if duration == FaultDuration::Requests(0) {
            return Ok(());
        }
        self.account_mut(account)?.faults.push((fault, duration));
        Ok(())
    }

    pub(crate) fn clear_faults(&mut self, account: &str) -> Result<(), SimError> {
        self.account_mut(account)?.faults.clear();
        Ok(())
    }

    pub(crate) fn set_rate_limit(&mut self, limit: Option<(Duration, Fault)>) {
        self.rate_limit = limit.map(|(min_interval, style)| RateLimit {
            min_interval,
            style,
        });
        self.last_call.clear();
    }

    pub(crate) fn set_log_delay(&mut self, polls: u32) {
        self.log_not_ready_polls = polls;
    }

    // ----- machines -----

    pub(crate) fn add_machine(&mut self, account: &str, spec: MachineSpec) -> Result<(), SimError> {
        let owner = self.resolve(account)?;
        if self.machines.contains_key(&spec.id) {
            return Err(SimError::DuplicateMachine(spec.id));
        }
        let machine = SimMachine {
            owner,
            listed: spec.listed.unwrap_or(true),
            verification: spec
                .verification
                .clone()
                .unwrap_or_else(|| "verified".into()),
            spec,
            rentals: Vec::new(),
            timeout: 0.0,
            error: None,
            reports: Vec::new(),
            maintenance: Vec::new(),
            next_maintenance_id: 1,
            hide_once: false,
        };
        self.machines.insert(machine.spec.id, machine);
        Ok(())
    }

    fn machine_mut(&mut self, id: u64) -> Result<&mut SimMachine, SimError> {
        self.machines
            .get_mut(&id)
            .ok_or(SimError::UnknownMachine(id))
    }

    fn owned_machine_mut(&mut self, account: &str, id: u64) -> Result<&mut SimMachine, SimError> {
        let owner = self.resolve(account)?;
        let machine = self.machine_mut(id)?;
        if machine.owner != owner {
            return Err(SimError::NotOwner(id));
        }
        Ok(machine)
    }

    pub(crate) fn remove_machine(&mut self, id: u64) -> Result<(), SimError> {
        self.machines
            .remove(&id)
            .map(|_| ())
            .ok_or(SimError::UnknownMachine(id))
    }

    pub(crate) fn hide_from_list_once(&mut self, id: u64) -> Result<(), SimError> {
        self.machine_mut(id)?.hide_once = true;
        Ok(())
    }

    pub(crate) fn set_timeout(&mut self, id: u64, secs: f64) -> Result<(), SimError> {
        self.machine_mut(id)?.timeout = secs.max(0.0);
        Ok(())
    }

    pub(crate) fn set_error(&mut self, id: u64, error: Option<String>) -> Result<(), SimError> {
        self.machine_mut(id)?.error = error.filter(|e| !e.is_empty());
        Ok(())
    }

    pub(crate) fn set_listed(&mut self, id: u64, listed: bool) -> Result<(), SimError> {
        self.machine_mut(id)?.listed = listed;
        Ok(())
    }

    pub(crate) fn set_verification(&mut self, id: u64, verification: &str) -> Result<(), SimError> {
        self.machine_mut(id)?.verification = verification.to_string();
        Ok(())
    }

    pub(crate) fn add_report(
        &mut self,
        id: u64,
        problem: &str,
        message: &str,
    ) -> Result<(), SimError> {
        let report = json!({"problem": problem, "message": message, "created_at": epoch_now()});
        self.machine_mut(id)?.reports.push(report);
        Ok(())
    }

    pub(crate) fn set_maintenance(
        &mut self,
        id: u64,
        windows: Vec<MaintenanceWindow>,
    ) -> Result<(), SimError> {
        let now = epoch_now();
        let machine = self.machine_mut(id)?;
        machine.maintenance = windows
            .into_iter()
            .map(|w| {
                let window_id = machine.next_maintenance_id;
                machine.next_maintenance_id += 1;
                json!({
                    "id": window_id,
                    "machine_id": id,
                    "start_time": (now + w.start_in.as_secs_f64()).floor(),
                    "duration_hours": num(w.duration_hours),
                    "maintenance_category": w.category,
                    "maintenance_reason": w.reason,
                })
            })
            .collect();
        Ok(())
    }

    // ----- rentals -----

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
        gpus: GpuSelect,
        kind: RentalKind,
        disk_gb: f64,
        hours: Option<f64>,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        if machine.rentals.iter().any(|r| r.name == rental) {
            return Err(SimError::DuplicateRental {
                machine: machine_id,
                rental: rental.into(),
            });
        }
        let gpus = machine.pick_gpus(&gpus)?;
        machine.rentals.push(Rental {
            name: rental.to_string(),
            kind,
            gpus,
            disk_gb: disk_gb.max(0.0),
            running: true,
            end_date: (epoch_now() + hours.unwrap_or(72.0) * 3600.0).floor(),
        });
        Ok(())
    }

    pub(crate) fn pause_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        let r = machine.rental_mut(rental)?;
        if !r.running {
            return Err(SimError::InvalidTransition {
                machine: machine_id,
                rental: rental.into(),
                action: "pause",
                why: "it is already paused",
            });
        }
        r.running = false;
        Ok(())
    }

    pub(crate) fn resume_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        let r = machine.rental(rental)?;
        if r.running {
            return Err(SimError::InvalidTransition {
                machine: machine_id,
                rental: rental.into(),
                action: "resume",
                why: "it is running",
            });
        }
        // A stored contract is bound to its GPUs: it resumes on the same ones or not at all.
        for gpu in r.gpus.clone() {
            if let Some(holder) = machine.running_holder(gpu) {
                return Err(SimError::GpuBusy {
                    machine: machine_id,
                    gpu,
                    holder: holder.to_string(),
                });
            }
        }
        machine.rental_mut(rental)?.running = true;
        Ok(())
    }

    pub(crate) fn end_rental(
        &mut self,
        account: &str,
        machine_id: u64,
        rental: &str,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        machine.rental(rental)?;
        machine.rentals.retain(|r| r.name != rental);
        Ok(())
    }

    /// A running interruptible loses its GPUs to a new rental in one step (the tokens flip
    /// `I`->`D` without passing through `x`); it keeps its storage and becomes stored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn preempt(
        &mut self,
        account: &str,
        machine_id: u64,
        interruptible: &str,
        by: &str,
        kind: RentalKind,
        disk_gb: f64,
    ) -> Result<(), SimError> {
        let machine = self.owned_machine_mut(account, machine_id)?;
        let victim = machine.rental(interruptible)?;
        if victim.kind != RentalKind::Interruptible || !victim.running {
            return Err(SimError::InvalidTransition {
                machine: machine_id,
                rental: interruptible.into(),
                action: "be preempted",
                why: "only a running interruptible rental can be preempted",
            });
        }
        if machine.rentals.iter().any(|r| r.name == by) {
            return Err(SimError::DuplicateRental {
                machine: machine_id,
                rental: by.into(),
            });
        }
        let gpus = victim.gpus.clone();
        machine.rental_mut(interruptible)?.running = false;
        machine.rentals.push(Rental {
            name: by.to_string(),
            kind,
            gpus,
            disk_gb: disk_gb.max(0.0),
            running: true,
            end_date: (epoch_now() + 72.0 * 3600.0).floor(),
        });
        Ok(())
    }

    // ----- instances -----

    pub(crate) fn add_instance(
        &mut self,
        account: &str,
        spec: InstanceSpec,
    ) -> Result<u64, SimError> {
        let owner = self.resolve(account)?;
        let id = match spec.id {
            Some(id) if self.instances.contains_key(&id) => {
                return Err(SimError::DuplicateInstance(id))
            }
            Some(id) => id,
            None => {
                while self.instances.contains_key(&self.next_instance_id) {
                    self.next_instance_id += 1;
                }
                self.next_instance_id
            }
        };
        let num_gpus = spec.num_gpus.unwrap_or(1);
        let dph_base = spec.dph_base.unwrap_or(0.4 * f64::from(num_gpus));
        let intended = spec.intended_status.unwrap_or_else(|| "running".into());
        let instance = SimInstance {
            owner,
            id,
            machine_id: spec.machine_id.unwrap_or(24126),
            label: spec.label,
            num_gpus,
            gpu_name: spec.gpu_name.unwrap_or_else(|| "RTX 3090".into()),
            is_bid: spec.is_bid,
            dph_base,
            min_bid: (dph_base * 0.5 * 1e4).round() / 1e4,
            actual: spec.actual_status,
            cur_state: cur_state_for(&intended).into(),
            intended,
            status_msg: spec.status_msg,
            start_date: epoch_now(),
            log: Vec::new(),
        };
        self.instances.insert(id, instance);
        Ok(id)
    }

    fn instance_mut(&mut self, id: u64) -> Result<&mut SimInstance, SimError> {
        self.instances
            .get_mut(&id)
            .ok_or(SimError::UnknownInstance(id))
    }

    pub(crate) fn set_instance_status(
        &mut self,
        id: u64,
        actual: Option<&str>,
        intended: &str,
        status_msg: Option<&str>,
    ) -> Result<(), SimError> {
        let instance = self.instance_mut(id)?;
        instance.actual = actual.map(str::to_string);
        instance.intended = intended.to_string();
        instance.cur_state = cur_state_for(intended).into();
        if let Some(msg) = status_msg {
            instance.status_msg = Some(msg.to_string());
        }
        Ok(())
    }

    /// An interruptible outbid: its container stops while the renter still wants it running,
    /// the contract is stopped and the market's minimum bid is now above its own bid.
    pub(crate) fn preempt_instance(&mut self, id: u64) -> Result<(), SimError> {
        let instance = self.instance_mut(id)?;
        instance.actual = Some("stopped".into());
        instance.intended = "running".into();
        instance.cur_state = "stopped".into();
        instance.min_bid = (instance.dph_base * 1.5 * 1e4).round() / 1e4;
        Ok(())
    }

    pub(crate) fn destroy_instance(&mut self, id: u64) -> Result<(), SimError> {
        self.instances
            .remove(&id)
            .map(|_| ())
            .ok_or(SimError::UnknownInstance(id))
    }

    pub(crate) fn append_instance_log(&mut self, id: u64, line: &str) -> Result<(), SimError> {
        self.instance_mut(id)?
            .log
            .extend(line.lines().map(str::to_string));
        Ok(())
    }

    // ----- inspection -----

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.iter().cloned().collect()
    }

    pub(crate) fn clear_requests(&mut self) {
        self.requests.clear();
    }

    pub(crate) fn take_requests(&mut self) -> Vec<RecordedRequest> {
        self.requests.drain(..).collect()
    }

    pub(crate) fn writes(&self) -> Vec<WriteRecord> {
        self.writes.clone()
    }

    pub(crate) fn machine_row_of(&self, id: u64) -> Option<Value> {
        self.machines
            .get(&id)
            .map(|m| Value::Object(self.machine_row(m, epoch_now())))
    }

    pub(crate) fn instance_row_of(&self, id: u64) -> Option<Value> {
        self.instances
            .get(&id)
            .map(|i| Value::Object(self.instance_row(i, epoch_now())))
    }

    // ----- rows -----

    fn machine_row(&self, m: &SimMachine, now: f64) -> Map<String, Value> {
        let mut row = self.machine_template.clone();
        let spec = &m.spec;
        let count = |pred: &dyn Fn(&Rental) -> bool| -> Value {
            Value::from(m.rentals.iter().filter(|r| pred(r)).count())
        };
        let tokens: String = (0..spec.num_gpus)
            .map(|gpu| match m.running_rental_on(gpu) {
                Some(r) => format!("{} ", r.kind.token()),
                None => "x ".to_string(),
            })
            .collect();
        let alloc: f64 = m.rentals.iter().map(|r| r.disk_gb).sum();
        let disk_space = spec.disk_space.unwrap_or(6436.0);
        let gpu_cost = spec.listed_gpu_cost.unwrap_or(0.43);
        let bid_floor = spec.min_bid_price.unwrap_or(0.3);
        let storage_cost = 0.3; // $/GB/month
        let earn_hour: f64 = m
            .rentals
            .iter()
            .map(|r| {
                let gpu_rate = match (r.running, r.kind) {
                    (false, _) => 0.0,
                    (true, RentalKind::Interruptible) => bid_floor,
                    (true, _) => gpu_cost,
                };
                gpu_rate * r.gpus.len() as f64 + r.disk_gb * storage_cost / 730.0
            })
            .sum();
        let client_end = m
            .rentals
            .iter()
            .map(|r| r.end_date)
            .fold(None, |acc: Option<f64>, d| {
                Some(acc.map_or(d, |a| a.max(d)))
            });
        let reports = m.reports.len();
        let recent = m
            .reports
            .iter()
            .filter(|r| {
                r.get("created_at")
                    .and_then(Value::as_f64)
                    .is_some_and(|t| now - t < 7.0 * 86400.0)
            })
            .count();

        let set = |row: &mut Map<String, Value>, k: &str, v: Value| {
            row.insert(k.to_string(), v);
        };
        set(&mut row, "id", Value::from(spec.id));
        set(&mut row, "machine_id", Value::from(spec.id));
        set(&mut row, "hostname", Value::from(spec.hostname.clone()));
        set(&mut row, "gpu_name", Value::from(spec.gpu_name.clone()));
        set(&mut row, "num_gpus", Value::from(spec.num_gpus));
        set(&mut row, "listed_min_gpu_count", Value::from(1));
        set(&mut row, "listed", Value::Bool(m.listed));
        set(&mut row, "listed_gpu_cost", num(gpu_cost));
        set(&mut row, "min_bid_price", num(bid_floor));
        set(&mut row, "timeout", num(m.timeout));
        set(
            &mut row,
            "error_description",
            m.error.clone().map_or(Value::Null, Value::from),
        );
        set(
            &mut row,
            "verification",
            Value::from(m.verification.clone()),
        );
        set(&mut row, "gpu_occupancy", Value::from(tokens));
        set(&mut row, "current_rentals_running", count(&|r| r.running));
        set(
            &mut row,
            "current_rentals_running_on_demand",
            count(&|r| r.running && r.kind == RentalKind::OnDemand),
        );
        set(
            &mut row,
            "current_rentals_running_reserved",
            count(&|r| r.running && r.kind == RentalKind::Reserved),
        );
        set(&mut row, "current_rentals_resident", count(&|_| true));
        set(
            &mut row,
            "current_rentals_on_demand",
            count(&|r| r.kind == RentalKind::OnDemand),
        );
        set(
            &mut row,
            "current_rentals_reserved",
            count(&|r| r.kind == RentalKind::Reserved),
        );
        set(
            &mut row,
            "alloc_disk_space",
            if alloc > 0.0 {
                Value::from(alloc.round() as i64)
            } else {
                Value::Null
            },
        );
        set(&mut row, "disk_space", json!(disk_space));
        set(
            &mut row,
            "avail_disk_space",
            Value::from((disk_space - alloc).max(0.0).floor() as i64),
        );
        set(
            &mut row,
            "client_end_date",
            client_end.map_or(Value::Null, |d| json!(d)),
        );
        set(&mut row, "earn_hour", json!(earn_hour.max(3.601685e-05)));
        set(
            &mut row,
            "num_reports",
            if reports > 0 {
                Value::from(reports)
            } else {
                Value::Null
            },
        );
        set(
            &mut row,
            "num_recent_reports",
            if reports > 0 {
                json!(recent as f64)
            } else {
                Value::Null
            },
        );
        set(
            &mut row,
            "machine_maintenance",
            if m.maintenance.is_empty() {
                Value::Null
            } else {
                Value::Array(m.maintenance.clone())
            },
        );
        row
    }

    fn instance_row(&self, i: &SimInstance, now: f64) -> Map<String, Value> {
        let mut row = self.instance_template.clone();
        let running = i.actual.as_deref() == Some("running");
        let storage_hour = 0.005555555555555555;
        let set = |row: &mut Map<String, Value>, k: &str, v: Value| {
            row.insert(k.to_string(), v);
        };
        set(&mut row, "id", Value::from(i.id));
        set(&mut row, "machine_id", Value::from(i.machine_id));
        set(&mut row, "bundle_id", Value::from(i.id * 29 + 379_000_000));
        set(
            &mut row,
            "actual_status",
            i.actual.clone().map_or(Value::Null, Value::from),
        );
        set(&mut row, "intended_status", Value::from(i.intended.clone()));
        set(&mut row, "cur_state", Value::from(i.cur_state.clone()));
        set(&mut row, "next_state", Value::from(i.intended.clone()));
        set(
            &mut row,
            "status_msg",
            i.status_msg.clone().map_or(Value::Null, Value::from),
        );
        set(&mut row, "is_bid", Value::Bool(i.is_bid));
        set(
            &mut row,
            "label",
            i.label.clone().map_or(Value::Null, Value::from),
        );
        set(&mut row, "gpu_name", Value::from(i.gpu_name.clone()));
        set(&mut row, "num_gpus", Value::from(i.num_gpus));
        set(&mut row, "dph_base", json!(i.dph_base));
        set(&mut row, "dph_total", json!(i.dph_base + storage_hour));
        set(&mut row, "min_bid", json!(i.min_bid));
        set(&mut row, "start_date", json!(i.start_date));
        set(
            &mut row,
            "end_date",
            json!((i.start_date + 30.0 * 86400.0).floor()),
        );
        set(&mut row, "duration", json!((now - i.start_date).max(0.0)));
        set(&mut row, "ssh_port", Value::from(10_000 + i.id % 50_000));
        if !running {
            // `ports` exists only while running; telemetry is null when nothing runs.
            row.remove("ports");
            for k in [
                "gpu_util",
                "gpu_temp",
                "cpu_util",
                "mem_usage",
                "vmem_usage",
            ] {
                set(&mut row, k, Value::Null);
            }
        }
        row
    }

    // ----- HTTP -----

    /// Answers one request: records it, authenticates, applies rate limits and faults, routes.
    pub(crate) fn handle(&mut self, req: &SimRequest<'_>, now: Instant) -> Outcome {
        let route = Route::parse(req.method, req.path);
        let query_key = req.query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "api_key")
                .map(|(_, v)| v.into_owned())
        });
        let key = req.bearer.map(str::to_string).or(query_key.clone());
        let account_name = key
            .as_ref()
            .and_then(|k| self.accounts.get(k))
            .map(|a| a.name.clone());
        let mut record = RecordedRequest {
            method: req.method.to_string(),
            path: req.path.to_string(),
            query: req.query.map(crate::vast::redact_url),
            authorization_header: req.authorization_header,
            api_key_in_query: query_key.is_some(),
            account: account_name.clone(),
            route: route.label(),
            fault: None,
            at: std::time::Instant::now(),
            answered: std::time::Instant::now(),
        };
        let outcome = self.answer(route, req, key, now, &mut record);
        record.answered = std::time::Instant::now();
        if self.requests.len() >= MAX_RECORDED_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
        outcome
    }

    fn answer(
        &mut self,
        route: Route,
        req: &SimRequest<'_>,
        key: Option<String>,
        now: Instant,
        record: &mut RecordedRequest,
    ) -> Outcome {
        if let Route::LogResult(token) = &route {
            return self.log_result(token);
        }
        let Some(key) = key else {
            return Outcome::raw(
                401,
                "application/json",
                r#"{"detail": "Authentication credentials were not provided."}"#,
            );
        };
        if !self.accounts.contains_key(&key) {
            // Some v1 endpoints answer an unknown key with a 404 (reference/vast-api.md §5).
            let status = if route == Route::InstancesV1 {
                404
            } else {
                401
            };
            return Outcome::raw(status, "application/json", INVALID_USER_KEY);
        }
        if let Some(limit) = &self.rate_limit {
            let slot = (key.clone(), route.label());
            if let Some(last) = self.last_call.get(&slot) {
                if now.duration_since(*last) < limit.min_interval {
                    record.fault = Some(limit.style.clone());
                    if let Some(c) = limit.style.canned() {
                        return Outcome::canned(c);
                    }
                }
            }
            self.last_call.insert(slot, now);
        }
        let query: HashMap<String, String> = req
            .query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let fault = self.take_fault(&key, &route, &query);
        record.fault = fault.clone();
        if let Some(c) = fault.as_ref().and_then(Fault::canned) {
            return Outcome::canned(c);
        }
        if fault == Some(Fault::Reset) {
            return Outcome {
                after: After::Reset,
                ..Outcome::raw(500, "text/plain", "")
            };
        }
        let (status, mut value) = self.route(&route, &key, req, &query);
        match &fault {
            Some(Fault::RemoveField(f)) => for_each_row(&mut value, |row| {
                row.remove(f);
            }),
            Some(Fault::NullField(f)) => for_each_row(&mut value, |row| {
                if let Some(v) = row.get_mut(f) {
                    *v = Value::Null;
                }
            }),
            Some(Fault::ForeignRow) => for_each_row(&mut value, |row| {
                for key in ["id", "machine_id"] {
                    if let Some(id) = row.get(key).and_then(Value::as_u64) {
                        row.insert(key.to_string(), Value::from(id.wrapping_add(1)));
                    }
                }
            }),
            Some(Fault::StringifyField(f)) => for_each_row(&mut value, |row| {
                if let Some(v) = row.get_mut(f) {
                    if !v.is_string() && !v.is_null() {
                        *v = Value::String(v.to_string());
                    }
                }
            }),
            _ => {}
        }
        let mut outcome = Outcome::json(status, &value);
        match fault {
            Some(Fault::TruncatedJson) => {
                let keep = (outcome.body.len() / 2)
                    .max(1)
                    .min(outcome.body.len().saturating_sub(1));
                outcome.body.truncate(keep);
            }
            Some(Fault::Hang(d)) => outcome.after = After::Hang(d),
            Some(Fault::Oversized(n)) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                outcome.body.resize(n.max(outcome.body.len()), b' ');
            }
            _ => {}
        }
        outcome
    }

    /// The first fault of the account that applies to this request, consumed by one use.
    fn take_fault(
        &mut self,
        key: &str,
        route: &Route,
        query: &HashMap<String, String>,
    ) -> Option<Fault> {
        let account = self.accounts.get_mut(key)?;
        let paging = *route == Route::InstancesV1 && query.contains_key("after_token");
        let index = account
            .faults
            .iter()
            .position(|(f, _)| *f != Fault::InvalidPageToken || paging)?;
        let (fault, duration) = account.faults[index].clone();
        match duration {
            FaultDuration::Requests(n) if n <= 1 => {
                account.faults.remove(index);
            }
            FaultDuration::Requests(n) => account.faults[index].1 = FaultDuration::Requests(n - 1),
            FaultDuration::UntilCleared => {}
        }
        Some(fault)
    }

    fn route(
        &mut self,
        route: &Route,
        key: &str,
        req: &SimRequest<'_>,
        query: &HashMap<String, String>,
    ) -> (u16, Value) {
        let now = epoch_now();
        match route {
            Route::Machines => {
                let mut rows = Vec::new();
                for m in self.machines.values_mut().filter(|m| m.owner == key) {
                    if m.hide_once {
                        m.hide_once = false;
                        continue;
                    }
                    rows.push(m.spec.id);
                }
                let rows: Vec<Value> = rows
                    .iter()
                    .filter_map(|id| self.machines.get(id))
                    .map(|m| Value::Object(self.machine_row(m, now)))
                    .collect();
                (200, json!({ "machines": rows }))
            }
            Route::Machine(id) => match self.machines.get(id).filter(|m| m.owner == key) {
                Some(m) => (200, json!([Value::Object(self.machine_row(m, now))])),
                None => (200, json!([])),
            },
            Route::MachineReports(id) => match self.machines.get(id).filter(|m| m.owner == key) {
                Some(m) => (200, Value::Array(m.reports.clone())),
                None => (
                    404,
                    json!({"success": false, "error": "not_found", "msg": "No such machine id"}),
                ),
            },
            Route::User => self.user_body(key),
            Route::Earnings => self.earnings_body(key, query),
            Route::InstancesV1 => self.instances_page(key, query, now),
            Route::InstancesV0 => {
                let rows: Vec<Value> = self
                    .instances
                    .values()
                    .filter(|i| i.owner == key)
                    .map(|i| Value::Object(self.instance_row(i, now)))
                    .collect();
                (
                    200,
                    json!({"instances_found": rows.len(), "instances": rows}),
                )
            }
            Route::Instance(id) => self.instance_route(*id, key, req, now),
            Route::RequestLogs(id) => self.request_logs(*id, key, req),
            Route::LogResult(_) | Route::Unknown => (
                404,
                json!({"success": false, "error": "not_found", "msg": "No such API route"}),
            ),
        }
    }

    fn user_body(&self, key: &str) -> (u16, Value) {
        let Some(a) = self.accounts.get(key) else {
            return (401, json!({"success": false, "error": "auth_error"}));
        };
        (
            200,
            json!({
                "id": a.user_id,
                "key_id": a.user_id * 10 + 1,
                "username": a.name,
                "fullname": a.name,
                "email": format!("{}@example.com", a.name),
                "email_verified": true,
                "credit": a.credit,
                "balance": 0.0,
                "balance_threshold": 5.0,
                "balance_threshold_enabled": false,
                "can_pay": true,
                "has_billing": true,
                "has_payout": true,
                "ssh_key": null,
                "sid": null,
                // The real endpoint returns the caller's key; clients must drop it.
                "api_key": key,
            }),
        )
    }

    fn earnings_body(&self, key: &str, query: &HashMap<String, String>) -> (u16, Value) {
        let Some(a) = self.accounts.get(key) else {
            return (401, json!({"success": false, "error": "auth_error"}));
        };
        let today = (epoch_now() / 86400.0).floor();
        let day = |name: &str| {
            query
                .get(name)
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(today - 1.0, f64::floor)
        };
        let (sday, eday) = (day("sday"), day("eday"));
        let rows: Vec<EarningsRow> = match &a.earnings {
            Some(rows) => rows.clone(),
            None => self
                .machines
                .values()
                .filter(|m| m.owner == key)
                .map(|m| EarningsRow {
                    machine_id: m.spec.id,
                    gpu_earn: 0.0,
                    sto_earn: 0.0,
                    bwu_earn: 0.0,
                    bwd_earn: 0.0,
                })
                .collect(),
        };
        let total = |f: fn(&EarningsRow) -> f64| rows.iter().map(f).sum::<f64>();
        let (gpu, sto, bwu, bwd) = (
            total(|r| r.gpu_earn),
            total(|r| r.sto_earn),
            total(|r| r.bwu_earn),
            total(|r| r.bwd_earn),
        );
        (
            200,
            json!({
                "sday": sday as i64,
                "eday": eday as i64,
                "summary": {"total_gpu": gpu, "total_stor": sto, "total_bwu": bwu, "total_bwd": bwd},
                "current": {"balance": 0.0, "service_fee": 0.0, "total": 0.0, "credit": a.credit},
                "per_machine": rows,
                "per_day": [{"day": eday as i64, "gpu_earn": gpu, "sto_earn": sto, "bwu_earn": bwu, "bwd_earn": bwd}],
                "username": a.name,
                "email": format!("{}@example.com", a.name),
            }),
        )
    }

    /// `GET /api/v1/instances/`: keyset pages by id ascending; `next_token` is the base64 of the
    /// last id of the page when more rows follow.
    fn instances_page(&self, key: &str, query: &HashMap<String, String>, now: f64) -> (u16, Value) {
        let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
            None => MAX_PAGE,
            Some(Ok(l)) if l <= 0 => 5,
            Some(Ok(l)) => (l as usize).min(MAX_PAGE),
            Some(Err(_)) => {
                return (
                    400,
                    json!({"success": false, "error": "invalid_request", "msg": "limit must be an integer"}),
                )
            }
        };
        let after = match query.get("after_token") {
            None => None,
            Some(token) => match decode_token(token) {
                Some(id) => Some(id),
                None => {
                    return (
                        400,
                        json!({"success": false, "error": "invalid_token", "msg": "Invalid or expired after_token."}),
                    )
                }
            },
        };
        let owned: Vec<&SimInstance> = self.instances.values().filter(|i| i.owner == key).collect();
        let mut label_counts: BTreeMap<String, u64> = BTreeMap::new();
        for i in &owned {
            if let Some(l) = &i.label {
                *label_counts.entry(l.clone()).or_default() += 1;
            }
        }
        let remaining: Vec<&&SimInstance> = owned
            .iter()
            .filter(|i| after.is_none_or(|a| i.id > a))
            .collect();
        let page: Vec<Value> = remaining
            .iter()
            .take(limit)
            .map(|i| Value::Object(self.instance_row(i, now)))
            .collect();
        let next_token = if remaining.len() > limit {
            remaining
                .get(limit - 1)
                .map(|i| {
                    Value::from(base64::engine::general_purpose::STANDARD.encode(i.id.to_string()))
                })
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        (
            200,
            json!({
                "success": true,
                "instances_found": page.len(),
                "total_instances": owned.len(),
                "label_counts": label_counts,
                "next_token": next_token,
                "instances": page,
            }),
        )
    }

    fn instance_route(
        &mut self,
        id: u64,
        key: &str,
        req: &SimRequest<'_>,
        now: f64,
    ) -> (u16, Value) {
        let owned = self.instances.get(&id).is_some_and(|i| i.owner == key);
        let account = self
            .accounts
            .get(key)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        match req.method {
            "GET" => match self.instances.get(&id).filter(|_| owned) {
                Some(i) => (
                    200,
                    json!({"instances": Value::Object(self.instance_row(i, now))}),
                ),
                None => (200, json!({"instances": null})),
            },
            "DELETE" => {
                if !owned {
                    return (
                        404,
                        json!({"success": false, "error": "not_found", "msg": "Instance not found"}),
                    );
                }
                self.instances.remove(&id);
                self.writes.push(WriteRecord {
                    account,
                    instance: id,
                    action: WriteAction::Destroy,
                });
                (
                    200,
                    json!({"success": true, "msg": format!("destroying instance {id}.")}),
                )
            }
            _ => {
                if !owned {
                    return (
                        404,
                        json!({"success": false, "error": "no_such_instance", "msg": "Instance not found"}),
                    );
                }
                let body: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
                let action = match (body.get("state").and_then(Value::as_str), body.get("label")) {
                    (Some("running"), _) => WriteAction::Start,
                    (Some("stopped"), _) => WriteAction::Stop,
                    (None, Some(Value::String(l))) => WriteAction::Label(l.clone()),
                    _ => {
                        return (
                            400,
                            json!({"success": false, "error": "invalid_args", "msg": "expected {\"state\": \"running\"|\"stopped\"} or {\"label\": ...}"}),
                        )
                    }
                };
                let outbid = self.instances.get(&id).is_some_and(|i| {
                    i.is_bid && i.cur_state == "stopped" && i.min_bid > i.dph_base
                });
                if action == WriteAction::Start && outbid {
                    self.writes.push(WriteRecord {
                        account,
                        instance: id,
                        action,
                    });
                    // Vast answers a start it cannot honour with HTTP 200 and `success: false`.
                    return (
                        200,
                        json!({"success": false, "msg": "Unable to start: your bid is below the current minimum price for this machine."}),
                    );
                }
                if let Some(i) = self.instances.get_mut(&id) {
                    match &action {
                        WriteAction::Start => {
                            i.intended = "running".into();
                            i.cur_state = "running".into();
                            i.actual = Some("running".into());
                        }
                        WriteAction::Stop => {
                            i.intended = "stopped".into();
                            i.cur_state = "stopped".into();
                            i.actual = Some("exited".into());
                        }
                        WriteAction::Label(l) => i.label = Some(l.clone()),
                        WriteAction::Destroy => {}
                    }
                }
                self.writes.push(WriteRecord {
                    account,
                    instance: id,
                    action,
                });
                (200, json!({"success": true}))
            }
        }
    }

    fn request_logs(&mut self, id: u64, key: &str, req: &SimRequest<'_>) -> (u16, Value) {
        let Some(instance) = self.instances.get(&id).filter(|i| i.owner == key) else {
            return (
                404,
                json!({"error": "invalid_id", "msg": "Invalid instance id."}),
            );
        };
        let body: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        let tail = match body.get("tail") {
            Some(Value::String(s)) => s.trim().parse::<usize>().ok(),
            Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
            _ => None,
        }
        .unwrap_or(1000);
        let start = instance.log.len().saturating_sub(tail);
        let mut text = instance.log[start..].join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        let token: String = {
            let mut rng = rand::thread_rng();
            (0..32)
                .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        if self.log_order.len() >= MAX_LOG_REQUESTS {
            if let Some(old) = self.log_order.pop_front() {
                self.logs.remove(&old);
            }
        }
        self.log_order.push_back(token.clone());
        self.logs.insert(
            token.clone(),
            LogUpload {
                text,
                not_ready_polls: self.log_not_ready_polls,
            },
        );
        let url = self
            .base_url
            .join(&format!("sim/instance_logs/{token}.log"))
            .map(|u| u.to_string())
            .unwrap_or_default();
        (
            200,
            json!({"success": true, "result_url": url, "msg": "Fetching logs, check the result_url in a few seconds."}),
        )
    }

    /// The storage side of a log request: 404 (S3's XML) until the upload "lands".
    fn log_result(&mut self, token: &str) -> Outcome {
        const NO_SUCH_KEY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
        match self.logs.get_mut(token) {
            Some(upload) if upload.not_ready_polls > 0 => {
                upload.not_ready_polls -= 1;
                Outcome::raw(404, "application/xml", NO_SUCH_KEY)
            }
            Some(upload) => Outcome::raw(200, "text/plain; charset=utf-8", &upload.text),
            None => Outcome::raw(404, "application/xml", NO_SUCH_KEY),
        }
    }
}

impl SimMachine {
    fn rental(&self, name: &str) -> Result<&Rental, SimError> {
        self.rentals
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| SimError::UnknownRental {
                machine: self.spec.id,
                rental: name.into(),
            })
    }

    fn rental_mut(&mut self, name: &str) -> Result<&mut Rental, SimError> {
        let machine = self.spec.id;
        self.rentals
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| SimError::UnknownRental {
                machine,
                rental: name.into(),
            })
    }

    fn running_rental_on(&self, gpu: u32) -> Option<&Rental> {
        self.rentals
            .iter()
            .find(|r| r.running && r.gpus.contains(&gpu))
    }

    fn running_holder(&self, gpu: u32) -> Option<&str> {
        self.running_rental_on(gpu).map(|r| r.name.as_str())
    }

    /// GPUs for a new rental: the given ones if none is running another rental, or the first
    /// `n` free ones, preferring GPUs no stored contract is bound to.
    fn pick_gpus(&self, select: &GpuSelect) -> Result<Vec<u32>, SimError> {
        let machine = self.spec.id;
        let num_gpus = self.spec.num_gpus;
        match select {
            GpuSelect::Indices(gpus) => {
                for &gpu in gpus {
                    if gpu >= num_gpus {
                        return Err(SimError::NoSuchGpu {
                            machine,
                            gpu,
                            num_gpus,
                        });
                    }
                    if let Some(holder) = self.running_holder(gpu) {
                        return Err(SimError::GpuBusy {
                            machine,
                            gpu,
                            holder: holder.into(),
                        });
                    }
                }
                let mut gpus = gpus.clone();
                gpus.sort_unstable();
                gpus.dedup();
                Ok(gpus)
            }
            GpuSelect::Count(n) => {
                let free: Vec<u32> = (0..num_gpus)
                    .filter(|g| self.running_rental_on(*g).is_none())
                    .collect();
                let bound = |g: &u32| {
                    self.rentals
                        .iter()
                        .any(|r| !r.running && r.gpus.contains(g))
                };
                let mut ordered: Vec<u32> = free.iter().copied().filter(|g| !bound(g)).collect();
                ordered.extend(free.iter().copied().filter(|g| bound(g)));
                if ordered.len() < *n as usize {
                    return Err(SimError::NotEnoughGpus {
                        machine,
                        free: ordered.len() as u32,
                        wanted: *n,
                    });
                }
                let mut gpus: Vec<u32> = ordered.into_iter().take(*n as usize).collect();
                gpus.sort_unstable();
                Ok(gpus)
            }
        }
    }
}

fn cur_state_for(intended: &str) -> &'static str {
    if intended == "running" {
        "running"
    } else {
        "stopped"
    }
}

fn decode_token(token: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// Applies `f` to every row of a body: the elements of `machines`/`instances` (or of a bare
/// list), the single `instances` object, or else the body object itself.
fn for_each_row(value: &mut Value, mut f: impl FnMut(&mut Map<String, Value>)) {
    let target = match value {
        Value::Object(map) if map.contains_key("machines") => map.get_mut("machines"),
        Value::Object(map) if map.contains_key("instances") => map.get_mut("instances"),
        other => Some(other),
    };
    match target {
        Some(Value::Array(rows)) => rows.iter_mut().for_each(|r| {
            if let Value::Object(map) = r {
                f(map)
            }
        }),
        Some(Value::Object(map)) => f(map),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        let mut w = World::new(Url::parse("http://127.0.0.1:1/").unwrap());
        w.add_account("K1", "host");
        w.add_machine("host", MachineSpec::new(1, "rig", 4, "RTX 4090"))
            .unwrap();
        w
    }

    fn row(w: &World) -> Value {
        w.machine_row_of(1).unwrap()
    }

    #[test]
    fn templates_are_real_rows() {
        let w = world();
        assert!(w.machine_template.len() > 50);
        assert!(w.instance_template.len() > 80);
        assert!(!w.instance_template.contains_key("jupyter_token"));
        assert!(w.instance_template["extra_env"].is_array());
    }

    #[test]
    fn rows_follow_the_contracts() {
        let mut w = world();
        let r = row(&w);
        assert_eq!(r["gpu_occupancy"], "x x x x ");
        assert_eq!(r["alloc_disk_space"], Value::Null);
        assert_eq!(r["client_end_date"], Value::Null);

        w.start_rental(
            "K1",
            1,
            "a",
            vec![0, 1].into(),
            RentalKind::OnDemand,
            50.0,
            None,
        )
        .unwrap();
        w.start_rental(
            "host",
            1,
            "b",
            1.into(),
            RentalKind::Interruptible,
            20.0,
            None,
        )
        .unwrap();
        let r = row(&w);
        assert_eq!(r["gpu_occupancy"], "D D I x ");
        assert_eq!(r["current_rentals_running"], 2);
        assert_eq!(r["current_rentals_running_on_demand"], 1);
        assert_eq!(r["current_rentals_resident"], 2);
        assert_eq!(r["current_rentals_on_demand"], 1);
        assert_eq!(r["alloc_disk_space"], 70);
        assert!(r["client_end_date"].as_f64().is_some());

        w.pause_rental("K1", 1, "a").unwrap();
        let r = row(&w);
        assert_eq!(r["gpu_occupancy"], "x x I x ");
        assert_eq!(r["current_rentals_running"], 1);
        assert_eq!(r["current_rentals_running_on_demand"], 0);
        assert_eq!(r["current_rentals_resident"], 2);
        assert_eq!(r["current_rentals_on_demand"], 1);
        assert_eq!(r["alloc_disk_space"], 70);

        w.preempt("K1", 1, "b", "c", RentalKind::OnDemand, 10.0)
            .unwrap();
        let r = row(&w);
        assert_eq!(r["gpu_occupancy"], "x x D x ");
        assert_eq!(r["current_rentals_resident"], 3);
        assert_eq!(r["alloc_disk_space"], 80);
        assert!(matches!(
            w.resume_rental("K1", 1, "b"),
            Err(SimError::GpuBusy { gpu: 2, .. })
        ));
        w.resume_rental("K1", 1, "a").unwrap();
        for name in ["a", "b", "c"] {
            w.end_rental("K1", 1, name).unwrap();
        }
        let r = row(&w);
        assert_eq!(r["gpu_occupancy"], "x x x x ");
        assert_eq!(r["current_rentals_resident"], 0);
        assert_eq!(r["alloc_disk_space"], Value::Null);
        assert_eq!(r["client_end_date"], Value::Null);
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        let mut w = world();
        w.add_account("K2", "other");
        assert_eq!(
            w.start_rental("K2", 1, "a", 1.into(), RentalKind::OnDemand, 1.0, None),
            Err(SimError::NotOwner(1))
        );
        assert_eq!(
            w.start_rental(
                "K1",
                1,
                "a",
                vec![9].into(),
                RentalKind::OnDemand,
                1.0,
                None
            ),
            Err(SimError::NoSuchGpu {
                machine: 1,
                gpu: 9,
                num_gpus: 4
            })
        );
        assert!(matches!(
            w.start_rental("K1", 1, "a", 5.into(), RentalKind::OnDemand, 1.0, None),
            Err(SimError::NotEnoughGpus { .. })
        ));
        assert_eq!(
            w.pause_rental("nobody", 1, "a"),
            Err(SimError::UnknownAccount)
        );
        assert!(!SimError::UnknownAccount.to_string().contains("nobody"));
        assert!(matches!(
            w.pause_rental("K1", 1, "zz"),
            Err(SimError::UnknownRental { .. })
        ));
    }

    #[test]
    fn routes_ignore_trailing_slashes() {
        assert_eq!(Route::parse("GET", "/api/v0/machines"), Route::Machines);
        assert_eq!(Route::parse("GET", "/api/v0/machines/"), Route::Machines);
        assert_eq!(
            Route::parse("GET", "/api/v0/machines/7/"),
            Route::Machine(7)
        );
        assert_eq!(
            Route::parse("DELETE", "/api/v0/instances/7"),
            Route::Instance(7)
        );
        assert_eq!(Route::parse("GET", "/api/v0/machines/x/"), Route::Unknown);
        assert_eq!(
            Route::parse("PUT", "/api/v0/instances/request_logs/9/"),
            Route::RequestLogs(9)
        );
        assert_eq!(decode_token("MTIz"), Some(123));
        assert_eq!(decode_token("!!"), None);
    }
}
