//! One actor per Vast account: owns the account's API client (and so its per-endpoint pacing),
//! fetches the machine list once per poll and hands each machine actor its row. Polls are
//! self-scheduled with `notify_later` and run under `ctx.wait`, so they never overlap. Owns the
//! account's health: `account_stale` after `stale_after_polls` failed polls in a row,
//! `account_restored` when polls succeed again, `account_auth_failed` (and a slow probe) on 401/403.

use super::machine::{MachineActor, Missing, Observe, ObserveReport};
use super::{account_event, queue_events};
use crate::config::AccountConfig;
use crate::detect::{Adoption, MachineRules, MachineState};
use crate::event::EventKind;
use crate::store::StoreHandle;
use crate::vast::{Machine, VastClient, VastError};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use rand::Rng;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How healthy the account's polling is (shown in status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountHealth {
    Ok,
    Stale,
    AuthFailed,
}

impl AccountHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountHealth::Ok => "ok",
            AccountHealth::Stale => "stale",
            AccountHealth::AuthFailed => "auth_failed",
        }
    }
}

/// Sent to the supervisor once the account's first poll after start-up has been handled.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct FirstPollDone {
    pub account: String,
    pub ok: bool,
    pub machines: Vec<serde_json::Value>,
}

pub struct AccountActor {
    cfg: AccountConfig,
    client: VastClient,
    store: StoreHandle,
    rules: Arc<MachineRules>,
    machines: BTreeMap<u64, Addr<MachineActor>>,
    /// Machines whose single lookup came back empty: not looked up again until they reappear.
    gone: BTreeSet<u64>,
    successful_polls: u64,
    consecutive_failures: u32,
    health: AccountHealth,
    first_poll_reported: bool,
    supervisor: Option<Recipient<FirstPollDone>>,
    last_error: Option<String>,
    last_poll: Option<DateTime<Utc>>,
    /// The latest summary of each machine, for status.
    summaries: BTreeMap<u64, serde_json::Value>,
}

impl AccountActor {
    pub fn new(
        cfg: AccountConfig,
        client: VastClient,
        store: StoreHandle,
        rules: MachineRules,
        supervisor: Option<Recipient<FirstPollDone>>,
    ) -> AccountActor {
        AccountActor {
            cfg,
            client,
            store,
            rules: Arc::new(rules),
            machines: BTreeMap::new(),
            gone: BTreeSet::new(),
            successful_polls: 0,
            consecutive_failures: 0,
            health: AccountHealth::Ok,
            first_poll_reported: false,
            supervisor,
            last_error: None,
            last_poll: None,
            summaries: BTreeMap::new(),
        }
    }

    fn watches(&self, id: u64) -> bool {
        self.cfg.machines.as_ref().is_none_or(|set| set.contains(&id))
    }

    fn spawn_machine(&mut self, id: u64, state: Option<MachineState>) -> Addr<MachineActor> {
        let addr = MachineActor::new(self.cfg.name.clone(), id, state, self.rules.clone(), self.store.clone()).start();
        self.machines.insert(id, addr.clone());
        addr
    }

    fn next_delay(&self) -> Duration {
        let base = match self.health {
            // A revoked key is probed every few minutes, not hammered.
            AccountHealth::AuthFailed => (self.cfg.poll_interval * 10).min(Duration::from_secs(300)).max(self.cfg.poll_interval),
            _ => self.cfg.poll_interval,
        };
        // +-10% jitter spreads many accounts' polls over the interval.
        let jitter = rand::thread_rng().gen_range(0.9..1.1);
        base.mul_f64(jitter)
    }

