//! One actor per Vast account: owns the account's API client (and so its per-endpoint pacing),
//! fetches the machine list and the instance list once per poll and hands each machine or
//! instance actor its row. Polls are self-scheduled with `notify_later` and run under `ctx.wait`,
//! so they never overlap. Owns the account's health (`account_stale` after `stale_after_polls`
//! failed polls in a row, `account_restored`, `account_auth_failed` with a slow probe), which it
//! persists and reloads on start (child module `health`), and its money watch (`credit_low`, the
//! daily `earnings_digest`), whose small state it persists.
//! Its metrics and the supervision of its machine and instance actors live in the child module
//! `ops`.

mod health;
mod ops;

pub use crate::detect::health::{AccountHealth, HealthRecord};
pub(crate) use health::forget_removed_accounts;
pub use health::HEALTH_KIND;
pub use ops::AccountOps;

use super::instance::{
    InstanceActor, InstanceMissing, InstanceObserveResult, InstanceRecord, InstanceSettings,
    ObserveInstance,
};
use super::machine::{MachineActor, Missing, Observe, ObserveReport};
use super::supervision::{Child, RestartLog};
use crate::config::AccountConfig;
use crate::detect::instance::{InstanceAdoption, InstanceRules, InstanceSummary};
use crate::detect::logs::compile_rules;
use crate::detect::money::{self, CreditState, DigestState};
use crate::detect::{Adoption, MachineRules, MachineState, MachineSummary};
use crate::event::Event;
use crate::store::{Commit, StoreHandle};
use crate::vast::{Instance, Machine, VastClient, VastError};
use actix::prelude::*;
use chrono::{DateTime, Local, NaiveDateTime, Utc};
use futures::future::join_all;
use ops::ChildOutcome;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Below this poll interval (tests, demo, benchmarks) instance logs are fetched every poll.
const SHORT_POLL: Duration = Duration::from_secs(10);

/// The local wall-clock time the daily digest is scheduled against. Injectable so tests can
/// drive the digest to its configured time; the daemon uses [`system_local_clock`].
pub type LocalClock = Arc<dyn Fn() -> NaiveDateTime + Send + Sync>;

/// The machine's local time (`chrono::Local`).
pub fn system_local_clock() -> LocalClock {
    Arc::new(|| Local::now().naive_local())
}

/// The account's own persisted state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AccountRecord {
    pub credit: CreditState,
    pub digest: DigestState,
    pub digest_seq: u64,
}

/// Sent to the supervisor once the account's first poll after start-up has been handled.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct FirstPollDone {
    pub account: String,
    pub ok: bool,
    pub machines: usize,
    pub rentals: usize,
    pub instances: usize,
    /// Subjects whose stored state was unreadable and was set aside ("machine 12345").
    pub quarantined: Vec<String>,
}

pub struct AccountActor {
    cfg: AccountConfig,
    client: VastClient,
    store: StoreHandle,
    rules: Arc<MachineRules>,
    instance_settings: Arc<InstanceSettings>,
    machines: BTreeMap<u64, Addr<MachineActor>>,
    instances: BTreeMap<u64, Addr<InstanceActor>>,
    /// Subjects whose single lookup came back empty: not looked up again until they reappear.
    gone_machines: BTreeSet<u64>,
    gone_instances: BTreeSet<u64>,
    successful_polls: u64,
    /// The polling health, as persisted (see `health`).
    health: HealthRecord,
    first_poll_reported: bool,
    supervisor: Option<Recipient<FirstPollDone>>,
    /// The last successful poll.
    last_poll: Option<DateTime<Utc>>,
    /// When the credit was last read (see [`AccountConfig::credit_due`]).
    credit_read_at: Option<DateTime<Utc>>,
    record: AccountRecord,
    local_clock: LocalClock,
    /// The latest summary of each machine and instance, for status.
    summaries: BTreeMap<u64, Arc<MachineSummary>>,
    instance_summaries: BTreeMap<u64, Arc<InstanceSummary>>,
    quarantined: Vec<String>,
    /// Metrics and supervision hooks (see `ops`).
    ops: AccountOps,
    restart_logs: BTreeMap<Child, RestartLog>,
    /// Where this account publishes its status after loading and after every poll, so status
    /// is read without asking (and waiting for) a busy actor.
    status_feed: watch::Sender<Option<Arc<AccountStatus>>>,
}

