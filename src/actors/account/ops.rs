//! Operations side of the account actor (SPEC §8): its metrics (polls, poll errors by reason,
//! state) and the supervision of its child actors, machines and instances alike. A child actor
//! whose detection panicked (caught, previous state kept) or whose mailbox closed (the actor died;
//! it is replaced by a fresh one from the stored state before the poll ends) counts one restart.
//! More than `max_restarts` within the policy window mark the child degraded: one `machine_error`
//! (or `instance_error`) with `data.reason = "supervision"` is queued, the child is not observed
//! for a growing pause, the account shows state "degraded", and the first successful observation
//! afterwards queues a `machine_recovered` with the same reason (the catalogue has no recovery
//! kind for instances: their recovery is logged). Kept apart from `account.rs` so the polling
//! logic stays readable; this file decides nothing about what changed on a machine or instance.

use super::AccountActor;
use crate::actors::instance::{InstanceObserveError, InstanceRecord};
use crate::actors::machine::ObserveError;
use crate::actors::supervision::{Child, FaultInjection, RestartPolicy, Verdict};
use crate::actors::{fresh_event_id, queue_events};
use crate::detect::MachineState;
use crate::event::{Event, EventKind, Subject};
use crate::metrics::AccountMetrics;
use crate::store::StoreHandle;
use crate::vast::VastError;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

/// What the supervisor hands an account actor besides its configuration.
#[derive(Clone, Default)]
pub struct AccountOps {
    pub metrics: Arc<AccountMetrics>,
    pub restart_policy: RestartPolicy,
    /// Tests only: faults to inject into this account's machine and instance actors.
    #[doc(hidden)]
    pub faults: Option<FaultInjection>,
}

/// How one request to a child actor ended, as far as supervision is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChildOutcome {
    /// The actor did its work (whatever it detected).
    Done,
    /// Not the actor's fault (the store refused the commit): neither a restart nor a success.
    NotDone,
    /// The detection core panicked; the actor kept its previous state.
    Panicked,
    /// The actor is gone (its mailbox closed).
    Died,
}

impl ChildOutcome {
    pub(super) fn of_machine_error(e: &ObserveError) -> ChildOutcome {
        match e {
            ObserveError::Panicked(_) => ChildOutcome::Panicked,
            ObserveError::Store { .. } => ChildOutcome::NotDone,
        }
    }

    pub(super) fn of_instance_error(e: &InstanceObserveError) -> ChildOutcome {
        match e {
            InstanceObserveError::Panicked(_) => ChildOutcome::Panicked,
            InstanceObserveError::Store { .. } => ChildOutcome::NotDone,
        }
    }

    pub(super) fn of_mailbox(e: &MailboxError) -> ChildOutcome {
        match e {
            MailboxError::Closed => ChildOutcome::Died,
            MailboxError::Timeout => ChildOutcome::NotDone,
        }
    }
}

/// A kind of child actor the account supervises, named by the state it is restarted from: how
/// its id becomes a [`Child`], whether its actor is alive, and how a fresh one is started.
pub(super) trait Supervised: DeserializeOwned + Send + 'static {
    fn child(id: u64) -> Child;
    fn alive(account: &AccountActor, id: u64) -> bool;
    /// Replaces the child's actor with a fresh one holding `state` (`None`: never stored).
    fn respawn(account: &mut AccountActor, id: u64, state: Option<Self>);
}

impl Supervised for MachineState {
    fn child(id: u64) -> Child {
        Child::Machine(id)
    }

    fn alive(account: &AccountActor, id: u64) -> bool {
        account.machines.get(&id).is_some_and(|a| a.connected())
    }

    fn respawn(account: &mut AccountActor, id: u64, state: Option<Self>) {
        account.machines.remove(&id);
        account.spawn_machine(id, state);
    }
}

impl Supervised for InstanceRecord {
    fn child(id: u64) -> Child {
        Child::Instance(id)
    }

    fn alive(account: &AccountActor, id: u64) -> bool {
        account.instances.get(&id).is_some_and(|a| a.connected())
    }

    fn respawn(account: &mut AccountActor, id: u64, record: Option<Self>) {
        account.instances.remove(&id);
        account.spawn_instance(id, record);
    }
}

