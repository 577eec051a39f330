//! Request and reply shapes of the control socket.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    /// The last `limit` events; with `follow`, then every new event until the client hangs up.
    Events {
        #[serde(default = "default_limit")]
        limit: usize,
        #[serde(default)]
        follow: bool,
    },
    /// Reload the configuration (same as SIGHUP) and report what changed.
    Reload,
    /// Send a test message through one target.
    NotifyTest {
        target: String,
    },
}

fn default_limit() -> usize {
    50
}

/// What `status --json` prints (SPEC §8). The daemon fills `accounts` with its typed account
/// status; clients read them back as JSON values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot<A = serde_json::Value> {
    pub version: String,
    pub started_at: String,
    pub uptime_seconds: u64,
    pub config_files: Vec<serde_json::Value>,
    pub accounts: Vec<A>,
    pub targets: Vec<serde_json::Value>,
    pub outbox: serde_json::Value,
    /// The state database: `state` ("ok" or "failing"), `failed_commits`, `failing_since`,
    /// `last_error`, `kept_events`, `repairs`.
    #[serde(default)]
    pub state_store: serde_json::Value,
}

impl<A> Default for StatusSnapshot<A> {
    fn default() -> Self {
        StatusSnapshot {
            version: String::new(),
            started_at: String::new(),
            uptime_seconds: 0,
            config_files: Vec::new(),
            accounts: Vec::new(),
            targets: Vec::new(),
            outbox: serde_json::Value::Null,
            state_store: serde_json::Value::Null,
        }
    }
}

/// What the daemon publishes for the control socket: the snapshot serialized once, so that a
/// `status` request costs a copy of bytes however many machines are watched (2.3 MB of JSON at
/// 5,000 machines), and the counts of systemd's STATUS line.
#[derive(Debug, Clone)]
pub struct PublishedStatus {
    /// A serialized [`StatusSnapshot`] (JSON text; `Bytes` so it is shared, never copied).
    pub json: Bytes,
    pub counts: StatusCounts,
}

impl Default for PublishedStatus {
    fn default() -> Self {
        let empty = serde_json::to_vec(&StatusSnapshot::<serde_json::Value>::default())
            .unwrap_or_else(|_| b"{}".to_vec());
        PublishedStatus {
            json: empty.into(),
            counts: StatusCounts::default(),
        }
    }
}

/// How many accounts, machines, instances and failing targets a snapshot shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub accounts: usize,
    /// Accounts whose state is not "ok".
    pub accounts_not_ok: usize,
    pub machines: usize,
    pub instances: usize,
    /// Targets whose state is not "ok".
    pub targets_failing: usize,
}
