//! The root of the actor tree: starts one account actor per configured account and one notifier
//! actor per target, emits the supervisor events (start, startup summary, reloads, stop), applies
//! configuration reloads file by file (planned in [`super::reload`]) and drains the notifiers on
//! shutdown. Creates the process's metrics registry from the configuration and hands each actor
//! its counters.

mod accounts;
mod status;

pub use status::{RefreshStatus, StatusDemand};

use super::account::{
    forget_removed_accounts, AccountActor, AccountStatusFeed, FirstPollDone, StopAccount,
};
use super::notifier::{
    replay_since, DeliveryTuning, NotifierActor, SharedTargetStatus, StopNotifier,
};
use super::reload::{self, ReloadReport};
use super::state_watch::watch_state;
use super::supervision::{FaultInjection, RestartLog, RestartPolicy};
use super::{queue_events, supervisor_event};
use crate::config::{self, AccountConfig, FileConfig, LoadedConfig, TargetConfig};
use crate::control::PublishedStatus;
use crate::event::EventKind;
use crate::metrics::{self, Metrics};
use crate::notify::Notifier;
use crate::store::StoreHandle;
use crate::util::counted;
use crate::vast::ClientOptions;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the status snapshot served by the control socket is refreshed while in demand.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// ... and when nobody asked for status in the last [`STATUS_DEMAND_WINDOW`].
const STATUS_IDLE_EVERY: Duration = Duration::from_secs(10);
const STATUS_DEMAND_WINDOW: Duration = Duration::from_secs(60);

/// The startup summary goes out when every account has finished its first poll, or after this.
const STARTUP_SUMMARY_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct SupervisorOptions {
    pub client: ClientOptions,
    /// How long shutdown waits for notifiers to deliver what is queued.
    pub flush_timeout: Duration,
    pub delivery: DeliveryTuning,
    /// Test and benchmark only: applied to every account, also after a reload.
    pub account_overrides: AccountOverrides,
    /// When failing machine and notifier actors count as degraded and how they back off.
    pub restart_policy: RestartPolicy,
    /// Tests only: faults injected into machine and instance actors.
    #[doc(hidden)]
    pub fault_injection: Option<FaultInjection>,
}

/// Test and benchmark only settings that configuration files cannot express.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AccountOverrides {
    pub poll_interval: Option<Duration>,
    pub offline_grace: Option<Duration>,
}

impl AccountOverrides {
    pub fn apply(&self, a: &mut AccountConfig) {
        if let Some(p) = self.poll_interval {
            a.poll_interval = p;
        }
        if let Some(g) = self.offline_grace {
            a.offline_grace = g;
        }
    }
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            client: ClientOptions::default(),
            flush_timeout: Duration::from_secs(5),
            delivery: DeliveryTuning::default(),
            account_overrides: AccountOverrides::default(),
            restart_policy: RestartPolicy::default(),
            fault_injection: None,
        }
    }
}

pub struct Supervisor {
    accounts_cfg: Vec<AccountConfig>,
    targets_cfg: Vec<TargetConfig>,
    store: StoreHandle,
    http: reqwest::Client,
    opts: SupervisorOptions,
    /// Each running account and the feed it publishes its status into.
    accounts: BTreeMap<String, (Addr<AccountActor>, AccountStatusFeed)>,
    /// The configuration of each running account (to restart one whose actor died).
    account_cfgs: BTreeMap<String, AccountConfig>,
    /// Unexpected stops of account actors (see `accounts`).
    account_restarts: BTreeMap<String, RestartLog>,
    /// Set by `Shutdown`: account actors stopping now are not restarted.
    stopping: bool,
    /// Closed when this actor is gone, however it ended (see [`Supervisor::lifeline`]).
    lifeline: watch::Sender<()>,
    /// Events for the notifiers straight from memory (see `state_watch`).
    urgent: watch::Sender<Option<Arc<crate::event::Event>>>,
    notifiers: BTreeMap<String, (Addr<NotifierActor>, SharedTargetStatus)>,
    awaiting_first_poll: BTreeSet<String>,
    first_polls: Vec<FirstPollDone>,
    summary_sent: bool,
    started_at: DateTime<Utc>,
    status_tx: Option<watch::Sender<PublishedStatus>>,
    /// Set once every account has loaded its stored state: the first snapshot published means
    /// READY to systemd.
    status_ready: bool,
    config_files: Vec<serde_json::Value>,
    /// Where reloads read from (`None`: started without files, reload unavailable).
    config_dir: Option<PathBuf>,
    /// The version of each configuration file now in force.
    in_force: BTreeMap<PathBuf, FileConfig>,
    /// The configuration of each running target (for `notify-test`).
    target_cfgs: BTreeMap<String, TargetConfig>,
    reloading: bool,
    /// When status was last asked for (shared with the control socket) and last published.
    status_demand: StatusDemand,
    metrics: Arc<Metrics>,
    /// Events after this outbox position are counted in the metrics.
    metrics_from_seq: i64,
}

