//! Operations side of the account actor (SPEC §8): its metrics (polls, poll errors by reason,
//! state) and the supervision of its machine actors. A machine actor whose detection panicked
//! (caught, previous state kept) or whose mailbox closed (the actor died; it is replaced by a
//! fresh one from the stored state before the poll ends) counts one restart. More than
//! `max_restarts` within the policy window mark the machine degraded: one `machine_error` with
//! `data.reason = "supervision"` is queued, the machine is not observed for a growing pause, the
//! account shows state "degraded", and the first successful observation afterwards queues a
//! `machine_recovered` with the same reason. Kept apart from `account.rs` so the polling logic
//! stays readable; this file decides nothing about what changed on a machine.

use super::AccountActor;
use crate::actors::machine::ObserveError;
use crate::actors::supervision::{FaultInjection, RestartPolicy, Verdict};
use crate::actors::{fresh_event_id, queue_events};
use crate::detect::MachineState;
use crate::event::{Event, EventKind, Subject};
use crate::metrics::AccountMetrics;
use crate::store::StoreHandle;
use crate::vast::VastError;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

/// What the supervisor hands an account actor besides its configuration.
#[derive(Clone, Default)]
pub struct AccountOps {
    pub metrics: Arc<AccountMetrics>,
    pub restart_policy: RestartPolicy,
    /// Tests only: faults to inject into this account's machine actors.
    #[doc(hidden)]
    pub faults: Option<FaultInjection>,
}

/// How one request to a machine actor ended, as far as supervision is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MachineOutcome {
    /// The actor did its work (whatever it detected).
    Done,
    /// Not the actor's fault (the store refused the commit): neither a restart nor a success.
    NotDone,
    /// The detection core panicked; the actor kept its previous state.
    Panicked,
    /// The actor is gone (its mailbox closed).
    Died,
}

impl MachineOutcome {
    pub(super) fn of_error(e: &ObserveError) -> MachineOutcome {
        match e {
            ObserveError::Panicked(_) => MachineOutcome::Panicked,
            ObserveError::Store { .. } => MachineOutcome::NotDone,
        }
    }

    pub(super) fn of_mailbox(e: &MailboxError) -> MachineOutcome {
        match e {
            MailboxError::Closed => MachineOutcome::Died,
            MailboxError::Timeout => MachineOutcome::NotDone,
        }
    }
}

