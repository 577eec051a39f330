//! What scenarios, tests and the `simulate` command hand the simulated cloud, and what it records
//! for them to inspect: machine, instance and rental specs, earnings rows, recorded requests and
//! writes, and its errors. Plain data; must not hold the cloud's state (that is `world`).

use super::faults::Fault;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
