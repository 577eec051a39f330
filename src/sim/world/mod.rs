//! The simulated cloud's state, without any I/O: accounts, machines with their rental contracts,
//! instances, injected faults, and what scenarios and tests change in it.
//!
//! Machine rows are derived from the rental contracts on every request (reference/vast-api.md
//! §2.6), so occupancy tokens, `current_rentals_*` counters, `alloc_disk_space` and
//! `client_end_date` always agree with each other the way the detection core expects.
//!
//! - `rentals`: the contracts on a machine and the GPUs they hold.
//! - `rows`: a machine's or an instance's row as Vast sends it.
//! - `message`: a request and its answer.
//! - `http`: one request: authentication, rate limit, faults, routing.
//! - `endpoints`: the answer of each route (user, earnings, instance pages and writes, logs).

mod endpoints;
mod http;
mod message;
mod rentals;
mod rows;

pub(crate) use message::{After, SimRequest};

use super::faults::{Fault, FaultDuration};
use super::spec::{
    EarningsRow, InstanceSpec, MachineSpec, MaintenanceWindow, RecordedRequest, RentalKind,
    SimError, WriteRecord,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use url::Url;

const MACHINE_ROW: &str = include_str!("../data/machine_row.json");
const INSTANCE_ROW: &str = include_str!("../data/instance_row.json");

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
}

fn cur_state_for(intended: &str) -> &'static str {
    if intended == "running" {
        "running"
    } else {
        "stopped"
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
}
