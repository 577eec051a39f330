//! Scenarios: scripted steps of actions on the simulated cloud, loaded from TOML and applied on
//! a clock (`SimHandle::run_scenario`) or one step at a time by a test (`SimHandle::apply_step`).
//!
//! ```toml
//! [[step]]
//! at = "0s"                # offset from the start of the run; optional (then: right after the previous step)
//! label = "setup"
//!
//! [[step.action]]
//! type = "add_account"
//! key = "my-test-key"
//! name = "hostco"
//!
//! [[step.action]]
//! type = "add_machine"
//! account = "hostco"       # an account's key or name
//! machine = { id = 1001, hostname = "rig-01", num_gpus = 4, gpu_name = "RTX 4090" }
//!
//! [[step]]
//! at = "10s"
//! [[step.action]]
//! type = "start_rental"
//! account = "hostco"
//! machine = 1001
//! rental = "alice"
//! gpus = [0, 1]            # or a count: gpus = 2
//! kind = "D"               # D on-demand, I interruptible, R reserved
//! disk_gb = 50
//! ```
//!
//! Every action of a step is applied under one lock, so no request sees a step half done.

use super::faults::{opt_duration_text, Fault, FaultDuration};
use super::spec::{
    EarningsRow, GpuSelect, InstanceSpec, MachineSpec, MaintenanceWindow, RentalKind, SimError,
};
use super::world::World;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A scripted run of the simulated cloud.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

/// The actions applied together at one moment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Offset from the start of a clocked run; `None`: right after the previous step.
    #[serde(
        default,
        with = "opt_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub at: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(rename = "action", default)]
    pub actions: Vec<Action>,
}

fn default_kind() -> RentalKind {
    RentalKind::OnDemand
}

/// One change to the simulated cloud. `account` fields take an account's key or its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    AddAccount {
        key: String,
        name: String,
        #[serde(default)]
        credit: Option<f64>,
    },
    AddMachine {
        account: String,
        machine: MachineSpec,
    },
    /// Gone from the list, and the single lookup answers `[]`.
    RemoveMachine {
        machine: u64,
    },
    /// Left out of the next list response only; the single lookup still finds it.
    HideFromListOnce {
        machine: u64,
    },
    StartRental {
        account: String,
        machine: u64,
        rental: String,
        gpus: GpuSelect,
        #[serde(default = "default_kind")]
        kind: RentalKind,
        #[serde(default)]
        disk_gb: f64,
        /// Contract length (default 72 h); sets `client_end_date`.
        #[serde(default)]
        hours: Option<f64>,
    },
    /// GPUs released, storage kept.
    PauseRental {
        account: String,
        machine: u64,
        rental: String,
    },
    ResumeRental {
        account: String,
        machine: u64,
        rental: String,
    },
    /// Contract ended: GPUs and storage released.
    EndRental {
        account: String,
        machine: u64,
        rental: String,
    },
    /// The running interruptible `rental` loses its GPUs to the new rental `by` in one step.
    Preempt {
        account: String,
        machine: u64,
        rental: String,
        by: String,
        #[serde(default = "default_kind")]
        kind: RentalKind,
        #[serde(default)]
        disk_gb: f64,
    },
    /// Seconds since the machine daemon last checked in (0 = online).
    SetTimeout {
        machine: u64,
        secs: f64,
    },
    /// No `error` clears it.
    SetError {
        machine: u64,
        #[serde(default)]
        error: Option<String>,
    },
    SetListed {
        machine: u64,
        listed: bool,
    },
    SetVerification {
        machine: u64,
        verification: String,
    },
    AddReport {
        machine: u64,
        problem: String,
        #[serde(default)]
        message: String,
    },
    /// No windows clears the maintenance schedule.
    SetMaintenance {
        machine: u64,
        #[serde(default)]
        windows: Vec<MaintenanceWindow>,
    },
    AddInstance {
        account: String,
        instance: InstanceSpec,
    },
    /// No `actual` is Vast's `null` (provisioning).
    SetInstanceStatus {
        instance: u64,
        #[serde(default)]
        actual: Option<String>,
        intended: String,
        #[serde(default)]
        status_msg: Option<String>,
    },
    /// An interruptible instance outbid: stopped while intended running.
    PreemptInstance {
        instance: u64,
    },
    DestroyInstance {
        instance: u64,
    },
    AppendInstanceLog {
        instance: u64,
        lines: Vec<String>,
    },
    SetCredit {
        account: String,
        credit: f64,
    },
    SetEarnings {
        account: String,
        per_machine: Vec<EarningsRow>,
    },
    /// Applies to the next `requests` requests of the account, or until `clear_faults`.
    InjectFault {
        account: String,
        fault: Fault,
        #[serde(default)]
        requests: Option<u32>,
    },
    ClearFaults {
        account: String,
    },
    /// How many polls of a log `result_url` answer 404 before the log appears.
    SetLogDelay {
        polls: u32,
    },
    /// Turns on (with `min_interval`) or off Vast-like per-key, per-endpoint spacing: calls
    /// closer than `min_interval` get a 429 in `style` (default: plain text).
    RateLimit {
        #[serde(
            default,
            with = "opt_duration_text",
            skip_serializing_if = "Option::is_none"
        )]
        min_interval: Option<Duration>,
        #[serde(default)]
        style: Option<Fault>,
    },
}

