//! `GET /health`: whether the daemon is doing its job, from what the registry already holds.
//! Unhealthy (503) when every configured account is down: stale, key rejected, or not polled at
//! all (successfully or not) for [`STALLED_AFTER_INTERVALS`] of its poll intervals (its actor is
//! gone or wedged); also while the state database refuses writes. No account is healthy.

use super::Metrics;
use serde::Serialize;
use std::time::Instant;

/// An account that has not finished a poll for this many of its intervals counts as down.
pub const STALLED_AFTER_INTERVALS: u32 = 3;

/// One account's line in `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountHealthLine {
    pub name: String,
    pub state: &'static str,
    /// No poll finished for [`STALLED_AFTER_INTERVALS`] poll intervals.
    pub stalled: bool,
}

impl AccountHealthLine {
    fn down(&self) -> bool {
        self.stalled || self.state == "stale" || self.state == "auth_failed"
    }
}

/// The `/health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// "ok", or "unhealthy" when every account is down or the state database refuses writes.
    pub status: &'static str,
    pub uptime_seconds: u64,
    /// "ok", or "failing" while commits to the state database fail.
    pub state_store: &'static str,
    pub accounts: Vec<AccountHealthLine>,
}

impl Health {
    pub fn healthy(&self) -> bool {
        self.status == "ok"
    }
}

impl Metrics {
    /// The health now.
    pub fn health(&self) -> Health {
        self.health_at(Instant::now())
    }

    /// The health as of `now` (a stalled account is judged against it).
    pub fn health_at(&self, now: Instant) -> Health {
        let accounts: Vec<AccountHealthLine> = self
            .shared
            .accounts()
            .iter()
            .map(|(name, a)| AccountHealthLine {
                name: name.clone(),
                state: a.state(),
                stalled: a.stalled_at(now, STALLED_AFTER_INTERVALS),
            })
            .collect();
        let all_down = !accounts.is_empty() && accounts.iter().all(AccountHealthLine::down);
        let store_failing = self.state_store_failing();
        Health {
            status: if all_down || store_failing {
                "unhealthy"
            } else {
                "ok"
            },
            uptime_seconds: self.uptime().as_secs(),
            state_store: if store_failing { "failing" } else { "ok" },
            accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn accounts_that_stopped_polling_are_down() {
        let m = Metrics::new(["a", "b"], []);
        let (a, b) = (m.account("a"), m.account("b"));
        a.set_poll_interval(Duration::from_secs(30));
        b.set_poll_interval(Duration::from_secs(10));
        let t0 = Instant::now();
        a.record_poll(None);
        b.record_poll(Some("timeout"));
        assert!(m.health_at(t0 + Duration::from_secs(29)).healthy());
        let h = m.health_at(t0 + Duration::from_secs(31));
        assert!(h.healthy(), "a still polls within 3 x 30 s: {h:?}");
        assert!(h.accounts[1].stalled && !h.accounts[0].stalled);
        let h = m.health_at(t0 + Duration::from_secs(91));
        assert!(!h.healthy(), "no account polled for 3 intervals: {h:?}");
        a.record_poll(None);
        assert!(
            m.health_at(Instant::now()).healthy(),
            "a failed poll counts as polling too"
        );
    }

    #[test]
    fn a_failing_state_store_is_unhealthy() {
        let m = Metrics::new(["a"], []);
        m.set_state_store(2, true);
        let h = m.health();
        assert!(!h.healthy());
        assert_eq!(h.state_store, "failing");
        m.set_state_store(2, false);
        assert!(m.health().healthy());
        assert!(m
            .render()
            .contains("vast_supervisor_state_commit_failures_total 2\n"));
    }
}
