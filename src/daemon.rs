//! `vast-supervisor run`: wires configuration, state, the actor tree, the control socket and
//! signals together. Owns process-level concerns only (state directory, signal handling, systemd
//! notifications, the HTTP listener, exit); everything that watches or delivers lives in
//! `actors`, everything the listener serves in `web`.

use crate::actors::supervisor::{AccountOverrides, Reload, Shutdown};
use crate::actors::{Supervisor, SupervisorOptions};
use crate::config::{self, LoadedConfig};
use crate::control::{self, ControlContext, PublishedStatus};
use crate::fleet::FleetCache;
use crate::store::{StoreHandle, StoreReader};
use crate::systemd;
use crate::vast::ClientOptions;
use crate::{history, web};
use actix::prelude::*;
use anyhow::Context as _;
use futures::StreamExt;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// Reads the configuration, logging every problem; rejected files are left out (and reported
/// in status), the others run.
pub fn load_config(dir: &Path) -> LoadedConfig {
    let loaded = config::load_dir(dir);
    for d in loaded.diagnostics() {
        tracing::error!("{d}");
    }
    if loaded.accounts().is_empty() {
        tracing::warn!(dir = %dir.display(), "no valid account configured; nothing to watch");
    }
    loaded
}

/// Opens (creating if needed) the state database in `state_dir`.
pub fn open_store(state_dir: &Path) -> anyhow::Result<StoreHandle> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    let path = state_db(state_dir);
    StoreHandle::open(&path)
        .with_context(|| format!("cannot open the state database {}", path.display()))
}

/// The state database in `state_dir`.
fn state_db(state_dir: &Path) -> PathBuf {
    state_dir.join("state.db")
}

/// Runs the daemon until SIGTERM or SIGINT, then shuts down cleanly. SIGHUP reloads.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let system = System::new();
    system.block_on(async move {
        // Signals first: a SIGTERM that arrives while state is still loading is a clean stop too.
        let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .context("cannot install signal handlers")?;
        let loaded = load_config(&opts.config_dir);
        let globals = loaded.globals.clone();
        let store = open_store(&globals.state_dir)?;
        let sup_opts = SupervisorOptions {
            client: opts.poll_interval_override.map(ClientOptions::for_short_polls).unwrap_or_default(),
            account_overrides: AccountOverrides {
                poll_interval: opts.poll_interval_override,
                offline_grace: opts.offline_grace_override,
            },
            ..SupervisorOptions::default()
        };
        let (status_tx, status_rx) = tokio::sync::watch::channel(PublishedStatus::default());
        let supervisor = Supervisor::from_config(&loaded, store.clone(), sup_opts).with_status(status_tx);
        let http_listener = match globals.http_listen {
            Some(addr) => Some(web::bind(addr).await.with_context(|| format!("cannot listen on {addr} (http_listen)"))?),
            None => None,
        };
        let metrics = supervisor.metrics();
        let fleet = Arc::new(FleetCache::new(status_rx.clone()));
        metrics.attach_fleet(fleet.clone());
        let history = actix::spawn(history::follow(store.clone()));
        let demand = supervisor.status_demand();
        let supervisor = supervisor.start();
        let metrics_server = match http_listener {
            Some(listener) => {
                let dashboard = match globals.dashboard {
                    true => Some(web::Dashboard {
                        fleet,
                        demand: demand.clone(),
                        supervisor: Some(supervisor.clone()),
                        store: store.clone(),
                        reader: StoreReader::open(&state_db(&globals.state_dir))?,
                    }),
                    false => None,
                };
                let server = web::serve(listener, web::router(metrics, dashboard, globals.http_basic_auth.clone()))?;
                tracing::info!(addr = %server.local_addr(), dashboard = globals.dashboard, "serving /metrics and /health");
                Some(server)
            }
            None => None,
        };
        // READY=1 goes out with the first status snapshot, once every account has loaded its state.
        let announce = actix::spawn(systemd::announce(status_rx.clone()));
        let watchdog = systemd::watchdog_interval().map(|every| actix::spawn(systemd::watchdog(every)));
        let control = control::serve(
            &globals.control_socket,
            ControlContext { status: status_rx, store, supervisor: Some(supervisor.clone()), demand },
        )
        .await
        .with_context(|| format!("cannot open the control socket {}", globals.control_socket.display()))?;
        while let Some(signal) = signals.next().await {
            if signal != SIGHUP {
                break;
            }
            match supervisor.send(Reload).await {
                Ok(Ok(report)) => tracing::debug!(changes = %report.lines().join("; "), "SIGHUP: reload done (the supervisor logs what changed)"),
                Ok(Err(e)) => tracing::error!(error = %e, "SIGHUP: reload failed"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: supervisor unreachable"),
            }
        }
        announce.abort();
        systemd::notify_stopping();
        tracing::info!("stopping: draining notifications");
        supervisor.send(Shutdown).await.context("supervisor stopped unexpectedly")?;
        control.abort();
        if let Some(w) = watchdog {
            w.abort();
        }
        drop(metrics_server);
        history.abort();
        let _ = std::fs::remove_file(&globals.control_socket);
        Ok::<(), anyhow::Error>(())
    })
}