impl Scenario {
    /// Parses and checks a scenario file's text.
    pub fn from_toml_str(text: &str) -> Result<Scenario, SimError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads and parses a scenario file.
    pub fn from_file(path: &std::path::Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Scenario(format!("cannot read {}: {e}", path.display())))?;
        Scenario::from_toml_str(&text)
            .map_err(|e| SimError::Scenario(format!("{}: {e}", path.display())))
    }

    fn validate(&self) -> Result<(), SimError> {
        let mut last: Option<(usize, Duration)> = None;
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(at) = step.at {
                if let Some((j, previous)) = last {
                    if at < previous {
                        return Err(SimError::Scenario(format!(
                            "step {} (at {}) is earlier than step {} (at {}): steps must be in time order",
                            i + 1,
                            crate::util::format_duration(at),
                            j + 1,
                            crate::util::format_duration(previous)
                        )));
                    }
                }
                last = Some((i, at));
            }
            for action in &step.actions {
                if let Action::InjectFault {
                    requests: Some(0), ..
                } = action
                {
                    return Err(SimError::Scenario(format!(
                        "step {}: inject_fault with requests = 0 does nothing (omit requests to keep it until clear_faults)",
                        i + 1
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// `(name, key)` of every account the scenario creates.
    pub fn accounts(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .flat_map(|s| &s.actions)
            .filter_map(|a| match a {
                Action::AddAccount { key, name, .. } => Some((name.clone(), key.clone())),
                _ => None,
            })
            .collect()
    }

    /// How long a clocked run takes (the offset of the last timed step).
    pub fn duration(&self) -> Duration {
        self.steps
            .iter()
            .filter_map(|s| s.at)
            .max()
            .unwrap_or_default()
    }
}

impl Action {
    pub(crate) fn apply(&self, world: &mut World) -> Result<(), SimError> {
        match self {
            Action::AddAccount { key, name, credit } => {
                world.add_account(key, name);
                if let Some(c) = credit {
                    world.set_credit(key, *c)?;
                }
                Ok(())
            }
            Action::AddMachine { account, machine } => world.add_machine(account, machine.clone()),
            Action::RemoveMachine { machine } => world.remove_machine(*machine),
            Action::HideFromListOnce { machine } => world.hide_from_list_once(*machine),
            Action::StartRental {
                account,
                machine,
                rental,
                gpus,
                kind,
                disk_gb,
                hours,
            } => world.start_rental(
                account,
                *machine,
                rental,
                gpus.clone(),
                *kind,
                *disk_gb,
                *hours,
            ),
            Action::PauseRental {
                account,
                machine,
                rental,
            } => world.pause_rental(account, *machine, rental),
            Action::ResumeRental {
                account,
                machine,
                rental,
            } => world.resume_rental(account, *machine, rental),
            Action::EndRental {
                account,
                machine,
                rental,
            } => world.end_rental(account, *machine, rental),
            Action::Preempt {
                account,
                machine,
                rental,
                by,
                kind,
                disk_gb,
            } => world.preempt(account, *machine, rental, by, *kind, *disk_gb),
            Action::SetTimeout { machine, secs } => world.set_timeout(*machine, *secs),
            Action::SetError { machine, error } => world.set_error(*machine, error.clone()),
            Action::SetListed { machine, listed } => world.set_listed(*machine, *listed),
            Action::SetVerification {
                machine,
                verification,
            } => world.set_verification(*machine, verification),
            Action::AddReport {
                machine,
                problem,
                message,
            } => world.add_report(*machine, problem, message),
            Action::SetMaintenance { machine, windows } => {
                world.set_maintenance(*machine, windows.clone())
            }
            Action::AddInstance { account, instance } => {
                world.add_instance(account, instance.clone()).map(|_| ())
            }
            Action::SetInstanceStatus {
                instance,
                actual,
                intended,
                status_msg,
            } => world.set_instance_status(
                *instance,
                actual.as_deref(),
                intended,
                status_msg.as_deref(),
            ),
            Action::PreemptInstance { instance } => world.preempt_instance(*instance),
            Action::DestroyInstance { instance } => world.destroy_instance(*instance),
            Action::AppendInstanceLog { instance, lines } => lines
                .iter()
                .try_for_each(|line| world.append_instance_log(*instance, line)),
            Action::SetCredit { account, credit } => world.set_credit(account, *credit),
            Action::SetEarnings {
                account,
                per_machine,
            } => world.set_earnings(account, per_machine.clone()),
            Action::InjectFault {
                account,
                fault,
                requests,
            } => world.inject_fault(
                account,
                fault.clone(),
                requests.map_or(FaultDuration::UntilCleared, FaultDuration::Requests),
            ),
            Action::ClearFaults { account } => world.clear_faults(account),
            Action::SetLogDelay { polls } => {
                world.set_log_delay(*polls);
                Ok(())
            }
            Action::RateLimit {
                min_interval,
                style,
            } => {
                world.set_rate_limit(
                    min_interval.map(|d| (d, style.clone().unwrap_or(Fault::RateLimitText))),
                );
                Ok(())
            }
        }
    }
}

/// Applies every action of a step, stopping at the first that fails.
pub(crate) fn apply_step(world: &mut World, step: &Step, index: usize) -> Result<(), SimError> {
    for (n, action) in step.actions.iter().enumerate() {
        action.apply(world).map_err(|e| {
            SimError::Scenario(format!(
                "step {}{}, action {} ({}): {e}",
                index + 1,
                step.label
                    .as_deref()
                    .map(|l| format!(" \"{l}\""))
                    .unwrap_or_default(),
                n + 1,
                action.name()
            ))
        })?;
    }
    Ok(())
}

impl Action {
    /// The `type` of the action as written in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            Action::AddAccount { .. } => "add_account",
            Action::AddMachine { .. } => "add_machine",
            Action::RemoveMachine { .. } => "remove_machine",
            Action::HideFromListOnce { .. } => "hide_from_list_once",
            Action::StartRental { .. } => "start_rental",
            Action::PauseRental { .. } => "pause_rental",
            Action::ResumeRental { .. } => "resume_rental",
            Action::EndRental { .. } => "end_rental",
            Action::Preempt { .. } => "preempt",
            Action::SetTimeout { .. } => "set_timeout",
            Action::SetError { .. } => "set_error",
            Action::SetListed { .. } => "set_listed",
            Action::SetVerification { .. } => "set_verification",
            Action::AddReport { .. } => "add_report",
            Action::SetMaintenance { .. } => "set_maintenance",
            Action::AddInstance { .. } => "add_instance",
            Action::SetInstanceStatus { .. } => "set_instance_status",
            Action::PreemptInstance { .. } => "preempt_instance",
            Action::DestroyInstance { .. } => "destroy_instance",
            Action::AppendInstanceLog { .. } => "append_instance_log",
            Action::SetCredit { .. } => "set_credit",
            Action::SetEarnings { .. } => "set_earnings",
            Action::InjectFault { .. } => "inject_fault",
            Action::ClearFaults { .. } => "clear_faults",
            Action::SetLogDelay { .. } => "set_log_delay",
            Action::RateLimit { .. } => "rate_limit",
        }
    }
}

/// API key of the demo's host account ("hostco").
pub const DEMO_HOST_KEY: &str = "demo-hostco-5f1c2a9e7b3d4e6f8a0b1c2d3e4f5a6b";
/// API key of the demo's renter account ("labco").
pub const DEMO_RENTER_KEY: &str = "demo-labco-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
pub const DEMO_HOST_ACCOUNT: &str = "hostco";
pub const DEMO_RENTER_ACCOUNT: &str = "labco";

const DEMO_TOML: &str = include_str!("data/demo.toml");

/// The built-in demo script (see the `sim` module documentation for what happens when).
pub fn demo_scenario() -> Scenario {
    // The text is part of the binary and a unit test parses it, so this cannot fail at run time.
    Scenario::from_toml_str(DEMO_TOML).expect("the built-in demo scenario is valid")
}

/// The demo script as TOML, a starting point for users' own scenario files.
pub fn demo_scenario_toml() -> &'static str {
    DEMO_TOML
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_parses_and_uses_the_published_keys() {
        let demo = demo_scenario();
        let accounts = demo.accounts();
        assert!(accounts.contains(&(DEMO_HOST_ACCOUNT.into(), DEMO_HOST_KEY.into())));
        assert!(accounts.contains(&(DEMO_RENTER_ACCOUNT.into(), DEMO_RENTER_KEY.into())));
        assert!(demo.duration() <= Duration::from_secs(110));
        assert!(demo.duration() >= Duration::from_secs(60));
    }

    #[test]
    fn every_demo_step_applies() {
        let demo = demo_scenario();
        let mut world = World::new(url::Url::parse("http://127.0.0.1:1/").unwrap());
        for (i, step) in demo.steps.iter().enumerate() {
            apply_step(&mut world, step, i).unwrap();
        }
        assert!(world.machine_row_of(1003).is_none());
        let rig01 = world.machine_row_of(1001).unwrap();
        assert_eq!(rig01["gpu_occupancy"], "x x x x ");
        assert_eq!(rig01["current_rentals_resident"], 0);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err =
            Scenario::from_toml_str("[[step]]\nat = \"5s\"\n[[step.action]]\ntype = \"warp\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("warp"), "{err}");
        assert!(err.contains("line"), "{err}");
        let err = Scenario::from_toml_str("[[step]]\nat = \"5s\"\n[[step]]\nat = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("earlier"), "{err}");
        let err = Scenario::from_toml_str(
            "[[step]]\n[[step.action]]\ntype = \"set_timeout\"\nmachine = 1\nsecs = 5\nbogus = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn faults_read_from_toml() {
        let s = Scenario::from_toml_str(
            r#"
            [[step]]
            [[step.action]]
            type = "inject_fault"
            account = "a"
            fault = "bad_gateway_502_html"
            requests = 2
            [[step.action]]
            type = "inject_fault"
            account = "a"
            fault = { hang = "1500ms" }
            [[step.action]]
            type = "inject_fault"
            account = "a"
            fault = { stringify_field = "timeout" }
            "#,
        )
        .unwrap();
        let faults: Vec<_> = s.steps[0]
            .actions
            .iter()
            .map(|a| match a {
                Action::InjectFault { fault, .. } => fault.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            faults,
            vec![
                Fault::BadGateway502Html,
                Fault::Hang(Duration::from_millis(1500)),
                Fault::StringifyField("timeout".into())
            ]
        );
    }
}