/// An account's latest published status; `None` until its stored state is loaded.
pub type AccountStatusFeed = watch::Receiver<Option<Arc<AccountStatus>>>;

impl AccountActor {
    /// Fails only when the account's regexes do not compile (the configuration checked them).
    pub fn new(
        cfg: AccountConfig,
        client: VastClient,
        store: StoreHandle,
        supervisor: Option<Recipient<FirstPollDone>>,
    ) -> Result<AccountActor, regex::Error> {
        let rules = MachineRules::from_account(&cfg)?;
        let log_interval = if cfg.poll_interval < SHORT_POLL {
            cfg.poll_interval
        } else {
            cfg.poll_interval.max(Duration::from_secs(60))
        };
        let instance_settings = InstanceSettings {
            rules: InstanceRules::from_account(&cfg),
            log_rules: compile_rules(&cfg.log_rules)?,
            actions_enabled: cfg.actions_enabled,
            log_interval,
        };
        Ok(AccountActor {
            cfg,
            client,
            store,
            rules: Arc::new(rules),
            instance_settings: Arc::new(instance_settings),
            machines: BTreeMap::new(),
            instances: BTreeMap::new(),
            gone_machines: BTreeSet::new(),
            gone_instances: BTreeSet::new(),
            successful_polls: 0,
            health: HealthRecord::default(),
            first_poll_reported: false,
            supervisor,
            last_poll: None,
            credit_read_at: None,
            record: AccountRecord::default(),
            local_clock: system_local_clock(),
            summaries: BTreeMap::new(),
            instance_summaries: BTreeMap::new(),
            quarantined: Vec::new(),
            ops: AccountOps::default(),
            restart_logs: BTreeMap::new(),
            status_feed: watch::channel(None).0,
        })
    }

    /// The feed this account publishes its status into.
    pub fn status_feed(&self) -> AccountStatusFeed {
        self.status_feed.subscribe()
    }

    /// Publishes the account's status (a few hundred pointers, not copies of the summaries).
    fn publish_status(&self) {
        let (restarts_by_machine, degraded_machines) = self.restart_report(Child::machine);
        let (restarts_by_instance, degraded_instances) = self.restart_report(Child::instance);
        let status = AccountStatus {
            name: self.cfg.name.clone(),
            state: self.status_state(),
            successful_polls: self.successful_polls,
            consecutive_failures: self.health.failed_polls,
            last_error: self.health.last_error.clone(),
            last_poll: self.last_poll,
            credit: self.record.credit.last_credit,
            machines: self.summaries.values().cloned().collect(),
            instances: self.instance_summaries.values().cloned().collect(),
            api_requests: self
                .client
                .request_counts()
                .into_iter()
                .map(|(e, n)| (e.label(), n))
                .collect(),
            quarantined: self.quarantined.clone(),
            restarts: restarts_by_machine.values().sum::<u64>()
                + restarts_by_instance.values().sum::<u64>(),
            restarts_by_machine,
            restarts_by_instance,
            degraded_instances,
            degraded_machines,
        };
        self.status_feed.send_replace(Some(Arc::new(status)));
    }

    /// Replaces the local clock the earnings digest is scheduled against (tests).
    pub fn with_local_clock(mut self, clock: LocalClock) -> AccountActor {
        self.local_clock = clock;
        self
    }

    fn watches(&self, id: u64) -> bool {
        self.cfg
            .machines
            .as_ref()
            .is_none_or(|set| set.contains(&id))
    }

