//! Politeness toward Vast: the endpoint vocabulary and a per-endpoint minimum spacing between
//! requests of one client (retries back off with `crate::backoff`).
//!
//! Vast limits each key per endpoint as a minimum interval between calls and sends no
//! `Retry-After` (reference/vast-api.md §4), so the client spaces its own requests instead of
//! waiting for 429s. The pacing table is shared by every clone of one account's client.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// One Vast endpoint as far as rate limits and metrics are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /api/v0/machines/?owner=me`
    Machines,
    /// `GET /api/v0/machines/{id}/`
    Machine,
    /// `GET /api/v1/instances/` and the deprecated `GET /api/v0/instances/`
    Instances,
    /// `GET /api/v0/instances/{id}/`
    Instance,
    /// `GET /api/v0/users/current/`
    User,
    /// `GET /api/v0/users/me/machine-earnings/`
    Earnings,
    /// `PUT /api/v0/instances/request_logs/{id}/`
    RequestLogs,
    /// `GET <result_url>` of a log request (storage, not the Vast API).
    LogResult,
    /// `PUT`/`DELETE /api/v0/instances/{id}/` (start, stop, destroy).
    InstanceWrite,
}

impl Endpoint {
    pub const ALL: [Endpoint; 9] = [
        Endpoint::Machines,
        Endpoint::Machine,
        Endpoint::Instances,
        Endpoint::Instance,
        Endpoint::User,
        Endpoint::Earnings,
        Endpoint::RequestLogs,
        Endpoint::LogResult,
        Endpoint::InstanceWrite,
    ];

    /// Stable metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Machines => "machines",
            Endpoint::Machine => "machine",
            Endpoint::Instances => "instances",
            Endpoint::Instance => "instance",
            Endpoint::User => "user",
            Endpoint::Earnings => "earnings",
            Endpoint::RequestLogs => "request_logs",
            Endpoint::LogResult => "log_result",
            Endpoint::InstanceWrite => "instance_write",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

const ENDPOINTS: usize = Endpoint::ALL.len();

/// Spaces the requests of one client per endpoint and counts them.
pub(crate) struct Pacer {
    spacing: [Duration; ENDPOINTS],
    next_free: Mutex<[Option<Instant>; ENDPOINTS]>,
    sent: [AtomicU64; ENDPOINTS],
}

impl Pacer {
    pub(crate) fn new(default: Duration, overrides: &HashMap<Endpoint, Duration>) -> Pacer {
        let mut spacing = [default; ENDPOINTS];
        for (endpoint, d) in overrides {
            spacing[endpoint.index()] = *d;
        }
        Pacer {
            spacing,
            next_free: Mutex::new([None; ENDPOINTS]),
            sent: Default::default(),
        }
    }

    /// Waits for this endpoint's turn. Concurrent callers each reserve their own slot, so a
    /// burst leaves at `spacing` intervals instead of all at once.
    pub(crate) async fn wait_turn(&self, endpoint: Endpoint) {
        let spacing = self.spacing[endpoint.index()];
        let at = {
            let mut slots = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = &mut slots[endpoint.index()];
            let at = match *slot {
                Some(previous) => (previous + spacing).max(now),
                None => now,
            };
            *slot = Some(at);
            at
        };
        tokio::time::sleep_until(at).await;
        self.sent[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self, endpoint: Endpoint) -> u64 {
        self.sent[endpoint.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = Endpoint::ALL.iter().map(|e| e.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Endpoint::ALL.len());
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }

    #[tokio::test]
    async fn bursts_are_spread_per_endpoint() {
        let spacing = Duration::from_millis(40);
        let pacer = Pacer::new(spacing, &HashMap::from([(Endpoint::User, Duration::ZERO)]));
        let start = Instant::now();
        pacer.wait_turn(Endpoint::Machines).await;
        pacer.wait_turn(Endpoint::User).await;
        pacer.wait_turn(Endpoint::User).await;
        pacer.wait_turn(Endpoint::Machines).await;
        pacer.wait_turn(Endpoint::Machines).await;
        assert!(start.elapsed() >= spacing * 2);
        assert_eq!(pacer.count(Endpoint::Machines), 3);
        assert_eq!(pacer.count(Endpoint::User), 2);
        assert_eq!(pacer.count(Endpoint::Instance), 0);
    }
}