impl Supervisor {
    pub fn new(
        accounts: Vec<AccountConfig>,
        targets: Vec<TargetConfig>,
        store: StoreHandle,
        opts: SupervisorOptions,
    ) -> Supervisor {
        let http = crate::vast::shared_http_client(&opts.client);
        let metrics = Arc::new(Metrics::new(
            accounts.iter().map(|a| a.name.as_str()),
            targets.iter().map(|t| t.name.as_str()),
        ));
        let metrics_from_seq = *store.subscribe().borrow();
        Supervisor {
            accounts_cfg: accounts,
            targets_cfg: targets,
            store,
            http,
            opts,
            accounts: BTreeMap::new(),
            account_cfgs: BTreeMap::new(),
            account_restarts: BTreeMap::new(),
            stopping: false,
            lifeline: watch::channel(()).0,
            urgent: watch::channel(None).0,
            notifiers: BTreeMap::new(),
            awaiting_first_poll: BTreeSet::new(),
            first_polls: Vec::new(),
            summary_sent: false,
            started_at: Utc::now(),
            status_tx: None,
            config_files: Vec::new(),
            config_dir: None,
            in_force: BTreeMap::new(),
            target_cfgs: BTreeMap::new(),
            reloading: false,
            status_demand: StatusDemand::default(),
            status_ready: false,
            metrics,
            metrics_from_seq,
        }
    }

    /// Ends (`changed()` returns an error) when this supervisor is gone: after a clean stop, or
    /// when a panic ended it. The daemon exits on the latter rather than live on without it.
    pub fn lifeline(&self) -> watch::Receiver<()> {
        self.lifeline.subscribe()
    }

    /// The metrics registry (for the HTTP listener, and for a reload to record its outcome).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A supervisor for the files of `loaded` that can reload them later.
    pub fn from_config(
        loaded: &LoadedConfig,
        store: StoreHandle,
        opts: SupervisorOptions,
    ) -> Supervisor {
        let in_force = reload::initial(loaded);
        let (accounts, targets) = reload::running(&in_force);
        let mut sup = Supervisor::new(
            accounts.into_values().collect(),
            targets.into_values().collect(),
            store,
            opts,
        );
        sup.config_dir = Some(loaded.dir.clone());
        sup.in_force = in_force;
        sup.config_files = config_files_status(loaded);
        sup
    }

    /// Publishes status snapshots into `tx`.
    pub fn with_status(mut self, tx: watch::Sender<PublishedStatus>) -> Supervisor {
        self.status_tx = Some(tx);
        self
    }

    /// The handle the control socket uses to say that status is being asked for.
    pub fn status_demand(&self) -> StatusDemand {
        self.status_demand.clone()
    }

    fn start_target(&mut self, cfg: TargetConfig) {
        let name = cfg.name.clone();
        self.target_cfgs.insert(name.clone(), cfg.clone());
        let actor = NotifierActor::new(
            cfg,
            self.store.clone(),
            self.http.clone(),
            self.opts.delivery,
        )
        .with_ops(self.metrics.target(&name), self.opts.restart_policy)
        .with_urgent(self.urgent.subscribe());
        let status = actor.status();
        self.notifiers.insert(name, (actor.start(), status));
    }