    fn spawn_machine(&mut self, id: u64, state: Option<MachineState>) -> Addr<MachineActor> {
        let addr = MachineActor::new(
            self.cfg.name.clone(),
            id,
            state,
            self.rules.clone(),
            self.store.clone(),
        )
        .with_fault_injection(self.ops.faults.clone())
        .start();
        self.machines.insert(id, addr.clone());
        addr
    }

    fn spawn_instance(&mut self, id: u64, record: Option<InstanceRecord>) -> Addr<InstanceActor> {
        let addr = InstanceActor::new(
            self.cfg.name.clone(),
            id,
            record,
            self.instance_settings.clone(),
            self.client.clone(),
            self.store.clone(),
        )
        .with_fault_injection(self.ops.faults.clone())
        .start();
        self.instances.insert(id, addr.clone());
        addr
    }

    fn next_delay(&self) -> Duration {
        let base = match self.health.state {
            // A revoked key is probed every few minutes, not hammered.
            AccountHealth::AuthFailed => (self.cfg.poll_interval * 10)
                .min(Duration::from_secs(300))
                .max(self.cfg.poll_interval),
            _ => self.cfg.poll_interval,
        };
        // +-10% jitter spreads many accounts' polls over the interval.
        base.mul_f64(rand::thread_rng().gen_range(0.9..1.1))
    }

    /// Whether this poll is one of the first successful ones, whose machines and instances are
    /// adopted silently. `counted`: `successful_polls` already includes this poll.
    fn first_polls(&self, counted: bool) -> bool {
        self.successful_polls + u64::from(!counted) <= 1
    }

