//! vast-supervisor: watches many Vast.ai accounts from one process and tells hosts and renters,
//! within seconds, what happened to their rentals, machines and instances.
//!
//! The crate is laid out by concern (see `docs/ARCHITECTURE.md`):
//! - [`config`]: files on disk -> validated configuration, with `file:line:col` errors.
//! - [`vast`]: the HTTP client of the Vast API and its typed rows.
//! - [`sim`]: a simulated Vast cloud on 127.0.0.1 for tests, the demo and users' tooling.
//! - [`detect`]: the pure detection core (old state + observation + now -> new state + events).
//! - [`store`]: durable state and the event outbox in SQLite.
//! - [`actors`]: the actix actor tree that schedules polls, runs the core and delivers.
//! - [`notify`]: one renderer and sender per notification service.
//! - [`event`]: the event vocabulary shared by all of the above.
//! - [`fleet`]: the published status snapshot read back into types for the dashboard and metrics.
//! - [`history`]: earnings and rental history projected from the outbox for the dashboard.
//! - [`import`]: `vast-supervisor import`, moving in from vast-monitor.
//! - [`logs_command`]: `vast-supervisor logs`, an instance's log on the terminal.
//! - [`backoff`]: the jittered exponential backoff of every retry loop.
//! - [`signals`]: Ctrl+C for the interactive commands, through signal-hook like the daemon.
//! - [`metrics`], [`systemd`]: operations (Prometheus metrics and health, sd_notify).
//! - [`web`]: the HTTP listener: metrics, health, the dashboard and its JSON API.

pub mod actors;
pub mod backoff;
pub mod cli;
pub mod completions;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod detect;
pub mod event;
pub mod fleet;
pub mod history;
pub mod import;
pub mod logging;
pub mod logs_command;
pub mod metrics;
pub mod notify;
pub mod signals;
pub mod sim;
pub mod store;
pub mod systemd;
pub mod util;
pub mod vast;
pub mod web;