    fn send_startup_summary(&mut self) {
        if self.summary_sent {
            return;
        }
        self.summary_sent = true;
        let (mut machines, mut rentals, mut instances) = (0, 0, 0);
        let mut lines = Vec::new();
        let mut accounts = Vec::new();
        for done in &self.first_polls {
            let (m, r, i) = (done.machines, done.rentals, done.instances);
            machines += m;
            rentals += r;
            instances += i;
            let mut parts = Vec::new();
            if m > 0 || i == 0 {
                parts.push(format!(
                    "{}, {}",
                    counted(m, "machine"),
                    counted(r, "rental")
                ));
            }
            if i > 0 {
                parts.push(counted(i, "instance"));
            }
            lines.push(if done.ok {
                format!("{}: {}", done.account, parts.join(", "))
            } else {
                format!("{}: first poll failed", done.account)
            });
            if !done.quarantined.is_empty() {
                lines.push(format!(
                    "{}: unreadable stored state set aside for {} (adopted afresh)",
                    done.account,
                    done.quarantined.join(", ")
                ));
            }
            // Counts only: per-machine detail is in `status`, and 5,000 machine summaries in
            // one event would exceed what a webhook accepts.
            accounts.push(json!({
                "account": done.account, "ok": done.ok, "machines": m, "rentals": r, "instances": i,
                "quarantined": done.quarantined,
            }));
        }
        for pending in &self.awaiting_first_poll {
            lines.push(format!("{pending}: no answer yet"));
        }
        let event = supervisor_event(
            EventKind::StartupSummary,
            Utc::now(),
            format!(
                "Watching {}: {}, {}, {}",
                counted(self.accounts.len(), "account"),
                counted(machines, "machine"),
                counted(rentals, "rental"),
                counted(instances, "instance")
            ),
            lines.join("\n"),
            json!({ "accounts": accounts, "machines": machines, "rentals": rentals, "instances": instances }),
        );
        self.first_polls.clear();
        let store = self.store.clone();
        actix::spawn(async move { queue_events(&store, "", vec![event]).await });
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let start = supervisor_event(
            EventKind::SupervisorStart,
            Utc::now(),
            "vast-supervisor started",
            format!(
                "version {}, {}, {}",
                env!("CARGO_PKG_VERSION"),
                counted(self.accounts_cfg.len(), "account"),
                counted(self.targets_cfg.len(), "target")
            ),
            json!({ "version": env!("CARGO_PKG_VERSION") }),
        );
        let store = self.store.clone();
        let target_names: Vec<(String, DateTime<Utc>)> = self
            .targets_cfg
            .iter()
            .map(|t| (t.name.clone(), replay_since(t)))
            .collect();
        let configured = self.accounts_cfg.iter().map(|a| a.name.clone()).collect();
        // A new target starts at the end of the outbox; fix every target's position first, then
        // queue supervisor_start, so it is the first event every target delivers.
        ctx.wait(
            async move {
                for (name, since) in target_names {
                    let n = name.clone();
                    if let Err(e) = store.run(move |s| s.cursor_or_init(&n, since)).await {
                        tracing::error!(target = %name, error = %e, "cannot read a target's delivery position");
                    }
                }
                forget_removed_accounts(&store, configured).await;
                queue_events(&store, "", vec![start]).await
            }
            .into_actor(self),
        );
        ctx.spawn(
            watch_state(
                self.store.clone(),
                self.metrics.clone(),
                self.urgent.clone(),
            )
            .into_actor(self),
        );
        ctx.spawn(
            metrics::count_events(
                self.metrics.clone(),
                self.store.clone(),
                self.metrics_from_seq,
            )
            .into_actor(self),
        );
        for t in std::mem::take(&mut self.targets_cfg) {
            self.start_target(t);
        }
        for a in std::mem::take(&mut self.accounts_cfg) {
            self.start_account(a, ctx);
        }
        if self.awaiting_first_poll.is_empty() {
            self.send_startup_summary();
        }
        ctx.run_later(STARTUP_SUMMARY_DEADLINE, |act, _| {
            act.send_startup_summary()
        });
        // The first snapshot (and so READY) waits until every account has loaded its state.
        let feeds: Vec<AccountStatusFeed> =
            self.accounts.values().map(|(_, f)| f.clone()).collect();
        ctx.spawn(
            async move {
                for mut feed in feeds {
                    // An error means the account actor is gone: nothing to wait for.
                    let _ = feed.wait_for(Option::is_some).await;
                }
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                act.status_ready = true;
                act.status_tick(ctx);
            }),
        );
        ctx.run_interval(STATUS_EVERY, |act, ctx| act.status_tick(ctx));
    }
}

impl Handler<FirstPollDone> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: FirstPollDone, ctx: &mut Context<Self>) {
        self.awaiting_first_poll.remove(&msg.account);
        self.account_works(&msg.account);
        if self.summary_sent {
            // A restarted account reports its first poll again; the summary is long out.
            return;
        }
        self.first_polls.push(msg);
        if self.awaiting_first_poll.is_empty() {
            self.send_startup_summary();
            // Status (and systemd's STATUS line) shows what the first polls found right away.
            if let Some(fut) = self.publish_status() {
                ctx.spawn(fut);
            }
        }
    }
}