    /// Observes every listed machine and confirms missing ones by lookup (`first_polls`: see
    /// [`Self::first_polls`]).
    fn observe_machines(
        &mut self,
        rows: Vec<Machine>,
        now: DateTime<Utc>,
        first_polls: bool,
    ) -> impl ActorFuture<Self, Output = ()> {
        let adoption = match first_polls {
            true => Adoption::FirstStart,
            false => Adoption::Running,
        };
        let mut seen = BTreeSet::new();
        let mut observes = Vec::new();
        let clock = tokio::time::Instant::now();
        for row in rows {
            let Some(id) = row.key() else {
                tracing::warn!(account = %self.cfg.name, "machine row without an id ignored");
                continue;
            };
            if !self.watches(id) || !seen.insert(id) {
                continue;
            }
            self.gone_machines.remove(&id);
            if self.observation_paused(Child::Machine(id), clock) {
                continue;
            }
            let addr = match self.machines.get(&id) {
                Some(a) => a.clone(),
                None => self.spawn_machine(id, None),
            };
            observes.push((id, addr.send(Observe { row, now, adoption })));
        }
        let missing: Vec<(u64, Addr<MachineActor>)> = self
            .machines
            .iter()
            .filter(|(id, _)| {
                !seen.contains(id)
                    && !self.gone_machines.contains(id)
                    && !self.observation_paused(Child::Machine(**id), clock)
            })
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        let client = self.client.clone();
        let account = self.cfg.name.clone();
        let store = self.store.clone();
        async move {
            let mut reports: Vec<ObserveReport> = Vec::new();
            let mut outcomes: Vec<(u64, ChildOutcome)> = Vec::new();
            let (ids, futs): (Vec<u64>, Vec<_>) = observes.into_iter().unzip();
            for (id, r) in ids.into_iter().zip(join_all(futs).await) {
                match r {
                    Ok(Ok(report)) => {
                        outcomes.push((id, ChildOutcome::Done));
                        reports.push(report)
                    }
                    Ok(Err(e)) => {
                        outcomes.push((id, ChildOutcome::of_machine_error(&e)));
                        tracing::error!(account = %account, machine = id, error = %e, "observation failed")
                    }
                    Err(e) => {
                        outcomes.push((id, ChildOutcome::of_mailbox(&e)));
                        tracing::error!(account = %account, machine = id, error = %e, "machine actor unreachable")
                    }
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
                            Ok(Ok(report)) => {
                                outcomes.push((id, ChildOutcome::Done));
                                reports.push(report)
                            }
                            Ok(Err(e)) => {
                                outcomes.push((id, ChildOutcome::of_machine_error(&e)));
                                tracing::error!(account = %account, machine = id, error = %e, "missing-machine check failed")
                            }
                            Err(e) => {
                                outcomes.push((id, ChildOutcome::of_mailbox(&e)));
                                tracing::error!(account = %account, machine = id, error = %e, "machine actor unreachable")
                            }
                        }
                    }
                    // A failed lookup proves nothing: try again next poll.
                    Err(e) => tracing::warn!(account = %account, machine = id, error = %e, "lookup of a missing machine failed"),
                }
            }
            // Dead actors are replaced before this poll ends, so the next one finds them.
            let dead = outcomes
                .iter()
                .filter(|(_, o)| *o == ChildOutcome::Died)
                .map(|(id, _)| *id)
                .collect();
            let restored = ops::load_stored::<MachineState>(&store, &account, dead).await;
            (reports, gone, outcomes, restored)
        }
        .into_actor(self)
        .map(move |(reports, gone, outcomes, restored), act, ctx| {
            act.gone_machines.extend(gone);
            for r in reports {
                if let Some(summary) = r.summary {
                    act.summaries.insert(r.machine_id, summary);
                }
            }
            act.supervise(outcomes, restored, now, ctx);
        })
    }

    /// Observes every listed instance and confirms missing ones by the single lookup.
    fn observe_instances(
        &mut self,
        rows: Vec<Instance>,
        now: DateTime<Utc>,
    ) -> impl ActorFuture<Self, Output = ()> {
        let adoption = match self.first_polls(true) {
            true => InstanceAdoption::FirstStart,
            false => InstanceAdoption::Running,
        };
        let mut seen = BTreeSet::new();
        let mut observes = Vec::new();
        let clock = tokio::time::Instant::now();
        for row in rows {
            let Some(id) = row.id else { continue };
            if !seen.insert(id) {
                continue;
            }
            self.gone_instances.remove(&id);
            if self.observation_paused(Child::Instance(id), clock) {
                continue;
            }
            let addr = match self.instances.get(&id) {
                Some(a) => a.clone(),
                None => self.spawn_instance(id, None),
            };
            observes.push((id, addr.send(ObserveInstance { row, now, adoption })));
        }
        let missing: Vec<(u64, Addr<InstanceActor>)> = self
            .instances
            .iter()
            .filter(|(id, _)| {
                !seen.contains(id)
                    && !self.gone_instances.contains(id)
                    && !self.observation_paused(Child::Instance(**id), clock)
            })
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        let client = self.client.clone();
        let account = self.cfg.name.clone();
        let store = self.store.clone();
        async move {
            let mut summaries = Vec::new();
            let mut outcomes: Vec<(u64, ChildOutcome)> = Vec::new();
            let mut record = |id: u64, r: Result<InstanceObserveResult, MailboxError>| match r {
                Ok(Ok(summary)) => {
                    outcomes.push((id, ChildOutcome::Done));
                    summaries.extend(summary.map(|s| (id, s)));
                }
                Ok(Err(e)) => {
                    outcomes.push((id, ChildOutcome::of_instance_error(&e)));
                    tracing::error!(account = %account, instance = id, error = %e, "observation failed")
                }
                Err(e) => {
                    outcomes.push((id, ChildOutcome::of_mailbox(&e)));
                    tracing::error!(account = %account, instance = id, error = %e, "instance actor unreachable")
                }
            };
            let (ids, futs): (Vec<u64>, Vec<_>) = observes.into_iter().unzip();
            for (id, r) in ids.into_iter().zip(join_all(futs).await) {
                record(id, r);
            }
            let mut gone = Vec::new();
            for (id, addr) in missing {
                match client.instance(id).await {
                    Ok(lookup) => {
                        if lookup.is_none() {
                            gone.push(id);
                        }
                        record(id, addr.send(InstanceMissing { lookup, now }).await);
                    }
                    // A failed lookup proves nothing: try again next poll.
                    Err(e) => tracing::warn!(account = %account, instance = id, error = %e, "lookup of a missing instance failed"),
                }
            }
            // Dead actors are replaced before this poll ends, so the next one finds them.
            let dead = outcomes
                .iter()
                .filter(|(_, o)| *o == ChildOutcome::Died)
                .map(|(id, _)| *id)
                .collect();
            let restored = ops::load_stored::<InstanceRecord>(&store, &account, dead).await;
            (summaries, gone, outcomes, restored)
        }
        .into_actor(self)
        .map(move |(summaries, gone, outcomes, restored), act, ctx| {
            act.gone_instances.extend(gone);
            act.instance_summaries.extend(summaries);
            act.supervise(outcomes, restored, now, ctx);
        })
    }

    /// Credit (when [`AccountConfig::credit_due`]) and the daily digest (when due), committed
    /// with the account record.
    fn watch_money(&mut self, now: DateTime<Utc>) -> impl ActorFuture<Self, Output = ()> {
        // A clock that went back counts as "not read yet", so the cadence restarts from now.
        let since_read = self.credit_read_at.and_then(|t| (now - t).to_std().ok());
        let credit_due = self.cfg.credit_due(since_read);
        if credit_due {
            self.credit_read_at = Some(now);
        }
        let digest_day = match (self.cfg.earnings_digest_at, self.cfg.watch.machines) {
            (Some(at), true) => money::digest_due(&self.record.digest, at, (self.local_clock)()),
            _ => None,
        };
        let client = self.client.clone();
        let record = self.record.clone();
        let threshold = self.cfg.credit_low_below;
        let account = self.cfg.name.clone();
        let names: BTreeMap<u64, String> = self
            .summaries
            .iter()
            .map(|(id, s)| (*id, s.hostname.clone().unwrap_or_default()))
            .collect();
        let store = self.store.clone();
        async move {
            if !credit_due && digest_day.is_none() {
                return None;
            }
            let unchanged = record.clone();
            let mut record = record;
            let mut events: Vec<Event> = Vec::new();
            let credit = match credit_due {
                true => match client.current_user().await {
                    Ok(user) => user.credit.or(user.balance),
                    Err(e) => {
                        tracing::warn!(account = %account, error = %e, "credit check failed");
                        None
                    }
                },
                false => None,
            };
            match (credit, threshold) {
                (Some(credit), Some(threshold)) => {
                    let (next, evs) = money::observe_credit(&record.credit, credit, threshold, &account, now);
                    record.credit = next;
                    events.extend(evs);
                }
                (Some(credit), None) => record.credit = money::note_credit(&record.credit, credit),
                (None, _) => {}
            }
            if let Some(day) = digest_day {
                let (sday, eday) = money::earnings_window(day);
                match client.machine_earnings(sday, eday).await {
                    Ok(earnings) => {
                        record.digest_seq += 1;
                        events.push(money::earnings_digest(day, &earnings, &names, &account, now, record.digest_seq));
                        record.digest.last_sent_day = Some(day);
                    }
                    Err(e) => tracing::warn!(account = %account, error = %e, "earnings fetch failed; the digest is retried next poll"),
                }
            }
            if events.is_empty() && record == unchanged {
                // A credit read that changed nothing is not worth a disk write every poll.
                return None;
            }
            let commit = Commit {
                account: account.clone(),
                kind: "account",
                id: account.clone(),
                state: serde_json::to_string(&record).ok(),
                events,
            };
            match store.apply(vec![commit]).await {
                Ok(_) => Some(record),
                Err(e) => {
                    tracing::error!(account = %account, error = %e, "could not persist the account state");
                    None
                }
            }
        }
        .into_actor(self)
        .map(|record, act, _| {
            if let Some(r) = record {
                act.record = r;
            }
        })
    }

    fn report_first_poll(&mut self, ok: bool) {
        if self.first_poll_reported {
            return;
        }
        self.first_poll_reported = true;
        if let Some(sup) = &self.supervisor {
            sup.do_send(FirstPollDone {
                account: self.cfg.name.clone(),
                ok,
                machines: self.summaries.len(),
                rentals: self.summaries.values().map(|s| s.rentals.len()).sum(),
                instances: self.instance_summaries.len(),
                quarantined: self.quarantined.clone(),
            });
        }
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load_health(ctx);
        // Load persisted states before the first poll, so changes that happened while the daemon
        // was down are detected against them (with the real `since` window).
        let store = self.store.clone();
        let account = self.cfg.name.clone();
        let load = async move {
            store
                .run(move |s| {
                    let machines = s.load_states(&account, "machine", |j| {
                        serde_json::from_str::<MachineState>(j).map_err(|e| e.to_string())
                    })?;
                    let instances = s.load_states(&account, "instance", |j| {
                        serde_json::from_str::<InstanceRecord>(j).map_err(|e| e.to_string())
                    })?;
                    let record = s.load_states(&account, "account", |j| {
                        serde_json::from_str::<AccountRecord>(j).map_err(|e| e.to_string())
                    })?;
                    Ok((machines, instances, record))
                })
                .await
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| {
            match result {
                Ok(((machines, bad_m), (instances, bad_i), (record, bad_a))) => {
                    for (id, state) in machines {
                        if let Ok(id) = id.parse::<u64>() {
                            act.summaries
                                .insert(id, Arc::new(crate::detect::machine_summary(&state)));
                            act.spawn_machine(id, Some(state));
                        }
                    }
                    for (id, rec) in instances {
                        if let Ok(id) = id.parse::<u64>() {
                            act.spawn_instance(id, Some(rec));
                        }
                    }
                    if let Some((_, r)) = record.into_iter().next() {
                        act.record = r;
                    }
                    for q in bad_m.iter().chain(&bad_i).chain(&bad_a) {
                        tracing::error!(account = %act.cfg.name, kind = %q.kind, id = %q.id, error = %q.error,
                            "unreadable state quarantined; the subject is adopted afresh");
                        act.quarantined.push(format!("{} {}", q.kind, q.id));
                    }
                }
                Err(e) => tracing::error!(account = %act.cfg.name, error = %e, "could not load stored state"),
            }
            act.publish_status();
            ctx.notify(PollTick);
        }));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct PollTick;