/// The stored states of the children `ids` of one kind (`None`: never stored). Ids whose read
/// failed are left out, so their dead actor stays in place and is replaced on a later poll rather
/// than from nothing.
pub(super) async fn load_stored<S: Supervised>(
    store: &StoreHandle,
    account: &str,
    ids: Vec<u64>,
) -> BTreeMap<u64, Option<S>> {
    if ids.is_empty() {
        return BTreeMap::new();
    }
    let kind = S::child(0).kind();
    let name = account.to_string();
    let loaded = store
        .run(move |s| {
            s.load_states(&name, kind, |j| {
                serde_json::from_str::<S>(j).map_err(|e| e.to_string())
            })
        })
        .await;
    match loaded {
        Ok((states, _quarantined)) => {
            let mut found: BTreeMap<u64, Option<S>> =
                ids.into_iter().map(|id| (id, None)).collect();
            for (id, state) in states {
                if let Some(slot) = id.parse::<u64>().ok().and_then(|id| found.get_mut(&id)) {
                    *slot = Some(state);
                }
            }
            found
        }
        Err(e) => {
            tracing::error!(account, kind, ids = ?ids, error = %e, "cannot read stored states to replace dead actors");
            BTreeMap::new()
        }
    }
}

impl AccountActor {
    /// Metrics, restart policy and (tests only) fault injection, from the supervisor.
    pub fn with_ops(mut self, ops: AccountOps) -> AccountActor {
        self.ops = ops;
        self.ops.metrics.set_state(self.status_state());
        self
    }

