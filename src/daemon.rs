//! `vast-supervisor run`: wires configuration, state, the actor tree, the control socket and
//! signals together. Owns process-level concerns only (state directory, signal handling, systemd
//! notifications, the HTTP listener, exit); everything that watches or delivers lives in
//! `actors`, everything the listener serves in `web`.
//!
//! The process never lives on without its supervisor: if a panic ends the supervisor actor the
//! daemon logs it and exits 1 (the service manager restarts it). SIGTERM/SIGINT always end the
//! process within [`SHUTDOWN_GRACE`], also in the middle of a reload. SIGHUP is held from the
//! first instruction of `main` until the handler is installed ([`hold_early_signals`]), so a
//! reload asked for while the daemon starts is applied once it runs, never fatal. SIGXFSZ is
//! ignored: a write past a file size limit fails with an error the store reports, instead of
//! killing the process.

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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long SIGTERM may take at most: the notifiers' flush plus the time to stop the actors.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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

/// `run` refused to start because of the configuration (exit code 2, SPEC §3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigurationError(pub String);

/// Reads the configuration, logging every problem; rejected files are left out (and reported
/// in status), the others run. A rejected main file is an error: its globals (state directory,
/// control socket, listener) would silently fall back to the defaults.
pub fn load_config(dir: &Path) -> Result<LoadedConfig, ConfigurationError> {
    let loaded = config::load_dir(dir);
    for d in loaded.diagnostics() {
        tracing::error!("{d}");
    }
    if let Some(main) = loaded.rejected_main_file() {
        return Err(ConfigurationError(format!(
            "the main configuration file {} is invalid ({}); not starting with default paths",
            main.path().display(),
            main.diagnostics()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    if loaded.accounts().is_empty() {
        tracing::warn!(dir = %dir.display(), "no valid account configured; nothing to watch");
    }
    Ok(loaded)
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

/// Called first thing in `main`, before any thread exists: blocks SIGHUP, so one that arrives
/// while the process starts stays pending instead of killing it. [`release_early_signals`]
/// unblocks it: `run` once its handler is installed (the pending SIGHUP becomes a reload), every
/// other command at once (a pending SIGHUP then ends it as usual).
pub fn hold_early_signals() {
    set_sighup_blocked(true);
}

/// See [`hold_early_signals`].
pub fn release_early_signals() {
    set_sighup_blocked(false);
}

fn set_sighup_blocked(blocked: bool) {
    // SAFETY: a signal set on the stack, initialised by sigemptyset before use; changing the
    // calling thread's mask has no memory-safety preconditions.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// A write past a file size limit (RLIMIT_FSIZE) then fails with EFBIG, which the store sees and
/// reports like a full disk, instead of SIGXFSZ killing the daemon.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Every panic is logged as an error line (with where it happened) through the daemon's log, so
/// the one that ends an actor is on record before the process reacts to it.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        tracing::error!(%location, %thread, "panic: {payload}");
    }));
}

/// Runs the daemon until SIGTERM or SIGINT, then shuts down cleanly. SIGHUP reloads.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    ignore_file_size_signal();
    log_panics();
    let system = System::new();
    system.block_on(async move {
        // Signals first: a SIGTERM that arrives while state is still loading is a clean stop too.
        let mut signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .context("cannot install signal handlers")?;
        release_early_signals();
        let loaded = load_config(&opts.config_dir)?;
        let globals = loaded.globals.clone();
        let store = open_store(&globals.state_dir)?;
        // The listeners are bound and the dashboard's reader opened before any actor starts, so
        // a port, socket or database that cannot be used stops the start-up with its error (and
        // nothing half-started).
        let http_listener = match globals.http_listen {
            Some(addr) => Some(web::bind(addr).await.with_context(|| format!("cannot listen on {addr} (http_listen)"))?),
            None => None,
        };
        let dashboard_reader = match (&http_listener, globals.dashboard) {
            (Some(_), true) => Some(StoreReader::open(&state_db(&globals.state_dir))?),
            _ => None,
        };
        let control_listener = control::bind(&globals.control_socket)
            .await
            .with_context(|| format!("cannot open the control socket {}", globals.control_socket.display()))?;
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
        let metrics = supervisor.metrics();
        let fleet = Arc::new(FleetCache::new(status_rx.clone()));
        metrics.attach_fleet(fleet.clone());
        let history = actix::spawn(history::follow(store.clone()));
        let demand = supervisor.status_demand();
        let mut lifeline = supervisor.lifeline();
        let supervisor = supervisor.start();
        let metrics_server = match http_listener {
            Some(listener) => {
                let dashboard = dashboard_reader.map(|reader| web::Dashboard {
                    fleet,
                    demand: demand.clone(),
                    supervisor: Some(supervisor.clone()),
                    store: store.clone(),
                    reader,
                });
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
            control_listener,
            ControlContext { status: status_rx, store: store.clone(), supervisor: Some(supervisor.clone()), demand },
        );
        loop {
            tokio::select! {
                signal = signals.next() => match signal {
                    // A reload runs beside this loop, so SIGTERM is handled during one too.
                    Some(SIGHUP) => { actix::spawn(reload(supervisor.clone())); }
                    _ => break,
                },
                _ = lifeline.changed() => {
                    systemd::notify_stopping();
                    anyhow::bail!("the supervisor stopped unexpectedly (a panic, logged above); exiting so that the service manager restarts the daemon");
                }
            }
        }
        announce.abort();
        systemd::notify_stopping();
        tracing::info!("stopping: draining notifications");
        let stopped = tokio::select! {
            r = supervisor.send(Shutdown) => r.map_err(|e| anyhow::anyhow!("supervisor stopped unexpectedly: {e}")),
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => Err(anyhow::anyhow!("shutdown did not finish within {}s", SHUTDOWN_GRACE.as_secs())),
            _ = signals.next() => Err(anyhow::anyhow!("a second signal: stopping at once")),
        };
        control.abort();
        if let Some(w) = watchdog {
            w.abort();
        }
        drop(metrics_server);
        history.abort();
        let _ = std::fs::remove_file(&globals.control_socket);
        if let Err(e) = stopped {
            // Whatever still runs (a blocked reload, an actor) must not hold the process: every
            // commit is already durable, so exiting now loses nothing.
            tracing::error!(error = %e, "exiting without a complete shutdown");
            let _ = writeln!(std::io::stderr(), "vast-supervisor: {e:#}");
            std::process::exit(1);
        }
        store.checkpoint().await;
        Ok::<(), anyhow::Error>(())
    })
}

async fn reload(supervisor: Addr<Supervisor>) {
    match supervisor.send(Reload).await {
        Ok(Ok(report)) => tracing::debug!(
            changes = %report.lines().join("; "),
            "SIGHUP: reload done (the supervisor logs what changed)"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "SIGHUP: reload failed"),
        Err(e) => tracing::error!(error = %e, "SIGHUP: supervisor unreachable"),
    }
}