    /// Handles a fetched machine list: observe every row, confirm missing machines by lookup.
    fn on_list(&mut self, rows: Vec<Machine>, now: DateTime<Utc>) -> impl ActorFuture<Self, Output = ()> {
        let adoption = if self.successful_polls == 0 { Adoption::FirstStart } else { Adoption::Running };
        let mut seen = BTreeSet::new();
        let mut observes = Vec::new();
        for row in rows {
            let Some(id) = row.key() else {
                tracing::warn!(account = %self.cfg.name, "machine row without an id ignored");
                continue;
            };
            if !self.watches(id) || !seen.insert(id) {
                continue;
            }
            self.gone.remove(&id);
            let addr = match self.machines.get(&id) {
                Some(a) => a.clone(),
                None => self.spawn_machine(id, None),
            };
            observes.push(addr.send(Observe { row, now, adoption }));
        }
        let missing: Vec<(u64, Addr<MachineActor>)> = self
            .machines
            .iter()
            .filter(|(id, _)| !seen.contains(id) && !self.gone.contains(id))
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        let client = self.client.clone();
        let account = self.cfg.name.clone();
        async move {
            let mut reports: Vec<ObserveReport> = Vec::new();
            for r in join_all(observes).await {
                match r {
                    Ok(Ok(report)) => reports.push(report),
                    Ok(Err(e)) => tracing::error!(account = %account, error = %e, "observation failed"),
                    Err(e) => tracing::error!(account = %account, error = %e, "machine actor unreachable"),
                }
            }
            let mut gone = Vec::new();
            for (id, addr) in missing {
                match client.machine(id).await {
                    Ok(lookup) => {
                        if lookup.is_none() {
                            gone.push(id);
                        }
                        match addr.send(Missing { lookup, now }).await {
                            Ok(Ok(report)) => reports.push(report),
                            Ok(Err(e)) => tracing::error!(account = %account, machine = id, error = %e, "missing-machine check failed"),
                            Err(e) => tracing::error!(account = %account, machine = id, error = %e, "machine actor unreachable"),
                        }
                    }
                    // A failed lookup proves nothing: try again next poll.
                    Err(e) => tracing::warn!(account = %account, machine = id, error = %e, "lookup of a missing machine failed"),
                }
            }
            (reports, gone)
        }
        .into_actor(self)
        .map(|(reports, gone), act, _ctx| {
            act.gone.extend(gone);
            for r in &reports {
                if !r.summary.is_null() {
                    act.summaries.insert(r.machine_id, r.summary.clone());
                }
            }
            if !act.first_poll_reported {
                act.first_poll_reported = true;
                if let Some(sup) = &act.supervisor {
                    sup.do_send(FirstPollDone {
                        account: act.cfg.name.clone(),
                        ok: true,
                        machines: reports.into_iter().map(|r| r.summary).filter(|s| !s.is_null()).collect(),
                    });
                }
            }
        })
    }

    /// Records a failed poll and returns the account events it implies.
    fn on_failure(&mut self, error: &VastError, now: DateTime<Utc>) -> Vec<crate::event::Event> {
        let name = self.cfg.name.clone();
        self.last_error = Some(error.to_string());
        let mut events = Vec::new();
        if matches!(error, VastError::Unauthorized { .. }) {
            if self.health != AccountHealth::AuthFailed {
                self.health = AccountHealth::AuthFailed;
                events.push(account_event(
                    &name,
                    EventKind::AccountAuthFailed,
                    now,
                    format!("Vast rejected the API key of {name}"),
                    "The key is wrong or was revoked. Polling slows to a probe every few minutes until it works again.",
                    json!({ "error": error.to_string() }),
                ));
            }
            return events;
        }
        self.consecutive_failures += 1;
        tracing::warn!(account = %name, failures = self.consecutive_failures, reason = error.reason(), error = %error, "poll failed");
        if self.consecutive_failures >= self.cfg.stale_after_polls && self.health == AccountHealth::Ok {
            self.health = AccountHealth::Stale;
            events.push(account_event(
                &name,
                EventKind::AccountStale,
                now,
                format!("Vast data for {name} is stale"),
                format!(
                    "{} polls in a row failed ({}). Per-machine alerts are held back until polls succeed.",
                    self.consecutive_failures, error
                ),
                json!({ "failed_polls": self.consecutive_failures, "reason": error.reason() }),
            ));
        }
        if !self.first_poll_reported && self.consecutive_failures >= self.cfg.stale_after_polls {
            self.first_poll_reported = true;
            if let Some(sup) = &self.supervisor {
                sup.do_send(FirstPollDone { account: name, ok: false, machines: Vec::new() });
            }
        }
        events
    }

