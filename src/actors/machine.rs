//! One actor per watched machine: holds its detection state, runs the pure core on each row the
//! account actor hands it, and persists the new state together with its events before adopting it.
//! A panic inside the core is caught here, counted, and the previous state kept, so one bad row
//! cannot take the machine (or its account) down. The account actor supervises it: it counts such
//! failures as restarts and replaces the actor from the stored state if it dies
//! (`account::ops`).

use super::supervision::{Child, FaultInjection, InjectedFault};
use crate::detect::{self, Adoption, MachineRules, MachineState, MachineSummary, Observation};
use crate::store::{Commit, StoreHandle};
use crate::vast::Machine;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

pub struct MachineActor {
    account: String,
    machine_id: u64,
    state: Option<MachineState>,
    rules: Arc<MachineRules>,
    store: StoreHandle,
    panics: u32,
    /// Tests only: faults armed for this machine.
    faults: Option<FaultInjection>,
}

impl MachineActor {
    pub fn new(
        account: String,
        machine_id: u64,
        state: Option<MachineState>,
        rules: Arc<MachineRules>,
        store: StoreHandle,
    ) -> MachineActor {
        MachineActor {
            account,
            machine_id,
            state,
            rules,
            store,
            panics: 0,
            faults: None,
        }
    }

    /// Tests only: lets `faults` make this actor panic (see [`FaultInjection`]).
    #[doc(hidden)]
    pub fn with_fault_injection(mut self, faults: Option<FaultInjection>) -> MachineActor {
        self.faults = faults;
        self
    }

    /// The injected fault for this observation. `KillActor` panics right here, outside the
    /// core's `catch_unwind`, so the actor dies as it would from a bug in the handler.
    fn injected_fault(&self) -> bool {
        let Some(faults) = &self.faults else {
            return false;
        };
        match faults.take(&self.account, Child::Machine(self.machine_id)) {
            Some(InjectedFault::KillActor) => {
                panic!("injected fault: machine actor {} killed", self.machine_id)
            }
            Some(InjectedFault::PanicInDetection) => true,
            None => false,
        }
    }
}

impl Actor for MachineActor {
    type Context = Context<Self>;
}

/// What the account actor learns back from one observation.
#[derive(Debug, Clone)]
pub struct ObserveReport {
    pub machine_id: u64,
    pub events: usize,
    /// The machine's summary after the observation; `None` when nothing changed.
    pub summary: Option<Arc<MachineSummary>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("detection panicked on machine {0}; previous state kept")]
    Panicked(u64),
    #[error("could not persist machine {machine}: {error}")]
    Store { machine: u64, error: String },
}

/// A row from the machine list (or the single-machine lookup).
#[derive(Message)]
#[rtype(result = "Result<ObserveReport, ObserveError>")]
pub struct Observe {
    pub row: Machine,
    pub now: DateTime<Utc>,
    pub adoption: Adoption,
}

/// The machine was missing from the list; `lookup` is what the single-machine GET returned.
#[derive(Message)]
#[rtype(result = "Result<ObserveReport, ObserveError>")]
pub struct Missing {
    pub lookup: Option<Machine>,
    pub now: DateTime<Utc>,
}

impl MachineActor {
    /// Runs `step` (the pure core), then commits its result; the new state is adopted only once
    /// the store has it, so a failed commit means the change is detected again next poll.
    fn run_step(
        &mut self,
        now: DateTime<Utc>,
        step: impl FnOnce(
            Option<&MachineState>,
            &Observation,
        ) -> (MachineState, Vec<crate::event::Event>),
    ) -> ResponseActFuture<Self, Result<ObserveReport, ObserveError>> {
        let inject_panic = self.injected_fault();
        let prev = self.state.as_ref();
        let obs = Observation {
            account: &self.account,
            now,
            rules: &self.rules,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if inject_panic {
                panic!("injected fault: detection panicked");
            }
            step(prev, &obs)
        }));
        let (new_state, events) = match outcome {
            Ok(v) => v,
            Err(_) => {
                self.panics += 1;
                tracing::error!(account = %self.account, machine = self.machine_id, panics = self.panics,
                    "detection panicked; keeping the previous state");
                let id = self.machine_id;
                return Box::pin(async move { Err(ObserveError::Panicked(id)) }.into_actor(self));
            }
        };
        if events.is_empty()
            && self
                .state
                .as_ref()
                .is_some_and(|prev| prev.same_except_last_seen(&new_state))
        {
            // Nothing changed but the time of the observation: nothing worth a disk write. After a
            // crash the stored (older) last_seen only widens the `since` window of the next event.
            self.state = Some(new_state);
            let machine_id = self.machine_id;
            let report = ObserveReport {
                machine_id,
                events: 0,
                summary: None,
            };
            return Box::pin(async move { Ok(report) }.into_actor(self));
        }
        let state_json = match serde_json::to_string(&new_state) {
            Ok(j) => j,
            Err(e) => {
                let id = self.machine_id;
                return Box::pin(
                    async move {
                        Err(ObserveError::Store {
                            machine: id,
                            error: e.to_string(),
                        })
                    }
                    .into_actor(self),
                );
            }
        };
        for e in &events {
            tracing::info!(account = %self.account, machine = self.machine_id, kind = %e.kind, "{}", e.title);
        }
        let count = events.len();
        let commit = Commit {
            account: self.account.clone(),
            kind: "machine",
            id: self.machine_id.to_string(),
            state: Some(state_json),
            events,
        };
        let store = self.store.clone();
        let machine = self.machine_id;
        Box::pin(
            async move { store.apply(vec![commit]).await }
                .into_actor(self)
                .map(move |result, act, _ctx| match result {
                    Ok(_) => {
                        let summary = Some(Arc::new(detect::machine_summary(&new_state)));
                        act.state = Some(new_state);
                        Ok(ObserveReport {
                            machine_id: machine,
                            events: count,
                            summary,
                        })
                    }
                    Err(e) => Err(ObserveError::Store {
                        machine,
                        error: e.to_string(),
                    }),
                }),
        )
    }
}

impl Handler<Observe> for MachineActor {
    type Result = AtomicResponse<Self, Result<ObserveReport, ObserveError>>;

    fn handle(&mut self, msg: Observe, _ctx: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(self.run_step(msg.now, move |prev, obs| {
            detect::observe_machine(prev, &msg.row, obs, msg.adoption)
        }))
    }
}

impl Handler<Missing> for MachineActor {
    type Result = AtomicResponse<Self, Result<ObserveReport, ObserveError>>;

    fn handle(&mut self, msg: Missing, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(prev_state) = self.state.clone() else {
            // Never observed: nothing to conclude from its absence.
            let machine_id = self.machine_id;
            return AtomicResponse::new(Box::pin(
                async move {
                    Ok(ObserveReport {
                        machine_id,
                        events: 0,
                        summary: None,
                    })
                }
                .into_actor(self),
            ));
        };
        AtomicResponse::new(self.run_step(msg.now, move |_prev, obs| {
            detect::machine_missing(&prev_state, msg.lookup.as_ref(), obs)
        }))
    }
}