/// The stored states of `ids` (`None`: never stored). Ids whose read failed are left out, so
/// their dead actor stays in place and is replaced on a later poll rather than from nothing.
pub(super) async fn load_machine_states(
    store: &StoreHandle,
    account: &str,
    ids: Vec<u64>,
) -> BTreeMap<u64, Option<MachineState>> {
    if ids.is_empty() {
        return BTreeMap::new();
    }
    let name = account.to_string();
    let wanted = ids.clone();
    let loaded = store
        .run(move |s| {
            s.load_states(&name, "machine", |j| {
                serde_json::from_str::<MachineState>(j).map_err(|e| e.to_string())
            })
        })
        .await;
    match loaded {
        Ok((states, _quarantined)) => {
            let mut found: BTreeMap<u64, Option<MachineState>> =
                wanted.into_iter().map(|id| (id, None)).collect();
            for (id, state) in states {
                if let Some(slot) = id.parse::<u64>().ok().and_then(|id| found.get_mut(&id)) {
                    *slot = Some(state);
                }
            }
            found
        }
        Err(e) => {
            tracing::error!(account, machines = ?ids, error = %e, "cannot read stored states to replace dead machine actors");
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
    /// works but some machine's actor is backing off.
    pub(super) fn status_state(&self) -> &'static str {
        let health = self.health.as_str();
        if health == "ok" && self.restart_logs.values().any(|l| l.degraded()) {
            "degraded"
        } else {
            health
        }
    }

    /// Counts one finished poll.
    pub(super) fn record_poll(&mut self, error: Option<&VastError>) {
        self.ops.metrics.record_poll(error.map(VastError::reason));
        self.ops.metrics.set_state(self.status_state());
    }

    /// Whether the machine's actor is degraded and in its back-off pause.
    pub(super) fn observation_paused(&self, id: u64, now: Instant) -> bool {
        self.restart_logs.get(&id).is_some_and(|l| l.paused(now))
    }

    /// Restarts per machine (only machines that had any) and the degraded machines, for status.
    pub(super) fn restart_report(&self) -> (BTreeMap<u64, u64>, Vec<u64>) {
        let restarts = self
            .restart_logs
            .iter()
            .filter(|(_, l)| l.total() > 0)
            .map(|(id, l)| (*id, l.total()))
            .collect();
        let degraded = self
            .restart_logs
            .iter()
            .filter(|(_, l)| l.degraded())
            .map(|(id, _)| *id)
            .collect();
        (restarts, degraded)
    }

    /// Applies supervision to the outcomes of one poll: counts restarts, replaces dead actors
    /// with fresh ones from `restored` (their stored states), degrades and recovers machines.
    pub(super) fn supervise_machines(
        &mut self,
        outcomes: Vec<(u64, MachineOutcome)>,
        mut restored: BTreeMap<u64, Option<MachineState>>,
        now: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let clock = Instant::now();
        let policy = self.ops.restart_policy;
        let mut events = Vec::new();
        for (id, outcome) in outcomes {
            match outcome {
                MachineOutcome::NotDone => {}
                MachineOutcome::Done => {
                    let recovered = self
                        .restart_logs
                        .get_mut(&id)
                        .is_some_and(|l| l.record_success());
                    if recovered {
                        tracing::info!(account = %self.cfg.name, machine = id, "machine monitor works again after backing off");
                        events.push(
                            self.supervision_event(
                                id,
                                EventKind::MachineRecovered,
                                now,
                                "works again",
                                "Its monitor runs normally again; changes are detected as before."
                                    .into(),
                                json!({ "reason": "supervision", "recovered_from": "supervision" }),
                            ),
                        );
                    }
                }
                MachineOutcome::Panicked | MachineOutcome::Died => {
                    self.ops.metrics.record_machine_restart();
                    if outcome == MachineOutcome::Died {
                        self.replace_dead_machine(id, &mut restored);
                    }
                    let log = self.restart_logs.entry(id).or_default();
                    let verdict = log.record_failure(clock, &policy);
                    let restarts = log.total();
                    let cause = if outcome == MachineOutcome::Died {
                        "its actor died"
                    } else {
                        "detection panicked"
                    };
                    match verdict {
                        Verdict::Restart => {
                            tracing::warn!(account = %self.cfg.name, machine = id, restarts, cause, "machine monitor restarted")
                        }
                        Verdict::Degraded { newly, pause } => {
                            tracing::error!(account = %self.cfg.name, machine = id, restarts, cause,
                                pause_seconds = pause.as_secs_f64(), "machine monitor keeps failing; degraded, backing off");
                            if newly {
                                let text = format!(
                                    "Its monitor failed more than {} times within {}s (last: {cause}). Changes on this machine are not detected while it backs off; it is retried in {}s and again with growing pauses.",
                                    policy.max_restarts,
                                    policy.window.as_secs(),
                                    pause.as_secs().max(1)
                                );
                                events.push(self.supervision_event(
                                    id,
                                    EventKind::MachineError,
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
                                ));
                            }
                        }
                    }
                }
            }
        }
        let degraded = self.restart_logs.values().filter(|l| l.degraded()).count();
        self.ops.metrics.set_degraded_machines(degraded);
        self.ops.metrics.set_state(self.status_state());
        if !events.is_empty() {
            let store = self.store.clone();
            let name = self.cfg.name.clone();
            ctx.spawn(async move { queue_events(&store, &name, events).await }.into_actor(self));
        }
    }

    /// Replaces a dead machine actor with a fresh one holding its stored state.
    fn replace_dead_machine(
        &mut self,
        id: u64,
        restored: &mut BTreeMap<u64, Option<MachineState>>,
    ) {
        if self.machines.get(&id).is_some_and(|a| a.connected()) {
            return;
        }
        let Some(state) = restored.remove(&id) else {
            // Its stored state could not be read: keep the dead address, retry next poll.
            return;
        };
        tracing::warn!(account = %self.cfg.name, machine = id, from_stored_state = state.is_some(), "machine actor died; replaced");
        self.machines.remove(&id);
        self.spawn_machine(id, state);
    }

    fn supervision_event(
        &self,
        id: u64,
        kind: EventKind,
        now: DateTime<Utc>,
        what: &str,
        text: String,
        data: serde_json::Value,
    ) -> Event {
        let name = self
            .summaries
            .get(&id)
            .and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty());
        let subject = Subject::Machine { id, name };
        let title = format!("Monitoring of {} {what}", subject.label());
        let account = &self.cfg.name;
        Event::new(
            fresh_event_id(&format!("{account}:m{id}"), kind, now),
            kind,
            Some(account.clone()),
            subject,
            now,
            title,
            text,
        )
        .with_data(data)
    }
}