    fn on_success(&mut self, now: DateTime<Utc>) -> Vec<crate::event::Event> {
        let name = self.cfg.name.clone();
        let mut events = Vec::new();
        if self.health != AccountHealth::Ok {
            events.push(account_event(
                &name,
                EventKind::AccountRestored,
                now,
                format!("Vast polling for {name} works again"),
                format!("Polls succeed again after {} ({}).", self.health.as_str(), self.last_error.clone().unwrap_or_default()),
                json!({ "previous_state": self.health.as_str() }),
            ));
        }
        self.health = AccountHealth::Ok;
        self.consecutive_failures = 0;
        self.last_error = None;
        self.successful_polls += 1;
        self.last_poll = Some(now);
        events
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Load persisted machine states before the first poll, so changes that happened while
        // the daemon was down are detected against them (with the real `since` window).
        let store = self.store.clone();
        let account = self.cfg.name.clone();
        let load = async move {
            store
                .run(move |s| {
                    s.load_states(&account, "machine", |json| {
                        serde_json::from_str::<MachineState>(json).map_err(|e| e.to_string())
                    })
                })
                .await
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| {
            match result {
                Ok((states, quarantined)) => {
                    for (id, state) in states {
                        if let Ok(id) = id.parse::<u64>() {
                            act.spawn_machine(id, Some(state));
                        }
                    }
                    for q in quarantined {
                        tracing::error!(account = %act.cfg.name, machine = %q.id, error = %q.error,
                            "unreadable machine state quarantined; the machine is adopted afresh");
                    }
                }
                Err(e) => tracing::error!(account = %act.cfg.name, error = %e, "could not load machine states"),
            }
            ctx.notify(PollTick);
        }));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct PollTick;

impl Handler<PollTick> for AccountActor {
    type Result = ();

    fn handle(&mut self, _msg: PollTick, ctx: &mut Context<Self>) {
        if !self.cfg.watch.machines {
            return;
        }
        let client = self.client.clone();
        let poll = async move {
            let result = client.machines().await;
            (result, Utc::now())
        }
        .into_actor(self)
        .then(|(result, now), act, _ctx| {
            let fut: std::pin::Pin<Box<dyn ActorFuture<Self, Output = ()>>> = match result {
                Ok(rows) => {
                    let events = act.on_success(now);
                    let store = act.store.clone();
                    let name = act.cfg.name.clone();
                    let observe = act.on_list(rows, now);
                    Box::pin(
                        async move { queue_events(&store, &name, events).await }
                            .into_actor(act)
                            .then(move |_, _act, _ctx| observe),
                    )
                }
                Err(e) => {
                    let events = act.on_failure(&e, now);
                    let store = act.store.clone();
                    let name = act.cfg.name.clone();
                    Box::pin(async move { queue_events(&store, &name, events).await }.into_actor(act))
                }
            };
            fut
        })
        .map(|_, act, ctx| {
            let delay = act.next_delay();
            ctx.notify_later(PollTick, delay);
        });
        ctx.wait(poll);
    }
}

/// Stops polling (shutdown or the account was removed by a reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccount;

impl Handler<StopAccount> for AccountActor {
    type Result = ();

    fn handle(&mut self, _msg: StopAccount, ctx: &mut Context<Self>) {
        // Machine actors stop once their last address is dropped.
        self.machines.clear();
        ctx.stop();
    }
}

/// A snapshot of the account for status output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountStatus {
    pub name: String,
    pub state: &'static str,
    pub successful_polls: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_poll: Option<DateTime<Utc>>,
    pub machines: Vec<serde_json::Value>,
}

#[derive(Message)]
#[rtype(result = "AccountStatus")]
pub struct GetAccountStatus;

impl Handler<GetAccountStatus> for AccountActor {
    type Result = MessageResult<GetAccountStatus>;

    fn handle(&mut self, _msg: GetAccountStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(AccountStatus {
            name: self.cfg.name.clone(),
            state: self.health.as_str(),
            successful_polls: self.successful_polls,
            consecutive_failures: self.consecutive_failures,
            last_error: self.last_error.clone(),
            last_poll: self.last_poll,
            machines: self.summaries.values().cloned().collect(),
        })
    }
}
