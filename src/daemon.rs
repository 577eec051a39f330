//! `vast-supervisor run`: wires configuration, state, the actor tree and signals together.
//! Owns process-level concerns only (state directory, signal handling, systemd notifications,
//! the metrics listener, exit); everything that watches or delivers lives in `actors`.

use crate::actors::supervisor::Shutdown;
use crate::actors::{Supervisor, SupervisorOptions};
use crate::config::{self, AccountConfig, LoadedConfig, TargetConfig};
use crate::control::{self, ControlContext, StatusSnapshot};
use crate::store::StoreHandle;
use crate::systemd;
use crate::vast::ClientOptions;
use actix::prelude::*;
use anyhow::Context as _;
use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `run` beyond the configuration files.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub config_dir: PathBuf,
    /// Test and benchmark only (hidden flag): overrides every account's poll interval, below the
    /// 10 s minimum that configuration files enforce.
    pub poll_interval_override: Option<Duration>,
    /// Test and benchmark only: overrides every account's offline grace.
    pub offline_grace_override: Option<Duration>,
}

/// Everything the daemon needs to start, after configuration was read.
pub struct Prepared {
    pub accounts: Vec<AccountConfig>,
    pub targets: Vec<TargetConfig>,
    pub state_dir: PathBuf,
    pub control_socket: PathBuf,
    /// Where to serve `/metrics` and `/health`, if anywhere.
    pub http_listen: Option<SocketAddr>,
    /// One entry per file read, for status: {"path", "ok", "error"}.
    pub config_files: Vec<serde_json::Value>,
}

/// Reads the configuration, reporting every rejected file; rejected files are left out.
pub fn prepare(opts: &RunOptions) -> anyhow::Result<Prepared> {
    let loaded: LoadedConfig = config::load_dir(&opts.config_dir);
    for d in loaded.diagnostics() {
        tracing::error!("{d}");
    }
    let mut accounts: Vec<AccountConfig> = loaded.accounts().into_iter().cloned().collect();
    for a in &mut accounts {
        if let Some(p) = opts.poll_interval_override {
            a.poll_interval = p;
        }
        if let Some(g) = opts.offline_grace_override {
            a.offline_grace = g;
        }
    }
    let targets: Vec<TargetConfig> = loaded.targets().into_iter().cloned().collect();
    if accounts.is_empty() {
        tracing::warn!(dir = %opts.config_dir.display(), "no valid account configured; nothing to watch");
    }
    let config_files = loaded
        .files
        .iter()
        .map(|f| match f {
            config::FileOutcome::Ok(fc) => {
                serde_json::json!({ "path": fc.path.display().to_string(), "ok": true })
            }
            config::FileOutcome::Rejected { path, diagnostics } => serde_json::json!({
                "path": path.display().to_string(),
                "ok": false,
                "error": diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "),
            }),
        })
        .collect();
    Ok(Prepared {
        accounts,
        targets,
        state_dir: loaded.globals.state_dir.clone(),
        control_socket: loaded.globals.control_socket.clone(),
        http_listen: loaded.globals.http_listen,
        config_files,
    })
}

/// Opens (creating if needed) the state database in `state_dir`.
pub fn open_store(state_dir: &Path) -> anyhow::Result<StoreHandle> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let path = state_dir.join("state.db");
    StoreHandle::open(&path)
        .with_context(|| format!("cannot open the state database {}", path.display()))
}

/// Runs the daemon until SIGTERM or SIGINT, then shuts down cleanly.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let system = System::new();
    system.block_on(async move {
        // Signals first: a SIGTERM that arrives while state is still loading is a clean stop too.
        let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .context("cannot install signal handlers")?;
        let prepared = prepare(&opts)?;
        let store = open_store(&prepared.state_dir)?;
        let (status_tx, status_rx) = tokio::sync::watch::channel(StatusSnapshot::default());
        let status_rx_for_systemd = status_rx.clone();
        let control = control::serve(
            &prepared.control_socket,
            ControlContext {
                status: status_rx,
                store: store.clone(),
            },
        )
        .await
        .with_context(|| {
            format!(
                "cannot open the control socket {}",
                prepared.control_socket.display()
            )
        })?;
        let sup_opts = SupervisorOptions {
            client: opts
                .poll_interval_override
                .map(ClientOptions::for_short_polls)
                .unwrap_or_default(),
            ..SupervisorOptions::default()
        };
        let supervisor = Supervisor::new(prepared.accounts, prepared.targets, store, sup_opts)
            .with_status(status_tx, prepared.config_files);
        let metrics_server = match prepared.http_listen {
            Some(addr) => {
                let server = crate::metrics::serve(addr, supervisor.metrics())
                    .await
                    .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
                tracing::info!(addr = %server.local_addr(), "serving /metrics and /health");
                Some(server)
            }
            None => None,
        };
        let supervisor = supervisor.start();
        let announce = actix::spawn(systemd::announce(status_rx_for_systemd));
        let watchdog =
            systemd::watchdog_interval().map(|every| actix::spawn(systemd::watchdog(every)));
        while let Some(signal) = signals.next().await {
            match signal {
                SIGHUP => tracing::warn!(
                    "SIGHUP received; configuration reload is not available in this build"
                ),
                _ => break,
            }
        }
        announce.abort();
        systemd::notify_stopping();
        tracing::info!("stopping: draining notifications");
        supervisor
            .send(Shutdown)
            .await
            .context("supervisor stopped unexpectedly")?;
        control.abort();
        if let Some(w) = watchdog {
            w.abort();
        }
        drop(metrics_server);
        let _ = std::fs::remove_file(&prepared.control_socket);
        Ok::<(), anyhow::Error>(())
    })
}
