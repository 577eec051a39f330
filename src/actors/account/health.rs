//! The account's polling health: `ok`; `stale` after `stale_after_polls` failed polls in a row
//! (`account_stale`); `auth_failed` when Vast rejects the key (`account_auth_failed`, polling slows
//! to a probe); back to `ok` on the first successful poll (`account_restored`, naming the state it
//! ends). The transition is the pure [`after_poll`].
//!
//! The health (state, since when, the failed-poll counter, the last error) is stored as the
//! account's subject of kind [`HEALTH_KIND`], committed in the same transaction as the event that
//! announces a change and adopted only after that commit, and loaded before the first poll. So a
//! daemon killed in the middle of an outage, or an account actor restarted by a reload, neither
//! alerts again nor misses the restore. The supervisor drops the stored health of accounts that
//! left the configuration ([`forget_removed_accounts`]): an account added again later starts from
//! `ok` instead of announcing the end of an outage it no longer watched.
//!
//! Decides nothing about machines or instances; the poll itself is run by `account.rs`.

use super::{AccountActor, AccountHealth};
use crate::actors::account_event;
use crate::event::{Event, EventKind};
use crate::store::{Commit, StoreHandle};
use crate::vast::VastError;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;

/// The subject kind the health is stored under (its id is the account's name).
pub const HEALTH_KIND: &str = "health";

/// The account's persisted health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    pub state: AccountHealth,
    /// When the account entered `state`; `None` while it has been ok since it was first polled.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Failed polls in a row, the stale counter (a rejected key is not counted here).
    #[serde(default)]
    pub failed_polls: u32,
    /// The last poll error, for status and the text of `account_restored`.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Default for HealthRecord {
    fn default() -> Self {
        HealthRecord {
            state: AccountHealth::Ok,
            since: None,
            failed_polls: 0,
            last_error: None,
        }
    }
}

