//! The actor side of the account's polling health (the transition itself is the pure
//! `detect::health::after_poll`): the health is stored as the account's subject of kind
//! [`HEALTH_KIND`], committed in the same transaction as the event that announces a change and
//! adopted only after that commit, and loaded before the first poll. So a daemon killed in the
//! middle of an outage, or an account actor restarted by a reload, neither alerts again nor misses
//! the restore. The supervisor drops the stored health of accounts that left the configuration
//! ([`forget_removed_accounts`]): an account added again later starts from `ok` instead of
//! announcing the end of an outage it no longer watched.
//!
//! Decides nothing about machines or instances; the poll itself is run by `account.rs`.

use super::AccountActor;
use crate::detect::health::{after_poll, AccountHealth, HealthRecord};
use crate::store::Commit;
use crate::store::StoreHandle;
use crate::vast::VastError;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// The subject kind the health is stored under (its id is the account's name).
pub const HEALTH_KIND: &str = "health";

/// Drops the stored health of every account not in `configured` (they left the configuration
/// while the daemon was down, or a reload removed them). Failures are logged: the worst outcome
/// is one `account_restored` too many if such an account comes back.
pub(crate) async fn forget_removed_accounts(store: &StoreHandle, configured: BTreeSet<String>) {
    match store
        .run(move |s| s.forget_other_accounts(HEALTH_KIND, &configured))
        .await
    {
        Ok(forgotten) => {
            for account in forgotten {
                tracing::info!(account = %account, "account left the configuration; its stored health is forgotten");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot forget the health of removed accounts"),
    }
}

impl AccountActor {
    fn adopt_health(&mut self, record: HealthRecord) {
        self.health = record;
        self.ops.metrics.set_state(self.status_state());
    }

    /// Loads the stored health before the first poll (queued with `ctx.wait`, so no poll runs
    /// before it is in). An unreadable row is quarantined and the account starts from `ok`.
    pub(super) fn load_health(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let account = self.cfg.name.clone();
        let load = async move {
            store
                .run(move |s| {
                    s.load_states(&account, HEALTH_KIND, |j| {
                        serde_json::from_str::<HealthRecord>(j).map_err(|e| e.to_string())
                    })
                })
                .await
        };
        ctx.wait(load.into_actor(self).map(|result, act, _| match result {
            Ok((records, quarantined)) => {
                if let Some((_, record)) = records.into_iter().find(|(id, _)| *id == act.cfg.name) {
                    if record.state != AccountHealth::Ok {
                        tracing::warn!(account = %act.cfg.name, state = record.state.as_str(),
                            since = ?record.since, "the account was in an outage when it was last polled");
                    }
                    act.adopt_health(record);
                }
                for q in quarantined {
                    tracing::error!(account = %act.cfg.name, kind = %q.kind, id = %q.id, error = %q.error,
                        "unreadable state quarantined; the account's health starts from ok");
                    act.quarantined.push(format!("{} {}", q.kind, q.id));
                }
            }
            Err(e) => {
                tracing::error!(account = %act.cfg.name, error = %e, "could not load the stored health")
            }
        }));
    }

    /// Applies one finished poll to the health. The poll's own bookkeeping happens at once; a
    /// change of the health is committed together with its event and adopted once stored (a
    /// failed commit leaves the old health, so the change is found again next poll). Resolves
    /// when that is done, so the poll's machine events follow its account event.
    pub(super) fn health_after_poll(
        &mut self,
        error: Option<&VastError>,
        now: DateTime<Utc>,
    ) -> impl ActorFuture<Self, Output = ()> {
        let current = self.health.clone();
        let (next, events) = after_poll(
            &current,
            error,
            self.cfg.stale_after_polls,
            &self.cfg.name,
            now,
            self.last_poll,
        );
        match error {
            None => {
                self.successful_polls += 1;
                self.last_poll = Some(now);
            }
            Some(e) => {
                let auth = matches!(e, VastError::Unauthorized { .. });
                if !auth {
                    tracing::warn!(account = %self.cfg.name, failures = next.failed_polls, reason = e.reason(), error = %e, "poll failed");
                }
                if auth || next.failed_polls >= self.cfg.stale_after_polls {
                    self.report_first_poll(false);
                }
            }
        }
        let store = self.store.clone();
        let account = self.cfg.name.clone();
        let record = next.clone();
        async move {
            if record == current {
                return Ok(false);
            }
            let state = serde_json::to_string(&record).map_err(|e| e.to_string())?;
            let commit = Commit {
                account: account.clone(),
                kind: HEALTH_KIND,
                id: account,
                state: Some(state),
                events,
            };
            store
                .apply(vec![commit])
                .await
                .map(|_| true)
                .map_err(|e| e.to_string())
        }
        .into_actor(self)
        .map(move |stored, act, _| match stored {
            Ok(true) => act.adopt_health(next),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(account = %act.cfg.name, error = %e, "could not persist the account's health; the change is retried next poll")
            }
        })
    }
}
