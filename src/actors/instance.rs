//! One actor per watched instance (renter accounts): holds the instance's detection state and log
//! cursor, runs the pure core on each row the account actor hands it, and, when log rules apply to
//! the instance, fetches new log lines through the two-step log API at its own modest interval and
//! acts on matches (stop or destroy, only with `actions_enabled`). State and events are committed
//! together; the new state is adopted only after the commit. A panic inside the core is caught and
//! the previous state kept. The account actor supervises it like a machine actor: it counts such
//! failures as restarts, replaces the actor from the stored record if it dies, and backs it off
//! when it keeps failing (`account::ops`).

use super::supervision::{Child, FaultInjection, InjectedFault};
use crate::config::LogAction;
use crate::detect::instance::{
    self as core, InstanceAdoption, InstanceRules, InstanceState, InstanceSummary,
};
use crate::detect::logs::{self, CompiledLogRule, LogCursor};
use crate::event::Event;
use crate::store::{Commit, StoreHandle};
use crate::vast::{Instance, VastClient};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// Lines asked for per log fetch.
const LOG_TAIL: u32 = 1000;

/// What is persisted per instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceRecord {
    pub state: InstanceState,
    #[serde(default)]
    pub log: LogCursor,
    /// Counter for log-match event ids (separate from the state's own event counter).
    #[serde(default)]
    pub log_seq: u64,
    /// Adopted at first start: its existing log is taken as already seen.
    #[serde(default)]
    pub adopted: bool,
    /// Whether the log was fetched at least once.
    #[serde(default)]
    pub log_started: bool,
}

/// Shared, per-account settings of instance actors.
pub struct InstanceSettings {
    pub rules: InstanceRules,
    pub log_rules: Vec<CompiledLogRule>,
    pub actions_enabled: bool,
    pub log_interval: Duration,
}

pub struct InstanceActor {
    account: String,
    instance_id: u64,
    record: Option<InstanceRecord>,
    settings: Arc<InstanceSettings>,
    client: VastClient,
    store: StoreHandle,
    /// A log fetch is under way (ticks never overlap).
    log_busy: bool,
    /// Tests only: faults armed for this instance.
    faults: Option<FaultInjection>,
}

/// Why an observation of an instance did not complete.
#[derive(Debug, thiserror::Error)]
pub enum InstanceObserveError {
    #[error("detection panicked on instance {0}; previous state kept")]
    Panicked(u64),
    #[error("could not persist instance {instance}: {error}")]
    Store { instance: u64, error: String },
}

/// What an observation answers: the instance's summary, `None` when there was nothing to observe.
pub type InstanceObserveResult = Result<Option<Arc<InstanceSummary>>, InstanceObserveError>;

impl InstanceActor {
    pub fn new(
        account: String,
        instance_id: u64,
        record: Option<InstanceRecord>,
        settings: Arc<InstanceSettings>,
        client: VastClient,
        store: StoreHandle,
    ) -> InstanceActor {
        InstanceActor {
            account,
            instance_id,
            record,
            settings,
            client,
            store,
            log_busy: false,
            faults: None,
        }
    }

    /// Tests only: lets `faults` make this actor panic (see [`FaultInjection`]).
    #[doc(hidden)]
    pub fn with_fault_injection(mut self, faults: Option<FaultInjection>) -> InstanceActor {
        self.faults = faults;
        self
    }

    /// The injected fault for this observation. `KillActor` panics right here, outside the
    /// core's `catch_unwind`, so the actor dies as it would from a bug in the handler.
    fn injected_fault(&self) -> bool {
        let Some(faults) = &self.faults else {
            return false;
        };
        match faults.take(&self.account, Child::Instance(self.instance_id)) {
            Some(InjectedFault::KillActor) => {
                panic!("injected fault: instance actor {} killed", self.instance_id)
            }
            Some(InjectedFault::PanicInDetection) => true,
            None => false,
        }
    }

    fn label(&self) -> Option<String> {
        self.record.as_ref().and_then(|r| r.state.label.clone())
    }

    fn rules_apply(&self) -> bool {
        let label = self.label();
        let destroyed = self.record.as_ref().is_some_and(|r| r.state.destroyed);
        !destroyed
            && self
                .settings
                .log_rules
                .iter()
                .any(|r| logs::rule_applies(r, self.instance_id, label.as_deref()))
    }

    /// Commits `record` with `events`, adopting it only once stored.
    fn commit(
        &mut self,
        record: InstanceRecord,
        events: Vec<Event>,
    ) -> ResponseActFuture<Self, InstanceObserveResult> {
        let instance = self.instance_id;
        let json = match serde_json::to_string(&record) {
            Ok(j) => j,
            Err(e) => {
                let error = InstanceObserveError::Store {
                    instance,
                    error: e.to_string(),
                };
                return Box::pin(async move { Err(error) }.into_actor(self));
            }
        };
        for e in &events {
            tracing::info!(account = %self.account, instance = self.instance_id, kind = %e.kind, "{}", e.title);
        }
        let commit = Commit {
            account: self.account.clone(),
            kind: "instance",
            id: self.instance_id.to_string(),
            state: Some(json),
            events,
        };
        let store = self.store.clone();
        Box::pin(
            async move { store.apply(vec![commit]).await }
                .into_actor(self)
                .map(move |result, act, _| match result {
                    Ok(_) => {
                        let summary = Some(Arc::new(core::instance_summary(&record.state)));
                        act.record = Some(record);
                        Ok(summary)
                    }
                    Err(e) => Err(InstanceObserveError::Store {
                        instance,
                        error: e.to_string(),
                    }),
                }),
        )
    }