/// Graceful stop: stop polling, queue supervisor_stop, give notifiers `flush_timeout` to deliver.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        for (addr, _) in self.accounts.values() {
            addr.do_send(StopAccount);
        }
        let stop = supervisor_event(
            EventKind::SupervisorStop,
            Utc::now(),
            "vast-supervisor stopped",
            "clean shutdown",
            json!({}),
        );
        let store = self.store.clone();
        let statuses: Vec<SharedTargetStatus> =
            self.notifiers.values().map(|(_, s)| s.clone()).collect();
        let deadline = tokio::time::Instant::now() + self.opts.flush_timeout;
        Box::pin(
            async move {
                queue_events(&store, "", vec![stop]).await;
                let target_seq = store.run(|s| s.max_seq()).await.unwrap_or(0);
                // Wait until every working target has delivered everything queued, or the deadline.
                while tokio::time::Instant::now() < deadline {
                    let pending = statuses.iter().any(|s| {
                        let s = s.lock().unwrap_or_else(|p| p.into_inner());
                        s.state != "disabled" && s.cursor < target_seq
                    });
                    if !pending {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            .into_actor(self)
            .map(|_, act, _ctx| {
                for (addr, _) in act.notifiers.values() {
                    addr.do_send(StopNotifier);
                }
            }),
        )
    }
}

/// One entry per configuration file for status: `{"path", "ok", "error"}`.
pub fn config_files_status(loaded: &LoadedConfig) -> Vec<serde_json::Value> {
    loaded
        .files
        .iter()
        .map(|f| match f {
            config::FileOutcome::Ok(fc) => {
                json!({ "path": fc.path.display().to_string(), "ok": true })
            }
            config::FileOutcome::Rejected { path, diagnostics } => json!({
                "path": path.display().to_string(),
                "ok": false,
                "error": diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "),
            }),
        })
        .collect()
}

/// Re-reads the configuration directory and applies it file by file (SIGHUP, `reload`).
#[derive(Message)]
#[rtype(result = "Result<ReloadReport, String>")]
pub struct Reload;

impl Handler<Reload> for Supervisor {
    type Result = ResponseActFuture<Self, Result<ReloadReport, String>>;

    fn handle(&mut self, _msg: Reload, _ctx: &mut Context<Self>) -> Self::Result {
        if let Some(faults) = &self.opts.fault_injection {
            if faults.take_reload_panic() {
                panic!("injected fault: the supervisor panicked in a reload");
            }
        }
        let Some(dir) = self.config_dir.clone() else {
            return Box::pin(actix::fut::ready(Err(
                "this supervisor was not started from configuration files".to_string(),
            )));
        };
        if self.reloading {
            return Box::pin(actix::fut::ready(Err(
                "a reload is already running".to_string()
            )));
        }
        self.reloading = true;
        crate::systemd::notify_reloading();
        // Read on a blocking thread: a slow file system must not hold the actor's thread (it
        // also serves signals and status). A panic while reading rejects the reload only.
        let read = tokio::task::spawn_blocking(move || config::load_dir(&dir));
        Box::pin(read.into_actor(self).then(|loaded, act, _ctx| {
            match loaded {
                Ok(loaded) => act.apply_reload(loaded),
                Err(e) => {
                    act.reloading = false;
                    crate::systemd::notify_ready();
                    tracing::error!(error = %e, "reading the configuration failed; nothing changed");
                    Box::pin(actix::fut::ready(Err(format!(
                        "reading the configuration failed: {e}"
                    ))))
                }
            }
        }))
    }
}

impl Supervisor {
    /// Applies a freshly read configuration: plans, stops, starts, reports.
    fn apply_reload(
        &mut self,
        loaded: LoadedConfig,
    ) -> ResponseActFuture<Self, Result<ReloadReport, String>> {
        // Validate everything first; nothing is touched until the plan is complete.
        let disabled: Vec<String> = self
            .notifiers
            .iter()
            .filter(|(_, (_, st))| st.lock().map(|s| s.state == "disabled").unwrap_or(false))
            .map(|(n, _)| n.clone())
            .collect();
        let plan = reload::plan(&self.in_force, &loaded, &disabled);
        let stopping_accounts: Vec<Addr<AccountActor>> = plan
            .stop_accounts
            .iter()
            .filter_map(|n| self.forget_account(n))
            .collect();
        let stopping_targets: Vec<Addr<NotifierActor>> = plan
            .stop_targets
            .iter()
            .filter_map(|n| {
                self.target_cfgs.remove(n);
                self.notifiers.remove(n).map(|(a, _)| a)
            })
            .collect();
        let removed_targets = plan.report.targets.removed.clone();
        let configured = reload::running(&plan.in_force).0.into_keys().collect();
        let store = self.store.clone();
        // Stopping waits for each actor's current poll or send to finish, so the new actor
        // starts from the state the old one committed (no duplicates, no lost change).
        let stop = async move {
            for a in stopping_accounts {
                let _ = a.send(StopAccount).await;
            }
            // Only once their actors are stopped, so no last poll stores their health again.
            forget_removed_accounts(&store, configured).await;
            for t in stopping_targets {
                let _ = t.send(StopNotifier).await;
            }
            for name in removed_targets {
                let _ = store.run(move |s| s.remove_cursor(&name)).await;
            }
        };
        Box::pin(stop.into_actor(self).map(move |_, act, ctx| {
            for t in plan.start_targets {
                act.start_target(t);
            }
            for a in plan.start_accounts {
                act.start_account(a, ctx);
            }
            act.in_force = plan.in_force;
            act.config_files = config_files_status(&loaded);
            act.reloading = false;
            let report = plan.report;
            for name in &report.accounts.removed {
                act.metrics.forget_account(name);
            }
            for name in &report.targets.removed {
                act.metrics.forget_target(name);
            }
            act.metrics.record_reload(report.rejected.is_empty());
            crate::systemd::notify_ready();
            let now = Utc::now();
            let mut events = Vec::new();
            for r in &report.rejected {
                let kept = if r.previous_kept {
                    "its previous version stays in force"
                } else {
                    "it is not applied"
                };
                tracing::warn!(path = %r.path, errors = %r.errors.join("; "), "configuration file rejected; {kept}");
                events.push(supervisor_event(
                    EventKind::ConfigRejected,
                    now,
                    format!("Configuration file rejected: {}", r.path),
                    r.errors.join("\n"),
                    json!({ "path": r.path, "errors": r.errors, "previous_kept": r.previous_kept }),
                ));
            }
            if report.changed_anything() {
                let changes = report.change_lines();
                events.push(supervisor_event(
                    EventKind::ConfigReloaded,
                    now,
                    "Configuration reloaded",
                    report.lines().join("\n"),
                    serde_json::to_value(&report).unwrap_or_default(),
                ));
                tracing::info!(changes = %changes.join("; "), "configuration reloaded");
            } else {
                tracing::info!("reload done: no account or target changed");
            }
            let store = act.store.clone();
            actix::spawn(async move { queue_events(&store, "", events).await });
            Ok(report)
        }))
    }
}

/// Sends a test message through one target and returns what the service answered.
#[derive(Message)]
#[rtype(result = "Result<String, NotifyTestError>")]
pub struct NotifyTest {
    pub target: String,
}

/// Why `notify-test` did not get an answer from the service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyTestError {
    /// No such target: a usage error of the command.
    #[error("no target named \"{name}\" (targets: {known})")]
    UnknownTarget { name: String, known: String },
    /// The target could not be built or the service refused the message.
    #[error("{0}")]
    Failed(String),
}

impl Handler<NotifyTest> for Supervisor {
    type Result = ResponseFuture<Result<String, NotifyTestError>>;

    fn handle(&mut self, msg: NotifyTest, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(cfg) = self.target_cfgs.get(&msg.target).cloned() else {
            let known = self
                .target_cfgs
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let error = NotifyTestError::UnknownTarget {
                name: msg.target,
                known,
            };
            return Box::pin(async move { Err(error) });
        };
        let http = self.http.clone();
        Box::pin(async move {
            let mut notifier = Notifier::new(&cfg, http).map_err(NotifyTestError::Failed)?;
            match notifier.send_test().await {
                Ok(d) => Ok(format!(
                    "{} ({}): accepted: {}",
                    cfg.name,
                    notifier.destination(),
                    d.info
                )),
                Err(e) => Err(NotifyTestError::Failed(format!(
                    "{} ({}): {}",
                    cfg.name,
                    notifier.destination(),
                    e
                ))),
            }
        })
    }
}