    /// The state shown in status and metrics: the polling health, or "degraded" when polling
    /// works but some machine's or instance's actor is backing off, or the state database
    /// refuses the commits of what polling finds.
    pub(super) fn status_state(&self) -> &'static str {
        let health = self.health.state.as_str();
        let degraded = self.restart_logs.values().any(|l| l.degraded())
            || self.store.health().borrow().failing();
        if health == "ok" && degraded {
            "degraded"
        } else {
            health
        }
    }

    /// Counts one finished poll that took `took` to fetch the lists.
    pub(super) fn record_poll(&mut self, error: Option<&VastError>, took: std::time::Duration) {
        self.ops.metrics.record_poll(error.map(VastError::reason));
        self.ops.metrics.observe_poll_duration(took);
        self.ops.metrics.set_state(self.status_state());
    }

    /// Whether the child's actor is degraded and in its back-off pause.
    pub(super) fn observation_paused(&self, child: Child, now: Instant) -> bool {
        self.restart_logs.get(&child).is_some_and(|l| l.paused(now))
    }

    /// Restarts per machine (only machines that had any) and the degraded machines, for status.
    pub(super) fn restart_report(
        &self,
        id_of: fn(Child) -> Option<u64>,
    ) -> (BTreeMap<u64, u64>, Vec<u64>) {
        let children = || {
            self.restart_logs
                .iter()
                .filter_map(|(child, log)| Some((id_of(*child)?, log)))
        };
        let restarts = children()
            .filter(|(_, l)| l.total() > 0)
            .map(|(id, l)| (id, l.total()))
            .collect();
        let degraded = children()
            .filter(|(_, l)| l.degraded())
            .map(|(id, _)| id)
            .collect();
        (restarts, degraded)
    }

    /// Applies supervision to the outcomes of one poll's requests to children of kind `S`:
    /// counts restarts, replaces dead actors with fresh ones from `restored` (their stored
    /// states), degrades and recovers children.
    pub(super) fn supervise<S: Supervised>(
        &mut self,
        outcomes: Vec<(u64, ChildOutcome)>,
        mut restored: BTreeMap<u64, Option<S>>,
        now: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let clock = Instant::now();
        let policy = self.ops.restart_policy;
        let account = self.cfg.name.clone();
        let mut events = Vec::new();
        for (id, outcome) in outcomes {
            let child = S::child(id);
            let (machine, instance) = (child.machine(), child.instance());
            match outcome {
                ChildOutcome::NotDone => {}
                ChildOutcome::Done => {
                    let recovered = self
                        .restart_logs
                        .get_mut(&child)
                        .is_some_and(|l| l.record_success());
                    if recovered {
                        tracing::info!(account = %account, machine, instance, "{} monitor works again after backing off", child.kind());
                        events.extend(self.recovery_event(child, now));
                    }
                }
                ChildOutcome::Panicked | ChildOutcome::Died => {
                    match child {
                        Child::Machine(_) => self.ops.metrics.record_machine_restart(),
                        Child::Instance(_) => self.ops.metrics.record_instance_restart(),
                    }
                    if outcome == ChildOutcome::Died {
                        self.replace_dead(id, &mut restored);
                    }
                    let log = self.restart_logs.entry(child).or_default();
                    let verdict = log.record_failure(clock, &policy);
                    let restarts = log.total();
                    let cause = if outcome == ChildOutcome::Died {
                        "its actor died"
                    } else {
                        "detection panicked"
                    };
                    match verdict {
                        Verdict::Restart => {
                            tracing::warn!(account = %account, machine, instance, restarts, cause, "{} monitor restarted", child.kind())
                        }
                        Verdict::Degraded { newly, pause } => {
                            tracing::error!(account = %account, machine, instance, restarts, cause,
                                pause_seconds = pause.as_secs_f64(), "{} monitor keeps failing; degraded, backing off", child.kind());
                            if newly {
                                events.push(
                                    self.degraded_event(
                                        child, now, &policy, cause, restarts, pause,
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
        let degraded = |kind: &str| {
            self.restart_logs
                .iter()
                .filter(|(c, l)| c.kind() == kind && l.degraded())
                .count()
        };
        let (machines, instances) = (degraded("machine"), degraded("instance"));
        self.ops.metrics.set_degraded_machines(machines);
        self.ops.metrics.set_degraded_instances(instances);
        self.ops.metrics.set_state(self.status_state());
        if !events.is_empty() {
            let store = self.store.clone();
            ctx.spawn(async move { queue_events(&store, &account, events).await }.into_actor(self));
        }
    }

    /// Replaces a dead child actor with a fresh one holding its stored state.
    fn replace_dead<S: Supervised>(&mut self, id: u64, restored: &mut BTreeMap<u64, Option<S>>) {
        if S::alive(self, id) {
            return;
        }
        let Some(state) = restored.remove(&id) else {
            // Its stored state could not be read: keep the dead address, retry next poll.
            return;
        };
        let child = S::child(id);
        tracing::warn!(account = %self.cfg.name, machine = child.machine(), instance = child.instance(),
            from_stored_state = state.is_some(), "{} actor died; replaced", child.kind());
        S::respawn(self, id, state);
    }

    /// The one alert of a child that crossed the restart limit.
    fn degraded_event(
        &self,
        child: Child,
        now: DateTime<Utc>,
        policy: &RestartPolicy,
        cause: &str,
        restarts: u64,
        pause: std::time::Duration,
    ) -> Event {
        let text = format!(
            "Its monitor failed more than {} times within {}s (last: {cause}). Changes on this {} are not detected while it backs off; it is retried in {}s and again with growing pauses.",
            policy.max_restarts,
            policy.window.as_secs(),
            child.kind(),
            pause.as_secs().max(1)
        );
        let kind = match child {
            Child::Machine(_) => EventKind::MachineError,
            Child::Instance(_) => EventKind::InstanceError,
        };
        self.supervision_event(
            child,
            kind,
            now,
            "monitoring degraded",
            text.clone(),
            json!({
                "reason": "supervision",
                "error": text,
                "repeat": false,
                "restarts": restarts,
                "retry_in_seconds": pause.as_secs_f64(),
            }),
        )
    }

    /// The event that ends a degraded period, where the catalogue has a kind for it.
    fn recovery_event(&self, child: Child, now: DateTime<Utc>) -> Option<Event> {
        match child {
            Child::Machine(_) => Some(self.supervision_event(
                child,
                EventKind::MachineRecovered,
                now,
                "works again",
                "Its monitor runs normally again; changes are detected as before.".into(),
                json!({ "reason": "supervision", "recovered_from": "supervision" }),
            )),
            Child::Instance(_) => None,
        }
    }

    fn supervision_event(
        &self,
        child: Child,
        kind: EventKind,
        now: DateTime<Utc>,
        what: &str,
        text: String,
        data: serde_json::Value,
    ) -> Event {
        let (subject, scope) = match child {
            Child::Machine(id) => (
                Subject::Machine {
                    id,
                    name: self.child_name(child),
                },
                format!("{}:m{id}", self.cfg.name),
            ),
            Child::Instance(id) => (
                Subject::Instance {
                    id,
                    name: self.child_name(child),
                },
                format!("{}:i{id}", self.cfg.name),
            ),
        };
        let title = format!("Monitoring of {} {what}", subject.label());
        Event::new(
            fresh_event_id(&scope, kind, now),
            kind,
            Some(self.cfg.name.clone()),
            subject,
            now,
            title,
            text,
        )
        .with_data(data)
    }

    /// The child's display name (a machine's hostname, an instance's label), if known.
    fn child_name(&self, child: Child) -> Option<String> {
        let name = match child {
            Child::Machine(id) => self.summaries.get(&id).and_then(|s| s.hostname.clone()),
            Child::Instance(id) => self
                .instance_summaries
                .get(&id)
                .and_then(|s| s.label.clone()),
        };
        name.filter(|n| !n.is_empty())
    }
}