/// What one finished poll (`error`: why it failed) does to the health `prev`: the next record and
/// the events that announce the change (at most one).
fn after_poll(
    prev: &HealthRecord,
    error: Option<&VastError>,
    stale_after_polls: u32,
    account: &str,
    now: DateTime<Utc>,
) -> (HealthRecord, Vec<Event>) {
    let mut next = prev.clone();
    let mut events = Vec::new();
    match error {
        None => {
            if prev.state != AccountHealth::Ok {
                let previous = prev.state.as_str();
                let error = prev.last_error.clone().unwrap_or_default();
                events.push(account_event(
                    account,
                    EventKind::AccountRestored,
                    now,
                    format!("Vast polling for {account} works again"),
                    format!("Polls succeed again after {previous} ({error})."),
                    json!({ "previous_state": previous, "since": prev.since }),
                ));
                next.state = AccountHealth::Ok;
                next.since = Some(now);
            }
            next.failed_polls = 0;
            next.last_error = None;
        }
        Some(error @ VastError::Unauthorized { .. }) => {
            next.last_error = Some(error.to_string());
            if prev.state != AccountHealth::AuthFailed {
                next.state = AccountHealth::AuthFailed;
                next.since = Some(now);
                events.push(account_event(
                    account,
                    EventKind::AccountAuthFailed,
                    now,
                    format!("Vast rejected the API key of {account}"),
                    "The key is wrong or was revoked. Polling slows to a probe every few minutes until it works again.",
                    json!({ "error": error.to_string() }),
                ));
            }
        }
        Some(error) => {
            next.last_error = Some(error.to_string());
            next.failed_polls = prev.failed_polls.saturating_add(1);
            if next.failed_polls >= stale_after_polls && prev.state == AccountHealth::Ok {
                next.state = AccountHealth::Stale;
                next.since = Some(now);
                events.push(account_event(
                    account,
                    EventKind::AccountStale,
                    now,
                    format!("Vast data for {account} is stale"),
                    format!(
                        "{} polls in a row failed ({}). Per-machine alerts are held back until polls succeed.",
                        next.failed_polls, error
                    ),
                    json!({ "failed_polls": next.failed_polls, "reason": error.reason() }),
                ));
            }
        }
    }
    (next, events)
}

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
    fn health_record(&self) -> HealthRecord {
        HealthRecord {
            state: self.health,
            since: self.health_since,
            failed_polls: self.consecutive_failures,
            last_error: self.last_error.clone(),
        }
    }

    fn adopt_health(&mut self, record: HealthRecord) {
        self.health = record.state;
        self.health_since = record.since;
        self.consecutive_failures = record.failed_polls;
        self.last_error = record.last_error;
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
        let current = self.health_record();
        let (next, events) = after_poll(
            &current,
            error,
            self.cfg.stale_after_polls,
            &self.cfg.name,
            now,
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

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "acme";
    const STALE_AFTER: u32 = 3;

    fn t(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + i64::from(s), 0).unwrap()
    }

    fn upstream() -> VastError {
        VastError::Upstream { status: 502 }
    }

    fn unauthorized() -> VastError {
        VastError::Unauthorized { status: 401 }
    }

    /// Runs polls through [`after_poll`], persisting the record through JSON after each one (as
    /// the store would), and collects every event's kind.
    fn run(
        mut record: HealthRecord,
        polls: &[Option<VastError>],
        start: u32,
    ) -> (HealthRecord, Vec<Event>) {
        let mut events = Vec::new();
        for (i, error) in polls.iter().enumerate() {
            let (next, evs) = after_poll(
                &record,
                error.as_ref(),
                STALE_AFTER,
                ACCOUNT,
                t(start + i as u32),
            );
            let stored = serde_json::to_string(&next).unwrap();
            record = serde_json::from_str(&stored).unwrap();
            assert_eq!(record, next, "the record survives storage unchanged");
            events.extend(evs);
        }
        (record, events)
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn a_restart_during_a_stale_outage_neither_alerts_again_nor_misses_the_restore() {
        let fail = || Some(upstream());
        let (stored, first_run) = run(HealthRecord::default(), &[None, fail(), fail(), fail()], 0);
        assert_eq!(kinds(&first_run), ["account_stale"]);
        assert_eq!(stored.state, AccountHealth::Stale);
        assert_eq!(stored.since, Some(t(3)));
        // The restarted daemon loads `stored`: more failures say nothing, the success restores.
        let (after, second_run) = run(stored, &[fail(), fail(), None, None], 100);
        assert_eq!(kinds(&second_run), ["account_restored"]);
        assert_eq!(second_run[0].data["previous_state"], "stale");
        assert_eq!(second_run[0].data["since"], json!(t(3)));
        assert_eq!(
            after,
            HealthRecord {
                state: AccountHealth::Ok,
                since: Some(t(102)),
                failed_polls: 0,
                last_error: None
            }
        );
    }

    #[test]
    fn a_restart_during_an_auth_outage_restores_once_with_auth_failed() {
        let (stored, first_run) = run(HealthRecord::default(), &[Some(unauthorized())], 0);
        assert_eq!(kinds(&first_run), ["account_auth_failed"]);
        let probes = [
            Some(unauthorized()),
            Some(unauthorized()),
            Some(upstream()),
            None,
        ];
        let (_, second_run) = run(stored, &probes, 100);
        assert_eq!(kinds(&second_run), ["account_restored"]);
        assert_eq!(second_run[0].data["previous_state"], "auth_failed");
    }

    #[test]
    fn the_stale_counter_carries_over_a_restart() {
        let fail = || Some(upstream());
        let (stored, first_run) = run(HealthRecord::default(), &[fail(), fail()], 0);
        assert!(first_run.is_empty());
        assert_eq!(stored.failed_polls, 2);
        assert_eq!(stored.state, AccountHealth::Ok);
        let (_, second_run) = run(stored, &[fail()], 100);
        assert_eq!(kinds(&second_run), ["account_stale"]);
        assert_eq!(second_run[0].data["failed_polls"], 3);
        // A success in between resets it.
        let (_, events) = run(
            HealthRecord::default(),
            &[fail(), fail(), None, fail(), fail()],
            0,
        );
        assert!(events.is_empty());
    }

    #[test]
    fn a_rejected_key_during_a_stale_outage_is_reported_and_then_restored_once() {
        let fail = || Some(upstream());
        let (_, events) = run(
            HealthRecord::default(),
            &[fail(), fail(), fail(), Some(unauthorized()), fail(), None],
            0,
        );
        assert_eq!(
            kinds(&events),
            ["account_stale", "account_auth_failed", "account_restored"]
        );
        assert_eq!(events[2].data["previous_state"], "auth_failed");
    }

    #[test]
    fn a_quiet_healthy_poll_changes_nothing_that_needs_storing() {
        let (next, events) = after_poll(&HealthRecord::default(), None, STALE_AFTER, ACCOUNT, t(0));
        assert_eq!(next, HealthRecord::default());
        assert!(events.is_empty());
    }

    #[test]
    fn older_or_partial_records_load_with_defaults() {
        let r: HealthRecord = serde_json::from_str(r#"{"state": "auth_failed"}"#).unwrap();
        assert_eq!(r.state, AccountHealth::AuthFailed);
        assert_eq!((r.failed_polls, r.since, r.last_error), (0, None, None));
        assert!(serde_json::from_str::<HealthRecord>(r#"{"state": "sleepy"}"#).is_err());
    }
}
