//! The HTTP listener (`http_listen`, SPEC §8, §13): `/metrics` and `/health` always, and with
//! `dashboard = true` (the default) a read-only web dashboard and the JSON API behind it.
//!
//! | path | what |
//! | --- | --- |
//! | `/`, `/machines/{id}`, `/instances`, `/events` | server-rendered pages ([`pages`]) |
//! | `/assets/*` | the one script and style sheet, embedded in the binary ([`assets`]) |
//! | `/api/v1/status`, `/api/v1/events`, `/api/v1/earnings` | JSON ([`api`]) |
//! | `/api/v1/events/stream` | server-sent events as they are committed ([`stream`]) |
//!
//! Reads only through narrow seams: the published status snapshot (through
//! [`crate::fleet::FleetCache`]), read-only store queries ([`StoreReader`]) and the store's commit
//! notifications. Never reaches into actors and never writes. Access rules and headers live in
//! [`access`].

mod access;
mod api;
mod assets;
mod chart;
mod html;
mod pages;
mod stream;

pub use access::CONTENT_SECURITY_POLICY;

use crate::actors::supervisor::{StatusDemand, Supervisor};
use crate::config::model::BasicAuth;
use crate::fleet::{FleetCache, FleetStatus};
use crate::metrics::Metrics;
use crate::store::{StoreHandle, StoreReader};
use actix::Addr;
use axum::Router;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the dashboard reads.
#[derive(Clone)]
pub struct Dashboard {
    pub fleet: Arc<FleetCache>,
    /// Told of every read, so snapshots are rebuilt every second while someone looks.
    pub demand: StatusDemand,
    /// Asked for a fresh snapshot when the one at hand is old; `None` in tests.
    pub supervisor: Option<Addr<Supervisor>>,
    /// Commit notifications for the live stream.
    pub store: StoreHandle,
    pub reader: StoreReader,
}

impl Dashboard {
    /// The latest snapshot, refreshed first when nobody asked for one lately
    /// ([`StatusDemand::asked_fresh`]).
    async fn fresh(&self) {
        self.demand.asked_fresh(self.supervisor.as_ref()).await;
    }

    /// The snapshot's JSON as published, fresh.
    async fn status_json(&self) -> Bytes {
        self.fresh().await;
        self.fleet.json()
    }

    /// The snapshot read into types, fresh.
    async fn status(&self) -> Arc<FleetStatus> {
        self.fresh().await;
        let fleet = self.fleet.clone();
        tokio::task::spawn_blocking(move || fleet.current())
            .await
            .unwrap_or_default()
    }
}

/// The running listener; dropping it stops serving.
pub struct HttpServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The whole application: metrics and health, the dashboard when given, and the access rules.
pub fn router(
    metrics: Arc<Metrics>,
    dashboard: Option<Dashboard>,
    auth: Option<BasicAuth>,
) -> Router {
    let mut app = crate::metrics::routes(metrics);
    if let Some(d) = dashboard {
        app = app
            .merge(pages::routes(d.clone()))
            .merge(api::routes(d.clone()))
            .merge(stream::routes(d))
            .merge(assets::routes());
    }
    if let Some(auth) = auth {
        app = app.layer(axum::middleware::from_fn_with_state(
            Arc::new(auth),
            access::basic_auth,
        ));
    }
    app.layer(axum::middleware::from_fn(access::read_only))
        .layer(axum::middleware::from_fn(access::security_headers))
}

/// Binds `listen` (before anything starts, so a taken port stops the start-up).
pub async fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await
}

/// Serves `app` on `listener` until the handle is dropped.
pub fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<HttpServer> {
    let local_addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(addr = %local_addr, error = %e, "HTTP listener stopped");
        }
    });
    Ok(HttpServer { local_addr, task })
}