/// A poll's machine list once it has arrived.
enum MachineList {
    /// Observed as soon as it arrived (the account was healthy).
    Observed,
    /// Still to be handled with the rest of the poll.
    Pending(Option<Result<Vec<Machine>, VastError>>),
}

type BoxedStep<T> = std::pin::Pin<Box<dyn ActorFuture<AccountActor, Output = T>>>;

impl Handler<PollTick> for AccountActor {
    type Result = ();

    fn handle(&mut self, _msg: PollTick, ctx: &mut Context<Self>) {
        if let Some(faults) = &self.ops.faults {
            if faults.take_account_panic(&self.cfg.name) {
                panic!("injected fault: account actor {} killed", self.cfg.name);
            }
        }
        let started = std::time::Instant::now();
        // Lines the API client logs while fetching carry the account.
        let span = tracing::debug_span!("poll", account = %self.cfg.name);
        let watch = self.cfg.watch;
        // Both lists at once (different endpoints, paced separately). The instance list is a
        // task of its own, so the machine list can be observed before it arrives.
        let instances = watch.instances.then(|| {
            let client = self.client.clone();
            actix::spawn(tracing::Instrument::instrument(
                async move { client.instances().await },
                span.clone(),
            ))
        });
        let client = self.client.clone();
        let machines = async move {
            match watch.machines {
                true => Some(client.machines().await),
                false => None,
            }
        };
        let poll = tracing::Instrument::instrument(machines, span)
            .into_actor(self)
            .then(|machines, act, _ctx| -> BoxedStep<MachineList> {
                // A healthy account observes its machines at once: their events need not wait
                // for the instance list. One that is not waits for the whole poll, so that its
                // account_restored comes before the machine events.
                match machines {
                    Some(Ok(rows)) if act.health.state == AccountHealth::Ok => {
                        let first_polls = act.first_polls(false);
                        Box::pin(
                            act.observe_machines(rows, Utc::now(), first_polls)
                                .map(|_, _, _| MachineList::Observed),
                        )
                    }
                    other => Box::pin(actix::fut::ready(MachineList::Pending(other))),
                }
            })
            .then(move |machines, act, _ctx| {
                async move {
                    let instances = match instances {
                        Some(task) => Some(task.await.unwrap_or_else(|e| {
                            Err(VastError::Network {
                                detail: format!("the instance list fetch stopped: {e}"),
                            })
                        })),
                        None => None,
                    };
                    (machines, instances, Utc::now())
                }
                .into_actor(act)
            })
            .then(move |(machines, instances, now), act, _ctx| {
                let machine_error = match &machines {
                    MachineList::Pending(Some(Err(e))) => Some(e.clone()),
                    _ => None,
                };
                let error = machine_error
                    .or_else(|| instances.as_ref().and_then(|r| r.as_ref().err()).cloned());
                let health = act.health_after_poll(error.as_ref(), now);
                act.record_poll(error.as_ref(), started.elapsed());
                let machine_rows = match machines {
                    MachineList::Pending(Some(Ok(rows))) => Some(rows),
                    _ => None,
                };
                let instance_rows = instances.and_then(Result::ok);
                let ok = error.is_none();
                // Observations start only once the account event is committed (`Addr::send`
                // queues at once), so that event comes first.
                health
                    .then(move |_, act, _| -> BoxedStep<()> {
                        match machine_rows {
                            Some(rows) => {
                                let first_polls = act.first_polls(true);
                                Box::pin(act.observe_machines(rows, now, first_polls))
                            }
                            None => Box::pin(actix::fut::ready(())),
                        }
                    })
                    .then(move |_, act, _| -> BoxedStep<()> {
                        match instance_rows {
                            Some(rows) => Box::pin(act.observe_instances(rows, now)),
                            None => Box::pin(actix::fut::ready(())),
                        }
                    })
                    .then(move |_, act, _| -> BoxedStep<()> {
                        if ok {
                            act.report_first_poll(true);
                            Box::pin(act.watch_money(now))
                        } else {
                            Box::pin(actix::fut::ready(()))
                        }
                    })
            })
            .map(|_, act, ctx| {
                act.publish_status();
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
        // Child actors stop once their last address is dropped.
        self.machines.clear();
        self.instances.clear();
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
    /// The last credit read (USD), when the account reads it (renters, `credit_low_below`).
    pub credit: Option<f64>,
    pub machines: Vec<Arc<MachineSummary>>,
    pub instances: Vec<Arc<InstanceSummary>>,
    pub api_requests: BTreeMap<&'static str, u64>,
    /// Subjects whose stored state was unreadable at start-up and was set aside.
    pub quarantined: Vec<String>,
    /// Machine and instance actor restarts since start-up, in total and per machine or
    /// instance that had any.
    pub restarts: u64,
    pub restarts_by_machine: BTreeMap<u64, u64>,
    pub restarts_by_instance: BTreeMap<u64, u64>,
    /// Instances whose actor failed too often and is backing off.
    pub degraded_instances: Vec<u64>,
    /// Machines whose actor failed too often and is backing off.
    pub degraded_machines: Vec<u64>,
}
