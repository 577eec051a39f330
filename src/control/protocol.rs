//! Request and reply shapes of the control socket.

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

/// What `status --json` prints (SPEC §8).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub version: String,
    pub started_at: String,
    pub uptime_seconds: u64,
    pub config_files: Vec<serde_json::Value>,
    pub accounts: Vec<serde_json::Value>,
    pub targets: Vec<serde_json::Value>,
    pub outbox: serde_json::Value,
}
