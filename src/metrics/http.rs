//! The optional HTTP listener (`http_listen`): `GET /metrics` (Prometheus text) and `GET /health`
//! (200 or 503 with a JSON body). Read-only; it serves what the registry holds and nothing else.

use super::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// The running listener; dropping it stops serving.
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `listen` and serves `/metrics` and `/health` from `metrics` until the handle is dropped.
pub async fn serve(listen: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<MetricsServer> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .with_state(metrics);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(addr = %local_addr, error = %e, "metrics listener stopped");
        }
    });
    Ok(MetricsServer { local_addr, task })
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

async fn health(State(metrics): State<Arc<Metrics>>) -> Response {
    let health = metrics.health();
    let code = if health.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(health)).into_response()
}
