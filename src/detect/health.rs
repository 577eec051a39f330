//! The pure transition of an account's polling health: `ok`; `stale` after `stale_after_polls`
//! failed polls in a row (`account_stale`); `auth_failed` when Vast rejects the key
//! (`account_auth_failed`); back to `ok` on the first successful poll (`account_restored`, naming
//! the state it ends). The account actor stores the [`HealthRecord`] with the event that
//! announces a change, so a restart neither alerts again nor misses the restore
//! (`actors::account::health`). No I/O, no clock reads.

use crate::event::{Event, EventKind, Subject};
use crate::vast::VastError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// How healthy the account's polling is (shown in status; persisted as `ok`, `stale`,
/// `auth_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// The last successful poll before the current run of failed polls: the `since` of
    /// `account_stale` (`None` when no poll succeeded before them since the daemon started).
    #[serde(default)]
    pub failing_after: Option<DateTime<Utc>>,
    /// The last failed poll of the current run: the `since` of `account_restored`.
    #[serde(default)]
    pub last_failed_poll: Option<DateTime<Utc>>,
}

impl Default for HealthRecord {
    fn default() -> Self {
        HealthRecord {
            state: AccountHealth::Ok,
            since: None,
            failed_polls: 0,
            last_error: None,
            failing_after: None,
            last_failed_poll: None,
        }
    }
}

/// What one finished poll (`error`: why it failed) does to the health `prev`: the next record and
/// the events that announce the change (at most one). `last_success` is the time of the last
/// successful poll before this one, if the caller knows it. Each event's `(since, time]` holds the
/// change it announces: `account_stale` starts at the last success before the failures,
/// `account_restored` and `account_auth_failed` at the poll before this one.
pub fn after_poll(
    prev: &HealthRecord,
    error: Option<&VastError>,
    stale_after_polls: u32,
    account: &str,
    now: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
) -> (HealthRecord, Vec<Event>) {
    let mut next = prev.clone();
    let mut events = Vec::new();
    let previous_poll = last_success.max(prev.last_failed_poll);
    match error {
        None => {
            if prev.state != AccountHealth::Ok {
                let previous = prev.state.as_str();
                let error = prev.last_error.clone().unwrap_or_default();
                events.push(health_event(
                    account,
                    EventKind::AccountRestored,
                    now,
                    format!("Vast polling for {account} works again"),
                    format!("Polls succeed again after {previous} ({error})."),
                    json!({ "previous_state": previous, "since": prev.since }),
                    previous_poll,
                ));
                next.state = AccountHealth::Ok;
                next.since = Some(now);
            }
            next.failed_polls = 0;
            next.last_error = None;
            next.failing_after = None;
            next.last_failed_poll = None;
        }
        Some(error @ VastError::Unauthorized { .. }) => {
            next.last_error = Some(error.to_string());
            next.last_failed_poll = Some(now);
            if prev.state != AccountHealth::AuthFailed {
                next.state = AccountHealth::AuthFailed;
                next.since = Some(now);
                events.push(health_event(
                    account,
                    EventKind::AccountAuthFailed,
                    now,
                    format!("Vast rejected the API key of {account}"),
                    "The key is wrong or was revoked. Polling slows to a probe every few minutes until it works again.",
                    json!({ "error": error.to_string() }),
                    previous_poll,
                ));
            }
        }
        Some(error) => {
            next.last_error = Some(error.to_string());
            next.last_failed_poll = Some(now);
            next.failed_polls = prev.failed_polls.saturating_add(1);
            if prev.failed_polls == 0 {
                next.failing_after = last_success;
            }
            if next.failed_polls >= stale_after_polls && prev.state == AccountHealth::Ok {
                next.state = AccountHealth::Stale;
                next.since = Some(now);
                let window_start = next.failing_after;
                events.push(health_event(
                    account,
                    EventKind::AccountStale,
                    now,
                    format!("Vast data for {account} is stale"),
                    format!(
                        "{} polls in a row failed ({}). Per-machine alerts are held back until polls succeed.",
                        next.failed_polls, error
                    ),
                    json!({ "failed_polls": next.failed_polls, "reason": error.reason() }),
                    window_start,
                ));
            }
        }
    }
    (next, events)
}

/// An account event. Its id is made of the account, the kind and the poll's time: one health
/// event per poll at most, so it is unique without a counter, and the same inputs give the same
/// event.
fn health_event(
    account: &str,
    kind: EventKind,
    now: DateTime<Utc>,
    title: impl Into<String>,
    text: impl Into<String>,
    data: serde_json::Value,
    since: Option<DateTime<Utc>>,
) -> Event {
    Event::new(
        format!("{account}:{kind}:{}", now.timestamp_millis()),
        kind,
        Some(account.to_string()),
        Subject::Account {
            id: account.to_string(),
        },
        now,
        title,
        text,
    )
    .with_since(since)
    .with_data(data)
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

    /// Runs polls (one a second from `start`) through [`after_poll`], persisting the record
    /// through JSON after each one (as the store would), and collects every event. Like a daemon
    /// that just started, it knows of no successful poll before its own.
    fn run(
        mut record: HealthRecord,
        polls: &[Option<VastError>],
        start: u32,
    ) -> (HealthRecord, Vec<Event>) {
        let mut events = Vec::new();
        let mut last_success = None;
        for (i, error) in polls.iter().enumerate() {
            let now = t(start + i as u32);
            let (next, evs) = after_poll(
                &record,
                error.as_ref(),
                STALE_AFTER,
                ACCOUNT,
                now,
                last_success,
            );
            let stored = serde_json::to_string(&next).unwrap();
            record = serde_json::from_str(&stored).unwrap();
            assert_eq!(record, next, "the record survives storage unchanged");
            events.extend(evs);
            if error.is_none() {
                last_success = Some(now);
            }
        }
        (record, events)
    }

    #[test]
    fn each_health_event_window_holds_the_change_it_announces() {
        let fail = || Some(upstream());
        // Polls at t0 (ok), t1 (ok), t2..t4 failing: stale at t4, but polling broke after t1.
        let (_, events) = run(
            HealthRecord::default(),
            &[None, None, fail(), fail(), fail(), fail(), None],
            0,
        );
        assert_eq!(kinds(&events), ["account_stale", "account_restored"]);
        assert_eq!((events[0].since, events[0].time), (Some(t(1)), t(4)));
        // It works again after the last failed poll (t5).
        assert_eq!((events[1].since, events[1].time), (Some(t(5)), t(6)));
        let (_, events) = run(HealthRecord::default(), &[None, Some(unauthorized())], 0);
        assert_eq!((events[0].since, events[0].time), (Some(t(0)), t(1)));
        // Failing from the first poll after start: nothing bounds the window.
        let (_, events) = run(HealthRecord::default(), &[fail(), fail(), fail()], 0);
        assert_eq!(kinds(&events), ["account_stale"]);
        assert_eq!(events[0].since, None);
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
                last_error: None,
                failing_after: None,
                last_failed_poll: None,
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
        let (next, events) = after_poll(
            &HealthRecord::default(),
            None,
            STALE_AFTER,
            ACCOUNT,
            t(0),
            None,
        );
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
