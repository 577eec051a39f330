//! The supervisor's side of its account actors: starting one from its configuration, and
//! restarting one whose actor stopped without being asked to. A panic in an actix handler ends
//! that actor (actix's own `Supervisor` would not restart it), and with it the account's polling;
//! the supervisor notices when the account's status feed closes, logs it and starts the account
//! afresh from its stored state, within a second, with the restart policy's back-off when it
//! keeps failing (SPEC §8). Decides nothing about what an account detects.

use super::Supervisor;
use crate::actors::account::{AccountActor, AccountOps, AccountStatusFeed};
use crate::actors::supervision::Verdict;
use crate::config::AccountConfig;
use crate::vast::VastClient;
use actix::prelude::*;
use std::time::Duration;
use tokio::time::Instant;

/// A dead account actor is started again after this pause (SPEC §8: "within a second").
const RESTART_AFTER: Duration = Duration::from_millis(500);

impl Supervisor {
    /// Starts the account's actor (its configuration as written; test overrides are applied
    /// here) and watches it.
    pub(super) fn start_account(&mut self, configured: AccountConfig, ctx: &mut Context<Self>) {
        let mut cfg = configured.clone();
        self.opts.account_overrides.apply(&mut cfg);
        let client = VastClient::new(
            self.http.clone(),
            cfg.api_url.clone(),
            cfg.api_key.clone(),
            self.opts.client.clone(),
        );
        let name = cfg.name.clone();
        let account_metrics = self.metrics.account(&name);
        account_metrics.attach_client(&client);
        account_metrics.set_poll_interval(cfg.poll_interval);
        let ops = AccountOps {
            metrics: account_metrics,
            restart_policy: self.opts.restart_policy,
            faults: self.opts.fault_injection.clone(),
        };
        let me = ctx.address().recipient();
        match AccountActor::new(cfg, client, self.store.clone(), Some(me)) {
            Ok(actor) => {
                let actor = actor.with_ops(ops);
                self.awaiting_first_poll.insert(name.clone());
                let feed = actor.status_feed();
                self.watch_account(name.clone(), feed.clone(), ctx);
                self.account_cfgs.insert(name.clone(), configured);
                self.accounts.insert(name, (actor.start(), feed));
            }
            Err(e) => {
                tracing::error!(account = %name, error = %e, "invalid pattern in the account; not started")
            }
        }
    }

    /// Forgets an account stopped on purpose (a reload removed or changed it).
    pub(super) fn forget_account(&mut self, name: &str) -> Option<Addr<AccountActor>> {
        self.account_cfgs.remove(name);
        self.accounts.remove(name).map(|(addr, _)| addr)
    }

    /// An account actor's status feed closes when the actor is gone, whatever ended it.
    fn watch_account(&self, name: String, mut feed: AccountStatusFeed, ctx: &mut Context<Self>) {
        let watched = feed.clone();
        ctx.spawn(
            async move { while feed.changed().await.is_ok() {} }
                .into_actor(self)
                .map(move |_, act, ctx| act.account_stopped(name, watched, ctx)),
        );
    }

    /// Whether `feed` is the one of the account actor now registered under `name`.
    fn is_current(&self, name: &str, feed: &AccountStatusFeed) -> bool {
        self.accounts
            .get(name)
            .is_some_and(|(_, current)| current.same_channel(feed))
    }

    fn account_stopped(&mut self, name: String, feed: AccountStatusFeed, ctx: &mut Context<Self>) {
        if self.stopping || !self.is_current(&name, &feed) {
            // Stopped on purpose: shutdown, or a reload that removed or replaced it.
            return;
        }
        let log = self.account_restarts.entry(name.clone()).or_default();
        let verdict = log.record_failure(Instant::now(), &self.opts.restart_policy);
        let restarts = log.total();
        let delay = match verdict {
            Verdict::Restart => {
                tracing::error!(account = %name, restarts,
                    "the account's actor stopped unexpectedly (a panic, logged above); restarting it from its stored state");
                RESTART_AFTER
            }
            Verdict::Degraded { pause, .. } => {
                tracing::error!(account = %name, restarts, pause_seconds = pause.as_secs_f64(),
                    "the account's actor keeps stopping unexpectedly; restarting it after a pause");
                pause
            }
        };
        ctx.run_later(delay, move |act, ctx| {
            if act.stopping || !act.is_current(&name, &feed) {
                return;
            }
            if let Some(cfg) = act.account_cfgs.get(&name).cloned() {
                act.accounts.remove(&name);
                act.start_account(cfg, ctx);
            }
        });
    }

    /// The account finished a poll: a restarted account works again.
    pub(super) fn account_works(&mut self, name: &str) {
        if let Some(log) = self.account_restarts.get_mut(name) {
            log.record_success();
        }
    }
}