    fn step(
        &mut self,
        f: impl FnOnce(Option<&InstanceState>) -> (InstanceState, Vec<Event>),
        adopted: bool,
    ) -> ResponseActFuture<Self, InstanceObserveResult> {
        let inject_panic = self.injected_fault();
        let prev = self.record.as_ref().map(|r| &r.state);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if inject_panic {
                panic!("injected fault: detection panicked");
            }
            f(prev)
        }));
        let (state, events) = match outcome {
            Ok(v) => v,
            Err(_) => {
                tracing::error!(account = %self.account, instance = self.instance_id, "detection panicked; keeping the previous state");
                let instance = self.instance_id;
                return Box::pin(
                    async move { Err(InstanceObserveError::Panicked(instance)) }.into_actor(self),
                );
            }
        };
        let record = match &self.record {
            Some(r) => InstanceRecord { state, ..r.clone() },
            None => InstanceRecord {
                state,
                log: LogCursor::default(),
                log_seq: 0,
                adopted,
                log_started: false,
            },
        };
        self.commit(record, events)
    }
}

impl Actor for InstanceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.settings.log_rules.is_empty() {
            ctx.run_interval(self.settings.log_interval, |act, ctx| {
                // A running interval keeps an actix actor alive after its last address is gone;
                // without this check an instance actor would outlive its account actor.
                if !ctx.connected() {
                    ctx.stop();
                    return;
                }
                if act.rules_apply() {
                    ctx.notify(LogTick);
                }
            });
        }
    }
}

#[derive(Message)]
#[rtype(result = "InstanceObserveResult")]
pub struct ObserveInstance {
    pub row: Instance,
    pub now: DateTime<Utc>,
    pub adoption: InstanceAdoption,
}

#[derive(Message)]
#[rtype(result = "InstanceObserveResult")]
pub struct InstanceMissing {
    pub lookup: Option<Instance>,
    pub now: DateTime<Utc>,
}

impl Handler<ObserveInstance> for InstanceActor {
    type Result = AtomicResponse<Self, InstanceObserveResult>;

    fn handle(&mut self, msg: ObserveInstance, _ctx: &mut Context<Self>) -> Self::Result {
        let account = self.account.clone();
        let settings = self.settings.clone();
        let adopted = matches!(msg.adoption, InstanceAdoption::FirstStart);
        AtomicResponse::new(self.step(
            move |prev| {
                core::observe_instance(
                    prev,
                    &msg.row,
                    &account,
                    msg.now,
                    &settings.rules,
                    msg.adoption,
                )
            },
            adopted,
        ))
    }
}

impl Handler<InstanceMissing> for InstanceActor {
    type Result = AtomicResponse<Self, InstanceObserveResult>;

    fn handle(&mut self, msg: InstanceMissing, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(prev) = self.record.as_ref().map(|r| r.state.clone()) else {
            return AtomicResponse::new(Box::pin(async { Ok(None) }.into_actor(self)));
        };
        let account = self.account.clone();
        let settings = self.settings.clone();
        AtomicResponse::new(self.step(
            move |_| {
                core::instance_missing(
                    &prev,
                    msg.lookup.as_ref(),
                    &account,
                    msg.now,
                    &settings.rules,
                )
            },
            false,
        ))
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct LogTick;

impl Handler<LogTick> for InstanceActor {
    type Result = ();

    fn handle(&mut self, _msg: LogTick, ctx: &mut Context<Self>) {
        let Some(record) = self.record.clone() else {
            return;
        };
        if self.log_busy {
            return;
        }
        self.log_busy = true;
        let client = self.client.clone();
        let id = self.instance_id;
        let account = self.account.clone();
        let settings = self.settings.clone();
        let label = self.label();
        // Fetching, matching and acting run alongside the instance's observations; only the
        // commit of the new cursor and events holds the actor (so it cannot interleave with one).
        let work = async move {
            let text = match client.request_logs(id, LOG_TAIL).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(account = %account, instance = id, error = %e, "logs not available this time");
                    return None;
                }
            };
            if !record.log_started && record.adopted {
                // Lines written before the daemon first saw the instance must not fire rules.
                return Some((LogCursor::primed(&text), record.log_seq, Vec::new()));
            }
            let (cursor, fresh) = logs::new_lines(&record.log, &text);
            let mut seq = record.log_seq;
            let matches = logs::match_lines(
                &settings.log_rules,
                id,
                label.as_deref(),
                &fresh,
                &account,
                Utc::now(),
                &mut seq,
            );
            let mut events = Vec::new();
            for (event, action) in matches {
                events.push(match action {
                    Some(action) if settings.actions_enabled => {
                        let outcome = match action {
                            LogAction::Stop => client.stop_instance(id).await,
                            LogAction::Destroy => client.destroy_instance(id).await,
                        };
                        logs::action_report(event, action, outcome.map_err(|e| e.to_string()), true)
                    }
                    Some(action) => logs::action_report(event, action, Ok(()), false),
                    None => event,
                });
            }
            Some((cursor, seq, events))
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.log_busy = false;
            let (Some((cursor, seq, events)), Some(current)) = (result, act.record.clone()) else { return };
            let merged = InstanceRecord { log: cursor, log_seq: seq, log_started: true, ..current };
            ctx.wait(act.commit(merged, events).map(|r, act, _| {
                if let Err(e) = r {
                    tracing::error!(account = %act.account, instance = act.instance_id, error = %e, "could not persist log progress");
                }
            }));
        }));
    }
}
